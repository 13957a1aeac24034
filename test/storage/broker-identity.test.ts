import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BROKER_IDENTITY_FILES,
  loadBrokerIdentity,
  removeTempBrokerIdentity,
  writeAppliedBrokerIdentity,
  writeTempBrokerIdentity,
} from '../../src/storage/broker-identity.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

describe('broker identity files', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-identity-'));
    dirs.push(dir);
    return dir;
  }

  it('moves from none to temp to applied, dropping the temp file', () => {
    const dir = tempDir();
    expect(loadBrokerIdentity(nodeStorageFs, dir, 'c', 'b')).toEqual({ kind: 'none' });
    writeTempBrokerIdentity(nodeStorageFs, dir, { clusterName: 'c', brokerName: 'b', brokerId: 3, registerCheckCode: '10.0.0.1:10911;1' });
    expect(loadBrokerIdentity(nodeStorageFs, dir, 'c', 'b')).toEqual({
      kind: 'temp',
      identity: { clusterName: 'c', brokerName: 'b', brokerId: 3, registerCheckCode: '10.0.0.1:10911;1' },
    });
    writeAppliedBrokerIdentity(nodeStorageFs, dir, { clusterName: 'c', brokerName: 'b', brokerId: 3 });
    expect(loadBrokerIdentity(nodeStorageFs, dir, 'c', 'b')).toEqual({ kind: 'applied', identity: { clusterName: 'c', brokerName: 'b', brokerId: 3 } });
    expect(fs.readdirSync(dir)).toEqual([BROKER_IDENTITY_FILES.applied]);
  });

  it('refuses a store of another broker and a file that does not parse', () => {
    const dir = tempDir();
    writeAppliedBrokerIdentity(nodeStorageFs, dir, { clusterName: 'c', brokerName: 'b', brokerId: 1 });
    expect(loadBrokerIdentity(nodeStorageFs, dir, 'c', 'other')).toMatchObject({ kind: 'refused', code: 'BROKER_IDENTITY_MISMATCH' });
    fs.writeFileSync(path.join(dir, BROKER_IDENTITY_FILES.applied), '{"version":1,"brokerId":');
    expect(loadBrokerIdentity(nodeStorageFs, dir, 'c', 'b')).toMatchObject({ kind: 'refused', code: 'BROKER_IDENTITY_CORRUPT' });
    const other = tempDir();
    writeTempBrokerIdentity(nodeStorageFs, other, { clusterName: 'c', brokerName: 'b', brokerId: 2, registerCheckCode: 'x;1' });
    removeTempBrokerIdentity(nodeStorageFs, other);
    expect(loadBrokerIdentity(nodeStorageFs, other, 'c', 'b')).toEqual({ kind: 'none' });
  });
});
