/**
 * RouteInfo under random sequences of registrations, heartbeats, unregistrations, closed connections,
 * topic deletions and expiry scans, against a model of when each broker address was last heard from:
 * - the table's own invariants hold after every step (checkInvariants), bounds included;
 * - a live entry exists only for an address that registered, and carries the model's last-heard time;
 * - every address a broker group lists has a live entry, so it expires with it;
 * - after a scan at time t no live entry is older than its timeout;
 * - after a connection closes no live entry names it;
 * - every topic has a route, whose broker groups are exactly those of its queues.
 * Each broker name belongs to one cluster, as in a well-configured deployment.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RouteInfo, type BrokerRegistration } from '../../src/actors/route-info.ts';
import { PermName, type RegisteredTopicConfig } from '../../src/net/remoting/namesrv-protocol.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

const T0 = 1_700_000_000_000;
const CLUSTER_OF = { a: 'C1', b: 'C1', c: 'C2' } as const;
type BrokerName = keyof typeof CLUSTER_OF;
const TOPICS = ['TBW102', 'T1', 'T2', 'T3', 'T4'];
const CHANNELS = ['ch1', 'ch2', 'ch3'];

type Op =
  | {
      readonly kind: 'register';
      readonly brokerName: BrokerName;
      readonly addr: number;
      readonly brokerId: number;
      readonly topics: readonly string[];
      readonly counter: number;
      readonly stateVersion: number;
      readonly heartbeatTimeoutMs: number | undefined;
      readonly enableActingMaster: boolean | undefined;
      readonly channelId: string;
    }
  | { readonly kind: 'unregister'; readonly brokerName: BrokerName; readonly addr: number; readonly brokerId: number }
  | { readonly kind: 'touch'; readonly brokerName: BrokerName; readonly addr: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'close'; readonly channelId: string }
  | { readonly kind: 'deleteTopic'; readonly topic: string; readonly brokerName: BrokerName | undefined };

const brokerName = fc.constantFrom<BrokerName>('a', 'b', 'c');
const addr = fc.integer({ min: 1, max: 5 });
const brokerId = fc.integer({ min: 0, max: 2 });

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('register' as const),
      brokerName,
      addr,
      brokerId,
      topics: fc.subarray(TOPICS),
      counter: fc.integer({ min: 0, max: 2 }),
      stateVersion: fc.integer({ min: 0, max: 2 }),
      heartbeatTimeoutMs: fc.option(fc.integer({ min: 1_000, max: 200_000 }), { nil: undefined }),
      enableActingMaster: fc.option(fc.boolean(), { nil: undefined }),
      channelId: fc.constantFrom(...CHANNELS),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unregister' as const), brokerName, addr, brokerId }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('touch' as const), brokerName, addr }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 150_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), channelId: fc.constantFrom(...CHANNELS) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('deleteTopic' as const), topic: fc.constantFrom(...TOPICS), brokerName: fc.option(brokerName, { nil: undefined }) }),
  },
);

const addrText = (n: number): string => `10.0.0.${n}:10911`;
const key = (cluster: string, address: string): string => `${cluster}|${address}`;

function topicConfig(topicName: string): RegisteredTopicConfig {
  return { topicName, readQueueNums: 4, writeQueueNums: 4, perm: PermName.PERM_READ | PermName.PERM_WRITE, topicSysFlag: 0 };
}

/** Runs one sequence, checking the properties after every step. */
function run(ops: readonly Op[]): void {
  const routes = new RouteInfo({ brokersMax: 4, topicsMax: 3 });
  /** (cluster, address) -> when the model last heard from it. */
  const heard = new Map<string, number>();
  let nowMs = T0;
  for (const op of ops) {
    switch (op.kind) {
      case 'register': {
        const cluster = CLUSTER_OF[op.brokerName];
        const registration: BrokerRegistration = {
          clusterName: cluster,
          brokerAddr: addrText(op.addr),
          brokerName: op.brokerName,
          brokerId: op.brokerId,
          haServerAddr: `10.0.0.${op.addr}:10912`,
          zoneName: undefined,
          heartbeatTimeoutMs: op.heartbeatTimeoutMs,
          enableActingMaster: op.enableActingMaster,
          topicConfigs: op.topics.map(topicConfig),
          dataVersion: { timestamp: T0, counter: op.counter, stateVersion: op.stateVersion },
          filterServerList: [],
          hasQueueMappings: false,
          channelId: op.channelId,
        };
        const outcome = routes.registerBroker(registration, nowMs);
        if (outcome.kind === 'registered') heard.set(key(cluster, addrText(op.addr)), nowMs);
        break;
      }
      case 'unregister':
        routes.unregisterBroker({ clusterName: CLUSTER_OF[op.brokerName], brokerName: op.brokerName, brokerAddr: addrText(op.addr), brokerId: op.brokerId });
        break;
      case 'touch':
        if (routes.touchBroker(CLUSTER_OF[op.brokerName], addrText(op.addr), nowMs)) heard.set(key(CLUSTER_OF[op.brokerName], addrText(op.addr)), nowMs);
        break;
      case 'advance': {
        nowMs += op.ms;
        routes.scanNotActiveBrokers(nowMs);
        for (const live of routes.liveBrokers()) expect(live.lastUpdateMs + live.heartbeatTimeoutMs).toBeGreaterThanOrEqual(nowMs);
        break;
      }
      case 'close':
        routes.channelDestroyed(op.channelId);
        expect(routes.hasChannel(op.channelId)).toBe(false);
        break;
      case 'deleteTopic':
        routes.deleteTopic(op.topic, op.brokerName === undefined ? undefined : CLUSTER_OF[op.brokerName]);
        break;
    }
    checkAgainstModel(routes, heard);
  }
}

function checkAgainstModel(routes: RouteInfo, heard: ReadonlyMap<string, number>): void {
  routes.checkInvariants();
  const live = new Map(routes.liveBrokers().map((broker) => [key(broker.clusterName, broker.brokerAddr), broker]));
  for (const [liveKey, broker] of live) expect(broker.lastUpdateMs, `live entry ${liveKey}`).toBe(heard.get(liveKey));
  const info = routes.clusterInfo();
  for (const data of Object.values(info.brokerAddrTable)) {
    for (const address of Object.values(data.brokerAddrs)) expect(live.has(key(data.cluster, address)), `${data.brokerName} lists ${address}`).toBe(true);
  }
  for (const topic of routes.allTopics().topicList) {
    const route = routes.topicRoute(topic);
    expect(route, `route of ${topic}`).toBeDefined();
    const queueGroups = route!.queueDatas.map((queue) => queue.brokerName).sort();
    expect(route!.brokerDatas.map((data) => data.brokerName).sort()).toEqual(queueGroups);
  }
}

describe('RouteInfo properties', () => {
  it('keeps its invariants and agrees with the last-heard model under random operations', () => {
    fc.assert(
      fc.property(fc.array(opArbitrary, { minLength: 1, maxLength: 80 }), (ops) => run(ops)),
      replayableParameters('route-info model', 300),
    );
  });
});
