/**
 * Sending a RocketMQ batch (encodeBatch's EncodedBatch) to the CommitLog writer from a send thread:
 * into the writer's append region when a reservation can be had (append-region.ts), else the ordinary
 * way (`putEncodedBatch`, the bytes in the message). Either way the answer is the writer's
 * PutBatchResult for the batch.
 *
 * One RegionSender per sending actor. It asks the writer for the region's grant when it has none or the
 * region moved on, and, at most every GRANT_RETRY_MS, when the region it holds is closed (a restarted
 * writer closed its predecessor's region for good and opened its own); at most one such ask at a time,
 * and after a null answer not again for GRANT_RETRY_MS. Until then it sends the ordinary way.
 *
 * A report must reach the writer: the reserved bytes hold up the log until it is taken. So a report
 * that the runtime did not admit (the writer's mailbox full, the thread's ask limit) is sent again after
 * REPORT_RETRY_MS, until admitted; an admitted one is never sent twice (an ask that timed out may still
 * be taken, and its answer is then lost, as any timed-out put's is).
 */
import type { ActorContext, ActorRef } from '../runtime/actor.ts';
import { RuntimeError, RuntimeErrorCode } from '../runtime/errors.ts';
import { RegionAppender, type RegionGrant } from '../storage/append-region.ts';
import { batchMessageIds } from '../storage/message-record.ts';
import type { EncodedBatch, PutBatchResult } from '../storage/message-store.ts';
import type { CommitLogWriterMessage } from './commit-log-writer.ts';

/** Wait before asking again for a grant after the writer said the region is closed. */
export const GRANT_RETRY_MS = 1_000;
/** Wait before sending a report again that the runtime did not admit. */
export const REPORT_RETRY_MS = 1;

export class RegionSender {
  private readonly appender = new RegionAppender();
  private grantAsked = false;
  private grantRetryAtMs = 0;
  private grantAskedAtMs = 0;
  /** Batches sent into the region, and the ordinary way by the reason the region gave: for stats and tests. */
  inPlace = 0;
  readonly ordinary = { none: 0, stale: 0, closed: 0, full: 0 };

  /** Sends `batch`; resolves with the writer's answer (a timeout or a stopped writer rejects, as any ask). */
  send<M>(ctx: ActorContext<M>, writer: ActorRef<CommitLogWriterMessage>, batch: EncodedBatch, timeoutMs: number): Promise<PutBatchResult> {
    const reservation = this.appender.reserve(batch.records.length);
    if (typeof reservation === 'string') {
      if (reservation === 'none' || reservation === 'stale') this.askGrant(ctx, writer);
      else if (reservation === 'closed' && ctx.clock.nowMs() - this.grantAskedAtMs >= GRANT_RETRY_MS) this.askGrant(ctx, writer);
      this.ordinary[reservation]++;
      return ctx.ask<CommitLogWriterMessage, PutBatchResult>(writer, { type: 'putEncodedBatch', batch }, timeoutMs);
    }
    this.appender.fill(reservation, batch.records, batch.count, ctx.clock.nowMs());
    this.inPlace++;
    const report: CommitLogWriterMessage = {
      type: 'putInPlace',
      epoch: this.appender.epoch,
      generation: reservation.generation,
      batch: { topic: batch.topic, queueId: batch.queueId, count: batch.count, physicalOffset: reservation.physicalOffset, bytes: batch.records.length, answerMsgIds: false },
    };
    // The writer answers without the msgIds: this thread names them from the records it placed.
    return reportUntilAdmitted(ctx, writer, report, timeoutMs).then((result) =>
      result.status === 'PUT_OK' ? { ...result, msgId: batchMessageIds(batch.records, batch.count, result.physicalOffset) } : result,
    );
  }

  private askGrant<M>(ctx: ActorContext<M>, writer: ActorRef<CommitLogWriterMessage>): void {
    if (this.grantAsked || ctx.clock.nowMs() < this.grantRetryAtMs) return;
    this.grantAsked = true;
    this.grantAskedAtMs = ctx.clock.nowMs();
    ctx.ask<CommitLogWriterMessage, RegionGrant | null>(writer, { type: 'regionGrant' }, 30_000).then(
      (grant) => {
        this.grantAsked = false;
        if (grant === null) this.grantRetryAtMs = ctx.clock.nowMs() + GRANT_RETRY_MS;
        else this.appender.grant(grant);
      },
      () => {
        this.grantAsked = false;
        this.grantRetryAtMs = ctx.clock.nowMs() + GRANT_RETRY_MS;
      },
    );
  }
}

function reportUntilAdmitted<M>(
  ctx: ActorContext<M>,
  writer: ActorRef<CommitLogWriterMessage>,
  report: CommitLogWriterMessage,
  timeoutMs: number,
): Promise<PutBatchResult> {
  return ctx.ask<CommitLogWriterMessage, PutBatchResult>(writer, report, timeoutMs).catch((error: unknown) => {
    if (!(error instanceof RuntimeError) || (error.code !== RuntimeErrorCode.mailboxFull && error.code !== RuntimeErrorCode.askLimit)) throw error;
    return new Promise<PutBatchResult>((resolve, reject) => {
      ctx.clock.setTimer(() => reportUntilAdmitted(ctx, writer, report, timeoutMs).then(resolve, reject), REPORT_RETRY_MS);
    });
  });
}
