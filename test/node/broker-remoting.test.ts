/**
 * The Broker and NameServer of one `start` node, driven over real sockets with the project's Remoting
 * client: registration and routes, send, pull, long polling, offsets, and a hostile connection that
 * leaves the others unaffected.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningNode } from '../../src/node/start-node.ts';
import { startTestNode, type TestNode } from './fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest, PullMessageRequestHeader, PullSysFlag } from '../../src/net/remoting/broker-headers.ts';
import { decodeRecord, encodeMessageProperties } from '../../src/storage/message-record.ts';

let testNode: TestNode;
let node: RunningNode;
let broker: RemotingClient;
let namesrv: RemotingClient;

beforeAll(async () => {
  testNode = await startTestNode('broker-remoting');
  node = testNode.node;
  broker = await RemotingClient.connect(`127.0.0.1:${node.ports.broker}`);
  namesrv = await RemotingClient.connect(`127.0.0.1:${node.ports.namesrv}`);
}, 60_000);

afterAll(async () => {
  broker?.close();
  namesrv?.close();
  await testNode?.stop();
}, 60_000);

async function send(topic: string, body: string, tags: string): Promise<{ code: number; extFields: Record<string, string>; remark?: string }> {
  const header = formatSendMessageRequest(
    {
      producerGroup: 'it-producer',
      topic,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 4,
      queueId: 0,
      sysFlag: 0,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties({ TAGS: tags, WAIT: 'true' }),
      reconsumeTimes: 0,
    },
    'V2',
  );
  return broker.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(body)), 10_000);
}

function pullRequest(topic: string, queueOffset: number, suspendMs: number): Record<string, string> {
  return PullMessageRequestHeader.format({
    consumerGroup: 'it-consumer',
    topic,
    queueId: 0,
    queueOffset,
    maxMsgNums: 32,
    sysFlag: suspendMs > 0 ? PullSysFlag.FLAG_SUSPEND | PullSysFlag.FLAG_SUBSCRIPTION : PullSysFlag.FLAG_SUBSCRIPTION,
    commitOffset: 0,
    suspendTimeoutMillis: suspendMs,
    subscription: '*',
    subVersion: 0,
    expressionType: 'TAG',
  });
}

function bodiesOf(body: Uint8Array | undefined): string[] {
  const out: string[] = [];
  if (body === undefined) return out;
  for (let at = 0; at < body.length; ) {
    const record = decodeRecord(body, at);
    out.push(Buffer.from(record.body).toString());
    at += record.totalSize;
  }
  return out;
}

describe('a start node over Remoting', () => {
  it('registers its broker with its NameServer, which then routes TBW102', async () => {
    const deadline = Date.now() + 15_000;
    let code = -1;
    while (Date.now() < deadline) {
      const answer = await namesrv.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic: 'TBW102' }), 5_000);
      code = answer.code;
      if (code === ResponseCode.SUCCESS) {
        const route = JSON.parse(Buffer.from(answer.body!).toString()) as { brokerDatas: { brokerAddrs: Record<string, string> }[] };
        expect(route.brokerDatas[0]!.brokerAddrs['0']).toBe(`127.0.0.1:${node.ports.broker}`);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(code).toBe(ResponseCode.SUCCESS);
  });

  it('auto-creates a topic on send and answers the offset message id and queue offset', async () => {
    const first = await send('ItTopic', 'hello', 'a');
    expect(first.code, first.remark).toBe(ResponseCode.SUCCESS);
    expect(first.extFields['queueOffset']).toBe('0');
    expect(first.extFields['msgId']).toMatch(/^[0-9A-F]{32}$/);
    const second = await send('ItTopic', 'world', 'b');
    expect(second.extFields['queueOffset']).toBe('1');
  });

  it('pulls what was sent, byte for byte, with the offsets in the header', async () => {
    const answer = await broker.invoke(requestOf(RequestCode.PULL_MESSAGE, pullRequest('ItTopic', 0, 0)), 10_000);
    expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(answer.body)).toEqual(['hello', 'world']);
    expect(answer.extFields['nextBeginOffset']).toBe('2');
    expect(answer.extFields['maxOffset']).toBe('2');
    expect(answer.extFields['minOffset']).toBe('0');
  });

  it('holds a pull until a message arrives (long polling), without holding up other requests', async () => {
    const started = Date.now();
    const held = broker.invoke(requestOf(RequestCode.PULL_MESSAGE, pullRequest('ItTopic', 2, 10_000)), 20_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The same connection keeps serving while the pull is held.
    const sent = await send('ItTopic', 'late', 'c');
    expect(sent.code).toBe(ResponseCode.SUCCESS);
    const answer = await held;
    expect(answer.code).toBe(ResponseCode.SUCCESS);
    expect(bodiesOf(answer.body)).toEqual(['late']);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stores and answers consumer offsets', async () => {
    const update = await broker.invoke(
      requestOf(RequestCode.UPDATE_CONSUMER_OFFSET, { consumerGroup: 'it-consumer', topic: 'ItTopic', queueId: '0', commitOffset: '2' }),
      5_000,
    );
    expect(update.code, update.remark).toBe(ResponseCode.SUCCESS);
    const query = await broker.invoke(requestOf(RequestCode.QUERY_CONSUMER_OFFSET, { consumerGroup: 'it-consumer', topic: 'ItTopic', queueId: '0' }), 5_000);
    expect(query.code).toBe(ResponseCode.SUCCESS);
    expect(query.extFields['offset']).toBe('2');
  });

  it('drops a connection that sends garbage and keeps serving everyone else', async () => {
    const hostile = net.connect(node.ports.broker, '127.0.0.1');
    await new Promise((resolve) => hostile.once('connect', resolve));
    const closed = new Promise((resolve) => hostile.once('close', resolve));
    hostile.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 9, 9, 9, 9]));
    await closed;
    const answer = await send('ItTopic', 'still here', 'd');
    expect(answer.code).toBe(ResponseCode.SUCCESS);
  });
});
