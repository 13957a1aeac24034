import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeBatch, isPutRefusal, type EncodedBatch, type PutMessageInput } from '../../src/storage/message-store.ts';
import {
  BLANK_MAGIC_CODE,
  MESSAGE_MAGIC_CODE,
  MESSAGE_MAGIC_CODE_V2,
  MessageSysFlag,
  type RecordInput,
  batchMessageIds,
  checkRecord,
  decodeMessageProperties,
  decodeRecord,
  encodeBlank,
  encodeMessageProperties,
  encodeRecord,
  messagePropertyOf,
  offsetMessageId,
  parseOffsetMessageId,
  recordSize,
} from '../../src/storage/message-record.ts';

function input(overrides: Partial<RecordInput> = {}): RecordInput {
  return {
    topic: 'TopicTest',
    queueId: 3,
    flag: 7,
    queueOffset: 42,
    physicalOffset: 0x1_0000_0010,
    sysFlag: MessageSysFlag.TRANSACTION_NOT_TYPE,
    bornTimestampMs: 1_700_000_000_123,
    bornHost: { address: '192.168.1.20', port: 53412 },
    storeTimestampMs: 1_700_000_000_456,
    storeHost: { address: '10.0.0.5', port: 10911 },
    reconsumeTimes: 2,
    preparedTransactionOffset: 0,
    body: new TextEncoder().encode('hello, rocketmq'),
    properties: encodeMessageProperties({ TAGS: 'TagA', KEYS: 'k1', UNIQ_KEY: 'ABCDEF' }),
    ...overrides,
  };
}

function encode(value: RecordInput): Buffer {
  const bytes = Buffer.alloc(recordSize(value));
  expect(encodeRecord(bytes, 0, value)).toBe(bytes.length);
  return bytes;
}

/** The expected bytes, written field by field with Buffer's own big-endian writers as Java would. */
function expectedLayout(value: RecordInput, hostBytes: { born: Buffer; store: Buffer }, sysFlag: number): Buffer {
  const topic = Buffer.from(value.topic, 'utf8');
  const properties = Buffer.from(value.properties, 'utf8');
  const v2 = topic.length > 127;
  const parts: Buffer[] = [];
  const int = (v: number): void => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    parts.push(b);
  };
  const long = (v: number): void => {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    parts.push(b);
  };
  const total =
    4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + hostBytes.born.length + 8 + hostBytes.store.length + 4 + 8 +
    4 + value.body.length + (v2 ? 2 : 1) + topic.length + 2 + properties.length;
  int(total);
  int(v2 ? MESSAGE_MAGIC_CODE_V2 : MESSAGE_MAGIC_CODE);
  int(crc32(value.body) & 0x7fffffff);
  int(value.queueId);
  int(value.flag);
  long(value.queueOffset);
  long(value.physicalOffset);
  int(sysFlag);
  long(value.bornTimestampMs);
  parts.push(hostBytes.born);
  long(value.storeTimestampMs);
  parts.push(hostBytes.store);
  int(value.reconsumeTimes);
  long(value.preparedTransactionOffset);
  int(value.body.length);
  parts.push(Buffer.from(value.body));
  if (v2) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(topic.length);
    parts.push(b);
  } else {
    parts.push(Buffer.from([topic.length]));
  }
  parts.push(topic);
  const pl = Buffer.alloc(2);
  pl.writeInt16BE(properties.length);
  parts.push(pl, properties);
  return Buffer.concat(parts);
}

describe('record layout', () => {
  it('writes the IPv4 v1 layout byte for byte as Java does', () => {
    const value = input();
    const bytes = encode(value);
    const born = Buffer.from([192, 168, 1, 20, 0, 0, 0xd0, 0xa4]); // port 53412
    const store = Buffer.from([10, 0, 0, 5, 0, 0, 0x2a, 0x9f]); // port 10911
    expect(bytes.equals(expectedLayout(value, { born, store }, 0))).toBe(true);
    // Java's fixed positions (MessageDecoder): magic at 4, flag at 16, physical offset at 28, store time at 56.
    expect(bytes.readInt32BE(4)).toBe(-626843481);
    expect(bytes.readInt32BE(16)).toBe(7);
    expect(Number(bytes.readBigInt64BE(28))).toBe(0x1_0000_0010);
    expect(Number(bytes.readBigInt64BE(56))).toBe(1_700_000_000_456);
    expect(bytes.length).toBe(88 + 15 + 1 + 9 + 2 + Buffer.byteLength(value.properties));
  });

  it('writes IPv6 hosts as 16 + 4 bytes and sets both v6 sysFlag bits', () => {
    const value = input({
      bornHost: { address: '2001:db8::1', port: 1234 },
      storeHost: { address: '::1', port: 10911 },
      sysFlag: MessageSysFlag.COMPRESSED_FLAG,
    });
    const bytes = encode(value);
    const born = Buffer.alloc(20);
    born.writeUInt16BE(0x2001, 0);
    born.writeUInt16BE(0x0db8, 2);
    born.writeUInt16BE(1, 14);
    born.writeInt32BE(1234, 16);
    const store = Buffer.alloc(20);
    store[15] = 1;
    store.writeInt32BE(10911, 16);
    const sysFlag = MessageSysFlag.COMPRESSED_FLAG | MessageSysFlag.BORNHOST_V6_FLAG | MessageSysFlag.STOREHOSTADDRESS_V6_FLAG;
    expect(bytes.equals(expectedLayout(value, { born, store }, sysFlag))).toBe(true);
    const view = decodeRecord(bytes, 0);
    expect(view.bornHost).toEqual({ address: '2001:db8::1', port: 1234 });
    expect(view.storeHost).toEqual({ address: '::1', port: 10911 });
    expect(view.storeTimestampMs).toBe(value.storeTimestampMs);
    expect(view.sysFlag).toBe(sysFlag);
  });

  it('switches to v2 magic with a 2-byte topic length for topics over 127 bytes', () => {
    const short = encode(input({ topic: 't'.repeat(127) }));
    expect(short.readInt32BE(4)).toBe(MESSAGE_MAGIC_CODE);
    const value = input({ topic: 't'.repeat(200) });
    const bytes = encode(value);
    const born = Buffer.from([192, 168, 1, 20, 0, 0, 0xd0, 0xa4]);
    const store = Buffer.from([10, 0, 0, 5, 0, 0, 0x2a, 0x9f]);
    expect(bytes.equals(expectedLayout(value, { born, store }, 0))).toBe(true);
    expect(bytes.readInt32BE(4)).toBe(-626843477);
    const view = decodeRecord(bytes, 0);
    expect(view.version).toBe(2);
    expect(view.topic).toBe('t'.repeat(200));
  });

  it('masks the body CRC to a non-negative int like UtilAll.crc32', () => {
    let body = Buffer.from('x');
    for (let i = 0; crc32(body) < 0x8000_0000; i++) body = Buffer.from(`body-${i}`);
    const bytes = encode(input({ body }));
    expect(bytes.readInt32BE(8)).toBe(crc32(body) - 0x8000_0000);
  });

  it('decodes every field back', () => {
    const value = input({ preparedTransactionOffset: 9_007_199_254_740_000, reconsumeTimes: 16 });
    const target = new Uint8Array(new SharedArrayBuffer(4096));
    encodeRecord(target, 100, value);
    const view = decodeRecord(target, 100);
    expect({
      topic: view.topic,
      queueId: view.queueId,
      flag: view.flag,
      queueOffset: view.queueOffset,
      physicalOffset: view.physicalOffset,
      bornTimestampMs: view.bornTimestampMs,
      bornHost: view.bornHost,
      storeTimestampMs: view.storeTimestampMs,
      storeHost: view.storeHost,
      reconsumeTimes: view.reconsumeTimes,
      preparedTransactionOffset: view.preparedTransactionOffset,
      properties: view.properties,
    }).toEqual({
      topic: value.topic,
      queueId: value.queueId,
      flag: value.flag,
      queueOffset: value.queueOffset,
      physicalOffset: value.physicalOffset,
      bornTimestampMs: value.bornTimestampMs,
      bornHost: value.bornHost,
      storeTimestampMs: value.storeTimestampMs,
      storeHost: value.storeHost,
      reconsumeTimes: value.reconsumeTimes,
      preparedTransactionOffset: value.preparedTransactionOffset,
      properties: value.properties,
    });
    expect(Buffer.from(view.body).equals(Buffer.from(value.body))).toBe(true);
    expect(view.propertiesMap()).toEqual(new Map([['TAGS', 'TagA'], ['KEYS', 'k1'], ['UNIQ_KEY', 'ABCDEF']]));
  });

  it('writes the blank end-of-file marker as size then BLANK magic', () => {
    const bytes = Buffer.alloc(64);
    encodeBlank(bytes, 24, 40);
    expect(bytes.readInt32BE(24)).toBe(40);
    expect(bytes.readInt32BE(28)).toBe(-875286124);
    expect(BLANK_MAGIC_CODE).toBe(-875286124);
    expect(checkRecord(bytes, 24, 64)).toEqual({ kind: 'blank', size: 40 });
    expect(checkRecord(bytes, 24, 60)).toEqual({ kind: 'corrupt', reason: 'blank-size' });
  });
});

describe('offset message id', () => {
  it('matches RocketMQ for a known IPv4 id (10.154.0.38:10911, offset 9001)', () => {
    // The id is taken from RocketMQ's own trace tests; it is host, port, then offset in uppercase hex.
    expect(offsetMessageId({ address: '10.154.0.38', port: 10911 }, 9001)).toBe('0A9A002600002A9F0000000000002329');
    expect(parseOffsetMessageId('0A9A002600002A9F0000000000002329')).toEqual({
      storeHost: { address: '10.154.0.38', port: 10911 },
      physicalOffset: 9001,
    });
  });

  it('uses 16 + 4 + 8 bytes for IPv6 store hosts', () => {
    const id = offsetMessageId({ address: '::1', port: 0 }, 123456);
    expect(id).toBe(`${'0'.repeat(31)}1${'0'.repeat(8)}000000000001E240`);
    expect(id).toHaveLength(56);
    expect(parseOffsetMessageId(id)).toEqual({ storeHost: { address: '::1', port: 0 }, physicalOffset: 123456 });
  });

  it('rejects ids of other lengths or with non-hex digits', () => {
    expect(parseOffsetMessageId('0A9A')).toBeNull();
    expect(parseOffsetMessageId('ZZ9A002600002A9F0000000000002329')).toBeNull();
  });
});

describe('properties string', () => {
  it('encodes name\\u0001value\\u0002 per entry and decodes it back', () => {
    const text = encodeMessageProperties(new Map([['a', '1'], ['KEYS', 'x y']]));
    expect(text).toBe('a\u00011\u0002KEYS\u0001x y\u0002');
    expect(decodeMessageProperties(text)).toEqual(new Map([['a', '1'], ['KEYS', 'x y']]));
  });

  it('skips entries without a name or a value, as Java string2messageProperties does', () => {
    expect(decodeMessageProperties('1\u00011\u0002\u00012')).toEqual(new Map([['1', '1']]));
    expect(decodeMessageProperties('k\u0001\u0002x\u0001y')).toEqual(new Map([['x', 'y']]));
    expect(decodeMessageProperties('')).toEqual(new Map());
  });

  it('looks one name up exactly as the decoded map answers it, for any text', () => {
    // Texts built from a small alphabet, so that names repeat, separators fall anywhere and entries are
    // empty, nameless, valueless or hold a second \u0001 in their value.
    const piece = fc.constantFrom('\u0001', '\u0002', 'K', 'KE', 'KEYS', 'TAGS', 'UNIQ_KEY', 'a', 'b c', '', 'K\u0001', 'é');
    const text = fc.array(piece, { maxLength: 24 }).map((pieces) => pieces.join(''));
    const name = fc.constantFrom('K', 'KE', 'KEYS', 'TAGS', 'UNIQ_KEY', 'a', 'é', 'b c');
    fc.assert(
      fc.property(text, name, (properties, wanted) => {
        expect(messagePropertyOf(properties, wanted)).toBe(decodeMessageProperties(properties).get(wanted));
      }),
      { numRuns: 5_000 },
    );
    expect(messagePropertyOf('KEYS\u0001a\u0002KEYS\u0001b\u0002', 'KEYS')).toBe('b');
    expect(messagePropertyOf('XKEYS\u0001a\u0002', 'KEYS')).toBeUndefined();
    expect(() => messagePropertyOf('a\u0001b', 'a\u0001')).toThrow();
  });
});

describe('checkRecord', () => {
  it('accepts a record and rejects one at the wrong physical offset', () => {
    const bytes = encode(input());
    expect(checkRecord(bytes, 0, bytes.length, { expectedPhysicalOffset: 0x1_0000_0010 })).toEqual({
      kind: 'record',
      size: bytes.length,
    });
    expect(checkRecord(bytes, 0, bytes.length, { expectedPhysicalOffset: 0 })).toEqual({
      kind: 'corrupt',
      reason: 'physical-offset',
    });
  });

  it('calls a record cut short at any byte torn, never a record, unless the missing bytes were zero', () => {
    const whole = encode(input());
    for (let kept = 0; kept < whole.length; kept++) {
      const file = Buffer.alloc(whole.length + 64);
      whole.copy(file, 0, 0, kept);
      const check = checkRecord(file, 0, file.length, { expectedPhysicalOffset: 0x1_0000_0010 });
      if (check.kind === 'record') {
        // Only possible when every byte that did not make it was zero anyway: the record is intact.
        expect(file.subarray(0, whole.length).equals(whole)).toBe(true);
      } else {
        expect(check.kind).toBe('torn');
      }
    }
  });

  it('calls a flipped body byte corrupt and an all-zero header unwritten', () => {
    const bytes = encode(input());
    bytes[100] = bytes[100]! ^ 0x40;
    expect(checkRecord(bytes, 0, bytes.length)).toEqual({ kind: 'corrupt', reason: 'body-crc' });
    expect(checkRecord(Buffer.alloc(200), 0, 200)).toEqual({ kind: 'torn', reason: 'unwritten' });
  });

  it('calls lengths that do not add up a mismatch and an unknown magic corrupt', () => {
    const bytes = encode(input());
    bytes.writeInt32BE(bytes.length + 1, 0);
    const longer = Buffer.concat([bytes, Buffer.from([9])]);
    expect(checkRecord(longer, 0, longer.length)).toEqual({ kind: 'corrupt', reason: 'length-mismatch' });
    const magic = encode(input());
    magic.writeInt32BE(0x12345678, 4);
    expect(checkRecord(magic, 0, magic.length)).toEqual({ kind: 'corrupt', reason: 'magic' });
    const torn = encode(input());
    torn.writeInt32BE(MESSAGE_MAGIC_CODE & ~0xffff, 4);
    expect(checkRecord(torn, 0, torn.length)).toEqual({ kind: 'torn', reason: 'header-torn' });
  });

  it('refuses records larger than the maximum size', () => {
    const bytes = encode(input());
    expect(checkRecord(bytes, 0, bytes.length, { maxSizeBytes: bytes.length - 1 })).toEqual({
      kind: 'corrupt',
      reason: 'size',
    });
  });
});

describe('batch encoding', () => {
  // encodeBatch lays records out through writeRecord with the topic and hosts encoded once per batch;
  // encodeRecord encodes each part itself and reads the record back. The bytes must be the same.
  it('lays out every record of a batch exactly as encodeRecord does, and names their msgIds as the writer does', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'Z', '9', '_', '-', 'é', '中'), minLength: 0, maxLength: 40 });
    const host = fc.oneof(
      fc.record({ address: fc.constantFrom('127.0.0.1', '10.1.2.3'), port: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ address: fc.constantFrom('::1', 'fe80::1:2'), port: fc.integer({ min: 0, max: 0xffff }) }),
    );
    const message = fc.record({
      body: fc.uint8Array({ maxLength: 300 }),
      properties: fc.array(fc.tuple(fc.stringMatching(/^[a-zA-Z]{1,8}$/), text), { maxLength: 3 }),
      flag: fc.integer({ min: -5, max: 5 }),
      bornHost: host,
      bornTimestampMs: fc.integer({ min: 0, max: 2 ** 45 }),
      reconsumeTimes: fc.integer({ min: 0, max: 16 }),
    });
    fc.assert(
      fc.property(
        // Topic names are 1 to 127 characters (TopicValidator), so batches always use the v1 layout.
        fc.stringMatching(/^[a-zA-Z0-9_%|-]{1,127}$/),
        fc.integer({ min: 0, max: 1000 }),
        host,
        fc.array(message, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (topic, queueId, storeHost, messages, physicalOffset) => {
          const inputs: PutMessageInput[] = messages.map((m) => ({
            topic, queueId, body: m.body, flag: m.flag, bornHost: m.bornHost, bornTimestampMs: m.bornTimestampMs,
            reconsumeTimes: m.reconsumeTimes, properties: encodeMessageProperties(m.properties),
          }));
          const batch = encodeBatch(inputs, storeHost, 1 << 20, 5);
          expect(isPutRefusal(batch)).toBe(false);
          const records = (batch as EncodedBatch).records;
          const expected: Uint8Array[] = inputs.map((m) => {
            const record: RecordInput = {
              topic, queueId, flag: m.flag!, queueOffset: 0, physicalOffset: 0, sysFlag: 0, bornTimestampMs: m.bornTimestampMs!,
              bornHost: m.bornHost!, storeTimestampMs: 0, storeHost, reconsumeTimes: m.reconsumeTimes!, preparedTransactionOffset: 0,
              body: m.body, properties: m.properties!,
            };
            const bytes = new Uint8Array(recordSize(record));
            encodeRecord(bytes, 0, record);
            return bytes;
          });
          expect(Buffer.from(records).equals(Buffer.concat(expected))).toBe(true);
          const ids: string[] = [];
          let offset = physicalOffset;
          for (const bytes of expected) {
            ids.push(offsetMessageId(storeHost, offset));
            offset += bytes.length;
          }
          expect(batchMessageIds(records, inputs.length, physicalOffset)).toBe(ids.join(','));
        },
      ),
      { numRuns: 300 },
    );
  });
});
