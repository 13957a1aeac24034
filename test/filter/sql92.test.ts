/**
 * The SQL92 filter as RocketMQ's broker applies it. Cases follow the behaviours that apache/rocketmq's
 * filter tests (ExpressionTest, ParserTest) pin down, plus the conversions and null rules of
 * ComparisonExpression that subscribers rely on; each expected outcome was checked against RocketMQ's own
 * parser and evaluator.
 */
import { describe, expect, it } from 'vitest';
import { FilterError } from '../../src/filter/filter-errors.ts';
import {
  ExpressionType,
  SQL92_DEPTH_MAX,
  SQL92_TEXT_LENGTH_MAX,
  compileSql92,
  isSql92,
  isTagType,
  type FilterOutcome,
  type MessageProperties,
} from '../../src/filter/sql92.ts';

function outcome(expression: string, properties: MessageProperties = {}): FilterOutcome {
  return compileSql92(expression).evaluate(properties);
}

function matches(expression: string, properties: MessageProperties = {}): boolean {
  return compileSql92(expression).matches(properties);
}

function compileError(expression: string): FilterError {
  try {
    compileSql92(expression);
  } catch (error) {
    expect(error).toBeInstanceOf(FilterError);
    expect((error as FilterError).code).toBe('ILLEGAL_FILTER_EXPRESSION');
    return error as FilterError;
  }
  throw new Error(`expected ${JSON.stringify(expression)} not to compile`);
}

describe('expression types', () => {
  it('selects SQL92 only for the exact name, and treats TAG, empty and absent as tag filters', () => {
    expect(isSql92(ExpressionType.SQL92)).toBe(true);
    expect(isSql92('sql92')).toBe(false);
    expect(isSql92('TAG')).toBe(false);
    expect(isSql92(undefined)).toBe(false);
    expect(isTagType('TAG')).toBe(true);
    expect(isTagType('')).toBe(true);
    expect(isTagType(null)).toBe(true);
    expect(isTagType(undefined)).toBe(true);
    expect(isTagType('SQL92')).toBe(false);
  });
});

describe('operators', () => {
  const andExpression = 'a=3 and b<>4 And c>5 AND d<=4';
  const orExpression = 'a=3 or b<>4 Or c>5 OR d<=4';

  it('AND needs every comparison', () => {
    expect(matches(andExpression, { a: '3', b: '5', c: '6', d: '1' })).toBe(true);
    expect(matches(andExpression, { a: '4', b: '5', c: '6', d: '1' })).toBe(false);
  });

  it('OR needs any comparison', () => {
    expect(matches(orExpression, { a: '3' })).toBe(true);
    expect(matches(orExpression, { a: '4', b: '5' })).toBe(true);
    expect(matches(orExpression, { a: '4', b: '4', c: '6' })).toBe(true);
    expect(matches(orExpression, { a: '4', b: '4', c: '3', d: '2' })).toBe(true);
    expect(matches(orExpression, { a: '4', b: '4', c: '3', d: '10' })).toBe(false);
  });

  it('compares with =, <>, >, >=, <, <=', () => {
    const properties = { n: '10' };
    expect(matches('n = 10', properties)).toBe(true);
    expect(matches('n <> 10', properties)).toBe(false);
    expect(matches('n > 9', properties)).toBe(true);
    expect(matches('n >= 10', properties)).toBe(true);
    expect(matches('n < 10', properties)).toBe(false);
    expect(matches('n <= 10', properties)).toBe(true);
    expect(matches('n < -1', { n: '-2' })).toBe(true);
  });

  it('IN and NOT IN test a property against string literals', () => {
    for (const a of ['3', '4', '5']) expect(matches("a in ('3', '4', '5')", { a })).toBe(true);
    expect(matches("a in ('3', '4', '5')", { a: '8' })).toBe(false);
    expect(matches("a not in ('3', '4', '5')", { a: '8' })).toBe(true);
    expect(matches("a not in ('3', '4', '5')", { a: '4' })).toBe(false);
    expect(matches("(a) IN ('x')", { a: 'x' })).toBe(true);
  });

  it('BETWEEN includes both bounds; NOT BETWEEN is the outside', () => {
    for (const a of ['2', '3', '10']) expect(matches('a between 2 and 10', { a })).toBe(true);
    for (const a of ['1', '11']) expect(matches('a between 2 and 10', { a })).toBe(false);
    for (const a of ['1', '11']) expect(matches('a not between 2 and 10', { a })).toBe(true);
    for (const a of ['2', '3', '10']) expect(matches('a not between 2 and 10', { a })).toBe(false);
    expect(matches('a BETWEEN 1 AND 2.5', { a: '2' })).toBe(true);
  });

  it('IS NULL and IS NOT NULL test presence', () => {
    expect(matches('a is null', { abc: '2' })).toBe(true);
    expect(matches('a is null', { a: '2' })).toBe(false);
    expect(matches('a is not null', { a: '2' })).toBe(true);
    expect(matches('a is not null', { abc: '2' })).toBe(false);
    expect(matches("a is not null and a='hello'", { a: 'hello' })).toBe(true);
    expect(matches("a is not null and a='hello'", {})).toBe(false);
  });

  it('compares a property with TRUE and FALSE by reading it as Java Boolean.valueOf does', () => {
    expect(matches('a=TRUE OR b=FALSE', { a: 'true', b: 'false' })).toBe(true);
    expect(matches('a=TRUE OR b=FALSE', { a: 'false', b: 'true' })).toBe(false);
    expect(matches('a = TRUE', { a: 'TRUE' })).toBe(true);
    expect(matches('a = FALSE', { a: 'yes' })).toBe(true);
  });

  it('reads quotes doubled inside a string literal as one quote', () => {
    expect(matches("TAGS is not null and TAGS='''''tag'''''", { TAGS: "''tag''" })).toBe(true);
    expect(matches("a = 'it''s'", { a: "it's" })).toBe(true);
  });

  it('CONTAINS, STARTSWITH and ENDSWITH test substrings, NOT variants their absence', () => {
    const properties = { value: 'axb' };
    expect(matches("value contains 'x'", properties)).toBe(true);
    expect(matches("value startswith 'ax'", properties)).toBe(true);
    expect(matches("value endswith 'xb'", properties)).toBe(true);
    expect(matches("value not contains 'x'", properties)).toBe(false);
    expect(matches("value not startswith 'ax'", properties)).toBe(false);
    expect(matches("value not endswith 'xb'", properties)).toBe(false);
    expect(matches("value contains 'u'", properties)).toBe(false);
    expect(matches("value not contains 'u'", properties)).toBe(true);
    expect(matches("'axb' startswith 'ax'", {})).toBe(true);
    expect(matches("' ' endswith ' '", {})).toBe(true);
    expect(matches("'axb' contains '.'", {})).toBe(false);
  });

  it('CONTAINS and kin are FALSE for an empty search or a missing property, NOT variants included', () => {
    for (const test of ['contains', 'startswith', 'endswith']) {
      expect(outcome(`value ${test} ''`, { value: 'axb' })).toBe(false);
      expect(outcome(`value not ${test} ''`, { value: 'axb' })).toBe(false);
      expect(outcome(`value ${test} 'x'`, {})).toBe(false);
      expect(outcome(`value not ${test} 'x'`, {})).toBe(false);
    }
  });

  it('combines everything in one expression', () => {
    const properties = { a: '3', b: '3', c: 'axbdc' };
    expect(matches("a not in ('4', '4', '5') and b between 3 and 10 and c not contains 'axbc'", properties)).toBe(true);
    expect(matches("a not in ('4', '4', '5') and b between 3 and 10 and c not startswith 'axbc'", properties)).toBe(true);
    expect(matches("a not in ('4', '4', '5') and b between 3 and 10 and c not endswith 'axbc'", properties)).toBe(true);
  });

  it('finds the tag in the TAGS property like any other property', () => {
    const filter = compileSql92("TAGS IN ('TagA', 'TagB') AND region = 'eu'");
    expect(filter.matches(new Map([['TAGS', 'TagB'], ['region', 'eu']]))).toBe(true);
    expect(filter.matches(new Map([['TAGS', 'TagC'], ['region', 'eu']]))).toBe(false);
  });
});

describe('null and unknown', () => {
  it('makes a comparison with a missing property unknown, and unknown never matches', () => {
    expect(outcome('a > 1')).toBe(null);
    expect(outcome("a = 'x'")).toBe(null);
    expect(outcome("a <> 'x'")).toBe(null);
    expect(outcome("NOT (a = 'x')")).toBe(null);
    expect(outcome("a NOT IN ('x')")).toBe(null);
    expect(matches("NOT (a = 'x')")).toBe(false);
  });

  it('follows three-valued logic in AND and OR', () => {
    expect(outcome("a = 'x' OR TRUE")).toBe(true);
    expect(outcome("a = 'x' OR FALSE")).toBe(null);
    expect(outcome("a = 'x' AND FALSE")).toBe(false);
    expect(outcome("a = 'x' AND TRUE")).toBe(null);
    expect(matches("a is null OR a='hello'", {})).toBe(true);
    expect(matches("a is null OR a='hello'", { a: 'hello' })).toBe(true);
    expect(matches("a is null OR a='hello'", { a: 'abc' })).toBe(false);
  });

  it("treats a null right side of '=' as FALSE and two nulls as equal, as ComparisonExpression does", () => {
    expect(outcome("'x' = a")).toBe(false);
    expect(outcome("'x' <> a")).toBe(true);
    expect(outcome('a = b')).toBe(true);
    expect(outcome('a <> b')).toBe(false);
  });

  it('reads a bare property as a condition that is FALSE when present and unknown when absent', () => {
    expect(outcome('a', { a: 'true' })).toBe(false);
    expect(outcome('a')).toBe(null);
    expect(outcome('NOT a', { a: 'x' })).toBe(true);
    expect(outcome('NULL')).toBe(null);
    expect(outcome('TRUE')).toBe(true);
  });
});

describe('numbers and strings', () => {
  it('converts a property to the type of the number it meets: Integer, Long or Double', () => {
    expect(matches('a > 5.0', { a: '5.5' })).toBe(true);
    expect(outcome('a > 5', { a: '5.5' })).toBe('error');
    expect(outcome('a > 5', { a: '3000000000' })).toBe('error');
    expect(outcome('a > 3000000000', { a: '5' })).toBe(false);
    expect(matches('a = 5', { a: '5' })).toBe(true);
    expect(matches('a = 5', { a: '+5' })).toBe(true);
    expect(outcome('a = 5', { a: ' 5' })).toBe('error');
    expect(matches('a = 1.0', { a: '1' })).toBe(true);
    expect(matches('a = 5L', { a: '5' })).toBe(true);
    expect(matches('a <= 2147483648', { a: '2147483648' })).toBe(true);
    expect(matches('a > 9223372036854775806', { a: '9223372036854775807' })).toBe(true);
  });

  it('accepts what Java accepts: Unicode digits for integers; blanks, NaN and suffixes for doubles', () => {
    expect(matches('a > 5', { a: '\u0666' })).toBe(true);
    expect(outcome('a > 5.0', { a: '\u0666' })).toBe('error');
    expect(matches('a > 5.0', { a: ' 6 ' })).toBe(true);
    expect(matches('a > 1.0', { a: '1.5f' })).toBe(true);
    expect(matches('a > 7.0', { a: '0x1p3' })).toBe(true);
    expect(matches('a > 1.0E300', { a: 'NaN' })).toBe(true);
  });

  it('compares two properties under > and < as doubles, under = as strings', () => {
    expect(matches('a > b', { a: '20', b: '10' })).toBe(true);
    expect(matches('a > b', { a: '10', b: '20' })).toBe(false);
    expect(outcome('a > b', { a: 'x', b: '1' })).toBe('error');
    expect(matches('a = b', { a: '3.14', b: '3.14' })).toBe(true);
    expect(matches('a = b', { a: '3.14', b: '3.140' })).toBe(false);
    expect(matches('a <> b', { a: '3.14', b: '3.141' })).toBe(true);
  });

  it('handles exponents and fractions in literals', () => {
    expect(matches('a > 3.1E10', { a: String(3.1415 * 10 ** 10) })).toBe(true);
    expect(matches('a > 3.14', { a: '3.1415' })).toBe(true);
    expect(matches('a = .5', { a: '0.5' })).toBe(true);
    expect(matches('a = 007.5', { a: '7.5' })).toBe(true);
  });

  it('fails the whole evaluation where a conversion fails, in evaluation order', () => {
    expect(outcome("a = 5 OR b = 'x'", { a: 'abc', b: 'x' })).toBe('error');
    expect(outcome("b = 'x' OR a = 5", { a: 'abc', b: 'x' })).toBe(true);
    expect(outcome('key is not null and key between 0 and 100', { key: 'con' })).toBe('error');
    expect(matches('NOT (a = 5)', { a: 'abc' })).toBe(false);
    expect(outcome("TRUE = a", { a: 'true' })).toBe('error');
  });

  it('negates numbers and makes anything else unknown', () => {
    expect(matches('a = -5', { a: '-5' })).toBe(true);
    expect(matches('a BETWEEN -10 AND -5', { a: '-7' })).toBe(true);
    expect(outcome('a > -b', { a: '1', b: '2' })).toBe(null);
    expect(outcome("a = -'x'", { a: 'x' })).toBe(false);
  });
});

describe('precedence and syntax', () => {
  it('binds AND tighter than OR', () => {
    expect(matches('a = 1 OR b = 1 AND c = 1', { a: '1' })).toBe(true);
    expect(matches('(a = 1 OR b = 1) AND c = 1', { a: '1' })).toBe(false);
  });

  it('binds NOT tighter than comparisons, as in RocketMQ', () => {
    // (NOT a) = 'x' compares a Boolean with a string: RocketMQ's evaluation throws, so it never matches.
    expect(outcome("NOT a = 'x'", { a: 'y' })).toBe('error');
    expect(matches("NOT (a = 'x')", { a: 'y' })).toBe(true);
    expect(outcome('NOT a IS NULL')).toBe(true);
    expect(compileError('NOT a > 1').column).toBe(7);
  });

  it("takes a comparison as the right side of '='", () => {
    // x = (5 CONTAINS ''): the CONTAINS is FALSE, and Boolean.valueOf('q') is false too.
    expect(matches("x = 5 CONTAINS ''", { x: 'q' })).toBe(true);
    expect(matches('a = 1 = TRUE', { a: '1' })).toBe(true);
    expect(outcome('a IS NULL IS NULL')).toBe(false);
  });

  it('reads keywords in any case', () => {
    expect(matches("a iN ('1') aNd b BeTwEeN 1 AnD 3 oR c Is NoT nUlL", { a: '1', b: '2' })).toBe(true);
    expect(matches('a = tRuE', { a: 'true' })).toBe(true);
    expect(matches("v StartsWith 'a' and v ENDSWITH 'c' and v contains 'b'", { v: 'abc' })).toBe(true);
  });

  it('takes identifiers of letters, digits, _ and $, case-sensitive', () => {
    expect(matches("A$_9 = 'x'", { A$_9: 'x' })).toBe(true);
    expect(matches('$a = 1 AND _b = 2', { $a: '1', _b: '2' })).toBe(true);
    expect(matches("key = 'x'", { KEY: 'x' })).toBe(false);
  });

  it('skips whitespace and comments', () => {
    expect(matches("a = 1 /* block\n comment */ AND\r\n\tb = 2 -- line comment\n", { a: '1', b: '2' })).toBe(true);
    expect(matches('a = 1 --\rAND b = 2', { a: '1', b: '2' })).toBe(true);
  });

  it("reads '--' as two minus signs when no line break follows, as RocketMQ's lexer does", () => {
    expect(matches('a = --b', { a: 'x' })).toBe(false);
    expect(matches('a < --5', { a: '4' })).toBe(true);
    const error = compileError('a = 1 -- trailing note');
    expect(error.message).toContain("'--' starts a comment only when a line break follows");
  });

  it('reads properties from a Map or from an object, own keys only', () => {
    expect(matches('constructor IS NULL AND __proto__ IS NULL AND toString IS NULL', {})).toBe(true);
    expect(matches("__proto__ = 'x'", new Map([['__proto__', 'x']]))).toBe(true);
  });

  it('returns a frozen filter that can be reused for any number of messages', () => {
    const filter = compileSql92("region = 'eu'");
    expect(Object.isFrozen(filter)).toBe(true);
    expect(filter.expression).toBe("region = 'eu'");
    expect(filter.matches({ region: 'eu' })).toBe(true);
    expect(filter.matches({ region: 'us' })).toBe(false);
    expect(filter.matches({ region: 'eu' })).toBe(true);
  });
});

describe('compile errors', () => {
  it.each([
    ['', 1, 'expected a value'],
    ['a and between 2 and 10', 7, 'expected a value'],
    ["a = 'unclosed", 5, 'string not closed'],
    ['a = 1 /* unclosed', 7, 'comment not closed'],
    ['a == 1', 4, 'expected a value'],
    ['a != 1', 3, "unexpected character '!'"],
    ['a = 1 )', 7, 'after a complete expression'],
    ['a = 1 b = 2', 7, 'after a complete expression'],
    ['a = 01', 6, 'after a complete expression'],
    ['a IS b', 6, 'NULL or NOT NULL after IS'],
    ['a NOT b', 7, 'after NOT'],
    ["value contains x", 16, 'expected a string after CONTAINS'],
    ["value not contains 123", 20, 'expected a string after CONTAINS'],
    ["'axb' contains ", 16, 'expected a string'],
    ['a IN ()', 7, 'expected a string after IN ('],
    ["a IN ('x' 'y')", 11, "',' or ')'"],
    ['a BETWEEN 1 2', 13, 'AND between the bounds'],
    ["'x'", 1, "'x' is not a condition"],
    ['5', 1, '5 is not a condition'],
    ['-a', 1, 'a negation is not a condition'],
    ['NOT 5', 5, '5 is not a condition'],
    ['a AND 5', 7, '5 is not a condition'],
    ["a > 'x'", 3, "'x' cannot be compared with '>'"],
    ['a > TRUE', 3, "TRUE cannot be compared with '>'"],
    ["(a = 'x') > 1", 11, "a comparison cannot be compared with '>'"],
    ['a = NULL', 3, 'use IS NULL'],
    ['TRUE = 1', 6, 'TRUE cannot be compared with 1'],
    ["'x' IN ('x')", 5, 'IN needs a property'],
    ['a between 10 and 0', 3, 'lower bound first'],
    ['a > 0.0', 5, 'is zero'],
    ['a > 1e400', 5, 'is larger than'],
    ['a > 9223372036854775808', 5, 'is larger than 9223372036854775807'],
    ['a = 1 \u000b AND b = 2', 7, 'unexpected character (U+000B)'],
    ['a = 1 AND\nb = 2 AND\n  c = ', 7, 'expected a value'],
  ])('refuses %j at column %i', (expression, column, detail) => {
    const error = compileError(expression);
    expect(error.column).toBe(column);
    expect(error.detail).toContain(detail);
    expect(error.message).toContain(`column ${column}`);
  });

  it('names the line as well as the column', () => {
    const error = compileError("a = 1 AND\r\nb = 2 AND\n  c = 'x' OR");
    expect(error.line).toBe(3);
    expect(error.column).toBe(13);
    expect(error.offset).toBe(33);
    expect(error.message).toMatch(/^Illegal filter expression at line 3, column 13: /);
  });

  it('accepts BETWEEN bounds that are not both literals without checking their order', () => {
    expect(matches('a BETWEEN -5 AND -10', { a: '2' })).toBe(false);
    expect(matches('a NOT BETWEEN 10 AND 0', { a: '5' })).toBe(true);
  });
});

describe('limits', () => {
  it('refuses text longer than the limit', () => {
    const long = `a = '${'x'.repeat(SQL92_TEXT_LENGTH_MAX)}'`;
    const error = compileError(long);
    expect(error.offset).toBe(SQL92_TEXT_LENGTH_MAX);
    expect(error.detail).toContain(`longer than ${SQL92_TEXT_LENGTH_MAX}`);
    expect(() => compileSql92(long, { textLengthMax: long.length })).not.toThrow();
  });

  it('refuses nesting deeper than the limit, for parentheses, prefix operators and chains', () => {
    const parens = (n: number) => `${'('.repeat(n)}a = 1${')'.repeat(n)}`;
    expect(matches(parens(SQL92_DEPTH_MAX - 4), { a: '1' })).toBe(true);
    expect(compileError(parens(SQL92_DEPTH_MAX + 1)).detail).toContain(`deeper than ${SQL92_DEPTH_MAX}`);
    expect(compileError(`${'NOT '.repeat(1_000)}a`).detail).toContain('deeper than');
    expect(compileError(`a = ${'-'.repeat(1_000)}1`).detail).toContain('deeper than');
    expect(compileError(`a = 1${' = TRUE'.repeat(100)}`).detail).toContain('deeper than');
    expect(compileError(`${'('.repeat(2_000)}`).detail).toContain('deeper than');
    expect(() => compileSql92(parens(10), { depthMax: 5 })).toThrow(FilterError);
  });

  it('keeps long AND and OR lists flat, so they are not nesting', () => {
    const alternatives = Array.from({ length: 300 }, (_, i) => `a = ${i}`).join(' OR ');
    expect(matches(alternatives, { a: '299' })).toBe(true);
    expect(matches(alternatives, { a: '300' })).toBe(false);
  });
});
