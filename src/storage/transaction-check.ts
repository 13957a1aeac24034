/**
 * The transaction check's decisions and bounded memory (RocketMQ's TransactionalMessageServiceImpl.check),
 * as pure code with time passed in: when a half message is checked, when it is discarded, which
 * transactions are known to have ended, and how far the half queue may be forgotten.
 *
 * Timing of checks (a check round runs every transactionCheckInterval, at `roundStartMs`):
 * - a half record stored at or after the round's start waits for the next round (RocketMQ's "fresh
 *   stored" rule: a renewed copy is checked one interval after the check that made it);
 * - a half record born at most its immunity ago waits: CHECK_IMMUNITY_TIME_IN_SECONDS when it parses,
 *   else transactionTimeOut (the service's getImmunityTime, which may be shorter than the timeout); a
 *   born time in the future does not wait (RocketMQ checks it at once);
 * - then a record already checked transactionCheckMax times is discarded, any other is checked (renewed
 *   with one more check and asked about). RocketMQ tests the count before the timing, so the copy made by
 *   the last check may be discarded in the same round before the producer could answer; here the last
 *   check gets its interval too.
 *
 * Memory. TrackedHalves holds the half records read and not yet resolved, at most `halvesMax`, one per
 * transaction (a newer copy replaces an older one). EndedTransactions remembers the outcomes of at most
 * `entriesMax` transactions, oldest forgotten first; for identities above `completeAbove` it is exact
 * (every end of such a transaction was recorded here), below it a miss means "look in the store".
 * DurableFrontier moves the half queue offset below which nothing needs attention any more, and says
 * how far it may be persisted: only as far as the writes that justify it are durable.
 */
import { assert } from '../runtime/assert.ts';
import { parseInt64, type HalfMessage, type TransactionOutcome } from './transaction-message.ts';

/** The broker settings the decisions read (BrokerConfig names, units added). */
export type TransactionCheckSettings = {
  /** transactionTimeOut: a half is first checked this long after it was born, unless it says otherwise. */
  readonly transactionTimeOutMs: number;
  /** transactionCheckMax: checks before the message is discarded. */
  readonly transactionCheckMax: number;
};

/** What a round does with one half record. */
export type CheckDecision = 'wait' | 'check' | 'discard';

/**
 * TransactionalMessageServiceImpl.getImmunityTime: how long after its birth a half is left alone:
 * CHECK_IMMUNITY_TIME_IN_SECONDS * 1000 when it parses as a non-negative long, else transactionTimeOut.
 */
export function firstCheckImmunityMs(checkImmunityText: string | undefined, transactionTimeOutMs: number): number {
  const seconds = parseInt64(checkImmunityText);
  return seconds === undefined || seconds < 0 ? transactionTimeOutMs : seconds * 1000;
}

/** What the round starting at `roundStartMs` does with `half` (see the header). */
export function checkDecision(half: HalfMessage, roundStartMs: number, settings: TransactionCheckSettings): CheckDecision {
  if (half.storeTimestampMs >= roundStartMs) return 'wait';
  const sinceBornMs = roundStartMs - half.bornTimestampMs;
  const immunityMs = firstCheckImmunityMs(half.checkImmunityText, settings.transactionTimeOutMs);
  if (sinceBornMs >= 0 && sinceBornMs <= immunityMs) return 'wait';
  return half.checkTimes >= settings.transactionCheckMax ? 'discard' : 'check';
}

// ---------------------------------------------------------------------------------------------------

/** What `track` did with a half record. */
export type TrackOutcome = 'added' | 'replaced' | 'full';

/** The unresolved half records read so far, one per transaction, in queue-offset order; bounded. */
export class TrackedHalves {
  private readonly halvesMax: number;
  /** By queue offset; insertion order is queue-offset order (records arrive as the queue is read). */
  private readonly byOffset = new Map<number, HalfMessage>();
  private readonly offsetById = new Map<number, number>();
  private lastOffset = -1;

  constructor(halvesMax: number) {
    assert(Number.isSafeInteger(halvesMax) && halvesMax >= 1, 'halvesMax is a positive integer');
    this.halvesMax = halvesMax;
  }

  /** Number of records held. */
  get size(): number {
    return this.byOffset.size;
  }

  /** Whether no more transactions can be taken (a newer copy of a held one still can). */
  get full(): boolean {
    return this.byOffset.size >= this.halvesMax;
  }

  /** Takes a record read from the half queue (queue offsets only grow); a newer copy replaces an older. */
  track(half: HalfMessage): TrackOutcome {
    assert(half.queueOffset > this.lastOffset, () => `half records arrive in queue order: ${half.queueOffset} after ${this.lastOffset}`);
    const held = this.offsetById.get(half.transactionId);
    if (held === undefined && this.full) return 'full';
    this.lastOffset = half.queueOffset;
    if (held !== undefined) this.byOffset.delete(held);
    this.byOffset.set(half.queueOffset, half);
    this.offsetById.set(half.transactionId, half.queueOffset);
    assert(this.byOffset.size === this.offsetById.size, 'one record per transaction');
    return held === undefined ? 'added' : 'replaced';
  }

  /** The record held for a transaction. */
  get(transactionId: number): HalfMessage | undefined {
    const offset = this.offsetById.get(transactionId);
    return offset === undefined ? undefined : this.byOffset.get(offset);
  }

  /** Forgets a transaction; true when it was held. */
  remove(transactionId: number): boolean {
    const offset = this.offsetById.get(transactionId);
    if (offset === undefined) return false;
    this.offsetById.delete(transactionId);
    this.byOffset.delete(offset);
    return true;
  }

  /** The lowest queue offset held, if any. */
  lowestQueueOffset(): number | undefined {
    for (const offset of this.byOffset.keys()) return offset;
    return undefined;
  }

  /** The records, lowest queue offset first. */
  values(): IterableIterator<HalfMessage> {
    return this.byOffset.values();
  }

  /** Forgets everything (the queue is read again from an earlier offset). */
  clear(): void {
    this.byOffset.clear();
    this.offsetById.clear();
    this.lastOffset = -1;
  }
}

// ---------------------------------------------------------------------------------------------------

/** A known end: the outcome, and the end of the record that says so (its durability matters). */
export type KnownEnd = { readonly outcome: TransactionOutcome; readonly endOffset: number };

/** Outcomes of recent transactions; exact above `completeAbove` (see the header); bounded. */
export class EndedTransactions {
  private readonly entriesMax: number;
  private readonly ends = new Map<number, KnownEnd>();
  /** Identities at or below it were ended by an earlier incarnation, or before the start was known. */
  private baseline = Number.MAX_SAFE_INTEGER;
  /** The largest identity forgotten, or whose end's fate is unknown (an ask that got no answer). */
  private unsureMax = -1;

  constructor(entriesMax: number) {
    assert(Number.isSafeInteger(entriesMax) && entriesMax >= 1, 'entriesMax is a positive integer');
    this.entriesMax = entriesMax;
  }

  /** Number of outcomes held. */
  get size(): number {
    return this.ends.size;
  }

  /** Identities above this are exact: not held means not ended. */
  get completeAbove(): number {
    return Math.max(this.baseline, this.unsureMax);
  }

  /** Every transaction whose first half record is at or past `firstNewId` starts after this incarnation did. */
  startFrom(firstNewId: number): void {
    assert(Number.isSafeInteger(firstNewId) && firstNewId >= 0, () => `bad first identity ${firstNewId}`);
    this.baseline = firstNewId - 1;
  }

  /** The outcome held for a transaction. */
  get(transactionId: number): KnownEnd | undefined {
    return this.ends.get(transactionId);
  }

  /** Whether the transaction is known not to have ended (without asking the store). */
  isKnownOpen(transactionId: number): boolean {
    return transactionId > this.completeAbove && !this.ends.has(transactionId);
  }

  /** Records an end; the first outcome recorded for a transaction stays. */
  record(transactionId: number, end: KnownEnd): void {
    if (this.ends.has(transactionId)) return;
    if (this.ends.size >= this.entriesMax) {
      for (const oldest of this.ends.keys()) {
        this.ends.delete(oldest);
        this.unsureMax = Math.max(this.unsureMax, oldest);
        break;
      }
    }
    this.ends.set(transactionId, end);
    assert(this.ends.size <= this.entriesMax, 'the outcome cache stays within its bound');
  }

  /** An end of this transaction may or may not have been written: ask the store from now on. */
  markUnsure(transactionId: number): void {
    this.unsureMax = Math.max(this.unsureMax, transactionId);
  }
}

// ---------------------------------------------------------------------------------------------------

type Unconfirmed = { readonly offset: number; readonly endOffset: number };

/**
 * The half queue offset below which every record is settled (ended, renewed further on, or discarded),
 * and the part of it that may be persisted: an advance is confirmed once the CommitLog is durable past
 * `endOffset`, the end of every write and read that justified it (the schedule service's rule).
 */
export class DurableFrontier {
  private readonly unconfirmedMax: number;
  private readonly unconfirmed: Unconfirmed[] = [];
  private currentOffset: number;
  private confirmedOffset: number;

  constructor(startOffset: number, unconfirmedMax: number) {
    assert(Number.isSafeInteger(startOffset) && startOffset >= 0, () => `bad start offset ${startOffset}`);
    assert(Number.isSafeInteger(unconfirmedMax) && unconfirmedMax >= 2, 'unconfirmedMax is at least 2');
    this.currentOffset = startOffset;
    this.confirmedOffset = startOffset;
    this.unconfirmedMax = unconfirmedMax;
  }

  /** How far the queue is settled, durable or not. */
  get current(): number {
    return this.currentOffset;
  }

  /** How far it may be persisted. */
  get confirmed(): number {
    return this.confirmedOffset;
  }

  /** Moves the settled offset forward, once the CommitLog is durable past `endOffset`. */
  advance(offset: number, endOffset: number): void {
    if (offset <= this.currentOffset) return;
    this.currentOffset = offset;
    this.unconfirmed.push({ offset, endOffset });
    if (this.unconfirmed.length > this.unconfirmedMax) {
      // Merging the two oldest waits for the later one's bytes: a later confirmation, never an early one.
      const [first, second] = this.unconfirmed.splice(0, 2) as [Unconfirmed, Unconfirmed];
      this.unconfirmed.unshift({ offset: second.offset, endOffset: Math.max(first.endOffset, second.endOffset) });
    }
  }

  /** Confirms what `durableOffset` covers; true when the confirmed offset moved. */
  confirm(durableOffset: number): boolean {
    const before = this.confirmedOffset;
    while (this.unconfirmed.length > 0 && this.unconfirmed[0]!.endOffset <= durableOffset) {
      this.confirmedOffset = this.unconfirmed.shift()!.offset;
    }
    return this.confirmedOffset !== before;
  }

  /** Starts over at `offset` (the store's queue no longer holds the old one): nothing to confirm. */
  reset(offset: number): void {
    assert(Number.isSafeInteger(offset) && offset >= 0, () => `bad offset ${offset}`);
    this.unconfirmed.length = 0;
    this.currentOffset = offset;
    this.confirmedOffset = offset;
  }
}
