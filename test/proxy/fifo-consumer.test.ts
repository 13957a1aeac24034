/**
 * FIFO end to end with the official 5.x Node.js client: a Producer sends message groups to a FIFO topic,
 * a SimpleConsumer of an orderly group (consumeMessageOrderly) receives them through the Proxy's POP.
 * As RocketMQ's orderly POP does, a queue's batch is delivered in queue order and the queue stays locked
 * for the group until the batch is acked (or its invisible time expires), so a message group's next
 * message never comes while an earlier one is in flight, and each group arrives in the order it was sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

const TOPIC = 'ProxyFifoTopic';
const GROUP = 'ProxyFifoGroup';
const AWAIT_MS = 5_000;
const INVISIBLE_MS = 20_000;

let testNode: TestNode;
let producer: Producer;
let consumer: SimpleConsumer;

beforeAll(async () => {
  testNode = await startTestNode('proxy-fifo');
  const broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  try {
    const created = await broker.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, {
        topic: TOPIC,
        defaultTopic: 'TBW102',
        readQueueNums: '2',
        writeQueueNums: '2',
        perm: '6',
        topicFilterType: 'SINGLE_TAG',
        attributes: '+message.type=FIFO',
      }),
      5_000,
    );
    expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
    const group = await broker.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, Buffer.from(JSON.stringify({ groupName: GROUP, consumeMessageOrderly: true, retryMaxTimes: 16 }))),
      5_000,
    );
    expect(group.code, group.remark).toBe(ResponseCode.SUCCESS);
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
    consumerGroup: GROUP,
    subscriptions: new Map([[TOPIC, FilterExpression.SUB_ALL]]),
    awaitDuration: AWAIT_MS,
    logger: silentLogger,
    requestTimeout: 5_000,
  });
  await consumer.startup();
}, 60_000);

afterAll(async () => {
  await consumer?.shutdown().catch(() => undefined);
  await producer?.shutdown().catch(() => undefined);
  await testNode?.stop();
}, 60_000);

const bodyOf = (view: MessageView): string => Buffer.from(view.body).toString();

describe('FIFO consumption through the Proxy', () => {
  it('keeps each message group in order and holds its queue until the delivered batch is acked', async () => {
    const sent: Record<string, string[]> = { A: [], B: [] };
    for (let i = 0; i < 4; i++) {
      for (const group of ['A', 'B']) {
        const body = `${group}-${i}`;
        await producer.send({ topic: TOPIC, messageGroup: `order-${group}`, body: Buffer.from(body) });
        sent[group]!.push(body);
      }
    }
    const received: Record<string, string[]> = { A: [], B: [] };
    let held = false;
    for (let round = 0; round < 40 && received['A']!.length + received['B']!.length < 8; round++) {
      // The first batch is small, so the rest of each group is still waiting behind it.
      const views = await consumer.receive(held ? 32 : 2, INVISIBLE_MS);
      if (views.length === 0) continue;
      if (!held) {
        // While a batch is in flight, the groups in it are locked: nothing more of them is delivered.
        const again = await consumer.receive(32, INVISIBLE_MS);
        const lockedGroups = new Set(views.map((view) => view.messageGroup));
        expect(again.filter((view) => lockedGroups.has(view.messageGroup))).toEqual([]);
        views.push(...again);
        held = true;
      }
      for (const view of views) {
        received[bodyOf(view).slice(0, 1)]!.push(bodyOf(view));
        await consumer.ack(view);
      }
    }
    expect(received).toEqual(sent);
  }, 120_000);
});
