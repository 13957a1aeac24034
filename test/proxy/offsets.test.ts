/**
 * The offset RPCs of the Proxy (UpdateOffset, GetOffset, QueryOffset) through the official client's
 * generated gRPC stub, against a `start` node; offsets are the broker's, as Remoting sees them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest } from '../../src/net/remoting/broker-headers.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';
import { clientGrpc, def, grpcPb, pbResource, pbTimestamp, svc } from '../net/grpc/official-client.ts';

type Any = any;
const TOPIC = 'ProxyOffsetTopic';
let testNode: TestNode;
let broker: RemotingClient;
let stub: Any;
let brokerName = '';

beforeAll(async () => {
  testNode = await startTestNode('proxy-offsets');
  broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  const created = await broker.invoke(
    requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '1', writeQueueNums: '1', perm: '6', topicFilterType: 'SINGLE_TAG' }),
    5_000,
  );
  expect(created.code).toBe(ResponseCode.SUCCESS);
  for (let i = 0; i < 3; i++) {
    const header = formatSendMessageRequest(
      { producerGroup: 'p', topic: TOPIC, defaultTopic: 'TBW102', defaultTopicQueueNums: 1, queueId: 0, sysFlag: 0, bornTimestamp: Date.now(), flag: 0, properties: '', reconsumeTimes: 0 },
      'V2',
    );
    const sent = await broker.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(`m${i}`)), 5_000);
    expect(sent.code).toBe(ResponseCode.SUCCESS);
  }
  // Wait until the NameServer routes the topic (the broker registers it on its next registration).
  brokerName = await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
  stub = new grpcPb.MessagingServiceClient(`127.0.0.1:${testNode.node.ports.grpc}`, clientGrpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  stub?.close();
  broker?.close();
  await testNode?.stop();
}, 60_000);

function call<T>(method: string, request: Any): Promise<T> {
  const metadata = new clientGrpc.Metadata();
  metadata.set('x-mq-client-id', 'offset-test-client');
  return new Promise((resolve, reject) => stub[method](request, metadata, (error: Error | null, response: T) => (error ? reject(error) : resolve(response))));
}

function queue(): Any {
  const mq = new def.MessageQueue();
  mq.setTopic(pbResource(TOPIC));
  mq.setId(0);
  const broker = new def.Broker();
  broker.setName(brokerName);
  mq.setBroker(broker);
  return mq;
}

async function queryOffset(policy: number, timestampMs?: number): Promise<{ code: number; offset: number }> {
  const request = new svc.QueryOffsetRequest();
  request.setMessageQueue(queue());
  request.setQueryOffsetPolicy(policy);
  if (timestampMs !== undefined) request.setTimestamp(pbTimestamp(timestampMs));
  const response: Any = await call('queryOffset', request);
  return { code: response.getStatus().getCode(), offset: response.getOffset() };
}

describe('offset RPCs through the Proxy', () => {
  it('answers the queue min and max offsets and searches by time', async () => {
    expect(await queryOffset(def.QueryOffsetPolicy.BEGINNING)).toEqual({ code: def.Code.OK, offset: 0 });
    expect(await queryOffset(def.QueryOffsetPolicy.END)).toEqual({ code: def.Code.OK, offset: 3 });
    const past = await queryOffset(def.QueryOffsetPolicy.TIMESTAMP, 0);
    expect(past.code).toBe(def.Code.OK);
    expect(past.offset).toBe(0);
  });

  it('stores a group offset with UpdateOffset and reads it back with GetOffset', async () => {
    const get = new svc.GetOffsetRequest();
    get.setGroup(pbResource('offset-group'));
    get.setMessageQueue(queue());
    const missing: Any = await call('getOffset', get);
    expect(missing.getStatus().getCode()).toBe(def.Code.OFFSET_NOT_FOUND);

    const update = new svc.UpdateOffsetRequest();
    update.setGroup(pbResource('offset-group'));
    update.setMessageQueue(queue());
    update.setOffset(2);
    const unknownGroup: Any = await call('updateOffset', update);
    expect(unknownGroup.getStatus().getCode()).toBe(def.Code.CONSUMER_GROUP_NOT_FOUND);
    const group = await broker.invoke(requestOf(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, Buffer.from(JSON.stringify({ groupName: 'offset-group' }))), 5_000);
    expect(group.code).toBe(ResponseCode.SUCCESS);
    const updated: Any = await call('updateOffset', update);
    expect(updated.getStatus().getCode()).toBe(def.Code.OK);

    const found: Any = await call('getOffset', get);
    expect(found.getStatus().getCode()).toBe(def.Code.OK);
    expect(found.getOffset()).toBe(2);
    // The same offset is what a Remoting consumer of the group sees.
    const remoting = await broker.invoke(requestOf(RequestCode.QUERY_CONSUMER_OFFSET, { consumerGroup: 'offset-group', topic: TOPIC, queueId: '0' }), 5_000);
    expect(remoting.extFields['offset']).toBe('2');
  });

  it('refuses a negative offset and a system consumer group', async () => {
    const update = new svc.UpdateOffsetRequest();
    update.setGroup(pbResource('offset-group'));
    update.setMessageQueue(queue());
    update.setOffset(-1);
    expect(((await call('updateOffset', update)) as Any).getStatus().getCode()).toBe(def.Code.ILLEGAL_OFFSET);
    const get = new svc.GetOffsetRequest();
    get.setGroup(pbResource('DEFAULT_CONSUMER'));
    get.setMessageQueue(queue());
    expect(((await call('getOffset', get)) as Any).getStatus().getCode()).toBe(def.Code.ILLEGAL_CONSUMER_GROUP);
  });
});
