import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeStorageFs, type StorageFs } from '../../src/storage/storage-fs.ts';
import { readTimerCheckpoint } from '../../src/storage/timer-checkpoint.ts';
import { TimerStoreError, timerPaths } from '../../src/storage/timer-format.ts';
import { TIMER_UNIT_BYTES, TimerMagic, hasMagic, type TimerUnit } from '../../src/storage/timer-log.ts';
import { TimerStore, type TimerStoreOptions } from '../../src/storage/timer-store.ts';
import { crashFs } from '../actors/fixtures/timer-crash-fs.ts';

const T0 = 1_700_000_000_000;
const P = 100;
const dirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'timer-store-'));
  dirs.push(dir);
  return dir;
}

/** 128 places of 100 ms (a 12.8 s wheel), a 3.2 s roll window, 10-unit log files. */
function open(rootDir: string, nowMs: number, overrides: Partial<TimerStoreOptions> = {}, storageFs: StorageFs = nodeStorageFs): TimerStore {
  return TimerStore.open({
    rootDir,
    fs: storageFs,
    precisionMs: P,
    nowMs,
    slotsTotal: 64,
    timerRollWindowSlot: 32,
    timerLogFileSize: TIMER_UNIT_BYTES * 10,
    ...overrides,
  });
}

let nextOffsetPy = 1000;
function timer(store: TimerStore, timerOutMs: number, nowMs: number, isDelete = false) {
  const offsetPy = nextOffsetPy;
  nextOffsetPy += 200;
  return { offsetPy, result: store.enqueue({ timerOutMs, offsetPy, sizePy: 150, keyHash: offsetPy, isDelete, nowMs }) };
}

/** Every unit of one slot's chain, newest first. */
function chain(store: TimerStore, slotTimeMs: number, lastPos: number): TimerUnit[] {
  const units: TimerUnit[] = [];
  for (let pos = lastPos; pos !== -1; ) {
    const read = store.readChain(slotTimeMs, pos, 3);
    units.push(...read.units);
    pos = read.nextPos;
  }
  return units;
}

/** Dequeues every slot due by `nowMs`; returns them with their units. */
function drain(store: TimerStore, nowMs: number, endOffset = 0): { slotTimeMs: number; units: TimerUnit[] }[] {
  const out: { slotTimeMs: number; units: TimerUnit[] }[] = [];
  for (;;) {
    const slot = store.nextDueSlot(nowMs);
    if (slot === 'scanning') continue;
    if (slot === null) return out;
    store.beginSlot(slot);
    out.push({ slotTimeMs: slot.timeMs, units: chain(store, slot.timeMs, slot.lastPos) });
    store.finishSlot(slot.timeMs, endOffset);
  }
}

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('timer store', () => {
  it('hands out a slot once now reaches its time plus one precision step, never before', () => {
    const store = open(tempDir(), T0);
    expect(store.readTimeMs).toBe(T0);
    const a = timer(store, T0 + 500, T0);
    const b = timer(store, T0 + 500, T0 + 10);
    const c = timer(store, T0 + 1200, T0 + 20);
    expect(a.result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 500, rolled: false });
    expect(store.pendingUnits).toBe(3);
    expect(drain(store, T0 + 599)).toEqual([]);
    expect(store.readTimeMs).toBe(T0 + 500);
    const first = drain(store, T0 + 600);
    expect(first.map((slot) => slot.slotTimeMs)).toEqual([T0 + 500]);
    // Newest first: the caller reverses to deliver in enqueue order.
    expect(first[0]!.units.map((unit) => unit.offsetPy)).toEqual([b.offsetPy, a.offsetPy]);
    expect(first[0]!.units[0]).toMatchObject({ enqueueTimeMs: T0, slotTimeMs: T0 + 500, sizePy: 150 });
    expect(store.readTimeMs).toBe(T0 + 600);
    expect(drain(store, T0 + 1299)).toEqual([]);
    expect(drain(store, T0 + 1300).map((slot) => slot.units.map((unit) => unit.offsetPy))).toEqual([[c.offsetPy]]);
    expect(store.pendingUnits).toBe(0);
    store.close();
  });

  it('links a timer whose slot has passed, or is being dequeued, into the next slot to dequeue', () => {
    const store = open(tempDir(), T0);
    timer(store, T0 + 300, T0);
    drain(store, T0 + 200);
    expect(store.readTimeMs).toBe(T0 + 200);
    const late = timer(store, T0 + 100, T0 + 250);
    expect(late.result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 200, late: true, rolled: false });
    const marker = timer(store, T0 + 100, T0 + 250, true);
    expect(marker.result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 200, late: true });
    const slot = store.nextDueSlot(T0 + 400);
    expect(slot).toMatchObject({ timeMs: T0 + 200, num: 2, deleteNum: 1 });
    store.beginSlot(slot as Exclude<typeof slot, null | 'scanning'>);
    // The slot is being walked: a unit added now would not be seen, so it goes into the next one.
    expect(timer(store, T0 + 250, T0 + 400).result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 300, late: true });
    expect(timer(store, T0 + 300, T0 + 400).result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 300, late: false });
    store.finishSlot(T0 + 200, 0);
    const next = drain(store, T0 + 400);
    expect(next.map((entry) => [entry.slotTimeMs, entry.units.map((unit) => hasMagic(unit.magic, TimerMagic.LATE))])).toEqual([[T0 + 300, [false, true, false]]]);
    store.close();
  });

  it('rolls a timer beyond the window, or into an older slot holding its place, and waits for a checkpoint before reusing a dequeued place', () => {
    const store = open(tempDir(), T0);
    expect(store.rollWindowSlots).toBe(32);
    const far = timer(store, T0 + 10_000, T0);
    expect(far.result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 3_200, rolled: true });
    const near = timer(store, T0 + 4_000, T0);
    // Just past the window: half a window ahead, to give the next roll room.
    expect(near.result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 1_600, rolled: true });
    const old = timer(store, T0 + 1_000, T0);
    // 12.8 s later the same place is wanted by another slot while the old one is not dequeued yet.
    const clash = timer(store, T0 + 13_800, T0 + 12_000);
    expect(clash.result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 1_000, rolled: true });
    const slots = drain(store, T0 + 1_100);
    expect(slots.map((slot) => slot.slotTimeMs)).toEqual([T0 + 1_000]);
    expect(slots[0]!.units.map((unit) => [unit.offsetPy, hasMagic(unit.magic, TimerMagic.ROLL)])).toEqual([
      [clash.offsetPy, true],
      [old.offsetPy, false],
    ]);
    // Dequeued, but a crash now would need slot T0 + 1000 again: its place is not free yet.
    expect(timer(store, T0 + 13_800, T0 + 12_000).result).toEqual({ kind: 'full', slotTimeMs: T0 + 13_800 });
    store.checkpoint(0, T0 + 12_000);
    expect(store.confirmedReadTimeMs).toBe(T0 + 1_100);
    expect(timer(store, T0 + 13_800, T0 + 12_000).result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 13_800, rolled: false });
    store.close();
  });

  it('when a later slot holds a place, rides from the next slot to dequeue and steps over a place it blocks', () => {
    const store = open(tempDir(), T0);
    // The dequeue lags 14 s, more than the 12.8 s wheel: T0 + 16000 and T0 + 3200 share a place.
    expect(timer(store, T0 + 16_000, T0 + 14_000).result).toMatchObject({ kind: 'wheel', slotTimeMs: T0 + 16_000, rolled: false });
    expect(timer(store, T0 + 3_200, T0 + 14_000).result).toMatchObject({ kind: 'wheel', slotTimeMs: T0, rolled: true });
    const riding = drain(store, T0 + 100);
    expect(riding.map((slot) => [slot.slotTimeMs, slot.units.map((unit) => hasMagic(unit.magic, TimerMagic.ROLL))])).toEqual([[T0, [true]]]);
    // T0 + 12900 takes the place of T0 + 100, the next slot to read: nothing can go into that slot any
    // more, so it is stepped over once its time has come, whatever the caller's dequeue limit says.
    timer(store, T0 + 12_900, T0 + 11_000);
    expect(store.nextDueSlot(T0 + 100, T0 + 150)).toBeNull();
    expect(store.readTimeMs).toBe(T0 + 100);
    expect(store.nextDueSlot(T0 + 100, T0 + 14_000)).toBeNull();
    expect(store.readTimeMs).toBe(T0 + 200);
    store.close();
  });

  it('counts delete markers per slot, except rolled ones', () => {
    const store = open(tempDir(), T0);
    timer(store, T0 + 500, T0);
    timer(store, T0 + 500, T0, true);
    timer(store, T0 + 10_000, T0, true);
    const slot = store.nextDueSlot(T0 + 600);
    expect(slot).toMatchObject({ timeMs: T0 + 500, num: 2, deleteNum: 1 });
    drain(store, T0 + 600);
    const rolled = drain(store, T0 + 3_300);
    expect(rolled.map((entry) => entry.slotTimeMs)).toEqual([T0 + 3_200]);
    expect(hasMagic(rolled[0]!.units[0]!.magic, TimerMagic.DELETE | TimerMagic.ROLL)).toBe(true);
    store.close();
  });

  it('writes only the progress whose re-puts are durable', () => {
    const dir = tempDir();
    const store = open(dir, T0);
    timer(store, T0 + 500, T0);
    store.commitQueueOffset(1, 0);
    timer(store, T0 + 700, T0);
    store.commitQueueOffset(2, 5_000);
    drain(store, T0 + 600, 6_000);
    expect(store.readTimeMs).toBe(T0 + 600);
    const file = timerPaths(dir).checkpointFile;
    store.checkpoint(4_999, T0 + 600);
    expect(readTimerCheckpoint(nodeStorageFs, file)).toMatchObject({ lastReadTimeMs: T0, lastTimerQueueOffset: 1, lastTimerLogFlushPos: 2 * TIMER_UNIT_BYTES });
    store.checkpoint(5_999, T0 + 600);
    // The empty slots before T0 + 500 are confirmed; T0 + 500 itself waits for its re-put's end (6000).
    expect(readTimerCheckpoint(nodeStorageFs, file)).toMatchObject({ lastReadTimeMs: T0 + 500, lastTimerQueueOffset: 2 });
    store.checkpoint(6_000, T0 + 600);
    expect(readTimerCheckpoint(nodeStorageFs, file)).toMatchObject({ lastReadTimeMs: T0 + 600, lastTimerQueueOffset: 2 });
    store.close();
  });

  it('restarts where the checkpoint says, re-linking units written after it (kill -9), and re-delivering unconfirmed slots', () => {
    const dir = tempDir();
    const store = open(dir, T0, { writeBufferBytes: TIMER_UNIT_BYTES * 2 });
    const early = timer(store, T0 + 500, T0);
    timer(store, T0 + 800, T0);
    store.commitQueueOffset(2, 0);
    store.checkpoint(0, T0);
    const late = [timer(store, T0 + 800, T0), timer(store, T0 + 900, T0), timer(store, T0 + 900, T0)];
    drain(store, T0 + 600, 100);
    // Killed: no checkpoint, no close. The fifth unit is still in the write buffer and is lost with it.
    const again = open(dir, T0 + 700);
    expect(again.queueOffset).toBe(2);
    expect(again.readTimeMs).toBe(T0);
    expect(again.recovery).toMatchObject({ unitsRelinked: 2, slotsDropped: 0 });
    expect(again.pendingUnits).toBe(4);
    const slots = drain(again, T0 + 1_000);
    expect(slots.map((slot) => [slot.slotTimeMs, slot.units.map((unit) => unit.offsetPy)])).toEqual([
      [T0 + 500, [early.offsetPy]],
      [T0 + 800, [late[0]!.offsetPy, expect.any(Number)]],
      [T0 + 900, [late[1]!.offsetPy]],
    ]);
    again.close();
  });

  it('rebuilds a lost wheel from the whole log', () => {
    const dir = tempDir();
    const store = open(dir, T0);
    const a = timer(store, T0 + 500, T0);
    const b = timer(store, T0 + 500, T0);
    store.checkpoint(0, T0);
    store.close();
    fs.rmSync(timerPaths(dir).wheelFile);
    const again = open(dir, T0);
    expect(again.recovery).toMatchObject({ wheelCreated: true, unitsRelinked: 2 });
    expect(drain(again, T0 + 600)[0]!.units.map((unit) => unit.offsetPy)).toEqual([b.offsetPy, a.offsetPy]);
    again.close();
  });

  it('keeps every synced slot intact through a power loss that tears the log tail', () => {
    let undone = 0;
    let torn = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const dir = tempDir();
      const crash = crashFs();
      let state = seed;
      const random = (): number => {
        state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
        return state / 2 ** 31;
      };
      const store = open(dir, T0, { writeBufferBytes: TIMER_UNIT_BYTES * 2 }, crash.fs);
      const durable: number[] = [];
      for (let i = 0; i < 8; i++) durable.push(timer(store, T0 + 500 + (i % 3) * 100, T0).offsetPy);
      store.commitQueueOffset(8, 0);
      store.checkpoint(0, T0);
      for (let i = 0; i < 9; i++) timer(store, T0 + 500 + (i % 4) * 100, T0);
      undone += crash.powerLoss(random);
      const again = open(dir, T0 + 2_000, { writeBufferBytes: TIMER_UNIT_BYTES * 2 }, crash.fs);
      expect(again.queueOffset).toBe(8);
      const seen = drain(again, T0 + 2_000).flatMap((slot) => slot.units.map((unit) => unit.offsetPy));
      // Every durable timer is there; anything else is a unit that made it to disk before the loss.
      for (const offsetPy of durable) expect(seen).toContain(offsetPy);
      expect(again.stats().chainBreaks).toBe(0);
      if (again.recovery.log.tornBytes > 0) torn++;
      again.close();
    }
    // The seeds really lost writes, and some left a torn unit behind.
    expect(undone).toBeGreaterThan(0);
    expect(torn).toBeGreaterThan(0);
  });

  it('deletes log files once every slot in them is checkpointed as delivered', () => {
    const dir = tempDir();
    const store = open(dir, T0);
    for (let i = 0; i < 25; i++) timer(store, T0 + 500 + (i < 20 ? 0 : 2_000), T0);
    store.checkpoint(0, T0);
    expect(fs.readdirSync(timerPaths(dir).logDir)).toHaveLength(3);
    drain(store, T0 + 600);
    store.checkpoint(0, T0 + 600);
    expect(fs.readdirSync(timerPaths(dir).logDir).sort()).toEqual(['00000000000000001120']);
    expect(store.stats().logFirstPos).toBe(20 * TIMER_UNIT_BYTES);
    expect(drain(store, T0 + 2_600).flatMap((slot) => slot.units)).toHaveLength(5);
    store.close();
  });

  it('refuses to open with another precision than the checkpoint was written with', () => {
    const dir = tempDir();
    const store = open(dir, T0);
    store.checkpoint(0, T0);
    store.close();
    let error: unknown;
    try {
      open(dir, T0, { precisionMs: 1000 });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(TimerStoreError);
    expect((error as TimerStoreError).code).toBe('TIMER_CONFIG_MISMATCH');
  });
});
