/**
 * Builds tar archives byte by byte, so tests can craft hostile entries (`../` paths, absolute paths,
 * links leaving the tree) that well-behaved tar writers refuse to produce.
 */
import { gzipSync } from 'node:zlib';

export interface RawEntry {
  name: string;
  body?: string;
  /** '0' file, '2' symlink, '5' directory, '1' hard link, '3' char device */
  type?: '0' | '1' | '2' | '3' | '5';
  linkname?: string;
}

function header(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (s: string, off: number, len: number) =>
    h.write(s, off, Math.min(len, Buffer.byteLength(s)), 'utf8');
  const oct = (n: number, len: number) => `${n.toString(8).padStart(len - 1, '0')}\0`;
  put(e.name, 0, 100);
  put(oct(e.type === '5' ? 0o755 : 0o644, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(Math.floor(Date.now() / 1000), 12), 136, 12);
  h.fill(' ', 148, 156);
  put(e.type ?? '0', 156, 1);
  if (e.linkname) put(e.linkname, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

export function rawTar(entries: RawEntry[], gzip = true): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '', 'utf8');
    const size = e.type && e.type !== '0' ? 0 : body.length;
    parts.push(header(e, size));
    if (size > 0) {
      parts.push(body);
      const pad = (512 - (size % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(1024, 0));
  const tar = Buffer.concat(parts);
  return gzip ? gzipSync(tar) : tar;
}

/**
 * The 512-byte header of a regular file of `size` bytes, for tests that stream huge archives: the
 * caller writes the body and pads it to a multiple of 512 bytes (and ends with two zero blocks).
 */
export function fileHeader(name: string, size: number): Buffer {
  return header({ name }, size);
}
