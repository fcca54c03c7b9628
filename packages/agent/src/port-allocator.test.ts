import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { PortAllocator } from './port-allocator.ts';

describe('PortAllocator', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('never hands out the same port twice and skips ports in use', async () => {
    const base = 20000 + Math.floor(Math.random() * 12000);
    const blocker = createServer();
    servers.push(blocker);
    await new Promise<void>((r) => blocker.listen(base + 1, r));
    const ports = new PortAllocator(base, base + 4);
    const got = await Promise.all([ports.allocate(), ports.allocate(), ports.allocate()]);
    expect(new Set(got).size).toBe(3);
    expect(got).not.toContain(base + 1);
    ports.release(got[0]);
    expect(ports.inUse.has(got[0] as number)).toBe(false);
  });

  it('fails clearly when the range is exhausted', async () => {
    const base = 20000 + Math.floor(Math.random() * 12000);
    const ports = new PortAllocator(base, base);
    await ports.allocate();
    await expect(ports.allocate()).rejects.toThrow(/no free port/);
  });
});
