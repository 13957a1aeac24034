// A reader for RocketMQ's `broker.conf` format, which is java.util.Properties text:
//
// - A natural line ends at `\n`, `\r` or `\r\n`. Whitespace means space, tab and form feed.
// - A line whose first non-whitespace character is `#` or `!` is a comment; a blank line is skipped.
//   A comment line never continues onto the next line, whatever it ends with.
// - A line ending in an odd number of backslashes continues: the backslash is dropped and the next
//   line is appended with its leading whitespace removed.
// - The key runs to the first unescaped `=`, `:` or whitespace. Whitespace after the key, then at
//   most one `=` or `:`, then more whitespace, are skipped; the rest is the value.
// - Escapes in keys and values: `\t \n \r \f`, `\uXXXX` (exactly four hex digits), and `\x` for any
//   other character x, which stands for x itself (so `\=`, `\:`, `\#`, `\ ` and `\\` work).
//
// Two deliberate differences from Java: trailing unescaped whitespace of a value is trimmed (Java
// keeps it, and then `Integer.parseInt("10911 ")` fails silently inside RocketMQ), and the file is
// decoded by the caller (see load.ts: UTF-8, falling back to ISO-8859-1 as Java reads it).
// The only syntax error is a malformed `\u` escape; a backslash at the very end of the file is dropped.

import { PropertiesSyntaxError } from './errors.ts';

/** One `key=value` pair of a properties file, with the line where its logical line starts. */
export interface PropertyEntry {
  /** The key after unescaping. */
  readonly key: string;
  /** The value after unescaping, trailing unescaped whitespace trimmed. */
  readonly value: string;
  /** 1-based number of the first natural line of the entry. */
  readonly line: number;
}

/** The most entries a file may have; a real broker.conf has a few dozen. */
export const PROPERTY_ENTRIES_MAX = 100_000;

const NATURAL_LINE_BREAK = /\r\n|\r|\n/;

function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\f';
}

function skipWhitespace(text: string, from: number): number {
  let i = from;
  while (i < text.length && isWhitespace(text.charAt(i))) i++;
  return i;
}

function endsWithOddBackslashes(line: string): boolean {
  let count = 0;
  for (let i = line.length - 1; i >= 0 && line.charAt(i) === '\\'; i--) count++;
  return count % 2 === 1;
}

/** Parses properties text into entries in file order; a repeated key appears once per occurrence (the last one wins when applied). */
export function parseProperties(text: string): PropertyEntry[] {
  const lines = text.split(NATURAL_LINE_BREAK);
  const entries: PropertyEntry[] = [];
  let index = 0;
  while (index < lines.length) {
    const startLine = index + 1;
    const first = lines[index] ?? '';
    index++;
    const start = skipWhitespace(first, 0);
    if (start === first.length) continue;
    const lead = first.charAt(start);
    if (lead === '#' || lead === '!') continue;

    // Join continuation lines into one logical line.
    let logical = first.slice(start);
    while (endsWithOddBackslashes(logical)) {
      logical = logical.slice(0, -1);
      if (index >= lines.length) break;
      const next = lines[index] ?? '';
      index++;
      logical += next.slice(skipWhitespace(next, 0));
    }
    entries.push(parseLogicalLine(logical, startLine));
    if (entries.length > PROPERTY_ENTRIES_MAX) {
      throw new PropertiesSyntaxError(startLine, `more than ${PROPERTY_ENTRIES_MAX} entries`);
    }
  }
  return entries;
}

function parseLogicalLine(logical: string, line: number): PropertyEntry {
  const key = readEscaped(logical, 0, line, true);
  let i = skipWhitespace(logical, key.end);
  const separator = logical.charAt(i);
  if (separator === '=' || separator === ':') i = skipWhitespace(logical, i + 1);
  const value = readEscaped(logical, i, line, false);
  return { key: key.text, value: value.text, line };
}

interface EscapedRun {
  readonly text: string;
  readonly end: number;
}

// Reads from `from` to the end of the line (a value) or to the first unescaped separator (a key),
// resolving escapes. For a value, trailing whitespace that was not escaped is dropped.
function readEscaped(logical: string, from: number, line: number, isKey: boolean): EscapedRun {
  let out = '';
  let keptLength = 0; // length of `out` up to its last escaped or non-whitespace character
  let i = from;
  while (i < logical.length) {
    const ch = logical.charAt(i);
    if (isKey && (ch === '=' || ch === ':' || isWhitespace(ch))) break;
    if (ch !== '\\') {
      out += ch;
      if (!isWhitespace(ch)) keptLength = out.length;
      i++;
      continue;
    }
    const escaped = logical.charAt(i + 1);
    if (escaped === 'u') {
      const hex = logical.slice(i + 2, i + 6);
      if (!/^[0-9A-Fa-f]{4}$/.test(hex)) {
        throw new PropertiesSyntaxError(line, `malformed \\uXXXX escape "\\u${hex}"`);
      }
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 6;
    } else {
      out += unescapeChar(escaped);
      i += 2;
    }
    keptLength = out.length;
  }
  return { text: isKey ? out : out.slice(0, keptLength), end: i };
}

function unescapeChar(ch: string): string {
  switch (ch) {
    case 't':
      return '\t';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 'f':
      return '\f';
    default:
      return ch;
  }
}
