// Tests for the Broker's JSON bodies. Fixtures are the text Java's fastjson writes for RocketMQ's body
// classes (properties sorted by name, MessageQueue map keys as objects), written out by hand.
// fast-check prints the seed and the shrunk counterexample on failure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BODY_ERROR_RESPONSE_CODE,
  BodyError,
  BodyErrorCode,
  bodyErrorResponse,
  CONSUME_FROM_WHERES,
  CONSUME_TYPES,
  type HeartbeatData,
  formatConsumeStats,
  formatConsumerConnection,
  formatGetConsumerListByGroupResponseBody,
  formatHeartbeatData,
  formatKVTable,
  formatLockBatchRequestBody,
  formatLockBatchResponseBody,
  formatResetOffsetBody,
  formatSubscriptionGroupWrapper,
  formatTopicConfigSerializeWrapper,
  formatTopicStatsTable,
  MESSAGE_MODELS,
  parseConsumeStats,
  parseConsumerConnection,
  parseGetConsumerListByGroupResponseBody,
  parseHeartbeatData,
  parseKVTable,
  parseLockBatchRequestBody,
  parseLockBatchResponseBody,
  parseResetOffsetBody,
  parseSubscriptionGroupWrapper,
  parseTopicConfigSerializeWrapper,
  parseTopicStatsTable,
  parseUnlockBatchRequestBody,
} from '../../../src/net/remoting/broker-bodies.ts';
import { FastjsonErrorCode } from '../../../src/net/remoting/fastjson.ts';
import { createRequest, RequestCode, ResponseCode } from '../../../src/net/remoting/remoting-command.ts';

const utf8 = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'utf8'));
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

function errorOf(run: () => unknown): BodyError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BodyError);
    return error as BodyError;
  }
  throw new Error('expected a BodyError');
}

/** HeartbeatData as a Java 5.x push consumer and producer send it (fastjson, properties sorted). */
const JAVA_HEARTBEAT =
  '{"clientID":"192.168.0.2@12345#2436524816583083","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",' +
  '"consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[' +
  '{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1700000000000,' +
  '"tagsSet":["TagA"],"topic":"TopicTest"},{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*",' +
  '"subVersion":1700000000001,"tagsSet":[],"topic":"%RETRY%cg"}],"unitMode":false}],"heartbeatFingerprint":0,' +
  '"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"pg"}],"withoutSub":false}';

const HEARTBEAT: HeartbeatData = {
  clientID: '192.168.0.2@12345#2436524816583083',
  producerDataSet: [{ groupName: 'CLIENT_INNER_PRODUCER' }, { groupName: 'pg' }],
  consumerDataSet: [
    {
      groupName: 'cg',
      consumeType: 'CONSUME_PASSIVELY',
      messageModel: 'CLUSTERING',
      consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET',
      subscriptionDataSet: [
        {
          classFilterMode: false,
          topic: 'TopicTest',
          subString: 'TagA',
          tagsSet: ['TagA'],
          codeSet: [2598919],
          subVersion: 1700000000000,
          expressionType: 'TAG',
        },
        {
          classFilterMode: false,
          topic: '%RETRY%cg',
          subString: '*',
          tagsSet: [],
          codeSet: [],
          subVersion: 1700000000001,
          expressionType: 'TAG',
        },
      ],
      unitMode: false,
    },
  ],
  heartbeatFingerprint: 0,
  withoutSub: false,
};

describe('HeartbeatData', () => {
  it('reads what a Java client sends', () => {
    expect(parseHeartbeatData(utf8(JAVA_HEARTBEAT))).toEqual(HEARTBEAT);
  });

  it('writes it back byte for byte', () => {
    expect(text(formatHeartbeatData(HEARTBEAT))).toBe(JAVA_HEARTBEAT);
  });

  it('reads a V2 heartbeat without subscriptions, under either spelling of withoutSub', () => {
    const v2 = '{"clientID":"c","consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_POP"}],"heartbeatFingerprint":-12345,"withoutSub":true}';
    expect(parseHeartbeatData(utf8(v2))).toMatchObject({ heartbeatFingerprint: -12345, withoutSub: true });
    expect(parseHeartbeatData(utf8('{"clientID":"c","isWithoutSub":true}')).withoutSub).toBe(true);
    const consumer = parseHeartbeatData(utf8(v2)).consumerDataSet[0]!;
    expect(consumer).toEqual({
      groupName: 'cg',
      consumeType: 'CONSUME_POP',
      messageModel: undefined,
      consumeFromWhere: undefined,
      subscriptionDataSet: [],
      unitMode: false,
    });
  });

  it('is tolerant as fastjson: unknown fields ignored, null as absent, enums by ordinal, unknown enum names absent', () => {
    const body =
      '{"clientID":"c","extra":{"x":[1,2]},"producerDataSet":null,"consumerDataSet":[{"groupName":"cg",' +
      '"consumeType":1,"messageModel":"SHARDING","consumeFromWhere":4,"subscriptionDataSet":[{"topic":"T","subString":"*","subVersion":"17"}]}]}';
    const parsed = parseHeartbeatData(utf8(body));
    expect(parsed.producerDataSet).toEqual([]);
    expect(parsed.consumerDataSet[0]).toMatchObject({
      consumeType: 'CONSUME_PASSIVELY',
      messageModel: undefined,
      consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    });
    expect(parsed.consumerDataSet[0]!.subscriptionDataSet[0]).toEqual({
      classFilterMode: false,
      topic: 'T',
      subString: '*',
      tagsSet: [],
      codeSet: [],
      subVersion: 17,
      expressionType: 'TAG',
    });
  });

  it('names the path of what is wrong', () => {
    const missing = errorOf(() => parseHeartbeatData(utf8('{"clientID":"c","consumerDataSet":[{"consumeType":"CONSUME_PASSIVELY"}]}')));
    expect(missing.code).toBe(BodyErrorCode.INVALID);
    expect(missing.message).toBe('HeartbeatData: HeartbeatData.consumerDataSet[0].groupName is missing');
    const wrongType = errorOf(() => parseHeartbeatData(utf8('{"clientID":["c"]}')));
    expect(wrongType.message).toContain('HeartbeatData.clientID is not a string');
    expect(errorOf(() => parseHeartbeatData(utf8('[1]'))).message).toContain('is not an object');
  });

  it('refuses a missing, malformed or hostile body with coded errors', () => {
    expect(errorOf(() => parseHeartbeatData(undefined)).code).toBe(BodyErrorCode.MISSING);
    const malformed = errorOf(() => parseHeartbeatData(utf8('{"clientID":')));
    expect(malformed.code).toBe(BodyErrorCode.MALFORMED);
    expect(malformed.fastjsonCode).toBe(FastjsonErrorCode.SYNTAX);
    const deep = errorOf(() => parseHeartbeatData(utf8('{"a":'.repeat(5000))));
    expect(deep.fastjsonCode).toBe(FastjsonErrorCode.TOO_DEEP);
    const big = errorOf(() => parseHeartbeatData(utf8(JAVA_HEARTBEAT), { bytesMax: 100 }));
    expect(big.fastjsonCode).toBe(FastjsonErrorCode.TOO_LARGE);
    const many = errorOf(() => parseHeartbeatData(utf8(`{"clientID":"c","producerDataSet":[${'{},'.repeat(500)}]}`), { valuesMax: 100 }));
    expect(many.fastjsonCode).toBe(FastjsonErrorCode.TOO_MANY_VALUES);
  });

  it('answers SYSTEM_ERROR, as the Java broker does for an unreadable body', () => {
    expect(BODY_ERROR_RESPONSE_CODE).toBe(ResponseCode.SYSTEM_ERROR);
    const request = createRequest({ code: RequestCode.HEART_BEAT, opaque: 9 });
    const response = bodyErrorResponse(request, errorOf(() => parseHeartbeatData(undefined)));
    expect(response).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, opaque: 9 });
    expect(response.remark).toContain('no body');
  });

  it('parse(format(data)) is the data', () => {
    const name = fc.string({ unit: 'binary', maxLength: 12 });
    const sub = fc.record({
      classFilterMode: fc.boolean(),
      topic: name,
      subString: name,
      tagsSet: fc.array(name, { maxLength: 3 }),
      codeSet: fc.array(fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }), { maxLength: 3 }),
      subVersion: fc.maxSafeInteger(),
      expressionType: fc.constantFrom('TAG', 'SQL92'),
    });
    const consumer = fc.record({
      groupName: name,
      consumeType: fc.option(fc.constantFrom(...CONSUME_TYPES), { nil: undefined }),
      messageModel: fc.option(fc.constantFrom(...MESSAGE_MODELS), { nil: undefined }),
      consumeFromWhere: fc.option(fc.constantFrom(...CONSUME_FROM_WHERES), { nil: undefined }),
      subscriptionDataSet: fc.array(sub, { maxLength: 3 }),
      unitMode: fc.boolean(),
    });
    const heartbeat = fc.record({
      clientID: name,
      producerDataSet: fc.array(fc.record({ groupName: name }), { maxLength: 3 }),
      consumerDataSet: fc.array(consumer, { maxLength: 3 }),
      heartbeatFingerprint: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
      withoutSub: fc.boolean(),
    });
    fc.assert(
      fc.property(heartbeat, (data) => {
        expect(parseHeartbeatData(formatHeartbeatData(data))).toEqual(data);
      }),
      { numRuns: 100 },
    );
  });
});

describe('queue locks', () => {
  const LOCK = '{"clientId":"192.168.0.2@1","consumerGroup":"cg","mqSet":[{"brokerName":"broker-a","queueId":0,"topic":"T"},' +
    '{"brokerName":"broker-a","queueId":1,"topic":"T"}],"onlyThisBroker":false}';
  const value = {
    consumerGroup: 'cg',
    clientId: '192.168.0.2@1',
    onlyThisBroker: false,
    mqSet: [
      { topic: 'T', brokerName: 'broker-a', queueId: 0 },
      { topic: 'T', brokerName: 'broker-a', queueId: 1 },
    ],
  };

  it('reads and writes LockBatchRequestBody and UnlockBatchRequestBody', () => {
    expect(parseLockBatchRequestBody(utf8(LOCK))).toEqual(value);
    expect(parseUnlockBatchRequestBody(utf8(LOCK))).toEqual(value);
    expect(text(formatLockBatchRequestBody(value))).toBe(LOCK);
  });

  it('reads and writes LockBatchResponseBody under lockOKMQSet', () => {
    const body = '{"lockOKMQSet":[{"brokerName":"broker-a","queueId":1,"topic":"T"}]}';
    expect(parseLockBatchResponseBody(utf8(body))).toEqual({ lockOKMQSet: [value.mqSet[1]] });
    expect(text(formatLockBatchResponseBody({ lockOKMQSet: [value.mqSet[1]!] }))).toBe(body);
  });

  it('refuses a queue without its topic', () => {
    const error = errorOf(() => parseLockBatchRequestBody(utf8('{"clientId":"c","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":0}]}')));
    expect(error.message).toContain('LockBatchRequestBody.mqSet[0].topic is missing');
  });
});

describe('statistics with MessageQueue map keys', () => {
  const CONSUME_STATS =
    '{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:' +
    '{"brokerOffset":10,"consumerOffset":8,"lastTimestamp":1700000000000,"pullOffset":9},' +
    '{"brokerName":"broker-a","queueId":1,"topic":"TopicTest"}:{"brokerOffset":3,"consumerOffset":3,"lastTimestamp":0,"pullOffset":3}}}';

  it('reads ConsumeStats as fastjson writes it, and writes the same text (doubles aside)', () => {
    const stats = parseConsumeStats(utf8(CONSUME_STATS));
    expect(stats).toEqual({
      consumeTps: 0,
      offsetTable: [
        [{ topic: 'TopicTest', brokerName: 'broker-a', queueId: 0 }, { brokerOffset: 10, consumerOffset: 8, pullOffset: 9, lastTimestamp: 1700000000000 }],
        [{ topic: 'TopicTest', brokerName: 'broker-a', queueId: 1 }, { brokerOffset: 3, consumerOffset: 3, pullOffset: 3, lastTimestamp: 0 }],
      ],
    });
    expect(text(formatConsumeStats(stats))).toBe(CONSUME_STATS.replace('0.0', '0'));
  });

  it('also reads MessageQueue keys written as JSON strings', () => {
    const stringKeyed = '{"offsetTable":{"{\\"brokerName\\":\\"b\\",\\"queueId\\":2,\\"topic\\":\\"T\\"}":{"brokerOffset":1}}}';
    expect(parseConsumeStats(utf8(stringKeyed)).offsetTable[0]![0]).toEqual({ topic: 'T', brokerName: 'b', queueId: 2 });
    expect(errorOf(() => parseConsumeStats(utf8('{"offsetTable":{"T-0":{}}}'))).code).toBe(BodyErrorCode.INVALID);
  });

  it('reads and writes TopicStatsTable', () => {
    const body =
      '{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"lastUpdateTimestamp":1700000000000,"maxOffset":100,"minOffset":5}},"topicPutTps":1.5}';
    const table = parseTopicStatsTable(utf8(body));
    expect(table).toEqual({
      topicPutTps: 1.5,
      offsetTable: [[{ topic: 'T', brokerName: 'broker-a', queueId: 0 }, { minOffset: 5, maxOffset: 100, lastUpdateTimestamp: 1700000000000 }]],
    });
    expect(text(formatTopicStatsTable(table))).toBe(body);
  });

  it('reads and writes ResetOffsetBody', () => {
    const body = '{"offsetTable":{{"brokerName":"broker-a","queueId":3,"topic":"T"}:42}}';
    const reset = parseResetOffsetBody(utf8(body));
    expect(reset).toEqual({ offsetTable: [[{ topic: 'T', brokerName: 'broker-a', queueId: 3 }, 42]] });
    expect(text(formatResetOffsetBody(reset))).toBe(body);
  });
});

describe('client lists and tables', () => {
  it('reads and writes GetConsumerListByGroupResponseBody', () => {
    const body = '{"consumerIdList":["192.168.0.2@1","192.168.0.3@2"]}';
    const list = parseGetConsumerListByGroupResponseBody(utf8(body));
    expect(list).toEqual({ consumerIdList: ['192.168.0.2@1', '192.168.0.3@2'] });
    expect(text(formatGetConsumerListByGroupResponseBody(list))).toBe(body);
  });

  it('reads and writes ConsumerConnection, languages by name', () => {
    const body =
      '{"connectionSet":[{"clientAddr":"192.168.0.2:51234","clientId":"192.168.0.2@1","language":"JAVA","version":479}],' +
      '"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"BROADCASTING",' +
      '"subscriptionTable":{"T":{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1,"tagsSet":[],"topic":"T"}}}';
    const connection = parseConsumerConnection(utf8(body));
    expect(connection.connectionSet).toEqual([{ clientAddr: '192.168.0.2:51234', clientId: '192.168.0.2@1', language: 'JAVA', version: 479 }]);
    expect([...connection.subscriptionTable.keys()]).toEqual(['T']);
    expect(text(formatConsumerConnection(connection))).toBe(body);
    const odd = parseConsumerConnection(utf8('{"connectionSet":[{"clientAddr":"a","clientId":"b","language":"KLINGON"},{"clientAddr":"a","clientId":"b","language":9}]}'));
    expect(odd.connectionSet.map((c) => c.language)).toEqual(['OTHER', 'GO']);
  });

  it('reads and writes KVTable, with a key like __proto__ kept as data', () => {
    const body = '{"table":{"brokerVersion":"479","__proto__":"x","msgPutTotalTodayNow":12}}';
    const kv = parseKVTable(utf8(body));
    expect([...kv.table.entries()]).toEqual([
      ['brokerVersion', '479'],
      ['__proto__', 'x'],
      ['msgPutTotalTodayNow', '12'],
    ]);
    expect(text(formatKVTable(kv))).toBe(body.replace('12}', '"12"}'));
  });
});

describe('config wrappers', () => {
  const TOPICS =
    '{"dataVersion":{"counter":2,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":' +
    '{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest",' +
    '"topicSysFlag":0,"writeQueueNums":4}}}';

  it('reads and writes TopicConfigSerializeWrapper as fastjson does', () => {
    const wrapper = parseTopicConfigSerializeWrapper(utf8(TOPICS));
    expect(wrapper.dataVersion).toEqual({ counter: 2, stateVersion: 0, timestamp: 1700000000000 });
    expect(wrapper.topicConfigTable.get('TopicTest')).toMatchObject({ readQueueNums: 4, perm: 6, topicFilterType: 'SINGLE_TAG' });
    expect(text(formatTopicConfigSerializeWrapper({ topicConfigTable: wrapper.topicConfigTable, dataVersion: wrapper.dataVersion! }))).toBe(TOPICS);
  });

  it('refuses a table entry filed under another name, or a bad field, naming it', () => {
    const misfiled = TOPICS.replace('"topicConfigTable":{"TopicTest"', '"topicConfigTable":{"Other"');
    expect(errorOf(() => parseTopicConfigSerializeWrapper(utf8(misfiled))).message).toContain('topicConfigTable["Other"] holds topic "TopicTest"');
    const badPerm = TOPICS.replace('"perm":6', '"perm":"six"');
    expect(errorOf(() => parseTopicConfigSerializeWrapper(utf8(badPerm))).message).toContain('topicConfigTable["TopicTest"].perm');
  });

  it('reads and writes SubscriptionGroupWrapper as fastjson does', () => {
    const body =
      '{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":1700000000000},"forbiddenTable":{"cg":{"TopicTest":1}},' +
      '"subscriptionGroupTable":{"cg":{"attributes":{},"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,' +
      '"consumeFromMinEnable":true,"consumeMessageOrderly":false,"consumeTimeoutMinute":15,"groupName":"cg",' +
      '"groupRetryPolicy":{"type":"CUSTOMIZED"},"groupSysFlag":0,"notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,' +
      '"retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1}}}';
    const wrapper = parseSubscriptionGroupWrapper(utf8(body));
    expect(wrapper.forbiddenTable.get('cg')?.get('TopicTest')).toBe(1);
    expect(wrapper.subscriptionGroupTable.get('cg')).toMatchObject({ retryMaxTimes: 16, consumeEnable: true });
    expect(
      text(
        formatSubscriptionGroupWrapper({
          subscriptionGroupTable: wrapper.subscriptionGroupTable,
          forbiddenTable: wrapper.forbiddenTable,
          dataVersion: wrapper.dataVersion!,
        }),
      ),
    ).toBe(body);
  });
});
