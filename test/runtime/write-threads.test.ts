import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WriteThreads } from '../../src/runtime/write-threads.ts';

const dirs: string[] = [];
const threadsToClose: WriteThreads[] = [];

afterEach(() => {
  for (const threads of threadsToClose.splice(0)) threads.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'write-threads-'));
  dirs.push(dir);
  return dir;
}

function start(count: number): WriteThreads {
  const threads = new WriteThreads(count);
  threadsToClose.push(threads);
  return threads;
}

function sharedBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(new SharedArrayBuffer(length + 16), 16, length);
  for (let i = 0; i < length; i++) bytes[i] = (seed + i * 31) & 0xff;
  return bytes;
}

describe('WriteThreads', () => {
  it('writes a view of a shared buffer at its file position on another thread', async () => {
    const file = path.join(tempDir(), 'data');
    const fd = fs.openSync(file, 'w+');
    const threads = start(2);
    const first = sharedBytes(100_000, 1);
    const second = sharedBytes(50_000, 7);
    const a = threads.start(fd, first, 0);
    const b = threads.start(fd, second, 100_000);
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    expect(threads.inFlight).toBe(2);
    expect(threads.wait(a!)).toBeNull();
    expect(threads.wait(b!)).toBeNull();
    expect(threads.inFlight).toBe(0);
    fs.closeSync(fd);
    const written = fs.readFileSync(file);
    expect(written.length).toBe(150_000);
    expect(Buffer.compare(written.subarray(0, 100_000), Buffer.from(first))).toBe(0);
    expect(Buffer.compare(written.subarray(100_000), Buffer.from(second))).toBe(0);
  });

  it('reports a failed write by its errno and keeps serving', () => {
    const threads = start(1);
    // Writing to a descriptor opened read-only fails with EBADF.
    const readOnlyPath = path.join(tempDir(), 'read-only');
    fs.writeFileSync(readOnlyPath, '');
    const readOnly = fs.openSync(readOnlyPath, 'r');
    const slot = threads.start(readOnly, sharedBytes(4096, 3), 0);
    expect(threads.wait(slot!)).toBe('EBADF');
    fs.closeSync(readOnly);
    const file = path.join(tempDir(), 'after');
    const fd = fs.openSync(file, 'w+');
    expect(threads.wait(threads.start(fd, sharedBytes(10, 5), 0)!)).toBeNull();
    fs.closeSync(fd);
    expect(fs.readFileSync(file).length).toBe(10);
  });

  it('refuses a write while every slot is busy, and signals when one ends', async () => {
    const file = path.join(tempDir(), 'data');
    const fd = fs.openSync(file, 'w+');
    const threads = start(2);
    const signal = threads.signal();
    const a = threads.start(fd, sharedBytes(1 << 20, 1), 0);
    const b = threads.start(fd, sharedBytes(1 << 20, 2), 1 << 20);
    // A slot stays busy until its outcome is taken, however fast the thread is.
    expect(threads.start(fd, sharedBytes(16, 3), 0)).toBeNull();
    await signal;
    expect(threads.wait(a!)).toBeNull();
    const c = threads.start(fd, sharedBytes(16, 3), 2 << 20);
    expect(c).toBe(a);
    expect(threads.wait(b!)).toBeNull();
    expect(threads.wait(c!)).toBeNull();
    fs.closeSync(fd);
    expect(fs.statSync(file).size).toBe((2 << 20) + 16);
  });

  it('checks its arguments', () => {
    expect(() => new WriteThreads(0)).toThrow(/write thread count/);
    const threads = start(1);
    expect(() => threads.start(1, new Uint8Array(8), 0)).toThrow(/SharedArrayBuffer/);
    expect(() => threads.poll(0)).toThrow(/has no write/);
  });
});
