/**
 * PullMessage through the Proxy with the official client's generated gRPC stub: offset consumption from
 * one queue, with batch sizes, TAG and SQL92 filters, long polling, illegal offsets and the validation
 * codes; against a `start` node (LOCAL mode) and a CLUSTER-mode proxy in front of a broker node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { startTestCluster, type TestCluster } from '../node/fixtures/cluster.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest } from '../../src/net/remoting/broker-headers.ts';
import { encodeMessageProperties } from '../../src/storage/message-record.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';
import { clientGrpc, def, grpcPb, pbDuration, pbResource, svc } from '../net/grpc/official-client.ts';

type Any = any;
const TOPIC = 'ProxyPullTopic';
const GROUP = 'pull-group';

/** One frame of the stream, read through the official classes. */
type Frame = { status: { code: number; message: string } } | { message: Any } | { nextOffset: number };

/** What the tests send: body, tag, keys and user properties. */
type Sent = { body: string; tag: string; keys: string[]; user: Record<string, string> };

const SENT: readonly Sent[] = [
  { body: 'pull-0', tag: 'TagA', keys: ['k0'], user: {} },
  { body: 'pull-1', tag: 'TagB', keys: ['k1'], user: {} },
  { body: 'pull-2', tag: 'TagA', keys: ['k2', 'k2b'], user: { color: 'blue' } },
  { body: 'pull-3', tag: 'TagC', keys: ['k3'], user: { color: 'red' } },
  { body: 'pull-4', tag: 'TagA', keys: ['k4'], user: {} },
];

/** The message id a sent message carries (UNIQ_KEY). */
const idOf = (body: string): string => `ID-${body}`;

async function createTopic(brokerAddr: string, topic: string): Promise<void> {
  const broker = await RemotingClient.connect(brokerAddr);
  try {
    const created = await broker.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic, defaultTopic: 'TBW102', readQueueNums: '1', writeQueueNums: '1', perm: '6', topicFilterType: 'SINGLE_TAG' }),
      5_000,
    );
    expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
  } finally {
    broker.close();
  }
}

/** Sends `message` to queue 0 of `topic` over Remoting; answers its queue offset. */
async function send(brokerAddr: string, topic: string, message: Sent): Promise<number> {
  const broker = await RemotingClient.connect(brokerAddr);
  try {
    const properties = encodeMessageProperties({ ...message.user, TAGS: message.tag, KEYS: message.keys.join(' '), UNIQ_KEY: idOf(message.body) });
    const header = formatSendMessageRequest(
      { producerGroup: 'pull-producer', topic, defaultTopic: 'TBW102', defaultTopicQueueNums: 1, queueId: 0, sysFlag: 0, bornTimestamp: Date.now(), flag: 0, properties, reconsumeTimes: 0 },
      'V2',
    );
    const sent = await broker.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(message.body)), 5_000);
    expect(sent.code, sent.remark).toBe(ResponseCode.SUCCESS);
    return Number(sent.extFields['queueOffset']);
  } finally {
    broker.close();
  }
}

type PullOptions = {
  readonly offset: number;
  readonly batchSize?: number;
  readonly filter?: { readonly type: number; readonly expression: string };
  readonly pollSeconds?: number;
  readonly group?: string;
  readonly topic?: string;
  readonly deadlineMs?: number;
};

/** One PullMessage call on `stub`; the frames in order and how long the call took. */
function pull(stub: Any, brokerName: string, options: PullOptions): Promise<{ frames: Frame[]; elapsedMs: number }> {
  const request = new svc.PullMessageRequest();
  request.setGroup(pbResource(options.group ?? GROUP));
  const mq = new def.MessageQueue();
  mq.setTopic(pbResource(options.topic ?? TOPIC));
  mq.setId(0);
  mq.setBroker(new def.Broker().setName(brokerName));
  request.setMessageQueue(mq);
  request.setOffset(options.offset);
  request.setBatchSize(options.batchSize ?? 32);
  if (options.filter !== undefined) request.setFilterExpression(new def.FilterExpression().setType(options.filter.type).setExpression(options.filter.expression));
  if (options.pollSeconds !== undefined) request.setLongPollingTimeout(pbDuration(options.pollSeconds));
  const metadata = new clientGrpc.Metadata();
  metadata.set('x-mq-client-id', 'pull-test-client');
  const startedMs = Date.now();
  const stream = stub.pullMessage(request, metadata, { deadline: options.deadlineMs ?? Date.now() + 30_000 });
  const frames: Frame[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (response: Any) => {
      switch (response.getContentCase()) {
        case svc.PullMessageResponse.ContentCase.STATUS:
          frames.push({ status: { code: response.getStatus().getCode(), message: response.getStatus().getMessage() } });
          break;
        case svc.PullMessageResponse.ContentCase.MESSAGE:
          frames.push({ message: response.getMessage() });
          break;
        case svc.PullMessageResponse.ContentCase.NEXT_OFFSET:
          frames.push({ nextOffset: response.getNextOffset() });
          break;
        default:
          reject(new Error(`frame without content: ${response.getContentCase()}`));
      }
    });
    stream.on('end', () => resolve({ frames, elapsedMs: Date.now() - startedMs }));
    stream.on('error', reject);
  });
}

/** The frames as a compact shape: status code, message bodies, next offset. */
function summary(frames: readonly Frame[]): { code: number | undefined; bodies: string[]; nextOffset: number | undefined; order: string[] } {
  const order = frames.map((frame) => ('status' in frame ? 'status' : 'message' in frame ? 'message' : 'nextOffset'));
  const status = frames.find((frame): frame is { status: { code: number; message: string } } => 'status' in frame);
  const next = frames.find((frame): frame is { nextOffset: number } => 'nextOffset' in frame);
  const bodies = frames.filter((frame): frame is { message: Any } => 'message' in frame).map((frame) => Buffer.from(frame.message.getBody_asU8()).toString());
  return { code: status?.status.code, bodies, nextOffset: next?.nextOffset, order };
}

/** The official Message's fields a test compares. */
function viewOf(message: Any): Record<string, unknown> {
  const system = message.getSystemProperties();
  const user: Record<string, string> = {};
  message.getUserPropertiesMap().forEach((value: string, key: string) => (user[key] = value));
  return {
    topic: message.getTopic().getName(),
    body: Buffer.from(message.getBody_asU8()).toString(),
    tag: system.getTag(),
    keys: system.getKeysList(),
    messageId: system.getMessageId(),
    user,
    queueId: system.getQueueId(),
    queueOffset: system.getQueueOffset(),
    deliveryAttempt: system.getDeliveryAttempt(),
    hasReceiptHandle: system.hasReceiptHandle(),
    digest: system.getBodyDigest().getChecksum(),
  };
}

const expectedView = (index: number, topic = TOPIC): Record<string, unknown> => {
  const sent = SENT[index]!;
  return {
    topic,
    body: sent.body,
    tag: sent.tag,
    keys: sent.keys,
    messageId: idOf(sent.body),
    user: sent.user,
    queueId: 0,
    queueOffset: index,
    deliveryAttempt: 1,
    hasReceiptHandle: false,
    digest: createHash('md5').update(sent.body).digest('hex').toUpperCase(),
  };
};

describe('PullMessage through a LOCAL-mode Proxy', () => {
  let testNode: TestNode;
  let brokerAddr = '';
  let brokerName = '';
  let stub: Any;

  beforeAll(async () => {
    testNode = await startTestNode('proxy-pull', 'warn', { enablePropertyFilter: 'true' });
    brokerAddr = `127.0.0.1:${testNode.node.ports.broker}`;
    await createTopic(brokerAddr, TOPIC);
    for (const [index, message] of SENT.entries()) expect(await send(brokerAddr, TOPIC, message)).toBe(index);
    brokerName = await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
    stub = new grpcPb.MessagingServiceClient(`127.0.0.1:${testNode.node.ports.grpc}`, clientGrpc.credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    stub?.close();
    await testNode?.stop();
  }, 60_000);

  it('pulls the queue in order: status, the messages as sent, then next_offset', async () => {
    const { frames } = await pull(stub, brokerName, { offset: 0 });
    const result = summary(frames);
    expect(result.order).toEqual(['status', 'message', 'message', 'message', 'message', 'message', 'nextOffset']);
    expect(frames[0]).toEqual({ status: { code: def.Code.OK, message: 'OK' } });
    expect(result.nextOffset).toBe(5);
    const views = frames.filter((frame): frame is { message: Any } => 'message' in frame).map((frame) => viewOf(frame.message));
    expect(views).toEqual(SENT.map((_, index) => expectedView(index)));
  });

  it('respects batch_size and starts at the offset asked for', async () => {
    const result = summary((await pull(stub, brokerName, { offset: 1, batchSize: 2 })).frames);
    expect(result).toEqual({ code: def.Code.OK, bodies: ['pull-1', 'pull-2'], nextOffset: 3, order: ['status', 'message', 'message', 'nextOffset'] });
    const last = summary((await pull(stub, brokerName, { offset: 4, batchSize: 1 })).frames);
    expect(last).toMatchObject({ code: def.Code.OK, bodies: ['pull-4'], nextOffset: 5 });
  });

  it('filters by TAG while next_offset moves past what was filtered out', async () => {
    const tagA = summary((await pull(stub, brokerName, { offset: 0, filter: { type: def.FilterType.TAG, expression: 'TagA' } })).frames);
    expect(tagA).toMatchObject({ code: def.Code.OK, bodies: ['pull-0', 'pull-2', 'pull-4'], nextOffset: 5 });
    const either = summary((await pull(stub, brokerName, { offset: 0, filter: { type: def.FilterType.TAG, expression: 'TagC || TagB' } })).frames);
    expect(either).toMatchObject({ code: def.Code.OK, bodies: ['pull-1', 'pull-3'], nextOffset: 5 });
    // Nothing matches: answered at once (no hold), "no new message", and next_offset skips the whole queue.
    const none = await pull(stub, brokerName, { offset: 1, pollSeconds: 20, filter: { type: def.FilterType.TAG, expression: 'TagZ' } });
    expect(summary(none.frames)).toEqual({ code: def.Code.MESSAGE_NOT_FOUND, bodies: [], nextOffset: 5, order: ['status', 'nextOffset'] });
    expect(none.frames[0]).toEqual({ status: { code: def.Code.MESSAGE_NOT_FOUND, message: 'no new message' } });
    expect(none.elapsedMs).toBeLessThan(15_000);
  });

  it('filters by SQL92 over the user properties', async () => {
    const blue = summary((await pull(stub, brokerName, { offset: 0, filter: { type: def.FilterType.SQL, expression: "color = 'blue'" } })).frames);
    expect(blue).toMatchObject({ code: def.Code.OK, bodies: ['pull-2'], nextOffset: 5 });
    const empty = summary((await pull(stub, brokerName, { offset: 0, filter: { type: def.FilterType.SQL, expression: '' } })).frames);
    expect(empty).toEqual({ code: def.Code.ILLEGAL_FILTER_EXPRESSION, bodies: [], nextOffset: undefined, order: ['status'] });
    const broken = summary((await pull(stub, brokerName, { offset: 0, filter: { type: def.FilterType.SQL, expression: 'color = ' } })).frames);
    expect(broken).toEqual({ code: def.Code.ILLEGAL_FILTER_EXPRESSION, bodies: [], nextOffset: undefined, order: ['status'] });
  });

  it('answers an offset outside the queue with ILLEGAL_OFFSET and the offset to use', async () => {
    const beyond = await pull(stub, brokerName, { offset: 100 });
    expect(beyond.frames).toEqual([{ status: { code: def.Code.ILLEGAL_OFFSET, message: 'ILLEGAL_OFFSET' } }, { nextOffset: 5 }]);
    const negative = await pull(stub, brokerName, { offset: -1 });
    expect(negative.frames).toEqual([{ status: { code: def.Code.ILLEGAL_OFFSET, message: 'ILLEGAL_OFFSET' } }, { nextOffset: 0 }]);
  });

  it('refuses bad names, unknown topics and a deadline too short for the long poll', async () => {
    const codeOf = async (options: Omit<PullOptions, 'offset'>): Promise<Frame[]> => (await pull(stub, brokerName, { offset: 0, ...options })).frames;
    expect(summary(await codeOf({ topic: 'NoSuchPullTopic' }))).toMatchObject({ code: def.Code.TOPIC_NOT_FOUND, order: ['status'] });
    expect(summary(await codeOf({ topic: 'bad topic!' }))).toMatchObject({ code: def.Code.ILLEGAL_TOPIC, order: ['status'] });
    expect(summary(await codeOf({ group: 'bad group!' }))).toMatchObject({ code: def.Code.ILLEGAL_CONSUMER_GROUP, order: ['status'] });
    expect(summary(await codeOf({ group: '' }))).toMatchObject({ code: def.Code.ILLEGAL_CONSUMER_GROUP, order: ['status'] });
    expect(summary(await codeOf({ deadlineMs: Date.now() + 3_000 }))).toMatchObject({ code: def.Code.ILLEGAL_POLLING_TIME, order: ['status'] });
  });

  it('holds a pull at the end of the queue for the long-polling time, at least the 5 s minimum', async () => {
    // Both at once: 5 s asked, and 1 s asked (raised to grpcClientConsumerMinLongPollingTimeoutMillis).
    const [asked5, asked1] = await Promise.all([pull(stub, brokerName, { offset: 5, pollSeconds: 5 }), pull(stub, brokerName, { offset: 5, pollSeconds: 1 })]);
    for (const held of [asked5, asked1]) {
      expect(held.frames).toEqual([{ status: { code: def.Code.MESSAGE_NOT_FOUND, message: 'no new message' } }, { nextOffset: 5 }]);
      expect(held.elapsedMs).toBeGreaterThanOrEqual(4_500);
      expect(held.elapsedMs).toBeLessThan(15_000);
    }
  }, 30_000);

  it('wakes a held pull when a message arrives', async () => {
    const held = pull(stub, brokerName, { offset: 5, pollSeconds: 20 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const arrival: Sent = { body: 'pull-5', tag: 'TagA', keys: ['k5'], user: { color: 'green' } };
    expect(await send(brokerAddr, TOPIC, arrival)).toBe(5);
    const { frames, elapsedMs } = await held;
    expect(summary(frames)).toEqual({ code: def.Code.OK, bodies: ['pull-5'], nextOffset: 6, order: ['status', 'message', 'nextOffset'] });
    expect(viewOf((frames[1] as { message: Any }).message)).toMatchObject({ tag: 'TagA', keys: ['k5'], user: { color: 'green' }, queueOffset: 5 });
    // Well before the 20 s hold would have ended.
    expect(elapsedMs).toBeLessThan(15_000);
  }, 30_000);
});

describe('PullMessage through a CLUSTER-mode Proxy', () => {
  const CLUSTER_TOPIC = 'ClusterPullTopic';
  let cluster: TestCluster;
  let brokerAddr = '';
  let stub: Any;

  beforeAll(async () => {
    cluster = await startTestCluster({ name: 'proxy-pull-cluster', brokers: 1 });
    brokerAddr = cluster.brokers[0]!.brokerAddr;
    await createTopic(brokerAddr, CLUSTER_TOPIC);
    for (const message of SENT.slice(0, 3)) await send(brokerAddr, CLUSTER_TOPIC, message);
    await waitForRoute(cluster.namesrvAddr, CLUSTER_TOPIC);
    const proxy = await cluster.startProxy('pull-proxy');
    stub = new grpcPb.MessagingServiceClient(proxy.endpoint, clientGrpc.credentials.createInsecure());
  }, 90_000);

  afterAll(async () => {
    stub?.close();
    await cluster?.stop();
  }, 60_000);

  it('pulls over Remoting from the broker and is woken by an arrival', async () => {
    const brokerName = cluster.brokers[0]!.brokerName;
    const { frames } = await pull(stub, brokerName, { offset: 0, topic: CLUSTER_TOPIC });
    expect(summary(frames)).toEqual({ code: def.Code.OK, bodies: ['pull-0', 'pull-1', 'pull-2'], nextOffset: 3, order: ['status', 'message', 'message', 'message', 'nextOffset'] });
    expect(viewOf((frames[3] as { message: Any }).message)).toEqual(expectedView(2, CLUSTER_TOPIC));

    const held = pull(stub, brokerName, { offset: 3, topic: CLUSTER_TOPIC, pollSeconds: 20 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await send(brokerAddr, CLUSTER_TOPIC, SENT[3]!);
    const woken = await held;
    expect(summary(woken.frames)).toEqual({ code: def.Code.OK, bodies: ['pull-3'], nextOffset: 4, order: ['status', 'message', 'nextOffset'] });
    expect(woken.elapsedMs).toBeLessThan(15_000);
  }, 30_000);
});
