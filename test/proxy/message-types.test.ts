/**
 * Topic message types through the Proxy: QueryRoute answers each topic's accept_message_types from its
 * `message.type` attribute, and SendMessage refuses a message whose type differs from the topic's with
 * MESSAGE_PROPERTY_CONFLICT_WITH_TYPE (40014), as RocketMQ's Proxy does. The requests are built with the
 * official client's generated classes and sent with its stub, so the client's own local check (which
 * refuses such sends before they leave) does not hide the server's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';
import { clientGrpc, def, grpcPb, pbEndpoints, pbResource, pbTimestamp, svc } from '../net/grpc/official-client.ts';
import { Code } from '../../src/net/grpc/code.ts';
import { MessageType } from '../../src/net/grpc/enums.ts';

type Any = any;
const NORMAL_TOPIC = 'TypesNormalTopic';
const FIFO_TOPIC = 'TypesFifoTopic';
const TRANSACTION_TOPIC = 'TypesTransactionTopic';
let testNode: TestNode;
let broker: RemotingClient;
let stub: Any;
let sequence = 0;

async function createTopic(topic: string, attributes?: string): Promise<void> {
  const fields: Record<string, string> = { topic, defaultTopic: 'TBW102', readQueueNums: '2', writeQueueNums: '2', perm: '6', topicFilterType: 'SINGLE_TAG' };
  if (attributes !== undefined) fields['attributes'] = attributes;
  const created = await broker.invoke(requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, fields), 5_000);
  expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
}

beforeAll(async () => {
  testNode = await startTestNode('proxy-message-types');
  broker = await RemotingClient.connect(`127.0.0.1:${testNode.node.ports.broker}`);
  await createTopic(NORMAL_TOPIC);
  await createTopic(FIFO_TOPIC, '+message.type=FIFO');
  await createTopic(TRANSACTION_TOPIC, '+message.type=TRANSACTION');
  const namesrv = `127.0.0.1:${testNode.node.ports.namesrv}`;
  await Promise.all([NORMAL_TOPIC, FIFO_TOPIC, TRANSACTION_TOPIC].map((topic) => waitForRoute(namesrv, topic)));
  stub = new grpcPb.MessagingServiceClient(`127.0.0.1:${testNode.node.ports.grpc}`, clientGrpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  stub?.close();
  broker?.close();
  await testNode?.stop();
}, 60_000);

function call<T>(method: string, request: Any): Promise<T> {
  const metadata = new clientGrpc.Metadata();
  metadata.set('x-mq-client-id', 'message-types-test-client');
  return new Promise((resolve, reject) => stub[method](request, metadata, (error: Error | null, response: T) => (error ? reject(error) : resolve(response))));
}

async function acceptTypes(topic: string): Promise<number[]> {
  const request = new svc.QueryRouteRequest().setTopic(pbResource(topic)).setEndpoints(pbEndpoints(1, '127.0.0.1', testNode.node.ports.grpc!));
  const response: Any = await call('queryRoute', request);
  expect(response.getStatus().getCode()).toBe(Code.OK);
  const queues: Any[] = response.getMessageQueuesList();
  expect(queues.length).toBeGreaterThan(0);
  return queues[0].getAcceptMessageTypesList();
}

/** Sends one message of the given shape with the raw stub; answers the entry's status code and message. */
async function send(topic: string, shape: { group?: string; transaction?: boolean; deliverAtMs?: number }): Promise<{ code: number; message: string }> {
  const system = new def.SystemProperties()
    .setMessageId(`0A000001000000000000000000${String(++sequence).padStart(6, '0')}`)
    .setBodyEncoding(def.Encoding.IDENTITY)
    .setBornTimestamp(pbTimestamp(Date.now()))
    .setBornHost('127.0.0.1')
    .setMessageType(shape.transaction === true ? MessageType.TRANSACTION : shape.group !== undefined ? MessageType.FIFO : shape.deliverAtMs !== undefined ? MessageType.DELAY : MessageType.NORMAL);
  if (shape.group !== undefined) system.setMessageGroup(shape.group);
  if (shape.deliverAtMs !== undefined) system.setDeliveryTimestamp(pbTimestamp(shape.deliverAtMs));
  const message = new def.Message().setTopic(pbResource(topic)).setSystemProperties(system).setBody(Buffer.from(`typed-${sequence}`));
  const response: Any = await call('sendMessage', new svc.SendMessageRequest().setMessagesList([message]));
  const status = response.getEntriesList()[0]?.getStatus() ?? response.getStatus();
  return { code: status.getCode(), message: status.getMessage() };
}

describe('topic message types through the Proxy', () => {
  it('answers QueryRoute with the accept types of each topic', async () => {
    expect(await acceptTypes(NORMAL_TOPIC)).toEqual([MessageType.NORMAL]);
    expect(await acceptTypes(FIFO_TOPIC)).toEqual([MessageType.FIFO]);
    expect(await acceptTypes(TRANSACTION_TOPIC)).toEqual([MessageType.TRANSACTION]);
  });

  it('accepts messages of the topic type', async () => {
    expect((await send(NORMAL_TOPIC, {})).code).toBe(Code.OK);
    expect((await send(FIFO_TOPIC, { group: 'g-1' })).code).toBe(Code.OK);
  });

  it('refuses a FIFO message on a NORMAL topic and a NORMAL one on a FIFO topic', async () => {
    const fifoOnNormal = await send(NORMAL_TOPIC, { group: 'g-2' });
    expect(fifoOnNormal.code).toBe(Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE);
    expect(fifoOnNormal.message).toContain('the expected type is NORMAL, but actual type is FIFO');
    const normalOnFifo = await send(FIFO_TOPIC, {});
    expect(normalOnFifo.code).toBe(Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE);
  });

  it('refuses a delayed message on a NORMAL topic and a transaction message on a FIFO topic', async () => {
    expect((await send(NORMAL_TOPIC, { deliverAtMs: Date.now() + 60_000 })).code).toBe(Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE);
    expect((await send(FIFO_TOPIC, { transaction: true })).code).toBe(Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE);
  });
});
