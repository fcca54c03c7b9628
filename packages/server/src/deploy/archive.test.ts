import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rawTar } from '../../../../test/helpers/tarball.ts';
import { extractArchive, inspectArchive, safeEntryPath } from './archive.ts';

const limits = { maxUnpackedBytes: 1024 * 1024, maxEntries: 100 };

describe('archive safety', () => {
  it('accepts a normal tree and extracts it', async () => {
    const buf = rawTar([
      { name: 'app/', type: '5' },
      { name: 'app/index.html', body: '<h1>hi</h1>' },
      { name: 'link', type: '2', linkname: 'app/index.html' },
    ]);
    expect(await inspectArchive(buf, limits)).toEqual(['app/', 'app/index.html', 'link']);
    const dir = await mkdtemp(join(tmpdir(), 'mp-arch-'));
    await extractArchive(buf, dir);
    expect(await readFile(join(dir, 'link'), 'utf8')).toBe('<h1>hi</h1>');
  });

  it.each([
    ['../evil.txt', /path traversal/],
    ['app/../../evil.txt', /path traversal/],
    ['/etc/evil', /absolute path/],
  ])('refuses entry %s', async (name, re) => {
    const dir = await mkdtemp(join(tmpdir(), 'mp-arch-'));
    await expect(inspectArchive(rawTar([{ name, body: 'x' }]), limits)).rejects.toThrow(re);
    expect(existsSync(join(dir, '..', 'evil.txt'))).toBe(false);
  });

  it('refuses links that leave the tree, devices, garbage and oversized trees', async () => {
    await expect(
      inspectArchive(rawTar([{ name: 'l', type: '2', linkname: '../../etc/passwd' }]), limits),
    ).rejects.toThrow(/outside/);
    await expect(
      inspectArchive(rawTar([{ name: 'l', type: '2', linkname: '/etc/passwd' }]), limits),
    ).rejects.toThrow(/absolute/);
    await expect(inspectArchive(rawTar([{ name: 'dev', type: '3' }]), limits)).rejects.toThrow(
      /unsupported type/,
    );
    await expect(inspectArchive(Buffer.from('definitely not a tarball'), limits)).rejects.toMatchObject({
      code: 'MINIPAAS_ERR_BAD_ARCHIVE',
    });
    await expect(inspectArchive(Buffer.alloc(0), limits)).rejects.toThrow(/empty/);
    const big = rawTar([{ name: 'big', body: 'x'.repeat(2000) }]);
    await expect(inspectArchive(big, { maxUnpackedBytes: 1000, maxEntries: 10 })).rejects.toThrow(
      /more than 1000 bytes/,
    );
  });

  it('normalises safe paths', () => {
    expect(safeEntryPath('./a/./c')).toBe('a/c');
    expect(() => safeEntryPath('./a/b/../c')).toThrow(/traversal/);
    expect(() => safeEntryPath('a\\..\\..\\x')).toThrow(/traversal/);
  });
});
