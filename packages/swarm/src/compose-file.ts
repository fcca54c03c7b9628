/**
 * A compose file edited in place: the `yaml` package's Document API keeps the user's comments, key
 * order and formatting for everything this toolkit does not touch.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { MinipaasError } from '@minipaas/core';
import {
  type Document,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  visit,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';

export type YamlPath = readonly (string | number)[];

/** One compose file, parsed for round-tripping. */
export class ComposeFile {
  readonly path: string;
  readonly doc: Document;

  private constructor(path: string, doc: Document) {
    this.path = path;
    this.doc = doc;
  }

  /** Parses `path` (a missing file is an empty document that `save` creates). */
  static load(path: string): ComposeFile {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    const doc = parseDocument(text);
    if (doc.errors.length > 0)
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${path}: ${doc.errors[0]?.message ?? 'bad YAML'}`);
    if (doc.contents === null) doc.contents = doc.createNode({}) as never;
    if (!isMap(doc.contents))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${path}: the top level must be a mapping`);
    // `services: {}` grows in block style like the rest of the file (an empty block collection still
    // prints as {} or []).
    visit(doc, {
      Collection(_, node) {
        if (node.flow && node.items.length === 0) node.flow = false;
      },
    });
    return new ComposeFile(path, doc);
  }

  /** Writes the document back (atomically: a temporary file, then rename). */
  save(): void {
    const tmp = `${this.path}.tmp-${process.pid}`;
    writeFileSync(tmp, this.doc.toString({ lineWidth: 0 }));
    renameSync(tmp, this.path);
  }

  /** Plain JS value at `path`. */
  get(path: YamlPath): unknown {
    const v = this.doc.getIn(path, false);
    return v && typeof v === 'object' && 'toJSON' in v ? (v as { toJSON(): unknown }).toJSON() : v;
  }

  has(path: YamlPath): boolean {
    return this.doc.hasIn(path);
  }

  /** Sets a value, creating missing mappings on the way; an existing scalar keeps its comments. */
  set(path: YamlPath, value: unknown): void {
    const node = this.doc.getIn(path, true);
    if (isScalar(node) && (value === null || typeof value !== 'object')) {
      node.value = value;
      return;
    }
    if (path.length > 1) this.map(path.slice(0, -1));
    this.doc.setIn(path, this.doc.createNode(value));
  }

  /** Sets a value only when nothing is there yet (user settings win over defaults). */
  setDefault(path: YamlPath, value: unknown): boolean {
    if (this.doc.hasIn(path)) return false;
    this.set(path, value);
    return true;
  }

  /** Deletes the value at `path`; false when there was none. */
  delete(path: YamlPath): boolean {
    if (!this.doc.hasIn(path)) return false;
    return this.doc.deleteIn(path);
  }

  /** Names of the services (in file order). */
  serviceNames(): string[] {
    const services = this.doc.get('services', true);
    if (!isMap(services)) return [];
    return services.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key));
  }

  hasService(name: string): boolean {
    return this.doc.hasIn(['services', name]);
  }

  /** The mapping node at `path`, created when missing. */
  map(path: YamlPath): YAMLMap {
    let node = this.doc.getIn(path, true);
    if (node === undefined || node === null) {
      this.doc.setIn(path, this.doc.createNode({}));
      node = this.doc.getIn(path, true);
    }
    if (!isMap(node))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${this.path}: ${path.join('.')} must be a mapping`);
    // `services: {}` grows into block style, like the rest of the file.
    if (node.flow && node.items.length === 0) node.flow = false;
    return node;
  }

  /** The sequence node at `path`, created when missing. */
  seq(path: YamlPath): YAMLSeq {
    let node = this.doc.getIn(path, true);
    if (node === undefined || node === null) {
      this.doc.setIn(path, this.doc.createNode([]));
      node = this.doc.getIn(path, true);
    }
    if (!isSeq(node))
      throw new MinipaasError('MINIPAAS_ERR_VALIDATION', `${this.path}: ${path.join('.')} must be a list`);
    if (node.flow && node.items.length === 0) node.flow = false;
    return node;
  }

  /**
   * Labels at `path` (compose accepts a mapping or a `KEY=VALUE` list) as a mapping node; a list is
   * converted in place so labels can be set by key.
   */
  labels(path: YamlPath): YAMLMap {
    const node = this.doc.getIn(path, true);
    if (isSeq(node)) {
      const m = this.doc.createNode({}) as YAMLMap;
      for (const item of node.items) {
        const s = String(isScalar(item) ? item.value : item);
        const eq = s.indexOf('=');
        m.set(eq < 0 ? s : s.slice(0, eq), eq < 0 ? '' : s.slice(eq + 1));
      }
      this.doc.setIn(path, m);
    }
    return this.map(path);
  }
}

/** A service as the merged compose files describe it (only the parts this toolkit reads). */
export interface MergedService {
  name: string;
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  labels: Record<string, string>;
  secrets: string[];
  configs: string[];
}

function labelMap(v: unknown): Record<string, string> {
  if (Array.isArray(v)) {
    const out: Record<string, string> = {};
    for (const s of v) {
      const str = String(s);
      const eq = str.indexOf('=');
      out[eq < 0 ? str : str.slice(0, eq)] = eq < 0 ? '' : str.slice(eq + 1);
    }
    return out;
  }
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x === null ? '' : String(x)]));
  return {};
}

const refNames = (v: unknown): string[] =>
  Array.isArray(v)
    ? v
        .map((r) => (typeof r === 'string' ? r : String((r as { source?: unknown }).source ?? '')))
        .filter(Boolean)
    : [];

/** Merges the services of several compose files the way `docker stack deploy -c a -c b` does, shallowly. */
export function mergedServices(files: readonly ComposeFile[]): Map<string, MergedService> {
  const out = new Map<string, MergedService>();
  for (const f of files) {
    const services = (f.get(['services']) ?? {}) as Record<string, Record<string, unknown> | null>;
    for (const [name, svc] of Object.entries(services)) {
      const s = svc ?? {};
      const cur = out.get(name) ?? { name, labels: {}, secrets: [], configs: [] };
      if (typeof s.image === 'string') cur.image = s.image;
      if (s.build !== undefined) cur.build = s.build as MergedService['build'];
      const deploy = (s.deploy ?? {}) as Record<string, unknown>;
      Object.assign(cur.labels, labelMap(deploy.labels));
      for (const n of refNames(s.secrets)) if (!cur.secrets.includes(n)) cur.secrets.push(n);
      for (const n of refNames(s.configs)) if (!cur.configs.includes(n)) cur.configs.push(n);
      out.set(name, cur);
    }
  }
  return out;
}
