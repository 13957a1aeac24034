/**
 * Several controllers agreeing through etcd, end to end: a three-member etcd cluster and three
 * `rocketmq-ts controller` processes on loopback, and three brokers of one broker set (in this process)
 * whose controllerAddr lists all three controllers. The master broker stops and, right after, the leading
 * controller is killed with SIGKILL; the broker set still ends with exactly one master, which holds every
 * acknowledged message, and the surviving controllers agree on the new leader and on that master.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { CreateTopicRequestHeader, formatSendMessageRequest } from '../../src/net/remoting/broker-headers.ts';
import { encodeMessageProperties } from '../../src/storage/message-record.ts';
import { readQueueBodies } from './fixtures/read-queue.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { startTestCluster, type ClusterBroker, type TestCluster } from './fixtures/cluster.ts';
import { freePort, startEtcdCluster, stopAllEtcd, type EtcdCluster } from './fixtures/etcd.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/rocketmq-ts.ts');
const TOPIC = 'EtcdFailoverTopic';
const BROKER = 'broker-a';
const REQUEST_MS = 3_000;
/** Lease TTL of the controllers: a new leader within about 2.7 s of the old one's death. */
const LEASE_TTL_SECONDS = 2;
/** Brokers' and controllers' controllerHeartBeatTimeoutMills: how long a silent master stays master. */
const HEARTBEAT_TIMEOUT_MS = 4_000;
/** Log lines kept per controller for a failure message. */
const LOG_LINES_MAX = 300;

type LogLine = Record<string, unknown> & { msg?: string };

/** One controller process. */
type Controller = { readonly id: string; readonly address: string; readonly child: ChildProcess; readonly pid: number; readonly lines: LogLine[]; readonly exited: Promise<void> };

let etcd: EtcdCluster | undefined;
let cluster: TestCluster | undefined;
let workDir: string;
const controllers: Controller[] = [];
const clients: RemotingClient[] = [];

function startController(id: string, port: number, peers: string, endpoints: string): Controller {
  const storeDir = path.join(workDir, id);
  const child = spawn(
    process.execPath,
    [
      BIN,
      'controller',
      `--listenPort=${port}`,
      `--controllerEtcdEndpoints=${endpoints}`,
      `--controllerDLegerSelfId=${id}`,
      `--controllerDLegerPeers=${peers}`,
      `--controllerEtcdLeaseTtlSeconds=${LEASE_TTL_SECONDS}`,
      `--controllerHeartBeatTimeoutMills=${HEARTBEAT_TIMEOUT_MS}`,
      '--scanNotActiveBrokerInterval=500',
      `--storePathRootDir=${storeDir}`,
      '--serverWorkerThreads=1',
      '--adminBrokerThreadPoolNums=1',
      '--cpuTaskThreadPoolNums=1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (child.pid === undefined) throw new Error(`controller ${id} did not start`);
  const lines: LogLine[] = [];
  let pending = '';
  const keep = (line: LogLine): void => {
    lines.push(line);
    lines.splice(0, Math.max(0, lines.length - LOG_LINES_MAX));
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        keep(JSON.parse(text) as LogLine);
      } catch {
        keep({ msg: text });
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => keep({ msg: chunk.toString() }));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const controller = { id, address: `127.0.0.1:${port}`, child, pid: child.pid, lines, exited };
  controllers.push(controller);
  return controller;
}

function kill(controller: Controller): Promise<void> {
  if (controller.child.exitCode === null && controller.child.signalCode === null) process.kill(controller.pid, 'SIGKILL');
  return controller.exited;
}

async function clientOf(address: string): Promise<RemotingClient> {
  const client = await RemotingClient.connect(address);
  clients.push(client);
  return client;
}

/** Asks one controller on a fresh connection; undefined when it cannot be reached. */
async function ask(address: string, request: RemotingCommand): Promise<RemotingCommand | undefined> {
  try {
    const client = await clientOf(address);
    try {
      return await client.invoke(request, REQUEST_MS);
    } finally {
      void client.close();
    }
  } catch {
    return undefined;
  }
}

/** The leader a controller names: its id and address, or undefined. */
async function leaderNamedBy(controller: Controller): Promise<{ id: string; address: string } | undefined> {
  const answer = await ask(controller.address, requestOf(RequestCode.CONTROLLER_GET_METADATA_INFO));
  const id = answer?.extFields['controllerLeaderId'];
  const address = answer?.extFields['controllerLeaderAddress'];
  return id === undefined || address === undefined ? undefined : { id, address };
}

function send(client: RemotingClient, body: string): Promise<RemotingCommand> {
  const header = formatSendMessageRequest(
    { producerGroup: 'etcd-producer', topic: TOPIC, defaultTopic: 'TBW102', defaultTopicQueueNums: 1, queueId: 0, sysFlag: 0, bornTimestamp: Date.now(), flag: 0, properties: encodeMessageProperties({ WAIT: 'true' }), reconsumeTimes: 0 },
    'V2',
  );
  return client.invoke(createRequest({ code: RequestCode.SEND_MESSAGE_V2, opaque: 0, extFields: header, body: Buffer.from(body) }), REQUEST_MS);
}

async function sendOk(client: RemotingClient, body: string): Promise<boolean> {
  try {
    return (await send(client, body)).code === ResponseCode.SUCCESS;
  } catch {
    return false;
  }
}

async function createTopic(client: RemotingClient): Promise<void> {
  const extFields = CreateTopicRequestHeader.format({ topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: 1, writeQueueNums: 1, perm: 6, topicFilterType: 'SINGLE_TAG' });
  expect((await client.invoke(createRequest({ code: RequestCode.UPDATE_AND_CREATE_TOPIC, opaque: 0, extFields }), REQUEST_MS)).code).toBe(ResponseCode.SUCCESS);
}

function readAll(client: RemotingClient): Promise<string[]> {
  return readQueueBodies(client, TOPIC, 0, 'etcd-group', REQUEST_MS);
}

async function inSyncCount(leader: string): Promise<number | undefined> {
  const answer = await ask(leader, requestOf(RequestCode.CONTROLLER_GET_SYNC_STATE_DATA, {}, Buffer.from(JSON.stringify([BROKER]))));
  if (answer?.code !== ResponseCode.SUCCESS) return undefined;
  const table = (JSON.parse(Buffer.from(answer.body ?? []).toString()) as { replicasInfoTable: Record<string, { inSyncReplicas: unknown[] }> }).replicasInfoTable;
  return table[BROKER]?.inSyncReplicas.length;
}

function diagnostics(): string {
  return controllers.map((c) => `--- ${c.id} (pid ${c.pid})\n${c.lines.slice(-40).map((line) => JSON.stringify(line)).join('\n')}`).join('\n');
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'controller-etcd-cluster-'));
  etcd = await startEtcdCluster({ name: 'controller-etcd-cluster', size: 3 });
  const ports = [await freePort(), await freePort(), await freePort()];
  const peers = ports.map((port, i) => `n${i}-127.0.0.1:${port}`).join(';');
  for (const [i, port] of ports.entries()) startController(`n${i}`, port, peers, etcd.endpoints);
  for (const controller of controllers) {
    await pollUntil(`controller ${controller.id} to start`, () => (controller.lines.some((line) => line.msg === 'node started') ? true : undefined), 30_000, 50).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${diagnostics()}`);
    });
  }
  cluster = await startTestCluster({ name: 'controller-etcd-cluster', brokers: 0, logLevel: 'error' });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.close()));
  await cluster?.stop();
  await Promise.all(controllers.map(kill));
  await etcd?.stop();
  await stopAllEtcd();
  if (workDir !== undefined) fs.rmSync(workDir, { recursive: true, force: true });
}, 60_000);

describe('three controllers over a three-member etcd', () => {
  it('ends with exactly one master when the leading controller is killed during a broker failover', async () => {
    // Every controller names the same leader, one of the three.
    const leader = await pollUntil('one leader named by all', async () => {
      const named = await Promise.all(controllers.map(leaderNamedBy));
      const first = named[0];
      return first !== undefined && named.every((n) => n?.id === first.id) ? first : undefined;
    }, 20_000, 100);
    const leading = controllers.find((c) => c.id === leader.id)!;
    expect(leader.address).toBe(leading.address);
    const followers = controllers.filter((c) => c !== leading);
    const refused = await ask(followers[0]!.address, requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }));
    expect(refused?.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);

    // Brokers list every controller, followers first: they must find the leader themselves.
    const controllerAddr = [...followers, leading].map((c) => c.address).join(';');
    const overrides = {
      enableControllerMode: 'true',
      controllerAddr,
      brokerRole: 'ASYNC_MASTER',
      brokerHeartbeatInterval: '300',
      syncBrokerMetadataPeriod: '500',
      checkSyncStateSetPeriod: '300',
      controllerHeartBeatTimeoutMills: String(HEARTBEAT_TIMEOUT_MS),
    };
    const master = await cluster!.startBroker(BROKER, overrides, 'a-1');
    const masterClient = await clientOf(master.brokerAddr);
    await createTopic(masterClient);
    await pollUntil('the first broker to take sends', () => sendOk(masterClient, 'warm-up').then((ok) => (ok ? true : undefined)), 20_000, 100);
    const slaves: ClusterBroker[] = [await cluster!.startBroker(BROKER, overrides, 'a-2'), await cluster!.startBroker(BROKER, overrides, 'a-3')];
    const slaveClients = await Promise.all(slaves.map((slave) => clientOf(slave.brokerAddr)));
    for (const client of slaveClients) await createTopic(client);
    const acknowledged: string[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await send(masterClient, `before-${i}`);
      expect(response.code, response.remark).toBe(ResponseCode.SUCCESS);
      acknowledged.push(`before-${i}`);
    }
    await pollUntil('a SyncStateSet of three', async () => ((await inSyncCount(leading.address)) === 3 ? true : undefined), 20_000, 100);

    // The master goes away, and as it stops the leading controller dies without a word: most often
    // before it has seen the master's connection close, so the next leader runs the failover.
    const stopping = master.stop();
    await kill(leading);
    await stopping;

    // Exactly one survivor takes sends: poll until one does, then the other must refuse.
    const winner = await pollUntil(
      'a new master among the survivors',
      async () => {
        for (const [i, client] of slaveClients.entries()) if (await sendOk(client, `after-${i}`)) return i;
        return undefined;
      },
      40_000,
      200,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${diagnostics()}`);
    });
    const loser = 1 - winner;
    expect(await sendOk(slaveClients[loser]!, 'to-the-slave')).toBe(false);
    const onNewMaster = await readAll(slaveClients[winner]!);
    for (const body of acknowledged) expect(onNewMaster).toContain(body);

    // The two surviving controllers agree on the new leader, one of them, and it names the same master.
    const newLeader = await pollUntil('the survivors to agree on a leader', async () => {
      const named = await Promise.all(followers.map(leaderNamedBy));
      const first = named[0];
      return first !== undefined && first.id !== leading.id && named.every((n) => n?.id === first.id) ? first : undefined;
    }, 20_000, 100);
    const info = await ask(newLeader.address, requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }));
    expect(info?.code).toBe(ResponseCode.SUCCESS);
    expect(info?.extFields['masterAddress']).toBe(slaves[winner]!.brokerAddr);
    const follower = followers.find((c) => c.id !== newLeader.id)!;
    expect((await ask(follower.address, requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER })))?.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    // Still exactly one master a moment later.
    expect(await sendOk(slaveClients[winner]!, 'still-master')).toBe(true);
    expect(await sendOk(slaveClients[loser]!, 'still-slave')).toBe(false);
  }, 90_000);
});

describe('controller config', () => {
  it('refuses etcd endpoints without the peers that say where this controller is reached', async () => {
    const child = spawn(process.execPath, [BIN, 'controller', '--listenPort=0', '--controllerEtcdEndpoints=http://127.0.0.1:2379'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('controllerDLegerPeers');
  });
});
