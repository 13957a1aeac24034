/**
 * The POP engine's journal: `<rootDir>/pop/pop.journal`, an append-only file of the state changes of
 * the PopEngine (pop-engine.ts), replayed at open. RocketMQ keeps the same facts as checkpoint and ack
 * messages in its REVIVE_LOG topic plus consumer offsets (PopMessageProcessor, AckMessageProcessor,
 * PopReviveService); we keep them in one small file of our own, since no other broker reads it.
 * All integers are big-endian and unsigned; u64 fields hold safe integers (below 2^53).
 *
 * File header, 16 bytes:
 *
 * | offset | size | field    | meaning                                   |
 * |--------|------|----------|-------------------------------------------|
 * | 0      | 4    | magic    | 0x504f504a ("POPJ")                       |
 * | 4      | 4    | version  | 1                                         |
 * | 8      | 8    | reserved | zero                                      |
 *
 * Then records, each:
 *
 * | offset | size | field   | meaning                                                        |
 * |--------|------|---------|----------------------------------------------------------------|
 * | 0      | 4    | size    | bytes of the record, these 9 header bytes included              |
 * | 4      | 4    | crc     | CRC-32 (zlib) of bytes 8 .. size                                |
 * | 8      | 1    | type    | PopRecordType                                                   |
 * | 9      | ...  | payload | by type, below                                                  |
 *
 * Payloads (k = keyId u32, q = queueId u32, o = queueOffset u64):
 *
 * | type       | payload                                                          | meaning                       |
 * |------------|------------------------------------------------------------------|-------------------------------|
 * | 1 EPOCH    | epoch u32                                                        | a new engine run starts       |
 * | 2 KEY      | k, groupBytes u16, group, topicBytes u16, topic (UTF-8)          | names (group, topic) as k     |
 * | 3 OFFSET   | k, q, popOffset u64                                              | offset-advance: the queue's   |
 * |            |                                                                  | next never-delivered offset;  |
 * |            |                                                                  | leases at or past it go       |
 * | 4 POP      | k, q, o, attempt u32, epoch u32, seq u64, deadlineMs u64, flags u8| a lease is issued (first or   |
 * |            |                                                                  | later delivery)               |
 * | 5 CHANGE   | same as POP                                                      | a lease's invisible time      |
 * |            |                                                                  | changes (new nonce)           |
 * | 6 DLQ      | same as POP                                                      | a lease is issued as a dead   |
 * |            |                                                                  | letter (attempts used up)     |
 * | 7 ACK      | k, q, o, epoch u32, seq u64                                      | the lease (epoch, seq) acked  |
 * | 8 SKIP     | same as ACK                                                      | the lease settled by the      |
 * |            |                                                                  | broker (filtered, or copied   |
 * |            |                                                                  | to the DLQ)                   |
 * | 9 DROP     | k                                                                | forget k's queues and leases  |
 * |            |                                                                  | (group or topic deleted)      |
 *
 * flags: bit 0 = the lease was popped in FIFO (orderly) mode.
 *
 * Invariants:
 * - Records are only appended; the file is replaced only by compaction, which writes the live state
 *   (EPOCH, then per key a KEY, per queue an OFFSET, its leases as POP/DLQ, and a closing OFFSET) to
 *   `pop.journal.tmp`, fsyncs it and renames it over the journal (then fsyncs the directory). A reader
 *   sees the old file or the new one, never a mix. The journal is created the same way.
 * - Every record is checked (size, CRC, type, payload length, field ranges) just after it is read;
 *   every record is encoded by one function that checks its fields just before it is written.
 * - Records are buffered in memory until `sync` (or until the buffer is full), so that a batch of
 *   engine calls costs one write and one fdatasync (group commit). Nothing appended since the last
 *   completed `sync` is sure to survive, not even kill -9 (a full buffer reaches the OS early).
 *
 * Recovery rule: read the header (a missing or foreign header is POP_JOURNAL_CORRUPT: refuse to
 * start); replay records from the first on; the first record that is short, oversized, runs past the
 * end of the file or fails its CRC ends the journal: the file is truncated there (a torn tail) and
 * fsynced. A record that passes its CRC but cannot be applied is POP_JOURNAL_CORRUPT. A leftover
 * `pop.journal.tmp` is an interrupted compaction and is deleted.
 */
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { assert } from '../runtime/assert.ts';
import { type StorageFs, fsyncDirectory, writeFileAtomic, writeFully } from './storage-fs.ts';

// ---------------------------------------------------------------------------------------------------------
// On-disk constants.

/** Directory of the journal under storePathRootDir. */
export const POP_JOURNAL_DIR_NAME = 'pop';
/** The journal's file name. */
export const POP_JOURNAL_FILE_NAME = 'pop.journal';
/** Suffix of a compaction in progress. */
export const POP_JOURNAL_TEMP_SUFFIX = '.tmp';
/** "POPJ". */
export const POP_JOURNAL_MAGIC = 0x504f504a;
/** Version of the layout above. */
export const POP_JOURNAL_VERSION = 1;
/** Bytes of the file header. */
export const POP_JOURNAL_HEADER_BYTES = 16;
/** Bytes of a record's header (size, crc, type). */
export const POP_RECORD_HEADER_BYTES = 9;
/** Longest UTF-8 group or topic name a KEY record carries. */
export const POP_KEY_NAME_BYTES_MAX = 1024;
/** Largest record (a KEY record with two names of the longest). */
export const POP_RECORD_BYTES_MAX = POP_RECORD_HEADER_BYTES + 4 + 2 + POP_KEY_NAME_BYTES_MAX + 2 + POP_KEY_NAME_BYTES_MAX;

/** Record type codes. */
export const PopRecordType = { EPOCH: 1, KEY: 2, OFFSET: 3, POP: 4, CHANGE: 5, DLQ: 6, ACK: 7, SKIP: 8, DROP: 9 } as const;

/** Defaults of the journal's bounds. */
export const POP_JOURNAL_DEFAULTS = {
  /** Compaction starts once the journal is this large and twice its last compacted size. */
  compactBytesMin: 64 * 1024 * 1024,
  /** Records buffered before they are written to the OS without a sync. */
  bufferBytesMax: 1024 * 1024,
} as const;

const LEASE_PAYLOAD_BYTES = 4 + 4 + 8 + 4 + 4 + 8 + 8 + 1;
const SETTLE_PAYLOAD_BYTES = 4 + 4 + 8 + 4 + 8;
const OFFSET_PAYLOAD_BYTES = 4 + 4 + 8;
const EPOCH_PAYLOAD_BYTES = 4;
const DROP_PAYLOAD_BYTES = 4;
const FLAG_FIFO = 0x1;
const TWO_32 = 0x1_0000_0000;
const U64_HIGH_MAX = 0x1f_ffff; // the high word of a safe integer
const READ_WINDOW_BYTES = 1024 * 1024;
const U32_MAX = 0xffff_ffff;

// ---------------------------------------------------------------------------------------------------------
// Records.

/** A lease is issued (POP), re-timed (CHANGE) or issued as a dead letter (DLQ). */
export type PopLeaseRecord = Readonly<{
  type: 'POP' | 'CHANGE' | 'DLQ';
  keyId: number;
  queueId: number;
  queueOffset: number;
  /** Delivery attempt, 1 on first delivery. */
  attempt: number;
  epoch: number;
  seq: number;
  deadlineMs: number;
  fifo: boolean;
}>;

/** A lease is settled: acked by the client (ACK) or by the broker (SKIP). */
export type PopSettleRecord = Readonly<{ type: 'ACK' | 'SKIP'; keyId: number; queueId: number; queueOffset: number; epoch: number; seq: number }>;

/** One journal record. */
export type PopJournalRecord =
  | Readonly<{ type: 'EPOCH'; epoch: number }>
  | Readonly<{ type: 'KEY'; keyId: number; group: string; topic: string }>
  | Readonly<{ type: 'OFFSET'; keyId: number; queueId: number; popOffset: number }>
  | Readonly<{ type: 'DROP'; keyId: number }>
  | PopLeaseRecord
  | PopSettleRecord;

// ---------------------------------------------------------------------------------------------------------
// Errors.

/** Stable codes of PopJournalError. */
export const PopJournalErrorCode = {
  /** The journal's header is not ours, or a record that passed its CRC cannot be applied. */
  POP_JOURNAL_CORRUPT: 'POP_JOURNAL_CORRUPT',
} as const;

/** A stable code of PopJournalError. */
export type PopJournalErrorCode = (typeof PopJournalErrorCode)[keyof typeof PopJournalErrorCode];

/** A journal that cannot be trusted; the broker refuses to start rather than lose acks. */
export class PopJournalError extends Error {
  /** Stable machine-readable code. */
  readonly code: PopJournalErrorCode;
  override readonly name = 'PopJournalError';

  constructor(code: PopJournalErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Throws POP_JOURNAL_CORRUPT with `message` unless `condition` holds (a check of data read from disk). */
export function checkJournal(condition: unknown, message: string): asserts condition {
  if (!condition) throw new PopJournalError('POP_JOURNAL_CORRUPT', message);
}

// ---------------------------------------------------------------------------------------------------------
// Encoding.

function writeU64(bytes: Buffer, at: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `u64 field out of range: ${value}`);
  bytes.writeUInt32BE(Math.floor(value / TWO_32), at);
  bytes.writeUInt32BE(value % TWO_32, at + 4);
}

function readU64(bytes: Buffer, at: number): number {
  const high = bytes.readUInt32BE(at);
  checkJournal(high <= U64_HIGH_MAX, 'u64 field past 2^53');
  return high * TWO_32 + bytes.readUInt32BE(at + 4);
}

function checkU32(value: number, what: string): void {
  assert(Number.isInteger(value) && value >= 0 && value <= U32_MAX, () => `${what} out of range: ${value}`);
}

/** Bytes `record` takes in the journal. */
export function popRecordBytes(record: PopJournalRecord): number {
  switch (record.type) {
    case 'EPOCH':
      return POP_RECORD_HEADER_BYTES + EPOCH_PAYLOAD_BYTES;
    case 'DROP':
      return POP_RECORD_HEADER_BYTES + DROP_PAYLOAD_BYTES;
    case 'KEY':
      return POP_RECORD_HEADER_BYTES + 8 + Buffer.byteLength(record.group, 'utf8') + Buffer.byteLength(record.topic, 'utf8');
    case 'OFFSET':
      return POP_RECORD_HEADER_BYTES + OFFSET_PAYLOAD_BYTES;
    case 'POP':
    case 'CHANGE':
    case 'DLQ':
      return POP_RECORD_HEADER_BYTES + LEASE_PAYLOAD_BYTES;
    case 'ACK':
    case 'SKIP':
      return POP_RECORD_HEADER_BYTES + SETTLE_PAYLOAD_BYTES;
  }
}

/** Encodes `record` into `target` at `at`; returns its size. Checks every field first. */
export function encodePopRecord(record: PopJournalRecord, target: Buffer, at: number): number {
  const size = popRecordBytes(record);
  assert(size <= POP_RECORD_BYTES_MAX && at + size <= target.length, 'record does not fit');
  target.writeUInt32BE(size, at);
  target.writeUInt8(PopRecordType[record.type], at + 8);
  let p = at + POP_RECORD_HEADER_BYTES;
  switch (record.type) {
    case 'EPOCH':
      checkU32(record.epoch, 'epoch');
      target.writeUInt32BE(record.epoch, p);
      break;
    case 'DROP':
      checkU32(record.keyId, 'keyId');
      target.writeUInt32BE(record.keyId, p);
      break;
    case 'KEY': {
      checkU32(record.keyId, 'keyId');
      target.writeUInt32BE(record.keyId, p);
      p += 4;
      for (const name of [record.group, record.topic]) {
        const bytes = Buffer.byteLength(name, 'utf8');
        assert(bytes > 0 && bytes <= POP_KEY_NAME_BYTES_MAX, () => `name length out of range: ${bytes}`);
        target.writeUInt16BE(bytes, p);
        target.write(name, p + 2, bytes, 'utf8');
        p += 2 + bytes;
      }
      break;
    }
    case 'OFFSET':
      p = writeQueue(target, p, record.keyId, record.queueId);
      writeU64(target, p, record.popOffset);
      break;
    case 'POP':
    case 'CHANGE':
    case 'DLQ':
      p = writeQueue(target, p, record.keyId, record.queueId);
      writeU64(target, p, record.queueOffset);
      checkU32(record.attempt, 'attempt');
      assert(record.attempt >= 1, 'attempt starts at 1');
      target.writeUInt32BE(record.attempt, p + 8);
      checkU32(record.epoch, 'epoch');
      target.writeUInt32BE(record.epoch, p + 12);
      writeU64(target, p + 16, record.seq);
      writeU64(target, p + 24, record.deadlineMs);
      target.writeUInt8(record.fifo ? FLAG_FIFO : 0, p + 32);
      break;
    case 'ACK':
    case 'SKIP':
      p = writeQueue(target, p, record.keyId, record.queueId);
      writeU64(target, p, record.queueOffset);
      checkU32(record.epoch, 'epoch');
      target.writeUInt32BE(record.epoch, p + 8);
      writeU64(target, p + 12, record.seq);
      break;
  }
  target.writeUInt32BE(crc32(target.subarray(at + 8, at + size)), at + 4);
  return size;
}

function writeQueue(target: Buffer, p: number, keyId: number, queueId: number): number {
  checkU32(keyId, 'keyId');
  checkU32(queueId, 'queueId');
  target.writeUInt32BE(keyId, p);
  target.writeUInt32BE(queueId, p + 4);
  return p + 8;
}

/** What reading a record at a position found: a record, or the end of the valid journal. */
export type PopRecordRead = { kind: 'record'; record: PopJournalRecord; size: number } | { kind: 'end'; why: string };

const TYPE_NAMES = new Map<number, PopJournalRecord['type']>(
  Object.entries(PopRecordType).map(([name, code]) => [code, name as PopJournalRecord['type']]),
);

/**
 * Reads the record at `at` of `bytes`, where `limit` is the end of the data; a record that is short,
 * oversized, past `limit` or fails its CRC is the end of the journal (a torn tail). Throws
 * POP_JOURNAL_CORRUPT for a record that passes its CRC but is not one we write.
 */
export function decodePopRecord(bytes: Buffer, at: number, limit: number): PopRecordRead {
  if (at === limit) return { kind: 'end', why: 'end of file' };
  if (limit - at < POP_RECORD_HEADER_BYTES) return { kind: 'end', why: 'short record header' };
  const size = bytes.readUInt32BE(at);
  if (size < POP_RECORD_HEADER_BYTES + EPOCH_PAYLOAD_BYTES || size > POP_RECORD_BYTES_MAX) return { kind: 'end', why: `bad record size ${size}` };
  if (at + size > limit) return { kind: 'end', why: 'record runs past the end of the file' };
  if (crc32(bytes.subarray(at + 8, at + size)) !== bytes.readUInt32BE(at + 4)) return { kind: 'end', why: 'record CRC mismatch' };
  const type = TYPE_NAMES.get(bytes.readUInt8(at + 8));
  checkJournal(type !== undefined, `unknown record type ${bytes.readUInt8(at + 8)} at ${at}`);
  const record = decodePayload(type, bytes, at + POP_RECORD_HEADER_BYTES, at + size);
  return { kind: 'record', record, size };
}

function decodePayload(type: PopJournalRecord['type'], bytes: Buffer, p: number, end: number): PopJournalRecord {
  const payload = end - p;
  switch (type) {
    case 'EPOCH':
      checkJournal(payload === EPOCH_PAYLOAD_BYTES, 'EPOCH payload length');
      return { type, epoch: bytes.readUInt32BE(p) };
    case 'DROP':
      checkJournal(payload === DROP_PAYLOAD_BYTES, 'DROP payload length');
      return { type, keyId: bytes.readUInt32BE(p) };
    case 'KEY': {
      checkJournal(payload >= 8, 'KEY payload length');
      const keyId = bytes.readUInt32BE(p);
      const groupBytes = bytes.readUInt16BE(p + 4);
      checkJournal(groupBytes > 0 && p + 8 + groupBytes <= end, 'KEY group length');
      const group = bytes.toString('utf8', p + 6, p + 6 + groupBytes);
      const topicAt = p + 6 + groupBytes;
      const topicBytes = bytes.readUInt16BE(topicAt);
      checkJournal(topicBytes > 0 && topicAt + 2 + topicBytes === end, 'KEY topic length');
      const topic = bytes.toString('utf8', topicAt + 2, end);
      return { type, keyId, group, topic };
    }
    case 'OFFSET':
      checkJournal(payload === OFFSET_PAYLOAD_BYTES, 'OFFSET payload length');
      return { type, keyId: bytes.readUInt32BE(p), queueId: bytes.readUInt32BE(p + 4), popOffset: readU64(bytes, p + 8) };
    case 'POP':
    case 'CHANGE':
    case 'DLQ': {
      checkJournal(payload === LEASE_PAYLOAD_BYTES, `${type} payload length`);
      const flags = bytes.readUInt8(p + 40);
      checkJournal((flags & ~FLAG_FIFO) === 0, `${type} unknown flags ${flags}`);
      const attempt = bytes.readUInt32BE(p + 16);
      checkJournal(attempt >= 1, `${type} attempt 0`);
      return {
        type,
        keyId: bytes.readUInt32BE(p),
        queueId: bytes.readUInt32BE(p + 4),
        queueOffset: readU64(bytes, p + 8),
        attempt,
        epoch: bytes.readUInt32BE(p + 20),
        seq: readU64(bytes, p + 24),
        deadlineMs: readU64(bytes, p + 32),
        fifo: (flags & FLAG_FIFO) !== 0,
      };
    }
    case 'ACK':
    case 'SKIP':
      checkJournal(payload === SETTLE_PAYLOAD_BYTES, `${type} payload length`);
      return {
        type,
        keyId: bytes.readUInt32BE(p),
        queueId: bytes.readUInt32BE(p + 4),
        queueOffset: readU64(bytes, p + 8),
        epoch: bytes.readUInt32BE(p + 16),
        seq: readU64(bytes, p + 20),
      };
  }
}

function encodeHeader(): Buffer {
  const header = Buffer.alloc(POP_JOURNAL_HEADER_BYTES);
  header.writeUInt32BE(POP_JOURNAL_MAGIC, 0);
  header.writeUInt32BE(POP_JOURNAL_VERSION, 4);
  return header;
}

// ---------------------------------------------------------------------------------------------------------
// The journal file.

/** How to open a journal. */
export type PopJournalOptions = Readonly<{
  fs: StorageFs;
  /** storePathRootDir; the journal lives in `<rootDir>/pop/`. */
  rootDir: string;
  /** POP_JOURNAL_DEFAULTS.compactBytesMin when absent. */
  compactBytesMin?: number;
  /** POP_JOURNAL_DEFAULTS.bufferBytesMax when absent. */
  bufferBytesMax?: number;
}>;

/** What recovery found. */
export type PopJournalRecovery = Readonly<{
  /** Records replayed. */
  records: number;
  /** Bytes of valid journal (header included). */
  validBytes: number;
  /** Bytes of torn tail cut off (0 after a clean stop). */
  truncatedBytes: number;
  /** Why replay stopped where it did. */
  endReason: string;
}>;

/** The journal of one PopEngine: buffered appends, group-committed syncs, compaction by rewrite. */
export class PopJournal {
  /** What recovery found at open. */
  readonly recovery: PopJournalRecovery;
  /** The journal's path. */
  readonly filePath: string;
  private readonly fs: StorageFs;
  private readonly dir: string;
  private readonly compactBytesMin: number;
  private readonly buffer: Buffer;
  private fd: number;
  private bufferUsed = 0;
  /** Bytes in the file (written to the OS). */
  private fileBytes: number;
  /** Bytes of the file covered by a completed fsync. */
  private syncedBytes: number;
  private liveBytesAtCompaction = 0;
  private closed = false;

  private constructor(options: PopJournalOptions, fd: number, recovery: PopJournalRecovery) {
    this.fs = options.fs;
    this.dir = path.join(options.rootDir, POP_JOURNAL_DIR_NAME);
    this.filePath = path.join(this.dir, POP_JOURNAL_FILE_NAME);
    this.compactBytesMin = options.compactBytesMin ?? POP_JOURNAL_DEFAULTS.compactBytesMin;
    const bufferBytes = options.bufferBytesMax ?? POP_JOURNAL_DEFAULTS.bufferBytesMax;
    assert(Number.isSafeInteger(bufferBytes) && bufferBytes >= POP_RECORD_BYTES_MAX, 'bufferBytesMax below one record');
    assert(Number.isSafeInteger(this.compactBytesMin) && this.compactBytesMin > 0, 'compactBytesMin must be positive');
    this.buffer = Buffer.alloc(bufferBytes);
    this.fd = fd;
    this.recovery = recovery;
    this.fileBytes = recovery.validBytes;
    this.syncedBytes = recovery.validBytes;
  }

  /**
   * Opens (creating if needed) the journal under `<rootDir>/pop/`, hands every valid record to
   * `onRecord` in order, and cuts a torn tail off. `onRecord` may throw POP_JOURNAL_CORRUPT.
   */
  static open(options: PopJournalOptions, onRecord: (record: PopJournalRecord) => void): PopJournal {
    const { fs } = options;
    const dir = path.join(options.rootDir, POP_JOURNAL_DIR_NAME);
    const file = path.join(dir, POP_JOURNAL_FILE_NAME);
    fs.mkdirSync(dir, { recursive: true });
    if (fs.existsSync(file + POP_JOURNAL_TEMP_SUFFIX)) fs.unlinkSync(file + POP_JOURNAL_TEMP_SUFFIX);
    if (!fs.existsSync(file)) writeFileAtomic(fs, file, encodeHeader());
    const fd = fs.openSync(file, 'r+');
    try {
      const recovery = replay(fs, fd, file, onRecord);
      if (recovery.truncatedBytes > 0) {
        fs.ftruncateSync(fd, recovery.validBytes);
        fs.fsyncSync(fd);
      }
      return new PopJournal(options, fd, recovery);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  /** Buffers `record`; it reaches the file at the next `sync` (or earlier, when the buffer is full). */
  append(record: PopJournalRecord): void {
    assert(!this.closed, 'append to a closed journal');
    if (this.bufferUsed + POP_RECORD_BYTES_MAX > this.buffer.length) this.flush();
    this.bufferUsed += encodePopRecord(record, this.buffer, this.bufferUsed);
  }

  /** Writes the buffered records to the OS (no fsync). */
  flush(): void {
    assert(!this.closed, 'flush of a closed journal');
    if (this.bufferUsed === 0) return;
    writeFully(this.fs, this.fd, this.buffer, 0, this.bufferUsed, this.fileBytes);
    this.fileBytes += this.bufferUsed;
    this.bufferUsed = 0;
  }

  /** Makes every appended record durable: write, then fdatasync. */
  sync(): void {
    this.flush();
    if (this.syncedBytes === this.fileBytes) return;
    this.fs.fdatasyncSync(this.fd);
    this.syncedBytes = this.fileBytes;
  }

  /** Bytes of the journal, buffered records included. */
  get sizeBytes(): number {
    return this.fileBytes + this.bufferUsed;
  }

  /** Bytes known to be durable. */
  get durableBytes(): number {
    return this.syncedBytes;
  }

  /** A copy of the records appended and not yet written to the file (for crash tests). */
  unwrittenBytes(): Uint8Array {
    return Buffer.from(this.buffer.subarray(0, this.bufferUsed));
  }

  /** Whether the journal has grown enough that `rewrite` should replace it with the live state. */
  shouldCompact(): boolean {
    const size = this.sizeBytes;
    return size >= this.compactBytesMin && size >= 2 * this.liveBytesAtCompaction;
  }

  /**
   * Compaction: replaces the journal, durably and atomically, by a new one holding `records` (the live
   * state, which includes everything buffered; the buffer is dropped).
   */
  rewrite(records: Iterable<PopJournalRecord>): void {
    assert(!this.closed, 'rewrite of a closed journal');
    const temp = this.filePath + POP_JOURNAL_TEMP_SUFFIX;
    const tempFd = this.fs.openSync(temp, 'w', 0o644);
    let size = 0;
    try {
      const header = encodeHeader();
      writeFully(this.fs, tempFd, header, 0, header.length, 0);
      size = header.length;
      const chunk = Buffer.alloc(this.buffer.length);
      let used = 0;
      for (const record of records) {
        if (used + POP_RECORD_BYTES_MAX > chunk.length) {
          writeFully(this.fs, tempFd, chunk, 0, used, size);
          size += used;
          used = 0;
        }
        used += encodePopRecord(record, chunk, used);
      }
      writeFully(this.fs, tempFd, chunk, 0, used, size);
      size += used;
      this.fs.fsyncSync(tempFd);
    } finally {
      this.fs.closeSync(tempFd);
    }
    this.fs.renameSync(temp, this.filePath);
    fsyncDirectory(this.fs, this.dir);
    this.fs.closeSync(this.fd);
    this.fd = this.fs.openSync(this.filePath, 'r+');
    this.bufferUsed = 0;
    this.fileBytes = size;
    this.syncedBytes = size;
    this.liveBytesAtCompaction = size;
  }

  /** Syncs and closes. */
  close(): void {
    if (this.closed) return;
    this.sync();
    this.fs.closeSync(this.fd);
    this.closed = true;
  }

  /**
   * Closes as a crash would: the first `keepBytes` of the unwritten records reach the file (a torn
   * write when that cuts a record), the rest is lost. For crash tests.
   */
  abandon(keepBytes = 0): void {
    if (this.closed) return;
    assert(Number.isSafeInteger(keepBytes) && keepBytes >= 0 && keepBytes <= this.bufferUsed, 'keepBytes out of range');
    if (keepBytes > 0) writeFully(this.fs, this.fd, this.buffer, 0, keepBytes, this.fileBytes);
    this.fs.closeSync(this.fd);
    this.closed = true;
  }
}

/** Reads the header and every valid record; returns where the valid journal ends. */
function replay(fs: StorageFs, fd: number, file: string, onRecord: (record: PopJournalRecord) => void): PopJournalRecovery {
  const fileBytes = fs.fstatSync(fd).size;
  const header = Buffer.alloc(POP_JOURNAL_HEADER_BYTES);
  const headerRead = fs.readSync(fd, header, 0, header.length, 0);
  checkJournal(
    headerRead === POP_JOURNAL_HEADER_BYTES &&
      header.readUInt32BE(0) === POP_JOURNAL_MAGIC &&
      header.readUInt32BE(4) === POP_JOURNAL_VERSION,
    `${file}: not a POP journal of version ${POP_JOURNAL_VERSION}`,
  );
  const window = Buffer.alloc(READ_WINDOW_BYTES + POP_RECORD_BYTES_MAX);
  let position = POP_JOURNAL_HEADER_BYTES;
  let records = 0;
  const result = (validBytes: number, endReason: string): PopJournalRecovery => ({
    records,
    validBytes,
    truncatedBytes: fileBytes - validBytes,
    endReason,
  });
  for (;;) {
    const length = readAt(fs, fd, window, Math.min(window.length, fileBytes - position), position);
    const windowIsTail = position + length === fileBytes;
    let at = 0;
    // Decode while a whole record surely fits in the window, or up to the end when it holds the tail.
    while (at < length && (windowIsTail || length - at >= POP_RECORD_BYTES_MAX)) {
      const read = decodePopRecord(window, at, length);
      if (read.kind === 'end') return result(position + at, read.why);
      onRecord(read.record);
      records++;
      at += read.size;
    }
    position += at;
    if (position >= fileBytes || length === 0) return result(position, 'end of file');
    assert(at > 0, 'replay makes progress');
  }
}

function readAt(fs: StorageFs, fd: number, target: Buffer, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, target, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
