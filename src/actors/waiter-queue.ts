/**
 * The CommitLog writer's waiters (puts waiting for the disk, a slave, or their write): a FIFO in log
 * order, each waiter's endOffset at least the one before it, so the waiters an offset covers are always
 * at the front. Pushed at the back, released from the front; the array is compacted once the released
 * front is all of it, or more than half of a long one, so a release costs O(1) amortized. Its bound is
 * the caller's (syncFlushWaitersMax, or what one tick appends).
 */
import { assert } from '../runtime/assert.ts';

/** Releases before the array is compacted when the released front is more than half of it. */
const COMPACT_AFTER = 1024;

export class WaiterQueue<T extends { readonly endOffset: number }> {
  /** What the queue holds, for assertion messages. */
  private readonly what: string;
  private items: T[] = [];
  private head = 0;

  constructor(what: string) {
    this.what = what;
  }

  /** Waiters not yet released. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** The waiter with the lowest endOffset, if any. */
  first(): T | undefined {
    return this.items[this.head];
  }

  push(waiter: T): void {
    const last = this.items.at(-1);
    assert(last === undefined || last.endOffset <= waiter.endOffset, () => `${this.what} are in log order`);
    this.items.push(waiter);
  }

  /** Removes and returns the first waiter; the queue must not be empty. */
  shift(): T {
    assert(this.length > 0, () => `release from an empty queue of ${this.what}`);
    const waiter = this.items[this.head++]!;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > COMPACT_AFTER && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return waiter;
  }
}
