/**
 * One fixed-size file of a log (RocketMQ's DefaultMappedFile), named by the 20-digit zero-padded log
 * offset of its first byte. Instead of mmap, its page cache is a SharedArrayBuffer of the file's size,
 * taken when the file is first written or read, so reader threads can be handed the buffer and read
 * appended bytes without a copy or a syscall. Buffers come from a PageCachePool: a released file's
 * buffer is kept for the next file instead of being freed, because the first touch of fresh memory
 * costs a page fault per page (about as much as the disk write itself on a virtual machine), while a
 * recycled buffer is already resident (RocketMQ's TransientStorePool keeps its buffers for the same
 * reason).
 *
 * | name                 | meaning                                                                  |
 * |----------------------|--------------------------------------------------------------------------|
 * | 00000000000000000000 | bytes [0, sizeBytes) of the log                                          |
 * | 00000000001073741824 | bytes [1 GiB, 2 GiB) of the log, and so on; names sort like offsets      |
 *
 * Positions, all relative to the file's start:
 *   0 <= cachedFrom <= flushedPosition <= wrotePosition <= sizeBytes   (cachedFrom while cached)
 * - [0, flushedPosition) is in the file and fdatasync'd: durable.
 * - [flushedPosition, wrotePosition) is dirty: only in the cache. A crash loses it, perhaps in part.
 * - [wrotePosition, sizeBytes) is zero in the FILE (files are created with their full size by
 *   ftruncate, so they start as zeros; recovery zeroes what a torn write left there). In the cache it
 *   is unspecified (a recycled buffer keeps another file's bytes): nothing reads it, and flush writes
 *   only the dirty range, so it never reaches the file.
 * - The cache holds the file's bytes from cachedFrom on. Recovery starts the active file's cache at
 *   the page holding the end of the data, so reopening a store never reads a whole file back; reads
 *   below cachedFrom go to the file.
 * The cache may be released only when nothing is dirty; reads then go to the file.
 *
 * A failed flush leaves flushedPosition where it was, so a retry rewrites the whole dirty range from the
 * cache: after a failed fdatasync the kernel may already have dropped the dirty pages, and only our own
 * copy is trustworthy. Bytes below flushedPosition are never written again.
 */

import { fsyncDirectory, type StorageFs } from './storage-fs.ts';
import { assert } from '../runtime/assert.ts';

/** Digits of a log file name. */
export const FILE_NAME_DIGITS = 20;
/** Largest file size: positions are int32 in RocketMQ and one read must cover a file. */
export const FILE_SIZE_MAX_BYTES = 0x7fff_ffff;
/** Chunk used to zero and scan file tails, bounding the memory recovery needs beyond the cache. */
const CHUNK_BYTES = 1 << 20;
/** Read size of recovery's progressive scan and of the zero-tail probe. */
export const SCAN_CHUNK_BYTES = 16 << 20;
/** Alignment of the start of a cache that does not begin at the file's start (an OS page). */
export const CACHE_ALIGN_BYTES = 4096;
/** Spare buffers a PageCachePool keeps by default. */
export const PAGE_CACHE_SPARES_MAX_DEFAULT = 1;

/** Stable codes of MappedFileError. */
export const MappedFileErrorCode = {
  /** The file system is full (ENOSPC, EDQUOT): free space, then flush again. */
  DISK_FULL: 'DISK_FULL',
  /** Any other failed file operation; the errno is kept on the error. */
  IO_ERROR: 'IO_ERROR',
  /** A file is shorter or longer than the configured size. */
  FILE_SIZE_MISMATCH: 'FILE_SIZE_MISMATCH',
} as const;

/** A stable code of MappedFileError. */
export type MappedFileErrorCode = (typeof MappedFileErrorCode)[keyof typeof MappedFileErrorCode];

/** A failed file operation of a log file; `code` is stable, `errno` is the system's code if any. */
export class MappedFileError extends Error {
  /** Stable machine-readable code. */
  readonly code: MappedFileErrorCode;
  /** The system error code (ENOSPC, EIO, ...), when a system call failed. */
  readonly errno: string | undefined;
  /** The file concerned. */
  readonly path: string;
  override readonly name = 'MappedFileError';

  constructor(code: MappedFileErrorCode, path: string, message: string, options?: { cause?: unknown; errno?: string }) {
    super(message, options);
    this.code = code;
    this.path = path;
    this.errno = options?.errno;
  }
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Runs a file operation, turning a thrown system error into a MappedFileError. */
function io<T>(path: string, op: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof MappedFileError) throw error;
    const errno = errnoOf(error);
    const code = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'DISK_FULL' : 'IO_ERROR';
    throw new MappedFileError(code, path, `${op} ${path} failed: ${errno ?? String(error)}`, { cause: error, errno });
  }
}

/** The 20-digit file name of the file starting at `startOffset`. */
export function fileNameOf(startOffset: number): string {
  assert(Number.isSafeInteger(startOffset) && startOffset >= 0, `bad start offset ${startOffset}`);
  return String(startOffset).padStart(FILE_NAME_DIGITS, '0');
}

/** The start offset a log file name stands for, or null if it is not one. */
export function parseFileName(name: string): number | null {
  if (name.length !== FILE_NAME_DIGITS || !/^[0-9]+$/.test(name)) return null;
  const startOffset = Number(name);
  return Number.isSafeInteger(startOffset) ? startOffset : null;
}

/** Fsyncs a directory so that files created or removed in it survive a crash. */
export function syncDirectory(storageFs: StorageFs, dir: string): void {
  io(dir, 'fsync', () => fsyncDirectory(storageFs, dir));
}

let zeroChunk: Uint8Array | null = null;
let scratch: Uint8Array | null = null;

function scratchChunk(): Uint8Array {
  scratch ??= new Uint8Array(SCAN_CHUNK_BYTES);
  return scratch;
}

function zeros(): Uint8Array {
  zeroChunk ??= new Uint8Array(CHUNK_BYTES);
  return zeroChunk;
}

/** Whether every byte of `bytes` is zero (a memcmp against a zero chunk, not a loop in JavaScript). */
export function isZero(bytes: Uint8Array): boolean {
  const zero = zeros();
  for (let at = 0; at < bytes.length; at += zero.length) {
    const length = Math.min(zero.length, bytes.length - at);
    const part = Buffer.from(bytes.buffer, bytes.byteOffset + at, length);
    if (!part.equals(zero.subarray(0, length))) return false;
  }
  return true;
}

/**
 * Page-cache buffers of one file size, recycled: `give` keeps a released buffer (up to `sparesMax`),
 * `take` hands a kept one out before allocating. A recycled buffer holds its previous file's bytes; see
 * the header for why that is harmless. A buffer handed to another thread (sharedBuffer) is valid only
 * until its file is released.
 */
export class PageCachePool {
  /** Size of every buffer. */
  readonly sizeBytes: number;
  private readonly sparesMax: number;
  private readonly spares: Uint8Array[] = [];
  private allocatedCount = 0;

  constructor(sizeBytes: number, sparesMax: number = PAGE_CACHE_SPARES_MAX_DEFAULT) {
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= FILE_SIZE_MAX_BYTES, `bad size ${sizeBytes}`);
    assert(Number.isInteger(sparesMax) && sparesMax >= 0, `bad sparesMax ${sparesMax}`);
    this.sizeBytes = sizeBytes;
    this.sparesMax = sparesMax;
  }

  /** Buffers allocated so far (not recycled ones): for tests and stats. */
  get allocated(): number {
    return this.allocatedCount;
  }

  /** A spare buffer, or a fresh zeroed one. */
  take(): Uint8Array {
    const spare = this.spares.pop();
    if (spare !== undefined) return spare;
    this.allocatedCount++;
    return new Uint8Array(new SharedArrayBuffer(this.sizeBytes));
  }

  /** Keeps `buffer` for a later `take`, or drops it when enough are kept. */
  give(buffer: Uint8Array): void {
    assert(buffer.length === this.sizeBytes && buffer.buffer instanceof SharedArrayBuffer, 'buffer from another pool');
    assert(!this.spares.includes(buffer), 'buffer given back twice');
    if (this.spares.length < this.sparesMax) this.spares.push(buffer);
  }
}

/** One preallocated log file and its shared page cache. */
export class MappedFile {
  /** Path of the file. */
  readonly path: string;
  /** Log offset of the file's first byte. */
  readonly startOffset: number;
  /** Size of the file. */
  readonly sizeBytes: number;
  private readonly storageFs: StorageFs;
  private readonly pool: PageCachePool;
  private fd: number | null = null;
  private cache: Uint8Array | null = null;
  /** Bytes [cacheStart, loadedBytes) of the cache hold the file's bytes (also the appended ones). */
  private cacheStart = 0;
  private loadedBytes = 0;
  private wrote: number;
  private flushed: number;

  private constructor(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number, position: number, pool: PageCachePool | undefined) {
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= FILE_SIZE_MAX_BYTES, `bad size ${sizeBytes}`);
    assert(startOffset % sizeBytes === 0, `start offset ${startOffset} is not a multiple of ${sizeBytes}`);
    assert(pool === undefined || pool.sizeBytes === sizeBytes, 'pool of another file size');
    this.storageFs = storageFs;
    this.pool = pool ?? new PageCachePool(sizeBytes, 0);
    this.path = `${dir}/${fileNameOf(startOffset)}`;
    this.startOffset = startOffset;
    this.sizeBytes = sizeBytes;
    this.wrote = position;
    this.flushed = position;
  }

  /** Creates the file with its full size (zeros) and makes its existence durable. */
  static create(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number, pool?: PageCachePool): MappedFile {
    const file = new MappedFile(storageFs, dir, startOffset, sizeBytes, 0, pool);
    const fd = io(file.path, 'create', () => storageFs.openSync(file.path, 'w+', 0o644));
    file.fd = fd;
    io(file.path, 'ftruncate', () => storageFs.ftruncateSync(fd, sizeBytes));
    io(file.path, 'fsync', () => storageFs.fsyncSync(fd));
    syncDirectory(storageFs, dir);
    return file;
  }

  /**
   * Opens an existing file, checking its size. Like RocketMQ's loader, it starts as if full; recovery
   * sets the real positions of the last files with `truncateTo`.
   */
  static open(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number, pool?: PageCachePool): MappedFile {
    const file = new MappedFile(storageFs, dir, startOffset, sizeBytes, sizeBytes, pool);
    const actualBytes = io(file.path, 'stat', () => storageFs.statSync(file.path).size);
    if (actualBytes !== sizeBytes) {
      throw new MappedFileError(
        'FILE_SIZE_MISMATCH',
        file.path,
        `${file.path} has ${actualBytes} bytes, the configured file size is ${sizeBytes}`,
      );
    }
    return file;
  }

  /** Bytes appended to the cache (and maybe the file), relative to the file's start. */
  get wrotePosition(): number {
    return this.wrote;
  }

  /** Bytes written to the file and fdatasync'd. */
  get flushedPosition(): number {
    return this.flushed;
  }

  /** Log offset just past the file. */
  get endOffset(): number {
    return this.startOffset + this.sizeBytes;
  }

  /** Whether the page cache is in memory. */
  get loaded(): boolean {
    return this.cache !== null;
  }

  /** Where the cache's copy of the file starts (0 unless recovery started it at the end); 0 when released. */
  get cachedFrom(): number {
    return this.cache === null ? 0 : this.cacheStart;
  }

  /** Whether [position, position + sizeBytes) can be read from the cache. */
  cacheHolds(position: number, sizeBytes: number): boolean {
    return this.cache !== null && position >= this.cacheStart && position + sizeBytes <= Math.max(this.loadedBytes, this.wrote);
  }

  /** The page cache, loaded from the file's appended bytes if it was not in memory. Byte i is file position i. */
  bytes(): Uint8Array {
    if (this.cache === null) this.load(this.wrote);
    assert(this.cache !== null, 'cache not loaded');
    return this.cache;
  }

  /** The cache's shared buffer, for reader threads; null while released. */
  sharedBuffer(): SharedArrayBuffer | null {
    return this.cache === null ? null : (this.cache.buffer as SharedArrayBuffer);
  }

  /** Marks `sizeBytes` more bytes, already written into `bytes()` at `wrotePosition`, as appended. */
  advance(sizeBytes: number): void {
    assert(this.cache !== null, 'append to a released file');
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0, `bad append size ${sizeBytes}`);
    assert(this.wrote + sizeBytes <= this.sizeBytes, 'append past the end of the file');
    this.wrote += sizeBytes;
  }

  /** Writes the dirty range to the file and fdatasyncs it; returns the bytes flushed. */
  flush(): number {
    const from = this.flushed;
    const to = this.wrote;
    if (from === to) return 0;
    const cache = this.cache;
    assert(cache !== null && from >= this.cacheStart, 'dirty bytes without a cache');
    const fd = this.openFd();
    this.writeFully(fd, cache.subarray(from, to), from);
    io(this.path, 'fdatasync', () => this.storageFs.fdatasyncSync(fd));
    assert(this.flushed === from && this.wrote >= to, 'positions moved during flush');
    this.flushed = to;
    return to - from;
  }

  /** Fdatasyncs the file: makes bytes that reached the OS (say, from a run that crashed) durable. */
  sync(): void {
    const fd = this.openFd();
    io(this.path, 'fdatasync', () => this.storageFs.fdatasyncSync(fd));
  }

  /**
   * Reads appended bytes: a view into the cache when it holds them (do not modify it), else a copy from
   * the file.
   */
  read(position: number, sizeBytes: number): Uint8Array {
    assert(Number.isInteger(position) && Number.isInteger(sizeBytes), 'read range must be integers');
    assert(position >= 0 && sizeBytes >= 0 && position + sizeBytes <= this.wrote, 'read past wrotePosition');
    if (this.cache !== null && position >= this.cacheStart) return this.cache.subarray(position, position + sizeBytes);
    const target = new Uint8Array(sizeBytes);
    this.readInto(target, position);
    return target;
  }

  /** Reads `target.length` bytes of the FILE (never the cache) from `position` into `target`. */
  readFile(target: Uint8Array, position: number): void {
    assert(Number.isInteger(position) && position >= 0 && position + target.length <= this.sizeBytes, 'read outside the file');
    this.readInto(target, position);
  }

  /** Drops the page cache to free memory (its buffer goes back to the pool); only a clean file may. */
  release(): void {
    assert(this.flushed === this.wrote, 'release with dirty bytes');
    this.dropCache();
  }

  /** Reads [0, lengthBytes) of the file into a cache (fresh or recycled: see the header). */
  load(lengthBytes: number = this.sizeBytes): void {
    assert(this.cache === null || this.flushed === this.wrote, 'load over dirty bytes');
    assert(Number.isInteger(lengthBytes) && lengthBytes >= 0 && lengthBytes <= this.sizeBytes, 'load range');
    const cache = this.cache ?? this.pool.take();
    if (lengthBytes > 0) this.readInto(cache.subarray(0, lengthBytes), 0);
    this.cache = cache;
    this.cacheStart = 0;
    this.loadedBytes = lengthBytes;
  }

  /**
   * Starts a cache at the end of the data, holding only the OS page that `wrotePosition` falls in, so
   * appends can go on without reading the file's older bytes back (they are read from the file when
   * asked for). Recovery calls it for the active file once the positions are set.
   */
  cacheFromEnd(): void {
    assert(this.cache === null && this.flushed === this.wrote, 'the end is cached only on a clean, released file');
    const from = this.wrote - (this.wrote % CACHE_ALIGN_BYTES);
    const cache = this.pool.take();
    if (this.wrote > from) this.readInto(cache.subarray(from, this.wrote), from);
    this.cache = cache;
    this.cacheStart = from;
    this.loadedBytes = this.wrote;
  }

  /**
   * Position of the first chunk in [from, to) of the FILE (not the cache) holding a non-zero byte, or
   * null when that range is zero. Reads through one reused chunk, never the cache.
   */
  firstNonZeroFrom(from: number, to: number = this.sizeBytes): number | null {
    assert(Number.isInteger(from) && from >= 0 && from <= this.sizeBytes, `bad position ${from}`);
    assert(Number.isInteger(to) && to >= from && to <= this.sizeBytes, `bad end ${to}`);
    const chunk = scratchChunk();
    // Bounded by (to - from) / SCAN_CHUNK_BYTES passes.
    for (let at = from; at < to; at += chunk.length) {
      const view = chunk.subarray(0, Math.min(chunk.length, to - at));
      this.readInto(view, at);
      if (!isZero(view)) return at;
    }
    return null;
  }

  /** Ends the data at `position` when the file is already zero from there: no I/O, no sync needed. */
  endAtZeroTail(position: number): void {
    assert(Number.isInteger(position) && position >= 0 && position <= this.sizeBytes, `bad position ${position}`);
    assert(this.cache === null || (position >= this.cacheStart && position <= this.loadedBytes), 'cache must hold the data it keeps');
    if (this.cache !== null) this.loadedBytes = position;
    this.wrote = position;
    this.flushed = position;
  }

  /**
   * Ends the file's data at `position` durably: zeroes every non-zero byte of [position, end) in the
   * file (scanned in chunks; `end` defaults to the file's end, and recovery passes less only when it
   * knows nothing lies past it) and what the cache held there, fdatasyncs if anything changed, and sets
   * both positions to `position`. Recovery uses it to cut a torn or corrupt tail.
   */
  truncateTo(position: number, end: number = this.sizeBytes): void {
    assert(Number.isInteger(position) && position >= 0 && position <= this.sizeBytes, `bad position ${position}`);
    assert(Number.isInteger(end) && end >= position && end <= this.sizeBytes, `bad end ${end}`);
    assert(this.cache === null || position >= this.cacheStart, 'truncate below the cache');
    const fd = this.openFd();
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, this.sizeBytes));
    let changed = false;
    // Bounded by (end - position) / CHUNK_BYTES passes.
    for (let at = position; at < end; at += chunk.length) {
      const length = Math.min(chunk.length, end - at);
      const view = chunk.subarray(0, length);
      this.readInto(view, at);
      if (isZero(view)) continue;
      this.writeFully(fd, zeros().subarray(0, length), at);
      changed = true;
    }
    if (changed) io(this.path, 'fdatasync', () => this.storageFs.fdatasyncSync(fd));
    // Only what the cache held past `position` can be non-zero there that matters to a reader of it.
    this.cache?.fill(0, position, Math.max(position, this.loadedBytes, this.wrote));
    this.loadedBytes = Math.min(this.loadedBytes, position);
    this.wrote = position;
    this.flushed = position;
  }

  /** Closes the file descriptor; the cache stays readable. Unflushed bytes are not written. */
  close(): void {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      io(this.path, 'close', () => this.storageFs.closeSync(fd));
    }
  }

  /** Closes and deletes the file; the caller fsyncs the directory (see `syncDirectory`). */
  destroy(): void {
    this.close();
    this.dropCache();
    io(this.path, 'unlink', () => this.storageFs.unlinkSync(this.path));
  }

  private dropCache(): void {
    if (this.cache !== null) this.pool.give(this.cache);
    this.cache = null;
    this.cacheStart = 0;
    this.loadedBytes = 0;
  }

  private openFd(): number {
    this.fd ??= io(this.path, 'open', () => this.storageFs.openSync(this.path, 'r+'));
    return this.fd;
  }

  private readInto(target: Uint8Array, position: number): void {
    const fd = this.openFd();
    let done = 0;
    // Each pass reads at least one byte or throws, so the loop ends within target.length passes.
    while (done < target.length) {
      const read = io(this.path, 'read', () =>
        this.storageFs.readSync(fd, target, done, target.length - done, position + done),
      );
      if (read <= 0) {
        throw new MappedFileError('FILE_SIZE_MISMATCH', this.path, `${this.path} ends before ${position + done}`);
      }
      done += read;
    }
  }

  private writeFully(fd: number, source: Uint8Array, position: number): void {
    let done = 0;
    // Each pass writes at least one byte or throws, so the loop ends within source.length passes.
    while (done < source.length) {
      const written = io(this.path, 'write', () =>
        this.storageFs.writeSync(fd, source, done, source.length - done, position + done),
      );
      if (written <= 0) throw new MappedFileError('IO_ERROR', this.path, `write ${this.path} made no progress`);
      done += written;
    }
  }
}
