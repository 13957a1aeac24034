/**
 * Supervision: what happens when an actor's handler throws. The policy is declared by whoever spawns the
 * actor; the decision is taken on the actor's own thread. A crash loop (more than `maxRestarts` restarts
 * within `withinMs`) escalates to the parent, and an actor without a parent is stopped and logged.
 */
import { assert } from './assert.ts';

/** The four answers to a failure, as in Akka. */
export type SupervisorDirective = 'resume' | 'restart' | 'stop' | 'escalate';

/** How an actor's failures are handled. */
export type SupervisionPolicy = {
  /** What to do on a failure while under the restart limit. */
  readonly onFailure: SupervisorDirective;
  /** Restarts allowed within the window before the failure escalates. */
  readonly maxRestarts: number;
  /** The sliding window for counting restarts, in milliseconds. */
  readonly withinMs: number;
};

/** The default: restart, escalating after 10 restarts within a minute (RocketMQ-style service restart). */
export const defaultSupervision: SupervisionPolicy = { onFailure: 'restart', maxRestarts: 10, withinMs: 60_000 };

/** Counts restarts in a sliding window; bounded by maxRestarts + 1 entries. */
export class RestartWindow {
  private readonly timestampsMs: number[] = [];
  private readonly policy: SupervisionPolicy;

  constructor(policy: SupervisionPolicy) {
    assert(policy.maxRestarts >= 0 && policy.withinMs > 0, 'supervision policy out of range');
    this.policy = policy;
  }

  /** Records a failure at `nowMs` and returns the directive to apply. */
  decide(nowMs: number): SupervisorDirective {
    const { policy } = this;
    if (policy.onFailure !== 'restart') return policy.onFailure;
    const windowStartMs = nowMs - policy.withinMs;
    while (this.timestampsMs.length > 0 && this.timestampsMs[0]! < windowStartMs) this.timestampsMs.shift();
    this.timestampsMs.push(nowMs);
    assert(this.timestampsMs.length <= policy.maxRestarts + 1, 'restart window overflow');
    if (this.timestampsMs.length > policy.maxRestarts) {
      this.timestampsMs.length = 0;
      return 'escalate';
    }
    return 'restart';
  }

  /** Restarts counted in the current window. */
  get count(): number {
    return this.timestampsMs.length;
  }
}
