/**
 * What the three files of the timer store share (RocketMQ 5's TimerMessageStore keeps timer messages in
 * `<storePathRootDir>/timerwheel`, `<storePathRootDir>/timerlog/` and `<storePathRootDir>/config/timercheck`):
 * their names, the big-endian int64 fields they all use, and the error every one of them throws.
 *
 * | file                   | owner               | what it holds                                              |
 * |------------------------|---------------------|------------------------------------------------------------|
 * | timerwheel             | timer-wheel.ts      | one 32-byte slot per precision step: the head of a chain    |
 * | timerlog/<20 digits>   | timer-log.ts        | 56-byte units, chained per slot from the newest backwards   |
 * | config/timercheck      | timer-checkpoint.ts | how far the wheel, the log and the delivery are durable     |
 *
 * int64 fields hold safe integers (below 2^53) or -1 ("none"); anything else read from disk is corrupt.
 */
import path from 'node:path';
import { assert } from '../runtime/assert.ts';

/** File and directory names, RocketMQ's (TimerMessageStore.getTimerWheelPath / getTimerLogPath, BrokerPathConfigHelper). */
export const TIMER_FILE_NAMES = {
  wheel: 'timerwheel',
  logDir: 'timerlog',
  configDir: 'config',
  checkpoint: 'timercheck',
} as const;

/** Where the timer store's files live under storePathRootDir. */
export type TimerPaths = { readonly wheelFile: string; readonly logDir: string; readonly checkpointFile: string };

/** The timer store's paths under `rootDir`. */
export function timerPaths(rootDir: string): TimerPaths {
  assert(rootDir.length > 0, 'storePathRootDir must not be empty');
  return {
    wheelFile: path.join(rootDir, TIMER_FILE_NAMES.wheel),
    logDir: path.join(rootDir, TIMER_FILE_NAMES.logDir),
    checkpointFile: path.join(rootDir, TIMER_FILE_NAMES.configDir, TIMER_FILE_NAMES.checkpoint),
  };
}

/** Stable codes of TimerStoreError. */
export const TimerStoreErrorCode = {
  /** timerwheel has another size than slotsTotal asks for (RocketMQ: "Timer wheel length ... != expected"). */
  WHEEL_SIZE_MISMATCH: 'TIMER_WHEEL_SIZE_MISMATCH',
  /** timercheck was written with another timerPrecisionMs or slotsTotal: the wheel's slots mean other times. */
  CONFIG_MISMATCH: 'TIMER_CONFIG_MISMATCH',
  /** timercheck is short, fails its CRC or holds a field out of range. */
  CHECKPOINT_INVALID: 'TIMER_CHECKPOINT_INVALID',
  /** A file operation failed; `errno` says why. */
  IO_ERROR: 'TIMER_IO_ERROR',
} as const;

/** A stable code of TimerStoreError. */
export type TimerStoreErrorCode = (typeof TimerStoreErrorCode)[keyof typeof TimerStoreErrorCode];

/** A timer store that cannot open or write as asked; an operator has to look at it. */
export class TimerStoreError extends Error {
  /** Stable machine-readable code. */
  readonly code: TimerStoreErrorCode;
  override readonly name = 'TimerStoreError';

  constructor(code: TimerStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const TWO_32 = 0x1_0000_0000;
const HIGH_MAX = 0x1f_ffff;
const ALL_ONES = 0xffff_ffff;

/** Writes a safe integer >= -1 as a big-endian int64. */
export function putInt64(view: DataView, at: number, value: number): void {
  if (value === -1) {
    view.setUint32(at, ALL_ONES);
    view.setUint32(at + 4, ALL_ONES);
    return;
  }
  assert(Number.isSafeInteger(value) && value >= 0, () => `int64 field out of range: ${value}`);
  view.setUint32(at, Math.floor(value / TWO_32));
  view.setUint32(at + 4, value >>> 0);
}

/** Reads a big-endian int64 written by putInt64; undefined when it is neither -1 nor a safe integer >= 0. */
export function getInt64(view: DataView, at: number): number | undefined {
  const high = view.getUint32(at);
  const low = view.getUint32(at + 4);
  if (high === ALL_ONES && low === ALL_ONES) return -1;
  if (high > HIGH_MAX) return undefined;
  return high * TWO_32 + low;
}

/** A DataView over `bytes`. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Runs a file operation; a thrown system error becomes TIMER_IO_ERROR naming the file. */
export function timerIo<T>(file: string, op: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof TimerStoreError) throw error;
    const errno = (error as { code?: unknown } | null)?.code;
    throw new TimerStoreError('TIMER_IO_ERROR', `${op} ${file} failed: ${typeof errno === 'string' ? errno : String(error)}`, { cause: error });
  }
}
