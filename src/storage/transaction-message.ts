/**
 * The records of RocketMQ's transactional messages (TransactionalMessageBridge, TransactionalMessageUtil,
 * EndTransactionProcessor, DefaultTransactionalMessageCheckListener), as pure functions over record views:
 * no store, no clock, no actor. The transaction service (src/actors/transaction-service.ts) composes them.
 *
 * | record                 | topic / queue                   | what it holds                                      |
 * |------------------------|---------------------------------|----------------------------------------------------|
 * | half message           | RMQ_SYS_TRANS_HALF_TOPIC / 0    | the producer's message; REAL_TOPIC, REAL_QID; the  |
 * |                        |                                 | sysFlag's transaction bits reset to NOT_TYPE, so   |
 * |                        |                                 | the half queue indexes it (and no consumer sees it)|
 * | renewed half (check)   | RMQ_SYS_TRANS_HALF_TOPIC / 0    | a copy, TRANSACTION_CHECK_TIMES + 1 and            |
 * |                        |                                 | TRAN_PREPARED_QUEUE_OFFSET = the transaction's id  |
 * | op message             | RMQ_SYS_TRANS_OP_HALF_TOPIC / 0 | tag "d", body "<id>," (RocketMQ's format), KEYS    |
 * |                        |                                 | "<id>" (so the index finds it), __transactionEnd__ |
 * | committed message      | REAL_TOPIC / REAL_QID           | the half's message, sysFlag COMMIT_TYPE,           |
 * |                        |                                 | preparedTransactionOffset = the half's offset      |
 * | discarded message      | TRANS_CHECK_MAX_TIME_TOPIC / 0  | a half checked transactionCheckMax times           |
 *
 * The transaction's identity. A half message is renewed (copied to the end of the half queue) at every
 * check, so one transaction may have several half records. Its identity is the queue offset of its first
 * half record in RMQ_SYS_TRANS_HALF_TOPIC/0: the record's own queue offset, or, on a renewed copy, its
 * TRAN_PREPARED_QUEUE_OFFSET property (RocketMQ's name for "queue offset of the prepared message", which
 * RocketMQ sets only on immunity renewals; here every renewal carries it). Op messages name identities,
 * so an END_TRANSACTION about any copy ends them all. Differences from RocketMQ, each deliberate: a
 * renewal keeps the message's flag and reconsumeTimes (RocketMQ's renewHalfMessageInner drops both), an
 * op message says which outcome it records (__transactionEnd__: COMMIT, ROLLBACK or DISCARD), and a
 * committed message loses the internal TRAN_PREPARED_QUEUE_OFFSET.
 */
import { assert } from '../runtime/assert.ts';
import {
  encodeRecord,
  MessageSysFlag,
  NAME_VALUE_SEPARATOR,
  offsetMessageId,
  PROPERTY_SEPARATOR,
  recordSize,
  type RecordView,
  type SocketAddress,
} from './message-record.ts';
import type { PutMessageInput } from './message-store.ts';

// ---------------------------------------------------------------------------------------------------
// Names (TopicValidator, MixAll, MessageConst, TransactionalMessageUtil)

/** Where half messages wait (TopicValidator.RMQ_SYS_TRANS_HALF_TOPIC). */
export const RMQ_SYS_TRANS_HALF_TOPIC = 'RMQ_SYS_TRANS_HALF_TOPIC';
/** Where outcomes are recorded (TopicValidator.RMQ_SYS_TRANS_OP_HALF_TOPIC). */
export const RMQ_SYS_TRANS_OP_HALF_TOPIC = 'RMQ_SYS_TRANS_OP_HALF_TOPIC';
/** Where half messages checked too often go, never to be delivered (TopicValidator). */
export const TRANS_CHECK_MAX_TIME_TOPIC = 'TRANS_CHECK_MAX_TIME_TOPIC';
/** The consumer group RocketMQ reads the half and op queues as (MixAll.CID_SYS_RMQ_TRANS). */
export const CID_RMQ_SYS_TRANS = 'CID_RMQ_SYS_TRANS';
/** The one queue of the half, op and discard topics. */
export const TRANSACTION_QUEUE_ID = 0;
/** The op message's tag (TransactionalMessageUtil.REMOVE_TAG). */
export const TRANSACTION_REMOVE_TAG = 'd';
/** Ends every identity in an op body (TransactionalMessageUtil.OFFSET_SEPARATOR). */
export const TRANSACTION_OFFSET_SEPARATOR = ',';

/** The message properties transactions read and write (MessageConst names, and one of ours). */
export const TransactionProperty = {
  TAGS: 'TAGS',
  KEYS: 'KEYS',
  UNIQ_KEY: 'UNIQ_KEY',
  DELAY: 'DELAY',
  REAL_TOPIC: 'REAL_TOPIC',
  REAL_QID: 'REAL_QID',
  /** "true" on a message the producer sends as a half (PROPERTY_TRANSACTION_PREPARED). */
  TRAN_MSG: 'TRAN_MSG',
  /** The producer group (PROPERTY_PRODUCER_GROUP): who is asked about the transaction. */
  PGROUP: 'PGROUP',
  /** TransactionalMessageUtil.TRANSACTION_ID: the UNIQ_KEY, copied when the half is stored. */
  TRANSACTION_ID: '__transactionId__',
  /** Checks made so far (PROPERTY_TRANSACTION_CHECK_TIMES). */
  TRANSACTION_CHECK_TIMES: 'TRANSACTION_CHECK_TIMES',
  /** Seconds before the first check, set by the producer (PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS). */
  CHECK_IMMUNITY_TIME_IN_SECONDS: 'CHECK_IMMUNITY_TIME_IN_SECONDS',
  /** The transaction's identity on a renewed half (PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET). */
  TRAN_PREPARED_QUEUE_OFFSET: 'TRAN_PREPARED_QUEUE_OFFSET',
  /** Ours, on op messages: the outcome recorded. */
  TRANSACTION_END: '__transactionEnd__',
} as const;

/** How a transaction ended: committed, rolled back, or discarded after transactionCheckMax checks. */
export type TransactionOutcome = 'COMMIT' | 'ROLLBACK' | 'DISCARD';

const OUTCOMES: ReadonlySet<string> = new Set<TransactionOutcome>(['COMMIT', 'ROLLBACK', 'DISCARD']);
const INT_SYNTAX = /^[+-]?\d+$/;
const UNKNOWN_BORN_HOST: SocketAddress = { address: '127.0.0.1', port: 0 };

/** Java's Integer.parseInt: the int, or undefined where Java throws. */
export function parseInt32(text: string | undefined): number | undefined {
  if (text === undefined || !INT_SYNTAX.test(text)) return undefined;
  const value = Number(text);
  return Number.isInteger(value) && value >= -0x8000_0000 && value <= 0x7fff_ffff ? value : undefined;
}

/** Java's Long.parseLong, within what a JS number holds exactly; undefined where it fails. */
export function parseInt64(text: string | undefined): number | undefined {
  if (text === undefined || !INT_SYNTAX.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Properties back into their stored form, with no checks (a value may hold \u0001, as Java lets it). */
export function encodeTransactionProperties(properties: ReadonlyMap<string, string>): string {
  let out = '';
  for (const [name, value] of properties) out += name + NAME_VALUE_SEPARATOR + value + PROPERTY_SEPARATOR;
  return out;
}

/** MessageSysFlag.resetTransactionValue: the sysFlag with its transaction bits replaced by `type`. */
export function resetTransactionValue(sysFlag: number, type: number): number {
  assert((type & ~MessageSysFlag.TRANSACTION_ROLLBACK_TYPE) === 0, () => `not a transaction type: ${type}`);
  return (sysFlag & ~MessageSysFlag.TRANSACTION_ROLLBACK_TYPE) | type;
}

// ---------------------------------------------------------------------------------------------------
// The send path

/** Whether a sent message is a half message: TRAN_MSG parses as true (SendMessageProcessor's test). */
export function isTransactionPrepared(properties: ReadonlyMap<string, string>): boolean {
  return (properties.get(TransactionProperty.TRAN_MSG) ?? '').toLowerCase() === 'true';
}

/** Where a half message is stored, and with which sysFlag. */
export type HalfDestination = { readonly topic: string; readonly queueId: number; readonly sysFlag: number };

/**
 * TransactionalMessageBridge.parseHalfMessageInner for a message about to be stored in `topic` /
 * `queueId`: records the real destination in REAL_TOPIC / REAL_QID and the UNIQ_KEY in
 * __transactionId__ (updating `properties` in place), and answers the half queue and the sysFlag with
 * its transaction bits reset, so the half queue takes the record and no consumer queue does. The send
 * path stores a half here instead of applying delay levels (a DELAY stays and applies at commit). The
 * broker's own bookkeeping properties (TRAN_PREPARED_QUEUE_OFFSET, TRANSACTION_CHECK_TIMES) are removed:
 * RocketMQ keeps what the producer sent, which lets a producer make one transaction pass for another.
 */
export function toHalfMessage(properties: Map<string, string>, topic: string, queueId: number, sysFlag: number): HalfDestination {
  assert(topic.length > 0 && topic !== RMQ_SYS_TRANS_HALF_TOPIC, () => `a half message cannot be meant for ${JSON.stringify(topic)}`);
  assert(Number.isInteger(queueId) && queueId >= 0, () => `bad queue ${queueId}`);
  // The broker's own bookkeeping: a producer setting them could make one transaction pass for another.
  properties.delete(TransactionProperty.TRAN_PREPARED_QUEUE_OFFSET);
  properties.delete(TransactionProperty.TRANSACTION_CHECK_TIMES);
  const uniqKey = properties.get(TransactionProperty.UNIQ_KEY);
  if (uniqKey !== undefined && uniqKey.length > 0) properties.set(TransactionProperty.TRANSACTION_ID, uniqKey);
  properties.set(TransactionProperty.REAL_TOPIC, topic);
  properties.set(TransactionProperty.REAL_QID, String(queueId));
  return {
    topic: RMQ_SYS_TRANS_HALF_TOPIC,
    queueId: TRANSACTION_QUEUE_ID,
    sysFlag: resetTransactionValue(sysFlag, MessageSysFlag.TRANSACTION_NOT_TYPE),
  };
}

// ---------------------------------------------------------------------------------------------------
// Reading half records

/** What the service keeps of one half record (no bytes: the record is read again to act on it). */
export type HalfMessage = {
  /** The transaction's identity (see the header). */
  readonly transactionId: number;
  readonly queueOffset: number;
  readonly physicalOffset: number;
  readonly producerGroup: string;
  readonly realTopic: string;
  readonly realQueueId: number;
  /** The message's UNIQ_KEY, or '' when it has none. */
  readonly uniqKey: string;
  /** TRANSACTION_CHECK_TIMES, 0 when absent or unreadable. */
  readonly checkTimes: number;
  /** CHECK_IMMUNITY_TIME_IN_SECONDS as sent, if any. */
  readonly checkImmunityText: string | undefined;
  /** The DELAY property as sent, if any (a committed message goes through its delay level). */
  readonly delayText: string | undefined;
  readonly bornTimestampMs: number;
  readonly storeTimestampMs: number;
  /** The record's end in the CommitLog. */
  readonly endOffset: number;
};

/** A half record read back, or why it is not one the service can act on. */
export type HalfRead = { readonly ok: true; readonly half: HalfMessage } | { readonly ok: false; readonly problem: string };

/** The transaction identity of a record of the half queue (see the header). */
export function transactionIdentity(queueOffset: number, properties: ReadonlyMap<string, string>): number {
  const prepared = parseInt64(properties.get(TransactionProperty.TRAN_PREPARED_QUEUE_OFFSET));
  return prepared !== undefined && prepared >= 0 && prepared <= queueOffset ? prepared : queueOffset;
}

/** Reads a record of RMQ_SYS_TRANS_HALF_TOPIC/0 into what the service needs. */
export function readHalfMessage(view: RecordView): HalfRead {
  if (view.topic !== RMQ_SYS_TRANS_HALF_TOPIC || view.queueId !== TRANSACTION_QUEUE_ID) {
    return { ok: false, problem: `record at ${view.physicalOffset} is in ${view.topic}/${view.queueId}, not a half queue` };
  }
  const properties = view.propertiesMap();
  const realTopic = properties.get(TransactionProperty.REAL_TOPIC);
  const realQueueId = parseInt32(properties.get(TransactionProperty.REAL_QID));
  if (realTopic === undefined || realTopic.length === 0) return { ok: false, problem: 'half message without REAL_TOPIC' };
  if (realQueueId === undefined || realQueueId < 0) return { ok: false, problem: `half message with a bad REAL_QID ${JSON.stringify(properties.get(TransactionProperty.REAL_QID))}` };
  const checkTimes = parseInt32(properties.get(TransactionProperty.TRANSACTION_CHECK_TIMES));
  return {
    ok: true,
    half: {
      transactionId: transactionIdentity(view.queueOffset, properties),
      queueOffset: view.queueOffset,
      physicalOffset: view.physicalOffset,
      producerGroup: properties.get(TransactionProperty.PGROUP) ?? '',
      realTopic,
      realQueueId,
      uniqKey: properties.get(TransactionProperty.UNIQ_KEY) ?? '',
      checkTimes: checkTimes === undefined || checkTimes < 0 ? 0 : checkTimes,
      checkImmunityText: properties.get(TransactionProperty.CHECK_IMMUNITY_TIME_IN_SECONDS),
      delayText: properties.get(TransactionProperty.DELAY),
      bornTimestampMs: view.bornTimestampMs,
      storeTimestampMs: view.storeTimestampMs,
      endOffset: view.physicalOffset + view.totalSize,
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Writing: commit, renewal, discard, op

/** What a put built from a half record carries besides topic and queue (PutMessageInput minus routing). */
type Carried = Pick<PutMessageInput, 'body' | 'flag' | 'bornTimestampMs' | 'bornHost' | 'reconsumeTimes'>;

function carried(view: RecordView): Carried {
  return {
    // A copy: the view may point into the CommitLog's page cache.
    body: Uint8Array.from(view.body),
    flag: view.flag,
    bornTimestampMs: view.bornTimestampMs,
    bornHost: view.bornHost,
    reconsumeTimes: view.reconsumeTimes,
  };
}

/** The committed message before delay levels apply: properties still as a map, for applyDelayLevel. */
export type CommittedMessage = Carried & {
  readonly topic: string;
  readonly queueId: number;
  readonly sysFlag: number;
  readonly preparedTransactionOffset: number;
  readonly properties: Map<string, string>;
};

/**
 * EndTransactionProcessor.endMessageTransaction for a commit: the half's message in its real topic and
 * queue, REAL_TOPIC, REAL_QID and TRAN_MSG removed (and our TRAN_PREPARED_QUEUE_OFFSET), sysFlag
 * COMMIT_TYPE, preparedTransactionOffset the half record's offset.
 */
export function committedMessage(view: RecordView): CommittedMessage | { readonly problem: string } {
  const read = readHalfMessage(view);
  if (!read.ok) return { problem: read.problem };
  const properties = view.propertiesMap();
  properties.delete(TransactionProperty.REAL_TOPIC);
  properties.delete(TransactionProperty.REAL_QID);
  properties.delete(TransactionProperty.TRAN_MSG);
  properties.delete(TransactionProperty.TRAN_PREPARED_QUEUE_OFFSET);
  return {
    ...carried(view),
    topic: read.half.realTopic,
    queueId: read.half.realQueueId,
    sysFlag: resetTransactionValue(view.sysFlag, MessageSysFlag.TRANSACTION_COMMIT_TYPE),
    preparedTransactionOffset: view.physicalOffset,
    properties,
  };
}

/** Whether a stored record is a commit of a half message (its preparedTransactionOffset names the half record). */
export function isCommitRecord(view: RecordView): boolean {
  return (view.sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE) === MessageSysFlag.TRANSACTION_COMMIT_TYPE;
}

/**
 * TransactionalMessageBridge.renewHalfMessageInner for a check: a copy of the half record at the end of
 * the half queue, with TRANSACTION_CHECK_TIMES = `checkTimes` and the transaction's identity.
 */
export function renewedHalfMessage(view: RecordView, checkTimes: number): PutMessageInput {
  assert(Number.isInteger(checkTimes) && checkTimes >= 1, () => `bad check count ${checkTimes}`);
  const properties = view.propertiesMap();
  const transactionId = transactionIdentity(view.queueOffset, properties);
  properties.set(TransactionProperty.TRAN_PREPARED_QUEUE_OFFSET, String(transactionId));
  properties.set(TransactionProperty.TRANSACTION_CHECK_TIMES, String(checkTimes));
  return {
    ...carried(view),
    topic: RMQ_SYS_TRANS_HALF_TOPIC,
    queueId: TRANSACTION_QUEUE_ID,
    sysFlag: view.sysFlag,
    properties: encodeTransactionProperties(properties),
  };
}

/** DefaultTransactionalMessageCheckListener.toMessageExtBrokerInner: the half, as it is, in TRANS_CHECK_MAX_TIME_TOPIC/0. */
export function discardedMessage(view: RecordView): PutMessageInput {
  return {
    ...carried(view),
    topic: TRANS_CHECK_MAX_TIME_TOPIC,
    queueId: TRANSACTION_QUEUE_ID,
    sysFlag: view.sysFlag,
    properties: view.properties,
  };
}

/**
 * The op message recording that transaction `transactionId` ended with `outcome`: RocketMQ's format (tag
 * "d", body "<id>,"), the identity as KEYS so that the store's index finds it, the outcome named.
 */
export function opMessage(transactionId: number, outcome: TransactionOutcome, storeHost: SocketAddress, nowMs: number): PutMessageInput {
  assert(Number.isSafeInteger(transactionId) && transactionId >= 0, () => `bad transaction id ${transactionId}`);
  const properties = new Map<string, string>([
    [TransactionProperty.TAGS, TRANSACTION_REMOVE_TAG],
    [TransactionProperty.KEYS, String(transactionId)],
    [TransactionProperty.TRANSACTION_END, outcome],
  ]);
  return {
    topic: RMQ_SYS_TRANS_OP_HALF_TOPIC,
    queueId: TRANSACTION_QUEUE_ID,
    body: new Uint8Array(Buffer.from(`${transactionId}${TRANSACTION_OFFSET_SEPARATOR}`, 'utf8')),
    properties: encodeTransactionProperties(properties),
    sysFlag: 0,
    bornTimestampMs: nowMs,
    bornHost: storeHost,
  };
}

/** An op message read back: the identities it ends, and the outcome when it names one. */
export type OpRecord = { readonly transactionIds: readonly number[]; readonly outcome: TransactionOutcome | undefined; readonly endOffset: number };

/** Reads an op message (fillOpRemoveMap's parsing); undefined for a record that is not one. */
export function readOpMessage(view: RecordView): OpRecord | undefined {
  if (view.topic !== RMQ_SYS_TRANS_OP_HALF_TOPIC) return undefined;
  const properties = view.propertiesMap();
  if (properties.get(TransactionProperty.TAGS) !== TRANSACTION_REMOVE_TAG) return undefined;
  const transactionIds: number[] = [];
  for (const text of Buffer.from(view.body).toString('utf8').split(TRANSACTION_OFFSET_SEPARATOR)) {
    const id = parseInt64(text.trim());
    if (id !== undefined && id >= 0) transactionIds.push(id);
  }
  const named = properties.get(TransactionProperty.TRANSACTION_END);
  const outcome = named !== undefined && OUTCOMES.has(named) ? (named as TransactionOutcome) : undefined;
  return { transactionIds, outcome, endOffset: view.physicalOffset + view.totalSize };
}

// ---------------------------------------------------------------------------------------------------
// CHECK_TRANSACTION_STATE's body

/** Where a renewed half was stored (from the writer's answer). */
export type StoredAt = { readonly queueOffset: number; readonly physicalOffset: number; readonly storeTimestampMs: number };

/**
 * The body of CHECK_TRANSACTION_STATE (Broker2Client.checkProducerTransactionState: MessageDecoder.encode
 * of the renewed half, its topic and queue set to REAL_TOPIC / REAL_QID by sendCheckMessage).
 */
export function checkMessageBody(renewal: PutMessageInput, stored: StoredAt, storeHost: SocketAddress, realTopic: string, realQueueId: number): Uint8Array {
  const input = {
    topic: realTopic,
    queueId: realQueueId,
    flag: renewal.flag ?? 0,
    queueOffset: stored.queueOffset,
    physicalOffset: stored.physicalOffset,
    sysFlag: renewal.sysFlag ?? 0,
    bornTimestampMs: renewal.bornTimestampMs ?? 0,
    bornHost: renewal.bornHost ?? UNKNOWN_BORN_HOST,
    storeTimestampMs: stored.storeTimestampMs,
    storeHost,
    reconsumeTimes: renewal.reconsumeTimes ?? 0,
    preparedTransactionOffset: 0,
    body: renewal.body,
    properties: renewal.properties ?? '',
  };
  const bytes = new Uint8Array(recordSize(input));
  encodeRecord(bytes, 0, input);
  return bytes;
}

// ---------------------------------------------------------------------------------------------------
// END_TRANSACTION's checks

/** The fields of EndTransactionRequestHeader the checks read. */
export type EndRequest = {
  readonly producerGroup: string;
  readonly tranStateTableOffset: number;
  readonly commitLogOffset: number;
  readonly msgId: string;
  readonly transactionId?: string | undefined;
  readonly fromTransactionCheck: boolean;
};

/** Why an END_TRANSACTION is refused; the service maps each to RocketMQ's response code. */
export type EndRefusal =
  | { readonly reason: 'notFound'; readonly remark: string }
  | { readonly reason: 'lateEnd'; readonly remark: string }
  | { readonly reason: 'mismatch'; readonly remark: string };

/**
 * EndTransactionProcessor's checks of the half record the request names: it must be a half record
 * (ours: RocketMQ looks up any record), a request that is not a check answer must come within the
 * half's CHECK_IMMUNITY_TIME_IN_SECONDS when it has one (rejectCommitOrRollback), and the producer group,
 * queue offset and CommitLog offset must match (checkPrepareMessage). Ours too: when the half has a
 * UNIQ_KEY, the request's msgId (or transactionId) must name it or the record's offset id, so that an
 * answer about a record lost in a crash cannot end the record written later at the same offsets.
 */
export function checkEndRequest(view: RecordView, request: EndRequest, nowMs: number, transactionTimeOutMs: number, storeHost: SocketAddress): EndRefusal | undefined {
  const read = readHalfMessage(view);
  if (!read.ok) return { reason: 'notFound', remark: 'Find prepared transaction message failed' };
  const half = read.half;
  if (!request.fromTransactionCheck && half.checkImmunityText !== undefined && half.checkImmunityText.length > 0) {
    const immunityMs = endImmunityMs(half.checkImmunityText, transactionTimeOutMs);
    if (nowMs - half.bornTimestampMs > immunityMs) {
      return { reason: 'lateEnd', remark: `the end came ${nowMs - half.bornTimestampMs} ms after the message was born, past its check immunity of ${immunityMs} ms; wait for the check` };
    }
  }
  if (half.producerGroup !== request.producerGroup) return { reason: 'mismatch', remark: 'The producer group wrong' };
  if (half.queueOffset !== request.tranStateTableOffset) return { reason: 'mismatch', remark: 'The transaction state table offset wrong' };
  if (half.physicalOffset !== request.commitLogOffset) return { reason: 'mismatch', remark: 'The commit log offset wrong' };
  if (half.uniqKey.length > 0) {
    const names = [request.msgId, request.transactionId];
    const offsetId = offsetMessageId(storeHost, half.physicalOffset);
    if (!names.some((name) => name === half.uniqKey || name === offsetId)) return { reason: 'mismatch', remark: 'The message id wrong' };
  }
  return undefined;
}

/**
 * TransactionalMessageUtil.getImmunityTime, as EndTransactionProcessor uses it: the immunity in ms, never
 * less than transactionTimeOut.
 */
export function endImmunityMs(checkImmunityText: string | undefined, transactionTimeOutMs: number): number {
  const seconds = parseInt64(checkImmunityText);
  const immunityMs = seconds === undefined ? 0 : seconds * 1000;
  return immunityMs < transactionTimeOutMs ? transactionTimeOutMs : immunityMs;
}
