/**
 * How the store's actors are placed and wired: the commit-log-flusher on the `store` pool, then the
 * commit-log-writer alone on the `commitlog` pool (size 1) with the flusher's address in its args, and
 * how their args come from the node's config keys (RocketMQ's names, units added here).
 */
import { isIP } from 'node:net';
import type { ActorRef, ActorSpawner, BehaviorSource } from '../runtime/actor.ts';
import type { NodeConfig } from '../config/schema.ts';
import type { SocketAddress } from '../storage/message-record.ts';
import type { CommitLogFlusherArgs, CommitLogFlusherMessage } from './commit-log-flusher.ts';
import type { CommitLogWriterArgs, CommitLogWriterMessage } from './commit-log-writer.ts';

/** Pool names the store's actors run on. */
export const STORE_POOLS = { writer: 'commitlog', flusher: 'store' } as const;
/** Thread counts of those pools when a test or benchmark builds its own system. */
export const STORE_POOL_SIZES: Readonly<Record<string, number>> = { [STORE_POOLS.writer]: 1, [STORE_POOLS.flusher]: 1 };

/** Defaults for the store's bounds that have no RocketMQ config key. */
export const STORE_ACTOR_DEFAULTS = {
  /** RocketMQ's cleanResourceInterval: how often the disk guard measures statfs. */
  diskCheckIntervalMs: 10_000,
  /** SYNC_FLUSH puts waiting for one sync at most (a multiple of the writer's mailbox bound). */
  syncFlushWaitersMax: 65_536,
  /** Descriptors the flusher keeps open. */
  fdCacheMax: 64,
  /** The writer's mailbox: puts queue here while a sync runs. */
  writerMailboxCapacity: 65_536,
} as const;

/** Writer args without the flusher address, which spawnStore fills in. */
export type StoreWriterSettings = Omit<CommitLogWriterArgs, 'flusher'>;

/** The config keys the store reads. */
export type StoreConfig = Pick<
  NodeConfig,
  | 'storePathRootDir'
  | 'flushDiskType'
  | 'mappedFileSizeCommitLog'
  | 'mappedFileSizeConsumeQueue'
  | 'flushIntervalCommitLog'
  | 'flushIntervalConsumeQueue'
  | 'syncFlushTimeout'
  | 'maxMessageSize'
  | 'brokerIP1'
  | 'listenPort'
  | 'brokerRole'
  | 'haMaxGapNotInSync'
  | 'haMaxTimeSlaveNotCatchup'
  | 'commitLogWriteThreads'
>;

/** The writer's settings from config; storeHost is brokerIP1:listenPort unless given (it must be an IP). */
export function storeSettingsFromConfig(config: StoreConfig, storeHost?: SocketAddress): StoreWriterSettings {
  const host = storeHost ?? { address: config.brokerIP1, port: config.listenPort };
  if (isIP(host.address) === 0) throw new Error(`storeHost ${host.address} is not an IP address; set brokerIP1 to one`);
  return {
    rootDir: config.storePathRootDir,
    flushDiskType: config.flushDiskType,
    storeHost: host,
    mappedFileSizeCommitLog: config.mappedFileSizeCommitLog,
    mappedFileSizeConsumeQueue: config.mappedFileSizeConsumeQueue,
    maxMessageSize: config.maxMessageSize,
    flushIntervalCommitLogMs: config.flushIntervalCommitLog,
    flushIntervalConsumeQueueMs: config.flushIntervalConsumeQueue,
    syncFlushTimeoutMs: config.syncFlushTimeout,
    diskCheckIntervalMs: STORE_ACTOR_DEFAULTS.diskCheckIntervalMs,
    syncFlushWaitersMax: STORE_ACTOR_DEFAULTS.syncFlushWaitersMax,
    brokerRole: config.brokerRole,
    haSyncTimeoutMs: config.syncFlushTimeout,
    haMaxGapNotInSync: config.haMaxGapNotInSync,
    haMaxTimeSlaveNotCatchupMs: config.haMaxTimeSlaveNotCatchup,
    tuning: { commitLogWriteThreads: config.commitLogWriteThreads },
  };
}

/** How to spawn the store's actors; behaviors default to the real ones. */
export type SpawnStoreOptions = {
  readonly settings: StoreWriterSettings;
  /** Prefix of the actor names (several stores in one test system). */
  readonly namePrefix?: string;
  readonly writerBehavior?: BehaviorSource;
  readonly flusherBehavior?: BehaviorSource;
  readonly writerMailboxCapacity?: number;
  readonly fdCacheMax?: number;
};

/** The store's actors. */
export type StoreActors = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  readonly flusher: ActorRef<CommitLogFlusherMessage>;
};

/** Spawns the flusher, then the writer (which opens and recovers the store in its init). */
export async function spawnStore(system: ActorSpawner, options: SpawnStoreOptions): Promise<StoreActors> {
  const prefix = options.namePrefix ?? 'store';
  const flusherArgs: CommitLogFlusherArgs = {
    rootDir: options.settings.rootDir,
    fdCacheMax: options.fdCacheMax ?? STORE_ACTOR_DEFAULTS.fdCacheMax,
    seam: options.settings.seam,
  };
  const flusher = await system.spawn<CommitLogFlusherMessage, CommitLogFlusherArgs>({
    name: `${prefix}-commit-log-flusher`,
    behavior: options.flusherBehavior ?? { module: new URL('./commit-log-flusher.ts', import.meta.url).href, export: 'commitLogFlusher' },
    args: flusherArgs,
    pool: STORE_POOLS.flusher,
  });
  const writer = await system.spawn<CommitLogWriterMessage, CommitLogWriterArgs>({
    name: `${prefix}-commit-log-writer`,
    behavior: options.writerBehavior ?? { module: new URL('./commit-log-writer.ts', import.meta.url).href, export: 'commitLogWriter' },
    args: { ...options.settings, flusher },
    pool: STORE_POOLS.writer,
    mailboxCapacity: options.writerMailboxCapacity ?? STORE_ACTOR_DEFAULTS.writerMailboxCapacity,
  });
  return { writer, flusher };
}
