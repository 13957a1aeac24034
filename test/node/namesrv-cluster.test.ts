/**
 * A NameServer node with two broker nodes of one cluster, driven over real sockets only: registration,
 * cluster info and routes that span both brokers, sends and pulls routed by them, a clean broker stop
 * (UNREGISTER_BROKER), and fake brokers speaking REGISTER_BROKER themselves to show expiry of a silent
 * broker (after its heartbeatTimeoutMillis plus one scan, and not while it heartbeats), removal on
 * UNREGISTER_BROKER and removal when the connection closes.
 *
 * broker-b reaches the NameServer through a relay that records what it sends and keeps the NameServer's
 * side of the connection open after the broker has gone, so only its UNREGISTER_BROKER can remove it
 * before the 120 s expiry.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/net/remoting/codec.ts';
import {
  bodyCrc32,
  decodeJsonBody,
  encodeHeader,
  encodeRegisterBrokerBody,
  MQVersionOrdinal,
  NamesrvHeaders,
  PermName,
  type ClusterInfo,
  type RegisteredTopicConfig,
  type TopicList,
  type TopicRouteData,
} from '../../src/net/remoting/namesrv-protocol.ts';
import { CreateTopicRequestHeader, formatSendMessageRequest, PullMessageRequestHeader, PullSysFlag } from '../../src/net/remoting/broker-headers.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { startTestCluster, type ClusterBroker, type TestCluster } from './fixtures/cluster.ts';

const SCAN_INTERVAL_MS = 100;
const POLL_MS = 50;
const RW = PermName.PERM_READ | PermName.PERM_WRITE;
const TOPIC = 'ClusterTopic';
const QUEUES = 4;

let cluster: TestCluster;
let brokerA: ClusterBroker;
let brokerB: ClusterBroker;
let relay: Relay;
let namesrv: RemotingClient;
const clients: RemotingClient[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({
    name: 'namesrv-cluster',
    brokers: 1,
    // enableAllTopicList is switched off to show the node's NamesrvConfig keys reach the NameServer.
    namesrvOverrides: { scanNotActiveBrokerInterval: String(SCAN_INTERVAL_MS), enableAllTopicList: 'false' },
  });
  brokerA = cluster.brokers[0]!;
  relay = await startRelay(cluster.namesrv.ports.namesrv);
  brokerB = await cluster.startBroker('broker-b', { namesrvAddr: relay.addr, registerNameServerPeriod: '10000', registerBrokerTimeoutMills: '5000' });
  namesrv = await connect(cluster.namesrvAddr);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.close()));
  await relay?.close();
  await cluster?.stop();
}, 60_000);

// ------------------------------------------------------------------------------------------------ helpers

async function connect(addr: string): Promise<RemotingClient> {
  const client = await RemotingClient.connect(addr);
  clients.push(client);
  return client;
}

/** A TCP relay to the NameServer that decodes the requests passing through and never closes upstream first. */
type Relay = { readonly addr: string; readonly requests: RemotingCommand[]; close(): Promise<void> };

async function startRelay(targetPort: number): Promise<Relay> {
  const requests: RemotingCommand[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const decoder = new FrameDecoder();
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
    }
    downstream.on('data', (chunk: Buffer) => {
      requests.push(...decoder.push(chunk));
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!downstream.destroyed) downstream.write(chunk);
    });
    upstream.on('close', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    addr: `127.0.0.1:${port}`,
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function clusterInfo(): Promise<ClusterInfo> {
  const answer = await namesrv.invoke(requestOf(RequestCode.GET_BROKER_CLUSTER_INFO), 5_000);
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  return decodeJsonBody<ClusterInfo>(answer.body, 'ClusterInfo');
}

/** Broker names of the cluster, sorted. */
async function clusterBrokerNames(): Promise<string[]> {
  return [...((await clusterInfo()).clusterAddrTable[cluster.clusterName] ?? [])].sort();
}

/** The topic's route, or undefined when the NameServer answers TOPIC_NOT_EXIST. */
async function routeOf(topic: string): Promise<TopicRouteData | undefined> {
  const answer = await namesrv.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic }), 5_000);
  if (answer.code === ResponseCode.TOPIC_NOT_EXIST) return undefined;
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  return decodeJsonBody<TopicRouteData>(answer.body, 'TopicRouteData');
}

/** Broker names in a route's queue data and broker data, each sorted. */
function routeNames(route: TopicRouteData | undefined): { queues: string[]; brokers: string[] } {
  return {
    queues: (route?.queueDatas ?? []).map((queue) => queue.brokerName).sort(),
    brokers: (route?.brokerDatas ?? []).map((broker) => broker.brokerName).sort(),
  };
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, index) => name === b[index]);
}

/** Polls until the cluster lists exactly `names`. */
function untilClusterIs(names: string[], what: string, timeoutMs = 10_000): Promise<true> {
  return pollUntil(what, async () => (sameNames(await clusterBrokerNames(), names) ? true : undefined), timeoutMs, POLL_MS);
}

/** Polls until the topic's queue and broker data both name exactly `names`; returns the route. */
function untilRouteIs(topic: string, names: string[], timeoutMs = 10_000): Promise<TopicRouteData> {
  return pollUntil(
    `route of ${topic} naming ${names.join(', ')}`,
    async () => {
      const route = await routeOf(topic);
      const seen = routeNames(route);
      return route !== undefined && sameNames(seen.queues, names) && sameNames(seen.brokers, names) ? route : undefined;
    },
    timeoutMs,
    POLL_MS,
  );
}

function topicConfig(topicName: string): RegisteredTopicConfig {
  return { topicName, readQueueNums: 2, writeQueueNums: 2, perm: RW, topicSysFlag: 0 };
}

/** A broker played by the test: REGISTER_BROKER, heartbeats and UNREGISTER_BROKER over its own connection. */
class FakeBroker {
  readonly client: RemotingClient;
  readonly brokerName: string;
  readonly brokerAddr: string;

  constructor(client: RemotingClient, brokerName: string, brokerAddr: string) {
    this.client = client;
    this.brokerName = brokerName;
    this.brokerAddr = brokerAddr;
  }

  static async connect(brokerName: string, brokerAddr: string): Promise<FakeBroker> {
    return new FakeBroker(await connect(cluster.namesrvAddr), brokerName, brokerAddr);
  }

  /** Registers with two topics (RocketMQ refuses a first registration carrying exactly one). */
  async register(topics: readonly string[], heartbeatTimeoutMillis?: number): Promise<void> {
    const body = encodeRegisterBrokerBody({
      topicConfigs: topics.map(topicConfig),
      dataVersion: { timestamp: Date.now(), counter: 1, stateVersion: 0 },
      filterServerList: [],
    });
    const extFields = encodeHeader(NamesrvHeaders.registerBroker, {
      brokerName: this.brokerName,
      brokerAddr: this.brokerAddr,
      clusterName: cluster.clusterName,
      haServerAddr: '127.0.0.1:1',
      brokerId: 0,
      ...(heartbeatTimeoutMillis === undefined ? {} : { heartbeatTimeoutMillis }),
      enableActingMaster: false,
      compressed: false,
      bodyCrc32: bodyCrc32(body),
    });
    const request = createRequest({ code: RequestCode.REGISTER_BROKER, opaque: 0, extFields, body, version: MQVersionOrdinal.V5_3_3 });
    const answer = await this.client.invoke(request, 5_000);
    expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  }

  /** BROKER_HEARTBEAT, oneway as RocketMQ's broker sends it. */
  heartbeat(): void {
    const extFields = encodeHeader(NamesrvHeaders.brokerHeartbeat, {
      clusterName: cluster.clusterName,
      brokerAddr: this.brokerAddr,
      brokerName: this.brokerName,
    });
    this.client.invokeOneway(requestOf(RequestCode.BROKER_HEARTBEAT, extFields));
  }

  async unregister(): Promise<void> {
    const extFields = encodeHeader(NamesrvHeaders.unregisterBroker, {
      brokerName: this.brokerName,
      brokerAddr: this.brokerAddr,
      clusterName: cluster.clusterName,
      brokerId: 0,
    });
    const answer = await this.client.invoke(requestOf(RequestCode.UNREGISTER_BROKER, extFields), 5_000);
    expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  }
}

async function createTopic(broker: RemotingClient, topic: string): Promise<void> {
  const extFields = CreateTopicRequestHeader.format({
    topic,
    defaultTopic: 'TBW102',
    readQueueNums: QUEUES,
    writeQueueNums: QUEUES,
    perm: RW,
    topicFilterType: 'SINGLE_TAG',
  });
  const answer = await broker.invoke(requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, extFields), 10_000);
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
}

async function send(broker: RemotingClient, topic: string, queueId: number, body: string): Promise<void> {
  const extFields = formatSendMessageRequest(
    {
      producerGroup: 'cluster-producer',
      topic,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: QUEUES,
      queueId,
      sysFlag: 0,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties({ WAIT: 'true' }),
      reconsumeTimes: 0,
    },
    'V2',
  );
  const answer = await broker.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, extFields, Buffer.from(body)), 10_000);
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
}

async function pullAll(broker: RemotingClient, topic: string, queueId: number): Promise<string[]> {
  const extFields = PullMessageRequestHeader.format({
    consumerGroup: 'cluster-consumer',
    topic,
    queueId,
    queueOffset: 0,
    maxMsgNums: 32,
    sysFlag: PullSysFlag.FLAG_SUBSCRIPTION,
    commitOffset: 0,
    suspendTimeoutMillis: 0,
    subscription: '*',
    subVersion: 0,
    expressionType: 'TAG',
  });
  const answer = await broker.invoke(requestOf(RequestCode.PULL_MESSAGE, extFields), 10_000);
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  const bodies: string[] = [];
  const body = answer.body ?? new Uint8Array();
  for (let at = 0; at < body.length; ) {
    const record = decodeRecord(body, at);
    bodies.push(Buffer.from(record.body).toString());
    at += record.totalSize;
  }
  return bodies;
}

function masterOf(route: TopicRouteData, brokerName: string): string {
  const addr = route.brokerDatas.find((data) => data.brokerName === brokerName)?.brokerAddrs['0'];
  expect(addr, `master of ${brokerName}`).toBeDefined();
  return addr!;
}

// ------------------------------------------------------------------------------------------------- tests

describe('a NameServer with two brokers of one cluster', () => {
  it('lists both brokers in the cluster, each under its own address', async () => {
    await untilClusterIs(['broker-a', 'broker-b'], 'both brokers registered');
    const info = await clusterInfo();
    for (const broker of [brokerA, brokerB]) {
      expect(info.brokerAddrTable[broker.brokerName]).toMatchObject({
        cluster: cluster.clusterName,
        brokerName: broker.brokerName,
        brokerAddrs: { '0': broker.brokerAddr },
      });
    }
  });

  it('runs each broker with its own registration settings', async () => {
    const settingsOf = async (broker: ClusterBroker): Promise<string> => {
      const answer = await (await connect(broker.brokerAddr)).invoke(requestOf(RequestCode.GET_BROKER_CONFIG), 5_000);
      expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
      return Buffer.from(answer.body ?? new Uint8Array()).toString('utf8');
    };
    const a = await settingsOf(brokerA);
    expect(a).toContain('registerNameServerPeriod=30000\n');
    expect(a).toContain('registerBrokerTimeoutMills=24000\n');
    const b = await settingsOf(brokerB);
    expect(b).toContain('registerNameServerPeriod=10000\n');
    expect(b).toContain('registerBrokerTimeoutMills=5000\n');
  });

  it('routes a topic created on both brokers to both, and a consumer pulling every queue gets every message', async () => {
    for (const broker of [brokerA, brokerB]) await createTopic(await connect(broker.brokerAddr), TOPIC);
    const route = await untilRouteIs(TOPIC, ['broker-a', 'broker-b']);
    const queueDatas = [...route.queueDatas].sort((a, b) => a.brokerName.localeCompare(b.brokerName));
    expect(queueDatas).toEqual(
      ['broker-a', 'broker-b'].map((brokerName) => ({ brokerName, readQueueNums: QUEUES, writeQueueNums: QUEUES, perm: RW, topicSysFlag: 0 })),
    );
    expect(masterOf(route, 'broker-a')).toBe(brokerA.brokerAddr);
    expect(masterOf(route, 'broker-b')).toBe(brokerB.brokerAddr);

    // A producer spreads messages over every writable queue of the route; a consumer pulls every readable one.
    const sent: string[] = [];
    for (const queue of route.queueDatas) {
      const broker = await connect(masterOf(route, queue.brokerName));
      for (let queueId = 0; queueId < queue.writeQueueNums; queueId++) {
        for (let i = 0; i < 2; i++) {
          const body = `${queue.brokerName}/${queueId}/${i}`;
          await send(broker, TOPIC, queueId, body);
          sent.push(body);
        }
      }
    }
    const received: string[] = [];
    for (const queue of route.queueDatas) {
      const broker = await connect(masterOf(route, queue.brokerName));
      for (let queueId = 0; queueId < queue.readQueueNums; queueId++) {
        const bodies = await pullAll(broker, TOPIC, queueId);
        expect(bodies).toEqual([0, 1].map((i) => `${queue.brokerName}/${queueId}/${i}`));
        received.push(...bodies);
      }
    }
    expect(received.sort()).toEqual(sent.sort());
    expect(received).toHaveLength(2 * QUEUES * 2);
  });

  it('answers with the NamesrvConfig switches of its node: the all-topic list off, the per-cluster list on', async () => {
    const all = await namesrv.invoke(requestOf(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER), 5_000);
    expect(all.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(all.remark).toBe('disable');
    const byCluster = await namesrv.invoke(requestOf(RequestCode.GET_TOPICS_BY_CLUSTER, { cluster: cluster.clusterName }), 5_000);
    expect(byCluster.code, byCluster.remark).toBe(ResponseCode.SUCCESS);
    expect(decodeJsonBody<TopicList>(byCluster.body, 'TopicList').topicList).toContain(TOPIC);
  });

  it('keeps a broker that heartbeats past its timeout, then drops a silent one after the timeout and a scan, closing its connection', async () => {
    const heartbeatTimeoutMs = 1_500;
    const fake = await FakeBroker.connect('fake-silent', '127.0.0.1:2');
    await fake.register([TOPIC, 'FakeTopic'], heartbeatTimeoutMs);
    expect(await clusterBrokerNames()).toEqual(['broker-a', 'broker-b', 'fake-silent']);
    expect(routeNames(await routeOf(TOPIC)).brokers).toEqual(['broker-a', 'broker-b', 'fake-silent']);

    // Heartbeating for well over two timeouts (and many scans), it stays.
    const heartbeatUntil = Date.now() + 2.5 * heartbeatTimeoutMs;
    let lastHeartbeatAt = Date.now();
    while (Date.now() < heartbeatUntil) {
      fake.heartbeat();
      lastHeartbeatAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(await clusterBrokerNames()).toContain('fake-silent');
    }

    // Silent, with its connection still open: gone after the timeout plus one scan (every 100 ms here,
    // where RocketMQ's default is 5 s), not before.
    await untilClusterIs(['broker-a', 'broker-b'], 'the silent broker expired', heartbeatTimeoutMs + 3_000);
    const removedAfterMs = Date.now() - lastHeartbeatAt;
    expect(removedAfterMs).toBeGreaterThanOrEqual(heartbeatTimeoutMs - POLL_MS);
    expect(await routeOf('FakeTopic')).toBeUndefined();
    expect(routeNames(await routeOf(TOPIC))).toEqual({ queues: ['broker-a', 'broker-b'], brokers: ['broker-a', 'broker-b'] });
    // The NameServer closes an expired broker's connection, as RocketMQ does.
    await pollUntil('the expired broker connection closed', () => (fake.client.closed ? true : undefined), 5_000, POLL_MS);
  });

  it('drops a broker at once when its connection closes, long before its 120 s expiry', async () => {
    const fake = await FakeBroker.connect('fake-closing', '127.0.0.1:3');
    await fake.register(['ClosingTopicA', 'ClosingTopicB']);
    expect(await clusterBrokerNames()).toContain('fake-closing');
    expect(routeNames(await routeOf('ClosingTopicA')).brokers).toEqual(['fake-closing']);
    await fake.client.close();
    await untilClusterIs(['broker-a', 'broker-b'], 'the broker whose connection closed removed', 5_000);
    expect(await routeOf('ClosingTopicA')).toBeUndefined();
  });

  it('drops a broker on UNREGISTER_BROKER while its connection stays open', async () => {
    const fake = await FakeBroker.connect('fake-leaving', '127.0.0.1:4');
    await fake.register(['LeavingTopicA', 'LeavingTopicB']);
    expect(await clusterBrokerNames()).toContain('fake-leaving');
    await fake.unregister();
    expect(await clusterBrokerNames()).toEqual(['broker-a', 'broker-b']);
    expect(await routeOf('LeavingTopicA')).toBeUndefined();
    expect(fake.client.closed).toBe(false);
  });

  it('unregisters a broker that stops cleanly; the route then names only the other', async () => {
    await brokerB.stop();
    const unregister = await pollUntil(
      'UNREGISTER_BROKER through the relay',
      () => relay.requests.find((request) => request.code === RequestCode.UNREGISTER_BROKER),
      5_000,
      POLL_MS,
    );
    expect(unregister.extFields).toMatchObject({ brokerName: 'broker-b', brokerAddr: brokerB.brokerAddr, clusterName: cluster.clusterName, brokerId: '0' });
    // The relay still holds broker-b's connection to the NameServer, so no channel close removed it.
    await untilClusterIs(['broker-a'], 'broker-b unregistered', 5_000);
    expect(routeNames(await routeOf(TOPIC))).toEqual({ queues: ['broker-a'], brokers: ['broker-a'] });
    const route = (await routeOf(TOPIC))!;
    expect(masterOf(route, 'broker-a')).toBe(brokerA.brokerAddr);
    // broker-a still serves what was sent to it.
    const bodies = await pullAll(await connect(brokerA.brokerAddr), TOPIC, 0);
    expect(bodies).toEqual(['broker-a/0/0', 'broker-a/0/1']);
  });
});
