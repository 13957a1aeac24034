/**
 * The ha-client's append path: consecutive frames that arrive while an append is in flight are merged
 * into one `haAppendRaw` (bounded by appendBytesMax, a frame larger than it going alone), in log order,
 * and the slave's reports to the master only move forward, to the end of the last append. A fake master (a plain TCP server
 * speaking ha-protocol.ts) drives a real ha-client whose writer is a double that can hold appends.
 */
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnHaClient, takeMergedFrames, type HaClientMessage, type HaClientState } from '../../src/actors/ha-client.ts';
import type { CommitLogWriterMessage } from '../../src/actors/commit-log-writer.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { type HaTransferFrame, ReportOffsetDecoder, encodeTransferFrame } from '../../src/storage/ha-protocol.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { type AppendAsk, type SlaveLogDoubleMessage, slaveLogDoubleSource } from './fixtures/ha-doubles.ts';

const ASK_MS = 5_000;

function frame(physicalOffset: number, size: number): HaTransferFrame {
  return { physicalOffset, body: Uint8Array.from({ length: size }, (_, i) => (physicalOffset + i) % 251) };
}

function framesFrom(offset: number, sizes: readonly number[]): HaTransferFrame[] {
  const frames: HaTransferFrame[] = [];
  for (const size of sizes) {
    frames.push(frame(offset, size));
    offset += size;
  }
  return frames;
}

describe('takeMergedFrames', () => {
  it('merges the first frames that fit the bound into one run, in order, and leaves the rest', () => {
    const frames = framesFrom(500, [100, 200, 300, 400]);
    const expected = Buffer.concat(frames.slice(0, 3).map((f) => f.body));
    const merged = takeMergedFrames(frames, 600);
    expect(merged).toMatchObject({ physicalOffset: 500, frames: 3 });
    expect(Buffer.from(merged!.bytes).equals(expected)).toBe(true);
    expect(frames.map((f) => f.physicalOffset)).toEqual([1100]);
    expect(takeMergedFrames(frames, 600)).toMatchObject({ physicalOffset: 1100, frames: 1 });
    expect(frames).toEqual([]);
    expect(takeMergedFrames(frames, 600)).toBeNull();
  });

  it('sends a frame larger than the bound alone, uncopied', () => {
    const frames = framesFrom(0, [5000, 10]);
    const big = frames[0]!.body;
    const merged = takeMergedFrames(frames, 1000);
    expect(merged).toMatchObject({ physicalOffset: 0, frames: 1 });
    expect(merged!.bytes).toBe(big);
    expect(frames).toHaveLength(1);
  });

  it('refuses frames that do not continue each other', () => {
    const frames = [frame(0, 10), frame(11, 10)];
    expect(() => takeMergedFrames(frames, 100)).toThrow(/does not continue/);
  });
});

describe('ha-client append merging', () => {
  let system: ActorSystem | undefined;
  let server: net.Server | undefined;
  let sockets: net.Socket[] = [];

  beforeEach(async () => {
    system = await startTestSystem({}, {}, { askTimeoutMs: ASK_MS });
  });

  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
    for (const socket of sockets) socket.destroy();
    sockets = [];
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    server = undefined;
  });

  /** A fake master: accepts one slave and records its offset reports. */
  async function fakeMaster(): Promise<{ port: number; reports: number[]; slave: () => net.Socket | undefined }> {
    const reports: number[] = [];
    let accepted: net.Socket | undefined;
    server = net.createServer((socket) => {
      accepted = socket;
      sockets.push(socket);
      const decoder = new ReportOffsetDecoder();
      socket.on('data', (chunk: Buffer) => {
        const offset = decoder.push(chunk);
        if (offset !== null) reports.push(offset);
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as net.AddressInfo).port, reports, slave: () => accepted };
  }

  const dump = (writer: ActorRef<SlaveLogDoubleMessage>): Promise<AppendAsk[]> => system!.ask<SlaveLogDoubleMessage, AppendAsk[]>(writer, { type: 'dump' }, ASK_MS);

  it('merges the frames that arrive during an append into bounded appends, and reports where each ends', async () => {
    const master = await fakeMaster();
    const writer = await system!.spawn<SlaveLogDoubleMessage, null>({ name: 'slave-log', behavior: slaveLogDoubleSource, args: null, pool: 'main' });
    await system!.ask(writer, { type: 'hold' }, ASK_MS);
    const client = await spawnHaClient(
      system!,
      {
        writer: writer as unknown as ActorRef<CommitLogWriterMessage>,
        haMasterAddress: `127.0.0.1:${master.port}`,
        haSendHeartbeatIntervalMs: 60_000,
        haHousekeepingIntervalMs: 60_000,
        appendBytesMax: 4_000,
      },
      { name: 'ha-client', pool: 'main' },
    );
    await pollUntil('the slave reports its end', () => (master.reports.includes(0) ? true : undefined));
    const frames = framesFrom(0, Array.from({ length: 10 }, () => 1_000));
    const slave = master.slave()!;
    // The first frame alone; the writer holds its append while the other nine arrive.
    slave.write(encodeTransferFrame(frames[0]!.physicalOffset, frames[0]!.body));
    await pollUntil('the first append', async () => ((await dump(writer)).length === 1 ? true : undefined));
    for (const next of frames.slice(1)) slave.write(encodeTransferFrame(next.physicalOffset, next.body));
    const waiting = await pollUntil('nine frames waiting', async () => {
      const state = await system!.ask<HaClientMessage, HaClientState>(client, { type: 'state' }, ASK_MS);
      return state.pendingBytes === 9_000 ? state : undefined;
    });
    expect(waiting.appends).toBe(0);
    await system!.ask(writer, { type: 'release' }, ASK_MS);

    await pollUntil('the slave reports 10000', () => (master.reports.includes(10_000) ? true : undefined));
    const appends = await dump(writer);
    expect(appends.map((append) => [append.fromOffset, append.bytes.length])).toEqual([
      [0, 1_000],
      [1_000, 4_000],
      [5_000, 4_000],
      [9_000, 1_000],
    ]);
    expect(Buffer.concat(appends.map((append) => append.bytes)).equals(Buffer.concat(frames.map((f) => f.body)))).toBe(true);
    // Reports only move forward (the decoder keeps the newest of a chunk, so some may be coalesced).
    expect(master.reports).toEqual([...master.reports].sort((a, b) => a - b));
    expect(master.reports.at(-1)).toBe(10_000);
    const state = await system!.ask<HaClientMessage, HaClientState>(client, { type: 'state' }, ASK_MS);
    expect(state).toMatchObject({ framesAppended: 10, appends: 4, pendingBytes: 0, reportedOffset: 10_000 });
  });
});
