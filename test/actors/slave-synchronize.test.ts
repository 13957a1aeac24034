/**
 * slave-synchronize against a real master broker-admin behind a real Remoting acceptor, and against fake
 * masters and NameServers (a bare Remoting server whose answers each test chooses): the slave's
 * broker-admin ends up with the master's topics, groups, consumer and delay offsets; syncing follows the
 * role the replicas manager tells; a round is one request at a time; an oversized body is refused; the
 * GET_ALL_CONSUMER_OFFSET and GET_ALL_DELAY_OFFSET bodies are fastjson's.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerAdminInbox } from '../../src/actors/broker-admin.ts';
import type { BoundAnswer, RemotingAcceptorArgs, RemotingAcceptorMessage } from '../../src/actors/remoting-acceptor.ts';
import type { RemotingRequestMessage } from '../../src/actors/remoting-routes.ts';
import type { ReplicasRoleChangedMessage } from '../../src/actors/replicas-manager.ts';
import {
  formatConsumerOffsetSerializeWrapper,
  formatDelayOffsetSerializeWrapper,
  parseConsumerOffsetSerializeWrapper,
  parseDelayOffsetSerializeWrapper,
  SlaveSyncError,
  spawnSlaveSynchronize,
  type SlaveSynchronizeArgs,
  type SlaveSynchronizeMessage,
  type SlaveSynchronizeStats,
  type SyncFromMasterAnswer,
} from '../../src/actors/slave-synchronize.ts';
import { parseSubscriptionGroupWrapper, parseTopicConfigSerializeWrapper } from '../../src/net/remoting/broker-bodies.ts';
import { CreateTopicRequestHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader, UpdateConsumerOffsetRequestHeader } from '../../src/net/remoting/broker-headers.ts';
import { RemotingConnection } from '../../src/net/remoting/connection.ts';
import { createResponse, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { storePaths } from '../../src/storage/metadata-store.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { AdminHarness } from './fixtures/admin-harness.ts';
import { reloadRecorderSource, type ReloadRecorderMessage } from './fixtures/reload-recorder.ts';
import type { ScheduleReloadMessage } from '../../src/actors/schedule-service.ts';

const PERIOD_MS = 100;
const CLUSTER = 'TestCluster';
const BROKER = 'broker-t';
const SLAVE_ADDR = '127.0.0.1:10912';

// -------------------------------------------------------------------------------------------------------
// A bare Remoting server: each test says how it answers; it records what it was asked.

type Answer = (request: RemotingCommand) => RemotingCommand | Promise<RemotingCommand>;

class FakeServer {
  readonly codes: number[] = [];
  inFlight = 0;
  inFlightMax = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  readonly address: string;

  private constructor(server: net.Server, address: string) {
    this.server = server;
    this.address = address;
  }

  static async start(answers: ReadonlyMap<number, Answer>): Promise<FakeServer> {
    let fake: FakeServer | undefined;
    const server = net.createServer((socket) => {
      fake?.sockets.add(socket);
      socket.on('close', () => fake?.sockets.delete(socket));
      new RemotingConnection(socket, {
        log: () => {},
        onRequest: (request, connection) => {
          const self = fake!;
          self.codes.push(request.code);
          self.inFlight++;
          self.inFlightMax = Math.max(self.inFlightMax, self.inFlight);
          const answer = answers.get(request.code);
          void Promise.resolve(answer === undefined ? createResponse(request, ResponseCode.REQUEST_CODE_NOT_SUPPORTED, 'not here') : answer(request)).then((response) => {
            self.inFlight--;
            connection.send({ ...response, opaque: request.opaque });
          });
        },
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake = new FakeServer(server, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    return fake;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A NameServer that names `masterAddr` (or nobody) as brokerId 0 of the group. */
function nameServerAnswers(masterAddr: string | null): Map<number, Answer> {
  const brokerAddrs: Record<string, string> = masterAddr === null ? { 1: SLAVE_ADDR } : { 0: masterAddr, 1: SLAVE_ADDR };
  const body = Buffer.from(JSON.stringify({ brokerMemberGroup: { cluster: CLUSTER, brokerName: BROKER, brokerAddrs } }));
  return new Map([[RequestCode.GET_BROKER_MEMBER_GROUP, (request: RemotingCommand) => createResponse(request, ResponseCode.SUCCESS, undefined, { body })]]);
}

// -------------------------------------------------------------------------------------------------------
// A real master broker-admin behind an acceptor, and a slave broker-admin in another actor system.

let master: AdminHarness;
let slave: AdminHarness;
let masterAddr: string;
const fakes: FakeServer[] = [];

beforeAll(async () => {
  master = await AdminHarness.start();
  slave = await AdminHarness.start();
  const acceptor = await master.system.spawn<RemotingAcceptorMessage, RemotingAcceptorArgs>({
    name: 'master-acceptor',
    behavior: { module: new URL('../../src/actors/remoting-acceptor.ts', import.meta.url).href, export: 'remotingAcceptor' },
    args: {
      server: 'broker',
      host: '127.0.0.1',
      port: 0,
      frameMaxBytes: 16 * 1024 * 1024,
      connectionsMax: 64,
      routes: { byCode: {}, fallback: [master.admin as ActorRef<RemotingRequestMessage>], closeListeners: [master.admin] },
    },
    pool: 'main',
  });
  const bound = await master.system.ask<RemotingAcceptorMessage, BoundAnswer>(acceptor, { type: 'port' });
  if (!('port' in bound)) throw new Error(bound.error);
  masterAddr = `127.0.0.1:${bound.port}`;
}, 30_000);

afterAll(async () => {
  await Promise.all(fakes.map((fake) => fake.close()));
  await slave?.stop(true);
  await master?.stop(true);
});

let actorCount = 0;

async function startSync(args: Partial<SlaveSynchronizeArgs> & Pick<SlaveSynchronizeArgs, 'mode'>): Promise<ActorRef<SlaveSynchronizeMessage>> {
  return spawnSlaveSynchronize(
    slave.system,
    {
      admin: slave.admin,
      brokerAddr: SLAVE_ADDR,
      brokerClusterName: CLUSTER,
      brokerName: BROKER,
      namesrvAddrs: [],
      syncPeriodMs: PERIOD_MS,
      requestTimeoutMs: 2_000,
      tableRequestTimeoutMs: 2_000,
      ...args,
    },
    { name: `slave-synchronize-${++actorCount}` },
  );
}

function stats(ref: ActorRef<SlaveSynchronizeMessage>): Promise<SlaveSynchronizeStats> {
  return slave.system.ask<SlaveSynchronizeMessage, SlaveSynchronizeStats>(ref, { type: 'stats' });
}

function roleChanged(role: ReplicasRoleChangedMessage['role'], masterAddress: string): ReplicasRoleChangedMessage {
  return { type: 'roleChanged', role, brokerId: role === 'SLAVE' ? 1 : 0, masterAddress, masterHaAddress: '', masterEpoch: 1 };
}

async function createTopic(h: AdminHarness, topic: string): Promise<void> {
  const extFields = CreateTopicRequestHeader.format({ topic, defaultTopic: 'TBW102', readQueueNums: 4, writeQueueNums: 4, perm: 6, topicFilterType: 'SINGLE_TAG' });
  expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, extFields)).code).toBe(ResponseCode.SUCCESS);
}

async function createGroup(h: AdminHarness, group: string): Promise<void> {
  const body = Buffer.from(JSON.stringify({ groupName: group, retryMaxTimes: 7 }));
  expect((await h.call(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)).code).toBe(ResponseCode.SUCCESS);
}

async function commitOffset(h: AdminHarness, group: string, topic: string, queueId: number, offset: number): Promise<void> {
  const extFields = UpdateConsumerOffsetRequestHeader.format({ consumerGroup: group, topic, queueId, commitOffset: offset });
  const answer = await h.call(RequestCode.UPDATE_CONSUMER_OFFSET, extFields);
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
}

async function queryOffset(h: AdminHarness, group: string, topic: string, queueId: number): Promise<number | undefined> {
  const extFields = QueryConsumerOffsetRequestHeader.format({ consumerGroup: group, topic, queueId, setZeroIfNotFound: false });
  const answer = await h.call(RequestCode.QUERY_CONSUMER_OFFSET, extFields);
  return answer.code === ResponseCode.SUCCESS ? QueryConsumerOffsetResponseHeader.parse(answer.extFields).offset : undefined;
}

async function topicsOf(h: AdminHarness): Promise<ReturnType<typeof parseTopicConfigSerializeWrapper>> {
  return parseTopicConfigSerializeWrapper((await h.call(RequestCode.GET_ALL_TOPIC_CONFIG)).body);
}

// -------------------------------------------------------------------------------------------------------

describe('bodies of GET_ALL_CONSUMER_OFFSET and GET_ALL_DELAY_OFFSET', () => {
  it('writes integer keys bare, as fastjson does, and reads them back', () => {
    const offsets = { offsetTable: [['TopicA@GroupA', [[0, 5], [3, 12]]]] as const, dataVersion: { timestamp: 1700, counter: 4, stateVersion: 0 } };
    const text = Buffer.from(formatConsumerOffsetSerializeWrapper(offsets)).toString();
    expect(text).toBe('{"dataVersion":{"counter":4,"stateVersion":0,"timestamp":1700},"offsetTable":{"TopicA@GroupA":{0:5,3:12}}}');
    expect(parseConsumerOffsetSerializeWrapper(text)).toEqual(offsets);
    const delay = { offsetTable: [[1, 7], [3, 2]] as const, dataVersion: null };
    expect(Buffer.from(formatDelayOffsetSerializeWrapper(delay)).toString()).toBe('{"offsetTable":{1:7,3:2}}');
    // Quoted keys (JSON.stringify's, as delayOffset.json holds them) read the same.
    expect(parseDelayOffsetSerializeWrapper('{"offsetTable":{"3":2,"1":7}}')).toEqual(delay);
  });

  it('refuses a key that is not topic@group, a negative delay offset and text that is not JSON', () => {
    const refusal = (parse: () => unknown): string | undefined => {
      try {
        parse();
        return undefined;
      } catch (error) {
        return error instanceof SlaveSyncError ? error.code : String(error);
      }
    };
    expect(refusal(() => parseConsumerOffsetSerializeWrapper('{"offsetTable":{"TopicA":{0:1}}}'))).toBe('SYNC_BODY_INVALID');
    expect(refusal(() => parseDelayOffsetSerializeWrapper('{"offsetTable":{1:-4}}'))).toBe('SYNC_BODY_INVALID');
    expect(refusal(() => parseDelayOffsetSerializeWrapper('{"offsetTable":'))).toBe('SYNC_BODY_INVALID');
  });
});

describe('a slave told its master by the replicas manager', () => {
  it('copies topics, groups, consumer and delay offsets, follows later changes, and stops once master', async () => {
    await createTopic(master, 'SyncTopic');
    await createGroup(master, 'SyncGroup');
    await commitOffset(master, 'SyncGroup', 'SyncTopic', 2, 41);
    const delayText = '{"offsetTable":{"1":7,"3":2},"dataVersion":{"timestamp":1,"counter":2,"stateVersion":0}}';
    fs.writeFileSync(storePaths(master.dir).delayOffsetFile, delayText);
    // An offset only the slave holds survives the merge (RocketMQ's offsetTable.putAll).
    await createTopic(slave, 'SlaveOnlyTopic');
    await createGroup(slave, 'SlaveOnlyGroup');
    await commitOffset(slave, 'SlaveOnlyGroup', 'SlaveOnlyTopic', 0, 3);

    const sync = await startSync({ mode: 'controller' });
    // Nothing happens before the replicas manager names a master.
    expect(await stats(sync)).toMatchObject({ syncing: false, rounds: 0 });
    expect(slave.system.tell(sync, roleChanged('SLAVE', masterAddr))).toBe(true);

    await pollUntil('the slave to answer the master offset', async () => ((await queryOffset(slave, 'SyncGroup', 'SyncTopic', 2)) === 41 ? true : undefined), 10_000, 20);
    const masterTopics = await topicsOf(master);
    const slaveTopics = await topicsOf(slave);
    expect(slaveTopics.dataVersion).toEqual(masterTopics.dataVersion);
    expect([...slaveTopics.topicConfigTable.keys()].sort()).toEqual([...masterTopics.topicConfigTable.keys()].sort());
    expect(slaveTopics.topicConfigTable.get('SyncTopic')).toMatchObject({ readQueueNums: 4, writeQueueNums: 4, perm: 6 });
    const groups = parseSubscriptionGroupWrapper((await slave.call(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).body);
    expect(groups.subscriptionGroupTable.get('SyncGroup')).toMatchObject({ retryMaxTimes: 7 });
    expect(groups.subscriptionGroupTable.has('SlaveOnlyGroup')).toBe(false);
    expect(await queryOffset(slave, 'SlaveOnlyGroup', 'SlaveOnlyTopic', 0)).toBe(3);
    // Written where a restart (and the schedule service) reads them.
    const slaveFiles = storePaths(slave.dir);
    expect(JSON.parse(fs.readFileSync(slaveFiles.topicsFile, 'utf8')).topicConfigTable.SyncTopic.topicName).toBe('SyncTopic');
    expect(JSON.parse(fs.readFileSync(slaveFiles.subscriptionGroupFile, 'utf8')).subscriptionGroupTable.SyncGroup.groupName).toBe('SyncGroup');
    await pollUntil('consumerOffset.json on the slave', () => (fs.readFileSync(slaveFiles.consumerOffsetFile, 'utf8').includes('SyncTopic@SyncGroup') ? true : undefined), 5_000, 20);
    expect(parseDelayOffsetSerializeWrapper(fs.readFileSync(slaveFiles.delayOffsetFile, 'utf8'))).toEqual({
      offsetTable: [[1, 7], [3, 2]],
      dataVersion: { timestamp: 1, counter: 2, stateVersion: 0 },
    });

    // Later changes on the master arrive with a later round; an unchanged table is left alone.
    await commitOffset(master, 'SyncGroup', 'SyncTopic', 2, 99);
    await createTopic(master, 'LaterTopic');
    await pollUntil('the later offset and topic on the slave', async () =>
      (await queryOffset(slave, 'SyncGroup', 'SyncTopic', 2)) === 99 && (await topicsOf(slave)).topicConfigTable.has('LaterTopic') ? true : undefined, 10_000, 20);
    await pollUntil('a round that changed nothing', async () => {
      const s = await stats(sync);
      return s.lastOutcomes.length === 4 && s.lastOutcomes.every((table) => table.outcome === 'unchanged') ? s : undefined;
    }, 10_000, 20);
    const afterSync = await stats(sync);
    expect(afterSync).toMatchObject({ syncing: true, masterAddr, lastFailures: [] });
    expect(afterSync.roundsComplete).toBeGreaterThanOrEqual(2);

    // Promoted: syncing stops, and broker-admin itself refuses a sync that was still on its way.
    expect(slave.system.tell(sync, roleChanged('SYNC_MASTER', ''))).toBe(true);
    expect(slave.system.tell<BrokerAdminInbox>(slave.admin, roleChanged('SYNC_MASTER', ''))).toBe(true);
    await pollUntil('syncing to stop', async () => ((await stats(sync)).syncing ? undefined : true), 5_000, 20);
    const stopped = await pollUntil('the last round to end', async () => {
      const s = await stats(sync);
      return s.inFlight ? undefined : s;
    }, 5_000, 20);
    const answer = await slave.ask<SyncFromMasterAnswer>({ type: 'syncFromMaster', masterAddr, topicConfig: null, consumerOffset: null, delayOffset: null, subscriptionGroup: null });
    expect(answer.refusal).toContain('SYNC_MASTER');
    await commitOffset(master, 'SyncGroup', 'SyncTopic', 2, 150);
    await new Promise((resolve) => setTimeout(resolve, PERIOD_MS * 5));
    expect((await stats(sync)).rounds).toBe(stopped.rounds);
    expect(await queryOffset(slave, 'SyncGroup', 'SyncTopic', 2)).toBe(99);
    await slave.system.stop(sync);
    // A slave again, for the tests below.
    expect(slave.system.tell<BrokerAdminInbox>(slave.admin, roleChanged('SLAVE', masterAddr))).toBe(true);
  }, 40_000);
});

describe('broker-admin applying a sync', () => {
  it('refuses a table over its bound and leaves what it holds; an unchanged delay table is not rewritten', async () => {
    const small = await AdminHarness.start({ options: { topicsMax: 20 } });
    try {
      const before = await topicsOf(small);
      const topicConfigs = Array.from({ length: 21 }, (_, index) => ({
        topicName: `Bounded${index}`, readQueueNums: 1, writeQueueNums: 1, perm: 6, topicFilterType: 'SINGLE_TAG' as const, topicSysFlag: 0, order: false, attributes: {},
      }));
      const delayOffset = { offsetTable: [[2, 9]] as [number, number][], dataVersion: null };
      const sync = (): Promise<SyncFromMasterAnswer> => small.ask<SyncFromMasterAnswer>({
        type: 'syncFromMaster', masterAddr, topicConfig: { topicConfigs, dataVersion: { timestamp: 5, counter: 5, stateVersion: 0 } }, consumerOffset: null, delayOffset, subscriptionGroup: null,
      });
      const first = await sync();
      expect(first.refusal).toBeNull();
      expect(first.tables[0]).toMatchObject({ table: 'topicConfig', outcome: 'refused' });
      expect(first.tables[0]!.reason).toContain('topicsMax 20');
      expect(first.tables[1]).toEqual({ table: 'delayOffset', outcome: 'written' });
      expect((await topicsOf(small)).dataVersion).toEqual(before.dataVersion);
      expect((await sync()).tables[1]).toEqual({ table: 'delayOffset', outcome: 'unchanged' });
    } finally {
      await small.stop(true);
    }
  });
});

describe('a SLAVE by config', () => {
  it('asks the NameServer for its master (brokerId 0) and syncs from it', async () => {
    await createTopic(master, 'StaticTopic');
    const namesrv = await FakeServer.start(nameServerAnswers(masterAddr));
    fakes.push(namesrv);
    // An unreachable NameServer first: the next one is asked.
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadAddr = `127.0.0.1:${(closed.address() as net.AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sync = await startSync({ mode: 'static', namesrvAddrs: [deadAddr, namesrv.address] });
    const synced = await pollUntil('a complete round', async () => {
      const s = await stats(sync);
      return s.roundsComplete > 0 ? s : undefined;
    }, 10_000, 20);
    expect(synced.masterAddr).toBe(masterAddr);
    expect(namesrv.codes).toContain(RequestCode.GET_BROKER_MEMBER_GROUP);
    expect((await topicsOf(slave)).topicConfigTable.has('StaticTopic')).toBe(true);
    await slave.system.stop(sync);
  });

  it('does not sync while no master is registered, nor from itself', async () => {
    const nobody = await FakeServer.start(nameServerAnswers(null));
    const itself = await FakeServer.start(nameServerAnswers(SLAVE_ADDR));
    fakes.push(nobody, itself);
    const orphan = await startSync({ mode: 'static', namesrvAddrs: [nobody.address] });
    const self = await startSync({ mode: 'static', namesrvAddrs: [itself.address] });
    const orphanStats = await pollUntil('two rounds without a master', async () => {
      const s = await stats(orphan);
      return s.roundsIncomplete >= 2 ? s : undefined;
    }, 10_000, 20);
    expect(orphanStats).toMatchObject({ roundsComplete: 0, masterAddr: null, lastOutcomes: [] });
    const selfStats = await pollUntil('a round that finds itself master', async () => {
      const s = await stats(self);
      return s.roundsComplete >= 1 ? s : undefined;
    }, 10_000, 20);
    expect(selfStats).toMatchObject({ masterAddr: SLAVE_ADDR, lastOutcomes: [] });
    // Only the NameServers were asked: no table request ever left.
    expect(new Set([...nobody.codes, ...itself.codes])).toEqual(new Set([RequestCode.GET_BROKER_MEMBER_GROUP]));
    await slave.system.stop(orphan);
    await slave.system.stop(self);
  });
});

describe('bounds and failures', () => {
  it('refuses a body over the bound, keeps going with the other tables, and changes nothing', async () => {
    const before = await topicsOf(slave);
    const huge = Buffer.alloc(4096, 0x20);
    const fake = await FakeServer.start(
      new Map<number, Answer>([
        [RequestCode.GET_ALL_TOPIC_CONFIG, (request) => createResponse(request, ResponseCode.SUCCESS, undefined, { body: huge })],
        [RequestCode.GET_ALL_CONSUMER_OFFSET, (request) => createResponse(request, ResponseCode.SYSTEM_ERROR, 'No consumer offset in this broker')],
        [RequestCode.GET_ALL_DELAY_OFFSET, (request) => createResponse(request, ResponseCode.SUCCESS, undefined, { body: Buffer.from('{"offsetTable":') })],
      ]),
    );
    fakes.push(fake);
    const sync = await startSync({ mode: 'controller', responseBodyBytesMax: 1024 });
    expect(slave.system.tell(sync, roleChanged('SLAVE', fake.address))).toBe(true);
    const failed = await pollUntil('a round with four failures', async () => {
      const s = await stats(sync);
      return s.lastFailures.length === 4 ? s : undefined;
    }, 10_000, 20);
    expect(Object.fromEntries(failed.lastFailures.map((failure) => [failure.table, failure.code]))).toEqual({
      topicConfig: 'SYNC_BODY_TOO_LARGE',
      consumerOffset: 'SYNC_REFUSED',
      delayOffset: 'SYNC_BODY_INVALID',
      subscriptionGroup: 'SYNC_REFUSED',
    });
    expect(failed.lastOutcomes).toEqual([]);
    expect((await topicsOf(slave)).dataVersion).toEqual(before.dataVersion);
    await slave.system.stop(sync);
  });

  it('keeps one request in flight: ticks during a slow round are skipped', async () => {
    const slowMs = PERIOD_MS * 4;
    const slow: Answer = (request) => new Promise((resolve) => setTimeout(() => resolve(createResponse(request, ResponseCode.SYSTEM_ERROR, 'slow')), slowMs));
    const fake = await FakeServer.start(
      new Map<number, Answer>([
        [RequestCode.GET_ALL_TOPIC_CONFIG, slow],
        [RequestCode.GET_ALL_CONSUMER_OFFSET, slow],
        [RequestCode.GET_ALL_DELAY_OFFSET, slow],
        [RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG, slow],
      ]),
    );
    fakes.push(fake);
    const sync = await startSync({ mode: 'controller' });
    expect(slave.system.tell(sync, roleChanged('SLAVE', fake.address))).toBe(true);
    const s = await pollUntil('a slow round to end', async () => {
      const current = await stats(sync);
      return current.roundsIncomplete >= 1 ? current : undefined;
    }, 15_000, 20);
    expect(s.ticksSkipped).toBeGreaterThan(0);
    expect(fake.inFlightMax).toBe(1);
    expect(fake.codes.slice(0, 4)).toEqual([
      RequestCode.GET_ALL_TOPIC_CONFIG,
      RequestCode.GET_ALL_CONSUMER_OFFSET,
      RequestCode.GET_ALL_DELAY_OFFSET,
      RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
    ]);
    await slave.system.stop(sync);
  });

  it('ends a round at an unreachable master and tries again next period', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadAddr = `127.0.0.1:${(closed.address() as net.AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sync = await startSync({ mode: 'controller', connectTimeoutMs: 500 });
    expect(slave.system.tell(sync, roleChanged('SLAVE', deadAddr))).toBe(true);
    const s = await pollUntil('two failed rounds', async () => {
      const current = await stats(sync);
      return current.roundsIncomplete >= 2 ? current : undefined;
    }, 10_000, 20);
    expect(s.lastFailures.map((failure) => failure.code)).toEqual(['SYNC_UNREACHABLE', 'SYNC_UNREACHABLE', 'SYNC_UNREACHABLE', 'SYNC_UNREACHABLE']);
    expect(s.lastFailures[1]!.reason).toContain('not asked');
    await slave.system.stop(sync);
  });
});

describe('the schedule service', () => {
  it('is told to reload after each round that synced the delay offsets, and not after one that did not', async () => {
    let delayOffsets = false;
    const fake = await FakeServer.start(
      new Map<number, Answer>([
        [RequestCode.GET_ALL_DELAY_OFFSET, (request) => delayOffsets
          ? createResponse(request, ResponseCode.SUCCESS, undefined, { body: Buffer.from('{"offsetTable":{1:3,2:8}}') })
          : createResponse(request, ResponseCode.SYSTEM_ERROR, 'not now')],
      ]),
    );
    fakes.push(fake);
    const schedule = await slave.system.spawn<ReloadRecorderMessage, null>({ name: 'schedule-recorder', behavior: reloadRecorderSource, args: null, pool: 'main' });
    const reloads = (): Promise<number> => slave.system.ask<ReloadRecorderMessage, number>(schedule, { type: 'count' });
    const sync = await startSync({ mode: 'controller', schedule: { slot: schedule.slot, name: schedule.name } satisfies ActorRef<ScheduleReloadMessage> });
    expect(slave.system.tell(sync, roleChanged('SLAVE', fake.address))).toBe(true);
    // Rounds whose delay table failed: the file was not written, nothing to reload.
    const failing = await pollUntil('two rounds without delay offsets', async () => {
      const s = await stats(sync);
      return s.roundsIncomplete >= 2 ? s : undefined;
    }, 10_000, 20);
    expect(failing.delayOffsetReloads).toBe(0);
    expect(await reloads()).toBe(0);
    // Written, then unchanged in later rounds: the schedule service is told each time (loadWhenSyncDelayOffset).
    delayOffsets = true;
    await pollUntil('two reloads', async () => ((await reloads()) >= 2 ? true : undefined), 10_000, 20);
    const told = await stats(sync);
    expect(told.lastOutcomes.find((table) => table.table === 'delayOffset')?.outcome).toMatch(/^(written|unchanged)$/);
    expect(parseDelayOffsetSerializeWrapper(fs.readFileSync(storePaths(slave.dir).delayOffsetFile, 'utf8')).offsetTable).toEqual([[1, 3], [2, 8]]);
    expect(await reloads()).toBeGreaterThanOrEqual(2);
    expect(told.delayOffsetReloads).toBeGreaterThanOrEqual(2);
    // Once master, no more rounds and no more reloads.
    expect(slave.system.tell(sync, roleChanged('SYNC_MASTER', ''))).toBe(true);
    await pollUntil('the last round to end', async () => {
      const s = await stats(sync);
      return !s.syncing && !s.inFlight ? s : undefined;
    }, 5_000, 20);
    const after = await reloads();
    await new Promise((resolve) => setTimeout(resolve, PERIOD_MS * 3));
    expect(await reloads()).toBe(after);
    await slave.system.stop(sync);
    await slave.system.stop(schedule);
  });
});
