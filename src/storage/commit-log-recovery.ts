/**
 * The reading half of CommitLog recovery (commit-log.ts states the rule and owns the format): scanning
 * files through one reusable window, telling a torn tail from damage, and cutting the log durably.
 *
 * Scans read the FILES through a FileWindow (one buffer of SCAN_CHUNK_BYTES, grown only for a larger
 * record), never through the page-cache buffers: a store reopens without touching a fresh gigabyte of
 * memory per file, and only the active file gets a cache, starting at its end (MappedFile.cacheFromEnd).
 *
 * What lies past the end of the log. A file is zero past its data when created, and the writer writes
 * in order, each write() continuing where the last one ended. A process that dies (kill -9) leaves the
 * kernel's page cache intact, so past the first bad record there are at most the remains of the one
 * write it died in: part of one record, then zeros, and nothing in later files. Only an OS crash or a
 * power loss can leave older bytes further on (pages reach the disk in any order). So when no OS crash
 * can have happened since the tail was written (a clean stop, or the same boot as the checkpoint), the
 * stop is classified from a window of one record past it, plus a guard chunk after the window and the
 * first chunk of each later file that must be zero; anything there means the assumption does not hold,
 * and the full check runs instead: every byte past the stop, in its file and in every later file.
 */

import { assert } from '../runtime/assert.ts';
import { type MappedFile, SCAN_CHUNK_BYTES, syncDirectory } from './mapped-file.ts';
import {
  BLANK_MAGIC_CODE,
  BLANK_MARKER_BYTES,
  MESSAGE_MAGIC_CODE,
  MESSAGE_MAGIC_CODE_V2,
  type RecordCheck,
  type RecordFault,
  type RecordView,
  checkRecord,
  decodeRecord,
} from './message-record.ts';
import type { StorageFs } from './storage-fs.ts';

/** Where a scan stopped: a file index, a position in that file, and the check that failed there. */
export type ScanStop = {
  readonly index: number;
  readonly position: number;
  /** Null when the scan ran to the end of the last file (it ends with a blank marker). */
  readonly check: RecordCheck | null;
};

/** How a stop was classified and how much of the tail may need zeroing. */
export type StopClass = {
  readonly tornTail: { readonly physicalOffset: number; readonly reason: RecordFault } | null;
  readonly corruptions: readonly { readonly physicalOffset: number; readonly reason: RecordFault; readonly validDataAtOffset: number | null }[];
  /** True when the stop file is already zero from the stop on: cutting needs no I/O. */
  readonly zeroTail: boolean;
  /** Past this position of the stop file nothing is non-zero (the file's end unless a window was enough). */
  readonly dirtyEnd: number;
  /** Whether the window sufficed ('window') or every byte past the stop was read ('full'). */
  readonly tailCheck: 'window' | 'full';
};

function int32At(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
}

/** A range of one file read into a reusable buffer; `bytes[i]` is file position `start + i`. */
export class FileWindow {
  /** The buffer; valid from 0 to `end - start`. */
  bytes: Uint8Array;
  /** File position of bytes[0]. */
  start = 0;
  /** File position just past the last byte read. */
  end = 0;
  private file: MappedFile | null = null;

  constructor(sizeBytes: number) {
    assert(Number.isInteger(sizeBytes) && sizeBytes >= BLANK_MARKER_BYTES, () => `bad window size ${sizeBytes}`);
    this.bytes = new Uint8Array(sizeBytes);
  }

  /** Makes the window hold [position, position + length) of `file`, clamped to the file's end. */
  cover(file: MappedFile, position: number, length: number): void {
    assert(Number.isInteger(position) && position >= 0 && position <= file.sizeBytes, () => `bad position ${position}`);
    const need = Math.min(length, file.sizeBytes - position);
    if (file === this.file && position >= this.start && position + need <= this.end) return;
    // A record larger than the window (a large maxMessageSize) gets a buffer of its own size.
    if (need > this.bytes.length) this.bytes = new Uint8Array(need);
    const readBytes = Math.min(this.bytes.length, file.sizeBytes - position);
    file.readFile(this.bytes.subarray(0, readBytes), position);
    this.file = file;
    this.start = position;
    this.end = position + readBytes;
  }
}

/**
 * Checks the record or blank marker at `position` of `file` as checkRecord does with the file's end as
 * the limit, reading only the record's own bytes (a blank marker is judged by its header alone).
 */
function checkAt(window: FileWindow, file: MappedFile, position: number, recordMaxBytes: number, verifyBodyCrc: boolean): RecordCheck {
  const remaining = file.sizeBytes - position;
  window.cover(file, position, BLANK_MARKER_BYTES);
  let at = position - window.start;
  if (remaining >= BLANK_MARKER_BYTES) {
    const declared = int32At(window.bytes, at);
    if (int32At(window.bytes, at + 4) === BLANK_MAGIC_CODE) {
      return declared === remaining ? { kind: 'blank', size: declared } : { kind: 'corrupt', reason: 'blank-size' };
    }
    if (declared > BLANK_MARKER_BYTES) {
      window.cover(file, position, Math.min(declared, recordMaxBytes));
      at = position - window.start;
    }
  }
  const limit = at + Math.min(remaining, window.end - position);
  return checkRecord(window.bytes, at, limit, { expectedPhysicalOffset: file.startOffset + position, maxSizeBytes: recordMaxBytes, verifyBodyCrc });
}

/** Store time of the record whose whole bytes the window holds at `position` (checked before). */
function storeTimestampAt(window: FileWindow, position: number): number {
  return decodeRecord(window.bytes, position - window.start).storeTimestampMs;
}

/**
 * Scans from `startPosition` of files[startIndex] until a record fails or the last file ends with a
 * blank marker, visiting every verified record (the view is valid only during the call). With
 * `trustedBeforeMs`, the leading records of the first file stored before that time are checked for
 * structure only (no CRC) and not visited, up to the first record at or after it.
 */
export function scanFiles(
  window: FileWindow,
  files: readonly MappedFile[],
  startIndex: number,
  startPosition: number,
  recordMaxBytes: number,
  visit: (record: RecordView) => void,
  trustedBeforeMs: number | undefined,
): ScanStop {
  let trusting = trustedBeforeMs !== undefined;
  for (let index = startIndex; index < files.length; index++) {
    const file = files[index]!;
    let position = index === startIndex ? startPosition : 0;
    // Each pass moves forward by a checked record size, so it ends within sizeBytes / RECORD_MIN passes.
    for (;;) {
      let check = checkAt(window, file, position, recordMaxBytes, !trusting);
      if (check.kind === 'record' && trusting) {
        if (storeTimestampAt(window, position) < trustedBeforeMs!) {
          position += check.size;
          continue;
        }
        check = checkAt(window, file, position, recordMaxBytes, true);
      }
      trusting = false;
      if (check.kind === 'record') {
        visit(decodeRecord(window.bytes, position - window.start));
        position += check.size;
        continue;
      }
      if (check.kind === 'blank') break;
      return { index, position, check };
    }
    if (index === files.length - 1) return { index, position: file.sizeBytes, check: null };
  }
  assert(false, 'scan ran past the last file');
}

const MAGIC_PATTERNS = [MESSAGE_MAGIC_CODE, MESSAGE_MAGIC_CODE_V2, BLANK_MAGIC_CODE].map((magic) => {
  const pattern = Buffer.alloc(4);
  pattern.writeInt32BE(magic);
  return pattern;
});

/** The two windows a search for valid data reads through: chunks to search, and candidate records. */
export type ProbeWindows = { readonly chunks: FileWindow; readonly records: FileWindow };

/**
 * Log offset of the first valid record or blank marker (CRC included) starting in [from, to) of `file`,
 * or null. Searches the magic codes chunk by chunk; each candidate is checked through its own window.
 */
function findValidData(windows: ProbeWindows, file: MappedFile, from: number, to: number, recordMaxBytes: number): number | null {
  const { chunks, records } = windows;
  // Each pass moves `chunkStart` forward by at least one byte short of a chunk, bounded by (to - from).
  for (let chunkStart = from; chunkStart < to; ) {
    // Three extra bytes let a magic code that straddles the chunk's end be found in this chunk.
    const length = Math.min(chunks.bytes.length, to - chunkStart + 7);
    chunks.cover(file, chunkStart, length);
    const haystack = Buffer.from(chunks.bytes.buffer, chunks.bytes.byteOffset, chunks.end - chunks.start);
    let best: number | null = null;
    for (const pattern of MAGIC_PATTERNS) {
      let at = haystack.indexOf(pattern, Math.max(0, chunkStart + 4 - chunks.start));
      // Each pass moves `at` forward, so this ends within the chunk's length.
      while (at >= 0) {
        const position = chunks.start + at - 4;
        if (position >= to || (best !== null && position >= best)) break;
        const check = checkAt(records, file, position, recordMaxBytes, true);
        if (check.kind === 'record' || check.kind === 'blank') {
          best = position;
          break;
        }
        at = haystack.indexOf(pattern, at + 1);
      }
    }
    if (best !== null) return file.startOffset + best;
    const next = chunks.end - 7;
    chunkStart = next > chunkStart ? next : chunks.end;
  }
  return null;
}

/** The full check: valid data anywhere after the stop, in its file and then in each later file. */
function probeAfter(windows: ProbeWindows, files: readonly MappedFile[], stop: ScanStop, recordMaxBytes: number): number | null {
  const file = files[stop.index]!;
  const found = findValidData(windows, file, stop.position + 1, file.sizeBytes, recordMaxBytes);
  if (found !== null) return found;
  for (const later of files.slice(stop.index + 1)) {
    const inLater = findValidData(windows, later, 0, later.sizeBytes, recordMaxBytes);
    if (inLater !== null) return inLater;
  }
  return null;
}

/** Whether every byte after `stop`, in its file and in every later file, is zero on disk. */
function zeroAfter(files: readonly MappedFile[], stop: ScanStop): boolean {
  if (files[stop.index]!.firstNonZeroFrom(stop.position) !== null) return false;
  return files.slice(stop.index + 1).every((file) => file.firstNonZeroFrom(0) === null);
}

/**
 * The end of the window past `stop` that may hold the remains of the last write (one record: the larger
 * of what the header at the stop declares and `writeMaxBytes`), or null when a byte past it, in the
 * guard chunk after it or at the start of a later file, is not zero: then the window is not enough.
 */
function quietWindowEnd(window: FileWindow, files: readonly MappedFile[], stop: ScanStop, writeMaxBytes: number): number | null {
  const file = files[stop.index]!;
  let reach = writeMaxBytes + BLANK_MARKER_BYTES;
  if (stop.position + 4 <= file.sizeBytes) {
    window.cover(file, stop.position, 4);
    reach = Math.max(reach, int32At(window.bytes, stop.position - window.start) >>> 0);
  }
  const end = Math.min(file.sizeBytes, stop.position + reach);
  if (file.firstNonZeroFrom(end, Math.min(file.sizeBytes, end + SCAN_CHUNK_BYTES)) !== null) return null;
  for (const later of files.slice(stop.index + 1)) {
    if (later.firstNonZeroFrom(0, Math.min(later.sizeBytes, SCAN_CHUNK_BYTES)) !== null) return null;
  }
  return end;
}

/**
 * Tells a torn tail (expected after a crash) from corruption (valid data after it, or damage after a
 * clean stop). `windowed`: no OS crash can have happened since the tail was written (see the header).
 */
export function classifyStop(
  windows: ProbeWindows,
  files: readonly MappedFile[],
  stop: ScanStop,
  options: { readonly cleanShutdown: boolean; readonly windowed: boolean; readonly recordMaxBytes: number; readonly writeMaxBytes: number },
): StopClass {
  const file = files[stop.index]!;
  const check = stop.check;
  const quiet = { tornTail: null, corruptions: [], zeroTail: true, dirtyEnd: stop.position } as const;
  // Nothing lies past the end of a full last file: there is nothing to read either way.
  if (check === null || check.kind === 'record' || check.kind === 'blank') return { ...quiet, tailCheck: options.windowed ? 'window' : 'full' };
  const windowEnd = options.windowed ? quietWindowEnd(windows.records, files, stop, options.writeMaxBytes) : null;
  const tailCheck = windowEnd === null ? 'full' : 'window';
  if (check.reason === 'unwritten') {
    const zero = windowEnd === null ? zeroAfter(files, stop) : file.firstNonZeroFrom(stop.position, windowEnd) === null;
    if (zero) return { ...quiet, tailCheck };
  }
  const physicalOffset = file.startOffset + stop.position;
  const validDataAtOffset = windowEnd === null
    ? probeAfter(windows, files, stop, options.recordMaxBytes)
    : findValidData(windows, file, stop.position + 1, windowEnd, options.recordMaxBytes);
  const dirtyEnd = windowEnd ?? file.sizeBytes;
  if (validDataAtOffset !== null || (options.cleanShutdown && check.reason !== 'unwritten')) {
    const corruptions = [{ physicalOffset, reason: check.reason, validDataAtOffset }];
    return { tornTail: null, corruptions, zeroTail: false, dirtyEnd, tailCheck };
  }
  const tornTail = check.reason === 'unwritten' ? null : { physicalOffset, reason: check.reason };
  return { tornTail, corruptions: [], zeroTail: false, dirtyEnd, tailCheck };
}

/**
 * Ends the log at `stop` durably: zeroes what may be non-zero past it in its file (up to `dirtyEnd`),
 * deletes later files, fdatasyncs the scanned files (a crashed process's last writes may sit in the OS
 * cache only, and recovery reports everything it keeps as flushed), and starts the end file's cache at
 * its end. Returns how many later files were deleted.
 */
export function cutAt(storageFs: StorageFs, dir: string, files: MappedFile[], startIndex: number, stop: ScanStop, stopClass: StopClass): number {
  const end = files[stop.index]!;
  if (stopClass.zeroTail) end.endAtZeroTail(stop.position);
  else end.truncateTo(stop.position, stopClass.dirtyEnd);
  const later = files.splice(stop.index + 1);
  for (const file of later) file.destroy();
  if (later.length > 0) syncDirectory(storageFs, dir);
  for (let index = startIndex; index <= stop.index; index++) files[index]!.sync();
  end.cacheFromEnd();
  assert(files.at(-1) === end && end.wrotePosition === stop.position, 'recovery left the wrong end');
  return later.length;
}
