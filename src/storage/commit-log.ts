/**
 * The CommitLog: every message of every topic, appended in arrival order to a chain of fixed-size files
 * in `<storePathRootDir>/commitlog/`, as RocketMQ stores them (records in message-record.ts's layout).
 *
 * | file (20-digit name = start offset) | contents                                                    |
 * |-------------------------------------|-------------------------------------------------------------|
 * | 00000000000000000000                | record, record, ..., blank marker up to the end of the file |
 * | 00000000001073741824                | record, record, ..., blank marker                           |
 * | ...                                 | ...                                                         |
 * | last file                           | record, record, ... then zeros up to the end of the file    |
 *
 * A log offset (physicalOffset) is file start + position in the file. Java's msgId for a message is
 * its store host and physicalOffset in hex (`offsetMessageId`).
 *
 * Invariants:
 * - Files all have mappedFileSizeBytes and are contiguous: each starts where the previous one ends.
 * - A record never crosses a file end and always leaves room for a blank marker (8 bytes) after itself,
 *   exactly as Java's doAppend; a file the writer leaves is closed by a blank marker covering the rest.
 * - The log holds [minOffset, maxOffset); [minOffset, flushedOffset) is durable (fdatasync'd).
 * - Every byte past maxOffset is zero, in the caches and in the files, and no file starts past it.
 * - Files are flushed in order, each fdatasync'd before the next is written, so what survives a crash
 *   is a prefix of the log, possibly ending in a torn record.
 *
 * Recovery rule (`CommitLog.open`): scan from the trusted offset when the checkpoint has one (an exact
 * record boundary below which every record, its ConsumeQueue entry and its index entries were durable),
 * else from the start of the file holding the checkpoint offset (the first file without one; one file
 * earlier when that file's first record is already bad). Every record from there is checked with
 * `checkRecord` (lengths, body CRC, physical offset); nothing before it is read. The first record that
 * fails ends the log, as in Java's recoverNormally/recoverAbnormally. Then:
 * - After a crash, a failing record with nothing valid after it is a torn tail: normal, reported in
 *   `tornTail`. After a clean stop there can be no torn write, so anything but zeros there is corrupt.
 * - A failing record followed by a valid record or blank marker (searched for in the rest of the file
 *   and in later files) is corruption in the middle of the log. It is reported in `corruptions` and the
 *   log is cut at it like RocketMQ does: the corrupt record and everything after it are discarded, so
 *   a wrong body is never served. Operators see the report; nothing is silently skipped over.
 * - How far past the stop recovery reads depends on whether an OS crash can have happened since the
 *   tail was written (commit-log-recovery.ts): if not, one record's window past it tells a torn tail
 *   from damage; if so, or if anything shows up past that window, every byte past the stop is read.
 * - Cutting is durable: the rest of the end file is zeroed where it is not already zero and
 *   fdatasync'd, later files are deleted, and the directory is fsync'd. The scanned files are
 *   fdatasync'd too: a crashed process's last writes may be in the OS cache only, and recovery reports
 *   everything it keeps as flushed.
 * Recovery hands back the records at or past the checkpoint (for ConsumeQueue and index rebuilds) and
 * the queue offset table advanced past every record it scanned; records before the scan's start are not
 * read, so the caller seeds that table from its ConsumeQueues, and truncates ConsumeQueue and index
 * entries past the recovered maxOffset (a checkpoint may have run ahead of the disk). Reads and recovery
 * bound a record by the file size, not by maxMessageSizeBytes, so lowering that limit loses nothing.
 * Only the active file gets a page cache, starting at the end of its data.
 *
 * Replication (HA) reads and writes the same bytes raw: `readRaw` copies a master's bytes up to a limit
 * and within one file, `appendRaw` copies them into a slave's files byte for byte (whole records and
 * blank markers only, so every invariant above holds on the slave too), and `truncateTo` cuts a
 * returning old master durably, the way recovery cuts a torn tail.
 */

import type { StorageFs } from './storage-fs.ts';
import { assert } from '../runtime/assert.ts';
import type { AsyncWrites } from '../runtime/write-threads.ts';
import { MappedFile, PageCachePool, SCAN_CHUNK_BYTES, fileNameOf, parseFileName, syncDirectory } from './mapped-file.ts';
import { FileWindow, type ScanStop, type StopClass, classifyStop, cutAt, scanFiles } from './commit-log-recovery.ts';
import { copyBytes } from './shared-copy.ts';
import { REGION_POSITION_MAX } from './append-region.ts';
import {
  BLANK_MAGIC_CODE,
  BLANK_MARKER_BYTES,
  FIELD_INT16_MAX,
  MESSAGE_MAGIC_CODE,
  MESSAGE_MAGIC_CODE_V2,
  MessageSysFlag,
  PROPERTY_SEPARATOR,
  type RecordFault,
  type RecordInput,
  type RecordView,
  type SocketAddress,
  RECORD_MIN_BYTES,
  checkRecord,
  encodedHost,
  patchQueueOffset,
  patchWriterFields,
  readInt64,
  recordIsFor,
  storeTimestampPosition,
  writeInt32,
  storeHostEquals,
  decodeRecord,
  encodeBlank,
  encodeRecord,
  joinedMessageIds,
  offsetMessageId,
  recordSize,
} from './message-record.ts';

/** Directory of the CommitLog under storePathRootDir. */
export const COMMIT_LOG_DIR_NAME = 'commitlog';
/** RocketMQ's default file size (mappedFileSizeCommitLog). */
export const MAPPED_FILE_SIZE_COMMIT_LOG_DEFAULT_BYTES = 1024 * 1024 * 1024;
/** RocketMQ's default largest record (maxMessageSize). */
export const MAX_MESSAGE_SIZE_DEFAULT_BYTES = 4 * 1024 * 1024;
/** Files whose caches stay loaded after the writer leaves them, counting the active one. */
export const CACHED_FILES_MAX_DEFAULT = 2;
/** Default bound on the topic-queue entries of a QueueOffsetTable. */
export const QUEUE_OFFSET_TABLE_ENTRIES_MAX_DEFAULT = 1_000_000;

/** Topic of the dead records that fill an unreported append-region reservation (fillRegionHole). */
export const REGION_HOLE_TOPIC = '%';
/** Largest dead record fillRegionHole writes. */
export const REGION_HOLE_RECORD_MAX_BYTES = 1024 * 1024;

let zeros = new Uint8Array(0);

/** A zero body of `length` bytes (a view of one shared buffer: never written). */
function zeroBody(length: number): Uint8Array {
  if (zeros.length < length) zeros = new Uint8Array(length);
  return zeros.subarray(0, length);
}

/** Stable codes of CommitLogError. */
export const CommitLogErrorCode = {
  /** The record would exceed maxMessageSizeBytes (RocketMQ answers MESSAGE_ILLEGAL). */
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  /** The topic is empty, holds a NUL, or is longer than 32767 UTF-8 bytes. */
  TOPIC_INVALID: 'TOPIC_INVALID',
  /** The properties string is longer than 32767 bytes or does not end with \u0002. */
  PROPERTIES_INVALID: 'PROPERTIES_INVALID',
  /** A record encoded elsewhere is not one whole record for this log's store host. */
  RECORD_INVALID: 'RECORD_INVALID',
  /** A read outside [minOffset, maxOffset) or across a file end. */
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  /** A read asked for a record where a blank marker is. */
  NOT_A_RECORD: 'NOT_A_RECORD',
  /** A record read back failed its check. */
  RECORD_CORRUPT: 'RECORD_CORRUPT',
  /** The directory's files are not a contiguous chain of same-size files. */
  FILE_LAYOUT_INVALID: 'FILE_LAYOUT_INVALID',
  /** A QueueOffsetTable is at its entry bound. */
  QUEUE_TABLE_FULL: 'QUEUE_TABLE_FULL',
  /** Replicated bytes that do not continue the log where it ends (HA: the slave resyncs). */
  RAW_OFFSET_MISMATCH: 'RAW_OFFSET_MISMATCH',
  /** A truncation point that is not the start of a record, a blank marker, a file or the end. */
  TRUNCATE_OFFSET_INVALID: 'TRUNCATE_OFFSET_INVALID',
} as const;

/** A stable code of CommitLogError. */
export type CommitLogErrorCode = (typeof CommitLogErrorCode)[keyof typeof CommitLogErrorCode];

/** An expected failure of a CommitLog operation. I/O failures are MappedFileError (DISK_FULL, IO_ERROR). */
export class CommitLogError extends Error {
  /** Stable machine-readable code. */
  readonly code: CommitLogErrorCode;
  override readonly name = 'CommitLogError';

  constructor(code: CommitLogErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------
// Queue offsets

/** One topic-queue's next offset. */
export type QueueOffsetEntry = { readonly topic: string; readonly queueId: number; readonly nextOffset: number };

/**
 * Next ConsumeQueue offset per topic-queue (Java's topicQueueTable, keyed `topic-queueId`). The writer
 * assigns from it; recovery rebuilds it from the records it scans.
 */
type QueueOffsetSlot = { readonly topic: string; readonly queueId: number; nextOffset: number };

export class QueueOffsetTable {
  // Keyed by topic, then queue id: no key string is built per record (recovery observes millions).
  private readonly table = new Map<string, Map<number, QueueOffsetSlot>>();
  private queueCount = 0;
  private readonly entriesMax: number;

  constructor(entriesMax: number = QUEUE_OFFSET_TABLE_ENTRIES_MAX_DEFAULT) {
    assert(Number.isInteger(entriesMax) && entriesMax > 0, () => `bad entriesMax ${entriesMax}`);
    this.entriesMax = entriesMax;
  }

  /** Topic-queues known. */
  get size(): number {
    return this.queueCount;
  }

  /** The next offset of a queue; 0 for a queue never seen. */
  nextOffset(topic: string, queueId: number): number {
    return this.table.get(topic)?.get(queueId)?.nextOffset ?? 0;
  }

  /** Takes `count` offsets for a queue; returns the first. */
  assign(topic: string, queueId: number, count = 1): number {
    assert(Number.isInteger(count) && count >= 1, () => `bad count ${count}`);
    const entry = this.entry(topic, queueId);
    const first = entry.nextOffset;
    entry.nextOffset += count;
    return first;
  }

  /** Records that offsets [queueOffset, queueOffset + count) are taken; the next offset never goes back. */
  observe(topic: string, queueId: number, queueOffset: number, count = 1): void {
    assert(Number.isSafeInteger(queueOffset) && queueOffset >= 0 && count >= 0, 'bad observed offset');
    const entry = this.entry(topic, queueId);
    entry.nextOffset = Math.max(entry.nextOffset, queueOffset + count);
  }

  /** Sets a queue's next offset (after a ConsumeQueue truncation, or to seed it). */
  set(topic: string, queueId: number, nextOffset: number): void {
    assert(Number.isSafeInteger(nextOffset) && nextOffset >= 0, () => `bad next offset ${nextOffset}`);
    this.entry(topic, queueId).nextOffset = nextOffset;
  }

  /** Forgets a queue (topic deleted). */
  remove(topic: string, queueId: number): void {
    const queues = this.table.get(topic);
    if (queues?.delete(queueId) === true) this.queueCount--;
    if (queues?.size === 0) this.table.delete(topic);
  }

  /** Every queue and its next offset. */
  *entries(): IterableIterator<QueueOffsetEntry> {
    for (const queues of this.table.values()) for (const entry of queues.values()) yield { ...entry };
  }

  private entry(topic: string, queueId: number): QueueOffsetSlot {
    let queues = this.table.get(topic);
    let entry = queues?.get(queueId);
    if (entry !== undefined) return entry;
    if (this.queueCount >= this.entriesMax) {
      throw new CommitLogError('QUEUE_TABLE_FULL', `queue offset table holds ${this.entriesMax} queues`);
    }
    if (queues === undefined) {
      queues = new Map();
      this.table.set(topic, queues);
    }
    entry = { topic, queueId, nextOffset: 0 };
    queues.set(queueId, entry);
    this.queueCount++;
    return entry;
  }
}

/**
 * ConsumeQueue offsets a stored record takes: none for transaction half and rollback records (Java
 * stores them with queueOffset 0 outside any queue), INNER_NUM for an inner batch, else one.
 */
export function queueOffsetsTaken(record: RecordView): number {
  const sysFlag = record.sysFlag;
  const transaction = sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
  if (
    transaction === MessageSysFlag.TRANSACTION_PREPARED_TYPE ||
    transaction === MessageSysFlag.TRANSACTION_ROLLBACK_TYPE
  ) {
    return 0;
  }
  if ((sysFlag & MessageSysFlag.INNER_BATCH_FLAG) === 0) return 1;
  const innerNum = Number(record.propertiesMap().get('INNER_NUM'));
  return Number.isInteger(innerNum) && innerNum >= 1 ? innerNum : 1;
}

// ---------------------------------------------------------------------------------------------------
// Options and results

/** How a CommitLog is laid out and what it uses. */
export type CommitLogOptions = {
  /** The commitlog directory (`<storePathRootDir>/commitlog`). */
  readonly dir: string;
  /** This broker's address, written into every record and msgId. */
  readonly storeHost: SocketAddress;
  /** File system seam. */
  readonly fs: StorageFs;
  /** Size of each file (mappedFileSizeCommitLog); default 1 GiB. */
  readonly mappedFileSizeBytes?: number;
  /** Largest record (maxMessageSize); default 4 MiB. */
  readonly maxMessageSizeBytes?: number;
  /** Files whose caches stay loaded, the active one included; default 2. */
  readonly cachedFilesMax?: number;
  /** Source of store timestamps; default the system clock. */
  readonly clock?: { nowMs(): number };
  /**
   * Dirty ranges from this many bytes on are written with O_DIRECT (mapped-file.ts); default
   * DIRECT_WRITE_MIN_BYTES_DEFAULT; null writes everything through the OS page cache.
   */
  readonly directWriteMinBytes?: number | null;
  /**
   * Write threads for `startWrites` (at most ASYNC_WRITES_MAX writes running at once); none: every write
   * is inline, in `flush`.
   */
  readonly asyncWrites?: AsyncWrites;
};

/** Longest write `startWrites` hands to one write thread. */
export const ASYNC_WRITE_MAX_BYTES = 4 << 20;
/**
 * Shortest write `startWrites` starts while another one runs: under load the bytes that arrive during a
 * write go out together in the next one, rather than in many small writes and as many wake-ups.
 */
export const ASYNC_WRITE_QUEUED_MIN_BYTES = 1 << 20;
/**
 * Most writes `startWrites` keeps running. A process killed while they run can leave the bytes of a
 * later one on disk but not those of an earlier one; all of them lie within ASYNC_WRITES_MAX *
 * ASYNC_WRITE_MAX_BYTES of the first, inside the guard chunk recovery reads past a torn tail
 * (commit-log-recovery.ts), so such bytes send recovery to its full check rather than go unseen.
 */
export const ASYNC_WRITES_MAX = 2;

/** How to recover when opening. */
export type RecoveryOptions = {
  /** True when the last run stopped cleanly (no `abort` file). */
  readonly cleanShutdown: boolean;
  /** Offset up to which ConsumeQueue and index are known durable; records from here are handed back. */
  readonly checkpointPhysicalOffset?: number;
  /**
   * The checkpoint's exact trusted offset (a record boundary, or the end of the log): the scan starts
   * there, reads nothing before it and verifies everything from it (CRC included); records from it are
   * handed back. Takes precedence over checkpointPhysicalOffset and trustedBeforeTimestampMs; ignored
   * when it lies outside the files.
   */
  readonly trustedPhysicalOffset?: number;
  /**
   * Whether an OS crash or power loss can have happened since the log's tail was written (default
   * true). False (a clean stop, or the same boot as the checkpoint) lets recovery read only one
   * record's window past the end instead of every byte after it; see commit-log-recovery.ts.
   */
  readonly osCrashPossible?: boolean;
  /** Table to advance (seeded from the ConsumeQueues); a fresh one when absent. */
  readonly queueOffsets?: QueueOffsetTable;
  /**
   * The checkpoint's time, less its margin: the leading records of the scan's first file stored before
   * it were flushed with their ConsumeQueue and index entries, so the scan checks only their structure
   * (size, magic, lengths; no CRC) and does not hand them back, up to the first record at or after it.
   * From there on every record is verified in full. Absent: verify everything from the file's start.
   */
  readonly trustedBeforeTimestampMs?: number;
  /** Called for each record at or past the checkpoint, instead of collecting them in `records`. */
  readonly onRecord?: (record: RecordView) => void;
};

/** A place where recovery found damage it did not expect. */
export type RecoveryCorruption = {
  /** Offset of the bad record; the log was cut here. */
  readonly physicalOffset: number;
  /** What was wrong with it. */
  readonly reason: RecordFault;
  /** Offset of the first valid record or blank found after it, null if none. */
  readonly validDataAtOffset: number | null;
};

/** What recovery found and did. */
export type RecoveryResult = {
  /** Start of the file where the scan started. */
  readonly scanStartOffset: number;
  /** Offset where the scan started: the trusted offset, or scanStartOffset. */
  readonly scanFromOffset: number;
  /** Whether one record's window past the end was enough ('window') or every byte after it was read. */
  readonly tailCheck: 'window' | 'full';
  /** End of the log after recovery. */
  readonly maxOffset: number;
  /** Records scanned, before and past the checkpoint. */
  readonly recordsScanned: number;
  /**
   * Records at or past the checkpoint, in log order, unless `onRecord` was given. Views keep their
   * files' caches alive: pass `onRecord` for large logs.
   */
  readonly records: RecordView[];
  /** The queue offset table advanced past every scanned record. */
  readonly queueOffsets: QueueOffsetTable;
  /** A torn record cut off the end after a crash, if any. */
  readonly tornTail: { readonly physicalOffset: number; readonly reason: RecordFault } | null;
  /** Damage that is not a torn tail; the log was cut at the first one. */
  readonly corruptions: readonly RecoveryCorruption[];
  /** Files deleted because they lay past the end. */
  readonly filesDeleted: number;
};

/** The message fields the caller supplies; the log adds the offset, store time and store host. */
export type AppendInput = Omit<RecordInput, 'physicalOffset' | 'storeTimestampMs' | 'storeHost'>;

/** Where an appended message went. */
export type AppendResult = {
  /** Offset of the record in the log. */
  readonly physicalOffset: number;
  /** Bytes of the record. */
  readonly size: number;
  /** Store timestamp written into the record. */
  readonly storeTimestampMs: number;
  /** RocketMQ's offset message id. */
  readonly msgId: string;
};

/**
 * A file's cache for another thread. Valid until the file is released: the buffer is then recycled for
 * another file (see mapped-file.ts).
 */
export type SharedFileBuffer = {
  /** Log offset of the file's first byte. */
  readonly startOffset: number;
  /** The file's cache; byte byteOffset + i is log offset startOffset + i. */
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  /** Bytes [cachedFrom, wrotePosition) are the file's; below cachedFrom the buffer does not hold them. */
  readonly cachedFrom: number;
  /** Bytes appended when this was taken; they never change afterwards. */
  readonly wrotePosition: number;
};

type Resolved = {
  readonly dir: string;
  readonly storeHost: SocketAddress;
  readonly fs: StorageFs;
  readonly fileSizeBytes: number;
  readonly maxMessageSizeBytes: number;
  readonly cachedFilesMax: number;
  readonly nowMs: () => number;
  /** Page-cache buffers, recycled across files (one spare beyond the cached files). */
  readonly pool: PageCachePool;
};

function resolve(options: CommitLogOptions): Resolved {
  const fileSizeBytes = options.mappedFileSizeBytes ?? MAPPED_FILE_SIZE_COMMIT_LOG_DEFAULT_BYTES;
  const maxMessageSizeBytes = options.maxMessageSizeBytes ?? MAX_MESSAGE_SIZE_DEFAULT_BYTES;
  const cachedFilesMax = options.cachedFilesMax ?? CACHED_FILES_MAX_DEFAULT;
  assert(Number.isInteger(maxMessageSizeBytes) && maxMessageSizeBytes > 0, 'bad maxMessageSizeBytes');
  // The largest record plus the blank marker it must leave has to fit in an empty file.
  assert(maxMessageSizeBytes + BLANK_MARKER_BYTES <= fileSizeBytes, 'mappedFileSizeBytes too small');
  assert(Number.isInteger(cachedFilesMax) && cachedFilesMax >= 1, 'bad cachedFilesMax');
  const clock = options.clock;
  return {
    dir: options.dir,
    storeHost: options.storeHost,
    fs: options.fs,
    fileSizeBytes,
    maxMessageSizeBytes,
    cachedFilesMax,
    nowMs: clock ? () => clock.nowMs() : () => Date.now(),
    pool: new PageCachePool(
      fileSizeBytes,
      1,
      options.directWriteMinBytes === null
        ? undefined
        : { fs: options.fs, io: { probeDir: options.dir, minBytes: options.directWriteMinBytes, writes: options.asyncWrites } },
    ),
  };
}

// ---------------------------------------------------------------------------------------------------
// The log

/** The CommitLog of one broker; used by one writer thread. */
export class CommitLog {
  private readonly config: Resolved;
  private readonly files: MappedFile[];
  /** The msgIds' store-host part, as ASCII hex. */
  private readonly msgIdPrefixBytes: Uint8Array;
  /** The store host as records carry it, to check records encoded elsewhere. */
  private readonly storeHostBytes: Uint8Array;
  private flushedOffsetValue: number;
  /** Records below this offset were checked just before their write (`verifyAppended`); a record boundary. */
  private verifiedOffsetValue: number;
  /** Files a write thread wrote to since their last fdatasync, oldest first. */
  private readonly writtenFiles = new Set<MappedFile>();

  private constructor(config: Resolved, files: MappedFile[], endOffset: number) {
    this.config = config;
    this.files = files;
    this.flushedOffsetValue = endOffset;
    this.verifiedOffsetValue = endOffset;
    this.msgIdPrefixBytes = Buffer.from(offsetMessageId(config.storeHost, 0).slice(0, -16), 'latin1');
    this.storeHostBytes = encodedHost(config.storeHost);
    assert(this.maxOffset === endOffset, 'recovered end differs from the last file');
  }

  /** Opens the log in `options.dir`, recovering it as `recovery` says. */
  static open(
    options: CommitLogOptions,
    recovery: RecoveryOptions,
  ): { commitLog: CommitLog; recovery: RecoveryResult } {
    const config = resolve(options);
    config.fs.mkdirSync(config.dir, { recursive: true });
    const files = listFiles(config);
    const result = recover(config, files, recovery);
    return { commitLog: new CommitLog(config, files, result.maxOffset), recovery: result };
  }

  /** Offset of the first byte still on disk. */
  get minOffset(): number {
    return this.files[0]?.startOffset ?? this.flushedOffsetValue;
  }

  /** Offset just past the last appended byte. */
  get maxOffset(): number {
    const last = this.files.at(-1);
    return last === undefined ? this.flushedOffsetValue : last.startOffset + last.wrotePosition;
  }

  /** Offset up to which the log is durable. */
  get flushedOffset(): number {
    return this.flushedOffsetValue;
  }

  /** Largest record (or RocketMQ batch) an append takes. */
  get maxRecordBytes(): number {
    return this.config.maxMessageSizeBytes;
  }

  /** Size of each file. */
  get mappedFileSizeBytes(): number {
    return this.config.fileSizeBytes;
  }

  /** Appends one record to the cache of the active file, rolling to a new file when it does not fit. */
  append(input: AppendInput): AppendResult {
    const topicBytes = Buffer.byteLength(input.topic, 'utf8');
    if (topicBytes === 0 || topicBytes > FIELD_INT16_MAX || input.topic.includes('\u0000')) {
      throw new CommitLogError('TOPIC_INVALID', `topic of ${topicBytes} bytes cannot be stored`);
    }
    const propertiesBytes = Buffer.byteLength(input.properties, 'utf8');
    if (propertiesBytes > FIELD_INT16_MAX || (propertiesBytes > 0 && !input.properties.endsWith(PROPERTY_SEPARATOR))) {
      throw new CommitLogError('PROPERTIES_INVALID', `properties of ${propertiesBytes} bytes cannot be stored`);
    }
    const record: { -readonly [K in keyof RecordInput]: RecordInput[K] } = {
      ...input,
      physicalOffset: 0,
      storeTimestampMs: this.config.nowMs(),
      storeHost: this.config.storeHost,
    };
    const size = recordSize(record);
    if (size > this.config.maxMessageSizeBytes) {
      const limit = this.config.maxMessageSizeBytes;
      throw new CommitLogError('MESSAGE_TOO_LARGE', `record of ${size} bytes exceeds ${limit}`);
    }
    const file = this.fileWithRoomFor(size);
    const position = file.wrotePosition;
    record.physicalOffset = file.startOffset + position;
    const written = encodeRecord(file.bytes(), position, record);
    assert(written === size, 'record size changed while encoding');
    file.advance(size);
    const physicalOffset = record.physicalOffset;
    return { physicalOffset, size, storeTimestampMs: record.storeTimestampMs, msgId: this.msgIdOf(physicalOffset) };
  }

  /**
   * Appends a record that `encodeRecord` built elsewhere (a send thread), for this log's store host, with
   * zeros where the writer's fields go: checks its structure, copies it into the active file, then
   * patches queue offset, physical offset and store time in place (the CRC does not cover them).
   */
  appendEncoded(record: Uint8Array, queueOffset: number): AppendResult {
    const size = record.length;
    if (size > this.config.maxMessageSizeBytes) {
      throw new CommitLogError('MESSAGE_TOO_LARGE', `record of ${size} bytes exceeds ${this.config.maxMessageSizeBytes}`);
    }
    if (this.checkEncoded(record, 0, size) !== size) {
      throw new CommitLogError('RECORD_INVALID', `pre-encoded record of ${size} bytes holds more than one record`);
    }
    const file = this.fileWithRoomFor(size);
    const position = file.wrotePosition;
    const physicalOffset = file.startOffset + position;
    const storeTimestampMs = this.config.nowMs();
    const bytes = file.bytes();
    copyBytes(bytes, record, position);
    patchWriterFields(bytes, position, queueOffset, physicalOffset, storeTimestampMs);
    checkPatched(bytes, position, size, physicalOffset);
    file.advance(size);
    return { physicalOffset, size, storeTimestampMs, msgId: this.msgIdOf(physicalOffset) };
  }

  /**
   * Appends a RocketMQ batch (MessageExtBatch): `count` records for `topic`/`queueId` that encodeRecord
   * built back to back elsewhere, as appendEncoded's records. All go into one file with one copy (a
   * batch never straddles files, as in Java's doAppend for batches), record i taking queue offset
   * `firstQueueOffset + i` (or 0, for all, when `firstQueueOffset` is null) and one store time.
   * Returns the first record's offset and every record's size.
   */
  appendEncodedBatch(
    records: Uint8Array,
    count: number,
    topic: Uint8Array,
    queueId: number,
    firstQueueOffset: number | null,
  ): { physicalOffset: number; sizes: number[]; storeTimestampMs: number } {
    const total = records.length;
    if (total > this.config.maxMessageSizeBytes) {
      throw new CommitLogError('MESSAGE_TOO_LARGE', `batch of ${total} bytes exceeds ${this.config.maxMessageSizeBytes}`);
    }
    const sizes = this.checkBatch(records, 0, total, count, topic, queueId);
    const file = this.fileWithRoomFor(total);
    const position = file.wrotePosition;
    const physicalOffset = file.startOffset + position;
    const storeTimestampMs = this.config.nowMs();
    const bytes = file.bytes();
    copyBytes(bytes, records, position);
    for (let index = 0, at = position; index < count; at += sizes[index]!, index++) {
      patchWriterFields(bytes, at, firstQueueOffset === null ? 0 : firstQueueOffset + index, file.startOffset + at, storeTimestampMs);
      checkPatched(bytes, at, sizes[index]!, file.startOffset + at);
    }
    file.advance(total);
    return { physicalOffset, sizes, storeTimestampMs };
  }

  /**
   * The active file, for an append region (append-region.ts): its cache, where the data ends, and the
   * position reservations must stay within (a blank marker still fits after them); the first file is
   * created when there is none. Null when the file is full or too large for a region.
   */
  regionFile(): { readonly cache: SharedArrayBuffer; readonly cacheOffset: number; readonly fileStartOffset: number; readonly position: number; readonly limit: number } | null {
    // An empty log gets its first file now, as its first append would create it.
    const file = this.files.at(-1) ?? this.createFile(this.flushedOffsetValue);
    if (file.sizeBytes - BLANK_MARKER_BYTES > REGION_POSITION_MAX) return null;
    const limit = file.sizeBytes - BLANK_MARKER_BYTES;
    if (file.wrotePosition >= limit) return null;
    file.bytes(); // loads the cache if it was released
    const shared = file.sharedBuffer();
    assert(shared !== null, 'the active file has a cache');
    return { cache: shared.buffer, cacheOffset: shared.byteOffset, fileStartOffset: file.startOffset, position: file.wrotePosition, limit };
  }

  /**
   * Takes a batch a send thread copied into the active file's cache at its end (an append region's
   * reservation, physical offsets and store time filled in): checks it as appendEncodedBatch checks a
   * batch, gives record i queue offset `firstQueueOffset + i`, and makes it part of the log. The bytes
   * are already where they belong, so a batch that does not check cannot be refused: the log could not
   * go on past it. That is a fault of this process (the send thread's encoding), so it fails here.
   */
  takeRegionBatch(
    physicalOffset: number,
    total: number,
    count: number,
    topic: Uint8Array,
    queueId: number,
    firstQueueOffset: number,
  ): { physicalOffset: number; sizes: number[]; storeTimestampMs: number; records: Uint8Array } {
    assert(total <= this.config.maxMessageSizeBytes, () => `region batch of ${total} bytes`);
    const file = this.regionRangeFile(physicalOffset, total);
    const bytes = file.bytes();
    const position = file.wrotePosition;
    const sizes = this.checkBatch(bytes, position, position + total, count, topic, queueId);
    const storeTimestampMs = readInt64(bytes, storeTimestampPosition(bytes, position));
    for (let index = 0, at = position; index < count; at += sizes[index]!, index++) {
      const recordOffset = file.startOffset + at;
      assert(readInt64(bytes, at + 28) === recordOffset, () => `region record ${index} claims another physical offset`);
      patchQueueOffset(bytes, at, firstQueueOffset + index);
      checkPatched(bytes, at, sizes[index]!, recordOffset);
    }
    file.advance(total);
    return { physicalOffset, sizes, storeTimestampMs, records: bytes.subarray(position, position + total) };
  }

  /**
   * Takes a region batch that the store refuses (see takeRegionBatch: its bytes cannot be taken back)
   * as dead records: each becomes a transaction rollback record, which takes no queue offset and which
   * no consumer reads, as RocketMQ stores rollback records outside every queue. The body CRC does not
   * cover sysFlag, so the records stay whole. Returns their sizes.
   */
  voidRegionBatch(physicalOffset: number, total: number, count: number, topic: Uint8Array, queueId: number): number[] {
    const file = this.regionRangeFile(physicalOffset, total);
    const bytes = file.bytes();
    const position = file.wrotePosition;
    const sizes = this.checkBatch(bytes, position, position + total, count, topic, queueId);
    for (let index = 0, at = position; index < count; at += sizes[index]!, index++) {
      writeInt32(bytes, at + 36, int32At(bytes, at + 36) | MessageSysFlag.TRANSACTION_ROLLBACK_TYPE);
      checkPatched(bytes, at, sizes[index]!, file.startOffset + at);
    }
    file.advance(total);
    return sizes;
  }

  /**
   * Fills [physicalOffset, physicalOffset + total) at the log's end, a range reserved in an append region
   * whose batch was never reported, with dead records: transaction rollback records (no queue offset,
   * no index) of the one-character topic REGION_HOLE_TOPIC with zero bodies, each at most
   * REGION_HOLE_RECORD_MAX_BYTES (and the largest record this log takes) and at least RECORD_MIN_BYTES (no reservation is smaller: it holds at
   * least one record). Returns their sizes.
   */
  fillRegionHole(physicalOffset: number, total: number): number[] {
    assert(total >= RECORD_MIN_BYTES, () => `region hole of ${total} bytes`);
    const file = this.regionRangeFile(physicalOffset, total);
    const bytes = file.bytes();
    const sizes: number[] = [];
    const host = { address: '127.0.0.1', port: 0 };
    const pieceMax = Math.min(REGION_HOLE_RECORD_MAX_BYTES, this.config.maxMessageSizeBytes);
    assert(pieceMax >= 2 * RECORD_MIN_BYTES, () => `records of ${pieceMax} bytes cannot fill a hole`);
    // Bounded by total / (pieceMax - RECORD_MIN_BYTES) + 1 pieces; every piece and every rest is at least RECORD_MIN_BYTES.
    for (let left = total; left > 0; ) {
      const size = left <= pieceMax ? left : Math.min(pieceMax, left - RECORD_MIN_BYTES);
      const at = file.wrotePosition;
      const written = encodeRecord(bytes, at, {
        topic: REGION_HOLE_TOPIC,
        queueId: 0,
        flag: 0,
        queueOffset: 0,
        physicalOffset: file.startOffset + at,
        sysFlag: MessageSysFlag.TRANSACTION_ROLLBACK_TYPE,
        bornTimestampMs: 0,
        bornHost: host,
        storeTimestampMs: this.config.nowMs(),
        storeHost: host,
        reconsumeTimes: 0,
        preparedTransactionOffset: 0,
        body: zeroBody(size - RECORD_MIN_BYTES),
        properties: '',
      });
      assert(written === size, () => `hole record of ${written} bytes, not ${size}`);
      file.advance(size);
      sizes.push(size);
      left -= size;
    }
    return sizes;
  }

  /** The active file, when [physicalOffset, physicalOffset + total) starts at the log's end and fits it with a blank marker after. */
  private regionRangeFile(physicalOffset: number, total: number): MappedFile {
    const file = this.files.at(-1);
    assert(file !== undefined && physicalOffset === file.startOffset + file.wrotePosition, () => `region range at ${physicalOffset} is not at the log end`);
    assert(file.wrotePosition + total + BLANK_MARKER_BYTES <= file.sizeBytes, () => `region range of ${total} bytes does not fit the file`);
    return file;
  }

  /**
   * Checks `count` records encoded elsewhere, back to back in [at, end) of `bytes`: each one whole, for
   * this store host, `topic` and `queueId`, and taking a queue offset (no transaction half or rollback,
   * no inner batch). Returns their sizes.
   */
  private checkBatch(bytes: Uint8Array, start: number, end: number, count: number, topic: Uint8Array, queueId: number): number[] {
    const sizes: number[] = [];
    // Bounded by `count`: each pass checks one record and moves past it.
    for (let at = start; sizes.length < count; ) {
      const size = this.checkEncoded(bytes, at, end);
      if (!recordIsFor(bytes, at, topic, queueId)) {
        throw new CommitLogError('RECORD_INVALID', `record ${sizes.length} of the batch is not for queue ${queueId} of its topic`);
      }
      const sysFlag = int32At(bytes, at + 36);
      const transaction = sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
      if (transaction === MessageSysFlag.TRANSACTION_PREPARED_TYPE || transaction === MessageSysFlag.TRANSACTION_ROLLBACK_TYPE ||
        (sysFlag & MessageSysFlag.INNER_BATCH_FLAG) !== 0) {
        throw new CommitLogError('RECORD_INVALID', `record ${sizes.length} of the batch takes no queue offset (sysFlag ${sysFlag})`);
      }
      sizes.push(size);
      at += size;
      if (sizes.length === count && at !== end) throw new CommitLogError('RECORD_INVALID', `batch holds more than ${count} records`);
    }
    return sizes;
  }

  /** RocketMQ's offset message id of the record at `physicalOffset` in this log. */
  msgIdOf(physicalOffset: number): string {
    return joinedMessageIds(this.msgIdPrefixBytes, physicalOffset, 1, () => 0);
  }

  /**
   * The msgIds of records of `sizes` bytes back to back from `physicalOffset`, joined by commas as a
   * batch's answer carries them: the same as joining msgIdOf's (see joinedMessageIds).
   */
  msgIdsOf(physicalOffset: number, sizes: readonly number[]): string {
    return joinedMessageIds(this.msgIdPrefixBytes, physicalOffset, sizes.length, (index) => sizes[index]!);
  }

  /** Checks the structure and store host of a record encoded elsewhere at `offset` of `bytes`; returns its size. */
  private checkEncoded(bytes: Uint8Array, offset: number, limit: number): number {
    const shape = checkRecord(bytes, offset, limit, { verifyBodyCrc: false });
    if (shape.kind !== 'record') {
      throw new CommitLogError('RECORD_INVALID', `pre-encoded record is not one whole record: ${JSON.stringify(shape)}`);
    }
    if (!storeHostEquals(bytes, offset, this.storeHostBytes)) {
      throw new CommitLogError('RECORD_INVALID', `pre-encoded record names another store host than ${this.config.storeHost.address}:${this.config.storeHost.port}`);
    }
    return shape.size;
  }

  /**
   * Replication, master side: a copy of up to `maxBytes` raw log bytes from `fromOffset`, never past
   * `limitOffset` (what the caller lets replication see) nor across a file end. Empty at the limit.
   */
  readRaw(fromOffset: number, maxBytes: number, limitOffset: number): Uint8Array {
    assert(Number.isSafeInteger(maxBytes) && maxBytes > 0, () => `bad maxBytes ${maxBytes}`);
    assert(limitOffset <= this.maxOffset, 'replication limit past the log end');
    if (!Number.isSafeInteger(fromOffset) || fromOffset < this.minOffset || fromOffset > limitOffset) {
      throw new CommitLogError('OFFSET_OUT_OF_RANGE', `raw read at ${fromOffset} is outside [${this.minOffset}, ${limitOffset}]`);
    }
    if (fromOffset === limitOffset) return new Uint8Array(0);
    const file = this.fileAt(fromOffset);
    const length = Math.min(maxBytes, limitOffset - fromOffset, file.endOffset - fromOffset);
    // A copy: the reply may outlive a later truncation that rewrites the cache.
    return Uint8Array.from(file.read(fromOffset - file.startOffset, length));
  }

  /**
   * Replication, slave side: copies bytes the master's log holds at [fromOffset, fromOffset + length)
   * byte for byte, rolling files where the master's files end. `fromOffset` must be the log's end (or,
   * for an empty log, a file start: a slave may begin at the master's oldest file). The caller passes
   * whole records and blank markers only (MessageStore.appendRaw checks them); the flush re-checks.
   */
  appendRaw(fromOffset: number, bytes: Uint8Array): void {
    const empty = this.files.length === 0;
    if (empty && Number.isSafeInteger(fromOffset) && fromOffset >= 0 && fromOffset % this.config.fileSizeBytes === 0) {
      this.flushedOffsetValue = fromOffset;
      this.verifiedOffsetValue = fromOffset;
    }
    if (fromOffset !== this.maxOffset) {
      throw new CommitLogError('RAW_OFFSET_MISMATCH', `replicated bytes at ${fromOffset} do not continue the log at ${this.maxOffset}`);
    }
    let done = 0;
    // Each pass fills the active file or copies the rest: bounded by bytes / fileSize + 1 passes.
    while (done < bytes.length) {
      let file = this.files.at(-1);
      if (file === undefined || file.wrotePosition === file.sizeBytes) file = this.createFile(this.maxOffset);
      const length = Math.min(bytes.length - done, file.sizeBytes - file.wrotePosition);
      copyBytes(file.bytes(), bytes.subarray(done, done + length), file.wrotePosition);
      file.advance(length);
      done += length;
    }
    assert(this.maxOffset === fromOffset + bytes.length, 'raw append moved the end by its length');
  }

  /**
   * Cuts the log durably at `offset` (a record or blank start, a file start, or the end): flushes,
   * zeroes and fdatasyncs the rest of its file and deletes later files, as recovery cuts a torn tail.
   * For a returning old master whose tail the new master never had.
   */
  truncateTo(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < this.minOffset || offset > this.maxOffset) {
      throw new CommitLogError('TRUNCATE_OFFSET_INVALID', `offset ${offset} is outside [${this.minOffset}, ${this.maxOffset}]`);
    }
    if (offset === this.maxOffset) return;
    if (offset % this.config.fileSizeBytes !== 0 && !this.isBlankAt(offset)) {
      try {
        this.readRecordAt(offset);
      } catch (error) {
        if (!(error instanceof CommitLogError)) throw error;
        throw new CommitLogError('TRUNCATE_OFFSET_INVALID', `offset ${offset} is not a record boundary: ${error.message}`);
      }
    }
    this.flush();
    const index = Math.floor((offset - this.minOffset) / this.config.fileSizeBytes);
    const file = this.files[index]!;
    if (file.loaded) file.release();
    file.truncateTo(offset - file.startOffset);
    const later = this.files.splice(index + 1);
    for (const dropped of later) dropped.destroy();
    if (later.length > 0) syncDirectory(this.config.fs, this.config.dir);
    file.cacheFromEnd();
    this.flushedOffsetValue = offset;
    this.verifiedOffsetValue = offset;
    assert(this.maxOffset === offset && this.files.at(-1) === file, 'truncation left the wrong end');
  }

  private isBlankAt(offset: number): boolean {
    const file = this.fileAt(offset);
    const position = offset - file.startOffset;
    if (file.wrotePosition - position < BLANK_MARKER_BYTES) return false;
    const header = file.read(position, BLANK_MARKER_BYTES);
    return int32At(header, 4) === BLANK_MAGIC_CODE && int32At(header, 0) === file.sizeBytes - position;
  }

  /**
   * Writes and fdatasyncs every file with dirty bytes, oldest first, once the writes running on write
   * threads ended (their files are fdatasync'd too); returns the new flushedOffset.
   */
  flush(): number {
    this.drainWrites();
    for (const file of this.writtenFiles) file.sync();
    this.writtenFiles.clear();
    if (this.flushedOffsetValue === this.maxOffset) return this.flushedOffsetValue;
    this.verifyAppended();
    // Files before the one holding flushedOffset are clean; flushedOffset may sit at a file's very end.
    for (let index = this.firstUnwrittenIndex(); index < this.files.length; index++) {
      const file = this.files[index]!;
      if (file.wrotePosition > file.flushedPosition) file.flush();
    }
    this.advanceFlushedOffset();
    return this.flushedOffsetValue;
  }

  /**
   * ASYNC_FLUSH's write: starts direct writes of appended whole blocks on the write threads, oldest
   * first, as long as threads are free (MappedFile.startWrite: small ranges and the partial last block
   * are left for `flush`); true when writes are running. Their bytes count in flushedOffset once
   * `reapWrites` saw them end, and need an fdatasync then (`takeWrittenPaths`).
   */
  startWrites(): boolean {
    this.reapWrites();
    if (this.config.pool.asyncWrites === undefined) return false;
    this.verifyAppended();
    for (let index = this.firstUnwrittenIndex(); index < this.files.length; index++) {
      const file = this.files[index]!;
      // Bounded by ASYNC_WRITES_MAX starts over all files.
      while (this.runningWrites() < ASYNC_WRITES_MAX && file.startWrite(this.runningWrites() === 0 ? 0 : ASYNC_WRITE_QUEUED_MIN_BYTES, ASYNC_WRITE_MAX_BYTES)) {
        // Started: loop for the next range, if a thread is left.
      }
      // Writes stay in log order: a file whose bytes are not all started holds back the later files.
      if (file.issuedPosition < file.wrotePosition) break;
    }
    return this.writing;
  }

  /** Whether writes started by `startWrites` are running. */
  get writing(): boolean {
    return this.files.some((file) => file.writing);
  }

  /** Takes the outcomes of ended writes (MappedFile.reap) and moves flushedOffset over what they wrote. */
  reapWrites(): void {
    this.collectWrites(false);
  }

  /** Waits for every running write to end, then as `reapWrites`. */
  drainWrites(): void {
    this.collectWrites(true);
  }

  /** The paths of the files write threads wrote to since the last call (or `flush`): the caller fdatasyncs them. */
  takeWrittenPaths(): string[] {
    const paths = [...this.writtenFiles].map((file) => file.path);
    this.writtenFiles.clear();
    return paths;
  }

  private collectWrites(wait: boolean): void {
    for (const file of this.files) {
      if (file.writing && wait) file.drain();
      else if (file.writing) file.reap();
      if (file.takeWritten()) this.writtenFiles.add(file);
    }
    this.advanceFlushedOffset();
  }

  private runningWrites(): number {
    let count = 0;
    for (const file of this.files) count += file.writesRunning;
    return count;
  }

  /** Index of the file holding flushedOffset (the last one when flushedOffset is the log's end). */
  private firstUnwrittenIndex(): number {
    const index = Math.floor((this.flushedOffsetValue - this.minOffset) / this.config.fileSizeBytes);
    return Math.max(0, Math.min(index, this.files.length - 1));
  }

  /** flushedOffset: the end of the written prefix of the log, over the files in order. */
  private advanceFlushedOffset(): void {
    // Bounded by the number of files.
    for (let index = this.firstUnwrittenIndex(); index < this.files.length; index++) {
      const file = this.files[index]!;
      const end = file.startOffset + file.flushedPosition;
      assert(end >= this.flushedOffsetValue, 'flushedOffset went back');
      this.flushedOffsetValue = end;
      if (file.flushedPosition < file.sizeBytes) break;
    }
  }

  /** Checks the records appended since the last check, just before they are written (verifyDirtyRange). */
  private verifyAppended(): void {
    const end = this.maxOffset;
    // Each pass covers the rest of one file.
    for (let offset = this.verifiedOffsetValue; offset < end; ) {
      const file = this.fileAt(offset);
      verifyDirtyRange(file, offset - file.startOffset, this.config.maxMessageSizeBytes);
      offset = file.startOffset + file.wrotePosition;
    }
    this.verifiedOffsetValue = end;
  }

  /** Bytes [physicalOffset, physicalOffset + sizeBytes) of one file: a view of the cache when loaded. */
  read(physicalOffset: number, sizeBytes: number): Uint8Array {
    const file = this.fileAt(physicalOffset);
    const position = physicalOffset - file.startOffset;
    if (!Number.isInteger(sizeBytes) || sizeBytes < 0 || position + sizeBytes > file.wrotePosition) {
      throw new CommitLogError('OFFSET_OUT_OF_RANGE', `read of ${sizeBytes} bytes at ${physicalOffset} leaves the log`);
    }
    return file.read(position, sizeBytes);
  }

  /** Reads, checks (CRC included) and decodes the record at `physicalOffset`. */
  readRecordAt(physicalOffset: number): RecordView {
    const file = this.fileAt(physicalOffset);
    const position = physicalOffset - file.startOffset;
    const available = file.wrotePosition - position;
    let bytes: Uint8Array;
    let at: number;
    let limit: number;
    if (file.cacheHolds(position, Math.min(BLANK_MARKER_BYTES, available))) {
      [bytes, at, limit] = [file.bytes(), position, file.wrotePosition];
    } else {
      // Read the header first, then exactly the bytes it claims (bounded by the largest record).
      const header = Buffer.from(file.read(position, Math.min(BLANK_MARKER_BYTES, available)));
      if (header.length === BLANK_MARKER_BYTES && header.readInt32BE(4) === BLANK_MAGIC_CODE) {
        throw new CommitLogError('NOT_A_RECORD', `blank marker at ${physicalOffset}`);
      }
      const claimed = header.length >= 4 ? header.readInt32BE(0) : 0;
      const length = Math.min(available, Math.max(claimed, header.length));
      [bytes, at, limit] = [file.read(position, length), 0, length];
    }
    // Records are bounded by the file, not by maxMessageSizeBytes: that limit may have been lowered
    // since they were written, and it must not make them unreadable.
    const check = checkRecord(bytes, at, limit, {
      expectedPhysicalOffset: physicalOffset,
      maxSizeBytes: file.sizeBytes - BLANK_MARKER_BYTES,
    });
    if (check.kind === 'blank') throw new CommitLogError('NOT_A_RECORD', `blank marker at ${physicalOffset}`);
    if (check.kind !== 'record') {
      throw new CommitLogError('RECORD_CORRUPT', `record at ${physicalOffset} is ${check.kind}: ${check.reason}`);
    }
    return decodeRecord(bytes, at);
  }

  /** Deletes whole files that end at or before `offset` and are flushed; never the active file. */
  deleteFilesBefore(offset: number): number {
    let deleted = 0;
    // Bounded by the number of files; the last file always stays.
    while (this.files.length > 1) {
      const file = this.files[0]!;
      if (file.endOffset > offset || file.endOffset > this.flushedOffsetValue) break;
      file.destroy();
      this.writtenFiles.delete(file);
      this.files.shift();
      deleted++;
    }
    if (deleted > 0) syncDirectory(this.config.fs, this.config.dir);
    return deleted;
  }

  /** The files of the log, oldest first (for retention, tools and tests; do not append through them). */
  mappedFiles(): readonly MappedFile[] {
    return this.files.slice();
  }

  /** The loaded caches, to hand to reader threads; bytes below each wrotePosition never change. */
  sharedBuffers(): SharedFileBuffer[] {
    const out: SharedFileBuffer[] = [];
    for (const file of this.files) {
      const shared = file.sharedBuffer();
      if (shared !== null) {
        out.push({ startOffset: file.startOffset, buffer: shared.buffer, byteOffset: shared.byteOffset, cachedFrom: file.cachedFrom, wrotePosition: file.wrotePosition });
      }
    }
    return out;
  }

  /** Closes the files without flushing: call `flush` first for a clean stop. */
  close(): void {
    for (const file of this.files) file.close();
  }

  private fileAt(physicalOffset: number): MappedFile {
    if (!Number.isSafeInteger(physicalOffset) || physicalOffset < this.minOffset || physicalOffset >= this.maxOffset) {
      throw new CommitLogError('OFFSET_OUT_OF_RANGE', `offset ${physicalOffset} is outside the log`);
    }
    const index = Math.floor((physicalOffset - this.minOffset) / this.config.fileSizeBytes);
    const file = this.files[index];
    assert(file !== undefined && file.startOffset <= physicalOffset && physicalOffset < file.endOffset, 'file index');
    return file;
  }

  private fileWithRoomFor(size: number): MappedFile {
    const last = this.files.at(-1);
    if (last === undefined) return this.createFile(this.flushedOffsetValue);
    const remaining = last.sizeBytes - last.wrotePosition;
    assert(remaining === 0 || remaining >= BLANK_MARKER_BYTES, () => `file left with ${remaining} bytes`);
    // Java's rule: a record goes in only if a blank marker still fits after it.
    if (size + BLANK_MARKER_BYTES <= remaining) return last;
    if (remaining > 0) {
      const bytes = last.bytes();
      // A recycled cache holds old bytes past the end; the blank's span is written to the file: zero it.
      bytes.fill(0, last.wrotePosition, last.sizeBytes);
      encodeBlank(bytes, last.wrotePosition, remaining);
      last.advance(remaining);
    }
    return this.createFile(last.endOffset);
  }

  private createFile(startOffset: number): MappedFile {
    // Release first, so that the new file can take a released buffer (cachedFilesMax counts it too);
    // a file with dirty bytes keeps its cache until flushed.
    for (let index = 0; index <= this.files.length - this.config.cachedFilesMax; index++) {
      const old = this.files[index]!;
      if (old.loaded && old.flushedPosition === old.wrotePosition) old.release();
    }
    const file = MappedFile.create(this.config.fs, this.config.dir, startOffset, this.config.fileSizeBytes, this.config.pool);
    this.files.push(file);
    return file;
  }
}

/**
 * Checks the dirty range just before it is written: records and blank markers that tile it, each with a
 * known magic, a sane size and (records) its own physical offset. Each record's whole structure was
 * checked when it was encoded or copied in, in the same turn; this catches a range that does not tile.
 */
function verifyDirtyRange(file: MappedFile, from: number, maxSizeBytes: number): void {
  const bytes = file.bytes();
  let position = from;
  // Each pass moves forward by a checked size of at least 8 bytes.
  while (position < file.wrotePosition) {
    const size = int32At(bytes, position);
    const magic = int32At(bytes, position + 4);
    if (magic === BLANK_MAGIC_CODE) {
      assert(size === file.sizeBytes - position && position + size === file.wrotePosition, () => `dirty blank at ${position} of ${size} bytes`);
    } else {
      assert(magic === MESSAGE_MAGIC_CODE || magic === MESSAGE_MAGIC_CODE_V2, () => `dirty bytes at ${position}: magic ${magic}`);
      assert(size >= RECORD_MIN_BYTES && size <= maxSizeBytes && position + size <= file.wrotePosition, () => `dirty record at ${position}: size ${size}`);
      const physicalOffset = int32At(bytes, position + 28) * 0x1_0000_0000 + (int32At(bytes, position + 32) >>> 0);
      assert(physicalOffset === file.startOffset + position, () => `dirty record at ${position} claims offset ${physicalOffset}`);
    }
    position += size;
  }
  assert(position === file.wrotePosition, 'dirty range does not end on a record boundary');
}

/** Checks a record just patched at `offset`: still its size, a known magic, and its own physical offset. */
function checkPatched(bytes: Uint8Array, offset: number, size: number, physicalOffset: number): void {
  const magic = int32At(bytes, offset + 4);
  assert(int32At(bytes, offset) === size && (magic === MESSAGE_MAGIC_CODE || magic === MESSAGE_MAGIC_CODE_V2), 'patched record keeps its header');
  assert(int32At(bytes, offset + 28) * 0x1_0000_0000 + (int32At(bytes, offset + 32) >>> 0) === physicalOffset, 'patched record has its offset');
}

function int32At(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
}

// ---------------------------------------------------------------------------------------------------
// Opening and recovery

function layoutError(message: string): CommitLogError {
  return new CommitLogError('FILE_LAYOUT_INVALID', message);
}

/** Opens the directory's files in order, checking that they form a contiguous chain. */
function listFiles(config: Resolved): MappedFile[] {
  const starts: number[] = [];
  for (const name of config.fs.readdirSync(config.dir)) {
    const start = parseFileName(name);
    if (start !== null) starts.push(start);
  }
  starts.sort((a, b) => a - b);
  const files: MappedFile[] = [];
  for (const [index, start] of starts.entries()) {
    const path = `${config.dir}/${fileNameOf(start)}`;
    // Like Java's loader: an empty last file is a creation cut short; anything else must be whole.
    if (index === starts.length - 1 && config.fs.statSync(path).size === 0) {
      config.fs.unlinkSync(path);
      syncDirectory(config.fs, config.dir);
      break;
    }
    if (start % config.fileSizeBytes !== 0) throw layoutError(`${path} does not start at a file boundary`);
    const previous = files.at(-1);
    if (previous !== undefined && previous.endOffset !== start) {
      throw layoutError(`gap between ${previous.path} and ${path}`);
    }
    files.push(MappedFile.open(config.fs, config.dir, start, config.fileSizeBytes, config.pool));
  }
  return files;
}

/** The file index and position where the scan starts: the trusted offset, or a file start. */
function scanStart(files: readonly MappedFile[], options: RecoveryOptions, fileSizeBytes: number): { index: number; position: number; exact: boolean } {
  const first = files[0]!.startOffset;
  const end = files.at(-1)!.endOffset;
  const trusted = options.trustedPhysicalOffset;
  if (trusted !== undefined && trusted >= first && trusted <= end) {
    const index = Math.min(Math.floor((trusted - first) / fileSizeBytes), files.length - 1);
    return { index, position: trusted - files[index]!.startOffset, exact: true };
  }
  const checkpoint = options.checkpointPhysicalOffset;
  if (checkpoint === undefined) return { index: 0, position: 0, exact: false };
  const index = Math.floor((checkpoint - first) / fileSizeBytes);
  return { index: Math.min(Math.max(index, 0), files.length - 1), position: 0, exact: false };
}

/** Scans from `start`, stepping back a file while a file-start scan's first record is already bad. */
function scanLog(
  window: FileWindow,
  config: Resolved,
  files: readonly MappedFile[],
  start: { readonly index: number; readonly position: number; readonly exact: boolean },
  trustedBeforeTimestampMs: number | undefined,
  visit: (record: RecordView) => void,
): { startIndex: number; startPosition: number; stop: ScanStop } {
  const recordMaxBytes = config.fileSizeBytes - BLANK_MARKER_BYTES;
  const trustedBeforeMs = start.exact ? undefined : trustedBeforeTimestampMs;
  let startIndex = start.index;
  let stop = scanFiles(window, files, startIndex, start.position, recordMaxBytes, visit, trustedBeforeMs);
  // A timestamp checkpoint may run ahead of what reached the disk; then its file begins with a bad record
  // and the previous file's tail is unverified, so step back (bounded by the number of files). An exact
  // trusted offset was durable before the checkpoint naming it was written: nothing to step back for.
  while (!start.exact && stop.index === startIndex && stop.position === 0 && stop.check !== null && startIndex > 0) {
    startIndex--;
    stop = scanFiles(window, files, startIndex, 0, recordMaxBytes, visit, trustedBeforeMs);
  }
  return { startIndex, startPosition: startIndex === start.index ? start.position : 0, stop };
}

function recover(config: Resolved, files: MappedFile[], options: RecoveryOptions): RecoveryResult {
  const queueOffsets = options.queueOffsets ?? new QueueOffsetTable();
  const records: RecordView[] = [];
  // After a clean stop, or in the boot that wrote the tail, only one write's remains can lie past the end.
  const windowed = options.cleanShutdown || options.osCrashPossible === false;
  if (files.length === 0) {
    const tailCheck = windowed ? 'window' as const : 'full' as const;
    const empty = { scanStartOffset: 0, scanFromOffset: 0, maxOffset: 0, recordsScanned: 0, filesDeleted: 0, tailCheck };
    return { ...empty, records, queueOffsets, tornTail: null, corruptions: [] };
  }
  const start = scanStart(files, options, config.fileSizeBytes);
  // Records from the exact trusted offset on, else from the checkpoint offset on, are handed back.
  const dispatchFromOffset = start.exact ? files[start.index]!.startOffset + start.position : (options.checkpointPhysicalOffset ?? 0);
  let recordsScanned = 0;
  const visit = (record: RecordView): void => {
    recordsScanned++;
    const taken = queueOffsetsTaken(record);
    if (taken > 0) queueOffsets.observe(record.topic, record.queueId, record.queueOffset, taken);
    if (record.physicalOffset < dispatchFromOffset) return;
    if (options.onRecord) options.onRecord(record);
    // The view's bytes are the scan's window, reused for the next records: keep a copy.
    else records.push(decodeRecord(Uint8Array.from(record.raw()), 0));
  };
  // Windows no larger than a file (tests use small ones); they grow for a record larger than themselves.
  const window = new FileWindow(Math.min(SCAN_CHUNK_BYTES, config.fileSizeBytes));
  const probeRecords = new FileWindow(Math.min(1 << 20, config.fileSizeBytes));
  const { startIndex, startPosition, stop } = scanLog(window, config, files, start, options.trustedBeforeTimestampMs, visit);
  const scanStartOffset = files[startIndex]!.startOffset;
  const maxOffset = files[stop.index]!.startOffset + stop.position;
  const stopClass: StopClass = classifyStop({ chunks: window, records: probeRecords }, files, stop, {
    cleanShutdown: options.cleanShutdown,
    windowed,
    recordMaxBytes: config.fileSizeBytes - BLANK_MARKER_BYTES,
    writeMaxBytes: config.maxMessageSizeBytes,
  });
  const filesDeleted = cutAt(config.fs, config.dir, files, startIndex, stop, stopClass);
  return {
    scanStartOffset,
    scanFromOffset: scanStartOffset + startPosition,
    tailCheck: stopClass.tailCheck,
    maxOffset,
    recordsScanned,
    records,
    queueOffsets,
    tornTail: stopClass.tornTail,
    corruptions: stopClass.corruptions,
    filesDeleted,
  };
}
