/**
 * The NameServer's request family on the Remoting protocol: the header fields of each code, the JSON
 * bodies, and the parse / format helpers that turn them into typed values. Names and shapes are
 * RocketMQ's own (remoting module, protocol/header/namesrv/*.java and protocol/body, protocol/route), so
 * Java brokers, clients and mqadmin talk to our NameServer unchanged.
 *
 * | code | request                            | request header fields                                  | body in / out                  |
 * |------|------------------------------------|--------------------------------------------------------|--------------------------------|
 * | 100  | PUT_KV_CONFIG                      | namespace, key, value                                  | - / -                          |
 * | 101  | GET_KV_CONFIG                      | namespace, key                                         | - / - (response header value)  |
 * | 102  | DELETE_KV_CONFIG                   | namespace, key                                         | - / -                          |
 * | 103  | REGISTER_BROKER                    | brokerName, brokerAddr, clusterName, haServerAddr,     | RegisterBrokerBody / KVTable   |
 * |      |                                    | brokerId, [heartbeatTimeoutMillis], [enableActingMaster], compressed, bodyCrc32 |   |
 * | 104  | UNREGISTER_BROKER                  | brokerName, brokerAddr, clusterName, brokerId          | - / -                          |
 * | 105  | GET_ROUTEINFO_BY_TOPIC             | topic, [acceptStandardJsonOnly]                        | - / TopicRouteData             |
 * | 106  | GET_BROKER_CLUSTER_INFO            | -                                                      | - / ClusterInfo                |
 * | 205  | WIPE_WRITE_PERM_OF_BROKER          | brokerName                                             | - / - (wipeTopicCount)         |
 * | 206  | GET_ALL_TOPIC_LIST_FROM_NAMESERVER | -                                                      | - / TopicList                  |
 * | 216  | DELETE_TOPIC_IN_NAMESRV            | topic, [clusterName]                                   | - / -                          |
 * | 217  | REGISTER_TOPIC_IN_NAMESRV          | topic                                                  | TopicRouteData / -             |
 * | 219  | GET_KVLIST_BY_NAMESPACE            | namespace                                              | - / KVTable                    |
 * | 224  | GET_TOPICS_BY_CLUSTER              | cluster                                                | - / TopicList                  |
 * | 304  | GET_SYSTEM_TOPIC_LIST_FROM_NS      | -                                                      | - / TopicList                  |
 * | 311-313 | GET_UNIT_TOPIC_LIST and kin     | -                                                      | - / TopicList                  |
 * | 322  | QUERY_DATA_VERSION                 | brokerName, brokerAddr, clusterName, brokerId          | DataVersion / DataVersion      |
 * | 327  | ADD_WRITE_PERM_OF_BROKER           | brokerName                                             | - / - (addTopicCount)          |
 * | 901  | GET_BROKER_MEMBER_GROUP            | clusterName, brokerName                                | - / GetBrokerMemberGroupResponseBody |
 * | 904  | BROKER_HEARTBEAT                   | clusterName, brokerAddr, brokerName, [brokerId, ...]   | - / -                          |
 *
 * Headers travel as strings. RocketMQ's header decoder (RemotingCommand.decodeCommandCustomHeader) logs a
 * missing @CFNotNull field or an unparsable number and leaves the field null; the processor then fails
 * on the null and the server answers SYSTEM_ERROR. We answer SYSTEM_ERROR at once, naming the field.
 * Optional numbers that do not parse are left unset, as RocketMQ leaves them.
 *
 * JSON bodies are UTF-8. Java's fastjson writes maps with numeric keys unquoted (`{0:"1.2.3.4:10911"}`);
 * we read that form and write standard JSON with quoted keys, which fastjson reads back. Objects built
 * from client-chosen names (topics, KV keys) are made with Object.fromEntries, so a name such as
 * `__proto__` is an ordinary key.
 *
 * The compressed RegisterBrokerBody (header `compressed=true`, RegisterBrokerBody.encode(true)) is a zlib
 * stream of big-endian int32-length-prefixed parts:
 *
 * | part                       | content                                                              |
 * |----------------------------|----------------------------------------------------------------------|
 * | int32 n, n bytes           | DataVersion JSON                                                     |
 * | int32 count                | number of topic configs                                              |
 * | count x (int32 n, n bytes) | TopicConfig.encode(): `name read write perm filterType attributesJson` |
 * | int32 n, n bytes           | filterServerList JSON array                                          |
 * | int32 count, entries       | topic queue mappings (read only from brokers of version 5.0.0 on)   |
 *
 * That text form carries neither topicSysFlag nor order; a compressed registration reports them as 0.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import type { DataVersion } from '../../storage/metadata-store.ts';
import { parseFastjson } from '../../storage/metadata-store.ts';

export type { DataVersion } from '../../storage/metadata-store.ts';

// ---------------------------------------------------------------------------------------------------------
// Constants.

/** MQVersion.Version ordinals at which the NameServer's behaviour changes (MQVersion.java). */
export const MQVersionOrdinal = {
  /** From here on REGISTER_BROKER carries a RegisterBrokerBody; before, a bare TopicConfigSerializeWrapper. */
  V3_0_11: 37,
  /** Clients from here on get standard JSON routes (ClientRequestProcessor); we always write it. */
  V4_9_4: 401,
  /** Compressed registrations from here on end with topic queue mappings. */
  V5_0_0: 413,
  /** The version this implementation announces (MQVersion.CURRENT_VERSION). */
  V5_3_3: 479,
} as const;

/** Well-known names from RocketMQ (MixAll, TopicValidator, NamesrvUtil). */
export const NamesrvNames = {
  /** The topic whose route producers use as the template for auto-created topics (TopicValidator). */
  AUTO_CREATE_TOPIC_KEY_TOPIC: 'TBW102',
  /** KV namespace holding order-topic configs; returned to brokers on registration (NamesrvUtil). */
  NAMESPACE_ORDER_TOPIC_CONFIG: 'ORDER_TOPIC_CONFIG',
  /** Prefix of system topics (TopicValidator.SYSTEM_TOPIC_PREFIX). */
  SYSTEM_TOPIC_PREFIX: 'rmq_sys_',
  /** Topics that route to a broker's replica group; never rewritten for an acting master. */
  SYNC_BROKER_MEMBER_GROUP_PREFIX: 'rmq_sys_SYNC_BROKER_MEMBER_',
  /** Extension field naming a broker's zone on REGISTER_BROKER (MixAll.ZONE_NAME). */
  ZONE_NAME_FIELD: '__ZONE_NAME',
} as const;

/** brokerId of a master (MixAll.MASTER_ID); slaves have larger ids. */
export const MASTER_ID = 0;

/** Permission bits of a topic or queue (PermName.java). */
export const PermName = {
  PERM_PRIORITY: 1 << 3,
  PERM_READ: 1 << 2,
  PERM_WRITE: 1 << 1,
  PERM_INHERIT: 1 << 0,
} as const;

/** topicSysFlag bits (TopicSysFlag.java). */
export const TopicSysFlag = {
  FLAG_UNIT: 1 << 0,
  FLAG_UNIT_SUB: 1 << 1,
} as const;

/** TopicConfig's defaults, used for fields a registration leaves out (TopicConfig.java). */
export const TOPIC_CONFIG_DEFAULTS = {
  readQueueNums: 16,
  writeQueueNums: 16,
  perm: PermName.PERM_READ | PermName.PERM_WRITE,
  topicSysFlag: 0,
} as const;

// ---------------------------------------------------------------------------------------------------------
// Errors.

/** A request the NameServer cannot decode; answered SYSTEM_ERROR with the message as remark. */
export class NamesrvRequestError extends Error {
  /** Stable machine-readable code. */
  readonly code = 'NAMESRV_BAD_REQUEST';
  override readonly name = 'NamesrvRequestError';
}

function bad(message: string): NamesrvRequestError {
  return new NamesrvRequestError(message);
}

// ---------------------------------------------------------------------------------------------------------
// Headers.

type FieldKind = 'string' | 'long' | 'int' | 'boolean';
type FieldSpec = { readonly kind: FieldKind; readonly required: boolean };
type HeaderSpec = Readonly<Record<string, FieldSpec>>;
type ValueOfKind<K extends FieldKind> = K extends 'string' ? string : K extends 'boolean' ? boolean : number;
type RequiredKeys<S extends HeaderSpec> = { [F in keyof S]: S[F]['required'] extends true ? F : never }[keyof S];
type OptionalKeys<S extends HeaderSpec> = Exclude<keyof S, RequiredKeys<S>>;

/** The typed header a spec describes: required fields present, optional ones possibly absent. */
export type HeaderOf<S extends HeaderSpec> = { [F in RequiredKeys<S>]: ValueOfKind<S[F]['kind']> } & {
  [F in OptionalKeys<S>]?: ValueOfKind<S[F]['kind']>;
};

function required<const K extends FieldKind>(kind: K): { readonly kind: K; readonly required: true } {
  return { kind, required: true };
}

function optional<const K extends FieldKind>(kind: K): { readonly kind: K; readonly required: false } {
  return { kind, required: false };
}

/** Header fields of every NameServer request and response, by RocketMQ's field names. */
export const NamesrvHeaders = {
  putKVConfig: { namespace: required('string'), key: required('string'), value: required('string') },
  getKVConfig: { namespace: required('string'), key: required('string') },
  getKVConfigResponse: { value: optional('string') },
  deleteKVConfig: { namespace: required('string'), key: required('string') },
  registerBroker: {
    brokerName: required('string'),
    brokerAddr: required('string'),
    clusterName: required('string'),
    haServerAddr: required('string'),
    brokerId: required('long'),
    heartbeatTimeoutMillis: optional('long'),
    enableActingMaster: optional('boolean'),
    compressed: optional('boolean'),
    bodyCrc32: optional('int'),
  },
  registerBrokerResponse: { haServerAddr: optional('string'), masterAddr: optional('string') },
  unregisterBroker: {
    brokerName: required('string'),
    brokerAddr: required('string'),
    clusterName: required('string'),
    brokerId: required('long'),
  },
  brokerHeartbeat: {
    clusterName: required('string'),
    brokerAddr: required('string'),
    brokerName: required('string'),
    brokerId: optional('long'),
    epoch: optional('int'),
    maxOffset: optional('long'),
    confirmOffset: optional('long'),
    heartbeatTimeoutMills: optional('long'),
    electionPriority: optional('int'),
  },
  getRouteInfo: { topic: required('string'), acceptStandardJsonOnly: optional('boolean') },
  wipeWritePermOfBroker: { brokerName: required('string') },
  wipeWritePermOfBrokerResponse: { wipeTopicCount: required('int') },
  addWritePermOfBroker: { brokerName: required('string') },
  addWritePermOfBrokerResponse: { addTopicCount: required('int') },
  deleteTopicFromNamesrv: { topic: required('string'), clusterName: optional('string') },
  registerTopic: { topic: required('string') },
  getKVListByNamespace: { namespace: required('string') },
  getTopicsByCluster: { cluster: required('string') },
  queryDataVersion: {
    brokerName: required('string'),
    brokerAddr: required('string'),
    clusterName: required('string'),
    brokerId: required('long'),
  },
  queryDataVersionResponse: { changed: required('boolean') },
  getBrokerMemberGroup: { clusterName: required('string'), brokerName: required('string') },
} as const satisfies Record<string, HeaderSpec>;

const longPattern = /^[+-]?\d{1,19}$/;
const int32Min = -(2 ** 31);
const int32Max = 2 ** 31 - 1;

/** Parses a Java long (Long.parseLong); undefined when it is not one or exceeds 2^53. */
function parseLong(text: string): number | undefined {
  if (!longPattern.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Parses a Java int (Integer.parseInt); undefined when it is not one. */
function parseInt32(text: string): number | undefined {
  const value = parseLong(text);
  return value !== undefined && value >= int32Min && value <= int32Max ? value : undefined;
}

function parseField(kind: FieldKind, text: string): string | number | boolean | undefined {
  switch (kind) {
    case 'string':
      return text;
    case 'long':
      return parseLong(text);
    case 'int':
      return parseInt32(text);
    case 'boolean':
      // Boolean.parseBoolean: "true" in any case is true, anything else false.
      return text.toLowerCase() === 'true';
  }
}

/** Reads a header from a command's extFields; throws NamesrvRequestError for a missing required field. */
export function decodeHeader<const S extends HeaderSpec>(spec: S, extFields: Readonly<Record<string, string>>): HeaderOf<S> {
  const entries: [string, string | number | boolean][] = [];
  for (const [name, field] of Object.entries(spec)) {
    const text = Object.hasOwn(extFields, name) ? extFields[name] : undefined;
    if (typeof text !== 'string') {
      if (field.required) throw bad(`the custom field <${name}> is null`);
      continue;
    }
    const value = parseField(field.kind, text);
    if (value === undefined) {
      if (field.required) throw bad(`the custom field <${name}> is not a valid ${field.kind}: ${JSON.stringify(text)}`);
      continue;
    }
    entries.push([name, value]);
  }
  return Object.fromEntries(entries) as HeaderOf<S>;
}

/** Writes a header as extFields strings; absent optional fields are left out, as RocketMQ leaves nulls out. */
export function encodeHeader<const S extends HeaderSpec>(spec: S, header: HeaderOf<S>): Record<string, string> {
  const entries: [string, string][] = [];
  const values = header as Readonly<Record<string, unknown>>;
  for (const name of Object.keys(spec)) {
    const value = values[name];
    if (value !== undefined) entries.push([name, String(value)]);
  }
  return Object.fromEntries(entries);
}

/** A REGISTER_BROKER request header. */
export type RegisterBrokerRequestHeader = HeaderOf<typeof NamesrvHeaders.registerBroker>;
/** An UNREGISTER_BROKER request header. */
export type UnregisterBrokerRequestHeader = HeaderOf<typeof NamesrvHeaders.unregisterBroker>;

/** RocketMQ's body checksum (UtilAll.crc32): CRC-32 of the bytes with the sign bit cleared; 0 for none. */
export function bodyCrc32(body: Uint8Array | undefined): number {
  return body === undefined ? 0 : crc32(body) & 0x7fffffff;
}

// ---------------------------------------------------------------------------------------------------------
// Body shapes.

/** One topic as a broker registers it: the TopicConfig fields the route table keeps. */
export type RegisteredTopicConfig = {
  readonly topicName: string;
  readonly readQueueNums: number;
  readonly writeQueueNums: number;
  readonly perm: number;
  readonly topicSysFlag: number;
};

/** A decoded REGISTER_BROKER body (RegisterBrokerBody, or a bare TopicConfigSerializeWrapper from old brokers). */
export type RegisterBrokerBody = {
  /** topicConfigTable's values in body order; a later entry for the same topic wins. */
  readonly topicConfigs: readonly RegisteredTopicConfig[];
  readonly dataVersion: DataVersion;
  /** Undefined when the body carries no list (brokers before 3.0.11): the stored list is left as it is. */
  readonly filterServerList: readonly string[] | undefined;
  /** Whether the broker reported static-topic queue mappings (they stop deleteTopicWithBrokerRegistration). */
  readonly hasQueueMappings: boolean;
};

/** A broker group's share of a topic (QueueData.java). */
export type QueueData = {
  readonly brokerName: string;
  readonly readQueueNums: number;
  readonly writeQueueNums: number;
  readonly perm: number;
  readonly topicSysFlag: number;
};

/** A broker group: its cluster, name and addresses by brokerId (BrokerData.java). */
export type BrokerData = {
  readonly cluster: string;
  readonly brokerName: string;
  /** brokerId (decimal string) to `ip:port`. */
  readonly brokerAddrs: Readonly<Record<string, string>>;
  readonly enableActingMaster: boolean;
  readonly zoneName?: string;
};

/** A topic's route (TopicRouteData.java). */
export type TopicRouteData = {
  readonly orderTopicConf?: string;
  readonly queueDatas: readonly QueueData[];
  readonly brokerDatas: readonly BrokerData[];
  /** brokerAddr to its filter servers. */
  readonly filterServerTable: Readonly<Record<string, readonly string[]>>;
};

/** Every broker group and cluster (ClusterInfo.java). */
export type ClusterInfo = {
  readonly brokerAddrTable: Readonly<Record<string, BrokerData>>;
  readonly clusterAddrTable: Readonly<Record<string, readonly string[]>>;
};

/** A set of topic names, sometimes with one broker address (TopicList.java). */
export type TopicList = { readonly topicList: readonly string[]; readonly brokerAddr?: string };

/** One KV namespace (KVTable.java). */
export type KVTable = { readonly table: Readonly<Record<string, string>> };

/** A broker group's members (BrokerMemberGroup inside GetBrokerMemberGroupResponseBody). */
export type BrokerMemberGroup = {
  readonly cluster: string;
  readonly brokerName: string;
  readonly brokerAddrs: Readonly<Record<string, string>>;
};

// ---------------------------------------------------------------------------------------------------------
// JSON reading.

const utf8 = new TextDecoder('utf-8');

/** Parses a JSON body as fastjson writes it; throws NamesrvRequestError naming `what`. */
export function parseJsonBody(body: Uint8Array, what: string): unknown {
  try {
    return parseFastjson(utf8.decode(body));
  } catch (error) {
    throw bad(`Failed to decode ${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectAt(value: unknown, what: string): Record<string, unknown> {
  if (!isObject(value)) throw bad(`${what} is not a JSON object`);
  return value;
}

function ownField(object: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

function integerField(object: Record<string, unknown>, name: string, fallback: number, what: string, int32: boolean): number {
  const value = ownField(object, name);
  if (value === undefined || value === null) return fallback;
  const ok = typeof value === 'number' && Number.isSafeInteger(value) && (!int32 || (value >= int32Min && value <= int32Max));
  if (!ok) throw bad(`${what}.${name} is not ${int32 ? 'an int' : 'a long'}: ${JSON.stringify(value)}`);
  return value;
}

function stringList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw bad(`${what} is not a list of strings`);
  return value;
}

/** Reads a DataVersion object; absent fields take DataVersion's defaults (timestamp: now). */
export function readDataVersion(value: unknown, nowMs: number, what = 'dataVersion'): DataVersion {
  if (value === undefined || value === null) return { timestamp: nowMs, counter: 0, stateVersion: 0 };
  const object = objectAt(value, what);
  return {
    timestamp: integerField(object, 'timestamp', nowMs, what, false),
    counter: integerField(object, 'counter', 0, what, false),
    stateVersion: integerField(object, 'stateVersion', 0, what, false),
  };
}

function readTopicConfig(key: string, value: unknown): RegisteredTopicConfig {
  const what = `topicConfigTable[${JSON.stringify(key)}]`;
  const object = objectAt(value, what);
  const name = ownField(object, 'topicName');
  // RocketMQ files the queue data under the value's topicName; a value without one falls back to its key.
  const topicName = typeof name === 'string' && name.length > 0 ? name : key;
  return {
    topicName,
    readQueueNums: integerField(object, 'readQueueNums', TOPIC_CONFIG_DEFAULTS.readQueueNums, what, true),
    writeQueueNums: integerField(object, 'writeQueueNums', TOPIC_CONFIG_DEFAULTS.writeQueueNums, what, true),
    perm: integerField(object, 'perm', TOPIC_CONFIG_DEFAULTS.perm, what, true),
    topicSysFlag: integerField(object, 'topicSysFlag', TOPIC_CONFIG_DEFAULTS.topicSysFlag, what, true),
  };
}

/** Reads a TopicConfigSerializeWrapper object (topicConfigTable, dataVersion, and the mapping extension). */
function readTopicConfigWrapper(value: unknown, nowMs: number): Omit<RegisterBrokerBody, 'filterServerList'> {
  if (value === undefined || value === null) return { topicConfigs: [], dataVersion: readDataVersion(undefined, nowMs), hasQueueMappings: false };
  const wrapper = objectAt(value, 'topicConfigSerializeWrapper');
  const table = ownField(wrapper, 'topicConfigTable');
  const topicConfigs: RegisteredTopicConfig[] = [];
  if (table !== undefined && table !== null) {
    for (const [key, config] of Object.entries(objectAt(table, 'topicConfigTable'))) topicConfigs.push(readTopicConfig(key, config));
  }
  const mappings = ownField(wrapper, 'topicQueueMappingInfoMap');
  return {
    topicConfigs,
    dataVersion: readDataVersion(ownField(wrapper, 'dataVersion'), nowMs),
    hasQueueMappings: isObject(mappings) && Object.keys(mappings).length > 0,
  };
}

// ---------------------------------------------------------------------------------------------------------
// REGISTER_BROKER body.

/** How to read a REGISTER_BROKER body. */
export type RegisterBrokerBodyOptions = {
  /** The header's `compressed` flag. */
  readonly compressed: boolean;
  /** The request's MQVersion ordinal. */
  readonly version: number;
  /** Time for DataVersion's default timestamp. */
  readonly nowMs: number;
  /** Largest inflated size of a compressed body. */
  readonly inflatedBytesMax: number;
};

/**
 * Decodes a REGISTER_BROKER body the way DefaultRequestProcessor does: none means an empty table with
 * a zero DataVersion; brokers from 3.0.11 on send a RegisterBrokerBody, older ones a bare wrapper. A
 * client that announces an older version but sends a RegisterBrokerBody (it has the
 * `topicConfigSerializeWrapper` key, which a bare wrapper never has) is read as one rather than
 * silently registering no topics.
 */
export function decodeRegisterBrokerBody(body: Uint8Array | undefined, options: RegisterBrokerBodyOptions): RegisterBrokerBody {
  const modern = options.version >= MQVersionOrdinal.V3_0_11;
  if (body === undefined || body.length === 0) {
    return { topicConfigs: [], dataVersion: { timestamp: 0, counter: 0, stateVersion: 0 }, filterServerList: modern ? [] : undefined, hasQueueMappings: false };
  }
  if (options.compressed && modern) return decodeCompressedBody(body, options);
  const root = objectAt(parseJsonBody(body, 'RegisterBrokerBody'), 'RegisterBrokerBody');
  if (modern || Object.hasOwn(root, 'topicConfigSerializeWrapper')) {
    const list = ownField(root, 'filterServerList');
    const filterServerList = list === undefined || list === null ? [] : stringList(list, 'filterServerList');
    return { ...readTopicConfigWrapper(ownField(root, 'topicConfigSerializeWrapper'), options.nowMs), filterServerList };
  }
  return { ...readTopicConfigWrapper(root, options.nowMs), filterServerList: undefined };
}

/** Sequential reader over an inflated compressed body; every read is bounds-checked. */
class PartReader {
  private offset = 0;
  private readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  int32(what: string): number {
    if (this.bytes.length - this.offset < 4) throw bad(`Failed to decode RegisterBrokerBody: compressed body ends before ${what}`);
    const value = this.bytes.readInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  text(what: string): string {
    const length = this.int32(`the length of ${what}`);
    if (length < 0 || length > this.bytes.length - this.offset) {
      throw bad(`Failed to decode RegisterBrokerBody: ${what} claims ${length} bytes, ${this.bytes.length - this.offset} left`);
    }
    const text = this.bytes.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return text;
  }

  /** Bytes not yet read. */
  remaining(): number {
    return this.bytes.length - this.offset;
  }
}

function decodeCompressedBody(body: Uint8Array, options: RegisterBrokerBodyOptions): RegisterBrokerBody {
  let raw: Buffer;
  try {
    raw = inflateSync(body, { maxOutputLength: options.inflatedBytesMax });
  } catch (error) {
    throw bad(`Failed to decode RegisterBrokerBody: ${error instanceof Error ? error.message : String(error)}`);
  }
  const reader = new PartReader(raw);
  const dataVersion = readDataVersion(parseJsonText(reader.text('dataVersion'), 'dataVersion'), options.nowMs);
  const count = reader.int32('the topic count');
  // Each topic needs at least its 4-byte length, which bounds the loop by the inflated size.
  if (count < 0 || count > reader.remaining() / 4) throw bad(`Failed to decode RegisterBrokerBody: bad topic count ${count}`);
  const topicConfigs: RegisteredTopicConfig[] = [];
  for (let i = 0; i < count; i++) topicConfigs.push(decodeTopicConfigText(reader.text(`topic config ${i}`)));
  const filterText = reader.text('filterServerList');
  let filterServerList: string[] | undefined = [];
  try {
    const list: unknown = JSON.parse(filterText);
    filterServerList = list === null ? undefined : stringList(list, 'filterServerList');
  } catch {
    // RocketMQ logs a bad filter server list and goes on with an empty one.
    filterServerList = [];
  }
  let hasQueueMappings = false;
  if (options.version >= MQVersionOrdinal.V5_0_0) {
    const mappings = reader.int32('the mapping count');
    if (mappings < 0 || mappings > reader.remaining() / 4) throw bad(`Failed to decode RegisterBrokerBody: bad mapping count ${mappings}`);
    for (let i = 0; i < mappings; i++) reader.text(`topic queue mapping ${i}`);
    hasQueueMappings = mappings > 0;
  }
  return { topicConfigs, dataVersion, filterServerList, hasQueueMappings };
}

function parseJsonText(text: string, what: string): unknown {
  try {
    return parseFastjson(text);
  } catch (error) {
    throw bad(`Failed to decode RegisterBrokerBody: ${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const topicFilterTypes = new Set(['SINGLE_TAG', 'MULTI_TAG']);

/** Reads TopicConfig.encode()'s text: space-separated name, read, write, perm, filter type, attributes. */
export function decodeTopicConfigText(text: string): RegisteredTopicConfig {
  const parts = text.split(' ');
  // Java's String.split drops trailing empty strings.
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  const fail = (why: string): NamesrvRequestError => bad(`Failed to decode RegisterBrokerBody: topic config ${JSON.stringify(text)} ${why}`);
  if (parts.length < 5) throw fail('has fewer than 5 fields');
  const [topicName, read, write, perm, filterType] = parts as [string, string, string, string, string];
  const readQueueNums = parseInt32(read);
  const writeQueueNums = parseInt32(write);
  const permValue = parseInt32(perm);
  if (readQueueNums === undefined || writeQueueNums === undefined || permValue === undefined) throw fail('has a field that is not an int');
  if (!topicFilterTypes.has(filterType)) throw fail(`has an unknown topicFilterType ${filterType}`);
  return { topicName, readQueueNums, writeQueueNums, perm: permValue, topicSysFlag: 0 };
}

/** What a broker sends in REGISTER_BROKER; the inverse of decodeRegisterBrokerBody. */
export type RegisterBrokerBodyInit = {
  readonly topicConfigs: readonly RegisteredTopicConfig[];
  readonly dataVersion: DataVersion;
  readonly filterServerList?: readonly string[];
};

/** Encodes a RegisterBrokerBody as JSON, with every TopicConfig field a Java broker writes. */
export function encodeRegisterBrokerBody(init: RegisterBrokerBodyInit): Uint8Array {
  const topicConfigTable = Object.fromEntries(
    init.topicConfigs.map((config) => [
      config.topicName,
      {
        attributes: {},
        order: false,
        perm: config.perm,
        readQueueNums: config.readQueueNums,
        topicFilterType: 'SINGLE_TAG',
        topicName: config.topicName,
        topicSysFlag: config.topicSysFlag,
        writeQueueNums: config.writeQueueNums,
      },
    ]),
  );
  return encodeJsonBody({
    filterServerList: init.filterServerList ?? [],
    topicConfigSerializeWrapper: { dataVersion: init.dataVersion, topicConfigTable },
  });
}

/** Encodes a RegisterBrokerBody in RocketMQ's compressed form (RegisterBrokerBody.encode(true)). */
export function encodeCompressedRegisterBrokerBody(init: RegisterBrokerBodyInit): Uint8Array {
  const parts: Buffer[] = [];
  const pushInt = (value: number): void => {
    const word = Buffer.alloc(4);
    word.writeInt32BE(value);
    parts.push(word);
  };
  const pushText = (text: string): void => {
    const bytes = Buffer.from(text, 'utf8');
    pushInt(bytes.length);
    parts.push(bytes);
  };
  pushText(JSON.stringify(init.dataVersion));
  pushInt(init.topicConfigs.length);
  for (const config of init.topicConfigs) {
    pushText(`${config.topicName} ${config.readQueueNums} ${config.writeQueueNums} ${config.perm} SINGLE_TAG {}`);
  }
  pushText(JSON.stringify(init.filterServerList ?? []));
  // The mapping count, written by every 5.x broker; no static topics here.
  pushInt(0);
  return deflateSync(Buffer.concat(parts), { level: 9 });
}

// ---------------------------------------------------------------------------------------------------------
// Other bodies.

/** Encodes any body as UTF-8 JSON. */
export function encodeJsonBody(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** Reads REGISTER_TOPIC_IN_NAMESRV's body: a TopicRouteData of which only queueDatas is used. */
export function decodeRegisterTopicBody(body: Uint8Array | undefined): QueueData[] {
  if (body === undefined || body.length === 0) throw bad('Failed to decode TopicRouteData: no body');
  const root = objectAt(parseJsonBody(body, 'TopicRouteData'), 'TopicRouteData');
  const list = ownField(root, 'queueDatas');
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw bad('queueDatas is not a list');
  return list.map((item, index) => {
    const what = `queueDatas[${index}]`;
    const object = objectAt(item, what);
    const brokerName = ownField(object, 'brokerName');
    if (typeof brokerName !== 'string') throw bad(`${what}.brokerName is not a string`);
    return {
      brokerName,
      readQueueNums: integerField(object, 'readQueueNums', 0, what, true),
      writeQueueNums: integerField(object, 'writeQueueNums', 0, what, true),
      perm: integerField(object, 'perm', 0, what, true),
      topicSysFlag: integerField(object, 'topicSysFlag', 0, what, true),
    };
  });
}

/** Reads QUERY_DATA_VERSION's body: the broker's DataVersion. */
export function decodeDataVersionBody(body: Uint8Array | undefined, nowMs: number): DataVersion {
  if (body === undefined || body.length === 0) throw bad('Failed to decode DataVersion: no body');
  return readDataVersion(parseJsonBody(body, 'DataVersion'), nowMs);
}

/** Reads a body as one of the JSON shapes above; for clients and tests. */
export function decodeJsonBody<T>(body: Uint8Array | undefined, what: string): T {
  if (body === undefined) throw bad(`${what}: no body`);
  return parseJsonBody(body, what) as T;
}
