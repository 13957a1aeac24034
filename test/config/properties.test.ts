import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PropertiesSyntaxError } from '../../src/config/errors.ts';
import { parseProperties } from '../../src/config/properties.ts';

function toMap(text: string): Record<string, string> {
  return Object.fromEntries(parseProperties(text).map((e) => [e.key, e.value]));
}

describe('parseProperties', () => {
  it('reads the three separators and trims the whitespace around them', () => {
    const text = ['a=1', 'b: 2', 'c 3', '  d   =   4  ', 'e\t:\t5', 'f    6'].join('\n');
    expect(toMap(text)).toEqual({ a: '1', b: '2', c: '3', d: '4', e: '5', f: '6' });
  });

  it('skips # and ! comments and blank lines, and reports the line of each entry', () => {
    const text = '# comment\n\n! another\n   # indented comment\nlistenPort=10911\n\t\nbrokerName = b1\n';
    expect(parseProperties(text)).toEqual([
      { key: 'listenPort', value: '10911', line: 5 },
      { key: 'brokerName', value: 'b1', line: 7 },
    ]);
  });

  it('keeps # inside a value and a second separator as part of the value', () => {
    expect(toMap('a=x#y\nb==c\nc=d:e')).toEqual({ a: 'x#y', b: '=c', c: 'd:e' });
  });

  it('reads a key with no value as the empty string', () => {
    expect(toMap('flag\nother=\nthird :')).toEqual({ flag: '', other: '', third: '' });
  });

  it('joins continuation lines, dropping the leading whitespace of each continued line', () => {
    const text = 'messageDelayLevel = 1s 5s \\\n      10s 30s \\\n   1m\nnext=1';
    expect(parseProperties(text)).toEqual([
      { key: 'messageDelayLevel', value: '1s 5s 10s 30s 1m', line: 1 },
      { key: 'next', value: '1', line: 4 },
    ]);
  });

  it('does not continue after an even number of trailing backslashes, nor after a comment', () => {
    expect(toMap('a=x\\\\\nb=y')).toEqual({ a: 'x\\', b: 'y' });
    expect(toMap('# comment \\\nb=y')).toEqual({ b: 'y' });
  });

  it('accepts \\r\\n and \\r line endings', () => {
    expect(parseProperties('a=1\r\nb=2\rc=3')).toEqual([
      { key: 'a', value: '1', line: 1 },
      { key: 'b', value: '2', line: 2 },
      { key: 'c', value: '3', line: 3 },
    ]);
  });

  it('resolves \\t \\n \\r \\f, \\uXXXX and escaped separators in keys and values', () => {
    const text = 'tab=a\\tb\nnl=a\\nb\ncr=a\\rb\nff=a\\fb\nuni=\\u00e9\\u4E2D\nkey\\ with\\=odd\\:chars=v\\=1\nplain=\\q\\\\';
    expect(toMap(text)).toEqual({
      tab: 'a\tb',
      nl: 'a\nb',
      cr: 'a\rb',
      ff: 'a\fb',
      uni: '\u00e9\u4e2d',
      'key with=odd:chars': 'v=1',
      plain: 'q\\',
    });
  });

  it('trims trailing whitespace of a value but keeps escaped trailing whitespace', () => {
    expect(toMap('a=10911   \nb=x\\ \nc=\\ lead')).toEqual({ a: '10911', b: 'x ', c: ' lead' });
  });

  it('keeps every occurrence of a repeated key, in order', () => {
    expect(parseProperties('a=1\na=2').map((e) => e.value)).toEqual(['1', '2']);
  });

  it('drops a backslash at the very end of the file', () => {
    expect(toMap('a=1\\')).toEqual({ a: '1' });
  });

  it('refuses a malformed \\u escape and names its line', () => {
    let error: unknown;
    try {
      parseProperties('a=1\n\n# x\nb=\\u12G4');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PropertiesSyntaxError);
    expect((error as PropertiesSyntaxError).code).toBe('PROPERTIES_SYNTAX_INVALID');
    expect((error as PropertiesSyntaxError).line).toBe(4);
    expect((error as PropertiesSyntaxError).message).toMatch(/^line 4: malformed \\uXXXX escape/);
  });

  // Writes a value so that parseProperties must give it back unchanged: every character outside
  // [A-Za-z0-9] becomes a \uXXXX escape, the most general form Java's Properties.store emits.
  function escapeAll(text: string): string {
    let out = '';
    for (const ch of text) {
      if (/^[A-Za-z0-9]$/.test(ch)) out += ch;
      else for (const unit of ch.split('')) out += `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`;
    }
    return out;
  }

  it('gives back any key and value written with escapes (property)', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 40 }), { maxKeys: 8 }),
        fc.constantFrom('=', ':', ' ', ' = ', '\t:\t'),
        (pairs, separator) => {
          const text = Object.entries(pairs)
            .map(([k, v]) => `${escapeAll(k)}${separator}${escapeAll(v)}`)
            .join('\n');
          expect(toMap(text)).toEqual({ ...pairs });
        },
      ),
      { numRuns: 300 },
    );
  });
});
