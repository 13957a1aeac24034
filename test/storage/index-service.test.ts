import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IndexService, indexFileNameOf, timeOfIndexFileName, type IndexServiceOptions } from '../../src/storage/index-service.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import type { StoreCheckpointIndexTail } from '../../src/storage/store-checkpoint.ts';
import { garbageBytes } from './fixtures/torn-index.ts';

const T0 = 1_700_000_000_000;
const ALL_TIME: [number, number] = [0, Number.MAX_SAFE_INTEGER];

let rootDir: string;
let nowMs: number;

beforeEach(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'index-service-test-'));
  nowMs = T0;
});

afterEach(() => {
  fs.rmSync(rootDir, { recursive: true, force: true });
});

function openService(overrides: Partial<IndexServiceOptions> = {}): IndexService {
  return IndexService.open({ storageFs: nodeStorageFs, rootDir, nowMs: () => nowMs, hashSlotNum: 3, indexNum: 5, ...overrides });
}

function indexFileNames(): string[] {
  const dir = path.join(rootDir, 'index');
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** Message n sits at CommitLog offset n*100, stored n seconds after T0, with uniqueKey `U<n>` and key `k<n%2>`. */
function build(service: IndexService, n: number, keys = [`k${n % 2}`]): number {
  return service.buildIndex({ topic: 'TopicTest', keys, uniqueKey: `U${n}`, physicalOffset: n * 100, storeTimestampMs: T0 + n * 1000 });
}

describe('IndexService', () => {
  it('names files yyyyMMddHHmmssSSS (UTC) and reads the names back', () => {
    expect(indexFileNameOf(Date.UTC(2024, 0, 2, 3, 4, 5, 6))).toBe('20240102030405006');
    expect(timeOfIndexFileName('20240102030405006')).toBe(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
    expect(timeOfIndexFileName('2024')).toBeNaN();
  });

  it('indexes topic#uniqueKey and topic#key, rolling to a new file when one is full, and queries across files', () => {
    const service = openService();
    for (let n = 0; n < 6; n++) expect(build(service, n)).toBe(2);
    // 4 keys per file (indexNum 5), 2 keys per message: 3 files, each message whole in one file.
    expect(service.fileCount).toBe(3);
    expect(service.queryOffsets('TopicTest', 'k0', 32, ...ALL_TIME).physicalOffsets).toEqual([400, 200, 0]);
    expect(service.queryOffsets('TopicTest', 'k1', 32, ...ALL_TIME).physicalOffsets).toEqual([500, 300, 100]);
    expect(service.queryOffsets('TopicTest', 'U3', 32, ...ALL_TIME).physicalOffsets).toEqual([300]);
    expect(service.queryOffsets('OtherTopic', 'k1', 32, ...ALL_TIME).physicalOffsets).toEqual([]);
    expect(service.queryOffsets('TopicTest', 'k0', 2, ...ALL_TIME).physicalOffsets).toEqual([400, 200]);
    const recent = service.queryOffsets('TopicTest', 'k0', 32, T0 + 1_500, T0 + 4_000);
    expect(recent).toEqual({ physicalOffsets: [400, 200], lastUpdateTimestampMs: T0 + 5_000, lastUpdatePhyOffset: 500 });
    // Files created in the same millisecond still get increasing names.
    expect(service.indexFiles().map((f) => path.basename(f.path))).toEqual(['20231114221320000', '20231114221320001', '20231114221320002']);
  });

  it('caps a query at queryResultsMax', () => {
    const service = openService({ indexNum: 64, queryResultsMax: 3 });
    for (let n = 0; n < 10; n++) build(service, n, ['same']);
    expect(service.queryOffsets('TopicTest', 'same', 32, ...ALL_TIME).physicalOffsets).toEqual([900, 800, 700]);
  });

  it('skips messages already indexed, so the CommitLog can be replayed', () => {
    const service = openService();
    build(service, 0);
    build(service, 1);
    expect(build(service, 1)).toBe(0);
    expect(build(service, 0)).toBe(0);
    expect(service.indexedUpToPhyOffset).toBe(100);
    expect(service.buildIndex({ topic: 'TopicTest', keys: ['', ''], physicalOffset: 200, storeTimestampMs: T0 })).toBe(0);
    expect(service.queryOffsets('TopicTest', 'k1', 32, ...ALL_TIME).physicalOffsets).toEqual([100]);
  });

  it('reopens after a flush with every file queryable', () => {
    const service = openService();
    for (let n = 0; n < 5; n++) build(service, n);
    service.close();
    expect(indexFileNames()).toHaveLength(3);
    const reopened = openService();
    expect(reopened.recover({ cleanShutdown: true, maxPhysicalOffset: 10_000 })).toBe(400);
    expect(reopened.queryOffsets('TopicTest', 'k0', 32, ...ALL_TIME).physicalOffsets).toEqual([400, 200, 0]);
    build(reopened, 5);
    expect(reopened.queryOffsets('TopicTest', 'k1', 32, ...ALL_TIME).physicalOffsets).toEqual([500, 300, 100]);
  });

  it('after an unclean shutdown deletes the newest file and lets the caller rebuild it from the CommitLog', () => {
    const service = openService();
    for (let n = 0; n < 5; n++) build(service, n);
    service.flush();
    build(service, 5); // never flushed
    // Crash: the object is dropped without a flush.
    const reopened = openService();
    const indexedUpTo = reopened.recover({ cleanShutdown: false, maxPhysicalOffset: 600 });
    expect(indexedUpTo).toBe(300); // the newest file (messages 4 and 5) is gone
    expect(reopened.fileCount).toBe(2);
    for (let n = 0; n < 6; n++) build(reopened, n); // replay: 0..3 are skipped
    expect(reopened.queryOffsets('TopicTest', 'k0', 32, ...ALL_TIME).physicalOffsets).toEqual([400, 200, 0]);
    expect(reopened.queryOffsets('TopicTest', 'k1', 32, ...ALL_TIME).physicalOffsets).toEqual([500, 300, 100]);
  });

  it('truncates to the recovered CommitLog end, deleting files left empty', () => {
    const service = openService();
    for (let n = 0; n < 6; n++) build(service, n);
    service.flush();
    service.truncate(250); // messages 0, 1, 2 stay
    expect(service.fileCount).toBe(2);
    expect(service.indexedUpToPhyOffset).toBe(200);
    expect(service.queryOffsets('TopicTest', 'k0', 32, ...ALL_TIME).physicalOffsets).toEqual([200, 0]);
    expect(service.queryOffsets('TopicTest', 'U3', 32, ...ALL_TIME).physicalOffsets).toEqual([]);
    build(service, 3);
    expect(service.queryOffsets('TopicTest', 'U3', 32, ...ALL_TIME).physicalOffsets).toEqual([300]);
    service.close();
    expect(openService().queryOffsets('TopicTest', 'k1', 32, ...ALL_TIME).physicalOffsets).toEqual([300, 100]);
  });

  it('deletes old files for retention, never the newest', () => {
    const service = openService();
    for (let n = 0; n < 6; n++) build(service, n);
    service.flush();
    expect(service.deleteFilesBefore(250)).toBe(1); // the first file ends at message 1
    expect(indexFileNames()).toHaveLength(2);
    expect(service.queryOffsets('TopicTest', 'k0', 32, ...ALL_TIME).physicalOffsets).toEqual([400, 200]);
    expect(service.deleteFilesBefore(100_000)).toBe(1);
    expect(service.fileCount).toBe(1);
  });

  describe('crash recovery from the tail a checkpoint recorded', () => {
    const big = { hashSlotNum: 7, indexNum: 33 }; // 32 keys per file: 16 messages of two keys
    const keysOf = (n: number): string[] => [`k${n % 3}`, `U${n}`, 'k0', 'k1', 'k2', 'absent'];

    /** Every answer of the service for the keys of messages 0..count-1 (as indexed by `build`). */
    function answers(service: IndexService, count: number): Record<string, number[]> {
      const out: Record<string, number[]> = {};
      for (let n = 0; n < count; n++) {
        for (const key of keysOf(n)) out[key] = service.queryOffsets('TopicTest', key, 64, ...ALL_TIME).physicalOffsets;
      }
      return out;
    }

    /** Builds messages from..to-1 (message n: offset 100n, uniqueKey U<n>, key k<n%3>). */
    function buildRange(service: IndexService, from: number, to: number): void {
      for (let n = from; n < to; n++) build(service, n, [`k${n % 3}`]);
    }

    /** The answers of a service that indexed messages from..to-1 in a directory of its own, and never crashed. */
    function answersOfFresh(from: number, to: number, count: number): Record<string, number[]> {
      const ownDir = fs.mkdtempSync(path.join(os.tmpdir(), 'index-service-reference-'));
      try {
        const fresh = IndexService.open({ storageFs: nodeStorageFs, rootDir: ownDir, nowMs: () => T0, ...big });
        buildRange(fresh, from, to);
        return answers(fresh, count);
      } finally {
        fs.rmSync(ownDir, { recursive: true, force: true });
      }
    }

    /** Overwrites slots, header counts and every entry past `keep` of the newest file with garbage. */
    function tear(keep: number, seed: number): void {
      const file = path.join(rootDir, 'index', indexFileNames().at(-1)!);
      const bytes = fs.readFileSync(file);
      const garbage = garbageBytes(seed);
      const entriesAt = 40 + big.hashSlotNum * 4;
      garbage(big.hashSlotNum * 4).copy(bytes, 40);
      garbage(bytes.length - (entriesAt + (keep + 1) * 20)).copy(bytes, entriesAt + (keep + 1) * 20);
      bytes.writeInt32BE(big.indexNum - 1, 36);
      fs.writeFileSync(file, bytes);
    }

    it('records the newest file, its geometry and its header', () => {
      const service = openService(big);
      expect(service.tail()).toBeNull();
      buildRange(service, 0, 3);
      const tail = service.tail()!;
      expect(tail).toEqual({
        fileName: '20231114221320000', // nowMs is T0; the file is still only in memory
        hashSlotNum: 7,
        indexNum: 33,
        header: { beginTimestampMs: T0, endTimestampMs: T0 + 2_000, beginPhyOffset: 0, endPhyOffset: 200, hashSlotCount: 6, indexCount: 7 },
      });
    });

    it('keeps the durable entries of the newest file, answering exactly as if only they had been indexed', () => {
      const service = openService(big);
      buildRange(service, 0, 5);
      service.flush();
      const tail = service.tail()!; // the checkpoint: messages 0..4, ten keys
      buildRange(service, 5, 12); // written after the checkpoint, then the crash
      service.flush();
      tear(tail.header.indexCount - 1, 11);
      const recovered = openService(big);
      expect(recovered.recoverFromTail(tail)).toBe('restored');
      expect(recovered.indexedUpToPhyOffset).toBe(400);
      const reference = answersOfFresh(0, 5, 12);
      expect(answers(recovered, 12)).toEqual(reference);
      expect(recovered.queryOffsets('TopicTest', 'U7', 64, ...ALL_TIME).physicalOffsets).toEqual([]);
      // The CommitLog replay re-indexes the lost messages (0..4 are skipped), as if nothing had crashed.
      buildRange(recovered, 0, 12);
      const neverCrashed = answersOfFresh(0, 12, 12);
      expect(answers(recovered, 12)).toEqual(neverCrashed);
      recovered.close();
      expect(answers(openService(big), 12)).toEqual(neverCrashed);
    });

    it('deletes a newest file started after the checkpoint and keeps the complete ones before it', () => {
      const service = openService(big);
      buildRange(service, 0, 10);
      service.flush();
      const tail = service.tail()!;
      buildRange(service, 10, 40); // rolls twice: files 2 and 3 start after the checkpoint
      service.flush();
      expect(indexFileNames()).toHaveLength(3);
      tear(0, 5); // the newest file is all garbage but for its header's begin fields
      const recovered = openService(big);
      expect(recovered.recoverFromTail(tail)).toBe('newerDropped');
      expect(indexFileNames()).toHaveLength(2);
      expect(recovered.indexedUpToPhyOffset).toBe(3100); // the second file, complete, ends at message 31
      buildRange(recovered, 0, 40);
      expect(answers(recovered, 40)).toEqual(answersOfFresh(0, 40, 40));
      expect(recovered.queryOffsets('TopicTest', 'k1', 64, ...ALL_TIME).physicalOffsets).toEqual(
        Array.from({ length: 40 }, (_, n) => 39 - n).filter((n) => n % 3 === 1).map((n) => n * 100),
      );
    });

    it('deletes the newest file when the checkpoint saw none, and has nothing to do without files', () => {
      const empty = openService(big);
      expect(empty.recoverFromTail(null)).toBe('kept');
      buildRange(empty, 0, 20);
      empty.flush();
      const recovered = openService(big);
      expect(recovered.recoverFromTail(null)).toBe('newerDropped');
      expect(recovered.fileCount).toBe(1);
      expect(recovered.indexedUpToPhyOffset).toBe(1500);
    });

    it('answers null and changes nothing when the record does not describe the files', () => {
      const service = openService(big);
      buildRange(service, 0, 5);
      service.flush();
      const tail = service.tail()!;
      buildRange(service, 5, 8);
      service.flush();
      const file = path.join(rootDir, 'index', indexFileNames()[0]!);
      const before = fs.readFileSync(file);
      const mismatches: StoreCheckpointIndexTail[] = [
        { ...tail, fileName: '29991231235959999' }, // a file that is not there, newer than the newest
        { ...tail, hashSlotNum: 8 },
        { ...tail, header: { ...tail.header, endPhyOffset: 500 } }, // entries that do not replay to it
      ];
      for (const mismatch of mismatches) {
        const reopened = openService(big);
        expect(reopened.recoverFromTail(mismatch)).toBeNull();
        expect(reopened.fileCount).toBe(1);
        expect(fs.readFileSync(file).equals(before)).toBe(true);
      }
      expect(openService(big).recoverFromTail({ ...tail, fileName: '19991231235959999', header: tail.header })).toBe('newerDropped');
    });
  });
});
