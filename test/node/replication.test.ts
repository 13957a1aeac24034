/**
 * Master/slave replication between two broker processes' worth of actors over real sockets: a SYNC_MASTER
 * answers SLAVE_NOT_AVAILABLE without a slave and SUCCESS once its slave copies; the slave's CommitLog
 * is byte-identical to the master's and serves pulls of what the master stored (the topic it learns from
 * the master's metadata, slave-synchronize).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemotingClient } from '../../src/net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest, PullMessageRequestHeader, PullSysFlag } from '../../src/net/remoting/broker-headers.ts';
import { CreateTopicRequestHeader } from '../../src/net/remoting/broker-headers.ts';
import { decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { startTestCluster, type ClusterBroker, type TestCluster } from './fixtures/cluster.ts';

const TOPIC = 'ReplicatedTopic';
const REQUEST_MS = 10_000;

let cluster: TestCluster;
let master: ClusterBroker;
const clients: RemotingClient[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ name: 'replication', brokers: 0 });
  master = await cluster.startBroker('broker-a', { brokerRole: 'SYNC_MASTER', syncFlushTimeout: '3000' }, 'a-master');
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
    {
      producerGroup: 'replication-producer',
      topic: TOPIC,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 1,
      queueId: 0,
      sysFlag: 0,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties({ WAIT: 'true' }),
      reconsumeTimes: 0,
    },
    'V2',
  );
  return client.invoke(createRequest({ code: RequestCode.SEND_MESSAGE_V2, opaque: 0, extFields: header, body: Buffer.from(body) }), REQUEST_MS);
}

function pullBodies(client: RemotingClient, offset: number): Promise<string[]> {
  const header = PullMessageRequestHeader.format({
    consumerGroup: 'replication-group',
    topic: TOPIC,
    queueId: 0,
    queueOffset: offset,
    maxMsgNums: 32,
    sysFlag: PullSysFlag.FLAG_SUBSCRIPTION,
    commitOffset: 0,
    suspendTimeoutMillis: 0,
    subVersion: 0,
    subscription: '*',
    expressionType: 'TAG',
  });
  return client.invoke(createRequest({ code: RequestCode.PULL_MESSAGE, opaque: 0, extFields: header }), REQUEST_MS).then((response) => {
    const bodies: string[] = [];
    const body = response.body;
    if (response.code !== ResponseCode.SUCCESS || body === undefined) return bodies;
    for (let at = 0; at < body.length; ) {
      const record = decodeRecord(body, at);
      bodies.push(Buffer.from(record.body).toString());
      at += record.totalSize;
    }
    return bodies;
  });
}

async function createTopic(client: RemotingClient): Promise<void> {
  const created = await client.invoke(
    createRequest({
      code: RequestCode.UPDATE_AND_CREATE_TOPIC,
      opaque: 0,
      extFields: CreateTopicRequestHeader.format({ topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: 1, writeQueueNums: 1, perm: 6, topicFilterType: 'SINGLE_TAG' }),
    }),
    REQUEST_MS,
  );
  expect(created.code).toBe(ResponseCode.SUCCESS);
}

function commitLogBytes(broker: ClusterBroker): Buffer {
  const dir = path.join(broker.storeDir, 'commitlog');
  const files = fs.readdirSync(dir).sort();
  return Buffer.concat(files.map((file) => fs.readFileSync(path.join(dir, file))));
}

describe('SYNC_MASTER with a slave', () => {
  it('answers SLAVE_NOT_AVAILABLE without a slave, then SUCCESS once the slave copies, and the slave holds the same bytes', async () => {
    const producer = await connect(master);
    await createTopic(producer);
    const alone = await send(producer, 'before-slave');
    expect(alone.code, alone.remark).toBe(ResponseCode.SLAVE_NOT_AVAILABLE);

    const slave = await cluster.startBroker(
      'broker-a',
      // slaveReadEnable: the test reads from the slave (a SLAVE without it refuses pulls, as RocketMQ's does).
      { brokerRole: 'SLAVE', brokerId: '1', haMasterAddress: `127.0.0.1:${master.node.ports.ha}`, slaveReadEnable: 'true' },
      'a-slave',
    );
    // The slave catches up with what is there, then counts as in sync: sends are acknowledged again.
    await pollUntil('a SUCCESS from the SYNC_MASTER', async () => ((await send(producer, 'probe')).code === ResponseCode.SUCCESS ? true : undefined), 15_000, 100);
    const sent: string[] = [];
    for (let i = 0; i < 40; i++) {
      const body = `replicated-${i}-${'x'.repeat(i * 13)}`;
      const response = await send(producer, body);
      expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
      sent.push(body);
    }
    // Every acknowledged message is on the slave: its ConsumeQueue serves them to a pull.
    const reader = await connect(slave);
    // The topic is not created on the slave: it copies the master's topic configs (SlaveSynchronize).
    const onSlave = await pollUntil('the slave to serve every message', async () => {
      const bodies: string[] = [];
      for (let offset = 0; ; ) {
        const page = await pullBodies(reader, offset);
        if (page.length === 0) break;
        bodies.push(...page);
        offset += page.length;
      }
      return sent.every((body) => bodies.includes(body)) ? bodies : undefined;
    }, 10_000, 100);
    expect(onSlave[0]).toBe('before-slave');
    // Byte-identical CommitLogs up to what the master wrote.
    await pollUntil('identical CommitLogs', () => {
      const a = commitLogBytes(master);
      const b = commitLogBytes(slave);
      const written = a.length - [...a].reverse().findIndex((byte) => byte !== 0);
      return a.subarray(0, written).equals(b.subarray(0, written)) ? true : undefined;
    }, 10_000, 100);
  }, 60_000);
});
