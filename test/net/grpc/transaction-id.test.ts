import { describe, expect, it } from 'vitest';
import { commitLogOffsetOfMessageId, formatTransactionId, parseTransactionId } from '../../../src/net/grpc/transaction-id.ts';
import { offsetMessageId } from '../../../src/storage/message-record.ts';

describe('Proxy transaction ids', () => {
  it('round-trips, reading fields from the right so broker names may hold the separator', () => {
    const id = { brokerName: 'broker~a', commitLogOffset: 1_234_567_890_123, tranStateTableOffset: 42, brokerTransactionId: '7F0000010A2B18B4AAC2' };
    const text = formatTransactionId(id);
    expect(text).toBe('broker~a~1234567890123~42~7F0000010A2B18B4AAC2');
    expect(parseTransactionId(text)).toEqual(id);
  });

  it('refuses what it did not format', () => {
    for (const bad of ['', 'a~b~c', 'broker~x~1~id', 'broker~1~-2~id', '~1~2~id', 'broker~1~2~']) expect(parseTransactionId(bad), bad).toBeUndefined();
    expect(() => formatTransactionId({ brokerName: 'b', commitLogOffset: 0, tranStateTableOffset: 0, brokerTransactionId: 'x~y' })).toThrow(RangeError);
  });

  it('reads the CommitLog offset out of IPv4 and IPv6 offset message ids', () => {
    expect(commitLogOffsetOfMessageId(offsetMessageId({ address: '10.0.0.7', port: 10911 }, 987_654_321))).toBe(987_654_321);
    expect(commitLogOffsetOfMessageId(offsetMessageId({ address: '::1', port: 10911 }, 2 ** 40))).toBe(2 ** 40);
    expect(commitLogOffsetOfMessageId('not-hex')).toBeUndefined();
  });
});
