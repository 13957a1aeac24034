/**
 * A `start` node for the Remoting benchmark, run as a child process (`node bin/rocketmq-ts.ts start`)
 * so that the load generator's CPU is not the broker's; `spawnBenchNode` starts any role the same way. Ports are ephemeral and read from the node's
 * 'node started' log line; the store lives in a directory the caller owns. The child is stopped by its
 * PID: SIGTERM (graceful: drain, flush), then SIGKILL when it takes too long. `killNodeNow` is the
 * synchronous last resort for `process.on('exit')`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const bin = new URL('../bin/rocketmq-ts.ts', import.meta.url).pathname;

/** How long the node may take to print 'node started'. */
const START_TIMEOUT_MS = 60_000;
/** How long a graceful stop may take before SIGKILL. */
const STOP_GRACE_MS = 20_000;
/** Log lines kept for an error report, newest last. */
const LOG_LINES_KEPT_MAX = 40;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on every Linux we run on). */
const PROC_TICKS_PER_S = 100;

/** A running child node. */
export type BenchNode = {
  readonly pid: number;
  /** Each port the node bound; 0 for a role it does not run. */
  readonly brokerPort: number;
  readonly namesrvPort: number;
  /** The Proxy's gRPC port (LOCAL mode). */
  readonly grpcPort: number;
  /** The broker's HA listener (haListenPort after binding). */
  readonly haPort: number;
  /** The controller's port (standalone, or embedded with enableControllerInNamesrv). */
  readonly controllerPort: number;
  /** Remoting worker threads the node reported (serverWorkerThreads after defaults). */
  readonly remotingThreads: number;
  readonly child: ChildProcess;
  /** The last log lines, for an error message. */
  readonly logTail: string[];
};

type LogLine = {
  msg?: string;
  ports?: { broker?: number; namesrv?: number; grpc?: number; ha?: number; controller?: number };
  pools?: { pool: string; size: number }[];
};

/** Starts `node bin/rocketmq-ts.ts start` with ephemeral ports and resolves once it has bound them. */
export function startBenchNode(storeDir: string, overrides: Readonly<Record<string, string>>): Promise<BenchNode> {
  return spawnBenchNode(
    'start',
    storeDir,
    { namesrvAddr: '127.0.0.1:0', listenPort: '0', grpcServerPort: '0', brokerIP1: '127.0.0.1', flushDiskType: 'ASYNC_FLUSH', ...overrides },
  );
}

/**
 * Starts `node bin/rocketmq-ts.ts <role> --storePathRootDir=<storeDir> --key=value ...` (BENCH_NODE_ARGS
 * go to node itself) and resolves once its 'node started' line has named the bound ports. `onSpawn` sees
 * the child before it has started, so a caller can track it for an exit handler.
 */
export function spawnBenchNode(
  role: string,
  storeDir: string,
  overrides: Readonly<Record<string, string>>,
  onSpawn: (child: ChildProcess) => void = () => {},
): Promise<BenchNode> {
  const args = [bin, role, `--storePathRootDir=${storeDir}`, '--logLevel=info', ...Object.entries(overrides).map(([key, value]) => `--${key}=${value}`)];
  fs.mkdirSync(storeDir, { recursive: true });
  const nodeArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter((arg) => arg !== '');
  const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onSpawn(child);
  const logTail: string[] = [];
  const keep = (line: string): void => {
    logTail.push(line);
    if (logTail.length > LOG_LINES_KEPT_MAX) logTail.shift();
  };
  return new Promise((resolve, reject) => {
    let remotingThreads = 0;
    let pending = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killNodeNow(child);
      reject(new Error(`${role} node: ${why}\n--- node log tail ---\n${logTail.join('\n')}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.stderr!.on('data', (chunk: Buffer) => keep(chunk.toString().trimEnd()));
    // stdout is read to the end of the child's life, so a chatty node never blocks on a full pipe.
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
        if (line.msg === 'thread pools started') remotingThreads = line.pools?.find((pool) => pool.pool === 'remoting')?.size ?? 0;
        if (line.msg === 'node started' && line.ports !== undefined) {
          settled = true;
          clearTimeout(timer);
          const ports = line.ports;
          resolve({
            pid: child.pid!,
            brokerPort: ports.broker ?? 0,
            namesrvPort: ports.namesrv ?? 0,
            grpcPort: ports.grpc ?? 0,
            haPort: ports.ha ?? 0,
            controllerPort: ports.controller ?? 0,
            remotingThreads,
            child,
            logTail,
          });
        }
      }
      // A line longer than the kept tail is of no use to anyone; drop it rather than grow.
      if (pending.length > 1024 * 1024) pending = '';
    });
    child.once('error', (error) => fail(`could not be spawned: ${error.message}`));
    child.once('exit', (code, signal) => fail(`exited before it started (code ${code}, signal ${signal})`));
  });
}

/** Stops the node by its PID: SIGTERM, then SIGKILL after STOP_GRACE_MS. Resolves once it has exited. */
export async function stopBenchNode(node: BenchNode): Promise<{ graceful: boolean; exitCode: number | null }> {
  const child = node.child;
  if (child.exitCode !== null || child.signalCode !== null) return { graceful: child.exitCode === 0, exitCode: child.exitCode };
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  process.kill(node.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_GRACE_MS)));
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome !== 'late') return { graceful: outcome === 0, exitCode: outcome };
  killNodeNow(child);
  return { graceful: false, exitCode: await exited };
}

/** SIGKILL by PID if the child still runs; synchronous, so it may run in an 'exit' handler. */
export function killNodeNow(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // Already gone between the check and the kill.
  }
}

/**
 * Makes `cleanUp` (synchronous: it kills children by PID and removes directories) run once, at whichever
 * comes first: the returned function's call, the process's exit, or SIGINT / SIGTERM (which exit with 130).
 */
export function cleanUpAtExit(cleanUp: () => void): () => void {
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    cleanUp();
  };
  process.once('exit', once);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  return once;
}

/** CPU seconds (user + system, all threads) the process `pid` has used; undefined where /proc is absent. */
export function processCpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join('/proc', String(pid), 'stat'), 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name (0-based 11, 12).
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return (utime + stime) / PROC_TICKS_PER_S;
}

/** How long a floor server (or any child started by startPortPrinter) may take to print its port. */
const PORT_PRINT_TIMEOUT_MS = 30_000;

/**
 * Starts `node <script>` (a bench floor server) and resolves with the child and the port it prints on its
 * first stdout line; `onSpawn` gets the child at once so a caller's cleanup can kill it by PID.
 */
export function startPortPrinter(script: string, onSpawn: (child: ChildProcess) => void): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  onSpawn(child);
  return new Promise((resolve, reject) => {
    let printed = '';
    let settled = false;
    const settle = (outcome: number | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (typeof outcome === 'number') resolve({ child, port: outcome });
      else reject(outcome);
    };
    const timer = setTimeout(() => settle(new Error(`${script} did not print its port within ${PORT_PRINT_TIMEOUT_MS} ms`)), PORT_PRINT_TIMEOUT_MS);
    child.once('error', (error) => settle(new Error(`${script} could not be spawned: ${error.message}`)));
    child.once('exit', (code, signal) => settle(new Error(`${script} exited before it listened (code ${code}, signal ${signal})`)));
    // stdout is read to the end of the child's life (it prints only its port), so it never blocks on a full pipe.
    child.stdout!.on('data', (chunk: Buffer) => {
      if (settled) return;
      printed += chunk.toString();
      if (!printed.includes('\n')) return;
      const value = Number(printed.trim());
      settle(Number.isInteger(value) && value > 0 ? value : new Error(`${script} printed ${JSON.stringify(printed.slice(0, 100))}, not a port`));
    });
  });
}
