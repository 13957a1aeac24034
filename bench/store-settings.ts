/** The store geometry the benchmark and its log builder share: RocketMQ's defaults. */
import type { StoreWriterSettings } from '../src/actors/store-actors.ts';
import { STORE_ACTOR_DEFAULTS } from '../src/actors/store-actors.ts';
import { MESSAGE_STORE_DEFAULTS } from '../src/storage/message-store.ts';

/** Writer settings for a benchmark store in `dir` (1 GiB CommitLog files, 500 ms / 1 s flush intervals). */
export function benchStoreSettings(dir: string, flushDiskType: 'ASYNC_FLUSH' | 'SYNC_FLUSH'): StoreWriterSettings {
  return {
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
