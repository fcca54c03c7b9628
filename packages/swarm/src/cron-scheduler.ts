/**
 * A scheduler for services carrying swarm-cronjob's labels (what `code cron` writes), for where
 * swarm-cronjob itself is not installed: `swarm.cronjob.enable=true`, `swarm.cronjob.schedule` (5 cron
 * fields, or 6 with seconds first), `swarm.cronjob.skip-running` and `swarm.cronjob.replicas`. A run
 * does what swarm-cronjob does: scale a replicated service to its replicas and force an update, so
 * Swarm starts fresh tasks (restart policy `none` lets them run once). Schedules come from croner.
 */

import { Cron } from 'croner';
import type Docker from 'dockerode';
import { LABELS } from './service-generators.ts';
import { type ServiceInfo, STACK_LABEL, serviceTasks, type TaskInfo } from './stack-services.ts';

/** What the scheduler did. */
export interface CronEvent {
  type: 'scheduled' | 'unscheduled' | 'run' | 'skipped' | 'error';
  service: string;
  schedule?: string;
  message?: string;
  at: string;
}

/** Options of {@link CronScheduler}. */
export interface CronSchedulerOptions {
  docker: Docker;
  /** Only services of this stack (default: every labelled service of the swarm). */
  stack?: string;
  /** How often the labelled services are looked up again (default 5000 ms). */
  refreshMs?: number;
  /** Time zone of the schedules (default: the process's). */
  timezone?: string;
  onEvent?: (e: CronEvent) => void;
}

interface Entry {
  schedule: string;
  job: Cron;
}

const isTrue = (v: string | undefined): boolean => v === 'true' || v === '1';

/** Runs labelled services on their schedules until {@link CronScheduler.stop}. */
export class CronScheduler {
  private readonly opts: CronSchedulerOptions;
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(opts: CronSchedulerOptions) {
    this.opts = opts;
  }

  private emit(e: Omit<CronEvent, 'at'>): void {
    this.opts.onEvent?.({ ...e, at: new Date().toISOString() });
  }

  /** Looks up the labelled services now and (re)schedules them; then every `refreshMs`. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh();
    const loop = (): void => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.refresh()
          .catch((err: unknown) => this.emit({ type: 'error', service: '-', message: String(err) }))
          .finally(loop);
      }, this.opts.refreshMs ?? 5000);
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const e of this.entries.values()) e.job.stop();
    this.entries.clear();
  }

  /** The services currently scheduled, by name. */
  scheduled(): Map<string, string> {
    return new Map([...this.entries].map(([k, v]) => [k, v.schedule]));
  }

  async refresh(): Promise<void> {
    const labels = [`${LABELS.cronEnable}`];
    if (this.opts.stack) labels.push(`${STACK_LABEL}=${this.opts.stack}`);
    const services = (await this.opts.docker.listServices({
      filters: JSON.stringify({ label: labels }),
    })) as unknown as ServiceInfo[];
    const want = new Map<string, string>();
    for (const s of services) {
      const l = s.Spec.Labels ?? {};
      const schedule = l[LABELS.cronSchedule]?.trim();
      if (isTrue(l[LABELS.cronEnable]) && schedule) want.set(s.Spec.Name, schedule);
    }
    for (const [name, e] of this.entries) {
      if (want.get(name) === e.schedule) continue;
      e.job.stop();
      this.entries.delete(name);
      this.emit({ type: 'unscheduled', service: name, schedule: e.schedule });
    }
    for (const [name, schedule] of want) {
      if (this.entries.has(name)) continue;
      let job: Cron;
      try {
        job = new Cron(
          schedule,
          {
            protect: true,
            mode: '5-or-6-parts',
            ...(this.opts.timezone ? { timezone: this.opts.timezone } : {}),
          },
          () => this.run(name),
        );
      } catch (err) {
        this.emit({ type: 'error', service: name, schedule, message: `bad schedule: ${String(err)}` });
        continue;
      }
      this.entries.set(name, { schedule, job });
      this.emit({ type: 'scheduled', service: name, schedule });
    }
  }

  /** One run of a service now (what a schedule tick does). */
  async run(name: string): Promise<void> {
    const { docker } = this.opts;
    try {
      const list = (await docker.listServices({
        filters: JSON.stringify({ name: [name] }),
      })) as unknown as ServiceInfo[];
      const s = list.find((x) => x.Spec.Name === name);
      if (!s) return;
      const l = s.Spec.Labels ?? {};
      if (isTrue(l[LABELS.cronSkipRunning])) {
        const tasks = await serviceTasks(docker, name);
        if (
          tasks.some(
            (t) =>
              t.DesiredState === 'running' && ['running', 'starting', 'preparing'].includes(t.Status.State),
          )
        ) {
          this.emit({ type: 'skipped', service: name, message: 'the previous run is still running' });
          return;
        }
      }
      const replicas = Math.max(1, Number(l[LABELS.cronReplicas] ?? 1) || 1);
      const template = s.Spec.TaskTemplate as { ForceUpdate?: number };
      const spec = {
        ...s.Spec,
        ...(s.Spec.Mode?.Replicated ? { Mode: { Replicated: { Replicas: replicas } } } : {}),
        TaskTemplate: { ...s.Spec.TaskTemplate, ForceUpdate: (template.ForceUpdate ?? 0) + 1 },
      };
      await docker.getService(s.ID).update({ _query: { version: s.Version.Index }, _body: spec } as never);
      this.emit({ type: 'run', service: name });
    } catch (err) {
      this.emit({ type: 'error', service: name, message: err instanceof Error ? err.message : String(err) });
    }
  }
}

/** One past or current run of a scheduled service (a task). */
export interface CronRun {
  task: string;
  state: string;
  exitCode?: number;
  at: string;
}

/** The runs Swarm still remembers of a service (task history), oldest first. */
export async function cronRuns(docker: Docker, serviceName: string): Promise<CronRun[]> {
  const tasks = (await serviceTasks(docker, serviceName)) as (TaskInfo & {
    CreatedAt?: string;
    Status: { Timestamp?: string; ContainerStatus?: { ExitCode?: number } };
  })[];
  return tasks
    .map((t) => ({
      task: t.ID,
      state: t.Status.State,
      ...(t.Status.ContainerStatus?.ExitCode !== undefined
        ? { exitCode: t.Status.ContainerStatus.ExitCode }
        : {}),
      at: t.CreatedAt ?? t.Status.Timestamp ?? '',
    }))
    .sort((a, b) => a.at.localeCompare(b.at));
}
