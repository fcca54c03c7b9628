-- Preview environments (issue 10, docs/git.md): an app's preview apps, one per branch (or pull request),
-- and git settings for apps that deploy by git push only (no repository URL: url NULL).
-- A separate file from 20261130000004_git.sql, which was already applied where it ran.

-- migrate:up
ALTER TABLE git_sources ALTER COLUMN url DROP NOT NULL;

CREATE TABLE git_previews (
  app_id text PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
  parent_id text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  branch text NOT NULL,
  pull_request integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (parent_id, branch)
);

-- migrate:down
DROP TABLE git_previews;
DELETE FROM git_sources WHERE url IS NULL;
ALTER TABLE git_sources ALTER COLUMN url SET NOT NULL;
