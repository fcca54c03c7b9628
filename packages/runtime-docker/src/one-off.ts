/**
 * One-off containers of a release (Procfile `release:`, app.json predeploy/postdeploy on the docker runtime):
 * `/bin/sh -c COMMAND` in the release's image with the app's env on the platform network, output streamed
 * line by line, the exit code returned. They carry `minipaas.oneoff` instead of `minipaas.app`, so the
 * supervision loop neither restarts nor removes them as orphans; they are removed when they end.
 */
import type Docker from 'dockerode';
import { FrameParser } from './container-logs.ts';

/** A one-off command to run in an image. */
export interface OneOffRun {
  app: string;
  /** Image reference (`minipaas/APP:vN`). */
  image: string;
  command: string;
  env: Record<string, string>;
  /** Docker network to join (the platform's `docker.network`). */
  network?: string;
  /** Memory limit in MiB (the app's). */
  memoryMb?: number;
  onLine(line: string): void;
  signal: AbortSignal;
  timeoutMs: number;
}

/** How a one-off ended: its exit code (null when it was killed for the timeout or the signal). */
export interface OneOffResult {
  code: number | null;
  timedOut: boolean;
}

/** The label one-off containers carry (value: the app). */
export const ONE_OFF_LABEL = 'minipaas.oneoff';

export async function runOneOff(docker: Docker, r: OneOffRun): Promise<OneOffResult> {
  const c = await docker.createContainer({
    Image: r.image,
    Cmd: ['/bin/sh', '-c', r.command],
    Env: Object.entries(r.env).map(([k, v]) => `${k}=${v}`),
    Labels: { [ONE_OFF_LABEL]: r.app },
    HostConfig: {
      ...(r.network ? { NetworkMode: r.network } : {}),
      ...(r.memoryMb ? { Memory: r.memoryMb * 1024 * 1024, MemorySwap: r.memoryMb * 1024 * 1024 } : {}),
    },
  });
  let timedOut = false;
  const kill = () => void c.kill({ signal: 'SIGKILL' }).catch(() => undefined);
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, r.timeoutMs);
  r.signal.addEventListener('abort', kill);
  try {
    // Attach before start so no output is lost; a multiplexed stream (no TTY).
    const stream = (await c.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const parser = new FrameParser({ instance: 'release', processType: 'release' }, (l) => r.onLine(l.line));
    const drained = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => parser.push(chunk));
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    await c.start();
    const exit = (await c.wait()) as { StatusCode: number };
    await Promise.race([drained, new Promise((res) => setTimeout(res, 2000))]);
    parser.end();
    return { code: timedOut || r.signal.aborted ? null : exit.StatusCode, timedOut };
  } finally {
    clearTimeout(timer);
    r.signal.removeEventListener('abort', kill);
    await c.remove({ force: true }).catch(() => undefined);
  }
}
