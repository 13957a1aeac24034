import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MESSAGE_KIND_SETTINGS_DEFAULTS, type BrokerAdminMessage, type BrokerProcessorArgs } from '../../src/actors/broker-context.ts';
import type { CommitLogWriterMessage } from '../../src/actors/commit-log-writer.ts';
import type { AcceptorChannelMessage } from '../../src/actors/remoting-routes.ts';
import { applyDelayLevel } from '../../src/actors/schedule-service.ts';
import { STORE_POOL_SIZES, spawnStore } from '../../src/actors/store-actors.ts';
import {
  spawnTransactionService,
  transactionOffsetFile,
  transactionServiceArgsOf,
  type TransactionServiceMessage,
  type TransactionServiceStats,
} from '../../src/actors/transaction-service.ts';
import { EndTransactionRequestHeader, TransactionState } from '../../src/net/remoting/broker-headers.ts';
import { createRequest, ResponseCode, RequestCode } from '../../src/net/remoting/remoting-command.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { decodeRecord, MessageSysFlag, offsetMessageId } from '../../src/storage/message-record.ts';
import { encodePut, isPutRefusal, type GetMessageResult, type PutMessageResult } from '../../src/storage/message-store.ts';
import { SCHEDULE_TOPIC } from '../../src/storage/tag-hash.ts';
import {
  committedMessage,
  encodeTransactionProperties,
  RMQ_SYS_TRANS_HALF_TOPIC,
  RMQ_SYS_TRANS_OP_HALF_TOPIC,
  toHalfMessage,
  TRANS_CHECK_MAX_TIME_TOPIC,
} from '../../src/storage/transaction-message.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { smallStoreSettings } from '../storage/fixtures/small-store.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';
import { transactionAdminStubSource, type TransactionAdminStubMessage } from './fixtures/transaction-admin-stub.ts';
import { propertiesOf, TransactionHarness, TX_STORE_HOST, type HalfSpec, type TransactionHarnessOptions } from './fixtures/transaction-harness.ts';

const T0 = 1_700_000_000_000;
const GROUP = 'ProducerGroupA';
const TOPIC = 'TopicA';

function spec(n: number, extra: Partial<HalfSpec> = {}): HalfSpec {
  return { topic: TOPIC, queueId: 2, body: `tx-${n}`, group: GROUP, uniqKey: `UNIQ-${n}`, ...extra };
}

describe('transaction service', () => {
  const harnesses: TransactionHarness[] = [];
  const dirs = new Set<string>();

  afterEach(async () => {
    for (const h of harnesses.splice(0)) await h.stop().catch(() => undefined);
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    dirs.clear();
  });

  async function start(clock: ManualClock, options: Omit<TransactionHarnessOptions, 'clock'> = {}): Promise<TransactionHarness> {
    const h = await TransactionHarness.start({ clock, ...options });
    harnesses.push(h);
    dirs.add(h.dir);
    return h;
  }

  async function restart(h: TransactionHarness, dir = h.dir, options: Omit<TransactionHarnessOptions, 'clock' | 'dir'> = {}): Promise<TransactionHarness> {
    await h.stop();
    harnesses.splice(harnesses.indexOf(h), 1);
    dirs.add(dir);
    return start(h.clock, { ...options, dir });
  }

  it('keeps a half message out of its topic until it is committed, then delivers it once', async () => {
    const h = await start(new ManualClock(T0));
    const half = await h.sendHalf(spec(1, { properties: { KEYS: 'order-1' } }));
    expect(await h.read(TOPIC, 2)).toHaveLength(0);
    const [stored] = await h.read(RMQ_SYS_TRANS_HALF_TOPIC, 0);
    expect(stored!.sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE).toBe(MessageSysFlag.TRANSACTION_NOT_TYPE);
    expect(propertiesOf(stored!)).toMatchObject({ REAL_TOPIC: TOPIC, REAL_QID: '2', __transactionId__: 'UNIQ-1', PGROUP: GROUP });

    const answer = await h.end(half, 'COMMIT');
    expect(answer.code).toBe(ResponseCode.SUCCESS);
    await h.idle();
    const [committed] = await h.read(TOPIC, 2);
    expect(Buffer.from(committed!.body).toString()).toBe('tx-1');
    expect(committed!.sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE).toBe(MessageSysFlag.TRANSACTION_COMMIT_TYPE);
    expect(committed!.preparedTransactionOffset).toBe(half.commitLogOffset);
    const properties = propertiesOf(committed!);
    expect(properties).toMatchObject({ UNIQ_KEY: 'UNIQ-1', KEYS: 'order-1', PGROUP: GROUP, TAGS: 'TagA' });
    for (const gone of ['REAL_TOPIC', 'REAL_QID', 'TRAN_MSG', 'TRAN_PREPARED_QUEUE_OFFSET']) expect(properties).not.toHaveProperty(gone);
    const [op] = await h.read(RMQ_SYS_TRANS_OP_HALF_TOPIC, 0);
    expect(Buffer.from(op!.body).toString()).toBe(`${half.tranStateTableOffset},`);
    expect(propertiesOf(op!)).toMatchObject({ TAGS: 'd', KEYS: String(half.tranStateTableOffset), __transactionEnd__: 'COMMIT' });

    expect((await h.end(half, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
    const late = await h.end(half, 'ROLLBACK');
    expect(late.code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect(late.remark).toContain('already committed');
    await h.advance(10_000);
    expect(await h.bodies(TOPIC, 2)).toEqual(['tx-1']);
    expect(await h.checks()).toHaveLength(0);
  });

  it('never delivers a rolled-back message, even when a commit comes later', async () => {
    const h = await start(new ManualClock(T0));
    await h.setProducers(GROUP, [5]);
    const half = await h.sendHalf(spec(1));
    expect((await h.end(half, 'ROLLBACK')).code).toBe(ResponseCode.SUCCESS);
    const late = await h.end(half, 'COMMIT', true);
    expect(late.code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect(late.remark).toContain('rolled back');
    await h.advance(10_000);
    expect(await h.read(TOPIC, 2)).toHaveLength(0);
    expect(await h.checks()).toHaveLength(0);
    expect(propertiesOf((await h.read(RMQ_SYS_TRANS_OP_HALF_TOPIC, 0))[0]!)).toMatchObject({ __transactionEnd__: 'ROLLBACK' });
  });

  it('checks an unresolved half with a live producer after transactionTimeOut, and commits on its answer', async () => {
    const clock = new ManualClock(T0);
    const h = await start(clock);
    await h.setProducers(GROUP, [5]);
    const half = await h.sendHalf(spec(1));
    await h.advance(3_000);
    expect(await h.checks()).toHaveLength(0);
    await h.advance(1_000);
    const checks = await h.checks();
    expect(checks).toHaveLength(1);
    expect(checks[0]!.connectionId).toBe(5);
    const { header, message, half: named } = TransactionHarness.readCheck(checks[0]!.request, GROUP);
    expect(checks[0]!.request.code).toBe(RequestCode.CHECK_TRANSACTION_STATE);
    expect(header).toMatchObject({ topic: RMQ_SYS_TRANS_HALF_TOPIC, msgId: 'UNIQ-1', transactionId: 'UNIQ-1', brokerName: 'broker-a' });
    expect(header.tranStateTableOffset).toBe(half.tranStateTableOffset + 1);
    expect(header.offsetMsgId).toBe(offsetMessageId(TX_STORE_HOST, header.commitLogOffset));
    expect(message).toMatchObject({ topic: TOPIC, queueId: 2, queueOffset: header.tranStateTableOffset, physicalOffset: header.commitLogOffset });
    expect(propertiesOf(message)).toMatchObject({ TRANSACTION_CHECK_TIMES: '1', TRAN_PREPARED_QUEUE_OFFSET: String(half.tranStateTableOffset), PGROUP: GROUP });
    expect(Buffer.from(message.body).toString()).toBe('tx-1');

    expect((await h.end(named, 'COMMIT', true)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(5_000);
    expect(await h.bodies(TOPIC, 2)).toEqual(['tx-1']);
    expect(await h.checks()).toHaveLength(1);
    // The producer's own late answer about the first record finds the commit.
    expect((await h.end(half, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
    expect(await h.bodies(TOPIC, 2)).toEqual(['tx-1']);
  });

  it('rolls back on the answer to a check', async () => {
    const h = await start(new ManualClock(T0));
    await h.setProducers(GROUP, [5, 6]);
    await h.sendHalf(spec(1));
    await h.advance(4_000);
    const [check] = await h.checks();
    const { half } = TransactionHarness.readCheck(check!.request, GROUP);
    expect([5, 6]).toContain(check!.connectionId);
    expect((await h.end(half, 'ROLLBACK', true)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(6_000);
    expect(await h.read(TOPIC, 2)).toHaveLength(0);
    expect(await h.checks()).toHaveLength(1);
  });

  it('checks every interval at most transactionCheckMax times, then discards to TRANS_CHECK_MAX_TIME_TOPIC', async () => {
    const h = await start(new ManualClock(T0));
    await h.setProducers(GROUP, [5]);
    const half = await h.sendHalf(spec(1));
    const counts: number[] = [];
    for (let second = 1; second <= 9; second++) {
      await h.advance(1_000);
      counts.push((await h.checks()).length);
    }
    expect(counts).toEqual([0, 0, 0, 1, 2, 3, 3, 3, 3]);
    const times = (await h.checks()).map((check) => propertiesOf(TransactionHarness.readCheck(check.request, GROUP).message)['TRANSACTION_CHECK_TIMES']);
    expect(times).toEqual(['1', '2', '3']);
    const discarded = await h.read(TRANS_CHECK_MAX_TIME_TOPIC, 0);
    expect(discarded.map((view) => Buffer.from(view.body).toString())).toEqual(['tx-1']);
    expect(propertiesOf(discarded[0]!)).toMatchObject({ REAL_TOPIC: TOPIC, TRANSACTION_CHECK_TIMES: '3' });
    expect((await h.stats()).discards).toBe(1);
    const late = await h.end(half, 'COMMIT');
    expect(late.code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect(late.remark).toContain('discarded');
    expect(await h.read(TOPIC, 2)).toHaveLength(0);
  });

  it('counts checks no producer could receive, and discards when the group never comes back', async () => {
    const h = await start(new ManualClock(T0));
    await h.sendHalf(spec(1));
    await h.advance(8_000);
    const stats = await h.stats();
    expect(stats.checks).toBe(3);
    expect(stats.checksWithoutProducer).toBe(3);
    expect(stats.discards).toBe(1);
    expect(await h.checks()).toHaveLength(0);
    expect(await h.read(TRANS_CHECK_MAX_TIME_TOPIC, 0)).toHaveLength(1);
  });

  it('waits CHECK_IMMUNITY_TIME_IN_SECONDS before the first check, and refuses a late end that is not a check answer', async () => {
    const h = await start(new ManualClock(T0));
    await h.setProducers(GROUP, [5]);
    const half = await h.sendHalf(spec(1, { properties: { CHECK_IMMUNITY_TIME_IN_SECONDS: '6' } }));
    await h.advance(6_000);
    expect(await h.checks()).toHaveLength(0);
    await h.advance(1_000);
    expect(await h.checks()).toHaveLength(1);
    const late = await h.end(half, 'COMMIT');
    expect(late.code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect(await h.read(TOPIC, 2)).toHaveLength(0);
    expect((await h.end(half, 'COMMIT', true)).code).toBe(ResponseCode.SUCCESS);
    expect(await h.bodies(TOPIC, 2)).toEqual(['tx-1']);
  });

  it('answers requests it cannot act on with RocketMQ codes, and unknown states not at all', async () => {
    const h = await start(new ManualClock(T0));
    const half = await h.sendHalf(spec(1));
    const wrong = async (patch: Record<string, string>): Promise<[number, string | undefined]> => {
      const answer = await h.answer(h.sendEnd({ ...h.endHeader(half, 'COMMIT'), ...patch }));
      return [answer.code, answer.remark];
    };
    expect(await wrong({ producerGroup: 'Other' })).toEqual([ResponseCode.SYSTEM_ERROR, 'The producer group wrong']);
    expect(await wrong({ tranStateTableOffset: '7' })).toEqual([ResponseCode.SYSTEM_ERROR, 'The transaction state table offset wrong']);
    expect(await wrong({ commitLogOffset: '1' })).toEqual([ResponseCode.SYSTEM_ERROR, 'Find prepared transaction message failed']);
    expect(await wrong({ msgId: 'someone-else', transactionId: 'someone-else' })).toEqual([ResponseCode.SYSTEM_ERROR, 'The message id wrong']);
    expect(await wrong({ msgId: half.offsetMsgId, transactionId: 'x' })).toEqual([ResponseCode.SUCCESS, undefined]);
    expect((await h.answer(h.sendEnd({ ...h.endHeader(half, 'COMMIT'), commitOrRollback: '3' }))).code).toBe(ResponseCode.SYSTEM_ERROR);
    expect((await h.answer(h.sendEnd({}, { code: RequestCode.SEND_MESSAGE }))).code).toBe(ResponseCode.REQUEST_CODE_NOT_SUPPORTED);
    const unknownOpaque = h.sendEnd(h.endHeader(half, 'UNKNOWN'));
    await h.idle();
    expect((await h.recorded()).some((message) => message.type === 'respond' && message.response.opaque === unknownOpaque)).toBe(false);
    expect(await h.bodies(TOPIC, 2)).toEqual(['tx-1']);
  });

  it('refuses END_TRANSACTION on a slave, and past endTransactionsMax requests in flight', async () => {
    const slave = await start(new ManualClock(T0), { service: { brokerId: 1 } });
    const half = await slave.sendHalf(spec(1));
    expect((await slave.end(half, 'COMMIT')).code).toBe(ResponseCode.SLAVE_NOT_AVAILABLE);
    const busy = await start(new ManualClock(T0), { service: { endTransactionsMax: 1 } });
    const first = await busy.sendHalf(spec(1));
    const second = await busy.sendHalf(spec(2));
    const a = busy.sendEnd(busy.endHeader(first, 'COMMIT'));
    const b = busy.sendEnd(busy.endHeader(second, 'COMMIT'));
    expect((await busy.answer(b)).code).toBe(ResponseCode.SYSTEM_BUSY);
    expect((await busy.answer(a)).code).toBe(ResponseCode.SUCCESS);
  });

  it('serializes concurrent ends of one transaction: one commit, whatever arrives together', async () => {
    const h = await start(new ManualClock(T0));
    const half = await h.sendHalf(spec(1));
    const opaques = [h.sendEnd(h.endHeader(half, 'COMMIT')), h.sendEnd(h.endHeader(half, 'COMMIT', true)), h.sendEnd(h.endHeader(half, 'ROLLBACK'))];
    const codes = await Promise.all(opaques.map(async (opaque) => (await h.answer(opaque)).code));
    expect(codes).toEqual([ResponseCode.SUCCESS, ResponseCode.SUCCESS, ResponseCode.ILLEGAL_OPERATION]);
    expect(await h.bodies(TOPIC, 2)).toEqual(['tx-1']);
  });

  it('delivers a committed delay-level message through SCHEDULE_TOPIC_XXXX, and finds it there after a restart', async () => {
    const h = await start(new ManualClock(T0));
    const half = await h.sendHalf(spec(1, { properties: { DELAY: '2' } }));
    expect((await h.end(half, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
    const [scheduled] = await h.read(SCHEDULE_TOPIC, 1);
    expect(propertiesOf(scheduled!)).toMatchObject({ REAL_TOPIC: TOPIC, REAL_QID: '2', DELAY: '2' });
    expect(await h.read(TOPIC, 2)).toHaveLength(0);
    const again = await restart(h, h.dir, { service: { endedCacheMax: 1 } });
    expect((await again.end(half, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
    expect(await again.read(SCHEDULE_TOPIC, 1)).toHaveLength(1);
  });

  it('after a restart, finds the first outcome in the store, not in memory', async () => {
    const h = await start(new ManualClock(T0));
    const committed = await h.sendHalf(spec(1));
    const rolledBack = await h.sendHalf(spec(2));
    expect((await h.end(committed, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
    expect((await h.end(rolledBack, 'ROLLBACK')).code).toBe(ResponseCode.SUCCESS);
    // endedCacheMax 1 and no preload of the first op: the store's index has to answer.
    const again = await restart(h, h.dir, { service: { endedCacheMax: 1 } });
    expect((await again.end(committed, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
    expect((await again.end(rolledBack, 'COMMIT')).code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect((await again.end(committed, 'ROLLBACK')).code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect(await again.bodies(TOPIC, 2)).toEqual(['tx-1']);
    expect((await again.stats()).lookups).toBeGreaterThan(0);
  });

  for (const delay of [undefined, '2']) {
    it(`repairs a commit whose op message a crash lost, instead of checking or committing again${delay === undefined ? '' : ' (delay level)'}`, async () => {
      const clock = new ManualClock(T0);
      const h = await start(clock);
      const half = await h.sendHalf(spec(1, delay === undefined ? {} : { properties: { DELAY: delay } }));
      // The state a crash between the two puts leaves: the committed message, no op message.
      const [record] = await h.read(RMQ_SYS_TRANS_HALF_TOPIC, 0);
      const built = committedMessage(record!);
      if ('problem' in built) throw new Error(built.problem);
      const { properties, ...rest } = built;
      const destination = applyDelayLevel(properties, rest.topic, rest.queueId, rest.sysFlag, 3);
      if (!destination.ok) throw new Error(destination.remark);
      const input = { ...rest, topic: destination.topic, queueId: destination.queueId, properties: encodeTransactionProperties(properties) };
      const encoded = encodePut(input, TX_STORE_HOST, 32 * 1024, clock.nowMs());
      if (isPutRefusal(encoded)) throw new Error(encoded.status);
      const put = await h.system.ask<CommitLogWriterMessage, PutMessageResult[]>(h.writer, { type: 'putEncoded', puts: [encoded] });
      expect(put[0]!.status).toBe('PUT_OK');
      const again = await restart(h);
      await again.setProducers(GROUP, [5]);
      await again.advance(8_000);
      expect(await again.checks()).toHaveLength(0);
      expect((await again.stats()).repairedOps).toBe(1);
      expect(propertiesOf((await again.read(RMQ_SYS_TRANS_OP_HALF_TOPIC, 0))[0]!)).toMatchObject({ __transactionEnd__: 'COMMIT' });
      expect((await again.end(half, 'COMMIT')).code).toBe(ResponseCode.SUCCESS);
      expect((await again.end(half, 'ROLLBACK')).code).toBe(ResponseCode.ILLEGAL_OPERATION);
      const [where, queueId] = delay === undefined ? [TOPIC, 2] : [SCHEDULE_TOPIC, Number(delay) - 1];
      expect(await again.bodies(where, queueId)).toEqual(['tx-1']);
    });
  }

  it('survives a kill -9 at any turn of a commit: the retried end commits exactly once', async () => {
    const seen = { beforeCommit: 0, afterCommit: 0 };
    for (let turns = 0; turns < 8; turns++) {
      const clock = new ManualClock(T0);
      const h = await start(clock);
      const half = await h.sendHalf(spec(1));
      await h.writerStats();
      h.sendEnd(h.endHeader(half, 'COMMIT'));
      for (let turn = 0; turn < turns; turn++) await new Promise((resolve) => setImmediate(resolve));
      const copy = h.crashCopy();
      const again = await restart(h, copy);
      seen[(await again.read(TOPIC, 2)).length === 0 ? 'beforeCommit' : 'afterCommit']++;
      expect((await again.end(half, 'COMMIT', true)).code).toBe(ResponseCode.SUCCESS);
      await again.advance(8_000);
      expect(await again.bodies(TOPIC, 2), `crash after ${turns} turns`).toEqual(['tx-1']);
      expect(await again.read(TRANS_CHECK_MAX_TIME_TOPIC, 0)).toHaveLength(0);
    }
    // The crash fell both before and after the commit reached the file.
    expect(seen.beforeCommit).toBeGreaterThan(0);
    expect(seen.afterCommit).toBeGreaterThan(0);
  });

  it('keeps counting checks across a restart and persists the settled half offset once durable', async () => {
    const h = await start(new ManualClock(T0));
    const settled = await h.sendHalf(spec(0));
    expect((await h.end(settled, 'ROLLBACK')).code).toBe(ResponseCode.SUCCESS);
    await h.sendHalf(spec(1));
    await h.advance(5_000);
    expect((await h.stats()).checks).toBe(2);
    const document = JSON.parse(fs.readFileSync(transactionOffsetFile(h.dir), 'utf8')) as { halfOffset: number };
    expect(document.halfOffset).toBeGreaterThanOrEqual(1);
    const again = await restart(h);
    await again.advance(2_000);
    const stats = await again.stats();
    expect(stats.checks + 2).toBe(3);
    expect(stats.discards).toBe(1);
    expect(await again.read(TRANS_CHECK_MAX_TIME_TOPIC, 0)).toHaveLength(1);
  });

  it('holds at most halvesTrackedMax transactions and still gets to every one', async () => {
    const h = await start(new ManualClock(T0), { service: { halvesTrackedMax: 2, checksPerRoundMax: 1 } });
    await h.setProducers(GROUP, [5]);
    for (let n = 0; n < 5; n++) await h.sendHalf(spec(n));
    let trackedMax = 0;
    for (let second = 0; second < 40; second++) {
      await h.advance(1_000);
      trackedMax = Math.max(trackedMax, (await h.stats()).tracked);
      for (const check of await h.checks()) {
        const { half } = TransactionHarness.readCheck(check.request, GROUP);
        await h.end(half, 'COMMIT', true);
      }
    }
    expect(trackedMax).toBeLessThanOrEqual(2);
    expect((await h.bodies(TOPIC, 2)).sort()).toEqual(['tx-0', 'tx-1', 'tx-2', 'tx-3', 'tx-4']);
  });
});

describe('transaction service on the store pool', () => {
  it('runs on a worker thread from the broker processors\' args and commits there', async () => {
    const system = await startTestSystem({ ...STORE_POOL_SIZES });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmq-tx-pool-'));
    try {
      const { writer } = await spawnStore(system, { settings: smallStoreSettings(dir, TX_STORE_HOST) });
      const admin = await system.spawn<TransactionAdminStubMessage, null>({ name: 'broker-admin', behavior: transactionAdminStubSource, args: null, pool: 'main' });
      const recorder = await system.spawn<AcceptorRecorderMessage, null>({ name: 'acceptor-recorder', behavior: acceptorRecorderSource, args: null, pool: 'main' });
      const args: BrokerProcessorArgs = {
        identity: { clusterName: 'C', brokerName: 'broker-a', brokerId: 0, brokerAddr: '127.0.0.1:10911', storeHost: TX_STORE_HOST },
        settings: {
          ...MESSAGE_KIND_SETTINGS_DEFAULTS,
          autoCreateTopicEnable: true,
          autoCreateSubscriptionGroup: true,
          defaultTopicQueueNums: 4,
          maxMessageSize: 32 * 1024,
          enablePropertyFilter: false,
          delayLevelsMs: [1_000],
          namesrvAddrs: [],
          storePathRootDir: dir,
          transactionCheckIntervalMs: 60_000,
        },
        refs: { writer, admin: admin as unknown as ActorRef<BrokerAdminMessage> },
      };
      const own = transactionServiceArgsOf(args);
      expect(own).toMatchObject({ brokerName: 'broker-a', brokerId: 0, delayLevelsCount: 1, transactionTimeOutMs: 6_000, transactionCheckMax: 15, transactionCheckIntervalMs: 60_000 });
      const service = await spawnTransactionService(system, args);
      const stats = (): Promise<TransactionServiceStats> => system.ask<TransactionServiceMessage, TransactionServiceStats>(service, { type: 'stats' });
      await pollUntil('service ready on the store pool', async () => ((await stats()).ready ? true : undefined));

      const properties = new Map([['UNIQ_KEY', 'U-POOL'], ['PGROUP', GROUP], ['TRAN_MSG', 'true']]);
      const destination = toHalfMessage(properties, TOPIC, 0, MessageSysFlag.TRANSACTION_PREPARED_TYPE);
      const put = await system.ask<CommitLogWriterMessage, PutMessageResult>(writer, {
        type: 'put',
        message: { ...destination, body: new Uint8Array(Buffer.from('pooled')), properties: encodeTransactionProperties(properties) },
      });
      const extFields = EndTransactionRequestHeader.format({
        producerGroup: GROUP,
        tranStateTableOffset: put.queueOffset,
        commitLogOffset: put.physicalOffset,
        commitOrRollback: TransactionState.COMMIT,
        msgId: 'U-POOL',
      });
      const channel = { acceptor: recorder as ActorRef<AcceptorChannelMessage>, connectionId: 1, remoteAddress: '10.0.0.7:1', localAddress: '127.0.0.1:10911' };
      const request = createRequest({ code: RequestCode.END_TRANSACTION, opaque: 4242, extFields });
      expect(system.tell<TransactionServiceMessage>(service, { type: 'remotingRequest', request, channel })).toBe(true);
      const answer = await pollUntil('answer from the pool', async () => {
        const recorded = await system.ask<AcceptorRecorderMessage, AcceptorChannelMessage[]>(recorder, { type: 'dump' });
        return recorded.find((message) => message.type === 'respond' && message.response.opaque === 4242);
      });
      expect(answer.type === 'respond' && answer.response.code).toBe(ResponseCode.SUCCESS);
      const got = await system.ask<CommitLogWriterMessage, GetMessageResult>(writer, { type: 'get', topic: TOPIC, queueId: 0, queueOffset: 0, maxMsgNums: 8 });
      expect(got.messages.map((message) => Buffer.from(decodeRecord(message.record, 0).body).toString())).toEqual(['pooled']);
    } finally {
      await system.shutdown();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
