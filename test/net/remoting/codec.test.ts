import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeCommand,
  FRAME_MAX_BYTES_DEFAULT,
  FrameDecoder,
  RemotingCodecError,
  type RemotingCodecErrorCode,
} from '../../../src/net/remoting/codec.ts';
import {
  createRequest,
  createResponse,
  type RemotingCommand,
  RequestCode,
  ResponseCode,
} from '../../../src/net/remoting/remoting-command.ts';

/** Builds bytes from big-endian integers and ASCII strings, the way the layout table reads. */
function bytes(...parts: (string | { u8: number } | { i16: number } | { i32: number })[]): Buffer {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === 'string') {
      for (const ch of Buffer.from(part, 'utf8')) out.push(ch);
    } else if ('u8' in part) {
      out.push(part.u8 & 0xff);
    } else if ('i16' in part) {
      out.push((part.i16 >> 8) & 0xff, part.i16 & 0xff);
    } else {
      const v = part.i32;
      out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    }
  }
  return Buffer.from(out);
}

/** A frame around a JSON header given as text. */
function jsonFrame(headerText: string, body = ''): Buffer {
  const header = Buffer.from(headerText, 'utf8');
  const bodyBytes = Buffer.from(body, 'utf8');
  return Buffer.concat([
    bytes({ i32: 4 + header.length + bodyBytes.length }, { i32: header.length }),
    header,
    bodyBytes,
  ]);
}

/** A frame around a ROCKETMQ header given as raw bytes. */
function binaryFrame(header: Buffer, body = ''): Buffer {
  const bodyBytes = Buffer.from(body, 'utf8');
  return Buffer.concat([
    bytes({ i32: 4 + header.length + bodyBytes.length }, { i32: (1 << 24) | header.length }),
    header,
    bodyBytes,
  ]);
}

function codecErrorOf(fn: () => unknown): RemotingCodecError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RemotingCodecError);
    return error as RemotingCodecError;
  }
  throw new Error('expected a RemotingCodecError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: RemotingCodecErrorCode): void {
  expect(codecErrorOf(fn).code).toBe(code);
}

function text(body: Uint8Array | undefined): string | undefined {
  return body === undefined ? undefined : Buffer.from(body).toString('utf8');
}

describe('golden layouts', () => {
  // Captured from a Java 4.9.5 broker answering an UPDATE_BROKER_CONFIG request (public CVE-2023-33246
  // write-ups show the same bytes): length 0x63, header length 0x5f, fastjson's alphabetical key order.
  const javaResponseHeader =
    '{"code":0,"flag":1,"language":"JAVA","opaque":0,"serializeTypeCurrentRPC":"JSON","version":403}';

  it('encodes a JSON response byte for byte as the Java broker does', () => {
    const response = createResponse({ opaque: 0, serializeType: 'JSON' }, ResponseCode.SUCCESS, undefined, {
      version: 403,
    });
    const expected = Buffer.concat([bytes({ i32: 0x63 }, { i32: 0x5f }), Buffer.from(javaResponseHeader)]);
    expect(javaResponseHeader.length).toBe(0x5f);
    expect(encodeCommand(response).equals(expected)).toBe(true);
    expect(decodeFrame(expected)).toEqual({ ...response });
  });

  it('encodes a JSON request with extFields, remark and body', () => {
    const request = createRequest({
      code: RequestCode.GET_ROUTEINFO_BY_TOPIC,
      opaque: 7,
      version: 453,
      remark: 'r',
      extFields: { topic: 'TBW102' },
      body: Buffer.from('xy'),
    });
    const header =
      '{"code":105,"extFields":{"topic":"TBW102"},"flag":0,"language":"JAVA","opaque":7,' +
      '"remark":"r","serializeTypeCurrentRPC":"JSON","version":453}';
    const expected = Buffer.concat([
      bytes({ i32: 4 + header.length + 2 }, { u8: 0 }, { u8: 0 }, { i16: header.length }),
      Buffer.from(header),
      Buffer.from('xy'),
    ]);
    expect(encodeCommand(request).equals(expected)).toBe(true);
    const decoded = decodeFrame(expected);
    expect({ ...decoded, body: text(decoded.body) }).toEqual({ ...request, body: 'xy' });
  });

  it('encodes a ROCKETMQ request field by field', () => {
    const request = createRequest({
      code: RequestCode.GET_ROUTEINFO_BY_TOPIC,
      opaque: 7,
      version: 403,
      extFields: { topic: 'T1' },
      body: Buffer.from('hi'),
      serializeType: 'ROCKETMQ',
    });
    const header = bytes(
      { i16: 105 }, // code
      { u8: 0 }, // language JAVA
      { i16: 403 }, // version
      { i32: 7 }, // opaque
      { i32: 0 }, // flag
      { i32: 0 }, // remark length: none
      { i32: 2 + 5 + 4 + 2 }, // extFields length
      { i16: 5 },
      'topic',
      { i32: 2 },
      'T1',
    );
    expect(header.length).toBe(34);
    const expected = Buffer.concat([
      bytes({ i32: 4 + 34 + 2 }, { u8: 1 }, { u8: 0 }, { i16: 34 }),
      header,
      Buffer.from('hi'),
    ]);
    expect(encodeCommand(request).equals(expected)).toBe(true);
    const decoded = decodeFrame(expected);
    expect({ ...decoded, body: text(decoded.body) }).toEqual({ ...request, body: 'hi' });
  });

  it('encodes a ROCKETMQ response with a UTF-8 remark and no extFields', () => {
    const response = createResponse({ opaque: -5, serializeType: 'ROCKETMQ' }, ResponseCode.TOPIC_NOT_EXIST, 'né');
    const expected = binaryFrame(
      bytes({ i16: 17 }, { u8: 0 }, { i16: 0 }, { i32: -5 }, { i32: 1 }, { i32: 3 }, 'né', { i32: 0 }),
    );
    expect(encodeCommand(response).equals(expected)).toBe(true);
    expect(decodeFrame(expected)).toEqual(response);
  });

  it('writes the language as its byte in ROCKETMQ and its name in JSON', () => {
    const base = { code: 10, opaque: 1, language: 'NODE_JS' as const };
    const binary = encodeCommand(createRequest({ ...base, serializeType: 'ROCKETMQ' }));
    expect(binary[8 + 2]).toBe(13);
    const json = encodeCommand(createRequest(base));
    expect(json.toString('utf8', 8)).toContain('"language":"NODE_JS"');
  });

  it('sets the oneway bit for oneway requests', () => {
    const frame = encodeCommand(createRequest({ code: 10, opaque: 1, oneway: true, serializeType: 'ROCKETMQ' }));
    expect(frame.readInt32BE(8 + 9)).toBe(2);
  });
});

describe('streaming', () => {
  const commands: RemotingCommand[] = [
    createRequest({ code: 34, opaque: 1, extFields: { clientID: 'c1' }, body: Buffer.from('{"a":1}') }),
    createRequest({ code: 310, opaque: 2, extFields: { a: 'g', b: 'T' }, body: Buffer.from('payload'), serializeType: 'ROCKETMQ' }),
    createResponse({ opaque: 3, serializeType: 'JSON' }, 0, 'done'),
  ];
  const stream = Buffer.concat(commands.map((cmd) => encodeCommand(cmd)));
  const normalize = (list: RemotingCommand[]) => list.map((cmd) => ({ ...cmd, body: text(cmd.body) }));
  const expected = normalize(commands);

  it('decodes the stream split in two at every byte boundary', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder();
      const out = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      expect(normalize(out), `cut at ${cut}`).toEqual(expected);
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('decodes the stream fed one byte at a time', () => {
    const decoder = new FrameDecoder();
    const out: RemotingCommand[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(normalize(out)).toEqual(expected);
  });

  it('decodes many frames from one chunk in order, without copying their bodies', () => {
    const many = Array.from({ length: 500 }, (_, i) =>
      createRequest({ code: 11, opaque: i, body: Buffer.from(`body-${i}`), serializeType: i % 2 ? 'ROCKETMQ' : 'JSON' }),
    );
    const chunk = Buffer.concat(many.map((cmd) => encodeCommand(cmd)));
    const out = new FrameDecoder().push(chunk);
    expect(out.map((cmd) => cmd.opaque)).toEqual(many.map((cmd) => cmd.opaque));
    expect(out.map((cmd) => text(cmd.body))).toEqual(many.map((_, i) => `body-${i}`));
    for (const cmd of out) expect(cmd.body?.buffer).toBe(chunk.buffer);
  });

  it('holds only the partial frame between pushes', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(stream.subarray(0, 3))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(3);
    const firstLength = encodeCommand(commands[0] as RemotingCommand).length;
    expect(decoder.push(stream.subarray(3, firstLength + 10))).toHaveLength(1);
    expect(decoder.bufferedBytes).toBe(10);
  });

  it('assembles a large frame delivered in small chunks', () => {
    const body = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const frame = encodeCommand(createRequest({ code: 10, opaque: 9, body }));
    const decoder = new FrameDecoder();
    const out: RemotingCommand[] = [];
    for (let i = 0; i < frame.length; i += 1000) out.push(...decoder.push(frame.subarray(i, i + 1000)));
    expect(out).toHaveLength(1);
    expect(Buffer.from(out[0]?.body ?? []).equals(body)).toBe(true);
  });
});

describe('malformed input', () => {
  const validHeader = '{"code":10,"opaque":1}';

  it('FRAME_LENGTH_INVALID: negative length', () => {
    expectCode(() => new FrameDecoder().push(bytes({ i32: -1 }, { i32: 0 })), 'FRAME_LENGTH_INVALID');
    expectCode(() => decodeFrame(bytes({ i32: -8 }, { i32: 0 })), 'FRAME_LENGTH_INVALID');
  });

  it('FRAME_LENGTH_INVALID: length too small for the header-length word', () => {
    expectCode(() => new FrameDecoder().push(bytes({ i32: 3 }, 'abc')), 'FRAME_LENGTH_INVALID');
    expectCode(() => decodeFrame(bytes({ i32: 0 })), 'FRAME_LENGTH_INVALID');
  });

  it('FRAME_LENGTH_INVALID: decodeFrame given a length that disagrees with the bytes', () => {
    const frame = jsonFrame(validHeader);
    expectCode(() => decodeFrame(frame.subarray(0, frame.length - 1)), 'FRAME_LENGTH_INVALID');
  });

  it('FRAME_TOO_LARGE: rejected from the length field alone, before the body is buffered', () => {
    const decoder = new FrameDecoder({ frameMaxBytes: 1024 });
    const error = codecErrorOf(() => decoder.push(bytes({ i32: 1021 })));
    expect(error.code).toBe('FRAME_TOO_LARGE');
    expect(decoder.bufferedBytes).toBe(0);
    // Exactly at the limit (length field included) is accepted and waits for the rest.
    const atLimit = new FrameDecoder({ frameMaxBytes: 1024 });
    expect(atLimit.push(bytes({ i32: 1020 }))).toEqual([]);
  });

  it('FRAME_TOO_LARGE: the default limit is RocketMQ 16 MiB including the length field', () => {
    expect(FRAME_MAX_BYTES_DEFAULT).toBe(16_777_216);
    expectCode(() => new FrameDecoder().push(bytes({ i32: 16_777_216 - 3 })), 'FRAME_TOO_LARGE');
    expectCode(() => new FrameDecoder().push(bytes({ i32: 0x7fff_ffff }, { i32: 0 })), 'FRAME_TOO_LARGE');
    expect(new FrameDecoder().push(bytes({ i32: 16_777_216 - 4 }))).toEqual([]);
  });

  it('HEADER_LENGTH_INVALID: header longer than the frame', () => {
    expectCode(() => new FrameDecoder().push(bytes({ i32: 8 }, { i32: 5 }, 'abcd')), 'HEADER_LENGTH_INVALID');
  });

  it('SERIALIZE_TYPE_UNKNOWN: serialization byte other than 0 or 1', () => {
    expectCode(() => new FrameDecoder().push(bytes({ i32: 4 }, { i32: 2 << 24 })), 'SERIALIZE_TYPE_UNKNOWN');
    expectCode(() => decodeFrame(bytes({ i32: 4 }, { i32: 0xff << 24 })), 'SERIALIZE_TYPE_UNKNOWN');
  });

  it.each([
    ['invalid JSON', '{"code":'],
    ['empty header', ''],
    ['not an object', '[1,2]'],
    ['null', 'null'],
    ['missing code', '{"opaque":1}'],
    ['missing opaque', '{"code":1}'],
    ['fractional code', '{"code":1.5,"opaque":1}'],
    ['code beyond int32', '{"code":2147483648,"opaque":1}'],
    ['boolean flag', '{"code":1,"opaque":1,"flag":true}'],
    ['object language', '{"code":1,"opaque":1,"language":{}}'],
    ['remark object', '{"code":1,"opaque":1,"remark":{}}'],
    ['extFields array', '{"code":1,"opaque":1,"extFields":["a"]}'],
    ['extFields nested object', '{"code":1,"opaque":1,"extFields":{"a":{"b":"c"}}}'],
    ['number with a leading zero', '{"code":01,"opaque":1}'],
    ['bare minus', '{"code":-,"opaque":1}'],
    ['number ending in a dot', '{"code":1,"opaque":1,"extFields":{"a":1.}}'],
    ['number ending in an exponent mark', '{"code":1,"opaque":1,"extFields":{"a":1e}}'],
    ['arithmetic', '{"code":1-2,"opaque":1}'],
  ])('HEADER_MALFORMED (JSON): %s', (_name, header) => {
    expectCode(() => new FrameDecoder().push(jsonFrame(header)), 'HEADER_MALFORMED');
  });

  const fixed = [{ i16: 10 }, { u8: 0 }, { i16: 0 }, { i32: 1 }, { i32: 0 }] as const;
  it.each([
    ['truncated fixed fields', bytes({ i16: 10 }, { u8: 0 }, { i16: 0 }, { i32: 1 })],
    ['missing remark length', bytes(...fixed)],
    ['negative remark length', bytes(...fixed, { i32: -1 }, { i32: 0 })],
    ['remark longer than header', bytes(...fixed, { i32: 100 }, 'ab', { i32: 0 })],
    ['missing extFields length', bytes(...fixed, { i32: 0 })],
    ['negative extFields length', bytes(...fixed, { i32: 0 }, { i32: -4 })],
    ['extFields longer than header', bytes(...fixed, { i32: 0 }, { i32: 50 }, { i16: 1 }, 'k')],
    ['negative key length', bytes(...fixed, { i32: 0 }, { i32: 8 }, { i16: -1 }, { i32: 0 }, 'xx')],
    ['key past extFields end', bytes(...fixed, { i32: 0 }, { i32: 4 }, { i16: 3 }, 'abc', { i32: 0 })],
    ['truncated value length', bytes(...fixed, { i32: 0 }, { i32: 5 }, { i16: 1 }, 'k', { i16: 0 })],
    ['negative value length', bytes(...fixed, { i32: 0 }, { i32: 7 }, { i16: 1 }, 'k', { i32: -2 })],
    ['value past extFields end', bytes(...fixed, { i32: 0 }, { i32: 8 }, { i16: 1 }, 'k', { i32: 9 }, 'v')],
    ['bytes after extFields', bytes(...fixed, { i32: 0 }, { i32: 0 }, 'junk')],
  ])('HEADER_MALFORMED (ROCKETMQ): %s', (_name, header) => {
    expectCode(() => new FrameDecoder().push(binaryFrame(header)), 'HEADER_MALFORMED');
  });

  it('poisons the decoder after an error', () => {
    const decoder = new FrameDecoder();
    const first = codecErrorOf(() => decoder.push(bytes({ i32: 4 }, { i32: 9 << 24 })));
    const again = codecErrorOf(() => decoder.push(jsonFrame(validHeader)));
    expect(again).toBe(first);
  });

  it('returns the frames before an error in the same chunk and leaves the error in failure', () => {
    const decoder = new FrameDecoder();
    const good = jsonFrame(validHeader);
    expect(decoder.push(good)).toHaveLength(1);
    expect(decoder.failure).toBeUndefined();
    const out = decoder.push(Buffer.concat([good, good, bytes({ i32: -1 })]));
    expect(out.map((cmd) => cmd.opaque)).toEqual([1, 1]);
    expect(decoder.failure?.code).toBe('FRAME_LENGTH_INVALID');
    expect(codecErrorOf(() => decoder.push(good))).toBe(decoder.failure);
  });
});

describe('lenient decoding', () => {
  it('normalizes extFields numbers and booleans to strings, keeping big numbers exact', () => {
    const header =
      '{"code":10,"extFields":{"queueId":3,"sysFlag":0,"batch":false,"unitMode":true,' +
      '"bornTimestamp":1491978653614,"offset":12345678901234567890,"ratio":1.50,"gone":null,"s":"x"},' +
      '"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":0}';
    const [cmd] = new FrameDecoder().push(jsonFrame(header));
    expect(cmd?.extFields).toEqual({
      queueId: '3',
      sysFlag: '0',
      batch: 'false',
      unitMode: 'true',
      bornTimestamp: '1491978653614',
      offset: '12345678901234567890',
      ratio: '1.50',
      s: 'x',
    });
  });

  it('leaves digits inside strings alone, escaped quotes included', () => {
    const header = String.raw`{"code":-7,"opaque":2,"remark":"a\"1\" 23","extFields":{"k\"9":"-4 \\","e":1E+3,"n":-0.5e-2}}`;
    const cmd = decodeFrame(jsonFrame(header));
    expect(cmd.code).toBe(-7);
    expect(cmd.remark).toBe('a"1" 23');
    expect(cmd.extFields).toEqual({ 'k"9': '-4 \\', e: '1E+3', n: '-0.5e-2' });
  });

  it('accepts key orders and nulls other clients write', () => {
    const header =
      '{"code":10,"language":"RUST","version":501,"opaque":7,"flag":0,"remark":null,' +
      '"extFields":{"queueId":"1","msgId":"id"},"serializeTypeCurrentRPC":"JSON"}';
    const [cmd] = new FrameDecoder().push(jsonFrame(header, 'b'));
    expect(cmd).toMatchObject({ code: 10, language: 'RUST', version: 501, opaque: 7, flag: 0 });
    expect(cmd?.remark).toBeUndefined();
    expect(cmd?.extFields).toEqual({ queueId: '1', msgId: 'id' });
    expect(text(cmd?.body)).toBe('b');
  });

  it('defaults absent optional fields as Java does', () => {
    expect(new FrameDecoder().push(jsonFrame('{"code":34,"opaque":5}'))[0]).toEqual({
      code: 34,
      language: 'JAVA',
      version: 0,
      opaque: 5,
      flag: 0,
      extFields: {},
      serializeType: 'JSON',
    });
  });

  it('maps unknown languages to OTHER', () => {
    const fromJson = decodeFrame(jsonFrame('{"code":1,"opaque":1,"language":"KOTLIN"}'));
    expect(fromJson.language).toBe('OTHER');
    const fromOrdinal = decodeFrame(jsonFrame('{"code":1,"opaque":1,"language":9}'));
    expect(fromOrdinal.language).toBe('GO');
    const fromByte = decodeFrame(
      binaryFrame(bytes({ i16: 1 }, { u8: 99 }, { i16: 0 }, { i32: 1 }, { i32: 0 }, { i32: 0 }, { i32: 0 })),
    );
    expect(fromByte.language).toBe('OTHER');
  });

  it('keeps "__proto__" as an ordinary extFields key', () => {
    const json = decodeFrame(jsonFrame('{"code":1,"opaque":1,"extFields":{"__proto__":"x"}}'));
    expect(Object.getPrototypeOf(json.extFields)).toBe(Object.prototype);
    expect(Object.keys(json.extFields)).toEqual(['__proto__']);
    const binary = decodeFrame(
      binaryFrame(
        bytes(...[{ i16: 1 }, { u8: 0 }, { i16: 0 }, { i32: 1 }, { i32: 0 }, { i32: 0 }], { i32: 16 }, { i16: 9 }, '__proto__', { i32: 1 }, 'y'),
      ),
    );
    expect(Object.getPrototypeOf(binary.extFields)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(binary.extFields, '__proto__')?.value).toBe('y');
  });

  it('reads ROCKETMQ code and version as signed 16-bit values', () => {
    const cmd = decodeFrame(
      binaryFrame(bytes({ i16: -1000 }, { u8: 0 }, { i16: -1 }, { i32: -2 }, { i32: -1 }, { i32: 0 }, { i32: 0 })),
    );
    expect(cmd).toMatchObject({ code: -1000, version: -1, opaque: -2, flag: -1 });
  });
});

describe('encode limits', () => {
  it('FIELD_OUT_OF_RANGE: a POP code cannot travel in a ROCKETMQ header', () => {
    const pop = createRequest({ code: RequestCode.POP_MESSAGE, opaque: 1, serializeType: 'ROCKETMQ' });
    expectCode(() => encodeCommand(pop), 'FIELD_OUT_OF_RANGE');
    expect(decodeFrame(encodeCommand({ ...pop, serializeType: 'JSON' })).code).toBe(200050);
  });

  it.each([
    ['opaque beyond int32', { opaque: 2 ** 31 }],
    ['fractional flag', { flag: 0.5 }],
    ['version beyond int16 in ROCKETMQ', { version: 40000, serializeType: 'ROCKETMQ' }],
    ['unknown language', { language: 'COBOL' }],
    ['non-string extFields value', { extFields: { a: 1 } }],
    ['key over 32767 bytes in ROCKETMQ', { extFields: { ['k'.repeat(32768)]: 'v' }, serializeType: 'ROCKETMQ' }],
    ['unknown serializeType', { serializeType: 'XML' }],
  ])('FIELD_OUT_OF_RANGE: %s', (_name, patch) => {
    const cmd = { ...createRequest({ code: 10, opaque: 1 }), ...patch } as unknown as RemotingCommand;
    expectCode(() => encodeCommand(cmd), 'FIELD_OUT_OF_RANGE');
  });

  it('FRAME_TOO_LARGE: refuses to produce a frame the peer would refuse', () => {
    const cmd = createRequest({ code: 10, opaque: 1, body: Buffer.alloc(1000) });
    expectCode(() => encodeCommand(cmd, { frameMaxBytes: 1000 }), 'FRAME_TOO_LARGE');
    expect(encodeCommand(cmd, { frameMaxBytes: 2000 }).length).toBeLessThan(2000);
  });

  it('HEADER_TOO_LARGE: a header beyond the 24-bit length field', () => {
    const cmd = createRequest({ code: 10, opaque: 1, remark: 'x'.repeat(0x100_0000), serializeType: 'ROCKETMQ' });
    expectCode(() => encodeCommand(cmd, { frameMaxBytes: 64 * 1024 * 1024 }), 'HEADER_TOO_LARGE');
  });
});
