/**
 * The store's `checkpoint` file and its `abort` marker, both in storePathRootDir, as RocketMQ 5 keeps
 * them (StoreCheckpoint, DefaultMessageStore.createTempFile). All integers are big-endian int64.
 *
 * checkpoint, one OS page (4096 bytes); Java maps the page and reads the first 40 bytes:
 *
 * | offset | size | field               | meaning                                                       |
 * |--------|------|---------------------|---------------------------------------------------------------|
 * | 0      | 8    | physicMsgTimestamp  | store time (ms) of the last CommitLog record flushed          |
 * | 8      | 8    | logicsMsgTimestamp  | store time (ms) of the last record whose ConsumeQueue entry   |
 * |        |      |                     | was flushed                                                   |
 * | 16     | 8    | indexMsgTimestamp   | store time (ms) of the last record in a flushed index file    |
 * | 24     | 8    | masterFlushedOffset | master's flushed CommitLog offset, kept by a slave (HA)       |
 * | 32     | 8    | confirmPhyOffset    | CommitLog offset confirmed (replicated, or flushed) so far    |
 * | 40     | 4056 | (zeros)             | unused                                                        |
 *
 * Invariants: every field is a non-negative safe integer; the file is at least 40 bytes. Java rewrites
 * the page in place through mmap and force(); we replace the whole file atomically (temp file, fsync,
 * rename, fsync of the directory), so a reader sees the old or the new checkpoint, never a mix. There is
 * no checksum, because Java writes none and a store must stay readable by both.
 *
 * abort: exists while a store runs (holds the pid as decimal text, as Java writes it). Created durably
 * at start, deleted durably on a clean stop. Recovery rule: if it exists at start, the last run crashed
 * and the CommitLog must be recovered as after a crash.
 */

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

/** Encodes a checkpoint into its 4096-byte file image. */
export function encodeStoreCheckpoint(checkpoint: StoreCheckpoint): Uint8Array {
  const bytes = Buffer.alloc(STORE_CHECKPOINT_FILE_BYTES);
  for (const [index, field] of FIELDS.entries()) {
    const value = checkpoint[field];
    assert(Number.isSafeInteger(value) && value >= 0, `checkpoint ${field} out of range: ${value}`);
    bytes.writeBigInt64BE(BigInt(value), index * 8);
  }
  // Check just before the write: the image must decode to what was asked for.
  const back = decodeStoreCheckpoint(bytes);
  assert(FIELDS.every((field) => back[field] === checkpoint[field]), 'checkpoint image does not read back');
  return bytes;
}

/** Decodes a checkpoint file image; throws StoreCheckpointError if it cannot be trusted. */
export function decodeStoreCheckpoint(bytes: Uint8Array): StoreCheckpoint {
  if (bytes.length < STORE_CHECKPOINT_FIELDS_BYTES) {
    throw new StoreCheckpointError('CHECKPOINT_INVALID', `checkpoint has ${bytes.length} bytes, needs 40`);
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: Record<string, number> = {};
  for (const [index, field] of FIELDS.entries()) {
    const value = view.readBigInt64BE(index * 8);
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new StoreCheckpointError('CHECKPOINT_INVALID', `checkpoint ${field} out of range: ${value}`);
    }
    values[field] = Number(value);
  }
  return values as StoreCheckpoint;
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
  assert(Number.isInteger(pid) && pid >= 0, `bad pid ${pid}`);
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
