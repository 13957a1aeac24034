import { describe, expect, it } from 'vitest';
import { indexKeyHash } from '../../src/storage/index-file.ts';
import { javaStringHashCode, scheduleTagsCode, tagsCodeOf } from '../../src/storage/tag-hash.ts';

/** An independent reference: the textbook formula in BigInt, reduced to a signed 32-bit int at the end. */
function referenceHash(text: string): number {
  let sum = 0n;
  for (let i = 0; i < text.length; i++) sum += BigInt(text.charCodeAt(i)) * 31n ** BigInt(text.length - 1 - i);
  return Number(BigInt.asIntN(32, sum));
}

describe('javaStringHashCode', () => {
  it('matches the formula worked by hand for "TagA"', () => {
    // 'T'=84, 'a'=97, 'g'=103, 'A'=65: 84*31^3 + 97*31^2 + 103*31 + 65.
    const byHand = 84 * 29_791 + 97 * 961 + 103 * 31 + 65;
    expect(byHand).toBe(2_598_919);
    expect(javaStringHashCode('TagA')).toBe(byHand);
  });

  it('matches well-known Java values', () => {
    expect(javaStringHashCode('')).toBe(0);
    expect(javaStringHashCode('hello')).toBe(99_162_322);
    expect(javaStringHashCode('Aa')).toBe(2112);
    expect(javaStringHashCode('BB')).toBe(2112);
    // The classic string whose hashCode is Integer.MIN_VALUE.
    expect(javaStringHashCode('polygenelubricants')).toBe(-2_147_483_648);
  });

  it('wraps like Java int arithmetic and hashes UTF-16 code units (surrogates separately)', () => {
    for (const text of ['TagB', 'hello world', 'TopicTest#KEY-0001', 'a'.repeat(100), '标签', '\u{1F600}', 'x\uD83Dy']) {
      expect(javaStringHashCode(text)).toBe(referenceHash(text));
    }
    expect(javaStringHashCode('\u{1F600}')).toBe(0xd83d * 31 + 0xde00);
  });
});

describe('tag codes', () => {
  it('is 0 for no tags and the Java hash otherwise', () => {
    expect(tagsCodeOf(undefined)).toBe(0);
    expect(tagsCodeOf('')).toBe(0);
    expect(tagsCodeOf('TagA')).toBe(2_598_919);
    // The whole tags string is hashed as one, separators included.
    expect(tagsCodeOf('TagA||TagB')).toBe(referenceHash('TagA||TagB'));
  });

  it('is the deliver timestamp for a delay-level message', () => {
    expect(scheduleTagsCode(1_700_000_000_000, 10_000)).toBe(1_700_000_010_000);
  });

  it('makes index key hashes non-negative, MIN_VALUE becoming 0', () => {
    expect(indexKeyHash('polygenelubricants')).toBe(0);
    const negative = ['hello world!', 'TagA', 'abcdefgh'].find((text) => javaStringHashCode(text) < 0);
    expect(negative).toBeDefined();
    expect(indexKeyHash(negative!)).toBe(-javaStringHashCode(negative!));
  });
});
