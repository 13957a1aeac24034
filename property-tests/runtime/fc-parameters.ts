/**
 * fast-check parameters shared by the runtime's property tests. The seed is printed before the first run
 * (a run that hangs until the test's timeout never reaches fast-check's own report), and FC_SEED / FC_PATH
 * replay a failure; pick the failing property with -t, since the variables apply to every property run:
 * `FC_SEED=123 FC_PATH=4:1 vitest run property-tests/runtime/fifo.property.test.ts -t 'per-sender FIFO'`.
 */
import type { Parameters } from 'fast-check';

/** Parameters for `fc.assert` with a printed, replayable seed. */
export function replayableParameters<T>(property: string, numRuns: number): Parameters<T> {
  const fromEnv = process.env['FC_SEED'];
  const seed = fromEnv !== undefined ? Number(fromEnv) : (Date.now() ^ Math.floor(Math.random() * 2 ** 31)) | 0;
  const path = process.env['FC_PATH'];
  console.log(`[${property}] fast-check seed ${seed}${path !== undefined ? ` path ${path}` : ''} (replay: FC_SEED=${seed})`);
  return path !== undefined ? { seed, path, numRuns, endOnFailure: true } : { seed, numRuns };
}
