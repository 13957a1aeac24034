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
 * copy is trustworthy. Bytes below flushedPosition never change; a direct write (below) may write the
 * block holding flushedPosition again, with the same bytes.
 *
 * Direct writes. A pool built with a DirectIo (the CommitLog's) aligns its buffers for O_DIRECT, and a
 * dirty range of at least `minBytes` is then written with O_DIRECT, in whole DIRECT_IO_BLOCK_BYTES
 * blocks from the one holding flushedPosition to the one holding wrotePosition; that last block is
 * staged in a block of its own with zeros after wrotePosition (the file holds zeros there, and the
 * cache past wrotePosition may hold another thread's reservation, which must not be touched). Such a write skips the
 * kernel's page cache: no copy into fresh kernel pages, which on a virtual machine that hands freed
 * memory back to its host costs a host page fault per page (see the README's bench:store notes). Smaller
 * ranges are written through the page cache, where a partial block costs no read-modify-write on
 * the device. Where O_DIRECT is refused (tmpfs, say) or the buffer turns out misaligned (EINVAL), the
 * file falls back to buffered writes for good.
 *
 * Writes on write threads. With DirectIo.writes, `startWrite` hands the whole blocks of the dirty range
 * to a write thread (runtime/write-threads.ts) and returns at once; several may run, on disjoint block
 * ranges, in log order. flushedPosition then means "written": it moves past a write only when that write
 * and every earlier one ended (`reap`), and those bytes still need an fdatasync (`takeWritten`, or the
 * next `flush`). A write that failed leaves flushedPosition where it was and throws. While writes run,
 * the cache buffer and the O_DIRECT descriptor are in use, so `flush`, `release`, `load`, `truncateTo`,
 * `close` and the other operations that change positions, buffer or descriptors first wait for them
 * (`drain`, Atomics.wait on the write thread's slot).
 */
import { constants as fsConstants } from 'node:fs';

import { fsyncDirectory, type StorageFs } from './storage-fs.ts';
import { assert } from '../runtime/assert.ts';
import type { AsyncWrites, WriteOutcome } from '../runtime/write-threads.ts';

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
/** File offsets, lengths and buffer addresses of direct writes are multiples of this. */
export const DIRECT_IO_BLOCK_BYTES = 4096;
/** Dirty ranges from this size on are written with O_DIRECT when the pool allows it. */
export const DIRECT_WRITE_MIN_BYTES_DEFAULT = 64 * 1024;
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
  assert(Number.isSafeInteger(startOffset) && startOffset >= 0, () => `bad start offset ${startOffset}`);
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
 * How a pool's buffers get aligned for O_DIRECT. JavaScript cannot see a buffer's address, so the
 * alignment is found by trying: `probeDir` is a directory on the log's file system, where a scratch
 * file takes one direct write of DIRECT_IO_BLOCK_BYTES from each candidate offset of a new buffer
 * until one is accepted (at most DIRECT_IO_BLOCK_BYTES / 16 tries: allocations are 16-byte aligned).
 */
export type DirectIo = {
  readonly probeDir: string;
  /** Dirty ranges from this size on are written directly (default DIRECT_WRITE_MIN_BYTES_DEFAULT). */
  readonly minBytes?: number;
  /** Where `MappedFile.startWrite` runs direct writes while the owner goes on; none: every write is inline. */
  readonly writes?: AsyncWrites;
};

const PROBE_STEP_BYTES = 16;

/**
 * The offset into `buffer` from which direct writes are accepted on `probeDir`'s file system, or null
 * when none is (no O_DIRECT there, or no candidate accepted).
 */
function probeDirectOffset(storageFs: StorageFs, probeDir: string, buffer: SharedArrayBuffer): number | null {
  const probePath = `${probeDir}/.direct-io-probe`;
  let fd: number;
  try {
    fd = storageFs.openSync(probePath, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_DIRECT, 0o644);
  } catch {
    return null;
  }
  try {
    // Bounded: DIRECT_IO_BLOCK_BYTES / PROBE_STEP_BYTES candidates.
    for (let offset = 0; offset < DIRECT_IO_BLOCK_BYTES; offset += PROBE_STEP_BYTES) {
      try {
        if (storageFs.writeSync(fd, new Uint8Array(buffer, offset, DIRECT_IO_BLOCK_BYTES), 0, DIRECT_IO_BLOCK_BYTES, 0) === DIRECT_IO_BLOCK_BYTES) return offset;
      } catch (error) {
        if (errnoOf(error) !== 'EINVAL') return null;
      }
    }
    return null;
  } finally {
    storageFs.closeSync(fd);
    try {
      storageFs.unlinkSync(probePath);
    } catch {
      // A leftover probe file is harmless: it is not a log file name and is rewritten next time.
    }
  }
}

/**
 * Page-cache buffers of one file size, recycled: `give` keeps a released buffer (up to `sparesMax`),
 * `take` hands a kept one out before allocating. A recycled buffer holds its previous file's bytes; see
 * the header for why that is harmless. A buffer handed to another thread (sharedBuffer) is valid only
 * until its file is released. With a DirectIo, each buffer is a view at an aligned offset of a
 * SharedArrayBuffer one block larger (see `directAligned`).
 */
export class PageCachePool {
  /** Size of every buffer. */
  readonly sizeBytes: number;
  /** Least dirty bytes written directly; Infinity without direct I/O. */
  readonly directMinBytes: number;
  private readonly sparesMax: number;
  private readonly spares: Uint8Array[] = [];
  private readonly aligned = new WeakSet<Uint8Array>();
  /** Where to probe for direct-write alignment; undefined when buffers need none. */
  private readonly direct: { readonly fs: StorageFs; readonly io: DirectIo } | undefined;
  private allocatedCount = 0;
  /** The staging block of `tailBlock`: undefined until first needed, null when none could be aligned. */
  private tail: Uint8Array | null | undefined = undefined;

  constructor(sizeBytes: number, sparesMax: number = PAGE_CACHE_SPARES_MAX_DEFAULT, direct?: { readonly fs: StorageFs; readonly io: DirectIo }) {
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= FILE_SIZE_MAX_BYTES, () => `bad size ${sizeBytes}`);
    assert(Number.isInteger(sparesMax) && sparesMax >= 0, () => `bad sparesMax ${sparesMax}`);
    const minBytes = direct?.io.minBytes ?? DIRECT_WRITE_MIN_BYTES_DEFAULT;
    assert(Number.isInteger(minBytes) && minBytes >= 1, () => `bad direct write minimum ${minBytes}`);
    this.sizeBytes = sizeBytes;
    this.sparesMax = sparesMax;
    const directPossible = direct !== undefined && sizeBytes % DIRECT_IO_BLOCK_BYTES === 0;
    this.direct = directPossible ? direct : undefined;
    this.directMinBytes = directPossible ? minBytes : Number.POSITIVE_INFINITY;
  }

  /** Buffers allocated so far (not recycled ones): for tests and stats. */
  get allocated(): number {
    return this.allocatedCount;
  }

  /** The write threads of `MappedFile.startWrite`; undefined when writes run only inline. */
  get asyncWrites(): AsyncWrites | undefined {
    return this.direct?.io.writes;
  }

  /** Whether `buffer` (one of this pool's) may be the source of direct writes. */
  directAligned(buffer: Uint8Array): boolean {
    return this.aligned.has(buffer);
  }

  /** A spare buffer, or a fresh zeroed one. */
  take(): Uint8Array {
    const spare = this.spares.pop();
    if (spare !== undefined) return spare;
    this.allocatedCount++;
    if (this.direct === undefined) return new Uint8Array(new SharedArrayBuffer(this.sizeBytes));
    // One spare block, so that a view of sizeBytes fits from any offset the probe may pick.
    const shared = new SharedArrayBuffer(this.sizeBytes + DIRECT_IO_BLOCK_BYTES);
    const offset = probeDirectOffset(this.direct.fs, this.direct.io.probeDir, shared);
    const buffer = new Uint8Array(shared, offset ?? 0, this.sizeBytes);
    if (offset !== null) this.aligned.add(buffer);
    return buffer;
  }

  /**
   * One block, aligned for direct writes, for the last block of a direct write that ends inside it; null
   * without direct I/O or when no alignment is accepted. The file holds zeros past wrotePosition, so that
   * block is staged here with zeros after the data, rather than zeroing the cache past wrotePosition:
   * there the cache may hold bytes a send thread reserved and is still filling (append-region.ts).
   */
  tailBlock(): Uint8Array | null {
    if (this.direct === undefined) return null;
    if (this.tail === undefined) {
      const shared = new SharedArrayBuffer(2 * DIRECT_IO_BLOCK_BYTES);
      const offset = probeDirectOffset(this.direct.fs, this.direct.io.probeDir, shared);
      this.tail = offset === null ? null : new Uint8Array(shared, offset, DIRECT_IO_BLOCK_BYTES);
    }
    return this.tail;
  }

  /** Keeps `buffer` for a later `take`, or drops it when enough are kept. */
  give(buffer: Uint8Array): void {
    assert(buffer.length === this.sizeBytes && buffer.buffer instanceof SharedArrayBuffer, 'buffer from another pool');
    // Bytes past a file's end are unspecified in the cache (see the header), so a spare needs no zeroing.
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
  /** The O_DIRECT descriptor: null until the first direct write, 'off' once direct writes fell back. */
  private directFd: number | null | 'off' = null;
  private cache: Uint8Array | null = null;
  /** Bytes [cacheStart, loadedBytes) of the cache hold the file's bytes (also the appended ones). */
  private cacheStart = 0;
  private loadedBytes = 0;
  private wrote: number;
  private flushed: number;
  /** Bytes [flushed, issued) are being written by write threads (`startWrite`); issued == flushed otherwise. */
  private issued: number;
  /** Writes on write threads, oldest first, with the position each one ends at. */
  private readonly running: { readonly slot: number; readonly end: number }[] = [];
  /** Bytes a write thread wrote are not yet covered by an fdatasync (or handed to one: `takeWritten`). */
  private writtenUnsynced = false;

  private constructor(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number, position: number, pool: PageCachePool | undefined) {
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= FILE_SIZE_MAX_BYTES, () => `bad size ${sizeBytes}`);
    assert(startOffset % sizeBytes === 0, () => `start offset ${startOffset} is not a multiple of ${sizeBytes}`);
    assert(pool === undefined || pool.sizeBytes === sizeBytes, 'pool of another file size');
    this.storageFs = storageFs;
    this.pool = pool ?? new PageCachePool(sizeBytes, 0);
    this.path = `${dir}/${fileNameOf(startOffset)}`;
    this.startOffset = startOffset;
    this.sizeBytes = sizeBytes;
    this.wrote = position;
    this.flushed = position;
    this.issued = position;
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

  /**
   * Bytes written to the file: by `flush` (and fdatasync'd), or by write threads (`startWrite`), whose
   * bytes need an fdatasync still (`takeWritten`).
   */
  get flushedPosition(): number {
    return this.flushed;
  }

  /** Whether writes started by `startWrite` are running. */
  get writing(): boolean {
    return this.running.length > 0;
  }

  /** Bytes written or being written by write threads (flushedPosition <= issuedPosition <= wrotePosition). */
  get issuedPosition(): number {
    return this.issued;
  }

  /** How many writes started by `startWrite` are running. */
  get writesRunning(): number {
    return this.running.length;
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

  /**
   * The cache's shared buffer and where in it byte 0 of the file is (not 0 in a buffer aligned for
   * direct writes), for reader threads; null while released.
   */
  sharedBuffer(): { readonly buffer: SharedArrayBuffer; readonly byteOffset: number } | null {
    return this.cache === null ? null : { buffer: this.cache.buffer as SharedArrayBuffer, byteOffset: this.cache.byteOffset };
  }

  /** Marks `sizeBytes` more bytes, already written into `bytes()` at `wrotePosition`, as appended. */
  advance(sizeBytes: number): void {
    assert(this.cache !== null, 'append to a released file');
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0, () => `bad append size ${sizeBytes}`);
    assert(this.wrote + sizeBytes <= this.sizeBytes, 'append past the end of the file');
    this.wrote += sizeBytes;
  }

  /**
   * Writes the dirty range to the file and fdatasyncs it, after the writes still running on write
   * threads end; returns the bytes written here.
   */
  flush(): number {
    this.drain();
    const from = this.flushed;
    const to = this.wrote;
    if (from === to && !this.writtenUnsynced) return 0;
    const cache = this.cache;
    assert(from === to || (cache !== null && from >= this.cacheStart), 'dirty bytes without a cache');
    const fd = this.openFd();
    if (from < to && !this.writeDirect(cache!, from, to)) this.writeFully(fd, cache!.subarray(from, to), from);
    io(this.path, 'fdatasync', () => this.storageFs.fdatasyncSync(fd));
    assert(this.flushed === from && this.wrote >= to && this.running.length === 0, 'positions moved during flush');
    this.flushed = to;
    this.issued = to;
    this.writtenUnsynced = false;
    return to - from;
  }

  /** Fdatasyncs the file: makes bytes that reached the OS (say, from a run that crashed) durable. */
  sync(): void {
    const fd = this.openFd();
    io(this.path, 'fdatasync', () => this.storageFs.fdatasyncSync(fd));
    this.writtenUnsynced = false;
  }

  /**
   * Starts writing the whole blocks of [flushedPosition, wrotePosition) not yet being written on a write
   * thread (DirectIo.writes), with O_DIRECT straight from the cache, when they come to at least
   * `lengthMinBytes` (never less than `directMinBytes`) and a thread is free; at most `lengthMaxBytes` of
   * them; true when one started. The partial last block stays dirty for
   * a later write. Bytes count as written (flushedPosition) only once their write and every write
   * started before it ended: `reap`. Until then the cache buffer and the descriptor stay in use, so every
   * operation that could change either waits for the running writes first (`drain`).
   */
  startWrite(lengthMinBytes: number, lengthMaxBytes: number): boolean {
    const writes = this.pool.asyncWrites;
    const cache = this.cache;
    if (writes === undefined || cache === null || this.directFd === 'off' || !this.pool.directAligned(cache)) return false;
    assert(lengthMaxBytes % DIRECT_IO_BLOCK_BYTES === 0 && lengthMaxBytes >= this.pool.directMinBytes, () => `bad write length ${lengthMaxBytes}`);
    const start = this.issued - (this.issued % DIRECT_IO_BLOCK_BYTES);
    const end = Math.min(this.wrote - (this.wrote % DIRECT_IO_BLOCK_BYTES), start + lengthMaxBytes);
    if (end - start < Math.max(lengthMinBytes, this.pool.directMinBytes)) return false;
    assert(start >= this.cacheStart && this.issued >= this.flushed, 'a started write lies in the cache, past what is written');
    const fd = this.openDirect();
    if (fd === null) return false;
    const slot = writes.start(fd, cache.subarray(start, end), start);
    if (slot === null) return false;
    this.running.push({ slot, end });
    this.issued = end;
    return true;
  }

  /**
   * Takes the outcomes of the writes that ended, oldest first, stopping at one still running; true when
   * flushedPosition moved. A failed write throws MappedFileError after the other running writes end; its
   * bytes count as not written (a later `flush` writes them inline, buffered after EINVAL).
   */
  reap(): boolean {
    const writes = this.pool.asyncWrites;
    let moved = false;
    // Bounded by the number of running writes.
    while (writes !== undefined && this.running.length > 0) {
      const head = this.running[0]!;
      const outcome = writes.poll(head.slot);
      if (outcome === undefined) break;
      this.running.shift();
      moved = this.ended(head.end, outcome) || moved;
    }
    return moved;
  }

  /** Whether a write thread wrote bytes here since the last fdatasync; clears it: the caller syncs them. */
  takeWritten(): boolean {
    const written = this.writtenUnsynced;
    this.writtenUnsynced = false;
    return written;
  }

  /** Waits for every running write to end (Atomics.wait), taking their outcomes as `reap` does. */
  drain(): void {
    const writes = this.pool.asyncWrites;
    // Bounded by the number of running writes.
    while (writes !== undefined && this.running.length > 0) {
      const head = this.running.shift()!;
      this.ended(head.end, writes.wait(head.slot));
    }
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
    this.drain();
    assert(this.flushed === this.wrote, 'release with dirty bytes');
    this.dropCache();
  }

  /** Reads [0, lengthBytes) of the file into a cache (fresh or recycled: see the header). */
  load(lengthBytes: number = this.sizeBytes): void {
    this.drain();
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
    this.drain();
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
    assert(Number.isInteger(from) && from >= 0 && from <= this.sizeBytes, () => `bad position ${from}`);
    assert(Number.isInteger(to) && to >= from && to <= this.sizeBytes, () => `bad end ${to}`);
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
    assert(Number.isInteger(position) && position >= 0 && position <= this.sizeBytes, () => `bad position ${position}`);
    assert(this.cache === null || (position >= this.cacheStart && position <= this.loadedBytes), 'cache must hold the data it keeps');
    this.drain();
    if (this.cache !== null) this.loadedBytes = position;
    this.wrote = position;
    this.flushed = position;
    this.issued = position;
  }

  /**
   * Ends the file's data at `position` durably: zeroes every non-zero byte of [position, end) in the
   * file (scanned in chunks; `end` defaults to the file's end, and recovery passes less only when it
   * knows nothing lies past it) and what the cache held there, fdatasyncs if anything changed, and sets
   * both positions to `position`. Recovery uses it to cut a torn or corrupt tail.
   */
  truncateTo(position: number, end: number = this.sizeBytes): void {
    assert(Number.isInteger(position) && position >= 0 && position <= this.sizeBytes, () => `bad position ${position}`);
    assert(Number.isInteger(end) && end >= position && end <= this.sizeBytes, () => `bad end ${end}`);
    assert(this.cache === null || position >= this.cacheStart, 'truncate below the cache');
    this.drain();
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
    this.issued = position;
  }

  /**
   * Closes the file descriptors once running writes end (their failures are ignored: closing is what
   * a failed store does); the cache stays readable. Unflushed bytes are not written.
   */
  close(): void {
    this.abandonRunning();
    this.closeDirect();
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

  /** Records one ended write: its end becomes written, or on failure nothing more does (see `reap`). */
  private ended(end: number, outcome: WriteOutcome): boolean {
    if (outcome === null) {
      assert(end > this.flushed && end <= this.issued, () => `write ending at ${end} is out of order`);
      this.flushed = end;
      this.writtenUnsynced = true;
      return true;
    }
    this.abandonRunning();
    if (outcome === 'EINVAL') {
      // As in writeDirect: the device wants a stricter alignment; the range is written buffered later.
      this.closeDirect();
      this.directFd = 'off';
      return false;
    }
    const code = outcome === 'ENOSPC' || outcome === 'EDQUOT' ? 'DISK_FULL' : 'IO_ERROR';
    throw new MappedFileError(code, this.path, `write ${this.path} failed: ${outcome}`, { errno: outcome });
  }

  /** Waits for the running writes to end and counts none of them written: their outcomes no longer matter. */
  private abandonRunning(): void {
    const writes = this.pool.asyncWrites;
    // Bounded by the number of running writes.
    while (writes !== undefined && this.running.length > 0) writes.wait(this.running.shift()!.slot);
    this.issued = this.flushed;
  }

  /** The O_DIRECT descriptor, opened on first use; null once direct writes are off for this file. */
  private openDirect(): number | null {
    if (this.directFd === 'off') return null;
    if (this.directFd === null) {
      try {
        this.directFd = this.storageFs.openSync(this.path, fsConstants.O_RDWR | fsConstants.O_DIRECT);
      } catch {
        this.directFd = 'off';
        return null;
      }
    }
    return this.directFd;
  }

  /**
   * Writes [from, to) of `cache` with O_DIRECT, widened to whole blocks (see the header); false when
   * the range is too small for it, or direct writes are not possible for this file (then never again).
   */
  private writeDirect(cache: Uint8Array, from: number, to: number): boolean {
    if (to - from < this.pool.directMinBytes || this.directFd === 'off' || !this.pool.directAligned(cache)) return false;
    const fd = this.openDirect();
    if (fd === null) return false;
    // The last block, when `to` ends inside it, goes from a staging block: see `tailBlock`.
    const wholeEnd = to - (to % DIRECT_IO_BLOCK_BYTES);
    const tail = wholeEnd === to ? null : this.pool.tailBlock();
    if (wholeEnd !== to && tail === null) return false;
    const start = from - (from % DIRECT_IO_BLOCK_BYTES);
    assert(start >= this.cacheStart, 'direct write below the cache');
    try {
      if (wholeEnd > start) this.writeFully(fd, cache.subarray(start, wholeEnd), start);
      if (tail !== null) {
        tail.set(cache.subarray(wholeEnd, to));
        tail.fill(0, to - wholeEnd);
        this.writeFully(fd, tail, wholeEnd);
      }
    } catch (error) {
      if (!(error instanceof MappedFileError) || error.errno !== 'EINVAL') throw error;
      // The device wants a stricter alignment than the probe's file system showed: write buffered from now on.
      this.closeDirect();
      this.directFd = 'off';
      return false;
    }
    return true;
  }

  private closeDirect(): void {
    if (typeof this.directFd === 'number') {
      const fd = this.directFd;
      this.directFd = null;
      io(this.path, 'close', () => this.storageFs.closeSync(fd));
    }
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
