/**
 * The official 5.x Node.js client (rocketmq-client-nodejs) consuming by POP through a `start` node's
 * Proxy in LOCAL mode: SimpleConsumers receive what a Producer sent, filtered by tag or SQL92, ack,
 * change the invisible duration, and two consumers of one group never get the same message twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { FilterType } from '../../src/net/grpc/enums.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

const TOPIC = 'ProxyPopTopic';
/** The Proxy's shortest long poll: a receive that finds nothing returns after it. */
const AWAIT_MS = 5_000;
const INVISIBLE_MS = 15_000;

let testNode: TestNode;
let producer: Producer;
const consumers: SimpleConsumer[] = [];

beforeAll(async () => {
  testNode = await startTestNode('proxy-simple-consumer');
  const broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  try {
    const created = await broker.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '4', writeQueueNums: '4', perm: '6', topicFilterType: 'SINGLE_TAG' }),
      5_000,
    );
    expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
  } finally {
    broker.close();
  }
  await waitForRoute(testNode, TOPIC);
  producer = new Producer({ endpoints: endpoints(), namespace: '', topics: [TOPIC], logger: silentLogger, requestTimeout: 5_000 });
  await producer.startup();
}, 60_000);

afterAll(async () => {
  for (const consumer of consumers) await consumer.shutdown().catch(() => undefined);
  await producer?.shutdown().catch(() => undefined);
  await testNode?.stop();
}, 60_000);

function endpoints(): string {
  return `127.0.0.1:${testNode.node.ports.grpc}`;
}

async function waitForRoute(node: TestNode, topic: string): Promise<void> {
  const namesrv = await RemotingClient.connect(`127.0.0.1:${node.node.ports.namesrv}`);
  try {
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline) {
      const answer = await namesrv.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic }), 5_000);
      if (answer.code === ResponseCode.SUCCESS) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`no route for ${topic}`);
  } finally {
    namesrv.close();
  }
}

async function consumer(group: string, filter: FilterExpression): Promise<SimpleConsumer> {
  const created = new SimpleConsumer({
    endpoints: endpoints(),
    namespace: '',
    consumerGroup: group,
    subscriptions: new Map([[TOPIC, filter]]),
    awaitDuration: AWAIT_MS,
    logger: silentLogger,
    requestTimeout: 5_000,
  });
  consumers.push(created);
  await created.startup();
  return created;
}

/** Sends messages `<prefix>-<i>`; returns their ids by body. */
async function send(prefix: string, count: number, tag: string, properties: Record<string, string> = {}): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const body = `${prefix}-${i}`;
    const receipt = await producer.send({ topic: TOPIC, tag, properties: new Map(Object.entries(properties)), body: Buffer.from(body) });
    ids.set(body, receipt.messageId);
  }
  return ids;
}

/** Receives until `count` messages came or a receive comes back empty; acks each unless told not to. */
async function receiveAll(from: SimpleConsumer, count: number, ack = true): Promise<MessageView[]> {
  const got: MessageView[] = [];
  while (got.length < count) {
    const batch = await from.receive(16, INVISIBLE_MS);
    if (batch.length === 0) break;
    for (const message of batch) {
      if (ack) await from.ack(message);
      got.push(message);
    }
  }
  return got;
}

const bodyOf = (message: MessageView): string => message.body.toString('utf8');

describe('SimpleConsumer through the Proxy (LOCAL)', () => {
  it('receives what the Producer sent with its tag filter, and acks it', async () => {
    const tagged = await send('tag-a', 5, 'TagA', { color: 'red' });
    await send('tag-b', 3, 'TagB');
    const simple = await consumer('GID_POP_TAG', new FilterExpression('TagA'));
    const got = await receiveAll(simple, 5);
    expect(got.map(bodyOf).sort()).toEqual([...tagged.keys()].sort());
    for (const message of got) {
      expect(message.messageId).toBe(tagged.get(bodyOf(message)));
      expect(message.tag).toBe('TagA');
      expect(message.topic).toBe(TOPIC);
      expect(message.deliveryAttempt).toBe(1);
      expect(message.properties.get('color')).toBe('red');
    }
    // Everything was acked (or filtered out): nothing more for this group.
    expect(await simple.receive(16, INVISIBLE_MS)).toEqual([]);
  }, 60_000);

  it('filters by SQL92', async () => {
    await send('sql-low', 2, 'TagS', { level: '1' });
    const high = await send('sql-high', 2, 'TagS', { level: '9' });
    const simple = await consumer('GID_POP_SQL', new FilterExpression("level > 5 AND TAGS = 'TagS'", FilterType.SQL));
    const got = await receiveAll(simple, 2);
    expect(got.map(bodyOf).sort()).toEqual([...high.keys()].sort());
  }, 60_000);

  it('refuses a malformed SQL92 expression with ILLEGAL_FILTER_EXPRESSION', async () => {
    const simple = await consumer('GID_POP_BAD_SQL', new FilterExpression('level > AND (', FilterType.SQL));
    await expect(simple.receive(1, INVISIBLE_MS)).rejects.toThrow(/40010/);
  }, 60_000);

  it('changes the invisible duration and acks with the new handle', async () => {
    const simple = await consumer('GID_POP_CHANGE', new FilterExpression('TagC'));
    await send('change', 1, 'TagC');
    const [message] = await receiveAll(simple, 1, false);
    expect(message).toBeDefined();
    const before = message!.receiptHandle;
    await simple.changeInvisibleDuration(message!, 30_000);
    expect(message!.receiptHandle).not.toBe(before);
    await simple.ack(message!);
    expect(await simple.receive(16, INVISIBLE_MS)).toEqual([]);
  }, 60_000);

  it('gives two consumers of one group every message exactly once', async () => {
    const sent = await send('shared', 40, 'TagD');
    const [one, two] = await Promise.all([consumer('GID_POP_SHARED', new FilterExpression('TagD')), consumer('GID_POP_SHARED', new FilterExpression('TagD'))]);
    const seen: string[] = [];
    const drain = async (from: SimpleConsumer): Promise<number> => {
      let mine = 0;
      for (;;) {
        if (seen.length >= sent.size) return mine;
        const batch = await from.receive(4, INVISIBLE_MS);
        if (batch.length === 0) return mine;
        for (const message of batch) {
          seen.push(bodyOf(message));
          mine++;
          await from.ack(message);
        }
      }
    };
    const counts = await Promise.all([drain(one!), drain(two!)]);
    expect(seen).toHaveLength(sent.size);
    expect(new Set(seen).size).toBe(sent.size);
    expect(new Set(seen)).toEqual(new Set(sent.keys()));
    expect(counts[0]! + counts[1]!).toBe(sent.size);
  }, 90_000);
});
