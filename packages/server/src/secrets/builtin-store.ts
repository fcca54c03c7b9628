/**
 * The built-in {@link SecretStore}: the reference is the value itself, sealed with AES-256-GCM under the
 * master key ring ({@link SecretBox}), bound to `env:<app id>:<name>` (ADR 0010). Nothing is kept
 * elsewhere, so a release snapshot holds everything a rollback needs.
 */
import { SecretBox } from '@minipaas/core';
import type { SecretKey, SecretStore } from './secret-store.ts';

/** The AAD a secret env var is sealed with. */
export const envContext = (key: SecretKey) => `env:${key.appId}:${key.name}`;

export class BuiltinSecretStore implements SecretStore {
  readonly kind = 'builtin';
  readonly box: SecretBox;

  constructor(box: SecretBox) {
    this.box = box;
  }

  owns(value: string): boolean {
    return SecretBox.isSealed(value);
  }

  async put(key: SecretKey, value: string): Promise<string> {
    return this.box.seal(value, envContext(key));
  }

  async get(key: SecretKey, ref: string): Promise<string> {
    return this.box.open(ref, envContext(key));
  }

  async forget(): Promise<void> {}
}
