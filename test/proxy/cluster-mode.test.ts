/**
 * CLUSTER mode: `rocketmq-ts proxy` nodes in front of a NameServer and brokers in other nodes, reached over
 * Remoting. The official Producer sends through either proxy; messages land on the brokers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from 'rocketmq-client-nodejs';
import { startTestCluster, type TestCluster } from '../node/fixtures/cluster.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { silentLogger } from './fixtures/silent-logger.ts';

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
});
