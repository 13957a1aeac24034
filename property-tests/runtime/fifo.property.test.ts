/**
 * Per-sender FIFO: whatever the placement of sender and receiver (same thread, another worker, the main
 * thread) and however the senders interleave, every message a sender got admitted arrives exactly once
 * and in the order it was sent, even while the receiver's small mailbox pushes back and senders retry.
 * Messages of different senders may interleave in any way; only each sender's own order is promised.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { fixture, type RecorderMessage, type SenderMessage } from '../../test/runtime/fixtures/behaviors.ts';
import { pollUntil, startTestSystem } from '../../test/runtime/helpers.ts';
import { replayableParameters } from './fc-parameters.ts';

const pools = ['main', 'a', 'b'] as const;
/** Sender ids used by the test's own tells from the main thread; sender actors use 0..3. */
const directSenderIds = [100, 101, 102] as const;
/** Bound on each wait inside one run; a healthy run takes tens of milliseconds. */
const runDeadlineMs = 10_000;
/** fast-check stops (and reports, counting it as a failure) before vitest's timeout would hide its report. */
const propertyTimeLimitMs = 90_000;

type Scenario = {
  readonly recorderPool: (typeof pools)[number];
  readonly recorderCapacity: number;
  readonly senders: readonly { readonly pool: (typeof pools)[number]; readonly count: number }[];
  /** Tells from the main thread, in this order; `pause` yields to the event loop after the tell. */
  readonly direct: readonly { readonly id: number; readonly pause: boolean }[];
};

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  recorderPool: fc.constantFrom(...pools),
  recorderCapacity: fc.integer({ min: 8, max: 64 }),
  senders: fc.array(fc.record({ pool: fc.constantFrom(...pools), count: fc.integer({ min: 1, max: 2_000 }) }), { minLength: 1, maxLength: 4 }),
  direct: fc.array(fc.record({ id: fc.constantFrom(...directSenderIds), pause: fc.nat(7).map((n) => n === 0) }), { maxLength: 400 }),
});

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Where `seqs` deviates from 0..count-1, in words; undefined when it does not. */
function deviation(seqs: readonly number[], count: number): string | undefined {
  for (let i = 0; i < Math.min(seqs.length, count); i++) if (seqs[i] !== i) return `at ${i}: got ${seqs[i]}, expected ${i}`;
  if (seqs.length !== count) return `got ${seqs.length} messages, expected ${count}`;
  return undefined;
}

describe('cross-thread delivery', () => {
  let system: ActorSystem;
  let runs = 0;

  beforeAll(async () => {
    system = await startTestSystem({ a: 2, b: 1 }, { slotsMax: 8_192 });
  });
  afterAll(async () => {
    await system?.shutdown();
  });

  /** The main thread as extra senders: tells in the planned order, retrying each refused one. */
  async function tellDirectly(target: ActorRef<RecorderMessage>, plan: Scenario['direct']): Promise<Map<number, number>> {
    const sent = new Map<number, number>();
    const deadline = Date.now() + runDeadlineMs;
    for (const { id, pause } of plan) {
      const seq = sent.get(id) ?? 0;
      while (!system.tell(target, { type: 'rec', from: id, seq })) {
        if (Date.now() > deadline) throw new Error(`direct sender ${id} still refused at seq ${seq}`);
        await yieldToEventLoop();
      }
      sent.set(id, seq + 1);
      if (pause) await yieldToEventLoop();
    }
    return sent;
  }

  async function runScenario(scenario: Scenario): Promise<void> {
    const run = ++runs;
    const spawned: ActorRef[] = [];
    try {
      const recorder = await system.spawn<RecorderMessage>({
        name: `recorder-${run}`,
        behavior: fixture('recorder'),
        args: null,
        pool: scenario.recorderPool,
        mailboxCapacity: scenario.recorderCapacity,
      });
      spawned.push(recorder);
      const senders: ActorRef<SenderMessage>[] = [];
      for (const [id, { pool }] of scenario.senders.entries()) {
        const ref = await system.spawn<SenderMessage>({ name: `sender-${run}-${id}`, behavior: fixture('sender'), args: null, pool });
        spawned.push(ref);
        senders.push(ref);
      }
      const goes = senders.map((ref, id) =>
        system.ask<SenderMessage, number>(ref, { type: 'go', target: recorder, id, count: scenario.senders[id]!.count }, runDeadlineMs),
      );
      const direct = tellDirectly(recorder, scenario.direct);
      expect(await Promise.all(goes)).toEqual(scenario.senders.map((sender) => sender.count));
      const expected = new Map<number, number>(scenario.senders.map((sender, id) => [id, sender.count]));
      for (const [id, count] of await direct) expected.set(id, count);
      const total = [...expected.values()].reduce((sum, count) => sum + count, 0);

      // Every message is admitted; occupancy counts those still in flight or queued. Once it is zero, all
      // of them have been handled (or dropped, which the check below catches), and one dump sees them all.
      await pollUntil('the recorder to drain', () => (system.mailboxDepth(recorder) === 0 ? true : undefined), runDeadlineMs, 1);
      const log = await system.ask<RecorderMessage, [number, number][]>(recorder, { type: 'dump' });
      const bySender = new Map<number, number[]>();
      for (const [from, seq] of log) {
        const seqs = bySender.get(from) ?? [];
        seqs.push(seq);
        bySender.set(from, seqs);
      }
      const deviations: string[] = [];
      for (const from of bySender.keys()) if (!expected.has(from)) deviations.push(`unknown sender ${from}`);
      for (const [from, count] of expected) {
        const problem = deviation(bySender.get(from) ?? [], count);
        if (problem !== undefined) deviations.push(`sender ${from}: ${problem}`);
      }
      expect(deviations).toEqual([]);
      expect(log).toHaveLength(total);
    } finally {
      for (const ref of spawned) await system.stop(ref);
    }
  }

  it('keeps per-sender FIFO under random placement, interleaving and backpressure', async () => {
    await fc.assert(fc.asyncProperty(scenarioArbitrary, runScenario), {
      ...replayableParameters<[Scenario]>('per-sender FIFO', 30),
      interruptAfterTimeLimit: propertyTimeLimitMs,
      markInterruptAsFailure: true,
    });
  }, 120_000);
});
