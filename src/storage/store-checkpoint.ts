/**
 * The store's `checkpoint` file and its `abort` marker, both in storePathRootDir, as RocketMQ 5 keeps
 * them (StoreCheckpoint, DefaultMessageStore.createTempFile). All integers are big-endian.
 *
 * checkpoint, one OS page (4096 bytes); Java maps the page and reads the first 40 bytes:
 *
 * | offset | size | field                 | meaning                                                     |
 * |--------|------|-----------------------|-------------------------------------------------------------|
 * | 0      | 8    | physicMsgTimestamp    | store time (ms) of the last CommitLog record flushed        |
 * | 8      | 8    | logicsMsgTimestamp    | store time (ms) of the last record whose ConsumeQueue entry |
 * |        |      |                       | was flushed                                                 |
 * | 16     | 8    | indexMsgTimestamp     | store time (ms) of the last record in a flushed index file  |
 * | 24     | 8    | masterFlushedOffset   | master's flushed CommitLog offset, kept by a slave (HA)     |
 * | 32     | 8    | confirmPhyOffset      | CommitLog offset confirmed (replicated, or flushed) so far  |
 * | 40     | 984  | (zeros)               | unused (a RocketMQ fork keeps a field at 40: left alone)    |
 * | 1024   | 4    | extensionMagic        | 0x52544331 ("RTC1"): the rocketmq-ts extension follows      |
 * | 1028   | 4    | extensionCrc          | CRC-32 of bytes [0, 40) and [1032, 1064)                    |
 * | 1032   | 8    | trustedPhysicalOffset | CommitLog offset below which every record, its ConsumeQueue |
 * |        |      |                       | entry and its index entries were durable when written       |
 * | 1040   | 16   | bootId                | the kernel's boot id when written (zeros: unknown)          |
 * | 1056   | 8    | (zeros)               | reserved                                                    |
 * | 1064   | 4    | indexTailMagic        | 0x52544931 ("RTI1"): the index tail record follows          |
 * | 1068   | 4    | indexTailCrc          | CRC-32 of [0, 40), [1032, 1064) and [1072, 1144)            |
 * | 1072   | 4    | hashSlotNum           | geometry of the newest index file                           |
 * | 1076   | 4    | indexNum              |                                                             |
 * | 1080   | 24   | indexFileName         | its name, 17 ASCII digits then zeros; all zeros: the store  |
 * |        |      |                       | had no index file                                           |
 * | 1104   | 40   | indexHeader           | its 40-byte header when the checkpoint was taken, in        |
 * |        |      |                       | IndexHeader's layout (index-file.ts); zeros with no file    |
 * | 1144   | 2952 | (zeros)               | unused                                                      |
 *
 * Invariants: every field is a non-negative safe integer; the file is at least 40 bytes. Java rewrites
 * the page in place through mmap and force(); we replace the whole file atomically (temp file, fsync,
 * rename, fsync of the directory), so a reader sees the old or the new checkpoint, never a mix. Java's
 * 40 bytes carry no checksum, because Java writes none and a store must stay readable by both.
 *
 * The extension is ours: Java neither reads nor writes it. Its CRC covers Java's 40 bytes too, so a
 * checkpoint that Java rewrote since (other timestamps) or that is damaged drops the extension, and
 * recovery falls back to RocketMQ's timestamp rule; a checkpoint from before the extension existed reads
 * the same way. The boot id tells recovery whether the OS restarted since the checkpoint was written
 * (see commit-log.ts: only an OS crash can leave stale bytes past the end of the log).
 *
 * The index tail record (ours too) says how far the newest index file was durable: entries
 * 1..indexCount-1 of the named file were written and fdatasync'd before the checkpoint was, and an entry
 * never changes once written, so after a crash recovery keeps those entries and rebuilds the rest of the
 * file from them instead of deleting it (index-service.ts). It is bound by its CRC to Java's fields and
 * to the extension above: without a valid extension it is ignored, and recovery deletes the newest index
 * file as RocketMQ does.
 *
 * abort: exists while a store runs (holds the pid as decimal text, as Java writes it). Created durably
 * at start, deleted durably on a clean stop. Recovery rule: if it exists at start, the last run crashed
 * and the CommitLog must be recovered as after a crash.
 */

import { crc32 } from 'node:zlib';
import type { IndexHeader } from './index-file.ts';
import type { StorageFs } from './storage-fs.ts';
import { writeFileAtomic } from './storage-fs.ts';
import { assert } from '../runtime/assert.ts';

/** Name of the checkpoint file in storePathRootDir. */
export const STORE_CHECKPOINT_FILE_NAME = 'checkpoint';
/** Name of the abort marker in storePathRootDir. */
export const ABORT_FILE_NAME = 'abort';
/** Size of the checkpoint file (Java maps one OS page). */
export const STORE_CHECKPOINT_FILE_BYTES = 4096;
/** Bytes of the checkpoint that carry fields. */
export const STORE_CHECKPOINT_FIELDS_BYTES = 40;
/** Where the rocketmq-ts extension starts in the checkpoint page. */
export const STORE_CHECKPOINT_EXTENSION_OFFSET = 1024;
/** Magic of the extension ("RTC1"). */
export const STORE_CHECKPOINT_EXTENSION_MAGIC = 0x5254_4331;
/** Bytes of the extension, magic and CRC included. */
export const STORE_CHECKPOINT_EXTENSION_BYTES = 40;
/** Bytes of a boot id (a UUID). */
export const BOOT_ID_BYTES = 16;
/** Where the index tail record starts in the checkpoint page. */
export const STORE_CHECKPOINT_INDEX_TAIL_OFFSET = 1064;
/** Magic of the index tail record ("RTI1"). */
export const STORE_CHECKPOINT_INDEX_TAIL_MAGIC = 0x5254_4931;
/** Bytes of the index tail record, magic and CRC included. */
export const STORE_CHECKPOINT_INDEX_TAIL_BYTES = 80;
/** Bytes kept for the index file name (17 digits, zero padded). */
const INDEX_TAIL_NAME_BYTES = 24;
const INDEX_FILE_NAME_PATTERN = /^\d{17}$/;

/**
 * The newest index file as the checkpoint saw it: its entries 1..header.indexCount-1 were durable when the
 * checkpoint was written (see the header).
 */
export type StoreCheckpointIndexTail = {
  /** The file's name (yyyyMMddHHmmssSSS). */
  readonly fileName: string;
  readonly hashSlotNum: number;
  readonly indexNum: number;
  /** The file's header after its last durable entry. */
  readonly header: Readonly<IndexHeader>;
};

/** The checkpoint's fields, with RocketMQ's names (units added). */
export type StoreCheckpoint = {
  /** Store time (ms) of the last CommitLog record flushed. */
  readonly physicMsgTimestampMs: number;
  /** Store time (ms) of the last record whose ConsumeQueue entry was flushed. */
  readonly logicsMsgTimestampMs: number;
  /** Store time (ms) of the last record in a flushed index file. */
  readonly indexMsgTimestampMs: number;
  /** The master's flushed CommitLog offset, as a slave last saw it. */
  readonly masterFlushedOffset: number;
  /** CommitLog offset confirmed so far. */
  readonly confirmPhyOffset: number;
  /**
   * Extension: CommitLog offset below which every record, its ConsumeQueue entry and its index entries
   * were durable when the checkpoint was written; recovery verifies only what lies past it.
   */
  readonly trustedPhysicalOffset?: number;
  /** Extension: the kernel's boot id (32 hex digits, not all zero) when the checkpoint was written. */
  readonly bootId?: string;
  /**
   * Extension: the newest index file and how much of it was durable, null when the store had no index
   * file; only with trustedPhysicalOffset.
   */
  readonly indexTail?: StoreCheckpointIndexTail | null;
};

/** A checkpoint of a store that never wrote one (Java's initial values). */
export const EMPTY_STORE_CHECKPOINT: StoreCheckpoint = {
  physicMsgTimestampMs: 0,
  logicsMsgTimestampMs: 0,
  indexMsgTimestampMs: 0,
  masterFlushedOffset: 0,
  confirmPhyOffset: 0,
};

const FIELDS = [
  'physicMsgTimestampMs',
  'logicsMsgTimestampMs',
  'indexMsgTimestampMs',
  'masterFlushedOffset',
  'confirmPhyOffset',
] as const;

/** Stable codes of StoreCheckpointError. */
export const StoreCheckpointErrorCode = {
  /** The checkpoint file is too short or holds a negative or out-of-range field. */
  CHECKPOINT_INVALID: 'CHECKPOINT_INVALID',
} as const;

/** A stable code of StoreCheckpointError. */
export type StoreCheckpointErrorCode = (typeof StoreCheckpointErrorCode)[keyof typeof StoreCheckpointErrorCode];

/** A checkpoint file that cannot be trusted. */
export class StoreCheckpointError extends Error {
  /** Stable machine-readable code. */
  readonly code: StoreCheckpointErrorCode;
  override readonly name = 'StoreCheckpointError';

  constructor(code: StoreCheckpointErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Encodes a checkpoint into its 4096-byte file image (with the extension when it has a trusted offset). */
export function encodeStoreCheckpoint(checkpoint: StoreCheckpoint): Uint8Array {
  const bytes = Buffer.alloc(STORE_CHECKPOINT_FILE_BYTES);
  for (const [index, field] of FIELDS.entries()) {
    const value = checkpoint[field];
    assert(Number.isSafeInteger(value) && value >= 0, () => `checkpoint ${field} out of range: ${value}`);
    bytes.writeBigInt64BE(BigInt(value), index * 8);
  }
  const trusted = checkpoint.trustedPhysicalOffset;
  if (trusted !== undefined) {
    assert(Number.isSafeInteger(trusted) && trusted >= 0, () => `checkpoint trustedPhysicalOffset out of range: ${trusted}`);
    const at = STORE_CHECKPOINT_EXTENSION_OFFSET;
    bytes.writeInt32BE(STORE_CHECKPOINT_EXTENSION_MAGIC, at);
    bytes.writeBigInt64BE(BigInt(trusted), at + 8);
    if (checkpoint.bootId !== undefined) {
      assert(/^[0-9a-f]{32}$/.test(checkpoint.bootId) && /[1-9a-f]/.test(checkpoint.bootId), () => `bad boot id ${checkpoint.bootId}`);
      bytes.write(checkpoint.bootId, at + 16, BOOT_ID_BYTES, 'hex');
    }
    bytes.writeUInt32BE(extensionCrc(bytes), at + 4);
    if (checkpoint.indexTail !== undefined) encodeIndexTail(bytes, checkpoint.indexTail);
  } else {
    assert(checkpoint.indexTail === undefined, 'the index tail record goes with a trusted offset');
  }
  // Check just before the write: the image must decode to what was asked for.
  const back = decodeStoreCheckpoint(bytes);
  assert(FIELDS.every((field) => back[field] === checkpoint[field]), 'checkpoint image does not read back');
  assert(back.trustedPhysicalOffset === trusted && back.bootId === (trusted === undefined ? undefined : checkpoint.bootId), 'extension does not read back');
  assert(sameIndexTail(back.indexTail, checkpoint.indexTail), 'index tail record does not read back');
  return bytes;
}

/** Writes the index tail record into a checkpoint image whose extension is already written. */
function encodeIndexTail(bytes: Buffer, tail: StoreCheckpointIndexTail | null): void {
  const at = STORE_CHECKPOINT_INDEX_TAIL_OFFSET;
  bytes.writeInt32BE(STORE_CHECKPOINT_INDEX_TAIL_MAGIC, at);
  if (tail !== null) {
    assert(INDEX_FILE_NAME_PATTERN.test(tail.fileName), () => `bad index file name ${tail.fileName}`);
    assert(validIndexTailBody(tail.hashSlotNum, tail.indexNum, tail.header), () => `impossible index tail ${JSON.stringify(tail)}`);
    bytes.writeInt32BE(tail.hashSlotNum, at + 8);
    bytes.writeInt32BE(tail.indexNum, at + 12);
    bytes.write(tail.fileName, at + 16, INDEX_TAIL_NAME_BYTES, 'latin1');
    const header = at + 16 + INDEX_TAIL_NAME_BYTES;
    bytes.writeBigInt64BE(BigInt(tail.header.beginTimestampMs), header);
    bytes.writeBigInt64BE(BigInt(tail.header.endTimestampMs), header + 8);
    bytes.writeBigInt64BE(BigInt(tail.header.beginPhyOffset), header + 16);
    bytes.writeBigInt64BE(BigInt(tail.header.endPhyOffset), header + 24);
    bytes.writeInt32BE(tail.header.hashSlotCount, header + 32);
    bytes.writeInt32BE(tail.header.indexCount, header + 36);
  }
  bytes.writeUInt32BE(indexTailCrc(bytes), at + 4);
}

/** Whether a record's numbers can describe an index file (IndexFile's invariants). */
function validIndexTailBody(hashSlotNum: number, indexNum: number, header: Readonly<IndexHeader>): boolean {
  const nonNegative = [header.beginTimestampMs, header.endTimestampMs, header.beginPhyOffset, header.endPhyOffset, header.hashSlotCount];
  return hashSlotNum > 0 && indexNum > 1 && hashSlotNum <= 0x7fff_ffff && indexNum <= 0x7fff_ffff &&
    nonNegative.every((value) => Number.isSafeInteger(value) && value >= 0) && header.hashSlotCount <= 0x7fff_ffff &&
    Number.isSafeInteger(header.indexCount) && header.indexCount >= 1 && header.indexCount <= indexNum &&
    header.beginPhyOffset <= header.endPhyOffset;
}

function sameIndexTail(a: StoreCheckpointIndexTail | null | undefined, b: StoreCheckpointIndexTail | null | undefined): boolean {
  if (a === undefined || a === null || b === undefined || b === null) return a === b;
  return a.fileName === b.fileName && a.hashSlotNum === b.hashSlotNum && a.indexNum === b.indexNum &&
    (Object.keys(a.header) as (keyof IndexHeader)[]).every((key) => a.header[key] === b.header[key]);
}

/** CRC-32 of Java's fields, the extension's body and the record's body: the record is void without both. */
function indexTailCrc(bytes: Buffer): number {
  const at = STORE_CHECKPOINT_INDEX_TAIL_OFFSET;
  const bound = extensionCrc(bytes);
  return crc32(bytes.subarray(at + 8, at + STORE_CHECKPOINT_INDEX_TAIL_BYTES), bound);
}

/** CRC-32 of Java's fields and the extension's body: binds the extension to the fields it was written with. */
function extensionCrc(bytes: Buffer): number {
  const body = STORE_CHECKPOINT_EXTENSION_OFFSET + 8;
  const fields = crc32(bytes.subarray(0, STORE_CHECKPOINT_FIELDS_BYTES));
  return crc32(bytes.subarray(body, STORE_CHECKPOINT_EXTENSION_OFFSET + STORE_CHECKPOINT_EXTENSION_BYTES), fields);
}

/** Decodes a checkpoint file image; throws StoreCheckpointError if Java's fields cannot be trusted. */
export function decodeStoreCheckpoint(bytes: Uint8Array): StoreCheckpoint {
  if (bytes.length < STORE_CHECKPOINT_FIELDS_BYTES) {
    throw new StoreCheckpointError('CHECKPOINT_INVALID', `checkpoint has ${bytes.length} bytes, needs 40`);
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: Record<string, unknown> = {};
  for (const [index, field] of FIELDS.entries()) {
    const value = view.readBigInt64BE(index * 8);
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new StoreCheckpointError('CHECKPOINT_INVALID', `checkpoint ${field} out of range: ${value}`);
    }
    values[field] = Number(value);
  }
  Object.assign(values, decodeExtension(view));
  return values as unknown as StoreCheckpoint;
}

/** The extension's fields, or none when it is absent, damaged or stale (see the header). */
function decodeExtension(view: Buffer): Pick<StoreCheckpoint, 'trustedPhysicalOffset' | 'bootId' | 'indexTail'> {
  const at = STORE_CHECKPOINT_EXTENSION_OFFSET;
  if (view.length < at + STORE_CHECKPOINT_EXTENSION_BYTES) return {};
  if (view.readInt32BE(at) !== STORE_CHECKPOINT_EXTENSION_MAGIC || view.readUInt32BE(at + 4) !== extensionCrc(view)) return {};
  const trusted = view.readBigInt64BE(at + 8);
  if (trusted < 0n || trusted > BigInt(Number.MAX_SAFE_INTEGER)) return {};
  const bootId = view.toString('hex', at + 16, at + 16 + BOOT_ID_BYTES);
  const fields: { trustedPhysicalOffset: number; bootId?: string; indexTail?: StoreCheckpointIndexTail | null } = { trustedPhysicalOffset: Number(trusted) };
  if (!/^0+$/.test(bootId)) fields.bootId = bootId;
  const indexTail = decodeIndexTail(view);
  if (indexTail !== undefined) fields.indexTail = indexTail;
  return fields;
}

/** The index tail record (null: no index file), or undefined when it is absent, damaged or stale. */
function decodeIndexTail(view: Buffer): StoreCheckpointIndexTail | null | undefined {
  const at = STORE_CHECKPOINT_INDEX_TAIL_OFFSET;
  if (view.length < at + STORE_CHECKPOINT_INDEX_TAIL_BYTES) return undefined;
  if (view.readInt32BE(at) !== STORE_CHECKPOINT_INDEX_TAIL_MAGIC || view.readUInt32BE(at + 4) !== indexTailCrc(view)) return undefined;
  const body = view.subarray(at + 8, at + STORE_CHECKPOINT_INDEX_TAIL_BYTES);
  if (body.every((byte) => byte === 0)) return null;
  const nameBytes = view.subarray(at + 16, at + 16 + INDEX_TAIL_NAME_BYTES);
  const fileName = nameBytes.toString('latin1', 0, 17);
  if (!INDEX_FILE_NAME_PATTERN.test(fileName) || !nameBytes.subarray(17).every((byte) => byte === 0)) return undefined;
  const headerAt = at + 16 + INDEX_TAIL_NAME_BYTES;
  const int64 = (position: number): number => {
    const value = view.readBigInt64BE(position);
    return value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(value);
  };
  const header: IndexHeader = {
    beginTimestampMs: int64(headerAt),
    endTimestampMs: int64(headerAt + 8),
    beginPhyOffset: int64(headerAt + 16),
    endPhyOffset: int64(headerAt + 24),
    hashSlotCount: view.readInt32BE(headerAt + 32),
    indexCount: view.readInt32BE(headerAt + 36),
  };
  const hashSlotNum = view.readInt32BE(at + 8);
  const indexNum = view.readInt32BE(at + 12);
  return validIndexTailBody(hashSlotNum, indexNum, header) ? { fileName, hashSlotNum, indexNum, header } : undefined;
}

/**
 * The kernel's boot id as 32 hex digits (Linux: /proc/sys/kernel/random/boot_id), or undefined where
 * there is none. It changes on every boot, so two equal ids mean no OS crash happened in between.
 */
export function readBootId(storageFs: StorageFs): string | undefined {
  const file = '/proc/sys/kernel/random/boot_id';
  try {
    if (!storageFs.existsSync(file)) return undefined;
    const id = storageFs.readFileSync(file).toString('utf8').trim().replaceAll('-', '').toLowerCase();
    return /^[0-9a-f]{32}$/.test(id) ? id : undefined;
  } catch {
    // No boot id (another OS, a sandbox): recovery then assumes the OS may have crashed.
    return undefined;
  }
}

/** Reads `<rootDir>/checkpoint`; null when there is none (a new store). */
export function readStoreCheckpoint(storageFs: StorageFs, rootDir: string): StoreCheckpoint | null {
  const path = `${rootDir}/${STORE_CHECKPOINT_FILE_NAME}`;
  if (!storageFs.existsSync(path)) return null;
  return decodeStoreCheckpoint(storageFs.readFileSync(path));
}

/** Replaces `<rootDir>/checkpoint` atomically and durably. */
export function writeStoreCheckpoint(storageFs: StorageFs, rootDir: string, checkpoint: StoreCheckpoint): void {
  writeFileAtomic(storageFs, `${rootDir}/${STORE_CHECKPOINT_FILE_NAME}`, encodeStoreCheckpoint(checkpoint));
}

function syncDir(storageFs: StorageFs, dir: string): void {
  const fd = storageFs.openSync(dir, 'r');
  try {
    storageFs.fsyncSync(fd);
  } finally {
    storageFs.closeSync(fd);
  }
}

/** Whether `<rootDir>/abort` exists: true means the last run did not stop cleanly. */
export function abortFileExists(storageFs: StorageFs, rootDir: string): boolean {
  return storageFs.existsSync(`${rootDir}/${ABORT_FILE_NAME}`);
}

/** Creates `<rootDir>/abort` holding `pid`, durably, at start. */
export function createAbortFile(storageFs: StorageFs, rootDir: string, pid: number): void {
  assert(Number.isInteger(pid) && pid >= 0, () => `bad pid ${pid}`);
  storageFs.mkdirSync(rootDir, { recursive: true });
  writeFileAtomic(storageFs, `${rootDir}/${ABORT_FILE_NAME}`, String(pid));
}

/** Deletes `<rootDir>/abort`, durably, at the end of a clean stop. */
export function deleteAbortFile(storageFs: StorageFs, rootDir: string): void {
  const path = `${rootDir}/${ABORT_FILE_NAME}`;
  if (!storageFs.existsSync(path)) return;
  storageFs.unlinkSync(path);
  syncDir(storageFs, rootDir);
}
