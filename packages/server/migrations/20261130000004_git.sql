-- Deploy from git (issue 10, docs/git.md): an app's repository and ref, its webhook and the webhook's
-- delivery log, and the commit (SHA and subject) a deployment built and a release holds.
-- Credentials (an HTTPS token or an SSH deploy key) and the webhook secret are stored sealed by the
-- platform's SecretBox (AES-256-GCM, bound to the app id); never in clear.

-- migrate:up
CREATE TABLE git_sources (
  app_id text PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
  url text NOT NULL,
  ref text NOT NULL DEFAULT 'main',
  -- 'token' | 'ssh-key' | NULL (public repository)
  credential_kind text,
  credential text,
  -- auto-sync: poll the ref with git ls-remote every this many seconds (NULL: off)
  sync_interval_seconds integer,
  synced_sha text,
  synced_at timestamptz,
  previews boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE git_webhooks (
  app_id text PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
  -- sha256 of the URL token (lookup); the token itself sealed (it is also the HMAC secret)
  token_hash text NOT NULL UNIQUE,
  token text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  -- deploy pushes to this branch only (NULL: the app's git ref, else main)
  branch text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE git_webhook_deliveries (
  id bigserial PRIMARY KEY,
  app_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  received_at timestamptz NOT NULL DEFAULT now(),
  provider text NOT NULL,
  delivery_id text,
  event text,
  ref text,
  commit_sha text,
  -- 'accepted' | 'ignored' | 'rejected'
  outcome text NOT NULL,
  reason text NOT NULL,
  deployment_id text
);
CREATE INDEX git_webhook_deliveries_app_idx ON git_webhook_deliveries (app_id, id DESC);
-- Replay protection: a delivery id is accepted once per app.
CREATE UNIQUE INDEX git_webhook_deliveries_replay_idx ON git_webhook_deliveries (app_id, provider, delivery_id)
  WHERE outcome = 'accepted' AND delivery_id IS NOT NULL;

ALTER TABLE deployments ADD COLUMN commit_sha text;
ALTER TABLE deployments ADD COLUMN commit_message text;
ALTER TABLE releases ADD COLUMN commit_sha text;
ALTER TABLE releases ADD COLUMN commit_message text;

-- A release records the commit of the deployment that built it (source 'git'), and a rollback release
-- the commit of the release it redeploys, whichever stage of the pipeline inserts it.
CREATE FUNCTION minipaas_release_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.commit_sha IS NULL THEN
    IF NEW.rollback_of IS NOT NULL THEN
      SELECT r.commit_sha, r.commit_message INTO NEW.commit_sha, NEW.commit_message
        FROM releases r WHERE r.app_id = NEW.app_id AND r.version = NEW.rollback_of;
    ELSIF NEW.deployment_id IS NOT NULL THEN
      SELECT d.commit_sha, d.commit_message INTO NEW.commit_sha, NEW.commit_message
        FROM deployments d WHERE d.id = NEW.deployment_id;
      IF NEW.commit_sha IS NOT NULL THEN
        NEW.source := 'git';
      END IF;
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER releases_commit BEFORE INSERT ON releases
  FOR EACH ROW EXECUTE FUNCTION minipaas_release_commit();

-- migrate:down
DROP TRIGGER releases_commit ON releases;
DROP FUNCTION minipaas_release_commit();
ALTER TABLE releases DROP COLUMN commit_message;
ALTER TABLE releases DROP COLUMN commit_sha;
ALTER TABLE deployments DROP COLUMN commit_message;
ALTER TABLE deployments DROP COLUMN commit_sha;
DROP TABLE git_webhook_deliveries;
DROP TABLE git_webhooks;
DROP TABLE git_sources;
