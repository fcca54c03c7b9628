-- migrate:up
CREATE TABLE projects (
  id text PRIMARY KEY,
  name text NOT NULL,
  slug text NOT NULL UNIQUE,
  description text,
  created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO projects (id, name, slug, description) VALUES ('default', 'Default', 'default', 'Apps without a project');

CREATE TABLE apps (
  id text PRIMARY KEY,
  project_id text NOT NULL REFERENCES projects (id),
  name text NOT NULL UNIQUE,
  runtime text NOT NULL DEFAULT 'process',
  status text NOT NULL DEFAULT 'created',
  processes jsonb NOT NULL DEFAULT '{}'::jsonb,
  env jsonb NOT NULL DEFAULT '{}'::jsonb,
  healthcheck_path text,
  current_release integer,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX apps_project_idx ON apps (project_id);

CREATE TABLE releases (
  id text PRIMARY KEY,
  app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  version integer NOT NULL,
  dir text NOT NULL,
  stack text NOT NULL,
  commands jsonb NOT NULL DEFAULT '{}'::jsonb,
  env jsonb NOT NULL DEFAULT '{}'::jsonb,
  source text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (app_id, version)
);

CREATE TABLE deployments (
  id text PRIMARY KEY,
  app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  release_version integer,
  status text NOT NULL DEFAULT 'queued',
  source text NOT NULL,
  message text,
  error text,
  log jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX deployments_app_idx ON deployments (app_id, created_at DESC);

CREATE TABLE api_tokens (
  id text PRIMARY KEY,
  name text NOT NULL,
  role text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);

-- migrate:down
DROP TABLE api_tokens;
DROP TABLE deployments;
DROP TABLE releases;
DROP TABLE apps;
DROP TABLE projects;
