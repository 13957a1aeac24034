/**
 * A stored record written straight into the protobuf bytes of one ReceiveMessageResponse frame
 * (`{ message = 2 }`), without building the plain-object message and handing it to protobufjs.
 *
 * Why: every message a POP delivers goes through this, and the object route (`messageViewOf` then
 * protobufjs's encoder) allocates a few dozen short-lived objects per message (the properties map, the
 * system-properties object, Timestamps, protobufjs's writer operations). The bytes written here decode to
 * exactly what `messageViewOf` builds; `test/net/grpc/message-encoder.test.ts` checks that on random
 * records.
 *
 * Wire format (protobuf, fields in number order; every length is a minimal varint):
 *
 * | ReceiveMessageResponse | 2 message: Message                                                        |
 * | Message                | 1 topic: Resource {2 name}; 2 user_properties: map entries {1 key, 2 value}; |
 * |                        | 3 system_properties: SystemProperties; 4 body                               |
 * | SystemProperties       | 1 tag; 2 keys (repeated); 3 message_id; 4 body_digest {1 type, 2 checksum};  |
 * |                        | 5 body_encoding; 6 message_type; 7 born_timestamp; 8 born_host;              |
 * |                        | 9 store_timestamp; 10 store_host; 11 delivery_timestamp; 12 receipt_handle;  |
 * |                        | 13 queue_id; 14 queue_offset; 15 invisible_duration; 16 delivery_attempt;    |
 * |                        | 17 message_group; 18 trace_context; 20 dead_letter_queue {1 topic, 2 id}     |
 * | Timestamp / Duration   | 1 seconds (int64), 2 nanos (int32); zero fields are left out                  |
 */
import { assert } from '../../runtime/assert.ts';
import { MessageConst } from '../remoting/message-batch.ts';
import { decodeRecord, MessageSysFlag, offsetMessageId } from '../../storage/message-record.ts';
import { SYSTEM_PROPERTY_NAMES } from './send-message.ts';
import { DigestType, Encoding } from './enums.ts';
import { type DeliveryInfo, hostString, md5Checksum, messageTypeOf } from './message-view.ts';

/** Wire types. */
const VARINT = 0;
const LEN = 2;
/** Field 2 of ReceiveMessageResponse (message), length-delimited. */
const RESPONSE_MESSAGE_TAG = (2 << 3) | LEN;

/**
 * A response frame already in protobuf bytes: the MessagingService serializer passes it through as is.
 * Only the Proxy's hot paths build these; everything else hands plain objects to protobufjs.
 */
export class EncodedFrame {
  readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
}

/**
 * Appends protobuf fields to a reused scratch buffer. Nested messages are written by reserving the
 * largest length prefix they could need and closing the gap once their size is known (`openLen` /
 * `closeLen`), so each byte is written once.
 */
class ScratchWriter {
  buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  pos = 0;

  reset(): void {
    this.pos = 0;
  }

  ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** A non-negative integer up to 2^53 as a varint. */
  varint(value: number): void {
    assert(value >= 0 && Number.isSafeInteger(value), () => `varint of ${value}`);
    this.ensure(10);
    let rest = value;
    while (rest >= 0x80) {
      this.buf[this.pos++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buf[this.pos++] = rest;
  }

  /** An int32 or int64 field's value: negatives are ten-byte two's complement, as protobuf writes them. */
  signed(value: number): void {
    if (value >= 0) return this.varint(value);
    assert(Number.isSafeInteger(value), () => `int64 of ${value}`);
    this.ensure(10);
    let rest = BigInt.asUintN(64, BigInt(value));
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.buf[this.pos++] = Number(rest);
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  intField(field: number, value: number): void {
    this.tag(field, VARINT);
    this.signed(value);
  }

  stringField(field: number, value: string): void {
    this.tag(field, LEN);
    const at = this.openLen(value.length * 3);
    this.ensure(value.length * 3);
    this.pos += this.buf.write(value, this.pos, 'utf8');
    this.closeLen(at);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, LEN);
    this.varint(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Reserves a length prefix wide enough for `maxBytes`; returns the mark `closeLen` takes. */
  openLen(maxBytes: number): number {
    const width = varintWidth(maxBytes);
    this.ensure(width);
    const mark = this.pos * 16 + width;
    this.pos += width;
    return mark;
  }

  /** Writes the length of what followed `openLen`, moving it down when the length needs fewer bytes. */
  closeLen(mark: number): void {
    const reserved = mark % 16;
    const start = (mark - reserved) / 16;
    const contentAt = start + reserved;
    const length = this.pos - contentAt;
    const width = varintWidth(length);
    assert(width <= reserved, 'a nested length outgrew its reservation');
    if (width < reserved) this.buf.copyWithin(start + width, contentAt, this.pos);
    this.pos -= reserved - width;
    let at = start;
    let rest = length;
    while (rest >= 0x80) {
      this.buf[at++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.buf[at] = rest;
  }

  /** google.protobuf.Timestamp of `ms` since the epoch (nanos count forward from seconds). */
  timestampField(field: number, ms: number): void {
    const seconds = Math.floor(ms / 1000);
    this.timeField(field, seconds, (ms - seconds * 1000) * 1_000_000);
  }

  /** google.protobuf.Duration of `ms` (nanos share the sign of seconds). */
  durationField(field: number, ms: number): void {
    const seconds = Math.trunc(ms / 1000);
    this.timeField(field, seconds, (ms - seconds * 1000) * 1_000_000);
  }

  private timeField(field: number, seconds: number, nanos: number): void {
    this.tag(field, LEN);
    const at = this.openLen(22);
    if (seconds !== 0) this.intField(1, seconds);
    if (nanos !== 0) this.intField(2, nanos);
    this.closeLen(at);
  }
}

function varintWidth(value: number): number {
  let width = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) width++;
  return width;
}

const scratch = new ScratchWriter();

/** The ReceiveMessageResponse frame delivering the record at `offset` in `bytes` (a copy of what it needs). */
export function encodeReceivedMessage(bytes: Uint8Array, offset: number, delivery: DeliveryInfo): EncodedFrame {
  const record = decodeRecord(bytes, offset);
  const properties = record.propertiesMap();
  const body = record.body;
  const w = scratch;
  w.reset();
  w.tag(2, LEN);
  const message = w.openLen(0x7fff_ffff);

  w.tag(1, LEN);
  const topic = w.openLen(record.topic.length * 3 + 8);
  w.stringField(2, record.topic);
  w.closeLen(topic);

  for (const [name, value] of properties) {
    if (SYSTEM_PROPERTY_NAMES.has(name)) continue;
    w.tag(2, LEN);
    const entry = w.openLen((name.length + value.length) * 3 + 8);
    w.stringField(1, name);
    w.stringField(2, value);
    w.closeLen(entry);
  }

  w.tag(3, LEN);
  const system = w.openLen(0x7fff_ffff);
  const tag = properties.get(MessageConst.PROPERTY_TAGS);
  if (tag !== undefined) w.stringField(1, tag);
  const keys = properties.get(MessageConst.PROPERTY_KEYS);
  if (keys !== undefined) for (const key of keys.split(' ')) w.stringField(2, key);
  w.stringField(3, properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) ?? offsetMessageId(record.storeHost, record.physicalOffset));
  w.tag(4, LEN);
  const digest = w.openLen(64);
  w.intField(1, DigestType.MD5);
  w.stringField(2, md5Checksum(body));
  w.closeLen(digest);
  w.intField(5, (record.sysFlag & MessageSysFlag.COMPRESSED_FLAG) !== 0 ? Encoding.GZIP : Encoding.IDENTITY);
  w.intField(6, messageTypeOf(properties));
  w.timestampField(7, record.bornTimestampMs);
  w.stringField(8, properties.get(MessageConst.PROPERTY_BORN_HOST) ?? hostString(record.bornHost));
  w.timestampField(9, record.storeTimestampMs);
  w.stringField(10, hostString(record.storeHost));
  const deliverMs = properties.get(MessageConst.PROPERTY_TIMER_DELIVER_MS);
  if (deliverMs !== undefined && /^\d+$/.test(deliverMs)) w.timestampField(11, Number(deliverMs));
  if (delivery.receiptHandle !== undefined) w.stringField(12, delivery.receiptHandle);
  w.intField(13, record.queueId);
  w.intField(14, record.queueOffset);
  if (delivery.invisibleDurationMs !== undefined) w.durationField(15, delivery.invisibleDurationMs);
  w.intField(16, delivery.deliveryAttempt ?? record.reconsumeTimes + 1);
  const group = properties.get(MessageConst.PROPERTY_SHARDING_KEY);
  if (group !== undefined) w.stringField(17, group);
  const trace = properties.get(MessageConst.PROPERTY_TRACE_CONTEXT);
  if (trace !== undefined) w.stringField(18, trace);
  const dlqTopic = properties.get('DLQ_ORIGIN_TOPIC');
  const dlqMessageId = properties.get('DLQ_ORIGIN_MESSAGE_ID');
  if (dlqTopic !== undefined && dlqMessageId !== undefined) {
    w.tag(20, LEN);
    const dlq = w.openLen((dlqTopic.length + dlqMessageId.length) * 3 + 8);
    w.stringField(1, dlqTopic);
    w.stringField(2, dlqMessageId);
    w.closeLen(dlq);
  }
  w.closeLen(system);

  w.bytesField(4, body);
  w.closeLen(message);
  return new EncodedFrame(Buffer.from(w.buf.subarray(0, w.pos)));
}
