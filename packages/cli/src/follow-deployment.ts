/**
 * Follows a deployment to its end: streams its log over SSE (with its place in the build queue while it
 * waits), falls back to polling if the stream drops.
 */
import type { DeploymentStatus, DeploymentView } from '@minipaas/core';
import { type ApiClient, ApiError } from './api-client.ts';
import { colors, type Output } from './output.ts';
import { sleep } from './platform.ts';

const TERMINAL: ReadonlySet<DeploymentStatus> = new Set(['running', 'failed', 'stopped', 'cancelled']);

export function isTerminal(status: string): boolean {
  return TERMINAL.has(status as DeploymentStatus);
}

export interface FollowResult {
  deployment: DeploymentView;
  /** Log lines printed while following (so callers know what the user has already seen). */
  printed: number;
}

/**
 * Streams `GET /api/v1/deployments/{id}/log?follow=true` (events `log`, `status`, `end`), printing lines
 * to `o` unless `quiet`. If the stream breaks (e.g. minipaasd restarts), polls the deployment until it
 * reaches a final status, for up to `reconnectMs` of unreachable API.
 */
export async function followDeployment(
  client: ApiClient,
  start: DeploymentView,
  o: Output,
  opts: { quiet?: boolean; reconnectMs?: number } = {},
): Promise<FollowResult> {
  const c = colors(o.isTTY);
  let printed = 0;
  let status: string = start.status;
  let position: number | null = null;
  const say = (text: string) => {
    if (!opts.quiet) o.out(text);
  };
  /** Prints a status change, and the queue position while queued ("queued (position 3)"). */
  const onStatus = (next: string | undefined, nextPosition: number | null | undefined) => {
    if (!next) return;
    if (next === 'queued') {
      const p = nextPosition ?? null;
      if (p !== position || next !== status) say(c.cyan(`-----> queued${p ? ` (position ${p})` : ''}\n`));
      position = p;
      status = next;
      return;
    }
    position = null;
    if (next !== status) {
      status = next;
      say(c.cyan(`-----> status: ${next}\n`));
    }
  };
  try {
    for await (const ev of client.deploymentLog(start.id)) {
      if (ev.event === 'log') {
        let text = ev.data;
        try {
          const d = JSON.parse(ev.data) as { line?: unknown };
          if (typeof d.line === 'string') text = d.line;
        } catch {
          // raw text
        }
        say(`${text}\n`);
        printed++;
      } else if (ev.event === 'status') {
        try {
          const d = JSON.parse(ev.data) as { status?: string; position?: number | null };
          onStatus(d.status, d.position);
        } catch {
          // ignore malformed
        }
      } else if (ev.event === 'end') {
        try {
          return { deployment: JSON.parse(ev.data) as DeploymentView, printed };
        } catch {
          break;
        }
      }
    }
  } catch (err) {
    if (err instanceof ApiError && err.status !== 404 && err.status < 500) throw err;
    // stream broke: fall through to polling
  }
  const deadlineMs = opts.reconnectMs ?? 120_000;
  let lostSince: number | undefined;
  for (;;) {
    try {
      const d = await client.getDeployment(start.id);
      lostSince = undefined;
      onStatus(d.status, d.position);
      if (isTerminal(d.status)) return { deployment: d, printed };
    } catch (err) {
      if (err instanceof ApiError && err.status < 500) throw err;
      lostSince ??= Date.now();
      if (Date.now() - lostSince > deadlineMs) throw err;
    }
    await sleep(1000);
  }
}
