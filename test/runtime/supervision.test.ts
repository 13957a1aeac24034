/**
 * Supervision as a user relies on it: a failed actor is resumed, restarted from its start arguments or
 * stopped, per its policy; a crash loop escalates to the parent, or to the root guardian, which stops the
 * actor and logs it. The restart window runs on the actor's clock, so a ManualClock steps it exactly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { RuntimeErrorCode } from '../../src/runtime/errors.ts';
import type { SupervisionPolicy } from '../../src/runtime/supervisor.ts';
import { fixture, type CounterMessage, type ParentMessage } from './fixtures/behaviors.ts';
import { captureLog, pollUntil, startTestSystem } from './helpers.ts';

const notFound = { code: RuntimeErrorCode.actorNotFound };
const failed = { code: RuntimeErrorCode.actorFailed };

describe('supervision policies', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  function spawnCounter(pool: string, name: string, supervision?: SupervisionPolicy): Promise<ActorRef<CounterMessage>> {
    return system!.spawn<CounterMessage>({ name, behavior: fixture('counter'), args: { start: 5 }, pool, supervision });
  }

  for (const pool of ['a', 'main']) {
    it(`restart rebuilds the state with init from the start arguments (${pool})`, async () => {
      system = await startTestSystem({ a: 1 });
      const ref = await spawnCounter(pool, `restart-${pool}`);
      expect(system.tell(ref, { type: 'inc', by: 3 })).toBe(true);
      expect(await system.ask(ref, { type: 'get' })).toBe(8);
      await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
      expect(await system.ask(ref, { type: 'get' })).toBe(5);
      // The same actor, in the same slot and on the same thread, answers after the restart.
      expect(await system.ask(ref, { type: 'where' })).toEqual({ thread: pool === 'main' ? 0 : 1, pool });
      const stats = await system.stats();
      expect(stats.find((host) => host.pool === pool)?.restarts).toBe(1);
    });

    it(`resume keeps the state (${pool})`, async () => {
      system = await startTestSystem({ a: 1 });
      const ref = await spawnCounter(pool, `resume-${pool}`, { onFailure: 'resume', maxRestarts: 0, withinMs: 1_000 });
      expect(system.tell(ref, { type: 'inc', by: 3 })).toBe(true);
      await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
      expect(await system.ask(ref, { type: 'get' })).toBe(8);
      // Resuming never counts towards a crash loop: many failures later it still answers.
      for (let i = 0; i < 5; i++) await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
      expect(await system.ask(ref, { type: 'get' })).toBe(8);
    });

    it(`stop removes the actor after its first failure (${pool})`, async () => {
      system = await startTestSystem({ a: 1 });
      const ref = await spawnCounter(pool, `stop-${pool}`, { onFailure: 'stop', maxRestarts: 10, withinMs: 1_000 });
      await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
      expect(system.tell(ref, { type: 'inc', by: 1 })).toBe(false);
      await expect(system.ask(ref, { type: 'get' })).rejects.toMatchObject(notFound);
      expect(system.threadOf(ref)).toBe(-1);
    });
  }

  it('a crash loop without a parent reaches the root guardian, which stops the actor and logs it', async () => {
    const capture = captureLog('warn');
    system = await startTestSystem({}, { log: capture.log });
    const name = 'looping';
    const ref = await spawnCounter('main', name, { onFailure: 'restart', maxRestarts: 2, withinMs: 60_000 });
    for (let failure = 1; failure <= 2; failure++) {
      await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
      expect(await system.ask(ref, { type: 'get' })).toBe(5);
    }
    expect(capture.lines.filter((line) => line.msg.includes('crash loop'))).toEqual([]);
    await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
    expect(system.tell(ref, { type: 'inc', by: 1 })).toBe(false);
    await expect(system.ask(ref, { type: 'get' })).rejects.toMatchObject(notFound);
    const loops = capture.lines.filter((line) => line.msg.includes('crash loop'));
    expect(loops).toHaveLength(1);
    expect(loops[0]).toMatchObject({ level: 50, actor: name });
    expect(loops[0]!.msg).toContain('root guardian');
    const failures = capture.lines.filter((line) => line.msg === 'actor failed' && line['actor'] === name);
    expect(failures.map((line) => line['directive'])).toEqual(['restart', 'restart', 'escalate']);
    // The system forgot the stopped actor: its name can be used again.
    const again = await spawnCounter('main', name);
    expect(await system.ask(again, { type: 'get' })).toBe(5);
  });
});

describe('escalation to a parent', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  /** Spawns a parent with `decision` and its child on pool a, then drives the child into a crash loop. */
  async function crashLoopChild(parentPool: string, decision: 'restart' | 'stop'): Promise<ActorRef<CounterMessage>> {
    system = await startTestSystem({ a: 1, b: 1 });
    const parentRef = await system.spawn<ParentMessage>({ name: 'parent', behavior: fixture('parent'), args: { decision }, pool: parentPool });
    const child = await system.ask<ParentMessage, ActorRef<CounterMessage>>(parentRef, { type: 'spawnChild', name: 'child', pool: 'a' });
    expect(system.threadOf(child)).toBe(1);
    // The child's policy allows one restart per minute: the first failure restarts it ...
    await expect(system.ask(child, { type: 'fail' })).rejects.toMatchObject(failed);
    expect(system.tell(child, { type: 'inc', by: 4 })).toBe(true);
    expect(await system.ask(child, { type: 'get' })).toBe(4);
    expect(await system.ask(parentRef, { type: 'failures' })).toEqual([]);
    // ... and the second escalates to the parent, whose onChildFailure decides.
    await expect(system.ask(child, { type: 'fail' })).rejects.toMatchObject(failed);
    const failures = await pollUntil('the parent to hear of the failure', async () => {
      const seen = await system!.ask<ParentMessage, string[]>(parentRef, { type: 'failures' });
      return seen.length > 0 ? seen : undefined;
    });
    expect(failures).toEqual(['child']);
    return child;
  }

  for (const parentPool of ['main', 'b']) {
    it(`a parent on ${parentPool} that decides restart gets its child back with fresh state`, async () => {
      const child = await crashLoopChild(parentPool, 'restart');
      // A resumed child would answer 4; a restarted one starts again from args (0).
      expect(await system!.ask(child, { type: 'get' })).toBe(0);
      expect(system!.tell(child, { type: 'inc', by: 2 })).toBe(true);
      expect(await system!.ask(child, { type: 'get' })).toBe(2);
    });

    it(`a parent on ${parentPool} that decides stop removes its child`, async () => {
      const child = await crashLoopChild(parentPool, 'stop');
      const code = await pollUntil('the child to stop', async () => {
        const outcome = await system!.ask(child, { type: 'get' }, 500).then(
          () => undefined,
          (error: { code: string }) => error.code,
        );
        return outcome === RuntimeErrorCode.actorNotFound ? outcome : undefined;
      });
      expect(code).toBe(RuntimeErrorCode.actorNotFound);
      expect(system!.tell(child, { type: 'inc', by: 1 })).toBe(false);
      expect(system!.threadOf(child)).toBe(-1);
    });
  }
  it('a child whose parent has stopped goes to the root guardian instead of waiting for an answer', async () => {
    system = await startTestSystem({ a: 1 });
    const parentRef = await system.spawn<ParentMessage>({ name: 'parent', behavior: fixture('parent'), args: { decision: 'restart' }, pool: 'main' });
    const child = await system.ask<ParentMessage, ActorRef<CounterMessage>>(parentRef, { type: 'spawnChild', name: 'orphan', pool: 'a' });
    await system.stop(parentRef);
    expect(await system.ask(child, { type: 'get' })).toBe(0);
    await expect(system.ask(child, { type: 'fail' })).rejects.toMatchObject(failed);
    await expect(system.ask(child, { type: 'fail' })).rejects.toMatchObject(failed);
    // Suspended forever, this ask would time out; the root guardian stops the child and fails it at once.
    await expect(system.ask(child, { type: 'get' })).rejects.toMatchObject(notFound);
    expect(system.threadOf(child)).toBe(-1);
  });
});

describe('the restart window under a ManualClock', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  it('failures further apart than withinMs restart; two within it escalate', async () => {
    const clock = new ManualClock();
    system = await startTestSystem({}, { clock });
    const ref = await system.spawn<CounterMessage>({
      name: 'windowed',
      behavior: fixture('counter'),
      args: { start: 5 },
      pool: 'main',
      supervision: { onFailure: 'restart', maxRestarts: 1, withinMs: 1_000 },
    });
    await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
    expect(await system.ask(ref, { type: 'get' })).toBe(5);
    clock.advance(2_000);
    // The first failure has left the window: this one is a plain restart, not a crash loop.
    await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
    expect(system.tell(ref, { type: 'inc', by: 1 })).toBe(true);
    expect(await system.ask(ref, { type: 'get' })).toBe(6);
    clock.advance(999);
    // 999 ms after the previous failure: two within the window exceed maxRestarts 1.
    await expect(system.ask(ref, { type: 'fail' })).rejects.toMatchObject(failed);
    await expect(system.ask(ref, { type: 'get' })).rejects.toMatchObject(notFound);
    expect(system.tell(ref, { type: 'inc', by: 1 })).toBe(false);
  });
});
