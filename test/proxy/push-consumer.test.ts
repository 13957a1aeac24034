/**
 * The official PushConsumer through the Proxy (LOCAL): messages a Producer sends are consumed once; a
 * message whose consumption keeps failing comes back with attempt + 1 after the retry policy's delay, and
 * after the group's max attempts (retryMaxTimes + 1, read by the Proxy from the broker's subscription
 * group) lands in %DLQ%<group> with its origin recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsumeResult, Producer, PushConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { pullRecords, waitForRoute } from './fixtures/broker-reads.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

const TOPIC = 'PushTopic';
const GROUP = 'push-group';
let testNode: TestNode;
let broker: RemotingClient;
let producer: Producer;
let endpoint: string;

beforeAll(async () => {
  testNode = await startTestNode('proxy-push');
  endpoint = `127.0.0.1:${testNode.node.ports.grpc}`;
  broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  const created = await broker.invoke(
    requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '2', writeQueueNums: '2', perm: '6', topicFilterType: 'SINGLE_TAG' }),
    5_000,
  );
  expect(created.code).toBe(ResponseCode.SUCCESS);
  // retryMaxTimes 1: two delivery attempts, then the DLQ.
  const group = await broker.invoke(requestOf(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, Buffer.from(JSON.stringify({ groupName: GROUP, retryMaxTimes: 1 }))), 5_000);
  expect(group.code).toBe(ResponseCode.SUCCESS);
  await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
  producer = new Producer({ endpoints: endpoint, namespace: '', topics: [TOPIC], logger: silentLogger, requestTimeout: 5_000 });
  await producer.startup();
}, 60_000);

afterAll(async () => {
  await producer?.shutdown().catch(() => undefined);
  broker?.close();
  await testNode?.stop();
}, 60_000);

async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('condition not met in time');
}

async function dlqBodies(): Promise<{ body: string; originTopic: string | undefined }[]> {
  const records = await pullRecords(broker, `%DLQ%${GROUP}`, 0, 'dlq-reader');
  return records.map((record) => ({ body: Buffer.from(record.body).toString(), originTopic: record.propertiesMap().get('DLQ_ORIGIN_TOPIC') }));
}

describe('PushConsumer through the Proxy', () => {
  it('consumes, retries a failing message with attempt + 1, then dead-letters it', async () => {
    const consumed = new Map<string, (number | undefined)[]>();
    const consumer = new PushConsumer({
      endpoints: endpoint,
      namespace: '',
      consumerGroup: GROUP,
      subscriptions: new Map([[TOPIC, '*']]),
      logger: silentLogger,
      requestTimeout: 5_000,
      messageListener: {
        consume(message: MessageView): ConsumeResult {
          const body = message.body.toString();
          consumed.set(body, [...(consumed.get(body) ?? []), message.deliveryAttempt]);
          return body === 'poison' ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
        },
      },
    });
    await consumer.startup();
    try {
      for (const body of ['a', 'b', 'c', 'poison']) await producer.send({ topic: TOPIC, tag: 't', body: Buffer.from(body) });
      await until(() => ['a', 'b', 'c'].every((body) => consumed.has(body)), 20_000);
      await until(async () => (await dlqBodies()).some((entry) => entry.body === 'poison'), 40_000);
      expect(consumed.get('a')).toEqual([1]);
      expect(consumed.get('b')).toEqual([1]);
      expect(consumed.get('c')).toEqual([1]);
      expect(consumed.get('poison')).toEqual([1, 2]);
      const dead = (await dlqBodies()).find((entry) => entry.body === 'poison');
      expect(dead?.originTopic).toBe(TOPIC);
    } finally {
      await consumer.shutdown();
    }
  }, 90_000);
});
