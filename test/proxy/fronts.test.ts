/**
 * The Proxy runs one gRPC front per network thread, all on one port (reusePort). Connections are spread
 * over the fronts by the kernel, and the fronts are interchangeable: a receipt handle received through
 * a connection on one front acks through a connection on another.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../node/fixtures/test-node.ts';
import { createTopic } from '../node/fixtures/broker-ops.ts';
import { GrpcWireChannel, normalSendRequest } from '../../bench/grpc-wire.ts';
import type { FrontStats, GrpcFrontMessage } from '../../src/actors/grpc-front.ts';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import type * as M from '../../src/net/grpc/messages.ts';
import { waitForRoute } from './fixtures/broker-reads.ts';

const TOPIC = 'ProxyFrontsTopic';
const GROUP = 'proxy-fronts-group';
const CONNECTIONS = 16;
const MESSAGES = 12;
const CALL_MS = 10_000;

let testNode: TestNode;
let brokerName = '';
const channels: GrpcWireChannel[] = [];

const resource = (name: string): M.Resource => ({ name, resourceNamespace: '' });

beforeAll(async () => {
  testNode = await startTestNode('proxy-fronts');
  expect(await createTopic(`127.0.0.1:${testNode.node.ports.broker}`, TOPIC, 2)).toBe(ResponseCode.SUCCESS);
  brokerName = await waitForRoute(`127.0.0.1:${testNode.node.ports.namesrv}`, TOPIC);
  for (let i = 0; i < CONNECTIONS; i++) channels.push(new GrpcWireChannel(`127.0.0.1:${testNode.node.ports.grpc}`, `fronts-client-${i}`));
}, 60_000);

afterAll(async () => {
  for (const channel of channels) channel.close();
  await testNode?.stop();
}, 60_000);

async function frontStats(): Promise<FrontStats[]> {
  const { system, grpcFronts } = testNode.node;
  return Promise.all(grpcFronts.map((ref) => system.ask<GrpcFrontMessage, FrontStats>(ref, { type: 'stats' }, 5_000)));
}

it('runs one front per network thread, each on its own thread', () => {
  const { system, grpcFronts } = testNode.node;
  expect(grpcFronts).toHaveLength(2); // serverWorkerThreads 2 in the test node
  expect(new Set(grpcFronts.map((ref) => system.threadOf(ref))).size).toBe(2);
});

it('spreads connections over the fronts, and any front acks what another delivered', async () => {
  // One call per channel opens its connection.
  for (const channel of channels) {
    const route = await channel.unary('QueryRoute', { topic: resource(TOPIC), endpoints: null }, CALL_MS);
    expect(route.status.code).toBe(20000);
  }
  const stats = await frontStats();
  expect(stats.reduce((sum, front) => sum + front.connections, 0)).toBe(CONNECTIONS);
  // With 16 connections hashed over 2 listeners, one front holding all of them has odds of 2^-15.
  for (const front of stats) expect(front.connections).toBeGreaterThan(0);

  for (let i = 0; i < MESSAGES; i++) {
    const sent = await channels[0]!.unary('SendMessage', normalSendRequest(TOPIC, 'fronts', `FRONTS${String(i).padStart(26, '0')}`, Buffer.from(`body-${i}`)), CALL_MS);
    expect(sent.status.code).toBe(20000);
  }

  const receive = async (channel: GrpcWireChannel, longPollSeconds: number): Promise<M.Message[]> => {
    const frames = await channel.stream(
      'ReceiveMessage',
      {
        group: resource(GROUP),
        messageQueue: { topic: resource(TOPIC), id: -1, permission: 4, broker: { name: brokerName, id: 0, endpoints: null }, acceptMessageTypes: [] },
        filterExpression: { type: 1, expression: '*' },
        batchSize: 32,
        invisibleDuration: { seconds: 30, nanos: 0 },
        autoRenew: false,
        longPollingTimeout: { seconds: longPollSeconds, nanos: 0 },
      },
      CALL_MS,
    );
    return frames.flatMap((frame) => ('message' in frame && frame.message !== undefined ? [frame.message] : []));
  };

  const received: M.Message[] = [];
  for (let attempt = 0; attempt < 10 && received.length < MESSAGES; attempt++) received.push(...(await receive(channels[0]!, 5)));
  expect(received.map((message) => message.body.toString()).sort()).toEqual(Array.from({ length: MESSAGES }, (_, i) => `body-${i}`).sort());

  // Each message is acked through another connection: the 15 others cover both fronts.
  for (const [i, message] of received.entries()) {
    const channel = channels[1 + (i % (CONNECTIONS - 1))]!;
    const answer = await channel.unary(
      'AckMessage',
      { group: resource(GROUP), topic: resource(TOPIC), entries: [{ messageId: message.systemProperties!.messageId, receiptHandle: message.systemProperties!.receiptHandle! }] },
      CALL_MS,
    );
    expect(answer.entries[0]!.status.code, answer.entries[0]!.status.message).toBe(20000);
  }
  // Acked through other fronts, none of them comes back (a long poll that finds nothing returns empty).
  expect(await receive(channels[5]!, 1)).toEqual([]);
}, 90_000);
