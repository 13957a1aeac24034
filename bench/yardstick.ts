/**
 * `npm run bench:yardstick`: the yardstick that issue 4 names for bench:remoting's single-send target,
 * measured on this machine: Redis Streams driven by a Node client, XADD of a 1 KiB field, appendfsync
 * everysec, 64 requests in flight. The load has bench:remoting's shapes, through the same lane loops
 * (remoting-load.ts): 64 closed-loop senders over 8 connections (ioredis, one request per lane at a time,
 * no auto-pipelining), then 64 rate-limited senders at half of the peak just measured. The table shows
 * XADD/s with the mean and p99 round trip, and the CPU of redis-server and of this process.
 *
 * It needs `redis-server` on PATH (Debian: `apt-get install redis-server`); without it the bench says so
 * and exits 2. redis-server runs as a child on a free loopback port with its files in a temp directory,
 * and is killed by PID and the directory removed at the end, on failure and on Ctrl-C alike.
 * YARDSTICK_SECONDS sets each timed phase's length (default 5, as bench:remoting's).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { closedLoopOf, type LaneSend, noteError, type PhaseResult, rateLimitedOf } from './remoting-load.ts';
import { cleanUpAtExit, killNodeNow, processCpuSeconds } from './remoting-node.ts';

const phaseMs = Number(process.env['YARDSTICK_SECONDS'] ?? 5) * 1000;
if (!(phaseMs > 0)) throw new Error(`YARDSTICK_SECONDS must be a positive number, got ${process.env['YARDSTICK_SECONDS']}`);
const warmUpMs = Math.min(1_000, phaseMs);
const CONNECTIONS = 8;
const SENDERS = 64;
const BODY = Buffer.alloc(1024, 'r');
/** How long redis-server may take to answer PING after it was started. */
const START_TIMEOUT_MS = 10_000;

const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
if (found.error !== undefined || found.status !== 0) {
  console.error('bench:yardstick needs redis-server on PATH (Debian: apt-get install redis-server); not found, nothing measured.');
  process.exit(2);
}
const redisVersion = /v=(\S+)/.exec(found.stdout)?.[1] ?? found.stdout.trim();

/** A loopback port free a moment ago (redis-server binds it next; a race with another binder is possible). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'yardstick-'));
let redis: ChildProcess | undefined;
/** Kills redis-server and removes its directory (once; also at exit and on Ctrl-C). */
const cleanUpNow = cleanUpAtExit(() => {
  if (redis !== undefined) killNodeNow(redis);
  fs.rmSync(dir, { recursive: true, force: true });
});

const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
type Row = { benchmark: string; result: string };
const rows: Row[] = [];

/** One XADD per call of the lane's connection; a failed one counts as unanswered. */
function xadd(clients: readonly Redis[]): LaneSend {
  return async (lane, result) => {
    const client = clients[lane % clients.length]!;
    const started = performance.now();
    try {
      await client.xadd('bench', 'MAXLEN', '~', '1000000', '*', 'body', BODY);
    } catch (error) {
      noteError(result, error);
      return client.status === 'ready';
    }
    result.histogram.record(performance.now() - started);
    result.messages += 1;
    result.requests += 1;
    return true;
  };
}

/** Runs a phase and returns it with redis-server's CPU over the same time, as a share of one core. */
async function measured(pid: number, run: () => Promise<PhaseResult>): Promise<PhaseResult & { serverCpu: string; clientCpu: string }> {
  const before = processCpuSeconds(pid);
  const result = await run();
  const after = processCpuSeconds(pid);
  const share = (cpuS: number): string => `${fmt((cpuS / (result.ms / 1000)) * 100)}%`;
  return { ...result, serverCpu: before === undefined || after === undefined ? '?' : share(after - before), clientCpu: share(result.clientCpuS) };
}

function resultText(result: PhaseResult & { serverCpu: string; clientCpu: string }, withP50: boolean): string {
  const rate = result.messages / (result.ms / 1000);
  const p50 = withP50 ? `p50 ${fmt(result.histogram.quantileMs(0.5), 2)} ms, ` : '';
  const errors = result.errors > 0 ? `; ${fmt(result.errors)} failed (${result.firstError ?? ''})` : '';
  return (
    `${fmt(rate)} XADD/s; ${p50}avg ${fmt(result.histogram.meanMs, 2)} ms, p99 ${fmt(result.histogram.quantileMs(0.99), 2)} ms; ` +
    `cpu redis-server ${result.serverCpu}, bench ${result.clientCpu}${errors}`
  );
}

try {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no'];
  redis = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const pid = redis.pid!;
  const clients = Array.from({ length: CONNECTIONS }, () => new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 }));
  const deadline = performance.now() + START_TIMEOUT_MS;
  // redis-server takes a moment to listen: connect until it answers or the start timeout has passed.
  for (const client of clients) {
    for (;;) {
      try {
        await client.connect();
        await client.ping();
        break;
      } catch (error) {
        if (performance.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within ${START_TIMEOUT_MS} ms: ${String(error)}`);
        client.disconnect();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  const send = xadd(clients);
  await closedLoopOf(SENDERS, warmUpMs, send);
  const peak = await measured(pid, () => closedLoopOf(SENDERS, phaseMs, send));
  const peakPerS = peak.messages / (peak.ms / 1000);
  rows.push({ benchmark: `XADD, 1 KiB field, ${SENDERS} senders / ${CONNECTIONS} connections (ioredis, appendfsync everysec)`, result: resultText(peak, false) });
  const halfPerS = Math.max(1, Math.round(peakPerS / 2));
  const half = await measured(pid, () => rateLimitedOf(SENDERS, phaseMs, halfPerS, send));
  rows.push({ benchmark: `XADD at 50% of peak: ${fmt(halfPerS)} XADD/s offered, ${SENDERS} rate-limited senders`, result: resultText(half, true) });
  for (const client of clients) client.disconnect();
} finally {
  cleanUpNow();
}

const keys = ['benchmark', 'result'] as const;
const widths = keys.map((key) => Math.max(key.length, ...rows.map((row) => row[key].length)));
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(
  `\nyardstick: Redis Streams ${redisVersion} with ioredis (node ${process.version}, ${os.cpus().length} cores, ${phaseMs / 1000} s per phase, loopback)\n`,
);
console.log(line([...keys]));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const row of rows) console.log(line([row.benchmark, row.result]));
