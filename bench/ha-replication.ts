/**
 * The replication phases of `npm run bench:ha`:
 * - `replication`: an ASYNC_MASTER with one SLAVE. Closed-loop senders push SEND_BATCH_MESSAGE batches at
 *   the master as fast as it answers; a sampler reads both CommitLogs' max offsets (GET_BROKER_RUNTIME_INFO)
 *   every SAMPLE_INTERVAL_MS. The master's CommitLog growth and the slave's over the same window give the
 *   append and replication rates; the lag when the load stops, the largest lag sampled and the time the
 *   slave then needs to catch up say whether replication keeps pace. Then single SEND_MESSAGE_V2 sends
 *   to the same ASYNC_MASTER, as the baseline of the next phase.
 * - `sync`: a SYNC_MASTER with one SLAVE; single SEND_MESSAGE_V2 sends by a fixed number of closed-loop
 *   senders, each acknowledged only once the slave has the message: msgs/s, p50 and p99.
 * The load generator is the Remoting bench's (closedLoop, RequestFactory, Histogram).
 */
import path from 'node:path';
import type { RemotingClient } from '../src/net/remoting/remoting-client.ts';
import { ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { closedLoop, connectClients, type PhaseResult, RequestFactory } from './remoting-load.ts';
import { processCpuSeconds } from './remoting-node.ts';
import { type BrokerPair, offsetsOf, startPair, stopPair } from './ha-pair.ts';
import { codeName, pollUntil, sendOne, sleep } from './ha-probe.ts';
import { cpuShare, fmt, type HaTable, mib } from './ha-table.ts';

/** What a phase gets from the bench. */
export type PhaseContext = {
  /** The phase's own directory (stores of its brokers). */
  readonly dir: string;
  readonly namesrvAddr: string;
  /** Settings given to every broker after the bench's own (HA_BENCH_BROKER_OVERRIDES). */
  readonly brokerOverrides: Readonly<Record<string, string>>;
  /** Length of each timed load. */
  readonly phaseMs: number;
  /** Load before each timed one, not counted. */
  readonly warmUpMs: number;
  readonly table: HaTable;
};

const TOPIC = 'HaBenchTopic';
const QUEUES = 8;
const CONNECTIONS = 4;
/** Closed-loop batch senders of the replication phase. */
const BATCH_SENDERS = 16;
const BATCH_SIZE = 32;
/** Closed-loop single-message senders of the send-latency measures (ASYNC_MASTER baseline and SYNC_MASTER). */
const SINGLE_SENDERS = 32;
const BODY = Buffer.alloc(1024, 'h');
/** How often the sampler reads both CommitLog offsets. */
const SAMPLE_INTERVAL_MS = 250;
/** Samples kept; the sampler keeps the first and drops the oldest of the rest past this. */
const SAMPLES_MAX = 4_096;
/** Longest wait for the slave to catch up (before the load, and after it). */
const CATCH_UP_TIMEOUT_MS = 60_000;
/** How long a SYNC_MASTER may take to count its new slave as in sync. */
const IN_SYNC_TIMEOUT_MS = 30_000;
/** Pause between catch-up polls. */
const CATCH_UP_POLL_MS = 20;

/** One reading of both CommitLogs. */
type OffsetSample = { readonly atMs: number; readonly master: number; readonly slave: number };

/** Reads both offsets every SAMPLE_INTERVAL_MS until stopped; resolves with the samples. */
function startSampler(pair: BrokerPair): { stop(): Promise<OffsetSample[]> } {
  const samples: OffsetSample[] = [];
  let running = true;
  let failure: unknown;
  const loop = (async (): Promise<void> => {
    while (running) {
      try {
        const { master, slave } = await offsetsOf(pair);
        if (samples.length >= SAMPLES_MAX) samples.splice(1, 1);
        samples.push({ atMs: performance.now(), master, slave });
      } catch (error) {
        // Kept for stop(): a sampler that cannot read the offsets makes the phase's figures meaningless.
        failure ??= error;
        running = false;
      }
      if (running) await sleep(SAMPLE_INTERVAL_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      if (failure !== undefined) throw new Error(`reading the CommitLog offsets failed during the load`, { cause: failure });
      return samples;
    },
  };
}

/** Failures of a load, as notes; empty when every request succeeded. */
function failuresOf(result: PhaseResult): string {
  const parts = [...result.failures].map(([code, count]) => `${fmt(count)} x ${codeName(code)}`);
  if (result.errors > 0) parts.push(`${fmt(result.errors)} unanswered (${result.firstError ?? ''})`);
  return parts.length === 0 ? '' : `; FAILED ${parts.join(', ')} (${result.failureRemarks.join(' | ')})`;
}

/** Runs `load` and returns it with the master's, the slave's and the bench's CPU over the same time. */
async function withCpu<R extends PhaseResult>(pair: BrokerPair, load: () => Promise<R>): Promise<R & { cpu: string }> {
  const master = processCpuSeconds(pair.master.pid);
  const slave = processCpuSeconds(pair.slave.pid);
  const result = await load();
  const since = (before: number | undefined, pid: number): number | undefined => {
    const after = processCpuSeconds(pid);
    return before === undefined || after === undefined ? undefined : after - before;
  };
  const cpu = `cpu master ${cpuShare(since(master, pair.master.pid), result.ms)}, slave ${cpuShare(since(slave, pair.slave.pid), result.ms)}, bench ${cpuShare(result.clientCpuS, result.ms)}`;
  return { ...result, cpu };
}

/** Polls until the slave's CommitLog is as long as the master's; returns the wait in ms. */
async function waitCaughtUp(pair: BrokerPair): Promise<number> {
  const started = performance.now();
  await pollUntil('the slave to catch up with the master', async () => {
    const { master, slave } = await offsetsOf(pair);
    return slave >= master ? true : undefined;
  }, CATCH_UP_TIMEOUT_MS, CATCH_UP_POLL_MS);
  return performance.now() - started;
}

/** Single-message closed-loop sends to the master, after a warm-up; adds throughput, p50 and p99 rows. */
async function singleSends(ctx: PhaseContext, pair: BrokerPair, clients: RemotingClient[], label: string): Promise<void> {
  const factory = new RequestFactory(TOPIC, QUEUES, BODY);
  await closedLoop(clients, SINGLE_SENDERS, ctx.warmUpMs, () => factory.single(), 1);
  const result = await withCpu(pair, () => closedLoop(clients, SINGLE_SENDERS, ctx.phaseMs, () => factory.single(), 1));
  const setup = `SEND_MESSAGE_V2, 1 KiB, ${SINGLE_SENDERS} closed-loop senders / ${CONNECTIONS} connections`;
  ctx.table.add({ measure: `${label}: send throughput`, value: fmt(result.messages / (result.ms / 1000)), unit: 'msgs/s', notes: `${setup}; ${result.cpu}${failuresOf(result)}` });
  ctx.table.add({ measure: `${label}: send latency p50`, value: fmt(result.histogram.quantileMs(0.5), 2), unit: 'ms', notes: `mean ${fmt(result.histogram.meanMs, 2)} ms` });
  ctx.table.add({ measure: `${label}: send latency p99`, value: fmt(result.histogram.quantileMs(0.99), 2), unit: 'ms', notes: `${fmt(result.histogram.count)} round trips` });
}

/** Phase `replication`: master append rate against the slave's replication rate, then the ASYNC_MASTER send baseline. */
export async function replicationPhase(ctx: PhaseContext): Promise<void> {
  const pair = await startPair(path.join(ctx.dir, 'pair'), ctx.namesrvAddr, 'ha-async', 'ASYNC_MASTER', TOPIC, QUEUES, ctx.brokerOverrides);
  const clients = await connectClients(`127.0.0.1:${pair.master.brokerPort}`, CONNECTIONS);
  try {
    const factory = new RequestFactory(TOPIC, QUEUES, BODY);
    const batch = (): ReturnType<RequestFactory['batch']> => factory.batch(BATCH_SIZE);
    await closedLoop(clients, BATCH_SENDERS, ctx.warmUpMs, batch, BATCH_SIZE);
    await waitCaughtUp(pair);

    const sampler = startSampler(pair);
    const before = { ...(await offsetsOf(pair)), atMs: performance.now() };
    const result = await withCpu(pair, () => closedLoop(clients, BATCH_SENDERS, ctx.phaseMs, batch, BATCH_SIZE));
    const after = { ...(await offsetsOf(pair)), atMs: performance.now() };
    const catchUpMs = await waitCaughtUp(pair);
    const samples = await sampler.stop();

    const windowS = (after.atMs - before.atMs) / 1000;
    const masterBytesPerS = (after.master - before.master) / windowS;
    const slaveBytesPerS = (after.slave - before.slave) / windowS;
    const lagMax = Math.max(after.master - after.slave, ...samples.map((sample) => sample.master - sample.slave));
    const setup = `SEND_BATCH_MESSAGE, ${BATCH_SIZE} x 1 KiB per batch, ${BATCH_SENDERS} closed-loop senders / ${CONNECTIONS} connections`;
    ctx.table.add({ measure: 'ASYNC_MASTER append (acknowledged messages)', value: fmt(result.messages / (result.ms / 1000)), unit: 'msgs/s', notes: `${setup}; ${result.cpu}${failuresOf(result)}` });
    ctx.table.add({ measure: 'ASYNC_MASTER CommitLog growth', value: mib(masterBytesPerS), unit: 'MiB/s', notes: `${mib(after.master - before.master)} MiB in ${fmt(windowS, 1)} s (commitLogMaxOffset)` });
    ctx.table.add({
      measure: 'SLAVE replication (its CommitLog growth, same window)',
      value: mib(slaveBytesPerS),
      unit: 'MiB/s',
      notes: `${fmt((slaveBytesPerS / masterBytesPerS) * 100)}% of the master's rate`,
    });
    ctx.table.add({
      measure: 'SLAVE lag when the load stopped',
      value: mib(after.master - after.slave),
      unit: 'MiB',
      notes:
        `largest lag sampled ${mib(lagMax)} MiB (every ${SAMPLE_INTERVAL_MS} ms, ${samples.length} samples); caught up ${fmt(catchUpMs)} ms after the load stopped` +
        (after.master > after.slave ? ` (${mib((after.master - after.slave) / (catchUpMs / 1000))} MiB/s with the master idle)` : ''),
    });
    await singleSends(ctx, pair, clients, 'ASYNC_MASTER + SLAVE (baseline)');
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await stopPair(pair);
  }
}

/** Phase `sync`: SYNC_MASTER send throughput and latency with one slave. */
export async function syncPhase(ctx: PhaseContext): Promise<void> {
  const pair = await startPair(path.join(ctx.dir, 'pair'), ctx.namesrvAddr, 'ha-sync', 'SYNC_MASTER', TOPIC, QUEUES, ctx.brokerOverrides);
  const clients = await connectClients(`127.0.0.1:${pair.master.brokerPort}`, CONNECTIONS);
  try {
    // Until the slave has connected and caught up, a SYNC_MASTER answers SLAVE_NOT_AVAILABLE.
    const started = performance.now();
    await pollUntil('the SYNC_MASTER to acknowledge a send', async () => ((await sendOne(pair.masterAdmin, TOPIC, BODY, 5_000)).code === ResponseCode.SUCCESS ? true : undefined), IN_SYNC_TIMEOUT_MS, 50);
    const inSyncMs = performance.now() - started;
    await singleSends(ctx, pair, clients, 'SYNC_MASTER + SLAVE');
    ctx.table.add({
      measure: 'SYNC_MASTER: slave in sync, after both brokers started',
      value: fmt(inSyncMs),
      unit: 'ms',
      notes: `sends answered SLAVE_NOT_AVAILABLE (code ${ResponseCode.SLAVE_NOT_AVAILABLE}) until the slave had connected and caught up`,
    });
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await stopPair(pair);
  }
}
