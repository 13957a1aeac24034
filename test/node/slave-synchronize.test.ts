/**
 * Metadata replication between two broker nodes over real sockets (RocketMQ's SlaveSynchronize): a
 * master with a topic, a subscription group and a committed consumer offset, and a SLAVE by config
 * (haMasterAddress) that finds its master through the NameServer and ends up answering the same topic
 * config, group and QUERY_CONSUMER_OFFSET, without anything created on it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSubscriptionGroupWrapper, parseTopicConfigSerializeWrapper } from '../../src/net/remoting/broker-bodies.ts';
import {
  CreateTopicRequestHeader,
  QueryConsumerOffsetRequestHeader,
  QueryConsumerOffsetResponseHeader,
  UpdateConsumerOffsetRequestHeader,
} from '../../src/net/remoting/broker-headers.ts';
import { RemotingClient } from '../../src/net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { startTestCluster, type ClusterBroker, type TestCluster } from './fixtures/cluster.ts';

const TOPIC = 'SyncedTopic';
const GROUP = 'SyncedGroup';
const REQUEST_MS = 5_000;

let cluster: TestCluster;
const clients: RemotingClient[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ name: 'slave-synchronize', brokers: 0 });
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await cluster?.stop();
});

async function connect(broker: ClusterBroker): Promise<RemotingClient> {
  const client = await RemotingClient.connect(broker.brokerAddr);
  clients.push(client);
  return client;
}

async function call(client: RemotingClient, code: number, extFields: Record<string, string> = {}, body?: Uint8Array): Promise<ReturnType<RemotingClient['invoke']>> {
  return client.invoke(createRequest({ code, opaque: 0, extFields, ...(body === undefined ? {} : { body }) }), REQUEST_MS);
}

async function queryOffset(client: RemotingClient, queueId: number): Promise<number | undefined> {
  const answer = await call(client, RequestCode.QUERY_CONSUMER_OFFSET, QueryConsumerOffsetRequestHeader.format({ consumerGroup: GROUP, topic: TOPIC, queueId, setZeroIfNotFound: false }));
  return answer.code === ResponseCode.SUCCESS ? QueryConsumerOffsetResponseHeader.parse(answer.extFields).offset : undefined;
}

describe('a SLAVE broker', () => {
  it("takes its master's topics, groups and consumer offsets", async () => {
    const master = await cluster.startBroker('broker-a', { brokerRole: 'ASYNC_MASTER' }, 'a-master');
    const onMaster = await connect(master);
    const created = await call(
      onMaster,
      RequestCode.UPDATE_AND_CREATE_TOPIC,
      CreateTopicRequestHeader.format({ topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: 2, writeQueueNums: 2, perm: 6, topicFilterType: 'SINGLE_TAG' }),
    );
    expect(created.code).toBe(ResponseCode.SUCCESS);
    const group = await call(onMaster, RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, Buffer.from(JSON.stringify({ groupName: GROUP, retryMaxTimes: 5 })));
    expect(group.code).toBe(ResponseCode.SUCCESS);
    for (const [queueId, offset] of [[0, 17], [1, 4]] as const) {
      const committed = await call(onMaster, RequestCode.UPDATE_CONSUMER_OFFSET, UpdateConsumerOffsetRequestHeader.format({ consumerGroup: GROUP, topic: TOPIC, queueId, commitOffset: offset }));
      expect(committed.code, committed.remark).toBe(ResponseCode.SUCCESS);
    }

    const slave = await cluster.startBroker('broker-a', { brokerRole: 'SLAVE', brokerId: '1', haMasterAddress: `127.0.0.1:${master.node.ports.ha}` }, 'a-slave');
    const onSlave = await connect(slave);
    const topics = await pollUntil('the topic on the slave', async () => {
      const answer = await call(onSlave, RequestCode.GET_ALL_TOPIC_CONFIG);
      const wrapper = parseTopicConfigSerializeWrapper(answer.body);
      return wrapper.topicConfigTable.has(TOPIC) ? wrapper : undefined;
    }, 20_000, 100);
    expect(topics.topicConfigTable.get(TOPIC)).toMatchObject({ readQueueNums: 2, writeQueueNums: 2, perm: 6 });
    const masterTopics = parseTopicConfigSerializeWrapper((await call(onMaster, RequestCode.GET_ALL_TOPIC_CONFIG)).body);
    expect(topics.dataVersion).toEqual(masterTopics.dataVersion);

    const groups = await pollUntil('the group on the slave', async () => {
      const wrapper = parseSubscriptionGroupWrapper((await call(onSlave, RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).body);
      return wrapper.subscriptionGroupTable.has(GROUP) ? wrapper : undefined;
    }, 20_000, 100);
    expect(groups.subscriptionGroupTable.get(GROUP)).toMatchObject({ retryMaxTimes: 5 });

    for (const queueId of [0, 1]) {
      const expected = await queryOffset(onMaster, queueId);
      expect(expected).toBeDefined();
      await pollUntil(`the offset of queue ${queueId} on the slave`, async () => ((await queryOffset(onSlave, queueId)) === expected ? true : undefined), 20_000, 100);
    }
  }, 60_000);
});
