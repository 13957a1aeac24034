// Example and property tests for the fastjson reader and writer. fast-check prints the seed and the
// shrunk counterexample on failure; replay one with `fc.assert(property, { seed, path })`.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FastjsonError,
  FastjsonErrorCode,
  type FastjsonValue,
  formatFastjson,
  parseFastjson,
  toPlainJson,
} from '../../../src/net/remoting/fastjson.ts';

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(FastjsonError);
    return (error as FastjsonError).code;
  }
  return undefined;
}

describe('parseFastjson: what fastjson writes', () => {
  it('reads unquoted integer map keys, as fastjson writes a Map<Integer, ...>', () => {
    // ConsumerOffsetManager's offsetTable as fastjson writes it.
    const value = parseFastjson('{"offsetTable":{"TopicTest@cg":{0:12,1:40,15:-1}}}');
    const table = (value as Map<unknown, unknown>).get('offsetTable') as Map<unknown, Map<unknown, unknown>>;
    const queues = table.get('TopicTest@cg')!;
    expect([...queues.entries()]).toEqual([
      [0, 12],
      [1, 40],
      [15, -1],
    ]);
    expect(toPlainJson(value)).toEqual({ offsetTable: { 'TopicTest@cg': { '0': 12, '1': 40, '15': -1 } } });
  });

  it('reads whole objects as map keys, as fastjson writes a Map<MessageQueue, ...>', () => {
    const text =
      '{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:' +
      '{"brokerOffset":10,"consumerOffset":8,"lastTimestamp":1700000000000,"pullOffset":9},' +
      '{"brokerName":"broker-a","queueId":1,"topic":"TopicTest"}:{"brokerOffset":3,"consumerOffset":3,"lastTimestamp":0,"pullOffset":3}}}';
    const root = parseFastjson(text) as Map<FastjsonValue, FastjsonValue>;
    const table = root.get('offsetTable') as Map<FastjsonValue, FastjsonValue>;
    const keys = [...table.keys()] as Map<FastjsonValue, FastjsonValue>[];
    expect(keys.map((key) => key.get('queueId'))).toEqual([0, 1]);
    expect((table.get(keys[0]!) as Map<string, number>).get('consumerOffset')).toBe(8);
    // Plain data cannot hold an object key.
    expect(toPlainJson(root)).toBeUndefined();
    // And the writer gives the same text back.
    expect(formatFastjson(root)).toBe(text.replace('0.0', '0'));
  });

  it('accepts unquoted names, single quotes, stray commas, Java number suffixes and a BOM', () => {
    const value = parseFastjson("\uFEFF{ name:'a\\'b', ,count:12L, ratio:1.5F, list:[1,,2,], }");
    expect(toPlainJson(value)).toEqual({ name: "a'b", count: 12, ratio: 1.5, list: [1, 2] });
  });

  it('reads escapes fastjson reads, and raw control characters', () => {
    expect(parseFastjson('"\\u0001\\x41\\v\\0\\/\\t"')).toBe('\u0001A\u000b\u0000/\t');
    expect(parseFastjson('"TAGS\u0001a\u0002"')).toBe('TAGS\u0001a\u0002');
  });

  it('keeps longs beyond 2^53 exact as bigint', () => {
    expect(parseFastjson('[9223372036854775807,-9223372036854775808,9007199254740991]')).toEqual([
      9223372036854775807n,
      -9223372036854775808n,
      9007199254740991,
    ]);
  });

  it('decodes UTF-8 bytes, bad sequences becoming U+FFFD as in Java', () => {
    const bytes = Uint8Array.from([0x22, 0xe4, 0xb8, 0xad, 0xff, 0x22]);
    expect(parseFastjson(bytes)).toBe('中\uFFFD');
  });

  it('lets a repeated key keep its last value', () => {
    expect(toPlainJson(parseFastjson('{"a":1,"a":2}'))).toEqual({ a: 2 });
  });
});

describe('parseFastjson: refusals carry stable codes', () => {
  it.each([
    ['{"a":1} trailing', 'trailing text'],
    ['{"a" 1}', 'missing colon'],
    ['{"a":1 "b":2}', 'missing comma'],
    ['[1 2]', 'missing comma in array'],
    ['"abc', 'unterminated string'],
    ['{"a":1', 'unterminated object'],
    ['/* c */ {}', 'comment'],
    ['{"a":tru}', 'bad literal'],
    ['"\\q"', 'bad escape'],
    ['"\\u12"', 'short unicode escape'],
    ['', 'empty text'],
  ])('%s (%s) is FASTJSON_SYNTAX', (text) => {
    expect(codeOf(() => parseFastjson(text))).toBe(FastjsonErrorCode.SYNTAX);
  });

  it('refuses an oversized input before decoding it', () => {
    const bytes = new Uint8Array(1025).fill(0x20);
    expect(codeOf(() => parseFastjson(bytes, { bytesMax: 1024 }))).toBe(FastjsonErrorCode.TOO_LARGE);
    expect(codeOf(() => parseFastjson(' '.repeat(1025), { bytesMax: 1024 }))).toBe(FastjsonErrorCode.TOO_LARGE);
  });

  it('refuses nesting beyond depthMax without exhausting the stack', () => {
    expect(codeOf(() => parseFastjson('['.repeat(100_000)))).toBe(FastjsonErrorCode.TOO_DEEP);
    expect(codeOf(() => parseFastjson('{"a":'.repeat(10) + '1' + '}'.repeat(10), { depthMax: 9 }))).toBe(
      FastjsonErrorCode.TOO_DEEP,
    );
    expect(parseFastjson('{"a":'.repeat(10) + '1' + '}'.repeat(10), { depthMax: 10 })).toBeInstanceOf(Map);
  });

  it('refuses more values than valuesMax', () => {
    const text = `[${new Array(101).fill('{}').join(',')}]`;
    expect(codeOf(() => parseFastjson(text, { valuesMax: 100 }))).toBe(FastjsonErrorCode.TOO_MANY_VALUES);
    expect(parseFastjson(text, { valuesMax: 102 })).toHaveLength(101);
  });

  it('reports where it stopped', () => {
    try {
      parseFastjson('{"a":1,"b":x}');
      expect.unreachable();
    } catch (error) {
      expect((error as FastjsonError).position).toBe(11);
    }
  });
});

describe('formatFastjson', () => {
  it('writes number keys bare, string keys quoted, records in their own order, undefined left out', () => {
    const map = new Map<number | string, string>([
      [0, 'a'],
      ['x', 'b'],
    ]);
    expect(formatFastjson({ z: map, a: undefined, b: [1, null, true] })).toBe('{"z":{0:"a","x":"b"},"b":[1,null,true]}');
  });

  it('writes NaN and infinities as null, as fastjson writes such a double', () => {
    expect(formatFastjson([Number.NaN, Number.POSITIVE_INFINITY, 1.5, 10n])).toBe('[null,null,1.5,10]');
  });

  it('escapes the property separators so they survive a round trip', () => {
    const text = formatFastjson({ p: 'KEYS\u0001k\u0002' });
    expect(text).toBe('{"p":"KEYS\\u0001k\\u0002"}');
    expect(toPlainJson(parseFastjson(text))).toEqual({ p: 'KEYS\u0001k\u0002' });
  });

  it('stops a cyclic value with an assertion, not a stack overflow', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(() => formatFastjson(cyclic as never)).toThrow(/deeper than/);
  });
});

describe('properties', () => {
  const jsonValue: fc.Arbitrary<FastjsonValue> = fc.letrec<{ value: FastjsonValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      // An integral double beyond 2^53 written without an exponent reads back as a bigint, by design.
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0) && (!Number.isInteger(d) || Number.isSafeInteger(d) || Math.abs(d) >= 1e21)),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).filter((b) => b > 2n ** 53n || b < -(2n ** 53n)),
      fc.string({ unit: 'binary' }),
      fc.array(tie('value'), { maxLength: 5 }),
      fc
        .array(fc.tuple(fc.oneof(fc.string({ unit: 'binary' }), fc.integer({ min: 0, max: 1000 })), tie('value')), { maxLength: 5 })
        .map((entries) => new Map<FastjsonValue, FastjsonValue>(entries)),
    ),
  })).value;

  it('parse(format(v)) equals v for string and number keys', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        expect(parseFastjson(formatFastjson(value), { depthMax: 200 })).toEqual(value);
      }),
      { numRuns: 300 },
    );
  });

  it('parses standard JSON exactly as JSON.parse does', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (text) => {
        // Beyond 2^53 we keep a bigint where JSON.parse rounds; compare them as numbers.
        const plain = JSON.parse(JSON.stringify(toPlainJson(parseFastjson(text)), (_key, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
        expect(plain).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  const tokens = fc.constantFrom('{', '}', '[', ']', ':', ',', '"a"', "'b", '1', '-', '1e', 'x', '\\', '"', '12L', 'true', ' ', '{{', '"\\u00');
  const jsonish = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.array(tokens, { maxLength: 40 }).map((t) => t.join('')));

  it('throws only FastjsonError on arbitrary text', () => {
    fc.assert(
      fc.property(jsonish, (text) => {
        try {
          parseFastjson(text);
        } catch (error) {
          expect(error).toBeInstanceOf(FastjsonError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
