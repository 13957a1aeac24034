/**
 * The master lease as every thread sees it: one SharedArrayBuffer holding the deadline (monotonic ms,
 * process.hrtime's time base, shared by all threads of the process) until which this broker may
 * acknowledge puts as master in controller mode. The replicas manager writes it whenever it opens,
 * renews or fences the writer; the send processors and the broker's acceptors read it before a stored
 * put's answer leaves.
 *
 * Why a second check after the writer's own: a put the writer appended and answered under a valid lease
 * can still sit between threads (writer -> send processor -> socket) when the whole process is frozen
 * (SIGSTOP, a long GC or VM pause). After the freeze another broker may be master and this one must not
 * acknowledge anything, so the send processor checks the lease again when the writer's answer arrives,
 * and the acceptor a last time as it writes the answer to the socket (`leaseGuarded` answers); a put past
 * it is answered SERVICE_NOT_AVAILABLE (stored perhaps, not acknowledged: the client sends again). What
 * is left is the time between the acceptor's check and the socket write, within one event-loop turn.
 *
 * Cell values (BigInt64, read and written with Atomics): LEASE_NONE, no lease at all (not controller
 * mode: every answer passes); LEASE_CLOSED, fenced (no answer passes); else the deadline in ms.
 */

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
