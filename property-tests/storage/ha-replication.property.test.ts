/**
 * Property: HA replication keeps the slave's CommitLog a byte prefix of the master's, whatever the
 * appends (sizes that roll files: 16 KiB files), read batch sizes, TCP-like chunking and disconnects
 * (a disconnect drops the slave's partial record; a reconnect resyncs from the slave's own end, as the
 * ha-client does). Once caught up the files are equal and the slave's ConsumeQueues serve exactly the
 * master's entries; at every step each slave queue is a prefix of the master's.
 *
 * fast-check prints the seed and the shrunk command list on failure. Runs: HA_PROP_RUNS (default 100).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MessageStore } from '../../src/storage/message-store.ts';
import {
  HA_QUEUES,
  HA_TOPICS,
  MASTER_HOST,
  SLAVE_HOST,
  allQueues,
  appendOnMaster,
  commitLogFiles,
  haMessage,
  openSmallStore,
  removeDirs,
  replicate,
  tempDir,
} from '../../test/storage/fixtures/ha-pair.ts';

const NUM_RUNS = Number(process.env['HA_PROP_RUNS'] ?? 100);
const FILE_BYTES = 16 * 1024;

type Command =
  | { readonly kind: 'append'; readonly bodyBytes: number; readonly topic: number; readonly queueId: number }
  | { readonly kind: 'transfer'; readonly readMaxBytes: number; readonly pieces: readonly number[] }
  | { readonly kind: 'disconnect' }
  | { readonly kind: 'connect' };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), bodyBytes: fc.integer({ min: 1, max: 5000 }), topic: fc.nat({ max: HA_TOPICS.length - 1 }), queueId: fc.nat({ max: HA_QUEUES - 1 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('transfer' as const), readMaxBytes: fc.integer({ min: 1, max: 40_000 }), pieces: fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'disconnect' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'connect' as const }) },
);

/** Slave files are the master's up to the slave's end and zero after it; the master has every slave file. */
function expectPrefix(masterDir: string, slaveDir: string, slaveEnd: number): void {
  const master = commitLogFiles(masterDir);
  for (const [name, bytes] of commitLogFiles(slaveDir)) {
    const masterBytes = master.get(name);
    expect(masterBytes, `master has ${name}`).toBeDefined();
    const kept = Math.max(0, Math.min(bytes.length, slaveEnd - Number(name)));
    expect(bytes.subarray(0, kept).equals(masterBytes!.subarray(0, kept)), `${name} prefix`).toBe(true);
    expect(bytes.subarray(kept).every((byte) => byte === 0), `${name} zero past the end`).toBe(true);
  }
}

function expectQueuePrefixes(master: MessageStore, slave: MessageStore): void {
  const masterQueues = allQueues(master);
  for (const [queue, entries] of Object.entries(allQueues(slave))) expect(masterQueues[queue]!.slice(0, entries.length), queue).toEqual(entries);
}

describe('HA replication (property)', () => {
  it('keeps the slave a byte prefix of the master, equal once caught up', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 40 }), (commands) => {
        const dirs: string[] = [];
        const masterDir = tempDir('ha-prop-master-', dirs);
        const slaveDir = tempDir('ha-prop-slave-', dirs);
        const master = openSmallStore(masterDir, MASTER_HOST, FILE_BYTES);
        const slave = openSmallStore(slaveDir, SLAVE_HOST, FILE_BYTES);
        try {
          let seq = 0;
          // Where the connection's stream stands; null while disconnected.
          let stream: number | null = 0;
          for (const step of commands) {
            if (step.kind === 'append') {
              appendOnMaster(master, haMessage(HA_TOPICS[step.topic]!, step.queueId, step.bodyBytes, seq++));
            } else if (step.kind === 'transfer' && stream !== null) {
              let piece = 0;
              stream = replicate(master, slave, stream, step.readMaxBytes, () => step.pieces[piece++ % step.pieces.length]!, 1);
            } else if (step.kind === 'disconnect') {
              stream = null;
            } else if (step.kind === 'connect' && stream === null) {
              stream = slave.maxPhysicalOffset;
            }
            slave.dispatch();
            slave.writeCommitLog();
            expect(slave.maxPhysicalOffset).toBeLessThanOrEqual(master.maxPhysicalOffset);
            expectPrefix(masterDir, slaveDir, slave.maxPhysicalOffset);
            expectQueuePrefixes(master, slave);
          }
          // Reconnect and catch up.
          replicate(master, slave, slave.maxPhysicalOffset, 32 * 1024, () => 4096);
          slave.dispatch();
          slave.writeCommitLog();
          expect(slave.maxPhysicalOffset).toBe(master.maxPhysicalOffset);
          const masterFiles = commitLogFiles(masterDir);
          const slaveFiles = commitLogFiles(slaveDir);
          // An empty master has no file; the slave then has none either.
          expect([...slaveFiles.keys()]).toEqual([...masterFiles.keys()]);
          for (const [name, bytes] of masterFiles) expect(slaveFiles.get(name)!.equals(bytes), name).toBe(true);
          expect(allQueues(slave)).toEqual(allQueues(master));
        } finally {
          master.close();
          slave.close();
          removeDirs(dirs);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
