/**
 * `npm run bench:runtime`: tell throughput in one thread and across threads (batched), and ask round-trip
 * latency, printed as a table. Counts are taken from the receiving actor, so a figure only counts messages
 * that were actually handled.
 */
import { pino } from 'pino';
import type { ActorRef } from '../src/runtime/actor.ts';
import { ActorSystem, defaultTuning } from '../src/runtime/actor-system.ts';
import type { PumpMessage, SinkMessage } from './runtime-behaviors.ts';

const tellCount = Number(process.env.BENCH_TELLS ?? 5_000_000);
const askCount = Number(process.env.BENCH_ASKS ?? 50_000);
const behaviors = new URL('./runtime-behaviors.ts', import.meta.url).href;

const system = await ActorSystem.start({
  pools: { a: 1, b: 1 },
  cpuThreads: 0,
  cpuQueueMax: 1,
  slotsMax: 64,
  workerSupervision: { onFailure: 'restart', maxRestarts: 1, withinMs: 60_000 },
  tuning: { ...defaultTuning, defaultMailboxCapacity: 65_536 },
  logLevel: 'warn',
  log: pino({ level: 'warn' }),
});

const spawnSink = (name: string, pool: string): Promise<ActorRef<SinkMessage>> =>
  system.spawn<SinkMessage>({ name, behavior: { module: behaviors, export: 'sink' }, args: null, pool });
const spawnPump = (name: string, pool: string): Promise<ActorRef<PumpMessage>> =>
  system.spawn<PumpMessage>({ name, behavior: { module: behaviors, export: 'pump' }, args: null, pool });

async function waitForCount(sinkRef: ActorRef<SinkMessage>, count: number): Promise<void> {
  while ((await system.ask<SinkMessage, number>(sinkRef, { type: 'count' }, 30_000)) < count) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Main-thread sender: tells until backpressure, then yields so the receiver can drain. */
async function tellFromMain(sinkRef: ActorRef<SinkMessage>, count: number): Promise<number> {
  const hit: SinkMessage = { type: 'hit', n: 1 };
  const started = process.hrtime.bigint();
  let sent = 0;
  while (sent < count) {
    if (system.tell(sinkRef, hit)) sent++;
    else await new Promise((resolve) => setImmediate(resolve));
  }
  await waitForCount(sinkRef, count);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function tellFromActor(pumpRef: ActorRef<PumpMessage>, sinkRef: ActorRef<SinkMessage>, count: number): Promise<number> {
  const started = process.hrtime.bigint();
  await system.ask(pumpRef, { type: 'pump', target: sinkRef, count }, 120_000);
  await waitForCount(sinkRef, count);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function askLatency(sinkRef: ActorRef<SinkMessage>, count: number): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 2_000; i++) await system.ask(sinkRef, { type: 'ping' });
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await system.ask(sinkRef, { type: 'ping' });
    samples[i] = Number(process.hrtime.bigint() - started) / 1_000;
  }
  samples.sort();
  return { p50: samples[Math.floor(count * 0.5)]!, p99: samples[Math.floor(count * 0.99)]! };
}

type Row = { benchmark: string; result: string; target: string };
const rows: Row[] = [];
const rate = (count: number, seconds: number): string => `${Math.round(count / seconds).toLocaleString('en-US')} msgs/s`;

// Warm up every path once so the JIT has settled before measuring.
const warmSinkMain = await spawnSink('warm-main', 'main');
await tellFromMain(warmSinkMain, 200_000);
const warmSinkA = await spawnSink('warm-a', 'a');
await tellFromMain(warmSinkA, 200_000);

const sinkMain = await spawnSink('sink-main', 'main');
rows.push({ benchmark: 'in-thread tell (main -> main)', result: rate(tellCount, await tellFromMain(sinkMain, tellCount)), target: '>= 5,000,000 msgs/s' });

const pumpA = await spawnPump('pump-a', 'a');
const sinkA = await spawnSink('sink-a', 'a');
await tellFromActor(pumpA, sinkA, 200_000);
rows.push({
  benchmark: 'in-thread tell (worker a -> same worker)',
  result: rate(tellCount, await tellFromActor(pumpA, sinkA, tellCount)),
  target: '>= 5,000,000 msgs/s',
});

const sinkB = await spawnSink('sink-b', 'b');
await tellFromActor(pumpA, sinkB, 200_000);
rows.push({
  benchmark: 'cross-thread tell, batched (worker a -> worker b)',
  result: rate(tellCount, await tellFromActor(pumpA, sinkB, tellCount)),
  target: '>= 1,000,000 msgs/s',
});
const sinkB2 = await spawnSink('sink-b2', 'b');
rows.push({ benchmark: 'cross-thread tell, batched (main -> worker b)', result: rate(tellCount, await tellFromMain(sinkB2, tellCount)), target: '>= 1,000,000 msgs/s' });

const local = await askLatency(sinkMain, askCount);
rows.push({ benchmark: 'in-thread ask round trip', result: `p50 ${local.p50.toFixed(1)} µs, p99 ${local.p99.toFixed(1)} µs`, target: '-' });
const remote = await askLatency(sinkB, askCount);
rows.push({ benchmark: 'cross-thread ask round trip (main -> worker b)', result: `p50 ${remote.p50.toFixed(1)} µs, p99 ${remote.p99.toFixed(1)} µs`, target: 'p50 <= 50 µs' });

await system.shutdown();

const widths = (['benchmark', 'result', 'target'] as const).map((key) => Math.max(key.length, ...rows.map((row) => row[key].length)));
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\nrocketmq-ts runtime benchmark (node ${process.version}, ${tellCount.toLocaleString('en-US')} tells, ${askCount.toLocaleString('en-US')} asks)\n`);
console.log(line(['benchmark', 'result', 'target']));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const row of rows) console.log(line([row.benchmark, row.result, row.target]));
