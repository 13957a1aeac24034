import { describe, expect, it } from 'vitest';
import { ControllerState, type ControllerStateOptions, type Heartbeat } from '../../src/actors/controller-state.ts';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';

const T0 = 1_700_000_000_000;
const CLUSTER = 'DefaultCluster';
const BROKER = 'broker-a';
const TIMEOUT = 10_000;

function options(overrides: Partial<ControllerStateOptions> = {}): ControllerStateOptions {
  return { enableElectUncleanMaster: false, brokerSetsMax: 8, replicasPerSetMax: 8, liveBrokersMax: 32, ...overrides };
}

const addr = (id: number): string => `10.0.0.${id}:10911`;

function beat(state: ControllerState, id: number, nowMs: number, extra: Partial<Heartbeat> = {}): number {
  return state.heartbeat({ clusterName: CLUSTER, brokerName: BROKER, brokerAddr: addr(id), brokerId: id, heartbeatTimeoutMs: TIMEOUT, ...extra }, nowMs).code;
}

/** Applies ids 1..n, heartbeats them all, and lets broker 1 win the first election. */
function threeReplicas(overrides: Partial<ControllerStateOptions> = {}, n = 3): ControllerState {
  const state = new ControllerState(options(overrides));
  for (let id = 1; id <= n; id++) {
    expect(state.applyBrokerId(CLUSTER, BROKER, id, `${addr(id)};${T0}`).code).toBe(ResponseCode.SUCCESS);
    expect(beat(state, id, T0)).toBe(ResponseCode.SUCCESS);
  }
  expect(state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 1, designateElect: false }, T0).code).toBe(ResponseCode.SUCCESS);
  state.takeEffects();
  return state;
}

/** Broker 1 is master of {1, 2, 3} at masterEpoch 1 and syncStateSetEpoch 2. */
function withFullSyncStateSet(overrides: Partial<ControllerStateOptions> = {}): ControllerState {
  const state = threeReplicas(overrides);
  const altered = state.alterSyncStateSet({ brokerName: BROKER, masterBrokerId: 1, masterEpoch: 1 }, { syncStateSet: [1, 2, 3], syncStateSetEpoch: 1 }, T0);
  expect(altered).toMatchObject({ code: ResponseCode.SUCCESS, newSyncStateSetEpoch: 2, syncStateSet: [1, 2, 3] });
  state.takeEffects();
  return state;
}

describe('ControllerState broker ids', () => {
  it('hands out ids from 1 and accepts only id 1 for a new broker set', () => {
    const state = new ControllerState(options());
    expect(state.getNextBrokerId(BROKER).nextBrokerId).toBe(1);
    expect(state.applyBrokerId(CLUSTER, BROKER, 2, `${addr(2)};1`).code).toBe(ResponseCode.CONTROLLER_BROKER_ID_INVALID);
    expect(state.takeEffects().durable).toBe(false);
    expect(state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`).code).toBe(ResponseCode.SUCCESS);
    expect(state.takeEffects().durable).toBe(true);
    expect(state.getNextBrokerId(BROKER).nextBrokerId).toBe(2);
    expect(state.brokerSet(BROKER)?.replicas.get(1)?.brokerAddress).toBe(addr(1));
  });

  it('lets the same broker re-apply its id (no change) but refuses another broker the same id', () => {
    const state = new ControllerState(options());
    state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`);
    state.takeEffects();
    expect(state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`).code).toBe(ResponseCode.SUCCESS);
    expect(state.takeEffects().durable).toBe(false);
    expect(state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(9)};2`).code).toBe(ResponseCode.CONTROLLER_BROKER_ID_INVALID);
    expect(state.applyBrokerId(CLUSTER, BROKER, 0, `${addr(9)};2`).code).toBe(ResponseCode.CONTROLLER_BROKER_ID_INVALID);
  });

  it('keeps nextAssignBrokerId above every applied id', () => {
    const state = new ControllerState(options());
    state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`);
    expect(state.applyBrokerId(CLUSTER, BROKER, 5, `${addr(5)};1`).code).toBe(ResponseCode.SUCCESS);
    expect(state.getNextBrokerId(BROKER).nextBrokerId).toBe(6);
    state.checkInvariants();
  });

  it('refuses a new broker set or replica beyond its bound with SYSTEM_BUSY', () => {
    const state = new ControllerState(options({ brokerSetsMax: 1, replicasPerSetMax: 1 }));
    expect(state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`).code).toBe(ResponseCode.SUCCESS);
    expect(state.applyBrokerId(CLUSTER, 'broker-b', 1, `${addr(1)};1`).code).toBe(ResponseCode.SYSTEM_BUSY);
    expect(state.applyBrokerId(CLUSTER, BROKER, 2, `${addr(2)};1`).code).toBe(ResponseCode.SYSTEM_BUSY);
  });
});

describe('ControllerState registration and heartbeats', () => {
  it('asks unknown brokers to register first', () => {
    const state = new ControllerState(options());
    const request = { clusterName: CLUSTER, brokerName: BROKER, brokerId: 1, brokerAddress: addr(1) };
    expect(state.registerBroker(request, T0).code).toBe(ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED);
    state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`);
    expect(state.registerBroker({ ...request, brokerId: 2 }, T0).code).toBe(ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED);
  });

  it('tells a registering broker to elect itself when the set never had a master', () => {
    const state = new ControllerState(options());
    state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`);
    state.takeEffects();
    const result = state.registerBroker({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 1, brokerAddress: addr(1) }, T0);
    expect(result).toMatchObject({ code: ResponseCode.SUCCESS, shouldElect: true, syncStateSet: [], syncStateSetEpoch: 0 });
    expect(result.master).toBeUndefined();
    expect(state.takeEffects().durable).toBe(false);
  });

  it('returns the live master with its epochs, and records a changed address durably', () => {
    const state = threeReplicas();
    const result = state.registerBroker({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 2, brokerAddress: '10.9.9.9:10911' }, T0 + 1);
    expect(result).toMatchObject({ code: ResponseCode.SUCCESS, shouldElect: false, master: { masterBrokerId: 1, masterAddress: addr(1), masterEpoch: 1, syncStateSetEpoch: 1 } });
    expect(state.takeEffects().durable).toBe(true);
    expect(state.brokerSet(BROKER)?.replicas.get(2)?.brokerAddress).toBe('10.9.9.9:10911');
  });

  it('refuses a heartbeat without brokerId, and keeps the newest epoch / offset a broker reported', () => {
    const state = new ControllerState(options());
    expect(state.heartbeat({ clusterName: CLUSTER, brokerName: BROKER, brokerAddr: addr(1), brokerId: undefined }, T0).code).toBe(
      ResponseCode.CONTROLLER_INVALID_REQUEST,
    );
    beat(state, 1, T0, { epoch: 3, maxOffset: 100 });
    beat(state, 1, T0 + 1, { epoch: 2, maxOffset: 500 });
    expect(state.liveInfo(CLUSTER, BROKER, 1)).toMatchObject({ epoch: 3, maxOffset: 100, lastUpdateMs: T0 + 1 });
    beat(state, 1, T0 + 2, { epoch: 3, maxOffset: 200 });
    expect(state.liveInfo(CLUSTER, BROKER, 1)).toMatchObject({ epoch: 3, maxOffset: 200 });
  });

  it('counts a broker alive up to lastUpdate + timeout and forgets it on the scan after', () => {
    const state = new ControllerState(options());
    beat(state, 1, T0);
    expect(state.isAlive(CLUSTER, BROKER, 1, T0 + TIMEOUT)).toBe(true);
    expect(state.scan(T0 + TIMEOUT).expired).toHaveLength(0);
    expect(state.isAlive(CLUSTER, BROKER, 1, T0 + TIMEOUT + 1)).toBe(false);
    expect(state.scan(T0 + TIMEOUT + 1).expired.map((b) => b.brokerId)).toEqual([1]);
    expect(state.sizes().liveBrokers).toBe(0);
  });

  it('uses RocketMQ defaults for a heartbeat without timeout or priority, and bounds the live table', () => {
    const state = new ControllerState(options({ liveBrokersMax: 1 }));
    state.heartbeat({ clusterName: CLUSTER, brokerName: BROKER, brokerAddr: addr(1), brokerId: 1 }, T0);
    expect(state.liveInfo(CLUSTER, BROKER, 1)).toMatchObject({ heartbeatTimeoutMs: 10_000, electionPriority: 0x7fff_ffff, epoch: -1, maxOffset: -1 });
    expect(beat(state, 2, T0)).toBe(ResponseCode.SYSTEM_BUSY);
  });
});

describe('ControllerState alterSyncStateSet', () => {
  const request = { brokerName: BROKER, masterBrokerId: 1, masterEpoch: 1 };

  it('accepts the master’s change at the current epochs and bumps syncStateSetEpoch', () => {
    const state = withFullSyncStateSet();
    expect(state.brokerSet(BROKER)?.syncStateSetEpoch).toBe(2);
    const shrunk = state.alterSyncStateSet(request, { syncStateSet: [1, 3], syncStateSetEpoch: 2 }, T0);
    expect(shrunk).toMatchObject({ code: ResponseCode.SUCCESS, newSyncStateSetEpoch: 3 });
    expect(state.takeEffects()).toEqual({ durable: true, masterChanges: [] });
  });

  it('fences a stale master, a stale masterEpoch and a stale syncStateSetEpoch', () => {
    const state = withFullSyncStateSet();
    const set = { syncStateSet: [1, 2], syncStateSetEpoch: 2 };
    expect(state.alterSyncStateSet({ ...request, masterBrokerId: 2 }, set, T0).code).toBe(ResponseCode.CONTROLLER_INVALID_MASTER);
    expect(state.alterSyncStateSet({ ...request, masterEpoch: 0 }, set, T0).code).toBe(ResponseCode.CONTROLLER_FENCED_MASTER_EPOCH);
    expect(state.alterSyncStateSet(request, { ...set, syncStateSetEpoch: 1 }, T0).code).toBe(ResponseCode.CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH);
    expect(state.takeEffects().durable).toBe(false);
    expect(state.brokerSet(BROKER)?.syncStateSetEpoch).toBe(2);
  });

  it('admits only live, known, non-learner replicas and always the master', () => {
    const state = threeReplicas({}, 4);
    beat(state, 4, T0, { asyncLearner: true });
    const at = (ids: number[]): { syncStateSet: number[]; syncStateSetEpoch: number } => ({ syncStateSet: ids, syncStateSetEpoch: 1 });
    expect(state.alterSyncStateSet(request, at([1, 7]), T0).code).toBe(ResponseCode.CONTROLLER_INVALID_REPLICAS);
    expect(state.alterSyncStateSet(request, at([1, 4]), T0).code).toBe(ResponseCode.CONTROLLER_INVALID_REPLICAS);
    expect(state.alterSyncStateSet(request, at([2, 3]), T0).code).toBe(ResponseCode.CONTROLLER_ALTER_SYNC_STATE_SET_FAILED);
    expect(state.alterSyncStateSet(request, at([1]), T0).code).toBe(ResponseCode.CONTROLLER_ALTER_SYNC_STATE_SET_FAILED);
    expect(state.alterSyncStateSet(request, at([1, 2]), T0 + TIMEOUT + 1).code).toBe(ResponseCode.CONTROLLER_BROKER_NOT_ALIVE);
    expect(state.alterSyncStateSet({ ...request, brokerName: 'nope' }, at([1]), T0).code).toBe(ResponseCode.CONTROLLER_ALTER_SYNC_STATE_SET_FAILED);
  });
});

describe('ControllerState elections', () => {
  it('elects the first broker that asks in a new set; then answers MASTER_STILL_EXIST', () => {
    const state = threeReplicas();
    const set = state.brokerSet(BROKER)!;
    expect({ master: set.masterBrokerId, epoch: set.masterEpoch, ss: [...set.syncStateSet], ssEpoch: set.syncStateSetEpoch }).toEqual({ master: 1, epoch: 1, ss: [1], ssEpoch: 1 });
    const again = state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 2, designateElect: false }, T0);
    expect(again).toMatchObject({ code: ResponseCode.CONTROLLER_MASTER_STILL_EXIST, masterBrokerId: 1, masterEpoch: 1 });
    expect(state.takeEffects().durable).toBe(false);
  });

  it('records the master change of a successful election as an effect', () => {
    const state = new ControllerState(options());
    state.applyBrokerId(CLUSTER, BROKER, 1, `${addr(1)};1`);
    beat(state, 1, T0);
    state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 1, designateElect: false }, T0);
    const effects = state.takeEffects();
    expect(effects.durable).toBe(true);
    expect(effects.masterChanges).toEqual([
      expect.objectContaining({ brokerName: BROKER, masterBrokerId: 1, masterAddress: addr(1), masterEpoch: 1, syncStateSet: [1], syncStateSetEpoch: 1 }),
    ]);
  });

  it('answers CONTROLLER_BROKER_NEED_TO_BE_REGISTERED for an unknown set', () => {
    const state = new ControllerState(options());
    expect(state.electMaster({ clusterName: CLUSTER, brokerName: 'x', brokerId: -1, designateElect: false }, T0).code).toBe(
      ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
    );
  });

  it('re-elects from the SyncStateSet when the master expires, preferring the highest epoch then offset', () => {
    const state = withFullSyncStateSet();
    const later = T0 + TIMEOUT;
    beat(state, 2, later, { epoch: 1, maxOffset: 100 });
    beat(state, 3, later, { epoch: 1, maxOffset: 200 });
    const result = state.scan(later + 1);
    expect(result.expired.map((b) => b.brokerId)).toEqual([1]);
    expect(result.elections).toEqual([expect.objectContaining({ code: ResponseCode.SUCCESS, masterBrokerId: 3, masterEpoch: 2, syncStateSet: [3], syncStateSetEpoch: 3 })]);
    expect(state.takeEffects().masterChanges.map((c) => c.masterBrokerId)).toEqual([3]);
  });

  it('breaks ties on epoch and offset by the lowest electionPriority value', () => {
    const state = withFullSyncStateSet();
    const later = T0 + TIMEOUT;
    beat(state, 2, later, { epoch: 1, maxOffset: 100, electionPriority: 5 });
    beat(state, 3, later, { epoch: 1, maxOffset: 100, electionPriority: 1 });
    expect(state.scan(later + 1).elections[0]?.masterBrokerId).toBe(3);
  });

  it('does not elect outside the SyncStateSet: the master becomes none with MASTER_NOT_AVAILABLE', () => {
    const state = threeReplicas();
    beat(state, 2, T0 + TIMEOUT);
    const result = state.scan(T0 + TIMEOUT + 1);
    expect(result.elections).toEqual([expect.objectContaining({ code: ResponseCode.CONTROLLER_MASTER_NOT_AVAILABLE, masterEpoch: 2 })]);
    const set = state.brokerSet(BROKER)!;
    expect(set.masterBrokerId).toBeUndefined();
    expect([...set.syncStateSet]).toEqual([1]); // kept, so the old master can come back cleanly
    expect(state.takeEffects().masterChanges).toEqual([expect.objectContaining({ masterBrokerId: null, masterEpoch: 2 })]);
    // A broker-triggered election that finds nobody fails without changing anything.
    const failed = state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 2, designateElect: false }, T0 + TIMEOUT + 2);
    expect(failed.code).toBe(ResponseCode.CONTROLLER_ELECT_MASTER_FAILED);
    expect(state.takeEffects().durable).toBe(false);
    // The old master returns and wins again from the SyncStateSet.
    beat(state, 1, T0 + TIMEOUT + 3);
    const back = state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 1, designateElect: false }, T0 + TIMEOUT + 3);
    expect(back).toMatchObject({ code: ResponseCode.SUCCESS, masterBrokerId: 1, masterEpoch: 3 });
  });

  it('elects outside the SyncStateSet when enableElectUncleanMaster is on, never an async learner', () => {
    const state = threeReplicas({ enableElectUncleanMaster: true });
    const later = T0 + TIMEOUT;
    beat(state, 2, later, { asyncLearner: true, maxOffset: 999 });
    beat(state, 3, later, { maxOffset: 1 });
    expect(state.scan(later + 1).elections[0]).toMatchObject({ code: ResponseCode.SUCCESS, masterBrokerId: 3 });
  });

  it('leaves the set without master when only a learner is alive, even unclean', () => {
    const state = threeReplicas({ enableElectUncleanMaster: true });
    beat(state, 2, T0 + TIMEOUT, { asyncLearner: true });
    expect(state.scan(T0 + TIMEOUT + 1).elections[0]?.code).toBe(ResponseCode.CONTROLLER_MASTER_NOT_AVAILABLE);
  });

  it('honours a designated broker when eligible and fails otherwise', () => {
    const state = withFullSyncStateSet();
    const designated = state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 2, designateElect: true }, T0);
    expect(designated).toMatchObject({ code: ResponseCode.SUCCESS, masterBrokerId: 2, masterEpoch: 2 });
    // 3 is no longer in the SyncStateSet ({2}) after the election.
    const refused = state.electMaster({ clusterName: CLUSTER, brokerName: BROKER, brokerId: 3, designateElect: true }, T0);
    expect(refused.code).toBe(ResponseCode.CONTROLLER_ELECT_MASTER_FAILED);
    expect(state.brokerSet(BROKER)?.masterBrokerId).toBe(2);
  });

  it('re-elects when the master is not alive but another replica is, with no expiry (after a restart)', () => {
    const before = withFullSyncStateSet();
    const restarted = new ControllerState(options(), before.toDocument());
    beat(restarted, 2, T0 + 50);
    const result = restarted.scan(T0 + 60);
    expect(result.expired).toEqual([]);
    expect(result.elections[0]).toMatchObject({ code: ResponseCode.SUCCESS, masterBrokerId: 2, masterEpoch: 2 });
    // With nobody alive at all, a scan leaves the master in place (nothing to elect, nothing expired).
    const idle = new ControllerState(options(), before.toDocument());
    expect(idle.scan(T0 + 60).elections).toEqual([]);
    expect(idle.brokerSet(BROKER)?.masterBrokerId).toBe(1);
  });

  it('closing a master’s connection triggers the election at once', () => {
    const state = withFullSyncStateSet();
    beat(state, 1, T0 + 1, { channelId: 'c1' });
    beat(state, 2, T0 + 1, { channelId: 'c2', maxOffset: 5 });
    const result = state.channelClosed('c1', T0 + 2);
    expect(result.expired.map((b) => b.brokerId)).toEqual([1]);
    expect(result.elections[0]).toMatchObject({ code: ResponseCode.SUCCESS, masterBrokerId: 2 });
    expect(state.liveChannelIds()).toEqual(new Set(['c2']));
  });
});

describe('ControllerState cleanBrokerData and persistence', () => {
  it('refuses to clean a set with a master, or a live id, unless told to clean living brokers', () => {
    const state = threeReplicas();
    expect(state.cleanBrokerData({ brokerName: BROKER, isCleanLivingBroker: false }, T0).code).toBe(ResponseCode.CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    expect(state.cleanBrokerData({ brokerName: BROKER, brokerControllerIdsToClean: '2', isCleanLivingBroker: false }, T0).code).toBe(
      ResponseCode.CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
    );
    expect(state.cleanBrokerData({ brokerName: BROKER, brokerControllerIdsToClean: 'x', isCleanLivingBroker: false }, T0).code).toBe(
      ResponseCode.CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
    );
    expect(state.cleanBrokerData({ brokerName: 'none', isCleanLivingBroker: true }, T0).code).toBe(ResponseCode.CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    expect(state.takeEffects().durable).toBe(false);
  });

  it('cleans dead ids, and the master with a master change; cleans a whole set', () => {
    const state = withFullSyncStateSet();
    const later = T0 + TIMEOUT + 1;
    expect(state.cleanBrokerData({ brokerName: BROKER, brokerControllerIdsToClean: '3', isCleanLivingBroker: false }, later).code).toBe(ResponseCode.SUCCESS);
    expect([...state.brokerSet(BROKER)!.replicas.keys()]).toEqual([1, 2]);
    expect([...state.brokerSet(BROKER)!.syncStateSet]).toEqual([1, 2]);
    expect(state.takeEffects()).toEqual({ durable: true, masterChanges: [] });
    expect(state.cleanBrokerData({ brokerName: BROKER, brokerControllerIdsToClean: '1', isCleanLivingBroker: false }, later).code).toBe(ResponseCode.SUCCESS);
    expect(state.brokerSet(BROKER)).toMatchObject({ masterBrokerId: undefined, masterEpoch: 2 });
    expect(state.takeEffects().masterChanges).toEqual([expect.objectContaining({ masterBrokerId: null, masterEpoch: 2 })]);
    state.checkInvariants();
    expect(state.cleanBrokerData({ brokerName: BROKER, isCleanLivingBroker: true }, later).code).toBe(ResponseCode.SUCCESS);
    expect(state.brokerSet(BROKER)).toBeUndefined();
  });

  it('round-trips its durable state through a document', () => {
    const state = withFullSyncStateSet();
    const document = state.toDocument();
    const copy = new ControllerState(options(), document);
    expect(copy.toDocument()).toEqual(document);
    expect(document.brokerSets[0]).toMatchObject({ brokerName: BROKER, masterBrokerId: 1, masterEpoch: 1, syncStateSet: [1, 2, 3], syncStateSetEpoch: 2, nextAssignBrokerId: 4 });
    // Liveness is not durable: the reloaded controller waits for heartbeats.
    expect(copy.sizes()).toEqual({ brokerSets: 1, liveBrokers: 0 });
  });
});
