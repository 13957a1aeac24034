/** Behaviors for the runtime benchmark. */
import type { ActorRef, Behavior } from '../src/runtime/actor.ts';

/** Messages a sink understands. */
export type SinkMessage = { readonly type: 'hit'; readonly n: number } | { readonly type: 'count' } | { readonly type: 'ping' };

/** Counts hits; answers 'count' and 'ping'. */
export const sink: Behavior<{ hits: number }, SinkMessage, null> = {
  init: () => ({ hits: 0 }),
  receive(state, message, ctx) {
    if (message.type === 'hit') state.hits++;
    else if (message.type === 'count') ctx.reply(state.hits);
    else ctx.reply(0);
    return state;
  },
};

/** Asks a pump to tell `count` hits to `target`, retrying on backpressure; replies when all are admitted. */
export type PumpMessage = { readonly type: 'pump'; readonly target: ActorRef<SinkMessage>; readonly count: number };

/** Tells as fast as the target's mailbox admits, yielding to its thread's event loop when it is full. */
export const pump: Behavior<null, PumpMessage, null> = {
  init: () => null,
  receive(state, message, ctx) {
    const reply = ctx.deferReply()!;
    let sent = 0;
    const hit: SinkMessage = { type: 'hit', n: 1 };
    const run = (): void => {
      while (sent < message.count) {
        if (!ctx.tell(message.target, hit)) {
          setImmediate(run);
          return;
        }
        sent++;
      }
      reply.resolve(sent);
    };
    run();
    return state;
  },
};
