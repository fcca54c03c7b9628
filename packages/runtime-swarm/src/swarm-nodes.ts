/**
 * The nodes of the swarm (`minipaas nodes`): role, availability, state, address and how many platform
 * tasks each runs; and changing a node's availability (`nodes:drain`, `nodes:activate`).
 */
import { MinipaasError } from '@minipaas/core';
import type Docker from 'dockerode';

/** One node as the platform shows it. */
export interface SwarmNodeInfo {
  id: string;
  /** The hostname, or `hostname/ID12` when several nodes share it; how instances name their node. */
  name: string;
  hostname: string;
  role: 'manager' | 'worker';
  /** `active`, `pause` or `drain`. */
  availability: string;
  /** `ready`, `down`, `unknown`, `disconnected`. */
  state: string;
  address: string;
  /** The manager that leads the raft (managers only). */
  leader: boolean;
  engine: string;
  /** Tasks Swarm wants running on the node (all services). */
  tasks: number;
}

interface NodeRaw {
  ID: string;
  Version: { Index: number };
  Spec: { Role?: string; Availability?: string; Labels?: Record<string, string>; Name?: string };
  Description?: { Hostname?: string; Engine?: { EngineVersion?: string } };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Addr?: string };
}

/** Display names of nodes by id: the hostname, qualified by the short id when hostnames repeat. */
export function nodeNames(
  nodes: readonly { ID: string; Description?: { Hostname?: string } }[],
): Map<string, string> {
  const seen = new Map<string, number>();
  for (const n of nodes) {
    const h = n.Description?.Hostname ?? n.ID;
    seen.set(h, (seen.get(h) ?? 0) + 1);
  }
  return new Map(
    nodes.map((n) => {
      const h = n.Description?.Hostname ?? n.ID;
      return [n.ID, (seen.get(h) ?? 0) > 1 ? `${h}/${n.ID.slice(0, 12)}` : h];
    }),
  );
}

export const NODE_AVAILABILITY = ['active', 'pause', 'drain'] as const;
export type NodeAvailability = (typeof NODE_AVAILABILITY)[number];

/** Every node of the swarm with its running-task count, managers first. */
export async function listSwarmNodes(docker: Docker): Promise<SwarmNodeInfo[]> {
  const [nodes, tasks] = await Promise.all([
    docker.listNodes() as unknown as Promise<NodeRaw[]>,
    docker.listTasks({ filters: JSON.stringify({ 'desired-state': ['running'] }) }) as unknown as Promise<
      { NodeID?: string; Status?: { State?: string } }[]
    >,
  ]);
  const count = new Map<string, number>();
  for (const t of tasks) if (t.NodeID) count.set(t.NodeID, (count.get(t.NodeID) ?? 0) + 1);
  const names = nodeNames(nodes);
  return nodes
    .map((n) => ({
      id: n.ID,
      name: names.get(n.ID) ?? n.ID,
      hostname: n.Description?.Hostname ?? n.ID,
      role: n.Spec.Role === 'manager' ? ('manager' as const) : ('worker' as const),
      availability: n.Spec.Availability ?? 'active',
      state: n.Status?.State ?? 'unknown',
      address: n.ManagerStatus?.Addr?.replace(/:\d+$/, '') ?? n.Status?.Addr ?? '',
      leader: n.ManagerStatus?.Leader === true,
      engine: n.Description?.Engine?.EngineVersion ?? '',
      tasks: count.get(n.ID) ?? 0,
    }))
    .sort((a, b) =>
      a.role === b.role ? a.hostname.localeCompare(b.hostname) : a.role === 'manager' ? -1 : 1,
    );
}

/** Finds a node by id, id prefix (≥ 6 characters), name or hostname; a 404 when none or several match. */
export async function findSwarmNode(docker: Docker, ref: string): Promise<SwarmNodeInfo> {
  const nodes = await listSwarmNodes(docker);
  const exact = nodes.filter((n) => n.id === ref || n.name === ref || n.hostname === ref);
  const matches = exact.length ? exact : ref.length >= 6 ? nodes.filter((n) => n.id.startsWith(ref)) : [];
  if (matches.length === 1 && matches[0]) return matches[0];
  throw new MinipaasError(
    'MINIPAAS_ERR_NOT_FOUND',
    matches.length
      ? `node ${JSON.stringify(ref)} is ambiguous`
      : `no node ${JSON.stringify(ref)} in the swarm`,
  );
}

/** Sets a node's availability (`drain` moves its tasks to other nodes); returns the node afterwards. */
export async function setNodeAvailability(
  docker: Docker,
  ref: string,
  availability: NodeAvailability,
): Promise<SwarmNodeInfo> {
  const found = await findSwarmNode(docker, ref);
  const node = docker.getNode(found.id);
  const raw = (await node.inspect()) as NodeRaw;
  if (raw.Spec.Availability !== availability)
    await node.update({
      _query: { version: raw.Version.Index },
      _body: { ...raw.Spec, Availability: availability },
    } as never);
  return findSwarmNode(docker, found.id);
}
