/**
 * The master lease as every thread sees it: one SharedArrayBuffer holding the deadline (monotonic ms,
 * process.hrtime's time base, shared by all threads of the process) until which this broker may
 * acknowledge puts as master in controller mode. The replicas manager writes it whenever it opens,
 * renews or fences the writer; the writers of a stored put's answer read it as the answer leaves.
 *
 * Why a second check after the writer's own: a put the writer appended and answered under a valid lease
 * can still sit between threads (writer -> send processor -> socket) when the whole process is frozen
 * (SIGSTOP, a long GC or VM pause). After the freeze another broker may be master and this one must not
 * acknowledge anything, so whoever writes the answer (the broker's acceptor, or the LOCAL Proxy's
 * grpc-front) checks the lease again as it writes it (`leaseGuarded` answers, leaseGuardedAnswer); a put
 * past it is answered SERVICE_NOT_AVAILABLE (stored perhaps, not acknowledged: the client sends again).
 * The acceptor checks at the end of the tick, just before the writev that sends the tick's answers
 * (RemotingConnection.sendGuarded), so what is left there is that one system call; checking as each
 * answer arrived left a whole turn of checked answers to a freeze (test/node/fencing-process.test.ts
 * failed that way in 1 of 3 runs, 5 SUCCESS answers arriving after SIGCONT). The grpc-front checks as
 * it hands the answer to grpc-js.
 *
 * Cell values (BigInt64, read and written with Atomics): LEASE_NONE, no lease at all (not controller
 * mode: every answer passes); LEASE_CLOSED, fenced (no answer passes); else the deadline in ms.
 */

import { ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';

/** No lease: the broker is not in controller mode. */
export const LEASE_NONE = -1n;
/** Fenced: no put may be acknowledged. */
export const LEASE_CLOSED = 0n;

/** A new cell, holding LEASE_CLOSED (a controller-mode broker starts fenced). */
export function createMasterLease(): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(BigInt64Array.BYTES_PER_ELEMENT);
  Atomics.store(new BigInt64Array(buffer), 0, LEASE_CLOSED);
  return buffer;
}

/** Publishes a deadline (monotonic ms) or closes the lease. */
export function publishMasterLease(buffer: SharedArrayBuffer, untilMs: number | 'closed'): void {
  const value = untilMs === 'closed' ? LEASE_CLOSED : BigInt(Math.max(1, Math.floor(untilMs)));
  Atomics.store(new BigInt64Array(buffer), 0, value);
}

/** Whether a put may be acknowledged at `nowMs` (monotonic); always true without a cell. */
export function masterLeaseAllows(buffer: SharedArrayBuffer | undefined, nowMs: number): boolean {
  if (buffer === undefined) return true;
  const value = Atomics.load(new BigInt64Array(buffer), 0);
  if (value === LEASE_NONE) return true;
  return value !== LEASE_CLOSED && nowMs < Number(value);
}

/** A lease-guarded answer as it may leave at `nowMs` (monotonic): itself while the lease holds, else SERVICE_NOT_AVAILABLE. */
export function leaseGuardedAnswer(buffer: SharedArrayBuffer | undefined, response: RemotingCommand, nowMs: number): RemotingCommand {
  if (masterLeaseAllows(buffer, nowMs)) return response;
  return {
    code: ResponseCode.SERVICE_NOT_AVAILABLE,
    language: response.language,
    version: response.version,
    opaque: response.opaque,
    flag: response.flag,
    remark: 'the master lease ran out before the answer was written; the message is not acknowledged, send it again',
    extFields: {},
    serializeType: response.serializeType,
  };
}
