/**
 * JSON as Alibaba fastjson 1.2.x reads and writes it: the text that RocketMQ's Java side puts in Remoting
 * bodies (RemotingSerializable uses `JSON.toJSONString` / `JSON.parseObject`, fastjson 1.2.83 in 5.x).
 *
 * What fastjson writes that standard JSON parsers refuse, and this parser accepts:
 * - Map keys that are not strings are written bare: `{0:"a",1:"b"}` for a Map<Integer, ...>, and a whole
 *   JSON object for a Map<MessageQueue, ...>: `{{"brokerName":"b","queueId":0,"topic":"t"}:12}`.
 *   So an object here is a `Map` whose keys are values too: a string for `"k"`, a number for `0`, a
 *   nested Map for an object key.
 * What fastjson's default parser features (AllowUnQuotedFieldNames, AllowSingleQuotes,
 * AllowArbitraryCommas) also let through, and this parser accepts for the same reason:
 * - unquoted identifier keys (`{a:1}`), single-quoted strings, repeated and trailing commas,
 *   numbers with a Java type suffix (`12L`, `1.5F`) or leading zeros, raw control characters inside
 *   strings, the escapes `\'`, `\xHH`, `\v` and `\0`..`\7`, `\f` and `\b` as whitespace, a leading BOM.
 * Refused, as fastjson refuses them: comments, trailing text after the value.
 *
 * Integers beyond 2^53 come back as `bigint`, so a Java long never loses precision silently; every other
 * number is a JS number. A repeated string key keeps its last value, as fastjson's map put does.
 *
 * Bounds: the input size, the nesting depth and the count of values are checked before anything is
 * allocated for them; past a bound the parser throws a FastjsonError with a stable code. The parser
 * recurses once per nesting level, so `depthMax` also bounds the stack.
 *
 * The formatter writes what fastjson writes for the same data: string keys quoted, number keys bare,
 * object keys as nested objects, NaN and infinities as `null`, fields in the order given (RocketMQ's
 * Java side sorts bean fields alphabetically; callers that mirror a Java bean pass them in that order).
 */

import { assert } from '../../runtime/assert.ts';

/** A parsed value. Objects are Maps so that non-string keys (numbers, whole objects) survive. */
export type FastjsonValue = null | boolean | number | bigint | string | FastjsonValue[] | FastjsonObject;

/** A parsed object: keys in text order; a key is a string unless fastjson wrote a number or an object. */
export type FastjsonObject = Map<FastjsonValue, FastjsonValue>;

/** What the formatter takes: parsed values, plus plain records (string keys; undefined fields skipped). */
export type FastjsonInput =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly FastjsonInput[]
  | ReadonlyMap<FastjsonInput, FastjsonInput>
  | { readonly [key: string]: FastjsonInput | undefined };

/** Stable codes of FastjsonError. */
export const FastjsonErrorCode = {
  /** The text is not JSON as fastjson reads it. */
  SYNTAX: 'FASTJSON_SYNTAX',
  /** The input is longer than `bytesMax`. */
  TOO_LARGE: 'FASTJSON_TOO_LARGE',
  /** Objects and arrays nest deeper than `depthMax`. */
  TOO_DEEP: 'FASTJSON_TOO_DEEP',
  /** The text holds more values than `valuesMax`. */
  TOO_MANY_VALUES: 'FASTJSON_TOO_MANY_VALUES',
} as const;

/** A stable code of FastjsonError. */
export type FastjsonErrorCode = (typeof FastjsonErrorCode)[keyof typeof FastjsonErrorCode];

/** The only error the parser throws. */
export class FastjsonError extends Error {
  /** Stable machine-readable code. */
  readonly code: FastjsonErrorCode;
  /** Offset in the text (UTF-16 units) where parsing stopped; -1 for a size refusal. */
  readonly position: number;
  override readonly name = 'FastjsonError';

  constructor(code: FastjsonErrorCode, message: string, position: number) {
    super(message);
    this.code = code;
    this.position = position;
  }
}

/** Bounds of one parse. */
export type FastjsonParseOptions = {
  /** Largest input: bytes for a Uint8Array, UTF-16 units for a string (default 16 MiB, the frame max). */
  readonly bytesMax?: number;
  /** Deepest nesting of objects and arrays (default 64). */
  readonly depthMax?: number;
  /** Most values (scalars, objects, arrays and object keys together) in one text (default 1,000,000). */
  readonly valuesMax?: number;
};

/** Defaults of FastjsonParseOptions. */
export const FASTJSON_DEFAULTS = {
  bytesMax: 16 * 1024 * 1024,
  depthMax: 64,
  valuesMax: 1_000_000,
} as const;

/** The depth no caller may raise depthMax beyond: the parser recurses once per level. */
const DEPTH_LIMIT = 1000;

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false });

/**
 * Parses fastjson text (a string, or UTF-8 bytes decoded as Java does, bad sequences becoming U+FFFD).
 * Throws FastjsonError on malformed or oversized input.
 */
export function parseFastjson(input: string | Uint8Array, options: FastjsonParseOptions = {}): FastjsonValue {
  const bytesMax = options.bytesMax ?? FASTJSON_DEFAULTS.bytesMax;
  const depthMax = options.depthMax ?? FASTJSON_DEFAULTS.depthMax;
  assert(Number.isInteger(depthMax) && depthMax >= 1 && depthMax <= DEPTH_LIMIT, () => `bad depthMax ${depthMax}`);
  if (input.length > bytesMax) {
    throw new FastjsonError(FastjsonErrorCode.TOO_LARGE, `JSON text of ${input.length} exceeds ${bytesMax}`, -1);
  }
  const text = typeof input === 'string' ? input : utf8.decode(input);
  const parser = new Parser(text, depthMax, options.valuesMax ?? FASTJSON_DEFAULTS.valuesMax);
  return parser.parseDocument();
}

// ---------------------------------------------------------------------------------------------------
// Parser

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_VT = 0x0b;
const CH_FF = 0x0c;
const CH_CR = 0x0d;
const CH_BS = 0x08;
const CH_SPACE = 0x20;
const CH_DQUOTE = 0x22;
const CH_SQUOTE = 0x27;
const CH_BACKSLASH = 0x5c;
const CH_BOM = 0xfeff;

function isWhitespace(c: number): boolean {
  return c === CH_SPACE || c === CH_LF || c === CH_CR || c === CH_TAB || c === CH_FF || c === CH_BS;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

const IDENTIFIER_START = /[\p{L}_$]/u;
const IDENTIFIER_PART = /[\p{L}\p{N}_$]/u;
const NUMBER_AT = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;
const JAVA_NUMBER_SUFFIX = /[LSBFD]/y;

class Parser {
  private readonly text: string;
  private readonly depthMax: number;
  private readonly valuesMax: number;
  private pos = 0;
  private values = 0;
  /** Where the next backslash at or after some earlier position is (-1: none); keeps scans linear. */
  private nextBackslash = -2;

  constructor(text: string, depthMax: number, valuesMax: number) {
    this.text = text;
    this.depthMax = depthMax;
    this.valuesMax = valuesMax;
  }

  parseDocument(): FastjsonValue {
    if (this.text.charCodeAt(0) === CH_BOM) this.pos = 1;
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos !== this.text.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private fail(message: string, code: FastjsonErrorCode = FastjsonErrorCode.SYNTAX): never {
    throw new FastjsonError(code, `${message} at position ${this.pos}`, this.pos);
  }

  private count(): void {
    this.values++;
    if (this.values <= this.valuesMax) return;
    this.fail(`more than ${this.valuesMax} values`, FastjsonErrorCode.TOO_MANY_VALUES);
  }

  private skipWhitespace(): void {
    while (this.pos < this.text.length && isWhitespace(this.text.charCodeAt(this.pos))) this.pos++;
  }

  private parseValue(depth: number): FastjsonValue {
    if (this.pos >= this.text.length) this.fail('unexpected end of text');
    this.count();
    const c = this.text.charCodeAt(this.pos);
    if (c === 0x7b) return this.parseObject(depth + 1); // {
    if (c === 0x5b) return this.parseArray(depth + 1); // [
    if (c === CH_DQUOTE || c === CH_SQUOTE) return this.parseString(c);
    if (c === 0x2d || isDigit(c)) return this.parseNumber();
    if (this.text.startsWith('true', this.pos)) return this.literal(4, true);
    if (this.text.startsWith('false', this.pos)) return this.literal(5, false);
    if (this.text.startsWith('null', this.pos)) return this.literal(4, null);
    return this.fail(`unexpected character ${JSON.stringify(this.text[this.pos])}`);
  }

  private literal<T>(length: number, value: T): T {
    this.pos += length;
    return value;
  }

  private enter(depth: number): void {
    if (depth > this.depthMax) this.fail(`nesting deeper than ${this.depthMax}`, FastjsonErrorCode.TOO_DEEP);
    this.pos++; // the opening bracket
  }

  /** Skips whitespace and any run of commas (fastjson's AllowArbitraryCommas); says whether one was seen. */
  private skipCommas(): boolean {
    let seen = false;
    this.skipWhitespace();
    while (this.text.charCodeAt(this.pos) === 0x2c) {
      seen = true;
      this.pos++;
      this.skipWhitespace();
    }
    return seen;
  }

  private parseObject(depth: number): FastjsonObject {
    this.enter(depth);
    const object: FastjsonObject = new Map();
    let needComma = false;
    for (;;) {
      const comma = this.skipCommas();
      if (this.pos >= this.text.length) this.fail('unterminated object');
      if (this.text.charCodeAt(this.pos) === 0x7d) {
        this.pos++;
        return object;
      }
      if (needComma && !comma) this.fail('expected , or } in object');
      const key = this.parseKey(depth);
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail('expected : after object key');
      this.pos++;
      this.skipWhitespace();
      object.set(key, this.parseValue(depth));
      needComma = true;
    }
  }

  private parseKey(depth: number): FastjsonValue {
    const c = this.text.charCodeAt(this.pos);
    if (c === CH_DQUOTE || c === CH_SQUOTE || c === 0x7b || c === 0x5b || c === 0x2d || isDigit(c)) {
      return this.parseValue(depth);
    }
    // An unquoted field name (AllowUnQuotedFieldNames): an identifier, taken as a string.
    const start = this.pos;
    if (!IDENTIFIER_START.test(this.text[this.pos] ?? '')) this.fail('expected an object key');
    this.count();
    this.pos++;
    while (this.pos < this.text.length && IDENTIFIER_PART.test(this.text[this.pos]!)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private parseArray(depth: number): FastjsonValue[] {
    this.enter(depth);
    const array: FastjsonValue[] = [];
    let needComma = false;
    for (;;) {
      const comma = this.skipCommas();
      if (this.pos >= this.text.length) this.fail('unterminated array');
      if (this.text.charCodeAt(this.pos) === 0x5d) {
        this.pos++;
        return array;
      }
      if (needComma && !comma) this.fail('expected , or ] in array');
      array.push(this.parseValue(depth));
      needComma = true;
    }
  }

  private parseNumber(): number | bigint {
    NUMBER_AT.lastIndex = this.pos;
    const match = NUMBER_AT.exec(this.text);
    if (match === null) this.fail('malformed number');
    const token = match[0];
    this.pos += token.length;
    JAVA_NUMBER_SUFFIX.lastIndex = this.pos;
    if (JAVA_NUMBER_SUFFIX.test(this.text)) this.pos++;
    const value = Number(token);
    if (match[1] === undefined && match[2] === undefined && !Number.isSafeInteger(value)) return BigInt(token);
    return value;
  }

  private parseString(quote: number): string {
    const start = this.pos + 1;
    // Fast path: no escapes before the closing quote.
    const close = this.text.indexOf(String.fromCharCode(quote), start);
    if (close < 0) {
      this.pos = this.text.length;
      this.fail('unterminated string');
    }
    if (this.nextBackslash !== -1 && this.nextBackslash < start) this.nextBackslash = this.text.indexOf('\\', start);
    if (this.nextBackslash < 0 || this.nextBackslash > close) {
      this.pos = close + 1;
      return this.text.slice(start, close);
    }
    return this.parseEscapedString(quote, start);
  }

  private parseEscapedString(quote: number, start: number): string {
    const parts: string[] = [];
    let runStart = start;
    this.pos = start;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c === quote) {
        parts.push(this.text.slice(runStart, this.pos));
        this.pos++;
        return parts.join('');
      }
      if (c !== CH_BACKSLASH) {
        this.pos++;
        continue;
      }
      parts.push(this.text.slice(runStart, this.pos));
      this.pos++;
      parts.push(this.parseEscape());
      runStart = this.pos;
    }
    return this.fail('unterminated string');
  }

  private parseEscape(): string {
    const c = this.text[this.pos];
    this.pos++;
    switch (c) {
      case '"':
      case "'":
      case '\\':
      case '/':
        return c;
      case 'b':
        return '\b';
      case 'f':
      case 'F':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'v':
        return String.fromCharCode(CH_VT);
      case 'u':
        return String.fromCharCode(this.hex(4));
      case 'x':
        return String.fromCharCode(this.hex(2));
      default:
        if (c !== undefined && c >= '0' && c <= '7') return String.fromCharCode(c.charCodeAt(0) - 0x30);
        this.pos--;
        return this.fail(`bad escape \\${c ?? ''}`);
    }
  }

  private hex(digits: number): number {
    const token = this.text.slice(this.pos, this.pos + digits);
    if (token.length !== digits || !/^[0-9a-fA-F]+$/.test(token)) this.fail('bad hex escape');
    this.pos += digits;
    return Number.parseInt(token, 16);
  }
}

// ---------------------------------------------------------------------------------------------------
// Formatter

/** Formats a value as fastjson would write it; see the module comment. */
export function formatFastjson(value: FastjsonInput, depthMax: number = FASTJSON_DEFAULTS.depthMax): string {
  const parts: string[] = [];
  writeValue(parts, value, 0, depthMax);
  return parts.join('');
}

function writeNumber(parts: string[], value: number): void {
  // fastjson writes a non-finite double as null; JSON has no spelling for it.
  parts.push(Number.isFinite(value) ? String(value) : 'null');
}

function writeValue(parts: string[], value: FastjsonInput, depth: number, depthMax: number): void {
  if (value === null) parts.push('null');
  else if (typeof value === 'string') parts.push(JSON.stringify(value));
  else if (typeof value === 'number') writeNumber(parts, value);
  else if (typeof value === 'bigint') parts.push(value.toString());
  else if (typeof value === 'boolean') parts.push(value ? 'true' : 'false');
  else {
    // Containers: the depth bound also stops a cyclic input before the stack does.
    assert(depth < depthMax, () => `value nests deeper than ${depthMax}`);
    const inner = depth + 1;
    if (Array.isArray(value)) writeArray(parts, value as readonly FastjsonInput[], inner, depthMax);
    else if (value instanceof Map) writeMap(parts, value as ReadonlyMap<FastjsonInput, FastjsonInput>, inner, depthMax);
    else writeRecord(parts, value as { readonly [key: string]: FastjsonInput | undefined }, inner, depthMax);
  }
}

function writeArray(parts: string[], array: readonly FastjsonInput[], depth: number, depthMax: number): void {
  parts.push('[');
  for (let i = 0; i < array.length; i++) {
    if (i > 0) parts.push(',');
    writeValue(parts, array[i]!, depth, depthMax);
  }
  parts.push(']');
}

function writeMap(
  parts: string[],
  map: ReadonlyMap<FastjsonInput, FastjsonInput>,
  depth: number,
  depthMax: number,
): void {
  parts.push('{');
  let first = true;
  for (const [key, value] of map) {
    if (!first) parts.push(',');
    first = false;
    // A string key is quoted; anything else is written as a value, bare, as fastjson's MapSerializer does.
    writeValue(parts, key, depth, depthMax);
    parts.push(':');
    writeValue(parts, value, depth, depthMax);
  }
  parts.push('}');
}

function writeRecord(
  parts: string[],
  record: { readonly [key: string]: FastjsonInput | undefined },
  depth: number,
  depthMax: number,
): void {
  parts.push('{');
  let first = true;
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (value === undefined) continue;
    if (!first) parts.push(',');
    first = false;
    parts.push(JSON.stringify(key), ':');
    writeValue(parts, value, depth, depthMax);
  }
  parts.push('}');
}

// ---------------------------------------------------------------------------------------------------
// Reading helpers

/** Whether a parsed value is an object. */
export function isFastjsonObject(value: FastjsonValue | undefined): value is FastjsonObject {
  return value instanceof Map;
}

/**
 * Converts a parsed value to plain JSON-shaped data (for schema validators): objects become plain
 * objects whose number keys turn into their decimal strings, as `{0:1}` and `{"0":1}` mean the same map
 * to Java. Returns undefined if an object has an object, array, boolean or null key, which plain data
 * cannot hold. Keys such as `__proto__` become own properties, never prototypes.
 */
export function toPlainJson(value: FastjsonValue): unknown {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) {
      const plain = toPlainJson(item);
      if (plain === undefined) return undefined;
      out.push(plain);
    }
    return out;
  }
  if (!(value instanceof Map)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of value) {
    let name: string;
    if (typeof key === 'string') name = key;
    else if (typeof key === 'number' || typeof key === 'bigint') name = key.toString();
    else return undefined;
    const plain = toPlainJson(item);
    if (plain === undefined) return undefined;
    Object.defineProperty(out, name, { value: plain, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
