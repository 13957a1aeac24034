import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  groupNameProblem,
  parseAttributeRequest,
  topicNameProblem,
  type BrokerAdminInbox,
  type SubscriptionOfAnswer,
} from '../../src/actors/broker-admin.ts';
import type { GroupForRetryAnswer, PullMetadataAnswer, TopicForSendAnswer } from '../../src/actors/broker-context.ts';
import { spawnNameServer } from '../../src/actors/name-server.ts';
import type { BoundAnswer, RemotingAcceptorArgs, RemotingAcceptorMessage } from '../../src/actors/remoting-acceptor.ts';
import type { RemotingRoutes } from '../../src/actors/remoting-routes.ts';
import {
  formatHeartbeatData,
  formatLockBatchRequestBody,
  parseConsumeStats,
  parseConsumerConnection,
  parseGetConsumerListByGroupResponseBody,
  parseKVTable,
  parseLockBatchResponseBody,
  parseResetOffsetBody,
  parseSubscriptionGroupWrapper,
  parseTopicConfigSerializeWrapper,
  parseTopicStatsTable,
} from '../../src/net/remoting/broker-bodies.ts';
import { CreateTopicRequestHeader } from '../../src/net/remoting/broker-headers.ts';
import { decodeJsonBody, PermName, type TopicRouteData } from '../../src/net/remoting/namesrv-protocol.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { decodeRecord } from '../../src/storage/message-record.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { ADMIN_TEST_POOLS, AdminHarness, consumerData, type AdminHarnessOptions } from './fixtures/admin-harness.ts';

const RW = PermName.PERM_READ | PermName.PERM_WRITE;
const text = (body: Uint8Array | undefined): string => Buffer.from(body ?? new Uint8Array()).toString('utf8');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function createTopicHeader(topic: string, overrides: Partial<Parameters<typeof CreateTopicRequestHeader.format>[0]> = {}): Record<string, string> {
  return CreateTopicRequestHeader.format({
    topic,
    defaultTopic: 'TBW102',
    readQueueNums: 4,
    writeQueueNums: 4,
    perm: RW,
    topicFilterType: 'SINGLE_TAG',
    ...overrides,
  });
}

describe('broker-admin', () => {
  const harnesses: AdminHarness[] = [];
  const systems: ActorSystem[] = [];
  const clients: RemotingClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    for (const h of harnesses.splice(0)) await h.stop(true);
    for (const system of systems.splice(0)) await system.shutdown();
  });

  async function harness(options: AdminHarnessOptions = {}, system?: ActorSystem): Promise<AdminHarness> {
    const h = await AdminHarness.start(options, system);
    harnesses.push(h);
    return h;
  }

  async function allTopics(h: AdminHarness) {
    const response = await h.call(RequestCode.GET_ALL_TOPIC_CONFIG);
    expect(response.code).toBe(ResponseCode.SUCCESS);
    return parseTopicConfigSerializeWrapper(response.body).topicConfigTable;
  }

  async function consumerIds(h: AdminHarness, group: string): Promise<string[] | undefined> {
    const response = await h.call(RequestCode.GET_CONSUMER_LIST_BY_GROUP, { consumerGroup: group });
    return response.code === ResponseCode.SUCCESS ? [...parseGetConsumerListByGroupResponseBody(response.body).consumerIdList] : undefined;
  }

  it('creates RocketMQ\'s system topics and groups at start', async () => {
    const h = await harness();
    const topics = await allTopics(h);
    expect(topics.get('TBW102')).toMatchObject({ readQueueNums: 8, writeQueueNums: 8, perm: PermName.PERM_INHERIT | RW });
    expect(topics.get('SELF_TEST_TOPIC')).toMatchObject({ readQueueNums: 1, perm: RW });
    expect(topics.get('TestCluster')).toMatchObject({ readQueueNums: 16, perm: PermName.PERM_INHERIT | RW });
    expect(topics.get('broker-t')).toMatchObject({ readQueueNums: 1, perm: PermName.PERM_INHERIT | RW });
    expect(topics.get('SCHEDULE_TOPIC_XXXX')).toMatchObject({ readQueueNums: 18, writeQueueNums: 18 });
    expect(topics.get('rmq_sys_REVIVE_LOG_TestCluster')).toMatchObject({ readQueueNums: 8 });
    expect(topics.get('rmq_sys_SYNC_BROKER_MEMBER_broker-t')).toMatchObject({ perm: PermName.PERM_INHERIT });
    for (const name of ['OFFSET_MOVED_EVENT', 'TestCluster_REPLY_TOPIC', 'RMQ_SYS_TRANS_HALF_TOPIC', 'RMQ_SYS_TRANS_OP_HALF_TOPIC', 'rmq_sys_wheel_timer', 'BenchmarkTest']) {
      expect(topics.has(name), name).toBe(true);
    }
    expect(topics.has('RMQ_SYS_TRACE_TOPIC')).toBe(false);
    const groups = parseSubscriptionGroupWrapper((await h.call(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).body).subscriptionGroupTable;
    expect([...groups.keys()]).toEqual(expect.arrayContaining(['TOOLS_CONSUMER', 'SELF_TEST_C_GROUP', 'CID_RMQ_SYS_TRANS']));
  });

  it('registers consumers by heartbeat, notifies the group when one joins or leaves, and forgets closed connections', async () => {
    const h = await harness();
    const joined = await h.heartbeat(1, 'c1', [consumerData('G', ['T'])], ['P']);
    expect(joined).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { IS_SUPPORT_HEART_BEAT_V2: 'true', IS_SUB_CHANGE: 'true' } });
    expect(await consumerIds(h, 'G')).toEqual(['c1']);
    // The heartbeat created the group and its retry topic.
    expect((await allTopics(h)).get('%RETRY%G')).toMatchObject({ readQueueNums: 1, writeQueueNums: 1, perm: RW });
    const notifiesBefore = (await h.pushes(1, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED)).length;
    expect(notifiesBefore).toBe(1);

    await h.heartbeat(2, 'c2', [consumerData('G', ['T'])]);
    expect(await consumerIds(h, 'G')).toEqual(['c1', 'c2']);
    const toFirst = await h.pushes(1, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED);
    expect(toFirst).toHaveLength(2);
    expect(toFirst[1]?.extFields).toMatchObject({ consumerGroup: 'G' });

    // A heartbeat that changes nothing does not notify.
    await h.heartbeat(2, 'c2', [consumerData('G', ['T'])]);
    expect(await h.pushes(1, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED)).toHaveLength(2);

    const connections = parseConsumerConnection((await h.call(RequestCode.GET_CONSUMER_CONNECTION_LIST, { consumerGroup: 'G' })).body);
    expect(connections.connectionSet.map((c) => [c.clientId, c.clientAddr])).toEqual([['c1', '10.0.0.9:50001'], ['c2', '10.0.0.9:50002']]);
    expect([...connections.subscriptionTable.keys()]).toEqual(['T']);
    expect(connections.messageModel).toBe('CLUSTERING');
    expect(await h.ask<SubscriptionOfAnswer>({ type: 'subscriptionOf', group: 'G', topic: 'T' })).toMatchObject({
      group: { groupName: 'G' },
      subscription: { topic: 'T', subString: '*' },
      consumerOnline: true,
    });

    expect(h.system.tell<BrokerAdminInbox>(h.admin, { type: 'channelClosed', channel: h.channel(2) })).toBe(true);
    expect(await consumerIds(h, 'G')).toEqual(['c1']);
    expect(await h.pushes(1, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED)).toHaveLength(3);

    const missing = await h.call(RequestCode.GET_CONSUMER_LIST_BY_GROUP, { consumerGroup: 'nobody' });
    expect(missing).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'no consumer for this group, nobody' });
    expect((await h.call(RequestCode.GET_CONSUMER_CONNECTION_LIST, { consumerGroup: 'nobody' })).code).toBe(ResponseCode.CONSUMER_NOT_ONLINE);

    const producers = await h.call(RequestCode.GET_PRODUCER_CONNECTION_LIST, { producerGroup: 'P' });
    expect(JSON.parse(text(producers.body))).toEqual({ connectionSet: [{ clientAddr: '10.0.0.9:50001', clientId: 'c1', language: 'JAVA', version: 479 }] });

    // UNREGISTER_CLIENT removes the last consumer: the group is gone.
    expect((await h.call(RequestCode.UNREGISTER_CLIENT, { clientID: 'c1', consumerGroup: 'G', producerGroup: 'P' }, undefined, { connectionId: 1 })).code).toBe(ResponseCode.SUCCESS);
    expect(await consumerIds(h, 'G')).toBeUndefined();
    expect((await h.call(RequestCode.GET_PRODUCER_CONNECTION_LIST, { producerGroup: 'P' })).code).toBe(ResponseCode.SYSTEM_ERROR);
  });

  it('asks a V2 client for its subscriptions when it heartbeats without them to a broker that has none', async () => {
    const h = await harness();
    const body = (withoutSub: boolean) =>
      formatHeartbeatData({
        clientID: 'c1',
        consumerDataSet: [{ ...consumerData('G', ['T']), subscriptionDataSet: withoutSub ? [] : consumerData('G', ['T']).subscriptionDataSet }],
        producerDataSet: [],
        heartbeatFingerprint: 77,
        withoutSub,
      });
    const first = await h.call(RequestCode.HEART_BEAT, {}, body(true), { connectionId: 1 });
    expect(first.extFields).toMatchObject({ IS_SUB_CHANGE: 'true' });
    const full = await h.call(RequestCode.HEART_BEAT, {}, body(false), { connectionId: 1 });
    expect(full.extFields).toMatchObject({ IS_SUB_CHANGE: 'false' });
    const again = await h.call(RequestCode.HEART_BEAT, {}, body(true), { connectionId: 1 });
    expect(again.extFields).toMatchObject({ IS_SUB_CHANGE: 'false' });
  });

  it('removes a client silent past channelExpiredTimeout, closes its connection and notifies the rest', async () => {
    const h = await harness({ options: { channelExpiredTimeoutMs: 400, clientScanIntervalMs: 50 } });
    await h.heartbeat(1, 'quiet', [consumerData('G', ['T'])]);
    await h.heartbeat(2, 'alive', [consumerData('G', ['T'])]);
    let beating = true;
    const keepAlive = (async () => {
      while (beating) {
        await h.heartbeat(2, 'alive', [consumerData('G', ['T'])]);
        await sleep(50);
      }
    })();
    try {
      await pollUntil('quiet client expired', async () => ((await consumerIds(h, 'G'))?.join(',') === 'alive' ? true : undefined), 5_000, 20);
      const closed = (await h.recorded()).filter((m) => m.type === 'closeConnection');
      expect(closed.map((m) => m.type === 'closeConnection' && m.connectionId)).toEqual([1]);
      const notified = await h.pushes(2, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED);
      expect(notified.length).toBeGreaterThanOrEqual(2);
    } finally {
      beating = false;
      await keepAlive;
    }
  });

  it('stores, queries and refuses consumer offsets as ConsumerManageProcessor does', async () => {
    const h = await harness();
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('T'))).code).toBe(ResponseCode.SUCCESS);
    await h.heartbeat(1, 'c1', [consumerData('G', ['T'])]);
    const query = (queueId: number, extra: Record<string, string> = {}) =>
      h.call(RequestCode.QUERY_CONSUMER_OFFSET, { consumerGroup: 'G', topic: 'T', queueId: String(queueId), ...extra });

    expect(await query(0)).toMatchObject({ code: ResponseCode.QUERY_NOT_FOUND, remark: 'Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first' });
    await h.put('T', 1, 'first');
    // Never committed, but the queue still holds its first message: start from 0.
    expect(await query(1)).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { offset: '0' } });
    expect(await query(1, { setZeroIfNotFound: 'false' })).toMatchObject({ code: ResponseCode.QUERY_NOT_FOUND });

    const update = (group: string, topic: string, queueId: number, commitOffset: number) =>
      h.call(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: group, topic, queueId: String(queueId), commitOffset: String(commitOffset) });
    expect((await update('G', 'T', 0, 5)).code).toBe(ResponseCode.SUCCESS);
    expect(await query(0)).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { offset: '5' } });
    expect(await update('nogroup', 'T', 0, 1)).toMatchObject({ code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, remark: 'Group nogroup not exist!' });
    expect(await update('G', 'NoTopic', 0, 1)).toMatchObject({ code: ResponseCode.TOPIC_NOT_EXIST, remark: 'Topic NoTopic not exist!' });
    expect((await update('G', 'T', 70_000, 1)).code).toBe(ResponseCode.SYSTEM_ERROR);

    // The processors' internal API.
    expect(await h.ask<number>({ type: 'queryOffset', group: 'G', topic: 'T', queueId: 0 })).toBe(5);
    expect(h.system.tell<BrokerAdminInbox>(h.admin, { type: 'commitOffset', group: 'G', topic: 'T', queueId: 0, offset: 9 })).toBe(true);
    expect(await h.ask<number>({ type: 'queryOffset', group: 'G', topic: 'T', queueId: 0 })).toBe(9);
    expect(await h.ask<number>({ type: 'queryOffset', group: 'G', topic: 'T', queueId: 3 })).toBe(-1);

    // Written every flushConsumerOffsetInterval (200 ms here), not only at stop.
    const file = path.join(h.dir, 'config', 'consumerOffset.json');
    const written = await pollUntil('consumerOffset.json written', () => {
      if (!fs.existsSync(file)) return undefined;
      const table = (JSON.parse(fs.readFileSync(file, 'utf8')) as { offsetTable: Record<string, Record<string, number>> }).offsetTable;
      return table['T@G']?.['0'] === 9 ? table : undefined;
    });
    expect(written['T@G']).toEqual({ 0: 9 });
  });

  it('answers min/max offsets, earliest store time, search by timestamp and the stats of topics and groups', async () => {
    const h = await harness();
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('T', { readQueueNums: 2, writeQueueNums: 2 }))).code).toBe(ResponseCode.SUCCESS);
    const puts = [];
    for (const body of ['a', 'b', 'c']) {
      puts.push(await h.put('T', 0, body));
      await sleep(5);
    }
    const stamps = puts.map((put) => put.storeTimestampMs);
    expect(new Set(stamps).size).toBe(3);
    const offset = async (code: number, extra: Record<string, string> = {}) =>
      Number((await h.call(code, { topic: 'T', queueId: '0', ...extra })).extFields.offset);
    expect(await offset(RequestCode.GET_MIN_OFFSET)).toBe(0);
    expect(await offset(RequestCode.GET_MAX_OFFSET)).toBe(3);
    expect(await offset(RequestCode.GET_MAX_OFFSET, { queueId: '1' })).toBe(0);
    const earliest = await h.call(RequestCode.GET_EARLIEST_MSG_STORETIME, { topic: 'T', queueId: '0' });
    expect(Number(earliest.extFields.timestamp)).toBe(stamps[0]);
    expect((await h.call(RequestCode.GET_EARLIEST_MSG_STORETIME, { topic: 'T', queueId: '1' })).extFields.timestamp).toBe('-1');
    expect(await offset(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, { timestamp: String(stamps[1]) })).toBe(1);
    expect(await offset(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, { timestamp: String(stamps[1]), boundaryType: 'upper' })).toBe(1);
    expect(await offset(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, { timestamp: String(stamps[0]! - 1_000) })).toBe(0);
    expect(await offset(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, { timestamp: String(stamps[2]! + 1_000) })).toBe(3);

    const stats = parseTopicStatsTable((await h.call(RequestCode.GET_TOPIC_STATS_INFO, { topic: 'T' })).body);
    expect(stats.offsetTable.map(([mq, o]) => [mq.queueId, mq.brokerName, o.minOffset, o.maxOffset, o.lastUpdateTimestamp])).toEqual([
      [0, 'broker-t', 0, 3, stamps[2]],
      [1, 'broker-t', 0, 0, 0],
    ]);
    expect((await h.call(RequestCode.GET_TOPIC_STATS_INFO, { topic: 'nope' })).code).toBe(ResponseCode.TOPIC_NOT_EXIST);

    await h.heartbeat(1, 'c1', [consumerData('G', ['T'])]);
    await h.call(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: 'G', topic: 'T', queueId: '0', commitOffset: '2' });
    const consume = parseConsumeStats((await h.call(RequestCode.GET_CONSUME_STATS, { consumerGroup: 'G' })).body);
    expect(consume.offsetTable.map(([mq, w]) => [mq.topic, mq.queueId, w.brokerOffset, w.consumerOffset, w.lastTimestamp])).toEqual([
      ['T', 0, 3, 2, stamps[1]],
      ['T', 1, 0, 0, 0],
    ]);
  });

  it('finds messages by key (QUERY_MESSAGE) and by CommitLog offset (VIEW_MESSAGE_BY_ID)', async () => {
    const h = await harness();
    const put = await h.put('T', 0, 'hello', { KEYS: 'order-1', UNIQ_KEY: 'U1' });
    const found = await h.call(RequestCode.QUERY_MESSAGE, { topic: 'T', key: 'order-1', maxNum: '32', beginTimestamp: '0', endTimestamp: String(Date.now() + 60_000) });
    expect(found.code).toBe(ResponseCode.SUCCESS);
    const record = decodeRecord(found.body!, 0);
    expect([record.topic, Buffer.from(record.body).toString()]).toEqual(['T', 'hello']);
    expect(Number(found.extFields.indexLastUpdatePhyoffset)).toBe(put.physicalOffset);
    const none = await h.call(RequestCode.QUERY_MESSAGE, { topic: 'T', key: 'none', maxNum: '32', beginTimestamp: '0', endTimestamp: String(Date.now() + 60_000) });
    expect(none).toMatchObject({ code: ResponseCode.QUERY_NOT_FOUND, remark: 'can not find message, maybe time range not correct' });
    const viewed = await h.call(RequestCode.VIEW_MESSAGE_BY_ID, { offset: String(put.physicalOffset) });
    expect(viewed.code).toBe(ResponseCode.SUCCESS);
    expect(Buffer.from(viewed.body!).equals(Buffer.from(found.body!))).toBe(true);
    expect(await h.call(RequestCode.VIEW_MESSAGE_BY_ID, { offset: '999999' })).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'can not find message by the offset, 999999' });
  });

  it('locks queues for one client at a time and lets the lock expire', async () => {
    const h = await harness({ options: { lockMaxLiveMs: 300 } });
    const mq = (queueId: number) => ({ topic: 'T', brokerName: 'broker-t', queueId });
    const lock = async (clientId: string, queueIds: number[]) => {
      const body = formatLockBatchRequestBody({ consumerGroup: 'G', clientId, onlyThisBroker: false, mqSet: queueIds.map(mq) });
      const response = await h.call(RequestCode.LOCK_BATCH_MQ, {}, body);
      return parseLockBatchResponseBody(response.body).lockOKMQSet.map((q) => q.queueId).sort();
    };
    expect(await lock('c1', [0, 1])).toEqual([0, 1]);
    expect(await lock('c2', [1, 2])).toEqual([2]);
    const unlock = formatLockBatchRequestBody({ consumerGroup: 'G', clientId: 'c1', onlyThisBroker: false, mqSet: [mq(0)] });
    expect((await h.call(RequestCode.UNLOCK_BATCH_MQ, {}, unlock)).code).toBe(ResponseCode.SUCCESS);
    expect(await lock('c2', [0])).toEqual([0]);
    await sleep(400);
    expect(await lock('c2', [1])).toEqual([1]);
    expect(await h.ask<boolean>({ type: 'lockAllExpired', group: 'G' })).toBe(false);
    expect(await h.ask<boolean>({ type: 'lockAllExpired', group: 'other' })).toBe(true);
    expect((await h.call(RequestCode.LOCK_BATCH_MQ, {}, Buffer.from('{bad'))).code).toBe(ResponseCode.SYSTEM_ERROR);
  });

  it('creates topics with attributes, refuses system and invalid ones, and deletes them with their offsets', async () => {
    const h = await harness();
    const created = await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('FifoTopic', { attributes: '+message.type=FIFO', order: true }));
    expect(created.code).toBe(ResponseCode.SUCCESS);
    expect((await allTopics(h)).get('FifoTopic')).toMatchObject({ readQueueNums: 4, order: true, attributes: { 'message.type': 'FIFO' } });
    expect(await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('M', { attributes: '+message.type=MIXED' }))).toMatchObject({
      code: ResponseCode.INVALID_PARAMETER,
      remark: 'MIXED message type is not supported.',
    });
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('X', { attributes: '+no.such=1' }))).code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('TBW102'))).toMatchObject({
      code: ResponseCode.INVALID_PARAMETER,
      remark: 'The topic[TBW102] is conflict with system topic.',
    });
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('bad name'))).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: 'T' })).code).toBe(ResponseCode.SYSTEM_ERROR);

    // Widening the queues keeps the attribute; deleting forgets the topic and its offsets.
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('FifoTopic', { readQueueNums: 8, writeQueueNums: 8, order: true }))).code).toBe(ResponseCode.SUCCESS);
    expect((await allTopics(h)).get('FifoTopic')).toMatchObject({ readQueueNums: 8, attributes: { 'message.type': 'FIFO' } });
    await h.heartbeat(1, 'c1', [consumerData('G', ['FifoTopic'])]);
    await h.call(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: 'G', topic: 'FifoTopic', queueId: '0', commitOffset: '3' });
    expect((await h.call(RequestCode.DELETE_TOPIC_IN_BROKER, { topic: 'FifoTopic' })).code).toBe(ResponseCode.SUCCESS);
    expect((await allTopics(h)).has('FifoTopic')).toBe(false);
    expect(await h.ask<number>({ type: 'queryOffset', group: 'G', topic: 'FifoTopic', queueId: 0 })).toBe(-1);
    expect((await h.call(RequestCode.DELETE_TOPIC_IN_BROKER, { topic: 'SCHEDULE_TOPIC_XXXX' })).code).toBe(ResponseCode.INVALID_PARAMETER);
  });

  it('creates, lists and deletes subscription groups', async () => {
    const h = await harness();
    const body = Buffer.from(JSON.stringify({ groupName: 'G2', retryMaxTimes: 3, consumeBroadcastEnable: false, retryQueueNums: 2 }));
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)).code).toBe(ResponseCode.SUCCESS);
    const list = async () => parseSubscriptionGroupWrapper((await h.call(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).body).subscriptionGroupTable;
    expect((await list()).get('G2')).toMatchObject({ retryMaxTimes: 3, consumeBroadcastEnable: false, retryQueueNums: 2, consumeEnable: true });
    const one = await h.call(RequestCode.GET_SUBSCRIPTIONGROUP_CONFIG, { group: 'G2' });
    expect(one.code).toBe(ResponseCode.SUCCESS);
    expect(JSON.parse(Buffer.from(one.body!).toString())).toMatchObject({ groupName: 'G2', retryMaxTimes: 3, consumeMessageOrderly: false });
    const invalid = Buffer.from(JSON.stringify({ groupName: 'bad group' }));
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, invalid)).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect((await h.call(RequestCode.DELETE_SUBSCRIPTIONGROUP, { groupName: 'G2', cleanOffset: 'true' })).code).toBe(ResponseCode.SUCCESS);
    expect((await list()).has('G2')).toBe(false);
    expect((await h.call(RequestCode.DELETE_SUBSCRIPTIONGROUP, {})).code).toBe(ResponseCode.SYSTEM_ERROR);
  });

  it('auto-creates topics for senders from TBW102, and refuses when it may not', async () => {
    const h = await harness();
    const forSend = (topic: string, defaultTopic = 'TBW102', defaultTopicQueueNums = 4) =>
      h.ask<TopicForSendAnswer>({ type: 'topicForSend', topic, defaultTopic, defaultTopicQueueNums, from: '10.0.0.9:1' });
    const created = await forSend('NewTopic', 'TBW102', 16);
    expect(created).toMatchObject({ ok: true, topic: { topicName: 'NewTopic', readQueueNums: 8, writeQueueNums: 8, perm: RW } });
    expect((await allTopics(h)).get('NewTopic')).toBeDefined();
    expect(await forSend('NewTopic')).toMatchObject({ ok: true, topic: { writeQueueNums: 8 } });
    expect(await forSend('Other', 'NoSuchDefault')).toMatchObject({ ok: false, code: ResponseCode.TOPIC_NOT_EXIST });
    expect(await forSend('SCHEDULE_TOPIC_XXXX')).toMatchObject({ ok: false, code: ResponseCode.NO_PERMISSION });
    expect(await forSend('bad topic')).toMatchObject({ ok: false, code: ResponseCode.INVALID_PARAMETER });
    await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('ReadOnly', { perm: PermName.PERM_READ }));
    expect(await forSend('ReadOnly')).toMatchObject({ ok: false, code: ResponseCode.NO_PERMISSION, remark: 'the topic[ReadOnly] sending message is forbidden' });
  });

  it('refuses unknown topics when autoCreateTopicEnable is off, but still creates retry topics', async () => {
    const h = await harness({ settings: { autoCreateTopicEnable: false } });
    expect((await allTopics(h)).has('TBW102')).toBe(false);
    const refused = await h.ask<TopicForSendAnswer>({ type: 'topicForSend', topic: 'NewTopic', defaultTopic: 'TBW102', defaultTopicQueueNums: 4, from: 'x' });
    expect(refused).toMatchObject({ ok: false, code: ResponseCode.TOPIC_NOT_EXIST });
    expect(refused.ok === false && refused.remark.startsWith('topic[NewTopic] not exist, apply first please!')).toBe(true);
    const retry = await h.ask<TopicForSendAnswer>({ type: 'topicForSend', topic: '%RETRY%G', defaultTopic: 'TBW102', defaultTopicQueueNums: 4, from: 'x' });
    expect(retry).toMatchObject({ ok: true, topic: { topicName: '%RETRY%G', writeQueueNums: 1, perm: RW } });
  });

  it('creates the retry and DLQ topics of a group on groupForRetry, or refuses the group', async () => {
    const h = await harness();
    const answer = await h.ask<GroupForRetryAnswer>({ type: 'groupForRetry', group: 'G' });
    expect(answer).toMatchObject({
      ok: true,
      group: { groupName: 'G', retryQueueNums: 1, retryMaxTimes: 16 },
      retryTopic: { topicName: '%RETRY%G', readQueueNums: 1, writeQueueNums: 1, perm: RW },
      dlqTopic: { topicName: '%DLQ%G', readQueueNums: 1, writeQueueNums: 1, perm: RW },
    });
    const strict = await harness({ settings: { autoCreateSubscriptionGroup: false } });
    expect(await strict.ask<GroupForRetryAnswer>({ type: 'groupForRetry', group: 'G' })).toMatchObject({ ok: false, code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST });
    expect(await strict.ask<GroupForRetryAnswer>({ type: 'groupForRetry', group: 'CID_RMQ_SYS_X' })).toMatchObject({ ok: true });
  });

  it('answers pullMetadata with the group, the topic as it is and the registered subscription, creating no topic', async () => {
    const h = await harness();
    const unknown = await h.ask<PullMetadataAnswer>({ type: 'pullMetadata', group: 'G', topic: 'NoSuchTopic' });
    expect(unknown).toEqual({
      brokerPermission: RW,
      group: { ok: true, consumeEnable: true, consumeBroadcastEnable: true, groupSysFlag: 0, brokerId: 0, whichBrokerWhenConsumeSlowly: 1 },
      topic: undefined,
      consumer: undefined,
    });
    // Unlike groupForRetry, a pull creates neither the asked topic nor the group's retry and DLQ topics.
    const topics = await allTopics(h);
    for (const name of ['NoSuchTopic', '%RETRY%G', '%DLQ%G']) expect(topics.has(name)).toBe(false);
    await h.heartbeat(1, 'c1', [{ ...consumerData('G', ['T']), messageModel: 'BROADCASTING' }]);
    const online = await h.ask<PullMetadataAnswer>({ type: 'pullMetadata', group: 'G', topic: '%RETRY%G' });
    expect(online).toMatchObject({ topic: { perm: RW, readQueueNums: 1, topicSysFlag: 0 }, consumer: { messageModel: 'BROADCASTING', subscription: undefined } });
    const subscribed = await h.ask<PullMetadataAnswer>({ type: 'pullMetadata', group: 'G', topic: 'T' });
    expect(subscribed.consumer?.subscription).toMatchObject({ topic: 'T', subString: '*', expressionType: 'TAG' });
    const strict = await harness({ settings: { autoCreateSubscriptionGroup: false } });
    const refused = await strict.ask<PullMetadataAnswer>({ type: 'pullMetadata', group: 'G', topic: 'T' });
    expect(refused.group).toMatchObject({ ok: false, code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, remark: expect.stringMatching(/^subscription group \[G\] does not exist, /) });
  });

  it('keeps topics, groups and offsets across a restart on the same directory', async () => {
    const first = await AdminHarness.start();
    try {
      await first.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('Durable', { attributes: '+message.type=FIFO' }));
      await first.call(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, Buffer.from(JSON.stringify({ groupName: 'DurableGroup', retryMaxTimes: 5 })));
      await first.call(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: 'DurableGroup', topic: 'Durable', queueId: '2', commitOffset: '42' });
    } finally {
      await first.stop(false);
    }
    const second = await harness({ dir: first.dir });
    expect((await allTopics(second)).get('Durable')).toMatchObject({ attributes: { 'message.type': 'FIFO' } });
    const groups = parseSubscriptionGroupWrapper((await second.call(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).body).subscriptionGroupTable;
    expect(groups.get('DurableGroup')).toMatchObject({ retryMaxTimes: 5 });
    const offset = await second.call(RequestCode.QUERY_CONSUMER_OFFSET, { consumerGroup: 'DurableGroup', topic: 'Durable', queueId: '2' });
    expect(offset).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { offset: '42' } });
    // The offset index came back too: consume stats of the group find the topic without a topic given.
    const stats = parseConsumeStats((await second.call(RequestCode.GET_CONSUME_STATS, { consumerGroup: 'DurableGroup' })).body);
    expect(stats.offsetTable.find(([mq]) => mq.queueId === 2)?.[1].consumerOffset).toBe(42);
  });

  it('registers with a real NameServer, at once on a new topic, and unregisters when it stops', async () => {
    const system = await startTestSystem({ ...ADMIN_TEST_POOLS });
    systems.push(system);
    const nameServer = await spawnNameServer(system, { pool: 'main' });
    const routes: RemotingRoutes = { byCode: {}, fallback: [nameServer], closeListeners: [nameServer] };
    const acceptor = await system.spawn<RemotingAcceptorMessage, RemotingAcceptorArgs>({
      name: 'namesrv-acceptor',
      behavior: { module: new URL('../../src/actors/remoting-acceptor.ts', import.meta.url).href, export: 'remotingAcceptor' },
      args: { server: 'namesrv', host: '127.0.0.1', port: 0, frameMaxBytes: 16 * 1024 * 1024, connectionsMax: 16, routes },
      pool: 'main',
    });
    const bound = await system.ask<RemotingAcceptorMessage, BoundAnswer>(acceptor, { type: 'port' });
    if (!('port' in bound)) throw new Error(bound.error);
    const namesrvAddr = `127.0.0.1:${bound.port}`;
    const h = await AdminHarness.start({ settings: { namesrvAddrs: [namesrvAddr] } }, system);
    const client = await RemotingClient.connect(namesrvAddr);
    clients.push(client);
    const route = (topic: string) => client.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic }), 2_000);
    const routeOf = (topic: string) =>
      pollUntil(`route of ${topic}`, async () => {
        const answer = await route(topic);
        return answer.code === ResponseCode.SUCCESS ? decodeJsonBody<TopicRouteData>(answer.body, 'route') : undefined;
      });

    const tbw = await routeOf('TBW102');
    expect(tbw.brokerDatas[0]).toMatchObject({ cluster: 'TestCluster', brokerName: 'broker-t', brokerAddrs: { 0: '127.0.0.1:10911' } });
    expect(tbw.queueDatas[0]).toMatchObject({ brokerName: 'broker-t', readQueueNums: 8, perm: PermName.PERM_INHERIT | RW });
    // The period is a minute: only the prompt registration after a change can bring this topic.
    await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('Fresh', { readQueueNums: 3, writeQueueNums: 3 }));
    expect((await routeOf('Fresh')).queueDatas[0]).toMatchObject({ readQueueNums: 3, writeQueueNums: 3 });
    // The route shows once the NameServer has it; broker-admin counts the outcome when the answer is back.
    await pollUntil('two registrations counted', async () => ((await h.stats()).registrationsOk >= 2 ? true : undefined));
    // A read-only broker registers its topics read-only (the topics' own perms stay as they are).
    expect((await h.call(RequestCode.UPDATE_BROKER_CONFIG, {}, Buffer.from('brokerPermission=4'))).code).toBe(ResponseCode.SUCCESS);
    await pollUntil('read-only route', async () => ((await routeOf('Fresh')).queueDatas[0]?.perm === PermName.PERM_READ ? true : undefined));
    expect((await allTopics(h)).get('Fresh')?.perm).toBe(RW);

    await system.stop(h.admin);
    await pollUntil('broker unregistered', async () => ((await route('Fresh')).code === ResponseCode.TOPIC_NOT_EXIST ? true : undefined));
    await system.shutdown();
    systems.splice(0);
    fs.rmSync(h.dir, { recursive: true, force: true });
  });

  it('keeps running when no NameServer answers, and counts the failures', async () => {
    const h = await harness({ settings: { namesrvAddrs: ['127.0.0.1:1'] }, options: { namesrvConnectTimeoutMs: 500 } });
    const stats = await pollUntil('failed registration', async () => {
      const current = await h.stats();
      return current.registrationsFailed > 0 ? current : undefined;
    });
    expect(stats.registrationsOk).toBe(0);
    expect((await h.call(RequestCode.GET_ALL_TOPIC_CONFIG)).code).toBe(ResponseCode.SUCCESS);
  });

  it('resets a group\'s offsets to a time and pushes them to its clients', async () => {
    const h = await harness();
    await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, createTopicHeader('T', { readQueueNums: 1, writeQueueNums: 1 }));
    const puts = [];
    for (const body of ['a', 'b', 'c']) {
      puts.push(await h.put('T', 0, body));
      await sleep(5);
    }
    const reset = (timestamp: number) => h.call(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, { group: 'G', topic: 'T', timestamp: String(timestamp), isForce: 'true' });
    expect((await reset(0)).code).toBe(ResponseCode.SYSTEM_ERROR);
    await h.heartbeat(1, 'c1', [consumerData('G', ['T'])]);
    await h.call(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: 'G', topic: 'T', queueId: '0', commitOffset: '3' });
    const answer = await reset(puts[1]!.storeTimestampMs);
    expect(answer.code).toBe(ResponseCode.SUCCESS);
    expect(parseResetOffsetBody(answer.body).offsetTable.map(([mq, offset]) => [mq.queueId, offset])).toEqual([[0, 1]]);
    const pushed = await h.pushes(1, RequestCode.RESET_CONSUMER_CLIENT_OFFSET);
    expect(pushed).toHaveLength(1);
    expect(pushed[0]?.extFields).toMatchObject({ group: 'G', topic: 'T' });
    expect(parseResetOffsetBody(pushed[0]?.body).offsetTable.map(([, offset]) => offset)).toEqual([1]);
    h.system.tell<BrokerAdminInbox>(h.admin, { type: 'channelClosed', channel: h.channel(1) });
    expect((await reset(puts[1]!.storeTimestampMs)).code).toBe(ResponseCode.CONSUMER_NOT_ONLINE);
  });

  it('reports and updates its config, and reports runtime info', async () => {
    const h = await harness();
    const config = async () => new Map(text((await h.call(RequestCode.GET_BROKER_CONFIG)).body).trim().split('\n').map((line) => line.split('=', 2) as [string, string]));
    const before = await config();
    expect(before.get('brokerName')).toBe('broker-t');
    expect(before.get('messageDelayLevel')).toBe('1s 5s 10s');
    expect(before.get('autoCreateTopicEnable')).toBe('true');
    const update = (body: string) => h.call(RequestCode.UPDATE_BROKER_CONFIG, {}, Buffer.from(body));
    expect((await update('autoCreateTopicEnable=false\n')).code).toBe(ResponseCode.SUCCESS);
    expect((await config()).get('autoCreateTopicEnable')).toBe('false');
    expect(await h.ask<TopicForSendAnswer>({ type: 'topicForSend', topic: 'Late', defaultTopic: 'TBW102', defaultTopicQueueNums: 4, from: 'x' })).toMatchObject({ ok: false });
    const refused = await update('maxMessageSize=10\nautoCreateTopicEnable=true\n');
    expect(refused.code).toBe(ResponseCode.INVALID_PARAMETER);
    expect(refused.remark).toContain('maxMessageSize');
    expect((await config()).get('autoCreateTopicEnable')).toBe('false');
    expect((await update('brokerConfigPath=/tmp/x')).code).toBe(ResponseCode.NO_PERMISSION);
    expect((await update('brokerPermission=99')).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect((await update('defaultTopicQueueNums=4')).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect((await update('brokerPermission=4')).code).toBe(ResponseCode.SUCCESS);
    expect((await config()).get('brokerPermission')).toBe('4');

    await h.put('T', 0, 'x');
    const info = parseKVTable((await h.call(RequestCode.GET_BROKER_RUNTIME_INFO)).body).table;
    expect(info.get('brokerVersionDesc')).toBe('V5_3_3');
    expect(info.get('msgPutTotalTodayNow')).toBe('1');
    expect(Number(info.get('commitLogMaxOffset'))).toBeGreaterThan(0);
    expect(info.get('putTps')?.split(' ')).toHaveLength(3);
  });

  it('checks SQL92 subscriptions on CHECK_CLIENT_CONFIG as ClientManageProcessor does', async () => {
    const check = (h: AdminHarness, expressionType: string, subString: string) =>
      h.call(RequestCode.CHECK_CLIENT_CONFIG, {}, Buffer.from(JSON.stringify({ clientId: 'c1', group: 'G', subscriptionData: { topic: 'T', subString, expressionType } })));
    const off = await harness();
    expect((await check(off, 'TAG', 'a || b')).code).toBe(ResponseCode.SUCCESS);
    expect(await check(off, 'SQL92', 'a > 1')).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'The broker does not support consumer to filter message by SQL92' });
    const on = await harness({ settings: { enablePropertyFilter: true } });
    expect((await check(on, 'SQL92', 'a > 1')).code).toBe(ResponseCode.SUCCESS);
    expect((await check(on, 'SQL92', 'a >')).code).toBe(ResponseCode.SUBSCRIPTION_PARSE_FAILED);
  });

  it('answers unknown codes NOT_SUPPORTED and malformed requests SYSTEM_ERROR, and never answers oneway requests', async () => {
    const h = await harness();
    expect(await h.call(RequestCode.END_TRANSACTION)).toMatchObject({ code: ResponseCode.REQUEST_CODE_NOT_SUPPORTED, remark: ' request type 37 not supported' });
    expect((await h.call(RequestCode.GET_MAX_OFFSET, { topic: 'T' })).code).toBe(ResponseCode.SYSTEM_ERROR);
    expect((await h.call(RequestCode.HEART_BEAT, {}, Buffer.from('not json'))).code).toBe(ResponseCode.SYSTEM_ERROR);
    const opaque = h.send(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: 'G', topic: 'T', queueId: '0', commitOffset: '1' }, undefined, { oneway: true });
    const stats = await h.stats();
    expect(stats.badRequests).toBe(2);
    expect((await h.recorded()).some((m) => m.type === 'respond' && m.response.opaque === opaque)).toBe(false);
  });
});

describe('broker-admin name rules', () => {
  it('validates topic and group names as TopicValidator does', () => {
    expect(topicNameProblem('Good_topic-1|%')).toBeUndefined();
    expect(topicNameProblem(' ')).toBe('The specified topic is blank.');
    expect(topicNameProblem('a.b')).toContain('contains illegal characters');
    expect(topicNameProblem('x'.repeat(128))).toContain('longer than topic max length: 127');
    expect(topicNameProblem(`%RETRY%${'x'.repeat(200)}`)).toBeUndefined();
    expect(groupNameProblem('g'.repeat(121))).toContain('longer than group max length: 120');
  });

  it('parses attribute requests as AttributeParser does', () => {
    expect(parseAttributeRequest('+message.type=FIFO,-reserve.time')).toEqual({ '+message.type': 'FIFO', '-reserve.time': '' });
    expect(parseAttributeRequest('{"+message.type":"NORMAL"}')).toEqual({ '+message.type': 'NORMAL' });
    expect(parseAttributeRequest(undefined)).toEqual({});
    expect(() => parseAttributeRequest('message.type=FIFO')).toThrow('add/alter attribute format is wrong');
    expect(() => parseAttributeRequest('+a=1,+a=2')).toThrow('key duplication');
  });
});
