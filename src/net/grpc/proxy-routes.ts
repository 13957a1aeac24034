/**
 * Topic routes as the Proxy serves them: the NameServer's TopicRouteData, cached for a short while
 * (topicRouteServiceCacheRefreshSeconds), turned into the message queues a 5.x client sees. Every queue
 * names the broker set but the Proxy's own endpoints: clients always come back to the Proxy, which
 * forwards to the broker (RocketMQ's LOCAL and CLUSTER proxies answer the same way).
 *
 * Permissions per queue index: a queue below both the read and the write count is READ_WRITE, one below
 * only one of them READ or WRITE, each limited by the topic's perm bits.
 */
import { MASTER_ID, PermName, type TopicRouteData } from '../remoting/namesrv-protocol.ts';
import { Permission } from './enums.ts';
import type { Endpoints, MessageQueue } from './messages.ts';
import { acceptMessageTypesOf, type TopicMessageType } from './topic-message-type.ts';

const PERM_READ = PermName.PERM_READ;
const PERM_WRITE = PermName.PERM_WRITE;
const MASTER_KEY = String(MASTER_ID);
/** How long a route is served from the cache. */
export const ROUTE_CACHE_TTL_MS = 20_000;
/**
 * How long a route in which some broker set has no master is served from the cache: during a failover
 * the NameServer briefly knows no master, and the new one must be seen within a second, not a TTL.
 */
export const ROUTE_CACHE_MASTERLESS_TTL_MS = 1_000;
/** Most topics cached (topicRouteServiceCacheMaxNum). */
export const ROUTE_CACHE_TOPICS_MAX = 20_000;

/** A broker set of a route, with its master's address. */
export type RouteBroker = { readonly brokerName: string; readonly masterAddr: string | undefined };

/** A route reduced to what the Proxy needs. */
export type ProxyRoute = {
  readonly topic: string;
  readonly data: TopicRouteData;
  readonly brokers: ReadonlyMap<string, RouteBroker>;
  /** The topic's declared message type (topic-message-type.ts). */
  readonly messageType: TopicMessageType;
};

/** Builds the Proxy's view of a NameServer route. */
export function proxyRouteOf(topic: string, data: TopicRouteData, messageType: TopicMessageType): ProxyRoute {
  const brokers = new Map<string, RouteBroker>();
  for (const broker of data.brokerDatas) brokers.set(broker.brokerName, { brokerName: broker.brokerName, masterAddr: broker.brokerAddrs[MASTER_KEY] });
  return { topic, data, brokers, messageType };
}

/** The queues of a route as QueryRoute answers them. */
export function messageQueuesOf(route: ProxyRoute, endpoints: Endpoints): MessageQueue[] {
  const queues: MessageQueue[] = [];
  for (const queueData of route.data.queueDatas) {
    const broker = route.brokers.get(queueData.brokerName);
    if (broker?.masterAddr === undefined) continue;
    const total = Math.max(queueData.readQueueNums, queueData.writeQueueNums);
    for (let id = 0; id < total; id++) {
      const readable = id < queueData.readQueueNums && (queueData.perm & PERM_READ) !== 0;
      const writable = id < queueData.writeQueueNums && (queueData.perm & PERM_WRITE) !== 0;
      const permission = readable && writable ? Permission.READ_WRITE : readable ? Permission.READ : writable ? Permission.WRITE : Permission.NONE;
      queues.push({
        topic: { name: route.topic, resourceNamespace: '' },
        id,
        permission,
        broker: { name: queueData.brokerName, id: 0, endpoints },
        acceptMessageTypes: acceptMessageTypesOf(route.messageType),
      });
    }
  }
  return queues;
}

/** QueryAssignment's answer: one assignment per readable broker set, the whole broker (queue id -1). */
export function assignmentQueuesOf(route: ProxyRoute, endpoints: Endpoints): MessageQueue[] {
  const queues: MessageQueue[] = [];
  for (const queueData of route.data.queueDatas) {
    if (queueData.readQueueNums <= 0 || (queueData.perm & PERM_READ) === 0) continue;
    if (route.brokers.get(queueData.brokerName)?.masterAddr === undefined) continue;
    queues.push({
      topic: { name: route.topic, resourceNamespace: '' },
      id: -1,
      permission: (queueData.perm & PERM_WRITE) !== 0 ? Permission.READ_WRITE : Permission.READ,
      broker: { name: queueData.brokerName, id: 0, endpoints },
      acceptMessageTypes: acceptMessageTypesOf(route.messageType),
    });
  }
  return queues;
}

/** The writable (brokerName, queue count) pairs of a route, for sends. */
export function writableBrokersOf(route: ProxyRoute): { readonly broker: RouteBroker; readonly writeQueueNums: number }[] {
  const out: { broker: RouteBroker; writeQueueNums: number }[] = [];
  for (const queueData of route.data.queueDatas) {
    const broker = route.brokers.get(queueData.brokerName);
    if (broker?.masterAddr === undefined || queueData.writeQueueNums <= 0 || (queueData.perm & PERM_WRITE) === 0) continue;
    out.push({ broker, writeQueueNums: queueData.writeQueueNums });
  }
  return out;
}

/** One writable queue of a route: its broker and queue id. */
export type SendTarget = { readonly broker: RouteBroker; readonly queueId: number };

// A route is immutable once built, so its send targets are computed once per route object.
const sendTargetsMemo = new WeakMap<ProxyRoute, readonly SendTarget[]>();

/** Every writable (broker, queue id) of a route, in route order: where sends are spread. */
export function sendTargetsOf(route: ProxyRoute): readonly SendTarget[] {
  let targets = sendTargetsMemo.get(route);
  if (targets === undefined) {
    targets = writableBrokersOf(route).flatMap(({ broker, writeQueueNums }) => Array.from({ length: writeQueueNums }, (_, queueId) => ({ broker, queueId })));
    sendTargetsMemo.set(route, targets);
  }
  return targets;
}

/** A small TTL cache of routes by topic, bounded in size (oldest entry evicted first). */
export class RouteCache {
  private readonly entries = new Map<string, { route: ProxyRoute; expiresAtMs: number }>();
  private readonly ttlMs: number;
  private readonly topicsMax: number;

  constructor(ttlMs = ROUTE_CACHE_TTL_MS, topicsMax = ROUTE_CACHE_TOPICS_MAX) {
    this.ttlMs = ttlMs;
    this.topicsMax = topicsMax;
  }

  get(topic: string, nowMs: number): ProxyRoute | undefined {
    const entry = this.entries.get(topic);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= nowMs) {
      this.entries.delete(topic);
      return undefined;
    }
    return entry.route;
  }

  put(route: ProxyRoute, nowMs: number): void {
    this.entries.delete(route.topic);
    if (this.entries.size >= this.topicsMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    const masterless = [...route.brokers.values()].some((broker) => broker.masterAddr === undefined);
    const ttlMs = masterless ? Math.min(this.ttlMs, ROUTE_CACHE_MASTERLESS_TTL_MS) : this.ttlMs;
    this.entries.set(route.topic, { route, expiresAtMs: nowMs + ttlMs });
  }

  forget(topic: string): void {
    this.entries.delete(topic);
  }

  /**
   * Forgets every route whose master is `addr` (it stopped answering, or answered as a non-master), so
   * the next call asks the NameServer again and follows a failover instead of waiting out the TTL.
   */
  forgetBroker(addr: string): void {
    for (const [topic, entry] of this.entries) {
      for (const broker of entry.route.brokers.values()) {
        if (broker.masterAddr === addr) {
          this.entries.delete(topic);
          break;
        }
      }
    }
  }

  /** Finds a broker set's master address in any cached route. */
  brokerAddr(brokerName: string, nowMs: number): string | undefined {
    for (const [topic, entry] of this.entries) {
      if (entry.expiresAtMs <= nowMs) {
        this.entries.delete(topic);
        continue;
      }
      const addr = entry.route.brokers.get(brokerName)?.masterAddr;
      if (addr !== undefined) return addr;
    }
    return undefined;
  }
}
