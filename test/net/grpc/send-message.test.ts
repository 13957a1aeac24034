/** SendMessage validation and queue selection on the Proxy's side. */
import { describe, expect, it } from 'vitest';
import {
  checkConsumerGroupName,
  consistentHash,
  prepareSend,
  queueForMessageGroup,
  type SendMessageInput,
} from '../../../src/net/grpc/send-message.ts';
import { Code as SendCode } from '../../../src/net/grpc/code.ts';
import { MessageType as GrpcMessageType } from '../../../src/net/grpc/enums.ts';
import { decodeMessageProperties, MessageSysFlag } from '../../../src/storage/message-record.ts';

const NOW_MS = 1_700_000_000_000;
const context = { producerGroup: 'TopicA', remoteAddress: '10.0.0.7:5555', nowMs: NOW_MS };

function message(overrides: Partial<SendMessageInput> & { system?: Record<string, unknown> } = {}): SendMessageInput {
  return {
    topic: { name: 'TopicA' },
    body: Buffer.from('hello'),
    userProperties: { color: 'red' },
    systemProperties: { messageId: '01ABCDEF', tag: 'TagA', keys: ['k1', 'k2'], messageType: GrpcMessageType.NORMAL, ...overrides.system },
    ...overrides,
  };
}

function codeOf(input: SendMessageInput): number {
  const result = prepareSend(input, context);
  return result.ok ? SendCode.OK : result.code;
}

describe('prepareSend', () => {
  it('builds the properties a Remoting send carries', () => {
    const result = prepareSend(message({ system: { messageGroup: 'g1', bornTimestamp: { seconds: 1_700_000_000, nanos: 5_000_000 } } }), context);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const properties = decodeMessageProperties(result.properties);
    expect(Object.fromEntries(properties)).toMatchObject({
      color: 'red',
      TAGS: 'TagA',
      KEYS: 'k1 k2',
      UNIQ_KEY: '01ABCDEF',
      RECONSUME_TIME: '0',
      PGROUP: 'TopicA',
      __SHARDINGKEY: 'g1',
      __BORNHOST: '10.0.0.7:5555',
      BORN_TIMESTAMP: '1700000000005',
    });
    expect(result.bornTimestampMs).toBe(1_700_000_000_005);
    expect(result.messageGroup).toBe('g1');
    expect(result.sysFlag).toBe(0);
  });

  it('marks transactions and compressed bodies in the sys flag, and delivery times in TIMER_DELIVER_MS', () => {
    const result = prepareSend(
      message({ system: { messageType: GrpcMessageType.TRANSACTION, bodyEncoding: 2, deliveryTimestamp: { seconds: NOW_MS / 1000 + 60, nanos: 0 } } }),
      context,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.sysFlag).toBe(MessageSysFlag.TRANSACTION_PREPARED_TYPE | MessageSysFlag.COMPRESSED_FLAG);
    const properties = decodeMessageProperties(result.properties);
    expect(properties.get('TRAN_MSG')).toBe('true');
    expect(properties.get('TIMER_DELIVER_MS')).toBe(String(NOW_MS + 60_000));
  });

  it('answers RocketMQ codes for bad messages', () => {
    expect(codeOf(message({ body: new Uint8Array(0) }))).toBe(SendCode.MESSAGE_BODY_EMPTY);
    expect(codeOf(message({ body: new Uint8Array(4 * 1024 * 1024 + 1) }))).toBe(SendCode.MESSAGE_BODY_TOO_LARGE);
    expect(codeOf(message({ body: new Uint8Array(4 * 1024 * 1024) }))).toBe(SendCode.OK);
    expect(codeOf(message({ topic: { name: 'bad topic' } }))).toBe(SendCode.ILLEGAL_TOPIC);
    expect(codeOf(message({ topic: { name: 'TBW102' } }))).toBe(SendCode.ILLEGAL_TOPIC);
    expect(codeOf(message({ topic: { name: 'rmq_sys_x' } }))).toBe(SendCode.ILLEGAL_TOPIC);
    expect(codeOf(message({ system: { tag: 'a|b' } }))).toBe(SendCode.ILLEGAL_MESSAGE_TAG);
    expect(codeOf(message({ system: { tag: '   ' } }))).toBe(SendCode.ILLEGAL_MESSAGE_TAG);
    expect(codeOf(message({ system: { keys: ['ok', 'bad\u0001'] } }))).toBe(SendCode.ILLEGAL_MESSAGE_KEY);
    expect(codeOf(message({ system: { messageId: '' } }))).toBe(SendCode.ILLEGAL_MESSAGE_ID);
    expect(codeOf(message({ system: { messageGroup: 'x'.repeat(64) } }))).toBe(SendCode.ILLEGAL_MESSAGE_GROUP);
    expect(codeOf(message({ system: { messageGroup: 'x'.repeat(63) } }))).toBe(SendCode.OK);
    expect(codeOf(message({ userProperties: { TAGS: 'x' } }))).toBe(SendCode.ILLEGAL_MESSAGE_PROPERTY_KEY);
    expect(codeOf(message({ userProperties: { UNIQ_KEY: 'x' } }))).toBe(SendCode.ILLEGAL_MESSAGE_PROPERTY_KEY);
    expect(codeOf(message({ system: { deliveryTimestamp: { seconds: NOW_MS / 1000 + 86_401, nanos: 0 } } }))).toBe(SendCode.ILLEGAL_DELIVERY_TIME);
    expect(codeOf(message({ system: { deliveryTimestamp: { seconds: NOW_MS / 1000 + 86_400, nanos: 0 } } }))).toBe(SendCode.OK);
  });

  it('bounds user properties by count and by size together with tag and keys', () => {
    const many = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`p${i}`, 'v']));
    expect(codeOf(message({ userProperties: many }))).toBe(SendCode.MESSAGE_PROPERTIES_TOO_LARGE);
    const exactly = Object.fromEntries(Array.from({ length: 128 }, (_, i) => [`p${i}`, 'v']));
    expect(codeOf(message({ userProperties: exactly }))).toBe(SendCode.OK);
    // 16 KiB in all: the value fills what name + tag + keys leave.
    const fixed = 'big'.length + 'TagA'.length + 'k1'.length + 'k2'.length;
    expect(codeOf(message({ userProperties: { big: 'v'.repeat(16 * 1024 - fixed) } }))).toBe(SendCode.OK);
    expect(codeOf(message({ userProperties: { big: 'v'.repeat(16 * 1024 - fixed + 1) } }))).toBe(SendCode.MESSAGE_PROPERTIES_TOO_LARGE);
  });
});

describe('consumer group names', () => {
  it('refuses the built-in groups and malformed names', () => {
    expect(checkConsumerGroupName('DEFAULT_CONSUMER')?.code).toBe(SendCode.ILLEGAL_CONSUMER_GROUP);
    expect(checkConsumerGroupName('CID_RMQ_SYS_X')?.code).toBe(SendCode.ILLEGAL_CONSUMER_GROUP);
    expect(checkConsumerGroupName('a b')?.code).toBe(SendCode.ILLEGAL_CONSUMER_GROUP);
    expect(checkConsumerGroupName('x'.repeat(121))?.code).toBe(SendCode.ILLEGAL_CONSUMER_GROUP);
    expect(checkConsumerGroupName('my-group_1')).toBeUndefined();
  });
});

describe('queue selection for message groups', () => {
  // Expected buckets computed by the same algorithm in Java (long arithmetic, String.hashCode).
  it('matches Guava consistentHash of the group hash', () => {
    const cases: [string, number, number][] = [
      ['order-1', 4, 3], ['order-1', 100, 3], ['g', 2, 1], ['g', 16, 12], ['g', 100, 68], ['user-42', 16, 1], ['order-1', 1, 0],
    ];
    for (const [group, buckets, bucket] of cases) expect(queueForMessageGroup(group, buckets), `${group} ${buckets}`).toBe(bucket);
  });

  it('stays in range and is stable', () => {
    for (let input = -50; input < 50; input++) {
      for (const buckets of [1, 3, 8, 64]) {
        const bucket = consistentHash(input * 7919, buckets);
        expect(bucket).toBeGreaterThanOrEqual(0);
        expect(bucket).toBeLessThan(buckets);
        expect(consistentHash(input * 7919, buckets)).toBe(bucket);
      }
    }
  });
});
