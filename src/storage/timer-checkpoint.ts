/**
 * The timer checkpoint: `<storePathRootDir>/config/timercheck` (RocketMQ's TimerCheckpoint). Its first 56
 * bytes are RocketMQ's fields in RocketMQ's order; we add the wheel geometry it was written with and a
 * CRC. Integers are big-endian; int64 fields are safe integers >= 0.
 *
 * | offset | size | field                  | meaning                                                      |
 * |--------|------|------------------------|--------------------------------------------------------------|
 * | 0      | 8    | lastReadTimeMs         | every slot before it was delivered, durably (its re-puts are |
 * |        |      |                        | in the CommitLog's durable part)                             |
 * | 8      | 8    | lastTimerLogFlushPos   | the timer log is durable before it, and the wheel on disk    |
 * |        |      |                        | links every unit before it                                   |
 * | 16     | 8    | lastTimerQueueOffset   | every message of rmq_sys_wheel_timer queue 0 before it is in |
 * |        |      |                        | the durable log, or was re-put durably                       |
 * | 24     | 8    | masterTimerQueueOffset | equal to lastTimerQueueOffset (no slaves here)               |
 * | 32     | 8    | stateVersion           | dataVersion.stateVersion (0: no state machine)               |
 * | 40     | 8    | timestamp              | dataVersion.timestamp: when it was written (ms)              |
 * | 48     | 8    | counter                | dataVersion.counter: checkpoints written                     |
 * | 56     | 4    | precisionMs            | timerPrecisionMs of the wheel                                |
 * | 60     | 4    | slotsTotal             | slotsTotal of the wheel                                      |
 * | 64     | 4    | magic                  | 0x544d434b ("TMCK")                                          |
 * | 68     | 4    | crc                    | CRC-32 (zlib) of bytes 0 .. 68                               |
 *
 * Invariants: written whole and atomically (temp file, fsync, rename, fsync of the directory), and only
 * after the timer log and the wheel were synced up to lastTimerLogFlushPos; so a reader finds the old
 * checkpoint or the new one, each consistent with the files. Checked just after reading and just before
 * writing. Recovery rule: a missing file is a new timer store; a file that fails its checks is
 * TIMER_CHECKPOINT_INVALID (an operator decides; nothing is guessed); another geometry than configured is
 * TIMER_CONFIG_MISMATCH (the wheel's slots would mean other times).
 */
import { crc32 } from 'node:zlib';
import { assert } from '../runtime/assert.ts';
import { type StorageFs, writeFileAtomic } from './storage-fs.ts';
import { TimerStoreError, getInt64, putInt64, timerIo, viewOf } from './timer-format.ts';

/** Bytes of the checkpoint. */
export const TIMER_CHECKPOINT_BYTES = 72;
/** "TMCK". */
export const TIMER_CHECKPOINT_MAGIC = 0x544d434b;

/** The checkpoint's fields (RocketMQ's names). */
export type TimerCheckpoint = {
  readonly lastReadTimeMs: number;
  readonly lastTimerLogFlushPos: number;
  readonly lastTimerQueueOffset: number;
  readonly masterTimerQueueOffset: number;
  readonly stateVersion: number;
  readonly timestampMs: number;
  readonly counter: number;
  readonly precisionMs: number;
  readonly slotsTotal: number;
};

const INT64_FIELDS = [
  'lastReadTimeMs',
  'lastTimerLogFlushPos',
  'lastTimerQueueOffset',
  'masterTimerQueueOffset',
  'stateVersion',
  'timestampMs',
  'counter',
] as const;

/** Encodes a checkpoint; the image is decoded again before it is returned. */
export function encodeTimerCheckpoint(checkpoint: TimerCheckpoint): Uint8Array {
  const bytes = new Uint8Array(TIMER_CHECKPOINT_BYTES);
  const view = viewOf(bytes);
  for (const [index, field] of INT64_FIELDS.entries()) {
    const value = checkpoint[field];
    assert(Number.isSafeInteger(value) && value >= 0, () => `timer checkpoint ${field} out of range: ${value}`);
    putInt64(view, index * 8, value);
  }
  assert(Number.isInteger(checkpoint.precisionMs) && checkpoint.precisionMs >= 1, 'precisionMs >= 1');
  assert(Number.isInteger(checkpoint.slotsTotal) && checkpoint.slotsTotal >= 1, 'slotsTotal >= 1');
  view.setUint32(56, checkpoint.precisionMs);
  view.setUint32(60, checkpoint.slotsTotal);
  view.setUint32(64, TIMER_CHECKPOINT_MAGIC);
  view.setUint32(68, crc32(bytes.subarray(0, 68)));
  const back = decodeTimerCheckpoint(bytes);
  assert(INT64_FIELDS.every((field) => back[field] === checkpoint[field]), 'timer checkpoint image does not read back');
  return bytes;
}

/** Decodes a checkpoint image; throws TIMER_CHECKPOINT_INVALID when it fails a check. */
export function decodeTimerCheckpoint(bytes: Uint8Array): TimerCheckpoint {
  const invalid = (why: string): TimerStoreError => new TimerStoreError('TIMER_CHECKPOINT_INVALID', `timer checkpoint ${why}`);
  if (bytes.length < TIMER_CHECKPOINT_BYTES) throw invalid(`has ${bytes.length} bytes, needs ${TIMER_CHECKPOINT_BYTES}`);
  const view = viewOf(bytes);
  if (view.getUint32(64) !== TIMER_CHECKPOINT_MAGIC) throw invalid('has no TMCK magic');
  if (view.getUint32(68) !== crc32(bytes.subarray(0, 68))) throw invalid('fails its CRC');
  const values: Record<string, number> = {};
  for (const [index, field] of INT64_FIELDS.entries()) {
    const value = getInt64(view, index * 8);
    if (value === undefined || value < 0) throw invalid(`field ${field} out of range`);
    values[field] = value;
  }
  values['precisionMs'] = view.getUint32(56);
  values['slotsTotal'] = view.getUint32(60);
  return values as TimerCheckpoint;
}

/** Reads the checkpoint at `file`; null when there is none (a new timer store). */
export function readTimerCheckpoint(storageFs: StorageFs, file: string): TimerCheckpoint | null {
  if (!storageFs.existsSync(file)) return null;
  return decodeTimerCheckpoint(timerIo(file, 'read', () => storageFs.readFileSync(file)));
}

/** Replaces the checkpoint at `file` atomically and durably (creating its directory). */
export function writeTimerCheckpoint(storageFs: StorageFs, file: string, checkpoint: TimerCheckpoint): void {
  const bytes = encodeTimerCheckpoint(checkpoint);
  const slash = file.lastIndexOf('/');
  if (slash > 0) timerIo(file, 'mkdir', () => storageFs.mkdirSync(file.slice(0, slash), { recursive: true }));
  timerIo(file, 'write', () => writeFileAtomic(storageFs, file, bytes));
}
