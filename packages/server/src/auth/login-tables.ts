/**
 * Kysely types of the login tables (migration 20261130000005_sessions.sql). Login code uses
 * `db.withTables<LoginTables>()` so the shared schema file stays untouched.
 */
import type { ColumnType } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface SessionsTable {
  id: string;
  token_hash: string;
  user_id: string;
  csrf_token: string;
  method: string;
  password_marker: ColumnType<string, string | undefined, string>;
  ip: string | null;
  user_agent: string | null;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  expires_at: Timestamp;
}

export interface LoginFailuresTable {
  key: string;
  failures: number;
  first_failure_at: Timestamp;
  locked_until: Timestamp | null;
}

export interface UserIdentitiesTable {
  provider: string;
  subject: string;
  user_id: string;
  name: string | null;
  email: string | null;
  created_at: Timestamp;
  last_login_at: Timestamp;
}

export interface LoginInvitesTable {
  id: string;
  code_hash: string;
  user_id: string;
  created_by: string | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  used_by_provider: string | null;
}

export type LoginTables = {
  sessions: SessionsTable;
  login_failures: LoginFailuresTable;
  user_identities: UserIdentitiesTable;
  login_invites: LoginInvitesTable;
};
