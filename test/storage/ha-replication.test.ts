/**
 * CommitLog replication between two stores in-process: the master's raw bytes read in batches and
 * appended on the slave in pieces of any size (partial records kept and completed), the slave's files
 * byte-identical to the master's, its ConsumeQueues and index serving the same messages, refusals with
 * stable codes, and an old master truncated back to where a new master diverged, then resynced.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageStore } from '../../src/storage/message-store.ts';
import {
  HA_QUEUES,
  HA_TOPICS,
  MASTER_HOST,
  SLAVE_HOST,
  allQueues,
  appendOnMaster,
  commitLogFiles,
  haMessage,
  openSmallStore,
  removeDirs,
  replicate,
  tempDir,
} from './fixtures/ha-pair.ts';

const FILE_BYTES = 64 * 1024;
const dirs: string[] = [];
const open: MessageStore[] = [];

afterEach(() => {
  for (const store of open.splice(0)) store.close();
  removeDirs(dirs);
});

function pair(): { master: MessageStore; slave: MessageStore; masterDir: string; slaveDir: string } {
  const masterDir = tempDir('ha-master-', dirs);
  const slaveDir = tempDir('ha-slave-', dirs);
  const master = openSmallStore(masterDir, MASTER_HOST, FILE_BYTES);
  const slave = openSmallStore(slaveDir, SLAVE_HOST, FILE_BYTES);
  open.push(master, slave);
  return { master, slave, masterDir, slaveDir };
}

/** A deterministic pseudo-random sequence (xorshift), so failures replay. */
function sequence(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

function fill(master: MessageStore, count: number, random: () => number, firstSeq = 0): void {
  for (let seq = firstSeq; seq < firstSeq + count; seq++) {
    const topic = HA_TOPICS[seq % HA_TOPICS.length]!;
    appendOnMaster(master, haMessage(topic, seq % HA_QUEUES, 1 + Math.floor(random() * 6000), seq));
  }
}

describe('raw CommitLog replication', () => {
  it('copies the log byte for byte across file ends, in pieces of any size, and dispatches what it copies', () => {
    const { master, slave, masterDir, slaveDir } = pair();
    const random = sequence(7);
    fill(master, 120, random);
    expect(master.maxPhysicalOffset).toBeGreaterThan(3 * FILE_BYTES);
    const received = replicate(master, slave, 0, 32 * 1024, () => 1 + Math.floor(random() * 9000));
    expect(received).toBe(master.maxPhysicalOffset);
    expect(slave.maxPhysicalOffset).toBe(master.maxPhysicalOffset);
    slave.dispatch();
    slave.writeCommitLog();
    const masterFiles = commitLogFiles(masterDir);
    const slaveFiles = commitLogFiles(slaveDir);
    expect([...slaveFiles.keys()]).toEqual([...masterFiles.keys()]);
    for (const [name, bytes] of masterFiles) expect(slaveFiles.get(name)!.equals(bytes), name).toBe(true);
    expect(allQueues(slave)).toEqual(allQueues(master));
    expect(slave.queryByKey('TopicB', 'key-41', 4).map((message) => message.physicalOffset)).toEqual(
      master.queryByKey('TopicB', 'key-41', 4).map((message) => message.physicalOffset),
    );
  });

  it('keeps a partial record out of the log until the rest arrives, and drops it on a resync', () => {
    const { master, slave } = pair();
    const first = appendOnMaster(master, haMessage('TopicA', 0, 100, 1));
    const read = master.readRaw(0, 1024);
    expect(read.ok && read.bytes.length).toBe(first.wroteBytes);
    if (!read.ok) return;
    const half = slave.appendRaw(0, read.bytes.subarray(0, 50));
    expect(half).toMatchObject({ ok: true, maxOffset: 0, receivedOffset: 50, records: 0 });
    expect(slave.getMessage('TopicA', 0, 0, 1).status).not.toBe('FOUND');
    // A reconnect resyncs from the end of the whole records: the kept half is dropped.
    expect(slave.appendRaw(0, read.bytes.subarray(0, 30))).toMatchObject({ ok: true, maxOffset: 0, receivedOffset: 30 });
    expect(slave.appendRaw(30, read.bytes.subarray(30))).toMatchObject({ ok: true, maxOffset: first.wroteBytes, receivedOffset: first.wroteBytes, records: 1 });
    slave.dispatch();
    expect(slave.getMessage('TopicA', 0, 0, 1).messages[0]!.record).toEqual(master.getMessage('TopicA', 0, 0, 1).messages[0]!.record);
  });

  it('refuses bytes that do not continue the log, and bytes that are not records', () => {
    const { master, slave } = pair();
    appendOnMaster(master, haMessage('TopicA', 0, 100, 1));
    const read = master.readRaw(0, 1024);
    if (!read.ok) throw new Error('read refused');
    expect(slave.appendRaw(8, read.bytes)).toMatchObject({ ok: false, code: 'RAW_OFFSET_MISMATCH', maxOffset: 0 });
    const damaged = Uint8Array.from(read.bytes);
    // A body byte: the body CRC catches it.
    damaged[Buffer.from(read.bytes).indexOf('m1') + 1]! ^= 0xff;
    expect(slave.appendRaw(0, damaged)).toMatchObject({ ok: false, code: 'RAW_RECORD_CORRUPT' });
    expect(slave.maxPhysicalOffset).toBe(0);
    expect(master.readRaw(master.maxPhysicalOffset + 1, 10)).toMatchObject({ ok: false, code: 'OFFSET_OUT_OF_RANGE' });
  });

  it('exposes only what is written to the files', () => {
    const { master } = pair();
    const result = master.appendMessage(haMessage('TopicA', 0, 10, 1));
    expect(master.readRaw(0, 1024)).toMatchObject({ ok: true, physicalOffset: 0, bytes: new Uint8Array(0) });
    master.writeCommitLog();
    const read = master.readRaw(0, 1024);
    expect(read.ok && read.bytes.length).toBe(result.wroteBytes);
  });

  it('never reads across a file end in one chunk', () => {
    const { master } = pair();
    fill(master, 40, sequence(3));
    expect(master.maxPhysicalOffset).toBeGreaterThan(FILE_BYTES);
    const read = master.readRaw(FILE_BYTES - 100, 1 << 20);
    expect(read.ok && read.bytes.length).toBe(100);
  });

  it('truncates a returning old master to where the new master diverged, then resyncs it', () => {
    const { master: oldMaster, slave: newMaster, masterDir: oldDir, slaveDir: newDir } = pair();
    const random = sequence(11);
    fill(oldMaster, 60, random);
    const common = replicate(oldMaster, newMaster, 0, 32 * 1024, () => 1 + Math.floor(random() * 5000));
    newMaster.dispatch();
    // The old master takes writes the slave never gets, then fails over.
    fill(oldMaster, 25, random, 1_000);
    expect(oldMaster.maxPhysicalOffset).toBeGreaterThan(common);
    // The new master takes its own writes, continuing the queue offsets it replicated.
    fill(newMaster, 30, random, 2_000);
    expect(newMaster.getMessage('TopicA', 0, 0, 32).messages.length).toBeGreaterThan(0);
    expect(oldMaster.truncateTo(common + 1)).toMatchObject({ ok: false, code: 'TRUNCATE_OFFSET_INVALID' });
    expect(oldMaster.truncateTo(common)).toEqual({ ok: true, maxOffset: common });
    const received = replicate(newMaster, oldMaster, common, 32 * 1024, () => 1 + Math.floor(random() * 7000));
    expect(received).toBe(newMaster.maxPhysicalOffset);
    oldMaster.dispatch();
    oldMaster.writeCommitLog();
    newMaster.writeCommitLog();
    const a = commitLogFiles(oldDir);
    const b = commitLogFiles(newDir);
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [name, bytes] of b) expect(a.get(name)!.equals(bytes), name).toBe(true);
    expect(allQueues(oldMaster)).toEqual(allQueues(newMaster));
    expect(oldMaster.queryByKey('TopicA', 'key-1000', 4)).toEqual([]);
  });

  it('reopens a slave after a crash with its replicated log and queues', () => {
    const { master, slave, slaveDir } = pair();
    const random = sequence(5);
    fill(master, 50, random);
    replicate(master, slave, 0, 32 * 1024, () => 1 + Math.floor(random() * 3000));
    slave.dispatch();
    slave.writeCommitLog();
    slave.close();
    open.splice(open.indexOf(slave), 1);
    const reopened = openSmallStore(slaveDir, SLAVE_HOST, FILE_BYTES);
    open.push(reopened);
    expect(reopened.maxPhysicalOffset).toBe(master.maxPhysicalOffset);
    expect(allQueues(reopened)).toEqual(allQueues(master));
  });
});
