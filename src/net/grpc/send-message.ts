/**
 * SendMessage, the Proxy's side: validating a 5.x client's messages with RocketMQ's codes and limits, turning
 * each into the properties a Remoting SEND_MESSAGE_V2 carries (RocketMQ's SendMessageActivity does the same
 * before it calls the broker), and picking the queue: a message group always maps to the same queue (Guava's
 * consistent hash of the group's Java hash, as the Proxy's SendMessageQueueSelector), other messages go
 * round-robin.
 *
 * Limits are the Proxy's (ProxyConfig) defaults, named as RocketMQ names them:
 * | limit                 | default | code when exceeded            |
 * |-----------------------|---------|-------------------------------|
 * | maxMessageSize        | 4 MiB   | MESSAGE_BODY_TOO_LARGE        |
 * | (empty body)          | -       | MESSAGE_BODY_EMPTY            |
 * | userPropertyMaxNum    | 128     | MESSAGE_PROPERTIES_TOO_LARGE  |
 * | maxUserPropertySize   | 16 KiB  | MESSAGE_PROPERTIES_TOO_LARGE  |
 * | maxMessageGroupSize   | 64      | ILLEGAL_MESSAGE_GROUP         |
 * | maxDelayTimeMills     | 1 day   | ILLEGAL_DELIVERY_TIME         |
 */
import { MessageConst } from '../remoting/message-batch.ts';
import { encodeMessageProperties, MessageSysFlag } from '../../storage/message-record.ts';
import { javaStringHashCode } from '../../storage/tag-hash.ts';
import { Code } from './code.ts';
import { Encoding, MessageType } from './enums.ts';
import type { Duration, Timestamp } from './messages.ts';
import { durationToMs, isValidDuration, isValidTimestamp, timestampToMs } from './wire-time.ts';

/** ProxyConfig defaults that bound a message. */
export const PROXY_MESSAGE_LIMITS = {
  maxMessageSize: 4 * 1024 * 1024,
  userPropertyMaxNum: 128,
  maxUserPropertySize: 16 * 1024,
  maxMessageGroupSize: 64,
  maxDelayTimeMs: 24 * 60 * 60 * 1000,
  maxTransactionRecoverySecond: 3600,
} as const;

export type ProxyMessageLimits = { readonly [K in keyof typeof PROXY_MESSAGE_LIMITS]: number };

/** Property names reserved for the system (MessageConst.STRING_HASH_SET): a client may not set them. */
export const SYSTEM_PROPERTY_NAMES: ReadonlySet<string> = new Set([
  'TRACE_ON', 'MSG_REGION', 'KEYS', 'TAGS', 'WAIT', 'DELAY', 'RETRY_TOPIC', 'REAL_TOPIC', 'REAL_QID', 'TRAN_MSG',
  'PGROUP', 'MIN_OFFSET', 'MAX_OFFSET', 'BUYER_ID', 'ORIGIN_MESSAGE_ID', 'TRANSFER_FLAG', 'CORRECTION_FLAG',
  'MQ2_FLAG', 'RECONSUME_TIME', 'UNIQ_KEY', 'MAX_RECONSUME_TIMES', 'CONSUME_START_TIME', 'POP_CK',
  'POP_CK_OFFSET', '1ST_POP_TIME', 'TRAN_PREPARED_QUEUE_OFFSET', 'DUP_INFO', 'EXTEND_UNIQ_INFO', 'INSTANCE_ID',
  'CORRELATION_ID', 'REPLY_TO_CLIENT', 'TTL', 'ARRIVE_TIME', 'PUSH_REPLY_TIME', 'CLUSTER', 'MSG_TYPE',
  'INNER_MULTI_QUEUE_OFFSET', 'TIMER_DELAY_MS', 'TIMER_DELAY_SEC', 'TIMER_DELIVER_MS', 'TIMER_ENQUEUE_MS',
  'TIMER_DEQUEUE_MS', 'TIMER_ROLL_TIMES', 'TIMER_OUT_MS', 'TIMER_DEL_UNIQKEY', 'TIMER_DELAY_LEVEL', '__BORNHOST',
  'BORN_TIMESTAMP', 'DLQ_ORIGIN_TOPIC', 'DLQ_ORIGIN_MESSAGE_ID', '__CRC32#',
]);

/** The fields of apache.rocketmq.v2.SystemProperties a send reads. */
export type SendSystemProperties = {
  readonly tag?: string;
  readonly keys?: readonly string[];
  readonly messageId?: string;
  readonly bodyEncoding?: number;
  readonly messageType?: number;
  readonly bornTimestamp?: Timestamp | null;
  readonly bornHost?: string;
  readonly deliveryTimestamp?: Timestamp | null;
  readonly deliveryAttempt?: number;
  readonly messageGroup?: string;
  readonly traceContext?: string;
  readonly orphanedTransactionRecoveryDuration?: Duration | null;
};

/** The fields of apache.rocketmq.v2.Message a send reads. */
export type SendMessageInput = {
  readonly topic?: { readonly name?: string; readonly resourceNamespace?: string } | null;
  readonly userProperties?: Readonly<Record<string, string>>;
  readonly systemProperties?: SendSystemProperties | null;
  readonly body?: Uint8Array;
};

/** A message ready for the broker: what SEND_MESSAGE_V2's header and body carry. */
export type PreparedSend = {
  readonly ok: true;
  readonly topic: string;
  readonly body: Uint8Array;
  readonly properties: string;
  readonly sysFlag: number;
  readonly bornTimestampMs: number;
  readonly reconsumeTimes: number;
  readonly messageGroup: string | undefined;
  readonly messageType: number;
  readonly messageId: string;
  /** The stored properties, decoded (for the topic message-type check). */
  readonly propertyMap: ReadonlyMap<string, string>;
};

/** A refusal with the gRPC code the client expects. */
export type SendRefusal = { readonly ok: false; readonly code: number; readonly message: string };

const NAME_CHARS = /^[%|a-zA-Z0-9_-]+$/;
const TOPIC_MAX_LENGTH = 127;
const GROUP_MAX_LENGTH = 120;
const SYSTEM_TOPICS: ReadonlySet<string> = new Set([
  'TBW102', 'SCHEDULE_TOPIC_XXXX', 'BenchmarkTest', 'RMQ_SYS_TRANS_HALF_TOPIC', 'RMQ_SYS_TRACE_TOPIC',
  'RMQ_SYS_TRANS_OP_HALF_TOPIC', 'TRANS_CHECK_MAX_TIME_TOPIC', 'SELF_TEST_TOPIC', 'OFFSET_MOVED_EVENT', 'CHECKPOINT_TOPIC',
]);
/** Groups reserved for the system (MixAll.isSysConsumerGroupPullMessage). */
const SYSTEM_GROUPS: ReadonlySet<string> = new Set([
  'DEFAULT_CONSUMER', 'TOOLS_CONSUMER', 'SCHEDULE_CONSUMER', 'FILTERSRV_CONSUMER', '__MONITOR_CONSUMER',
  'SELF_TEST_C_GROUP', 'CID_ONS-HTTP-PROXY', 'CID_ONSAPI_PERMISSION', 'CID_ONSAPI_OWNER', 'CID_ONSAPI_PULL',
  'CID_RMQ_SYS_TRANS',
]);
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

const refuse = (code: number, message: string): SendRefusal => ({ ok: false, code, message });
const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');
const isBlank = (text: string): boolean => text.trim().length === 0;

/** A Timestamp as ms since the epoch, or undefined when absent or malformed. */
function timestampMsOf(time: Timestamp | null | undefined): number | undefined {
  return time !== null && time !== undefined && isValidTimestamp(time) ? timestampToMs(time) : undefined;
}

/** Validates a topic name as the Proxy does (Validators.checkTopic, then no system topics). */
export function checkTopicName(topic: string): SendRefusal | undefined {
  if (isBlank(topic)) return refuse(Code.ILLEGAL_TOPIC, 'The specified topic is blank');
  if (topic.length > TOPIC_MAX_LENGTH) return refuse(Code.ILLEGAL_TOPIC, `The specified topic is longer than topic max length ${TOPIC_MAX_LENGTH}.`);
  if (!NAME_CHARS.test(topic)) return refuse(Code.ILLEGAL_TOPIC, `The specified topic[${topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$`);
  if (SYSTEM_TOPICS.has(topic) || topic.startsWith('rmq_sys_')) return refuse(Code.ILLEGAL_TOPIC, 'cannot access system topic');
  return undefined;
}

/** Validates a consumer group name as the Proxy does; the predefined system groups are refused. */
export function checkConsumerGroupName(group: string): SendRefusal | undefined {
  if (isBlank(group)) return refuse(Code.ILLEGAL_CONSUMER_GROUP, 'the specified group is blank');
  if (group.length > GROUP_MAX_LENGTH) return refuse(Code.ILLEGAL_CONSUMER_GROUP, `the specified group[${group}] is longer than group max length: ${GROUP_MAX_LENGTH}.`);
  if (!NAME_CHARS.test(group)) return refuse(Code.ILLEGAL_CONSUMER_GROUP, `the specified group[${group}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$`);
  if (SYSTEM_GROUPS.has(group) || group.startsWith('CID_RMQ_SYS_')) return refuse(Code.ILLEGAL_CONSUMER_GROUP, 'cannot use system consumer group');
  return undefined;
}

/** Validates a tag (GrpcValidator.validateTag). */
export function checkTag(tag: string): SendRefusal | undefined {
  if (tag.length === 0) return undefined;
  if (isBlank(tag)) return refuse(Code.ILLEGAL_MESSAGE_TAG, 'tag cannot be the char sequence of whitespace');
  if (tag.includes('|')) return refuse(Code.ILLEGAL_MESSAGE_TAG, "tag cannot contain '|'");
  if (CONTROL_CHARS.test(tag)) return refuse(Code.ILLEGAL_MESSAGE_TAG, 'tag cannot contain control character');
  return undefined;
}

/**
 * Validates one message and builds what the broker stores. `producerGroup` is what RocketMQ puts in PGROUP
 * (the Proxy uses the topic name, so a transaction check-back can find a producer of that topic).
 */
export function prepareSend(
  message: SendMessageInput,
  context: { readonly producerGroup: string; readonly remoteAddress: string; readonly nowMs: number; readonly limits?: ProxyMessageLimits },
): PreparedSend | SendRefusal {
  const limits = context.limits ?? PROXY_MESSAGE_LIMITS;
  const topic = message.topic?.name ?? '';
  const topicRefusal = checkTopicName(topic);
  if (topicRefusal !== undefined) return topicRefusal;
  const body = message.body ?? new Uint8Array(0);
  if (body.length === 0) return refuse(Code.MESSAGE_BODY_EMPTY, 'message body cannot be empty');
  if (body.length > limits.maxMessageSize) return refuse(Code.MESSAGE_BODY_TOO_LARGE, `message body cannot exceed the max ${limits.maxMessageSize}`);
  const system = message.systemProperties ?? {};
  const properties = new Map<string, string>();
  const userRefusal = addUserProperties(message.userProperties ?? {}, properties, limits);
  if (typeof userRefusal !== 'number') return userRefusal;
  let propertyBytes = userRefusal;
  const tag = system.tag ?? '';
  const tagRefusal = checkTag(tag);
  if (tagRefusal !== undefined) return tagRefusal;
  if (tag.length > 0) properties.set(MessageConst.PROPERTY_TAGS, tag);
  propertyBytes += utf8Bytes(tag);
  const keys = system.keys ?? [];
  for (const key of keys) {
    if (key.length > 0 && isBlank(key)) return refuse(Code.ILLEGAL_MESSAGE_KEY, 'key cannot be the char sequence of whitespace');
    if (CONTROL_CHARS.test(key)) return refuse(Code.ILLEGAL_MESSAGE_KEY, 'key cannot contain control character');
    propertyBytes += utf8Bytes(key);
  }
  if (keys.length > 0) properties.set(MessageConst.PROPERTY_KEYS, keys.join(' '));
  if (propertyBytes > limits.maxUserPropertySize) {
    return refuse(Code.MESSAGE_PROPERTIES_TOO_LARGE, `the total size of user property is too large, max is ${limits.maxUserPropertySize}`);
  }
  const messageId = system.messageId ?? '';
  if (isBlank(messageId) || CONTROL_CHARS.test(messageId)) return refuse(Code.ILLEGAL_MESSAGE_ID, 'message id cannot be empty');
  properties.set(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, messageId);
  const messageType = system.messageType ?? MessageType.MESSAGE_TYPE_UNSPECIFIED;
  const typed = addTypedProperties(system, messageType, properties, context.nowMs, limits);
  if (typed !== undefined) return typed;
  const reconsumeTimes = system.deliveryAttempt ?? 0;
  properties.set(MessageConst.PROPERTY_RECONSUME_TIME, String(reconsumeTimes));
  properties.set(MessageConst.PROPERTY_PRODUCER_GROUP, context.producerGroup);
  const messageGroup = system.messageGroup ?? '';
  if (messageGroup.length > 0) {
    if (isBlank(messageGroup)) return refuse(Code.ILLEGAL_MESSAGE_GROUP, 'message group cannot be the char sequence of whitespace');
    if (utf8Bytes(messageGroup) >= limits.maxMessageGroupSize) return refuse(Code.ILLEGAL_MESSAGE_GROUP, `message group exceed the max size ${limits.maxMessageGroupSize}`);
    if (CONTROL_CHARS.test(messageGroup)) return refuse(Code.ILLEGAL_MESSAGE_GROUP, 'message group cannot contain control character');
    properties.set(MessageConst.PROPERTY_SHARDING_KEY, messageGroup);
  }
  if ((system.traceContext ?? '').length > 0 && !CONTROL_CHARS.test(system.traceContext!)) {
    properties.set(MessageConst.PROPERTY_TRACE_CONTEXT, system.traceContext!);
  }
  const bornHost = system.bornHost !== undefined && !isBlank(system.bornHost) ? system.bornHost : context.remoteAddress;
  if (!isBlank(bornHost) && !CONTROL_CHARS.test(bornHost)) properties.set(MessageConst.PROPERTY_BORN_HOST, bornHost);
  const bornTimestampMs = timestampMsOf(system.bornTimestamp) ?? context.nowMs;
  properties.set(MessageConst.PROPERTY_BORN_TIMESTAMP, String(bornTimestampMs));
  let sysFlag = 0;
  if (system.bodyEncoding === Encoding.GZIP) sysFlag |= MessageSysFlag.COMPRESSED_FLAG;
  if (messageType === MessageType.TRANSACTION) sysFlag |= MessageSysFlag.TRANSACTION_PREPARED_TYPE;
  return {
    ok: true,
    topic,
    body,
    properties: encodeMessageProperties(properties),
    sysFlag,
    bornTimestampMs,
    reconsumeTimes,
    messageGroup: messageGroup.length > 0 ? messageGroup : undefined,
    messageType,
    messageId,
    propertyMap: properties,
  };
}

/** Adds the user properties; answers their byte count or a refusal. */
function addUserProperties(user: Readonly<Record<string, string>>, into: Map<string, string>, limits: ProxyMessageLimits): number | SendRefusal {
  const entries = Object.entries(user);
  if (entries.length > limits.userPropertyMaxNum) {
    return refuse(Code.MESSAGE_PROPERTIES_TOO_LARGE, `too many user properties, max is ${limits.userPropertyMaxNum}`);
  }
  let bytes = 0;
  for (const [name, value] of entries) {
    if (SYSTEM_PROPERTY_NAMES.has(name)) return refuse(Code.ILLEGAL_MESSAGE_PROPERTY_KEY, `property is used by system: ${name}`);
    if (name.length === 0 || CONTROL_CHARS.test(name)) return refuse(Code.ILLEGAL_MESSAGE_PROPERTY_KEY, 'the key of property cannot contain control character');
    if (CONTROL_CHARS.test(value)) return refuse(Code.ILLEGAL_MESSAGE_PROPERTY_KEY, 'the value of property cannot contain control character');
    bytes += utf8Bytes(name) + utf8Bytes(value);
    if (value.length > 0) into.set(name, value);
  }
  return bytes;
}

/** Transaction and delivery-time properties, with their limits. */
function addTypedProperties(
  system: SendSystemProperties,
  messageType: number,
  into: Map<string, string>,
  nowMs: number,
  limits: ProxyMessageLimits,
): SendRefusal | undefined {
  if (messageType === MessageType.TRANSACTION) {
    into.set(MessageConst.PROPERTY_TRANSACTION_PREPARED, 'true');
    const recovery = system.orphanedTransactionRecoveryDuration;
    if (recovery !== null && recovery !== undefined) {
      const seconds = isValidDuration(recovery) ? Math.floor(durationToMs(recovery) / 1000) : Number.NaN;
      if (!Number.isFinite(seconds) || seconds > limits.maxTransactionRecoverySecond) {
        return refuse(Code.BAD_REQUEST, `the max transaction recovery time of message is too large, max is ${limits.maxTransactionRecoverySecond}`);
      }
      into.set(MessageConst.PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS, String(seconds));
    }
  }
  if (system.deliveryTimestamp !== null && system.deliveryTimestamp !== undefined) {
    const deliverMs = timestampMsOf(system.deliveryTimestamp);
    if (deliverMs === undefined) return refuse(Code.ILLEGAL_DELIVERY_TIME, 'the delivery timestamp is not a valid timestamp');
    if (deliverMs - nowMs > limits.maxDelayTimeMs) {
      return refuse(Code.ILLEGAL_DELIVERY_TIME, `the max delay time of message is too large, max is ${limits.maxDelayTimeMs}`);
    }
    into.set(MessageConst.PROPERTY_TIMER_DELIVER_MS, String(deliverMs));
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Queue selection

const LCG_MULTIPLIER = 2862933555777941757n;
const MASK_64 = (1n << 64n) - 1n;

/**
 * Guava's Hashing.consistentHash(input, buckets): the bucket a long input falls in, stable as buckets grow
 * (a linear congruential generator walks candidate buckets until it jumps past the range).
 */
export function consistentHash(input: number, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets <= 0) throw new RangeError(`buckets must be positive, got ${buckets}`);
  let state = BigInt.asUintN(64, BigInt(input));
  let candidate = 0;
  // Each step at least doubles `candidate + 1` on average; 64 steps are far more than any int range needs.
  for (let step = 0; step < 1024; step++) {
    state = (LCG_MULTIPLIER * state + 1n) & MASK_64;
    const nextDouble = (Number(state >> 33n) + 1) / 2 ** 31;
    const next = Math.trunc((candidate + 1) / nextDouble);
    if (next >= 0 && next < buckets) candidate = next;
    else return candidate;
  }
  return candidate;
}

/** The queue a message group maps to among `writeQueueNums` queues: Guava consistentHash(group.hashCode()). */
export function queueForMessageGroup(messageGroup: string, writeQueueNums: number): number {
  return consistentHash(javaStringHashCode(messageGroup), writeQueueNums);
}
