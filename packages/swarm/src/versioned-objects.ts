/**
 * Docker secrets and configs under content-hashed names (`NAME_<hash>`): `create` makes the object and
 * points the compose files at it, `delete` removes every version and the references, `prune` finds the
 * versions no service uses. Secrets and configs are immutable in Swarm, so a new content is a new name
 * and the next rollout moves the services to it.
 */
import { createHash } from 'node:crypto';
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';
import { isMap, isScalar, isSeq } from 'yaml';
import { ComposeFile } from './compose-file.ts';
import type { SwarmEnvironment } from './swarm-environment.ts';

export type ObjectKind = 'secret' | 'config';

/** Labels on the objects this toolkit creates. */
export const OBJECT_LABELS = { name: 'minipaas.name', hash: 'minipaas.hash' } as const;

/** One version of a secret or config in the swarm. */
export interface VersionedObject {
  id: string;
  /** Docker name, `NAME_<hash>`. */
  dockerName: string;
  /** The logical name (what compose files call it). */
  name: string;
  hash: string;
  createdAt: string;
  /** Swarm services that use this version. */
  usedBy: string[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$/;
const MAX_BYTES = 500 * 1024;

/** The content hash used in versioned names (12 hex digits of SHA-256). */
export function contentHash(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 12);
}

export function validateObjectName(kind: ObjectKind, name: string): void {
  if (!NAME_RE.test(name))
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `bad ${kind} name ${JSON.stringify(name)}: letters, digits, _ . - (up to 50, starting with a letter or digit)`,
    );
}

interface ApiObject {
  ID: string;
  CreatedAt?: string;
  Spec?: { Name?: string; Labels?: Record<string, string> };
}

async function listObjects(docker: Docker, kind: ObjectKind): Promise<ApiObject[]> {
  const filters = JSON.stringify({ label: [OBJECT_LABELS.name] });
  const list =
    kind === 'secret' ? await docker.listSecrets({ filters }) : await docker.listConfigs({ filters });
  return list as unknown as ApiObject[];
}

/** Which services use which object ids. */
async function usage(docker: Docker, kind: ObjectKind): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const services = (await docker.listServices()) as unknown as Array<{
    Spec?: {
      Name?: string;
      TaskTemplate?: {
        ContainerSpec?: { Secrets?: { SecretID: string }[]; Configs?: { ConfigID: string }[] };
      };
    };
  }>;
  for (const s of services) {
    const cs = s.Spec?.TaskTemplate?.ContainerSpec;
    const ids =
      kind === 'secret'
        ? (cs?.Secrets ?? []).map((x) => x.SecretID)
        : (cs?.Configs ?? []).map((x) => x.ConfigID);
    for (const id of ids) out.set(id, [...(out.get(id) ?? []), s.Spec?.Name ?? '?']);
  }
  return out;
}

/** Every version this toolkit created, with the services that use it (oldest first). */
export async function listVersions(
  docker: Docker,
  kind: ObjectKind,
  name?: string,
): Promise<VersionedObject[]> {
  const [objects, used] = await Promise.all([listObjects(docker, kind), usage(docker, kind)]);
  return objects
    .map((o) => ({
      id: o.ID,
      dockerName: o.Spec?.Name ?? '',
      name: o.Spec?.Labels?.[OBJECT_LABELS.name] ?? '',
      hash: o.Spec?.Labels?.[OBJECT_LABELS.hash] ?? '',
      createdAt: o.CreatedAt ?? '',
      usedBy: used.get(o.ID) ?? [],
    }))
    .filter((o) => name === undefined || o.name === name)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.dockerName.localeCompare(b.dockerName));
}

/** Options of {@link createVersioned}. */
export interface CreateOptions {
  /** Services of the main compose file that should reference the object (added when missing). */
  services?: readonly string[];
  /** Where the file appears in the containers (`target`); default: the compose default. */
  target?: string;
}

/** What {@link createVersioned} did. */
export interface CreateResult {
  name: string;
  dockerName: string;
  hash: string;
  id: string;
  /** False when a version with this content already existed (nothing new was created). */
  created: boolean;
  /** Compose files that were changed. */
  patched: string[];
}

const plural = (kind: ObjectKind): 'secrets' | 'configs' => (kind === 'secret' ? 'secrets' : 'configs');

function refName(item: unknown): string | undefined {
  if (isScalar(item)) return String(item.value);
  if (isMap(item)) return String(item.get('source') ?? '');
  return undefined;
}

/** Creates `NAME_<hash>` (unless it exists) and points the compose files at it. */
export async function createVersioned(
  env: SwarmEnvironment,
  docker: Docker,
  kind: ObjectKind,
  name: string,
  data: Buffer,
  opts: CreateOptions = {},
): Promise<CreateResult> {
  validateObjectName(kind, name);
  if (data.length === 0) throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `the ${kind} content is empty`);
  if (data.length > MAX_BYTES)
    throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `the ${kind} is larger than Swarm's 500 KB limit`);
  const files = env.composeFiles.map((p) => ComposeFile.load(p));
  const main = files[0] as ComposeFile;
  for (const s of opts.services ?? [])
    if (!main.hasService(s))
      throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `service ${s} is not in ${env.mainCompose}`);
  const hash = contentHash(data);
  const dockerName = `${name}_${hash}`;
  const existing = (await listObjects(docker, kind)).find((o) => o.Spec?.Name === dockerName);
  let id = existing?.ID ?? '';
  if (!existing) {
    const spec = {
      Name: dockerName,
      Data: data.toString('base64'),
      Labels: { [OBJECT_LABELS.name]: name, [OBJECT_LABELS.hash]: hash },
    };
    const made = (kind === 'secret'
      ? await docker.createSecret(spec)
      : await docker.createConfig(spec)) as unknown as {
      id?: string;
      ID?: string;
    };
    id = made.id ?? made.ID ?? '';
  }
  // The top-level definition lives where the user put it, else in the main compose file.
  const top = plural(kind);
  const owner = files.find((f) => f.has([top, name])) ?? main;
  const changed = new Set<ComposeFile>();
  if (owner.get([top, name, 'name']) !== dockerName || owner.get([top, name, 'external']) !== true) {
    owner.delete([top, name, 'file']);
    owner.set([top, name, 'external'], true);
    owner.set([top, name, 'name'], dockerName);
    changed.add(owner);
  }
  for (const s of opts.services ?? []) {
    const refs = main.seq(['services', s, top]);
    if (refs.items.some((it) => refName(it) === name)) continue;
    refs.add(main.doc.createNode(opts.target ? { source: name, target: opts.target } : name));
    changed.add(main);
  }
  for (const f of changed) f.save();
  return { name, dockerName, hash, id, created: !existing, patched: [...changed].map((f) => f.path) };
}

/** What {@link deleteVersioned} did. */
export interface DeleteResult {
  name: string;
  /** Versions removed from the swarm. */
  removed: string[];
  /** Versions still attached to services (kept; run a rollout, then prune). */
  kept: { dockerName: string; usedBy: string[] }[];
  patched: string[];
}

/** Removes every version of `name` that no service uses and every compose reference to `name`. */
export async function deleteVersioned(
  env: SwarmEnvironment,
  docker: Docker,
  kind: ObjectKind,
  name: string,
): Promise<DeleteResult> {
  validateObjectName(kind, name);
  const top = plural(kind);
  const files = env.composeFiles.map((p) => ComposeFile.load(p));
  const versions = await listVersions(docker, kind, name);
  const mentioned = files.some(
    (f) =>
      f.has([top, name]) ||
      f.serviceNames().some((s) => {
        const refs = f.doc.getIn(['services', s, top], true);
        return isSeq(refs) && refs.items.some((it) => refName(it) === name);
      }),
  );
  if (versions.length === 0 && !mentioned)
    throw new MinipaasError('MINIPAAS_ERR_NOT_FOUND', `no ${kind} named ${name}`);
  const patched: string[] = [];
  for (const f of files) {
    let changed = f.delete([top, name]);
    const topNode = f.doc.get(top, true);
    if (isMap(topNode) && topNode.items.length === 0) f.delete([top]);
    for (const s of f.serviceNames()) {
      const refs = f.doc.getIn(['services', s, top], true);
      if (!isSeq(refs)) continue;
      const before = refs.items.length;
      refs.items = refs.items.filter((it) => refName(it) !== name);
      if (refs.items.length !== before) changed = true;
      if (refs.items.length === 0) f.delete(['services', s, top]);
    }
    if (changed) {
      f.save();
      patched.push(f.path);
    }
  }
  const removed: string[] = [];
  const kept: DeleteResult['kept'] = [];
  for (const v of versions) {
    if (v.usedBy.length > 0) {
      kept.push({ dockerName: v.dockerName, usedBy: v.usedBy });
      continue;
    }
    await (kind === 'secret' ? docker.getSecret(v.id).remove() : docker.getConfig(v.id).remove());
    removed.push(v.dockerName);
  }
  return { name, removed, kept, patched };
}

/** Versions no service uses; with `remove`, deletes exactly those. */
export async function pruneVersioned(
  docker: Docker,
  kind: ObjectKind,
  remove: boolean,
): Promise<VersionedObject[]> {
  const unused = (await listVersions(docker, kind)).filter((v) => v.usedBy.length === 0);
  if (remove)
    for (const v of unused)
      await (kind === 'secret' ? docker.getSecret(v.id).remove() : docker.getConfig(v.id).remove());
  return unused;
}
