/**
 * Property: the ha-client's merging of decoded frames (takeMergedFrames) loses, reorders and duplicates
 * nothing. Whatever the frame sizes (heartbeats excluded: they never reach the queue) and the bound,
 * taking runs until the queue is empty yields contiguous runs whose bytes are the frames' bytes in
 * order; each run fits the bound or is one frame alone, and a run stops only where the next frame would
 * not fit.
 *
 * fast-check prints the seed and the shrunk case on failure. Runs: HA_PROP_RUNS (default 200).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { takeMergedFrames } from '../../src/actors/ha-client.ts';
import type { HaTransferFrame } from '../../src/storage/ha-protocol.ts';

const NUM_RUNS = Number(process.env['HA_PROP_RUNS'] ?? 200);

describe('takeMergedFrames', () => {
  it('yields the frames\' bytes in order, in contiguous runs within the bound', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 1 << 30 }),
        fc.array(fc.integer({ min: 1, max: 3_000 }), { minLength: 0, maxLength: 40 }),
        fc.integer({ min: 1, max: 10_000 }),
        (start, sizes, bytesMax) => {
          const frames: HaTransferFrame[] = [];
          let offset = start;
          for (const size of sizes) {
            frames.push({ physicalOffset: offset, body: Uint8Array.from({ length: size }, (_, i) => (offset + i) % 256) });
            offset += size;
          }
          const expected = Buffer.concat(frames.map((f) => f.body));
          const queue = [...frames];
          const runs: { physicalOffset: number; bytes: Uint8Array; frames: number }[] = [];
          // Each take removes at least one frame.
          for (let run = takeMergedFrames(queue, bytesMax); run !== null; run = takeMergedFrames(queue, bytesMax)) runs.push(run);
          expect(queue).toEqual([]);
          expect(runs.reduce((sum, run) => sum + run.frames, 0)).toBe(frames.length);
          let next = start;
          let taken = 0;
          for (const run of runs) {
            expect(run.physicalOffset).toBe(next);
            expect(run.bytes.length <= bytesMax || run.frames === 1).toBe(true);
            taken += run.frames;
            // The run stopped because the next frame would not fit (or there was none).
            if (taken < frames.length) expect(run.bytes.length + frames[taken]!.body.length).toBeGreaterThan(bytesMax);
            next += run.bytes.length;
          }
          expect(Buffer.concat(runs.map((run) => run.bytes)).equals(expected)).toBe(true);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
