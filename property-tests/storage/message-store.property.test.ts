/**
 * Property: whatever mix of puts, dispatches, two-phase flushes (write, then a sync elsewhere), clean
 * restarts, kill -9 style crashes and clock jumps happens, the store answers exactly like a model:
 * - after a clean restart every message is there; after a crash exactly the messages whose bytes had
 *   reached the files survive (the OS keeps what was written; the page cache dies with the process);
 * - every queue reads back dense offsets with byte-identical bodies, tag filters select exactly the
 *   tagged messages, key queries find exactly the surviving messages with that key;
 * - the next put of a queue takes the offset right after its last survivor.
 * Puts come one by one or as RocketMQ batches encoded elsewhere; crashes come with the same boot id as
 * the checkpoint (recovery reads a window past the end) or another one (it reads everything past it),
 * and some tear the index: every page of the newest index file written after the checkpoint comes back
 * as garbage (header counts, slots, later entries), as an OS crash may leave it. Keyed messages carry a
 * UNIQ_KEY and KEYS "key-<n> shared", as clients send them; after every restart each of the three keys
 * finds exactly the surviving messages that carry it, newest first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';
import { MessageStore, type EncodedBatch, type MessageStoreOptions, encodeBatch } from '../../src/storage/message-store.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { writeStoreCheckpoint } from '../../src/storage/store-checkpoint.ts';
import { tearIndexAfterCheckpoint } from '../../test/storage/fixtures/torn-index.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

const TOPICS = ['TopicA', 'TopicB'];
const TAGS = ['red', 'blue'];

type Command =
  | { readonly type: 'put'; readonly topic: number; readonly queueId: number; readonly bodyBytes: number; readonly tag: number; readonly keyed: boolean }
  | { readonly type: 'batch'; readonly topic: number; readonly queueId: number; readonly count: number; readonly bodyBytes: number }
  | { readonly type: 'dispatch' }
  | { readonly type: 'write' }
  | { readonly type: 'writeAll' }
  | { readonly type: 'flush' }
  | { readonly type: 'restart' }
  | { readonly type: 'crash'; readonly newBoot: boolean; readonly tornIndexSeed: number | null }
  | { readonly type: 'sleep' };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      type: fc.constant('put' as const),
      topic: fc.integer({ min: 0, max: TOPICS.length - 1 }),
      queueId: fc.integer({ min: 0, max: 2 }),
      bodyBytes: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 300, max: 2_000 })),
      tag: fc.integer({ min: -1, max: TAGS.length - 1 }),
      keyed: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('batch' as const),
      topic: fc.integer({ min: 0, max: TOPICS.length - 1 }),
      queueId: fc.integer({ min: 0, max: 2 }),
      count: fc.integer({ min: 1, max: 5 }),
      bodyBytes: fc.integer({ min: 0, max: 600 }),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ type: 'dispatch' as const }) },
  { weight: 3, arbitrary: fc.constant({ type: 'write' as const }) },
  { weight: 2, arbitrary: fc.constant({ type: 'writeAll' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'restart' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant('crash' as const), newBoot: fc.boolean(), tornIndexSeed: fc.option(fc.integer({ min: 1, max: 0x7fff_ffff }), { nil: null }) }),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'sleep' as const }) },
);

type Sent = {
  readonly key: string;
  readonly body: Buffer;
  readonly tag: string | undefined;
  readonly physicalOffset: number;
  readonly end: number;
  readonly messageKey: string | undefined;
  readonly uniqueKey: string | undefined;
};

/** Most offsets one key query returns (the store's default maxMsgsNumBatch). */
const QUERY_MAX = 64;

class Model {
  readonly queues = new Map<string, Sent[]>();
  /** Survives a crash: everything below the store's written offset at that moment. */
  crash(writtenOffset: number): void {
    for (const [key, list] of this.queues) this.queues.set(key, list.filter((sent) => sent.end <= writtenOffset));
  }
}

function bodyOf(counter: number, bytes: number): Buffer {
  const body = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) body[i] = (counter * 31 + i * 7) & 0xff;
  return body;
}

/** Checks every queue, tag filter and key against the model. */
function verify(store: MessageStore, model: Model): void {
  store.dispatch();
  for (const [queueKey, sent] of model.queues) {
    const [topic, queueId] = [queueKey.split('/')[0]!, Number(queueKey.split('/')[1])];
    expect(store.queueRange(topic, queueId).maxOffset).toBe(sent.length);
    const read: Buffer[] = [];
    for (let offset = 0; offset < sent.length; ) {
      const batch = store.getMessage(topic, queueId, offset, 32);
      expect(batch.status).toBe('FOUND');
      read.push(...batch.messages.map((m) => Buffer.from(decodeRecord(m.record, 0).body)));
      offset = batch.nextBeginOffset;
    }
    expect(read).toEqual(sent.map((s) => s.body));
    for (const tag of TAGS) {
      const tagged = store.getMessage(topic, queueId, 0, 32, { tags: [tag] }).messages;
      const expected = sent.map((s, i) => ({ s, i })).filter(({ s }) => s.tag === tag).slice(0, 32);
      expect(tagged.map((m) => m.queueOffset)).toEqual(expected.map(({ i }) => i));
    }
    for (const s of sent.filter((x) => x.messageKey !== undefined)) {
      const found = store.queryByKey(topic, s.messageKey!, 4);
      expect(found.map((m) => Buffer.from(decodeRecord(m.record, 0).body))).toEqual([s.body]);
      expect(store.queryByKey(topic, s.uniqueKey!, 4).map((m) => m.physicalOffset)).toEqual([s.physicalOffset]);
    }
  }
  // The key every keyed message of a topic shares: all survivors, across queues and index files.
  for (const topic of TOPICS) {
    const all = [...model.queues.values()].flat().filter((s) => s.key.startsWith(`${topic}/`) && s.messageKey !== undefined);
    const expected = all.map((s) => s.physicalOffset).sort((a, b) => b - a).slice(0, QUERY_MAX);
    expect(store.queryByKey(topic, 'shared', QUERY_MAX).map((m) => m.physicalOffset)).toEqual(expected);
  }
}

function run(commands: readonly Command[]): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'message-store-prop-'));
  let nowMs = 1_700_000_000_000;
  let boot = 0;
  const bootId = (): string => (boot + 1).toString(16).padStart(32, '0');
  const options = (): MessageStoreOptions => ({
    rootDir: dir,
    fs: nodeStorageFs,
    flushDiskType: 'ASYNC_FLUSH',
    storeHost: { address: '10.1.2.3', port: 10911 },
    mappedFileSizeCommitLog: 16 * 1024,
    mappedFileSizeConsumeQueue: 20 * 8,
    maxMessageSize: 4 * 1024,
    maxHashSlotNum: 16,
    maxIndexNum: 64,
    clock: { nowMs: () => nowMs++ },
    bootId: bootId(),
  });
  const model = new Model();
  let store = MessageStore.open(options());
  let counter = 0;
  try {
    for (const step of commands) {
      switch (step.type) {
        case 'put': {
          const topic = TOPICS[step.topic]!;
          const tag = step.tag >= 0 ? TAGS[step.tag] : undefined;
          const messageKey = step.keyed ? `key-${counter}` : undefined;
          const uniqueKey = step.keyed ? counter.toString(16).toUpperCase().padStart(32, '0') : undefined;
          const properties: Record<string, string> = {};
          if (tag !== undefined) properties['TAGS'] = tag;
          if (messageKey !== undefined) properties['KEYS'] = `${messageKey} shared`;
          if (uniqueKey !== undefined) properties['UNIQ_KEY'] = uniqueKey;
          const body = bodyOf(counter++, step.bodyBytes);
          const result = store.appendMessage({ topic, queueId: step.queueId, body, properties: encodeMessageProperties(properties) });
          const queueKey = `${topic}/${step.queueId}`;
          const list = model.queues.get(queueKey) ?? [];
          expect(result).toMatchObject({ status: 'PUT_OK', queueOffset: list.length });
          list.push({ key: queueKey, body, tag, physicalOffset: result.physicalOffset, end: result.physicalOffset + result.wroteBytes, messageKey, uniqueKey });
          model.queues.set(queueKey, list);
          break;
        }
        case 'batch': {
          const topic = TOPICS[step.topic]!;
          const queueKey = `${topic}/${step.queueId}`;
          const list = model.queues.get(queueKey) ?? [];
          const bodies = Array.from({ length: step.count }, () => bodyOf(counter++, step.bodyBytes));
          const inputs = bodies.map((body) => ({ topic, queueId: step.queueId, body }));
          const batch = encodeBatch(inputs, { address: '10.1.2.3', port: 10911 }, 4 * 1024, nowMs) as EncodedBatch;
          const result = store.appendEncodedBatch(batch);
          expect(result).toMatchObject({ status: 'PUT_OK', queueOffset: list.length, msgNum: step.count });
          // Each message survives a crash once its own bytes are written (the model's rule for any put).
          let at = result.physicalOffset;
          for (const body of bodies) {
            const physicalOffset = at;
            at += recordSizeAt(batch.records, at - result.physicalOffset);
            list.push({ key: queueKey, body, tag: undefined, physicalOffset, end: at, messageKey: undefined, uniqueKey: undefined });
          }
          model.queues.set(queueKey, list);
          break;
        }
        case 'dispatch':
          store.dispatch();
          break;
        case 'write': {
          store.writeCommitLog();
          syncElsewhere(store, dir);
          break;
        }
        case 'writeAll':
          store.writeConsumeQueues();
          syncElsewhere(store, dir);
          break;
        case 'flush':
          store.flush();
          break;
        case 'restart':
          store.shutdown();
          store = MessageStore.open(options());
          expect(store.recovery.cleanShutdown).toBe(true);
          verify(store, model);
          break;
        case 'crash':
          model.crash(store.writtenOffset);
          store.close();
          if (step.tornIndexSeed !== null) tearIndexAfterCheckpoint(dir, step.tornIndexSeed);
          if (step.newBoot) boot++;
          store = MessageStore.open(options());
          expect(store.recovery.cleanShutdown).toBe(false);
          expect(store.recovery.corruptions).toEqual([]);
          verify(store, model);
          break;
        case 'sleep':
          nowMs += 5_000;
          break;
        default:
          throw new Error('unknown command');
      }
    }
    verify(store, model);
    store.shutdown();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The totalSize field of the record at `offset`. */
function recordSizeAt(records: Uint8Array, offset: number): number {
  return Buffer.from(records.buffer, records.byteOffset, records.byteLength).readInt32BE(offset);
}

/** What the flusher does on its thread: fdatasync the paths, then write the checkpoint. */
function syncElsewhere(store: MessageStore, rootDir: string): void {
  const request = store.takeSyncRequest();
  if (request === null) return;
  for (const file of request.paths) {
    const fd = fs.openSync(file, 'r+');
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
  }
  if (request.checkpoint !== null) writeStoreCheckpoint(nodeStorageFs, rootDir, request.checkpoint);
  store.completeSync(request);
}

describe('message store', () => {
  it('matches the model through puts, two-phase flushes, restarts and crashes', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 30, maxLength: 150 }), (commands) => run(commands)),
      // Shrinking 150-command runs that each open stores can take minutes: report what it has by then.
      { ...replayableParameters<[Command[]]>('message store model', 40), interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true },
    );
  }, 60_000);
});
