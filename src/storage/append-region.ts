/**
 * In-place appends: send threads copy an encoded RocketMQ batch straight into the active CommitLog
 * file's page cache, so the CommitLog writer neither receives the bytes nor copies them. The writer
 * still decides everything that makes the bytes part of the log: it takes each batch in log order,
 * checks its records, gives them queue offsets, dispatches them and writes them to the file. Only
 * `wrotePosition` and what lies below it is log; bytes reserved past it are not, and never reach the
 * file (see mapped-file.ts on direct writes).
 *
 * The region is one 64-bit word in a SharedArrayBuffer, changed only with Atomics:
 *
 * | bits   | field      | meaning                                                              |
 * |--------|------------|----------------------------------------------------------------------|
 * | 63..32 | generation | which file's page cache the region is (a RegionGrant names it)       |
 * | 31     | closed     | no reservations: the writer appends itself, rolls or refuses puts    |
 * | 30..0  | position   | bytes of that file reserved so far, from the file's start            |
 *
 * A sender reserves n bytes by compare-and-swap from (g, open, p) to (g, open, p + n), and only for the
 * generation whose grant it holds and when p + n leaves room for a blank marker in the file: a
 * reservation is therefore always in a buffer the sender has. When the batch does not fit, the sender
 * closes the region at p (so the writer rolls to the next file) and sends the batch the ordinary way.
 * After filling its bytes the sender reports them to the writer (`putInPlace`), which answers as it
 * answers any batch.
 *
 * The writer closes the region before anything it does itself at the log's end (its own appends, a
 * roll, a role change), waits until every reservation below the closing position has been reported and
 * taken (the region has drained), and then reopens it at its new end, under a new generation when the
 * file changed. A reservation is the moment a put is appended: one made before a close is taken after
 * it, as a put already in the writer's mailbox would be.
 */
import { assert } from '../runtime/assert.ts';
import { copyBytes } from './shared-copy.ts';
import { BLANK_MARKER_BYTES, patchWriterFields, readInt32 } from './message-record.ts';

/** The region's control word lives at index 0 of a BigInt64Array over this many bytes. */
const CONTROL_BYTES = BigInt64Array.BYTES_PER_ELEMENT;
const CLOSED_BIT = 0x8000_0000;
/** Largest position the word holds; files larger than this get no region. */
export const REGION_POSITION_MAX = 0x7fff_ffff;
/** Generations wrap below 2^31, so that the word stays a positive BigInt. */
const GENERATION_MAX = 0x7fff_ffff;

/** One file's page cache as a sender needs it: where reservations of `generation` go. */
export type RegionGrant = {
  readonly control: SharedArrayBuffer;
  /** The writer incarnation that owns the region (a restarted writer has a new one). */
  readonly epoch: number;
  readonly generation: number;
  /** The page cache (shared, never copied between threads) and where the file's byte 0 sits in it. */
  readonly cache: SharedArrayBuffer;
  readonly cacheOffset: number;
  /** Physical offset of the file's first byte. */
  readonly fileStartOffset: number;
  /** Reservations end at or before this position (the file size less a blank marker). */
  readonly limit: number;
};

/** A reservation: `bytes` at `position` of the granted file. */
export type Reservation = { readonly generation: number; readonly position: number; readonly physicalOffset: number };

type Word = { readonly generation: number; readonly closed: boolean; readonly position: number };

function pack(word: Word): bigint {
  return (BigInt(word.generation) << 32n) | BigInt((word.closed ? CLOSED_BIT : 0) + word.position);
}

function unpack(value: bigint): Word {
  const low = Number(value & 0xffff_ffffn);
  return { generation: Number(value >> 32n), closed: low >= CLOSED_BIT, position: low % CLOSED_BIT };
}

/** The writer's side of a region: opens, closes and reads the word. Only the CommitLog writer holds one. */
export class AppendRegionControl {
  readonly control = new SharedArrayBuffer(CONTROL_BYTES);
  private readonly word = new BigInt64Array(this.control);
  private generationValue = 0;

  constructor() {
    Atomics.store(this.word, 0, pack({ generation: 0, closed: true, position: 0 }));
  }

  /** The generation last opened (0 before the first). */
  get generation(): number {
    return this.generationValue;
  }

  /** The word as it is now. */
  read(): Word {
    return unpack(Atomics.load(this.word, 0));
  }

  /**
   * Opens the region at `position`, under the current generation or (`newFile`) the next one. Only a
   * closed region opens, and never below what was reserved in its generation.
   */
  open(position: number, newFile: boolean): number {
    const now = this.read();
    assert(now.closed, 'opening a region that is open');
    assert(Number.isInteger(position) && position >= 0 && position <= REGION_POSITION_MAX, () => `bad region position ${position}`);
    if (newFile || this.generationValue === 0) this.generationValue = this.generationValue >= GENERATION_MAX ? 1 : this.generationValue + 1;
    else assert(position >= now.position, () => `region reopens at ${position}, below what was reserved (${now.position})`);
    Atomics.store(this.word, 0, pack({ generation: this.generationValue, closed: false, position }));
    return this.generationValue;
  }

  /** Closes the region; returns the end of what was reserved (reservations made before it still come). */
  close(): number {
    // Bounded: each failed exchange means a sender reserved in between, and reservations end at the limit.
    for (;;) {
      const value = Atomics.load(this.word, 0);
      const now = unpack(value);
      if (now.closed) return now.position;
      if (Atomics.compareExchange(this.word, 0, value, pack({ ...now, closed: true })) === value) return now.position;
    }
  }
}

/**
 * A sender's side of a region: the grant it holds and its reservations. One per sending actor; the grant
 * is replaced by newer ones from the writer's answers.
 */
export class RegionAppender {
  private grantValue: RegionGrant | null = null;
  private word: BigInt64Array | null = null;
  private cache: Uint8Array | null = null;

  /** The generation this appender can reserve in (0: none yet). */
  get generation(): number {
    return this.grantValue?.generation ?? 0;
  }

  /** The writer incarnation of the grant held (0: none). */
  get epoch(): number {
    return this.grantValue?.epoch ?? 0;
  }

  /** Takes a grant from the writer, replacing the one held. */
  grant(grant: RegionGrant): void {
    assert(grant.cacheOffset >= 0 && grant.limit >= 0 && grant.cacheOffset + grant.limit + BLANK_MARKER_BYTES <= grant.cache.byteLength, 'grant outside its cache');
    if (this.grantValue !== null && this.grantValue.epoch === grant.epoch && this.grantValue.generation === grant.generation) return;
    this.grantValue = grant;
    this.word = new BigInt64Array(grant.control);
    this.cache = new Uint8Array(grant.cache, grant.cacheOffset, grant.limit + BLANK_MARKER_BYTES);
  }

  /**
   * Reserves `bytes` in the granted file, or says why not: 'none' (no grant yet), 'stale' (the region
   * moved to another generation: ask the writer for its grant), 'closed', or 'full' (it did not fit, and
   * the region is now closed so that the writer rolls). Only a reservation may be filled.
   */
  reserve(bytes: number): Reservation | 'none' | 'stale' | 'closed' | 'full' {
    const grant = this.grantValue;
    const word = this.word;
    if (grant === null || word === null) return 'none';
    assert(Number.isInteger(bytes) && bytes > 0, () => `bad reservation of ${bytes} bytes`);
    // Bounded: each failed exchange means another reservation succeeded, and they end at the limit.
    for (;;) {
      const value = Atomics.load(word, 0);
      const now = unpack(value);
      if (now.generation !== grant.generation) return 'stale';
      if (now.closed) return 'closed';
      if (now.position + bytes > grant.limit) {
        Atomics.compareExchange(word, 0, value, pack({ ...now, closed: true }));
        return 'full';
      }
      if (Atomics.compareExchange(word, 0, value, pack({ ...now, position: now.position + bytes })) === value) {
        return { generation: now.generation, position: now.position, physicalOffset: grant.fileStartOffset + now.position };
      }
    }
  }

  /**
   * Fills a reservation with a batch encodeBatch built (`count` records back to back, writer fields
   * zero): gives each record its physical offset and the store time in `records` itself, then copies
   * them into the page cache. Queue offsets stay zero: the writer gives them when it takes the batch.
   */
  fill(reservation: Reservation, records: Uint8Array, count: number, storeTimestampMs: number): void {
    const cache = this.cache;
    assert(cache !== null && reservation.generation === this.generation, 'filling a reservation of another generation');
    let at = 0;
    // Bounded by count; each record's size was checked by encodeRecord on this thread.
    for (let index = 0; index < count; index++) {
      const size = readInt32(records, at);
      assert(size > 0 && at + size <= records.length, () => `record ${index} of the batch has size ${size}`);
      patchWriterFields(records, at, 0, reservation.physicalOffset + at, storeTimestampMs);
      at += size;
    }
    assert(at === records.length, 'the records do not fill the batch');
    copyBytes(cache, records, reservation.position);
  }
}
