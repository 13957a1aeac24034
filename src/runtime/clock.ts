/**
 * Time as actors see it. Actors never call Date.now or setTimeout themselves: they use their context's
 * clock, so tests can run a broker under a ManualClock and step time deterministically.
 */
import { assert } from './assert.ts';

/** An opaque handle for a scheduled callback. */
export type TimerHandle = { readonly id: number };

/** Wall time, monotonic time and one-shot timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch (RocketMQ's store timestamps use this). */
  nowMs(): number;
  /** Monotonic nanoseconds, for measuring durations. */
  monotonicNs(): bigint;
  /** Runs `callback` once after `delayMs`. */
  setTimer(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer; cancelling twice or after it fired is harmless. */
  clearTimer(handle: TimerHandle): void;
}

/** The real clock of the process. */
export function createSystemClock(): Clock {
  const handles = new Map<number, NodeJS.Timeout>();
  let nextId = 1;
  return {
    nowMs: () => Date.now(),
    monotonicNs: () => process.hrtime.bigint(),
    setTimer(callback, delayMs) {
      const id = nextId++;
      const timeout = setTimeout(() => {
        handles.delete(id);
        callback();
      }, Math.max(0, delayMs));
      handles.set(id, timeout);
      return { id };
    },
    clearTimer(handle) {
      const timeout = handles.get(handle.id);
      if (timeout !== undefined) {
        clearTimeout(timeout);
        handles.delete(handle.id);
      }
    },
  };
}

type ManualTimer = { id: number; dueMs: number; callback: () => void };

/** A clock that only moves when a test calls `advance`; timers fire in due order, ties by creation. */
export class ManualClock implements Clock {
  private currentMs: number;
  private timers: ManualTimer[] = [];
  private nextId = 1;

  constructor(startMs = 1_700_000_000_000) {
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
  }

  monotonicNs(): bigint {
    return BigInt(this.currentMs) * 1_000_000n;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ id, dueMs: this.currentMs + Math.max(0, delayMs), callback });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.timers = this.timers.filter((timer) => timer.id !== handle.id);
  }

  /** Number of timers not yet fired. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `deltaMs`, firing every timer that falls due, in order. */
  advance(deltaMs: number): void {
    assert(deltaMs >= 0, 'ManualClock cannot go backwards');
    const targetMs = this.currentMs + deltaMs;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const timer of this.timers) {
        if (timer.dueMs > targetMs) continue;
        if (next === undefined || timer.dueMs < next.dueMs || (timer.dueMs === next.dueMs && timer.id < next.id)) {
          next = timer;
        }
      }
      if (next === undefined) break;
      const fired = next;
      this.timers = this.timers.filter((timer) => timer !== fired);
      this.currentMs = fired.dueMs;
      fired.callback();
    }
    this.currentMs = targetMs;
  }
}
