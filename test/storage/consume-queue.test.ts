import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/runtime/assert.ts';
import {
  CQ_ENTRY_SIZE_BYTES,
  ConsumeQueue,
  ConsumeQueueError,
  ConsumeQueueStore,
  consumeQueueDir,
  readEntryAt,
  type ConsumeQueueOptions,
} from '../../src/storage/consume-queue.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { tagsCodeOf } from '../../src/storage/tag-hash.ts';

const ENTRIES_PER_FILE = 5;
const FILE_SIZE_BYTES = ENTRIES_PER_FILE * CQ_ENTRY_SIZE_BYTES;
const MESSAGE_SIZE_BYTES = 100;
const TAG_A = tagsCodeOf('TagA');
const TAG_B = tagsCodeOf('TagB');

let rootDir: string;

beforeEach(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cq-test-'));
});

afterEach(() => {
  fs.rmSync(rootDir, { recursive: true, force: true });
});

function openQueue(overrides: Partial<ConsumeQueueOptions> = {}): ConsumeQueue {
  return ConsumeQueue.open({ storageFs: nodeStorageFs, rootDir, topic: 'TopicTest', queueId: 3, fileSizeBytes: FILE_SIZE_BYTES, ...overrides });
}

/** Puts `count` entries from maxOffset; entry n points at CommitLog offset n*100 and alternates TagA/TagB. */
function putMessages(queue: ConsumeQueue, count: number): void {
  for (let i = 0; i < count; i++) {
    const offset = queue.maxOffset;
    expect(queue.putEntry(offset, offset * MESSAGE_SIZE_BYTES, MESSAGE_SIZE_BYTES, offset % 2 === 0 ? TAG_A : TAG_B)).toBe(true);
  }
}

function queueFiles(): string[] {
  const dir = consumeQueueDir(rootDir, 'TopicTest', 3);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

function filePath(name: string): string {
  return path.join(consumeQueueDir(rootDir, 'TopicTest', 3), name);
}

describe('ConsumeQueue', () => {
  it('asks touchAhead for the fresh cache pages past the next 64 KiB as entries go in, once each, and the entries stay as put', () => {
    const calls: { from: number; to: number; at: number }[] = [];
    const fileSizeBytes = CQ_ENTRY_SIZE_BYTES * 60_000; // 1.2 MB
    const queue = openQueue({ fileSizeBytes, touchAhead: (buffer, from, to) => {
      expect(buffer.byteLength).toBe(fileSizeBytes);
      calls.push({ from, to, at: queue.maxOffset * CQ_ENTRY_SIZE_BYTES });
    } });
    putMessages(queue, 60_000);
    // Contiguous requests from 64 KiB to the file's end, each ahead of the entry being put when asked.
    expect(calls[0]).toMatchObject({ from: 64 * 1024, to: 320 * 1024, at: 0 });
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.from).toBe(calls[i - 1]!.to);
    expect(calls.at(-1)!.to).toBe(fileSizeBytes);
    for (const call of calls) {
      expect(call.from).toBeGreaterThan(call.at);
      expect(call.to - call.from).toBeLessThanOrEqual(256 * 1024);
    }
    const entries = queue.readBatch(59_990, 10).entries;
    expect(entries.map((entry) => entry.commitLogOffset)).toEqual(Array.from({ length: 10 }, (_, k) => (59_990 + k) * MESSAGE_SIZE_BYTES));
  });

  it('puts and gets entries across file rolls, in files named by their 20-digit byte offset', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    expect(queue.minOffset).toBe(0);
    expect(queue.maxOffset).toBe(12);
    expect(queue.fileCount).toBe(3);
    for (let q = 0; q < 12; q++) {
      expect(queue.get(q)).toEqual({ queueOffset: q, commitLogOffset: q * 100, sizeBytes: 100, tagsCode: q % 2 === 0 ? TAG_A : TAG_B });
    }
    expect(queue.get(12)).toBeUndefined();
    expect(queue.get(-1)).toBeUndefined();
    expect(queueFiles()).toEqual([]); // nothing reaches disk before a flush
    expect(queue.flush()).toBe(12 * CQ_ENTRY_SIZE_BYTES);
    expect(queueFiles()).toEqual(['00000000000000000000', '00000000000000000100', '00000000000000000200']);
    for (const name of queueFiles()) expect(fs.statSync(filePath(name)).size).toBe(FILE_SIZE_BYTES);
    expect(queue.flush()).toBe(0);
  });

  it('writes the entry layout big-endian: commitLogOffset 8, size 4, tagsCode 8', () => {
    const queue = openQueue();
    queue.putEntry(0, 0x1_0000_0002, 300, -5);
    queue.flush();
    const bytes = fs.readFileSync(filePath('00000000000000000000'));
    expect(bytes.readBigInt64BE(0)).toBe(0x1_0000_0002n);
    expect(bytes.readInt32BE(8)).toBe(300);
    expect(bytes.readBigInt64BE(12)).toBe(-5n);
    expect(bytes.subarray(20).every((b) => b === 0)).toBe(true);
  });

  it('reads batches across files, bounded by maxEntries, and says where to go next', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    const batch = queue.readBatch(3, 4);
    expect(batch.status).toBe('FOUND');
    expect(batch.entries.map((e) => e.queueOffset)).toEqual([3, 4, 5, 6]);
    expect(batch.nextQueueOffset).toBe(7);
    const tail = queue.readBatch(10, 32);
    expect(tail.entries.map((e) => e.queueOffset)).toEqual([10, 11]);
    expect(tail.nextQueueOffset).toBe(12);
    expect(queue.readBatch(12, 32)).toEqual({ status: 'OFFSET_OVERFLOW_ONE', entries: [], nextQueueOffset: 12 });
    expect(queue.readBatch(40, 32)).toEqual({ status: 'OFFSET_OVERFLOW_BADLY', entries: [], nextQueueOffset: 12 });
    expect(openQueue({ queueId: 4 }).readBatch(0, 1).status).toBe('NO_MESSAGE_IN_QUEUE');
  });

  it('skips entries whose tag hash does not match but still advances past them', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    const onlyB = queue.readBatch(0, 3, (code) => code === TAG_B);
    expect(onlyB.entries.map((e) => e.queueOffset)).toEqual([1, 3, 5]);
    expect(onlyB.nextQueueOffset).toBe(6);
    const none = queue.readBatch(0, 3, () => false);
    expect(none).toEqual({ status: 'NO_MATCHED_MESSAGE', entries: [], nextQueueOffset: 12 });
  });

  it('examines at most scanEntriesMax entries per read, so a sparse tag cannot make one read unbounded', () => {
    const queue = openQueue({ scanEntriesMax: 4 });
    putMessages(queue, 12);
    const batch = queue.readBatch(0, 2, (code) => code === 12345);
    expect(batch).toEqual({ status: 'NO_MATCHED_MESSAGE', entries: [], nextQueueOffset: 4 });
  });

  it('keeps flushed entries across a reopen and loses unflushed ones (a crash drops the page cache)', () => {
    const queue = openQueue();
    putMessages(queue, 7);
    queue.flush();
    putMessages(queue, 4); // rolls into a third file that never reaches disk
    const reopened = openQueue();
    expect(reopened.minOffset).toBe(0);
    expect(reopened.maxOffset).toBe(7);
    expect(reopened.maxPhysicalOffset).toBe(700);
    expect(reopened.readBatch(0, 100).entries.map((e) => e.commitLogOffset)).toEqual([0, 100, 200, 300, 400, 500, 600]);
    putMessages(reopened, 2);
    expect(reopened.get(8)?.commitLogOffset).toBe(800);
  });

  it('ignores a zero tail on recovery and zeroes stale bytes after it on disk', () => {
    const queue = openQueue();
    putMessages(queue, 9);
    queue.flush();
    // Simulate pages reaching disk out of order: slot 6 never written, slot 7 and 8 written.
    const name = '00000000000000000100';
    const fd = fs.openSync(filePath(name), 'r+');
    fs.writeSync(fd, new Uint8Array(CQ_ENTRY_SIZE_BYTES), 0, CQ_ENTRY_SIZE_BYTES, (6 - ENTRIES_PER_FILE) * CQ_ENTRY_SIZE_BYTES);
    fs.closeSync(fd);
    const reopened = openQueue();
    expect(reopened.maxOffset).toBe(6);
    const bytes = fs.readFileSync(filePath(name));
    expect(bytes.subarray(CQ_ENTRY_SIZE_BYTES).every((b) => b === 0)).toBe(true);
    putMessages(reopened, 1);
    reopened.flush();
    expect(openQueue().maxOffset).toBe(7); // the stale slots 7 and 8 did not come back
  });

  it('ignores a torn entry (size field zero) and drops the files after it', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    queue.flush();
    const fd = fs.openSync(filePath('00000000000000000000'), 'r+');
    fs.writeSync(fd, new Uint8Array(4), 0, 4, 3 * CQ_ENTRY_SIZE_BYTES + 8);
    fs.closeSync(fd);
    const reopened = openQueue();
    expect(reopened.maxOffset).toBe(3);
    expect(queueFiles()).toEqual(['00000000000000000000']);
  });

  it('with a trusted CommitLog offset, scans only from the newest file whose entries start below it', () => {
    const queue = openQueue();
    putMessages(queue, 12); // files at entries 0, 5, 10; entry n points at CommitLog offset n * 100
    queue.flush();
    // A torn entry in the first file: the third-to-last rule scans that file and ends the queue there...
    const fd = fs.openSync(filePath('00000000000000000000'), 'r+');
    fs.writeSync(fd, new Uint8Array(4), 0, 4, 3 * CQ_ENTRY_SIZE_BYTES + 8);
    fs.closeSync(fd);
    // ...while entries below the trusted offset were durable when the checkpoint was written: the scan
    // starts at the file holding entry 5 (offset 500 < 700), so the first file is not read.
    const trusting = openQueue({ trustedCommitLogOffset: 700 });
    expect(trusting.maxOffset).toBe(12);
    expect(trusting.get(11)?.commitLogOffset).toBe(1100);
    trusting.close();
    expect(openQueue().maxOffset).toBe(3);
  });

  it('ends the queue at garbage bytes instead of failing (an offset beyond 2^53 cannot be held)', () => {
    const queue = openQueue();
    putMessages(queue, 4);
    queue.flush();
    const fd = fs.openSync(filePath('00000000000000000000'), 'r+');
    fs.writeSync(fd, new Uint8Array(8).fill(0x7f), 0, 8, 2 * CQ_ENTRY_SIZE_BYTES);
    fs.closeSync(fd);
    const reopened = openQueue();
    expect(reopened.maxOffset).toBe(2);
    expect(reopened.maxPhysicalOffset).toBe(200);
  });

  it('treats an entry at CommitLog offset 0 as valid (only size 0 marks an empty slot)', () => {
    const queue = openQueue();
    queue.putEntry(0, 0, 50, 0);
    queue.putEntry(1, 50, 50, 0);
    queue.flush();
    expect(openQueue().maxOffset).toBe(2);
  });

  it('starts a queue at a later offset behind pre-blank entries and recovers minOffset past them', () => {
    const queue = openQueue();
    expect(queue.putEntry(7, 5000, 10, TAG_A)).toBe(true);
    expect(queue.minOffset).toBe(7);
    expect(queue.maxOffset).toBe(8);
    expect(queue.get(6)).toBeUndefined();
    expect(queue.readBatch(2, 4)).toEqual({ status: 'OFFSET_TOO_SMALL', entries: [], nextQueueOffset: 7 });
    queue.flush();
    expect(queueFiles()).toEqual(['00000000000000000100']);
    const bytes = fs.readFileSync(filePath('00000000000000000100'));
    expect(bytes.readBigInt64BE(20)).toBe(0n); // slot 6: pre-blank (0, Integer.MAX_VALUE, 0)
    expect(bytes.readInt32BE(28)).toBe(0x7fff_ffff);
    const reopened = openQueue();
    expect([reopened.minOffset, reopened.maxOffset]).toEqual([7, 8]);
  });

  it('tolerates replaying an identical entry and refuses a different one or a gap', () => {
    const queue = openQueue();
    putMessages(queue, 3);
    expect(queue.putEntry(1, 100, 100, TAG_B)).toBe(false);
    expect(queue.maxOffset).toBe(3);
    expect(() => queue.putEntry(1, 100, 101, TAG_B)).toThrow(AssertionError);
    expect(() => queue.putEntry(5, 500, 100, TAG_B)).toThrow(AssertionError);
    expect(() => queue.putEntry(3, 250, 100, TAG_B)).toThrow(AssertionError); // overlaps the last message
  });

  it('truncates entries past the recovered CommitLog end, durably, deleting whole files', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    queue.flush();
    // Entries start at 0, 100, ..., 1100; a CommitLog that ends at 450 keeps 0..400 (5 entries).
    expect(queue.truncateByCommitLogOffset(450)).toBe(5);
    expect(queue.maxOffset).toBe(5);
    expect(queue.maxPhysicalOffset).toBe(500);
    expect(queue.get(5)).toBeUndefined();
    expect(queueFiles()).toEqual(['00000000000000000000', '00000000000000000100']);
    const reopened = openQueue();
    expect(reopened.maxOffset).toBe(5);
    putMessages(reopened, 1);
    expect(reopened.get(5)?.commitLogOffset).toBe(500);
    expect(reopened.truncateByCommitLogOffset(10_000)).toBe(6); // nothing past the end: no-op
    reopened.truncateTo(2);
    expect(openQueue().maxOffset).toBe(2);
  });

  it('deletes old files for retention and moves minOffset to the first entry still in the CommitLog', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    queue.flush();
    // The CommitLog now starts at 720: entries 0..7 point below it.
    expect(queue.deleteFilesBefore(720)).toBe(1);
    expect(queueFiles()).toEqual(['00000000000000000100', '00000000000000000200']);
    expect(queue.minOffset).toBe(8);
    expect(queue.get(7)).toBeUndefined();
    expect(queue.readBatch(0, 10)).toEqual({ status: 'OFFSET_TOO_SMALL', entries: [], nextQueueOffset: 8 });
    expect(queue.readBatch(8, 10).entries.map((e) => e.queueOffset)).toEqual([8, 9, 10, 11]);
    // Past every entry: the last file stays, the queue is empty but keeps its offsets.
    expect(queue.deleteFilesBefore(5000)).toBe(1);
    expect(queueFiles()).toEqual(['00000000000000000200']);
    expect([queue.minOffset, queue.maxOffset]).toEqual([12, 12]);
    // Recovery forgets the in-memory min; the caller applies retention again with the CommitLog min.
    const reopened = openQueue();
    expect(reopened.minOffset).toBe(10);
    reopened.deleteFilesBefore(5000);
    expect([reopened.minOffset, reopened.maxOffset]).toEqual([12, 12]);
  });

  it('refuses files of the wrong size, or a gap between files, with stable codes', () => {
    const queue = openQueue();
    putMessages(queue, 12);
    queue.flush();
    try {
      openQueue({ fileSizeBytes: 200 });
      expect.unreachable('a size mismatch must be refused');
    } catch (error) {
      expect(error).toBeInstanceOf(ConsumeQueueError);
      expect((error as ConsumeQueueError).code).toBe('CONSUME_QUEUE_FILE_SIZE_MISMATCH');
    }
    fs.unlinkSync(filePath('00000000000000000100'));
    expect(() => openQueue()).toThrow(expect.objectContaining({ code: 'CONSUME_QUEUE_FILE_LAYOUT_INVALID' }));
    fs.writeFileSync(filePath('00000000000000000100'), '');
    // A zero-length file is a crash between creating and sizing it: deleted, and recovery stops before it.
    fs.unlinkSync(filePath('00000000000000000200'));
    expect(openQueue().maxOffset).toBe(5);
    expect(queueFiles()).toEqual(['00000000000000000000']);
  });

  it('lets another thread read entries from the shared page cache after the published maxOffset', async () => {
    const queue = openQueue();
    putMessages(queue, 3);
    const shared = queue.segmentBuffer(0)!;
    expect(readEntryAt(new Uint8Array(shared.buffer), 2 * CQ_ENTRY_SIZE_BYTES, 2).commitLogOffset).toBe(200);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const max = Number(Atomics.load(new BigInt64Array(workerData.state), 1));
      const view = new DataView(workerData.buffer);
      const offsets = [];
      for (let q = 0; q < max; q++) offsets.push(view.getUint32(q * 20 + 4) + view.getInt32(q * 20) * 2 ** 32);
      parentPort.postMessage(offsets);`;
    const worker = new Worker(code, { eval: true, workerData: { state: queue.sharedState, buffer: shared.buffer } });
    const offsets = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(offsets).toEqual([0, 100, 200]);
  });
});

describe('ConsumeQueueStore', () => {
  function openStore(queuesMax = 4): ConsumeQueueStore {
    return ConsumeQueueStore.open({ storageFs: nodeStorageFs, rootDir, queuesMax, fileSizeBytes: FILE_SIZE_BYTES });
  }

  it('opens queues lazily, bounded in number, with a stable code at the bound', () => {
    const store = openStore(2);
    expect(store.get('TopicA', 0)).toBeUndefined();
    const a0 = store.findOrCreate('TopicA', 0);
    expect(store.findOrCreate('TopicA', 0)).toBe(a0);
    store.findOrCreate('TopicB', 1);
    expect(store.size).toBe(2);
    expect(() => store.findOrCreate('TopicC', 0)).toThrow(expect.objectContaining({ code: 'CONSUME_QUEUE_LIMIT_REACHED' }));
  });

  it('recovers every queue found on disk, then flushes and truncates them together', () => {
    const store = openStore();
    const a = store.findOrCreate('TopicA', 0);
    const b = store.findOrCreate('TopicB', 7);
    let physical = 0;
    for (let i = 0; i < 6; i++) {
      const queue = i % 2 === 0 ? a : b;
      queue.putEntry(queue.maxOffset, physical, 100, 0);
      physical += 100;
    }
    expect(store.maxPhysicalOffset()).toBe(600);
    expect(store.flushAll()).toBe(6 * CQ_ENTRY_SIZE_BYTES);
    fs.writeFileSync(path.join(rootDir, 'consumequeue', 'stray-file'), 'x');
    const reopened = openStore();
    expect(reopened.size).toBe(2);
    expect(reopened.get('TopicA', 0)?.maxOffset).toBe(3);
    expect(reopened.get('TopicB', 7)?.maxOffset).toBe(3);
    reopened.truncateAll(250); // keeps messages at 0, 100 (A) and 100... B holds 100, 300, 500
    expect(reopened.get('TopicA', 0)?.maxOffset).toBe(2);
    expect(reopened.get('TopicB', 7)?.maxOffset).toBe(1);
    expect(reopened.maxPhysicalOffset()).toBe(300);
    reopened.close();
  });
});
