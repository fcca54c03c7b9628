/** Output helpers: the only place that writes to stdout/stderr. Tables, JSON, colours, times. */

/** Where output goes (injected so commands stay testable). */
export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** True when stdout is a terminal (colours, progress, prompts). */
  readonly isTTY: boolean;
}

export const stdio: Output = {
  out: (text) => {
    process.stdout.write(text);
  },
  err: (text) => {
    process.stderr.write(text);
  },
  get isTTY() {
    return Boolean(process.stdout.isTTY);
  },
};

/** Prints one line to stdout. */
export function line(o: Output, text = ''): void {
  o.out(`${text}\n`);
}

/** Prints a value as pretty JSON. */
export function json(o: Output, value: unknown): void {
  o.out(`${JSON.stringify(value, null, 2)}\n`);
}

function colorEnabled(tty: boolean): boolean {
  if (process.env.NO_COLOR) return false;
  if (process.env.FORCE_COLOR && process.env.FORCE_COLOR !== '0') return true;
  return tty;
}

type Paint = (s: string) => string;
export interface Colors {
  bold: Paint;
  dim: Paint;
  red: Paint;
  green: Paint;
  yellow: Paint;
  cyan: Paint;
  /** A stable colour per key (e.g. instance id). */
  byKey: (key: string) => Paint;
}

const sgr =
  (open: number, close: number): Paint =>
  (s) =>
    `\x1b[${open}m${s}\x1b[${close}m`;
const plain: Paint = (s) => s;
const PALETTE = [36, 35, 33, 32, 34, 96, 95, 93, 92, 94];

/** Colour functions; identity functions when the stream is not a TTY or NO_COLOR is set. */
export function colors(tty: boolean): Colors {
  if (!colorEnabled(tty)) {
    return {
      bold: plain,
      dim: plain,
      red: plain,
      green: plain,
      yellow: plain,
      cyan: plain,
      byKey: () => plain,
    };
  }
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
    byKey: (key) => {
      let h = 0;
      for (const ch of key) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
      return sgr(PALETTE[h % PALETTE.length] as number, 39);
    },
  };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
const ANSI = /\x1b\[[0-9;]*m/g;
const visibleLength = (s: string): number => s.replace(ANSI, '').length;

/** Formats rows as a left-aligned text table with a header row. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const fmt = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleLength(c))))
      .join('  ')
      .trimEnd();
  return `${[fmt(headers), ...rows.map(fmt)].join('\n')}\n`;
}

/** `1h 2m`, `3m 4s`, `5s` for a duration in milliseconds. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** `3m 4s ago` for an ISO timestamp, or `-`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '-' : `${duration(now - t)} ago`;
}

/** Human size: `512 B`, `12.3 KB`, `4.5 MB`. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** `-` for empty values in tables. */
export function cell(v: unknown): string {
  return v === null || v === undefined || v === '' ? '-' : String(v);
}
