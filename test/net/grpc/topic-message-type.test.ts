import { describe, expect, it } from 'vitest';
import { acceptMessageTypesOf, messageTypeConflict, messageTypeOfProperties, topicMessageTypeOf } from '../../../src/net/grpc/topic-message-type.ts';
import { MessageType } from '../../../src/net/grpc/enums.ts';

describe('topic message types', () => {
  it('reads the topic attribute, NORMAL when absent', () => {
    expect(topicMessageTypeOf(undefined)).toBe('NORMAL');
    expect(topicMessageTypeOf({})).toBe('NORMAL');
    expect(topicMessageTypeOf({ 'message.type': 'FIFO' })).toBe('FIFO');
    expect(topicMessageTypeOf({ 'message.type': 'bogus' })).toBe('UNSPECIFIED');
  });

  it('derives a message type from properties in RocketMQ order: transaction, delay, FIFO, normal', () => {
    expect(messageTypeOfProperties(new Map([['TRAN_MSG', 'true'], ['__SHARDINGKEY', 'g']]))).toBe('TRANSACTION');
    expect(messageTypeOfProperties(new Map([['TIMER_DELIVER_MS', '1'], ['__SHARDINGKEY', 'g']]))).toBe('DELAY');
    expect(messageTypeOfProperties(new Map([['DELAY', '3']]))).toBe('DELAY');
    expect(messageTypeOfProperties(new Map([['__SHARDINGKEY', 'g']]))).toBe('FIFO');
    expect(messageTypeOfProperties(new Map([['TRAN_MSG', 'false']]))).toBe('NORMAL');
  });

  it('accepts equal types and anything on MIXED, refuses the rest', () => {
    expect(messageTypeConflict('FIFO', 'FIFO')).toBeUndefined();
    expect(messageTypeConflict('MIXED', 'TRANSACTION')).toBeUndefined();
    expect(messageTypeConflict('NORMAL', 'FIFO')).toBe('TopicMessageType validate failed, the expected type is NORMAL, but actual type is FIFO');
    expect(messageTypeConflict('UNSPECIFIED', 'NORMAL')).toBeDefined();
    expect(messageTypeConflict('MIXED', 'UNSPECIFIED')).toBeDefined();
  });

  it('answers the accept types QueryRoute carries', () => {
    expect(acceptMessageTypesOf('DELAY')).toEqual([MessageType.DELAY]);
    expect(acceptMessageTypesOf('MIXED')).toEqual([MessageType.NORMAL, MessageType.FIFO, MessageType.DELAY, MessageType.TRANSACTION]);
    expect(acceptMessageTypesOf('UNSPECIFIED')).toEqual([MessageType.MESSAGE_TYPE_UNSPECIFIED]);
  });
});
