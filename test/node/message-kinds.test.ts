/**
 * Timed messages, recall and transactions over Remoting, with the project's Remoting client against a
 * `start` node, as a 4.x/5.x Remoting producer drives them: TIMER_DELAY_SEC / TIMER_DELIVER_MS are
 * delivered never early and about a second late at most; a past time at once; RECALL_MESSAGE before
 * delivery suppresses the message and after delivery is refused with ILLEGAL_OPERATION; a half message
 * whose producer never answers CHECK_TRANSACTION_STATE is discarded after transactionCheckMax checks into
 * TRANS_CHECK_MAX_TIME_TOPIC and never reaches its topic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from './fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest, SendMessageResponseHeader } from '../../src/net/remoting/broker-headers.ts';
import { formatHeartbeatData } from '../../src/net/remoting/broker-bodies.ts';
import { encodeMessageProperties, MessageSysFlag } from '../../src/storage/message-record.ts';
import { MessageConst } from '../../src/net/remoting/message-batch.ts';
import { pullRecords } from '../proxy/fixtures/broker-reads.ts';

const TOPIC = 'RemotingKindsTopic';
const PRODUCER_GROUP = 'RemotingKindsProducer';
const LATE_MS_MAX = 2_500;
const CHECK_MAX = 2;

let testNode: TestNode;
let client: RemotingClient;
const checksSeen: string[] = [];

beforeAll(async () => {
  testNode = await startTestNode('remoting-kinds', 'warn', {
    recallMessageEnable: 'true',
    transactionTimeOut: '500',
    transactionCheckInterval: '500',
    transactionCheckMax: String(CHECK_MAX),
  });
  client = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  // A producer that never answers a check (it only counts them).
  client.onRequest((request) => {
    if (request.code === RequestCode.CHECK_TRANSACTION_STATE) checksSeen.push(String(request.extFields['transactionId']));
    return undefined;
  });
  const created = await client.invoke(
    requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '1', writeQueueNums: '1', perm: '6', topicFilterType: 'SINGLE_TAG' }),
    5_000,
  );
  expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
  const heartbeat = formatHeartbeatData({ clientID: 'remoting-kinds-producer', producerDataSet: [{ groupName: PRODUCER_GROUP }], consumerDataSet: [], heartbeatFingerprint: 0, withoutSub: false });
  expect((await client.invoke(requestOf(RequestCode.HEART_BEAT, {}, Buffer.from(heartbeat)), 5_000)).code).toBe(ResponseCode.SUCCESS);
}, 60_000);

afterAll(async () => {
  client?.close();
  await testNode?.stop();
}, 60_000);

async function send(body: string, properties: Record<string, string>, sysFlag = 0): Promise<RemotingCommand> {
  const header = formatSendMessageRequest(
    {
      producerGroup: PRODUCER_GROUP,
      topic: TOPIC,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 1,
      queueId: 0,
      sysFlag,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties(new Map(Object.entries(properties))),
      reconsumeTimes: 0,
    },
    'V2',
  );
  const answer = await client.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(body)), 5_000);
  expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  return answer;
}

/** Polls the topic until `body` is there; answers the wall-clock time it was first seen and its store time. */
async function arrival(body: string, timeoutMs: number): Promise<{ seenMs: number; storeMs: number } | undefined> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const found = (await pullRecords(client, TOPIC, 0, 'remoting-kinds-reader')).find((record) => Buffer.from(record.body).toString() === body);
    if (found !== undefined) return { seenMs: Date.now(), storeMs: found.storeTimestampMs };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

describe('timed messages, recall and transactions over Remoting', () => {
  it('delivers TIMER_DELAY_SEC and TIMER_DELIVER_MS messages never early and about a second late at most', async () => {
    const sentMs = Date.now();
    await send('delay-sec', { [MessageConst.PROPERTY_TIMER_DELAY_SEC]: '2' });
    const deliverMs = Date.now() + 2_500;
    await send('deliver-ms', { [MessageConst.PROPERTY_TIMER_DELIVER_MS]: String(deliverMs) });
    const bySec = await arrival('delay-sec', 10_000);
    const byMs = await arrival('deliver-ms', 10_000);
    expect(bySec).toBeDefined();
    expect(byMs).toBeDefined();
    expect(bySec!.storeMs).toBeGreaterThanOrEqual(sentMs + 2_000);
    expect(bySec!.seenMs - (sentMs + 2_000)).toBeLessThanOrEqual(LATE_MS_MAX + 1_000);
    expect(byMs!.storeMs).toBeGreaterThanOrEqual(deliverMs);
    expect(byMs!.storeMs - deliverMs).toBeLessThanOrEqual(LATE_MS_MAX);
  }, 30_000);

  it('stores a message whose time has passed at once', async () => {
    const sentMs = Date.now();
    await send('past', { [MessageConst.PROPERTY_TIMER_DELIVER_MS]: String(sentMs - 10_000) });
    const got = await arrival('past', 5_000);
    expect(got).toBeDefined();
    expect(got!.storeMs - sentMs).toBeLessThanOrEqual(LATE_MS_MAX);
  }, 30_000);

  it('recalls a message before delivery, and refuses a recall after it', async () => {
    const recalled = await send('recall-me', { [MessageConst.PROPERTY_TIMER_DELAY_SEC]: '2' });
    const handle = SendMessageResponseHeader.parse(recalled.extFields).recallHandle!;
    expect(handle).toBeDefined();
    const answer = await client.invoke(requestOf(RequestCode.RECALL_MESSAGE, { topic: TOPIC, recallHandle: handle, producerGroup: PRODUCER_GROUP }), 5_000);
    expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
    await send('after-recall', { [MessageConst.PROPERTY_TIMER_DELAY_SEC]: '3' });
    expect(await arrival('after-recall', 10_000)).toBeDefined();
    expect(await arrival('recall-me', 100)).toBeUndefined();

    const delivered = await send('deliver-then-recall', { [MessageConst.PROPERTY_TIMER_DELAY_SEC]: '1' });
    expect(await arrival('deliver-then-recall', 10_000)).toBeDefined();
    const late = await client.invoke(
      requestOf(RequestCode.RECALL_MESSAGE, { topic: TOPIC, recallHandle: SendMessageResponseHeader.parse(delivered.extFields).recallHandle!, producerGroup: PRODUCER_GROUP }),
      5_000,
    );
    expect(late.code).toBe(ResponseCode.ILLEGAL_OPERATION);
    expect(late.remark).toBe('recall failed, timestamp invalid');
  }, 30_000);

  it('discards a half message whose producer never answers, after transactionCheckMax checks', async () => {
    const half = await send('never-answered', { [MessageConst.PROPERTY_TRANSACTION_PREPARED]: 'true', [MessageConst.PROPERTY_PRODUCER_GROUP]: PRODUCER_GROUP }, MessageSysFlag.TRANSACTION_PREPARED_TYPE);
    const transactionId = SendMessageResponseHeader.parse(half.extFields).transactionId;
    let discarded = false;
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !discarded; ) {
      const records = await pullRecords(client, 'TRANS_CHECK_MAX_TIME_TOPIC', 0, 'remoting-kinds-check');
      discarded = records.some((record) => Buffer.from(record.body).toString() === 'never-answered');
      if (!discarded) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(discarded).toBe(true);
    const checks = checksSeen.filter((id) => id === transactionId).length;
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(CHECK_MAX);
    expect(await arrival('never-answered', 100)).toBeUndefined();
  }, 30_000);
});
