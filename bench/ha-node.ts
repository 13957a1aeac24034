/**
 * Role nodes for the HA benchmark: `node bin/rocketmq-ts.ts namesrv|broker` as child processes, so that a
 * master can be killed with SIGKILL and each process's CPU is its own. Ports are ephemeral and read from
 * the node's 'node started' log line (broker, HA, NameServer and embedded controller ports). Every node
 * started here is tracked from its spawn until it exits, so that the bench's exit handler can kill what
 * is left (`killAllNow`), even a node still starting. Starting, stopping and killing reuse the Remoting bench's helpers.
 */
import type { ChildProcess } from 'node:child_process';
import { type BenchNode, killNodeNow, spawnBenchNode, stopBenchNode } from './remoting-node.ts';

/** Most nodes alive at once (the bench runs at most a NameServer and a few brokers per phase). */
const NODES_ALIVE_MAX = 16;

/** The roles the HA bench starts. */
export type HaRole = 'namesrv' | 'broker';

/** A running child node: the Remoting bench's node with its role and a name for reports. */
export type HaNode = BenchNode & {
  readonly role: HaRole;
  /** A name for reports ('master', 'slave', ...). */
  readonly name: string;
};

/** Nodes started and not yet stopped. */
const runningNodes = new Set<HaNode>();
/** Nodes stopped with SIGSTOP: SIGTERM would wait for a SIGCONT, so they are stopped with SIGKILL. */
const frozenNodes = new Set<HaNode>();
/** Every child process not yet exited, started or still starting, for the exit handler. */
const liveChildren = new Set<ChildProcess>();

/** Starts `node bin/rocketmq-ts.ts <role>` with `overrides` as `--key=value` and resolves once it has bound its ports. */
export async function startHaNode(role: HaRole, name: string, storeDir: string, overrides: Readonly<Record<string, string>>): Promise<HaNode> {
  if (liveChildren.size >= NODES_ALIVE_MAX) throw new Error(`more than ${NODES_ALIVE_MAX} bench nodes alive at once`);
  const track = (child: ChildProcess): void => {
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
  };
  const started = await spawnBenchNode(role, storeDir, { listenPort: '0', ...overrides }, track).catch((error: unknown) => {
    throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const node: HaNode = { ...started, role, name };
  runningNodes.add(node);
  node.child.once('exit', () => runningNodes.delete(node));
  return node;
}

/** Graceful stop (SIGTERM, SIGKILL after the Remoting bench's grace period); resolves once the process is gone. */
export async function stopHaNode(node: HaNode): Promise<void> {
  if (frozenNodes.has(node)) return crashHaNode(node);
  await stopBenchNode(node).catch(() => killNodeNow(node.child));
  runningNodes.delete(node);
}

/** SIGKILL, as a crash; resolves once the process is gone. */
export async function crashHaNode(node: HaNode): Promise<void> {
  const child = node.child;
  frozenNodes.delete(node);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killNodeNow(child);
  await exited;
  runningNodes.delete(node);
}

/** SIGSTOP, as a hung process: its connections stay open and nothing answers. Undo with crashHaNode. */
export function freezeHaNode(node: HaNode): void {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  process.kill(node.pid, 'SIGSTOP');
  frozenNodes.add(node);
}

/** Stops every node still running, in parallel. */
export async function stopAllHaNodes(): Promise<void> {
  await Promise.all([...runningNodes].map((node) => stopHaNode(node)));
}

/** SIGKILLs every node still running; synchronous, for 'exit' handlers. */
export function killAllNow(): void {
  for (const child of liveChildren) killNodeNow(child);
  liveChildren.clear();
  runningNodes.clear();
  frozenNodes.clear();
}
