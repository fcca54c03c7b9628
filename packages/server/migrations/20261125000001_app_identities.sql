-- migrate:up
-- One unprivileged OS identity per app (uid and gid from apps.uidMin..apps.uidMax), freed with the app.
CREATE TABLE app_identities (
  app_id text PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
  uid bigint NOT NULL UNIQUE,
  gid bigint NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE app_identities;
