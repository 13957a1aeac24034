/**
 * The pop processor: the broker side of POP consumption, RocketMQ's PopMessageProcessor (with its
 * PopLongPollingService), AckMessageProcessor and ChangeInvisibleTimeProcessor as one actor over the
 * PopEngine (storage/pop-engine.ts), whose state is per broker: exactly one runs, on the `pull` pool,
 * and acceptors (and the LOCAL Proxy) route POP_MESSAGE (200050), ACK_MESSAGE (200051) and
 * CHANGE_MESSAGE_INVISIBLETIME (200053) to it.
 *
 * POP_MESSAGE, in steps, each step one message:
 *
 *   remotingRequest -> header checks -> broker-admin `pullMetadata` (cached) -> broker, topic, queue and
 *   group checks and the filter -> round: writer `queueRanges` (one ask for the queues; + broker-admin
 *   `queryOffset` for a queue the engine has never seen) -> engine.pop -> writer `get` per run of leased
 *   offsets -> filter -> answer, another round, or hold (long polling)
 *
 * Checks, in PopMessageProcessor's order: maxMsgNums above POP_MSG_NUMS_MAX -> INVALID_PARAMETER; a broker
 * without read permission -> NO_PERMISSION; an unknown topic -> TOPIC_NOT_EXIST (a pop creates no topic);
 * one without read permission -> NO_PERMISSION; a queueId past readQueueNums -> INVALID_PARAMETER; the
 * group refused by broker-admin (findSubscriptionGroupConfig, which auto-creates) with its code, or
 * NO_PERMISSION when consumeEnable is false; then the filter: TAG `a || b` (`*` or empty: all), matched
 * against each record's TAGS property; SQL92 compiled once per expression and evaluated over the record's
 * properties (RocketMQ's pop does not look at enablePropertyFilter); an expression that does not compile,
 * or another type -> SUBSCRIPTION_PARSE_FAILED.
 *
 * A round asks the engine for what is still wanted, reads the leased records (contiguous offsets of a
 * queue in one `get`), and `skip`s the leases whose records do not match the filter (RocketMQ acks what
 * its filter drops) or that the store no longer holds. The engine's dead letters (attempts used up) are
 * copied to `%DLQ%<group>` queue 0 (after broker-admin `groupForRetry` made the group's DLQ topic) with
 * DLQ_ORIGIN_TOPIC and DLQ_ORIGIN_MESSAGE_ID set and reconsumeTimes = the attempts made, then `skip`ped;
 * a copy that fails leaves the lease in flight, so the engine issues it as a dead letter again after its
 * invisible time (at least once). While a round was handed a whole batch and filtering left the answer
 * short, another round follows, up to popRoundsMax.
 *
 * Answers: SUCCESS with PopMessageResponseHeader {popTime, invisibleTime, reviveQid 0, restNum 0,
 * receiptHandles and attempts joined by RECEIPT_HANDLE_SEPARATOR in body order} and the records as
 * stored, concatenated; nothing to deliver -> POLLING_TIMEOUT with remark NO_MESSAGE_IN_QUEUE, as
 * RocketMQ answers a pop that finds nothing and may not (or may no longer) wait; POLLING_FULL when
 * heldMax requests already wait; SYSTEM_BUSY when popsInFlightMax are being served.
 *
 * Long polling (PopLongPollingService). A pop that finds nothing and has pollTime > 0 is held until
 * arrival + pollTime (capped at pollTimeMaxMs). It is woken, to pop again, by an arrival notice of the
 * writer for its topic (and queue), or by the timer of the earliest invisible time due among the leases
 * of its group and topic (so an expired message goes to a waiting consumer at once), or, for an orderly
 * request, by an ack or a change of its group and topic (a FIFO queue unblocks). As RocketMQ wakes one
 * request per group, topic and queue for each notice, one held request of a (group, topic) and queue
 * choice (every queue, or one) is woken per event; a woken request that fills its whole batch wakes the
 * next one (more may be left). At its
 * deadline a held request pops once more and is answered whatever that finds. A notice that reaches a
 * request while its round is in flight marks it `dirty`: if the round finds nothing it pops again.
 *
 * ACK_MESSAGE: engine.ack with the handle from `extraInfo`; NO_MESSAGE with the refusal's reason when
 * the handle is stale, expired, already acked, foreign or garbage. An ack is answered only once the
 * engine's journal is synced (an acked message never comes back after kill -9); acks that arrive in one
 * burst share one sync: the first schedules a `syncAcks` told to itself, which lands behind every
 * message already in the mailbox.
 * CHANGE_MESSAGE_INVISIBLETIME: engine.changeInvisible -> SUCCESS with the new handle in
 * ChangeInvisibleTimeResponseHeader.receiptHandle; refused -> NO_MESSAGE. The old handle is dead.
 *
 * Consumer offsets: every offsetCommitIntervalMs (and at stop) each (group, topic, queue) whose
 * engine.committedOffset moved is told to broker-admin as `commitOffset`, so QUERY_CONSUMER_OFFSET and
 * the admin tools see POP progress; the journal is synced at the same time.
 *
 * Bounds: popsInFlightMax requests served and heldMax held at once; acks waiting for their sync are
 * bounded by the mailbox (each is a message); caches drop their oldest entry when full; the expiry heap
 * drops entries already due, then new ones, when full (a held pop then waits for a notice or its poll
 * time). A failed sync fails the actor: its supervisor restarts it, the unanswered acks' clients retry,
 * and the journal recovers to its last sync (an ack lost there only means one more delivery).
 *
 * Deliberate differences: ack and change do not look the topic up (the handle binds group, topic, queue
 * and offset, and is checked by the engine); the hold deadline counts from arrival, not from the
 * client's bornTime (clocks differ); restNum is 0; held requests live in memory and are answered empty
 * when the actor stops. A popped answer whose connection closed meanwhile is dropped and its messages
 * come back after their invisible time, as in RocketMQ.
 */
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, BehaviorSource, PipeResult } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { RuntimeError, RuntimeErrorCode, describeError } from '../runtime/errors.ts';
import { compileSql92, FilterError, isSql92, isTagType, type CompiledFilter } from '../filter/sql92.ts';
import {
  AckMessageRequestHeader,
  ChangeInvisibleTimeRequestHeader,
  ChangeInvisibleTimeResponseHeader,
  HeaderError,
  headerErrorResponse,
  PopMessageRequestHeader,
  PopMessageResponseHeader,
  RECEIPT_HANDLE_SEPARATOR,
  type ParsedHeader,
} from '../net/remoting/broker-headers.ts';
import { MessageConst } from '../net/remoting/message-batch.ts';
import { PermName } from '../net/remoting/namesrv-protocol.ts';
import {
  createNotSupportedResponse,
  createResponse,
  isOneway,
  RequestCode,
  ResponseCode,
  type RemotingCommand,
} from '../net/remoting/remoting-command.ts';
import { decodeRecord, encodeMessageProperties, offsetMessageId, type RecordView } from '../storage/message-record.ts';
import type { GetMessageResult, PutMessageInput, PutMessageResult } from '../storage/message-store.ts';
import { PopEngine, POP_ENGINE_DEFAULTS, POP_INVISIBLE_TIME, type Lease, type PopEngineOptions, type PopResult } from '../storage/pop-engine.ts';
import { POP_KEY_NAME_BYTES_MAX } from '../storage/pop-journal.ts';
import { decodeReceiptHandle, type ReceiptHandleRefusal } from '../storage/pop-receipt-handle.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { dlqTopicOf, RETRY_GROUP_TOPIC_PREFIX, type BrokerAdminMessage, type BrokerProcessorArgs, type GroupForRetryAnswer, type PullMetadataAnswer } from './broker-context.ts';
import type { ArrivalNotice, CommitLogWriterMessage } from './commit-log-writer.ts';
import { concatRecords, OVERLOAD_REMARK, parseTagExpression } from './pull-processor.ts';
import { channelKey, type ChannelClosedMessage, type RemotingChannel, type RemotingRequestMessage } from './remoting-routes.ts';

// ---------------------------------------------------------------------------------------------------
// Constants and the public surface

/** Defaults of the processor's bounds and intervals. */
export const POP_PROCESSOR_DEFAULTS = {
  /** POP requests being checked or read at once; past it SYSTEM_BUSY. */
  popsInFlightMax: 4_096,
  /** Held (long-polling) POP requests; past it POLLING_FULL (BrokerConfig.maxPopPollingSize is larger). */
  heldMax: 1_024,
  /** Longest hold, whatever pollTime says (the Proxy asks for at most 20 s). */
  pollTimeMaxMs: 60_000,
  /** Rounds one request may take while whole batches are leased and filtering leaves it short. */
  popRoundsMax: 32,
  /** Compiled SQL92 expressions kept. */
  filterCacheMax: 1_024,
  /** (group, topic) pairs whose broker-admin `pullMetadata` answer is kept, and for how long. */
  metadataCacheMax: 4_096,
  metadataCacheTtlMs: 1_000,
  /** Groups whose DLQ topic broker-admin has confirmed. */
  dlqGroupsMax: 4_096,
  /** Dead-letter copies in flight; past it a dead letter waits for its next issue. */
  dlqJobsInFlightMax: 64,
  /** Remembered lease deadlines (one per group, topic and DEADLINE_RESOLUTION_MS) that wake held pops. */
  expiryEntriesMax: 65_536,
  /** How often consumer offsets go to broker-admin and the journal is synced. */
  offsetCommitIntervalMs: 1_000,
  /** How often the processor registers with the writer again (a restarted writer forgot it). */
  rewatchIntervalMs: 5_000,
} as const;

/** Overrides of POP_PROCESSOR_DEFAULTS, and of the engine's own bounds. */
export type PopProcessorTuning = { readonly [K in keyof typeof POP_PROCESSOR_DEFAULTS]?: number } & {
  readonly engine?: Pick<PopEngineOptions, 'popInflightMessageThreshold' | 'inflightMessagesMax' | 'queueStatesMax' | 'maxInvisibleTimeMills'>;
};

/**
 * Start arguments: every processor's, plus optional tuning. `flushDiskType` is the store's: with
 * SYNC_FLUSH (the default here) an ack is answered after an fdatasync of the POP journal; with
 * ASYNC_FLUSH after the journal write reaches the OS (it survives kill -9, not an OS crash, like
 * RocketMQ's ack records in an ASYNC_FLUSH CommitLog), and the periodic offset commit syncs it.
 */
export type PopProcessorArgs = BrokerProcessorArgs & { readonly pop?: PopProcessorTuning; readonly flushDiskType?: 'ASYNC_FLUSH' | 'SYNC_FLUSH' };

/** The request codes the pop processor serves (route all three to the one pop processor). */
export const POP_REQUEST_CODES = [RequestCode.POP_MESSAGE, RequestCode.ACK_MESSAGE, RequestCode.CHANGE_MESSAGE_INVISIBLETIME] as const;

/** PopMessageProcessor's bound on maxMsgNums. */
export const POP_MSG_NUMS_MAX = 32;

/** maxAttempts when the header has none: SubscriptionGroupConfig.retryMaxTimes (16) + 1. */
export const DEFAULT_MAX_ATTEMPTS = 17;

/** ConsumeInitMode. */
export const ConsumeInitMode = { MIN: 0, MAX: 1 } as const;

/** Remark of an empty answer (GetMessageStatus.NO_MESSAGE_IN_QUEUE, as RocketMQ writes it). */
export const NO_MESSAGE_REMARK = 'NO_MESSAGE_IN_QUEUE';

/** FAQUrl.suggestTodo, appended to some refusals as RocketMQ appends it. */
const FAQ_SUGGESTION = '\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.';

/** Counters for tests and the status view. */
export type PopProcessorStats = {
  readonly held: number;
  readonly inFlight: number;
  /** Leases in flight in the engine. */
  readonly leases: number;
  pops: number;
  found: number;
  empty: number;
  refused: number;
  holds: number;
  wakeups: number;
  timeouts: number;
  overloaded: number;
  pollingFull: number;
  rounds: number;
  filtered: number;
  missing: number;
  deadLetters: number;
  deadLettersFailed: number;
  deadLettersDeferred: number;
  acks: number;
  acksRefused: number;
  changes: number;
  changesRefused: number;
  ackSyncs: number;
  /** Ack batches answered after a journal write without an fdatasync (ASYNC_FLUSH). */
  ackWrites: number;
  offsetCommits: number;
  expiryDropped: number;
};

type Counters = Omit<PopProcessorStats, 'held' | 'inFlight' | 'leases'>;

/** A leased message with its record, read from the store. */
type Delivery = { readonly lease: Lease; readonly record: Uint8Array };

/** What a round read: each leased offset's record (`queueId:offset`), absent when the store lost it. */
type RoundRead = { readonly records: ReadonlyMap<string, Uint8Array> };

/** One queue as a round sees it. */
type QueueRangeInfo = { readonly queueId: number; readonly minOffset: number; readonly maxOffset: number; readonly committed: number };

/** A dead-letter copy's outcome: the put results, or broker-admin's refusal of the group. */
type DlqOutcome =
  | { readonly ok: true; readonly results: readonly PutMessageResult[] }
  | { readonly ok: false; readonly code: number; readonly remark: string };

/** Internal steps, told to itself. `epoch` tells this incarnation's results from an earlier one's. */
export type PopProcessorStep =
  | { readonly type: 'metadataLooked'; readonly epoch: number; readonly key: string; readonly result: PipeResult<PullMetadataAnswer> }
  | { readonly type: 'rangesRead'; readonly epoch: number; readonly taskId: number; readonly result: PipeResult<QueueRangeInfo[]> }
  | {
      readonly type: 'recordsRead';
      readonly epoch: number;
      readonly taskId: number;
      readonly popped: PopResult;
      /** The engine handed out every message asked for: more may be left. */
      readonly full: boolean;
      readonly popTimeMs: number;
      readonly result: PipeResult<RoundRead>;
    }
  | { readonly type: 'dlqDone'; readonly epoch: number; readonly letters: readonly Lease[]; readonly result: PipeResult<DlqOutcome> }
  | { readonly type: 'syncAcks' }
  | { readonly type: 'deadline' }
  | { readonly type: 'commitOffsets' }
  | { readonly type: 'rewatch' };

/** Everything the pop processor takes; `stats` is an ask answered with PopProcessorStats. */
export type PopProcessorMessage =
  | RemotingRequestMessage
  | ChannelClosedMessage
  | ArrivalNotice
  | PopProcessorStep
  | { readonly type: 'stats' };

/** Where the behavior lives, for ActorSpec.behavior. */
export const popProcessorSource: BehaviorSource = { module: import.meta.url, export: 'popProcessor' };

// ---------------------------------------------------------------------------------------------------
// State

type PopHeader = ParsedHeader<typeof PopMessageRequestHeader>;

/** What a pop takes: exact tags (absent: all) and/or a SQL92 filter. */
type Filter = { readonly tags?: ReadonlySet<string>; readonly sql?: CompiledFilter };

type Task = {
  readonly id: number;
  readonly request: Pick<RemotingCommand, 'opaque' | 'serializeType' | 'flag'>;
  readonly channel: RemotingChannel;
  readonly header: PopHeader;
  /** group NUL topic: the engine's key, the metadata cache's key and the hold index's key. */
  readonly key: string;
  readonly maxAttempts: number;
  /** When a hold ends: arrival + pollTime (capped). */
  readonly deadlineMs: number;
  phase: 'checks' | 'round' | 'held';
  queueIds: readonly number[];
  filter: Filter;
  readonly collected: Delivery[];
  popTimeMs: number;
  rounds: number;
  /** An arrival notice came while a round was in flight. */
  dirty: boolean;
  wasHeld: boolean;
  /** The deadline round: answered whatever it finds. */
  final: boolean;
  /** The connection closed while the task was in flight: no answer. */
  closed: boolean;
};

type Limits = { readonly [K in keyof typeof POP_PROCESSOR_DEFAULTS]: number };

type QueueRef = { readonly group: string; readonly topic: string; readonly queueId: number };

type PendingAck = { readonly request: Pick<RemotingCommand, 'opaque' | 'serializeType' | 'flag'>; readonly channel: RemotingChannel };

type State = {
  readonly args: PopProcessorArgs;
  readonly limits: Limits;
  readonly invisibleMsMax: number;
  readonly epoch: number;
  readonly engine: PopEngine;
  nextTaskId: number;
  readonly tasks: Map<number, Task>;
  /** topic -> tasks popping it (for arrival notices). */
  readonly byTopic: Map<string, Set<number>>;
  /** group NUL topic -> held tasks, oldest first. */
  readonly heldByKey: Map<string, Set<number>>;
  held: number;
  inFlight: number;
  readonly metadataLookups: Map<string, number[]>;
  readonly metadataCache: Map<string, { readonly answer: PullMetadataAnswer; readonly expiresMs: number }>;
  readonly filterCache: Map<string, CompiledFilter | FilterError>;
  /** Groups whose DLQ topic exists. */
  readonly dlqGroups: Map<string, true>;
  dlqJobs: number;
  readonly expiry: ExpiryHeap;
  /** When the deadline timer fires; Infinity when it is not set. */
  timerDueMs: number;
  /** Queues whose committed offset may have moved since the last commit. */
  readonly dirtyQueues: Map<string, QueueRef>;
  /** The offset last told to broker-admin per queue (as many as the engine has queue states). */
  readonly committed: Map<string, number>;
  readonly committedMax: number;
  readonly pendingAcks: PendingAck[];
  ackSyncQueued: boolean;
  readonly counters: Counters;
};

type Ctx = ActorContext<PopProcessorMessage>;

const TIMER_DEADLINE = 'deadline';
const TIMER_REWATCH = 'rewatch';
const TIMER_COMMIT = 'commitOffsets';
const TIMER_SYNC_ACKS = 'syncAcks';
/** Granularity of hold deadlines and expiry wake-ups. */
const DEADLINE_RESOLUTION_MS = 100;

function keyOf(group: string, topic: string): string {
  return `${group}\u0000${topic}`;
}

function queueKeyOf(group: string, topic: string, queueId: number): string {
  return `${group}\u0000${topic}\u0000${queueId}`;
}

function recordKeyOf(queueId: number, queueOffset: number): string {
  return `${queueId}:${queueOffset}`;
}

function roundUp(ms: number): number {
  return Math.ceil(ms / DEADLINE_RESOLUTION_MS) * DEADLINE_RESOLUTION_MS;
}

/** Adds to an insertion-ordered cache, dropping the oldest entry when it is full. */
function cachePut<K, V>(cache: Map<K, V>, key: K, value: V, max: number): void {
  cache.delete(key);
  if (cache.size >= max) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, value);
  assert(cache.size <= max, 'cache stays within its bound');
}

// ---------------------------------------------------------------------------------------------------
// Lease deadlines that wake held pops

type ExpiryEntry = { readonly dueMs: number; readonly key: string };

/**
 * A bounded min-heap of (due time, group NUL topic): when some lease of that key becomes visible again.
 * One entry per key and DEADLINE_RESOLUTION_MS bucket; an entry whose lease was acked meanwhile only
 * costs one spurious wake-up.
 */
class ExpiryHeap {
  private readonly entries: ExpiryEntry[] = [];
  private readonly present = new Set<string>();
  private readonly max: number;

  constructor(max: number) {
    assert(Number.isSafeInteger(max) && max > 0, 'expiry heap bound');
    this.max = max;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The earliest due time, or Infinity. */
  get nextDueMs(): number {
    return this.entries[0]?.dueMs ?? Number.POSITIVE_INFINITY;
  }

  /** Adds an entry (rounded up); false when the heap is full even after dropping what is due by `nowMs`. */
  push(deadlineMs: number, key: string, nowMs: number): boolean {
    const dueMs = roundUp(deadlineMs);
    const id = `${dueMs}\u0000${key}`;
    if (this.present.has(id)) return true;
    if (this.entries.length >= this.max) this.takeDue(nowMs);
    if (this.entries.length >= this.max) return false;
    this.present.add(id);
    const entries = this.entries;
    entries.push({ dueMs, key });
    let i = entries.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (entries[parent]!.dueMs <= entries[i]!.dueMs) break;
      [entries[i], entries[parent]] = [entries[parent]!, entries[i]!];
      i = parent;
    }
    return true;
  }

  /** Removes and returns the keys of every entry due by `nowMs` (each key once). */
  takeDue(nowMs: number): Set<string> {
    const keys = new Set<string>();
    while (this.entries.length > 0 && this.entries[0]!.dueMs <= nowMs) {
      const top = this.pop();
      keys.add(top.key);
    }
    return keys;
  }

  private pop(): ExpiryEntry {
    const entries = this.entries;
    const top = entries[0]!;
    const last = entries.pop()!;
    this.present.delete(`${top.dueMs}\u0000${top.key}`);
    if (entries.length > 0) {
      entries[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let least = i;
        if (left < entries.length && entries[left]!.dueMs < entries[least]!.dueMs) least = left;
        if (right < entries.length && entries[right]!.dueMs < entries[least]!.dueMs) least = right;
        if (least === i) break;
        [entries[i], entries[least]] = [entries[least]!, entries[i]!];
        i = least;
      }
    }
    return top;
  }
}

// ---------------------------------------------------------------------------------------------------
// Responses

function reply(state: State, target: { readonly request: PendingAck['request']; readonly channel: RemotingChannel }, response: RemotingCommand, ctx: Ctx): void {
  if (response.code !== ResponseCode.SUCCESS && response.code !== ResponseCode.POLLING_TIMEOUT) state.counters.refused++;
  if (isOneway(target.request)) return;
  if (!ctx.tell(target.channel.acceptor, { type: 'respond', connectionId: target.channel.connectionId, response })) {
    ctx.log.warn({ acceptor: target.channel.acceptor.name, code: response.code }, 'acceptor did not take the answer');
  }
}

function overloaded(request: Pick<RemotingCommand, 'opaque' | 'serializeType'>): RemotingCommand {
  return createResponse(request, ResponseCode.SYSTEM_BUSY, OVERLOAD_REMARK);
}

/** What a failed ask becomes: flow control when the target was full, SYSTEM_ERROR otherwise. */
function askFailure(request: Pick<RemotingCommand, 'opaque' | 'serializeType'>, what: string, error: unknown): RemotingCommand {
  const code = error instanceof RuntimeError ? error.code : undefined;
  if (code === RuntimeErrorCode.mailboxFull || code === RuntimeErrorCode.askLimit) return overloaded(request);
  return createResponse(request, ResponseCode.SYSTEM_ERROR, `${what} failed: ${code ?? describeError(error).split('\n')[0]}`);
}

/** Why a receipt handle was refused, in words, for the NO_MESSAGE remark. */
export function refusalRemark(refusal: ReceiptHandleRefusal): string {
  const why: Record<ReceiptHandleRefusal['reason'], string> = {
    MALFORMED: 'the receipt handle is not one this broker issued (malformed)',
    FOREIGN: 'the receipt handle belongs to another broker, group or topic',
    NOT_IN_FLIGHT: 'the message is not in flight (already acked, or never popped)',
    STALE: 'the receipt handle is stale (superseded by a redelivery or an invisible-time change)',
    EXPIRED: 'the receipt handle expired (the invisible time is over)',
  };
  return `${refusal.code} ${refusal.reason}: ${why[refusal.reason]}`;
}

// ---------------------------------------------------------------------------------------------------
// Requests

function onRequest(state: State, message: RemotingRequestMessage, ctx: Ctx): void {
  const { request, channel } = message;
  const target = { request, channel };
  try {
    switch (request.code) {
      case RequestCode.POP_MESSAGE:
        return onPop(state, request, channel, PopMessageRequestHeader.parse(request.extFields), ctx);
      case RequestCode.ACK_MESSAGE:
        return onAck(state, request, channel, AckMessageRequestHeader.parse(request.extFields), ctx);
      case RequestCode.CHANGE_MESSAGE_INVISIBLETIME:
        return onChange(state, request, channel, ChangeInvisibleTimeRequestHeader.parse(request.extFields), ctx);
      default:
        return reply(state, target, createNotSupportedResponse(request), ctx);
    }
  } catch (error) {
    if (error instanceof HeaderError) return reply(state, target, headerErrorResponse(request, error), ctx);
    throw error;
  }
}

/** The header checks that need no metadata; the refusal, or undefined. */
function headerRefusal(state: State, request: RemotingCommand, header: PopHeader): RemotingCommand | undefined {
  const brokerIp = state.args.identity.storeHost.address;
  if (header.maxMsgNums > POP_MSG_NUMS_MAX) {
    return createResponse(request, ResponseCode.INVALID_PARAMETER, `the broker[${brokerIp}] pop message's num is greater than ${POP_MSG_NUMS_MAX}`);
  }
  if (header.maxMsgNums < 1) return createResponse(request, ResponseCode.INVALID_PARAMETER, `maxMsgNums ${header.maxMsgNums} is not positive`);
  if (header.invisibleTime < 1 || header.invisibleTime > state.invisibleMsMax) {
    return createResponse(request, ResponseCode.INVALID_PARAMETER, `invisibleTime ${header.invisibleTime} is out of [1, ${state.invisibleMsMax}]`);
  }
  if (header.queueId < -1) return createResponse(request, ResponseCode.INVALID_PARAMETER, `queueId[${header.queueId}] is illegal`);
  for (const [what, name] of [['consumerGroup', header.consumerGroup], ['topic', header.topic]] as const) {
    if (name.length === 0 || name.includes('\u0000') || Buffer.byteLength(name, 'utf8') > POP_KEY_NAME_BYTES_MAX) {
      return createResponse(request, ResponseCode.INVALID_PARAMETER, `${what} ${JSON.stringify(name.slice(0, 64))} is not a valid name`);
    }
  }
  if (header.maxAttempts !== undefined && header.maxAttempts < 1) {
    return createResponse(request, ResponseCode.INVALID_PARAMETER, `maxAttempts ${header.maxAttempts} is not positive`);
  }
  return undefined;
}

function onPop(state: State, request: RemotingCommand, channel: RemotingChannel, header: PopHeader, ctx: Ctx): void {
  state.counters.pops++;
  const refusal = headerRefusal(state, request, header);
  if (refusal !== undefined) return reply(state, { request, channel }, refusal, ctx);
  if (state.inFlight >= state.limits.popsInFlightMax) {
    state.counters.overloaded++;
    return reply(state, { request, channel }, overloaded(request), ctx);
  }
  const pollMs = Math.min(Math.max(header.pollTime, 0), state.limits.pollTimeMaxMs);
  const task: Task = {
    id: state.nextTaskId++,
    request: { opaque: request.opaque, serializeType: request.serializeType, flag: request.flag },
    channel,
    header,
    key: keyOf(header.consumerGroup, header.topic),
    maxAttempts: header.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    deadlineMs: ctx.clock.nowMs() + pollMs,
    phase: 'checks',
    queueIds: [],
    filter: {},
    collected: [],
    popTimeMs: 0,
    rounds: 0,
    dirty: false,
    wasHeld: false,
    final: false,
    closed: false,
  };
  state.tasks.set(task.id, task);
  state.inFlight++;
  let onTopic = state.byTopic.get(header.topic);
  if (onTopic === undefined) {
    onTopic = new Set();
    state.byTopic.set(header.topic, onTopic);
  }
  onTopic.add(task.id);
  lookupMetadata(state, task, ctx);
}

/** Answers a task and forgets it. */
function answer(state: State, task: Task, response: RemotingCommand, ctx: Ctx): void {
  if (!task.closed) reply(state, task, response, ctx);
  forget(state, task);
}

function forget(state: State, task: Task): void {
  if (!state.tasks.delete(task.id)) return;
  if (task.phase === 'held') {
    state.held--;
    unhold(state, task);
  } else {
    state.inFlight--;
  }
  const onTopic = state.byTopic.get(task.header.topic);
  onTopic?.delete(task.id);
  if (onTopic?.size === 0) state.byTopic.delete(task.header.topic);
}

function unhold(state: State, task: Task): void {
  const held = state.heldByKey.get(task.key);
  held?.delete(task.id);
  if (held?.size === 0) state.heldByKey.delete(task.key);
}

// ---------------------------------------------------------------------------------------------------
// Checks

/** A cached `pullMetadata` answer, else the ask already running for the key, else a new ask. */
function lookupMetadata(state: State, task: Task, ctx: Ctx): void {
  const cached = state.metadataCache.get(task.key);
  if (cached !== undefined && cached.expiresMs > ctx.clock.nowMs()) return afterMetadata(state, task, cached.answer, ctx);
  const waiting = state.metadataLookups.get(task.key);
  if (waiting !== undefined) {
    waiting.push(task.id);
    return;
  }
  state.metadataLookups.set(task.key, [task.id]);
  const { epoch } = state;
  const key = task.key;
  const message: BrokerAdminMessage = { type: 'pullMetadata', group: task.header.consumerGroup, topic: task.header.topic };
  ctx.pipeToSelf(ctx.ask<BrokerAdminMessage, PullMetadataAnswer>(state.args.refs.admin, message), (result) => ({ type: 'metadataLooked', epoch, key, result }));
}

function onMetadataLooked(state: State, message: Extract<PopProcessorStep, { type: 'metadataLooked' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const waiting = state.metadataLookups.get(message.key) ?? [];
  state.metadataLookups.delete(message.key);
  const result = message.result;
  if (result.ok) {
    cachePut(state.metadataCache, message.key, { answer: result.value, expiresMs: ctx.clock.nowMs() + state.limits.metadataCacheTtlMs }, state.limits.metadataCacheMax);
  } else {
    ctx.log.warn({ key: message.key.replace('\u0000', ' / '), err: describeError(result.error) }, 'broker-admin did not answer pullMetadata');
  }
  for (const id of waiting) {
    const task = state.tasks.get(id);
    if (task === undefined) continue;
    if (task.closed) forget(state, task);
    else if (result.ok) afterMetadata(state, task, result.value, ctx);
    else answer(state, task, askFailure(task.request, 'broker-admin pullMetadata', result.error), ctx);
  }
}

/** PopMessageProcessor's broker, topic, queue and group checks; the refusal, or undefined. */
function metadataRefusal(state: State, task: Task, metadata: PullMetadataAnswer): RemotingCommand | undefined {
  const { header, request } = task;
  const brokerIp = state.args.identity.storeHost.address;
  if ((metadata.brokerPermission & PermName.PERM_READ) === 0) {
    return createResponse(request, ResponseCode.NO_PERMISSION, `the broker[${brokerIp}] pop message is forbidden`);
  }
  const topic = metadata.topic;
  if (topic === undefined) {
    return createResponse(request, ResponseCode.TOPIC_NOT_EXIST, `topic[${header.topic}] not exist, apply first please! ${FAQ_SUGGESTION}`);
  }
  if ((topic.perm & PermName.PERM_READ) === 0) {
    return createResponse(request, ResponseCode.NO_PERMISSION, `the topic[${header.topic}] peeking message is forbidden`);
  }
  if (header.queueId >= topic.readQueueNums) {
    const remark = `queueId[${header.queueId}] is illegal, topic:[${header.topic}] topicConfig.readQueueNums:[${topic.readQueueNums}] consumer:[${task.channel.remoteAddress}]`;
    return createResponse(request, ResponseCode.INVALID_PARAMETER, remark);
  }
  const group = metadata.group;
  if (!group.ok) return createResponse(request, group.code, group.remark);
  if (!group.consumeEnable) return createResponse(request, ResponseCode.NO_PERMISSION, `subscription group no permission, ${header.consumerGroup}`);
  return undefined;
}

function isCommand(value: Filter | RemotingCommand): value is RemotingCommand {
  return 'opaque' in value;
}

/** FilterAPI.build for the header's expression; the filter, or the refusal. */
function filterOf(state: State, task: Task): Filter | RemotingCommand {
  const { expType, exp } = task.header;
  if (exp === undefined || exp === '') return {};
  const parseFailed = (): RemotingCommand => createResponse(task.request, ResponseCode.SUBSCRIPTION_PARSE_FAILED, "parse the consumer's subscription failed");
  if (isTagType(expType)) {
    const tags = parseTagExpression(exp.trim());
    return tags === undefined ? {} : { tags: new Set(tags) };
  }
  if (!isSql92(expType)) return parseFailed();
  let compiled = state.filterCache.get(exp);
  if (compiled === undefined) {
    try {
      compiled = compileSql92(exp);
    } catch (error) {
      if (!(error instanceof FilterError)) throw error;
      compiled = error;
    }
    cachePut(state.filterCache, exp, compiled, state.limits.filterCacheMax);
  }
  if (compiled instanceof FilterError) {
    return createResponse(task.request, ResponseCode.SUBSCRIPTION_PARSE_FAILED, `parse the consumer's subscription failed: ${compiled.message}`);
  }
  return { sql: compiled };
}

function afterMetadata(state: State, task: Task, metadata: PullMetadataAnswer, ctx: Ctx): void {
  assert(task.phase === 'checks', 'checks come first');
  const refusal = metadataRefusal(state, task, metadata);
  if (refusal !== undefined) return answer(state, task, refusal, ctx);
  const filter = filterOf(state, task);
  if (isCommand(filter)) return answer(state, task, filter, ctx);
  task.filter = filter;
  const readQueueNums = metadata.topic!.readQueueNums;
  task.queueIds = task.header.queueId >= 0 ? [task.header.queueId] : Array.from({ length: readQueueNums }, (_, queueId) => queueId);
  if (task.queueIds.length === 0) return answer(state, task, emptyResponse(state, task, ctx), ctx);
  startRound(state, task, ctx);
}

// ---------------------------------------------------------------------------------------------------
// Rounds

function startRound(state: State, task: Task, ctx: Ctx): void {
  assert(task.phase !== 'held', 'a held task is woken before it pops');
  task.phase = 'round';
  task.dirty = false;
  task.rounds++;
  state.counters.rounds++;
  const { consumerGroup: group, topic } = task.header;
  const unknown = new Set(task.queueIds.filter((queueId) => state.engine.committedOffset(group, topic, queueId) < 0));
  const { writer, admin } = state.args.refs;
  const { queueIds } = task;
  const readRanges = async (): Promise<QueueRangeInfo[]> => {
    const ranges = await ctx.ask<CommitLogWriterMessage, { minOffset: number; maxOffset: number }[]>(writer, { type: 'queueRanges', topic, queueIds });
    assert(ranges.length === queueIds.length, 'one range per queue asked');
    return Promise.all(
      queueIds.map(async (queueId, index) => {
        const committed = unknown.has(queueId) ? await ctx.ask<BrokerAdminMessage, number>(admin, { type: 'queryOffset', group, topic, queueId }) : -1;
        return { queueId, minOffset: ranges[index]!.minOffset, maxOffset: ranges[index]!.maxOffset, committed };
      }),
    );
  };
  const { epoch } = state;
  const taskId = task.id;
  ctx.pipeToSelf(readRanges(), (result) => ({ type: 'rangesRead', epoch, taskId, result }));
}

/**
 * Where a queue the engine has never seen starts (PopMessageProcessor.getPopOffset / getInitOffset): the
 * group's committed offset, else MIN: the queue's min offset; MAX: 0 while the queue still holds its
 * first message, else its last message (max - 1). Retry topics always start at MIN.
 */
export function initialOffset(range: QueueRangeInfo, initMode: number, topic: string): number {
  const clamp = (offset: number): number => Math.min(Math.max(offset, range.minOffset), range.maxOffset);
  if (range.committed >= 0) return clamp(range.committed);
  if (initMode === ConsumeInitMode.MIN || topic.startsWith(RETRY_GROUP_TOPIC_PREFIX)) return range.minOffset;
  if (range.minOffset <= 0 && range.maxOffset > 0) return 0;
  return clamp(range.maxOffset - 1);
}

function onRangesRead(state: State, message: Extract<PopProcessorStep, { type: 'rangesRead' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const task = state.tasks.get(message.taskId);
  if (task === undefined) return;
  assert(task.phase === 'round', 'ranges answer a popping task');
  // Nobody would get what this round leased.
  if (task.closed) return forget(state, task);
  if (!message.result.ok) return endRoundEarly(state, task, askFailure(task.request, 'queue range lookup', message.result.error), ctx);
  const ranges = new Map(message.result.value.map((range) => [range.queueId, range]));
  const { consumerGroup: group, topic } = task.header;
  const nowMs = ctx.clock.nowMs();
  const wanted = task.header.maxMsgNums - task.collected.length;
  assert(wanted > 0, 'a round wants messages');
  const popped = state.engine.pop({
    group,
    topic,
    queueIds: task.queueIds,
    maxMessages: wanted,
    invisibleMs: task.header.invisibleTime,
    nowMs,
    fifo: task.header.order,
    maxAttempts: task.maxAttempts,
    queueMaxOffset: (queueId) => ranges.get(queueId)!.maxOffset,
    startOffset: (queueId) => initialOffset(ranges.get(queueId)!, task.header.initMode, topic),
  });
  for (const queueId of task.queueIds) markDirty(state, group, topic, queueId);
  const issued = [...popped.leases, ...popped.deadLetters];
  for (const lease of issued) rememberDeadline(state, lease, ctx);
  if (issued.length === 0) return afterRound(state, task, false, ctx);
  const full = issued.length === wanted;
  const { epoch } = state;
  const taskId = task.id;
  const read = readRecords(ctx, state.args.refs.writer, topic, issued);
  ctx.pipeToSelf(read, (result) => ({ type: 'recordsRead', epoch, taskId, popped, full, popTimeMs: nowMs, result }));
}

/**
 * Reads the records of `leases` from the writer: one `get` per run of contiguous offsets of a queue,
 * again from where a short answer stopped (transfer limits), skipping what the store no longer holds.
 */
async function readRecords(ctx: Ctx, writer: ActorRef<CommitLogWriterMessage>, topic: string, leases: readonly Lease[]): Promise<RoundRead> {
  const byQueue = new Map<number, number[]>();
  for (const lease of leases) {
    const offsets = byQueue.get(lease.queueId) ?? [];
    offsets.push(lease.queueOffset);
    byQueue.set(lease.queueId, offsets);
  }
  const runs: { queueId: number; from: number; to: number }[] = [];
  for (const [queueId, offsets] of byQueue) {
    offsets.sort((a, b) => a - b);
    let from = offsets[0]!;
    let to = from;
    for (const offset of offsets.slice(1)) {
      if (offset === to + 1) to = offset;
      else {
        runs.push({ queueId, from, to });
        from = to = offset;
      }
    }
    runs.push({ queueId, from, to });
  }
  const records = new Map<string, Uint8Array>();
  await Promise.all(
    runs.map(async ({ queueId, from, to }) => {
      let next = from;
      // Each pass moves `next` forward or stops: at most (to - from + 1) passes.
      while (next <= to) {
        const get: CommitLogWriterMessage = { type: 'get', topic, queueId, queueOffset: next, maxMsgNums: to - next + 1 };
        const result = await ctx.ask<CommitLogWriterMessage, GetMessageResult>(writer, get);
        let moved = next;
        for (const message of result.messages) {
          if (message.queueOffset < next || message.queueOffset > to) continue;
          // A writer on this thread answers with views of its page cache (shared memory): keep a copy of
          // those. From another thread the record arrives in a private buffer of the cross-thread batch.
          const record = message.record.buffer instanceof SharedArrayBuffer ? new Uint8Array(message.record) : message.record;
          records.set(recordKeyOf(queueId, message.queueOffset), record);
          moved = Math.max(moved, message.queueOffset + 1);
        }
        if (moved === next) moved = result.nextBeginOffset > next ? result.nextBeginOffset : to + 1;
        next = moved;
      }
    }),
  );
  return { records };
}

function matches(filter: Filter, view: RecordView): boolean {
  if (filter.tags === undefined && filter.sql === undefined) return true;
  const properties = view.propertiesMap();
  if (filter.tags !== undefined && !filter.tags.has(properties.get(MessageConst.PROPERTY_TAGS) ?? '')) return false;
  return filter.sql === undefined || filter.sql.matches(properties);
}

function onRecordsRead(state: State, message: Extract<PopProcessorStep, { type: 'recordsRead' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const task = state.tasks.get(message.taskId);
  if (task === undefined) return;
  assert(task.phase === 'round', 'records answer a popping task');
  if (!message.result.ok) {
    // The leases stay in flight and come back after their invisible time.
    return endRoundEarly(state, task, askFailure(task.request, 'store getMessage', message.result.error), ctx);
  }
  const { records } = message.result.value;
  const delivered: Delivery[] = [];
  for (const lease of message.popped.leases) {
    const record = records.get(recordKeyOf(lease.queueId, lease.queueOffset));
    if (record === undefined) {
      state.counters.missing++;
      settle(state, lease, ctx);
    } else if (!matches(task.filter, decodeRecord(record, 0))) {
      state.counters.filtered++;
      settle(state, lease, ctx);
    } else {
      delivered.push({ lease, record });
    }
  }
  const letters: Delivery[] = [];
  for (const lease of message.popped.deadLetters) {
    const record = records.get(recordKeyOf(lease.queueId, lease.queueOffset));
    if (record === undefined) {
      state.counters.missing++;
      settle(state, lease, ctx);
    } else {
      letters.push({ lease, record });
    }
  }
  if (letters.length > 0) copyToDlq(state, task.header.consumerGroup, task.header.topic, letters, ctx);
  if (delivered.length > 0 && task.collected.length === 0) task.popTimeMs = message.popTimeMs;
  task.collected.push(...delivered);
  afterRound(state, task, message.full, ctx);
}

/** Settles a lease the broker handled itself (filtered out, lost by the store, or copied to the DLQ). */
function settle(state: State, lease: Lease, ctx: Ctx): void {
  const settled = state.engine.skip(lease);
  if (!settled.ok) ctx.log.debug({ topic: lease.topic, queueId: lease.queueId, queueOffset: lease.queueOffset, reason: settled.reason }, 'lease not settled');
  markDirty(state, lease.group, lease.topic, lease.queueId);
}

/** After a round: another one, the answer, or a hold. */
function afterRound(state: State, task: Task, full: boolean, ctx: Ctx): void {
  if (task.closed) return forget(state, task);
  const short = task.collected.length < task.header.maxMsgNums;
  if (short && full && task.rounds < state.limits.popRoundsMax) return startRound(state, task, ctx);
  if (task.collected.length > 0) return answerFound(state, task, ctx);
  if (task.dirty && task.rounds < state.limits.popRoundsMax) return startRound(state, task, ctx);
  const nowMs = ctx.clock.nowMs();
  if (task.final || isOneway(task.request) || nowMs >= task.deadlineMs) {
    state.counters.empty++;
    return answer(state, task, emptyResponse(state, task, ctx), ctx);
  }
  hold(state, task, ctx);
}

/** A round that failed: answer what earlier rounds collected, else the failure. */
function endRoundEarly(state: State, task: Task, failure: RemotingCommand, ctx: Ctx): void {
  if (task.closed) return forget(state, task);
  if (task.collected.length > 0) return answerFound(state, task, ctx);
  answer(state, task, failure, ctx);
}

function answerFound(state: State, task: Task, ctx: Ctx): void {
  const { collected, header } = task;
  assert(collected.length > 0 && collected.length <= header.maxMsgNums, 'an answer carries 1..maxMsgNums messages');
  const extFields = PopMessageResponseHeader.format({
    popTime: task.popTimeMs,
    invisibleTime: header.invisibleTime,
    reviveQid: 0,
    restNum: 0,
    receiptHandles: collected.map((delivery) => delivery.lease.receiptHandle).join(RECEIPT_HANDLE_SEPARATOR),
    attempts: collected.map((delivery) => delivery.lease.attempt).join(RECEIPT_HANDLE_SEPARATOR),
  });
  const body = concatRecords(collected.map((delivery) => ({ queueOffset: delivery.lease.queueOffset, physicalOffset: 0, record: delivery.record })));
  state.counters.found++;
  const full = collected.length === header.maxMsgNums;
  answer(state, task, createResponse(task.request, ResponseCode.SUCCESS, 'FOUND', { extFields, body }), ctx);
  // A whole batch: more may be left for the next consumer of the group waiting on this topic.
  if (full) wakeOne(state, task.key, () => true, ctx);
}

function emptyResponse(state: State, task: Task, ctx: Ctx): RemotingCommand {
  const extFields = PopMessageResponseHeader.format({ popTime: ctx.clock.nowMs(), invisibleTime: task.header.invisibleTime, reviveQid: 0, restNum: 0 });
  return createResponse(task.request, ResponseCode.POLLING_TIMEOUT, NO_MESSAGE_REMARK, { extFields });
}

// ---------------------------------------------------------------------------------------------------
// Long polling

function hold(state: State, task: Task, ctx: Ctx): void {
  assert(task.phase === 'round', 'only a popping task is held');
  if (!task.wasHeld && state.held >= state.limits.heldMax) {
    state.counters.pollingFull++;
    return answer(state, task, createResponse(task.request, ResponseCode.POLLING_FULL, `the broker holds ${state.held} pop requests already`), ctx);
  }
  if (!task.wasHeld) state.counters.holds++;
  task.wasHeld = true;
  task.phase = 'held';
  state.inFlight--;
  state.held++;
  let held = state.heldByKey.get(task.key);
  if (held === undefined) {
    held = new Set();
    state.heldByKey.set(task.key, held);
  }
  held.add(task.id);
  // An entry already due (another key's, whose timer turn is queued, or one this round saw) fires at once.
  armTimer(state, Math.min(task.deadlineMs, state.expiry.nextDueMs), ctx);
}

/** A held task pops again. */
function wake(state: State, task: Task, ctx: Ctx): void {
  assert(task.phase === 'held', 'only a held task is woken');
  unhold(state, task);
  state.held--;
  state.inFlight++;
  task.phase = 'round';
  task.rounds = 0;
  startRound(state, task, ctx);
}

/** Wakes the oldest held task of `key` that `which` accepts, if any. */
function wakeOne(state: State, key: string, which: (task: Task) => boolean, ctx: Ctx): boolean {
  for (const id of state.heldByKey.get(key) ?? []) {
    const task = state.tasks.get(id);
    assert(task !== undefined && task.phase === 'held', 'the hold index names held tasks');
    if (!which(task)) continue;
    state.counters.wakeups++;
    wake(state, task, ctx);
    return true;
  }
  return false;
}

/** Held pops of one group and topic woken together at most once per event: all-queue pops, and each queue's. */
function wakeKeyOf(task: Task): string {
  return `${task.key}\u0000${task.header.queueId}`;
}

/** Wakes the oldest held task of `key` for every queue choice (all queues, or each single queue) held. */
function wakeEachQueueChoice(state: State, key: string, ctx: Ctx): void {
  const woken = new Set<string>();
  for (const id of [...(state.heldByKey.get(key) ?? [])]) {
    const task = state.tasks.get(id);
    assert(task !== undefined && task.phase === 'held', 'the hold index names held tasks');
    if (woken.has(wakeKeyOf(task))) continue;
    woken.add(wakeKeyOf(task));
    state.counters.wakeups++;
    wake(state, task, ctx);
  }
}

/** Sets the one timer for `dueMs` (rounded up) unless it already fires earlier. */
function armTimer(state: State, dueMs: number, ctx: Ctx): void {
  if (dueMs === Number.POSITIVE_INFINITY) return;
  const roundedMs = roundUp(dueMs);
  if (roundedMs >= state.timerDueMs && ctx.timers.isActive(TIMER_DEADLINE)) return;
  state.timerDueMs = roundedMs;
  ctx.timers.startSingle(TIMER_DEADLINE, { type: 'deadline' }, Math.max(0, roundedMs - ctx.clock.nowMs()));
}

/** Held tasks at their deadline pop a last time; keys whose leases became visible wake one task each. */
function onDeadline(state: State, ctx: Ctx): void {
  state.timerDueMs = Number.POSITIVE_INFINITY;
  const nowMs = ctx.clock.nowMs();
  let nextMs = Number.POSITIVE_INFINITY;
  for (const task of [...state.tasks.values()]) {
    if (task.phase !== 'held') continue;
    if (task.deadlineMs <= nowMs) {
      state.counters.timeouts++;
      task.final = true;
      wake(state, task, ctx);
    }
  }
  for (const key of state.expiry.takeDue(nowMs)) wakeEachQueueChoice(state, key, ctx);
  for (const task of state.tasks.values()) if (task.phase === 'held') nextMs = Math.min(nextMs, task.deadlineMs);
  if (state.held > 0) nextMs = Math.min(nextMs, state.expiry.nextDueMs);
  armTimer(state, nextMs, ctx);
}

/** PopLongPollingService.notifyMessageArriving: one held task per group of each grown topic pops again. */
function onArrived(state: State, notice: ArrivalNotice, ctx: Ctx): void {
  const woken = new Set<string>();
  for (const queue of notice.queues) {
    const onTopic = state.byTopic.get(queue.topic);
    if (onTopic === undefined) continue;
    for (const id of [...onTopic]) {
      const task = state.tasks.get(id);
      assert(task !== undefined, 'the topic index names live tasks');
      if (task.header.queueId >= 0 && task.header.queueId !== queue.queueId) continue;
      if (task.phase === 'round' || task.phase === 'checks') task.dirty = true;
      else if (!woken.has(wakeKeyOf(task))) {
        woken.add(wakeKeyOf(task));
        state.counters.wakeups++;
        wake(state, task, ctx);
      }
    }
  }
}

/** Remembers when a lease becomes visible again, to wake a pop of its group and topic held then. */
function rememberDeadline(state: State, lease: Lease, ctx: Ctx): void {
  if (!state.expiry.push(lease.deadlineMs, keyOf(lease.group, lease.topic), ctx.clock.nowMs())) {
    state.counters.expiryDropped++;
    return;
  }
  if (state.held > 0) armTimer(state, lease.deadlineMs, ctx);
}

/** Drops the held pops of a closed connection; tasks in flight for it are dropped when their step ends. */
function onChannelClosed(state: State, channel: RemotingChannel): void {
  const key = channelKey(channel);
  for (const task of [...state.tasks.values()]) {
    if (channelKey(task.channel) !== key) continue;
    task.closed = true;
    if (task.phase === 'held') forget(state, task);
  }
}

// ---------------------------------------------------------------------------------------------------
// Dead letters

/** Copies dead letters to %DLQ%<group> queue 0, then settles them (see the file comment). */
function copyToDlq(state: State, group: string, topic: string, letters: readonly Delivery[], ctx: Ctx): void {
  if (state.dlqJobs >= state.limits.dlqJobsInFlightMax) {
    // They stay in flight as dead letters and are issued again after their invisible time.
    state.counters.deadLettersDeferred += letters.length;
    ctx.log.warn({ group, topic, count: letters.length }, 'too many dead-letter copies in flight; deferring');
    return;
  }
  state.dlqJobs++;
  const dlqTopic = dlqTopicOf(group);
  const inputs = letters.map(({ lease, record }) => dlqInput(dlqTopic, lease, decodeRecord(record, 0)));
  const { admin, writer } = state.args.refs;
  const known = state.dlqGroups.has(group);
  const copy = async (): Promise<DlqOutcome> => {
    if (!known) {
      // Creates the group's DLQ topic (and its retry topic) as RocketMQ's send-back does.
      const groupAnswer = await ctx.ask<BrokerAdminMessage, GroupForRetryAnswer>(admin, { type: 'groupForRetry', group });
      if (!groupAnswer.ok) return groupAnswer;
    }
    const results = await ctx.ask<CommitLogWriterMessage, PutMessageResult[]>(writer, { type: 'putBatch', messages: inputs });
    return { ok: true, results };
  };
  const { epoch } = state;
  ctx.pipeToSelf(copy(), (result) => ({ type: 'dlqDone', epoch, letters: letters.map((letter) => letter.lease), result }));
}

/** The DLQ copy of a record: same body and flags, DLQ_ORIGIN_TOPIC / DLQ_ORIGIN_MESSAGE_ID added. */
function dlqInput(dlqTopic: string, lease: Lease, view: RecordView): PutMessageInput {
  const properties = view.propertiesMap();
  const originId = properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) ?? offsetMessageId(view.storeHost, view.physicalOffset);
  properties.set(MessageConst.PROPERTY_DLQ_ORIGIN_TOPIC, lease.topic);
  properties.set(MessageConst.PROPERTY_DLQ_ORIGIN_MESSAGE_ID, originId);
  return {
    topic: dlqTopic,
    queueId: 0,
    body: new Uint8Array(view.body),
    properties: encodeMessageProperties(properties),
    flag: view.flag,
    sysFlag: view.sysFlag,
    bornTimestampMs: view.bornTimestampMs,
    bornHost: view.bornHost,
    // The deliveries made before the attempts ran out.
    reconsumeTimes: lease.attempt - 1,
  };
}

function onDlqDone(state: State, message: Extract<PopProcessorStep, { type: 'dlqDone' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  state.dlqJobs--;
  const first = message.letters[0]!;
  const where = { group: first.group, topic: first.topic, count: message.letters.length };
  const result = message.result;
  if (!result.ok) {
    state.counters.deadLettersFailed += message.letters.length;
    ctx.log.warn({ ...where, err: describeError(result.error) }, 'dead letters not copied; they are issued again after their invisible time');
    return;
  }
  const outcome = result.value;
  if (!outcome.ok) {
    state.counters.deadLettersFailed += message.letters.length;
    ctx.log.warn({ ...where, code: outcome.code, remark: outcome.remark }, 'no DLQ topic for the group');
    return;
  }
  const { results } = outcome;
  cachePut(state.dlqGroups, first.group, true, state.limits.dlqGroupsMax);
  message.letters.forEach((lease, index) => {
    const put = results[index];
    if (put?.status === 'PUT_OK') {
      state.counters.deadLetters++;
      settle(state, lease, ctx);
    } else {
      state.counters.deadLettersFailed++;
      ctx.log.warn({ ...where, queueId: lease.queueId, queueOffset: lease.queueOffset, status: put?.status }, 'dead letter not stored');
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Ack and change

/** Whether the handle's own queue and offset are the header's (a handle sent with another message's header is refused). */
function handleMismatch(extraInfo: string, queueId: number, offset: number): string | undefined {
  const decoded = decodeReceiptHandle(extraInfo);
  if (!decoded.ok) return undefined;
  if (decoded.handle.queueId === queueId && decoded.handle.queueOffset === offset) return undefined;
  return `the receipt handle names queueId ${decoded.handle.queueId} offset ${decoded.handle.queueOffset}, the request queueId ${queueId} offset ${offset}`;
}

function onAck(state: State, request: RemotingCommand, channel: RemotingChannel, header: ParsedHeader<typeof AckMessageRequestHeader>, ctx: Ctx): void {
  const target = { request, channel };
  const mismatch = handleMismatch(header.extraInfo, header.queueId, header.offset);
  if (mismatch !== undefined) {
    state.counters.acksRefused++;
    return reply(state, target, createResponse(request, ResponseCode.NO_MESSAGE, mismatch), ctx);
  }
  const { consumerGroup: group, topic } = header;
  const acked = state.engine.ack({ group, topic, receiptHandle: header.extraInfo, nowMs: ctx.clock.nowMs() });
  if (!acked.ok) {
    state.counters.acksRefused++;
    return reply(state, target, createResponse(request, ResponseCode.NO_MESSAGE, refusalRemark(acked)), ctx);
  }
  state.counters.acks++;
  markDirty(state, group, topic, header.queueId);
  state.pendingAcks.push({ request: { opaque: request.opaque, serializeType: request.serializeType, flag: request.flag }, channel });
  scheduleAckSync(state, ctx);
  // An orderly queue may be free now.
  wakeOne(state, keyOf(group, topic), (task) => task.header.order && (task.header.queueId < 0 || task.header.queueId === header.queueId), ctx);
}

function scheduleAckSync(state: State, ctx: Ctx): void {
  if (state.ackSyncQueued) return;
  state.ackSyncQueued = true;
  // Behind every message already queued, so a burst of acks shares one sync; a timer if the mailbox is full.
  if (!ctx.tell(ctx.self, { type: 'syncAcks' })) ctx.timers.startSingle(TIMER_SYNC_ACKS, { type: 'syncAcks' }, 0);
}

/** Makes the acks durable (fdatasync, or a write to the OS under ASYNC_FLUSH), then answers them. */
function onSyncAcks(state: State, ctx: Ctx): void {
  state.ackSyncQueued = false;
  if (state.pendingAcks.length === 0) return;
  if (state.args.flushDiskType === 'ASYNC_FLUSH') {
    state.engine.write();
    state.counters.ackWrites++;
  } else {
    state.engine.sync();
    state.counters.ackSyncs++;
  }
  for (const pending of state.pendingAcks.splice(0)) reply(state, pending, createResponse(pending.request, ResponseCode.SUCCESS), ctx);
}

function onChange(state: State, request: RemotingCommand, channel: RemotingChannel, header: ParsedHeader<typeof ChangeInvisibleTimeRequestHeader>, ctx: Ctx): void {
  const target = { request, channel };
  if (header.invisibleTime < 0 || header.invisibleTime > state.invisibleMsMax) {
    state.counters.changesRefused++;
    return reply(state, target, createResponse(request, ResponseCode.INVALID_PARAMETER, `invisibleTime ${header.invisibleTime} is out of [0, ${state.invisibleMsMax}]`), ctx);
  }
  const mismatch = handleMismatch(header.extraInfo, header.queueId, header.offset);
  if (mismatch !== undefined) {
    state.counters.changesRefused++;
    return reply(state, target, createResponse(request, ResponseCode.NO_MESSAGE, mismatch), ctx);
  }
  const nowMs = ctx.clock.nowMs();
  const { consumerGroup: group, topic } = header;
  const changed = state.engine.changeInvisible({ group, topic, receiptHandle: header.extraInfo, nowMs, invisibleMs: header.invisibleTime });
  if (!changed.ok) {
    state.counters.changesRefused++;
    return reply(state, target, createResponse(request, ResponseCode.NO_MESSAGE, refusalRemark(changed)), ctx);
  }
  state.counters.changes++;
  rememberDeadline(state, changed.lease, ctx);
  const extFields = ChangeInvisibleTimeResponseHeader.format({ popTime: nowMs, invisibleTime: header.invisibleTime, reviveQid: 0, receiptHandle: changed.lease.receiptHandle });
  reply(state, target, createResponse(request, ResponseCode.SUCCESS, undefined, { extFields }), ctx);
  wakeOne(state, keyOf(group, topic), (task) => task.header.order && (task.header.queueId < 0 || task.header.queueId === header.queueId), ctx);
}

// ---------------------------------------------------------------------------------------------------
// Offsets and housekeeping

function markDirty(state: State, group: string, topic: string, queueId: number): void {
  state.dirtyQueues.set(queueKeyOf(group, topic, queueId), { group, topic, queueId });
}

/** Tells broker-admin each committed offset that moved, and syncs the journal. */
function commitOffsets(state: State, ctx: Ctx): void {
  for (const [key, queue] of state.dirtyQueues) {
    const offset = state.engine.committedOffset(queue.group, queue.topic, queue.queueId);
    if (offset < 0 || state.committed.get(key) === offset) {
      state.dirtyQueues.delete(key);
      continue;
    }
    const message: BrokerAdminMessage = { type: 'commitOffset', ...queue, offset };
    // Not admitted: the queue stays dirty for the next turn.
    if (!ctx.tell(state.args.refs.admin, message)) break;
    state.dirtyQueues.delete(key);
    cachePut(state.committed, key, offset, state.committedMax);
    state.counters.offsetCommits++;
  }
  state.engine.sync();
}

function watch(state: State, ctx: Ctx): void {
  // The writer takes ArrivalNotice among this actor's messages; the phantom type cannot say "accepts at least".
  const watcher = ctx.self as ActorRef<ArrivalNotice>;
  if (!ctx.tell(state.args.refs.writer, { type: 'watchArrivals', watcher })) ctx.log.warn('writer did not take watchArrivals; trying again later');
}

function statsOf(state: State): PopProcessorStats {
  return { ...state.counters, held: state.held, inFlight: state.inFlight, leases: state.engine.inflightCount };
}

// ---------------------------------------------------------------------------------------------------
// Behavior

function limitsOf(args: PopProcessorArgs): Limits {
  const { engine: _engine, ...overrides } = args.pop ?? {};
  const limits: Limits = { ...POP_PROCESSOR_DEFAULTS, ...overrides };
  for (const [key, value] of Object.entries(limits)) {
    assert(Number.isSafeInteger(value) && value > 0, () => `pop processor ${key} is a positive integer: ${value}`);
  }
  return limits;
}

/** Builds the pop processor over the file system `storageFsOf` returns (tests inject faults here). */
export function popProcessorBehavior(storageFsOf: (args: PopProcessorArgs) => StorageFs): Behavior<State, PopProcessorMessage, PopProcessorArgs> {
  return {
    init(args, ctx) {
      const limits = limitsOf(args);
      const engineTuning = args.pop?.engine ?? {};
      const engine = PopEngine.open({
        ...engineTuning,
        brokerName: args.identity.brokerName,
        journal: { fs: storageFsOf(args), rootDir: args.settings.storePathRootDir },
      });
      const state: State = {
        args,
        limits,
        invisibleMsMax: engineTuning.maxInvisibleTimeMills ?? POP_INVISIBLE_TIME.maxInvisibleTimeMills,
        epoch: Math.floor(ctx.random() * 0x7fff_ffff),
        engine,
        nextTaskId: 1,
        tasks: new Map(),
        byTopic: new Map(),
        heldByKey: new Map(),
        held: 0,
        inFlight: 0,
        metadataLookups: new Map(),
        metadataCache: new Map(),
        filterCache: new Map(),
        dlqGroups: new Map(),
        dlqJobs: 0,
        expiry: new ExpiryHeap(limits.expiryEntriesMax),
        timerDueMs: Number.POSITIVE_INFINITY,
        dirtyQueues: new Map(),
        committed: new Map(),
        committedMax: engineTuning.queueStatesMax ?? POP_ENGINE_DEFAULTS.queueStatesMax,
        pendingAcks: [],
        ackSyncQueued: false,
        counters: {
          pops: 0, found: 0, empty: 0, refused: 0, holds: 0, wakeups: 0, timeouts: 0, overloaded: 0, pollingFull: 0, rounds: 0, filtered: 0,
          missing: 0, deadLetters: 0, deadLettersFailed: 0, deadLettersDeferred: 0, acks: 0, acksRefused: 0, changes: 0, changesRefused: 0,
          ackSyncs: 0, ackWrites: 0, offsetCommits: 0, expiryDropped: 0,
        },
      };
      // Leases recovered from the journal wake held pops when they expire, like new ones.
      for (const queue of engine.inspect()) {
        for (const lease of queue.leases) rememberDeadline(state, lease, ctx);
      }
      ctx.log.info({ epoch: engine.recovery.epoch, leases: engine.inflightCount, journal: engine.recovery.journal }, 'POP engine opened');
      watch(state, ctx);
      ctx.timers.startPeriodic(TIMER_REWATCH, { type: 'rewatch' }, limits.rewatchIntervalMs);
      ctx.timers.startPeriodic(TIMER_COMMIT, { type: 'commitOffsets' }, limits.offsetCommitIntervalMs);
      return state;
    },

    receive(state, message, ctx) {
      switch (message.type) {
        case 'remotingRequest':
          onRequest(state, message, ctx);
          break;
        case 'channelClosed':
          onChannelClosed(state, message.channel);
          break;
        case 'arrived':
          onArrived(state, message, ctx);
          break;
        case 'metadataLooked':
          onMetadataLooked(state, message, ctx);
          break;
        case 'rangesRead':
          onRangesRead(state, message, ctx);
          break;
        case 'recordsRead':
          onRecordsRead(state, message, ctx);
          break;
        case 'dlqDone':
          onDlqDone(state, message, ctx);
          break;
        case 'syncAcks':
          onSyncAcks(state, ctx);
          break;
        case 'deadline':
          onDeadline(state, ctx);
          break;
        case 'commitOffsets':
          commitOffsets(state, ctx);
          break;
        case 'rewatch':
          watch(state, ctx);
          break;
        case 'stats':
          ctx.reply(statsOf(state));
          break;
        default:
          return assertNever(message, 'pop processor message');
      }
      assert(state.tasks.size === state.held + state.inFlight, 'every task is held or in flight');
      return state;
    },

    onStop(state, ctx) {
      // Held pops are answered now (PopLongPollingService wakes them all when it stops).
      for (const task of [...state.tasks.values()]) {
        if (task.phase === 'held') answer(state, task, emptyResponse(state, task, ctx), ctx);
      }
      try {
        commitOffsets(state, ctx);
        state.engine.close();
      } catch (error) {
        ctx.log.error({ err: describeError(error) }, 'POP engine did not close cleanly; its journal recovers at the next start');
        state.engine.abandon();
        return;
      }
      // Closing synced the journal: the acks waiting for a sync are durable.
      for (const pending of state.pendingAcks.splice(0)) reply(state, pending, createResponse(pending.request, ResponseCode.SUCCESS), ctx);
    },
  };
}

/** The pop processor over the real file system. */
export const popProcessor = popProcessorBehavior(() => nodeStorageFs);

// ---------------------------------------------------------------------------------------------------
// Spawning

/** Where and how to start the pop processor. */
export type SpawnPopProcessorOptions = {
  readonly args: PopProcessorArgs;
  /** Pool to place it on; `pull` by default. */
  readonly pool?: string;
  readonly name?: string;
  readonly mailboxCapacity?: number;
  readonly behavior?: BehaviorSource;
};

/** Spawns the broker's one pop processor; route POP_REQUEST_CODES to it and add it to closeListeners. */
export function spawnPopProcessor(system: ActorSpawner, options: SpawnPopProcessorOptions): Promise<ActorRef<PopProcessorMessage>> {
  const spec: ActorSpec<PopProcessorArgs> = {
    name: options.name ?? 'pop-processor',
    behavior: options.behavior ?? popProcessorSource,
    args: options.args,
    pool: options.pool ?? 'pull',
    ...(options.mailboxCapacity === undefined ? {} : { mailboxCapacity: options.mailboxCapacity }),
  };
  return system.spawn<PopProcessorMessage, PopProcessorArgs>(spec);
}
