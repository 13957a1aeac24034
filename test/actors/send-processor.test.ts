import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { bornHostOf } from '../../src/actors/send-processor.ts';
import { formatSendMessageRequest, SendMessageResponseHeader } from '../../src/net/remoting/broker-headers.ts';
import { encodeMessageBatch } from '../../src/net/remoting/message-batch.ts';
import { MQVersionOrdinal, PermName } from '../../src/net/remoting/namesrv-protocol.ts';
import { RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { encodeMessageProperties, offsetMessageId, parseOffsetMessageId, type RecordView } from '../../src/storage/message-record.ts';
import { SCHEDULE_TOPIC } from '../../src/storage/tag-hash.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { BrokerHarness, MAX_MESSAGE_SIZE, STORE_HOST, type BrokerHarnessOptions } from './fixtures/broker-harness.ts';

const T0 = 1_700_000_000_000;
const RW = PermName.PERM_READ | PermName.PERM_WRITE;
const ADMIN = {
  topics: [
    { topicName: 'TopicA', readQueueNums: 4, writeQueueNums: 4, perm: RW },
    { topicName: 'ReadOnly', readQueueNums: 2, writeQueueNums: 2, perm: PermName.PERM_READ },
    { topicName: '%RETRY%GroupA', readQueueNums: 1, writeQueueNums: 1, perm: RW },
  ],
  groups: [{ groupName: 'GroupA', retryMaxTimes: 2, retryQueueNums: 1 }],
};

type SendFields = {
  topic?: string;
  queueId?: number;
  properties?: Record<string, string>;
  reconsumeTimes?: number;
  maxReconsumeTimes?: number;
  batch?: boolean;
  flag?: number;
  sysFlag?: number;
};

function sendHeader(fields: SendFields = {}, form: 'V1' | 'V2' = 'V2'): Record<string, string> {
  return formatSendMessageRequest(
    {
      producerGroup: 'ProducerA',
      topic: fields.topic ?? 'TopicA',
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 4,
      queueId: fields.queueId ?? 1,
      sysFlag: fields.sysFlag ?? 0,
      bornTimestamp: T0,
      flag: fields.flag ?? 7,
      properties: encodeMessageProperties({ TAGS: 'TagA', KEYS: 'k1', ...fields.properties }),
      reconsumeTimes: fields.reconsumeTimes ?? 0,
      ...(fields.maxReconsumeTimes === undefined ? {} : { maxReconsumeTimes: fields.maxReconsumeTimes }),
      batch: fields.batch ?? false,
    },
    form,
  );
}

const body = (text: string): Uint8Array => new Uint8Array(Buffer.from(text));
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');
const responseHeader = (response: RemotingCommand) => SendMessageResponseHeader.parse(response.extFields);

function backHeader(offset: number, overrides: Record<string, string> = {}): Record<string, string> {
  return { offset: String(offset), group: 'GroupA', delayLevel: '0', originMsgId: 'X', originTopic: 'TopicA', ...overrides };
}

describe('send processor', () => {
  let harness: BrokerHarness | undefined;
  afterEach(async () => {
    await harness?.shutdown();
    if (harness !== undefined) fs.rmSync(harness.dir, { recursive: true, force: true });
    harness = undefined;
  });

  async function start(options: BrokerHarnessOptions = {}): Promise<BrokerHarness> {
    harness = await BrokerHarness.start({ admin: ADMIN, ...options });
    return harness;
  }

  /** Sends one message to TopicA and returns its stored form. */
  async function sendOne(h: BrokerHarness, fields: SendFields = {}): Promise<{ response: RemotingCommand; stored: RecordView }> {
    const response = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader(fields), body('hello'));
    expect(response.code).toBe(ResponseCode.SUCCESS);
    const header = responseHeader(response);
    const { views } = await h.read(fields.topic ?? 'TopicA', header.queueId, header.queueOffset);
    return { response, stored: views[0]! };
  }

  it('stores a SEND_MESSAGE (v1 header) and answers with an offset msgId that names its physical offset', async () => {
    const h = await start();
    const response = await h.call(RequestCode.SEND_MESSAGE, sendHeader({ properties: { UNIQ_KEY: 'U1' } }, 'V1'), body('hello'));
    expect(response.code).toBe(ResponseCode.SUCCESS);
    expect(response.remark).toBeUndefined();
    expect(response.extFields).toMatchObject({ MSG_REGION: 'DefaultRegion', TRACE_ON: 'true', queueId: '1', queueOffset: '0', transactionId: 'U1' });
    const { views, result } = await h.read('TopicA', 1);
    expect(views).toHaveLength(1);
    const stored = views[0]!;
    expect(parseOffsetMessageId(response.extFields.msgId!)).toEqual({ storeHost: STORE_HOST, physicalOffset: result.messages[0]!.physicalOffset });
    expect(text(stored.body)).toBe('hello');
    expect(stored).toMatchObject({ topic: 'TopicA', queueId: 1, flag: 7, bornTimestampMs: T0, reconsumeTimes: 0 });
    expect(stored.bornHost).toEqual({ address: '10.0.0.7', port: 54_321 });
    expect(Object.fromEntries(stored.propertiesMap())).toEqual({
      TAGS: 'TagA', KEYS: 'k1', UNIQ_KEY: 'U1', MSG_REGION: 'DefaultRegion', TRACE_ON: 'true', CLUSTER: 'DefaultCluster',
    });
  });

  it('serves SEND_MESSAGE_V2, creates a UNIQ_KEY when the producer sent none, and asks broker-admin once per topic', async () => {
    const h = await start();
    const first = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('one'));
    const second = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('two'));
    expect([first.code, second.code]).toEqual([ResponseCode.SUCCESS, ResponseCode.SUCCESS]);
    expect([responseHeader(first).queueOffset, responseHeader(second).queueOffset]).toEqual([0, 1]);
    const { views } = await h.read('TopicA', 1);
    expect(views.map((view) => text(view.body))).toEqual(['one', 'two']);
    const uniqKey = views[0]!.propertiesMap().get('UNIQ_KEY');
    expect(uniqKey).toMatch(/^[0-9A-F]{32}$/);
    expect(responseHeader(first).transactionId).toBe(uniqKey);
    expect(await h.adminCalls()).toEqual({ topicForSend: 1, groupForRetry: 0 });
  });

  it('stores a batch as separate messages with their own properties, answering every offset msgId', async () => {
    const h = await start();
    const batch = encodeMessageBatch([
      { body: body('b0'), properties: encodeMessageProperties({ UNIQ_KEY: 'B0' }), flag: 1 },
      { body: body('b1'), properties: encodeMessageProperties({ UNIQ_KEY: 'B1' }), flag: 2 },
      { body: body('b2'), properties: encodeMessageProperties({ UNIQ_KEY: 'B2', TAGS: 'T' }), flag: 3 },
    ]);
    await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ queueId: 2 }), body('before'));
    const response = await h.call(RequestCode.SEND_BATCH_MESSAGE, sendHeader({ queueId: 2, batch: true, properties: {} }), batch);
    expect(response.code).toBe(ResponseCode.SUCCESS);
    const header = responseHeader(response);
    expect(header).toMatchObject({ queueId: 2, queueOffset: 1 });
    expect(header.transactionId).toBeUndefined();
    const { views, result } = await h.read('TopicA', 2, 1);
    expect(views.map((view) => [text(view.body), view.flag, view.properties])).toEqual([
      ['b0', 1, encodeMessageProperties({ UNIQ_KEY: 'B0' })],
      ['b1', 2, encodeMessageProperties({ UNIQ_KEY: 'B1' })],
      ['b2', 3, encodeMessageProperties({ UNIQ_KEY: 'B2', TAGS: 'T' })],
    ]);
    expect(header.msgId.split(',')).toEqual(result.messages.map((message) => offsetMessageId(STORE_HOST, message.physicalOffset)));
  });

  it('picks a write queue for a negative queue id, and refuses one past the topic\'s queues', async () => {
    const h = await start();
    const queues = new Set<number>();
    for (let i = 0; i < 24; i++) {
      const response = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ queueId: -1 }), body(`m${i}`));
      expect(response.code).toBe(ResponseCode.SUCCESS);
      queues.add(responseHeader(response).queueId);
    }
    expect([...queues].every((queueId) => queueId >= 0 && queueId < 4)).toBe(true);
    expect(queues.size).toBeGreaterThan(1);
    const refused = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ queueId: 4 }), body('x'));
    expect(refused.code).toBe(ResponseCode.INVALID_PARAMETER);
    expect(refused.remark).toMatch(/^request queueId\[4\] is illegal, TopicConfig \[topicName=TopicA/);
  });

  it('answers MESSAGE_ILLEGAL for a body over maxMessageSize, single or batch', async () => {
    const h = await start();
    const big = new Uint8Array(MAX_MESSAGE_SIZE + 1);
    const single = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader(), big);
    expect(single.code).toBe(ResponseCode.MESSAGE_ILLEGAL);
    expect(single.remark).toContain(`msg body length limit ${MAX_MESSAGE_SIZE}B`);
    const batch = encodeMessageBatch([{ body: new Uint8Array(MAX_MESSAGE_SIZE / 2) }, { body: new Uint8Array(MAX_MESSAGE_SIZE / 2) }]);
    const batched = await h.call(RequestCode.SEND_BATCH_MESSAGE, sendHeader({ batch: true }), batch);
    expect(batched.code).toBe(ResponseCode.MESSAGE_ILLEGAL);
    expect((await h.read('TopicA', 1)).views).toHaveLength(0);
  });

  it('answers SYSTEM_ERROR naming a missing header field, and SYSTEM_ERROR for a torn batch body', async () => {
    const h = await start();
    const { b: _topic, ...withoutTopic } = sendHeader();
    const missing = await h.call(RequestCode.SEND_MESSAGE_V2, withoutTopic, body('x'));
    expect(missing.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(missing.remark).toBe('HeaderError: SendMessageRequestHeaderV2: the custom field <b> (topic) is null');
    const torn = await h.call(RequestCode.SEND_BATCH_MESSAGE, sendHeader({ batch: true }), new Uint8Array(10));
    expect(torn.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(torn.remark).toMatch(/^MessageBatchError: /);
  });

  it('passes on broker-admin\'s refusal, and refuses read-only, system and malformed topics', async () => {
    const h = await start();
    const unknown = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: 'NoSuchTopic' }), body('x'));
    expect(unknown).toMatchObject({ code: ResponseCode.TOPIC_NOT_EXIST, remark: 'topic[NoSuchTopic] not exist, apply first please!' });
    const readOnly = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: 'ReadOnly', queueId: 0 }), body('x'));
    expect(readOnly).toMatchObject({ code: ResponseCode.NO_PERMISSION, remark: 'the topic[ReadOnly] sending message is forbidden' });
    const schedule = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: SCHEDULE_TOPIC }), body('x'));
    expect(schedule).toMatchObject({ code: ResponseCode.NO_PERMISSION, remark: `Sending message to topic[${SCHEDULE_TOPIC}] is forbidden.` });
    const badName = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: 'a b' }), body('x'));
    expect(badName.code).toBe(ResponseCode.INVALID_PARAMETER);
    expect(await h.adminCalls()).toEqual({ topicForSend: 2, groupForRetry: 0 });
  });

  it('stores a delay-level message in SCHEDULE_TOPIC_XXXX, queue level - 1, keeping its real topic and queue', async () => {
    const h = await start();
    const response = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ queueId: 3, properties: { DELAY: '3', TIMER_DELIVER_MS: '1' } }), body('later'));
    expect(response.code).toBe(ResponseCode.SUCCESS);
    expect(responseHeader(response)).toMatchObject({ queueId: 3, queueOffset: 0 });
    const [stored] = await h.readAtLeast(SCHEDULE_TOPIC, 2, 1);
    const properties = stored!.propertiesMap();
    expect(properties.get('REAL_TOPIC')).toBe('TopicA');
    expect(properties.get('REAL_QID')).toBe('3');
    expect(properties.get('DELAY')).toBe('3');
    expect(properties.has('TIMER_DELIVER_MS')).toBe(false);
    expect((await h.read('TopicA', 3)).views).toHaveLength(0);
    // A level past the last is capped to the last (18 by default).
    expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ properties: { DELAY: '99' } }), body('capped'))).code).toBe(ResponseCode.SUCCESS);
    const [capped] = await h.readAtLeast(SCHEDULE_TOPIC, 17, 1);
    expect(capped!.propertiesMap().get('DELAY')).toBe('18');
    // An unparsable level is refused as RocketMQ refuses it.
    const bad = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ properties: { DELAY: 'soon' } }), body('x'));
    expect(bad.code).toBe(ResponseCode.SYSTEM_ERROR);
  });

  it('moves a timer message to rmq_sys_wheel_timer with its slot and real destination, and answers a recall handle', async () => {
    const h = await start();
    const deliverMs = Date.now() + 60_500;
    const response = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ queueId: 2, properties: { TIMER_DELIVER_MS: String(deliverMs) } }), body('timed'));
    expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
    const handle = response.extFields['recallHandle'];
    expect(handle).toBeDefined();
    expect(Buffer.from(handle!, 'base64url').toString()).toMatch(/^v1 TopicA broker-a \d+ [0-9A-F]+$/);
    const [stored] = await h.readAtLeast('rmq_sys_wheel_timer', 0, 1);
    const properties = stored!.propertiesMap();
    // RocketMQ's rounding: the slot before the deliver time (the one before, for an exact second).
    const slotMs = deliverMs % 1000 === 0 ? deliverMs - 1000 : Math.floor(deliverMs / 1000) * 1000;
    expect(properties.get('TIMER_OUT_MS')).toBe(String(slotMs));
    expect(properties.get('REAL_TOPIC')).toBe('TopicA');
    expect(properties.get('REAL_QID')).toBe('2');
    expect((await h.read('TopicA', 2)).views).toHaveLength(0);
    // A deliver time already past is stored in its topic at once, with no recall handle.
    const past = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ queueId: 2, properties: { TIMER_DELIVER_MS: String(T0) } }), body('due'));
    expect(past.code).toBe(ResponseCode.SUCCESS);
    expect(past.extFields['recallHandle']).toBeUndefined();
    expect(text((await h.readAtLeast('TopicA', 2, 1))[0]!.body)).toBe('due');
  });

  it('refuses timer messages as RocketMQ does when the wheel is off or the delay too long', async () => {
    const off = await start({ settings: { timerWheelEnable: false } });
    const refused = await off.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ properties: { TIMER_DELIVER_MS: String(Date.now() + 10_000) } }), body('x'));
    expect(refused).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'accurate timer message is not enabled, timerWheelEnable is false' });
    const h = await start({ settings: { timerMaxDelaySec: 60 } });
    const tooFar = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ properties: { TIMER_DELAY_SEC: '61' } }), body('x'));
    expect(tooFar.code).toBe(ResponseCode.MESSAGE_ILLEGAL);
  });

  it('stores a prepared transaction message as a half message of RMQ_SYS_TRANS_HALF_TOPIC, invisible in its topic', async () => {
    const h = await start();
    const header = sendHeader({ queueId: 1, sysFlag: 4, properties: { TRAN_MSG: 'true', PGROUP: 'PG' } });
    const response = await h.call(RequestCode.SEND_MESSAGE_V2, header, body('half'));
    expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
    expect(response.extFields['transactionId']).toMatch(/^[0-9A-F]+$/);
    const [half] = await h.readAtLeast('RMQ_SYS_TRANS_HALF_TOPIC', 0, 1);
    expect(half!.sysFlag & 0xc).toBe(0);
    expect(half!.propertiesMap().get('REAL_TOPIC')).toBe('TopicA');
    expect(half!.propertiesMap().get('REAL_QID')).toBe('1');
    expect((await h.read('TopicA', 1)).views).toHaveLength(0);
  });

  it('sends a retry-topic message reconsumed too often to the group\'s DLQ', async () => {
    const h = await start();
    const retry = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: '%RETRY%GroupA', queueId: 0, reconsumeTimes: 2 }), body('again'));
    expect(retry.code).toBe(ResponseCode.SUCCESS);
    expect((await h.read('%RETRY%GroupA', 0)).views).toHaveLength(1);
    const dead = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: '%RETRY%GroupA', queueId: 0, reconsumeTimes: 3 }), body('dead'));
    expect(dead.code).toBe(ResponseCode.SUCCESS);
    const [stored] = await h.readAtLeast('%DLQ%GroupA', 0, 1);
    expect(text(stored!.body)).toBe('dead');
    expect(stored!.propertiesMap().get('DELAY')).toBe('-1');
    // A client from V3_4_9 on may lower the limit with maxReconsumeTimes.
    const early = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ topic: '%RETRY%GroupA', queueId: 0, reconsumeTimes: 1, maxReconsumeTimes: 0 }), body('early'));
    expect(early.code).toBe(ResponseCode.SUCCESS);
    expect(await h.readAtLeast('%DLQ%GroupA', 0, 2)).toHaveLength(2);
    expect((await h.adminCalls()).groupForRetry).toBe(1);
  });

  it('sends a message back to %RETRY%group through delay level 3 + reconsumeTimes, then to the DLQ', async () => {
    const h = await start();
    const { stored: original, response } = await sendOne(h, { properties: { UNIQ_KEY: 'U1' } });
    const originalOffset = parseOffsetMessageId(response.extFields.msgId!)!.physicalOffset;
    const back = await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(originalOffset));
    expect(back).toMatchObject({ code: ResponseCode.SUCCESS, extFields: {} });
    const [retried] = await h.readAtLeast(SCHEDULE_TOPIC, 2, 1);
    expect(retried!.reconsumeTimes).toBe(1);
    expect(text(retried!.body)).toBe('hello');
    expect(retried!.bornTimestampMs).toBe(original.bornTimestampMs);
    expect(Object.fromEntries(retried!.propertiesMap())).toMatchObject({
      RETRY_TOPIC: 'TopicA',
      REAL_TOPIC: '%RETRY%GroupA',
      REAL_QID: '0',
      DELAY: '3',
      WAIT: 'false',
      UNIQ_KEY: 'U1',
      ORIGIN_MESSAGE_ID: response.extFields.msgId,
    });
    // Sent back again (reconsumeTimes 1 -> 2): level 4; a third time it has reached retryMaxTimes 2: DLQ.
    const scheduled = await h.read(SCHEDULE_TOPIC, 2);
    expect((await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(scheduled.result.messages[0]!.physicalOffset))).code).toBe(ResponseCode.SUCCESS);
    const [second] = await h.readAtLeast(SCHEDULE_TOPIC, 3, 1);
    expect(second!.reconsumeTimes).toBe(2);
    expect(second!.propertiesMap().get('RETRY_TOPIC')).toBe('TopicA');
    expect(second!.propertiesMap().get('ORIGIN_MESSAGE_ID')).toBe(response.extFields.msgId);
    const secondOffset = (await h.read(SCHEDULE_TOPIC, 3)).result.messages[0]!.physicalOffset;
    expect((await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(secondOffset))).code).toBe(ResponseCode.SUCCESS);
    const [dead] = await h.readAtLeast('%DLQ%GroupA', 0, 1);
    expect(dead!.reconsumeTimes).toBe(3);
    expect(dead!.propertiesMap().get('DELAY')).toBe('0');
    expect(dead!.propertiesMap().get('RETRY_TOPIC')).toBe('TopicA');
  });

  it('sends back straight to the DLQ for a negative delay level or the consumer\'s own maxReconsumeTimes', async () => {
    const h = await start();
    const { response } = await sendOne(h);
    const offset = parseOffsetMessageId(response.extFields.msgId!)!.physicalOffset;
    expect((await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(offset, { delayLevel: '-1' }))).code).toBe(ResponseCode.SUCCESS);
    expect(await h.readAtLeast('%DLQ%GroupA', 0, 1)).toHaveLength(1);
    const byHeader = await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(offset, { maxReconsumeTimes: '0' }), undefined, { version: MQVersionOrdinal.V5_3_3 });
    expect(byHeader.code).toBe(ResponseCode.SUCCESS);
    expect(await h.readAtLeast('%DLQ%GroupA', 0, 2)).toHaveLength(2);
    // An explicit delay level is kept.
    expect((await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(offset, { delayLevel: '5' }))).code).toBe(ResponseCode.SUCCESS);
    expect((await h.readAtLeast(SCHEDULE_TOPIC, 4, 1))[0]!.propertiesMap().get('DELAY')).toBe('5');
  });

  it('answers send-back failures: unknown offset, unknown group', async () => {
    const h = await start();
    const noMessage = await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(123_456));
    expect(noMessage).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'look message by offset failed, 123456' });
    const noGroup = await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, backHeader(0, { group: 'Nobody' }));
    expect(noGroup).toMatchObject({ code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, remark: 'subscription group not exist, Nobody' });
  });

  it('answers SYSTEM_BUSY past its in-flight bound, and the held requests complete afterwards', async () => {
    const h = await start({ admin: { ...ADMIN, hold: true }, tuning: { inFlightMax: 2 } });
    const first = h.send(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('1'));
    const second = h.send(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('2'));
    const third = h.send(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('3'));
    const busy = await h.answer(third);
    expect(busy.code).toBe(ResponseCode.SYSTEM_BUSY);
    expect(busy.remark).toMatch(/^\[PCBUSY_CLEAN_QUEUE\]broker busy, start flow control for a while/);
    // The two admitted sends share one held topicForSend ask (another thread: wait for it to arrive).
    await pollUntil('the held topicForSend ask', async () => ((await h.adminCalls()).topicForSend === 1 ? true : undefined));
    await h.system.ask(h.admin, { type: 'release' });
    expect((await h.answer(first)).code).toBe(ResponseCode.SUCCESS);
    expect((await h.answer(second)).code).toBe(ResponseCode.SUCCESS);
    expect((await h.read('TopicA', 1)).views.map((view) => text(view.body))).toEqual(['1', '2']);
    expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('4'))).code).toBe(ResponseCode.SUCCESS);
    expect(await h.adminCalls()).toEqual({ topicForSend: 1, groupForRetry: 0 });
  });

  it('stores a oneway send without answering it', async () => {
    const h = await start();
    h.send(RequestCode.SEND_MESSAGE_V2, sendHeader(), body('quiet'), { oneway: true });
    expect((await h.readAtLeast('TopicA', 1, 1)).map((view) => text(view.body))).toEqual(['quiet']);
    expect(await h.recorded()).toEqual([]);
  });

  it('reads the producer address the way Netty shows it', () => {
    expect(bornHostOf('10.1.2.3:4567')).toEqual({ address: '10.1.2.3', port: 4567 });
    expect(bornHostOf('::ffff:10.1.2.3:4567')).toEqual({ address: '10.1.2.3', port: 4567 });
    expect(bornHostOf('[::1]:80')).toEqual({ address: '::1', port: 80 });
    expect(bornHostOf('fe80::1:80')).toEqual({ address: 'fe80::1', port: 80 });
    expect(bornHostOf('?:?')).toEqual({ address: '0.0.0.0', port: 0 });
  });
});
