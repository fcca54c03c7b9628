-- Access control (issue 11, docs/security.md): users, teams with members and roles, projects owned by
-- a team, API tokens of a user (role cap, optional project scope, expiry, revocation), and the audit log.
-- Existing data: every project goes to the team 'default'; existing tokens (the first-start admin token)
-- become tokens of one owner user who owns that team, so they keep working unchanged.

-- migrate:up
CREATE TABLE users (
  id text PRIMARY KEY,
  email text NOT NULL,
  name text NOT NULL DEFAULT '',
  -- scrypt$N$r$p$salt$hash (node:crypto scrypt); NULL: no password login (tokens, OIDC, GitHub only)
  password_hash text,
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE teams (
  id text PRIMARY KEY,
  name text NOT NULL,
  slug text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE team_members (
  team_id text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('viewer', 'developer', 'admin', 'owner')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

INSERT INTO teams (id, name, slug) VALUES ('default', 'Default', 'default');

-- Projects created by code that does not name a team land in the default team.
ALTER TABLE projects ADD COLUMN team_id text NOT NULL DEFAULT 'default' REFERENCES teams (id);
CREATE INDEX projects_team_idx ON projects (team_id);

-- Tokens: user_id NULL is a platform-wide token holding `role` everywhere (none are created any more
-- through the API; tests and older homes may hold some). project_id scopes a token to one project.
ALTER TABLE api_tokens
  ADD COLUMN user_id text REFERENCES users (id) ON DELETE CASCADE,
  ADD COLUMN project_id text REFERENCES projects (id) ON DELETE CASCADE,
  ADD COLUMN created_by text,
  ADD COLUMN expires_at timestamptz,
  ADD COLUMN revoked_at timestamptz;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- An existing home: the tokens already issued belong to a first owner user.
INSERT INTO users (id, email, name)
  SELECT 'owner', 'owner@minipaas.local', 'owner' WHERE EXISTS (SELECT 1 FROM api_tokens);
INSERT INTO team_members (team_id, user_id, role)
  SELECT 'default', 'owner', 'owner' WHERE EXISTS (SELECT 1 FROM users WHERE id = 'owner');
UPDATE api_tokens SET user_id = 'owner' WHERE EXISTS (SELECT 1 FROM users WHERE id = 'owner');

-- The audit log: appended by the platform, never changed. Updates and truncation are refused by
-- triggers; a delete only goes through for entries older than the retention that the pruning
-- transaction states with SET LOCAL minipaas.audit_retention_days (never under one day).
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  -- the user, or NULL for a platform-wide token or an anonymous request (a failed login)
  actor_user_id text,
  -- a readable name of the actor (email, or token name) at the time
  actor text,
  token_id text,
  session_id text,
  action text NOT NULL,
  method text,
  path text,
  target_type text,
  target_id text,
  team_id text,
  project_id text,
  request_id text,
  ip text,
  -- 'success' | 'denied' | 'failure'
  outcome text NOT NULL,
  status_code integer,
  detail jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_team_idx ON audit_log (team_id, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  days integer;
BEGIN
  IF TG_OP = 'DELETE' THEN
    days := nullif(current_setting('minipaas.audit_retention_days', true), '')::integer;
    IF days IS NOT NULL AND days >= 1 AND OLD.at < now() - make_interval(days => days) THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- migrate:down
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
ALTER TABLE api_tokens
  DROP COLUMN user_id,
  DROP COLUMN project_id,
  DROP COLUMN created_by,
  DROP COLUMN expires_at,
  DROP COLUMN revoked_at;
ALTER TABLE projects DROP COLUMN team_id;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;
