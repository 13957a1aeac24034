import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DIRECT_IO_BLOCK_BYTES,
  MappedFile,
  MappedFileError,
  PageCachePool,
  fileNameOf,
  parseFileName,
} from '../../src/storage/mapped-file.ts';
import { type StorageFs, nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { type AsyncWrites, type WriteOutcome, WriteThreads } from '../../src/runtime/write-threads.ts';

const SIZE = 64 * 1024;
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapped-file-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function append(file: MappedFile, text: string): void {
  const bytes = Buffer.from(text);
  file.bytes().set(bytes, file.wrotePosition);
  file.advance(bytes.length);
}

describe('MappedFile', () => {
  it('names files by their 20-digit start offset and creates them with their full size', () => {
    expect(fileNameOf(SIZE * 3)).toBe('00000000000000196608');
    expect(parseFileName('00000000000000196608')).toBe(196608);
    expect(parseFileName('00000000000000196608.tmp')).toBeNull();
    const file = MappedFile.create(nodeStorageFs, dir, SIZE * 3, SIZE);
    expect(fs.statSync(path.join(dir, '00000000000000196608')).size).toBe(SIZE);
    expect(file.loaded).toBe(false);
    file.close();
  });

  it('tracks wrote and flushed positions; flush writes only the dirty range', () => {
    const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE);
    append(file, 'hello ');
    expect([file.wrotePosition, file.flushedPosition]).toEqual([6, 0]);
    expect(fs.readFileSync(file.path).subarray(0, 6).toString()).toBe('\0'.repeat(6));
    expect(file.flush()).toBe(6);
    append(file, 'world');
    expect(file.flush()).toBe(5);
    expect(file.flush()).toBe(0);
    expect([file.wrotePosition, file.flushedPosition]).toEqual([11, 11]);
    expect(fs.readFileSync(file.path).subarray(0, 12).toString()).toBe('hello world\0');
    file.close();
  });

  it('serves reads from the file after release and from a fresh cache after load', () => {
    const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE);
    append(file, 'persisted bytes');
    expect(() => file.release()).toThrow(/dirty/);
    file.flush();
    file.release();
    expect(file.loaded).toBe(false);
    expect(file.sharedBuffer()).toBeNull();
    expect(Buffer.from(file.read(10, 5)).toString()).toBe('bytes');
    file.load(file.wrotePosition);
    expect(file.loaded).toBe(true);
    expect(Buffer.from(file.read(0, 9)).toString()).toBe('persisted');
    expect(file.bytes()[file.wrotePosition]).toBe(0);
    file.close();
  });

  it('hands its cache to another thread, which reads appended bytes without a copy', async () => {
    const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE);
    append(file, 'shared!');
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       parentPort.postMessage(Buffer.from(new Uint8Array(workerData.buffer, workerData.byteOffset, workerData.length)).toString());`,
      { eval: true, workerData: { ...file.sharedBuffer(), length: file.wrotePosition } },
    );
    const text = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(text).toBe('shared!');
    file.close();
  });

  it('truncateTo zeroes only up to the end it is given', () => {
    const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE);
    append(file, 'keep|drop|far');
    file.flush();
    file.release();
    file.truncateTo(5, 10);
    const onDisk = fs.readFileSync(file.path);
    expect(onDisk.subarray(0, 13).toString()).toBe('keep|\0\0\0\0\0far');
    expect(file.wrotePosition).toBe(5);
    file.close();
  });

  it('truncateTo zeroes the tail in the file and the cache, durably', () => {
    const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE);
    append(file, 'keep|drop this');
    file.flush();
    file.truncateTo(5);
    expect([file.wrotePosition, file.flushedPosition]).toEqual([5, 5]);
    const onDisk = fs.readFileSync(file.path);
    expect(onDisk.subarray(0, 5).toString()).toBe('keep|');
    expect(onDisk.subarray(5).every((b) => b === 0)).toBe(true);
    expect(file.bytes().subarray(5, 20).every((b) => b === 0)).toBe(true);
    file.close();
  });

  it('recycles a released cache for the next file, whose stale bytes never reach the disk', () => {
    const pool = new PageCachePool(SIZE, 1);
    const first = MappedFile.create(nodeStorageFs, dir, 0, SIZE, pool);
    append(first, 'x'.repeat(5000));
    first.flush();
    const firstBuffer = first.sharedBuffer();
    first.release();
    const second = MappedFile.create(nodeStorageFs, dir, SIZE, SIZE, pool);
    append(second, 'fresh');
    expect(second.sharedBuffer()?.buffer).toBe(firstBuffer?.buffer);
    expect(pool.allocated).toBe(1);
    // The recycled buffer still holds the first file's bytes past the new end; flush writes only 'fresh'.
    expect(second.bytes()[10]).toBe('x'.charCodeAt(0));
    second.flush();
    const onDisk = fs.readFileSync(second.path);
    expect(onDisk.subarray(0, 5).toString()).toBe('fresh');
    expect(onDisk.subarray(5).every((b) => b === 0)).toBe(true);
    // Only sparesMax buffers are kept: a second release with one spare already kept drops its buffer.
    const third = MappedFile.create(nodeStorageFs, dir, 2 * SIZE, SIZE, pool);
    append(third, 'third');
    third.flush();
    second.release();
    third.release();
    expect(MappedFile.create(nodeStorageFs, dir, 3 * SIZE, SIZE, pool).bytes()).toBeDefined();
    expect(pool.allocated).toBe(2);
    for (const file of [first, second, third]) file.close();
  });

  it('caches only from the page holding the end after cacheFromEnd, reading older bytes from the file', () => {
    const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE);
    const text = Array.from({ length: 700 }, (_, i) => String(i % 10)).join('').repeat(8); // 5600 bytes
    append(file, text);
    file.flush();
    file.release();
    file.cacheFromEnd();
    expect(file.cachedFrom).toBe(4096);
    expect(file.cacheHolds(4096, 100)).toBe(true);
    expect(file.cacheHolds(4000, 100)).toBe(false);
    // A read below the cache's start comes from the file, one inside it from the cache.
    expect(Buffer.from(file.read(4000, 200)).toString()).toBe(text.slice(4000, 4200));
    expect(Buffer.from(file.read(5000, 600)).toString()).toBe(text.slice(5000, 5600));
    append(file, '|more');
    file.flush();
    expect(fs.readFileSync(file.path).subarray(0, 5605).toString()).toBe(`${text}|more`);
    file.close();
  });

  it('refuses to open a file of the wrong size', () => {
    fs.writeFileSync(path.join(dir, fileNameOf(0)), Buffer.alloc(100));
    const error = captureError(() => MappedFile.open(nodeStorageFs, dir, 0, SIZE));
    expect(error).toBeInstanceOf(MappedFileError);
    expect((error as MappedFileError).code).toBe('FILE_SIZE_MISMATCH');
  });

  it('reports ENOSPC as DISK_FULL, keeps flushedPosition, and a retry rewrites the whole dirty range', () => {
    let failWrites = false;
    const faulty: StorageFs = {
      ...nodeStorageFs,
      writeSync(fd, buffer, offset, length, position) {
        if (!failWrites) return nodeStorageFs.writeSync(fd, buffer, offset, length, position);
        // A partial write reaches the file, then the disk is full.
        nodeStorageFs.writeSync(fd, buffer, offset, Math.ceil(length / 2), position);
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      },
    };
    const file = MappedFile.create(faulty, dir, 0, SIZE);
    append(file, 'first ');
    file.flush();
    append(file, 'second');
    failWrites = true;
    const error = captureError(() => file.flush());
    expect(error).toBeInstanceOf(MappedFileError);
    expect((error as MappedFileError).code).toBe('DISK_FULL');
    expect((error as MappedFileError).errno).toBe('ENOSPC');
    expect(file.flushedPosition).toBe(6);
    expect(fs.readFileSync(file.path).subarray(0, 6).toString()).toBe('first ');
    failWrites = false;
    expect(file.flush()).toBe(6);
    expect(fs.readFileSync(file.path).subarray(0, 12).toString()).toBe('first second');
    file.close();
  });
});

/** Whether the temp directory's file system takes O_DIRECT opens (ext4 and xfs do, tmpfs does not). */
function directIoSupported(): boolean {
  const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'direct-probe-'));
  try {
    fs.closeSync(fs.openSync(path.join(probeDir, 'p'), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probeDir, { recursive: true, force: true });
  }
}

type WriteCall = { readonly fd: number; readonly position: number; readonly length: number; readonly direct: boolean };

/** nodeStorageFs that records every write and which descriptors were opened with O_DIRECT. */
function recordingFs(refuseDirect = false): { fs: StorageFs; writes: WriteCall[]; directFds: Set<number> } {
  const writes: WriteCall[] = [];
  const directFds = new Set<number>();
  const recording: StorageFs = {
    ...nodeStorageFs,
    openSync(file, flags, mode) {
      const direct = typeof flags === 'number' && (flags & fs.constants.O_DIRECT) !== 0;
      if (direct && refuseDirect) throw Object.assign(new Error('EINVAL: invalid argument, open'), { code: 'EINVAL' });
      const fd = nodeStorageFs.openSync(file, flags, mode);
      if (direct) directFds.add(fd);
      return fd;
    },
    closeSync(fd) {
      directFds.delete(fd);
      nodeStorageFs.closeSync(fd);
    },
    writeSync(fd, buffer, offset, length, position) {
      writes.push({ fd, position, length, direct: directFds.has(fd) });
      return nodeStorageFs.writeSync(fd, buffer, offset, length, position);
    },
  };
  return { fs: recording, writes, directFds };
}

describe.skipIf(!directIoSupported())('MappedFile direct writes (O_DIRECT)', () => {
  it('writes ranges from minBytes on in whole blocks from an aligned cache, with zeros past the end on disk and the cache past the end untouched', () => {
    const { fs: recording, writes, directFds } = recordingFs();
    const pool = new PageCachePool(SIZE, 1, { fs: recording, io: { probeDir: dir, minBytes: 3000 } });
    // A recycled buffer full of stale bytes: none of them may reach the disk past the data's end.
    const stale = MappedFile.create(recording, dir, 0, SIZE, pool);
    stale.bytes().fill('z'.charCodeAt(0));
    stale.release();
    const file = MappedFile.create(recording, dir, SIZE, SIZE, pool);
    expect(pool.directAligned(file.bytes())).toBe(true);
    let expected = '';
    // Sizes that start and end anywhere in a block: small ones go through the page cache, large ones direct.
    for (const size of [100, 5000, 7, 3000, 9000, 1, 12_345]) {
      const text = String.fromCharCode(97 + (size % 26)).repeat(size);
      append(file, text);
      expected += text;
      const before = writes.length;
      file.flush();
      const direct = writes.slice(before).filter((call) => call.direct);
      if (size >= 3000) {
        expect(direct.length).toBeGreaterThan(0);
        for (const call of direct) {
          expect(call.position % DIRECT_IO_BLOCK_BYTES).toBe(0);
          expect(call.length % DIRECT_IO_BLOCK_BYTES).toBe(0);
        }
      } else {
        expect(direct).toEqual([]);
      }
      const onDisk = fs.readFileSync(file.path);
      expect(onDisk.subarray(0, expected.length).toString()).toBe(expected);
      expect(onDisk.subarray(expected.length).every((b) => b === 0)).toBe(true);
      // The cache past the end is not the writer's: a send thread may be filling a reservation there.
      const cacheTail = file.bytes().subarray(expected.length, Math.ceil(expected.length / DIRECT_IO_BLOCK_BYTES) * DIRECT_IO_BLOCK_BYTES + 100);
      expect(cacheTail.every((b) => b === 'z'.charCodeAt(0))).toBe(true);
    }
    // Reads below the cache go to the file through the page cache and see the direct writes.
    file.release();
    expect(Buffer.from(file.read(100, 5000)).toString()).toBe(expected.slice(100, 5100));
    file.close();
  });

  it('falls back to buffered writes for good when O_DIRECT is refused', () => {
    const { fs: refusing, writes, directFds } = recordingFs(true);
    const pool = new PageCachePool(SIZE, 1, { fs: refusing, io: { probeDir: dir, minBytes: 1 } });
    const file = MappedFile.create(refusing, dir, 0, SIZE, pool);
    expect(pool.directAligned(file.bytes())).toBe(false);
    append(file, 'q'.repeat(20_000));
    file.flush();
    expect(directFds.size).toBe(0);
    expect(writes.at(-1)).toMatchObject({ position: 0, length: 20_000 });
    expect(fs.readFileSync(file.path).subarray(0, 20_001).toString()).toBe(`${'q'.repeat(20_000)}\0`);
    file.close();
  });

  it('falls back when a direct write is refused with EINVAL, rewriting the range buffered', () => {
    const { fs: recording, writes, directFds } = recordingFs();
    let refuse = false;
    const refusing: StorageFs = {
      ...recording,
      writeSync(fd, buffer, offset, length, position) {
        if (refuse && directFds.has(fd)) throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
        return recording.writeSync(fd, buffer, offset, length, position);
      },
    };
    const pool = new PageCachePool(SIZE, 1, { fs: refusing, io: { probeDir: dir, minBytes: 1 } });
    const file = MappedFile.create(refusing, dir, 0, SIZE, pool);
    append(file, 'first ');
    file.flush();
    expect(writes.at(-1)).toMatchObject({ position: 0, length: DIRECT_IO_BLOCK_BYTES, direct: true });
    refuse = true;
    append(file, 'second');
    file.flush();
    expect(writes.at(-1)).toMatchObject({ position: 6, length: 6, direct: false });
    expect(fs.readFileSync(file.path).subarray(0, 13).toString()).toBe('first second\0');
    // For good: the next range goes buffered without trying O_DIRECT again.
    refuse = false;
    append(file, '!');
    file.flush();
    expect(writes.at(-1)).toMatchObject({ position: 12, length: 1, direct: false });
    file.close();
  });
});

function captureError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

/** Write threads that run each write inline at `start` (deterministic), or fail it with `failWith`. */
function inlineWrites(failWith: () => WriteOutcome = () => null): AsyncWrites & { started: { fd: number; position: number; length: number }[]; held: Set<number> } {
  const outcomes = new Map<number, WriteOutcome>();
  const started: { fd: number; position: number; length: number }[] = [];
  const held = new Set<number>();
  let nextSlot = 0;
  return {
    started,
    held,
    start(fd, bytes, position) {
      if (outcomes.size >= 2) return null;
      const slot = nextSlot++;
      started.push({ fd, position, length: bytes.length });
      const outcome = failWith();
      if (outcome === null) nodeStorageFs.writeSync(fd, bytes, 0, bytes.length, position);
      outcomes.set(slot, outcome);
      return slot;
    },
    poll(slot) {
      if (held.has(slot)) return undefined;
      const outcome = outcomes.get(slot);
      outcomes.delete(slot);
      return outcome;
    },
    wait(slot) {
      held.delete(slot);
      return this.poll(slot)!;
    },
    signal: () => Promise.resolve(),
  };
}

describe.skipIf(!directIoSupported())('MappedFile writes on write threads', () => {
  /** A new file whose pool hands ranges of a block and more to `writes`. */
  const fileWriting = (writes: AsyncWrites): MappedFile =>
    MappedFile.create(nodeStorageFs, dir, 0, SIZE, new PageCachePool(SIZE, 1, { fs: nodeStorageFs, io: { probeDir: dir, minBytes: DIRECT_IO_BLOCK_BYTES, writes } }));
  const text = (size: number, seed: number): string => Array.from({ length: size }, (_, i) => String.fromCharCode(97 + ((seed + i) % 26))).join('');

  it('writes whole blocks on a write thread and counts them written only once reaped; the partial block waits for flush', () => {
    const threads = new WriteThreads(2);
    try {
      const pool = new PageCachePool(SIZE, 1, { fs: nodeStorageFs, io: { probeDir: dir, minBytes: 8192, writes: threads } });
      const file = MappedFile.create(nodeStorageFs, dir, 0, SIZE, pool);
      const data = text(20_000, 3);
      append(file, data);
      expect(file.startWrite(0, 1 << 20)).toBe(true);
      expect(file.writing).toBe(true);
      expect(file.flushedPosition).toBe(0);
      file.drain();
      expect(file.writing).toBe(false);
      // 20,000 bytes: four whole blocks written, the fifth (partial) one left dirty.
      expect(file.flushedPosition).toBe(4 * DIRECT_IO_BLOCK_BYTES);
      expect(file.takeWritten()).toBe(true);
      expect(file.takeWritten()).toBe(false);
      expect(fs.readFileSync(file.path).subarray(0, 4 * DIRECT_IO_BLOCK_BYTES).toString()).toBe(data.slice(0, 4 * DIRECT_IO_BLOCK_BYTES));
      // Below the minimum nothing starts; flush writes the rest inline.
      expect(file.startWrite(0, 1 << 20)).toBe(false);
      file.flush();
      expect(file.flushedPosition).toBe(20_000);
      const onDisk = fs.readFileSync(file.path);
      expect(onDisk.subarray(0, 20_000).toString()).toBe(data);
      expect(onDisk.subarray(20_000).every((b) => b === 0)).toBe(true);
      file.close();
    } finally {
      threads.close();
    }
  });

  it('keeps writes in order: a later write that ended first does not move flushedPosition past an earlier one', () => {
    const writes = inlineWrites();
    const file = fileWriting(writes);
    append(file, text(3 * DIRECT_IO_BLOCK_BYTES, 1));
    expect(file.startWrite(0, DIRECT_IO_BLOCK_BYTES)).toBe(true);
    expect(file.startWrite(0, DIRECT_IO_BLOCK_BYTES)).toBe(true);
    expect(writes.started.map((call) => call.position)).toEqual([0, DIRECT_IO_BLOCK_BYTES]);
    writes.held.add(0);
    expect(file.reap()).toBe(false);
    expect(file.flushedPosition).toBe(0);
    writes.held.delete(0);
    expect(file.reap()).toBe(true);
    expect(file.flushedPosition).toBe(2 * DIRECT_IO_BLOCK_BYTES);
    file.close();
  });

  it('waits for running writes before a release, a truncation or a close', () => {
    const writes = inlineWrites();
    const file = fileWriting(writes);
    append(file, text(2 * DIRECT_IO_BLOCK_BYTES, 2));
    expect(file.startWrite(0, 1 << 20)).toBe(true);
    writes.held.add(0);
    file.truncateTo(DIRECT_IO_BLOCK_BYTES);
    expect(file.writing).toBe(false);
    expect(file.flushedPosition).toBe(DIRECT_IO_BLOCK_BYTES);
    expect(fs.readFileSync(file.path).subarray(DIRECT_IO_BLOCK_BYTES).every((b) => b === 0)).toBe(true);
    append(file, text(2 * DIRECT_IO_BLOCK_BYTES, 5));
    expect(file.startWrite(0, 1 << 20)).toBe(true);
    writes.held.add(1);
    file.flush();
    expect(file.writing).toBe(false);
    file.release();
    expect(file.startWrite(0, 1 << 20)).toBe(false);
    file.close();
  });

  it('fails a store write that failed on its thread, counting none of it written, and flush writes it again', () => {
    let failures = 1;
    const writes = inlineWrites(() => (failures-- > 0 ? 'ENOSPC' : null));
    const file = fileWriting(writes);
    const data = text(3 * DIRECT_IO_BLOCK_BYTES, 7);
    append(file, data);
    expect(file.startWrite(0, 1 << 20)).toBe(true);
    let caught: unknown;
    try {
      file.reap();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(MappedFileError);
    expect((caught as MappedFileError).code).toBe('DISK_FULL');
    expect(file.flushedPosition).toBe(0);
    expect(file.takeWritten()).toBe(false);
    file.flush();
    expect(fs.readFileSync(file.path).subarray(0, data.length).toString()).toBe(data);
    file.close();
  });

  it('falls back to inline buffered writes when a thread reports EINVAL', () => {
    const writes = inlineWrites(() => 'EINVAL');
    const file = fileWriting(writes);
    const data = text(2 * DIRECT_IO_BLOCK_BYTES + 10, 9);
    append(file, data);
    expect(file.startWrite(0, 1 << 20)).toBe(true);
    expect(file.reap()).toBe(false);
    expect(file.startWrite(0, 1 << 20)).toBe(false);
    file.flush();
    expect(file.flushedPosition).toBe(data.length);
    expect(fs.readFileSync(file.path).subarray(0, data.length).toString()).toBe(data);
    expect(writes.started).toHaveLength(1);
    file.close();
  });
});
