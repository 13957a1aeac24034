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
 * Recovery rule (`CommitLog.open`): scan from the start of the file holding the checkpoint offset (the
 * first file without one; one file earlier when that file's first record is already bad), checking
 * every record with `checkRecord` (lengths, body CRC, physical offset). The first record that fails
 * ends the log, as in Java's recoverNormally/recoverAbnormally. Then:
 * - After a crash, a failing record with nothing valid after it is a torn tail: normal, reported in
 *   `tornTail`. After a clean stop there can be no torn write, so anything but zeros there is corrupt.
 * - A failing record followed by a valid record or blank marker (searched for in the rest of the file
 *   and in later files) is corruption in the middle of the log. It is reported in `corruptions` and the
 *   log is cut at it like RocketMQ does: the corrupt record and everything after it are discarded, so
 *   a wrong body is never served. Operators see the report; nothing is silently skipped over.
 * - Cutting is durable: the rest of the end file is zeroed where it is not already zero and
 *   fdatasync'd, later files are deleted, and the directory is fsync'd. The scanned files are
 *   fdatasync'd too: a crashed process's last writes may be in the OS cache only, and recovery reports
 *   everything it keeps as flushed.
 * Recovery hands back the records at or past the checkpoint (for ConsumeQueue and index rebuilds) and
 * the queue offset table advanced past every record it scanned; records before the scan's start are not
 * read, so the caller seeds that table from its ConsumeQueues, and truncates ConsumeQueue and index
 * entries past the recovered maxOffset (a checkpoint may have run ahead of the disk). Reads and recovery
 * bound a record by the file size, not by maxMessageSizeBytes, so lowering that limit loses nothing.
 */

import type { StorageFs } from './storage-fs.ts';
import { assert } from '../runtime/assert.ts';
import { MappedFile, SCAN_CHUNK_BYTES, fileNameOf, parseFileName, syncDirectory } from './mapped-file.ts';
import {
  BLANK_MAGIC_CODE,
  BLANK_MARKER_BYTES,
  FIELD_INT16_MAX,
  MESSAGE_MAGIC_CODE,
  MESSAGE_MAGIC_CODE_V2,
  MessageSysFlag,
  PROPERTY_SEPARATOR,
  type RecordCheck,
  type RecordFault,
  type RecordInput,
  type RecordView,
  type SocketAddress,
  checkRecord,
  patchWriterFields,
  storeHostOf,
  decodeRecord,
  encodeBlank,
  encodeRecord,
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
    assert(Number.isInteger(entriesMax) && entriesMax > 0, `bad entriesMax ${entriesMax}`);
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
    assert(Number.isInteger(count) && count >= 1, `bad count ${count}`);
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
    assert(Number.isSafeInteger(nextOffset) && nextOffset >= 0, `bad next offset ${nextOffset}`);
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
};

/** How to recover when opening. */
export type RecoveryOptions = {
  /** True when the last run stopped cleanly (no `abort` file). */
  readonly cleanShutdown: boolean;
  /** Offset up to which ConsumeQueue and index are known durable; records from here are handed back. */
  readonly checkpointPhysicalOffset?: number;
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
  /** Offset where the scan started (a file start). */
  readonly scanStartOffset: number;
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

/** A file's cache for another thread. */
export type SharedFileBuffer = {
  /** Log offset of the file's first byte. */
  readonly startOffset: number;
  /** The file's cache; byte i is log offset startOffset + i. */
  readonly buffer: SharedArrayBuffer;
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
  };
}

// ---------------------------------------------------------------------------------------------------
// The log

/** The CommitLog of one broker; used by one writer thread. */
export class CommitLog {
  private readonly config: Resolved;
  private readonly files: MappedFile[];
  private readonly msgIdPrefix: string;
  private flushedOffsetValue: number;

  private constructor(config: Resolved, files: MappedFile[], endOffset: number) {
    this.config = config;
    this.files = files;
    this.flushedOffsetValue = endOffset;
    this.msgIdPrefix = offsetMessageId(config.storeHost, 0).slice(0, -16);
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
    const msgId = this.msgIdPrefix + physicalOffset.toString(16).toUpperCase().padStart(16, '0');
    return { physicalOffset, size, storeTimestampMs: record.storeTimestampMs, msgId };
  }

  /**
   * Appends a record that `encodeRecord` built elsewhere (a send thread), for this log's store host, with
   * zeros where the writer's fields go: copies it into the active file, then patches queue offset,
   * physical offset and store time in place, and checks the result as a fresh encode would be checked.
   */
  appendEncoded(record: Uint8Array, queueOffset: number): AppendResult {
    const size = record.length;
    if (size > this.config.maxMessageSizeBytes) {
      throw new CommitLogError('MESSAGE_TOO_LARGE', `record of ${size} bytes exceeds ${this.config.maxMessageSizeBytes}`);
    }
    const shape = checkRecord(record, 0, size, { verifyBodyCrc: false });
    if (shape.kind !== 'record' || shape.size !== size) {
      throw new CommitLogError('RECORD_INVALID', `pre-encoded record is not one whole record: ${JSON.stringify(shape)}`);
    }
    const host = storeHostOf(record);
    if (host.address !== this.config.storeHost.address || host.port !== this.config.storeHost.port) {
      throw new CommitLogError('RECORD_INVALID', `pre-encoded record names store host ${host.address}:${host.port}`);
    }
    const file = this.fileWithRoomFor(size);
    const position = file.wrotePosition;
    const physicalOffset = file.startOffset + position;
    const storeTimestampMs = this.config.nowMs();
    const bytes = file.bytes();
    bytes.set(record, position);
    patchWriterFields(bytes, position, queueOffset, physicalOffset, storeTimestampMs);
    const check = checkRecord(bytes, position, position + size, { expectedPhysicalOffset: physicalOffset, verifyBodyCrc: false });
    assert(check.kind === 'record' && check.size === size, 'patched record fails its check');
    file.advance(size);
    const msgId = this.msgIdPrefix + physicalOffset.toString(16).toUpperCase().padStart(16, '0');
    return { physicalOffset, size, storeTimestampMs, msgId };
  }

  /** Writes and fdatasyncs every file with dirty bytes, oldest first; returns the new flushedOffset. */
  flush(): number {
    if (this.flushedOffsetValue === this.maxOffset) return this.flushedOffsetValue;
    // Files before the one holding flushedOffset are clean; flushedOffset may sit at a file's very end.
    const first = Math.floor((this.flushedOffsetValue - this.minOffset) / this.config.fileSizeBytes);
    for (let index = Math.min(first, this.files.length - 1); index < this.files.length; index++) {
      const file = this.files[index]!;
      if (file.wrotePosition > file.flushedPosition) {
        verifyDirtyRange(file, this.config.maxMessageSizeBytes);
        file.flush();
      }
      assert(file.startOffset + file.flushedPosition >= this.flushedOffsetValue, 'flushedOffset went back');
      this.flushedOffsetValue = file.startOffset + file.flushedPosition;
    }
    return this.flushedOffsetValue;
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
    if (file.loaded) {
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
      const buffer = file.sharedBuffer();
      if (buffer !== null) out.push({ startOffset: file.startOffset, buffer, wrotePosition: file.wrotePosition });
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
    assert(remaining === 0 || remaining >= BLANK_MARKER_BYTES, `file left with ${remaining} bytes`);
    // Java's rule: a record goes in only if a blank marker still fits after it.
    if (size + BLANK_MARKER_BYTES <= remaining) return last;
    if (remaining > 0) {
      encodeBlank(last.bytes(), last.wrotePosition, remaining);
      last.advance(remaining);
    }
    return this.createFile(last.endOffset);
  }

  private createFile(startOffset: number): MappedFile {
    const file = MappedFile.create(this.config.fs, this.config.dir, startOffset, this.config.fileSizeBytes);
    this.files.push(file);
    // Keep at most cachedFilesMax caches; a file with dirty bytes keeps its cache until flushed.
    for (let index = 0; index < this.files.length - this.config.cachedFilesMax; index++) {
      const old = this.files[index]!;
      if (old.loaded && old.flushedPosition === old.wrotePosition) old.release();
    }
    return file;
  }
}

/** Checks the structure of the dirty range just before it is written: records and blanks that tile it. */
function verifyDirtyRange(file: MappedFile, maxSizeBytes: number): void {
  const bytes = file.bytes();
  let position = file.flushedPosition;
  // Each pass moves forward by a checked record size of at least 8 bytes.
  while (position < file.wrotePosition) {
    const check = checkRecord(bytes, position, file.wrotePosition, {
      expectedPhysicalOffset: file.startOffset + position,
      verifyBodyCrc: false,
      maxSizeBytes,
    });
    assert(check.kind === 'record' || check.kind === 'blank', `dirty bytes at ${position}: ${JSON.stringify(check)}`);
    position += check.size;
  }
  assert(position === file.wrotePosition, 'dirty range does not end on a record boundary');
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
    files.push(MappedFile.open(config.fs, config.dir, start, config.fileSizeBytes));
  }
  return files;
}

type ScanStop = { readonly index: number; readonly position: number; readonly check: RecordCheck | null };

/** Scans from the start of files[startIndex] until a record fails or the last file's blank marker. */
function scanFiles(
  files: readonly MappedFile[],
  startIndex: number,
  recordMaxBytes: number,
  visit: (record: RecordView) => void,
  trustedBeforeMs: number | undefined,
): ScanStop {
  let trusting = trustedBeforeMs !== undefined;
  for (let index = startIndex; index < files.length; index++) {
    const file = files[index]!;
    let position = 0;
    // Each pass moves forward by a checked record size, so it ends within sizeBytes / RECORD_MIN passes.
    for (;;) {
      const bytes = loadRecordAt(file, position, recordMaxBytes);
      const options = { expectedPhysicalOffset: file.startOffset + position, maxSizeBytes: recordMaxBytes, verifyBodyCrc: !trusting };
      let check = checkRecord(bytes, position, file.sizeBytes, options);
      if (check.kind === 'record' && trusting) {
        const record = decodeRecord(bytes, position);
        if (record.storeTimestampMs < trustedBeforeMs!) {
          position += check.size;
          continue;
        }
        trusting = false;
        check = checkRecord(bytes, position, file.sizeBytes, { ...options, verifyBodyCrc: true });
      }
      trusting = false;
      if (check.kind === 'record') {
        visit(decodeRecord(bytes, position));
        position += check.size;
        continue;
      }
      if (check.kind === 'blank') break;
      return { index, position, check };
    }
    if (index === files.length - 1) return { index, position: file.sizeBytes, check: null };
    file.release();
  }
  assert(false, 'scan ran past the last file');
}

/**
 * The cache of `file` with at least the record at `position` read in (as far as its declared size, up to
 * the file's end), reading the file a chunk at a time: the unwritten rest of a file is never read.
 */
function loadRecordAt(file: MappedFile, position: number, recordMaxBytes: number): Uint8Array {
  const chunkEnd = (from: number): number => Math.min(file.sizeBytes, from + SCAN_CHUNK_BYTES);
  if (position + 4 > file.loadedLength) file.loadUpTo(chunkEnd(position));
  const bytes = file.bytes();
  if (position + 4 <= file.sizeBytes) {
    const declared = ((bytes[position]! << 24) | (bytes[position + 1]! << 16) | (bytes[position + 2]! << 8) | bytes[position + 3]!) >>> 0;
    const end = position + Math.min(declared, recordMaxBytes);
    if (end > file.loadedLength) file.loadUpTo(Math.max(chunkEnd(position), Math.min(file.sizeBytes, end)));
  }
  return bytes;
}

const MAGIC_PATTERNS = [MESSAGE_MAGIC_CODE, MESSAGE_MAGIC_CODE_V2, BLANK_MAGIC_CODE].map((magic) => {
  const pattern = Buffer.alloc(4);
  pattern.writeInt32BE(magic);
  return pattern;
});

/** Offset of the first valid record or blank marker at or after `from` in a loaded file, or null. */
function findValidData(file: MappedFile, from: number, maxSizeBytes: number): number | null {
  const bytes = file.bytes();
  const haystack = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let best: number | null = null;
  for (const pattern of MAGIC_PATTERNS) {
    let at = haystack.indexOf(pattern, from + 4);
    // Each pass moves `at` forward, so this ends within the file's length.
    while (at >= 0 && (best === null || at - 4 < best)) {
      const position = at - 4;
      const check = checkRecord(bytes, position, file.sizeBytes, {
        expectedPhysicalOffset: file.startOffset + position,
        maxSizeBytes,
      });
      if (check.kind === 'record' || check.kind === 'blank') {
        best = position;
        break;
      }
      at = haystack.indexOf(pattern, at + 1);
    }
  }
  return best === null ? null : file.startOffset + best;
}

/** Looks for valid data after a failed record: in the rest of its file, then in each later file. */
function probeAfter(files: readonly MappedFile[], stop: ScanStop, maxSizeBytes: number): number | null {
  files[stop.index]!.loadUpTo(files[stop.index]!.sizeBytes);
  const found = findValidData(files[stop.index]!, stop.position + 1, maxSizeBytes);
  if (found !== null) return found;
  for (let index = stop.index + 1; index < files.length; index++) {
    const file = files[index]!;
    file.load();
    const later = findValidData(file, 0, maxSizeBytes);
    file.release();
    if (later !== null) return later;
  }
  return null;
}

function startIndexFor(
  files: readonly MappedFile[],
  checkpointPhysicalOffset: number | undefined,
  fileSizeBytes: number,
): number {
  if (checkpointPhysicalOffset === undefined || files.length === 0) return 0;
  const index = Math.floor((checkpointPhysicalOffset - files[0]!.startOffset) / fileSizeBytes);
  return Math.min(Math.max(index, 0), files.length - 1);
}

/** Scans from the checkpoint's file, stepping back while that file's first record is already bad. */
function scanFromCheckpoint(
  config: Resolved,
  files: readonly MappedFile[],
  checkpointPhysicalOffset: number | undefined,
  visit: (record: RecordView) => void,
  trustedBeforeMs: number | undefined,
): { startIndex: number; stop: ScanStop } {
  const recordMaxBytes = config.fileSizeBytes - BLANK_MARKER_BYTES;
  let startIndex = startIndexFor(files, checkpointPhysicalOffset, config.fileSizeBytes);
  let stop = scanFiles(files, startIndex, recordMaxBytes, visit, trustedBeforeMs);
  // A checkpoint may run ahead of what reached the disk; then its file begins with a bad record and the
  // previous file's tail is unverified, so step back (bounded by the number of files).
  while (stop.index === startIndex && stop.position === 0 && stop.check !== null && startIndex > 0) {
    files[startIndex]!.release();
    startIndex--;
    stop = scanFiles(files, startIndex, recordMaxBytes, visit, trustedBeforeMs);
  }
  return { startIndex, stop };
}

/** Tells a torn tail (expected after a crash) from corruption (valid data after it, or a clean stop). */
function classifyStop(
  config: Resolved,
  files: readonly MappedFile[],
  stop: ScanStop,
  cleanShutdown: boolean,
): Pick<RecoveryResult, 'tornTail' | 'corruptions'> & { readonly zeroTail: boolean } {
  const check = stop.check;
  if (check === null || check.kind === 'record' || check.kind === 'blank') return { tornTail: null, corruptions: [], zeroTail: false };
  if (check.reason === 'unwritten' && zeroAfter(files, stop)) return { tornTail: null, corruptions: [], zeroTail: true };
  const physicalOffset = files[stop.index]!.startOffset + stop.position;
  const validDataAtOffset = probeAfter(files, stop, config.fileSizeBytes - BLANK_MARKER_BYTES);
  if (validDataAtOffset !== null || (cleanShutdown && check.reason !== 'unwritten')) {
    return { tornTail: null, corruptions: [{ physicalOffset, reason: check.reason, validDataAtOffset }], zeroTail: false };
  }
  const tornTail = check.reason === 'unwritten' ? null : { physicalOffset, reason: check.reason };
  return { tornTail, corruptions: [], zeroTail: false };
}

/** Whether every byte after `stop`, in its file and in every later file, is zero on disk. */
function zeroAfter(files: readonly MappedFile[], stop: ScanStop): boolean {
  if (files[stop.index]!.firstNonZeroFrom(stop.position) !== null) return false;
  return files.slice(stop.index + 1).every((file) => file.firstNonZeroFrom(0) === null);
}

/** Ends the log at `stop` durably; returns how many later files were deleted. */
function cutAt(config: Resolved, files: MappedFile[], startIndex: number, stop: ScanStop, zeroTail: boolean): number {
  const end = files[stop.index]!;
  // A zero tail (the common end after kill -9) needs no writes; anything else is zeroed durably.
  if (zeroTail) end.endAtZeroTail(stop.position);
  else end.truncateTo(stop.position);
  const later = files.splice(stop.index + 1);
  for (const file of later) file.destroy();
  if (later.length > 0) syncDirectory(config.fs, config.dir);
  // A crashed process's last writes may sit in the OS cache only; what recovery keeps it makes durable,
  // because flushedOffset will say so.
  for (let index = startIndex; index <= stop.index; index++) files[index]!.sync();
  // The active file's cache holds exactly its appended part (loaded by the scan); the rest is zero.
  if (!end.loaded) end.load(stop.position);
  else end.loadUpTo(stop.position);
  assert(files.at(-1) === end && end.wrotePosition === stop.position, 'recovery left the wrong end');
  return later.length;
}

function recover(config: Resolved, files: MappedFile[], options: RecoveryOptions): RecoveryResult {
  const queueOffsets = options.queueOffsets ?? new QueueOffsetTable();
  const records: RecordView[] = [];
  if (files.length === 0) {
    const empty = { scanStartOffset: 0, maxOffset: 0, recordsScanned: 0, filesDeleted: 0 };
    return { ...empty, records, queueOffsets, tornTail: null, corruptions: [] };
  }
  const dispatchFromOffset = options.checkpointPhysicalOffset ?? 0;
  let recordsScanned = 0;
  const visit = (record: RecordView): void => {
    recordsScanned++;
    const taken = queueOffsetsTaken(record);
    if (taken > 0) queueOffsets.observe(record.topic, record.queueId, record.queueOffset, taken);
    if (record.physicalOffset < dispatchFromOffset) return;
    if (options.onRecord) options.onRecord(record);
    else records.push(record);
  };
  const { startIndex, stop } = scanFromCheckpoint(config, files, options.checkpointPhysicalOffset, visit, options.trustedBeforeTimestampMs);
  const scanStartOffset = files[startIndex]!.startOffset;
  const maxOffset = files[stop.index]!.startOffset + stop.position;
  const { tornTail, corruptions, zeroTail } = classifyStop(config, files, stop, options.cleanShutdown);
  const filesDeleted = cutAt(config, files, startIndex, stop, zeroTail);
  return { scanStartOffset, maxOffset, recordsScanned, records, queueOffsets, tornTail, corruptions, filesDeleted };
}
