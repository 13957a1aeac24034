/**
 * The actor directory: one SharedArrayBuffer that every thread maps, so that any thread can route a
 * message and admit it against the target's mailbox bound without asking anyone.
 *
 * Layout: an Int32Array with `slotWords` words per slot.
 *
 * | word | field     | meaning                                                            |
 * |------|-----------|--------------------------------------------------------------------|
 * | 0    | thread    | index of the thread hosting the actor; -1 when none                |
 * | 1    | occupancy | messages admitted and not yet taken out of the mailbox             |
 * | 2    | capacity  | mailbox bound; 0 while the actor is stopped or being re-placed     |
 * | 3    | reserved  | zero                                                               |
 *
 * Invariants: occupancy <= capacity except transiently inside tryAdmit (which undoes its increment);
 * tryAdmit never touches the occupancy of a closed slot, so open() may reset it; only the main thread
 * allocates slots and changes `thread`; the hosting thread releases occupancy.
 */
import { assert } from './assert.ts';

const slotWords = 4;
const wordThread = 0;
const wordOccupancy = 1;
const wordCapacity = 2;

/** A view of the shared actor directory. */
export class Directory {
  /** The shared memory; hand it to new threads. */
  readonly buffer: SharedArrayBuffer;
  /** Number of slots. */
  readonly slotsMax: number;
  private readonly words: Int32Array;

  constructor(bufferOrSlots: SharedArrayBuffer | number) {
    if (typeof bufferOrSlots === 'number') {
      assert(bufferOrSlots > 0, 'directory needs at least one slot');
      this.buffer = new SharedArrayBuffer(bufferOrSlots * slotWords * 4);
      this.words = new Int32Array(this.buffer);
      for (let slot = 0; slot < bufferOrSlots; slot++) this.words[slot * slotWords + wordThread] = -1;
    } else {
      this.buffer = bufferOrSlots;
      this.words = new Int32Array(this.buffer);
    }
    this.slotsMax = this.words.length / slotWords;
  }

  /** Takes one place in the slot's mailbox; false when it is full or the actor is gone. */
  tryAdmit(slot: number): boolean {
    const base = slot * slotWords;
    const capacity = Atomics.load(this.words, base + wordCapacity);
    // A closed slot's count is left alone: open() resets it on re-placement, and an increment undone
    // across that reset would leave it at -1, admitting one message past the bound (a mailbox overflow).
    if (capacity === 0) return false;
    const before = Atomics.add(this.words, base + wordOccupancy, 1);
    if (before >= capacity) {
      Atomics.sub(this.words, base + wordOccupancy, 1);
      return false;
    }
    return true;
  }

  /** Gives back one place, when a message leaves the mailbox or is dropped. */
  release(slot: number): void {
    Atomics.sub(this.words, slot * slotWords + wordOccupancy, 1);
  }

  /** The thread hosting the slot's actor, or -1. */
  threadOf(slot: number): number {
    return Atomics.load(this.words, slot * slotWords + wordThread);
  }

  /** Whether the slot currently accepts messages. */
  isOpen(slot: number): boolean {
    return Atomics.load(this.words, slot * slotWords + wordCapacity) > 0;
  }

  /** Messages admitted and not yet taken out. */
  occupancy(slot: number): number {
    return Atomics.load(this.words, slot * slotWords + wordOccupancy);
  }

  /** Places the slot's actor on a thread and opens its mailbox with a fresh count. */
  open(slot: number, thread: number, capacity: number): void {
    assert(capacity > 0 && capacity < 2 ** 30, () => `mailbox capacity out of range: ${capacity}`);
    const base = slot * slotWords;
    Atomics.store(this.words, base + wordThread, thread);
    Atomics.store(this.words, base + wordOccupancy, 0);
    Atomics.store(this.words, base + wordCapacity, capacity);
  }

  /** Closes the mailbox (new sends are refused) but keeps the placement, for re-placement after a crash. */
  close(slot: number): void {
    Atomics.store(this.words, slot * slotWords + wordCapacity, 0);
  }

  /** Forgets the slot's actor entirely. */
  clear(slot: number): void {
    const base = slot * slotWords;
    Atomics.store(this.words, base + wordCapacity, 0);
    Atomics.store(this.words, base + wordThread, -1);
  }
}
