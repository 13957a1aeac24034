/**
 * Durability of acknowledgements under a real kill -9, SYNC_FLUSH and ASYNC_FLUSH (whose answers wait
 * until the bytes are in the file, the kernel's page cache: that survives the process, not the OS, as
 * RocketMQ's mmap does): a child process appends through the
 * store's actors and prints one line per acknowledgement; the test kills it with SIGKILL after N lines,
 * reopens the store (crash recovery) and checks that every acknowledged message is there with its exact
 * body, queue and queue offset, and that everything recovered is well formed (checksums, dense offsets).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { checkRecord, decodeRecord } from '../../src/storage/message-record.ts';
import { MessageStore } from '../../src/storage/message-store.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { KILL9_QUEUES, KILL9_STORE, KILL9_TOPIC, kill9Body, kill9IndexOf, kill9QueueOf } from './fixtures/kill9-messages.ts';

const appenderScript = new URL('./fixtures/sync-appender.ts', import.meta.url).pathname;
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

type Ack = { readonly index: number; readonly queueId: number; readonly queueOffset: number; readonly physicalOffset: number };

/** Runs the appender until `killAfter` acknowledgements, kills it with SIGKILL, returns every ack it printed. */
async function appendThenKill(dir: string, killAfter: number, flushDiskType: 'SYNC_FLUSH' | 'ASYNC_FLUSH' = 'SYNC_FLUSH', appenders = 8, mode: 'PUT' | 'REGION' = 'PUT'): Promise<Ack[]> {
  const child = spawn(process.execPath, [appenderScript, dir, String(appenders), flushDiskType, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const acks: Ack[] = [];
  try {
    // Reading to the end collects the lines still in the pipe after the kill: they were acknowledged too.
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'ready') continue;
      const [index, queueId, queueOffset, physicalOffset] = line.split(' ').map(Number) as [number, number, number, number];
      acks.push({ index, queueId, queueOffset, physicalOffset });
      if (acks.length === killAfter) child.kill('SIGKILL');
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  const { signal } = await exited;
  expect(signal, `the appender died on its own: ${stderr}`).toBe('SIGKILL');
  expect(acks.length).toBeGreaterThanOrEqual(killAfter);
  return acks;
}

/** Reopens the store and checks every acknowledged message and the shape of everything recovered. */
function verify(dir: string, acks: readonly Ack[]): void {
  const store = MessageStore.open({ rootDir: dir, fs: nodeStorageFs, flushDiskType: 'SYNC_FLUSH', ...KILL9_STORE });
  expect(store.recovery.cleanShutdown).toBe(false);
  expect(store.recovery.corruptions).toEqual([]);
  const recovered = new Map<string, { index: number; physicalOffset: number }>();
  for (let queueId = 0; queueId < KILL9_QUEUES; queueId++) {
    const { minOffset, maxOffset } = store.queueRange(KILL9_TOPIC, queueId);
    expect(minOffset).toBe(0);
    let offset = 0;
    while (offset < maxOffset) {
      const batch = store.getMessage(KILL9_TOPIC, queueId, offset, 32);
      expect(batch.status).toBe('FOUND');
      for (const message of batch.messages) {
        expect(message.queueOffset).toBe(offset++);
        const check = checkRecord(message.record, 0, message.record.length, { expectedPhysicalOffset: message.physicalOffset });
        expect(check.kind).toBe('record');
        const record = decodeRecord(message.record, 0);
        const index = kill9IndexOf(record.body);
        expect(Buffer.from(record.body).equals(kill9Body(index)), `body of message ${index}`).toBe(true);
        expect([record.queueId, record.queueOffset, kill9QueueOf(index)]).toEqual([queueId, message.queueOffset, queueId]);
        recovered.set(`${queueId}/${message.queueOffset}`, { index, physicalOffset: message.physicalOffset });
      }
    }
  }
  for (const ack of acks) {
    const found = recovered.get(`${ack.queueId}/${ack.queueOffset}`);
    // A batch's answer carries only its first message's physical offset (-1 for the others).
    expect(found === undefined ? undefined : { index: found.index, physicalOffset: ack.physicalOffset === -1 ? -1 : found.physicalOffset }, `acknowledged message ${ack.index}`)
      .toEqual({ index: ack.index, physicalOffset: ack.physicalOffset });
  }
  // The recovered store takes new messages right after the survivors.
  const next = store.appendMessage({ topic: KILL9_TOPIC, queueId: 0, body: kill9Body(0) });
  expect(next).toMatchObject({ status: 'PUT_OK', queueOffset: store.queueRange(KILL9_TOPIC, 0).maxOffset });
  store.shutdown();
}

describe('kill -9 during SYNC_FLUSH appends', () => {
  for (const killAfter of [20, 250, 1_200]) {
    it(`loses no acknowledged message when killed after ${killAfter} acknowledgements`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kill9-'));
      dirs.push(dir);
      const acks = await appendThenKill(dir, killAfter);
      expect(fs.existsSync(path.join(dir, 'abort'))).toBe(true);
      verify(dir, acks);
    });
  }
});

describe('kill -9 during ASYNC_FLUSH appends', () => {
  // 300 appenders: the writer's turns hold hundreds of puts, so some run past their budget (see the writer).
  for (const killAfter of [300, 5_000]) {
    it(`loses no acknowledged message when killed after ${killAfter} acknowledgements`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kill9-async-'));
      dirs.push(dir);
      const acks = await appendThenKill(dir, killAfter, 'ASYNC_FLUSH', 300);
      expect(fs.existsSync(path.join(dir, 'abort'))).toBe(true);
      verify(dir, acks);
    });
  }
});

describe('kill -9 during ASYNC_FLUSH batches appended in place by send threads', () => {
  for (const killAfter of [400, 6_000]) {
    it(`loses no acknowledged message when killed after ${killAfter} acknowledged messages`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kill9-region-'));
      dirs.push(dir);
      const acks = await appendThenKill(dir, killAfter, 'ASYNC_FLUSH', 64, 'REGION');
      expect(fs.existsSync(path.join(dir, 'abort'))).toBe(true);
      verify(dir, acks);
    });
  }
});
