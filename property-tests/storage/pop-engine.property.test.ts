/**
 * Property: whatever mix of produces, pops (two groups, one FIFO and one not, random batches and
 * invisible times), acks with current, stale, foreign, forged and garbage handles, invisible-time
 * changes, skips, clock advances, syncs, clean restarts and kill -9 crashes (with a torn write of the
 * unsynced journal at a random point) happens, under a simulated clock and against a real MessageStore,
 * the PopEngine + PopJournal behave like a model of RocketMQ's POP semantics:
 * - nothing is delivered while invisible: a message is handed out again only at or after its current
 *   lease's deadline (so a message never has two live leases), with attempt + 1, and never once acked;
 * - new messages go out densely in queue order, attempt 1, from the start offset;
 * - past maxAttempts a message comes out as a dead letter (attempt maxAttempts + 1), not as a message;
 * - an ack, change or skip succeeds exactly when its handle is the message's current lease of that
 *   group (and, for ack and change, before the deadline): stale, foreign, forged and garbage handles
 *   never succeed; change gives a new handle with the same attempt;
 * - FIFO: a message is never delivered while an earlier message of its queue is unsettled and not
 *   delivered again earlier in the same batch (redelivery restarts from the first unacked);
 * - a pop hands out everything available up to its batch unless it says it was flow controlled, and
 *   then an in-flight bound really is reached; committedOffset is the lowest unsettled offset;
 * - after a clean restart the state is exactly the state before; after a crash it is exactly the state
 *   after the last operation whose records were all written (the synced state at least);
 * - liveness: once the clock runs past every deadline, popping and acking settles every message.
 * fast-check prints the seed; replay with FC_SEED / FC_PATH (see ../runtime/fc-parameters.ts).
 * Soak: POP_PROP_RUNS=20000 vitest run property-tests/storage/pop-engine.property.test.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageStore } from '../../src/storage/message-store.ts';
import { type Lease, PopEngine, type PopResult } from '../../src/storage/pop-engine.ts';
import { PopRecordType } from '../../src/storage/pop-journal.ts';
import { type StorageFs, nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

const NUM_RUNS = Number(process.env['POP_PROP_RUNS'] ?? 300);
const TOPIC = 'PopPropTopic';
const QUEUES = [0, 1];
const GROUPS = ['GroupA', 'GroupB'];
const T0 = 1_700_000_000_000;
const MAX_ATTEMPTS = 3;
const INVISIBLE_MS = [10_000, 20_000, 45_000];
const CHANGE_MS = [0, 5_000, 60_000];
const PER_QUEUE_MAX = 5;
const TOTAL_MAX = 8;
const DRAIN_BATCH = 6;
/** Payload bytes of an ACK record (keyId, queueId, queueOffset, epoch, seq). */
const GARBAGE_PAYLOAD_BYTES = 28;

type Command =
  | { readonly type: 'produce'; readonly queueId: number; readonly count: number }
  | { readonly type: 'pop'; readonly group: number; readonly queues: number; readonly batch: number; readonly invisible: number }
  | { readonly type: 'ack'; readonly kind: 'current' | 'any' | 'foreign' | 'forged' | 'garbage'; readonly pick: number; readonly text: string }
  | { readonly type: 'change'; readonly kind: 'current' | 'any'; readonly pick: number; readonly invisible: number }
  | { readonly type: 'skip'; readonly pick: number }
  | { readonly type: 'advance'; readonly ms: number }
  | { readonly type: 'forget'; readonly group: number }
  | { readonly type: 'sync' }
  | { readonly type: 'restart' }
  | { readonly type: 'crash'; readonly checkpoint: number; readonly tear: number; readonly garbage: Uint8Array | null };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.constant('produce' as const), queueId: fc.constantFrom(...QUEUES), count: fc.integer({ min: 1, max: 4 }) }) },
  {
    weight: 8,
    arbitrary: fc.record({
      type: fc.constant('pop' as const),
      group: fc.integer({ min: 0, max: 1 }),
      queues: fc.integer({ min: -1, max: 1 }), // -1: every queue
      batch: fc.integer({ min: 1, max: 6 }),
      invisible: fc.integer({ min: 0, max: INVISIBLE_MS.length - 1 }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      type: fc.constant('ack' as const),
      kind: fc.constantFrom('current' as const, 'current' as const, 'any' as const, 'foreign' as const, 'forged' as const, 'garbage' as const),
      pick: fc.nat(),
      text: fc.string({ maxLength: 40 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('change' as const),
      kind: fc.constantFrom('current' as const, 'any' as const),
      pick: fc.nat(),
      invisible: fc.integer({ min: 0, max: CHANGE_MS.length - 1 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('skip' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 50_000 }) }) },
  { weight: 2, arbitrary: fc.constant({ type: 'sync' as const }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('forget' as const), group: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.constant({ type: 'restart' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('crash' as const),
      checkpoint: fc.nat(),
      tear: fc.nat(),
      // A well-framed record of random content after the tail: only its CRC tells it from a real ACK.
      garbage: fc.oneof(
        { weight: 2, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 4 + GARBAGE_PAYLOAD_BYTES, maxLength: 4 + GARBAGE_PAYLOAD_BYTES }) },
      ),
    }),
  },
);

// -----------------------------------------------------------------------------------------------------------
// The model.

type ModelLease = { handle: string; deadlineMs: number; attempt: number; deadLetter: boolean; popId: number };
/** One message as one group sees it: settled, or its current lease (null: never delivered). */
type ModelMessage = { done: boolean; lease: ModelLease | null };
type ModelQueue = { popOffset: number; messages: Map<number, ModelMessage> };
/** The engine's state as the model predicts it: group -> queueId -> queue (absent: never popped). */
type ModelState = Map<string, Map<number, ModelQueue>>;

type Issued = { readonly group: string; readonly queueId: number; readonly queueOffset: number; readonly lease: Lease };

/** Everything produced to the store: each queue's base offset (at run start) and count. */
type Produced = { base: number[]; count: number[] };

/** How often the interesting cases came up, printed after the run so that a weak generator shows. */
const seen = { delivered: 0, redelivered: 0, deadLetters: 0, flowControlled: 0, fifoBlocked: 0, acked: 0, refused: 0, changed: 0, crashes: 0, tornCrashes: 0, restarts: 0, compactions: 0 };

/** Skips fsyncs: crashes are simulated by what reaches the file (abandon), not by the OS losing data. */
const noSyncFs: StorageFs = { ...nodeStorageFs, fsyncSync: () => {}, fdatasyncSync: () => {} };

let store: MessageStore;
let suiteDir: string;

beforeAll(() => {
  suiteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop-prop-'));
  store = MessageStore.open({
    rootDir: path.join(suiteDir, 'store'),
    fs: noSyncFs,
    flushDiskType: 'ASYNC_FLUSH',
    storeHost: { address: '127.0.0.1', port: 10911 },
    mappedFileSizeCommitLog: 256 * 1024,
    mappedFileSizeConsumeQueue: 20 * 64,
    maxMessageSize: 32 * 1024,
    messageIndexEnable: false,
  });
});

afterAll(() => {
  store?.close();
  fs.rmSync(suiteDir, { recursive: true, force: true });
});

/** One run: the engine under test, the model, the simulated clock, every handle ever issued. */
class Harness {
  nowMs = T0;
  engine: PopEngine;
  model: ModelState = new Map();
  /** The model at the last sync, then after each engine call since, with the unwritten journal bytes then. */
  checkpoints: { bytes: number; model: ModelState }[] = [];
  readonly issued = new Map<string, Issued>();
  readonly handles: string[] = [];
  readonly produced: Produced;
  private popCount = 0;
  private readonly rootDir: string;
  private readonly fifoGroup: string;

  constructor(fifoFirstGroup: boolean) {
    this.rootDir = fs.mkdtempSync(path.join(suiteDir, 'run-'));
    this.fifoGroup = fifoFirstGroup ? GROUPS[0]! : GROUPS[1]!;
    this.produced = { base: QUEUES.map((q) => store.queueRange(TOPIC, q).maxOffset), count: QUEUES.map(() => 0) };
    this.engine = this.open();
    this.markDurable();
  }

  open(): PopEngine {
    return PopEngine.open({
      brokerName: 'broker-a',
      journal: { fs: noSyncFs, rootDir: this.rootDir, compactBytesMin: 1024 },
      popInflightMessageThreshold: PER_QUEUE_MAX,
      inflightMessagesMax: TOTAL_MAX,
      queueStatesMax: 16,
    });
  }

  dispose(): void {
    this.engine.abandon();
    fs.rmSync(this.rootDir, { recursive: true, force: true });
  }

  markDurable(): void {
    this.checkpoints = [{ bytes: 0, model: structuredClone(this.model) }];
  }

  /** Records the model after an engine call, with how much of the journal is not yet written. */
  checkpoint(): void {
    const bytes = this.engine.journalFile!.unwrittenBytes().length;
    this.checkpoints.push({ bytes, model: structuredClone(this.model) });
  }

  queue(group: string, queueId: number): ModelQueue | undefined {
    return this.model.get(group)?.get(queueId);
  }

  message(group: string, queueId: number, offset: number): ModelMessage {
    const queue = this.queue(group, queueId);
    expect(queue).toBeDefined();
    let message = queue!.messages.get(offset);
    if (message === undefined) {
      message = { done: false, lease: null };
      queue!.messages.set(offset, message);
    }
    return message;
  }

  produce(queueId: number, count: number): void {
    for (let i = 0; i < count; i++) {
      const result = store.putMessage({ topic: TOPIC, queueId, body: Buffer.from(`m-${queueId}-${this.produced.count[queueId]}`) });
      expect(result.status).toBe('PUT_OK');
      expect(result.queueOffset).toBe(this.produced.base[queueId]! + this.produced.count[queueId]!);
      this.produced.count[queueId]!++;
    }
    store.dispatch();
  }

  // ---------------------------------------------------------------------------------------------------------
  // pop

  pop(group: string, queueIds: number[], batch: number, invisibleMs: number): PopResult {
    const fifo = group === this.fifoGroup;
    const popId = ++this.popCount;
    const now = this.nowMs;
    const before = this.available(group, queueIds, fifo);
    const result = this.engine.pop({
      group,
      topic: TOPIC,
      queueIds,
      maxMessages: batch,
      invisibleMs,
      nowMs: now,
      fifo,
      maxAttempts: MAX_ATTEMPTS,
      queueMaxOffset: (q) => store.queueRange(TOPIC, q).maxOffset,
      startOffset: (q) => this.produced.base[q]!,
    });
    for (const q of queueIds) {
      if (!this.model.has(group)) this.model.set(group, new Map());
      const queues = this.model.get(group)!;
      if (!queues.has(q)) queues.set(q, { popOffset: this.produced.base[q]!, messages: new Map() });
    }
    seen.deadLetters += result.deadLetters.length;
    seen.flowControlled += result.flowControlled ? 1 : 0;
    seen.fifoBlocked += before.blocked.size;
    for (const dead of result.deadLetters) this.checkDelivery(dead, group, queueIds, fifo, popId, invisibleMs, before.blocked);
    for (const lease of result.leases) this.checkDelivery(lease, group, queueIds, fifo, popId, invisibleMs, before.blocked);
    const total = result.leases.length + result.deadLetters.length;
    const wanted = Math.min(batch, before.expired + before.fresh);
    if (!result.flowControlled) {
      expect(total, 'a pop hands out all it can unless flow controlled').toBe(wanted);
    } else {
      expect(total).toBeGreaterThanOrEqual(Math.min(batch, before.expired));
      expect(total).toBeLessThanOrEqual(wanted);
      const perQueueFull = queueIds.some((q) => this.inflightOf(group, q) >= PER_QUEUE_MAX);
      expect(perQueueFull || this.inflightTotal() >= TOTAL_MAX, 'flow control only at an in-flight bound').toBe(true);
    }
    this.checkpoint();
    return result;
  }

  /** What a pop could hand out now: expired leases, never-delivered messages, FIFO-blocked queues. */
  private available(group: string, queueIds: number[], fifo: boolean): { expired: number; fresh: number; blocked: Set<number> } {
    let expired = 0;
    let fresh = 0;
    const blocked = new Set<number>();
    for (const q of queueIds) {
      const queue = this.queue(group, q);
      const leases = queue === undefined ? [] : [...queue.messages.values()].filter((m) => m.lease !== null).map((m) => m.lease!);
      if (fifo && leases.some((lease) => lease.deadlineMs > this.nowMs)) {
        blocked.add(q);
        continue;
      }
      expired += leases.filter((lease) => lease.deadlineMs <= this.nowMs).length;
      const popOffset = queue?.popOffset ?? this.produced.base[q]!;
      fresh += this.produced.base[q]! + this.produced.count[q]! - popOffset;
    }
    return { expired, fresh, blocked };
  }

  private checkDelivery(lease: Lease, group: string, queueIds: number[], fifo: boolean, popId: number, invisibleMs: number, blocked: Set<number>): void {
    const { queueId: q, queueOffset: offset } = lease;
    expect(lease.group).toBe(group);
    expect(lease.topic).toBe(TOPIC);
    expect(queueIds).toContain(q);
    expect(blocked.has(q), 'FIFO: nothing from a queue with an invisible message').toBe(false);
    expect(lease.deadlineMs).toBe(this.nowMs + invisibleMs);
    expect(this.issued.has(lease.receiptHandle), 'every handle is new').toBe(false);
    const queue = this.queue(group, q)!;
    const message = this.message(group, q, offset);
    expect(message.done, 'an acked message is never delivered again').toBe(false);
    let attempt: number;
    if (message.lease === null) {
      expect(offset, 'new messages go out densely in queue order').toBe(queue.popOffset);
      expect(offset).toBeLessThan(this.produced.base[q]! + this.produced.count[q]!);
      queue.popOffset++;
      attempt = 1;
      seen.delivered++;
    } else {
      expect(message.lease.deadlineMs, 'nothing is delivered while invisible').toBeLessThanOrEqual(this.nowMs);
      attempt = message.lease.deadLetter ? message.lease.attempt : message.lease.attempt + 1;
      seen.redelivered++;
    }
    expect(lease.attempt).toBe(attempt);
    expect(lease.deadLetter, 'a dead letter exactly past maxAttempts').toBe(attempt > MAX_ATTEMPTS);
    if (fifo) {
      for (let earlier = this.produced.base[q]!; earlier < offset; earlier++) {
        const other = queue.messages.get(earlier);
        const settledOrPassed = other !== undefined && (other.done || other.lease?.deadLetter === true || other.lease?.popId === popId);
        expect(settledOrPassed, `FIFO: ${q}:${offset} delivered before ${q}:${earlier}`).toBe(true);
      }
    }
    message.lease = { handle: lease.receiptHandle, deadlineMs: lease.deadlineMs, attempt, deadLetter: lease.deadLetter, popId };
    this.issued.set(lease.receiptHandle, { group, queueId: q, queueOffset: offset, lease });
    this.handles.push(lease.receiptHandle);
  }

  // ---------------------------------------------------------------------------------------------------------
  // ack, change, skip

  /** Whether the model expects `text` to be `group`'s current lease (and live, unless for skip). */
  expectCurrent(group: string, text: string, checkDeadline: boolean): Issued | undefined {
    const issued = this.issued.get(text);
    if (issued === undefined || issued.group !== group) return undefined;
    const message = this.queue(group, issued.queueId)?.messages.get(issued.queueOffset);
    if (message === undefined || message.done || message.lease?.handle !== text) return undefined;
    if (checkDeadline && message.lease.deadlineMs <= this.nowMs) return undefined;
    return issued;
  }

  ack(group: string, text: string): boolean {
    const expected = this.expectCurrent(group, text, true);
    const result = this.engine.ack({ group, topic: TOPIC, receiptHandle: text, nowMs: this.nowMs });
    expect(result.ok, `ack of ${text} as ${group}`).toBe(expected !== undefined);
    if (!result.ok) expect(result.code).toBe('INVALID_RECEIPT_HANDLE');
    if (expected !== undefined) this.settle(expected);
    seen[result.ok ? 'acked' : 'refused']++;
    this.checkpoint();
    return result.ok;
  }

  change(text: string, invisibleMs: number): void {
    const group = this.issued.get(text)?.group ?? GROUPS[0]!;
    const expected = this.expectCurrent(group, text, true);
    const result = this.engine.changeInvisible({ group, topic: TOPIC, receiptHandle: text, nowMs: this.nowMs, invisibleMs });
    expect(result.ok, `change of ${text}`).toBe(expected !== undefined);
    if (result.ok && expected !== undefined) {
      const message = this.message(group, expected.queueId, expected.queueOffset);
      expect(result.lease.receiptHandle).not.toBe(text);
      expect(result.lease).toMatchObject({ queueId: expected.queueId, queueOffset: expected.queueOffset, attempt: message.lease!.attempt, deadlineMs: this.nowMs + invisibleMs });
      message.lease = { ...message.lease!, handle: result.lease.receiptHandle, deadlineMs: result.lease.deadlineMs };
      this.issued.set(result.lease.receiptHandle, { ...expected, lease: result.lease });
      this.handles.push(result.lease.receiptHandle);
      seen.changed++;
    }
    this.checkpoint();
  }

  skip(issued: Issued): void {
    const expected = this.expectCurrent(issued.group, issued.lease.receiptHandle, false);
    const result = this.engine.skip(issued.lease);
    expect(result.ok, `skip of ${issued.lease.receiptHandle}`).toBe(expected !== undefined);
    if (expected !== undefined) this.settle(expected);
    this.checkpoint();
  }

  private settle(issued: Issued): void {
    const message = this.message(issued.group, issued.queueId, issued.queueOffset);
    message.done = true;
    message.lease = null;
  }

  /** Handles that are some group's current lease now. */
  currentHandles(): string[] {
    const current: string[] = [];
    for (const queues of this.model.values()) {
      for (const queue of queues.values()) for (const message of queue.messages.values()) if (message.lease !== null) current.push(message.lease.handle);
    }
    return current;
  }

  // ---------------------------------------------------------------------------------------------------------
  // restart, crash, state checks

  restart(): void {
    const before = this.engine.inspect();
    this.engine.close();
    seen.restarts++;
    this.engine = this.open();
    expect(this.engine.inspect()).toEqual(before);
    this.markDurable();
    this.checkState();
  }

  crash(checkpointPick: number, tearPick: number, garbage: Uint8Array | null): void {
    const unwritten = this.engine.journalFile!.unwrittenBytes();
    const chosen = this.checkpoints[checkpointPick % this.checkpoints.length]!;
    let keep = chosen.bytes;
    // Garbage goes at a record boundary: after a torn record it could supply the very bytes that are
    // missing (zeros, say) and make the record whole again, which is a completed write, not a tear.
    if (garbage === null && keep + 4 <= unwritten.length) {
      // Tear the next record somewhere inside it: recovery must drop it whole.
      const nextSize = Buffer.from(unwritten).readUInt32BE(keep);
      keep += tearPick % nextSize;
      seen.tornCrashes += keep > chosen.bytes ? 1 : 0;
    }
    seen.crashes++;
    this.engine.abandon(keep);
    if (garbage !== null) {
      const record = Buffer.alloc(9 + GARBAGE_PAYLOAD_BYTES);
      record.writeUInt32BE(record.length, 0);
      record.set(garbage.subarray(0, 4), 4);
      record.writeUInt8(PopRecordType.ACK, 8);
      record.set(garbage.subarray(4), 9);
      fs.appendFileSync(this.engine.journalFile!.filePath, record);
    }
    this.model = structuredClone(chosen.model);
    this.engine = this.open();
    this.markDurable();
    this.checkState();
  }

  /** The group is deleted: its state goes; popping again starts over at the start offsets. */
  forget(group: string): void {
    expect(this.engine.forget(group, TOPIC)).toBe(this.model.has(group));
    this.model.delete(group);
    this.checkpoint();
  }

  sync(): void {
    const size = this.engine.journalFile!.sizeBytes;
    this.engine.sync();
    seen.compactions += this.engine.journalFile!.sizeBytes < size ? 1 : 0;
    this.markDurable();
  }

  /** The engine's whole state equals the model's; committed offsets and in-flight counts agree. */
  checkState(): void {
    const views = this.engine.inspect();
    const expected: unknown[] = [];
    for (const [group, queues] of this.model) {
      for (const [queueId, queue] of queues) {
        const leases = [...queue.messages.entries()]
          .filter(([, message]) => message.lease !== null)
          .sort(([a], [b]) => a - b)
          .map(([queueOffset, message]) => ({ queueOffset, attempt: message.lease!.attempt, deadlineMs: message.lease!.deadlineMs, deadLetter: message.lease!.deadLetter, receiptHandle: message.lease!.handle }));
        expected.push({ group, queueId, popOffset: queue.popOffset, leases });
      }
    }
    const actual = views.map((view) => ({
      group: view.group,
      queueId: view.queueId,
      popOffset: view.popOffset,
      leases: view.leases.map(({ queueOffset, attempt, deadlineMs, deadLetter, receiptHandle }) => ({ queueOffset, attempt, deadlineMs, deadLetter, receiptHandle })),
    }));
    const order = (list: unknown[]) => [...list].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(order(actual)).toEqual(order(expected));
    this.checkOffsets();
  }

  checkOffsets(): void {
    for (const group of GROUPS) {
      for (const q of QUEUES) {
        const queue = this.queue(group, q);
        let committed = -1;
        if (queue !== undefined) {
          const unsettled = [...queue.messages.entries()].filter(([, m]) => m.lease !== null).map(([offset]) => offset);
          committed = unsettled.length > 0 ? Math.min(...unsettled) : queue.popOffset;
        }
        expect(this.engine.committedOffset(group, TOPIC, q), `committedOffset ${group}/${q}`).toBe(committed);
      }
    }
    expect(this.engine.inflightCount).toBe(this.inflightTotal());
    for (const group of GROUPS) {
      const deadlines = [...(this.model.get(group)?.values() ?? [])].flatMap((queue) =>
        [...queue.messages.values()].flatMap((message) => (message.lease === null ? [] : [message.lease.deadlineMs])),
      );
      expect(this.engine.nextDeadlineMs(group, TOPIC)).toBe(deadlines.length === 0 ? null : Math.min(...deadlines));
    }
    expect(this.inflightTotal(), 'inflightMessagesMax holds').toBeLessThanOrEqual(TOTAL_MAX);
    for (const group of GROUPS) for (const q of QUEUES) expect(this.inflightOf(group, q), 'popInflightMessageThreshold holds').toBeLessThanOrEqual(PER_QUEUE_MAX);
  }

  inflightOf(group: string, q: number): number {
    const queue = this.queue(group, q);
    return queue === undefined ? 0 : [...queue.messages.values()].filter((m) => m.lease !== null).length;
  }

  inflightTotal(): number {
    return GROUPS.reduce((sum, group) => sum + QUEUES.reduce((s, q) => s + this.inflightOf(group, q), 0), 0);
  }

  /** Liveness: past every deadline, pop and settle until nothing is left; everything ends settled. */
  drain(): void {
    for (let round = 0; round < MAX_ATTEMPTS + 3; round++) {
      this.nowMs += Math.max(...INVISIBLE_MS, ...CHANGE_MS) + 1;
      for (const group of GROUPS) {
        for (let i = 0; i < 1000; i++) {
          const result = this.pop(group, QUEUES, DRAIN_BATCH, INVISIBLE_MS[0]!);
          for (const dead of result.deadLetters) this.skip(this.issued.get(dead.receiptHandle)!);
          for (const lease of result.leases) expect(this.ack(group, lease.receiptHandle)).toBe(true);
          if (result.leases.length + result.deadLetters.length === 0) break;
        }
      }
    }
    for (const group of GROUPS) {
      for (const q of QUEUES) {
        const end = this.produced.base[q]! + this.produced.count[q]!;
        expect(this.engine.committedOffset(group, TOPIC, q), `every message of ${group}/${q} settled`).toBe(end);
        for (let offset = this.produced.base[q]!; offset < end; offset++) expect(this.queue(group, q)!.messages.get(offset)?.done).toBe(true);
      }
    }
    expect(this.engine.inflightCount).toBe(0);
  }
}

function runCommand(harness: Harness, cmd: Command): void {
  switch (cmd.type) {
    case 'produce':
      harness.produce(cmd.queueId, cmd.count);
      return;
    case 'pop':
      harness.pop(GROUPS[cmd.group]!, cmd.queues < 0 ? QUEUES : [cmd.queues], cmd.batch, INVISIBLE_MS[cmd.invisible]!);
      return;
    case 'ack': {
      const pool = cmd.kind === 'current' ? harness.currentHandles() : harness.handles;
      const text = pool.length === 0 ? '' : pool[cmd.pick % pool.length]!;
      const group = harness.issued.get(text)?.group ?? GROUPS[0]!;
      if (cmd.kind === 'current' || cmd.kind === 'any') harness.ack(group, text);
      else if (cmd.kind === 'foreign') {
        expect(harness.engine.ack({ group: group === GROUPS[0] ? GROUPS[1]! : GROUPS[0]!, topic: TOPIC, receiptHandle: text, nowMs: harness.nowMs }).ok).toBe(false);
        expect(harness.engine.ack({ group, topic: `${TOPIC}X`, receiptHandle: text, nowMs: harness.nowMs }).ok).toBe(false);
      } else if (cmd.kind === 'forged') {
        const at = text.length === 0 ? 0 : cmd.pick % text.length;
        const forged = text.slice(0, at) + (text[at] === '1' ? '2' : '1') + text.slice(at + 1);
        harness.ack(group, forged); // the model refuses it unless it happens to be a real current handle
      } else harness.ack(GROUPS[cmd.pick % 2]!, cmd.text);
      return;
    }
    case 'change': {
      const pool = cmd.kind === 'current' ? harness.currentHandles() : harness.handles;
      if (pool.length > 0) harness.change(pool[cmd.pick % pool.length]!, CHANGE_MS[cmd.invisible]!);
      return;
    }
    case 'skip': {
      const pool = harness.currentHandles();
      if (pool.length > 0) harness.skip(harness.issued.get(pool[cmd.pick % pool.length]!)!);
      return;
    }
    case 'advance':
      harness.nowMs += cmd.ms;
      return;
    case 'sync':
      harness.sync();
      return;
    case 'forget':
      harness.forget(GROUPS[cmd.group]!);
      return;
    case 'restart':
      harness.restart();
      return;
    case 'crash':
      harness.crash(cmd.checkpoint, cmd.tear, cmd.garbage);
      return;
  }
}

describe('PopEngine model', () => {
  it('keeps RocketMQ POP semantics across restarts and crashes', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(command, { minLength: 10, maxLength: 80, size: 'max' }), (fifoFirstGroup, commands) => {
        const harness = new Harness(fifoFirstGroup);
        try {
          for (const cmd of commands) {
            runCommand(harness, cmd);
            harness.checkOffsets();
          }
          harness.checkState();
          harness.drain();
        } finally {
          harness.dispose();
        }
      }),
      replayableParameters('pop-engine model', NUM_RUNS),
    );
    console.log(`[pop-engine model] ${JSON.stringify(seen)}`);
  }, 30_000 + NUM_RUNS * 60);
});
