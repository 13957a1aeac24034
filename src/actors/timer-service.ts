/**
 * The timer service: RocketMQ 5's TimerMessageStore services (TimerEnqueueGetService, TimerEnqueuePut,
 * TimerDequeueGet/GetMessage/PutMessage, TimerFlushService) as one actor on the `store` pool, beside the
 * schedule service and for the same reason: it only reads the store and writes back into it. It owns the
 * timer store (src/storage/timer-store.ts: wheel, log, checkpoint under storePathRootDir).
 *
 * Every tick (RocketMQ waits 100 * precisionMs / 1000 ms when idle) it:
 * 1. Enqueues: reads rmq_sys_wheel_timer queue 0 from the store's queueOffset with the writer's `get`
 *    (batchMax entries per ask) and hands each message to the store by its TIMER_OUT_MS. A message whose
 *    slot was dequeued already goes into the next slot (the store's LATE units) and is delivered with
 *    TIMER_ENQUEUE_MS = Long.MAX_VALUE, as RocketMQ marks a timer that skipped the wheel; RocketMQ puts
 *    it at once, but then a delete marker behind it in the queue could no longer stop it.
 * 2. Dequeues every slot T with T + precisionMs <= min(now, horizon): first the slot's delete markers
 *    (their TIMER_DEL_UNIQKEY values, at most deleteKeysPerSlotMax), then its other units in enqueue order
 *    (pages of chainPageUnits), each message read back with the writer's `readAt` (at most slotBatchMax asks
 *    or readBytesMax bytes in flight) and re-put with `putEncoded`, encoded here so the writer only
 *    copies: into REAL_TOPIC / REAL_QID with REAL_TOPIC and REAL_QID removed and TIMER_ENQUEUE_MS and
 *    TIMER_DEQUEUE_MS set (convertMessage), or, for a ROLL unit, back into rmq_sys_wheel_timer with
 *    TIMER_ROLL_TIMES + 1. A message whose REAL_TOPIC + "+" + UNIQ_KEY is among the slot's delete keys
 *    is recalled: dropped. Reading messages back rather than keeping what `get` returned keeps memory
 *    bounded by the batch, not by the timers pending (RocketMQ reads them back too).
 *
 * The horizon makes recall exact: a slot is dequeued only when every timer message stored before the
 * slot's due time has been enqueued, so its delete markers are in the slot. The horizon is the time a
 * `get` was asked that reached the queue's end; when this service puts a message back into the timer
 * topic (a roll) it falls to the end of the slot being dequeued, so no later slot (the rolled message's
 * own, if the roll came late) is dequeued before that message is enqueued again. (Store times cannot
 * stand in for it: a rolled marker is stored long after its slot was due.) A marker stored after its
 * slot's due time (the recall checked in time but its put reached the writer a whole step later) finds
 * the slot gone; RocketMQ has the same window.
 *
 * Never early: a slot is dequeued only once now >= T + precisionMs, and the send path put every timer
 * in the slot below its deliver time; a late timer's own slot lies before the one it is delivered from.
 *
 * Progress and crashes (at least once). The store's queueOffset and readTimeMs move as enqueues and
 * slots finish, each remembering how far the CommitLog must be durable first (the enqueued messages,
 * the slot's re-puts). Every timerFlushIntervalMs the service asks the writer's durableOffset and
 * checkpoints the store with it: timercheck only records progress the durable offset covers, so a crash
 * re-delivers, never loses. A unit whose message the CommitLog lost in a power loss (or replaced by
 * another at its offset) is skipped (unitNames). A re-put the store refuses for good (MESSAGE_ILLEGAL,
 * PROPERTIES_SIZE_EXCEEDED) is skipped, as RocketMQ's PUT_NO_RETRY; any other refusal retries the same
 * puts at the next tick (RocketMQ's PUT_NEED_RETRY, with timerEnableRetryUntilSuccess: never dropped).
 */
import type { ActorContext, ActorRef, ActorSpawner, Behavior, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { MessageConst } from '../net/remoting/message-batch.ts';
import { isValidTopicName } from '../storage/consume-queue.ts';
import { type RecordView, type SocketAddress, decodeRecord } from '../storage/message-record.ts';
import {
  encodePut,
  isPutRefusal,
  type EncodedPut,
  type GetMessageResult,
  type PutMessageInput,
  type PutMessageResult,
  type PutMessageStatus,
  STORED_PUT_STATUSES,
} from '../storage/message-store.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { TimerMagic, hasMagic, keyHashOf, type TimerUnit } from '../storage/timer-log.ts';
import { TimerStore, type TimerDueSlot, type TimerStoreStats } from '../storage/timer-store.ts';
import type { BrokerProcessorArgs } from './broker-context.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats } from './commit-log-writer.ts';
import { parseJavaInt, propertiesString } from './schedule-service.ts';
import { JAVA_LONG_MAX_TEXT, TIMER_TOPIC, buildDeleteKey, parseJavaLong } from './timer-hook.ts';

// ---------------------------------------------------------------------------------------------------
// The read side: convertMessage

/**
 * TimerMessageStore.convert + convertMessage for a timer message due now: the put into its real topic
 * and queue (REAL_TOPIC / REAL_QID removed), or, `roll`, back into the timer topic (TIMER_ROLL_TIMES + 1);
 * or why it cannot go anywhere. `enqueueTimeText` becomes TIMER_ENQUEUE_MS, `nowMs` TIMER_DEQUEUE_MS.
 */
export function timerMessageOut(view: RecordView, enqueueTimeText: string, nowMs: number, roll: boolean): PutMessageInput | { readonly skip: string } {
  const properties = view.propertiesMap();
  properties.set(MessageConst.PROPERTY_TIMER_ENQUEUE_MS, enqueueTimeText);
  let topic = view.topic;
  let queueId = view.queueId;
  if (roll) {
    const rolls = parseJavaInt(properties.get(MessageConst.PROPERTY_TIMER_ROLL_TIMES) ?? '0') ?? 0;
    properties.set(MessageConst.PROPERTY_TIMER_ROLL_TIMES, String(rolls + 1));
  } else {
    const realTopic = properties.get(MessageConst.PROPERTY_REAL_TOPIC);
    const queueText = properties.get(MessageConst.PROPERTY_REAL_QUEUE_ID);
    const realQueueId = queueText === undefined ? undefined : parseJavaInt(queueText);
    if (realTopic === undefined || !isValidTopicName(realTopic)) return { skip: `bad ${MessageConst.PROPERTY_REAL_TOPIC} ${JSON.stringify(realTopic)}` };
    if (realQueueId === undefined || realQueueId < 0) return { skip: `bad ${MessageConst.PROPERTY_REAL_QUEUE_ID} ${JSON.stringify(queueText)}` };
    topic = realTopic;
    queueId = realQueueId;
    properties.delete(MessageConst.PROPERTY_REAL_TOPIC);
    properties.delete(MessageConst.PROPERTY_REAL_QUEUE_ID);
  }
  properties.set(MessageConst.PROPERTY_TIMER_DEQUEUE_MS, String(nowMs));
  return {
    topic,
    queueId,
    body: view.body,
    properties: propertiesString(properties),
    flag: view.flag,
    sysFlag: view.sysFlag,
    bornTimestampMs: view.bornTimestampMs,
    bornHost: view.bornHost,
    reconsumeTimes: view.reconsumeTimes,
  };
}

/** The delete key a dequeued message is matched against (buildDeleteKey of REAL_TOPIC and UNIQ_KEY). */
export function deleteKeyOf(view: RecordView): string | undefined {
  const properties = view.propertiesMap();
  const realTopic = properties.get(MessageConst.PROPERTY_REAL_TOPIC);
  const uniqKey = properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX);
  return realTopic === undefined || uniqKey === undefined ? undefined : buildDeleteKey(realTopic, uniqKey);
}

/**
 * Whether the record read back at a unit's offset is the message the unit was made for. After a power
 * loss the CommitLog may have lost a message the timer log had already synced, and put another one at
 * its offset; such a unit is skipped. A unit is also never taken from a slot before the message's own
 * (never early): its own slot, or an earlier one for a LATE unit; a ROLL unit only goes back to the queue.
 */
export function unitNames(unit: TimerUnit, view: RecordView, precisionMs: number): boolean {
  return unitNamesMessage(unit, { topic: view.topic, physicalOffset: view.physicalOffset, sizeBytes: view.totalSize, properties: view.propertiesMap() }, precisionMs);
}

/** unitNames over the fields it reads. */
export function unitNamesMessage(
  unit: TimerUnit,
  message: { readonly topic: string; readonly physicalOffset: number; readonly sizeBytes: number; readonly properties: ReadonlyMap<string, string> },
  precisionMs: number,
): boolean {
  if (message.topic !== TIMER_TOPIC || message.physicalOffset !== unit.offsetPy || message.sizeBytes !== unit.sizePy) return false;
  if (keyHashOf(message.properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX)) !== unit.keyHash) return false;
  if (hasMagic(unit.magic, TimerMagic.ROLL)) return true;
  const timerOut = parseJavaLong(message.properties.get(MessageConst.PROPERTY_TIMER_OUT_MS) ?? '');
  if (timerOut === undefined || timerOut < 0n || timerOut > BigInt(Number.MAX_SAFE_INTEGER)) return false;
  const slotTimeMs = Math.floor(Number(timerOut) / precisionMs) * precisionMs;
  return hasMagic(unit.magic, TimerMagic.LATE) ? slotTimeMs < unit.slotTimeMs : slotTimeMs === unit.slotTimeMs;
}

// ---------------------------------------------------------------------------------------------------
// Args and messages

/** Defaults of the service's own knobs. */
export const TIMER_SERVICE_DEFAULTS = {
  /** Entries one `get` of the timer topic takes (the writer caps a get at 32). */
  batchMax: 32,
  /** Messages of a due slot read back and re-put per round (one `readAt` batch, one `putEncoded`). */
  slotBatchMax: 256,
  /** Bytes of messages read back at once (at least one message). */
  readBytesMax: 4 * 1024 * 1024,
  /** MessageStoreConfig.timerFlushIntervalMs. */
  timerFlushIntervalMs: 1_000,
  /** Asks to the writer. */
  askTimeoutMs: 10_000,
  /** Units of a chain read at once; a slot is delivered in enqueue order within such a page. */
  chainPageUnits: 1024,
  /** Delete keys one slot collects; markers beyond are logged and ignored. */
  deleteKeysPerSlotMax: 65_536,
} as const;

/** Start arguments. */
export type TimerServiceArgs = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  readonly storePathRootDir: string;
  /** The writer's store host (re-puts are encoded here). */
  readonly storeHost: SocketAddress;
  readonly maxMessageSize: number;
  readonly timerPrecisionMs: number;
  /** Default precisionMs / 10 (at least 1 ms), as RocketMQ's services wait. */
  readonly tickIntervalMs?: number;
  readonly batchMax?: number;
  readonly slotBatchMax?: number;
  readonly readBytesMax?: number;
  readonly timerFlushIntervalMs?: number;
  readonly askTimeoutMs?: number;
  readonly chainPageUnits?: number;
  readonly deleteKeysPerSlotMax?: number;
  /** Wheel geometry and log file size (timer-store.ts defaults: RocketMQ's). */
  readonly slotsTotal?: number;
  readonly timerRollWindowSlot?: number;
  readonly timerLogFileSize?: number;
  /** Read only by behaviors built with a test file system. */
  readonly seam?: unknown;
};

/** What the behavior takes: its own args, or every broker processor's (read through timerServiceArgsOf). */
export type TimerServiceStartArgs = TimerServiceArgs | BrokerProcessorArgs;

/** The timer service's args from the broker processors' args. */
export function timerServiceArgsOf(args: BrokerProcessorArgs, overrides: Partial<TimerServiceArgs> = {}): TimerServiceArgs {
  return {
    writer: args.refs.writer,
    storePathRootDir: args.settings.storePathRootDir,
    storeHost: args.identity.storeHost,
    maxMessageSize: args.settings.maxMessageSize,
    timerPrecisionMs: args.settings.timerPrecisionMs,
    ...overrides,
  };
}

/** A re-put of a dequeue, with what it is for. */
type SlotPut = { readonly put: EncodedPut; readonly roll: boolean };

/** Messages: timers, the writer's answers (piped, tagged with the incarnation), and `stats` (ask). */
export type TimerServiceMessage =
  | { readonly type: 'tick' }
  | { readonly type: 'continue'; readonly epoch: number }
  | { readonly type: 'queueRead'; readonly epoch: number; readonly askedAtMs: number; readonly result: PipeResult<GetMessageResult> }
  | { readonly type: 'recordsRead'; readonly epoch: number; readonly units: readonly TimerUnit[]; readonly result: PipeResult<(Uint8Array | null)[]> }
  | { readonly type: 'slotPut'; readonly epoch: number; readonly puts: readonly SlotPut[]; readonly result: PipeResult<PutMessageResult[]> }
  | { readonly type: 'flush' }
  | { readonly type: 'durable'; readonly epoch: number; readonly result: PipeResult<CommitLogWriterStats> }
  | { readonly type: 'stats' };

/** The answer to `stats`. */
export type TimerServiceStats = {
  readonly ticks: number;
  /** Timer messages put into the wheel (rolled ones included), and of those rolled. */
  readonly enqueued: number;
  readonly rolled: number;
  /** Enqueued after their slot was dequeued (linked into the next slot). */
  readonly late: number;
  /** Re-put into their real topic. */
  readonly delivered: number;
  /** Suppressed by a delete marker. */
  readonly recalled: number;
  /** Delete markers beyond deleteKeysPerSlotMax in one slot. */
  readonly markersIgnored: number;
  /** Messages with nowhere to go, refused for good, or no longer in the CommitLog. */
  readonly skipped: number;
  readonly failedPuts: number;
  readonly checkpoints: number;
  readonly busy: boolean;
  /** Every timer message stored before this time has been enqueued. */
  readonly horizonMs: number;
  /** The slot being dequeued, if any. */
  readonly slotInProgress: number | null;
  readonly store: TimerStoreStats;
};

// ---------------------------------------------------------------------------------------------------
// State

type Settings = Required<Omit<TimerServiceArgs, 'seam' | 'slotsTotal' | 'timerRollWindowSlot' | 'timerLogFileSize'>> &
  Pick<TimerServiceArgs, 'slotsTotal' | 'timerRollWindowSlot' | 'timerLogFileSize'>;

/** The slot being dequeued. */
type SlotJob = {
  readonly slot: TimerDueSlot;
  phase: 'markers' | 'deliver';
  /** Next chain position to read (-1: the chain is read). */
  cursor: number;
  readonly deleteKeys: Set<string>;
  /** Units of the current page still to handle, oldest first; a cursor into it. */
  page: TimerUnit[];
  pageIndex: number;
  /** Re-puts refused for now, to send again. */
  retry: SlotPut[] | null;
  /** Where this slot's re-puts end in the CommitLog. */
  endOffset: number;
};

type State = {
  readonly settings: Settings;
  readonly epoch: number;
  readonly store: TimerStore;
  busy: boolean;
  horizonMs: number;
  /** The queue holds more than the last read took. */
  moreToRead: boolean;
  /** The last read stopped at a message the store had no room for yet. */
  blocked: boolean;
  slotJob: SlotJob | null;
  lastDurableOffset: number;
  ticks: number;
  enqueued: number;
  rolled: number;
  late: number;
  delivered: number;
  recalled: number;
  markersIgnored: number;
  skipped: number;
  failedPuts: number;
  checkpoints: number;
};

type Ctx = ActorContext<TimerServiceMessage>;

const TIMER_TICK = 'tick';
const TIMER_FLUSH = 'flush';
const TIMER_CONTINUE = 'continue';

/** Statuses after which the message is in the log (FLUSH_DISK_TIMEOUT: stored, the sync was late). */
const STORED = STORED_PUT_STATUSES;
/** Statuses that will not change on a retry (doPut's PUT_NO_RETRY): the message is skipped. */
const REFUSED_FOR_GOOD: ReadonlySet<PutMessageStatus> = new Set<PutMessageStatus>(['MESSAGE_ILLEGAL', 'PROPERTIES_SIZE_EXCEEDED']);

function settingsOf(args: TimerServiceArgs): Settings {
  const settings: Settings = {
    writer: args.writer,
    storePathRootDir: args.storePathRootDir,
    storeHost: args.storeHost,
    maxMessageSize: args.maxMessageSize,
    timerPrecisionMs: args.timerPrecisionMs,
    tickIntervalMs: args.tickIntervalMs ?? Math.max(1, Math.floor(args.timerPrecisionMs / 10)),
    batchMax: args.batchMax ?? TIMER_SERVICE_DEFAULTS.batchMax,
    slotBatchMax: args.slotBatchMax ?? TIMER_SERVICE_DEFAULTS.slotBatchMax,
    readBytesMax: args.readBytesMax ?? TIMER_SERVICE_DEFAULTS.readBytesMax,
    timerFlushIntervalMs: args.timerFlushIntervalMs ?? TIMER_SERVICE_DEFAULTS.timerFlushIntervalMs,
    askTimeoutMs: args.askTimeoutMs ?? TIMER_SERVICE_DEFAULTS.askTimeoutMs,
    chainPageUnits: args.chainPageUnits ?? TIMER_SERVICE_DEFAULTS.chainPageUnits,
    deleteKeysPerSlotMax: args.deleteKeysPerSlotMax ?? TIMER_SERVICE_DEFAULTS.deleteKeysPerSlotMax,
    ...(args.slotsTotal === undefined ? {} : { slotsTotal: args.slotsTotal }),
    ...(args.timerRollWindowSlot === undefined ? {} : { timerRollWindowSlot: args.timerRollWindowSlot }),
    ...(args.timerLogFileSize === undefined ? {} : { timerLogFileSize: args.timerLogFileSize }),
  };
  for (const key of ['timerPrecisionMs', 'tickIntervalMs', 'batchMax', 'slotBatchMax', 'readBytesMax', 'timerFlushIntervalMs', 'askTimeoutMs', 'chainPageUnits', 'deleteKeysPerSlotMax', 'maxMessageSize'] as const) {
    assert(Number.isSafeInteger(settings[key]) && settings[key] > 0, () => `${key} is a positive integer`);
  }
  return settings;
}

function ask<R>(state: State, message: CommitLogWriterMessage, ctx: Ctx): Promise<R> {
  return ctx.ask<CommitLogWriterMessage, R>(state.settings.writer, message, state.settings.askTimeoutMs);
}

/** Encodes a re-put, or logs why the message cannot be re-put (null). */
function encodeOut(state: State, input: PutMessageInput | { readonly skip: string }, offsetPy: number, nowMs: number, ctx: Ctx): EncodedPut | null {
  if ('skip' in input) {
    ctx.log.error({ offsetPy, reason: input.skip }, 'timer message has nowhere to go; skipped');
    return null;
  }
  const encoded = encodePut(input, state.settings.storeHost, state.settings.maxMessageSize, nowMs);
  if (isPutRefusal(encoded)) {
    ctx.log.error({ offsetPy, status: encoded.status, remark: encoded.remark }, 'timer message cannot be stored; skipped');
    return null;
  }
  return encoded;
}

function noteEnd(job: SlotJob, result: PutMessageResult): void {
  const end = result.physicalOffset + result.wroteBytes;
  if (end > job.endOffset) job.endOffset = end;
}

// ---------------------------------------------------------------------------------------------------
// Enqueue

function readQueue(state: State, ctx: Ctx): void {
  const { epoch } = state;
  const askedAtMs = ctx.clock.nowMs();
  const request: CommitLogWriterMessage = { type: 'get', topic: TIMER_TOPIC, queueId: 0, queueOffset: state.store.queueOffset, maxMsgNums: state.settings.batchMax };
  ctx.pipeToSelf(ask<GetMessageResult>(state, request, ctx), (result) => ({ type: 'queueRead', epoch, askedAtMs, result }));
}

function raiseHorizon(state: State, timeMs: number): void {
  if (timeMs > state.horizonMs) state.horizonMs = timeMs;
}

/** A read that found nothing: the queue's end (the horizon moves), or an offset the store corrects. */
function onEmptyRead(state: State, got: GetMessageResult, askedAtMs: number, ctx: Ctx): void {
  const offset = state.store.queueOffset;
  state.blocked = false;
  const corrects = got.status === 'OFFSET_TOO_SMALL' || got.status === 'OFFSET_OVERFLOW_BADLY' || got.nextBeginOffset > offset;
  if (corrects && got.nextBeginOffset !== offset && got.status !== 'NO_MATCHED_LOGIC_QUEUE') {
    ctx.log.warn({ offset, next: got.nextBeginOffset, status: got.status }, 'timer queue offset corrected');
    state.store.commitQueueOffset(got.nextBeginOffset, 0);
    state.moreToRead = got.nextBeginOffset < got.maxOffset;
    return;
  }
  state.moreToRead = false;
  raiseHorizon(state, askedAtMs);
}

function onQueueRead(state: State, askedAtMs: number, result: PipeResult<GetMessageResult>, ctx: Ctx): void {
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'timer queue read failed; retrying at the next tick');
    state.busy = false;
    return;
  }
  const got = result.value;
  if (got.messages.length === 0) {
    onEmptyRead(state, got, askedAtMs, ctx);
    return dequeue(state, ctx);
  }
  const nowMs = ctx.clock.nowMs();
  let next = state.store.queueOffset;
  let blocked = false;
  // The offset is checkpointed only once these messages are durable: a power loss that takes them
  // back must not leave the checkpoint past the queue's end, where new messages would be skipped.
  let endOffset = 0;
  for (const message of got.messages) {
    const view = decodeRecord(message.record, 0);
    if (!enqueueOne(state, view, message.physicalOffset, message.record.length, nowMs, ctx)) {
      blocked = true;
      break;
    }
    next = message.queueOffset + 1;
    endOffset = Math.max(endOffset, message.physicalOffset + message.record.length);
  }
  if (!blocked && next >= got.maxOffset) raiseHorizon(state, askedAtMs);
  state.moreToRead = !blocked && next < got.maxOffset;
  state.blocked = blocked;
  state.store.commitQueueOffset(next, endOffset);
  dequeue(state, ctx);
}

/** Hands one message to the store; false when the store is full for it (retried at a later tick). */
function enqueueOne(state: State, view: RecordView, offsetPy: number, sizePy: number, nowMs: number, ctx: Ctx): boolean {
  const properties = view.propertiesMap();
  const timerOut = parseJavaLong(properties.get(MessageConst.PROPERTY_TIMER_OUT_MS) ?? '');
  if (timerOut === undefined || timerOut < 0n || timerOut > BigInt(Number.MAX_SAFE_INTEGER)) {
    state.skipped++;
    ctx.log.error({ offsetPy, timerOutMs: properties.get(MessageConst.PROPERTY_TIMER_OUT_MS) ?? null }, 'timer message without a usable TIMER_OUT_MS; skipped');
    return true;
  }
  const isDelete = properties.has(MessageConst.PROPERTY_TIMER_DEL_UNIQKEY);
  const keyHash = keyHashOf(properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX));
  const outcome = state.store.enqueue({ timerOutMs: Number(timerOut), offsetPy, sizePy, keyHash, isDelete, nowMs });
  if (outcome.kind === 'full') return false;
  state.enqueued++;
  if (outcome.rolled) state.rolled++;
  if (outcome.late) state.late++;
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Dequeue

/** Dequeues the next due slot, or reads on / goes idle when none is due. */
function dequeue(state: State, ctx: Ctx): void {
  if (state.slotJob !== null) return continueSlot(state, state.slotJob, ctx);
  const nowMs = ctx.clock.nowMs();
  const readTimeMs = state.store.readTimeMs;
  const slot = state.store.nextDueSlot(Math.min(nowMs, state.horizonMs), nowMs);
  // Many empty slots: let the mailbox in before stepping on.
  if (slot === 'scanning') return yieldTurn(state, ctx);
  if (slot === null) {
    // A blocked enqueue may fit now that the read time moved (see nextDueSlot).
    if (state.moreToRead || (state.blocked && state.store.readTimeMs !== readTimeMs)) return readQueue(state, ctx);
    state.busy = false;
    return;
  }
  state.store.beginSlot(slot);
  const job: SlotJob = {
    slot,
    phase: slot.deleteNum > 0 ? 'markers' : 'deliver',
    cursor: slot.lastPos,
    deleteKeys: new Set(),
    page: [],
    pageIndex: 0,
    retry: null,
    endOffset: 0,
  };
  state.slotJob = job;
  continueSlot(state, job, ctx);
}

/** Continues the current work in a later turn (a timer when the mailbox is full). */
function yieldTurn(state: State, ctx: Ctx): void {
  const message: TimerServiceMessage = { type: 'continue', epoch: state.epoch };
  if (!ctx.tell(ctx.self, message)) ctx.timers.startSingle(TIMER_CONTINUE, message, 0);
}

const isMarker = (unit: TimerUnit): boolean => hasMagic(unit.magic, TimerMagic.DELETE) && !hasMagic(unit.magic, TimerMagic.ROLL);

/** The next step of the slot job: collect markers, read a page, read messages back, or finish. */
function continueSlot(state: State, job: SlotJob, ctx: Ctx): void {
  if (job.retry !== null) return sendSlotPuts(state, job.retry, ctx);
  for (;;) {
    if (job.pageIndex >= job.page.length) {
      if (job.cursor === -1) {
        if (job.phase === 'deliver') return finishSlot(state, job, ctx);
        job.phase = 'deliver';
        job.cursor = job.slot.lastPos;
      }
      const read = state.store.readChain(job.slot.timeMs, job.cursor, state.settings.chainPageUnits);
      job.cursor = read.nextPos;
      // Markers first, in any order; then the rest oldest first (units come newest first).
      job.page = job.phase === 'markers' ? read.units.filter(isMarker) : read.units.filter((unit) => !isMarker(unit)).reverse();
      job.pageIndex = 0;
      // A long chain with nothing to do in this page: let the mailbox in before reading on.
      if (job.page.length === 0 && job.cursor !== -1) return yieldTurn(state, ctx);
      continue;
    }
    const units = takeBatch(state, job);
    const { epoch } = state;
    const reads = units.map((unit) => ask<Uint8Array | null>(state, { type: 'readAt', physicalOffset: unit.offsetPy }, ctx));
    ctx.pipeToSelf(Promise.all(reads), (result) => ({ type: 'recordsRead', epoch, units, result }));
    return;
  }
}

/** The next units of the page to read back: at most slotBatchMax and readBytesMax (at least one). */
function takeBatch(state: State, job: SlotJob): TimerUnit[] {
  const units: TimerUnit[] = [];
  let bytes = 0;
  while (job.pageIndex + units.length < job.page.length && units.length < state.settings.slotBatchMax) {
    const unit = job.page[job.pageIndex + units.length]!;
    if (units.length > 0 && bytes + unit.sizePy > state.settings.readBytesMax) break;
    units.push(unit);
    bytes += unit.sizePy;
  }
  return units;
}

function onRecordsRead(state: State, job: SlotJob, units: readonly TimerUnit[], result: PipeResult<(Uint8Array | null)[]>, ctx: Ctx): void {
  if (!result.ok) {
    state.busy = false;
    ctx.log.warn({ slotTimeMs: job.slot.timeMs, err: describeError(result.error) }, 'timer messages could not be read back; retrying at the next tick');
    return;
  }
  job.pageIndex += units.length;
  if (job.phase === 'markers') {
    collectMarkers(state, job, units, result.value, ctx);
    return continueSlot(state, job, ctx);
  }
  const nowMs = ctx.clock.nowMs();
  const puts: SlotPut[] = [];
  for (const [index, unit] of units.entries()) {
    const record = result.value[index];
    if (record === null || record === undefined) {
      state.skipped++;
      ctx.log.warn({ slotTimeMs: job.slot.timeMs, offsetPy: unit.offsetPy }, 'timer message no longer in the CommitLog; skipped');
      continue;
    }
    const view = decodeRecord(record, 0);
    if (!unitNames(unit, view, state.settings.timerPrecisionMs)) {
      state.skipped++;
      ctx.log.warn({ slotTimeMs: job.slot.timeMs, offsetPy: unit.offsetPy }, 'timer unit names a message the CommitLog no longer holds; skipped');
      continue;
    }
    const roll = hasMagic(unit.magic, TimerMagic.ROLL);
    if (!roll) {
      const key = deleteKeyOf(view);
      if (key !== undefined && job.deleteKeys.has(key)) {
        state.recalled++;
        continue;
      }
    }
    const enqueueTimeText = hasMagic(unit.magic, TimerMagic.LATE) ? JAVA_LONG_MAX_TEXT : String(unit.enqueueTimeMs);
    const put = encodeOut(state, timerMessageOut(view, enqueueTimeText, nowMs, roll), unit.offsetPy, nowMs, ctx);
    if (put === null) state.skipped++;
    else puts.push({ put, roll });
  }
  if (puts.length === 0) return continueSlot(state, job, ctx);
  sendSlotPuts(state, puts, ctx);
}

function collectMarkers(state: State, job: SlotJob, units: readonly TimerUnit[], records: readonly (Uint8Array | null)[], ctx: Ctx): void {
  for (const [index, unit] of units.entries()) {
    const record = records[index];
    const view = record === null || record === undefined ? undefined : decodeRecord(record, 0);
    const key = view !== undefined && unitNames(unit, view, state.settings.timerPrecisionMs) ? view.propertiesMap().get(MessageConst.PROPERTY_TIMER_DEL_UNIQKEY) : undefined;
    if (key === undefined) continue;
    if (job.deleteKeys.size >= state.settings.deleteKeysPerSlotMax) {
      state.markersIgnored++;
      ctx.log.error({ slotTimeMs: job.slot.timeMs, offsetPy: unit.offsetPy, key }, 'too many delete markers in one slot; marker ignored');
      continue;
    }
    job.deleteKeys.add(key);
  }
}

function sendSlotPuts(state: State, puts: readonly SlotPut[], ctx: Ctx): void {
  const { epoch } = state;
  const answer = ask<PutMessageResult[]>(state, { type: 'putEncoded', puts: puts.map((slotPut) => slotPut.put) }, ctx);
  ctx.pipeToSelf(answer, (result) => ({ type: 'slotPut', epoch, puts, result }));
}

function onSlotPut(state: State, job: SlotJob, puts: readonly SlotPut[], result: PipeResult<PutMessageResult[]>, ctx: Ctx): void {
  if (!result.ok) {
    state.failedPuts++;
    job.retry = [...puts];
    state.busy = false;
    ctx.log.warn({ slotTimeMs: job.slot.timeMs, err: describeError(result.error) }, 'timer re-put failed; retrying at the next tick');
    return;
  }
  job.retry = null;
  for (const [index, slotPut] of puts.entries()) {
    const put = result.value[index];
    assert(put !== undefined, 'the writer answers every put');
    if (STORED.has(put.status)) {
      noteEnd(job, put);
      if (slotPut.roll) {
        // Back in the timer topic, not yet enqueued: no later slot may be dequeued before it is (it or
        // its delete marker may belong to one), so the horizon drops to this slot's end and the queue
        // is read again at once.
        state.horizonMs = Math.min(state.horizonMs, job.slot.timeMs + state.settings.timerPrecisionMs);
        state.moreToRead = true;
      } else {
        state.delivered++;
      }
    } else if (REFUSED_FOR_GOOD.has(put.status)) {
      state.skipped++;
      ctx.log.error({ slotTimeMs: job.slot.timeMs, status: put.status, remark: put.remark }, 'timer message refused by the store; skipped');
    } else {
      state.failedPuts++;
      job.retry = puts.slice(index);
      state.busy = false;
      ctx.log.warn({ slotTimeMs: job.slot.timeMs, status: put.status, remark: put.remark }, 'timer re-put refused; retrying at the next tick');
      return;
    }
  }
  continueSlot(state, job, ctx);
}

function finishSlot(state: State, job: SlotJob, ctx: Ctx): void {
  state.store.finishSlot(job.slot.timeMs, job.endOffset);
  state.slotJob = null;
  dequeue(state, ctx);
}

// ---------------------------------------------------------------------------------------------------
// Checkpoints, ticks, the behavior

function askDurable(state: State, ctx: Ctx): void {
  const { epoch } = state;
  ctx.pipeToSelf(ask<CommitLogWriterStats>(state, { type: 'stats' }, ctx), (result) => ({ type: 'durable', epoch, result }));
}

function onDurable(state: State, result: PipeResult<CommitLogWriterStats>, ctx: Ctx): void {
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'writer stats unavailable; timer checkpoint skipped this time');
    return;
  }
  state.lastDurableOffset = result.value.durableOffset;
  const done = state.store.checkpoint(state.lastDurableOffset, ctx.clock.nowMs());
  if (done.written) state.checkpoints++;
}

function onTick(state: State, ctx: Ctx): void {
  state.ticks++;
  if (state.busy) return;
  state.busy = true;
  if (state.slotJob !== null) return continueSlot(state, state.slotJob, ctx);
  readQueue(state, ctx);
}

function statsOf(state: State): TimerServiceStats {
  return {
    ticks: state.ticks,
    enqueued: state.enqueued,
    rolled: state.rolled,
    late: state.late,
    delivered: state.delivered,
    recalled: state.recalled,
    markersIgnored: state.markersIgnored,
    skipped: state.skipped,
    failedPuts: state.failedPuts,
    checkpoints: state.checkpoints,
    busy: state.busy,
    horizonMs: state.horizonMs,
    slotInProgress: state.slotJob?.slot.timeMs ?? null,
    store: state.store.stats(),
  };
}

function currentJob(state: State): SlotJob {
  assert(state.slotJob !== null, 'a slot is being dequeued');
  return state.slotJob;
}

function handle(state: State, message: TimerServiceMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'tick':
      return onTick(state, ctx);
    case 'continue':
      if (message.epoch === state.epoch) dequeue(state, ctx);
      return;
    case 'queueRead':
      if (message.epoch === state.epoch) onQueueRead(state, message.askedAtMs, message.result, ctx);
      return;
    case 'recordsRead':
      if (message.epoch === state.epoch) onRecordsRead(state, currentJob(state), message.units, message.result, ctx);
      return;
    case 'slotPut':
      if (message.epoch === state.epoch) onSlotPut(state, currentJob(state), message.puts, message.result, ctx);
      return;
    case 'flush':
      return askDurable(state, ctx);
    case 'durable':
      if (message.epoch === state.epoch) onDurable(state, message.result, ctx);
      return;
    case 'stats':
      return ctx.reply(statsOf(state));
    default:
      return assertNever(message, 'timer service message');
  }
}

/** Builds the behavior over the file system `storageFsOf` returns (tests inject faults here). */
export function timerServiceBehavior(storageFsOf: (args: TimerServiceArgs) => StorageFs): Behavior<State, TimerServiceMessage, TimerServiceStartArgs> {
  return {
    init(startArgs, ctx) {
      const args = 'refs' in startArgs ? timerServiceArgsOf(startArgs) : startArgs;
      const settings = settingsOf(args);
      const store = TimerStore.open({
        rootDir: settings.storePathRootDir,
        fs: storageFsOf(args),
        precisionMs: settings.timerPrecisionMs,
        nowMs: ctx.clock.nowMs(),
        ...(settings.slotsTotal === undefined ? {} : { slotsTotal: settings.slotsTotal }),
        ...(settings.timerRollWindowSlot === undefined ? {} : { timerRollWindowSlot: settings.timerRollWindowSlot }),
        ...(settings.timerLogFileSize === undefined ? {} : { timerLogFileSize: settings.timerLogFileSize }),
        log: ctx.log,
      });
      ctx.timers.startPeriodic(TIMER_TICK, { type: 'tick' }, settings.tickIntervalMs);
      ctx.timers.startPeriodic(TIMER_FLUSH, { type: 'flush' }, settings.timerFlushIntervalMs);
      return {
        settings,
        epoch: Math.floor(ctx.random() * 0x7fff_ffff),
        store,
        busy: false,
        horizonMs: 0,
        moreToRead: false,
        blocked: false,
        slotJob: null,
        lastDurableOffset: 0,
        ticks: 0,
        enqueued: 0,
        rolled: 0,
        late: 0,
        delivered: 0,
        recalled: 0,
        markersIgnored: 0,
        skipped: 0,
        failedPuts: 0,
        checkpoints: 0,
      };
    },

    receive(state, message, ctx) {
      handle(state, message, ctx);
      return state;
    },

    onStop(state, ctx) {
      // Only what the writer last said is durable: a later start re-delivers the rest (at least once).
      try {
        state.store.checkpoint(state.lastDurableOffset, ctx.clock.nowMs());
      } catch (error) {
        ctx.log.error({ err: describeError(error) }, 'timer checkpoint not written at stop; the next start recovers from the last one');
      }
      state.store.close();
    },
  };
}

/** The timer service over the real file system. */
export const timerService = timerServiceBehavior(() => nodeStorageFs);

/** Spawns the timer service (one per broker, only with timerWheelEnable). */
export function spawnTimerService(system: ActorSpawner, args: TimerServiceStartArgs, options: SpawnPlacement = {}): Promise<ActorRef<TimerServiceMessage>> {
  return system.spawn<TimerServiceMessage, TimerServiceStartArgs>({
    name: options.name ?? 'timer-service',
    behavior: options.behavior ?? { module: new URL('./timer-service.ts', import.meta.url).href, export: 'timerService' },
    args,
    pool: options.pool ?? 'store',
  });
}
