/**
 * `node bench/store-log-builder.ts <dir> <bytes>`: the store benchmark's victim. Appends 1 KiB messages
 * (ASYNC_FLUSH, default 1 GiB CommitLog files, periodic flushes and checkpoints as a broker runs) through
 * the writer actor until the log holds <bytes>, prints `built <maxOffset>`, and keeps appending until the
 * benchmark kills it with SIGKILL.
 *
 * Each message carries what a real client sets: a UNIQ_KEY (32 hex digits, as MessageClientIDSetter
 * makes them: a fixed client prefix and a counter) and one business key in KEYS (`order-<n>`), so every
 * message puts two keys into the index and the index files fill as they do in a broker. Message n of the
 * run has KEYS `order-<n>` and the UNIQ_KEY `benchUniqueKey(n)`, so the benchmark can look them up after
 * the crash.
 */
import { spawnStore } from '../src/actors/store-actors.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats } from '../src/actors/commit-log-writer.ts';
import { encodeMessageProperties } from '../src/storage/message-record.ts';
import type { PutMessageInput } from '../src/storage/message-store.ts';
import { benchStoreSettings, startBenchStoreSystem } from './store-settings.ts';

/** Topic of the built messages. */
export const BENCH_RECOVERY_TOPIC = 'BenchRecovery';
/** Queues of that topic: each batch spreads its messages evenly over them. */
export const BENCH_RECOVERY_QUEUES = 8;
/** Messages per putBatch ask (one ask per appender in flight). */
const BATCH_MESSAGES = 64;
const APPENDERS = 8;
/** A client id prefix as RocketMQ clients build it (IP, pid, class-loader hash): 20 hex digits. */
const CLIENT_ID_PREFIX = '7F0000010F2A1B2C3D4E';

/** The UNIQ_KEY of message `n`: the client prefix and a 12-hex-digit counter (32 hex digits in all). */
export function benchUniqueKey(n: number): string {
  return CLIENT_ID_PREFIX + n.toString(16).toUpperCase().padStart(12, '0');
}

/** The KEYS value of message `n`. */
export function benchOrderKey(n: number): string {
  return `order-${n}`;
}

async function main(dir: string, targetBytes: number): Promise<void> {
  const system = await startBenchStoreSystem();
  const { writer } = await spawnStore(system, { settings: benchStoreSettings(dir, 'ASYNC_FLUSH') });
  const body = Buffer.alloc(1024, 'r');
  let next = 0;
  // Message numbers are taken when a batch is made; batches reach the writer in any order, which only
  // reorders the keys in the log, not which message carries which key.
  const batch = (): PutMessageInput[] =>
    Array.from({ length: BATCH_MESSAGES }, (_, i) => {
      const n = next++;
      const properties = encodeMessageProperties({ KEYS: benchOrderKey(n), UNIQ_KEY: benchUniqueKey(n) });
      return { topic: BENCH_RECOVERY_TOPIC, queueId: i % BENCH_RECOVERY_QUEUES, body, properties, bornTimestampMs: 1 };
    });

  let built = false;
  async function appender(): Promise<never> {
    for (;;) await system.ask(writer, { type: 'putBatch', messages: batch() } satisfies CommitLogWriterMessage, 60_000);
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
  await Promise.all([watch(), ...Array.from({ length: APPENDERS }, appender)]);
}

// Run only as the benchmark's child, not when the benchmark imports the key helpers.
if (import.meta.main) {
  const dir = process.argv[2];
  const targetBytes = Number(process.argv[3]);
  if (dir === undefined || !(targetBytes > 0)) {
    process.stderr.write('usage: store-log-builder.ts <dir> <bytes>\n');
    process.exit(2);
  }
  await main(dir, targetBytes);
}
