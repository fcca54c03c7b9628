/** Shapes of the add-on and backup API, shared by server and CLI. */

/** What the API shows of an add-on (`GET /api/v1/apps/{app}/addons/{name}`). */
export interface AddonView {
  id: string;
  name: string;
  type: string;
  app: string;
  appId: string;
  dedicated: boolean;
  envVar: string;
  database: string;
  role: string;
  host: string;
  port: number;
  /** The connection URL; its password is masked unless revealed. */
  url: string;
  passwordRevealed: boolean;
  createdAt: string;
}

/** A backup file name: kind, name (`<app>.<addon>` for add-ons), UTC timestamp. Never a path. */
export const BACKUP_FILE_RE = /^(platform|addon)-([a-z0-9_.-]{1,100})-(\d{8}T\d{6}Z)(?:-(\d{1,4}))?\.dump$/;

/** What the API answers for a backup. */
export interface BackupView {
  file: string;
  kind: 'platform' | 'addon';
  /** The platform database's name, or `<app>.<addon>`. */
  name: string;
  path: string;
  bytes: number;
  createdAt: string;
}
