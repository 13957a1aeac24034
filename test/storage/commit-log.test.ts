import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AppendInput,
  type AppendResult,
  CommitLog,
  CommitLogError,
  type CommitLogOptions,
  QueueOffsetTable,
  type RecoveryOptions,
} from '../../src/storage/commit-log.ts';
import { MappedFileError, fileNameOf } from '../../src/storage/mapped-file.ts';
import {
  BLANK_MAGIC_CODE,
  MessageSysFlag,
  type RecordInput,
  decodeRecord,
  encodeMessageProperties,
  encodeRecord,
  offsetMessageId,
  recordSize,
} from '../../src/storage/message-record.ts';
import { type StorageFs, nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { WriteThreads } from '../../src/runtime/write-threads.ts';

const FILE_SIZE = 64 * 1024;
const STORE_HOST = { address: '10.0.0.5', port: 10911 };
let dir: string;
let nowMs = 1_700_000_000_000;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'commit-log-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function options(overrides: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return {
    dir: path.join(dir, 'commitlog'),
    storeHost: STORE_HOST,
    fs: nodeStorageFs,
    mappedFileSizeBytes: FILE_SIZE,
    maxMessageSizeBytes: 16 * 1024,
    clock: { nowMs: () => nowMs++ },
    ...overrides,
  };
}

function open(recovery: RecoveryOptions = { cleanShutdown: true }, overrides: Partial<CommitLogOptions> = {}) {
  return CommitLog.open(options(overrides), recovery);
}

type Sent = { readonly input: AppendInput; readonly result: AppendResult };

function message(table: QueueOffsetTable, topic: string, queueId: number, body: Uint8Array, sysFlag = 0): AppendInput {
  const transaction = sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
  const outsideQueue = transaction === MessageSysFlag.TRANSACTION_PREPARED_TYPE;
  return {
    topic,
    queueId,
    flag: 0,
    queueOffset: outsideQueue ? 0 : table.assign(topic, queueId),
    sysFlag,
    bornTimestampMs: nowMs,
    bornHost: { address: '192.168.0.9', port: 40000 },
    reconsumeTimes: 0,
    preparedTransactionOffset: 0,
    body,
    properties: encodeMessageProperties({ TAGS: 'TagA', KEYS: `key-${queueId}` }),
  };
}

function body(index: number, sizeBytes = 900): Uint8Array {
  const bytes = Buffer.alloc(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) bytes[i] = (index * 31 + i * 7) & 0xff;
  bytes.writeUInt32BE(index, 0);
  return bytes;
}

function appendMany(log: CommitLog, table: QueueOffsetTable, count: number, first = 0): Sent[] {
  const sent: Sent[] = [];
  for (let i = first; i < first + count; i++) {
    const input = message(table, i % 2 === 0 ? 'TopicA' : 'TopicB', i % 3, body(i, 600 + ((i * 97) % 900)));
    sent.push({ input, result: log.append(input) });
  }
  return sent;
}

function expectSameRecord(log: CommitLog, sent: Sent): void {
  const view = log.readRecordAt(sent.result.physicalOffset);
  expect(view.totalSize).toBe(sent.result.size);
  expect(view.topic).toBe(sent.input.topic);
  expect(view.queueId).toBe(sent.input.queueId);
  expect(view.queueOffset).toBe(sent.input.queueOffset);
  expect(view.storeTimestampMs).toBe(sent.result.storeTimestampMs);
  expect(Buffer.from(view.body).equals(Buffer.from(sent.input.body))).toBe(true);
}

function captureError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

function filePath(startOffset: number): string {
  return path.join(dir, 'commitlog', fileNameOf(startOffset));
}

describe('CommitLog append and read', () => {
  it('round-trips records across file rolls, closing each file with a blank marker', () => {
    const { commitLog: log } = open();
    const table = new QueueOffsetTable();
    const sent = appendMany(log, table, 200);
    expect(log.mappedFiles().length).toBeGreaterThanOrEqual(3);
    for (const item of sent) expectSameRecord(log, item);
    // Records never cross a file end, and each left file ends with a blank marker up to its end.
    for (const file of log.mappedFiles().slice(0, -1)) {
      const inFile = sent.filter((s) => s.result.physicalOffset >= file.startOffset && s.result.physicalOffset < file.endOffset);
      const last = inFile.at(-1)!;
      const blankAt = last.result.physicalOffset + last.result.size;
      expect(blankAt).toBeLessThanOrEqual(file.endOffset - 8);
      const marker = Buffer.from(log.read(blankAt, 8));
      expect(marker.readInt32BE(0)).toBe(file.endOffset - blankAt);
      expect(marker.readInt32BE(4)).toBe(BLANK_MAGIC_CODE);
      const next = sent[sent.indexOf(last) + 1]!;
      expect(next.result.physicalOffset).toBe(file.endOffset);
    }
    expect(captureError(() => log.readRecordAt(sent[0]!.result.physicalOffset + sent[0]!.result.size + 1))).toMatchObject({
      code: 'RECORD_CORRUPT',
    });
    log.close();
  });

  it('returns RocketMQ msgIds and offsets that grow by the record size', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 3);
    expect(sent[0]!.result.physicalOffset).toBe(0);
    expect(sent[1]!.result.physicalOffset).toBe(sent[0]!.result.size);
    for (const { result } of sent) expect(result.msgId).toBe(offsetMessageId(STORE_HOST, result.physicalOffset));
    expect(log.maxOffset).toBe(sent[2]!.result.physicalOffset + sent[2]!.result.size);
    log.close();
  });

  it('moves flushedOffset only on flush, across files', () => {
    const { commitLog: log } = open();
    const table = new QueueOffsetTable();
    appendMany(log, table, 10);
    expect(log.flushedOffset).toBe(0);
    expect(log.flush()).toBe(log.maxOffset);
    const flushed = log.flushedOffset;
    appendMany(log, table, 150, 10);
    expect(log.flushedOffset).toBe(flushed);
    expect(log.flush()).toBe(log.maxOffset);
    expect(log.flush()).toBe(log.maxOffset);
    log.close();
  });

  it('reads released files from disk and checks every record it reads', () => {
    const { commitLog: log } = open({ cleanShutdown: true }, { cachedFilesMax: 1 });
    const sent = appendMany(log, new QueueOffsetTable(), 200);
    log.flush();
    appendMany(log, new QueueOffsetTable(), 100, 200);
    const first = log.mappedFiles()[0]!;
    expect(first.loaded).toBe(false);
    expectSameRecord(log, sent[5]!);
    // Flip one body byte on disk: a read must refuse it rather than serve a wrong body.
    const fd = fs.openSync(first.path, 'r+');
    fs.writeSync(fd, Buffer.from([0xee]), 0, 1, sent[5]!.result.physicalOffset + 200);
    fs.closeSync(fd);
    const error = captureError(() => log.readRecordAt(sent[5]!.result.physicalOffset));
    expect(error).toBeInstanceOf(CommitLogError);
    expect((error as CommitLogError).code).toBe('RECORD_CORRUPT');
    log.close();
  });

  it('hands loaded caches to other threads as SharedArrayBuffers', () => {
    const { commitLog: log } = open();
    const [sent] = appendMany(log, new QueueOffsetTable(), 1);
    const [shared] = log.sharedBuffers();
    expect(shared!.buffer).toBeInstanceOf(SharedArrayBuffer);
    const fromShared = new Uint8Array(shared!.buffer, shared!.byteOffset + sent!.result.physicalOffset, sent!.result.size);
    expect(Buffer.from(fromShared).equals(Buffer.from(log.read(sent!.result.physicalOffset, sent!.result.size)))).toBe(true);
    log.close();
  });

  it('refuses oversized records, bad topics and bad properties with stable codes', () => {
    const { commitLog: log } = open();
    const table = new QueueOffsetTable();
    expect(captureError(() => log.append(message(table, 'T', 0, new Uint8Array(17 * 1024))))).toMatchObject({
      code: 'MESSAGE_TOO_LARGE',
    });
    expect(captureError(() => log.append(message(table, '', 0, body(1))))).toMatchObject({ code: 'TOPIC_INVALID' });
    expect(captureError(() => log.append({ ...message(table, 'T', 0, body(1)), properties: 'a\u0001b' }))).toMatchObject({
      code: 'PROPERTIES_INVALID',
    });
    expect(log.maxOffset).toBe(0);
    log.close();
  });

  it('deletes whole flushed files before an offset, never the active one', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 200);
    log.flush();
    const files = log.mappedFiles();
    expect(log.deleteFilesBefore(files[2]!.startOffset)).toBe(2);
    expect(log.minOffset).toBe(files[2]!.startOffset);
    expect(fs.existsSync(files[0]!.path)).toBe(false);
    expect(captureError(() => log.read(0, 10))).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
    expect(log.deleteFilesBefore(Number.MAX_SAFE_INTEGER)).toBe(files.length - 3);
    expect(log.mappedFiles()).toHaveLength(1);
    expectSameRecord(log, sent.at(-1)!);
    log.close();
  });
});

describe('CommitLog recovery', () => {
  it('after a clean stop, reopens with every record, the same end, and the queue offsets', () => {
    const { commitLog: log } = open();
    const table = new QueueOffsetTable();
    const sent = appendMany(log, table, 150);
    log.flush();
    log.close();

    const { commitLog: again, recovery } = open({ cleanShutdown: true });
    expect(recovery.corruptions).toEqual([]);
    expect(recovery.tornTail).toBeNull();
    expect(again.maxOffset).toBe(log.maxOffset);
    expect(recovery.records.map((r) => r.physicalOffset)).toEqual(sent.map((s) => s.result.physicalOffset));
    expect([...recovery.queueOffsets.entries()].sort(byKey)).toEqual([...table.entries()].sort(byKey));
    for (const item of sent) expectSameRecord(again, item);
    // Appending goes on where the log ended.
    const [next] = appendMany(again, recovery.queueOffsets, 1, 150);
    expect(next!.result.physicalOffset).toBe(log.maxOffset);
    again.close();
  });

  it('scans from the checkpoint file and hands back only the records at or past the checkpoint', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 200);
    log.flush();
    log.close();
    const checkpoint = sent[130]!.result.physicalOffset;
    const fileStart = Math.floor(checkpoint / FILE_SIZE) * FILE_SIZE;
    const { commitLog: again, recovery } = open({ cleanShutdown: true, checkpointPhysicalOffset: checkpoint });
    expect(recovery.scanStartOffset).toBe(fileStart);
    expect(recovery.records.map((r) => r.physicalOffset)).toEqual(sent.slice(130).map((s) => s.result.physicalOffset));
    expect(recovery.recordsScanned).toBe(sent.filter((s) => s.result.physicalOffset >= fileStart).length);
    again.close();
  });

  it('streams recovered records to onRecord instead of collecting them', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 20);
    log.flush();
    log.close();
    const seen: number[] = [];
    const { commitLog: again, recovery } = open({
      cleanShutdown: false,
      checkpointPhysicalOffset: sent[10]!.result.physicalOffset,
      onRecord: (record) => seen.push(record.physicalOffset),
    });
    expect(seen).toEqual(sent.slice(10).map((s) => s.result.physicalOffset));
    expect(recovery.records).toEqual([]);
    again.close();
  });

  it('after a crash, cuts a torn last record whatever byte the write stopped at', () => {
    const table = new QueueOffsetTable();
    for (let kept = 0; ; kept++) {
      fs.rmSync(path.join(dir, 'commitlog'), { recursive: true, force: true });
      const { commitLog: log } = open({ cleanShutdown: false });
      const before = appendMany(log, new QueueOffsetTable(), 5);
      log.flush();
      const last = log.append(message(table, 'TopicT', 1, body(99, 120)));
      if (kept > last.size) {
        log.close();
        break;
      }
      // The crash: only the first `kept` bytes of the last record reached the file.
      const image = Buffer.from(log.read(last.physicalOffset, last.size));
      log.close();
      const fd = fs.openSync(filePath(0), 'r+');
      fs.writeSync(fd, image, 0, kept, last.physicalOffset);
      fs.closeSync(fd);

      const { commitLog: again, recovery } = open({ cleanShutdown: false });
      const whole = kept === last.size;
      expect(recovery.corruptions).toEqual([]);
      expect(recovery.records).toHaveLength(whole ? 6 : 5);
      expect(again.maxOffset).toBe(whole ? last.physicalOffset + last.size : last.physicalOffset);
      // A tear that got only zero bytes out (the size field's high bytes) is no different from no write.
      const wroteSomething = image.subarray(0, kept).some((b) => b !== 0);
      if (wroteSomething && !whole) expect(recovery.tornTail?.physicalOffset).toBe(last.physicalOffset);
      else expect(recovery.tornTail).toBeNull();
      for (const item of before) expectSameRecord(again, item);
      // The cut is durable: nothing of the torn record is left past the end.
      const onDisk = fs.readFileSync(filePath(0));
      expect(onDisk.subarray(again.maxOffset).every((b) => b === 0)).toBe(true);
      const next = again.append(message(table, 'TopicT', 1, body(100, 50)));
      expect(next.physicalOffset).toBe(again.maxOffset - next.size);
      again.close();
    }
  });

  it('after a crash, ends the log at a zero-filled tail and deletes empty later files', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 60);
    log.flush();
    appendMany(log, new QueueOffsetTable(), 60, 60); // never flushed: the disk keeps zeros there
    const fileCount = log.mappedFiles().length;
    log.close();
    const { commitLog: again, recovery } = open({ cleanShutdown: false });
    expect(recovery.tornTail).toBeNull();
    expect(recovery.corruptions).toEqual([]);
    expect(recovery.records).toHaveLength(60);
    expect(again.maxOffset).toBe(sent.at(-1)!.result.physicalOffset + sent.at(-1)!.result.size);
    expect(recovery.filesDeleted).toBe(fileCount - again.mappedFiles().length);
    again.close();
  });

  it('steps back a file when the checkpoint runs ahead of what reached the disk', () => {
    const { commitLog: log } = open();
    const table = new QueueOffsetTable();
    const sent: Sent[] = [];
    // Everything but the append that rolls is flushed before "the crash".
    while (log.mappedFiles().length <= 1) {
      log.flush();
      sent.push(...appendMany(log, table, 1, sent.length));
    }
    // The last append rolled: its record and file 0's blank marker are only in memory.
    const rolled = sent.pop()!;
    const fileZeroEnd = sent.at(-1)!.result.physicalOffset + sent.at(-1)!.result.size;
    log.close();
    const { commitLog: again, recovery } = open({ cleanShutdown: false, checkpointPhysicalOffset: rolled.result.physicalOffset });
    expect(recovery.scanStartOffset).toBe(0);
    expect(again.maxOffset).toBe(fileZeroEnd);
    expect(again.mappedFiles()).toHaveLength(1);
    expect(recovery.records).toEqual([]);
    again.close();
  });

  it('detects a corrupt record in the middle, reports it and cuts the log there', () => {
    for (const cleanShutdown of [true, false]) {
      fs.rmSync(path.join(dir, 'commitlog'), { recursive: true, force: true });
      const { commitLog: log } = open();
      const sent = appendMany(log, new QueueOffsetTable(), 150);
      log.flush();
      log.close();
      const victim = sent[20]!.result;
      const fd = fs.openSync(filePath(0), 'r+');
      fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, victim.physicalOffset + 150); // inside the body
      fs.closeSync(fd);

      const { commitLog: again, recovery } = open({ cleanShutdown });
      expect(recovery.corruptions).toEqual([
        { physicalOffset: victim.physicalOffset, reason: 'body-crc', validDataAtOffset: sent[21]!.result.physicalOffset },
      ]);
      expect(recovery.records).toHaveLength(20);
      expect(again.maxOffset).toBe(victim.physicalOffset);
      expect(again.mappedFiles()).toHaveLength(1);
      expect(captureError(() => again.readRecordAt(victim.physicalOffset))).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
      again.close();
    }
  });

  it('calls damage to a clean-stopped log corruption even at its tail', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 10);
    log.flush();
    log.close();
    const victim = sent[9]!.result;
    const fd = fs.openSync(filePath(0), 'r+');
    fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, victim.physicalOffset + 150);
    fs.closeSync(fd);
    const { commitLog: again, recovery } = open({ cleanShutdown: true });
    expect(recovery.corruptions).toEqual([{ physicalOffset: victim.physicalOffset, reason: 'body-crc', validDataAtOffset: null }]);
    expect(recovery.tornTail).toBeNull();
    again.close();
  });

  it('rebuilds the queue offset table, leaving transaction half messages out of the queues', () => {
    const { commitLog: log } = open();
    const table = new QueueOffsetTable();
    appendMany(log, table, 40);
    log.append(message(table, 'TopicA', 0, body(1), MessageSysFlag.TRANSACTION_PREPARED_TYPE));
    log.append(message(table, 'TopicC', 5, body(2), MessageSysFlag.TRANSACTION_PREPARED_TYPE));
    log.append(message(table, 'TopicA', 0, body(3), MessageSysFlag.TRANSACTION_COMMIT_TYPE));
    log.flush();
    log.close();
    const { commitLog: again, recovery } = open({ cleanShutdown: false });
    expect([...recovery.queueOffsets.entries()].sort(byKey)).toEqual([...table.entries()].sort(byKey));
    expect(recovery.queueOffsets.nextOffset('TopicC', 5)).toBe(0);
    expect(recovery.queueOffsets.nextOffset('TopicA', 0)).toBe(table.nextOffset('TopicA', 0));
    again.close();
  });

  it('surfaces ENOSPC during flush as DISK_FULL without harming what was flushed before', () => {
    let full = false;
    const faulty: StorageFs = {
      ...nodeStorageFs,
      writeSync(fd, buffer, offset, length, position) {
        if (!full) return nodeStorageFs.writeSync(fd, buffer, offset, length, position);
        nodeStorageFs.writeSync(fd, buffer, offset, Math.floor(length / 2), position);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    };
    const { commitLog: log } = open({ cleanShutdown: true }, { fs: faulty });
    const table = new QueueOffsetTable();
    const durable = appendMany(log, table, 30);
    const flushed = log.flush();
    const pending = appendMany(log, table, 30, 30);
    full = true;
    const error = captureError(() => log.flush());
    expect(error).toBeInstanceOf(MappedFileError);
    expect((error as MappedFileError).code).toBe('DISK_FULL');
    expect(log.flushedOffset).toBe(flushed);
    log.close();

    // A crash now: everything flushed before the failure is intact; the half-written rest is cut cleanly.
    const { commitLog: afterCrash, recovery } = open({ cleanShutdown: false });
    expect(recovery.corruptions).toEqual([]);
    expect(afterCrash.maxOffset).toBeGreaterThanOrEqual(flushed);
    for (const item of durable) expectSameRecord(afterCrash, item);
    const recovered = recovery.records.length;
    for (const item of pending.slice(0, recovered - durable.length)) expectSameRecord(afterCrash, item);
    afterCrash.close();
  });

  it('retries a failed flush from its own cache once space is back', () => {
    let full = false;
    const faulty: StorageFs = {
      ...nodeStorageFs,
      fdatasyncSync(fd) {
        if (full) throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
        nodeStorageFs.fdatasyncSync(fd);
      },
    };
    const { commitLog: log } = open({ cleanShutdown: true }, { fs: faulty });
    const sent = appendMany(log, new QueueOffsetTable(), 100);
    full = true;
    expect(captureError(() => log.flush())).toMatchObject({ code: 'DISK_FULL' });
    full = false;
    expect(log.flush()).toBe(log.maxOffset);
    log.close();
    const { commitLog: again, recovery } = open({ cleanShutdown: true });
    expect(recovery.records).toHaveLength(100);
    for (const item of sent) expectSameRecord(again, item);
    again.close();
  });
});

describe('CommitLog recovery from a trusted offset', () => {
  function flipByte(offset: number): void {
    const fd = fs.openSync(filePath(Math.floor(offset / FILE_SIZE) * FILE_SIZE), 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, offset % FILE_SIZE);
    byte[0] ^= 0x5a;
    fs.writeSync(fd, byte, 0, 1, offset % FILE_SIZE);
    fs.closeSync(fd);
  }

  it('starts exactly at the trusted offset, reads nothing before it and verifies everything after it', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 200);
    log.flush();
    log.close();
    const trusted = sent[130]!.result.physicalOffset;
    // Damage before the trusted offset is not read (it was verified when written and is durable)...
    flipByte(sent[129]!.result.physicalOffset + 150);
    const { commitLog: again, recovery } = open({ cleanShutdown: false, trustedPhysicalOffset: trusted, osCrashPossible: false });
    expect(recovery.scanFromOffset).toBe(trusted);
    expect(recovery.scanStartOffset).toBe(Math.floor(trusted / FILE_SIZE) * FILE_SIZE);
    expect(recovery.recordsScanned).toBe(70);
    expect(recovery.records.map((r) => r.physicalOffset)).toEqual(sent.slice(130).map((s) => s.result.physicalOffset));
    expect(recovery.corruptions).toEqual([]);
    expect(again.maxOffset).toBe(log.maxOffset);
    // ...records handed back are copies: they stay valid after recovery reused its read window.
    expect(Buffer.from(recovery.records[0]!.body).equals(Buffer.from(sent[130]!.input.body))).toBe(true);
    again.close();
    // ...while damage after it is found (CRC) and the log is cut there.
    flipByte(sent[150]!.result.physicalOffset + 150);
    const { commitLog: cut, recovery: second } = open({ cleanShutdown: false, trustedPhysicalOffset: trusted, osCrashPossible: false });
    expect(second.corruptions).toMatchObject([{ physicalOffset: sent[150]!.result.physicalOffset, reason: 'body-crc' }]);
    expect(cut.maxOffset).toBe(sent[150]!.result.physicalOffset);
    cut.close();
  });

  it('ignores a trusted offset outside the files and scans from the checkpoint file instead', () => {
    const { commitLog: log } = open();
    const sent = appendMany(log, new QueueOffsetTable(), 40);
    log.flush();
    log.close();
    const { commitLog: again, recovery } = open({ cleanShutdown: false, trustedPhysicalOffset: 100 * FILE_SIZE });
    expect(recovery.scanFromOffset).toBe(0);
    expect(recovery.records).toHaveLength(40);
    expect(again.maxOffset).toBe(sent.at(-1)!.result.physicalOffset + sent.at(-1)!.result.size);
    again.close();
  });

  it('reads only a window past the end when no OS crash is possible, and all of it otherwise', () => {
    for (const osCrashPossible of [false, true]) {
      fs.rmSync(path.join(dir, 'commitlog'), { recursive: true, force: true });
      const { commitLog: log } = open();
      const sent = appendMany(log, new QueueOffsetTable(), 20);
      log.flush();
      const torn = log.append(message(new QueueOffsetTable(), 'TopicT', 0, body(77, 800)));
      const image = Buffer.from(log.read(torn.physicalOffset, torn.size));
      log.close();
      const fd = fs.openSync(filePath(0), 'r+');
      fs.writeSync(fd, image, 0, 500, torn.physicalOffset); // the write the process died in
      fs.closeSync(fd);
      const { commitLog: again, recovery } = open({ cleanShutdown: false, osCrashPossible });
      expect(recovery.tailCheck).toBe(osCrashPossible ? 'full' : 'window');
      expect(recovery.tornTail).toMatchObject({ physicalOffset: torn.physicalOffset });
      expect(recovery.corruptions).toEqual([]);
      expect(again.maxOffset).toBe(sent.at(-1)!.result.physicalOffset + sent.at(-1)!.result.size);
      expect(fs.readFileSync(filePath(0)).subarray(again.maxOffset).every((b) => b === 0)).toBe(true);
      again.close();
    }
  });

  it('falls back to reading everything when bytes lie past the window, and finds valid data there', () => {
    // What only an OS crash leaves: a hole (pages that never reached the disk) with later pages intact.
    const { commitLog: log } = open({ cleanShutdown: true }, { maxMessageSizeBytes: 2048 });
    const sent = appendMany(log, new QueueOffsetTable(), 60);
    log.flush();
    log.close();
    const hole = sent[10]!.result;
    const holeEnd = sent[20]!.result.physicalOffset;
    const fd = fs.openSync(filePath(0), 'r+');
    fs.writeSync(fd, Buffer.alloc(holeEnd - hole.physicalOffset), 0, holeEnd - hole.physicalOffset, hole.physicalOffset);
    fs.closeSync(fd);
    const { commitLog: again, recovery } = open({ cleanShutdown: false, osCrashPossible: false }, { maxMessageSizeBytes: 2048 });
    expect(recovery.tailCheck).toBe('full');
    expect(recovery.corruptions).toEqual([{ physicalOffset: hole.physicalOffset, reason: 'unwritten', validDataAtOffset: holeEnd }]);
    expect(again.maxOffset).toBe(hole.physicalOffset);
    expect(fs.readFileSync(filePath(0)).subarray(hole.physicalOffset).every((b) => b === 0)).toBe(true);
    again.close();
  });
});

describe('CommitLog batches encoded elsewhere', () => {
  function encodeAll(topic: string, queueId: number, count: number, storeHost = STORE_HOST): { records: Uint8Array; inputs: RecordInput[] } {
    const inputs: RecordInput[] = Array.from({ length: count }, (_, i) => ({
      ...message(new QueueOffsetTable(), topic, queueId, body(i, 300 + i)),
      queueOffset: 0,
      physicalOffset: 0,
      storeTimestampMs: 0,
      storeHost,
    }));
    const records = new Uint8Array(inputs.reduce((sum, input) => sum + recordSize(input), 0));
    let at = 0;
    for (const input of inputs) at += encodeRecord(records, at, input);
    return { records, inputs };
  }

  it('appends a batch with one copy, consecutive queue offsets and one store time, never across a file end', () => {
    const { commitLog: log } = open();
    const topic = Buffer.from('TopicB');
    appendMany(log, new QueueOffsetTable(), 50); // leaves the active file partly used
    const { records, inputs } = encodeAll('TopicB', 3, 30);
    const before = log.maxOffset;
    const appended = log.appendEncodedBatch(records, 30, topic, 3, 7);
    expect(appended.sizes.reduce((a, b) => a + b, 0)).toBe(records.length);
    // The whole batch sits in one file: when it did not fit, the log rolled first.
    expect(Math.floor(appended.physicalOffset / FILE_SIZE)).toBe(Math.floor((appended.physicalOffset + records.length - 1) / FILE_SIZE));
    expect(before % FILE_SIZE + records.length + 8).toBeGreaterThan(FILE_SIZE); // it could not fit...
    expect(appended.physicalOffset).toBe(Math.ceil(before / FILE_SIZE) * FILE_SIZE); // ...so the log rolled
    let offset = appended.physicalOffset;
    for (const [index, input] of inputs.entries()) {
      const view = log.readRecordAt(offset);
      expect([view.topic, view.queueId, view.queueOffset, view.storeTimestampMs]).toEqual(['TopicB', 3, 7 + index, appended.storeTimestampMs]);
      expect(Buffer.from(view.body).equals(Buffer.from(input.body))).toBe(true);
      offset += appended.sizes[index]!;
    }
    log.flush();
    log.close();
    const { commitLog: again, recovery } = open({ cleanShutdown: true });
    expect(recovery.queueOffsets.nextOffset('TopicB', 3)).toBe(37);
    again.close();
  });

  it('refuses a batch with a record for another queue, another store host, or a count that does not match', () => {
    const { commitLog: log } = open();
    const topic = Buffer.from('TopicB');
    const mixed = encodeAll('TopicB', 3, 2);
    const other = encodeAll('TopicB', 4, 1);
    const records = Buffer.concat([mixed.records, other.records]);
    expect(captureError(() => log.appendEncodedBatch(records, 3, topic, 3, 0))).toMatchObject({ code: 'RECORD_INVALID' });
    const foreign = encodeAll('TopicB', 3, 2, { address: '10.9.9.9', port: 10911 });
    expect(captureError(() => log.appendEncodedBatch(foreign.records, 2, topic, 3, 0))).toMatchObject({ code: 'RECORD_INVALID' });
    expect(captureError(() => log.appendEncodedBatch(mixed.records, 1, topic, 3, 0))).toMatchObject({ code: 'RECORD_INVALID' });
    expect(captureError(() => log.appendEncodedBatch(mixed.records.subarray(0, 100), 1, topic, 3, 0))).toMatchObject({ code: 'RECORD_INVALID' });
    const half = encodeAll('TopicB', 3, 1);
    const halfInput = { ...half.inputs[0]!, sysFlag: MessageSysFlag.TRANSACTION_PREPARED_TYPE };
    encodeRecord(half.records, 0, halfInput);
    expect(captureError(() => log.appendEncodedBatch(half.records, 1, topic, 3, 0))).toMatchObject({ code: 'RECORD_INVALID' });
    expect(log.maxOffset).toBe(0);
    const ok = log.appendEncodedBatch(mixed.records, 2, topic, 3, 0);
    expect(decodeRecord(log.read(ok.physicalOffset, ok.sizes[0]!), 0).queueOffset).toBe(0);
    log.close();
  });
});

describe('QueueOffsetTable', () => {
  it('assigns consecutive offsets per queue, never moves back on observe, and is bounded', () => {
    const table = new QueueOffsetTable(2);
    expect([table.assign('a-b', 1), table.assign('a-b', 1, 3), table.assign('a', 1)]).toEqual([0, 1, 0]);
    table.observe('a-b', 1, 2);
    expect(table.nextOffset('a-b', 1)).toBe(4);
    table.observe('a', 1, 9, 2);
    expect(table.nextOffset('a', 1)).toBe(11);
    expect(captureError(() => table.assign('c', 0))).toMatchObject({ code: 'QUEUE_TABLE_FULL' });
    table.remove('a', 1);
    expect(table.assign('c', 0)).toBe(0);
  });
});

describe('CommitLog directory layout', () => {
  it('refuses a gap between files', () => {
    const logDir = path.join(dir, 'commitlog');
    fs.mkdirSync(logDir);
    fs.writeFileSync(path.join(logDir, fileNameOf(0)), Buffer.alloc(FILE_SIZE));
    fs.writeFileSync(path.join(logDir, fileNameOf(2 * FILE_SIZE)), Buffer.alloc(FILE_SIZE));
    const error = captureError(() => open());
    expect(error).toBeInstanceOf(CommitLogError);
    expect((error as CommitLogError).code).toBe('FILE_LAYOUT_INVALID');
  });

  it('refuses files of another size and drops an empty last file', () => {
    const logDir = path.join(dir, 'commitlog');
    fs.mkdirSync(logDir);
    fs.writeFileSync(path.join(logDir, fileNameOf(0)), Buffer.alloc(FILE_SIZE));
    fs.writeFileSync(path.join(logDir, fileNameOf(FILE_SIZE)), Buffer.alloc(0));
    const { commitLog: log, recovery } = open({ cleanShutdown: false });
    expect(recovery.maxOffset).toBe(0);
    expect(fs.existsSync(path.join(logDir, fileNameOf(FILE_SIZE)))).toBe(false);
    log.close();
    fs.writeFileSync(path.join(logDir, fileNameOf(0)), Buffer.alloc(100));
    expect(captureError(() => open())).toMatchObject({ code: 'FILE_SIZE_MISMATCH' });
  });
});

function byKey(a: { topic: string; queueId: number }, b: { topic: string; queueId: number }): number {
  return `${a.topic}-${a.queueId}`.localeCompare(`${b.topic}-${b.queueId}`);
}

describe('CommitLog msgIdsOf', () => {
  it('joins the ids offsetMessageId gives, for IPv4 and IPv6 store hosts, offsets past 2^32 and batches larger than its buffer', () => {
    for (const storeHost of [STORE_HOST, { address: '2001:db8::7', port: 10911 }]) {
      const { commitLog: log } = open({ cleanShutdown: true }, { storeHost, dir: path.join(dir, `commitlog-${storeHost.address.length}`) });
      try {
        for (const [start, count] of [[0, 1], [123_456, 64], [2 ** 32 - 100, 7], [2 ** 40 + 5, 300]] as const) {
          const sizes = Array.from({ length: count }, (_, i) => 84 + ((i * 37) % 1_000));
          let offset = start;
          const expected = sizes.map((size) => {
            const id = offsetMessageId(storeHost, offset);
            expect(log.msgIdOf(offset)).toBe(id);
            offset += size;
            return id;
          }).join(',');
          expect(log.msgIdsOf(start, sizes)).toBe(expected);
        }
      } finally {
        log.close();
      }
    }
  });
});

describe('CommitLog writes on write threads', () => {
  it('writes appended blocks across file ends in log order, reports the files to fdatasync, and recovers them after a crash', () => {
    const threads = new WriteThreads(2);
    try {
      const { commitLog: log } = open({ cleanShutdown: true }, { asyncWrites: threads, directWriteMinBytes: 4096 });
      const table = new QueueOffsetTable(64);
      const sent: Sent[] = [];
      // About 200 KiB over 64 KiB files: starts and reaps as a writer's turns would.
      for (let round = 0; round < 20; round++) {
        sent.push(...appendMany(log, table, 12, round * 12));
        log.startWrites();
        log.reapWrites();
        expect(log.flushedOffset).toBeLessThanOrEqual(log.maxOffset);
      }
      // As the writer does on each `written` signal: start what is left, until only the partial block is.
      for (let pass = 0; pass < 100 && log.startWrites(); pass++) log.drainWrites();
      expect(log.writing).toBe(false);
      const written = log.takeWrittenPaths();
      expect(written.length).toBeGreaterThan(1);
      expect(written).toEqual([...written].sort());
      // Whole blocks only: the last partial block is left to flush.
      expect(log.maxOffset - log.flushedOffset).toBeLessThan(4096);
      const writtenUpTo = log.flushedOffset;
      // A crash now (no flush): what the threads wrote is in the files.
      log.close();
      const { commitLog: again, recovery } = open({ cleanShutdown: false, osCrashPossible: false });
      const kept = sent.filter((s) => s.result.physicalOffset + s.result.size <= writtenUpTo);
      expect(recovery.maxOffset).toBe(kept.at(-1)!.result.physicalOffset + kept.at(-1)!.result.size);
      expect(recovery.corruptions).toEqual([]);
      for (const s of kept) expectSameRecord(again, s);
      again.close();
    } finally {
      threads.close();
    }
  });

  it('flush waits for running writes and fdatasyncs the files they wrote', () => {
    const threads = new WriteThreads(2);
    const synced: number[] = [];
    const syncing: StorageFs = { ...nodeStorageFs, fdatasyncSync: (fd) => { synced.push(fd); nodeStorageFs.fdatasyncSync(fd); } };
    try {
      const { commitLog: log } = open({ cleanShutdown: true }, { fs: syncing, asyncWrites: threads, directWriteMinBytes: 4096 });
      const sent = appendMany(log, new QueueOffsetTable(64), 150);
      expect(log.startWrites()).toBe(true);
      synced.length = 0;
      expect(log.flush()).toBe(log.maxOffset);
      expect(log.writing).toBe(false);
      expect(log.takeWrittenPaths()).toEqual([]);
      // Every file holding appended bytes was fdatasync'd (150 records of 600-1,500 bytes: two files or more).
      expect(new Set(synced).size).toBeGreaterThanOrEqual(Math.ceil(log.maxOffset / FILE_SIZE));
      for (const s of sent) expectSameRecord(log, s);
      log.close();
    } finally {
      threads.close();
    }
  });
});
