/**
 * Controller mode over real sockets: a NameServer with the controller embedded and two brokers of one
 * broker set that get their ids and roles from it. The first to register becomes master and replicates
 * to the other; when the master stops, the other is elected, serves what the old master had
 * acknowledged, and takes sends. The election is a clean one (`enableElectUncleanMaster` off): the slave is
 * promoted only because the master had added it to the SyncStateSet. Nothing is created on the slave: it
 * copies the master's topics, groups and consumer offsets (slave-synchronize), so the promoted broker
 * answers QUERY_CONSUMER_OFFSET with the offset committed on the old master.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemotingClient } from '../../src/net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import {
  CreateTopicRequestHeader,
  formatSendMessageRequest,
  QueryConsumerOffsetRequestHeader,
  QueryConsumerOffsetResponseHeader,
  UpdateConsumerOffsetRequestHeader,
} from '../../src/net/remoting/broker-headers.ts';
import { encodeMessageProperties } from '../../src/storage/message-record.ts';
import { readQueueBodies } from './fixtures/read-queue.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { startTestCluster, type ClusterBroker, type TestCluster } from './fixtures/cluster.ts';

const TOPIC = 'FailoverTopic';
const GROUP = 'failover-consumers';
const COMMITTED_OFFSET = 7;
const REQUEST_MS = 5_000;

let cluster: TestCluster;
const clients: RemotingClient[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({
    name: 'controller-failover',
    brokers: 0,
    // A clean election: the slave must have joined the SyncStateSet (its HA handshake names its broker id).
    namesrvOverrides: { enableControllerInNamesrv: 'true', controllerListenPort: '0', scanNotActiveBrokerInterval: '1000' },
  });
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

function send(client: RemotingClient, body: string): Promise<RemotingCommand> {
  const header = formatSendMessageRequest(
    { producerGroup: 'failover-producer', topic: TOPIC, defaultTopic: 'TBW102', defaultTopicQueueNums: 1, queueId: 0, sysFlag: 0, bornTimestamp: Date.now(), flag: 0, properties: encodeMessageProperties({ WAIT: 'true' }), reconsumeTimes: 0 },
    'V2',
  );
  return client.invoke(createRequest({ code: RequestCode.SEND_MESSAGE_V2, opaque: 0, extFields: header, body: Buffer.from(body) }), REQUEST_MS);
}

async function createTopic(client: RemotingClient): Promise<void> {
  const extFields = CreateTopicRequestHeader.format({ topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: 1, writeQueueNums: 1, perm: 6, topicFilterType: 'SINGLE_TAG' });
  const created = await client.invoke(createRequest({ code: RequestCode.UPDATE_AND_CREATE_TOPIC, opaque: 0, extFields }), REQUEST_MS);
  expect(created.code).toBe(ResponseCode.SUCCESS);
}

/** Creates the consumer group and commits its offset on queue 0 (UPDATE_CONSUMER_OFFSET). */
async function commitOffset(client: RemotingClient, offset: number): Promise<void> {
  const group = await client.invoke(createRequest({ code: RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, opaque: 0, body: Buffer.from(JSON.stringify({ groupName: GROUP })) }), REQUEST_MS);
  expect(group.code).toBe(ResponseCode.SUCCESS);
  const extFields = UpdateConsumerOffsetRequestHeader.format({ consumerGroup: GROUP, topic: TOPIC, queueId: 0, commitOffset: offset });
  const committed = await client.invoke(createRequest({ code: RequestCode.UPDATE_CONSUMER_OFFSET, opaque: 0, extFields }), REQUEST_MS);
  expect(committed.code, committed.remark).toBe(ResponseCode.SUCCESS);
}

async function queryOffset(client: RemotingClient): Promise<number | undefined> {
  const extFields = QueryConsumerOffsetRequestHeader.format({ consumerGroup: GROUP, topic: TOPIC, queueId: 0, setZeroIfNotFound: false });
  const answer = await client.invoke(createRequest({ code: RequestCode.QUERY_CONSUMER_OFFSET, opaque: 0, extFields }), REQUEST_MS);
  return answer.code === ResponseCode.SUCCESS ? QueryConsumerOffsetResponseHeader.parse(answer.extFields).offset : undefined;
}

function readAll(client: RemotingClient): Promise<string[]> {
  return readQueueBodies(client, TOPIC, 0, 'failover-group', REQUEST_MS);
}

describe('controller mode', () => {
  it('makes the first broker master, replicates to the second, and promotes it when the master stops', async () => {
    const controllerAddr = `127.0.0.1:${cluster.namesrv.ports.controller}`;
    // slaveReadEnable: the test reads from the second broker while it is a slave.
    const overrides = {
      enableControllerMode: 'true', controllerAddr, brokerRole: 'ASYNC_MASTER', brokerHeartbeatInterval: '300', syncBrokerMetadataPeriod: '500', checkSyncStateSetPeriod: '300',
      slaveReadEnable: 'true',
    };
    const first = await cluster.startBroker('broker-a', overrides, 'a-1');
    const firstClient = await connect(first);
    await createTopic(firstClient);
    // The first broker becomes master once the controller has answered.
    await pollUntil('the first broker to take sends', async () => ((await send(firstClient, 'warm-up')).code === ResponseCode.SUCCESS ? true : undefined), 15_000, 100);
    await commitOffset(firstClient, COMMITTED_OFFSET);
    // No topic is created on the second broker: as a slave it copies the master's metadata.
    const second = await cluster.startBroker('broker-a', overrides, 'a-2');
    const secondClient = await connect(second);
    // A slave refuses sends.
    const refused = await send(secondClient, 'to-the-slave');
    expect(refused.code).not.toBe(ResponseCode.SUCCESS);
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      const body = `before-failover-${i}`;
      const response = await send(firstClient, body);
      expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
      acknowledged.push(body);
    }
    // Replicated before the master goes away, and the master has put the slave in its SyncStateSet.
    await pollUntil('the slave to hold every acknowledged message', async () => {
      const onSlave = await readAll(secondClient);
      return acknowledged.every((body) => onSlave.includes(body)) ? true : undefined;
    }, 15_000, 100);
    await pollUntil("the master's consumer offset on the slave", async () => ((await queryOffset(secondClient)) === COMMITTED_OFFSET ? true : undefined), 15_000, 100);
    const controller = await RemotingClient.connect(controllerAddr);
    clients.push(controller);
    await pollUntil('a SyncStateSet of two', async () => {
      const answer = await controller.invoke(createRequest({ code: RequestCode.CONTROLLER_GET_SYNC_STATE_DATA, opaque: 0, body: Buffer.from(JSON.stringify(['broker-a'])) }), REQUEST_MS);
      const text = Buffer.from(answer.body ?? []).toString();
      if (answer.code !== ResponseCode.SUCCESS) return undefined;
      const set = (JSON.parse(text) as { replicasInfoTable: Record<string, { inSyncReplicas: { brokerId: number }[] }> }).replicasInfoTable['broker-a'];
      return set !== undefined && set.inSyncReplicas.length === 2 ? set : undefined;
    }, 15_000, 100);

    await first.stop();
    const began = Date.now();
    await pollUntil('the second broker to take sends', async () => ((await send(secondClient, 'after-failover')).code === ResponseCode.SUCCESS ? true : undefined), 20_000, 100);
    expect(Date.now() - began).toBeLessThan(20_000);
    const onNewMaster = await readAll(secondClient);
    for (const body of acknowledged) expect(onNewMaster).toContain(body);
    expect(onNewMaster).toContain('after-failover');
    // Consumption continues where it was committed on the old master.
    expect(await queryOffset(secondClient)).toBe(COMMITTED_OFFSET);
  }, 90_000);
});
