/**
 * The append region (src/storage/append-region.ts): the reservation word's rules as a fast-check model,
 * then send threads appending in place through real worker threads while the main thread puts the
 * ordinary way, across many file rolls, checked message by message through the writer and again after
 * the store is reopened.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AppendRegionControl, RegionAppender, type RegionGrant } from '../../src/storage/append-region.ts';
import { ActorSystem } from '../../src/runtime/actor-system.ts';
import { STORE_POOL_SIZES, spawnStore } from '../../src/actors/store-actors.ts';
import type { CommitLogWriterMessage, CommitLogWriterStats, GetAnswer } from '../../src/actors/commit-log-writer.ts';
import type { CommitLogFlusherMessage, CommitLogFlusherStats } from '../../src/actors/commit-log-flusher.ts';
import { MessageStore, encodeBatch, isPutRefusal, type PutMessageResult, type StoredMessage } from '../../src/storage/message-store.ts';
import { decodeRecord, parseOffsetMessageId } from '../../src/storage/message-record.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { indexFileSizeBytes } from '../../src/storage/index-file.ts';
import { testSystemOptions } from '../runtime/helpers.ts';
import { regionBody, regionQueueOf, type RegionSenderMessage, type RegionSent } from './fixtures/region-sender-actor.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function grantOf(control: AppendRegionControl, generation: number, fileStartOffset: number, limit: number): RegionGrant {
  return { control: control.control, epoch: 7, generation, cache: new SharedArrayBuffer(limit + 8), cacheOffset: 0, fileStartOffset, limit };
}

describe('AppendRegionControl and RegionAppender', () => {
  it('grant reservations that never overlap, stay within the limit and the open generation, and none while closed', () => {
    const LIMIT = 1_000;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('reserve' as const), appender: fc.nat(2), bytes: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ kind: fc.constant('close' as const) }),
      fc.record({ kind: fc.constant('reopen' as const), newFile: fc.boolean(), grow: fc.nat(100) }),
      fc.record({ kind: fc.constant('regrant' as const), appender: fc.nat(2) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const control = new AppendRegionControl();
        let generation = control.open(0, true);
        let fileStart = 0;
        let grant = grantOf(control, generation, fileStart, LIMIT);
        const appenders = [new RegionAppender(), new RegionAppender(), new RegionAppender()];
        for (const appender of appenders) appender.grant(grant);
        // The model: the reserved end of the open generation, whether it is open.
        let reserved = 0;
        let open = true;
        const taken: { generation: number; from: number; to: number }[] = [];
        for (const step of ops) {
          if (step.kind === 'reserve') {
            const appender = appenders[step.appender]!;
            const result = appender.reserve(step.bytes);
            if (appender.generation !== generation) {
              expect(result).toBe('stale');
            } else if (!open) {
              expect(result).toBe('closed');
            } else if (reserved + step.bytes > LIMIT) {
              expect(result).toBe('full');
              open = false;
              expect(control.read().closed).toBe(true);
            } else {
              expect(result).toEqual({ generation, position: reserved, physicalOffset: fileStart + reserved });
              taken.push({ generation, from: reserved, to: reserved + step.bytes });
              reserved += step.bytes;
            }
          } else if (step.kind === 'close') {
            expect(control.close()).toBe(reserved);
            open = false;
          } else if (step.kind === 'reopen') {
            if (open) control.close();
            if (step.newFile) {
              fileStart += LIMIT + 8;
              reserved = 0;
            } else {
              reserved = Math.min(LIMIT, reserved + step.grow);
            }
            const before = generation;
            generation = control.open(reserved, step.newFile);
            expect(generation === before).toBe(!step.newFile);
            if (step.newFile) grant = grantOf(control, generation, fileStart, LIMIT);
            open = true;
          } else {
            appenders[step.appender]!.grant(grant);
          }
        }
        // Within a generation, reservations tile upward without overlap.
        for (let i = 1; i < taken.length; i++) {
          const [a, b] = [taken[i - 1]!, taken[i]!];
          if (a.generation === b.generation) expect(b.from).toBeGreaterThanOrEqual(a.to);
          expect(b.to).toBeLessThanOrEqual(LIMIT);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses to reopen below what was reserved in the same file', () => {
    const control = new AppendRegionControl();
    const generation = control.open(100, true);
    const appender = new RegionAppender();
    appender.grant(grantOf(control, generation, 0, 1_000));
    expect(appender.reserve(50)).toMatchObject({ position: 100 });
    expect(control.close()).toBe(150);
    expect(() => control.open(120, false)).toThrow(/below what was reserved/);
  });
});

const FILE_BYTES = 256 * 1024;
const TOPIC = 'RegionTopic';
const QUEUES = 5;

/** A temp dir, removed after the test. */
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** An actor system with the store's pools and silent logs, for tests that drive one writer by hand. */
function quietStoreSystem(): Promise<ActorSystem> {
  return ActorSystem.start(testSystemOptions({ ...STORE_POOL_SIZES }, { log: pino({ level: 'silent' }), logLevel: 'silent' }, { askTimeoutMs: 30_000 }));
}

function storeSettings(dir: string, flushDiskType: 'ASYNC_FLUSH' | 'SYNC_FLUSH', writeThreads = 0) {
  return {
    // With write threads, ranges from one block on go to them, so that the batches' own writes run there.
    ...(writeThreads > 0 ? { tuning: { commitLogWriteThreads: writeThreads, commitLogDirectWriteMinBytes: 4096 } } : {}),
    rootDir: dir,
    flushDiskType,
    storeHost: { address: '127.0.0.1', port: 10911 },
    mappedFileSizeCommitLog: FILE_BYTES,
    mappedFileSizeConsumeQueue: 20 * 1024,
    maxMessageSize: 1024 * 1024,
    flushIntervalCommitLogMs: 200,
    flushIntervalConsumeQueueMs: 100,
    syncFlushTimeoutMs: 5_000,
    diskCheckIntervalMs: 60_000,
    syncFlushWaitersMax: 10_000,
  };
}

type Expected = { readonly body: Buffer; readonly physicalOffset: number };

const IN_PLACE_CASES = [
  { name: 'ASYNC_FLUSH', flushDiskType: 'ASYNC_FLUSH', writeThreads: 0 },
  { name: 'ASYNC_FLUSH with write threads', flushDiskType: 'ASYNC_FLUSH', writeThreads: 2 },
  { name: 'SYNC_FLUSH', flushDiskType: 'SYNC_FLUSH', writeThreads: 0 },
] as const;

describe.each(IN_PLACE_CASES)('in-place appends through worker threads, $name', ({ flushDiskType, writeThreads }) => {
  it('store every acknowledged batch exactly where its answer says, mixed with ordinary puts, across file rolls and a reopen', async () => {
    const dir = tempDir('append-region-');
    const settings = storeSettings(dir, flushDiskType, writeThreads);
    const system = await ActorSystem.start(testSystemOptions({ ...STORE_POOL_SIZES, senders: 2 }, { log: pino({ level: 'warn' }), logLevel: 'warn' }, { askTimeoutMs: 30_000 }));
    const expected = new Map<string, Expected>(); // `${queueId}/${queueOffset}`
    let stats: CommitLogWriterStats;
    let inPlace = 0;
    let stale = 0;
    try {
      const { writer } = await spawnStore(system, { settings });
      const senders = await Promise.all([0, 1, 2].map((k) =>
        system.spawn<RegionSenderMessage>({
          name: `region-sender-${k}`,
          behavior: { module: new URL('./fixtures/region-sender-actor.ts', import.meta.url).href, export: 'regionSenderActor' },
          args: null,
          pool: 'senders',
        })));
      const BATCHES = 60;
      const PER_BATCH = 8;
      const run = (k: number) =>
        system.ask<RegionSenderMessage, { sent: RegionSent[]; inPlace: number; ordinary: Record<string, number> }>(
          senders[k % senders.length]!,
          { type: 'send', writer, storeHost: settings.storeHost, sender: k, topic: TOPIC, queues: QUEUES, batches: BATCHES, perBatch: PER_BATCH, window: 6 },
          60_000,
        );
      const record = (k: number, sent: readonly RegionSent[]): void => {
        expect(sent).toHaveLength(BATCHES);
        for (const { batch, result } of sent) {
          expect(result.status).toBe('PUT_OK');
          expect(result.msgNum).toBe(PER_BATCH);
          const queueId = regionQueueOf(k, batch, QUEUES);
          // In place, the send thread names the msgIds itself (batchMessageIds); each must name its
          // message's physical offset on this broker, as the writer's own would.
          const ids = result.msgId.split(',').map((id) => parseOffsetMessageId(id));
          expect(ids).toHaveLength(PER_BATCH);
          expect(ids[0]?.physicalOffset).toBe(result.physicalOffset);
          for (let m = 0; m < PER_BATCH; m++) {
            const key = `${queueId}/${result.queueOffset + m}`;
            expect(expected.has(key), `queue offset ${key} given twice`).toBe(false);
            expect(ids[m]?.storeHost).toEqual(settings.storeHost);
            expected.set(key, { body: regionBody(k, batch, m), physicalOffset: ids[m]!.physicalOffset });
          }
        }
      };
      // Send threads alone.
      for (const [k, done] of (await Promise.all([0, 1, 2].map(run))).entries()) {
        record(k, done.sent);
        inPlace += done.inPlace;
        stale += done.ordinary['stale']!;
      }
      // Each sender's first window goes the ordinary way (no grant yet), and so does the window after each
      // roll until the new grant arrives; the rest goes in place.
      expect(inPlace).toBeGreaterThan(BATCHES);
      expect(stale).toBeGreaterThan(0);
      // Then with ordinary puts from the main thread meanwhile, into the same queues: the region closes
      // for each of them and drains first.
      const mixed = [3, 4, 5].map(run);
      for (let index = 0; index < 150; index++) {
        const body = Buffer.from(`ordinary-${index}`.padEnd(200 + (index % 50), 'o'));
        const result = await system.ask<CommitLogWriterMessage, PutMessageResult>(writer, { type: 'put', message: { topic: TOPIC, queueId: index % QUEUES, body } }, 30_000);
        expect(result.status).toBe('PUT_OK');
        expected.set(`${index % QUEUES}/${result.queueOffset}`, { body, physicalOffset: result.physicalOffset });
      }
      for (const [k, done] of (await Promise.all(mixed)).entries()) record(k + 3, done.sent);
      // The log rolled through many files meanwhile.
      stats = await system.ask<CommitLogWriterMessage, CommitLogWriterStats>(writer, { type: 'stats' }, 30_000);
      expect(stats.maxOffset).toBeGreaterThan(6 * FILE_BYTES);
      // With write threads, batches start their writes as the writer takes them, not only at its tick.
      if (writeThreads > 0) expect(stats.earlyWriteStarts).toBeGreaterThan(0);
      else expect(stats.earlyWriteStarts).toBe(0);
      // Every queue offset holds the body its answer promised; the queues are dense.
      const read = async (queueId: number, queueOffset: number): Promise<StoredMessage[]> =>
        (await system.ask<CommitLogWriterMessage, GetAnswer>(writer, { type: 'get', topic: TOPIC, queueId, queueOffset, maxMsgNums: 32 }, 30_000)).messages;
      await checkQueues(expected, read);
      const found = await system.ask<CommitLogWriterMessage, StoredMessage[]>(writer, { type: 'queryByKey', topic: TOPIC, key: 'k2-59-7', maxNum: 4 }, 30_000);
      expect(found.map((message) => Buffer.from(decodeRecord(message.record, 0).body).toString())).toEqual([regionBody(2, 59, 7).toString()]);
    } finally {
      await system.shutdown();
    }
    // The same after a reopen (a clean stop: the checkpoint is trusted, the ConsumeQueues reloaded).
    const store = MessageStore.open({ rootDir: dir, fs: nodeStorageFs, flushDiskType, storeHost: settings.storeHost, mappedFileSizeCommitLog: FILE_BYTES, mappedFileSizeConsumeQueue: settings.mappedFileSizeConsumeQueue, maxMessageSize: settings.maxMessageSize });
    try {
      expect(store.recovery.corruptions).toEqual([]);
      expect(store.maxPhysicalOffset).toBe(stats!.maxOffset);
      await checkQueues(expected, async (queueId, queueOffset) => store.getMessage(TOPIC, queueId, queueOffset, 32).messages);
    } finally {
      store.shutdown();
    }
  }, 90_000);
});

/** Reads every queue from 0 and checks it is exactly `expected`: same offsets, bodies and (where known) physical offsets. */
async function checkQueues(expected: ReadonlyMap<string, Expected>, read: (queueId: number, queueOffset: number) => Promise<StoredMessage[]>): Promise<void> {
  let seen = 0;
  for (let queueId = 0; queueId < QUEUES; queueId++) {
    let queueOffset = 0;
    for (;;) {
      const messages = await read(queueId, queueOffset);
      if (messages.length === 0) break;
      for (const message of messages) {
        expect(message.queueOffset).toBe(queueOffset);
        const want = expected.get(`${queueId}/${queueOffset}`);
        expect(want, `queue ${queueId} offset ${queueOffset} was never acknowledged`).toBeDefined();
        const record = decodeRecord(message.record, 0);
        expect(Buffer.from(record.body).equals(want!.body)).toBe(true);
        expect(record.queueOffset).toBe(queueOffset);
        expect(record.queueId).toBe(queueId);
        if (want!.physicalOffset >= 0) expect(message.physicalOffset).toBe(want!.physicalOffset);
        queueOffset++;
        seen++;
      }
    }
  }
  expect(seen).toBe(expected.size);
}

describe('a region batch the store refuses', () => {
  it('stays in the log as dead records that no queue holds, before and after crash recovery', () => {
    const dir = tempDir('append-region-void-');
    const options = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH' as const, storeHost: { address: '127.0.0.1', port: 10911 }, mappedFileSizeCommitLog: FILE_BYTES, consumeQueuesMax: 2, maxMessageSize: 2048 };
    const store = MessageStore.open(options);
    const file = store.regionFile()!;
    const control = new AppendRegionControl();
    const generation = control.open(file.position, true);
    const appender = new RegionAppender();
    appender.grant({ control: control.control, epoch: 1, generation, cache: file.cache, cacheOffset: file.cacheOffset, fileStartOffset: file.fileStartOffset, limit: file.limit });
    const put = (queueId: number, first: number, body = (k: number) => regionBody(9, first, k)) => {
      const inputs = [0, 1].map((k) => ({ topic: TOPIC, queueId, body: body(k), properties: `KEYS\u0001void-${first}-${k}\u0002` }));
      const batch = encodeBatch(inputs, options.storeHost, 1024 * 1024, 1_700_000_000_000);
      if (isPutRefusal(batch)) throw new Error(batch.remark);
      const reservation = appender.reserve(batch.records.length);
      if (typeof reservation === 'string') throw new Error(reservation);
      appender.fill(reservation, batch.records, batch.count, 1_700_000_000_001);
      return store.takeRegionBatch({ topic: TOPIC, queueId, count: batch.count, physicalOffset: reservation.physicalOffset, bytes: batch.records.length, answerMsgIds: true });
    };
    expect(put(0, 0)).toMatchObject({ status: 'PUT_OK', queueOffset: 0, msgNum: 2 });
    expect(put(1, 1)).toMatchObject({ status: 'PUT_OK', queueOffset: 0, msgNum: 2 });
    // A third queue is past consumeQueuesMax: refused, its bytes stay as dead records.
    expect(put(2, 2)).toMatchObject({ status: 'LMQ_CONSUME_QUEUE_NUM_EXCEEDED', msgNum: 0 });
    // Larger than the store takes (a sender that encoded with a larger maxMessageSize): refused the same way.
    expect(put(1, 5, () => Buffer.alloc(40_000, 'L'))).toMatchObject({ status: 'MESSAGE_ILLEGAL', msgNum: 0 });
    const after = put(0, 3);
    expect(after).toMatchObject({ status: 'PUT_OK', queueOffset: 2, msgNum: 2 });
    const check = (opened: MessageStore): void => {
      expect(opened.queueRange(TOPIC, 0)).toEqual({ minOffset: 0, maxOffset: 4 });
      expect(opened.queueRange(TOPIC, 2)).toEqual({ minOffset: 0, maxOffset: 0 });
      const bodies = opened.getMessage(TOPIC, 0, 0, 8).messages.map((message) => Buffer.from(decodeRecord(message.record, 0).body).toString());
      expect(bodies).toEqual([regionBody(9, 0, 0), regionBody(9, 0, 1), regionBody(9, 3, 0), regionBody(9, 3, 1)].map(String));
      expect(opened.queryByKey(TOPIC, 'void-2-0', 4)).toEqual([]);
      expect(opened.queryByKey(TOPIC, 'void-5-0', 4)).toEqual([]);
      expect(opened.queueRange(TOPIC, 1)).toEqual({ minOffset: 0, maxOffset: 2 });
      expect(opened.queryByKey(TOPIC, 'void-3-1', 4)).toHaveLength(1);
    };
    store.dispatch();
    check(store);
    store.flush();
    store.close(); // no clean shutdown: the next open recovers from the log
    const reopened = MessageStore.open(options);
    try {
      expect(reopened.recovery.cleanShutdown).toBe(false);
      expect(reopened.recovery.corruptions).toEqual([]);
      expect(reopened.maxPhysicalOffset).toBe(after.physicalOffset + after.wroteBytes);
      check(reopened);
    } finally {
      reopened.shutdown();
    }
  });
});

describe('a reservation that is never reported', () => {
  it('is filled with dead records once it has held up the log for the report timeout; its late report is refused', async () => {
    const dir = tempDir('append-region-hole-');
    const settings = { ...storeSettings(dir, 'ASYNC_FLUSH'), regionReportTimeoutMs: 300 };
    const system = await quietStoreSystem();
    try {
      const { writer } = await spawnStore(system, { settings });
      const encode = (first: number) => {
        const inputs = [0, 1].map((k) => ({ topic: TOPIC, queueId: 0, body: regionBody(8, first, k) }));
        const batch = encodeBatch(inputs, settings.storeHost, 1024 * 1024, 1_700_000_000_000);
        if (isPutRefusal(batch)) throw new Error(batch.remark);
        return batch;
      };
      const ask = <R>(message: CommitLogWriterMessage) => system.ask<CommitLogWriterMessage, R>(writer, message, 30_000);
      // A batch with its bytes makes the region worth opening; then this thread takes the grant.
      expect(await ask<PutMessageResult>({ type: 'putEncodedBatch', batch: encode(0) })).toMatchObject({ status: 'PUT_OK', queueOffset: 0 });
      const grant = await ask<RegionGrant | null>({ type: 'regionGrant' });
      expect(grant).not.toBeNull();
      const appender = new RegionAppender();
      appender.grant(grant!);
      const place = (first: number) => {
        const batch = encode(first);
        const reservation = appender.reserve(batch.records.length);
        if (typeof reservation === 'string') throw new Error(reservation);
        appender.fill(reservation, batch.records, batch.count, Date.now());
        const report: CommitLogWriterMessage = {
          type: 'putInPlace', epoch: grant!.epoch, generation: reservation.generation,
          batch: { topic: TOPIC, queueId: 0, count: batch.count, physicalOffset: reservation.physicalOffset, bytes: batch.records.length, answerMsgIds: true },
        };
        return report;
      };
      const lost = place(1); // never reported in time: as if its thread died
      const started = Date.now();
      const after = await ask<PutMessageResult>(place(2));
      expect(after).toMatchObject({ status: 'PUT_OK', queueOffset: 2 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      const late = await ask<PutMessageResult>(lost);
      expect(late).toMatchObject({ status: 'SERVICE_NOT_AVAILABLE', msgNum: 0 });
      expect(late.remark).toMatch(/expired/);
      // The log goes on: the region reopens and takes the next batch in place.
      const next = await ask<PutMessageResult>(place(3));
      expect(next).toMatchObject({ status: 'PUT_OK', queueOffset: 4 });
      const read = await ask<GetAnswer>({ type: 'get', topic: TOPIC, queueId: 0, queueOffset: 0, maxMsgNums: 32 });
      const bodies = read.messages.map((message) => Buffer.from(decodeRecord(message.record, 0).body).toString());
      expect(bodies).toEqual([[0, 0], [0, 1], [2, 0], [2, 1], [3, 0], [3, 1]].map(([batch, k]) => regionBody(8, batch!, k!).toString()));
    } finally {
      await system.shutdown();
    }
    const reopened = MessageStore.open({ rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: settings.storeHost, mappedFileSizeCommitLog: FILE_BYTES, mappedFileSizeConsumeQueue: settings.mappedFileSizeConsumeQueue, maxMessageSize: settings.maxMessageSize });
    try {
      expect(reopened.recovery.corruptions).toEqual([]);
      expect(reopened.queueRange(TOPIC, 0)).toEqual({ minOffset: 0, maxOffset: 6 });
    } finally {
      reopened.shutdown();
    }
  }, 30_000);
});

describe('a grant asked while the region drains', () => {
  it('is answered with the reopened region, not null, once the drain ends', async () => {
    const settings = storeSettings(tempDir('append-region-grant-'), 'ASYNC_FLUSH');
    const system = await quietStoreSystem();
    try {
      const { writer } = await spawnStore(system, { settings });
      const encode = (first: number) => {
        const batch = encodeBatch([{ topic: TOPIC, queueId: 0, body: regionBody(8, first, 0) }], settings.storeHost, 1024 * 1024, 1_700_000_000_000);
        if (isPutRefusal(batch)) throw new Error(batch.remark);
        return batch;
      };
      const ask = <R>(message: CommitLogWriterMessage) => system.ask<CommitLogWriterMessage, R>(writer, message, 30_000);
      expect(await ask<PutMessageResult>({ type: 'putEncodedBatch', batch: encode(0) })).toMatchObject({ status: 'PUT_OK' });
      const grant = await ask<RegionGrant | null>({ type: 'regionGrant' });
      expect(grant).not.toBeNull();
      const appender = new RegionAppender();
      appender.grant(grant!);
      const batch = encode(1);
      const reservation = appender.reserve(batch.records.length);
      if (typeof reservation === 'string') throw new Error(reservation);
      appender.fill(reservation, batch.records, batch.count, Date.now());
      // A single put needs the log's end: the region closes and the put waits for the reservation's report.
      const single = ask<PutMessageResult>({ type: 'put', message: { topic: TOPIC, queueId: 0, body: Buffer.from('single') } });
      let answered: RegionGrant | null | undefined;
      const asked = ask<RegionGrant | null>({ type: 'regionGrant' }).then((value) => (answered = value));
      await ask({ type: 'stats' });
      expect(answered).toBeUndefined(); // still draining: not answered null
      const report: CommitLogWriterMessage = {
        type: 'putInPlace', epoch: grant!.epoch, generation: reservation.generation,
        batch: { topic: TOPIC, queueId: 0, count: 1, physicalOffset: reservation.physicalOffset, bytes: batch.records.length, answerMsgIds: true },
      };
      expect(await ask<PutMessageResult>(report)).toMatchObject({ status: 'PUT_OK', queueOffset: 1 });
      expect(await single).toMatchObject({ status: 'PUT_OK', queueOffset: 2 });
      await asked;
      expect(answered).toMatchObject({ epoch: grant!.epoch, generation: grant!.generation });
      expect(appender.reserve(100)).toMatchObject({ generation: grant!.generation });
    } finally {
      await system.shutdown();
    }
  }, 30_000);
});

describe('ConsumeQueue pages touched ahead', () => {
  it('are asked of the flusher by the writer once a queue passes its first 64 KiB of entries', async () => {
    // ConsumeQueue files of RocketMQ's size, so that they reach past 64 KiB.
    const settings = { ...storeSettings(tempDir('append-region-touch-'), 'ASYNC_FLUSH'), mappedFileSizeConsumeQueue: 6_000_000 };
    const system = await quietStoreSystem();
    try {
      const { writer, flusher } = await spawnStore(system, { settings });
      const touched = async () => (await system.ask<CommitLogFlusherMessage, CommitLogFlusherStats>(flusher, { type: 'stats' }, 30_000)).touchedBytes;
      expect(await touched()).toBe(0);
      // 4,096 entries of 20 bytes: past the first 64 KiB of the queue's file.
      for (let first = 0; first < 4_096; first += 64) {
        const inputs = Array.from({ length: 64 }, (_, k) => ({ topic: TOPIC, queueId: 0, body: regionBody(8, first, k) }));
        const batch = encodeBatch(inputs, settings.storeHost, 1024 * 1024, 1_700_000_000_000);
        if (isPutRefusal(batch)) throw new Error(batch.remark);
        expect(await system.ask<CommitLogWriterMessage, PutMessageResult>(writer, { type: 'putEncodedBatch', batch }, 30_000)).toMatchObject({ status: 'PUT_OK' });
      }
      expect(await touched()).toBeGreaterThanOrEqual(256 * 1024);
    } finally {
      await system.shutdown();
    }
  }, 30_000);
});

describe('touchAhead through the store', () => {
  it('reaches both the ConsumeQueue and the IndexFile caches of a store that is given one', () => {
    const dir = tempDir('append-region-touch-store-');
    const sizes = new Set<number>();
    const store = MessageStore.open({
      rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: { address: '127.0.0.1', port: 10911 },
      mappedFileSizeCommitLog: 64 * 1024 * 1024, mappedFileSizeConsumeQueue: 600_000, maxHashSlotNum: 1_000, maxIndexNum: 100_000,
      touchAhead: (buffer) => void sizes.add(buffer.byteLength),
    });
    try {
      // 5,000 keyed messages: past the first 64 KiB of the queue's entries and of the index's.
      for (let i = 0; i < 5_000; i++) {
        expect(store.appendMessage({ topic: TOPIC, queueId: 0, body: Buffer.from(`m${i}`), properties: `KEYS\u0001k${i}\u0002` }).status).toBe('PUT_OK');
      }
      store.dispatch();
      expect(sizes).toEqual(new Set([600_000, indexFileSizeBytes(1_000, 100_000)]));
    } finally {
      store.shutdown();
    }
  });
});

describe('filling a hole', () => {
  it('splits a hole larger than a record may be into dead records the log checks and recovery keeps', () => {
    const dir = tempDir('append-region-fill-');
    const options = { rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH' as const, storeHost: { address: '127.0.0.1', port: 10911 }, mappedFileSizeCommitLog: 1024 * 1024, maxMessageSize: 1024 };
    const store = MessageStore.open(options);
    expect(store.appendMessage({ topic: TOPIC, queueId: 0, body: Buffer.from('before') }).status).toBe('PUT_OK');
    const hole = store.maxPhysicalOffset;
    // 200,001 bytes with records of at most 1 KiB + 64 KiB: four pieces, the last one at least a record's minimum.
    store.fillRegionHole(hole, 200_001);
    expect(store.maxPhysicalOffset).toBe(hole + 200_001);
    expect(store.appendMessage({ topic: TOPIC, queueId: 0, body: Buffer.from('after') })).toMatchObject({ status: 'PUT_OK', queueOffset: 1 });
    store.flush(); // writes the range, checking that it tiles with records of sane sizes
    store.close();
    const reopened = MessageStore.open(options);
    try {
      expect(reopened.recovery.corruptions).toEqual([]);
      expect(reopened.getMessage(TOPIC, 0, 0, 8).messages.map((message) => Buffer.from(decodeRecord(message.record, 0).body).toString())).toEqual(['before', 'after']);
    } finally {
      reopened.shutdown();
    }
  });
});
