/**
 * Example tests of the POP engine's journal: the record codec, state across clean restarts and
 * crashes, torn tails, corrupt journals, compaction, and when it fsyncs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Lease, PopEngine, type PopEngineOptions, type PopRequest } from '../../src/storage/pop-engine.ts';
import {
  POP_JOURNAL_DIR_NAME,
  POP_JOURNAL_FILE_NAME,
  POP_JOURNAL_HEADER_BYTES,
  POP_JOURNAL_TEMP_SUFFIX,
  PopJournal,
  PopJournalError,
  type PopJournalRecord,
  decodePopRecord,
  encodePopRecord,
  popRecordBytes,
} from '../../src/storage/pop-journal.ts';
import { type StorageFs, nodeStorageFs } from '../../src/storage/storage-fs.ts';

const T0 = 1_700_000_000_000;
const INVISIBLE = 30_000;

let rootDir: string;
beforeEach(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop-journal-'));
});
afterEach(() => {
  fs.rmSync(rootDir, { recursive: true, force: true });
});

const journalPath = () => path.join(rootDir, POP_JOURNAL_DIR_NAME, POP_JOURNAL_FILE_NAME);

function open(options: Partial<PopEngineOptions> = {}, storageFs: StorageFs = nodeStorageFs): PopEngine {
  return PopEngine.open({ brokerName: 'broker-a', journal: { fs: storageFs, rootDir }, ...options });
}

function request(length: number, overrides: Partial<PopRequest> = {}): PopRequest {
  return {
    group: 'G',
    topic: 'T',
    queueIds: [0],
    maxMessages: 32,
    invisibleMs: INVISIBLE,
    nowMs: T0,
    fifo: false,
    maxAttempts: 16,
    queueMaxOffset: () => length,
    startOffset: () => 0,
    ...overrides,
  };
}

const ack = (pop: PopEngine, lease: Lease, nowMs = T0) => pop.ack({ group: 'G', topic: 'T', receiptHandle: lease.receiptHandle, nowMs });

describe('record codec', () => {
  const records: PopJournalRecord[] = [
    { type: 'EPOCH', epoch: 7 },
    { type: 'KEY', keyId: 3, group: 'GID_émoji_✓', topic: 'TopicA' },
    { type: 'OFFSET', keyId: 3, queueId: 65_535, popOffset: 2 ** 53 - 1 },
    { type: 'POP', keyId: 3, queueId: 1, queueOffset: 42, attempt: 1, epoch: 7, seq: 9, deadlineMs: T0, fifo: true },
    { type: 'CHANGE', keyId: 3, queueId: 1, queueOffset: 42, attempt: 1, epoch: 7, seq: 10, deadlineMs: T0 + 5, fifo: false },
    { type: 'DLQ', keyId: 3, queueId: 1, queueOffset: 42, attempt: 17, epoch: 7, seq: 11, deadlineMs: T0 + 6, fifo: false },
    { type: 'ACK', keyId: 3, queueId: 1, queueOffset: 42, epoch: 7, seq: 11 },
    { type: 'SKIP', keyId: 3, queueId: 0, queueOffset: 0, epoch: 1, seq: 1 },
    { type: 'DROP', keyId: 3 },
  ];

  it('decodes what it encodes, at the size it announces', () => {
    const bytes = Buffer.alloc(4096);
    let at = 0;
    for (const record of records) at += encodePopRecord(record, bytes, at);
    expect(at).toBe(records.reduce((sum, record) => sum + popRecordBytes(record), 0));
    const back: PopJournalRecord[] = [];
    for (let p = 0; ; ) {
      const read = decodePopRecord(bytes, p, at);
      if (read.kind === 'end') break;
      back.push(read.record);
      p += read.size;
    }
    expect(back).toEqual(records);
  });

  it('ends the journal at a torn or flipped record, and refuses an unknown type that passes its CRC', () => {
    const bytes = Buffer.alloc(256);
    const size = encodePopRecord(records[3]!, bytes, 0);
    expect(decodePopRecord(bytes, 0, size - 1)).toMatchObject({ kind: 'end', why: 'record runs past the end of the file' });
    expect(decodePopRecord(bytes, 0, 5)).toMatchObject({ kind: 'end', why: 'short record header' });
    const flipped = Buffer.from(bytes);
    flipped[20] = flipped[20]! ^ 0x40;
    expect(decodePopRecord(flipped, 0, size)).toMatchObject({ kind: 'end', why: 'record CRC mismatch' });
    expect(decodePopRecord(Buffer.alloc(64), 0, 64)).toMatchObject({ kind: 'end' });
  });
});

describe('restart', () => {
  it('restores offsets, leases, attempts and handles after a clean close', () => {
    let pop = open();
    const leases = pop.pop(request(5)).leases;
    expect(ack(pop, leases[1]!).ok).toBe(true);
    const changed = pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: leases[2]!.receiptHandle, nowMs: T0, invisibleMs: 90_000 });
    expect(pop.skip(leases[3]!).ok).toBe(true);
    const before = pop.inspect();
    pop.close();

    pop = open();
    expect(pop.inspect()).toEqual(before);
    expect(pop.recovery.epoch).toBe(2);
    expect(ack(pop, leases[1]!)).toMatchObject({ ok: false, reason: 'NOT_IN_FLIGHT' });
    expect(ack(pop, leases[2]!)).toMatchObject({ ok: false, reason: 'STALE' });
    expect(changed.ok && ack(pop, changed.lease)).toEqual({ ok: true });
    expect(ack(pop, leases[0]!)).toEqual({ ok: true });
    expect(pop.committedOffset('G', 'T', 0)).toBe(4);
    pop.close();
  });

  it('after kill -9 keeps what was synced (acks included) and nothing after', () => {
    let pop = open();
    const [a, b, c] = pop.pop(request(3)).leases as [Lease, Lease, Lease];
    expect(ack(pop, a).ok).toBe(true);
    pop.sync();
    expect(ack(pop, b).ok).toBe(true); // answered, but the caller crashed before its sync
    pop.abandon();

    pop = open();
    expect(ack(pop, a)).toMatchObject({ ok: false, reason: 'NOT_IN_FLIGHT' });
    expect(ack(pop, b, T0 + 1)).toEqual({ ok: true });
    expect(ack(pop, c, T0 + 1)).toEqual({ ok: true });
    pop.close();
  });

  it('delivers again a message whose POP record was lost, and refuses the lost handle', () => {
    let pop = open();
    pop.pop(request(0)); // the queue's state (its OFFSET record) is synced, the POP below is not
    pop.sync();
    const [lost] = pop.pop(request(1)).leases as [Lease];
    pop.abandon();

    pop = open();
    const [again] = pop.pop(request(1)).leases as [Lease];
    expect(again).toMatchObject({ queueOffset: 0, attempt: 1 });
    expect(again.receiptHandle).not.toBe(lost.receiptHandle);
    expect(ack(pop, lost)).toMatchObject({ ok: false, code: 'INVALID_RECEIPT_HANDLE' });
    expect(ack(pop, again)).toEqual({ ok: true });
    pop.close();
  });
});

describe('forget', () => {
  it('drops a group\'s state for good, across a restart and a compaction', () => {
    let pop = open();
    const [lease] = pop.pop(request(3)).leases as [Lease];
    pop.pop(request(3, { group: 'Other' }));
    expect(pop.forget('G', 'T')).toBe(true);
    expect(pop.forget('G', 'T')).toBe(false);
    pop.close();
    pop = open({ journal: { fs: nodeStorageFs, rootDir, compactBytesMin: 1 } });
    expect(pop.committedOffset('G', 'T', 0)).toBe(-1);
    expect(pop.inflightCount).toBe(3);
    expect(ack(pop, lease)).toMatchObject({ ok: false, reason: 'NOT_IN_FLIGHT' });
    expect(pop.pop(request(3, { startOffset: () => 2 })).leases).toMatchObject([{ queueOffset: 2, attempt: 1 }]);
    pop.sync(); // compacts
    pop.close();
    pop = open();
    expect(pop.inspect().map((view) => [view.group, view.popOffset, view.leases.length])).toEqual([
      ['Other', 3, 3],
      ['G', 3, 1],
    ]);
    pop.close();
  });
});

describe('torn tail and corruption', () => {
  it('cuts a torn record off the tail and goes on appending after the valid prefix', () => {
    let pop = open();
    const [a] = pop.pop(request(2, { maxMessages: 1 })).leases as [Lease];
    pop.sync();
    const [b] = pop.pop(request(2, { maxMessages: 1 })).leases as [Lease];
    const unwritten = pop.journalFile!.unwrittenBytes().length;
    expect(unwritten).toBeGreaterThan(10);
    pop.abandon(unwritten - 7); // the last record is cut short
    const sizeBefore = fs.statSync(journalPath()).size;

    pop = open();
    const recovery = pop.recovery.journal!;
    expect(recovery.truncatedBytes).toBe(unwritten - 7);
    expect(recovery.endReason).toBe('record runs past the end of the file');
    expect(fs.statSync(journalPath()).size).toBe(sizeBefore - recovery.truncatedBytes + popRecordBytes({ type: 'EPOCH', epoch: 2 }));
    expect(ack(pop, a)).toEqual({ ok: true });
    expect(ack(pop, b)).toMatchObject({ ok: false });
    pop.close();
    pop = open();
    expect(pop.recovery.journal!.truncatedBytes).toBe(0);
    expect(pop.committedOffset('G', 'T', 0)).toBe(1);
    pop.close();
  });

  it('cuts garbage after the last record', () => {
    let pop = open();
    pop.pop(request(2));
    pop.close();
    const garbage = Buffer.from('\x00\x00\x00\x30garbage that is not a record', 'latin1');
    fs.appendFileSync(journalPath(), garbage);
    pop = open();
    expect(pop.recovery.journal!.truncatedBytes).toBe(garbage.length);
    expect(pop.inspect()[0]!.leases).toHaveLength(2);
    pop.close();
  });

  it('refuses to start on a file that is not a POP journal', () => {
    fs.mkdirSync(path.dirname(journalPath()), { recursive: true });
    fs.writeFileSync(journalPath(), 'this is not a journal at all');
    expect(() => open()).toThrow(PopJournalError);
    try {
      open();
    } catch (error) {
      expect((error as PopJournalError).code).toBe('POP_JOURNAL_CORRUPT');
    }
  });

  it('refuses a record that passes its CRC but does not follow from the history (an ack of nothing)', () => {
    open().close();
    const bytes = Buffer.alloc(64);
    const size = encodePopRecord({ type: 'ACK', keyId: 1, queueId: 0, queueOffset: 0, epoch: 1, seq: 1 }, bytes, 0);
    fs.appendFileSync(journalPath(), bytes.subarray(0, size));
    expect(() => open()).toThrow(expect.objectContaining({ code: 'POP_JOURNAL_CORRUPT' }));
  });
});

describe('compaction', () => {
  it('keeps the journal bounded and the state identical across a restart', () => {
    let pop = open({ journal: { fs: nodeStorageFs, rootDir, compactBytesMin: 4096 } });
    let now = T0;
    const kept: Lease[] = [];
    for (let round = 0; round < 200; round++) {
      const leases = pop.pop(request(100_000, { maxMessages: 8, nowMs: now })).leases;
      kept.push(leases[0]!);
      for (const lease of leases.slice(1)) expect(ack(pop, lease, now).ok).toBe(true);
      pop.changeInvisible({ group: 'G', topic: 'T', receiptHandle: kept.at(-1)!.receiptHandle, nowMs: now, invisibleMs: 1_000_000 });
      pop.sync();
      expect(fs.statSync(journalPath()).size).toBeLessThan(3 * 4096 + 200 * 60);
      now += 10;
    }
    const before = pop.inspect();
    expect(before[0]!.leases).toHaveLength(200);
    pop.close();
    expect(fs.existsSync(journalPath() + POP_JOURNAL_TEMP_SUFFIX)).toBe(false);

    pop = open({ journal: { fs: nodeStorageFs, rootDir, compactBytesMin: 4096 } });
    expect(pop.inspect()).toEqual(before);
    expect(pop.committedOffset('G', 'T', 0)).toBe(0);
    pop.close();
  });

  it('deletes an interrupted compaction left behind', () => {
    open().close();
    fs.writeFileSync(journalPath() + POP_JOURNAL_TEMP_SUFFIX, 'half a compaction');
    const pop = open();
    expect(fs.existsSync(journalPath() + POP_JOURNAL_TEMP_SUFFIX)).toBe(false);
    pop.close();
  });
});

describe('syncing', () => {
  it('writes and fdatasyncs once per sync with changes (group commit), not per call', () => {
    const counts = { writes: 0, syncs: 0 };
    const counting: StorageFs = {
      ...nodeStorageFs,
      writeSync: (...args) => {
        counts.writes++;
        return nodeStorageFs.writeSync(...args);
      },
      fdatasyncSync: (fd) => {
        counts.syncs++;
        nodeStorageFs.fdatasyncSync(fd);
      },
    };
    const pop = open({}, counting);
    const opened = { ...counts };
    const leases = pop.pop(request(20)).leases;
    for (const lease of leases) ack(pop, lease);
    expect(counts).toEqual(opened);
    pop.sync();
    expect(counts).toEqual({ writes: opened.writes + 1, syncs: opened.syncs + 1 });
    pop.sync();
    expect(counts.syncs).toBe(opened.syncs + 1);
    pop.close();
  });

  it('starts a journal with just its header, created atomically', () => {
    const journal = PopJournal.open({ fs: nodeStorageFs, rootDir }, () => {
      throw new Error('a new journal has no records');
    });
    expect(journal.sizeBytes).toBe(POP_JOURNAL_HEADER_BYTES);
    journal.close();
  });
});
