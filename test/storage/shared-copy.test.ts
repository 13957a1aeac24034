import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REALIGN_MIN_BYTES, SCRATCH_BYTES_MAX, copyAligned, stagingOffset } from '../../src/storage/shared-copy.ts';

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

describe('copyAligned', () => {
  it('copies exactly what TypedArray.set copies, at every alignment and in both directions', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 15 }),
        fc.oneof(fc.integer({ min: 0, max: 4 * REALIGN_MIN_BYTES }), fc.integer({ min: 0, max: 96 * 1024 })),
        fc.integer({ min: 0, max: 37 }),
        fc.nat(),
        (sharedTarget, sharedSource, targetOffset, sourceOffset, length, slack, positionSeed) => {
          const source = viewOf(sharedSource, sourceOffset, length, 7);
          const target = viewOf(sharedTarget, targetOffset, length + slack, 101);
          const position = positionSeed % (slack + 1);
          const want = expected(target, source, position);
          copyAligned(target, source, position);
          expect(sameBytes(new Uint8Array(target.buffer), want)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('copies sources larger than the scratch buffer in pieces', () => {
    const length = 2 * SCRATCH_BYTES_MAX + 12_345;
    const source = viewOf(false, 3, length, 5);
    const target = viewOf(true, 0, length + 64, 9);
    const want = expected(target, source, 13);
    copyAligned(target, source, 13);
    expect(sameBytes(new Uint8Array(target.buffer), want)).toBe(true);
  });

  it('copies out of a shared buffer into ordinary memory at a different alignment', () => {
    const source = viewOf(true, 5, 70_000, 11);
    const target = viewOf(false, 0, 70_100, 13);
    const want = expected(target, source, 2);
    copyAligned(target, source, 2);
    expect(sameBytes(new Uint8Array(target.buffer), want)).toBe(true);
  });

  it('stages each piece at the shared side\'s word alignment', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.nat(4096), fc.nat(4096), (intoShared, targetOffset, sourceOffset, position, done) => {
        const target = viewOf(intoShared, targetOffset, 8192 + 16, 1);
        const source = viewOf(!intoShared, sourceOffset, 8192, 2);
        const offset = stagingOffset(target, source, position, done);
        const shared = intoShared ? target.byteOffset + position + done : source.byteOffset + done;
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset).toBeLessThan(8);
        expect(offset % 8).toBe(shared % 8);
      }),
      { numRuns: 200 },
    );
  });
});
