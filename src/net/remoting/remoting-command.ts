/**
 * RocketMQ's classic Remoting command: the one message shape that every NameServer and Broker request
 * and response travels in, plus the code tables that give its `code` field meaning.
 *
 * The wire format itself lives in `codec.ts`. The tables below were checked against
 * apache/rocketmq at commit 8fc57f1468d182eea11c01e089c0250d647dc5f3 (September 2025):
 * `RequestCode.java`, `RemotingSysResponseCode.java`, `ResponseCode.java`, `LanguageCode.java`,
 * `SerializeType.java` and the flag bits of `RemotingCommand.java`.
 */

/** Header serializations, by the number the high byte of a frame's header-length word carries. */
export const SerializeType = {
  JSON: 0,
  ROCKETMQ: 1,
} as const;

/** Name of a header serialization; JSON headers spell it this way in `serializeTypeCurrentRPC`. */
export type SerializeTypeName = keyof typeof SerializeType;

/** Client languages: JSON headers carry the name, ROCKETMQ headers the one-byte number. */
export const LanguageCode = {
  JAVA: 0,
  CPP: 1,
  DOTNET: 2,
  PYTHON: 3,
  DELPHI: 4,
  ERLANG: 5,
  RUBY: 6,
  OTHER: 7,
  HTTP: 8,
  GO: 9,
  PHP: 10,
  OMS: 11,
  RUST: 12,
  NODE_JS: 13,
} as const;

/** Name of a client language, as JSON headers carry it. */
export type LanguageName = keyof typeof LanguageCode;

const languageNamesByCode: ReadonlyMap<number, LanguageName> = new Map(
  (Object.entries(LanguageCode) as [LanguageName, number][]).map(([name, code]) => [code, name]),
);

/** The language name for a wire byte, or undefined when RocketMQ defines no such language. */
export function languageNameOf(code: number): LanguageName | undefined {
  return languageNamesByCode.get(code);
}

/** Whether a string is one of RocketMQ's language names. */
export function isLanguageName(name: string): name is LanguageName {
  return Object.hasOwn(LanguageCode, name);
}

/**
 * Bits of a command's `flag`. Bit 0 (RocketMQ's RPC_TYPE) marks a response; bit 1 (RPC_ONEWAY) marks a
 * request whose sender expects no response. Other bits are carried through untouched.
 */
export const RpcFlag = {
  RESPONSE: 1 << 0,
  ONEWAY: 1 << 1,
} as const;

/** One decoded or to-be-encoded Remoting command. */
export type RemotingCommand = {
  /** Request code for requests, response code for responses; see RequestCode and ResponseCode. */
  code: number;
  /** Language of the sender; servers answer with JAVA like the reference broker. */
  language: LanguageName;
  /** Sender's RocketMQ version ordinal (MQVersion.Version), 0 when unset. */
  version: number;
  /** Request id chosen by the requester; the response carries the same value back. */
  opaque: number;
  /** RpcFlag bits. */
  flag: number;
  /** Free text, usually an error description on responses. */
  remark?: string;
  /** The request- or response-specific header fields, always as strings, as RocketMQ keeps them. */
  extFields: Record<string, string>;
  /** Payload after the header. A decoded body is a view into the received bytes, not a copy. */
  body?: Uint8Array;
  /** Header serialization this command was received in, or is to be sent in. */
  serializeType: SerializeTypeName;
};

/** Whether a command is a response (flag bit 0). */
export function isResponse(cmd: Pick<RemotingCommand, 'flag'>): boolean {
  return (cmd.flag & RpcFlag.RESPONSE) !== 0;
}

/** Whether a command is a oneway request (flag bit 1): the sender expects no response. */
export function isOneway(cmd: Pick<RemotingCommand, 'flag'>): boolean {
  return (cmd.flag & RpcFlag.ONEWAY) !== 0;
}

/** A flag with the response bit set. */
export function markResponse(flag: number): number {
  return flag | RpcFlag.RESPONSE;
}

/** A flag with the oneway bit set. */
export function markOneway(flag: number): number {
  return flag | RpcFlag.ONEWAY;
}

/** What a caller supplies to build a request; everything but code and opaque has RocketMQ's default. */
export type RequestInit = {
  code: number;
  opaque: number;
  oneway?: boolean;
  remark?: string;
  extFields?: Record<string, string>;
  body?: Uint8Array;
  language?: LanguageName;
  version?: number;
  serializeType?: SerializeTypeName;
};

/** Builds a request command. The caller owns opaque allocation; this module keeps no counter. */
export function createRequest(init: RequestInit): RemotingCommand {
  const cmd: RemotingCommand = {
    code: init.code,
    language: init.language ?? 'JAVA',
    version: init.version ?? 0,
    opaque: init.opaque,
    flag: init.oneway === true ? RpcFlag.ONEWAY : 0,
    extFields: init.extFields ?? {},
    serializeType: init.serializeType ?? 'JSON',
  };
  if (init.remark !== undefined) cmd.remark = init.remark;
  if (init.body !== undefined) cmd.body = init.body;
  return cmd;
}

/** Optional parts of a response beyond its code and remark. */
export type ResponseInit = {
  extFields?: Record<string, string>;
  body?: Uint8Array;
  language?: LanguageName;
  version?: number;
};

/**
 * Builds the response to a request: same opaque, response flag set, and the request's serialization, so
 * a client that spoke ROCKETMQ is answered in ROCKETMQ. (The Java broker answers in its own configured
 * serialization instead; either works because every frame names its serialization.) RocketMQ sends no
 * response to a oneway request; callers check isOneway before sending.
 */
export function createResponse(
  request: Pick<RemotingCommand, 'opaque' | 'serializeType'>,
  code: number,
  remark?: string,
  init: ResponseInit = {},
): RemotingCommand {
  const cmd: RemotingCommand = {
    code,
    language: init.language ?? 'JAVA',
    version: init.version ?? 0,
    opaque: request.opaque,
    flag: RpcFlag.RESPONSE,
    extFields: init.extFields ?? {},
    serializeType: request.serializeType,
  };
  if (remark !== undefined) cmd.remark = remark;
  if (init.body !== undefined) cmd.body = init.body;
  return cmd;
}

/** The answer RocketMQ gives to a request code nobody handles, remark text included. */
export function createNotSupportedResponse(
  request: Pick<RemotingCommand, 'code' | 'opaque' | 'serializeType'>,
): RemotingCommand {
  return createResponse(request, ResponseCode.REQUEST_CODE_NOT_SUPPORTED, ` request type ${request.code} not supported`);
}

/**
 * Request codes, verbatim from RocketMQ's RequestCode.java. Values above 32767 (the POP family) do not fit
 * the ROCKETMQ binary header's 16-bit code, which Java silently truncates; such requests only work in JSON.
 */
export const RequestCode = {
  // Produce, consume and broker queries (broker port).
  SEND_MESSAGE: 10,
  PULL_MESSAGE: 11,
  QUERY_MESSAGE: 12,
  QUERY_BROKER_OFFSET: 13,
  QUERY_CONSUMER_OFFSET: 14,
  UPDATE_CONSUMER_OFFSET: 15,
  UPDATE_AND_CREATE_TOPIC: 17,
  UPDATE_AND_CREATE_TOPIC_LIST: 18,
  GET_ALL_TOPIC_CONFIG: 21,
  GET_TOPIC_CONFIG_LIST: 22,
  GET_TOPIC_NAME_LIST: 23,
  UPDATE_BROKER_CONFIG: 25,
  GET_BROKER_CONFIG: 26,
  TRIGGER_DELETE_FILES: 27,
  GET_BROKER_RUNTIME_INFO: 28,
  SEARCH_OFFSET_BY_TIMESTAMP: 29,
  GET_MAX_OFFSET: 30,
  GET_MIN_OFFSET: 31,
  GET_EARLIEST_MSG_STORETIME: 32,
  VIEW_MESSAGE_BY_ID: 33,
  HEART_BEAT: 34,
  UNREGISTER_CLIENT: 35,
  CONSUMER_SEND_MSG_BACK: 36,
  END_TRANSACTION: 37,
  GET_CONSUMER_LIST_BY_GROUP: 38,
  CHECK_TRANSACTION_STATE: 39,
  NOTIFY_CONSUMER_IDS_CHANGED: 40,
  LOCK_BATCH_MQ: 41,
  UNLOCK_BATCH_MQ: 42,
  GET_ALL_CONSUMER_OFFSET: 43,
  GET_ALL_DELAY_OFFSET: 45,
  CHECK_CLIENT_CONFIG: 46,
  GET_CLIENT_CONFIG: 47,
  GET_TIMER_CHECK_POINT: 60,
  GET_TIMER_METRICS: 61,

  // POP consumption (5.x). POP codes exceed 16 bits, so they only fit JSON headers.
  POP_MESSAGE: 200050,
  ACK_MESSAGE: 200051,
  BATCH_ACK_MESSAGE: 200151,
  PEEK_MESSAGE: 200052,
  CHANGE_MESSAGE_INVISIBLETIME: 200053,
  NOTIFICATION: 200054,
  POLLING_INFO: 200055,
  POP_ROLLBACK: 200056,

  // NameServer KV config, broker registration and routing.
  PUT_KV_CONFIG: 100,
  GET_KV_CONFIG: 101,
  DELETE_KV_CONFIG: 102,
  REGISTER_BROKER: 103,
  UNREGISTER_BROKER: 104,
  GET_ROUTEINFO_BY_TOPIC: 105,
  GET_BROKER_CLUSTER_INFO: 106,

  // Administration (mqadmin) and client callbacks.
  UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: 200,
  GET_ALL_SUBSCRIPTIONGROUP_CONFIG: 201,
  GET_TOPIC_STATS_INFO: 202,
  GET_CONSUMER_CONNECTION_LIST: 203,
  GET_PRODUCER_CONNECTION_LIST: 204,
  WIPE_WRITE_PERM_OF_BROKER: 205,
  GET_ALL_TOPIC_LIST_FROM_NAMESERVER: 206,
  DELETE_SUBSCRIPTIONGROUP: 207,
  GET_CONSUME_STATS: 208,
  SUSPEND_CONSUMER: 209,
  RESUME_CONSUMER: 210,
  RESET_CONSUMER_OFFSET_IN_CONSUMER: 211,
  RESET_CONSUMER_OFFSET_IN_BROKER: 212,
  ADJUST_CONSUMER_THREAD_POOL: 213,
  WHO_CONSUME_THE_MESSAGE: 214,
  DELETE_TOPIC_IN_BROKER: 215,
  DELETE_TOPIC_IN_NAMESRV: 216,
  REGISTER_TOPIC_IN_NAMESRV: 217,
  GET_KVLIST_BY_NAMESPACE: 219,
  RESET_CONSUMER_CLIENT_OFFSET: 220,
  GET_CONSUMER_STATUS_FROM_CLIENT: 221,
  INVOKE_BROKER_TO_RESET_OFFSET: 222,
  INVOKE_BROKER_TO_GET_CONSUMER_STATUS: 223,
  QUERY_TOPIC_CONSUME_BY_WHO: 300,
  GET_TOPICS_BY_CLUSTER: 224,
  UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST: 225,
  QUERY_TOPICS_BY_CONSUMER: 343,
  QUERY_SUBSCRIPTION_BY_CONSUMER: 345,
  REGISTER_FILTER_SERVER: 301,
  REGISTER_MESSAGE_FILTER_CLASS: 302,
  QUERY_CONSUME_TIME_SPAN: 303,
  GET_SYSTEM_TOPIC_LIST_FROM_NS: 304,
  GET_SYSTEM_TOPIC_LIST_FROM_BROKER: 305,
  CLEAN_EXPIRED_CONSUMEQUEUE: 306,
  GET_CONSUMER_RUNNING_INFO: 307,
  QUERY_CORRECTION_OFFSET: 308,
  CONSUME_MESSAGE_DIRECTLY: 309,
  SEND_MESSAGE_V2: 310,
  GET_UNIT_TOPIC_LIST: 311,
  GET_HAS_UNIT_SUB_TOPIC_LIST: 312,
  GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: 313,
  CLONE_GROUP_OFFSET: 314,
  VIEW_BROKER_STATS_DATA: 315,
  CLEAN_UNUSED_TOPIC: 316,
  GET_BROKER_CONSUME_STATS: 317,
  UPDATE_NAMESRV_CONFIG: 318,
  GET_NAMESRV_CONFIG: 319,
  SEND_BATCH_MESSAGE: 320,
  QUERY_CONSUME_QUEUE: 321,
  QUERY_DATA_VERSION: 322,
  RESUME_CHECK_HALF_MESSAGE: 323,
  SEND_REPLY_MESSAGE: 324,
  SEND_REPLY_MESSAGE_V2: 325,
  PUSH_REPLY_MESSAGE_TO_CLIENT: 326,
  ADD_WRITE_PERM_OF_BROKER: 327,
  GET_ALL_PRODUCER_INFO: 328,
  DELETE_EXPIRED_COMMITLOG: 329,
  GET_TOPIC_CONFIG: 351,
  GET_SUBSCRIPTIONGROUP_CONFIG: 352,
  UPDATE_AND_GET_GROUP_FORBIDDEN: 353,
  CHECK_ROCKSDB_CQ_WRITE_PROGRESS: 354,
  EXPORT_ROCKSDB_CONFIG_TO_JSON: 355,
  LITE_PULL_MESSAGE: 361,
  RECALL_MESSAGE: 370,
  QUERY_ASSIGNMENT: 400,
  SET_MESSAGE_REQUEST_MODE: 401,
  GET_ALL_MESSAGE_REQUEST_MODE: 402,
  UPDATE_AND_CREATE_STATIC_TOPIC: 513,

  // Broker container and HA.
  GET_BROKER_MEMBER_GROUP: 901,
  ADD_BROKER: 902,
  REMOVE_BROKER: 903,
  BROKER_HEARTBEAT: 904,
  NOTIFY_MIN_BROKER_ID_CHANGE: 905,
  EXCHANGE_BROKER_HA_INFO: 906,
  GET_BROKER_HA_STATUS: 907,
  RESET_MASTER_FLUSH_OFFSET: 908,

  // DLedger / JRaft controller.
  CONTROLLER_ALTER_SYNC_STATE_SET: 1001,
  CONTROLLER_ELECT_MASTER: 1002,
  CONTROLLER_REGISTER_BROKER: 1003,
  CONTROLLER_GET_REPLICA_INFO: 1004,
  CONTROLLER_GET_METADATA_INFO: 1005,
  CONTROLLER_GET_SYNC_STATE_DATA: 1006,
  GET_BROKER_EPOCH_CACHE: 1007,
  NOTIFY_BROKER_ROLE_CHANGED: 1008,
  UPDATE_CONTROLLER_CONFIG: 1009,
  GET_CONTROLLER_CONFIG: 1010,
  CLEAN_BROKER_DATA: 1011,
  CONTROLLER_GET_NEXT_BROKER_ID: 1012,
  CONTROLLER_APPLY_BROKER_ID: 1013,
  BROKER_CLOSE_CHANNEL_REQUEST: 1014,
  CHECK_NOT_ACTIVE_BROKER_REQUEST: 1015,
  GET_BROKER_LIVE_INFO_REQUEST: 1016,
  GET_SYNC_STATE_DATA_REQUEST: 1017,
  RAFT_BROKER_HEART_BEAT_EVENT_REQUEST: 1018,

  // Cold-data flow control and commit-log read mode.
  UPDATE_COLD_DATA_FLOW_CTR_CONFIG: 2001,
  REMOVE_COLD_DATA_FLOW_CTR_CONFIG: 2002,
  GET_COLD_DATA_FLOW_CTR_INFO: 2003,
  SET_COMMITLOG_READ_MODE: 2004,

  // Authentication and ACL (5.3+).
  AUTH_CREATE_USER: 3001,
  AUTH_UPDATE_USER: 3002,
  AUTH_DELETE_USER: 3003,
  AUTH_GET_USER: 3004,
  AUTH_LIST_USER: 3005,
  AUTH_CREATE_ACL: 3006,
  AUTH_UPDATE_ACL: 3007,
  AUTH_DELETE_ACL: 3008,
  AUTH_GET_ACL: 3009,
  AUTH_LIST_ACL: 3010,
} as const;

/** Name of a request code. */
export type RequestCodeName = keyof typeof RequestCode;

/** Response codes: RemotingSysResponseCode.java (0-4) followed by ResponseCode.java, verbatim. */
export const ResponseCode = {
  // RemotingSysResponseCode: answers any layer of the server can give.
  SUCCESS: 0,
  SYSTEM_ERROR: 1,
  SYSTEM_BUSY: 2,
  REQUEST_CODE_NOT_SUPPORTED: 3,
  TRANSACTION_FAILED: 4,

  // ResponseCode: broker and NameServer outcomes.
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
  FILTER_DATA_NOT_EXIST: 27,
  FILTER_DATA_NOT_LATEST: 28,
  INVALID_PARAMETER: 29,

  // Transactions, long polling and flow control.
  TRANSACTION_SHOULD_COMMIT: 200,
  TRANSACTION_SHOULD_ROLLBACK: 201,
  TRANSACTION_STATE_UNKNOW: 202,
  TRANSACTION_STATE_GROUP_WRONG: 203,
  NO_BUYER_ID: 204,
  NOT_IN_CURRENT_UNIT: 205,
  CONSUMER_NOT_ONLINE: 206,
  CONSUME_MSG_TIMEOUT: 207,
  NO_MESSAGE: 208,
  POLLING_FULL: 209,
  POLLING_TIMEOUT: 210,
  BROKER_NOT_EXIST: 211,
  BROKER_DISPATCH_NOT_COMPLETE: 212,
  BROADCAST_CONSUMPTION: 213,
  FLOW_CONTROL: 215,
  NOT_LEADER_FOR_QUEUE: 501,
  ILLEGAL_OPERATION: 604,

  // Client-side RPC outcomes; Java clients synthesise these locally, they are not sent by servers.
  RPC_UNKNOWN: -1000,
  RPC_ADDR_IS_NULL: -1002,
  RPC_SEND_TO_CHANNEL_FAILED: -1004,
  RPC_TIME_OUT: -1006,

  // Sent by a shutting-down proxy to clients newer than V5_3_1.
  GO_AWAY: 1500,

  // Controller.
  CONTROLLER_FENCED_MASTER_EPOCH: 2000,
  CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH: 2001,
  CONTROLLER_INVALID_MASTER: 2002,
  CONTROLLER_INVALID_REPLICAS: 2003,
  CONTROLLER_MASTER_NOT_AVAILABLE: 2004,
  CONTROLLER_INVALID_REQUEST: 2005,
  CONTROLLER_BROKER_NOT_ALIVE: 2006,
  CONTROLLER_NOT_LEADER: 2007,
  CONTROLLER_BROKER_METADATA_NOT_EXIST: 2008,
  CONTROLLER_INVALID_CLEAN_BROKER_METADATA: 2009,
  CONTROLLER_BROKER_NEED_TO_BE_REGISTERED: 2010,
  CONTROLLER_MASTER_STILL_EXIST: 2011,
  CONTROLLER_ELECT_MASTER_FAILED: 2012,
  CONTROLLER_ALTER_SYNC_STATE_SET_FAILED: 2013,
  CONTROLLER_BROKER_ID_INVALID: 2014,
  CONTROLLER_JRAFT_INTERNAL_ERROR: 2015,
  CONTROLLER_BROKER_LIVE_INFO_NOT_EXISTS: 2016,

  // Authentication and ACL.
  USER_NOT_EXIST: 3001,
  POLICY_NOT_EXIST: 3002,
} as const;

/** Name of a response code. */
export type ResponseCodeName = keyof typeof ResponseCode;

function reverse<K extends string>(table: Readonly<Record<K, number>>): ReadonlyMap<number, K> {
  const names = new Map<number, K>();
  for (const [name, value] of Object.entries(table) as [K, number][]) {
    // The tables are verified to hold no duplicate values; a duplicate would make names ambiguous.
    if (names.has(value)) throw new Error(`duplicate remoting code ${value}: ${names.get(value)} and ${name}`);
    names.set(value, name);
  }
  return names;
}

const requestCodeNames = reverse(RequestCode);
const responseCodeNames = reverse(ResponseCode);

/** The name of a request code, for logs and metrics; undefined for codes RocketMQ does not define. */
export function requestCodeName(code: number): RequestCodeName | undefined {
  return requestCodeNames.get(code);
}

/** The name of a response code, for logs and metrics; undefined for codes RocketMQ does not define. */
export function responseCodeName(code: number): ResponseCodeName | undefined {
  return responseCodeNames.get(code);
}
