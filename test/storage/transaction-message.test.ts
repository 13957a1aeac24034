import { describe, expect, it } from 'vitest';
import {
  decodeMessageProperties,
  decodeRecord,
  encodeMessageProperties,
  encodeRecord,
  MESSAGE_MAGIC_CODE,
  MessageSysFlag,
  offsetMessageId,
  recordSize,
  type RecordInput,
  type RecordView,
} from '../../src/storage/message-record.ts';
import {
  checkEndRequest,
  checkMessageBody,
  committedMessage,
  discardedMessage,
  endImmunityMs,
  isCommitRecord,
  isTransactionPrepared,
  opMessage,
  readHalfMessage,
  readOpMessage,
  renewedHalfMessage,
  resetTransactionValue,
  RMQ_SYS_TRANS_HALF_TOPIC,
  RMQ_SYS_TRANS_OP_HALF_TOPIC,
  toHalfMessage,
  TRANS_CHECK_MAX_TIME_TOPIC,
  transactionIdentity,
  type EndRequest,
} from '../../src/storage/transaction-message.ts';

const STORE_HOST = { address: '127.0.0.1', port: 10911 };
const BORN_HOST = { address: '10.0.0.7', port: 54321 };
const T0 = 1_700_000_000_000;
const { TRANSACTION_PREPARED_TYPE, TRANSACTION_COMMIT_TYPE, TRANSACTION_ROLLBACK_TYPE, COMPRESSED_FLAG, MULTI_TAGS_FLAG } = MessageSysFlag;

/** A stored record with the given fields (defaults: a half message at queue offset 4). */
function record(overrides: Partial<RecordInput> & { props?: Record<string, string> } = {}): RecordView {
  const { props, ...rest } = overrides;
  const input: RecordInput = {
    topic: RMQ_SYS_TRANS_HALF_TOPIC,
    queueId: 0,
    flag: 7,
    queueOffset: 4,
    physicalOffset: 4096,
    sysFlag: COMPRESSED_FLAG,
    bornTimestampMs: T0 - 100,
    bornHost: BORN_HOST,
    storeTimestampMs: T0,
    storeHost: STORE_HOST,
    reconsumeTimes: 2,
    preparedTransactionOffset: 0,
    body: new Uint8Array(Buffer.from('payload')),
    properties: encodeMessageProperties({ TAGS: 'TagA', UNIQ_KEY: 'U1', PGROUP: 'PG', TRAN_MSG: 'true', REAL_TOPIC: 'TopicA', REAL_QID: '3', ...props }),
    ...rest,
  };
  const bytes = new Uint8Array(recordSize(input));
  encodeRecord(bytes, 0, input);
  return decodeRecord(bytes, 0);
}

function endRequest(overrides: Partial<EndRequest> = {}): EndRequest {
  return { producerGroup: 'PG', tranStateTableOffset: 4, commitLogOffset: 4096, msgId: 'U1', transactionId: 'U1', fromTransactionCheck: false, ...overrides };
}

describe('transaction records', () => {
  it('stores a half message in the half queue with its real destination, transaction bits reset', () => {
    const properties = new Map([['UNIQ_KEY', 'U1'], ['TRAN_MSG', 'true'], ['TRAN_PREPARED_QUEUE_OFFSET', '0'], ['TRANSACTION_CHECK_TIMES', '99']]);
    const destination = toHalfMessage(properties, 'TopicA', 3, TRANSACTION_PREPARED_TYPE | MULTI_TAGS_FLAG);
    expect(destination).toEqual({ topic: RMQ_SYS_TRANS_HALF_TOPIC, queueId: 0, sysFlag: MULTI_TAGS_FLAG });
    expect(Object.fromEntries(properties)).toEqual({ UNIQ_KEY: 'U1', TRAN_MSG: 'true', __transactionId__: 'U1', REAL_TOPIC: 'TopicA', REAL_QID: '3' });
    const noKey = new Map<string, string>();
    toHalfMessage(noKey, 'TopicA', 0, TRANSACTION_PREPARED_TYPE);
    expect(noKey.has('__transactionId__')).toBe(false);
    expect(() => toHalfMessage(new Map(), RMQ_SYS_TRANS_HALF_TOPIC, 0, 0)).toThrow();
  });

  it('recognizes a half message by TRAN_MSG, as Boolean.parseBoolean reads it', () => {
    expect(isTransactionPrepared(new Map([['TRAN_MSG', 'true']]))).toBe(true);
    expect(isTransactionPrepared(new Map([['TRAN_MSG', 'TRUE']]))).toBe(true);
    expect(isTransactionPrepared(new Map([['TRAN_MSG', 'yes']]))).toBe(false);
    expect(isTransactionPrepared(new Map())).toBe(false);
    expect(resetTransactionValue(TRANSACTION_ROLLBACK_TYPE | COMPRESSED_FLAG, TRANSACTION_COMMIT_TYPE)).toBe(TRANSACTION_COMMIT_TYPE | COMPRESSED_FLAG);
  });

  it('reads a half record, its identity being its own queue offset or the renewed copy\'s TRAN_PREPARED_QUEUE_OFFSET', () => {
    const read = readHalfMessage(record({ props: { CHECK_IMMUNITY_TIME_IN_SECONDS: '9', DELAY: '2' } }));
    expect(read).toEqual({
      ok: true,
      half: {
        transactionId: 4,
        queueOffset: 4,
        physicalOffset: 4096,
        producerGroup: 'PG',
        realTopic: 'TopicA',
        realQueueId: 3,
        uniqKey: 'U1',
        checkTimes: 0,
        checkImmunityText: '9',
        delayText: '2',
        bornTimestampMs: T0 - 100,
        storeTimestampMs: T0,
        endOffset: 4096 + record().totalSize + 'CHECK_IMMUNITY_TIME_IN_SECONDS\u00019\u0002DELAY\u00012\u0002'.length,
      },
    });
    expect(transactionIdentity(10, new Map([['TRAN_PREPARED_QUEUE_OFFSET', '3']]))).toBe(3);
    // A value from the future or garbage cannot make a record pass for another transaction.
    expect(transactionIdentity(10, new Map([['TRAN_PREPARED_QUEUE_OFFSET', '11']]))).toBe(10);
    expect(transactionIdentity(10, new Map([['TRAN_PREPARED_QUEUE_OFFSET', 'x']]))).toBe(10);
    expect(readHalfMessage(record({ topic: 'TopicA' }))).toMatchObject({ ok: false });
    expect(readHalfMessage(record({ properties: encodeMessageProperties({ REAL_QID: '1' }) }))).toMatchObject({ ok: false, problem: 'half message without REAL_TOPIC' });
    expect(readHalfMessage(record({ props: { REAL_QID: 'x' } }))).toMatchObject({ ok: false });
    expect(readHalfMessage(record({ props: { TRANSACTION_CHECK_TIMES: '5' } }))).toMatchObject({ ok: true, half: { checkTimes: 5 } });
  });

  it('builds the committed message from a half record', () => {
    const view = record({ props: { TRAN_PREPARED_QUEUE_OFFSET: '1', TRANSACTION_CHECK_TIMES: '2', KEYS: 'k1' } });
    const built = committedMessage(view);
    if ('problem' in built) throw new Error(built.problem);
    expect(built).toMatchObject({ topic: 'TopicA', queueId: 3, flag: 7, bornTimestampMs: T0 - 100, bornHost: BORN_HOST, reconsumeTimes: 2, preparedTransactionOffset: 4096 });
    expect(built.sysFlag).toBe(COMPRESSED_FLAG | TRANSACTION_COMMIT_TYPE);
    expect(Buffer.from(built.body).toString()).toBe('payload');
    expect(Object.fromEntries(built.properties)).toEqual({ TAGS: 'TagA', UNIQ_KEY: 'U1', PGROUP: 'PG', TRANSACTION_CHECK_TIMES: '2', KEYS: 'k1' });
    expect(committedMessage(record({ topic: 'Elsewhere' }))).toHaveProperty('problem');
  });

  it('renews a half with one more check and the transaction identity, keeping flag and reconsumeTimes', () => {
    const renewal = renewedHalfMessage(record({ props: { TRANSACTION_CHECK_TIMES: '1' } }), 2);
    expect(renewal).toMatchObject({ topic: RMQ_SYS_TRANS_HALF_TOPIC, queueId: 0, flag: 7, reconsumeTimes: 2, sysFlag: COMPRESSED_FLAG, bornTimestampMs: T0 - 100 });
    expect(Object.fromEntries(decodeMessageProperties(renewal.properties!))).toMatchObject({ TRANSACTION_CHECK_TIMES: '2', TRAN_PREPARED_QUEUE_OFFSET: '4', REAL_TOPIC: 'TopicA' });
    const again = renewedHalfMessage(record({ queueOffset: 9, props: { TRAN_PREPARED_QUEUE_OFFSET: '4' } }), 3);
    expect(decodeMessageProperties(again.properties!).get('TRAN_PREPARED_QUEUE_OFFSET')).toBe('4');
    expect(() => renewedHalfMessage(record(), 0)).toThrow();
  });

  it('copies a discarded half as it is to TRANS_CHECK_MAX_TIME_TOPIC/0', () => {
    const view = record();
    const copy = discardedMessage(view);
    expect(copy).toMatchObject({ topic: TRANS_CHECK_MAX_TIME_TOPIC, queueId: 0, properties: view.properties, sysFlag: view.sysFlag, flag: 7 });
  });

  it('writes op messages in RocketMQ\'s format and reads RocketMQ\'s batched ones', () => {
    const op = opMessage(42, 'ROLLBACK', STORE_HOST, T0);
    expect(op).toMatchObject({ topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, queueId: 0, bornTimestampMs: T0, bornHost: STORE_HOST, sysFlag: 0 });
    expect(Buffer.from(op.body).toString()).toBe('42,');
    expect(Object.fromEntries(decodeMessageProperties(op.properties!))).toEqual({ TAGS: 'd', KEYS: '42', __transactionEnd__: 'ROLLBACK' });
    const stored = record({ topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, body: op.body, properties: op.properties!, physicalOffset: 100 });
    expect(readOpMessage(stored)).toEqual({ transactionIds: [42], outcome: 'ROLLBACK', endOffset: 100 + stored.totalSize });
    const batched = record({ topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, body: new Uint8Array(Buffer.from('3,5,x,7,')), properties: encodeMessageProperties({ TAGS: 'd' }) });
    expect(readOpMessage(batched)).toMatchObject({ transactionIds: [3, 5, 7], outcome: undefined });
    expect(readOpMessage(record({ topic: RMQ_SYS_TRANS_OP_HALF_TOPIC, properties: encodeMessageProperties({ TAGS: 'e' }) }))).toBeUndefined();
    expect(readOpMessage(record())).toBeUndefined();
  });

  it('tells commit records by their transaction bits', () => {
    expect(isCommitRecord(record({ topic: 'TopicA', sysFlag: TRANSACTION_COMMIT_TYPE, preparedTransactionOffset: 8 }))).toBe(true);
    expect(isCommitRecord(record({ topic: 'TopicA', sysFlag: 0 }))).toBe(false);
    expect(isCommitRecord(record({ topic: 'TopicA', sysFlag: TRANSACTION_ROLLBACK_TYPE }))).toBe(false);
  });

  it('encodes the check\'s body as MessageDecoder.encode does: the renewed half in its real topic and queue', () => {
    const renewal = renewedHalfMessage(record(), 1);
    const body = checkMessageBody(renewal, { queueOffset: 11, physicalOffset: 8192, storeTimestampMs: T0 + 5 }, STORE_HOST, 'TopicA', 3);
    const view = decodeRecord(body, 0);
    expect(view.magicCode).toBe(MESSAGE_MAGIC_CODE);
    expect(view).toMatchObject({ topic: 'TopicA', queueId: 3, queueOffset: 11, physicalOffset: 8192, storeTimestampMs: T0 + 5, flag: 7, reconsumeTimes: 2 });
    expect(view.bornHost).toEqual(BORN_HOST);
    expect(Buffer.from(view.body).toString()).toBe('payload');
    expect(view.propertiesMap().get('TRANSACTION_CHECK_TIMES')).toBe('1');
  });

  it('checks END_TRANSACTION against the half record as EndTransactionProcessor does', () => {
    const view = record();
    expect(checkEndRequest(view, endRequest(), T0, 6_000, STORE_HOST)).toBeUndefined();
    expect(checkEndRequest(view, endRequest({ producerGroup: 'X' }), T0, 6_000, STORE_HOST)).toEqual({ reason: 'mismatch', remark: 'The producer group wrong' });
    expect(checkEndRequest(view, endRequest({ tranStateTableOffset: 5 }), T0, 6_000, STORE_HOST)).toEqual({ reason: 'mismatch', remark: 'The transaction state table offset wrong' });
    expect(checkEndRequest(view, endRequest({ commitLogOffset: 1 }), T0, 6_000, STORE_HOST)).toEqual({ reason: 'mismatch', remark: 'The commit log offset wrong' });
    expect(checkEndRequest(view, endRequest({ msgId: 'U2', transactionId: 'U2' }), T0, 6_000, STORE_HOST)).toEqual({ reason: 'mismatch', remark: 'The message id wrong' });
    expect(checkEndRequest(view, endRequest({ msgId: 'U2', transactionId: 'U1' }), T0, 6_000, STORE_HOST)).toBeUndefined();
    expect(checkEndRequest(view, endRequest({ msgId: offsetMessageId(STORE_HOST, 4096), transactionId: undefined }), T0, 6_000, STORE_HOST)).toBeUndefined();
    expect(checkEndRequest(record({ topic: 'TopicA' }), endRequest(), T0, 6_000, STORE_HOST)).toMatchObject({ reason: 'notFound' });
    // CHECK_IMMUNITY_TIME_IN_SECONDS: a producer's own end must come within max(immunity, transactionTimeOut).
    const immune = record({ props: { CHECK_IMMUNITY_TIME_IN_SECONDS: '10' } });
    expect(checkEndRequest(immune, endRequest(), T0 - 100 + 10_000, 6_000, STORE_HOST)).toBeUndefined();
    expect(checkEndRequest(immune, endRequest(), T0 - 100 + 10_001, 6_000, STORE_HOST)).toMatchObject({ reason: 'lateEnd' });
    expect(checkEndRequest(immune, endRequest({ fromTransactionCheck: true }), T0 + 60_000, 6_000, STORE_HOST)).toBeUndefined();
    expect(endImmunityMs('2', 6_000)).toBe(6_000);
    expect(endImmunityMs('20', 6_000)).toBe(20_000);
    expect(endImmunityMs('soon', 6_000)).toBe(6_000);
  });
});
