import { afterEach, describe, expect, it } from 'vitest';
import { Mailbox } from '../../src/runtime/mailbox.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { RuntimeErrorCode } from '../../src/runtime/errors.ts';
import { fixture, type CounterMessage } from './fixtures/behaviors.ts';
import { startTestSystem } from './helpers.ts';

describe('Mailbox', () => {
  it('keeps FIFO order while its ring grows and wraps', () => {
    const mailbox = new Mailbox(1000);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7; i++) mailbox.push(next++, 0);
      for (let i = 0; i < 5; i++) expect(mailbox.shift()).toBe(expected++);
    }
    while (mailbox.length > 0) expect(mailbox.shift()).toBe(expected++);
    expect(expected).toBe(next);
  });

  it('refuses to grow past its capacity', () => {
    const mailbox = new Mailbox(3);
    for (let i = 0; i < 3; i++) mailbox.push(i, 0);
    expect(() => mailbox.push(3, 0)).toThrow(/overflow/);
  });
});

describe('mailbox bounds and backpressure', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  it('a full mailbox on the same thread refuses tells and fails asks with MAILBOX_FULL', async () => {
    system = await startTestSystem({});
    const ref = await system.spawn<CounterMessage>({ name: 'c', behavior: fixture('counter'), args: { start: 0 }, pool: 'main', mailboxCapacity: 10 });
    // Nothing is processed until this synchronous block ends, so the 11th message finds the box full.
    for (let i = 0; i < 10; i++) expect(system.tell(ref, { type: 'inc', by: 1 })).toBe(true);
    expect(system.tell(ref, { type: 'inc', by: 1 })).toBe(false);
    expect(system.mailboxDepth(ref)).toBe(10);
    await expect(system.ask(ref, { type: 'get' })).rejects.toMatchObject({ code: RuntimeErrorCode.mailboxFull });
    // Once drained, the mailbox accepts again and nothing admitted was lost.
    await new Promise((resolve) => setImmediate(resolve));
    expect(system.mailboxDepth(ref)).toBe(0);
    expect(await system.ask(ref, { type: 'get' })).toBe(10);
  });

  it('a busy actor on another thread pushes back on senders after exactly its capacity', async () => {
    system = await startTestSystem({ work: 1 });
    const ref = await system.spawn<CounterMessage>({ name: 'busy', behavior: fixture('counter'), args: { start: 0 }, pool: 'work', mailboxCapacity: 100 });
    expect(system.tell(ref, { type: 'slow', ms: 400 })).toBe(true);
    while (system.mailboxDepth(ref) > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    let accepted = 0;
    for (let i = 0; i < 150; i++) if (system.tell(ref, { type: 'inc', by: 1 })) accepted++;
    expect(accepted).toBe(100);
    expect(system.mailboxDepth(ref)).toBe(100);
    // After the slow message, every admitted message is handled.
    let total = -1;
    for (let attempt = 0; attempt < 200 && total !== 100; attempt++) {
      total = await system.ask<CounterMessage, number>(ref, { type: 'get' }).catch(() => -1);
      if (total !== 100) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(total).toBe(100);
    expect(system.mailboxDepth(ref)).toBe(0);
  });
});
