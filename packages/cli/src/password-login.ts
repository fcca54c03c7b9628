/**
 * `minipaas login` with an email and password: logs in like the browser does (`POST /auth/login`),
 * uses that short session once to create an API token for the CLI (`POST /api/v1/tokens`, with the
 * session's CSRF token), then ends the session (`POST /auth/logout`). Only the token is kept.
 * Also the password prompt (no echo) and `--password-stdin`.
 */
import { hostname } from 'node:os';
import { CliError } from './cli-error.ts';

export interface CliToken {
  id: string;
  name: string;
  role: string;
  token: string;
  expiresAt: string | null;
}

/** Names of the tokens `minipaas login` creates (`logout` revokes only those). */
export const LOGIN_TOKEN_PREFIX = 'minipaas login on ';

/** Longest password read from stdin or the prompt. */
const MAX_PASSWORD = 1024;

async function call(url: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    const reason = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
    throw new CliError(`cannot reach ${new URL(url).origin}: ${reason}`);
  }
  if (res.ok) return res;
  const text = await res.text().catch(() => '');
  let message = `${res.status} from ${new URL(url).origin}`;
  try {
    const data = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof data.error?.message === 'string') message = data.error.message;
  } catch {
    // not JSON: keep the status line
  }
  throw new CliError(message);
}

/** Exchanges an email and password for a new API token of that user. */
export async function tokenFromPassword(opts: {
  url: string;
  email: string;
  password: string;
  /** Token expiry in days (none when undefined). */
  expiresInDays?: number | undefined;
  tokenName?: string;
}): Promise<CliToken> {
  const login = await call(`${opts.url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ login: opts.email, password: opts.password }),
  });
  const session = (await login.json()) as { csrfToken?: unknown };
  const cookie = login.headers
    .getSetCookie()
    .map((c) => c.split(';')[0] as string)
    .find((c) => c.startsWith('minipaas_session='));
  if (!cookie || typeof session.csrfToken !== 'string')
    throw new CliError(`${opts.url} did not answer the login with a session`);
  const headers = { cookie, 'x-csrf-token': session.csrfToken, accept: 'application/json' };
  try {
    const res = await call(`${opts.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: opts.tokenName ?? `${LOGIN_TOKEN_PREFIX}${hostname().slice(0, 60)}`,
        ...(opts.expiresInDays ? { expiresInDays: opts.expiresInDays } : {}),
      }),
    });
    const t = (await res.json()) as Partial<CliToken>;
    if (typeof t.token !== 'string' || typeof t.id !== 'string')
      throw new CliError(`${opts.url} did not answer with a token`);
    return {
      id: t.id,
      name: String(t.name),
      role: String(t.role),
      token: t.token,
      expiresAt: typeof t.expiresAt === 'string' ? t.expiresAt : null,
    };
  } finally {
    // The session was only the way to the token.
    await call(`${opts.url}/auth/logout`, { method: 'POST', headers }).catch(() => undefined);
  }
}

/** Reads a password from stdin (`--password-stdin`): everything up to EOF, one trailing newline dropped. */
export async function readPasswordStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += chunk.toString();
    if (text.length > MAX_PASSWORD + 2)
      throw new CliError(`the password is longer than ${MAX_PASSWORD} characters`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (!password) throw new CliError('no password on stdin');
  return password;
}

/** Asks for a password on the terminal without echoing it. */
export function promptPassword(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new CliError('no terminal to ask for the password: use --password-stdin');
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (err: Error | null) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003' || ch === '\u0004') return done(new CliError('login cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
        if (value.length > MAX_PASSWORD)
          return done(new CliError(`the password is longer than ${MAX_PASSWORD} characters`));
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
