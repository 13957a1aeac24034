/**
 * The hand-written ReceiveMessageResponse encoder against the object route it replaces: for any stored
 * record and delivery, protobufjs decodes the encoder's bytes to the same message as it decodes
 * `messageViewOf` encoded by protobufjs.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeReceivedMessage } from '../../../src/net/grpc/message-encoder.ts';
import { messageViewOf, type DeliveryInfo } from '../../../src/net/grpc/message-view.ts';
import { messagingServiceDefinition } from '../../../src/net/grpc/messaging-service.ts';
import type * as M from '../../../src/net/grpc/messages.ts';
import { encodeMessageProperties, encodeRecord, MessageSysFlag, recordSize, type RecordInput } from '../../../src/storage/message-record.ts';

const receive = messagingServiceDefinition.ReceiveMessage;

function stored(input: RecordInput, lead: number): { bytes: Uint8Array; offset: number } {
  const bytes = new Uint8Array(lead + recordSize(input) + 7);
  encodeRecord(bytes, lead, input);
  return { bytes, offset: lead };
}

function viaObjects(bytes: Uint8Array, offset: number, delivery: DeliveryInfo): M.ReceiveMessageResponse {
  const message = messageViewOf(bytes, offset, delivery) as unknown as M.Message;
  return receive.responseDeserialize(receive.responseSerialize({ message }));
}

function viaEncoder(bytes: Uint8Array, offset: number, delivery: DeliveryInfo): M.ReceiveMessageResponse {
  return receive.responseDeserialize(encodeReceivedMessage(bytes, offset, delivery).bytes);
}

const text = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((value) => !/[\u0000-\u001f]/.test(value));
const propertyName = fc.oneof(
  text,
  fc.constantFrom('TAGS', 'KEYS', 'UNIQ_KEY', '__SHARDINGKEY', 'TIMER_DELIVER_MS', 'DELAY', 'TRAN_MSG', '__BORNHOST', 'DLQ_ORIGIN_TOPIC', 'DLQ_ORIGIN_MESSAGE_ID', 'TRACE_ON', 'MSG_TRACE_CONTEXT'),
);
const host = fc.oneof(
  fc.record({ address: fc.ipV4(), port: fc.integer({ min: 0, max: 65_535 }) }),
  fc.record({ address: fc.constantFrom('::1', 'fe80::1', '2001:db8::7'), port: fc.integer({ min: 0, max: 65_535 }) }),
);
const recordInput: fc.Arbitrary<RecordInput> = fc.record({
  topic: fc.oneof(fc.constantFrom('T', 'BenchTopic', '%RETRY%g'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 140 }).filter((value) => !value.includes('\u0000'))),
  queueId: fc.integer({ min: 0, max: 1_023 }),
  flag: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  queueOffset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  physicalOffset: fc.integer({ min: 0, max: 2 ** 50 }),
  sysFlag: fc.constantFrom(0, MessageSysFlag.COMPRESSED_FLAG, MessageSysFlag.TRANSACTION_PREPARED_TYPE),
  bornTimestampMs: fc.integer({ min: -(2 ** 45), max: 2 ** 45 }),
  bornHost: host,
  storeTimestampMs: fc.integer({ min: 0, max: 2 ** 45 }),
  storeHost: host,
  reconsumeTimes: fc.integer({ min: 0, max: 100 }),
  preparedTransactionOffset: fc.constant(0),
  body: fc.uint8Array({ minLength: 1, maxLength: 3_000 }).map((bytes) => Buffer.from(bytes)),
  properties: fc
    .array(fc.tuple(propertyName, fc.oneof(text, fc.constantFrom('1700000000000', 'a b c', 'tagA'))), { maxLength: 12 })
    .map((entries) => encodeMessageProperties(entries)),
});
const delivery: fc.Arbitrary<DeliveryInfo> = fc.record(
  {
    receiptHandle: fc.string({ minLength: 0, maxLength: 300 }),
    deliveryAttempt: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    invisibleDurationMs: fc.integer({ min: 0, max: 43_200_000 }),
  },
  { requiredKeys: [] },
);

describe('encodeReceivedMessage', () => {
  it('decodes to what messageViewOf encodes to, for random records and deliveries', () => {
    fc.assert(
      fc.property(recordInput, delivery, fc.integer({ min: 0, max: 64 }), (input, info, lead) => {
        const { bytes, offset } = stored(input, lead);
        expect(viaEncoder(bytes, offset, info)).toEqual(viaObjects(bytes, offset, info));
      }),
      { numRuns: 300 },
    );
  });

  it('carries the body, handle, attempt and user properties of a typical delivery', () => {
    const input: RecordInput = {
      topic: 'OrderTopic', queueId: 3, flag: 0, queueOffset: 41, physicalOffset: 123_456, sysFlag: 0,
      bornTimestampMs: 1_700_000_000_123, bornHost: { address: '10.0.0.9', port: 40_000 },
      storeTimestampMs: 1_700_000_000_456, storeHost: { address: '10.0.0.5', port: 10_911 }, reconsumeTimes: 0,
      preparedTransactionOffset: 0, body: Buffer.alloc(1024, 'x'),
      properties: encodeMessageProperties({ TAGS: 'tagA', KEYS: 'k1 k2', UNIQ_KEY: 'ID-1', color: 'blue' }),
    };
    const { bytes, offset } = stored(input, 0);
    const frame = viaEncoder(bytes, offset, { receiptHandle: 'handle-1', deliveryAttempt: 2, invisibleDurationMs: 30_500 });
    expect('message' in frame).toBe(true);
    const message = (frame as { message: M.Message }).message;
    expect(message.topic?.name).toBe('OrderTopic');
    expect(message.userProperties).toEqual({ color: 'blue' });
    expect(Buffer.from(message.body).equals(input.body)).toBe(true);
    const system = message.systemProperties!;
    expect(system.tag).toBe('tagA');
    expect(system.keys).toEqual(['k1', 'k2']);
    expect(system.messageId).toBe('ID-1');
    expect(system.receiptHandle).toBe('handle-1');
    expect(system.deliveryAttempt).toBe(2);
    expect(system.queueOffset).toBe(41);
    expect(system.invisibleDuration).toEqual({ seconds: 30, nanos: 500_000_000 });
    expect(system.bornTimestamp).toEqual({ seconds: 1_700_000_000, nanos: 123_000_000 });
  });
});
