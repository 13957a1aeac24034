/**
 * RocketMQ's SQL92 message filter (expression type `SQL92`): a hand-written lexer, a recursive-descent
 * parser that applies RocketMQ's compile-time type rules, and a compiler to closures that evaluate a
 * message's properties the way RocketMQ's broker does. Pure: a CompiledFilter can be cached and shared.
 *
 * Sources (apache/rocketmq 5.x, module `filter`): the grammar is parser/SelectorParser.jj (CONTAINS,
 * STARTSWITH and ENDSWITH exist since 5.1.3); the values and comparisons follow expression/
 * ComparisonExpression, LogicExpression, UnaryExpression, ConstantExpression, BooleanConstantExpression and
 * PropertyExpression; the broker side is broker/filter/ExpressionMessageFilter and MessageEvaluationContext.
 *
 * Grammar, loosest first (each binary level is left-associative):
 *
 *   or         := and ( OR and )*
 *   and        := equality ( AND equality )*
 *   equality   := comparison ( '=' comparison | '<>' comparison | IS NULL | IS NOT NULL )*
 *   comparison := unary ( ('>' | '>=' | '<' | '<=') unary
 *                       | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string
 *                       | [NOT] BETWEEN unary AND unary
 *                       | [NOT] IN '(' string ( ',' string )* ')' )*
 *   unary      := '+' unary | '-' unary | NOT unary | primary
 *   primary    := string | integer | decimal | TRUE | FALSE | NULL | identifier | '(' or ')'
 *
 * So NOT binds tighter than any comparison: `NOT a = 'x'` is `(NOT a) = 'x'`; write `NOT (a = 'x')`.
 * Keywords are case-insensitive and reserved. Identifiers are ASCII: [A-Za-z_$][A-Za-z0-9_$]*. Strings
 * are single-quoted with '' for a quote. Integers are 0 or [1-9][0-9]* with an optional L, at most
 * Long.MAX_VALUE; decimals are 1.5, 1., .5, 1e5, 1.5E-3 and must be finite and non-zero. Whitespace is
 * space, tab, CR, LF and form feed. Comments are C-style, or `--` up to a line break; with no line break
 * after it, `--` is two minus signs, as in RocketMQ's lexer.
 *
 * Values are RocketMQ's Java types: null, Boolean, String, Integer (literals that fit 32 bits), Long and
 * Double. A property's value is its string, or null when the message lacks it. Comparisons convert as
 * ComparisonExpression does: a string against a number is parsed with Integer.valueOf, Long.valueOf or
 * Double.valueOf after the number's type (so `a > 5` fails on "5.5" while `a > 5.0` does not), two strings
 * under >, >=, <, <= are both parsed as doubles, and a string against TRUE/FALSE is read with
 * Boolean.valueOf. A conversion that fails makes the whole evaluation fail, and the broker then does not
 * deliver the message. Unknown (null) follows three-valued logic; a message matches only when the
 * expression evaluates to TRUE.
 *
 * Deliberate differences from RocketMQ, both stricter: text after a complete expression is an error
 * (RocketMQ's JavaCC grammar has no end-of-input rule and silently ignores it, so `a = 1 b = 2` means
 * `a = 1` there), and the text length and nesting depth are bounded.
 */
import { AssertionError, assert, assertNever } from '../runtime/assert.ts';
import { filterErrorAt } from './filter-errors.ts';

export { FilterError, FilterErrorCode } from './filter-errors.ts';

// ---------------------------------------------------------------------------------------------------
// Constants and the public surface

/** RocketMQ's ExpressionType names (common/filter/ExpressionType.java). */
export const ExpressionType = {
  /** Tag filter: `tagA || tagB`, or `*` for all. */
  TAG: 'TAG',
  /** SQL92 filter over message properties. */
  SQL92: 'SQL92',
} as const;

/** Longest expression text accepted by default, in UTF-16 code units. */
export const SQL92_TEXT_LENGTH_MAX = 4096;
/** Deepest nesting accepted by default: parentheses and prefix operators, and the height of the tree. */
export const SQL92_DEPTH_MAX = 64;

/** Bounds on what compileSql92 accepts. */
export type Sql92Limits = {
  /** Longest expression text, in UTF-16 code units. */
  readonly textLengthMax?: number;
  /** Deepest nesting of parentheses and prefix operators, and the greatest height of the expression tree. */
  readonly depthMax?: number;
};

/** A message's properties as the broker decoded them; the tag is the `TAGS` property. */
export type MessageProperties = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

/** How an expression came out: TRUE, FALSE, unknown (null), or 'error' when a conversion failed. */
export type FilterOutcome = boolean | null | 'error';

/** A compiled SQL92 expression; pure, so one instance can serve every message and every thread. */
export type CompiledFilter = {
  /** The expression text it was compiled from. */
  readonly expression: string;
  /** True only when the expression evaluates to TRUE for these properties, as RocketMQ's broker decides. */
  matches(properties: MessageProperties): boolean;
  /** The three-valued result, or 'error' where RocketMQ's evaluation throws (the broker then skips). */
  evaluate(properties: MessageProperties): FilterOutcome;
};

/** True for the expression types RocketMQ treats as tag filters: TAG, empty or absent. */
export function isTagType(expressionType: string | null | undefined): boolean {
  return expressionType === undefined || expressionType === null || expressionType === '' || expressionType === ExpressionType.TAG;
}

/** True when a subscription's expression type selects the SQL92 filter (exact, case-sensitive, as in RocketMQ). */
export function isSql92(expressionType: string | null | undefined): boolean {
  return expressionType === ExpressionType.SQL92;
}

/** Compiles SQL92 filter text; throws FilterError (code ILLEGAL_FILTER_EXPRESSION) when it does not compile. */
export function compileSql92(text: string, limits?: Sql92Limits): CompiledFilter {
  const textLengthMax = limits?.textLengthMax ?? SQL92_TEXT_LENGTH_MAX;
  const depthMax = limits?.depthMax ?? SQL92_DEPTH_MAX;
  assert(Number.isInteger(textLengthMax) && textLengthMax > 0, () => `textLengthMax must be a positive integer: ${textLengthMax}`);
  assert(Number.isInteger(depthMax) && depthMax > 0, () => `depthMax must be a positive integer: ${depthMax}`);
  if (text.length > textLengthMax) {
    throw filterErrorAt(text, textLengthMax, `expression longer than ${textLengthMax} characters`);
  }
  const tokens = tokenize(text);
  const root = new Parser(text, tokens, depthMax).parseFilter();
  const evaluator = compileBoolean(root);
  const evaluate = (properties: MessageProperties): FilterOutcome => {
    const outcome = evaluator(lookupOf(properties));
    return outcome === FAILED ? 'error' : outcome;
  };
  return Object.freeze({
    expression: text,
    evaluate,
    matches: (properties: MessageProperties): boolean => evaluate(properties) === true,
  });
}

// ---------------------------------------------------------------------------------------------------
// Values: RocketMQ's Java types and its conversions

/** A Java number; the kind decides how a string is converted to compare with it. */
type JavaNumber =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'long'; readonly value: bigint }
  | { readonly kind: 'double'; readonly value: number };

/** A value during evaluation: Java's null, Boolean, String, or a number. */
type Value = null | boolean | string | JavaNumber;

/** Where RocketMQ's evaluation throws (a failed conversion, a Boolean cast to String). */
const FAILED: unique symbol = Symbol('sql92 evaluation failed');
type Failed = typeof FAILED;

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;
/** Java's Double.MAX_VALUE; decimal literals above it are rejected. */
const DOUBLE_MAX = Number.MAX_VALUE;

/** The decimal digit value of a UTF-16 code unit as Java's Character.digit(c, 10) sees it, or -1. */
function javaDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code < 0x80) return -1;
  // Unicode encodes every decimal digit set as ten consecutive code points, zero first; runs of sets
  // can touch, so the value is the distance from the start of the run, modulo ten.
  if (!isDecimalDigit(code)) return -1;
  let start = code;
  while (start > 0x80 && isDecimalDigit(start - 1)) start--;
  return (code - start) % 10;
}

const DECIMAL_DIGIT = /^\p{Nd}$/u;

function isDecimalDigit(code: number): boolean {
  // Lone surrogates are never digits; Java reads a string char by char, so astral digits are not either.
  return code < 0xd800 || code > 0xdfff ? DECIMAL_DIGIT.test(String.fromCharCode(code)) : false;
}

/** Java's Integer.valueOf / Long.valueOf of a string: optional sign, Unicode digits, no blanks; undefined on failure. */
function javaParseIntegral(text: string, kind: 'int' | 'long'): JavaNumber | undefined {
  const length = text.length;
  if (length === 0) return undefined;
  let start = 0;
  let negative = false;
  const first = text.charCodeAt(0);
  if (first < 0x30) {
    if (first === 0x2d) negative = true;
    else if (first !== 0x2b) return undefined;
    if (length === 1) return undefined;
    start = 1;
  }
  // Java fails on the first bad digit or on overflow; both fail here too, so stop at whichever comes first.
  const digitsMax = kind === 'int' ? 10 : 19;
  let digits = '';
  for (let i = start; i < length; i++) {
    const digit = javaDigit(text.charCodeAt(i));
    if (digit < 0) return undefined;
    if (digit === 0 && digits.length === 0) continue;
    digits += String(digit);
    if (digits.length > digitsMax) return undefined;
  }
  if (kind === 'int') {
    const magnitude = Number(digits === '' ? '0' : digits);
    if (magnitude > (negative ? -INT_MIN : INT_MAX)) return undefined;
    return { kind: 'int', value: (negative ? -magnitude : magnitude) | 0 };
  }
  const magnitude = BigInt(digits === '' ? '0' : digits);
  if (magnitude > (negative ? -LONG_MIN : LONG_MAX)) return undefined;
  return { kind: 'long', value: negative ? -magnitude : magnitude };
}

// Each pattern has one way to match a string, so hostile property values cannot make them backtrack.
const JAVA_DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?$/;
const JAVA_SPECIAL = /^([+-]?)(NaN|Infinity)$/;
const JAVA_HEX = /^([+-]?)0[xX](?:([0-9a-fA-F]+)(?:\.([0-9a-fA-F]*))?|\.([0-9a-fA-F]+))[pP]([+-]?[0-9]+)[fFdD]?$/;

/** Java's Double.valueOf of a string: trims chars <= U+0020, takes NaN, Infinity, hex and a f/d suffix. */
function javaParseDouble(raw: string): number | undefined {
  let start = 0;
  let end = raw.length;
  while (start < end && raw.charCodeAt(start) <= 0x20) start++;
  while (end > start && raw.charCodeAt(end - 1) <= 0x20) end--;
  const text = raw.slice(start, end);
  if (JAVA_DECIMAL.test(text)) {
    const last = text.charCodeAt(text.length - 1);
    return Number(last > 0x39 ? text.slice(0, -1) : text);
  }
  const special = JAVA_SPECIAL.exec(text);
  if (special !== null) {
    const value = special[2] === 'NaN' ? Number.NaN : Number.POSITIVE_INFINITY;
    return special[1] === '-' ? -value : value;
  }
  const hex = JAVA_HEX.exec(text);
  if (hex === null) return undefined;
  const magnitude = hexToDouble(`${hex[2] ?? ''}${hex[3] ?? hex[4] ?? ''}`, (hex[3] ?? hex[4] ?? '').length, Number(hex[5]));
  return hex[1] === '-' ? -magnitude : magnitude;
}

/** 0x<digits> * 2^(binaryExponent - 4 * fractionDigits), rounded once to the nearest double (ties to even). */
function hexToDouble(hexDigits: string, fractionDigits: number, binaryExponent: number): number {
  const significant = hexDigits.replace(/^0+/, '');
  if (significant === '') return 0;
  // 16 hex digits are 61 or more bits, beyond the 54 that rounding looks at; what follows only decides
  // whether the discarded part is zero, so it folds into one sticky bit.
  const kept = significant.slice(0, 16);
  const dropped = significant.length - kept.length;
  const sticky = dropped > 0 && /[^0]/.test(significant.slice(16)) ? 1n : 0n;
  const mantissa = (BigInt(`0x${kept}`) << 1n) | sticky;
  const exponent = binaryExponent - 4 * fractionDigits + 4 * dropped - 1;
  const bits = 4 * (kept.length - 1) + 32 - Math.clz32(Number.parseInt(kept[0]!, 16)) + 1;
  const top = bits - 1 + exponent; // the exponent of the leading bit
  if (top > 1023) return Number.POSITIVE_INFINITY;
  if (top < -1075) return 0; // below half of Double.MIN_VALUE
  const precision = top >= -1022 ? 53 : 53 - (-1022 - top);
  const shift = bits - precision;
  if (shift <= 0) return Number(mantissa) * 2 ** exponent;
  const big = BigInt(shift);
  let rounded = mantissa >> big;
  const rest = mantissa - (rounded << big);
  const half = 1n << (big - 1n);
  if (rest > half || (rest === half && (rounded & 1n) === 1n)) rounded += 1n;
  // rounded <= 2^53 and the scale lies in [-1074, 971], so both factors and the product are exact.
  return Number(rounded) * 2 ** (exponent + shift);
}

/** Java's Double.compareTo: -0.0 below 0.0, NaN equal to itself and above everything. */
function compareDoubles(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  if (aNaN || bNaN) return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
  if (a === 0 && b === 0) {
    const aNegative = Object.is(a, -0);
    const bNegative = Object.is(b, -0);
    return aNegative === bNegative ? 0 : aNegative ? -1 : 1;
  }
  return 0;
}

function sign<T extends number | bigint | string>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Java's widening between two numbers: double wins, then long; Integer against Integer stays exact. */
function compareNumbers(a: JavaNumber, b: JavaNumber): number {
  if (a.kind === 'double' || b.kind === 'double') return compareDoubles(Number(a.value), Number(b.value));
  if (a.kind === 'int' && b.kind === 'int') return sign(a.value, b.value);
  return sign(BigInt(a.value), BigInt(b.value));
}

/** The string read as the given number's Java type, as ComparisonExpression converts it; undefined on failure. */
function convertString(text: string, like: JavaNumber): JavaNumber | undefined {
  if (like.kind !== 'double') return javaParseIntegral(text, like.kind);
  const value = javaParseDouble(text);
  return value === undefined ? undefined : { kind: 'double', value };
}

/** Java's Boolean.valueOf(String): "true" in any case is TRUE, anything else FALSE. */
function javaBooleanOf(text: string): boolean {
  return text.length === 4 && text.toLowerCase() === 'true';
}

/**
 * ComparisonExpression.__compare with string conversion on, for two non-null values: same types compare
 * naturally, a string converts to the other side's type, a Boolean on the left against a string throws
 * (RocketMQ casts the Boolean to String), and any other mix is -1.
 */
function compareValues(left: Exclude<Value, null>, right: Exclude<Value, null>): number | Failed {
  if (typeof left === 'string') {
    if (typeof right === 'string') return sign(left, right);
    if (typeof right === 'boolean') return sign(Number(javaBooleanOf(left)), Number(right));
    const converted = convertString(left, right);
    return converted === undefined ? FAILED : compareNumbers(converted, right);
  }
  if (typeof left === 'boolean') {
    if (typeof right === 'boolean') return sign(Number(left), Number(right));
    return typeof right === 'string' ? FAILED : -1;
  }
  if (typeof right === 'boolean') return -1;
  if (typeof right === 'string') {
    const converted = convertString(right, left);
    return converted === undefined ? FAILED : compareNumbers(left, converted);
  }
  return compareNumbers(left, right);
}

/** UnaryExpression.createNegate: numbers change sign (with Java's wrap-around), anything else is null. */
function negateValue(value: Value): Value {
  if (value === null || typeof value !== 'object') return null;
  switch (value.kind) {
    case 'int':
      return { kind: 'int', value: -value.value | 0 };
    case 'long':
      return { kind: 'long', value: BigInt.asIntN(64, -value.value) };
    case 'double':
      return { kind: 'double', value: -value.value };
    default:
      return assertNever(value, 'number kind');
  }
}

// ---------------------------------------------------------------------------------------------------
// Lexer

const KEYWORDS = new Set([
  'NOT', 'AND', 'OR', 'BETWEEN', 'IN', 'TRUE', 'FALSE', 'NULL', 'IS', 'CONTAINS', 'STARTSWITH', 'ENDSWITH',
]);

type Token =
  | { readonly kind: 'keyword' | 'symbol' | 'identifier' | 'string' | 'integer' | 'decimal'; readonly text: string; readonly offset: number }
  | { readonly kind: 'end'; readonly text: ''; readonly offset: number };

const IDENTIFIER = /[A-Za-z_$][A-Za-z0-9_$]*/y;
const DECIMAL_LITERAL = /[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+/y;
const INTEGER_LITERAL = /0|[1-9][0-9]*[lL]?/y;

/** The whole text as tokens, ending with one 'end' token; at most one token per character. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  // RocketMQ's lexer reads `--` as a comment only when a line break follows; without one it is two minus
  // signs (`a = --b` negates b twice).
  const lastLineBreak = Math.max(text.lastIndexOf('\n'), text.lastIndexOf('\r'));
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
    } else if (c === '-' && text[i + 1] === '-' && lastLineBreak > i + 1) {
      i = lineCommentEnd(text, i);
    } else if (c === '/' && text[i + 1] === '*') {
      const close = text.indexOf('*/', i + 2);
      if (close < 0) throw filterErrorAt(text, i, 'comment not closed with */');
      i = close + 2;
    } else if (c === "'") {
      const token = readString(text, i);
      tokens.push(token.token);
      i = token.next;
    } else if ((c >= '0' && c <= '9') || c === '.') {
      const token = readNumber(text, i);
      tokens.push(token);
      i += token.text.length;
    } else if (c === '<' || c === '>') {
      const next = text[i + 1];
      const symbol = next === '=' || (c === '<' && next === '>') ? c + next : c;
      tokens.push({ kind: 'symbol', text: symbol, offset: i });
      i += symbol.length;
    } else if (c === '=' || c === '(' || c === ')' || c === ',' || c === '+' || c === '-') {
      tokens.push({ kind: 'symbol', text: c, offset: i });
      i++;
    } else {
      IDENTIFIER.lastIndex = i;
      const word = IDENTIFIER.exec(text)?.[0];
      if (word === undefined) throw filterErrorAt(text, i, `unexpected character ${describeChar(text, i)}`);
      const upper = word.toUpperCase();
      tokens.push(KEYWORDS.has(upper) ? { kind: 'keyword', text: upper, offset: i } : { kind: 'identifier', text: word, offset: i });
      i += word.length;
    }
  }
  tokens.push({ kind: 'end', text: '', offset: text.length });
  return tokens;
}

/** Where the line comment starting at `start` ends: after the CR, LF or CRLF that the caller knows follows. */
function lineCommentEnd(text: string, start: number): number {
  for (let i = start + 2; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') return i + 1;
    if (c === '\r') return text[i + 1] === '\n' ? i + 2 : i + 1;
  }
  throw new AssertionError('a line comment must be followed by a line break');
}

function readString(text: string, start: number): { token: Token; next: number } {
  let value = '';
  let from = start + 1;
  for (;;) {
    const quote = text.indexOf("'", from);
    if (quote < 0) throw filterErrorAt(text, start, 'string not closed with a quote');
    value += text.slice(from, quote);
    if (text[quote + 1] !== "'") return { token: { kind: 'string', text: value, offset: start }, next: quote + 1 };
    value += "'";
    from = quote + 2;
  }
}

function readNumber(text: string, start: number): Token {
  // JavaCC takes the longest match: 1.5 is a decimal, 1L an integer, 01 the integer 0 then 1.
  DECIMAL_LITERAL.lastIndex = start;
  const decimal = DECIMAL_LITERAL.exec(text)?.[0] ?? '';
  INTEGER_LITERAL.lastIndex = start;
  const integer = INTEGER_LITERAL.exec(text)?.[0] ?? '';
  if (decimal.length === 0 && integer.length === 0) throw filterErrorAt(text, start, `unexpected character ${describeChar(text, start)}`);
  return decimal.length > integer.length
    ? { kind: 'decimal', text: decimal, offset: start }
    : { kind: 'integer', text: integer, offset: start };
}

function describeChar(text: string, offset: number): string {
  const code = text.codePointAt(offset)!;
  const shown = code >= 0x20 && code < 0x7f ? `'${String.fromCodePoint(code)}'` : '';
  return `${shown}${shown === '' ? '' : ' '}(U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
}

function describeToken(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'the end of the expression';
    case 'string':
      return 'a string';
    case 'keyword':
      return token.text;
    default:
      return `'${token.text}'`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Expression tree, with RocketMQ's compile-time type rules applied as nodes are built

type StringTest = 'CONTAINS' | 'STARTSWITH' | 'ENDSWITH';
type Ordering = '>' | '>=' | '<' | '<=';

/** A node of the tree; `height` counts nodes on the longest path down, leaves being 1. */
type Node =
  | { readonly kind: 'constant'; readonly value: Value; readonly height: 1 }
  | { readonly kind: 'property'; readonly name: string; readonly height: 1 }
  | { readonly kind: 'negate'; readonly operand: Node; readonly height: number }
  | { readonly kind: 'not'; readonly operand: Node; readonly height: number }
  | { readonly kind: 'booleanCast'; readonly name: string; readonly height: 2 }
  | { readonly kind: 'and' | 'or'; readonly operands: readonly Node[]; readonly height: number }
  | { readonly kind: 'equal'; readonly left: Node; readonly right: Node; readonly height: number }
  | { readonly kind: 'order'; readonly op: Ordering; readonly left: Node; readonly right: Node; readonly height: number }
  | { readonly kind: 'in'; readonly name: string; readonly values: ReadonlySet<string>; readonly negated: boolean; readonly height: 2 }
  | { readonly kind: 'stringTest'; readonly test: StringTest; readonly search: string; readonly negated: boolean; readonly operand: Node; readonly height: number };

const NULL_CONSTANT: Node = { kind: 'constant', value: null, height: 1 };

/** RocketMQ's BooleanExpression: what may stand as a condition. TRUE, FALSE and NULL are; other literals are not. */
function isBooleanNode(node: Node): boolean {
  switch (node.kind) {
    case 'constant':
      return node.value === null || typeof node.value === 'boolean';
    case 'property':
    case 'negate':
      return false;
    default:
      return true;
  }
}

function describeNode(node: Node): string {
  switch (node.kind) {
    case 'constant': {
      const value = node.value;
      if (value === null) return 'NULL';
      if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
      if (typeof value === 'string') {
        // Error messages quote literals; a long one is cut, since the message is logged and sent back.
        const shown = value.length > 40 ? `${value.slice(0, 40)}...` : value;
        return `'${shown.replaceAll("'", "''")}'`;
      }
      return String(value.value);
    }
    case 'property':
    case 'booleanCast':
      return node.name;
    case 'negate':
      return 'a negation';
    case 'not':
      return 'a NOT condition';
    case 'and':
    case 'or':
      return `an ${node.kind.toUpperCase()} condition`;
    case 'equal':
    case 'order':
      return 'a comparison';
    case 'in':
      return 'an IN condition';
    case 'stringTest':
      return `a ${node.test} condition`;
    default:
      return assertNever(node, 'node');
  }
}

// ---------------------------------------------------------------------------------------------------
// Parser

type InfixTest = StringTest | 'BETWEEN' | 'IN';
const INFIX_AFTER_NOT: ReadonlySet<string> = new Set<InfixTest>(['CONTAINS', 'STARTSWITH', 'ENDSWITH', 'BETWEEN', 'IN']);

/** Recursive descent over the token list, one method per grammar level; depth is bounded by depthMax. */
class Parser {
  private readonly text: string;
  private readonly tokens: readonly Token[];
  private readonly depthMax: number;
  private position = 0;
  private depth = 0;

  constructor(text: string, tokens: readonly Token[], depthMax: number) {
    assert(tokens.length > 0 && tokens[tokens.length - 1]!.kind === 'end', 'token list must end with an end token');
    this.text = text;
    this.tokens = tokens;
    this.depthMax = depthMax;
  }

  /** The whole text as one condition. */
  parseFilter(): Node {
    const first = this.peek();
    const node = this.parseOr();
    const rest = this.peek();
    if (rest.kind !== 'end') {
      const dashes = this.isSymbol(rest, '-') && this.text[rest.offset + 1] === '-';
      const hint = dashes ? " ('--' starts a comment only when a line break follows)" : '';
      throw this.error(rest, `unexpected ${describeToken(rest)} after a complete expression${hint}`);
    }
    assert(this.depth === 0, 'parser depth must return to zero');
    return this.condition(node, first);
  }

  private parseOr(): Node {
    return this.parseLogic('OR', () => this.parseAnd());
  }

  private parseAnd(): Node {
    return this.parseLogic('AND', () => this.parseEquality());
  }

  private parseLogic(keyword: 'AND' | 'OR', operand: () => Node): Node {
    const first = this.peek();
    const left = operand();
    if (!this.isKeyword(this.peek(), keyword)) return left;
    const kind = keyword === 'AND' ? 'and' : 'or';
    const operands: Node[] = [];
    // (a OR b) OR c and a OR (b OR c) evaluate like one list: left to right, stopping at the first TRUE.
    const add = (node: Node): void => {
      if (node.kind === kind) operands.push(...node.operands);
      else operands.push(node);
    };
    add(this.condition(left, first));
    let operator = first;
    while (this.isKeyword(this.peek(), keyword)) {
      operator = this.next();
      const start = this.peek();
      add(this.condition(operand(), start));
    }
    const height = 1 + Math.max(...operands.map((node) => node.height));
    return this.node({ kind, operands, height }, operator);
  }

  private parseEquality(): Node {
    let left = this.parseComparison();
    for (;;) {
      const operator = this.peek();
      if (this.isSymbol(operator, '=') || this.isSymbol(operator, '<>')) {
        this.next();
        const equal = this.equal(left, this.parseComparison(), operator);
        left = operator.text === '=' ? equal : this.not(equal, operator);
      } else if (this.isKeyword(operator, 'IS')) {
        this.next();
        const negated = this.isKeyword(this.peek(), 'NOT');
        if (negated) this.next();
        this.expectKeyword('NULL', negated ? 'NULL after IS NOT' : 'NULL or NOT NULL after IS');
        // IS NULL skips the operand checks of '=': `1 IS NULL` and `NULL IS NULL` are fine.
        const isNull = this.node({ kind: 'equal', left, right: NULL_CONSTANT, height: left.height + 1 }, operator);
        left = negated ? this.not(isNull, operator) : isNull;
      } else {
        return left;
      }
    }
  }

  private parseComparison(): Node {
    let left = this.parseUnary();
    for (;;) {
      const operator = this.peek();
      if (operator.kind === 'symbol' && (operator.text === '>' || operator.text === '>=' || operator.text === '<' || operator.text === '<=')) {
        this.next();
        left = this.order(operator.text, left, this.parseUnary(), operator);
        continue;
      }
      let negated = false;
      if (this.isKeyword(operator, 'NOT')) {
        const after = this.peek(1);
        if (after.kind !== 'keyword' || !INFIX_AFTER_NOT.has(after.text)) {
          throw this.error(after, `expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT, found ${describeToken(after)}`);
        }
        this.next();
        negated = true;
      }
      const test = this.peek();
      if (test.kind !== 'keyword' || !INFIX_AFTER_NOT.has(test.text)) return left;
      this.next();
      left = this.infix(test, negated, left, operator);
    }
  }

  private infix(test: Token, negated: boolean, left: Node, operator: Token): Node {
    switch (test.text) {
      case 'BETWEEN': {
        const low = this.parseUnary();
        this.expectKeyword('AND', 'AND between the bounds of BETWEEN');
        const high = this.parseUnary();
        return this.between(left, low, high, negated, operator);
      }
      case 'IN':
        return this.in(left, this.parseStringList(), negated, operator);
      case 'CONTAINS':
      case 'STARTSWITH':
      case 'ENDSWITH': {
        const search = this.expectString(test.text);
        return this.node({ kind: 'stringTest', test: test.text, search, negated, operand: left, height: left.height + 1 }, operator);
      }
      default:
        throw this.error(test, `unexpected ${describeToken(test)}`);
    }
  }

  private parseStringList(): ReadonlySet<string> {
    this.expectSymbol('(', "'(' after IN");
    const values = new Set<string>([this.expectString('IN (')]);
    while (this.isSymbol(this.peek(), ',')) {
      this.next();
      values.add(this.expectString('a comma in the IN list'));
    }
    this.expectSymbol(')', "',' or ')' in the IN list");
    return values;
  }

  private parseUnary(): Node {
    const operator = this.peek();
    if (this.isSymbol(operator, '+') || this.isSymbol(operator, '-') || this.isKeyword(operator, 'NOT')) {
      this.next();
      this.enter(operator);
      const operandStart = this.peek();
      const operand = this.parseUnary();
      this.depth--;
      if (operator.text === '+') return operand;
      if (operator.text === '-') return this.node({ kind: 'negate', operand, height: operand.height + 1 }, operator);
      return this.not(this.condition(operand, operandStart), operator);
    }
    return this.parsePrimary();
  }

  private parsePrimary(): Node {
    const token = this.next();
    switch (token.kind) {
      case 'string':
        return { kind: 'constant', value: token.text, height: 1 };
      case 'integer':
        return { kind: 'constant', value: this.integerValue(token), height: 1 };
      case 'decimal':
        return { kind: 'constant', value: this.decimalValue(token), height: 1 };
      case 'identifier':
        return { kind: 'property', name: token.text, height: 1 };
      case 'keyword':
        if (token.text === 'TRUE' || token.text === 'FALSE') return { kind: 'constant', value: token.text === 'TRUE', height: 1 };
        if (token.text === 'NULL') return NULL_CONSTANT;
        break;
      case 'symbol':
        if (token.text === '(') {
          this.enter(token);
          const inner = this.parseOr();
          this.expectSymbol(')', "')'");
          this.depth--;
          return inner;
        }
        break;
      case 'end':
        break;
      default:
        return assertNever(token, 'token');
    }
    throw this.error(token, `expected a value, a property or '(', found ${describeToken(token)}`);
  }

  /** ConstantExpression.createFromDecimal: Integer when it fits 32 bits, else Long; beyond Long is an error. */
  private integerValue(token: Token): JavaNumber {
    const digits = token.text.endsWith('l') || token.text.endsWith('L') ? token.text.slice(0, -1) : token.text;
    const value = BigInt(digits);
    if (value > LONG_MAX) throw this.error(token, `integer ${digits} is larger than ${LONG_MAX}`);
    return value <= BigInt(INT_MAX) ? { kind: 'int', value: Number(value) } : { kind: 'long', value };
  }

  /** ConstantExpression.createFloat: a finite double at least Double.MIN_VALUE, so 0.0 is refused too. */
  private decimalValue(token: Token): JavaNumber {
    const value = Number(token.text);
    if (value > DOUBLE_MAX) throw this.error(token, `decimal ${token.text} is larger than ${DOUBLE_MAX}`);
    if (value === 0) throw this.error(token, `decimal ${token.text} is zero or below ${Number.MIN_VALUE}; write 0 for zero`);
    return { kind: 'double', value };
  }

  // --- Node builders with RocketMQ's compile-time checks -----------------------------------------

  /** asBooleanExpression: a property becomes a boolean cast; other non-conditions are errors. */
  private condition(node: Node, at: Token): Node {
    if (isBooleanNode(node)) return node;
    if (node.kind === 'property') return this.node({ kind: 'booleanCast', name: node.name, height: 2 }, at);
    throw this.error(at, `${describeNode(node)} is not a condition`);
  }

  private not(operand: Node, at: Token): Node {
    return this.node({ kind: 'not', operand, height: operand.height + 1 }, at);
  }

  /** createEqual: NULL may not be an operand, and TRUE or FALSE may not be compared with another literal. */
  private equal(left: Node, right: Node, at: Token): Node {
    for (const side of [left, right]) {
      if (side.kind === 'constant' && side.value === null) throw this.error(at, "NULL cannot be compared with '=' or '<>'; use IS NULL");
    }
    if (left.kind === 'constant' && right.kind === 'constant' && typeof left.value === 'boolean' && typeof right.value !== 'boolean') {
      throw this.error(at, `${describeNode(left)} cannot be compared with ${describeNode(right)}`);
    }
    return this.node({ kind: 'equal', left, right, height: Math.max(left.height, right.height) + 1 }, at);
  }

  /** createGreaterThan and kin: each side is a number literal or a non-condition (property, negation). */
  private order(op: Ordering, left: Node, right: Node, at: Token): Node {
    for (const side of [left, right]) {
      const numeric = side.kind === 'constant' ? side.value !== null && typeof side.value === 'object' : !isBooleanNode(side);
      if (!numeric) throw this.error(at, `${describeNode(side)} cannot be compared with '${op}'`);
    }
    return this.node({ kind: 'order', op, left, right, height: Math.max(left.height, right.height) + 1 }, at);
  }

  /** createBetween / createNotBetween: (v >= low AND v <= high) / (v < low OR v > high); literal bounds in order. */
  private between(value: Node, low: Node, high: Node, negated: boolean, at: Token): Node {
    if (!negated && low.kind === 'constant' && high.kind === 'constant') {
      if (low.value === null || high.value === null) throw this.error(at, 'BETWEEN bounds cannot be NULL');
      const bounds = compareValues(high.value, low.value);
      if (bounds === FAILED || bounds < 0) {
        throw this.error(at, `BETWEEN needs the lower bound first: ${describeNode(low)} is above ${describeNode(high)}`);
      }
    }
    const lower = this.order(negated ? '<' : '>=', value, low, at);
    const upper = this.order(negated ? '>' : '<=', value, high, at);
    return this.node({ kind: negated ? 'or' : 'and', operands: [lower, upper], height: Math.max(lower.height, upper.height) + 1 }, at);
  }

  /** createInFilter: only a property may stand left of IN. */
  private in(left: Node, values: ReadonlySet<string>, negated: boolean, at: Token): Node {
    if (left.kind !== 'property') throw this.error(at, `IN needs a property on its left, not ${describeNode(left)}`);
    return this.node({ kind: 'in', name: left.name, values, negated, height: 2 }, at);
  }

  private node(node: Node, at: Token): Node {
    this.checkHeight(node.height, at);
    return node;
  }

  private checkHeight(height: number, at: Token): void {
    if (height > this.depthMax) throw this.error(at, `expression nested deeper than ${this.depthMax} levels`);
  }

  private enter(at: Token): void {
    this.depth++;
    if (this.depth > this.depthMax) throw this.error(at, `expression nested deeper than ${this.depthMax} levels`);
  }

  // --- Token access -------------------------------------------------------------------------------

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.position + ahead, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.position++;
    return token;
  }

  private isKeyword(token: Token, keyword: string): boolean {
    return token.kind === 'keyword' && token.text === keyword;
  }

  private isSymbol(token: Token, symbol: string): boolean {
    return token.kind === 'symbol' && token.text === symbol;
  }

  private expectKeyword(keyword: string, what: string): void {
    const token = this.next();
    if (!this.isKeyword(token, keyword)) throw this.error(token, `expected ${what}, found ${describeToken(token)}`);
  }

  private expectSymbol(symbol: string, what: string): void {
    const token = this.next();
    if (!this.isSymbol(token, symbol)) throw this.error(token, `expected ${what}, found ${describeToken(token)}`);
  }

  private expectString(after: string): string {
    const token = this.next();
    if (token.kind !== 'string') throw this.error(token, `expected a string after ${after}, found ${describeToken(token)}`);
    return token.text;
  }

  private error(at: Token, detail: string): Error {
    return filterErrorAt(this.text, at.offset, detail);
  }
}

// ---------------------------------------------------------------------------------------------------
// Compiler: the tree becomes closures, so evaluation does no dispatch on node kinds

/** Reads one property; null when the message lacks it. */
type Lookup = (name: string) => string | null;
type Evaluator = (lookup: Lookup) => Value | Failed;
type BooleanEvaluator = (lookup: Lookup) => boolean | null | Failed;

function lookupOf(properties: MessageProperties): Lookup {
  if (typeof (properties as { get?: unknown }).get === 'function') {
    const map = properties as ReadonlyMap<string, string>;
    return (name) => {
      const value = map.get(name);
      return typeof value === 'string' ? value : null;
    };
  }
  const record = properties as Readonly<Record<string, string>>;
  // Own properties only: a filter on `constructor` or `__proto__` must not see Object.prototype.
  return (name) => {
    const value = Object.hasOwn(record, name) ? record[name] : undefined;
    return typeof value === 'string' ? value : null;
  };
}

function compileValue(node: Node): Evaluator {
  switch (node.kind) {
    case 'constant': {
      const value = node.value;
      return () => value;
    }
    case 'property': {
      const name = node.name;
      return (lookup) => lookup(name);
    }
    case 'negate': {
      const operand = compileValue(node.operand);
      return (lookup) => {
        const value = operand(lookup);
        return value === FAILED ? FAILED : negateValue(value);
      };
    }
    default:
      return compileBoolean(node);
  }
}

function compileBoolean(node: Node): BooleanEvaluator {
  switch (node.kind) {
    case 'constant': {
      const value = node.value;
      assert(value === null || typeof value === 'boolean', 'only TRUE, FALSE and NULL literals are conditions');
      return () => value;
    }
    case 'property':
    case 'negate':
      throw new AssertionError(`a ${node.kind} node is not a condition; the parser wraps or refuses it`);
    case 'booleanCast': {
      // A property's value is a string, never a Boolean, so the cast gives FALSE, or null when absent.
      const name = node.name;
      return (lookup) => (lookup(name) === null ? null : false);
    }
    case 'not': {
      const operand = compileBoolean(node.operand);
      return (lookup) => {
        const value = operand(lookup);
        return value === FAILED || value === null ? value : !value;
      };
    }
    case 'and':
    case 'or':
      return compileLogic(node.kind, node.operands.map(compileBoolean));
    case 'equal':
      return compileEqual(compileValue(node.left), compileValue(node.right));
    case 'order':
      return compileOrder(node.op, compileValue(node.left), compileValue(node.right));
    case 'in': {
      const { name, values, negated } = node;
      return (lookup) => {
        const value = lookup(name);
        return value === null ? null : values.has(value) !== negated;
      };
    }
    case 'stringTest':
      return compileStringTest(node.test, node.search, node.negated, compileValue(node.operand));
    default:
      return assertNever(node, 'node');
  }
}

/** LogicExpression, flattened: AND stops at the first FALSE, OR at the first TRUE; else unknown wins. */
function compileLogic(kind: 'and' | 'or', operands: readonly BooleanEvaluator[]): BooleanEvaluator {
  assert(operands.length >= 2, 'a logic node has at least two operands');
  const decisive = kind === 'or';
  return (lookup) => {
    let unknown = false;
    for (const operand of operands) {
      const value = operand(lookup);
      if (value === FAILED || value === decisive) return value;
      if (value === null) unknown = true;
    }
    return unknown ? null : !decisive;
  };
}

/**
 * The '=' of ComparisonExpression: both null is TRUE, a null left side unknown, a null right side FALSE
 * (so `'x' <> a` holds for a missing `a` while `a <> 'x'` is unknown); otherwise the values compare.
 */
function compileEqual(left: Evaluator, right: Evaluator): BooleanEvaluator {
  return (lookup) => {
    const l = left(lookup);
    if (l === FAILED) return FAILED;
    const r = right(lookup);
    if (r === FAILED) return FAILED;
    if (l === null || r === null) return l === r ? true : l === null ? null : false;
    const order = compareValues(l, r);
    return order === FAILED ? FAILED : order === 0;
  };
}

/** >, >=, <, <=: unknown on a null side; two strings compare as doubles; else compareValues. */
function compileOrder(op: Ordering, left: Evaluator, right: Evaluator): BooleanEvaluator {
  const holds = ORDER_TESTS[op];
  return (lookup) => {
    const l = left(lookup);
    if (l === FAILED || l === null) return l;
    const r = right(lookup);
    if (r === FAILED || r === null) return r;
    let order: number | Failed;
    if (typeof l === 'string' && typeof r === 'string') {
      const a = javaParseDouble(l);
      const b = javaParseDouble(r);
      order = a === undefined || b === undefined ? FAILED : compareDoubles(a, b);
    } else {
      order = compareValues(l, r);
    }
    return order === FAILED ? FAILED : holds(order);
  };
}

const ORDER_TESTS: Readonly<Record<Ordering, (order: number) => boolean>> = {
  '>': (order) => order > 0,
  '>=': (order) => order >= 0,
  '<': (order) => order < 0,
  '<=': (order) => order <= 0,
};

/**
 * [NOT] CONTAINS / STARTSWITH / ENDSWITH: FALSE for an empty search (without evaluating the operand) and
 * for an operand that is not a string, NOT variants included; otherwise the test, negated for NOT.
 */
function compileStringTest(test: StringTest, search: string, negated: boolean, operand: Evaluator): BooleanEvaluator {
  if (search.length === 0) return () => false;
  return (lookup) => {
    const value = operand(lookup);
    if (value === FAILED) return FAILED;
    if (typeof value !== 'string') return false;
    const found = test === 'CONTAINS' ? value.includes(search) : test === 'STARTSWITH' ? value.startsWith(search) : value.endsWith(search);
    return found !== negated;
  };
}
