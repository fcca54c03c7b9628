// A tiny web app for the MiniPaaS quickstart. It listens on $PORT like any Heroku-style app.
const http = require('node:http');

const port = Number(process.env.PORT || 3000);
const started = new Date().toISOString();

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, pid: process.pid }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-served-by': String(process.pid) });
  res.end(`<!doctype html>
<title>Hello from MiniPaaS</title>
<h1>Hello from MiniPaaS</h1>
<p>pid ${process.pid} on port ${port}, up since ${started}</p>
<p>release ${process.env.MINIPAAS_RELEASE || 'local'}, path ${req.url}</p>
`);
});

server.listen(port, () => console.log(`hello-node listening on port ${port}`));

function shutdown(signal) {
  console.log(`received ${signal}, closing`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
