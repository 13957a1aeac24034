/**
 * The message store through its actors (commit-log-writer on the `commitlog` pool, commit-log-flusher on
 * `store`) on real temp directories: round trips, queue offsets, tag filters, key queries, SYNC_FLUSH
 * acknowledgements and their group commit, the disk-full refusal, and a clean restart. The facade's own
 * dispatch rule is checked in-process first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem, HostTuning } from '../../src/runtime/actor-system.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats, FlushAnswer } from '../../src/actors/commit-log-writer.ts';
import { STORE_POOL_SIZES, spawnStore, type StoreWriterSettings } from '../../src/actors/store-actors.ts';
import { decodeRecord, encodeMessageProperties, offsetMessageId } from '../../src/storage/message-record.ts';
import {
  MessageStore,
  type EncodedBatch,
  type EncodedPut,
  type MessageStoreOptions,
  type PutBatchResult,
  encodeBatch,
  encodePut,
  isPutRefusal,
  type GetMessageResult,
  type PutMessageInput,
  type PutMessageResult,
  type StoreRecoveryReport,
  type StoredMessage,
} from '../../src/storage/message-store.ts';
import type { DiskCheck } from '../../src/storage/retention.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { type StoreCheckpoint, readStoreCheckpoint, writeStoreCheckpoint } from '../../src/storage/store-checkpoint.ts';
import { startTestSystem } from '../runtime/helpers.ts';
import { SEAM, seamBuffer } from './fixtures/store-seams.ts';
import { RegionAppender, type RegionGrant } from '../../src/storage/append-region.ts';
import { buildIndexKey } from '../../src/storage/index-service.ts';
import { expectedKeyOffsets, scanCommitLog, tearIndexAfterCheckpoint } from './fixtures/torn-index.ts';
import { smallStoreSettings } from './fixtures/small-store.ts';

const STORE_HOST = { address: '10.0.0.7', port: 10911 };
const seams = new URL('./fixtures/store-seams.ts', import.meta.url).href;
const ASK_MS = 5_000;

let dir: string;
let system: ActorSystem | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'message-store-'));
});

afterEach(async () => {
  await system?.shutdown();
  system = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

function settings(overrides: Partial<StoreWriterSettings> = {}): StoreWriterSettings {
  return smallStoreSettings(dir, STORE_HOST, overrides);
}

/** Starts a system with the store pools and the store's actors; `seam` selects the controlled fs. */
async function startStore(overrides: Partial<StoreWriterSettings> = {}, seam?: SharedArrayBuffer, tuning: Partial<HostTuning> = {}): Promise<ActorRef<CommitLogWriterMessage>> {
  system = await startTestSystem({ ...STORE_POOL_SIZES }, {}, { askTimeoutMs: ASK_MS, ...tuning });
  const controlled = seam === undefined ? {} : {
    writerBehavior: { module: seams, export: 'controlledWriter' },
    flusherBehavior: { module: seams, export: 'controlledFlusher' },
  };
  const { writer } = await spawnStore(system, { settings: { ...settings(overrides), seam }, ...controlled });
  return writer;
}

function ask<R>(writer: ActorRef<CommitLogWriterMessage>, message: CommitLogWriterMessage): Promise<R> {
  return system!.ask<CommitLogWriterMessage, R>(writer, message, ASK_MS);
}

function input(topic: string, queueId: number, body: string, properties: Record<string, string> = {}): PutMessageInput {
  return { topic, queueId, body: Buffer.from(body), properties: encodeMessageProperties(properties), bornTimestampMs: 1_700_000_000_000 };
}

const put = (writer: ActorRef<CommitLogWriterMessage>, message: PutMessageInput) => ask<PutMessageResult>(writer, { type: 'put', message });

function get(writer: ActorRef<CommitLogWriterMessage>, topic: string, queueId: number, queueOffset: number, maxMsgNums = 32, tags?: string[]) {
  return ask<GetMessageResult>(writer, { type: 'get', topic, queueId, queueOffset, maxMsgNums, tags });
}

const bodyOf = (message: StoredMessage): string => Buffer.from(decodeRecord(message.record, 0).body).toString('utf8');

const offsetIdOf = (physicalOffset: number): string => offsetMessageId(STORE_HOST, physicalOffset);

/** What the flusher does for the writer: fdatasync the request's files, then write its checkpoint. */
function syncElsewhere(store: MessageStore): void {
  const request = store.takeSyncRequest();
  if (request === null) return;
  for (const file of request.paths) {
    const fd = fs.openSync(file, 'r+');
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
  }
  if (request.checkpoint !== null) writeStoreCheckpoint(nodeStorageFs, dir, request.checkpoint satisfies StoreCheckpoint);
  store.completeSync(request);
}

describe('MessageStore facade', () => {
  it('makes entries visible only after dispatch, and keeps them across a crash', () => {
    const options = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH' as const, storeHost: STORE_HOST, mappedFileSizeCommitLog: 64 * 1024 };
    const store = MessageStore.open(options);
    const result = store.appendMessage(input('TopicA', 0, 'first'));
    expect(result).toMatchObject({ status: 'PUT_OK', physicalOffset: 0, queueOffset: 0 });
    expect(store.getMessage('TopicA', 0, 0, 1).status).toBe('NO_MESSAGE_IN_QUEUE');
    expect(store.dispatch()).toBe(1);
    expect(store.getMessage('TopicA', 0, 0, 1).messages.map(bodyOf)).toEqual(['first']);
    store.flushCommitLog();
    store.close(); // a crash: no checkpoint, abort file left behind
    const reopened = MessageStore.open(options);
    expect(reopened.recovery).toMatchObject({ cleanShutdown: false, maxOffset: result.wroteBytes });
    expect(reopened.getMessage('TopicA', 0, 0, 1).messages.map(bodyOf)).toEqual(['first']);
    expect(reopened.appendMessage(input('TopicA', 0, 'second')).queueOffset).toBe(1);
    reopened.shutdown();
    expect(fs.existsSync(path.join(dir, 'abort'))).toBe(false);
  });

  it('without a trusted offset (RocketMQ\'s checkpoint), starts at the newest file older than the checkpoint, less 3 s', () => {
    let nowMs = 1_700_000_000_000;
    const clock = { nowMs: () => (nowMs += 1_000) }; // one second per message
    const options = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH' as const, storeHost: STORE_HOST, mappedFileSizeCommitLog: 4096, clock };
    // What a Java broker (or an older version) leaves: Java's 40 bytes, no extension.
    const javaCheckpoint = (): void => {
      const { trustedPhysicalOffset: _, bootId: __, indexTail: ___, ...fields } = readStoreCheckpoint(nodeStorageFs, dir)!;
      writeStoreCheckpoint(nodeStorageFs, dir, fields);
    };
    const store = MessageStore.open(options);
    for (let i = 0; i < 40; i++) store.appendMessage(input('TopicA', 0, `${i}`.padEnd(400, '.')));
    store.shutdown();
    javaCheckpoint();
    const files = fs.readdirSync(path.join(dir, 'commitlog')).sort();
    expect(files.length).toBeGreaterThan(3);
    let reopened = MessageStore.open(options);
    // Eight records per file: the last file's first record is 7 s older than the checkpoint.
    expect(reopened.recovery.scanStartOffset).toBe(Number(files.at(-1)));
    expect(reopened.recovery.entriesReplayed).toBe(0);
    expect(reopened.getMessage('TopicA', 0, 0, 32).messages).toHaveLength(32);
    for (let i = 40; i < 42; i++) reopened.appendMessage(input('TopicA', 0, `${i}`.padEnd(400, '.')));
    reopened.shutdown();
    javaCheckpoint();
    reopened = MessageStore.open(options);
    // Now the last file's first record is only 1 s older: within the margin, so one file earlier.
    expect(fs.readdirSync(path.join(dir, 'commitlog')).sort().at(-2)).toBe(files.at(-1));
    expect(reopened.recovery.scanStartOffset).toBe(Number(files.at(-1)));
    expect(reopened.getMessage('TopicA', 0, 40, 32).messages).toHaveLength(2);
    reopened.shutdown();
  });

  it('after a crash, verifies and replays only what lies past the checkpoint\'s trusted offset', () => {
    const options: MessageStoreOptions = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: STORE_HOST, mappedFileSizeCommitLog: 16 * 1024 };
    const store = MessageStore.open(options);
    for (let i = 0; i < 50; i++) store.appendMessage(input('TopicA', i % 2, `before-${i}`.padEnd(300, '.')));
    // The writer's periodic round: write everything, sync it elsewhere, then the checkpoint.
    store.writeConsumeQueues();
    syncElsewhere(store);
    const trusted = store.maxPhysicalOffset;
    expect(readStoreCheckpoint(nodeStorageFs, dir)?.trustedPhysicalOffset).toBe(trusted);
    for (let i = 0; i < 7; i++) store.appendMessage(input('TopicA', i % 2, `after-${i}`));
    store.dispatch();
    store.writeCommitLog(); // in the OS, not synced, not checkpointed
    store.close(); // kill -9
    const reopened = MessageStore.open(options);
    expect(reopened.recovery).toMatchObject({ cleanShutdown: false, scanFromOffset: trusted, recordsScanned: 7, entriesReplayed: 7, tailCheck: 'window' });
    expect(reopened.getMessage('TopicA', 0, 0, 32).messages.map(bodyOf).at(-1)).toBe('after-6');
    expect(reopened.queueRange('TopicA', 1)).toEqual({ minOffset: 0, maxOffset: 28 });
    // Recovery made what it rebuilt durable under a new checkpoint before taking writes.
    expect(readStoreCheckpoint(nodeStorageFs, dir)?.trustedPhysicalOffset).toBe(reopened.maxPhysicalOffset);
    reopened.shutdown();
  });

  describe('crash with keyed messages and torn index pages', () => {
    const FILE_BYTES = 16 * 1024;
    const options = (): MessageStoreOptions => ({
      rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: STORE_HOST, mappedFileSizeCommitLog: FILE_BYTES,
      maxHashSlotNum: 7, maxIndexNum: 128, bootId: 'cd'.repeat(16),
    });
    /** Message i as a client sends it: a UNIQ_KEY of 32 hex digits, its own key and one that many share. */
    const keyed = (i: number): PutMessageInput =>
      input('TopicK', i % 3, `keyed-${i}`.padEnd(200, '.'), { UNIQ_KEY: i.toString(16).toUpperCase().padStart(32, '0'), KEYS: `order-${i} shared` });

    /** Every key query answers exactly the messages a scan of the CommitLog finds under that key. */
    function expectKeysMatchCommitLog(store: MessageStore, sent: number): void {
      const expected = expectedKeyOffsets(scanCommitLog(dir, FILE_BYTES, store.maxPhysicalOffset));
      expect(expected.get(buildIndexKey('TopicK', 'shared'))).toHaveLength(sent);
      const keys = ['shared', 'absent', ...Array.from({ length: sent }, (_, i) => [`order-${i}`, i.toString(16).toUpperCase().padStart(32, '0')]).flat()];
      for (const key of keys) {
        const want = (expected.get(buildIndexKey('TopicK', key)) ?? []).slice(0, 64);
        expect(store.queryByKey('TopicK', key, 64).map((m) => m.physicalOffset), key).toEqual(want);
      }
    }

    /** Puts `count` keyed messages from `from`, then the writer's periodic round with its checkpoint. */
    function putAndCheckpoint(store: MessageStore, from: number, count: number): number {
      for (let i = from; i < from + count; i++) expect(store.appendMessage(keyed(i)).status).toBe('PUT_OK');
      store.writeConsumeQueues();
      syncElsewhere(store);
      return store.maxPhysicalOffset;
    }

    /** Puts more, writes everything to the files (kill -9 keeps it) without the sync or checkpoint, and crashes. */
    function putAndCrash(store: MessageStore, from: number, count: number): void {
      for (let i = from; i < from + count; i++) expect(store.appendMessage(keyed(i)).status).toBe('PUT_OK');
      store.writeConsumeQueues();
      store.takeSyncRequest(); // handed to the flusher, which dies with the process
      store.close();
    }

    it('restores the newest index file to what the checkpoint vouched for and replays only past the trusted offset', () => {
      const store = MessageStore.open(options());
      const trusted = putAndCheckpoint(store, 0, 20); // 60 of the first index file's 127 keys
      expect(readStoreCheckpoint(nodeStorageFs, dir)?.indexTail).toMatchObject({ hashSlotNum: 7, indexNum: 128, header: { indexCount: 61 } });
      putAndCrash(store, 20, 10); // 30 more keys, same file
      expect(tearIndexAfterCheckpoint(dir, 17)).toBe('tail-file');
      const reopened = MessageStore.open(options());
      expect(reopened.recovery).toMatchObject({ indexFileRestored: true, indexFileDropped: false, scanFromOffset: trusted, recordsScanned: 10 });
      expectKeysMatchCommitLog(reopened, 30);
      // The next crash finds the checkpoint recovery wrote, and the replayed keys in it.
      putAndCrash(reopened, 30, 5);
      expect(tearIndexAfterCheckpoint(dir, 18)).toBe('tail-file');
      const again = MessageStore.open(options());
      expect(again.recovery).toMatchObject({ indexFileRestored: true, recordsScanned: 5 });
      expectKeysMatchCommitLog(again, 35);
      again.shutdown();
    });

    it('drops a newest index file started after the checkpoint, keeping the complete ones', () => {
      const store = MessageStore.open(options());
      const trusted = putAndCheckpoint(store, 0, 20);
      putAndCrash(store, 20, 70); // 210 more keys: two new index files after the checkpoint (127 keys each)
      expect(fs.readdirSync(path.join(dir, 'index'))).toHaveLength(3);
      expect(tearIndexAfterCheckpoint(dir, 19)).toBe('newer-file');
      const reopened = MessageStore.open(options());
      expect(reopened.recovery).toMatchObject({ indexFileRestored: false, indexFileDropped: true, scanFromOffset: trusted, recordsScanned: 70 });
      expectKeysMatchCommitLog(reopened, 90);
      reopened.shutdown();
    });

    it('falls back to rebuilding the newest index file from its first message when it does not match the record', () => {
      const store = MessageStore.open(options());
      putAndCheckpoint(store, 0, 20);
      putAndCrash(store, 20, 10);
      tearIndexAfterCheckpoint(dir, 20);
      // A durable entry damaged too (beyond what any crash does): the record cannot be trusted for this file.
      const indexDir = path.join(dir, 'index');
      const file = path.join(indexDir, fs.readdirSync(indexDir).sort().at(-1)!);
      const bytes = fs.readFileSync(file);
      const entry5 = 40 + 7 * 4 + 5 * 20;
      bytes.writeInt32BE(bytes.readInt32BE(entry5) ^ 0x10, entry5);
      fs.writeFileSync(file, bytes);
      const reopened = MessageStore.open(options());
      expect(reopened.recovery).toMatchObject({ indexFileRestored: false, indexFileDropped: true, scanFromOffset: 0, recordsScanned: 30 });
      expectKeysMatchCommitLog(reopened, 30);
      reopened.shutdown();
    });
  });

  it('reads everything past the end of the log when the checkpoint is from another boot', () => {
    const options: MessageStoreOptions = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: STORE_HOST, mappedFileSizeCommitLog: 16 * 1024, bootId: 'aa'.repeat(16) };
    const store = MessageStore.open(options);
    for (let i = 0; i < 20; i++) store.appendMessage(input('TopicA', 0, `m-${i}`));
    store.writeConsumeQueues();
    syncElsewhere(store);
    store.close();
    const sameBoot = MessageStore.open(options);
    expect(sameBoot.recovery.tailCheck).toBe('window');
    sameBoot.close();
    expect(readStoreCheckpoint(nodeStorageFs, dir)?.bootId).toBe('aa'.repeat(16));
    const otherBoot = MessageStore.open({ ...options, bootId: 'bb'.repeat(16) });
    expect(otherBoot.recovery.tailCheck).toBe('full');
    expect(otherBoot.getMessage('TopicA', 0, 0, 32).messages).toHaveLength(20);
    otherBoot.close();
    const unknownBoot = MessageStore.open({ ...options, bootId: null });
    expect(unknownBoot.recovery.tailCheck).toBe('full');
    unknownBoot.shutdown();
  });

  it('gives every record encodePut builds bytes of its own, however many it builds', () => {
    // Records are carved from shared slabs: none may overlap another or change once built.
    const sizes = [1, 700, 5000, 64 * 1024, 90_000, 3];
    const built = Array.from({ length: 600 }, (_, i) => {
      const body = Buffer.alloc(sizes[i % sizes.length]!, i % 251);
      const encoded = encodePut({ ...input('TopicS', i % 4, ''), body }, STORE_HOST, 1 << 20, 1_700_000_000_000) as EncodedPut;
      expect(isPutRefusal(encoded)).toBe(false);
      return { body, encoded };
    });
    for (const { body, encoded } of built) {
      const record = decodeRecord(encoded.record, 0);
      expect(record.totalSize).toBe(encoded.record.length);
      expect(Buffer.from(record.body).equals(body)).toBe(true);
    }
  });

  it('stores a RocketMQ batch encoded elsewhere: one queue, consecutive offsets, one answer', () => {
    const options: MessageStoreOptions = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: STORE_HOST, mappedFileSizeCommitLog: 64 * 1024 };
    const store = MessageStore.open(options);
    expect(store.appendMessage(input('TopicB', 2, 'single')).queueOffset).toBe(0);
    const inputs = Array.from({ length: 10 }, (_, i) => input('TopicB', 2, `batched-${i}`, i % 2 === 0 ? { TAGS: 'even', KEYS: `k${i}` } : {}));
    const batch = encodeBatch(inputs, STORE_HOST, 4096, 1_700_000_000_000) as EncodedBatch;
    expect(isPutRefusal(batch)).toBe(false);
    const result: PutBatchResult = store.appendEncodedBatch(batch);
    expect(result).toMatchObject({ status: 'PUT_OK', queueOffset: 1, msgNum: 10, wroteBytes: batch.records.length });
    const msgIds = result.msgId.split(',');
    expect(msgIds).toHaveLength(10);
    store.dispatch();
    const read = store.getMessage('TopicB', 2, 1, 32);
    expect(read.messages.map(bodyOf)).toEqual(inputs.map((m) => Buffer.from(m.body).toString()));
    expect(read.messages.map((m) => m.queueOffset)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(read.messages[0]!.physicalOffset).toBe(result.physicalOffset);
    expect(msgIds[3]).toBe(offsetIdOf(read.messages[3]!.physicalOffset));
    expect(store.getMessage('TopicB', 2, 0, 32, { tags: ['even'] }).messages).toHaveLength(5);
    expect(store.queryByKey('TopicB', 'k4', 4).map(bodyOf)).toEqual(['batched-4']);
    store.flushCommitLog();
    store.close();
    const reopened = MessageStore.open(options);
    expect(reopened.queueRange('TopicB', 2)).toEqual({ minOffset: 0, maxOffset: 11 });
    reopened.shutdown();
  });

  it('refuses batches it cannot store as one RocketMQ batch', () => {
    const store = MessageStore.open({ rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: STORE_HOST, mappedFileSizeCommitLog: 64 * 1024 });
    const refusal = (inputs: PutMessageInput[]) => encodeBatch(inputs, STORE_HOST, 4096, 0) as PutMessageResult;
    expect(refusal([input('TopicB', 0, 'a'), input('TopicB', 1, 'b')])).toMatchObject({ status: 'MESSAGE_ILLEGAL' });
    expect(refusal([{ ...input('TopicB', 0, 'a'), sysFlag: 0x4 }])).toMatchObject({ status: 'MESSAGE_ILLEGAL' });
    expect(refusal([])).toMatchObject({ status: 'MESSAGE_ILLEGAL' });
    expect(refusal(Array.from({ length: 30 }, () => input('TopicB', 0, 'x'.repeat(4000))))).toMatchObject({ status: 'MESSAGE_ILLEGAL' });
    // A batch for another broker's store host is refused by the writer, and takes no queue offsets.
    const foreign = encodeBatch([input('TopicB', 0, 'a')], { address: '10.9.9.9', port: 1 }, 4096, 0) as EncodedBatch;
    expect(store.appendEncodedBatch(foreign)).toMatchObject({ status: 'MESSAGE_ILLEGAL', msgNum: 0 });
    expect(store.appendEncodedBatch({ ...foreign, topic: 'bad topic' })).toMatchObject({ status: 'MESSAGE_ILLEGAL' });
    expect(store.appendMessage(input('TopicB', 0, 'next')).queueOffset).toBe(0);
    store.shutdown();
  });

  it('refuses what it cannot store with RocketMQ statuses', () => {
    const store = MessageStore.open({ rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: STORE_HOST, mappedFileSizeCommitLog: 256 * 1024, maxMessageSize: 1024, consumeQueuesMax: 1 });
    expect(store.appendMessage(input('bad topic!', 0, 'x')).status).toBe('MESSAGE_ILLEGAL');
    expect(store.appendMessage(input('TopicA', -1, 'x')).status).toBe('MESSAGE_ILLEGAL');
    expect(store.appendMessage(input('TopicA', 0, 'x'.repeat(1025))).status).toBe('MESSAGE_ILLEGAL');
    expect(store.appendMessage({ ...input('TopicA', 0, 'x'), properties: 'no-separator' }).status).toBe('MESSAGE_ILLEGAL');
    expect(store.appendMessage(input('TopicA', 0, 'x')).status).toBe('PUT_OK');
    expect(store.appendMessage(input('TopicA', 1, 'x')).status).toBe('LMQ_CONSUME_QUEUE_NUM_EXCEEDED');
    store.shutdown();
    expect(store.appendMessage(input('TopicA', 0, 'x')).status).toBe('SERVICE_NOT_AVAILABLE');
  });
});

describe('store actors', () => {
  it('round-trips messages with per-queue offsets and RocketMQ read statuses', async () => {
    const writer = await startStore();
    const sent: { topic: string; queueId: number; body: string; result: PutMessageResult }[] = [];
    for (let i = 0; i < 60; i++) {
      const topic = i % 3 === 0 ? 'TopicB' : 'TopicA';
      const queueId = i % 2;
      const body = `message-${i}-${'x'.repeat(i * 7)}`;
      sent.push({ topic, queueId, body, result: await put(writer, input(topic, queueId, body)) });
    }
    for (const target of [['TopicA', 0], ['TopicA', 1], ['TopicB', 0], ['TopicB', 1]] as const) {
      const mine = sent.filter((s) => s.topic === target[0] && s.queueId === target[1]);
      expect(mine.map((s) => s.result.queueOffset)).toEqual(mine.map((_, i) => i));
      expect(mine.every((s) => s.result.status === 'PUT_OK' && s.result.msgId.length === 32)).toBe(true);
      const read = await get(writer, target[0], target[1], 0, 32);
      expect(read).toMatchObject({ status: 'FOUND', minOffset: 0, maxOffset: mine.length, nextBeginOffset: mine.length });
      expect(read.messages.map(bodyOf)).toEqual(mine.map((s) => s.body));
      expect(read.messages.map((m) => m.physicalOffset)).toEqual(mine.map((s) => s.result.physicalOffset));
    }
    const partial = await get(writer, 'TopicA', 0, 3, 2);
    expect(partial.messages.map((m) => m.queueOffset)).toEqual([3, 4]);
    expect(partial.nextBeginOffset).toBe(5);
    expect((await get(writer, 'TopicA', 0, 20)).status).toBe('OFFSET_OVERFLOW_ONE');
    expect((await get(writer, 'TopicA', 0, 99)).status).toBe('OFFSET_OVERFLOW_BADLY');
    expect((await get(writer, 'TopicC', 0, 0)).status).toBe('NO_MATCHED_LOGIC_QUEUE');
    expect(await ask(writer, { type: 'queueRange', topic: 'TopicB', queueId: 1 })).toEqual({ minOffset: 0, maxOffset: 10 });
  });

  it('filters by tag and skips filtered entries in nextBeginOffset', async () => {
    const writer = await startStore();
    for (let i = 0; i < 12; i++) await put(writer, input('TopicT', 0, `m${i}`, { TAGS: i % 3 === 0 ? 'TagA' : 'TagB' }));
    const onlyA = await get(writer, 'TopicT', 0, 0, 32, ['TagA']);
    expect(onlyA.messages.map(bodyOf)).toEqual(['m0', 'm3', 'm6', 'm9']);
    expect(onlyA.nextBeginOffset).toBe(12);
    const fromOne = await get(writer, 'TopicT', 0, 1, 1, ['TagA']);
    expect(fromOne.messages.map((m) => m.queueOffset)).toEqual([3]);
    expect(fromOne.nextBeginOffset).toBe(4);
    expect((await get(writer, 'TopicT', 0, 0, 32, ['TagC'])).status).toBe('NO_MATCHED_MESSAGE');
    expect((await get(writer, 'TopicT', 0, 0, 32, ['*'])).messages).toHaveLength(12);
    expect((await get(writer, 'TopicT', 0, 0, 32, ['TagA', 'TagB'])).messages).toHaveLength(12);
  });

  it('finds messages by key and unique key, within their topic only', async () => {
    const writer = await startStore();
    await put(writer, input('TopicK', 0, 'order', { KEYS: 'order-1 customer-9', UNIQ_KEY: 'AC11000100002A9F0000000000000001' }));
    await put(writer, input('TopicK', 1, 'other', { KEYS: 'order-2' }));
    await put(writer, input('TopicL', 0, 'elsewhere', { KEYS: 'order-1' }));
    const query = (topic: string, key: string) => ask<StoredMessage[]>(writer, { type: 'queryByKey', topic, key, maxNum: 10 });
    expect((await query('TopicK', 'order-1')).map(bodyOf)).toEqual(['order']);
    expect((await query('TopicK', 'customer-9')).map(bodyOf)).toEqual(['order']);
    expect((await query('TopicK', 'AC11000100002A9F0000000000000001')).map(bodyOf)).toEqual(['order']);
    expect((await query('TopicL', 'order-1')).map(bodyOf)).toEqual(['elsewhere']);
    expect(await query('TopicK', 'order-3')).toEqual([]);
  });

  it('acknowledges SYNC_FLUSH puts only once durable, many puts sharing one fdatasync', async () => {
    const writer = await startStore({ flushDiskType: 'SYNC_FLUSH' });
    const bodies = Array.from({ length: 64 }, (_, i) => `sync-${i}`);
    // Sent in one turn: they reach the writer in one batch and share a sync.
    const results = await Promise.all(bodies.map((body, i) => put(writer, input('TopicS', i % 4, body))));
    expect(results.every((r) => r.status === 'PUT_OK')).toBe(true);
    const stats = await ask<CommitLogWriterStats>(writer, { type: 'stats' });
    const lastEnd = Math.max(...results.map((r) => r.physicalOffset + r.wroteBytes));
    expect(stats.durableOffset).toBeGreaterThanOrEqual(lastEnd);
    expect(stats.syncedMessages).toBe(64);
    expect(stats.commitLogFdatasyncs).toBeGreaterThan(0);
    expect(stats.commitLogFdatasyncs).toBeLessThan(16);
    // The durable bytes are in the file, not only in the writer's page cache.
    const file = fs.readFileSync(path.join(dir, 'commitlog', '00000000000000000000'));
    expect(file.includes(Buffer.from('sync-63'))).toBe(true);
    const flushed = await ask<FlushAnswer>(writer, { type: 'flush' });
    expect(flushed).toEqual({ flushed: true, offset: lastEnd });
  });

  it('answers a RocketMQ batch once, under SYNC_FLUSH only once it is durable', async () => {
    for (const flushDiskType of ['ASYNC_FLUSH', 'SYNC_FLUSH'] as const) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      const writer = await startStore({ flushDiskType });
      const batch = encodeBatch(Array.from({ length: 16 }, (_, i) => input('TopicQ', 1, `q-${i}`)), STORE_HOST, 32 * 1024, 0) as EncodedBatch;
      const result = await ask<PutBatchResult>(writer, { type: 'putEncodedBatch', batch });
      expect(result).toMatchObject({ status: 'PUT_OK', queueOffset: 0, msgNum: 16 });
      if (flushDiskType === 'SYNC_FLUSH') {
        const stats = await ask<CommitLogWriterStats>(writer, { type: 'stats' });
        expect(stats.durableOffset).toBeGreaterThanOrEqual(result.physicalOffset + result.wroteBytes);
        expect(stats.syncedMessages).toBe(16);
      }
      expect((await get(writer, 'TopicQ', 1, 0)).messages.map(bodyOf)).toEqual(Array.from({ length: 16 }, (_, i) => `q-${i}`));
      await system!.shutdown();
      system = undefined;
    }
  });

  it('answers an ASYNC_FLUSH put only once its bytes are in the file, even when a turn runs past its budget', async () => {
    const seam = seamBuffer();
    // A zero turn budget: after 256 puts the writer's turn yields (sending what it has to send) before
    // the tick queued behind the puts writes them; the stalled write keeps that tick's bytes out meanwhile.
    const writer = await startStore({ flushDiskType: 'ASYNC_FLUSH' }, seam, { turnBudgetMs: 0 });
    const words = new Int32Array(seam);
    Atomics.store(words, SEAM.stallMaxMs, 300);
    Atomics.store(words, SEAM.stallWrite, 1);
    let fd: number | undefined;
    const unwrittenAtAnswer: number[] = [];
    const bodies = Array.from({ length: 600 }, (_, i) => `async-written-${String(i).padStart(4, '0')}`);
    // Sent in one turn: they reach the writer in one batch, more than one writer turn's worth.
    const results = await Promise.all(bodies.map(async (body, i) => {
      const result = await put(writer, input('TopicW', i % 4, body));
      // What the file holds where the answer says the record is, read the moment the answer arrives.
      const record = Buffer.alloc(result.wroteBytes);
      fd ??= fs.openSync(path.join(dir, 'commitlog', '00000000000000000000'), 'r');
      fs.readSync(fd, record, 0, record.length, result.physicalOffset);
      if (!record.includes(Buffer.from(body))) unwrittenAtAnswer.push(i);
      return result;
    }));
    if (fd !== undefined) fs.closeSync(fd);
    Atomics.store(words, SEAM.stallWrite, 0);
    Atomics.notify(words, SEAM.stallWrite);
    expect(results.every((r) => r.status === 'PUT_OK')).toBe(true);
    expect(unwrittenAtAnswer).toEqual([]);
  });

  it('answers FLUSH_DISK_TIMEOUT when fdatasync stalls past syncFlushTimeout, and keeps the message', async () => {
    const seam = seamBuffer();
    const writer = await startStore({ flushDiskType: 'SYNC_FLUSH', syncFlushTimeoutMs: 200 }, seam);
    const words = new Int32Array(seam);
    Atomics.store(words, SEAM.stallMaxMs, 3_000);
    Atomics.store(words, SEAM.stallSync, 1);
    const result = await put(writer, input('TopicS', 0, 'slow'));
    expect(result.status).toBe('FLUSH_DISK_TIMEOUT');
    expect(result.queueOffset).toBe(0);
    Atomics.store(words, SEAM.stallSync, 0);
    Atomics.notify(words, SEAM.stallSync);
    expect((await get(writer, 'TopicS', 0, 0)).messages.map(bodyOf)).toEqual(['slow']);
    expect((await put(writer, input('TopicS', 0, 'fast'))).status).toBe('PUT_OK');
  });

  it('answers FLUSH_DISK_TIMEOUT when an fdatasync fails, and restarts the writer from the files', async () => {
    const seam = seamBuffer();
    const writer = await startStore({ flushDiskType: 'SYNC_FLUSH' }, seam);
    const words = new Int32Array(seam);
    expect((await put(writer, input('TopicE', 0, 'a'))).status).toBe('PUT_OK');
    Atomics.store(words, SEAM.failSync, 1); // one transient EIO
    const failed = await put(writer, input('TopicE', 0, 'b'));
    expect(failed).toMatchObject({ status: 'FLUSH_DISK_TIMEOUT', queueOffset: 1 });
    // The restarted writer recovered as after a crash: 'b' reached the file before the sync failed.
    const recovery = await ask<StoreRecoveryReport>(writer, { type: 'recovery' });
    expect(recovery).toMatchObject({ cleanShutdown: false, corruptions: [] });
    expect(await put(writer, input('TopicE', 0, 'c'))).toMatchObject({ status: 'PUT_OK', queueOffset: 2 });
    expect((await get(writer, 'TopicE', 0, 0)).messages.map(bodyOf)).toEqual(['a', 'b', 'c']);
  });

  it('refuses puts with SERVICE_NOT_AVAILABLE while the disk is full, still serves reads, and resumes', async () => {
    const seam = seamBuffer();
    const writer = await startStore({}, seam);
    const words = new Int32Array(seam);
    expect((await put(writer, input('TopicD', 0, 'before'))).status).toBe('PUT_OK');
    Atomics.store(words, SEAM.usagePercent, 95);
    expect((await ask<DiskCheck>(writer, { type: 'checkDisk' })).diskFull).toBe(true);
    const refused = await put(writer, input('TopicD', 0, 'while full'));
    expect(refused.status).toBe('SERVICE_NOT_AVAILABLE');
    expect(refused.remark).toContain("the broker's disk is full");
    expect((await get(writer, 'TopicD', 0, 0)).messages.map(bodyOf)).toEqual(['before']);
    // Between the clean-forcibly (85%) and warning (90%) ratios the mark stays: RocketMQ's hysteresis.
    Atomics.store(words, SEAM.usagePercent, 88);
    await ask(writer, { type: 'checkDisk' });
    expect((await put(writer, input('TopicD', 0, 'still full'))).status).toBe('SERVICE_NOT_AVAILABLE');
    Atomics.store(words, SEAM.usagePercent, 50);
    expect((await ask<DiskCheck>(writer, { type: 'checkDisk' })).diskFull).toBe(false);
    expect(await put(writer, input('TopicD', 0, 'after'))).toMatchObject({ status: 'PUT_OK', queueOffset: 1 });
    expect((await get(writer, 'TopicD', 0, 0)).messages.map(bodyOf)).toEqual(['before', 'after']);
  });

  it('closes the append region while the disk is full, so that send threads reserve nothing, and reopens it after', async () => {
    const seam = seamBuffer();
    const writer = await startStore({}, seam);
    const words = new Int32Array(seam);
    const batch = (body: string) => {
      const encoded = encodeBatch([{ topic: 'TopicG', queueId: 0, body: Buffer.from(body) }], STORE_HOST, 4096, Date.now());
      if (isPutRefusal(encoded)) throw new Error(encoded.remark);
      return encoded;
    };
    // A batch with its bytes makes the region worth opening.
    expect(await ask<PutMessageResult>(writer, { type: 'putEncodedBatch', batch: batch('first') })).toMatchObject({ status: 'PUT_OK' });
    const grant = await ask<RegionGrant | null>(writer, { type: 'regionGrant' });
    expect(grant).not.toBeNull();
    const appender = new RegionAppender();
    appender.grant(grant!);
    Atomics.store(words, SEAM.usagePercent, 95);
    expect((await ask<DiskCheck>(writer, { type: 'checkDisk' })).diskFull).toBe(true);
    expect(await ask<RegionGrant | null>(writer, { type: 'regionGrant' })).toBeNull();
    expect(appender.reserve(100)).toBe('closed');
    expect(await ask<PutMessageResult>(writer, { type: 'putEncodedBatch', batch: batch('while full') })).toMatchObject({ status: 'SERVICE_NOT_AVAILABLE' });
    Atomics.store(words, SEAM.usagePercent, 50);
    expect((await ask<DiskCheck>(writer, { type: 'checkDisk' })).diskFull).toBe(false);
    expect(await ask<RegionGrant | null>(writer, { type: 'regionGrant' })).not.toBeNull();
    expect(appender.reserve(100)).toMatchObject({ generation: grant!.generation });
  });

  it('keeps every message, offset and key across a clean restart', async () => {
    let writer = await startStore();
    const expected = new Map<string, string[]>();
    for (let i = 0; i < 300; i++) {
      const queueId = i % 3;
      const body = `restart-${i}-${'y'.repeat(500)}`; // crosses several 256 KiB CommitLog files
      await put(writer, input('TopicR', queueId, body, { TAGS: 'T', KEYS: `key-${i}` }));
      expected.set(String(queueId), [...(expected.get(String(queueId)) ?? []), body]);
    }
    await system!.shutdown();
    system = undefined;
    expect(fs.existsSync(path.join(dir, 'abort'))).toBe(false);
    writer = await startStore();
    const recovery = await ask<StoreRecoveryReport>(writer, { type: 'recovery' });
    expect(recovery).toMatchObject({ cleanShutdown: true, entriesReplayed: 0, tornTail: null, corruptions: [] });
    for (const [queueId, bodies] of expected) {
      const read: string[] = [];
      let offset = 0;
      while (offset < bodies.length) {
        const batch = await get(writer, 'TopicR', Number(queueId), offset, 32);
        read.push(...batch.messages.map(bodyOf));
        offset = batch.nextBeginOffset;
      }
      expect(read).toEqual(bodies);
    }
    expect((await put(writer, input('TopicR', 0, 'next'))).queueOffset).toBe(100);
    const found = await ask<StoredMessage[]>(writer, { type: 'queryByKey', topic: 'TopicR', key: 'key-7', maxNum: 4 });
    expect(found.map(bodyOf)).toEqual([expected.get('1')![2]]);
  });
});
