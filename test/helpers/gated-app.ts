/**
 * A Node app whose build waits for the test: its package.json `install` script (run by `npm install`, as the
 * app's user, during the build) blocks until a gate file exists, and records its pid first. So a test holds
 * builds in `building` for as long as it needs, with no sleeps and no timing assertions.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawTar } from './tarball.ts';

export interface Gates {
  dir: string;
  /** A gzipped tarball of an app whose build waits for gate `label`. */
  app(label: string, opts?: { failBuild?: boolean }): Buffer;
  /** Lets build `label` finish. */
  open(label: string): Promise<void>;
  /** Pid of build `label`'s waiting install script, once it started. */
  pid(label: string): number | null;
  /** True once build `label` started waiting. */
  started(label: string): boolean;
  close(): Promise<void>;
}

export async function createGates(): Promise<Gates> {
  const dir = await mkdtemp(join(tmpdir(), 'mp-gates-'));
  await chmod(dir, 0o777); // the build's unprivileged user writes its pid file here
  const pidFile = (label: string) => join(dir, `${label}.pid`);
  return {
    dir,
    app(label, opts = {}) {
      const gate = JSON.stringify(join(dir, `${label}.open`));
      const gateJs = `const fs = require('node:fs');
fs.writeFileSync(${JSON.stringify(pidFile(label))}, String(process.pid));
const t = setInterval(() => {
  if (fs.existsSync(${gate})) { clearInterval(t); process.exit(${opts.failBuild ? 3 : 0}); }
}, 50);
`;
      const server = `require('node:http').createServer((q, s) => s.end('${label}')).listen(process.env.PORT);\n`;
      const pkg = JSON.stringify({
        name: `gated-${label}`,
        version: '1.0.0',
        private: true,
        scripts: { install: 'node gate.js', start: 'node server.js' },
        // a local dependency: the stack detector adds an install step only for apps with dependencies
        dependencies: { 'local-dep': 'file:./local-dep' },
      });
      return rawTar([
        { name: 'package.json', body: pkg },
        { name: 'gate.js', body: gateJs },
        { name: 'server.js', body: server },
        { name: 'local-dep/', type: '5' },
        { name: 'local-dep/package.json', body: '{"name":"local-dep","version":"1.0.0"}' },
      ]);
    },
    async open(label) {
      await writeFile(join(dir, `${label}.open`), '');
    },
    pid(label) {
      try {
        const n = Number.parseInt(readFileSync(pidFile(label), 'utf8'), 10);
        return Number.isInteger(n) ? n : null;
      } catch {
        return null;
      }
    },
    started(label) {
      return existsSync(pidFile(label));
    },
    async close() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
