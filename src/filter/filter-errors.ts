// Errors of the message filters. An expression that does not compile is a bad request from the client
// (the broker answers SUBSCRIPTION_PARSE_FAILED), so the error carries a stable code and the position of
// the problem rather than a stack.

/** Stable codes of filter errors. */
export const FilterErrorCode = {
  /** The filter expression does not compile: bad syntax, a type rule, or a limit. */
  illegalExpression: 'ILLEGAL_FILTER_EXPRESSION',
} as const;

/** One of FilterErrorCode's values. */
export type FilterErrorCode = (typeof FilterErrorCode)[keyof typeof FilterErrorCode];

/** A filter expression that does not compile; the message names the line and column of the problem. */
export class FilterError extends Error {
  /** Stable machine-readable code. */
  readonly code: FilterErrorCode = FilterErrorCode.illegalExpression;
  override readonly name = 'FilterError';
  /** 0-based offset of the problem in the expression text, in UTF-16 code units. */
  readonly offset: number;
  /** 1-based line of the problem. */
  readonly line: number;
  /** 1-based column of the problem, in UTF-16 code units. */
  readonly column: number;
  /** What is wrong, without the position. */
  readonly detail: string;

  constructor(detail: string, offset: number, line: number, column: number) {
    super(`Illegal filter expression at line ${line}, column ${column}: ${detail}`);
    this.offset = offset;
    this.line = line;
    this.column = column;
    this.detail = detail;
  }
}

/** A FilterError for `offset` in `text`, with the line and column worked out (\n, \r and \r\n end lines). */
export function filterErrorAt(text: string, offset: number, detail: string): FilterError {
  const end = Math.max(0, Math.min(offset, text.length));
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) {
      line++;
      lineStart = i + 1;
    }
  }
  return new FilterError(detail, end, line, end - lineStart + 1);
}
