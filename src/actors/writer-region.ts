/**
 * The CommitLog writer's side of its append region (src/storage/append-region.ts states the protocol).
 *
 * - Reports (`putInPlace`) may arrive out of log order, from several send threads: each waits here,
 *   keyed by its physical offset, until the log's end reaches it, and is then taken in order.
 * - Messages that need the log's end to themselves (the writer's own appends, role and lease changes,
 *   replication appends, truncation) close the region first. If reservations made before the close are
 *   still to be reported, such a message is held here, with its reply, and handled once they are all
 *   taken, in arrival order.
 * - The region reopens when it is closed and drained, nothing is held, and the store can take writes as
 *   a master outside controller mode (a lease would have to be checked by the send threads too). It
 *   opens only once batches have come (a grant was asked for, or a batch came with its bytes): a broker
 *   that only takes single messages never pays for closing and reopening it around each of them.
 *
 * - The writer's own RocketMQ batches (putEncodedBatch) go into the open region too, as a send thread's
 *   would, so that batches sent the ordinary way do not close it each time.
 *
 * Both waits are short: a send thread reports in the same turn it reserved. They are bounded all the
 * same (REGION_PARKED_MAX, REGION_HELD_MAX); past the bounds the writer fails, as on any broken invariant.
 * A report that never comes (its thread died between reserving and reporting) would hold up the log for
 * good: once the log's end has stood still behind reservations for the report timeout, the writer closes
 * the region and fills the gap up to the next reported batch with dead records (`expiredHole`,
 * CommitLog.fillRegionHole). A report that arrives after that, or for a generation the writer has left,
 * is answered as not stored: its bytes were overwritten.
 */
import { assert } from '../runtime/assert.ts';
import type { DeferredReply } from '../runtime/actor.ts';
import { AppendRegionControl, RegionAppender, type RegionGrant } from '../storage/append-region.ts';
import type { EncodedBatch, MessageStore, RegionBatch } from '../storage/message-store.ts';

/** A send thread's report of a batch it copied into the region (append-region.ts). */
export type RegionReport = { readonly type: 'putInPlace'; readonly epoch: number; readonly generation: number; readonly batch: RegionBatch };

/** Reports waiting for their turn at most: far above what send threads keep in flight. */
export const REGION_PARKED_MAX = 65_536;
/** Messages held for a drain at most (the writer's mailbox bounds them first). */
export const REGION_HELD_MAX = 1_000_000;
/** Grant asks waiting for the region to reopen at most; past it they are answered null at once. */
export const REGION_GRANT_WAITERS_MAX = 4_096;

type Parked = { readonly batch: RegionBatch; readonly reply: DeferredReply | undefined };
type Held<M> = { readonly message: M; readonly reply: DeferredReply | undefined };

export class WriterRegion<M> {
  readonly control = new AppendRegionControl();
  private grantValue: RegionGrant | null = null;
  private readonly parked = new Map<number, Parked>();
  private held: Held<M>[] = [];
  /** Whether batches have come, so that the region is worth opening (see the header). */
  private wantedValue = false;
  /** Whether the region was opened since reservations were last counted at a close (see quiesce). */
  private openedSinceClose = false;
  /** The end of the reservations of the last close, until the log's end has reached it. */
  private pendingEnd: number | null = null;
  /** Where the log's end stood while reservations were outstanding, and since when (see expiredHole). */
  private stall: { readonly end: number; readonly sinceMs: number } | null = null;
  /** The writer's own appender, for batches that came with their bytes. */
  private readonly own = new RegionAppender();
  /** Grant asks that came while the region was closed for a moment (see `awaitGrant`). */
  private grantWaiters: DeferredReply[] = [];

  readonly epoch: number;

  constructor(epoch: number) {
    this.epoch = epoch;
  }

  /** The grant of the open region, or null while it is closed. */
  grant(): RegionGrant | null {
    return this.control.read().closed ? null : this.grantValue;
  }

  /** Marks the region as worth opening: a send thread asked for it, or a batch came with its bytes. */
  want(): void {
    this.wantedValue = true;
  }

  /** Whether messages wait for the region to drain. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /**
   * Closes the region; true when every reservation made while it was open has been taken: the log's end
   * has reached their end since (it may move back after that, by truncation).
   */
  quiesce(store: MessageStore): boolean {
    if (!this.openedSinceClose && this.pendingEnd === null) return true;
    if (this.openedSinceClose) {
      // Closed here, or already by a send thread that found it full: either way reservations end here.
      const position = this.control.close();
      this.pendingEnd = this.grantValue!.fileStartOffset + position;
      this.openedSinceClose = false;
    }
    if (this.pendingEnd !== null && store.maxPhysicalOffset >= this.pendingEnd) this.pendingEnd = null;
    return this.pendingEnd === null;
  }

  /** Whether a report can still be taken: of this region and generation, and not below the log's end. */
  current(report: RegionReport, store: MessageStore): boolean {
    return report.epoch === this.epoch && report.generation === this.control.generation && report.batch.physicalOffset >= store.maxPhysicalOffset;
  }

  /**
   * The gap to fill when reservations have held up the log's end for `timeoutMs` (see the header): from
   * the log's end to the next reported batch, or to the end of the reservations. Closes the region first.
   */
  expiredHole(store: MessageStore, nowMs: number, timeoutMs: number): { readonly physicalOffset: number; readonly bytes: number } | null {
    const grant = this.grantValue;
    const end = store.maxPhysicalOffset;
    const word = this.control.read();
    const reservedEnd = grant === null ? end : this.pendingEnd ?? (this.openedSinceClose ? grant.fileStartOffset + word.position : end);
    if (reservedEnd <= end) {
      this.stall = null;
      return null;
    }
    if (this.stall === null || this.stall.end !== end) {
      this.stall = { end, sinceMs: nowMs };
      return null;
    }
    if (nowMs - this.stall.sinceMs < timeoutMs) return null;
    this.stall = null;
    this.quiesce(store);
    let holeEnd = this.pendingEnd ?? end;
    for (const position of this.parked.keys()) if (position > end && position < holeEnd) holeEnd = position;
    return holeEnd > end ? { physicalOffset: end, bytes: holeEnd - end } : null;
  }

  park(report: RegionReport, reply: DeferredReply | undefined): void {
    assert(report.epoch === this.epoch && report.generation === this.control.generation, 'report for another region');
    assert(!this.parked.has(report.batch.physicalOffset), () => `batch at ${report.batch.physicalOffset} reported twice`);
    assert(this.parked.size < REGION_PARKED_MAX, 'too many region reports waiting');
    this.parked.set(report.batch.physicalOffset, { batch: report.batch, reply });
  }

  /** The parked report at the log's end, removed; undefined when the next one has not come. */
  next(store: MessageStore): Parked | undefined {
    if (this.parked.size === 0) return undefined;
    const end = store.maxPhysicalOffset;
    const parked = this.parked.get(end);
    if (parked !== undefined) this.parked.delete(end);
    return parked;
  }

  /**
   * Keeps a grant ask that came while the region is closed but will reopen (draining before the writer's
   * own append, or before a new file): it is answered by `answerGrants`, so that its send thread does not
   * go the ordinary way for GRANT_RETRY_MS (region-sender.ts) after a null answer. False when too many wait.
   */
  awaitGrant(reply: DeferredReply): boolean {
    if (this.grantWaiters.length >= REGION_GRANT_WAITERS_MAX) return false;
    this.grantWaiters.push(reply);
    return true;
  }

  /** Answers the waiting grant asks: with the grant once the region is open, with null when it cannot reopen. */
  answerGrants(canReopen: boolean): void {
    if (this.grantWaiters.length === 0) return;
    const grant = this.grant();
    if (grant === null && canReopen) return;
    const waiters = this.grantWaiters;
    this.grantWaiters = [];
    for (const reply of waiters) reply.resolve(grant);
  }

  hold(message: M, reply: DeferredReply | undefined): void {
    assert(this.held.length < REGION_HELD_MAX, 'too many messages held for the region to drain');
    this.held.push({ message, reply });
  }

  /** Everything held, in arrival order; the region holds nothing after. */
  takeHeld(): Held<M>[] {
    const held = this.held;
    this.held = [];
    return held;
  }

  /**
   * Opens the region over the store's active file when it is closed and drained and nothing is held
   * (the caller checked `writable`); a new file gets a new generation.
   */
  reopen(store: MessageStore): void {
    if (!this.wantedValue || !this.control.read().closed || this.holding || !this.quiesce(store)) return;
    const file = store.regionFile();
    if (file === null) return;
    // A new file, or the same one cut back below what was reserved in it (truncation): a new generation.
    const newFile = this.grantValue?.fileStartOffset !== file.fileStartOffset || file.position < this.control.read().position;
    const generation = this.control.open(file.position, newFile);
    this.openedSinceClose = true;
    if (newFile) {
      this.grantValue = {
        control: this.control.control,
        epoch: this.epoch,
        generation,
        cache: file.cache,
        cacheOffset: file.cacheOffset,
        fileStartOffset: file.fileStartOffset,
        limit: file.limit,
      };
      this.own.grant(this.grantValue);
    }
  }

  /**
   * Copies a batch that came with its bytes into the open region, as a send thread would, and returns
   * its report (to park like theirs); null when the region is closed or the batch does not fit (then
   * the region is closed, and the batch goes the ordinary way).
   */
  placeOwn(batch: EncodedBatch, nowMs: number): RegionReport | null {
    // Nothing is held while the region is open (holding closes it; it reopens only once nothing is).
    const reservation = this.own.reserve(batch.records.length);
    if (typeof reservation === 'string') return null;
    this.own.fill(reservation, batch.records, batch.count, nowMs);
    return {
      type: 'putInPlace',
      epoch: this.epoch,
      generation: reservation.generation,
      batch: { topic: batch.topic, queueId: batch.queueId, count: batch.count, physicalOffset: reservation.physicalOffset, bytes: batch.records.length, answerMsgIds: true },
    };
  }

  /** Closes the region for good (the writer stops) and hands back what waits in it; later reports are refused by epoch. */
  shut(): { readonly parked: Parked[]; readonly held: Held<M>[] } {
    this.control.close();
    this.answerGrants(false);
    const parked = [...this.parked.values()];
    this.parked.clear();
    return { parked, held: this.takeHeld() };
  }
}
