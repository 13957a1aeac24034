/**
 * One index file: a hash table on disk from message keys to CommitLog offsets, in RocketMQ's format
 * (store/index/IndexFile.java and IndexHeader.java), so that "find messages by key" needs no scan.
 * All integers are big-endian, as Java's ByteBuffer writes them.
 *
 * Header (40 bytes at offset 0):
 *
 * | offset | size | field          | meaning                                                            |
 * |--------|------|----------------|--------------------------------------------------------------------|
 * | 0      | 8    | beginTimestamp | store timestamp (ms) of the first entry; at creation, the previous |
 * |        |      |                | file's endTimestamp (0 for the first file)                         |
 * | 8      | 8    | endTimestamp   | store timestamp (ms) of the last entry                             |
 * | 16     | 8    | beginPhyOffset | CommitLog offset of the first entry's message (or inherited)       |
 * | 24     | 8    | endPhyOffset   | CommitLog offset of the last entry's message (or inherited)        |
 * | 32     | 4    | hashSlotCount  | number of keys put (RocketMQ counts every put here, not slots)     |
 * | 36     | 4    | indexCount     | number of the next entry; starts at 1 because 0 means "no entry"   |
 *
 * Hash slots (hashSlotNum x 4 bytes at offset 40): slot s holds the number of the newest entry whose
 * keyHash % hashSlotNum == s, or 0 when there is none.
 *
 * Entries (indexNum x 20 bytes at offset 40 + hashSlotNum*4; entry n at + n*20; entry 0 is never used):
 *
 * | offset | size | field     | meaning                                                                  |
 * |--------|------|-----------|--------------------------------------------------------------------------|
 * | 0      | 4    | keyHash   | abs(Java hashCode of "topic#key"), 0 when hashCode is Integer.MIN_VALUE |
 * | 4      | 8    | phyOffset | CommitLog offset of the message                                          |
 * | 12     | 4    | timeDiff  | whole seconds from beginTimestamp to the store timestamp, >= 0           |
 * | 16     | 4    | prevIndex | the previous entry in the same slot's chain, 0 ends the chain            |
 *
 * File size = 40 + hashSlotNum*4 + indexNum*20 (RocketMQ's defaults, 5,000,000 slots and 20,000,000
 * entries, make 420,000,040 bytes); the file holds indexNum - 1 keys. Names are the creation time as
 * yyyyMMddHHmmssSSS (see index-service.ts).
 *
 * Invariants:
 * - 1 <= indexCount <= indexNum; entries at or after indexCount are zero, except on disk in the newest
 *   file after restore() (below): there they may still hold entries a crash lost, which nothing reads
 *   (every walk and every load stops below indexCount) and which the next puts overwrite page by page.
 * - an entry never changes once written (only truncate() zeroes a suffix); as keys are added only the
 *   slot heads and the header change. So entries 1..n alone determine the whole file after n puts:
 *   entry i's prevIndex is the head its slot had after entries 1..i-1.
 * - every slot value and every prevIndex is 0 or a smaller entry number than the entry (or count) that
 *   refers to it, so every chain strictly decreases and ends.
 * - phyOffset never decreases with the entry number (keys are put in CommitLog order), which is why a
 *   truncation only has to undo a suffix of entries.
 * - a lookup compares only keyHash, so different keys with the same hash answer each other; callers
 *   check the real key in the message, as RocketMQ's clients do.
 *
 * Recovery rule: a file is trusted as its header says once it has been flushed whole (the service
 * flushes each file before it starts the next); the newest file may be torn after a crash. When the
 * store's checkpoint recorded that file's header as of its last durable entry n, restore() keeps entries
 * 1..n, checks that they replay to exactly that header (each entry's prevIndex is its slot's head so
 * far, offsets never decrease, the first and n-th offsets are the header's), rebuilds every slot head
 * and the header from them and writes both through; otherwise the service deletes the file and rebuilds
 * it from the CommitLog. truncate() undoes the entries whose message lies past the recovered CommitLog
 * end, restoring each slot to the entry's prevIndex, newest first.
 *
 * The page cache of a file being written is a SharedArrayBuffer; dirty 4 KiB pages are tracked in a
 * bitmap and flush() writes each run of dirty pages and fdatasyncs. A sealed file drops its cache and is
 * read with positioned reads.
 *
 * The store's periodic flush (every flushIntervalConsumeQueue) calls flushEntries(), which writes the
 * header and the entries but leaves the slot pages dirty: keys land in random slots, so at ~10,000
 * keys/s nearly every slot page changes each second, and writing them (~4 MB in ~900 runs) held the
 * CommitLog writer for 4-8 ms each time. Nothing reads the newest file's slots from disk after a crash
 * (restore() rebuilds them from the entries, or the file is deleted), so they are written by flush()
 * alone: when the file is sealed, at a clean stop, and after restore() and truncate().
 */
import path from 'node:path';
import { assert } from '../runtime/assert.ts';
import { freshFrom, touchBefore, touchForWrite, type FreshCache, type TouchAhead } from './shared-copy.ts';
import { fsyncDirectory, writeFully } from './storage-fs.ts';
import type { StorageFs } from './storage-fs.ts';
import { javaStringHashCode } from './tag-hash.ts';

/** Bytes of the index file header (IndexHeader.INDEX_HEADER_SIZE). */
export const INDEX_HEADER_SIZE_BYTES = 40;
/** Bytes of one hash slot. */
export const INDEX_SLOT_SIZE_BYTES = 4;
/** Bytes of one index entry. */
export const INDEX_ENTRY_SIZE_BYTES = 20;
/** The entry number meaning "none" (RocketMQ's invalidIndex). */
export const INDEX_INVALID = 0;
/** RocketMQ's default number of hash slots per file (maxHashSlotNum). */
export const INDEX_HASH_SLOT_NUM_DEFAULT = 5_000_000;
/** RocketMQ's default number of entries per file (maxIndexNum). */
export const INDEX_NUM_DEFAULT = 20_000_000;

const HEADER_BEGIN_TIMESTAMP = 0;
const HEADER_END_TIMESTAMP = 8;
const HEADER_BEGIN_PHY_OFFSET = 16;
const HEADER_END_PHY_OFFSET = 24;
const HEADER_HASH_SLOT_COUNT = 32;
const HEADER_INDEX_COUNT = 36;
const PAGE_SIZE_BYTES = 4096;
const INT32_MAX = 0x7fff_ffff;
const TWO_POW_32 = 0x1_0000_0000;
const READ_ATTEMPTS_MAX = 1024;

/** Stable codes of index file errors. */
export const IndexFileErrorCode = {
  /** The file's length does not match the configured slot and entry counts. */
  sizeMismatch: 'INDEX_FILE_SIZE_MISMATCH',
  /** The header or a chain contradicts the invariants; delete the file and rebuild it. */
  corrupt: 'INDEX_FILE_CORRUPT',
} as const;

/** One of IndexFileErrorCode's values. */
export type IndexFileErrorCode = (typeof IndexFileErrorCode)[keyof typeof IndexFileErrorCode];

/** An expected failure of an index file, with a stable code. */
export class IndexFileError extends Error {
  /** Stable machine-readable code. */
  readonly code: IndexFileErrorCode;
  override readonly name = 'IndexFileError';

  constructor(code: IndexFileErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** RocketMQ's indexKeyHashMethod: abs(String.hashCode), with Integer.MIN_VALUE (whose abs is negative) as 0. */
export function indexKeyHash(key: string): number {
  const hash = javaStringHashCode(key);
  return hash === -0x8000_0000 ? 0 : Math.abs(hash);
}

/** Size in bytes of an index file with the given slot and entry counts. */
export function indexFileSizeBytes(hashSlotNum: number, indexNum: number): number {
  return INDEX_HEADER_SIZE_BYTES + hashSlotNum * INDEX_SLOT_SIZE_BYTES + indexNum * INDEX_ENTRY_SIZE_BYTES;
}

/** Shape of an index file and where it lives. */
export type IndexFileOptions = {
  readonly storageFs: StorageFs;
  readonly path: string;
  readonly hashSlotNum: number;
  readonly indexNum: number;
  /** Another thread that touches fresh entry pages ahead of the keys (touchBefore in shared-copy.ts); none by default. */
  readonly touchAhead?: TouchAhead;
};

/** The header fields, as numbers. */
export type IndexHeader = {
  beginTimestampMs: number;
  endTimestampMs: number;
  beginPhyOffset: number;
  endPhyOffset: number;
  hashSlotCount: number;
  indexCount: number;
};

type Reader = (positionBytes: number, lengthBytes: number) => DataView;

function readInt64(view: DataView, at: number): number {
  const value = view.getInt32(at) * TWO_POW_32 + view.getUint32(at + 4);
  assert(Number.isSafeInteger(value), 'int64 field fits a safe integer');
  return value;
}

function writeInt64(view: DataView, at: number, value: number): void {
  assert(Number.isSafeInteger(value), 'int64 field is a safe integer');
  const high = Math.floor(value / TWO_POW_32);
  view.setInt32(at, high);
  view.setUint32(at + 4, value - high * TWO_POW_32);
}

/** One index file: header, hash slots and chained entries, with a page cache while it is written. */
export class IndexFile {
  /** Path of the file. */
  readonly path: string;
  /** Number of hash slots. */
  readonly hashSlotNum: number;
  /** Number of entry places (one, number 0, is never used). */
  readonly indexNum: number;
  /** Total size of the file in bytes. */
  readonly fileSizeBytes: number;

  private readonly storageFs: StorageFs;
  private readonly header: IndexHeader;
  private cache: Uint8Array | null = null;
  private dirtyPages: Uint8Array | null = null;
  /** A view of `cache` (cacheView), and whether `header` has changed since its bytes were written. */
  private view: DataView | null = null;
  private headerStale = false;
  private onDisk: boolean;
  /** How far the cache's entries have been touched (touchBefore; see `touchSlots`). */
  private entries: FreshCache = freshFrom(0);
  private readonly touchAhead: TouchAhead | undefined;

  private constructor(options: IndexFileOptions, header: IndexHeader, onDisk: boolean) {
    assert(Number.isSafeInteger(options.hashSlotNum) && options.hashSlotNum > 0, 'hashSlotNum is positive');
    assert(Number.isSafeInteger(options.indexNum) && options.indexNum > 1, 'indexNum leaves room for a key');
    this.fileSizeBytes = indexFileSizeBytes(options.hashSlotNum, options.indexNum);
    assert(this.fileSizeBytes <= 2 ** 32, 'an index file stays addressable by int32 slot values');
    this.storageFs = options.storageFs;
    this.path = options.path;
    this.hashSlotNum = options.hashSlotNum;
    this.indexNum = options.indexNum;
    this.header = header;
    this.onDisk = onDisk;
    this.touchAhead = options.touchAhead;
  }

  /**
   * A new, empty file in memory (it reaches disk on its first flush). Like RocketMQ, it inherits the
   * previous file's end offset and timestamp as its begin and end until its first key.
   */
  static create(options: IndexFileOptions, inheritedEndPhyOffset = 0, inheritedEndTimestampMs = 0): IndexFile {
    assert(Number.isSafeInteger(inheritedEndPhyOffset) && inheritedEndPhyOffset >= 0, 'inherited offset is non-negative');
    assert(Number.isSafeInteger(inheritedEndTimestampMs) && inheritedEndTimestampMs >= 0, 'inherited time is non-negative');
    const header: IndexHeader = {
      beginTimestampMs: inheritedEndTimestampMs,
      endTimestampMs: inheritedEndTimestampMs,
      beginPhyOffset: inheritedEndPhyOffset,
      endPhyOffset: inheritedEndPhyOffset,
      hashSlotCount: 0,
      indexCount: 1,
    };
    const file = new IndexFile(options, header, false);
    file.cache = new Uint8Array(new SharedArrayBuffer(file.fileSizeBytes));
    file.touchSlots(file.cache);
    file.entries = freshFrom(file.entryPosition(0));
    file.dirtyPages = new Uint8Array(Math.ceil(file.fileSizeBytes / PAGE_SIZE_BYTES));
    file.writeHeader();
    return file;
  }

  /** Opens a file on disk, reading only its header; the rest is read on demand. */
  static open(options: IndexFileOptions): IndexFile {
    const expected = indexFileSizeBytes(options.hashSlotNum, options.indexNum);
    const fd = options.storageFs.openSync(options.path, 'r');
    let header: IndexHeader;
    try {
      const sizeBytes = options.storageFs.fstatSync(fd).size;
      if (sizeBytes !== expected) {
        throw new IndexFileError(IndexFileErrorCode.sizeMismatch, `index file ${options.path} is ${sizeBytes} bytes, expected ${expected}`);
      }
      const bytes = new Uint8Array(INDEX_HEADER_SIZE_BYTES);
      readFully(options.storageFs, fd, bytes, 0);
      header = decodeHeader(new DataView(bytes.buffer));
    } finally {
      options.storageFs.closeSync(fd);
    }
    // RocketMQ's IndexHeader.load treats a non-positive count as 1 (a file never written).
    if (header.indexCount <= 0) header.indexCount = 1;
    if (header.indexCount > options.indexNum || header.hashSlotCount < 0 || header.beginPhyOffset > header.endPhyOffset) {
      throw new IndexFileError(IndexFileErrorCode.corrupt, `index file ${options.path} has an impossible header ${JSON.stringify(header)}`);
    }
    return new IndexFile(options, header, true);
  }

  /** A copy of the header fields. */
  get headerFields(): Readonly<IndexHeader> {
    return { ...this.header };
  }

  /** Store timestamp (ms) of the first entry. */
  get beginTimestampMs(): number {
    return this.header.beginTimestampMs;
  }

  /** Store timestamp (ms) of the last entry. */
  get endTimestampMs(): number {
    return this.header.endTimestampMs;
  }

  /** CommitLog offset of the first entry's message. */
  get beginPhyOffset(): number {
    return this.header.beginPhyOffset;
  }

  /** CommitLog offset of the last entry's message. */
  get endPhyOffset(): number {
    return this.header.endPhyOffset;
  }

  /** Number of keys the file holds. */
  get keyCount(): number {
    return this.header.indexCount - 1;
  }

  /** Number of keys the file can still take. */
  get freeKeyCount(): number {
    return this.indexNum - this.header.indexCount;
  }

  /** Whether the file can take no more keys (IndexFile.isWriteFull). */
  get isWriteFull(): boolean {
    return this.header.indexCount >= this.indexNum;
  }

  /** The page cache as shared memory, or undefined when the file is read from disk. */
  get sharedBuffer(): SharedArrayBuffer | undefined {
    if (this.cache === null) return undefined;
    assert(this.cache.buffer instanceof SharedArrayBuffer, 'the page cache is shared memory');
    return this.cache.buffer;
  }

  /** Adds `key` for the message at `physicalOffset`; false when the file is full. */
  putKey(key: string, physicalOffset: number, storeTimestampMs: number): boolean {
    assert(Number.isSafeInteger(physicalOffset) && physicalOffset >= this.header.endPhyOffset, 'keys come in CommitLog order');
    assert(Number.isSafeInteger(storeTimestampMs) && storeTimestampMs >= 0, 'store timestamp is non-negative');
    if (this.isWriteFull) return false;
    const view = this.cacheView();
    const index = this.header.indexCount;
    const keyHash = indexKeyHash(key);
    const slotPosition = this.slotPosition(keyHash);
    let previous = view.getInt32(slotPosition);
    if (previous <= INDEX_INVALID || previous >= index) previous = INDEX_INVALID;
    // RocketMQ computes the first entry's timeDiff against the begin time inherited from the previous
    // file and only then resets begin; we reset first, so the first entry's diff is 0 and exact. Reading
    // uses the same formula either way, so files from both brokers read alike.
    if (index === 1) {
      this.header.beginPhyOffset = physicalOffset;
      this.header.beginTimestampMs = storeTimestampMs;
    }
    const entryPosition = this.entryPosition(index);
    touchBefore(this.cache!, this.entries, entryPosition + INDEX_ENTRY_SIZE_BYTES, this.touchAhead);
    assert(view.getInt32(entryPosition) === 0 && readInt64(view, entryPosition + 4) === 0, 'the next entry place is empty');
    view.setInt32(entryPosition, keyHash);
    writeInt64(view, entryPosition + 4, physicalOffset);
    view.setInt32(entryPosition + 12, this.timeDiffSeconds(storeTimestampMs));
    view.setInt32(entryPosition + 16, previous);
    view.setInt32(slotPosition, index);
    this.markDirty(slotPosition, INDEX_SLOT_SIZE_BYTES);
    this.markDirty(entryPosition, INDEX_ENTRY_SIZE_BYTES);
    this.header.hashSlotCount += 1;
    this.header.indexCount = index + 1;
    this.header.endPhyOffset = physicalOffset;
    this.header.endTimestampMs = storeTimestampMs;
    // The header's bytes follow at the next flush (the only reader of them), not at every key.
    this.headerStale = true;
    return true;
  }

  /** Whether [beginMs, endMs] overlaps the file's time span (IndexFile.isTimeMatched). */
  isTimeMatched(beginMs: number, endMs: number): boolean {
    const { beginTimestampMs, endTimestampMs } = this.header;
    return (beginMs < beginTimestampMs && endMs > endTimestampMs) ||
      (beginMs >= beginTimestampMs && beginMs <= endTimestampMs) ||
      (endMs >= beginTimestampMs && endMs <= endTimestampMs);
  }

  /**
   * Appends to `into` (and returns it) the CommitLog offsets of entries whose key hash equals `key`'s
   * and whose second-granular store time lies in [beginMs, endMs], newest first, until `into` holds
   * `maxNum`. The walk stops at the first entry older than beginMs, since older ones are older still.
   */
  selectPhyOffsets(key: string, maxNum: number, beginMs: number, endMs: number, into: number[] = []): number[] {
    assert(Number.isSafeInteger(maxNum) && maxNum > 0, 'maxNum is positive');
    const indexCount = this.header.indexCount;
    if (into.length >= maxNum || indexCount <= 1) return into;
    const keyHash = indexKeyHash(key);
    this.withReader((read) => {
      let next = read(this.slotPosition(keyHash), INDEX_SLOT_SIZE_BYTES).getInt32(0);
      if (next <= INDEX_INVALID || next >= indexCount) return;
      // Each step moves to a strictly smaller entry number, so the walk takes fewer than indexCount steps.
      for (let steps = 0; steps < indexCount && into.length < maxNum; steps++) {
        const entry = read(this.entryPosition(next), INDEX_ENTRY_SIZE_BYTES);
        const timeDiffSeconds = entry.getInt32(12);
        const previous = entry.getInt32(16);
        if (timeDiffSeconds < 0) return;
        const timeReadMs = this.header.beginTimestampMs + timeDiffSeconds * 1000;
        if (entry.getInt32(0) === keyHash && timeReadMs >= beginMs && timeReadMs <= endMs) into.push(readInt64(entry, 4));
        if (previous <= INDEX_INVALID || previous >= next || timeReadMs < beginMs) return;
        next = previous;
      }
    });
    return into;
  }

  /**
   * Undoes every entry whose message starts at or past `maxPhysicalOffset`, newest first, and writes
   * the result through to disk. Returns the number of entries dropped. endTimestamp becomes the last
   * kept entry's second-granular time, the only time the file keeps per entry.
   */
  truncate(maxPhysicalOffset: number): number {
    assert(Number.isSafeInteger(maxPhysicalOffset) && maxPhysicalOffset >= 0, 'physical offset is non-negative');
    if (this.header.indexCount <= 1 || this.header.endPhyOffset < maxPhysicalOffset) return 0;
    const cache = this.loadCache();
    const view = new DataView(cache.buffer, cache.byteOffset, cache.byteLength);
    let index = this.header.indexCount - 1;
    for (; index >= 1; index--) {
      const entryPosition = this.entryPosition(index);
      if (readInt64(view, entryPosition + 4) < maxPhysicalOffset) break;
      const slotPosition = this.slotPosition(view.getInt32(entryPosition));
      if (view.getInt32(slotPosition) !== index) {
        throw new IndexFileError(IndexFileErrorCode.corrupt, `index file ${this.path}: entry ${index} is not the head of its slot`);
      }
      view.setInt32(slotPosition, view.getInt32(entryPosition + 16));
      cache.fill(0, entryPosition, entryPosition + INDEX_ENTRY_SIZE_BYTES);
      this.markDirty(slotPosition, INDEX_SLOT_SIZE_BYTES);
      this.markDirty(entryPosition, INDEX_ENTRY_SIZE_BYTES);
    }
    const dropped = this.header.indexCount - 1 - index;
    this.header.indexCount = index + 1;
    this.header.hashSlotCount = Math.max(0, this.header.hashSlotCount - dropped);
    if (index >= 1) {
      const last = this.entryPosition(index);
      this.header.endPhyOffset = readInt64(view, last + 4);
      this.header.endTimestampMs = this.header.beginTimestampMs + view.getInt32(last + 12) * 1000;
    } else {
      this.header.endPhyOffset = this.header.beginPhyOffset;
      this.header.endTimestampMs = this.header.beginTimestampMs;
    }
    this.writeHeader();
    if (this.onDisk) this.flush();
    return dropped;
  }

  /**
   * Crash recovery of the newest file from `header`, the header it had after its last durable entry
   * (index-service.ts has it from the checkpoint). Reads entries 1..header.indexCount-1, which are
   * immutable and were durable, checks that they replay to `header` and rebuilds the slot heads from them
   * in entry order; then writes slots and header through and fdatasyncs. Whatever the file held past
   * those entries is cut off. Returns false, and leaves the file as it was, when the entries on disk do
   * not replay to `header` (the caller then deletes the file and rebuilds it from the CommitLog).
   */
  restore(header: Readonly<IndexHeader>): boolean {
    assert(this.onDisk && this.cache === null, 'restore() starts from the file on disk');
    const count = header.indexCount;
    if (!Number.isSafeInteger(count) || count < 1 || count > this.indexNum || header.hashSlotCount < 0 || header.beginPhyOffset > header.endPhyOffset) {
      return false;
    }
    const cache = new Uint8Array(new SharedArrayBuffer(this.fileSizeBytes));
    const fd = this.storageFs.openSync(this.path, 'r');
    try {
      readFully(this.storageFs, fd, cache.subarray(this.entryPosition(1), this.entryPosition(count)), this.entryPosition(1));
    } finally {
      this.storageFs.closeSync(fd);
    }
    this.touchSlots(cache);
    if (!this.replaySlots(cache, header)) return false;
    this.cache = cache;
    this.entries = freshFrom(this.entryPosition(count));
    this.dirtyPages = new Uint8Array(Math.ceil(this.fileSizeBytes / PAGE_SIZE_BYTES));
    Object.assign(this.header, header);
    this.writeHeader();
    this.markDirty(INDEX_HEADER_SIZE_BYTES, this.hashSlotNum * INDEX_SLOT_SIZE_BYTES);
    this.flush();
    return true;
  }

  /**
   * Sets the slot heads in `cache` (all zero) by replaying its entries 1..indexCount-1 in order, checking
   * each against what putKey wrote; false at the first entry that does not fit `header`.
   */
  private replaySlots(cache: Uint8Array, header: Readonly<IndexHeader>): boolean {
    const view = new DataView(cache.buffer, cache.byteOffset, cache.byteLength);
    const entriesAt = this.entryPosition(0);
    const last = header.indexCount - 1;
    let previousOffset = header.beginPhyOffset;
    // One pass over the entries; each step reads one entry and writes one slot.
    for (let index = 1; index <= last; index++) {
      const at = entriesAt + index * INDEX_ENTRY_SIZE_BYTES;
      const keyHash = view.getInt32(at);
      const physicalOffset = view.getInt32(at + 4) * TWO_POW_32 + view.getUint32(at + 8);
      if (keyHash < 0 || physicalOffset < previousOffset || view.getInt32(at + 12) < 0) return false;
      if (index === 1 && physicalOffset !== header.beginPhyOffset) return false;
      const slotAt = INDEX_HEADER_SIZE_BYTES + (keyHash % this.hashSlotNum) * INDEX_SLOT_SIZE_BYTES;
      if (view.getInt32(at + 16) !== view.getInt32(slotAt)) return false;
      view.setInt32(slotAt, index);
      previousOffset = physicalOffset;
    }
    // With no entries the header still has its inherited begin and end; with some, the last is its end.
    return last === 0 ? header.endPhyOffset === header.beginPhyOffset : previousOffset === header.endPhyOffset;
  }

  /**
   * A cache allocated here has its hash slots (read, then written, by putKey and replaySlots) first
   * touched by writes, and its entries (checked empty, then written) a step ahead of the next one: see
   * touchForWrite in shared-copy.ts. The slots take 20 MB at RocketMQ's default hashSlotNum, once per file.
   */
  private touchSlots(cache: Uint8Array): void {
    touchForWrite(cache, INDEX_HEADER_SIZE_BYTES, this.entryPosition(0));
  }

  /** Writes every dirty page run to the file (creating it on first flush) and fdatasyncs; returns bytes written. */
  flush(): number {
    return this.writeDirty(false);
  }

  /**
   * flush() without the pages that hold only hash slots (see the header): the header's page and the
   * entries, fdatasync'd. The slot pages stay dirty for the next flush().
   */
  flushEntries(): number {
    return this.writeDirty(true);
  }

  private writeDirty(entriesOnly: boolean): number {
    const cache = this.cache;
    const dirtyPages = this.dirtyPages;
    if (cache === null || dirtyPages === null) return 0;
    if (this.headerStale) this.writeHeader();
    const created = !this.onDisk;
    const fd = this.storageFs.openSync(this.path, created ? 'w+' : 'r+', 0o644);
    const written: [number, number][] = [];
    let writtenBytes = 0;
    // Page runs in [fromPage, toPage), each written with one call.
    const writeRuns = (fromPage: number, toPage: number): void => {
      for (let page = fromPage; page < toPage; page++) {
        if (dirtyPages[page] === 0) continue;
        let end = page;
        while (end < toPage && dirtyPages[end] !== 0) end++;
        const from = page * PAGE_SIZE_BYTES;
        const to = Math.min(end * PAGE_SIZE_BYTES, this.fileSizeBytes);
        writeFully(this.storageFs, fd, cache, from, to - from, from);
        writtenBytes += to - from;
        written.push([page, end]);
        page = end;
      }
    };
    try {
      if (created) this.storageFs.ftruncateSync(fd, this.fileSizeBytes);
      if (entriesOnly) {
        // The header's page, then the pages from the first entry to the last one written so far.
        writeRuns(0, 1);
        const entriesFrom = Math.max(1, Math.floor(this.entryPosition(1) / PAGE_SIZE_BYTES));
        writeRuns(entriesFrom, Math.ceil(this.entryPosition(this.header.indexCount) / PAGE_SIZE_BYTES));
      } else {
        writeRuns(0, dirtyPages.length);
      }
      this.storageFs.fdatasyncSync(fd);
    } finally {
      this.storageFs.closeSync(fd);
    }
    // Pages turn clean only once fdatasync succeeded; a failed flush leaves them all to write again.
    for (const [from, to] of written) dirtyPages.fill(0, from, to);
    if (created) fsyncDirectory(this.storageFs, path.dirname(this.path));
    this.onDisk = true;
    return writtenBytes;
  }

  /** Drops the page cache of a flushed file; later reads go to disk. */
  releaseCache(): void {
    assert(this.onDisk, 'only a flushed file drops its cache');
    assert(this.dirtyPages === null || this.dirtyPages.every((page) => page === 0), 'only a clean file drops its cache');
    this.cache = null;
    this.dirtyPages = null;
  }

  /** Deletes the file from disk and memory. */
  delete(): void {
    if (this.onDisk) this.storageFs.unlinkSync(this.path);
    this.onDisk = false;
    this.cache = null;
    this.dirtyPages = null;
  }

  /** The page cache, read from disk on first use (only the parts that can be non-zero). */
  loadCache(): Uint8Array {
    if (this.cache !== null) return this.cache;
    assert(this.onDisk, 'a file without cache is on disk');
    const cache = new Uint8Array(new SharedArrayBuffer(this.fileSizeBytes));
    const fd = this.storageFs.openSync(this.path, 'r');
    try {
      readFully(this.storageFs, fd, cache.subarray(0, this.entryPosition(this.header.indexCount)), 0);
    } finally {
      this.storageFs.closeSync(fd);
    }
    const onDiskHeader = decodeHeader(new DataView(cache.buffer, 0, INDEX_HEADER_SIZE_BYTES));
    assert(onDiskHeader.endPhyOffset === this.header.endPhyOffset, 'the header did not change under us');
    this.cache = cache;
    this.entries = freshFrom(this.entryPosition(this.header.indexCount));
    this.dirtyPages = new Uint8Array(Math.ceil(this.fileSizeBytes / PAGE_SIZE_BYTES));
    return cache;
  }

  private withReader(body: (read: Reader) => void): void {
    const cache = this.cache;
    if (cache !== null) {
      body((position, length) => new DataView(cache.buffer, cache.byteOffset + position, length));
      return;
    }
    const fd = this.storageFs.openSync(this.path, 'r');
    try {
      body((position, length) => {
        const bytes = new Uint8Array(length);
        readFully(this.storageFs, fd, bytes, position);
        return new DataView(bytes.buffer);
      });
    } finally {
      this.storageFs.closeSync(fd);
    }
  }

  private timeDiffSeconds(storeTimestampMs: number): number {
    if (this.header.beginTimestampMs <= 0) return 0;
    const seconds = Math.trunc((storeTimestampMs - this.header.beginTimestampMs) / 1000);
    return Math.min(Math.max(seconds, 0), INT32_MAX);
  }

  private slotPosition(keyHash: number): number {
    assert(keyHash >= 0 && keyHash <= INT32_MAX, 'key hash is a non-negative int32');
    return INDEX_HEADER_SIZE_BYTES + (keyHash % this.hashSlotNum) * INDEX_SLOT_SIZE_BYTES;
  }

  private entryPosition(index: number): number {
    assert(index >= 0 && index <= this.indexNum, 'entry number lies in the file');
    return INDEX_HEADER_SIZE_BYTES + this.hashSlotNum * INDEX_SLOT_SIZE_BYTES + index * INDEX_ENTRY_SIZE_BYTES;
  }

  /** A view of the whole page cache (loaded first), made once per cache. */
  private cacheView(): DataView {
    const cache = this.loadCache();
    if (this.view === null || this.view.buffer !== cache.buffer) this.view = new DataView(cache.buffer, cache.byteOffset, cache.byteLength);
    return this.view;
  }

  private writeHeader(): void {
    const cache = this.cache;
    assert(cache !== null, 'the header is written through the page cache');
    this.headerStale = false;
    const view = new DataView(cache.buffer, cache.byteOffset, INDEX_HEADER_SIZE_BYTES);
    writeInt64(view, HEADER_BEGIN_TIMESTAMP, this.header.beginTimestampMs);
    writeInt64(view, HEADER_END_TIMESTAMP, this.header.endTimestampMs);
    writeInt64(view, HEADER_BEGIN_PHY_OFFSET, this.header.beginPhyOffset);
    writeInt64(view, HEADER_END_PHY_OFFSET, this.header.endPhyOffset);
    view.setInt32(HEADER_HASH_SLOT_COUNT, this.header.hashSlotCount);
    view.setInt32(HEADER_INDEX_COUNT, this.header.indexCount);
    this.markDirty(0, INDEX_HEADER_SIZE_BYTES);
  }

  private markDirty(positionBytes: number, lengthBytes: number): void {
    const dirtyPages = this.dirtyPages;
    assert(dirtyPages !== null, 'a written file tracks dirty pages');
    const first = Math.floor(positionBytes / PAGE_SIZE_BYTES);
    const last = Math.floor((positionBytes + lengthBytes - 1) / PAGE_SIZE_BYTES);
    for (let page = first; page <= last; page++) dirtyPages[page] = 1;
  }
}

function decodeHeader(view: DataView): IndexHeader {
  return {
    beginTimestampMs: readInt64(view, HEADER_BEGIN_TIMESTAMP),
    endTimestampMs: readInt64(view, HEADER_END_TIMESTAMP),
    beginPhyOffset: readInt64(view, HEADER_BEGIN_PHY_OFFSET),
    endPhyOffset: readInt64(view, HEADER_END_PHY_OFFSET),
    hashSlotCount: view.getInt32(HEADER_HASH_SLOT_COUNT),
    indexCount: view.getInt32(HEADER_INDEX_COUNT),
  };
}

function readFully(storageFs: StorageFs, fd: number, into: Uint8Array, position: number): void {
  let read = 0;
  for (let attempt = 0; read < into.length; attempt++) {
    assert(attempt < READ_ATTEMPTS_MAX, 'readSync makes progress');
    const n = storageFs.readSync(fd, into, read, into.length - read, position + read);
    if (n === 0) throw new IndexFileError(IndexFileErrorCode.sizeMismatch, 'index file ended early');
    read += n;
  }
}
