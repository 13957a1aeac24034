// Tests for the Broker's typed Remoting headers. The extFields fixtures are written from RocketMQ's Java
// header classes (field names, the V2 letters a..n) and from what real clients send, not from our specs.
// fast-check prints the seed and the shrunk counterexample on failure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  boundaryTypeOf,
  CreateTopicRequestHeader,
  EndTransactionRequestHeader,
  type ExtFields,
  formatSendMessageRequest,
  GetMaxOffsetRequestHeader,
  HEADER_ERROR_RESPONSE_CODE,
  HeaderError,
  HeaderErrorCode,
  headerErrorResponse,
  HeartbeatResponseFields,
  parseSendMessageRequest,
  type ParsedHeader,
  PullMessageRequestHeader,
  PullSysFlag,
  PullMessageResponseHeader,
  QueryConsumerOffsetRequestHeader,
  QueryMessageResponseHeader,
  ResetOffsetRequestHeader,
  SearchOffsetResponseHeader,
  type SendMessageRequest,
  SendMessageResponseHeader,
  sendStatusOf,
  topicListOf,
  UnregisterClientRequestHeader,
  ViewMessageRequestHeader,
} from '../../../src/net/remoting/broker-headers.ts';
import { createRequest, RequestCode, ResponseCode } from '../../../src/net/remoting/remoting-command.ts';

function errorOf(run: () => unknown): HeaderError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(HeaderError);
    return error as HeaderError;
  }
  throw new Error('expected a HeaderError');
}

/** SendMessageRequestHeaderV2 as a Java 5.x producer sends it: letters a..n, values as strings. */
const V2_FIELDS: ExtFields = {
  a: 'please_rename_unique_group_name', // producerGroup
  b: 'TopicTest', // topic
  c: 'TBW102', // defaultTopic
  d: '4', // defaultTopicQueueNums
  e: '3', // queueId
  f: '0', // sysFlag
  g: '1700000000123', // bornTimestamp
  h: '0', // flag
  i: 'KEYS\u0001k1\u0002UNIQ_KEY\u0001AC11000100002A9F0000000000000001\u0002WAIT\u0001true\u0002', // properties
  j: '0', // reconsumeTimes
  k: 'false', // unitMode
  l: '16', // maxReconsumeTimes (Java's comment: consumeRetryTimes)
  m: 'true', // batch
  n: 'broker-a', // brokerName
};

const EXPECTED: SendMessageRequest = {
  producerGroup: 'please_rename_unique_group_name',
  topic: 'TopicTest',
  defaultTopic: 'TBW102',
  defaultTopicQueueNums: 4,
  queueId: 3,
  sysFlag: 0,
  bornTimestamp: 1700000000123,
  flag: 0,
  properties: 'KEYS\u0001k1\u0002UNIQ_KEY\u0001AC11000100002A9F0000000000000001\u0002WAIT\u0001true\u0002',
  reconsumeTimes: 0,
  unitMode: false,
  maxReconsumeTimes: 16,
  batch: true,
  brokerName: 'broker-a',
};

describe('send request headers', () => {
  it('maps the V2 letters a..n of SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE', () => {
    expect(parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, V2_FIELDS)).toEqual(EXPECTED);
    expect(parseSendMessageRequest(RequestCode.SEND_BATCH_MESSAGE, V2_FIELDS)).toEqual(EXPECTED);
  });

  it('reads the long names of SEND_MESSAGE, as the Go client sends them', () => {
    const fields: ExtFields = {
      producerGroup: 'pg',
      topic: 'TopicTest',
      queueId: '1',
      sysFlag: '0',
      bornTimestamp: '1700000000000',
      flag: '0',
      reconsumeTimes: '0',
      unitMode: 'false',
      maxReconsumeTimes: '16',
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: '4',
      batch: 'false',
      properties: 'TAGS\u0001a\u0002',
      bname: 'broker-a',
    };
    expect(parseSendMessageRequest(RequestCode.SEND_MESSAGE, fields)).toEqual({
      producerGroup: 'pg',
      topic: 'TopicTest',
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 4,
      queueId: 1,
      sysFlag: 0,
      bornTimestamp: 1700000000000,
      flag: 0,
      properties: 'TAGS\u0001a\u0002',
      reconsumeTimes: 0,
      unitMode: false,
      batch: false,
      maxReconsumeTimes: 16,
      brokerName: 'broker-a',
    });
  });

  it('does not read long names from a V2 header, nor letters from a V1 header', () => {
    expect(errorOf(() => parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, { producerGroup: 'pg' })).field).toBe('a');
    expect(errorOf(() => parseSendMessageRequest(RequestCode.SEND_MESSAGE, V2_FIELDS)).field).toBe('producerGroup');
  });

  it('fills the defaults Java getters give: properties "", reconsumeTimes 0, unitMode and batch false', () => {
    const { i, j, k, l, m, n, ...required } = V2_FIELDS;
    const parsed = parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, required);
    expect(parsed).toMatchObject({ properties: '', reconsumeTimes: 0, unitMode: false, batch: false });
    expect(parsed.maxReconsumeTimes).toBeUndefined();
    expect(parsed.brokerName).toBeUndefined();
  });

  it('formats V2 with exactly the letters the Java client writes', () => {
    expect(formatSendMessageRequest(EXPECTED, 'V2')).toEqual(V2_FIELDS);
  });

  it('round-trips V1 through format and parse', () => {
    const withRpc = { ...EXPECTED, namespace: 'ns1', oneway: false };
    const fields = formatSendMessageRequest(withRpc, 'V1');
    expect(fields).toMatchObject({ producerGroup: EXPECTED.producerGroup, bname: 'broker-a', ns: 'ns1', oway: 'false' });
    expect(parseSendMessageRequest(RequestCode.SEND_MESSAGE, fields)).toEqual(withRpc);
  });

  it('reads booleans as Boolean.parseBoolean: "TRUE" is true, anything else false', () => {
    expect(parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, { ...V2_FIELDS, m: 'TRUE' }).batch).toBe(true);
    expect(parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, { ...V2_FIELDS, m: 'yes' }).batch).toBe(false);
  });
});

describe('header errors', () => {
  it('names a missing required field, by wire name and our name', () => {
    const { b, ...noTopic } = V2_FIELDS;
    const error = errorOf(() => parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, noTopic));
    expect(error.code).toBe(HeaderErrorCode.MISSING_FIELD);
    expect(error.header).toBe('SendMessageRequestHeaderV2');
    expect(error.field).toBe('b');
    expect(error.message).toBe('SendMessageRequestHeaderV2: the custom field <b> (topic) is null');
  });

  it.each([
    ['abc', 'not digits'],
    ['', 'empty'],
    ['2147483648', 'beyond int32'],
    ['1.5', 'a fraction'],
    [' 1', 'a space'],
  ])('refuses queueId %j (%s) as an int', (raw) => {
    const error = errorOf(() => parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, { ...V2_FIELDS, e: raw }));
    expect(error.code).toBe(HeaderErrorCode.BAD_NUMBER);
    expect(error.field).toBe('e');
  });

  it('accepts what Integer.parseInt accepts: a sign, leading zeros, the int32 extremes', () => {
    for (const [raw, value] of [['+7', 7], ['-1', -1], ['007', 7], ['-2147483648', -2147483648], ['2147483647', 2147483647]] as const) {
      expect(parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, { ...V2_FIELDS, e: raw }).queueId).toBe(value);
    }
  });

  it('refuses a long beyond what a JS number holds exactly', () => {
    const error = errorOf(() => parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, { ...V2_FIELDS, g: '9223372036854775807' }));
    expect(error.code).toBe(HeaderErrorCode.BAD_NUMBER);
    expect(error.field).toBe('g');
  });

  it('leaves a bad optional number unset in a reflectively decoded header, errs in a FastCodesHeader', () => {
    const pull = {
      consumerGroup: 'cg',
      topic: 'T',
      queueId: '0',
      queueOffset: '0',
      maxMsgNums: '32',
      sysFlag: '0',
      commitOffset: '0',
      suspendTimeoutMillis: '15000',
      subVersion: '0',
      maxMsgBytes: 'x',
    };
    expect(errorOf(() => PullMessageRequestHeader.parse(pull)).field).toBe('maxMsgBytes');
    const unregister = UnregisterClientRequestHeader.parse({ clientID: 'c' });
    expect(unregister).toEqual({ clientID: 'c' });
    expect(ResetOffsetRequestHeader.parse({ group: 'g', topic: 't', timestamp: '1', isForce: 'true', queueId: 'x' }).queueId).toBe(-1);
  });

  it('ignores inherited object keys such as constructor and __proto__', () => {
    const fields = JSON.parse('{"__proto__":"x","constructor":"y"}') as ExtFields;
    expect(errorOf(() => ViewMessageRequestHeader.parse(fields)).field).toBe('offset');
  });

  it("runs Java's checkFields rules", () => {
    const end = {
      producerGroup: 'pg',
      tranStateTableOffset: '1',
      commitLogOffset: '100',
      commitOrRollback: '8',
      msgId: 'AC11',
    };
    expect(EndTransactionRequestHeader.parse(end)).toMatchObject({ commitOrRollback: 8, fromTransactionCheck: false });
    const wrong = errorOf(() => EndTransactionRequestHeader.parse({ ...end, commitOrRollback: '4' }));
    expect(wrong.code).toBe(HeaderErrorCode.BAD_VALUE);
    expect(wrong.message).toBe('commitOrRollback field wrong');

    const create = {
      topic: 'T',
      defaultTopic: 'TBW102',
      readQueueNums: '8',
      writeQueueNums: '8',
      perm: '6',
      topicFilterType: 'SINGLE_TAG',
    };
    expect(CreateTopicRequestHeader.parse(create)).toMatchObject({ order: false, force: false, perm: 6 });
    expect(errorOf(() => CreateTopicRequestHeader.parse({ ...create, topicFilterType: 'single_tag' })).message).toBe(
      'topicFilterType = [single_tag] value invalid',
    );
  });

  it('answers SYSTEM_ERROR, as NettyRemotingAbstract does for any processor exception', () => {
    expect(HEADER_ERROR_RESPONSE_CODE).toBe(ResponseCode.SYSTEM_ERROR);
    const request = createRequest({ code: RequestCode.SEND_MESSAGE_V2, opaque: 42, serializeType: 'ROCKETMQ' });
    const error = errorOf(() => parseSendMessageRequest(request.code, {}));
    const response = headerErrorResponse(request, error);
    expect(response).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, opaque: 42, serializeType: 'ROCKETMQ' });
    expect(response.remark).toContain('<a> (producerGroup)');
  });
});

describe('response headers', () => {
  it('formats a send response with the fields a Java client reads', () => {
    const fields = SendMessageResponseHeader.format({
      msgId: 'C0A8000100002A9F0000000000000064',
      queueId: 3,
      queueOffset: 17,
      regionId: 'DefaultRegion',
      traceOn: true,
    });
    expect(fields).toEqual({
      msgId: 'C0A8000100002A9F0000000000000064',
      queueId: '3',
      queueOffset: '17',
      MSG_REGION: 'DefaultRegion',
      TRACE_ON: 'true',
    });
    expect(SendMessageResponseHeader.parse(fields)).toEqual({
      msgId: 'C0A8000100002A9F0000000000000064',
      queueId: 3,
      queueOffset: 17,
      regionId: 'DefaultRegion',
      traceOn: true,
    });
  });

  it('formats pull, offset and query responses under Java field names', () => {
    expect(
      PullMessageResponseHeader.format({ suggestWhichBrokerId: 0, nextBeginOffset: 32, minOffset: 0, maxOffset: 100, topicSysFlag: 0 }),
    ).toEqual({ suggestWhichBrokerId: '0', nextBeginOffset: '32', minOffset: '0', maxOffset: '100', topicSysFlag: '0' });
    expect(SearchOffsetResponseHeader.format({ offset: -1 })).toEqual({ offset: '-1' });
    expect(QueryMessageResponseHeader.format({ indexLastUpdateTimestamp: 1700000000000, indexLastUpdatePhyoffset: 4096 })).toEqual({
      indexLastUpdateTimestamp: '1700000000000',
      indexLastUpdatePhyoffset: '4096',
    });
    expect(HeartbeatResponseFields.format({ isSupportHeartBeatV2: true, isSubChange: false })).toEqual({
      IS_SUPPORT_HEART_BEAT_V2: 'true',
      IS_SUB_CHANGE: 'false',
    });
  });

  it('asserts on a value that cannot be written (a programmer error, not a reply)', () => {
    expect(() => SearchOffsetResponseHeader.format({ offset: 1.5 })).toThrow(/safe integer/);
    expect(() => SendMessageResponseHeader.format({ msgId: 'x', queueId: 2 ** 31, queueOffset: 0 })).toThrow(/int32/);
    expect(() => SearchOffsetResponseHeader.format({} as never)).toThrow(/required/);
  });

  it('maps send response codes to the client SendStatus', () => {
    expect(sendStatusOf(ResponseCode.SUCCESS)).toBe('SEND_OK');
    expect(sendStatusOf(ResponseCode.FLUSH_DISK_TIMEOUT)).toBe('FLUSH_DISK_TIMEOUT');
    expect(sendStatusOf(ResponseCode.FLUSH_SLAVE_TIMEOUT)).toBe('FLUSH_SLAVE_TIMEOUT');
    expect(sendStatusOf(ResponseCode.SLAVE_NOT_AVAILABLE)).toBe('SLAVE_NOT_AVAILABLE');
    expect(sendStatusOf(ResponseCode.SYSTEM_BUSY)).toBeUndefined();
  });
});

describe('helpers', () => {
  it('reads BoundaryType as BoundaryType.getType does', () => {
    expect(boundaryTypeOf('UPPER')).toBe('UPPER');
    expect(boundaryTypeOf('upper')).toBe('UPPER');
    expect(boundaryTypeOf('LOWER')).toBe('LOWER');
    expect(boundaryTypeOf(undefined)).toBe('LOWER');
    expect(boundaryTypeOf('sideways')).toBe('LOWER');
  });

  it("splits GetConsumeStatsRequestHeader.topicList on ';'", () => {
    expect(topicListOf('a;b;;c')).toEqual(['a', 'b', 'c']);
    expect(topicListOf(undefined)).toEqual([]);
  });

  it('defaults GetMaxOffsetRequestHeader.committed to true and QueryConsumerOffset.setZeroIfNotFound to unset', () => {
    expect(GetMaxOffsetRequestHeader.parse({ topic: 't', queueId: '0' }).committed).toBe(true);
    expect(QueryConsumerOffsetRequestHeader.parse({ consumerGroup: 'g', topic: 't', queueId: '0' }).setZeroIfNotFound).toBeUndefined();
  });
});

describe('properties', () => {
  const int32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
  const long = fc.maxSafeInteger().map((n) => (n % 2 === 0 ? n : -n));
  const text = fc.string({ unit: 'binary', maxLength: 20 });
  const sendRequest = fc.record(
    {
      producerGroup: text,
      topic: text,
      defaultTopic: text,
      defaultTopicQueueNums: int32,
      queueId: int32,
      sysFlag: int32,
      bornTimestamp: long,
      flag: int32,
      properties: text,
      reconsumeTimes: int32,
      unitMode: fc.boolean(),
      batch: fc.boolean(),
      maxReconsumeTimes: int32,
      brokerName: text,
    },
    { requiredKeys: ['producerGroup', 'topic', 'defaultTopic', 'defaultTopicQueueNums', 'queueId', 'sysFlag', 'bornTimestamp', 'flag', 'properties', 'reconsumeTimes', 'unitMode', 'batch'] },
  );

  it('parse(format(header)) is the header, in both send forms', () => {
    fc.assert(
      fc.property(sendRequest, fc.constantFrom('V1', 'V2') as fc.Arbitrary<'V1' | 'V2'>, (header, form) => {
        const code = form === 'V1' ? RequestCode.SEND_MESSAGE : RequestCode.SEND_MESSAGE_V2;
        expect(parseSendMessageRequest(code, formatSendMessageRequest(header, form))).toEqual(header);
      }),
      { numRuns: 300 },
    );
  });

  it('throws only HeaderError on arbitrary extFields', () => {
    const fields = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n'), fc.oneof(text, int32.map(String)));
    fc.assert(
      fc.property(fields, (extFields) => {
        try {
          parseSendMessageRequest(RequestCode.SEND_MESSAGE_V2, extFields);
        } catch (error) {
          expect(error).toBeInstanceOf(HeaderError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('types', () => {
  it('gives every codec a parsed type with required fields required and optional ones optional', () => {
    const pull: ParsedHeader<typeof PullMessageRequestHeader> = PullMessageRequestHeader.parse({
      consumerGroup: 'cg',
      topic: 'T',
      queueId: '1',
      queueOffset: '5',
      maxMsgNums: '32',
      sysFlag: String(PullSysFlag.FLAG_SUSPEND | PullSysFlag.FLAG_COMMIT_OFFSET),
      commitOffset: '4',
      suspendTimeoutMillis: '15000',
      subVersion: '1700000000000',
      subscription: 'TagA || TagB',
      expressionType: 'TAG',
      bname: 'broker-a',
      lo: 'true',
    });
    const queueOffset: number = pull.queueOffset;
    const subscription: string | undefined = pull.subscription;
    expect({ queueOffset, subscription, brokerName: pull.brokerName, logical: pull.logical }).toEqual({
      queueOffset: 5,
      subscription: 'TagA || TagB',
      brokerName: 'broker-a',
      logical: true,
    });
    expect(pull.sysFlag & PullSysFlag.FLAG_SUSPEND).not.toBe(0);
  });
});
