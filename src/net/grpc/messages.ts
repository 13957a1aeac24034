/**
 * TypeScript shapes of the apache.rocketmq.v2 messages (proto/apache/rocketmq/v2/*.proto) as our gRPC
 * layer hands them to handlers and takes them back. Field names are the proto names in camelCase.
 *
 * The shapes follow the decode options of `messaging-service.ts`, so they are exact for decoded
 * requests and are also what responses must look like:
 * - implicit-presence scalars (plain proto3 `string`, `int32`, `bool`, enums, `bytes`) are always
 *   present, holding the proto3 default when the peer left them out;
 * - singular message fields without `optional` are the message or `null`;
 * - `repeated` fields are arrays and `map` fields plain objects, empty when absent;
 * - proto3 `optional` fields and oneof members are present only when set (`?:`); at most one member of
 *   a oneof is set (the oneof's name is given in a comment);
 * - int32 and float are numbers; int64 is a number too (offsets, seconds and versions stay far below
 *   2^53; a decoded value that did not fit fails `Number.isSafeInteger`, so validate client-sent int64s
 *   with it); enums are numbers (`Open<...>`, see `enums.ts`); bytes are Uint8Array (Node Buffers,
 *   viewing the received frame, when decoded).
 * One deliberate narrowing: the `status` of responses and result entries is required (a `Status`,
 * never null), because we are the side that writes them and every client reads it.
 */
import type { Code } from './code.ts';
import type {
  AddressScheme,
  ClientType,
  DigestType,
  Encoding,
  FilterType,
  Language,
  LiteSubscriptionAction,
  MessageType,
  OffsetOptionPolicy,
  Open,
  Permission,
  QueryOffsetPolicy,
  TransactionResolution,
  TransactionSource,
} from './enums.ts';

// ---- Well-known types ---------------------------------------------------------------------------

/** google.protobuf.Timestamp: seconds since the epoch plus forward nanos in [0, 1e9). */
export type Timestamp = { seconds: number; nanos: number };

/** google.protobuf.Duration: seconds plus nanos of the same sign. */
export type Duration = { seconds: number; nanos: number };

// ---- definition.proto ---------------------------------------------------------------------------

/** A result code with an explanation. */
export type Status = { code: Open<Code>; message: string };

/** A topic or group name, optionally inside a namespace. */
export type Resource = { resourceNamespace: string; name: string };

/** One host and port. */
export type Address = { host: string; port: number };

/** Equivalent addresses of one access point. */
export type Endpoints = { scheme: Open<AddressScheme>; addresses: Address[] };

/** A broker as clients see it. */
export type Broker = { name: string; id: number; endpoints: Endpoints | null };

/** One queue of a topic. */
export type MessageQueue = {
  topic: Resource | null;
  id: number;
  permission: Open<Permission>;
  broker: Broker | null;
  acceptMessageTypes: Open<MessageType>[];
};

/** A queue assigned to a consumer. */
export type Assignment = { messageQueue: MessageQueue | null };

/** A tag or SQL92 filter. */
export type FilterExpression = { type: Open<FilterType>; expression: string };

/** A subscribed topic with its filter. */
export type SubscriptionEntry = { topic: Resource | null; expression: FilterExpression | null };

/** Geometric backoff. */
export type ExponentialBackoff = { initial: Duration | null; max: Duration | null; multiplier: number };

/** Backoff as an explicit list of waits. */
export type CustomizedBackoff = { next: Duration[] };

/** Retry policy; oneof `strategy`: exponentialBackoff | customizedBackoff. */
export type RetryPolicy = {
  maxAttempts: number;
  exponentialBackoff?: ExponentialBackoff;
  customizedBackoff?: CustomizedBackoff;
};

/** Starting point of a new lite subscription; oneof `offset_type`: policy | offset | tailN | timestamp. */
export type OffsetOption = {
  policy?: Open<OffsetOptionPolicy>;
  offset?: number;
  tailN?: number;
  timestamp?: number;
};

/** A body checksum. */
export type Digest = { type: Open<DigestType>; checksum: string };

/** Origin of a message re-delivered from a dead-letter queue. */
export type DeadLetterQueue = { topic: string; messageId: string };

/** Properties owned by the system: the producer fills the first group, the server the rest. */
export type SystemProperties = {
  tag?: string;
  keys: string[];
  messageId: string;
  bodyDigest: Digest | null;
  bodyEncoding: Open<Encoding>;
  messageType: Open<MessageType>;
  bornTimestamp: Timestamp | null;
  bornHost: string;
  storeTimestamp?: Timestamp;
  storeHost: string;
  deliveryTimestamp?: Timestamp;
  receiptHandle?: string;
  queueId: number;
  queueOffset?: number;
  invisibleDuration?: Duration;
  deliveryAttempt?: number;
  messageGroup?: string;
  traceContext?: string;
  orphanedTransactionRecoveryDuration?: Duration;
  deadLetterQueue?: DeadLetterQueue;
  liteTopic?: string;
  priority?: number;
};

/** A message, in both directions. */
export type Message = {
  topic: Resource | null;
  userProperties: Record<string, string>;
  systemProperties: SystemProperties | null;
  body: Uint8Array;
};

/** Who a client is. */
export type UA = { language: Open<Language>; version: string; platform: string; hostname: string };

/** Where the client exports metrics. */
export type Metric = { on: boolean; endpoints?: Endpoints };

/** Producer settings. */
export type Publishing = { topics: Resource[]; maxBodySize: number; validateMessageType: boolean };

/** Consumer settings. */
export type Subscription = {
  group?: Resource;
  subscriptions: SubscriptionEntry[];
  fifo?: boolean;
  receiveBatchSize?: number;
  longPollingTimeout?: Duration;
  liteSubscriptionQuota?: number;
  maxLiteTopicSize?: number;
};

/** Client settings on the Telemetry stream; oneof `pub_sub`: publishing | subscription. */
export type Settings = {
  clientType?: Open<ClientType>;
  accessPoint?: Endpoints;
  backoffPolicy?: RetryPolicy;
  requestTimeout?: Duration;
  publishing?: Publishing;
  subscription?: Subscription;
  userAgent: UA | null;
  metric: Metric | null;
  clientProperties: Record<string, string>;
};

// ---- service.proto: route and assignment ---------------------------------------------------------

/** QueryRoute request. */
export type QueryRouteRequest = { topic: Resource | null; endpoints: Endpoints | null };
/** QueryRoute response. */
export type QueryRouteResponse = { status: Status; messageQueues: MessageQueue[] };

/** QueryAssignment request. */
export type QueryAssignmentRequest = { topic: Resource | null; group: Resource | null; endpoints: Endpoints | null };
/** QueryAssignment response. */
export type QueryAssignmentResponse = { status: Status; assignments: Assignment[] };

// ---- service.proto: sessions ---------------------------------------------------------------------

/** Heartbeat request. */
export type HeartbeatRequest = { group?: Resource; clientType: Open<ClientType> };
/** Heartbeat response. */
export type HeartbeatResponse = { status: Status };

/** NotifyClientTermination request. */
export type NotifyClientTerminationRequest = { group?: Resource };
/** NotifyClientTermination response. */
export type NotifyClientTerminationResponse = { status: Status };

/** Server asks for a thread dump. */
export type PrintThreadStackTraceCommand = { nonce: string };
/** Client's thread dump. */
export type ThreadStackTrace = { nonce: string; threadStackTrace?: string };
/** Server asks whether the client could consume a message. */
export type VerifyMessageCommand = { nonce: string; message: Message | null };
/** Client's verification answer (outcome in the command's status). */
export type VerifyMessageResult = { nonce: string };
/** Server asks a producer to resolve an open transaction. */
export type RecoverOrphanedTransactionCommand = { message: Message | null; transactionId: string };
/** Server asks the client to reconnect. */
export type ReconnectEndpointsCommand = { nonce: string };
/** Server tells a lite consumer a lite topic was unsubscribed. */
export type NotifyUnsubscribeLiteCommand = { liteTopic: string };

/**
 * One frame of the Telemetry stream, either direction. Oneof `command`: settings | threadStackTrace |
 * verifyMessageResult | recoverOrphanedTransactionCommand | printThreadStackTraceCommand |
 * verifyMessageCommand | reconnectEndpointsCommand | notifyUnsubscribeLiteCommand.
 */
export type TelemetryCommand = {
  status?: Status;
  settings?: Settings;
  threadStackTrace?: ThreadStackTrace;
  verifyMessageResult?: VerifyMessageResult;
  recoverOrphanedTransactionCommand?: RecoverOrphanedTransactionCommand;
  printThreadStackTraceCommand?: PrintThreadStackTraceCommand;
  verifyMessageCommand?: VerifyMessageCommand;
  reconnectEndpointsCommand?: ReconnectEndpointsCommand;
  notifyUnsubscribeLiteCommand?: NotifyUnsubscribeLiteCommand;
};

// ---- service.proto: producing --------------------------------------------------------------------

/** SendMessage request: one message or a batch. */
export type SendMessageRequest = { messages: Message[] };
/** Result of one sent message. */
export type SendResultEntry = {
  status: Status;
  messageId: string;
  transactionId: string;
  offset: number;
  recallHandle: string;
};
/** SendMessage response. */
export type SendMessageResponse = { status: Status; entries: SendResultEntry[] };

/** EndTransaction request. */
export type EndTransactionRequest = {
  topic: Resource | null;
  messageId: string;
  transactionId: string;
  resolution: Open<TransactionResolution>;
  source: Open<TransactionSource>;
  traceContext: string;
};
/** EndTransaction response. */
export type EndTransactionResponse = { status: Status };

/** RecallMessage request. */
export type RecallMessageRequest = { topic: Resource | null; recallHandle: string };
/** RecallMessage response. */
export type RecallMessageResponse = { status: Status; messageId: string };

// ---- service.proto: POP consumption --------------------------------------------------------------

/** ReceiveMessage request. */
export type ReceiveMessageRequest = {
  group: Resource | null;
  messageQueue: MessageQueue | null;
  filterExpression: FilterExpression | null;
  batchSize: number;
  invisibleDuration?: Duration;
  autoRenew: boolean;
  longPollingTimeout?: Duration;
  attemptId?: string;
};
/** One frame of the ReceiveMessage response stream; oneof `content`: exactly one of the three. */
export type ReceiveMessageResponse = { status: Status } | { message: Message } | { deliveryTimestamp: Timestamp };

/** One message to acknowledge. */
export type AckMessageEntry = { messageId: string; receiptHandle: string; liteTopic?: string };
/** AckMessage request. */
export type AckMessageRequest = { group: Resource | null; topic: Resource | null; entries: AckMessageEntry[] };
/** Result of one acknowledgement. */
export type AckMessageResultEntry = { messageId: string; receiptHandle: string; status: Status };
/** AckMessage response. */
export type AckMessageResponse = { status: Status; entries: AckMessageResultEntry[] };

/** ChangeInvisibleDuration request. */
export type ChangeInvisibleDurationRequest = {
  group: Resource | null;
  topic: Resource | null;
  receiptHandle: string;
  invisibleDuration: Duration | null;
  messageId: string;
  liteTopic?: string;
  suspend?: boolean;
};
/** ChangeInvisibleDuration response, with the receipt handle to use from now on. */
export type ChangeInvisibleDurationResponse = { status: Status; receiptHandle: string };

/** ForwardMessageToDeadLetterQueue request. */
export type ForwardMessageToDeadLetterQueueRequest = {
  group: Resource | null;
  topic: Resource | null;
  receiptHandle: string;
  messageId: string;
  deliveryAttempt: number;
  maxDeliveryAttempts: number;
  liteTopic?: string;
};
/** ForwardMessageToDeadLetterQueue response. */
export type ForwardMessageToDeadLetterQueueResponse = { status: Status };

// ---- service.proto: offset consumption -----------------------------------------------------------

/** PullMessage request. */
export type PullMessageRequest = {
  group: Resource | null;
  messageQueue: MessageQueue | null;
  offset: number;
  batchSize: number;
  filterExpression: FilterExpression | null;
  longPollingTimeout: Duration | null;
};
/** One frame of the PullMessage response stream; oneof `content`: exactly one of the three. */
export type PullMessageResponse = { status: Status } | { message: Message } | { nextOffset: number };

/** UpdateOffset request. */
export type UpdateOffsetRequest = { group: Resource | null; messageQueue: MessageQueue | null; offset: number };
/** UpdateOffset response. */
export type UpdateOffsetResponse = { status: Status };

/** GetOffset request. */
export type GetOffsetRequest = { group: Resource | null; messageQueue: MessageQueue | null };
/** GetOffset response. */
export type GetOffsetResponse = { status: Status; offset: number };

/** QueryOffset request. */
export type QueryOffsetRequest = {
  messageQueue: MessageQueue | null;
  queryOffsetPolicy: Open<QueryOffsetPolicy>;
  timestamp?: Timestamp;
};
/** QueryOffset response. */
export type QueryOffsetResponse = { status: Status; offset: number };

// ---- service.proto: lite topics ------------------------------------------------------------------

/** SyncLiteSubscription request. */
export type SyncLiteSubscriptionRequest = {
  action: Open<LiteSubscriptionAction>;
  topic: Resource | null;
  group: Resource | null;
  liteTopicSet: string[];
  version?: number;
  offsetOption?: OffsetOption;
};
/** SyncLiteSubscription response. */
export type SyncLiteSubscriptionResponse = { status: Status };
