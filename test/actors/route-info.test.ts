import { describe, expect, it } from 'vitest';
import { KvConfigTable, ROUTE_INFO_DEFAULTS, RouteInfo, type BrokerRegistration } from '../../src/actors/route-info.ts';
import { NamesrvNames, PermName, type RegisteredTopicConfig } from '../../src/net/remoting/namesrv-protocol.ts';

const T0 = 1_700_000_000_000;
const RW = PermName.PERM_READ | PermName.PERM_WRITE;

function topicConfig(topicName: string, overrides: Partial<RegisteredTopicConfig> = {}): RegisteredTopicConfig {
  return { topicName, readQueueNums: 4, writeQueueNums: 4, perm: RW, topicSysFlag: 0, ...overrides };
}

/** What a master of broker-a in DefaultCluster with autoCreateTopicEnable registers. */
function registration(overrides: Partial<BrokerRegistration> = {}): BrokerRegistration {
  return {
    clusterName: 'DefaultCluster',
    brokerAddr: '10.0.0.1:10911',
    brokerName: 'broker-a',
    brokerId: 0,
    haServerAddr: '10.0.0.1:10912',
    zoneName: undefined,
    heartbeatTimeoutMs: undefined,
    enableActingMaster: false,
    topicConfigs: [topicConfig(NamesrvNames.AUTO_CREATE_TOPIC_KEY_TOPIC, { perm: RW | PermName.PERM_INHERIT, readQueueNums: 8, writeQueueNums: 8 }), topicConfig('TopicA')],
    dataVersion: { timestamp: T0, counter: 1, stateVersion: 0 },
    filterServerList: [],
    hasQueueMappings: false,
    channelId: 'chan-a0',
    ...overrides,
  };
}

/** The master and slave of broker-a, and the master of broker-b in another cluster. */
const slaveA = { brokerId: 1, brokerAddr: '10.0.0.2:10911', haServerAddr: '10.0.0.2:10912', channelId: 'chan-a1' };
const masterB = {
  clusterName: 'OtherCluster',
  brokerName: 'broker-b',
  brokerAddr: '10.0.1.1:10911',
  haServerAddr: '10.0.1.1:10912',
  channelId: 'chan-b0',
  topicConfigs: [topicConfig(NamesrvNames.AUTO_CREATE_TOPIC_KEY_TOPIC), topicConfig('TopicB')],
};

function checked(routes: RouteInfo): RouteInfo {
  routes.checkInvariants();
  return routes;
}

describe('RouteInfo registration', () => {
  it('serves the routes of a registered master, TBW102 included, and nothing for unknown topics', () => {
    const routes = new RouteInfo();
    const outcome = routes.registerBroker(registration(), T0);
    expect(outcome).toEqual({ kind: 'registered', haServerAddr: undefined, masterAddr: undefined, topicsRefused: 0 });
    checked(routes);
    expect(routes.topicRoute('TBW102')).toEqual({
      queueDatas: [{ brokerName: 'broker-a', readQueueNums: 8, writeQueueNums: 8, perm: RW | PermName.PERM_INHERIT, topicSysFlag: 0 }],
      brokerDatas: [{ cluster: 'DefaultCluster', brokerName: 'broker-a', brokerAddrs: { '0': '10.0.0.1:10911' }, enableActingMaster: false }],
      filterServerTable: {},
    });
    expect(routes.topicRoute('TopicA')?.queueDatas).toHaveLength(1);
    expect(routes.topicRoute('NoSuchTopic')).toBeUndefined();
    expect(routes.allTopics().topicList).toEqual(['TBW102', 'TopicA']);
  });

  it('treats a registration with the same data version as a heartbeat that postpones expiry', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    routes.registerBroker(registration(), T0 + 100_000);
    expect(routes.scanNotActiveBrokers(T0 + 125_000)).toEqual([]);
    expect(routes.topicRoute('TopicA')).toBeDefined();
    expect(routes.scanNotActiveBrokers(T0 + 220_000)).toEqual([]);
    const removed = routes.scanNotActiveBrokers(T0 + 220_001);
    expect(removed.map((broker) => [broker.brokerAddr, broker.brokerName])).toEqual([['10.0.0.1:10911', 'broker-a']]);
    checked(routes);
  });

  it('applies changed topic configs only when the data version changes or the broker lacks the topic', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    // Same version, different queue count: RocketMQ trusts the version and keeps the old queue data.
    routes.registerBroker(registration({ topicConfigs: [topicConfig('TBW102'), topicConfig('TopicA', { writeQueueNums: 2 })] }), T0 + 1);
    expect(routes.topicRoute('TopicA')?.queueDatas[0]?.writeQueueNums).toBe(4);
    routes.registerBroker(
      registration({ topicConfigs: [topicConfig('TBW102'), topicConfig('TopicA', { writeQueueNums: 2 })], dataVersion: { timestamp: T0 + 2, counter: 2, stateVersion: 0 } }),
      T0 + 2,
    );
    expect(routes.topicRoute('TopicA')?.queueDatas[0]?.writeQueueNums).toBe(2);
    checked(routes);
  });

  it('keeps several clusters apart', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    routes.registerBroker(registration(masterB), T0);
    checked(routes);
    const info = routes.clusterInfo();
    expect(info.clusterAddrTable).toEqual({ DefaultCluster: ['broker-a'], OtherCluster: ['broker-b'] });
    expect(Object.keys(info.brokerAddrTable).sort()).toEqual(['broker-a', 'broker-b']);
    expect([...routes.topicsByCluster('DefaultCluster').topicList].sort()).toEqual(['TBW102', 'TopicA']);
    expect([...routes.topicsByCluster('OtherCluster').topicList].sort()).toEqual(['TBW102', 'TopicB']);
    expect(routes.topicsByCluster('NoCluster').topicList).toEqual([]);
    // TBW102 is served by both groups: a producer may auto-create a topic on either.
    expect(routes.topicRoute('TBW102')?.brokerDatas.map((data) => data.brokerName).sort()).toEqual(['broker-a', 'broker-b']);
    expect(routes.systemTopics()).toEqual({ topicList: ['DefaultCluster', 'broker-a', 'OtherCluster', 'broker-b'], brokerAddr: '10.0.0.1:10911' });
  });

  it('tells a slave its master, lists both in the route, and ignores the topics of an old-version slave', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    const outcome = routes.registerBroker(registration({ ...slaveA, enableActingMaster: undefined, topicConfigs: [topicConfig('TBW102'), topicConfig('SlaveOnly')] }), T0);
    expect(outcome).toEqual({ kind: 'registered', haServerAddr: '10.0.0.1:10912', masterAddr: '10.0.0.1:10911', topicsRefused: 0 });
    checked(routes);
    expect(routes.topicRoute('TopicA')?.brokerDatas[0]?.brokerAddrs).toEqual({ '0': '10.0.0.1:10911', '1': '10.0.0.2:10911' });
    expect(routes.topicRoute('SlaveOnly')).toBeUndefined();
    expect(routes.brokerMemberGroup('DefaultCluster', 'broker-a').brokerAddrs).toEqual({ '0': '10.0.0.1:10911', '1': '10.0.0.2:10911' });
  });

  it('gives a slave no master address when the master has not registered', () => {
    const routes = new RouteInfo();
    const outcome = routes.registerBroker(registration(slaveA), T0);
    expect(outcome).toMatchObject({ kind: 'registered', haServerAddr: undefined, masterAddr: undefined });
    // A 5.x slave with the smallest id is the prime slave: its topics are routed.
    expect(routes.topicRoute('TopicA')?.brokerDatas[0]?.brokerAddrs).toEqual({ '1': '10.0.0.2:10911' });
  });

  it('moves an address from slave id to master id without listing it twice', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(slaveA), T0);
    routes.registerBroker(registration({ ...slaveA, brokerId: 0 }), T0 + 1);
    checked(routes);
    expect(routes.clusterInfo().brokerAddrTable['broker-a']?.brokerAddrs).toEqual({ '0': '10.0.0.2:10911' });
  });

  it('ignores a registration for a brokerId held by another address with a newer stateVersion', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration({ dataVersion: { timestamp: T0, counter: 1, stateVersion: 5 } }), T0);
    const outcome = routes.registerBroker(registration({ ...slaveA, brokerId: 0, dataVersion: { timestamp: T0, counter: 1, stateVersion: 4 } }), T0);
    expect(outcome).toEqual({ kind: 'ignored' });
    checked(routes);
    expect(routes.clusterInfo().brokerAddrTable['broker-a']?.brokerAddrs).toEqual({ '0': '10.0.0.1:10911' });
    expect(routes.sizes().brokers).toBe(1);
  });

  it('rejects a first registration that carries exactly one topic, leaving no trace', () => {
    const routes = new RouteInfo();
    expect(routes.registerBroker(registration({ topicConfigs: [topicConfig('Lonely')] }), T0)).toEqual({ kind: 'rejected' });
    checked(routes);
    expect(routes.sizes()).toEqual({ brokers: 0, brokerGroups: 0, clusters: 0, topics: 0 });
    // Once registered, a single-topic registration (a new topic) is accepted.
    routes.registerBroker(registration(), T0);
    expect(routes.registerBroker(registration({ topicConfigs: [topicConfig('Lonely')], dataVersion: { timestamp: T0 + 1, counter: 2, stateVersion: 0 } }), T0)).toMatchObject({
      kind: 'registered',
    });
    expect(routes.topicRoute('Lonely')).toBeDefined();
  });

  it('records zone names and filter servers in the route', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration({ zoneName: 'zone-1', filterServerList: ['10.0.0.1:30000'] }), T0);
    const route = routes.topicRoute('TopicA');
    expect(route?.brokerDatas[0]?.zoneName).toBe('zone-1');
    expect(route?.filterServerTable).toEqual({ '10.0.0.1:10911': ['10.0.0.1:30000'] });
    routes.registerBroker(registration({ filterServerList: [] }), T0 + 1);
    expect(routes.topicRoute('TopicA')?.filterServerTable).toEqual({});
  });

  it('removes topics a broker stopped listing only with deleteTopicWithBrokerRegistration', () => {
    for (const deleteTopicWithBrokerRegistration of [false, true]) {
      const routes = new RouteInfo({ deleteTopicWithBrokerRegistration });
      routes.registerBroker(registration(), T0);
      routes.registerBroker(
        registration({ topicConfigs: [topicConfig('TBW102'), topicConfig('TopicC')], dataVersion: { timestamp: T0 + 1, counter: 2, stateVersion: 0 } }),
        T0 + 1,
      );
      checked(routes);
      expect(routes.topicRoute('TopicA') === undefined).toBe(deleteTopicWithBrokerRegistration);
      expect(routes.topicRoute('TopicC')).toBeDefined();
    }
  });
});

describe('RouteInfo expiry and removal', () => {
  it('removes a broker 120 s after it was last heard from, on the first scan after that', () => {
    expect(ROUTE_INFO_DEFAULTS.brokerChannelExpiredMs).toBe(120_000);
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    routes.registerBroker(registration(masterB), T0 + 60_000);
    expect(routes.scanNotActiveBrokers(T0 + 120_000)).toEqual([]);
    const removed = routes.scanNotActiveBrokers(T0 + 120_001);
    expect(removed).toEqual([
      { clusterName: 'DefaultCluster', brokerAddr: '10.0.0.1:10911', brokerName: 'broker-a', channelId: 'chan-a0', lastUpdateMs: T0, heartbeatTimeoutMs: 120_000 },
    ]);
    checked(routes);
    expect(routes.topicRoute('TopicA')).toBeUndefined();
    expect(routes.topicRoute('TBW102')?.brokerDatas.map((data) => data.brokerName)).toEqual(['broker-b']);
    expect(routes.clusterInfo().clusterAddrTable).toEqual({ OtherCluster: ['broker-b'] });
  });

  it("honours a broker's own heartbeat timeout, and heartbeats postpone it", () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration({ heartbeatTimeoutMs: 10_000 }), T0);
    expect(routes.touchBroker('DefaultCluster', '10.0.0.1:10911', T0 + 8_000)).toBe(true);
    expect(routes.touchBroker('DefaultCluster', '10.9.9.9:1', T0 + 8_000)).toBe(false);
    expect(routes.scanNotActiveBrokers(T0 + 18_000)).toEqual([]);
    expect(routes.scanNotActiveBrokers(T0 + 18_001)).toHaveLength(1);
  });

  it('keeps a group while a slave lives after its master expires', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    routes.registerBroker(registration(slaveA), T0 + 60_000);
    routes.scanNotActiveBrokers(T0 + 150_000);
    checked(routes);
    const route = routes.topicRoute('TopicA');
    expect(route?.brokerDatas[0]?.brokerAddrs).toEqual({ '1': '10.0.0.2:10911' });
    expect(route?.queueDatas[0]?.perm).toBe(RW);
  });

  it('unregisters a slave, then the master with its topics and cluster', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    routes.registerBroker(registration(slaveA), T0);
    routes.unregisterBroker({ clusterName: 'DefaultCluster', brokerName: 'broker-a', brokerAddr: slaveA.brokerAddr, brokerId: 1 });
    checked(routes);
    expect(routes.topicRoute('TopicA')?.brokerDatas[0]?.brokerAddrs).toEqual({ '0': '10.0.0.1:10911' });
    routes.unregisterBroker({ clusterName: 'DefaultCluster', brokerName: 'broker-a', brokerAddr: '10.0.0.1:10911', brokerId: 0 });
    checked(routes);
    expect(routes.sizes()).toEqual({ brokers: 0, brokerGroups: 0, clusters: 0, topics: 0 });
    // Unregistering something unknown is harmless.
    routes.unregisterBroker({ clusterName: 'X', brokerName: 'nobody', brokerAddr: '1.1.1.1:1', brokerId: 0 });
    checked(routes);
  });

  it('removes every broker registered over a connection when it closes, and only those', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration({ channelId: 'shared' }), T0);
    routes.registerBroker(registration({ ...masterB, channelId: 'shared' }), T0);
    routes.registerBroker(registration({ ...slaveA }), T0);
    expect(routes.hasChannel('shared')).toBe(true);
    expect(routes.channelDestroyed('unknown')).toEqual([]);
    const removed = routes.channelDestroyed('shared');
    expect(removed.map((broker) => broker.brokerAddr).sort()).toEqual(['10.0.0.1:10911', '10.0.1.1:10911']);
    checked(routes);
    expect(routes.hasChannel('shared')).toBe(false);
    expect(routes.clusterInfo().clusterAddrTable).toEqual({ DefaultCluster: ['broker-a'] });
  });

  it('does not unregister a broker whose connection was replaced by a newer one', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration({ channelId: 'old' }), T0);
    routes.registerBroker(registration({ channelId: 'new' }), T0 + 1);
    expect(routes.channelDestroyed('old')).toEqual([]);
    expect(routes.topicRoute('TopicA')).toBeDefined();
  });

  it('drops an expired address that lost its brokerId to another address', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    // A new master takes brokerId 0 (same stateVersion), replacing the old address in the group.
    routes.registerBroker(registration({ brokerAddr: '10.0.0.9:10911', channelId: 'chan-new' }), T0 + 60_000);
    expect(routes.sizes().brokers).toBe(2);
    const removed = routes.scanNotActiveBrokers(T0 + 120_001);
    expect(removed).toEqual([expect.objectContaining({ brokerAddr: '10.0.0.1:10911', brokerName: undefined })]);
    checked(routes);
    expect(routes.sizes().brokers).toBe(1);
    expect(routes.topicRoute('TopicA')?.brokerDatas[0]?.brokerAddrs).toEqual({ '0': '10.0.0.9:10911' });
  });
});

describe('RouteInfo topic administration', () => {
  it('deletes a topic everywhere or from one cluster', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    routes.registerBroker(registration(masterB), T0);
    routes.deleteTopic('TBW102', 'OtherCluster');
    expect(routes.topicRoute('TBW102')?.brokerDatas.map((data) => data.brokerName)).toEqual(['broker-a']);
    routes.deleteTopic('TBW102', 'DefaultCluster');
    expect(routes.topicRoute('TBW102')).toBeUndefined();
    routes.deleteTopic('TopicA');
    expect(routes.topicRoute('TopicA')).toBeUndefined();
    checked(routes);
  });

  it('registers a topic only on known broker groups', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    const queue = { brokerName: 'broker-a', readQueueNums: 2, writeQueueNums: 2, perm: RW, topicSysFlag: 0 };
    expect(routes.registerTopic('Static', [queue, { ...queue, brokerName: 'ghost' }])).toBe(true);
    expect(routes.topicRoute('Static')).toBeUndefined();
    expect(routes.registerTopic('Static', [queue])).toBe(true);
    expect(routes.topicRoute('Static')?.queueDatas).toEqual([queue]);
    checked(routes);
  });

  it('wipes and restores the write permission of a broker group', () => {
    const routes = new RouteInfo();
    routes.registerBroker(registration(), T0);
    expect(routes.setWritePermOfBroker('broker-a', false)).toBe(2);
    expect(routes.topicRoute('TopicA')?.queueDatas[0]?.perm).toBe(PermName.PERM_READ);
    expect(routes.setWritePermOfBroker('broker-a', true)).toBe(2);
    expect(routes.topicRoute('TopicA')?.queueDatas[0]?.perm).toBe(RW);
    expect(routes.setWritePermOfBroker('nobody', false)).toBe(0);
  });

  it('lists unit topics by the first group’s topicSysFlag', () => {
    const routes = new RouteInfo();
    routes.registerBroker(
      registration({ topicConfigs: [topicConfig('Plain'), topicConfig('Unit', { topicSysFlag: 1 }), topicConfig('UnitSub', { topicSysFlag: 2 }), topicConfig('Both', { topicSysFlag: 3 })] }),
      T0,
    );
    expect(routes.topicsBySysFlag('unit').topicList).toEqual(['Unit', 'Both']);
    expect(routes.topicsBySysFlag('unitSub').topicList).toEqual(['UnitSub', 'Both']);
    expect(routes.topicsBySysFlag('unitSubNotUnit').topicList).toEqual(['UnitSub']);
  });

  it('serves a read-only prime slave as the acting master when supportActingMaster is on', () => {
    for (const supportActingMaster of [false, true]) {
      const routes = new RouteInfo({ supportActingMaster });
      routes.registerBroker(registration({ enableActingMaster: true }), T0);
      routes.registerBroker(registration({ ...slaveA, enableActingMaster: true }), T0);
      routes.unregisterBroker({ clusterName: 'DefaultCluster', brokerName: 'broker-a', brokerAddr: '10.0.0.1:10911', brokerId: 0 });
      checked(routes);
      const route = routes.topicRoute('TopicA');
      // With acting master enabled the group loses its write permission once the master is gone.
      expect(route?.queueDatas[0]?.perm).toBe(PermName.PERM_READ);
      expect(route?.brokerDatas[0]?.brokerAddrs).toEqual(supportActingMaster ? { '0': '10.0.0.2:10911' } : { '1': '10.0.0.2:10911' });
    }
  });
});

describe('RouteInfo bounds', () => {
  it('refuses a new broker when brokersMax addresses are registered, but refreshes known ones', () => {
    const routes = new RouteInfo({ brokersMax: 1 });
    routes.registerBroker(registration(), T0);
    expect(routes.registerBroker(registration(masterB), T0)).toMatchObject({ kind: 'full' });
    expect(routes.registerBroker(registration(slaveA), T0)).toMatchObject({ kind: 'full' });
    expect(routes.registerBroker(registration(), T0 + 1)).toMatchObject({ kind: 'registered' });
    checked(routes);
    expect(routes.sizes().brokers).toBe(1);
  });

  it('leaves out new topics past topicsMax and says how many', () => {
    const routes = new RouteInfo({ topicsMax: 3 });
    const topicConfigs = ['T1', 'T2', 'T3', 'T4', 'T5'].map((name) => topicConfig(name));
    expect(routes.registerBroker(registration({ topicConfigs }), T0)).toMatchObject({ kind: 'registered', topicsRefused: 2 });
    checked(routes);
    expect(routes.allTopics().topicList).toEqual(['T1', 'T2', 'T3']);
    const queue = { brokerName: 'broker-a', readQueueNums: 1, writeQueueNums: 1, perm: RW, topicSysFlag: 0 };
    expect(routes.registerTopic('T6', [queue])).toBe(false);
  });
});

describe('KvConfigTable', () => {
  it('puts, gets, lists and deletes, keeping an emptied namespace as RocketMQ does', () => {
    const kv = new KvConfigTable();
    expect(kv.put(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, 'TopicA', 'broker-a:4')).toBe(true);
    expect(kv.get(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, 'TopicA')).toBe('broker-a:4');
    expect(kv.get(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, 'TopicB')).toBeUndefined();
    expect(kv.get('nope', 'TopicA')).toBeUndefined();
    expect(kv.put(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, 'TopicA', 'broker-a:8')).toBe(true);
    expect(kv.size()).toBe(1);
    expect(kv.list(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG)).toEqual({ TopicA: 'broker-a:8' });
    expect(kv.delete(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, 'TopicA')).toBe('broker-a:8');
    expect(kv.delete(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, 'TopicA')).toBeUndefined();
    expect(kv.list(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG)).toEqual({});
    expect(kv.list('nope')).toBeUndefined();
    expect(kv.size()).toBe(0);
  });

  it('treats __proto__ as an ordinary name and round-trips through its document', () => {
    const kv = new KvConfigTable();
    kv.put('__proto__', '__proto__', 'x');
    const copy = new KvConfigTable();
    expect(copy.load(JSON.parse(JSON.stringify(kv.toDocument())))).toBe(true);
    expect(copy.get('__proto__', '__proto__')).toBe('x');
    expect(Object.getPrototypeOf(copy.list('__proto__'))).toBe(Object.prototype);
  });

  it('refuses entries and namespaces past its bounds', () => {
    const kv = new KvConfigTable({ namespacesMax: 2, entriesMax: 3 });
    expect(kv.put('a', '1', 'v')).toBe(true);
    expect(kv.put('b', '1', 'v')).toBe(true);
    expect(kv.put('c', '1', 'v')).toBe(false);
    expect(kv.put('a', '2', 'v')).toBe(true);
    expect(kv.put('a', '3', 'v')).toBe(false);
    expect(kv.put('a', '2', 'w')).toBe(true);
    expect(kv.size()).toBe(3);
    expect(new KvConfigTable({ entriesMax: 1 }).load(kv.toDocument())).toBe(false);
  });
});
