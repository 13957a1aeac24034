/**
 * CLUSTER mode: `rocketmq-ts proxy` nodes in front of a NameServer and brokers in other nodes, reached over
 * Remoting. The official Producer sends through either proxy; messages land on the brokers; a broker's
 * transaction check-back reaches the producer through the proxy it registered with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { clientGrpc, grpcPb, pbResource, svc } from '../net/grpc/official-client.ts';
import { startTestCluster, type TestCluster } from '../node/fixtures/cluster.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { silentLogger } from './fixtures/silent-logger.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';
import { TransactionResolution } from '../../src/net/grpc/enums.ts';

const TOPIC = 'ClusterModeTopic';
let cluster: TestCluster;
const endpoints: string[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ name: 'proxy-cluster', brokers: 2 });
  for (const broker of cluster.brokers) {
    const client = await RemotingClient.connect(broker.brokerAddr);
    const created = await client.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '2', writeQueueNums: '2', perm: '6', topicFilterType: 'SINGLE_TAG' }),
      5_000,
    );
    expect(created.code).toBe(ResponseCode.SUCCESS);
    client.close();
  }
  const namesrv = await RemotingClient.connect(cluster.namesrvAddr);
  for (let deadline = Date.now() + 40_000; Date.now() < deadline; ) {
    const route = await namesrv.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic: TOPIC }), 5_000);
    if (route.code === ResponseCode.SUCCESS && (JSON.parse(Buffer.from(route.body!).toString()) as { queueDatas: unknown[] }).queueDatas.length === 2) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  namesrv.close();
  for (const name of ['proxy-1', 'proxy-2']) endpoints.push((await cluster.startProxy(name)).endpoint);
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

async function maxOffsets(): Promise<number> {
  let total = 0;
  for (const broker of cluster.brokers) {
    const client = await RemotingClient.connect(broker.brokerAddr);
    for (const queueId of [0, 1]) {
      const answer = await client.invoke(requestOf(RequestCode.GET_MAX_OFFSET, { topic: TOPIC, queueId: String(queueId) }), 5_000);
      total += Number(answer.extFields['offset']);
    }
    client.close();
  }
  return total;
}

describe('Proxy in CLUSTER mode', () => {
  it('sends through two interchangeable proxies to the brokers of the route', async () => {
    for (const endpoint of endpoints) {
      const producer = new Producer({ endpoints: endpoint, namespace: '', topics: [TOPIC], logger: silentLogger, requestTimeout: 5_000 });
      await producer.startup();
      try {
        for (let i = 0; i < 8; i++) {
          const receipt = await producer.send({ topic: TOPIC, tag: 'c', body: Buffer.from(`via ${endpoint} #${i}`) });
          expect(receipt.messageId.length).toBeGreaterThan(0);
        }
      } finally {
        await producer.shutdown();
      }
    }
    expect(await maxOffsets()).toBe(16);
  });

  it('takes an ack on one proxy for a message received through the other', async () => {
    const consumer = new SimpleConsumer({
      endpoints: endpoints[0]!,
      namespace: '',
      consumerGroup: 'cluster-mode-group',
      subscriptions: new Map([[TOPIC, new FilterExpression('*')]]),
      awaitDuration: 5_000,
      logger: silentLogger,
      requestTimeout: 5_000,
    });
    await consumer.startup();
    let received: MessageView[] = [];
    try {
      for (let round = 0; round < 10 && received.length === 0; round++) received = await consumer.receive(16, 30_000);
    } finally {
      await consumer.shutdown();
    }
    expect(received.length).toBeGreaterThan(0);
    const stub = new grpcPb.MessagingServiceClient(endpoints[1]!, clientGrpc.credentials.createInsecure());
    const ack = (handle: string): Promise<number> => {
      const request = new svc.AckMessageRequest();
      request.setGroup(pbResource('cluster-mode-group'));
      request.setTopic(pbResource(TOPIC));
      const entry = new svc.AckMessageEntry();
      entry.setMessageId(received[0]!.messageId);
      entry.setReceiptHandle(handle);
      request.setEntriesList([entry]);
      const metadata = new clientGrpc.Metadata();
      metadata.set('x-mq-client-id', 'other-proxy-client');
      return new Promise((resolve, reject) =>
        stub.ackMessage(request, metadata, (error: Error | null, response: any) => (error ? reject(error) : resolve(response.getEntriesList()[0].getStatus().getCode()))),
      );
    };
    try {
      expect(await ack(received[0]!.receiptHandle)).toBe(20000);
      // Acked once: the same handle is refused now, whichever proxy it goes to.
      expect(await ack(received[0]!.receiptHandle)).toBe(40013);
    } finally {
      stub.close();
    }
  });

  it('checks back an open transaction through the proxy its producer registered with', async () => {
    const TX_TOPIC = 'ClusterModeTxTopic';
    const broker = await cluster.startBroker('broker-tx', { transactionTimeOut: '1000', transactionCheckInterval: '1000' });
    const client = await RemotingClient.connect(broker.brokerAddr);
    try {
      const created = await client.invoke(
        requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, {
          topic: TX_TOPIC,
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
      await waitForRoute(cluster.namesrvAddr, TX_TOPIC);
      const checked: string[] = [];
      const producer = new Producer({
        endpoints: endpoints[0]!,
        namespace: '',
        topics: [TX_TOPIC],
        logger: silentLogger,
        requestTimeout: 5_000,
        checker: {
          async check(view: MessageView) {
            checked.push(Buffer.from(view.body).toString());
            return TransactionResolution.COMMIT as never;
          },
        },
      });
      await producer.startup();
      try {
        await producer.send({ topic: TX_TOPIC, body: Buffer.from('cluster-open-tx') }, producer.beginTransaction());
        let offset = 0;
        for (let deadline = Date.now() + 30_000; Date.now() < deadline && offset === 0; ) {
          const answer = await client.invoke(requestOf(RequestCode.GET_MAX_OFFSET, { topic: TX_TOPIC, queueId: '0' }), 5_000);
          offset = Number(answer.extFields['offset']);
          if (offset === 0) await new Promise((resolve) => setTimeout(resolve, 250));
        }
        expect(checked).toContain('cluster-open-tx');
        expect(offset).toBe(1);
      } finally {
        await producer.shutdown();
      }
    } finally {
      client.close();
    }
  }, 90_000);
});
