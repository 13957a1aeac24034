/**
 * `npm run bench:store`: the store against the disk it sits on, printed as one table.
 * - the disk's sequential write bandwidth (dd, O_DIRECT; conv=fdatasync where O_DIRECT is refused): the
 *   median of three 1 GiB runs;
 * - ASYNC_FLUSH appends of 1 KiB messages through the writer actor (the store's real write path: append
 *   into the page cache, ConsumeQueue dispatch, write() of the new bytes into the file every turn, a
 *   fdatasync every 500 ms), counting acknowledged messages and their record bytes: one message per ask;
 *   64 messages per ask encoded by the writer (putBatch); 64 encoded on a send thread, one answer each
 *   (putEncoded); and 64-message RocketMQ batches (MessageExtBatch: one queue per batch, one answer
 *   per batch, 64 in flight) encoded on STORE_BENCH_SENDERS send threads (default 2), as RocketMQ's
 *   SendMessage threads encode in parallel and append under the put lock, and copied into the log by
 *   those threads through the writer's append region (append-region.ts). Before the timed rows the log is filled
 *   until it has rolled through three 1 GiB files, so that the page-cache buffers are recycled ones, as
 *   in a broker that has run a while; that warm-up is reported as a row of its own (it pays the first
 *   touch of fresh memory);
 * - SYNC_FLUSH with 1, 16 and 256 concurrent appenders, and how many messages share one fdatasync;
 * - reads through the writer from 2 reader threads (each reads the messages of the timed rows once);
 * - recovery after kill -9 of a process that built a large log (STORE_BENCH_RECOVERY_BYTES, default
 *   4 GiB; skipped when the disk has less than 10 GiB free) of keyed messages (UNIQ_KEY and KEYS, as
 *   clients send them), then key lookups of messages from the whole log.
 * STORE_BENCH_DIR picks the directory (default: the OS temp dir); STORE_BENCH_SECONDS the length of
 * each timed phase (default 4); STORE_BENCH_ONLY=recovery runs only the recovery phase, =async only
 * the disk and ASYNC_FLUSH rows, =batch only the disk, the warm-up and the RocketMQ-batch row; STORE_BENCH_WARMUP_FILES the files to roll through first (default 3);
 * STORE_BENCH_WRITE_THREADS the CommitLog write threads (commitLogWriteThreads: default 2, 0 writes on the writer's thread).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ActorRef } from '../src/runtime/actor.ts';
import type { ActorSystem } from '../src/runtime/actor-system.ts';
import { spawnStore } from '../src/actors/store-actors.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats, FlushAnswer } from '../src/actors/commit-log-writer.ts';
import { MessageStore, type PutMessageInput, type PutMessageResult } from '../src/storage/message-store.ts';
import { nodeStorageFs } from '../src/storage/storage-fs.ts';
import type { EncodingSenderMessage, ReaderMessage } from './store-behaviors.ts';
import { BENCH_RECOVERY_QUEUES, BENCH_RECOVERY_TOPIC, benchOrderKey, benchUniqueKey } from './store-log-builder.ts';
import { benchStoreSettings, startBenchStoreSystem } from './store-settings.ts';

const GiB = 1024 ** 3;
const phaseMs = Number(process.env['STORE_BENCH_SECONDS'] ?? 4) * 1000;
const recoveryBytes = Number(process.env['STORE_BENCH_RECOVERY_BYTES'] ?? 4 * GiB);
const sendThreads = Number(process.env['STORE_BENCH_SENDERS'] ?? 2);
/**
 * RocketMQ batches in flight across the send threads: 64, as RocketMQ's benchmark Producer runs 64
 * sending threads by default and bench:remoting keeps 64 senders busy.
 */
const BATCHES_IN_FLIGHT = 64;
const only = process.env['STORE_BENCH_ONLY'];
const warmUpFiles = Number(process.env['STORE_BENCH_WARMUP_FILES'] ?? 3);
const baseDir = fs.mkdtempSync(path.join(process.env['STORE_BENCH_DIR'] ?? os.tmpdir(), 'store-bench-'));
const behaviors = new URL('./store-behaviors.ts', import.meta.url).href;
const body = Buffer.alloc(1024, 'b');

type Row = { benchmark: string; result: string; target: string; verdict: string };
const rows: Row[] = [];
const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

// ------------------------------------------------------------------------------------------ disk

/** dd runs behind the disk figure, and the MiB each writes. */
const DD_RUNS = 3;
const DD_MIB = 1024;

/**
 * dd's MB/s (decimal, as dd prints) writing DD_MIB MiB into `dir`: the median of DD_RUNS runs, with the
 * lowest and highest. One short run is not the disk's sustained figure on this VM: 256 MiB runs gave
 * anything from 730 to 1,700 MB/s within an hour, while the store's rows write several GiB.
 */
function ddBandwidth(dir: string): { mbPerS: number; low: number; high: number; mode: string } {
  const target = path.join(dir, 'ddtest');
  const attempt = (flag: string): number | null => {
    // Dirty pages left by earlier work (another bench run's buffered writes) would be written back
    // during dd and halve its figure: write them out first, so that dd measures the disk alone.
    spawnSync('sync');
    try {
      const run = spawnSync('dd', ['if=/dev/zero', `of=${target}`, 'bs=1M', `count=${DD_MIB}`, flag], { encoding: 'utf8' });
      return run.status === 0 ? parseDd(`${run.stdout}${run.stderr}`) : null;
    } finally {
      fs.rmSync(target, { force: true });
    }
  };
  for (const mode of ['oflag=direct', 'conv=fdatasync']) {
    const runs: number[] = [];
    for (let run = 0; run < DD_RUNS; run++) {
      const result = attempt(mode);
      if (result === null) break;
      runs.push(result);
    }
    if (runs.length === DD_RUNS) {
      runs.sort((a, b) => a - b);
      return { mbPerS: runs[Math.floor(DD_RUNS / 2)]!, low: runs[0]!, high: runs.at(-1)!, mode };
    }
  }
  throw new Error('dd failed with oflag=direct and conv=fdatasync');
}

/** The disk row: dd's median and range. */
function diskRow(disk: ReturnType<typeof ddBandwidth>): Row {
  return {
    benchmark: `disk sequential write (dd bs=1M count=${DD_MIB} ${disk.mode}, median of ${DD_RUNS})`,
    result: `${fmt(disk.mbPerS)} MB/s (${fmt(disk.low)}-${fmt(disk.high)})`,
    target: '-',
    verdict: '',
  };
}

/** MB/s from dd's byte count and seconds (its own rate has two significant digits: "1.3 GB/s"). */
function parseDd(text: string): number | null {
  const exact = /^(\d+) bytes .* copied, ([\d.,]+) s,/m.exec(text);
  if (exact !== null) return Number(exact[1]) / 1e6 / Number(exact[2]!.replace(',', '.'));
  const match = /([\d.,]+) ([kMGT]?B)\/s/.exec(text);
  if (match === null) return null;
  const scale: Record<string, number> = { B: 1e-6, kB: 1e-3, MB: 1, GB: 1e3, TB: 1e6 };
  return Number(match[1]!.replace(',', '.')) * scale[match[2]!]!;
}

// ------------------------------------------------------------------------------------------ system


function message(topic: string, i: number): PutMessageInput {
  return { topic, queueId: i % 8, body, bornTimestampMs: 1_700_000_000_000 };
}

const stats = (system: ActorSystem, writer: ActorRef<CommitLogWriterMessage>) =>
  system.ask<CommitLogWriterMessage, CommitLogWriterStats>(writer, { type: 'stats' }, 60_000);

/** Keeps `window` asks in flight for `durationMs`; returns acknowledged messages and record bytes. */
async function pump(durationMs: number, window: number, send: () => Promise<PutMessageResult[]>): Promise<{ messages: number; bytes: number; ms: number }> {
  let messages = 0;
  let bytes = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  const lane = async (): Promise<void> => {
    while (performance.now() < deadline) {
      for (const result of await send()) {
        if (result.status !== 'PUT_OK') throw new Error(`put failed: ${JSON.stringify(result)}`);
        messages++;
        bytes += result.wroteBytes;
      }
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return { messages, bytes, ms: performance.now() - started };
}

// ------------------------------------------------------------------------------------------ phases

/** Runs `senders` encoding senders at once for `durationMs`; sums what they got acknowledged. */
async function pumpSenders(
  system: ActorSystem,
  senders: readonly ActorRef<EncodingSenderMessage>[],
  request: Omit<Extract<EncodingSenderMessage, { type: 'pump' }>, 'durationMs'>,
  durationMs: number,
): Promise<{ messages: number; bytes: number; ms: number }> {
  const runs = await Promise.all(senders.map((sender) =>
    system.ask<EncodingSenderMessage, { messages: number; bytes: number; ms: number }>(sender, { ...request, durationMs }, durationMs + 120_000)));
  return runs.reduce((sum, run) => ({ messages: sum.messages + run.messages, bytes: sum.bytes + run.bytes, ms: Math.max(sum.ms, run.ms) }));
}

/** What a phase got acknowledged, with the whole process's CPU time (every thread's) while it ran. */
type PhaseRun = { messages: number; bytes: number; ms: number; cpuMs: number };

async function measured(run: () => Promise<{ messages: number; bytes: number; ms: number }>): Promise<PhaseRun> {
  const before = process.cpuUsage();
  const result = await run();
  const used = process.cpuUsage(before);
  return { ...result, cpuMs: (used.user + used.system) / 1000 };
}

async function asyncAppends(disk: number): Promise<{ system: ActorSystem; writer: ActorRef<CommitLogWriterMessage>; perQueue: number }> {
  const system = await startBenchStoreSystem({ readers: 2, senders: sendThreads });
  const settings = benchStoreSettings(path.join(baseDir, 'async'), 'ASYNC_FLUSH');
  const { writer } = await spawnStore(system, { settings });
  const senders = await Promise.all(Array.from({ length: sendThreads }, (_, k) =>
    system.spawn<EncodingSenderMessage>({ name: `encoding-sender-${k}`, behavior: { module: behaviors, export: 'encodingSender' }, args: null, pool: 'senders' })));
  const pumpEncoded = { type: 'pump', writer, storeHost: settings.storeHost, topic: 'BenchAsync', window: 16, batch: 64 } as const;
  const pumpBatches = { ...pumpEncoded, mode: 'batch', window: Math.ceil(BATCHES_IN_FLIGHT / sendThreads) } as const;
  // Steady state first: roll through a few files so that page-cache buffers are recycled, not fresh.
  const warmUpBytes = warmUpFiles * settings.mappedFileSizeCommitLog;
  const warmStarted = performance.now();
  while ((await stats(system, writer)).maxOffset < warmUpBytes) await pumpSenders(system, senders, pumpBatches, 500);
  const warmMs = performance.now() - warmStarted;
  const warmedBytes = (await stats(system, writer)).maxOffset;
  rows.push({
    benchmark: `ASYNC_FLUSH warm-up: batches until ${warmUpFiles} files have rolled (fresh page-cache memory)`,
    result: `${fmt(mbps(warmedBytes, warmMs))} MB/s (${fmt(warmedBytes / GiB, 1)} GiB in ${fmt(warmMs / 1000, 1)} s)`,
    target: '-',
    verdict: '',
  });
  let i = 0;
  const one = async (): Promise<PutMessageResult[]> => [await system.ask<CommitLogWriterMessage, PutMessageResult>(writer, { type: 'put', message: message('BenchAsync', i++) }, 60_000)];
  const batch = Array.from({ length: 64 }, (_, k) => message('BenchAsync', k));
  const many = (): Promise<PutMessageResult[]> => system.ask<CommitLogWriterMessage, PutMessageResult[]>(writer, { type: 'putBatch', messages: batch }, 60_000);
  const skipped: PhaseRun = { messages: 0, bytes: 0, ms: 1, cpuMs: 0 };
  const batchOnly = only === 'batch';
  if (!batchOnly) await pump(500, 256, one); // warm-up
  const single = batchOnly ? skipped : await measured(() => pump(phaseMs, 1024, one));
  const batched = batchOnly ? skipped : await measured(() => pump(phaseMs, 32, many));
  const bigBody = Buffer.alloc(64 * 1024, 'B');
  const oneBig = async (): Promise<PutMessageResult[]> =>
    [await system.ask<CommitLogWriterMessage, PutMessageResult>(writer, { type: 'put', message: { ...message('BenchAsyncLarge', i++), body: bigBody } }, 60_000)];
  const large = batchOnly ? skipped : await measured(() => pump(phaseMs, 64, oneBig));
  if (!batchOnly) await pumpSenders(system, senders.slice(0, 1), pumpEncoded, 300); // warm-up
  const encoded = batchOnly ? skipped : await measured(() => pumpSenders(system, senders.slice(0, 1), pumpEncoded, phaseMs));
  const batches = await measured(() => pumpSenders(system, senders, pumpBatches, phaseMs));
  const target = disk * 0.5;
  const runs = [
    ['1 KiB, 1 msg per ask', single],
    ['1 KiB, 64 msgs per ask (batch send)', batched],
    ['1 KiB, 64 msgs per ask, encoded on a send thread', encoded],
    [`1 KiB, 64-message RocketMQ batches, ${BATCHES_IN_FLIGHT} in flight, encoded on ${sendThreads} send thread${sendThreads > 1 ? 's' : ''}, appended in place`, batches],
    ['64 KiB, 1 msg per ask', large],
  ] as const;
  for (const [label, run] of runs) {
    if (run === skipped) continue;
    const rate = mbps(run.bytes, run.ms);
    rows.push({
      benchmark: `ASYNC_FLUSH append, ${label}`,
      // CPU is the whole process's (every thread, the bench's senders included) over the phase.
      result: `${fmt(rate)} MB/s, ${fmt(run.messages / (run.ms / 1000))} msgs/s; ${fmt((run.cpuMs * 1000) / run.messages, 2)} µs CPU per msg (${fmt((run.cpuMs / run.ms) * 100)}% CPU)`,
      target: `>= ${fmt(target)} MB/s (50% of disk)`,
      verdict: rate >= target ? 'met' : 'MISSED',
    });
  }
  const drained = performance.now();
  const flushed = await system.ask<CommitLogWriterMessage, FlushAnswer>(writer, { type: 'flush' }, 60_000);
  rows.push({ benchmark: 'ASYNC_FLUSH: flush of what was still dirty at the end', result: `${fmt(performance.now() - drained)} ms (${flushed.flushed ? 'durable' : 'timed out'})`, target: '-', verdict: '' });
  return { system, writer, perQueue: Math.floor((single.messages + batched.messages + encoded.messages + batches.messages + 1) / 8) };
}

async function syncAppends(): Promise<void> {
  const system = await startBenchStoreSystem();
  const { writer } = await spawnStore(system, { settings: benchStoreSettings(path.join(baseDir, 'sync'), 'SYNC_FLUSH') });
  let i = 0;
  const one = async (): Promise<PutMessageResult[]> => [await system.ask<CommitLogWriterMessage, PutMessageResult>(writer, { type: 'put', message: message('BenchSync', i++) }, 60_000)];
  await pump(300, 16, one); // warm-up
  for (const appenders of [1, 16, 256]) {
    const before = await stats(system, writer);
    const run = await pump(phaseMs, appenders, one);
    const after = await stats(system, writer);
    const perSync = (after.syncedMessages - before.syncedMessages) / Math.max(1, after.commitLogFdatasyncs - before.commitLogFdatasyncs);
    const target = appenders === 256 ? '>= 20 msgs per fdatasync' : '-';
    rows.push({
      benchmark: `SYNC_FLUSH append, 1 KiB, ${appenders} appender${appenders > 1 ? 's' : ''}`,
      result: `${fmt(run.messages / (run.ms / 1000))} msgs/s, ${fmt(perSync, 1)} msgs per fdatasync`,
      target,
      verdict: appenders === 256 ? (perSync >= 20 ? 'met' : 'MISSED') : '',
    });
  }
  await system.shutdown();
}

async function reads(system: ActorSystem, writer: ActorRef<CommitLogWriterMessage>, perQueue: number): Promise<void> {
  const spawnReader = (name: string) => system.spawn<ReaderMessage>({ name, behavior: { module: behaviors, export: 'reader' }, args: null, pool: 'readers' });
  const readers = [await spawnReader('reader-1'), await spawnReader('reader-2')];
  // The messages of the timed rows: the last perQueue of each queue (the warm-up's come before them).
  const from = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(async (queueId) => {
    const range = await system.ask<CommitLogWriterMessage, { minOffset: number; maxOffset: number }>(writer, { type: 'queueRange', topic: 'BenchAsync', queueId }, 60_000);
    return Math.max(range.minOffset, range.maxOffset - perQueue);
  }));
  const request = (queues: number[]): ReaderMessage => ({ type: 'read', writer, topic: 'BenchAsync', queues: queues.length, perQueue, from, batch: 32, window: 8 });
  // Each reader reads all 8 queues; together they read everything twice.
  const started = performance.now();
  const counts = await Promise.all(readers.map((reader) => system.ask<ReaderMessage, number>(reader, request([0, 1, 2, 3, 4, 5, 6, 7]), 600_000)));
  const ms = performance.now() - started;
  const total = counts.reduce((a, b) => a + b, 0);
  rows.push({ benchmark: 'read through the writer, 2 reader threads, 32 msgs per get', result: `${fmt(total / (ms / 1000))} msgs/s (${fmt(total)} msgs)`, target: '-', verdict: '' });
}

async function recovery(): Promise<void> {
  const dir = path.join(baseDir, 'recovery');
  fs.mkdirSync(dir, { recursive: true });
  const statfs = fs.statfsSync(dir);
  const freeBytes = statfs.bavail * statfs.bsize;
  const label = `recovery after kill -9, ${fmt(recoveryBytes / GiB, 1)} GiB log, keyed messages`;
  if (freeBytes < 10 * GiB) {
    rows.push({ benchmark: label, result: `skipped: ${fmt(freeBytes / GiB, 1)} GiB free, needs 10 GiB`, target: '<= 3 s (4 GiB)', verdict: 'skipped' });
    return;
  }
  const builder = new URL('./store-log-builder.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, [builder, dir, String(recoveryBytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const started = performance.now();
  let built = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.startsWith('built ')) {
      built = Number(line.slice(6));
      child.kill('SIGKILL');
    }
  }
  const buildMs = performance.now() - started;
  await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
  const settings = benchStoreSettings(dir, 'ASYNC_FLUSH');
  const opened = performance.now();
  const store = MessageStore.open({ ...settings, fs: nodeStorageFs });
  const recoveryMs = performance.now() - opened;
  const report = store.recovery;
  const lookups = keyLookups(store);
  store.close();
  const scannedMiB = (report.maxOffset - report.scanFromOffset) / 2 ** 20;
  const index = report.indexFileRestored ? 'newest index file restored' : report.indexFileDropped ? 'newest index file dropped and rebuilt' : 'index kept';
  rows.push({
    benchmark: label,
    result: `${fmt(recoveryMs / 1000, 2)} s (verified ${fmt(scannedMiB)} MiB from offset ${fmt(report.scanFromOffset / GiB, 2)} GiB, ` +
      `${fmt(report.recordsScanned)} records, ${fmt(report.entriesReplayed)} entries replayed, ${report.tailCheck} tail check, ${index}; ` +
      `${lookups}; log built at ${fmt(mbps(built, buildMs))} MB/s)`,
    target: '<= 3 s (4 GiB)',
    verdict: recoveryMs <= 3_000 && lookups.startsWith('keys found') ? 'met' : 'MISSED',
  });
}

/**
 * Looks up, after recovery, both keys of messages spread over the recovered log (message n carries
 * KEYS order-n and UNIQ_KEY benchUniqueKey(n)); each must find exactly one message, carrying that key.
 */
function keyLookups(store: MessageStore): string {
  // Batches fill the queues evenly, so queue 0 times the queue count bounds the messages from above by
  // at most one batch (a torn tail can cut one mid-way): the last sample stays a batch below it.
  const messages = store.queueRange(BENCH_RECOVERY_TOPIC, 0).maxOffset * BENCH_RECOVERY_QUEUES;
  const samples = [0, 1, Math.floor(messages / 2), messages - 64].filter((n) => n >= 0);
  for (const n of samples) {
    for (const key of [benchOrderKey(n), benchUniqueKey(n)]) {
      const found = store.queryByKey(BENCH_RECOVERY_TOPIC, key, 4);
      if (found.length !== 1) return `key ${key} found ${found.length} times, expected once`;
    }
  }
  return `keys found (${samples.length * 2} lookups)`;
}

// ------------------------------------------------------------------------------------------ run

try {
  if (only === 'recovery') {
    await recovery();
  } else if (only === 'async' || only === 'batch') {
    const disk = ddBandwidth(baseDir);
    rows.push(diskRow(disk));
    const asyncRun = await asyncAppends(disk.mbPerS);
    if (process.env['STORE_BENCH_READS'] === '1') await reads(asyncRun.system, asyncRun.writer, asyncRun.perQueue);
    await asyncRun.system.shutdown();
  } else {
    const disk = ddBandwidth(baseDir);
    rows.push(diskRow(disk));
    const asyncRun = await asyncAppends(disk.mbPerS);
    await reads(asyncRun.system, asyncRun.writer, asyncRun.perQueue);
    await asyncRun.system.shutdown();
    fs.rmSync(path.join(baseDir, 'async'), { recursive: true, force: true });
    await syncAppends();
    fs.rmSync(path.join(baseDir, 'sync'), { recursive: true, force: true });
    await recovery();
  }
} finally {
  fs.rmSync(baseDir, { recursive: true, force: true });
}

const keys = ['benchmark', 'result', 'target', 'verdict'] as const;
const widths = keys.map((key) => Math.max(key.length, ...rows.map((row) => row[key].length)));
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\nrocketmq-ts store benchmark (node ${process.version}, ${os.cpus().length} cores, ${phaseMs / 1000} s per phase, dir ${path.dirname(baseDir)})\n`);
console.log(line([...keys]));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const row of rows) console.log(line([row.benchmark, row.result, row.target, row.verdict]));
