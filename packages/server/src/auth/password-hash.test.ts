import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from './password-hash.ts';

describe('password hashes', () => {
  it('verifies the right password only, with a fresh salt each time', async () => {
    const a = await hashPassword('correct horse battery staple');
    const b = await hashPassword('correct horse battery staple');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery staple', a)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('refuses malformed hashes and hostile parameters without doing the work', async () => {
    const good = await hashPassword('pw');
    const parts = good.split('$');
    for (const bad of [
      '',
      'plain',
      good.replace('scrypt$', 'bcrypt$'),
      ['scrypt', String(1 << 24), ...parts.slice(2)].join('$'), // 2 GiB of memory
      ['scrypt', '1000', ...parts.slice(2)].join('$'), // not a power of two
      ['scrypt', parts[1], '999', ...parts.slice(3)].join('$'),
    ])
      expect(await verifyPassword('pw', bad as string)).toBe(false);
    expect(await verifyPassword('x'.repeat(2000), good)).toBe(false);
    await expect(hashPassword('x'.repeat(2000))).rejects.toThrow(/at most 1024 bytes/);
  });
});
