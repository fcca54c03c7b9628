import type { Artifact } from '@minipaas/core';
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface ProcessOverride {
  command?: string | null;
  instances?: number;
}

export interface ProjectsTable {
  id: string;
  name: string;
  slug: string;
  description: string | null;
  created_at: Timestamp;
  /** The team that owns the project (migration 20261130000001_access_control.sql); default 'default'. */
  team_id: ColumnType<string, string | undefined, string>;
}

export interface AppsTable {
  id: string;
  project_id: string;
  name: string;
  runtime: string;
  status: string;
  processes: Json<Record<string, ProcessOverride>>;
  env: Json<Record<string, string>>;
  healthcheck_path: string | null;
  current_release: number | null;
  description: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** Per-app CPU limit in millicores; null: `resources.defaultCpuMillicores` (issue 9). */
  cpu_millicores: ColumnType<number | null, number | null | undefined, number | null>;
  /** Per-app memory limit in MiB; null: `resources.defaultMemoryMB`. */
  memory_mb: ColumnType<number | null, number | null | undefined, number | null>;
  /** `always` | `on-failure` | `no`; null: `always`. */
  restart_policy: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ReleasesTable {
  id: string;
  app_id: string;
  version: number;
  dir: string;
  stack: string;
  commands: Json<Record<string, string>>;
  env: Json<Record<string, string>>;
  source: string;
  created_at: Timestamp;
  /** What runs: a release directory (process runtime) or an image reference; null means `dir`. */
  artifact: ColumnType<Artifact | null, string | undefined, string>;
  /** The app's env vars when the release went out (a rollback restores them). */
  config_env: ColumnType<Record<string, string>, string | undefined, string>;
  /** The app's process overrides (formation) when the release went out. */
  formation: ColumnType<Record<string, ProcessOverride>, string | undefined, string>;
  /** app.json of the source (healthchecks, formation, scripts, env); null without one. */
  app_json: ColumnType<unknown, string | null | undefined, string | null>;
  /** The Procfile `release:` command, run once before the release goes live. */
  release_command: string | null;
  /** The version whose artifact and config this rollback release redeploys. */
  rollback_of: number | null;
  deployment_id: string | null;
  status: ColumnType<ReleaseStatus, ReleaseStatus | undefined, ReleaseStatus>;
  /** The git commit of the release (set from its deployment, or from the release a rollback redeploys). */
  commit_sha: ColumnType<string | null, string | null | undefined, string | null>;
  commit_message: ColumnType<string | null, string | null | undefined, string | null>;
}

export type ReleaseStatus = 'pending' | 'succeeded' | 'failed';

export interface DeploymentsTable {
  id: string;
  app_id: string;
  release_version: number | null;
  status: string;
  source: string;
  message: string | null;
  error: string | null;
  log: Json<string[]>;
  created_at: Timestamp;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  kind: ColumnType<DeploymentKind, DeploymentKind | undefined, DeploymentKind>;
  /** Build attempts started (a build cut off by a platform crash is retried once). */
  attempts: ColumnType<number, number | undefined, number>;
  cancel_requested: ColumnType<boolean, boolean | undefined, boolean>;
  /** The staged source waiting for the build worker (under MINIPAAS_HOME/builds). */
  source_dir: string | null;
  /** `deploy --command` override of the web command. */
  command: string | null;
  rollback_to: number | null;
  /** The later deployment of the same app that made this queued one unnecessary. */
  superseded_by: string | null;
  /** The deployment's message in the `minipaas_builds` queue (@minipaas/sql). */
  job_id: ColumnType<number | string | null, number | null | undefined, number | null>;
  /** The git commit a git deployment builds (issue 10; migration 20261130000004_git.sql). */
  commit_sha: ColumnType<string | null, string | null | undefined, string | null>;
  commit_message: ColumnType<string | null, string | null | undefined, string | null>;
}

export type DeploymentKind = 'build' | 'restart' | 'rollback';

/** An app's own OS identity (uid and gid, both from `apps.uidMin`..`apps.uidMax`). */
export interface AppIdentitiesTable {
  app_id: string;
  /** bigint: uids go up to 2^32-2; drivers may read it back as a string. */
  uid: ColumnType<number | string, number, number>;
  gid: ColumnType<number | string, number, number>;
  created_at: Timestamp;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  /** The user the token acts for; null: a platform-wide token holding `role` in every team. */
  user_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Only this project (and reading what it needs); null: every project the user may reach. */
  project_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The user id (or token id) that created the token. */
  created_by: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  revoked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** A person (migration 20261130000001_access_control.sql). */
export interface UsersTable {
  id: string;
  /** Unique, compared case-insensitively. */
  email: string;
  name: ColumnType<string, string | undefined, string>;
  /** `scrypt$N$r$p$salt$hash` (node:crypto); null: no password login. */
  password_hash: ColumnType<string | null, string | null | undefined, string | null>;
  disabled: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: Timestamp;
}

export interface TeamsTable {
  id: string;
  name: string;
  slug: string;
  created_at: Timestamp;
}

export interface TeamMembersTable {
  team_id: string;
  user_id: string;
  /** A core `Role`: viewer | developer | admin | owner. */
  role: string;
  created_at: Timestamp;
}

/** One audited request or login; the table refuses UPDATE, TRUNCATE and DELETE of recent rows. */
export interface AuditLogTable {
  id: Generated<number | string>;
  at: Timestamp;
  actor_user_id: string | null;
  actor: string | null;
  token_id: string | null;
  session_id: string | null;
  action: string;
  method: string | null;
  path: string | null;
  target_type: string | null;
  target_id: string | null;
  team_id: string | null;
  project_id: string | null;
  request_id: string | null;
  ip: string | null;
  /** `success` | `denied` | `failure`. */
  outcome: string;
  status_code: number | null;
  detail: ColumnType<unknown, string | null | undefined, string | null>;
}

/** A managed Postgres database of an app (docs/addons.md): its own database and LOGIN role. */
export interface AddonsTable {
  id: string;
  app_id: string;
  name: string;
  type: string;
  dedicated: ColumnType<boolean, boolean | undefined, boolean>;
  /** The app env var holding the connection URL (`DATABASE_URL`, `<NAME>_URL`). */
  env_var: string;
  /** 127.0.0.1 port of a dedicated add-on's own server; null on the platform's server. */
  port: ColumnType<number | null, number | null | undefined, number | null>;
  database_name: string;
  role_name: string;
  /** TODO(secrets): stored in clear until a SecretStore encrypts it at rest. Never logged. */
  password: string;
  created_at: Timestamp;
}

/** A persistent volume of a project (docs/volumes.md); data in MINIPAAS_HOME/volumes/{project_id}/{id}. */
export interface VolumesTable {
  id: string;
  project_id: string;
  /** Mounted only into this app; null: every app of the project. */
  app_id: string | null;
  name: string;
  mount_path: string;
  /** Size measured at the last upload, delete or stats (bigint: may read back as a string). */
  size_bytes: ColumnType<number | string, number | undefined, number>;
  max_size_bytes: ColumnType<number | string, number | undefined, number>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** A file uploaded through the volume file API. */
export interface VolumeFilesTable {
  id: Generated<number | string>;
  volume_id: string;
  file_path: string;
  file_size: ColumnType<number | string, number, number>;
  mime_type: string | null;
  uploaded_at: Timestamp;
}

export interface Database {
  projects: ProjectsTable;
  apps: AppsTable;
  releases: ReleasesTable;
  deployments: DeploymentsTable;
  api_tokens: ApiTokensTable;
  app_identities: AppIdentitiesTable;
  addons: AddonsTable;
  volumes: VolumesTable;
  volume_files: VolumeFilesTable;
  users: UsersTable;
  teams: TeamsTable;
  team_members: TeamMembersTable;
  audit_log: AuditLogTable;
  schema_migrations: { version: Generated<string> };
}
