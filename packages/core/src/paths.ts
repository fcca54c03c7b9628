import { join } from 'node:path';

/** The layout of MINIPAAS_HOME. Every component derives its paths from here. */
export interface HomePaths {
  home: string;
  db: string;
  releases: string;
  logs: string;
  run: string;
  agentSocket: string;
  agentPid: string;
  serverPid: string;
  supervisorPid: string;
  /** Pid of the build worker process while it runs (minipaasd starts it on demand). */
  buildWorkerPid: string;
  agentState: string;
  adminToken: string;
  keys: string;
  builds: string;
  /** Database dumps (`minipaas backup`, scheduled backups). */
  backups: string;
}

export function homePaths(home: string): HomePaths {
  const run = join(home, 'run');
  return {
    home,
    db: join(home, 'db'),
    releases: join(home, 'releases'),
    logs: join(home, 'logs'),
    run,
    agentSocket: join(run, 'agent.sock'),
    agentPid: join(run, 'agent.pid'),
    serverPid: join(run, 'minipaasd.pid'),
    supervisorPid: join(run, 'minipaas.pid'),
    buildWorkerPid: join(run, 'build-worker.pid'),
    agentState: join(run, 'agent-state.json'),
    adminToken: join(home, 'admin-token'),
    keys: join(home, 'keys'),
    builds: join(home, 'builds'),
    backups: join(home, 'backups'),
  };
}

/** Directory of one release of an app. */
export function releaseDir(home: string, app: string, version: number): string {
  return join(home, 'releases', app, `v${version}`);
}
