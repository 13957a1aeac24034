import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/runtime/assert.ts';
import {
  INDEX_ENTRY_SIZE_BYTES,
  INDEX_HEADER_SIZE_BYTES,
  INDEX_SLOT_SIZE_BYTES,
  IndexFile,
  type IndexHeader,
  indexFileSizeBytes,
  indexKeyHash,
  type IndexFileOptions,
} from '../../src/storage/index-file.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { javaStringHashCode } from '../../src/storage/tag-hash.ts';
import { garbageBytes } from './fixtures/torn-index.ts';

const T0 = 1_700_000_000_000;
const EVERYTHING: [number, number] = [0, Number.MAX_SAFE_INTEGER];

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'index-file-test-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function options(hashSlotNum: number, indexNum: number, name = '20240101000000000'): IndexFileOptions {
  return { storageFs: nodeStorageFs, path: path.join(dir, name), hashSlotNum, indexNum };
}

/** Key i of the restore tests: seven keys, two of which ("T#Aa", "T#BB") share a Java hash. */
const restoreKey = (i: number): string => ['T#k0', 'T#k1', 'T#Aa', 'T#BB', 'T#k2', 'T#k3', 'T#k4'][(i * 5) % 7]!;
const restoreKeys = ['T#k0', 'T#k1', 'T#Aa', 'T#BB', 'T#k2', 'T#k3', 'T#k4', 'T#late'];

/** Puts keys from..to-1 of the restore tests: offsets 100*i, two puts per second; key i >= 40 is "T#late". */
function putRestoreKeys(file: IndexFile, from: number, to: number): void {
  for (let i = from; i < to; i++) expect(file.putKey(i >= 40 ? 'T#late' : restoreKey(i), 100 * i, T0 + 500 * i)).toBe(true);
}

/** Every query answer of a file for the restore tests' keys, over all time and over a window. */
function answers(file: IndexFile): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const key of restoreKeys) {
    out[key] = file.selectPhyOffsets(key, 64, ...EVERYTHING);
    out[`${key}@window`] = file.selectPhyOffsets(key, 64, T0 + 3_000, T0 + 9_000);
  }
  return out;
}

describe('IndexFile', () => {
  it('asks touchAhead for fresh entry pages past the next 64 KiB as keys go in, once each, and the keys stay found', () => {
    const calls: { from: number; to: number; at: number }[] = [];
    let keys = 0;
    const file = IndexFile.create({ ...options(1_000, 40_000), touchAhead: (buffer, from, to) => {
      expect(buffer.byteLength).toBe(file.fileSizeBytes);
      calls.push({ from, to, at: INDEX_HEADER_SIZE_BYTES + 1_000 * INDEX_SLOT_SIZE_BYTES + (keys + 1) * INDEX_ENTRY_SIZE_BYTES });
    } });
    for (; keys < 39_999; keys++) expect(file.putKey(`T#k${keys}`, 100 * keys, T0)).toBe(true);
    expect(calls.length).toBeGreaterThan(2);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.from).toBe(calls[i - 1]!.to);
    expect(calls.at(-1)!.to).toBe(file.fileSizeBytes);
    for (const call of calls) {
      expect(call.from).toBeGreaterThan(call.at);
      expect(call.to - call.from).toBeLessThanOrEqual(256 * 1024);
    }
    expect(file.selectPhyOffsets('T#k39998', 8, ...EVERYTHING)).toEqual([100 * 39_998]);
  });

  it('finds keys through chains that share one slot, newest first', () => {
    const file = IndexFile.create(options(1, 16)); // one slot: every key chains through it
    file.putKey('T#a', 100, T0);
    file.putKey('T#b', 200, T0);
    file.putKey('T#a', 300, T0 + 1000);
    file.putKey('T#c', 400, T0 + 2000);
    file.putKey('T#a', 500, T0 + 3000);
    expect(file.selectPhyOffsets('T#a', 10, ...EVERYTHING)).toEqual([500, 300, 100]);
    expect(file.selectPhyOffsets('T#b', 10, ...EVERYTHING)).toEqual([200]);
    expect(file.selectPhyOffsets('T#zzz', 10, ...EVERYTHING)).toEqual([]);
    expect(file.selectPhyOffsets('T#a', 2, ...EVERYTHING)).toEqual([500, 300]);
    expect(file.keyCount).toBe(5);
  });

  it('answers for every key with the same hash (callers check the real key)', () => {
    expect(javaStringHashCode('T#Aa')).toBe(javaStringHashCode('T#BB'));
    const file = IndexFile.create(options(7, 16));
    file.putKey('T#Aa', 100, T0);
    file.putKey('T#BB', 200, T0);
    expect(file.selectPhyOffsets('T#Aa', 10, ...EVERYTHING)).toEqual([200, 100]);
  });

  it('filters by store time at one-second granularity relative to beginTimestamp', () => {
    const file = IndexFile.create(options(3, 16));
    file.putKey('T#k', 100, T0 + 250); // beginTimestamp = T0 + 250, timeDiff 0
    file.putKey('T#k', 200, T0 + 2_900); // timeDiff 2 s: read back as T0 + 2250
    file.putKey('T#k', 300, T0 + 5_250); // timeDiff 5 s: T0 + 5250
    expect(file.selectPhyOffsets('T#k', 10, T0 + 2_000, T0 + 3_000)).toEqual([200]);
    expect(file.selectPhyOffsets('T#k', 10, T0 + 2_251, T0 + 9_000)).toEqual([300]);
    expect(file.selectPhyOffsets('T#k', 10, T0, T0 + 2_250)).toEqual([200, 100]);
    expect(file.isTimeMatched(T0 + 6_000, T0 + 7_000)).toBe(false);
    expect(file.isTimeMatched(T0, T0 + 1)).toBe(false);
    expect(file.isTimeMatched(T0, T0 + 10_000)).toBe(true);
    expect(file.isTimeMatched(T0 + 1_000, T0 + 1_000)).toBe(true);
  });

  it('holds indexNum - 1 keys and then answers false', () => {
    const file = IndexFile.create(options(2, 4));
    expect([1, 2, 3].map((n) => file.putKey(`T#${n}`, n, T0))).toEqual([true, true, true]);
    expect(file.isWriteFull).toBe(true);
    expect(file.putKey('T#4', 4, T0)).toBe(false);
    expect(file.keyCount).toBe(3);
  });

  it('refuses keys out of CommitLog order', () => {
    const file = IndexFile.create(options(2, 8));
    file.putKey('T#a', 500, T0);
    expect(() => file.putKey('T#b', 400, T0)).toThrow(AssertionError);
  });

  it('writes RocketMQ\'s layout: 40-byte header, 4-byte slots, 20-byte entries from number 1', () => {
    const hashSlotNum = 5;
    const indexNum = 6;
    const file = IndexFile.create(options(hashSlotNum, indexNum));
    file.putKey('T#a', 1234, T0);
    file.putKey('T#b', 5678, T0 + 3_500);
    file.putKey('T#a', 9999, T0 + 7_000);
    file.flush();
    const bytes = fs.readFileSync(file.path);
    expect(bytes.length).toBe(indexFileSizeBytes(hashSlotNum, indexNum));
    expect(bytes.length).toBe(40 + 5 * 4 + 6 * 20);
    expect(bytes.readBigInt64BE(0)).toBe(BigInt(T0)); // beginTimestamp
    expect(bytes.readBigInt64BE(8)).toBe(BigInt(T0 + 7_000)); // endTimestamp
    expect(bytes.readBigInt64BE(16)).toBe(1234n); // beginPhyOffset
    expect(bytes.readBigInt64BE(24)).toBe(9999n); // endPhyOffset
    expect(bytes.readInt32BE(32)).toBe(3); // hashSlotCount (counts puts)
    expect(bytes.readInt32BE(36)).toBe(4); // indexCount: next entry number
    const hashA = indexKeyHash('T#a');
    const slotA = INDEX_HEADER_SIZE_BYTES + (hashA % hashSlotNum) * 4;
    expect(bytes.readInt32BE(slotA)).toBe(3); // newest entry for T#a
    const entry = (n: number): number => INDEX_HEADER_SIZE_BYTES + hashSlotNum * 4 + n * 20;
    expect(bytes.subarray(entry(0), entry(1)).every((b) => b === 0)).toBe(true); // entry 0 is unused
    expect(bytes.readInt32BE(entry(3))).toBe(hashA);
    expect(bytes.readBigInt64BE(entry(3) + 4)).toBe(9999n);
    expect(bytes.readInt32BE(entry(3) + 12)).toBe(7); // seconds since beginTimestamp
    expect(bytes.readInt32BE(entry(3) + 16)).toBe(1); // previous T#a entry
    expect(bytes.readInt32BE(entry(2) + 12)).toBe(3); // 3.5 s truncates to 3
  });

  it('reopens a flushed file from its header and reads it from disk without a page cache', () => {
    const created = IndexFile.create(options(3, 32));
    for (let i = 0; i < 20; i++) created.putKey(`T#k${i % 4}`, i * 10, T0 + i * 1000);
    created.flush();
    const opened = IndexFile.open(options(3, 32));
    expect(opened.sharedBuffer).toBeUndefined();
    expect(opened.headerFields).toEqual({
      beginTimestampMs: T0,
      endTimestampMs: T0 + 19_000,
      beginPhyOffset: 0,
      endPhyOffset: 190,
      hashSlotCount: 20,
      indexCount: 21,
    });
    expect(opened.selectPhyOffsets('T#k1', 10, ...EVERYTHING)).toEqual([170, 130, 90, 50, 10]);
    expect(opened.selectPhyOffsets('T#k1', 10, T0 + 5_000, T0 + 13_000)).toEqual([130, 90, 50]);
    // A reopened file can take more keys once its cache is loaded.
    expect(opened.putKey('T#k1', 200, T0 + 20_000)).toBe(true);
    expect(opened.selectPhyOffsets('T#k1', 2, ...EVERYTHING)).toEqual([200, 170]);
  });

  it('refuses a file whose size does not match its shape, with a stable code', () => {
    const created = IndexFile.create(options(3, 8));
    created.putKey('T#a', 1, T0);
    created.flush();
    expect(() => IndexFile.open(options(4, 8))).toThrow(expect.objectContaining({ code: 'INDEX_FILE_SIZE_MISMATCH' }));
  });

  it('truncates the entries past a CommitLog offset, restoring every chain, durably', () => {
    const file = IndexFile.create(options(2, 32));
    for (let i = 0; i < 12; i++) file.putKey(`T#k${i % 3}`, i * 100, T0 + i * 1000);
    file.flush();
    expect(file.truncate(750)).toBe(4); // entries at 800..1100 go
    expect(file.headerFields).toMatchObject({ indexCount: 9, endPhyOffset: 700, endTimestampMs: T0 + 7_000, hashSlotCount: 8 });
    expect(file.selectPhyOffsets('T#k0', 10, ...EVERYTHING)).toEqual([600, 300, 0]);
    expect(file.selectPhyOffsets('T#k2', 10, ...EVERYTHING)).toEqual([500, 200]);
    const reopened = IndexFile.open(options(2, 32));
    expect(reopened.selectPhyOffsets('T#k1', 10, ...EVERYTHING)).toEqual([700, 400, 100]);
    expect(reopened.putKey('T#k2', 800, T0 + 8_000)).toBe(true);
    expect(reopened.selectPhyOffsets('T#k2', 10, ...EVERYTHING)).toEqual([800, 500, 200]);
    expect(reopened.truncate(0)).toBe(9);
    expect(reopened.keyCount).toBe(0);
    expect(reopened.selectPhyOffsets('T#k2', 10, ...EVERYTHING)).toEqual([]);
  });

  describe('restore after a crash', () => {
    const SLOTS = 11; // more slots than keys: some slots have no durable entry and must read as empty
    const ENTRIES = 64;
    const DURABLE = 17; // entries the checkpoint vouched for
    const WRITTEN = 45; // entries written before the crash (the last five under a key only they use)
    const entryAt = (n: number): number => INDEX_HEADER_SIZE_BYTES + SLOTS * INDEX_SLOT_SIZE_BYTES + n * INDEX_ENTRY_SIZE_BYTES;

    /** A file that took WRITTEN keys and crashed with everything after DURABLE torn; returns the durable header. */
    function crashedFile(seed: number): IndexHeader {
      const file = IndexFile.create(options(SLOTS, ENTRIES));
      putRestoreKeys(file, 0, DURABLE);
      file.flush();
      const durable = file.headerFields;
      putRestoreKeys(file, DURABLE, WRITTEN);
      file.flush();
      // Pages written after the checkpoint come back as anything: slots, header counts, later entries.
      const bytes = fs.readFileSync(file.path);
      const garbage = garbageBytes(seed);
      garbage(SLOTS * INDEX_SLOT_SIZE_BYTES).copy(bytes, INDEX_HEADER_SIZE_BYTES);
      garbage(bytes.length - entryAt(DURABLE + 1)).copy(bytes, entryAt(DURABLE + 1));
      bytes.writeInt32BE(ENTRIES - 3, 36);
      bytes.writeInt32BE(12_345, 32);
      fs.writeFileSync(file.path, bytes);
      return durable;
    }

    /** The file a store would have had with only the durable entries, built fresh under another name. */
    function referenceFile(): IndexFile {
      const file = IndexFile.create(options(SLOTS, ENTRIES, '20240101000000001'));
      putRestoreKeys(file, 0, DURABLE);
      file.flush();
      return file;
    }

    it('keeps the durable entries and rebuilds slot heads and header byte for byte as a file built with only them', () => {
      for (const seed of [1, 2, 3]) {
        const durable = crashedFile(seed);
        const torn = IndexFile.open(options(SLOTS, ENTRIES));
        expect(torn.restore(durable)).toBe(true);
        expect(torn.headerFields).toEqual(durable);
        const reference = referenceFile();
        const restoredBytes = fs.readFileSync(torn.path);
        const referenceBytes = fs.readFileSync(reference.path);
        // Header, every slot and entries 0..DURABLE are what building only those entries writes.
        expect(restoredBytes.subarray(0, entryAt(DURABLE + 1)).equals(referenceBytes.subarray(0, entryAt(DURABLE + 1)))).toBe(true);
        expect(answers(torn)).toEqual(answers(reference));
        // Nothing written after the checkpoint answers: not the later keys, not later offsets of older keys.
        expect(torn.selectPhyOffsets('T#late', 64, ...EVERYTHING)).toEqual([]);
        expect(Object.values(answers(torn)).flat().every((offset) => offset <= durable.endPhyOffset)).toBe(true);
        // Reopened from disk (no cache), it still answers as the reference.
        expect(answers(IndexFile.open(options(SLOTS, ENTRIES)))).toEqual(answers(reference));
        fs.rmSync(torn.path);
        fs.rmSync(reference.path);
      }
    });

    it('takes the lost keys again and then answers as a file that never crashed', () => {
      const durable = crashedFile(7);
      const restored = IndexFile.open(options(SLOTS, ENTRIES));
      expect(restored.restore(durable)).toBe(true);
      putRestoreKeys(restored, DURABLE, WRITTEN); // the CommitLog replay
      restored.flush();
      const neverCrashed = IndexFile.create(options(SLOTS, ENTRIES, '20240101000000002'));
      putRestoreKeys(neverCrashed, 0, WRITTEN);
      neverCrashed.flush();
      expect(answers(restored)).toEqual(answers(neverCrashed));
      expect(answers(IndexFile.open(options(SLOTS, ENTRIES)))).toEqual(answers(neverCrashed));
      expect(restored.headerFields).toEqual(neverCrashed.headerFields);
      expect(restored.selectPhyOffsets('T#late', 64, ...EVERYTHING)).toEqual([4400, 4300, 4200, 4100, 4000]);
    });

    it('refuses, leaving the file untouched, when the entries on disk do not replay to the header', () => {
      const durable = crashedFile(9);
      const file = path.join(dir, '20240101000000000');
      const before = fs.readFileSync(file);
      // A damaged durable entry: its prevIndex no longer names its slot's previous head.
      const damaged = Buffer.from(before);
      damaged.writeInt32BE(damaged.readInt32BE(entryAt(DURABLE - 2) + 16) + 1, entryAt(DURABLE - 2) + 16);
      fs.writeFileSync(file, damaged);
      expect(IndexFile.open(options(SLOTS, ENTRIES)).restore(durable)).toBe(false);
      expect(fs.readFileSync(file).equals(damaged)).toBe(true);
      fs.writeFileSync(file, before);
      // A header that claims another last offset, or more entries than were durable (entry 18 is garbage).
      expect(IndexFile.open(options(SLOTS, ENTRIES)).restore({ ...durable, endPhyOffset: durable.endPhyOffset + 1 })).toBe(false);
      expect(IndexFile.open(options(SLOTS, ENTRIES)).restore({ ...durable, indexCount: durable.indexCount + 1 })).toBe(false);
      expect(IndexFile.open(options(SLOTS, ENTRIES)).restore({ ...durable, beginPhyOffset: 1 })).toBe(false);
      expect(IndexFile.open(options(SLOTS, ENTRIES)).restore({ ...durable, indexCount: ENTRIES + 1 })).toBe(false);
      expect(fs.readFileSync(file).equals(before)).toBe(true);
      expect(IndexFile.open(options(SLOTS, ENTRIES)).restore(durable)).toBe(true);
    });
  });

  describe('the periodic flush (flushEntries)', () => {
    // Slots over several pages (20,000 bytes), so that pages holding only slots exist.
    const SLOTS = 5_000;
    const ENTRIES = 1_000;
    const KEYS = 300;
    const PAGE = 4096;
    const entryAt = (n: number): number => INDEX_HEADER_SIZE_BYTES + SLOTS * INDEX_SLOT_SIZE_BYTES + n * INDEX_ENTRY_SIZE_BYTES;
    const keyOf = (i: number): string => `T#key-${(i * 7919) % 1_000}`;
    const put = (file: IndexFile, from: number, to: number): void => {
      for (let i = from; i < to; i++) expect(file.putKey(keyOf(i), 100 * i, T0 + 10 * i)).toBe(true);
    };

    it('writes the header and the entries but no page of slots alone, and restore() rebuilds the rest', () => {
      const file = IndexFile.create(options(SLOTS, ENTRIES));
      put(file, 0, KEYS);
      file.flushEntries();
      const reference = IndexFile.create(options(SLOTS, ENTRIES, '20240101000000001'));
      put(reference, 0, KEYS);
      reference.flush();
      const onDisk = fs.readFileSync(file.path);
      const full = fs.readFileSync(reference.path);
      // The header and every entry are as a whole flush writes them.
      expect(onDisk.subarray(0, INDEX_HEADER_SIZE_BYTES).equals(full.subarray(0, INDEX_HEADER_SIZE_BYTES))).toBe(true);
      expect(onDisk.subarray(entryAt(1), entryAt(KEYS)).equals(full.subarray(entryAt(1), entryAt(KEYS)))).toBe(true);
      // The pages between the header's and the first entry's hold only slots: still zero on disk, though
      // keys were put in them.
      const slotsOnly = full.subarray(PAGE, Math.floor(entryAt(1) / PAGE) * PAGE);
      expect(slotsOnly.some((byte) => byte !== 0)).toBe(true);
      expect(onDisk.subarray(PAGE, Math.floor(entryAt(1) / PAGE) * PAGE).every((byte) => byte === 0)).toBe(true);

      // A crash now: restore() from the header the checkpoint recorded gives the whole file back.
      const restored = IndexFile.open(options(SLOTS, ENTRIES));
      expect(restored.restore(file.headerFields)).toBe(true);
      expect(fs.readFileSync(restored.path).equals(full)).toBe(true);
    });

    it('leaves the slot pages dirty for flush(), which writes the file whole', () => {
      const file = IndexFile.create(options(SLOTS, ENTRIES));
      put(file, 0, KEYS / 2);
      file.flushEntries();
      put(file, KEYS / 2, KEYS);
      file.flushEntries();
      file.flush();
      const reference = IndexFile.create(options(SLOTS, ENTRIES, '20240101000000001'));
      put(reference, 0, KEYS);
      reference.flush();
      expect(fs.readFileSync(file.path).equals(fs.readFileSync(reference.path))).toBe(true);
      // Clean now: the cache may be dropped, and the file answers from disk as the reference does.
      file.releaseCache();
      for (let i = 0; i < KEYS; i += 37) {
        expect(file.selectPhyOffsets(keyOf(i), 8, ...EVERYTHING)).toEqual(reference.selectPhyOffsets(keyOf(i), 8, ...EVERYTHING));
      }
    });
  });
});
