/**
 * The consume queue of one topic/queue: a dense array of fixed-size entries that point into the
 * CommitLog, so a consumer at queue offset N finds its message with one lookup. Format and file naming
 * are RocketMQ's (store/ConsumeQueue.java), so a store directory can move between the two brokers.
 *
 * One entry (CQ_STORE_UNIT_SIZE = 20 bytes, big-endian as Java's ByteBuffer writes it):
 *
 * | offset | size | field           | meaning                                                          |
 * |--------|------|-----------------|------------------------------------------------------------------|
 * | 0      | 8    | commitLogOffset | byte offset of the message in the CommitLog (int64, >= 0)        |
 * | 8      | 4    | sizeBytes       | total size of the message record in the CommitLog (int32, > 0)   |
 * | 12     | 8    | tagsCode        | Java hash of the tags, 0 for none; in SCHEDULE_TOPIC_XXXX the    |
 * |        |      |                 | deliver timestamp in ms (see tag-hash.ts)                        |
 *
 * Files live in `<root>/consumequeue/<topic>/<queueId>/`, each exactly `fileSizeBytes` long (a multiple of
 * 20; RocketMQ's default is 300,000 entries = 6,000,000 bytes) and named by the 20-digit, zero-padded byte
 * offset within the queue of its first slot: queue offset N lives in file floor(N*20 / fileSizeBytes) at
 * byte (N*20) % fileSizeBytes. Slots never written are zero. When a queue's first entry is not at offset
 * 0 (a queue created at a later offset), the slots before it in that first file hold the "pre-blank"
 * entry (commitLogOffset 0, sizeBytes 0x7fffffff, tagsCode 0), as RocketMQ's fillPreBlank writes.
 *
 * Invariants:
 * - files are contiguous: each starts where the previous one ends; every file but the last is full.
 * - every slot in [minOffset, maxOffset) holds a valid entry (commitLogOffset >= 0, sizeBytes > 0), and
 *   every slot at or after maxOffset in the page cache is zero.
 * - along the queue, messages do not overlap and go forward in the CommitLog:
 *   entry(n+1).commitLogOffset >= entry(n).commitLogOffset + entry(n).sizeBytes.
 * - minOffset <= maxOffset; a slot below minOffset is pre-blank or points at CommitLog data that
 *   retention deleted.
 *
 * Recovery rule (as ConsumeQueue.recover): files are listed in name order and scanned from the third to
 * last (earlier ones were full and flushed long ago), or, when the store's checkpoint names a trusted
 * CommitLog offset (every entry pointing below it was durable when the checkpoint was written), from the
 * newest file whose first entry points below that offset; the queue ends at the first slot whose entry is
 * not valid, so a zero slot (offset 0 and size 0: never written) or a torn one ends it (so does one whose
 * int64 fields exceed 2^53, which JavaScript numbers cannot hold; see "Left out" below). Files that start
 * after that end are deleted; the rest of the last file is zeroed on disk, so stale bytes that the kernel
 * wrote out of order cannot come back as entries after later writes. minOffset is the first slot of the
 * first file that is not pre-blank. A zero-length file (a crash between creating and sizing it) never
 * held an entry and is deleted; any other length than fileSizeBytes is refused. The caller then trims the queue to the recovered CommitLog with
 * truncateByCommitLogOffset and applies retention with deleteFilesBefore(CommitLog min offset).
 *
 * Left out: ConsumeQueueExt (enableConsumeQueueExt, off by default in RocketMQ), whose entries keep an
 * extension address (a large negative tagsCode) and would end the queue on recovery here.
 *
 * Each file's page cache is a SharedArrayBuffer, loaded on first touch, so other threads can read
 * entries directly: `sharedState` publishes [minOffset, maxOffset] with Atomics after the entry bytes are
 * in place, and readEntryAt decodes a slot. flush() writes each file's dirty range and fdatasyncs it;
 * a file exists on disk only from its first flush, so a crash drops everything unflushed.
 */
import path from 'node:path';
import { assert } from '../runtime/assert.ts';
import { freshFrom, touchBefore, type FreshCache, type TouchAhead } from './shared-copy.ts';
import { fsyncDirectory, writeFully, type StorageFs } from './storage-fs.ts';

/** Bytes of one consume queue entry (RocketMQ's CQ_STORE_UNIT_SIZE). */
export const CQ_ENTRY_SIZE_BYTES = 20;
/** Name of the directory under the store root that holds all consume queues. */
export const CONSUME_QUEUE_DIR_NAME = 'consumequeue';
/** Default size of one consume queue file: 300,000 entries (RocketMQ's mappedFileSizeConsumeQueue). */
export const CQ_FILE_SIZE_BYTES_DEFAULT = 6_000_000;
/** Default bound on the entries one readBatch call examines (RocketMQ: maxFilterMessageSize 16000 / 20). */
export const CQ_SCAN_ENTRIES_MAX_DEFAULT = 800;
/** Digits in a consume queue file name (RocketMQ's UtilAll.offset2FileName). */
const FILE_NAME_DIGITS = 20;
const FILE_NAME_PATTERN = /^\d{20}$/;
/** Size field of a pre-blank entry (Integer.MAX_VALUE). */
const PRE_BLANK_SIZE_BYTES = 0x7fff_ffff;
const INT32_MAX = 0x7fff_ffff;
const TWO_POW_32 = 0x1_0000_0000;
/** An int64 whose high 32-bit word lies in [-2^21, 2^21) is a safe JavaScript integer. */
const SAFE_HIGH_WORD_LIMIT = 0x20_0000;
/** RocketMQ's topic character set (TopicValidator); also keeps a topic a safe single directory name. */
const TOPIC_PATTERN = /^[%|a-zA-Z0-9_-]{1,127}$/;
/** Bound on writeSync calls to push one range to disk (each writes at least one byte or fails). */
const WRITE_ATTEMPTS_MAX = 1024;

/** Stable codes of consume queue errors. */
export const ConsumeQueueErrorCode = {
  /** A file's length differs from the configured file size (config changed, or foreign file). */
  fileSizeMismatch: 'CONSUME_QUEUE_FILE_SIZE_MISMATCH',
  /** A file's name is not a multiple of the file size, or files leave a gap. */
  fileLayoutInvalid: 'CONSUME_QUEUE_FILE_LAYOUT_INVALID',
  /** The store already holds its maximum number of queues. */
  queueLimitReached: 'CONSUME_QUEUE_LIMIT_REACHED',
} as const;

/** One of ConsumeQueueErrorCode's values. */
export type ConsumeQueueErrorCode = (typeof ConsumeQueueErrorCode)[keyof typeof ConsumeQueueErrorCode];

/** An expected failure of the consume queue store, with a stable code. */
export class ConsumeQueueError extends Error {
  /** Stable machine-readable code. */
  readonly code: ConsumeQueueErrorCode;
  override readonly name = 'ConsumeQueueError';

  constructor(code: ConsumeQueueErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** One decoded consume queue entry. */
export type ConsumeQueueEntry = {
  readonly queueOffset: number;
  readonly commitLogOffset: number;
  readonly sizeBytes: number;
  readonly tagsCode: number;
};

/** How a readBatch went, named after RocketMQ's GetMessageStatus. */
export type ConsumeQueueReadStatus =
  | 'FOUND'
  | 'NO_MATCHED_MESSAGE'
  | 'NO_MESSAGE_IN_QUEUE'
  | 'OFFSET_TOO_SMALL'
  | 'OFFSET_OVERFLOW_ONE'
  | 'OFFSET_OVERFLOW_BADLY';

/** The answer of readBatch: matching entries and where the next read should start. */
export type ConsumeQueueBatch = {
  readonly status: ConsumeQueueReadStatus;
  readonly entries: readonly ConsumeQueueEntry[];
  readonly nextQueueOffset: number;
};

/** What a ConsumeQueue needs to open. */
export type ConsumeQueueOptions = {
  readonly storageFs: StorageFs;
  /** The store root; files go under `<rootDir>/consumequeue/<topic>/<queueId>/`. */
  readonly rootDir: string;
  readonly topic: string;
  readonly queueId: number;
  /** Size of one file, a multiple of 20 (default 6,000,000). */
  readonly fileSizeBytes?: number;
  /** Most entries one readBatch examines, matched or not (default 800). */
  readonly scanEntriesMax?: number;
  /** The checkpoint's trusted CommitLog offset, if any: recovery scans less (see the recovery rule). */
  readonly trustedCommitLogOffset?: number;
  /** Another thread that touches fresh cache pages ahead of the entries (touchBefore in shared-copy.ts); none by default. */
  readonly touchAhead?: TouchAhead;
};

type Segment = {
  /** Byte offset within the queue of the file's first slot; a multiple of the file size. */
  readonly startBytes: number;
  readonly path: string;
  /** Page cache over a SharedArrayBuffer; null until first touched. */
  cache: Uint8Array | null;
  /** Whether the file exists on disk (it is created by its first flush). */
  onDisk: boolean;
  /** Dirty byte range [from, to) within the file; clean when from >= to. */
  dirtyFromBytes: number;
  dirtyToBytes: number;
  /** How far the cache has been touched (touchBefore): all of it when it was read from the file. */
  fresh: FreshCache;
};

/** The directory of one topic/queue's files under a store root. */
export function consumeQueueDir(rootDir: string, topic: string, queueId: number): string {
  return path.join(rootDir, CONSUME_QUEUE_DIR_NAME, topic, String(queueId));
}

/** Whether `topic` is a legal topic name and thus a safe directory name. */
export function isValidTopicName(topic: string): boolean {
  return TOPIC_PATTERN.test(topic);
}

/** Decodes the entry at byte `positionBytes` of a page cache; used by readers on other threads too. */
export function readEntryAt(cache: Uint8Array, positionBytes: number, queueOffset: number): ConsumeQueueEntry {
  assert(positionBytes >= 0 && positionBytes + CQ_ENTRY_SIZE_BYTES <= cache.length, 'entry lies inside the file');
  const view = new DataView(cache.buffer, cache.byteOffset + positionBytes, CQ_ENTRY_SIZE_BYTES);
  return {
    queueOffset,
    commitLogOffset: readInt64(view, 0),
    sizeBytes: view.getInt32(8),
    tagsCode: readInt64(view, 12),
  };
}

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

/**
 * Whether the slot at `positionBytes` holds a valid entry whose int64 fields fit a safe integer;
 * recovery uses it so that torn or foreign bytes end the queue instead of failing an assertion.
 */
function isRecoverableEntryAt(cache: Uint8Array, positionBytes: number): boolean {
  // Read from the bytes directly: recovery checks millions of slots, and a DataView per slot is garbage.
  const commitLogOffsetHigh = int32At(cache, positionBytes);
  const tagsCodeHigh = int32At(cache, positionBytes + 12);
  return commitLogOffsetHigh >= 0 && commitLogOffsetHigh < SAFE_HIGH_WORD_LIMIT && int32At(cache, positionBytes + 8) > 0 &&
    tagsCodeHigh >= -SAFE_HIGH_WORD_LIMIT && tagsCodeHigh < SAFE_HIGH_WORD_LIMIT;
}

function writeInt32At(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

function writeInt64At(bytes: Uint8Array, at: number, value: number): void {
  assert(Number.isSafeInteger(value), 'int64 field is a safe integer');
  const high = Math.floor(value / TWO_POW_32);
  writeInt32At(bytes, at, high | 0);
  writeInt32At(bytes, at + 4, (value - high * TWO_POW_32) >>> 0);
}

function int32At(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
}

function isValidEntry(entry: ConsumeQueueEntry): boolean {
  return entry.commitLogOffset >= 0 && entry.sizeBytes > 0;
}

function isPreBlank(entry: ConsumeQueueEntry): boolean {
  return entry.commitLogOffset === 0 && entry.sizeBytes === PRE_BLANK_SIZE_BYTES && entry.tagsCode === 0;
}

function fileNameOf(startBytes: number): string {
  return String(startBytes).padStart(FILE_NAME_DIGITS, '0');
}

function isAllZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** The consume queue of one topic/queue, with its files, page caches and recovery. */
export class ConsumeQueue {
  /** The topic this queue belongs to. */
  readonly topic: string;
  /** The queue id within the topic. */
  readonly queueId: number;
  /** Size of one file in bytes. */
  readonly fileSizeBytes: number;
  /** [minOffset, maxOffset] as BigInt64, stored with Atomics after each change, for other threads. */
  readonly sharedState: SharedArrayBuffer;

  private readonly storageFs: StorageFs;
  private readonly rootDir: string;
  private readonly dir: string;
  private readonly scanEntriesMax: number;
  private readonly trustedCommitLogOffset: number | undefined;
  private readonly touchAhead: TouchAhead | undefined;
  private readonly stateView: BigInt64Array;
  private segments: Segment[] = [];
  private minQueueOffset = 0;
  private maxQueueOffset = 0;
  /** End (offset + size) in the CommitLog of the last entry, or -1 when unknown. */
  private commitLogEndOffset = -1;

  private constructor(options: ConsumeQueueOptions) {
    assert(isValidTopicName(options.topic), () => `topic ${JSON.stringify(options.topic)} is a valid topic name`);
    assert(Number.isSafeInteger(options.queueId) && options.queueId >= 0, 'queueId is a non-negative integer');
    const fileSizeBytes = options.fileSizeBytes ?? CQ_FILE_SIZE_BYTES_DEFAULT;
    assert(Number.isSafeInteger(fileSizeBytes) && fileSizeBytes > 0, 'file size is a positive integer');
    assert(fileSizeBytes % CQ_ENTRY_SIZE_BYTES === 0 && fileSizeBytes <= 2_147_483_640, 'file size holds whole entries');
    const scanEntriesMax = options.scanEntriesMax ?? CQ_SCAN_ENTRIES_MAX_DEFAULT;
    assert(Number.isSafeInteger(scanEntriesMax) && scanEntriesMax > 0, 'scanEntriesMax is positive');
    this.storageFs = options.storageFs;
    this.rootDir = options.rootDir;
    this.topic = options.topic;
    this.queueId = options.queueId;
    this.fileSizeBytes = fileSizeBytes;
    this.scanEntriesMax = scanEntriesMax;
    this.trustedCommitLogOffset = options.trustedCommitLogOffset;
    this.touchAhead = options.touchAhead;
    this.dir = consumeQueueDir(options.rootDir, options.topic, options.queueId);
    this.sharedState = new SharedArrayBuffer(16);
    this.stateView = new BigInt64Array(this.sharedState);
  }

  /** Opens the queue, recovering whatever files it already has on disk. */
  static open(options: ConsumeQueueOptions): ConsumeQueue {
    const queue = new ConsumeQueue(options);
    queue.recover();
    return queue;
  }

  /** The smallest queue offset that can be read. */
  get minOffset(): number {
    return this.minQueueOffset;
  }

  /** The queue offset the next entry will take (one past the last entry). */
  get maxOffset(): number {
    return this.maxQueueOffset;
  }

  /** End in the CommitLog (offset + size) of the last entry, or -1 when the queue holds none. */
  get maxPhysicalOffset(): number {
    return this.commitLogEndOffset;
  }

  /** Number of files the queue spans now (flushed or not). */
  get fileCount(): number {
    return this.segments.length;
  }

  /**
   * Appends the entry for `queueOffset`, which must be maxOffset (or any offset when the queue holds no
   * file yet). Re-putting an identical entry below maxOffset is a no-op, so dispatch can be replayed.
   * Returns whether the entry was appended. With `publish` false, readers on other threads see it only
   * at the next publishMax (or the next entry put with `publish`).
   */
  putEntry(queueOffset: number, commitLogOffset: number, sizeBytes: number, tagsCode: number, publish = true): boolean {
    assert(Number.isSafeInteger(queueOffset) && queueOffset >= 0, 'queue offset is a non-negative integer');
    assert(Number.isSafeInteger(commitLogOffset) && commitLogOffset >= 0, 'commit log offset is non-negative');
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= INT32_MAX, 'size fits a positive int32');
    assert(Number.isSafeInteger(tagsCode), 'tagsCode is a safe integer');
    if (queueOffset < this.maxQueueOffset) return this.checkReplayedEntry(queueOffset, commitLogOffset, sizeBytes, tagsCode);
    if (queueOffset > this.maxQueueOffset) {
      assert(this.segments.length === 0, () => `queue ${this.topic}/${this.queueId} expects offset ${this.maxQueueOffset}, got ${queueOffset}`);
      this.minQueueOffset = queueOffset;
      this.maxQueueOffset = queueOffset;
    }
    assert(commitLogOffset >= this.commitLogEndOffset, 'entries go forward in the CommitLog without overlap');
    const segment = this.segmentForAppend(queueOffset);
    const positionBytes = queueOffset * CQ_ENTRY_SIZE_BYTES - segment.startBytes;
    const cache = this.load(segment);
    // The slot is read before it is written: see touchForWrite in shared-copy.ts for why the touch comes first.
    touchBefore(cache, segment.fresh, positionBytes + CQ_ENTRY_SIZE_BYTES, this.touchAhead);
    let used = 0;
    for (let i = 0; i < CQ_ENTRY_SIZE_BYTES; i++) used |= cache[positionBytes + i]!;
    assert(used === 0, 'the slot past maxOffset is empty');
    // Byte writes rather than a DataView per entry: dispatch puts one entry per message.
    writeInt64At(cache, positionBytes, commitLogOffset);
    writeInt32At(cache, positionBytes + 8, sizeBytes);
    writeInt64At(cache, positionBytes + 12, tagsCode);
    markDirty(segment, positionBytes, positionBytes + CQ_ENTRY_SIZE_BYTES);
    const minChanged = this.maxQueueOffset === this.minQueueOffset && queueOffset === this.minQueueOffset;
    this.maxQueueOffset = queueOffset + 1;
    this.commitLogEndOffset = commitLogOffset + sizeBytes;
    if (minChanged) this.publish();
    else if (publish) this.publishMax();
    return true;
  }

  /**
   * Shows readers on other threads the entries put so far. putEntry does it for each entry unless told
   * not to: dispatch puts a batch's entries, then publishes each queue it touched once.
   */
  publishMax(): void {
    Atomics.store(this.stateView, 1, BigInt(this.maxQueueOffset));
  }

  /** The entry at `queueOffset`, or undefined outside [minOffset, maxOffset). */
  get(queueOffset: number): ConsumeQueueEntry | undefined {
    assert(Number.isSafeInteger(queueOffset), 'queue offset is an integer');
    if (queueOffset < this.minQueueOffset || queueOffset >= this.maxQueueOffset) return undefined;
    const entry = this.entryAt(queueOffset);
    assert(isValidEntry(entry), () => `entry ${queueOffset} below maxOffset is valid`);
    return entry;
  }

  /**
   * Reads up to `maxEntries` entries from `fromQueueOffset`. Entries that `tagFilter` rejects are skipped
   * but still advance nextQueueOffset, as RocketMQ's getMessage does; at most max(scanEntriesMax,
   * maxEntries) entries are examined per call.
   */
  readBatch(fromQueueOffset: number, maxEntries: number, tagFilter?: (tagsCode: number) => boolean): ConsumeQueueBatch {
    assert(Number.isSafeInteger(fromQueueOffset), 'from offset is an integer');
    assert(Number.isSafeInteger(maxEntries) && maxEntries > 0, 'maxEntries is positive');
    if (this.maxQueueOffset === 0) return { status: 'NO_MESSAGE_IN_QUEUE', entries: [], nextQueueOffset: 0 };
    if (fromQueueOffset < this.minQueueOffset) return { status: 'OFFSET_TOO_SMALL', entries: [], nextQueueOffset: this.minQueueOffset };
    if (fromQueueOffset === this.maxQueueOffset) return { status: 'OFFSET_OVERFLOW_ONE', entries: [], nextQueueOffset: fromQueueOffset };
    if (fromQueueOffset > this.maxQueueOffset) return { status: 'OFFSET_OVERFLOW_BADLY', entries: [], nextQueueOffset: this.maxQueueOffset };
    const scanMax = Math.max(this.scanEntriesMax, maxEntries);
    const entries: ConsumeQueueEntry[] = [];
    let queueOffset = fromQueueOffset;
    for (let scanned = 0; scanned < scanMax && queueOffset < this.maxQueueOffset && entries.length < maxEntries; scanned++) {
      const entry = this.entryAt(queueOffset);
      assert(isValidEntry(entry), () => `entry ${queueOffset} below maxOffset is valid`);
      queueOffset++;
      if (tagFilter === undefined || tagFilter(entry.tagsCode)) entries.push(entry);
    }
    assert(queueOffset > fromQueueOffset, 'a read makes progress');
    return { status: entries.length > 0 ? 'FOUND' : 'NO_MATCHED_MESSAGE', entries, nextQueueOffset: queueOffset };
  }

  /** The page cache (shared memory) of the file holding `queueOffset`, or undefined if there is none. */
  segmentBuffer(queueOffset: number): { buffer: SharedArrayBuffer; startQueueOffset: number } | undefined {
    const segment = this.segmentOf(queueOffset * CQ_ENTRY_SIZE_BYTES);
    if (segment === undefined) return undefined;
    const cache = this.load(segment);
    assert(cache.buffer instanceof SharedArrayBuffer, 'page caches are shared memory');
    return { buffer: cache.buffer, startQueueOffset: segment.startBytes / CQ_ENTRY_SIZE_BYTES };
  }

  /** Writes every dirty range to its file and fdatasyncs it; returns the bytes written. */
  flush(): number {
    let writtenBytes = 0;
    for (const segment of this.segments) writtenBytes += this.flushSegment(segment);
    return writtenBytes;
  }

  /** Drops every entry at or after `queueOffset` and flushes the queue; a no-op at or past maxOffset. */
  truncateTo(queueOffset: number): void {
    assert(Number.isSafeInteger(queueOffset) && queueOffset >= 0, 'truncation offset is a non-negative integer');
    if (queueOffset >= this.maxQueueOffset) return;
    const cutBytes = queueOffset * CQ_ENTRY_SIZE_BYTES;
    let deleted = 0;
    while (this.segments.length > 0 && this.segments[this.segments.length - 1]!.startBytes > cutBytes) {
      this.deleteSegment(this.segments.pop()!);
      deleted++;
    }
    const tail = this.segments.at(-1);
    if (tail !== undefined && cutBytes < tail.startBytes + this.fileSizeBytes) {
      const cache = this.load(tail);
      cache.fill(0, cutBytes - tail.startBytes);
      markDirty(tail, cutBytes - tail.startBytes, this.fileSizeBytes);
    }
    // Flush everything, not just the tail: the kept prefix must be on disk before the cut is, or a
    // crash could leave a later file durable behind an earlier file's unwritten hole.
    this.flush();
    if (deleted > 0 && this.storageFs.existsSync(this.dir)) fsyncDirectory(this.storageFs, this.dir);
    this.maxQueueOffset = queueOffset;
    this.minQueueOffset = Math.min(this.minQueueOffset, queueOffset);
    this.commitLogEndOffset = this.lastEntryEnd();
    this.publish();
  }

  /**
   * Drops every entry whose message starts at or past `maxPhysicalOffset`, the recovered end of the
   * CommitLog (ConsumeQueue.truncateDirtyLogicFiles uses the same test). Returns the new maxOffset.
   */
  truncateByCommitLogOffset(maxPhysicalOffset: number): number {
    assert(Number.isSafeInteger(maxPhysicalOffset) && maxPhysicalOffset >= 0, 'physical offset is non-negative');
    const cut = this.firstOffsetAtOrPast(this.minQueueOffset, maxPhysicalOffset);
    this.truncateTo(cut);
    assert(this.maxQueueOffset === cut, 'truncation ends where asked');
    return this.maxQueueOffset;
  }

  /**
   * Retention: flushes, deletes whole files (never the last) whose entries all point below
   * `commitLogOffset`, the CommitLog's new minimum, then moves minOffset to the first entry at or past
   * it. Returns the number of files deleted.
   */
  deleteFilesBefore(commitLogOffset: number): number {
    assert(Number.isSafeInteger(commitLogOffset) && commitLogOffset >= 0, 'commit log offset is non-negative');
    // The files that remain must be durable before their predecessors go, so that recovery never finds
    // the queue shorter than what retention already removed.
    this.flush();
    let deleted = 0;
    while (this.segments.length > 1) {
      const first = this.segments[0]!;
      const lastSlot = (first.startBytes + this.fileSizeBytes) / CQ_ENTRY_SIZE_BYTES - 1;
      assert(lastSlot < this.maxQueueOffset, 'a file before the last is full');
      if (this.probeEntryAt(lastSlot).commitLogOffset >= commitLogOffset) break;
      this.deleteSegment(this.segments.shift()!);
      deleted++;
    }
    if (deleted > 0 && this.storageFs.existsSync(this.dir)) fsyncDirectory(this.storageFs, this.dir);
    const firstSlot = this.segments.length > 0 ? this.segments[0]!.startBytes / CQ_ENTRY_SIZE_BYTES : this.maxQueueOffset;
    const from = Math.min(Math.max(this.minQueueOffset, firstSlot), this.maxQueueOffset);
    this.minQueueOffset = this.firstOffsetAtOrPast(from, commitLogOffset);
    assert(this.minQueueOffset <= this.maxQueueOffset, 'minOffset stays at or below maxOffset');
    this.publish();
    return deleted;
  }

  /** Flushes and releases the page caches; the queue must not be used afterwards. */
  close(): void {
    this.flush();
    for (const segment of this.segments) segment.cache = null;
    this.segments = [];
  }

  private checkReplayedEntry(queueOffset: number, commitLogOffset: number, sizeBytes: number, tagsCode: number): boolean {
    if (queueOffset < this.minQueueOffset) return false;
    const existing = this.entryAt(queueOffset);
    assert(
      existing.commitLogOffset === commitLogOffset && existing.sizeBytes === sizeBytes && existing.tagsCode === tagsCode,
      `replayed entry ${queueOffset} of ${this.topic}/${this.queueId} matches the stored one`,
    );
    return false;
  }

  /** The first offset in [from, maxOffset) whose message starts at or past `commitLogOffset`, else maxOffset. */
  private firstOffsetAtOrPast(from: number, commitLogOffset: number): number {
    let low = from;
    let high = this.maxQueueOffset;
    // Binary search: commit log offsets grow along the queue. The range halves each round.
    for (let round = 0; low < high; round++) {
      assert(round < 64, 'binary search ends');
      const middle = low + Math.floor((high - low) / 2);
      if (this.probeEntryAt(middle).commitLogOffset >= commitLogOffset) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  private lastEntryEnd(): number {
    if (this.maxQueueOffset <= this.minQueueOffset) return -1;
    const last = this.entryAt(this.maxQueueOffset - 1);
    return isValidEntry(last) && !isPreBlank(last) ? last.commitLogOffset + last.sizeBytes : -1;
  }

  private entryAt(queueOffset: number): ConsumeQueueEntry {
    const bytes = queueOffset * CQ_ENTRY_SIZE_BYTES;
    const segment = this.segmentOf(bytes);
    assert(segment !== undefined, () => `a file holds queue offset ${queueOffset}`);
    return readEntryAt(this.load(segment), bytes - segment.startBytes, queueOffset);
  }

  /** entryAt for lookups that touch many files once each (binary searches): reads one slot, loads no file. */
  private probeEntryAt(queueOffset: number): ConsumeQueueEntry {
    const bytes = queueOffset * CQ_ENTRY_SIZE_BYTES;
    const segment = this.segmentOf(bytes);
    assert(segment !== undefined, () => `a file holds queue offset ${queueOffset}`);
    const slot = this.slotBytes(segment, bytes - segment.startBytes);
    return readEntryAt(slot.bytes, slot.at, queueOffset);
  }

  private segmentOf(bytes: number): Segment | undefined {
    if (this.segments.length === 0 || bytes < 0) return undefined;
    const index = Math.floor((bytes - this.segments[0]!.startBytes) / this.fileSizeBytes);
    if (index < 0 || index >= this.segments.length) return undefined;
    const segment = this.segments[index]!;
    assert(bytes >= segment.startBytes && bytes < segment.startBytes + this.fileSizeBytes, 'files are contiguous');
    return segment;
  }

  /** The file that takes the entry at `queueOffset` (== maxOffset), rolling to a new one when needed. */
  private segmentForAppend(queueOffset: number): Segment {
    const bytes = queueOffset * CQ_ENTRY_SIZE_BYTES;
    assert(Number.isSafeInteger(bytes + this.fileSizeBytes), 'queue byte offsets stay safe integers');
    const existing = this.segmentOf(bytes);
    if (existing !== undefined) return existing;
    const startBytes = bytes - (bytes % this.fileSizeBytes);
    const last = this.segments.at(-1);
    assert(last === undefined || last.startBytes + this.fileSizeBytes === startBytes, 'a new file follows the last');
    const segment = this.newSegment(startBytes);
    segment.cache = new Uint8Array(new SharedArrayBuffer(this.fileSizeBytes));
    segment.fresh = freshFrom(0);
    this.segments.push(segment);
    if (last === undefined && startBytes < bytes) this.fillPreBlank(segment, bytes - startBytes);
    return segment;
  }

  /** Fills the slots before a queue's first entry with pre-blank entries (RocketMQ's fillPreBlank). */
  private fillPreBlank(segment: Segment, untilBytes: number): void {
    const cache = this.load(segment);
    const view = new DataView(cache.buffer, cache.byteOffset, untilBytes);
    for (let at = 0; at < untilBytes; at += CQ_ENTRY_SIZE_BYTES) {
      writeInt64(view, at, 0);
      view.setInt32(at + 8, PRE_BLANK_SIZE_BYTES);
      writeInt64(view, at + 12, 0);
    }
    markDirty(segment, 0, untilBytes);
    segment.fresh.untouchedFrom = Math.max(segment.fresh.untouchedFrom, untilBytes);
  }

  private newSegment(startBytes: number): Segment {
    assert(startBytes % this.fileSizeBytes === 0, 'files start at multiples of the file size');
    return {
      startBytes,
      path: path.join(this.dir, fileNameOf(startBytes)),
      cache: null,
      onDisk: false,
      dirtyFromBytes: 0,
      dirtyToBytes: 0,
      fresh: freshFrom(0),
    };
  }

  /** The page cache of `segment`, reading the file on first touch. */
  private load(segment: Segment): Uint8Array {
    if (segment.cache !== null) return segment.cache;
    const cache = new Uint8Array(new SharedArrayBuffer(this.fileSizeBytes));
    if (segment.onDisk) {
      const fd = this.storageFs.openSync(segment.path, 'r');
      try {
        const sizeBytes = this.storageFs.fstatSync(fd).size;
        assert(sizeBytes === this.fileSizeBytes, 'file size was checked at open');
        let read = 0;
        for (let attempt = 0; read < sizeBytes; attempt++) {
          assert(attempt < WRITE_ATTEMPTS_MAX, 'readSync makes progress');
          const n = this.storageFs.readSync(fd, cache, read, sizeBytes - read, read);
          assert(n > 0, 'file is not shorter than fstat said');
          read += n;
        }
      } finally {
        this.storageFs.closeSync(fd);
      }
    }
    segment.cache = cache;
    segment.fresh = freshFrom(segment.onDisk ? this.fileSizeBytes : 0);
    return cache;
  }

  private flushSegment(segment: Segment): number {
    if (segment.dirtyFromBytes >= segment.dirtyToBytes) return 0;
    const cache = segment.cache;
    assert(cache !== null, 'a dirty file has its page cache');
    const created = !segment.onDisk;
    if (created) this.ensureDir();
    const fd = this.storageFs.openSync(segment.path, created ? 'w+' : 'r+', 0o644);
    try {
      if (created) this.storageFs.ftruncateSync(fd, this.fileSizeBytes);
      const length = segment.dirtyToBytes - segment.dirtyFromBytes;
      writeFully(this.storageFs, fd, cache, segment.dirtyFromBytes, length, segment.dirtyFromBytes);
      this.storageFs.fdatasyncSync(fd);
    } finally {
      this.storageFs.closeSync(fd);
    }
    if (created) fsyncDirectory(this.storageFs, this.dir);
    const writtenBytes = segment.dirtyToBytes - segment.dirtyFromBytes;
    segment.onDisk = true;
    segment.dirtyFromBytes = 0;
    segment.dirtyToBytes = 0;
    return writtenBytes;
  }

  private ensureDir(): void {
    if (this.storageFs.existsSync(this.dir)) return;
    this.storageFs.mkdirSync(this.dir, { recursive: true });
    // Make the new directory entries durable, innermost first, up to the consumequeue root.
    fsyncDirectory(this.storageFs, path.dirname(this.dir));
    fsyncDirectory(this.storageFs, path.join(this.rootDir, CONSUME_QUEUE_DIR_NAME));
  }

  private deleteSegment(segment: Segment): void {
    if (segment.onDisk) this.storageFs.unlinkSync(segment.path);
    segment.cache = null;
    segment.onDisk = false;
  }

  private publish(): void {
    Atomics.store(this.stateView, 0, BigInt(this.minQueueOffset));
    Atomics.store(this.stateView, 1, BigInt(this.maxQueueOffset));
  }

  /** Rebuilds the in-memory state from the files on disk (see the recovery rule at the top). */
  private recover(): void {
    this.segments = this.listSegments();
    if (this.segments.length === 0) {
      this.publish();
      return;
    }
    const endBytes = this.scanValidEnd();
    let deleted = 0;
    while (this.segments.at(-1)!.startBytes > endBytes) {
      this.deleteSegment(this.segments.pop()!);
      deleted++;
    }
    if (deleted > 0) fsyncDirectory(this.storageFs, this.dir);
    this.zeroTailPastEnd(endBytes);
    this.maxQueueOffset = endBytes / CQ_ENTRY_SIZE_BYTES;
    this.minQueueOffset = this.firstNonBlankOffset();
    this.commitLogEndOffset = this.lastEntryEnd();
    this.publish();
  }

  private listSegments(): Segment[] {
    if (!this.storageFs.existsSync(this.dir)) return [];
    const names = this.storageFs.readdirSync(this.dir).filter((name) => FILE_NAME_PATTERN.test(name));
    names.sort();
    const segments: Segment[] = [];
    for (const name of names) {
      const startBytes = Number(name);
      const filePath = path.join(this.dir, name);
      // A crash between creating a file and sizing it leaves it empty: it never held an entry.
      if (this.storageFs.statSync(filePath).size === 0) {
        this.storageFs.unlinkSync(filePath);
        continue;
      }
      const previous = segments.at(-1);
      if (!Number.isSafeInteger(startBytes) || startBytes % this.fileSizeBytes !== 0 ||
        (previous !== undefined && previous.startBytes + this.fileSizeBytes !== startBytes)) {
        throw new ConsumeQueueError(ConsumeQueueErrorCode.fileLayoutInvalid, `consume queue file ${path.join(this.dir, name)} is out of place for file size ${this.fileSizeBytes}`);
      }
      const segment = this.newSegment(startBytes);
      const sizeBytes = this.storageFs.statSync(segment.path).size;
      if (sizeBytes !== this.fileSizeBytes) {
        throw new ConsumeQueueError(ConsumeQueueErrorCode.fileSizeMismatch, `consume queue file ${segment.path} is ${sizeBytes} bytes, expected ${this.fileSizeBytes}`);
      }
      segment.onDisk = true;
      segments.push(segment);
    }
    return segments;
  }

  /** Byte offset within the queue where the valid entries end (see the recovery rule for where it starts). */
  private scanValidEnd(): number {
    const entriesPerFile = this.fileSizeBytes / CQ_ENTRY_SIZE_BYTES;
    for (let index = this.scanStartIndex(); index < this.segments.length; index++) {
      const segment = this.segments[index]!;
      const cache = this.load(segment);
      for (let slot = 0; slot < entriesPerFile; slot++) {
        if (!isRecoverableEntryAt(cache, slot * CQ_ENTRY_SIZE_BYTES)) return segment.startBytes + slot * CQ_ENTRY_SIZE_BYTES;
      }
    }
    return this.segments.at(-1)!.startBytes + this.fileSizeBytes;
  }

  /** The first file recovery scans: the newest one starting below the trusted offset, else the third to last. */
  private scanStartIndex(): number {
    const trusted = this.trustedCommitLogOffset;
    const fallback = Math.max(0, this.segments.length - 3);
    if (trusted === undefined) return fallback;
    // Bounded by the number of files; each probe reads one 20-byte slot.
    for (let index = this.segments.length - 1; index >= 0; index--) {
      const slot = this.slotBytes(this.segments[index]!, 0);
      if (!isRecoverableEntryAt(slot.bytes, slot.at)) continue;
      const entry = readEntryAt(slot.bytes, slot.at, 0);
      if (isPreBlank(entry) || entry.commitLogOffset >= trusted) continue;
      return index;
    }
    return fallback;
  }

  /** The bytes holding slot `positionBytes` of a file: its cache when loaded, else a 20-byte read. */
  private slotBytes(segment: Segment, positionBytes: number): { bytes: Uint8Array; at: number } {
    if (segment.cache !== null || !segment.onDisk) return { bytes: this.load(segment), at: positionBytes };
    const bytes = new Uint8Array(CQ_ENTRY_SIZE_BYTES);
    const fd = this.storageFs.openSync(segment.path, 'r');
    try {
      const read = this.storageFs.readSync(fd, bytes, 0, CQ_ENTRY_SIZE_BYTES, positionBytes);
      assert(read === CQ_ENTRY_SIZE_BYTES, 'a slot is read whole');
    } finally {
      this.storageFs.closeSync(fd);
    }
    return { bytes, at: 0 };
  }

  /** Zeroes (in cache and on disk) whatever bytes follow the valid end in the last file. */
  private zeroTailPastEnd(endBytes: number): void {
    const tail = this.segments.at(-1)!;
    const from = endBytes - tail.startBytes;
    assert(from >= 0 && from <= this.fileSizeBytes, 'the valid end lies in the last file');
    const cache = this.load(tail);
    if (isAllZero(cache.subarray(from))) return;
    cache.fill(0, from);
    markDirty(tail, from, this.fileSizeBytes);
    this.flushSegment(tail);
  }

  private firstNonBlankOffset(): number {
    const first = this.segments[0]!;
    const firstSlot = first.startBytes / CQ_ENTRY_SIZE_BYTES;
    const entriesPerFile = this.fileSizeBytes / CQ_ENTRY_SIZE_BYTES;
    const cache = this.load(first);
    let slot = 0;
    while (slot < entriesPerFile && firstSlot + slot < this.maxQueueOffset && isPreBlank(readEntryAt(cache, slot * CQ_ENTRY_SIZE_BYTES, 0))) slot++;
    return firstSlot + slot;
  }
}

function markDirty(segment: Segment, fromBytes: number, toBytes: number): void {
  assert(fromBytes <= toBytes, 'dirty range is ordered');
  if (segment.dirtyFromBytes >= segment.dirtyToBytes) {
    segment.dirtyFromBytes = fromBytes;
    segment.dirtyToBytes = toBytes;
    return;
  }
  segment.dirtyFromBytes = Math.min(segment.dirtyFromBytes, fromBytes);
  segment.dirtyToBytes = Math.max(segment.dirtyToBytes, toBytes);
}

/** What a ConsumeQueueStore needs to open. */
export type ConsumeQueueStoreOptions = {
  readonly storageFs: StorageFs;
  readonly rootDir: string;
  /** Most (topic, queueId) pairs the store holds at once. */
  readonly queuesMax: number;
  readonly fileSizeBytes?: number;
  readonly scanEntriesMax?: number;
  /** The checkpoint's trusted CommitLog offset, if any (see ConsumeQueueOptions). */
  readonly trustedCommitLogOffset?: number;
  readonly touchAhead?: TouchAhead;
};

/** All consume queues of a store, by (topic, queueId), bounded in number. */
export class ConsumeQueueStore {
  private readonly options: ConsumeQueueStoreOptions;
  private readonly queues = new Map<string, ConsumeQueue>();

  private constructor(options: ConsumeQueueStoreOptions) {
    assert(Number.isSafeInteger(options.queuesMax) && options.queuesMax > 0, 'queuesMax is positive');
    this.options = options;
  }

  /** Opens the store, recovering every queue found under `<rootDir>/consumequeue/`. */
  static open(options: ConsumeQueueStoreOptions): ConsumeQueueStore {
    const store = new ConsumeQueueStore(options);
    const root = path.join(options.rootDir, CONSUME_QUEUE_DIR_NAME);
    if (!options.storageFs.existsSync(root)) return store;
    const topics = options.storageFs.readdirSync(root).filter(isValidTopicName).sort();
    for (const topic of topics) {
      const queueIds = listDir(options.storageFs, path.join(root, topic)).filter((name) => /^(0|[1-9]\d{0,8})$/.test(name));
      for (const queueId of queueIds.map(Number).sort((a, b) => a - b)) store.findOrCreate(topic, queueId);
    }
    return store;
  }

  /** Number of queues held. */
  get size(): number {
    return this.queues.size;
  }

  /** The queue of (topic, queueId) if the store holds it. */
  get(topic: string, queueId: number): ConsumeQueue | undefined {
    return this.queues.get(keyOf(topic, queueId));
  }

  /** The queue of (topic, queueId), opened (and recovered) on first use; throws at the queue bound. */
  findOrCreate(topic: string, queueId: number): ConsumeQueue {
    const key = keyOf(topic, queueId);
    const existing = this.queues.get(key);
    if (existing !== undefined) return existing;
    if (this.queues.size >= this.options.queuesMax) {
      throw new ConsumeQueueError(ConsumeQueueErrorCode.queueLimitReached, `consume queue store holds its maximum of ${this.options.queuesMax} queues`);
    }
    const queue = ConsumeQueue.open({ ...this.options, topic, queueId });
    this.queues.set(key, queue);
    return queue;
  }

  /** Every queue held, in no particular order. */
  all(): IterableIterator<ConsumeQueue> {
    return this.queues.values();
  }

  /** Flushes every queue; returns the bytes written. */
  flushAll(): number {
    let writtenBytes = 0;
    for (const queue of this.queues.values()) writtenBytes += queue.flush();
    return writtenBytes;
  }

  /** Trims every queue to the recovered CommitLog end (see ConsumeQueue.truncateByCommitLogOffset). */
  truncateAll(maxPhysicalOffset: number): void {
    for (const queue of this.queues.values()) queue.truncateByCommitLogOffset(maxPhysicalOffset);
  }

  /** Applies retention to every queue; returns the number of files deleted. */
  deleteFilesBeforeAll(commitLogOffset: number): number {
    let deleted = 0;
    for (const queue of this.queues.values()) deleted += queue.deleteFilesBefore(commitLogOffset);
    return deleted;
  }

  /** The largest CommitLog end any queue points at, or -1: where dispatch must resume after recovery. */
  maxPhysicalOffset(): number {
    let max = -1;
    for (const queue of this.queues.values()) max = Math.max(max, queue.maxPhysicalOffset);
    return max;
  }

  /** Flushes and closes every queue. */
  close(): void {
    for (const queue of this.queues.values()) queue.close();
    this.queues.clear();
  }
}

/** Names in `dir`, or none when it is not a directory (a stray file among the topic directories). */
function listDir(storageFs: StorageFs, dir: string): string[] {
  try {
    return storageFs.readdirSync(dir);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOTDIR') return [];
    throw error;
  }
}

function keyOf(topic: string, queueId: number): string {
  assert(isValidTopicName(topic), () => `topic ${JSON.stringify(topic)} is a valid topic name`);
  assert(Number.isSafeInteger(queueId) && queueId >= 0, 'queueId is a non-negative integer');
  return `${topic}/${queueId}`;
}
