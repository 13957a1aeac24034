/**
 * `npm run bench:ha`: master/slave replication and controller failover, with every broker and NameServer
 * a child process (`node bin/rocketmq-ts.ts broker|namesrv`, ephemeral ports, ASYNC_FLUSH, loopback),
 * printed as one table (measure | value | unit | notes). Phases (ha-replication.ts, ha-failover.ts):
 * - `replication`: ASYNC_MASTER append throughput (batches) against the SLAVE's replication throughput,
 *   the lag, and the ASYNC_MASTER single-send baseline;
 * - `sync`: SYNC_MASTER single-send throughput, p50 and p99 with one SLAVE;
 * - `failover`: controller mode, from kill -9 (and from SIGSTOP, a hung master) of the master until the
 *   slave acknowledges a send, with short heartbeat settings, HA_BENCH_FAILOVER_RUNS times each (default
 *   3), min and median;
 * - `failover-defaults`: the same once each with RocketMQ's default heartbeat settings.
 * Environment: HA_BENCH_SECONDS (each timed load, default 10), HA_BENCH_PHASES (comma-separated, default
 * all four), HA_BENCH_FAILOVER_RUNS, HA_BENCH_HEARTBEAT_TIMEOUT_MS (the short
 * controllerHeartBeatTimeoutMills, default 2000), HA_BENCH_BROKER_OVERRIDES (key=value,... given to
 * every broker, for experiments such as haTransferBatchSize=262144), HA_BENCH_DIR (parent of the stores,
 * default the OS temp dir). The full run takes about 2.5 minutes on 2 cores. Every child is stopped by
 * PID and the stores are removed at the end, on failure and on Ctrl-C alike. Figures are printed, never
 * asserted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAllNow, startHaNode, stopAllHaNodes } from './ha-node.ts';
import { cleanUpAtExit } from './remoting-node.ts';
import { DEFAULT_FAILOVER_TIMINGS, failoverPhase } from './ha-failover.ts';
import { type PhaseContext, replicationPhase, syncPhase } from './ha-replication.ts';
import { HaTable } from './ha-table.ts';

const PHASES = ['replication', 'sync', 'failover', 'failover-defaults'] as const;
type Phase = (typeof PHASES)[number];
/** Most failover runs one configuration may ask for. */
const FAILOVER_RUNS_MAX = 20;

function positiveNumber(name: string, fallback: number): number {
  const text = process.env[name];
  const value = text === undefined || text === '' ? fallback : Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`${name} must be a positive number, got ${text}`);
  return value;
}

const phaseMs = positiveNumber('HA_BENCH_SECONDS', 10) * 1000;
const failoverRuns = Math.round(positiveNumber('HA_BENCH_FAILOVER_RUNS', 3));
if (failoverRuns > FAILOVER_RUNS_MAX) throw new Error(`HA_BENCH_FAILOVER_RUNS must be at most ${FAILOVER_RUNS_MAX}, got ${failoverRuns}`);
const heartbeatTimeoutMs = Math.round(positiveNumber('HA_BENCH_HEARTBEAT_TIMEOUT_MS', 2_000));
const phases = new Set((process.env['HA_BENCH_PHASES'] ?? PHASES.join(',')).split(',').filter((phase) => phase !== ''));
for (const phase of phases) if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`unknown phase in HA_BENCH_PHASES: ${phase} (phases: ${PHASES.join(', ')})`);

/**
 * Short failover settings: heartbeats every 300 ms, declared dead after heartbeatTimeoutMs, scanned for
 * every 500 ms. The broker's lease keeps 1 s of the timeout as a margin (replicas-manager.ts), so the
 * timeout must stay well above 1 s plus a heartbeat interval.
 */
const SHORT_TIMINGS = {
  namesrv: { scanNotActiveBrokerInterval: '500' },
  broker: { brokerHeartbeatInterval: '300', controllerHeartBeatTimeoutMills: String(heartbeatTimeoutMs), syncBrokerMetadataPeriod: '500', checkSyncStateSetPeriod: '300' },
} as const;

/** HA_BENCH_BROKER_OVERRIDES: `key=value` pairs, comma-separated, given to every broker (e.g. haTransferBatchSize=262144). */
function brokerOverrides(): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const pair of (process.env['HA_BENCH_BROKER_OVERRIDES'] ?? '').split(',').filter((text) => text.trim() !== '')) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new Error(`HA_BENCH_BROKER_OVERRIDES wants key=value pairs, got ${pair}`);
    overrides[pair.slice(0, equals).trim()] = pair.slice(equals + 1).trim();
  }
  return overrides;
}
const extraBrokerSettings = brokerOverrides();

const baseDir = fs.mkdtempSync(path.join(process.env['HA_BENCH_DIR'] ?? os.tmpdir(), 'ha-bench-'));
const warmUpMs = Math.min(1_000, phaseMs);
const table = new HaTable();

/** Kills every child still running and removes the stores (once; also at exit and on Ctrl-C). */
const cleanUpNow = cleanUpAtExit(() => {
  killAllNow();
  fs.rmSync(baseDir, { recursive: true, force: true });
});

const context = (phase: Phase, namesrvAddr: string): PhaseContext => ({ dir: path.join(baseDir, phase), namesrvAddr, brokerOverrides: extraBrokerSettings, phaseMs, warmUpMs, table });

/** Runs one phase; a failure is reported (stderr and a table row) and the next phase still runs. */
async function runPhase(phase: Phase, run: () => Promise<void>): Promise<boolean> {
  if (!phases.has(phase)) return true;
  const started = performance.now();
  try {
    await run();
    console.error(`phase ${phase} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return true;
  } catch (error) {
    console.error(`phase ${phase} failed:`, error);
    table.add({ measure: `phase ${phase}`, value: 'FAILED', unit: '', notes: (error instanceof Error ? error.message : String(error)).split('\n')[0]!.slice(0, 200) });
    await stopAllHaNodes();
    return false;
  }
}

const benchStarted = performance.now();
let ok = true;
try {
  if (phases.has('replication') || phases.has('sync')) {
    // A plain NameServer the replication brokers register with; replication itself goes master -> slave directly.
    const namesrv = await startHaNode('namesrv', 'namesrv', path.join(baseDir, 'namesrv'), {});
    const namesrvAddr = `127.0.0.1:${namesrv.namesrvPort}`;
    ok = (await runPhase('replication', () => replicationPhase(context('replication', namesrvAddr)))) && ok;
    ok = (await runPhase('sync', () => syncPhase(context('sync', namesrvAddr)))) && ok;
    await stopAllHaNodes();
  }
  ok = (await runPhase('failover', () => failoverPhase(context('failover', ''), { label: 'failover, short heartbeats', ...SHORT_TIMINGS, runs: failoverRuns }))) && ok;
  ok =
    (await runPhase('failover-defaults', () =>
      failoverPhase(context('failover-defaults', ''), {
        label: 'failover, default heartbeats',
        namesrv: { scanNotActiveBrokerInterval: String(DEFAULT_FAILOVER_TIMINGS.scanNotActiveBrokerInterval) },
        broker: {
          brokerHeartbeatInterval: String(DEFAULT_FAILOVER_TIMINGS.brokerHeartbeatInterval),
          controllerHeartBeatTimeoutMills: String(DEFAULT_FAILOVER_TIMINGS.controllerHeartBeatTimeoutMills),
          syncBrokerMetadataPeriod: String(DEFAULT_FAILOVER_TIMINGS.syncBrokerMetadataPeriod),
          checkSyncStateSetPeriod: String(DEFAULT_FAILOVER_TIMINGS.checkSyncStateSetPeriod),
        },
        runs: 1,
      }),
    )) && ok;
} finally {
  await stopAllHaNodes();
  cleanUpNow();
}

if (phases.has('failover') && !phases.has('failover-defaults')) {
  const d = DEFAULT_FAILOVER_TIMINGS;
  table.add({
    measure: 'failover with RocketMQ default heartbeats',
    value: '-',
    unit: 'ms',
    notes:
      `not measured (HA_BENCH_PHASES=failover-defaults does); controllerHeartBeatTimeoutMills=${d.controllerHeartBeatTimeoutMills}, ` +
      `scanNotActiveBrokerInterval=${d.scanNotActiveBrokerInterval}: a hung master is noticed after ${d.controllerHeartBeatTimeoutMills}..${d.controllerHeartBeatTimeoutMills + d.scanNotActiveBrokerInterval} ms`,
  });
}

console.log(
  `\nrocketmq-ts HA benchmark (node ${process.version}, ${os.cpus().length} cores, ${phaseMs / 1000} s per timed load, ` +
    `child-process brokers, ASYNC_FLUSH, loopback, stores in ${path.dirname(baseDir)}, ${((performance.now() - benchStarted) / 1000).toFixed(0)} s in all` +
    `${Object.keys(extraBrokerSettings).length === 0 ? '' : `, broker overrides ${JSON.stringify(extraBrokerSettings)}`})\n`,
);
console.log(table.render());
process.exitCode = ok ? 0 : 1;
