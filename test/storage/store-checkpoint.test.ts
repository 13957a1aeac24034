import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/runtime/assert.ts';
import {
  type StoreCheckpoint,
  type StoreCheckpointIndexTail,
  StoreCheckpointError,
  abortFileExists,
  createAbortFile,
  decodeStoreCheckpoint,
  deleteAbortFile,
  encodeStoreCheckpoint,
  readBootId,
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

  it('keeps the trusted offset and boot id in an extension at 1024, bound to the fields by a CRC', () => {
    const extended: StoreCheckpoint = { ...sample, trustedPhysicalOffset: 0x2_0000_0123, bootId: '0123456789abcdef0123456789abcdef' };
    const bytes = Buffer.from(encodeStoreCheckpoint(extended));
    expect(bytes.readUInt32BE(1024)).toBe(0x5254_4331);
    expect(Number(bytes.readBigInt64BE(1032))).toBe(0x2_0000_0123);
    expect(bytes.toString('hex', 1040, 1056)).toBe('0123456789abcdef0123456789abcdef');
    // Java reads and writes only the first 40 bytes; everything between stays zero.
    expect(bytes.subarray(40, 1024).every((b) => b === 0)).toBe(true);
    expect(decodeStoreCheckpoint(bytes)).toEqual(extended);
    writeStoreCheckpoint(nodeStorageFs, dir, extended);
    expect(readStoreCheckpoint(nodeStorageFs, dir)).toEqual(extended);
    const withoutBoot: StoreCheckpoint = { ...sample, trustedPhysicalOffset: 77 };
    expect(decodeStoreCheckpoint(encodeStoreCheckpoint(withoutBoot))).toEqual(withoutBoot);
  });

  it('drops the extension when Java rewrote its fields since, when damaged, and reads old files without one', () => {
    const bytes = Buffer.from(encodeStoreCheckpoint({ ...sample, trustedPhysicalOffset: 4096, bootId: 'ff'.repeat(16) }));
    // A Java broker flushed a newer timestamp through its mmap, leaving our bytes as they were.
    const rewritten = Buffer.from(bytes);
    rewritten.writeBigInt64BE(BigInt(sample.physicMsgTimestampMs + 1), 0);
    expect(decodeStoreCheckpoint(rewritten)).toEqual({ ...sample, physicMsgTimestampMs: sample.physicMsgTimestampMs + 1 });
    const damaged = Buffer.from(bytes);
    damaged[1033] ^= 0x01;
    expect(decodeStoreCheckpoint(damaged)).toEqual(sample);
    // A checkpoint written before the extension existed (or by Java): the five fields, nothing else.
    expect(decodeStoreCheckpoint(encodeStoreCheckpoint(sample))).toEqual(sample);
    expect(Object.keys(decodeStoreCheckpoint(bytes.subarray(0, 40)))).toHaveLength(5);
  });

  it('keeps the newest index file\'s name, geometry and header in a record at 1064, bound to both blocks by a CRC', () => {
    const indexTail: StoreCheckpointIndexTail = {
      fileName: '20240102030405006',
      hashSlotNum: 5_000_000,
      indexNum: 20_000_000,
      header: { beginTimestampMs: 1_700_000_000_000, endTimestampMs: 1_700_000_009_999, beginPhyOffset: 0x1_0000_0000, endPhyOffset: 0x1_0000_4000, hashSlotCount: 77, indexCount: 78 },
    };
    const checkpoint: StoreCheckpoint = { ...sample, trustedPhysicalOffset: 0x1_0000_5000, bootId: 'ab'.repeat(16), indexTail };
    const bytes = Buffer.from(encodeStoreCheckpoint(checkpoint));
    expect(bytes.readUInt32BE(1064)).toBe(0x5254_4931);
    expect(bytes.readInt32BE(1072)).toBe(5_000_000);
    expect(bytes.readInt32BE(1076)).toBe(20_000_000);
    expect(bytes.toString('latin1', 1080, 1097)).toBe('20240102030405006');
    expect(bytes.subarray(1097, 1104).every((b) => b === 0)).toBe(true);
    // The header in IndexHeader's own layout.
    expect(Number(bytes.readBigInt64BE(1104))).toBe(1_700_000_000_000);
    expect(Number(bytes.readBigInt64BE(1112))).toBe(1_700_000_009_999);
    expect(Number(bytes.readBigInt64BE(1120))).toBe(0x1_0000_0000);
    expect(Number(bytes.readBigInt64BE(1128))).toBe(0x1_0000_4000);
    expect(bytes.readInt32BE(1136)).toBe(77);
    expect(bytes.readInt32BE(1140)).toBe(78);
    expect(bytes.subarray(1144).every((b) => b === 0)).toBe(true);
    expect(decodeStoreCheckpoint(bytes)).toEqual(checkpoint);
    writeStoreCheckpoint(nodeStorageFs, dir, checkpoint);
    expect(readStoreCheckpoint(nodeStorageFs, dir)).toEqual(checkpoint);
    // A store without index files records that too: a record with a zero body.
    const none: StoreCheckpoint = { ...sample, trustedPhysicalOffset: 4096, indexTail: null };
    const noneBytes = Buffer.from(encodeStoreCheckpoint(none));
    expect(noneBytes.readUInt32BE(1064)).toBe(0x5254_4931);
    expect(noneBytes.subarray(1072, 1144).every((b) => b === 0)).toBe(true);
    expect(decodeStoreCheckpoint(noneBytes)).toEqual(none);
    // Without the record (older checkpoints), nothing is read there.
    expect(decodeStoreCheckpoint(encodeStoreCheckpoint({ ...sample, trustedPhysicalOffset: 4096 }))).not.toHaveProperty('indexTail');

    const { indexTail: _, ...withoutTail } = checkpoint;
    // Damage in the record drops the record only; Java rewriting its fields or damage in the first
    // extension drops both, since the record only means something with the trusted offset.
    const damagedTail = Buffer.from(bytes);
    damagedTail[1139] ^= 0x01;
    expect(decodeStoreCheckpoint(damagedTail)).toEqual(withoutTail);
    const rewritten = Buffer.from(bytes);
    rewritten.writeBigInt64BE(BigInt(sample.indexMsgTimestampMs + 5), 16);
    expect(decodeStoreCheckpoint(rewritten)).toEqual({ ...sample, indexMsgTimestampMs: sample.indexMsgTimestampMs + 5 });
    const damagedExtension = Buffer.from(bytes);
    damagedExtension[1040] ^= 0x80;
    expect(decodeStoreCheckpoint(damagedExtension)).toEqual(sample);
    // The record is ours to write only with a trusted offset, and only for a possible file.
    expect(() => encodeStoreCheckpoint({ ...sample, indexTail })).toThrow(AssertionError);
    const impossible = { ...indexTail, header: { ...indexTail.header, indexCount: 20_000_001 } };
    expect(() => encodeStoreCheckpoint({ ...checkpoint, indexTail: impossible })).toThrow(AssertionError);
    expect(() => encodeStoreCheckpoint({ ...checkpoint, indexTail: { ...indexTail, fileName: '2024' } })).toThrow(AssertionError);
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

describe('boot id', () => {
  it('reads the kernel boot id as 32 hex digits, and none where the OS has none', () => {
    const withBootId = (text: string | null): typeof nodeStorageFs => ({
      ...nodeStorageFs,
      existsSync: (file) => text !== null && file === '/proc/sys/kernel/random/boot_id',
      readFileSync: () => Buffer.from(text ?? ''),
    });
    expect(readBootId(withBootId('5B2D1C3E-0F4a-4b5c-8d9e-0a1b2c3d4e5f\n'))).toBe('5b2d1c3e0f4a4b5c8d9e0a1b2c3d4e5f');
    expect(readBootId(withBootId(null))).toBeUndefined();
    expect(readBootId(withBootId('not a uuid'))).toBeUndefined();
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
