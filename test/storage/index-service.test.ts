import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IndexService, indexFileNameOf, timeOfIndexFileName, type IndexServiceOptions } from '../../src/storage/index-service.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

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
});
