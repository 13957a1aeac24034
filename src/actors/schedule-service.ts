/**
 * The schedule service: RocketMQ's ScheduleMessageService (the 4.x delay levels, kept in 5.x) as one
 * actor on the `store` pool, beside the commit-log-flusher: RocketMQ runs it on its own timer threads
 * next to the store, and it does nothing but read the store and write back into it. It never touches
 * the network, so keeping it off the admin pool keeps admin requests from waiting behind its reads.
 *
 * Write side (used by the send processor, RocketMQ's HookUtils.handleScheduleMessage /
 * transformDelayLevelMessage): a message whose DELAY property is a level > 0, and which is not part of a
 * transaction (or is a commit), is stored in SCHEDULE_TOPIC_XXXX, queue `level - 1`, with its real topic
 * and queue kept in the REAL_TOPIC / REAL_QID properties; a level above the last is capped to the last.
 *
 * Read side (this actor). Every pollIntervalMs (RocketMQ's DELAY_FOR_A_WHILE, 100 ms) it reads each
 * level's queue from its offset with the writer's `get` (at most batchMax entries per read). A message
 * is due at store time + the level's delay (the ConsumeQueue's tagsCode holds the same number). Due
 * messages are re-put, in queue order, into REAL_TOPIC / REAL_QID with DELAY and the timer properties
 * removed (RocketMQ's messageTimeUp; REAL_TOPIC and REAL_QID stay, as RocketMQ leaves them); the first
 * message not yet due ends the read, since a level's queue is in store-time order. A read whose batch was
 * all delivered reads again at once, so a backlog drains at the writer's pace, one bounded batch per ask.
 * RocketMQ polls too; arrival notices would only help the first read after a put, which is never due.
 *
 * Never early: a message is re-put only when the clock has passed its deliver time. The one exception is
 * RocketMQ's correctDeliverTimestamp: a deliver time more than one delay ahead of now means the store
 * time lies in the future (the wall clock was stepped back), and the message goes at once rather than
 * holding its level for as long as the clock moved.
 *
 * Offsets and crashes (at-least-once). The next offset of each level moves in memory once its re-put
 * was stored. It is written to config/delayOffset.json (RocketMQ's file, offsetTable {level: offset})
 * every flushDelayOffsetIntervalMs, and then only as far as re-puts the writer reports durable (its
 * durableOffset covers their bytes): a crash or power loss may deliver a message twice, never lose one.
 * A re-put the store refuses for good (MESSAGE_ILLEGAL, no REAL_TOPIC) is logged and skipped, as
 * RocketMQ skips a message whose REAL_QID does not parse; a transient refusal (disk full, busy) retries
 * the same message on the next poll. On start, an offset outside its queue moves to the queue's end the
 * store reports (RocketMQ's correctDelayOffset).
 *
 * Roles. RocketMQ runs the service only on a master (changeScheduleServiceStatus). Ours runs on every
 * broker and learns the role from each read's answer (the writer's, as it was when it served the read):
 * while it is SLAVE a read delivers nothing and corrects nothing, it only watches for a promotion. On a
 * slave, slave-synchronize tells `reloadOffsets` after each round that synced the master's delay offsets
 * into delayOffset.json (RocketMQ's loadWhenSyncDelayOffset): the levels the file names take its offsets
 * (others keep theirs), reads and re-puts in flight are dropped, and a promoted broker resumes from the
 * master's last synced offsets rather than those it loaded at start. Once a read has shown this broker
 * master, `reloadOffsets` is refused: its own offsets are newer than any master's it could sync.
 */
import { z } from 'zod';
import type { ActorContext, ActorRef, ActorSpawner, Behavior, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { MessageConst } from '../net/remoting/message-batch.ts';
import { isValidTopicName } from '../storage/consume-queue.ts';
import {
  MessageSysFlag,
  NAME_VALUE_SEPARATOR,
  PROPERTY_SEPARATOR,
  type RecordView,
  type SocketAddress,
  decodeRecord,
} from '../storage/message-record.ts';
import {
  encodePut,
  isPutRefusal,
  type EncodedPut,
  type PutMessageInput,
  type PutMessageResult,
  type PutMessageStatus,
  STORED_PUT_STATUSES,
} from '../storage/message-store.ts';
import { JsonConfigFile, MetadataError, dataVersionSchema, newDataVersion, nextDataVersion, storePaths, type DataVersion } from '../storage/metadata-store.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { SCHEDULE_TOPIC } from '../storage/tag-hash.ts';
import { RMQ_SYS_TRANS_HALF_TOPIC } from '../storage/transaction-message.ts';
import type { BrokerProcessorArgs } from './broker-context.ts';
import type { BrokerRole, CommitLogWriterMessage, CommitLogWriterStats, GetAnswer } from './commit-log-writer.ts';

// ---------------------------------------------------------------------------------------------------
// The write side: delay levels on the way into the store (HookUtils.handleScheduleMessage)


const INT_SYNTAX = /^[+-]?\d+$/;

/** Java's Integer.parseInt: the int, or undefined for text it would throw on. */
export function parseJavaInt(text: string): number | undefined {
  if (!INT_SYNTAX.test(text)) return undefined;
  const value = Number(text);
  return Number.isInteger(value) && value >= -0x8000_0000 && value <= 0x7fff_ffff ? value : undefined;
}

/** Where a message goes after the delay hook, or why it cannot be stored. */
export type DelayDestination =
  | { readonly ok: true; readonly topic: string; readonly queueId: number; readonly delayLevel: number }
  | { readonly ok: false; readonly reason: 'badDelayLevel'; readonly remark: string };

/**
 * The delay-level part of RocketMQ's handleScheduleMessage for one message about to be stored in `topic` /
 * `queueId`: moves a delay-level message to SCHEDULE_TOPIC_XXXX (updating `properties` in place:
 * REAL_TOPIC, REAL_QID, a capped DELAY, timer properties cleared) and leaves anything else where it was.
 * Timer properties are timer-hook.ts's applyTimer's, which the send path runs first.
 */
export function applyDelayLevel(
  properties: Map<string, string>,
  topic: string,
  queueId: number,
  sysFlag: number,
  delayLevelsCount: number,
): DelayDestination {
  assert(Number.isInteger(delayLevelsCount) && delayLevelsCount >= 1, 'at least one delay level');
  const transaction = sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
  if (transaction !== MessageSysFlag.TRANSACTION_NOT_TYPE && transaction !== MessageSysFlag.TRANSACTION_COMMIT_TYPE) {
    return { ok: true, topic, queueId, delayLevel: 0 };
  }
  const text = properties.get(MessageConst.PROPERTY_DELAY_TIME_LEVEL);
  const level = text === undefined ? 0 : parseJavaInt(text);
  if (level === undefined) {
    // Message.getDelayTimeLevel's Integer.parseInt throws; RocketMQ answers the exception as SYSTEM_ERROR.
    return { ok: false, reason: 'badDelayLevel', remark: `NumberFormatException: For input string: "${text}"` };
  }
  if (level > 0) {
    // checkIfTimerMessage: a delay level wins over the timer properties, which are dropped.
    properties.delete(MessageConst.PROPERTY_TIMER_DELIVER_MS);
    properties.delete(MessageConst.PROPERTY_TIMER_DELAY_SEC);
    properties.delete(MessageConst.PROPERTY_TIMER_DELAY_MS);
    const capped = Math.min(level, delayLevelsCount);
    if (capped !== level) properties.set(MessageConst.PROPERTY_DELAY_TIME_LEVEL, String(capped));
    properties.set(MessageConst.PROPERTY_REAL_TOPIC, topic);
    properties.set(MessageConst.PROPERTY_REAL_QUEUE_ID, String(queueId));
    return { ok: true, topic: SCHEDULE_TOPIC, queueId: capped - 1, delayLevel: capped };
  }
  return { ok: true, topic, queueId, delayLevel: 0 };
}

/**
 * Encodes properties as Java's messageProperties2String does: no checks. A value holding \u0001 (which
 * Java's decoder lets through) is written back as it came; the store's own checks judge the result.
 */
export function propertiesString(properties: ReadonlyMap<string, string>): string {
  let out = '';
  for (const [name, value] of properties) out += name + NAME_VALUE_SEPARATOR + value + PROPERTY_SEPARATOR;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The read side: messageTimeUp

/** RocketMQ's computeDeliverTimestamp and correctDeliverTimestamp (see the header). */
export function deliverTimeMs(storeTimestampMs: number, delayMs: number, nowMs: number): number {
  const deliverMs = storeTimestampMs + delayMs;
  return deliverMs > nowMs + delayMs ? nowMs : deliverMs;
}

/**
 * RocketMQ's messageTimeUp: the message to put back into its real topic and queue, or a reason it
 * cannot go anywhere (no or bad REAL_TOPIC / REAL_QID, or the transaction half topic).
 */
export function messageTimeUp(view: RecordView): PutMessageInput | { readonly skip: string } {
  const properties = view.propertiesMap();
  const topic = properties.get(MessageConst.PROPERTY_REAL_TOPIC);
  const queueText = properties.get(MessageConst.PROPERTY_REAL_QUEUE_ID);
  const queueId = queueText === undefined ? undefined : parseJavaInt(queueText);
  if (topic === undefined || !isValidTopicName(topic)) return { skip: `bad ${MessageConst.PROPERTY_REAL_TOPIC} ${JSON.stringify(topic)}` };
  if (queueId === undefined || queueId < 0) return { skip: `bad ${MessageConst.PROPERTY_REAL_QUEUE_ID} ${JSON.stringify(queueText)}` };
  if (topic === RMQ_SYS_TRANS_HALF_TOPIC) return { skip: `real topic is ${RMQ_SYS_TRANS_HALF_TOPIC}` };
  properties.delete(MessageConst.PROPERTY_DELAY_TIME_LEVEL);
  properties.delete(MessageConst.PROPERTY_TIMER_DELIVER_MS);
  properties.delete(MessageConst.PROPERTY_TIMER_DELAY_SEC);
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

// ---------------------------------------------------------------------------------------------------
// The actor

/** Defaults of the service's own knobs (RocketMQ's constants and MessageStoreConfig values). */
export const SCHEDULE_SERVICE_DEFAULTS = {
  /** ScheduleMessageService.DELAY_FOR_A_WHILE. */
  pollIntervalMs: 100,
  /** Entries one read takes (the writer caps it at maxTransferCountOnMessageInMemory). */
  batchMax: 32,
  /** MessageStoreConfig.flushDelayOffsetInterval. */
  flushDelayOffsetIntervalMs: 10_000,
  /** Asks to the writer; a put under SYNC_FLUSH waits for the disk. */
  askTimeoutMs: 10_000,
} as const;

/** Start arguments. */
export type ScheduleServiceArgs = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  /** messageDelayLevel in ms, level 1 first. */
  readonly delayLevelsMs: readonly number[];
  /** storePathRootDir: the offsets live in its config/delayOffset.json. */
  readonly storePathRootDir: string;
  /** The writer's store host (re-puts are encoded here, as the send processors encode theirs). */
  readonly storeHost: SocketAddress;
  readonly maxMessageSize: number;
  readonly pollIntervalMs?: number;
  readonly batchMax?: number;
  readonly flushDelayOffsetIntervalMs?: number;
  readonly askTimeoutMs?: number;
  /** Read only by behaviors built with a test file system. */
  readonly seam?: unknown;
};

/** What the behavior takes: its own args, or every broker processor's (read through scheduleServiceArgsOf). */
export type ScheduleServiceStartArgs = ScheduleServiceArgs | BrokerProcessorArgs;

/** The schedule service's args from the broker processors' args. */
export function scheduleServiceArgsOf(args: BrokerProcessorArgs, overrides: Partial<ScheduleServiceArgs> = {}): ScheduleServiceArgs {
  return {
    writer: args.refs.writer,
    delayLevelsMs: args.settings.delayLevelsMs,
    storePathRootDir: args.settings.storePathRootDir,
    storeHost: args.identity.storeHost,
    maxMessageSize: args.settings.maxMessageSize,
    ...overrides,
  };
}

/** What one level's queue reports in `stats`. */
export type ScheduleLevelStats = {
  readonly level: number;
  readonly delayMs: number;
  /** Next queue offset to look at. */
  readonly offset: number;
  /** Offset written (or ready to be written) to delayOffset.json: every re-put before it is durable. */
  readonly confirmedOffset: number;
  readonly busy: boolean;
};

/** The answer to `stats`. */
export type ScheduleServiceStats = {
  readonly polls: number;
  readonly delivered: number;
  readonly skipped: number;
  readonly failedPuts: number;
  readonly persists: number;
  /** The role the last read answer carried; null before the first. */
  readonly role: BrokerRole | null;
  /** `reloadOffsets` applied, and refused because this broker has been master. */
  readonly reloads: number;
  readonly reloadsRefused: number;
  readonly levels: readonly ScheduleLevelStats[];
};

/** One message of a read: re-put it, or pass over it. */
type Delivery = { readonly queueOffset: number; readonly put: EncodedPut | null };

/** What a read decided, carried to the put's answer. */
type Plan = {
  readonly deliveries: readonly Delivery[];
  /** Where the level's offset goes when every delivery was stored. */
  readonly nextOffset: number;
  /** Everything read was due and the queue holds more: read on without waiting for the next poll. */
  readonly readAgain: boolean;
};

/** Told by slave-synchronize after a round synced the master's delay offsets (see the file comment). */
export type ScheduleReloadMessage = { readonly type: 'reloadOffsets' };

/**
 * Messages: timers, the writer's answers (piped, tagged with the epoch: the incarnation, moved on by each
 * reload), `reloadOffsets` and `stats` (ask).
 */
export type ScheduleServiceMessage =
  | { readonly type: 'poll' }
  | { readonly type: 'pollLevel'; readonly epoch: number; readonly level: number }
  | { readonly type: 'levelRead'; readonly epoch: number; readonly level: number; readonly result: PipeResult<GetAnswer> }
  | { readonly type: 'levelPut'; readonly epoch: number; readonly level: number; readonly plan: Plan; readonly result: PipeResult<PutMessageResult[]> }
  | { readonly type: 'persist' }
  | { readonly type: 'durable'; readonly epoch: number; readonly result: PipeResult<CommitLogWriterStats> }
  | ScheduleReloadMessage
  | { readonly type: 'stats' };

type Unconfirmed = { readonly offset: number; readonly endOffset: number };

type LevelState = {
  readonly level: number;
  readonly delayMs: number;
  offset: number;
  confirmedOffset: number;
  busy: boolean;
  /** Offsets reached by re-puts not yet known durable, oldest first (bounded by UNCONFIRMED_MAX). */
  readonly unconfirmed: Unconfirmed[];
};

type Settings = Required<Omit<ScheduleServiceArgs, 'seam'>>;

type State = {
  readonly settings: Settings;
  /** Tags the answers this incarnation waits for; moved on by every reload, which drops those in flight. */
  epoch: number;
  /** The role the last read answer carried; undefined before the first. */
  role: BrokerRole | undefined;
  reloads: number;
  reloadsRefused: number;
  readonly file: JsonConfigFile<DelayOffsetDocument>;
  readonly levels: LevelState[];
  dataVersion: DataVersion;
  /** The offsets last written, to skip writes that change nothing. */
  writtenOffsets: string;
  polls: number;
  delivered: number;
  skipped: number;
  failedPuts: number;
  persists: number;
};

type Ctx = ActorContext<ScheduleServiceMessage>;

const UNCONFIRMED_MAX = 64;
/** Epochs wrap below this. */
const EPOCH_MAX = 0x7fff_ffff;
const TIMER_POLL = 'poll';
const TIMER_PERSIST = 'persist';

/** Statuses after which the message is in the log (FLUSH_DISK_TIMEOUT: stored, the sync was late). */
const STORED = STORED_PUT_STATUSES;
/** Statuses that will not change on a retry: the message is skipped. */
const REFUSED_FOR_GOOD: ReadonlySet<PutMessageStatus> = new Set<PutMessageStatus>(['MESSAGE_ILLEGAL', 'PROPERTIES_SIZE_EXCEEDED']);

/** config/delayOffset.json (DelayOffsetSerializeWrapper); fastjson's unquoted integer keys read too. */
const delayOffsetSchema = z.object({
  offsetTable: z.record(z.string(), z.int().min(0)).default(() => ({})),
  dataVersion: dataVersionSchema.optional(),
});

type DelayOffsetDocument = z.output<typeof delayOffsetSchema>;

function settingsOf(args: ScheduleServiceArgs): Settings {
  const settings: Settings = {
    writer: args.writer,
    delayLevelsMs: args.delayLevelsMs,
    storePathRootDir: args.storePathRootDir,
    storeHost: args.storeHost,
    maxMessageSize: args.maxMessageSize,
    pollIntervalMs: args.pollIntervalMs ?? SCHEDULE_SERVICE_DEFAULTS.pollIntervalMs,
    batchMax: args.batchMax ?? SCHEDULE_SERVICE_DEFAULTS.batchMax,
    flushDelayOffsetIntervalMs: args.flushDelayOffsetIntervalMs ?? SCHEDULE_SERVICE_DEFAULTS.flushDelayOffsetIntervalMs,
    askTimeoutMs: args.askTimeoutMs ?? SCHEDULE_SERVICE_DEFAULTS.askTimeoutMs,
  };
  assert(settings.delayLevelsMs.length >= 1, 'at least one delay level');
  for (const delayMs of settings.delayLevelsMs) assert(Number.isSafeInteger(delayMs) && delayMs >= 0, `bad delay ${delayMs}`);
  for (const key of ['pollIntervalMs', 'batchMax', 'flushDelayOffsetIntervalMs', 'askTimeoutMs', 'maxMessageSize'] as const) {
    assert(Number.isSafeInteger(settings[key]) && settings[key] > 0, () => `${key} is a positive integer`);
  }
  return settings;
}

/** Offsets from the file, by level; levels the config no longer has are dropped, as RocketMQ ignores them. */
function loadOffsets(file: JsonConfigFile<DelayOffsetDocument>, levels: number, ctx: Ctx): { offsets: Map<number, number>; dataVersion: DataVersion | undefined } {
  const loaded = file.load();
  const offsets = new Map<number, number>();
  for (const [key, offset] of Object.entries(loaded.value?.offsetTable ?? {})) {
    const level = parseJavaInt(key);
    if (level !== undefined && level >= 1 && level <= levels) offsets.set(level, offset);
  }
  ctx.log.info({ path: file.path, source: loaded.source, levels: Object.fromEntries(offsets) }, 'delay offsets loaded');
  return { offsets, dataVersion: loaded.value?.dataVersion };
}

function offsetTableOf(state: State): Record<string, number> {
  const table: Record<string, number> = {};
  for (const level of state.levels) table[String(level.level)] = level.confirmedOffset;
  return table;
}

/** Writes the confirmed offsets when they changed (fsync'd, atomically, with a .bak). */
function persist(state: State, ctx: Ctx): void {
  const offsetTable = offsetTableOf(state);
  const text = JSON.stringify(offsetTable);
  if (text === state.writtenOffsets) return;
  state.dataVersion = nextDataVersion(state.dataVersion, ctx.clock.nowMs());
  state.file.persist({ offsetTable, dataVersion: state.dataVersion });
  state.writtenOffsets = text;
  state.persists++;
}

// ------------------------------------------------------------------------------------------ reading

function readLevel(state: State, level: LevelState, ctx: Ctx): void {
  if (level.busy) return;
  level.busy = true;
  const request: CommitLogWriterMessage = {
    type: 'get',
    topic: SCHEDULE_TOPIC,
    queueId: level.level - 1,
    queueOffset: level.offset,
    maxMsgNums: state.settings.batchMax,
  };
  const { epoch } = state;
  const answer = ctx.ask<CommitLogWriterMessage, GetAnswer>(state.settings.writer, request, state.settings.askTimeoutMs);
  ctx.pipeToSelf(answer, (result) => ({ type: 'levelRead', epoch, level: level.level, result }));
}

/** Moves a level's offset and remembers what must be durable before the new offset may be written. */
function advance(level: LevelState, offset: number, endOffset: number): void {
  assert(offset >= level.offset || endOffset === 0, () => `level ${level.level} moves back from ${level.offset} to ${offset}`);
  level.offset = offset;
  level.unconfirmed.push({ offset, endOffset });
  if (level.unconfirmed.length > UNCONFIRMED_MAX) {
    // Merging the two oldest waits for the later one's bytes: later confirmation, never an early one.
    const [first, second] = level.unconfirmed.splice(0, 2) as [Unconfirmed, Unconfirmed];
    level.unconfirmed.unshift({ offset: second.offset, endOffset: Math.max(first.endOffset, second.endOffset) });
  }
}

/** A read that found no message: follow the store's correction of an offset outside the queue. */
function onEmptyRead(level: LevelState, got: GetAnswer, ctx: Ctx): void {
  const corrects =
    got.status === 'OFFSET_TOO_SMALL' ||
    got.status === 'OFFSET_OVERFLOW_BADLY' ||
    (got.status === 'NO_MESSAGE_IN_QUEUE' && level.offset > 0) ||
    ((got.status === 'NO_MATCHED_MESSAGE' || got.status === 'MESSAGE_WAS_REMOVING') && got.nextBeginOffset > level.offset);
  if (!corrects || got.nextBeginOffset === level.offset) return;
  ctx.log.warn({ level: level.level, offset: level.offset, next: got.nextBeginOffset, status: got.status }, 'schedule offset corrected');
  advance(level, got.nextBeginOffset, 0);
}

/** Decides, in queue order, which read messages are due, and builds their re-puts. */
function planDeliveries(state: State, level: LevelState, got: GetAnswer, ctx: Ctx): Plan {
  const nowMs = ctx.clock.nowMs();
  const deliveries: Delivery[] = [];
  for (const message of got.messages) {
    const view = decodeRecord(message.record, 0);
    if (deliverTimeMs(view.storeTimestampMs, level.delayMs, nowMs) > nowMs) {
      return { deliveries, nextOffset: message.queueOffset, readAgain: false };
    }
    deliveries.push({ queueOffset: message.queueOffset, put: rePut(state, view, message.physicalOffset, nowMs, ctx) });
  }
  // Everything read was due: when the queue holds more, read on at once rather than a poll later.
  return { deliveries, nextOffset: got.nextBeginOffset, readAgain: got.nextBeginOffset < got.maxOffset };
}

/** The encoded re-put of a due message, or null (logged) when it cannot be delivered anywhere. */
function rePut(state: State, view: RecordView, physicalOffset: number, nowMs: number, ctx: Ctx): EncodedPut | null {
  const input = messageTimeUp(view);
  if ('skip' in input) {
    ctx.log.error({ physicalOffset, reason: input.skip }, 'delayed message has nowhere to go; skipped');
    return null;
  }
  const encoded = encodePut(input, state.settings.storeHost, state.settings.maxMessageSize, nowMs);
  if (isPutRefusal(encoded)) {
    ctx.log.error({ physicalOffset, status: encoded.status, remark: encoded.remark }, 'delayed message cannot be stored; skipped');
    return null;
  }
  return encoded;
}

function onLevelRead(state: State, level: LevelState, result: PipeResult<GetAnswer>, ctx: Ctx): void {
  if (!result.ok) {
    level.busy = false;
    ctx.log.warn({ level: level.level, err: describeError(result.error) }, 'schedule queue read failed; retrying at the next poll');
    return;
  }
  const got = result.value;
  if (got.role !== state.role) {
    const what = got.role === 'SLAVE' ? 'schedule service idle: this broker is a slave' : 'schedule service delivering: this broker is master';
    ctx.log.info({ from: state.role ?? null, to: got.role }, what);
  }
  state.role = got.role;
  if (got.role === 'SLAVE') {
    // A slave delivers nothing (RocketMQ stops the service): its offsets come from the master's.
    level.busy = false;
    return;
  }
  if (got.messages.length === 0) {
    level.busy = false;
    onEmptyRead(level, got, ctx);
    return;
  }
  const plan = planDeliveries(state, level, got, ctx);
  const puts = plan.deliveries.flatMap((delivery) => (delivery.put === null ? [] : [delivery.put]));
  if (puts.length === 0) {
    level.busy = false;
    state.skipped += plan.deliveries.length;
    if (plan.nextOffset !== level.offset) advance(level, plan.nextOffset, 0);
    if (plan.readAgain && plan.deliveries.length > 0) ctx.tell(ctx.self, { type: 'pollLevel', epoch: state.epoch, level: level.level });
    return;
  }
  const { epoch } = state;
  const answer = ctx.ask<CommitLogWriterMessage, PutMessageResult[]>(state.settings.writer, { type: 'putEncoded', puts }, state.settings.askTimeoutMs);
  ctx.pipeToSelf(answer, (putResult) => ({ type: 'levelPut', epoch, level: level.level, plan, result: putResult }));
}

/** Applies the writer's answers in order; stops at the first transient failure, to retry it later. */
function onLevelPut(state: State, level: LevelState, plan: Plan, result: PipeResult<PutMessageResult[]>, ctx: Ctx): void {
  level.busy = false;
  if (!result.ok) {
    state.failedPuts++;
    ctx.log.warn({ level: level.level, err: describeError(result.error) }, 'delayed re-put failed; retrying at the next poll');
    return;
  }
  const results = result.value;
  let next = level.offset;
  let endOffset = 0;
  let answered = 0;
  for (const delivery of plan.deliveries) {
    if (delivery.put === null) {
      state.skipped++;
      next = delivery.queueOffset + 1;
      continue;
    }
    const put = results[answered++];
    assert(put !== undefined, 'the writer answers every put');
    if (STORED.has(put.status)) {
      state.delivered++;
      endOffset = Math.max(endOffset, put.physicalOffset + put.wroteBytes);
    } else if (REFUSED_FOR_GOOD.has(put.status)) {
      state.skipped++;
      ctx.log.error({ level: level.level, queueOffset: delivery.queueOffset, status: put.status, remark: put.remark }, 'delayed message refused by the store; skipped');
    } else {
      state.failedPuts++;
      ctx.log.warn({ level: level.level, queueOffset: delivery.queueOffset, status: put.status, remark: put.remark }, 'delayed re-put refused; retrying at the next poll');
      if (next !== level.offset || endOffset > 0) advance(level, next, endOffset);
      return;
    }
    next = delivery.queueOffset + 1;
  }
  advance(level, plan.nextOffset, endOffset);
  if (plan.readAgain) ctx.tell(ctx.self, { type: 'pollLevel', epoch: state.epoch, level: level.level });
}

// ------------------------------------------------------------------------------------------ durability

function askDurable(state: State, ctx: Ctx): void {
  const { epoch } = state;
  const answer = ctx.ask<CommitLogWriterMessage, CommitLogWriterStats>(state.settings.writer, { type: 'stats' }, state.settings.askTimeoutMs);
  ctx.pipeToSelf(answer, (result) => ({ type: 'durable', epoch, result }));
}

/** Confirms the offsets whose re-puts the durable offset now covers, and writes them. */
function onDurable(state: State, result: PipeResult<CommitLogWriterStats>, ctx: Ctx): void {
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'writer stats unavailable; delay offsets not persisted this time');
    return;
  }
  const durableOffset = result.value.durableOffset;
  for (const level of state.levels) {
    while (level.unconfirmed.length > 0 && level.unconfirmed[0]!.endOffset <= durableOffset) {
      level.confirmedOffset = level.unconfirmed.shift()!.offset;
    }
  }
  persist(state, ctx);
}

// ------------------------------------------------------------------------------------------ reloading

/** loadWhenSyncDelayOffset: takes the offsets slave-synchronize wrote, unless this broker has been master. */
function reloadOffsets(state: State, ctx: Ctx): void {
  if (state.role !== undefined && state.role !== 'SLAVE') {
    state.reloadsRefused++;
    ctx.log.warn({ role: state.role }, 'synced delay offsets not reloaded: this broker delivers as master');
    return;
  }
  let loaded: ReturnType<typeof loadOffsets>;
  try {
    loaded = loadOffsets(state.file, state.levels.length, ctx);
  } catch (error) {
    if (!(error instanceof MetadataError)) throw error;
    ctx.log.error({ err: describeError(error) }, 'synced delay offsets not readable; keeping the current ones');
    return;
  }
  // Answers to reads and re-puts asked before the reload concern the old offsets: they are dropped.
  state.epoch = (state.epoch + 1) % EPOCH_MAX;
  for (const level of state.levels) {
    level.busy = false;
    const offset = loaded.offsets.get(level.level);
    if (offset === undefined) continue;
    level.offset = offset;
    level.confirmedOffset = offset;
    level.unconfirmed.length = 0;
  }
  if (loaded.dataVersion !== undefined) state.dataVersion = loaded.dataVersion;
  // The file holds these offsets now: the next persist writes only what moves after this.
  state.writtenOffsets = JSON.stringify(offsetTableOf(state));
  state.reloads++;
}

function statsOf(state: State): ScheduleServiceStats {
  return {
    polls: state.polls,
    delivered: state.delivered,
    skipped: state.skipped,
    failedPuts: state.failedPuts,
    persists: state.persists,
    role: state.role ?? null,
    reloads: state.reloads,
    reloadsRefused: state.reloadsRefused,
    levels: state.levels.map((level) => ({
      level: level.level,
      delayMs: level.delayMs,
      offset: level.offset,
      confirmedOffset: level.confirmedOffset,
      busy: level.busy,
    })),
  };
}

function levelOf(state: State, level: number): LevelState {
  const found = state.levels[level - 1];
  assert(found !== undefined && found.level === level, () => `no delay level ${level}`);
  return found;
}

function handle(state: State, message: ScheduleServiceMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'poll':
      state.polls++;
      for (const level of state.levels) readLevel(state, level, ctx);
      return;
    case 'pollLevel':
      if (message.epoch === state.epoch) readLevel(state, levelOf(state, message.level), ctx);
      return;
    case 'levelRead':
      if (message.epoch === state.epoch) onLevelRead(state, levelOf(state, message.level), message.result, ctx);
      return;
    case 'levelPut':
      if (message.epoch === state.epoch) onLevelPut(state, levelOf(state, message.level), message.plan, message.result, ctx);
      return;
    case 'persist':
      return askDurable(state, ctx);
    case 'durable':
      if (message.epoch === state.epoch) onDurable(state, message.result, ctx);
      return;
    case 'reloadOffsets':
      return reloadOffsets(state, ctx);
    case 'stats':
      return ctx.reply(statsOf(state));
    default:
      return assertNever(message, 'schedule service message');
  }
}

/** Builds the behavior over the file system `storageFsOf` returns (tests inject faults here). */
export function scheduleServiceBehavior(storageFsOf: (args: ScheduleServiceArgs) => StorageFs): Behavior<State, ScheduleServiceMessage, ScheduleServiceStartArgs> {
  return {
    init(startArgs, ctx) {
      const args = 'refs' in startArgs ? scheduleServiceArgsOf(startArgs) : startArgs;
      const settings = settingsOf(args);
      const file = new JsonConfigFile({ fs: storageFsOf(args), path: storePaths(settings.storePathRootDir).delayOffsetFile, schema: delayOffsetSchema });
      const loaded = loadOffsets(file, settings.delayLevelsMs.length, ctx);
      const levels = settings.delayLevelsMs.map((delayMs, index): LevelState => {
        const offset = loaded.offsets.get(index + 1) ?? 0;
        return { level: index + 1, delayMs, offset, confirmedOffset: offset, busy: false, unconfirmed: [] };
      });
      ctx.timers.startPeriodic(TIMER_POLL, { type: 'poll' }, settings.pollIntervalMs);
      ctx.timers.startPeriodic(TIMER_PERSIST, { type: 'persist' }, settings.flushDelayOffsetIntervalMs);
      const epoch = Math.floor(ctx.random() * EPOCH_MAX);
      const dataVersion = loaded.dataVersion ?? newDataVersion(ctx.clock.nowMs());
      const state: State = {
        settings, epoch, role: undefined, reloads: 0, reloadsRefused: 0, file, levels, dataVersion, writtenOffsets: '',
        polls: 0, delivered: 0, skipped: 0, failedPuts: 0, persists: 0,
      };
      state.writtenOffsets = JSON.stringify(offsetTableOf(state));
      return state;
    },

    receive(state, message, ctx) {
      handle(state, message, ctx);
      return state;
    },

    onStop(state, ctx) {
      // Only what is known durable: a later start redelivers the rest (at-least-once).
      try {
        persist(state, ctx);
      } catch (error) {
        ctx.log.error({ err: describeError(error) }, 'delay offsets not persisted at stop; the next start redelivers');
      }
    },
  };
}

/** The schedule service over the real file system. */
export const scheduleService = scheduleServiceBehavior(() => nodeStorageFs);

/** Spawns the schedule service (one per broker). */
export function spawnScheduleService(
  system: ActorSpawner,
  args: ScheduleServiceArgs,
  options: SpawnPlacement = {},
): Promise<ActorRef<ScheduleServiceMessage>> {
  return system.spawn<ScheduleServiceMessage, ScheduleServiceArgs>({
    name: options.name ?? 'schedule-service',
    behavior: options.behavior ?? { module: new URL('./schedule-service.ts', import.meta.url).href, export: 'scheduleService' },
    args,
    pool: options.pool ?? 'store',
  });
}
