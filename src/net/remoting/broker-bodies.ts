/**
 * The JSON bodies of the Broker's Remoting requests and responses: RocketMQ's RemotingSerializable
 * classes (remoting module, protocol/heartbeat, protocol/body, protocol/admin; 5.x) as typed values,
 * parsed with fastjson.ts and formatted the way fastjson writes them.
 *
 * | body                              | travels with                                       | direction        |
 * |-----------------------------------|----------------------------------------------------|------------------|
 * | HeartbeatData                     | HEART_BEAT (34)                                    | client -> broker |
 * | LockBatchRequestBody              | LOCK_BATCH_MQ (41)                                 | client -> broker |
 * | UnlockBatchRequestBody            | UNLOCK_BATCH_MQ (42)                               | client -> broker |
 * | LockBatchResponseBody             | LOCK_BATCH_MQ response                             | broker -> client |
 * | GetConsumerListByGroupResponseBody| GET_CONSUMER_LIST_BY_GROUP (38) response           | broker -> client |
 * | ConsumerConnection                | GET_CONSUMER_CONNECTION_LIST (203) response        | broker -> admin  |
 * | ConsumeStats                      | GET_CONSUME_STATS (208) response                   | broker -> admin  |
 * | TopicStatsTable                   | GET_TOPIC_STATS_INFO (202) response                | broker -> admin  |
 * | KVTable                           | GET_BROKER_RUNTIME_INFO (28) response, and others  | broker -> admin  |
 * | ResetOffsetBody                   | RESET_CONSUMER_CLIENT_OFFSET (220); INVOKE_BROKER_ | both             |
 * |                                   | TO_RESET_OFFSET (222) response                     |                  |
 * | TopicConfigSerializeWrapper       | GET_ALL_TOPIC_CONFIG (21) response                 | broker -> admin  |
 * | SubscriptionGroupWrapper          | GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) response    | broker -> admin  |
 *
 * JSON property names are fastjson's, taken from the Java getters: `clientID`, `lockOKMQSet`, and
 * HeartbeatData's `isWithoutSub()` becomes `withoutSub` (we also read `isWithoutSub`). Java Sets are
 * JSON arrays. Maps keyed by MessageQueue (ConsumeStats, TopicStatsTable, ResetOffsetBody) are written
 * by fastjson with whole objects as keys, `{{"brokerName":"b","queueId":0,"topic":"t"}:{...}}`; they are
 * `[MessageQueue, value]` pairs here. String-keyed tables are Maps, so a name like `__proto__` is data.
 *
 * Parsing is tolerant as fastjson's bean binding is: unknown properties are ignored, null means absent,
 * numbers may arrive as numeric strings, an enum may arrive as its name or its ordinal, and an unknown
 * enum name reads as absent (fastjson binds it to null). A required property that is absent, or a value
 * of the wrong type, is a BodyError naming its path. Formatting writes bean properties in alphabetical
 * order and leaves out absent ones, as fastjson does by default.
 *
 * RocketMQ's answer to a body it cannot read (a fastjson JSONException, or the NullPointerException a
 * missing body leads to) is SYSTEM_ERROR; `bodyErrorResponse` builds ours.
 */

import {
  type DataVersion,
  dataVersionSchema,
  type SubscriptionGroupConfig,
  subscriptionGroupConfigSchema,
  type TopicConfig,
  topicConfigSchema,
} from '../../storage/metadata-store.ts';
import {
  FastjsonError,
  type FastjsonErrorCode,
  type FastjsonInput,
  type FastjsonObject,
  type FastjsonParseOptions,
  type FastjsonValue,
  formatFastjson,
  parseFastjson,
  toPlainJson,
} from './fastjson.ts';
import {
  createResponse,
  isLanguageName,
  type LanguageName,
  languageNameOf,
  type RemotingCommand,
  ResponseCode,
} from './remoting-command.ts';

// ---------------------------------------------------------------------------------------------------
// Errors

/** Stable codes of BodyError. */
export const BodyErrorCode = {
  /** The command has no body where one is required. */
  MISSING: 'BODY_MISSING',
  /** The body is not fastjson text, or exceeds a parse bound; `fastjsonCode` says which. */
  MALFORMED: 'BODY_MALFORMED',
  /** The JSON does not have the body's shape: a required property absent or of the wrong type. */
  INVALID: 'BODY_INVALID',
} as const;

/** A stable code of BodyError. */
export type BodyErrorCode = (typeof BodyErrorCode)[keyof typeof BodyErrorCode];

/** A body that cannot be read; answered with BODY_ERROR_RESPONSE_CODE. */
export class BodyError extends Error {
  /** Stable machine-readable code. */
  readonly code: BodyErrorCode;
  /** RocketMQ's class name of the body. */
  readonly body: string;
  /** For MALFORMED: the FastjsonError's code (syntax, too large, too deep, too many values). */
  readonly fastjsonCode: FastjsonErrorCode | undefined;
  override readonly name = 'BodyError';

  constructor(code: BodyErrorCode, body: string, message: string, fastjsonCode?: FastjsonErrorCode) {
    super(message);
    this.code = code;
    this.body = body;
    this.fastjsonCode = fastjsonCode;
  }
}

/** What RocketMQ answers for a body it cannot read: SYSTEM_ERROR (any exception out of a processor). */
export const BODY_ERROR_RESPONSE_CODE = ResponseCode.SYSTEM_ERROR;

/** The response to a request whose body failed to parse: SYSTEM_ERROR, the error's message as remark. */
export function bodyErrorResponse(
  request: Pick<RemotingCommand, 'opaque' | 'serializeType'>,
  error: BodyError,
): RemotingCommand {
  return createResponse(request, BODY_ERROR_RESPONSE_CODE, `${error.name}: ${error.message}`);
}

// ---------------------------------------------------------------------------------------------------
// Enums and shared shapes

/** ConsumeType.java, in ordinal order: PULL, PUSH, POP consumers. */
export const CONSUME_TYPES = ['CONSUME_ACTIVELY', 'CONSUME_PASSIVELY', 'CONSUME_POP'] as const;
/** A ConsumeType name. */
export type ConsumeType = (typeof CONSUME_TYPES)[number];

/** MessageModel.java, in ordinal order. */
export const MESSAGE_MODELS = ['BROADCASTING', 'CLUSTERING'] as const;
/** A MessageModel name. */
export type MessageModel = (typeof MESSAGE_MODELS)[number];

/** ConsumeFromWhere.java, in ordinal order (three of them deprecated in Java, still accepted). */
export const CONSUME_FROM_WHERES = [
  'CONSUME_FROM_LAST_OFFSET',
  'CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST',
  'CONSUME_FROM_MIN_OFFSET',
  'CONSUME_FROM_MAX_OFFSET',
  'CONSUME_FROM_FIRST_OFFSET',
  'CONSUME_FROM_TIMESTAMP',
] as const;
/** A ConsumeFromWhere name. */
export type ConsumeFromWhere = (typeof CONSUME_FROM_WHERES)[number];

/** SubscriptionData.SUB_ALL: the subscription expression meaning every tag. */
export const SUB_ALL = '*';

/** A queue of a topic on a broker (MessageQueue.java). */
export type MessageQueue = {
  readonly topic: string;
  readonly brokerName: string;
  readonly queueId: number;
};

/** One subscription of a consumer group (SubscriptionData.java). */
export type SubscriptionData = {
  readonly classFilterMode: boolean;
  readonly topic: string;
  /** The expression: tags joined by `||`, `*` for all, or SQL92. */
  readonly subString: string;
  readonly tagsSet: readonly string[];
  /** Java hashCodes of the tags. */
  readonly codeSet: readonly number[];
  /** Version of the subscription, a timestamp in ms; 0 when absent (Java would use its parse time). */
  readonly subVersion: number;
  /** TAG or SQL92. */
  readonly expressionType: string;
};

// ---------------------------------------------------------------------------------------------------
// Reading

/** Parses a body's JSON; throws BodyError. */
function parseBody(
  what: string,
  body: Uint8Array | undefined,
  options: FastjsonParseOptions | undefined,
): FastjsonValue {
  if (body === undefined) throw new BodyError(BodyErrorCode.MISSING, what, `${what}: the request has no body`);
  try {
    return parseFastjson(body, options);
  } catch (error) {
    if (!(error instanceof FastjsonError)) throw error;
    throw new BodyError(BodyErrorCode.MALFORMED, what, `${what}: ${error.message}`, error.code);
  }
}

/** Reads typed values out of parsed JSON, naming the path of anything wrong. */
class Reader {
  readonly what: string;

  constructor(what: string) {
    this.what = what;
  }

  fail(path: string, message: string): never {
    throw new BodyError(BodyErrorCode.INVALID, this.what, `${this.what}: ${path} ${message}`);
  }

  object(value: FastjsonValue | undefined, path: string): FastjsonObject {
    if (!(value instanceof Map)) this.fail(path, 'is not an object');
    return value;
  }

  /** The property `name` of `obj`; null reads as absent. */
  get(obj: FastjsonObject, name: string): FastjsonValue | undefined {
    const value = obj.get(name);
    return value === null ? undefined : value;
  }

  string(obj: FastjsonObject, name: string, path: string): string {
    const value = this.optString(obj, name, path);
    if (value === undefined) this.fail(`${path}.${name}`, 'is missing');
    return value;
  }

  optString(obj: FastjsonObject, name: string, path: string): string | undefined {
    const value = this.get(obj, name);
    if (value === undefined) return undefined;
    return this.scalarString(value, `${path}.${name}`);
  }

  /** A string, or a number or boolean turned into one, as fastjson casts them for a String property. */
  scalarString(value: FastjsonValue, path: string): string {
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
    return this.fail(path, 'is not a string');
  }

  /** An integer in [min, max], from a number or a numeric string; `fallback` when absent. */
  integer(obj: FastjsonObject, name: string, path: string, range: readonly [number, number], fallback?: number): number {
    const value = this.get(obj, name);
    if (value === undefined) {
      if (fallback === undefined) this.fail(`${path}.${name}`, 'is missing');
      return fallback;
    }
    return this.integerValue(value, `${path}.${name}`, range);
  }

  integerValue(value: FastjsonValue, path: string, range: readonly [number, number]): number {
    const number = typeof value === 'string' && /^[+-]?\d+$/.test(value) ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < range[0] || number > range[1]) {
      return this.fail(path, `is not an integer in [${range[0]}, ${range[1]}]: ${String(value).slice(0, 64)}`);
    }
    return number;
  }

  double(obj: FastjsonObject, name: string, path: string, fallback: number): number {
    const value = this.get(obj, name);
    if (value === undefined) return fallback;
    const number = typeof value === 'string' ? Number(value) : typeof value === 'bigint' ? Number(value) : value;
    if (typeof number !== 'number' || Number.isNaN(number)) this.fail(`${path}.${name}`, 'is not a number');
    return number;
  }

  bool(obj: FastjsonObject, name: string, path: string, fallback: boolean): boolean {
    const value = this.get(obj, name);
    if (value === undefined) return fallback;
    if (typeof value === 'boolean') return value;
    // fastjson's castToBoolean also takes "true"/"false" and 1/0.
    if (value === 'true' || value === 1) return true;
    if (value === 'false' || value === 0) return false;
    return this.fail(`${path}.${name}`, 'is not a boolean');
  }

  array(obj: FastjsonObject, name: string, path: string): FastjsonValue[] {
    const value = this.get(obj, name);
    if (value === undefined) return [];
    if (!Array.isArray(value)) this.fail(`${path}.${name}`, 'is not an array');
    return value;
  }

  /** An enum by name or ordinal; an unknown name reads as absent, as fastjson binds it to null. */
  enumValue<const T extends string>(obj: FastjsonObject, name: string, path: string, names: readonly T[]): T | undefined {
    const value = this.get(obj, name);
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isInteger(value)) return names[value];
    if (typeof value !== 'string') this.fail(`${path}.${name}`, 'is not an enum name');
    return (names as readonly string[]).includes(value) ? (value as T) : undefined;
  }

  /** The string-keyed table (a Java Map<String, V>) under `name`; empty when absent. */
  table<V>(obj: FastjsonObject, name: string, path: string, read: (value: FastjsonValue, path: string) => V): Map<string, V> {
    const value = this.get(obj, name);
    return value === undefined ? new Map() : this.tableValue(value, `${path}.${name}`, read);
  }

  /** A string-keyed table as a Map; number keys read as their decimal text, null values as absent. */
  tableValue<V>(value: FastjsonValue, path: string, read: (value: FastjsonValue, path: string) => V): Map<string, V> {
    const table = this.object(value, path);
    const out = new Map<string, V>();
    for (const [key, item] of table) {
      if (item === null) continue;
      const numeric = typeof key === 'number' || typeof key === 'bigint';
      const keyText = typeof key === 'string' ? key : numeric ? String(key) : undefined;
      if (keyText === undefined) this.fail(path, 'has a key that is not a string');
      out.set(keyText, read(item, `${path}[${JSON.stringify(keyText)}]`));
    }
    return out;
  }
}

const INT32: readonly [number, number] = [-0x8000_0000, 0x7fff_ffff];
const LONG: readonly [number, number] = [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];

function readMessageQueue(r: Reader, value: FastjsonValue, path: string): MessageQueue {
  const obj = r.object(value, path);
  return {
    topic: r.string(obj, 'topic', path),
    brokerName: r.string(obj, 'brokerName', path),
    queueId: r.integer(obj, 'queueId', path, INT32),
  };
}

/**
 * Reads a Map<MessageQueue, V>. fastjson writes the keys as objects; a key given as the JSON text of a
 * MessageQueue (what WriteNonStringKeyAsString produces) is read too.
 */
function readQueueTable<V>(
  r: Reader,
  obj: FastjsonObject,
  name: string,
  path: string,
  read: (value: FastjsonValue, path: string) => V,
): Array<[MessageQueue, V]> {
  const value = r.get(obj, name);
  if (value === undefined) return [];
  const table = r.object(value, `${path}.${name}`);
  const out: Array<[MessageQueue, V]> = [];
  let i = 0;
  for (const [key, item] of table) {
    const keyPath = `${path}.${name}[${i}]`;
    i++;
    if (item === null) continue;
    let keyValue: FastjsonValue = key;
    if (typeof key === 'string') {
      try {
        keyValue = parseFastjson(key, { bytesMax: 64 * 1024, depthMax: 2 });
      } catch {
        r.fail(keyPath, 'has a key that is not a MessageQueue');
      }
    }
    out.push([readMessageQueue(r, keyValue, `${keyPath}.key`), read(item, `${keyPath}.value`)]);
  }
  return out;
}

function readSubscriptionData(r: Reader, value: FastjsonValue, path: string): SubscriptionData {
  const obj = r.object(value, path);
  return {
    classFilterMode: r.bool(obj, 'classFilterMode', path, false),
    topic: r.string(obj, 'topic', path),
    subString: r.string(obj, 'subString', path),
    tagsSet: r.array(obj, 'tagsSet', path).map((tag, i) => r.scalarString(tag, `${path}.tagsSet[${i}]`)),
    codeSet: r.array(obj, 'codeSet', path).map((code, i) => r.integerValue(code, `${path}.codeSet[${i}]`, INT32)),
    subVersion: r.integer(obj, 'subVersion', path, LONG, 0),
    expressionType: r.optString(obj, 'expressionType', path) ?? 'TAG',
  };
}

// ---------------------------------------------------------------------------------------------------
// Writing

/** A Java bean as fastjson writes it: properties sorted by name, absent ones left out. */
function bean(properties: Readonly<Record<string, FastjsonInput | undefined>>): Map<string, FastjsonInput> {
  const out = new Map<string, FastjsonInput>();
  for (const name of Object.keys(properties).sort()) {
    const value = properties[name];
    if (value !== undefined) out.set(name, value);
  }
  return out;
}

/** Plain data (a zod-validated config) as fastjson writes a bean tree: every object sorted, undefined left out. */
function beanTree(value: unknown): FastjsonInput {
  if (Array.isArray(value)) return value.map(beanTree);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const out = new Map<string, FastjsonInput>();
    for (const name of Object.keys(record).sort()) {
      if (record[name] !== undefined) out.set(name, beanTree(record[name]));
    }
    return out;
  }
  return value as FastjsonInput;
}

function messageQueueJson(mq: MessageQueue): Map<string, FastjsonInput> {
  return bean({ brokerName: mq.brokerName, queueId: mq.queueId, topic: mq.topic });
}

function subscriptionDataJson(sub: SubscriptionData): Map<string, FastjsonInput> {
  return bean({
    classFilterMode: sub.classFilterMode,
    codeSet: sub.codeSet,
    expressionType: sub.expressionType,
    subString: sub.subString,
    subVersion: sub.subVersion,
    tagsSet: sub.tagsSet,
    topic: sub.topic,
  });
}

function toBytes(value: FastjsonInput): Uint8Array {
  const bytes = Buffer.from(formatFastjson(value), 'utf8');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

// ---------------------------------------------------------------------------------------------------
// HeartbeatData

/** One producer group a client runs (ProducerData.java). */
export type ProducerData = { readonly groupName: string };

/** One consumer group a client runs (ConsumerData.java); enums are undefined when absent or unknown. */
export type ConsumerData = {
  readonly groupName: string;
  readonly consumeType: ConsumeType | undefined;
  readonly messageModel: MessageModel | undefined;
  readonly consumeFromWhere: ConsumeFromWhere | undefined;
  readonly subscriptionDataSet: readonly SubscriptionData[];
  readonly unitMode: boolean;
};

/** HEART_BEAT's body (HeartbeatData.java). */
export type HeartbeatData = {
  readonly clientID: string;
  readonly producerDataSet: readonly ProducerData[];
  readonly consumerDataSet: readonly ConsumerData[];
  /** Non-zero: the client speaks heartbeat V2 (5.1+); the broker compares it per group to spot changes. */
  readonly heartbeatFingerprint: number;
  /** With V2, true when the client left subscriptions out because its fingerprint did not change. */
  readonly withoutSub: boolean;
};

/** Parses HEART_BEAT's body. */
export function parseHeartbeatData(body: Uint8Array | undefined, options?: FastjsonParseOptions): HeartbeatData {
  const what = 'HeartbeatData';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return {
    clientID: r.string(obj, 'clientID', what),
    producerDataSet: r.array(obj, 'producerDataSet', what).map((item, i) => {
      const path = `${what}.producerDataSet[${i}]`;
      return { groupName: r.string(r.object(item, path), 'groupName', path) };
    }),
    consumerDataSet: r.array(obj, 'consumerDataSet', what).map((item, i) => {
      const path = `${what}.consumerDataSet[${i}]`;
      const consumer = r.object(item, path);
      return {
        groupName: r.string(consumer, 'groupName', path),
        consumeType: r.enumValue(consumer, 'consumeType', path, CONSUME_TYPES),
        messageModel: r.enumValue(consumer, 'messageModel', path, MESSAGE_MODELS),
        consumeFromWhere: r.enumValue(consumer, 'consumeFromWhere', path, CONSUME_FROM_WHERES),
        subscriptionDataSet: r
          .array(consumer, 'subscriptionDataSet', path)
          .map((sub, j) => readSubscriptionData(r, sub, `${path}.subscriptionDataSet[${j}]`)),
        unitMode: r.bool(consumer, 'unitMode', path, false),
      };
    }),
    heartbeatFingerprint: r.integer(obj, 'heartbeatFingerprint', what, INT32, 0),
    withoutSub: r.bool(obj, r.get(obj, 'withoutSub') !== undefined ? 'withoutSub' : 'isWithoutSub', what, false),
  };
}

/** Formats a HeartbeatData as a Java client sends it. */
export function formatHeartbeatData(data: HeartbeatData): Uint8Array {
  return toBytes(
    bean({
      clientID: data.clientID,
      consumerDataSet: data.consumerDataSet.map((consumer) =>
        bean({
          consumeFromWhere: consumer.consumeFromWhere,
          consumeType: consumer.consumeType,
          groupName: consumer.groupName,
          messageModel: consumer.messageModel,
          subscriptionDataSet: consumer.subscriptionDataSet.map(subscriptionDataJson),
          unitMode: consumer.unitMode,
        }),
      ),
      heartbeatFingerprint: data.heartbeatFingerprint,
      producerDataSet: data.producerDataSet.map((producer) => bean({ groupName: producer.groupName })),
      withoutSub: data.withoutSub,
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Queue locks

/** LOCK_BATCH_MQ's and UNLOCK_BATCH_MQ's body (LockBatchRequestBody.java, UnlockBatchRequestBody.java). */
export type LockBatchRequestBody = {
  readonly consumerGroup: string;
  readonly clientId: string;
  /** Lock only on this broker, not on the others of its group (used by the proxy). */
  readonly onlyThisBroker: boolean;
  readonly mqSet: readonly MessageQueue[];
};

/** UNLOCK_BATCH_MQ's body has LockBatchRequestBody's shape. */
export type UnlockBatchRequestBody = LockBatchRequestBody;

function parseLockBody(what: string, body: Uint8Array | undefined, options?: FastjsonParseOptions): LockBatchRequestBody {
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return {
    consumerGroup: r.string(obj, 'consumerGroup', what),
    clientId: r.string(obj, 'clientId', what),
    onlyThisBroker: r.bool(obj, 'onlyThisBroker', what, false),
    mqSet: r.array(obj, 'mqSet', what).map((mq, i) => readMessageQueue(r, mq, `${what}.mqSet[${i}]`)),
  };
}

/** Parses LOCK_BATCH_MQ's body. */
export function parseLockBatchRequestBody(body: Uint8Array | undefined, options?: FastjsonParseOptions): LockBatchRequestBody {
  return parseLockBody('LockBatchRequestBody', body, options);
}

/** Parses UNLOCK_BATCH_MQ's body. */
export function parseUnlockBatchRequestBody(body: Uint8Array | undefined, options?: FastjsonParseOptions): UnlockBatchRequestBody {
  return parseLockBody('UnlockBatchRequestBody', body, options);
}

/** Formats a LockBatchRequestBody or UnlockBatchRequestBody. */
export function formatLockBatchRequestBody(value: LockBatchRequestBody): Uint8Array {
  return toBytes(
    bean({
      clientId: value.clientId,
      consumerGroup: value.consumerGroup,
      mqSet: value.mqSet.map(messageQueueJson),
      onlyThisBroker: value.onlyThisBroker,
    }),
  );
}

/** LOCK_BATCH_MQ's response body: the queues now locked by the requester. */
export type LockBatchResponseBody = { readonly lockOKMQSet: readonly MessageQueue[] };

/** Parses LOCK_BATCH_MQ's response body. */
export function parseLockBatchResponseBody(body: Uint8Array | undefined, options?: FastjsonParseOptions): LockBatchResponseBody {
  const what = 'LockBatchResponseBody';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return { lockOKMQSet: r.array(obj, 'lockOKMQSet', what).map((mq, i) => readMessageQueue(r, mq, `${what}.lockOKMQSet[${i}]`)) };
}

/** Formats LOCK_BATCH_MQ's response body. */
export function formatLockBatchResponseBody(value: LockBatchResponseBody): Uint8Array {
  return toBytes(bean({ lockOKMQSet: value.lockOKMQSet.map(messageQueueJson) }));
}

// ---------------------------------------------------------------------------------------------------
// Consumer groups

/** GET_CONSUMER_LIST_BY_GROUP's response body: the client ids of a group's online consumers. */
export type GetConsumerListByGroupResponseBody = { readonly consumerIdList: readonly string[] };

/** Parses GET_CONSUMER_LIST_BY_GROUP's response body. */
export function parseGetConsumerListByGroupResponseBody(
  body: Uint8Array | undefined,
  options?: FastjsonParseOptions,
): GetConsumerListByGroupResponseBody {
  const what = 'GetConsumerListByGroupResponseBody';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return {
    consumerIdList: r.array(obj, 'consumerIdList', what).map((id, i) => r.scalarString(id, `${what}.consumerIdList[${i}]`)),
  };
}

/** Formats GET_CONSUMER_LIST_BY_GROUP's response body. */
export function formatGetConsumerListByGroupResponseBody(value: GetConsumerListByGroupResponseBody): Uint8Array {
  return toBytes(bean({ consumerIdList: value.consumerIdList }));
}

/** One client connection of a group (Connection.java). */
export type Connection = {
  readonly clientId: string;
  readonly clientAddr: string;
  /** Unknown names read as OTHER. */
  readonly language: LanguageName;
  /** The client's MQVersion ordinal. */
  readonly version: number;
};

/** GET_CONSUMER_CONNECTION_LIST's response body (ConsumerConnection.java). */
export type ConsumerConnection = {
  readonly connectionSet: readonly Connection[];
  /** Topic -> the group's subscription of it. */
  readonly subscriptionTable: ReadonlyMap<string, SubscriptionData>;
  readonly consumeType: ConsumeType | undefined;
  readonly messageModel: MessageModel | undefined;
  readonly consumeFromWhere: ConsumeFromWhere | undefined;
};

function readLanguage(r: Reader, obj: FastjsonObject): LanguageName {
  const value = r.get(obj, 'language');
  if (typeof value === 'string' && isLanguageName(value)) return value;
  if (typeof value === 'number') return languageNameOf(value) ?? 'OTHER';
  return 'OTHER';
}

/** Parses GET_CONSUMER_CONNECTION_LIST's response body. */
export function parseConsumerConnection(body: Uint8Array | undefined, options?: FastjsonParseOptions): ConsumerConnection {
  const what = 'ConsumerConnection';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return {
    connectionSet: r.array(obj, 'connectionSet', what).map((item, i) => {
      const path = `${what}.connectionSet[${i}]`;
      const connection = r.object(item, path);
      return {
        clientId: r.string(connection, 'clientId', path),
        clientAddr: r.string(connection, 'clientAddr', path),
        language: readLanguage(r, connection),
        version: r.integer(connection, 'version', path, INT32, 0),
      };
    }),
    subscriptionTable: r.table(obj, 'subscriptionTable', what, (value, path) => readSubscriptionData(r, value, path)),
    consumeType: r.enumValue(obj, 'consumeType', what, CONSUME_TYPES),
    messageModel: r.enumValue(obj, 'messageModel', what, MESSAGE_MODELS),
    consumeFromWhere: r.enumValue(obj, 'consumeFromWhere', what, CONSUME_FROM_WHERES),
  };
}

/** Formats GET_CONSUMER_CONNECTION_LIST's response body. */
export function formatConsumerConnection(value: ConsumerConnection): Uint8Array {
  const subscriptions = new Map<string, FastjsonInput>();
  for (const [topic, sub] of value.subscriptionTable) subscriptions.set(topic, subscriptionDataJson(sub));
  return toBytes(
    bean({
      connectionSet: value.connectionSet.map((c) =>
        bean({ clientAddr: c.clientAddr, clientId: c.clientId, language: c.language, version: c.version }),
      ),
      consumeFromWhere: value.consumeFromWhere,
      consumeType: value.consumeType,
      messageModel: value.messageModel,
      subscriptionTable: subscriptions,
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Statistics

/** A group's progress on one queue (admin/OffsetWrapper.java). */
export type OffsetWrapper = {
  /** The queue's max offset. */
  readonly brokerOffset: number;
  /** The group's committed offset. */
  readonly consumerOffset: number;
  /** The group's pull offset (in flight up to here). */
  readonly pullOffset: number;
  /** Store time of the last consumed message, ms. */
  readonly lastTimestamp: number;
};

/** GET_CONSUME_STATS's response body (admin/ConsumeStats.java). */
export type ConsumeStats = {
  readonly offsetTable: ReadonlyArray<readonly [MessageQueue, OffsetWrapper]>;
  readonly consumeTps: number;
};

/** Parses GET_CONSUME_STATS's response body. */
export function parseConsumeStats(body: Uint8Array | undefined, options?: FastjsonParseOptions): ConsumeStats {
  const what = 'ConsumeStats';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return {
    offsetTable: readQueueTable(r, obj, 'offsetTable', what, (value, path) => {
      const wrapper = r.object(value, path);
      return {
        brokerOffset: r.integer(wrapper, 'brokerOffset', path, LONG, 0),
        consumerOffset: r.integer(wrapper, 'consumerOffset', path, LONG, 0),
        pullOffset: r.integer(wrapper, 'pullOffset', path, LONG, 0),
        lastTimestamp: r.integer(wrapper, 'lastTimestamp', path, LONG, 0),
      };
    }),
    consumeTps: r.double(obj, 'consumeTps', what, 0),
  };
}

/** Formats GET_CONSUME_STATS's response body, MessageQueue keys as objects as fastjson writes them. */
export function formatConsumeStats(value: ConsumeStats): Uint8Array {
  const table = new Map<FastjsonInput, FastjsonInput>();
  for (const [mq, w] of value.offsetTable) {
    table.set(
      messageQueueJson(mq),
      bean({
        brokerOffset: w.brokerOffset,
        consumerOffset: w.consumerOffset,
        lastTimestamp: w.lastTimestamp,
        pullOffset: w.pullOffset,
      }),
    );
  }
  return toBytes(bean({ consumeTps: value.consumeTps, offsetTable: table }));
}

/** One queue's extent (admin/TopicOffset.java). */
export type TopicOffset = {
  readonly minOffset: number;
  readonly maxOffset: number;
  /** Store time of the newest message, ms (0 for an empty queue). */
  readonly lastUpdateTimestamp: number;
};

/** GET_TOPIC_STATS_INFO's response body (admin/TopicStatsTable.java). */
export type TopicStatsTable = {
  readonly offsetTable: ReadonlyArray<readonly [MessageQueue, TopicOffset]>;
  readonly topicPutTps: number;
};

/** Parses GET_TOPIC_STATS_INFO's response body. */
export function parseTopicStatsTable(body: Uint8Array | undefined, options?: FastjsonParseOptions): TopicStatsTable {
  const what = 'TopicStatsTable';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return {
    offsetTable: readQueueTable(r, obj, 'offsetTable', what, (value, path) => {
      const offset = r.object(value, path);
      return {
        minOffset: r.integer(offset, 'minOffset', path, LONG, 0),
        maxOffset: r.integer(offset, 'maxOffset', path, LONG, 0),
        lastUpdateTimestamp: r.integer(offset, 'lastUpdateTimestamp', path, LONG, 0),
      };
    }),
    topicPutTps: r.double(obj, 'topicPutTps', what, 0),
  };
}

/** Formats GET_TOPIC_STATS_INFO's response body. */
export function formatTopicStatsTable(value: TopicStatsTable): Uint8Array {
  const table = new Map<FastjsonInput, FastjsonInput>();
  for (const [mq, o] of value.offsetTable) {
    const offsets = bean({ lastUpdateTimestamp: o.lastUpdateTimestamp, maxOffset: o.maxOffset, minOffset: o.minOffset });
    table.set(messageQueueJson(mq), offsets);
  }
  return toBytes(bean({ offsetTable: table, topicPutTps: value.topicPutTps }));
}

// ---------------------------------------------------------------------------------------------------
// KVTable, ResetOffsetBody

/** A string table (KVTable.java), e.g. GET_BROKER_RUNTIME_INFO's answer. */
export type KVTable = { readonly table: ReadonlyMap<string, string> };

/** Parses a KVTable body. */
export function parseKVTable(body: Uint8Array | undefined, options?: FastjsonParseOptions): KVTable {
  const what = 'KVTable';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return { table: r.table(obj, 'table', what, (value, path) => r.scalarString(value, path)) };
}

/** Formats a KVTable body. */
export function formatKVTable(value: KVTable): Uint8Array {
  return toBytes(bean({ table: new Map(value.table) }));
}

/** RESET_CONSUMER_CLIENT_OFFSET's body and INVOKE_BROKER_TO_RESET_OFFSET's answer (ResetOffsetBody.java). */
export type ResetOffsetBody = { readonly offsetTable: ReadonlyArray<readonly [MessageQueue, number]> };

/** Parses a ResetOffsetBody. */
export function parseResetOffsetBody(body: Uint8Array | undefined, options?: FastjsonParseOptions): ResetOffsetBody {
  const what = 'ResetOffsetBody';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  return { offsetTable: readQueueTable(r, obj, 'offsetTable', what, (value, path) => r.integerValue(value, path, LONG)) };
}

/** Formats a ResetOffsetBody. */
export function formatResetOffsetBody(value: ResetOffsetBody): Uint8Array {
  const table = new Map<FastjsonInput, FastjsonInput>();
  for (const [mq, offset] of value.offsetTable) table.set(messageQueueJson(mq), offset);
  return toBytes(bean({ offsetTable: table }));
}

// ---------------------------------------------------------------------------------------------------
// Config wrappers (shapes and validation shared with metadata-store.ts)

/** GET_ALL_TOPIC_CONFIG's answer (TopicConfigSerializeWrapper.java): topic -> TopicConfig, and a version. */
export type TopicConfigSerializeWrapper = {
  readonly topicConfigTable: ReadonlyMap<string, TopicConfig>;
  /** Absent only when the sender left it out; Java always writes one. */
  readonly dataVersion: DataVersion | undefined;
};

/** GET_ALL_SUBSCRIPTIONGROUP_CONFIG's answer (SubscriptionGroupWrapper.java). */
export type SubscriptionGroupWrapper = {
  readonly subscriptionGroupTable: ReadonlyMap<string, SubscriptionGroupConfig>;
  /** Group -> topic -> forbidden bits. */
  readonly forbiddenTable: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly dataVersion: DataVersion | undefined;
};

/** The part of a zod schema that readWithSchema uses. */
type SafeParser<T> = {
  safeParse(input: unknown):
    | { success: true; data: T }
    | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
};

/** Validates one entry with a metadata-store schema; zod's first issue becomes the BodyError. */
function readWithSchema<T>(
  r: Reader,
  value: FastjsonValue,
  path: string,
  schema: SafeParser<T>,
): T {
  const plain = toPlainJson(value);
  if (plain === undefined) r.fail(path, 'has an object key that is not a string');
  const result = schema.safeParse(plain);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : `.${issue.path.map(String).join('.')}`;
    return r.fail(`${path}${where}`, issue?.message ?? 'is invalid');
  }
  return result.data;
}

function readDataVersion(r: Reader, obj: FastjsonObject, name: string, path: string): DataVersion | undefined {
  const value = r.get(obj, name);
  return value === undefined ? undefined : readWithSchema(r, value, `${path}.${name}`, dataVersionSchema);
}

function dataVersionJson(version: DataVersion): Map<string, FastjsonInput> {
  return bean({ counter: version.counter, stateVersion: version.stateVersion, timestamp: version.timestamp });
}

/** Parses a TopicConfigSerializeWrapper; each table key must equal its topicName. */
export function parseTopicConfigSerializeWrapper(body: Uint8Array | undefined, options?: FastjsonParseOptions): TopicConfigSerializeWrapper {
  const what = 'TopicConfigSerializeWrapper';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  const topicConfigTable = r.table(obj, 'topicConfigTable', what, (value, path) =>
    readWithSchema(r, value, path, topicConfigSchema),
  );
  for (const [key, config] of topicConfigTable) {
    const path = `${what}.topicConfigTable[${JSON.stringify(key)}]`;
    if (key !== config.topicName) r.fail(path, `holds topic ${JSON.stringify(config.topicName)}`);
  }
  return { topicConfigTable, dataVersion: readDataVersion(r, obj, 'dataVersion', what) };
}

/** Formats a TopicConfigSerializeWrapper (no static-topic mapping tables). */
export function formatTopicConfigSerializeWrapper(value: {
  readonly topicConfigTable: ReadonlyMap<string, TopicConfig>;
  readonly dataVersion: DataVersion;
}): Uint8Array {
  const table = new Map<string, FastjsonInput>();
  for (const [topic, config] of value.topicConfigTable) table.set(topic, beanTree(config));
  return toBytes(bean({ dataVersion: dataVersionJson(value.dataVersion), topicConfigTable: table }));
}

/** One SubscriptionGroupConfig as GET_SUBSCRIPTIONGROUP_CONFIG answers it (JSONObject.toJSONString). */
export function formatSubscriptionGroupConfig(config: SubscriptionGroupConfig): Uint8Array {
  return toBytes(beanTree(config));
}

/** Parses a SubscriptionGroupWrapper; each table key must equal its groupName. */
export function parseSubscriptionGroupWrapper(body: Uint8Array | undefined, options?: FastjsonParseOptions): SubscriptionGroupWrapper {
  const what = 'SubscriptionGroupWrapper';
  const r = new Reader(what);
  const obj = r.object(parseBody(what, body, options), what);
  const subscriptionGroupTable = r.table(obj, 'subscriptionGroupTable', what, (value, path) =>
    readWithSchema(r, value, path, subscriptionGroupConfigSchema),
  );
  for (const [key, config] of subscriptionGroupTable) {
    const path = `${what}.subscriptionGroupTable[${JSON.stringify(key)}]`;
    if (key !== config.groupName) r.fail(path, `holds group ${JSON.stringify(config.groupName)}`);
  }
  const forbiddenTable = r.table(obj, 'forbiddenTable', what, (value, path) =>
    r.tableValue(value, path, (bits, bitsPath) => r.integerValue(bits, bitsPath, INT32)),
  );
  return { subscriptionGroupTable, forbiddenTable, dataVersion: readDataVersion(r, obj, 'dataVersion', what) };
}

/** Formats a SubscriptionGroupWrapper. */
export function formatSubscriptionGroupWrapper(value: {
  readonly subscriptionGroupTable: ReadonlyMap<string, SubscriptionGroupConfig>;
  readonly forbiddenTable: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly dataVersion: DataVersion;
}): Uint8Array {
  const groups = new Map<string, FastjsonInput>();
  for (const [group, config] of value.subscriptionGroupTable) groups.set(group, beanTree(config));
  const forbidden = new Map<string, FastjsonInput>();
  for (const [group, topics] of value.forbiddenTable) forbidden.set(group, new Map(topics));
  const dataVersion = dataVersionJson(value.dataVersion);
  return toBytes(bean({ dataVersion, forbiddenTable: forbidden, subscriptionGroupTable: groups }));
}
