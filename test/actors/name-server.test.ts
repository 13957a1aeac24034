import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnNameServer, type NameServerMessage, type NameServerRef, type NameServerStats, type SpawnNameServerOptions } from '../../src/actors/name-server.ts';
import type { BoundAnswer, RemotingAcceptorArgs, RemotingAcceptorMessage } from '../../src/actors/remoting-acceptor.ts';
import type { AcceptorChannelMessage, RemotingChannel, RemotingRoutes } from '../../src/actors/remoting-routes.ts';
import { encodeCommand, FrameDecoder } from '../../src/net/remoting/codec.ts';
import {
  bodyCrc32,
  decodeJsonBody,
  encodeCompressedRegisterBrokerBody,
  encodeHeader,
  encodeRegisterBrokerBody,
  MQVersionOrdinal,
  NamesrvHeaders,
  PermName,
  type ClusterInfo,
  type HeaderOf,
  type KVTable,
  type RegisteredTopicConfig,
  type TopicList,
  type TopicRouteData,
} from '../../src/net/remoting/namesrv-protocol.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';
import { nameServerDiskFullSource } from './fixtures/name-server-seams.ts';

const T0 = 1_700_000_000_000;
const RW = PermName.PERM_READ | PermName.PERM_WRITE;

function topicConfig(topicName: string, overrides: Partial<RegisteredTopicConfig> = {}): RegisteredTopicConfig {
  return { topicName, readQueueNums: 4, writeQueueNums: 4, perm: RW, topicSysFlag: 0, ...overrides };
}

const TOPICS = [topicConfig('TBW102', { readQueueNums: 8, writeQueueNums: 8, perm: RW | PermName.PERM_INHERIT }), topicConfig('TopicA', { topicSysFlag: 1 })];

type RegisterHeader = HeaderOf<typeof NamesrvHeaders.registerBroker>;

function registerHeader(overrides: Partial<RegisterHeader> = {}): Record<string, string> {
  return encodeHeader(NamesrvHeaders.registerBroker, {
    brokerName: 'broker-a',
    brokerAddr: '10.0.0.1:10911',
    clusterName: 'DefaultCluster',
    haServerAddr: '10.0.0.1:10912',
    brokerId: 0,
    enableActingMaster: false,
    compressed: false,
    bodyCrc32: 0,
    ...overrides,
  });
}

const registerBody = (topicConfigs = TOPICS, counter = 1): Uint8Array =>
  encodeRegisterBrokerBody({ topicConfigs, dataVersion: { timestamp: T0, counter, stateVersion: 0 }, filterServerList: [] });

const text = (body: Uint8Array | undefined): string => Buffer.from(body ?? new Uint8Array()).toString('utf8');

/** Opaques are unique across harnesses, which may share a recorder. */
let nextOpaque = 1;

/** A NameServer with a recorder standing in for the acceptor; requests go in as an acceptor sends them. */
class Harness {
  readonly system: ActorSystem;
  readonly nameServer: NameServerRef;
  readonly recorder: ActorRef<AcceptorRecorderMessage>;

  constructor(system: ActorSystem, nameServer: NameServerRef, recorder: ActorRef<AcceptorRecorderMessage>) {
    this.system = system;
    this.nameServer = nameServer;
    this.recorder = recorder;
  }

  static async start(system: ActorSystem, options: SpawnNameServerOptions = {}): Promise<Harness> {
    const recorder = await system.spawn<AcceptorRecorderMessage, null>({ name: 'acceptor-recorder', behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const nameServer = await spawnNameServer(system, { pool: 'main', ...options });
    return new Harness(system, nameServer, recorder);
  }

  channel(connectionId = 1): RemotingChannel {
    return {
      acceptor: this.recorder as ActorRef<AcceptorChannelMessage>,
      connectionId,
      remoteAddress: `10.0.0.1:${50_000 + connectionId}`,
      localAddress: '127.0.0.1:9876',
    };
  }

  /** Everything the NameServer told the acceptor so far. */
  recorded(): Promise<AcceptorChannelMessage[]> {
    return this.system.ask<AcceptorRecorderMessage, AcceptorChannelMessage[]>(this.recorder, { type: 'dump' });
  }

  /** Sends a request without waiting for its answer; returns its opaque. */
  send(code: number, extFields: Record<string, string> = {}, body?: Uint8Array, options: { connectionId?: number; version?: number; oneway?: boolean } = {}): number {
    const opaque = nextOpaque++;
    const request = createRequest({ code, opaque, extFields, oneway: options.oneway ?? false, version: options.version ?? MQVersionOrdinal.V5_3_3, ...(body === undefined ? {} : { body }) });
    expect(this.system.tell<NameServerMessage>(this.nameServer, { type: 'remotingRequest', request, channel: this.channel(options.connectionId) })).toBe(true);
    return opaque;
  }

  /** Sends a request and waits for the NameServer's answer to it. */
  async call(code: number, extFields: Record<string, string> = {}, body?: Uint8Array, options: { connectionId?: number; version?: number } = {}): Promise<RemotingCommand> {
    const opaque = this.send(code, extFields, body, options);
    return pollUntil(`answer to request ${opaque}`, async () => {
      for (const message of await this.recorded()) if (message.type === 'respond' && message.response.opaque === opaque) return message.response;
      return undefined;
    });
  }

  /** Waits until the NameServer has handled everything sent to it so far, and returns its stats. */
  stats(): Promise<NameServerStats> {
    return this.system.ask<NameServerMessage, NameServerStats>(this.nameServer, { type: 'stats' });
  }

  register(overrides: Partial<RegisterHeader> = {}, body: Uint8Array = registerBody(), connectionId = 1): Promise<RemotingCommand> {
    return this.call(RequestCode.REGISTER_BROKER, registerHeader(overrides), body, { connectionId });
  }

  route(topic: string): Promise<RemotingCommand> {
    return this.call(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic });
  }
}

describe('NameServer actor', () => {
  let system: ActorSystem | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function harness(options: SpawnNameServerOptions = {}, clock = new ManualClock(T0)): Promise<Harness> {
    system = await startTestSystem({}, { clock });
    return Harness.start(system, options);
  }

  it('registers a broker and serves TBW102 and its topics as TopicRouteData JSON', async () => {
    const h = await harness();
    const registered = await h.register();
    expect(registered).toMatchObject({ code: ResponseCode.SUCCESS, extFields: {} });
    expect(registered.body).toBeUndefined();
    const route = await h.route('TBW102');
    expect(route.code).toBe(ResponseCode.SUCCESS);
    expect(decodeJsonBody<TopicRouteData>(route.body, 'route')).toEqual({
      queueDatas: [{ brokerName: 'broker-a', readQueueNums: 8, writeQueueNums: 8, perm: RW | PermName.PERM_INHERIT, topicSysFlag: 0 }],
      brokerDatas: [{ cluster: 'DefaultCluster', brokerName: 'broker-a', brokerAddrs: { '0': '10.0.0.1:10911' }, enableActingMaster: false }],
      filterServerTable: {},
    });
    // brokerAddrs keys are quoted, which fastjson reads back as Long keys.
    expect(text(route.body)).toContain('"brokerAddrs":{"0":"10.0.0.1:10911"}');
  });

  it('answers TOPIC_NOT_EXIST for an unknown topic', async () => {
    const h = await harness();
    const route = await h.route('NoSuchTopic');
    expect(route.code).toBe(ResponseCode.TOPIC_NOT_EXIST);
    expect(route.remark).toBe('No topic route info in name server for the topic: NoSuchTopic');
    expect(route.body).toBeUndefined();
  });

  it('tells a slave its master and HA addresses', async () => {
    const h = await harness();
    await h.register();
    const slave = await h.register({ brokerId: 1, brokerAddr: '10.0.0.2:10911', haServerAddr: '10.0.0.2:10912' }, registerBody(), 2);
    expect(slave.code).toBe(ResponseCode.SUCCESS);
    expect(slave.extFields).toEqual({ haServerAddr: '10.0.0.1:10912', masterAddr: '10.0.0.1:10911' });
    const route = decodeJsonBody<TopicRouteData>((await h.route('TopicA')).body, 'route');
    expect(route.brokerDatas[0]?.brokerAddrs).toEqual({ '0': '10.0.0.1:10911', '1': '10.0.0.2:10911' });
  });

  it('serves cluster info, topic lists and deletes topics across two clusters', async () => {
    const h = await harness();
    await h.register();
    await h.register({ clusterName: 'OtherCluster', brokerName: 'broker-b', brokerAddr: '10.0.1.1:10911' }, registerBody([topicConfig('TBW102'), topicConfig('TopicB')]), 2);
    const info = decodeJsonBody<ClusterInfo>((await h.call(RequestCode.GET_BROKER_CLUSTER_INFO)).body, 'cluster info');
    expect(info.clusterAddrTable).toEqual({ DefaultCluster: ['broker-a'], OtherCluster: ['broker-b'] });
    expect(info.brokerAddrTable['broker-b']).toEqual({ cluster: 'OtherCluster', brokerName: 'broker-b', brokerAddrs: { '0': '10.0.1.1:10911' }, enableActingMaster: false });
    const all = decodeJsonBody<TopicList>((await h.call(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).body, 'topics');
    expect([...all.topicList].sort()).toEqual(['TBW102', 'TopicA', 'TopicB']);
    const other = decodeJsonBody<TopicList>((await h.call(RequestCode.GET_TOPICS_BY_CLUSTER, { cluster: 'OtherCluster' })).body, 'topics');
    expect([...other.topicList].sort()).toEqual(['TBW102', 'TopicB']);
    const unit = decodeJsonBody<TopicList>((await h.call(RequestCode.GET_UNIT_TOPIC_LIST)).body, 'topics');
    expect(unit.topicList).toEqual(['TopicA']);
    expect((await h.call(RequestCode.DELETE_TOPIC_IN_NAMESRV, { topic: 'TBW102', clusterName: 'OtherCluster' })).code).toBe(ResponseCode.SUCCESS);
    const tbw = decodeJsonBody<TopicRouteData>((await h.route('TBW102')).body, 'route');
    expect(tbw.brokerDatas.map((data) => data.brokerName)).toEqual(['broker-a']);
    expect((await h.call(RequestCode.DELETE_TOPIC_IN_NAMESRV, { topic: 'TopicB' })).code).toBe(ResponseCode.SUCCESS);
    expect((await h.route('TopicB')).code).toBe(ResponseCode.TOPIC_NOT_EXIST);
  });

  it('answers SYSTEM_ERROR "disable" for topic lists switched off', async () => {
    const h = await harness({ enableAllTopicList: false, enableTopicList: false });
    expect(await h.call(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'disable' });
    expect(await h.call(RequestCode.GET_TOPICS_BY_CLUSTER, { cluster: 'x' })).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'disable' });
  });

  it('expires a silent broker on the first scan more than 120 s after it was heard, and closes its connection', async () => {
    const clock = new ManualClock(T0);
    const h = await harness({}, clock);
    await h.register({}, registerBody(), 7);
    clock.advance(60_000);
    expect((await h.call(RequestCode.BROKER_HEARTBEAT, { clusterName: 'x', brokerAddr: 'nobody:1', brokerName: 'x' })).code).toBe(ResponseCode.SUCCESS);
    clock.advance(60_000);
    await h.stats();
    expect((await h.route('TopicA')).code).toBe(ResponseCode.SUCCESS);
    clock.advance(5_000);
    expect(await h.stats()).toMatchObject({ brokers: 0, topics: 0, brokersExpired: 1 });
    expect((await h.route('TopicA')).code).toBe(ResponseCode.TOPIC_NOT_EXIST);
    const closes = (await h.recorded()).filter((message) => message.type === 'closeConnection');
    expect(closes).toEqual([{ type: 'closeConnection', connectionId: 7 }]);
  });

  it('keeps a broker alive on oneway BROKER_HEARTBEAT, which gets no answer', async () => {
    const clock = new ManualClock(T0);
    const h = await harness({}, clock);
    await h.register();
    const before = (await h.recorded()).length;
    clock.advance(100_000);
    h.send(RequestCode.BROKER_HEARTBEAT, { clusterName: 'DefaultCluster', brokerAddr: '10.0.0.1:10911', brokerName: 'broker-a' }, undefined, { oneway: true });
    await h.stats();
    expect((await h.recorded()).length).toBe(before);
    clock.advance(100_000);
    expect(await h.stats()).toMatchObject({ brokers: 1, brokersExpired: 0 });
    clock.advance(25_000);
    expect(await h.stats()).toMatchObject({ brokers: 0, brokersExpired: 1 });
  });

  it('unregisters a broker whose connection closed, but not one that moved to a new connection', async () => {
    const h = await harness();
    await h.register({}, registerBody(), 1);
    await h.register({ clusterName: 'C2', brokerName: 'broker-b', brokerAddr: '10.0.1.1:10911' }, registerBody(), 2);
    await h.register({ clusterName: 'C2', brokerName: 'broker-b', brokerAddr: '10.0.1.1:10911' }, registerBody(), 3);
    h.system.tell<NameServerMessage>(h.nameServer, { type: 'channelClosed', channel: h.channel(1) });
    h.system.tell<NameServerMessage>(h.nameServer, { type: 'channelClosed', channel: h.channel(2) });
    expect(await h.stats()).toMatchObject({ brokers: 1, brokerGroups: 1, brokersDisconnected: 1 });
    const route = decodeJsonBody<TopicRouteData>((await h.route('TopicA')).body, 'route');
    expect(route.brokerDatas.map((data) => data.brokerName)).toEqual(['broker-b']);
  });

  it('unregisters on UNREGISTER_BROKER', async () => {
    const h = await harness();
    await h.register();
    const answer = await h.call(RequestCode.UNREGISTER_BROKER, { brokerName: 'broker-a', brokerAddr: '10.0.0.1:10911', clusterName: 'DefaultCluster', brokerId: '0' });
    expect(answer.code).toBe(ResponseCode.SUCCESS);
    expect(await h.stats()).toMatchObject({ brokers: 0, brokerGroups: 0, clusters: 0, topics: 0 });
  });

  it('answers a malformed body with SYSTEM_ERROR and keeps serving', async () => {
    const h = await harness();
    const bad = await h.register({}, Buffer.from('{"topicConfigSerializeWrapper": {"topicConfigTable": {', 'utf8'));
    expect(bad.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(bad.remark).toMatch(/^Failed to decode RegisterBrokerBody: /);
    const wrongType = await h.register({}, Buffer.from('{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":"many"}}}}'));
    expect(wrongType).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'topicConfigTable["T"].readQueueNums is not an int: "many"' });
    const notObject = await h.register({}, Buffer.from('[1,2,3]'));
    expect(notObject).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'RegisterBrokerBody is not a JSON object' });
    expect((await h.call(RequestCode.REGISTER_TOPIC_IN_NAMESRV, { topic: 'T' }, Buffer.from('nope'))).code).toBe(ResponseCode.SYSTEM_ERROR);
    expect((await h.call(RequestCode.GET_BROKER_CLUSTER_INFO)).code).toBe(ResponseCode.SUCCESS);
    expect((await h.register()).code).toBe(ResponseCode.SUCCESS);
    expect(await h.stats()).toMatchObject({ brokers: 1, badRequests: 4 });
  });

  it('answers a missing or unparsable required header with SYSTEM_ERROR naming the field', async () => {
    const h = await harness();
    const headers = registerHeader();
    delete headers['brokerId'];
    expect(await h.call(RequestCode.REGISTER_BROKER, headers, registerBody())).toMatchObject({
      code: ResponseCode.SYSTEM_ERROR,
      remark: 'the custom field <brokerId> is null',
    });
    expect(await h.call(RequestCode.REGISTER_BROKER, { ...headers, brokerId: 'zero' }, registerBody())).toMatchObject({
      code: ResponseCode.SYSTEM_ERROR,
      remark: 'the custom field <brokerId> is not a valid long: "zero"',
    });
    expect(await h.call(RequestCode.GET_ROUTEINFO_BY_TOPIC, {})).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'the custom field <topic> is null' });
    // An optional number that does not parse is ignored, as RocketMQ ignores it.
    const lenient = await h.call(RequestCode.REGISTER_BROKER, { ...registerHeader(), heartbeatTimeoutMillis: 'soon' }, registerBody());
    expect(lenient.code).toBe(ResponseCode.SUCCESS);
  });

  it('checks bodyCrc32 when the broker sends one', async () => {
    const h = await harness();
    const body = registerBody();
    expect(await h.register({ bodyCrc32: bodyCrc32(body) ^ 1 }, body)).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'crc32 not match' });
    expect((await h.register({ bodyCrc32: bodyCrc32(body) }, body)).code).toBe(ResponseCode.SUCCESS);
  });

  it('reads the compressed RegisterBrokerBody format', async () => {
    const h = await harness();
    const body = encodeCompressedRegisterBrokerBody({ topicConfigs: TOPICS, dataVersion: { timestamp: T0, counter: 1, stateVersion: 0 }, filterServerList: ['10.0.0.1:30000'] });
    expect((await h.register({ compressed: true, bodyCrc32: bodyCrc32(body) }, body)).code).toBe(ResponseCode.SUCCESS);
    const route = decodeJsonBody<TopicRouteData>((await h.route('TopicA')).body, 'route');
    // The compressed text form does not carry topicSysFlag.
    expect(route.queueDatas).toEqual([{ brokerName: 'broker-a', readQueueNums: 4, writeQueueNums: 4, perm: RW, topicSysFlag: 0 }]);
    expect(route.filterServerTable).toEqual({ '10.0.0.1:10911': ['10.0.0.1:30000'] });
    const garbage = await h.register({ compressed: true }, Buffer.from('not zlib'));
    expect(garbage.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(garbage.remark).toMatch(/^Failed to decode RegisterBrokerBody: /);
  });

  it("reads fastjson's unquoted numeric map keys in a Java broker's body", async () => {
    const h = await harness();
    const javaBody =
      '{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},' +
      '"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":1700000000000},' +
      '"topicConfigTable":{"TBW102":{"attributes":{},"order":false,"perm":7,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TBW102","topicSysFlag":0,"writeQueueNums":8},' +
      '"TopicA":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicA","topicSysFlag":0,"writeQueueNums":4}},' +
      '"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{"S":{"bname":"broker-a","currIdMap":{0:0,1:1},"epoch":0,"topic":"S","totalQueues":2}}}}';
    expect((await h.register({}, Buffer.from(javaBody, 'utf8'))).code).toBe(ResponseCode.SUCCESS);
    expect((await h.route('TopicA')).code).toBe(ResponseCode.SUCCESS);
  });

  it('stores KV config, answers QUERY_NOT_FOUND for what is absent, and returns order topic config to brokers', async () => {
    const h = await harness();
    const ns = 'ORDER_TOPIC_CONFIG';
    expect(await h.call(RequestCode.GET_KV_CONFIG, { namespace: ns, key: 'TopicA' })).toMatchObject({
      code: ResponseCode.QUERY_NOT_FOUND,
      remark: 'No config item, Namespace: ORDER_TOPIC_CONFIG Key: TopicA',
    });
    expect(await h.call(RequestCode.GET_KVLIST_BY_NAMESPACE, { namespace: ns })).toMatchObject({
      code: ResponseCode.QUERY_NOT_FOUND,
      remark: 'No config item, Namespace: ORDER_TOPIC_CONFIG',
    });
    expect(await h.call(RequestCode.PUT_KV_CONFIG, { namespace: ns })).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'the custom field <key> is null' });
    expect((await h.call(RequestCode.PUT_KV_CONFIG, { namespace: ns, key: 'TopicA', value: 'broker-a:4' })).code).toBe(ResponseCode.SUCCESS);
    expect(await h.call(RequestCode.GET_KV_CONFIG, { namespace: ns, key: 'TopicA' })).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { value: 'broker-a:4' } });
    const list = await h.call(RequestCode.GET_KVLIST_BY_NAMESPACE, { namespace: ns });
    expect(decodeJsonBody<KVTable>(list.body, 'kv')).toEqual({ table: { TopicA: 'broker-a:4' } });
    const registered = await h.register();
    expect(decodeJsonBody<KVTable>(registered.body, 'kv')).toEqual({ table: { TopicA: 'broker-a:4' } });
    expect((await h.call(RequestCode.DELETE_KV_CONFIG, { namespace: ns, key: 'TopicA' })).code).toBe(ResponseCode.SUCCESS);
    expect((await h.call(RequestCode.GET_KV_CONFIG, { namespace: ns, key: 'TopicA' })).code).toBe(ResponseCode.QUERY_NOT_FOUND);
  });

  it('puts the order topic config in routes when orderMessageEnable is on', async () => {
    const h = await harness({ orderMessageEnable: true });
    await h.register();
    await h.call(RequestCode.PUT_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicA', value: 'broker-a:4' });
    expect(decodeJsonBody<TopicRouteData>((await h.route('TopicA')).body, 'route').orderTopicConf).toBe('broker-a:4');
    expect(decodeJsonBody<TopicRouteData>((await h.route('TBW102')).body, 'route').orderTopicConf).toBeUndefined();
  });

  it('refuses KV entries past kvEntriesMax and brokers past brokersMax', async () => {
    const h = await harness({ kvEntriesMax: 1, brokersMax: 1 });
    expect((await h.call(RequestCode.PUT_KV_CONFIG, { namespace: 'n', key: 'a', value: '1' })).code).toBe(ResponseCode.SUCCESS);
    expect(await h.call(RequestCode.PUT_KV_CONFIG, { namespace: 'n', key: 'b', value: '1' })).toMatchObject({ code: ResponseCode.SYSTEM_ERROR });
    expect((await h.register()).code).toBe(ResponseCode.SUCCESS);
    const refused = await h.register({ brokerName: 'broker-b', brokerAddr: '10.0.1.1:10911' });
    expect(refused.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(refused.remark).toMatch(/^register broker refused: .*brokersMax/);
  });

  it('answers the other DefaultRequestProcessor codes', async () => {
    const h = await harness();
    await h.register();
    const member = await h.call(RequestCode.GET_BROKER_MEMBER_GROUP, { clusterName: 'DefaultCluster', brokerName: 'broker-a' });
    expect(decodeJsonBody(member.body, 'member group')).toEqual({ brokerMemberGroup: { cluster: 'DefaultCluster', brokerName: 'broker-a', brokerAddrs: { '0': '10.0.0.1:10911' } } });
    expect(await h.call(RequestCode.WIPE_WRITE_PERM_OF_BROKER, { brokerName: 'broker-a' })).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { wipeTopicCount: '2' } });
    expect(decodeJsonBody<TopicRouteData>((await h.route('TopicA')).body, 'route').queueDatas[0]?.perm).toBe(PermName.PERM_READ);
    expect(await h.call(RequestCode.ADD_WRITE_PERM_OF_BROKER, { brokerName: 'broker-a' })).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { addTopicCount: '2' } });
    const version = { brokerName: 'broker-a', brokerAddr: '10.0.0.1:10911', clusterName: 'DefaultCluster', brokerId: '0' };
    const same = await h.call(RequestCode.QUERY_DATA_VERSION, version, Buffer.from(JSON.stringify({ timestamp: T0, counter: 1, stateVersion: 0 })));
    expect(same.extFields).toEqual({ changed: 'false' });
    expect(JSON.parse(text(same.body))).toEqual({ timestamp: T0, counter: 1, stateVersion: 0 });
    const newer = await h.call(RequestCode.QUERY_DATA_VERSION, version, Buffer.from(JSON.stringify({ timestamp: T0, counter: 2, stateVersion: 0 })));
    expect(newer.extFields).toEqual({ changed: 'true' });
    const queue = { brokerName: 'broker-a', readQueueNums: 2, writeQueueNums: 2, perm: RW, topicSysFlag: 0 };
    expect((await h.call(RequestCode.REGISTER_TOPIC_IN_NAMESRV, { topic: 'Registered' }, Buffer.from(JSON.stringify({ queueDatas: [queue] })))).code).toBe(ResponseCode.SUCCESS);
    expect(decodeJsonBody<TopicRouteData>((await h.route('Registered')).body, 'route').queueDatas).toEqual([queue]);
    const system = decodeJsonBody<TopicList>((await h.call(RequestCode.GET_SYSTEM_TOPIC_LIST_FROM_NS)).body, 'topics');
    expect(system).toEqual({ topicList: ['DefaultCluster', 'broker-a'], brokerAddr: '10.0.0.1:10911' });
  });

  it('answers REQUEST_CODE_NOT_SUPPORTED for codes it does not serve', async () => {
    const h = await harness();
    const answer = await h.call(RequestCode.SEND_MESSAGE);
    expect(answer).toMatchObject({ code: ResponseCode.REQUEST_CODE_NOT_SUPPORTED, remark: ` request type ${RequestCode.SEND_MESSAGE} not supported` });
  });

  it('persists KV config to kvConfigPath and reads it back after a restart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'namesrv-'));
    dirs.push(dir);
    const kvConfigPath = path.join(dir, 'namesrv', 'kvConfig.json');
    const h = await harness({ kvConfigPath });
    await h.call(RequestCode.PUT_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicA', value: 'broker-a:4' });
    await h.call(RequestCode.PUT_KV_CONFIG, { namespace: '__proto__', key: '__proto__', value: 'odd but legal' });
    expect(JSON.parse(fs.readFileSync(kvConfigPath, 'utf8'))).toEqual({
      configTable: JSON.parse('{"ORDER_TOPIC_CONFIG":{"TopicA":"broker-a:4"},"__proto__":{"__proto__":"odd but legal"}}'),
    });
    await h.system.stop(h.nameServer);
    const restarted = new Harness(h.system, await spawnNameServer(h.system, { pool: 'main', kvConfigPath }), h.recorder);
    expect((await restarted.call(RequestCode.GET_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicA' })).extFields).toEqual({ value: 'broker-a:4' });
    expect((await restarted.call(RequestCode.GET_KV_CONFIG, { namespace: '__proto__', key: '__proto__' })).extFields).toEqual({ value: 'odd but legal' });
  });

  it('undoes a KV change it cannot persist and answers SYSTEM_ERROR', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'namesrv-'));
    dirs.push(dir);
    const h = await harness({ kvConfigPath: path.join(dir, 'kvConfig.json'), behavior: nameServerDiskFullSource });
    const answer = await h.call(RequestCode.PUT_KV_CONFIG, { namespace: 'n', key: 'k', value: 'v' });
    expect(answer.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(answer.remark).toMatch(/^KV config not persisted: ENOSPC/);
    expect((await h.call(RequestCode.GET_KV_CONFIG, { namespace: 'n', key: 'k' })).code).toBe(ResponseCode.QUERY_NOT_FOUND);
  });

  it('runs on a worker thread of the admin pool', async () => {
    system = await startTestSystem({ admin: 1 });
    const recorder = await system.spawn<AcceptorRecorderMessage, null>({ name: 'acceptor-recorder', behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const nameServer = await spawnNameServer(system);
    const h = new Harness(system, nameServer, recorder);
    expect((await h.register()).code).toBe(ResponseCode.SUCCESS);
    expect((await h.route('TBW102')).code).toBe(ResponseCode.SUCCESS);
  });

  it('serves a real Remoting acceptor over TCP and forgets a broker whose connection closes', async () => {
    system = await startTestSystem({});
    const nameServer = await spawnNameServer(system, { pool: 'main' });
    const routes: RemotingRoutes = { byCode: {}, fallback: [nameServer], closeListeners: [nameServer] };
    const acceptor = await system.spawn<RemotingAcceptorMessage, RemotingAcceptorArgs>({
      name: 'namesrv-acceptor-0',
      behavior: { module: new URL('../../src/actors/remoting-acceptor.ts', import.meta.url).href, export: 'remotingAcceptor' },
      args: { server: 'namesrv', host: '127.0.0.1', port: 0, frameMaxBytes: 16 * 1024 * 1024, connectionsMax: 16, routes },
      pool: 'main',
    });
    const bound = await system.ask<RemotingAcceptorMessage, BoundAnswer>(acceptor, { type: 'port' });
    if (!('port' in bound)) throw new Error(bound.error);
    const broker = await connect(bound.port);
    const body = registerBody();
    const answers = await exchange(broker, [
      createRequest({ code: RequestCode.REGISTER_BROKER, opaque: 1, extFields: registerHeader({ bodyCrc32: bodyCrc32(body) }), body, version: MQVersionOrdinal.V5_3_3 }),
      createRequest({ code: RequestCode.GET_ROUTEINFO_BY_TOPIC, opaque: 2, extFields: { topic: 'TBW102' } }),
    ]);
    expect(answers.map((answer) => [answer.opaque, answer.code])).toEqual([
      [1, ResponseCode.SUCCESS],
      [2, ResponseCode.SUCCESS],
    ]);
    expect(decodeJsonBody<TopicRouteData>(answers[1]?.body, 'route').brokerDatas[0]?.brokerName).toBe('broker-a');
    broker.destroy();
    await pollUntil('broker unregistered on close', async () => {
      const stats = await system!.ask<NameServerMessage, NameServerStats>(nameServer, { type: 'stats' });
      return stats.brokersDisconnected === 1 ? stats : undefined;
    });
    const client = await connect(bound.port);
    const [route] = await exchange(client, [createRequest({ code: RequestCode.GET_ROUTEINFO_BY_TOPIC, opaque: 3, extFields: { topic: 'TBW102' } })]);
    expect(route?.code).toBe(ResponseCode.TOPIC_NOT_EXIST);
    client.destroy();
  });
});

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Writes requests and reads as many answers. */
function exchange(socket: net.Socket, requests: RemotingCommand[]): Promise<RemotingCommand[]> {
  const decoder = new FrameDecoder();
  const seen: RemotingCommand[] = [];
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      seen.push(...decoder.push(chunk));
      if (seen.length < requests.length) return;
      socket.off('data', onData);
      resolve(seen);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`socket closed after ${seen.length} answers`)));
    for (const request of requests) socket.write(encodeCommand(request));
  });
}
