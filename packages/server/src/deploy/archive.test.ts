import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawTar } from '../../../../test/helpers/tarball.ts';
import { type ArchiveLimits, extractArchive, safeEntryPath } from './archive.ts';

const MiB = 1024 * 1024;
const limits: ArchiveLimits = {
  maxUnpackedBytes: 16 * MiB,
  maxFileBytes: 8 * MiB,
  maxEntries: 100,
  maxRatio: 200,
};

let root: string;
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mp-arch-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes the archive to a file and unpacks it into a fresh dir under `root/out-N/app`. */
async function unpack(archive: Buffer, l: ArchiveLimits = limits) {
  const base = join(root, `out-${++n}`);
  const file = join(root, `upload-${n}`);
  await writeFile(file, archive);
  const dir = join(base, 'app');
  const result = extractArchive(file, dir, l);
  return { result, dir, base };
}

async function refused(archive: Buffer, l: ArchiveLimits = limits) {
  const { result, dir, base } = await unpack(archive, l);
  const err = await result.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'the archive was accepted').not.toBeNull();
  // Nothing partly written is left, nothing escaped next to it.
  expect(existsSync(dir)).toBe(false);
  expect(existsSync(join(base, 'evil.txt'))).toBe(false);
  return err as { code: string; message: string };
}

describe('archive safety', () => {
  it('accepts a normal tree and extracts it, gzipped or plain', async () => {
    const entries = [
      { name: 'app/', type: '5' as const },
      { name: 'app/index.html', body: '<h1>hi</h1>' },
      { name: 'link', type: '2' as const, linkname: 'app/index.html' },
    ];
    for (const gzip of [true, false]) {
      const { result, dir } = await unpack(rawTar(entries, gzip));
      expect(await result).toEqual({ entries: 3, bytes: 11 });
      expect(await readFile(join(dir, 'link'), 'utf8')).toBe('<h1>hi</h1>');
    }
  });

  it.each([
    ['../evil.txt', /path traversal/],
    ['app/../../evil.txt', /path traversal/],
    ['/etc/evil', /absolute path/],
  ])('refuses entry %s', async (name, re) => {
    const err = await refused(
      rawTar([
        { name: 'ok.txt', body: 'fine' },
        { name, body: 'x' },
      ]),
    );
    expect(err.code).toBe('MINIPAAS_ERR_BAD_ARCHIVE');
    expect(err.message).toMatch(re);
  });

  it('refuses links that leave the tree, devices, garbage, empty and doubly compressed archives', async () => {
    expect((await refused(rawTar([{ name: 'l', type: '2', linkname: '../../etc/passwd' }]))).message).toMatch(
      /outside/,
    );
    expect((await refused(rawTar([{ name: 'l', type: '2', linkname: '/etc/passwd' }]))).message).toMatch(
      /absolute/,
    );
    expect((await refused(rawTar([{ name: 'dev', type: '3' }]))).message).toMatch(/unsupported type/);
    expect(await refused(Buffer.from('definitely not a tarball'))).toMatchObject({
      code: 'MINIPAAS_ERR_BAD_ARCHIVE',
    });
    expect((await refused(Buffer.alloc(0))).message).toMatch(/empty/);
    expect((await refused(rawTar([]))).code).toBe('MINIPAAS_ERR_BAD_ARCHIVE');
    // The tar parser would gunzip an inner gzip by itself, without the limits.
    const twice = await refused(gzipSync(rawTar([{ name: 'a', body: 'x' }])));
    expect(twice.message).toMatch(/compressed twice/);
  });

  it('normalises safe paths', () => {
    expect(safeEntryPath('./a/./c')).toBe('a/c');
    expect(() => safeEntryPath('./a/b/../c')).toThrow(/traversal/);
    expect(() => safeEntryPath('a\\..\\..\\x')).toThrow(/traversal/);
  });
});

describe('archive limits, checked while unpacking', () => {
  const files = (count: number, size: number, fill = 'x') =>
    Array.from({ length: count }, (_, i) => ({ name: `f${i}.txt`, body: fill.repeat(size) }));

  it('stops at the entry over uploads.maxEntries and deletes what was written', async () => {
    const err = await refused(rawTar(files(5, 10)), { ...limits, maxEntries: 4 });
    expect(err).toMatchObject({
      code: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
      message: 'archive has more than 4 entries (uploads.maxEntries)',
    });
  });

  it('refuses a file over uploads.maxFileBytes before writing it', async () => {
    const err = await refused(rawTar([{ name: 'ok.txt', body: 'x' }, ...files(1, 3000)]), {
      ...limits,
      maxFileBytes: 2048,
    });
    expect(err).toMatchObject({
      code: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
      message: 'archive entry "f0.txt" is larger than 2048 bytes (uploads.maxFileBytes)',
    });
  });

  it('stops when the files together pass uploads.maxUnpackedBytes', async () => {
    const l = { ...limits, maxUnpackedBytes: 2500, maxFileBytes: 2048 };
    const { result } = await unpack(rawTar(files(2, 1000)), l);
    expect(await result).toEqual({ entries: 2, bytes: 2000 });
    const err = await refused(rawTar(files(3, 1000)), l);
    expect(err).toMatchObject({
      code: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
      message: 'archive unpacks to more than 2500 bytes (uploads.maxUnpackedBytes)',
    });
  });

  it('refuses a compression ratio over uploads.maxRatio once more than 1 MiB is unpacked', async () => {
    // 4 MiB of zeros gzip about 1000:1; the same tree uncompressed is accepted (no ratio to speak of).
    const zeros = [{ name: 'zeros.bin', body: '\0'.repeat(4 * MiB) }];
    const err = await refused(rawTar(zeros));
    expect(err).toMatchObject({
      code: 'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
      message: 'archive expands more than 200 times its compressed size (uploads.maxRatio)',
    });
    expect(await (await unpack(rawTar(zeros, false))).result).toEqual({ entries: 1, bytes: 4 * MiB });
    // A small, very compressible tree stays under the 1 MiB grace.
    expect(await (await unpack(rawTar([{ name: 'z', body: '\0'.repeat(512 * 1024) }]))).result).toEqual({
      entries: 1,
      bytes: 512 * 1024,
    });
  });

  it('bounds the unpacked stream itself (data hidden after the end of the archive)', async () => {
    const tar = rawTar([{ name: 'a', body: 'x' }], false);
    const padded = Buffer.concat([tar, Buffer.alloc(64 * 1024)]);
    const err = await refused(padded, { ...limits, maxUnpackedBytes: 1024, maxEntries: 1 });
    expect(err.message).toBe('archive unpacks to more than 1024 bytes (uploads.maxUnpackedBytes)');
  });
});
