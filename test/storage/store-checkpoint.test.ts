import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type StoreCheckpoint,
  StoreCheckpointError,
  abortFileExists,
  createAbortFile,
  decodeStoreCheckpoint,
  deleteAbortFile,
  encodeStoreCheckpoint,
  readStoreCheckpoint,
  writeStoreCheckpoint,
} from '../../src/storage/store-checkpoint.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-checkpoint-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sample: StoreCheckpoint = {
  physicMsgTimestampMs: 1_700_000_000_111,
  logicsMsgTimestampMs: 1_700_000_000_222,
  indexMsgTimestampMs: 1_700_000_000_333,
  masterFlushedOffset: 0x1_2345_6789,
  confirmPhyOffset: 987_654_321,
};

describe('checkpoint file', () => {
  it('lays out five big-endian longs at 0, 8, 16, 24, 32 in a 4096-byte page, as StoreCheckpoint does', () => {
    const bytes = Buffer.from(encodeStoreCheckpoint(sample));
    expect(bytes.length).toBe(4096);
    expect(Number(bytes.readBigInt64BE(0))).toBe(sample.physicMsgTimestampMs);
    expect(Number(bytes.readBigInt64BE(8))).toBe(sample.logicsMsgTimestampMs);
    expect(Number(bytes.readBigInt64BE(16))).toBe(sample.indexMsgTimestampMs);
    expect(bytes.subarray(24, 32).toString('hex')).toBe('0000000123456789');
    expect(Number(bytes.readBigInt64BE(32))).toBe(sample.confirmPhyOffset);
    expect(bytes.subarray(40).every((b) => b === 0)).toBe(true);
  });

  it('writes atomically and reads back; a new store has none', () => {
    expect(readStoreCheckpoint(nodeStorageFs, dir)).toBeNull();
    writeStoreCheckpoint(nodeStorageFs, dir, sample);
    expect(fs.readdirSync(dir)).toEqual(['checkpoint']);
    expect(readStoreCheckpoint(nodeStorageFs, dir)).toEqual(sample);
    writeStoreCheckpoint(nodeStorageFs, dir, { ...sample, confirmPhyOffset: 5 });
    expect(readStoreCheckpoint(nodeStorageFs, dir)?.confirmPhyOffset).toBe(5);
  });

  it('reads a Java-written page that only has the 40 bytes of fields', () => {
    const javaPage = Buffer.alloc(4096);
    javaPage.writeBigInt64BE(42n, 32);
    expect(decodeStoreCheckpoint(javaPage).confirmPhyOffset).toBe(42);
  });

  it('refuses a short file or a negative field with a stable code', () => {
    expect(() => decodeStoreCheckpoint(new Uint8Array(39))).toThrow(StoreCheckpointError);
    const negative = Buffer.alloc(4096);
    negative.writeBigInt64BE(-1n, 8);
    try {
      decodeStoreCheckpoint(negative);
      expect.unreachable();
    } catch (error) {
      expect((error as StoreCheckpointError).code).toBe('CHECKPOINT_INVALID');
    }
  });
});

describe('abort file', () => {
  it('exists from start to clean stop, so its presence at start means a crash', () => {
    expect(abortFileExists(nodeStorageFs, dir)).toBe(false);
    createAbortFile(nodeStorageFs, dir, 4242);
    expect(abortFileExists(nodeStorageFs, dir)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'abort'), 'utf8')).toBe('4242');
    deleteAbortFile(nodeStorageFs, dir);
    expect(abortFileExists(nodeStorageFs, dir)).toBe(false);
    deleteAbortFile(nodeStorageFs, dir);
  });
});
