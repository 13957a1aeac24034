/** Builds actor systems for tests: quiet logs, small bounds, no CPU pool unless asked. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { ActorSystem, defaultTuning, type ActorSystemOptions, type HostTuning } from '../../src/runtime/actor-system.ts';

/** Options for a test system; `overrides` replace any field, `tuning` any tuning knob. */
export function testSystemOptions(
  pools: Record<string, number>,
  overrides: Partial<ActorSystemOptions> = {},
  tuning: Partial<HostTuning> = {},
): ActorSystemOptions {
  return {
    pools,
    cpuThreads: 0,
    cpuQueueMax: 64,
    slotsMax: 1024,
    workerSupervision: { onFailure: 'restart', maxRestarts: 3, withinMs: 60_000 },
    tuning: { ...defaultTuning, askTimeoutMs: 2_000, ...tuning },
    logLevel: 'silent',
    log: pino({ level: 'silent' }),
    ...overrides,
  };
}

/** Starts a test system. */
export function startTestSystem(
  pools: Record<string, number>,
  overrides: Partial<ActorSystemOptions> = {},
  tuning: Partial<HostTuning> = {},
): Promise<ActorSystem> {
  return ActorSystem.start(testSystemOptions(pools, overrides, tuning));
}

/** Polls `probe` until it returns something other than undefined; throws after `timeoutMs`. */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 5_000, intervalMs = 2): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** One parsed pino line. */
export type LogLine = { readonly level: number; readonly msg: string; readonly [field: string]: unknown };

/** A pino logger whose lines are collected in memory, so tests can assert on what was logged. */
export function captureLog(level = 'info'): { readonly log: Logger; readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n')) if (text.length > 0) lines.push(JSON.parse(text) as LogLine);
      done();
    },
  });
  return { log: pino({ level }, sink), lines };
}
