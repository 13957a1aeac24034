/**
 * The CLI as a user runs it: a real child process, real ports (ephemeral), real signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { credentials, Client, Metadata, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand, FrameDecoder } from '../../src/net/remoting/codec.ts';
import { createRequest, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { rocketmqProtoRoot } from '../../src/net/grpc/proto-root.ts';

const bin = path.resolve(import.meta.dirname, '../../bin/rocketmq-ts.ts');
const children: ChildProcess[] = [];
const tempDirs: string[] = [];

type LogLine = Record<string, unknown> & { msg?: string };

/** Starts the CLI and collects its JSON log lines. */
function runCli(args: string[]): { child: ChildProcess; lines: LogLine[]; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: LogLine[] = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    let newline;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, stderr: () => stderr, exited };
}

async function waitForLine(lines: LogLine[], msg: string, timeoutMs = 20_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = lines.find((line) => line.msg === msg);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no "${msg}" log line within ${timeoutMs} ms; got ${JSON.stringify(lines)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function tempStore(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-cli-'));
  tempDirs.push(dir);
  return dir;
}

/** Sends one Remoting request and returns the response. */
async function remotingCall(port: number, request: RemotingCommand): Promise<RemotingCommand> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const decoder = new FrameDecoder();
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      const [response] = decoder.push(chunk);
      if (response !== undefined) {
        socket.destroy();
        resolve(response);
      }
    });
    socket.write(encodeCommand(request));
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('rocketmq-ts CLI', () => {
  it('documents every command in --help', async () => {
    const run = runCli(['--help']);
    expect(await run.exited).toBe(0);
    const help = run.lines.map((line) => line.msg).join('\n');
    for (const command of ['start', 'namesrv', 'broker', 'proxy', 'controller', 'config-table']) expect(help).toContain(command);
  });

  it('start listens on its ports, makes the configured pools real threads and exits 0 on SIGTERM', async () => {
    const run = runCli([
      'start',
      '--namesrvAddr=127.0.0.1:0',
      '--listenPort=0',
      '--grpcServerPort=0',
      `--storePathRootDir=${tempStore()}`,
      '--serverWorkerThreads=2',
      '--sendMessageThreadPoolNums=3',
      '--pullMessageThreadPoolNums=1',
      '--cpuTaskThreadPoolNums=1',
      '--processorsOnNetworkThreads=false',
    ]);
    const started = await waitForLine(run.lines, 'node started');
    const ports = started.ports as { namesrv: number; broker: number; grpc: number };
    const poolsLine = run.lines.find((line) => line.msg === 'thread pools started')!;
    const pools = poolsLine.pools as { pool: string; size: number; threadIds: number[] }[];
    const send = pools.find((pool) => pool.pool === 'send')!;
    expect(send.size).toBe(3);
    expect(new Set(send.threadIds).size).toBe(3);
    expect(send.threadIds.every((id) => id > 0)).toBe(true);
    expect(pools.find((pool) => pool.pool === 'remoting')!.size).toBe(2);

    // The NameServer knows no TopicTest; the broker does not serve the NameServer's route code.
    const expected = [
      [ports.namesrv, ResponseCode.TOPIC_NOT_EXIST],
      [ports.broker, ResponseCode.REQUEST_CODE_NOT_SUPPORTED],
    ] as const;
    for (const [port, code] of expected) {
      expect(port).toBeGreaterThan(0);
      const response = await remotingCall(port, createRequest({ code: 105, opaque: 77, extFields: { topic: 'TopicTest' } }));
      expect(response.opaque).toBe(77);
      expect(response.code).toBe(code);
    }

    // The Proxy serves MessagingService: an empty QueryRoute is answered with RocketMQ's ILLEGAL_TOPIC.
    const client = new Client(`127.0.0.1:${ports.grpc}`, credentials.createInsecure());
    const answer = await new Promise<{ grpcCode: number; body: Buffer | undefined }>((resolve) => {
      client.makeUnaryRequest(
        '/apache.rocketmq.v2.MessagingService/QueryRoute',
        (value: Buffer) => value,
        (value: Buffer) => value,
        Buffer.alloc(0),
        new Metadata(),
        (error, value) => resolve({ grpcCode: error?.code ?? status.OK, body: value }),
      );
    });
    client.close();
    expect(answer.grpcCode).toBe(status.OK);
    const responseType = rocketmqProtoRoot().lookupType('apache.rocketmq.v2.QueryRouteResponse');
    const decoded = responseType.toObject(responseType.decode(answer.body!)) as { status: { code: number } };
    expect(decoded.status.code).toBe(40002);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.lines.some((line) => line.msg === 'node stopped')).toBe(true);
    expect(await canConnect(ports.namesrv)).toBe(false);
    expect(await canConnect(ports.broker)).toBe(false);
  });

  it('runs the send, pull and gRPC processors on the remoting threads with processorsOnNetworkThreads', async () => {
    const run = runCli([
      'start',
      '--namesrvAddr=127.0.0.1:0',
      '--listenPort=0',
      '--grpcServerPort=0',
      `--storePathRootDir=${tempStore()}`,
      '--serverWorkerThreads=2',
      '--processorsOnNetworkThreads=true',
    ]);
    await waitForLine(run.lines, 'node started');
    const line = run.lines.find((entry) => entry.msg === 'thread pools started')!;
    const pools = line.pools as { pool: string; size: number }[];
    expect(pools.map((pool) => pool.pool)).not.toContain('send');
    expect(pools.map((pool) => pool.pool)).not.toContain('pull');
    expect(pools.map((pool) => pool.pool)).not.toContain('grpc');
    expect(line.sharedPools).toEqual({ send: 'remoting', pull: 'remoting', grpc: 'remoting' });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('refuses bad config with the key named and a non-zero exit, before any port opens', async () => {
    const run = runCli(['start', '--namesrvAddr=127.0.0.1:0', '--listenPort=0', '--grpcServerPort=0', '--sendMessageThreadPoolNums=zero']);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain('sendMessageThreadPoolNums');
    expect(run.lines.some((line) => line.msg === 'thread pools started' || line.msg === 'node started')).toBe(false);
  });

  it('reads a broker.conf with -c, lets flags override it and warns about unknown keys', async () => {
    const store = tempStore();
    const file = path.join(store, 'broker.conf');
    fs.writeFileSync(file, ['# broker.conf', 'brokerClusterName = TestCluster', 'sendMessageThreadPoolNums=1', 'someFutureKey=1', ''].join('\n'));
    const run = runCli(['broker', '-c', file, '--listenPort=0', `--storePathRootDir=${store}`, '--sendMessageThreadPoolNums=2', '--pullMessageThreadPoolNums=1', '--processorsOnNetworkThreads=false']);
    await waitForLine(run.lines, 'node started');
    const pools = run.lines.find((line) => line.msg === 'thread pools started')!.pools as { pool: string; size: number }[];
    expect(pools.find((pool) => pool.pool === 'send')!.size).toBe(2);
    expect(run.lines.some((line) => line.level === 40 && String(line.msg).includes('someFutureKey'))).toBe(true);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  });
});
