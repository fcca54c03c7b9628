import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { list as listTar } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listFiles, packDirectory } from './pack.ts';

let root: string;
function put(rel: string, text = 'x'): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), text);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'minipaas-pack-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('listFiles', () => {
  it('honours root and nested .gitignore files with git semantics', () => {
    put('.gitignore', '*.log\n/dist\nsecret.txt\n!keep.log\n');
    put('server.js');
    put('app.log');
    put('keep.log');
    put('dist/bundle.js');
    put('secret.txt');
    put('lib/dist/inner.js'); // `/dist` is anchored to the root
    put('lib/debug.log');
    put('lib/.gitignore', 'generated/\n!secret.txt\n*.tmp\n');
    put('lib/secret.txt'); // re-included by the deeper file
    put('lib/generated/a.js');
    put('lib/x.tmp');
    put('other/x.tmp'); // `*.tmp` only applies under lib/
    put('.minipaasignore', 'local.env\n');
    put('local.env');
    expect(listFiles(root)).toEqual([
      '.gitignore',
      '.minipaasignore',
      'keep.log',
      'lib/',
      'lib/.gitignore',
      'lib/dist/',
      'lib/dist/inner.js',
      'lib/secret.txt',
      'other/',
      'other/x.tmp',
      'server.js',
    ]);
  });

  it('always leaves out .git and node_modules, even nested or re-included', () => {
    put('.gitignore', '!node_modules\n');
    put('.git/HEAD');
    put('node_modules/x/index.js');
    put('packages/a/node_modules/y.js');
    put('packages/a/index.js');
    put('empty/.keep');
    expect(listFiles(root)).toEqual([
      '.gitignore',
      'empty/',
      'empty/.keep',
      'packages/',
      'packages/a/',
      'packages/a/index.js',
    ]);
  });

  it('cannot re-include a file inside an excluded directory', () => {
    put('.gitignore', 'build/\n!build/keep.js\n');
    put('build/keep.js');
    put('index.html');
    expect(listFiles(root)).toEqual(['.gitignore', 'index.html']);
  });
});

describe('packDirectory', () => {
  it('produces a gzipped tarball with relative, portable entries and counts files', async () => {
    put('.gitignore', 'ignored.txt\n');
    put('Procfile', 'web: node server.js\n');
    put('public/index.html', '<h1>hi</h1>');
    put('ignored.txt');
    mkdirSync(join(root, 'empty-dir'));
    symlinkSync('public/index.html', join(root, 'link.html'));
    const res = await packDirectory(root);
    expect(res.files).toBe(4);
    expect(res.data.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const entries: Array<{ path: string; type: string; uid: number | undefined }> = [];
    await new Promise<void>((resolve, reject) => {
      const parser = listTar({
        onReadEntry: (e) => entries.push({ path: e.path, type: e.type, uid: e.uid }),
      });
      parser.on('end', () => resolve());
      parser.on('error', reject);
      Readable.from([res.data]).pipe(parser as unknown as NodeJS.WritableStream);
    });
    expect(entries.map((e) => `${e.type}:${e.path}`)).toEqual([
      'File:.gitignore',
      'File:Procfile',
      'Directory:empty-dir/',
      'SymbolicLink:link.html',
      'Directory:public/',
      'File:public/index.html',
    ]);
    expect(entries.every((e) => !e.path.startsWith('/') && !e.path.includes('..'))).toBe(true);
  });

  it('reports nothing to pack for an empty directory or one with only ignored files', async () => {
    expect(await packDirectory(root)).toEqual({ data: Buffer.alloc(0), files: 0, rawBytes: 0 });
    put('node_modules/x.js');
    put('.git/HEAD');
    expect((await packDirectory(root)).files).toBe(0);
  });
});
