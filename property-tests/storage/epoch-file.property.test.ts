/**
 * The consistent point never lies past where two logs agree. Replicas live through random histories of
 * controller-mode failovers: each epoch has one master, which appends (epoch, its log end) and writes;
 * slaves cut their logs at the consistent point with the master (checked against the truth, computed from
 * the bytes), copy the
 * master's later epoch entries and some of its bytes, as replicas-manager.ts does. A byte is identified by the epoch whose master
 * wrote it and its offset, so two logs agree below p exactly when every byte below p has the same epoch.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EpochCache, findConsistentPoint } from '../../src/storage/epoch-file.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

/** A log as runs of bytes written by one epoch's master. */
type Run = { readonly epoch: number; readonly start: number; readonly end: number };

type Replica = { runs: Run[]; readonly cache: EpochCache };

function logEnd(replica: Replica): number {
  return replica.runs.at(-1)?.end ?? 0;
}

function epochAt(runs: readonly Run[], offset: number): number | undefined {
  return runs.find((run) => run.start <= offset && offset < run.end)?.epoch;
}

/** Where the two logs stop holding the same bytes. */
function agreedPrefix(a: readonly Run[], b: readonly Run[]): number {
  const end = Math.min(a.at(-1)?.end ?? 0, b.at(-1)?.end ?? 0);
  const cuts = [...new Set([0, ...a.flatMap((run) => [run.start, run.end]), ...b.flatMap((run) => [run.start, run.end])])].filter((cut) => cut < end).sort((x, y) => x - y);
  for (const cut of cuts) if (epochAt(a, cut) !== epochAt(b, cut)) return cut;
  return end;
}

function cutRuns(runs: readonly Run[], offset: number): Run[] {
  return runs.filter((run) => run.start < offset).map((run) => ({ ...run, end: Math.min(run.end, offset) }));
}

function append(replica: Replica, epoch: number, start: number, end: number): void {
  if (end <= start) return;
  const last = replica.runs.at(-1);
  if (last !== undefined && last.epoch === epoch && last.end === start) replica.runs[replica.runs.length - 1] = { ...last, end };
  else replica.runs.push({ epoch, start, end });
}

/**
 * A slave follows `master` as the replicas manager does: cut at the consistent point (nothing to compare
 * with an empty list; no point, no following), adopt later entries, copy `copied` bytes.
 */
function follow(slave: Replica, master: Replica, copied: number): void {
  const empty = slave.cache.entries.length === 0;
  const point = empty ? logEnd(slave) : findConsistentPoint({ entries: slave.cache.entries, maxOffset: logEnd(slave) }, { entries: master.cache.entries, maxOffset: logEnd(master) });
  if (point < 0) return;
  expect(point).toBeLessThanOrEqual(agreedPrefix(slave.runs, master.runs));
  slave.runs = cutRuns(slave.runs, point);
  slave.cache.truncateSuffix(point);
  for (const entry of master.cache.entries) {
    if (entry.epoch <= slave.cache.lastEpoch) continue;
    expect(slave.cache.append(entry.epoch, entry.startOffset).ok).toBe(true);
  }
  const until = Math.min(logEnd(master), point + copied);
  for (const run of master.runs) {
    const from = Math.max(run.start, point);
    const to = Math.min(run.end, until);
    append(slave, run.epoch, from, to);
  }
}

type Step = { readonly master: number; readonly written: number; readonly copies: readonly number[] };

const stepArb = (replicas: number): fc.Arbitrary<Step> =>
  fc.record({
    master: fc.nat({ max: replicas - 1 }),
    written: fc.nat({ max: 40 }),
    copies: fc.array(fc.oneof(fc.constant(-1), fc.nat({ max: 60 })), { minLength: replicas, maxLength: replicas }),
  });

describe('findConsistentPoint (property)', () => {
  it('is never past where two divergent logs agree', () => {
    const replicas = 3;
    fc.assert(
      fc.property(fc.array(stepArb(replicas), { minLength: 1, maxLength: 12 }), (steps) => {
        const nodes: Replica[] = Array.from({ length: replicas }, () => ({ runs: [], cache: new EpochCache() }));
        steps.forEach((step, index) => {
          const epoch = index + 1;
          const master = nodes[step.master]!;
          // changeToMaster: the cache is cut at the log end, then the new epoch starts there.
          master.cache.truncateSuffix(logEnd(master));
          expect(master.cache.append(epoch, logEnd(master)).ok).toBe(true);
          append(master, epoch, logEnd(master), logEnd(master) + step.written);
          nodes.forEach((node, i) => {
            const copied = step.copies[i]!;
            // -1: this replica was down (or partitioned) during the epoch and copied nothing.
            if (node !== master && copied >= 0) follow(node, master, copied);
          });
        });
        for (const a of nodes) {
          for (const b of nodes) {
            const point = findConsistentPoint({ entries: a.cache.entries, maxOffset: logEnd(a) }, { entries: b.cache.entries, maxOffset: logEnd(b) });
            const agreed = agreedPrefix(a.runs, b.runs);
            expect(point).toBeLessThanOrEqual(agreed);
            // Whoever wrote epoch 1 first was copied by everyone who followed it; one shared entry suffices.
            if (a.cache.entries.some((entry) => b.cache.entryOf(entry.epoch)?.startOffset === entry.startOffset)) expect(point).toBeGreaterThanOrEqual(0);
          }
        }
      }),
      replayableParameters('epoch consistent point', 300),
    );
  });
});
