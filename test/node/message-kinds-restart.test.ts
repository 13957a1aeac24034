/**
 * kill -9 in the middle of pending timers and open transactions, with real processes and real files:
 * a `start` node (SYNC_FLUSH) takes timed messages and half messages over Remoting, some transactions are
 * ended before the kill and some are left open; the node is killed with SIGKILL and started again on the
 * same store. Afterwards every acknowledged timed message is delivered into its topic, none before its
 * time; a committed transaction is visible exactly once, a rolled-back one never; the open ones are
 * checked back with the producer (CHECK_TRANSACTION_STATE) and end as it answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import {
  CheckTransactionStateRequestHeader,
  EndTransactionRequestHeader,
  formatSendMessageRequest,
  PullMessageRequestHeader,
  PullSysFlag,
  SendMessageResponseHeader,
  TransactionState,
} from '../../src/net/remoting/broker-headers.ts';
import { formatHeartbeatData } from '../../src/net/remoting/broker-bodies.ts';
import { decodeRecord, encodeMessageProperties, MessageSysFlag, type RecordView } from '../../src/storage/message-record.ts';
import { MessageConst } from '../../src/net/remoting/message-batch.ts';

const bin = path.resolve(import.meta.dirname, '../../bin/rocketmq-ts.ts');
const TOPIC = 'RestartKindsTopic';
const PRODUCER_GROUP = 'RestartTxGroup';
const TIMERS = 20;
const children: ChildProcess[] = [];
const store = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-kinds-restart-'));

type Ports = { namesrv: number; broker: number; grpc: number };

/** Starts `rocketmq-ts start` on the shared store; resolves with its ports. */
function startNode(): Promise<{ child: ChildProcess; ports: Ports }> {
  const child = spawn(
    process.execPath,
    [
      bin,
      'start',
      '--namesrvAddr=127.0.0.1:0',
      '--listenPort=0',
      '--grpcServerPort=0',
      '--brokerIP1=127.0.0.1',
      `--storePathRootDir=${store}`,
      '--flushDiskType=SYNC_FLUSH',
      '--serverWorkerThreads=1',
      '--sendMessageThreadPoolNums=1',
      '--pullMessageThreadPoolNums=1',
      `--mappedFileSizeCommitLog=${64 * 1024 * 1024}`,
      '--transactionTimeOut=1000',
      '--transactionCheckInterval=1000',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`node did not start: ${buffered}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n')) {
        if (!line.includes('"node started"')) continue;
        clearTimeout(timer);
        resolve({ child, ports: (JSON.parse(line) as { ports: Ports }).ports });
      }
    });
    child.once('exit', (code) => reject(new Error(`node exited with ${code}: ${buffered}`)));
  });
}

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  fs.rmSync(store, { recursive: true, force: true });
});

function sendRequest(body: string, properties: Map<string, string>, sysFlag: number): RemotingCommand {
  const header = formatSendMessageRequest(
    {
      producerGroup: PRODUCER_GROUP,
      topic: TOPIC,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 1,
      queueId: 0,
      sysFlag,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties(properties),
      reconsumeTimes: 0,
    },
    'V2',
  );
  return requestOf(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(body));
}

async function heartbeat(client: RemotingClient): Promise<void> {
  const body = formatHeartbeatData({ clientID: `restart-producer-${process.pid}`, producerDataSet: [{ groupName: PRODUCER_GROUP }], consumerDataSet: [], heartbeatFingerprint: 0, withoutSub: false });
  const answer = await client.invoke(requestOf(RequestCode.HEART_BEAT, {}, Buffer.from(body)), 5_000);
  expect(answer.code).toBe(ResponseCode.SUCCESS);
}

/** Every record of the topic's queue 0 from offset 0. */
async function readTopic(client: RemotingClient): Promise<RecordView[]> {
  const records: RecordView[] = [];
  for (;;) {
    const header = PullMessageRequestHeader.format({
      consumerGroup: 'restart-reader',
      topic: TOPIC,
      queueId: 0,
      queueOffset: records.length,
      maxMsgNums: 32,
      sysFlag: PullSysFlag.FLAG_SUBSCRIPTION,
      commitOffset: 0,
      suspendTimeoutMillis: 0,
      subscription: '*',
      subVersion: 0,
      expressionType: 'TAG',
    });
    const answer = await client.invoke(requestOf(RequestCode.PULL_MESSAGE, header), 5_000);
    if (answer.code !== ResponseCode.SUCCESS || answer.body === undefined) return records;
    for (let at = 0; at < answer.body.length; ) {
      const record = decodeRecord(answer.body, at);
      records.push(record);
      at += record.totalSize;
    }
  }
}

describe('timers and transactions across kill -9', () => {
  it('loses no acknowledged timer or transaction outcome and delivers nothing wrongly', async () => {
    const first = await startNode();
    const producer = await RemotingClient.connect(`127.0.0.1:${first.ports.broker}`);
    const created = await producer.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '1', writeQueueNums: '1', perm: '6', topicFilterType: 'SINGLE_TAG' }),
      5_000,
    );
    expect(created.code, created.remark).toBe(ResponseCode.SUCCESS);
    await heartbeat(producer);
    // Timers due a few seconds after the kill.
    const deliverAtMs = new Map<string, number>();
    const baseMs = Date.now() + 6_000;
    for (let i = 0; i < TIMERS; i++) {
      const body = `timer-${i}`;
      const due = baseMs + (i % 4) * 500;
      const answer = await producer.invoke(sendRequest(body, new Map([[MessageConst.PROPERTY_TIMER_DELIVER_MS, String(due)]]), 0), 5_000);
      expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
      deliverAtMs.set(body, due);
    }
    // Half messages: two ended before the kill, two left open.
    const half = (body: string): Promise<RemotingCommand> =>
      producer.invoke(
        sendRequest(body, new Map([[MessageConst.PROPERTY_TRANSACTION_PREPARED, 'true'], [MessageConst.PROPERTY_PRODUCER_GROUP, PRODUCER_GROUP]]), MessageSysFlag.TRANSACTION_PREPARED_TYPE),
        5_000,
      );
    for (const [body, outcome] of [['tx-commit', TransactionState.COMMIT], ['tx-rollback', TransactionState.ROLLBACK]] as const) {
      const answer = await half(body);
      expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
      const sent = SendMessageResponseHeader.parse(answer.extFields);
      const end = EndTransactionRequestHeader.format({
        producerGroup: PRODUCER_GROUP,
        tranStateTableOffset: sent.queueOffset,
        commitLogOffset: Number(BigInt(`0x${sent.msgId.slice(-16)}`)),
        commitOrRollback: outcome,
        fromTransactionCheck: false,
        msgId: sent.transactionId ?? '',
        transactionId: sent.transactionId ?? '',
      });
      const ended = await producer.invoke(requestOf(RequestCode.END_TRANSACTION, end), 5_000);
      expect(ended.code, ended.remark).toBe(ResponseCode.SUCCESS);
    }
    for (const body of ['tx-open-commit', 'tx-open-rollback']) expect((await half(body)).code).toBe(ResponseCode.SUCCESS);
    producer.close();
    process.kill(first.child.pid!, 'SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));

    const second = await startNode();
    const client = await RemotingClient.connect(`127.0.0.1:${second.ports.broker}`);
    const checks: string[] = [];
    client.onRequest((request) => {
      if (request.code !== RequestCode.CHECK_TRANSACTION_STATE || request.body === undefined) return undefined;
      const header = CheckTransactionStateRequestHeader.parse(request.extFields);
      const body = Buffer.from(decodeRecord(request.body, 0).body).toString();
      checks.push(body);
      const outcome = body === 'tx-open-commit' ? TransactionState.COMMIT : body === 'tx-open-rollback' ? TransactionState.ROLLBACK : TransactionState.UNKNOWN;
      const end = EndTransactionRequestHeader.format({
        producerGroup: PRODUCER_GROUP,
        tranStateTableOffset: header.tranStateTableOffset,
        commitLogOffset: header.commitLogOffset,
        commitOrRollback: outcome,
        fromTransactionCheck: true,
        msgId: header.msgId ?? '',
        transactionId: header.transactionId ?? '',
      });
      client.invokeOneway(requestOf(RequestCode.END_TRANSACTION, end));
      return undefined;
    });
    await heartbeat(client);
    const expected = [...deliverAtMs.keys(), 'tx-commit', 'tx-open-commit'];
    let records: RecordView[] = [];
    for (const deadline = Date.now() + 40_000; Date.now() < deadline; ) {
      records = await readTopic(client);
      const bodies = new Set(records.map((record) => Buffer.from(record.body).toString()));
      if (expected.every((body) => bodies.has(body)) && checks.includes('tx-open-rollback')) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const bodies = records.map((record) => Buffer.from(record.body).toString());
    for (const body of expected) expect(bodies, body).toContain(body);
    expect(bodies.filter((body) => body === 'tx-commit')).toHaveLength(1);
    expect(bodies.filter((body) => body === 'tx-open-commit')).toHaveLength(1);
    expect(bodies).not.toContain('tx-rollback');
    expect(bodies).not.toContain('tx-open-rollback');
    expect(checks).toContain('tx-open-rollback');
    for (const record of records) {
      const due = deliverAtMs.get(Buffer.from(record.body).toString());
      if (due !== undefined) expect(record.storeTimestampMs).toBeGreaterThanOrEqual(due);
    }
    client.close();
  }, 120_000);
});
