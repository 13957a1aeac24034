/**
 * The epoch file of controller mode (RocketMQ's EpochFileCache, persisted in storePathRootDir as
 * `epochFileCheckpoint`): which master epoch wrote which range of the CommitLog. Each entry says "from
 * startOffset on, the bytes were written by the master of this epoch"; an entry ends where the next one
 * starts, and the last one at the log's end (maxOffset). A slave compares its entries with its new
 * master's to find the consistent point: the offset up to which both logs are known to hold the same
 * bytes, where a demoted old master cuts its log before it follows.
 *
 * File layout (ours; RocketMQ writes a text CheckpointFile of `epoch-startOffset` lines). Integers are
 * big-endian.
 *
 * | offset      | size | field       | meaning                                                     |
 * |-------------|------|-------------|-------------------------------------------------------------|
 * | 0           | 4    | magic       | 0x52544531 ("RTE1")                                         |
 * | 4           | 4    | version     | 1                                                           |
 * | 8           | 4    | count       | number of entries n, 0 <= n <= EPOCH_ENTRIES_MAX            |
 * | 12          | 4    | crc         | CRC-32 of bytes [0, 12) and of the n entries                |
 * | 16 + 12 * i | 4    | epoch       | entry i's master epoch, int32 >= 1                          |
 * | 20 + 12 * i | 8    | startOffset | entry i's first CommitLog offset, int64 in [0, 2^53)        |
 *
 * Invariants: epochs strictly increase; startOffsets never decrease (an epoch whose master wrote nothing
 * has an empty range, start == next start; RocketMQ refuses such an append and so loses the epoch); the
 * file is exactly 16 + 12 * n bytes. It is replaced atomically (temp file, fsync, rename, fsync of the
 * directory), so a reader sees the old or the new list, never a mix.
 *
 * Recovery rule: a missing file is an empty list (a new replica). A file that fails any check (size,
 * magic, version, CRC, invariants) is reported corrupt and the broker must not guess: the caller refuses
 * to act as a replica until an operator removes it (an empty list would let a diverged log skip its
 * truncation).
 */
import { crc32 } from 'node:zlib';
import { assert } from '../runtime/assert.ts';
import type { StorageFs } from './storage-fs.ts';
import { writeFileAtomic } from './storage-fs.ts';

/** Name of the epoch file in storePathRootDir (MessageStoreConfig.getStorePathEpochFile). */
export const EPOCH_FILE_NAME = 'epochFileCheckpoint';
/** Magic of the epoch file ("RTE1"). */
export const EPOCH_FILE_MAGIC = 0x5254_4531;
/** Version of the layout above. */
export const EPOCH_FILE_VERSION = 1;
/** Bytes before the first entry. */
export const EPOCH_FILE_HEADER_BYTES = 16;
/** Bytes of one entry. */
export const EPOCH_ENTRY_BYTES = 12;
/** Most entries kept; past it the oldest is dropped (its bytes are long gone from any live log). */
export const EPOCH_ENTRIES_MAX = 65_536;

/** Java's Integer.MAX_VALUE: the largest master epoch. */
const EPOCH_MAX = 0x7fff_ffff;

/** One entry: from startOffset on, the CommitLog was written by the master of `epoch`. */
export type EpochRecord = { readonly epoch: number; readonly startOffset: number };

/** An entry with its end, as GET_BROKER_EPOCH_CACHE carries it (EpochEntry). */
export type EpochRange = EpochRecord & { readonly endOffset: number };

/** Why an append was refused. */
export type EpochAppendRefusal = { readonly ok: false; readonly code: 'EPOCH_NOT_INCREASING' | 'OFFSET_DECREASING'; readonly remark: string };

/** The outcome of an append. */
export type EpochAppendResult = { readonly ok: true } | EpochAppendRefusal;

/** A list of entries with the offset its log ends at: what the consistent point compares. */
export type EpochView = { readonly entries: readonly EpochRecord[]; readonly maxOffset: number };

function validOffset(offset: number): boolean {
  return Number.isSafeInteger(offset) && offset >= 0;
}

function validEpoch(epoch: number): boolean {
  return Number.isSafeInteger(epoch) && epoch >= 1 && epoch <= EPOCH_MAX;
}

/** Whether `entries` keep the invariants; the first broken rule, or undefined. */
export function checkEpochEntries(entries: readonly EpochRecord[]): string | undefined {
  if (entries.length > EPOCH_ENTRIES_MAX) return `${entries.length} entries, more than ${EPOCH_ENTRIES_MAX}`;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (!validEpoch(entry.epoch)) return `entry ${i}: bad epoch ${entry.epoch}`;
    if (!validOffset(entry.startOffset)) return `entry ${i}: bad startOffset ${entry.startOffset}`;
    const previous = entries[i - 1];
    if (previous === undefined) continue;
    if (entry.epoch <= previous.epoch) return `entry ${i}: epoch ${entry.epoch} does not follow ${previous.epoch}`;
    if (entry.startOffset < previous.startOffset) return `entry ${i}: startOffset ${entry.startOffset} before ${previous.startOffset}`;
  }
  return undefined;
}

/** The in-memory epoch list (RocketMQ's EpochFileCache without its locks: one actor owns it). */
export class EpochCache {
  #entries: EpochRecord[];

  constructor(entries: readonly EpochRecord[] = []) {
    const problem = checkEpochEntries(entries);
    assert(problem === undefined, () => `epoch entries keep their invariants: ${problem}`);
    this.#entries = entries.map((entry) => ({ epoch: entry.epoch, startOffset: entry.startOffset }));
  }

  /** The entries, oldest first. */
  get entries(): readonly EpochRecord[] {
    return this.#entries;
  }

  /** The newest epoch, or -1 when there is none (RocketMQ's lastEpoch). */
  get lastEpoch(): number {
    return this.#entries.at(-1)?.epoch ?? -1;
  }

  /** The newest entry, if any. */
  get lastEntry(): EpochRecord | undefined {
    return this.#entries.at(-1);
  }

  /** The entry of `epoch`, if held. */
  entryOf(epoch: number): EpochRecord | undefined {
    return this.#entries.find((entry) => entry.epoch === epoch);
  }

  /** Appends (epoch, startOffset); refused unless the epoch is newer and the offset not older. */
  append(epoch: number, startOffset: number): EpochAppendResult {
    assert(validEpoch(epoch), () => `bad epoch ${epoch}`);
    assert(validOffset(startOffset), () => `bad startOffset ${startOffset}`);
    const last = this.lastEntry;
    if (last !== undefined && epoch <= last.epoch) {
      return { ok: false, code: 'EPOCH_NOT_INCREASING', remark: `epoch ${epoch} is not after the last epoch ${last.epoch}` };
    }
    if (last !== undefined && startOffset < last.startOffset) {
      return { ok: false, code: 'OFFSET_DECREASING', remark: `startOffset ${startOffset} is before the last entry's ${last.startOffset}` };
    }
    if (this.#entries.length >= EPOCH_ENTRIES_MAX) this.#entries.shift();
    this.#entries.push({ epoch, startOffset });
    return { ok: true };
  }

  /** Where `epoch`'s range ends: the next entry's start, or `maxOffset` for the last; undefined if not held. */
  endOffsetOf(epoch: number, maxOffset: number): number | undefined {
    const index = this.#entries.findIndex((entry) => entry.epoch === epoch);
    if (index < 0) return undefined;
    return this.#entries[index + 1]?.startOffset ?? Math.max(maxOffset, this.#entries[index]!.startOffset);
  }

  /** Removes every entry starting at or after `offset` (the log is cut there; RocketMQ's truncateSuffixByOffset). */
  truncateSuffix(offset: number): void {
    assert(validOffset(offset), () => `bad truncate offset ${offset}`);
    const kept = this.#entries.findIndex((entry) => entry.startOffset >= offset);
    if (kept >= 0) this.#entries.length = kept;
  }

  /** Removes every entry of `epoch` or later (RocketMQ's truncateSuffixByEpoch). */
  truncateSuffixByEpoch(epoch: number): void {
    const kept = this.#entries.findIndex((entry) => entry.epoch >= epoch);
    if (kept >= 0) this.#entries.length = kept;
  }

  /** The entries with their ends (the last one ends at `maxOffset`), as EpochEntryCache carries them. */
  ranges(maxOffset: number): EpochRange[] {
    return this.#entries.map((entry, i) => ({ ...entry, endOffset: this.#entries[i + 1]?.startOffset ?? Math.max(maxOffset, entry.startOffset) }));
  }
}

/**
 * The entries of a view cut to what its log holds: entries starting past maxOffset are dropped and every
 * end is capped at maxOffset.
 */
function heldRanges(view: EpochView): Map<number, { readonly startOffset: number; readonly endOffset: number }> {
  const held = new Map<number, { startOffset: number; endOffset: number }>();
  view.entries.forEach((entry, i) => {
    if (entry.startOffset > view.maxOffset) return;
    const next = view.entries[i + 1]?.startOffset ?? view.maxOffset;
    held.set(entry.epoch, { startOffset: entry.startOffset, endOffset: Math.min(next, view.maxOffset) });
  });
  return held;
}

/**
 * RocketMQ's findConsistentPoint: for the highest epoch both views hold with the same start offset, the
 * smaller of the two ends; -1 when they share no such epoch. Both logs hold the same bytes below it: the
 * master of that epoch wrote one sequence from its start, and both copied the same prefix before it.
 */
export function findConsistentPoint(local: EpochView, remote: EpochView): number {
  assert(validOffset(local.maxOffset) && validOffset(remote.maxOffset), 'views end at valid offsets');
  const mine = heldRanges(local);
  const theirs = heldRanges(remote);
  const epochs = [...mine.keys()].sort((a, b) => b - a);
  for (const epoch of epochs) {
    const a = mine.get(epoch)!;
    const b = theirs.get(epoch);
    if (b !== undefined && b.startOffset === a.startOffset) return Math.min(a.endOffset, b.endOffset);
  }
  return -1;
}

// ------------------------------------------------------------------------------------------ the file

/** Stable code of EpochFileError. */
export const EPOCH_FILE_CORRUPT = 'EPOCH_FILE_CORRUPT';

/** The epoch file cannot be read back. */
export class EpochFileError extends Error {
  /** Stable machine-readable code. */
  readonly code = EPOCH_FILE_CORRUPT;
  override readonly name = 'EpochFileError';
}

function checksum(bytes: Uint8Array, count: number): number {
  const head = crc32(bytes.subarray(0, 12));
  return crc32(bytes.subarray(EPOCH_FILE_HEADER_BYTES, EPOCH_FILE_HEADER_BYTES + count * EPOCH_ENTRY_BYTES), head);
}

/** Encodes entries in the layout above. */
export function encodeEpochFile(entries: readonly EpochRecord[]): Uint8Array {
  const problem = checkEpochEntries(entries);
  assert(problem === undefined, () => `epoch entries keep their invariants before a write: ${problem}`);
  const bytes = new Uint8Array(EPOCH_FILE_HEADER_BYTES + entries.length * EPOCH_ENTRY_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, EPOCH_FILE_MAGIC);
  view.setUint32(4, EPOCH_FILE_VERSION);
  view.setUint32(8, entries.length);
  entries.forEach((entry, i) => {
    const at = EPOCH_FILE_HEADER_BYTES + i * EPOCH_ENTRY_BYTES;
    view.setInt32(at, entry.epoch);
    view.setBigInt64(at + 4, BigInt(entry.startOffset));
  });
  view.setUint32(12, checksum(bytes, entries.length));
  return bytes;
}

/** Decodes an epoch file; throws EpochFileError when any check fails. */
export function decodeEpochFile(bytes: Uint8Array): EpochRecord[] {
  if (bytes.length < EPOCH_FILE_HEADER_BYTES) throw new EpochFileError(`${bytes.length} bytes, shorter than the header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== EPOCH_FILE_MAGIC) throw new EpochFileError('bad magic');
  if (view.getUint32(4) !== EPOCH_FILE_VERSION) throw new EpochFileError(`unknown version ${view.getUint32(4)}`);
  const count = view.getUint32(8);
  if (count > EPOCH_ENTRIES_MAX) throw new EpochFileError(`${count} entries, more than ${EPOCH_ENTRIES_MAX}`);
  if (bytes.length !== EPOCH_FILE_HEADER_BYTES + count * EPOCH_ENTRY_BYTES) throw new EpochFileError(`${bytes.length} bytes for ${count} entries`);
  if (view.getUint32(12) !== checksum(bytes, count)) throw new EpochFileError('CRC mismatch');
  const entries: EpochRecord[] = [];
  for (let i = 0; i < count; i++) {
    const at = EPOCH_FILE_HEADER_BYTES + i * EPOCH_ENTRY_BYTES;
    const startOffset = view.getBigInt64(at + 4);
    if (startOffset < 0n || startOffset > BigInt(Number.MAX_SAFE_INTEGER)) throw new EpochFileError(`entry ${i}: startOffset ${startOffset} out of range`);
    entries.push({ epoch: view.getInt32(at), startOffset: Number(startOffset) });
  }
  const problem = checkEpochEntries(entries);
  if (problem !== undefined) throw new EpochFileError(problem);
  return entries;
}

/** The path of the epoch file under a store root. */
export function epochFilePath(storeRoot: string): string {
  return `${storeRoot}/${EPOCH_FILE_NAME}`;
}

/** Reads the epoch file; a missing file is an empty list; throws EpochFileError when it is corrupt. */
export function readEpochFile(fs: StorageFs, storeRoot: string): EpochRecord[] {
  const path = epochFilePath(storeRoot);
  if (!fs.existsSync(path)) return [];
  return decodeEpochFile(fs.readFileSync(path));
}

/** Replaces the epoch file atomically and durably with `cache`'s entries (checked before the write). */
export function writeEpochFile(fs: StorageFs, storeRoot: string, cache: EpochCache): void {
  fs.mkdirSync(storeRoot, { recursive: true });
  writeFileAtomic(fs, epochFilePath(storeRoot), encodeEpochFile(cache.entries));
}
