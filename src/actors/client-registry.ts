/**
 * Who is connected to the broker: RocketMQ's ConsumerManager (with its ConsumerGroupInfo and
 * ClientChannelInfo), ProducerManager and RebalanceLockManager, as plain synchronous data that the
 * broker-admin actor owns. Nothing here does I/O or reads a clock: callers pass `nowMs`, and the actor
 * turns the outcomes into pushes (NOTIFY_CONSUMER_IDS_CHANGED) and answers.
 *
 * A client is known by the connection it heartbeats on (RocketMQ keys its tables by Netty Channel; we key
 * them by channelKey(channel), which is unique per acceptor and connection). One connection may carry
 * several groups, and one group several connections.
 *
 * Bounds: consumer groups online, producer groups, connections per group, subscriptions per group and
 * queue locks are all capped by the limits given at construction. A registration past a bound is refused
 * (the caller answers the client with an error), never grown into.
 *
 * Deliberate differences from RocketMQ: a group's heartbeat fingerprint is forgotten when its last
 * client leaves (RocketMQ keeps it forever, unbounded); expired queue locks are swept by `sweep`
 * (RocketMQ only overwrites them, so its table only grows).
 */
import { assert } from '../runtime/assert.ts';
import type { LanguageName } from '../net/remoting/remoting-command.ts';
import type {
  ConsumeFromWhere,
  ConsumeType,
  MessageModel,
  MessageQueue,
  SubscriptionData,
} from '../net/remoting/broker-bodies.ts';
import { channelKey, type RemotingChannel } from './remoting-routes.ts';

/** How big the registry may grow. */
export type ClientRegistryLimits = {
  /** Consumer groups with at least one client online. */
  readonly consumerGroupsMax: number;
  /** Producer groups with at least one client online. */
  readonly producerGroupsMax: number;
  /** Connections in one consumer or producer group. */
  readonly clientsPerGroupMax: number;
  /** Topics one consumer group subscribes to. */
  readonly subscriptionsPerGroupMax: number;
};

/** One client connection of a group (ClientChannelInfo). */
export type ClientChannelInfo = {
  readonly channel: RemotingChannel;
  readonly clientId: string;
  readonly language: LanguageName;
  /** The client's MQVersion ordinal, from its request header. */
  readonly version: number;
  /** Last heartbeat, ms. */
  lastUpdateMs: number;
};

/** A client as a heartbeat introduces it. */
export type ClientIdentity = Omit<ClientChannelInfo, 'lastUpdateMs'>;

/** One consumer group online (ConsumerGroupInfo). */
export type ConsumerGroupInfo = {
  readonly groupName: string;
  consumeType: ConsumeType | undefined;
  messageModel: MessageModel | undefined;
  consumeFromWhere: ConsumeFromWhere | undefined;
  /** channelKey -> client. */
  readonly channels: Map<string, ClientChannelInfo>;
  /** topic -> subscription. */
  readonly subscriptions: Map<string, SubscriptionData>;
  lastUpdateMs: number;
};

/** What a consumer heartbeat registers for one group. */
export type ConsumerRegistration = {
  readonly group: string;
  readonly client: ClientIdentity;
  readonly consumeType: ConsumeType | undefined;
  readonly messageModel: MessageModel | undefined;
  readonly consumeFromWhere: ConsumeFromWhere | undefined;
  /** The group's subscriptions; undefined for a heartbeat V2 sent without them (registerConsumerWithoutSub). */
  readonly subscriptions: readonly SubscriptionData[] | undefined;
};

/** The outcome of registering a consumer. */
export type ConsumerRegisterOutcome =
  | { readonly kind: 'refused'; readonly reason: string }
  | {
      readonly kind: 'registered';
      /** A connection new to the group (RocketMQ's r1). */
      readonly channelAdded: boolean;
      /** A topic subscribed or unsubscribed (RocketMQ's r2). */
      readonly subscriptionChanged: boolean;
    };

/** A client removed from a group, and whether the group is now empty (and so forgotten). */
export type RemovedClient = {
  readonly group: string;
  readonly client: ClientChannelInfo;
  readonly groupRemoved: boolean;
};

/** What one connection's close or expiry removed. */
export type RemovedClients = { readonly consumers: RemovedClient[]; readonly producers: RemovedClient[] };

function checkLimits(limits: ClientRegistryLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    assert(Number.isSafeInteger(value) && value >= 1, () => `${name} must be a positive integer, got ${value}`);
  }
}

/** Consumer and producer groups online, by group and by connection. */
export class ClientRegistry {
  private readonly limits: ClientRegistryLimits;
  private readonly consumers = new Map<string, ConsumerGroupInfo>();
  private readonly producers = new Map<string, Map<string, ClientChannelInfo>>();
  /** channelKey -> consumer groups it is in; kept equal to the union of `consumers[*].channels`. */
  private readonly consumerGroupsByChannel = new Map<string, Set<string>>();
  private readonly producerGroupsByChannel = new Map<string, Set<string>>();
  /** Group -> the heartbeat V2 fingerprint last seen (ClientManageProcessor.consumerGroupHeartbeatTable). */
  private readonly fingerprints = new Map<string, number>();

  constructor(limits: ClientRegistryLimits) {
    checkLimits(limits);
    this.limits = limits;
  }

  // ------------------------------------------------------------------------------------------ consumers

  /** Registers (or refreshes) a consumer client in its group (ConsumerManager.registerConsumer). */
  registerConsumer(registration: ConsumerRegistration, nowMs: number): ConsumerRegisterOutcome {
    const subscriptions = registration.subscriptions;
    if (subscriptions !== undefined && subscriptions.length > this.limits.subscriptionsPerGroupMax) {
      return { kind: 'refused', reason: `${subscriptions.length} subscriptions, over subscriptionsPerGroupMax ${this.limits.subscriptionsPerGroupMax}` };
    }
    const key = channelKey(registration.client.channel);
    let info = this.consumers.get(registration.group);
    if (info === undefined) {
      if (this.consumers.size >= this.limits.consumerGroupsMax) {
        return { kind: 'refused', reason: `${this.consumers.size} consumer groups online, the bound consumerGroupsMax` };
      }
    } else if (!info.channels.has(key) && info.channels.size >= this.limits.clientsPerGroupMax) {
      return { kind: 'refused', reason: `group ${registration.group} has ${info.channels.size} clients, the bound clientsPerGroupMax` };
    }
    if (info === undefined) {
      info = {
        groupName: registration.group,
        consumeType: registration.consumeType,
        messageModel: registration.messageModel,
        consumeFromWhere: registration.consumeFromWhere,
        channels: new Map(),
        subscriptions: new Map(),
        lastUpdateMs: nowMs,
      };
      this.consumers.set(registration.group, info);
    }
    const channelAdded = updateChannel(info, registration, key, nowMs);
    if (channelAdded) addToIndex(this.consumerGroupsByChannel, key, registration.group);
    const subscriptionChanged = subscriptions === undefined ? false : updateSubscriptions(info, subscriptions);
    info.lastUpdateMs = nowMs;
    return { kind: 'registered', channelAdded, subscriptionChanged };
  }

  /** Removes one connection from a consumer group (unregisterConsumer); undefined when the group is not online. */
  unregisterConsumer(group: string, channel: RemotingChannel): { readonly removed: boolean; readonly groupRemoved: boolean } | undefined {
    const info = this.consumers.get(group);
    if (info === undefined) return undefined;
    const key = channelKey(channel);
    const removed = info.channels.delete(key);
    if (removed) removeFromIndex(this.consumerGroupsByChannel, key, group);
    const groupRemoved = info.channels.size === 0;
    if (groupRemoved) this.forgetConsumerGroup(group);
    return { removed, groupRemoved };
  }

  /** The consumer group online, or undefined. */
  consumerGroup(group: string): Readonly<ConsumerGroupInfo> | undefined {
    return this.consumers.get(group);
  }

  /** Client ids of a group's consumers, in registration order (getAllClientId). */
  consumerIds(group: string): string[] {
    const info = this.consumers.get(group);
    return info === undefined ? [] : Array.from(info.channels.values(), (client) => client.clientId);
  }

  /** A group's subscription of a topic, or undefined. */
  findSubscription(group: string, topic: string): SubscriptionData | undefined {
    return this.consumers.get(group)?.subscriptions.get(topic);
  }

  /** Every consumer group online. */
  consumerGroups(): IterableIterator<Readonly<ConsumerGroupInfo>> {
    return this.consumers.values();
  }

  /** The heartbeat V2 fingerprint last recorded for a group. */
  heartbeatFingerprint(group: string): number | undefined {
    return this.fingerprints.get(group);
  }

  /** Records a group's fingerprint; only for groups online (so the table is bounded by them). */
  setHeartbeatFingerprint(group: string, fingerprint: number): void {
    if (this.consumers.has(group)) this.fingerprints.set(group, fingerprint);
  }

  private forgetConsumerGroup(group: string): void {
    const info = this.consumers.get(group);
    assert(info !== undefined && info.channels.size === 0, () => `forgetting consumer group ${group} that still has clients`);
    this.consumers.delete(group);
    this.fingerprints.delete(group);
  }

  // ------------------------------------------------------------------------------------------ producers

  /** Registers (or refreshes) a producer client (ProducerManager.registerProducer); false when a bound refuses it. */
  registerProducer(group: string, client: ClientIdentity, nowMs: number): boolean {
    const key = channelKey(client.channel);
    let channels = this.producers.get(group);
    if (channels === undefined) {
      if (this.producers.size >= this.limits.producerGroupsMax) return false;
      channels = new Map();
      this.producers.set(group, channels);
    }
    const existing = channels.get(key);
    if (existing !== undefined && existing.clientId === client.clientId) {
      existing.lastUpdateMs = nowMs;
      return true;
    }
    if (existing === undefined && channels.size >= this.limits.clientsPerGroupMax) return false;
    channels.set(key, { ...client, lastUpdateMs: nowMs });
    addToIndex(this.producerGroupsByChannel, key, group);
    return true;
  }

  /** Removes a producer connection from its group; true when it was there. */
  unregisterProducer(group: string, channel: RemotingChannel): boolean {
    const channels = this.producers.get(group);
    if (channels === undefined) return false;
    const key = channelKey(channel);
    const removed = channels.delete(key);
    if (removed) removeFromIndex(this.producerGroupsByChannel, key, group);
    if (channels.size === 0) this.producers.delete(group);
    return removed;
  }

  /** A producer group's connections, or undefined. */
  producerGroup(group: string): ReadonlyMap<string, ClientChannelInfo> | undefined {
    return this.producers.get(group);
  }

  // ------------------------------------------------------------------------------------------ connections

  /** Forgets every group membership of a closed connection (doChannelCloseEvent of both managers). */
  channelClosed(channel: RemotingChannel): RemovedClients {
    return this.removeConnection(channelKey(channel));
  }

  /**
   * Removes the clients not heard from within `expiredTimeoutMs` (scanNotActiveChannel of both managers).
   * Each removed connection is reported once per group it was in.
   */
  expire(nowMs: number, expiredTimeoutMs: number): RemovedClients {
    const stale = new Set<string>();
    for (const info of this.consumers.values()) {
      for (const [key, client] of info.channels) if (nowMs - client.lastUpdateMs > expiredTimeoutMs) stale.add(key);
    }
    for (const channels of this.producers.values()) {
      for (const [key, client] of channels) if (nowMs - client.lastUpdateMs > expiredTimeoutMs) stale.add(key);
    }
    const removed: RemovedClients = { consumers: [], producers: [] };
    for (const key of stale) {
      const one = this.removeStale(key, nowMs, expiredTimeoutMs);
      removed.consumers.push(...one.consumers);
      removed.producers.push(...one.producers);
    }
    return removed;
  }

  /** Sizes, for the status view and tests. */
  sizes(): { readonly consumerGroups: number; readonly producerGroups: number; readonly connections: number } {
    const connections = new Set([...this.consumerGroupsByChannel.keys(), ...this.producerGroupsByChannel.keys()]);
    return { consumerGroups: this.consumers.size, producerGroups: this.producers.size, connections: connections.size };
  }

  private removeConnection(key: string): RemovedClients {
    return this.removeStale(key, Number.POSITIVE_INFINITY, -1);
  }

  /** Removes the memberships of connection `key` whose last heartbeat is older than the timeout. */
  private removeStale(key: string, nowMs: number, expiredTimeoutMs: number): RemovedClients {
    const isStale = (client: ClientChannelInfo): boolean => nowMs - client.lastUpdateMs > expiredTimeoutMs;
    const consumers: RemovedClient[] = [];
    for (const group of [...(this.consumerGroupsByChannel.get(key) ?? [])]) {
      const info = this.consumers.get(group);
      const client = info?.channels.get(key);
      assert(info !== undefined && client !== undefined, () => `channel index names group ${group} without the channel`);
      if (!isStale(client)) continue;
      info.channels.delete(key);
      removeFromIndex(this.consumerGroupsByChannel, key, group);
      const groupRemoved = info.channels.size === 0;
      if (groupRemoved) this.forgetConsumerGroup(group);
      consumers.push({ group, client, groupRemoved });
    }
    const producers: RemovedClient[] = [];
    for (const group of [...(this.producerGroupsByChannel.get(key) ?? [])]) {
      const channels = this.producers.get(group);
      const client = channels?.get(key);
      assert(channels !== undefined && client !== undefined, () => `channel index names producer group ${group} without the channel`);
      if (!isStale(client)) continue;
      channels.delete(key);
      removeFromIndex(this.producerGroupsByChannel, key, group);
      const groupRemoved = channels.size === 0;
      if (groupRemoved) this.producers.delete(group);
      producers.push({ group, client, groupRemoved });
    }
    return { consumers, producers };
  }
}

/** ConsumerGroupInfo.updateChannel: true when the connection is new to the group. */
function updateChannel(info: ConsumerGroupInfo, registration: ConsumerRegistration, key: string, nowMs: number): boolean {
  info.consumeType = registration.consumeType;
  info.messageModel = registration.messageModel;
  info.consumeFromWhere = registration.consumeFromWhere;
  const old = info.channels.get(key);
  if (old !== undefined && old.clientId === registration.client.clientId) {
    old.lastUpdateMs = nowMs;
    return false;
  }
  // A connection that changes its client id is replaced in place, as RocketMQ does (and is not "new").
  info.channels.set(key, { ...registration.client, lastUpdateMs: nowMs });
  return old === undefined;
}

/**
 * ConsumerGroupInfo.updateSubscription: adds new topics, replaces a subscription whose subVersion grew,
 * drops topics no longer subscribed; true when a topic was added or dropped.
 */
function updateSubscriptions(info: ConsumerGroupInfo, subscriptions: readonly SubscriptionData[]): boolean {
  let changed = false;
  const topics = new Set<string>();
  for (const sub of subscriptions) {
    topics.add(sub.topic);
    const old = info.subscriptions.get(sub.topic);
    if (old === undefined) {
      info.subscriptions.set(sub.topic, sub);
      changed = true;
    } else if (sub.subVersion > old.subVersion) {
      info.subscriptions.set(sub.topic, sub);
    }
  }
  for (const topic of [...info.subscriptions.keys()]) {
    if (topics.has(topic)) continue;
    info.subscriptions.delete(topic);
    changed = true;
  }
  return changed;
}

function addToIndex(index: Map<string, Set<string>>, key: string, group: string): void {
  let groups = index.get(key);
  if (groups === undefined) {
    groups = new Set();
    index.set(key, groups);
  }
  groups.add(group);
}

function removeFromIndex(index: Map<string, Set<string>>, key: string, group: string): void {
  const groups = index.get(key);
  if (groups === undefined) return;
  groups.delete(group);
  if (groups.size === 0) index.delete(key);
}

// ---------------------------------------------------------------------------------------------------------
// Queue locks (RebalanceLockManager), for orderly consumers.

/** RocketMQ's lock lifetime (rocketmq.broker.rebalance.lockMaxLiveTime): 60 s without renewal. */
export const REBALANCE_LOCK_MAX_LIVE_MS = 60_000;

type LockEntry = { readonly mq: MessageQueue; clientId: string; lastUpdateMs: number };

function queueKey(mq: MessageQueue): string {
  return `${mq.brokerName}\u0001${mq.topic}\u0001${mq.queueId}`;
}

/**
 * Which client of a consumer group holds which queue. A lock lives `lockMaxLiveMs` after its last
 * renewal; an expired lock is taken over by the next client that asks. At most `locksMax` locks exist;
 * a queue that would need one more is simply not locked (the client retries at its next rebalance).
 */
export class QueueLockTable {
  private readonly locksMax: number;
  private readonly lockMaxLiveMs: number;
  private readonly groups = new Map<string, Map<string, LockEntry>>();
  private count = 0;

  constructor(options: { readonly locksMax: number; readonly lockMaxLiveMs: number }) {
    assert(Number.isSafeInteger(options.locksMax) && options.locksMax >= 1, 'locksMax must be a positive integer');
    assert(Number.isSafeInteger(options.lockMaxLiveMs) && options.lockMaxLiveMs >= 1, 'lockMaxLiveMs must be a positive integer');
    this.locksMax = options.locksMax;
    this.lockMaxLiveMs = options.lockMaxLiveMs;
  }

  /** Locks what it can of `mqs` for `clientId` (tryLockBatch); returns the queues it now holds. */
  tryLockBatch(group: string, mqs: readonly MessageQueue[], clientId: string, nowMs: number): MessageQueue[] {
    const locked: MessageQueue[] = [];
    const seen = new Set<string>();
    for (const mq of mqs) {
      const key = queueKey(mq);
      if (seen.has(key)) continue;
      seen.add(key);
      if (this.tryLock(group, key, mq, clientId, nowMs)) locked.push(mq);
    }
    return locked;
  }

  /** Releases the queues `clientId` holds among `mqs` (unlockBatch); locks of other clients stay. */
  unlockBatch(group: string, mqs: readonly MessageQueue[], clientId: string): void {
    const entries = this.groups.get(group);
    if (entries === undefined) return;
    for (const mq of mqs) {
      const key = queueKey(mq);
      const entry = entries.get(key);
      if (entry === undefined || entry.clientId !== clientId) continue;
      entries.delete(key);
      this.count--;
    }
    if (entries.size === 0) this.groups.delete(group);
    assert(this.count >= 0, 'lock count went negative');
  }

  /** Whether no lock of the group is alive (isLockAllExpired): orderly groups send retries to the DLQ. */
  isLockAllExpired(group: string, nowMs: number): boolean {
    for (const entry of this.groups.get(group)?.values() ?? []) if (!this.expired(entry, nowMs)) return false;
    return true;
  }

  /** The client holding a live lock on the queue, or undefined. */
  holder(group: string, mq: MessageQueue, nowMs: number): string | undefined {
    const entry = this.groups.get(group)?.get(queueKey(mq));
    return entry === undefined || this.expired(entry, nowMs) ? undefined : entry.clientId;
  }

  /** Drops expired locks; returns how many. */
  sweep(nowMs: number): number {
    let dropped = 0;
    for (const [group, entries] of this.groups) {
      for (const [key, entry] of entries) {
        if (!this.expired(entry, nowMs)) continue;
        entries.delete(key);
        dropped++;
      }
      if (entries.size === 0) this.groups.delete(group);
    }
    this.count -= dropped;
    assert(this.count >= 0, 'lock count went negative');
    return dropped;
  }

  /** Number of locks held (alive or not yet swept). */
  get size(): number {
    return this.count;
  }

  private expired(entry: LockEntry, nowMs: number): boolean {
    return nowMs - entry.lastUpdateMs > this.lockMaxLiveMs;
  }

  private tryLock(group: string, key: string, mq: MessageQueue, clientId: string, nowMs: number): boolean {
    let entries = this.groups.get(group);
    const entry = entries?.get(key);
    if (entry !== undefined) {
      if (entry.clientId !== clientId && !this.expired(entry, nowMs)) return false;
      entry.clientId = clientId;
      entry.lastUpdateMs = nowMs;
      return true;
    }
    if (this.count >= this.locksMax) return false;
    if (entries === undefined) {
      entries = new Map();
      this.groups.set(group, entries);
    }
    entries.set(key, { mq, clientId, lastUpdateMs: nowMs });
    this.count++;
    return true;
  }
}
