/**
 * `minipaas volumes`, `volumes:create`, `volumes:ls`, `volumes:put`, `volumes:get`, `volumes:rm`,
 * `volumes:stats`, `volumes:destroy`, `volumes:backup`, `volumes:restore` (docs/volumes.md). A VOLUME is
 * a volume name in the project (`--project`, default "default") or a volume id.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { type ApiClient, ApiError } from '../api-client.ts';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { ago, bytes, json, line, table } from '../output.ts';

/** A volume as the API returns it. */
export interface VolumeView {
  id: string;
  projectId: string;
  appId: string | null;
  name: string;
  mountPath: string;
  sizeBytes: number;
  maxSizeBytes: number;
  envVar: string;
  dockerVolume: string;
  createdAt: string;
}

interface EntryView {
  name: string;
  type: string;
  size: number;
  modifiedAt: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const seg = encodeURIComponent;

/** Parses a size: bytes, or a number with K/M/G/T (binary units, e.g. 512M, 5G). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(s.trim());
  if (!m) throw new CliError(`invalid size "${s}": use bytes or a number with K, M, G or T (e.g. 512M)`);
  const unit = (m[2] ?? 'b')[0]?.toLowerCase() ?? 'b';
  const mult = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit] ?? 1;
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`invalid size "${s}"`);
  return n;
}

async function resolveVolume(client: ApiClient, ref: string, project: string): Promise<VolumeView> {
  if (UUID.test(ref)) return client.request<VolumeView>('GET', `/api/v1/volumes/${seg(ref)}`);
  const { volumes } = await client.request<{ volumes: VolumeView[] }>(
    'GET',
    `/api/v1/projects/${seg(project)}/volumes`,
  );
  const v = volumes.find((x) => x.name === ref);
  if (!v)
    throw new CliError(
      `project "${project}" has no volume "${ref}" (list them with: minipaas volumes --project ${project})`,
    );
  return v;
}

const partHead = (boundary: string, file: string) =>
  Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${basename(file).replace(/["\r\n]/g, '_')}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
const CRLF = Buffer.from('\r\n');
const trailer = (boundary: string) => Buffer.from(`--${boundary}--\r\n`);

/** A multipart/form-data body streaming the files one after the other. */
async function* multipartBody(files: string[], boundary: string): AsyncGenerator<Uint8Array> {
  for (const f of files) {
    yield partHead(boundary, f);
    for await (const chunk of createReadStream(f)) yield chunk as Buffer;
    yield CRLF;
  }
  yield trailer(boundary);
}

/** The exact length of {@link multipartBody} for files of these sizes. */
function multipartLength(files: Array<{ path: string; size: number }>, boundary: string): number {
  let n = trailer(boundary).length;
  for (const f of files) n += partHead(boundary, f.path).length + f.size + CRLF.length;
  return n;
}

/** Streams a response body to `out` (a file, written beside it and renamed when complete), or stdout for `-`. */
async function saveBody(res: Response, out: string): Promise<void> {
  if (!res.body) throw new CliError('empty answer from the API');
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  if (out === '-') {
    await pipeline(body, process.stdout);
    return;
  }
  const tmp = `${out}.part-${randomBytes(4).toString('hex')}`;
  try {
    await pipeline(body, createWriteStream(tmp, { flags: 'wx' }));
    await rename(tmp, out);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Refuses an upload that cannot fit before sending it (the server checks again while the bytes arrive;
 * past 256 MiB it cuts a refused upload off instead of reading it, and the answer would be lost).
 * Files the upload replaces free their size, as on the server.
 */
async function checkQuota(
  client: ApiClient,
  v: VolumeView,
  dir: string,
  files: Array<{ path: string; size: number }>,
): Promise<void> {
  const stats = await client.request<{ sizeBytes: number; maxSizeBytes: number }>(
    'GET',
    `/api/v1/volumes/${v.id}/stats`,
  );
  let existing: EntryView[] = [];
  try {
    existing = (
      await client.request<{ entries: EntryView[] }>('GET', `/api/v1/volumes/${v.id}/files`, {
        query: { path: dir },
      })
    ).entries;
  } catch (err) {
    // A directory that does not exist yet (404) holds nothing to replace.
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  const replaced = files.reduce((n, f) => {
    const old = existing.find((e) => e.type === 'file' && e.name === basename(f.path));
    return n + (old?.size ?? 0);
  }, 0);
  const total = files.reduce((n, f) => n + f.size, 0);
  if (stats.sizeBytes - replaced + total > stats.maxSizeBytes)
    throw new CliError(
      `upload of ${total} bytes exceeds the quota of volume "${v.name}": ${stats.sizeBytes} bytes used, limit ${stats.maxSizeBytes} bytes (nothing was sent)`,
    );
}

export function registerVolumes(program: Command, ctx: Context): void {
  const projectOpt = ['-p, --project <project>', 'project slug or id', 'default'] as const;

  program
    .command('volumes')
    .description('list the persistent volumes of a project')
    .option(...projectOpt)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas volumes\n  $ minipaas volumes --project shop --json')
    .action(async (opts: { project: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const { volumes } = await client.request<{ volumes: VolumeView[] }>(
        'GET',
        `/api/v1/projects/${seg(opts.project)}/volumes`,
      );
      if (opts.json) return json(ctx.out, { volumes });
      if (volumes.length === 0)
        return line(
          ctx.out,
          `No volumes in project "${opts.project}". Create one with: minipaas volumes:create NAME`,
        );
      ctx.out.out(
        table(
          ['NAME', 'MOUNT', 'SIZE', 'QUOTA', 'APP', 'ENV', 'CREATED'],
          volumes.map((v) => [
            v.name,
            v.mountPath,
            bytes(v.sizeBytes),
            bytes(v.maxSizeBytes),
            v.appId ? v.appId.slice(0, 8) : 'all apps',
            v.envVar,
            ago(v.createdAt),
          ]),
        ),
      );
    });

  program
    .command('volumes:create')
    .description('create a persistent volume mounted into the apps of a project')
    .argument('<name>', 'volume name: lower-case letters, digits and -')
    .option(...projectOpt)
    .option('-m, --mount <path>', 'mount path inside containers (default /app/storage)')
    .option('-s, --size <size>', 'quota, e.g. 512M or 5G (default 5G)')
    .option('-a, --app <app>', 'mount it into this app only (default: every app of the project)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Process-runtime apps find the volume's directory in MINIPAAS_VOLUME_<NAME>; docker apps at the mount path.
Apps pick a new volume up at their next deploy or restart.

Examples:
  $ minipaas volumes:create uploads --app web --size 1G
  $ minipaas volumes:create media --project shop --mount /app/media`,
    )
    .action(
      async (
        name: string,
        opts: { project: string; mount?: string; size?: string; app?: string; json?: boolean },
        c: Command,
      ) => {
        const client = await clientFor(c, ctx);
        const v = await client.request<VolumeView>('POST', `/api/v1/projects/${seg(opts.project)}/volumes`, {
          json: {
            name,
            ...(opts.mount ? { mountPath: opts.mount } : {}),
            ...(opts.size ? { maxSizeBytes: parseSize(opts.size) } : {}),
            ...(opts.app ? { app: opts.app } : {}),
          },
        });
        if (opts.json) return json(ctx.out, v);
        line(
          ctx.out,
          `Created volume ${v.name} (${bytes(v.maxSizeBytes)} quota), mounted at ${v.mountPath}.`,
        );
        line(
          ctx.out,
          `Process apps read its directory from ${v.envVar}. Redeploy or restart the apps to mount it.`,
        );
      },
    );

  program
    .command('volumes:ls')
    .description('list the files of a volume directory')
    .argument('<volume>', 'volume name or id')
    .argument('[path]', 'directory inside the volume', '')
    .option(...projectOpt)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas volumes:ls uploads\n  $ minipaas volumes:ls uploads images/2026',
    )
    .action(async (volume: string, path: string, opts: { project: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const v = await resolveVolume(client, volume, opts.project);
      const r = await client.request<{ entries: EntryView[] }>('GET', `/api/v1/volumes/${v.id}/files`, {
        query: { path },
      });
      if (opts.json) return json(ctx.out, r);
      if (r.entries.length === 0) return line(ctx.out, `${v.name}:/${path} is empty.`);
      ctx.out.out(
        table(
          ['NAME', 'TYPE', 'SIZE', 'MODIFIED'],
          r.entries.map((e) => [
            e.type === 'directory' ? `${e.name}/` : e.name,
            e.type,
            e.type === 'file' ? bytes(e.size) : '-',
            ago(e.modifiedAt),
          ]),
        ),
      );
    });

  program
    .command('volumes:put')
    .description('upload files into a volume (streamed; the quota is enforced)')
    .argument('<volume>', 'volume name or id')
    .argument('<files...>', 'local files to upload')
    .option('-d, --dir <path>', 'target directory inside the volume (created when missing)', '')
    .option(...projectOpt)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas volumes:put uploads ./logo.png\n  $ minipaas volumes:put uploads a.csv b.csv --dir imports/2026',
    )
    .action(
      async (
        volume: string,
        files: string[],
        opts: { dir: string; project: string; json?: boolean },
        c: Command,
      ) => {
        const client = await clientFor(c, ctx);
        const v = await resolveVolume(client, volume, opts.project);
        let total = 0;
        const sized: Array<{ path: string; size: number }> = [];
        for (const f of files) {
          const st = await stat(resolve(f)).catch(() => null);
          if (!st?.isFile()) throw new CliError(`${f} is not a file`);
          total += st.size;
          sized.push({ path: resolve(f), size: st.size });
        }
        await checkQuota(client, v, opts.dir, sized);
        if (!opts.json)
          line(
            ctx.out,
            `-----> Uploading ${files.length} file(s), ${bytes(total)}, to ${v.name}:/${opts.dir}`,
          );
        const boundary = `----minipaas${randomBytes(12).toString('hex')}`;
        const r = await client.request<{ files: Array<{ path: string; size: number }> }>(
          'POST',
          `/api/v1/volumes/${v.id}/files`,
          {
            query: { path: opts.dir },
            stream: multipartBody(
              sized.map((f) => f.path),
              boundary,
            ),
            contentLength: multipartLength(sized, boundary),
            contentType: `multipart/form-data; boundary=${boundary}`,
          },
        );
        if (opts.json) return json(ctx.out, r);
        for (const f of r.files) line(ctx.out, `  ${f.path} (${bytes(f.size)})`);
      },
    );

  program
    .command('volumes:get')
    .description('download a file from a volume (streamed)')
    .argument('<volume>', 'volume name or id')
    .argument('<path>', 'file inside the volume')
    .option('-o, --output <file>', 'where to write it ("-" for stdout; default: its name here)')
    .option(...projectOpt)
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas volumes:get uploads images/logo.png\n  $ minipaas volumes:get uploads data.json -o - | jq .',
    )
    .action(async (volume: string, path: string, opts: { output?: string; project: string }, c: Command) => {
      const client = await clientFor(c, ctx);
      const v = await resolveVolume(client, volume, opts.project);
      const out = opts.output ?? basename(path);
      const res = await client.raw('GET', `/api/v1/volumes/${v.id}/files/download`, { query: { path } });
      await saveBody(res, out);
      if (out !== '-') line(ctx.out, `Wrote ${out}.`);
    });

  program
    .command('volumes:rm')
    .description('delete a file or directory of a volume')
    .argument('<volume>', 'volume name or id')
    .argument('<path>', 'file or directory inside the volume')
    .option('-r, --recursive', 'delete a non-empty directory with everything in it')
    .option(...projectOpt)
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas volumes:rm uploads old.csv\n  $ minipaas volumes:rm uploads tmp -r',
    )
    .action(
      async (volume: string, path: string, opts: { recursive?: boolean; project: string }, c: Command) => {
        const client = await clientFor(c, ctx);
        const v = await resolveVolume(client, volume, opts.project);
        await client.request('DELETE', `/api/v1/volumes/${v.id}/files`, {
          query: { path, ...(opts.recursive ? { recursive: 'true' } : {}) },
        });
        line(ctx.out, `Deleted ${v.name}:/${path}.`);
      },
    );

  program
    .command('volumes:stats')
    .description('size, file count and quota of a volume')
    .argument('<volume>', 'volume name or id')
    .option(...projectOpt)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ minipaas volumes:stats uploads')
    .action(async (volume: string, opts: { project: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const v = await resolveVolume(client, volume, opts.project);
      const s = await client.request<{
        sizeBytes: number;
        maxSizeBytes: number;
        files: number;
        directories: number;
        usedPercent: number;
        overQuota: boolean;
      }>('GET', `/api/v1/volumes/${v.id}/stats`);
      if (opts.json) return json(ctx.out, s);
      line(ctx.out, `${v.name}: ${bytes(s.sizeBytes)} of ${bytes(s.maxSizeBytes)} (${s.usedPercent}%)`);
      line(ctx.out, `  ${s.files} files, ${s.directories} directories`);
      if (s.overQuota)
        line(ctx.out, '  over quota: the app wrote past it; uploads are refused until space is freed');
    });

  program
    .command('volumes:destroy')
    .description('delete a volume and all its data')
    .argument('<volume>', 'volume name or id')
    .requiredOption('--confirm <name>', 'the volume name again, to confirm')
    .option(...projectOpt)
    .addHelpText('after', '\nExamples:\n  $ minipaas volumes:destroy scratch --confirm scratch')
    .action(async (volume: string, opts: { confirm: string; project: string }, c: Command) => {
      const client = await clientFor(c, ctx);
      const v = await resolveVolume(client, volume, opts.project);
      if (opts.confirm !== v.name) throw new CliError(`--confirm must be the volume name "${v.name}"`);
      await client.request('DELETE', `/api/v1/volumes/${v.id}`);
      line(ctx.out, `Destroyed volume ${v.name} and its data.`);
    });

  program
    .command('volumes:backup')
    .description('write a volume to a tar.gz (streamed)')
    .argument('<volume>', 'volume name or id')
    .option('-o, --output <file>', 'tarball to write ("-" for stdout; default VOLUME-<time>.tar.gz)')
    .option(...projectOpt)
    .addHelpText(
      'after',
      '\nExamples:\n  $ minipaas volumes:backup uploads\n  $ minipaas volumes:backup uploads -o - > uploads.tar.gz',
    )
    .action(async (volume: string, opts: { output?: string; project: string }, c: Command) => {
      const client = await clientFor(c, ctx);
      const v = await resolveVolume(client, volume, opts.project);
      const stamp = new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
      const out = opts.output ?? `${v.name}-${stamp}.tar.gz`;
      const res = await client.raw('GET', `/api/v1/volumes/${v.id}/backup`);
      await saveBody(res, out);
      if (out !== '-') line(ctx.out, `Wrote ${out} (${bytes((await stat(out)).size)}).`);
    });

  program
    .command('volumes:restore')
    .description("replace a volume's contents with a tar.gz")
    .argument('<volume>', 'volume name or id')
    .argument('<file>', 'a tarball written by volumes:backup (or any tar.gz)')
    .option(...projectOpt)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Entries leaving the volume (.., absolute paths, links pointing out, devices) and tarballs unpacking past
the volume's quota are refused; a refused tarball changes nothing.

Examples:
  $ minipaas volumes:restore uploads uploads-20261124T080000Z.tar.gz`,
    )
    .action(async (volume: string, file: string, opts: { project: string; json?: boolean }, c: Command) => {
      const client = await clientFor(c, ctx);
      const v = await resolveVolume(client, volume, opts.project);
      const st = await stat(resolve(file)).catch(() => null);
      if (!st?.isFile()) throw new CliError(`${file} is not a file`);
      if (!opts.json) line(ctx.out, `-----> Restoring ${basename(file)} (${bytes(st.size)}) into ${v.name}`);
      const r = await client.request<{ entries: number; bytes: number }>(
        'POST',
        `/api/v1/volumes/${v.id}/restore`,
        {
          stream: createReadStream(resolve(file)) as AsyncIterable<Uint8Array>,
          contentLength: st.size,
          contentType: 'application/gzip',
        },
      );
      if (opts.json) return json(ctx.out, r);
      line(ctx.out, `Restored ${r.entries} entries, ${bytes(r.bytes)}.`);
    });
}
