import { describe, expect, it } from 'vitest';
import type { SubscriptionData } from '../../src/net/remoting/broker-bodies.ts';
import {
  ClientRegistry,
  type ClientIdentity,
  type ClientRegistryLimits,
  type ConsumerRegistration,
  QueueLockTable,
} from '../../src/actors/client-registry.ts';
import type { RemotingChannel } from '../../src/actors/remoting-routes.ts';

const LIMITS: ClientRegistryLimits = { consumerGroupsMax: 4, producerGroupsMax: 2, clientsPerGroupMax: 3, subscriptionsPerGroupMax: 2 };

function channel(connectionId: number, slot = 7): RemotingChannel {
  return { acceptor: { slot, name: `acceptor-${slot}` }, connectionId, remoteAddress: `10.0.0.1:${40_000 + connectionId}`, localAddress: '127.0.0.1:10911' };
}

function client(connectionId: number, clientId = `client-${connectionId}`): ClientIdentity {
  return { channel: channel(connectionId), clientId, language: 'JAVA', version: 479 };
}

function sub(topic: string, subVersion = 1, subString = '*'): SubscriptionData {
  return { classFilterMode: false, topic, subString, tagsSet: [], codeSet: [], subVersion, expressionType: 'TAG' };
}

function consumer(group: string, who: ClientIdentity, subscriptions: SubscriptionData[] | undefined = [sub('T')]): ConsumerRegistration {
  return { group, client: who, consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING', consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', subscriptions };
}

describe('ClientRegistry', () => {
  it('reports a new connection and a changed subscription set, not a plain refresh', () => {
    const registry = new ClientRegistry(LIMITS);
    expect(registry.registerConsumer(consumer('G', client(1)), 1_000)).toEqual({ kind: 'registered', channelAdded: true, subscriptionChanged: true });
    expect(registry.registerConsumer(consumer('G', client(1)), 2_000)).toEqual({ kind: 'registered', channelAdded: false, subscriptionChanged: false });
    // A newer subVersion replaces the subscription but is not a membership change (ConsumerGroupInfo.updateSubscription).
    expect(registry.registerConsumer(consumer('G', client(1), [sub('T', 5, 'a')]), 2_500)).toMatchObject({ subscriptionChanged: false });
    expect(registry.findSubscription('G', 'T')?.subString).toBe('a');
    expect(registry.registerConsumer(consumer('G', client(1), [sub('U')]), 3_000)).toMatchObject({ channelAdded: false, subscriptionChanged: true });
    expect(registry.findSubscription('G', 'T')).toBeUndefined();
    expect(registry.registerConsumer(consumer('G', client(2)), 3_000)).toMatchObject({ channelAdded: true });
    expect(registry.consumerIds('G')).toEqual(['client-1', 'client-2']);
  });

  it('keeps subscriptions when a V2 heartbeat comes without them', () => {
    const registry = new ClientRegistry(LIMITS);
    registry.registerConsumer(consumer('G', client(1), [sub('T')]), 1_000);
    expect(registry.registerConsumer(consumer('G', client(1), undefined), 2_000)).toEqual({ kind: 'registered', channelAdded: false, subscriptionChanged: false });
    expect(registry.findSubscription('G', 'T')).toBeDefined();
  });

  it('forgets a closed connection in every group it was in, and an emptied group with its fingerprint', () => {
    const registry = new ClientRegistry(LIMITS);
    registry.registerConsumer(consumer('A', client(1)), 1_000);
    registry.registerConsumer(consumer('B', client(1)), 1_000);
    registry.registerConsumer(consumer('B', client(2)), 1_000);
    registry.registerProducer('P', client(1), 1_000);
    registry.setHeartbeatFingerprint('A', 42);
    const removed = registry.channelClosed(channel(1));
    expect(removed.consumers.map((gone) => [gone.group, gone.groupRemoved])).toEqual([['A', true], ['B', false]]);
    expect(removed.producers.map((gone) => gone.group)).toEqual(['P']);
    expect(registry.consumerGroup('A')).toBeUndefined();
    expect(registry.heartbeatFingerprint('A')).toBeUndefined();
    expect(registry.consumerIds('B')).toEqual(['client-2']);
    expect(registry.sizes()).toEqual({ consumerGroups: 1, producerGroups: 0, connections: 1 });
    expect(registry.channelClosed(channel(1))).toEqual({ consumers: [], producers: [] });
  });

  it('expires only the clients silent past the timeout', () => {
    const registry = new ClientRegistry(LIMITS);
    registry.registerConsumer(consumer('G', client(1)), 0);
    registry.registerConsumer(consumer('G', client(2)), 0);
    registry.registerProducer('P', client(3), 0);
    registry.registerConsumer(consumer('G', client(2)), 100_000);
    expect(registry.expire(120_000, 120_000)).toEqual({ consumers: [], producers: [] });
    const removed = registry.expire(120_001, 120_000);
    expect(removed.consumers.map((gone) => gone.client.clientId)).toEqual(['client-1']);
    expect(removed.producers.map((gone) => gone.client.clientId)).toEqual(['client-3']);
    expect(registry.consumerIds('G')).toEqual(['client-2']);
  });

  it('refuses growth past its bounds instead of growing', () => {
    const registry = new ClientRegistry(LIMITS);
    expect(registry.registerConsumer(consumer('G', client(1), [sub('A'), sub('B'), sub('C')]), 0)).toMatchObject({ kind: 'refused' });
    for (const id of [1, 2, 3]) expect(registry.registerConsumer(consumer('G', client(id)), 0).kind).toBe('registered');
    expect(registry.registerConsumer(consumer('G', client(4)), 0)).toMatchObject({ kind: 'refused' });
    for (const group of ['H', 'I', 'J']) expect(registry.registerConsumer(consumer(group, client(1)), 0).kind).toBe('registered');
    expect(registry.registerConsumer(consumer('K', client(1)), 0)).toMatchObject({ kind: 'refused' });
    expect(registry.registerProducer('P1', client(1), 0)).toBe(true);
    expect(registry.registerProducer('P2', client(1), 0)).toBe(true);
    expect(registry.registerProducer('P3', client(1), 0)).toBe(false);
  });

  it('unregisters one consumer connection and says whether the group went away', () => {
    const registry = new ClientRegistry(LIMITS);
    registry.registerConsumer(consumer('G', client(1)), 0);
    registry.registerConsumer(consumer('G', client(2)), 0);
    expect(registry.unregisterConsumer('G', channel(1))).toEqual({ removed: true, groupRemoved: false });
    expect(registry.unregisterConsumer('G', channel(1))).toEqual({ removed: false, groupRemoved: false });
    expect(registry.unregisterConsumer('G', channel(2))).toEqual({ removed: true, groupRemoved: true });
    expect(registry.unregisterConsumer('G', channel(2))).toBeUndefined();
  });
});

describe('QueueLockTable', () => {
  const mq = (queueId: number) => ({ topic: 'T', brokerName: 'broker-a', queueId });

  it('gives a queue to one client until its lock expires, then to the next asker', () => {
    const locks = new QueueLockTable({ locksMax: 100, lockMaxLiveMs: 60_000 });
    expect(locks.tryLockBatch('G', [mq(0), mq(1)], 'c1', 0)).toEqual([mq(0), mq(1)]);
    expect(locks.tryLockBatch('G', [mq(1), mq(2)], 'c2', 30_000)).toEqual([mq(2)]);
    expect(locks.tryLockBatch('G', [mq(0)], 'c1', 50_000)).toEqual([mq(0)]);
    // mq(1) was last renewed at 0: expired after 60 s.
    expect(locks.tryLockBatch('G', [mq(0), mq(1)], 'c2', 60_001)).toEqual([mq(1)]);
    expect(locks.holder('G', mq(0), 60_001)).toBe('c1');
    expect(locks.isLockAllExpired('G', 60_001)).toBe(false);
    expect(locks.isLockAllExpired('G', 200_000)).toBe(true);
    expect(locks.tryLockBatch('other-group', [mq(0)], 'c2', 60_001)).toEqual([mq(0)]);
  });

  it('unlocks only the holder, sweeps expired locks, and stops at locksMax', () => {
    const locks = new QueueLockTable({ locksMax: 2, lockMaxLiveMs: 1_000 });
    locks.tryLockBatch('G', [mq(0), mq(1)], 'c1', 0);
    expect(locks.tryLockBatch('G', [mq(2)], 'c1', 0)).toEqual([]);
    locks.unlockBatch('G', [mq(0)], 'c2');
    expect(locks.holder('G', mq(0), 0)).toBe('c1');
    locks.unlockBatch('G', [mq(0)], 'c1');
    expect(locks.size).toBe(1);
    expect(locks.sweep(500)).toBe(0);
    expect(locks.sweep(1_001)).toBe(1);
    expect(locks.size).toBe(0);
  });
});
