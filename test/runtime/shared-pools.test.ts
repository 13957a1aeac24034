import { afterEach, describe, expect, it } from 'vitest';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { fixture, type CounterMessage } from './fixtures/behaviors.ts';
import { startTestSystem } from './helpers.ts';

describe('shared pools and deferred flushing', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  it('places a shared pool on its host pool threads, where its actors are local to the host actors', async () => {
    system = await startTestSystem({ net: 2, other: 1 }, { sharedPools: { proc: 'net' } });
    expect(system.pools().map((pool) => pool.name)).toEqual(['main', 'net', 'other']);
    const spawn = (name: string, pool: string) => system!.spawn<CounterMessage>({ name, behavior: fixture('counter'), args: { start: 0 }, pool });
    const nets = [await spawn('net-0', 'net'), await spawn('net-1', 'net')];
    const procs = [await spawn('proc-0', 'proc'), await spawn('proc-1', 'proc')];
    const elsewhere = await spawn('other-0', 'other');
    const threadOf = async (ref: (typeof nets)[number]) => ((await system!.ask(ref, { type: 'where' })) as { thread: number }).thread;
    const netThreads = new Set([await threadOf(nets[0]!), await threadOf(nets[1]!)]);
    expect(netThreads.size).toBe(2);
    // Fewest actors first: one processor lands on each network thread.
    const procThreads = new Set([await threadOf(procs[0]!), await threadOf(procs[1]!)]);
    expect(procThreads).toEqual(netThreads);
    for (const proc of procs) {
      const thread = await threadOf(proc);
      for (const net of nets) expect(await system.ask(proc, { type: 'isLocal', target: net })).toBe((await threadOf(net)) === thread);
      expect(await system.ask(proc, { type: 'isLocal', target: elsewhere })).toBe(false);
      expect(await system.ask(proc, { type: 'isLocal', target: proc })).toBe(true);
    }
  });

  it('refuses a shared pool that names no pool with threads', async () => {
    await expect(startTestSystem({ net: 1 }, { sharedPools: { proc: 'missing' } })).rejects.toThrow(/missing/);
  });

  it('answers every cross-thread ask in order when threads do not spin (flush at the end of the loop phase)', async () => {
    system = await startTestSystem({ a: 1 }, {}, { spinUs: 0 });
    const ref = await system.spawn<CounterMessage>({ name: 'c', behavior: fixture('counter'), args: { start: 0 }, pool: 'a' });
    const answers: Promise<unknown>[] = [];
    for (let i = 1; i <= 2_000; i++) {
      system.tell(ref, { type: 'inc', by: 1 });
      answers.push(system.ask(ref, { type: 'get' }));
    }
    expect(await Promise.all(answers)).toEqual(Array.from({ length: 2_000 }, (_, i) => i + 1));
  });
});
