import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStore } from './log-store.ts';

describe('LogStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mp-logs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('rotates by size and keeps the configured number of files', async () => {
    const store = new LogStore({ dir, maxBytes: 2000, files: 2 });
    const log = store.open('rot', 'rot-web-1', 'web');
    for (let i = 0; i < 100; i++) {
      log.write('stdout', `line ${i} ${'x'.repeat(50)}`);
      if (i % 10 === 0) log.flush();
    }
    log.close();
    const files = readdirSync(join(dir, 'rot')).sort();
    expect(files).toEqual(['rot-web-1.log', 'rot-web-1.log.1', 'rot-web-1.log.2']);
    const tail = await store.tail('rot', { tail: 15 });
    expect(tail.map((l) => l.line.split(' ')[1])).toEqual(
      Array.from({ length: 15 }, (_, i) => String(85 + i)),
    );
    // lines spread over the current and the rotated files are read back in order
    const more = await store.tail('rot', { tail: 40 });
    expect(more.length).toBeGreaterThan(20);
    expect(more.at(-1)?.line).toMatch(/^line 99 /);
    expect(existsSync(join(dir, 'rot', 'rot-web-1.log.3'))).toBe(false);
  });

  it('masks secret values and merges instances by time with filters', async () => {
    const store = new LogStore({ dir, maxBytes: 1_000_000, files: 1 });
    const a = store.open('mix', 'mix-web-a', 'web', ['s3cr3t', '']);
    const b = store.open('mix', 'mix-worker-b', 'worker');
    const seen: string[] = [];
    const unsubscribe = store.subscribe('mix', (l) => seen.push(l.line));
    a.write('stdout', 'password=s3cr3t and again s3cr3t');
    await new Promise((r) => setTimeout(r, 5));
    b.write('stderr', 'worker line');
    await new Promise((r) => setTimeout(r, 5));
    a.write('system', 'web exited with code 1');
    unsubscribe();
    a.write('stdout', 'after unsubscribe');
    expect(seen).toEqual(['password=******** and again ********', 'worker line', 'web exited with code 1']);
    const all = await store.tail('mix', { tail: 10 });
    expect(all.map((l) => `${l.processType}/${l.stream}: ${l.line}`)).toEqual([
      'web/stdout: password=******** and again ********',
      'worker/stderr: worker line',
      'web/system: web exited with code 1',
      'web/stdout: after unsubscribe',
    ]);
    expect((await store.tail('mix', { tail: 10, process: 'worker' })).map((l) => l.line)).toEqual([
      'worker line',
    ]);
    expect(await store.tail('mix', { tail: 10, since: new Date(Date.now() + 60_000).toISOString() })).toEqual(
      [],
    );
    expect(await store.tail('nothing-here', { tail: 10 })).toEqual([]);
    a.close();
    b.close();
  });

  it('keeps the files of at most keepInstances stopped instances per app', async () => {
    const store = new LogStore({ dir, maxBytes: 1_000_000, files: 1, keepInstances: 2 });
    const live = store.open('prune', 'prune-web-live', 'web');
    live.write('stdout', 'still running');
    live.flush();
    for (const id of ['a', 'b', 'c', 'd']) {
      const l = store.open('prune', `prune-web-${id}`, 'web');
      l.write('stdout', id);
      l.close();
      await new Promise((r) => setTimeout(r, 15));
    }
    expect(readdirSync(join(dir, 'prune')).sort()).toEqual([
      'prune-web-c.log',
      'prune-web-d.log',
      'prune-web-live.log',
    ]);
    live.close();
  });
});
