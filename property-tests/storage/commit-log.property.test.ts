/**
 * Property: whatever mix of appends, flushes, clean restarts and crashes (with a torn write of a random
 * prefix of the unflushed bytes) happens, recovery yields a prefix of what was appended that contains
 * every record a completed flush covered, with byte-identical bodies, and queue offsets without gaps.
 * Crashes recover either reading everything past the end or (no OS crash happened: the torn write is a
 * prefix) one window past it, and either from the start or from a trusted offset at a flushed record.
 * fast-check prints the seed and the shrunk command list on failure; replay with `{ seed, path }`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CommitLog, type CommitLogOptions, QueueOffsetTable, type RecoveryResult } from '../../src/storage/commit-log.ts';
import { encodeMessageProperties } from '../../src/storage/message-record.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

const FILE_SIZE = 16 * 1024;
const TOPICS = ['TopicA', 'TopicB', 'T', `Long${'x'.repeat(150)}`]; // the last one needs v2 records

type Command =
  | { readonly type: 'append'; readonly topic: number; readonly queueId: number; readonly bodyBytes: number; readonly bodySeed: number }
  | { readonly type: 'flush' }
  | { readonly type: 'restart' }
  | { readonly type: 'crash'; readonly tornPerMillion: number; readonly windowed: boolean; readonly trustPerMillion: number | null };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      type: fc.constant('append' as const),
      topic: fc.integer({ min: 0, max: TOPICS.length - 1 }),
      queueId: fc.integer({ min: 0, max: 3 }),
      // Bodies are drawn as (length, seed) so that counterexamples stay short and shrink fast.
      bodyBytes: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 500, max: 4000 })),
      bodySeed: fc.integer({ min: 0, max: 0xffff }),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ type: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'restart' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('crash' as const),
      tornPerMillion: fc.integer({ min: 0, max: 1_000_000 }),
      windowed: fc.boolean(),
      trustPerMillion: fc.option(fc.integer({ min: 0, max: 1_000_000 })),
    }),
  },
);

/** Deterministic pseudo-random bytes for a body. */
function bodyOf(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

type Appended = {
  readonly topic: string;
  readonly queueId: number;
  readonly queueOffset: number;
  readonly body: Uint8Array;
  readonly physicalOffset: number;
  readonly size: number;
};

/** The crash: a random prefix of the dirty bytes (in log order) reaches the files, the rest is lost. */
function crash(log: CommitLog, tornPerMillion: number): void {
  const dirty: { path: string; position: number; bytes: Uint8Array }[] = [];
  for (const file of log.mappedFiles()) {
    if (file.wrotePosition > file.flushedPosition) {
      dirty.push({ path: file.path, position: file.flushedPosition, bytes: file.bytes().slice(file.flushedPosition, file.wrotePosition) });
    }
  }
  const dirtyBytes = dirty.reduce((sum, range) => sum + range.bytes.length, 0);
  let budget = Math.floor((tornPerMillion * dirtyBytes) / 1_000_000);
  log.close();
  for (const range of dirty) {
    const length = Math.min(budget, range.bytes.length);
    if (length === 0) break;
    const fd = fs.openSync(range.path, 'r+');
    fs.writeSync(fd, range.bytes, 0, length, range.position);
    fs.closeSync(fd);
    budget -= length;
  }
}

/** Checks the records recovery handed back, which start with model[first] (the trusted offset's record). */
function checkRecovered(recovery: RecoveryResult, model: readonly Appended[], durableCount: number, first = 0): void {
  const records = recovery.records;
  expect(recovery.corruptions).toEqual([]);
  expect(first + records.length).toBeLessThanOrEqual(model.length);
  expect(first + records.length).toBeGreaterThanOrEqual(durableCount);
  // Records before a trusted offset are not read, so queue offsets count on from the model's.
  const nextByQueue = new Map<string, number>();
  for (const [index, record] of records.entries()) {
    const expected = model[first + index]!;
    expect(record.physicalOffset).toBe(expected.physicalOffset);
    expect(record.totalSize).toBe(expected.size);
    expect(record.topic).toBe(expected.topic);
    expect(record.queueId).toBe(expected.queueId);
    expect(Buffer.from(record.body).equals(Buffer.from(expected.body))).toBe(true);
    const key = `${record.topic}-${record.queueId}`;
    expect(record.queueOffset).toBe(nextByQueue.get(key) ?? expected.queueOffset);
    if (first === 0) expect(record.queueOffset).toBe(nextByQueue.get(key) ?? 0);
    nextByQueue.set(key, record.queueOffset + 1);
  }
  for (const [key, next] of nextByQueue) {
    const split = key.lastIndexOf('-');
    expect(recovery.queueOffsets.nextOffset(key.slice(0, split), Number(key.slice(split + 1)))).toBe(next);
  }
  expect(recovery.queueOffsets.size).toBe(nextByQueue.size);
}

function run(commands: readonly Command[]): void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'commit-log-prop-'));
  let nowMs = 1_700_000_000_000;
  const options: CommitLogOptions = {
    dir: path.join(root, 'commitlog'),
    storeHost: { address: '10.0.0.1', port: 10911 },
    fs: nodeStorageFs,
    mappedFileSizeBytes: FILE_SIZE,
    maxMessageSizeBytes: 8 * 1024,
    cachedFilesMax: 2,
    clock: { nowMs: () => nowMs++ },
  };
  let { commitLog: log } = CommitLog.open(options, { cleanShutdown: true });
  let table = new QueueOffsetTable();
  let model: Appended[] = [];
  let durableCount = 0;
  const reopen = (cleanShutdown: boolean, crashed?: Extract<Command, { type: 'crash' }>): void => {
    // A trusted offset is the start of a record a flush covered (or the end of the last one).
    const first = crashed?.trustPerMillion == null ? 0 : Math.floor((crashed.trustPerMillion * durableCount) / 1_000_000);
    const trusted = crashed?.trustPerMillion == null || durableCount === 0 ? undefined
      : first < durableCount ? model[first]!.physicalOffset : model[first - 1]!.physicalOffset + model[first - 1]!.size;
    const start = trusted === undefined ? 0 : first;
    const opened = CommitLog.open(options, { cleanShutdown, osCrashPossible: crashed === undefined ? undefined : !crashed.windowed, trustedPhysicalOffset: trusted });
    if (crashed !== undefined) expect(opened.recovery.tailCheck).toBe(crashed.windowed ? 'window' : 'full');
    checkRecovered(opened.recovery, model, durableCount, start);
    log = opened.commitLog;
    model = model.slice(0, start + opened.recovery.records.length);
    durableCount = model.length;
    // The table knows the queues seen past the trusted offset; the model knows them all.
    table = new QueueOffsetTable();
    for (const appended of model) table.observe(appended.topic, appended.queueId, appended.queueOffset);
    // The log ends after its last record, or at the end of that record's file when the blank marker
    // closing the file survived.
    const lastEnd = model.length === 0 ? log.minOffset : model.at(-1)!.physicalOffset + model.at(-1)!.size;
    const closedFileEnd = Math.ceil(lastEnd / FILE_SIZE) * FILE_SIZE;
    expect([lastEnd, closedFileEnd]).toContain(log.maxOffset);
  };
  try {
    for (const step of commands) {
      switch (step.type) {
        case 'append': {
          const topic = TOPICS[step.topic]!;
          const queueOffset = table.assign(topic, step.queueId);
          const body = bodyOf(step.bodyBytes, step.bodySeed);
          const result = log.append({
            topic,
            queueId: step.queueId,
            flag: 0,
            queueOffset,
            sysFlag: 0,
            bornTimestampMs: nowMs,
            bornHost: { address: '10.0.0.2', port: 5000 },
            reconsumeTimes: 0,
            preparedTransactionOffset: 0,
            body,
            properties: encodeMessageProperties({ UNIQ_KEY: `id-${model.length}` }),
          });
          model.push({ topic, queueId: step.queueId, queueOffset, body, ...result });
          break;
        }
        case 'flush':
          expect(log.flush()).toBe(log.maxOffset);
          durableCount = model.length;
          break;
        case 'restart':
          log.flush();
          durableCount = model.length;
          log.close();
          reopen(true);
          expect(model).toHaveLength(durableCount);
          break;
        case 'crash':
          crash(log, step.tornPerMillion);
          reopen(false, step);
          break;
        default: {
          const unreachable: never = step;
          throw new Error(`unknown command ${JSON.stringify(unreachable)}`);
        }
      }
    }
    crash(log, 1_000_000);
    reopen(false);
    log.close();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

describe('CommitLog under appends, flushes, restarts and crashes', () => {
  it('recovers a prefix holding every flushed record, bodies intact, queue offsets gapless', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 120, size: 'max' }), (commands) => run(commands)),
      { numRuns: 120 },
    );
  });
});
