/** Timestamp and Duration conversions to and from milliseconds. */
import { describe, expect, it } from 'vitest';
import {
  durationFromMs,
  durationToMs,
  isValidDuration,
  isValidTimestamp,
  timestampFromMs,
  timestampToMs,
} from '../../../src/net/grpc/wire-time.ts';
import { pbDuration, pbTimestamp, secondsNanos } from './official-client.ts';

const SAMPLES_MS = [0, 1, 999, 1000, 1001, 1_700_000_000_123, -1, -999, -1000, -1001, -1_700_000_000_123, 8_640_000_000_000_000];

describe('Timestamp', () => {
  it('matches google-protobuf Timestamp.fromDate for the same instant', () => {
    for (const ms of SAMPLES_MS) expect(timestampFromMs(ms), String(ms)).toEqual(secondsNanos(pbTimestamp(ms)));
  });

  it('keeps nanos forward and in [0, 1e9): 1 ms before the epoch', () => {
    expect(timestampFromMs(-1)).toEqual({ seconds: -1, nanos: 999_000_000 });
  });

  it('round-trips milliseconds and drops sub-millisecond nanos by rounding down', () => {
    for (const ms of SAMPLES_MS) expect(timestampToMs(timestampFromMs(ms))).toBe(ms);
    expect(timestampToMs({ seconds: 10, nanos: 999_999 })).toBe(10_000);
    expect(timestampToMs({ seconds: -1, nanos: 999_999_999 })).toBe(-1);
  });

  it('flags malformed or out-of-range values from clients', () => {
    expect(isValidTimestamp({ seconds: 1_700_000_000, nanos: 0 })).toBe(true);
    expect(isValidTimestamp({ seconds: 1, nanos: -1 })).toBe(false);
    expect(isValidTimestamp({ seconds: 1, nanos: 1_000_000_000 })).toBe(false);
    expect(isValidTimestamp({ seconds: 2 ** 53, nanos: 0 })).toBe(false);
    expect(isValidTimestamp({ seconds: 9_007_199_254_740, nanos: 999_999_999 })).toBe(false);
    expect(isValidTimestamp({ seconds: 9_007_199_254_739, nanos: 999_999_999 })).toBe(true);
    expect(Number.isSafeInteger(timestampToMs({ seconds: 9_007_199_254_739, nanos: 999_999_999 }))).toBe(true);
  });

  it('refuses our own bad input', () => {
    expect(() => timestampFromMs(1.5)).toThrow(/safe integer/);
    expect(() => timestampFromMs(Number.NaN)).toThrow(/safe integer/);
  });
});

describe('Duration', () => {
  it('splits milliseconds into seconds and same-signed nanos', () => {
    expect(durationFromMs(1500)).toEqual({ seconds: 1, nanos: 500_000_000 });
    expect(durationFromMs(-1500)).toEqual({ seconds: -1, nanos: -500_000_000 });
    expect(durationFromMs(-500)).toStrictEqual({ seconds: 0, nanos: -500_000_000 });
    expect(Object.is(durationFromMs(-500).seconds, 0)).toBe(true);
    expect(durationFromMs(0)).toEqual({ seconds: 0, nanos: 0 });
  });

  it('reads google-protobuf Durations and round-trips milliseconds', () => {
    expect(durationToMs(secondsNanos(pbDuration(30)))).toBe(30_000);
    expect(durationToMs(secondsNanos(pbDuration(0, 10_000_000)))).toBe(10);
    for (const ms of SAMPLES_MS) expect(durationToMs(durationFromMs(ms))).toBe(ms);
    expect(durationToMs({ seconds: -1, nanos: -999_999 })).toBe(-1000);
  });

  it('flags malformed or out-of-range values from clients', () => {
    expect(isValidDuration({ seconds: 30, nanos: 0 })).toBe(true);
    expect(isValidDuration({ seconds: -1, nanos: -5 })).toBe(true);
    expect(isValidDuration({ seconds: 0, nanos: -5 })).toBe(true);
    expect(isValidDuration({ seconds: 1, nanos: -5 })).toBe(false);
    expect(isValidDuration({ seconds: -1, nanos: 5 })).toBe(false);
    expect(isValidDuration({ seconds: 0, nanos: 1_000_000_000 })).toBe(false);
    expect(isValidDuration({ seconds: 2 ** 60, nanos: 0 })).toBe(false);
  });
});
