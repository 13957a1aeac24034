/**
 * HA between real actors over loopback: a master (commit-log-writer + ha-service) and a slave
 * (commit-log-writer + ha-client) in one ActorSystem, each store in its own temp dir with 256 KiB files.
 * Sends on the master appear byte-identical on the slave and readable there; a SYNC_MASTER put is
 * answered only once the slave acknowledged it, and SLAVE_NOT_AVAILABLE / FLUSH_SLAVE_TIMEOUT without
 * the slave; the slave refuses puts; a fenced master refuses them too; the slave reconnects after the
 * master's ha-service restarts, and follows `masterChanged`. A slave that says its brokerId in the
 * handshake is listed by it in the master's haState. The writer's lease (ManualClock, actors on the main
 * thread): puts accepted before the deadline, refused after it (even those queued before it), accepted
 * again after a renewal; a SYNC_MASTER put waiting for a slave when the lease runs out stays stored but is
 * answered FLUSH_SLAVE_TIMEOUT.
 *
 * Batching: one read of the writer is sent as several frames of at most haTransferBatchSize, back to back
 * (sendFrames, and the service against a writer double that records each read), a read at the log end
 * waits for new bytes; a slave that connects behind a master holding several files catches up through
 * reads that stop at file ends and merged appends, byte for byte.
 */
import type { BoundAnswer } from '../../src/actors/remoting-acceptor.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CommitLogFlusherArgs, CommitLogFlusherMessage } from '../../src/actors/commit-log-flusher.ts';
import type { BrokerRole, CommitLogWriterArgs, CommitLogWriterMessage, FlushAnswer, HaStateAnswer, LeaseAnswer, RoleAnswer, TruncateAnswer } from '../../src/actors/commit-log-writer.ts';
import { spawnHaClient, type HaClientArgs, type HaClientMessage, type HaClientState } from '../../src/actors/ha-client.ts';
import net from 'node:net';
import { type FrameSink, sendFrames, spawnHaService, type HaConnectionInfo, type HaServiceMessage } from '../../src/actors/ha-service.ts';
import { STORE_POOL_SIZES, spawnStore } from '../../src/actors/store-actors.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { type HaTransferFrame, TransferDecoder, encodeReportOffset } from '../../src/storage/ha-protocol.ts';
import { decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';
import type { GetMessageResult, PutMessageInput, PutMessageResult } from '../../src/storage/message-store.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { smallStoreSettings } from '../storage/fixtures/small-store.ts';
import { type MasterLogDoubleMessage, type MasterLogDump, masterLogDoubleSource } from './fixtures/ha-doubles.ts';

const MASTER_HOST = { address: '10.0.0.1', port: 10911 };
const SLAVE_HOST = { address: '10.0.0.2', port: 10911 };
const ASK_MS = 10_000;
/** Short HA intervals so heartbeats and housekeeping happen within a test. */
const HA_TIMING = { haSendHeartbeatIntervalMs: 200, haHousekeepingIntervalMs: 3_000 };

let system: ActorSystem | undefined;
let dirs: string[] = [];

beforeEach(async () => {
  system = await startTestSystem({ ...STORE_POOL_SIZES }, {}, { askTimeoutMs: ASK_MS });
});

afterEach(async () => {
  await system?.shutdown();
  system = undefined;
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

function ask<M, R>(ref: ActorRef<M>, message: M): Promise<R> {
  return system!.ask<M, R>(ref, message, ASK_MS);
}

async function writer(name: string, host: typeof MASTER_HOST, brokerRole: BrokerRole, haSyncTimeoutMs = 2_000): Promise<{ writer: ActorRef<CommitLogWriterMessage>; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ha-${name}-`));
  dirs.push(dir);
  const { writer } = await spawnStore(system!, { namePrefix: name, settings: { ...smallStoreSettings(dir, host), brokerRole, haSyncTimeoutMs } });
  return { writer, dir };
}

async function haService(masterWriter: ActorRef<CommitLogWriterMessage>, port = 0, name = 'ha-service'): Promise<{ service: ActorRef<HaServiceMessage>; port: number }> {
  const service = await spawnHaService(system!, { writer: masterWriter, host: '127.0.0.1', haListenPort: port, ...HA_TIMING }, { name });
  const bound = await ask<HaServiceMessage, BoundAnswer>(service, { type: 'port' });
  if (!('port' in bound)) throw new Error(bound.error);
  return { service, port: bound.port };
}

function haClient(slaveWriter: ActorRef<CommitLogWriterMessage>, port: number, identity: Pick<HaClientArgs, 'brokerId' | 'asyncLearner'> = {}): Promise<ActorRef<HaClientMessage>> {
  const args: HaClientArgs = { writer: slaveWriter, haMasterAddress: `127.0.0.1:${port}`, ...HA_TIMING, reconnectBackoffMinMs: 20, reconnectBackoffMaxMs: 200, ...identity };
  return spawnHaClient(system!, args, { name: `ha-client-${identity.brokerId ?? 'plain'}` });
}

function message(queueId: number, bodyBytes: number, seq: number): PutMessageInput {
  const body = Buffer.alloc(bodyBytes, seq % 256);
  body.write(`msg-${seq}`);
  return { topic: 'TopicHA', queueId, body, properties: encodeMessageProperties({ KEYS: `k${seq}`, TAGS: 'T' }), bornTimestampMs: 1_700_000_000_000 };
}

const put = (target: ActorRef<CommitLogWriterMessage>, input: PutMessageInput) => ask<CommitLogWriterMessage, PutMessageResult>(target, { type: 'put', message: input });
const haState = (target: ActorRef<CommitLogWriterMessage>) => ask<CommitLogWriterMessage, HaStateAnswer>(target, { type: 'haState' });

/** Waits until the slave's log ends where the master's does. */
async function caughtUp(master: ActorRef<CommitLogWriterMessage>, slave: ActorRef<CommitLogWriterMessage>): Promise<number> {
  const end = (await haState(master)).maxOffset;
  return pollUntil(`slave at ${end}`, async () => ((await haState(slave)).maxOffset === end ? end : undefined), 10_000, 10);
}

function commitLogFiles(dir: string): Map<string, Buffer> {
  const logDir = path.join(dir, 'commitlog');
  return new Map(fs.readdirSync(logDir).sort().map((name) => [name, fs.readFileSync(path.join(logDir, name))]));
}

async function bodies(target: ActorRef<CommitLogWriterMessage>, queueId: number): Promise<string[]> {
  const got = await ask<CommitLogWriterMessage, GetMessageResult>(target, { type: 'get', topic: 'TopicHA', queueId, queueOffset: 0, maxMsgNums: 32 });
  return got.messages.map((stored) => Buffer.from(decodeRecord(stored.record, 0).body).subarray(0, 12).toString('latin1'));
}

describe('HA service and client', () => {
  it('replicates sends byte for byte, across file ends, readable on the slave', async () => {
    const master = await writer('master', MASTER_HOST, 'ASYNC_MASTER');
    const slave = await writer('slave', SLAVE_HOST, 'SLAVE');
    const { port } = await haService(master.writer);
    await haClient(slave.writer, port);
    for (let seq = 0; seq < 40; seq++) expect((await put(master.writer, message(seq % 2, 10_000 + seq * 301, seq))).status).toBe('PUT_OK');
    const end = await caughtUp(master.writer, slave.writer);
    expect(end).toBeGreaterThan(2 * 256 * 1024);
    for (const target of [master.writer, slave.writer]) expect((await ask<CommitLogWriterMessage, FlushAnswer>(target, { type: 'flush' })).flushed).toBe(true);
    const masterFiles = commitLogFiles(master.dir);
    const slaveFiles = commitLogFiles(slave.dir);
    expect([...slaveFiles.keys()]).toEqual([...masterFiles.keys()]);
    for (const [name, bytes] of masterFiles) expect(slaveFiles.get(name)!.equals(bytes), name).toBe(true);
    for (const queueId of [0, 1]) expect(await bodies(slave.writer, queueId)).toEqual(await bodies(master.writer, queueId));
    expect((await bodies(slave.writer, 1))[0]).toMatch(/^msg-1/);
  });

  it('refuses puts on a slave, and on a master fenced to slave at run time', async () => {
    const slave = await writer('slave', SLAVE_HOST, 'SLAVE');
    expect((await put(slave.writer, message(0, 10, 1))).status).toBe('SERVICE_NOT_AVAILABLE');
    const master = await writer('master', MASTER_HOST, 'ASYNC_MASTER');
    expect((await put(master.writer, message(0, 10, 1))).status).toBe('PUT_OK');
    const second = await put(master.writer, message(0, 10, 2));
    expect(await ask<CommitLogWriterMessage, TruncateAnswer>(master.writer, { type: 'truncateTo', offset: second.physicalOffset })).toMatchObject({ ok: false, code: 'NOT_SLAVE' });
    expect(await ask<CommitLogWriterMessage, RoleAnswer>(master.writer, { type: 'fence', epoch: 3 })).toMatchObject({ ok: true, role: 'SLAVE', epoch: 3 });
    expect((await put(master.writer, message(0, 10, 2))).status).toBe('SERVICE_NOT_AVAILABLE');
    // The fenced old master cuts the tail the new master never had; its queue shrinks with it.
    expect(await ask<CommitLogWriterMessage, TruncateAnswer>(master.writer, { type: 'truncateTo', offset: second.physicalOffset })).toEqual({ ok: true, maxOffset: second.physicalOffset });
    expect(await bodies(master.writer, 0)).toHaveLength(1);
    expect(await ask<CommitLogWriterMessage, RoleAnswer>(master.writer, { type: 'setRole', role: 'ASYNC_MASTER', epoch: 2 })).toMatchObject({ ok: false, code: 'STALE_EPOCH' });
    expect(await ask<CommitLogWriterMessage, RoleAnswer>(master.writer, { type: 'setRole', role: 'ASYNC_MASTER', epoch: 4 })).toMatchObject({ ok: true });
    expect(await put(master.writer, message(0, 10, 3))).toMatchObject({ status: 'PUT_OK', queueOffset: 1, physicalOffset: second.physicalOffset });
  });

  it('answers a SYNC_MASTER put only after the slave acknowledged it, and not-available without the slave', async () => {
    const master = await writer('master', MASTER_HOST, 'SYNC_MASTER', 1_000);
    const slave = await writer('slave', SLAVE_HOST, 'SLAVE');
    // No slave yet: stored, but SLAVE_NOT_AVAILABLE.
    expect((await put(master.writer, message(0, 100, 0))).status).toBe('SLAVE_NOT_AVAILABLE');
    const { port } = await haService(master.writer);
    const client = await haClient(slave.writer, port);
    await pollUntil('slave in sync', async () => ((await haState(master.writer)).slaves.some((s) => s.inSync) ? true : undefined), 10_000, 10);
    for (let seq = 1; seq <= 10; seq++) {
      const result = await put(master.writer, message(0, 5_000, seq));
      expect(result.status).toBe('PUT_OK');
      const state = await haState(master.writer);
      expect(Math.max(...state.slaves.map((s) => s.ackedOffset))).toBeGreaterThanOrEqual(result.physicalOffset + result.wroteBytes);
    }
    expect((await ask<HaClientMessage, HaClientState>(client, { type: 'state' })).connected).toBe(true);
    await system!.stop(client);
    const status = await pollUntil('a put without the slave', async () => {
      const result = await put(master.writer, message(0, 100, 99));
      return result.status === 'PUT_OK' ? undefined : result.status;
    }, 10_000, 50);
    expect(['SLAVE_NOT_AVAILABLE', 'FLUSH_SLAVE_TIMEOUT']).toContain(status);
    await pollUntil('slave gone', async () => ((await haState(master.writer)).slaves.length === 0 ? true : undefined), 10_000, 20);
    expect((await put(master.writer, message(0, 100, 100))).status).toBe('SLAVE_NOT_AVAILABLE');
  });

  it('holds a SYNC_MASTER put until a slave\'s ack covers it, and times out to FLUSH_SLAVE_TIMEOUT', async () => {
    const master = await writer('master', MASTER_HOST, 'SYNC_MASTER', 500);
    expect((await put(master.writer, message(0, 100, 0))).status).toBe('SLAVE_NOT_AVAILABLE');
    // A slave claiming more than the master holds (a diverged old master) confirms nothing.
    system!.tell(master.writer, { type: 'haSlaveAck', slaveId: 'ahead', offset: 1 << 30 });
    expect((await put(master.writer, message(0, 100, 0))).status).toBe('SLAVE_NOT_AVAILABLE');
    expect((await haState(master.writer)).slaves).toEqual([]);
    const caught = (await haState(master.writer)).writtenOffset;
    system!.tell(master.writer, { type: 'haSlaveAck', slaveId: 'slave-1', offset: caught });
    system!.tell(master.writer, { type: 'haSlaveAck', slaveId: 'slave-1', offset: caught });
    await pollUntil('slave in sync', async () => ((await haState(master.writer)).slaves[0]?.inSync === true ? true : undefined));
    let answered: PutMessageResult | undefined;
    const pending = put(master.writer, message(0, 100, 1)).then((result) => (answered = result));
    // The writer has handled the put once it answers a later ask; the put must still be waiting.
    await pollUntil('put held', async () => ((await haState(master.writer)).haWaiters === 1 ? true : undefined));
    expect(answered).toBeUndefined();
    const end = (await haState(master.writer)).maxOffset;
    system!.tell(master.writer, { type: 'haSlaveAck', slaveId: 'slave-1', offset: end - 1 });
    expect((await haState(master.writer)).haWaiters).toBe(1);
    system!.tell(master.writer, { type: 'haSlaveAck', slaveId: 'slave-1', offset: end });
    expect((await pending).status).toBe('PUT_OK');
    // No further ack: stored, answered FLUSH_SLAVE_TIMEOUT after haSyncTimeoutMs.
    expect((await put(master.writer, message(0, 100, 2))).status).toBe('FLUSH_SLAVE_TIMEOUT');
  });

  it('reconnects after the master\'s ha-service restarts, and follows masterChanged', async () => {
    const master = await writer('master', MASTER_HOST, 'ASYNC_MASTER');
    const slave = await writer('slave', SLAVE_HOST, 'SLAVE');
    const first = await haService(master.writer);
    const client = await haClient(slave.writer, first.port);
    for (let seq = 0; seq < 5; seq++) await put(master.writer, message(0, 1_000, seq));
    await caughtUp(master.writer, slave.writer);
    await system!.stop(first.service);
    for (let seq = 5; seq < 10; seq++) await put(master.writer, message(0, 1_000, seq));
    const connectsBefore = (await ask<HaClientMessage, HaClientState>(client, { type: 'state' })).connects;
    await haService(master.writer, first.port, 'ha-service-2');
    await caughtUp(master.writer, slave.writer);
    expect((await ask<HaClientMessage, HaClientState>(client, { type: 'state' })).connects).toBeGreaterThan(connectsBefore);
    // A new master address (a third store on an ephemeral port that already holds the same log).
    const moved = await haService(master.writer, 0, 'ha-service-3');
    expect(await ask<HaClientMessage, boolean>(client, { type: 'masterChanged', haAddress: `127.0.0.1:${moved.port}` })).toBe(true);
    for (let seq = 10; seq < 15; seq++) await put(master.writer, message(0, 1_000, seq));
    await caughtUp(master.writer, slave.writer);
    expect(await bodies(slave.writer, 0)).toEqual(await bodies(master.writer, 0));
    expect(await bodies(slave.writer, 0)).toHaveLength(15);
  });
});

describe('slave identity on the HA connection', () => {
  it('lists each slave by the brokerId of its handshake, and follows an identity told at run time', async () => {
    const master = await writer('master', MASTER_HOST, 'SYNC_MASTER', 1_000);
    const slave = await writer('slave', SLAVE_HOST, 'SLAVE');
    const plainSlave = await writer('plain', { address: '10.0.0.3', port: 10911 }, 'SLAVE');
    const { service, port } = await haService(master.writer);
    const client = await haClient(slave.writer, port, { brokerId: 3 });
    await haClient(plainSlave.writer, port);
    await put(master.writer, message(0, 1_000, 0));
    const listed = await pollUntil('both slaves acked', async () => {
      const slaves = (await haState(master.writer)).slaves;
      return slaves.length === 2 && slaves.every((s) => s.inSync) ? slaves : undefined;
    }, 10_000, 10);
    const identified = listed.filter((s) => s.brokerId !== undefined);
    expect(identified).toEqual([expect.objectContaining({ brokerId: 3, asyncLearner: false, inSync: true })]);
    // The plain slave keeps RocketMQ's default protocol and is known by address only.
    expect(listed.filter((s) => s.brokerId === undefined)).toHaveLength(1);
    const connections = await ask<HaServiceMessage, HaConnectionInfo[]>(service, { type: 'connections' });
    expect(connections.map((c) => c.brokerId).sort()).toEqual([3, undefined]);
    expect((await ask<HaClientMessage, HaClientState>(client, { type: 'state' })).identity).toEqual({ brokerId: 3, asyncLearner: false });

    // Learned later (the replicas manager's case): the client reconnects with the new handshake.
    expect(await ask<HaClientMessage, boolean>(client, { type: 'identity', brokerId: -1 })).toBe(false);
    expect(await ask<HaClientMessage, boolean>(client, { type: 'identity', brokerId: 5, asyncLearner: true })).toBe(true);
    const learner = await pollUntil('slave known as 5', async () => {
      const slaves = (await haState(master.writer)).slaves;
      return slaves.some((s) => s.brokerId === 3) ? undefined : slaves.find((s) => s.brokerId === 5);
    }, 10_000, 10);
    // An async learner is never in sync, so it alone cannot answer a SYNC_MASTER put.
    expect(learner).toMatchObject({ brokerId: 5, asyncLearner: true, inSync: false });
  });
});

describe('writer lease', () => {
  const LEASE_MS = 1_000;
  let manual: ActorSystem | undefined;
  let clock: ManualClock;

  beforeEach(async () => {
    clock = new ManualClock();
    manual = await startTestSystem({}, { clock }, { askTimeoutMs: 60_000 });
  });

  afterEach(async () => {
    await manual?.shutdown();
    manual = undefined;
  });

  /** A writer and flusher on the main thread, so the ManualClock is the writer's clock. */
  async function mainWriter(brokerRole: BrokerRole): Promise<ActorRef<CommitLogWriterMessage>> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-lease-'));
    dirs.push(dir);
    const flusher = await manual!.spawn<CommitLogFlusherMessage, CommitLogFlusherArgs>({
      name: 'lease-flusher',
      behavior: { module: new URL('../../src/actors/commit-log-flusher.ts', import.meta.url).href, export: 'commitLogFlusher' },
      args: { rootDir: dir, fdCacheMax: 8 },
      pool: 'main',
    });
    return manual!.spawn<CommitLogWriterMessage, CommitLogWriterArgs>({
      name: 'lease-writer',
      behavior: { module: new URL('../../src/actors/commit-log-writer.ts', import.meta.url).href, export: 'commitLogWriter' },
      args: { ...smallStoreSettings(dir, MASTER_HOST, { brokerRole, haSyncTimeoutMs: 30_000 }), flusher },
      pool: 'main',
    });
  }

  const monotonicMs = (): number => Number(clock.monotonicNs() / 1_000_000n);
  const askMain = <R>(target: ActorRef<CommitLogWriterMessage>, request: CommitLogWriterMessage): Promise<R> => manual!.ask<CommitLogWriterMessage, R>(target, request, 60_000);
  const putMain = (target: ActorRef<CommitLogWriterMessage>, seq: number) => askMain<PutMessageResult>(target, { type: 'put', message: message(0, 100, seq) });

  it('takes puts before the deadline, refuses them after, and takes them again after a renewal', async () => {
    const target = await mainWriter('ASYNC_MASTER');
    // No lease: a broker outside controller mode is not affected however time moves.
    clock.advance(10 * LEASE_MS);
    expect((await putMain(target, 0)).status).toBe('PUT_OK');
    const granted = await askMain<RoleAnswer>(target, { type: 'setRole', role: 'ASYNC_MASTER', epoch: 1, leaseUntilMs: monotonicMs() + LEASE_MS });
    expect(granted).toMatchObject({ ok: true, role: 'ASYNC_MASTER', epoch: 1 });
    clock.advance(LEASE_MS - 1);
    expect((await putMain(target, 1)).status).toBe('PUT_OK');
    const endBefore = (await askMain<HaStateAnswer>(target, { type: 'haState' })).maxOffset;
    clock.advance(1);
    const refused = await putMain(target, 2);
    expect(refused).toMatchObject({ status: 'SERVICE_NOT_AVAILABLE', physicalOffset: -1 });
    expect(refused.remark).toMatch(/lease/);
    // Nothing was appended for the refused put.
    expect((await askMain<HaStateAnswer>(target, { type: 'haState' })).maxOffset).toBe(endBefore);
    const batch = await askMain<PutMessageResult[]>(target, { type: 'putBatch', messages: [message(0, 10, 3), message(1, 10, 4)] });
    expect(batch.map((result) => result.status)).toEqual(['SERVICE_NOT_AVAILABLE', 'SERVICE_NOT_AVAILABLE']);

    expect(await askMain<LeaseAnswer>(target, { type: 'lease', leaseUntilMs: Number.NaN })).toMatchObject({ ok: false, code: 'BAD_LEASE' });
    const renewed = monotonicMs() + LEASE_MS;
    expect(await askMain<LeaseAnswer>(target, { type: 'lease', leaseUntilMs: renewed })).toEqual({ ok: true, leaseUntilMs: renewed });
    expect((await putMain(target, 5)).status).toBe('PUT_OK');
    expect((await askMain<HaStateAnswer>(target, { type: 'haState' })).leaseUntilMs).toBe(renewed);
    // A role change without leaseUntilMs keeps the lease; null removes it.
    await askMain<RoleAnswer>(target, { type: 'setRole', role: 'ASYNC_MASTER', epoch: 2 });
    clock.advance(LEASE_MS);
    expect((await putMain(target, 6)).status).toBe('SERVICE_NOT_AVAILABLE');
    expect(await askMain<LeaseAnswer>(target, { type: 'lease', leaseUntilMs: null })).toEqual({ ok: true, leaseUntilMs: null });
    expect((await putMain(target, 7)).status).toBe('PUT_OK');
  });

  it('refuses a put that was queued before the lease ran out but handled after', async () => {
    const target = await mainWriter('ASYNC_MASTER');
    await askMain<RoleAnswer>(target, { type: 'setRole', role: 'ASYNC_MASTER', epoch: 1, leaseUntilMs: monotonicMs() + LEASE_MS });
    // Queued now, in the writer's mailbox; the clock passes the deadline before the writer's turn comes.
    const queued = [putMain(target, 0), putMain(target, 1)];
    clock.advance(LEASE_MS);
    for (const result of await Promise.all(queued)) expect(result.status).toBe('SERVICE_NOT_AVAILABLE');
  });

  it('answers FLUSH_SLAVE_TIMEOUT to a put taken under the lease but written after it ran out, and keeps it stored', async () => {
    // A master frozen between appending a put and writing it must not answer PUT_OK once it resumes
    // past its lease: another broker may have taken over without these bytes.
    const target = await mainWriter('ASYNC_MASTER');
    await askMain<RoleAnswer>(target, { type: 'setRole', role: 'ASYNC_MASTER', epoch: 1, leaseUntilMs: monotonicMs() + LEASE_MS });
    // In the mailbox in this order: the put is taken under the lease, then the lease runs out (a renewal
    // to a deadline already past), then the writer's tick writes the put's bytes.
    const pending = putMain(target, 0);
    const expired = askMain<LeaseAnswer>(target, { type: 'lease', leaseUntilMs: monotonicMs() });
    const result = await pending;
    expect(await expired).toMatchObject({ ok: true });
    expect(result).toMatchObject({ status: 'FLUSH_SLAVE_TIMEOUT' });
    expect(result.physicalOffset).toBeGreaterThanOrEqual(0);
    const stored = await askMain<GetMessageResult>(target, { type: 'get', topic: 'TopicHA', queueId: 0, queueOffset: 0, maxMsgNums: 4 });
    expect(stored.messages.map((m) => m.physicalOffset)).toEqual([result.physicalOffset]);
  });

  it('answers FLUSH_SLAVE_TIMEOUT to a SYNC_MASTER put whose slave ack comes after the lease ran out, and keeps it stored', async () => {
    const target = await mainWriter('SYNC_MASTER');
    await askMain<RoleAnswer>(target, { type: 'setRole', role: 'SYNC_MASTER', epoch: 1, leaseUntilMs: monotonicMs() + LEASE_MS });
    const caught = (await askMain<HaStateAnswer>(target, { type: 'haState' })).writtenOffset;
    manual!.tell(target, { type: 'haSlaveAck', slaveId: 'slave-1', offset: caught, brokerId: 2 });
    manual!.tell(target, { type: 'haSlaveAck', slaveId: 'slave-1', offset: caught, brokerId: 2 });
    expect((await askMain<HaStateAnswer>(target, { type: 'haState' })).slaves).toEqual([{ slaveId: 'slave-1', brokerId: 2, asyncLearner: false, ackedOffset: caught, inSync: true }]);
    let answered: PutMessageResult | undefined;
    const pending = putMain(target, 0).then((result) => (answered = result));
    expect((await askMain<HaStateAnswer>(target, { type: 'haState' })).haWaiters).toBe(1);
    expect(answered).toBeUndefined();
    const end = (await askMain<HaStateAnswer>(target, { type: 'haState' })).maxOffset;
    clock.advance(LEASE_MS);
    manual!.tell(target, { type: 'haSlaveAck', slaveId: 'slave-1', offset: end, brokerId: 2 });
    const result = await pending;
    expect(result.status).toBe('FLUSH_SLAVE_TIMEOUT');
    const stored = await askMain<GetMessageResult>(target, { type: 'get', topic: 'TopicHA', queueId: 0, queueOffset: 0, maxMsgNums: 4 });
    expect(stored.messages.map((m) => m.physicalOffset)).toEqual([result.physicalOffset]);
  });
});

/** A socket stand-in that records what sendFrames does with it. */
function recordingSink(): { sink: FrameSink; calls: string[]; written: Uint8Array[] } {
  const calls: string[] = [];
  const written: Uint8Array[] = [];
  const sink = {
    cork: () => void calls.push('cork'),
    uncork: () => void calls.push('uncork'),
    write: (chunk: Uint8Array) => {
      calls.push('write');
      written.push(Uint8Array.from(chunk));
      return true;
    },
  } as unknown as FrameSink;
  return { sink, calls, written };
}

function pattern(length: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed) % 253);
}

describe('several frames per read', () => {
  it('sendFrames writes consecutive frames of at most the batch size in one corked write', () => {
    const bytes = pattern(10_000);
    const { sink, calls, written } = recordingSink();
    expect(sendFrames(sink, 1_000_000, bytes, 4_096)).toBe(3);
    expect(calls[0]).toBe('cork');
    expect(calls.at(-1)).toBe('uncork');
    expect(calls.filter((call) => call === 'write')).toHaveLength(6);
    const frames = new TransferDecoder(4_096).push(Buffer.concat(written));
    expect(frames.map((f) => [f.physicalOffset, f.body.length])).toEqual([[1_000_000, 4_096], [1_004_096, 4_096], [1_008_192, 1_808]]);
    expect(Buffer.concat(frames.map((f) => f.body)).equals(bytes)).toBe(true);
    // An exact multiple of the batch size ends without an empty frame (which a slave would take for a heartbeat).
    const exact = recordingSink();
    expect(sendFrames(exact.sink, 0, pattern(8_192), 4_096)).toBe(2);
    expect(() => sendFrames(exact.sink, 0, new Uint8Array(0), 4_096)).toThrow();
  });

  it('asks the writer for many frames at once and sends them all; a read at the end waits for new bytes', async () => {
    const FRAME = 4_096;
    const READ = 64 * 1024;
    const log = pattern(300_000);
    const writerDouble = await system!.spawn<MasterLogDoubleMessage, { log: Uint8Array }>({ name: 'master-log', behavior: masterLogDoubleSource, args: { log }, pool: 'main' });
    const service = await spawnHaService(system!, {
      writer: writerDouble as unknown as ActorRef<CommitLogWriterMessage>,
      host: '127.0.0.1',
      haListenPort: 0,
      haTransferBatchSize: FRAME,
      readBytesMax: READ,
      haSendHeartbeatIntervalMs: 2_000,
      haHousekeepingIntervalMs: 10_000,
    });
    const bound = await ask<HaServiceMessage, BoundAnswer>(service, { type: 'port' });
    if (!('port' in bound)) throw new Error(bound.error);
    const frames: HaTransferFrame[] = [];
    const decoder = new TransferDecoder(FRAME);
    decoder.expectOffset(0);
    const slave = net.connect({ host: '127.0.0.1', port: bound.port });
    try {
      slave.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk).filter((f) => f.body.length > 0)));
      slave.write(encodeReportOffset(0));
      const received = (): number => frames.reduce((sum, f) => sum + f.body.length, 0);
      await pollUntil('the whole log', () => (received() === log.length ? true : undefined), 10_000, 5);
      expect(frames.every((f) => f.body.length <= FRAME)).toBe(true);
      expect(frames).toHaveLength(Math.ceil(READ / FRAME) * 4 + Math.ceil((log.length - 4 * READ) / FRAME));
      expect(Buffer.concat(frames.map((f) => f.body)).equals(log)).toBe(true);
      const reads = (await ask<MasterLogDoubleMessage, MasterLogDump>(writerDouble, { type: 'dump' })).reads;
      // Five reads carried the 74 frames; each asked for a read's worth, not one frame's.
      expect(reads.filter((read) => read.answeredBytes > 0).map((read) => read.answeredBytes)).toEqual([READ, READ, READ, READ, log.length - 4 * READ]);
      expect(reads.every((read) => read.maxBytes === READ)).toBe(true);

      // The read at the end waits in the writer; new bytes answer it and go out as frames too.
      const more = pattern(10_000, 5);
      await ask<MasterLogDoubleMessage, boolean>(writerDouble, { type: 'grow', bytes: more });
      await pollUntil('the new bytes', () => (received() === log.length + more.length ? true : undefined), 10_000, 5);
      expect(frames.slice(-3).map((f) => [f.physicalOffset, f.body.length])).toEqual([[300_000, 4_096], [304_096, 4_096], [308_192, 1_808]]);
      slave.write(encodeReportOffset(log.length + more.length));
      await pollUntil('the ack', async () => ((await ask<MasterLogDoubleMessage, MasterLogDump>(writerDouble, { type: 'dump' })).acks.includes(310_000) ? true : undefined));
    } finally {
      slave.destroy();
    }
  });

  it('catches up a slave that connects behind several files, in merged appends, byte for byte', async () => {
    const master = await writer('master', MASTER_HOST, 'ASYNC_MASTER');
    const slave = await writer('slave', SLAVE_HOST, 'SLAVE');
    for (let seq = 0; seq < 60; seq++) expect((await put(master.writer, message(seq % 2, 20_000 + seq * 97, seq))).status).toBe('PUT_OK');
    const service = await spawnHaService(system!, { writer: master.writer, host: '127.0.0.1', haListenPort: 0, haTransferBatchSize: 8_192, ...HA_TIMING });
    const bound = await ask<HaServiceMessage, BoundAnswer>(service, { type: 'port' });
    if (!('port' in bound)) throw new Error(bound.error);
    const client = await haClient(slave.writer, bound.port);
    const end = await caughtUp(master.writer, slave.writer);
    expect(end).toBeGreaterThan(4 * 256 * 1024);
    for (const target of [master.writer, slave.writer]) expect((await ask<CommitLogWriterMessage, FlushAnswer>(target, { type: 'flush' })).flushed).toBe(true);
    const masterFiles = commitLogFiles(master.dir);
    const slaveFiles = commitLogFiles(slave.dir);
    expect([...slaveFiles.keys()]).toEqual([...masterFiles.keys()]);
    for (const [name, bytes] of masterFiles) expect(slaveFiles.get(name)!.equals(bytes), name).toBe(true);
    for (const queueId of [0, 1]) expect(await bodies(slave.writer, queueId)).toEqual(await bodies(master.writer, queueId));
    const state = await ask<HaClientMessage, HaClientState>(client, { type: 'state' });
    // Every frame is at most 8 KiB, so the log took at least end / 8 KiB frames; appends merged them.
    expect(state.framesAppended).toBeGreaterThanOrEqual(Math.ceil(end / 8_192));
    expect(state.appends).toBeLessThan(state.framesAppended);
    expect(state.reportedOffset).toBe(end);
  });
});
