/**
 * The git sealed values (a source's credential, a webhook's token) under a master key rotation
 * (`secrets:rotate-key`, secrets/app-secrets.ts `rotateMasterKey`): opened with the ring and sealed again
 * under the new key in the rotation's transaction, like app secrets, so they keep opening after the
 * previous key leaves the ring.
 */
import { SecretBox } from '@minipaas/core';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { GitTables } from './git-service.ts';

/** Contexts the values are bound to (the app id). */
export const gitCredentialContext = (appId: string) => `git:${appId}:credential`;
export const webhookTokenContext = (appId: string) => `webhook:${appId}:token`;
export const projectWebhookTokenContext = (projectId: string) => `project-webhook:${projectId}:token`;

/** Re-seals every git credential and webhook token not sealed with `kid`; returns how many. */
export async function resealGitSecrets(trx: Kysely<Database>, box: SecretBox, kid: string): Promise<number> {
  const db = trx.withTables<
    GitTables & {
      git_webhooks: { app_id: string; token: string };
      git_project_webhooks: { project_id: string; token: string };
    }
  >();
  let n = 0;
  for (const s of await db.selectFrom('git_sources').select(['app_id', 'credential']).forUpdate().execute()) {
    if (!s.credential || !SecretBox.isSealed(s.credential) || s.credential.split('.')[1] === kid) continue;
    const ctx = gitCredentialContext(s.app_id);
    await db
      .updateTable('git_sources')
      .set({ credential: box.seal(box.open(s.credential, ctx), ctx) })
      .where('app_id', '=', s.app_id)
      .execute();
    n++;
  }
  for (const w of await db.selectFrom('git_webhooks').select(['app_id', 'token']).forUpdate().execute()) {
    if (w.token.split('.')[1] === kid) continue;
    const ctx = webhookTokenContext(w.app_id);
    await db
      .updateTable('git_webhooks')
      .set({ token: box.seal(box.open(w.token, ctx), ctx) })
      .where('app_id', '=', w.app_id)
      .execute();
    n++;
  }
  for (const w of await db
    .selectFrom('git_project_webhooks')
    .select(['project_id', 'token'])
    .forUpdate()
    .execute()) {
    if (w.token.split('.')[1] === kid) continue;
    const ctx = projectWebhookTokenContext(w.project_id);
    await db
      .updateTable('git_project_webhooks')
      .set({ token: box.seal(box.open(w.token, ctx), ctx) })
      .where('project_id', '=', w.project_id)
      .execute();
    n++;
  }
  return n;
}
