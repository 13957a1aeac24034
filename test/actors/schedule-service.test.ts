import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deliverTimeMs, messageTimeUp } from '../../src/actors/schedule-service.ts';
import { formatSendMessageRequest, SendMessageResponseHeader } from '../../src/net/remoting/broker-headers.ts';
import { PermName } from '../../src/net/remoting/namesrv-protocol.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { decodeRecord, encodeMessageProperties, encodeRecord, parseOffsetMessageId, recordSize, type RecordView } from '../../src/storage/message-record.ts';
import { storePaths } from '../../src/storage/metadata-store.ts';
import type { BrokerRole, CommitLogWriterMessage, RoleAnswer } from '../../src/actors/commit-log-writer.ts';
import type { ScheduleServiceMessage } from '../../src/actors/schedule-service.ts';
import { formatDelayOffsetSerializeWrapper } from '../../src/actors/slave-synchronize.ts';
import { SCHEDULE_TOPIC } from '../../src/storage/tag-hash.ts';
import { BrokerHarness, STORE_HOST, type BrokerHarnessOptions } from './fixtures/broker-harness.ts';
import { stuckFlusherSource } from './fixtures/broker-stuck-flusher.ts';

const T0 = 1_700_000_000_000;
const RW = PermName.PERM_READ | PermName.PERM_WRITE;
const LEVELS_MS = [1_000, 2_000, 3_000];
const ADMIN = {
  topics: [{ topicName: 'TopicA', readQueueNums: 4, writeQueueNums: 4, perm: RW }],
  groups: [{ groupName: 'GroupA', retryMaxTimes: 16, retryQueueNums: 1 }],
};
const POLL_MS = 100;

function sendHeader(properties: Record<string, string>, queueId = 2): Record<string, string> {
  return formatSendMessageRequest(
    {
      producerGroup: 'ProducerA',
      topic: 'TopicA',
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 4,
      queueId,
      sysFlag: 0,
      bornTimestamp: T0 - 5,
      flag: 9,
      properties: encodeMessageProperties({ TAGS: 'TagA', ...properties }),
      reconsumeTimes: 0,
      batch: false,
    },
    'V2',
  );
}

const body = (text: string): Uint8Array => new Uint8Array(Buffer.from(text));
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

describe('schedule service', () => {
  let harness: BrokerHarness | undefined;
  const dirs = new Set<string>();
  afterEach(async () => {
    await harness?.shutdown();
    harness = undefined;
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    dirs.clear();
  });

  async function start(clock: ManualClock | undefined, options: BrokerHarnessOptions = {}): Promise<BrokerHarness> {
    harness = await BrokerHarness.start({
      admin: ADMIN,
      delayLevelsMs: LEVELS_MS,
      schedule: { pollIntervalMs: POLL_MS, flushDelayOffsetIntervalMs: 500 },
      ...(clock === undefined ? {} : { clock }),
      ...options,
    });
    dirs.add(harness.dir);
    return harness;
  }

  /** Moves the clock `stepMs` at a time, letting the service finish every poll before the next step. */
  async function advance(h: BrokerHarness, clock: ManualClock, totalMs: number, stepMs = POLL_MS): Promise<void> {
    for (let movedMs = 0; movedMs < totalMs; movedMs += stepMs) {
      const polls = (await h.scheduleStats()).polls;
      clock.advance(Math.min(stepMs, totalMs - movedMs));
      await h.settle(polls + (stepMs >= POLL_MS ? 1 : 0));
      await h.writerStats();
    }
  }

  it('delivers a delay-level message to its real topic and queue at its deliver time, not a poll earlier', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    const sent = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1', UNIQ_KEY: 'U1' }), body('later'));
    expect(sent.code).toBe(ResponseCode.SUCCESS);
    const [scheduled] = await h.readAtLeast(SCHEDULE_TOPIC, 0, 1);
    expect(scheduled!.storeTimestampMs).toBe(T0);
    await advance(h, clock, LEVELS_MS[0]! - POLL_MS);
    expect(clock.nowMs()).toBe(T0 + 900);
    expect((await h.read('TopicA', 2)).views).toHaveLength(0);
    expect((await h.scheduleStats()).delivered).toBe(0);
    await advance(h, clock, POLL_MS);
    const [delivered] = await h.readAtLeast('TopicA', 2, 1);
    expect(delivered!.storeTimestampMs).toBe(T0 + LEVELS_MS[0]!);
    expect(text(delivered!.body)).toBe('later');
    expect(delivered).toMatchObject({ topic: 'TopicA', queueId: 2, flag: 9, bornTimestampMs: T0 - 5, reconsumeTimes: 0 });
    expect(delivered!.bornHost).toEqual(scheduled!.bornHost);
    const properties = delivered!.propertiesMap();
    expect(properties.has('DELAY')).toBe(false);
    expect(Object.fromEntries(properties)).toMatchObject({ TAGS: 'TagA', UNIQ_KEY: 'U1', REAL_TOPIC: 'TopicA', REAL_QID: '2', CLUSTER: 'DefaultCluster' });
    expect((await h.scheduleStats()).levels[0]).toMatchObject({ offset: 1, busy: false });
  });

  it('delivers a level in store order and stops at the first message not yet due', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    for (const name of ['a', 'b']) expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '2' }), body(name))).code).toBe(ResponseCode.SUCCESS);
    await advance(h, clock, 500);
    expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '2' }), body('c'))).code).toBe(ResponseCode.SUCCESS);
    await advance(h, clock, 1_500);
    const due = await h.readAtLeast('TopicA', 2, 2);
    expect(due.map((view) => text(view.body))).toEqual(['a', 'b']);
    expect((await h.scheduleStats()).levels[1]).toMatchObject({ offset: 2 });
    await advance(h, clock, 400);
    expect((await h.read('TopicA', 2)).views).toHaveLength(2);
    await advance(h, clock, POLL_MS);
    const all = await h.readAtLeast('TopicA', 2, 3);
    expect(all.map((view) => [text(view.body), view.storeTimestampMs - T0])).toEqual([['a', 2_000], ['b', 2_000], ['c', 2_500]]);
  });

  it('drains a backlog in bounded batches without waiting a poll between them', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock, { schedule: { pollIntervalMs: POLL_MS, flushDelayOffsetIntervalMs: 500, batchMax: 2 } });
    for (let i = 0; i < 5; i++) expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1' }), body(`m${i}`))).code).toBe(ResponseCode.SUCCESS);
    await advance(h, clock, 1_000);
    const views = await h.readAtLeast('TopicA', 2, 5);
    expect(clock.nowMs()).toBe(T0 + 1_000);
    expect(views.map((view) => text(view.body))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(views.every((view) => view.storeTimestampMs === T0 + 1_000)).toBe(true);
  });

  it('persists offsets once the re-puts are durable, and a restart neither loses nor repeats them', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1' }), body('once'))).code).toBe(ResponseCode.SUCCESS);
    await advance(h, clock, 1_000);
    expect(await h.readAtLeast('TopicA', 2, 1)).toHaveLength(1);
    const file = storePaths(h.dir).delayOffsetFile;
    for (let round = 0; round < 20; round++) {
      await advance(h, clock, 500);
      if ((await h.scheduleStats()).levels[0]!.confirmedOffset === 1) break;
    }
    expect((await h.scheduleStats()).levels[0]).toMatchObject({ offset: 1, confirmedOffset: 1 });
    const document = JSON.parse(fs.readFileSync(file, 'utf8')) as { offsetTable: Record<string, number> };
    expect(document.offsetTable).toEqual({ 1: 1, 2: 0, 3: 0 });
    await h.shutdown();
    harness = undefined;
    const again = await start(clock, { dir: h.dir });
    await advance(again, clock, 1_000);
    expect((await again.scheduleStats()).levels[0]).toMatchObject({ offset: 1 });
    expect((await again.read('TopicA', 2)).views).toHaveLength(1);
  });

  it('does not write an offset past a re-put the disk has not made durable', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock, { flusherBehavior: stuckFlusherSource });
    expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1' }), body('pending'))).code).toBe(ResponseCode.SUCCESS);
    await advance(h, clock, 3_000);
    expect(await h.readAtLeast('TopicA', 2, 1)).toHaveLength(1);
    expect((await h.writerStats()).durableOffset).toBe(0);
    expect((await h.scheduleStats()).levels[0]).toMatchObject({ offset: 1, confirmedOffset: 0 });
    expect(fs.existsSync(storePaths(h.dir).delayOffsetFile)).toBe(false);
  });

  it('redelivers from the offset on disk (at-least-once), reading fastjson\'s unquoted keys', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1' }), body('twice'))).code).toBe(ResponseCode.SUCCESS);
    await advance(h, clock, 1_000);
    expect(await h.readAtLeast('TopicA', 2, 1)).toHaveLength(1);
    await h.shutdown();
    harness = undefined;
    // As if the broker had crashed before the offset was written: the file still says 0.
    const file = storePaths(h.dir).delayOffsetFile;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{"offsetTable":{1:0,2:0,3:0,19:7}}');
    fs.rmSync(`${file}.bak`, { force: true });
    const again = await start(clock, { dir: h.dir });
    await advance(again, clock, POLL_MS);
    const views = await again.readAtLeast('TopicA', 2, 2);
    expect(views.map((view) => text(view.body))).toEqual(['twice', 'twice']);
  });

  /** Changes the writer's role, as the replicas manager does. */
  async function setRole(h: BrokerHarness, role: BrokerRole, epoch: number): Promise<void> {
    const answer = await h.system.ask<CommitLogWriterMessage, RoleAnswer>(h.writer, { type: 'setRole', role, epoch });
    expect(answer).toMatchObject({ ok: true, role });
  }

  /** Writes delayOffset.json as broker-admin does for a sync, and tells the service to reload it. */
  async function syncDelayOffsets(h: BrokerHarness, offsetTable: ReadonlyArray<readonly [number, number]>): Promise<void> {
    const file = storePaths(h.dir).delayOffsetFile;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, formatDelayOffsetSerializeWrapper({ offsetTable, dataVersion: { timestamp: T0, counter: 9, stateVersion: 0 } }));
    expect(h.system.tell<ScheduleServiceMessage>(h.schedule!, { type: 'reloadOffsets' })).toBe(true);
  }

  it('delivers nothing on a slave, takes the synced offsets, and resumes from them once promoted', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    for (const name of ['m0', 'm1', 'm2']) expect((await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1' }), body(name))).code).toBe(ResponseCode.SUCCESS);
    await setRole(h, 'SLAVE', 1);
    // Due, but this broker is a slave: nothing is re-put (no refused puts either), the offset stays.
    await advance(h, clock, 1_500);
    expect(await h.scheduleStats()).toMatchObject({ role: 'SLAVE', delivered: 0, failedPuts: 0, reloads: 0 });
    expect((await h.scheduleStats()).levels[0]).toMatchObject({ offset: 0, confirmedOffset: 0 });
    // The master had delivered two of them: a sync writes its offsets and the service takes them.
    await syncDelayOffsets(h, [[1, 2], [3, 1]]);
    const reloaded = await h.scheduleStats();
    expect(reloaded).toMatchObject({ reloads: 1, reloadsRefused: 0 });
    expect(reloaded.levels.map((level) => [level.offset, level.confirmedOffset])).toEqual([[2, 2], [0, 0], [1, 1]]);
    // Promoted: only the message the old master had not delivered goes out.
    await setRole(h, 'SYNC_MASTER', 2);
    await advance(h, clock, POLL_MS * 2);
    const delivered = await h.readAtLeast('TopicA', 2, 1);
    await advance(h, clock, POLL_MS * 2);
    expect((await h.read('TopicA', 2)).views.map((view) => text(view.body))).toEqual(['m2']);
    expect(delivered.map((view) => text(view.body))).toEqual(['m2']);
    expect(await h.scheduleStats()).toMatchObject({ role: 'SYNC_MASTER', delivered: 1 });
    expect((await h.scheduleStats()).levels[0]).toMatchObject({ offset: 3 });
    // A master's offsets are its own: a late sync is refused and changes nothing.
    await syncDelayOffsets(h, [[1, 0]]);
    expect(await h.scheduleStats()).toMatchObject({ reloads: 1, reloadsRefused: 1 });
    expect((await h.scheduleStats()).levels[0]).toMatchObject({ offset: 3 });
  });

  it('reloads before its first read, and keeps its offsets when the synced file is unreadable', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    await syncDelayOffsets(h, [[2, 5]]);
    expect((await h.scheduleStats()).levels.map((level) => level.offset)).toEqual([0, 5, 0]);
    const file = storePaths(h.dir).delayOffsetFile;
    fs.writeFileSync(file, '{"offsetTable":');
    fs.rmSync(`${file}.bak`, { force: true });
    expect(h.system.tell<ScheduleServiceMessage>(h.schedule!, { type: 'reloadOffsets' })).toBe(true);
    const stats = await h.scheduleStats();
    expect(stats.reloads).toBe(1);
    expect(stats.levels.map((level) => level.offset)).toEqual([0, 5, 0]);
  });

  it('brings a sent-back message to %RETRY%group after its retry delay', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    const sent = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({}), body('retry me'));
    const offset = parseOffsetMessageId(SendMessageResponseHeader.parse(sent.extFields).msgId)!.physicalOffset;
    const back = await h.call(RequestCode.CONSUMER_SEND_MSG_BACK, { offset: String(offset), group: 'GroupA', delayLevel: '0' });
    expect(back.code).toBe(ResponseCode.SUCCESS);
    // 3 + reconsumeTimes 0 = level 3 (the last of three here): 3 s.
    expect(await h.readAtLeast(SCHEDULE_TOPIC, 2, 1)).toHaveLength(1);
    await advance(h, clock, 2_900);
    expect((await h.read('%RETRY%GroupA', 0)).views).toHaveLength(0);
    await advance(h, clock, POLL_MS);
    const [retry] = await h.readAtLeast('%RETRY%GroupA', 0, 1);
    expect(text(retry!.body)).toBe('retry me');
    expect(retry!.reconsumeTimes).toBe(1);
    expect(retry!.propertiesMap().get('RETRY_TOPIC')).toBe('TopicA');
    expect(retry!.propertiesMap().has('DELAY')).toBe(false);
  });

  it('runs on the store pool beside a writer on its own thread, never delivering early', async () => {
    // Spawned with the processors' args, as the node wiring does.
    const h = await start(undefined, { delayLevelsMs: [300, 600], scheduleWithProcessorArgs: true });
    const sent = await h.call(RequestCode.SEND_MESSAGE_V2, sendHeader({ DELAY: '1' }, 0), body('threads'));
    expect(sent.code).toBe(ResponseCode.SUCCESS);
    const [scheduled] = await h.readAtLeast(SCHEDULE_TOPIC, 0, 1);
    const [delivered] = await h.readAtLeast('TopicA', 0, 1);
    expect(delivered!.storeTimestampMs).toBeGreaterThanOrEqual(scheduled!.storeTimestampMs + 300);
    expect(text(delivered!.body)).toBe('threads');
  });

  it('corrects a deliver time more than one delay ahead of now (a clock stepped back), as RocketMQ does', () => {
    expect(deliverTimeMs(T0, 1_000, T0 + 10)).toBe(T0 + 1_000);
    expect(deliverTimeMs(T0, 1_000, T0 + 5_000)).toBe(T0 + 1_000);
    expect(deliverTimeMs(T0, 1_000, T0)).toBe(T0 + 1_000);
    // Store time ahead of now means the clock went back since: deliver now, not a clock step later.
    expect(deliverTimeMs(T0, 1_000, T0 - 1)).toBe(T0 - 1);
    expect(deliverTimeMs(T0 + 3_600_000, 1_000, T0)).toBe(T0);
  });

  it('skips a scheduled message without a usable REAL_TOPIC or REAL_QID', () => {
    const view = (properties: Record<string, string>): RecordView => {
      const input = {
        topic: SCHEDULE_TOPIC, queueId: 0, flag: 0, queueOffset: 0, physicalOffset: 0, sysFlag: 0, bornTimestampMs: T0,
        bornHost: STORE_HOST, storeTimestampMs: T0, storeHost: STORE_HOST, reconsumeTimes: 0, preparedTransactionOffset: 0,
        body: body('x'), properties: encodeMessageProperties(properties),
      };
      const bytes = new Uint8Array(recordSize(input));
      encodeRecord(bytes, 0, input);
      return decodeRecord(bytes, 0);
    };
    expect(messageTimeUp(view({ REAL_QID: '0' }))).toHaveProperty('skip');
    expect(messageTimeUp(view({ REAL_TOPIC: 'TopicA', REAL_QID: 'x' }))).toHaveProperty('skip');
    expect(messageTimeUp(view({ REAL_TOPIC: 'RMQ_SYS_TRANS_HALF_TOPIC', REAL_QID: '0' }))).toHaveProperty('skip');
    expect(messageTimeUp(view({ REAL_TOPIC: 'TopicA', REAL_QID: '3', DELAY: '2', TIMER_DELAY_SEC: '4' }))).toMatchObject({
      topic: 'TopicA',
      queueId: 3,
      properties: encodeMessageProperties({ REAL_TOPIC: 'TopicA', REAL_QID: '3' }),
    });
  });
});
