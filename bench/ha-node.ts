/**
 * Role nodes for the HA benchmark: `node bin/rocketmq-ts.ts namesrv|broker` as child processes, so that a
 * master can be killed with SIGKILL and each process's CPU is its own. Ports are ephemeral and read from
 * the node's 'node started' log line (broker, HA, NameServer and embedded controller ports). Every node
 * started here is tracked from its spawn until it exits, so that the bench's exit handler can kill what
 * is left (`killAllNow`), even a node still starting. Stopping and killing reuse the Remoting bench's helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { type BenchNode, killNodeNow, stopBenchNode } from './remoting-node.ts';

const bin = new URL('../bin/rocketmq-ts.ts', import.meta.url).pathname;

/** How long a node may take to print 'node started'. */
const START_TIMEOUT_MS = 60_000;
/** Log lines kept for an error report, newest last. */
const LOG_LINES_KEPT_MAX = 40;
/** Longest unterminated stdout line kept while waiting for its newline. */
const PENDING_LINE_CHARS_MAX = 1024 * 1024;
/** Most nodes alive at once (the bench runs at most a NameServer and a few brokers per phase). */
const NODES_ALIVE_MAX = 16;

/** The roles the HA bench starts. */
export type HaRole = 'namesrv' | 'broker';

/** A running child node: the Remoting bench's node plus the HA and controller ports. */
export type HaNode = BenchNode & {
  readonly role: HaRole;
  /** A name for reports ('master', 'slave', ...). */
  readonly name: string;
  /** The master's HA listener (haListenPort after binding); 0 for a NameServer. */
  readonly haPort: number;
  /** The embedded controller's port (enableControllerInNamesrv); 0 otherwise. */
  readonly controllerPort: number;
};

/** Nodes started and not yet stopped. */
const runningNodes = new Set<HaNode>();
/** Nodes stopped with SIGSTOP: SIGTERM would wait for a SIGCONT, so they are stopped with SIGKILL. */
const frozenNodes = new Set<HaNode>();
/** Every child process not yet exited, started or still starting, for the exit handler. */
const liveChildren = new Set<ChildProcess>();

type LogLine = { msg?: string; ports?: { broker?: number; namesrv?: number; ha?: number; controller?: number; grpc?: number } };

/** Starts `node bin/rocketmq-ts.ts <role>` with `overrides` as `--key=value` and resolves once it has bound its ports. */
export function startHaNode(role: HaRole, name: string, storeDir: string, overrides: Readonly<Record<string, string>>): Promise<HaNode> {
  if (liveChildren.size >= NODES_ALIVE_MAX) return Promise.reject(new Error(`more than ${NODES_ALIVE_MAX} bench nodes alive at once`));
  const args = [bin, role, '--listenPort=0', `--storePathRootDir=${storeDir}`, '--logLevel=info', ...Object.entries(overrides).map(([key, value]) => `--${key}=${value}`)];
  fs.mkdirSync(storeDir, { recursive: true });
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  const logTail: string[] = [];
  const keep = (line: string): void => {
    logTail.push(line);
    if (logTail.length > LOG_LINES_KEPT_MAX) logTail.shift();
  };
  return new Promise((resolve, reject) => {
    let pending = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killNodeNow(child);
      reject(new Error(`${name} (${role}): ${why}\n--- node log tail ---\n${logTail.join('\n')}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.stderr!.on('data', (chunk: Buffer) => keep(chunk.toString().trimEnd()));
    // stdout is read for the child's whole life, so a chatty node never blocks on a full pipe.
    child.stdout!.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
        const text = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        keep(text);
        if (settled) continue;
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          continue;
        }
        if (line.msg !== 'node started' || line.ports === undefined) continue;
        settled = true;
        clearTimeout(timer);
        const ports = line.ports;
        const node: HaNode = {
          role,
          name,
          pid: child.pid!,
          brokerPort: ports.broker ?? 0,
          namesrvPort: ports.namesrv ?? 0,
          grpcPort: ports.grpc ?? 0,
          haPort: ports.ha ?? 0,
          controllerPort: ports.controller ?? 0,
          remotingThreads: 0,
          child,
          logTail,
        };
        runningNodes.add(node);
        child.once('exit', () => runningNodes.delete(node));
        resolve(node);
      }
      if (pending.length > PENDING_LINE_CHARS_MAX) pending = '';
    });
    child.once('error', (error) => fail(`could not be spawned: ${error.message}`));
    child.once('exit', (code, signal) => fail(`exited before it started (code ${code}, signal ${signal})`));
  });
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
