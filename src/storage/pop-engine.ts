/**
 * The POP consumption engine: which message of a (group, topic, queue) goes to which POP consumer,
 * for how long it stays invisible, and when it comes back. RocketMQ spreads this over PopMessageProcessor
 * (pop, checkpoints), AckMessageProcessor (ack), ChangeInvisibleTimeProcessor, PopReviveService (expired
 * checkpoints come back through the retry topic) and ConsumerOrderInfoManager (orderly pop); here it is
 * one pure, synchronous state machine with its own journal (pop-journal.ts). Time is passed in as
 * `nowMs`; the engine owns no timer. The pop-service actor wraps it; the proxy maps its answers to gRPC.
 *
 * State, per (group, topic, queueId): `popOffset`, the next never-delivered queue offset, and the
 * in-flight leases, queue offset -> {attempt, nonce (epoch, seq), deadlineMs, fifo, deadLetter}. Every
 * offset below popOffset without a lease is settled (acked, skipped, or dead-lettered and settled).
 *
 * Semantics (RocketMQ's, checked against apache/rocketmq 5.x):
 * - pop hands out up to maxMessages leases over the requested queues, each invisible for invisibleMs.
 *   Non-FIFO: first the expired leases of those queues, oldest deadline first, each with attempt + 1
 *   (RocketMQ's revive: reconsumeTimes + 1); then never-delivered offsets from popOffset up to the
 *   queue's max offset, queue after queue (each queue gives what it can before the next is asked, as
 *   PopMessageProcessor does), starting at a queue that rotates from one pop to the next (RocketMQ starts
 *   at a random one). Many consumers of a group share a queue; a message has at most one live lease.
 * - FIFO (an orderly group on a FIFO topic): a queue with any live lease is skipped whole (RocketMQ's
 *   ConsumerOrderInfoManager.checkBlock); otherwise its expired leases are delivered again in offset
 *   order, then new offsets, so order holds across redelivery, and an acked message is never redelivered.
 * - A lease whose next attempt would exceed maxAttempts is not redelivered but issued as a dead letter
 *   (returned in `deadLetters`, attempt = maxAttempts + 1, with the proxy's rule reconsumeTimes >=
 *   maxAttempts, PopMessageResultFilterImpl). The caller copies it to `%DLQ%<group>` and then settles it
 *   with `skip`; until then it stays in flight, so a crash between the two sends it to the DLQ again
 *   (at least once) instead of losing it.
 * - ack and changeInvisible take the receipt handle (pop-receipt-handle.ts). An unknown, stale
 *   (superseded by changeInvisible or redelivery), foreign (another group, topic or broker), forged,
 *   expired (deadline <= now, RocketMQ's ReceiptHandle.isExpired) or already acked handle is refused
 *   with INVALID_RECEIPT_HANDLE. changeInvisible issues a new handle (same attempt); the old one dies.
 * - Flow control: new offsets of a queue are not handed out while the queue has
 *   popInflightMessageThreshold leases (RocketMQ's isPopShouldStop) or the engine has
 *   inflightMessagesMax; the queue is skipped and the result says `flowControlled`.
 * - committedOffset is the lowest unsettled offset (popOffset when none is in flight): what the caller
 *   persists as the consumer offset, so that Remoting consumers and a restart see it. nextDeadlineMs
 *   tells the caller when a pop may find expired leases (to wake long-polling requests); forget drops
 *   the state of a deleted group or topic.
 *
 * Invisible time: the caller validates it with RocketMQ's codes and bounds (POP_INVISIBLE_TIME: the
 * proxy takes 10 s .. 12 h for ReceiveMessage and 0 .. 12 h for ChangeInvisibleDuration, and answers
 * ILLEGAL_INVISIBLE_TIME); the engine only asserts its own outer range (pop 1 ms .. max, change 0 ..
 * max), so a value outside it is a programmer error.
 *
 * Durability: every state change is a journal record, applied by the same function live and at replay,
 * so the state after `open` equals the state at the last completed `sync`, plus possibly some later
 * changes. Records are buffered until `sync` (group commit): the caller must `sync()` before it answers
 * an ack OK (an acked message must never come back after kill -9), or `write()` when the store runs
 * ASYNC_FLUSH (the record reaches the OS and survives kill -9; an OS crash may redeliver the message). POP and CHANGE records need no sync
 * before answering: if one is lost, the message is simply delivered again (at least once) and the lost
 * handle is refused, since each open starts a new epoch (durable before any handle of it goes out).
 *
 * Memory: leases are bounded by inflightMessagesMax, queue states by queueStatesMax; a fully acked
 * queue costs its offset only.
 */
import { assert } from '../runtime/assert.ts';
import {
  POP_KEY_NAME_BYTES_MAX,
  PopJournal,
  type PopJournalOptions,
  type PopJournalRecord,
  type PopJournalRecovery,
  type PopLeaseRecord,
  checkJournal,
} from './pop-journal.ts';
import {
  type DecodedReceiptHandle,
  type ReceiptHandleRefusal,
  decodeReceiptHandle,
  encodeReceiptHandle,
  invalidReceiptHandle,
  isValidBrokerName,
  receiptHandleMatches,
} from './pop-receipt-handle.ts';

/** ProxyConfig's invisible-time settings (for the caller's validation; names verbatim). */
export const POP_INVISIBLE_TIME = {
  /** ProxyConfig.minInvisibleTimeMillsForRecv: least invisible time of a ReceiveMessage. */
  minInvisibleTimeMillsForRecv: 10_000,
  /** ProxyConfig.defaultInvisibleTimeMills: used when the client asks for auto-renew. */
  defaultInvisibleTimeMills: 60_000,
  /** ProxyConfig.maxInvisibleTimeMills: most invisible time of a receive or a change. */
  maxInvisibleTimeMills: 12 * 60 * 60 * 1000,
} as const;

/** Defaults of the engine's bounds. */
export const POP_ENGINE_DEFAULTS = {
  /** BrokerConfig.popInflightMessageThreshold: most leases of one (group, topic, queue). */
  popInflightMessageThreshold: 10_000,
  /** Most leases of the whole engine (BrokerConfig.popCkMaxBufferSize's default). */
  inflightMessagesMax: 200_000,
  /** Most (group, topic, queue) states (MessageStore's consumeQueuesMax default). */
  queueStatesMax: 100_000,
} as const;

/** Most messages one pop asks for (gRPC batch sizes; Remoting pop allows 32). */
export const POP_BATCH_MAX = 1024;
/** Most queues one pop names. */
export const POP_QUEUE_IDS_MAX = 65_536;
/** Highest maxAttempts accepted. */
const MAX_ATTEMPTS_MAX = 0x7fff_ffff;
/** Heap entries kept beyond twice the leases before the heap is rebuilt. */
const HEAP_SLACK = 64;
const EPOCH_MAX = 0xffff_ffff;

/** One delivery of one message to one consumer, as the caller hands it on. */
export type Lease = Readonly<{
  group: string;
  topic: string;
  queueId: number;
  queueOffset: number;
  /** Delivery attempt, 1 on first delivery (gRPC delivery_attempt; reconsumeTimes = attempt - 1). */
  attempt: number;
  /** When the message becomes visible again, ms since the epoch. */
  deadlineMs: number;
  /** Popped in FIFO (orderly) mode. */
  fifo: boolean;
  /** Issued as a dead letter: copy it to %DLQ%<group>, then `skip` it. */
  deadLetter: boolean;
  /** The opaque handle the consumer acks with. */
  receiptHandle: string;
}>;

/** A pop request. */
export type PopRequest = Readonly<{
  group: string;
  topic: string;
  /** The queues to take from (all readable queues of the topic on this broker, or one). */
  queueIds: readonly number[];
  /** 1 .. POP_BATCH_MAX. */
  maxMessages: number;
  /** 1 .. maxInvisibleTimeMills (validated by the caller first). */
  invisibleMs: number;
  nowMs: number;
  /** Orderly pop (FIFO group on a FIFO topic). */
  fifo: boolean;
  /** The group's max delivery attempts (gRPC backoff max_attempts; retryMaxTimes + 1 for Remoting). */
  maxAttempts: number;
  /** The queue's max offset (the next offset to be written); asked once per requested queue per pop. */
  queueMaxOffset: (queueId: number) => number;
  /** Where a queue the engine has never seen starts (committed offset, or min/max by ConsumeInitMode). */
  startOffset: (queueId: number) => number;
}>;

/** What a pop hands out. */
export type PopResult = {
  /** Messages to deliver, in delivery order. */
  readonly leases: Lease[];
  /** Messages out of attempts: copy each to %DLQ%<group>, then `skip` it. */
  readonly deadLetters: Lease[];
  /** Some queue had messages that were held back by an in-flight bound. */
  flowControlled: boolean;
};

/** An ack request. */
export type AckRequest = Readonly<{ group: string; topic: string; receiptHandle: string; nowMs: number }>;
/** An ack's answer. */
export type AckResult = Readonly<{ ok: true }> | ReceiptHandleRefusal;
/** A change-invisible-duration request. */
export type ChangeInvisibleRequest = Readonly<{ group: string; topic: string; receiptHandle: string; nowMs: number; invisibleMs: number }>;
/** A change-invisible-duration answer: the new lease (and handle), or a refusal. */
export type ChangeInvisibleResult = Readonly<{ ok: true; lease: Lease }> | ReceiptHandleRefusal;

/** One queue's state as `inspect` shows it. */
export type PopQueueView = Readonly<{ group: string; topic: string; queueId: number; popOffset: number; leases: Lease[] }>;

/** How to open an engine. */
export type PopEngineOptions = Readonly<{
  /** This broker's name (BrokerConfig.brokerName), carried in receipt handles. */
  brokerName: string;
  /** The journal's file system and root; null keeps the state in memory only. */
  journal: PopJournalOptions | null;
  popInflightMessageThreshold?: number;
  inflightMessagesMax?: number;
  queueStatesMax?: number;
  /** ProxyConfig.maxInvisibleTimeMills; the engine's upper bound on invisibleMs. */
  maxInvisibleTimeMills?: number;
}>;

/** What `open` found. */
export type PopEngineRecovery = Readonly<{ epoch: number; journal: PopJournalRecovery | null }>;

type LeaseState = { attempt: number; epoch: number; seq: number; deadlineMs: number; fifo: boolean; deadLetter: boolean };
type HeapEntry = { readonly deadlineMs: number; readonly queueOffset: number; readonly epoch: number; readonly seq: number };
type QueueState = { readonly queueId: number; popOffset: number; readonly leases: Map<number, LeaseState>; readonly heap: DeadlineHeap };
type KeyState = { readonly keyId: number; readonly group: string; readonly topic: string; readonly queues: Map<number, QueueState>; cursor: number };
type QueueCursor = { readonly queue: QueueState; readonly maxOffset: number };
type Found = { key: KeyState; queue: QueueState; lease: LeaseState; handle: DecodedReceiptHandle };

/** The POP engine; see the file comment. */
export class PopEngine {
  /** What open found. */
  readonly recovery: PopEngineRecovery;
  private readonly brokerName: string;
  private readonly journal: PopJournal | null;
  private readonly perQueueMax: number;
  private readonly totalMax: number;
  private readonly queueStatesMax: number;
  private readonly invisibleMsMax: number;
  private readonly keys = new Map<string, KeyState>();
  private readonly keysById = new Map<number, KeyState>();
  private nextKeyId = 1;
  private queueCount = 0;
  private inflight = 0;
  private epoch = 0;
  private seq = 0;
  private closed = false;

  private constructor(options: PopEngineOptions) {
    assert(isValidBrokerName(options.brokerName), () => `brokerName not usable in a receipt handle: ${options.brokerName}`);
    this.brokerName = options.brokerName;
    this.perQueueMax = options.popInflightMessageThreshold ?? POP_ENGINE_DEFAULTS.popInflightMessageThreshold;
    this.totalMax = options.inflightMessagesMax ?? POP_ENGINE_DEFAULTS.inflightMessagesMax;
    this.queueStatesMax = options.queueStatesMax ?? POP_ENGINE_DEFAULTS.queueStatesMax;
    this.invisibleMsMax = options.maxInvisibleTimeMills ?? POP_INVISIBLE_TIME.maxInvisibleTimeMills;
    for (const bound of [this.perQueueMax, this.totalMax, this.queueStatesMax, this.invisibleMsMax]) {
      assert(Number.isSafeInteger(bound) && bound > 0, () => `engine bound must be a positive integer: ${bound}`);
    }
    const apply = (record: PopJournalRecord): void => this.apply(record);
    this.journal = options.journal === null ? null : PopJournal.open(options.journal, apply);
    // A new epoch, durable before any handle of it goes out: nonces never repeat across crashes.
    checkJournal(this.epoch < EPOCH_MAX, 'epoch counter exhausted');
    this.commit({ type: 'EPOCH', epoch: this.epoch + 1 });
    this.journal?.sync();
    this.recovery = { epoch: this.epoch, journal: this.journal?.recovery ?? null };
  }

  /** Opens the engine, replaying its journal (POP_JOURNAL_CORRUPT if it cannot be trusted). */
  static open(options: PopEngineOptions): PopEngine {
    return new PopEngine(options);
  }

  // -------------------------------------------------------------------------------------------------------
  // Operations.

  /** Hands out up to maxMessages leases (and dead letters) over the requested queues. */
  pop(request: PopRequest): PopResult {
    this.checkPopRequest(request);
    const result: PopResult = { leases: [], deadLetters: [], flowControlled: false };
    const queues = this.queuesOf(request, result);
    let remaining = request.maxMessages;
    if (request.fifo) {
      for (const cursor of queues) {
        if (remaining === 0) break;
        if (hasLiveLease(cursor.queue, request.nowMs)) continue;
        remaining -= this.redeliverInOrder(cursor.queue, request, remaining, result);
        if (remaining > 0) remaining -= this.deliverNew(cursor, request, remaining, result);
      }
    } else {
      remaining -= this.redeliverOldestFirst(queues, request, remaining, result);
      for (const cursor of queues) {
        if (remaining === 0) break;
        remaining -= this.deliverNew(cursor, request, remaining, result);
      }
    }
    assert(remaining >= 0 && result.leases.length + result.deadLetters.length === request.maxMessages - remaining, 'pop count');
    return result;
  }

  /** Acks the lease a receipt handle names; refuses unknown, stale, foreign, expired or acked handles. */
  ack(request: AckRequest): AckResult {
    this.checkOpen();
    const found = this.find(request.group, request.topic, request.receiptHandle);
    if ('code' in found) return found;
    if (found.lease.deadlineMs <= request.nowMs) return invalidReceiptHandle('EXPIRED');
    this.commit({ type: 'ACK', ...this.settleFields(found) });
    return { ok: true };
  }

  /** Gives a live lease a new invisible time from now, as a new lease with a new handle (same attempt). */
  changeInvisible(request: ChangeInvisibleRequest): ChangeInvisibleResult {
    this.checkOpen();
    assert(Number.isSafeInteger(request.invisibleMs) && request.invisibleMs >= 0 && request.invisibleMs <= this.invisibleMsMax, () => `invisibleMs out of range: ${request.invisibleMs}`);
    checkNow(request.nowMs);
    const found = this.find(request.group, request.topic, request.receiptHandle);
    if ('code' in found) return found;
    if (found.lease.deadlineMs <= request.nowMs) return invalidReceiptHandle('EXPIRED');
    const { key, queue, lease } = found;
    const offset = found.handle.queueOffset;
    this.commit(this.leaseRecord('CHANGE', key, queue, offset, lease.attempt, request.nowMs + request.invisibleMs, lease.fifo));
    return { ok: true, lease: this.leaseView(key, queue, offset) };
  }

  /**
   * Settles a lease the broker handled itself: a message the caller filtered out (tag or SQL mismatch:
   * it counts as acked) or a dead letter the caller has copied to the DLQ. No expiry check: only a
   * lease that was superseded (redelivered) is refused.
   */
  skip(lease: Lease): AckResult {
    this.checkOpen();
    const found = this.find(lease.group, lease.topic, lease.receiptHandle);
    if ('code' in found) return found;
    this.commit({ type: 'SKIP', ...this.settleFields(found) });
    return { ok: true };
  }

  /** The consumer offset to persist: the lowest in-flight offset, else popOffset; -1 for an unknown queue. */
  committedOffset(group: string, topic: string, queueId: number): number {
    const queue = this.keys.get(keyName(group, topic))?.queues.get(queueId);
    if (queue === undefined) return -1;
    // Leases are inserted in increasing offset order (only at popOffset), so the first is the lowest.
    for (const offset of queue.leases.keys()) return offset;
    return queue.popOffset;
  }

  /** The earliest deadline of the group's leases on the topic (when a pop may find expired ones), or null. */
  nextDeadlineMs(group: string, topic: string): number | null {
    const key = this.keys.get(keyName(group, topic));
    let earliest: number | null = null;
    for (const queue of key?.queues.values() ?? []) {
      const entry = validTop(queue);
      if (entry !== undefined && (earliest === null || entry.deadlineMs < earliest)) earliest = entry.deadlineMs;
    }
    return earliest;
  }

  /**
   * Forgets the group's state on the topic (its offsets and leases), when the group or the topic is
   * deleted; a later pop starts again from startOffset. Returns whether there was any.
   */
  forget(group: string, topic: string): boolean {
    this.checkOpen();
    const key = this.keys.get(keyName(group, topic));
    if (key === undefined) return false;
    this.commit({ type: 'DROP', keyId: key.keyId });
    return true;
  }

  /** Leases in flight, in all queues. */
  get inflightCount(): number {
    return this.inflight;
  }

  /** (group, topic, queue) states held. */
  get queueStateCount(): number {
    return this.queueCount;
  }

  /** Every queue's state (for tests, admin and metrics). */
  inspect(): PopQueueView[] {
    const views: PopQueueView[] = [];
    for (const key of this.keys.values()) {
      for (const queue of key.queues.values()) {
        const leases = [...queue.leases.keys()].map((offset) => this.leaseView(key, queue, offset));
        views.push({ group: key.group, topic: key.topic, queueId: queue.queueId, popOffset: queue.popOffset, leases });
      }
    }
    return views;
  }

  /** Makes every change so far durable (compacting the journal when it is due); call before answering acks. */
  sync(): void {
    this.checkOpen();
    if (this.journal === null) return;
    if (this.journal.shouldCompact()) this.journal.rewrite(this.liveRecords());
    else this.journal.sync();
  }

  /** Writes every change so far to the OS without an fdatasync (compacting when due); survives kill -9. */
  write(): void {
    this.checkOpen();
    if (this.journal === null) return;
    if (this.journal.shouldCompact()) this.journal.rewrite(this.liveRecords());
    else this.journal.flush();
  }

  /** Syncs and closes. */
  close(): void {
    if (this.closed) return;
    this.sync();
    this.journal?.close();
    this.closed = true;
  }

  /** Closes as kill -9 would: unsynced changes are lost, but for `keepBytes` of them (a torn write). For tests. */
  abandon(keepBytes = 0): void {
    this.journal?.abandon(keepBytes);
    this.closed = true;
  }

  /** The journal (for crash tests and metrics), or null for an in-memory engine. */
  get journalFile(): PopJournal | null {
    return this.journal;
  }

  // -------------------------------------------------------------------------------------------------------
  // Pop steps.

  /**
   * The requested queues' states with their max offsets, starting at a queue that rotates from one pop
   * to the next; creates the states never seen, and cuts popOffset back where the store lost its tail.
   */
  private queuesOf(request: PopRequest, result: PopResult): QueueCursor[] {
    const found: QueueCursor[] = [];
    for (const queueId of request.queueIds) {
      const queue = this.keys.get(keyName(request.group, request.topic))?.queues.get(queueId) ?? this.createQueue(request, queueId);
      if (queue === null) {
        result.flowControlled = true;
        continue;
      }
      const maxOffset = request.queueMaxOffset(queueId);
      assert(Number.isSafeInteger(maxOffset) && maxOffset >= 0, () => `queueMaxOffset(${queueId}) gave ${maxOffset}`);
      // A crash under ASYNC_FLUSH lost the store's tail: new messages will take those offsets again.
      if (queue.popOffset > maxOffset) this.commit({ type: 'OFFSET', keyId: this.keyOf(request).keyId, queueId, popOffset: maxOffset });
      found.push({ queue, maxOffset });
    }
    if (found.length === 0) return found;
    const key = this.keyOf(request);
    const start = key.cursor % found.length;
    key.cursor = (key.cursor + 1) % POP_QUEUE_IDS_MAX;
    return [...found.slice(start), ...found.slice(0, start)];
  }

  private createQueue(request: PopRequest, queueId: number): QueueState | null {
    if (this.queueCount >= this.queueStatesMax) return null;
    let key = this.keys.get(keyName(request.group, request.topic));
    if (key === undefined) {
      const keyId = this.nextKeyId;
      this.commit({ type: 'KEY', keyId, group: request.group, topic: request.topic });
      key = this.keysById.get(keyId)!;
    }
    const start = request.startOffset(queueId);
    assert(Number.isSafeInteger(start) && start >= 0, () => `startOffset(${queueId}) gave ${start}`);
    this.commit({ type: 'OFFSET', keyId: key.keyId, queueId, popOffset: start });
    return key.queues.get(queueId)!;
  }

  /** Non-FIFO: expired leases of the queues, oldest deadline first; returns how many were handed out. */
  private redeliverOldestFirst(queues: QueueCursor[], request: PopRequest, remaining: number, result: PopResult): number {
    let count = 0;
    while (count < remaining) {
      let best: QueueState | undefined;
      let bestEntry: HeapEntry | undefined;
      for (const { queue } of queues) {
        const entry = validTop(queue);
        if (entry !== undefined && entry.deadlineMs <= request.nowMs && (bestEntry === undefined || entry.deadlineMs < bestEntry.deadlineMs)) {
          best = queue;
          bestEntry = entry;
        }
      }
      if (best === undefined || bestEntry === undefined) break;
      best.heap.pop();
      this.reissue(best, bestEntry.queueOffset, request, result);
      count++;
    }
    return count;
  }

  /** FIFO, on a queue without live leases: its expired leases in offset order; returns how many. */
  private redeliverInOrder(queue: QueueState, request: PopRequest, remaining: number, result: PopResult): number {
    const offsets: number[] = [];
    for (const offset of queue.leases.keys()) {
      if (offsets.length === remaining) break;
      offsets.push(offset);
    }
    for (const offset of offsets) this.reissue(queue, offset, request, result);
    return offsets.length;
  }

  /** Issues an expired lease again: attempt + 1, or as a dead letter once attempts are used up. */
  private reissue(queue: QueueState, offset: number, request: PopRequest, result: PopResult): void {
    const lease = queue.leases.get(offset);
    assert(lease !== undefined && lease.deadlineMs <= request.nowMs, 'only an expired lease is issued again');
    const key = this.keyOf(request);
    const dead = lease.deadLetter || lease.attempt >= request.maxAttempts;
    const attempt = lease.deadLetter ? lease.attempt : lease.attempt + 1;
    this.commit(this.leaseRecord(dead ? 'DLQ' : 'POP', key, queue, offset, attempt, request.nowMs + request.invisibleMs, request.fifo));
    (dead ? result.deadLetters : result.leases).push(this.leaseView(key, queue, offset));
  }

  /** Never-delivered offsets of one queue, within the in-flight bounds; returns how many. */
  private deliverNew(cursor: QueueCursor, request: PopRequest, remaining: number, result: PopResult): number {
    const { queue, maxOffset } = cursor;
    const key = this.keyOf(request);
    const wanted = Math.min(maxOffset - queue.popOffset, remaining);
    if (wanted <= 0) return 0;
    const room = Math.max(0, Math.min(this.perQueueMax - queue.leases.size, this.totalMax - this.inflight));
    const count = Math.min(wanted, room);
    if (count < wanted) result.flowControlled = true;
    for (let i = 0; i < count; i++) {
      const offset = queue.popOffset;
      this.commit(this.leaseRecord('POP', key, queue, offset, 1, request.nowMs + request.invisibleMs, request.fifo));
      assert(queue.popOffset === offset + 1, 'a first delivery advances popOffset');
      result.leases.push(this.leaseView(key, queue, offset));
    }
    return count;
  }

  // -------------------------------------------------------------------------------------------------------
  // Handles and records.

  private find(group: string, topic: string, text: string): Found | ReceiptHandleRefusal {
    const decoded = decodeReceiptHandle(text);
    if (!decoded.ok) return decoded;
    const handle = decoded.handle;
    if (handle.brokerName !== this.brokerName || !receiptHandleMatches(handle, group, topic)) return invalidReceiptHandle('FOREIGN');
    const key = this.keys.get(keyName(group, topic));
    const queue = key?.queues.get(handle.queueId);
    const lease = queue?.leases.get(handle.queueOffset);
    if (key === undefined || queue === undefined || lease === undefined) return invalidReceiptHandle('NOT_IN_FLIGHT');
    if (lease.epoch !== handle.epoch || lease.seq !== handle.seq || lease.deadlineMs !== handle.deadlineMs) return invalidReceiptHandle('STALE');
    return { key, queue, lease, handle };
  }

  private settleFields(found: Found): { keyId: number; queueId: number; queueOffset: number; epoch: number; seq: number } {
    const { key, queue, lease, handle } = found;
    return { keyId: key.keyId, queueId: queue.queueId, queueOffset: handle.queueOffset, epoch: lease.epoch, seq: lease.seq };
  }

  private leaseRecord(
    type: PopLeaseRecord['type'],
    key: KeyState,
    queue: QueueState,
    queueOffset: number,
    attempt: number,
    deadlineMs: number,
    fifo: boolean,
  ): PopLeaseRecord {
    this.seq++;
    return { type, keyId: key.keyId, queueId: queue.queueId, queueOffset, attempt, epoch: this.epoch, seq: this.seq, deadlineMs, fifo };
  }

  private leaseView(key: KeyState, queue: QueueState, queueOffset: number): Lease {
    const lease = queue.leases.get(queueOffset);
    assert(lease !== undefined, 'a view of a lease in flight');
    const fields = { brokerName: this.brokerName, queueId: queue.queueId, queueOffset, epoch: lease.epoch, seq: lease.seq, deadlineMs: lease.deadlineMs };
    return {
      group: key.group,
      topic: key.topic,
      queueId: queue.queueId,
      queueOffset,
      attempt: lease.attempt,
      deadlineMs: lease.deadlineMs,
      fifo: lease.fifo,
      deadLetter: lease.deadLetter,
      receiptHandle: encodeReceiptHandle(fields, key.group, key.topic),
    };
  }

  private keyOf(request: PopRequest): KeyState {
    const key = this.keys.get(keyName(request.group, request.topic));
    assert(key !== undefined, 'the key of a queue in use');
    return key;
  }

  /** Applies a record to the state, then journals it: live changes and replay share `apply`. */
  private commit(record: PopJournalRecord): void {
    this.apply(record);
    this.journal?.append(record);
  }

  /** The one state transition function; its checks reject a journal that does not describe a history. */
  private apply(record: PopJournalRecord): void {
    switch (record.type) {
      case 'EPOCH':
        checkJournal(record.epoch > this.epoch, `epoch ${record.epoch} after ${this.epoch}`);
        this.epoch = record.epoch;
        this.seq = 0;
        return;
      case 'KEY': {
        const name = keyName(record.group, record.topic);
        checkJournal(!this.keysById.has(record.keyId) && !this.keys.has(name), `KEY ${record.keyId} defined twice`);
        const key: KeyState = { keyId: record.keyId, group: record.group, topic: record.topic, queues: new Map(), cursor: 0 };
        this.keys.set(name, key);
        this.keysById.set(record.keyId, key);
        this.nextKeyId = Math.max(this.nextKeyId, record.keyId + 1);
        return;
      }
      case 'OFFSET':
        this.applyOffset(record.keyId, record.queueId, record.popOffset);
        return;
      case 'DROP': {
        const key = this.keysById.get(record.keyId);
        checkJournal(key !== undefined, `DROP of unknown key ${record.keyId}`);
        for (const queue of key.queues.values()) this.inflight -= queue.leases.size;
        this.queueCount -= key.queues.size;
        this.keys.delete(keyName(key.group, key.topic));
        this.keysById.delete(record.keyId);
        assert(this.inflight >= 0 && this.queueCount >= 0, 'counts stay non-negative');
        return;
      }
      case 'POP':
      case 'CHANGE':
      case 'DLQ':
        this.applyLease(record);
        return;
      case 'ACK':
      case 'SKIP': {
        const queue = this.queueFor(record.keyId, record.queueId);
        const lease = queue.leases.get(record.queueOffset);
        checkJournal(lease !== undefined && lease.epoch === record.epoch && lease.seq === record.seq, `${record.type} of a lease not in flight`);
        queue.leases.delete(record.queueOffset);
        this.inflight--;
        if (queue.heap.size > 2 * queue.leases.size + HEAP_SLACK) rebuildHeap(queue);
        return;
      }
    }
  }

  private applyOffset(keyId: number, queueId: number, popOffset: number): void {
    const key = this.keysById.get(keyId);
    checkJournal(key !== undefined, `OFFSET of unknown key ${keyId}`);
    let queue = key.queues.get(queueId);
    if (queue === undefined) {
      queue = { queueId, popOffset, leases: new Map(), heap: new DeadlineHeap() };
      key.queues.set(queueId, queue);
      this.queueCount++;
    }
    queue.popOffset = popOffset;
    const dropped = [...queue.leases.keys()].filter((offset) => offset >= popOffset);
    for (const offset of dropped) queue.leases.delete(offset);
    this.inflight -= dropped.length;
    if (dropped.length > 0) rebuildHeap(queue);
  }

  private applyLease(record: PopLeaseRecord): void {
    const queue = this.queueFor(record.keyId, record.queueId);
    const existing = queue.leases.get(record.queueOffset);
    if (record.type === 'CHANGE') {
      checkJournal(existing !== undefined && existing.attempt === record.attempt, 'CHANGE of a lease not in flight');
    } else if (existing === undefined) {
      // Only a first delivery adds a lease; it is past every lease, so the map stays in offset order.
      checkJournal(record.queueOffset >= queue.popOffset, `POP below popOffset ${queue.popOffset}`);
      queue.popOffset = record.queueOffset + 1;
      this.inflight++;
    }
    checkJournal(record.epoch <= this.epoch, `lease of epoch ${record.epoch} in epoch ${this.epoch}`);
    if (record.epoch === this.epoch) this.seq = Math.max(this.seq, record.seq);
    const deadLetter = record.type === 'DLQ' || (record.type === 'CHANGE' && existing!.deadLetter);
    queue.leases.set(record.queueOffset, {
      attempt: record.attempt,
      epoch: record.epoch,
      seq: record.seq,
      deadlineMs: record.deadlineMs,
      fifo: record.fifo,
      deadLetter,
    });
    queue.heap.push({ deadlineMs: record.deadlineMs, queueOffset: record.queueOffset, epoch: record.epoch, seq: record.seq });
    if (queue.heap.size > 2 * queue.leases.size + HEAP_SLACK) rebuildHeap(queue);
  }

  private queueFor(keyId: number, queueId: number): QueueState {
    const queue = this.keysById.get(keyId)?.queues.get(queueId);
    checkJournal(queue !== undefined, `record of unknown queue ${keyId}/${queueId}`);
    return queue;
  }

  /** The live state as records, for compaction: replaying them rebuilds this state exactly. */
  private *liveRecords(): Generator<PopJournalRecord> {
    yield { type: 'EPOCH', epoch: this.epoch };
    for (const key of this.keys.values()) {
      yield { type: 'KEY', keyId: key.keyId, group: key.group, topic: key.topic };
      for (const queue of key.queues.values()) {
        const lowest = this.committedOffset(key.group, key.topic, queue.queueId);
        yield { type: 'OFFSET', keyId: key.keyId, queueId: queue.queueId, popOffset: lowest };
        for (const [queueOffset, lease] of queue.leases) {
          yield {
            type: lease.deadLetter ? 'DLQ' : 'POP',
            keyId: key.keyId,
            queueId: queue.queueId,
            queueOffset,
            attempt: lease.attempt,
            epoch: lease.epoch,
            seq: lease.seq,
            deadlineMs: lease.deadlineMs,
            fifo: lease.fifo,
          };
        }
        yield { type: 'OFFSET', keyId: key.keyId, queueId: queue.queueId, popOffset: queue.popOffset };
      }
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Checks.

  private checkOpen(): void {
    assert(!this.closed, 'the POP engine is closed');
  }

  private checkPopRequest(request: PopRequest): void {
    this.checkOpen();
    checkName(request.group, 'group');
    checkName(request.topic, 'topic');
    checkNow(request.nowMs);
    const { queueIds, maxMessages, invisibleMs, maxAttempts } = request;
    assert(queueIds.length > 0 && queueIds.length <= POP_QUEUE_IDS_MAX, () => `pop names ${queueIds.length} queues`);
    assert(queueIds.every((id) => Number.isInteger(id) && id >= 0 && id < POP_QUEUE_IDS_MAX), 'queueIds out of range');
    assert(new Set(queueIds).size === queueIds.length, 'queueIds repeat');
    assert(Number.isInteger(maxMessages) && maxMessages >= 1 && maxMessages <= POP_BATCH_MAX, () => `maxMessages out of range: ${maxMessages}`);
    assert(Number.isSafeInteger(invisibleMs) && invisibleMs >= 1 && invisibleMs <= this.invisibleMsMax, () => `invisibleMs out of range: ${invisibleMs}`);
    assert(Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= MAX_ATTEMPTS_MAX, () => `maxAttempts out of range: ${maxAttempts}`);
    assert(Number.isSafeInteger(request.nowMs + invisibleMs), 'deadline out of range');
  }
}

function keyName(group: string, topic: string): string {
  return `${group}\u0000${topic}`;
}

function checkName(name: string, what: string): void {
  assert(typeof name === 'string' && name.length > 0 && !name.includes('\u0000'), () => `bad ${what} name`);
  assert(Buffer.byteLength(name, 'utf8') <= POP_KEY_NAME_BYTES_MAX, () => `${what} name too long`);
}

function checkNow(nowMs: number): void {
  assert(Number.isSafeInteger(nowMs) && nowMs >= 0, () => `nowMs out of range: ${nowMs}`);
}

/** Whether any lease of the queue is still invisible (FIFO blocks the queue then). */
function hasLiveLease(queue: QueueState, nowMs: number): boolean {
  for (const lease of queue.leases.values()) if (lease.deadlineMs > nowMs) return true;
  return false;
}

/** The heap's earliest entry that still names a lease in flight (stale entries are dropped on the way). */
function validTop(queue: QueueState): HeapEntry | undefined {
  for (let entry = queue.heap.peek(); entry !== undefined; entry = queue.heap.peek()) {
    const lease = queue.leases.get(entry.queueOffset);
    if (lease !== undefined && lease.epoch === entry.epoch && lease.seq === entry.seq) return entry;
    queue.heap.pop();
  }
  return undefined;
}

function rebuildHeap(queue: QueueState): void {
  const entries: HeapEntry[] = [];
  for (const [queueOffset, lease] of queue.leases) entries.push({ deadlineMs: lease.deadlineMs, queueOffset, epoch: lease.epoch, seq: lease.seq });
  queue.heap.reset(entries);
}

/** A binary min-heap of lease deadlines (ties by offset), with lazy deletion by the caller. */
class DeadlineHeap {
  private entries: HeapEntry[] = [];

  get size(): number {
    return this.entries.length;
  }

  peek(): HeapEntry | undefined {
    return this.entries[0];
  }

  push(entry: HeapEntry): void {
    const entries = this.entries;
    entries.push(entry);
    let i = entries.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entries[i]!, entries[parent]!)) break;
      [entries[i], entries[parent]] = [entries[parent]!, entries[i]!];
      i = parent;
    }
  }

  pop(): HeapEntry | undefined {
    const entries = this.entries;
    const top = entries[0];
    const last = entries.pop();
    if (entries.length > 0 && last !== undefined) {
      entries[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  reset(entries: HeapEntry[]): void {
    this.entries = entries;
    for (let i = (entries.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftDown(from: number): void {
    const entries = this.entries;
    let i = from;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < entries.length && before(entries[left]!, entries[least]!)) least = left;
      if (right < entries.length && before(entries[right]!, entries[least]!)) least = right;
      if (least === i) return;
      [entries[i], entries[least]] = [entries[least]!, entries[i]!];
      i = least;
    }
  }
}

function before(a: HeapEntry, b: HeapEntry): boolean {
  return a.deadlineMs < b.deadlineMs || (a.deadlineMs === b.deadlineMs && a.queueOffset < b.queueOffset);
}
