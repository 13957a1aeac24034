/**
 * Transactional messages with the official 5.x Node.js client through the Proxy (LOCAL): commit makes a
 * message visible once, rollback never; a half message left open is checked back over the producer's
 * Telemetry stream (RecoverOrphanedTransactionCommand) and the checker's answer (commit or rollback)
 * decides it; one whose checker never knows is discarded after transactionCheckMax checks into
 * TRANS_CHECK_MAX_TIME_TOPIC and never delivered. Short transactionTimeOut / transactionCheckInterval make
 * the checks come within seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { TransactionResolution } from '../../src/net/grpc/enums.ts';
import { pullRecords, waitForRoute } from './fixtures/broker-reads.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

const TOPIC = 'ProxyTransactionTopic';
const GROUP = 'ProxyTransactionGroup';
const CHECK_MAX = 2;

let testNode: TestNode;
let broker: RemotingClient;
let producer: Producer;
let consumer: SimpleConsumer;
/** What the checker answers, by message body; bodies not listed stay unknown. */
const verdicts = new Map<string, number>();
const checked: string[] = [];

beforeAll(async () => {
  testNode = await startTestNode('proxy-transactions', 'warn', {
    transactionTimeOut: '1000',
    transactionCheckInterval: '1000',
    transactionCheckMax: String(CHECK_MAX),
  });
  broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  const created = await broker.invoke(
    requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, {
      topic: TOPIC,
      defaultTopic: 'TBW102',
      readQueueNums: '1',
      writeQueueNums: '1',
      perm: '6',
      topicFilterType: 'SINGLE_TAG',
      attributes: '+message.type=TRANSACTION',
    }),
    5_000,
  );
  expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
  await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
  const endpoints = `127.0.0.1:${testNode.node.ports.grpc}`;
  producer = new Producer({
    endpoints,
    namespace: '',
    topics: [TOPIC],
    logger: silentLogger,
    requestTimeout: 5_000,
    checker: {
      async check(view: MessageView) {
        const body = Buffer.from(view.body).toString();
        checked.push(body);
        return (verdicts.get(body) ?? TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED) as never;
      },
    },
  });
  await producer.startup();
  consumer = new SimpleConsumer({
    endpoints,
    namespace: '',
    consumerGroup: GROUP,
    subscriptions: new Map([[TOPIC, FilterExpression.SUB_ALL]]),
    awaitDuration: 5_000,
    logger: silentLogger,
    requestTimeout: 5_000,
  });
  await consumer.startup();
}, 60_000);

afterAll(async () => {
  await consumer?.shutdown().catch(() => undefined);
  await producer?.shutdown().catch(() => undefined);
  broker?.close();
  await testNode?.stop();
}, 60_000);

/** Everything the consumer receives until `untilBodies` are all in, or `rounds` receives have passed. */
async function receiveBodies(untilBodies: readonly string[], rounds: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let round = 0; round < rounds && !untilBodies.every((body) => bodies.includes(body)); round++) {
    for (const view of await consumer.receive(32, 15_000)) {
      bodies.push(Buffer.from(view.body).toString());
      await consumer.ack(view);
    }
  }
  return bodies;
}

async function sendHalf(body: string): Promise<{ commit(): Promise<void>; rollback(): Promise<void> }> {
  const transaction = producer.beginTransaction();
  await producer.send({ topic: TOPIC, body: Buffer.from(body) }, transaction);
  return transaction;
}

describe('transactions through the Proxy', () => {
  it('commit makes the message visible once; rollback never', async () => {
    const committed = await sendHalf('tx-commit');
    const rolledBack = await sendHalf('tx-rollback');
    await committed.commit();
    await rolledBack.rollback();
    const bodies = await receiveBodies(['tx-commit'], 6);
    expect(bodies.filter((body) => body === 'tx-commit')).toHaveLength(1);
    expect(bodies).not.toContain('tx-rollback');
  }, 90_000);

  it('checks back an open transaction and follows the checker: commit delivers, rollback does not', async () => {
    verdicts.set('tx-check-commit', TransactionResolution.COMMIT);
    verdicts.set('tx-check-rollback', TransactionResolution.ROLLBACK);
    await sendHalf('tx-check-commit');
    await sendHalf('tx-check-rollback');
    const bodies = await receiveBodies(['tx-check-commit'], 10);
    expect(bodies.filter((body) => body === 'tx-check-commit')).toHaveLength(1);
    expect(checked).toContain('tx-check-commit');
    // The rollback verdict came through the same check round or the next one.
    for (let waited = 0; waited < 10_000 && !checked.includes('tx-check-rollback'); waited += 200) await new Promise((r) => setTimeout(r, 200));
    expect(checked).toContain('tx-check-rollback');
    expect(await receiveBodies([], 2)).not.toContain('tx-check-rollback');
  }, 120_000);

  it('discards a transaction nobody resolves after transactionCheckMax checks', async () => {
    await sendHalf('tx-unknown');
    let discarded = false;
    for (let waited = 0; waited < 30_000 && !discarded; waited += 500) {
      const records = await pullRecords(broker, 'TRANS_CHECK_MAX_TIME_TOPIC', 0, 'proxy-tx-check');
      discarded = records.some((record) => Buffer.from(record.body).toString() === 'tx-unknown');
      if (!discarded) await new Promise((r) => setTimeout(r, 500));
    }
    expect(discarded).toBe(true);
    expect(checked.filter((body) => body === 'tx-unknown').length).toBeLessThanOrEqual(CHECK_MAX);
    expect(await receiveBodies([], 2)).not.toContain('tx-unknown');
  }, 120_000);
});
