/** Behaviors for the store benchmark: a reader that keeps a window of `get` asks open against the writer. */
import type { ActorRef, Behavior, DeferredReply, PipeResult } from '../src/runtime/actor.ts';
import { assertNever } from '../src/runtime/assert.ts';
import type { CommitLogWriterMessage } from '../src/actors/commit-log-writer.ts';
import { RegionSender } from '../src/actors/region-sender.ts';
import {
  encodeBatch,
  encodePut,
  isPutRefusal,
  type EncodedPut,
  type GetMessageResult,
  type PutBatchResult,
  type PutMessageInput,
  type PutMessageResult,
} from '../src/storage/message-store.ts';
import type { SocketAddress } from '../src/storage/message-record.ts';

/**
 * Read `perQueue` messages of each of `queues` queues, from queue offset `from[queueId]` (0 when absent),
 * in batches of `batch`, `window` asks at a time.
 */
export type ReaderMessage =
  | {
      readonly type: 'read';
      readonly writer: ActorRef<CommitLogWriterMessage>;
      readonly topic: string;
      readonly queues: number;
      readonly perQueue: number;
      readonly from?: readonly number[];
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
          const from = message.from?.[queueId] ?? 0;
          for (let offset = 0; offset < message.perQueue; offset += message.batch) state.jobs.push({ queueId, queueOffset: from + offset });
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

/**
 * A send-pool stand-in: encodes 1 KiB messages on its own thread (as the broker's send processors do)
 * and keeps `window` asks of `batch` messages open against the writer. Mode 'each': every message is
 * encoded on its own (encodePut) and answered on its own (putEncoded). Mode 'batch': the `batch`
 * messages, all for one queue, are one RocketMQ batch (encodeBatch, putEncodedBatch) with one answer.
 */
export type EncodingSenderMessage =
  | {
      readonly type: 'pump';
      readonly writer: ActorRef<CommitLogWriterMessage>;
      readonly storeHost: SocketAddress;
      readonly topic: string;
      readonly durationMs: number;
      readonly window: number;
      readonly batch: number;
      readonly mode?: 'each' | 'batch';
    }
  | { readonly type: 'put'; readonly result: PipeResult<PutMessageResult[] | PutBatchResult>; readonly buffer?: Uint8Array };

type SenderState = {
  request: Extract<EncodingSenderMessage, { type: 'pump' }> | undefined;
  /** Batch buffers not in flight: one per batch in flight at most, reused once its answer is back. */
  spareBuffers: Uint8Array[];
  reply: DeferredReply | undefined;
  startedMs: number;
  pending: number;
  messages: number;
  bytes: number;
  sequence: number;
  /** Batches go into the writer's append region when it grants one (region-sender.ts). */
  readonly region: RegionSender;
};

const senderBody = new Uint8Array(1024).fill(98);

function sendBatch(state: SenderState, ctx: Parameters<Behavior<SenderState, EncodingSenderMessage, null>['receive']>[2]): void {
  const request = state.request!;
  if (request.mode === 'batch') {
    const queueId = state.sequence++ % 8;
    const inputs: PutMessageInput[] = [];
    for (let k = 0; k < request.batch; k++) inputs.push({ topic: request.topic, queueId, body: senderBody, bornTimestampMs: 1_700_000_000_000 });
    const buffer = state.spareBuffers.pop() ?? new Uint8Array(request.batch * (senderBody.length + 256));
    const encoded = encodeBatch(inputs, request.storeHost, 4 * 1024 * 1024, Date.now(), buffer);
    if (isPutRefusal(encoded)) throw new Error(`encode refused: ${encoded.remark}`);
    state.pending++;
    const ask = state.region.send(ctx, request.writer, encoded, 60_000);
    // The buffer is free again once the answer is back: the ask was sent (encoded) or its bytes copied long before.
    ctx.pipeToSelf(ask, (result) => ({ type: 'put', result, buffer }));
    return;
  }
  const puts: EncodedPut[] = [];
  for (let k = 0; k < request.batch; k++) {
    const encoded = encodePut(
      { topic: request.topic, queueId: state.sequence++ % 8, body: senderBody, bornTimestampMs: 1_700_000_000_000 },
      request.storeHost,
      4 * 1024 * 1024,
      Date.now(),
    );
    if (isPutRefusal(encoded)) throw new Error(`encode refused: ${encoded.remark}`);
    puts.push(encoded);
  }
  state.pending++;
  const ask = ctx.ask<CommitLogWriterMessage, PutMessageResult[]>(request.writer, { type: 'putEncoded', puts }, 60_000);
  ctx.pipeToSelf(ask, (result) => ({ type: 'put', result }));
}

/** Encodes and sends for `durationMs`; answers { messages, bytes, ms } of acknowledged puts. */
export const encodingSender: Behavior<SenderState, EncodingSenderMessage, null> = {
  init: () => ({ request: undefined, spareBuffers: [], reply: undefined, startedMs: 0, pending: 0, messages: 0, bytes: 0, sequence: 0, region: new RegionSender() }),
  receive(state, message, ctx) {
    switch (message.type) {
      case 'pump':
        Object.assign(state, { request: message, reply: ctx.deferReply(), startedMs: performance.now(), pending: 0, messages: 0, bytes: 0 });
        for (let i = 0; i < message.window; i++) sendBatch(state, ctx);
        return state;
      case 'put': {
        state.pending--;
        if (message.buffer !== undefined) state.spareBuffers.push(message.buffer);
        if (!message.result.ok) throw message.result.error;
        const value: PutMessageResult[] | PutBatchResult = message.result.value;
        const results: readonly (PutMessageResult | PutBatchResult)[] = Array.isArray(value) ? value : [value];
        for (const result of results) {
          if (result.status !== 'PUT_OK') throw new Error(`put failed: ${JSON.stringify(result)}`);
          state.messages += 'msgNum' in result ? result.msgNum : 1;
          state.bytes += result.wroteBytes;
        }
        const now = performance.now();
        if (now - state.startedMs < state.request!.durationMs) sendBatch(state, ctx);
        else if (state.pending === 0) state.reply?.resolve({ messages: state.messages, bytes: state.bytes, ms: now - state.startedMs });
        return state;
      }
      default:
        return assertNever(message, 'encoding sender message');
    }
  },
};
