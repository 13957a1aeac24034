/**
 * `npm run bench:grpc`: the Proxy (LOCAL mode, a `start` node in a child process) driven over loopback
 * gRPC as 5.x clients drive it, printed as one table:
 * - SendMessage throughput, 64 closed-loop senders over 4 channels, one 1 KiB message per request, with the
 *   mean and p99 round trip;
 * - receive + ack throughput: 8 lanes (GRPC_BENCH_RECEIVE_LANES), each ReceiveMessage (batch 32, invisible
 *   30 s) then one AckMessage for the batch, until the topic's messages are consumed; p50 and p99 of
 *   receives and of acks. The lanes read only each delivered message's id and receipt handle from the
 *   response bytes (`deliveredIdsOf`), not the whole message: a full decode would spend the node's cores.
 *   The phase reads at least GRPC_BENCH_RECEIVE_MESSAGES (default 150,000): what the send phases stored,
 *   topped up with Remoting SEND_BATCH_MESSAGEs when they stored fewer, so that it measures several
 *   seconds of steady state rather than a ramp-up and a tail (the send phases store ~5,000 a second);
 * - the same messages read by Remoting PULL (32 per pull, one lane per queue), for comparison.
 * The load generator is `grpc-wire.ts`: gRPC's wire format written on node:http2 streams with the Proxy's
 * own protobufjs codecs, because a grpc-js client costs more CPU per call than the server it measures
 * (same 2 cores). For comparison the send phase is repeated through a grpc-js client, and a no-op grpc-js
 * server is measured with the same load generator: the floor of any grpc-js server on this machine.
 * When `h2load` (nghttp2's C load generator, Debian package nghttp2-client) is on the PATH, SendMessage
 * is also driven by it, against the node and the no-op server: it needs far less CPU per call than any
 * Node client, so those rows show what the server does when the load generator leaves it the cores.
 * h2load repeats one request (the same message id; the store keeps every copy).
 * GRPC_BENCH_SECONDS sets the length of each send phase (default 5); GRPC_BENCH_PHASES picks phases
 * (comma-separated: send, grpcjs, receive, pull, h2load, floor; default all).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { credentials, makeGenericClientConstructor, Metadata, type Client } from '@grpc/grpc-js';
import { messagingServiceDefinition } from '../src/net/grpc/messaging-service.ts';
import type * as M from '../src/net/grpc/messages.ts';
import { requestOf, type RemotingClient } from '../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { CreateTopicRequestHeader } from '../src/net/remoting/broker-headers.ts';
import { connectClients, Histogram, pullAll, RequestFactory } from './remoting-load.ts';
import { deliveredIdsOf, GrpcWireChannel, normalSendRequest } from './grpc-wire.ts';
import { type BenchNode, cleanUpAtExit, killNodeNow, processCpuSeconds, startBenchNode, startPortPrinter, stopBenchNode } from './remoting-node.ts';

const phaseMs = Number(process.env['GRPC_BENCH_SECONDS'] ?? 5) * 1000;
const PHASES_ALL = ['send', 'grpcjs', 'receive', 'pull', 'h2load', 'floor'] as const;
const phases = new Set((process.env['GRPC_BENCH_PHASES'] ?? PHASES_ALL.join(',')).split(','));
for (const phase of phases) {
  if (!(PHASES_ALL as readonly string[]).includes(phase)) throw new Error(`GRPC_BENCH_PHASES: unknown phase ${phase} (known: ${PHASES_ALL.join(', ')})`);
}
if (!(phaseMs > 0)) throw new Error(`GRPC_BENCH_SECONDS must be a positive number, got ${process.env['GRPC_BENCH_SECONDS']}`);
const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpc-bench-'));
const TOPIC = 'GrpcBenchTopic';
const GROUP = 'grpc-bench-group';
const QUEUES = 8;
const CHANNELS = 4;
const SENDERS = 64;
const RECEIVE_LANES = Number(process.env['GRPC_BENCH_RECEIVE_LANES'] ?? 8);
if (!(Number.isInteger(RECEIVE_LANES) && RECEIVE_LANES > 0)) throw new Error(`GRPC_BENCH_RECEIVE_LANES must be a positive integer, got ${process.env['GRPC_BENCH_RECEIVE_LANES']}`);
const RECEIVE_BATCH = 32;
const RECEIVE_MESSAGES_MIN = Number(process.env['GRPC_BENCH_RECEIVE_MESSAGES'] ?? 150_000);
if (!(Number.isInteger(RECEIVE_MESSAGES_MIN) && RECEIVE_MESSAGES_MIN >= 0)) {
  throw new Error(`GRPC_BENCH_RECEIVE_MESSAGES must be a non-negative integer, got ${process.env['GRPC_BENCH_RECEIVE_MESSAGES']}`);
}
/** Remoting SEND_BATCH_MESSAGEs in flight while topping the topic up. */
const TOP_UP_IN_FLIGHT = 8;
const BODY = Buffer.alloc(1024, 'g');
const TARGET_PER_S = 20_000;
const CALL_TIMEOUT_MS = 30_000;

type Row = { benchmark: string; result: string; target: string; verdict: string };
const rows: Row[] = [];
const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

let node: BenchNode | undefined;
let floorChild: ChildProcess | undefined;
const cleanUpNow = cleanUpAtExit(() => {
  if (node !== undefined) killNodeNow(node.child);
  if (floorChild !== undefined) killNodeNow(floorChild);
  fs.rmSync(baseDir, { recursive: true, force: true });
});

// The generic client takes our definition: serializers of both directions live in it.
const MessagingClient = makeGenericClientConstructor(messagingServiceDefinition as never, 'MessagingService');
type Unary = (request: unknown, metadata: Metadata, options: { deadline: number }, callback: (error: Error | null, response: unknown) => void) => void;

function unary<Res>(client: Client, method: string, request: unknown, clientId: string): Promise<Res> {
  const metadata = new Metadata();
  metadata.set('x-mq-client-id', clientId);
  const call = (client as unknown as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) =>
    call.call(client, request, metadata, { deadline: Date.now() + CALL_TIMEOUT_MS }, (error, response) => (error ? reject(error) : resolve(response as Res))),
  );
}

const resource = (name: string): M.Resource => ({ name, resourceNamespace: '' });

function sendRequest(sequence: number): M.SendMessageRequest {
  return normalSendRequest(TOPIC, 'bench', `${randomUUID().replaceAll('-', '').toUpperCase()}${sequence}`, BODY);
}

/** CPU seconds this (client) process used since `before`. */
const clientCpuSince = (before: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
};

/** Sends one request for `lane` and resolves with the Proxy's answer. */
type SendOne = (lane: number, request: M.SendMessageRequest) => Promise<M.SendMessageResponse>;

/** 64 closed-loop senders for one phase against the process `pid`. */
async function sendPhase(send: SendOne, pid: number): Promise<{ count: number; ms: number; histogram: Histogram; failures: number; nodeCpu: number | undefined; clientCpu: number }> {
  const histogram = new Histogram();
  let count = 0;
  let failures = 0;
  let sequence = 0;
  const cpuBefore = processCpuSeconds(pid);
  const clientBefore = process.cpuUsage();
  const start = performance.now();
  const deadline = start + phaseMs;
  await Promise.all(
    Array.from({ length: SENDERS }, async (_, lane) => {
      while (performance.now() < deadline) {
        const began = performance.now();
        const response = await send(lane, sendRequest(sequence++));
        histogram.record(performance.now() - began);
        if (response.status.code === 20000) count++;
        else failures++;
      }
    }),
  );
  const ms = performance.now() - start;
  const cpuAfter = processCpuSeconds(pid);
  return { count, ms, histogram, failures, nodeCpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore, clientCpu: clientCpuSince(clientBefore) };
}

async function receivePhase(channels: GrpcWireChannel[], total: number, brokerName: string) {
  const receiveHistogram = new Histogram();
  const ackHistogram = new Histogram();
  let received = 0;
  let acked = 0;
  let failures = 0;
  let doneAt: number | undefined;
  const cpuBefore = processCpuSeconds(node!.pid);
  const clientBefore = process.cpuUsage();
  const start = performance.now();
  const giveUpAt = start + Math.max(60_000, phaseMs * 6);
  await Promise.all(
    Array.from({ length: RECEIVE_LANES }, async (_, lane) => {
      const channel = channels[lane % channels.length]!;
      while (received < total && performance.now() < giveUpAt) {
        const began = performance.now();
        const frames = await channel.streamRaw(
          'ReceiveMessage',
          {
            group: resource(GROUP),
            messageQueue: { topic: resource(TOPIC), id: -1, permission: 4, broker: { name: brokerName, id: 0, endpoints: null }, acceptMessageTypes: [] },
            filterExpression: { type: 1, expression: '*' },
            batchSize: RECEIVE_BATCH,
            invisibleDuration: { seconds: 30, nanos: 0 },
            autoRenew: false,
            longPollingTimeout: { seconds: 5, nanos: 0 },
          },
          CALL_TIMEOUT_MS,
        );
        receiveHistogram.record(performance.now() - began);
        const messages = frames.flatMap((frame) => deliveredIdsOf(frame) ?? []);
        if (messages.length === 0) continue;
        received += messages.length;
        const ackBegan = performance.now();
        const response = await channel.unary('AckMessage', { group: resource(GROUP), topic: resource(TOPIC), entries: messages }, CALL_TIMEOUT_MS);
        ackHistogram.record(performance.now() - ackBegan);
        for (const entry of response.entries) {
          if (entry.status.code === 20000) acked++;
          else failures++;
        }
        // Lanes still in a long poll when the last message is acked would only add idle time.
        if (acked >= total) doneAt ??= performance.now();
      }
    }),
  );
  const ms = (doneAt ?? performance.now()) - start;
  const cpuAfter = processCpuSeconds(node!.pid);
  return {
    acked,
    ms,
    receiveHistogram,
    ackHistogram,
    failures,
    nodeCpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore,
    clientCpu: clientCpuSince(clientBefore),
  };
}

/** Stores at least `count` more messages in the topic with Remoting batch sends of RECEIVE_BATCH; returns how many. */
async function topUp(client: RemotingClient, count: number): Promise<number> {
  const factory = new RequestFactory(TOPIC, QUEUES, BODY);
  let stored = 0;
  while (stored < count) {
    const answers = await Promise.all(Array.from({ length: TOP_UP_IN_FLIGHT }, () => client.invoke(factory.batch(RECEIVE_BATCH), CALL_TIMEOUT_MS)));
    for (const answer of answers) {
      if (answer.code !== ResponseCode.SUCCESS) throw new Error(`top-up batch refused: ${answer.code} ${answer.remark ?? ''}`);
      stored += RECEIVE_BATCH;
    }
  }
  return stored;
}

const h2loadAvailable = spawnSync('h2load', ['--version'], { stdio: 'ignore' }).status === 0;
const H2LOAD_CONNECTIONS = 4;
const H2LOAD_STREAMS = SENDERS / H2LOAD_CONNECTIONS;

/** SendMessage from h2load for about one phase: 4 connections x 16 streams, the same 1 KiB request each time. */
function h2loadSend(port: number, pid: number, label: string): Row {
  const framedPath = path.join(baseDir, 'send-request.bin');
  if (!fs.existsSync(framedPath)) {
    const payload = messagingServiceDefinition.SendMessage.requestSerialize(sendRequest(0));
    const framed = Buffer.alloc(5 + payload.length);
    framed.writeUInt32BE(payload.length, 1);
    payload.copy(framed, 5);
    fs.writeFileSync(framedPath, framed);
  }
  const cpuBefore = processCpuSeconds(pid);
  const output = execFileSync('h2load', [
    '--duration', String(phaseMs / 1000), '--warm-up-time', '1', '-c', String(H2LOAD_CONNECTIONS), '-m', String(H2LOAD_STREAMS), '-t', '1',
    '-d', framedPath, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', 'x-mq-client-id: bench-h2load',
    `http://127.0.0.1:${port}/apache.rocketmq.v2.MessagingService/SendMessage`,
  ], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const cpuAfter = processCpuSeconds(pid);
  const rate = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(output)?.[1];
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(output);
  const mean = /time for request:\s+\S+\s+\S+\s+(\S+)/.exec(output)?.[1];
  if (rate === undefined || done === null) throw new Error(`unreadable h2load output:\n${output}`);
  // Every answer is HTTP 200 in gRPC; the status of a refused send would be in the trailers, which h2load does not read.
  return {
    benchmark: label,
    result: `${fmt(Number(rate))} msgs/s; mean ${mean ?? '?'}; ${done[3]} failed; cpu server ${cpuShare(cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore, phaseMs + 1000)}`,
    target: '-',
    verdict: '',
  };
}

const cpuShare = (cpuS: number | undefined, ms: number): string => (cpuS === undefined ? '?' : `${fmt((cpuS / (ms / 1000)) * 100)}%`);

try {
  node = await startBenchNode(path.join(baseDir, 'store'), {});
  const [admin] = await connectClients(`127.0.0.1:${node.brokerPort}`, 1);
  const created = await admin!.invoke(
    requestOf(
      RequestCode.UPDATE_AND_CREATE_TOPIC,
      CreateTopicRequestHeader.format({ topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: QUEUES, writeQueueNums: QUEUES, perm: 6, topicFilterType: 'SINGLE_TAG' }),
    ),
    10_000,
  );
  if (created.code !== ResponseCode.SUCCESS) throw new Error(`topic not created: ${created.remark}`);
  const [namesrv] = await connectClients(`127.0.0.1:${node.namesrvPort}`, 1);
  let brokerName = '';
  for (const deadline = Date.now() + 60_000; brokerName === '' && Date.now() < deadline; ) {
    const route = await namesrv!.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic: TOPIC }), 5_000);
    if (route.code === ResponseCode.SUCCESS) brokerName = (JSON.parse(Buffer.from(route.body!).toString()) as { brokerDatas: { brokerName: string }[] }).brokerDatas[0]!.brokerName;
    else await new Promise((resolve) => setTimeout(resolve, 500));
  }
  namesrv!.close();
  if (brokerName === '') throw new Error('the topic never got a route');
  const channels = Array.from({ length: CHANNELS }, (_, i) => new GrpcWireChannel(`127.0.0.1:${node!.grpcPort}`, `bench-client-${i}`));
  const wireSend: SendOne = (lane, request) => channels[lane % CHANNELS]!.unary('SendMessage', request, CALL_TIMEOUT_MS);
  const sendRow = (label: string, sent: Awaited<ReturnType<typeof sendPhase>>, withTarget: boolean): Row => {
    const rate = sent.count / (sent.ms / 1000);
    return {
      benchmark: label,
      result: `${fmt(rate)} msgs/s; avg ${fmt(sent.histogram.meanMs, 2)} ms, p99 ${fmt(sent.histogram.quantileMs(0.99), 2)} ms; ${sent.failures} failed; cpu server ${cpuShare(sent.nodeCpu, sent.ms)}, bench ${cpuShare(sent.clientCpu, sent.ms)}`,
      target: withTarget ? `>= ${fmt(TARGET_PER_S)} msgs/s` : '-',
      verdict: withTarget ? (rate >= TARGET_PER_S && sent.failures === 0 ? 'met' : 'MISSED') : '',
    };
  };

  let sentCount = 0;
  if (phases.has('send')) {
    const sent = await sendPhase(wireSend, node.pid);
    rows.push(sendRow(`SendMessage, 1 KiB, ${SENDERS} senders / ${CHANNELS} HTTP/2 connections`, sent, true));
    sentCount += sent.count;
  }
  if (phases.has('grpcjs')) {
    const grpcJsClients = Array.from({ length: CHANNELS }, () => new MessagingClient(`127.0.0.1:${node!.grpcPort}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
    const grpcJsSend: SendOne = (lane, request) => unary<M.SendMessageResponse>(grpcJsClients[lane % CHANNELS]!, 'SendMessage', request, `bench-producer-${lane % CHANNELS}`);
    const sentByGrpcJs = await sendPhase(grpcJsSend, node.pid);
    rows.push(sendRow('SendMessage, the same, load from a grpc-js client', sentByGrpcJs, false));
    for (const client of grpcJsClients) client.close();
    sentCount += sentByGrpcJs.count;
  }
  const receiving = phases.has('receive') || phases.has('pull');
  const toppedUp = receiving && sentCount < RECEIVE_MESSAGES_MIN ? await topUp(admin!, RECEIVE_MESSAGES_MIN - sentCount) : 0;
  const stored = sentCount + toppedUp;
  // h2load's sends come after the receive phase's count is taken: the consumers read only what was counted.
  if (phases.has('receive')) {
    const consumed = await receivePhase(channels, stored, brokerName);
    const consumeRate = consumed.acked / (consumed.ms / 1000);
    rows.push({
      benchmark:
        `ReceiveMessage (batch ${RECEIVE_BATCH}) + AckMessage, ${RECEIVE_LANES} lanes, ${fmt(stored)} msgs ` +
        (toppedUp > 0 ? `(${fmt(sentCount)} sent above, ${fmt(toppedUp)} by Remoting batches)` : '(sent above)'),
      result:
        `${fmt(consumeRate)} msgs/s received and acked (${fmt(consumed.acked)} in ${fmt(consumed.ms / 1000, 2)} s); ` +
        `receive p50 ${fmt(consumed.receiveHistogram.quantileMs(0.5), 2)} ms, p99 ${fmt(consumed.receiveHistogram.quantileMs(0.99), 2)} ms; ack p50 ${fmt(consumed.ackHistogram.quantileMs(0.5), 2)} ms, p99 ${fmt(consumed.ackHistogram.quantileMs(0.99), 2)} ms; ` +
        `${consumed.failures} failed; cpu node ${cpuShare(consumed.nodeCpu, consumed.ms)}, bench ${cpuShare(consumed.clientCpu, consumed.ms)}`,
      target: `>= ${fmt(TARGET_PER_S)} msgs/s`,
      verdict: consumeRate >= TARGET_PER_S && consumed.failures === 0 && consumed.acked >= stored ? 'met' : 'MISSED',
    });
  }

  if (phases.has('pull')) {
    const remoting = await connectClients(`127.0.0.1:${node.brokerPort}`, RECEIVE_LANES);
    const pulled = await pullAll(remoting, TOPIC, QUEUES, RECEIVE_BATCH, phaseMs * 6);
    rows.push({
      benchmark: `Remoting PULL_MESSAGE (32 per pull, ${QUEUES} lanes), the same messages`,
      result: `${fmt(pulled.messages / (pulled.ms / 1000))} msgs/s (${fmt(pulled.messages)} in ${fmt(pulled.ms / 1000, 2)} s); p99 ${fmt(pulled.histogram.quantileMs(0.99), 2)} ms`,
      target: '-',
      verdict: '',
    });
    for (const client of remoting) client.close();
  }
  admin!.close();
  for (const channel of channels) channel.close();
  if (h2loadAvailable && phases.has('h2load')) rows.push(h2loadSend(node.grpcPort, node.pid, `SendMessage, the same, load from h2load (${H2LOAD_CONNECTIONS} connections x ${H2LOAD_STREAMS} streams)`));
  await stopBenchNode(node);
  node = undefined;

  if (phases.has('floor')) {
    const floor = await startPortPrinter(fileURLToPath(new URL('./grpc-floor-server.ts', import.meta.url)), (child) => {
      floorChild = child;
    });
    const floorChannels = Array.from({ length: CHANNELS }, (_, i) => new GrpcWireChannel(`127.0.0.1:${floor.port}`, `floor-client-${i}`));
    const floorSent = await sendPhase((lane, request) => floorChannels[lane % CHANNELS]!.unary('SendMessage', request, CALL_TIMEOUT_MS), floor.child.pid!);
    rows.push(sendRow('floor: a no-op grpc-js server (our codecs, SendMessage answers OK at once), same load', floorSent, false));
    for (const channel of floorChannels) channel.close();
    if (h2loadAvailable) rows.push(h2loadSend(floor.port, floor.child.pid!, 'floor: the no-op grpc-js server, load from h2load'));
    else rows.push({ benchmark: 'SendMessage from h2load', result: 'skipped: h2load is not installed (Debian package nghttp2-client)', target: '-', verdict: '' });
  }
} finally {
  if (node !== undefined) await stopBenchNode(node).catch(() => killNodeNow(node!.child));
  cleanUpNow();
}

const keys = ['benchmark', 'result', 'target', 'verdict'] as const;
const widths = keys.map((key) => Math.max(key.length, ...rows.map((row) => row[key].length)));
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\nrocketmq-ts gRPC Proxy benchmark (node ${process.version}, ${os.cpus().length} cores, ${phaseMs / 1000} s send phase, LOCAL mode, ASYNC_FLUSH, loopback)\n`);
console.log(line([...keys]));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const row of rows) console.log(line(keys.map((key) => row[key])));
