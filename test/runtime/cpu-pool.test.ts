/**
 * The piscina pool for stateless CPU tasks: real threads listed in the status view, correct checksums, and
 * a bounded queue that answers MAILBOX_FULL (SYSTEM_BUSY for the client) instead of growing.
 */
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import type { CpuPool } from '../../src/runtime/cpu-pool.ts';
import { RuntimeError, RuntimeErrorCode } from '../../src/runtime/errors.ts';
import { pollUntil, startTestSystem } from './helpers.ts';

const checkInput = new TextEncoder().encode('123456789');
/** CRC-32 (IEEE) of the ASCII digits 1..9: the standard check value. */
const checkValue = 0xcbf43926;

/** Ready threads with nothing to do. Reads piscina behind the CpuPool, which does not expose readiness. */
function idleThreads(cpu: CpuPool): number {
  return (cpu as unknown as { piscina: { idleThreads: number } }).piscina.idleThreads;
}

describe('the CPU pool', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  it('lists its real threads in the status view', async () => {
    system = await startTestSystem({ a: 1 }, { cpuThreads: 2 });
    const cpu = system.pools().find((pool) => pool.name === 'cpu');
    expect(cpu?.size).toBe(2);
    expect(cpu?.threadIds).toHaveLength(2);
    const workerIds = system.pools().find((pool) => pool.name === 'a')!.threadIds;
    for (const id of cpu!.threadIds) {
      expect(id).toBeGreaterThan(0);
      expect(workerIds).not.toContain(id);
    }
    expect(new Set(cpu!.threadIds).size).toBe(2);
  });

  it('has no cpu pool when cpuThreads is 0', async () => {
    system = await startTestSystem({});
    expect(system.cpu).toBeUndefined();
    expect(system.pools().map((pool) => pool.name)).toEqual(['main']);
  });

  it('computes crc32 and crc32Many', async () => {
    system = await startTestSystem({}, { cpuThreads: 2 });
    const cpu = system.cpu!;
    expect(await cpu.run({ type: 'crc32', data: checkInput })).toBe(checkValue);
    expect(await cpu.run({ type: 'crc32', data: new Uint8Array(0) })).toBe(0);
    const buffer = new Uint8Array(4_096).map((_, i) => (i * 31 + 7) & 0xff);
    buffer.set(checkInput, 100);
    const ranges: [number, number][] = [
      [100, 109],
      [0, 4_096],
      [17, 17],
      [4_000, 4_096],
      [0, 1],
    ];
    const many = await cpu.run<number[]>({ type: 'crc32Many', buffer, ranges });
    expect(many).toEqual(ranges.map(([start, end]) => crc32(buffer.subarray(start, end))));
    expect(many[0]).toBe(checkValue);
    expect(many[2]).toBe(0);
  });

  it('refuses tasks beyond its threads plus cpuQueueMax with MAILBOX_FULL, then accepts again', async () => {
    const queueMax = 4;
    system = await startTestSystem({}, { cpuThreads: 2, cpuQueueMax: queueMax });
    const cpu = system.cpu!;
    await pollUntil('both cpu threads to be ready', () => (idleThreads(cpu) === 2 ? true : undefined));
    // One synchronous burst: no completion is seen before the last submission, so the counts are exact.
    const data = new Uint8Array(64 << 10).fill(0x5a);
    const expected = crc32(data);
    const burst = 40;
    const outcomes = await Promise.allSettled(Array.from({ length: burst }, () => cpu.run<number>({ type: 'crc32', data })));
    const fulfilled = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const rejected = outcomes.filter((outcome) => outcome.status === 'rejected');
    // Two running, queueMax waiting; every other task is refused, never queued.
    expect(fulfilled).toHaveLength(2 + queueMax);
    for (const outcome of fulfilled) expect(outcome.value).toBe(expected);
    expect(rejected).toHaveLength(burst - 2 - queueMax);
    for (const outcome of rejected) {
      expect(outcome.reason).toBeInstanceOf(RuntimeError);
      expect(outcome.reason).toMatchObject({ code: RuntimeErrorCode.mailboxFull });
    }
    // The refused tasks were submitted after the accepted ones: acceptance is a prefix.
    expect(outcomes.slice(0, 2 + queueMax).every((outcome) => outcome.status === 'fulfilled')).toBe(true);
    expect(await cpu.run({ type: 'crc32', data: checkInput })).toBe(checkValue);
  });
});
