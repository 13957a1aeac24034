/**
 * The failover phases of `npm run bench:ha`, in controller mode: a NameServer with the controller
 * embedded (enableControllerInNamesrv) and, per run, two brokers of a fresh broker set
 * (enableControllerMode) that get their ids and roles from it. Once the first is master, the second has
 * copied everything and the controller lists both in the SyncStateSet, the master is taken away, and from
 * that moment the bench times (a) the controller naming the second broker master
 * (CONTROLLER_GET_SYNC_STATE_DATA, polled) and (b) the second broker acknowledging a SEND_MESSAGE_V2
 * (tried every RETRY_INTERVAL_MS). Two ways to take the master away:
 * - `kill`: SIGKILL (kill -9). The kernel closes the master's connections, and the controller, like
 *   RocketMQ's (BrokerHousekeepingService.onChannelClose), treats a closed heartbeat connection as the
 *   broker gone: the heartbeat timeout plays no part.
 * - `freeze`: SIGSTOP, a hung master whose connections stay open. Only the missing heartbeats tell: the
 *   controller's scan (every scanNotActiveBrokerInterval) finds it silent past controllerHeartBeatTimeoutMills.
 * `failover` uses short heartbeat settings, `failover-defaults` RocketMQ's.
 */
import path from 'node:path';
import { RemotingClient } from '../src/net/remoting/remoting-client.ts';
import { ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { crashHaNode, freezeHaNode, type HaNode, startHaNode, stopHaNode } from './ha-node.ts';
import { brokerBase } from './ha-pair.ts';
import { codeName, commitLogMaxOffset, createTopic, pollUntil, replicasOf, sendOne, sleep } from './ha-probe.ts';
import type { PhaseContext } from './ha-replication.ts';
import { fmt } from './ha-table.ts';

/** How the master is taken away: SIGKILL, or SIGSTOP (then SIGKILL once measured). */
export type FailoverMode = 'kill' | 'freeze';

/** Timing settings of one failover configuration. */
export type FailoverSettings = {
  /** Row label. */
  readonly label: string;
  /** NameServer overrides besides the controller's (scanNotActiveBrokerInterval). */
  readonly namesrv: Readonly<Record<string, string>>;
  /** Broker overrides besides controller mode (brokerHeartbeatInterval, controllerHeartBeatTimeoutMills, ...). */
  readonly broker: Readonly<Record<string, string>>;
  /** How many times to take a master away, per mode. */
  readonly runs: number;
};

/** RocketMQ's defaults of the settings that bound failover (BrokerConfig, NamesrvConfig). */
export const DEFAULT_FAILOVER_TIMINGS = {
  brokerHeartbeatInterval: 1_000,
  controllerHeartBeatTimeoutMills: 10_000,
  scanNotActiveBrokerInterval: 5_000,
  syncBrokerMetadataPeriod: 5_000,
  checkSyncStateSetPeriod: 5_000,
} as const;

const MODES: readonly FailoverMode[] = ['kill', 'freeze'];
const MODE_LABEL: Readonly<Record<FailoverMode, string>> = { kill: 'kill -9 master', freeze: 'SIGSTOP master (hung, connections open)' };
const TOPIC = 'HaFailoverTopic';
const BODY = Buffer.alloc(1024, 'f');
/** Messages the first master acknowledges before it is taken away. */
const MESSAGES_BEFORE_FAILURE = 100;
/** Pause between tries of the slave (send) and of the controller (query) after the failure. */
const RETRY_INTERVAL_MS = 10;
/** How long one send may take. */
const SEND_TIMEOUT_MS = 1_000;
/** Longest setup wait (master elected, SyncStateSet of two, slave caught up). */
const SETUP_TIMEOUT_MS = 60_000;
/** Longest wait for the failover itself. */
const FAILOVER_TIMEOUT_MS = 60_000;
/** Most distinct refusal codes kept for the notes. */
const CODES_KEPT_MAX = 8;

/** What one failure measured. */
type FailoverRun = {
  readonly mode: FailoverMode;
  /** From the signal to the controller naming the other broker master. */
  readonly electedMs: number;
  /** From the signal to the other broker's first SUCCESS. */
  readonly acceptedMs: number;
  /** Answers other than SUCCESS the other broker gave meanwhile, by code (-1: no answer in time). */
  readonly refusals: ReadonlyMap<number, number>;
};

/** Runs `settings.runs` failures per mode against a NameServer + controller of their own; adds the rows. */
export async function failoverPhase(ctx: PhaseContext, settings: FailoverSettings): Promise<void> {
  const namesrv = await startHaNode('namesrv', 'controller namesrv', path.join(ctx.dir, 'namesrv'), {
    enableControllerInNamesrv: 'true',
    controllerListenPort: '0',
    ...settings.namesrv,
  });
  const controllerAddr = `127.0.0.1:${namesrv.controllerPort}`;
  const controller = await RemotingClient.connect(controllerAddr);
  const runs: FailoverRun[] = [];
  try {
    for (const mode of MODES) {
      for (let run = 1; run <= settings.runs; run++) {
        // A fresh broker set per run: the controller keeps the old sets' metadata, which does not matter.
        const brokerName = `ha-${mode}-${run}`;
        const base = brokerBase(`127.0.0.1:${namesrv.namesrvPort}`, brokerName, {});
        const overrides = { ...base, enableControllerMode: 'true', controllerAddr, brokerRole: 'ASYNC_MASTER', ...settings.broker, ...ctx.brokerOverrides };
        runs.push(await failOnce(path.join(ctx.dir, brokerName), brokerName, overrides, controller, mode));
      }
    }
  } finally {
    await controller.close().catch(() => undefined);
    await stopHaNode(namesrv);
  }
  for (const mode of MODES) addRows(ctx, settings, mode, runs.filter((run) => run.mode === mode));
}

/** Starts a broker of the set, connects to it and creates the topic on it. */
async function openBroker(dir: string, brokerName: string, name: string, overrides: Record<string, string>, started: HaNode[], clients: RemotingClient[]): Promise<{ node: HaNode; client: RemotingClient }> {
  const node = await startHaNode('broker', `${brokerName} ${name}`, path.join(dir, name), overrides);
  started.push(node);
  const client = await RemotingClient.connect(`127.0.0.1:${node.brokerPort}`);
  clients.push(client);
  await createTopic(client, TOPIC, 1);
  return { node, client };
}

/** One broker set: set up, take the master away, time the takeover; stops what it started. */
async function failOnce(dir: string, brokerName: string, overrides: Record<string, string>, controller: RemotingClient, mode: FailoverMode): Promise<FailoverRun> {
  const started: HaNode[] = [];
  const clients: RemotingClient[] = [];
  // Set when the run ends, so that a poll loop outliving a failed sibling stops too.
  let finished = false;
  try {
    // The first broker to register becomes master once the controller has elected it.
    const first = await openBroker(dir, brokerName, 'first', overrides, started, clients);
    await pollUntil(`${brokerName}: the first broker to take sends`, async () => ((await sendOne(first.client, TOPIC, BODY, SEND_TIMEOUT_MS)).code === ResponseCode.SUCCESS ? true : undefined), SETUP_TIMEOUT_MS, 50);
    const second = await openBroker(dir, brokerName, 'second', overrides, started, clients);
    for (let i = 0; i < MESSAGES_BEFORE_FAILURE; i++) {
      const answer = await sendOne(first.client, TOPIC, BODY, SEND_TIMEOUT_MS * 5);
      if (answer.code !== ResponseCode.SUCCESS) throw new Error(`${brokerName}: send to the master answered ${answer.code} ${answer.remark ?? ''}`);
    }
    const firstAddr = `127.0.0.1:${first.node.brokerPort}`;
    const secondAddr = `127.0.0.1:${second.node.brokerPort}`;
    // A clean election needs the slave in the SyncStateSet, and a fair figure needs it caught up.
    const before = await pollUntil(`${brokerName}: a SyncStateSet of two with the first broker as master`, async () => {
      const info = await replicasOf(controller, brokerName);
      return info !== undefined && info.masterAddress === firstAddr && info.inSyncReplicas.length === 2 ? info : undefined;
    }, SETUP_TIMEOUT_MS, 50);
    await pollUntil(`${brokerName}: the slave to hold the master's CommitLog`, async () => {
      const [master, slave] = await Promise.all([commitLogMaxOffset(first.client), commitLogMaxOffset(second.client)]);
      return slave >= master ? true : undefined;
    }, SETUP_TIMEOUT_MS, 20);

    const failedAt = performance.now();
    const gone = mode === 'kill' ? crashHaNode(first.node) : Promise.resolve(freezeHaNode(first.node));
    const deadline = failedAt + FAILOVER_TIMEOUT_MS;
    const polling = (): boolean => !finished && performance.now() < deadline;
    const elected = (async (): Promise<number> => {
      while (polling()) {
        const info = await replicasOf(controller, brokerName).catch(() => undefined);
        if (info !== undefined && info.masterAddress === secondAddr && info.masterEpoch > before.masterEpoch) return performance.now() - failedAt;
        await sleep(RETRY_INTERVAL_MS);
      }
      throw new Error(`${brokerName}: the controller did not elect the second broker within ${FAILOVER_TIMEOUT_MS} ms`);
    })();
    const refusals = new Map<number, number>();
    const accepted = (async (): Promise<number> => {
      while (polling()) {
        const answer = await sendOne(second.client, TOPIC, BODY, SEND_TIMEOUT_MS).catch(() => undefined);
        if (answer?.code === ResponseCode.SUCCESS) return performance.now() - failedAt;
        const code = answer?.code ?? -1;
        if (refusals.has(code) || refusals.size < CODES_KEPT_MAX) refusals.set(code, (refusals.get(code) ?? 0) + 1);
        await sleep(RETRY_INTERVAL_MS);
      }
      throw new Error(`${brokerName}: the second broker took no send within ${FAILOVER_TIMEOUT_MS} ms`);
    })();
    const [electedMs, acceptedMs] = await Promise.all([elected, accepted, gone]);
    return { mode, electedMs, acceptedMs, refusals };
  } finally {
    finished = true;
    await Promise.allSettled(clients.map((client) => client.close()));
    await Promise.allSettled(started.map((node) => stopHaNode(node)));
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Rows of one mode: min and median time until the slave takes sends, with the election times in the notes. */
function addRows(ctx: PhaseContext, settings: FailoverSettings, mode: FailoverMode, runs: readonly FailoverRun[]): void {
  if (runs.length === 0) return;
  const accepted = runs.map((run) => run.acceptedMs);
  const timings = Object.entries({ ...settings.namesrv, ...settings.broker })
    .map(([key, value]) => `${key}=${value}`)
    .join(', ');
  const refusals = new Map<number, number>();
  for (const run of runs) for (const [code, count] of run.refusals) refusals.set(code, (refusals.get(code) ?? 0) + count);
  const refused = [...refusals].map(([code, count]) => `${fmt(count)} x ${code === -1 ? 'no answer' : codeName(code)}`).join(', ');
  const list = (values: readonly number[]): string => values.map((ms) => fmt(ms)).join(' / ');
  const measure = `${settings.label}, ${MODE_LABEL[mode]} -> slave acknowledges a send`;
  const electedNotes = `controller elected the slave after ${list(runs.map((run) => run.electedMs))} ms; sends refused meanwhile: ${refused === '' ? 'none' : refused}`;
  if (runs.length === 1) {
    ctx.table.add({ measure, value: fmt(accepted[0]!), unit: 'ms', notes: `1 run; ${electedNotes}; ${timings}` });
    return;
  }
  ctx.table.add({ measure: `${measure}, min`, value: fmt(Math.min(...accepted)), unit: 'ms', notes: `${runs.length} runs: ${list(accepted)} ms; ${timings}` });
  ctx.table.add({ measure: `${measure}, median`, value: fmt(median(accepted)), unit: 'ms', notes: electedNotes });
}
