export { BINARIES_PACKAGE, bundledPackageRoot, hydrateSymlinks, resolveBinDir } from './binaries.ts';
export {
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
  type EmbeddedPostgresSettings,
  embeddedPostgres,
  PLATFORM_DATABASE,
  type ServerCommand,
} from './embedded-postgres.ts';
export { type ServerIdentity, serverIdentity } from './os-user.ts';
