/**
 * RocketMQ's stored-message record: the unit the CommitLog appends, byte for byte what the Java broker
 * writes (MessageExtEncoder, CommitLog.DefaultAppendMessageCallback), so a store written by either can be
 * read by the other. All integers are big-endian and signed, as Java's ByteBuffer writes them.
 *
 * B is the born-host width and S the store-host width: 8 (IPv4: 4 address + 4 port) unless the sysFlag
 * bit BORNHOST_V6_FLAG (0x10) or STOREHOSTADDRESS_V6_FLAG (0x20) says 20 (IPv6: 16 address + 4 port).
 * Offsets below are for IPv4 hosts (B = S = 8); with IPv6 hosts every field after the host shifts by 12.
 *
 * | offset   | size | field                     | meaning                                                  |
 * |----------|------|---------------------------|----------------------------------------------------------|
 * | 0        | 4    | totalSize                 | bytes of the whole record, this field included           |
 * | 4        | 4    | magicCode                 | 0xdaa320a7 (v1, 1-byte topic length), 0xdaa320ab (v2,    |
 * |          |      |                           | 2-byte topic length), or 0xcbd43194 for a blank marker   |
 * | 8        | 4    | bodyCRC                   | CRC-32 (java.util.zip.CRC32) of the body & 0x7fffffff    |
 * | 12       | 4    | queueId                   | queue of the topic                                       |
 * | 16       | 4    | flag                      | the producer's message flag                              |
 * | 20       | 8    | queueOffset               | position in the ConsumeQueue (0 for prepared/rollback)   |
 * | 28       | 8    | physicalOffset            | this record's offset in the CommitLog                    |
 * | 36       | 4    | sysFlag                   | MessageSysFlag bits (transaction, compression, IPv6...)  |
 * | 40       | 8    | bornTimestamp             | producer clock, ms since the epoch                       |
 * | 48       | B    | bornHost                  | producer address bytes, then int32 port                  |
 * | 48+B     | 8    | storeTimestamp            | broker clock when appended, ms since the epoch           |
 * | 56+B     | S    | storeHost                 | broker address bytes, then int32 port                    |
 * | 56+B+S   | 4    | reconsumeTimes            | delivery attempts so far                                 |
 * | 60+B+S   | 8    | preparedTransactionOffset | CommitLog offset of the half message, for tx end records |
 * | 68+B+S   | 4    | bodyLength                | L                                                        |
 * | 72+B+S   | L    | body                      | opaque payload (compressed when sysFlag says so)         |
 * | 72+B+S+L | 1|2  | topicLength               | T: a byte for v1, an int16 for v2                        |
 * | ...      | T    | topic                     | UTF-8                                                    |
 * | ...      | 2    | propertiesLength          | P, int16                                                 |
 * | ...      | P    | properties                | `name\u0001value\u0002` repeated, UTF-8                  |
 *
 * Blank marker, written where the next record does not fit in the rest of a file:
 *
 * | offset | size | field     | meaning                                            |
 * |--------|------|-----------|----------------------------------------------------|
 * | 0      | 4    | totalSize | bytes from here to the end of the file (>= 8)      |
 * | 4      | 4    | magicCode | 0xcbd43194 (BLANK_MAGIC_CODE)                      |
 * | 8      | ...  | (zeros)   | the rest of the file, never read                   |
 *
 * Invariants, checked by `checkRecord` after every read and (without the CRC) just after every write:
 * - totalSize equals the sum of the layout's widths for the lengths the record declares (Java's
 *   calMsgLength), so the lengths add up exactly, and the record lies inside the limit it is read from.
 * - bodyCRC matches the body; physicalOffset matches where the record sits, when the reader knows that.
 * - The last byte of a record with properties is never zero: they end with \u0002 (Java's encoder
 *   always ends an entry with it), and a topic is non-empty and holds no NUL. The store's files are
 *   zero beyond the log's end, so a write cut short leaves a zero last byte; that is how a torn record is
 *   told from a corrupt one when the damage is not in the body. A record without properties ends in its
 *   zero propertiesLength; for it the lengths and the body CRC are the only guards.
 * - The writer uses v2 exactly when the topic's UTF-8 form is longer than 127 bytes (Java switches on
 *   the topic's char count, which equals its byte count for the ASCII names RocketMQ allows); the
 *   reader accepts v2 with any topic length, and v1 only up to 127 (its length byte is signed).
 *
 * The format has no checksum over the header, topic or properties (RocketMQ's optional `__CRC32#`
 * property, enabledAppendPropCRC, is not written here); the checks above are what guards them.
 */

import { isIPv4, isIPv6 } from 'node:net';
import { assert } from '../runtime/assert.ts';
import { crc32 } from './crc32.ts';

/** Magic code of a v1 record (1-byte topic length); Java's MESSAGE_MAGIC_CODE. */
export const MESSAGE_MAGIC_CODE = -626843481;
/** Magic code of a v2 record (2-byte topic length); Java's MESSAGE_MAGIC_CODE_V2. */
export const MESSAGE_MAGIC_CODE_V2 = -626843477;
/** Magic code of the end-of-file blank marker; Java's BLANK_MAGIC_CODE. */
export const BLANK_MAGIC_CODE = -875286124;
/** Bytes of a blank marker, and the room a record must leave after itself (END_FILE_MIN_BLANK_LENGTH). */
export const BLANK_MARKER_BYTES = 8;

/** MessageSysFlag bits that the record format itself depends on or that the store interprets. */
export const MessageSysFlag = {
  /** The body is compressed. */
  COMPRESSED_FLAG: 0x1,
  /** Tags hold several values. */
  MULTI_TAGS_FLAG: 0x1 << 1,
  /** Ordinary message, not part of a transaction. */
  TRANSACTION_NOT_TYPE: 0,
  /** Half message of a transaction: stored, not consumable. */
  TRANSACTION_PREPARED_TYPE: 0x1 << 2,
  /** End record committing a half message. */
  TRANSACTION_COMMIT_TYPE: 0x2 << 2,
  /** End record rolling a half message back; also the mask of the transaction bits. */
  TRANSACTION_ROLLBACK_TYPE: 0x3 << 2,
  /** bornHost is 16 + 4 bytes. */
  BORNHOST_V6_FLAG: 0x1 << 4,
  /** storeHost is 16 + 4 bytes. */
  STOREHOSTADDRESS_V6_FLAG: 0x1 << 5,
  /** A batch the broker must unwrap. */
  NEED_UNWRAP_FLAG: 0x1 << 6,
  /** One record holding INNER_NUM messages that take INNER_NUM queue offsets. */
  INNER_BATCH_FLAG: 0x1 << 7,
  /** Mask of the compression type (LZ4 1, ZSTD 2, ZLIB 3, shifted left by 8). */
  COMPRESSION_TYPE_COMPARATOR: 0x7 << 8,
} as const;

/** Separates a property's name from its value (Java's NAME_VALUE_SEPARATOR). */
export const NAME_VALUE_SEPARATOR = '\u0001';
/** Ends each property (Java's PROPERTY_SEPARATOR). */
export const PROPERTY_SEPARATOR = '\u0002';
const NAME_VALUE_SEPARATOR_CODE = NAME_VALUE_SEPARATOR.charCodeAt(0);

/** The largest topic and properties lengths the int16 fields can carry (Java casts to short). */
export const FIELD_INT16_MAX = 0x7fff;
/** The longest topic a v1 record can carry in its 1-byte length field. */
export const TOPIC_V1_BYTES_MAX = 127;

const POSITION_BORN_HOST = 48;
const BYTES_INT64_HIGH = 4294967296;
const IPV4_HOST_BYTES = 8;
const IPV6_HOST_BYTES = 20;
/** The smallest record: IPv4 hosts, empty body, 1-byte topic, no properties. */
export const RECORD_MIN_BYTES = 72 + 2 * IPV4_HOST_BYTES + 1 + 1 + 2;

/** An IPv4 or IPv6 address (text form) and a port. */
export type SocketAddress = { readonly address: string; readonly port: number };

/** Everything a record holds, as `encodeRecord` takes it. */
export type RecordInput = {
  /** Topic name; non-empty, no NUL, at most 32767 UTF-8 bytes (v2 above 127). */
  readonly topic: string;
  /** Queue of the topic. */
  readonly queueId: number;
  /** The producer's message flag. */
  readonly flag: number;
  /** ConsumeQueue offset assigned by the writer. */
  readonly queueOffset: number;
  /** Where the record goes in the CommitLog. */
  readonly physicalOffset: number;
  /** MessageSysFlag bits; the two IPv6 bits are derived from the hosts and overwritten. */
  readonly sysFlag: number;
  /** Producer clock in ms. */
  readonly bornTimestampMs: number;
  /** Producer address. */
  readonly bornHost: SocketAddress;
  /** Broker clock in ms when appended. */
  readonly storeTimestampMs: number;
  /** Broker address. */
  readonly storeHost: SocketAddress;
  /** Delivery attempts so far. */
  readonly reconsumeTimes: number;
  /** Offset of the half message this record ends, else 0. */
  readonly preparedTransactionOffset: number;
  /** Payload. */
  readonly body: Uint8Array;
  /** Encoded properties string (see `encodeMessageProperties`); empty or ending with \u0002. */
  readonly properties: string;
};

/** Why a record failed its check; stable strings for logs and recovery reports. */
export type RecordFault =
  | 'unwritten' // the header is all zero: nothing was ever written here
  | 'short' // fewer bytes remain before the limit than the record needs
  | 'header-torn' // the magic is a zero-padded prefix of a known magic
  | 'magic' // an unknown magic code
  | 'size' // totalSize below the minimum or above the maximum record size
  | 'blank-size' // a blank marker that does not reach exactly to the limit
  | 'length-mismatch' // the declared lengths do not add up to totalSize
  | 'body-crc' // the body does not match bodyCRC
  | 'physical-offset' // the record says it lives at another offset
  | 'unterminated'; // properties not ending in \u0002, or a record ending in a zero byte

/** The outcome of `checkRecord`. */
export type RecordCheck =
  | { readonly kind: 'record'; readonly size: number }
  | { readonly kind: 'blank'; readonly size: number }
  | { readonly kind: 'torn'; readonly reason: RecordFault }
  | { readonly kind: 'corrupt'; readonly reason: RecordFault };

/** Optional checks of `checkRecord`. */
export type CheckRecordOptions = {
  /** The CommitLog offset the record must claim in its physicalOffset field. */
  readonly expectedPhysicalOffset?: number;
  /** Recompute the body CRC (default true); writers skip it for a record they just encoded. */
  readonly verifyBodyCrc?: boolean;
  /** Largest acceptable totalSize (default 2^31 - 1). */
  readonly maxSizeBytes?: number;
};

// ---------------------------------------------------------------------------------------------------
// Big-endian integers. Hand-written rather than DataView so that no view is allocated per field.

export function readInt32(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
}

export function writeInt32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

function readInt16(bytes: Uint8Array, at: number): number {
  return (((bytes[at] << 8) | bytes[at + 1]) << 16) >> 16;
}

function writeInt16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 8;
  bytes[at + 1] = value;
}

/** Reads a Java long; exact for values inside the safe-integer range, which is all the store writes. */
export function readInt64(bytes: Uint8Array, at: number): number {
  return readInt32(bytes, at) * BYTES_INT64_HIGH + (readInt32(bytes, at + 4) >>> 0);
}

function writeInt64(bytes: Uint8Array, at: number, value: number): void {
  const high = Math.floor(value / BYTES_INT64_HIGH);
  writeInt32(bytes, at, high | 0);
  writeInt32(bytes, at + 4, (value - high * BYTES_INT64_HIGH) >>> 0);
}

function isOffset(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function isInt32(value: number): boolean {
  return Number.isInteger(value) && value >= -0x8000_0000 && value <= 0x7fff_ffff;
}

/** Body CRC as RocketMQ stores it: java.util.zip.CRC32 masked to a non-negative int. */
export function bodyCrc(body: Uint8Array): number {
  return crc32(body) & 0x7fff_ffff;
}

// ---------------------------------------------------------------------------------------------------
// Hosts

/** Bytes a host takes in a record: 8 for IPv4, 20 for IPv6. */
export function hostBytesOf(host: SocketAddress): number {
  return isV4(host.address) ? IPV4_HOST_BYTES : IPV6_HOST_BYTES;
}

// Producers come from a handful of addresses, and net.isIPv4 is a regex: remember the answers (bounded).
const V4_MEMO_MAX = 4096;
const v4Memo = new Map<string, boolean>();

function isV4(address: string): boolean {
  let known = v4Memo.get(address);
  if (known === undefined) {
    known = isIPv4(address);
    if (v4Memo.size >= V4_MEMO_MAX) v4Memo.clear();
    v4Memo.set(address, known);
  }
  return known;
}

function parseIPv4(address: string, target: Uint8Array, at: number): void {
  const parts = address.split('.');
  assert(parts.length === 4, () => `bad IPv4 address ${address}`);
  for (let i = 0; i < 4; i++) target[at + i] = Number(parts[i]);
}

function parseIPv6(address: string, target: Uint8Array, at: number): void {
  assert(isIPv6(address), () => `not an IP address: ${address}`);
  const groups: number[] = [];
  const halves = address.split('::');
  const parseHalf = (half: string): number[] => {
    if (half === '') return [];
    const out: number[] = [];
    for (const part of half.split(':')) {
      if (part.includes('.')) {
        const v4 = new Uint8Array(4);
        parseIPv4(part, v4, 0);
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        out.push(Number.parseInt(part, 16));
      }
    }
    return out;
  };
  const head = parseHalf(halves[0]);
  const tail = halves.length > 1 ? parseHalf(halves[1]) : [];
  groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  assert(groups.length === 8, () => `bad IPv6 address ${address}`);
  for (let i = 0; i < 8; i++) writeInt16(target, at + 2 * i, groups[i]);
}

// Every record carries two hosts, and parsing an address costs more than the rest of the header. Each
// request brings a new host object, so the encoded form is kept by its text (address and port), in a
// map cleared when it grows past HOST_MEMO_MAX: producers come from a handful of addresses.
const HOST_MEMO_MAX = 4096;
const hostBytesMemo = new Map<string, Uint8Array>();

// The last two host objects seen, by identity: a record's born and store hosts, and every message of a
// batch shares them, so most lookups skip building the text key.
let lastHostA: SocketAddress | undefined;
let lastBytesA: Uint8Array = new Uint8Array(0);
let lastHostB: SocketAddress | undefined;
let lastBytesB: Uint8Array = new Uint8Array(0);

/** The encoded form of `host` (writeHost's bytes: 8 or 20), memoized by address and port; do not modify it. */
export function encodedHost(host: SocketAddress): Uint8Array {
  // SocketAddress fields are readonly: an object seen before still names the same host.
  if (host === lastHostA) return lastBytesA;
  if (host === lastHostB) return lastBytesB;
  const bytes = encodedHostByText(host);
  lastHostB = lastHostA;
  lastBytesB = lastBytesA;
  lastHostA = host;
  lastBytesA = bytes;
  return bytes;
}

function encodedHostByText(host: SocketAddress): Uint8Array {
  const key = `${host.address}/${host.port}`;
  let bytes = hostBytesMemo.get(key);
  if (bytes === undefined) {
    const scratch = new Uint8Array(IPV6_HOST_BYTES);
    bytes = scratch.slice(0, writeHost(scratch, 0, host));
    if (hostBytesMemo.size >= HOST_MEMO_MAX) hostBytesMemo.clear();
    hostBytesMemo.set(key, bytes);
  }
  return bytes;
}

/** Writes a host in RocketMQ's form (address bytes, then int32 port); returns the bytes written. */
export function writeHost(target: Uint8Array, at: number, host: SocketAddress): number {
  assert(Number.isInteger(host.port) && host.port >= 0 && host.port <= 0xffff, () => `bad port ${host.port}`);
  if (isV4(host.address)) {
    parseIPv4(host.address, target, at);
    writeInt32(target, at + 4, host.port);
    return IPV4_HOST_BYTES;
  }
  parseIPv6(host.address, target, at);
  writeInt32(target, at + 16, host.port);
  return IPV6_HOST_BYTES;
}

function formatIPv6(bytes: Uint8Array, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[at + 2 * i] << 8) | bytes[at + 2 * i + 1]);
  // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Reads a host of `width` bytes (8 or 20) written by `writeHost`. */
export function readHost(bytes: Uint8Array, at: number, width: number): SocketAddress {
  assert(width === IPV4_HOST_BYTES || width === IPV6_HOST_BYTES, () => `bad host width ${width}`);
  if (width === IPV4_HOST_BYTES) {
    const address = `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
    return { address, port: readInt32(bytes, at + 4) };
  }
  return { address: formatIPv6(bytes, at), port: readInt32(bytes, at + 16) };
}

// ---------------------------------------------------------------------------------------------------
// Offset message id (MessageDecoder.createMessageId / decodeMessageId)

const HEX_DIGITS = '0123456789ABCDEF';

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += HEX_DIGITS[byte >>> 4] + HEX_DIGITS[byte & 0xf];
  return out;
}

/** RocketMQ's offset message id: store host (4 + 4 or 16 + 4 bytes) and int64 offset, uppercase hex. */
export function offsetMessageId(storeHost: SocketAddress, physicalOffset: number): string {
  assert(Number.isSafeInteger(physicalOffset) && physicalOffset >= 0, () => `bad offset ${physicalOffset}`);
  const bytes = new Uint8Array(IPV6_HOST_BYTES + 8);
  const hostBytes = writeHost(bytes, 0, storeHost);
  writeInt64(bytes, hostBytes, physicalOffset);
  return hex(bytes.subarray(0, hostBytes + 8));
}

const HEX_CODES: readonly number[] = Array.from(HEX_DIGITS, (digit) => digit.charCodeAt(0));
let msgIdScratch = Buffer.alloc(4096);

/**
 * The offset msgIds of `count` records back to back from `physicalOffset`, joined by commas as a batch's
 * answer carries them; record i is `sizeAt(i)` bytes. `prefix` is the id's store-host part as ASCII hex
 * (offsetMessageId's id less its last 16 digits). The ids are written as bytes into one buffer and
 * decoded once: concatenating 64 strings per batch showed in a profile of the batch row.
 */
export function joinedMessageIds(prefix: Uint8Array, physicalOffset: number, count: number, sizeAt: (index: number) => number): string {
  const length = count * (prefix.length + 17) - 1;
  if (msgIdScratch.length < length) msgIdScratch = Buffer.alloc(Math.max(length, 2 * msgIdScratch.length));
  const out = msgIdScratch;
  let at = 0;
  let offset = physicalOffset;
  for (let index = 0; index < count; index++) {
    if (index > 0) out[at++] = 0x2c; // ','
    out.set(prefix, at);
    at += prefix.length;
    const high = Math.floor(offset / BYTES_INT64_HIGH);
    const low = offset - high * BYTES_INT64_HIGH;
    for (let shift = 28; shift >= 0; shift -= 4) out[at++] = HEX_CODES[(high >>> shift) & 0xf]!;
    for (let shift = 28; shift >= 0; shift -= 4) out[at++] = HEX_CODES[(low >>> shift) & 0xf]!;
    offset += sizeAt(index);
  }
  assert(at === length, 'msgIds fill what was measured');
  return out.toString('latin1', 0, length);
}

/**
 * The joined msgIds of a batch encodeBatch built (`count` records back to back in `records`, all for one
 * store host) once it sits at `physicalOffset`: what a send thread that appended it in place answers.
 */
export function batchMessageIds(records: Uint8Array, count: number, physicalOffset: number): string {
  const storeHostAt = storeHostPosition(records, 0);
  const prefix = Buffer.from(hex(records.subarray(storeHostAt, storeHostAt + storeHostWidth(readInt32(records, 36)))), 'latin1');
  let at = 0;
  return joinedMessageIds(prefix, physicalOffset, count, () => {
    const size = readInt32(records, at);
    assert(size > 0 && at + size <= records.length, () => `record at ${at} of the batch has size ${size}`);
    at += size;
    return size;
  });
}

/** Parses an offset message id; null unless it has 32 (IPv4) or 56 (IPv6) hex digits and a sane offset. */
export function parseOffsetMessageId(id: string): { storeHost: SocketAddress; physicalOffset: number } | null {
  if ((id.length !== 32 && id.length !== 56) || !/^[0-9a-fA-F]+$/.test(id)) return null;
  const bytes = Uint8Array.from(Buffer.from(id, 'hex'));
  const hostBytes = bytes.length - 8;
  const physicalOffset = readInt64(bytes, hostBytes);
  if (!Number.isSafeInteger(physicalOffset) || physicalOffset < 0) return null;
  return { storeHost: readHost(bytes, 0, hostBytes), physicalOffset };
}

// ---------------------------------------------------------------------------------------------------
// Properties (MessageDecoder.messageProperties2String / string2messageProperties)

/** Encodes properties as RocketMQ stores them: `name\u0001value\u0002` for each entry, in order. */
export function encodeMessageProperties(
  properties: Iterable<readonly [string, string]> | Record<string, string>,
): string {
  const entries = Symbol.iterator in properties ? properties : Object.entries(properties);
  let out = '';
  for (const [name, value] of entries as Iterable<readonly [string, string]>) {
    assert(name.length > 0, 'a property name is empty');
    // A separator inside a name or value would silently split the entry on decode.
    assert(!/[\u0001\u0002]/.test(name) && !/[\u0001\u0002]/.test(value), () => `property ${name} holds a separator`);
    out += name + NAME_VALUE_SEPARATOR + value + PROPERTY_SEPARATOR;
  }
  return out;
}

/** Decodes a properties string exactly as Java does: entries without a name or a value are skipped. */
export function decodeMessageProperties(properties: string): Map<string, string> {
  const map = new Map<string, string>();
  let index = 0;
  // Each pass consumes at least one character, so the loop ends within properties.length passes.
  while (index < properties.length) {
    let end = properties.indexOf(PROPERTY_SEPARATOR, index);
    if (end < 0) end = properties.length;
    if (end - index >= 3) {
      const separator = properties.indexOf(NAME_VALUE_SEPARATOR, index);
      if (separator > index && separator < end - 1) {
        map.set(properties.slice(index, separator), properties.slice(separator + 1, end));
      }
    }
    index = end + 1;
  }
  return map;
}

/**
 * The value `decodeMessageProperties(properties).get(name)` gives, found without building the map: the
 * last entry named `name` with a non-empty value (Java's map keeps the last of duplicate names), or
 * undefined. The store's dispatch reads two or three names per record this way.
 */
export function messagePropertyOf(properties: string, name: string): string | undefined {
  assert(name.length > 0 && !name.includes(NAME_VALUE_SEPARATOR) && !name.includes(PROPERTY_SEPARATOR), 'a property name is non-empty and holds no separator');
  let found: string | undefined;
  let index = 0;
  // Each pass moves past one entry separator, so the loop ends within properties.length passes.
  while (index < properties.length) {
    let end = properties.indexOf(PROPERTY_SEPARATOR, index);
    if (end < 0) end = properties.length;
    // The entry's name runs to its first NAME_VALUE_SEPARATOR; its value (non-empty) follows it.
    const separator = index + name.length;
    if (separator < end - 1 && properties.charCodeAt(separator) === NAME_VALUE_SEPARATOR_CODE && properties.startsWith(name, index)) {
      found = properties.slice(separator + 1, end);
    }
    index = end + 1;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------------
// Sizes and encoding

/** The record size for the given lengths and topic-length width: Java's MessageExtEncoder.calMsgLength. */
export function recordSizeOf(
  version: 1 | 2,
  sysFlag: number,
  bodyBytes: number,
  topicBytes: number,
  propertiesBytes: number,
): number {
  return 72 + bornHostWidth(sysFlag) + storeHostWidth(sysFlag) + bodyBytes + version + topicBytes + 2 + propertiesBytes;
}

/** The version the writer picks for a topic of `topicBytes`: v2 only when v1's length byte cannot hold it. */
export function versionForTopic(topicBytes: number): 1 | 2 {
  return topicBytes > TOPIC_V1_BYTES_MAX ? 2 : 1;
}

/** Bytes `encodeRecord` will write for `input`. */
export function recordSize(input: RecordInput): number {
  return recordSizeFor(input, recordTopic(input.topic), Buffer.byteLength(input.properties, 'utf8'), encodedHost(input.bornHost), encodedHost(input.storeHost));
}

function assertInput(input: RecordInput, propertiesBytes: number): void {
  assert(propertiesBytes <= FIELD_INT16_MAX, () => `properties length ${propertiesBytes} out of range`);
  assert(propertiesBytes === 0 || input.properties.endsWith(PROPERTY_SEPARATOR), 'properties must end with \\u0002');
  assert(isInt32(input.queueId) && isInt32(input.flag), 'queueId and flag are int32');
  assert(isInt32(input.sysFlag) && isInt32(input.reconsumeTimes), 'sysFlag and reconsumeTimes are int32');
  assert(isOffset(input.queueOffset) && isOffset(input.physicalOffset), 'queue and physical offsets are offsets');
  assert(isOffset(input.preparedTransactionOffset), () => `bad preparedTransactionOffset ${input.preparedTransactionOffset}`);
  assert(Number.isSafeInteger(input.bornTimestampMs), () => `bad bornTimestampMs ${input.bornTimestampMs}`);
  assert(Number.isSafeInteger(input.storeTimestampMs), () => `bad storeTimestampMs ${input.storeTimestampMs}`);
}

/** A topic as records hold it, encoded once: encodeBatch shares one between a batch's records. */
export type RecordTopic = {
  readonly text: string;
  /** The topic's UTF-8 bytes; do not modify them. */
  readonly bytes: Uint8Array;
  /** The record version whose topic length field holds it. */
  readonly version: 1 | 2;
};

// The last topic encoded: a writer appending single puts sees the same few topics again and again.
let lastTopic: RecordTopic | undefined;

/** `topic` as records hold it; asserts that a record can hold it (1 to 32767 bytes, no NUL). */
export function recordTopic(topic: string): RecordTopic {
  if (lastTopic !== undefined && topic === lastTopic.text) return lastTopic;
  const bytes = new Uint8Array(Buffer.byteLength(topic, 'utf8'));
  writeText(bytes, 0, topic, bytes.length);
  assert(bytes.length >= 1 && bytes.length <= FIELD_INT16_MAX, () => `topic length ${bytes.length} out of range`);
  assert(!topic.includes('\u0000'), 'topic holds a NUL');
  lastTopic = { text: topic, bytes, version: versionForTopic(bytes.length) };
  return lastTopic;
}

/** Encodes `input` into `target` at `offset` (big-endian, as Java), checks it reads back; returns the record size. */
export function encodeRecord(target: Uint8Array, offset: number, input: RecordInput): number {
  const propertiesBytes = Buffer.byteLength(input.properties, 'utf8');
  const size = writeRecord(target, offset, input, recordTopic(input.topic), propertiesBytes, encodedHost(input.bornHost), encodedHost(input.storeHost));
  // Check just after the write: the structure must read back exactly (the CRC was computed above).
  const check = checkRecord(target, offset, offset + size, {
    expectedPhysicalOffset: input.physicalOffset,
    verifyBodyCrc: false,
  });
  assert(check.kind === 'record' && check.size === size, () => `encoded record fails its check: ${JSON.stringify(check)}`);
  return size;
}

/** Bytes `writeRecord` writes for `input` with these encoded parts. */
export function recordSizeFor(input: RecordInput, topic: RecordTopic, propertiesBytes: number, bornHost: Uint8Array, storeHost: Uint8Array): number {
  return recordSizeOf(topic.version, hostFlags(bornHost, storeHost), input.body.length, topic.bytes.length, propertiesBytes);
}

/** The sysFlag bits that say how wide the two hosts are. */
function hostFlags(bornHost: Uint8Array, storeHost: Uint8Array): number {
  return (bornHost.length === IPV4_HOST_BYTES ? 0 : MessageSysFlag.BORNHOST_V6_FLAG) |
    (storeHost.length === IPV4_HOST_BYTES ? 0 : MessageSysFlag.STOREHOSTADDRESS_V6_FLAG);
}

/**
 * Lays out the record of `input` at `offset` of `target` from its parts already encoded (the topic, the
 * properties' UTF-8 length, the two hosts as encodedHost gives them), computing the body CRC; returns
 * its size. The one place that writes the fields in the order of the table above. It does not read the
 * record back: encodeRecord does, and a batch's records are checked by the writer that takes them.
 */
export function writeRecord(
  target: Uint8Array,
  offset: number,
  input: RecordInput,
  topic: RecordTopic,
  propertiesBytes: number,
  bornHost: Uint8Array,
  storeHost: Uint8Array,
): number {
  assert(topic.text === input.topic, () => `record of topic ${input.topic} encoded with topic ${topic.text}`);
  assertInput(input, propertiesBytes);
  const sysFlag = (input.sysFlag & ~(MessageSysFlag.BORNHOST_V6_FLAG | MessageSysFlag.STOREHOSTADDRESS_V6_FLAG)) | hostFlags(bornHost, storeHost);
  const topicBytes = topic.bytes.length;
  const size = recordSizeOf(topic.version, sysFlag, input.body.length, topicBytes, propertiesBytes);
  assert(Number.isInteger(offset) && offset >= 0 && offset + size <= target.length, 'record does not fit target');

  writeInt32(target, offset, size);
  writeInt32(target, offset + 4, topic.version === 2 ? MESSAGE_MAGIC_CODE_V2 : MESSAGE_MAGIC_CODE);
  writeInt32(target, offset + 8, bodyCrc(input.body));
  writeInt32(target, offset + 12, input.queueId);
  writeInt32(target, offset + 16, input.flag);
  writeInt64(target, offset + 20, input.queueOffset);
  writeInt64(target, offset + 28, input.physicalOffset);
  writeInt32(target, offset + 36, sysFlag);
  writeInt64(target, offset + 40, input.bornTimestampMs);
  let at = offset + POSITION_BORN_HOST;
  copyShort(target, at, bornHost);
  at += bornHost.length;
  writeInt64(target, at, input.storeTimestampMs);
  at += 8;
  copyShort(target, at, storeHost);
  at += storeHost.length;
  writeInt32(target, at, input.reconsumeTimes);
  writeInt64(target, at + 4, input.preparedTransactionOffset);
  writeInt32(target, at + 12, input.body.length);
  at += 16;
  target.set(input.body, at);
  at += input.body.length;
  if (topic.version === 2) {
    writeInt16(target, at, topicBytes);
    at += 2;
  } else {
    target[at++] = topicBytes;
  }
  copyShort(target, at, topic.bytes);
  at += topicBytes;
  writeInt16(target, at, propertiesBytes);
  at += 2;
  at += writeText(target, at, input.properties, propertiesBytes);
  assert(at === offset + size, 'encoded length differs from recordSize');
  return size;
}

/** Copies a few bytes (a host, a topic) with a loop: cheaper than TypedArray.set's call for so few. */
function copyShort(target: Uint8Array, at: number, source: Uint8Array): void {
  if (source.length > TEXT_LOOP_MAX) {
    target.set(source, at);
    return;
  }
  for (let i = 0; i < source.length; i++) target[at + i] = source[i]!;
}

/** Text longer than this goes through Buffer.write even when it is ASCII. */
const TEXT_LOOP_MAX = 512;

/** Writes `text` (`bytes` long in UTF-8) at `at`: a plain loop for ASCII, which topics and keys mostly are. */
function writeText(target: Uint8Array, at: number, text: string, bytes: number): number {
  if (bytes === text.length && bytes <= TEXT_LOOP_MAX) {
    for (let i = 0; i < bytes; i++) target[at + i] = text.charCodeAt(i);
    return bytes;
  }
  return Buffer.from(target.buffer, target.byteOffset, target.byteLength).write(text, at, bytes, 'utf8');
}

/**
 * Fills in the three fields only the CommitLog writer knows, in a record encoded elsewhere (RocketMQ 5
 * encodes in the SendMessage threads and patches under the put lock the same way): queue offset,
 * physical offset and store timestamp. The body CRC does not cover them, so it stays valid.
 */
/** Fills in only the queue offset of the record at `offset` (an append region's batch has the rest). */
export function patchQueueOffset(target: Uint8Array, offset: number, queueOffset: number): void {
  assert(isOffset(queueOffset), () => `bad queue offset ${queueOffset}`);
  writeInt64(target, offset + 20, queueOffset);
}

/** Where the store timestamp of the record at `offset` sits (after the born host, whose width sysFlag gives). */
export function storeTimestampPosition(record: Uint8Array, offset: number): number {
  return offset + POSITION_BORN_HOST + bornHostWidth(readInt32(record, offset + 36));
}

/** Where the store host of the record at `offset` sits (after the born host and the store timestamp). */
function storeHostPosition(record: Uint8Array, offset: number): number {
  return storeTimestampPosition(record, offset) + 8;
}

/** Bytes of the born host in a record with `sysFlag`: 8 (IPv4) or 20 (IPv6). */
function bornHostWidth(sysFlag: number): number {
  return (sysFlag & MessageSysFlag.BORNHOST_V6_FLAG) === 0 ? IPV4_HOST_BYTES : IPV6_HOST_BYTES;
}

/** Bytes of the store host in a record with `sysFlag`: 8 (IPv4) or 20 (IPv6). */
function storeHostWidth(sysFlag: number): number {
  return (sysFlag & MessageSysFlag.STOREHOSTADDRESS_V6_FLAG) === 0 ? IPV4_HOST_BYTES : IPV6_HOST_BYTES;
}

export function patchWriterFields(target: Uint8Array, offset: number, queueOffset: number, physicalOffset: number, storeTimestampMs: number): void {
  assert(isOffset(queueOffset) && isOffset(physicalOffset) && isOffset(storeTimestampMs), 'writer fields are offsets');
  writeInt64(target, offset + 20, queueOffset);
  writeInt64(target, offset + 28, physicalOffset);
  writeInt64(target, storeTimestampPosition(target, offset), storeTimestampMs);
}

/**
 * Whether the record at `offset` (its structure already checked) names `storeHost` (encodedHost's bytes)
 * as its store host: the writer's check that a record encoded elsewhere was encoded for this broker.
 */
export function storeHostEquals(record: Uint8Array, offset: number, storeHost: Uint8Array): boolean {
  const storeHostBytes = storeHostWidth(readInt32(record, offset + 36));
  if (storeHostBytes !== storeHost.length) return false;
  const at = storeHostPosition(record, offset);
  for (let i = 0; i < storeHostBytes; i++) if (record[at + i] !== storeHost[i]) return false;
  return true;
}

/** Whether the record at `offset` (its structure already checked) carries `topic` (UTF-8 bytes) and `queueId`. */
export function recordIsFor(record: Uint8Array, offset: number, topic: Uint8Array, queueId: number): boolean {
  if (readInt32(record, offset + 12) !== queueId) return false;
  const sysFlag = readInt32(record, offset + 36);
  const bodyLengthAt = offset + 68 + bornHostWidth(sysFlag) + storeHostWidth(sysFlag);
  const topicLengthAt = bodyLengthAt + 4 + readInt32(record, bodyLengthAt);
  const v2 = readInt32(record, offset + 4) === MESSAGE_MAGIC_CODE_V2;
  const topicBytes = v2 ? readInt16(record, topicLengthAt) : record[topicLengthAt];
  if (topicBytes !== topic.length) return false;
  const at = topicLengthAt + (v2 ? 2 : 1);
  for (let i = 0; i < topicBytes; i++) if (record[at + i] !== topic[i]) return false;
  return true;
}

/** The store host as a pre-encoded record holds it, for the writer to check it wrote the record itself. */
export function storeHostOf(record: Uint8Array): SocketAddress {
  return readHost(record, storeHostPosition(record, 0), storeHostWidth(readInt32(record, 36)));
}

/** Writes a blank end-of-file marker declaring `sizeBytes` (the rest of the file) at `offset`. */
export function encodeBlank(target: Uint8Array, offset: number, sizeBytes: number): void {
  assert(Number.isInteger(sizeBytes) && sizeBytes >= BLANK_MARKER_BYTES, () => `blank of ${sizeBytes} bytes`);
  assert(offset >= 0 && offset + sizeBytes <= target.length, 'blank does not fit target');
  writeInt32(target, offset, sizeBytes);
  writeInt32(target, offset + 4, BLANK_MAGIC_CODE);
}

// ---------------------------------------------------------------------------------------------------
// Checking and decoding

const KNOWN_MAGICS = [MESSAGE_MAGIC_CODE, MESSAGE_MAGIC_CODE_V2, BLANK_MAGIC_CODE];

/** True when `magic` is a known magic code with some trailing bytes still zero: a header cut short. */
function isTornMagic(magic: number): boolean {
  for (const known of KNOWN_MAGICS) {
    for (const keepBytes of [0, 1, 2, 3]) {
      const mask = keepBytes === 0 ? 0 : (-1 << (32 - 8 * keepBytes)) | 0;
      if (magic === (known & mask)) return true;
    }
  }
  return false;
}

function isAllZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Positions of a record's variable-width parts, computed from its header without trusting totalSize. */
type RecordShape = {
  readonly version: 1 | 2;
  readonly bornHostBytes: number;
  readonly storeHostBytes: number;
  readonly bodyLengthAt: number;
  readonly bodyBytes: number;
  readonly topicAt: number;
  readonly topicBytes: number;
  readonly propertiesAt: number;
  readonly propertiesBytes: number;
};

/** Reads the lengths of the record at `offset` ending at `end`; null if one points outside it. */
function shapeOf(bytes: Uint8Array, offset: number, end: number, magic: number): RecordShape | null {
  const sysFlag = readInt32(bytes, offset + 36);
  const bornHostBytes = bornHostWidth(sysFlag);
  const storeHostBytes = storeHostWidth(sysFlag);
  const bodyLengthAt = offset + 68 + bornHostBytes + storeHostBytes;
  if (bodyLengthAt + 4 > end) return null;
  const bodyBytes = readInt32(bytes, bodyLengthAt);
  const version = magic === MESSAGE_MAGIC_CODE_V2 ? 2 : 1;
  const topicLengthAt = bodyLengthAt + 4 + bodyBytes;
  if (bodyBytes < 0 || topicLengthAt + version > end) return null;
  const topicBytes = version === 2 ? readInt16(bytes, topicLengthAt) : (bytes[topicLengthAt] << 24) >> 24;
  const topicAt = topicLengthAt + version;
  if (topicBytes < 0 || topicAt + topicBytes + 2 > end) return null;
  const propertiesBytes = readInt16(bytes, topicAt + topicBytes);
  const propertiesAt = topicAt + topicBytes + 2;
  if (propertiesBytes < 0 || propertiesAt + propertiesBytes > end) return null;
  return {
    version,
    bornHostBytes,
    storeHostBytes,
    bodyLengthAt,
    bodyBytes,
    topicAt,
    topicBytes,
    propertiesAt,
    propertiesBytes,
  };
}

/**
 * Checks the record or blank marker at `offset`, reading nothing at or past `limit` (the end of the
 * file segment: a blank must reach exactly to it). A failure is `torn` when the bytes look like a write
 * cut short (all zero, a zero-padded magic, a record running past the limit, or a bad record whose last
 * byte is still zero) and `corrupt` otherwise.
 */
export function checkRecord(
  bytes: Uint8Array,
  offset: number,
  limit: number,
  options?: CheckRecordOptions,
): RecordCheck {
  assert(Number.isInteger(offset) && offset >= 0 && offset <= limit && limit <= bytes.length, 'check range');
  const available = limit - offset;
  if (available < BLANK_MARKER_BYTES) {
    return { kind: 'torn', reason: isAllZero(bytes, offset, limit) ? 'unwritten' : 'short' };
  }
  const totalSize = readInt32(bytes, offset);
  const magic = readInt32(bytes, offset + 4);
  if (magic === BLANK_MAGIC_CODE) {
    if (totalSize !== available) return { kind: 'corrupt', reason: 'blank-size' };
    return { kind: 'blank', size: totalSize };
  }
  if (magic !== MESSAGE_MAGIC_CODE && magic !== MESSAGE_MAGIC_CODE_V2) {
    if (totalSize === 0 && magic === 0) return { kind: 'torn', reason: 'unwritten' };
    return isTornMagic(magic) ? { kind: 'torn', reason: 'header-torn' } : { kind: 'corrupt', reason: 'magic' };
  }
  const maxSizeBytes = options?.maxSizeBytes ?? 0x7fff_ffff;
  if (totalSize < RECORD_MIN_BYTES || totalSize > maxSizeBytes) return { kind: 'corrupt', reason: 'size' };
  if (totalSize > available) return { kind: 'torn', reason: 'short' };

  const end = offset + totalSize;
  // With the whole record inside the limit, a bad record whose last byte is zero is a write cut short:
  // a complete record never ends in a zero byte (see the invariants above).
  const fail = (reason: RecordFault): RecordCheck =>
    bytes[end - 1] === 0 ? { kind: 'torn', reason } : { kind: 'corrupt', reason };
  const shape = shapeOf(bytes, offset, end, magic);
  if (shape === null) return fail('length-mismatch');
  const computed = recordSizeOf(
    shape.version,
    readInt32(bytes, offset + 36),
    shape.bodyBytes,
    shape.topicBytes,
    shape.propertiesBytes,
  );
  // A v1 topic length is a signed byte, so shapeOf already bounds it to 127; v2 may carry any length.
  if (computed !== totalSize || shape.topicBytes === 0) return fail('length-mismatch');
  // A record without properties ends in its own zero propertiesLength, so only a record with
  // properties can be checked for its terminator (a zero there is then a write cut short).
  if (shape.propertiesBytes > 0 && bytes[end - 1] !== 0x02) return fail('unterminated');
  if (options?.verifyBodyCrc ?? true) {
    const body = bytes.subarray(shape.bodyLengthAt + 4, shape.bodyLengthAt + 4 + shape.bodyBytes);
    if (bodyCrc(body) !== readInt32(bytes, offset + 8)) return fail('body-crc');
  }
  const expected = options?.expectedPhysicalOffset;
  if (expected !== undefined && readInt64(bytes, offset + 28) !== expected) return fail('physical-offset');
  return { kind: 'record', size: totalSize };
}

/**
 * A decoded record that reads its fields from the underlying bytes on access. It holds a reference to
 * those bytes (often a whole file's cache); copy what must outlive it.
 */
export class RecordView {
  /** The bytes holding the record. */
  readonly bytes: Uint8Array;
  /** Where the record starts in `bytes`. */
  readonly offset: number;
  /** Bytes of the whole record. */
  readonly totalSize: number;
  private readonly shape: RecordShape;

  constructor(bytes: Uint8Array, offset: number) {
    assert(offset >= 0 && offset + RECORD_MIN_BYTES <= bytes.length, 'record view out of range');
    const totalSize = readInt32(bytes, offset);
    const magic = readInt32(bytes, offset + 4);
    assert(magic === MESSAGE_MAGIC_CODE || magic === MESSAGE_MAGIC_CODE_V2, () => `not a record: magic ${magic}`);
    assert(totalSize >= RECORD_MIN_BYTES && offset + totalSize <= bytes.length, () => `bad totalSize ${totalSize}`);
    const shape = shapeOf(bytes, offset, offset + totalSize, magic);
    assert(shape !== null && shape.propertiesAt + shape.propertiesBytes === offset + totalSize, 'bad lengths');
    this.bytes = bytes;
    this.offset = offset;
    this.totalSize = totalSize;
    this.shape = shape;
  }

  /** Magic code (v1 or v2). */
  get magicCode(): number {
    return readInt32(this.bytes, this.offset + 4);
  }
  /** 1 or 2: the width of the topic length field. */
  get version(): 1 | 2 {
    return this.shape.version;
  }
  /** Stored body CRC. */
  get bodyCrc(): number {
    return readInt32(this.bytes, this.offset + 8);
  }
  /** Queue of the topic. */
  get queueId(): number {
    return readInt32(this.bytes, this.offset + 12);
  }
  /** The producer's flag. */
  get flag(): number {
    return readInt32(this.bytes, this.offset + 16);
  }
  /** ConsumeQueue offset. */
  get queueOffset(): number {
    return readInt64(this.bytes, this.offset + 20);
  }
  /** CommitLog offset. */
  get physicalOffset(): number {
    return readInt64(this.bytes, this.offset + 28);
  }
  /** MessageSysFlag bits. */
  get sysFlag(): number {
    return readInt32(this.bytes, this.offset + 36);
  }
  /** Producer clock in ms. */
  get bornTimestampMs(): number {
    return readInt64(this.bytes, this.offset + 40);
  }
  /** Producer address. */
  get bornHost(): SocketAddress {
    return readHost(this.bytes, this.offset + POSITION_BORN_HOST, this.shape.bornHostBytes);
  }
  /** Broker clock in ms when appended. */
  get storeTimestampMs(): number {
    return readInt64(this.bytes, this.offset + POSITION_BORN_HOST + this.shape.bornHostBytes);
  }
  /** Broker address. */
  get storeHost(): SocketAddress {
    return readHost(this.bytes, this.offset + 56 + this.shape.bornHostBytes, this.shape.storeHostBytes);
  }
  /** Delivery attempts so far. */
  get reconsumeTimes(): number {
    return readInt32(this.bytes, this.shape.bodyLengthAt - 12);
  }
  /** Offset of the half message this record ends. */
  get preparedTransactionOffset(): number {
    return readInt64(this.bytes, this.shape.bodyLengthAt - 8);
  }
  /** The body, as a view into the underlying bytes. */
  get body(): Uint8Array {
    const at = this.shape.bodyLengthAt + 4;
    return this.bytes.subarray(at, at + this.shape.bodyBytes);
  }
  /** Topic name. */
  get topic(): string {
    return topicText(this.bytes, this.shape.topicAt, this.shape.topicBytes);
  }
  /** The raw properties string. */
  get properties(): string {
    return utf8(this.bytes, this.shape.propertiesAt, this.shape.propertiesBytes);
  }
  /** Properties decoded into a map. */
  propertiesMap(): Map<string, string> {
    return decodeMessageProperties(this.properties);
  }
  /** The whole record, as a view into the underlying bytes. */
  raw(): Uint8Array {
    return this.bytes.subarray(this.offset, this.offset + this.totalSize);
  }
}

// Consecutive records mostly share a handful of topics: recovery and reads decode millions of them, so
// the last few decoded topic names are kept with their bytes and reused when the bytes match.
const TOPIC_MEMO_SLOTS = 8;
const topicMemoBytes: (Buffer | null)[] = new Array<Buffer | null>(TOPIC_MEMO_SLOTS).fill(null);
const topicMemoText: string[] = new Array<string>(TOPIC_MEMO_SLOTS).fill('');
let topicMemoNext = 0;

function topicText(bytes: Uint8Array, at: number, length: number): string {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, length);
  for (let slot = 0; slot < TOPIC_MEMO_SLOTS; slot++) {
    const known = topicMemoBytes[slot];
    if (known !== null && known !== undefined && known.length === length && known.equals(view)) return topicMemoText[slot]!;
  }
  const text = view.toString('utf8');
  topicMemoBytes[topicMemoNext] = Buffer.from(view);
  topicMemoText[topicMemoNext] = text;
  topicMemoNext = (topicMemoNext + 1) % TOPIC_MEMO_SLOTS;
  return text;
}

function utf8(bytes: Uint8Array, at: number, length: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, length).toString('utf8');
}

/** Decodes the record at `offset` into a lazy view; callers run `checkRecord` first for untrusted bytes. */
export function decodeRecord(bytes: Uint8Array, offset: number): RecordView {
  return new RecordView(bytes, offset);
}
