/**
 * The V8 flags the actor system sets before its workers start (applyHeapFlags in actor-system.ts): the
 * young generation's size (workerSemiSpaceSizeMb), as a worker's own heap statistics show it. Flags are
 * process-wide, so each case sets the size it checks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { fixture } from './fixtures/behaviors.ts';
import { startTestSystem } from './helpers.ts';

const MiB = 1024 * 1024;

describe('heap flags', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  async function workerNewSpace(semiSpaceMb: number): Promise<number> {
    system = await startTestSystem({ a: 1 }, { semiSpaceMb });
    const probe = await system.spawn<{ type: 'newSpace' }>({ name: 'probe', behavior: fixture('heapProbe'), args: null, pool: 'a' });
    const size = (await system.ask(probe, { type: 'newSpace' })) as number;
    await system.shutdown();
    system = undefined;
    return size;
  }

  it('starts each worker with semi-spaces of workerSemiSpaceSizeMb, and leaves them to V8 with 0', async () => {
    expect(await workerNewSpace(16)).toBeGreaterThanOrEqual(16 * MiB);
    expect(await workerNewSpace(0)).toBeLessThan(16 * MiB);
    expect(await workerNewSpace(32)).toBeGreaterThanOrEqual(32 * MiB);
  });

  it('refuses a size that is not a whole number of MiB', async () => {
    await expect(startTestSystem({ a: 1 }, { semiSpaceMb: 1.5 })).rejects.toThrow(/semi-space/);
  });
});
