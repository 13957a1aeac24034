/**
 * Byte-level fixtures for both header serializations, written out field by field from RocketMQ's
 * RemotingCommand.encode (length, serialization byte + 24-bit header length, header, body),
 * RemotingSerializable (fastjson, keys in alphabetical order, null fields left out) and
 * RocketMQSerializable (the ROCKETMQ binary header). None of these bytes come from our encoder.
 */
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeCommand, FrameDecoder } from '../../../src/net/remoting/codec.ts';
import {
  createResponse,
  type RemotingCommand,
  RequestCode,
  ResponseCode,
} from '../../../src/net/remoting/remoting-command.ts';

/** Bytes from hex fields; spaces inside a field are ignored. */
function hex(...fields: string[]): Buffer {
  const text = fields.join('').replaceAll(' ', '');
  expect(text).toMatch(/^(?:[0-9a-f]{2})*$/);
  return Buffer.from(text, 'hex');
}

/** A string field as hex of its UTF-8 bytes. */
function utf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('hex');
}

/** Checks the fixture's own length fields before it is used to judge the codec. */
function checkFixture(frame: Buffer, serializeByte: number, headerBytes: number): void {
  expect(frame.readInt32BE(0), 'length field counts everything after itself').toBe(frame.length - 4);
  expect(frame[4], 'serialization byte').toBe(serializeByte);
  expect(frame.readUIntBE(5, 3), 'header length').toBe(headerBytes);
}

function bodyText(cmd: RemotingCommand): string | undefined {
  return cmd.body === undefined ? undefined : Buffer.from(cmd.body).toString('utf8');
}

// ---------------------------------------------------------------------------------------------------
// JSON (serialization byte 0)

/** A Java client's GET_ROUTEINFO_BY_TOPIC request: no remark (null, so absent), no body. */
const jsonRequestHeader =
  '{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":3,' +
  '"serializeTypeCurrentRPC":"JSON","version":435}';
const jsonRequest = hex(
  '00000087', // length 135 = 4 + 131
  '00 000083', // JSON, header length 131
  utf8(jsonRequestHeader),
);

/**
 * A Java broker's PULL_NOT_FOUND response with every header field present, a non-ASCII remark (header
 * length counts bytes, not characters), extFields in HashMap order and a body.
 */
const jsonResponseHeader =
  '{"code":19,"extFields":{"suggestWhichBrokerId":"0","nextBeginOffset":"12","minOffset":"0","maxOffset":"12"},' +
  '"flag":1,"language":"JAVA","opaque":42,"remark":"no new message, offset 12 — wait",' +
  '"serializeTypeCurrentRPC":"JSON","version":453}';
const jsonResponse = hex(
  '000000f8', // length 248 = 4 + 240 + 4
  '00 0000f0', // JSON, header length 240
  utf8(jsonResponseHeader),
  utf8('body'),
);

/** A non-Java client writing extFields values as bare JSON numbers and booleans. */
const jsonLooseHeader =
  '{"code":11,"extFields":{"queueId":3,"unitMode":false,"bornTimestamp":1700000000123,"commitOffset":-1,"sysFlag":0},' +
  '"flag":0,"language":"GO","opaque":8,"serializeTypeCurrentRPC":"JSON","version":317}';
const jsonLoose = hex(
  '000000c9', // length 201 = 4 + 197
  '00 0000c5', // JSON, header length 197
  utf8(jsonLooseHeader),
);

/** What a Java NameServer answers to jsonRequest when the topic is unknown (version left at 0). */
const jsonNotFoundHeader =
  '{"code":17,"flag":1,"language":"JAVA","opaque":3,' +
  '"remark":"No topic route info in name server for the topic: TopicTest","serializeTypeCurrentRPC":"JSON","version":0}';
const jsonNotFound = hex(
  '000000a9', // length 169 = 4 + 165
  '00 0000a5', // JSON, header length 165
  utf8(jsonNotFoundHeader),
);

// ---------------------------------------------------------------------------------------------------
// ROCKETMQ (serialization byte 1)

/** A Java producer's SEND_MESSAGE_V2 request in the binary header, with a body. */
const binaryRequest = hex(
  '00000042', // length 66 = 4 + 57 + 5
  '01 000039', // ROCKETMQ, header length 57
  '0136', // code 310 (int16)
  '00', // language JAVA
  '01b3', // version 435 (int16)
  '00000007', // opaque 7
  '00000000', // flag: request
  '00000000', // remark length 0: no remark
  '00000024', // extFields length 36
  '0001', utf8('a'), '0000000d', utf8('ProducerGroup'), // 2 + 1 + 4 + 13
  '0001', utf8('b'), '00000009', utf8('TopicTest'), // 2 + 1 + 4 + 9
  utf8('Hello'), // body
);

/** The broker's answer to binaryRequest: same opaque, response flag, and ROCKETMQ like the request. */
const binaryResponse = hex(
  '00000065', // length 101 = 4 + 97
  '01 000061', // ROCKETMQ, header length 97
  '0000', // code 0 SUCCESS
  '00', // language JAVA
  '0000', // version 0
  '00000007', // opaque 7
  '00000001', // flag: response
  '00000000', // no remark
  '0000004c', // extFields length 76
  '0005', utf8('msgId'), '00000020', utf8('C0A8000100002A9F0000000000000000'), // 2 + 5 + 4 + 32
  '0007', utf8('queueId'), '00000001', utf8('1'), // 2 + 7 + 4 + 1
  '000b', utf8('queueOffset'), '00000002', utf8('42'), // 2 + 11 + 4 + 2
);

/** A Go server's SYSTEM_BUSY answer: non-JAVA language byte, negative opaque, UTF-8 remark, no extFields. */
const binaryBusy = hex(
  '00000020', // length 32 = 4 + 28
  '01 00001c', // ROCKETMQ, header length 28
  '0002', // code 2 SYSTEM_BUSY
  '09', // language GO
  '0191', // version 401
  'fffffffe', // opaque -2
  '00000001', // flag: response
  '00000007', utf8('busy é'), // remark: 7 UTF-8 bytes
  '00000000', // extFields length 0
);

describe('JSON header fixtures', () => {
  it('the fixtures are self-consistent', () => {
    checkFixture(jsonRequest, 0, 131);
    checkFixture(jsonResponse, 0, 240);
    checkFixture(jsonLoose, 0, 197);
    checkFixture(jsonNotFound, 0, 165);
  });

  it('decodes a Java client request exactly', () => {
    expect(decodeFrame(jsonRequest)).toEqual({
      code: RequestCode.GET_ROUTEINFO_BY_TOPIC,
      language: 'JAVA',
      version: 435,
      opaque: 3,
      flag: 0,
      extFields: { topic: 'TopicTest' },
      serializeType: 'JSON',
    });
  });

  it('decodes a response with every field, a multi-byte remark and a body', () => {
    const cmd = decodeFrame(jsonResponse);
    expect({ ...cmd, body: bodyText(cmd) }).toEqual({
      code: ResponseCode.PULL_NOT_FOUND,
      language: 'JAVA',
      version: 453,
      opaque: 42,
      flag: 1,
      remark: 'no new message, offset 12 — wait',
      extFields: { suggestWhichBrokerId: '0', nextBeginOffset: '12', minOffset: '0', maxOffset: '12' },
      body: 'body',
      serializeType: 'JSON',
    });
  });

  it('decodes extFields numbers and booleans as the strings Java would hold', () => {
    expect(decodeFrame(jsonLoose)).toEqual({
      code: RequestCode.PULL_MESSAGE,
      language: 'GO',
      version: 317,
      opaque: 8,
      flag: 0,
      extFields: { queueId: '3', unitMode: 'false', bornTimestamp: '1700000000123', commitOffset: '-1', sysFlag: '0' },
      serializeType: 'JSON',
    });
  });

  it('encodes the same bytes as fastjson for a request and for the answer to it', () => {
    const request = decodeFrame(jsonRequest);
    expect(encodeCommand(request).equals(jsonRequest)).toBe(true);
    const answer = createResponse(request, ResponseCode.TOPIC_NOT_EXIST, 'No topic route info in name server for the topic: TopicTest');
    expect(encodeCommand(answer).toString('hex')).toBe(jsonNotFound.toString('hex'));
  });
});

describe('ROCKETMQ header fixtures', () => {
  it('the fixtures are self-consistent', () => {
    checkFixture(binaryRequest, 1, 57);
    checkFixture(binaryResponse, 1, 97);
    checkFixture(binaryBusy, 1, 28);
  });

  it('decodes a Java producer request exactly', () => {
    const cmd = decodeFrame(binaryRequest);
    expect({ ...cmd, body: bodyText(cmd) }).toEqual({
      code: RequestCode.SEND_MESSAGE_V2,
      language: 'JAVA',
      version: 435,
      opaque: 7,
      flag: 0,
      extFields: { a: 'ProducerGroup', b: 'TopicTest' },
      body: 'Hello',
      serializeType: 'ROCKETMQ',
    });
  });

  it('decodes a language byte, a negative opaque and a UTF-8 remark', () => {
    expect(decodeFrame(binaryBusy)).toEqual({
      code: ResponseCode.SYSTEM_BUSY,
      language: 'GO',
      version: 401,
      opaque: -2,
      flag: 1,
      remark: 'busy é',
      extFields: {},
      serializeType: 'ROCKETMQ',
    });
  });

  it('encodes exactly the fixture bytes', () => {
    for (const frame of [binaryRequest, binaryResponse, binaryBusy]) {
      expect(encodeCommand(decodeFrame(frame)).toString('hex')).toBe(frame.toString('hex'));
    }
    // Java writes an empty remark as length 0, the same as no remark.
    expect(encodeCommand({ ...decodeFrame(binaryResponse), remark: '' }).equals(binaryResponse)).toBe(true);
  });

  it('answers a ROCKETMQ request in ROCKETMQ, byte for byte', () => {
    const request = decodeFrame(binaryRequest);
    const answer = createResponse(request, ResponseCode.SUCCESS, undefined, {
      extFields: { msgId: 'C0A8000100002A9F0000000000000000', queueId: '1', queueOffset: '42' },
    });
    expect(encodeCommand(answer).toString('hex')).toBe(binaryResponse.toString('hex'));
  });
});

describe('mixed stream', () => {
  it('decodes both serializations interleaved on one connection, a byte at a time', () => {
    const frames = [jsonRequest, binaryRequest, jsonResponse, binaryBusy, jsonLoose, binaryResponse];
    const stream = Buffer.concat(frames);
    const decoder = new FrameDecoder();
    const out: RemotingCommand[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(out.map((cmd) => [cmd.serializeType, cmd.opaque])).toEqual([
      ['JSON', 3],
      ['ROCKETMQ', 7],
      ['JSON', 42],
      ['ROCKETMQ', -2],
      ['JSON', 8],
      ['ROCKETMQ', 7],
    ]);
    const whole = frames.map((frame) => decodeFrame(frame));
    expect(out.map((cmd) => ({ ...cmd, body: bodyText(cmd) }))).toEqual(whole.map((cmd) => ({ ...cmd, body: bodyText(cmd) })));
  });
});
