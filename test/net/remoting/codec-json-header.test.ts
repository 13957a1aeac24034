// JSON headers: the decoder reads most headers with one plain JSON.parse and the rest the exact way
// (numbers kept as their source text). This checks both against a reference reading built on a different
// mechanism, JSON.parse's source-text access, for headers of every shape the decoder may meet.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, RemotingCodecError } from '../../../src/net/remoting/codec.ts';
import { isLanguageName, languageNameOf } from '../../../src/net/remoting/remoting-command.ts';

/** A frame around a JSON header given as text. */
function jsonFrame(headerText: string): Buffer {
  const header = Buffer.from(headerText, 'utf8');
  const frame = Buffer.alloc(8 + header.length);
  frame.writeInt32BE(4 + header.length, 0);
  frame.writeInt32BE(header.length, 4);
  header.copy(frame, 8);
  return frame;
}

/** A number kept as the text it was written with. */
class NumberText {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }
}

type Reference =
  | { readonly ok: true; readonly fields: Record<string, unknown> }
  | { readonly ok: false };

const REFUSED = { ok: false } as const;

/** The header rules of codec.ts, read independently: numbers through JSON.parse's source text. */
function referenceReading(text: string): Reference {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (_key, value, context?: { source?: string }) =>
      typeof value === 'number' ? new NumberText(context!.source!) : value,
    );
  } catch {
    return REFUSED;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || parsed instanceof NumberText) return REFUSED;
  const header = parsed as Record<string, unknown>;
  const scalarText = (value: unknown): string | undefined =>
    value instanceof NumberText ? value.text : typeof value === 'string' ? value : undefined;
  const int = (key: string, fallback: number | undefined): number | undefined => {
    const raw = header[key];
    if (raw === undefined || raw === null) return fallback;
    const textOf = scalarText(raw);
    if (textOf === undefined) return undefined;
    if (!/^-?\d{1,10}$/.test(textOf) && !/^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(textOf)) return undefined;
    const value = Number(textOf);
    if (!Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) return undefined;
    return value | 0;
  };
  const code = int('code', undefined);
  const opaque = int('opaque', undefined);
  const version = int('version', 0);
  const flag = int('flag', 0);
  if (code === undefined || opaque === undefined || version === undefined || flag === undefined) return REFUSED;

  let language: string = 'JAVA';
  const rawLanguage = header['language'];
  if (rawLanguage !== undefined && rawLanguage !== null) {
    const textOf = scalarText(rawLanguage);
    if (textOf === undefined) return REFUSED;
    if (isLanguageName(textOf)) language = textOf;
    else if (/^-?\d{1,10}$/.test(textOf)) language = languageNameOf(Number(textOf)) ?? 'OTHER';
    else language = 'OTHER';
  }

  const rawRemark = header['remark'];
  let remark: string | undefined;
  if (rawRemark !== undefined && rawRemark !== null) {
    remark = scalarText(rawRemark);
    if (remark === undefined) return REFUSED;
  }

  const extFields: Record<string, string> = {};
  const rawExt = header['extFields'];
  if (rawExt !== undefined && rawExt !== null) {
    if (typeof rawExt !== 'object' || Array.isArray(rawExt) || rawExt instanceof NumberText) return REFUSED;
    for (const [key, value] of Object.entries(rawExt)) {
      if (value === null) continue;
      const textOf = typeof value === 'boolean' ? String(value) : scalarText(value);
      if (textOf === undefined) return REFUSED;
      Object.defineProperty(extFields, key, { value: textOf, enumerable: true, writable: true, configurable: true });
    }
  }
  const fields: Record<string, unknown> = { code, language, version, opaque, flag, extFields, serializeType: 'JSON' };
  if (remark !== undefined) fields['remark'] = remark;
  return { ok: true, fields };
}

function decoded(text: string): Reference {
  try {
    const cmd = decodeFrame(jsonFrame(text));
    return { ok: true, fields: { ...cmd, extFields: { ...cmd.extFields } } };
  } catch (error) {
    expect(error).toBeInstanceOf(RemotingCodecError);
    return REFUSED;
  }
}

/** JSON text for a value, numbers given as their own text. */
type Json = string | boolean | null | NumberText | readonly Json[] | { readonly [key: string]: Json };

function render(value: Json, space: string): string {
  if (value instanceof NumberText) return value.text;
  if (Array.isArray(value)) return `[${value.map((item) => render(item, space)).join(`,${space}`)}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}${space}:${space}${render(item as Json, space)}`);
    return `{${space}${members.join(`,${space}`)}${space}}`;
  }
  return JSON.stringify(value);
}

const numberText = fc.oneof(
  fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }).map(String),
  fc.constantFrom('2147483648', '-2147483649', '12345678901234567890', '-0', '0.0', '7.0', '7e0', '1E+3', '1.5', '-0.5e-2', '1e400'),
);
const number = numberText.map((text) => new NumberText(text));
const shortText = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('JAVA', 'GO', 'RUST', 'KOTLIN', '7', '1.0', '__proto__', 'a"\\b\u0001'));
const scalar: fc.Arbitrary<Json> = fc.oneof(shortText, number, fc.boolean(), fc.constant(null));
const nested: fc.Arbitrary<Json> = fc.oneof(fc.array(scalar, { maxLength: 3 }), fc.dictionary(shortText, scalar, { maxKeys: 3 }));
const anyValue: fc.Arbitrary<Json> = fc.oneof({ weight: 4, arbitrary: scalar }, { weight: 1, arbitrary: nested });
/** Mostly what a Java client sends (a plain header), often one odd value. */
const intField = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }).map((n) => new NumberText(String(n))) }, { weight: 2, arbitrary: anyValue });
const extValue = fc.oneof({ weight: 6, arbitrary: shortText }, { weight: 2, arbitrary: anyValue });

const header = fc
  .record(
    {
      code: intField,
      extFields: fc.oneof({ weight: 6, arbitrary: fc.dictionary(shortText, extValue, { maxKeys: 6 }) }, { weight: 1, arbitrary: anyValue }),
      flag: intField,
      language: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('JAVA', 'GO', 'CPP') }, { weight: 1, arbitrary: anyValue }),
      opaque: intField,
      remark: fc.oneof(shortText, anyValue),
      serializeTypeCurrentRPC: fc.constant('JSON'),
      version: intField,
      other: anyValue,
    },
    { requiredKeys: ['code', 'opaque'] },
  )
  .chain((fields) => fc.shuffledSubarray(Object.keys(fields), { minLength: Object.keys(fields).length }).map((order) => Object.fromEntries(order.map((key) => [key, (fields as Record<string, Json>)[key]!]))));

describe('JSON header reading', () => {
  it('agrees with a reference reading on headers of every shape', () => {
    fc.assert(
      fc.property(header, fc.constantFrom('', ' ', '\n\t'), (fields, space) => {
        const text = render(fields as Json, space);
        expect(decoded(text)).toEqual(referenceReading(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with it on texts cut short or with a character changed', () => {
    fc.assert(
      fc.property(header, fc.nat(), fc.constantFrom('', '"', ',', '}', '1', '.', 'e', '-', ' ', 'x'), (fields, at, replacement) => {
        const text = render(fields as Json, '');
        const cut = at % (text.length + 1);
        const changed = text.slice(0, cut) + replacement + text.slice(cut + 1);
        expect(decoded(changed)).toEqual(referenceReading(changed));
      }),
      { numRuns: 3000 },
    );
  });

  it('reads a header with an integral number in an integer field the same in both readings', () => {
    // Plain (only strings in extFields) and exact (a number in extFields) readings of `code` 7.0.
    expect(decoded('{"code":7.0,"opaque":1e0}')).toEqual(referenceReading('{"code":7.0,"opaque":1e0}'));
    const plain = decodeFrame(jsonFrame('{"code":7.0,"opaque":1,"extFields":{"a":"1"}}'));
    const exact = decodeFrame(jsonFrame('{"code":7.0,"opaque":1,"extFields":{"a":1}}'));
    expect([plain.code, exact.code]).toEqual([7, 7]);
    expect(exact.extFields).toEqual({ a: '1' });
  });
});
