/**
 * Timed messages with the official 5.x Node.js client through the Proxy (LOCAL): a message with a
 * delivery timestamp is never received before it and arrives about one timer precision (1 s) after it at
 * most; a timestamp in the past is delivered at once; a recall before delivery means the message never
 * arrives, and a recall after delivery fails with the broker's refusal.
 *
 * The lateness bound checked here is the "about a second late": precision 1 s plus the receive
 * path, with slack for a loaded CI machine (LATE_MS_MAX). "Never early" is exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

const TOPIC = 'ProxyTimerTopic';
const LATE_MS_MAX = 2_500;

let testNode: TestNode;
let producer: Producer;
let consumer: SimpleConsumer;
/** When each body was received (wall clock). */
const receivedAt = new Map<string, number>();
let polling = true;
let poller: Promise<void> | undefined;

beforeAll(async () => {
  testNode = await startTestNode('proxy-timer', 'warn', { recallMessageEnable: 'true' });
  const broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  try {
    const created = await broker.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, {
        topic: TOPIC,
        defaultTopic: 'TBW102',
        readQueueNums: '1',
        writeQueueNums: '1',
        perm: '6',
        topicFilterType: 'SINGLE_TAG',
        attributes: '+message.type=DELAY',
      }),
      5_000,
    );
    expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
  } finally {
    broker.close();
  }
  await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
  const endpoints = `127.0.0.1:${testNode.node.ports.grpc}`;
  producer = new Producer({ endpoints, namespace: '', topics: [TOPIC], logger: silentLogger, requestTimeout: 5_000 });
  await producer.startup();
  consumer = new SimpleConsumer({
    endpoints,
    namespace: '',
    consumerGroup: 'ProxyTimerGroup',
    subscriptions: new Map([[TOPIC, FilterExpression.SUB_ALL]]),
    awaitDuration: 5_000,
    logger: silentLogger,
    requestTimeout: 5_000,
  });
  await consumer.startup();
  // One receiver for the whole file: every arrival is stamped as it comes (long polls wake on arrival).
  poller = (async () => {
    while (polling) {
      const views = await consumer.receive(32, 15_000).catch(() => []);
      const now = Date.now();
      for (const view of views) {
        receivedAt.set(Buffer.from(view.body).toString(), now);
        await consumer.ack(view).catch(() => undefined);
      }
    }
  })();
}, 60_000);

afterAll(async () => {
  polling = false;
  await poller;
  await consumer?.shutdown().catch(() => undefined);
  await producer?.shutdown().catch(() => undefined);
  await testNode?.stop();
}, 60_000);

async function waitFor(body: string, timeoutMs: number): Promise<number | undefined> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const at = receivedAt.get(body);
    if (at !== undefined) return at;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return receivedAt.get(body);
}

describe('timed messages through the Proxy', () => {
  it('delivers at the delivery time: never early, about a second late at most', async () => {
    const deliverAtMs = Date.now() + 3_000;
    await producer.send({ topic: TOPIC, body: Buffer.from('timer-3s'), deliveryTimestamp: new Date(deliverAtMs) });
    const at = await waitFor('timer-3s', 15_000);
    expect(at).toBeDefined();
    expect(at!).toBeGreaterThanOrEqual(deliverAtMs);
    expect(at! - deliverAtMs).toBeLessThanOrEqual(LATE_MS_MAX);
  }, 30_000);

  it('delivers a timestamp in the past at once', async () => {
    const sentAt = Date.now();
    await producer.send({ topic: TOPIC, body: Buffer.from('timer-past'), deliveryTimestamp: new Date(sentAt - 60_000) });
    const at = await waitFor('timer-past', 10_000);
    expect(at).toBeDefined();
    expect(at! - sentAt).toBeLessThanOrEqual(LATE_MS_MAX);
  }, 30_000);

  it('a recall before delivery means the message never arrives', async () => {
    const deliverAtMs = Date.now() + 3_000;
    const receipt = await producer.send({ topic: TOPIC, body: Buffer.from('timer-recalled'), deliveryTimestamp: new Date(deliverAtMs) });
    expect(receipt.recallHandle.length).toBeGreaterThan(0);
    const recalled = await producer.recallMessage(TOPIC, receipt.recallHandle);
    expect(recalled.messageId).toBe(receipt.messageId);
    // A control message due just after it shows the timer has passed that slot.
    await producer.send({ topic: TOPIC, body: Buffer.from('timer-after-recalled'), deliveryTimestamp: new Date(deliverAtMs + 1_000) });
    expect(await waitFor('timer-after-recalled', 15_000)).toBeDefined();
    expect(receivedAt.has('timer-recalled')).toBe(false);
  }, 30_000);

  it('a recall after delivery fails', async () => {
    const receipt = await producer.send({ topic: TOPIC, body: Buffer.from('timer-delivered'), deliveryTimestamp: new Date(Date.now() + 1_500) });
    expect(await waitFor('timer-delivered', 15_000)).toBeDefined();
    await expect(producer.recallMessage(TOPIC, receipt.recallHandle)).rejects.toThrow(/recall failed|timestamp invalid/);
  }, 30_000);
});
