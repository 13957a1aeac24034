import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodeEpochFile,
  encodeEpochFile,
  EPOCH_FILE_NAME,
  EpochCache,
  EpochFileError,
  findConsistentPoint,
  readEpochFile,
  writeEpochFile,
} from '../../src/storage/epoch-file.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

describe('EpochCache', () => {
  it('appends entries whose epochs increase and offsets do not decrease', () => {
    const cache = new EpochCache();
    expect(cache.lastEpoch).toBe(-1);
    expect(cache.append(1, 0)).toEqual({ ok: true });
    expect(cache.append(2, 100)).toEqual({ ok: true });
    expect(cache.append(3, 100)).toEqual({ ok: true });
    expect(cache.append(3, 200)).toMatchObject({ ok: false, code: 'EPOCH_NOT_INCREASING' });
    expect(cache.append(2, 300)).toMatchObject({ ok: false, code: 'EPOCH_NOT_INCREASING' });
    expect(cache.append(4, 99)).toMatchObject({ ok: false, code: 'OFFSET_DECREASING' });
    expect(cache.entries).toEqual([
      { epoch: 1, startOffset: 0 },
      { epoch: 2, startOffset: 100 },
      { epoch: 3, startOffset: 100 },
    ]);
    expect(cache.lastEpoch).toBe(3);
  });

  it('ends an epoch where the next starts, and the last at the log end', () => {
    const cache = new EpochCache([
      { epoch: 1, startOffset: 0 },
      { epoch: 2, startOffset: 100 },
      { epoch: 4, startOffset: 250 },
    ]);
    expect(cache.endOffsetOf(1, 400)).toBe(100);
    expect(cache.endOffsetOf(2, 400)).toBe(250);
    expect(cache.endOffsetOf(4, 400)).toBe(400);
    expect(cache.endOffsetOf(3, 400)).toBeUndefined();
    expect(cache.ranges(400).map((range) => range.endOffset)).toEqual([100, 250, 400]);
  });

  it('cuts the entries that start at or after a truncation offset', () => {
    const cache = new EpochCache([
      { epoch: 1, startOffset: 0 },
      { epoch: 2, startOffset: 100 },
      { epoch: 3, startOffset: 200 },
    ]);
    cache.truncateSuffix(150);
    expect(cache.entries.map((entry) => entry.epoch)).toEqual([1, 2]);
    cache.truncateSuffix(100);
    expect(cache.entries.map((entry) => entry.epoch)).toEqual([1]);
    cache.truncateSuffix(0);
    expect(cache.entries).toEqual([]);
  });

  it('refuses entries that break the invariants at construction', () => {
    expect(() => new EpochCache([{ epoch: 2, startOffset: 0 }, { epoch: 1, startOffset: 5 }])).toThrow();
    expect(() => new EpochCache([{ epoch: 1, startOffset: 10 }, { epoch: 2, startOffset: 5 }])).toThrow();
  });
});

describe('findConsistentPoint', () => {
  it('takes the smaller end of the highest epoch both hold with the same start', () => {
    // The old master wrote epoch 1 up to 180; the new master took over at 150 with epoch 2.
    const oldMaster = { entries: [{ epoch: 1, startOffset: 0 }], maxOffset: 180 };
    const newMaster = { entries: [{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 150 }], maxOffset: 400 };
    expect(findConsistentPoint(oldMaster, newMaster)).toBe(150);
    expect(findConsistentPoint(newMaster, oldMaster)).toBe(150);
  });

  it('skips an epoch whose start differs and finds none without a shared epoch', () => {
    const a = { entries: [{ epoch: 1, startOffset: 0 }, { epoch: 3, startOffset: 50 }], maxOffset: 90 };
    const b = { entries: [{ epoch: 1, startOffset: 0 }, { epoch: 3, startOffset: 60 }], maxOffset: 90 };
    expect(findConsistentPoint(a, b)).toBe(50);
    expect(findConsistentPoint({ entries: [{ epoch: 2, startOffset: 0 }], maxOffset: 10 }, { entries: [{ epoch: 1, startOffset: 0 }], maxOffset: 10 })).toBe(-1);
  });

  it('ignores entries for bytes a log does not hold yet', () => {
    // A slave that copied its master's list (epoch 2 from 100) but holds only 80 bytes.
    const slave = { entries: [{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 100 }], maxOffset: 80 };
    const other = { entries: [{ epoch: 1, startOffset: 0 }], maxOffset: 120 };
    expect(findConsistentPoint(slave, other)).toBe(80);
  });
});

describe('epoch file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-epoch-'));
    dirs.push(dir);
    return dir;
  }

  it('writes epochFileCheckpoint atomically and reads it back', () => {
    const dir = tempDir();
    expect(readEpochFile(nodeStorageFs, dir)).toEqual([]);
    const cache = new EpochCache();
    cache.append(1, 0);
    cache.append(7, 2 ** 40);
    writeEpochFile(nodeStorageFs, dir, cache);
    expect(fs.readdirSync(dir)).toEqual([EPOCH_FILE_NAME]);
    expect(readEpochFile(nodeStorageFs, dir)).toEqual(cache.entries);
  });

  it('reports a damaged file as corrupt instead of guessing', () => {
    const bytes = encodeEpochFile([{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 64 }]);
    expect(decodeEpochFile(bytes)).toHaveLength(2);
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => decodeEpochFile(flipped)).toThrow(EpochFileError);
    expect(() => decodeEpochFile(bytes.subarray(0, bytes.length - 1))).toThrow(/bytes for 2 entries/);
    const badMagic = Uint8Array.from(bytes);
    badMagic[0] = 0;
    expect(() => decodeEpochFile(badMagic)).toThrow(/magic/);
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, EPOCH_FILE_NAME), flipped);
    expect(() => readEpochFile(nodeStorageFs, dir)).toThrow(expect.objectContaining({ code: 'EPOCH_FILE_CORRUPT' }));
  });
});
