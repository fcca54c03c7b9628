/**
 * Password hashes of users (`users.password_hash`): scrypt from node:crypto, a memory-hard KDF, stored
 * as `scrypt$N$r$p$SALT$HASH` with SALT (16 random bytes) and HASH (32 bytes) in base64url.
 * `verifyPassword` compares in constant time and refuses parameters outside sane bounds, so a
 * corrupted row cannot make a login burn unbounded memory or time.
 */
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

/** Cost parameters of new hashes: N=2^15, r=8, p=1 (32 MiB, tens of milliseconds). */
export const SCRYPT_PARAMS = { N: 32768, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Longest password hashed (longer ones are refused before any work). */
export const MAX_PASSWORD_BYTES = 1024;

function derive(
  password: string,
  salt: Buffer,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  const opts: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, opts, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
    throw new RangeError(`a password is at most ${MAX_PASSWORD_BYTES} bytes`);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, SCRYPT_PARAMS);
  const { N, r, p } = SCRYPT_PARAMS;
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

const HASH_RE = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{32,128})$/;

/** True when `password` matches `stored`; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const m = HASH_RE.exec(stored);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // N a power of two between 2^10 and 2^20, r and p small: bounded memory and time.
  if (N < 1024 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const expected = Buffer.from(m[5] as string, 'base64url');
  const key = await derive(password, Buffer.from(m[4] as string, 'base64url'), { N, r, p });
  return key.length === expected.length && timingSafeEqual(key, expected);
}
