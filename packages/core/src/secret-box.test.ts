import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { masterKeyFile, SecretBox } from './secret-box.ts';

const homes: string[] = [];
const home = () => {
  const h = mkdtempSync(join(tmpdir(), 'mp-box-'));
  homes.push(h);
  return h;
};
afterEach(() => {
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true });
});

describe('SecretBox', () => {
  it('creates a 0600 key ring, seals without the plaintext, and opens only in the same context', () => {
    const h = home();
    const box = new SecretBox(h);
    expect(statSync(masterKeyFile(h)).mode & 0o777).toBe(0o600);
    const sealed = box.seal('hunter2-very-secret', 'app1:DB_PASSWORD');
    expect(SecretBox.isSealed(sealed)).toBe(true);
    expect(sealed).not.toContain('hunter2');
    expect(box.seal('hunter2-very-secret', 'app1:DB_PASSWORD')).not.toBe(sealed); // random IV
    expect(box.open(sealed, 'app1:DB_PASSWORD')).toBe('hunter2-very-secret');
    // moved to another app or name, or tampered: refused
    expect(() => box.open(sealed, 'app2:DB_PASSWORD')).toThrow(/does not open/);
    const parts = sealed.split('.');
    parts[4] = Buffer.from('x').toString('base64url') + (parts[4] as string).slice(2);
    expect(() => box.open(parts.join('.'), 'app1:DB_PASSWORD')).toThrow(/does not open/);
    expect(() => box.open('plain', 'app1:DB_PASSWORD')).toThrow(/not a sealed/);
    // a second process on the same home uses the same key
    expect(new SecretBox(h).open(sealed, 'app1:DB_PASSWORD')).toBe('hunter2-very-secret');
  });

  it('rotates: new values under the new key, old ones still open; other processes reload the ring', () => {
    const h = home();
    const a = new SecretBox(h);
    const b = new SecretBox(h);
    const old = a.seal('v', 'c');
    const before = a.currentKid;
    const kid = a.rotate();
    expect(kid).not.toBe(before);
    const fresh = a.seal('v2', 'c');
    expect(fresh.split('.')[1]).toBe(kid);
    expect(a.open(old, 'c')).toBe('v');
    expect(b.open(fresh, 'c')).toBe('v2'); // b had only the old key: it re-reads the ring
    expect(readFileSync(masterKeyFile(h), 'utf8').trim().split('\n')).toHaveLength(2);
    a.rotate();
    expect(() => new SecretBox(h).open(old, 'c')).toThrow(/not in the key ring/); // two rotations ago
  });

  it('takes MINIPAAS_MASTER_KEY as the current key, refuses a bad one and refuses to rotate it', () => {
    const key = randomBytes(32).toString('base64');
    const box = new SecretBox(home(), key);
    expect(box.open(box.seal('x', 'c'), 'c')).toBe('x');
    expect(() => box.rotate()).toThrow(/MINIPAAS_MASTER_KEY/);
    expect(() => new SecretBox(home(), 'c2hvcnQ=')).toThrow(/32 bytes/);
  });

  it('refuses a corrupt key ring', () => {
    const h = home();
    writeFileSync(masterKeyFile(h), 'abcd notbase64-and-short\n');
    expect(() => new SecretBox(h)).toThrow(/32 bytes/);
  });
});
