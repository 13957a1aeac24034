// Errors at the config boundary. They carry stable codes so the CLI can print them without a stack
// and tests can match on the code rather than on wording.

/** Stable codes of the config errors. */
export const CONFIG_ERROR_CODES = {
  invalid: 'CONFIG_INVALID',
  propertiesSyntax: 'PROPERTIES_SYNTAX_INVALID',
} as const;

/** A config value, file or flag that the node refuses; `key` names the offending key when there is one. */
export class ConfigError extends Error {
  /** Stable code of every config error. */
  readonly code = CONFIG_ERROR_CODES.invalid;
  /** The offending key, or undefined for problems with the file as a whole (unreadable, bad syntax). */
  readonly key: string | undefined;
  /** Every problem found, one sentence each; the message lists them all. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[], key: string | undefined, options?: { readonly cause?: unknown }) {
    super(problems.join('\n'), options);
    if (problems.length === 0) throw new RangeError('ConfigError needs at least one problem');
    this.name = 'ConfigError';
    this.key = key;
    this.problems = problems;
  }
}

/** A line of a properties file that cannot be read (today only a malformed `\uXXXX` escape). */
export class PropertiesSyntaxError extends Error {
  /** Stable code of properties syntax errors. */
  readonly code = CONFIG_ERROR_CODES.propertiesSyntax;
  /** 1-based number of the line where the bad logical line starts. */
  readonly line: number;

  constructor(line: number, detail: string) {
    super(`line ${line}: ${detail}`);
    this.name = 'PropertiesSyntaxError';
    this.line = line;
  }
}
