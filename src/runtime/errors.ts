/**
 * Errors the actor runtime hands to callers. Each carries a stable `code`; the broker maps them to
 * RocketMQ's answers (MAILBOX_FULL becomes SYSTEM_BUSY, ASK_TIMEOUT becomes a timeout reply).
 */

/** The codes a RuntimeError may carry. */
export const RuntimeErrorCode = {
  /** The target mailbox is at its bound: backpressure, try later. */
  mailboxFull: 'MAILBOX_FULL',
  /** No reply arrived within the ask timeout. */
  askTimeout: 'ASK_TIMEOUT',
  /** The target actor does not exist or has stopped. */
  actorNotFound: 'ACTOR_NOT_FOUND',
  /** The target actor threw while handling the asked message. */
  actorFailed: 'ACTOR_FAILED',
  /** The handler finished without replying to an ask. */
  noReply: 'NO_REPLY',
  /** Too many asks are outstanding on this thread. */
  askLimit: 'ASK_LIMIT',
  /** The actor system is shutting down or stopped. */
  systemStopped: 'SYSTEM_STOPPED',
  /** A spawn request could not be satisfied (unknown pool, no free slot, bad behavior module). */
  spawnFailed: 'SPAWN_FAILED',
} as const;

/** One of RuntimeErrorCode's values. */
export type RuntimeErrorCode = (typeof RuntimeErrorCode)[keyof typeof RuntimeErrorCode];

/** An expected failure of a runtime operation, with a stable code. */
export class RuntimeError extends Error {
  /** Stable machine-readable code. */
  readonly code: RuntimeErrorCode;
  override readonly name = 'RuntimeError';

  constructor(code: RuntimeErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Renders any thrown value as a short string for logs and cross-thread failure reports. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}
