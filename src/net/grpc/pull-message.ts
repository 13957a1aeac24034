/**
 * PullMessage (offset consumption over gRPC) as pure mappings: the request becomes one Remoting
 * PULL_MESSAGE (11) to the master of the queue's broker set, and the broker's answer becomes the frames
 * of the server stream. The activity (messaging-activity.ts `pullMessage`) does the I/O.
 *
 * Where the facts come from: RocketMQ implemented this RPC in its proxy in apache/rocketmq PR #6757
 * ("[ISSUE #6756] Implement pull APIs for proxy", commit 5a8b9868, not merged into develop as of its
 * newest snapshot): grpc/v2/consumer/PullMessageActivity.java, PullMessageResponseStreamWriter.java,
 * GrpcValidator.reasonableLongPollingTimeout and ConsumerProcessor.pullMessage; the answer codes become
 * a PullStatus as client/impl/MQClientAPIImpl.processPullResponse decides.
 *
 * Request (ConsumerProcessor.pullMessage): consumerGroup, topic, queueId, queueOffset = the request's
 * offset; maxMsgNums = batch_size clamped to [1, MAX_MSG_NUMS_FOR_PULL_REQUEST]; sysFlag =
 * PullSysFlag.buildSysFlag(commitOffset false, suspend true, subscription true, classFilter false), so the
 * broker never stores an offset for a pull and holds it when nothing is there yet; commitOffset 0;
 * suspendTimeoutMillis = the long-polling time; subscription / expressionType from the filter expression
 * (FilterAPI.build: TAG `*` or empty takes all, SQL92 must not be empty); subVersion = now.
 *
 * Answer (PullMessageResponseStreamWriter), always status first, then the messages, then next_offset:
 *
 * | Remoting code          | PullStatus     | status frame                          | then                |
 * |------------------------|----------------|---------------------------------------|---------------------|
 * | SUCCESS (0)            | FOUND          | OK "OK"                                | messages, next_offset |
 * | SUCCESS, empty body    | FOUND          | MESSAGE_NOT_FOUND "no match message"   | next_offset         |
 * | PULL_NOT_FOUND (19)    | NO_NEW_MSG     | MESSAGE_NOT_FOUND "no new message"     | next_offset         |
 * | PULL_RETRY_IMMEDIATELY (20) | NO_MATCHED_MSG | MESSAGE_NOT_FOUND "no new message" | next_offset         |
 * | PULL_OFFSET_MOVED (21) | OFFSET_ILLEGAL | ILLEGAL_OFFSET "ILLEGAL_OFFSET"        | next_offset         |
 * | anything else          | (exception)    | ResponseBuilder's code, broker remark  | nothing             |
 *
 * A pulled message is GrpcConverter.buildMessage of the record: no receipt handle, delivery_attempt =
 * reconsumeTimes + 1 (message-view.ts).
 *
 * Long polling (reasonableLongPollingTimeout): the requested long_polling_timeout (0 when absent) clamped
 * to [grpcClientConsumerMinLongPollingTimeoutMillis, ...Max...]; when that passes the call's deadline it
 * shrinks to the time left, and with less than the minimum left the call is refused with
 * ILLEGAL_POLLING_TIME. Deliberate difference: RocketMQ then asks the broker with the whole time left as
 * both hold and request timeout, so an answer at the very end races the deadline; here the hold leaves
 * PULL_ANSWER_RESERVE_MS of the time left for the answer to come back, and the request's timeout lies
 * strictly between the hold and the deadline.
 *
 * Deliberate difference in refusals: SUBSCRIPTION_PARSE_FAILED (a SQL92 expression the broker cannot
 * compile) is ILLEGAL_FILTER_EXPRESSION, as ReceiveMessage answers it, where RocketMQ's ResponseBuilder
 * falls back to INTERNAL_SERVER_ERROR; NO_PERMISSION is FORBIDDEN, as this Proxy answers it elsewhere.
 */
import { decodeRecord } from '../../storage/message-record.ts';
import { PullSysFlag } from '../remoting/broker-headers.ts';
import { ResponseCode } from '../remoting/remoting-command.ts';
import { brokerRefusalCode, Code } from './code.ts';
import { FilterType } from './enums.ts';
import { messageViewOf } from './message-view.ts';
import type * as M from './messages.ts';

/** ProxyUtils.MAX_MSG_NUMS_FOR_PULL_REQUEST: the most messages one pull asks for. */
export const MAX_MSG_NUMS_FOR_PULL_REQUEST = 32;

/** PullSysFlag.buildSysFlag(false, true, true, false): hold when empty, subscription carried, no commit. */
export const PULL_SYS_FLAG = PullSysFlag.FLAG_SUSPEND | PullSysFlag.FLAG_SUBSCRIPTION;

/**
 * Time left before the call's deadline that the broker's hold never takes: room for its final read (its
 * hold timer sweeps every 100 ms) and for the answer to travel back before the client gives up.
 */
export const PULL_ANSWER_RESERVE_MS = 1_000;

/** RocketMQ's PullStatus, as MQClientAPIImpl.processPullResponse derives it from the answer's code. */
export const PullStatus = {
  FOUND: 'FOUND',
  NO_NEW_MSG: 'NO_NEW_MSG',
  NO_MATCHED_MSG: 'NO_MATCHED_MSG',
  OFFSET_ILLEGAL: 'OFFSET_ILLEGAL',
} as const;
/** A PullStatus name. */
export type PullStatus = (typeof PullStatus)[keyof typeof PullStatus];

/** A request the Proxy refuses before (or instead of) asking the broker; answered as a status frame. */
export type PullRefusal = { readonly ok: false; readonly code: number; readonly message: string };

const refuse = (code: number, message: string): PullRefusal => ({ ok: false, code, message });

/** The PullStatus of a PULL_MESSAGE answer code, or undefined when the code is a refusal. */
export function pullStatusOf(remotingCode: number): PullStatus | undefined {
  switch (remotingCode) {
    case ResponseCode.SUCCESS:
      return PullStatus.FOUND;
    case ResponseCode.PULL_NOT_FOUND:
      return PullStatus.NO_NEW_MSG;
    case ResponseCode.PULL_RETRY_IMMEDIATELY:
      return PullStatus.NO_MATCHED_MSG;
    case ResponseCode.PULL_OFFSET_MOVED:
      return PullStatus.OFFSET_ILLEGAL;
    default:
      return undefined;
  }
}

/** The first frame's Status for a PullStatus and the number of messages found. */
export function pullStatusFrame(status: PullStatus, messageCount: number): M.Status {
  switch (status) {
    case PullStatus.FOUND:
      return messageCount > 0 ? { code: Code.OK, message: 'OK' } : { code: Code.MESSAGE_NOT_FOUND, message: 'no match message' };
    case PullStatus.OFFSET_ILLEGAL:
      return { code: Code.ILLEGAL_OFFSET, message: 'ILLEGAL_OFFSET' };
    case PullStatus.NO_NEW_MSG:
    case PullStatus.NO_MATCHED_MSG:
      return { code: Code.MESSAGE_NOT_FOUND, message: 'no new message' };
  }
}

/** The gRPC code of a PULL_MESSAGE answer that carries no PullStatus: the pull's own codes, else brokerRefusalCode. */
export function pullRefusalCodeOf(remotingCode: number): number {
  switch (remotingCode) {
    case ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST:
      return Code.CONSUMER_GROUP_NOT_FOUND;
    case ResponseCode.POLLING_FULL:
      return Code.TOO_MANY_REQUESTS;
    case ResponseCode.SUBSCRIPTION_PARSE_FAILED:
      return Code.ILLEGAL_FILTER_EXPRESSION;
    default:
      return brokerRefusalCode(remotingCode);
  }
}

/** The stream frames of a pull that got a PullStatus, in RocketMQ's order: status, messages, next_offset. */
export function pullFramesOf(status: PullStatus, messages: readonly M.Message[], nextBeginOffset: number): M.PullMessageResponse[] {
  const frames: M.PullMessageResponse[] = [{ status: pullStatusFrame(status, messages.length) }];
  if (status === PullStatus.FOUND) for (const message of messages) frames.push({ message });
  frames.push({ nextOffset: nextBeginOffset });
  return frames;
}

/**
 * The messages of a FOUND answer's body (stored records back to back), as a client receives them; a
 * body holding more than `maxMessages` records is refused, since the broker was asked for no more.
 */
export function pulledMessagesOf(body: Uint8Array | undefined, maxMessages: number): M.Message[] | PullRefusal {
  const messages: M.Message[] = [];
  if (body === undefined) return messages;
  for (let at = 0; at < body.length; ) {
    if (messages.length >= maxMessages) return refuse(Code.INTERNAL_SERVER_ERROR, `broker answered more than the ${maxMessages} messages asked for`);
    const record = decodeRecord(body, at);
    if (!(record.totalSize > 0 && at + record.totalSize <= body.length)) return refuse(Code.INTERNAL_SERVER_ERROR, `broker answered a malformed record at byte ${at}`);
    // No delivery info: a pulled message has no receipt handle and is on its reconsumeTimes + 1st attempt.
    messages.push(messageViewOf(body, at) as unknown as M.Message);
    at += record.totalSize;
  }
  return messages;
}

/** batch_size as maxMsgNums: at least 1, at most MAX_MSG_NUMS_FOR_PULL_REQUEST. */
export function pullBatchSizeOf(batchSize: number): number {
  if (!Number.isFinite(batchSize)) return 1;
  return Math.min(MAX_MSG_NUMS_FOR_PULL_REQUEST, Math.max(1, Math.trunc(batchSize)));
}

/** What the broker gets as subscription: PullMessageRequestHeader's subscription and expressionType. */
export type PullSubscription = { readonly ok: true; readonly expressionType: 'TAG' | 'SQL92'; readonly subscription: string };

/** FilterAPI.build over a gRPC filter expression (absent: TAG `*`); an empty SQL92 one is refused. */
export function pullSubscriptionOf(filter: M.FilterExpression | null | undefined): PullSubscription | PullRefusal {
  const expression = filter?.expression ?? '';
  if (filter?.type === FilterType.SQL) {
    if (expression.length === 0) return refuse(Code.ILLEGAL_FILTER_EXPRESSION, "Expression can't be null! SQL92");
    return { ok: true, expressionType: 'SQL92', subscription: expression };
  }
  const trimmed = expression.trim();
  return { ok: true, expressionType: 'TAG', subscription: trimmed.length === 0 || trimmed === '*' ? '*' : expression };
}

/** The Proxy settings pull timing depends on. */
export type PullTimingLimits = {
  /** grpcClientConsumerMinLongPollingTimeoutMillis. */
  readonly longPollingMinMs: number;
  /** grpcClientConsumerMaxLongPollingTimeoutMillis. */
  readonly longPollingMaxMs: number;
  /** How long a broker may take to answer, beyond any hold. */
  readonly requestTimeoutMs: number;
};

/** How long the broker holds the pull (suspendTimeoutMillis) and how long the Proxy waits for its answer. */
export type PullTiming = { readonly ok: true; readonly suspendMs: number; readonly askTimeoutMs: number };

/**
 * The pull's timing from the requested long-polling time (0 when absent) and the time left before the
 * call's deadline (Number.MAX_SAFE_INTEGER without one). Whenever it answers a timing,
 * suspendMs < askTimeoutMs <= remainingMs.
 */
export function pullTimingOf(requestedMs: number, remainingMs: number, limits: PullTimingLimits): PullTiming | PullRefusal {
  let pollMs = Math.min(Math.max(Number.isFinite(requestedMs) ? requestedMs : 0, limits.longPollingMinMs), limits.longPollingMaxMs);
  if (pollMs > remainingMs) {
    if (remainingMs < limits.longPollingMinMs) {
      return refuse(Code.ILLEGAL_POLLING_TIME, 'The deadline time remaining is not enough for polling, please check network condition');
    }
    pollMs = remainingMs;
  }
  const suspendMs = Math.floor(Math.max(0, Math.min(pollMs, remainingMs - PULL_ANSWER_RESERVE_MS)));
  const askTimeoutMs = Math.floor(Math.min(suspendMs + limits.requestTimeoutMs, remainingMs));
  if (!(suspendMs < askTimeoutMs && askTimeoutMs <= remainingMs)) {
    // Only a deadline already (nearly) reached gets here: no room for any answer.
    return refuse(Code.ILLEGAL_POLLING_TIME, 'The deadline time remaining is not enough for polling, please check network condition');
  }
  return { ok: true, suspendMs, askTimeoutMs };
}
