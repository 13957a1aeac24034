/**
 * The SQL92 filter against a reference written from RocketMQ's evaluation rules over a generated tree:
 * every tree that obeys RocketMQ's compile-time type rules compiles, whatever the keyword case, spacing and
 * comments of its text, and the compiled filter agrees with the reference on every property map, including
 * where RocketMQ's evaluation fails. Minimal parentheses mean the same as full ones (precedence). And any
 * text at all either compiles or throws a FilterError naming a position inside it, quickly.
 *
 * Property values come from a pool of ASCII strings, so the reference can convert them with plain regular
 * expressions; Unicode digits, hex doubles and the like are covered by the example tests.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FilterError } from '../../src/filter/filter-errors.ts';
import { SQL92_DEPTH_MAX, SQL92_TEXT_LENGTH_MAX, compileSql92, type CompiledFilter, type FilterOutcome } from '../../src/filter/sql92.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

// ---------------------------------------------------------------------------------------------------
// The generated tree

type Literal =
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'int'; readonly v: bigint; readonly suffix: boolean }
  | { readonly t: 'long'; readonly v: bigint }
  | { readonly t: 'double'; readonly v: number }
  | { readonly t: 'bool'; readonly v: boolean };

type Operand =
  | { readonly k: 'lit'; readonly lit: Literal }
  | { readonly k: 'prop'; readonly name: string }
  | { readonly k: 'neg'; readonly of: Operand }
  | { readonly k: 'cond'; readonly c: Cond };

type Cond =
  | { readonly k: 'const'; readonly v: boolean | null }
  | { readonly k: 'bare'; readonly name: string }
  | { readonly k: 'not'; readonly c: Cond }
  | { readonly k: 'and' | 'or'; readonly cs: readonly Cond[] }
  | { readonly k: 'eq'; readonly neg: boolean; readonly l: Operand; readonly r: Operand }
  | { readonly k: 'ord'; readonly op: '>' | '>=' | '<' | '<='; readonly l: Operand; readonly r: Operand }
  | { readonly k: 'between'; readonly neg: boolean; readonly v: Operand; readonly lo: Operand; readonly hi: Operand }
  | { readonly k: 'in'; readonly neg: boolean; readonly name: string; readonly values: readonly string[] }
  | { readonly k: 'isNull'; readonly neg: boolean; readonly of: Operand }
  | { readonly k: 'str'; readonly test: 'CONTAINS' | 'STARTSWITH' | 'ENDSWITH'; readonly neg: boolean; readonly of: Operand; readonly search: string };

const NAMES = ['a', 'b', 'c', 'TAGS', '$d', '_e1'] as const;
const STRINGS = ['', 'x', '1', '5', 'true', "it's", 'abc', ' 5', '5.5', 'ab'] as const;
const VALUES = [
  '1', '5', '-3', '+7', '0', '-0', '5.0', '5.5', '1e3', '.5', 'abc', 'x', '', 'ab', 'true', 'TRUE', 'false', ' 5',
  '2147483647', '2147483648', '-2147483649', '9223372036854775807', '9223372036854775808', 'NaN', 'Infinity', "it's",
] as const;
const INT_MAX = 2n ** 31n - 1n;
const LONG_MAX = 2n ** 63n - 1n;

const literalArbitrary: fc.Arbitrary<Literal> = fc.oneof(
  fc.constantFrom(...STRINGS).map((v): Literal => ({ t: 'str', v })),
  fc.record({ v: fc.oneof(fc.bigInt(0n, 10n), fc.bigInt(0n, INT_MAX)), suffix: fc.boolean() }).map(({ v, suffix }): Literal => ({ t: 'int', v, suffix })),
  fc.bigInt(INT_MAX + 1n, LONG_MAX).map((v): Literal => ({ t: 'long', v })),
  fc
    .oneof(fc.constantFrom(0.5, 1.5, 3, 5, 5.5, 1000, 2147483648, 3.1e10), fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true }))
    .map((v): Literal => ({ t: 'double', v })),
  fc.boolean().map((v): Literal => ({ t: 'bool', v })),
);
const numericLiteralArbitrary = literalArbitrary.filter((lit) => lit.t === 'int' || lit.t === 'long' || lit.t === 'double');
const nameArbitrary = fc.constantFrom(...NAMES);

const { cond: rawCondArbitrary } = fc.letrec<{ cond: Cond; operand: Operand; numeric: Operand }>((tie) => ({
  cond: fc.oneof(
    { depthSize: 'small', withCrossShrink: true, maxDepth: 6, depthIdentifier: 'tree' },
    fc.constantFrom<boolean | null>(true, false, null).map((v): Cond => ({ k: 'const', v })),
    nameArbitrary.map((name): Cond => ({ k: 'bare', name })),
    fc.record({ neg: fc.boolean(), l: tie('operand'), r: tie('operand') }).map((x): Cond => ({ k: 'eq', ...x })),
    fc.record({ op: fc.constantFrom('>' as const, '>=' as const, '<' as const, '<=' as const), l: tie('numeric'), r: tie('numeric') }).map((x): Cond => ({ k: 'ord', ...x })),
    fc.record({ neg: fc.boolean(), v: tie('numeric'), lo: tie('numeric'), hi: tie('numeric') }).map((x): Cond => ({ k: 'between', ...x })),
    fc.record({ neg: fc.boolean(), name: nameArbitrary, values: fc.array(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 6 }) }).map((x): Cond => ({ k: 'in', ...x })),
    fc.record({ neg: fc.boolean(), of: tie('operand') }).map((x): Cond => ({ k: 'isNull', ...x })),
    fc
      .record({ test: fc.constantFrom('CONTAINS' as const, 'STARTSWITH' as const, 'ENDSWITH' as const), neg: fc.boolean(), of: tie('operand'), search: fc.constantFrom(...STRINGS) })
      .map((x): Cond => ({ k: 'str', ...x })),
    tie('cond').map((c): Cond => ({ k: 'not', c })),
    fc.record({ k: fc.constantFrom('and' as const, 'or' as const), cs: fc.array(tie('cond'), { minLength: 2, maxLength: 4 }) }).map((x): Cond => x),
  ),
  operand: fc.oneof(
    { depthSize: 'small', withCrossShrink: true, maxDepth: 6, depthIdentifier: 'tree' },
    literalArbitrary.map((lit): Operand => ({ k: 'lit', lit })),
    nameArbitrary.map((name): Operand => ({ k: 'prop', name })),
    tie('operand').map((of): Operand => ({ k: 'neg', of })),
    tie('cond').map((c): Operand => ({ k: 'cond', c })),
  ),
  // What RocketMQ lets stand beside >, >=, <, <= and in BETWEEN: number literals, properties, negations.
  numeric: fc.oneof(
    { depthSize: 'small', withCrossShrink: true, maxDepth: 6, depthIdentifier: 'tree' },
    numericLiteralArbitrary.map((lit): Operand => ({ k: 'lit', lit })),
    nameArbitrary.map((name): Operand => ({ k: 'prop', name })),
    tie('operand').map((of): Operand => ({ k: 'neg', of })),
  ),
}));

/**
 * What the parser turns an operand into: `(TRUE)` is still a literal and `(a)` still a property, since
 * parentheses add no node.
 */
function unwrap(operand: Operand): Operand {
  if (operand.k !== 'cond') return operand;
  const c = operand.c;
  if (c.k === 'const') return c.v === null ? operand : { k: 'lit', lit: { t: 'bool', v: c.v } };
  if (c.k === 'bare') return { k: 'prop', name: c.name };
  return operand;
}

function isNullLiteral(operand: Operand): boolean {
  return operand.k === 'cond' && operand.c.k === 'const' && operand.c.v === null;
}

/** RocketMQ's compile-time rules for the shapes generated here (ComparisonExpression's checks). */
function obeysRules(c: Cond): boolean {
  switch (c.k) {
    case 'const':
    case 'bare':
    case 'in':
      return true;
    case 'not':
      return obeysRules(c.c);
    case 'and':
    case 'or':
      return c.cs.every(obeysRules);
    case 'eq': {
      if (isNullLiteral(c.l) || isNullLiteral(c.r)) return false;
      const l = unwrap(c.l);
      const r = unwrap(c.r);
      if (l.k === 'lit' && r.k === 'lit' && l.lit.t === 'bool' && r.lit.t !== 'bool') return false;
      return operandObeys(c.l) && operandObeys(c.r);
    }
    case 'ord':
      return operandObeys(c.l) && operandObeys(c.r);
    case 'between': {
      if (!c.neg && c.lo.k === 'lit' && c.hi.k === 'lit' && compare(literalValue(c.hi.lit), literalValue(c.lo.lit)) < 0) return false;
      return operandObeys(c.v) && operandObeys(c.lo) && operandObeys(c.hi);
    }
    case 'isNull':
    case 'str':
      return operandObeys(c.of);
    default:
      throw new Error(`unknown cond ${JSON.stringify(c)}`);
  }
}

function operandObeys(operand: Operand): boolean {
  if (operand.k === 'neg') return operandObeys(operand.of);
  if (operand.k === 'cond') return obeysRules(operand.c);
  return true;
}

/** Trees that obey the rules; BETWEEN with literal bounds in the wrong order is mostly mended by a swap. */
const condArbitrary: fc.Arbitrary<Cond> = rawCondArbitrary.map(mendBetween).filter(obeysRules);

function mendBetween(c: Cond): Cond {
  switch (c.k) {
    case 'between':
      if (!c.neg && c.lo.k === 'lit' && c.hi.k === 'lit' && compare(literalValue(c.hi.lit), literalValue(c.lo.lit)) < 0) {
        return { ...c, lo: c.hi, hi: c.lo };
      }
      return c;
    case 'not':
      return { k: 'not', c: mendBetween(c.c) };
    case 'and':
    case 'or':
      return { k: c.k, cs: c.cs.map(mendBetween) };
    default:
      return c;
  }
}

// ---------------------------------------------------------------------------------------------------
// The reference: RocketMQ's evaluation, written over the tree with Java's types

type JValue = null | boolean | string | { readonly t: 'int' | 'long'; readonly v: bigint } | { readonly t: 'double'; readonly v: number };
type Properties = Readonly<Record<string, string>>;

/** RocketMQ's evaluation threw: the broker logs it and does not deliver the message. */
class Thrown extends Error {}

function literalValue(lit: Literal): JValue {
  switch (lit.t) {
    case 'str':
    case 'bool':
      return lit.v;
    case 'int':
      return { t: 'int', v: lit.v };
    case 'long':
      return { t: 'long', v: lit.v };
    case 'double':
      return { t: 'double', v: lit.v };
  }
}

type JNumber = Exclude<JValue, null | boolean | string>;

/** Integer.valueOf / Long.valueOf (the kind of `like`) or Double.valueOf of a property value. */
function convert(s: string, like: JNumber): JNumber {
  if (like.t === 'double') return { t: 'double', v: parseJavaDouble(s) };
  if (!/^[+-]?[0-9]+$/.test(s)) throw new Thrown(`${like.t}: ${s}`);
  const v = BigInt(s.startsWith('+') ? s.slice(1) : s);
  const max = like.t === 'int' ? INT_MAX : LONG_MAX;
  if (v > max || v < -max - 1n) throw new Thrown(`${like.t} overflow: ${s}`);
  return { t: like.t, v };
}

function parseJavaDouble(s: string): number {
  const trimmed = s.trim();
  if (/^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(trimmed)) return Number(trimmed);
  if (/^[+-]?NaN$/.test(trimmed)) return Number.NaN;
  if (/^[+-]?Infinity$/.test(trimmed)) return trimmed.startsWith('-') ? -Infinity : Infinity;
  throw new Thrown(`double: ${s}`);
}

/** Double.compareTo: NaN is the largest and equals itself, -0.0 < 0.0. */
function javaDoubleCompare(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number(Number.isNaN(a)) - Number(Number.isNaN(b));
  if (a === 0 && b === 0) return Number(!Object.is(a, -0)) - Number(!Object.is(b, -0));
  return a < b ? -1 : a > b ? 1 : 0;
}

function numericCompare(a: JNumber, b: JNumber): number {
  if (a.t === 'double' || b.t === 'double') return javaDoubleCompare(Number(a.v), Number(b.v));
  return a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
}

/** ComparisonExpression.__compare with string conversion, for non-null values. */
function compare(l: JValue, r: JValue): number {
  if (l === null || r === null) throw new Error('compare needs non-null values');
  if (typeof l === 'boolean') {
    if (typeof r === 'boolean') return Number(l) - Number(r);
    if (typeof r === 'string') throw new Thrown('ClassCastException: Boolean to String');
    return -1;
  }
  if (typeof l === 'string') {
    if (typeof r === 'string') return l < r ? -1 : l > r ? 1 : 0;
    if (typeof r === 'boolean') return Number(l.toLowerCase() === 'true') - Number(r);
    return numericCompare(convert(l, r), r);
  }
  if (typeof r === 'boolean') return -1;
  if (typeof r === 'string') return numericCompare(l, convert(r, l));
  return numericCompare(l, r);
}

function evalOperand(operand: Operand, props: Properties): JValue {
  switch (operand.k) {
    case 'lit':
      return literalValue(operand.lit);
    case 'prop':
      return Object.hasOwn(props, operand.name) ? props[operand.name]! : null;
    case 'neg': {
      const v = evalOperand(operand.of, props);
      if (v === null || typeof v !== 'object') return null;
      if (v.t === 'double') return { t: 'double', v: -v.v };
      return { t: v.t, v: BigInt.asIntN(v.t === 'int' ? 32 : 64, -v.v) };
    }
    case 'cond': {
      const plain = unwrap(operand);
      return plain === operand ? evalCond(operand.c, props) : evalOperand(plain, props);
    }
  }
}

function evalCond(c: Cond, props: Properties): boolean | null {
  switch (c.k) {
    case 'const':
      return c.v;
    case 'bare':
      return Object.hasOwn(props, c.name) ? false : null;
    case 'not': {
      const v = evalCond(c.c, props);
      return v === null ? null : !v;
    }
    case 'and':
    case 'or': {
      // Left-deep LogicExpressions: stop at the first decisive value; unknown if any operand was.
      const decisive = c.k === 'or';
      let unknown = false;
      for (const sub of c.cs) {
        const v = evalCond(sub, props);
        if (v === decisive) return decisive;
        if (v === null) unknown = true;
      }
      return unknown ? null : !decisive;
    }
    case 'eq': {
      const l = evalOperand(c.l, props);
      const r = evalOperand(c.r, props);
      let equal: boolean | null;
      if (l === null && r === null) equal = true;
      else if (l === null) equal = null;
      else if (r === null) equal = false;
      else equal = compare(l, r) === 0;
      return c.neg && equal !== null ? !equal : equal;
    }
    case 'ord':
      return order(c.op, c.l, c.r, props);
    case 'between': {
      const parts: Cond[] = c.neg
        ? [{ k: 'ord', op: '<', l: c.v, r: c.lo }, { k: 'ord', op: '>', l: c.v, r: c.hi }]
        : [{ k: 'ord', op: '>=', l: c.v, r: c.lo }, { k: 'ord', op: '<=', l: c.v, r: c.hi }];
      return evalCond({ k: c.neg ? 'or' : 'and', cs: parts }, props);
    }
    case 'in': {
      if (!Object.hasOwn(props, c.name)) return null;
      return c.values.includes(props[c.name]!) !== c.neg;
    }
    case 'isNull':
      return (evalOperand(c.of, props) === null) !== c.neg;
    case 'str': {
      if (c.search === '') return false;
      const v = evalOperand(c.of, props);
      if (typeof v !== 'string') return false;
      const found = c.test === 'CONTAINS' ? v.includes(c.search) : c.test === 'STARTSWITH' ? v.startsWith(c.search) : v.endsWith(c.search);
      return found !== c.neg;
    }
  }
}

function order(op: '>' | '>=' | '<' | '<=', lo: Operand, ro: Operand, props: Properties): boolean | null {
  const l = evalOperand(lo, props);
  if (l === null) return null;
  const r = evalOperand(ro, props);
  if (r === null) return null;
  const sign = typeof l === 'string' && typeof r === 'string' ? javaDoubleCompare(parseJavaDouble(l), parseJavaDouble(r)) : compare(l, r);
  return op === '>' ? sign > 0 : op === '>=' ? sign >= 0 : op === '<' ? sign < 0 : sign <= 0;
}

function reference(c: Cond, props: Properties): FilterOutcome {
  try {
    return evalCond(c, props);
  } catch (error) {
    if (error instanceof Thrown) return 'error';
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------
// Rendering to text, with a style stream for keyword case, spacing, comments and optional forms

/** A small deterministic stream of choices, so one generated integer restyles a whole text. */
function styleStream(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n) >>> 0;
  };
}

const SEPARATORS = [' ', ' ', ' ', '  ', '\n', '\t', '\r\n', '\f', ' /* note */ ', ' -- note\n'] as const;

function keyword(word: string, pick: (n: number) => number): string {
  const style = pick(3);
  if (style === 0) return word;
  if (style === 1) return word.toLowerCase();
  return Array.from(word, (ch) => (pick(2) === 0 ? ch.toLowerCase() : ch)).join('');
}

function quote(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

function renderLiteral(lit: Literal, pick: (n: number) => number): string {
  switch (lit.t) {
    case 'str':
      return quote(lit.v);
    case 'bool':
      return keyword(lit.v ? 'TRUE' : 'FALSE', pick);
    case 'int':
      // RocketMQ's lexer takes a suffix only after a non-zero integer: 0L is 0 followed by L.
      return `${lit.v}${lit.suffix && lit.v > 0n ? (pick(2) === 0 ? 'L' : 'l') : ''}`;
    case 'long':
      return String(lit.v);
    case 'double': {
      const text = String(lit.v).replace('e+', pick(2) === 0 ? 'e+' : 'E');
      return /[.eE]/.test(text) ? text : `${text}.0`;
    }
  }
}

function renderOperand(operand: Operand, pick: (n: number) => number, out: string[]): void {
  switch (operand.k) {
    case 'lit':
      out.push(renderLiteral(operand.lit, pick));
      return;
    case 'prop':
      out.push(operand.name);
      return;
    case 'neg':
      out.push('-');
      renderOperand(operand.of, pick, out);
      return;
    case 'cond':
      out.push('(');
      renderCond(operand.c, pick, out, 'full');
      out.push(')');
      return;
  }
}

/** 'full' parenthesizes every sub-condition; 'minimal' only where precedence needs it. */
type Parens = 'full' | 'minimal';

function renderCond(c: Cond, pick: (n: number) => number, out: string[], parens: Parens): void {
  const kw = (word: string) => out.push(keyword(word, pick));
  switch (c.k) {
    case 'const':
      kw(c.v === null ? 'NULL' : c.v ? 'TRUE' : 'FALSE');
      return;
    case 'bare':
      out.push(c.name);
      return;
    case 'not':
      kw('NOT');
      renderChild(c.c, pick, out, parens === 'full' || !(c.c.k === 'const' || c.c.k === 'bare' || c.c.k === 'not'), parens);
      return;
    case 'and':
    case 'or':
      c.cs.forEach((sub, i) => {
        if (i > 0) kw(c.k.toUpperCase());
        // Minimal: OR inside AND needs parentheses; AND inside OR and same-kind nesting do not.
        renderChild(sub, pick, out, parens === 'full' || (c.k === 'and' && sub.k === 'or'), parens);
      });
      return;
    case 'eq':
      renderOperand(c.l, pick, out);
      out.push(c.neg ? '<>' : '=');
      renderOperand(c.r, pick, out);
      return;
    case 'ord':
      renderOperand(c.l, pick, out);
      out.push(c.op);
      renderOperand(c.r, pick, out);
      return;
    case 'between':
      renderOperand(c.v, pick, out);
      if (c.neg) kw('NOT');
      kw('BETWEEN');
      renderOperand(c.lo, pick, out);
      kw('AND');
      renderOperand(c.hi, pick, out);
      return;
    case 'in':
      out.push(c.name);
      if (c.neg) kw('NOT');
      kw('IN');
      out.push('(');
      c.values.forEach((value, i) => {
        if (i > 0) out.push(',');
        out.push(quote(value));
      });
      out.push(')');
      return;
    case 'isNull':
      renderOperand(c.of, pick, out);
      kw('IS');
      if (c.neg) kw('NOT');
      kw('NULL');
      return;
    case 'str':
      renderOperand(c.of, pick, out);
      if (c.neg) kw('NOT');
      kw(c.test);
      out.push(quote(c.search));
      return;
  }
}

function renderChild(c: Cond, pick: (n: number) => number, out: string[], wrap: boolean, parens: Parens): void {
  if (wrap) out.push('(');
  renderCond(c, pick, out, parens);
  if (wrap) out.push(')');
}

/** Tokens joined by separators of at least one blank, so '-' '-' never reads as a comment. */
function render(c: Cond, styleSeed: number, parens: Parens = 'full'): string {
  const pick = styleStream(styleSeed);
  const tokens: string[] = [];
  renderCond(c, pick, tokens, parens);
  return tokens.map((token, i) => (i === 0 ? token : SEPARATORS[pick(SEPARATORS.length)] + token)).join('');
}

const propertiesArbitrary: fc.Arbitrary<Properties> = fc.dictionary(nameArbitrary, fc.constantFrom(...VALUES), { maxKeys: NAMES.length });

// ---------------------------------------------------------------------------------------------------
// Properties

describe('SQL92 filter against the reference', () => {
  it('compiles every rule-abiding tree and agrees with the reference on every property map', () => {
    fc.assert(
      fc.property(condArbitrary, fc.integer(), fc.array(propertiesArbitrary, { minLength: 1, maxLength: 8 }), (tree, styleSeed, maps) => {
        const text = render(tree, styleSeed);
        fc.pre(text.length <= SQL92_TEXT_LENGTH_MAX);
        const filter = compileSql92(text);
        for (const props of maps) {
          const expected = reference(tree, props);
          expect(filter.evaluate(props), `${text} over ${JSON.stringify(props)}`).toBe(expected);
          expect(filter.matches(new Map(Object.entries(props)))).toBe(expected === true);
        }
      }),
      replayableParameters('sql92 agrees with the reference', 1_000),
    );
  });

  it('reads AND before OR: minimal parentheses mean what full ones do', () => {
    fc.assert(
      fc.property(condArbitrary, fc.integer(), fc.array(propertiesArbitrary, { minLength: 1, maxLength: 8 }), (tree, styleSeed, maps) => {
        const minimal = render(tree, styleSeed, 'minimal');
        fc.pre(minimal.length <= SQL92_TEXT_LENGTH_MAX);
        const filter = compileSql92(minimal);
        for (const props of maps) expect(filter.evaluate(props), `${minimal} over ${JSON.stringify(props)}`).toBe(reference(tree, props));
      }),
      replayableParameters('sql92 precedence', 500),
    );
  });
});

/** Compiles `text` and checks the only failure is a FilterError positioned inside the text. */
function compileOrExplain(text: string): void {
  let filter: CompiledFilter;
  try {
    filter = compileSql92(text);
  } catch (error) {
    expect(error).toBeInstanceOf(FilterError);
    const { code, offset, line, column } = error as FilterError;
    expect(code).toBe('ILLEGAL_FILTER_EXPRESSION');
    expect(offset).toBeGreaterThanOrEqual(0);
    expect(offset).toBeLessThanOrEqual(Math.min(text.length, SQL92_TEXT_LENGTH_MAX));
    const before = text.slice(0, offset).split(/\r\n|\r|\n/);
    expect(line).toBe(before.length);
    expect(column).toBe(before[before.length - 1]!.length + 1);
    return;
  }
  const samples: readonly Properties[] = [{}, { a: '1', b: 'x', TAGS: 'TagA' }, { a: 'abc', c: '2.5' }];
  for (const props of samples) {
    expect([true, false, null, 'error']).toContain(filter.evaluate(props));
  }
}

const SOUP = [
  'a', 'b', 'TAGS', 'NOT', 'not', 'AND', 'OR', 'IN', 'IS', 'NULL', 'BETWEEN', 'TRUE', 'FALSE', 'CONTAINS', 'STARTSWITH',
  'ENDSWITH', '(', ')', ',', '=', '<>', '>', '>=', '<', '<=', '+', '-', "'x'", "'it''s'", "'", '1', '0', '5L', '1.5', '.5',
  '1e5', '0.0', '99999999999999999999', '--', '\n', '/*', '*/', ' ', '.', '!', '\u00a0', '\u0661',
] as const;

/** Texts made to stress the bounds: deep nesting and long chains, just under and over the limits. */
const hostileArbitrary: fc.Arbitrary<string> = fc
  .record({
    shape: fc.constantFrom('parens', 'nots', 'minus', 'chain', 'contains', 'ors', 'unclosed', 'comments'),
    n: fc.oneof(fc.integer({ min: 0, max: 2 * SQL92_DEPTH_MAX }), fc.integer({ min: 0, max: SQL92_TEXT_LENGTH_MAX })),
  })
  .map(({ shape, n }) => {
    switch (shape) {
      case 'parens':
        return `${'('.repeat(n)}a = 1${')'.repeat(n)}`;
      case 'nots':
        return `${'NOT '.repeat(n)}a`;
      case 'minus':
        return `a = ${'- '.repeat(n)}1`;
      case 'chain':
        return `a = 1${' = TRUE'.repeat(n)}`;
      case 'contains':
        return `a${" CONTAINS 'x'".repeat(n)}`;
      case 'ors':
        return Array.from({ length: n + 1 }, (_, i) => `a = ${i}`).join(' OR ');
      case 'unclosed':
        return `${"'".repeat(n % 3)}${'/*'.repeat(n % 2)}${'x'.repeat(n)}`;
      case 'comments':
        return `a = 1${' --'.repeat(n)}`;
      default:
        throw new Error(shape);
    }
  });

describe('SQL92 filter on any input', () => {
  const timeMaxMs = 250;

  function quickly(text: string): void {
    const startMs = performance.now();
    compileOrExplain(text);
    const elapsedMs = performance.now() - startMs;
    expect(elapsedMs, `compiling ${text.length} characters`).toBeLessThan(timeMaxMs);
  }

  it('compiles random text or throws a positioned FilterError, never anything else', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), quickly), replayableParameters('sql92 random text', 2_000));
  });

  it('compiles random token soup or throws a positioned FilterError, never anything else', () => {
    const soup = fc
      .array(fc.tuple(fc.constantFrom(...SOUP), fc.constantFrom('', ' ', '\n')), { maxLength: 40 })
      .map((parts) => parts.map(([token, gap]) => token + gap).join(''));
    fc.assert(fc.property(soup, quickly), replayableParameters('sql92 token soup', 3_000));
  });

  it('stays bounded in time and stack on deep nesting and long chains', () => {
    fc.assert(fc.property(hostileArbitrary, quickly), replayableParameters('sql92 hostile shapes', 300));
  });
});
