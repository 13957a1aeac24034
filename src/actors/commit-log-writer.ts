/**
 * The commit-log-writer: the one actor that owns the MessageStore (RocketMQ's CommitLog putMessage path
 * plus its ReputMessageService), alone on a thread of the `commitlog` pool (size 1). Every put, read and
 * flush goes through its mailbox, so the store needs no locks.
 *
 * Put path. `put` appends to the page cache. ASYNC_FLUSH answers PUT_OK at once. SYNC_FLUSH keeps the
 * reply (ctx.deferReply) in a FIFO of waiters until the durable offset passes the record's end, or
 * answers FLUSH_DISK_TIMEOUT after syncFlushTimeout (the message stays stored, as in RocketMQ).
 * `putBatch` and `putEncoded` take many messages per ask, one answer each; `putEncodedBatch` takes a
 * RocketMQ batch (MessageExtBatch: one topic and queue) encoded on the sender's thread with
 * encodeBatch, copies it into the log at once and answers one PutBatchResult for all of it, as Java
 * answers a batch send.
 *
 * Group commit. A put schedules one `tick` by telling itself, so the tick lands behind every put already
 * in the mailbox. The tick dispatches (ConsumeQueue + index entries: only then are the messages visible)
 * and, under SYNC_FLUSH, when no sync is in flight, writes the dirty bytes into the file and hands the
 * paths to the commit-log-flusher, which fdatasyncs them on its own thread. At most one sync is in
 * flight: puts arriving meanwhile are appended, dispatched and wait; when the sync returns, everything
 * appended since is written and covered by the next single fdatasync. So a group is "every put that
 * arrived while the previous fdatasync ran", and grows with the load.
 *
 * ASYNC_FLUSH writes the appended bytes into the file at every tick, and answers a put only once the
 * bytes are written (a FIFO of write waiters, released after each message), so a process crash (kill -9)
 * loses no acknowledged message: RocketMQ keeps its page cache in an mmap that outlives the process,
 * our SharedArrayBuffer does not, so the write plays the part of RocketMQ's commit (transientStorePool)
 * at every turn. Answering at once would not do: a turn that runs past its budget sends its answers
 * before the tick queued behind its puts has run. With commitLogWriteThreads, ranges of whole blocks from
 * 64 KiB on go to the store's write threads instead (MessageStore.writeCommitLogAsync): the writer goes
 * on appending, and a `written` message (Atomics.waitAsync, piped to itself) tells it when they end, to
 * release the answers they cover and start the next write. Batches start such writes as they are taken
 * (MessageStore.startCommitLogWrites), not only at the tick behind them, so that the disk writes the
 * first batches of a burst while the writer takes the rest; an answer still waits for its entries'
 * dispatch at the tick (releaseWritten), so a put that was answered is visible to consumers.
 *
 * The fdatasync comes every flushIntervalCommitLog ms; ConsumeQueues, index and the checkpoint are
 * written every flushIntervalConsumeQueue ms in both modes. The disk guard measures statfs every
 * diskCheckIntervalMs; while the disk is full, puts get SERVICE_NOT_AVAILABLE and reads still work.
 *
 * Reads (`get`, `queryByKey`) are served on this thread for now: they dispatch first, so a put that was
 * answered is readable. Replies are copied by the wire when the asker is on another thread.
 *
 * Replication (HA). On a master, the ha-service asks `haReadRaw` (a long poll: answered when bytes past
 * the offset are written, or empty at `waitMs`) and tells `haSlaveAck` / `haSlaveGone`. A SYNC_MASTER
 * put is answered once a slave's acked offset covers its end (after the disk, under SYNC_FLUSH), with
 * FLUSH_SLAVE_TIMEOUT past haSyncTimeoutMs, or at once with SLAVE_NOT_AVAILABLE when no slave is in
 * sync (connected, within haMaxGapNotInSync bytes, caught up within haMaxTimeSlaveNotCatchup ms, as
 * RocketMQ's isSlaveOK / AutoSwitch isInSyncSlave judge it); the message stays stored either way. On a
 * SLAVE, puts get SERVICE_NOT_AVAILABLE and the ha-client's `haAppendRaw` appends the master's bytes.
 * `setRole` (with a fencing epoch that never goes back) demotes or promotes at run time; `truncateTo`
 * cuts a demoted old master's tail before it resyncs. A slave that said its brokerId in the HA handshake
 * is listed by `haState` with it; an async learner (MessageStoreConfig.asyncLearner) is never in sync:
 * it is no SyncStateSet member, so its acks answer no SYNC_MASTER put.
 *
 * Lease (controller mode). The replicas manager fences the writer when its controller lease runs out,
 * but puts already queued here would be answered before that fence arrives (an old master stopped and
 * resumed, say). So `setRole` may carry, and `lease` renews, a deadline `leaseUntilMs` on the monotonic
 * clock (ctx.clock.monotonicNs in ms, the replicas manager's own time base; never wall time). Checked at
 * the start of every turn: once now >= leaseUntilMs, puts get SERVICE_NOT_AVAILABLE (nothing appended),
 * and SYNC_MASTER puts still waiting for a slave are answered FLUSH_SLAVE_TIMEOUT at once, even if an ack
 * comes later (they are stored, as any FLUSH_SLAVE_TIMEOUT put is, but not confirmed replicated under a
 * valid lease). So are puts taken under the lease but still waiting for their write or fdatasync when it
 * runs out: a master frozen between the two would otherwise answer PUT_OK after another broker took over,
 * for bytes the new master may never have got. No lease set (every broker outside controller mode)
 * changes nothing.
 *
 * Failure. A failed fdatasync answers every waiter FLUSH_DISK_TIMEOUT and then fails the actor: its
 * supervisor restarts it, and init reopens the store from disk with crash recovery (the abort file is
 * kept), whose own fdatasyncs re-establish what is durable. A disk that keeps failing fails init too,
 * until the restart window runs out and the writer stops: fail-stop, as PostgreSQL does. Known gap: Linux
 * marks the pages of a failed writeback clean, so bytes the kernel dropped may still read back from
 * its cache during that recovery and be taken as durable (rewriting [durable, written) from the
 * writer's own cache before failing would close it).
 */
import type { ActorContext, ActorRef, Behavior, DeferredReply } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import {
  MessageStore,
  type EncodedBatch,
  type EncodedPut,
  type RegionBatch,
  type PutBatchResult,
  type GetMessageResult,
  type HaAppendResult,
  type HaPutMessageStatus,
  type HaReadResult,
  type HaRefusal,
  type MessageStoreOptions,
  type PutMessageInput,
  type PutMessageResult,
  type StoreRecoveryReport,
  type StoreSyncRequest,
  type StoredMessage,
} from '../storage/message-store.ts';
import type { SocketAddress } from '../storage/message-record.ts';
import type { DiskCheck } from '../storage/retention.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import type { CommitLogFlusherMessage, SyncDone } from './commit-log-flusher.ts';
import { HA_DEFAULTS } from '../storage/ha-protocol.ts';
import { WaiterQueue } from './waiter-queue.ts';
import { WriterRegion, type RegionReport } from './writer-region.ts';
import type { RegionGrant } from '../storage/append-region.ts';

/** RocketMQ's brokerRole. */
export type BrokerRole = 'ASYNC_MASTER' | 'SYNC_MASTER' | 'SLAVE';

/** Store tuning that travels in the args (plain data): bounds and geometry, no seams. */
export type StoreTuning = Pick<
  MessageStoreOptions,
  | 'consumeQueuesMax'
  | 'dispatchPendingMax'
  | 'maxTransferCountOnMessageInMemory'
  | 'maxTransferBytesOnMessageInMemory'
  | 'messageIndexEnable'
  | 'maxHashSlotNum'
  | 'maxIndexNum'
  | 'maxMsgsNumBatch'
  | 'diskRatios'
  | 'commitLogWriteThreads'
  | 'commitLogDirectWriteMinBytes'
>;

/** Start arguments, from config (see store-actors.ts); `seam` is read only by test behaviors. */
export type CommitLogWriterArgs = {
  readonly rootDir: string;
  readonly flushDiskType: 'ASYNC_FLUSH' | 'SYNC_FLUSH';
  readonly storeHost: SocketAddress;
  readonly mappedFileSizeCommitLog: number;
  readonly mappedFileSizeConsumeQueue: number;
  readonly maxMessageSize: number;
  readonly flushIntervalCommitLogMs: number;
  readonly flushIntervalConsumeQueueMs: number;
  readonly syncFlushTimeoutMs: number;
  /** How often statfs is measured (RocketMQ's cleanResourceInterval). */
  readonly diskCheckIntervalMs: number;
  /** Most SYNC_FLUSH puts waiting for a sync; past it a put gets OS_PAGE_CACHE_BUSY. */
  readonly syncFlushWaitersMax: number;
  /** The flusher that fdatasyncs for this writer (another thread). */
  readonly flusher: ActorRef<CommitLogFlusherMessage>;
  readonly tuning?: StoreTuning;
  readonly seam?: unknown;
  /** brokerRole; default ASYNC_MASTER. */
  readonly brokerRole?: BrokerRole;
  /** How long a SYNC_MASTER put waits for a slave (RocketMQ uses syncFlushTimeout); default 5000. */
  readonly haSyncTimeoutMs?: number;
  /** haMaxGapNotInSync, bytes; default 256 MiB. */
  readonly haMaxGapNotInSync?: number;
  /** haMaxTimeSlaveNotCatchup, ms; default 15000. */
  readonly haMaxTimeSlaveNotCatchupMs?: number;
  /** How long an unreported append-region reservation may hold up the log (writer-region.ts); default 10000. */
  readonly regionReportTimeoutMs?: number;
};

/** Default of regionReportTimeoutMs. */
export const REGION_REPORT_TIMEOUT_MS_DEFAULT = 10_000;

/** Replication requests: the ha-service's and ha-client's asks, and role changes. */
export type HaWriterMessage =
  /** Raw log bytes from fromOffset, within one file, up to maxBytes (capped at 16 MiB); waits up to waitMs for them. */
  | { readonly type: 'haReadRaw'; readonly fromOffset: number; readonly maxBytes: number; readonly waitMs?: number }
  | { readonly type: 'haAppendRaw'; readonly fromOffset: number; readonly bytes: Uint8Array }
  | { readonly type: 'haSlaveAck'; readonly slaveId: string; readonly offset: number; readonly brokerId?: number; readonly asyncLearner?: boolean }
  | { readonly type: 'haSlaveGone'; readonly slaveId: string }
  | { readonly type: 'haState' }
  /** `leaseUntilMs`: undefined keeps the current lease, null removes it, a number sets it (monotonic ms). */
  | { readonly type: 'setRole'; readonly role: BrokerRole; readonly epoch: number; readonly leaseUntilMs?: number | null }
  /** Renews (or with null removes) the lease; answers LeaseAnswer. */
  | { readonly type: 'lease'; readonly leaseUntilMs: number | null }
  | { readonly type: 'fence'; readonly epoch: number }
  | { readonly type: 'truncateTo'; readonly offset: number };

/** The answer to `setRole` / `fence`. */
export type RoleAnswer =
  | { readonly ok: true; readonly role: BrokerRole; readonly epoch: number; readonly maxOffset: number }
  | { readonly ok: false; readonly code: 'STALE_EPOCH'; readonly role: BrokerRole; readonly epoch: number };

/** The answer to `lease`. */
export type LeaseAnswer = { readonly ok: true; readonly leaseUntilMs: number | null } | { readonly ok: false; readonly code: 'BAD_LEASE'; readonly remark: string };

/** The answer to `truncateTo`. */
export type TruncateAnswer = { readonly ok: true; readonly maxOffset: number } | HaRefusal | { readonly ok: false; readonly code: 'NOT_SLAVE'; readonly remark: string };

/** The answer to `haState`: the role and what the writer knows of each slave. */
export type HaStateAnswer = {
  readonly role: BrokerRole;
  readonly epoch: number;
  readonly maxOffset: number;
  readonly writtenOffset: number;
  readonly slaves: readonly HaSlaveState[];
  readonly haWaiters: number;
  /** The lease deadline in monotonic ms; null or absent: no lease. */
  readonly leaseUntilMs?: number | null;
};

/** One slave in `haState`: `brokerId` and `asyncLearner` come from its handshake (absent without one). */
export type HaSlaveState = {
  readonly slaveId: string;
  readonly brokerId?: number;
  readonly asyncLearner?: boolean;
  readonly ackedOffset: number;
  /** Within haMaxGapNotInSync and caught up within haMaxTimeSlaveNotCatchup; never for an async learner. */
  readonly inSync: boolean;
};

/** A put's status, including SYNC_MASTER's (the writer answers these; PutMessageResult names the rest). */
export type ReplicatedPutStatus = PutMessageResult['status'] | HaPutMessageStatus;

/** A read request (RocketMQ's getMessage); `tags` filters on the exact tag, '*' for all. */
export type GetRequest = {
  readonly type: 'get';
  readonly topic: string;
  readonly queueId: number;
  readonly queueOffset: number;
  readonly maxMsgNums: number;
  readonly tags?: readonly string[];
};

/**
 * The answer to `get`: the read, with the writer's role and the CommitLog's end when it was served, so a
 * pull processor knows the broker's current role (static or set by the controller) and how far behind the
 * log end the read is (PullMessageProcessor's slave read and suggestWhichBrokerId).
 */
export type GetAnswer = GetMessageResult & { readonly role: BrokerRole; readonly maxPhysicalOffset: number };

/** Messages: requests (asks) from the broker, the flusher's answers, and the writer's own timers. */
export type CommitLogWriterMessage =
  | { readonly type: 'put'; readonly message: PutMessageInput }
  | { readonly type: 'putBatch'; readonly messages: readonly PutMessageInput[] }
  | { readonly type: 'putEncoded'; readonly puts: readonly EncodedPut[] }
  | { readonly type: 'putEncodedBatch'; readonly batch: EncodedBatch }
  /** A batch a send thread copied into the append region; answered as putEncodedBatch. */
  | RegionReport
  /** The append region's grant (RegionGrant), or null while it is closed. */
  | { readonly type: 'regionGrant' }
  | GetRequest
  | { readonly type: 'queryByKey'; readonly topic: string; readonly key: string; readonly maxNum: number; readonly beginMs?: number; readonly endMs?: number }
  | { readonly type: 'queueRange'; readonly topic: string; readonly queueId: number }
  /** The ranges of several queues of one topic, in `queueIds` order (one ask per POP round). */
  | { readonly type: 'queueRanges'; readonly topic: string; readonly queueIds: readonly number[] }
  | { readonly type: 'readAt'; readonly physicalOffset: number }
  | { readonly type: 'storeTime'; readonly topic: string; readonly queueId: number; readonly queueOffset: number }
  | { readonly type: 'searchOffset'; readonly topic: string; readonly queueId: number; readonly timestampMs: number; readonly boundary: 'lower' | 'upper' }
  | { readonly type: 'watchArrivals'; readonly watcher: ActorRef<ArrivalNotice> }
  | { readonly type: 'flush' }
  | { readonly type: 'checkDisk' }
  | { readonly type: 'stats' }
  | { readonly type: 'recovery' }
  | { readonly type: 'tick' }
  /** A CommitLog write on a write thread ended (ASYNC_FLUSH: see the header). */
  | { readonly type: 'written' }
  | { readonly type: 'flushCommitLog' }
  | { readonly type: 'flushConsumeQueue' }
  | { readonly type: 'expire' }
  | HaWriterMessage
  | SyncDone;

/**
 * Told to every watcher after a turn that made messages visible (dispatched): which queues grew and their
 * new max offsets. Long-polling pull and POP services wake their suspended requests on it, as RocketMQ's
 * ReputMessageService notifies the PullRequestHoldService.
 */
export type ArrivalNotice = {
  readonly type: 'arrived';
  readonly queues: readonly { readonly topic: string; readonly queueId: number; readonly maxOffset: number }[];
};

/** The answer to `flush`: whether everything appended before it became durable in time. */
export type FlushAnswer = { readonly flushed: boolean; readonly offset: number };

/** Counters for the status view and the benchmark (msgs per fdatasync = syncedMessages / commitLogFdatasyncs). */
export type CommitLogWriterStats = {
  puts: number;
  putOk: number;
  syncRounds: number;
  commitLogFdatasyncs: number;
  fdatasyncs: number;
  syncedMessages: number;
  flushTimeouts: number;
  lostSyncs: number;
  /** Batch puts that started write-thread writes, none running, as they were taken (before their tick; ASYNC_FLUSH). */
  earlyWriteStarts: number;
  readonly waiters: number;
  readonly maxOffset: number;
  readonly dispatchedOffset: number;
  readonly writtenOffset: number;
  readonly durableOffset: number;
};

type Counters = Omit<CommitLogWriterStats, 'waiters' | 'maxOffset' | 'dispatchedOffset' | 'writtenOffset' | 'durableOffset'>;

type Waiter = {
  readonly endOffset: number;
  readonly deadlineMs: number;
  readonly reply: DeferredReply | undefined;
  readonly messages: number;
  readonly onDurable: unknown;
  readonly onTimeout: unknown;
  /** SYNC_MASTER: after the disk, wait for a slave until haDeadlineMs, else answer onSlaveTimeout. */
  readonly needsSlave?: boolean;
  readonly haDeadlineMs?: number;
  readonly onSlaveTimeout?: unknown;
};

/**
 * An ASYNC_FLUSH put waiting for its bytes to reach the file. Bounded by what one tick appends: the tick
 * that follows the puts writes everything appended, and the waiters are released right after.
 */
type WriteWaiter = {
  readonly endOffset: number;
  readonly reply: DeferredReply | undefined;
  /** The answer; FLUSH_DISK_TIMEOUT in its place if the writer stops before the bytes are written. */
  readonly onWritten: unknown;
};

/** What the writer knows of one connected slave (told by the ha-service). */
type SlaveState = { ackedOffset: number; lastCatchUpMs: number; targetOffset: number; brokerId: number | undefined; asyncLearner: boolean };

/** An ha-service's read waiting for bytes past its offset. */
type HaReader = { readonly fromOffset: number; readonly maxBytes: number; readonly deadlineMs: number; readonly reply: DeferredReply | undefined };

/** Replication state of the writer: role, slaves, SYNC_MASTER waiters, long-polling readers. */
type HaState = {
  role: BrokerRole;
  roleEpoch: number;
  readonly slaves: Map<string, SlaveState>;
  readonly waiters: WaiterQueue<Waiter>;
  readonly readers: HaReader[];
  /** Lease deadline, monotonic ms; null: no lease (outside controller mode). */
  leaseUntilMs: number | null;
  /** Whether the lease had run out at the start of this turn (always false without a lease). */
  leaseOut: boolean;
};

type InFlight = { readonly seq: number; readonly request: StoreSyncRequest; readonly startedMs: number };

type State = {
  readonly store: MessageStore;
  readonly args: CommitLogWriterArgs;
  /** This incarnation: answers to a request of an earlier one are ignored. */
  readonly epoch: number;
  readonly waiters: WaiterQueue<Waiter>;
  /** ASYNC_FLUSH puts waiting for their bytes to be written. */
  readonly writeWaiters: WaiterQueue<WriteWaiter>;
  tickQueued: boolean;
  /** Whether a `written` message is on its way for the running CommitLog writes. */
  writesWatched: boolean;
  inFlight: InFlight | null;
  nextSeq: number;
  /** True while a message is handled: still true in onStop means the handler failed midway. */
  inReceive: boolean;
  readonly counters: Counters;
  /** Who hears of newly visible messages (bounded: pull and POP services register once each). */
  readonly watchers: ActorRef<ArrivalNotice>[];
  readonly ha: HaState;
  /** Where send threads append in place (see writer-region.ts). */
  readonly region: WriterRegion<CommitLogWriterMessage>;
};

const WATCHERS_MAX = 256;
/** Slaves one master tracks at most (connections past it are refused by the ha-service's own bound). */
const HA_SLAVES_MAX = 64;
/** ha-service reads waiting for new bytes at most (one per slave connection). */
const HA_READERS_MAX = HA_SLAVES_MAX;
/** Bytes one haReadRaw copies at most, whatever it asks (the ha-service splits them into frames). */
const HA_READ_BYTES_MAX = 16 * 1024 * 1024;

/** Dispatches what was appended (it becomes visible) and tells the watchers which queues grew. */
function dispatch(state: State, ctx: Ctx): void {
  state.store.dispatch();
  if (state.watchers.length === 0) return;
  const queues = state.store.takeArrivals();
  if (queues.length === 0) return;
  const notice: ArrivalNotice = { type: 'arrived', queues };
  for (const watcher of state.watchers) ctx.tell(watcher, notice);
}

type Ctx = ActorContext<CommitLogWriterMessage>;

const TIMER_FLUSH_COMMIT_LOG = 'flushCommitLog';
const TIMER_FLUSH_CONSUME_QUEUE = 'flushConsumeQueue';
const TIMER_EXPIRE = 'expire';
const TIMER_CHECK_DISK = 'checkDisk';
const TIMER_TICK = 'tick';

// ------------------------------------------------------------------------------------------ waiters

/** Answers every waiter the durable offset now covers (they are in log order). */
function releaseDurable(state: State): void {
  const durable = state.store.durableOffset;
  // Bounded by the number of waiters.
  while (state.waiters.length > 0 && state.waiters.first()!.endOffset <= durable) {
    const waiter = state.waiters.shift();
    state.counters.syncedMessages += waiter.messages;
    if (waiter.needsSlave === true) awaitSlave(state, waiter);
    else waiter.reply?.resolve(state.ha.leaseOut ? withStatus(waiter.onDurable, 'FLUSH_SLAVE_TIMEOUT') : waiter.onDurable);
  }
}

/** Answers every ASYNC_FLUSH put whose bytes are written and dispatched (they are in log order). */
function releaseWritten(state: State): void {
  // Writes started as batches come can end before the tick dispatches those batches.
  const written = Math.min(state.store.writtenOffset, state.store.dispatchedOffset);
  // Bounded by the number of write waiters.
  while (state.writeWaiters.length > 0 && state.writeWaiters.first()!.endOffset <= written) {
    const waiter = state.writeWaiters.shift();
    // Taken under the lease, written after it ran out: stored, not confirmed (see the header).
    waiter.reply?.resolve(state.ha.leaseOut ? withStatus(waiter.onWritten, 'FLUSH_SLAVE_TIMEOUT') : waiter.onWritten);
  }
}

/** Answers every write waiter with its failure answer: the writer stops before writing their bytes. */
function failWriteWaiters(state: State): void {
  // Bounded by the number of write waiters.
  while (state.writeWaiters.length > 0) {
    const waiter = state.writeWaiters.shift();
    waiter.reply?.resolve(withStatus(waiter.onWritten, 'FLUSH_DISK_TIMEOUT'));
  }
}

/** Answers FLUSH_DISK_TIMEOUT to waiters past their deadline (all of them with `all`). */
function expireWaiters(state: State, nowMs: number, all: boolean): void {
  while (state.waiters.length > 0 && (all || state.waiters.first()!.deadlineMs <= nowMs)) {
    const waiter = state.waiters.shift();
    state.counters.flushTimeouts += waiter.messages;
    waiter.reply?.resolve(waiter.onTimeout);
  }
}

/** The same answer (one result, a batch result or an array of them) with PUT_OK replaced by `status`. */
function withStatus(value: unknown, status: ReplicatedPutStatus): unknown {
  if (Array.isArray(value)) return value.map((item: unknown) => withStatus(item, status));
  const result = value as { readonly status: ReplicatedPutStatus };
  return result.status === 'PUT_OK' ? { ...result, status } : result;
}

// ------------------------------------------------------------------------------------------ replication

/** Whether a slave is in sync for a put ending at `endOffset` (RocketMQ's isSlaveOK and isInSyncSlave). */
function slaveInSync(state: State, slave: SlaveState, endOffset: number, nowMs: number): boolean {
  if (slave.asyncLearner) return false;
  const gapMax = state.args.haMaxGapNotInSync ?? HA_DEFAULTS.haMaxGapNotInSync;
  const catchupMs = state.args.haMaxTimeSlaveNotCatchupMs ?? HA_DEFAULTS.haMaxTimeSlaveNotCatchup;
  return endOffset - slave.ackedOffset < gapMax && nowMs - slave.lastCatchUpMs <= catchupMs;
}

function anySlaveInSync(state: State, endOffset: number, nowMs: number): boolean {
  for (const slave of state.ha.slaves.values()) if (slaveInSync(state, slave, endOffset, nowMs)) return true;
  return false;
}

/** The furthest offset a connected slave acknowledged (RocketMQ's push2SlaveMaxOffset), -1 if none. */
function replicatedOffset(ha: HaState): number {
  let offset = -1;
  for (const slave of ha.slaves.values()) if (!slave.asyncLearner) offset = Math.max(offset, slave.ackedOffset);
  return offset;
}

/** Answers now if a slave already covers the waiter, else queues it for one (in log order). */
function awaitSlave(state: State, waiter: Waiter): void {
  if (state.ha.leaseOut) {
    // No slave ack counts once the lease ran out (see the header).
    waiter.reply?.resolve(waiter.onSlaveTimeout);
    return;
  }
  if (replicatedOffset(state.ha) >= waiter.endOffset) {
    waiter.reply?.resolve(waiter.onDurable);
    return;
  }
  state.ha.waiters.push(waiter);
}

/** Answers every SYNC_MASTER waiter a slave's ack covers. */
function releaseReplicated(state: State): void {
  const covered = replicatedOffset(state.ha);
  while (state.ha.waiters.length > 0 && state.ha.waiters.first()!.endOffset <= covered) {
    const waiter = state.ha.waiters.shift();
    waiter.reply?.resolve(waiter.onDurable);
  }
}

/** Answers FLUSH_SLAVE_TIMEOUT to SYNC_MASTER waiters past their deadline (all of them with `all`). */
function expireHaWaiters(state: State, nowMs: number, all: boolean): void {
  const ha = state.ha;
  while (ha.waiters.length > 0 && (all || (ha.waiters.first()!.haDeadlineMs ?? 0) <= nowMs)) {
    const waiter = ha.waiters.shift();
    waiter.reply?.resolve(waiter.onSlaveTimeout);
  }
}

/** Records a slave's acknowledged offset; it has caught up when it reached what was readable at its last ack. */
function onSlaveAck(state: State, ack: Extract<HaWriterMessage, { type: 'haSlaveAck' }>, nowMs: number, ctx: Ctx): void {
  const { slaveId, offset } = ack;
  assert(Number.isSafeInteger(offset) && offset >= 0, () => `bad slave offset ${offset}`);
  const ha = state.ha;
  if (offset > state.store.maxPhysicalOffset) {
    // A slave ahead of its master diverged (an old master's tail): it confirms nothing here.
    ctx.log.warn({ slaveId, offset, maxOffset: state.store.maxPhysicalOffset }, 'slave reports an offset past the log end; ignored');
    ha.slaves.delete(slaveId);
    return;
  }
  let slave = ha.slaves.get(slaveId);
  const readable = state.store.writtenOffset;
  if (slave === undefined) {
    if (ha.slaves.size >= HA_SLAVES_MAX) {
      ctx.log.warn({ slaveId, slavesMax: HA_SLAVES_MAX }, 'slave ignored: too many slaves');
      return;
    }
    slave = { ackedOffset: offset, lastCatchUpMs: Number.NEGATIVE_INFINITY, targetOffset: readable, brokerId: undefined, asyncLearner: false };
    ha.slaves.set(slaveId, slave);
  }
  if (ack.brokerId !== undefined) {
    assert(Number.isSafeInteger(ack.brokerId) && ack.brokerId >= 0, () => `bad slave brokerId ${ack.brokerId}`);
    slave.brokerId = ack.brokerId;
    slave.asyncLearner = ack.asyncLearner === true;
  }
  if (offset >= slave.targetOffset) slave.lastCatchUpMs = nowMs;
  slave.ackedOffset = Math.max(slave.ackedOffset, offset);
  slave.targetOffset = readable;
  releaseReplicated(state);
}

/** Answers the ha-service reads that bytes past their offsets now satisfy (or all of them with `all`). */
function serveHaReaders(state: State, nowMs: number, all: boolean): void {
  const readers = state.ha.readers;
  if (readers.length === 0) return;
  const written = state.store.writtenOffset;
  let kept = 0;
  for (const reader of readers) {
    if (all || reader.fromOffset < written || reader.deadlineMs <= nowMs) reader.reply?.resolve(readRaw(state, reader.fromOffset, reader.maxBytes));
    else readers[kept++] = reader;
  }
  readers.length = kept;
}

function notMaster(state: State): HaRefusal {
  const store = state.store;
  return { ok: false, code: 'SERVICE_NOT_AVAILABLE', remark: `broker is ${state.ha.role}`, minOffset: store.minPhysicalOffset, maxOffset: store.maxPhysicalOffset };
}

function readRaw(state: State, fromOffset: number, maxBytes: number): HaReadResult {
  if (state.ha.role === 'SLAVE') return notMaster(state);
  return state.store.readRaw(fromOffset, maxBytes);
}

function haReadRaw(state: State, message: Extract<HaWriterMessage, { type: 'haReadRaw' }>, ctx: Ctx): void {
  const maxBytes = Math.min(message.maxBytes, HA_READ_BYTES_MAX);
  const answer = readRaw(state, message.fromOffset, maxBytes);
  const waitMs = message.waitMs ?? 0;
  const empty = answer.ok && answer.bytes.length === 0;
  if (!empty || waitMs <= 0 || state.ha.readers.length >= HA_READERS_MAX) return ctx.reply(answer);
  state.ha.readers.push({ fromOffset: answer.physicalOffset, maxBytes, deadlineMs: ctx.clock.nowMs() + waitMs, reply: ctx.deferReply() });
}

function haAppendRaw(state: State, message: Extract<HaWriterMessage, { type: 'haAppendRaw' }>, ctx: Ctx): void {
  if (state.ha.role !== 'SLAVE') {
    const store = state.store;
    const refusal: HaAppendResult = { ok: false, code: 'SERVICE_NOT_AVAILABLE', remark: `broker is ${state.ha.role}, not a slave`, minOffset: store.minPhysicalOffset, maxOffset: store.maxPhysicalOffset };
    return ctx.reply(refusal);
  }
  const result = state.store.appendRaw(message.fromOffset, message.bytes);
  if (result.ok && result.records > 0) scheduleTick(state, ctx);
  ctx.reply(result);
}

function monotonicMs(ctx: Ctx): number {
  return Number(ctx.clock.monotonicNs() / 1_000_000n);
}

function validLease(leaseUntilMs: unknown): leaseUntilMs is number | null {
  return leaseUntilMs === null || (typeof leaseUntilMs === 'number' && Number.isFinite(leaseUntilMs));
}

/** Re-reads the monotonic clock against the lease; once out, SYNC_MASTER waiters are answered at once. */
function checkLease(state: State, ctx: Ctx): void {
  const ha = state.ha;
  ha.leaseOut = ha.leaseUntilMs !== null && monotonicMs(ctx) >= ha.leaseUntilMs;
  if (ha.leaseOut && ha.waiters.length > 0) expireHaWaiters(state, 0, true);
}

function setLease(state: State, leaseUntilMs: number | null, ctx: Ctx): void {
  state.ha.leaseUntilMs = leaseUntilMs;
  checkLease(state, ctx);
}

function lease(state: State, leaseUntilMs: number | null, ctx: Ctx): LeaseAnswer {
  if (!validLease(leaseUntilMs)) return { ok: false, code: 'BAD_LEASE', remark: `leaseUntilMs ${String(leaseUntilMs)} is neither null nor a finite number` };
  setLease(state, leaseUntilMs, ctx);
  return { ok: true, leaseUntilMs };
}

/** Changes the role under a fencing epoch that never goes back; a demoted master stops waiting for slaves. */
function setRole(state: State, role: BrokerRole, epoch: number, leaseUntilMs: number | null | undefined, ctx: Ctx): RoleAnswer {
  const ha = state.ha;
  assert(role === 'ASYNC_MASTER' || role === 'SYNC_MASTER' || role === 'SLAVE', () => `bad role ${role}`);
  assert(leaseUntilMs === undefined || validLease(leaseUntilMs), () => `bad leaseUntilMs ${String(leaseUntilMs)}`);
  if (!Number.isSafeInteger(epoch) || epoch < ha.roleEpoch) return { ok: false, code: 'STALE_EPOCH', role: ha.role, epoch: ha.roleEpoch };
  if (leaseUntilMs !== undefined) setLease(state, leaseUntilMs, ctx);
  const previous = ha.role;
  ha.role = role;
  ha.roleEpoch = epoch;
  if (role !== 'SYNC_MASTER') expireHaWaiters(state, 0, true);
  if (role === 'SLAVE') {
    serveHaReaders(state, ctx.clock.nowMs(), true);
    ha.slaves.clear();
  }
  if (previous !== role) ctx.log.info({ from: previous, to: role, epoch }, 'broker role changed');
  return { ok: true, role, epoch, maxOffset: state.store.maxPhysicalOffset };
}

function truncateTo(state: State, offset: number): TruncateAnswer {
  if (state.ha.role !== 'SLAVE') return { ok: false, code: 'NOT_SLAVE', remark: 'only a slave (a fenced old master) truncates its log' };
  // Writes past the cut are gone: their waiters are answered now, and a sync in flight is forgotten.
  expireWaiters(state, 0, true);
  expireHaWaiters(state, 0, true);
  state.inFlight = null;
  return state.store.truncateTo(offset);
}

function haStateOf(state: State, nowMs: number): HaStateAnswer {
  const end = state.store.maxPhysicalOffset;
  const slaves = [...state.ha.slaves].map(([slaveId, slave]): HaSlaveState => {
    const inSync = slaveInSync(state, slave, end, nowMs);
    if (slave.brokerId === undefined) return { slaveId, ackedOffset: slave.ackedOffset, inSync };
    return { slaveId, brokerId: slave.brokerId, asyncLearner: slave.asyncLearner, ackedOffset: slave.ackedOffset, inSync };
  });
  const ha = state.ha;
  return { role: ha.role, epoch: ha.roleEpoch, maxOffset: end, writtenOffset: state.store.writtenOffset, slaves, haWaiters: ha.waiters.length, leaseUntilMs: ha.leaseUntilMs };
}

/** Why a put is refused before anything is appended (a slave, an expired lease), or null to take it. */
function refusal(state: State): PutMessageResult | null {
  if (state.ha.role === 'SLAVE') return refusedOnSlave(state);
  if (state.ha.leaseOut) {
    const remark = `broker lease ran out at ${state.ha.leaseUntilMs} (monotonic ms), so write is forbidden until the controller renews it`;
    return { status: 'SERVICE_NOT_AVAILABLE', physicalOffset: -1, queueOffset: -1, msgId: '', wroteBytes: 0, storeTimestampMs: 0, remark };
  }
  return null;
}

function refusedOnSlave(state: State): PutMessageResult {
  return { status: 'SERVICE_NOT_AVAILABLE', physicalOffset: -1, queueOffset: -1, msgId: '', wroteBytes: 0, storeTimestampMs: 0, remark: `message store is ${state.ha.role} mode, so write is forbidden` };
}

/**
 * Answers an appended put (its `value`: one result, a batch result, or an array) when its flush mode
 * and role allow: at once, after the disk (SYNC_FLUSH), after a slave (SYNC_MASTER), or both.
 */
function settle(state: State, endOffset: number, messages: number, value: unknown, ctx: Ctx): void {
  const diskSync = state.args.flushDiskType === 'SYNC_FLUSH';
  const syncMaster = state.ha.role === 'SYNC_MASTER';
  const nowMs = ctx.clock.nowMs();
  let onDurable = value;
  let needsSlave = false;
  if (syncMaster) {
    needsSlave = anySlaveInSync(state, endOffset, nowMs);
    if (!needsSlave) onDurable = withStatus(value, 'SLAVE_NOT_AVAILABLE');
  }
  if (!diskSync && !needsSlave) {
    if (state.store.writtenOffset >= endOffset) return ctx.reply(onDurable);
    state.writeWaiters.push({ endOffset, reply: ctx.deferReply(), onWritten: onDurable });
    return;
  }
  const waiter: Waiter = {
    endOffset,
    deadlineMs: nowMs + state.args.syncFlushTimeoutMs,
    reply: ctx.deferReply(),
    messages,
    onDurable,
    onTimeout: withStatus(value, 'FLUSH_DISK_TIMEOUT'),
    needsSlave,
    haDeadlineMs: nowMs + (state.args.haSyncTimeoutMs ?? HA_DEFAULTS.syncFlushTimeout),
    onSlaveTimeout: withStatus(value, 'FLUSH_SLAVE_TIMEOUT'),
  };
  if (diskSync) state.waiters.push(waiter);
  else awaitSlave(state, waiter);
}

/** Whether the put waiters (disk and slave) are at their bound. */
function waitersFull(state: State): boolean {
  const waits = state.args.flushDiskType === 'SYNC_FLUSH' || state.ha.role === 'SYNC_MASTER';
  return waits && state.waiters.length + state.ha.waiters.length >= state.args.syncFlushWaitersMax;
}

// ------------------------------------------------------------------------------------------ syncing

/** Hands what is written and not synced to the flusher, unless a sync is in flight. */
function startSync(state: State, ctx: Ctx): void {
  if (state.inFlight !== null) return;
  const request = state.store.takeSyncRequest();
  if (request === null) return;
  const seq = state.nextSeq++;
  state.inFlight = { seq, request, startedMs: ctx.clock.nowMs() };
  const sent = ctx.tell(state.args.flusher, {
    type: 'sync',
    epoch: state.epoch,
    seq,
    // The writer accepts SyncDone among its messages; ActorRef's phantom type cannot say "accepts at least".
    replyTo: ctx.self as ActorRef<SyncDone>,
    paths: request.paths,
    checkpoint: request.checkpoint,
  });
  // Not admitted: the lost-sync check in `expire` resends it after syncFlushTimeout.
  if (!sent) ctx.log.warn({ seq }, 'flusher did not take the sync request');
}

function onSynced(state: State, done: SyncDone, ctx: Ctx): void {
  const inFlight = state.inFlight;
  if (done.epoch !== state.epoch || inFlight === null || inFlight.seq !== done.seq) return;
  state.inFlight = null;
  if (done.error !== null) {
    state.store.failSync(inFlight.request);
    expireWaiters(state, 0, true);
    // Only the files can say what survived a failed fdatasync: restart from them (see the header).
    throw new Error(`fdatasync failed (${done.error.code}): ${done.error.message}`);
  }
  state.store.completeSync(inFlight.request);
  state.counters.syncRounds++;
  state.counters.fdatasyncs += done.fdatasyncs;
  state.counters.commitLogFdatasyncs += inFlight.request.commitLogPaths;
  releaseDurable(state);
  if (state.args.flushDiskType === 'SYNC_FLUSH' && state.waiters.length > 0) state.store.writeCommitLog();
  startSync(state, ctx);
}

/** Resends a sync that got no answer within syncFlushTimeout (the flusher's thread died, say). */
function checkLostSync(state: State, nowMs: number, ctx: Ctx): void {
  const inFlight = state.inFlight;
  if (inFlight === null || nowMs - inFlight.startedMs < state.args.syncFlushTimeoutMs) return;
  ctx.log.warn({ seq: inFlight.seq }, 'sync request got no answer; sending it again');
  state.counters.lostSyncs++;
  state.store.failSync(inFlight.request);
  state.inFlight = null;
  startSync(state, ctx);
}

// ------------------------------------------------------------------------------------------ requests

function scheduleTick(state: State, ctx: Ctx): void {
  if (state.tickQueued) return;
  state.tickQueued = true;
  // Behind every put already queued, so they all share the tick; a timer if the mailbox is full.
  if (!ctx.tell(ctx.self, { type: 'tick' })) ctx.timers.startSingle(TIMER_TICK, { type: 'tick' }, 0);
}

function onTick(state: State, ctx: Ctx): void {
  state.tickQueued = false;
  dispatch(state, ctx);
  if (state.args.flushDiskType === 'ASYNC_FLUSH') {
    // Into the file at once (the puts' answers wait for it: see the header); fdatasync waits for the interval.
    writeAsync(state, ctx);
    return;
  }
  if (state.inFlight !== null || state.waiters.length === 0) return;
  state.store.writeCommitLog();
  startSync(state, ctx);
}

/** ASYNC_FLUSH's write: large ranges go to the write threads, and their end comes back as `written`. */
function writeAsync(state: State, ctx: Ctx): void {
  state.store.writeCommitLogAsync();
  if (state.store.commitLogWriting) watchWrites(state, ctx);
}

/** Asks for a `written` message when a running write ends, unless one is asked for already. */
function watchWrites(state: State, ctx: Ctx): void {
  if (state.writesWatched) return;
  state.writesWatched = true;
  ctx.pipeToSelf(state.store.commitLogWriteSignal(), () => ({ type: 'written' }));
}

function onWritten(state: State, ctx: Ctx): void {
  state.writesWatched = false;
  writeAsync(state, ctx);
}

/** Messages that append batches: each starts the writes its bytes complete (see the header). */
const BATCH_PUTS: ReadonlySet<CommitLogWriterMessage['type']> = new Set(['putInPlace', 'putEncodedBatch', 'putEncoded', 'putBatch']);

/** ASYNC_FLUSH with write threads: starts thread writes of the whole blocks appended so far, nothing inline. */
function startEarlyWrites(state: State, ctx: Ctx): void {
  if (state.args.flushDiskType !== 'ASYNC_FLUSH') return;
  const idle = !state.store.commitLogWriting;
  if (!state.store.startCommitLogWrites()) return;
  if (idle) state.counters.earlyWriteStarts++;
  watchWrites(state, ctx);
}

function put(state: State, input: PutMessageInput, ctx: Ctx): void {
  state.counters.puts++;
  const refused = refusal(state);
  if (refused !== null) return ctx.reply(refused);
  if (waitersFull(state)) return ctx.reply(busy(state));
  const result = state.store.appendMessage(input);
  if (result.status !== 'PUT_OK') {
    ctx.reply(result);
    return;
  }
  state.counters.putOk++;
  scheduleTick(state, ctx);
  settle(state, result.physicalOffset + result.wroteBytes, 1, result, ctx);
}

/** Appends a batch: plain inputs are encoded here, EncodedPuts (encoded on a send thread) only copied. */
function putBatch<T>(state: State, inputs: readonly T[], append: (input: T) => PutMessageResult, ctx: Ctx): void {
  state.counters.puts += inputs.length;
  const refused = refusal(state);
  if (refused !== null) return ctx.reply(inputs.map(() => refused));
  if (waitersFull(state)) return ctx.reply(inputs.map(() => busy(state)));
  const results = inputs.map(append);
  const ok = results.filter((result) => result.status === 'PUT_OK');
  state.counters.putOk += ok.length;
  if (ok.length > 0) scheduleTick(state, ctx);
  if (ok.length === 0) return ctx.reply(results);
  const last = ok.at(-1)!;
  settle(state, last.physicalOffset + last.wroteBytes, ok.length, results, ctx);
}

/** Appends a RocketMQ batch encoded on a send thread; one answer (PutBatchResult) for all of it. */
function putEncodedBatch(state: State, batch: EncodedBatch, ctx: Ctx): void {
  state.counters.puts += batch.count;
  const refused = refusal(state);
  if (refused !== null) return ctx.reply({ ...refused, msgNum: 0 } satisfies PutBatchResult);
  if (waitersFull(state)) return ctx.reply({ ...busy(state), msgNum: 0 } satisfies PutBatchResult);
  answerBatch(state, state.store.appendEncodedBatch(batch), ctx);
}

/** Answers a batch the store took or refused: a refusal at once, a stored batch when its flush mode and role allow. */
function answerBatch(state: State, result: PutBatchResult, ctx: Ctx): void {
  if (result.status !== 'PUT_OK') return ctx.reply(result);
  state.counters.putOk += result.msgNum;
  scheduleTick(state, ctx);
  settle(state, result.physicalOffset + result.wroteBytes, result.msgNum, result, ctx);
}

// ------------------------------------------------------------------------------------------ append region

/** Messages that need the log's end to themselves: they wait until the append region has drained. */
function needsLogEnd(message: CommitLogWriterMessage): boolean {
  switch (message.type) {
    case 'put':
    case 'putBatch':
    case 'putEncoded':
    case 'putEncodedBatch':
    case 'haAppendRaw':
    case 'setRole':
    case 'fence':
    case 'lease':
    case 'truncateTo':
      return true;
    default:
      return false;
  }
}

/** Parks a send thread's report, then takes every parked batch the log's end has reached. */
function onRegionReport(state: State, report: RegionReport, ctx: Ctx): void {
  const reply = ctx.deferReply();
  if (!state.region.current(report, state.store)) {
    // Reserved in a region of an earlier incarnation of this writer (its bytes died with that cache), or
    // reported after the writer gave up waiting and filled its range with dead records.
    const remark = report.epoch === state.epoch ? 'the batch was reported after its reservation expired' : 'the CommitLog writer restarted before it took this batch';
    reply?.resolve({ ...refusedRestarted(), remark, msgNum: 0 } satisfies PutBatchResult);
    return;
  }
  state.region.park(report, reply);
}

/** Fills a reservation that was never reported, once it has held up the log for the report timeout. */
function checkRegionStall(state: State, nowMs: number, ctx: Ctx): void {
  const hole = state.region.expiredHole(state.store, nowMs, state.args.regionReportTimeoutMs ?? REGION_REPORT_TIMEOUT_MS_DEFAULT);
  if (hole === null) return;
  ctx.log.error(hole, 'an append-region reservation was never reported; its range is filled with dead records');
  state.store.fillRegionHole(hole.physicalOffset, hole.bytes);
  scheduleTick(state, ctx);
  settleRegion(state, ctx);
}

/** Puts a batch that came with its bytes into the open region; false when it has to go the ordinary way. */
function placeInRegion(state: State, batch: EncodedBatch, ctx: Ctx): boolean {
  state.region.want();
  // Checked as the ordinary way checks them first: a refused batch must not reach the log.
  if (refusal(state) !== null || waitersFull(state) || batch.records.length > state.args.maxMessageSize) return false;
  const report = state.region.placeOwn(batch, ctx.clock.nowMs());
  if (report === null) return false;
  state.region.park(report, ctx.deferReply());
  return true;
}

function refusedRestarted(): PutMessageResult {
  return { status: 'SERVICE_NOT_AVAILABLE', physicalOffset: -1, queueOffset: -1, msgId: '', wroteBytes: 0, storeTimestampMs: 0, remark: 'the CommitLog writer restarted before it took this batch' };
}

/**
 * After every message: takes the region batches whose turn has come, handles what was held once the
 * region has drained, and opens or closes the region as the store's state allows.
 */
function settleRegion(state: State, ctx: Ctx): void {
  const region = state.region;
  // Bounded by the parked reports.
  for (let parked = region.next(state.store); parked !== undefined; parked = region.next(state.store)) {
    takeRegionBatch(state, parked.batch, replyingTo(ctx, parked.reply));
  }
  if (region.holding && region.quiesce(state.store)) {
    for (const held of region.takeHeld()) handle(state, held.message, replyingTo(ctx, held.reply));
  }
  const writable = regionWritable(state);
  if (writable) region.reopen(state.store);
  else region.quiesce(state.store);
  region.answerGrants(writable);
}

/**
 * Whether the region may be open. Not while puts would be refused (a slave, a lease, a full disk):
 * reservations then would only become dead records.
 */
function regionWritable(state: State): boolean {
  return state.ha.role !== 'SLAVE' && state.ha.leaseUntilMs === null && state.store.takesWrites;
}

/** Takes one region batch, in log order, and answers it as putEncodedBatch answers. */
function takeRegionBatch(state: State, batch: RegionBatch, ctx: Ctx): void {
  state.counters.puts += batch.count;
  answerBatch(state, state.store.takeRegionBatch(batch), ctx);
}

/**
 * `ctx` as seen by a message handled later than it arrived (held or parked): its reply goes to the
 * reply that was deferred on arrival.
 */
function replyingTo(ctx: Ctx, reply: DeferredReply | undefined): Ctx {
  let taken = reply === undefined;
  return Object.create(ctx, {
    isAsk: { get: () => !taken },
    reply: {
      value: (value: unknown): void => {
        if (taken) return;
        taken = true;
        reply!.resolve(value);
      },
    },
    deferReply: {
      value: (): DeferredReply | undefined => {
        if (taken) return undefined;
        taken = true;
        return reply;
      },
    },
  }) as Ctx;
}

/** The writer stops: the region closes, and what waits in it is answered. */
function stopRegion(state: State): void {
  const waiting = state.region.shut();
  for (const parked of waiting.parked) parked.reply?.resolve({ ...refusedRestarted(), msgNum: 0 } satisfies PutBatchResult);
  for (const held of waiting.held) held.reply?.reject(new Error('the CommitLog writer stopped before handling this request'));
}

function busy(state: State): PutMessageResult {
  const remark = `${state.args.syncFlushWaitersMax} puts are already waiting for a flush`;
  return { status: 'OS_PAGE_CACHE_BUSY', physicalOffset: -1, queueOffset: -1, msgId: '', wroteBytes: 0, storeTimestampMs: 0, remark };
}

/** Writes everything and answers once it is durable (or FLUSH_DISK_TIMEOUT-like `flushed: false`). */
function flush(state: State, ctx: Ctx): void {
  state.store.writeConsumeQueues();
  const offset = state.store.writtenOffset;
  const deadlineMs = ctx.clock.nowMs() + state.args.syncFlushTimeoutMs;
  const answer = (flushed: boolean): FlushAnswer => ({ flushed, offset });
  state.waiters.push({ endOffset: offset, deadlineMs, reply: ctx.deferReply(), messages: 0, onDurable: answer(true), onTimeout: answer(false) });
  startSync(state, ctx);
  releaseDurable(state);
}

function get(state: State, request: GetRequest, ctx: Ctx): GetAnswer {
  dispatch(state, ctx);
  const filter = request.tags === undefined ? undefined : { tags: request.tags };
  const result = state.store.getMessage(request.topic, request.queueId, request.queueOffset, request.maxMsgNums, filter);
  return { ...result, role: state.ha.role, maxPhysicalOffset: state.store.maxPhysicalOffset };
}

function stats(state: State): CommitLogWriterStats {
  const store = state.store;
  return {
    ...state.counters,
    waiters: state.waiters.length,
    maxOffset: store.maxPhysicalOffset,
    dispatchedOffset: store.dispatchedOffset,
    writtenOffset: store.writtenOffset,
    durableOffset: store.durableOffset,
  };
}

function handle(state: State, message: CommitLogWriterMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'put':
      return put(state, message.message, ctx);
    case 'putBatch':
      return putBatch(state, message.messages, (input) => state.store.appendMessage(input), ctx);
    case 'putEncoded':
      return putBatch(state, message.puts, (put) => state.store.appendEncoded(put), ctx);
    case 'putEncodedBatch':
      return putEncodedBatch(state, message.batch, ctx);
    case 'putInPlace':
      return onRegionReport(state, message, ctx);
    case 'regionGrant': {
      state.region.want();
      settleRegion(state, ctx);
      const grant = state.region.grant();
      if (grant === null && regionWritable(state)) {
        const reply = ctx.deferReply();
        if (reply === undefined || state.region.awaitGrant(reply)) return;
        return reply.resolve(null);
      }
      return ctx.reply(grant satisfies RegionGrant | null);
    }
    case 'get':
      return ctx.reply(get(state, message, ctx));
    case 'queryByKey': {
      dispatch(state, ctx);
      const found: StoredMessage[] = state.store.queryByKey(message.topic, message.key, message.maxNum, message.beginMs, message.endMs);
      return ctx.reply(found);
    }
    case 'queueRange':
      dispatch(state, ctx);
      return ctx.reply(state.store.queueRange(message.topic, message.queueId));
    case 'queueRanges':
      dispatch(state, ctx);
      return ctx.reply(message.queueIds.map((queueId) => state.store.queueRange(message.topic, queueId)));
    case 'readAt':
      dispatch(state, ctx);
      return ctx.reply(state.store.readMessageAt(message.physicalOffset));
    case 'storeTime':
      dispatch(state, ctx);
      return ctx.reply(state.store.storeTimeAt(message.topic, message.queueId, message.queueOffset));
    case 'searchOffset':
      dispatch(state, ctx);
      return ctx.reply(state.store.searchOffsetByTime(message.topic, message.queueId, message.timestampMs, message.boundary));
    case 'watchArrivals': {
      const known = state.watchers.some((watcher) => watcher.slot === message.watcher.slot);
      if (!known && state.watchers.length >= WATCHERS_MAX) return ctx.reply(false);
      if (!known) state.watchers.push(message.watcher);
      state.store.trackArrivals();
      return ctx.reply(true);
    }
    case 'flush':
      return flush(state, ctx);
    case 'checkDisk':
      return ctx.reply(state.store.checkDisk() satisfies DiskCheck);
    case 'stats':
      return ctx.reply(stats(state));
    case 'recovery':
      return ctx.reply(state.store.recovery satisfies StoreRecoveryReport);
    case 'tick':
      return onTick(state, ctx);
    case 'written':
      return onWritten(state, ctx);
    case 'flushCommitLog':
      // Writes still running are synced at the next interval; waiting for them here would stall puts.
      if (state.store.commitLogWriting) state.store.reapCommitLogWrites();
      else state.store.writeCommitLog();
      return startSync(state, ctx);
    case 'flushConsumeQueue':
      state.store.writeConsumeQueues();
      return startSync(state, ctx);
    case 'expire':
      checkRegionStall(state, ctx.clock.nowMs(), ctx);
      expireWaiters(state, ctx.clock.nowMs(), false);
      expireHaWaiters(state, ctx.clock.nowMs(), false);
      return checkLostSync(state, ctx.clock.nowMs(), ctx);
    case 'synced':
      return onSynced(state, message, ctx);
    case 'haReadRaw':
      return haReadRaw(state, message, ctx);
    case 'haAppendRaw':
      return haAppendRaw(state, message, ctx);
    case 'haSlaveAck':
      onSlaveAck(state, message, ctx.clock.nowMs(), ctx);
      return ctx.reply(true);
    case 'haSlaveGone':
      state.ha.slaves.delete(message.slaveId);
      return ctx.reply(true);
    case 'haState':
      return ctx.reply(haStateOf(state, ctx.clock.nowMs()));
    case 'setRole':
      return ctx.reply(setRole(state, message.role, message.epoch, message.leaseUntilMs, ctx));
    case 'lease':
      return ctx.reply(lease(state, message.leaseUntilMs, ctx));
    case 'fence':
      return ctx.reply(setRole(state, 'SLAVE', message.epoch, undefined, ctx));
    case 'truncateTo':
      return ctx.reply(truncateTo(state, message.offset));
    default:
      return assertNever(message, 'commit log writer message');
  }
}

// ------------------------------------------------------------------------------------------ behavior

function checkArgs(args: CommitLogWriterArgs): void {
  for (const key of ['flushIntervalCommitLogMs', 'flushIntervalConsumeQueueMs', 'syncFlushTimeoutMs', 'diskCheckIntervalMs', 'syncFlushWaitersMax'] as const) {
    assert(Number.isSafeInteger(args[key]) && args[key] > 0, () => `${key} is a positive integer`);
  }
  assert(args.flushDiskType === 'ASYNC_FLUSH' || args.flushDiskType === 'SYNC_FLUSH', () => `bad flushDiskType ${args.flushDiskType}`);
  const role = args.brokerRole ?? 'ASYNC_MASTER';
  assert(role === 'ASYNC_MASTER' || role === 'SYNC_MASTER' || role === 'SLAVE', () => `bad brokerRole ${role}`);
  for (const key of ['haSyncTimeoutMs', 'haMaxGapNotInSync', 'haMaxTimeSlaveNotCatchupMs', 'regionReportTimeoutMs'] as const) {
    const value = args[key];
    assert(value === undefined || (Number.isSafeInteger(value) && value > 0), () => `${key} is a positive integer`);
  }
}

function startTimers(args: CommitLogWriterArgs, ctx: Ctx): void {
  if (args.flushDiskType === 'ASYNC_FLUSH') ctx.timers.startPeriodic(TIMER_FLUSH_COMMIT_LOG, { type: 'flushCommitLog' }, args.flushIntervalCommitLogMs);
  ctx.timers.startPeriodic(TIMER_FLUSH_CONSUME_QUEUE, { type: 'flushConsumeQueue' }, args.flushIntervalConsumeQueueMs);
  ctx.timers.startPeriodic(TIMER_CHECK_DISK, { type: 'checkDisk' }, args.diskCheckIntervalMs);
  const timeoutMs = Math.min(args.syncFlushTimeoutMs, args.haSyncTimeoutMs ?? HA_DEFAULTS.syncFlushTimeout);
  const expireMs = Math.min(1_000, Math.max(5, Math.floor(timeoutMs / 10)));
  ctx.timers.startPeriodic(TIMER_EXPIRE, { type: 'expire' }, expireMs);
}

/** Builds the writer behavior over the file system `storageFsOf` returns (tests inject faults here). */
export function commitLogWriterBehavior(
  storageFsOf: (args: CommitLogWriterArgs) => StorageFs,
): Behavior<State, CommitLogWriterMessage, CommitLogWriterArgs> {
  return {
    init(args, ctx) {
      checkArgs(args);
      const store = MessageStore.open({
        ...args.tuning,
        rootDir: args.rootDir,
        fs: storageFsOf(args),
        flushDiskType: args.flushDiskType,
        storeHost: args.storeHost,
        mappedFileSizeCommitLog: args.mappedFileSizeCommitLog,
        mappedFileSizeConsumeQueue: args.mappedFileSizeConsumeQueue,
        maxMessageSize: args.maxMessageSize,
        clock: ctx.clock,
        log: ctx.log,
        // Best effort: a request the flusher's mailbox does not take leaves the faults on this thread.
        touchAhead: (buffer, from, to) => void ctx.tell(args.flusher, { type: 'touch', buffer, from, to }),
      });
      startTimers(args, ctx);
      const counters: Counters = {
        puts: 0, putOk: 0, syncRounds: 0, commitLogFdatasyncs: 0, fdatasyncs: 0, syncedMessages: 0, flushTimeouts: 0, lostSyncs: 0, earlyWriteStarts: 0,
      };
      const epoch = Math.floor(ctx.random() * 0x7fff_ffff);
      const ha: HaState = { role: args.brokerRole ?? 'ASYNC_MASTER', roleEpoch: 0, slaves: new Map(), waiters: new WaiterQueue<Waiter>('slave waiters'), readers: [], leaseUntilMs: null, leaseOut: false };
      const region = new WriterRegion<CommitLogWriterMessage>(epoch);
      return { store, args, epoch, waiters: new WaiterQueue<Waiter>('disk waiters'), writeWaiters: new WaiterQueue<WriteWaiter>('write waiters'), tickQueued: false, writesWatched: false, inFlight: null, nextSeq: 1, inReceive: false, counters, watchers: [], ha, region };
    },

    receive(state, message, ctx) {
      state.inReceive = true;
      // Every turn re-reads the lease first, so a put queued before it ran out is still refused.
      if (state.ha.leaseUntilMs !== null) checkLease(state, ctx);
      if (message.type === 'putInPlace') onRegionReport(state, message, ctx);
      else if (message.type === 'putEncodedBatch' && placeInRegion(state, message.batch, ctx)) {
        // Parked as a send thread's report would be: taken below in log order.
      } else if (needsLogEnd(message) && (state.region.holding || !state.region.quiesce(state.store))) state.region.hold(message, ctx.deferReply());
      else handle(state, message, ctx);
      settleRegion(state, ctx);
      if (BATCH_PUTS.has(message.type)) startEarlyWrites(state, ctx);
      if (state.store.commitLogWriting) state.store.reapCommitLogWrites();
      if (state.writeWaiters.length > 0) releaseWritten(state);
      // Bytes written in this turn wake the ha-service reads waiting for them (and expired ones end).
      if (state.ha.readers.length > 0) serveHaReaders(state, ctx.clock.nowMs(), false);
      state.inReceive = false;
      return state;
    },

    onStop(state, ctx) {
      stopRegion(state);
      if (state.inReceive) {
        // Failed midway: its memory may not match the files; the next init recovers from the files.
        state.store.close();
        releaseWritten(state);
        failWriteWaiters(state);
        return;
      }
      try {
        state.store.shutdown();
        releaseDurable(state);
        releaseWritten(state);
      } catch (error) {
        ctx.log.error({ err: String(error) }, 'store shutdown failed; the next start recovers');
        state.store.close();
      }
      failWriteWaiters(state);
      expireWaiters(state, 0, true);
      expireHaWaiters(state, 0, true);
      serveHaReaders(state, 0, true);
    },
  };
}

/** The writer over the real file system. */
export const commitLogWriter = commitLogWriterBehavior(() => nodeStorageFs);
