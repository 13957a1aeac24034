/**
 * A stored record as a 5.x client receives it (apache.rocketmq.v2.Message), as RocketMQ's GrpcConverter
 * builds it: user properties are the record's properties minus the reserved system names; system
 * properties carry tag, keys, message id (UNIQ_KEY, else the offset message id), an MD5 body digest, the
 * body encoding, the message type inferred from the properties, born/store time and host, delivery time,
 * message group, queue id and offset, delivery attempt, receipt handle and the dead-letter origin.
 *
 * The result is a plain object in protobufjs's camelCase shape (bytes as Uint8Array, enums as numbers,
 * Timestamps as {seconds, nanos}), ready for the MessagingService encoder.
 */
import { hash } from 'node:crypto';
import { MessageConst } from '../remoting/message-batch.ts';
import { decodeRecord, MessageSysFlag, offsetMessageId, type SocketAddress } from '../../storage/message-record.ts';
import { SYSTEM_PROPERTY_NAMES } from './send-message.ts';
import { DigestType, Encoding, MessageType } from './enums.ts';
import { durationFromMs, timestampFromMs } from './wire-time.ts';

/** apache.rocketmq.v2.Message as handed to the encoder. */
export type MessageObject = {
  readonly topic: { readonly name: string; readonly resourceNamespace: string };
  readonly userProperties: Record<string, string>;
  readonly systemProperties: Record<string, unknown>;
  readonly body: Uint8Array;
};

/** What the POP side adds to a delivered message. */
export type DeliveryInfo = {
  readonly receiptHandle?: string;
  /** 1 on first delivery. */
  readonly deliveryAttempt?: number;
  readonly invisibleDurationMs?: number;
};

/**
 * The body digest RocketMQ's Proxy sends: MD5 in upper-case hex. (CRC32 would be cheaper, but the official
 * clients disagree on its text: the Java client expects hex, the Node.js client decimal.)
 */
export function md5Checksum(body: Uint8Array): string {
  return hash('md5', body, 'hex').toUpperCase();
}

/** `address:port`, with brackets around an IPv6 address. */
export const hostString = (host: SocketAddress): string => (host.address.includes(':') ? `[${host.address}]:${host.port}` : `${host.address}:${host.port}`);

/** Builds the client's view of the record at `offset` in `bytes` (a copy: it does not keep the page cache). */
export function messageViewOf(bytes: Uint8Array, offset: number, delivery: DeliveryInfo = {}): MessageObject {
  const record = decodeRecord(bytes, offset);
  const properties = record.propertiesMap();
  // No prototype: a user property named __proto__ is kept as a property.
  const userProperties: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of properties) if (!SYSTEM_PROPERTY_NAMES.has(name)) userProperties[name] = value;
  const body = Uint8Array.from(record.body);
  const system: Record<string, unknown> = {
    messageId: properties.get(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) ?? offsetMessageId(record.storeHost, record.physicalOffset),
    bodyDigest: { type: DigestType.MD5, checksum: md5Checksum(body) },
    bodyEncoding: (record.sysFlag & MessageSysFlag.COMPRESSED_FLAG) !== 0 ? Encoding.GZIP : Encoding.IDENTITY,
    messageType: messageTypeOf(properties),
    bornTimestamp: timestampFromMs(record.bornTimestampMs),
    bornHost: properties.get(MessageConst.PROPERTY_BORN_HOST) ?? hostString(record.bornHost),
    storeTimestamp: timestampFromMs(record.storeTimestampMs),
    storeHost: hostString(record.storeHost),
    queueId: record.queueId,
    queueOffset: record.queueOffset,
    deliveryAttempt: delivery.deliveryAttempt ?? record.reconsumeTimes + 1,
  };
  const tag = properties.get(MessageConst.PROPERTY_TAGS);
  if (tag !== undefined) system['tag'] = tag;
  const keys = properties.get(MessageConst.PROPERTY_KEYS);
  if (keys !== undefined) system['keys'] = keys.split(' ');
  const deliverMs = properties.get(MessageConst.PROPERTY_TIMER_DELIVER_MS);
  if (deliverMs !== undefined && /^\d+$/.test(deliverMs)) system['deliveryTimestamp'] = timestampFromMs(Number(deliverMs));
  const group = properties.get(MessageConst.PROPERTY_SHARDING_KEY);
  if (group !== undefined) system['messageGroup'] = group;
  const trace = properties.get(MessageConst.PROPERTY_TRACE_CONTEXT);
  if (trace !== undefined) system['traceContext'] = trace;
  if (delivery.receiptHandle !== undefined) system['receiptHandle'] = delivery.receiptHandle;
  if (delivery.invisibleDurationMs !== undefined) system['invisibleDuration'] = durationFromMs(delivery.invisibleDurationMs);
  const dlqTopic = properties.get('DLQ_ORIGIN_TOPIC');
  const dlqMessageId = properties.get('DLQ_ORIGIN_MESSAGE_ID');
  if (dlqTopic !== undefined && dlqMessageId !== undefined) system['deadLetterQueue'] = { topic: dlqTopic, messageId: dlqMessageId };
  return { topic: { name: record.topic, resourceNamespace: '' }, userProperties, systemProperties: system, body };
}

/** The type GrpcConverter infers: transaction, then delay, then FIFO, else normal. */
export function messageTypeOf(properties: ReadonlyMap<string, string>): number {
  if (properties.get(MessageConst.PROPERTY_TRANSACTION_PREPARED) === 'true') return MessageType.TRANSACTION;
  if (
    properties.has(MessageConst.PROPERTY_DELAY_TIME_LEVEL) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELIVER_MS) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELAY_SEC)
  ) {
    return MessageType.DELAY;
  }
  if (properties.has(MessageConst.PROPERTY_SHARDING_KEY)) return MessageType.FIFO;
  return MessageType.NORMAL;
}
