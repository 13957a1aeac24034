import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NATIVE_COPY_MIN_BYTES, copyBytes } from '../../src/storage/shared-copy.ts';

/** A view of `length` bytes at `offset` into a fresh buffer (shared or not) filled with a pattern. */
function viewOf(shared: boolean, offset: number, length: number, seed: number): Uint8Array {
  const buffer = shared ? new SharedArrayBuffer(offset + length + 16) : new ArrayBuffer(offset + length + 16);
  const whole = new Uint8Array(buffer);
  for (let i = 0; i < whole.length; i++) whole[i] = (i * 31 + seed) & 0xff;
  return new Uint8Array(buffer, offset, length);
}

/** Whether two byte arrays are equal (a memcmp: toEqual walks large arrays slowly). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** What target.set(source, position) leaves in the target's whole buffer. */
function expected(target: Uint8Array, source: Uint8Array, position: number): Uint8Array {
  const whole = Uint8Array.from(new Uint8Array(target.buffer));
  whole.set(source, target.byteOffset + position);
  return whole;
}

describe('copyBytes', () => {
  it('copies exactly what TypedArray.set copies, at every alignment and in both directions', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 15 }),
        fc.oneof(fc.integer({ min: 0, max: 4 * NATIVE_COPY_MIN_BYTES }), fc.integer({ min: 0, max: 96 * 1024 })),
        fc.integer({ min: 0, max: 37 }),
        fc.nat(),
        (sharedTarget, sharedSource, targetOffset, sourceOffset, length, slack, positionSeed) => {
          const source = viewOf(sharedSource, sourceOffset, length, 7);
          const target = viewOf(sharedTarget, targetOffset, length + slack, 101);
          const position = positionSeed % (slack + 1);
          const want = expected(target, source, position);
          copyBytes(target, source, position);
          expect(sameBytes(new Uint8Array(target.buffer), want)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('copies a large source into a shared buffer at an odd position', () => {
    const length = 3 * 1024 * 1024 + 12_345;
    const source = viewOf(false, 3, length, 5);
    const target = viewOf(true, 0, length + 64, 9);
    const want = expected(target, source, 13);
    copyBytes(target, source, 13);
    expect(sameBytes(new Uint8Array(target.buffer), want)).toBe(true);
  });

  it('refuses a copy that would leave the target', () => {
    const source = viewOf(false, 0, 1_000, 5);
    const target = viewOf(true, 0, 1_200, 9);
    expect(() => copyBytes(target, source, 201)).toThrow(/leaves the target/);
  });

  it('copies out of a shared buffer into ordinary memory at a different alignment', () => {
    const source = viewOf(true, 5, 70_000, 11);
    const target = viewOf(false, 0, 70_100, 13);
    const want = expected(target, source, 2);
    copyBytes(target, source, 2);
    expect(sameBytes(new Uint8Array(target.buffer), want)).toBe(true);
  });
});
