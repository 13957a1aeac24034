/**
 * Transaction send + commit TPS for `npm run bench:timer`: a `start` node as a child process (ASYNC_FLUSH,
 * loopback), `TX_BENCH_LANES` closed-loop Remoting producers (default 64, on 8 connections). Each lane
 * sends a half message (SEND_MESSAGE_V2, TRANSACTION_PREPARED, 1 KiB) and, once it is acknowledged,
 * commits it with END_TRANSACTION and waits for that answer too; a transaction counts when the commit was
 * answered SUCCESS. Afterwards the bench reads the real topic's max offset to check that every committed
 * transaction became exactly one visible message.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RemotingClient, requestOf } from '../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { EndTransactionRequestHeader, formatSendMessageRequest, SendMessageResponseHeader, TransactionState } from '../src/net/remoting/broker-headers.ts';
import { UniqIdGenerator, MessageConst } from '../src/net/remoting/message-batch.ts';
import { encodeMessageProperties, MessageSysFlag } from '../src/storage/message-record.ts';
import { commitLogOffsetOfMessageId } from '../src/net/grpc/transaction-id.ts';
import { Histogram } from './remoting-load.ts';
import { startBenchNode, stopBenchNode } from './remoting-node.ts';

const TOPIC = 'BenchTransactionTopic';
const PRODUCER_GROUP = 'BenchTransactionProducer';
const CONNECTIONS = 8;
const QUEUES = 8;
const REQUEST_TIMEOUT_MS = 30_000;

/** One row of the bench table. */
export type TransactionRow = { readonly benchmark: string; readonly result: string; readonly target: string };

/** What the phase measured. */
export type TransactionTps = { readonly committed: number; readonly ms: number; readonly failures: number; readonly visible: number; readonly sendP99Ms: number; readonly commitP99Ms: number };

/** Runs the phase against a fresh node; `seconds` of load. */
export async function measureTransactionTps(seconds: number, lanes: number): Promise<TransactionTps> {
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tx-bench-'));
  const node = await startBenchNode(storeDir, { flushDiskType: 'ASYNC_FLUSH' });
  const clients: RemotingClient[] = [];
  try {
    for (let i = 0; i < CONNECTIONS; i++) clients.push(await RemotingClient.connect(`127.0.0.1:${node.brokerPort}`));
    const created = await clients[0]!.invoke(
      requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: String(QUEUES), writeQueueNums: String(QUEUES), perm: '6', topicFilterType: 'SINGLE_TAG' }),
      REQUEST_TIMEOUT_MS,
    );
    if (created.code !== ResponseCode.SUCCESS) throw new Error(`topic not created: ${created.remark}`);
    const body = Buffer.alloc(1024, 't');
    const ids = new UniqIdGenerator({ ip: Uint8Array.of(127, 0, 0, 1), pid: process.pid, instanceHash: 0x7a5, clock: { nowMs: () => Date.now() } });
    const sendHist = new Histogram();
    const commitHist = new Histogram();
    let committed = 0;
    let failures = 0;
    let queue = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const lane = async (index: number): Promise<void> => {
      const client = clients[index % clients.length]!;
      while (performance.now() < deadline) {
        const uniqKey = ids.next();
        const properties = new Map([
          [MessageConst.PROPERTY_TRANSACTION_PREPARED, 'true'],
          [MessageConst.PROPERTY_PRODUCER_GROUP, PRODUCER_GROUP],
          [MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, uniqKey],
        ]);
        const header = formatSendMessageRequest(
          {
            producerGroup: PRODUCER_GROUP,
            topic: TOPIC,
            defaultTopic: 'TBW102',
            defaultTopicQueueNums: QUEUES,
            queueId: queue++ % QUEUES,
            sysFlag: MessageSysFlag.TRANSACTION_PREPARED_TYPE,
            bornTimestamp: Date.now(),
            flag: 0,
            properties: encodeMessageProperties(properties),
            reconsumeTimes: 0,
          },
          'V2',
        );
        const sentAt = performance.now();
        const sent = await client.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, header, body), REQUEST_TIMEOUT_MS);
        sendHist.record(performance.now() - sentAt);
        if (sent.code !== ResponseCode.SUCCESS) {
          failures++;
          continue;
        }
        const response = SendMessageResponseHeader.parse(sent.extFields);
        const end = EndTransactionRequestHeader.format({
          producerGroup: PRODUCER_GROUP,
          tranStateTableOffset: response.queueOffset,
          commitLogOffset: commitLogOffsetOfMessageId(response.msgId) ?? 0,
          commitOrRollback: TransactionState.COMMIT,
          fromTransactionCheck: false,
          msgId: uniqKey,
          transactionId: response.transactionId ?? uniqKey,
        });
        const endAt = performance.now();
        const ended = await client.invoke(requestOf(RequestCode.END_TRANSACTION, end), REQUEST_TIMEOUT_MS);
        commitHist.record(performance.now() - endAt);
        if (ended.code === ResponseCode.SUCCESS) committed++;
        else failures++;
      }
    };
    await Promise.all(Array.from({ length: lanes }, (_, index) => lane(index)));
    const ms = performance.now() - started;
    let visible = 0;
    for (let queueId = 0; queueId < QUEUES; queueId++) {
      const answer = await clients[0]!.invoke(requestOf(RequestCode.GET_MAX_OFFSET, { topic: TOPIC, queueId: String(queueId) }), REQUEST_TIMEOUT_MS);
      visible += Number(answer.extFields['offset'] ?? 0);
    }
    return { committed, ms, failures, visible, sendP99Ms: sendHist.quantileMs(0.99), commitP99Ms: commitHist.quantileMs(0.99) };
  } finally {
    for (const client of clients) client.close();
    await stopBenchNode(node);
    fs.rmSync(storeDir, { recursive: true, force: true });
  }
}

/** The bench table's transaction rows. */
export async function transactionRows(seconds: number, lanes = Number(process.env['TX_BENCH_LANES'] ?? 64)): Promise<TransactionRow[]> {
  const result = await measureTransactionTps(seconds, lanes);
  const tps = Math.round(result.committed / (result.ms / 1000));
  return [
    {
      benchmark: `transaction send + commit (Remoting, ${lanes} lanes, 1 KiB)`,
      result: `${tps.toLocaleString('en-US')} tx/s; send p99 ${result.sendP99Ms.toFixed(1)} ms, commit p99 ${result.commitP99Ms.toFixed(1)} ms; ${result.failures} failed`,
      target: '-',
    },
    {
      benchmark: 'committed transactions visible in the topic',
      result: `${result.visible.toLocaleString('en-US')} of ${result.committed.toLocaleString('en-US')}`,
      target: 'all, once',
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await transactionRows(Number(process.env['TX_BENCH_SECONDS'] ?? 5))) console.log(`${row.benchmark}: ${row.result}`);
}
