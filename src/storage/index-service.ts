/**
 * The index service: the sequence of index files under `<root>/index/` that maps "topic#key" to
 * CommitLog offsets (RocketMQ's store/index/IndexService.java). Each message is indexed under its
 * unique key and each of its keys; a query walks the files newest first.
 *
 * Files are named by their creation time as yyyyMMddHHmmssSSS and kept in name order. RocketMQ formats
 * local time; we format UTC, so that names never go backwards when daylight saving time ends, and we
 * bump a name by a millisecond when it would not sort after the newest file. Any name of 17 digits
 * loads, so a RocketMQ store directory opens here.
 *
 * Rules that keep the files exact:
 * - all keys of one message go into one file: when the newest file lacks room for them, the service
 *   rolls to a new file first (RocketMQ splits a message across files; the format is the same). A
 *   message with more keys than a file holds keeps the first indexNum - 1.
 * - before a new file takes its first key the previous file is flushed whole, so every file but the
 *   newest is durable and complete.
 * - a message at or before the last indexed CommitLog offset is skipped, so replaying the CommitLog
 *   after a restart indexes nothing twice.
 * - an entry, once written, never changes; adding keys changes only slot heads and the header. So the
 *   newest file's first n entries, once fdatasync'd, stay valid whatever happens to the file later.
 *
 * Recovery rule: after an unclean shutdown the newest file may be torn (its pages reach disk in any
 * order). Every time the store writes its checkpoint it records `tail()`: the newest file's name and its
 * header as of its last durable entry (written and fdatasync'd before the checkpoint is). After a crash
 * recoverFromTail() takes that record:
 * - the newest file is the recorded one: it keeps the recorded entries, rebuilds slot heads and header
 *   from them (IndexFile.restore) and drops whatever came after;
 * - the newest file is newer than the recorded one: it was started after the checkpoint and may be torn,
 *   so it is deleted; every file before it was flushed whole before its successor took a key;
 * - anything else (no record, a record for files that are not there, entries that do not replay to the
 *   recorded header): the caller falls back to recover(), which deletes the newest file as RocketMQ's
 *   IndexService.load does, and replays the CommitLog from that file's first message.
 * Then every file is trimmed to the recovered CommitLog end. Either way the caller replays the CommitLog
 * through buildIndex, which skips everything up to `indexedUpToPhyOffset`: records between it and the
 * checkpoint's trusted offset carry no keys (they were indexed before the checkpoint was taken).
 */
import path from 'node:path';
import { assert } from '../runtime/assert.ts';
import type { TouchAhead } from './shared-copy.ts';
import { fsyncDirectory } from './storage-fs.ts';
import { INDEX_HASH_SLOT_NUM_DEFAULT, INDEX_NUM_DEFAULT, IndexFile, type IndexFileOptions } from './index-file.ts';
import type { StorageFs } from './storage-fs.ts';
import type { StoreCheckpointIndexTail } from './store-checkpoint.ts';

/** Name of the directory under the store root that holds the index files. */
export const INDEX_DIR_NAME = 'index';
/** Default cap on the offsets one query returns (RocketMQ's maxMsgsNumBatch). */
export const INDEX_QUERY_RESULTS_MAX_DEFAULT = 64;
/** Separator between topic and key in an indexed key (IndexService.buildKey). */
export const INDEX_KEY_SEPARATOR = '#';
const FILE_NAME_PATTERN = /^\d{17}$/;

/** What the dispatcher hands the index service for one message. */
export type IndexRecord = {
  readonly topic: string;
  /** The message's keys (its KEYS property split on spaces); empty strings are ignored. */
  readonly keys: readonly string[];
  /** The message's unique key (UNIQ_KEY), when it has one. */
  readonly uniqueKey?: string | undefined;
  readonly physicalOffset: number;
  readonly storeTimestampMs: number;
};

/** The answer of a query, like RocketMQ's QueryOffsetResult. */
export type QueryOffsetResult = {
  /** CommitLog offsets of candidate messages, newest first; callers check the real key. */
  readonly physicalOffsets: number[];
  /** endTimestamp of the newest file, 0 when there is none. */
  readonly lastUpdateTimestampMs: number;
  /** endPhyOffset of the newest file, 0 when there is none. */
  readonly lastUpdatePhyOffset: number;
};

/** What an IndexService needs to open. */
export type IndexServiceOptions = {
  readonly storageFs: StorageFs;
  /** The store root; files go under `<rootDir>/index/`. */
  readonly rootDir: string;
  /** Wall clock in ms, used only to name new files. */
  readonly nowMs: () => number;
  /** Hash slots per file (RocketMQ's maxHashSlotNum, default 5,000,000). */
  readonly hashSlotNum?: number;
  /** Entry places per file (RocketMQ's maxIndexNum, default 20,000,000). */
  readonly indexNum?: number;
  /** Most offsets one query returns (default 64). */
  readonly queryResultsMax?: number;
  /** Another thread that touches fresh entry pages ahead of the keys (shared-copy.ts); none by default. */
  readonly touchAhead?: TouchAhead;
};

/** The index key of `key` in `topic`. */
export function buildIndexKey(topic: string, key: string): string {
  return `${topic}${INDEX_KEY_SEPARATOR}${key}`;
}

/** yyyyMMddHHmmssSSS of `ms` in UTC. */
export function indexFileNameOf(ms: number): string {
  assert(Number.isSafeInteger(ms) && ms >= 0, 'time is a non-negative integer');
  const date = new Date(ms);
  const pad = (value: number, width: number): string => String(value).padStart(width, '0');
  return pad(date.getUTCFullYear(), 4) + pad(date.getUTCMonth() + 1, 2) + pad(date.getUTCDate(), 2) +
    pad(date.getUTCHours(), 2) + pad(date.getUTCMinutes(), 2) + pad(date.getUTCSeconds(), 2) + pad(date.getUTCMilliseconds(), 3);
}

/** The UTC time in ms that a yyyyMMddHHmmssSSS name stands for, or NaN. */
export function timeOfIndexFileName(name: string): number {
  if (!FILE_NAME_PATTERN.test(name)) return Number.NaN;
  const part = (from: number, to: number): number => Number(name.slice(from, to));
  return Date.UTC(part(0, 4), part(4, 6) - 1, part(6, 8), part(8, 10), part(10, 12), part(12, 14), part(14, 17));
}

/** The index files of a store, written in CommitLog order and queried newest first. */
export class IndexService {
  private readonly storageFs: StorageFs;
  private readonly dir: string;
  private readonly nowMs: () => number;
  private readonly hashSlotNum: number;
  private readonly indexNum: number;
  private readonly queryResultsMax: number;
  private readonly touchAhead: TouchAhead | undefined;
  private files: IndexFile[] = [];
  private lastIndexedPhyOffset = -1;

  private constructor(options: IndexServiceOptions) {
    this.storageFs = options.storageFs;
    this.dir = path.join(options.rootDir, INDEX_DIR_NAME);
    this.nowMs = options.nowMs;
    this.hashSlotNum = options.hashSlotNum ?? INDEX_HASH_SLOT_NUM_DEFAULT;
    this.indexNum = options.indexNum ?? INDEX_NUM_DEFAULT;
    this.queryResultsMax = options.queryResultsMax ?? INDEX_QUERY_RESULTS_MAX_DEFAULT;
    this.touchAhead = options.touchAhead;
    assert(Number.isSafeInteger(this.hashSlotNum) && this.hashSlotNum > 0, 'hashSlotNum is positive');
    assert(Number.isSafeInteger(this.indexNum) && this.indexNum > 1, 'indexNum leaves room for a key');
    assert(Number.isSafeInteger(this.queryResultsMax) && this.queryResultsMax > 0, 'queryResultsMax is positive');
  }

  /** Opens the service over the files already in `<rootDir>/index/`, reading their headers only. */
  static open(options: IndexServiceOptions): IndexService {
    const service = new IndexService(options);
    if (!service.storageFs.existsSync(service.dir)) return service;
    const names = service.storageFs.readdirSync(service.dir).filter((name) => FILE_NAME_PATTERN.test(name)).sort();
    for (const name of names) {
      const filePath = path.join(service.dir, name);
      // A crash between creating a file and sizing it leaves it empty: it never held a key.
      if (service.storageFs.statSync(filePath).size === 0) {
        service.storageFs.unlinkSync(filePath);
        continue;
      }
      service.files.push(IndexFile.open(service.fileOptions(filePath)));
    }
    service.refreshLastIndexed();
    return service;
  }

  /** Number of index files. */
  get fileCount(): number {
    return this.files.length;
  }

  /** CommitLog offset of the last indexed message, or -1: replay the CommitLog after it. */
  get indexedUpToPhyOffset(): number {
    return this.lastIndexedPhyOffset;
  }

  /** The index files, oldest first (for inspection and tests). */
  indexFiles(): readonly IndexFile[] {
    return this.files;
  }

  /**
   * Brings the index in line with a recovered CommitLog: after an unclean shutdown the newest file is
   * deleted (it may be torn), then entries past `maxPhysicalOffset` are dropped. Returns
   * indexedUpToPhyOffset, after which the caller replays the CommitLog through buildIndex.
   */
  recover(options: { readonly cleanShutdown: boolean; readonly maxPhysicalOffset: number }): number {
    if (!options.cleanShutdown && this.files.length > 0) {
      this.files.pop()!.delete();
      fsyncDirectory(this.storageFs, this.dir);
    }
    this.truncate(options.maxPhysicalOffset);
    return this.lastIndexedPhyOffset;
  }

  /**
   * The newest file's name, geometry and header, for the checkpoint the store writes right after
   * flush(); null when there is no file. Every entry the header counts has been written to the file.
   */
  tail(): StoreCheckpointIndexTail | null {
    const newest = this.files.at(-1);
    if (newest === undefined) return null;
    return { fileName: path.basename(newest.path), hashSlotNum: this.hashSlotNum, indexNum: this.indexNum, header: newest.headerFields };
  }

  /**
   * Crash recovery from the tail a checkpoint recorded (see the recovery rule above): 'restored' when the
   * newest file was cut back to the recorded entries, 'newerDropped' when the newest file was started
   * after the checkpoint and deleted, 'kept' when there is nothing to do. null when the record does not
   * describe these files: nothing was changed, and the caller falls back to recover().
   */
  recoverFromTail(tail: StoreCheckpointIndexTail | null): 'restored' | 'newerDropped' | 'kept' | null {
    const newest = this.files.at(-1);
    if (newest === undefined) return tail === null ? 'kept' : null;
    const newestName = path.basename(newest.path);
    if (tail === null || newestName > tail.fileName) {
      this.files.pop()!.delete();
      fsyncDirectory(this.storageFs, this.dir);
      this.refreshLastIndexed();
      return 'newerDropped';
    }
    if (newestName !== tail.fileName || tail.hashSlotNum !== this.hashSlotNum || tail.indexNum !== this.indexNum) return null;
    if (!newest.restore(tail.header)) return null;
    this.refreshLastIndexed();
    return 'restored';
  }

  /**
   * Indexes one message under `topic#uniqueKey` and `topic#key` for each key, in that order (as
   * IndexService.buildIndex). Returns the number of keys put; 0 for a message already indexed.
   */
  buildIndex(record: IndexRecord): number {
    assert(record.topic.length > 0, 'a record has a topic');
    assert(Number.isSafeInteger(record.physicalOffset) && record.physicalOffset >= 0, 'physical offset is non-negative');
    assert(Number.isSafeInteger(record.storeTimestampMs) && record.storeTimestampMs >= 0, 'store timestamp is non-negative');
    if (record.physicalOffset <= this.lastIndexedPhyOffset) return 0;
    const keys: string[] = [];
    if (record.uniqueKey !== undefined && record.uniqueKey.length > 0) keys.push(record.uniqueKey);
    for (const key of record.keys) if (key.length > 0 && keys.length < this.indexNum - 1) keys.push(key);
    if (keys.length === 0) return 0;
    const file = this.writableFile(keys.length);
    for (const key of keys) {
      const put = file.putKey(buildIndexKey(record.topic, key), record.physicalOffset, record.storeTimestampMs);
      assert(put, 'the file was chosen with room for every key of the message');
    }
    this.lastIndexedPhyOffset = record.physicalOffset;
    return keys.length;
  }

  /**
   * CommitLog offsets of messages indexed under `topic#key` with store time in [beginMs, endMs], newest
   * first, at most min(maxNum, queryResultsMax), walking the files newest first (IndexService.queryOffset).
   */
  queryOffsets(topic: string, key: string, maxNum: number, beginMs: number, endMs: number): QueryOffsetResult {
    assert(Number.isSafeInteger(maxNum) && maxNum > 0, 'maxNum is positive');
    const limit = Math.min(maxNum, this.queryResultsMax);
    const indexKey = buildIndexKey(topic, key);
    const physicalOffsets: number[] = [];
    const newest = this.files.at(-1);
    for (let i = this.files.length - 1; i >= 0; i--) {
      const file = this.files[i]!;
      if (file.isTimeMatched(beginMs, endMs)) file.selectPhyOffsets(indexKey, limit, beginMs, endMs, physicalOffsets);
      if (file.beginTimestampMs < beginMs || physicalOffsets.length >= limit) break;
    }
    assert(physicalOffsets.length <= limit, 'a query answers at most its limit');
    return {
      physicalOffsets,
      lastUpdateTimestampMs: newest?.endTimestampMs ?? 0,
      lastUpdatePhyOffset: newest?.endPhyOffset ?? 0,
    };
  }

  /** Drops every key of messages at or past `maxPhysicalOffset`, deleting files left empty. */
  truncate(maxPhysicalOffset: number): void {
    assert(Number.isSafeInteger(maxPhysicalOffset) && maxPhysicalOffset >= 0, 'physical offset is non-negative');
    let deleted = 0;
    // Each round either stops or removes the newest file, so it runs at most once per file.
    while (this.files.length > 0) {
      const newest = this.files.at(-1)!;
      if (newest.endPhyOffset < maxPhysicalOffset) break;
      newest.truncate(maxPhysicalOffset);
      if (newest.keyCount > 0) break;
      newest.delete();
      this.files.pop();
      deleted++;
    }
    if (deleted > 0) fsyncDirectory(this.storageFs, this.dir);
    this.refreshLastIndexed();
  }

  /**
   * Retention: deletes the oldest files (never the newest) whose last message lies below
   * `physicalOffset`, the CommitLog's new minimum. Returns the number of files deleted.
   */
  deleteFilesBefore(physicalOffset: number): number {
    assert(Number.isSafeInteger(physicalOffset) && physicalOffset >= 0, 'physical offset is non-negative');
    let deleted = 0;
    while (this.files.length > 1 && this.files[0]!.endPhyOffset < physicalOffset) {
      this.files.shift()!.delete();
      deleted++;
    }
    if (deleted > 0) fsyncDirectory(this.storageFs, this.dir);
    return deleted;
  }

  /** Flushes every file that has unwritten pages; returns the bytes written. */
  flush(): number {
    let writtenBytes = 0;
    for (const file of this.files) writtenBytes += file.flush();
    return writtenBytes;
  }

  /**
   * The periodic flush: every file's header and entries (IndexFile.flushEntries), which is all that
   * recovery reads of the newest file; returns the bytes written. Every older file was flushed whole.
   */
  flushEntries(): number {
    let writtenBytes = 0;
    for (const file of this.files) writtenBytes += file.flushEntries();
    return writtenBytes;
  }

  /** Flushes and drops the page caches; the service must not be used afterwards. */
  close(): void {
    this.flush();
    for (const file of this.files) file.releaseCache();
    this.files = [];
  }

  /** The newest file if it has room for `keyCount` keys, else a new one after flushing the newest. */
  private writableFile(keyCount: number): IndexFile {
    assert(keyCount > 0 && keyCount < this.indexNum, 'a message fits an empty file');
    const newest = this.files.at(-1);
    if (newest !== undefined && newest.freeKeyCount >= keyCount) {
      newest.loadCache();
      return newest;
    }
    if (newest !== undefined) {
      newest.flush();
      newest.releaseCache();
    } else {
      this.ensureDir();
    }
    const file = IndexFile.create(
      this.fileOptions(path.join(this.dir, this.nextFileName())),
      newest?.endPhyOffset ?? 0,
      newest?.endTimestampMs ?? 0,
    );
    this.files.push(file);
    return file;
  }

  private nextFileName(): string {
    let ms = this.nowMs();
    const newest = this.files.at(-1);
    if (newest !== undefined) {
      const newestMs = timeOfIndexFileName(path.basename(newest.path));
      if (Number.isFinite(newestMs)) ms = Math.max(ms, newestMs + 1);
    }
    const name = indexFileNameOf(ms);
    assert(newest === undefined || name > path.basename(newest.path), 'a new file sorts after the newest');
    return name;
  }

  private ensureDir(): void {
    if (this.storageFs.existsSync(this.dir)) return;
    this.storageFs.mkdirSync(this.dir, { recursive: true });
    fsyncDirectory(this.storageFs, path.dirname(this.dir));
  }

  private refreshLastIndexed(): void {
    this.lastIndexedPhyOffset = -1;
    for (let i = this.files.length - 1; i >= 0; i--) {
      if (this.files[i]!.keyCount > 0) {
        this.lastIndexedPhyOffset = this.files[i]!.endPhyOffset;
        return;
      }
    }
  }

  private fileOptions(filePath: string): IndexFileOptions {
    const touch = this.touchAhead === undefined ? {} : { touchAhead: this.touchAhead };
    return { storageFs: this.storageFs, path: filePath, hashSlotNum: this.hashSlotNum, indexNum: this.indexNum, ...touch };
  }
}
