/**
 * Example tests of the POP engine (in memory; the journal has its own tests): delivery across queues
 * and consumers, acks and their refusals, change-invisible, redelivery and the DLQ, FIFO blocking and
 * order across redelivery, flow control by the in-flight bounds, committed offsets.
 */
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/runtime/assert.ts';
import { type Lease, PopEngine, type PopEngineOptions, type PopRequest } from '../../src/storage/pop-engine.ts';
import { decodeReceiptHandle, encodeReceiptHandle } from '../../src/storage/pop-receipt-handle.ts';

const T0 = 1_700_000_000_000;
const INVISIBLE = 30_000;

function engine(options: Partial<PopEngineOptions> = {}): PopEngine {
  return PopEngine.open({ brokerName: 'broker-a', journal: null, ...options });
}

/** A pop of group G on topic T with queues of the given lengths, starting at offset 0. */
function request(lengths: number[], overrides: Partial<PopRequest> = {}): PopRequest {
  return {
    group: 'G',
    topic: 'T',
    queueIds: lengths.map((_, queueId) => queueId),
    maxMessages: 32,
    invisibleMs: INVISIBLE,
    nowMs: T0,
    fifo: false,
    maxAttempts: 16,
    queueMaxOffset: (queueId) => lengths[queueId]!,
    startOffset: () => 0,
    ...overrides,
  };
}

const ids = (leases: Lease[]): string[] => leases.map((lease) => `${lease.queueId}:${lease.queueOffset}`);
const ack = (pop: PopEngine, lease: Lease, nowMs = T0, group = 'G', topic = 'T') =>
  pop.ack({ group, topic, receiptHandle: lease.receiptHandle, nowMs });

describe('pop', () => {
  it('hands out every message of every queue once, attempt 1, invisible until now + invisibleMs', () => {
    const pop = engine();
    const first = pop.pop(request([3, 2], { maxMessages: 4 }));
    const second = pop.pop(request([3, 2], { maxMessages: 4 }));
    const all = [...first.leases, ...second.leases];
    expect(all).toHaveLength(5);
    expect(new Set(ids(all)).size).toBe(5);
    expect(all.every((lease) => lease.attempt === 1 && lease.deadlineMs === T0 + INVISIBLE && !lease.deadLetter)).toBe(true);
    expect(pop.pop(request([3, 2])).leases).toEqual([]);
    expect(pop.inflightCount).toBe(5);
  });

  it('lets many consumers share one queue without duplicates (message-level load balancing)', () => {
    const pop = engine();
    const seen: string[] = [];
    for (let consumer = 0; consumer < 5; consumer++) seen.push(...ids(pop.pop(request([10], { maxMessages: 2 })).leases));
    expect(seen).toEqual(['0:0', '0:1', '0:2', '0:3', '0:4', '0:5', '0:6', '0:7', '0:8', '0:9']);
  });

  it('takes a queue fully before the next, starting at a queue that rotates between pops', () => {
    const pop = engine();
    const firsts = [0, 1, 2].map(() => pop.pop(request([5, 5, 5], { maxMessages: 1 })).leases[0]!.queueId);
    expect(new Set(firsts).size).toBe(3);
    const batch = pop.pop(request([5, 5, 5], { maxMessages: 6 })).leases;
    expect(new Set(batch.slice(0, 4).map((lease) => lease.queueId)).size).toBe(1);
  });

  it('asks startOffset once per queue and starts there', () => {
    const pop = engine();
    const asked: number[] = [];
    const startOffset = (queueId: number) => {
      asked.push(queueId);
      return 7;
    };
    const leases = pop.pop(request([10], { startOffset, maxMessages: 2 })).leases;
    pop.pop(request([10], { startOffset, maxMessages: 2 }));
    expect(ids(leases)).toEqual(['0:7', '0:8']);
    expect(asked).toEqual([0]);
  });

  it('gives expired messages back, oldest deadline first, with attempt + 1, and never an acked one', () => {
    const pop = engine();
    const early = pop.pop(request([4], { maxMessages: 2 })).leases;
    const late = pop.pop(request([4], { maxMessages: 2, nowMs: T0 + 1000 })).leases;
    expect(ack(pop, early[1]!).ok).toBe(true);
    expect(pop.pop(request([4], { nowMs: T0 + INVISIBLE - 1 })).leases).toEqual([]);
    const again = pop.pop(request([4], { nowMs: T0 + INVISIBLE + 1000 })).leases;
    expect(ids(again)).toEqual([ids(early)[0], ...ids(late)]);
    expect(again.map((lease) => lease.attempt)).toEqual([2, 2, 2]);
  });

  it('refuses an out-of-range request as a programmer error (the caller validates first)', () => {
    const pop = engine({ maxInvisibleTimeMills: 60_000 });
    expect(() => pop.pop(request([1], { invisibleMs: 60_001 }))).toThrow(AssertionError);
    expect(() => pop.pop(request([1], { invisibleMs: 0 }))).toThrow(AssertionError);
    expect(() => pop.pop(request([1], { maxMessages: 0 }))).toThrow(AssertionError);
    expect(() => pop.pop(request([1, 1], { queueIds: [0, 0] }))).toThrow(AssertionError);
  });
});

describe('ack and receipt handles', () => {
  it('acks once; a second ack, an expired handle and another group or topic are INVALID_RECEIPT_HANDLE', () => {
    const pop = engine();
    const [a, b] = pop.pop(request([2])).leases as [Lease, Lease];
    expect(ack(pop, a, T0, 'OtherGroup')).toEqual({ ok: false, code: 'INVALID_RECEIPT_HANDLE', reason: 'FOREIGN' });
    expect(ack(pop, a, T0, 'G', 'OtherTopic')).toMatchObject({ ok: false, reason: 'FOREIGN' });
    expect(ack(pop, a)).toEqual({ ok: true });
    expect(ack(pop, a)).toMatchObject({ ok: false, code: 'INVALID_RECEIPT_HANDLE', reason: 'NOT_IN_FLIGHT' });
    expect(ack(pop, b, b.deadlineMs)).toMatchObject({ ok: false, code: 'INVALID_RECEIPT_HANDLE', reason: 'EXPIRED' });
    expect(pop.committedOffset('G', 'T', 0)).toBe(1);
  });

  it('refuses garbage and forged handles cleanly, never throwing', () => {
    const pop = engine();
    const [lease] = pop.pop(request([1])).leases as [Lease];
    const decoded = decodeReceiptHandle(lease.receiptHandle);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const h = decoded.handle;
    const forgedSeq = encodeReceiptHandle({ ...h, seq: h.seq + 1 }, 'G', 'T');
    const forgedDeadline = encodeReceiptHandle({ ...h, deadlineMs: h.deadlineMs + 1 }, 'G', 'T');
    const otherBroker = encodeReceiptHandle({ ...h, brokerName: 'broker-b' }, 'G', 'T');
    const garbage: unknown[] = [
      '',
      'x',
      '1.2.3',
      lease.receiptHandle.slice(0, -1) + '!',
      lease.receiptHandle.replace(/^1\./, '2.'),
      lease.receiptHandle.replace(/^1\.0\./, '1.00.'),
      lease.receiptHandle + ' ',
      'é'.repeat(50),
      '1.0.0.0.0.0.0.',
      '1.zzzzzzzzzzz.0.0.0.0.0.b',
      'A'.repeat(100_000),
      undefined,
      42,
    ];
    for (const text of garbage) {
      const result = pop.ack({ group: 'G', topic: 'T', receiptHandle: text as string, nowMs: T0 });
      expect(result).toMatchObject({ ok: false, code: 'INVALID_RECEIPT_HANDLE' });
    }
    expect(ack(pop, { ...lease, receiptHandle: forgedSeq })).toMatchObject({ ok: false, reason: 'STALE' });
    expect(ack(pop, { ...lease, receiptHandle: forgedDeadline })).toMatchObject({ ok: false, reason: 'STALE' });
    expect(ack(pop, { ...lease, receiptHandle: otherBroker })).toMatchObject({ ok: false, reason: 'FOREIGN' });
    expect(ack(pop, lease)).toEqual({ ok: true });
  });

  it('keeps handles short ASCII and decodes what it encodes', () => {
    const pop = engine();
    const [lease] = pop.pop(request([123_456_790], { startOffset: () => 123_456_789 })).leases;
    expect(lease).toBeDefined();
    expect(lease!.receiptHandle).toMatch(/^[\x21-\x7e]{1,64}$/);
    const decoded = decodeReceiptHandle(lease!.receiptHandle);
    expect(decoded).toMatchObject({ ok: true, handle: { brokerName: 'broker-a', queueId: 0, queueOffset: 123_456_789, deadlineMs: T0 + INVISIBLE } });
  });
});

describe('changeInvisible', () => {
  it('returns a new handle with the same attempt and a new deadline; the old handle stops working', () => {
    const pop = engine();
    const [lease] = pop.pop(request([1])).leases as [Lease];
    const changed = pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: lease.receiptHandle, nowMs: T0 + 1000, invisibleMs: 100_000 });
    expect(changed.ok).toBe(true);
    if (!changed.ok) return;
    expect(changed.lease).toMatchObject({ queueOffset: 0, attempt: 1, deadlineMs: T0 + 101_000 });
    expect(changed.lease.receiptHandle).not.toBe(lease.receiptHandle);
    expect(ack(pop, lease, T0 + 2000)).toMatchObject({ ok: false, code: 'INVALID_RECEIPT_HANDLE', reason: 'STALE' });
    // Not redelivered at the old deadline; redelivered at the new one.
    expect(pop.pop(request([1], { nowMs: T0 + INVISIBLE + 1 })).leases).toEqual([]);
    const again = pop.pop(request([1], { nowMs: T0 + 101_000 })).leases;
    expect(again).toMatchObject([{ queueOffset: 0, attempt: 2 }]);
    expect(ack(pop, changed.lease, T0 + 101_000)).toMatchObject({ ok: false, reason: 'STALE' });
  });

  it('refuses an expired or already acked handle', () => {
    const pop = engine();
    const [a, b] = pop.pop(request([2])).leases as [Lease, Lease];
    expect(pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: a.receiptHandle, nowMs: a.deadlineMs, invisibleMs: 1000 })).toMatchObject({ ok: false, reason: 'EXPIRED' });
    expect(ack(pop, b).ok).toBe(true);
    expect(pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: b.receiptHandle, nowMs: T0, invisibleMs: 1000 })).toMatchObject({ ok: false, reason: 'NOT_IN_FLIGHT' });
  });

  it('with invisibleMs 0 makes the message visible at once (a nack)', () => {
    const pop = engine();
    const [lease] = pop.pop(request([1])).leases as [Lease];
    const changed = pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: lease.receiptHandle, nowMs: T0 + 5, invisibleMs: 0 });
    expect(changed.ok).toBe(true);
    expect(pop.pop(request([1], { nowMs: T0 + 5 })).leases).toMatchObject([{ queueOffset: 0, attempt: 2 }]);
  });
});

describe('dead letters', () => {
  it('issues a message as a dead letter once its attempts are used up, until the caller settles it', () => {
    const pop = engine();
    const maxAttempts = 2;
    let now = T0;
    expect(pop.pop(request([1], { maxAttempts, nowMs: now })).leases).toMatchObject([{ attempt: 1 }]);
    now += INVISIBLE;
    expect(pop.pop(request([1], { maxAttempts, nowMs: now })).leases).toMatchObject([{ attempt: 2 }]);
    now += INVISIBLE;
    const third = pop.pop(request([1], { maxAttempts, nowMs: now }));
    expect(third.leases).toEqual([]);
    expect(third.deadLetters).toMatchObject([{ queueOffset: 0, attempt: 3, deadLetter: true }]);
    expect(pop.committedOffset('G', 'T', 0)).toBe(0);
    // Not settled (the caller crashed before its DLQ write): it comes back as a dead letter again.
    now += INVISIBLE;
    const fourth = pop.pop(request([1], { maxAttempts, nowMs: now }));
    expect(fourth.deadLetters).toMatchObject([{ queueOffset: 0, attempt: 3 }]);
    expect(pop.skip(third.deadLetters[0]!)).toMatchObject({ ok: false, reason: 'STALE' });
    expect(pop.skip(fourth.deadLetters[0]!)).toEqual({ ok: true });
    expect(pop.committedOffset('G', 'T', 0)).toBe(1);
    expect(pop.pop(request([1], { maxAttempts, nowMs: now + 10 * INVISIBLE }))).toMatchObject({ leases: [], deadLetters: [] });
  });

  it('counts dead letters in the batch', () => {
    const pop = engine();
    pop.pop(request([3], { maxAttempts: 1 }));
    const result = pop.pop(request([5], { maxAttempts: 1, maxMessages: 4, nowMs: T0 + INVISIBLE }));
    expect(result.deadLetters).toHaveLength(3);
    expect(ids(result.leases)).toEqual(['0:3']);
  });
});

describe('FIFO', () => {
  const fifo = (lengths: number[], overrides: Partial<PopRequest> = {}) => request(lengths, { fifo: true, ...overrides });

  it('delivers nothing more from a queue while any popped message of it is invisible', () => {
    const pop = engine();
    const [a, b] = pop.pop(fifo([5], { maxMessages: 2 })).leases as [Lease, Lease];
    expect(ids([a, b])).toEqual(['0:0', '0:1']);
    expect(pop.pop(fifo([5])).leases).toEqual([]);
    expect(ack(pop, a).ok).toBe(true);
    expect(pop.pop(fifo([5])).leases).toEqual([]);
    expect(ack(pop, b).ok).toBe(true);
    expect(ids(pop.pop(fifo([5], { maxMessages: 2 })).leases)).toEqual(['0:2', '0:3']);
  });

  it('still serves the other queues', () => {
    const pop = engine();
    pop.pop(fifo([3, 3], { queueIds: [0], maxMessages: 1 }));
    expect(ids(pop.pop(fifo([3, 3])).leases)).toEqual(['1:0', '1:1', '1:2']);
  });

  it('restarts from the first unacked message after expiry, skipping acked ones, then goes on', () => {
    const pop = engine();
    const batch = pop.pop(fifo([6], { maxMessages: 3 })).leases;
    expect(ack(pop, batch[1]!).ok).toBe(true);
    const again = pop.pop(fifo([6], { nowMs: T0 + INVISIBLE, maxMessages: 4 })).leases;
    expect(ids(again)).toEqual(['0:0', '0:2', '0:3', '0:4']);
    expect(again.map((lease) => lease.attempt)).toEqual([2, 2, 1, 1]);
  });

  it('keeps the queue blocked while one lease was made longer, even after the others expire', () => {
    const pop = engine();
    const [a, b] = pop.pop(fifo([3], { maxMessages: 2 })).leases as [Lease, Lease];
    pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: b.receiptHandle, nowMs: T0, invisibleMs: 3 * INVISIBLE });
    expect(pop.pop(fifo([3], { nowMs: T0 + INVISIBLE })).leases).toEqual([]);
    expect(ids(pop.pop(fifo([3], { nowMs: T0 + 3 * INVISIBLE })).leases)).toEqual(['0:0', '0:1', '0:2']);
    expect(a.attempt).toBe(1);
  });

  it('passes a dead letter on and keeps order for the rest', () => {
    const pop = engine();
    pop.pop(fifo([2], { maxAttempts: 1, maxMessages: 1 }));
    const result = pop.pop(fifo([2], { maxAttempts: 1, nowMs: T0 + INVISIBLE }));
    expect(ids(result.deadLetters)).toEqual(['0:0']);
    expect(ids(result.leases)).toEqual(['0:1']);
  });
});

describe('flow control and bounds', () => {
  it('stops handing out new messages of a queue at popInflightMessageThreshold and says so', () => {
    const pop = engine({ popInflightMessageThreshold: 3 });
    const result = pop.pop(request([10, 2], { maxMessages: 10 }));
    expect(result.flowControlled).toBe(true);
    expect(result.leases.filter((lease) => lease.queueId === 0)).toHaveLength(3);
    expect(result.leases.filter((lease) => lease.queueId === 1)).toHaveLength(2);
    expect(ack(pop, result.leases.find((lease) => lease.queueId === 0)!).ok).toBe(true);
    expect(pop.pop(request([10, 2], { queueIds: [0] })).leases).toHaveLength(1);
  });

  it('stops at inflightMessagesMax over all queues, and redelivers expired leases regardless', () => {
    const pop = engine({ inflightMessagesMax: 4 });
    expect(pop.pop(request([3, 3], { maxMessages: 10 })).leases).toHaveLength(4);
    const blocked = pop.pop(request([3, 3], { maxMessages: 10 }));
    expect(blocked).toMatchObject({ leases: [], flowControlled: true });
    expect(pop.pop(request([3, 3], { maxMessages: 10, nowMs: T0 + INVISIBLE })).leases).toHaveLength(4);
    expect(pop.inflightCount).toBe(4);
  });

  it('skips a queue it has no room to track (queueStatesMax)', () => {
    const pop = engine({ queueStatesMax: 1 });
    const result = pop.pop(request([2, 2]));
    expect(new Set(result.leases.map((lease) => lease.queueId)).size).toBe(1);
    expect(result.flowControlled).toBe(true);
  });

  it('starts over at the store max offset when the store lost its tail', () => {
    const pop = engine();
    pop.pop(request([5]));
    expect(pop.committedOffset('G', 'T', 0)).toBe(0);
    const result = pop.pop(request([3], { nowMs: T0 + INVISIBLE }));
    expect(ids(result.leases)).toEqual(['0:0', '0:1', '0:2']);
    expect(pop.pop(request([4], { nowMs: T0 + INVISIBLE })).leases).toMatchObject([{ queueOffset: 3, attempt: 1 }]);
  });
});

describe('nextDeadlineMs and forget', () => {
  it('tells when the earliest lease of a group on a topic expires', () => {
    const pop = engine();
    expect(pop.nextDeadlineMs('G', 'T')).toBeNull();
    const [a, b] = pop.pop(request([1, 1])).leases as [Lease, Lease];
    pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: a.receiptHandle, nowMs: T0, invisibleMs: 90_000 });
    expect(pop.nextDeadlineMs('G', 'T')).toBe(T0 + INVISIBLE);
    expect(ack(pop, b).ok).toBe(true);
    expect(pop.nextDeadlineMs('G', 'T')).toBe(T0 + 90_000);
    expect(pop.nextDeadlineMs('G', 'Other')).toBeNull();
  });

  it('forgets a deleted group: its leases and offsets go, and it starts over from startOffset', () => {
    const pop = engine({ queueStatesMax: 1 });
    const [lease] = pop.pop(request([2], { maxMessages: 1 })).leases as [Lease];
    expect(pop.forget('G', 'T')).toBe(true);
    expect(pop.inflightCount).toBe(0);
    expect(pop.queueStateCount).toBe(0);
    expect(ack(pop, lease)).toMatchObject({ ok: false, reason: 'NOT_IN_FLIGHT' });
    expect(ids(pop.pop(request([2], { group: 'NewGroup' })).leases)).toEqual(['0:0', '0:1']);
  });
});

describe('skip and committedOffset', () => {
  it('counts a skipped (filtered out) message as acked', () => {
    const pop = engine();
    const [a, b] = pop.pop(request([2])).leases as [Lease, Lease];
    expect(pop.committedOffset('G', 'T', 0)).toBe(0);
    expect(pop.skip(a)).toEqual({ ok: true });
    expect(pop.skip(a)).toMatchObject({ ok: false, reason: 'NOT_IN_FLIGHT' });
    expect(pop.committedOffset('G', 'T', 0)).toBe(1);
    expect(ack(pop, b).ok).toBe(true);
    expect(pop.committedOffset('G', 'T', 0)).toBe(2);
    expect(pop.pop(request([2], { nowMs: T0 + 10 * INVISIBLE })).leases).toEqual([]);
  });

  it('is the lowest unacked offset, -1 for a queue never popped', () => {
    const pop = engine();
    const leases = pop.pop(request([4])).leases;
    expect(ack(pop, leases[0]!).ok).toBe(true);
    expect(ack(pop, leases[2]!).ok).toBe(true);
    expect(pop.committedOffset('G', 'T', 0)).toBe(1);
    expect(pop.committedOffset('G', 'T', 1)).toBe(-1);
    expect(pop.committedOffset('Other', 'T', 0)).toBe(-1);
  });
});
