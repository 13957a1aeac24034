import { afterEach, describe, expect, it } from 'vitest';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { RuntimeErrorCode } from '../../src/runtime/errors.ts';
import { fixture, type CounterMessage } from './fixtures/behaviors.ts';
import { startTestSystem } from './helpers.ts';

describe('tell and ask', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  it('addresses actors the same way on this thread and on another', async () => {
    system = await startTestSystem({ a: 1 });
    for (const pool of ['main', 'a']) {
      const ref = await system.spawn<CounterMessage>({ name: `c-${pool}`, behavior: fixture('counter'), args: { start: 5 }, pool });
      expect(system.tell(ref, { type: 'inc', by: 2 })).toBe(true);
      expect(await system.ask(ref, { type: 'get' })).toBe(7);
      expect(await system.ask(ref, { type: 'where' })).toEqual({ thread: pool === 'main' ? 0 : 1, pool });
    }
  });

  it('times out an unanswered ask under a simulated clock', async () => {
    const clock = new ManualClock();
    system = await startTestSystem({}, { clock });
    const ref = await system.spawn<CounterMessage>({ name: 'holder', behavior: fixture('counter'), args: { start: 0 }, pool: 'main' });
    const answer = system.ask(ref, { type: 'hold' }, 1_000);
    let settled = false;
    answer.catch(() => undefined).finally(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    clock.advance(1);
    await expect(answer).rejects.toMatchObject({ code: RuntimeErrorCode.askTimeout });
  });

  it('times out an ask to a busy actor on another thread', async () => {
    system = await startTestSystem({ a: 1 });
    const ref = await system.spawn<CounterMessage>({ name: 'busy', behavior: fixture('counter'), args: { start: 0 }, pool: 'a' });
    system.tell(ref, { type: 'slow', ms: 1_000 });
    const started = Date.now();
    await expect(system.ask(ref, { type: 'get' }, 50)).rejects.toMatchObject({ code: RuntimeErrorCode.askTimeout });
    expect(Date.now() - started).toBeLessThan(900);
  });

  it('fails an ask the handler did not answer with NO_REPLY', async () => {
    system = await startTestSystem({ a: 1 });
    const ref = await system.spawn<CounterMessage>({ name: 'quiet', behavior: fixture('counter'), args: { start: 0 }, pool: 'a' });
    await expect(system.ask(ref, { type: 'silent' })).rejects.toMatchObject({ code: RuntimeErrorCode.noReply });
  });

  it('refuses unknown pools and duplicate names', async () => {
    system = await startTestSystem({});
    await system.spawn({ name: 'x', behavior: fixture('counter'), args: { start: 0 }, pool: 'main' });
    await expect(system.spawn({ name: 'x', behavior: fixture('counter'), args: { start: 0 }, pool: 'main' })).rejects.toMatchObject({
      code: RuntimeErrorCode.spawnFailed,
    });
    await expect(system.spawn({ name: 'y', behavior: fixture('counter'), args: { start: 0 }, pool: 'nope' })).rejects.toMatchObject({
      code: RuntimeErrorCode.spawnFailed,
    });
  });
});
