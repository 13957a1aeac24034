/**
 * The transaction service: RocketMQ's EndTransactionProcessor, TransactionalMessageServiceImpl and
 * TransactionalMessageCheckService as one actor per broker on the `store` pool (beside the schedule
 * service: it reads the store and writes back into it, and asks broker-admin only for producer
 * channels). Record formats and decisions live in src/storage/transaction-message.ts and
 * transaction-check.ts; this file is the order in which things are written, and what survives a crash.
 *
 * END_TRANSACTION (37), from a producer or the Proxy: read the half record the request names (writer
 * `readAt`), check it (EndTransactionProcessor's checks, see checkEndRequest), then
 *   commit:   put the committed message into its real topic (through its delay level, if it has one),
 *             answer with the put's code, then put the op message (outcome COMMIT);
 *   rollback: put the op message (outcome ROLLBACK), answer.
 * commitOrRollback 0 (unknown) gets no answer, as in RocketMQ.
 *
 * Check rounds, every transactionCheckInterval: read the half queue onward from where the last round
 * stopped (at most scanBatchesPerRoundMax reads), keep the records of unresolved transactions in memory
 * (at most halvesTrackedMax), and act on those due (transaction-check.ts: first after transactionTimeOut
 * or CHECK_IMMUNITY_TIME_IN_SECONDS, then one interval after each check; at most checksPerRoundMax per
 * round), one at a time: a transaction checked transactionCheckMax times is discarded (its half copied
 * to TRANS_CHECK_MAX_TIME_TOPIC with an op message DISCARD, one putEncoded); any other is renewed (a copy
 * with one more check) and CHECK_TRANSACTION_STATE (39) is pushed, naming the copy, to one live
 * connection of its producer group (broker-admin `producerChannels`). No live producer: the check is
 * still counted, as in RocketMQ, so a group that never comes back is discarded in time.
 *
 * Durable state, and why a crash (kill -9, at any point) neither loses a commit nor delivers one twice:
 * - The CommitLog is the only truth. A transaction is its first half record (identity: that record's
 *   queue offset, see transaction-message.ts); it has ended when an op message names it, and it has been
 *   committed when its real topic holds a commit record whose preparedTransactionOffset names one of its
 *   half records. Both are found through the store's index (`queryByKey`: op messages are keyed by the
 *   identity, commit records by UNIQ_KEY), which recovery rebuilds from the CommitLog itself.
 * - Before anything is written for a transaction (commit, rollback, renewal, discard) the service makes
 *   sure it has not ended: from memory when it can prove it (EndedTransactions is exact for transactions
 *   that began after this incarnation started), else by asking the index for an op message, then for a
 *   commit record. A commit found without its op message (the crash window between the two puts) counts
 *   as ended: its op message is written then, and nothing is committed again. So a repeated commit, a
 *   commit after a rollback, a rollback after a commit, a late answer to an old check, and a check after
 *   a restart all find the first outcome, across any number of restarts.
 * - One transaction is worked on by one job at a time (a lock per identity); other requests for it wait.
 * - The half queue offset below which nothing needs attention is persisted to
 *   config/transactionOffset.json every flushOffsetIntervalMs, and only as far as the writes that
 *   justify it are durable (the writer's durableOffset). A start rereads the queue from there: records
 *   already settled are recognized again (op messages, or a newer copy), at worst checked once more.
 * Residual windows, stated plainly: (1) with messageIndexEnable=false the store cannot be asked, and a
 * transaction that ended before this incarnation and left the outcome cache (endedCacheMax recent
 * outcomes, preloaded from the op queue at start) may be committed again or committed after a rollback;
 * the service logs this at start. (2) Under ASYNC_FLUSH an answered commit survives kill -9 only if
 * the writer's turn reached the file (the store's own contract); SYNC_FLUSH answers after fdatasync.
 * (3) A discard may be copied to TRANS_CHECK_MAX_TIME_TOPIC twice if a crash falls between its
 * record and its op message (they are one putEncoded, so only a torn write splits them); it is never
 * delivered either way. (4) A commit record is found by its UNIQ_KEY: a half message without one (the
 * send processor always sets one) committed just before a crash that lost its op message could be
 * committed again.
 *
 * Deliberate differences from RocketMQ: repeated or contradicting ends find the first outcome (RocketMQ
 * commits again, even after a rollback); op messages are written one per end, not batched; the copy
 * made by the last check gets its interval before the discard; a half whose record retention removed
 * is forgotten (RocketMQ's needSkip discards it after fileReservedTime).
 *
 * Bounds: END_TRANSACTION requests between arrival and answer (endTransactionsMax; past it SYSTEM_BUSY),
 * transactions held (halvesTrackedMax; past it the scan waits), outcomes remembered (endedCacheMax),
 * checks per round, reads per round, candidates per index query (lookupMax).
 */
import type { ActorContext, ActorRef, ActorSpawner, Behavior, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError, RuntimeError, RuntimeErrorCode } from '../runtime/errors.ts';
import { z } from 'zod';
import path from 'node:path';
import { CheckTransactionStateRequestHeader, EndTransactionRequestHeader, HeaderError, headerErrorResponse, TransactionState, type ParsedHeader } from '../net/remoting/broker-headers.ts';
import { MQVersionOrdinal } from '../net/remoting/namesrv-protocol.ts';
import { createNotSupportedResponse, createRequest, createResponse, isOneway, RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';
import { decodeRecord, type RecordView, type SocketAddress } from '../storage/message-record.ts';
import { encodePut, isPutRefusal, type EncodedPut, type GetMessageResult, type PutMessageInput, type PutMessageResult, type PutMessageStatus, type StoredMessage, STORED_PUT_STATUSES } from '../storage/message-store.ts';
import { dataVersionSchema, JsonConfigFile, newDataVersion, nextDataVersion, storePaths, type DataVersion } from '../storage/metadata-store.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { SCHEDULE_TOPIC } from '../storage/tag-hash.ts';
import { checkDecision, DurableFrontier, EndedTransactions, TrackedHalves, type KnownEnd } from '../storage/transaction-check.ts';
import {
  checkEndRequest,
  checkMessageBody,
  committedMessage,
  discardedMessage,
  encodeTransactionProperties,
  isCommitRecord,
  opMessage,
  parseInt32,
  readHalfMessage,
  readOpMessage,
  renewedHalfMessage,
  RMQ_SYS_TRANS_HALF_TOPIC,
  RMQ_SYS_TRANS_OP_HALF_TOPIC,
  TRANSACTION_QUEUE_ID,
  type HalfMessage,
  type TransactionOutcome,
} from '../storage/transaction-message.ts';
import type { BrokerAdminExtraAsk } from './broker-admin.ts';
import type { BrokerProcessorArgs } from './broker-context.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats } from './commit-log-writer.ts';
import type { RemotingChannel, RemotingRequestMessage } from './remoting-routes.ts';
import { applyDelayLevel } from './schedule-service.ts';

// ---------------------------------------------------------------------------------------------------
// Args, settings, messages

/** RocketMQ's defaults (BrokerConfig) and our bounds. */
export const TRANSACTION_SERVICE_DEFAULTS = {
  transactionTimeOutMs: 6_000,
  transactionCheckMax: 15,
  transactionCheckIntervalMs: 30_000,
  /** Unresolved transactions held in memory; past it the scan of the half queue waits. */
  halvesTrackedMax: 65_536,
  /** Outcomes remembered (and op messages preloaded at start). */
  endedCacheMax: 65_536,
  /** Transactions acted on (checked or discarded) per round. */
  checksPerRoundMax: 1_024,
  /**
   * Reads of the half queue per round (each at most scanBatchMax records): 4096 x 32 records per 30 s
   * round keeps up with about 4,000 half messages a second; past that the scan falls behind (nothing is
   * lost: the queue is read on, checks come later).
   */
  scanBatchesPerRoundMax: 4_096,
  /** Messages asked for per read. */
  scanBatchMax: 32,
  /** END_TRANSACTION requests between arrival and answer. */
  endTransactionsMax: 1_024,
  /** Candidates one index query returns. */
  lookupMax: 8,
  /** How often the settled half queue offset is written (RocketMQ flushes consumer offsets every 5 s). */
  flushOffsetIntervalMs: 5_000,
  /** Asks to the writer and broker-admin. */
  askTimeoutMs: 10_000,
  /** Whether the store indexes keys (MessageStoreConfig.messageIndexEnable); see the header. */
  messageIndexEnable: true,
} as const;

/** Start arguments. */
export type TransactionServiceArgs = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  /** broker-admin, asked for producer channels (`producerChannels`). */
  readonly admin: ActorRef<BrokerAdminExtraAsk>;
  readonly brokerName: string;
  /** Not 0: a slave, which refuses END_TRANSACTION (SLAVE_NOT_AVAILABLE). */
  readonly brokerId: number;
  /** The writer's store host (puts are encoded here). */
  readonly storeHost: SocketAddress;
  readonly maxMessageSize: number;
  /** Delay levels a committed message may use (messageDelayLevel's count). */
  readonly delayLevelsCount: number;
  /** storePathRootDir: the settled offset lives in config/transactionOffset.json. */
  readonly storePathRootDir: string;
  readonly transactionTimeOutMs?: number;
  readonly transactionCheckMax?: number;
  readonly transactionCheckIntervalMs?: number;
  readonly halvesTrackedMax?: number;
  readonly endedCacheMax?: number;
  readonly checksPerRoundMax?: number;
  readonly scanBatchesPerRoundMax?: number;
  readonly scanBatchMax?: number;
  readonly endTransactionsMax?: number;
  readonly lookupMax?: number;
  readonly flushOffsetIntervalMs?: number;
  readonly askTimeoutMs?: number;
  readonly messageIndexEnable?: boolean;
  /** Read only by behaviors built with a test file system. */
  readonly seam?: unknown;
};

/** What the behavior takes: its own args, or every broker processor's (read through transactionServiceArgsOf). */
export type TransactionServiceStartArgs = TransactionServiceArgs | BrokerProcessorArgs;

/** BrokerSettings keys the service reads when the broker has them (absent: RocketMQ's defaults). */
type TransactionSettingsKeys = { readonly transactionTimeOutMs?: number; readonly transactionCheckMax?: number; readonly transactionCheckIntervalMs?: number };

/** The service's args from the broker processors' args. */
export function transactionServiceArgsOf(args: BrokerProcessorArgs, overrides: Partial<TransactionServiceArgs> = {}): TransactionServiceArgs {
  const settings: TransactionSettingsKeys = args.settings;
  return {
    writer: args.refs.writer,
    // broker-admin takes its extra asks beside BrokerAdminMessage (BrokerAdminInbox); the ref type names only the latter.
    admin: args.refs.admin as unknown as ActorRef<BrokerAdminExtraAsk>,
    brokerName: args.identity.brokerName,
    brokerId: args.identity.brokerId,
    storeHost: args.identity.storeHost,
    maxMessageSize: args.settings.maxMessageSize,
    delayLevelsCount: args.settings.delayLevelsMs.length,
    storePathRootDir: args.settings.storePathRootDir,
    ...(settings.transactionTimeOutMs === undefined ? {} : { transactionTimeOutMs: settings.transactionTimeOutMs }),
    ...(settings.transactionCheckMax === undefined ? {} : { transactionCheckMax: settings.transactionCheckMax }),
    ...(settings.transactionCheckIntervalMs === undefined ? {} : { transactionCheckIntervalMs: settings.transactionCheckIntervalMs }),
    ...overrides,
  };
}

/** The answer to `stats`; `idle` means no job, read or write is under way. */
export type TransactionServiceStats = {
  readonly ready: boolean;
  readonly idle: boolean;
  readonly rounds: number;
  readonly roundsSkipped: number;
  readonly commits: number;
  readonly rollbacks: number;
  readonly checks: number;
  readonly checksWithoutProducer: number;
  readonly discards: number;
  readonly lookups: number;
  readonly repairedOps: number;
  readonly refused: number;
  readonly tracked: number;
  readonly endedCached: number;
  readonly endsInFlight: number;
  /** Next half queue offset to read. */
  readonly scanOffset: number;
  /** Half queue offset below which everything is settled, and what of it may be (or was) persisted. */
  readonly settledOffset: number;
  readonly confirmedOffset: number;
};

/** Messages: END_TRANSACTION, timers, piped outcomes (tagged with the incarnation), and `stats` (ask). */
export type TransactionServiceMessage =
  | RemotingRequestMessage
  | { readonly type: 'start' }
  | { readonly type: 'checkRound' }
  | { readonly type: 'persist' }
  | { readonly type: 'continue'; readonly epoch: number; readonly id: number; readonly result: PipeResult<unknown> }
  | { readonly type: 'stats' };

type Settings = Required<Omit<TransactionServiceArgs, 'seam'>>;
type Ctx = ActorContext<TransactionServiceMessage>;
type Continuation = (state: State, result: PipeResult<unknown>, ctx: Ctx) => void;
type EndHeader = ParsedHeader<typeof EndTransactionRequestHeader>;

/** One END_TRANSACTION between arrival and answer. */
type EndJob = {
  readonly req: RemotingRequestMessage;
  readonly header: EndHeader;
  readonly commit: boolean;
  /** The half record named (a copy, read once). */
  record: Uint8Array | undefined;
  half: HalfMessage | undefined;
  answered: boolean;
};

/** A check round in progress. */
type Round = {
  readonly startMs: number;
  reads: number;
  due: HalfMessage[];
  next: number;
  readonly channels: Map<string, readonly RemotingChannel[]>;
};

type State = {
  readonly settings: Settings;
  /** This incarnation: piped outcomes of an earlier one are ignored. */
  readonly epoch: number;
  readonly file: JsonConfigFile<TransactionOffsetDocument>;
  dataVersion: DataVersion;
  writtenOffset: number;
  ready: boolean;
  /** A writer `stats` ask for persisting is under way. */
  persisting: boolean;
  scanOffset: number;
  readonly frontier: DurableFrontier;
  readonly tracked: TrackedHalves;
  readonly ended: EndedTransactions;
  /** End of every record (read or written) that justified settling something so far. */
  knownEndOffset: number;
  readonly locks: Set<number>;
  readonly waiting: Map<number, EndJob[]>;
  endsInFlight: number;
  round: Round | undefined;
  readonly continuations: Map<number, Continuation>;
  nextContinuationId: number;
  nextPushOpaque: number;
  readonly counters: {
    rounds: number;
    roundsSkipped: number;
    commits: number;
    rollbacks: number;
    checks: number;
    checksWithoutProducer: number;
    discards: number;
    lookups: number;
    repairedOps: number;
    refused: number;
  };
};

const TIMER_ROUND = 'checkRound';
const TIMER_PERSIST = 'persist';
const TIMER_START = 'start';
const START_RETRY_MS = 1_000;
const UNCONFIRMED_MAX = 64;
/** Continuations besides END jobs (each has at most one): the round's one step, a persist, the start. */
const OWN_CONTINUATIONS_MAX = 8;

/** Statuses after which the message is in the log (FLUSH_DISK_TIMEOUT: stored, the sync was late). */
const STORED = STORED_PUT_STATUSES;

/** config/transactionOffset.json: the settled offset of RMQ_SYS_TRANS_HALF_TOPIC/0. */
const transactionOffsetSchema = z.object({
  halfOffset: z.int().min(0),
  dataVersion: dataVersionSchema.optional(),
});

type TransactionOffsetDocument = z.output<typeof transactionOffsetSchema>;

/** The file holding the settled half queue offset. */
export function transactionOffsetFile(storePathRootDir: string): string {
  return path.join(storePaths(storePathRootDir).configDir, 'transactionOffset.json');
}

function settingsOf(args: TransactionServiceArgs): Settings {
  const d = TRANSACTION_SERVICE_DEFAULTS;
  const settings: Settings = {
    writer: args.writer,
    admin: args.admin,
    brokerName: args.brokerName,
    brokerId: args.brokerId,
    storeHost: args.storeHost,
    maxMessageSize: args.maxMessageSize,
    delayLevelsCount: args.delayLevelsCount,
    storePathRootDir: args.storePathRootDir,
    transactionTimeOutMs: args.transactionTimeOutMs ?? d.transactionTimeOutMs,
    transactionCheckMax: args.transactionCheckMax ?? d.transactionCheckMax,
    transactionCheckIntervalMs: args.transactionCheckIntervalMs ?? d.transactionCheckIntervalMs,
    halvesTrackedMax: args.halvesTrackedMax ?? d.halvesTrackedMax,
    endedCacheMax: args.endedCacheMax ?? d.endedCacheMax,
    checksPerRoundMax: args.checksPerRoundMax ?? d.checksPerRoundMax,
    scanBatchesPerRoundMax: args.scanBatchesPerRoundMax ?? d.scanBatchesPerRoundMax,
    scanBatchMax: args.scanBatchMax ?? d.scanBatchMax,
    endTransactionsMax: args.endTransactionsMax ?? d.endTransactionsMax,
    lookupMax: args.lookupMax ?? d.lookupMax,
    flushOffsetIntervalMs: args.flushOffsetIntervalMs ?? d.flushOffsetIntervalMs,
    askTimeoutMs: args.askTimeoutMs ?? d.askTimeoutMs,
    messageIndexEnable: args.messageIndexEnable ?? d.messageIndexEnable,
  };
  const positive = [
    'maxMessageSize', 'delayLevelsCount', 'transactionTimeOutMs', 'transactionCheckMax', 'transactionCheckIntervalMs', 'halvesTrackedMax',
    'endedCacheMax', 'checksPerRoundMax', 'scanBatchesPerRoundMax', 'scanBatchMax', 'endTransactionsMax', 'lookupMax', 'flushOffsetIntervalMs', 'askTimeoutMs',
  ] as const;
  for (const key of positive) assert(Number.isSafeInteger(settings[key]) && settings[key] > 0, `${key} is a positive integer`);
  assert(settings.brokerName.length > 0, 'brokerName is set');
  return settings;
}

// ---------------------------------------------------------------------------------------------------
// Continuations: asks whose outcome comes back as a `continue` message, so every change is in receive

type Ask = <R>(message: CommitLogWriterMessage) => Promise<R>;

function askerOf(state: State, ctx: Ctx): Ask {
  return <R>(message: CommitLogWriterMessage): Promise<R> => ctx.ask<CommitLogWriterMessage, R>(state.settings.writer, message, state.settings.askTimeoutMs);
}

function later<T>(state: State, ctx: Ctx, work: Promise<T>, then: (state: State, result: PipeResult<T>, ctx: Ctx) => void): void {
  assert(state.continuations.size < state.settings.endTransactionsMax + OWN_CONTINUATIONS_MAX, 'continuations stay within their bound');
  const id = state.nextContinuationId++;
  const epoch = state.epoch;
  state.continuations.set(id, then as Continuation);
  ctx.pipeToSelf(work, (result) => ({ type: 'continue', epoch, id, result }));
}

function onContinue(state: State, message: Extract<TransactionServiceMessage, { type: 'continue' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const continuation = state.continuations.get(message.id);
  if (continuation === undefined) return;
  state.continuations.delete(message.id);
  continuation(state, message.result, ctx);
}

/** Whether a failed ask never reached the writer (so what it asked for did not happen). */
function neverDelivered(error: unknown): boolean {
  return (
    error instanceof RuntimeError &&
    (error.code === RuntimeErrorCode.mailboxFull || error.code === RuntimeErrorCode.askLimit || error.code === RuntimeErrorCode.actorNotFound)
  );
}

function encodeInput(state: State, input: PutMessageInput, ctx: Ctx): EncodedPut | PutMessageResult {
  return encodePut(input, state.settings.storeHost, state.settings.maxMessageSize, ctx.clock.nowMs());
}

function putEncoded(state: State, ctx: Ctx, puts: EncodedPut[]): Promise<PutMessageResult[]> {
  return askerOf(state, ctx)<PutMessageResult[]>({ type: 'putEncoded', puts });
}

/** Remembers that a record (read or written) up to `endOffset` justifies what was settled. */
function knowUpTo(state: State, endOffset: number): void {
  state.knownEndOffset = Math.max(state.knownEndOffset, endOffset);
}

// ---------------------------------------------------------------------------------------------------
// Has the transaction ended? (memory, else the index: op message, then commit record)

type Lookup = { readonly kind: 'ended'; readonly end: KnownEnd; readonly opMissing: boolean } | { readonly kind: 'open' };

/** Asks the store whether `half`'s transaction ended (see the header); reads only, changes nothing. */
async function lookupEnd(ask: Ask, half: HalfMessage, settings: Settings): Promise<Lookup> {
  const id = half.transactionId;
  const ops = await ask<StoredMessage[]>({ type: 'queryByKey', topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, key: String(id), maxNum: settings.lookupMax });
  for (const found of ops) {
    const op = readOpMessage(decodeRecord(found.record, 0));
    if (op !== undefined && op.transactionIds.includes(id)) return { kind: 'ended', end: { outcome: op.outcome ?? 'ROLLBACK', endOffset: op.endOffset }, opMissing: false };
  }
  if (half.uniqKey.length === 0) return { kind: 'open' };
  const delayLevel = parseInt32(half.delayText) ?? 0;
  const topics = delayLevel > 0 ? [half.realTopic, SCHEDULE_TOPIC] : [half.realTopic];
  for (const topic of topics) {
    const candidates = await ask<StoredMessage[]>({ type: 'queryByKey', topic, key: half.uniqKey, maxNum: settings.lookupMax });
    for (const candidate of candidates) {
      const view = decodeRecord(candidate.record, 0);
      if (!isCommitRecord(view)) continue;
      const endOffset = candidate.physicalOffset + view.totalSize;
      const named = await ask<Uint8Array | null>({ type: 'readAt', physicalOffset: view.preparedTransactionOffset });
      if (named === null) continue;
      const read = readHalfMessage(decodeRecord(named, 0));
      if (read.ok && read.half.transactionId === id) return { kind: 'ended', end: { outcome: 'COMMIT', endOffset }, opMissing: true };
    }
  }
  return { kind: 'open' };
}

/**
 * Resolves `half`'s transaction, from memory when that is exact, else from the store; a commit found
 * without its op message gets it first. `then` gets undefined when the store could not be asked.
 */
function findEnd(state: State, half: HalfMessage, ctx: Ctx, then: (state: State, lookup: Lookup | undefined, ctx: Ctx) => void): void {
  const known = state.ended.get(half.transactionId);
  if (known !== undefined) return then(state, { kind: 'ended', end: known, opMissing: false }, ctx);
  if (state.ended.isKnownOpen(half.transactionId)) return then(state, { kind: 'open' }, ctx);
  state.counters.lookups++;
  later(state, ctx, lookupEnd(askerOf(state, ctx), half, state.settings), (current, result, context) => {
    if (!result.ok) {
      context.log.warn({ transactionId: half.transactionId, err: describeError(result.error) }, 'transaction lookup failed');
      return then(current, undefined, context);
    }
    const lookup = result.value;
    if (lookup.kind === 'open') return then(current, lookup, context);
    current.ended.record(half.transactionId, lookup.end);
    if (!lookup.opMissing) return then(current, lookup, context);
    current.counters.repairedOps++;
    context.log.warn({ transactionId: half.transactionId }, 'commit found without its op message (a crash between them); writing the op message now');
    writeOp(current, half.transactionId, 'COMMIT', context, (latest, _failure, latestCtx) => then(latest, lookup, latestCtx));
  });
}

/** The transaction ended: nothing held for it any more. */
function settle(state: State, transactionId: number, end: KnownEnd): void {
  state.ended.record(transactionId, end);
  knowUpTo(state, end.endOffset);
  state.tracked.remove(transactionId);
  advanceFrontier(state);
}

/**
 * Puts the op message that ends `transactionId` and settles the transaction once it is stored; `done`
 * gets undefined then, else the failure (a put status or the ask's error). The caller holds the lock.
 */
function writeOp(state: State, transactionId: number, outcome: TransactionOutcome, ctx: Ctx, done: (state: State, failure: PutFailure | undefined, ctx: Ctx) => void): void {
  const encoded = encodeInput(state, opMessage(transactionId, outcome, state.settings.storeHost, ctx.clock.nowMs()), ctx);
  assert(!isPutRefusal(encoded), 'an op message is always valid');
  later(state, ctx, putEncoded(state, ctx, [encoded]), (current, result, context) => {
    if (!result.ok) {
      if (!neverDelivered(result.error)) current.ended.markUnsure(transactionId);
      context.log.warn({ transactionId, outcome, err: describeError(result.error) }, 'op message not written');
      return done(current, { error: result.error }, context);
    }
    const put = result.value[0]!;
    if (!STORED.has(put.status)) {
      context.log.warn({ transactionId, outcome, status: put.status }, 'op message refused by the store');
      return done(current, { status: put.status }, context);
    }
    settle(current, transactionId, { outcome, endOffset: put.physicalOffset + put.wroteBytes });
    done(current, undefined, context);
  });
}

/** Why a put did not happen: the store's status, or the ask's error (then it may have happened). */
type PutFailure = { readonly status: PutMessageStatus } | { readonly error: unknown };

// ---------------------------------------------------------------------------------------------------
// END_TRANSACTION (EndTransactionProcessor)

function respond(req: RemotingRequestMessage, response: RemotingCommand, ctx: Ctx): void {
  if (isOneway(req.request)) return;
  if (!ctx.tell(req.channel.acceptor, { type: 'respond', connectionId: req.channel.connectionId, response })) {
    ctx.log.warn({ code: req.request.code, acceptor: req.channel.acceptor.name }, 'acceptor did not take the answer');
  }
}

function onRemotingRequest(state: State, req: RemotingRequestMessage, ctx: Ctx): void {
  if (req.request.code !== RequestCode.END_TRANSACTION) return respond(req, createNotSupportedResponse(req.request), ctx);
  if (state.settings.brokerId !== 0) {
    ctx.log.warn('Message store is slave mode, so end transaction is forbidden.');
    return respond(req, createResponse(req.request, ResponseCode.SLAVE_NOT_AVAILABLE), ctx);
  }
  let header: EndHeader;
  try {
    header = EndTransactionRequestHeader.parse(req.request.extFields);
  } catch (error) {
    if (!(error instanceof HeaderError)) throw error;
    state.counters.refused++;
    return respond(req, headerErrorResponse(req.request, error), ctx);
  }
  if (header.commitOrRollback === TransactionState.UNKNOWN) {
    // RocketMQ answers nothing to an unknown state; the transaction waits for its check.
    ctx.log.info({ remote: req.channel.remoteAddress, msgId: header.msgId, fromTransactionCheck: header.fromTransactionCheck }, 'transaction state still unknown');
    return;
  }
  if (state.endsInFlight >= state.settings.endTransactionsMax) {
    state.counters.refused++;
    const remark = `[OVERLOAD]system busy, ${state.settings.endTransactionsMax} end transaction requests already wait`;
    return respond(req, createResponse(req.request, ResponseCode.SYSTEM_BUSY, remark), ctx);
  }
  state.endsInFlight++;
  const job: EndJob = { req, header, commit: header.commitOrRollback === TransactionState.COMMIT, record: undefined, half: undefined, answered: false };
  later(state, ctx, askerOf(state, ctx)<Uint8Array | null>({ type: 'readAt', physicalOffset: header.commitLogOffset }), (current, result, context) =>
    onHalfRecord(current, job, result, context),
  );
}

function onHalfRecord(state: State, job: EndJob, result: PipeResult<Uint8Array | null>, ctx: Ctx): void {
  if (!result.ok) return finishEnd(state, job, askFailure(job.req.request, 'commit log writer', result.error), ctx);
  if (result.value === null) return finishEnd(state, job, createResponse(job.req.request, ResponseCode.SYSTEM_ERROR, 'Find prepared transaction message failed'), ctx);
  const view = decodeRecord(result.value, 0);
  const refusal = checkEndRequest(view, job.header, ctx.clock.nowMs(), state.settings.transactionTimeOutMs, state.settings.storeHost);
  if (refusal !== undefined) {
    const code = refusal.reason === 'lateEnd' ? ResponseCode.ILLEGAL_OPERATION : ResponseCode.SYSTEM_ERROR;
    return finishEnd(state, job, createResponse(job.req.request, code, refusal.remark), ctx);
  }
  const read = readHalfMessage(view);
  assert(read.ok, 'checkEndRequest accepted a half record');
  job.record = result.value;
  job.half = read.half;
  runEnd(state, job, ctx);
}

/** Takes the transaction's lock (or waits for it), then looks its state up and writes the outcome. */
function runEnd(state: State, job: EndJob, ctx: Ctx): void {
  const id = job.half!.transactionId;
  if (state.locks.has(id)) {
    const queue = state.waiting.get(id) ?? [];
    queue.push(job);
    state.waiting.set(id, queue);
    return;
  }
  state.locks.add(id);
  findEnd(state, job.half!, ctx, (current, lookup, context) => {
    if (lookup === undefined) {
      return releaseEnd(current, job, createResponse(job.req.request, ResponseCode.SYSTEM_ERROR, 'transaction state lookup failed; retry later'), context);
    }
    if (lookup.kind === 'ended') {
      settle(current, id, lookup.end);
      return releaseEnd(current, job, endedAnswer(job, lookup.end.outcome), context);
    }
    if (job.commit) return writeCommit(current, job, context);
    writeOp(current, id, 'ROLLBACK', context, (latest, failure, latestCtx) => {
      if (failure === undefined) latest.counters.rollbacks++;
      releaseEnd(latest, job, failure === undefined ? createResponse(job.req.request, ResponseCode.SUCCESS) : failureResponse(job, failure, latest.settings.maxMessageSize), latestCtx);
    });
  });
}

/** The answer to a request for a transaction that has ended already: the first outcome stands. */
function endedAnswer(job: EndJob, outcome: TransactionOutcome): RemotingCommand {
  const asked: TransactionOutcome = job.commit ? 'COMMIT' : 'ROLLBACK';
  if (outcome === asked) return createResponse(job.req.request, ResponseCode.SUCCESS);
  const what = outcome === 'COMMIT' ? 'committed' : outcome === 'ROLLBACK' ? 'rolled back' : 'discarded after too many checks';
  return createResponse(job.req.request, ResponseCode.ILLEGAL_OPERATION, `the transaction was already ${what}`);
}

/** Puts the committed message, answers, then puts the op message (see the header for the order). */
function writeCommit(state: State, job: EndJob, ctx: Ctx): void {
  const id = job.half!.transactionId;
  const built = committedMessage(decodeRecord(job.record!, 0));
  assert(!('problem' in built), 'a checked half record builds its commit');
  const destination = applyDelayLevel(built.properties, built.topic, built.queueId, built.sysFlag, state.settings.delayLevelsCount);
  if (!destination.ok) return releaseEnd(state, job, createResponse(job.req.request, ResponseCode.SYSTEM_ERROR, destination.remark), ctx);
  const { properties, ...rest } = built;
  const input: PutMessageInput = { ...rest, topic: destination.topic, queueId: destination.queueId, properties: encodeTransactionProperties(properties) };
  const encoded = encodeInput(state, input, ctx);
  if (isPutRefusal(encoded)) return releaseEnd(state, job, failureResponse(job, { status: encoded.status }, state.settings.maxMessageSize), ctx);
  later(state, ctx, putEncoded(state, ctx, [encoded]), (current, result, context) => {
    if (!result.ok) {
      if (!neverDelivered(result.error)) current.ended.markUnsure(id);
      return releaseEnd(current, job, failureResponse(job, { error: result.error }, current.settings.maxMessageSize), context);
    }
    const put = result.value[0]!;
    if (!STORED.has(put.status)) return releaseEnd(current, job, failureResponse(job, { status: put.status }, current.settings.maxMessageSize), context);
    current.counters.commits++;
    // Committed: from here a request for this transaction finds the commit, with or without its op message.
    settle(current, id, { outcome: 'COMMIT', endOffset: put.physicalOffset + put.wroteBytes });
    answerEnd(current, job, createResponse(job.req.request, ResponseCode.SUCCESS), context);
    writeOp(current, id, 'COMMIT', context, (latest, _failure, latestCtx) => releaseEnd(latest, job, undefined, latestCtx));
  });
}

/** Answers the request (once). */
function answerEnd(state: State, job: EndJob, response: RemotingCommand, ctx: Ctx): void {
  assert(!job.answered, 'an END_TRANSACTION is answered once');
  job.answered = true;
  if (response.code !== ResponseCode.SUCCESS) state.counters.refused++;
  respond(job.req, response, ctx);
}

/** The job is over: answers it (unless it was), releases the transaction's lock and the job's slot. */
function releaseEnd(state: State, job: EndJob, response: RemotingCommand | undefined, ctx: Ctx): void {
  if (response !== undefined) answerEnd(state, job, response, ctx);
  assert(job.answered, 'a job is answered before it ends');
  unlock(state, job.half!.transactionId, ctx);
  state.endsInFlight--;
  assert(state.endsInFlight >= 0, 'every END_TRANSACTION ends once');
}

/** A job that ends before it holds a lock. */
function finishEnd(state: State, job: EndJob, response: RemotingCommand, ctx: Ctx): void {
  answerEnd(state, job, response, ctx);
  state.endsInFlight--;
  assert(state.endsInFlight >= 0, 'every END_TRANSACTION ends once');
}

/** Releases a transaction's lock; the next request waiting for it runs. */
function unlock(state: State, transactionId: number, ctx: Ctx): void {
  assert(state.locks.delete(transactionId), () => `transaction ${transactionId} was locked`);
  const queue = state.waiting.get(transactionId);
  if (queue === undefined) return;
  const next = queue.shift()!;
  if (queue.length === 0) state.waiting.delete(transactionId);
  runEnd(state, next, ctx);
}

function failureResponse(job: EndJob, failure: PutFailure, maxMessageSize: number): RemotingCommand {
  return 'status' in failure ? finalMessageResponse(job, failure.status, maxMessageSize) : askFailure(job.req.request, 'commit log writer', failure.error);
}

function askFailure(request: RemotingCommand, what: string, error: unknown): RemotingCommand {
  if (error instanceof RuntimeError && (error.code === RuntimeErrorCode.mailboxFull || error.code === RuntimeErrorCode.askLimit)) {
    return createResponse(request, ResponseCode.SYSTEM_BUSY, `[OVERLOAD]system busy, start flow control for a while (${what}: ${error.message})`);
  }
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return createResponse(request, ResponseCode.SYSTEM_ERROR, `${what} failed: ${text}`);
}

/** EndTransactionProcessor.sendFinalMessage's code and remark for a put that was not stored. */
function finalMessageResponse(job: EndJob, status: PutMessageStatus, maxMessageSize: number): RemotingCommand {
  const request = job.req.request;
  switch (status) {
    case 'PUT_OK':
    case 'FLUSH_DISK_TIMEOUT':
    case 'FLUSH_SLAVE_TIMEOUT':
    case 'SLAVE_NOT_AVAILABLE':
      return createResponse(request, ResponseCode.SUCCESS);
    case 'CREATE_MAPPED_FILE_FAILED':
      return createResponse(request, ResponseCode.SYSTEM_ERROR, 'Create mapped file failed.');
    case 'MESSAGE_ILLEGAL':
    case 'PROPERTIES_SIZE_EXCEEDED':
      return createResponse(
        request,
        ResponseCode.MESSAGE_ILLEGAL,
        `The message is illegal, maybe msg body or properties length not matched. msg body length limit ${maxMessageSize}B, msg properties length limit 32KB.`,
      );
    case 'SERVICE_NOT_AVAILABLE':
      return createResponse(request, ResponseCode.SERVICE_NOT_AVAILABLE, 'Service not available now.');
    case 'OS_PAGE_CACHE_BUSY':
      return createResponse(request, ResponseCode.SYSTEM_ERROR, 'OS page cache busy, please try another machine');
    case 'UNKNOWN_ERROR':
      return createResponse(request, ResponseCode.SYSTEM_ERROR, 'UNKNOWN_ERROR');
    case 'LMQ_CONSUME_QUEUE_NUM_EXCEEDED':
      return createResponse(request, ResponseCode.SYSTEM_ERROR, 'UNKNOWN_ERROR DEFAULT');
    default:
      return assertNever(status, 'put status');
  }
}

// ---------------------------------------------------------------------------------------------------
// Check rounds (TransactionalMessageServiceImpl.check)

function onCheckRound(state: State, ctx: Ctx): void {
  if (!state.ready || state.round !== undefined) {
    state.counters.roundsSkipped++;
    return;
  }
  state.round = { startMs: ctx.clock.nowMs(), reads: 0, due: [], next: 0, channels: new Map() };
  scan(state, ctx);
}

/** Reads the half queue onward, as far as this round's bounds allow, then acts. */
function scan(state: State, ctx: Ctx): void {
  const round = state.round!;
  if (state.tracked.full || round.reads >= state.settings.scanBatchesPerRoundMax) return act(state, ctx);
  round.reads++;
  const request: CommitLogWriterMessage = {
    type: 'get',
    topic: RMQ_SYS_TRANS_HALF_TOPIC,
    queueId: TRANSACTION_QUEUE_ID,
    queueOffset: state.scanOffset,
    maxMsgNums: state.settings.scanBatchMax,
  };
  later(state, ctx, askerOf(state, ctx)<GetMessageResult>(request), (current, result, context) => onScanRead(current, result, context));
}

function onScanRead(state: State, result: PipeResult<GetMessageResult>, ctx: Ctx): void {
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'half queue read failed; the next round reads again');
    return act(state, ctx);
  }
  const got = result.value;
  if (got.messages.length === 0) {
    correctScanOffset(state, got, ctx);
    return act(state, ctx);
  }
  for (const message of got.messages) {
    if (!takeHalf(state, decodeRecord(message.record, 0), ctx)) {
      advanceFrontier(state);
      return act(state, ctx);
    }
    state.scanOffset = message.queueOffset + 1;
  }
  state.scanOffset = Math.max(state.scanOffset, got.nextBeginOffset);
  advanceFrontier(state);
  if (got.nextBeginOffset < got.maxOffset) return scan(state, ctx);
  act(state, ctx);
}

/** Holds one record read from the half queue, unless its transaction ended; false when memory is full. */
function takeHalf(state: State, view: RecordView, ctx: Ctx): boolean {
  const read = readHalfMessage(view);
  knowUpTo(state, view.physicalOffset + view.totalSize);
  if (!read.ok) {
    ctx.log.error({ queueOffset: view.queueOffset, problem: read.problem }, 'half message cannot be acted on; skipped');
    return true;
  }
  const known = state.ended.get(read.half.transactionId);
  if (known !== undefined) {
    knowUpTo(state, known.endOffset);
    return true;
  }
  return state.tracked.track(read.half) !== 'full';
}

/** A read that found nothing: follow the store's correction of an offset outside the queue. */
function correctScanOffset(state: State, got: GetMessageResult, ctx: Ctx): void {
  const corrects =
    got.status === 'OFFSET_TOO_SMALL' ||
    got.status === 'OFFSET_OVERFLOW_BADLY' ||
    ((got.status === 'NO_MATCHED_MESSAGE' || got.status === 'MESSAGE_WAS_REMOVING') && got.nextBeginOffset > state.scanOffset);
  if (!corrects || got.nextBeginOffset === state.scanOffset) return;
  ctx.log.warn({ offset: state.scanOffset, next: got.nextBeginOffset, status: got.status }, 'half queue offset corrected');
  if (got.nextBeginOffset < state.scanOffset) {
    // The queue is shorter than what was read (the store lost its tail): read it again from there.
    state.tracked.clear();
    state.frontier.reset(Math.min(state.frontier.current, got.nextBeginOffset));
  }
  state.scanOffset = got.nextBeginOffset;
  advanceFrontier(state);
}

/** Picks the due transactions (queue order, bounded) and works through them one at a time. */
function act(state: State, ctx: Ctx): void {
  const round = state.round!;
  const settings = { transactionTimeOutMs: state.settings.transactionTimeOutMs, transactionCheckMax: state.settings.transactionCheckMax };
  for (const half of state.tracked.values()) {
    if (round.due.length >= state.settings.checksPerRoundMax) break;
    if (checkDecision(half, round.startMs, settings) !== 'wait') round.due.push(half);
  }
  actNext(state, ctx);
}

function actNext(state: State, ctx: Ctx): void {
  const round = state.round!;
  for (;;) {
    const half = round.due[round.next++];
    if (half === undefined) return endRound(state, ctx);
    // Settled or replaced by a newer copy since the round began, or being ended right now: not this round.
    if (state.tracked.get(half.transactionId) !== half || state.locks.has(half.transactionId)) continue;
    state.locks.add(half.transactionId);
    return findEnd(state, half, ctx, (current, lookup, context) => {
      if (lookup === undefined) return doneWith(current, half, context);
      if (lookup.kind === 'ended') {
        settle(current, half.transactionId, lookup.end);
        return doneWith(current, half, context);
      }
      readAndAct(current, half, context);
    });
  }
}

/** Ends one transaction's turn in the round. */
function doneWith(state: State, half: HalfMessage, ctx: Ctx): void {
  unlock(state, half.transactionId, ctx);
  if (state.round !== undefined) actNext(state, ctx);
}

function readAndAct(state: State, half: HalfMessage, ctx: Ctx): void {
  later(state, ctx, askerOf(state, ctx)<Uint8Array | null>({ type: 'readAt', physicalOffset: half.physicalOffset }), (current, result, context) => {
    if (!result.ok) return doneWith(current, half, context);
    if (result.value === null) {
      // Retention removed it: nothing is left to commit or to ask about.
      context.log.warn({ transactionId: half.transactionId, physicalOffset: half.physicalOffset }, 'half message no longer in the store; forgotten');
      current.tracked.remove(half.transactionId);
      advanceFrontier(current);
      return doneWith(current, half, context);
    }
    const view = decodeRecord(result.value, 0);
    const decision = checkDecision(half, current.round!.startMs, current.settings);
    if (decision === 'discard') return discard(current, half, view, context);
    renewAndCheck(current, half, view, context);
  });
}

/** DefaultTransactionalMessageCheckListener.resolveDiscardMsg, with the op message that ends it. */
function discard(state: State, half: HalfMessage, view: RecordView, ctx: Ctx): void {
  const copy = encodeInput(state, discardedMessage(view), ctx);
  const op = encodeInput(state, opMessage(half.transactionId, 'DISCARD', state.settings.storeHost, ctx.clock.nowMs()), ctx);
  assert(!isPutRefusal(op), 'an op message is always valid');
  if (isPutRefusal(copy)) {
    ctx.log.error({ transactionId: half.transactionId, status: copy.status }, 'discarded half cannot be copied; ended without a copy');
  }
  const puts = isPutRefusal(copy) ? [op] : [copy, op];
  later(state, ctx, putEncoded(state, ctx, puts), (current, result, context) => {
    if (!result.ok) {
      if (!neverDelivered(result.error)) current.ended.markUnsure(half.transactionId);
      return doneWith(current, half, context);
    }
    const opPut = result.value.at(-1)!;
    if (STORED.has(opPut.status)) {
      current.counters.discards++;
      context.log.warn({ transactionId: half.transactionId, realTopic: half.realTopic, checks: half.checkTimes }, 'half message checked too many times; discarded to TRANS_CHECK_MAX_TIME_TOPIC');
      settle(current, half.transactionId, { outcome: 'DISCARD', endOffset: opPut.physicalOffset + opPut.wroteBytes });
    }
    doneWith(current, half, context);
  });
}

/** putBackHalfMsgQueue, then sendCheckMessage naming the copy. */
function renewAndCheck(state: State, half: HalfMessage, view: RecordView, ctx: Ctx): void {
  const renewal = renewedHalfMessage(view, half.checkTimes + 1);
  const encoded = encodeInput(state, renewal, ctx);
  if (isPutRefusal(encoded)) {
    ctx.log.error({ transactionId: half.transactionId, status: encoded.status }, 'half message cannot be renewed; left as it is');
    return doneWith(state, half, ctx);
  }
  later(state, ctx, putEncoded(state, ctx, [encoded]), (current, result, context) => {
    const put = result.ok ? result.value[0]! : undefined;
    if (put === undefined || !STORED.has(put.status)) return doneWith(current, half, context);
    // The copy carries the transaction from here (the next round reads it); this record is settled.
    knowUpTo(current, put.physicalOffset + put.wroteBytes);
    current.tracked.remove(half.transactionId);
    advanceFrontier(current);
    current.counters.checks++;
    const body = checkMessageBody(renewal, put, current.settings.storeHost, half.realTopic, half.realQueueId);
    const extFields = CheckTransactionStateRequestHeader.format({
      topic: RMQ_SYS_TRANS_HALF_TOPIC,
      tranStateTableOffset: put.queueOffset,
      commitLogOffset: put.physicalOffset,
      ...(half.uniqKey.length === 0 ? {} : { msgId: half.uniqKey, transactionId: half.uniqKey }),
      offsetMsgId: put.msgId,
      brokerName: current.settings.brokerName,
    });
    withProducerChannels(current, half.producerGroup, context, (latest, channels, latestCtx) => {
      pushCheck(latest, half, channels, extFields, body, latestCtx);
      doneWith(latest, half, latestCtx);
    });
  });
}

/** The producer group's live connections, asked once per round. */
function withProducerChannels(state: State, group: string, ctx: Ctx, then: (state: State, channels: readonly RemotingChannel[], ctx: Ctx) => void): void {
  const cached = state.round?.channels.get(group);
  if (cached !== undefined) return then(state, cached, ctx);
  const ask = ctx.ask<BrokerAdminExtraAsk, readonly RemotingChannel[]>(state.settings.admin, { type: 'producerChannels', group }, state.settings.askTimeoutMs);
  later(state, ctx, ask, (current, result, context) => {
    const channels = result.ok && Array.isArray(result.value) ? result.value : [];
    if (!result.ok) context.log.warn({ group, err: describeError(result.error) }, 'producer channels unavailable');
    current.round?.channels.set(group, channels);
    then(current, channels, context);
  });
}

/** AbstractTransactionalMessageCheckListener.sendCheckMessage: a oneway push to one live producer. */
function pushCheck(state: State, half: HalfMessage, channels: readonly RemotingChannel[], extFields: Record<string, string>, body: Uint8Array, ctx: Ctx): void {
  if (channels.length === 0) {
    state.counters.checksWithoutProducer++;
    ctx.log.warn({ groupId: half.producerGroup, transactionId: half.transactionId }, 'Check transaction failed, channel is null.');
    return;
  }
  const channel = channels[Math.floor(ctx.random() * channels.length)]!;
  const opaque = state.nextPushOpaque;
  state.nextPushOpaque = (opaque + 1) | 0;
  const request = createRequest({ code: RequestCode.CHECK_TRANSACTION_STATE, opaque, oneway: true, extFields, body, version: MQVersionOrdinal.V5_3_3 });
  if (!ctx.tell(channel.acceptor, { type: 'push', connectionId: channel.connectionId, request })) {
    ctx.log.warn({ acceptor: channel.acceptor.name }, 'acceptor did not take a check');
  }
}

function endRound(state: State, ctx: Ctx): void {
  state.round = undefined;
  state.counters.rounds++;
  advanceFrontier(state);
  ctx.log.debug({ tracked: state.tracked.size, scanOffset: state.scanOffset, settled: state.frontier.current }, 'transaction check round done');
}

/** The half queue offset below which nothing needs attention: the scan's, or the oldest record held. */
function advanceFrontier(state: State): void {
  const lowest = state.tracked.lowestQueueOffset();
  const settled = lowest === undefined ? state.scanOffset : Math.min(lowest, state.scanOffset);
  state.frontier.advance(settled, state.knownEndOffset);
}

// ---------------------------------------------------------------------------------------------------
// Start and persistence

type StartInfo = { readonly halfMinOffset: number; readonly halfMaxOffset: number; readonly ends: ReadonlyArray<readonly [number, KnownEnd]> };
type QueueRange = { readonly minOffset: number; readonly maxOffset: number };

/** Reads the half queue's range and the most recent op messages (at most `endsMax` outcomes). */
async function readStart(ask: Ask, endsMax: number, batchMax: number): Promise<StartInfo> {
  const half = await ask<QueueRange>({ type: 'queueRange', topic: RMQ_SYS_TRANS_HALF_TOPIC, queueId: TRANSACTION_QUEUE_ID });
  const op = await ask<QueueRange>({ type: 'queueRange', topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, queueId: TRANSACTION_QUEUE_ID });
  const ends: Array<readonly [number, KnownEnd]> = [];
  let offset = Math.max(op.minOffset, op.maxOffset - endsMax);
  // Each read moves the offset forward or ends the loop; at most endsMax entries lie ahead.
  for (let reads = 0; offset < op.maxOffset && ends.length < endsMax && reads <= endsMax; reads++) {
    const got = await ask<GetMessageResult>({ type: 'get', topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, queueId: TRANSACTION_QUEUE_ID, queueOffset: offset, maxMsgNums: batchMax });
    for (const message of got.messages) {
      const read = readOpMessage(decodeRecord(message.record, 0));
      for (const id of read?.transactionIds ?? []) ends.push([id, { outcome: read!.outcome ?? 'ROLLBACK', endOffset: read!.endOffset }]);
    }
    if (got.nextBeginOffset <= offset) break;
    offset = got.nextBeginOffset;
  }
  return { halfMinOffset: half.minOffset, halfMaxOffset: half.maxOffset, ends: ends.slice(0, endsMax) };
}

function start(state: State, ctx: Ctx): void {
  later(state, ctx, readStart(askerOf(state, ctx), state.settings.endedCacheMax, state.settings.scanBatchMax), (current, result, context) => {
    if (!result.ok) {
      context.log.warn({ err: describeError(result.error) }, 'transaction service cannot read the store yet; retrying');
      context.timers.startSingle(TIMER_START, { type: 'start' }, START_RETRY_MS);
      return;
    }
    const info = result.value;
    current.ended.startFrom(info.halfMaxOffset);
    for (const [id, end] of info.ends) current.ended.record(id, end);
    if (current.scanOffset < info.halfMinOffset || current.scanOffset > info.halfMaxOffset) {
      const corrected = current.scanOffset < info.halfMinOffset ? info.halfMinOffset : info.halfMaxOffset;
      context.log.warn({ offset: current.scanOffset, corrected, min: info.halfMinOffset, max: info.halfMaxOffset }, 'transaction offset outside the half queue; corrected');
      current.scanOffset = corrected;
      current.frontier.reset(corrected);
    }
    current.ready = true;
    context.log.info({ halfOffset: current.scanOffset, halfMaxOffset: info.halfMaxOffset, outcomesPreloaded: info.ends.length }, 'transaction service ready');
  });
}

function askDurable(state: State, ctx: Ctx): void {
  if (state.persisting) return;
  state.persisting = true;
  const ask = askerOf(state, ctx)<CommitLogWriterStats>({ type: 'stats' });
  later(state, ctx, ask, (current, result, context) => {
    current.persisting = false;
    if (!result.ok) {
      context.log.warn({ err: describeError(result.error) }, 'writer stats unavailable; transaction offset not persisted this time');
      return;
    }
    current.frontier.confirm(result.value.durableOffset);
    try {
      persist(current, context);
    } catch (error) {
      // The offset only saves rereading: a failed write is retried at the next flush.
      context.log.error({ err: describeError(error) }, 'transaction offset not written; retried at the next flush');
    }
  });
}

/** Writes the confirmed offset when it changed (atomically, with a .bak). */
function persist(state: State, ctx: Ctx): void {
  const halfOffset = state.frontier.confirmed;
  if (halfOffset === state.writtenOffset) return;
  state.dataVersion = nextDataVersion(state.dataVersion, ctx.clock.nowMs());
  state.file.persist({ halfOffset, dataVersion: state.dataVersion });
  state.writtenOffset = halfOffset;
}

function statsOf(state: State): TransactionServiceStats {
  const c = state.counters;
  return {
    ready: state.ready,
    idle: state.continuations.size === 0 && state.round === undefined && state.endsInFlight === 0,
    rounds: c.rounds,
    roundsSkipped: c.roundsSkipped,
    commits: c.commits,
    rollbacks: c.rollbacks,
    checks: c.checks,
    checksWithoutProducer: c.checksWithoutProducer,
    discards: c.discards,
    lookups: c.lookups,
    repairedOps: c.repairedOps,
    refused: c.refused,
    tracked: state.tracked.size,
    endedCached: state.ended.size,
    endsInFlight: state.endsInFlight,
    scanOffset: state.scanOffset,
    settledOffset: state.frontier.current,
    confirmedOffset: state.frontier.confirmed,
  };
}

// ---------------------------------------------------------------------------------------------------
// The behavior

function handle(state: State, message: TransactionServiceMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'remotingRequest':
      return onRemotingRequest(state, message, ctx);
    case 'start':
      return start(state, ctx);
    case 'checkRound':
      return onCheckRound(state, ctx);
    case 'persist':
      return askDurable(state, ctx);
    case 'continue':
      return onContinue(state, message, ctx);
    case 'stats':
      return ctx.reply(statsOf(state));
    default:
      return assertNever(message, 'transaction service message');
  }
}

function initialState(args: TransactionServiceArgs, fs: StorageFs, ctx: Ctx): State {
  const settings = settingsOf(args);
  const file = new JsonConfigFile({ fs, path: transactionOffsetFile(settings.storePathRootDir), schema: transactionOffsetSchema });
  const loaded = file.load();
  const halfOffset = loaded.value?.halfOffset ?? 0;
  ctx.log.info({ path: file.path, source: loaded.source, halfOffset }, 'transaction offset loaded');
  if (!settings.messageIndexEnable) {
    ctx.log.warn('messageIndexEnable is false: transactions that ended before this start are known only from the recent op messages');
  }
  return {
    settings,
    epoch: Math.floor(ctx.random() * 0x7fff_ffff),
    file,
    dataVersion: loaded.value?.dataVersion ?? newDataVersion(ctx.clock.nowMs()),
    writtenOffset: halfOffset,
    ready: false,
    persisting: false,
    scanOffset: halfOffset,
    frontier: new DurableFrontier(halfOffset, UNCONFIRMED_MAX),
    tracked: new TrackedHalves(settings.halvesTrackedMax),
    ended: new EndedTransactions(settings.endedCacheMax),
    knownEndOffset: 0,
    locks: new Set(),
    waiting: new Map(),
    endsInFlight: 0,
    round: undefined,
    continuations: new Map(),
    nextContinuationId: 1,
    nextPushOpaque: 1,
    counters: { rounds: 0, roundsSkipped: 0, commits: 0, rollbacks: 0, checks: 0, checksWithoutProducer: 0, discards: 0, lookups: 0, repairedOps: 0, refused: 0 },
  };
}

/** Builds the behavior over the file system `storageFsOf` returns (tests inject faults here). */
export function transactionServiceBehavior(storageFsOf: (args: TransactionServiceArgs) => StorageFs): Behavior<State, TransactionServiceMessage, TransactionServiceStartArgs> {
  return {
    init(startArgs, ctx) {
      const args = 'refs' in startArgs ? transactionServiceArgsOf(startArgs) : startArgs;
      const state = initialState(args, storageFsOf(args), ctx);
      ctx.timers.startPeriodic(TIMER_ROUND, { type: 'checkRound' }, state.settings.transactionCheckIntervalMs);
      ctx.timers.startPeriodic(TIMER_PERSIST, { type: 'persist' }, state.settings.flushOffsetIntervalMs);
      start(state, ctx);
      return state;
    },

    receive(state, message, ctx) {
      handle(state, message, ctx);
      return state;
    },

    onStop(state, ctx) {
      // Only what is known durable: a later start rereads the rest, and finds what ended.
      try {
        persist(state, ctx);
      } catch (error) {
        ctx.log.error({ err: describeError(error) }, 'transaction offset not persisted at stop; the next start rereads from the last one');
      }
    },
  };
}

/** The transaction service over the real file system. */
export const transactionService = transactionServiceBehavior(() => nodeStorageFs);

/** Spawns the transaction service (one per broker); route END_TRANSACTION (37) to it. */
export function spawnTransactionService(
  system: ActorSpawner,
  args: TransactionServiceStartArgs,
  options: SpawnPlacement = {},
): Promise<ActorRef<TransactionServiceMessage>> {
  return system.spawn<TransactionServiceMessage, TransactionServiceStartArgs>({
    name: options.name ?? 'transaction-service',
    behavior: options.behavior ?? { module: new URL('./transaction-service.ts', import.meta.url).href, export: 'transactionService' },
    args,
    pool: options.pool ?? 'store',
  });
}
