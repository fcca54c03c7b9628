-- Durable build queue: every deployment is a job of the @minipaas/sql queue "minipaas_builds" (installed by the
-- control plane on start); the deployment remembers its message so a restarted worker can release the
-- leases of the worker that died instead of waiting for them to expire.

-- migrate:up
ALTER TABLE deployments ADD COLUMN job_id bigint;
CREATE INDEX deployments_queued_idx ON deployments (created_at, id) WHERE status = 'queued';

-- migrate:down
DROP INDEX deployments_queued_idx;
ALTER TABLE deployments DROP COLUMN job_id;
