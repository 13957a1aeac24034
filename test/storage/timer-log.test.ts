import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { TIMER_UNIT_BYTES, TimerLog, TimerMagic, decodeUnit, encodeUnit, keyHashOf, type TimerUnit, type TimerUnitInput } from '../../src/storage/timer-log.ts';

const T0 = 1_700_000_000_000;
const dirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'timer-log-'));
  dirs.push(dir);
  return dir;
}

function unit(slotTimeMs: number, offsetPy: number, prevPos = -1, magic: number = TimerMagic.DEFAULT): TimerUnitInput {
  return { magic, prevPos, slotTimeMs, enqueueTimeMs: T0, offsetPy, sizePy: 100 + offsetPy, keyHash: 7 * offsetPy };
}

function open(dir: string, options: { fileSizeBytes?: number; replayFromPos?: number; writeBufferBytes?: number } = {}): { log: TimerLog; replayed: TimerUnit[] } {
  const replayed: TimerUnit[] = [];
  const log = TimerLog.open({
    dir,
    fs: nodeStorageFs,
    fileSizeBytes: options.fileSizeBytes ?? TIMER_UNIT_BYTES * 4,
    replayFromPos: options.replayFromPos ?? 0,
    onReplay: (replay) => replayed.push(replay),
    ...(options.writeBufferBytes === undefined ? {} : { writeBufferBytes: options.writeBufferBytes }),
  });
  return { log, replayed };
}

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('timer log units', () => {
  it('round-trips a unit and refuses one with a flipped bit, a bad magic or a forward link', () => {
    const bytes = new Uint8Array(TIMER_UNIT_BYTES);
    encodeUnit(bytes, 0, { magic: TimerMagic.DEFAULT | TimerMagic.DELETE, prevPos: 112, slotTimeMs: T0, enqueueTimeMs: T0 - 1000, offsetPy: 2 ** 40, sizePy: 321, keyHash: 0xfedc_ba98 });
    expect(decodeUnit(bytes, 0, 168)).toEqual({ pos: 168, magic: 5, prevPos: 112, slotTimeMs: T0, enqueueTimeMs: T0 - 1000, offsetPy: 2 ** 40, sizePy: 321, keyHash: 0xfedc_ba98 });
    expect(keyHashOf('7F0000017E6A18B4AAC2186A3C8D0000')).toBe(keyHashOf('7F0000017E6A18B4AAC2186A3C8D0000'));
    expect(keyHashOf('U1')).not.toBe(keyHashOf('U2'));
    expect(keyHashOf(undefined)).toBe(0);
    // A unit may only link to an earlier one.
    expect(decodeUnit(bytes, 0, 112)).toBeNull();
    for (const at of [0, 5, 12, 20, 33, 41, 45, 50, 54]) {
      const flipped = Uint8Array.from(bytes);
      flipped[at]! ^= 0x10;
      expect(decodeUnit(flipped, 0, 168)).toBeNull();
    }
    expect(decodeUnit(new Uint8Array(TIMER_UNIT_BYTES), 0, 0)).toBeNull();
    expect(() => encodeUnit(bytes, 0, { ...unit(T0, 1), magic: TimerMagic.ROLL })).toThrow(/magic/);
    expect(() => encodeUnit(bytes, 0, { ...unit(T0, 1), sizePy: 0 })).toThrow(/sizePy/);
  });
});

describe('timer log', () => {
  it('appends units across files, reads them back from buffer, cache and disk, and survives a reopen', () => {
    const dir = tempDir();
    const { log } = open(dir, { writeBufferBytes: TIMER_UNIT_BYTES * 3 });
    const positions: number[] = [];
    for (let i = 0; i < 10; i++) positions.push(log.append(unit(T0 + (i % 3) * 1000, i, i === 0 ? -1 : positions[i - 1]!)));
    expect(positions).toEqual(Array.from({ length: 10 }, (_, i) => i * TIMER_UNIT_BYTES));
    expect(log.endPos).toBe(10 * TIMER_UNIT_BYTES);
    for (let i = 9; i >= 0; i--) expect(log.read(positions[i]!)).toMatchObject({ pos: positions[i], offsetPy: i, slotTimeMs: T0 + (i % 3) * 1000 });
    expect(log.read(10 * TIMER_UNIT_BYTES)).toBeNull();
    expect(log.read(7)).toBeNull();
    expect(log.sync()).toBe(10 * TIMER_UNIT_BYTES);
    log.close();
    const names = fs.readdirSync(path.join(dir)).sort();
    expect(names).toEqual(['00000000000000000000', '00000000000000000224', '00000000000000000448']);
    const { log: again, replayed } = open(dir, { replayFromPos: 4 * TIMER_UNIT_BYTES });
    expect(replayed.map((replay) => replay.offsetPy)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(again.recovery).toMatchObject({ unitsScanned: 10, unitsReplayed: 6, tornBytes: 0 });
    expect(again.endPos).toBe(10 * TIMER_UNIT_BYTES);
    expect(again.append(unit(T0, 10))).toBe(10 * TIMER_UNIT_BYTES);
    expect(again.read(3 * TIMER_UNIT_BYTES)).toMatchObject({ offsetPy: 3 });
    expect(again.files().map((file) => file.maxSlotTimeMs)).toEqual([T0 + 2000, T0 + 2000, T0 + 2000]);
    again.close();
  });

  it('cuts a torn tail at the first bad unit and deletes the files after it', () => {
    const dir = tempDir();
    const { log } = open(dir);
    for (let i = 0; i < 10; i++) log.append(unit(T0, i));
    log.sync();
    log.close();
    // Tear unit 5 (the second file's second unit): its CRC no longer matches.
    const second = path.join(dir, '00000000000000000224');
    const bytes = fs.readFileSync(second);
    bytes[TIMER_UNIT_BYTES + 30] ^= 0xff;
    fs.writeFileSync(second, bytes);
    const { log: again, replayed } = open(dir);
    expect(replayed.map((replay) => replay.offsetPy)).toEqual([0, 1, 2, 3, 4]);
    expect(again.endPos).toBe(5 * TIMER_UNIT_BYTES);
    expect(again.recovery.filesDropped).toBe(1);
    expect(again.recovery.tornBytes).toBe(3 * TIMER_UNIT_BYTES + 2 * TIMER_UNIT_BYTES);
    expect(fs.readdirSync(dir).sort()).toEqual(['00000000000000000000', '00000000000000000224']);
    expect(fs.statSync(second).size).toBe(TIMER_UNIT_BYTES);
    // Appends go on where the valid log ends.
    expect(again.append(unit(T0, 50))).toBe(5 * TIMER_UNIT_BYTES);
    again.sync();
    again.close();
    expect(open(dir).replayed.map((replay) => replay.offsetPy)).toEqual([0, 1, 2, 3, 4, 50]);
  });

  it('drops a half-written last unit', () => {
    const dir = tempDir();
    const { log } = open(dir, { fileSizeBytes: TIMER_UNIT_BYTES * 100 });
    for (let i = 0; i < 3; i++) log.append(unit(T0, i));
    log.sync();
    log.close();
    const file = path.join(dir, '00000000000000000000');
    fs.truncateSync(file, 2 * TIMER_UNIT_BYTES + 20);
    const { log: again } = open(dir, { fileSizeBytes: TIMER_UNIT_BYTES * 100 });
    expect(again.endPos).toBe(2 * TIMER_UNIT_BYTES);
    expect(again.recovery.tornBytes).toBe(20);
    expect(fs.statSync(file).size).toBe(2 * TIMER_UNIT_BYTES);
    again.close();
  });

  it('deletes old files only when their slots are all dead and they lie before the synced end', () => {
    const dir = tempDir();
    const { log } = open(dir);
    for (let i = 0; i < 9; i++) log.append(unit(T0 + (i < 4 ? 0 : 5000), i));
    expect(log.deleteOldFiles(() => true, 0)).toBe(0);
    log.sync();
    expect(log.deleteOldFiles((maxSlotTimeMs) => maxSlotTimeMs < T0 + 1000, log.syncedPos)).toBe(1);
    expect(log.firstPos).toBe(4 * TIMER_UNIT_BYTES);
    expect(log.read(0)).toBeNull();
    expect(log.read(4 * TIMER_UNIT_BYTES)).toMatchObject({ offsetPy: 4 });
    // The file being written is never deleted.
    expect(log.deleteOldFiles(() => true, log.syncedPos)).toBe(1);
    expect(log.files().map((file) => file.startPos)).toEqual([8 * TIMER_UNIT_BYTES]);
    log.close();
    const { log: again } = open(dir);
    expect(again.firstPos).toBe(8 * TIMER_UNIT_BYTES);
    expect(again.endPos).toBe(9 * TIMER_UNIT_BYTES);
    again.close();
  });
});
