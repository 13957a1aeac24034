/**
 * `node bench/store-log-builder.ts <dir> <bytes>`: the store benchmark's victim. Appends 1 KiB messages
 * (ASYNC_FLUSH, default 1 GiB CommitLog files, periodic flushes and checkpoints as a broker runs) through
 * the writer actor until the log holds <bytes>, prints `built <maxOffset>`, and keeps appending until the
 * benchmark kills it with SIGKILL.
 */
import { pino } from 'pino';
import { ActorSystem, defaultTuning } from '../src/runtime/actor-system.ts';
import { STORE_POOL_SIZES, spawnStore } from '../src/actors/store-actors.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats } from '../src/actors/commit-log-writer.ts';
import type { PutMessageInput } from '../src/storage/message-store.ts';
import { benchStoreSettings } from './store-settings.ts';

const dir = process.argv[2];
const targetBytes = Number(process.argv[3]);
if (dir === undefined || !(targetBytes > 0)) {
  process.stderr.write('usage: store-log-builder.ts <dir> <bytes>\n');
  process.exit(2);
}

const system = await ActorSystem.start({
  pools: { ...STORE_POOL_SIZES },
  cpuThreads: 0,
  cpuQueueMax: 1,
  slotsMax: 64,
  workerSupervision: { onFailure: 'restart', maxRestarts: 1, withinMs: 60_000 },
  tuning: { ...defaultTuning, defaultMailboxCapacity: 65_536 },
  logLevel: 'warn',
  log: pino({ level: 'warn' }),
});
const { writer } = await spawnStore(system, { settings: benchStoreSettings(dir, 'ASYNC_FLUSH') });
const body = Buffer.alloc(1024, 'r');
const batch: PutMessageInput[] = Array.from({ length: 64 }, (_, i) => ({ topic: 'BenchRecovery', queueId: i % 8, body, bornTimestampMs: 1 }));

let built = false;
async function appender(): Promise<never> {
  for (;;) await system.ask(writer, { type: 'putBatch', messages: batch } satisfies CommitLogWriterMessage, 60_000);
}
async function watch(): Promise<void> {
  while (!built) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stats = await system.ask<CommitLogWriterMessage, CommitLogWriterStats>(writer, { type: 'stats' }, 60_000);
    if (stats.maxOffset >= targetBytes) {
      built = true;
      process.stdout.write(`built ${stats.maxOffset}\n`);
    }
  }
}
await Promise.all([watch(), ...Array.from({ length: 8 }, appender)]);
