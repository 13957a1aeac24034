/**
 * The controller's state machine under random sequences of broker id applications, registrations,
 * heartbeats (some from async learners), SyncStateSet changes (current or stale epochs), elections (by a
 * broker, by an admin designating one, by the controller), expiry scans, time passing and restarts
 * (reload from the persisted document, JSON round trip and validation included). After every step:
 * - the state's own invariants hold (the master is in the SyncStateSet, which holds only replicas; bounds);
 * - each set has at most one master, and masterEpoch / syncStateSetEpoch never decrease;
 * - a master change (to another broker or to none) strictly increases masterEpoch;
 * - a new master was in the SyncStateSet before the step (or the set never had a master), unless
 *   enableElectUncleanMaster is on; a new master is never an async learner;
 * - a restart reloads exactly the state that was persisted.
 * Runs: CONTROLLER_PROP_RUNS (default 200).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ControllerState, type ControllerStateOptions } from '../../src/actors/controller-state.ts';
import { validateControllerMetadata } from '../../src/storage/controller-metadata.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

const T0 = 1_700_000_000_000;
const CLUSTER = 'C';
const SETS = ['a', 'b'] as const;
const RUNS = Number(process.env['CONTROLLER_PROP_RUNS'] ?? 200);

type Op =
  | { readonly kind: 'apply'; readonly set: string; readonly id: number }
  | { readonly kind: 'register'; readonly set: string; readonly id: number }
  | { readonly kind: 'beat'; readonly set: string; readonly id: number; readonly learner: boolean; readonly epoch: number; readonly offset: number; readonly priority: number }
  | { readonly kind: 'alter'; readonly set: string; readonly ids: readonly number[]; readonly stale: boolean; readonly asMaster: boolean }
  | { readonly kind: 'elect'; readonly set: string; readonly id: number; readonly designate: boolean }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'scan' }
  | { readonly kind: 'restart' };

const setName = fc.constantFrom<string>('a', 'a', 'a', 'b');
const id = fc.integer({ min: 1, max: 4 });
const liveId = fc.constantFrom(1, 2, 2, 3, 3, 4);

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('apply' as const), set: setName, id }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('register' as const), set: setName, id }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('beat' as const),
      set: setName,
      id: liveId,
      learner: fc.boolean(),
      epoch: fc.integer({ min: 0, max: 3 }),
      offset: fc.integer({ min: 0, max: 1000 }),
      priority: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('alter' as const), set: setName, ids: fc.subarray([1, 2, 3, 4]), stale: fc.boolean(), asMaster: fc.boolean() }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('elect' as const), set: setName, id: fc.integer({ min: -1, max: 4 }), designate: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 12_000 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'scan' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

type SetView = { master: number | undefined; masterEpoch: number; syncStateSet: Set<number>; syncStateSetEpoch: number };

function views(state: ControllerState): Map<string, SetView> {
  const out = new Map<string, SetView>();
  for (const name of SETS) {
    const set = state.brokerSet(name);
    if (set !== undefined) {
      out.set(name, { master: set.masterBrokerId, masterEpoch: set.masterEpoch, syncStateSet: new Set(set.syncStateSet), syncStateSetEpoch: set.syncStateSetEpoch });
    }
  }
  return out;
}

function apply(state: ControllerState, op: Op, nowMs: number): void {
  switch (op.kind) {
    case 'apply':
      state.applyBrokerId(CLUSTER, op.set, op.id, `10.0.0.${op.id}:10911;${op.id}`);
      return;
    case 'register':
      state.registerBroker({ clusterName: CLUSTER, brokerName: op.set, brokerId: op.id, brokerAddress: `10.0.0.${op.id}:10911` }, nowMs);
      return;
    case 'beat':
      state.heartbeat(
        {
          clusterName: CLUSTER,
          brokerName: op.set,
          brokerAddr: `10.0.0.${op.id}:10911`,
          brokerId: op.id,
          epoch: op.epoch,
          maxOffset: op.offset,
          electionPriority: op.priority,
          asyncLearner: op.learner,
          heartbeatTimeoutMs: 10_000,
        },
        nowMs,
      );
      return;
    case 'alter': {
      const set = state.brokerSet(op.set);
      const master = set?.masterBrokerId ?? 1;
      state.alterSyncStateSet(
        { brokerName: op.set, masterBrokerId: op.asMaster ? master : master + 1, masterEpoch: (set?.masterEpoch ?? 0) - (op.stale ? 1 : 0) },
        { syncStateSet: op.ids, syncStateSetEpoch: set?.syncStateSetEpoch ?? 0 },
        nowMs,
      );
      return;
    }
    case 'elect':
      state.electMaster({ clusterName: CLUSTER, brokerName: op.set, brokerId: op.id, designateElect: op.designate }, nowMs);
      return;
    case 'scan':
      state.scan(nowMs);
      return;
    case 'advance':
    case 'restart':
      return;
  }
}

function checkStep(before: Map<string, SetView>, after: Map<string, SetView>, state: ControllerState, unclean: boolean): void {
  for (const [name, next] of after) {
    const prev = before.get(name);
    if (prev === undefined) {
      expect(next.master === undefined || next.masterEpoch >= 1).toBe(true);
      continue;
    }
    expect(next.masterEpoch).toBeGreaterThanOrEqual(prev.masterEpoch);
    expect(next.syncStateSetEpoch).toBeGreaterThanOrEqual(prev.syncStateSetEpoch);
    if (next.master !== prev.master) {
      expect(next.masterEpoch).toBeGreaterThan(prev.masterEpoch);
      if (next.master !== undefined) {
        if (!unclean && prev.masterEpoch > 0) expect(prev.syncStateSet.has(next.master)).toBe(true);
        expect(state.liveInfo(CLUSTER, name, next.master)?.asyncLearner ?? false).toBe(false);
        expect(next.syncStateSet).toEqual(new Set([next.master]));
      }
    }
    if (next.master !== undefined) expect(next.syncStateSet.has(next.master)).toBe(true);
  }
}

describe('ControllerState (property)', () => {
  for (const unclean of [false, true]) {
    it(`keeps its epoch and election invariants under random operations (enableElectUncleanMaster=${unclean})`, () => {
      const options: ControllerStateOptions = { enableElectUncleanMaster: unclean, brokerSetsMax: 4, replicasPerSetMax: 4, liveBrokersMax: 16 };
      fc.assert(
        fc.property(fc.array(opArbitrary, { minLength: 1, maxLength: 60 }), (ops) => {
          let state = new ControllerState(options);
          let nowMs = T0;
          // Every run starts from a working set 'a' (replicas 1..3 alive, 1 master) so that the random
          // operations reach re-elections quickly; set 'b' starts empty.
          const prelude: Op[] = [1, 2, 3].flatMap((n): Op[] => [
            { kind: 'apply', set: 'a', id: n },
            { kind: 'beat', set: 'a', id: n, learner: false, epoch: 0, offset: 0, priority: 0 },
          ]);
          prelude.push({ kind: 'elect', set: 'a', id: 1, designate: false });
          for (const op of [...prelude, ...ops]) {
            if (op.kind === 'advance') nowMs += op.ms;
            const before = views(state);
            if (op.kind === 'restart') {
              const persisted = state.toDocument();
              const checked = validateControllerMetadata(JSON.parse(JSON.stringify(persisted)), options);
              expect(checked.ok).toBe(true);
              if (!checked.ok) return;
              state = new ControllerState(options, checked.value);
              expect(state.toDocument()).toEqual(persisted);
            } else {
              apply(state, op, nowMs);
            }
            state.checkInvariants();
            const effects = state.takeEffects();
            const after = views(state);
            checkStep(before, after, state, unclean);
            // Every master change was reported as an effect, durably.
            const changed = [...after].filter(([name, view]) => before.get(name)?.master !== view.master && (before.has(name) || view.master !== undefined));
            expect(effects.masterChanges.map((c) => c.brokerName).sort()).toEqual(changed.map(([name]) => name).sort());
            if (effects.masterChanges.length > 0) expect(effects.durable).toBe(true);
          }
        }),
        replayableParameters(`controller state (unclean=${unclean})`, RUNS),
      );
    });
  }
});
