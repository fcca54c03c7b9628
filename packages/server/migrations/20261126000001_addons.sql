-- migrate:up
-- Managed Postgres databases of apps (add-ons): one database and one LOGIN role each.
-- TODO(secrets): `password` is stored in clear until the platform has a SecretStore (AES-256-GCM at rest).
CREATE TABLE addons (
  id text PRIMARY KEY,
  app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  name text NOT NULL,
  type text NOT NULL,
  dedicated boolean NOT NULL DEFAULT false,
  env_var text NOT NULL,
  database_name text NOT NULL UNIQUE,
  role_name text NOT NULL UNIQUE,
  password text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (app_id, name),
  UNIQUE (app_id, env_var)
);

-- migrate:down
DROP TABLE addons;
