/**
 * Assertions that stay on in production. A failed assertion is a programmer error: it throws, the actor
 * that hit it crashes, and its supervisor restarts it from durable state.
 */

/** Error thrown when an invariant does not hold; `code` is stable for callers and logs. */
export class AssertionError extends Error {
  /** Stable machine-readable code. */
  readonly code = 'ASSERTION_FAILED';
  override readonly name = 'AssertionError';
}

/**
 * Throws an AssertionError carrying `message` unless `condition` holds. A message that formats values is
 * passed as a function, so that it is built only when the assertion fails: the store's hot paths assert
 * per record, and formatting numbers into strings for assertions that pass showed up in their profiles.
 */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionError(typeof message === 'string' ? message : message());
}

/** Marks a branch that a `switch` over a discriminated union must never reach. */
export function assertNever(value: never, what: string): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
