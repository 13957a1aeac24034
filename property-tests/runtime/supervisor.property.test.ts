/**
 * RestartWindow against a model written from the policy's definition: a failure escalates when, counting
 * it, more than `maxRestarts` failures since the last escalation fall within the last `withinMs`
 * (inclusive of the window's start); otherwise it restarts. Policies other than restart answer themselves.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RestartWindow, type SupervisionPolicy, type SupervisorDirective } from '../../src/runtime/supervisor.ts';
import { replayableParameters } from './fc-parameters.ts';

const policyArbitrary: fc.Arbitrary<SupervisionPolicy> = fc.record({
  onFailure: fc.constantFrom<SupervisorDirective>('restart', 'restart', 'resume', 'stop', 'escalate'),
  maxRestarts: fc.integer({ min: 0, max: 6 }),
  withinMs: fc.integer({ min: 1, max: 5_000 }),
});

/** Failure times as gaps from a start: zero gaps (same millisecond) and gaps around the window are common. */
function failureTimesArbitrary(withinMs: number): fc.Arbitrary<number[]> {
  const gap = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: withinMs * 2 }),
    fc.constantFrom(withinMs - 1, withinMs, withinMs + 1).filter((value) => value >= 0),
  );
  return fc.tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.array(gap, { minLength: 1, maxLength: 60 })).map(([startMs, gaps]) => {
    let nowMs = startMs;
    return gaps.map((gapMs) => (nowMs += gapMs));
  });
}

/** The model: the decisions for failures at `timesMs` (non-decreasing), and the count after each. */
function model(policy: SupervisionPolicy, timesMs: readonly number[]): { directives: SupervisorDirective[]; counts: number[] } {
  const directives: SupervisorDirective[] = [];
  const counts: number[] = [];
  let sinceEscalation: number[] = [];
  for (const nowMs of timesMs) {
    if (policy.onFailure !== 'restart') {
      directives.push(policy.onFailure);
      counts.push(0);
      continue;
    }
    sinceEscalation.push(nowMs);
    const inWindow = sinceEscalation.filter((failureMs) => failureMs >= nowMs - policy.withinMs).length;
    if (inWindow > policy.maxRestarts) {
      directives.push('escalate');
      sinceEscalation = [];
      counts.push(0);
    } else {
      directives.push('restart');
      counts.push(inWindow);
    }
  }
  return { directives, counts };
}

describe('RestartWindow', () => {
  it('decides as the model does for any policy and failure times', () => {
    const scenario = policyArbitrary.chain((policy) => fc.tuple(fc.constant(policy), failureTimesArbitrary(policy.withinMs)));
    fc.assert(
      fc.property(scenario, ([policy, timesMs]) => {
        const window = new RestartWindow(policy);
        const directives: SupervisorDirective[] = [];
        const counts: number[] = [];
        for (const nowMs of timesMs) {
          directives.push(window.decide(nowMs));
          counts.push(window.count);
        }
        expect({ directives, counts }).toEqual(model(policy, timesMs));
      }),
      replayableParameters('RestartWindow model', 2_000),
    );
  });

  it('never escalates failures spaced more than withinMs apart, when a restart is allowed', () => {
    const scenario = fc.record({
      maxRestarts: fc.integer({ min: 1, max: 6 }),
      withinMs: fc.integer({ min: 1, max: 5_000 }),
      failures: fc.integer({ min: 1, max: 50 }),
      extraMs: fc.integer({ min: 1, max: 10_000 }),
    });
    fc.assert(
      fc.property(scenario, ({ maxRestarts, withinMs, failures, extraMs }) => {
        const window = new RestartWindow({ onFailure: 'restart', maxRestarts, withinMs });
        for (let i = 0; i < failures; i++) {
          expect(window.decide(i * (withinMs + extraMs))).toBe('restart');
          expect(window.count).toBe(1);
        }
      }),
      replayableParameters('RestartWindow spaced failures', 500),
    );
  });

  it('escalates exactly on failure maxRestarts + 1 of a burst, then starts counting afresh', () => {
    const scenario = fc.record({ maxRestarts: fc.integer({ min: 0, max: 10 }), withinMs: fc.integer({ min: 1, max: 5_000 }) });
    fc.assert(
      fc.property(scenario, ({ maxRestarts, withinMs }) => {
        const window = new RestartWindow({ onFailure: 'restart', maxRestarts, withinMs });
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < maxRestarts; i++) expect(window.decide(1_000)).toBe('restart');
          expect(window.decide(1_000)).toBe('escalate');
          expect(window.count).toBe(0);
        }
      }),
      replayableParameters('RestartWindow burst', 500),
    );
  });

  it('stays bounded and never throws, even when the wall clock steps backwards', () => {
    const scenario = policyArbitrary.chain((policy) =>
      fc.tuple(fc.constant(policy), fc.array(fc.integer({ min: 0, max: policy.withinMs * 4 }), { minLength: 1, maxLength: 80 })),
    );
    fc.assert(
      fc.property(scenario, ([policy, timesMs]) => {
        const window = new RestartWindow(policy);
        for (const nowMs of timesMs) {
          const directive = window.decide(nowMs);
          expect(directive === policy.onFailure || (policy.onFailure === 'restart' && directive === 'escalate')).toBe(true);
          expect(window.count).toBeLessThanOrEqual(policy.maxRestarts);
        }
      }),
      replayableParameters('RestartWindow unordered times', 1_000),
    );
  });

  it('refuses policies out of range', () => {
    expect(() => new RestartWindow({ onFailure: 'restart', maxRestarts: -1, withinMs: 1_000 })).toThrow(/out of range/);
    expect(() => new RestartWindow({ onFailure: 'restart', maxRestarts: 1, withinMs: 0 })).toThrow(/out of range/);
  });
});
