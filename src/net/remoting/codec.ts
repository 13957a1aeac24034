/**
 * Wire codec for RocketMQ's classic Remoting protocol (NameServer port 9876, broker port 10911).
 *
 * Frame. All integers are big-endian and signed unless marked otherwise.
 *
 * | offset   | size          | field        | meaning                                                   |
 * |----------|---------------|--------------|-----------------------------------------------------------|
 * | 0        | 4             | length       | bytes after this field: 4 + headerLength + bodyLength     |
 * | 4        | 1             | serialize    | header serialization: 0 JSON, 1 ROCKETMQ                  |
 * | 5        | 3             | headerLength | unsigned 24-bit length of the header                      |
 * | 8        | headerLength  | header       | JSON text or ROCKETMQ binary header, below                |
 * | 8 + H    | length - 4 - H| body         | opaque payload (message bytes, JSON route data, ...)      |
 *
 * JSON header: one UTF-8 JSON object with the keys `code`, `extFields`, `flag`, `language` (a name such
 * as "JAVA"), `opaque`, `remark`, `serializeTypeCurrentRPC` ("JSON") and `version`. Java (fastjson)
 * writes them in that alphabetical order and leaves out null `remark` and `extFields`; we do the same.
 *
 * ROCKETMQ header:
 *
 * | offset   | size | field        | meaning                                                   |
 * |----------|------|--------------|-----------------------------------------------------------|
 * | 0        | 2    | code         | int16                                                     |
 * | 2        | 1    | language     | LanguageCode byte                                         |
 * | 3        | 2    | version      | int16                                                     |
 * | 5        | 4    | opaque       | int32                                                     |
 * | 9        | 4    | flag         | int32                                                     |
 * | 13       | 4    | remarkLength | int32; 0 means no remark                                  |
 * | 17       | R    | remark       | UTF-8                                                     |
 * | 17 + R   | 4    | extLength    | int32 byte length of the entries that follow              |
 * | 21 + R   | E    | entries      | repeated: int16 keyLength, key, int32 valueLength, value  |
 *
 * Invariants checked on decode, each failure a RemotingCodecError that ends the connection:
 * - 4 <= length and 4 + length <= frameMaxBytes (16 MiB by default, counting the length field itself,
 *   as RocketMQ's NettyDecoder with `com.rocketmq.remoting.frameMaxLength`). Checked as soon as the
 *   four length bytes arrive, so an oversized frame is refused before its body is buffered.
 * - headerLength <= length - 4, and the serialization byte is 0 or 1.
 * - A ROCKETMQ header is consumed exactly: every inner length is non-negative and ends inside the
 *   header, and no bytes are left over.
 * - A JSON header is an object whose `code` and `opaque` are 32-bit integers; `extFields` values that
 *   arrive as numbers or booleans are kept as their JSON text ("3", "true"), because RocketMQ's
 *   extFields are strings and clients in other languages do not always quote them.
 * Every allocation the decoder makes is bounded by a length that has already passed these checks, and
 * the buffer that assembles a frame spanning chunks grows with the bytes that actually arrived.
 *
 * Leniency, in the spirit of the Java broker's fastjson: unknown language names or bytes decode as OTHER;
 * invalid UTF-8 is replaced with U+FFFD; JSON `remark: null` and `extFields: null` mean absent, null
 * extFields values are dropped, integer fields may arrive as numeric strings, a language may arrive as
 * its ordinal, and `serializeTypeCurrentRPC` is ignored because the frame's serialization byte rules.
 */

import assert from 'node:assert/strict';
import {
  isLanguageName,
  LanguageCode,
  languageNameOf,
  type LanguageName,
  type RemotingCommand,
  SerializeType,
  type SerializeTypeName,
} from './remoting-command.ts';

/** Bytes of the length field that starts every frame. */
export const FRAME_LENGTH_FIELD_BYTES = 4;

/** Bytes of the serialization-and-header-length word that follows the length field. */
export const HEADER_LENGTH_FIELD_BYTES = 4;

/** RocketMQ's default maximum frame size, including the length field (NettyDecoder's 16777216). */
export const FRAME_MAX_BYTES_DEFAULT = 16 * 1024 * 1024;

/** The largest header the 24-bit header-length field can describe. */
export const HEADER_MAX_BYTES = 0xff_ffff;

/** Bytes of a ROCKETMQ header before the remark: code, language, version, opaque, flag. */
const BINARY_FIXED_BYTES = 2 + 1 + 2 + 4 + 4;

const INT16_MIN = -0x8000;
const INT16_MAX = 0x7fff;
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;

/** Stable codes of RemotingCodecError. */
export const RemotingCodecErrorCode = {
  /** Decode: the length field is negative or too small to hold the header-length word. */
  FRAME_LENGTH_INVALID: 'FRAME_LENGTH_INVALID',
  /** Decode or encode: the frame is larger than frameMaxBytes. */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** Decode: the header length exceeds what the frame holds. */
  HEADER_LENGTH_INVALID: 'HEADER_LENGTH_INVALID',
  /** Decode: the serialization byte is neither JSON (0) nor ROCKETMQ (1). */
  SERIALIZE_TYPE_UNKNOWN: 'SERIALIZE_TYPE_UNKNOWN',
  /** Decode: invalid JSON, wrong field types, or a truncated or overlong ROCKETMQ header. */
  HEADER_MALFORMED: 'HEADER_MALFORMED',
  /** Encode: the header exceeds the 24-bit header-length field. */
  HEADER_TOO_LARGE: 'HEADER_TOO_LARGE',
  /** Encode: a field does not fit its wire width, or holds a value the format cannot carry. */
  FIELD_OUT_OF_RANGE: 'FIELD_OUT_OF_RANGE',
} as const;

/** A stable code of RemotingCodecError. */
export type RemotingCodecErrorCode = (typeof RemotingCodecErrorCode)[keyof typeof RemotingCodecErrorCode];

/** The only error the codec throws; the connection that produced undecodable bytes should be closed. */
export class RemotingCodecError extends Error {
  /** Stable machine-readable reason. */
  readonly code: RemotingCodecErrorCode;

  constructor(code: RemotingCodecErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RemotingCodecError';
    this.code = code;
  }
}

/** Limits shared by the encoder and the decoder. */
export type CodecOptions = {
  /** Largest frame accepted or produced, counting the 4-byte length field. Default 16 MiB. */
  frameMaxBytes?: number;
};

function frameMaxBytesOf(options: CodecOptions | undefined): number {
  const frameMaxBytes = options?.frameMaxBytes ?? FRAME_MAX_BYTES_DEFAULT;
  // The length field is an int32, so a larger limit could never be reached and would hide a config typo.
  assert(
    Number.isInteger(frameMaxBytes) && frameMaxBytes >= FRAME_LENGTH_FIELD_BYTES + HEADER_LENGTH_FIELD_BYTES,
    'frameMaxBytes must be an integer of at least 8',
  );
  assert(frameMaxBytes <= INT32_MAX + FRAME_LENGTH_FIELD_BYTES, 'frameMaxBytes must fit the int32 length field');
  return frameMaxBytes;
}

// ---------------------------------------------------------------------------------------------------
// Encoding

function checkInt(value: number, min: number, max: number, field: string, serializeType: SerializeTypeName): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RemotingCodecError(
      'FIELD_OUT_OF_RANGE',
      `${field} ${value} does not fit the ${serializeType} header (${min}..${max})`,
    );
  }
}

function checkCommonFields(cmd: RemotingCommand): void {
  if (!isLanguageName(cmd.language)) {
    throw new RemotingCodecError('FIELD_OUT_OF_RANGE', `unknown language ${String(cmd.language)}`);
  }
  checkInt(cmd.opaque, INT32_MIN, INT32_MAX, 'opaque', cmd.serializeType);
  checkInt(cmd.flag, INT32_MIN, INT32_MAX, 'flag', cmd.serializeType);
  for (const key of Object.keys(cmd.extFields)) {
    const value: unknown = cmd.extFields[key];
    if (typeof value !== 'string') {
      throw new RemotingCodecError('FIELD_OUT_OF_RANGE', `extFields.${key} is ${typeof value}, not a string`);
    }
  }
}

/** JSON header text in fastjson's key order, with absent remark and empty extFields left out. */
function jsonHeaderText(cmd: RemotingCommand): string {
  checkInt(cmd.code, INT32_MIN, INT32_MAX, 'code', 'JSON');
  checkInt(cmd.version, INT32_MIN, INT32_MAX, 'version', 'JSON');
  const header: Record<string, unknown> = { code: cmd.code };
  if (Object.keys(cmd.extFields).length > 0) header.extFields = cmd.extFields;
  header.flag = cmd.flag;
  header.language = cmd.language;
  header.opaque = cmd.opaque;
  if (cmd.remark !== undefined) header.remark = cmd.remark;
  header.serializeTypeCurrentRPC = 'JSON';
  header.version = cmd.version;
  return JSON.stringify(header);
}

/** Byte lengths of a ROCKETMQ header's strings, measured once and reused by the writer. */
type BinaryHeaderPlan = {
  headerBytes: number;
  remarkBytes: number;
  extBytes: number;
  entries: { key: string; keyBytes: number; value: string; valueBytes: number }[];
};

function planBinaryHeader(cmd: RemotingCommand): BinaryHeaderPlan {
  // Java writes code and version with putShort and reads them back signed, so only int16 survives.
  checkInt(cmd.code, INT16_MIN, INT16_MAX, 'code', 'ROCKETMQ');
  checkInt(cmd.version, INT16_MIN, INT16_MAX, 'version', 'ROCKETMQ');
  const remarkBytes = cmd.remark === undefined ? 0 : Buffer.byteLength(cmd.remark, 'utf8');
  const entries: BinaryHeaderPlan['entries'] = [];
  let extBytes = 0;
  for (const key of Object.keys(cmd.extFields)) {
    const value = cmd.extFields[key] as string;
    const keyBytes = Buffer.byteLength(key, 'utf8');
    // Java reads the key length with getShort, so a key of 32768 bytes or more would come out negative.
    checkInt(keyBytes, 0, INT16_MAX, `extFields key length of ${JSON.stringify(key.slice(0, 32))}`, 'ROCKETMQ');
    const valueBytes = Buffer.byteLength(value, 'utf8');
    entries.push({ key, keyBytes, value, valueBytes });
    extBytes += 2 + keyBytes + 4 + valueBytes;
  }
  const headerBytes = BINARY_FIXED_BYTES + 4 + remarkBytes + 4 + extBytes;
  return { headerBytes, remarkBytes, extBytes, entries };
}

function writeBinaryHeader(cmd: RemotingCommand, plan: BinaryHeaderPlan, out: Buffer, start: number): void {
  let p = start;
  p = out.writeInt16BE(cmd.code, p);
  p = out.writeUInt8(LanguageCode[cmd.language], p);
  p = out.writeInt16BE(cmd.version, p);
  p = out.writeInt32BE(cmd.opaque, p);
  p = out.writeInt32BE(cmd.flag, p);
  p = out.writeInt32BE(plan.remarkBytes, p);
  if (plan.remarkBytes > 0) p += out.write(cmd.remark as string, p, 'utf8');
  p = out.writeInt32BE(plan.extBytes, p);
  for (const entry of plan.entries) {
    p = out.writeInt16BE(entry.keyBytes, p);
    p += out.write(entry.key, p, 'utf8');
    p = out.writeInt32BE(entry.valueBytes, p);
    p += out.write(entry.value, p, 'utf8');
  }
  assert.equal(p - start, plan.headerBytes, 'ROCKETMQ header size differs from its plan');
}

/**
 * Encodes one command as a complete frame, in the serialization `cmd.serializeType` names, using a
 * single allocation. Throws RemotingCodecError (FIELD_OUT_OF_RANGE, HEADER_TOO_LARGE, FRAME_TOO_LARGE)
 * when the command cannot be represented or the peer would refuse the frame.
 */
export function encodeCommand(cmd: RemotingCommand, options?: CodecOptions): Buffer {
  const frameMaxBytes = frameMaxBytesOf(options);
  checkCommonFields(cmd);
  const bodyBytes = cmd.body?.byteLength ?? 0;
  let headerBytes: number;
  let jsonText: string | undefined;
  let plan: BinaryHeaderPlan | undefined;
  if (cmd.serializeType === 'ROCKETMQ') {
    plan = planBinaryHeader(cmd);
    headerBytes = plan.headerBytes;
  } else if (cmd.serializeType === 'JSON') {
    jsonText = jsonHeaderText(cmd);
    headerBytes = Buffer.byteLength(jsonText, 'utf8');
  } else {
    throw new RemotingCodecError('FIELD_OUT_OF_RANGE', `unknown serializeType ${String(cmd.serializeType)}`);
  }
  if (headerBytes > HEADER_MAX_BYTES) {
    throw new RemotingCodecError('HEADER_TOO_LARGE', `header of ${headerBytes} bytes exceeds ${HEADER_MAX_BYTES}`);
  }
  const frameBytes = FRAME_LENGTH_FIELD_BYTES + HEADER_LENGTH_FIELD_BYTES + headerBytes + bodyBytes;
  if (frameBytes > frameMaxBytes) {
    throw new RemotingCodecError('FRAME_TOO_LARGE', `frame of ${frameBytes} bytes exceeds ${frameMaxBytes}`);
  }

  const out = Buffer.allocUnsafe(frameBytes);
  let p = out.writeInt32BE(frameBytes - FRAME_LENGTH_FIELD_BYTES, 0);
  p = out.writeUInt32BE(((SerializeType[cmd.serializeType] << 24) | headerBytes) >>> 0, p);
  if (plan !== undefined) {
    writeBinaryHeader(cmd, plan, out, p);
  } else {
    const written = out.write(jsonText as string, p, 'utf8');
    assert.equal(written, headerBytes, 'JSON header size differs from its measured length');
  }
  p += headerBytes;
  if (cmd.body !== undefined && bodyBytes > 0) {
    out.set(cmd.body, p);
    p += bodyBytes;
  }
  assert.equal(p, frameBytes, 'encoded frame size differs from its computed length');
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Decoding

function malformed(message: string, cause?: unknown): RemotingCodecError {
  return new RemotingCodecError('HEADER_MALFORMED', message, cause === undefined ? undefined : { cause });
}

/** Adds a key without letting "__proto__" reach the prototype setter. */
function setOwn(target: Record<string, string>, key: string, value: string): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function isNumberTokenChar(c: number): boolean {
  // digits, '.', '+', '-', 'e', 'E'
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2b || c === 0x2d || c === 0x65 || c === 0x45;
}

/**
 * Rewrites every JSON number outside a string as a string of its source text, so JSON.parse never
 * turns one into a double. That keeps large extFields values such as commit-log offsets exact (a
 * double would round them) and lets integer fields be range-checked without rounding, on any engine.
 * Each token is checked against JSON's number grammar first, so malformed numbers are still refused.
 */
function quoteNumbers(text: string): string {
  let out = '';
  let copiedTo = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i += 1; // skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && isNumberTokenChar(text.charCodeAt(j))) j += 1;
      const token = text.slice(i, j);
      if (!JSON_NUMBER.test(token)) throw malformed(`JSON header has an invalid number ${token.slice(0, 40)}`);
      out += `${text.slice(copiedTo, i)}"${token}"`;
      copiedTo = j;
      i = j - 1;
    }
  }
  return copiedTo === 0 ? text : out + text.slice(copiedTo);
}

const INTEGER_TEXT = /^-?\d{1,10}$/;

/**
 * Reads an integer header field that arrived as a JSON number (now its text) or a numeric string: digits,
 * or any JSON number form whose value is an integer (1.0, 1e3), as JSON.parse would read it.
 */
function jsonInt(header: Record<string, unknown>, key: string, fallback: number | undefined): number {
  const raw = ownField(header, key);
  if (raw === undefined || raw === null) {
    if (fallback === undefined) throw malformed(`JSON header lacks ${key}`);
    return fallback;
  }
  if (typeof raw !== 'string' || !(INTEGER_TEXT.test(raw) || JSON_NUMBER.test(raw))) throw malformed(`JSON header ${key} is not an integer`);
  const value = Number(raw);
  if (!Number.isInteger(value)) throw malformed(`JSON header ${key} is not an integer`);
  if (value < INT32_MIN || value > INT32_MAX) throw malformed(`JSON header ${key} ${raw} is outside int32`);
  return value | 0; // folds "-0" into 0
}

function jsonLanguage(raw: unknown): LanguageName {
  if (raw === undefined || raw === null) return 'JAVA';
  if (typeof raw !== 'string') throw malformed('JSON header language is not a string');
  if (isLanguageName(raw)) return raw;
  // fastjson also accepts an enum by its ordinal, which quoteNumbers has turned into text.
  if (INTEGER_TEXT.test(raw)) return languageNameOf(Number(raw)) ?? 'OTHER';
  return 'OTHER';
}

function jsonExtFields(raw: unknown): Record<string, string> {
  const extFields: Record<string, string> = {};
  if (raw === undefined || raw === null) return extFields;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw malformed('JSON header extFields is not an object');
  const object = raw as Record<string, unknown>;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const value = object[key];
    // Numbers are already their source text here (quoteNumbers), so only booleans need converting.
    if (typeof value === 'string') setOwn(extFields, key, value);
    else if (typeof value === 'boolean') setOwn(extFields, key, value ? 'true' : 'false');
    else if (value === null) continue; // Java drops null values when it encodes, so null means absent.
    else throw malformed(`JSON header extFields.${key} is an ${Array.isArray(value) ? 'array' : typeof value}`);
  }
  return extFields;
}

type HeaderFields = Omit<RemotingCommand, 'body' | 'serializeType'>;

/**
 * Reads a JSON header. Most headers (every one a Java client sends) have only strings in extFields and
 * int32 numbers in the integer fields: those are read from one plain JSON.parse (about a third of the
 * exact reading's cost: `npm run bench:codec`), and the parsed extFields object is kept. Any other header is read again
 * the exact way (decodeJsonHeaderExact), so a number in extFields keeps its source text. Both readings
 * give the same fields for the same text (test/net/remoting/codec-json-header.test.ts).
 */
function decodeJsonHeader(frame: Buffer, start: number, end: number): HeaderFields {
  const text = frame.toString('utf8', start, end);
  return plainJsonHeader(parsedHeader(text)) ?? decodeJsonHeaderExact(text);
}

/** A header's own field (never one from the prototype, whatever the key). */
function ownField(header: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(header, key) ? header[key] : undefined;
}

/** JSON.parse of a header's text, which must be an object. */
function parsedHeader(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw malformed('JSON header is not valid JSON', error);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw malformed('JSON header is not an object');
  }
  return parsed as Record<string, unknown>;
}

/** An int32 from a JSON number; undefined for anything plainJsonHeader leaves to the exact reading. */
function plainInt(raw: unknown, fallback: number | undefined): number | undefined {
  if (raw === undefined) return fallback;
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= INT32_MIN && raw <= INT32_MAX) return raw | 0;
  return undefined;
}

/** The header's fields when every value has its usual type, else undefined (read it the exact way). */
function plainJsonHeader(header: Record<string, unknown>): HeaderFields | undefined {
  const own = (key: string): unknown => ownField(header, key);
  const code = plainInt(own('code'), undefined);
  const opaque = plainInt(own('opaque'), undefined);
  const version = plainInt(own('version'), 0);
  const flag = plainInt(own('flag'), 0);
  const language = own('language');
  const remark = own('remark');
  const extFields = own('extFields');
  if (code === undefined || opaque === undefined || version === undefined || flag === undefined) return undefined;
  if (language !== undefined && !(typeof language === 'string' && isLanguageName(language))) return undefined;
  if (remark !== undefined && typeof remark !== 'string') return undefined;
  if (extFields !== undefined) {
    if (extFields === null || typeof extFields !== 'object' || Array.isArray(extFields)) return undefined;
    const ext = extFields as Record<string, unknown>;
    for (const key in ext) if (!Object.hasOwn(ext, key) || typeof ext[key] !== 'string') return undefined;
  }
  const fields: HeaderFields = {
    code,
    language: language ?? 'JAVA',
    version,
    opaque,
    flag,
    extFields: (extFields as Record<string, string> | undefined) ?? {},
  };
  if (remark !== undefined) fields.remark = remark;
  return fields;
}

/** The exact reading: every number is kept as its source text (quoteNumbers) before JSON.parse sees it. */
function decodeJsonHeaderExact(text: string): HeaderFields {
  const header = parsedHeader(quoteNumbers(text));
  const own = (key: string): unknown => ownField(header, key);
  const fields: HeaderFields = {
    code: jsonInt(header, 'code', undefined),
    language: jsonLanguage(own('language')),
    version: jsonInt(header, 'version', 0),
    opaque: jsonInt(header, 'opaque', undefined),
    flag: jsonInt(header, 'flag', 0),
    extFields: jsonExtFields(own('extFields')),
  };
  const remark = own('remark');
  if (typeof remark === 'string') fields.remark = remark;
  else if (remark !== undefined && remark !== null) throw malformed('JSON header remark is not a string');
  return fields;
}

function decodeBinaryHeader(frame: Buffer, start: number, end: number): HeaderFields {
  let p = start;
  const need = (bytes: number, what: string, limit: number = end): void => {
    if (bytes < 0) throw malformed(`ROCKETMQ header ${what} length ${bytes} is negative`);
    if (bytes > limit - p) throw malformed(`ROCKETMQ header truncated in ${what}`);
  };
  need(BINARY_FIXED_BYTES + 4, 'fixed fields');
  const code = frame.readInt16BE(p);
  const languageByte = frame.readUInt8(p + 2);
  const version = frame.readInt16BE(p + 3);
  const opaque = frame.readInt32BE(p + 5);
  const flag = frame.readInt32BE(p + 9);
  p += BINARY_FIXED_BYTES;
  const remarkBytes = frame.readInt32BE(p);
  p += 4;
  need(remarkBytes, 'remark');
  const remark = remarkBytes > 0 ? frame.toString('utf8', p, p + remarkBytes) : undefined;
  p += remarkBytes;
  need(4, 'extFields length');
  const extBytes = frame.readInt32BE(p);
  p += 4;
  need(extBytes, 'extFields');
  const extEnd = p + extBytes;
  const extFields: Record<string, string> = {};
  while (p < extEnd) {
    need(2, 'extFields key length', extEnd);
    const keyBytes = frame.readInt16BE(p);
    p += 2;
    need(keyBytes, 'extFields key', extEnd);
    const key = frame.toString('utf8', p, p + keyBytes);
    p += keyBytes;
    need(4, 'extFields value length', extEnd);
    const valueBytes = frame.readInt32BE(p);
    p += 4;
    need(valueBytes, 'extFields value', extEnd);
    setOwn(extFields, key, frame.toString('utf8', p, p + valueBytes));
    p += valueBytes;
  }
  if (p !== end) throw malformed(`ROCKETMQ header has ${end - p} bytes after its extFields`);
  const fields: HeaderFields = {
    code,
    language: languageNameOf(languageByte) ?? 'OTHER',
    version,
    opaque,
    flag,
    extFields,
  };
  if (remark !== undefined) fields.remark = remark;
  return fields;
}

/** Checks a frame's length field, returning the whole frame size including the field. */
function checkedFrameBytes(length: number, frameMaxBytes: number): number {
  if (length < HEADER_LENGTH_FIELD_BYTES) {
    throw new RemotingCodecError(
      'FRAME_LENGTH_INVALID',
      `frame length ${length} is ${length < 0 ? 'negative' : 'too small for the header-length word'}`,
    );
  }
  const frameBytes = length + FRAME_LENGTH_FIELD_BYTES;
  if (frameBytes > frameMaxBytes) {
    throw new RemotingCodecError('FRAME_TOO_LARGE', `frame of ${frameBytes} bytes exceeds ${frameMaxBytes}`);
  }
  return frameBytes;
}

/** Decodes what follows a checked length field: the header-length word, the header and the body. */
function decodeFrameContent(content: Buffer): RemotingCommand {
  assert(content.length >= HEADER_LENGTH_FIELD_BYTES, 'frame content shorter than the header-length word');
  const word = content.readUInt32BE(0);
  const serializeByte = word >>> 24;
  const headerBytes = word & HEADER_MAX_BYTES;
  const headerStart = HEADER_LENGTH_FIELD_BYTES;
  if (headerBytes > content.length - headerStart) {
    throw new RemotingCodecError(
      'HEADER_LENGTH_INVALID',
      `header length ${headerBytes} exceeds the ${content.length - headerStart} bytes the frame holds`,
    );
  }
  const headerEnd = headerStart + headerBytes;
  let serializeType: SerializeTypeName;
  let fields: HeaderFields;
  try {
    if (serializeByte === SerializeType.JSON) {
      serializeType = 'JSON';
      fields = decodeJsonHeader(content, headerStart, headerEnd);
    } else if (serializeByte === SerializeType.ROCKETMQ) {
      serializeType = 'ROCKETMQ';
      fields = decodeBinaryHeader(content, headerStart, headerEnd);
    } else {
      throw new RemotingCodecError('SERIALIZE_TYPE_UNKNOWN', `unknown serialization type ${serializeByte}`);
    }
  } catch (error) {
    if (error instanceof RemotingCodecError) throw error;
    // Every read above is bounds-checked first, so this is a codec bug; it still must not escape as
    // anything but a codec error, because the caller's contract is to close the connection on those.
    throw malformed('header could not be decoded', error);
  }
  const cmd: RemotingCommand = { ...fields, serializeType };
  if (headerEnd < content.length) cmd.body = content.subarray(headerEnd);
  return cmd;
}

/**
 * Decodes exactly one complete frame, length field included. Throws RemotingCodecError when the bytes
 * are not one valid frame (FRAME_LENGTH_INVALID also covers a length field that disagrees with the size).
 */
export function decodeFrame(frame: Buffer, options?: CodecOptions): RemotingCommand {
  const frameMaxBytes = frameMaxBytesOf(options);
  if (frame.length < FRAME_LENGTH_FIELD_BYTES) {
    throw new RemotingCodecError('FRAME_LENGTH_INVALID', `frame of ${frame.length} bytes has no length field`);
  }
  const frameBytes = checkedFrameBytes(frame.readInt32BE(0), frameMaxBytes);
  if (frameBytes !== frame.length) {
    throw new RemotingCodecError(
      'FRAME_LENGTH_INVALID',
      `length field says ${frameBytes} bytes but the frame has ${frame.length}`,
    );
  }
  return decodeFrameContent(frame.subarray(FRAME_LENGTH_FIELD_BYTES));
}

/** First capacity of the buffer that assembles a frame spanning chunks (or the frame size if smaller). */
const ASSEMBLY_INITIAL_BYTES = 64 * 1024;

/**
 * Streaming decoder for one connection. A frame that lies wholly inside one received chunk is decoded
 * in place, with no copy. A frame that spans chunks is copied into an assembly buffer that starts small
 * and doubles as bytes actually arrive, capped at the frame's checked size: each byte is copied a
 * bounded number of times, and a peer that announces a large frame but sends little costs little.
 * Decoded bodies are views into the chunk or assembly buffer. After it throws, the decoder is poisoned
 * and rethrows the same error.
 */
export class FrameDecoder {
  readonly #frameMaxBytes: number;
  /** Collects a length field that straddles chunks. */
  readonly #lengthScratch = Buffer.alloc(FRAME_LENGTH_FIELD_BYTES);
  #lengthFilled = 0;
  /** Length field of the frame being assembled (bytes after the field), or -1 while reading a length. */
  #contentBytes = -1;
  #assembly: Buffer | undefined;
  #assembled = 0;
  #failure: RemotingCodecError | undefined;

  constructor(options?: CodecOptions) {
    this.#frameMaxBytes = frameMaxBytesOf(options);
  }

  /** Bytes received but not yet decoded: the start of the next frame. */
  get bufferedBytes(): number {
    if (this.#contentBytes < 0) return this.#lengthFilled;
    return FRAME_LENGTH_FIELD_BYTES + this.#assembled;
  }

  /**
   * The error that poisoned this decoder, if any. Check it after handling what `push` returned: when a
   * chunk holds complete frames followed by undecodable bytes, `push` returns those frames' commands
   * and leaves the error here instead of throwing (the next `push` throws it).
   */
  get failure(): RemotingCodecError | undefined {
    return this.#failure;
  }

  /**
   * Appends received bytes and returns every command they complete, in arrival order. Throws
   * RemotingCodecError (and nothing else) when the bytes are undecodable and no command precedes them
   * in this chunk; see `failure` for the case where some do.
   */
  push(chunk: Buffer): RemotingCommand[] {
    if (this.#failure !== undefined) throw this.#failure;
    const commands: RemotingCommand[] = [];
    let p = 0;
    try {
      while (p < chunk.length) {
        if (this.#contentBytes < 0) {
          p = this.#readLength(chunk, p);
          if (this.#contentBytes < 0) break;
          if (chunk.length - p >= this.#contentBytes) {
            // The whole frame is in this chunk: decode it in place.
            const end = p + this.#contentBytes;
            this.#contentBytes = -1;
            commands.push(decodeFrameContent(chunk.subarray(p, end)));
            p = end;
            continue;
          }
          if (p === chunk.length) break;
        }
        p = this.#assemble(chunk, p);
        if (this.#assembled === this.#contentBytes) {
          const frame = (this.#assembly as Buffer).subarray(0, this.#contentBytes);
          this.#assembly = undefined;
          this.#assembled = 0;
          this.#contentBytes = -1;
          commands.push(decodeFrameContent(frame));
        }
      }
      assert(p === chunk.length, 'decoder left bytes of a chunk unread');
    } catch (error) {
      assert(error instanceof RemotingCodecError, `decoder raised a non-codec error: ${String(error)}`);
      this.#failure = error;
      this.#assembly = undefined;
      if (commands.length === 0) throw error;
    }
    return commands;
  }

  /** Reads (part of) a length field starting at `p`; sets #contentBytes once all four bytes are in. */
  #readLength(chunk: Buffer, p: number): number {
    let length: number;
    if (this.#lengthFilled === 0 && chunk.length - p >= FRAME_LENGTH_FIELD_BYTES) {
      length = chunk.readInt32BE(p);
      p += FRAME_LENGTH_FIELD_BYTES;
    } else {
      const n = Math.min(FRAME_LENGTH_FIELD_BYTES - this.#lengthFilled, chunk.length - p);
      chunk.copy(this.#lengthScratch, this.#lengthFilled, p, p + n);
      this.#lengthFilled += n;
      p += n;
      if (this.#lengthFilled < FRAME_LENGTH_FIELD_BYTES) return p;
      this.#lengthFilled = 0;
      length = this.#lengthScratch.readInt32BE(0);
    }
    // Checked before a single byte of the frame is kept, so an oversized frame is refused at once.
    this.#contentBytes = checkedFrameBytes(length, this.#frameMaxBytes) - FRAME_LENGTH_FIELD_BYTES;
    return p;
  }

  /** Copies as much of the current frame as `chunk` holds into the assembly buffer, growing it. */
  #assemble(chunk: Buffer, p: number): number {
    const contentBytes = this.#contentBytes;
    assert(contentBytes >= HEADER_LENGTH_FIELD_BYTES && this.#assembled < contentBytes, 'no frame to assemble');
    const n = Math.min(contentBytes - this.#assembled, chunk.length - p);
    const needed = this.#assembled + n;
    const capacity = this.#assembly?.length ?? 0;
    if (needed > capacity) {
      const grown = Math.min(contentBytes, Math.max(needed, capacity * 2, ASSEMBLY_INITIAL_BYTES));
      const next = Buffer.allocUnsafe(grown);
      if (this.#assembly !== undefined) this.#assembly.copy(next, 0, 0, this.#assembled);
      this.#assembly = next;
    }
    chunk.copy(this.#assembly as Buffer, this.#assembled, p, p + n);
    this.#assembled = needed;
    return p + n;
  }
}
