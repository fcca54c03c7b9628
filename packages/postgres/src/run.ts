/**
 * The one way this package runs the PostgreSQL programs (initdb, pg_ctl, id, useradd): argument arrays,
 * never a shell string, a timeout, optional uid/gid, and the program's output in the error when it fails.
 */
import { execFile } from 'node:child_process';

export interface RunOptions {
  /** Run as this user (the caller must be root). */
  uid?: number | undefined;
  gid?: number | undefined;
  env?: NodeJS.ProcessEnv;
  /** Kill the program after this long (default 120 s). */
  timeoutMs?: number;
}

/** Runs `file args`; resolves with stdout, rejects with an Error naming the program and its output. */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 4 * 1024 * 1024,
        ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
        ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const output = `${stderr}${stdout}`.trim().split('\n').slice(-8).join('\n');
        const how = err.killed ? 'timed out' : `failed (${err.code ?? err.signal ?? err.message})`;
        reject(new Error(`${file} ${how}${output ? `:\n${output}` : ''}`, { cause: err }));
      },
    );
  });
}
