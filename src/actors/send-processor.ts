/**
 * The send processor: RocketMQ's SendMessageProcessor (with AbstractSendMessageProcessor's msgCheck and
 * consumerSendMsgBack) as an actor. Several run on the `send` pool, one per thread; acceptors spread
 * SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) and CONSUMER_SEND_MSG_BACK (36)
 * over them. Each keeps no durable state: a short-lived cache of the topic and group configs
 * broker-admin answered, and the requests it has in flight.
 *
 * A send, step by step (each arrow an ask; the reply comes back through pipeToSelf):
 *   1. parse the header (a bad one is SYSTEM_ERROR, as RocketMQ answers a header exception); check the
 *      topic name (INVALID_PARAMETER) and the topics clients may not send to (NO_PERMISSION);
 *   2. -> broker-admin `topicForSend` (auto-creates, or refuses with its code), cached topicCacheTtlMs;
 *      concurrent sends to one topic share one ask, and keep their order;
 *   3. check the queue id (a negative one is picked at random among the write queues, as RocketMQ
 *      does), the topic's write permission, and, for %RETRY% topics, -> `groupForRetry`: a message
 *      reconsumed more than the group allows goes to %DLQ%group instead (handleRetryAndDLQ);
 *   4. build the stored properties as RocketMQ does (MSG_REGION, TRACE_ON, UNIQ_KEY when missing,
 *      CLUSTER; POP_CK removed), move a delay-level message to SCHEDULE_TOPIC_XXXX (schedule-service.ts),
 *      and encode the record here with encodePut, so CRC and encoding run on the send pool;
 *   5. -> writer `putEncoded`, and answer with SendMessageResponseHeader. A SEND_BATCH_MESSAGE is one
 *      MessageExtBatch, as in RocketMQ 5: its messages (each with its own properties, no inner batch)
 *      are encoded back to back here with encodeBatch and copied into the writer's append region from
 *      this thread (region-sender.ts; the writer's `putEncodedBatch`, bytes in the message, when no
 *      region is granted), given consecutive queue offsets, and answered with one result (msgIds joined).
 * CONSUMER_SEND_MSG_BACK: -> `groupForRetry`, -> writer `readAt` (the original), then the message goes
 * to %RETRY%group through delay level 3 + reconsumeTimes (or the one asked for), or to %DLQ%group once
 * reconsumeTimes reaches the maximum.
 *
 * Bounds. At most inFlightMax requests are between arrival and answer; past it a request is answered at
 * once with SYSTEM_BUSY and RocketMQ's "[PCBUSY_CLEAN_QUEUE]" remark, which clients treat as flow
 * control. The caches hold at most cacheEntriesMax keys each. Asks that fail for a full mailbox answer
 * SYSTEM_BUSY; other ask failures answer SYSTEM_ERROR.
 *
 * Deliberate differences from RocketMQ 5.3: a topic without write permission is refused with NO_PERMISSION
 * (RocketMQ relies on clients skipping such queues); a half (prepared transaction) message is stored as
 * it comes, in its own topic, for the transaction service to take over (no RMQ_SYS_TRANS_HALF_TOPIC);
 * the ordered-consumer shortcut of handleRetryAndDLQ (straight to the DLQ while a rebalance lock is held)
 * is not made; a timer message (TIMER_DELIVER_MS and friends) is refused as
 * RocketMQ refuses it with timerWheelEnable=false.
 */
import { isIP, isIPv4 } from 'node:net';
import type { ActorContext, Behavior, PipeResult } from '../runtime/actor.ts';
import { assert, assertNever, AssertionError } from '../runtime/assert.ts';
import { RuntimeError, RuntimeErrorCode } from '../runtime/errors.ts';
import {
  ConsumerSendMsgBackRequestHeader,
  HeaderError,
  headerErrorResponse,
  parseSendMessageRequest,
  SendMessageResponseHeader,
  type ParsedHeader,
  type SendMessageRequest,
} from '../net/remoting/broker-headers.ts';
import { decodeMessageBatch, MessageBatchError, MessageConst, UniqIdGenerator } from '../net/remoting/message-batch.ts';
import { MQVersionOrdinal, PermName } from '../net/remoting/namesrv-protocol.ts';
import { createResponse, isOneway, RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';
import {
  decodeMessageProperties,
  decodeRecord,
  hostBytesOf,
  MessageSysFlag,
  offsetMessageId,
  type RecordView,
  type SocketAddress,
  writeHost,
} from '../storage/message-record.ts';
import { RegionSender } from './region-sender.ts';
import { encodeBatch, encodePut, isPutRefusal, type EncodedPut, type PutMessageInput, type PutMessageResult, type PutMessageStatus } from '../storage/message-store.ts';
import type { SubscriptionGroupConfig, TopicConfig } from '../storage/metadata-store.ts';
import {
  AUTO_CREATE_TOPIC_KEY_TOPIC,
  DLQ_GROUP_TOPIC_PREFIX,
  dlqTopicOf,
  retryTopicOf,
  RETRY_GROUP_TOPIC_PREFIX,
  SCHEDULE_TOPIC,
  type BrokerAdminMessage,
  type BrokerProcessorArgs,
  type GroupForRetryAnswer,
  type TopicForSendAnswer,
} from './broker-context.ts';
import type { CommitLogWriterMessage } from './commit-log-writer.ts';
import type { RemotingChannel, RemotingRequestMessage } from './remoting-routes.ts';
import { applyDelayLevel, parseJavaInt, propertiesString } from './schedule-service.ts';
import { applyTimer, checkRecall, recallHandleFor, recallMarker, recallResponseFor } from './timer-hook.ts';
import { toHalfMessage } from '../storage/transaction-message.ts';

// ---------------------------------------------------------------------------------------------------
// Constants and args

/** Defaults of the processor's bounds and timeouts. */
export const SEND_PROCESSOR_DEFAULTS = {
  /** Requests between arrival and answer, per processor. */
  inFlightMax: 4096,
  /** How long an answered topic or group config is reused without asking broker-admin again. */
  topicCacheTtlMs: 1_000,
  /** Keys each cache holds at most. */
  cacheEntriesMax: 4096,
  /** Asks to broker-admin. */
  lookupTimeoutMs: 3_000,
  /** Asks to the writer: RocketMQ's waitForPutResult bound, max(syncFlushTimeout, slaveTimeout) + 5 s. */
  putTimeoutMs: 8_000,
} as const;

/** The processor's own knobs. */
export type SendProcessorTuning = { -readonly [K in keyof typeof SEND_PROCESSOR_DEFAULTS]: number };

/** Start arguments: every broker processor's, and optional tuning. */
export type SendProcessorArgs = BrokerProcessorArgs & { readonly tuning?: Partial<SendProcessorTuning> };

/** BrokerConfig.regionId and traceOn defaults, answered in MSG_REGION / TRACE_ON and stored with every message. */
export const BROKER_REGION_ID = 'DefaultRegion';
/** BrokerConfig.traceOn default. */
export const BROKER_TRACE_ON = true;

/** Topics clients may not send to (TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET). */
const NOT_ALLOWED_SEND_TOPICS: ReadonlySet<string> = new Set([
  SCHEDULE_TOPIC,
  'RMQ_SYS_TRANS_HALF_TOPIC',
  'RMQ_SYS_TRANS_OP_HALF_TOPIC',
  'TRANS_CHECK_MAX_TIME_TOPIC',
  'SELF_TEST_TOPIC',
  'OFFSET_MOVED_EVENT',
]);
const TOPIC_CHARS = /^[%|a-zA-Z0-9_-]+$/;
const TOPIC_MAX_LENGTH = 127;
const RETRY_OR_DLQ_TOPIC_MAX_LENGTH = 255;
/** Clients from this version on may send maxReconsumeTimes (MQVersion.Version.V3_4_9). */
const V3_4_9 = 121;
/** The reserved property a client must not set (SendMessageProcessor.clearReservedProperties). */
const PROPERTY_POP_CK = MessageConst.PROPERTY_POP_CK;
const UNKNOWN_HOST: SocketAddress = { address: '0.0.0.0', port: 0 };

// ---------------------------------------------------------------------------------------------------
// Messages and state

type Job = {
  readonly request: RemotingCommand;
  readonly channel: RemotingChannel;
};

type SendJob = Job & { readonly header: SendMessageRequest };

type SendBackHeader = ParsedHeader<typeof ConsumerSendMsgBackRequestHeader>;

type GroupOk = Extract<GroupForRetryAnswer, { ok: true }>;

/** What a successful put answers the client with. */
type PutReply =
  | { readonly kind: 'send'; readonly queueId: number; readonly transactionId: string | undefined; readonly recallHandle?: string }
  | { readonly kind: 'sendBack' }
  | { readonly kind: 'recall'; readonly msgId: string };

/**
 * Messages: requests from acceptors, and the answers of this processor's own asks. The latter are only
 * ever enqueued by pipeToSelf on this thread, so they carry plain references to the waiting request.
 */
export type SendProcessorMessage =
  | RemotingRequestMessage
  | { readonly type: 'topicAnswered'; readonly epoch: number; readonly topic: string; readonly result: PipeResult<TopicForSendAnswer> }
  | { readonly type: 'groupAnswered'; readonly epoch: number; readonly group: string; readonly result: PipeResult<GroupForRetryAnswer> }
  | { readonly type: 'originRead'; readonly epoch: number; readonly job: Job; readonly header: SendBackHeader; readonly group: GroupOk; readonly result: PipeResult<Uint8Array | null> }
  | { readonly type: 'putDone'; readonly epoch: number; readonly job: Job; readonly reply: PutReply; readonly result: PipeResult<PutMessageResult[]> };

type Ctx = ActorContext<SendProcessorMessage>;

/**
 * Answers looked up by key, reused for ttlMs; while a lookup runs, later callers for the same key wait
 * for it (in arrival order) instead of asking again. Entries are bounded; the oldest go first.
 */
class Lookups<A> {
  private readonly fresh = new Map<string, { readonly answer: A; readonly expiresMs: number }>();
  private readonly waiting = new Map<string, ((result: PipeResult<A>) => void)[]>();
  private readonly ttlMs: number;
  private readonly entriesMax: number;

  constructor(ttlMs: number, entriesMax: number) {
    assert(Number.isSafeInteger(ttlMs) && ttlMs >= 0 && Number.isSafeInteger(entriesMax) && entriesMax > 0, 'bad cache bounds');
    this.ttlMs = ttlMs;
    this.entriesMax = entriesMax;
  }

  /** Calls `then` now with a fresh answer, or after the running lookup, or starts one with `start`. */
  lookup(key: string, nowMs: number, then: (result: PipeResult<A>) => void, start: () => void): void {
    const queue = this.waiting.get(key);
    if (queue !== undefined) {
      queue.push(then);
      return;
    }
    const cached = this.fresh.get(key);
    if (cached !== undefined && cached.expiresMs > nowMs) {
      then({ ok: true, value: cached.answer });
      return;
    }
    this.waiting.set(key, [then]);
    start();
  }

  /** Hands a lookup's outcome to everyone waiting for it; keeps it when `keep` says so. */
  answered(key: string, result: PipeResult<A>, nowMs: number, keep: (answer: A) => boolean): void {
    const queue = this.waiting.get(key) ?? [];
    this.waiting.delete(key);
    if (result.ok && keep(result.value)) this.remember(key, result.value, nowMs);
    for (const then of queue) then(result);
  }

  private remember(key: string, answer: A, nowMs: number): void {
    this.fresh.delete(key);
    if (this.fresh.size >= this.entriesMax) {
      for (const [staleKey, entry] of this.fresh) if (entry.expiresMs <= nowMs) this.fresh.delete(staleKey);
      // Still full: drop the oldest insertion (Map order), which is the first to expire anyway.
      if (this.fresh.size >= this.entriesMax) this.fresh.delete(this.fresh.keys().next().value!);
    }
    this.fresh.set(key, { answer, expiresMs: nowMs + this.ttlMs });
  }
}

type State = {
  readonly args: BrokerProcessorArgs;
  readonly tuning: SendProcessorTuning;
  /** This incarnation: answers to asks of an earlier one are dropped. */
  readonly epoch: number;
  readonly topics: Lookups<TopicForSendAnswer>;
  readonly groups: Lookups<GroupForRetryAnswer>;
  readonly uniqIds: UniqIdGenerator;
  inFlight: number;
  /** How this processor's batches reach the writer's append region (region-sender.ts). */
  readonly region: RegionSender;
};

// ---------------------------------------------------------------------------------------------------
// Answers

/** Sends the response (never for a oneway request) and ends the request's in-flight slot. */
function finish(state: State, job: Job, response: RemotingCommand, ctx: Ctx): void {
  assert(state.inFlight > 0, 'a request finishes once');
  state.inFlight--;
  if (isOneway(job.request)) return;
  const { acceptor, connectionId } = job.channel;
  // An answer that says "stored" is checked against the master lease as it is written (master-lease.ts).
  const leaseGuarded = state.args.masterLease !== undefined && STORED_CODES.has(response.code);
  if (!ctx.tell(acceptor, { type: 'respond', connectionId, response, ...(leaseGuarded ? { leaseGuarded } : {}) })) {
    ctx.log.warn({ code: job.request.code, acceptor: acceptor.name }, 'acceptor did not take the answer');
  }
}

/** Response codes that tell the client its message is stored. */
const STORED_CODES: ReadonlySet<number> = new Set([ResponseCode.SUCCESS, ResponseCode.FLUSH_DISK_TIMEOUT, ResponseCode.FLUSH_SLAVE_TIMEOUT, ResponseCode.SLAVE_NOT_AVAILABLE]);

/** The extFields every send response carries (SendMessageProcessor.preSend). */
function regionFields(): Record<string, string> {
  return { MSG_REGION: BROKER_REGION_ID, TRACE_ON: String(BROKER_TRACE_ON) };
}

function sendError(job: Job, code: number, remark: string): RemotingCommand {
  const fields = job.request.code === RequestCode.CONSUMER_SEND_MSG_BACK ? {} : regionFields();
  return createResponse(job.request, code, remark, { extFields: fields });
}

/** The answer to a failed ask: SYSTEM_BUSY when the target was full, SYSTEM_ERROR otherwise. */
function askFailure(job: Job, what: string, error: unknown): RemotingCommand {
  if (error instanceof RuntimeError && (error.code === RuntimeErrorCode.mailboxFull || error.code === RuntimeErrorCode.askLimit)) {
    return sendError(job, ResponseCode.SYSTEM_BUSY, `[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while (${what}: ${error.message})`);
  }
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return sendError(job, ResponseCode.SYSTEM_ERROR, `${what} failed: ${text}`);
}

/** SendMessageProcessor.handlePutMessageResult's code and remark for a status that is not stored. */
function putFailure(status: PutMessageStatus, maxMessageSize: number): { code: number; remark: string } {
  switch (status) {
    case 'CREATE_MAPPED_FILE_FAILED':
      return { code: ResponseCode.SYSTEM_ERROR, remark: 'create mapped file failed, server is busy or broken.' };
    case 'MESSAGE_ILLEGAL':
    case 'PROPERTIES_SIZE_EXCEEDED':
      return {
        code: ResponseCode.MESSAGE_ILLEGAL,
        remark: `the message is illegal, maybe msg body or properties length not matched. msg body length limit ${maxMessageSize}B, msg properties length limit 32KB.`,
      };
    case 'SERVICE_NOT_AVAILABLE':
      return {
        code: ResponseCode.SERVICE_NOT_AVAILABLE,
        remark: 'service not available now. It may be caused by one of the following reasons: the broker\'s disk is full, messages are put to the slave, message store has been shut down, etc.',
      };
    case 'OS_PAGE_CACHE_BUSY':
      return { code: ResponseCode.SYSTEM_BUSY, remark: '[PC_SYNCHRONIZED]broker busy, start flow control for a while' };
    case 'LMQ_CONSUME_QUEUE_NUM_EXCEEDED':
      return {
        code: ResponseCode.SYSTEM_ERROR,
        remark:
          '[LMQ_CONSUME_QUEUE_NUM_EXCEEDED]broker config enableLmq and enableMultiDispatch, lmq consumeQueue num exceed ' +
          'maxLmqConsumeQueueNum config num, default limit 2w.',
      };
    case 'UNKNOWN_ERROR':
      return { code: ResponseCode.SYSTEM_ERROR, remark: 'UNKNOWN_ERROR' };
    case 'PUT_OK':
    case 'FLUSH_DISK_TIMEOUT':
    case 'FLUSH_SLAVE_TIMEOUT':
    case 'SLAVE_NOT_AVAILABLE':
      throw new AssertionError(`${status} is not a failure`);
    default:
      return assertNever(status, 'put status');
  }
}

/** Response code of a stored message: FLUSH_DISK_TIMEOUT still carries the send result. */
function storedCode(status: PutMessageStatus): number | undefined {
  switch (status) {
    case 'PUT_OK':
      return ResponseCode.SUCCESS;
    case 'FLUSH_DISK_TIMEOUT':
      return ResponseCode.FLUSH_DISK_TIMEOUT;
    case 'FLUSH_SLAVE_TIMEOUT':
      return ResponseCode.FLUSH_SLAVE_TIMEOUT;
    case 'SLAVE_NOT_AVAILABLE':
      return ResponseCode.SLAVE_NOT_AVAILABLE;
    default:
      return undefined;
  }
}

function onPutDone(state: State, job: Job, reply: PutReply, result: PipeResult<PutMessageResult[]>, ctx: Ctx): void {
  if (!result.ok) {
    const timedOut = result.error instanceof RuntimeError && result.error.code === RuntimeErrorCode.askTimeout;
    // waitForPutResult's timeout is UNKNOWN_ERROR in RocketMQ; the message may still have been stored.
    const response = timedOut ? sendError(job, ResponseCode.SYSTEM_ERROR, 'UNKNOWN_ERROR') : askFailure(job, 'commit log writer', result.error);
    return finish(state, job, response, ctx);
  }
  const results = result.value;
  assert(results.length > 0, 'a put answers at least one result');
  if (reply.kind === 'recall') {
    const answer = recallResponseFor(results[0]!.status, reply.msgId);
    const extFields = answer.msgId === undefined ? regionFields() : { msgId: answer.msgId, ...regionFields() };
    return finish(state, job, createResponse(job.request, answer.code, answer.remark, { extFields }), ctx);
  }
  if (reply.kind === 'sendBack') {
    // consumerSendMsgBack succeeds on PUT_OK only, and names the status otherwise.
    const failed = results.find((put) => put.status !== 'PUT_OK');
    const response = failed === undefined ? createResponse(job.request, ResponseCode.SUCCESS) : createResponse(job.request, ResponseCode.SYSTEM_ERROR, failed.status);
    return finish(state, job, response, ctx);
  }
  const failed = results.find((put) => storedCode(put.status) === undefined);
  if (failed !== undefined) {
    const { code, remark } = putFailure(failed.status, state.args.settings.maxMessageSize);
    return finish(state, job, sendError(job, code, remark), ctx);
  }
  // A batch answers its first non-SUCCESS stored code (RocketMQ answers per put; a batch is one put there).
  const code = results.map((put) => storedCode(put.status)!).find((stored) => stored !== ResponseCode.SUCCESS) ?? ResponseCode.SUCCESS;
  const header = SendMessageResponseHeader.format({
    msgId: results.map((put) => put.msgId).join(','),
    queueId: reply.queueId,
    queueOffset: results[0]!.queueOffset,
    ...(reply.transactionId === undefined ? {} : { transactionId: reply.transactionId }),
    ...(reply.recallHandle === undefined ? {} : { recallHandle: reply.recallHandle }),
  });
  finish(state, job, createResponse(job.request, code, undefined, { extFields: { ...header, ...regionFields() } }), ctx);
}

function put(state: State, job: Job, puts: EncodedPut[], reply: PutReply, ctx: Ctx): void {
  const { epoch } = state;
  const message: CommitLogWriterMessage = { type: 'putEncoded', puts };
  const answer = ctx.ask<CommitLogWriterMessage, PutMessageResult[]>(state.args.refs.writer, message, state.tuning.putTimeoutMs);
  ctx.pipeToSelf(answer, (result) => ({ type: 'putDone', epoch, job, reply, result }));
}

/** Encodes on this thread; a refusal is answered at once as the store's status would be. */
function encodeOrRefuse(state: State, job: Job, input: PutMessageInput, ctx: Ctx): EncodedPut | undefined {
  const { identity, settings } = state.args;
  const encoded = encodePut(input, identity.storeHost, settings.maxMessageSize, ctx.clock.nowMs());
  if (!isPutRefusal(encoded)) return encoded;
  if (job.request.code === RequestCode.CONSUMER_SEND_MSG_BACK) {
    finish(state, job, createResponse(job.request, ResponseCode.SYSTEM_ERROR, encoded.status), ctx);
  } else {
    const { code, remark } = putFailure(encoded.status, settings.maxMessageSize);
    finish(state, job, sendError(job, code, remark), ctx);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Lookups

/** What topicForSend needs: the topic and the default it may be created from. */
type TopicRequest = { readonly topic: string; readonly defaultTopic: string; readonly defaultTopicQueueNums: number };

function lookupTopic(state: State, job: Job, header: TopicRequest, then: (topic: TopicConfig) => void, ctx: Ctx): void {
  const start = (): void => {
    const message: BrokerAdminMessage = {
      type: 'topicForSend',
      topic: header.topic,
      defaultTopic: header.defaultTopic,
      defaultTopicQueueNums: header.defaultTopicQueueNums,
      from: job.channel.remoteAddress,
    };
    const { epoch } = state;
    const answer = ctx.ask<BrokerAdminMessage, TopicForSendAnswer>(state.args.refs.admin, message, state.tuning.lookupTimeoutMs);
    ctx.pipeToSelf(answer, (result) => ({ type: 'topicAnswered', epoch, topic: header.topic, result }));
  };
  state.topics.lookup(header.topic, ctx.clock.nowMs(), (result) => {
    if (!result.ok) return finish(state, job, askFailure(job, 'broker-admin topicForSend', result.error), ctx);
    const answer = result.value;
    if (!answer.ok) return finish(state, job, sendError(job, answer.code, answer.remark), ctx);
    then(answer.topic);
  }, start);
}

function lookupGroup(state: State, job: Job, group: string, then: (answer: GroupOk) => void, ctx: Ctx): void {
  const start = (): void => {
    const { epoch } = state;
    const answer = ctx.ask<BrokerAdminMessage, GroupForRetryAnswer>(state.args.refs.admin, { type: 'groupForRetry', group }, state.tuning.lookupTimeoutMs);
    ctx.pipeToSelf(answer, (result) => ({ type: 'groupAnswered', epoch, group, result }));
  };
  state.groups.lookup(group, ctx.clock.nowMs(), (result) => {
    if (!result.ok) return finish(state, job, askFailure(job, 'broker-admin groupForRetry', result.error), ctx);
    const answer = result.value;
    if (!answer.ok) return finish(state, job, sendError(job, answer.code, answer.remark), ctx);
    then(answer);
  }, start);
}

// ---------------------------------------------------------------------------------------------------
// Send

/** TopicValidator.validateTopic and isNotAllowedSendTopic: the refusal, or undefined. */
function topicRefusal(topic: string): { code: number; remark: string } | undefined {
  if (topic.trim().length === 0) return { code: ResponseCode.INVALID_PARAMETER, remark: 'The specified topic is blank.' };
  if (!TOPIC_CHARS.test(topic)) {
    return { code: ResponseCode.INVALID_PARAMETER, remark: `The specified topic: ${topic}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$` };
  }
  const retryOrDlq = topic.startsWith(RETRY_GROUP_TOPIC_PREFIX) || topic.startsWith(DLQ_GROUP_TOPIC_PREFIX);
  const lengthMax = retryOrDlq ? RETRY_OR_DLQ_TOPIC_MAX_LENGTH : TOPIC_MAX_LENGTH;
  if (topic.length > lengthMax) {
    const what = retryOrDlq ? `is DLQ or Retry topic: ${topic}, and it's longer than topic max length: ` : `: ${topic}, is longer than topic max length: `;
    return { code: ResponseCode.INVALID_PARAMETER, remark: `The specified topic${what}${lengthMax}` };
  }
  if (NOT_ALLOWED_SEND_TOPICS.has(topic)) return { code: ResponseCode.NO_PERMISSION, remark: `Sending message to topic[${topic}] is forbidden.` };
  return undefined;
}

function topicText(topic: TopicConfig): string {
  const queues = `readQueueNums=${topic.readQueueNums}, writeQueueNums=${topic.writeQueueNums}`;
  const rest = `perm=${topic.perm}, topicFilterType=${topic.topicFilterType}, topicSysFlag=${topic.topicSysFlag}, order=${topic.order}`;
  return `TopicConfig [topicName=${topic.topicName}, ${queues}, ${rest}]`;
}

/** msgCheck's queue check and the queue choice of sendMessage: the queue id, or the refusal (answered). */
function chooseQueue(state: State, job: SendJob, topic: TopicConfig, ctx: Ctx): number | undefined {
  const requested = job.header.queueId;
  if (requested >= Math.max(topic.writeQueueNums, topic.readQueueNums)) {
    const remark = `request queueId[${requested}] is illegal, ${topicText(topic)} Producer: ${job.channel.remoteAddress}`;
    finish(state, job, sendError(job, ResponseCode.INVALID_PARAMETER, remark), ctx);
    return undefined;
  }
  if ((topic.perm & PermName.PERM_WRITE) === 0) {
    finish(state, job, sendError(job, ResponseCode.NO_PERMISSION, `the topic[${topic.topicName}] sending message is forbidden`), ctx);
    return undefined;
  }
  if (requested >= 0) return requested;
  if (topic.writeQueueNums <= 0) {
    finish(state, job, sendError(job, ResponseCode.NO_PERMISSION, `the topic[${topic.topicName}] has no write queue`), ctx);
    return undefined;
  }
  return randomQueueId(topic.writeQueueNums, ctx);
}

/** AbstractSendMessageProcessor.randomQueueId. */
function randomQueueId(queueNums: number, ctx: Ctx): number {
  return Math.floor(ctx.random() * 99_999_999) % queueNums;
}

/** The properties every stored message starts from (buildMsgContext and clearReservedProperties). */
function baseProperties(text: string): Map<string, string> {
  const properties = decodeMessageProperties(text);
  properties.set(MessageConst.PROPERTY_MSG_REGION, BROKER_REGION_ID);
  properties.set(MessageConst.PROPERTY_TRACE_SWITCH, String(BROKER_TRACE_ON));
  properties.delete(PROPERTY_POP_CK);
  return properties;
}

function sysFlagFor(header: SendMessageRequest, topic: TopicConfig): number {
  return topic.topicFilterType === 'MULTI_TAG' ? header.sysFlag | MessageSysFlag.MULTI_TAGS_FLAG : header.sysFlag;
}

function onSend(state: State, job: SendJob, ctx: Ctx): void {
  const refused = topicRefusal(job.header.topic);
  if (refused !== undefined) return finish(state, job, sendError(job, refused.code, refused.remark), ctx);
  lookupTopic(state, job, job.header, (topic) => {
    const queueId = chooseQueue(state, job, topic, ctx);
    if (queueId === undefined) return;
    if (job.header.batch) return sendBatch(state, job, topic, queueId, ctx);
    if (!job.header.topic.startsWith(RETRY_GROUP_TOPIC_PREFIX)) return sendSingle(state, job, topic, queueId, undefined, ctx);
    lookupGroup(state, job, groupOfRetryTopic(job.header.topic), (group) => {
      sendSingle(state, job, topic, queueId, dlqIfExhausted(job, group), ctx);
    }, ctx);
  }, ctx);
}

/** KeyBuilder.parseGroup: `%RETRY%group`, or `%RETRY%group+topic` for POP retry topics (v2). */
function groupOfRetryTopic(topic: string): string {
  const rest = topic.slice(RETRY_GROUP_TOPIC_PREFIX.length);
  const parts = topic.split('+');
  return parts.length === 2 ? parts[0]!.slice(RETRY_GROUP_TOPIC_PREFIX.length) : rest;
}

/** handleRetryAndDLQ: the DLQ config when the message was reconsumed more than the group allows. */
function dlqIfExhausted(job: SendJob, group: GroupOk): TopicConfig | undefined {
  const header = job.header;
  let maxReconsumeTimes = group.group.retryMaxTimes;
  if (job.request.version >= V3_4_9 && header.maxReconsumeTimes !== undefined) maxReconsumeTimes = header.maxReconsumeTimes;
  return header.reconsumeTimes > maxReconsumeTimes ? group.dlqTopic : undefined;
}

function sendSingle(state: State, job: SendJob, topic: TopicConfig, queueId: number, dlq: TopicConfig | undefined, ctx: Ctx): void {
  const header = job.header;
  const properties = baseProperties(header.properties);
  let target = { topic: header.topic, queueId };
  if (dlq !== undefined) {
    properties.set(MessageConst.PROPERTY_DELAY_TIME_LEVEL, '-1');
    target = { topic: dlq.topicName, queueId: 0 };
  }
  let uniqKey = properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX);
  if (uniqKey === undefined || uniqKey.length === 0) {
    uniqKey = state.uniqIds.next();
    properties.set(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, uniqKey);
  }
  properties.set(MessageConst.PROPERTY_CLUSTER, state.args.identity.clusterName);
  const sysFlag = sysFlagFor(header, dlq ?? topic);
  const destination = storedDestination(state, properties, target, sysFlag, header.reconsumeTimes, ctx);
  if (!destination.ok) return finish(state, job, sendError(job, destination.code, destination.remark), ctx);
  const input: PutMessageInput = {
    topic: destination.topic,
    queueId: destination.queueId,
    body: job.request.body ?? new Uint8Array(0),
    properties: propertiesString(properties),
    flag: header.flag,
    sysFlag: destination.sysFlag,
    bornTimestampMs: header.bornTimestamp,
    bornHost: bornHostOf(job.channel.remoteAddress),
    reconsumeTimes: header.reconsumeTimes,
  };
  const encoded = encodeOrRefuse(state, job, input, ctx);
  if (encoded === undefined) return;
  const recallHandle = destination.timer === 'wheel' ? recallHandleFor(properties, state.args.identity.brokerName) : undefined;
  put(state, job, [encoded], { kind: 'send', queueId, transactionId: uniqKey, ...(recallHandle === undefined ? {} : { recallHandle }) }, ctx);
}

/** Where a message is stored (properties updated in place), or the refusal to answer. */
type StoredDestination =
  | { readonly ok: true; readonly topic: string; readonly queueId: number; readonly sysFlag: number; readonly timer: 'none' | 'wheel' | 'immediate' }
  | { readonly ok: false; readonly code: number; readonly remark: string };

/**
 * The put hooks in RocketMQ's order: a prepared transaction message becomes a half message in
 * RMQ_SYS_TRANS_HALF_TOPIC (TransactionalMessageBridge; not for a retry with a delay level, which RocketMQ
 * sends as a plain message); any other goes through the timer hook (rmq_sys_wheel_timer) and then, when
 * that left it alone, the delay-level hook (SCHEDULE_TOPIC_XXXX).
 */
function storedDestination(
  state: State,
  properties: Map<string, string>,
  target: { readonly topic: string; readonly queueId: number },
  sysFlag: number,
  reconsumeTimes: number,
  ctx: Ctx,
): StoredDestination {
  const { settings } = state.args;
  const prepared = (sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE) === MessageSysFlag.TRANSACTION_PREPARED_TYPE;
  const delayLevel = parseJavaInt(properties.get(MessageConst.PROPERTY_DELAY_TIME_LEVEL) ?? '0') ?? 0;
  if (prepared && !(reconsumeTimes > 0 && delayLevel > 0)) {
    return { ok: true, ...toHalfMessage(properties, target.topic, target.queueId, sysFlag), timer: 'none' };
  }
  const timer = applyTimer(properties, target.topic, target.queueId, ctx.clock.nowMs(), settings, sysFlag);
  if (!timer.ok) return timer;
  if (timer.timer !== 'none') return { ok: true, topic: timer.topic, queueId: timer.queueId, sysFlag, timer: timer.timer };
  const delayed = applyDelayLevel(properties, target.topic, target.queueId, sysFlag, settings.delayLevelsMs.length);
  if (!delayed.ok) return { ok: false, code: ResponseCode.SYSTEM_ERROR, remark: delayed.remark };
  return { ok: true, topic: delayed.topic, queueId: delayed.queueId, sysFlag, timer: 'none' };
}

// ---------------------------------------------------------------------------------------------------
// Recall (RecallMessageProcessor: a delete marker for a timer message not yet delivered)

function onRecall(state: State, job: Job, ctx: Ctx): void {
  const fields = job.request.extFields;
  const topic = fields['topic'] ?? '';
  const refused = topicRefusal(topic);
  if (refused !== undefined) return finish(state, job, sendError(job, refused.code, refused.remark), ctx);
  // selectTopicConfig in RocketMQ; topicForSend here (cached with the sends), see the header.
  lookupTopic(state, job, { topic, defaultTopic: AUTO_CREATE_TOPIC_KEY_TOPIC, defaultTopicQueueNums: state.args.settings.defaultTopicQueueNums }, () => {
    const { settings, identity } = state.args;
    const nowMs = ctx.clock.nowMs();
    const check = checkRecall({
      recallMessageEnable: settings.recallMessageEnable,
      brokerName: identity.brokerName,
      topic,
      recallHandle: fields['recallHandle'],
      topicExists: true,
      nowMs,
      timerMaxDelaySec: settings.timerMaxDelaySec,
    });
    if (!check.ok) return finish(state, job, sendError(job, check.code, check.remark), ctx);
    const marker = recallMarker(check.handle, fields['producerGroup'], nowMs, settings);
    if (!('msgId' in marker)) return finish(state, job, sendError(job, ResponseCode.SYSTEM_ERROR, 'recall failed, execute error'), ctx);
    const input: PutMessageInput = {
      topic: marker.topic,
      queueId: marker.queueId,
      body: marker.body,
      properties: marker.properties,
      flag: 0,
      sysFlag: 0,
      bornTimestampMs: marker.bornTimestampMs,
      bornHost: bornHostOf(job.channel.remoteAddress),
      reconsumeTimes: 0,
    };
    const encoded = encodeOrRefuse(state, job, input, ctx);
    if (encoded !== undefined) put(state, job, [encoded], { kind: 'recall', msgId: marker.msgId }, ctx);
  }, ctx);
}

function batchRefusal(state: State, job: SendJob, sysFlag: number, properties: ReadonlyMap<string, string>): string | undefined {
  const header = job.header;
  if (header.topic.length > TOPIC_MAX_LENGTH) return `message topic length too long ${header.topic.length}`;
  if (header.topic.startsWith(RETRY_GROUP_TOPIC_PREFIX)) return `batch request does not support retry group ${header.topic}`;
  // CommitLog.asyncPutMessages: no transactions and no delay level on a batch; its body within maxMessageSize.
  const delayLevel = parseJavaInt(properties.get(MessageConst.PROPERTY_DELAY_TIME_LEVEL) ?? '0') ?? 0;
  const bodyBytes = job.request.body?.length ?? 0;
  const illegal = (sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE) !== 0 || delayLevel > 0 || bodyBytes > state.args.settings.maxMessageSize;
  return illegal ? putFailure('MESSAGE_ILLEGAL', state.args.settings.maxMessageSize).remark : undefined;
}

function sendBatch(state: State, job: SendJob, topic: TopicConfig, queueId: number, ctx: Ctx): void {
  const header = job.header;
  const sysFlag = sysFlagFor(header, topic);
  const batchProperties = decodeMessageProperties(header.properties);
  const refused = batchRefusal(state, job, sysFlag, batchProperties);
  if (refused !== undefined) return finish(state, job, sendError(job, ResponseCode.MESSAGE_ILLEGAL, refused), ctx);
  let messages;
  try {
    messages = decodeMessageBatch(job.request.body ?? new Uint8Array(0));
  } catch (error) {
    if (!(error instanceof MessageBatchError)) throw error;
    return finish(state, job, sendError(job, ResponseCode.SYSTEM_ERROR, `${error.name}: ${error.message}`), ctx);
  }
  if (messages.length === 0) return finish(state, job, sendError(job, ResponseCode.MESSAGE_ILLEGAL, 'the batch holds no message'), ctx);
  const bornHost = bornHostOf(job.channel.remoteAddress);
  const inputs: PutMessageInput[] = messages.map((message) => ({
    // RocketMQ 5 stores each message of a batch with its own properties only (MessageExtEncoder).
    topic: header.topic,
    queueId,
    body: message.body,
    properties: message.properties,
    flag: message.flag,
    sysFlag,
    bornTimestampMs: header.bornTimestamp,
    bornHost,
    reconsumeTimes: header.reconsumeTimes,
  }));
  // One MessageExtBatch: encoded back to back here, copied into the log at once (in place when the writer
  // grants its append region), one answer for all.
  const { identity, settings } = state.args;
  const batch = encodeBatch(inputs, identity.storeHost, settings.maxMessageSize, ctx.clock.nowMs());
  if (isPutRefusal(batch)) {
    const { code, remark } = putFailure(batch.status, settings.maxMessageSize);
    return finish(state, job, sendError(job, code, remark), ctx);
  }
  const batchUniqKey = batchProperties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX);
  const reply: PutReply = { kind: 'send', queueId, transactionId: batchUniqKey };
  const { epoch } = state;
  const answer: Promise<PutMessageResult> = state.region.send(ctx, state.args.refs.writer, batch, state.tuning.putTimeoutMs);
  ctx.pipeToSelf(answer, (result) => ({ type: 'putDone', epoch, job, reply, result: result.ok ? { ok: true, value: [result.value] } : result }));
}

/** The producer's address as a SocketAddress (`ip:port`, IPv6 with or without brackets). */
export function bornHostOf(remoteAddress: string): SocketAddress {
  const split = remoteAddress.lastIndexOf(':');
  if (split <= 0) return UNKNOWN_HOST;
  let address = remoteAddress.slice(0, split);
  const port = Number(remoteAddress.slice(split + 1));
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  // A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d; Java's Netty shows them as IPv4.
  if (/^::ffff:/i.test(address) && isIPv4(address.slice(7))) address = address.slice(7);
  if (isIP(address) === 0 || !Number.isInteger(port) || port < 0 || port > 0xffff) return UNKNOWN_HOST;
  return { address, port };
}

// ---------------------------------------------------------------------------------------------------
// Send back

function onSendBack(state: State, job: Job, header: SendBackHeader, ctx: Ctx): void {
  lookupGroup(state, job, header.group, (group) => {
    if (group.group.retryQueueNums <= 0) return finish(state, job, createResponse(job.request, ResponseCode.SUCCESS), ctx);
    if ((group.retryTopic.perm & PermName.PERM_WRITE) === 0) {
      const remark = `the topic[${group.retryTopic.topicName}] sending message is forbidden`;
      return finish(state, job, createResponse(job.request, ResponseCode.NO_PERMISSION, remark), ctx);
    }
    const { epoch } = state;
    const request: CommitLogWriterMessage = { type: 'readAt', physicalOffset: header.offset };
    const answer = ctx.ask<CommitLogWriterMessage, Uint8Array | null>(state.args.refs.writer, request, state.tuning.lookupTimeoutMs);
    ctx.pipeToSelf(answer, (result) => ({ type: 'originRead', epoch, job, header, group, result }));
  }, ctx);
}

function onOriginRead(state: State, job: Job, header: SendBackHeader, group: GroupOk, result: PipeResult<Uint8Array | null>, ctx: Ctx): void {
  if (!result.ok) return finish(state, job, askFailure(job, 'commit log writer readAt', result.error), ctx);
  if (result.value === null) {
    return finish(state, job, createResponse(job.request, ResponseCode.SYSTEM_ERROR, `look message by offset failed, ${header.offset}`), ctx);
  }
  const original = decodeRecord(result.value, 0);
  const target = sendBackTarget(job, header, group, original, ctx);
  const properties = original.propertiesMap();
  if (!properties.has(MessageConst.PROPERTY_RETRY_TOPIC)) properties.set(MessageConst.PROPERTY_RETRY_TOPIC, original.topic);
  properties.set(MessageConst.PROPERTY_WAIT_STORE_MSG_OK, 'false');
  properties.set(MessageConst.PROPERTY_DELAY_TIME_LEVEL, String(target.delayLevel));
  const originId = properties.get(MessageConst.PROPERTY_ORIGIN_MESSAGE_ID);
  if (originId === undefined || originId.trim().length === 0) {
    properties.set(MessageConst.PROPERTY_ORIGIN_MESSAGE_ID, offsetMessageId(original.storeHost, original.physicalOffset));
  }
  const destination = applyDelayLevel(properties, target.topic, target.queueId, original.sysFlag, state.args.settings.delayLevelsMs.length);
  if (!destination.ok) return finish(state, job, createResponse(job.request, ResponseCode.SYSTEM_ERROR, destination.remark), ctx);
  const input: PutMessageInput = {
    topic: destination.topic,
    queueId: destination.queueId,
    body: original.body,
    properties: propertiesString(properties),
    flag: original.flag,
    sysFlag: original.sysFlag,
    bornTimestampMs: original.bornTimestampMs,
    bornHost: original.bornHost,
    reconsumeTimes: original.reconsumeTimes + 1,
  };
  const encoded = encodeOrRefuse(state, job, input, ctx);
  if (encoded !== undefined) put(state, job, [encoded], { kind: 'sendBack' }, ctx);
}

/**
 * consumerSendMsgBack's choice: %DLQ%group queue 0 with DELAY 0 once the original was reconsumed
 * maxReconsumeTimes times (or when delayLevel < 0), else %RETRY%group on a random retry queue with
 * delay level 3 + the original's reconsumeTimes unless the consumer asked for one.
 */
function sendBackTarget(job: Job, header: SendBackHeader, group: GroupOk, original: RecordView, ctx: Ctx): { topic: string; queueId: number; delayLevel: number } {
  const config: SubscriptionGroupConfig = group.group;
  let maxReconsumeTimes = config.retryMaxTimes;
  if (job.request.version >= V3_4_9 && header.maxReconsumeTimes !== undefined) maxReconsumeTimes = header.maxReconsumeTimes;
  if (original.reconsumeTimes >= maxReconsumeTimes || header.delayLevel < 0) {
    return { topic: dlqTopicOf(header.group), queueId: 0, delayLevel: 0 };
  }
  const delayLevel = header.delayLevel === 0 ? 3 + original.reconsumeTimes : header.delayLevel;
  return { topic: retryTopicOf(header.group), queueId: randomQueueId(config.retryQueueNums, ctx), delayLevel };
}

// ---------------------------------------------------------------------------------------------------
// Behavior

function busyResponse(state: State, request: RemotingCommand): RemotingCommand {
  const remark = `[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while, period in queue: 0ms, size of queue: ${state.inFlight}`;
  return createResponse(request, ResponseCode.SYSTEM_BUSY, remark);
}

function onRequest(state: State, message: RemotingRequestMessage, ctx: Ctx): void {
  const { request, channel } = message;
  if (state.inFlight >= state.tuning.inFlightMax) {
    if (!isOneway(request)) ctx.tell(channel.acceptor, { type: 'respond', connectionId: channel.connectionId, response: busyResponse(state, request) });
    return;
  }
  state.inFlight++;
  const job: Job = { request, channel };
  try {
    switch (request.code) {
      case RequestCode.SEND_MESSAGE:
      case RequestCode.SEND_MESSAGE_V2:
      case RequestCode.SEND_BATCH_MESSAGE:
        return onSend(state, { ...job, header: parseSendMessageRequest(request.code, request.extFields) }, ctx);
      case RequestCode.CONSUMER_SEND_MSG_BACK:
        return onSendBack(state, job, ConsumerSendMsgBackRequestHeader.parse(request.extFields), ctx);
      case RequestCode.RECALL_MESSAGE:
        return onRecall(state, job, ctx);
      default:
        return finish(state, job, createResponse(request, ResponseCode.REQUEST_CODE_NOT_SUPPORTED, ` request type ${request.code} not supported`), ctx);
    }
  } catch (error) {
    if (!(error instanceof HeaderError)) throw error;
    finish(state, job, headerErrorResponse(request, error), ctx);
  }
}

function handle(state: State, message: SendProcessorMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'remotingRequest':
      return onRequest(state, message, ctx);
    case 'topicAnswered':
      if (message.epoch !== state.epoch) return;
      return state.topics.answered(message.topic, message.result, ctx.clock.nowMs(), (answer) => answer.ok);
    case 'groupAnswered':
      if (message.epoch !== state.epoch) return;
      return state.groups.answered(message.group, message.result, ctx.clock.nowMs(), (answer) => answer.ok);
    case 'originRead':
      if (message.epoch !== state.epoch) return;
      return onOriginRead(state, message.job, message.header, message.group, message.result, ctx);
    case 'putDone':
      if (message.epoch !== state.epoch) return;
      return onPutDone(state, message.job, message.reply, message.result, ctx);
    default:
      return assertNever(message, 'send processor message');
  }
}

/** The broker's IP as UniqIdGenerator wants it (4 or 16 bytes). */
function ipBytesOf(host: SocketAddress): Uint8Array {
  const bytes = new Uint8Array(20);
  const width = writeHost(bytes, 0, host);
  assert(width === hostBytesOf(host), 'host width');
  return bytes.slice(0, width - 4);
}

function tuningOf(args: SendProcessorArgs): SendProcessorTuning {
  const tuning = { ...SEND_PROCESSOR_DEFAULTS, ...args.tuning };
  for (const [key, value] of Object.entries(tuning)) assert(Number.isSafeInteger(value) && value >= 0, `send processor ${key} is a non-negative integer`);
  assert(tuning.inFlightMax >= 1, 'inFlightMax is at least 1');
  return tuning;
}

/** The send processor behavior (spawn several on the `send` pool, each with the broker's processor args). */
export const sendProcessor: Behavior<State, SendProcessorMessage, SendProcessorArgs> = {
  init(args, ctx) {
    assert(args.settings.delayLevelsMs.length >= 1, 'at least one delay level');
    assert(Number.isSafeInteger(args.settings.maxMessageSize) && args.settings.maxMessageSize > 0, 'maxMessageSize is positive');
    const tuning = tuningOf(args);
    const uniqIds = new UniqIdGenerator({
      ip: ipBytesOf(args.identity.storeHost),
      pid: process.pid,
      instanceHash: Math.floor(ctx.random() * 0x7fff_ffff),
      clock: ctx.clock,
    });
    return {
      args,
      tuning,
      epoch: Math.floor(ctx.random() * 0x7fff_ffff),
      topics: new Lookups<TopicForSendAnswer>(tuning.topicCacheTtlMs, tuning.cacheEntriesMax),
      groups: new Lookups<GroupForRetryAnswer>(tuning.topicCacheTtlMs, tuning.cacheEntriesMax),
      uniqIds,
      inFlight: 0,
      region: new RegionSender(),
    };
  },

  receive(state, message, ctx) {
    handle(state, message, ctx);
    return state;
  },
};
