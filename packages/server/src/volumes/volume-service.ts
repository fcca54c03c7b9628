/**
 * Persistent volumes of projects (docs/volumes.md): rows in `volumes`, data in
 * `MINIPAAS_HOME/volumes/{project}/{volume id}` for every runtime, mounted into every app of the project
 * (or the one app a volume is attached to) through {@link VolumeService.mountsFor}.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import {
  dockerVolumeName,
  type MinipaasConfig,
  MinipaasError,
  UUID_RE,
  VOLUME_NAME_RE,
  type VolumeMount,
} from '@minipaas/core';
import type { Kysely, Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { AppRow, AppService } from '../services/app-service.ts';
import type { ProjectService } from '../services/project-service.ts';
import type { Database, VolumesTable } from '../store/schema.ts';
import { backupStream, restoreInto } from './volume-archive.ts';
import {
  listDir,
  makeDirs,
  openFile,
  removePath,
  type UploadedFile,
  type UploadPart,
  upload,
  usage,
  type VolumeEntry,
} from './volume-files.ts';

export type VolumeRow = Selectable<VolumesTable>;

/** A volume as the API shows it. */
export interface VolumeView {
  id: string;
  projectId: string;
  /** The one app it is mounted into; null: every app of the project. */
  appId: string | null;
  name: string;
  mountPath: string;
  /** Size measured at the last upload, delete or stats call. */
  sizeBytes: number;
  maxSizeBytes: number;
  /** Environment variable carrying the data directory to process-runtime instances. */
  envVar: string;
  /** The Docker named volume of the docker runtime. */
  dockerVolume: string;
  createdAt: string;
  updatedAt: string;
}

/** `GET /volumes/{id}/stats`. */
export interface VolumeStats {
  id: string;
  name: string;
  sizeBytes: number;
  maxSizeBytes: number;
  files: number;
  directories: number;
  /** Used share of the quota, in percent (may pass 100 when the app itself wrote past the quota). */
  usedPercent: number;
  /** True when the app wrote past the quota (uploads are refused then). */
  overQuota: boolean;
}

/** Input of `POST /projects/{id}/volumes`. */
export interface CreateVolumeInput {
  name: string;
  mountPath?: string | undefined;
  maxSizeBytes?: number | undefined;
  /** Attach to one app of the project (id or name). */
  app?: string | undefined;
}

export interface VolumeServiceDeps {
  db: Kysely<Database>;
  config: MinipaasConfig;
  projects: ProjectService;
  apps: AppService;
  log: Logger;
}

const num = (v: number | string) => Number(v);

/** `MINIPAAS_VOLUME_<NAME>`: the variable a process instance finds its volume's directory in. */
export function volumeEnvVar(name: string): string {
  return `MINIPAAS_VOLUME_${name.toUpperCase().replace(/-/g, '_')}`;
}

/** Checks a mount path: absolute, normalised, not `/`, printable, at most 255 characters. */
export function checkMountPath(p: string): string {
  const ok =
    p.length <= 255 &&
    p.startsWith('/') &&
    p !== '/' &&
    /^[\x21-\x7e]+$/.test(p) &&
    posix.normalize(p) === p &&
    !p.endsWith('/') &&
    !p.split('/').includes('..');
  if (!ok)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `mount path "${p.slice(0, 80).replace(/[^\x20-\x7e]/g, '?')}" must be an absolute, normalised path other than / (at most 255 printable characters)`,
    );
  return p;
}

export class VolumeService {
  readonly #d: VolumeServiceDeps;
  constructor(deps: VolumeServiceDeps) {
    this.#d = deps;
  }

  /** Where a volume's data lives on this host. */
  hostPath(v: Pick<VolumeRow, 'project_id' | 'id'>): string {
    return join(this.#d.config.home, 'volumes', v.project_id, v.id);
  }

  view(v: VolumeRow): VolumeView {
    return {
      id: v.id,
      projectId: v.project_id,
      appId: v.app_id,
      name: v.name,
      mountPath: v.mount_path,
      sizeBytes: num(v.size_bytes),
      maxSizeBytes: num(v.max_size_bytes),
      envVar: volumeEnvVar(v.name),
      dockerVolume: dockerVolumeName({ project: v.project_id, id: v.id }),
      createdAt: new Date(v.created_at).toISOString(),
      updatedAt: new Date(v.updated_at).toISOString(),
    };
  }

  async create(projectRef: string, input: CreateVolumeInput): Promise<VolumeRow> {
    const project = await this.#d.projects.get(projectRef);
    if (!VOLUME_NAME_RE.test(input.name))
      throw new MinipaasError(
        'MINIPAAS_ERR_VALIDATION',
        'volume name must be 1-63 lower-case letters, digits or "-", starting with a letter or digit',
      );
    const mountPath = checkMountPath(input.mountPath ?? '/app/storage');
    let appId: string | null = null;
    if (input.app !== undefined) {
      const app = await this.#d.apps.get(input.app);
      if (app.project_id !== project.id)
        throw new MinipaasError(
          'MINIPAAS_ERR_VALIDATION',
          `app "${app.name}" is not in project "${project.slug}"`,
        );
      appId = app.id;
    }
    const clash = await this.#d.db
      .selectFrom('volumes')
      .select('id')
      .where('project_id', '=', project.id)
      .where('name', '=', input.name)
      .executeTakeFirst();
    // Two volumes mounted into the same app cannot share a mount path.
    const sameMount = await this.#d.db
      .selectFrom('volumes')
      .select('name')
      .where('project_id', '=', project.id)
      .where('mount_path', '=', mountPath)
      .where((eb) =>
        appId === null ? eb.val(true) : eb.or([eb('app_id', 'is', null), eb('app_id', '=', appId)]),
      )
      .executeTakeFirst();
    if (!clash && sameMount)
      throw new MinipaasError(
        'MINIPAAS_ERR_CONFLICT',
        `volume "${sameMount.name}" is already mounted at ${mountPath} in the same apps: choose another mountPath`,
      );
    if (clash)
      throw new MinipaasError(
        'MINIPAAS_ERR_VOLUME_EXISTS',
        `project "${project.slug}" already has a volume named "${input.name}"`,
      );
    const id = randomUUID();
    const dir = this.hostPath({ project_id: project.id, id });
    await mkdir(join(this.#d.config.home, 'volumes'), { recursive: true, mode: 0o711 });
    await mkdir(join(this.#d.config.home, 'volumes', project.id), { recursive: true, mode: 0o711 });
    await mkdir(dir, { mode: 0o750 });
    await chmod(dir, 0o750);
    try {
      return await this.#d.db
        .insertInto('volumes')
        .values({
          id,
          project_id: project.id,
          app_id: appId,
          name: input.name,
          mount_path: mountPath,
          max_size_bytes: input.maxSizeBytes ?? this.#d.config.volumes.defaultMaxSizeBytes,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      if ((err as { code?: string }).code === '23505')
        throw new MinipaasError(
          'MINIPAAS_ERR_VOLUME_EXISTS',
          `project "${project.slug}" already has a volume named "${input.name}"`,
        );
      throw err;
    }
  }

  async list(projectRef: string): Promise<VolumeRow[]> {
    const project = await this.#d.projects.get(projectRef);
    return this.#d.db
      .selectFrom('volumes')
      .selectAll()
      .where('project_id', '=', project.id)
      .orderBy('name')
      .execute();
  }

  /** A volume by id (a UUID; anything else is not found). */
  async get(id: string): Promise<VolumeRow> {
    const row = UUID_RE.test(id)
      ? await this.#d.db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirst()
      : undefined;
    if (!row)
      throw new MinipaasError(
        'MINIPAAS_ERR_VOLUME_NOT_FOUND',
        `volume "${id.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}" not found`,
      );
    return row;
  }

  /** Deletes the volume and its data (apps mounting it get it unmounted at their next deploy). */
  async delete(id: string): Promise<void> {
    const row = await this.get(id);
    await this.#d.db.deleteFrom('volumes').where('id', '=', row.id).execute();
    await rm(this.hostPath(row), { recursive: true, force: true });
    this.#d.log.info({ volume: row.id, name: row.name }, 'volume deleted');
  }

  /** Deletes the volumes attached to `app` (before the app is deleted: their rows would go with it). */
  async deleteForApp(app: Pick<AppRow, 'id'>): Promise<void> {
    const rows = await this.#d.db.selectFrom('volumes').selectAll().where('app_id', '=', app.id).execute();
    for (const row of rows) await this.delete(row.id);
  }

  /**
   * Removes volume directories whose volume no longer exists (its project was deleted, or a delete was
   * cut short) and leftovers of interrupted restores. Only UUID-named directories are considered.
   */
  async sweepOrphans(): Promise<string[]> {
    const base = join(this.#d.config.home, 'volumes');
    const removed: string[] = [];
    let projects: string[];
    try {
      projects = await readdir(base);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
      throw err;
    }
    const known = new Set((await this.#d.db.selectFrom('volumes').select('id').execute()).map((r) => r.id));
    for (const project of projects) {
      const dir = join(base, project);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const stale = name.startsWith('.restore-') || (UUID_RE.test(name) && !known.has(name));
        if (!stale) continue;
        await rm(join(dir, name), { recursive: true, force: true });
        removed.push(join(dir, name));
      }
    }
    if (removed.length > 0) this.#d.log.info({ removed }, 'removed the data of deleted volumes');
    return removed;
  }

  /** The volumes mounted into `app`: those of its project without an app, and those attached to it. */
  async mountsFor(app: Pick<AppRow, 'id' | 'project_id'>): Promise<VolumeMount[]> {
    const rows = await this.#d.db
      .selectFrom('volumes')
      .selectAll()
      .where('project_id', '=', app.project_id)
      .where((eb) => eb.or([eb('app_id', 'is', null), eb('app_id', '=', app.id)]))
      .orderBy('name')
      .execute();
    return rows.map((v) => ({
      id: v.id,
      project: v.project_id,
      name: v.name,
      target: v.mount_path,
      hostPath: this.hostPath(v),
    }));
  }

  async stats(id: string): Promise<VolumeStats> {
    const row = await this.get(id);
    const u = await usage(this.hostPath(row));
    await this.#recordSize(row.id, u.bytes);
    const max = num(row.max_size_bytes);
    return {
      id: row.id,
      name: row.name,
      sizeBytes: u.bytes,
      maxSizeBytes: max,
      files: u.files,
      directories: u.directories,
      usedPercent: Math.round((u.bytes / max) * 10000) / 100,
      overQuota: u.bytes > max,
    };
  }

  async listFiles(id: string, path: unknown): Promise<VolumeEntry[]> {
    const row = await this.get(id);
    return listDir(this.hostPath(row), path);
  }

  async download(id: string, path: unknown) {
    const row = await this.get(id);
    return openFile(this.hostPath(row), path);
  }

  async mkdir(id: string, path: unknown): Promise<number> {
    const row = await this.get(id);
    return makeDirs(this.hostPath(row), path);
  }

  async remove(id: string, path: unknown, recursive: boolean): Promise<void> {
    const row = await this.get(id);
    await removePath(this.hostPath(row), path, recursive);
    const prefix = typeof path === 'string' ? path.replace(/\/$/, '') : '';
    await this.#d.db
      .deleteFrom('volume_files')
      .where('volume_id', '=', row.id)
      .where((eb) =>
        eb.or([eb('file_path', '=', prefix), eb('file_path', 'like', `${likeEscape(prefix)}/%`)]),
      )
      .execute();
    await this.#recordSize(row.id, (await usage(this.hostPath(row))).bytes);
  }

  async upload(
    id: string,
    dir: unknown,
    parts: AsyncIterable<UploadPart & { mimeType?: string }>,
  ): Promise<UploadedFile[]> {
    const row = await this.get(id);
    const mimes = new Map<string, string>();
    async function* remember() {
      for await (const p of parts) {
        if (p.mimeType) mimes.set(p.name, p.mimeType);
        yield p;
      }
    }
    const files = await upload(this.hostPath(row), dir, remember(), {
      maxBytes: num(row.max_size_bytes),
      volume: row.name,
    });
    for (const f of files) {
      const name = f.path.split('/').at(-1) as string;
      await this.#d.db
        .insertInto('volume_files')
        .values({
          volume_id: row.id,
          file_path: f.path,
          file_size: f.size,
          mime_type: mimes.get(name) ?? null,
        })
        .onConflict((oc) =>
          oc.columns(['volume_id', 'file_path']).doUpdateSet({
            file_size: f.size,
            mime_type: mimes.get(name) ?? null,
            uploaded_at: new Date(),
          }),
        )
        .execute();
    }
    await this.#recordSize(row.id, (await usage(this.hostPath(row))).bytes);
    return files;
  }

  async backup(id: string): Promise<{ row: VolumeRow; stream: Readable }> {
    const row = await this.get(id);
    return { row, stream: await backupStream(this.hostPath(row)) };
  }

  async restore(id: string, body: Readable): Promise<{ entries: number; bytes: number }> {
    const row = await this.get(id);
    const { uploads, volumes } = this.#d.config;
    const max = Math.min(num(row.max_size_bytes), volumes.maxRestoreBytes);
    const result = await restoreInto(this.hostPath(row), body, {
      maxUnpackedBytes: max,
      maxFileBytes: max,
      maxEntries: 1_000_000,
      maxRatio: uploads.maxRatio,
      maxCompressedBytes: max,
    });
    await this.#d.db.deleteFrom('volume_files').where('volume_id', '=', row.id).execute();
    await this.#recordSize(row.id, result.bytes);
    this.#d.log.info({ volume: row.id, ...result }, 'volume restored');
    return result;
  }

  async #recordSize(id: string, bytes: number): Promise<void> {
    await this.#d.db
      .updateTable('volumes')
      .set({ size_bytes: bytes, updated_at: new Date() })
      .where('id', '=', id)
      .execute();
  }
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}
