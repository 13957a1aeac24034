import { describe, expect, it } from 'vitest';
import {
  createNotSupportedResponse,
  createRequest,
  createResponse,
  isLanguageName,
  isOneway,
  isResponse,
  LanguageCode,
  languageNameOf,
  markOneway,
  markResponse,
  RequestCode,
  requestCodeName,
  ResponseCode,
  responseCodeName,
  RpcFlag,
  SerializeType,
} from '../../../src/net/remoting/remoting-command.ts';

describe('code tables', () => {
  it('carry the values RocketMQ defines', () => {
    expect(ResponseCode).toMatchObject({
      SUCCESS: 0,
      SYSTEM_ERROR: 1,
      SYSTEM_BUSY: 2,
      REQUEST_CODE_NOT_SUPPORTED: 3,
      TRANSACTION_FAILED: 4,
      FLUSH_DISK_TIMEOUT: 10,
      SLAVE_NOT_AVAILABLE: 11,
      FLUSH_SLAVE_TIMEOUT: 12,
      MESSAGE_ILLEGAL: 13,
      SERVICE_NOT_AVAILABLE: 14,
      VERSION_NOT_SUPPORTED: 15,
      NO_PERMISSION: 16,
      TOPIC_NOT_EXIST: 17,
      TOPIC_EXIST_ALREADY: 18,
      PULL_NOT_FOUND: 19,
      PULL_RETRY_IMMEDIATELY: 20,
      PULL_OFFSET_MOVED: 21,
      QUERY_NOT_FOUND: 22,
      SUBSCRIPTION_PARSE_FAILED: 23,
      SUBSCRIPTION_NOT_EXIST: 24,
      SUBSCRIPTION_NOT_LATEST: 25,
      SUBSCRIPTION_GROUP_NOT_EXIST: 26,
      POLLING_FULL: 209,
      FLOW_CONTROL: 215,
      GO_AWAY: 1500,
    });
    expect(RequestCode).toMatchObject({
      SEND_MESSAGE: 10,
      PULL_MESSAGE: 11,
      HEART_BEAT: 34,
      REGISTER_BROKER: 103,
      GET_ROUTEINFO_BY_TOPIC: 105,
      SEND_MESSAGE_V2: 310,
      SEND_BATCH_MESSAGE: 320,
      POP_MESSAGE: 200050,
      ACK_MESSAGE: 200051,
      BATCH_ACK_MESSAGE: 200151,
      CHANGE_MESSAGE_INVISIBLETIME: 200053,
    });
    expect(SerializeType).toEqual({ JSON: 0, ROCKETMQ: 1 });
    expect(Object.keys(RequestCode)).toHaveLength(158);
    expect(Object.keys(ResponseCode)).toHaveLength(66);
    expect(Object.keys(LanguageCode)).toHaveLength(14);
  });

  it('map numbers back to names', () => {
    expect(requestCodeName(105)).toBe('GET_ROUTEINFO_BY_TOPIC');
    expect(requestCodeName(99)).toBeUndefined();
    expect(responseCodeName(2)).toBe('SYSTEM_BUSY');
    expect(languageNameOf(13)).toBe('NODE_JS');
    expect(languageNameOf(14)).toBeUndefined();
    expect(isLanguageName('GO')).toBe(true);
    expect(isLanguageName('toString')).toBe(false);
  });
});

describe('flags', () => {
  it('bit 0 marks a response and bit 1 a oneway request', () => {
    expect(RpcFlag).toEqual({ RESPONSE: 1, ONEWAY: 2 });
    expect(isResponse({ flag: markResponse(0) })).toBe(true);
    expect(isResponse({ flag: 2 })).toBe(false);
    expect(isOneway({ flag: markOneway(0) })).toBe(true);
    expect(isOneway({ flag: 1 })).toBe(false);
    expect(markResponse(markOneway(4))).toBe(7);
  });
});

describe('responses', () => {
  it('answer with the request opaque, the response flag and the request serialization', () => {
    const request = createRequest({ code: 34, opaque: 42, serializeType: 'ROCKETMQ', language: 'GO', version: 7 });
    const response = createResponse(request, ResponseCode.SYSTEM_BUSY, 'busy', { extFields: { a: 'b' } });
    expect(response).toEqual({
      code: 2,
      language: 'JAVA',
      version: 0,
      opaque: 42,
      flag: 1,
      remark: 'busy',
      extFields: { a: 'b' },
      serializeType: 'ROCKETMQ',
    });
  });

  it('word REQUEST_CODE_NOT_SUPPORTED as RocketMQ does', () => {
    const response = createNotSupportedResponse(createRequest({ code: 99, opaque: 3 }));
    expect(response).toMatchObject({ code: 3, opaque: 3, flag: 1, remark: ' request type 99 not supported' });
  });
});
