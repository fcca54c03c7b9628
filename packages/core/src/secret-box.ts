/**
 * Secrets at rest (docs/security.md, ADR 0010): AES-256-GCM under the platform's master key.
 *
 * The key ring lives in `MINIPAAS_HOME/master.key` (0600, created on first use): one key per line,
 * `<kid> <base64 32 bytes>`, the newest first. `MINIPAAS_MASTER_KEY` (base64 of 32 bytes) replaces the
 * file's current key. A sealed value is `mp1.<kid>.<iv>.<tag>.<ciphertext>` (base64url), bound to a
 * context string (AAD: e.g. the app id and the variable name), so a sealed value copied to another app or
 * another name does not open. `secrets:rotate-key` puts a new key first and re-seals everything; the
 * previous key stays second in the ring so processes that still hold old values can open them.
 *
 * Only node builtins: the agent, minipaasd and the build worker all load it.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MinipaasError } from './errors.ts';

const PREFIX = 'mp1';
/** Keys kept in the ring: the current one and the one before the last rotation. */
const RING_SIZE = 2;

interface Key {
  kid: string;
  key: Buffer;
}

/** The key id: 8 hex digits of the key's SHA-256 (names the key without revealing it). */
function kidOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

function parseKey(b64: string, where: string): Buffer {
  const key = Buffer.from(b64.trim(), 'base64');
  if (key.length !== 32)
    throw new MinipaasError(
      'MINIPAAS_ERR_SECRET',
      `${where} must be 32 bytes in base64 (it has ${key.length})`,
    );
  return key;
}

/** Path of the key ring under `home`. */
export function masterKeyFile(home: string): string {
  return join(home, 'master.key');
}

/** Seals and opens secret values with the platform's master key ring. */
export class SecretBox {
  readonly #file: string;
  readonly #envKey: Buffer | null;
  #ring: Key[] = [];

  /**
   * @param home MINIPAAS_HOME (the ring is `master.key` in it; created when missing).
   * @param envKey `MINIPAAS_MASTER_KEY` (base64 of 32 bytes), which then is the current key.
   */
  constructor(home: string, envKey?: string) {
    this.#file = masterKeyFile(home);
    this.#envKey = envKey ? parseKey(envKey, 'MINIPAAS_MASTER_KEY') : null;
    this.#load(true);
  }

  /** Id of the key new values are sealed with. */
  get currentKid(): string {
    return (this.#ring[0] as Key).kid;
  }

  /** Whether `value` is a sealed value (rather than plaintext). */
  static isSealed(value: string): boolean {
    return value.startsWith(`${PREFIX}.`);
  }

  seal(plaintext: string, context: string): string {
    const { kid, key } = this.#ring[0] as Key;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from(context));
    const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
    return [
      PREFIX,
      kid,
      iv.toString('base64url'),
      c.getAuthTag().toString('base64url'),
      ct.toString('base64url'),
    ].join('.');
  }

  open(sealed: string, context: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 5 || parts[0] !== PREFIX)
      throw new MinipaasError('MINIPAAS_ERR_SECRET', 'not a sealed secret value');
    const [, kid, iv, tag, ct] = parts as [string, string, string, string, string];
    let k = this.#ring.find((r) => r.kid === kid);
    if (!k) {
      this.#load(false); // another process may have rotated the key
      k = this.#ring.find((r) => r.kid === kid);
    }
    if (!k)
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET',
        `the master key ${kid} that sealed this value is not in the key ring`,
      );
    try {
      const d = createDecipheriv('aes-256-gcm', k.key, Buffer.from(iv, 'base64url'));
      d.setAAD(Buffer.from(context));
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new MinipaasError(
        'MINIPAAS_ERR_SECRET',
        'a sealed secret value does not open (tampered or moved)',
      );
    }
  }

  /**
   * Puts a new random key first in the ring file (the previous one stays second) and returns its id.
   * With `MINIPAAS_MASTER_KEY` set the key comes from the environment: rotating is refused.
   */
  rotate(): string {
    if (this.#envKey)
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        'the master key comes from MINIPAAS_MASTER_KEY: set a new value there instead of rotating',
      );
    const key = randomBytes(32);
    const ring = [{ kid: kidOf(key), key }, ...this.#ring].slice(0, RING_SIZE);
    this.#write(ring);
    this.#ring = ring;
    return kidOf(key);
  }

  #load(create: boolean): void {
    let ring: Key[] = [];
    try {
      ring = readFileSync(this.#file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          const [kid, b64] = l.trim().split(/\s+/) as [string, string | undefined];
          const key = parseKey(b64 ?? '', `${this.#file} (key ${kid})`);
          return { kid: kidOf(key), key };
        });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (ring.length === 0 && create && !this.#envKey) {
      const key = randomBytes(32);
      ring = [{ kid: kidOf(key), key }];
      try {
        // wx: two processes starting at once keep the first one's key
        writeFileSync(this.#file, `${ring.map((k) => `${k.kid} ${k.key.toString('base64')}`).join('\n')}\n`, {
          mode: 0o600,
          flag: 'wx',
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        this.#load(false);
        return;
      }
    }
    if (this.#envKey)
      ring = [
        { kid: kidOf(this.#envKey), key: this.#envKey },
        ...ring.filter((k) => k.kid !== kidOf(this.#envKey as Buffer)),
      ];
    if (ring.length === 0) throw new MinipaasError('MINIPAAS_ERR_SECRET', `no master key in ${this.#file}`);
    this.#ring = ring;
  }

  #write(ring: Key[]): void {
    const tmp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${ring.map((k) => `${k.kid} ${k.key.toString('base64')}`).join('\n')}\n`, {
      mode: 0o600,
    });
    renameSync(tmp, this.#file);
  }
}
