/** Behaviors for the store benchmark: a reader that keeps a window of `get` asks open against the writer. */
import type { ActorRef, Behavior, DeferredReply, PipeResult } from '../src/runtime/actor.ts';
import { assertNever } from '../src/runtime/assert.ts';
import type { CommitLogWriterMessage } from '../src/actors/commit-log-writer.ts';
import type { GetMessageResult } from '../src/storage/message-store.ts';

/** Read every message of `queues` queues (each `perQueue` long) in batches of `batch`, `window` asks at a time. */
export type ReaderMessage =
  | {
      readonly type: 'read';
      readonly writer: ActorRef<CommitLogWriterMessage>;
      readonly topic: string;
      readonly queues: number;
      readonly perQueue: number;
      readonly batch: number;
      readonly window: number;
    }
  | { readonly type: 'got'; readonly result: PipeResult<GetMessageResult> };

type Job = { readonly queueId: number; readonly queueOffset: number };

type State = {
  jobs: Job[];
  next: number;
  pending: number;
  messages: number;
  reply: DeferredReply | undefined;
  request: Extract<ReaderMessage, { type: 'read' }> | undefined;
};

function issue(state: State, ctx: Parameters<Behavior<State, ReaderMessage, null>['receive']>[2]): void {
  const request = state.request!;
  while (state.pending < request.window && state.next < state.jobs.length) {
    const job = state.jobs[state.next++]!;
    state.pending++;
    const ask = ctx.ask<CommitLogWriterMessage, GetMessageResult>(request.writer, {
      type: 'get',
      topic: request.topic,
      queueId: job.queueId,
      queueOffset: job.queueOffset,
      maxMsgNums: request.batch,
    }, 30_000);
    ctx.pipeToSelf(ask, (result) => ({ type: 'got', result }));
  }
  if (state.pending === 0) state.reply?.resolve(state.messages);
}

/** Reads through the writer and answers the number of messages it got. */
export const reader: Behavior<State, ReaderMessage, null> = {
  init: () => ({ jobs: [], next: 0, pending: 0, messages: 0, reply: undefined, request: undefined }),
  receive(state, message, ctx) {
    switch (message.type) {
      case 'read': {
        state.request = message;
        state.jobs = [];
        for (let queueId = 0; queueId < message.queues; queueId++) {
          for (let offset = 0; offset < message.perQueue; offset += message.batch) state.jobs.push({ queueId, queueOffset: offset });
        }
        state.next = 0;
        state.messages = 0;
        state.reply = ctx.deferReply();
        issue(state, ctx);
        return state;
      }
      case 'got':
        state.pending--;
        if (!message.result.ok) throw message.result.error;
        state.messages += message.result.value.messages.length;
        issue(state, ctx);
        return state;
      default:
        return assertNever(message, 'reader message');
    }
  },
};
