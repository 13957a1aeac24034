/**
 * `npm run bench:remoting`: a `start` node driven over loopback Remoting, as RocketMQ's benchmark
 * Producer and Consumer drive a broker, printed as one table:
 * - SEND_MESSAGE_V2 throughput, 64 closed-loop senders over 8 connections, 1 KiB bodies, with the mean and
 *   p99 round trip;
 * - SEND_BATCH_MESSAGE throughput, 32 messages per batch (encodeMessageBatch), 64 senders;
 * - PULL_MESSAGE throughput, 32 messages per pull, one lane per queue (8 queues), reading what the two
 *   send phases stored (the rate while every lane still had messages to read);
 * - round trips at half of the peak single-send rate (64 rate-limited senders);
 * - single-send throughput of a node started with serverWorkerThreads=1, and of one with =2;
 * - the floor: the single-send and batch loads against `remoting-floor-server.ts`, a no-op Remoting server
 *   in a child process that frames and encodes with our codec and answers SUCCESS without storing, so the
 *   table shows how much of the gap to the targets is Node, loopback and the load generator on this machine
 *   (its rows' "cpu server" is that server's CPU); when the half-load phase ran, also the half-load rate
 *   offered to that server, whose p99 is what the load generator and loopback alone add to a round trip.
 * - opt-in (REMOTING_BENCH_PHASES naming `sweep`): single sends offered at the fixed rates of
 *   REMOTING_BENCH_SWEEP (default 1000,2000,5000,10000 msgs/s), with the node's CPU per send, to show how the
 *   cost of a send grows as the rate falls and cross-thread hand-offs stop sharing wake-ups.
 * The node runs as a child process (`node bin/rocketmq-ts.ts start`, ASYNC_FLUSH, ephemeral ports), so the
 * load generator's CPU is its own; both CPU figures are printed with each phase, since on a small
 * machine the two compete for the same cores. REMOTING_BENCH_SECONDS sets each timed phase's length
 * (default 5); REMOTING_BENCH_DIR the directory of the store (default: the OS temp dir). The children are
 * stopped by PID and the store removed at the end, on failure and on Ctrl-C alike.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RemotingClient } from '../src/net/remoting/remoting-client.ts';
import { requestOf } from '../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { CreateTopicRequestHeader } from '../src/net/remoting/broker-headers.ts';
import { closedLoop, connectClients, type PhaseResult, pullAll, rateLimited, REQUEST_TIMEOUT_MS, RequestFactory } from './remoting-load.ts';
import { type BenchNode, cleanUpAtExit, killNodeNow, processCpuSeconds, startBenchNode, startPortPrinter, stopBenchNode } from './remoting-node.ts';

const phaseMs = Number(process.env['REMOTING_BENCH_SECONDS'] ?? 5) * 1000;
if (!(phaseMs > 0)) throw new Error(`REMOTING_BENCH_SECONDS must be a positive number, got ${process.env['REMOTING_BENCH_SECONDS']}`);
const warmUpMs = Math.min(1_000, phaseMs);
// REMOTING_BENCH_PHASES picks phases (single,batch,pull,half,sweep,workers,floor), e.g. to profile one of
// them; every phase but `sweep` runs by default.
const PHASES = ['single', 'batch', 'pull', 'half', 'sweep', 'workers', 'floor'] as const;
const phases = new Set((process.env['REMOTING_BENCH_PHASES'] ?? PHASES.filter((phase) => phase !== 'sweep').join(',')).split(','));
for (const phase of phases) if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`unknown phase in REMOTING_BENCH_PHASES: ${phase}`);
const baseDir = fs.mkdtempSync(path.join(process.env['REMOTING_BENCH_DIR'] ?? os.tmpdir(), 'remoting-bench-'));

const SWEEP_RATES = (process.env['REMOTING_BENCH_SWEEP'] ?? '1000,2000,5000,10000').split(',').map(Number);
for (const rate of SWEEP_RATES) if (!(Number.isInteger(rate) && rate > 0)) throw new Error(`REMOTING_BENCH_SWEEP must list positive integers, got ${process.env['REMOTING_BENCH_SWEEP']}`);

const TOPIC = 'BenchTopic';
const QUEUES = 8;
const CONNECTIONS = 8;
const SENDERS = 64;
const BATCH_SIZE = 32;
const PULL_BATCH = 32;
const BODY = Buffer.alloc(1024, 'r');
const TARGET_SINGLE_PER_S = 80_000;
const TARGET_BATCH_PER_S = 250_000;
const TARGET_HALF_LOAD_P99_MS = 5;

type Row = { benchmark: string; result: string; target: string; verdict: string };
const rows: Row[] = [];
const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const perS = (result: PhaseResult, count: number = result.messages): number => count / (result.ms / 1000);

// ------------------------------------------------------------------------------------------ cleanup

const nodes = new Set<BenchNode>();
let floorChild: ChildProcess | undefined;
/** Kills every node still running and removes the store (once; also at exit and on Ctrl-C). */
const cleanUpNow = cleanUpAtExit(() => {
  for (const node of nodes) killNodeNow(node.child);
  if (floorChild !== undefined) killNodeNow(floorChild);
  fs.rmSync(baseDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------ phases

/** A server under load (its CPU is read by PID) with the clients that drive it. */
type Load = { node: { readonly pid: number }; clients: RemotingClient[]; factory: RequestFactory; serverName?: string };
/** A started node with its clients, and the node's CPU counter. */
type Session = Load & { node: BenchNode };

async function openSession(name: string, overrides: Record<string, string>): Promise<Session> {
  const node = await startBenchNode(path.join(baseDir, name), overrides);
  nodes.add(node);
  const clients = await connectClients(`127.0.0.1:${node.brokerPort}`, CONNECTIONS);
  const header = CreateTopicRequestHeader.format({
    topic: TOPIC,
    defaultTopic: 'TBW102',
    readQueueNums: QUEUES,
    writeQueueNums: QUEUES,
    perm: 6,
    topicFilterType: 'SINGLE_TAG',
  });
  const created = await clients[0]!.invoke(requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, header), REQUEST_TIMEOUT_MS);
  if (created.code !== ResponseCode.SUCCESS) throw new Error(`creating ${TOPIC} failed: ${created.code} ${created.remark ?? ''}`);
  return { node, clients, factory: new RequestFactory(TOPIC, QUEUES, BODY) };
}

async function closeSession(session: Session): Promise<void> {
  await Promise.all(session.clients.map((client) => client.close()));
  const stopped = await stopBenchNode(session.node);
  nodes.delete(session.node);
  if (!stopped.graceful) console.error(`node ${session.node.pid} did not stop gracefully (exit code ${stopped.exitCode})`);
}

/**
 * Runs a phase and returns it with the node's CPU use over the same time: in seconds (undefined where /proc
 * is absent) and as a share of one core.
 */
async function measured<R extends PhaseResult>(
  session: Load,
  run: () => Promise<R>,
): Promise<R & { nodeCpuS: number | undefined; nodeCpu: string; clientCpu: string }> {
  const before = processCpuSeconds(session.node.pid);
  const result = await run();
  const after = processCpuSeconds(session.node.pid);
  const nodeCpuS = before === undefined || after === undefined ? undefined : after - before;
  const share = (cpuS: number): string => `${fmt((cpuS / (result.ms / 1000)) * 100)}%`;
  const serverCpu = nodeCpuS === undefined ? '?' : share(nodeCpuS);
  return { ...result, nodeCpuS, nodeCpu: `${session.serverName ?? 'node'} ${serverCpu}`, clientCpu: share(result.clientCpuS) };
}

/** Latency, failures and CPU of a phase, as the result column shows them. */
function details(result: PhaseResult & { nodeCpu: string; clientCpu: string }, latency: boolean): string {
  const parts: string[] = [];
  if (latency) parts.push(`avg ${fmt(result.histogram.meanMs, 2)} ms, p99 ${fmt(result.histogram.quantileMs(0.99), 2)} ms`);
  const failed = [...result.failures].map(([code, count]) => `${fmt(count)} x code ${code}`);
  if (failed.length > 0) parts.push(`FAILED ${failed.join(', ')} (${result.failureRemarks.join(' | ')})`);
  if (result.errors > 0) parts.push(`${fmt(result.errors)} unanswered (${result.firstError ?? ''})`);
  parts.push(`cpu ${result.nodeCpu}, bench ${result.clientCpu}`);
  return parts.join('; ');
}

const clean = (result: PhaseResult): boolean => result.failures.size === 0 && result.errors === 0;

async function singleSends(session: Load, label: string, target: string, targetPerS: number | undefined): Promise<number> {
  await closedLoop(session.clients, SENDERS, warmUpMs, () => session.factory.single(), 1);
  const result = await measured(session, () => closedLoop(session.clients, SENDERS, phaseMs, () => session.factory.single(), 1));
  const rate = perS(result);
  const met = targetPerS === undefined ? '' : rate >= targetPerS && clean(result) ? 'met' : 'MISSED';
  rows.push({ benchmark: label, result: `${fmt(rate)} msgs/s; ${details(result, true)}`, target, verdict: met });
  return rate;
}

async function batchSends(session: Load, label: string, targetPerS: number | undefined): Promise<void> {
  await closedLoop(session.clients, SENDERS, warmUpMs / 2, () => session.factory.batch(BATCH_SIZE), BATCH_SIZE);
  const result = await measured(session, () => closedLoop(session.clients, SENDERS, phaseMs, () => session.factory.batch(BATCH_SIZE), BATCH_SIZE));
  const rate = perS(result);
  rows.push({
    benchmark: label,
    result: `${fmt(rate)} msgs/s (${fmt(perS(result, result.requests))} batches/s); ${details(result, true)}`,
    target: targetPerS === undefined ? '-' : `>= ${fmt(targetPerS)} msgs/s`,
    verdict: targetPerS === undefined ? '' : rate >= targetPerS && clean(result) ? 'met' : 'MISSED',
  });
}

async function pulls(session: Session): Promise<void> {
  const result = await measured(session, () => pullAll(session.clients, TOPIC, QUEUES, PULL_BATCH, phaseMs));
  // Lanes that have read their queue to the end stop, so the rate is taken while all of them pulled.
  const rate = result.allBusyMessages / (result.allBusyMs / 1000);
  const drained =
    result.drainedQueues > 0
      ? ` while all ${QUEUES} lanes pulled (first queue read to the end after ${fmt(result.allBusyMs / 1000, 2)} s; ` +
        `${fmt(result.messages)} msgs in all, ${result.drainedQueues} queues drained)`
      : `, ${fmt(result.messages)} msgs`;
  rows.push({
    benchmark: `PULL_MESSAGE, ${PULL_BATCH} msgs per pull, ${QUEUES} queues, 1 lane each`,
    result: `${fmt(rate)} msgs/s${drained}; ${details(result, true)}`,
    target: '-',
    verdict: clean(result) ? '' : 'errors',
  });
}

/** The half-load rate of the product's run, which the floor phase offers to the no-op server too. */
let halfLoadPerS: number | undefined;

/**
 * Rate-limited single sends at `ratePerS`; the row has a verdict only when `target` is set, and shows the
 * server's CPU per acknowledged send when `cpuPerSend` is.
 */
async function rateLimitedSends(session: Load, label: string, ratePerS: number, target: boolean, cpuPerSend = false): Promise<void> {
  const result = await measured(session, () => rateLimited(session.clients, SENDERS, phaseMs, ratePerS, () => session.factory.single()));
  const p99 = result.histogram.quantileMs(0.99);
  const perSend =
    !cpuPerSend ? '' : `${session.serverName ?? 'node'} CPU ${result.nodeCpuS === undefined || result.messages === 0 ? '?' : fmt((result.nodeCpuS / result.messages) * 1e6)} µs per send; `;
  rows.push({
    benchmark: label,
    result: `${fmt(perS(result))} msgs/s done; ${perSend}p50 ${fmt(result.histogram.quantileMs(0.5), 2)} ms; ${details(result, true)}`,
    target: target ? `p99 <= ${TARGET_HALF_LOAD_P99_MS} ms` : '-',
    verdict: !target ? '' : p99 <= TARGET_HALF_LOAD_P99_MS && clean(result) ? 'met' : 'MISSED',
  });
}

async function halfLoad(session: Session, peakPerS: number): Promise<void> {
  const ratePerS = Math.max(1, Math.round(peakPerS / 2));
  halfLoadPerS = ratePerS;
  await rateLimitedSends(session, `SEND_MESSAGE_V2 at 50% of peak: ${fmt(ratePerS)} msgs/s offered, ${SENDERS} rate-limited senders`, ratePerS, true);
}

/** Single sends at each of SWEEP_RATES, with the node's CPU per acknowledged send. */
async function sweep(session: Session): Promise<void> {
  for (const ratePerS of SWEEP_RATES) {
    await rateLimitedSends(session, `SEND_MESSAGE_V2 at a fixed ${fmt(ratePerS)} msgs/s offered (sweep), ${SENDERS} rate-limited senders`, ratePerS, false, true);
  }
}

/** The single-send and batch loads against the floor server; it is killed by PID when they are done. */
async function floorPhase(): Promise<void> {
  const floor = await startPortPrinter(fileURLToPath(new URL('./remoting-floor-server.ts', import.meta.url)), (child) => {
    floorChild = child;
  });
  const clients = await connectClients(`127.0.0.1:${floor.port}`, CONNECTIONS);
  const load: Load = { node: { pid: floor.child.pid! }, clients, factory: new RequestFactory(TOPIC, QUEUES, BODY), serverName: 'server' };
  await singleSends(load, 'floor: a no-op Remoting server (our codec, answers SUCCESS without storing), SEND_MESSAGE_V2, same load', '-', undefined);
  await batchSends(load, `floor: the same no-op server, SEND_BATCH_MESSAGE, ${BATCH_SIZE} x 1 KiB per batch, same load`, undefined);
  if (halfLoadPerS !== undefined) {
    await rateLimitedSends(load, `floor: the same no-op server, SEND_MESSAGE_V2 at the half-load row's rate (${fmt(halfLoadPerS)} msgs/s)`, halfLoadPerS, false);
  }
  await Promise.all(clients.map((client) => client.close()));
  if (floor.child.exitCode === null && floor.child.signalCode === null) {
    const exited = new Promise((resolve) => floor.child.once('exit', resolve));
    killNodeNow(floor.child);
    await exited;
  }
  floorChild = undefined;
}

// ------------------------------------------------------------------------------------------ run

let defaultWorkers = 0;
try {
  // The product's phases start from the default node's single-send run; the floor alone needs no node.
  if ([...phases].some((phase) => phase !== 'floor')) {
    const main = await openSession('default', {});
    defaultWorkers = main.node.remotingThreads;
    const peak = await singleSends(
      main,
      `SEND_MESSAGE_V2, 1 KiB, ${SENDERS} senders / ${CONNECTIONS} connections (serverWorkerThreads=${defaultWorkers}, default)`,
      `>= ${fmt(TARGET_SINGLE_PER_S)} msgs/s`,
      TARGET_SINGLE_PER_S,
    );
    if (phases.has('batch')) {
      await batchSends(main, `SEND_BATCH_MESSAGE, ${BATCH_SIZE} x 1 KiB per batch, ${SENDERS} senders / ${CONNECTIONS} connections`, TARGET_BATCH_PER_S);
    }
    if (phases.has('pull')) await pulls(main);
    if (phases.has('half')) await halfLoad(main, peak);
    if (phases.has('sweep')) await sweep(main);
    await closeSession(main);
    for (const workers of phases.has('workers') ? [1, 2] : []) {
      const session = await openSession(`workers-${workers}`, { serverWorkerThreads: String(workers) });
      await singleSends(session, `SEND_MESSAGE_V2, 1 KiB, ${SENDERS} senders / ${CONNECTIONS} connections, serverWorkerThreads=${workers}`, '-', undefined);
      await closeSession(session);
    }
  }
  if (phases.has('floor')) await floorPhase();
} finally {
  for (const node of nodes) await stopBenchNode(node).catch(() => killNodeNow(node.child));
  cleanUpNow();
}

const keys = ['benchmark', 'result', 'target', 'verdict'] as const;
const widths = keys.map((key) => Math.max(key.length, ...rows.map((row) => row[key].length)));
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(
  `\nrocketmq-ts Remoting benchmark (node ${process.version}, ${os.cpus().length} cores, ${phaseMs / 1000} s per phase, ` +
    `child-process node, ASYNC_FLUSH, loopback, store in ${path.dirname(baseDir)})\n`,
);
console.log(line([...keys]));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const row of rows) console.log(line([row.benchmark, row.result, row.target, row.verdict]));
