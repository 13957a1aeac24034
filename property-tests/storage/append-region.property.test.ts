/**
 * Property: the CommitLog writer's append region keeps the log whole whatever the interleaving. Virtual
 * send threads reserve, fill and report in-place batches in any order, send batches and single messages
 * the ordinary way, lose reports (as a dying thread would), and the writer gets ticks and report
 * timeouts in between, across file rolls. Afterwards:
 * - every batch or message answered PUT_OK is readable at the queue offsets its answer gave, with its
 *   bodies, and nothing else is: the queues are dense and hold only acknowledged messages;
 * - everything sent the ordinary way is stored, and so is every in-place batch whose report came before
 *   any report timeout passed; one reported after a timeout passed may have been refused (its range
 *   filled), never half stored;
 * - a lost report's batch is never visible, and its late report is refused;
 * - every request that reached the writer got exactly one answer;
 * - the same holds after the store is stopped, or dropped as in a crash, and opened again.
 *
 * The writer behavior runs directly on a stand-in context (one thread: reports are delivered when the
 * case says). fast-check prints the seed and the shrunk case on failure. Runs: REGION_PROP_RUNS
 * (default 40).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorContext, ActorRef, DeferredReply } from '../../src/runtime/actor.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { commitLogWriter, type CommitLogWriterArgs, type CommitLogWriterMessage, type GetAnswer } from '../../src/actors/commit-log-writer.ts';
import type { CommitLogFlusherMessage } from '../../src/actors/commit-log-flusher.ts';
import { RegionAppender, type RegionGrant } from '../../src/storage/append-region.ts';
import { MessageStore, encodeBatch, encodePut, isPutRefusal, type PutMessageResult } from '../../src/storage/message-store.ts';
import { decodeRecord } from '../../src/storage/message-record.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

const NUM_RUNS = Number(process.env['REGION_PROP_RUNS'] ?? 40);
const TOPIC = 'PropTopic';
const QUEUES = 3;
const FILE_BYTES = 16 * 1024;
const HOST = { address: '127.0.0.1', port: 10911 };
const TIMEOUT_MS = 1_000;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

type Op =
  | { readonly kind: 'batch'; readonly sender: number; readonly queueId: number; readonly count: number; readonly size: number }
  | { readonly kind: 'report'; readonly sender: number; readonly pick: number }
  | { readonly kind: 'lose'; readonly sender: number; readonly pick: number }
  | { readonly kind: 'single'; readonly queueId: number; readonly size: number }
  | { readonly kind: 'tick' }
  | { readonly kind: 'expire' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('batch' as const), sender: fc.nat(2), queueId: fc.nat(QUEUES - 1), count: fc.integer({ min: 1, max: 4 }), size: fc.integer({ min: 1, max: 900 }) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('report' as const), sender: fc.nat(2), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lose' as const), sender: fc.nat(2), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('single' as const), queueId: fc.nat(QUEUES - 1), size: fc.integer({ min: 1, max: 900 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const) }) },
);

/** The writer behavior on a stand-in context: one thread, self-tells queued, timers never fire. */
class Harness {
  readonly clock = new ManualClock();
  private readonly self = { slot: 1, name: 'writer' } as ActorRef<CommitLogWriterMessage>;
  private readonly selfQueue: CommitLogWriterMessage[] = [];
  private state: ReturnType<typeof commitLogWriter.init>;
  private readonly base: Omit<ActorContext<CommitLogWriterMessage>, 'reply' | 'deferReply' | 'isAsk'>;

  constructor(args: CommitLogWriterArgs) {
    const noTimers = { startSingle() {}, startPeriodic() {}, cancel() {}, isActive: () => false };
    this.base = {
      self: this.self,
      threadIndex: 1,
      pool: 'commitlog',
      clock: this.clock,
      random: () => 0.25,
      fs: fs.promises,
      log: pino({ level: 'silent' }),
      timers: noTimers,
      isLocal: () => true,
      tell: <T>(target: ActorRef<T>, message: T) => {
        if (target.slot === this.self.slot) this.selfQueue.push(message as CommitLogWriterMessage);
        return true; // the flusher: ASYNC_FLUSH never waits for its syncs here
      },
      ask: () => Promise.reject(new Error('the writer asks nothing')),
      pipeToSelf: () => {},
      spawn: () => Promise.reject(new Error('no spawning')),
      stopSelf: () => {},
    };
    this.state = commitLogWriter.init(args, this.context(undefined));
  }

  /** A context for one delivery: its reply goes to `onReply` (undefined: a tell). */
  private context(onReply: ((value: unknown) => void) | undefined): ActorContext<CommitLogWriterMessage> {
    let taken = onReply === undefined;
    const reply: DeferredReply = {
      resolve: (value) => onReply?.(value),
      reject: (error) => onReply?.({ rejected: error.message }),
    };
    return {
      ...this.base,
      get isAsk() {
        return !taken;
      },
      reply: (value: unknown) => {
        if (taken) return;
        taken = true;
        onReply!(value);
      },
      deferReply: () => {
        if (taken) return undefined;
        taken = true;
        return reply;
      },
    };
  }

  /** Delivers an ask; the answer arrives through `onReply`, now or later. */
  ask(message: CommitLogWriterMessage, onReply: (value: unknown) => void): void {
    this.state = commitLogWriter.receive(this.state, message, this.context(onReply));
  }

  /** Delivers what the writer told itself (its ticks), until none is left. */
  drainSelf(): void {
    // Bounded: a tick tells itself nothing new unless a put came in between.
    for (let message = this.selfQueue.shift(); message !== undefined; message = this.selfQueue.shift()) {
      this.state = commitLogWriter.receive(this.state, message, this.context(undefined));
    }
  }

  /** Advances past the report timeout with two checks, as the writer's expire timer would. */
  expire(): void {
    this.state = commitLogWriter.receive(this.state, { type: 'expire' }, this.context(undefined));
    this.clock.advance(TIMEOUT_MS + 1);
    this.state = commitLogWriter.receive(this.state, { type: 'expire' }, this.context(undefined));
    this.drainSelf();
  }

  stop(): void {
    commitLogWriter.onStop?.(this.state, this.context(undefined));
  }
}

/** A request and its answer; `mayExpire`: an in-place batch whose report came after a report timeout passed. */
type Sent = { readonly queueId: number; readonly bodies: readonly Buffer[]; answer: PutMessageResult | undefined; answers: number; mayExpire: boolean };
type Pending = { readonly report: CommitLogWriterMessage; readonly sent: Sent; readonly expiresAtReserve: number };

function body(id: number, size: number): Buffer {
  const head = `m${id}:`;
  return Buffer.from(head.padEnd(head.length + size, String.fromCharCode(97 + (id % 26))));
}

describe('the append region under any interleaving', () => {
  it('keeps exactly the acknowledged messages, in dense queues, before and after a reopen', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), fc.boolean(), (ops, crash) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'region-prop-'));
        dirs.push(dir);
        const args: CommitLogWriterArgs = {
          rootDir: dir, flushDiskType: 'ASYNC_FLUSH', storeHost: HOST, mappedFileSizeCommitLog: FILE_BYTES, mappedFileSizeConsumeQueue: 20 * 64,
          maxMessageSize: 8 * 1024, flushIntervalCommitLogMs: 500, flushIntervalConsumeQueueMs: 500, syncFlushTimeoutMs: 5_000,
          diskCheckIntervalMs: 60_000, syncFlushWaitersMax: 10_000, regionReportTimeoutMs: TIMEOUT_MS,
          flusher: { slot: 2, name: 'flusher' } as ActorRef<CommitLogFlusherMessage>,
        };
        const writer = new Harness(args);
        const senders = [0, 1, 2].map(() => ({ appender: new RegionAppender(), pending: [] as Pending[] }));
        const sent: Sent[] = [];
        const lost: Pending[] = [];
        let nextId = 0;
        let expires = 0;
        const answerTo = (item: Sent) => (value: unknown) => {
          item.answers++;
          item.answer = value as PutMessageResult;
        };
        const deliver = (pending: Pending): void => {
          pending.sent.mayExpire = expires > pending.expiresAtReserve;
          writer.ask(pending.report, answerTo(pending.sent));
        };
        for (const step of ops) {
          switch (step.kind) {
            case 'batch': {
              const sender = senders[step.sender]!;
              const bodies = Array.from({ length: step.count }, () => body(nextId++, step.size));
              const encoded = encodeBatch(bodies.map((b) => ({ topic: TOPIC, queueId: step.queueId, body: b })), HOST, args.maxMessageSize, writer.clock.nowMs());
              if (isPutRefusal(encoded)) throw new Error(encoded.remark);
              const item: Sent = { queueId: step.queueId, bodies, answer: undefined, answers: 0, mayExpire: false };
              sent.push(item);
              const reservation = sender.appender.reserve(encoded.records.length);
              if (typeof reservation === 'string') {
                writer.ask({ type: 'putEncodedBatch', batch: encoded }, answerTo(item));
                writer.ask({ type: 'regionGrant' }, (grant) => {
                  if (grant !== null) sender.appender.grant(grant as RegionGrant);
                });
              } else {
                sender.appender.fill(reservation, encoded.records, encoded.count, writer.clock.nowMs());
                const report: CommitLogWriterMessage = {
                  type: 'putInPlace', epoch: sender.appender.epoch, generation: reservation.generation,
                  batch: { topic: TOPIC, queueId: step.queueId, count: encoded.count, physicalOffset: reservation.physicalOffset, bytes: encoded.records.length, answerMsgIds: true },
                };
                sender.pending.push({ report, sent: item, expiresAtReserve: expires });
              }
              break;
            }
            case 'report':
            case 'lose': {
              const sender = senders[step.sender]!;
              if (sender.pending.length === 0) break;
              const [pending] = sender.pending.splice(step.pick % sender.pending.length, 1);
              if (step.kind === 'lose') lost.push(pending!);
              else deliver(pending!);
              break;
            }
            case 'single': {
              const b = body(nextId++, step.size);
              const encoded = encodePut({ topic: TOPIC, queueId: step.queueId, body: b }, HOST, args.maxMessageSize, writer.clock.nowMs());
              if (isPutRefusal(encoded)) throw new Error(encoded.remark);
              const item: Sent = { queueId: step.queueId, bodies: [b], answer: undefined, answers: 0, mayExpire: false };
              sent.push(item);
              writer.ask({ type: 'putEncoded', puts: [encoded] }, (value) => answerTo(item)((value as PutMessageResult[])[0]));
              break;
            }
            case 'tick':
              writer.drainSelf();
              break;
            case 'expire':
              writer.expire();
              expires++;
              break;
          }
        }
        // Every report still pending arrives; then the lost ones' ranges expire and their late reports come.
        for (const sender of senders) for (const pending of sender.pending.splice(0)) deliver(pending);
        writer.drainSelf();
        writer.expire();
        writer.expire();
        for (const pending of lost) writer.ask(pending.report, answerTo(pending.sent));
        writer.drainSelf();

        const lostSet = new Set(lost.map((pending) => pending.sent));
        const expected = new Map<string, Buffer>();
        for (const item of sent) {
          expect(item.answers, 'one answer per request').toBe(1);
          if (lostSet.has(item) || (item.mayExpire && item.answer!.status !== 'PUT_OK')) {
            expect(item.answer).toMatchObject({ status: 'SERVICE_NOT_AVAILABLE', remark: expect.stringMatching(/expired/) });
            continue;
          }
          expect(item.answer!.status).toBe('PUT_OK');
          item.bodies.forEach((b, k) => expected.set(`${item.queueId}/${item.answer!.queueOffset + k}`, b));
        }
        const read = (get: (queueId: number, offset: number) => { queueOffset: number; record: Uint8Array }[]) => {
          let seen = 0;
          for (let queueId = 0; queueId < QUEUES; queueId++) {
            let offset = 0;
            for (let messages = get(queueId, offset); messages.length > 0; messages = get(queueId, offset)) {
              for (const message of messages) {
                expect(message.queueOffset).toBe(offset);
                const want = expected.get(`${queueId}/${offset}`);
                expect(want, `queue ${queueId} offset ${offset} holds an unacknowledged message`).toBeDefined();
                const record = decodeRecord(message.record, 0);
                expect(Buffer.from(record.body).equals(want!)).toBe(true);
                expect([record.queueId, record.queueOffset]).toEqual([queueId, offset]);
                offset++;
                seen++;
              }
            }
          }
          expect(seen).toBe(expected.size);
        };
        read((queueId, queueOffset) => {
          let answer: GetAnswer | undefined;
          writer.ask({ type: 'get', topic: TOPIC, queueId, queueOffset, maxMsgNums: 16 }, (value) => (answer = value as GetAnswer));
          return answer!.messages;
        });
        // A clean stop, or a crash: the store is dropped as it is, and the next open recovers from the files.
        if (!crash) writer.stop();
        const reopened = MessageStore.open({ rootDir: dir, fs: nodeStorageFs, flushDiskType: 'ASYNC_FLUSH', storeHost: HOST, mappedFileSizeCommitLog: FILE_BYTES, mappedFileSizeConsumeQueue: args.mappedFileSizeConsumeQueue, maxMessageSize: args.maxMessageSize });
        try {
          expect(reopened.recovery.corruptions).toEqual([]);
          expect(reopened.recovery.cleanShutdown).toBe(!crash);
          read((queueId, queueOffset) => reopened.getMessage(TOPIC, queueId, queueOffset, 16).messages);
        } finally {
          reopened.shutdown();
        }
      }),
      { numRuns: NUM_RUNS },
    );
  }, 120_000);
});
