/**
 * The NameServer's route table (RocketMQ's RouteInfoManager) and KV config table (KVConfigManager):
 * plain synchronous data structures with no I/O, time passed in by the caller, so the NameServer actor
 * stays a thin shell and tests step time by hand.
 *
 * Tables, as RouteInfoManager keeps them:
 * - topicQueueTable: topic -> brokerName -> QueueData (a broker group's queues of the topic).
 * - brokerAddrTable: brokerName -> cluster, zone, acting-master flag and brokerId -> address.
 * - clusterAddrTable: cluster -> brokerNames.
 * - brokerLiveTable: (cluster, address) -> last heartbeat, timeout, DataVersion, channel, HA address.
 * - filterServerTable: (cluster, address) -> filter servers.
 *
 * Invariants (checked by `checkInvariants`, which the tests call after every step):
 * - no topic maps to an empty set of broker groups, nor to an unknown one; no broker group has no
 *   address; no cluster is empty;
 * - every brokerName in clusterAddrTable has an entry in brokerAddrTable, and the other way round;
 * - each address appears at most once per broker group;
 * - when each broker name is registered under one cluster, every address a group lists has a live
 *   entry (the property test checks this; a name registered under two clusters can break it, as in
 *   RocketMQ);
 * - the live table, broker groups and topics stay within their bounds.
 *
 * Deliberate differences from RouteInfoManager, each because Java leaves garbage behind:
 * - a registration that is refused leaves no empty broker group or cluster entry;
 * - a live entry whose address no broker group holds any more (its brokerId was taken by another
 *   address) is dropped when it expires instead of being kept forever;
 * - a closed channel removes every broker registered over it, not only the first one found;
 * - an address's live entry is kept while any broker group of its cluster lists it, so that every
 *   listed address expires (RocketMQ drops it on an UNREGISTER_BROKER naming another group, too);
 * - an expired address is removed from every group of its cluster that lists it, not only the first.
 */
import { assert } from '../runtime/assert.ts';
import {
  MASTER_ID,
  NamesrvNames,
  PermName,
  TopicSysFlag,
  type BrokerData,
  type BrokerMemberGroup,
  type ClusterInfo,
  type DataVersion,
  type QueueData,
  type RegisteredTopicConfig,
  type TopicList,
  type TopicRouteData,
} from '../net/remoting/namesrv-protocol.ts';

/** Bounds and switches of the route table; NamesrvConfig names kept where RocketMQ has them. */
export type RouteInfoOptions = {
  /** Most broker addresses (live table entries) and most broker groups. */
  readonly brokersMax: number;
  /** Most topics in the topic table. */
  readonly topicsMax: number;
  /** Serve a group's smallest-id slave as master while the master is gone (supportActingMaster). */
  readonly supportActingMaster: boolean;
  /** A registration removes the broker's topics it no longer lists (deleteTopicWithBrokerRegistration). */
  readonly deleteTopicWithBrokerRegistration: boolean;
};

/** Defaults; RocketMQ has no bounds, ours are generous for one NameServer. */
export const ROUTE_INFO_DEFAULTS = {
  brokersMax: 1_024,
  topicsMax: 100_000,
  supportActingMaster: false,
  deleteTopicWithBrokerRegistration: false,
  /** A broker silent this long is removed (RouteInfoManager.DEFAULT_BROKER_CHANNEL_EXPIRED_TIME). */
  brokerChannelExpiredMs: 120_000,
} as const satisfies RouteInfoOptions & { brokerChannelExpiredMs: number };

/** One REGISTER_BROKER, decoded. */
export type BrokerRegistration = {
  readonly clusterName: string;
  readonly brokerAddr: string;
  readonly brokerName: string;
  readonly brokerId: number;
  readonly haServerAddr: string;
  readonly zoneName: string | undefined;
  /** The broker's own expiry; undefined means brokerChannelExpiredMs. */
  readonly heartbeatTimeoutMs: number | undefined;
  /** Undefined for brokers older than 5.0, which do not send the flag. */
  readonly enableActingMaster: boolean | undefined;
  readonly topicConfigs: readonly RegisteredTopicConfig[];
  readonly dataVersion: DataVersion;
  readonly filterServerList: readonly string[] | undefined;
  readonly hasQueueMappings: boolean;
  /** Identity of the connection it came over (channelKey), for removal when that connection closes. */
  readonly channelId: string;
};

/** What a registration did. */
export type RegisterOutcome =
  /** Registered (or refreshed); a slave learns its master's addresses. */
  | {
      readonly kind: 'registered';
      readonly haServerAddr: string | undefined;
      readonly masterAddr: string | undefined;
      /** Topics left out because the topic table is full. */
      readonly topicsRefused: number;
    }
  /** Another address holds this brokerId with a newer stateVersion; RocketMQ answers SUCCESS, empty. */
  | { readonly kind: 'ignored' }
  /** RocketMQ's "register broker failed": a single-topic registration before the broker's first one. */
  | { readonly kind: 'rejected' }
  /** The broker table is full. */
  | { readonly kind: 'full'; readonly reason: string };

/** Which broker an unregistration names. */
export type BrokerIdentity = {
  readonly clusterName: string;
  readonly brokerAddr: string;
  readonly brokerName: string;
  readonly brokerId: number;
};

/** A broker address removed because it expired or its channel closed. */
export type RemovedBroker = {
  readonly clusterName: string;
  readonly brokerAddr: string;
  /** Undefined when no broker group held the address any more. */
  readonly brokerName: string | undefined;
  readonly channelId: string;
  readonly lastUpdateMs: number;
  readonly heartbeatTimeoutMs: number;
};

type BrokerGroup = {
  readonly cluster: string;
  readonly brokerName: string;
  readonly brokerAddrs: Map<number, string>;
  enableActingMaster: boolean;
  zoneName: string | undefined;
};

type LiveInfo = {
  readonly clusterName: string;
  readonly brokerAddr: string;
  lastUpdateMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly dataVersion: DataVersion;
  readonly channelId: string;
  readonly haServerAddr: string;
};

/** Key of the live and filter-server tables: (cluster, address), unambiguous for any strings. */
function addrKey(clusterName: string, brokerAddr: string): string {
  return JSON.stringify([clusterName, brokerAddr]);
}

function sameDataVersion(a: DataVersion, b: DataVersion): boolean {
  return a.stateVersion === b.stateVersion && a.timestamp === b.timestamp && a.counter === b.counter;
}

function minKey(map: ReadonlyMap<number, unknown>): number {
  let min = Number.POSITIVE_INFINITY;
  for (const id of map.keys()) if (id < min) min = id;
  return min;
}

function recordOf<V>(entries: Iterable<readonly [string, V]>): Record<string, V> {
  return Object.fromEntries(entries);
}

function brokerDataOf(group: BrokerGroup): BrokerData {
  const data: BrokerData = {
    cluster: group.cluster,
    brokerName: group.brokerName,
    brokerAddrs: recordOf([...group.brokerAddrs].sort((a, b) => a[0] - b[0]).map(([id, addr]) => [String(id), addr] as const)),
    enableActingMaster: group.enableActingMaster,
  };
  return group.zoneName === undefined ? data : { ...data, zoneName: group.zoneName };
}

/** The route table. */
export class RouteInfo {
  private readonly options: RouteInfoOptions;
  private readonly topicQueueTable = new Map<string, Map<string, QueueData>>();
  private readonly brokerAddrTable = new Map<string, BrokerGroup>();
  private readonly clusterAddrTable = new Map<string, Set<string>>();
  private readonly brokerLiveTable = new Map<string, LiveInfo>();
  private readonly filterServerTable = new Map<string, readonly string[]>();

  constructor(options: Partial<RouteInfoOptions> = {}) {
    this.options = { ...ROUTE_INFO_DEFAULTS, ...options };
    assert(Number.isSafeInteger(this.options.brokersMax) && this.options.brokersMax >= 1, 'brokersMax is positive');
    assert(Number.isSafeInteger(this.options.topicsMax) && this.options.topicsMax >= 1, 'topicsMax is positive');
  }

  // ------------------------------------------------------------------------------------------- brokers

  /** Registers a broker or refreshes it (RouteInfoManager.registerBroker). */
  registerBroker(reg: BrokerRegistration, nowMs: number): RegisterOutcome {
    assert(Number.isSafeInteger(reg.brokerId), 'brokerId is an integer');
    const liveKey = addrKey(reg.clusterName, reg.brokerAddr);
    const existing = this.brokerAddrTable.get(reg.brokerName);
    const refusal = this.capacityRefusal(liveKey, existing === undefined);
    if (refusal !== undefined) return { kind: 'full', reason: refusal };
    const group: BrokerGroup = existing ?? {
      cluster: reg.clusterName,
      brokerName: reg.brokerName,
      brokerAddrs: new Map(),
      enableActingMaster: false,
      zoneName: undefined,
    };
    const oldVersionBroker = reg.enableActingMaster === undefined;
    group.enableActingMaster = reg.enableActingMaster === true;
    group.zoneName = reg.zoneName;
    // A slave turned master (or the reverse) keeps one record per address: drop its old brokerId.
    for (const [id, addr] of group.brokerAddrs) if (addr === reg.brokerAddr && id !== reg.brokerId) group.brokerAddrs.delete(id);

    const heldBy = group.brokerAddrs.get(reg.brokerId);
    if (heldBy !== undefined && heldBy !== reg.brokerAddr) {
      const holder = this.brokerLiveTable.get(addrKey(reg.clusterName, heldBy));
      if (holder !== undefined && holder.dataVersion.stateVersion > reg.dataVersion.stateVersion) {
        this.dropIfEmpty(group);
        this.dropLiveIfUnlisted(reg.clusterName, reg.brokerAddr);
        return { kind: 'ignored' };
      }
    }
    if (!group.brokerAddrs.has(reg.brokerId) && reg.topicConfigs.length === 1) {
      this.dropIfEmpty(group);
      return { kind: 'rejected' };
    }

    if (existing === undefined) this.brokerAddrTable.set(reg.brokerName, group);
    this.clusterSet(reg.clusterName).add(reg.brokerName);
    const oldAddr = group.brokerAddrs.get(reg.brokerId);
    group.brokerAddrs.set(reg.brokerId, reg.brokerAddr);
    const registerFirst = existing === undefined || oldAddr === undefined || oldAddr === '';
    const isMaster = reg.brokerId === MASTER_ID;
    const isPrimeSlave = !oldVersionBroker && !isMaster && reg.brokerId === minKey(group.brokerAddrs);

    let topicsRefused = 0;
    if (isMaster || isPrimeSlave) topicsRefused = this.applyTopicConfigs(reg, group, registerFirst, isPrimeSlave);

    this.brokerLiveTable.set(liveKey, {
      clusterName: reg.clusterName,
      brokerAddr: reg.brokerAddr,
      lastUpdateMs: nowMs,
      heartbeatTimeoutMs: reg.heartbeatTimeoutMs ?? ROUTE_INFO_DEFAULTS.brokerChannelExpiredMs,
      dataVersion: reg.dataVersion,
      channelId: reg.channelId,
      haServerAddr: reg.haServerAddr,
    });
    if (reg.filterServerList !== undefined) {
      if (reg.filterServerList.length === 0) this.filterServerTable.delete(liveKey);
      else this.filterServerTable.set(liveKey, [...reg.filterServerList]);
    }

    const master = isMaster ? undefined : this.liveMasterOf(group, reg.clusterName);
    return { kind: 'registered', haServerAddr: master?.haServerAddr, masterAddr: master?.brokerAddr, topicsRefused };
  }

  /** Why a registration cannot be taken in, if the live table or the group table is full. */
  private capacityRefusal(liveKey: string, newGroup: boolean): string | undefined {
    if (!this.brokerLiveTable.has(liveKey) && this.brokerLiveTable.size >= this.options.brokersMax) {
      return `${this.brokerLiveTable.size} broker addresses registered, the most this NameServer keeps (brokersMax)`;
    }
    if (newGroup && this.brokerAddrTable.size >= this.options.brokersMax) {
      return `${this.brokerAddrTable.size} broker groups registered, the most this NameServer keeps (brokersMax)`;
    }
    return undefined;
  }

  /** A group's master, if it is registered and alive: what a slave is told to replicate from. */
  private liveMasterOf(group: BrokerGroup, clusterName: string): LiveInfo | undefined {
    const master = group.brokerAddrs.get(MASTER_ID);
    return master === undefined ? undefined : this.brokerLiveTable.get(addrKey(clusterName, master));
  }

  /** Applies a master's (or prime slave's) topic configs; returns how many new topics did not fit. */
  private applyTopicConfigs(reg: BrokerRegistration, group: BrokerGroup, registerFirst: boolean, isPrimeSlave: boolean): number {
    const liveKey = addrKey(reg.clusterName, reg.brokerAddr);
    const previousVersion = this.brokerLiveTable.get(liveKey)?.dataVersion;
    const versionChanged = previousVersion === undefined || !sameDataVersion(previousVersion, reg.dataVersion);
    if (this.options.deleteTopicWithBrokerRegistration && !reg.hasQueueMappings) {
      const listed = new Set(reg.topicConfigs.map((config) => config.topicName));
      for (const [topic, queues] of this.topicQueueTable) {
        if (listed.has(topic) || !queues.delete(group.brokerName)) continue;
        if (queues.size === 0) this.topicQueueTable.delete(topic);
      }
    }
    let refused = 0;
    for (const config of reg.topicConfigs) {
      const queues = this.topicQueueTable.get(config.topicName);
      const changed = registerFirst || versionChanged || queues === undefined || !queues.has(group.brokerName);
      if (!changed) continue;
      // Acting-master mode: the surviving prime slave serves reads only.
      const perm = isPrimeSlave && group.enableActingMaster ? config.perm & ~PermName.PERM_WRITE : config.perm;
      const queueData: QueueData = {
        brokerName: group.brokerName,
        readQueueNums: config.readQueueNums,
        writeQueueNums: config.writeQueueNums,
        perm,
        topicSysFlag: config.topicSysFlag,
      };
      if (!this.putQueueData(config.topicName, queueData)) refused++;
    }
    return refused;
  }

  /** Files a broker group's queues of a topic; false when the topic is new and the table is full. */
  private putQueueData(topic: string, queueData: QueueData): boolean {
    let queues = this.topicQueueTable.get(topic);
    if (queues === undefined) {
      if (this.topicQueueTable.size >= this.options.topicsMax) return false;
      queues = new Map();
      this.topicQueueTable.set(topic, queues);
    }
    queues.set(queueData.brokerName, queueData);
    return true;
  }

  private clusterSet(clusterName: string): Set<string> {
    let names = this.clusterAddrTable.get(clusterName);
    if (names === undefined) {
      names = new Set();
      this.clusterAddrTable.set(clusterName, names);
    }
    return names;
  }

  /** Removes a broker group left with no address by a refused registration. */
  private dropIfEmpty(group: BrokerGroup): void {
    if (group.brokerAddrs.size > 0 || !this.brokerAddrTable.has(group.brokerName)) return;
    this.removeBrokerName(group.brokerName);
  }

  /**
   * Forgets a broker group and its queues. RocketMQ removes the name only from the cluster the request
   * names; a group registered under two cluster names would leave a dangling name, so every cluster is
   * swept (bounded by brokersMax).
   */
  private removeBrokerName(brokerName: string): void {
    this.brokerAddrTable.delete(brokerName);
    for (const [cluster, names] of this.clusterAddrTable) {
      names.delete(brokerName);
      if (names.size === 0) this.clusterAddrTable.delete(cluster);
    }
    for (const [topic, queues] of this.topicQueueTable) {
      queues.delete(brokerName);
      if (queues.size === 0) this.topicQueueTable.delete(topic);
    }
  }

  /** Removes one broker address (RouteInfoManager.unRegisterBroker). */
  unregisterBroker(broker: BrokerIdentity): void {
    const group = this.brokerAddrTable.get(broker.brokerName);
    if (group !== undefined) this.removeAddrFromGroup(group, broker.brokerAddr);
    this.dropLiveIfUnlisted(broker.clusterName, broker.brokerAddr);
  }

  private removeAddrFromGroup(group: BrokerGroup, brokerAddr: string): void {
    for (const [id, addr] of group.brokerAddrs) if (addr === brokerAddr) group.brokerAddrs.delete(id);
    if (group.brokerAddrs.size === 0) {
      this.removeBrokerName(group.brokerName);
      return;
    }
    // The group lives on; with acting master and no master left, its queues become read-only.
    if (!group.enableActingMaster || minKey(group.brokerAddrs) <= MASTER_ID) return;
    for (const queues of this.topicQueueTable.values()) {
      const queueData = queues.get(group.brokerName);
      if (queueData !== undefined) queues.set(group.brokerName, { ...queueData, perm: queueData.perm & ~PermName.PERM_WRITE });
    }
  }

  /** The broker groups of a cluster that list an address (normally one). */
  private groupsListing(clusterName: string, brokerAddr: string): BrokerGroup[] {
    const groups: BrokerGroup[] = [];
    for (const group of this.brokerAddrTable.values()) {
      if (group.cluster !== clusterName) continue;
      for (const addr of group.brokerAddrs.values()) {
        if (addr === brokerAddr) {
          groups.push(group);
          break;
        }
      }
    }
    return groups;
  }

  /**
   * Forgets an address's live entry unless a broker group of its cluster still lists it. RocketMQ drops
   * it unconditionally, so an UNREGISTER_BROKER naming the wrong group, or a refused registration from
   * an address another group also lists, leaves that group with an address that never expires.
   */
  private dropLiveIfUnlisted(clusterName: string, brokerAddr: string): void {
    if (this.groupsListing(clusterName, brokerAddr).length > 0) return;
    const liveKey = addrKey(clusterName, brokerAddr);
    this.brokerLiveTable.delete(liveKey);
    this.filterServerTable.delete(liveKey);
  }

  /** Refreshes a broker's last-heard time (BROKER_HEARTBEAT, QUERY_DATA_VERSION); false if unknown. */
  touchBroker(clusterName: string, brokerAddr: string, nowMs: number): boolean {
    const live = this.brokerLiveTable.get(addrKey(clusterName, brokerAddr));
    if (live === undefined) return false;
    live.lastUpdateMs = nowMs;
    return true;
  }

  /** Removes brokers not heard from within their timeout (RouteInfoManager.scanNotActiveBroker). */
  scanNotActiveBrokers(nowMs: number): RemovedBroker[] {
    const expired = [...this.brokerLiveTable.values()].filter((live) => live.lastUpdateMs + live.heartbeatTimeoutMs < nowMs);
    return expired.map((live) => this.removeLive(live));
  }

  /** Removes every broker registered over a connection that closed (RouteInfoManager.onChannelDestroy). */
  channelDestroyed(channelId: string): RemovedBroker[] {
    const registered = [...this.brokerLiveTable.values()].filter((live) => live.channelId === channelId);
    return registered.map((live) => this.removeLive(live));
  }

  /** Whether any registered broker came over this connection. */
  hasChannel(channelId: string): boolean {
    for (const live of this.brokerLiveTable.values()) if (live.channelId === channelId) return true;
    return false;
  }

  /** Removes an address from every group of its cluster that lists it, then its live entry. */
  private removeLive(live: LiveInfo): RemovedBroker {
    const groups = this.groupsListing(live.clusterName, live.brokerAddr);
    for (const group of groups) this.removeAddrFromGroup(group, live.brokerAddr);
    this.dropLiveIfUnlisted(live.clusterName, live.brokerAddr);
    return {
      clusterName: live.clusterName,
      brokerAddr: live.brokerAddr,
      brokerName: groups[0]?.brokerName,
      channelId: live.channelId,
      lastUpdateMs: live.lastUpdateMs,
      heartbeatTimeoutMs: live.heartbeatTimeoutMs,
    };
  }

  /** The DataVersion a broker last registered with (queryBrokerTopicConfig). */
  brokerDataVersion(clusterName: string, brokerAddr: string): DataVersion | undefined {
    return this.brokerLiveTable.get(addrKey(clusterName, brokerAddr))?.dataVersion;
  }

  /** Whether a broker's topic configs differ from what it last registered (isBrokerTopicConfigChanged). */
  isBrokerTopicConfigChanged(clusterName: string, brokerAddr: string, dataVersion: DataVersion): boolean {
    const previous = this.brokerDataVersion(clusterName, brokerAddr);
    return previous === undefined || !sameDataVersion(previous, dataVersion);
  }

  /** A broker group's addresses; empty when unknown (getBrokerMemberGroup). */
  brokerMemberGroup(clusterName: string, brokerName: string): BrokerMemberGroup {
    const group = this.brokerAddrTable.get(brokerName);
    const brokerAddrs = group === undefined ? {} : brokerDataOf(group).brokerAddrs;
    return { cluster: clusterName, brokerName, brokerAddrs };
  }

  /** Clears (wipe) or restores (add) the write permission of a broker group's queues; returns how many. */
  setWritePermOfBroker(brokerName: string, writable: boolean): number {
    let count = 0;
    for (const queues of this.topicQueueTable.values()) {
      const queueData = queues.get(brokerName);
      if (queueData === undefined) continue;
      const perm = writable ? PermName.PERM_READ | PermName.PERM_WRITE : queueData.perm & ~PermName.PERM_WRITE;
      queues.set(brokerName, { ...queueData, perm });
      count++;
    }
    return count;
  }

  // -------------------------------------------------------------------------------------------- topics

  /** A topic's route, or undefined when no live broker group serves it (pickupTopicRouteData). */
  topicRoute(topic: string): TopicRouteData | undefined {
    const queues = this.topicQueueTable.get(topic);
    if (queues === undefined) return undefined;
    const brokerDatas: BrokerData[] = [];
    const filterServers: [string, readonly string[]][] = [];
    for (const brokerName of queues.keys()) {
      const group = this.brokerAddrTable.get(brokerName);
      if (group === undefined) continue;
      brokerDatas.push(brokerDataOf(group));
      if (this.filterServerTable.size === 0) continue;
      for (const addr of group.brokerAddrs.values()) {
        const servers = this.filterServerTable.get(addrKey(group.cluster, addr));
        if (servers !== undefined) filterServers.push([addr, servers]);
      }
    }
    if (brokerDatas.length === 0) return undefined;
    const queueDatas = [...queues.values()];
    const route = { queueDatas, brokerDatas, filterServerTable: recordOf(filterServers) };
    if (!this.options.supportActingMaster || topic.startsWith(NamesrvNames.SYNC_BROKER_MEMBER_GROUP_PREFIX)) return route;
    return { ...route, brokerDatas: brokerDatas.map((data) => this.actingMasterView(data, queueDatas)) };
  }

  /** With no master, a read-only group's smallest-id slave is shown as brokerId 0. */
  private actingMasterView(data: BrokerData, queueDatas: readonly QueueData[]): BrokerData {
    const ids = Object.keys(data.brokerAddrs).map(Number);
    if (ids.length === 0 || ids.includes(MASTER_ID) || !data.enableActingMaster) return data;
    const queueData = queueDatas.find((queue) => queue.brokerName === data.brokerName);
    if (queueData === undefined || (queueData.perm & PermName.PERM_WRITE) !== 0) return data;
    const minId = Math.min(...ids);
    const brokerAddrs = recordOf([
      [String(MASTER_ID), data.brokerAddrs[String(minId)]!] as const,
      ...Object.entries(data.brokerAddrs).filter(([id]) => Number(id) !== minId),
    ]);
    return { ...data, brokerAddrs };
  }

  /** Registers a topic's queues on known broker groups (REGISTER_TOPIC_IN_NAMESRV); false when full. */
  registerTopic(topic: string, queueDatas: readonly QueueData[]): boolean {
    if (queueDatas.length === 0) return true;
    const existing = this.topicQueueTable.get(topic);
    if (existing !== undefined) {
      // As RocketMQ: stops at the first unknown broker group, keeping the ones before it.
      for (const queueData of queueDatas) {
        if (!this.brokerAddrTable.has(queueData.brokerName)) return true;
        existing.set(queueData.brokerName, { ...queueData });
      }
      return true;
    }
    if (queueDatas.some((queueData) => !this.brokerAddrTable.has(queueData.brokerName))) return true;
    if (this.topicQueueTable.size >= this.options.topicsMax) return false;
    this.topicQueueTable.set(topic, new Map(queueDatas.map((queueData) => [queueData.brokerName, { ...queueData }])));
    return true;
  }

  /** Deletes a topic everywhere, or only from one cluster's broker groups (deleteTopic). */
  deleteTopic(topic: string, clusterName?: string): void {
    if (clusterName === undefined || clusterName === '') {
      this.topicQueueTable.delete(topic);
      return;
    }
    const names = this.clusterAddrTable.get(clusterName);
    const queues = this.topicQueueTable.get(topic);
    if (names === undefined || queues === undefined) return;
    for (const brokerName of names) queues.delete(brokerName);
    if (queues.size === 0) this.topicQueueTable.delete(topic);
  }

  /** Every topic (getAllTopicList). */
  allTopics(): TopicList {
    return { topicList: [...this.topicQueueTable.keys()] };
  }

  /** Topics served by any broker group of a cluster; empty for an unknown cluster (getTopicsByCluster). */
  topicsByCluster(clusterName: string): TopicList {
    const names = this.clusterAddrTable.get(clusterName);
    if (names === undefined) return { topicList: [] };
    const topics: string[] = [];
    for (const [topic, queues] of this.topicQueueTable) {
      for (const brokerName of names) {
        if (queues.has(brokerName)) {
          topics.push(topic);
          break;
        }
      }
    }
    return { topicList: topics };
  }

  /** Cluster and broker-group names, which are topics too, and one broker address (getSystemTopicList). */
  systemTopics(): TopicList {
    const topics = new Set<string>();
    for (const [cluster, names] of this.clusterAddrTable) {
      topics.add(cluster);
      for (const name of names) topics.add(name);
    }
    let brokerAddr: string | undefined;
    for (const group of this.brokerAddrTable.values()) {
      brokerAddr = group.brokerAddrs.values().next().value;
      if (brokerAddr !== undefined) break;
    }
    return brokerAddr === undefined ? { topicList: [...topics] } : { topicList: [...topics], brokerAddr };
  }

  /** Topics whose first broker group's topicSysFlag matches (getUnitTopics and kin). */
  topicsBySysFlag(which: 'unit' | 'unitSub' | 'unitSubNotUnit'): TopicList {
    const topics: string[] = [];
    for (const [topic, queues] of this.topicQueueTable) {
      const first = queues.values().next().value;
      if (first === undefined) continue;
      const unit = (first.topicSysFlag & TopicSysFlag.FLAG_UNIT) !== 0;
      const unitSub = (first.topicSysFlag & TopicSysFlag.FLAG_UNIT_SUB) !== 0;
      const match = which === 'unit' ? unit : which === 'unitSub' ? unitSub : unitSub && !unit;
      if (match) topics.push(topic);
    }
    return { topicList: topics };
  }

  /** Every broker group and cluster (getAllClusterInfo). */
  clusterInfo(): ClusterInfo {
    return {
      brokerAddrTable: recordOf([...this.brokerAddrTable].map(([name, group]) => [name, brokerDataOf(group)] as const)),
      clusterAddrTable: recordOf([...this.clusterAddrTable].map(([cluster, names]) => [cluster, [...names]] as const)),
    };
  }

  /** Every registered broker address with its last-heard time, for diagnostics and tests. */
  liveBrokers(): { clusterName: string; brokerAddr: string; lastUpdateMs: number; heartbeatTimeoutMs: number; channelId: string }[] {
    return [...this.brokerLiveTable.values()].map((live) => ({
      clusterName: live.clusterName,
      brokerAddr: live.brokerAddr,
      lastUpdateMs: live.lastUpdateMs,
      heartbeatTimeoutMs: live.heartbeatTimeoutMs,
      channelId: live.channelId,
    }));
  }

  /** Table sizes, for stats and tests. */
  sizes(): { readonly brokers: number; readonly brokerGroups: number; readonly clusters: number; readonly topics: number } {
    return {
      brokers: this.brokerLiveTable.size,
      brokerGroups: this.brokerAddrTable.size,
      clusters: this.clusterAddrTable.size,
      topics: this.topicQueueTable.size,
    };
  }

  /** Asserts the invariants listed at the top of this file. */
  checkInvariants(): void {
    assert(this.brokerLiveTable.size <= this.options.brokersMax, 'live table within brokersMax');
    assert(this.brokerAddrTable.size <= this.options.brokersMax, 'broker groups within brokersMax');
    assert(this.topicQueueTable.size <= this.options.topicsMax, 'topics within topicsMax');
    for (const [topic, queues] of this.topicQueueTable) {
      assert(queues.size > 0, () => `topic ${topic} has queues`);
      for (const brokerName of queues.keys()) assert(this.brokerAddrTable.has(brokerName), `topic ${topic} names a known group ${brokerName}`);
    }
    for (const [name, group] of this.brokerAddrTable) {
      assert(group.brokerAddrs.size > 0, () => `broker group ${name} has an address`);
      assert(new Set(group.brokerAddrs.values()).size === group.brokerAddrs.size, () => `broker group ${name} lists each address once`);
      assert(this.clusterAddrTable.get(group.cluster)?.has(name) === true, () => `broker group ${name} is in its cluster`);
    }
    for (const [cluster, names] of this.clusterAddrTable) {
      assert(names.size > 0, () => `cluster ${cluster} is not empty`);
      for (const name of names) assert(this.brokerAddrTable.has(name), `cluster ${cluster} names a known group ${name}`);
    }
  }
}

// -------------------------------------------------------------------------------------------- KV config

/** Bounds of the KV config table. */
export type KvConfigOptions = {
  /** Most namespaces. */
  readonly namespacesMax: number;
  /** Most entries over all namespaces. */
  readonly entriesMax: number;
};

/** Defaults of the KV config table. */
export const KV_CONFIG_DEFAULTS = { namespacesMax: 1_024, entriesMax: 100_000 } as const satisfies KvConfigOptions;

/** The persisted form (KVConfigSerializeWrapper): namespace -> key -> value. */
export type KvConfigDocument = { readonly configTable: Readonly<Record<string, Readonly<Record<string, string>>>> };

/** The NameServer's KV config (KVConfigManager). A namespace stays once created, as in RocketMQ. */
export class KvConfigTable {
  private readonly options: KvConfigOptions;
  private readonly table = new Map<string, Map<string, string>>();
  private entries = 0;

  constructor(options: Partial<KvConfigOptions> = {}) {
    this.options = { ...KV_CONFIG_DEFAULTS, ...options };
    assert(Number.isSafeInteger(this.options.namespacesMax) && this.options.namespacesMax >= 1, 'namespacesMax is positive');
    assert(Number.isSafeInteger(this.options.entriesMax) && this.options.entriesMax >= 1, 'entriesMax is positive');
  }

  /** Sets a value; false when it would add a namespace or entry past the bounds. */
  put(namespace: string, key: string, value: string): boolean {
    let kv = this.table.get(namespace);
    if (kv === undefined) {
      if (this.table.size >= this.options.namespacesMax || this.entries >= this.options.entriesMax) return false;
      kv = new Map();
      this.table.set(namespace, kv);
    }
    if (!kv.has(key)) {
      if (this.entries >= this.options.entriesMax) return false;
      this.entries++;
    }
    kv.set(key, value);
    return true;
  }

  /** A value, or undefined. */
  get(namespace: string, key: string): string | undefined {
    return this.table.get(namespace)?.get(key);
  }

  /** Removes a value; returns the value removed. */
  delete(namespace: string, key: string): string | undefined {
    const kv = this.table.get(namespace);
    const value = kv?.get(key);
    if (kv !== undefined && value !== undefined) {
      kv.delete(key);
      this.entries--;
    }
    return value;
  }

  /** A namespace's entries, or undefined when the namespace was never created. */
  list(namespace: string): Record<string, string> | undefined {
    const kv = this.table.get(namespace);
    return kv === undefined ? undefined : recordOf(kv);
  }

  /** Number of entries over all namespaces. */
  size(): number {
    return this.entries;
  }

  /** The table as kvConfig.json holds it. */
  toDocument(): KvConfigDocument {
    return { configTable: recordOf([...this.table].map(([namespace, kv]) => [namespace, recordOf(kv)] as const)) };
  }

  /** Replaces the table with a document's; false (and unchanged) when it exceeds the bounds. */
  load(document: KvConfigDocument): boolean {
    const namespaces = Object.entries(document.configTable);
    const entries = namespaces.reduce((sum, [, kv]) => sum + Object.keys(kv).length, 0);
    if (namespaces.length > this.options.namespacesMax || entries > this.options.entriesMax) return false;
    this.table.clear();
    for (const [namespace, kv] of namespaces) this.table.set(namespace, new Map(Object.entries(kv)));
    this.entries = entries;
    return true;
  }
}
