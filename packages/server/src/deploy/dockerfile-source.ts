/** A staged source of a docker-runtime app that brings its own Dockerfile (docs/docker.md). */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MinipaasError, parseProcfile } from '@minipaas/core';
import { IMAGE_CMD } from '@minipaas/runtime-docker/light';

/**
 * Whether a staged source brings its own Dockerfile (then no stack needs to be detected). A path set in
 * `minipaas.yaml` must exist: its absence is an error, not a fallback to a generated image.
 */
export function hasDockerfile(dir: string, path?: string): boolean {
  const found = existsSync(join(dir, path ?? 'Dockerfile'));
  if (path && !found)
    throw new MinipaasError(
      'MINIPAAS_ERR_VALIDATION',
      `minipaas.yaml names dockerfile ${path}, which is not in the source`,
    );
  return found;
}

/**
 * Process types of a Dockerfile source: its Procfile's (`release:` apart: it runs once per release before
 * the switch, as on the process runtime), and `web` runs the image's CMD unless set.
 */
export async function dockerfileCommands(
  dir: string,
  command: string | null,
): Promise<{ commands: Record<string, string>; releaseCommand: string | null }> {
  const procfile = join(dir, 'Procfile');
  const commands = existsSync(procfile) ? parseProcfile(await readFile(procfile, 'utf8')) : {};
  const releaseCommand = commands.release ?? null;
  delete commands.release;
  if (command) commands.web = command;
  commands.web ||= IMAGE_CMD;
  return { commands, releaseCommand };
}
