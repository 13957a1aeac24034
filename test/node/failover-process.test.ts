/**
 * Controller-mode failover with real processes on loopback: a NameServer with the controller embedded,
 * three brokers of one broker set (SYNC_MASTER, so a send is acknowledged only once the in-sync replicas
 * hold it), a CLUSTER-mode Proxy, and official 5.x clients (Producers and POP SimpleConsumers) through it.
 *
 * Under load the master is killed with SIGKILL. Then:
 * - a new master takes sends through the Proxy within 10 s;
 * - every send the Producer saw acknowledged is on the new master at the queue offset its receipt named,
 *   and no (queue, offset) was handed out twice;
 * - the consumers go on receiving, messages sent after the kill among them;
 * - the old master restarts on its store, truncates what it had not replicated, rejoins the SyncStateSet
 *   as a slave, and the three CommitLogs are byte-identical up to the common confirmed offset.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { RemotingClient } from '../../src/net/remoting/remoting-client.ts';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { silentLogger } from '../proxy/fixtures/silent-logger.ts';
import { waitForRoute } from '../proxy/fixtures/broker-reads.ts';
import { createTopic, readQueue, replicaState, runtimeInfo, sendTo, type PulledMessage } from './fixtures/broker-ops.ts';
import { freePort, killAll, SMALL_POOLS, spawnNode, type NodeProcess } from './fixtures/node-process.ts';

const CLUSTER = 'FailoverCluster';
const BROKER_NAME = 'broker-a';
const TOPIC = 'FailoverProcessTopic';
const GROUP = 'failover-process-group';
const QUEUES = 4;
/** Concurrent send loops (each waits for its acknowledgement before the next send). */
const SEND_LOOPS = 4;
const CONSUMERS = 2;
const LOAD_BEFORE_KILL_MS = 3_000;
const LOAD_AFTER_FAILOVER_MS = 3_000;
const FAILOVER_LIMIT_MS = 10_000;

/** An acknowledged send: its receipt's message id and queue offset (the Proxy, not the client, picks the queue). */
type Acked = { readonly body: string; readonly messageId: string; readonly offset: number; readonly sentAtMs: number };
type BrokerSlot = { readonly index: number; readonly listenPort: number; readonly haListenPort: number; readonly storeDir: string; process: NodeProcess | undefined };

let rootDir: string;
let namesrv: NodeProcess;
let proxy: NodeProcess;
let controllerAddr: string;
let namesrvAddr: string;
const slots: BrokerSlot[] = [];

function brokerAddr(slot: BrokerSlot): string {
  return `127.0.0.1:${slot.listenPort}`;
}

function startBroker(slot: BrokerSlot): Promise<NodeProcess> {
  return spawnNode('broker', `broker-${slot.index}`, {
    ...SMALL_POOLS,
    sendMessageThreadPoolNums: '1',
    pullMessageThreadPoolNums: '1',
    brokerClusterName: CLUSTER,
    brokerName: BROKER_NAME,
    brokerIP1: '127.0.0.1',
    listenPort: String(slot.listenPort),
    haListenPort: String(slot.haListenPort),
    storePathRootDir: slot.storeDir,
    namesrvAddr,
    enableControllerMode: 'true',
    controllerAddr,
    brokerRole: 'SYNC_MASTER',
    brokerHeartbeatInterval: '300',
    controllerHeartBeatTimeoutMills: '3000',
    syncBrokerMetadataPeriod: '500',
    checkSyncStateSetPeriod: '300',
    mappedFileSizeCommitLog: String(64 * 1024 * 1024),
    logLevel: 'info',
  });
}

/** Whether `slot`'s broker takes a direct send right now (it is the master). */
async function takesSends(slot: BrokerSlot): Promise<boolean> {
  if (slot.process === undefined) return false;
  try {
    const client = await RemotingClient.connect(brokerAddr(slot));
    try {
      return (await sendTo(client, TOPIC, 0, `probe-${slot.index}`)).code === ResponseCode.SUCCESS;
    } finally {
      await client.close();
    }
  } catch {
    return false;
  }
}

/** Rethrows `error` with the last log lines of every node, so a failed wait says what the nodes did. */
function withLogs(error: unknown): Error {
  const nodes = [namesrv, proxy, ...slots.map((slot) => slot.process)].filter((node) => node !== undefined);
  const tails = nodes.map((node) => `--- ${node.name}\n${node.log.slice(-15).map((line) => JSON.stringify(line)).join('\n')}`).join('\n');
  return new Error(`${error instanceof Error ? error.message : String(error)}\n${tails}`);
}

beforeAll(async () => {
  try {
    await startAll();
  } catch (error) {
    throw withLogs(error);
  }
}, 120_000);

async function startAll(): Promise<void> {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'failover-process-'));
  namesrv = await spawnNode('namesrv', 'namesrv', {
    ...SMALL_POOLS,
    listenPort: '0',
    enableControllerInNamesrv: 'true',
    controllerListenPort: '0',
    controllerStorePath: path.join(rootDir, 'controller'),
    scanNotActiveBrokerInterval: '1000',
    storePathRootDir: path.join(rootDir, 'namesrv'),
    logLevel: 'info',
  });
  namesrvAddr = `127.0.0.1:${namesrv.ports.namesrv}`;
  controllerAddr = `127.0.0.1:${namesrv.ports.controller}`;
  for (let index = 1; index <= 3; index++) {
    slots.push({ index, listenPort: await freePort(), haListenPort: await freePort(), storeDir: path.join(rootDir, `broker-${index}`), process: undefined });
  }
  // The first broker to register is elected master; the others follow it.
  slots[0]!.process = await startBroker(slots[0]!);
  // (A SYNC_MASTER alone answers sends SLAVE_NOT_AVAILABLE, so the controller is asked who is master.)
  await pollUntil('broker 1 to be master', async () => ((await replicaState(controllerAddr, BROKER_NAME))?.masterAddress === brokerAddr(slots[0]!) ? true : undefined), 30_000, 200);
  expect(await createTopic(brokerAddr(slots[0]!), TOPIC, QUEUES)).toBe(ResponseCode.SUCCESS);
  for (const slot of slots.slice(1)) {
    slot.process = await startBroker(slot);
    expect(await createTopic(brokerAddr(slot), TOPIC, QUEUES)).toBe(ResponseCode.SUCCESS);
  }
  await pollUntil('a SyncStateSet of three', async () => ((await replicaState(controllerAddr, BROKER_NAME))?.inSync.length === 3 ? true : undefined), 30_000, 200);
  await waitForRoute(namesrvAddr, TOPIC);
  proxy = await spawnNode('proxy', 'proxy', {
    ...SMALL_POOLS,
    listenPort: '0',
    remotingListenPort: '0',
    grpcServerPort: '0',
    grpcThreadPoolNums: '1',
    namesrvAddr,
    proxyMode: 'CLUSTER',
    logLevel: 'info',
  });
}

afterAll(async () => {
  await killAll();
  if (rootDir !== undefined) fs.rmSync(rootDir, { recursive: true, force: true });
}, 60_000);

describe('controller-mode failover across processes', () => {
  it('kill -9 of the master under load: a new master within 10 s, nothing acknowledged lost, the old master rejoins byte-identical', async () => {
    const endpoint = `127.0.0.1:${proxy.ports.grpc}`;
    const producer = new Producer({ endpoints: endpoint, namespace: '', topics: [TOPIC], logger: silentLogger, requestTimeout: 3_000, maxAttempts: 1 });
    await producer.startup();
    const consumers = Array.from(
      { length: CONSUMERS },
      () =>
        new SimpleConsumer({
          endpoints: endpoint,
          namespace: '',
          consumerGroup: GROUP,
          subscriptions: new Map([[TOPIC, new FilterExpression('*')]]),
          awaitDuration: 5_000,
          logger: silentLogger,
          requestTimeout: 3_000,
        }),
    );
    for (const consumer of consumers) await consumer.startup();

    const acked: Acked[] = [];
    const received = new Map<string, number>();
    const receiveErrors = new Map<string, number>();
    const failuresAfterKill: string[] = [];
    let producing = true;
    let consuming = true;
    let killedAtMs = Number.POSITIVE_INFINITY;
    let firstAckAfterKillMs: number | undefined;

    const sendLoop = async (loop: number): Promise<void> => {
      for (let seq = 0; producing; seq++) {
        const body = `m-${loop}-${seq}`;
        const sentAtMs = Date.now();
        try {
          const receipt = await producer.send({ topic: TOPIC, tag: 't', body: Buffer.from(body) });
          acked.push({ body, messageId: receipt.messageId, offset: Number(receipt.offset), sentAtMs });
          if (sentAtMs > killedAtMs && firstAckAfterKillMs === undefined) firstAckAfterKillMs = Date.now();
        } catch (error) {
          if (sentAtMs > killedAtMs) failuresAfterKill.push(`${sentAtMs - killedAtMs}ms ${String(error).slice(0, 160)}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    };
    const consumeLoop = async (consumer: SimpleConsumer): Promise<void> => {
      while (consuming) {
        try {
          for (const message of await consumer.receive(16, 10_000)) {
            const body = Buffer.from(message.body).toString();
            received.set(body, (received.get(body) ?? 0) + 1);
            await consumer.ack(message).catch(() => undefined);
          }
        } catch (error) {
          receiveErrors.set(String(error), (receiveErrors.get(String(error)) ?? 0) + 1);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    const loops = [...Array.from({ length: SEND_LOOPS }, (_, loop) => sendLoop(loop)), ...consumers.map(consumeLoop)];

    try {
      await pollUntil('acknowledged sends before the kill', () => (acked.length >= 50 ? true : undefined), 30_000, 50);
      await new Promise((resolve) => setTimeout(resolve, LOAD_BEFORE_KILL_MS));
      const master = slots[0]!;
      const ackedBeforeKill = acked.length;
      killedAtMs = Date.now();
      master.process!.signal('SIGKILL');
      await master.process!.exited;
      master.process = undefined;

      await pollUntil('a send acknowledged through the Proxy after the kill', () => firstAckAfterKillMs, 30_000, 20);
      const failoverMs = firstAckAfterKillMs! - killedAtMs;
      expect(failoverMs, failuresAfterKill.slice(0, 40).join('\n')).toBeLessThan(FAILOVER_LIMIT_MS);
      const afterFailover = acked.length;
      await new Promise((resolve) => setTimeout(resolve, LOAD_AFTER_FAILOVER_MS));
      producing = false;
      expect(acked.length).toBeGreaterThan(afterFailover);
      expect(ackedBeforeKill).toBeGreaterThan(0);

      // The consumers go on: they receive messages that were sent after the kill.
      const sentAfterKill = acked.filter((message) => message.sentAtMs > killedAtMs).map((message) => message.body);
      await pollUntil('consumers to receive messages sent after the kill', () => (sentAfterKill.some((body) => received.has(body)) ? true : undefined), 30_000, 100).catch(
        (error: unknown) => {
          throw withLogs(new Error(`${String(error)}; acked ${acked.length}, ${sentAfterKill.length} after the kill; received ${received.size}; receive errors ${JSON.stringify([...receiveErrors])}`));
        },
      );
    } finally {
      producing = false;
      consuming = false;
      await Promise.all(loops);
      for (const consumer of consumers) await consumer.shutdown();
      await producer.shutdown();
    }

    // Which broker is master now, by the controller.
    const state = await replicaState(controllerAddr, BROKER_NAME);
    expect(state?.masterAddress).toBeDefined();
    const newMaster = slots.find((slot) => brokerAddr(slot) === state!.masterAddress);
    expect(newMaster, `master ${state?.masterAddress}`).toBeDefined();
    expect(newMaster!.index).not.toBe(1);

    // Nothing acknowledged is lost: each receipt's message is on the new master, with its body, at the
    // queue offset the receipt named; no two acknowledged messages share a (queue, offset).
    const stored = new Map<string, { queueId: number; message: PulledMessage }>();
    for (let queueId = 0; queueId < QUEUES; queueId++) {
      const messages = await readQueue(brokerAddr(newMaster!), TOPIC, queueId);
      messages.forEach((message, index) => expect(message.queueOffset).toBe(index));
      for (const message of messages) if (message.uniqKey !== '') stored.set(message.uniqKey, { queueId, message });
    }
    const positions = new Set<string>();
    for (const message of acked) {
      const found = stored.get(message.messageId);
      expect(found?.message.body, `acknowledged ${message.body} (${message.messageId})`).toBe(message.body);
      expect(found!.message.queueOffset, `queue offset of ${message.body}`).toBe(message.offset);
      const position = `${found!.queueId}:${found!.message.queueOffset}`;
      expect(positions.has(position), `queue offset ${position} acknowledged twice`).toBe(false);
      positions.add(position);
    }

    // The old master comes back on its own store, truncates, and rejoins as a slave.
    const oldMaster = slots[0]!;
    oldMaster.process = await startBroker(oldMaster);
    await pollUntil('the old master back in the SyncStateSet', async () => ((await replicaState(controllerAddr, BROKER_NAME))?.inSync.length === 3 ? true : undefined), 60_000, 200);
    expect(await takesSends(oldMaster)).toBe(false);
    const confirmed = await pollUntil('three equal CommitLog max offsets', async () => {
      const offsets = await Promise.all(slots.map(async (slot) => Number((await runtimeInfo(brokerAddr(slot))).get('commitLogMaxOffset'))));
      return offsets.every((offset) => offset === offsets[0]) && offsets[0]! > 0 ? offsets[0] : undefined;
    }, 60_000, 200);
    const logs = slots.map((slot) => fs.readFileSync(path.join(slot.storeDir, 'commitlog', '00000000000000000000')).subarray(0, confirmed));
    for (const log of logs.slice(1)) expect(Buffer.compare(log, logs[0]!)).toBe(0);
  }, 240_000);
});
