/**
 * A worker thread that dies is replaced and its actors are restarted there from their start arguments,
 * while the rest of the system keeps serving. A thread that keeps dying is a crash loop: the system emits
 * `fatal` and stops replacing it.
 */
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { RuntimeErrorCode } from '../../src/runtime/errors.ts';
import { fixture, type CounterMessage } from './fixtures/behaviors.ts';
import { pollUntil, startTestSystem } from './helpers.ts';

type Kill = (system: ActorSystem, ref: ActorRef<CounterMessage>, threadIndex: number) => void;

const kills: [string, Kill][] = [
  ['an uncaught error inside the worker', (system, ref) => expect(system.tell(ref, { type: 'killThread' })).toBe(true)],
  ['terminate() from outside', (system, _ref, threadIndex) => void system.workerOf(threadIndex)!.terminate()],
];

/** Resolves with the exit code (events.once would reject on the 'error' event that precedes a crash). */
function exitOf(worker: Worker): Promise<number> {
  return new Promise((resolve) => worker.once('exit', resolve));
}

function threadIdsOf(system: ActorSystem, pool: string): readonly number[] {
  return system.pools().find((info) => info.name === pool)!.threadIds;
}

describe('worker thread death', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  for (const [how, kill] of kills) {
    it(`replaces a thread killed by ${how} and restarts its actors from their start arguments`, async () => {
      system = await startTestSystem({ a: 1, b: 1 });
      const victim = await system.spawn<CounterMessage>({ name: 'victim', behavior: fixture('counter'), args: { start: 2 }, pool: 'a' });
      const bystander = await system.spawn<CounterMessage>({ name: 'bystander', behavior: fixture('counter'), args: { start: 0 }, pool: 'b' });
      expect(system.tell(victim, { type: 'inc', by: 5 })).toBe(true);
      expect(await system.ask(victim, { type: 'get' })).toBe(7);
      const threadIndex = system.threadOf(victim);
      expect(threadIndex).toBe(1);
      const oldWorker = system.workerOf(threadIndex)!;
      const oldThreadId = oldWorker.threadId;
      expect(threadIdsOf(system, 'a')).toEqual([oldThreadId]);

      let replacedIndex: number | undefined;
      system.on('workerReplaced', (index: number) => (replacedIndex = index));
      const exited = exitOf(oldWorker);
      kill(system, victim, threadIndex);
      await exited;
      // While the thread is being re-created, its actors refuse mail instead of swallowing it ...
      expect(replacedIndex).toBeUndefined();
      await expect(system.ask(victim, { type: 'get' })).rejects.toMatchObject({ code: RuntimeErrorCode.actorNotFound });
      expect(system.tell(victim, { type: 'inc', by: 1 })).toBe(false);
      // ... and actors on other threads keep answering.
      let answeredDuringReplacement = 0;
      const deadline = Date.now() + 10_000;
      while (replacedIndex === undefined && Date.now() < deadline) {
        expect(system.tell(bystander, { type: 'inc', by: 1 })).toBe(true);
        expect(await system.ask(bystander, { type: 'get' })).toBe(answeredDuringReplacement + 1);
        answeredDuringReplacement++;
      }
      expect(replacedIndex).toBe(threadIndex);
      expect(answeredDuringReplacement).toBeGreaterThan(0);

      const newThreadId = system.workerOf(threadIndex)!.threadId;
      expect(newThreadId).not.toBe(oldThreadId);
      expect(threadIdsOf(system, 'a')).toEqual([newThreadId]);
      expect(system.threadOf(victim)).toBe(threadIndex);
      expect(await system.ask(victim, { type: 'get' })).toBe(2);
      expect(await system.ask(victim, { type: 'where' })).toEqual({ thread: threadIndex, pool: 'a' });
      expect(await system.ask(bystander, { type: 'get' })).toBe(answeredDuringReplacement);
    });
  }

  it('gives up on a thread in a crash loop: fatal, and no replacement', async () => {
    system = await startTestSystem({ a: 1, b: 1 }, { workerSupervision: { onFailure: 'restart', maxRestarts: 1, withinMs: 60_000 } });
    const victim = await system.spawn<CounterMessage>({ name: 'victim', behavior: fixture('counter'), args: { start: 3 }, pool: 'a' });
    const bystander = await system.spawn<CounterMessage>({ name: 'bystander', behavior: fixture('counter'), args: { start: 9 }, pool: 'b' });
    const threadIndex = system.threadOf(victim);
    const replaced: number[] = [];
    const fatal: string[] = [];
    system.on('workerReplaced', (index: number) => replaced.push(index));
    system.on('fatal', (reason: string) => fatal.push(reason));

    expect(system.tell(victim, { type: 'killThread' })).toBe(true);
    await pollUntil('the first replacement', () => (replaced.length > 0 ? true : undefined), 10_000);
    expect(replaced).toEqual([threadIndex]);
    expect(await system.ask(victim, { type: 'get' })).toBe(3);
    expect(fatal).toEqual([]);

    const secondWorker = system.workerOf(threadIndex)!;
    const exited = exitOf(secondWorker);
    expect(system.tell(victim, { type: 'killThread' })).toBe(true);
    await exited;
    // The decision is taken in the exit handler, before any replacement could start.
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toContain(`a-${threadIndex}`);
    expect(system.workerOf(threadIndex)).toBeUndefined();
    expect(threadIdsOf(system, 'a')).toEqual([-1]);
    // A round trip through another worker gives a replacement, had one started, time to show up.
    expect(await system.ask(bystander, { type: 'get' })).toBe(9);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(replaced).toEqual([threadIndex]);
    expect(system.workerOf(threadIndex)).toBeUndefined();
    await expect(system.ask(victim, { type: 'get' })).rejects.toMatchObject({ code: RuntimeErrorCode.actorNotFound });
    await expect(system.spawn({ name: 'late', behavior: fixture('counter'), args: { start: 0 }, pool: 'a' })).rejects.toMatchObject({
      code: RuntimeErrorCode.spawnFailed,
    });
  });

  it('shuts down promptly when a worker dies at the same moment', async () => {
    system = await startTestSystem({ a: 1, b: 1 });
    const victim = await system.spawn<CounterMessage>({ name: 'victim', behavior: fixture('counter'), args: { start: 0 }, pool: 'a' });
    const worker = system.workerOf(system.threadOf(victim))!;
    // Between the thread's last error and its exit event, a control call to it can never be answered.
    const stopped = new Promise<string>((resolve) => worker.once('error', () => resolve(system!.shutdown().then(() => 'stopped'))));
    expect(system.tell(victim, { type: 'killThread' })).toBe(true);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise((resolve) => (timer = setTimeout(resolve, 5_000, 'hung')));
    const outcome = await Promise.race([stopped, limit]);
    clearTimeout(timer);
    expect(outcome).toBe('stopped');
    // No replacement thread outlives the shutdown.
    expect(system.workerOf(system.threadOf(victim))).toBeUndefined();
  });
});
