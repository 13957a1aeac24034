import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchCodec, EnvelopeKind, envelopeWords } from '../../src/runtime/wire.ts';

/** A value as cross-thread messages carry them: plain objects, arrays, strings, numbers, bytes (read back as Uint8Array). */
const payload = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.integer(),
    fc.double({ noNaN: true }).filter((value) => !Object.is(value, -0)), // msgpack has no -0: it arrives as 0
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 64 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }).filter((key) => key !== '__proto__'), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** A batch of envelopes, with many objects of a few shapes as real batches have. */
const batch = fc.array(
  fc.tuple(fc.constantFrom(...Object.values(EnvelopeKind)), fc.nat(1_000), fc.nat(1_000_000), payload),
  { maxLength: 40 },
).map((envelopes) => envelopes.flat());

describe('BatchCodec', () => {
  it('gives every batch back as it was, whichever encoder wrote it and in whatever order batches arrive', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(2), batch), { minLength: 1, maxLength: 12 }), (batches) => {
        const encoders = [new BatchCodec(), new BatchCodec(), new BatchCodec()];
        const decoder = new BatchCodec();
        const encoded = batches.map(([from, envelopes]) => encoders[from]!.encode(envelopes));
        for (const [index, buffer] of encoded.entries()) {
          const decoded = decoder.decode(buffer);
          expect(decoded.length % envelopeWords).toBe(0);
          expect(decoded).toEqual(batches[index]![1]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('carries more shapes in one batch than msgpackr has record ids, and shapes that change between batches', () => {
    const encoder = new BatchCodec();
    const decoder = new BatchCodec();
    for (let round = 0; round < 20; round++) {
      const envelopes: unknown[] = [];
      for (let i = 0; i < 300; i++) {
        const shape = (i * 7 + round * 13) % 500;
        envelopes.push(EnvelopeKind.tell, shape, 0, { [`field${shape}`]: i, extFields: { [`k${shape % 11}`]: String(round) }, bytes: new Uint8Array([i & 0xff]) });
      }
      expect(decoder.decode(encoder.encode(envelopes))).toEqual(envelopes);
    }
  });

  it('does not let a key named __proto__ (as a hostile Remoting header can carry) set a prototype', () => {
    const hostile: unknown = JSON.parse('{"__proto__":{"polluted":true},"topic":"t"}');
    const encoder = new BatchCodec();
    const decoder = new BatchCodec();
    for (let i = 0; i < 40; i++) {
      const [, , , decoded] = decoder.decode(encoder.encode([EnvelopeKind.tell, 1, 0, { extFields: hostile }])) as [number, number, number, { extFields: Record<string, unknown> }];
      expect(Object.getPrototypeOf(decoded.extFields)).toBe(Object.prototype);
      expect(decoded.extFields['topic']).toBe('t');
      expect((decoded.extFields as { polluted?: unknown }).polluted).toBeUndefined();
    }
  });

  it('carries SharedArrayBuffers by reference beside the bytes, and only batches that name one take the side list', () => {
    const encoder = new BatchCodec();
    const decoder = new BatchCodec();
    const first = new SharedArrayBuffer(16);
    const second = new SharedArrayBuffer(8);
    const plain = encoder.encode([EnvelopeKind.tell, 1, 0, { bytes: new Uint8Array(first, 0, 4) }]);
    expect(plain).toBeInstanceOf(ArrayBuffer);
    const data = encoder.encode([EnvelopeKind.tell, 1, 0, { grant: first, again: first }, EnvelopeKind.replyOk, 0, 7, [second]]);
    expect(data).not.toBeInstanceOf(ArrayBuffer);
    const decoded = decoder.decode(data) as [number, number, number, { grant: SharedArrayBuffer; again: SharedArrayBuffer }, number, number, number, SharedArrayBuffer[]];
    expect(decoded[3].grant).toBe(first);
    expect(decoded[3].again).toBe(first);
    expect(decoded[7][0]).toBe(second);
    // A typed array over shared memory is still copied: only a SharedArrayBuffer itself is shared.
    const copied = (decoder.decode(plain) as [number, number, number, { bytes: Uint8Array }])[3].bytes;
    new Uint8Array(first)[0] = 9;
    expect(copied[0]).toBe(0);
    // The bytes alone cannot stand in for the side list.
    expect(() => decoder.decode((data as { bytes: ArrayBuffer }).bytes)).toThrow(/does not carry/);
  });
});
