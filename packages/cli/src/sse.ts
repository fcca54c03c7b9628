/** A small Server-Sent Events parser (https://html.spec.whatwg.org/multipage/server-sent-events.html). */

export interface SseEvent {
  /** Event type; `message` when the stream gave none. */
  event: string;
  /** Data lines joined with `\n`. */
  data: string;
  id?: string;
}

/** Incremental parser: feed it text chunks as they arrive, get complete events back. */
export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;
  #hasData = false;
  /** The previous chunk ended in CR: a leading LF of the next chunk belongs to it. */
  #skipLf = false;

  /** Parses a chunk; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    if (this.#skipLf && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#skipLf = false;
    this.#buffer += chunk;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const ch = this.#buffer[i];
      if (ch !== '\n' && ch !== '\r') continue;
      // A trailing CR may be the first half of a CRLF split across chunks.
      if (ch === '\r' && i === this.#buffer.length - 1) this.#skipLf = true;
      const line = this.#buffer.slice(start, i);
      if (ch === '\r' && this.#buffer[i + 1] === '\n') i++;
      start = i + 1;
      const ev = this.#line(line);
      if (ev) events.push(ev);
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  /** Flushes at end of stream. A final event without its blank line is dropped, as the spec says. */
  end(): SseEvent[] {
    if (this.#buffer) this.#line(this.#buffer);
    this.#buffer = '';
    this.#reset();
    return [];
  }

  #reset(): void {
    this.#event = '';
    this.#data = [];
    this.#hasData = false;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') {
      if (!this.#hasData) {
        this.#event = '';
        return undefined;
      }
      const ev: SseEvent = { event: this.#event || 'message', data: this.#data.join('\n') };
      if (this.#id !== undefined) ev.id = this.#id;
      this.#reset();
      return ev;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') {
      this.#data.push(value);
      this.#hasData = true;
    } else if (field === 'id' && !value.includes('\0')) this.#id = value;
    return undefined;
  }
}

/** Reads a response body as a stream of SSE events. */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    yield* parser.push(decoder.decode(chunk, { stream: true }));
  }
  yield* parser.push(decoder.decode());
  yield* parser.end();
}
