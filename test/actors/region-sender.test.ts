/**
 * RegionSender's choice between the append region and the ordinary way, and when it asks the writer for
 * the region's grant, against a stand-in context (the region itself is tested in
 * test/storage/append-region.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { ActorContext, ActorRef } from '../../src/runtime/actor.ts';
import type { CommitLogWriterMessage } from '../../src/actors/commit-log-writer.ts';
import { GRANT_RETRY_MS, RegionSender } from '../../src/actors/region-sender.ts';
import { AppendRegionControl, type RegionGrant } from '../../src/storage/append-region.ts';
import { encodeBatch, isPutRefusal, type EncodedBatch } from '../../src/storage/message-store.ts';
import { ManualClock } from '../../src/runtime/clock.ts';

const HOST = { address: '127.0.0.1', port: 10911 };
const writer = { slot: 1, name: 'writer' } as ActorRef<CommitLogWriterMessage>;

function batch(): EncodedBatch {
  const encoded = encodeBatch([{ topic: 'T', queueId: 0, body: Buffer.from('x'.repeat(100)) }], HOST, 4096, 1);
  if (isPutRefusal(encoded)) throw new Error(encoded.remark);
  return encoded;
}

/** A context whose asks are recorded and answered by `answer`. */
function stand(answer: (message: CommitLogWriterMessage) => unknown) {
  const clock = new ManualClock();
  const asked: CommitLogWriterMessage[] = [];
  const ctx = {
    clock,
    ask: (_target: unknown, message: CommitLogWriterMessage) => {
      asked.push(message);
      return Promise.resolve(answer(message));
    },
  } as unknown as ActorContext<unknown>;
  return { ctx, clock, asked };
}

function grantOf(control: AppendRegionControl, epoch: number): RegionGrant {
  const generation = control.open(0, true);
  return { control: control.control, epoch, generation, cache: new SharedArrayBuffer(64 * 1024), cacheOffset: 0, fileStartOffset: 0, limit: 64 * 1024 - 8 };
}

describe('RegionSender', () => {
  it('sends the ordinary way and asks for the grant until it has one, then reserves; asks again for a closed region at most every GRANT_RETRY_MS', async () => {
    const first = new AppendRegionControl();
    let grant: RegionGrant | null = grantOf(first, 11);
    const { ctx, clock, asked } = stand((message) => (message.type === 'regionGrant' ? grant : { status: 'PUT_OK', msgNum: 1 }));
    const sender = new RegionSender();
    await sender.send(ctx, writer, batch(), 1_000);
    expect(asked.map((message) => message.type)).toEqual(['regionGrant', 'putEncodedBatch']);
    await Promise.resolve();
    await sender.send(ctx, writer, batch(), 1_000);
    expect(asked.at(-1)).toMatchObject({ type: 'putInPlace', epoch: 11, batch: { physicalOffset: 0 } });
    // The writer restarts: its predecessor's region is closed for good, the new one has another epoch.
    first.close();
    grant = grantOf(new AppendRegionControl(), 12);
    asked.length = 0;
    clock.advance(GRANT_RETRY_MS);
    await sender.send(ctx, writer, batch(), 1_000);
    expect(asked.map((message) => message.type)).toEqual(['regionGrant', 'putEncodedBatch']);
    await Promise.resolve();
    await sender.send(ctx, writer, batch(), 1_000);
    expect(asked.at(-1)).toMatchObject({ type: 'putInPlace', epoch: 12 });
    // A region closed for a moment (the writer appending itself) costs at most one grant ask per GRANT_RETRY_MS.
    asked.length = 0;
    const control = new BigInt64Array(grant!.control);
    Atomics.store(control, 0, Atomics.load(control, 0) | 0x8000_0000n);
    for (let i = 0; i < 5; i++) await sender.send(ctx, writer, batch(), 1_000);
    expect(asked.filter((message) => message.type === 'regionGrant')).toHaveLength(0);
    expect(sender.ordinary.closed).toBe(6);
  });
});
