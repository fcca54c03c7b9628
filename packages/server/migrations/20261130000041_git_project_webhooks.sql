-- Project webhooks (issue 10, seed 001 §3.8: /api/webhooks/:projectId/:token, docs/git.md): one URL per
-- project; a push deploys every app of the project built from the pushed repository and branch.
-- Deliveries of a project webhook are logged with the project (and the app they deployed, if any).

-- migrate:up
CREATE TABLE git_project_webhooks (
  project_id text PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  token text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE git_webhook_deliveries ALTER COLUMN app_id DROP NOT NULL;
ALTER TABLE git_webhook_deliveries ADD COLUMN project_id text REFERENCES projects (id) ON DELETE CASCADE;
CREATE INDEX git_webhook_deliveries_project_idx ON git_webhook_deliveries (project_id, id DESC);
CREATE UNIQUE INDEX git_webhook_deliveries_project_replay_idx
  ON git_webhook_deliveries (project_id, provider, delivery_id)
  WHERE outcome = 'accepted' AND delivery_id IS NOT NULL AND app_id IS NULL;

-- migrate:down
DROP INDEX git_webhook_deliveries_project_replay_idx;
DROP INDEX git_webhook_deliveries_project_idx;
ALTER TABLE git_webhook_deliveries DROP COLUMN project_id;
DELETE FROM git_webhook_deliveries WHERE app_id IS NULL;
ALTER TABLE git_webhook_deliveries ALTER COLUMN app_id SET NOT NULL;
DROP TABLE git_project_webhooks;
