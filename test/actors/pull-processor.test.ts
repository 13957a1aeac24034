import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MESSAGE_KIND_SETTINGS_DEFAULTS, type BrokerAdminMessage, type BrokerProcessorArgs, type BrokerSettings, type PullMetadataAnswer } from '../../src/actors/broker-context.ts';
import type { MessageModel, SubscriptionData } from '../../src/net/remoting/broker-bodies.ts';
import type { CommitLogWriterMessage } from '../../src/actors/commit-log-writer.ts';
import {
  OVERLOAD_REMARK,
  parseTagExpression,
  PULL_REQUEST_CODES,
  responseCodeOf,
  spawnPullProcessors,
  type PullProcessorMessage,
  type PullProcessorStats,
  type PullProcessorTuning,
} from '../../src/actors/pull-processor.ts';
import type { AcceptorChannelMessage, RemotingChannel } from '../../src/actors/remoting-routes.ts';
import { STORE_POOL_SIZES, spawnStore, type StoreWriterSettings } from '../../src/actors/store-actors.ts';
import { PullMessageRequestHeader, PullSysFlag, type HeaderInput } from '../../src/net/remoting/broker-headers.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { decodeRecord, encodeMessageProperties, type RecordView } from '../../src/storage/message-record.ts';
import type { GetMessageResult, PutMessageResult } from '../../src/storage/message-store.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';
import {
  DISABLED_GROUP,
  MISSING_GROUP,
  MISSING_TOPIC,
  NO_BROADCAST_GROUP,
  pullAdminStubSource,
  TOPIC_READ_QUEUES,
  WRITE_ONLY_TOPIC,
  type PullAdminStubDump,
  type PullAdminStubMessage,
} from './fixtures/pull-admin-stub.ts';
import { pullWriterStubSource, type PullWriterStubArgs, type PullWriterStubMessage } from './fixtures/pull-writer-stub.ts';
import { smallStoreSettings } from '../storage/fixtures/small-store.ts';

const T0 = 1_700_000_000_000;
const ASK_MS = 5_000;
const GROUP = 'GID_PULL';
const STORE_HOST = { address: '10.0.0.7', port: 10911 };

type PullHeader = HeaderInput<typeof PullMessageRequestHeader.spec>;

const SETTINGS: BrokerSettings = {
  ...MESSAGE_KIND_SETTINGS_DEFAULTS,
  autoCreateTopicEnable: true,
  autoCreateSubscriptionGroup: true,
  defaultTopicQueueNums: 4,
  maxMessageSize: 32 * 1024,
  enablePropertyFilter: true,
  delayLevelsMs: [1_000],
  namesrvAddrs: [],
  storePathRootDir: '',
};

let dir: string;
let system: ActorSystem | undefined;
let nextOpaque = 1;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pull-processor-'));
});

afterEach(async () => {
  await system?.shutdown();
  system = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

function storeSettings(): StoreWriterSettings {
  return smallStoreSettings(dir, STORE_HOST);
}

type HarnessOptions = {
  /** Where the processor runs: `pull` (a worker, real clock) or `main` (the test's clock). */
  readonly pool?: 'pull' | 'main';
  readonly clock?: ManualClock;
  readonly settings?: Partial<BrokerSettings>;
  readonly tuning?: PullProcessorTuning;
  /** Use the programmable writer stub instead of a real store. */
  readonly writerStub?: PullWriterStubArgs;
};

/** A pull processor with a real (or stub) writer, a stub broker-admin and a recorder as acceptor. */
class Harness {
  readonly system: ActorSystem;
  readonly processor: ActorRef<PullProcessorMessage>;
  readonly writer: ActorRef<CommitLogWriterMessage>;
  readonly admin: ActorRef<PullAdminStubMessage>;
  readonly recorder: ActorRef<AcceptorRecorderMessage>;

  private constructor(
    system: ActorSystem,
    processor: ActorRef<PullProcessorMessage>,
    writer: ActorRef<CommitLogWriterMessage>,
    admin: ActorRef<PullAdminStubMessage>,
    recorder: ActorRef<AcceptorRecorderMessage>,
  ) {
    this.system = system;
    this.processor = processor;
    this.writer = writer;
    this.admin = admin;
    this.recorder = recorder;
  }

  static async start(options: HarnessOptions = {}): Promise<Harness> {
    const clock = options.clock;
    system = await startTestSystem({ ...STORE_POOL_SIZES, pull: 1 }, clock === undefined ? {} : { clock }, { askTimeoutMs: ASK_MS });
    const recorder = await system.spawn<AcceptorRecorderMessage, null>({ name: 'acceptor-recorder', behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const admin = await system.spawn<PullAdminStubMessage, null>({ name: 'admin-stub', behavior: pullAdminStubSource, args: null, pool: 'main' });
    const writer =
      options.writerStub === undefined
        ? (await spawnStore(system, { settings: storeSettings() })).writer
        : ((await system.spawn<PullWriterStubMessage, PullWriterStubArgs>({ name: 'writer-stub', behavior: pullWriterStubSource, args: options.writerStub, pool: 'main' })) as ActorRef<CommitLogWriterMessage>);
    const args: BrokerProcessorArgs & { pull?: PullProcessorTuning } = {
      identity: { clusterName: 'DefaultCluster', brokerName: 'broker-a', brokerId: 0, brokerAddr: '10.0.0.7:10911', storeHost: STORE_HOST },
      settings: { ...SETTINGS, storePathRootDir: dir, ...options.settings },
      // The stub takes broker-admin's messages and 'dump'; the phantom type cannot say "accepts at least".
      refs: { writer, admin: admin as ActorRef<BrokerAdminMessage> },
      ...(options.tuning === undefined ? {} : { pull: options.tuning }),
    };
    const [processor] = await spawnPullProcessors(system, { args, count: 1, pool: options.pool ?? 'pull' });
    const harness = new Harness(system, processor!, writer, admin, recorder);
    // The processor registers with the writer in init; wait until it has taken its first turn.
    await harness.stats();
    return harness;
  }

  channel(connectionId = 1): RemotingChannel {
    return { acceptor: this.recorder as ActorRef<AcceptorChannelMessage>, connectionId, remoteAddress: `10.0.0.1:${50_000 + connectionId}`, localAddress: '10.0.0.7:10911' };
  }

  async put(topic: string, queueId: number, body: string, properties: Record<string, string> = {}): Promise<PutMessageResult> {
    const message = { topic, queueId, body: Buffer.from(body), properties: encodeMessageProperties(properties), bornTimestampMs: T0 };
    const result = await this.system.ask<CommitLogWriterMessage, PutMessageResult>(this.writer, { type: 'put', message }, ASK_MS);
    expect(result.status).toBe('PUT_OK');
    return result;
  }

  get(topic: string, queueId: number, queueOffset: number): Promise<GetMessageResult> {
    return this.system.ask<CommitLogWriterMessage, GetMessageResult>(this.writer, { type: 'get', topic, queueId, queueOffset, maxMsgNums: 32 }, ASK_MS);
  }

  /** Sends a pull without waiting; returns its opaque. */
  send(header: Partial<PullHeader> = {}, options: { connectionId?: number; code?: number; extFields?: Record<string, string> } = {}): number {
    const opaque = nextOpaque++;
    const extFields = options.extFields ?? PullMessageRequestHeader.format({
      consumerGroup: GROUP,
      topic: 'TopicA',
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
    const request = createRequest({ code: options.code ?? RequestCode.PULL_MESSAGE, opaque, extFields });
    expect(this.system.tell<PullProcessorMessage>(this.processor, { type: 'remotingRequest', request, channel: this.channel(options.connectionId) })).toBe(true);
    return opaque;
  }

  /** The answer to request `opaque`, if the processor gave one yet (after the processor's current turn). */
  async answerTo(opaque: number): Promise<RemotingCommand | undefined> {
    await this.stats();
    const recorded = await this.system.ask<AcceptorRecorderMessage, AcceptorChannelMessage[]>(this.recorder, { type: 'dump' });
    for (const message of recorded) if (message.type === 'respond' && message.response.opaque === opaque) return message.response;
    return undefined;
  }

  waitAnswer(opaque: number, timeoutMs = 5_000): Promise<RemotingCommand> {
    return pollUntil(`answer to pull ${opaque}`, () => this.answerTo(opaque), timeoutMs);
  }

  async pull(header: Partial<PullHeader> = {}): Promise<RemotingCommand> {
    return this.waitAnswer(this.send(header));
  }

  stats(): Promise<PullProcessorStats> {
    return this.system.ask<PullProcessorMessage, PullProcessorStats>(this.processor, { type: 'stats' }, ASK_MS);
  }

  waitHeld(held: number): Promise<PullProcessorStats> {
    return pollUntil(`${held} held pulls`, async () => {
      const stats = await this.stats();
      return stats.held === held && stats.inFlight === 0 ? stats : undefined;
    });
  }

  adminDump(): Promise<PullAdminStubDump> {
    return this.system.ask<PullAdminStubMessage, PullAdminStubDump>(this.admin, { type: 'dump' }, ASK_MS);
  }

  /** What broker-admin will say about the group's online clients (as their heartbeats registered them). */
  async setConsumer(group: string, consumer: PullMetadataAnswer['consumer']): Promise<void> {
    await this.system.ask<PullAdminStubMessage, boolean>(this.admin, { type: 'setConsumer', group, consumer }, ASK_MS);
  }
}

/** Splits a pull body into its records, as MessageDecoder.decodes does. */
function records(body: Uint8Array | undefined): RecordView[] {
  expect(body).toBeDefined();
  const bytes = body!;
  const views: RecordView[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + at, 4).getInt32(0);
    expect(size).toBeGreaterThan(0);
    views.push(decodeRecord(bytes, at));
    at += size;
  }
  expect(at).toBe(bytes.length);
  return views;
}

const bodies = (response: RemotingCommand): string[] => records(response.body).map((view) => Buffer.from(view.body).toString('utf8'));

function offsets(response: RemotingCommand): { next: number; min: number; max: number } {
  const { nextBeginOffset, minOffset, maxOffset } = response.extFields;
  return { next: Number(nextBeginOffset), min: Number(minOffset), max: Number(maxOffset) };
}

/** A subscription as a heartbeat registers it. */
function registered(topic: string, subString: string, expressionType = 'TAG', subVersion = 100): SubscriptionData {
  const tagsSet = expressionType === 'TAG' && subString !== '*' ? subString.split('||').map((tag) => tag.trim()) : [];
  return { classFilterMode: false, topic, subString, tagsSet, codeSet: [], subVersion, expressionType };
}

function consumerOf(subscription: SubscriptionData | undefined, messageModel: MessageModel = 'CLUSTERING'): PullMetadataAnswer['consumer'] {
  return { messageModel, subscription };
}

function result(status: GetMessageResult['status'], nextBeginOffset: number, minOffset: number, maxOffset: number): GetMessageResult {
  return { status, messages: [], nextBeginOffset, minOffset, maxOffset };
}

describe('pull processor: status mapping', () => {
  it('maps every store status to the code RocketMQ answers', () => {
    expect(responseCodeOf('FOUND', 5)).toBe(ResponseCode.SUCCESS);
    expect(responseCodeOf('NO_MATCHED_MESSAGE', 5)).toBe(ResponseCode.PULL_RETRY_IMMEDIATELY);
    expect(responseCodeOf('MESSAGE_WAS_REMOVING', 5)).toBe(ResponseCode.PULL_RETRY_IMMEDIATELY);
    expect(responseCodeOf('OFFSET_OVERFLOW_ONE', 5)).toBe(ResponseCode.PULL_NOT_FOUND);
    expect(responseCodeOf('OFFSET_FOUND_NULL', 5)).toBe(ResponseCode.PULL_NOT_FOUND);
    expect(responseCodeOf('OFFSET_OVERFLOW_BADLY', 5)).toBe(ResponseCode.PULL_OFFSET_MOVED);
    expect(responseCodeOf('OFFSET_TOO_SMALL', 5)).toBe(ResponseCode.PULL_OFFSET_MOVED);
    for (const status of ['NO_MESSAGE_IN_QUEUE', 'NO_MATCHED_LOGIC_QUEUE'] as const) {
      expect(responseCodeOf(status, 0)).toBe(ResponseCode.PULL_NOT_FOUND);
      expect(responseCodeOf(status, 3)).toBe(ResponseCode.PULL_OFFSET_MOVED);
    }
  });

  it('parses tag expressions as FilterAPI does', () => {
    expect(parseTagExpression(undefined)).toBeUndefined();
    expect(parseTagExpression('')).toBeUndefined();
    expect(parseTagExpression('*')).toBeUndefined();
    expect(parseTagExpression(' TagA ||TagB|| ')).toEqual(['TagA', 'TagB']);
    expect(parseTagExpression('||')).toEqual([]);
    expect(PULL_REQUEST_CODES).toEqual([11, 361]);
  });
});

describe('pull processor', () => {
  it('answers FOUND with the stored records as the body and the queue offsets in the header', async () => {
    const h = await Harness.start();
    for (const text of ['one', 'two', 'three']) await h.put('TopicA', 0, text, { TAGS: 'TagA', KEYS: `k-${text}` });
    const response = await h.pull({ queueOffset: 0, maxMsgNums: 32 });
    expect(response.code).toBe(ResponseCode.SUCCESS);
    expect(response.remark).toBe('FOUND');
    expect(response.extFields).toMatchObject({ suggestWhichBrokerId: '0', nextBeginOffset: '3', minOffset: '0', maxOffset: '3', groupSysFlag: '0' });
    expect(bodies(response)).toEqual(['one', 'two', 'three']);
    const views = records(response.body);
    expect(views.map((view) => view.queueOffset)).toEqual([0, 1, 2]);
    expect(views.map((view) => view.topic)).toEqual(['TopicA', 'TopicA', 'TopicA']);
    expect(views[1]!.propertiesMap().get('KEYS')).toBe('k-two');
    // Exactly the stored bytes, record after record.
    const stored = await h.get('TopicA', 0, 0);
    expect(Buffer.from(response.body!)).toEqual(Buffer.concat(stored.messages.map((message) => Buffer.from(message.record))));
    // maxMsgNums and a later offset.
    const second = await h.pull({ queueOffset: 1, maxMsgNums: 1 });
    expect(bodies(second)).toEqual(['two']);
    expect(offsets(second)).toEqual({ next: 2, min: 0, max: 3 });
    // LITE_PULL_MESSAGE is served the same way.
    const lite = await h.waitAnswer(h.send({ queueOffset: 2, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_LITE_PULL_MESSAGE }, { code: RequestCode.LITE_PULL_MESSAGE }));
    expect(bodies(lite)).toEqual(['three']);
  });

  it('answers PULL_NOT_FOUND without suspend, and PULL_OFFSET_MOVED past the queue', async () => {
    const h = await Harness.start();
    for (const text of ['a', 'b', 'c']) await h.put('TopicA', 0, text);
    const atEnd = await h.pull({ queueOffset: 3 });
    expect(atEnd).toMatchObject({ code: ResponseCode.PULL_NOT_FOUND, remark: 'OFFSET_OVERFLOW_ONE' });
    expect(offsets(atEnd)).toEqual({ next: 3, min: 0, max: 3 });
    expect(atEnd.body).toBeUndefined();
    const emptyQueue = await h.pull({ topic: 'TopicEmpty', queueOffset: 0 });
    expect(emptyQueue).toMatchObject({ code: ResponseCode.PULL_NOT_FOUND, remark: 'NO_MATCHED_LOGIC_QUEUE' });
    const badly = await h.pull({ queueOffset: 10 });
    expect(badly).toMatchObject({ code: ResponseCode.PULL_OFFSET_MOVED, remark: 'OFFSET_OVERFLOW_BADLY' });
    expect(offsets(badly)).toEqual({ next: 3, min: 0, max: 3 });
    const noQueue = await h.pull({ topic: 'TopicEmpty', queueOffset: 5 });
    expect(noQueue).toMatchObject({ code: ResponseCode.PULL_OFFSET_MOVED, remark: 'NO_MATCHED_LOGIC_QUEUE' });
    expect(offsets(noQueue).next).toBe(0);
    expect(await h.stats()).toMatchObject({ held: 0, inFlight: 0, notFound: 2, offsetMoved: 2 });
  });

  it('answers PULL_OFFSET_MOVED to the queue start for an offset too small, PULL_RETRY_IMMEDIATELY while removing', async () => {
    const h = await Harness.start({
      pool: 'main',
      writerStub: { results: [result('OFFSET_TOO_SMALL', 5, 5, 9), result('MESSAGE_WAS_REMOVING', 7, 5, 9)] },
    });
    const small = await h.pull({ queueOffset: 2, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND });
    expect(small).toMatchObject({ code: ResponseCode.PULL_OFFSET_MOVED, remark: 'OFFSET_TOO_SMALL' });
    expect(offsets(small)).toEqual({ next: 5, min: 5, max: 9 });
    const removing = await h.pull({ queueOffset: 5, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND });
    expect(removing).toMatchObject({ code: ResponseCode.PULL_RETRY_IMMEDIATELY, remark: 'MESSAGE_WAS_REMOVING' });
    expect(offsets(removing).next).toBe(7);
  });

  it('holds a suspended pull and answers it when a message arrives, well before the timeout', async () => {
    const h = await Harness.start();
    const started = Date.now();
    const opaque = h.send({ topic: 'TopicL', queueOffset: 0, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND, suspendTimeoutMillis: 15_000 });
    await h.waitHeld(1);
    expect(await h.answerTo(opaque)).toBeUndefined();
    await h.put('TopicL', 0, 'late');
    const response = await h.waitAnswer(opaque);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(response.code).toBe(ResponseCode.SUCCESS);
    expect(bodies(response)).toEqual(['late']);
    expect(offsets(response)).toEqual({ next: 1, min: 0, max: 1 });
    expect(await h.stats()).toMatchObject({ held: 0, holds: 1, wakeups: 1, timeouts: 0 });
  });

  it('answers a held pull PULL_NOT_FOUND at its suspend timeout', async () => {
    const clock = new ManualClock(T0);
    const h = await Harness.start({ pool: 'main', clock });
    const opaque = h.send({ topic: 'TopicT', queueOffset: 0, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND, suspendTimeoutMillis: 15_000 });
    await h.waitHeld(1);
    clock.advance(14_999);
    expect(await h.answerTo(opaque)).toBeUndefined();
    clock.advance(1);
    const response = await h.waitAnswer(opaque);
    expect(response).toMatchObject({ code: ResponseCode.PULL_NOT_FOUND, remark: 'NO_MATCHED_LOGIC_QUEUE' });
    expect(offsets(response).next).toBe(0);
    expect(await h.stats()).toMatchObject({ held: 0, inFlight: 0, holds: 1, timeouts: 1, notFound: 1 });
  });

  it('keeps a woken pull held while the new messages fail its tag filter, then skips them', async () => {
    const h = await Harness.start();
    const subscribed = PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND;
    const opaque = h.send({ topic: 'TopicF', queueOffset: 0, sysFlag: subscribed, subscription: 'TagA' });
    await h.waitHeld(1);
    await h.put('TopicF', 0, 'b1', { TAGS: 'TagB' });
    await pollUntil('the wake-up', async () => ((await h.stats()).wakeups === 1 ? true : undefined));
    await h.waitHeld(1);
    expect(await h.answerTo(opaque)).toBeUndefined();
    await h.put('TopicF', 0, 'a1', { TAGS: 'TagA' });
    const response = await h.waitAnswer(opaque);
    expect(response.code).toBe(ResponseCode.SUCCESS);
    expect(bodies(response)).toEqual(['a1']);
    expect(offsets(response)).toEqual({ next: 2, min: 0, max: 2 });
  });

  it('reads again instead of holding when an arrival notice overtakes the read it concerns', async () => {
    const h = await Harness.start({
      pool: 'main',
      writerStub: { results: [result('OFFSET_OVERFLOW_ONE', 4, 0, 4), result('OFFSET_TOO_SMALL', 5, 5, 9)], noticeOnFirstGet: true },
    });
    const response = await h.pull({ queueOffset: 4, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND });
    expect(response.code).toBe(ResponseCode.PULL_OFFSET_MOVED);
    expect(await h.system.ask<PullWriterStubMessage, number>(h.writer as ActorRef<PullWriterStubMessage>, { type: 'gets' })).toBe(2);
    expect(await h.stats()).toMatchObject({ holds: 0, held: 0 });
  });

  it('filters by tags: `TagA || TagB`, and `*` for all', async () => {
    const h = await Harness.start();
    for (const [body, tag] of [['a1', 'TagA'], ['b1', 'TagB'], ['c1', 'TagC'], ['a2', 'TagA']] as const) await h.put('TopicA', 0, body, { TAGS: tag });
    const some = await h.pull({ subscription: 'TagA || TagB' });
    expect(bodies(some)).toEqual(['a1', 'b1', 'a2']);
    expect(offsets(some)).toEqual({ next: 4, min: 0, max: 4 });
    expect(bodies(await h.pull({ subscription: '*' }))).toEqual(['a1', 'b1', 'c1', 'a2']);
    // Nothing matches: RocketMQ's NO_MATCHED_MESSAGE moves the consumer past what it read.
    const none = await h.pull({ subscription: 'TagZ' });
    expect(none).toMatchObject({ code: ResponseCode.PULL_RETRY_IMMEDIATELY, remark: 'NO_MATCHED_MESSAGE' });
    expect(offsets(none).next).toBe(4);
  });

  it('filters by SQL92 over properties, TAGS included, and moves past a batch it drops entirely', async () => {
    const h = await Harness.start();
    await h.put('TopicS', 0, 'a3x', { a: '3', TAGS: 'x' });
    await h.put('TopicS', 0, 'a7x', { a: '7', TAGS: 'x' });
    await h.put('TopicS', 0, 'a9y', { a: '9', TAGS: 'y' });
    const sql = { topic: 'TopicS', expressionType: 'SQL92', subVersion: 1 };
    const matched = await h.pull({ ...sql, subscription: "a > 5 AND TAGS = 'x'" });
    expect(matched.code).toBe(ResponseCode.SUCCESS);
    expect(bodies(matched)).toEqual(['a7x']);
    expect(offsets(matched)).toEqual({ next: 3, min: 0, max: 3 });
    const none = await h.pull({ ...sql, subscription: 'a > 100' });
    expect(none).toMatchObject({ code: ResponseCode.PULL_RETRY_IMMEDIATELY, remark: 'NO_MATCHED_MESSAGE' });
    expect(offsets(none).next).toBe(3);
    expect(none.body).toBeUndefined();
  });

  it('refuses SQL92 when enablePropertyFilter is off, and bad expressions with SUBSCRIPTION_PARSE_FAILED', async () => {
    const off = await Harness.start({ settings: { enablePropertyFilter: false } });
    const refused = await off.pull({ expressionType: 'SQL92', subscription: 'a > 5' });
    expect(refused).toMatchObject({ code: ResponseCode.SYSTEM_ERROR, remark: 'The broker does not support consumer to filter message by SQL92' });
    await system!.shutdown();
    system = undefined;

    const h = await Harness.start();
    const parseFailed = { code: ResponseCode.SUBSCRIPTION_PARSE_FAILED, remark: "parse the consumer's subscription failed" };
    expect(await h.pull({ expressionType: 'SQL92', subscription: 'a > AND' })).toMatchObject(parseFailed);
    expect(await h.pull({ expressionType: 'SQL92', subscription: '' })).toMatchObject(parseFailed);
    expect(await h.pull({ expressionType: 'GROOVY', subscription: 'true' })).toMatchObject(parseFailed);
    // Without the subscription flag the broker needs the group's registered one, and has none.
    const unposted = await h.pull({ expressionType: 'SQL92', sysFlag: 0, subscription: 'a > 5' });
    expect(unposted.code).toBe(ResponseCode.SUBSCRIPTION_NOT_EXIST);
  });

  it('forwards commitOffset to broker-admin only with the commit flag', async () => {
    const h = await Harness.start({ tuning: { metadataCacheTtlMs: 60_000 } });
    await h.put('TopicA', 2, 'm');
    await h.pull({ queueId: 2, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_COMMIT_OFFSET, commitOffset: 1 });
    await h.pull({ queueId: 2, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION, commitOffset: 7 });
    const dump = await h.adminDump();
    expect(dump.commits).toEqual([{ type: 'commitOffset', group: GROUP, topic: 'TopicA', queueId: 2, offset: 1 }]);
    // The metadata answer is cached: one ask for both pulls.
    expect(dump.metadataAsks).toEqual([`${GROUP} TopicA`]);
  });

  it('answers a pull that commits an offset only once broker-admin has stored it', async () => {
    const h = await Harness.start({ pool: 'main', writerStub: { results: [result('OFFSET_OVERFLOW_ONE', 4, 0, 4)] } });
    await h.system.ask<PullAdminStubMessage, boolean>(h.admin, { type: 'holdCommits' }, ASK_MS);
    const opaque = h.send({ queueOffset: 4, sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_COMMIT_OFFSET, commitOffset: 4 });
    await pollUntil('the read', async () => ((await h.system.ask<PullWriterStubMessage, number>(h.writer as ActorRef<PullWriterStubMessage>, { type: 'gets' })) === 1 ? true : undefined));
    await pollUntil('the commit', async () => ((await h.adminDump()).commits.length === 1 ? true : undefined));
    // Read and committing: the answer is ready but waits for the commit.
    expect(await h.answerTo(opaque)).toBeUndefined();
    expect(await h.stats()).toMatchObject({ inFlight: 1, held: 0 });
    await h.system.ask<PullAdminStubMessage, boolean>(h.admin, { type: 'releaseCommits' }, ASK_MS);
    expect(await h.waitAnswer(opaque)).toMatchObject({ code: ResponseCode.PULL_NOT_FOUND, remark: 'OFFSET_OVERFLOW_ONE' });
    expect(await h.stats()).toMatchObject({ inFlight: 0, held: 0 });
  });

  it('answers SYSTEM_BUSY once heldMax pulls are held, and the held ones still complete', async () => {
    const h = await Harness.start({ tuning: { heldMax: 2 } });
    const suspend = { topic: 'TopicB', sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND };
    const first = h.send(suspend);
    const second = h.send(suspend);
    await h.waitHeld(2);
    const third = await h.waitAnswer(h.send(suspend));
    expect(third).toMatchObject({ code: ResponseCode.SYSTEM_BUSY, remark: OVERLOAD_REMARK });
    expect(await h.stats()).toMatchObject({ held: 2, overloaded: 1 });
    await h.put('TopicB', 0, 'x');
    expect((await h.waitAnswer(first)).code).toBe(ResponseCode.SUCCESS);
    expect((await h.waitAnswer(second)).code).toBe(ResponseCode.SUCCESS);
  });

  it('serves retry topics like any topic', async () => {
    const h = await Harness.start();
    await h.put(`%RETRY%${GROUP}`, 0, 'again', { TAGS: 'TagA' });
    const response = await h.pull({ topic: `%RETRY%${GROUP}` });
    expect(bodies(response)).toEqual(['again']);
  });

  it('passes broker-admin group refusals on and forbids a group that may not consume', async () => {
    const h = await Harness.start();
    expect(await h.pull({ consumerGroup: MISSING_GROUP })).toMatchObject({ code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST });
    const disabled = await h.pull({ consumerGroup: DISABLED_GROUP });
    expect(disabled).toMatchObject({ code: ResponseCode.NO_PERMISSION, remark: `subscription group no permission, ${DISABLED_GROUP}`, extFields: { forbiddenType: '2' } });
  });

  it('answers a malformed header SYSTEM_ERROR, and a queueId outside the read queues SYSTEM_ERROR', async () => {
    const h = await Harness.start();
    const bad = await h.waitAnswer(h.send({}, { extFields: { consumerGroup: GROUP, topic: 'TopicA' } }));
    expect(bad.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(bad.remark).toContain('PullMessageRequestHeader');
    for (const queueId of [-1, TOPIC_READ_QUEUES]) {
      const response = await h.pull({ queueId });
      expect(response.code).toBe(ResponseCode.SYSTEM_ERROR);
      expect(response.remark).toBe(`queueId[${queueId}] is illegal, topic:[TopicA] topicConfig.readQueueNums:[${TOPIC_READ_QUEUES}] consumer:[10.0.0.1:50001]`);
    }
    expect((await h.pull({ queueId: TOPIC_READ_QUEUES - 1 })).code).toBe(ResponseCode.PULL_NOT_FOUND);
  });

  it('answers TOPIC_NOT_EXIST for an unknown topic and NO_PERMISSION for an unreadable one, after the group check', async () => {
    const h = await Harness.start();
    const missing = await h.pull({ topic: MISSING_TOPIC });
    expect(missing.code).toBe(ResponseCode.TOPIC_NOT_EXIST);
    expect(missing.remark).toMatch(new RegExp(`^topic\\[${MISSING_TOPIC}\\] not exist, apply first please!`));
    const unreadable = await h.pull({ topic: WRITE_ONLY_TOPIC });
    expect(unreadable).toMatchObject({ code: ResponseCode.NO_PERMISSION, remark: `the topic[${WRITE_ONLY_TOPIC}] pulling message is forbidden`, extFields: { forbiddenType: '3' } });
    // The group is checked first, as RocketMQ does.
    expect((await h.pull({ topic: MISSING_TOPIC, consumerGroup: MISSING_GROUP })).code).toBe(ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST);
    // A pull creates no topic: the store was never asked.
    expect(await h.stats()).toMatchObject({ found: 0, notFound: 0, refused: 3 });
  });

  it('filters a pull without FLAG_SUBSCRIPTION by the subscription the group registered', async () => {
    const h = await Harness.start();
    for (const [body, tag] of [['a1', 'TagA'], ['b1', 'TagB'], ['a2', 'TagA']] as const) await h.put('TopicR', 0, body, { TAGS: tag, n: body.slice(1) });
    const unposted = { topic: 'TopicR', sysFlag: 0, subscription: '*', subVersion: 100 };
    // No client of the group online, then one that subscribes to another topic.
    expect(await h.pull(unposted)).toMatchObject({ code: ResponseCode.SUBSCRIPTION_NOT_EXIST, remark: expect.stringMatching(/^the consumer's group info not exist/) });
    await h.setConsumer(GROUP, consumerOf(registered('Other', '*')));
    expect(await h.pull(unposted)).toMatchObject({ code: ResponseCode.SUBSCRIPTION_NOT_EXIST, remark: expect.stringMatching(/^the consumer's subscription not exist/) });
    // The registered tags win over the '*' the pull carries without the flag.
    await h.setConsumer(GROUP, consumerOf(registered('TopicR', 'TagA')));
    const tagged = await h.pull(unposted);
    expect(bodies(tagged)).toEqual(['a1', 'a2']);
    expect(offsets(tagged).next).toBe(3);
    // A pull with a newer subVersion than the registered one.
    expect(await h.pull({ ...unposted, subVersion: 101 })).toMatchObject({ code: ResponseCode.SUBSCRIPTION_NOT_LATEST, remark: "the consumer's subscription not latest" });
    // A changed subscription comes with a newer subVersion, which the pulls then carry (so a cached
    // snapshot with the older one is asked again). A SQL92 one; one that does not compile has no filter data.
    await h.setConsumer(GROUP, consumerOf(registered('TopicR', "TAGS = 'TagB' OR n >= 2", 'SQL92', 200)));
    expect(bodies(await h.pull({ ...unposted, subVersion: 200 }))).toEqual(['b1', 'a2']);
    await h.setConsumer(GROUP, consumerOf(registered('TopicR', 'n >=', 'SQL92', 300)));
    expect((await h.pull({ ...unposted, subVersion: 300 })).code).toBe(ResponseCode.FILTER_DATA_NOT_EXIST);
    // A broadcasting group that may not consume by broadcast.
    await h.setConsumer(NO_BROADCAST_GROUP, consumerOf(registered('TopicR', '*'), 'BROADCASTING'));
    const broadcast = await h.pull({ ...unposted, consumerGroup: NO_BROADCAST_GROUP });
    expect(broadcast).toMatchObject({ code: ResponseCode.NO_PERMISSION, extFields: { forbiddenType: '4' } });
  });

  it('asks broker-admin again, once, when its cached snapshot lacks the registered subscription', async () => {
    const h = await Harness.start({ tuning: { metadataCacheTtlMs: 60_000 } });
    await h.put('TopicR', 0, 'm', { TAGS: 'TagA' });
    const unposted = { topic: 'TopicR', sysFlag: 0, subVersion: 100 };
    expect((await h.pull(unposted)).code).toBe(ResponseCode.SUBSCRIPTION_NOT_EXIST);
    expect((await h.adminDump()).metadataAsks).toHaveLength(1);
    // The heartbeat arrives; the cached snapshot (without it) is not trusted for the refusal.
    await h.setConsumer(GROUP, consumerOf(registered('TopicR', '*')));
    expect(bodies(await h.pull(unposted))).toEqual(['m']);
    expect((await h.adminDump()).metadataAsks).toHaveLength(2);
    // Now the cache holds it.
    expect(bodies(await h.pull(unposted))).toEqual(['m']);
    expect((await h.adminDump()).metadataAsks).toHaveLength(2);
  });

  it('drops the held pulls of a closed connection', async () => {
    const h = await Harness.start();
    const opaque = h.send({ topic: 'TopicC', sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND }, { connectionId: 9 });
    const other = h.send({ topic: 'TopicC', sysFlag: PullSysFlag.FLAG_SUBSCRIPTION | PullSysFlag.FLAG_SUSPEND }, { connectionId: 10 });
    await h.waitHeld(2);
    expect(h.system.tell<PullProcessorMessage>(h.processor, { type: 'channelClosed', channel: h.channel(9) })).toBe(true);
    await h.waitHeld(1);
    await h.put('TopicC', 0, 'x');
    expect((await h.waitAnswer(other)).code).toBe(ResponseCode.SUCCESS);
    expect(await h.answerTo(opaque)).toBeUndefined();
  });
});
