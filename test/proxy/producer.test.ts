/**
 * The official 5.x Node.js client (rocketmq-client-nodejs) against a `start` node's Proxy in LOCAL mode:
 * a Producer sends with tags, keys, properties and message groups; what the broker stored is read back
 * over Remoting PULL, byte for byte, with the properties the Proxy set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from 'rocketmq-client-nodejs';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import type { RecordView } from '../../src/storage/message-record.ts';
import { pullRecords, waitForRoute } from './fixtures/broker-reads.ts';
import { queueForMessageGroup } from '../../src/net/grpc/send-message.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

let testNode: TestNode;
let producer: Producer;
let broker: RemotingClient;
const TOPIC = 'ProxyProducerTopic';
/** A FIFO topic (`+message.type=FIFO`): message groups go to topics that declare them. */
const FIFO_TOPIC = 'ProxyProducerFifoTopic';

beforeAll(async () => {
  testNode = await startTestNode('proxy-producer');
  broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  // Create the topic with 4 queues so the Proxy routes it.
  const created = await broker.invoke(
    requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '4', writeQueueNums: '4', perm: '6', topicFilterType: 'SINGLE_TAG' }),
    5_000,
  );
  expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
  const fifo = await broker.invoke(
    requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, {
      topic: FIFO_TOPIC,
      defaultTopic: 'TBW102',
      readQueueNums: '4',
      writeQueueNums: '4',
      perm: '6',
      topicFilterType: 'SINGLE_TAG',
      attributes: '+message.type=FIFO',
    }),
    5_000,
  );
  expect(fifo.code, fifo.remark).toBe(ResponseCode.SUCCESS);
  await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
  await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, FIFO_TOPIC);
  producer = new Producer({ endpoints: `127.0.0.1:${testNode.node.ports.grpc}`, namespace: '', topics: [TOPIC, FIFO_TOPIC], logger: silentLogger, requestTimeout: 5_000 });
  await producer.startup();
}, 60_000);

afterAll(async () => {
  await producer?.shutdown().catch(() => undefined);
  broker?.close();
  await testNode?.stop();
}, 60_000);

async function pullAll(queueId: number, topic = TOPIC): Promise<RecordView[]> {
  return pullRecords(broker, topic, queueId, 'proxy-producer-check');
}

describe('Producer through the Proxy (LOCAL)', () => {
  it('sends with tag, keys and properties, and the broker stores them', async () => {
    const receipt = await producer.send({ topic: TOPIC, tag: 'TagA', keys: ['key-1', 'key-2'], properties: new Map([['color', 'red']]), body: Buffer.from('hello proxy') });
    expect(receipt.messageId).toMatch(/^[0-9A-F]+$/);
    const stored = (await Promise.all([0, 1, 2, 3].map((queueId) => pullAll(queueId)))).flat();
    const record = stored.find((candidate) => Buffer.from(candidate.body).toString() === 'hello proxy');
    expect(record).toBeDefined();
    const properties = record!.propertiesMap();
    expect(properties.get('TAGS')).toBe('TagA');
    expect(properties.get('KEYS')).toBe('key-1 key-2');
    expect(properties.get('color')).toBe('red');
    expect(properties.get('UNIQ_KEY')).toBe(receipt.messageId);
  });

  it('puts every message of a message group in the queue the group hashes to', async () => {
    for (let i = 0; i < 6; i++) {
      await producer.send({ topic: FIFO_TOPIC, tag: 'fifo', messageGroup: 'order-7', body: Buffer.from(`fifo-${i}`) });
    }
    const expectedQueue = queueForMessageGroup('order-7', 4);
    const inQueue = (await pullAll(expectedQueue, FIFO_TOPIC)).map((record) => Buffer.from(record.body).toString()).filter((body) => body.startsWith('fifo-'));
    expect(inQueue).toEqual(['fifo-0', 'fifo-1', 'fifo-2', 'fifo-3', 'fifo-4', 'fifo-5']);
  });

  it('refuses (in the client, from the route accept types) a message group on a NORMAL topic', async () => {
    await expect(producer.send({ topic: TOPIC, messageGroup: 'order-8', body: Buffer.from('fifo on normal') })).rejects.toThrow(/message type/i);
  });

  it('refuses a message with a reserved property name, with RocketMQ code', async () => {
    await expect(producer.send({ topic: TOPIC, properties: new Map([['UNIQ_KEY', 'x']]), body: Buffer.from('bad') })).rejects.toThrow(/40007|property is used by system/);
  });
});
