// Pulls from a slave and suggestWhichBrokerId (PullMessageProcessor.rejectRequest and
// composeResponseHeader): the role comes from the writer's read answer, so these tests change it at run
// time with `setRole`, as the controller does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MESSAGE_KIND_SETTINGS_DEFAULTS, type BrokerAdminMessage, type BrokerSettings } from '../../src/actors/broker-context.ts';
import type { BrokerRole, CommitLogWriterMessage, GetAnswer, RoleAnswer } from '../../src/actors/commit-log-writer.ts';
import {
  REJECT_REQUEST_REMARK,
  spawnPullProcessors,
  suggestPullingFromSlave,
  type PullProcessorArgs,
  type PullProcessorMessage,
  type PullProcessorStats,
  type PullSlaveReadSettings,
} from '../../src/actors/pull-processor.ts';
import type { AcceptorChannelMessage, RemotingChannel } from '../../src/actors/remoting-routes.ts';
import { STORE_POOL_SIZES, spawnStore } from '../../src/actors/store-actors.ts';
import { PullMessageRequestHeader, PullMessageResponseHeader, PullSysFlag, type HeaderInput } from '../../src/net/remoting/broker-headers.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';
import type { PutMessageResult } from '../../src/storage/message-store.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';
import { pullAdminStubSource, READ_PREFERENCE, READ_PREFERENCE_GROUP, type PullAdminStubDump, type PullAdminStubMessage } from './fixtures/pull-admin-stub.ts';
import { smallStoreSettings } from '../storage/fixtures/small-store.ts';

const ASK_MS = 5_000;
const STORE_HOST = { address: '10.0.0.7', port: 10911 };
const TOPIC = 'TopicS';
/** Bodies this large make every record about 1.1 KB. */
const BODY_BYTES = 1_000;
/** 40 % of 5000 bytes: a read 2000 bytes or more behind the log end is "not in memory". */
const SMALL_MEMORY: Omit<PullSlaveReadSettings, 'slaveReadEnable'> = { accessMessageInMemoryMaxRatio: 40, totalPhysicalMemorySizeBytes: 5_000 };

const SETTINGS: BrokerSettings = {
  ...MESSAGE_KIND_SETTINGS_DEFAULTS,
  autoCreateTopicEnable: true,
  autoCreateSubscriptionGroup: true,
  defaultTopicQueueNums: 4,
  maxMessageSize: 32 * 1024,
  enablePropertyFilter: false,
  delayLevelsMs: [1_000],
  namesrvAddrs: [],
  storePathRootDir: '',
};

let dir: string;
let system: ActorSystem | undefined;
let nextOpaque = 1;
let nextRoleEpoch = 1;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pull-slave-read-'));
});

afterEach(async () => {
  await system?.shutdown();
  system = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

type PullHeader = HeaderInput<typeof PullMessageRequestHeader.spec>;

/** A pull processor over a real writer (a master until setRole says otherwise), a stub broker-admin and a recorder. */
class Harness {
  readonly system: ActorSystem;
  readonly processor: ActorRef<PullProcessorMessage>;
  readonly writer: ActorRef<CommitLogWriterMessage>;
  readonly admin: ActorRef<PullAdminStubMessage>;
  readonly recorder: ActorRef<AcceptorRecorderMessage>;

  private constructor(parts: Pick<Harness, 'system' | 'processor' | 'writer' | 'admin' | 'recorder'>) {
    this.system = parts.system;
    this.processor = parts.processor;
    this.writer = parts.writer;
    this.admin = parts.admin;
    this.recorder = parts.recorder;
  }

  static async start(slaveRead: PullSlaveReadSettings | undefined): Promise<Harness> {
    const started = await startTestSystem({ ...STORE_POOL_SIZES, pull: 1 }, {}, { askTimeoutMs: ASK_MS });
    system = started;
    const recorder = await started.spawn<AcceptorRecorderMessage, null>({ name: 'acceptor-recorder', behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const admin = await started.spawn<PullAdminStubMessage, null>({ name: 'admin-stub', behavior: pullAdminStubSource, args: null, pool: 'main' });
    const { writer } = await spawnStore(started, { settings: smallStoreSettings(dir, STORE_HOST) });
    const args: PullProcessorArgs = {
      identity: { clusterName: 'DefaultCluster', brokerName: 'broker-a', brokerId: 1, brokerAddr: '10.0.0.7:10911', storeHost: STORE_HOST },
      settings: { ...SETTINGS, storePathRootDir: dir },
      // The stub takes broker-admin's messages and 'dump'; the phantom type cannot say "accepts at least".
      refs: { writer, admin: admin as ActorRef<BrokerAdminMessage> },
      ...(slaveRead === undefined ? {} : { slaveRead }),
    };
    const [processor] = await spawnPullProcessors(started, { args, count: 1 });
    const harness = new Harness({ system: started, processor: processor!, writer, admin, recorder });
    await harness.stats();
    return harness;
  }

  async put(count: number): Promise<PutMessageResult[]> {
    const results: PutMessageResult[] = [];
    for (let i = 0; i < count; i++) {
      const message = { topic: TOPIC, queueId: 0, body: Buffer.from(`${i}:`.padEnd(BODY_BYTES, 'x')), properties: encodeMessageProperties({}), bornTimestampMs: 1 };
      const result = await this.system.ask<CommitLogWriterMessage, PutMessageResult>(this.writer, { type: 'put', message }, ASK_MS);
      expect(result.status).toBe('PUT_OK');
      results.push(result);
    }
    return results;
  }

  /** Changes the writer's role under a new fencing epoch, as the replicas manager does. */
  async setRole(role: BrokerRole): Promise<void> {
    const answer = await this.system.ask<CommitLogWriterMessage, RoleAnswer>(this.writer, { type: 'setRole', role, epoch: nextRoleEpoch++ }, ASK_MS);
    expect(answer).toMatchObject({ ok: true, role });
  }

  read(queueOffset: number): Promise<GetAnswer> {
    return this.system.ask<CommitLogWriterMessage, GetAnswer>(this.writer, { type: 'get', topic: TOPIC, queueId: 0, queueOffset, maxMsgNums: 32 }, ASK_MS);
  }

  send(header: Partial<PullHeader>): number {
    const opaque = nextOpaque++;
    const extFields = PullMessageRequestHeader.format({
      consumerGroup: 'GID_SLAVE_READ',
      topic: TOPIC,
      queueId: 0,
      queueOffset: 0,
      maxMsgNums: 32,
      sysFlag: PullSysFlag.FLAG_SUBSCRIPTION,
      commitOffset: 0,
      suspendTimeoutMillis: 15_000,
      subVersion: 0,
      subscription: '*',
      expressionType: 'TAG',
      ...header,
    });
    const request = createRequest({ code: RequestCode.PULL_MESSAGE, opaque, extFields });
    const channel: RemotingChannel = { acceptor: this.recorder as ActorRef<AcceptorChannelMessage>, connectionId: 1, remoteAddress: '10.0.0.1:50001', localAddress: '10.0.0.7:10911' };
    expect(this.system.tell<PullProcessorMessage>(this.processor, { type: 'remotingRequest', request, channel })).toBe(true);
    return opaque;
  }

  async pull(header: Partial<PullHeader> = {}): Promise<RemotingCommand> {
    const opaque = this.send(header);
    return pollUntil(`answer to pull ${opaque}`, async () => {
      await this.stats();
      const recorded = await this.system.ask<AcceptorRecorderMessage, AcceptorChannelMessage[]>(this.recorder, { type: 'dump' });
      for (const message of recorded) if (message.type === 'respond' && message.response.opaque === opaque) return message.response;
      return undefined;
    });
  }

  stats(): Promise<PullProcessorStats> {
    return this.system.ask<PullProcessorMessage, PullProcessorStats>(this.processor, { type: 'stats' }, ASK_MS);
  }

  adminDump(): Promise<PullAdminStubDump> {
    return this.system.ask<PullAdminStubMessage, PullAdminStubDump>(this.admin, { type: 'dump' }, ASK_MS);
  }
}

function suggested(response: RemotingCommand): number {
  return PullMessageResponseHeader.parse(response.extFields).suggestWhichBrokerId;
}

function bodyCount(response: RemotingCommand): number {
  let count = 0;
  for (let at = 0; response.body !== undefined && at < response.body.length; count++) at += decodeRecord(response.body, at).totalSize;
  return count;
}

const SUSPEND = PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND;
const COMMIT = PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_COMMIT_OFFSET;

describe('suggestPullingFromSlave', () => {
  const at = (physicalOffset: number): GetAnswer['messages'][number] => ({ queueOffset: 0, physicalOffset, record: new Uint8Array() });
  const answer = (messages: GetAnswer['messages'], maxPhysicalOffset: number): GetAnswer => ({
    status: messages.length > 0 ? 'FOUND' : 'OFFSET_OVERFLOW_ONE', messages, nextBeginOffset: 0, minOffset: 0, maxOffset: 0, role: 'ASYNC_MASTER', maxPhysicalOffset,
  });
  const settings: PullSlaveReadSettings = { slaveReadEnable: true, ...SMALL_MEMORY };

  it('is true only when the last message read lies more than the ratio of memory behind the log end', () => {
    expect(suggestPullingFromSlave(answer([at(0), at(500)], 2_500), settings)).toBe(false);
    expect(suggestPullingFromSlave(answer([at(0), at(499)], 2_500), settings)).toBe(true);
    expect(suggestPullingFromSlave(answer([at(0)], 2_001), settings)).toBe(true);
    expect(suggestPullingFromSlave(answer([], 1_000_000), settings)).toBe(false);
    expect(suggestPullingFromSlave(answer([at(0)], 1_000_000), { ...settings, accessMessageInMemoryMaxRatio: 100, totalPhysicalMemorySizeBytes: 1_000_000 })).toBe(false);
  });
});

describe('pull processor on a slave', () => {
  it('refuses every pull with SYSTEM_BUSY [REJECTREQUEST] without slaveReadEnable, and serves again once promoted', async () => {
    const h = await Harness.start(undefined);
    await h.put(3);
    const asMaster = await h.pull();
    expect(asMaster.code).toBe(ResponseCode.SUCCESS);
    expect(suggested(asMaster)).toBe(0);

    await h.setRole('SLAVE');
    const refused = await h.pull();
    expect(refused).toMatchObject({ code: ResponseCode.SYSTEM_BUSY, remark: REJECT_REQUEST_REMARK });
    expect(refused.body).toBeUndefined();
    // Known to be a slave now: a refused pull's commitOffset is not stored, and nothing is held.
    const withCommit = await h.pull({ sysFlag: COMMIT | PullSysFlag.FLAG_SUSPEND, commitOffset: 2, queueOffset: 3 });
    expect(withCommit.code).toBe(ResponseCode.SYSTEM_BUSY);
    expect((await h.adminDump()).commits).toEqual([]);
    expect(await h.stats()).toMatchObject({ held: 0, inFlight: 0, refused: 2 });

    await h.setRole('SYNC_MASTER');
    const promoted = await h.pull({ queueOffset: 1 });
    expect(promoted.code).toBe(ResponseCode.SUCCESS);
    expect(bodyCount(promoted)).toBe(2);
    expect(suggested(promoted)).toBe(0);
  });

  it('with slaveReadEnable serves what it holds, sends consumers back to the master, and never holds a pull', async () => {
    const h = await Harness.start({ slaveReadEnable: true, ...SMALL_MEMORY });
    await h.put(4);
    await h.setRole('SLAVE');
    // The last message is one record behind the log end: in memory, so back to the master after this.
    const found = await h.pull({ queueOffset: 3 });
    expect(found).toMatchObject({ code: ResponseCode.SUCCESS, remark: 'FOUND' });
    expect(bodyCount(found)).toBe(1);
    expect(suggested(found)).toBe(0);
    // Nothing more here: PULL_RETRY_IMMEDIATELY (not PULL_NOT_FOUND, not held) with the master suggested.
    const atEnd = await h.pull({ queueOffset: 4, sysFlag: SUSPEND });
    expect(atEnd).toMatchObject({ code: ResponseCode.PULL_RETRY_IMMEDIATELY, remark: 'OFFSET_OVERFLOW_ONE' });
    expect(suggested(atEnd)).toBe(0);
    expect(PullMessageResponseHeader.parse(atEnd.extFields).nextBeginOffset).toBe(4);
    expect(await h.stats()).toMatchObject({ held: 0, holds: 0, retryImmediately: 1 });
    // A read far behind the log end is served here, and the group's slow-consumer broker is suggested.
    const slow = await h.pull({ consumerGroup: READ_PREFERENCE_GROUP, queueOffset: 0, maxMsgNums: 1 });
    expect(slow.code).toBe(ResponseCode.SUCCESS);
    expect(suggested(slow)).toBe(READ_PREFERENCE.whichBrokerWhenConsumeSlowly);
  });
});

describe('pull processor on a master', () => {
  it('suggests whichBrokerWhenConsumeSlowly to a consumer far behind only with slaveReadEnable', async () => {
    const h = await Harness.start({ slaveReadEnable: true, ...SMALL_MEMORY });
    await h.put(4);
    // The setup the assertions rely on: the first record is far behind the log end, the last one is not.
    const stored = await h.read(0);
    const memoryBytes = (SMALL_MEMORY.totalPhysicalMemorySizeBytes * SMALL_MEMORY.accessMessageInMemoryMaxRatio) / 100;
    expect(stored.maxPhysicalOffset - stored.messages[0]!.physicalOffset).toBeGreaterThan(memoryBytes);
    expect(stored.maxPhysicalOffset - stored.messages[3]!.physicalOffset).toBeLessThanOrEqual(memoryBytes);

    const far = await h.pull({ consumerGroup: READ_PREFERENCE_GROUP, queueOffset: 0, maxMsgNums: 1 });
    expect(far.code).toBe(ResponseCode.SUCCESS);
    expect(suggested(far)).toBe(READ_PREFERENCE.whichBrokerWhenConsumeSlowly);
    // Caught up: the group's own brokerId.
    const near = await h.pull({ consumerGroup: READ_PREFERENCE_GROUP, queueOffset: 3 });
    expect(suggested(near)).toBe(READ_PREFERENCE.brokerId);
    // A group that names neither: RocketMQ's defaults (whichBrokerWhenConsumeSlowly 1, brokerId 0).
    expect(suggested(await h.pull({ queueOffset: 0, maxMsgNums: 1 }))).toBe(1);
    expect(suggested(await h.pull({ queueOffset: 3 }))).toBe(0);
    // The master still holds a pull that finds nothing.
    h.send({ queueOffset: 4, sysFlag: SUSPEND });
    await pollUntil('a held pull', async () => ((await h.stats()).held === 1 ? true : undefined));
  });

  it('always suggests the master without slaveReadEnable', async () => {
    const h = await Harness.start({ slaveReadEnable: false, ...SMALL_MEMORY });
    await h.put(4);
    const far = await h.pull({ consumerGroup: READ_PREFERENCE_GROUP, queueOffset: 0, maxMsgNums: 1 });
    expect(far.code).toBe(ResponseCode.SUCCESS);
    expect(suggested(far)).toBe(0);
    expect(suggested(await h.pull({ consumerGroup: READ_PREFERENCE_GROUP, queueOffset: 3 }))).toBe(0);
  });
});
