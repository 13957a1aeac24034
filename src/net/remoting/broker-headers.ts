/**
 * The Broker's Remoting headers: RocketMQ's CommandCustomHeader classes (remoting module,
 * protocol/header/*.java, 5.x) as typed values, parsed from a request's `extFields` and formatted back.
 * Every codec is a table of fields: our name, the wire name, the kind, and required / optional /
 * defaulted, taken from the Java class's @CFNotNull annotations and field initializers.
 *
 * | code        | request                      | request header                       | response header          |
 * |-------------|------------------------------|--------------------------------------|--------------------------|
 * | 10          | SEND_MESSAGE                 | SendMessageRequestHeader (long names)| SendMessageResponseHeader|
 * | 310, 320    | SEND_MESSAGE_V2, SEND_BATCH_ | SendMessageRequestHeaderV2 (a..n)    | SendMessageResponseHeader|
 * | 11          | PULL_MESSAGE                 | PullMessageRequestHeader             | PullMessageResponseHeader|
 * | 12          | QUERY_MESSAGE                | QueryMessageRequestHeader            | QueryMessageResponseHeader|
 * | 14          | QUERY_CONSUMER_OFFSET        | QueryConsumerOffsetRequestHeader     | QueryConsumerOffsetResponseHeader |
 * | 15          | UPDATE_CONSUMER_OFFSET       | UpdateConsumerOffsetRequestHeader    | -                        |
 * | 17          | UPDATE_AND_CREATE_TOPIC      | CreateTopicRequestHeader             | -                        |
 * | 29          | SEARCH_OFFSET_BY_TIMESTAMP   | SearchOffsetRequestHeader            | SearchOffsetResponseHeader |
 * | 30          | GET_MAX_OFFSET               | GetMaxOffsetRequestHeader            | GetMaxOffsetResponseHeader |
 * | 31          | GET_MIN_OFFSET               | GetMinOffsetRequestHeader            | GetMinOffsetResponseHeader |
 * | 32          | GET_EARLIEST_MSG_STORETIME   | GetEarliestMsgStoretimeRequestHeader | GetEarliestMsgStoretimeResponseHeader |
 * | 33          | VIEW_MESSAGE_BY_ID           | ViewMessageRequestHeader             | -                        |
 * | 34          | HEART_BEAT                   | - (body HeartbeatData)               | IS_SUPPORT_HEART_BEAT_V2, IS_SUB_CHANGE |
 * | 35          | UNREGISTER_CLIENT            | UnregisterClientRequestHeader        | -                        |
 * | 36          | CONSUMER_SEND_MSG_BACK       | ConsumerSendMsgBackRequestHeader     | -                        |
 * | 37          | END_TRANSACTION              | EndTransactionRequestHeader          | -                        |
 * | 38          | GET_CONSUMER_LIST_BY_GROUP   | GetConsumerListByGroupRequestHeader  | - (body)                 |
 * | 39 (to cli) | CHECK_TRANSACTION_STATE      | CheckTransactionStateRequestHeader   | -                        |
 * | 40 (to cli) | NOTIFY_CONSUMER_IDS_CHANGED  | NotifyConsumerIdsChangedRequestHeader| -                        |
 * | 202         | GET_TOPIC_STATS_INFO         | GetTopicStatsInfoRequestHeader       | - (body)                 |
 * | 203         | GET_CONSUMER_CONNECTION_LIST | GetConsumerConnectionListRequestHeader | - (body)               |
 * | 208         | GET_CONSUME_STATS            | GetConsumeStatsRequestHeader         | - (body)                 |
 * | 215         | DELETE_TOPIC_IN_BROKER       | DeleteTopicRequestHeader             | -                        |
 * | 220, 222    | RESET_CONSUMER_CLIENT_OFFSET, INVOKE_BROKER_TO_RESET_OFFSET | ResetOffsetRequestHeader | - |
 * | 351         | GET_TOPIC_CONFIG             | GetTopicConfigRequestHeader          | - (body)                 |
 *
 * Most headers extend RpcRequestHeader, whose fields travel as `ns`, `nsd`, `bname`, `oway` (and `lo`
 * for TopicRequestHeader); they are read here as namespace, namespaced, brokerName, oneway, logical.
 * SendMessageRequestHeaderV2 carries none of them, only `n` for brokerName.
 *
 * Parsing, and how it differs from Java. extFields values are strings. Numbers are Java's
 * Integer.parseInt / Long.parseLong syntax: an optional sign and ASCII digits, in range; a long must
 * also be within +-(2^53 - 1), what a JS number holds exactly. Booleans are Boolean.parseBoolean: "true"
 * in any case is true, anything else false. Java's reflective decoder (decodeCommandCustomHeader) only
 * logs a missing @CFNotNull field or an unparsable number and leaves the field at its initial value; the
 * processor then trips over the null, so the client gets SYSTEM_ERROR. Headers with a hand-written
 * decoder (FastCodesHeader: SendMessageRequestHeaderV2, PullMessageRequestHeader, and the send and pull
 * response headers) throw on an unparsable number, also SYSTEM_ERROR. Here a missing required field or
 * an unparsable required number is a HeaderError at once, naming the field; an unparsable optional
 * number is an error for FastCodesHeaders and left unset for the rest, as Java leaves it. A required
 * field that Java initializes (CreateTopicRequestHeader.order = false, ...) is a defaulted field here.
 * The two checkFields() that can fail (EndTransactionRequestHeader.commitOrRollback,
 * CreateTopicRequestHeader.topicFilterType) fail here too, with Java's message.
 *
 * RocketMQ's answer to all of these (NettyRemotingAbstract: any exception out of a processor) is
 * SYSTEM_ERROR with a remark describing the exception; `headerErrorResponse` builds ours.
 */

import { assert } from '../../runtime/assert.ts';
import {
  createResponse,
  type RemotingCommand,
  RequestCode,
  ResponseCode,
} from './remoting-command.ts';

/** A command's header fields, as RemotingCommand keeps them. */
export type ExtFields = Readonly<Record<string, string>>;

// ---------------------------------------------------------------------------------------------------
// Errors

/** Stable codes of HeaderError. */
export const HeaderErrorCode = {
  /** A required field is absent. */
  MISSING_FIELD: 'HEADER_MISSING_FIELD',
  /** A number field is not an int / long in Java's syntax and range (or beyond 2^53 for a long). */
  BAD_NUMBER: 'HEADER_BAD_NUMBER',
  /** A field fails its header's checkFields rule. */
  BAD_VALUE: 'HEADER_BAD_VALUE',
} as const;

/** A stable code of HeaderError. */
export type HeaderErrorCode = (typeof HeaderErrorCode)[keyof typeof HeaderErrorCode];

/** A request header that cannot be parsed; answered with HEADER_ERROR_RESPONSE_CODE. */
export class HeaderError extends Error {
  /** Stable machine-readable code. */
  readonly code: HeaderErrorCode;
  /** RocketMQ's class name of the header, e.g. PullMessageRequestHeader. */
  readonly header: string;
  /** The field's wire name (a single letter for SendMessageRequestHeaderV2). */
  readonly field: string;
  override readonly name = 'HeaderError';

  constructor(code: HeaderErrorCode, header: string, field: string, message: string) {
    super(message);
    this.code = code;
    this.header = header;
    this.field = field;
  }
}

/**
 * What RocketMQ answers when a header cannot be decoded: SYSTEM_ERROR (1). NettyRemotingAbstract turns
 * any exception a processor throws (RemotingCommandException from checkFields, NumberFormatException,
 * the NullPointerException a missing field leads to) into SYSTEM_ERROR with
 * UtilAll.exceptionSimpleDesc(e) as the remark.
 */
export const HEADER_ERROR_RESPONSE_CODE = ResponseCode.SYSTEM_ERROR;

/** The response to a request whose header failed to parse: SYSTEM_ERROR, the error's message as remark. */
export function headerErrorResponse(
  request: Pick<RemotingCommand, 'opaque' | 'serializeType'>,
  error: HeaderError,
): RemotingCommand {
  return createResponse(request, HEADER_ERROR_RESPONSE_CODE, `${error.name}: ${error.message}`);
}

// ---------------------------------------------------------------------------------------------------
// Field specs

/** Kinds of header field: Java String, Integer/int, Long/long, Boolean/boolean. */
export type FieldKind = 'string' | 'int' | 'long' | 'bool';

type KindValue<K extends FieldKind> = K extends 'string' ? string : K extends 'bool' ? boolean : number;

/** One header field: its wire name, its kind, and whether it must be present or has a default. */
export type FieldSpec = {
  readonly kind: FieldKind;
  readonly wire: string;
  readonly required: boolean;
  readonly fallback?: string | number | boolean;
};

/** A header's fields, by our name. */
export type HeaderSpec = Readonly<Record<string, FieldSpec>>;

type Present<F> = F extends { readonly required: true } ? true : F extends { readonly fallback: unknown } ? true : false;

type Simplify<T> = { [K in keyof T]: T[K] };

/** The parsed header: required and defaulted fields present, optional ones possibly absent. */
export type HeaderValue<S extends HeaderSpec> = Simplify<
  { -readonly [K in keyof S as Present<S[K]> extends true ? K : never]: KindValue<S[K]['kind']> } & {
    -readonly [K in keyof S as Present<S[K]> extends true ? never : K]?: KindValue<S[K]['kind']>;
  }
>;

/** What formatting takes: required fields, and any others to write (a default is not written unless given). */
export type HeaderInput<S extends HeaderSpec> = Simplify<
  { readonly [K in keyof S as S[K] extends { readonly required: true } ? K : never]: KindValue<S[K]['kind']> } & {
    readonly [K in keyof S as S[K] extends { readonly required: true } ? never : K]?: KindValue<S[K]['kind']>;
  }
>;

function spec<const K extends FieldKind>(kind: K) {
  return {
    /** A @CFNotNull field without an initializer. */
    must: (wire: string) => ({ kind, wire, required: true }) as const,
    /** A nullable field, absent when the client leaves it out. */
    may: (wire: string) => ({ kind, wire, required: false }) as const,
    /** A field whose absence means `fallback` (a Java initializer or a getter's null default). */
    orElse: (wire: string, fallback: KindValue<K>) => ({ kind, wire, required: false, fallback }) as const,
  };
}

const str = spec('string');
const int = spec('int');
const long = spec('long');
const bool = spec('bool');

/** RpcRequestHeader's fields. */
const RPC_FIELDS = {
  namespace: str.may('ns'),
  namespaced: bool.may('nsd'),
  brokerName: str.may('bname'),
  oneway: bool.may('oway'),
} as const;

/** TopicRequestHeader's fields: RpcRequestHeader's and `lo` (the logical queue flag of static topics). */
const TOPIC_RPC_FIELDS = { ...RPC_FIELDS, logical: bool.may('lo') } as const;

// ---------------------------------------------------------------------------------------------------
// The codec

/** How a header is parsed and formatted. */
export type HeaderCodec<S extends HeaderSpec> = {
  /** RocketMQ's class name. */
  readonly name: string;
  /** The field table. */
  readonly spec: S;
  /** Parses extFields; throws HeaderError. Fields not in the table are ignored. */
  parse(fields: ExtFields): HeaderValue<S>;
  /** Formats a header as extFields strings; absent optional fields are left out, as Java leaves out nulls. */
  format(value: HeaderInput<S>): Record<string, string>;
};

/** The parsed value of a codec: `ParsedHeader<typeof PullMessageRequestHeader>`. */
export type ParsedHeader<C extends { parse(fields: ExtFields): unknown }> = ReturnType<C['parse']>;

type CodecOptions<S extends HeaderSpec> = {
  /** A FastCodesHeader: an unparsable optional number is an error, not left unset. */
  readonly fastCodes?: boolean;
  /** The header's checkFields(): throws HeaderError for a value Java rejects. */
  readonly check?: (value: HeaderValue<S>) => void;
};

const INT_SYNTAX = /^[+-]?\d+$/;
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;

/** A field's value from extFields; own properties only, so `constructor` or `__proto__` never leak in. */
function rawField(fields: ExtFields, wire: string): string | undefined {
  return Object.hasOwn(fields, wire) ? fields[wire] : undefined;
}

function label(key: string, field: FieldSpec): string {
  return field.wire === key ? `<${key}>` : `<${field.wire}> (${key})`;
}

/** Parses one present value; returns undefined for a bad number the caller may leave unset. */
function parseScalar(field: FieldSpec, raw: string): string | number | boolean | undefined {
  switch (field.kind) {
    case 'string':
      return raw;
    case 'bool':
      return /^true$/i.test(raw);
    case 'int': {
      const value = INT_SYNTAX.test(raw) ? Number(raw) : Number.NaN;
      return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX ? value : undefined;
    }
    case 'long': {
      const value = INT_SYNTAX.test(raw) ? Number(raw) : Number.NaN;
      return Number.isSafeInteger(value) ? value : undefined;
    }
  }
}

/** A header's fields as [key, spec] pairs, listed once per codec (every request parses through them). */
type FieldList = readonly (readonly [string, FieldSpec])[];

function parseHeader<S extends HeaderSpec>(
  name: string,
  fieldList: FieldList,
  fields: ExtFields,
  fastCodes: boolean,
): HeaderValue<S> {
  const out: Record<string, string | number | boolean> = {};
  for (const [key, field] of fieldList) {
    const raw = rawField(fields, field.wire);
    if (raw === undefined) {
      if (field.required) {
        const message = `${name}: the custom field ${label(key, field)} is null`;
        throw new HeaderError(HeaderErrorCode.MISSING_FIELD, name, field.wire, message);
      }
      if (field.fallback !== undefined) out[key] = field.fallback;
      continue;
    }
    const value = parseScalar(field, raw);
    if (value !== undefined) {
      out[key] = value;
      continue;
    }
    if (field.required || fastCodes) {
      const what = field.kind === 'int' ? 'an int' : 'a long within +-(2^53 - 1)';
      throw new HeaderError(
        HeaderErrorCode.BAD_NUMBER,
        name,
        field.wire,
        `${name}: the custom field ${label(key, field)} is not ${what}: ${JSON.stringify(raw.slice(0, 64))}`,
      );
    }
    if (field.fallback !== undefined) out[key] = field.fallback;
  }
  return out as HeaderValue<S>;
}

function formatScalar(name: string, key: string, field: FieldSpec, value: unknown): string {
  switch (field.kind) {
    case 'string':
      assert(typeof value === 'string', () => `${name}.${key} must be a string`);
      return value;
    case 'bool':
      assert(typeof value === 'boolean', () => `${name}.${key} must be a boolean`);
      return value ? 'true' : 'false';
    case 'int':
      assert(
        typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX,
        `${name}.${key} must be an int32: ${String(value)}`,
      );
      return String(value);
    case 'long':
      assert(Number.isSafeInteger(value), () => `${name}.${key} must be a safe integer: ${String(value)}`);
      return String(value);
  }
}

function formatHeader<S extends HeaderSpec>(
  name: string,
  fieldList: FieldList,
  value: HeaderInput<S>,
): Record<string, string> {
  const out: Record<string, string> = {};
  const values = value as Readonly<Record<string, unknown>>;
  for (const [key, field] of fieldList) {
    const item = Object.hasOwn(values, key) ? values[key] : undefined;
    if (item === undefined) {
      assert(!field.required, () => `${name}.${key} is required`);
      continue;
    }
    out[field.wire] = formatScalar(name, key, field, item);
  }
  return out;
}

/** Builds the codec of one RocketMQ header class. */
export function defineHeader<const S extends HeaderSpec>(
  name: string,
  fieldSpecs: S,
  options: CodecOptions<S> = {},
): HeaderCodec<S> {
  const wires = new Set(Object.values(fieldSpecs).map((field) => field.wire));
  assert(wires.size === Object.keys(fieldSpecs).length, () => `${name}: two fields share a wire name`);
  const fieldList: FieldList = Object.entries(fieldSpecs);
  return {
    name,
    spec: fieldSpecs,
    parse(fields) {
      const value = parseHeader<S>(name, fieldList, fields, options.fastCodes === true);
      options.check?.(value);
      return value;
    },
    format(value) {
      return formatHeader<S>(name, fieldList, value);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Send

const SEND_MESSAGE_FIELDS = {
  producerGroup: str.must('producerGroup'),
  topic: str.must('topic'),
  /** The topic whose config a new topic copies (TBW102) when the broker auto-creates `topic`. */
  defaultTopic: str.must('defaultTopic'),
  defaultTopicQueueNums: int.must('defaultTopicQueueNums'),
  /** Target queue; negative means "any": the broker picks one. */
  queueId: int.must('queueId'),
  /** MessageSysFlag bits. */
  sysFlag: int.must('sysFlag'),
  bornTimestamp: long.must('bornTimestamp'),
  flag: int.must('flag'),
  /** The encoded properties string (name \u0001 value \u0002 ...); '' when absent. */
  properties: str.orElse('properties', ''),
  reconsumeTimes: int.orElse('reconsumeTimes', 0),
  unitMode: bool.orElse('unitMode', false),
  /** Whether the body is a batch (message-batch.ts). The broker branches on this, not on the code. */
  batch: bool.orElse('batch', false),
  maxReconsumeTimes: int.may('maxReconsumeTimes'),
  ...TOPIC_RPC_FIELDS,
} as const;

/** SendMessageRequestHeader: SEND_MESSAGE (10), with its fields under their own names. */
export const SendMessageRequestHeader = defineHeader('SendMessageRequestHeader', SEND_MESSAGE_FIELDS);

/**
 * SendMessageRequestHeaderV2: SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320), the same fields under
 * single letters (a producerGroup ... n brokerName; `l` is maxReconsumeTimes, which Java's comment calls
 * consumeRetryTimes). Its decoder is hand-written (FastCodesHeader) and reads only a..n.
 */
export const SendMessageRequestHeaderV2 = defineHeader(
  'SendMessageRequestHeaderV2',
  {
    producerGroup: str.must('a'),
    topic: str.must('b'),
    defaultTopic: str.must('c'),
    defaultTopicQueueNums: int.must('d'),
    queueId: int.must('e'),
    sysFlag: int.must('f'),
    bornTimestamp: long.must('g'),
    flag: int.must('h'),
    properties: str.orElse('i', ''),
    reconsumeTimes: int.orElse('j', 0),
    unitMode: bool.orElse('k', false),
    maxReconsumeTimes: int.may('l'),
    batch: bool.orElse('m', false),
    brokerName: str.may('n'),
  },
  { fastCodes: true },
);

/** A send request, whichever header form it came in (SendMessageRequestHeader.parseRequestHeader). */
export type SendMessageRequest = HeaderValue<typeof SEND_MESSAGE_FIELDS>;

/** Parses the header of SEND_MESSAGE (long names) or SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (letters). */
export function parseSendMessageRequest(code: number, fields: ExtFields): SendMessageRequest {
  if (code === RequestCode.SEND_MESSAGE) return SendMessageRequestHeader.parse(fields);
  assert(
    code === RequestCode.SEND_MESSAGE_V2 || code === RequestCode.SEND_BATCH_MESSAGE,
    `not a send request code: ${code}`,
  );
  return SendMessageRequestHeaderV2.parse(fields);
}

/** Formats a send request header; V2 (letters) is what Java clients send by default. */
export function formatSendMessageRequest(
  value: HeaderInput<typeof SEND_MESSAGE_FIELDS>,
  form: 'V1' | 'V2',
): Record<string, string> {
  return form === 'V1' ? SendMessageRequestHeader.format(value) : SendMessageRequestHeaderV2.format(value);
}

/**
 * SendMessageResponseHeader, plus the two extFields every send response carries beside it
 * (SendMessageProcessor.preSend): MSG_REGION (the broker's regionId) and TRACE_ON ("true"/"false"; a
 * client treats anything but "false", absence included, as on).
 */
export const SendMessageResponseHeader = defineHeader(
  'SendMessageResponseHeader',
  {
    /** The offset message id (store host + CommitLog offset; message-record.ts offsetMessageId). */
    msgId: str.must('msgId'),
    queueId: int.must('queueId'),
    queueOffset: long.must('queueOffset'),
    /** For a half message: its UNIQ_KEY. */
    transactionId: str.may('transactionId'),
    /** For an inner-batch (BatchCQ) send: the batch's UNIQ_KEY; tells the client not to join ids itself. */
    batchUniqId: str.may('batchUniqId'),
    recallHandle: str.may('recallHandle'),
    regionId: str.may('MSG_REGION'),
    traceOn: bool.may('TRACE_ON'),
  },
  { fastCodes: true },
);

/** A send response header. */
export type SendMessageResponse = HeaderValue<typeof SendMessageResponseHeader.spec>;

/** The client's SendStatus for a send response code, or undefined when the client raises MQBrokerException. */
export function sendStatusOf(responseCode: number): SendStatus | undefined {
  switch (responseCode) {
    case ResponseCode.SUCCESS:
      return 'SEND_OK';
    case ResponseCode.FLUSH_DISK_TIMEOUT:
      return 'FLUSH_DISK_TIMEOUT';
    case ResponseCode.FLUSH_SLAVE_TIMEOUT:
      return 'FLUSH_SLAVE_TIMEOUT';
    case ResponseCode.SLAVE_NOT_AVAILABLE:
      return 'SLAVE_NOT_AVAILABLE';
    default:
      return undefined;
  }
}

/** The client's SendStatus (client/producer/SendStatus.java). */
export type SendStatus = 'SEND_OK' | 'FLUSH_DISK_TIMEOUT' | 'FLUSH_SLAVE_TIMEOUT' | 'SLAVE_NOT_AVAILABLE';

// ---------------------------------------------------------------------------------------------------
// Pull

/** Bits of PullMessageRequestHeader.sysFlag (PullSysFlag.java). */
export const PullSysFlag = {
  /** The request carries commitOffset for the broker to store. */
  FLAG_COMMIT_OFFSET: 0x1,
  /** Hold the request (long polling) when no message is there yet. */
  FLAG_SUSPEND: 0x1 << 1,
  /** The request carries its subscription; otherwise the broker uses the registered one. */
  FLAG_SUBSCRIPTION: 0x1 << 2,
  FLAG_CLASS_FILTER: 0x1 << 3,
  FLAG_LITE_PULL_MESSAGE: 0x1 << 4,
} as const;

/** PullMessageRequestHeader (FastCodesHeader). */
export const PullMessageRequestHeader = defineHeader(
  'PullMessageRequestHeader',
  {
    consumerGroup: str.must('consumerGroup'),
    topic: str.must('topic'),
    queueId: int.must('queueId'),
    queueOffset: long.must('queueOffset'),
    maxMsgNums: int.must('maxMsgNums'),
    /** PullSysFlag bits. */
    sysFlag: int.must('sysFlag'),
    commitOffset: long.must('commitOffset'),
    suspendTimeoutMillis: long.must('suspendTimeoutMillis'),
    subscription: str.may('subscription'),
    subVersion: long.must('subVersion'),
    expressionType: str.may('expressionType'),
    maxMsgBytes: int.may('maxMsgBytes'),
    requestSource: int.may('requestSource'),
    /** Java's spelling, kept: the client id a proxy pulls for. */
    proxyFrowardClientId: str.may('proxyFrowardClientId'),
    ...TOPIC_RPC_FIELDS,
  },
  { fastCodes: true },
);

/** A pull request header. */
export type PullMessageRequest = HeaderValue<typeof PullMessageRequestHeader.spec>;

/** PullMessageResponseHeader (FastCodesHeader). */
export const PullMessageResponseHeader = defineHeader(
  'PullMessageResponseHeader',
  {
    /** Broker id the consumer should pull from next (0 master, else a slave). */
    suggestWhichBrokerId: long.must('suggestWhichBrokerId'),
    nextBeginOffset: long.must('nextBeginOffset'),
    minOffset: long.must('minOffset'),
    maxOffset: long.must('maxOffset'),
    offsetDelta: long.may('offsetDelta'),
    topicSysFlag: int.may('topicSysFlag'),
    groupSysFlag: int.may('groupSysFlag'),
    forbiddenType: int.may('forbiddenType'),
  },
  { fastCodes: true },
);

/** A pull response header. */
export type PullMessageResponse = HeaderValue<typeof PullMessageResponseHeader.spec>;

// ---------------------------------------------------------------------------------------------------
// Offsets

/** QueryConsumerOffsetRequestHeader. */
export const QueryConsumerOffsetRequestHeader = defineHeader('QueryConsumerOffsetRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  /** Only an explicit false stops the broker from answering 0 for a never-committed queue (QUERY_NOT_FOUND instead). */
  setZeroIfNotFound: bool.may('setZeroIfNotFound'),
  ...TOPIC_RPC_FIELDS,
});

/** QueryConsumerOffsetResponseHeader. */
export const QueryConsumerOffsetResponseHeader = defineHeader('QueryConsumerOffsetResponseHeader', {
  offset: long.must('offset'),
});

/** UpdateConsumerOffsetRequestHeader. */
export const UpdateConsumerOffsetRequestHeader = defineHeader('UpdateConsumerOffsetRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  commitOffset: long.must('commitOffset'),
  ...TOPIC_RPC_FIELDS,
});

/** GetMinOffsetRequestHeader. */
export const GetMinOffsetRequestHeader = defineHeader('GetMinOffsetRequestHeader', {
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  ...TOPIC_RPC_FIELDS,
});

/** GetMaxOffsetRequestHeader. */
export const GetMaxOffsetRequestHeader = defineHeader('GetMaxOffsetRequestHeader', {
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  /** Passed to the store's getMaxOffsetInQueue(topic, queueId, committed); Java's initializer is true. */
  committed: bool.orElse('committed', true),
  ...TOPIC_RPC_FIELDS,
});

/** SearchOffsetRequestHeader. */
export const SearchOffsetRequestHeader = defineHeader('SearchOffsetRequestHeader', {
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  timestamp: long.must('timestamp'),
  /** BoundaryType as text; read it with boundaryTypeOf. */
  boundaryType: str.may('boundaryType'),
  ...TOPIC_RPC_FIELDS,
});

/** Which end of a run of equal timestamps SEARCH_OFFSET_BY_TIMESTAMP answers (BoundaryType.java). */
export type BoundaryType = 'LOWER' | 'UPPER';

/** BoundaryType.getType: "upper" in any case is UPPER; anything else, absence included, LOWER. */
export function boundaryTypeOf(text: string | undefined): BoundaryType {
  return text !== undefined && text.toLowerCase() === 'upper' ? 'UPPER' : 'LOWER';
}

/** GetEarliestMsgStoretimeRequestHeader. */
export const GetEarliestMsgStoretimeRequestHeader = defineHeader('GetEarliestMsgStoretimeRequestHeader', {
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  ...TOPIC_RPC_FIELDS,
});

const OFFSET_RESPONSE_FIELDS = { offset: long.must('offset') } as const;

/** GetMinOffsetResponseHeader. */
export const GetMinOffsetResponseHeader = defineHeader('GetMinOffsetResponseHeader', OFFSET_RESPONSE_FIELDS);
/** GetMaxOffsetResponseHeader. */
export const GetMaxOffsetResponseHeader = defineHeader('GetMaxOffsetResponseHeader', OFFSET_RESPONSE_FIELDS);
/** SearchOffsetResponseHeader. */
export const SearchOffsetResponseHeader = defineHeader('SearchOffsetResponseHeader', OFFSET_RESPONSE_FIELDS);

/** GetEarliestMsgStoretimeResponseHeader. */
export const GetEarliestMsgStoretimeResponseHeader = defineHeader('GetEarliestMsgStoretimeResponseHeader', {
  timestamp: long.must('timestamp'),
});

// ---------------------------------------------------------------------------------------------------
// Messages: query, view, send back, transactions

/** QueryMessageRequestHeader (by key, through the index). */
export const QueryMessageRequestHeader = defineHeader('QueryMessageRequestHeader', {
  topic: str.must('topic'),
  key: str.must('key'),
  maxNum: int.must('maxNum'),
  beginTimestamp: long.must('beginTimestamp'),
  endTimestamp: long.must('endTimestamp'),
  ...TOPIC_RPC_FIELDS,
});

/** QueryMessageResponseHeader. */
export const QueryMessageResponseHeader = defineHeader('QueryMessageResponseHeader', {
  indexLastUpdateTimestamp: long.must('indexLastUpdateTimestamp'),
  indexLastUpdatePhyoffset: long.must('indexLastUpdatePhyoffset'),
});

/** ViewMessageRequestHeader (by CommitLog offset); a plain CommandCustomHeader, no rpc fields. */
export const ViewMessageRequestHeader = defineHeader('ViewMessageRequestHeader', {
  topic: str.may('topic'),
  offset: long.must('offset'),
});

/** ConsumerSendMsgBackRequestHeader. */
export const ConsumerSendMsgBackRequestHeader = defineHeader('ConsumerSendMsgBackRequestHeader', {
  /** CommitLog offset of the message to send back. */
  offset: long.must('offset'),
  group: str.must('group'),
  delayLevel: int.must('delayLevel'),
  originMsgId: str.may('originMsgId'),
  originTopic: str.may('originTopic'),
  unitMode: bool.orElse('unitMode', false),
  maxReconsumeTimes: int.may('maxReconsumeTimes'),
  ...RPC_FIELDS,
});

/** Transaction states of EndTransactionRequestHeader.commitOrRollback (MessageSysFlag values). */
export const TransactionState = {
  /** TRANSACTION_NOT_TYPE: the producer does not know yet. */
  UNKNOWN: 0,
  /** TRANSACTION_COMMIT_TYPE. */
  COMMIT: 0x2 << 2,
  /** TRANSACTION_ROLLBACK_TYPE. */
  ROLLBACK: 0x3 << 2,
} as const;

/** EndTransactionRequestHeader; checkFields accepts only the three TransactionState values. */
export const EndTransactionRequestHeader = defineHeader(
  'EndTransactionRequestHeader',
  {
    topic: str.may('topic'),
    producerGroup: str.must('producerGroup'),
    tranStateTableOffset: long.must('tranStateTableOffset'),
    /** CommitLog offset of the half message. */
    commitLogOffset: long.must('commitLogOffset'),
    /** A TransactionState value. */
    commitOrRollback: int.must('commitOrRollback'),
    /** Whether this answers the broker's CHECK_TRANSACTION_STATE. */
    fromTransactionCheck: bool.orElse('fromTransactionCheck', false),
    msgId: str.must('msgId'),
    transactionId: str.may('transactionId'),
    ...RPC_FIELDS,
  },
  {
    check(value) {
      const state = value.commitOrRollback;
      if (!(Object.values(TransactionState) as number[]).includes(state)) {
        const header = 'EndTransactionRequestHeader';
        throw new HeaderError(HeaderErrorCode.BAD_VALUE, header, 'commitOrRollback', 'commitOrRollback field wrong');
      }
    },
  },
);

/** CheckTransactionStateRequestHeader: the broker asks a producer about a half message. */
export const CheckTransactionStateRequestHeader = defineHeader('CheckTransactionStateRequestHeader', {
  topic: str.may('topic'),
  tranStateTableOffset: long.must('tranStateTableOffset'),
  commitLogOffset: long.must('commitLogOffset'),
  /** The message's UNIQ_KEY. */
  msgId: str.may('msgId'),
  transactionId: str.may('transactionId'),
  /** The offset message id of the half message. */
  offsetMsgId: str.may('offsetMsgId'),
  ...RPC_FIELDS,
});

// ---------------------------------------------------------------------------------------------------
// Clients and consumer groups

/**
 * The extFields of a HEART_BEAT response (ClientManageProcessor): the broker says it understands
 * heartbeat fingerprints (always "true") and whether a consumer's subscription changed.
 */
export const HeartbeatResponseFields = defineHeader('HeartbeatResponse', {
  isSupportHeartBeatV2: bool.may('IS_SUPPORT_HEART_BEAT_V2'),
  isSubChange: bool.may('IS_SUB_CHANGE'),
});

/** UnregisterClientRequestHeader. */
export const UnregisterClientRequestHeader = defineHeader('UnregisterClientRequestHeader', {
  clientID: str.must('clientID'),
  producerGroup: str.may('producerGroup'),
  consumerGroup: str.may('consumerGroup'),
  ...RPC_FIELDS,
});

/** GetConsumerListByGroupRequestHeader. */
export const GetConsumerListByGroupRequestHeader = defineHeader('GetConsumerListByGroupRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  ...RPC_FIELDS,
});

/** NotifyConsumerIdsChangedRequestHeader: the broker tells a consumer to rebalance. */
export const NotifyConsumerIdsChangedRequestHeader = defineHeader('NotifyConsumerIdsChangedRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  ...RPC_FIELDS,
});

/** GetConsumerConnectionListRequestHeader. */
export const GetConsumerConnectionListRequestHeader = defineHeader('GetConsumerConnectionListRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  ...RPC_FIELDS,
});

/** GetConsumeStatsRequestHeader. */
export const GetConsumeStatsRequestHeader = defineHeader('GetConsumeStatsRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  topic: str.may('topic'),
  /** Topics separated by ';'; read it with topicListOf. */
  topicList: str.may('topicList'),
  ...TOPIC_RPC_FIELDS,
});

/** The topics of GetConsumeStatsRequestHeader.topicList, empty entries dropped. */
export function topicListOf(topicList: string | undefined): string[] {
  return topicList === undefined ? [] : topicList.split(';').filter((topic) => topic !== '');
}

/** ResetOffsetRequestHeader: INVOKE_BROKER_TO_RESET_OFFSET from mqadmin, RESET_CONSUMER_CLIENT_OFFSET to a client. */
export const ResetOffsetRequestHeader = defineHeader('ResetOffsetRequestHeader', {
  group: str.must('group'),
  topic: str.must('topic'),
  /** -1 (Java's initializer) means every queue. */
  queueId: int.orElse('queueId', -1),
  /** An explicit offset, used with a single queueId instead of the timestamp. */
  offset: long.may('offset'),
  timestamp: long.must('timestamp'),
  isForce: bool.must('isForce'),
  ...TOPIC_RPC_FIELDS,
});

// ---------------------------------------------------------------------------------------------------
// Topics

/** TopicFilterType.java. */
export type TopicFilterType = 'SINGLE_TAG' | 'MULTI_TAG';

/** CreateTopicRequestHeader; checkFields accepts only SINGLE_TAG and MULTI_TAG (case-sensitive, as valueOf). */
export const CreateTopicRequestHeader = defineHeader(
  'CreateTopicRequestHeader',
  {
    topic: str.must('topic'),
    defaultTopic: str.must('defaultTopic'),
    readQueueNums: int.must('readQueueNums'),
    writeQueueNums: int.must('writeQueueNums'),
    /** PermName bits. */
    perm: int.must('perm'),
    /** A TopicFilterType name. */
    topicFilterType: str.must('topicFilterType'),
    topicSysFlag: int.may('topicSysFlag'),
    order: bool.orElse('order', false),
    /** Attribute requests as JSON text of `{"+key":"value"}`; see metadata-store.ts alterAttributes. */
    attributes: str.may('attributes'),
    force: bool.orElse('force', false),
    ...TOPIC_RPC_FIELDS,
  },
  {
    check(value) {
      if (value.topicFilterType !== 'SINGLE_TAG' && value.topicFilterType !== 'MULTI_TAG') {
        throw new HeaderError(
          HeaderErrorCode.BAD_VALUE,
          'CreateTopicRequestHeader',
          'topicFilterType',
          `topicFilterType = [${value.topicFilterType}] value invalid`,
        );
      }
    },
  },
);

/** DeleteTopicRequestHeader. */
export const DeleteTopicRequestHeader = defineHeader('DeleteTopicRequestHeader', {
  topic: str.must('topic'),
  ...TOPIC_RPC_FIELDS,
});

/** GetTopicConfigRequestHeader: GET_TOPIC_CONFIG (351); `lo` asks for the static-topic mapping too. */
export const GetTopicConfigRequestHeader = defineHeader('GetTopicConfigRequestHeader', {
  topic: str.must('topic'),
  ...TOPIC_RPC_FIELDS,
});

/** GetTopicStatsInfoRequestHeader. */
export const GetTopicStatsInfoRequestHeader = defineHeader('GetTopicStatsInfoRequestHeader', {
  topic: str.must('topic'),
  ...TOPIC_RPC_FIELDS,
});

// ---------------------------------------------------------------------------------------------------
// POP (5.x): POP_MESSAGE 200050, ACK_MESSAGE 200051, CHANGE_MESSAGE_INVISIBLETIME 200053. These codes do
// not fit the ROCKETMQ binary header's 16-bit code, so they travel with JSON headers only.
//
// Receipt handles: RocketMQ's broker answers a pop with offsets and times from which the client builds
// each handle (ExtraInfoUtil); ours answers the handles themselves, one per record of the body and in the
// same order, in `receiptHandles` (joined by RECEIPT_HANDLE_SEPARATOR), with each message's delivery
// attempt in `attempts`. The handle is opaque to the Proxy: it passes it back as ACK_MESSAGE's and
// CHANGE_MESSAGE_INVISIBLETIME's `extraInfo`, and CHANGE_MESSAGE_INVISIBLETIME answers the new one in
// `receiptHandle`.

/** Separates the receipt handles (and the attempts) of one POP answer; a handle never contains it. */
export const RECEIPT_HANDLE_SEPARATOR = ';';

/** PopMessageRequestHeader. `queueId` -1 pops from every readable queue of the topic. */
export const PopMessageRequestHeader = defineHeader('PopMessageRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  maxMsgNums: int.must('maxMsgNums'),
  invisibleTime: long.must('invisibleTime'),
  /** Long-polling time in ms; 0 answers at once. */
  pollTime: long.must('pollTime'),
  bornTime: long.must('bornTime'),
  /** ConsumeInitMode: 0 MIN, 1 MAX. */
  initMode: int.must('initMode'),
  /** TAG or SQL92, with the expression in `exp`. */
  expType: str.may('expType'),
  exp: str.may('exp'),
  /** Orderly (FIFO) consumption. */
  order: bool.orElse('order', false),
  attemptId: str.may('attemptId'),
  /** The most delivery attempts before a message goes to the group's DLQ (ours; RocketMQ's Proxy filters). */
  maxAttempts: int.may('maxAttempts'),
  ...TOPIC_RPC_FIELDS,
});

/** PopMessageResponseHeader, plus the handles and attempts of the answered records. */
export const PopMessageResponseHeader = defineHeader('PopMessageResponseHeader', {
  popTime: long.must('popTime'),
  invisibleTime: long.must('invisibleTime'),
  reviveQid: int.orElse('reviveQid', 0),
  restNum: long.orElse('restNum', 0),
  startOffsetInfo: str.may('startOffsetInfo'),
  msgOffsetInfo: str.may('msgOffsetInfo'),
  orderCountInfo: str.may('orderCountInfo'),
  receiptHandles: str.orElse('receiptHandles', ''),
  attempts: str.orElse('attempts', ''),
});

/** AckMessageRequestHeader: `extraInfo` is the receipt handle. */
export const AckMessageRequestHeader = defineHeader('AckMessageRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  extraInfo: str.must('extraInfo'),
  offset: long.must('offset'),
  ...TOPIC_RPC_FIELDS,
});

/** ChangeInvisibleTimeRequestHeader. */
export const ChangeInvisibleTimeRequestHeader = defineHeader('ChangeInvisibleTimeRequestHeader', {
  consumerGroup: str.must('consumerGroup'),
  topic: str.must('topic'),
  queueId: int.must('queueId'),
  extraInfo: str.must('extraInfo'),
  offset: long.must('offset'),
  invisibleTime: long.must('invisibleTime'),
  ...TOPIC_RPC_FIELDS,
});

/** ChangeInvisibleTimeResponseHeader, plus the new receipt handle. */
export const ChangeInvisibleTimeResponseHeader = defineHeader('ChangeInvisibleTimeResponseHeader', {
  popTime: long.must('popTime'),
  invisibleTime: long.must('invisibleTime'),
  reviveQid: int.orElse('reviveQid', 0),
  receiptHandle: str.must('receiptHandle'),
});
