import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamDns } from './upstream-dns.ts';

describe('UpstreamDns, asked by a real resolver (c-ares) over UDP and TCP', () => {
  const dns = new UpstreamDns();
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  let port = 0;

  beforeAll(async () => {
    port = (await dns.start()).port;
    resolver.setServers([`127.0.0.1:${port}`]);
  });
  afterAll(async () => {
    await dns.close();
  });

  it('answers SRV with targets that encode the address, and A/AAAA for those targets', async () => {
    const name = dns.nameFor('mp-web_App');
    expect(name).toBe('mp-web-app.minipaas.internal');
    dns.replace(new Map([[name, ['10.0.0.5:30001', '[fd00::1]:30002', 'not-an-endpoint', '10.0.0.6:0']]]));
    const srv = await resolver.resolveSrv(name);
    expect(srv.map((r) => [r.name, r.port])).toEqual([
      ['n-10-0-0-5.minipaas.internal', 30001],
      ['n6-fd00-0-0-0-0-0-0-1.minipaas.internal', 30002],
    ]);
    expect(await resolver.resolve4('n-10-0-0-5.minipaas.internal')).toEqual(['10.0.0.5']);
    expect(await resolver.resolve6('n6-fd00-0-0-0-0-0-0-1.minipaas.internal')).toEqual(['fd00::1']);
    expect(dns.get(`${name}.`)).toEqual(['10.0.0.5:30001', '[fd00::1]:30002']);
  });

  it('follows replace() at once, and an emptied name has no records', async () => {
    const name = dns.nameFor('rolling');
    dns.replace(new Map([[name, ['127.0.0.1:1111']]]));
    expect((await resolver.resolveSrv(name)).map((r) => r.port)).toEqual([1111]);
    dns.replace(new Map([[name, ['127.0.0.1:2222', '127.0.0.1:3333']]]));
    expect((await resolver.resolveSrv(name)).map((r) => r.port).sort()).toEqual([2222, 3333]);
    dns.replace(new Map([[name, []]]));
    await expect(resolver.resolveSrv(name)).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('says NXDOMAIN for unknown names of its zone and refuses other zones', async () => {
    dns.replace(new Map());
    await expect(resolver.resolveSrv('nothing.minipaas.internal')).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
    await expect(resolver.resolve4('n-300-0-0-1.minipaas.internal')).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
    await expect(resolver.resolveSrv('example.com')).rejects.toMatchObject({ code: 'EREFUSED' });
    for (const proto of ['__proto__', 'constructor'])
      await expect(resolver.resolveSrv(`${proto}.minipaas.internal`)).rejects.toMatchObject({
        code: 'ENOTFOUND',
      });
  });

  it('answers over TCP when the records do not fit in a UDP answer', async () => {
    const name = dns.nameFor('many');
    const eps = Array.from({ length: 60 }, (_, i) => `10.1.${i}.${i + 1}:${20000 + i}`);
    dns.replace(new Map([[name, eps]]));
    const srv = await resolver.resolveSrv(name);
    expect(srv).toHaveLength(60);
    expect(srv.map((r) => r.port).sort()).toEqual(eps.map((_, i) => 20000 + i));
  });

  it('drops garbage and oversized TCP frames, and keeps answering', async () => {
    const name = dns.nameFor('still');
    dns.replace(new Map([[name, ['127.0.0.1:4444']]]));
    const udp = createSocket('udp4');
    const garbage = [
      Buffer.alloc(0),
      Buffer.from([1, 2, 3]),
      Buffer.alloc(12, 0xff),
      // a question whose label claims more bytes than the packet has
      Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 60]), Buffer.from('abc')]),
      // a compression pointer in a question (not allowed there)
      Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 33, 0, 1]),
    ];
    for (const g of garbage) await new Promise<void>((r) => udp.send(g, port, '127.0.0.1', () => r()));
    udp.close();
    await new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        const frame = Buffer.alloc(2);
        frame.writeUInt16BE(60_000, 0);
        s.write(frame);
      });
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    expect((await resolver.resolveSrv(name)).map((r) => r.port)).toEqual([4444]);
  });
});
