/**
 * Result codes of apache.rocketmq.v2 (the `Code` enum of definition.proto) and the `Status` builder.
 *
 * Every MessagingService response carries its business outcome as a Status with one of these codes;
 * gRPC's own status codes are left for transport failures. The first three digits follow the HTTP
 * status of the same meaning, the last two refine it. Names and numbers are RocketMQ's, checked
 * against apache/rocketmq-apis master (commit 3e60073c, July 2026), whose newest entry is
 * INVALID_CLIENT_PROPERTIES; note that ILLEGAL_DELIVERY_TIME is 40012 and INVALID_RECEIPT_HANDLE 40013.
 */
import type { Status } from './messages.ts';
import { ResponseCode } from '../remoting/remoting-command.ts';

/** RocketMQ's result codes, by name. */
export const Code = {
  CODE_UNSPECIFIED: 0,
  OK: 20000,
  MULTIPLE_RESULTS: 30000,
  BAD_REQUEST: 40000,
  ILLEGAL_ACCESS_POINT: 40001,
  ILLEGAL_TOPIC: 40002,
  ILLEGAL_CONSUMER_GROUP: 40003,
  ILLEGAL_MESSAGE_TAG: 40004,
  ILLEGAL_MESSAGE_KEY: 40005,
  ILLEGAL_MESSAGE_GROUP: 40006,
  ILLEGAL_MESSAGE_PROPERTY_KEY: 40007,
  INVALID_TRANSACTION_ID: 40008,
  ILLEGAL_MESSAGE_ID: 40009,
  ILLEGAL_FILTER_EXPRESSION: 40010,
  ILLEGAL_INVISIBLE_TIME: 40011,
  ILLEGAL_DELIVERY_TIME: 40012,
  INVALID_RECEIPT_HANDLE: 40013,
  MESSAGE_PROPERTY_CONFLICT_WITH_TYPE: 40014,
  UNRECOGNIZED_CLIENT_TYPE: 40015,
  MESSAGE_CORRUPTED: 40016,
  CLIENT_ID_REQUIRED: 40017,
  ILLEGAL_POLLING_TIME: 40018,
  ILLEGAL_OFFSET: 40019,
  ILLEGAL_LITE_TOPIC: 40020,
  INVALID_CLIENT_PROPERTIES: 40021,
  UNAUTHORIZED: 40100,
  PAYMENT_REQUIRED: 40200,
  FORBIDDEN: 40300,
  NOT_FOUND: 40400,
  MESSAGE_NOT_FOUND: 40401,
  TOPIC_NOT_FOUND: 40402,
  CONSUMER_GROUP_NOT_FOUND: 40403,
  OFFSET_NOT_FOUND: 40404,
  REQUEST_TIMEOUT: 40800,
  PAYLOAD_TOO_LARGE: 41300,
  MESSAGE_BODY_TOO_LARGE: 41301,
  MESSAGE_BODY_EMPTY: 41302,
  PRECONDITION_FAILED: 42800,
  TOO_MANY_REQUESTS: 42900,
  LITE_TOPIC_QUOTA_EXCEEDED: 42901,
  LITE_SUBSCRIPTION_QUOTA_EXCEEDED: 42902,
  REQUEST_HEADER_FIELDS_TOO_LARGE: 43100,
  MESSAGE_PROPERTIES_TOO_LARGE: 43101,
  INTERNAL_ERROR: 50000,
  INTERNAL_SERVER_ERROR: 50001,
  HA_NOT_AVAILABLE: 50002,
  NOT_IMPLEMENTED: 50100,
  PROXY_TIMEOUT: 50400,
  MASTER_PERSISTENCE_TIMEOUT: 50401,
  SLAVE_PERSISTENCE_TIMEOUT: 50402,
  UNSUPPORTED: 50500,
  VERSION_UNSUPPORTED: 50501,
  VERIFY_FIFO_MESSAGE_UNSUPPORTED: 50502,
  FAILED_TO_CONSUME_MESSAGE: 60000,
} as const;

/** A RocketMQ result code number. */
export type Code = (typeof Code)[keyof typeof Code];

/** Name of a RocketMQ result code. */
export type CodeName = keyof typeof Code;

const namesByNumber = new Map<number, CodeName>(Object.entries(Code).map(([name, value]) => [value, name as CodeName]));

/** The name of a code number for logs, or undefined for a number this version does not know. */
export function codeName(code: number): CodeName | undefined {
  return namesByNumber.get(code);
}

/** A Status value: RocketMQ's code plus an explanation for humans. */
export function status(code: Code, message: string): Status {
  return { code, message };
}

/**
 * The code of a broker's refusal outside sends (ResponseBuilder's mapping, plus the codes a recall or an
 * end of transaction meets, which RocketMQ answers as INTERNAL_SERVER_ERROR with the broker's remark).
 */
export function brokerRefusalCode(remotingCode: number): Code {
  switch (remotingCode) {
    case ResponseCode.SYSTEM_BUSY:
      return Code.TOO_MANY_REQUESTS;
    case ResponseCode.REQUEST_CODE_NOT_SUPPORTED:
      return Code.NOT_IMPLEMENTED;
    case ResponseCode.TOPIC_NOT_EXIST:
      return Code.TOPIC_NOT_FOUND;
    case ResponseCode.NO_PERMISSION:
      return Code.FORBIDDEN;
    case ResponseCode.ILLEGAL_OPERATION:
      return Code.BAD_REQUEST;
    default:
      return Code.INTERNAL_SERVER_ERROR;
  }
}
