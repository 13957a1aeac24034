/** Builds actor systems for tests: quiet logs, small bounds, no CPU pool unless asked. */
import { pino } from 'pino';
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
