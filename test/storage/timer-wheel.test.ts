import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import {
  TIMER_CHECKPOINT_BYTES,
  decodeTimerCheckpoint,
  encodeTimerCheckpoint,
  readTimerCheckpoint,
  writeTimerCheckpoint,
  type TimerCheckpoint,
} from '../../src/storage/timer-checkpoint.ts';
import { TimerStoreError } from '../../src/storage/timer-format.ts';
import { TIMER_SLOT_BYTES, TimerWheel } from '../../src/storage/timer-wheel.ts';

const T0 = 1_700_000_000_000;
const dirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'timer-wheel-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('timer wheel', () => {
  it('keeps one slot per precision step, tells a slot from an older time in its place, and survives a reopen', () => {
    const file = path.join(tempDir(), 'timerwheel');
    const wheel = TimerWheel.open({ path: file, fs: nodeStorageFs, slotsTotal: 8, precisionMs: 100 });
    expect(wheel.created).toBe(true);
    expect(fs.statSync(file).size).toBe(2 * 8 * TIMER_SLOT_BYTES);
    expect(wheel.slot(T0)).toBeNull();
    wheel.put({ timeMs: T0, firstPos: 0, lastPos: 96, num: 3, deleteNum: 1 });
    expect(wheel.slot(T0 + 99)).toEqual({ timeMs: T0, firstPos: 0, lastPos: 96, num: 3, deleteNum: 1 });
    // 16 places: T0 + 1600 ms shares T0's place but is another slot.
    expect(wheel.indexOf(T0 + 1600)).toBe(wheel.indexOf(T0));
    expect(wheel.slot(T0 + 1600)).toBeNull();
    expect(wheel.rawSlot(T0 + 1600).timeMs).toBe(T0);
    expect(wheel.dirtyPages).toBe(1);
    wheel.flush();
    expect(wheel.dirtyPages).toBe(0);
    wheel.put({ timeMs: T0 + 100, firstPos: 144, lastPos: 144, num: 1, deleteNum: 0 });
    // Not flushed: a reopen sees the wheel as of the last flush.
    const again = TimerWheel.open({ path: file, fs: nodeStorageFs, slotsTotal: 8, precisionMs: 100 });
    expect(again.created).toBe(false);
    expect(again.slot(T0)).toMatchObject({ lastPos: 96, num: 3, deleteNum: 1 });
    expect(again.slot(T0 + 100)).toBeNull();
    again.clear(again.indexOf(T0));
    expect(again.slot(T0)).toBeNull();
    expect(() => again.put({ timeMs: T0 + 50, firstPos: 0, lastPos: 0, num: 1, deleteNum: 0 })).toThrow(/multiple/);
    expect(() => again.put({ timeMs: T0, firstPos: 10, lastPos: 0, num: 1, deleteNum: 0 })).toThrow(/positions/);
  });

  it('refuses a file of another size, as RocketMQ does', () => {
    const file = path.join(tempDir(), 'timerwheel');
    TimerWheel.open({ path: file, fs: nodeStorageFs, slotsTotal: 8, precisionMs: 100 });
    const error = (() => {
      try {
        TimerWheel.open({ path: file, fs: nodeStorageFs, slotsTotal: 16, precisionMs: 100 });
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(TimerStoreError);
    expect((error as TimerStoreError).code).toBe('TIMER_WHEEL_SIZE_MISMATCH');
  });
});

describe('timer checkpoint', () => {
  const checkpoint: TimerCheckpoint = {
    lastReadTimeMs: T0,
    lastTimerLogFlushPos: 4800,
    lastTimerQueueOffset: 77,
    masterTimerQueueOffset: 77,
    stateVersion: 0,
    timestampMs: T0 + 5,
    counter: 3,
    precisionMs: 1000,
    slotsTotal: 604_800,
  };

  it("keeps RocketMQ's first 56 bytes, and round-trips through an atomic write", () => {
    const bytes = encodeTimerCheckpoint(checkpoint);
    expect(bytes.length).toBe(TIMER_CHECKPOINT_BYTES);
    const view = Buffer.from(bytes);
    expect(Number(view.readBigInt64BE(0))).toBe(T0);
    expect(Number(view.readBigInt64BE(8))).toBe(4800);
    expect(Number(view.readBigInt64BE(16))).toBe(77);
    expect(Number(view.readBigInt64BE(24))).toBe(77);
    expect(Number(view.readBigInt64BE(48))).toBe(3);
    const file = path.join(tempDir(), 'config', 'timercheck');
    expect(readTimerCheckpoint(nodeStorageFs, file)).toBeNull();
    writeTimerCheckpoint(nodeStorageFs, file, checkpoint);
    expect(readTimerCheckpoint(nodeStorageFs, file)).toEqual(checkpoint);
  });

  it('refuses a checkpoint that is short or fails its CRC', () => {
    const bytes = encodeTimerCheckpoint(checkpoint);
    expect(() => decodeTimerCheckpoint(bytes.subarray(0, 56))).toThrow(/72/);
    const flipped = Uint8Array.from(bytes);
    flipped[20]! ^= 1;
    expect(() => decodeTimerCheckpoint(flipped)).toThrow(/CRC/);
    expect(() => encodeTimerCheckpoint({ ...checkpoint, lastReadTimeMs: -5 })).toThrow(/out of range/);
  });
});
