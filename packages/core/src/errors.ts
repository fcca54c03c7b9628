/**
 * The one registry of MiniPaaS error codes. Domain code throws `MinipaasError` with a code;
 * the server maps the code to an HTTP status in exactly one place (its error handler), the CLI
 * prints the message and exits non-zero, the dashboard shows the message.
 */
export const ERROR_CODES = {
  MINIPAAS_ERR_VALIDATION: { status: 400, message: 'Invalid input' },
  MINIPAAS_ERR_BAD_JSON: { status: 400, message: 'Request body is not valid JSON' },
  MINIPAAS_ERR_BAD_ARCHIVE: { status: 400, message: 'Uploaded archive is invalid' },
  MINIPAAS_ERR_UNAUTHENTICATED: { status: 401, message: 'Missing or invalid API token' },
  MINIPAAS_ERR_FORBIDDEN: { status: 403, message: 'Not allowed' },
  MINIPAAS_ERR_NOT_FOUND: { status: 404, message: 'Not found' },
  MINIPAAS_ERR_APP_NOT_FOUND: { status: 404, message: 'App not found' },
  MINIPAAS_ERR_PROJECT_NOT_FOUND: { status: 404, message: 'Project not found' },
  MINIPAAS_ERR_DEPLOYMENT_NOT_FOUND: { status: 404, message: 'Deployment not found' },
  MINIPAAS_ERR_ADDON_NOT_FOUND: { status: 404, message: 'Add-on not found' },
  MINIPAAS_ERR_BACKUP_NOT_FOUND: { status: 404, message: 'Backup not found' },
  MINIPAAS_ERR_CONFLICT: { status: 409, message: 'Conflict' },
  MINIPAAS_ERR_LIMIT_EXCEEDED: { status: 409, message: 'A configured limit would be exceeded' },
  MINIPAAS_ERR_APP_EXISTS: { status: 409, message: 'An app with this name already exists' },
  MINIPAAS_ERR_ADDON_EXISTS: { status: 409, message: 'An add-on with this name already exists' },
  MINIPAAS_ERR_PROJECT_EXISTS: { status: 409, message: 'A project with this slug already exists' },
  MINIPAAS_ERR_PROJECT_NOT_EMPTY: { status: 409, message: 'Project still has apps' },
  MINIPAAS_ERR_NO_RELEASE: { status: 409, message: 'App has no release yet' },
  MINIPAAS_ERR_DEPLOYMENT_FINISHED: { status: 409, message: 'Deployment has already finished' },
  MINIPAAS_ERR_NOT_REBUILDABLE: { status: 409, message: 'The app has no source that can be built again' },
  MINIPAAS_ERR_PAYLOAD_TOO_LARGE: { status: 413, message: 'Upload is too large' },
  MINIPAAS_ERR_URI_TOO_LONG: { status: 414, message: 'URL is too long' },
  MINIPAAS_ERR_UNSUPPORTED_MEDIA: { status: 415, message: 'Unsupported content type' },
  MINIPAAS_ERR_BUILD_FAILED: { status: 422, message: 'Build failed' },
  MINIPAAS_ERR_RELEASE_PHASE_FAILED: { status: 422, message: 'A release phase command failed' },
  MINIPAAS_ERR_NO_STACK: { status: 422, message: 'Could not detect how to run this app' },
  MINIPAAS_ERR_RATE_LIMITED: { status: 429, message: 'Too many requests' },
  MINIPAAS_ERR_AGENT_UNAVAILABLE: { status: 503, message: 'Node agent is not reachable' },
  MINIPAAS_ERR_DOCKER_UNAVAILABLE: { status: 503, message: 'The Docker engine is not reachable' },
  MINIPAAS_ERR_NOT_AVAILABLE: { status: 400, message: 'Not available on this platform' },
  MINIPAAS_ERR_TOOL_MISSING: { status: 501, message: 'A required program is not installed' },
  MINIPAAS_ERR_BACKUP_FAILED: { status: 500, message: 'Backup or restore failed' },
  MINIPAAS_ERR_VOLUME_NOT_FOUND: { status: 404, message: 'Volume not found' },
  MINIPAAS_ERR_VOLUME_EXISTS: {
    status: 409,
    message: 'A volume with this name already exists in the project',
  },
  MINIPAAS_ERR_VOLUME_PATH: { status: 400, message: 'Path is not inside the volume' },
  MINIPAAS_ERR_VOLUME_QUOTA: { status: 413, message: 'The volume quota would be exceeded' },
  /** git could not fetch the app's repository or ref (unreachable, no such ref, denied); issue 10. */
  MINIPAAS_ERR_GIT: { status: 422, message: 'The git repository or ref could not be fetched' },
  MINIPAAS_ERR_NO_GIT_SOURCE: { status: 409, message: 'The app has no git repository configured' },
  /** Access control (issue 11, docs/security.md). */
  MINIPAAS_ERR_USER_NOT_FOUND: { status: 404, message: 'User not found' },
  MINIPAAS_ERR_USER_EXISTS: { status: 409, message: 'A user with this email already exists' },
  MINIPAAS_ERR_TEAM_NOT_FOUND: { status: 404, message: 'Team not found' },
  MINIPAAS_ERR_TEAM_EXISTS: { status: 409, message: 'A team with this slug already exists' },
  MINIPAAS_ERR_TOKEN_NOT_FOUND: { status: 404, message: 'API token not found' },
  MINIPAAS_ERR_INTERNAL: { status: 500, message: 'Internal error' },
  /** A sealed secret value that does not open (wrong key ring, tampered), or a bad master key. */
  MINIPAAS_ERR_SECRET: { status: 500, message: 'A secret value cannot be opened with the master key' },
  /** The external secret store (Vault) is unreachable or refused a request. */
  MINIPAAS_ERR_SECRET_STORE: {
    status: 503,
    message: 'The secret store is not reachable or refused the request',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A domain error: carries a registry code, a human message and optional structured details. */
export class MinipaasError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, options?: { details?: unknown; cause?: unknown }) {
    super(message ?? ERROR_CODES[code].message, options?.cause ? { cause: options.cause } : undefined);
    this.name = 'MinipaasError';
    this.code = code;
    this.details = options?.details;
  }

  /** HTTP status for this error's code (used only by the server's error handler). */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isMinipaasError(err: unknown): err is MinipaasError {
  return err instanceof MinipaasError;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** The JSON shape of every error response of the API. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}
