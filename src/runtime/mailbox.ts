/**
 * A bounded FIFO of messages for one actor. Storage is a ring that grows by doubling up to the bound, so
 * thousands of idle per-queue actors cost little memory while a busy one never reallocates per message.
 *
 * Invariants: 0 <= length <= capacity; messages leave in the order they entered. Admission against the
 * bound is decided by the shared directory (so that senders on other threads see the same bound); the
 * mailbox itself asserts that admission was respected.
 */
import { assert } from './assert.ts';

const initialRingSize = 16;

/** A bounded ring of (message, meta) pairs; `meta` is 0 for a tell, else the ask's reply address. */
export class Mailbox {
  /** The most messages this mailbox may hold. */
  readonly capacity: number;
  private messages: unknown[];
  private metas: number[];
  private head = 0;
  private size = 0;
  private mask: number;

  constructor(capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 1, () => `mailbox capacity must be a positive integer: ${capacity}`);
    this.capacity = capacity;
    const ringSize = Math.min(initialRingSize, nextPowerOfTwo(capacity));
    this.messages = new Array(ringSize);
    this.metas = new Array(ringSize).fill(0);
    this.mask = ringSize - 1;
  }

  /** Messages waiting. */
  get length(): number {
    return this.size;
  }

  /** Appends a message; the caller has already been admitted against `capacity`. */
  push(message: unknown, meta: number): void {
    assert(this.size < this.capacity, 'mailbox overflow: admission was bypassed');
    if (this.size === this.messages.length) this.grow();
    const index = (this.head + this.size) & this.mask;
    this.messages[index] = message;
    this.metas[index] = meta;
    this.size++;
  }

  /** Meta of the oldest message; only valid when length > 0. */
  peekMeta(): number {
    return this.metas[this.head]!;
  }

  /** Removes and returns the oldest message; read `peekMeta` first if needed. */
  shift(): unknown {
    assert(this.size > 0, 'shift from an empty mailbox');
    const message = this.messages[this.head];
    this.messages[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return message;
  }

  /** Drops every message, returning the metas of the dropped asks so their callers can be told. */
  clear(): number[] {
    const askMetas: number[] = [];
    while (this.size > 0) {
      const meta = this.peekMeta();
      this.shift();
      if (meta !== 0) askMetas.push(meta);
    }
    return askMetas;
  }

  private grow(): void {
    const oldSize = this.messages.length;
    const newSize = oldSize * 2;
    const messages = new Array(newSize);
    const metas = new Array(newSize).fill(0);
    for (let i = 0; i < this.size; i++) {
      messages[i] = this.messages[(this.head + i) & this.mask];
      metas[i] = this.metas[(this.head + i) & this.mask];
    }
    this.messages = messages;
    this.metas = metas;
    this.head = 0;
    this.mask = newSize - 1;
  }
}

function nextPowerOfTwo(value: number): number {
  let power = 1;
  while (power < value) power *= 2;
  return power;
}
