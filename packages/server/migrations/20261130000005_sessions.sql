-- Browser login (issue 11, docs/security.md): server-side sessions behind an HttpOnly cookie, failed
-- password counters that lock a user or an address for a while, external identities (GitHub, OIDC)
-- linked to users, and invites that link the first external login to a chosen user.
-- Secrets are stored hashed (sha256 of 32 random bytes): the session cookie value and invite codes.

-- migrate:up
CREATE TABLE sessions (
  -- public id of the session (audit log, logout of one session); never the cookie value
  id text PRIMARY KEY,
  -- sha256 (hex) of the cookie value
  token_hash text NOT NULL UNIQUE,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- synchronizer token state-changing requests made with the cookie must send (x-csrf-token or _csrf)
  csrf_token text NOT NULL,
  -- 'password', 'github' or 'oidc:NAME'
  method text NOT NULL,
  -- sha256 of the user's password hash at login: a changed password ends the session
  password_marker text NOT NULL DEFAULT '',
  ip text,
  user_agent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE login_failures (
  -- 'user:LOGIN' (lowercase) or 'ip:ADDRESS'
  key text PRIMARY KEY,
  failures integer NOT NULL,
  first_failure_at timestamptz NOT NULL,
  locked_until timestamptz
);

CREATE TABLE user_identities (
  -- 'github' or 'oidc:NAME'
  provider text NOT NULL,
  -- the provider's stable account id (GitHub id, OIDC sub)
  subject text NOT NULL,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text,
  email text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user_id ON user_identities (user_id);

CREATE TABLE login_invites (
  id text PRIMARY KEY,
  -- sha256 (hex) of the invite code
  code_hash text NOT NULL UNIQUE,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  used_by_provider text
);

-- migrate:down
DROP TABLE login_invites;
DROP TABLE user_identities;
DROP TABLE login_failures;
DROP TABLE sessions;
