/**
 * Fencing a replaced master, with real processes: a NameServer with the controller embedded and two
 * ASYNC_MASTER brokers of one set in controller mode. The master is frozen with SIGSTOP, under a stream of
 * sends, until the controller has elected the other broker and that broker takes sends; then SIGCONT.
 * The old master must acknowledge nothing after that: every answer it gives from then on, to the sends
 * that waited in its socket while it was frozen and to new ones, is a refusal. (ASYNC_MASTER is the
 * case that needs the fence: it acknowledges without asking any slave.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemotingClient } from '../../src/net/remoting/remoting-client.ts';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { pollUntil } from '../runtime/helpers.ts';
import { createTopic, replicaState, sendTo } from './fixtures/broker-ops.ts';
import { killAll, SMALL_POOLS, spawnNode, type NodeProcess } from './fixtures/node-process.ts';

const BROKER_NAME = 'broker-f';
const TOPIC = 'FencingTopic';
/** Sends kept in flight to the old master while it is frozen and after it resumes. */
const SENDERS = 8;
/** How long after SIGCONT the old master is watched. */
const WATCH_AFTER_RESUME_MS = 4_000;

let rootDir: string;
let controllerAddr: string;
const brokers: NodeProcess[] = [];

function addrOf(broker: NodeProcess): string {
  return `127.0.0.1:${broker.ports.broker}`;
}

beforeAll(async () => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencing-process-'));
  const namesrv = await spawnNode('namesrv', 'namesrv', {
    ...SMALL_POOLS,
    listenPort: '0',
    enableControllerInNamesrv: 'true',
    controllerListenPort: '0',
    scanNotActiveBrokerInterval: '500',
    storePathRootDir: path.join(rootDir, 'namesrv'),
    logLevel: 'info',
  });
  controllerAddr = `127.0.0.1:${namesrv.ports.controller}`;
  for (let index = 1; index <= 2; index++) {
    const broker = await spawnNode('broker', `broker-${index}`, {
      ...SMALL_POOLS,
      sendMessageThreadPoolNums: '1',
      pullMessageThreadPoolNums: '1',
      brokerClusterName: 'FencingCluster',
      brokerName: BROKER_NAME,
      brokerIP1: '127.0.0.1',
      listenPort: '0',
      haListenPort: '0',
      storePathRootDir: path.join(rootDir, `broker-${index}`),
      namesrvAddr: `127.0.0.1:${namesrv.ports.namesrv}`,
      enableControllerMode: 'true',
      controllerAddr,
      brokerRole: 'ASYNC_MASTER',
      brokerHeartbeatInterval: '300',
      controllerHeartBeatTimeoutMills: '2000',
      syncBrokerMetadataPeriod: '500',
      checkSyncStateSetPeriod: '300',
      mappedFileSizeCommitLog: String(64 * 1024 * 1024),
      logLevel: 'info',
    });
    brokers.push(broker);
    if (index === 1) await pollUntil('broker 1 to be master', async () => ((await replicaState(controllerAddr, BROKER_NAME))?.masterAddress === addrOf(broker) ? true : undefined), 30_000, 100);
  }
  expect(await createTopic(addrOf(brokers[0]!), TOPIC, 1)).toBe(ResponseCode.SUCCESS);
  await pollUntil('a SyncStateSet of two', async () => ((await replicaState(controllerAddr, BROKER_NAME))?.inSync.length === 2 ? true : undefined), 30_000, 100);
}, 90_000);

afterAll(async () => {
  await killAll();
  if (rootDir !== undefined) fs.rmSync(rootDir, { recursive: true, force: true });
}, 60_000);

describe('a master frozen past its replacement', () => {
  it('acknowledges nothing after SIGCONT once another broker was elected', async () => {
    const [oldMaster, other] = [brokers[0]!, brokers[1]!];
    const toOld = await RemotingClient.connect(addrOf(oldMaster));
    const toOther = await RemotingClient.connect(addrOf(other));
    let resumedAtMs = Number.POSITIVE_INFINITY;
    let sending = true;
    let ackedBeforeFreeze = 0;
    const answersAfterResume = new Map<number | string, number>();
    // Every answer after SIGCONT in arrival order (one connection: the order the broker wrote them).
    const arrivals: (number | string)[] = [];
    const count = (key: number | string): void => {
      answersAfterResume.set(key, (answersAfterResume.get(key) ?? 0) + 1);
      arrivals.push(key);
    };
    const sender = async (id: number): Promise<void> => {
      for (let seq = 0; sending; seq++) {
        try {
          const answer = await sendTo(toOld, TOPIC, 0, `old-${id}-${seq}`);
          if (Date.now() >= resumedAtMs) count(answer.code);
          else if (answer.code === ResponseCode.SUCCESS) ackedBeforeFreeze++;
        } catch (error) {
          if (Date.now() >= resumedAtMs) count(error instanceof Error ? error.name : 'error');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };
    const senders = Array.from({ length: SENDERS }, (_, id) => sender(id));
    try {
      await pollUntil('the master to take sends', () => (ackedBeforeFreeze > 20 ? true : undefined), 15_000, 10);
      oldMaster.signal('SIGSTOP');
      // The controller notices the silence (controllerHeartBeatTimeoutMills) and elects the other broker.
      await pollUntil('the other broker to take sends', async () => ((await sendTo(toOther, TOPIC, 0, 'new-master')).code === ResponseCode.SUCCESS ? true : undefined), 30_000, 100);
      const state = await replicaState(controllerAddr, BROKER_NAME);
      expect(state?.masterAddress).toBe(addrOf(other));
      resumedAtMs = Date.now();
      oldMaster.signal('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, WATCH_AFTER_RESUME_MS));
    } finally {
      sending = false;
      await Promise.all(senders);
      await toOld.close();
      await toOther.close();
    }
    // It answered (the senders were not all just waiting), and refused. Every answer checked against the
    // lease after SIGCONT is a refusal; the one exception is the write the freeze may have caught between
    // the acceptor's lease check and its writev (README, "Fencing a frozen master"): answers decided under
    // the valid lease, at most one per sender, which leave first. No SUCCESS may follow a refusal.
    const answered = arrivals.length;
    expect(answered, JSON.stringify([...answersAfterResume])).toBeGreaterThan(0);
    const oldLog = oldMaster.log.slice(-40).map((line) => JSON.stringify(line)).join('\n');
    const firstRefusal = arrivals.findIndex((key) => key !== ResponseCode.SUCCESS);
    const detail = `${JSON.stringify(arrivals)}\n${oldLog}`;
    expect(firstRefusal, detail).toBeGreaterThanOrEqual(0);
    expect(arrivals.slice(firstRefusal).filter((key) => key === ResponseCode.SUCCESS), detail).toEqual([]);
    expect(firstRefusal, detail).toBeLessThanOrEqual(SENDERS);
    // The controller still names the new master, and the old one learned it is a slave now.
    expect((await replicaState(controllerAddr, BROKER_NAME))?.masterAddress).toBe(addrOf(other));
    await pollUntil('the old master to refuse as a slave', () => (oldMaster.log.some((line) => line.msg === 'broker role changed' && line['role'] === 'SLAVE') ? true : undefined), 15_000, 50);
  }, 120_000);
});
