/** PullMessage's pure mappings: request header values, answer codes, stream frames and timing. */
import { describe, expect, it } from 'vitest';
import {
  MAX_MSG_NUMS_FOR_PULL_REQUEST,
  PULL_ANSWER_RESERVE_MS,
  PULL_SYS_FLAG,
  PullStatus,
  pullBatchSizeOf,
  pulledMessagesOf,
  pullFramesOf,
  pullRefusalCodeOf,
  pullStatusFrame,
  pullStatusOf,
  pullSubscriptionOf,
  pullTimingOf,
} from '../../../src/net/grpc/pull-message.ts';
import { Code } from '../../../src/net/grpc/code.ts';
import { FilterType } from '../../../src/net/grpc/enums.ts';
import type * as M from '../../../src/net/grpc/messages.ts';
import { ResponseCode } from '../../../src/net/remoting/remoting-command.ts';
import { encodeMessageProperties, encodeRecord, MessageSysFlag, recordSize, type RecordInput } from '../../../src/storage/message-record.ts';

const LIMITS = { longPollingMinMs: 5_000, longPollingMaxMs: 20_000, requestTimeoutMs: 3_000 };
const NO_DEADLINE = Number.MAX_SAFE_INTEGER;

function record(queueOffset: number, overrides: Partial<RecordInput> = {}): RecordInput {
  return {
    topic: 'PullTopic',
    queueId: 2,
    flag: 0,
    queueOffset,
    physicalOffset: 1_000 + queueOffset * 300,
    sysFlag: MessageSysFlag.TRANSACTION_NOT_TYPE,
    bornTimestampMs: 1_700_000_000_000 + queueOffset,
    bornHost: { address: '10.0.0.7', port: 5555 },
    storeTimestampMs: 1_700_000_000_100 + queueOffset,
    storeHost: { address: '10.0.0.5', port: 10911 },
    reconsumeTimes: queueOffset,
    preparedTransactionOffset: 0,
    body: Buffer.from(`body-${queueOffset}`),
    properties: encodeMessageProperties({ TAGS: `tag${queueOffset}`, KEYS: 'k1 k2', UNIQ_KEY: `ID${queueOffset}`, color: 'red' }),
    ...overrides,
  };
}

/** Records back to back, as a FOUND answer's body carries them. */
function body(...inputs: RecordInput[]): Buffer {
  const parts = inputs.map((input) => {
    const bytes = Buffer.alloc(recordSize(input));
    encodeRecord(bytes, 0, input);
    return bytes;
  });
  return Buffer.concat(parts);
}

describe('the PULL_MESSAGE request', () => {
  it('suspends and carries its subscription, never commits (PullSysFlag.buildSysFlag(false, true, true, false))', () => {
    expect(PULL_SYS_FLAG).toBe(0b110);
  });

  it('clamps batch_size to [1, 32]', () => {
    expect(MAX_MSG_NUMS_FOR_PULL_REQUEST).toBe(32);
    expect([0, -5, 1, 7, 32, 33, 1_000, Number.NaN].map(pullBatchSizeOf)).toEqual([1, 1, 1, 7, 32, 32, 32, 1]);
  });

  it('maps the filter expression as FilterAPI.build does', () => {
    expect(pullSubscriptionOf(null)).toEqual({ ok: true, expressionType: 'TAG', subscription: '*' });
    expect(pullSubscriptionOf({ type: FilterType.TAG, expression: '' })).toEqual({ ok: true, expressionType: 'TAG', subscription: '*' });
    expect(pullSubscriptionOf({ type: FilterType.TAG, expression: ' * ' })).toEqual({ ok: true, expressionType: 'TAG', subscription: '*' });
    expect(pullSubscriptionOf({ type: FilterType.TAG, expression: 'a || b' })).toEqual({ ok: true, expressionType: 'TAG', subscription: 'a || b' });
    expect(pullSubscriptionOf({ type: FilterType.FILTER_TYPE_UNSPECIFIED, expression: 'a' })).toEqual({ ok: true, expressionType: 'TAG', subscription: 'a' });
    expect(pullSubscriptionOf({ type: FilterType.SQL, expression: 'a > 1' })).toEqual({ ok: true, expressionType: 'SQL92', subscription: 'a > 1' });
    expect(pullSubscriptionOf({ type: FilterType.SQL, expression: '' })).toMatchObject({ ok: false, code: Code.ILLEGAL_FILTER_EXPRESSION });
  });
});

describe('pull timing', () => {
  it('clamps the requested long-polling time to [min, max]; absent (0) is the minimum', () => {
    expect(pullTimingOf(0, NO_DEADLINE, LIMITS)).toEqual({ ok: true, suspendMs: 5_000, askTimeoutMs: 8_000 });
    expect(pullTimingOf(1_000, NO_DEADLINE, LIMITS)).toEqual({ ok: true, suspendMs: 5_000, askTimeoutMs: 8_000 });
    expect(pullTimingOf(12_000, NO_DEADLINE, LIMITS)).toEqual({ ok: true, suspendMs: 12_000, askTimeoutMs: 15_000 });
    expect(pullTimingOf(60_000, NO_DEADLINE, LIMITS)).toEqual({ ok: true, suspendMs: 20_000, askTimeoutMs: 23_000 });
  });

  it('keeps the hold and the broker request inside the deadline', () => {
    // 10 s left, 8 s asked: the hold fits, the request's timeout is cut at the deadline.
    expect(pullTimingOf(8_000, 10_000, LIMITS)).toEqual({ ok: true, suspendMs: 8_000, askTimeoutMs: 10_000 });
    // 6 s left, 20 s asked: the poll shrinks to what is left, minus room for the answer.
    expect(pullTimingOf(20_000, 6_000, LIMITS)).toEqual({ ok: true, suspendMs: 6_000 - PULL_ANSWER_RESERVE_MS, askTimeoutMs: 6_000 });
  });

  it('refuses with ILLEGAL_POLLING_TIME when less than the minimum is left', () => {
    expect(pullTimingOf(5_000, 4_999, LIMITS)).toMatchObject({ ok: false, code: Code.ILLEGAL_POLLING_TIME });
    expect(pullTimingOf(0, 0, LIMITS)).toMatchObject({ ok: false, code: Code.ILLEGAL_POLLING_TIME });
  });

  it('always answers suspend < request timeout <= time left', () => {
    for (const remainingMs of [5_000, 5_001, 6_000, 9_999, 20_000, 23_500, 60_000, NO_DEADLINE]) {
      for (const requestedMs of [0, 1, 4_999, 5_000, 7_500, 19_999, 20_000, 20_001, 1e9]) {
        const timing = pullTimingOf(requestedMs, remainingMs, LIMITS);
        expect(timing.ok, `${requestedMs} of ${remainingMs}`).toBe(true);
        if (!timing.ok) continue;
        expect(timing.suspendMs).toBeLessThan(timing.askTimeoutMs);
        expect(timing.askTimeoutMs).toBeLessThanOrEqual(remainingMs);
        expect(timing.suspendMs).toBeLessThanOrEqual(LIMITS.longPollingMaxMs);
      }
    }
  });
});

describe('the answer', () => {
  it('derives PullStatus from the Remoting code as processPullResponse does', () => {
    expect(pullStatusOf(ResponseCode.SUCCESS)).toBe(PullStatus.FOUND);
    expect(pullStatusOf(ResponseCode.PULL_NOT_FOUND)).toBe(PullStatus.NO_NEW_MSG);
    expect(pullStatusOf(ResponseCode.PULL_RETRY_IMMEDIATELY)).toBe(PullStatus.NO_MATCHED_MSG);
    expect(pullStatusOf(ResponseCode.PULL_OFFSET_MOVED)).toBe(PullStatus.OFFSET_ILLEGAL);
    for (const code of [ResponseCode.SYSTEM_ERROR, ResponseCode.SYSTEM_BUSY, ResponseCode.TOPIC_NOT_EXIST, ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST]) {
      expect(pullStatusOf(code)).toBeUndefined();
    }
  });

  it('answers each PullStatus with PullMessageResponseStreamWriter status', () => {
    expect(pullStatusFrame(PullStatus.FOUND, 2)).toEqual({ code: Code.OK, message: 'OK' });
    expect(pullStatusFrame(PullStatus.FOUND, 0)).toEqual({ code: Code.MESSAGE_NOT_FOUND, message: 'no match message' });
    expect(pullStatusFrame(PullStatus.NO_NEW_MSG, 0)).toEqual({ code: Code.MESSAGE_NOT_FOUND, message: 'no new message' });
    expect(pullStatusFrame(PullStatus.NO_MATCHED_MSG, 0)).toEqual({ code: Code.MESSAGE_NOT_FOUND, message: 'no new message' });
    expect(pullStatusFrame(PullStatus.OFFSET_ILLEGAL, 0)).toEqual({ code: Code.ILLEGAL_OFFSET, message: 'ILLEGAL_OFFSET' });
  });

  it('maps refusals as ResponseBuilder does', () => {
    expect(pullRefusalCodeOf(ResponseCode.TOPIC_NOT_EXIST)).toBe(Code.TOPIC_NOT_FOUND);
    expect(pullRefusalCodeOf(ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST)).toBe(Code.CONSUMER_GROUP_NOT_FOUND);
    expect(pullRefusalCodeOf(ResponseCode.SYSTEM_BUSY)).toBe(Code.TOO_MANY_REQUESTS);
    expect(pullRefusalCodeOf(ResponseCode.REQUEST_CODE_NOT_SUPPORTED)).toBe(Code.NOT_IMPLEMENTED);
    expect(pullRefusalCodeOf(ResponseCode.SUBSCRIPTION_PARSE_FAILED)).toBe(Code.ILLEGAL_FILTER_EXPRESSION);
    expect(pullRefusalCodeOf(ResponseCode.NO_PERMISSION)).toBe(Code.FORBIDDEN);
    expect(pullRefusalCodeOf(ResponseCode.SYSTEM_ERROR)).toBe(Code.INTERNAL_SERVER_ERROR);
  });

  it('writes status, then the messages, then next_offset', () => {
    const message = { topic: { name: 'T', resourceNamespace: '' } } as unknown as M.Message;
    expect(pullFramesOf(PullStatus.FOUND, [message, message], 9)).toEqual([{ status: { code: Code.OK, message: 'OK' } }, { message }, { message }, { nextOffset: 9 }]);
    expect(pullFramesOf(PullStatus.NO_NEW_MSG, [], 4)).toEqual([{ status: { code: Code.MESSAGE_NOT_FOUND, message: 'no new message' } }, { nextOffset: 4 }]);
    expect(pullFramesOf(PullStatus.OFFSET_ILLEGAL, [], 3)).toEqual([{ status: { code: Code.ILLEGAL_OFFSET, message: 'ILLEGAL_OFFSET' } }, { nextOffset: 3 }]);
  });

  it('turns the records of the body into messages without receipt handles', () => {
    const messages = pulledMessagesOf(body(record(0), record(1, { properties: encodeMessageProperties({ TAGS: 'x' }) })), 32);
    expect(Array.isArray(messages)).toBe(true);
    if (!Array.isArray(messages)) return;
    expect(messages).toHaveLength(2);
    const first = messages[0]!;
    expect(first.topic?.name).toBe('PullTopic');
    expect(Buffer.from(first.body).toString()).toBe('body-0');
    expect(first.userProperties).toEqual({ color: 'red' });
    expect(first.systemProperties).toMatchObject({ tag: 'tag0', keys: ['k1', 'k2'], messageId: 'ID0', queueId: 2, queueOffset: 0, deliveryAttempt: 1 });
    expect(first.systemProperties).not.toHaveProperty('receiptHandle');
    expect(first.systemProperties).not.toHaveProperty('invisibleDuration');
    // delivery_attempt is reconsumeTimes + 1.
    expect(messages[1]!.systemProperties).toMatchObject({ tag: 'x', queueOffset: 1, deliveryAttempt: 2 });
    expect(pulledMessagesOf(undefined, 32)).toEqual([]);
  });

  it('refuses a body with more records than were asked for', () => {
    expect(pulledMessagesOf(body(record(0), record(1), record(2)), 2)).toMatchObject({ ok: false, code: Code.INTERNAL_SERVER_ERROR });
  });
});
