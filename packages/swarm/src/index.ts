/**
 * `@minipaas/swarm`: the Docker Swarm toolkit of seed 000 — TLS certificates for the Docker API,
 * environment scaffolding, code generators, versioned secrets and configs, image builds, rollouts,
 * canaries and Caddy routing. The CLI's `certs`, `code`, `secret`, `config`, `deploy build|rollout|
 * canary|routing` and `shell` commands are thin wrappers around these functions.
 */
export * from './build-context.ts';
export * from './caddy-routing.ts';
export * from './canary-release.ts';
export * from './command-runner.ts';
export * from './compose-file.ts';
export * from './cron-scheduler.ts';
export * from './environment-init.ts';
export * from './image-builder.ts';
export * from './service-generators.ts';
export * from './stack-rollout.ts';
export * from './stack-services.ts';
export * from './swarm-environment.ts';
export * from './tls-certificates.ts';
export * from './upstream-dns.ts';
export * from './versioned-objects.ts';
