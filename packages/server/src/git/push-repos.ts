/**
 * The repositories `git push` writes to (docs/git.md): one bare repository per app under
 * MINIPAAS_HOME/git/repos, served by `git http-backend`. Every one uses the platform's pre-receive hook
 * (core.hooksPath): the hook hands the pushed refs to minipaasd over a per-push unix socket, prints the
 * deploy log it gets back (git shows it as `remote: ...`) and exits non-zero when the deploy fails, so
 * the push is refused and the ref keeps its previous commit.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from './git-runner.ts';

/**
 * The hook (CommonJS, run by the platform's Node): sends the ref updates and the quarantine environment,
 * writes every line it receives to stderr, exits with the code minipaasd sends (1 when the socket
 * closes without one).
 */
const HOOK_JS = `'use strict';
const net = require('node:net');
const socket = process.env.MINIPAAS_GIT_HOOK_SOCKET;
if (!socket) {
  process.stderr.write('minipaas: pushes are accepted only through the platform\\n');
  process.exit(1);
}
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const env = {};
  for (const k of ['GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_QUARANTINE_PATH'])
    if (process.env[k]) env[k] = process.env[k];
  const s = net.connect(socket);
  let code = 1;
  let buf = '';
  s.setEncoding('utf8');
  s.on('connect', () => s.write(JSON.stringify({ updates: input, env }) + '\\n'));
  s.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (typeof msg.line === 'string') process.stderr.write(msg.line + '\\n');
      if (typeof msg.exit === 'number') code = msg.exit;
    }
  });
  s.on('error', (e) => { process.stderr.write('minipaas: ' + e.message + '\\n'); });
  s.on('close', () => process.exit(code));
});
`;

export class PushRepos {
  readonly root: string;
  readonly #hooks: string;
  readonly #nodeBin: string;
  readonly #maxInputBytes: number;
  #installed: Promise<void> | null = null;

  /**
   * @param home MINIPAAS_HOME
   * @param nodeBin the Node binary that runs the hook
   * @param maxInputBytes largest pack a push may send (`uploads.maxBytes`)
   */
  constructor(home: string, nodeBin: string, maxInputBytes: number) {
    this.root = join(home, 'git', 'repos');
    this.#hooks = join(home, 'git', 'hooks');
    this.#nodeBin = nodeBin;
    this.#maxInputBytes = maxInputBytes;
  }

  /** The app's push repository (relative to {@link root}: `<app id>.git`). */
  name(appId: string): string {
    return `${appId}.git`;
  }

  path(appId: string): string {
    return join(this.root, this.name(appId));
  }

  /** Creates the app's repository (and the shared hook) when missing. */
  async ensure(appId: string): Promise<string> {
    this.#installed ??= this.#installHooks();
    await this.#installed;
    const dir = this.path(appId);
    if (existsSync(join(dir, 'HEAD'))) return dir;
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await git(['init', '--quiet', '--bare', '--initial-branch=main', dir]);
    const set = (k: string, v: string) => git(['--git-dir', dir, 'config', k, v]);
    await set('core.hooksPath', this.#hooks);
    await set('http.receivepack', 'true');
    await set('receive.fsckObjects', 'true');
    await set('receive.maxInputSize', String(this.#maxInputBytes));
    await set('gc.auto', '0');
    return dir;
  }

  async #installHooks(): Promise<void> {
    await mkdir(this.#hooks, { recursive: true, mode: 0o700 });
    const js = join(this.#hooks, 'minipaas-pre-receive.cjs');
    await writeFile(js, HOOK_JS, { mode: 0o644 });
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const hook = join(this.#hooks, 'pre-receive');
    await writeFile(hook, `#!/bin/sh\nexec ${q(this.#nodeBin)} ${q(js)}\n`, { mode: 0o755 });
    await chmod(hook, 0o755);
  }
}
