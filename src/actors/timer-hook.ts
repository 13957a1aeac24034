/**
 * The write side of timer messages and recall, as pure functions for the send and recall processors.
 *
 * applyTimer is RocketMQ's HookUtils.checkIfTimerMessage + transformTimerMessage (RocketMQ 5): a
 * message with TIMER_DELIVER_MS, TIMER_DELAY_SEC or TIMER_DELAY_MS (and no delay level > 0, which wins
 * and drops them) gets a deliver time (DELAY_SEC first, then DELAY_MS, then DELIVER_MS; Java long
 * arithmetic, so overflow wraps as it does there). A deliver time in the future is rounded down to its
 * slot (a multiple of timerPrecisionMs strictly below it: a deliver time on a slot boundary goes to the
 * slot before), stored as TIMER_OUT_MS with REAL_TOPIC / REAL_QID, and the message goes to
 * rmq_sys_wheel_timer queue 0, where the timer service picks it up. A deliver time not in the future
 * leaves the message in its own topic (delivered at once), except a recall's delete marker, which is
 * WHEEL_TIMER_MSG_ILLEGAL then. Refusals carry the PutMessageStatus name and the response code and remark
 * SendMessageProcessor.handlePutMessageResult answers for it.
 *
 * Recall (RocketMQ 5.3's RecallMessageProcessor and RecallMessageHandle): a send stored in the timer
 * topic answers a recall handle, base64url("v1 <realTopic> <brokerName> <TIMER_OUT_MS + 1> <UNIQ_KEY>").
 * RECALL_MESSAGE (370) checks it and stores a delete marker: a message to the handle's topic, queue 0,
 * body "0", tag _RECALL_TAG_, TIMER_DEL_UNIQKEY = topic + "+" + messageId, TIMER_DELIVER_MS = the
 * handle's timestamp; the same transform puts it into the same slot as the message it recalls, and the
 * timer service drops that message when the slot comes.
 */
import { MessageConst } from '../net/remoting/message-batch.ts';
import { PermName } from '../net/remoting/namesrv-protocol.ts';
import { ResponseCode } from '../net/remoting/remoting-command.ts';
import { assert } from '../runtime/assert.ts';
import { MessageSysFlag } from '../storage/message-record.ts';
import { RETRY_GROUP_TOPIC_PREFIX } from './broker-context.ts';
import { parseJavaInt, propertiesString } from './schedule-service.ts';

/** TimerMessageStore.TIMER_TOPIC: TopicValidator.SYSTEM_TOPIC_PREFIX + "wheel_timer". */
export const TIMER_TOPIC = 'rmq_sys_wheel_timer';
/** RecallMessageProcessor.RECALL_MESSAGE_TAG. */
export const RECALL_MESSAGE_TAG = '_RECALL_TAG_';
/** String.valueOf(Long.MAX_VALUE): TIMER_ENQUEUE_MS of a timer delivered without entering the wheel. */
export const JAVA_LONG_MAX_TEXT = '9223372036854775807';
/** RecallMessageHandle's version and separator. */
export const RECALL_HANDLE_VERSION_1 = 'v1';
const RECALL_HANDLE_SEPARATOR = ' ';

/** The broker settings applyTimer reads (MessageStoreConfig's names). */
export type TimerSettings = {
  readonly timerWheelEnable: boolean;
  readonly timerPrecisionMs: number;
  readonly timerMaxDelaySec: number;
  /**
   * TimerMessageStore.isReject's inputs, when the caller can see the wheel: timerCongestNumEachSlot
   * (RocketMQ's default Integer.MAX_VALUE never refuses), the units already in a slot, and a [0, 1) random.
   */
  readonly congestion?: {
    readonly timerCongestNumEachSlot: number;
    readonly numInSlot: (slotTimeMs: number) => number;
    readonly random: () => number;
  };
};

/** PutMessageStatus names a timer message can be refused with. */
export type TimerRefusalStatus = 'WHEEL_TIMER_NOT_ENABLE' | 'WHEEL_TIMER_MSG_ILLEGAL' | 'WHEEL_TIMER_FLOW_CONTROL';

/**
 * Where the message goes: `timer` says what the hook did: 'none' (not a timer message, or a delay level
 * won: continue with the delay-level hook), 'wheel' (moved to rmq_sys_wheel_timer), 'immediate' (a timer
 * message whose time has come: stored as it is, and the delay-level hook must not refuse it).
 */
export type TimerDestination =
  | { readonly ok: true; readonly topic: string; readonly queueId: number; readonly timer: 'none' | 'wheel' | 'immediate' }
  | { readonly ok: false; readonly status: TimerRefusalStatus; readonly code: number; readonly remark: string };

// ---------------------------------------------------------------------------------------------------
// Java number parsing

const LONG_SYNTAX = /^[+-]?\d+$/;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/** Java's Long.parseLong: the value, or undefined for text it would throw on. */
export function parseJavaLong(text: string): bigint | undefined {
  if (!LONG_SYNTAX.test(text)) return undefined;
  const value = BigInt(text);
  return value >= LONG_MIN && value <= LONG_MAX ? value : undefined;
}

/** Java long arithmetic: wraps at 64 bits. */
function long(value: bigint): bigint {
  return BigInt.asIntN(64, value);
}

// ---------------------------------------------------------------------------------------------------
// The send-side hook

/** RocketMQ's checkIfTimerMessage for a message with no delay level: carries a timer property, not TIMER_OUT_MS. */
export function isTimerMessage(properties: ReadonlyMap<string, string>, topic: string): boolean {
  if (topic === TIMER_TOPIC || properties.has(MessageConst.PROPERTY_TIMER_OUT_MS)) return false;
  return (
    properties.has(MessageConst.PROPERTY_TIMER_DELIVER_MS) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELAY_MS) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELAY_SEC)
  );
}

/** The deliver time a timer message asks for (Java long), or undefined when a property does not parse. */
function deliverTimeOf(properties: ReadonlyMap<string, string>, nowMs: number): bigint | undefined {
  const now = BigInt(nowMs);
  const delaySec = properties.get(MessageConst.PROPERTY_TIMER_DELAY_SEC);
  if (delaySec !== undefined) {
    const value = parseJavaLong(delaySec);
    return value === undefined ? undefined : long(now + long(value * 1000n));
  }
  const delayMs = properties.get(MessageConst.PROPERTY_TIMER_DELAY_MS);
  if (delayMs !== undefined) {
    const value = parseJavaLong(delayMs);
    return value === undefined ? undefined : long(now + value);
  }
  const deliverMs = properties.get(MessageConst.PROPERTY_TIMER_DELIVER_MS);
  return deliverMs === undefined ? undefined : parseJavaLong(deliverMs);
}

/** The answer SendMessageProcessor gives for a timer refusal. */
export function timerRefusal(status: TimerRefusalStatus, settings: TimerSettings): Extract<TimerDestination, { ok: false }> {
  switch (status) {
    case 'WHEEL_TIMER_MSG_ILLEGAL':
      return {
        ok: false,
        status,
        code: ResponseCode.MESSAGE_ILLEGAL,
        remark: `timer message illegal, the delay time should not be bigger than the max delay ${settings.timerMaxDelaySec * 1000}ms; or if set del msg, the delay time should be bigger than the current time`,
      };
    case 'WHEEL_TIMER_FLOW_CONTROL': {
      const each = settings.congestion?.timerCongestNumEachSlot ?? 0x7fff_ffff;
      return {
        ok: false,
        status,
        code: ResponseCode.SYSTEM_ERROR,
        remark: `timer message is under flow control, max num limit is ${each * 2} or the current value is greater than ${each} and less than ${each * 2}, trigger random flow control`,
      };
    }
    case 'WHEEL_TIMER_NOT_ENABLE':
      return { ok: false, status, code: ResponseCode.SYSTEM_ERROR, remark: `accurate timer message is not enabled, timerWheelEnable is ${settings.timerWheelEnable}` };
  }
}

/** TimerMessageStore.isReject, when the caller gave the wheel's counts. */
function isReject(slotTimeMs: number, settings: TimerSettings): boolean {
  const congestion = settings.congestion;
  if (congestion === undefined) return false;
  const each = congestion.timerCongestNumEachSlot;
  const num = congestion.numInSlot(slotTimeMs);
  if (num <= each) return false;
  if (num >= each * 2) return true;
  return Math.floor(congestion.random() * 1000) > (1000 * (num - each)) / (each + 0.1);
}

/**
 * HookUtils.handleScheduleMessage's timer part for a message about to be stored in `topic` / `queueId`:
 * updates `properties` in place when it moves the message (TIMER_OUT_MS, REAL_TOPIC, REAL_QID) and says
 * where it goes, or refuses it (see the header). `sysFlag`: a prepared or rollback message is left alone.
 */
export function applyTimer(
  properties: Map<string, string>,
  topic: string,
  queueId: number,
  nowMs: number,
  settings: TimerSettings,
  sysFlag = 0,
): TimerDestination {
  assert(Number.isSafeInteger(nowMs) && nowMs > 0, () => `bad nowMs ${nowMs}`);
  assert(Number.isInteger(settings.timerPrecisionMs) && settings.timerPrecisionMs >= 1, 'timerPrecisionMs >= 1');
  const stay: TimerDestination = { ok: true, topic, queueId, timer: 'none' };
  const transaction = sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
  if (transaction !== MessageSysFlag.TRANSACTION_NOT_TYPE && transaction !== MessageSysFlag.TRANSACTION_COMMIT_TYPE) return stay;
  if (topic === TIMER_TOPIC) return stay;
  const levelText = properties.get(MessageConst.PROPERTY_DELAY_TIME_LEVEL);
  const level = levelText === undefined ? 0 : parseJavaInt(levelText);
  // An unparsable level is the delay-level hook's refusal to give (Message.getDelayTimeLevel throws).
  if (level === undefined) return stay;
  if (level > 0) {
    properties.delete(MessageConst.PROPERTY_TIMER_DELIVER_MS);
    properties.delete(MessageConst.PROPERTY_TIMER_DELAY_SEC);
    properties.delete(MessageConst.PROPERTY_TIMER_DELAY_MS);
    return stay;
  }
  if (!isTimerMessage(properties, topic)) return stay;
  if (!settings.timerWheelEnable) return timerRefusal('WHEEL_TIMER_NOT_ENABLE', settings);
  const deliver = deliverTimeOf(properties, nowMs);
  if (deliver === undefined) return timerRefusal('WHEEL_TIMER_MSG_ILLEGAL', settings);
  const now = BigInt(nowMs);
  if (deliver <= now) {
    if (properties.has(MessageConst.PROPERTY_TIMER_DEL_UNIQKEY)) return timerRefusal('WHEEL_TIMER_MSG_ILLEGAL', settings);
    return { ok: true, topic, queueId, timer: 'immediate' };
  }
  if (deliver - now > BigInt(settings.timerMaxDelaySec) * 1000n) return timerRefusal('WHEEL_TIMER_MSG_ILLEGAL', settings);
  const precision = BigInt(settings.timerPrecisionMs);
  const slot = deliver % precision === 0n ? deliver - precision : (deliver / precision) * precision;
  const slotTimeMs = Number(slot);
  if (isReject(slotTimeMs, settings)) return timerRefusal('WHEEL_TIMER_FLOW_CONTROL', settings);
  properties.set(MessageConst.PROPERTY_TIMER_OUT_MS, String(slot));
  properties.set(MessageConst.PROPERTY_REAL_TOPIC, topic);
  properties.set(MessageConst.PROPERTY_REAL_QUEUE_ID, String(queueId));
  return { ok: true, topic: TIMER_TOPIC, queueId: 0, timer: 'wheel' };
}

// ---------------------------------------------------------------------------------------------------
// Recall handles

/** A decoded RecallMessageHandle.HandleV1. */
export type RecallHandleV1 = {
  readonly version: typeof RECALL_HANDLE_VERSION_1;
  readonly topic: string;
  readonly brokerName: string;
  readonly timestampStr: string;
  readonly messageId: string;
};

/** HandleV1.buildHandle: base64url (with padding, as java.util.Base64.getUrlEncoder writes) of the five fields. */
export function encodeRecallHandle(topic: string, brokerName: string, timestampStr: string, messageId: string): string {
  const raw = [RECALL_HANDLE_VERSION_1, topic, brokerName, timestampStr, messageId].join(RECALL_HANDLE_SEPARATOR);
  const text = Buffer.from(raw, 'utf8').toString('base64url');
  return text + '='.repeat((4 - (text.length % 4)) % 4);
}

const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** RecallMessageHandle.decodeHandle: the handle, or the DecoderException's message. */
export function decodeRecallHandle(handle: string | undefined): RecallHandleV1 | { readonly error: string } {
  const invalid = { error: 'recall handle is invalid' } as const;
  if (handle === undefined || handle.length === 0) return invalid;
  // java.util.Base64's URL decoder: that alphabet only, padding optional but then whole, no lone last char.
  if (!BASE64URL.test(handle)) return invalid;
  const padding = handle.length - handle.replace(/=+$/, '').length;
  const unpadded = handle.length - padding;
  if (unpadded % 4 === 1 || (padding > 0 && handle.length % 4 !== 0)) return invalid;
  const raw = Buffer.from(handle.slice(0, unpadded), 'base64url').toString('utf8');
  // String.split(" ") drops trailing empty strings.
  const items = raw.split(RECALL_HANDLE_SEPARATOR);
  while (items.length > 0 && items.at(-1) === '') items.pop();
  if (items[0] !== RECALL_HANDLE_VERSION_1 || items.length < 5) return invalid;
  return { version: RECALL_HANDLE_VERSION_1, topic: items[1]!, brokerName: items[2]!, timestampStr: items[3]!, messageId: items[4]! };
}

/** Whether decodeRecallHandle succeeded. */
export function isRecallHandle(value: RecallHandleV1 | { readonly error: string }): value is RecallHandleV1 {
  return !('error' in value);
}

/**
 * SendMessageProcessor.attachRecallHandle: the handle a send answers in its response header
 * (recallHandle), from the stored message's properties; undefined when it is not a timer message in the
 * wheel or its real topic is a retry topic. Callers skip SEND_BATCH_MESSAGE and CONSUMER_SEND_MSG_BACK.
 */
export function recallHandleFor(properties: ReadonlyMap<string, string>, brokerName: string): string | undefined {
  const timestampText = properties.get(MessageConst.PROPERTY_TIMER_OUT_MS);
  const realTopic = properties.get(MessageConst.PROPERTY_REAL_TOPIC);
  if (timestampText === undefined || realTopic === undefined || realTopic.startsWith(RETRY_GROUP_TOPIC_PREFIX)) return undefined;
  const timestamp = parseJavaLong(timestampText);
  if (timestamp === undefined) return undefined;
  // "+ 1, consider of floor": the marker's deliver time then rounds down to the same slot.
  const uniqKey = properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) ?? 'null';
  return encodeRecallHandle(realTopic, brokerName, String(long(timestamp + 1n)), uniqKey);
}

/** TimerMessageStore.buildDeleteKey. */
export function buildDeleteKey(realTopic: string, uniqueKey: string): string {
  return `${realTopic}+${uniqueKey}`;
}

// ---------------------------------------------------------------------------------------------------
// RECALL_MESSAGE

/** What RecallMessageProcessor checks before it stores a marker. */
export type RecallCheckInput = {
  /** BrokerConfig.recallMessageEnable. */
  readonly recallMessageEnable: boolean;
  readonly brokerName: string;
  /** RecallMessageRequestHeader.topic and recallHandle. */
  readonly topic: string;
  readonly recallHandle: string | undefined;
  /** Whether selectTopicConfig(topic) found the topic. */
  readonly topicExists: boolean;
  readonly nowMs: number;
  readonly timerMaxDelaySec: number;
  /** BrokerConfig.brokerPermission (default read + write). */
  readonly brokerPermission?: number;
  /** BrokerConfig.allowRecallWhenBrokerNotWriteable (default true). */
  readonly allowRecallWhenBrokerNotWriteable?: boolean;
  /** BrokerRole SLAVE. */
  readonly slave?: boolean;
  /** BrokerConfig.startAcceptSendRequestTimeStamp (default 0). */
  readonly startAcceptSendRequestTimeStampMs?: number;
};

/** A recall that may go on (with its handle), or RocketMQ's refusal. */
export type RecallCheck =
  | { readonly ok: true; readonly handle: RecallHandleV1 }
  | { readonly ok: false; readonly code: number; readonly remark: string };

/** RecallMessageProcessor.processRequest's checks, in its order. */
export function checkRecall(input: RecallCheckInput): RecallCheck {
  const refuse = (code: number, remark: string): RecallCheck => ({ ok: false, code, remark });
  if (!input.recallMessageEnable) return refuse(ResponseCode.NO_PERMISSION, 'recall failed, operation is forbidden');
  if (input.slave === true) return refuse(ResponseCode.SLAVE_NOT_AVAILABLE, 'recall failed, broker service not available');
  if (input.nowMs < (input.startAcceptSendRequestTimeStampMs ?? 0)) return refuse(ResponseCode.SERVICE_NOT_AVAILABLE, 'recall failed, broker service not available');
  const permission = input.brokerPermission ?? PermName.PERM_READ | PermName.PERM_WRITE;
  if ((permission & PermName.PERM_WRITE) === 0 && input.allowRecallWhenBrokerNotWriteable === false) {
    return refuse(ResponseCode.SERVICE_NOT_AVAILABLE, 'recall failed, broker service not available');
  }
  if (!input.topicExists) return refuse(ResponseCode.TOPIC_NOT_EXIST, `recall failed, the topic[${input.topic}] not exist`);
  const handle = decodeRecallHandle(input.recallHandle);
  if (!isRecallHandle(handle)) return refuse(ResponseCode.ILLEGAL_OPERATION, handle.error);
  if (input.topic !== handle.topic) return refuse(ResponseCode.ILLEGAL_OPERATION, 'recall failed, topic not match');
  if (input.brokerName !== handle.brokerName) return refuse(ResponseCode.ILLEGAL_OPERATION, 'recall failed, broker service not available');
  // NumberUtils.toLong(timestampStr, -1).
  const timestamp = parseJavaLong(handle.timestampStr) ?? -1n;
  const timeLeft = timestamp - BigInt(input.nowMs);
  if (timeLeft <= 0n || timeLeft >= BigInt(input.timerMaxDelaySec) * 1000n) {
    return refuse(ResponseCode.ILLEGAL_OPERATION, 'recall failed, timestamp invalid');
  }
  return { ok: true, handle };
}

/** The delete marker to store, already through applyTimer: what the recall processor hands the writer. */
export type RecallMarker = {
  readonly topic: string;
  readonly queueId: number;
  readonly body: Uint8Array;
  /** Encoded properties (propertiesString). */
  readonly properties: string;
  readonly bornTimestampMs: number;
  /** The msgId RECALL_MESSAGE answers (the marker's UNIQ_KEY: the recalled message's). */
  readonly msgId: string;
};

/**
 * RecallMessageProcessor.buildMessage followed by the put hooks' timer transform: the marker for
 * `handle` (checked by checkRecall), or the transform's refusal (the processor then answers
 * SYSTEM_ERROR "recall failed, execute error", see recallResponseFor).
 */
export function recallMarker(handle: RecallHandleV1, producerGroup: string | undefined, nowMs: number, settings: TimerSettings): RecallMarker | Extract<TimerDestination, { ok: false }> {
  const properties = new Map<string, string>([
    [MessageConst.PROPERTY_TAGS, RECALL_MESSAGE_TAG],
    [MessageConst.PROPERTY_TIMER_DEL_UNIQKEY, buildDeleteKey(handle.topic, handle.messageId)],
    [MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, handle.messageId],
    [MessageConst.PROPERTY_TIMER_DELIVER_MS, handle.timestampStr],
    [MessageConst.PROPERTY_BORN_TIMESTAMP, String(nowMs)],
    [MessageConst.PROPERTY_TRACE_CONTEXT, ''],
  ]);
  // messageProperties2String skips a null value: a request without producerGroup stores no PGROUP.
  if (producerGroup !== undefined) properties.set(MessageConst.PROPERTY_PRODUCER_GROUP, producerGroup);
  const destination = applyTimer(properties, handle.topic, 0, nowMs, settings);
  if (!destination.ok) return destination;
  return {
    topic: destination.topic,
    queueId: destination.queueId,
    body: new Uint8Array(Buffer.from('0', 'utf8')),
    properties: propertiesString(properties),
    bornTimestampMs: nowMs,
    msgId: handle.messageId,
  };
}

/** RecallMessageProcessor.handlePutMessageResult: the response code, remark and msgId for the marker's put status. */
export function recallResponseFor(status: string | undefined, msgId: string): { readonly code: number; readonly remark?: string; readonly msgId?: string } {
  switch (status) {
    case 'PUT_OK':
    case 'FLUSH_DISK_TIMEOUT':
    case 'FLUSH_SLAVE_TIMEOUT':
    case 'SLAVE_NOT_AVAILABLE':
      return { code: ResponseCode.SUCCESS, msgId };
    default:
      return { code: ResponseCode.SYSTEM_ERROR, remark: 'recall failed, execute error' };
  }
}
