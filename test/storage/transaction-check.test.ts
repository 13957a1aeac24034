import { describe, expect, it } from 'vitest';
import { checkDecision, DurableFrontier, EndedTransactions, firstCheckImmunityMs, TrackedHalves } from '../../src/storage/transaction-check.ts';
import type { HalfMessage } from '../../src/storage/transaction-message.ts';

const T0 = 1_700_000_000_000;
const SETTINGS = { transactionTimeOutMs: 6_000, transactionCheckMax: 3 };

function half(overrides: Partial<HalfMessage> = {}): HalfMessage {
  return {
    transactionId: 0,
    queueOffset: 0,
    physicalOffset: 0,
    producerGroup: 'PG',
    realTopic: 'TopicA',
    realQueueId: 0,
    uniqKey: 'U',
    checkTimes: 0,
    checkImmunityText: undefined,
    delayText: undefined,
    bornTimestampMs: T0,
    storeTimestampMs: T0,
    endOffset: 100,
    ...overrides,
  };
}

describe('check decisions', () => {
  it('waits transactionTimeOut after birth, or the message\'s own immunity, even when shorter', () => {
    expect(firstCheckImmunityMs(undefined, 6_000)).toBe(6_000);
    expect(firstCheckImmunityMs('2', 6_000)).toBe(2_000);
    expect(firstCheckImmunityMs('60', 6_000)).toBe(60_000);
    expect(firstCheckImmunityMs('-1', 6_000)).toBe(6_000);
    expect(firstCheckImmunityMs('x', 6_000)).toBe(6_000);
    expect(checkDecision(half(), T0 + 6_000, SETTINGS)).toBe('wait');
    expect(checkDecision(half(), T0 + 6_001, SETTINGS)).toBe('check');
    expect(checkDecision(half({ checkImmunityText: '2' }), T0 + 2_001, SETTINGS)).toBe('check');
    expect(checkDecision(half({ checkImmunityText: '20' }), T0 + 19_000, SETTINGS)).toBe('wait');
    // A producer clock ahead of the broker's: RocketMQ checks at once.
    expect(checkDecision(half({ bornTimestampMs: T0 + 50_000 }), T0 + 1, SETTINGS)).toBe('check');
  });

  it('leaves a record stored during the round for the next one, then discards at transactionCheckMax', () => {
    const renewed = half({ checkTimes: 3, storeTimestampMs: T0 + 10_000 });
    expect(checkDecision(renewed, T0 + 10_000, SETTINGS)).toBe('wait');
    expect(checkDecision(renewed, T0 + 10_001, SETTINGS)).toBe('discard');
    expect(checkDecision(half({ checkTimes: 2, storeTimestampMs: T0 + 10_000 }), T0 + 11_000, SETTINGS)).toBe('check');
  });
});

describe('TrackedHalves', () => {
  it('holds one record per transaction, the newest copy, within its bound', () => {
    const tracked = new TrackedHalves(2);
    expect(tracked.track(half({ transactionId: 0, queueOffset: 0 }))).toBe('added');
    expect(tracked.track(half({ transactionId: 1, queueOffset: 1 }))).toBe('added');
    expect(tracked.full).toBe(true);
    expect(tracked.track(half({ transactionId: 2, queueOffset: 2 }))).toBe('full');
    // A newer copy of a held transaction still fits; the older copy goes.
    expect(tracked.track(half({ transactionId: 0, queueOffset: 3, checkTimes: 1 }))).toBe('replaced');
    expect(tracked.size).toBe(2);
    expect(tracked.get(0)).toMatchObject({ queueOffset: 3, checkTimes: 1 });
    expect(tracked.lowestQueueOffset()).toBe(1);
    expect([...tracked.values()].map((h) => h.queueOffset)).toEqual([1, 3]);
    expect(() => tracked.track(half({ transactionId: 5, queueOffset: 3 }))).toThrow();
    expect(tracked.remove(1)).toBe(true);
    expect(tracked.remove(1)).toBe(false);
    expect(tracked.lowestQueueOffset()).toBe(3);
    tracked.clear();
    expect(tracked.size).toBe(0);
    expect(tracked.lowestQueueOffset()).toBeUndefined();
    expect(tracked.track(half({ transactionId: 0, queueOffset: 0 }))).toBe('added');
  });
});

describe('EndedTransactions', () => {
  it('is exact only for transactions begun after the start, and forgets the oldest first', () => {
    const ended = new EndedTransactions(2);
    expect(ended.isKnownOpen(100)).toBe(false);
    ended.startFrom(10);
    expect(ended.completeAbove).toBe(9);
    expect(ended.isKnownOpen(9)).toBe(false);
    expect(ended.isKnownOpen(10)).toBe(true);
    ended.record(10, { outcome: 'COMMIT', endOffset: 1 });
    ended.record(10, { outcome: 'ROLLBACK', endOffset: 2 });
    expect(ended.get(10)).toEqual({ outcome: 'COMMIT', endOffset: 1 });
    expect(ended.isKnownOpen(10)).toBe(false);
    ended.record(12, { outcome: 'ROLLBACK', endOffset: 3 });
    ended.record(11, { outcome: 'DISCARD', endOffset: 4 });
    expect(ended.size).toBe(2);
    expect(ended.get(10)).toBeUndefined();
    // 10 was forgotten: from now on only the store can say whether 10 (or less) ended.
    expect(ended.completeAbove).toBe(10);
    expect(ended.isKnownOpen(10)).toBe(false);
    expect(ended.isKnownOpen(13)).toBe(true);
    ended.markUnsure(20);
    expect(ended.isKnownOpen(13)).toBe(false);
    expect(ended.isKnownOpen(21)).toBe(true);
  });
});

describe('DurableFrontier', () => {
  it('confirms an advance once the CommitLog is durable past what justified it', () => {
    const frontier = new DurableFrontier(5, 2);
    frontier.advance(7, 1_000);
    frontier.advance(6, 900);
    frontier.advance(9, 2_000);
    expect(frontier.current).toBe(9);
    expect(frontier.confirm(999)).toBe(false);
    expect(frontier.confirmed).toBe(5);
    expect(frontier.confirm(1_000)).toBe(true);
    expect(frontier.confirmed).toBe(7);
    expect(frontier.confirm(5_000)).toBe(true);
    expect(frontier.confirmed).toBe(9);
  });

  it('merges old advances when too many wait, never confirming one early', () => {
    const frontier = new DurableFrontier(0, 2);
    frontier.advance(1, 100);
    frontier.advance(2, 300);
    frontier.advance(3, 200);
    expect(frontier.confirm(100)).toBe(false);
    expect(frontier.confirm(299)).toBe(false);
    expect(frontier.confirm(300)).toBe(true);
    expect(frontier.confirmed).toBe(3);
    frontier.reset(1);
    expect([frontier.current, frontier.confirmed]).toEqual([1, 1]);
  });
});
