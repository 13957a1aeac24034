/**
 * The file-system seam of the store. Storage code runs on its own worker threads, so it uses the
 * synchronous API (no event loop to protect there, and it is faster); tests inject faults (ENOSPC, EIO,
 * torn writes) by wrapping `nodeStorageFs`. Nothing in src/storage imports node:fs directly except here.
 */
import fs from 'node:fs';
import { assert } from '../runtime/assert.ts';

/** The synchronous file operations the store uses. */
export type StorageFs = {
  /** `flags` as fs.openSync takes them: a string, or numeric fs.constants (O_DIRECT has no string form). */
  openSync(path: string, flags: string | number, mode?: number): number;
  closeSync(fd: number): void;
  /** Writes `length` bytes of `buffer` from `offset` at file `position`; returns bytes written. */
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  /** Reads into `buffer` at `offset`, up to `length` bytes from file `position`; returns bytes read. */
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  fdatasyncSync(fd: number): void;
  fsyncSync(fd: number): void;
  ftruncateSync(fd: number, length: number): void;
  fstatSync(fd: number): { size: number };
  existsSync(path: string): boolean;
  mkdirSync(path: string, options: { recursive: true }): unknown;
  readdirSync(path: string): string[];
  readFileSync(path: string): Buffer;
  writeFileSync(path: string, data: Uint8Array | string): void;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
  rmSync(path: string, options: { recursive: boolean; force: boolean }): void;
  statSync(path: string): { size: number; mtimeMs: number };
  statfsSync(path: string): { bsize: number; blocks: number; bavail: number; bfree?: number };
};

/** The real file system. */
export const nodeStorageFs: StorageFs = {
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  closeSync: (fd) => fs.closeSync(fd),
  writeSync: (fd, buffer, offset, length, position) => fs.writeSync(fd, buffer, offset, length, position),
  readSync: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  fdatasyncSync: (fd) => fs.fdatasyncSync(fd),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
  fstatSync: (fd) => fs.fstatSync(fd),
  existsSync: (path) => fs.existsSync(path),
  mkdirSync: (path, options) => fs.mkdirSync(path, options),
  readdirSync: (path) => fs.readdirSync(path),
  readFileSync: (path) => fs.readFileSync(path),
  writeFileSync: (path, data) => fs.writeFileSync(path, data),
  renameSync: (from, to) => fs.renameSync(from, to),
  unlinkSync: (path) => fs.unlinkSync(path),
  rmSync: (path, options) => fs.rmSync(path, options),
  statSync: (path) => fs.statSync(path),
  statfsSync: (path) => fs.statfsSync(path),
};

const writeAttemptsMax = 1024;

/** Writes `length` bytes of `bytes` from `from` at file position `position`, looping over short writes. */
export function writeFully(storageFs: StorageFs, fd: number, bytes: Uint8Array, from: number, length: number, position: number): void {
  let written = 0;
  for (let attempt = 0; written < length; attempt++) {
    assert(attempt < writeAttemptsMax, 'writeSync makes progress');
    const n = storageFs.writeSync(fd, bytes, from + written, length - written, position + written);
    assert(n > 0 && n <= length - written, 'writeSync wrote a sane byte count');
    written += n;
  }
}

/** fsyncs a directory so that a created, renamed or deleted file name is durable. */
export function fsyncDirectory(storageFs: StorageFs, dir: string): void {
  const fd = storageFs.openSync(dir, 'r');
  try {
    storageFs.fsyncSync(fd);
  } finally {
    storageFs.closeSync(fd);
  }
}

/** Writes a file atomically and durably: temp file, fsync, rename, fsync of the directory. */
export function writeFileAtomic(storageFs: StorageFs, path: string, data: Uint8Array | string): void {
  const temp = `${path}.tmp`;
  const fd = storageFs.openSync(temp, 'w', 0o644);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    writeFully(storageFs, fd, bytes, 0, bytes.length, 0);
    storageFs.fsyncSync(fd);
  } finally {
    storageFs.closeSync(fd);
  }
  storageFs.renameSync(temp, path);
  const slash = path.lastIndexOf('/');
  fsyncDirectory(storageFs, slash > 0 ? path.slice(0, slash) : '.');
}
