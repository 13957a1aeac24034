import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controllerRoutes, spawnController, type ControllerMessage, type ControllerRef, type ControllerStateReply } from '../../src/actors/controller.ts';
import type { BoundAnswer, RemotingAcceptorArgs, RemotingAcceptorMessage } from '../../src/actors/remoting-acceptor.ts';
import type { RemotingRequestMessage } from '../../src/actors/remoting-routes.ts';
import {
  REPLICAS_MANAGER_REQUEST_CODES,
  spawnReplicasManager,
  type HaSlaveView,
  type ReplicasManagerMessage,
  type ReplicasManagerRef,
  type ReplicasManagerState,
  type ReplicasRoleChangedMessage,
} from '../../src/actors/replicas-manager.ts';
import type { CommitLogWriterMessage, HaStateAnswer } from '../../src/actors/commit-log-writer.ts';
import { spawnHaClient, type HaClientMessage } from '../../src/actors/ha-client.ts';
import { spawnHaService, type HaServiceMessage } from '../../src/actors/ha-service.ts';
import { STORE_POOL_SIZES, spawnStore } from '../../src/actors/store-actors.ts';
import { decodeMessageProperties, decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';
import type { GetMessageResult, PutMessageInput, PutMessageResult } from '../../src/storage/message-store.ts';
import { smallStoreSettings } from '../storage/fixtures/small-store.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { readEpochFile } from '../../src/storage/epoch-file.ts';
import { BROKER_IDENTITY_FILES } from '../../src/storage/broker-identity.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';
import {
  haClientDoubleSource,
  writerDoubleSource,
  type HaClientDoubleMessage,
  type WriterDoubleMessage,
  type WriterDump,
  type WriterEvent,
} from './fixtures/replicas-doubles.ts';

const acceptorBehavior = { module: new URL('../../src/actors/remoting-acceptor.ts', import.meta.url).href, export: 'remotingAcceptor' };
const CLUSTER = 'DefaultCluster';
const BROKER = 'broker-a';

type Broker = {
  readonly index: number;
  readonly dir: string;
  readonly brokerAddr: string;
  readonly haServerAddr: string;
  readonly writer: ActorRef<WriterDoubleMessage>;
  readonly haClient: ActorRef<HaClientDoubleMessage>;
  readonly subscriber: ActorRef<AcceptorRecorderMessage>;
  readonly acceptor: ActorRef<RemotingAcceptorMessage>;
  manager: ReplicasManagerRef;
};

async function startAcceptor(system: ActorSystem, name: string, server: RemotingAcceptorArgs['server']): Promise<{ ref: ActorRef<RemotingAcceptorMessage>; port: number }> {
  const ref = await system.spawn<RemotingAcceptorMessage, RemotingAcceptorArgs>({
    name,
    behavior: acceptorBehavior,
    args: { server, host: '127.0.0.1', port: 0, frameMaxBytes: 16 * 1024 * 1024, connectionsMax: 64 },
    pool: 'main',
  });
  const bound = await system.ask<RemotingAcceptorMessage, BoundAnswer>(ref, { type: 'port' });
  if (!('port' in bound)) throw new Error(bound.error);
  return { ref, port: bound.port };
}

/** A real controller behind a real acceptor, and brokers made of a replicas manager and doubles. */
class Cluster {
  readonly system: ActorSystem;
  readonly controller: ControllerRef;
  readonly controllerAddr: string;
  readonly controllerAcceptor: ActorRef<RemotingAcceptorMessage>;
  readonly dirs: string[] = [];

  private constructor(system: ActorSystem, controller: ControllerRef, controllerAcceptor: ActorRef<RemotingAcceptorMessage>, controllerAddr: string) {
    this.system = system;
    this.controller = controller;
    this.controllerAcceptor = controllerAcceptor;
    this.controllerAddr = controllerAddr;
  }

  static async start(system: ActorSystem, enableElectUncleanMaster = false): Promise<Cluster> {
    const controller = await spawnController(system, { scanNotActiveBrokerIntervalMs: 200, enableElectUncleanMaster }, { pool: 'main', name: 'controller' });
    const acceptor = await startAcceptor(system, 'controller-acceptor', 'controller');
    system.tell<RemotingAcceptorMessage>(acceptor.ref, { type: 'useRoutes', routes: controllerRoutes(controller) });
    return new Cluster(system, controller, acceptor.ref, `127.0.0.1:${acceptor.port}`);
  }

  tempDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-replicas-'));
    this.dirs.push(dir);
    return dir;
  }

  /** A broker of doubles: a writer double whose log ends at `maxOffset` and an ha-client double. */
  async broker(index: number, maxOffset: number): Promise<Broker> {
    const writer = await this.system.spawn<WriterDoubleMessage, { maxOffset: number }>({ name: `writer-${index}`, behavior: writerDoubleSource, args: { maxOffset }, pool: 'main' });
    const haClient = await this.system.spawn<HaClientDoubleMessage, null>({ name: `ha-client-${index}`, behavior: haClientDoubleSource, args: null, pool: 'main' });
    return this.brokerWith(index, this.tempDir(), writer, haClient, `127.0.0.1:${20_000 + index}`);
  }

  /** A broker over the given writer and ha-client (doubles, or the real actors). */
  async brokerWith(index: number, storeDir: string, writer: ActorRef<WriterDoubleMessage>, haClient: ActorRef<HaClientDoubleMessage>, haServerAddr: string): Promise<Broker> {
    const system = this.system;
    const subscriber = await system.spawn<AcceptorRecorderMessage, null>({ name: `subscriber-${index}`, behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const acceptor = await startAcceptor(system, `broker-acceptor-${index}`, 'broker');
    const broker: Broker = {
      index,
      dir: storeDir,
      brokerAddr: `127.0.0.1:${acceptor.port}`,
      haServerAddr,
      writer,
      haClient,
      subscriber,
      acceptor: acceptor.ref,
      manager: undefined as unknown as ReplicasManagerRef,
    };
    await this.startManager(broker, 0);
    return broker;
  }

  /** Starts (or restarts) a broker's replicas manager over the same store, writer and ha-client. */
  async startManager(broker: Broker, generation: number): Promise<void> {
    broker.manager = await spawnReplicasManager(
      this.system,
      {
        storePathRootDir: broker.dir,
        brokerClusterName: CLUSTER,
        brokerName: BROKER,
        brokerAddr: broker.brokerAddr,
        haServerAddr: broker.haServerAddr,
        controllerAddr: this.controllerAddr,
        brokerRole: 'SYNC_MASTER',
        writer: broker.writer as unknown as ActorRef<CommitLogWriterMessage>,
        haClient: broker.haClient as unknown as ActorRef<HaClientMessage>,
        onRoleChanged: [broker.subscriber as unknown as ActorRef<ReplicasRoleChangedMessage>],
        brokerHeartbeatIntervalMs: 100,
        controllerHeartBeatTimeoutMs: 1_500,
        leaseSafetyMarginMs: 200,
        sendHeartbeatTimeoutMs: 500,
        syncBrokerMetadataPeriodMs: 300,
        checkSyncStateSetPeriodMs: 200,
        registerRetryIntervalMs: 200,
        transitionRetryIntervalMs: 100,
        requestTimeoutMs: 1_000,
      },
      { pool: 'main', name: `replicas-manager-${broker.index}-${generation}` },
    );
    const byCode: Record<number, readonly ActorRef<RemotingRequestMessage>[]> = {};
    for (const code of REPLICAS_MANAGER_REQUEST_CODES) byCode[code] = [broker.manager];
    this.system.tell<RemotingAcceptorMessage>(broker.acceptor, { type: 'useRoutes', routes: { byCode } });
  }

  state(broker: Broker): Promise<ReplicasManagerState> {
    return this.system.ask<ReplicasManagerMessage, ReplicasManagerState>(broker.manager, { type: 'state' });
  }

  until(broker: Broker, what: string, check: (state: ReplicasManagerState) => boolean, timeoutMs = 8_000): Promise<ReplicasManagerState> {
    return pollUntil(what, async () => {
      const state = await this.state(broker);
      return check(state) ? state : undefined;
    }, timeoutMs, 20);
  }

  writer(broker: Broker): Promise<WriterDump> {
    return this.system.ask<WriterDoubleMessage, WriterDump>(broker.writer, { type: 'dump' });
  }

  haTargets(broker: Broker): Promise<(string | null)[]> {
    return this.system.ask<HaClientDoubleMessage, (string | null)[]>(broker.haClient, { type: 'dump' });
  }

  async roleChanges(broker: Broker): Promise<ReplicasRoleChangedMessage[]> {
    return (await this.system.ask<AcceptorRecorderMessage, unknown[]>(broker.subscriber, { type: 'dump' })) as ReplicasRoleChangedMessage[];
  }

  configure(broker: Broker, change: { maxOffset?: number; slaves?: readonly HaSlaveView[] }): Promise<boolean> {
    return this.system.ask<WriterDoubleMessage, boolean>(broker.writer, { type: 'configure', ...change });
  }

  controllerState(): Promise<ControllerStateReply> {
    return this.system.ask<ControllerMessage, ControllerStateReply>(this.controller, { type: 'state' });
  }
}

/** The role events after the writer's first `index` ones, as compact strings. */
function eventsFrom(events: readonly WriterEvent[], index: number): string[] {
  return events.slice(index).map((event) => {
    switch (event.type) {
      case 'fence':
        return `fence ${event.epoch}`;
      case 'setRole':
        return `${event.role} ${event.epoch}`;
      case 'truncateTo':
        return `truncate ${event.offset}`;
    }
  });
}

describe('ReplicasManager with a real controller', () => {
  let system: ActorSystem | undefined;
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
    for (const dir of cluster?.dirs.splice(0) ?? []) fs.rmSync(dir, { recursive: true, force: true });
    cluster = undefined;
  });

  it('elects, follows, fails over and truncates a returning old master to the consistent point', async () => {
    system = await startTestSystem({});
    const c = (cluster = await Cluster.start(system));

    // The first broker gets id 1, is elected master with epoch 1 and starts epoch 1 at its log end.
    const a = await c.broker(1, 1_000);
    const aMaster = await c.until(a, 'broker 1 master', (s) => s.role === 'SYNC_MASTER' && s.writerOpen);
    expect(aMaster).toMatchObject({ brokerControllerId: 1, masterEpoch: 1, appliedEpoch: 1, masterBrokerId: 1 });
    expect(readEpochFile(nodeStorageFs, a.dir)).toEqual([{ epoch: 1, startOffset: 1_000 }]);
    expect(JSON.parse(fs.readFileSync(path.join(a.dir, BROKER_IDENTITY_FILES.applied), 'utf8'))).toMatchObject({ brokerId: 1, brokerName: BROKER });
    // Fenced from the start (the writer's own epoch), then fenced under epoch 1, then opened: in that order.
    expect(eventsFrom((await c.writer(a)).events, 0)).toEqual(['fence 0', 'fence 1', 'SYNC_MASTER 1']);
    expect(await c.roleChanges(a)).toEqual([
      { type: 'roleChanged', role: 'SYNC_MASTER', brokerId: 0, masterAddress: a.brokerAddr, masterHaAddress: a.haServerAddr, masterEpoch: 1 },
    ]);

    // The second registers as slave (id 2): it asks the master for its epochs and HA address and follows.
    const b = await c.broker(2, 0);
    const bSlave = await c.until(b, 'broker 2 slave', (s) => s.role === 'SLAVE' && s.appliedEpoch === 1);
    expect(bSlave).toMatchObject({ brokerControllerId: 2, masterBrokerId: 1, masterAddress: a.brokerAddr, masterHaAddress: a.haServerAddr, writerOpen: false });
    expect(await c.haTargets(b)).toEqual([null, a.haServerAddr]);
    expect(readEpochFile(nodeStorageFs, b.dir)).toEqual([{ epoch: 1, startOffset: 1_000 }]);
    expect((await c.writer(b)).role).toBe('SLAVE');
    expect(await c.roleChanges(b)).toEqual([
      { type: 'roleChanged', role: 'SLAVE', brokerId: 2, masterAddress: a.brokerAddr, masterHaAddress: a.haServerAddr, masterEpoch: 1 },
    ]);

    // The slave copies up to 1200 while the master writes on to 1500; the master sees it in sync and
    // adds it to the SyncStateSet through the controller.
    await c.configure(b, { maxOffset: 1_200 });
    await c.configure(a, { maxOffset: 1_500, slaves: [{ slaveId: 'b', brokerId: 2, ackedOffset: 1_200, inSync: true }] });
    await c.until(a, 'SyncStateSet {1, 2}', (s) => s.syncStateSet.join() === '1,2' && s.syncStateSetEpoch === 2);
    expect((await c.controllerState()).metadata.brokerSets[0]).toMatchObject({ syncStateSet: [1, 2], masterEpoch: 1 });

    // The master dies (its manager stops: no more heartbeats, its connection closes): broker 2 is elected
    // with epoch 2, fences under 2, starts epoch 2 at its log end, and only then opens.
    const bEventsBefore = (await c.writer(b)).events.length;
    await system.stop(a.manager);
    const bMaster = await c.until(b, 'broker 2 master', (s) => s.role === 'SYNC_MASTER' && s.writerOpen);
    expect(bMaster).toMatchObject({ masterEpoch: 2, appliedEpoch: 2, masterBrokerId: 2, masterAddress: b.brokerAddr });
    expect(eventsFrom((await c.writer(b)).events, bEventsBefore)).toEqual(['fence 2', 'SYNC_MASTER 2']);
    expect(readEpochFile(nodeStorageFs, b.dir)).toEqual([
      { epoch: 1, startOffset: 1_000 },
      { epoch: 2, startOffset: 1_200 },
    ]);
    expect((await c.roleChanges(b)).at(-1)).toEqual({ type: 'roleChanged', role: 'SYNC_MASTER', brokerId: 0, masterAddress: b.brokerAddr, masterHaAddress: b.haServerAddr, masterEpoch: 2 });

    // The old master comes back over its old store and its still-open writer: it is fenced, cuts its log
    // to the consistent point (1200: where epoch 2 began on the new master) and follows broker 2.
    const aEventsBefore = (await c.writer(a)).events.length;
    await c.startManager(a, 1);
    const aSlave = await c.until(a, 'broker 1 slave of broker 2', (s) => s.role === 'SLAVE' && s.appliedEpoch === 2);
    expect(aSlave).toMatchObject({ brokerControllerId: 1, masterBrokerId: 2, masterHaAddress: b.haServerAddr, writerOpen: false });
    const aWriter = await c.writer(a);
    expect(eventsFrom(aWriter.events, aEventsBefore)).toEqual(['fence 1', 'fence 2', 'truncate 1200']);
    expect(aWriter).toMatchObject({ role: 'SLAVE', epoch: 2, maxOffset: 1_200 });
    expect((await c.haTargets(a)).slice(-2)).toEqual([null, b.haServerAddr]);
    expect(readEpochFile(nodeStorageFs, a.dir)).toEqual([
      { epoch: 1, startOffset: 1_000 },
      { epoch: 2, startOffset: 1_200 },
    ]);
    expect((await c.roleChanges(a)).at(-1)).toEqual({ type: 'roleChanged', role: 'SLAVE', brokerId: 1, masterAddress: b.brokerAddr, masterHaAddress: b.haServerAddr, masterEpoch: 2 });
  }, 30_000);

  it('stops acknowledging when the controller cannot be reached for the heartbeat timeout', async () => {
    system = await startTestSystem({});
    const c = (cluster = await Cluster.start(system));
    const a = await c.broker(1, 500);
    await c.until(a, 'broker 1 master', (s) => s.role === 'SYNC_MASTER' && s.writerOpen);
    const before = (await c.writer(a)).events.length;
    // The controller's acceptor goes away: heartbeats fail, the lease (1500 - 200 ms) runs out.
    await system.stop(c.controllerAcceptor);
    const suspect = await c.until(a, 'broker 1 fenced by its lease', (s) => s.suspect && !s.writerOpen, 5_000);
    expect(suspect.role).toBe('SYNC_MASTER');
    expect(eventsFrom((await c.writer(a)).events, before)).toEqual(['fence 1']);
    expect((await c.writer(a)).role).toBe('SLAVE');
  }, 20_000);
});

describe('ReplicasManager with the real writer, ha-service and ha-client', () => {
  let system: ActorSystem | undefined;
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
    for (const dir of cluster?.dirs.splice(0) ?? []) fs.rmSync(dir, { recursive: true, force: true });
    cluster = undefined;
  });

  const HA_TIMING = { haSendHeartbeatIntervalMs: 200, haHousekeepingIntervalMs: 3_000 };

  function message(seq: number): PutMessageInput {
    const body = Buffer.alloc(200, seq % 256);
    return { topic: 'TopicReplicas', queueId: 0, body, properties: encodeMessageProperties({ KEYS: `k${seq}` }), bornTimestampMs: 1_700_000_000_000 };
  }

  /** A broker of real store actors: a writer that starts fenced (SLAVE), an ha-service and an ha-client. */
  async function realBroker(c: Cluster, index: number): Promise<{ broker: Broker; writer: ActorRef<CommitLogWriterMessage> }> {
    const dir = c.tempDir();
    const host = { address: `10.0.0.${index}`, port: 10911 };
    const { writer } = await spawnStore(c.system, { namePrefix: `b${index}`, settings: { ...smallStoreSettings(dir, host), brokerRole: 'SLAVE', haSyncTimeoutMs: 2_000 } });
    const service = await spawnHaService(c.system, { writer, host: '127.0.0.1', haListenPort: 0, ...HA_TIMING }, { name: `ha-service-${index}` });
    const bound = await c.system.ask<HaServiceMessage, BoundAnswer>(service, { type: 'port' });
    if (!('port' in bound)) throw new Error(bound.error);
    const haClient = await spawnHaClient(c.system, { writer, haMasterAddress: null, ...HA_TIMING, reconnectBackoffMinMs: 20, reconnectBackoffMaxMs: 200 }, { name: `ha-client-${index}` });
    const broker = await c.brokerWith(index, dir, writer as unknown as ActorRef<WriterDoubleMessage>, haClient as unknown as ActorRef<HaClientDoubleMessage>, `127.0.0.1:${bound.port}`);
    return { broker, writer };
  }

  it('replicates, fails over, and brings a diverged old master back byte for byte', async () => {
    system = await startTestSystem({ ...STORE_POOL_SIZES }, {}, { askTimeoutMs: 10_000 });
    // The default HA stream does not tell the master its slaves' broker ids, so the SyncStateSet cannot
    // grow: the controller may elect any live replica here.
    const c = (cluster = await Cluster.start(system, true));
    const put = (writer: ActorRef<CommitLogWriterMessage>, seq: number) => system!.ask<CommitLogWriterMessage, PutMessageResult>(writer, { type: 'put', message: message(seq) });
    const end = async (writer: ActorRef<CommitLogWriterMessage>) => (await system!.ask<CommitLogWriterMessage, HaStateAnswer>(writer, { type: 'haState' })).maxOffset;

    const a = await realBroker(c, 1);
    expect((await put(a.writer, 0)).status).toBe('SERVICE_NOT_AVAILABLE');
    await c.until(a.broker, 'broker 1 master', (s) => s.role === 'SYNC_MASTER' && s.writerOpen);
    const b = await realBroker(c, 2);
    await c.until(b.broker, 'broker 2 slave', (s) => s.role === 'SLAVE' && s.appliedEpoch === 1);
    // Stored either way; acknowledged by the slave once it is connected and in sync.
    for (let seq = 1; seq <= 5; seq++) expect(['PUT_OK', 'SLAVE_NOT_AVAILABLE']).toContain((await put(a.writer, seq)).status);
    const replicated = await end(a.writer);
    await pollUntil('broker 2 caught up', async () => ((await end(b.writer)) === replicated ? true : undefined), 10_000, 10);
    expect((await put(b.writer, 99)).status).toBe('SERVICE_NOT_AVAILABLE');

    // Broker 1's manager dies; broker 2 is elected. Broker 1's writer stays open (a master that does not
    // know yet) and takes two puts broker 2 never sees.
    await system.stop(a.broker.manager);
    await c.until(b.broker, 'broker 2 master', (s) => s.role === 'SYNC_MASTER' && s.writerOpen && s.masterEpoch === 2);
    for (let seq = 6; seq <= 7; seq++) expect((await put(a.writer, seq)).status).not.toBe('SERVICE_NOT_AVAILABLE');
    expect(await end(a.writer)).toBeGreaterThan(replicated);
    expect(readEpochFile(nodeStorageFs, b.broker.dir).map((entry) => entry.epoch)).toEqual([1, 2]);
    expect((await put(b.writer, 8)).status).not.toBe('SERVICE_NOT_AVAILABLE');

    // Broker 1 returns: fenced, cut back to where epoch 2 began, then it copies broker 2's log.
    await c.startManager(a.broker, 1);
    await c.until(a.broker, 'broker 1 slave', (s) => s.role === 'SLAVE' && s.appliedEpoch === 2);
    expect((await put(a.writer, 9)).status).toBe('SERVICE_NOT_AVAILABLE');
    const newEnd = await end(b.writer);
    await pollUntil('broker 1 caught up with broker 2', async () => ((await end(a.writer)) === newEnd ? true : undefined), 10_000, 10);
    expect(readEpochFile(nodeStorageFs, a.broker.dir)).toEqual(readEpochFile(nodeStorageFs, b.broker.dir));
    const read = (writer: ActorRef<CommitLogWriterMessage>) =>
      system!.ask<CommitLogWriterMessage, GetMessageResult>(writer, { type: 'get', topic: 'TopicReplicas', queueId: 0, queueOffset: 0, maxMsgNums: 32 });
    const [onA, onB] = [await read(a.writer), await read(b.writer)];
    // Messages 1-5 (epoch 1) and 8 (epoch 2); 6 and 7 were cut from broker 1.
    const keysOf = (result: GetMessageResult) => result.messages.map((m) => decodeMessageProperties(decodeRecord(m.record, 0).properties).get('KEYS'));
    expect(keysOf(onB)).toEqual(['k1', 'k2', 'k3', 'k4', 'k5', 'k8']);
    expect(onA.messages).toEqual(onB.messages);
  }, 60_000);
});
