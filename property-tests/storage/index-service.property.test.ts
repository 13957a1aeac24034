// IndexService against a model: the list of (indexed key, CommitLog offset, store time) in put order.
// Keys come from a small alphabet ("Aa" and "BB" share a Java hash) and files have three slots, so
// chains mix keys and full-hash collisions happen; the model answers by hash as the index does.
// fast-check prints the seed and the shrunk command list on failure; replay with
// `fc.assert(property, { seed, path })`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { indexKeyHash } from '../../src/storage/index-file.ts';
import { IndexService, buildIndexKey, type IndexRecord } from '../../src/storage/index-service.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

const T0 = 1_700_000_000_000;
const TOPICS = ['TopicA', 'TopicB'];
const KEYS = ['a', 'b', 'Aa', 'BB', 'key-1'];
const HASH_SLOT_NUM = 3;
const INDEX_NUM = 7; // six keys per file
const QUERY_RESULTS_MAX = 8;

type Put = { indexKey: string; physicalOffset: number; storeTimestampMs: number };

type Command =
  | { type: 'build'; topic: string; keys: string[]; uniqueKey: string | undefined; gapBytes: number; gapSeconds: number }
  | { type: 'flush' }
  | { type: 'crash' }
  | { type: 'reopen' }
  | { type: 'truncate'; fraction: number };

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('build' as const),
      topic: fc.constantFrom(...TOPICS),
      keys: fc.array(fc.constantFrom(...KEYS, ''), { maxLength: 3 }),
      uniqueKey: fc.option(fc.constantFrom('U1', 'U2', 'U3'), { nil: undefined }),
      gapBytes: fc.integer({ min: 1, max: 500 }),
      gapSeconds: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'crash' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('truncate' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
);

const queryArbitrary = fc.record({
  topic: fc.constantFrom(...TOPICS),
  key: fc.constantFrom(...KEYS, 'U1', 'U2', 'absent'),
  maxNum: fc.integer({ min: 1, max: 12 }),
  beginSeconds: fc.integer({ min: -2, max: 60 }),
  spanSeconds: fc.integer({ min: 0, max: 80 }),
});

/** The model's answer: newest first, same hash, store time in range, at most min(maxNum, cap). */
function expected(puts: readonly Put[], indexKey: string, maxNum: number, beginMs: number, endMs: number): number[] {
  const hash = indexKeyHash(indexKey);
  const answer: number[] = [];
  for (let i = puts.length - 1; i >= 0 && answer.length < Math.min(maxNum, QUERY_RESULTS_MAX); i--) {
    const put = puts[i]!;
    if (indexKeyHash(put.indexKey) === hash && put.storeTimestampMs >= beginMs && put.storeTimestampMs <= endMs) answer.push(put.physicalOffset);
  }
  return answer;
}

describe('IndexService against a list model', () => {
  it('answers every query exactly as the model, across rolls, crashes, reopens and truncations', () => {
    const property = fc.property(
      fc.array(commandArbitrary, { minLength: 1, maxLength: 40, size: 'max' }),
      fc.array(queryArbitrary, { minLength: 1, maxLength: 4 }),
      (commands, queries) => {
        const rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'index-property-'));
        let nowMs = T0;
        const open = (): IndexService => IndexService.open({
          storageFs: nodeStorageFs,
          rootDir,
          nowMs: () => nowMs++,
          hashSlotNum: HASH_SLOT_NUM,
          indexNum: INDEX_NUM,
          queryResultsMax: QUERY_RESULTS_MAX,
        });
        try {
          // The "CommitLog": every record ever built, in order; truncation cuts its tail.
          const records: IndexRecord[] = [];
          let nextOffset = 0;
          let nextTimestampMs = T0;
          let service = open();
          // After a restart the dispatcher replays from indexedUpTo on; it may resend a little more, and
          // buildIndex must skip what is already indexed, so the replay here resends everything.
          const replay = (indexedUpTo: number): void => {
            for (const record of records) {
              const put = service.buildIndex(record);
              if (record.physicalOffset <= indexedUpTo) expect(put).toBe(0);
            }
          };
          for (const command of commands) {
            switch (command.type) {
              case 'build': {
                nextOffset += command.gapBytes;
                // Whole seconds, so the index's second-granular times equal the model's exactly.
                nextTimestampMs += command.gapSeconds * 1000;
                const record = { topic: command.topic, keys: command.keys, uniqueKey: command.uniqueKey, physicalOffset: nextOffset, storeTimestampMs: nextTimestampMs };
                records.push(record);
                service.buildIndex(record);
                break;
              }
              case 'flush':
                service.flush();
                break;
              case 'reopen':
                service.close();
                service = open();
                replay(service.recover({ cleanShutdown: true, maxPhysicalOffset: nextOffset + 1 }));
                break;
              case 'crash':
                service = open();
                replay(service.recover({ cleanShutdown: false, maxPhysicalOffset: nextOffset + 1 }));
                break;
              case 'truncate': {
                const end = Math.floor(command.fraction * (nextOffset + 1));
                while (records.length > 0 && records.at(-1)!.physicalOffset >= end) records.pop();
                service.truncate(end);
                expect(service.indexedUpToPhyOffset).toBeLessThan(end);
                break;
              }
            }
            const puts: Put[] = records.flatMap((record) =>
              [record.uniqueKey ?? '', ...record.keys]
                .filter((key) => key.length > 0)
                .map((key) => ({ indexKey: buildIndexKey(record.topic, key), physicalOffset: record.physicalOffset, storeTimestampMs: record.storeTimestampMs })),
            );
            for (const query of queries) {
              const beginMs = T0 + query.beginSeconds * 1000;
              const endMs = beginMs + query.spanSeconds * 1000;
              const answer = service.queryOffsets(query.topic, query.key, query.maxNum, beginMs, endMs).physicalOffsets;
              expect(answer).toEqual(expected(puts, buildIndexKey(query.topic, query.key), query.maxNum, beginMs, endMs));
            }
          }
          service.close();
        } finally {
          fs.rmSync(rootDir, { recursive: true, force: true });
        }
      },
    );
    fc.assert(property, { numRuns: 150 });
  });
});
