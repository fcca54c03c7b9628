#!/usr/bin/env node
// MiniPaaS built-in static file server for static-site apps: serves the directory given as the first
// argument on $PORT. Plain JavaScript on purpose: it runs as the app's unprivileged user with no build.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const root = resolve(process.argv[2] ?? '.');
const port = Number(process.env.PORT ?? 8000);
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.map': 'application/json',
  '.xml': 'application/xml',
};

async function find(urlPath) {
  let rel;
  try {
    rel = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return null;
  }
  const full = normalize(join(root, rel));
  if (full !== root && !full.startsWith(root + sep)) return null;
  for (const candidate of [full, join(full, 'index.html'), `${full}.html`]) {
    try {
      const s = await stat(candidate);
      if (s.isFile()) return { file: candidate, size: s.size };
    } catch {}
  }
  return null;
}

createServer(async (req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  const hit = await find(req.url ?? '/');
  if (!hit) {
    const notFound = await find('/404.html');
    res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' });
    if (notFound && req.method === 'GET') createReadStream(notFound.file).pipe(res);
    else res.end('<h1>404 Not Found</h1>');
    return;
  }
  res.writeHead(200, {
    'content-type': TYPES[extname(hit.file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': hit.size,
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(hit.file).pipe(res);
}).listen(port, () => {
  process.stdout.write(`static site ${root} listening on port ${port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
