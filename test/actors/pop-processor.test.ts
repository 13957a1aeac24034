import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initialOffset, POP_REQUEST_CODES, refusalRemark } from '../../src/actors/pop-processor.ts';
import { ChangeInvisibleTimeResponseHeader, PopMessageResponseHeader } from '../../src/net/remoting/broker-headers.ts';
import { RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { decodeRecord } from '../../src/storage/message-record.ts';
import { decodePopRecord, POP_JOURNAL_HEADER_BYTES, type PopJournalRecord } from '../../src/storage/pop-journal.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { DISABLED_GROUP, MISSING_GROUP, MISSING_TOPIC, UNREADABLE_TOPIC } from './fixtures/pop-admin-stub.ts';
import { bodiesOf, GROUP, PopHarness, popped, T0 } from './fixtures/pop-harness.ts';

let harness: PopHarness | undefined;

async function start(tuning?: Parameters<typeof PopHarness.start>[0], flushDiskType?: Parameters<typeof PopHarness.start>[1]): Promise<PopHarness> {
  harness = await PopHarness.start(tuning, flushDiskType);
  return harness;
}

afterEach(async () => {
  await harness?.shutdown();
  harness = undefined;
});

const noMessage = (remark: RegExp) => ({ code: ResponseCode.NO_MESSAGE, remark: expect.stringMatching(remark) as unknown as string });

function expectEmpty(response: RemotingCommand): void {
  expect(response).toMatchObject({ code: ResponseCode.POLLING_TIMEOUT, remark: 'NO_MESSAGE_IN_QUEUE' });
  expect(response.body).toBeUndefined();
}

/** The records in the journal file as it is on disk (what a crash would leave). */
function journalOnDisk(dir: string): PopJournalRecord[] {
  const bytes = fs.readFileSync(path.join(dir, 'pop', 'pop.journal'));
  const records: PopJournalRecord[] = [];
  for (let at = POP_JOURNAL_HEADER_BYTES; ; ) {
    const read = decodePopRecord(bytes, at, bytes.length);
    if (read.kind === 'end') return records;
    records.push(read.record);
    at += read.size;
  }
}

/** Puts `count` messages `<prefix><i>` into each of `queues` of TopicA. */
async function fill(h: PopHarness, queues: readonly number[], count: number, prefix = 'm', properties: Record<string, string> = {}): Promise<void> {
  for (const queueId of queues) for (let i = 0; i < count; i++) await h.put('TopicA', queueId, `${prefix}${queueId}-${i}`, properties);
}

describe('pop processor: helpers', () => {
  it('starts a queue the engine has never seen where RocketMQ does', () => {
    const range = (minOffset: number, maxOffset: number, committed = -1) => ({ queueId: 0, minOffset, maxOffset, committed });
    // MAX: the first message while the queue still holds it, else the last one; MIN: the first one held.
    expect(initialOffset(range(0, 10), 1, 'T')).toBe(0);
    expect(initialOffset(range(4, 10), 1, 'T')).toBe(9);
    expect(initialOffset(range(0, 0), 1, 'T')).toBe(0);
    expect(initialOffset(range(4, 10), 0, 'T')).toBe(4);
    expect(initialOffset(range(4, 10), 1, '%RETRY%G')).toBe(4);
    // A committed offset wins, kept inside what the queue holds.
    expect(initialOffset(range(4, 10, 7), 1, 'T')).toBe(7);
    expect(initialOffset(range(4, 10, 2), 1, 'T')).toBe(4);
    expect(initialOffset(range(4, 10, 50), 0, 'T')).toBe(10);
    expect(POP_REQUEST_CODES).toEqual([200050, 200051, 200053]);
    expect(refusalRemark({ ok: false, code: 'INVALID_RECEIPT_HANDLE', reason: 'STALE' })).toMatch(/^INVALID_RECEIPT_HANDLE STALE: /);
  });
});

describe('pop processor: POP_MESSAGE', () => {
  it('pops across every queue, each message once, with the records exactly as stored', async () => {
    const h = await start();
    await fill(h, [0, 1, 2, 3], 2);
    const response = await h.pop({ invisibleTime: 30_000 });
    expect(response).toMatchObject({ code: ResponseCode.SUCCESS, remark: 'FOUND' });
    const header = PopMessageResponseHeader.parse(response.extFields);
    expect(header).toMatchObject({ popTime: T0, invisibleTime: 30_000, reviveQid: 0 });
    const messages = popped(response);
    expect(messages.map((message) => message.body).sort()).toEqual(['m0-0', 'm0-1', 'm1-0', 'm1-1', 'm2-0', 'm2-1', 'm3-0', 'm3-1']);
    expect(messages.every((message) => message.attempt === 1)).toBe(true);
    expect(new Set(messages.map((message) => message.handle)).size).toBe(8);
    // Each record is byte for byte what the store holds at its queue offset.
    for (const message of messages) {
      const stored = await h.get('TopicA', message.view.queueId, message.view.queueOffset);
      expect(Buffer.from(message.view.raw())).toEqual(Buffer.from(stored.messages[0]!.record));
    }
    // A queue of its own only gives that queue.
    await h.put('TopicA', 2, 'late');
    expect(bodiesOf(await h.pop({ queueId: 2 }))).toEqual(['late']);
  });

  it('never hands a message to two pops while it is invisible', async () => {
    const h = await start();
    await fill(h, [0, 1], 4);
    const first = popped(await h.pop({ maxMsgNums: 3 }));
    const second = popped(await h.pop({ maxMsgNums: 32 }));
    expect(first).toHaveLength(3);
    expect(second).toHaveLength(5);
    const seen = [...first, ...second].map((message) => `${message.view.queueId}:${message.view.queueOffset}`);
    expect(new Set(seen).size).toBe(8);
    expectEmpty(await h.pop());
    // Still invisible just before the deadline.
    await h.advance(9_999);
    expectEmpty(await h.pop());
  });

  it('delivers a message again after its invisible time, with attempt + 1 and a new handle', async () => {
    const h = await start();
    await h.put('TopicA', 1, 'again');
    const [first] = popped(await h.pop({ invisibleTime: 10_000 }));
    expect(first).toMatchObject({ body: 'again', attempt: 1 });
    await h.advance(10_000);
    const [second] = popped(await h.pop({ invisibleTime: 10_000 }));
    expect(second).toMatchObject({ body: 'again', attempt: 2 });
    expect(second!.handle).not.toBe(first!.handle);
    expect(await h.ack(first!.handle)).toMatchObject(noMessage(/STALE/));
    expect((await h.ack(second!.handle)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(60_000);
    expectEmpty(await h.pop());
  });

  it('filters by tags and by SQL92; what the filter drops is settled, not delivered later', async () => {
    const h = await start();
    for (const [body, tag, a] of [['a1', 'TagA', '1'], ['b1', 'TagB', '7'], ['c1', 'TagC', '9'], ['a2', 'TagA', '8']] as const) {
      await h.put('TopicA', 0, body, { TAGS: tag, a });
    }
    expect(bodiesOf(await h.pop({ queueId: 0, exp: 'TagA || TagC' }))).toEqual(['a1', 'c1', 'a2']);
    expect((await h.stats()).filtered).toBe(1);
    await h.advance(60_000);
    expect(bodiesOf(await h.pop({ queueId: 0, exp: '*' }))).toEqual(['a1', 'c1', 'a2']);

    // Another group, SQL92 over the properties (TAGS among them).
    const sql = { consumerGroup: 'GID_SQL', queueId: 0, expType: 'SQL92' };
    expect(bodiesOf(await h.pop({ ...sql, exp: "a > 5 AND TAGS <> 'TagC'" }))).toEqual(['b1', 'a2']);
    expect(await h.pop({ ...sql, consumerGroup: 'GID_BAD', exp: 'a > AND' })).toMatchObject({
      code: ResponseCode.SUBSCRIPTION_PARSE_FAILED,
      remark: expect.stringMatching(/^parse the consumer's subscription failed/) as unknown as string,
    });
    expect((await h.pop({ ...sql, consumerGroup: 'GID_BAD', expType: 'GROOVY', exp: 'true' })).code).toBe(ResponseCode.SUBSCRIPTION_PARSE_FAILED);
  });

  it('pops on, round after round, past whole batches its filter drops', async () => {
    const h = await start();
    await fill(h, [0], 40, 'x', { TAGS: 'TagX' });
    await h.put('TopicA', 0, 'wanted', { TAGS: 'TagA' });
    expect(bodiesOf(await h.pop({ queueId: 0, maxMsgNums: 8, exp: 'TagA' }))).toEqual(['wanted']);
    const stats = await h.stats();
    expect(stats.filtered).toBe(40);
    expect(stats.rounds).toBeGreaterThanOrEqual(6);
  });

  it('copies a message out of attempts to %DLQ%<group> queue 0 and settles it', async () => {
    const h = await start();
    const put = await h.put('TopicA', 3, 'poison', { TAGS: 'TagP', UNIQ_KEY: 'UNIQ-1', color: 'red' });
    for (const attempt of [1, 2]) {
      const [message] = popped(await h.pop({ maxAttempts: 2 }));
      expect(message).toMatchObject({ body: 'poison', attempt });
      await h.advance(10_000);
    }
    // The third issue is a dead letter: not delivered, copied instead.
    expectEmpty(await h.pop({ maxAttempts: 2 }));
    const [letter] = await pollUntil('the DLQ copy', async () => {
      const read = await h.get(`%DLQ%${GROUP}`, 0);
      return read.messages.length > 0 ? read.messages.map((message) => decodeRecord(message.record, 0)) : undefined;
    });
    expect(Buffer.from(letter!.body).toString()).toBe('poison');
    expect(letter!.reconsumeTimes).toBe(2);
    const properties = letter!.propertiesMap();
    expect(properties.get('DLQ_ORIGIN_TOPIC')).toBe('TopicA');
    expect(properties.get('DLQ_ORIGIN_MESSAGE_ID')).toBe('UNIQ-1');
    expect(properties.get('color')).toBe('red');
    expect(properties.get('TAGS')).toBe('TagP');
    expect(put.queueOffset).toBe(0);
    expect((await h.adminDump()).groupForRetry).toEqual([GROUP]);
    const stats = await pollUntil('the dead letter settled', async () => {
      const current = await h.stats();
      return current.deadLetters === 1 ? current : undefined;
    });
    expect(stats.leases).toBe(0);
    await h.advance(60_000);
    expectEmpty(await h.pop({ maxAttempts: 2 }));
  });

  it('keeps FIFO order: a queue with a message in flight gives nothing more, redelivery keeps the order', async () => {
    const h = await start();
    await fill(h, [0], 5);
    const fifo = { queueId: 0, order: true };
    const first = popped(await h.pop({ ...fifo, maxMsgNums: 2 }));
    expect(first.map((message) => message.body)).toEqual(['m0-0', 'm0-1']);
    expectEmpty(await h.pop(fifo));
    // Acked in part: the queue stays blocked until the rest is acked or visible again.
    expect((await h.ack(first[0]!.handle)).code).toBe(ResponseCode.SUCCESS);
    expectEmpty(await h.pop(fifo));
    await h.advance(10_000);
    const again = popped(await h.pop({ ...fifo, maxMsgNums: 3 }));
    expect(again.map((message) => [message.body, message.attempt])).toEqual([['m0-1', 2], ['m0-2', 1], ['m0-3', 1]]);
    for (const message of again) expect((await h.ack(message.handle)).code).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(await h.pop(fifo))).toEqual(['m0-4']);
  });

  it('starts a new group at its committed offset, if broker-admin has one', async () => {
    const h = await start();
    await fill(h, [0], 4);
    await h.adminAsk({ type: 'setOffset', group: 'GID_COMMITTED', topic: 'TopicA', queueId: 0, offset: 2 });
    expect(bodiesOf(await h.pop({ consumerGroup: 'GID_COMMITTED', queueId: 0 }))).toEqual(['m0-2', 'm0-3']);
    // A group without one (MAX, first message still in the store) starts at 0.
    expect(bodiesOf(await h.pop({ consumerGroup: 'GID_NEW', queueId: 0 }))).toEqual(['m0-0', 'm0-1', 'm0-2', 'm0-3']);
    expect((await h.adminDump()).queries).toEqual(['GID_COMMITTED TopicA 0', 'GID_NEW TopicA 0']);
  });

  it('refuses as PopMessageProcessor does', async () => {
    const h = await start();
    expect(await h.pop({ maxMsgNums: 33 })).toMatchObject({ code: ResponseCode.INVALID_PARAMETER, remark: "the broker[10.0.0.7] pop message's num is greater than 32" });
    expect((await h.pop({ invisibleTime: 0 })).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect((await h.pop({ consumerGroup: '' })).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect(await h.pop({ topic: MISSING_TOPIC })).toMatchObject({ code: ResponseCode.TOPIC_NOT_EXIST, remark: expect.stringMatching(/^topic\[TopicMissing\] not exist/) as unknown as string });
    expect(await h.pop({ topic: UNREADABLE_TOPIC })).toMatchObject({ code: ResponseCode.NO_PERMISSION, remark: 'the topic[TopicNoRead] peeking message is forbidden' });
    expect(await h.pop({ queueId: 4 })).toMatchObject({
      code: ResponseCode.INVALID_PARAMETER,
      remark: 'queueId[4] is illegal, topic:[TopicA] topicConfig.readQueueNums:[4] consumer:[10.0.0.1:50001]',
    });
    expect((await h.pop({ consumerGroup: MISSING_GROUP })).code).toBe(ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST);
    expect(await h.pop({ consumerGroup: DISABLED_GROUP })).toMatchObject({ code: ResponseCode.NO_PERMISSION, remark: `subscription group no permission, ${DISABLED_GROUP}` });
    const bad = await h.waitAnswer(h.send(RequestCode.POP_MESSAGE, { consumerGroup: GROUP, topic: 'TopicA' }));
    expect(bad.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(bad.remark).toContain('PopMessageRequestHeader');
    expect((await h.waitAnswer(h.send(RequestCode.PULL_MESSAGE, {}))).code).toBe(ResponseCode.REQUEST_CODE_NOT_SUPPORTED);
  });
});

describe('pop processor: long polling', () => {
  it('holds an empty pop and answers it when a message arrives', async () => {
    const h = await start();
    const opaque = h.sendPop({ pollTime: 15_000 });
    await h.waitIdle(1);
    expect(await h.answerTo(opaque)).toBeUndefined();
    await h.put('TopicA', 2, 'arrived');
    const response = await h.waitAnswer(opaque);
    expect(bodiesOf(response)).toEqual(['arrived']);
    expect(await h.stats()).toMatchObject({ held: 0, holds: 1, timeouts: 0 });
    expect((await h.stats()).wakeups).toBeGreaterThanOrEqual(1);
  });

  it('answers a held pop POLLING_TIMEOUT at its poll time', async () => {
    const h = await start();
    const opaque = h.sendPop({ pollTime: 15_000 });
    await h.advance(14_900, 1);
    expect(await h.answerTo(opaque)).toBeUndefined();
    await h.advance(100, 1);
    expectEmpty(await h.waitAnswer(opaque));
    expect(await h.stats()).toMatchObject({ held: 0, timeouts: 1 });
  });

  it('wakes a held pop when a message of its group becomes visible again', async () => {
    const h = await start();
    await h.put('TopicA', 0, 'slow');
    const [first] = popped(await h.pop({ invisibleTime: 10_000 }));
    const opaque = h.sendPop({ pollTime: 20_000, invisibleTime: 10_000 });
    await h.advance(10_000, 1);
    const [again] = popped(await h.waitAnswer(opaque));
    expect(again).toMatchObject({ body: 'slow', attempt: 2 });
    expect(first!.attempt).toBe(1);
  });

  it('wakes a held orderly pop when the message blocking its queue is acked', async () => {
    const h = await start();
    await fill(h, [0], 2);
    const [head] = popped(await h.pop({ queueId: 0, order: true, maxMsgNums: 1 }));
    const opaque = h.sendPop({ queueId: 0, order: true, pollTime: 20_000 });
    await h.waitIdle(1);
    expect((await h.ack(head!.handle)).code).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(await h.waitAnswer(opaque))).toEqual(['m0-1']);
  });

  it('wakes one held pop per queue choice, and the next one when a woken pop fills its batch', async () => {
    const h = await start();
    const onQueue0 = h.sendPop({ queueId: 0, pollTime: 20_000 });
    const onQueue1 = h.sendPop({ queueId: 1, pollTime: 20_000 });
    await h.waitIdle(2);
    await h.putBatch([['TopicA', 0, 'q0'], ['TopicA', 1, 'q1']]);
    expect(bodiesOf(await h.waitAnswer(onQueue0))).toEqual(['q0']);
    expect(bodiesOf(await h.waitAnswer(onQueue1))).toEqual(['q1']);
    // Two pops of every queue wait; three messages arrive at once: the first takes two, then wakes the second.
    const first = h.sendPop({ maxMsgNums: 2, pollTime: 20_000 });
    const second = h.sendPop({ maxMsgNums: 2, pollTime: 20_000 });
    await h.waitIdle(2);
    await h.putBatch([['TopicA', 2, 'c0'], ['TopicA', 2, 'c1'], ['TopicA', 2, 'c2']]);
    expect(bodiesOf(await h.waitAnswer(first))).toEqual(['c0', 'c1']);
    expect(bodiesOf(await h.waitAnswer(second))).toEqual(['c2']);
  });

  it('answers POLLING_FULL past heldMax, and drops the held pops of a closed connection', async () => {
    const h = await start({ heldMax: 1 });
    const held = h.sendPop({ pollTime: 15_000 }, 9);
    await h.waitIdle(1);
    expect((await h.waitAnswer(h.sendPop({ pollTime: 15_000 }))).code).toBe(ResponseCode.POLLING_FULL);
    expect(h.system.tell(h.processor, { type: 'channelClosed', channel: h.channel(9) })).toBe(true);
    await h.waitIdle(0);
    await h.put('TopicA', 0, 'x');
    expect(bodiesOf(await h.pop())).toEqual(['x']);
    expect(await h.answerTo(held)).toBeUndefined();
  });
});

describe('pop processor: ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME', () => {
  it('acks once; a second ack, a made-up handle and another group are refused with NO_MESSAGE', async () => {
    const h = await start();
    await fill(h, [0], 2);
    const [one, two] = popped(await h.pop({ queueId: 0 }));
    expect((await h.ack(one!.handle)).code).toBe(ResponseCode.SUCCESS);
    expect(await h.ack(one!.handle)).toMatchObject(noMessage(/NOT_IN_FLIGHT/));
    expect(await h.ack(two!.handle, { group: 'GID_OTHER' })).toMatchObject(noMessage(/FOREIGN/));
    expect(await h.ack('1.0.0.zz.1.1.1.broker-a')).toMatchObject(noMessage(/FOREIGN|MALFORMED/));
    expect(await h.ack('garbage')).toMatchObject(noMessage(/MALFORMED/));
    // Answered only once durable: the journal on disk (where the settings say) holds the ACK.
    const onDisk = journalOnDisk(h.dir);
    expect(onDisk.filter((record) => record.type === 'ACK')).toHaveLength(1);
    expect(onDisk.filter((record) => record.type === 'POP')).toHaveLength(2);
    expect((await h.stats()).ackSyncs).toBeGreaterThanOrEqual(1);
    // Only the unacked one comes back, once it is visible again.
    await h.advance(10_000);
    const back = popped(await h.pop({ queueId: 0 }));
    expect(back.map((message) => [message.body, message.attempt])).toEqual([['m0-1', 2]]);
    // Expired: the invisible time is over.
    await h.advance(10_000);
    expect(await h.ack(back[0]!.handle)).toMatchObject(noMessage(/EXPIRED/));
  });

  it('changes the invisible time with a new handle; the old one is dead', async () => {
    const h = await start();
    await h.put('TopicA', 1, 'work');
    const [message] = popped(await h.pop({ invisibleTime: 10_000 }));
    await h.advance(5_000);
    const changed = await h.change(message!.handle, 60_000);
    expect(changed.code).toBe(ResponseCode.SUCCESS);
    const header = ChangeInvisibleTimeResponseHeader.parse(changed.extFields);
    expect(header).toMatchObject({ popTime: T0 + 5_000, invisibleTime: 60_000, reviveQid: 0 });
    expect(header.receiptHandle).not.toBe(message!.handle);
    expect(await h.ack(message!.handle)).toMatchObject(noMessage(/STALE/));
    expect(await h.change(message!.handle, 1_000)).toMatchObject(noMessage(/STALE/));
    // Past the first invisible time, not past the new one.
    await h.advance(30_000);
    expectEmpty(await h.pop());
    expect((await h.change(header.receiptHandle, -1)).code).toBe(ResponseCode.INVALID_PARAMETER);
    expect((await h.ack(header.receiptHandle)).code).toBe(ResponseCode.SUCCESS);
    // Invisible time 0 makes a message visible at once, and wakes a pop waiting for it.
    await h.put('TopicA', 1, 'now');
    const [now] = popped(await h.pop());
    const waiting = h.sendPop({ pollTime: 20_000 });
    await h.waitIdle(1);
    expect((await h.change(now!.handle, 0)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(100, 1);
    expect(popped(await h.waitAnswer(waiting)).map((m) => [m.body, m.attempt])).toEqual([['now', 2]]);
  });
});

describe('pop processor: durability and offsets', () => {
  it('keeps acks and leases across a restart of the actor', async () => {
    const h = await start();
    await fill(h, [0], 3);
    const messages = popped(await h.pop({ queueId: 0, invisibleTime: 10_000 }));
    expect((await h.ack(messages[0]!.handle)).code).toBe(ResponseCode.SUCCESS);
    expect((await h.ack(messages[2]!.handle)).code).toBe(ResponseCode.SUCCESS);
    await h.restartProcessor();
    // Still invisible after the restart.
    expectEmpty(await h.pop({ queueId: 0 }));
    await h.advance(10_000);
    const back = popped(await h.pop({ queueId: 0 }));
    expect(back.map((message) => [message.body, message.attempt])).toEqual([['m0-1', 2]]);
    expect((await h.ack(back[0]!.handle)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(60_000);
    expectEmpty(await h.pop({ queueId: 0 }));
  });

  it('answers acks after an fdatasync by default, after a write to the OS under ASYNC_FLUSH; both survive a restart', async () => {
    for (const flushDiskType of [undefined, 'ASYNC_FLUSH'] as const) {
      const h = await start(undefined, flushDiskType);
      await fill(h, [0], 2);
      const messages = popped(await h.pop({ queueId: 0, invisibleTime: 10_000 }));
      expect((await h.ack(messages[0]!.handle)).code).toBe(ResponseCode.SUCCESS);
      // Answered: the ack record is in the file already (what kill -9 would leave).
      expect(journalOnDisk(h.dir).some((record) => record.type === 'ACK')).toBe(true);
      const stats = await h.stats();
      if (flushDiskType === 'ASYNC_FLUSH') expect([stats.ackSyncs, stats.ackWrites]).toEqual([0, 1]);
      else expect([stats.ackSyncs, stats.ackWrites]).toEqual([1, 0]);
      await h.restartProcessor();
      await h.advance(10_000);
      expect(popped(await h.pop({ queueId: 0 })).map((message) => message.body)).toEqual(['m0-1']);
      await h.shutdown();
      harness = undefined;
    }
  });

  it('tells broker-admin the committed offset of each queue as it moves', async () => {
    const h = await start();
    await fill(h, [0, 1], 2);
    const messages = popped(await h.pop());
    const onQueue0 = messages.filter((message) => message.view.queueId === 0).sort((a, b) => a.view.queueOffset - b.view.queueOffset);
    expect((await h.ack(onQueue0[0]!.handle)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(1_000);
    const commits = await pollUntil('the commits', async () => {
      const dump = await h.adminDump();
      return dump.commits.length >= 4 ? dump.commits : undefined;
    });
    const last = (queueId: number) => commits.filter((commit) => commit.queueId === queueId).at(-1)?.offset;
    // Queue 0: offset 0 acked, offset 1 in flight. Queue 1: both in flight. Queues 2, 3: nothing, at 0.
    expect(last(0)).toBe(1);
    expect(last(1)).toBe(0);
    for (const message of messages.filter((m) => m.handle !== onQueue0[0]!.handle)) expect((await h.ack(message.handle)).code).toBe(ResponseCode.SUCCESS);
    await h.advance(1_000);
    await pollUntil('queue 0 and 1 at 2', async () => {
      const dump = await h.adminDump();
      const latest = (queueId: number) => dump.commits.filter((commit) => commit.queueId === queueId).at(-1)?.offset;
      return latest(0) === 2 && latest(1) === 2 ? true : undefined;
    });
    expect(commits.every((commit) => commit.group === GROUP && commit.topic === 'TopicA')).toBe(true);
  });
});
