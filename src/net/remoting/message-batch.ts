/**
 * Messages on the Remoting wire, below the header: the body of SEND_BATCH_MESSAGE (code 320), the
 * property names a message carries (MessageConst), and the client-side unique message id (UNIQ_KEY).
 *
 * Batch body. A producer's MessageBatch.encode is MessageDecoder.encodeMessages: the messages one after
 * another, each in the layout below, nothing before, between or after them. All integers big-endian.
 *
 * | offset  | size | field            | meaning                                                        |
 * |---------|------|------------------|----------------------------------------------------------------|
 * | 0       | 4    | totalSize        | bytes of this message: 22 + L + P (Java writes it, never reads) |
 * | 4       | 4    | magicCode        | Java writes 0; never read                                       |
 * | 8       | 4    | bodyCRC          | Java writes 0; never read (the broker computes the CRC itself)  |
 * | 12      | 4    | flag             | the message's flag                                              |
 * | 16      | 4    | bodyLength       | L, int32                                                        |
 * | 20      | L    | body             | opaque payload                                                  |
 * | 20+L    | 2    | propertiesLength | P, int16                                                        |
 * | 22+L    | P    | properties       | `name\u0001value\u0002` repeated, UTF-8 (message-record.ts)     |
 *
 * Reading (MessageDecoder.decodeMessages, and the broker's MessageExtEncoder.encode(MessageExtBatch),
 * which walks the same bytes): fields are read in order; totalSize, magicCode and bodyCRC are skipped
 * unchecked, so we skip them too and a client that fills them differently still works. Invariants
 * checked here, where Java would throw a buffer exception (answered as SYSTEM_ERROR):
 * - each message's 22 fixed bytes lie inside the body; bodyLength >= 0 and the body lies inside;
 *   propertiesLength >= 0 (Java reads it as a signed short) and the properties lie inside;
 * - the count of messages is at most `messagesMax`.
 * Nothing is allocated from a length before it passes these checks: bodies are views of the input.
 * An empty input decodes to no messages, as in Java; refusing an empty batch is the broker's call.
 *
 * Unique message id (MessageClientIDSetter.createUniqID), 16 bytes as 32 uppercase hex digits (28 bytes
 * and 56 digits when the client's address is IPv6):
 *
 * | offset | size  | field           | meaning                                                      |
 * |--------|-------|-----------------|--------------------------------------------------------------|
 * | 0      | 4|16  | ip              | the client's address                                         |
 * | 4|16   | 2     | pid             | process id, low 16 bits                                      |
 * | 6|18   | 4     | classLoaderHash | a per-process random value in Java (ClassLoader hashCode)    |
 * | 10|22  | 4     | timeDiff        | ms since the start of the current month (local time), mod 2^32 |
 * | 14|26  | 2     | counter         | per-process counter from 0, low 16 bits                      |
 */

import { assert } from '../../runtime/assert.ts';
import { readHost } from '../../storage/message-record.ts';

// ---------------------------------------------------------------------------------------------------
// Property names

/** RocketMQ's message property names (MessageConst.java, 5.x), with Java's constant names. */
export const MessageConst = {
  PROPERTY_KEYS: 'KEYS',
  PROPERTY_TAGS: 'TAGS',
  PROPERTY_WAIT_STORE_MSG_OK: 'WAIT',
  PROPERTY_DELAY_TIME_LEVEL: 'DELAY',
  PROPERTY_RETRY_TOPIC: 'RETRY_TOPIC',
  PROPERTY_REAL_TOPIC: 'REAL_TOPIC',
  PROPERTY_REAL_QUEUE_ID: 'REAL_QID',
  PROPERTY_TRANSACTION_PREPARED: 'TRAN_MSG',
  PROPERTY_PRODUCER_GROUP: 'PGROUP',
  PROPERTY_MIN_OFFSET: 'MIN_OFFSET',
  PROPERTY_MAX_OFFSET: 'MAX_OFFSET',
  PROPERTY_BUYER_ID: 'BUYER_ID',
  PROPERTY_ORIGIN_MESSAGE_ID: 'ORIGIN_MESSAGE_ID',
  PROPERTY_TRANSFER_FLAG: 'TRANSFER_FLAG',
  PROPERTY_CORRECTION_FLAG: 'CORRECTION_FLAG',
  PROPERTY_MQ2_FLAG: 'MQ2_FLAG',
  PROPERTY_RECONSUME_TIME: 'RECONSUME_TIME',
  PROPERTY_MSG_REGION: 'MSG_REGION',
  PROPERTY_TRACE_SWITCH: 'TRACE_ON',
  PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX: 'UNIQ_KEY',
  PROPERTY_EXTEND_UNIQ_INFO: 'EXTEND_UNIQ_INFO',
  PROPERTY_MAX_RECONSUME_TIMES: 'MAX_RECONSUME_TIMES',
  PROPERTY_CONSUME_START_TIMESTAMP: 'CONSUME_START_TIME',
  PROPERTY_INNER_NUM: 'INNER_NUM',
  PROPERTY_INNER_BASE: 'INNER_BASE',
  DUP_INFO: 'DUP_INFO',
  PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS: 'CHECK_IMMUNITY_TIME_IN_SECONDS',
  PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET: 'TRAN_PREPARED_QUEUE_OFFSET',
  PROPERTY_TRANSACTION_ID: '__transactionId__',
  PROPERTY_TRANSACTION_CHECK_TIMES: 'TRANSACTION_CHECK_TIMES',
  PROPERTY_INSTANCE_ID: 'INSTANCE_ID',
  PROPERTY_CORRELATION_ID: 'CORRELATION_ID',
  PROPERTY_MESSAGE_REPLY_TO_CLIENT: 'REPLY_TO_CLIENT',
  PROPERTY_MESSAGE_TTL: 'TTL',
  PROPERTY_REPLY_MESSAGE_ARRIVE_TIME: 'ARRIVE_TIME',
  PROPERTY_PUSH_REPLY_TIME: 'PUSH_REPLY_TIME',
  PROPERTY_CLUSTER: 'CLUSTER',
  PROPERTY_MESSAGE_TYPE: 'MSG_TYPE',
  PROPERTY_POP_CK: 'POP_CK',
  PROPERTY_POP_CK_OFFSET: 'POP_CK_OFFSET',
  PROPERTY_FIRST_POP_TIME: '1ST_POP_TIME',
  PROPERTY_SHARDING_KEY: '__SHARDINGKEY',
  PROPERTY_FORWARD_QUEUE_ID: 'PROPERTY_FORWARD_QUEUE_ID',
  PROPERTY_REDIRECT: 'REDIRECT',
  PROPERTY_INNER_MULTI_DISPATCH: 'INNER_MULTI_DISPATCH',
  PROPERTY_INNER_MULTI_QUEUE_OFFSET: 'INNER_MULTI_QUEUE_OFFSET',
  PROPERTY_TRACE_CONTEXT: 'TRACE_CONTEXT',
  PROPERTY_TIMER_DELAY_SEC: 'TIMER_DELAY_SEC',
  PROPERTY_TIMER_DELIVER_MS: 'TIMER_DELIVER_MS',
  PROPERTY_BORN_HOST: '__BORNHOST',
  PROPERTY_BORN_TIMESTAMP: 'BORN_TIMESTAMP',
  PROPERTY_TRANSIENT_PREFIX: '__RMQ.TRANSIENT.',
  PROPERTY_TRANSIENT_TOPIC_CONFIG: '__RMQ.TRANSIENT.TOPIC_SYS_FLAG',
  PROPERTY_TRANSIENT_GROUP_CONFIG: '__RMQ.TRANSIENT.GROUP_SYS_FLAG',
  PROPERTY_TIMER_ENQUEUE_MS: 'TIMER_ENQUEUE_MS',
  PROPERTY_TIMER_DEQUEUE_MS: 'TIMER_DEQUEUE_MS',
  PROPERTY_TIMER_ROLL_TIMES: 'TIMER_ROLL_TIMES',
  PROPERTY_TIMER_OUT_MS: 'TIMER_OUT_MS',
  PROPERTY_TIMER_DEL_UNIQKEY: 'TIMER_DEL_UNIQKEY',
  PROPERTY_TIMER_DELAY_LEVEL: 'TIMER_DELAY_LEVEL',
  PROPERTY_TIMER_DELAY_MS: 'TIMER_DELAY_MS',
  PROPERTY_CRC32: '__CRC32#',
  PROPERTY_DLQ_ORIGIN_TOPIC: 'DLQ_ORIGIN_TOPIC',
  PROPERTY_DLQ_ORIGIN_MESSAGE_ID: 'DLQ_ORIGIN_MESSAGE_ID',
} as const;

// ---------------------------------------------------------------------------------------------------
// Batch body

/** Bytes of a batch message before its body and properties: the five int32s and the int16. */
export const BATCH_MESSAGE_FIXED_BYTES = 4 + 4 + 4 + 4 + 4 + 2;

/** The largest properties length the int16 field carries; Java's encoder cannot write more either. */
export const BATCH_PROPERTIES_BYTES_MAX = 0x7fff;

/** One message of a batch. */
export type BatchMessage = {
  /** The message's flag. */
  readonly flag: number;
  /** The payload; a view of the decoded input, not a copy. */
  readonly body: Uint8Array;
  /** The encoded properties string (decode with message-record.ts's decodeMessageProperties). */
  readonly properties: string;
};

/** Stable codes of MessageBatchError. */
export const MessageBatchErrorCode = {
  /** Fewer bytes remain than a message's fixed fields need. */
  TRUNCATED: 'BATCH_TRUNCATED',
  /** A body or properties length is negative or runs past the end of the input. */
  BAD_LENGTH: 'BATCH_BAD_LENGTH',
  /** More messages than `messagesMax`. */
  TOO_MANY_MESSAGES: 'BATCH_TOO_MANY_MESSAGES',
} as const;

/** A stable code of MessageBatchError. */
export type MessageBatchErrorCode = (typeof MessageBatchErrorCode)[keyof typeof MessageBatchErrorCode];

/** A batch body that cannot be decoded; `offset` is where the offending message starts. */
export class MessageBatchError extends Error {
  /** Stable machine-readable code. */
  readonly code: MessageBatchErrorCode;
  /** Byte offset, in the batch body, of the message that failed. */
  readonly offset: number;
  override readonly name = 'MessageBatchError';

  constructor(code: MessageBatchErrorCode, message: string, offset: number) {
    super(message);
    this.code = code;
    this.offset = offset;
  }
}

/** Bounds of a batch decode. */
export type DecodeMessageBatchOptions = {
  /** Most messages accepted (default: as many as fit, at 22 bytes each). */
  readonly messagesMax?: number;
};

function readInt32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
}

function readInt16(bytes: Uint8Array, at: number): number {
  return (((bytes[at]! << 8) | bytes[at + 1]!) << 16) >> 16;
}

function writeInt32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

/** Decodes a SEND_BATCH_MESSAGE body as MessageDecoder.decodeMessages reads it; see the layout above. */
export function decodeMessageBatch(bytes: Uint8Array, options: DecodeMessageBatchOptions = {}): BatchMessage[] {
  const messagesMax = options.messagesMax ?? Math.ceil(bytes.length / BATCH_MESSAGE_FIXED_BYTES);
  const messages: BatchMessage[] = [];
  let at = 0;
  // Each pass consumes at least BATCH_MESSAGE_FIXED_BYTES, so the loop ends within length / 22 passes.
  while (at < bytes.length) {
    const start = at;
    if (messages.length >= messagesMax) {
      const message = `batch holds more than ${messagesMax} messages`;
      throw new MessageBatchError(MessageBatchErrorCode.TOO_MANY_MESSAGES, message, start);
    }
    const where = `batch message ${messages.length} at byte ${start}`;
    if (bytes.length - at < BATCH_MESSAGE_FIXED_BYTES) {
      const message = `${where}: ${bytes.length - at} bytes left, fixed fields need ${BATCH_MESSAGE_FIXED_BYTES}`;
      throw new MessageBatchError(MessageBatchErrorCode.TRUNCATED, message, start);
    }
    const flag = readInt32(bytes, at + 12);
    const bodyLength = readInt32(bytes, at + 16);
    at += 20;
    // bodyLength is checked against what remains (less the 2-byte properties length) before any use.
    if (bodyLength < 0 || bodyLength > bytes.length - at - 2) {
      const message = `${where}: body length ${bodyLength} does not fit in ${bytes.length - at - 2} bytes`;
      throw new MessageBatchError(MessageBatchErrorCode.BAD_LENGTH, message, start);
    }
    const body = bytes.subarray(at, at + bodyLength);
    at += bodyLength;
    const propertiesLength = readInt16(bytes, at);
    at += 2;
    if (propertiesLength < 0 || propertiesLength > bytes.length - at) {
      const message = `${where}: properties length ${propertiesLength} does not fit in ${bytes.length - at} bytes`;
      throw new MessageBatchError(MessageBatchErrorCode.BAD_LENGTH, message, start);
    }
    const properties = Buffer.from(bytes.buffer, bytes.byteOffset + at, propertiesLength).toString('utf8');
    at += propertiesLength;
    messages.push({ flag, body, properties });
  }
  assert(at === bytes.length, 'batch decode overran its input');
  return messages;
}

/** What encodeMessageBatch takes for one message. */
export type BatchMessageInput = {
  readonly flag?: number;
  readonly body: Uint8Array;
  /** Encoded properties (message-record.ts's encodeMessageProperties), at most 32767 UTF-8 bytes. */
  readonly properties?: string;
};

/** Encodes messages as MessageBatch.encode does (magic and CRC written as 0, as Java writes them). */
export function encodeMessageBatch(messages: readonly BatchMessageInput[]): Uint8Array {
  const sizes = messages.map((message) => {
    const propertiesBytes = Buffer.byteLength(message.properties ?? '', 'utf8');
    assert(propertiesBytes <= BATCH_PROPERTIES_BYTES_MAX, () => `properties of ${propertiesBytes} bytes exceed int16`);
    const flag = message.flag ?? 0;
    assert(Number.isInteger(flag) && flag >= -0x8000_0000 && flag <= 0x7fff_ffff, () => `flag ${flag} is not an int32`);
    return { propertiesBytes, total: BATCH_MESSAGE_FIXED_BYTES + message.body.length + propertiesBytes };
  });
  const out = Buffer.alloc(sizes.reduce((sum, size) => sum + size.total, 0));
  let at = 0;
  messages.forEach((message, i) => {
    const { propertiesBytes, total } = sizes[i]!;
    writeInt32(out, at, total);
    writeInt32(out, at + 4, 0);
    writeInt32(out, at + 8, 0);
    writeInt32(out, at + 12, message.flag ?? 0);
    writeInt32(out, at + 16, message.body.length);
    out.set(message.body, at + 20);
    at += 20 + message.body.length;
    out.writeInt16BE(propertiesBytes, at);
    at += 2;
    at += out.write(message.properties ?? '', at, propertiesBytes, 'utf8');
  });
  assert(at === out.length, 'batch encode wrote a different length than it computed');
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

// ---------------------------------------------------------------------------------------------------
// Unique message id (MessageClientIDSetter)

const HEX = '0123456789ABCDEF';
const UNIQ_ID_HEX_IPV4 = 32;
const UNIQ_ID_HEX_IPV6 = 56;
/** Java resets a small negative diff (the clock stepped back by NTP) to 0; this is "small". */
const NTP_STEP_BACK_MS_MAX = 1_000_000;

function hexOf(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += HEX[byte >>> 4]! + HEX[byte & 0xf]!;
  return out;
}

function hexDigits(value: number, digits: number): string {
  let out = '';
  for (let shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += HEX[(value >>> shift) & 0xf]!;
  return out;
}

/** Start of the month holding `nowMs`, and of the next one, in local time (Java's default Calendar). */
export function monthBoundsMs(nowMs: number): { startMs: number; nextStartMs: number } {
  const date = new Date(nowMs);
  const startMs = new Date(date.getFullYear(), date.getMonth(), 1).getTime();
  const nextStartMs = new Date(date.getFullYear(), date.getMonth() + 1, 1).getTime();
  return { startMs, nextStartMs };
}

/** What a UniqIdGenerator needs: the fixed prefix's parts and a clock. */
export type UniqIdGeneratorOptions = {
  /** The client's IPv4 (4 bytes) or IPv6 (16 bytes) address. */
  readonly ip: Uint8Array;
  /** Process id; its low 16 bits are used. */
  readonly pid: number;
  /** Stands in for Java's ClassLoader hashCode: a per-process random int32 keeps ids of two processes apart. */
  readonly instanceHash: number;
  /** Wall clock in ms (the id's time part is wall-clock time). */
  readonly clock: { nowMs(): number };
};

/** Makes UNIQ_KEY values exactly as MessageClientIDSetter.createUniqID lays them out. */
export class UniqIdGenerator {
  private readonly prefix: string;
  private readonly clock: { nowMs(): number };
  private startMs = 0;
  private nextStartMs = 0;
  private counter = 0;

  constructor(options: UniqIdGeneratorOptions) {
    assert(options.ip.length === 4 || options.ip.length === 16, () => `ip must have 4 or 16 bytes, not ${options.ip.length}`);
    assert(Number.isInteger(options.pid), () => `bad pid ${options.pid}`);
    assert(Number.isInteger(options.instanceHash), () => `bad instanceHash ${options.instanceHash}`);
    this.prefix = hexOf(options.ip) + hexDigits(options.pid & 0xffff, 4) + hexDigits(options.instanceHash | 0, 8);
    this.clock = options.clock;
  }

  /** The next id: prefix, time since the month started, counter. */
  next(): string {
    const nowMs = this.clock.nowMs();
    // Like Java, the month start only moves forward: a clock stepped back keeps the later month.
    if (nowMs >= this.nextStartMs) ({ startMs: this.startMs, nextStartMs: this.nextStartMs } = monthBoundsMs(nowMs));
    let diff = (nowMs - this.startMs) | 0; // Java's (int) cast: past ~24.8 days it wraps negative.
    if (diff < 0 && diff > -NTP_STEP_BACK_MS_MAX) diff = 0;
    const id = this.prefix + hexDigits(diff, 8) + hexDigits(this.counter & 0xffff, 4);
    this.counter = (this.counter + 1) | 0;
    return id;
  }
}

/** The parts of a unique message id. */
export type UniqIdParts = {
  /** The client's address, in text form. */
  readonly ip: string;
  /** Process id, low 16 bits. */
  readonly pid: number;
  /** Java's ClassLoader hashCode, as an int32. */
  readonly instanceHash: number;
  /** Milliseconds since the start of the month the id was made in, mod 2^32 (always < 2^32). */
  readonly timeDiffMs: number;
  /** Counter, low 16 bits. */
  readonly counter: number;
};

/** Splits a unique message id; null unless it has 32 (IPv4) or 56 (IPv6) hex digits. */
export function parseUniqId(id: string): UniqIdParts | null {
  if ((id.length !== UNIQ_ID_HEX_IPV4 && id.length !== UNIQ_ID_HEX_IPV6) || !/^[0-9a-fA-F]+$/.test(id)) return null;
  const bytes = Uint8Array.from(Buffer.from(id, 'hex'));
  const ipBytes = bytes.length === UNIQ_ID_HEX_IPV6 / 2 ? 16 : 4;
  // readHost formats an address followed by a 4-byte port; give it zero port bytes.
  const host = new Uint8Array(ipBytes + 4);
  host.set(bytes.subarray(0, ipBytes));
  const at = ipBytes;
  return {
    ip: readHost(host, 0, ipBytes + 4).address,
    pid: (bytes[at]! << 8) | bytes[at + 1]!,
    instanceHash: readInt32(bytes, at + 2),
    timeDiffMs: readInt32(bytes, at + 6) >>> 0,
    counter: (bytes[at + 10]! << 8) | bytes[at + 11]!,
  };
}

/**
 * When a unique id was made, as MessageClientIDSetter.getNearlyTimeFromID estimates it: the start of
 * the current month (local time) plus the id's time part, or of the previous month when that sum is not
 * before `nowMs`. Null for a string that is not a unique id.
 */
export function uniqIdTimeMs(id: string, nowMs: number): number | null {
  const parts = parseUniqId(id);
  if (parts === null) return null;
  const date = new Date(nowMs);
  let monthStartMs = new Date(date.getFullYear(), date.getMonth(), 1).getTime();
  if (monthStartMs + parts.timeDiffMs >= nowMs) {
    monthStartMs = new Date(date.getFullYear(), date.getMonth() - 1, 1).getTime();
  }
  return monthStartMs + parts.timeDiffMs;
}
