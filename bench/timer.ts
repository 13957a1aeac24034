/**
 * `npm run bench:timer`: timer messages, printed as one table.
 * - Pending timers: TIMER_BENCH_TIMERS (default 1,000,000) timers enqueued straight into a TimerStore
 *   (src/storage/timer-store.ts) on this thread, with RocketMQ's wheel geometry (7 days of 1 s slots) and
 *   synthetic CommitLog offsets, deliver times spread over the next hour; then one checkpoint (log sync,
 *   wheel flush, timercheck) and a reopen (recovery). Reported: enqueue rate, memory held (RSS, JS heap
 *   and ArrayBuffer deltas after a GC), bytes on disk, checkpoint and reopen times.
 * - Delivery lateness: the store (spawnStore: writer and flusher on their worker threads) and the
 *   timer-service actor on the `store` pool; this thread puts timer messages (applyTimer, then
 *   putBatch into rmq_sys_wheel_timer, as the send processor will) at TIMER_BENCH_RATE per second
 *   (default 10,000) for TIMER_BENCH_SECONDS (default 5), each due 2 s plus 0..999 ms later, so about as
 *   many fire per second. Lateness = store time of the delivered message - the TIMER_DELIVER_MS asked.
 *   Once per precision (1000 ms, RocketMQ's default, and 100 ms).
 * - Transaction send + commit TPS: a `start` node as a child process, Remoting producers that send a half
 *   message and commit it (bench/transaction-tps.ts).
 * TIMER_BENCH_DIR picks the directory (default: the OS temp dir).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { CommitLogWriterMessage } from '../src/actors/commit-log-writer.ts';
import { propertiesString } from '../src/actors/schedule-service.ts';
import { spawnStore } from '../src/actors/store-actors.ts';
import { applyTimer } from '../src/actors/timer-hook.ts';
import { spawnTimerService, type TimerServiceMessage, type TimerServiceStats } from '../src/actors/timer-service.ts';
import type { ActorSystem } from '../src/runtime/actor-system.ts';
import { decodeRecord } from '../src/storage/message-record.ts';
import type { GetMessageResult, PutMessageInput, PutMessageResult } from '../src/storage/message-store.ts';
import { nodeStorageFs } from '../src/storage/storage-fs.ts';
import { TimerStore } from '../src/storage/timer-store.ts';
import { benchStoreSettings, startBenchStoreSystem } from './store-settings.ts';
import { transactionRows as measuredTransactionRows } from './transaction-tps.ts';

const timersTotal = Number(process.env['TIMER_BENCH_TIMERS'] ?? 1_000_000);
const ratePerS = Number(process.env['TIMER_BENCH_RATE'] ?? 10_000);
const fireSeconds = Number(process.env['TIMER_BENCH_SECONDS'] ?? 5);
const baseDir = fs.mkdtempSync(path.join(process.env['TIMER_BENCH_DIR'] ?? os.tmpdir(), 'timer-bench-'));
const TOPIC = 'BenchTimerTopic';
const QUEUES = 8;
const DELAY_MS = 2_000;
const BATCH_INTERVAL_MS = 10;

type Row = { benchmark: string; result: string; target: string; verdict: string };
const rows: Row[] = [];
const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mib = (bytes: number): string => `${fmt(bytes / 2 ** 20, 1)} MiB`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A GC to call before measuring memory (node runs this file without --expose-gc). */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose_gc');
  return vm.runInNewContext('gc') as () => void;
}
const gc = exposeGc();

function memory(): { rss: number; heap: number; heapCommitted: number; buffers: number } {
  gc();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed, heapCommitted: usage.heapTotal, buffers: usage.arrayBuffers };
}

function diskBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

// ------------------------------------------------------------------------------------------ pending timers

function pendingTimers(): void {
  const dir = path.join(baseDir, 'pending');
  const nowMs = Math.floor(Date.now() / 1000) * 1000;
  const before = memory();
  const store = TimerStore.open({ rootDir: dir, fs: nodeStorageFs, precisionMs: 1000, nowMs });
  const started = performance.now();
  for (let i = 0; i < timersTotal; i++) {
    const result = store.enqueue({ timerOutMs: nowMs + 1_000 + (i % 3_600) * 1_000, offsetPy: i * 256, sizePy: 256, keyHash: i >>> 0, isDelete: false, nowMs });
    if (result.kind !== 'wheel') throw new Error(`enqueue ${i}: ${JSON.stringify(result)}`);
  }
  const enqueueMs = performance.now() - started;
  const checkpointStarted = performance.now();
  store.checkpoint(0, nowMs);
  const checkpointMs = performance.now() - checkpointStarted;
  const after = memory();
  const pending = store.pendingUnits;
  const wheelBytes = store.stats().wheelBytes;
  store.close();
  const reopenStarted = performance.now();
  const again = TimerStore.open({ rootDir: dir, fs: nodeStorageFs, precisionMs: 1000, nowMs });
  const reopenMs = performance.now() - reopenStarted;
  const recovered = again.pendingUnits;
  again.close();
  const label = `${fmt(timersTotal)} pending timers`;
  rows.push({
    benchmark: `${label}: enqueue into TimerStore (in-process, no actor)`,
    result: `${fmt(timersTotal / (enqueueMs / 1000))} timers/s (${fmt(enqueueMs)} ms)`,
    target: '-',
    verdict: '',
  });
  const liveBytes = after.heap - before.heap + (after.buffers - before.buffers);
  rows.push({
    benchmark: `${label}: memory held after GC`,
    result:
      `live: JS heap +${mib(after.heap - before.heap)}, ArrayBuffers +${mib(after.buffers - before.buffers)} (wheel ${mib(wheelBytes)}); ` +
      `RSS +${mib(after.rss - before.rss)} (V8 keeps +${mib(after.heapCommitted - before.heapCommitted)} of heap it grew into while enqueuing)`,
    target: 'live data fixed: wheel + ~3 MiB, no per-timer objects',
    verdict: liveBytes < wheelBytes + 8 * 2 ** 20 ? 'met' : 'MISSED',
  });
  rows.push({ benchmark: `${label}: on disk (timerlog + timerwheel + timercheck)`, result: `${mib(diskBytes(dir))} (${fmt(pending)} units)`, target: '56 B per timer + wheel', verdict: '' });
  rows.push({ benchmark: `${label}: checkpoint (log fdatasync, wheel flush, timercheck)`, result: `${fmt(checkpointMs)} ms`, target: '-', verdict: '' });
  rows.push({
    benchmark: `${label}: reopen (log scan, wheel scan)`,
    result: `${fmt(reopenMs)} ms, ${fmt(recovered)} pending found`,
    target: 'all found',
    verdict: recovered === pending ? 'met' : 'MISSED',
  });
  fs.rmSync(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------------------------------ lateness


/** Puts `count` timer messages due DELAY_MS + 0..999 ms after now, as the send processor would store them. */
function timerBatch(first: number, count: number, precisionMs: number): PutMessageInput[] {
  const nowMs = Date.now();
  const body = new Uint8Array(128);
  const messages: PutMessageInput[] = [];
  for (let i = first; i < first + count; i++) {
    const properties = new Map([['UNIQ_KEY', `BENCH${i}`], ['TIMER_DELIVER_MS', String(nowMs + DELAY_MS + (i % 1_000))]]);
    const destination = applyTimer(properties, TOPIC, i % QUEUES, nowMs, { timerWheelEnable: true, timerPrecisionMs: precisionMs, timerMaxDelaySec: 3_600 });
    if (!destination.ok) throw new Error(destination.remark);
    messages.push({ topic: destination.topic, queueId: destination.queueId, body, properties: propertiesString(properties), bornTimestampMs: nowMs });
  }
  return messages;
}

async function readLateness(system: ActorSystem, writer: { slot: number; name: string }): Promise<{ lateMs: number[]; early: number }> {
  const lateMs: number[] = [];
  let early = 0;
  for (let queueId = 0; queueId < QUEUES; queueId++) {
    for (let offset = 0; ; ) {
      const got = await system.ask<CommitLogWriterMessage, GetMessageResult>(writer, { type: 'get', topic: TOPIC, queueId, queueOffset: offset, maxMsgNums: 32 }, 60_000);
      if (got.messages.length === 0) break;
      for (const message of got.messages) {
        const view = decodeRecord(message.record, 0);
        const late = view.storeTimestampMs - Number(view.propertiesMap().get('TIMER_DELIVER_MS'));
        if (late < 0) early++;
        lateMs.push(late);
      }
      offset = got.nextBeginOffset;
    }
  }
  return { lateMs: lateMs.sort((a, b) => a - b), early };
}

async function lateness(precisionMs: number): Promise<void> {
  const dir = path.join(baseDir, `lateness-${precisionMs}`);
  const system = await startBenchStoreSystem();
  try {
    const settings = benchStoreSettings(dir, 'ASYNC_FLUSH');
    const { writer } = await spawnStore(system, { settings });
    const service = await spawnTimerService(system, { writer, storePathRootDir: dir, storeHost: settings.storeHost, maxMessageSize: settings.maxMessageSize, timerPrecisionMs: precisionMs });
    const perBatch = Math.max(1, Math.round((ratePerS * BATCH_INTERVAL_MS) / 1000));
    const batches = Math.round((fireSeconds * 1000) / BATCH_INTERVAL_MS);
    const started = performance.now();
    let sent = 0;
    for (let batch = 0; batch < batches; batch++) {
      const results = await system.ask<CommitLogWriterMessage, PutMessageResult[]>(writer, { type: 'putBatch', messages: timerBatch(sent, perBatch, precisionMs) }, 60_000);
      if (results.some((result) => result.status !== 'PUT_OK')) throw new Error('timer put refused');
      sent += perBatch;
      const aheadMs = (batch + 1) * BATCH_INTERVAL_MS - (performance.now() - started);
      if (aheadMs > 0) await sleep(aheadMs);
    }
    const sendSeconds = (performance.now() - started) / 1000;
    const deadline = performance.now() + DELAY_MS + 2 * precisionMs + 30_000;
    let stats: TimerServiceStats;
    for (;;) {
      stats = await system.ask<TimerServiceMessage, TimerServiceStats>(service, { type: 'stats' }, 60_000);
      if (stats.delivered >= sent || performance.now() > deadline) break;
      await sleep(50);
    }
    const { lateMs, early } = await readLateness(system, writer);
    const at = (q: number): number => lateMs[Math.min(lateMs.length - 1, Math.floor(q * lateMs.length))] ?? Number.NaN;
    const p99 = at(0.99);
    const boundMs = precisionMs + 200;
    rows.push({
      benchmark: `delivery lateness, ${fmt(sent / sendSeconds)} timers/s firing, timerPrecisionMs ${precisionMs}`,
      result: `p50 ${fmt(at(0.5))} ms, p99 ${fmt(p99)} ms, max ${fmt(lateMs.at(-1) ?? Number.NaN)} ms; ${fmt(lateMs.length)} of ${fmt(sent)} delivered, ${early} early`,
      target: `p99 <= ${fmt(boundMs)} ms (one slot + 200 ms), 0 early, all delivered`,
      verdict: p99 <= boundMs && early === 0 && lateMs.length === sent ? 'met' : 'MISSED',
    });
  } finally {
    await system.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------ transactions

/** Transaction send + commit TPS against a `start` node (bench/transaction-tps.ts), TX_BENCH_SECONDS long (default 5). */
async function transactionRows(): Promise<Row[]> {
  const measured = await measuredTransactionRows(Number(process.env['TX_BENCH_SECONDS'] ?? 5));
  return measured.map((row) => ({ ...row, verdict: '' }));
}

// ------------------------------------------------------------------------------------------ run

try {
  pendingTimers();
  await lateness(1000);
  await lateness(100);
  rows.push(...(await transactionRows()));
} finally {
  fs.rmSync(baseDir, { recursive: true, force: true });
}

const keys = ['benchmark', 'result', 'target', 'verdict'] as const;
const widths = keys.map((key) => Math.max(key.length, ...rows.map((row) => row[key].length)));
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\nrocketmq-ts timer benchmark (node ${process.version}, ${os.cpus().length} cores, dir ${path.dirname(baseDir)})\n`);
console.log(line([...keys]));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const row of rows) console.log(line([row.benchmark, row.result, row.target, row.verdict]));
