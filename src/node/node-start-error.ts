/** Why a node could not start (a port it cannot bind, a bad address); the CLI exits non-zero with it. */
import type { BoundAnswer } from '../actors/remoting-acceptor.ts';

/** Raised when a server cannot bind; the CLI exits non-zero with it. */
export class NodeStartError extends Error {
  /** Stable code. */
  readonly code = 'NODE_START_FAILED';
}

/** The port a listener bound, or a NodeStartError saying why it could not. */
export function portOf(answer: BoundAnswer): number {
  if ('error' in answer) throw new NodeStartError(answer.error);
  return answer.port;
}
