/**
 * Entry point of the `minipaas-agent` binary: loads the configuration, starts the agent and stops
 * every app cleanly on SIGINT/SIGTERM or `POST /v1/shutdown`.
 */
import { loadConfig } from '@minipaas/core';
import { startAgent } from './agent.ts';

async function main(): Promise<void> {
  let config: Awaited<ReturnType<typeof loadConfig>>;
  try {
    config = await loadConfig();
  } catch (err) {
    console.error(`minipaas-agent: ${(err as Error).message}`);
    process.exit(2);
  }
  const agent = await startAgent({ config, onShutdown: () => process.exit(0) });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    agent.logger.info({ signal }, 'signal received');
    agent.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`minipaas-agent: shutdown failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(`minipaas-agent: ${(err as Error).message}`);
  process.exit(1);
});
