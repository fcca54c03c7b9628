import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  apiUrlFor,
  localTarget,
  readCredentials,
  resolveTarget,
  sameServer,
  saveCredentials,
} from './credentials.ts';

const local = async () => ({ url: 'http://127.0.0.1:7070', token: 'local-admin' });
const saved = { url: 'https://paas.example.com', token: 'saved-token' };

describe('resolveTarget', () => {
  it('prefers flags over env over saved login over local defaults', async () => {
    const env = { MINIPAAS_URL: 'http://env.example:1', MINIPAAS_TOKEN: 'env-token' };
    expect(
      await resolveTarget({ flags: { url: 'http://flag:2', token: 'flag-token' }, env, saved, local }),
    ).toEqual({
      url: 'http://flag:2',
      token: 'flag-token',
      urlSource: 'flag',
      tokenSource: 'flag',
    });
    expect(await resolveTarget({ flags: {}, env, saved, local })).toMatchObject({
      url: 'http://env.example:1',
      token: 'env-token',
      urlSource: 'env',
      tokenSource: 'env',
    });
    expect(await resolveTarget({ flags: {}, env: {}, saved, local })).toMatchObject({
      url: 'https://paas.example.com',
      token: 'saved-token',
      tokenSource: 'saved',
    });
    expect(await resolveTarget({ flags: {}, env: {}, saved: undefined, local })).toMatchObject({
      url: 'http://127.0.0.1:7070',
      token: 'local-admin',
      urlSource: 'local',
      tokenSource: 'local',
    });
  });

  it('never sends a saved or local token to another server', async () => {
    const r = await resolveTarget({ flags: { url: 'http://elsewhere:7070' }, env: {}, saved, local });
    expect(r).toMatchObject({ url: 'http://elsewhere:7070', token: undefined, tokenSource: 'none' });
  });

  it('uses the local admin token for any loopback spelling of the local URL', async () => {
    const r = await resolveTarget({ flags: { url: 'localhost:7070' }, env: {}, saved: undefined, local });
    expect(r).toMatchObject({ url: 'http://localhost:7070', token: 'local-admin', tokenSource: 'local' });
  });

  it('does not read local defaults when flags and env give everything', async () => {
    const boom = async (): Promise<never> => {
      throw new Error('should not be called');
    };
    const r = await resolveTarget({
      flags: { url: 'http://x:1', token: 't' },
      env: {},
      saved: undefined,
      local: boom,
    });
    expect(r.token).toBe('t');
  });

  it('rejects non-http URLs', async () => {
    await expect(resolveTarget({ flags: { url: 'ftp://x' }, env: {}, saved, local })).rejects.toThrow(/http/);
  });
});

describe('credentials file', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('saves with mode 0600 and reads back', () => {
    dir = mkdtempSync(join(tmpdir(), 'minipaas-cred-'));
    const file = join(dir, 'minipaas', 'credentials.json');
    expect(readCredentials(file)).toBeUndefined();
    saveCredentials(file, saved);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readCredentials(file)).toEqual(saved);
    writeFileSync(file, 'nope');
    expect(() => readCredentials(file)).toThrow(/not valid/);
  });

  it('reads the local admin token from MINIPAAS_HOME', async () => {
    dir = mkdtempSync(join(tmpdir(), 'minipaas-home-'));
    writeFileSync(join(dir, 'admin-token'), 'mp_abc\n', { mode: 0o600 });
    expect(await localTarget({ MINIPAAS_HOME: dir, MINIPAAS_API_PORT: '7171' })).toEqual({
      url: 'http://127.0.0.1:7171',
      token: 'mp_abc',
    });
  });

  it('maps bind addresses to client URLs', () => {
    expect(apiUrlFor('0.0.0.0', 7070)).toBe('http://127.0.0.1:7070');
    expect(apiUrlFor('::1', 7070)).toBe('http://[::1]:7070');
    expect(sameServer('http://127.0.0.1:7070', 'http://localhost:7070/')).toBe(true);
    expect(sameServer('http://127.0.0.1:7070', 'http://127.0.0.1:7071')).toBe(false);
  });
});
