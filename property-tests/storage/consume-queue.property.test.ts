// ConsumeQueue against an in-memory array model. fast-check prints the seed and the shrunk command list
// on failure; replay one with `fc.assert(property, { seed, path })`.
//
// The model: entries from `base` on, a durable prefix length (what the last flush left on disk), the
// CommitLog minimum that retention applied, and whether any file reached disk. A crash reopens the queue
// from disk without flushing: the model keeps only the durable prefix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CQ_ENTRY_SIZE_BYTES, ConsumeQueue, type ConsumeQueueBatch } from '../../src/storage/consume-queue.ts';
import { nodeStorageFs } from '../../src/storage/storage-fs.ts';

const ENTRIES_PER_FILE = 4;
const SCAN_ENTRIES_MAX = 6;
const TAGS = [0, 11, -22, 33];

type Entry = { commitLogOffset: number; sizeBytes: number; tagsCode: number };

type Command =
  | { type: 'put'; messages: { gapBytes: number; sizeBytes: number; tag: number }[] }
  | { type: 'flush' }
  | { type: 'crash' }
  | { type: 'reopen' }
  | { type: 'truncate'; fraction: number }
  | { type: 'retain'; fraction: number };

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      type: fc.constant('put' as const),
      messages: fc.array(
        fc.record({ gapBytes: fc.integer({ min: 0, max: 50 }), sizeBytes: fc.integer({ min: 1, max: 300 }), tag: fc.constantFrom(...TAGS) }),
        { minLength: 1, maxLength: 9 },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ type: 'flush' as const }) },
  { weight: 2, arbitrary: fc.constant({ type: 'crash' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('truncate' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('retain' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
);

class Model {
  readonly initialBase: number;
  started = false;
  base = 0;
  entries: Entry[] = [];
  durableLength = 0;
  onDisk = false;
  retainedCommitLogOffset = 0;
  /** Next free CommitLog offset; never goes back, so entries always move forward in the CommitLog. */
  nextCommitLogOffset = 0;

  constructor(initialBase: number) {
    this.initialBase = initialBase;
  }

  get maxOffset(): number {
    return this.started ? this.base + this.entries.length : 0;
  }

  /** First offset whose entry starts at or past `commitLogOffset`, else maxOffset. */
  firstAtOrPast(commitLogOffset: number): number {
    const index = this.entries.findIndex((e) => e.commitLogOffset >= commitLogOffset);
    return index < 0 ? this.maxOffset : this.base + index;
  }

  get minOffset(): number {
    return this.started ? this.firstAtOrPast(this.retainedCommitLogOffset) : 0;
  }

  entry(queueOffset: number): Entry | undefined {
    if (queueOffset < this.minOffset || queueOffset >= this.maxOffset) return undefined;
    return this.entries[queueOffset - this.base];
  }

  flushed(): void {
    if (!this.started) return;
    this.durableLength = this.entries.length;
    this.onDisk = true;
  }

  readBatch(from: number, maxEntries: number, tag: number | undefined): ConsumeQueueBatch {
    const [min, max] = [this.minOffset, this.maxOffset];
    if (max === 0) return { status: 'NO_MESSAGE_IN_QUEUE', entries: [], nextQueueOffset: 0 };
    if (from < min) return { status: 'OFFSET_TOO_SMALL', entries: [], nextQueueOffset: min };
    if (from === max) return { status: 'OFFSET_OVERFLOW_ONE', entries: [], nextQueueOffset: from };
    if (from > max) return { status: 'OFFSET_OVERFLOW_BADLY', entries: [], nextQueueOffset: max };
    const entries = [];
    let q = from;
    for (let scanned = 0; scanned < Math.max(SCAN_ENTRIES_MAX, maxEntries) && q < max && entries.length < maxEntries; scanned++, q++) {
      const entry = this.entries[q - this.base]!;
      if (tag === undefined || entry.tagsCode === tag) entries.push({ queueOffset: q, ...entry });
    }
    return { status: entries.length > 0 ? 'FOUND' : 'NO_MATCHED_MESSAGE', entries, nextQueueOffset: q };
  }
}

function apply(command: Command, model: Model, queue: ConsumeQueue, open: () => ConsumeQueue): ConsumeQueue {
  switch (command.type) {
    case 'put':
      for (const message of command.messages) {
        if (!model.started) {
          model.started = true;
          model.base = model.initialBase;
        }
        const entry = { commitLogOffset: model.nextCommitLogOffset + message.gapBytes, sizeBytes: message.sizeBytes, tagsCode: message.tag };
        expect(queue.putEntry(model.maxOffset, entry.commitLogOffset, entry.sizeBytes, entry.tagsCode)).toBe(true);
        model.entries.push(entry);
        model.nextCommitLogOffset = entry.commitLogOffset + entry.sizeBytes;
      }
      return queue;
    case 'flush':
      queue.flush();
      model.flushed();
      return queue;
    case 'reopen':
      queue.close();
      model.flushed();
      return recover(model, open);
    case 'crash':
      if (model.onDisk) {
        model.entries.length = model.durableLength;
      } else {
        model.started = false;
        model.entries = [];
      }
      return recover(model, open);
    case 'truncate': {
      const span = model.nextCommitLogOffset - model.retainedCommitLogOffset;
      const end = model.retainedCommitLogOffset + Math.floor(command.fraction * (span + 1));
      const cut = model.firstAtOrPast(end);
      expect(queue.truncateByCommitLogOffset(end)).toBe(cut);
      if (cut < model.maxOffset) {
        model.entries.length = cut - model.base;
        model.flushed();
      }
      return queue;
    }
    case 'retain': {
      const span = model.nextCommitLogOffset - model.retainedCommitLogOffset;
      model.retainedCommitLogOffset += Math.floor(command.fraction * span);
      queue.deleteFilesBefore(model.retainedCommitLogOffset);
      model.flushed();
      return queue;
    }
  }
}

/** What the broker does after a restart: open, then re-apply retention with the CommitLog's minimum. */
function recover(model: Model, open: () => ConsumeQueue): ConsumeQueue {
  const queue = open();
  queue.deleteFilesBefore(model.retainedCommitLogOffset);
  model.flushed();
  return queue;
}

function check(model: Model, queue: ConsumeQueue, reads: { from: number; maxEntries: number; tag: number | undefined }[]): void {
  expect([queue.minOffset, queue.maxOffset]).toEqual([model.minOffset, model.maxOffset]);
  for (let q = Math.max(0, model.minOffset - 2); q <= model.maxOffset + 1; q++) {
    const expected = model.entry(q);
    expect(queue.get(q)).toEqual(expected === undefined ? undefined : { queueOffset: q, ...expected });
  }
  for (const read of reads) {
    const from = model.minOffset - 1 + (read.from % (model.maxOffset - model.minOffset + 3));
    if (from < 0) continue;
    const filter = read.tag === undefined ? undefined : (code: number) => code === read.tag;
    expect(queue.readBatch(from, read.maxEntries, filter)).toEqual(model.readBatch(from, read.maxEntries, read.tag));
  }
}

describe('ConsumeQueue against an array model', () => {
  it('agrees with the model under puts, flushes, crashes, truncations and retention', () => {
    const readArbitrary = fc.record({
      from: fc.nat({ max: 1000 }),
      maxEntries: fc.integer({ min: 1, max: 10 }),
      tag: fc.option(fc.constantFrom(...TAGS), { nil: undefined }),
    });
    const property = fc.property(
      fc.constantFrom(0, 0, 3, ENTRIES_PER_FILE, 9),
      fc.array(commandArbitrary, { minLength: 1, maxLength: 40, size: 'max' }),
      fc.array(readArbitrary, { minLength: 1, maxLength: 3 }),
      (initialBase, commands, reads) => {
        const rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cq-property-'));
        try {
          const open = (): ConsumeQueue => ConsumeQueue.open({
            storageFs: nodeStorageFs,
            rootDir,
            topic: 'PropertyTopic',
            queueId: 0,
            fileSizeBytes: ENTRIES_PER_FILE * CQ_ENTRY_SIZE_BYTES,
            scanEntriesMax: SCAN_ENTRIES_MAX,
          });
          const model = new Model(initialBase);
          let queue = open();
          for (const command of commands) {
            queue = apply(command, model, queue, open);
            check(model, queue, reads);
          }
        } finally {
          fs.rmSync(rootDir, { recursive: true, force: true });
        }
      },
    );
    fc.assert(property, { numRuns: 150 });
  });
});
