// Tests for the SEND_BATCH_MESSAGE body, MessageConst and the unique message id. Fixtures are built by
// hand from the Java layout (MessageDecoder.encodeMessage, MessageClientIDSetter), not from our encoder.
// fast-check prints the seed and the shrunk counterexample on failure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BATCH_MESSAGE_FIXED_BYTES,
  decodeMessageBatch,
  encodeMessageBatch,
  MessageBatchError,
  MessageBatchErrorCode,
  MessageConst,
  monthBoundsMs,
  parseUniqId,
  UniqIdGenerator,
  uniqIdTimeMs,
} from '../../../src/net/remoting/message-batch.ts';
import { decodeMessageProperties, encodeMessageProperties } from '../../../src/storage/message-record.ts';
import { MessageProperty } from '../../../src/storage/message-store.ts';

/** Big-endian bytes from int32s, int16s and UTF-8 strings, in the order the layout table lists them. */
function bytes(...parts: (string | Uint8Array | { i16: number } | { i32: number })[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === 'string') out.push(...Buffer.from(part, 'utf8'));
    else if (part instanceof Uint8Array) out.push(...part);
    else if ('i16' in part) out.push((part.i16 >> 8) & 0xff, part.i16 & 0xff);
    else out.push((part.i32 >>> 24) & 0xff, (part.i32 >>> 16) & 0xff, (part.i32 >>> 8) & 0xff, part.i32 & 0xff);
  }
  return Uint8Array.from(out);
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(MessageBatchError);
    return (error as MessageBatchError).code;
  }
  return undefined;
}

const PROPS_1 = 'KEYS\u0001k1\u0002UNIQ_KEY\u0001AC11000100002A9F0000000000000001\u0002WAIT\u0001true\u0002';
const PROPS_2 = 'TAGS\u0001TagA\u0002';

/** Two messages as MessageDecoder.encodeMessages lays them out: totalSize, 0, 0, flag, body, properties. */
const JAVA_BATCH = bytes(
  { i32: 22 + 5 + Buffer.byteLength(PROPS_1) },
  { i32: 0 },
  { i32: 0 },
  { i32: 7 },
  { i32: 5 },
  'hello',
  { i16: Buffer.byteLength(PROPS_1) },
  PROPS_1,
  { i32: 22 + 0 + Buffer.byteLength(PROPS_2) },
  { i32: 0 },
  { i32: 0 },
  { i32: 0 },
  { i32: 0 },
  { i16: Buffer.byteLength(PROPS_2) },
  PROPS_2,
);

describe('decodeMessageBatch', () => {
  it('reads the body a Java producer sends', () => {
    const messages = decodeMessageBatch(JAVA_BATCH);
    expect(messages).toHaveLength(2);
    expect(messages[0]!.flag).toBe(7);
    expect(Buffer.from(messages[0]!.body).toString()).toBe('hello');
    expect(decodeMessageProperties(messages[0]!.properties)).toEqual(
      new Map([
        ['KEYS', 'k1'],
        ['UNIQ_KEY', 'AC11000100002A9F0000000000000001'],
        ['WAIT', 'true'],
      ]),
    );
    expect(messages[1]).toEqual({ flag: 0, body: new Uint8Array(0), properties: PROPS_2 });
  });

  it('encodes byte for byte what Java writes', () => {
    expect(
      encodeMessageBatch([
        { flag: 7, body: Buffer.from('hello'), properties: PROPS_1 },
        { body: new Uint8Array(0), properties: PROPS_2 },
      ]),
    ).toEqual(JAVA_BATCH);
  });

  it('ignores totalSize, magic and CRC, as Java reads them', () => {
    const odd = Uint8Array.from(JAVA_BATCH);
    odd.set(bytes({ i32: 1 }, { i32: 0x12345678 }, { i32: -1 }), 0);
    expect(decodeMessageBatch(odd)).toEqual(decodeMessageBatch(JAVA_BATCH));
  });

  it('returns views of the input, not copies', () => {
    const [first] = decodeMessageBatch(JAVA_BATCH);
    expect(first!.body.buffer).toBe(JAVA_BATCH.buffer);
  });

  it('reads an empty body as no messages', () => {
    expect(decodeMessageBatch(new Uint8Array(0))).toEqual([]);
  });

  it('reads properties with multi-byte UTF-8 by byte length', () => {
    const props = encodeMessageProperties({ TAGS: 'größe', KEYS: '键' });
    const body = bytes({ i32: 0 }, { i32: 0 }, { i32: 0 }, { i32: 1 }, { i32: 1 }, 'x', { i16: Buffer.byteLength(props) }, props);
    expect(decodeMessageBatch(body)[0]!.properties).toBe(props);
  });
});

describe('decodeMessageBatch: hostile bodies', () => {
  const header = (flag: number, bodyLength: number) => bytes({ i32: 0 }, { i32: 0 }, { i32: 0 }, { i32: flag }, { i32: bodyLength });

  it('refuses a body length beyond the input without allocating for it', () => {
    const body = bytes(header(0, 0x7fff_ffff), 'abc');
    expect(codeOf(() => decodeMessageBatch(body))).toBe(MessageBatchErrorCode.BAD_LENGTH);
  });

  it('refuses a negative body length', () => {
    expect(codeOf(() => decodeMessageBatch(bytes(header(0, -1), { i16: 0 })))).toBe(MessageBatchErrorCode.BAD_LENGTH);
  });

  it('refuses a body that leaves no room for the properties length', () => {
    expect(codeOf(() => decodeMessageBatch(bytes(header(0, 3), 'abc')))).toBe(MessageBatchErrorCode.BAD_LENGTH);
  });

  it('refuses a negative properties length (Java reads a signed short)', () => {
    expect(codeOf(() => decodeMessageBatch(bytes(header(0, 0), { i16: -1 }, 'x')))).toBe(MessageBatchErrorCode.BAD_LENGTH);
  });

  it('refuses properties running past the end', () => {
    expect(codeOf(() => decodeMessageBatch(bytes(header(0, 0), { i16: 10 }, 'abc')))).toBe(MessageBatchErrorCode.BAD_LENGTH);
  });

  it('refuses trailing bytes too few for a message header, naming where they start', () => {
    const body = bytes(JAVA_BATCH, { i32: 0 });
    try {
      decodeMessageBatch(body);
      expect.unreachable();
    } catch (error) {
      expect((error as MessageBatchError).code).toBe(MessageBatchErrorCode.TRUNCATED);
      expect((error as MessageBatchError).offset).toBe(JAVA_BATCH.length);
    }
  });

  it('refuses more messages than messagesMax', () => {
    expect(codeOf(() => decodeMessageBatch(JAVA_BATCH, { messagesMax: 1 }))).toBe(MessageBatchErrorCode.TOO_MANY_MESSAGES);
    expect(decodeMessageBatch(JAVA_BATCH, { messagesMax: 2 })).toHaveLength(2);
  });

  it('throws only MessageBatchError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
        try {
          const messages = decodeMessageBatch(input);
          expect(messages.length).toBeLessThanOrEqual(Math.ceil(input.length / BATCH_MESSAGE_FIXED_BYTES));
        } catch (error) {
          expect(error).toBeInstanceOf(MessageBatchError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decode(encode(messages)) gives the messages back', () => {
    const message = fc.record({
      flag: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
      body: fc.uint8Array({ maxLength: 64 }),
      properties: fc
        .dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !/[\u0001\u0002]/.test(s)), fc.string({ maxLength: 8 }).filter((s) => !/[\u0001\u0002]/.test(s)), { maxKeys: 4 })
        .map((props) => encodeMessageProperties(props)),
    });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 6 }), (messages) => {
        const decoded = decodeMessageBatch(encodeMessageBatch(messages));
        expect(decoded.map((m) => ({ ...m, body: Uint8Array.from(m.body) }))).toEqual(messages);
      }),
      { numRuns: 300 },
    );
  });
});

describe('MessageConst', () => {
  it('agrees with the names the store reads', () => {
    expect(MessageConst.PROPERTY_TAGS).toBe(MessageProperty.TAGS);
    expect(MessageConst.PROPERTY_KEYS).toBe(MessageProperty.KEYS);
    expect(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX).toBe(MessageProperty.UNIQ_KEY);
    expect(MessageConst.PROPERTY_DELAY_TIME_LEVEL).toBe(MessageProperty.DELAY);
  });
});

describe('unique message id (MessageClientIDSetter)', () => {
  const monthStart = new Date(2024, 4, 1).getTime(); // local time, as Java's Calendar
  const clockAt = (nowMs: number) => ({ nowMs: () => nowMs });

  it('lays out ip, pid, instance hash, time since the month began and a counter, in uppercase hex', () => {
    const generator = new UniqIdGenerator({
      ip: Uint8Array.from([10, 0, 0, 1]),
      pid: 0x1_2345, // only the low 16 bits are kept, as Java's (short) cast
      instanceHash: -2,
      clock: clockAt(monthStart + 5000),
    });
    expect(generator.next()).toBe('0A000001' + '2345' + 'FFFFFFFE' + '00001388' + '0000');
    expect(generator.next()).toBe('0A000001' + '2345' + 'FFFFFFFE' + '00001388' + '0001');
  });

  it('wraps the time part as Java does past 2^31 ms, and the parser recovers it', () => {
    const elapsedMs = 26 * 24 * 3600 * 1000; // beyond Integer.MAX_VALUE ms
    const generator = new UniqIdGenerator({ ip: Uint8Array.from([127, 0, 0, 1]), pid: 1, instanceHash: 1, clock: clockAt(monthStart + elapsedMs) });
    const id = generator.next();
    expect(id.slice(20, 28)).toBe(elapsedMs.toString(16).toUpperCase().padStart(8, '0'));
    expect(parseUniqId(id)).toEqual({ ip: '127.0.0.1', pid: 1, instanceHash: 1, timeDiffMs: elapsedMs, counter: 0 });
    expect(uniqIdTimeMs(id, monthStart + elapsedMs + 10)).toBe(monthStart + elapsedMs);
  });

  it('takes a time part not before now as last month, like getNearlyTimeFromID', () => {
    const id = '7F000001' + '0001' + '00000001' + '00001388' + '0000';
    const previousMonth = new Date(2024, 3, 1).getTime();
    expect(uniqIdTimeMs(id, monthStart + 1000)).toBe(previousMonth + 5000);
    expect(uniqIdTimeMs(id, monthStart + 6000)).toBe(monthStart + 5000);
  });

  it('treats a clock stepped back a little as 0, as Java does for NTP', () => {
    let now = monthStart + 10;
    const generator = new UniqIdGenerator({ ip: Uint8Array.from([1, 2, 3, 4]), pid: 0, instanceHash: 0, clock: { nowMs: () => now } });
    generator.next();
    now = monthStart - 500; // the month start stays, as Java's only moves forward
    expect(generator.next().slice(20, 28)).toBe('00000000');
  });

  it('uses 56 digits for an IPv6 client', () => {
    const ip = new Uint8Array(16);
    ip[15] = 1;
    const id = new UniqIdGenerator({ ip, pid: 2, instanceHash: 3, clock: clockAt(monthStart) }).next();
    expect(id).toHaveLength(56);
    expect(parseUniqId(id)).toMatchObject({ ip: '::1', pid: 2, instanceHash: 3, timeDiffMs: 0 });
  });

  it('rejects strings that are not ids', () => {
    expect(parseUniqId('')).toBeNull();
    expect(parseUniqId('Z'.repeat(32))).toBeNull();
    expect(parseUniqId('0'.repeat(30))).toBeNull();
    expect(uniqIdTimeMs('nope', 0)).toBeNull();
  });

  it('knows month boundaries across a year end', () => {
    const { startMs, nextStartMs } = monthBoundsMs(new Date(2023, 11, 31, 23, 0).getTime());
    expect(startMs).toBe(new Date(2023, 11, 1).getTime());
    expect(nextStartMs).toBe(new Date(2024, 0, 1).getTime());
  });
});
