import { describe, expect, it } from 'vitest';
import { readSse, SseParser } from './sse.ts';

describe('SseParser', () => {
  it('parses events with types, multi-line data and ids', () => {
    const p = new SseParser();
    const events = p.push('event: log\ndata: {"line":"a"}\n\ndata: one\ndata: two\nid: 7\n\n');
    expect(events).toEqual([
      { event: 'log', data: '{"line":"a"}' },
      { event: 'message', data: 'one\ntwo', id: '7' },
    ]);
  });

  it('handles chunks split anywhere, including inside CRLF', () => {
    const text =
      'event: status\r\ndata: {"status":"building"}\r\n\r\n: keep-alive\r\n\r\nevent: end\r\ndata: {}\r\n\r\n';
    for (let size = 1; size <= text.length; size++) {
      const p = new SseParser();
      const out = [];
      for (let i = 0; i < text.length; i += size) out.push(...p.push(text.slice(i, i + size)));
      expect(out, `chunk size ${size}`).toEqual([
        { event: 'status', data: '{"status":"building"}' },
        { event: 'end', data: '{}' },
      ]);
    }
  });

  it('accepts bare CR line endings, fields without a space and without a colon', () => {
    const p = new SseParser();
    expect(p.push('data:x\rdata\r\r')).toEqual([{ event: 'message', data: 'x\n' }]);
  });

  it('ignores comments and blank events, drops an unterminated final event', () => {
    const p = new SseParser();
    expect(p.push(':hello\n\nevent: ping\n\ndata: partial')).toEqual([]);
    expect(p.end()).toEqual([]);
  });

  it('reads a byte stream with multi-byte characters split across chunks', async () => {
    const bytes = new TextEncoder().encode('data: héllo ✓\n\n');
    async function* chunks() {
      for (const b of bytes) yield Uint8Array.of(b);
    }
    const out = [];
    for await (const ev of readSse(chunks())) out.push(ev);
    expect(out).toEqual([{ event: 'message', data: 'héllo ✓' }]);
  });
});
