/** The store geometry and actor system the store benchmarks and the log builder share: RocketMQ's defaults. */
import { pino } from 'pino';
import type { StoreWriterSettings } from '../src/actors/store-actors.ts';
import { STORE_ACTOR_DEFAULTS, STORE_POOL_SIZES } from '../src/actors/store-actors.ts';
import { ActorSystem, SEMI_SPACE_MB_DEFAULT, defaultTuning } from '../src/runtime/actor-system.ts';
import { MESSAGE_STORE_DEFAULTS } from '../src/storage/message-store.ts';

/** An actor system with the store's pools (plus `extraPools`), large mailboxes and room for many asks. */
export function startBenchStoreSystem(extraPools: Record<string, number> = {}): Promise<ActorSystem> {
  return ActorSystem.start({
    pools: { ...STORE_POOL_SIZES, ...extraPools },
    cpuThreads: 0,
    cpuQueueMax: 1,
    slotsMax: 64,
    workerSupervision: { onFailure: 'restart', maxRestarts: 1, withinMs: 60_000 },
    tuning: { ...defaultTuning, defaultMailboxCapacity: 65_536, askPendingMax: 1_000_000 },
    logLevel: 'warn',
    log: pino({ level: 'warn' }),
    // As a node runs (workerSemiSpaceSizeMb); STORE_BENCH_SEMI_SPACE_MB overrides it (0: V8's own sizing).
    semiSpaceMb: Number(process.env.STORE_BENCH_SEMI_SPACE_MB ?? SEMI_SPACE_MB_DEFAULT),
  });
}

/**
 * Writer settings for a benchmark store in `dir` (1 GiB CommitLog files, 500 ms / 1 s flush intervals,
 * the node's default of 2 CommitLog write threads; STORE_BENCH_WRITE_THREADS overrides it).
 */
export function benchStoreSettings(dir: string, flushDiskType: 'ASYNC_FLUSH' | 'SYNC_FLUSH'): StoreWriterSettings {
  const writeThreads = Number(process.env.STORE_BENCH_WRITE_THREADS ?? 2);
  if (!Number.isInteger(writeThreads) || writeThreads < 0 || writeThreads > 2) throw new Error('STORE_BENCH_WRITE_THREADS must be 0, 1 or 2');
  return {
    tuning: { commitLogWriteThreads: writeThreads },
    rootDir: dir,
    flushDiskType,
    storeHost: { address: '127.0.0.1', port: 10911 },
    mappedFileSizeCommitLog: MESSAGE_STORE_DEFAULTS.mappedFileSizeCommitLog,
    mappedFileSizeConsumeQueue: MESSAGE_STORE_DEFAULTS.mappedFileSizeConsumeQueue,
    maxMessageSize: MESSAGE_STORE_DEFAULTS.maxMessageSize,
    flushIntervalCommitLogMs: 500,
    flushIntervalConsumeQueueMs: 1_000,
    syncFlushTimeoutMs: 5_000,
    diskCheckIntervalMs: STORE_ACTOR_DEFAULTS.diskCheckIntervalMs,
    syncFlushWaitersMax: STORE_ACTOR_DEFAULTS.syncFlushWaitersMax,
  };
}
