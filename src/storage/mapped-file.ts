/**
 * One fixed-size file of a log (RocketMQ's DefaultMappedFile), named by the 20-digit zero-padded log
 * offset of its first byte. Instead of mmap, its page cache is a SharedArrayBuffer of the file's size,
 * allocated when the file is first written or read (Linux commits only the pages that are touched), so
 * reader threads can be handed the buffer and read appended bytes without a copy or a syscall.
 *
 * | name                 | meaning                                                                  |
 * |----------------------|--------------------------------------------------------------------------|
 * | 00000000000000000000 | bytes [0, sizeBytes) of the log                                          |
 * | 00000000001073741824 | bytes [1 GiB, 2 GiB) of the log, and so on; names sort like offsets      |
 *
 * Positions, all relative to the file's start:
 *   0 <= flushedPosition <= wrotePosition <= sizeBytes
 * - [0, flushedPosition) is in the file and fdatasync'd: durable.
 * - [flushedPosition, wrotePosition) is dirty: only in the cache. A crash loses it, perhaps in part.
 * - [wrotePosition, sizeBytes) is zero, in the cache and in the file (files are created with their
 *   full size by ftruncate, so they start as zeros; recovery zeroes what a torn write left there).
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

/** One preallocated log file and its shared page cache. */
export class MappedFile {
  /** Path of the file. */
  readonly path: string;
  /** Log offset of the file's first byte. */
  readonly startOffset: number;
  /** Size of the file. */
  readonly sizeBytes: number;
  private readonly storageFs: StorageFs;
  private fd: number | null = null;
  private cache: Uint8Array | null = null;
  /** Bytes [0, loadedBytes) of the cache hold the file's bytes; the rest of the cache is zero. */
  private loadedBytes = 0;
  private wrote: number;
  private flushed: number;

  private constructor(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number, position: number) {
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= FILE_SIZE_MAX_BYTES, `bad size ${sizeBytes}`);
    assert(startOffset % sizeBytes === 0, `start offset ${startOffset} is not a multiple of ${sizeBytes}`);
    this.storageFs = storageFs;
    this.path = `${dir}/${fileNameOf(startOffset)}`;
    this.startOffset = startOffset;
    this.sizeBytes = sizeBytes;
    this.wrote = position;
    this.flushed = position;
  }

  /** Creates the file with its full size (zeros) and makes its existence durable. */
  static create(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number): MappedFile {
    const file = new MappedFile(storageFs, dir, startOffset, sizeBytes, 0);
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
  static open(storageFs: StorageFs, dir: string, startOffset: number, sizeBytes: number): MappedFile {
    const file = new MappedFile(storageFs, dir, startOffset, sizeBytes, sizeBytes);
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

  /** The page cache, loaded from the file's appended bytes if it was not in memory. */
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
    assert(cache !== null, 'dirty bytes without a cache');
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

  /** Reads appended bytes: a view into the cache when loaded (do not modify it), else a copy from the file. */
  read(position: number, sizeBytes: number): Uint8Array {
    assert(Number.isInteger(position) && Number.isInteger(sizeBytes), 'read range must be integers');
    assert(position >= 0 && sizeBytes >= 0 && position + sizeBytes <= this.wrote, 'read past wrotePosition');
    if (this.cache !== null) return this.cache.subarray(position, position + sizeBytes);
    const target = new Uint8Array(sizeBytes);
    this.readInto(target, position);
    return target;
  }

  /** Drops the page cache to free memory; only a file with nothing dirty may drop it. */
  release(): void {
    assert(this.flushed === this.wrote, 'release with dirty bytes');
    this.cache = null;
    this.loadedBytes = 0;
  }

  /** Reads [0, lengthBytes) of the file into a fresh cache; the rest of the cache stays zero. */
  load(lengthBytes: number = this.sizeBytes): void {
    assert(this.cache === null || this.flushed === this.wrote, 'load over dirty bytes');
    assert(Number.isInteger(lengthBytes) && lengthBytes >= 0 && lengthBytes <= this.sizeBytes, 'load range');
    const cache = new Uint8Array(new SharedArrayBuffer(this.sizeBytes));
    if (lengthBytes > 0) this.readInto(cache.subarray(0, lengthBytes), 0);
    this.cache = cache;
    this.loadedBytes = lengthBytes;
  }

  /**
   * Reads more of the file into the cache, up to `lengthBytes`, creating an empty cache first if there
   * is none. Recovery scans with it so that only the part of a file that holds data is ever read (and
   * only those pages of the shared buffer are touched), not the whole preallocated file.
   */
  loadUpTo(lengthBytes: number): void {
    assert(Number.isInteger(lengthBytes) && lengthBytes >= 0 && lengthBytes <= this.sizeBytes, 'load range');
    if (this.cache === null) this.load(0);
    const cache = this.cache;
    assert(cache !== null, 'cache exists after load');
    if (lengthBytes <= this.loadedBytes) return;
    assert(this.wrote <= this.loadedBytes || this.flushed === this.wrote, 'load over dirty bytes');
    this.readInto(cache.subarray(this.loadedBytes, lengthBytes), this.loadedBytes);
    this.loadedBytes = lengthBytes;
  }

  /** How much of the file the cache holds (the rest of the cache is zero). */
  get loadedLength(): number {
    return this.cache === null ? 0 : this.loadedBytes;
  }

  /**
   * Position of the first chunk at or after `from` in the FILE (not the cache) holding a non-zero byte,
   * or null when the rest of the file is zero. Reads through one reused chunk, never the cache.
   */
  firstNonZeroFrom(from: number): number | null {
    assert(Number.isInteger(from) && from >= 0 && from <= this.sizeBytes, `bad position ${from}`);
    const chunk = scratchChunk();
    // Bounded by sizeBytes / CHUNK_BYTES passes.
    for (let at = from; at < this.sizeBytes; at += chunk.length) {
      const view = chunk.subarray(0, Math.min(chunk.length, this.sizeBytes - at));
      this.readInto(view, at);
      if (!isZero(view)) return at;
    }
    return null;
  }

  /** Ends the data at `position` when the file is already zero from there: no I/O, no sync needed. */
  endAtZeroTail(position: number): void {
    assert(Number.isInteger(position) && position >= 0 && position <= this.sizeBytes, `bad position ${position}`);
    assert(this.cache === null || position <= this.loadedBytes, 'cache must hold the data it keeps');
    if (this.cache !== null) {
      this.cache.fill(0, position, this.loadedBytes);
      this.loadedBytes = position;
    }
    this.wrote = position;
    this.flushed = position;
  }

  /**
   * Ends the file's data at `position` durably: zeroes every non-zero byte of [position, sizeBytes) in
   * the file (scanned in chunks) and in the cache, fdatasyncs if anything changed, and sets both
   * positions to `position`. Recovery uses it to cut a torn or corrupt tail.
   */
  truncateTo(position: number): void {
    assert(Number.isInteger(position) && position >= 0 && position <= this.sizeBytes, `bad position ${position}`);
    const fd = this.openFd();
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, this.sizeBytes));
    let changed = false;
    // Bounded by sizeBytes / CHUNK_BYTES passes.
    for (let at = position; at < this.sizeBytes; at += chunk.length) {
      const length = Math.min(chunk.length, this.sizeBytes - at);
      const view = chunk.subarray(0, length);
      this.readInto(view, at);
      if (isZero(view)) continue;
      this.writeFully(fd, zeros().subarray(0, length), at);
      changed = true;
    }
    if (changed) io(this.path, 'fdatasync', () => this.storageFs.fdatasyncSync(fd));
    this.cache?.fill(0, position);
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
    this.cache = null;
    io(this.path, 'unlink', () => this.storageFs.unlinkSync(this.path));
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
