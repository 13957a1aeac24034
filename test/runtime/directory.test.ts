/**
 * The shared directory: placement and mailbox admission per slot. Admission never lets occupancy pass the
 * capacity, a closed slot admits nothing but keeps its placement, and a cleared slot is forgotten.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/runtime/assert.ts';
import { Directory } from '../../src/runtime/directory.ts';
import { hammerWords, type HammerInit } from './fixtures/admit-hammer.ts';

/** Admits until refused (at most `limit` tries); returns how many were admitted. */
function admitAll(directory: Directory, slot: number, limit = 1_000): number {
  let admitted = 0;
  while (admitted < limit && directory.tryAdmit(slot)) admitted++;
  return admitted;
}

describe('Directory', () => {
  it('starts with every slot unplaced and closed', () => {
    const directory = new Directory(8);
    expect(directory.slotsMax).toBe(8);
    for (let slot = 0; slot < 8; slot++) {
      expect(directory.threadOf(slot)).toBe(-1);
      expect(directory.isOpen(slot)).toBe(false);
      expect(directory.tryAdmit(slot)).toBe(false);
      // A refused admission leaves no trace.
      expect(directory.occupancy(slot)).toBe(0);
    }
  });

  it('admits exactly capacity messages, and one more per release', () => {
    const directory = new Directory(4);
    directory.open(2, 3, 5);
    expect(directory.threadOf(2)).toBe(3);
    expect(directory.isOpen(2)).toBe(true);
    expect(admitAll(directory, 2)).toBe(5);
    expect(directory.occupancy(2)).toBe(5);
    expect(directory.tryAdmit(2)).toBe(false);
    expect(directory.occupancy(2)).toBe(5);
    directory.release(2);
    expect(directory.occupancy(2)).toBe(4);
    expect(directory.tryAdmit(2)).toBe(true);
    expect(directory.tryAdmit(2)).toBe(false);
    for (let i = 0; i < 5; i++) directory.release(2);
    expect(directory.occupancy(2)).toBe(0);
    // Neighbouring slots are untouched.
    for (const other of [0, 1, 3]) {
      expect(directory.occupancy(other)).toBe(0);
      expect(directory.threadOf(other)).toBe(-1);
    }
  });

  it('a capacity of one admits a single message', () => {
    const directory = new Directory(1);
    directory.open(0, 0, 1);
    expect(directory.tryAdmit(0)).toBe(true);
    expect(directory.tryAdmit(0)).toBe(false);
    directory.release(0);
    expect(directory.tryAdmit(0)).toBe(true);
  });

  it('close refuses new messages but keeps the placement and the count; open starts afresh', () => {
    const directory = new Directory(2);
    directory.open(1, 4, 3);
    expect(admitAll(directory, 1)).toBe(3);
    directory.release(1);
    directory.close(1);
    expect(directory.isOpen(1)).toBe(false);
    expect(directory.threadOf(1)).toBe(4);
    expect(directory.tryAdmit(1)).toBe(false);
    expect(directory.occupancy(1)).toBe(2);
    // Re-placement (after a thread crash) opens the slot on its new thread with an empty mailbox.
    directory.open(1, 5, 2);
    expect(directory.threadOf(1)).toBe(5);
    expect(directory.isOpen(1)).toBe(true);
    expect(directory.occupancy(1)).toBe(0);
    expect(admitAll(directory, 1)).toBe(2);
  });

  it('clear forgets the placement and closes the slot', () => {
    const directory = new Directory(2);
    directory.open(0, 1, 10);
    expect(directory.tryAdmit(0)).toBe(true);
    directory.clear(0);
    expect(directory.threadOf(0)).toBe(-1);
    expect(directory.isOpen(0)).toBe(false);
    expect(directory.tryAdmit(0)).toBe(false);
  });

  it('refuses capacities out of range', () => {
    const directory = new Directory(1);
    expect(() => directory.open(0, 0, 0)).toThrow(AssertionError);
    expect(() => directory.open(0, 0, -1)).toThrow(AssertionError);
    expect(() => directory.open(0, 0, 2 ** 30)).toThrow(AssertionError);
    expect(directory.isOpen(0)).toBe(false);
    directory.open(0, 0, 2 ** 30 - 1);
    expect(directory.isOpen(0)).toBe(true);
    expect(() => new Directory(0)).toThrow(AssertionError);
  });

  it('every view of the same buffer sees the same slots', () => {
    const owner = new Directory(16);
    const other = new Directory(owner.buffer);
    expect(other.slotsMax).toBe(16);
    owner.open(7, 2, 3);
    expect(other.threadOf(7)).toBe(2);
    expect(other.threadOf(6)).toBe(-1);
    expect(admitAll(other, 7)).toBe(3);
    expect(owner.tryAdmit(7)).toBe(false);
    owner.release(7);
    expect(other.occupancy(7)).toBe(2);
    expect(other.tryAdmit(7)).toBe(true);
    owner.clear(7);
    expect(other.isOpen(7)).toBe(false);
  });

  it('admission attempts from another thread on a closed slot never disturb the count that open resets', async () => {
    const directory = new Directory(1);
    const control = new Int32Array(new SharedArrayBuffer(hammerWords.size * 4));
    const init: HammerInit = { kind: 'admit-hammer', directory: directory.buffer, control: control.buffer, slot: 0 };
    const worker = new Worker(new URL('./fixtures/admit-hammer.ts', import.meta.url), { workerData: init });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    try {
      const startDeadline = Date.now() + 5_000;
      while (Atomics.load(control, hammerWords.ready) === 0 && Date.now() < startDeadline) await new Promise((resolve) => setTimeout(resolve, 1));
      expect(Atomics.load(control, hammerWords.ready)).toBe(1);
      // Each round re-places the actor, as after a thread crash: close, refused attempts, open (which
      // resets the count), admitted attempts. The count must then be exactly the admitted attempts.
      const mismatches: string[] = [];
      const roundsWanted = 200;
      let rounds = 0;
      while (rounds < roundsWanted && mismatches.length < 10) {
        const round = ++rounds;
        directory.close(0);
        Atomics.store(control, hammerWords.go, round);
        const closedUntil = performance.now() + 0.003;
        while (performance.now() < closedUntil) {
          // The slot stays closed for a few microseconds while the other thread knocks.
        }
        directory.open(0, 1, 2 ** 29);
        Atomics.store(control, hammerWords.stop, round);
        const roundDeadline = Date.now() + 5_000;
        while (Atomics.load(control, hammerWords.done) !== round) if (Date.now() > roundDeadline) throw new Error(`round ${round} never ended`);
        const successes = Atomics.load(control, hammerWords.successes);
        if (directory.occupancy(0) !== successes) mismatches.push(`round ${round}: count ${directory.occupancy(0)}, admitted ${successes}`);
      }
      expect(mismatches).toEqual([]);
      expect(rounds).toBe(roundsWanted);
    } finally {
      Atomics.store(control, hammerWords.quit, 1);
      await exited;
    }
  });
});
