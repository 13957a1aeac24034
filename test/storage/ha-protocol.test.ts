/**
 * The HA wire protocol: RocketMQ's byte layout (8-byte report, 12-byte transfer header), and decoders
 * that give the same frames whatever chunking TCP delivers (fast-check splits the stream at random);
 * the optional slave handshake (brokerId, asyncLearner) told apart from a plain offset report.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HA_HANDSHAKE_BYTES,
  HA_REPORT_OFFSET_BYTES,
  HA_TRANSFER_HEADER_BYTES,
  HaProtocolError,
  ReportOffsetDecoder,
  SlaveStreamDecoder,
  TransferDecoder,
  decodeHandshake,
  encodeHandshake,
  encodeReportOffset,
  encodeTransferFrame,
  encodeTransferHeader,
} from '../../src/storage/ha-protocol.ts';

/** Splits `bytes` at the given cut points (sorted, deduplicated, within range). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  return chunks;
}

describe('HA wire layout', () => {
  it('writes RocketMQ\'s header sizes, big-endian', () => {
    expect(HA_REPORT_OFFSET_BYTES).toBe(8);
    expect(HA_TRANSFER_HEADER_BYTES).toBe(12);
    expect([...encodeReportOffset(0x1_0000_0002)]).toEqual([0, 0, 0, 1, 0, 0, 0, 2]);
    expect([...encodeTransferHeader(0x0102, 0x0304)]).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4]);
    expect([...encodeTransferFrame(5, Uint8Array.of(9, 8))]).toEqual([0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 9, 8]);
  });

  it('refuses negative and unsafe offsets', () => {
    expect(() => encodeReportOffset(-1)).toThrow(HaProtocolError);
    const report = Buffer.alloc(8);
    report.writeBigInt64BE(-5n);
    expect(() => new ReportOffsetDecoder().push(report)).toThrow(expect.objectContaining({ code: 'OFFSET_INVALID' }));
  });

  it('bounds a frame body', () => {
    const decoder = new TransferDecoder(16);
    expect(() => decoder.push(encodeTransferHeader(0, 17))).toThrow(expect.objectContaining({ code: 'BODY_TOO_LARGE' }));
    const negative = encodeTransferHeader(0, 0);
    negative.writeInt32BE(-1, 8);
    expect(() => new TransferDecoder(16).push(negative)).toThrow(expect.objectContaining({ code: 'BODY_TOO_LARGE' }));
  });

  it('refuses a frame that does not continue the stream', () => {
    const decoder = new TransferDecoder();
    decoder.expectOffset(100);
    expect(() => decoder.push(encodeTransferFrame(90, Uint8Array.of(1)))).toThrow(expect.objectContaining({ code: 'OFFSET_GAP' }));
    const free = new TransferDecoder();
    expect(free.push(encodeTransferFrame(4096, Uint8Array.of(1, 2)))).toHaveLength(1);
    expect(free.push(encodeTransferHeader(4098, 0))).toEqual([{ physicalOffset: 4098, body: new Uint8Array(0) }]);
    expect(() => free.push(encodeTransferFrame(4096, Uint8Array.of(3)))).toThrow(expect.objectContaining({ code: 'OFFSET_GAP' }));
  });
});

describe('HA decoders under random chunking', () => {
  it('decode the same transfer frames (heartbeats included) whatever the chunking', () => {
    const frameBodies = fc.array(fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 300 })), { maxLength: 20 });
    fc.assert(
      fc.property(fc.nat({ max: 1 << 30 }), frameBodies, fc.array(fc.nat(), { maxLength: 40 }), (start, bodies, cuts) => {
        let offset = start;
        const expected: { physicalOffset: number; body: Uint8Array }[] = [];
        const parts: Uint8Array[] = [];
        for (const body of bodies) {
          expected.push({ physicalOffset: offset, body });
          parts.push(encodeTransferFrame(offset, body));
          offset += body.length;
        }
        const stream = Buffer.concat(parts);
        const decoder = new TransferDecoder(300);
        decoder.expectOffset(start);
        const frames = chunked(stream, cuts).flatMap((chunk) => decoder.push(chunk));
        expect(frames.map((frame) => ({ physicalOffset: frame.physicalOffset, body: [...frame.body] }))).toEqual(
          expected.map((frame) => ({ physicalOffset: frame.physicalOffset, body: [...frame.body] })),
        );
        expect(decoder.bufferedBytes).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the newest whole report and carries a partial one to the next chunk', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (offsets, cuts) => {
        const stream = Buffer.concat(offsets.map((offset) => encodeReportOffset(offset)));
        const decoder = new ReportOffsetDecoder();
        const seen: number[] = [];
        for (const chunk of chunked(stream, cuts)) {
          const latest = decoder.push(chunk);
          if (latest !== null) seen.push(latest);
        }
        expect(seen.at(-1)).toBe(offsets.at(-1));
        // Reports are seen in order: every value seen is one sent, no later than the next one seen.
        let index = 0;
        for (const value of seen) {
          while (index < offsets.length && offsets[index] !== value) index++;
          expect(index).toBeLessThan(offsets.length);
        }
        expect(decoder.bufferedBytes).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('slave handshake', () => {
  it('lays out magic, HANDSHAKE state, the two flags and the brokerId, big-endian', () => {
    expect(HA_HANDSHAKE_BYTES).toBe(20);
    const bytes = encodeHandshake({ brokerId: 0x0102_0304_05, asyncLearner: true, syncFromLastFile: false });
    expect([...bytes]).toEqual([0xa5, 0x48, 0x41, 0x31, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05]);
    expect(decodeHandshake(bytes)).toEqual({ brokerId: 0x0102_0304_05, asyncLearner: true, syncFromLastFile: false });
    // As an offset report the magic would be a negative offset: a plain master drops such a slave.
    expect(() => new ReportOffsetDecoder().push(bytes.subarray(0, 8))).toThrow(expect.objectContaining({ code: 'OFFSET_INVALID' }));
  });

  it('refuses a bad magic, state, flag or brokerId', () => {
    const good = encodeHandshake({ brokerId: 2, asyncLearner: false, syncFromLastFile: false });
    const broken = (at: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy[at] = value;
      return copy;
    };
    for (const bad of [broken(3, 0x30), broken(7, 2), broken(9, 2), broken(11, 7), broken(12, 0x80)]) {
      expect(() => decodeHandshake(bad)).toThrow(expect.objectContaining({ code: 'HANDSHAKE_INVALID' }));
    }
    expect(() => encodeHandshake({ brokerId: -1, asyncLearner: false, syncFromLastFile: false })).toThrow(HaProtocolError);
    // A handshake whose magic breaks after its first byte is caught by the slave stream decoder too.
    expect(() => new SlaveStreamDecoder().push(broken(2, 0))).toThrow(expect.objectContaining({ code: 'HANDSHAKE_INVALID' }));
  });

  it('decodes an optional handshake then the newest report, whatever the chunking', () => {
    const handshakes = fc.option(fc.record({ brokerId: fc.nat({ max: Number.MAX_SAFE_INTEGER }), asyncLearner: fc.boolean(), syncFromLastFile: fc.boolean() }), { nil: null });
    fc.assert(
      fc.property(handshakes, fc.array(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 30 }), (handshake, offsets, cuts) => {
        const parts = offsets.map((offset) => encodeReportOffset(offset));
        const stream = Buffer.concat(handshake === null ? parts : [encodeHandshake(handshake), ...parts]);
        const decoder = new SlaveStreamDecoder();
        const seenHandshakes: unknown[] = [];
        const seenOffsets: number[] = [];
        for (const chunk of chunked(stream, cuts)) {
          const events = decoder.push(chunk);
          if (events.handshake !== null) seenHandshakes.push(events.handshake);
          if (events.offset !== null) seenOffsets.push(events.offset);
        }
        expect(seenHandshakes).toEqual(handshake === null ? [] : [handshake]);
        expect(seenOffsets.at(-1)).toBe(offsets.at(-1));
        for (const value of seenOffsets) expect(offsets).toContain(value);
        expect(decoder.bufferedBytes).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('holds a partial handshake between chunks', () => {
    const bytes = encodeHandshake({ brokerId: 7, asyncLearner: false, syncFromLastFile: false });
    const decoder = new SlaveStreamDecoder();
    expect(decoder.push(bytes.subarray(0, 1))).toEqual({ handshake: null, offset: null });
    expect(decoder.bufferedBytes).toBe(1);
    expect(decoder.push(bytes.subarray(1, 19))).toEqual({ handshake: null, offset: null });
    expect(decoder.push(Buffer.concat([bytes.subarray(19), encodeReportOffset(42).subarray(0, 3)]))).toEqual({
      handshake: { brokerId: 7, asyncLearner: false, syncFromLastFile: false },
      offset: null,
    });
    expect(decoder.bufferedBytes).toBe(3);
    expect(decoder.push(encodeReportOffset(42).subarray(3))).toEqual({ handshake: null, offset: 42 });
  });
});
