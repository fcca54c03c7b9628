/** Reading a deployed stack through the Engine API: its services, their tasks and where they listen. */
import type Docker from 'dockerode';

/** The parts of a Swarm service this toolkit reads. */
export interface ServiceInfo {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    Mode?: {
      Replicated?: { Replicas?: number };
      Global?: object;
      ReplicatedJob?: object;
      GlobalJob?: object;
    };
    TaskTemplate: {
      ContainerSpec: { Image: string; Labels?: Record<string, string> } & Record<string, unknown>;
    } & Record<string, unknown>;
    EndpointSpec?: { Ports?: { TargetPort: number; PublishedPort?: number; PublishMode?: string }[] };
  } & Record<string, unknown>;
  UpdateStatus?: { State?: string; StartedAt?: string; CompletedAt?: string; Message?: string };
}

/** The parts of a task this toolkit reads. */
export interface TaskInfo {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  DesiredState: string;
  Status: {
    State: string;
    Err?: string;
    Message?: string;
    PortStatus?: { Ports?: { TargetPort: number; PublishedPort?: number }[] };
  };
  Spec?: { ContainerSpec?: { Image?: string } };
}

/** Label Docker sets on the services of a stack. */
export const STACK_LABEL = 'com.docker.stack.namespace';
/** Label on a canary service: the name of the service it is a canary of. */
export const CANARY_LABEL = 'minipaas.canary.of';

/** Services of a stack (by the stack label). */
export async function stackServices(docker: Docker, stack: string): Promise<ServiceInfo[]> {
  return (await docker.listServices({
    filters: JSON.stringify({ label: [`${STACK_LABEL}=${stack}`] }),
  })) as unknown as ServiceInfo[];
}

/** Canary services of a stack's services. */
export async function canaryServices(docker: Docker, stack: string): Promise<ServiceInfo[]> {
  const all = (await docker.listServices({
    filters: JSON.stringify({ label: [CANARY_LABEL] }),
  })) as unknown as ServiceInfo[];
  return all.filter((s) => (s.Spec.Labels?.[CANARY_LABEL] ?? '').startsWith(`${stack}_`));
}

export async function serviceTasks(docker: Docker, serviceName: string): Promise<TaskInfo[]> {
  return (await docker.listTasks({
    filters: JSON.stringify({ service: [serviceName] }),
  })) as unknown as TaskInfo[];
}

/** Node id -> address that reaches the node (the advertised address; loopback for 0.0.0.0). */
export async function nodeAddresses(docker: Docker): Promise<Map<string, string>> {
  const nodes = (await docker.listNodes()) as unknown as { ID: string; Status?: { Addr?: string } }[];
  return new Map(
    nodes.map((n) => {
      const a = n.Status?.Addr;
      return [n.ID, !a || a === '0.0.0.0' ? '127.0.0.1' : a];
    }),
  );
}

/** An image reference without its `@sha256:` digest (Swarm pins digests into the spec). */
export const imageName = (ref: string | undefined): string => (ref ?? '').replace(/@sha256:[0-9a-f]+$/, '');

/** Replicas a replicated service wants (undefined for global services and jobs). */
export const wantedReplicas = (s: ServiceInfo): number | undefined => s.Spec.Mode?.Replicated?.Replicas;

/** Where a service's running tasks listen: the ones Swarm wants running, and the ones on their way out. */
export interface TaskEndpoints {
  wanted: string[];
  leaving: string[];
}

/** `host:port` of every running task of a service that publishes `targetPort` in host mode. */
export async function taskEndpoints(
  docker: Docker,
  serviceName: string,
  targetPort: number,
  nodes: Map<string, string>,
): Promise<TaskEndpoints> {
  const tasks = await serviceTasks(docker, serviceName);
  const endpoint = (t: TaskInfo): string | undefined => {
    const p = t.Status.PortStatus?.Ports?.find((x) => x.TargetPort === targetPort && x.PublishedPort);
    if (!p || !t.NodeID) return undefined;
    const addr = nodes.get(t.NodeID) ?? '127.0.0.1';
    return `${addr.includes(':') ? `[${addr}]` : addr}:${p.PublishedPort}`;
  };
  const running = tasks.filter((t) => t.Status.State === 'running');
  const list = (ts: TaskInfo[]): string[] =>
    ts
      .map(endpoint)
      .filter((e): e is string => Boolean(e))
      .sort();
  return {
    wanted: list(running.filter((t) => t.DesiredState === 'running')),
    leaving: list(running.filter((t) => t.DesiredState !== 'running')),
  };
}
