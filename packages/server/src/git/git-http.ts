/**
 * git's smart HTTP protocol through `git http-backend` (the CGI program of the git package; no pack
 * protocol written here): the request becomes the CGI environment and stdin, the CGI answer (headers,
 * blank line, body) is streamed back. A push also gets a private unix socket the pre-receive hook talks
 * to (push-repos.ts): {@link HookHandler} receives the ref updates and answers with log lines and an
 * exit code.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MinipaasError } from '@minipaas/core';
import { baseGitEnv } from './git-runner.ts';

/** One ref a push updates (`old` or `new` is 40 zeros for a creation or a deletion). */
export interface RefUpdate {
  old: string;
  new: string;
  ref: string;
}

export const ZERO_SHA = '0'.repeat(40);

/**
 * What a push's pre-receive hook asks minipaasd: `say` writes a line to the pusher's terminal
 * (`remote: ...`); the result is the hook's exit code (non-zero refuses every ref of the push).
 */
export type HookHandler = (
  updates: RefUpdate[],
  objectEnv: Record<string, string>,
  say: (line: string) => void,
) => Promise<number>;

export interface BackendRequest {
  /** GIT_PROJECT_ROOT: the directory holding the repositories. */
  projectRoot: string;
  /** `/<repo>.git/info/refs`, `/<repo>.git/git-receive-pack`, ... */
  pathInfo: string;
  method: string;
  query: string;
  headers: IncomingMessage['headers'];
  body: Readable | null;
  /** The authenticated user (REMOTE_USER: enables receive-pack). */
  remoteUser: string;
  remoteAddr: string;
  /** Largest request body accepted. */
  maxBodyBytes: number;
  /** Set for a push: the handler the pre-receive hook reaches. */
  onPush?: HookHandler;
}

/** Runs `git http-backend` for one request and streams its answer to `res`. */
export async function serveGitHttp(r: BackendRequest, res: ServerResponse): Promise<void> {
  let hook: { socketPath: string; close(): Promise<void> } | null = null;
  if (r.onPush) hook = await openHookSocket(r.onPush);
  try {
    await runBackend(r, res, hook?.socketPath);
  } finally {
    await hook?.close();
  }
}

function runBackend(r: BackendRequest, res: ServerResponse, hookSocket: string | undefined): Promise<void> {
  const header = (name: string) => {
    const v = r.headers[name];
    return Array.isArray(v) ? v.join(', ') : (v ?? '');
  };
  const env: Record<string, string> = {
    ...baseGitEnv(),
    GIT_PROJECT_ROOT: r.projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: r.pathInfo,
    REQUEST_METHOD: r.method,
    QUERY_STRING: r.query,
    CONTENT_TYPE: header('content-type'),
    REMOTE_USER: r.remoteUser,
    REMOTE_ADDR: r.remoteAddr,
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    ...(header('content-encoding') ? { HTTP_CONTENT_ENCODING: header('content-encoding') } : {}),
    ...(header('git-protocol') ? { GIT_PROTOCOL: header('git-protocol') } : {}),
    ...(header('content-length') ? { CONTENT_LENGTH: header('content-length') } : {}),
    ...(hookSocket ? { MINIPAAS_GIT_HOOK_SOCKET: hookSocket } : {}),
  };
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    let received = 0;
    if (r.body) {
      r.body.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > r.maxBodyBytes) {
          child.kill('SIGKILL');
          r.body?.destroy();
        }
      });
      r.body.pipe(child.stdin).on('error', () => undefined);
    } else child.stdin.end();
    child.stdin.on('error', () => undefined);

    // CGI answer: headers up to the blank line, then the body.
    let head = Buffer.alloc(0);
    let headerDone = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headerDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const text = head.toString('latin1');
      const crlf = text.indexOf('\r\n\r\n');
      const lf = text.indexOf('\n\n');
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
      if (end < 0) {
        if (head.length > 64 * 1024) child.kill('SIGKILL');
        return;
      }
      headerDone = true;
      let status = 200;
      for (const l of text.slice(0, end).split(/\r?\n/)) {
        const colon = l.indexOf(':');
        if (colon <= 0) continue;
        const k = l.slice(0, colon).trim();
        const v = l.slice(colon + 1).trim();
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10) || 500;
        else res.setHeader(k, v);
      }
      res.statusCode = status;
      res.write(head.subarray(end));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (received > r.maxBodyBytes && !res.headersSent) {
        reject(
          new MinipaasError(
            'MINIPAAS_ERR_PAYLOAD_TOO_LARGE',
            `the push is larger than ${r.maxBodyBytes} bytes`,
          ),
        );
        return;
      }
      if (!headerDone) {
        if (res.headersSent) res.end();
        else
          reject(
            new MinipaasError(
              'MINIPAAS_ERR_INTERNAL',
              `git http-backend failed (exit ${code}): ${stderr.trim().slice(0, 300)}`,
            ),
          );
        return;
      }
      res.end();
      resolve();
    });
  });
}

/**
 * A unix socket in a private directory for one push: the hook sends `{updates, env}` as one JSON line;
 * each `say` goes back as `{line}`, the result as `{exit}`.
 */
async function openHookSocket(handler: HookHandler): Promise<{ socketPath: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'minipaas-push-'));
  const socketPath = join(dir, `${randomBytes(8).toString('hex')}.sock`);
  const server: Server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    const send = (msg: object) => {
      if (!conn.destroyed) conn.write(`${JSON.stringify(msg)}\n`);
    };
    conn.on('error', () => undefined);
    conn.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 1024 * 1024) conn.destroy();
        return;
      }
      let msg: { updates?: unknown; env?: unknown };
      try {
        msg = JSON.parse(buf.slice(0, nl)) as typeof msg;
      } catch {
        conn.destroy();
        return;
      }
      buf = '';
      const updates = parseUpdates(typeof msg.updates === 'string' ? msg.updates : '');
      const env: Record<string, string> = {};
      if (msg.env && typeof msg.env === 'object')
        for (const [k, v] of Object.entries(msg.env))
          if (
            typeof v === 'string' &&
            ['GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_QUARANTINE_PATH'].includes(k)
          )
            env[k] = v;
      handler(updates, env, (line) => send({ line }))
        .then(
          (exit) => send({ exit }),
          (err: unknown) => {
            send({ line: `!     ${(err as Error).message}` });
            send({ exit: 1 });
          },
        )
        .finally(() => conn.end());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `old new ref` lines of a pre-receive hook's stdin. */
export function parseUpdates(text: string): RefUpdate[] {
  const out: RefUpdate[] = [];
  for (const l of text.split('\n')) {
    const m = /^([0-9a-f]{40}) ([0-9a-f]{40}) (refs\/\S+)$/.exec(l.trim());
    if (m) out.push({ old: m[1] as string, new: m[2] as string, ref: m[3] as string });
  }
  return out;
}
