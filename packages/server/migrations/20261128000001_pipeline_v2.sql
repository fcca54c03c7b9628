-- Deploy pipeline v2: releases become snapshots (artifact + config) that a rollback can deploy again
-- without building; deployments carry what a separate build worker needs to pick them up after a restart.

-- migrate:up
ALTER TABLE releases ADD COLUMN artifact jsonb;
UPDATE releases SET artifact = jsonb_build_object('kind', 'directory', 'path', dir);
-- The app's own env vars and process overrides when the release went out (the build env stays in `env`).
ALTER TABLE releases ADD COLUMN config_env jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE releases ADD COLUMN formation jsonb NOT NULL DEFAULT '{}'::jsonb;
-- app.json of the source tree (healthchecks, formation, scripts, env), and the Procfile `release:` command.
ALTER TABLE releases ADD COLUMN app_json jsonb;
ALTER TABLE releases ADD COLUMN release_command text;
-- A rollback release points at the version whose artifact and config it redeploys.
ALTER TABLE releases ADD COLUMN rollback_of integer;
ALTER TABLE releases ADD COLUMN deployment_id text;
-- pending (built, not live yet) | succeeded (went live) | failed (never went live).
ALTER TABLE releases ADD COLUMN status text NOT NULL DEFAULT 'succeeded';

-- build | restart | rollback
ALTER TABLE deployments ADD COLUMN kind text NOT NULL DEFAULT 'build';
ALTER TABLE deployments ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
-- Where the staged source waits for the build worker (under MINIPAAS_HOME/builds).
ALTER TABLE deployments ADD COLUMN source_dir text;
-- `deploy --command` override of the web command.
ALTER TABLE deployments ADD COLUMN command text;
ALTER TABLE deployments ADD COLUMN rollback_to integer;
ALTER TABLE deployments ADD COLUMN superseded_by text;
CREATE INDEX deployments_status_idx ON deployments (status, created_at);

-- migrate:down
DROP INDEX deployments_status_idx;
ALTER TABLE deployments DROP COLUMN superseded_by, DROP COLUMN rollback_to, DROP COLUMN command,
  DROP COLUMN source_dir, DROP COLUMN cancel_requested, DROP COLUMN attempts, DROP COLUMN kind;
ALTER TABLE releases DROP COLUMN status, DROP COLUMN deployment_id, DROP COLUMN rollback_of,
  DROP COLUMN release_command, DROP COLUMN app_json, DROP COLUMN formation, DROP COLUMN config_env,
  DROP COLUMN artifact;
