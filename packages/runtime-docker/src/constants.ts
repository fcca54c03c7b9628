/** Names the docker runtime shares with the pipeline; no imports, so light modules can use them. */

/** Port web containers listen on inside their network namespace (their `PORT`). */
export const CONTAINER_PORT = 5000;

/**
 * The command of a process type that runs the image's own `CMD`/`ENTRYPOINT` (a Dockerfile app without a
 * Procfile line for it); readable as such in `ps` and the app's processes.
 */
export const IMAGE_CMD = '(image CMD)';

export const LABEL = {
  app: 'minipaas.app',
  release: 'minipaas.release',
  process: 'minipaas.process',
  instance: 'minipaas.instance',
  digest: 'minipaas.digest',
  restart: 'minipaas.restart',
  /** Names of the env vars whose values are masked in the container's logs (secrets; names only). */
  masked: 'minipaas.masked',
} as const;
