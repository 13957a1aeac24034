/**
 * google.protobuf.Timestamp and google.protobuf.Duration as our decoded messages carry them
 * (`{ seconds, nanos }`, int64 seconds as a number), and their conversion to and from milliseconds,
 * the unit the rest of rocketmq-ts uses.
 *
 * Rules from the well-known types: a Timestamp's nanos are always in [0, 1e9) and count forward from
 * `seconds` (so 1 ms before the epoch is { seconds: -1, nanos: 999_000_000 }); a Duration's nanos lie in
 * (-1e9, 1e9) and share the sign of `seconds`. Values from clients are untrusted: check them with
 * `isValidTimestamp` / `isValidDuration` before converting, and reply BAD_REQUEST (or the method's own
 * ILLEGAL_* code) when they fail. The *FromMs builders take our own values and assert on bad input.
 */
import { assert } from '../../runtime/assert.ts';
import type { Duration, Timestamp } from './messages.ts';

const NANOS_PER_MS = 1_000_000;
const MS_PER_SECOND = 1000;
const NANOS_PER_SECOND = 1_000_000_000;

/** Largest |seconds| whose value in milliseconds is still a safe integer. */
const SECONDS_ABS_MAX = Math.floor(Number.MAX_SAFE_INTEGER / MS_PER_SECOND) - 1;

/** True when `ts` is well formed and its value in milliseconds is a safe integer. */
export function isValidTimestamp(ts: Timestamp): boolean {
  return (
    Number.isInteger(ts.seconds) &&
    Math.abs(ts.seconds) <= SECONDS_ABS_MAX &&
    Number.isInteger(ts.nanos) &&
    ts.nanos >= 0 &&
    ts.nanos < NANOS_PER_SECOND
  );
}

/** True when `d` is well formed (nanos within range and of the same sign) and fits in safe milliseconds. */
export function isValidDuration(d: Duration): boolean {
  if (!Number.isInteger(d.seconds) || Math.abs(d.seconds) > SECONDS_ABS_MAX) return false;
  if (!Number.isInteger(d.nanos) || Math.abs(d.nanos) >= NANOS_PER_SECOND) return false;
  return d.seconds === 0 || d.nanos === 0 || d.seconds > 0 === d.nanos > 0;
}

/** Milliseconds since the epoch of a Timestamp (sub-millisecond nanos are dropped, rounding down). */
export function timestampToMs(ts: Timestamp): number {
  return ts.seconds * MS_PER_SECOND + Math.floor(ts.nanos / NANOS_PER_MS);
}

/** The Timestamp of `ms` milliseconds since the epoch. */
export function timestampFromMs(ms: number): Timestamp {
  assert(Number.isSafeInteger(ms), () => `timestamp ms must be a safe integer, got ${ms}`);
  const seconds = Math.floor(ms / MS_PER_SECOND);
  return { seconds, nanos: (ms - seconds * MS_PER_SECOND) * NANOS_PER_MS };
}

/** Milliseconds of a Duration (sub-millisecond nanos are dropped, rounding toward zero). */
export function durationToMs(d: Duration): number {
  return d.seconds * MS_PER_SECOND + Math.trunc(d.nanos / NANOS_PER_MS);
}

/** The Duration of `ms` milliseconds. */
export function durationFromMs(ms: number): Duration {
  assert(Number.isSafeInteger(ms), () => `duration ms must be a safe integer, got ${ms}`);
  const seconds = Math.trunc(ms / MS_PER_SECOND);
  // `+ 0` turns the -0 that a negative sub-second duration would give into 0.
  return { seconds: seconds + 0, nanos: (ms - seconds * MS_PER_SECOND) * NANOS_PER_MS + 0 };
}
