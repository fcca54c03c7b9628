import { createServer } from 'node:net';

/** Hands out free TCP ports from a range; a port is never given to two holders until released. */
export class PortAllocator {
  readonly min: number;
  readonly max: number;
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(min: number, max: number) {
    if (min > max) throw new RangeError('port range: min must be <= max');
    this.min = min;
    this.max = max;
    this.cursor = min;
  }

  /** Ports currently handed out. */
  get inUse(): ReadonlySet<number> {
    return this.used;
  }

  /**
   * Returns a port that is not handed out and can be bound right now.
   * @throws Error when the whole range is exhausted.
   */
  async allocate(): Promise<number> {
    const size = this.max - this.min + 1;
    for (let i = 0; i < size; i++) {
      const port = this.cursor;
      this.cursor = port >= this.max ? this.min : port + 1;
      if (this.used.has(port)) continue;
      // Reserve before the async check so concurrent callers never get the same port.
      this.used.add(port);
      if (await canBind(port)) return port;
      this.used.delete(port);
    }
    throw new Error(`no free port in ${this.min}-${this.max}`);
  }

  release(port: number | null | undefined): void {
    if (port != null) this.used.delete(port);
  }
}

/** True when a TCP listener can be opened on the port (all interfaces). */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, exclusive: true }, () => {
      srv.close(() => resolve(true));
    });
  });
}
