/**
 * The Broker's consumer and admin flows of one `start` node, driven over real sockets with the project's
 * Remoting client only: tag and SQL92 filters, retry and dead-letter topics through
 * CONSUMER_SEND_MSG_BACK, delay levels, the consumer registry (clustering and broadcasting), the admin and
 * query requests, batches, and the pull path's topic and subscription checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningNode } from '../../src/node/start-node.ts';
import { startTestNode, type TestNode } from './fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import {
  ConsumerSendMsgBackRequestHeader,
  formatSendMessageRequest,
  PullMessageRequestHeader,
  PullSysFlag,
} from '../../src/net/remoting/broker-headers.ts';
import {
  formatHeartbeatData,
  formatLockBatchRequestBody,
  parseGetConsumerListByGroupResponseBody,
  parseLockBatchResponseBody,
  type ConsumerData,
  type MessageModel,
  type MessageQueue,
  type SubscriptionData,
} from '../../src/net/remoting/broker-bodies.ts';
import { encodeMessageBatch } from '../../src/net/remoting/message-batch.ts';
import { MQVersionOrdinal } from '../../src/net/remoting/namesrv-protocol.ts';
import { decodeRecord, encodeMessageProperties, parseOffsetMessageId, type RecordView } from '../../src/storage/message-record.ts';
import { pollUntil } from '../runtime/helpers.ts';

const REQUEST_MS = 10_000;
/** How often the tests look again while they wait for something asynchronous (delivery, index, routes). */
const POLL_MS = 25;
/** messageDelayLevel's level 1 (the default "1s 5s 10s ..."). */
const LEVEL_1_MS = 1_000;
/** The subVersion of the subscriptions the tests' consumers register and pull with. */
const SUB_VERSION = Date.now();

let testNode: TestNode;
let node: RunningNode;
let broker: RemotingClient;
let namesrv: RemotingClient;
const clients: RemotingClient[] = [];

beforeAll(async () => {
  testNode = await startTestNode('broker-flows', 'warn', { enablePropertyFilter: 'true' });
  node = testNode.node;
  broker = await connectBroker();
  namesrv = await RemotingClient.connect(`127.0.0.1:${node.ports.namesrv}`);
  clients.push(namesrv);
}, 60_000);

afterAll(async () => {
  for (const client of clients.splice(0)) await client.close();
  await testNode?.stop();
}, 60_000);

async function connectBroker(): Promise<RemotingClient> {
  const client = await RemotingClient.connect(`127.0.0.1:${node.ports.broker}`);
  clients.push(client);
  return client;
}

/** A request as a 5.3 Java client sends it (the version gates header fields such as maxReconsumeTimes). */
function javaRequest(code: number, extFields: Record<string, string>, body?: Uint8Array): RemotingCommand {
  return createRequest({ code, opaque: 0, extFields, version: MQVersionOrdinal.V5_3_3, ...(body === undefined ? {} : { body }) });
}

type SendOptions = {
  readonly queueId?: number;
  readonly client?: RemotingClient;
  /** What a consumer's own retry send (its fallback when CONSUMER_SEND_MSG_BACK fails) carries. */
  readonly reconsumeTimes?: number;
  readonly maxReconsumeTimes?: number;
};

async function send(topic: string, body: string, properties: Record<string, string>, options: SendOptions = {}): Promise<RemotingCommand> {
  const header = formatSendMessageRequest(
    {
      producerGroup: 'flow-producer',
      topic,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 4,
      queueId: options.queueId ?? 0,
      sysFlag: 0,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties({ WAIT: 'true', ...properties }),
      reconsumeTimes: options.reconsumeTimes ?? 0,
      ...(options.maxReconsumeTimes === undefined ? {} : { maxReconsumeTimes: options.maxReconsumeTimes }),
    },
    'V2',
  );
  const response = await (options.client ?? broker).invoke(javaRequest(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(body)), REQUEST_MS);
  expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
  return response;
}

type PullOptions = {
  readonly group?: string;
  readonly queueId?: number;
  readonly offset?: number;
  /** Posted with FLAG_SUBSCRIPTION; absent: the pull relies on the group's registered subscription. */
  readonly subscription?: string;
  readonly expressionType?: string;
  readonly subVersion?: number;
  readonly suspendMs?: number;
  /** Sent with FLAG_COMMIT_OFFSET, for the broker to store. */
  readonly commitOffset?: number;
  readonly client?: RemotingClient;
};

function pull(topic: string, options: PullOptions = {}): Promise<RemotingCommand> {
  const posted = options.subscription !== undefined;
  const suspendMs = options.suspendMs ?? 0;
  const commit = options.commitOffset !== undefined ? PullSysFlag.FLAG_COMMIT_OFFSET : 0;
  const sysFlag = (posted ? PullSysFlag.FLAG_SUBSCRIPTION : 0) | (suspendMs > 0 ? PullSysFlag.FLAG_SUSPEND : 0) | commit;
  const header = PullMessageRequestHeader.format({
    consumerGroup: options.group ?? 'GFlow',
    topic,
    queueId: options.queueId ?? 0,
    queueOffset: options.offset ?? 0,
    maxMsgNums: 32,
    sysFlag,
    commitOffset: options.commitOffset ?? 0,
    suspendTimeoutMillis: suspendMs,
    subVersion: options.subVersion ?? 0,
    ...(posted ? { subscription: options.subscription } : {}),
    expressionType: options.expressionType ?? 'TAG',
  });
  return (options.client ?? broker).invoke(javaRequest(RequestCode.PULL_MESSAGE, header), REQUEST_MS + suspendMs);
}

/** The records of a pull answer's body, as MessageDecoder.decodes splits them. */
function recordsOf(response: RemotingCommand): RecordView[] {
  const out: RecordView[] = [];
  const body = response.body;
  if (body === undefined) return out;
  for (let at = 0; at < body.length; ) {
    const record = decodeRecord(body, at);
    out.push(record);
    at += record.totalSize;
  }
  return out;
}

const bodiesOf = (response: RemotingCommand): string[] => recordsOf(response).map((record) => Buffer.from(record.body).toString());

/** Pulls until the queue gives messages (what arrives later: a delayed or retried message). */
function pullUntilFound(topic: string, options: PullOptions, timeoutMs = 5_000): Promise<RemotingCommand> {
  return pollUntil(`messages in ${topic}`, async () => {
    const response = await pull(topic, options);
    return response.code === ResponseCode.SUCCESS ? response : undefined;
  }, timeoutMs, POLL_MS);
}

/** A subscription as the Java client builds it: its subVersion is the time it was made. */
function subscriptionData(topic: string, subString: string, expressionType = 'TAG', subVersion = SUB_VERSION): SubscriptionData {
  const tagsSet = expressionType === 'TAG' && subString !== '*' ? subString.split('||').map((tag) => tag.trim()) : [];
  return { classFilterMode: false, topic, subString, tagsSet, codeSet: [], subVersion, expressionType };
}

function consumerData(group: string, subscriptions: readonly SubscriptionData[], messageModel: MessageModel = 'CLUSTERING'): ConsumerData {
  return {
    groupName: group,
    consumeType: 'CONSUME_PASSIVELY',
    messageModel,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    subscriptionDataSet: subscriptions,
    unitMode: false,
  };
}

async function heartbeat(client: RemotingClient, clientID: string, consumers: readonly ConsumerData[]): Promise<void> {
  const body = formatHeartbeatData({ clientID, producerDataSet: [], consumerDataSet: consumers, heartbeatFingerprint: 0, withoutSub: false });
  const response = await client.invoke(javaRequest(RequestCode.HEART_BEAT, {}, body), REQUEST_MS);
  expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
}

/** CHECK_CLIENT_CONFIG, as DefaultMQPushConsumerImpl.checkClientInBroker sends it for a SQL92 subscription. */
function checkClientConfig(client: RemotingClient, topic: string, expression: string): Promise<RemotingCommand> {
  const body = { clientId: 'sql-check', group: 'GFlowCheck', subscriptionData: subscriptionData(topic, expression, 'SQL92') };
  return client.invoke(javaRequest(RequestCode.CHECK_CLIENT_CONFIG, {}, Buffer.from(JSON.stringify(body))), REQUEST_MS);
}

type Route = { brokerDatas: { brokerName: string; brokerAddrs: Record<string, string> }[]; queueDatas: { brokerName: string; readQueueNums: number }[] };

/** The NameServer's route of a topic, once the broker has registered it. */
function routeOf(topic: string): Promise<Route> {
  return pollUntil(`a route for ${topic}`, async () => {
    const answer = await namesrv.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic }), REQUEST_MS);
    return answer.code === ResponseCode.SUCCESS ? (JSON.parse(Buffer.from(answer.body!).toString()) as Route) : undefined;
  }, 10_000, POLL_MS);
}

function sendBack(offset: number, group: string, topic: string, originMsgId: string, maxReconsumeTimes: number): Promise<RemotingCommand> {
  const header = ConsumerSendMsgBackRequestHeader.format({ offset, group, delayLevel: 1, originMsgId, originTopic: topic, unitMode: false, maxReconsumeTimes });
  return broker.invoke(javaRequest(RequestCode.CONSUMER_SEND_MSG_BACK, header), REQUEST_MS);
}

describe('a start node: consumer flows over Remoting', () => {
  it('filters by tags: the ConsumeQueue hash first, then the tag string, moving past what it skipped', async () => {
    const topic = 'FlowTags';
    // "Aa" and "BB" share a Java hashCode (2112): only the string check tells them apart.
    for (const [body, tag] of [['a1', 'TagA'], ['c1', 'TagC'], ['b1', 'TagB'], ['x1', 'BB'], ['c2', 'TagC']] as const) await send(topic, body, { TAGS: tag });
    const some = await pull(topic, { subscription: 'TagA || TagB' });
    expect(some.code).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(some)).toEqual(['a1', 'b1']);
    expect(some.extFields).toMatchObject({ nextBeginOffset: '5', minOffset: '0', maxOffset: '5' });
    const collided = await pull(topic, { subscription: 'Aa' });
    expect(collided).toMatchObject({ code: ResponseCode.PULL_RETRY_IMMEDIATELY, remark: 'NO_MATCHED_MESSAGE' });
    expect(collided.extFields['nextBeginOffset']).toBe('5');
    expect(bodiesOf(await pull(topic, { subscription: 'BB' }))).toEqual(['x1']);
    expect(bodiesOf(await pull(topic, { subscription: '*', offset: 3 }))).toEqual(['x1', 'c2']);
  });

  it('filters by SQL92 over user properties when enablePropertyFilter is on, and refuses a bad expression', async () => {
    const topic = 'FlowSql';
    for (const [a, b] of [['3', 'x'], ['7', 'x'], ['9', 'y'], ['10', 'x']] as const) await send(topic, `a${a}${b}`, { a, b, TAGS: 't' });
    const matched = await pull(topic, { subscription: "a > 5 AND b = 'x'", expressionType: 'SQL92', subVersion: 1 });
    expect(matched.code).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(matched)).toEqual(['a7x', 'a10x']);
    expect(matched.extFields['nextBeginOffset']).toBe('4');
    const none = await pull(topic, { subscription: 'a > 100', expressionType: 'SQL92' });
    expect(none).toMatchObject({ code: ResponseCode.PULL_RETRY_IMMEDIATELY, remark: 'NO_MATCHED_MESSAGE', extFields: { nextBeginOffset: '4' } });
    const bad = await pull(topic, { subscription: 'a > AND', expressionType: 'SQL92' });
    expect(bad).toMatchObject({ code: ResponseCode.SUBSCRIPTION_PARSE_FAILED, remark: "parse the consumer's subscription failed" });
    // The Java client checks a SQL92 subscription with the broker before it subscribes.
    expect((await checkClientConfig(broker, topic, "a > 5 AND b = 'x'")).code).toBe(ResponseCode.SUCCESS);
    expect((await checkClientConfig(broker, topic, 'a > AND')).code).toBe(ResponseCode.SUBSCRIPTION_PARSE_FAILED);

    // A push consumer that registered its SQL92 subscription by heartbeat pulls without posting it.
    const group = 'GFlowSql';
    await heartbeat(await connectBroker(), 'sql-client', [consumerData(group, [subscriptionData(topic, 'a >= 9', 'SQL92')])]);
    expect(bodiesOf(await pull(topic, { group, subVersion: SUB_VERSION }))).toEqual(['a9y', 'a10x']);
  });

  it('refuses SQL92 on a node whose enablePropertyFilter is off, as RocketMQ does', async () => {
    const plain = await startTestNode('broker-flows-nofilter', 'warn', { enablePropertyFilter: 'false' });
    const client = await RemotingClient.connect(`127.0.0.1:${plain.node.ports.broker}`);
    try {
      await send('FlowSqlOff', 'm', { a: '7' }, { client });
      const refused = await pull('FlowSqlOff', { subscription: 'a > 5', expressionType: 'SQL92', client });
      expect(refused).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'The broker does not support consumer to filter message by SQL92' });
      expect((await checkClientConfig(client, 'FlowSqlOff', 'a > 5')).remark).toBe('The broker does not support consumer to filter message by SQL92');
      // Tags still work there.
      expect(bodiesOf(await pull('FlowSqlOff', { subscription: '*', client }))).toEqual(['m']);
    } finally {
      await client.close();
      await plain.stop();
    }
  }, 30_000);

  it('sends a message back to %RETRY%group after its delay level, then to %DLQ%group past maxReconsumeTimes', async () => {
    const topic = 'FlowRetry';
    const group = 'GFlowRetry';
    const retryTopic = `%RETRY%${group}`;
    const dlqTopic = `%DLQ%${group}`;
    // A clustering push consumer subscribes to its topic and to its group's retry topic.
    await heartbeat(await connectBroker(), 'retry-client', [consumerData(group, [subscriptionData(topic, '*'), subscriptionData(retryTopic, '*')])]);
    // The heartbeat created the retry topic, and the broker registered it with the NameServer at once.
    const route = await routeOf(retryTopic);
    expect(route.queueDatas[0]!.readQueueNums).toBe(1);

    const sent = await send(topic, 'try me', { TAGS: 'r', KEYS: 'retry-key' });
    const msgId = sent.extFields['msgId']!;
    const original = recordsOf(await pull(topic, { group }))[0]!;
    expect(original.reconsumeTimes).toBe(0);

    const sentBackAt = Date.now();
    expect((await sendBack(original.physicalOffset, group, topic, msgId, 2)).code).toBe(ResponseCode.SUCCESS);
    const early = await pull(retryTopic, { group });
    // Delivered no earlier than level 1's delay after it was stored (which was after sentBackAt).
    if (Date.now() - sentBackAt < LEVEL_1_MS) expect(early.code).not.toBe(ResponseCode.SUCCESS);
    const first = recordsOf(await pullUntilFound(retryTopic, { group }))[0]!;
    expect(first.storeTimestampMs - sentBackAt).toBeGreaterThanOrEqual(LEVEL_1_MS);
    expect(first.topic).toBe(retryTopic);
    expect(first.reconsumeTimes).toBe(1);
    expect(Buffer.from(first.body).toString()).toBe('try me');
    const properties = first.propertiesMap();
    expect(properties.get('RETRY_TOPIC')).toBe(topic);
    expect(properties.get('ORIGIN_MESSAGE_ID')).toBe(msgId);
    expect(properties.get('TAGS')).toBe('r');
    expect(properties.get('KEYS')).toBe('retry-key');
    expect(properties.has('DELAY')).toBe(false);

    // reconsumeTimes 1 < 2: back to the retry topic once more.
    expect((await sendBack(first.physicalOffset, group, topic, msgId, 2)).code).toBe(ResponseCode.SUCCESS);
    const second = recordsOf(await pullUntilFound(retryTopic, { group, offset: 1 }))[0]!;
    expect(second.reconsumeTimes).toBe(2);
    expect(second.propertiesMap().get('ORIGIN_MESSAGE_ID')).toBe(msgId);

    // reconsumeTimes 2 >= maxReconsumeTimes 2: to the dead-letter topic, at once.
    expect((await sendBack(second.physicalOffset, group, topic, msgId, 2)).code).toBe(ResponseCode.SUCCESS);
    const dead = recordsOf(await pullUntilFound(dlqTopic, { group, subscription: '*' }))[0]!;
    expect(dead.topic).toBe(dlqTopic);
    expect(dead.reconsumeTimes).toBe(3);
    expect(Buffer.from(dead.body).toString()).toBe('try me');
    expect(dead.propertiesMap().get('RETRY_TOPIC')).toBe(topic);
    expect(dead.propertiesMap().get('ORIGIN_MESSAGE_ID')).toBe(msgId);
    expect((await routeOf(dlqTopic)).queueDatas[0]!.readQueueNums).toBe(1);
    // Nothing more went to the retry topic.
    expect((await pull(retryTopic, { group, offset: 2 })).code).toBe(ResponseCode.PULL_NOT_FOUND);

    // The client's own fallback: it sends the message to the retry topic itself, counting the attempt; one
    // reconsumed more than maxReconsumeTimes goes to the dead-letter topic instead.
    await send(retryTopic, 'by the client', { TAGS: 'r', RETRY_TOPIC: topic, RECONSUME_TIME: '3' }, { reconsumeTimes: 3, maxReconsumeTimes: 2 });
    const fallback = recordsOf(await pull(dlqTopic, { group, subscription: '*', offset: 1 }));
    expect(fallback.map((record) => [Buffer.from(record.body).toString(), record.reconsumeTimes])).toEqual([['by the client', 3]]);
    expect(fallback[0]!.propertiesMap().get('RECONSUME_TIME')).toBe('3');
  }, 20_000);

  it('holds a delay-level message back for its delay, then delivers it to its real topic', async () => {
    const topic = 'FlowDelay';
    const bornMs = Date.now();
    await send(topic, 'later', { TAGS: 'd', DELAY: '1' });
    const early = await pull(topic, { subscription: '*' });
    if (Date.now() - bornMs < LEVEL_1_MS) expect(early.code).toBe(ResponseCode.PULL_NOT_FOUND);
    // A long-polling pull is woken by the delivery.
    const held = await pull(topic, { subscription: '*', suspendMs: 5_000 });
    expect(held.code).toBe(ResponseCode.SUCCESS);
    const [delivered] = recordsOf(held);
    expect(Buffer.from(delivered!.body).toString()).toBe('later');
    expect(delivered!.topic).toBe(topic);
    expect(delivered!.storeTimestampMs - bornMs).toBeGreaterThanOrEqual(LEVEL_1_MS);
    expect(delivered!.propertiesMap().has('DELAY')).toBe(false);
    expect(delivered!.propertiesMap().get('REAL_TOPIC')).toBe(topic);
  }, 15_000);

  it('keeps a clustering group\'s clients, tells them of joins and leaves, and answers the client list', async () => {
    const group = 'GFlowCluster';
    const topic = 'FlowCluster';
    const first = await connectBroker();
    const second = await connectBroker();
    const notices: RemotingCommand[] = [];
    first.onRequest((request) => {
      notices.push(request);
      return undefined;
    });
    const subscriptions = [subscriptionData(topic, 'TagA')];
    await heartbeat(first, 'client-1', [consumerData(group, subscriptions)]);
    await heartbeat(second, 'client-2', [consumerData(group, subscriptions)]);
    const list = async (): Promise<string[]> => {
      const response = await broker.invoke(requestOf(RequestCode.GET_CONSUMER_LIST_BY_GROUP, { consumerGroup: group }), REQUEST_MS);
      return response.code === ResponseCode.SUCCESS ? [...parseGetConsumerListByGroupResponseBody(response.body).consumerIdList] : [];
    };
    expect(await list()).toEqual(['client-1', 'client-2']);
    const changed = (count: number) =>
      pollUntil(`${count} NOTIFY_CONSUMER_IDS_CHANGED`, () => {
        const seen = notices.filter((request) => request.code === RequestCode.NOTIFY_CONSUMER_IDS_CHANGED);
        return seen.length >= count ? seen : undefined;
      }, 5_000, POLL_MS);
    // Told when it joined itself, and when the second joined.
    const joined = await changed(2);
    expect(joined[1]!.extFields['consumerGroup']).toBe(group);
    const unregistered = await second.invoke(javaRequest(RequestCode.UNREGISTER_CLIENT, { clientID: 'client-2', consumerGroup: group }), REQUEST_MS);
    expect(unregistered.code).toBe(ResponseCode.SUCCESS);
    await changed(3);
    expect(await list()).toEqual(['client-1']);

    // A pull without its own subscription is filtered by the one the heartbeat registered.
    for (const [body, tag] of [['a', 'TagA'], ['b', 'TagB'], ['a2', 'TagA']] as const) await send(topic, body, { TAGS: tag });
    const registered = await pull(topic, { group, client: first, subVersion: SUB_VERSION });
    expect(bodiesOf(registered)).toEqual(['a', 'a2']);
    expect(registered.extFields['nextBeginOffset']).toBe('3');
    // A consumer whose subscription is newer than the one the broker holds is told so.
    const newer = await pull(topic, { group, client: first, subVersion: SUB_VERSION + 1 });
    expect(newer).toMatchObject({ code: ResponseCode.SUBSCRIPTION_NOT_LATEST, remark: "the consumer's subscription not latest" });
    // The consumer offset rides on the next pull (FLAG_COMMIT_OFFSET), stored before that pull is answered.
    await pull(topic, { group, client: first, subVersion: SUB_VERSION, offset: 3, commitOffset: 3 });
    const stored = await first.invoke(javaRequest(RequestCode.QUERY_CONSUMER_OFFSET, { consumerGroup: group, topic, queueId: '0' }), REQUEST_MS);
    expect(stored).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { offset: '3' } });
  });

  it('lets every client of a broadcasting group pull the same messages from its own offsets', async () => {
    const group = 'GFlowBroadcast';
    const topic = 'FlowBroadcast';
    const first = await connectBroker();
    const second = await connectBroker();
    const consumers = [consumerData(group, [subscriptionData(topic, 'TagA || TagB')], 'BROADCASTING')];
    await heartbeat(first, 'bc-1', consumers);
    await heartbeat(second, 'bc-2', consumers);
    for (const [body, tag] of [['m1', 'TagA'], ['m2', 'TagC'], ['m3', 'TagB']] as const) await send(topic, body, { TAGS: tag });
    const one = await pull(topic, { group, client: first });
    const two = await pull(topic, { group, client: second });
    expect(bodiesOf(one)).toEqual(['m1', 'm3']);
    expect(bodiesOf(two)).toEqual(['m1', 'm3']);
    // The first moves on; the second, with its own offset, still reads from the start.
    expect((await pull(topic, { group, client: first, offset: Number(one.extFields['nextBeginOffset']) })).code).toBe(ResponseCode.PULL_NOT_FOUND);
    await send(topic, 'm4', { TAGS: 'TagA' });
    expect(bodiesOf(await pull(topic, { group, client: second, offset: 0 }))).toEqual(['m1', 'm3', 'm4']);
    expect(bodiesOf(await pull(topic, { group, client: first, offset: 3 }))).toEqual(['m4']);
  });

  it('answers a pull RocketMQ\'s way when the topic does not exist or the group registered no subscription', async () => {
    const missing = await pull('FlowNoSuchTopic', { subscription: '*' });
    expect(missing.code).toBe(ResponseCode.TOPIC_NOT_EXIST);
    expect(missing.remark).toMatch(/^topic\[FlowNoSuchTopic\] not exist, apply first please!/);
    await send('FlowChecks', 'm', { TAGS: 't' });
    // The pull created no topic: it is still unknown.
    expect((await pull('FlowNoSuchTopic', { subscription: '*' })).code).toBe(ResponseCode.TOPIC_NOT_EXIST);
    const queues = (await routeOf('FlowChecks')).queueDatas[0]!.readQueueNums;
    const outside = await pull('FlowChecks', { subscription: '*', queueId: queues });
    expect(outside.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(outside.remark).toContain(`queueId[${queues}] is illegal`);
    const unsubscribed = await pull('FlowChecks', { group: 'GFlowNobody' });
    expect(unsubscribed.code).toBe(ResponseCode.SUBSCRIPTION_NOT_EXIST);
    // Pulling made the groups, but no retry or dead-letter topic: those come with heartbeats and send-backs.
    const all = await broker.invoke(javaRequest(RequestCode.GET_ALL_TOPIC_CONFIG, {}), REQUEST_MS);
    const topics = Object.keys((JSON.parse(Buffer.from(all.body!).toString()) as { topicConfigTable: Record<string, unknown> }).topicConfigTable);
    expect(topics).toContain('FlowChecks');
    for (const group of ['GFlow', 'GFlowNobody']) {
      expect(topics).not.toContain(`%RETRY%${group}`);
      expect(topics).not.toContain(`%DLQ%${group}`);
    }
  });
});

describe('a start node: admin and query flows over Remoting', () => {
  it('answers queue offsets, store times, searches by time, by key and by message id', async () => {
    const topic = 'FlowAdmin';
    const beginMs = Date.now();
    const sent: RemotingCommand[] = [];
    for (const [body, key] of [['m0', 'k0'], ['m1', 'k1 shared'], ['m2', 'k2 shared']] as const) {
      sent.push(await send(topic, body, { TAGS: 't', KEYS: key }));
      // Distinct store times, so a search by time has one answer.
      const last = Date.now();
      await pollUntil('the next millisecond', () => (Date.now() > last + 1 ? true : undefined), 1_000, 1);
    }
    const stored = recordsOf(await pull(topic, { subscription: '*' }));
    expect(stored.map((record) => record.queueOffset)).toEqual([0, 1, 2]);
    const ask = (code: number, extFields: Record<string, string>) => broker.invoke(javaRequest(code, extFields), REQUEST_MS);
    const queue = { topic, queueId: '0' };
    expect((await ask(RequestCode.GET_MIN_OFFSET, queue)).extFields['offset']).toBe('0');
    expect((await ask(RequestCode.GET_MAX_OFFSET, queue)).extFields['offset']).toBe('3');
    const earliest = await ask(RequestCode.GET_EARLIEST_MSG_STORETIME, queue);
    expect(earliest.code).toBe(ResponseCode.SUCCESS);
    expect(earliest.extFields['timestamp']).toBe(String(stored[0]!.storeTimestampMs));
    const search = await ask(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, { ...queue, timestamp: String(stored[1]!.storeTimestampMs) });
    expect(search).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { offset: '1' } });

    // QUERY_MESSAGE by key, once the index has the messages.
    const query = (key: string, begin: number, end: number) =>
      ask(RequestCode.QUERY_MESSAGE, { topic, key, maxNum: '32', beginTimestamp: String(begin), endTimestamp: String(end) });
    const byKey = await pollUntil('the index', async () => {
      const response = await query('shared', beginMs - 1_000, Date.now() + 60_000);
      return response.code === ResponseCode.SUCCESS && recordsOf(response).length === 2 ? response : undefined;
    }, 5_000, POLL_MS);
    expect(bodiesOf(byKey).sort()).toEqual(['m1', 'm2']);
    expect((await query('k0', beginMs - 1_000, Date.now() + 60_000)).code).toBe(ResponseCode.SUCCESS);
    expect((await query('shared', beginMs - 60_000, beginMs - 30_000)).code).toBe(ResponseCode.QUERY_NOT_FOUND);
    // By the message's unique key, as the client's viewMessage(topic, msgId) asks.
    const uniqKey = stored[1]!.propertiesMap().get('UNIQ_KEY')!;
    expect(uniqKey).toMatch(/^[0-9A-F]{32}$/);
    const unique = await broker.invoke(
      javaRequest(RequestCode.QUERY_MESSAGE, { topic, key: uniqKey, maxNum: '1', beginTimestamp: '0', endTimestamp: String(Date.now() + 60_000), _UNIQUE_KEY_QUERY: 'true' }),
      REQUEST_MS,
    );
    expect(bodiesOf(unique)).toEqual(['m1']);

    // VIEW_MESSAGE_BY_ID with the offset message id the send answered.
    const msgId = sent[2]!.extFields['msgId']!;
    const parsed = parseOffsetMessageId(msgId);
    expect(parsed?.storeHost).toEqual({ address: '127.0.0.1', port: node.ports.broker });
    const viewed = await ask(RequestCode.VIEW_MESSAGE_BY_ID, { offset: String(parsed!.physicalOffset) });
    expect(viewed.code).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(viewed)).toEqual(['m2']);
    expect(recordsOf(viewed)[0]!.physicalOffset).toBe(stored[2]!.physicalOffset);
  });

  it('locks queues for one client at a time and unlocks them for the next', async () => {
    const topic = 'FlowLocks';
    await send(topic, 'm', { TAGS: 't' });
    const { brokerDatas } = await routeOf(topic);
    const brokerName = brokerDatas[0]!.brokerName;
    const mq = (queueId: number): MessageQueue => ({ topic, brokerName, queueId });
    const group = 'GFlowOrderly';
    const lock = async (clientId: string, queueIds: number[]): Promise<number[]> => {
      const body = formatLockBatchRequestBody({ consumerGroup: group, clientId, onlyThisBroker: false, mqSet: queueIds.map(mq) });
      const response = await broker.invoke(javaRequest(RequestCode.LOCK_BATCH_MQ, {}, body), REQUEST_MS);
      expect(response.code).toBe(ResponseCode.SUCCESS);
      return parseLockBatchResponseBody(response.body).lockOKMQSet.map((queue) => queue.queueId).sort();
    };
    expect(await lock('lock-a', [0, 1])).toEqual([0, 1]);
    expect(await lock('lock-b', [0, 2])).toEqual([2]);
    // The holder locks again (a renewal).
    expect(await lock('lock-a', [0])).toEqual([0]);
    const unlockBody = formatLockBatchRequestBody({ consumerGroup: group, clientId: 'lock-a', onlyThisBroker: false, mqSet: [mq(0)] });
    expect((await broker.invoke(javaRequest(RequestCode.UNLOCK_BATCH_MQ, {}, unlockBody), REQUEST_MS)).code).toBe(ResponseCode.SUCCESS);
    expect(await lock('lock-b', [0])).toEqual([0]);
    expect(await lock('lock-a', [0, 1])).toEqual([1]);
  });

  it('stores a SEND_BATCH_MESSAGE as separate messages, each pullable with its own properties', async () => {
    const topic = 'FlowBatch';
    await send(topic, 'first', { TAGS: 'single' });
    const batch = encodeMessageBatch([
      { body: Buffer.from('b1'), properties: encodeMessageProperties({ TAGS: 'x', KEYS: 'bk1' }) },
      { body: Buffer.from('b2'), properties: encodeMessageProperties({ TAGS: 'y', KEYS: 'bk2' }) },
    ]);
    const header = formatSendMessageRequest(
      {
        producerGroup: 'flow-producer',
        topic,
        defaultTopic: 'TBW102',
        defaultTopicQueueNums: 4,
        queueId: 0,
        sysFlag: 0,
        bornTimestamp: Date.now(),
        flag: 0,
        properties: encodeMessageProperties({ WAIT: 'true' }),
        reconsumeTimes: 0,
        batch: true,
      },
      'V2',
    );
    const response = await broker.invoke(javaRequest(RequestCode.SEND_BATCH_MESSAGE, header, batch), REQUEST_MS);
    expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
    expect(response.extFields['queueOffset']).toBe('1');
    const ids = response.extFields['msgId']!.split(',');
    expect(ids).toHaveLength(2);
    const records = recordsOf(await pull(topic, { subscription: '*', offset: 1 }));
    expect(records.map((record) => Buffer.from(record.body).toString())).toEqual(['b1', 'b2']);
    expect(records.map((record) => record.propertiesMap().get('TAGS'))).toEqual(['x', 'y']);
    expect(records.map((record) => record.propertiesMap().get('KEYS'))).toEqual(['bk1', 'bk2']);
    expect(ids.map((id) => parseOffsetMessageId(id)?.physicalOffset)).toEqual(records.map((record) => record.physicalOffset));
    expect(bodiesOf(await pull(topic, { subscription: 'y' }))).toEqual(['b2']);
  });
});
