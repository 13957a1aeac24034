import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NATIVE_COPY_MIN_BYTES, copyBytes, touchForWrite, touchShared } from '../../src/storage/shared-copy.ts';

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

describe('touchForWrite', () => {
  it('leaves zeros as they were and writes nothing outside its range', () => {
    fc.assert(
      fc.property(fc.nat(3 * 4096), fc.nat(3 * 4096), (a, b) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        const bytes = new Uint8Array(new SharedArrayBuffer(3 * 4096 + 64));
        bytes.fill(7, 0, from);
        bytes.fill(7, to);
        const expected = Uint8Array.from(bytes);
        touchForWrite(bytes, from, to);
        expect(sameBytes(bytes, expected)).toBe(true);
      }),
    );
    expect(() => touchForWrite(new Uint8Array(16), 0, 17)).toThrow(/bad range/);
  });

  it('makes the pages of fresh shared memory writable, so that reading then writing each slot faults no more', () => {
    const pages = 2048;
    const bytes = new Uint8Array(new SharedArrayBuffer(pages * 4096));
    const touchFaults = minorFaults(() => touchForWrite(bytes, 0, bytes.length));
    // Reading a slot, then writing it, as the ConsumeQueue and the IndexFile do with each entry.
    const slotFaults = minorFaults(() => {
      for (let at = 0; at + 20 <= bytes.length; at += 20) {
        if (bytes[at] !== 0) throw new Error('not empty');
        bytes[at] = 1;
      }
    });
    expect(touchFaults).toBeGreaterThan(pages / 2); // the memory was fresh: the touch faulted it in
    expect(slotFaults).toBeLessThan(pages / 20);
  });
});

describe('touchShared', () => {
  it('keeps every byte as it was, zero or not, inside its range and out', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 3 * 4096, maxLength: 3 * 4096 }), fc.nat(3 * 4096), fc.nat(3 * 4096), (content, a, b) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        const buffer = new SharedArrayBuffer(content.length);
        new Uint8Array(buffer).set(content);
        touchShared(buffer, from, to);
        expect(sameBytes(new Uint8Array(buffer), content)).toBe(true);
      }),
      { numRuns: 50 },
    );
    expect(() => touchShared(new SharedArrayBuffer(16), 0, 17)).toThrow(/bad range/);
  });

  it('takes one fault per fresh page, after which reading then writing each slot faults no more', () => {
    const pages = 2048;
    const buffer = new SharedArrayBuffer(pages * 4096);
    const bytes = new Uint8Array(buffer);
    const touchFaults = minorFaults(() => touchShared(buffer, 0, buffer.byteLength));
    const slotFaults = minorFaults(() => {
      for (let at = 0; at + 20 <= bytes.length; at += 20) {
        if (bytes[at] !== 0) throw new Error('not empty');
        bytes[at] = 1;
      }
    });
    expect(touchFaults).toBeGreaterThan(pages / 2);
    expect(touchFaults).toBeLessThan(1.5 * pages); // not a read fault then a write fault per page
    expect(slotFaults).toBeLessThan(pages / 20);
  });
});

function minorFaults(body: () => void): number {
  const before = process.resourceUsage().minorPageFault;
  body();
  return process.resourceUsage().minorPageFault - before;
}
