/** Result codes and enum constants: the `as const` objects against our .proto and the official client. */
import { describe, expect, it } from 'vitest';
import { Code, codeName, status } from '../../../src/net/grpc/code.ts';
import * as Enums from '../../../src/net/grpc/enums.ts';
import { rocketmqProtoRoot } from '../../../src/net/grpc/proto-root.ts';
import { def } from './official-client.ts';

describe('Code', () => {
  it('equals the Code enum of our proto, name for name and number for number', () => {
    expect(Code).toEqual(rocketmqProtoRoot().lookupEnum('apache.rocketmq.v2.Code').values);
  });

  it('agrees with the official client on every code it knows, and knows only newer ones besides', () => {
    for (const [name, value] of Object.entries(def.Code as Record<string, number>)) expect(Code[name as keyof typeof Code], name).toBe(value);
    const newer = Object.keys(Code).filter((name) => !(name in def.Code));
    expect(newer).toEqual(['INVALID_CLIENT_PROPERTIES']);
  });

  it('has the numbers that are easy to get wrong', () => {
    expect(Code.OK).toBe(20000);
    expect(Code.BAD_REQUEST).toBe(40000);
    expect(Code.ILLEGAL_DELIVERY_TIME).toBe(40012);
    expect(Code.INVALID_RECEIPT_HANDLE).toBe(40013);
    expect(Code.MESSAGE_NOT_FOUND).toBe(40401);
    expect(Code.TOO_MANY_REQUESTS).toBe(42900);
    expect(Code.INTERNAL_SERVER_ERROR).toBe(50001);
  });

  it('codeName finds names by number and leaves unknown numbers undefined', () => {
    expect(codeName(40013)).toBe('INVALID_RECEIPT_HANDLE');
    expect(codeName(20000)).toBe('OK');
    expect(codeName(12345)).toBeUndefined();
  });

  it('status builds the Status message', () => {
    expect(status(Code.TOPIC_NOT_FOUND, 'topic TopicX not found')).toStrictEqual({ code: 40402, message: 'topic TopicX not found' });
  });
});

describe('enum constants', () => {
  const protoNames: Record<string, string> = {
    TransactionResolution: 'TransactionResolution',
    TransactionSource: 'TransactionSource',
    Permission: 'Permission',
    FilterType: 'FilterType',
    AddressScheme: 'AddressScheme',
    MessageType: 'MessageType',
    DigestType: 'DigestType',
    ClientType: 'ClientType',
    Encoding: 'Encoding',
    Language: 'Language',
    LiteSubscriptionAction: 'LiteSubscriptionAction',
    QueryOffsetPolicy: 'QueryOffsetPolicy',
    OffsetOptionPolicy: 'OffsetOption.Policy',
  };

  it('cover every enum of the proto', () => {
    const root = rocketmqProtoRoot();
    const all: string[] = [];
    const walk = (ns: { nestedArray: unknown[] }, prefix: string) => {
      for (const nested of ns.nestedArray as { name: string; values?: object; nestedArray?: unknown[] }[]) {
        if (nested.values !== undefined) all.push(prefix + nested.name);
        else if (nested.nestedArray !== undefined) walk(nested as { nestedArray: unknown[] }, `${prefix}${nested.name}.`);
      }
    };
    walk(root.lookup('apache.rocketmq.v2') as unknown as { nestedArray: unknown[] }, '');
    expect(all.sort()).toEqual([...Object.values(protoNames), 'Code'].sort());
  });

  for (const [exportName, protoName] of Object.entries(protoNames)) {
    it(`${exportName} equals apache.rocketmq.v2.${protoName}`, () => {
      const constant = (Enums as Record<string, unknown>)[exportName];
      expect(constant).toEqual(rocketmqProtoRoot().lookupEnum(`apache.rocketmq.v2.${protoName}`).values);
    });
  }
});
