import type { FastifyReply, FastifyRequest } from 'fastify';

export interface SseStream {
  send(data: unknown, event?: string): void;
  /** Aborted when the client disconnects. */
  signal: AbortSignal;
  close(): void;
}

/** Switches a reply to Server-Sent Events. Heartbeat comments keep proxies from closing the stream. */
export function openSse(req: FastifyRequest, reply: FastifyReply): SseStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': connected\n\n');
  const ac = new AbortController();
  const beat = setInterval(() => res.write(': ping\n\n'), 15_000);
  const done = () => {
    clearInterval(beat);
    if (!ac.signal.aborted) ac.abort();
  };
  req.raw.on('close', done);
  res.on('close', done);
  return {
    signal: ac.signal,
    send(data, event) {
      if (ac.signal.aborted) return;
      res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
    },
    close() {
      done();
      res.end();
    },
  };
}
