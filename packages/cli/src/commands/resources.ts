/**
 * `minipaas resources APP` (show or set the memory/CPU limits and restart policy of an app) and the
 * usage cells of `minipaas ps` (docs/apps.md, "Resources").
 */
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { type Context, clientFor } from '../context.ts';
import { bytes, json, line } from '../output.ts';

interface ResourcesView {
  app: string;
  cpuMillicores: number;
  memoryMb: number;
  restartPolicy: string;
  source: { cpuMillicores: string; memoryMb: string; restartPolicy: string };
}

/** The CPU and MEM cells of `minipaas ps`: CPU in % of one core, memory against the enforced limit. */
export function usageCells(i: {
  usage?: { cpuMillicores: number; memoryBytes: number } | undefined;
  limits?: { memoryMb?: number | undefined; mode: string } | undefined;
}): [string, string] {
  if (!i.usage) return ['-', '-'];
  const cpu = `${(i.usage.cpuMillicores / 10).toFixed(0)}%`;
  const limit =
    i.limits?.memoryMb && i.limits.mode !== 'unsupported'
      ? ` / ${bytes(i.limits.memoryMb * 1024 * 1024)}`
      : '';
  return [cpu, `${bytes(i.usage.memoryBytes)}${limit}`];
}

/** `--memory`: MiB as a number, or with an M/G suffix. */
export function parseMemoryMb(s: string): number | null {
  if (s === 'default') return null;
  const m = /^(\d+)\s*(m|mb|mib|g|gb|gib)?$/i.exec(s.trim());
  if (!m) throw new CliError(`invalid memory "${s}": MiB (e.g. 256, 256M, 1G) or "default"`);
  const n = Number(m[1]) * (m[2]?.toLowerCase().startsWith('g') ? 1024 : 1);
  return n;
}

/** `--cpu`: millicores (500, 500m) or cores (0.5, 2), or "default". */
export function parseCpu(s: string): number | null {
  if (s === 'default') return null;
  const milli = /^(\d+)m$/i.exec(s.trim());
  if (milli) return Number(milli[1]);
  const cores = /^\d+(\.\d+)?$/.exec(s.trim());
  if (!cores) throw new CliError(`invalid cpu "${s}": millicores (500m) or cores (0.5, 2), or "default"`);
  const n = Number(s);
  return n >= 10 ? Math.round(n) : Math.round(n * 1000);
}

export function registerResources(program: Command, ctx: Context): void {
  program
    .command('resources')
    .description('show or set the memory and CPU limits and the restart policy of an app')
    .argument('<app>', 'app name or id')
    .option('--memory <mib>', 'memory limit per instance: 256, 512M, 1G, or "default"')
    .option('--cpu <cpu>', 'CPU limit per instance: 500m (millicores), 0.5 or 2 (cores), or "default"')
    .option('--restart <policy>', 'always | on-failure | no | default')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Limits apply per instance: the process runtime enforces them with cgroups when its agent runs as root
(otherwise "minipaas ps" and the app log say they are unsupported); docker containers get them in their
HostConfig. Changing them rolls the app's instances. Defaults: resources.defaultMemoryMB (512) and
resources.defaultCpuMillicores (1000).

Examples:
  $ minipaas resources web
  $ minipaas resources web --memory 256M --cpu 500m
  $ minipaas resources worker --restart on-failure
  $ minipaas resources web --memory default`,
    )
    .action(
      async (
        app: string,
        opts: { memory?: string; cpu?: string; restart?: string; json?: boolean },
        c: Command,
      ) => {
        const client = await clientFor(c, ctx);
        const path = `/api/v1/apps/${encodeURIComponent(app)}/resources`;
        let v: ResourcesView;
        if (opts.memory === undefined && opts.cpu === undefined && opts.restart === undefined) {
          v = await client.request<ResourcesView>('GET', path);
        } else {
          const body: Record<string, number | string | null> = {};
          if (opts.memory !== undefined) body.memoryMb = parseMemoryMb(opts.memory);
          if (opts.cpu !== undefined) body.cpuMillicores = parseCpu(opts.cpu);
          if (opts.restart !== undefined)
            body.restartPolicy = opts.restart === 'default' ? null : opts.restart;
          v = await client.request<ResourcesView>('PATCH', path, { json: body });
        }
        if (opts.json) return json(ctx.out, v);
        const src = (k: keyof ResourcesView['source']) => (v.source[k] === 'default' ? ' (default)' : '');
        line(ctx.out, `${v.app}:`);
        line(ctx.out, `  memory   ${bytes(v.memoryMb * 1024 * 1024)} per instance${src('memoryMb')}`);
        line(
          ctx.out,
          `  cpu      ${v.cpuMillicores}m (${v.cpuMillicores / 1000} cores) per instance${src('cpuMillicores')}`,
        );
        line(ctx.out, `  restart  ${v.restartPolicy}${src('restartPolicy')}`);
      },
    );
}
