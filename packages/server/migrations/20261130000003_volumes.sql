-- Persistent volumes (issue 9, seed 001 §1.1) and per-app resource limits (seed 001 §3.4).
-- A volume belongs to a project and is mounted into every app of the project, or into one app when
-- app_id is set. Its data lives in MINIPAAS_HOME/volumes/{project_id}/{id} for both runtimes
-- (docs/volumes.md). volume_files records what was uploaded through the file API (the app's own writes
-- are not tracked there: stats walk the directory).

-- migrate:up
CREATE TABLE volumes (
  id text PRIMARY KEY,
  project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  app_id text REFERENCES apps (id) ON DELETE CASCADE,
  name text NOT NULL,
  mount_path text NOT NULL DEFAULT '/app/storage',
  size_bytes bigint NOT NULL DEFAULT 0,
  max_size_bytes bigint NOT NULL DEFAULT 5368709120,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);
CREATE INDEX volumes_app_idx ON volumes (app_id);

CREATE TABLE volume_files (
  id bigserial PRIMARY KEY,
  volume_id text NOT NULL REFERENCES volumes (id) ON DELETE CASCADE,
  file_path text NOT NULL,
  file_size bigint NOT NULL,
  mime_type text,
  uploaded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (volume_id, file_path)
);

ALTER TABLE apps ADD COLUMN cpu_millicores integer;
ALTER TABLE apps ADD COLUMN memory_mb integer;
ALTER TABLE apps ADD COLUMN restart_policy text;

-- migrate:down
ALTER TABLE apps DROP COLUMN restart_policy;
ALTER TABLE apps DROP COLUMN memory_mb;
ALTER TABLE apps DROP COLUMN cpu_millicores;
DROP TABLE volume_files;
DROP TABLE volumes;
