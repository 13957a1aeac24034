/**
 * broker-admin: the one actor (admin pool) that owns the broker's metadata and its clients, as RocketMQ's
 * TopicConfigManager, SubscriptionGroupManager, ConsumerOffsetManager, ConsumerManager, ProducerManager,
 * RebalanceLockManager and BrokerOuterAPI together, with the request processors that read and change
 * them (ClientManageProcessor, ConsumerManageProcessor, QueryMessageProcessor, AdminBrokerProcessor).
 *
 * What it owns, and where it lives:
 *
 * | state                      | durable in                         | written                               |
 * |----------------------------|------------------------------------|---------------------------------------|
 * | topic configs              | config/topics.json                 | at once, on every change              |
 * | subscription groups        | config/subscriptionGroup.json      | at once, on every change              |
 * | consumer offsets           | config/consumerOffset.json         | every flushConsumerOffsetInterval, stop |
 * | clients, queue locks       | memory (clients heartbeat again)   | -                                     |
 * | NameServer registration    | the NameServers                    | at start, every 30 s, on topic change |
 *
 * A write that fails is logged and retried at the next offset flush; the change stays in memory.
 *
 * On a slave, slave-synchronize.ts reads the master's tables every 10 s and asks `syncFromMaster`, which
 * applies them as RocketMQ's SlaveSynchronize does: topic configs and subscription groups are replaced
 * (file written, then reloaded) when the master's dataVersion differs from ours; each of the master's
 * `topic@group` offset maps replaces ours (offsets only we hold stay); the master's delay offsets are
 * written to config/delayOffset.json for the schedule service. A broker the controller made master
 * refuses the ask. On a master, GET_ALL_CONSUMER_OFFSET answers consumerOffset.json as just written from
 * memory and GET_ALL_DELAY_OFFSET the schedule service's delayOffset.json (ScheduleMessageService.encode
 * reads memory; ours lags by at most flushDelayOffsetInterval, and only durable re-puts are in it).
 *
 * Requests that need the store (offsets of queues, store times, messages) ask the commit-log-writer; the
 * answer comes back through pipeToSelf as a `continue` message and only then is the client answered, so
 * every change to state happens in `receive`. At most pendingAsksMax such requests wait at once; past
 * that the client gets SYSTEM_BUSY. Bad headers and bodies are answered SYSTEM_ERROR (as RocketMQ answers
 * a processor's exception); refusals carry RocketMQ's codes and remarks. Nothing a client sends can throw
 * out of `receive`.
 *
 * Deliberate differences from RocketMQ, each for a reason given where it is done:
 * - heartbeat V2 without subscriptions from a group the broker does not know answers IS_SUB_CHANGE=true,
 *   so the client sends them (RocketMQ answers false and keeps no subscriptions after its own restart);
 * - a client that expires (120 s without heartbeat) makes its group's remaining consumers rebalance
 *   (RocketMQ closes the connection and tells no one until their next periodic rebalance);
 * - INVOKE_BROKER_TO_RESET_OFFSET pushes the new offsets to the clients (Broker2Client.resetOffset, the
 *   path of useServerSideResetOffset=false): the server-side reset of RocketMQ 5 needs the pull path to
 *   hand the reset offset out, which the pull contract does not carry;
 * - UPDATE_BROKER_CONFIG applies only the keys this actor owns at run time, all or none, and refuses the
 *   rest (RocketMQ stores any key, most of which take effect only after a restart); nothing is written
 *   back to broker.conf;
 * - deleting a topic removes its config and offsets; its messages stay in the store until retention
 *   removes them (RocketMQ also deletes the topic's ConsumeQueue files at once).
 */
import path from 'node:path';
import type { z } from 'zod';
import type { ReplicasRoleChangedMessage } from './replicas-manager.ts';
import {
  type ConsumerOffsetSnapshot,
  type DelayOffsetSnapshot,
  formatConsumerOffsetSerializeWrapper,
  formatDelayOffsetSerializeWrapper,
  parseDelayOffsetSerializeWrapper,
  SlaveSyncError,
  type SubscriptionGroupSnapshot,
  type SyncFromMasterAnswer,
  type SyncFromMasterMessage,
  type SyncTable,
  type TableSyncOutcome,
  type TopicConfigSnapshot,
} from './slave-synchronize.ts';
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, BehaviorSource, PipeResult } from '../runtime/actor.ts';
import { AssertionError, assert, assertNever } from '../runtime/assert.ts';
import { parseProperties } from '../config/properties.ts';
import { compileSql92, isSql92, isTagType } from '../filter/sql92.ts';
import {
  BodyError,
  bodyErrorResponse,
  type Connection,
  formatConsumeStats,
  formatConsumerConnection,
  formatGetConsumerListByGroupResponseBody,
  formatKVTable,
  formatLockBatchResponseBody,
  formatResetOffsetBody,
  formatSubscriptionGroupConfig,
  formatSubscriptionGroupWrapper,
  formatTopicConfigSerializeWrapper,
  formatTopicStatsTable,
  type MessageQueue,
  type OffsetWrapper,
  type SubscriptionData,
  parseHeartbeatData,
  parseLockBatchRequestBody,
  parseUnlockBatchRequestBody,
  type TopicOffset,
} from '../net/remoting/broker-bodies.ts';
import {
  boundaryTypeOf,
  CreateTopicRequestHeader,
  defineHeader,
  DeleteTopicRequestHeader,
  GetConsumeStatsRequestHeader,
  GetConsumerConnectionListRequestHeader,
  GetConsumerListByGroupRequestHeader,
  GetEarliestMsgStoretimeRequestHeader,
  GetEarliestMsgStoretimeResponseHeader,
  GetMaxOffsetRequestHeader,
  GetMaxOffsetResponseHeader,
  GetMinOffsetRequestHeader,
  GetMinOffsetResponseHeader,
  GetTopicConfigRequestHeader,
  GetTopicStatsInfoRequestHeader,
  HeaderError,
  headerErrorResponse,
  HeartbeatResponseFields,
  NotifyConsumerIdsChangedRequestHeader,
  QueryConsumerOffsetRequestHeader,
  QueryConsumerOffsetResponseHeader,
  QueryMessageRequestHeader,
  QueryMessageResponseHeader,
  ResetOffsetRequestHeader,
  SearchOffsetRequestHeader,
  SearchOffsetResponseHeader,
  topicListOf,
  UnregisterClientRequestHeader,
  UpdateConsumerOffsetRequestHeader,
  ViewMessageRequestHeader,
} from '../net/remoting/broker-headers.ts';
import { FastjsonError, formatFastjson, parseFastjson as parseFastjsonBody, toPlainJson } from '../net/remoting/fastjson.ts';
import {
  bodyCrc32,
  encodeHeader,
  encodeRegisterBrokerBody,
  MQVersionOrdinal,
  NamesrvHeaders,
  PermName,
  TopicSysFlag,
} from '../net/remoting/namesrv-protocol.ts';
import {
  createNotSupportedResponse,
  createRequest,
  createResponse,
  isOneway,
  type RemotingCommand,
  RequestCode,
  ResponseCode,
} from '../net/remoting/remoting-command.ts';
import { decodeRecord } from '../storage/message-record.ts';
import type { StoredMessage } from '../storage/message-store.ts';
import {
  type ConsumerOffsetDocument,
  ConsumerOffsetTable,
  consumerOffsetDocumentSchema,
  type DataVersion,
  JsonConfigFile,
  MetadataError,
  newDataVersion,
  nextDataVersion,
  storePaths,
  type StorePaths,
  type SubscriptionGroupConfig,
  subscriptionGroupConfigSchema,
  type SubscriptionGroupDocument,
  subscriptionGroupDocumentSchema,
  SubscriptionGroupTable,
  TOPIC_GROUP_SEPARATOR,
  type TopicConfig,
  type TopicConfigRequest,
  TopicConfigTable,
  type TopicsDocument,
  topicsDocumentSchema,
} from '../storage/metadata-store.ts';
import type { DiskCheck } from '../storage/retention.ts';
import { fsyncDirectory, nodeStorageFs, type StorageFs, writeFully } from '../storage/storage-fs.ts';
import {
  AUTO_CREATE_TOPIC_KEY_TOPIC,
  type BrokerAdminMessage,
  type BrokerIdentity,
  type BrokerSettings,
  dlqTopicOf,
  type GroupForRetryAnswer,
  type PullMetadataAnswer,
  RETRY_GROUP_TOPIC_PREFIX,
  retryTopicOf,
  SCHEDULE_TOPIC,
  type TopicForSendAnswer,
} from './broker-context.ts';
import { type ClientChannelInfo, ClientRegistry, QueueLockTable, REBALANCE_LOCK_MAX_LIVE_MS, type RemovedClient } from './client-registry.ts';
import type { BrokerRole, CommitLogWriterMessage, CommitLogWriterStats } from './commit-log-writer.ts';
import { NamesrvRegistrar, type RegistrationOutcome } from './namesrv-registration.ts';
import { channelKey, type ChannelClosedMessage, type RemotingChannel, type RemotingRequestMessage } from './remoting-routes.ts';

// =========================================================================================================
// Options, args, messages

/** broker-admin's tunables: RocketMQ BrokerConfig switches under their own names (units added), and bounds. */
export type BrokerAdminOptions = {
  /** Most topic configs, subscription groups and (topic@group, queue) offsets held and persisted. */
  readonly topicsMax: number;
  readonly subscriptionGroupsMax: number;
  readonly consumerOffsetsMax: number;
  /** Clients online: see ClientRegistryLimits. */
  readonly consumerGroupsMax: number;
  readonly producerGroupsMax: number;
  readonly clientsPerGroupMax: number;
  readonly subscriptionsPerGroupMax: number;
  /** Queue locks held at once (RebalanceLockManager entries). */
  readonly locksMax: number;
  /** rocketmq.broker.rebalance.lockMaxLiveTime. */
  readonly lockMaxLiveMs: number;
  /** Requests waiting for the store at once; past it, SYSTEM_BUSY. */
  readonly pendingAsksMax: number;
  /** flushConsumerOffsetInterval. */
  readonly flushConsumerOffsetIntervalMs: number;
  /** registerNameServerPeriod. */
  readonly registerNameServerPeriodMs: number;
  /** registerBrokerTimeoutMills. */
  readonly registerBrokerTimeoutMs: number;
  readonly namesrvConnectTimeoutMs: number;
  /** How often silent clients and expired locks are looked for (ClientHousekeepingService: 10 s). */
  readonly clientScanIntervalMs: number;
  /** channelExpiredTimeout. */
  readonly channelExpiredTimeoutMs: number;
  readonly notifyConsumerIdsChangedEnable: boolean;
  /** PermName bits of the whole broker; without READ or WRITE, registered topics lose them too. */
  readonly brokerPermission: number;
  readonly clusterTopicEnable: boolean;
  readonly brokerTopicEnable: boolean;
  readonly traceTopicEnable: boolean;
  readonly msgTraceTopicName: string;
  readonly reviveQueueNum: number;
  readonly timerWheelEnable: boolean;
  readonly enableCreateSysGroup: boolean;
  readonly validateSystemTopicWhenUpdateTopic: boolean;
  readonly enableMixedMessageType: boolean;
  readonly clearRetryTopicWhenDeleteTopic: boolean;
  /** defaultQueryMaxNum: maxNum of a QUERY_MESSAGE by unique key. */
  readonly defaultQueryMaxNum: number;
  /** brokerIP2:haListenPort as registered; empty means brokerIP1:(listenPort + 1), RocketMQ's defaults. */
  readonly haServerAddr: string;
  /** Send UNREGISTER_BROKER to the NameServers when the actor stops for good. */
  readonly unregisterOnStop: boolean;
  /** Extra `key -> value` lines GET_BROKER_CONFIG reports (the node's whole config, as the wiring knows it). */
  readonly brokerConfigProperties: Readonly<Record<string, string>>;
};

/** RocketMQ's defaults and our bounds. */
export const BROKER_ADMIN_DEFAULTS: BrokerAdminOptions = {
  topicsMax: 65_536,
  subscriptionGroupsMax: 65_536,
  consumerOffsetsMax: 1_048_576,
  consumerGroupsMax: 16_384,
  producerGroupsMax: 16_384,
  clientsPerGroupMax: 4_096,
  subscriptionsPerGroupMax: 1_024,
  locksMax: 262_144,
  lockMaxLiveMs: REBALANCE_LOCK_MAX_LIVE_MS,
  pendingAsksMax: 1_024,
  flushConsumerOffsetIntervalMs: 5_000,
  registerNameServerPeriodMs: 30_000,
  registerBrokerTimeoutMs: 24_000,
  namesrvConnectTimeoutMs: 3_000,
  clientScanIntervalMs: 10_000,
  channelExpiredTimeoutMs: 120_000,
  notifyConsumerIdsChangedEnable: true,
  brokerPermission: PermName.PERM_READ | PermName.PERM_WRITE,
  clusterTopicEnable: true,
  brokerTopicEnable: true,
  traceTopicEnable: false,
  msgTraceTopicName: 'RMQ_SYS_TRACE_TOPIC',
  reviveQueueNum: 8,
  timerWheelEnable: true,
  enableCreateSysGroup: true,
  validateSystemTopicWhenUpdateTopic: true,
  enableMixedMessageType: false,
  clearRetryTopicWhenDeleteTopic: true,
  defaultQueryMaxNum: 32,
  haServerAddr: '',
  unregisterOnStop: true,
  brokerConfigProperties: {},
};

/**
 * Start arguments: BrokerProcessorArgs (whose refs.admin it does not need: it is ctx.self), plus optional
 * tunables. A BrokerProcessorArgs value is a valid BrokerAdminArgs.
 */
export type BrokerAdminArgs = {
  readonly identity: BrokerIdentity;
  readonly settings: BrokerSettings;
  readonly refs: { readonly writer: ActorRef<CommitLogWriterMessage>; readonly admin?: ActorRef<BrokerAdminMessage> };
  readonly options?: Partial<BrokerAdminOptions>;
  /** Read only by behaviors built with a test file system. */
  readonly seam?: unknown;
};

/** Messages broker-admin sends itself (timers and piped outcomes), and the `adminStats` ask. */
export type BrokerAdminOwnMessage =
  | { readonly type: 'flushOffsets' }
  | { readonly type: 'registerBroker' }
  /** Controller mode: the replicas manager finished a role change; re-register with the new brokerId. */
  | ReplicasRoleChangedMessage
  | { readonly type: 'registered'; readonly epoch: number; readonly outcomes: readonly RegistrationOutcome[] }
  | { readonly type: 'continue'; readonly epoch: number; readonly id: number; readonly result: PipeResult<unknown> }
  | { readonly type: 'adminStats' };

/**
 * Asks beyond broker-context.ts that the processors may want (proposed for the shared contract):
 * `lockAllExpired` answers a boolean (RebalanceLockManager.isLockAllExpired: an orderly group's retries
 * go straight to the DLQ while it holds a live lock); `subscriptionOf` answers a SubscriptionOfAnswer
 * (a group's registered subscription of a topic). The pull processors use broker-context's
 * `pullMetadata` instead, which carries the subscription with the group and topic checks in one ask.
 */
export type BrokerAdminExtraAsk =
  | { readonly type: 'lockAllExpired'; readonly group: string }
  | { readonly type: 'subscriptionOf'; readonly group: string; readonly topic: string }
  /** Asked by the transaction service; answered with a ProducerChannelsAnswer. */
  | { readonly type: 'producerChannels'; readonly group: string };

/**
 * The answer to `producerChannels`: the connections of a producer group's clients online (registered by
 * HEART_BEAT, neither closed nor expired), empty when none; at most clientsPerGroupMax.
 */
export type ProducerChannelsAnswer = readonly RemotingChannel[];

/** The answer to `subscriptionOf`. */
export type SubscriptionOfAnswer = {
  readonly group: SubscriptionGroupConfig | undefined;
  readonly subscription: SubscriptionData | undefined;
  readonly consumerOnline: boolean;
};

/** Everything broker-admin's mailbox takes (`syncFromMaster` is slave-synchronize's ask). */
export type BrokerAdminInbox = BrokerAdminMessage | BrokerAdminOwnMessage | BrokerAdminExtraAsk | SyncFromMasterMessage;

/** The answer to `adminStats`. */
export type BrokerAdminStats = {
  readonly topics: number;
  readonly subscriptionGroups: number;
  readonly consumerOffsets: number;
  readonly consumerGroupsOnline: number;
  readonly producerGroupsOnline: number;
  readonly locks: number;
  readonly pendingAsks: number;
  readonly requests: number;
  readonly badRequests: number;
  readonly pushes: number;
  readonly registrationsOk: number;
  readonly registrationsFailed: number;
  readonly topicsDataVersion: DataVersion;
};

/** Request codes broker-admin serves (it may also be the acceptors' fallback: other codes get NOT_SUPPORTED). */
export const BROKER_ADMIN_REQUEST_CODES: readonly number[] = [
  RequestCode.HEART_BEAT,
  RequestCode.UNREGISTER_CLIENT,
  RequestCode.CHECK_CLIENT_CONFIG,
  RequestCode.GET_CONSUMER_LIST_BY_GROUP,
  RequestCode.QUERY_CONSUMER_OFFSET,
  RequestCode.UPDATE_CONSUMER_OFFSET,
  RequestCode.GET_MIN_OFFSET,
  RequestCode.GET_MAX_OFFSET,
  RequestCode.SEARCH_OFFSET_BY_TIMESTAMP,
  RequestCode.GET_EARLIEST_MSG_STORETIME,
  RequestCode.LOCK_BATCH_MQ,
  RequestCode.UNLOCK_BATCH_MQ,
  RequestCode.QUERY_MESSAGE,
  RequestCode.VIEW_MESSAGE_BY_ID,
  RequestCode.UPDATE_AND_CREATE_TOPIC,
  RequestCode.DELETE_TOPIC_IN_BROKER,
  RequestCode.GET_ALL_TOPIC_CONFIG,
  RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
  RequestCode.DELETE_SUBSCRIPTIONGROUP,
  RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
  RequestCode.GET_SUBSCRIPTIONGROUP_CONFIG,
  RequestCode.GET_TOPIC_STATS_INFO,
  RequestCode.GET_CONSUME_STATS,
  RequestCode.GET_CONSUMER_CONNECTION_LIST,
  RequestCode.GET_PRODUCER_CONNECTION_LIST,
  RequestCode.GET_BROKER_RUNTIME_INFO,
  RequestCode.GET_BROKER_CONFIG,
  RequestCode.UPDATE_BROKER_CONFIG,
  RequestCode.INVOKE_BROKER_TO_RESET_OFFSET,
  RequestCode.GET_TOPIC_CONFIG,
  RequestCode.GET_ALL_CONSUMER_OFFSET,
  RequestCode.GET_ALL_DELAY_OFFSET,
];

// =========================================================================================================
// RocketMQ names (TopicValidator, MixAll, PopAckConstants, TimerMessageStore, FAQUrl)

const SYSTEM_TOPIC_PREFIX = 'rmq_sys_';
const RMQ_SYS_SELF_TEST_TOPIC = 'SELF_TEST_TOPIC';
const RMQ_SYS_BENCHMARK_TOPIC = 'BenchmarkTest';
const RMQ_SYS_OFFSET_MOVED_EVENT = 'OFFSET_MOVED_EVENT';
const RMQ_SYS_TRANS_HALF_TOPIC = 'RMQ_SYS_TRANS_HALF_TOPIC';
const RMQ_SYS_TRANS_OP_HALF_TOPIC = 'RMQ_SYS_TRANS_OP_HALF_TOPIC';
const RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC = 'TRANS_CHECK_MAX_TIME_TOPIC';
const RMQ_SYS_TRACE_TOPIC = 'RMQ_SYS_TRACE_TOPIC';
const RMQ_SYS_ROCKSDB_OFFSET_TOPIC = 'CHECKPOINT_TOPIC';
const TIMER_TOPIC = `${SYSTEM_TOPIC_PREFIX}wheel_timer`;
const REVIVE_TOPIC_PREFIX = `${SYSTEM_TOPIC_PREFIX}REVIVE_LOG_`;
const SYNC_BROKER_MEMBER_GROUP_PREFIX = `${SYSTEM_TOPIC_PREFIX}SYNC_BROKER_MEMBER_`;
const REPLY_TOPIC_POSTFIX = 'REPLY_TOPIC';
const SCHEDULE_TOPIC_QUEUE_NUM = 18;
/** The topics TopicValidator always counts as system topics. */
const FIXED_SYSTEM_TOPICS = [
  AUTO_CREATE_TOPIC_KEY_TOPIC,
  SCHEDULE_TOPIC,
  RMQ_SYS_BENCHMARK_TOPIC,
  RMQ_SYS_TRANS_HALF_TOPIC,
  RMQ_SYS_TRACE_TOPIC,
  RMQ_SYS_TRANS_OP_HALF_TOPIC,
  RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC,
  RMQ_SYS_SELF_TEST_TOPIC,
  RMQ_SYS_OFFSET_MOVED_EVENT,
  RMQ_SYS_ROCKSDB_OFFSET_TOPIC,
];
/** Topics no client may send to (TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET). */
const NOT_ALLOWED_SEND_TOPICS: ReadonlySet<string> = new Set([
  SCHEDULE_TOPIC,
  RMQ_SYS_TRANS_HALF_TOPIC,
  RMQ_SYS_TRANS_OP_HALF_TOPIC,
  RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC,
  RMQ_SYS_SELF_TEST_TOPIC,
  RMQ_SYS_OFFSET_MOVED_EVENT,
]);
/** The groups SubscriptionGroupManager.init creates. */
const SYSTEM_GROUPS = [
  'TOOLS_CONSUMER',
  'FILTERSRV_CONSUMER',
  'SELF_TEST_C_GROUP',
  'CID_ONS-HTTP-PROXY',
  'CID_ONSAPI_PULL',
  'CID_ONSAPI_PERMISSION',
  'CID_ONSAPI_OWNER',
  'CID_RMQ_SYS_TRANS',
];
const CID_RMQ_SYS_PREFIX = 'CID_RMQ_SYS_';
const DLQ_NUMS_PER_GROUP = 1;
const TOPIC_MAX_LENGTH = 127;
const RETRY_OR_DLQ_TOPIC_MAX_LENGTH = 255;
const GROUP_MAX_LENGTH = 120;
const VALID_NAME = /^[%|a-zA-Z0-9_-]+$/;
const FAQ_SUGGESTION = '\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.';
/** MixAll.UNIQUE_MSG_QUERY_FLAG. */
const UNIQUE_MSG_QUERY_FLAG = '_UNIQUE_KEY_QUERY';
/** Keys UPDATE_BROKER_CONFIG never changes (BrokerConfig.configBlackList). */
const CONFIG_BLACK_LIST = ['configBlackList', 'brokerConfigPath'];
const QUEUE_ID_MAX = 65_535;
const RW = PermName.PERM_READ | PermName.PERM_WRITE;

const isWriteable = (perm: number): boolean => (perm & PermName.PERM_WRITE) === PermName.PERM_WRITE;
const isReadable = (perm: number): boolean => (perm & PermName.PERM_READ) === PermName.PERM_READ;
const isInherited = (perm: number): boolean => (perm & PermName.PERM_INHERIT) === PermName.PERM_INHERIT;

/** TopicValidator.validateTopic: the remark of an invalid name, or undefined. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic.trim() === '') return 'The specified topic is blank.';
  if (!VALID_NAME.test(topic)) return `The specified topic: ${topic}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$`;
  const retryOrDlq = topic.startsWith(RETRY_GROUP_TOPIC_PREFIX) || topic.startsWith('%DLQ%');
  if (retryOrDlq && topic.length > RETRY_OR_DLQ_TOPIC_MAX_LENGTH) {
    return `The specified topic is DLQ or Retry topic: ${topic}, and it's longer than topic max length: ${RETRY_OR_DLQ_TOPIC_MAX_LENGTH}`;
  }
  if (!retryOrDlq && topic.length > TOPIC_MAX_LENGTH) return `The specified topic: ${topic}, is longer than topic max length: ${TOPIC_MAX_LENGTH}`;
  return undefined;
}

/** TopicValidator.validateGroup: the remark of an invalid group name, or undefined. */
export function groupNameProblem(group: string): string | undefined {
  if (group.trim() === '') return 'The specified group is blank.';
  if (!VALID_NAME.test(group)) return `The specified group: ${group}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$`;
  if (group.length > GROUP_MAX_LENGTH) return `The specified group: ${group}, is longer than group max length: ${GROUP_MAX_LENGTH}`;
  return undefined;
}

/**
 * AttributeParser.parseToMap: `+key1=value1,+key2=value2,-key3` into {"+key1": "value1", "-key3": ""}.
 * A JSON object text ({"+key":"value"}) is read too; a RocketMQ attribute string never starts with `{`.
 */
export function parseAttributeRequest(text: string | undefined): Record<string, string> {
  if (text === undefined || text === '') return {};
  if (text.trimStart().startsWith('{')) {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('attributes JSON is not an object');
    return Object.fromEntries(Object.entries(parsed).map(([key, value]) => [key, String(value)]));
  }
  const attributes = new Map<string, string>();
  for (const kv of text.split(',')) {
    let key: string;
    let value: string;
    if (kv.includes('=')) {
      [key = '', value = ''] = kv.split('=');
      if (!key.includes('+')) throw new Error(`add/alter attribute format is wrong: ${key}`);
    } else {
      key = kv;
      value = '';
      if (!key.includes('-')) throw new Error(`delete attribute format is wrong: ${key}`);
    }
    if (attributes.has(key)) throw new Error(`key duplication: ${key}`);
    attributes.set(key, value);
  }
  return Object.fromEntries(attributes);
}

/** Local headers with no codec in broker-headers.ts. */
const DeleteSubscriptionGroupRequestHeader = defineHeader('DeleteSubscriptionGroupRequestHeader', {
  groupName: { kind: 'string', wire: 'groupName', required: true },
  cleanOffset: { kind: 'bool', wire: 'cleanOffset', required: false, fallback: false },
});
const GetProducerConnectionListRequestHeader = defineHeader('GetProducerConnectionListRequestHeader', {
  producerGroup: { kind: 'string', wire: 'producerGroup', required: true },
});
const GetBrokerConfigResponseHeader = defineHeader('GetBrokerConfigResponseHeader', {
  version: { kind: 'string', wire: 'version', required: true },
});

// =========================================================================================================
// State

/** The settings UPDATE_BROKER_CONFIG may change while the broker runs (all read only by this actor). */
type LiveSettings = {
  autoCreateTopicEnable: boolean;
  autoCreateSubscriptionGroup: boolean;
  notifyConsumerIdsChangedEnable: boolean;
  brokerPermission: number;
};

type Ctx = ActorContext<BrokerAdminInbox>;
type Req = RemotingRequestMessage;
type Continuation = (state: State, result: PipeResult<unknown>, ctx: Ctx) => void;
type PutSample = { readonly atMs: number; readonly putOk: number };

type State = {
  /** Replaced when a controller changes this broker's role (brokerId 0 as master, its own id as slave). */
  identity: BrokerIdentity;
  /** The role a controller gave this broker (controller mode); undefined until then, and in static mode. */
  role: BrokerRole | undefined;
  readonly fs: StorageFs;
  readonly paths: StorePaths;
  /** The delayOffset.json text last written from a master's (a sync writes it only when it changes). */
  delayOffsetSynced: string;
  readonly settings: BrokerSettings;
  readonly live: LiveSettings;
  readonly options: BrokerAdminOptions;
  readonly writer: ActorRef<CommitLogWriterMessage>;
  /** This incarnation: piped outcomes of an earlier one are ignored. */
  readonly epoch: number;
  readonly topics: TopicConfigTable;
  readonly groups: SubscriptionGroupTable;
  readonly offsets: ConsumerOffsetTable;
  /** group -> topics it has offsets for (ConsumerOffsetTable keeps no such index; see the report). */
  readonly offsetTopicsByGroup: Map<string, Set<string>>;
  readonly systemTopics: ReadonlySet<string>;
  readonly clients: ClientRegistry;
  readonly locks: QueueLockTable;
  readonly continuations: Map<number, Continuation>;
  nextContinuationId: number;
  nextPushOpaque: number;
  readonly registrar: NamesrvRegistrar | undefined;
  readonly registration: { inFlight: boolean; again: boolean; versionBumps: number; ok: number; failed: number; everOk: Set<string> };
  configVersion: DataVersion;
  dirtyTopics: boolean;
  dirtyGroups: boolean;
  /** Offsets changed since the last write of consumerOffset.json (an idle broker does not rewrite it). */
  dirtyOffsets: boolean;
  readonly putSamples: PutSample[];
  readonly putDays: { day: number; todayMorning: number; yesterdayMorning: number };
  readonly counters: { requests: number; badRequests: number; pushes: number };
};

const PUT_SAMPLES_MAX = 256;
const DAY_MS = 86_400_000;
const TIMER_FLUSH = 'flushOffsets';
const TIMER_REGISTER = 'registerBroker';
const TIMER_SCAN = 'tick';

// =========================================================================================================
// Behavior

/** Builds the behavior over the file system `storageFsOf` returns (tests inject faults there). */
export function brokerAdminBehavior(storageFsOf: (args: BrokerAdminArgs) => StorageFs): Behavior<State, BrokerAdminInbox, BrokerAdminArgs> {
  return {
    init(args, ctx) {
      const state = initialState(args, storageFsOf(args), ctx);
      const { options } = state;
      ctx.timers.startPeriodic(TIMER_FLUSH, { type: 'flushOffsets' }, options.flushConsumerOffsetIntervalMs);
      ctx.timers.startPeriodic(TIMER_SCAN, { type: 'tick' }, options.clientScanIntervalMs);
      if (state.registrar !== undefined) {
        ctx.timers.startPeriodic(TIMER_REGISTER, { type: 'registerBroker' }, options.registerNameServerPeriodMs);
        requestRegistration(state, ctx);
      }
      return state;
    },

    receive(state, message, ctx) {
      handle(state, message, ctx);
      return state;
    },

    onStop(state, ctx) {
      flushOffsets(state, ctx);
      state.continuations.clear();
      if (state.registrar === undefined) return;
      if (state.options.unregisterOnStop) state.registrar.unregisterAll(unregisterHeader(state));
      else state.registrar.close();
    },
  };
}

/** broker-admin over the real file system. */
export const brokerAdmin = brokerAdminBehavior(() => nodeStorageFs);

/** One message: every change to the state happens here, one message at a time. */
function handle(state: State, message: BrokerAdminInbox, ctx: Ctx): void {
  switch (message.type) {
    case 'remotingRequest':
      onRemotingRequest(state, message, ctx);
      return;
    case 'channelClosed':
      onChannelClosed(state, message.channel, ctx);
      return;
    case 'topicForSend':
      ctx.reply(topicForSend(state, message, ctx) satisfies TopicForSendAnswer);
      return;
    case 'groupForRetry':
      ctx.reply(groupForRetry(state, message.group, ctx) satisfies GroupForRetryAnswer);
      return;
    case 'pullMetadata':
      ctx.reply(pullMetadata(state, message.group, message.topic, ctx) satisfies PullMetadataAnswer);
      return;
    case 'commitOffset':
      commitOffsetQuietly(state, message.group, message.topic, message.queueId, message.offset, ctx);
      // Asked (by a pull that answers only once the offset is stored): say it is done.
      if (ctx.isAsk) ctx.reply(true);
      return;
    case 'queryOffset':
      ctx.reply(queryOffset(state, message.group, message.topic, message.queueId));
      return;
    case 'tick':
      scanClients(state, ctx);
      return;
    case 'flushOffsets':
      flushOffsets(state, ctx);
      sampleStore(state, ctx);
      return;
    case 'registerBroker':
      requestRegistration(state, ctx);
      return;
    case 'roleChanged':
      state.role = message.role;
      // RocketMQ's registerBrokerWhenRoleChange: the NameServer learns the new id at once.
      if (state.identity.brokerId !== message.brokerId) {
        ctx.log.info({ brokerId: message.brokerId, role: message.role, masterEpoch: message.masterEpoch }, 'role changed; registering again');
        state.identity = { ...state.identity, brokerId: message.brokerId };
      }
      requestRegistration(state, ctx);
      return;
    case 'registered':
      onRegistered(state, message, ctx);
      return;
    case 'continue':
      onContinue(state, message, ctx);
      return;
    case 'adminStats':
      ctx.reply(statsOf(state));
      return;
    case 'lockAllExpired':
      ctx.reply(state.locks.isLockAllExpired(message.group, ctx.clock.nowMs()));
      return;
    case 'producerChannels': {
      const clients = state.clients.producerGroup(message.group);
      const answer: ProducerChannelsAnswer = clients === undefined ? [] : Array.from(clients.values(), (client) => client.channel);
      ctx.reply(answer);
      return;
    }
    case 'syncFromMaster':
      ctx.reply(syncFromMaster(state, message, ctx) satisfies SyncFromMasterAnswer);
      return;
    case 'subscriptionOf': {
      const answer: SubscriptionOfAnswer = {
        group: state.groups.get(message.group),
        subscription: state.clients.findSubscription(message.group, message.topic),
        consumerOnline: state.clients.consumerGroup(message.group) !== undefined,
      };
      ctx.reply(answer);
      return;
    }
    default:
      return assertNever(message, 'broker admin message');
  }
}

function checkOptions(options: BrokerAdminOptions): void {
  const positive = [
    'topicsMax', 'subscriptionGroupsMax', 'consumerOffsetsMax', 'locksMax', 'lockMaxLiveMs', 'pendingAsksMax',
    'flushConsumerOffsetIntervalMs', 'registerNameServerPeriodMs', 'registerBrokerTimeoutMs', 'namesrvConnectTimeoutMs',
    'clientScanIntervalMs', 'channelExpiredTimeoutMs', 'reviveQueueNum', 'defaultQueryMaxNum',
  ] as const;
  for (const key of positive) assert(Number.isSafeInteger(options[key]) && options[key] >= 1, `${key} must be a positive integer`);
  assert(Number.isInteger(options.brokerPermission) && options.brokerPermission >= 0 && options.brokerPermission <= 15, 'brokerPermission is PermName bits');
}

function initialState(args: BrokerAdminArgs, fs: StorageFs, ctx: Ctx): State {
  const options: BrokerAdminOptions = { ...BROKER_ADMIN_DEFAULTS, ...args.options };
  checkOptions(options);
  const { settings, identity } = args;
  assert(settings.defaultTopicQueueNums >= 1, 'defaultTopicQueueNums must be positive');
  const paths = storePaths(settings.storePathRootDir);
  const nowMs = (): number => Math.floor(ctx.clock.nowMs());
  const topics = new TopicConfigTable({ fs, filePath: paths.topicsFile, nowMs, entriesMax: options.topicsMax, defaultTopicQueueNums: settings.defaultTopicQueueNums });
  const groups = new SubscriptionGroupTable({ fs, filePath: paths.subscriptionGroupFile, nowMs, entriesMax: options.subscriptionGroupsMax });
  const offsets = new ConsumerOffsetTable({ fs, filePath: paths.consumerOffsetFile, nowMs, entriesMax: options.consumerOffsetsMax });
  const sources = { topics: topics.load(), groups: groups.load(), offsets: offsets.load() };
  const offsetTopicsByGroup = loadOffsetIndex(fs, paths.consumerOffsetFile);
  ctx.log.info({ ...sources, topics: topics.size, groups: groups.size, offsets: offsets.entries }, 'broker metadata loaded');
  const live: LiveSettings = {
    autoCreateTopicEnable: settings.autoCreateTopicEnable,
    autoCreateSubscriptionGroup: settings.autoCreateSubscriptionGroup,
    notifyConsumerIdsChangedEnable: options.notifyConsumerIdsChangedEnable,
    brokerPermission: options.brokerPermission,
  };
  const systemTopicConfigs = systemTopicsOf(identity, settings, options);
  const registrar = settings.namesrvAddrs.length === 0
    ? undefined
    : new NamesrvRegistrar({
        namesrvAddrs: settings.namesrvAddrs,
        clock: ctx.clock,
        connectTimeoutMs: options.namesrvConnectTimeoutMs,
        requestTimeoutMs: options.registerBrokerTimeoutMs,
        log: (level, message, fields) => ctx.log[level](fields, message),
      });
  const state: State = {
    identity,
    role: undefined,
    fs,
    paths,
    delayOffsetSynced: '',
    settings,
    live,
    options,
    writer: args.refs.writer,
    epoch: Math.floor(ctx.random() * 0x7fff_ffff),
    topics,
    groups,
    offsets,
    offsetTopicsByGroup,
    systemTopics: new Set([...FIXED_SYSTEM_TOPICS, ...systemTopicConfigs.map((config) => config.topicName)]),
    clients: new ClientRegistry({
      consumerGroupsMax: options.consumerGroupsMax,
      producerGroupsMax: options.producerGroupsMax,
      clientsPerGroupMax: options.clientsPerGroupMax,
      subscriptionsPerGroupMax: options.subscriptionsPerGroupMax,
    }),
    locks: new QueueLockTable({ locksMax: options.locksMax, lockMaxLiveMs: options.lockMaxLiveMs }),
    continuations: new Map(),
    nextContinuationId: 1,
    nextPushOpaque: 1,
    registrar,
    registration: { inFlight: false, again: false, versionBumps: 0, ok: 0, failed: 0, everOk: new Set() },
    configVersion: newDataVersion(nowMs()),
    dirtyTopics: false,
    dirtyGroups: false,
    dirtyOffsets: false,
    putSamples: [],
    putDays: { day: -1, todayMorning: 0, yesterdayMorning: 0 },
    counters: { requests: 0, badRequests: 0, pushes: 0 },
  };
  createSystemMetadata(state, systemTopicConfigs, ctx);
  return state;
}

/** Reads which groups have offsets for which topics: the keys of consumerOffset.json. */
function loadOffsetIndex(fs: StorageFs, filePath: string): Map<string, Set<string>> {
  const index = new Map<string, Set<string>>();
  const loaded = new JsonConfigFile({ fs, path: filePath, schema: consumerOffsetDocumentSchema }).load();
  indexOffsetKeys(index, Object.keys(loaded.value?.offsetTable ?? {}));
  return index;
}

/** Adds `topic@group` keys to the group -> topics index. */
function indexOffsetKeys(index: Map<string, Set<string>>, keys: Iterable<string>): void {
  for (const key of keys) {
    const at = key.indexOf(TOPIC_GROUP_SEPARATOR);
    if (at <= 0 || at === key.length - 1) continue;
    addOffsetIndex(index, key.slice(at + 1), key.slice(0, at));
  }
}

function addOffsetIndex(index: Map<string, Set<string>>, group: string, topic: string): void {
  let topics = index.get(group);
  if (topics === undefined) {
    topics = new Set();
    index.set(group, topics);
  }
  topics.add(topic);
}

/** The topics TopicConfigManager.init creates, with their queue counts and perms. */
function systemTopicsOf(identity: BrokerIdentity, settings: BrokerSettings, options: BrokerAdminOptions): TopicConfigRequest[] {
  const one = (topicName: string, perm = RW): TopicConfigRequest => ({ topicName, readQueueNums: 1, writeQueueNums: 1, perm });
  const clusterPerm = PermName.PERM_INHERIT | (options.clusterTopicEnable ? RW : 0);
  const brokerPerm = PermName.PERM_INHERIT | (options.brokerTopicEnable ? RW : 0);
  const topics: TopicConfigRequest[] = [one(RMQ_SYS_SELF_TEST_TOPIC)];
  if (settings.autoCreateTopicEnable) {
    const queues = settings.defaultTopicQueueNums;
    topics.push({ topicName: AUTO_CREATE_TOPIC_KEY_TOPIC, readQueueNums: queues, writeQueueNums: queues, perm: PermName.PERM_INHERIT | RW });
  }
  topics.push(
    { topicName: RMQ_SYS_BENCHMARK_TOPIC, readQueueNums: 1024, writeQueueNums: 1024, perm: RW },
    { topicName: identity.clusterName, readQueueNums: 16, writeQueueNums: 16, perm: clusterPerm },
    one(identity.brokerName, brokerPerm),
    one(RMQ_SYS_OFFSET_MOVED_EVENT),
    { topicName: SCHEDULE_TOPIC, readQueueNums: SCHEDULE_TOPIC_QUEUE_NUM, writeQueueNums: SCHEDULE_TOPIC_QUEUE_NUM, perm: RW },
  );
  if (options.traceTopicEnable) topics.push(one(options.msgTraceTopicName));
  topics.push(
    one(`${identity.clusterName}_${REPLY_TOPIC_POSTFIX}`),
    { topicName: `${REVIVE_TOPIC_PREFIX}${identity.clusterName}`, readQueueNums: options.reviveQueueNum, writeQueueNums: options.reviveQueueNum, perm: RW },
    one(`${SYNC_BROKER_MEMBER_GROUP_PREFIX}${identity.brokerName}`, PermName.PERM_INHERIT),
    one(RMQ_SYS_TRANS_HALF_TOPIC),
    one(RMQ_SYS_TRANS_OP_HALF_TOPIC),
    // RocketMQ creates it on the first discard (createTopicOfTranCheckMaxTime); here with the others, so
    // discarded half messages can be read (never consumed: no group subscribes to it) from the start.
    one(RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC),
  );
  if (options.timerWheelEnable) topics.push(one(TIMER_TOPIC));
  return topics;
}

/** Adds the system topics and groups a loaded table lacks (RocketMQ's init puts them, the file wins). */
function createSystemMetadata(state: State, systemTopics: readonly TopicConfigRequest[], ctx: Ctx): void {
  let topicsAdded = 0;
  for (const request of systemTopics) {
    if (state.topics.get(request.topicName) !== undefined) continue;
    state.topics.update(request);
    topicsAdded++;
  }
  let groupsAdded = 0;
  for (const groupName of SYSTEM_GROUPS) {
    if (state.groups.get(groupName) !== undefined) continue;
    state.groups.update({ groupName });
    groupsAdded++;
  }
  if (topicsAdded > 0) saveTopics(state, ctx);
  if (groupsAdded > 0) saveGroups(state, ctx);
}

// =========================================================================================================
// Persistence

/** Whether an error is a failed write we retry later (as opposed to a programmer error, which crashes). */
function isRetryableWriteError(error: unknown): boolean {
  return !(error instanceof AssertionError) && error instanceof Error;
}

function saveTopics(state: State, ctx: Ctx): boolean {
  try {
    state.topics.persist();
    state.dirtyTopics = false;
    return true;
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    state.dirtyTopics = true;
    ctx.log.error({ err: errorText(error) }, 'topics.json not written; retried at the next offset flush');
    return false;
  }
}

function saveGroups(state: State, ctx: Ctx): boolean {
  try {
    state.groups.persist();
    state.dirtyGroups = false;
    return true;
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    state.dirtyGroups = true;
    ctx.log.error({ err: errorText(error) }, 'subscriptionGroup.json not written; retried at the next offset flush');
    return false;
  }
}

/** Persists consumerOffset.json (ConsumerOffsetManager.persist) and any table whose last write failed. */
function flushOffsets(state: State, ctx: Ctx): void {
  try {
    if (state.dirtyOffsets) state.offsets.persist();
    state.dirtyOffsets = false;
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    ctx.log.error({ err: errorText(error) }, 'consumerOffset.json not written; retried at the next flush');
  }
  if (state.dirtyTopics) saveTopics(state, ctx);
  if (state.dirtyGroups) saveGroups(state, ctx);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// =========================================================================================================
// Topics and groups (TopicConfigManager, SubscriptionGroupManager)

/** Records a topic change: written at once, and told to the NameServers soon. */
function topicsChanged(state: State, ctx: Ctx, register: boolean): void {
  saveTopics(state, ctx);
  if (register) requestRegistration(state, ctx);
}

/**
 * TopicConfigManager.createTopicInSendMessageBackMethod: the topic, created with `queueNums` queues and
 * `perm` when absent; an existing topic whose `order` differs is updated.
 */
function createTopicInSendMessageBackMethod(
  state: State,
  topic: string,
  queueNums: number,
  perm: number,
  isOrder: boolean,
  topicSysFlag: number,
  ctx: Ctx,
): TopicConfig {
  const existing = state.topics.get(topic);
  if (existing !== undefined) {
    if (existing.order === isOrder) return existing;
    const updated = state.topics.update({ topicName: topic, order: isOrder });
    topicsChanged(state, ctx, false);
    return updated;
  }
  const created = state.topics.update({ topicName: topic, readQueueNums: queueNums, writeQueueNums: queueNums, perm, topicSysFlag, order: isOrder });
  ctx.log.info({ topic, queueNums, perm }, 'create new topic');
  topicsChanged(state, ctx, true);
  return created;
}

/** TopicConfigManager.createTopicInSendMessageMethod: a new topic copying the default topic, or undefined. */
function createTopicInSendMessageMethod(state: State, message: Extract<BrokerAdminMessage, { type: 'topicForSend' }>, ctx: Ctx): TopicConfig | undefined {
  const defaultConfig = state.topics.get(message.defaultTopic);
  if (defaultConfig === undefined) {
    ctx.log.warn({ defaultTopic: message.defaultTopic, producer: message.from }, 'Create new topic failed, because the default topic not exist');
    return undefined;
  }
  // RocketMQ strips TBW102's inherit bit when auto-creation is off, whatever topics.json says.
  const defaultPerm = message.defaultTopic === AUTO_CREATE_TOPIC_KEY_TOPIC && !state.live.autoCreateTopicEnable ? RW : defaultConfig.perm;
  if (!isInherited(defaultPerm)) {
    ctx.log.warn({ defaultTopic: message.defaultTopic, perm: defaultPerm, producer: message.from }, 'Create new topic failed, because the default topic has no perm');
    return undefined;
  }
  const queueNums = Math.max(0, Math.min(message.defaultTopicQueueNums, defaultConfig.writeQueueNums));
  const created = state.topics.update({
    topicName: message.topic,
    readQueueNums: queueNums,
    writeQueueNums: queueNums,
    perm: defaultPerm & ~PermName.PERM_INHERIT,
    topicSysFlag: 0,
    topicFilterType: defaultConfig.topicFilterType,
  });
  ctx.log.info({ topic: message.topic, defaultTopic: message.defaultTopic, queueNums, producer: message.from }, 'Create new topic by default topic');
  topicsChanged(state, ctx, true);
  return created;
}

function topicForSend(state: State, message: Extract<BrokerAdminMessage, { type: 'topicForSend' }>, ctx: Ctx): TopicForSendAnswer {
  const problem = topicNameProblem(message.topic);
  if (problem !== undefined) return { ok: false, code: ResponseCode.INVALID_PARAMETER, remark: problem };
  if (NOT_ALLOWED_SEND_TOPICS.has(message.topic)) {
    return { ok: false, code: ResponseCode.NO_PERMISSION, remark: `Sending message to topic[${message.topic}] is forbidden.` };
  }
  let topic = state.topics.get(message.topic);
  try {
    if (topic === undefined) {
      topic = createTopicInSendMessageMethod(state, message, ctx);
      if (topic === undefined && message.topic.startsWith(RETRY_GROUP_TOPIC_PREFIX)) {
        topic = createTopicInSendMessageBackMethod(state, message.topic, 1, RW, false, 0, ctx);
      }
    }
  } catch (error) {
    if (!(error instanceof MetadataError)) throw error;
    return { ok: false, code: ResponseCode.SYSTEM_ERROR, remark: error.message };
  }
  if (topic === undefined) {
    return { ok: false, code: ResponseCode.TOPIC_NOT_EXIST, remark: `topic[${message.topic}] not exist, apply first please!${FAQ_SUGGESTION}` };
  }
  if (!isWriteable(topic.perm)) return { ok: false, code: ResponseCode.NO_PERMISSION, remark: `the topic[${message.topic}] sending message is forbidden` };
  return { ok: true, topic };
}

/**
 * SubscriptionGroupManager.findSubscriptionGroupConfig: the group, auto-created when
 * autoCreateSubscriptionGroup (or a CID_RMQ_SYS_ group with enableCreateSysGroup) allows; undefined otherwise.
 */
function findSubscriptionGroup(state: State, group: string, ctx: Ctx): SubscriptionGroupConfig | undefined {
  const existing = state.groups.get(group);
  if (existing !== undefined) return existing;
  const mayCreate = state.live.autoCreateSubscriptionGroup || (state.options.enableCreateSysGroup && group.startsWith(CID_RMQ_SYS_PREFIX));
  if (!mayCreate || groupNameProblem(group) !== undefined) return undefined;
  const created = state.groups.update({ groupName: group });
  ctx.log.info({ group }, 'auto create a subscription group');
  saveGroups(state, ctx);
  return created;
}

function groupForRetry(state: State, group: string, ctx: Ctx): GroupForRetryAnswer {
  try {
    const config = findSubscriptionGroup(state, group, ctx);
    if (config === undefined) {
      return { ok: false, code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, remark: `subscription group not exist, ${group} ${FAQ_SUGGESTION}` };
    }
    const retryTopic = createTopicInSendMessageBackMethod(state, retryTopicOf(group), config.retryQueueNums, RW, false, 0, ctx);
    if (!isWriteable(retryTopic.perm)) {
      return { ok: false, code: ResponseCode.NO_PERMISSION, remark: `the topic[${retryTopic.topicName}] sending message is forbidden` };
    }
    const dlqTopic = createTopicInSendMessageBackMethod(state, dlqTopicOf(group), DLQ_NUMS_PER_GROUP, RW, false, 0, ctx);
    return { ok: true, group: config, retryTopic, dlqTopic };
  } catch (error) {
    if (!(error instanceof MetadataError)) throw error;
    return { ok: false, code: ResponseCode.SYSTEM_ERROR, remark: error.message };
  }
}

/**
 * What a pull needs to know, read as PullMessageProcessor reads it: the group (auto-created like
 * findSubscriptionGroupConfig, never with a retry or DLQ topic), the topic as it is (a pull creates
 * none), and the group's online clients' message model and subscription of the topic.
 */
function pullMetadata(state: State, group: string, topic: string, ctx: Ctx): PullMetadataAnswer {
  let groupAnswer: PullMetadataAnswer['group'];
  try {
    const config = findSubscriptionGroup(state, group, ctx);
    groupAnswer = config === undefined
      ? { ok: false, code: ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, remark: `subscription group [${group}] does not exist, ${FAQ_SUGGESTION}` }
      : {
          ok: true,
          consumeEnable: config.consumeEnable,
          consumeBroadcastEnable: config.consumeBroadcastEnable,
          groupSysFlag: config.groupSysFlag,
          brokerId: config.brokerId,
          whichBrokerWhenConsumeSlowly: config.whichBrokerWhenConsumeSlowly,
        };
  } catch (error) {
    if (!(error instanceof MetadataError)) throw error;
    groupAnswer = { ok: false, code: ResponseCode.SYSTEM_ERROR, remark: error.message };
  }
  const topicConfig = state.topics.get(topic);
  const info = state.clients.consumerGroup(group);
  return {
    brokerPermission: state.live.brokerPermission,
    group: groupAnswer,
    topic: topicConfig === undefined ? undefined : { perm: topicConfig.perm, readQueueNums: topicConfig.readQueueNums, topicSysFlag: topicConfig.topicSysFlag },
    consumer: info === undefined ? undefined : { messageModel: info.messageModel, subscription: info.subscriptions.get(topic) },
  };
}

function isSystemTopic(state: State, topic: string): boolean {
  return state.systemTopics.has(topic) || topic.startsWith(SYSTEM_TOPIC_PREFIX);
}

// =========================================================================================================
// Offsets (ConsumerOffsetManager)

function validOffsetKey(group: string, topic: string, queueId: number): boolean {
  return group.length > 0 && topic.length > 0 && Number.isSafeInteger(queueId) && queueId >= 0 && queueId <= QUEUE_ID_MAX;
}

/** The group's committed offset on a queue, -1 when none (ConsumerOffsetManager.queryOffset). */
function queryOffset(state: State, group: string, topic: string, queueId: number): number {
  return validOffsetKey(group, topic, queueId) ? state.offsets.query(group, topic, queueId) : -1;
}

/** Stores an offset; the refusal text when the key is invalid or the table is full. */
function commitOffset(state: State, group: string, topic: string, queueId: number, offset: number): string | undefined {
  if (!validOffsetKey(group, topic, queueId)) return `bad offset key: group ${JSON.stringify(group)} topic ${JSON.stringify(topic)} queueId ${queueId}`;
  if (!Number.isSafeInteger(offset)) return `bad offset ${offset}`;
  try {
    state.offsets.commit(group, topic, queueId, offset);
    state.dirtyOffsets = true;
  } catch (error) {
    if (!(error instanceof MetadataError)) throw error;
    return error.message;
  }
  addOffsetIndex(state.offsetTopicsByGroup, group, topic);
  return undefined;
}

function commitOffsetQuietly(state: State, group: string, topic: string, queueId: number, offset: number, ctx: Ctx): void {
  const refusal = commitOffset(state, group, topic, queueId, offset);
  if (refusal !== undefined) ctx.log.warn({ group, topic, queueId, offset, reason: refusal }, 'consumer offset not stored');
}

/** ConsumerOffsetManager.cleanOffsetByTopic. */
function removeOffsetsOfTopic(state: State, topic: string): void {
  for (const [group, topics] of state.offsetTopicsByGroup) {
    if (!topics.delete(topic)) continue;
    state.offsets.remove(group, topic);
    state.dirtyOffsets = true;
    if (topics.size === 0) state.offsetTopicsByGroup.delete(group);
  }
}

/** ConsumerOffsetManager.removeOffset(group). */
function removeOffsetsOfGroup(state: State, group: string): void {
  for (const topic of state.offsetTopicsByGroup.get(group) ?? []) state.offsets.remove(group, topic);
  state.dirtyOffsets ||= state.offsetTopicsByGroup.delete(group);
}

// =========================================================================================================
// Clients (ClientManageProcessor, ConsumerManager, Broker2Client)

function respond(ctx: Ctx, req: Req, response: RemotingCommand): void {
  if (isOneway(req.request)) return;
  if (!ctx.tell(req.channel.acceptor, { type: 'respond', connectionId: req.channel.connectionId, response })) {
    ctx.log.warn({ code: req.request.code, acceptor: req.channel.acceptor.name }, 'acceptor did not take the answer');
  }
}

/** Sends a server-initiated oneway request to a client connection. */
function push(state: State, ctx: Ctx, channel: RemotingChannel, code: number, extFields: Record<string, string>, body?: Uint8Array): void {
  const opaque = state.nextPushOpaque;
  state.nextPushOpaque = (opaque + 1) | 0;
  const request = createRequest({ code, opaque, oneway: true, extFields, version: MQVersionOrdinal.V5_3_3, ...(body === undefined ? {} : { body }) });
  state.counters.pushes++;
  if (!ctx.tell(channel.acceptor, { type: 'push', connectionId: channel.connectionId, request })) {
    ctx.log.warn({ code, acceptor: channel.acceptor.name }, 'acceptor did not take a push');
  }
}

/** Broker2Client.notifyConsumerIdsChanged to every given client of the group. */
function notifyConsumerIdsChanged(state: State, ctx: Ctx, group: string, clients: Iterable<ClientChannelInfo>): void {
  if (!state.live.notifyConsumerIdsChangedEnable) return;
  const extFields = NotifyConsumerIdsChangedRequestHeader.format({ consumerGroup: group });
  for (const client of clients) push(state, ctx, client.channel, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, extFields);
}

/** Tells the group's remaining consumers to rebalance, unless the group is gone or broadcasting. */
function notifyRemaining(state: State, ctx: Ctx, group: string): void {
  const info = state.clients.consumerGroup(group);
  if (info === undefined || info.messageModel === 'BROADCASTING') return;
  notifyConsumerIdsChanged(state, ctx, group, info.channels.values());
}

const heartBeat: Handler = (state, req, ctx) => {
  const data = parseHeartbeatData(req.request.body);
  const nowMs = ctx.clock.nowMs();
  const client = { channel: req.channel, clientId: data.clientID, language: req.request.language, version: req.request.version };
  const v2 = data.heartbeatFingerprint !== 0;
  let isSubChange = false;
  const refusals: string[] = [];
  for (const consumer of data.consumerDataSet) {
    const known = state.clients.heartbeatFingerprint(consumer.groupName);
    if (v2 && known !== undefined && known !== data.heartbeatFingerprint) isSubChange = true;
    // Without subscriptions from a group we hold none of: ask for them (see the header).
    if (v2 && data.withoutSub && known === undefined) isSubChange = true;
    const config = findSubscriptionGroup(state, consumer.groupName, ctx);
    if (config === undefined) continue;
    const hasOrderTopicSub = consumer.subscriptionDataSet.some((sub) => state.topics.get(sub.topic)?.order === true);
    const topicSysFlag = consumer.unitMode ? TopicSysFlag.FLAG_UNIT_SUB : 0;
    createTopicInSendMessageBackMethod(state, retryTopicOf(consumer.groupName), config.retryQueueNums, RW, hasOrderTopicSub, topicSysFlag, ctx);
    const outcome = state.clients.registerConsumer(
      {
        group: consumer.groupName,
        client,
        consumeType: consumer.consumeType,
        messageModel: consumer.messageModel,
        consumeFromWhere: consumer.consumeFromWhere,
        subscriptions: v2 && data.withoutSub ? undefined : consumer.subscriptionDataSet,
      },
      nowMs,
    );
    if (outcome.kind === 'refused') {
      refusals.push(`consumer group ${consumer.groupName}: ${outcome.reason}`);
      continue;
    }
    state.clients.setHeartbeatFingerprint(consumer.groupName, data.heartbeatFingerprint);
    if (outcome.channelAdded || outcome.subscriptionChanged) {
      ctx.log.info({ group: consumer.groupName, clientId: data.clientID, remote: req.channel.remoteAddress }, 'registerConsumer info changed');
      if (config.notifyConsumerIdsChangedEnable) notifyRemaining(state, ctx, consumer.groupName);
    }
  }
  for (const producer of data.producerDataSet) {
    if (!state.clients.registerProducer(producer.groupName, client, nowMs)) refusals.push(`producer group ${producer.groupName}: too many producer groups or clients`);
  }
  if (refusals.length > 0) {
    ctx.log.warn({ clientId: data.clientID, refusals }, 'heartbeat partly refused');
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `heartbeat refused: ${refusals.join('; ')}`);
  }
  const extFields = HeartbeatResponseFields.format({ isSupportHeartBeatV2: true, isSubChange: v2 ? isSubChange : true });
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields });
};

const unregisterClient: Handler = (state, req, ctx) => {
  const header = UnregisterClientRequestHeader.parse(req.request.extFields);
  if (header.producerGroup !== undefined) state.clients.unregisterProducer(header.producerGroup, req.channel);
  if (header.consumerGroup !== undefined) {
    const outcome = state.clients.unregisterConsumer(header.consumerGroup, req.channel);
    const notify = state.groups.get(header.consumerGroup)?.notifyConsumerIdsChangedEnable ?? true;
    if (outcome !== undefined) {
      ctx.log.info({ group: header.consumerGroup, clientId: header.clientID, removed: outcome.removed }, 'unregister consumer');
      if (notify) notifyRemaining(state, ctx, header.consumerGroup);
    }
  }
  return createResponse(req.request, ResponseCode.SUCCESS);
};

function onChannelClosed(state: State, channel: RemotingChannel, ctx: Ctx): void {
  const removed = state.clients.channelClosed(channel);
  for (const gone of removed.consumers) {
    ctx.log.info({ group: gone.group, clientId: gone.client.clientId, remote: channel.remoteAddress }, 'consumer connection closed; removed from group');
    notifyRemaining(state, ctx, gone.group);
  }
}

/** ClientHousekeepingService: drops clients silent past channelExpiredTimeout, and expired queue locks. */
function scanClients(state: State, ctx: Ctx): void {
  const nowMs = ctx.clock.nowMs();
  const removed = state.clients.expire(nowMs, state.options.channelExpiredTimeoutMs);
  const closed = new Map<string, RemotingChannel>();
  const report = (kind: string, gone: RemovedClient): void => {
    ctx.log.warn({ kind, group: gone.group, clientId: gone.client.clientId, remote: gone.client.channel.remoteAddress }, 'SCAN: remove expired channel');
    closed.set(channelKey(gone.client.channel), gone.client.channel);
  };
  for (const gone of removed.consumers) report('consumer', gone);
  for (const gone of removed.producers) report('producer', gone);
  for (const channel of closed.values()) ctx.tell(channel.acceptor, { type: 'closeConnection', connectionId: channel.connectionId });
  for (const group of new Set(removed.consumers.map((gone) => gone.group))) notifyRemaining(state, ctx, group);
  const dropped = state.locks.sweep(nowMs);
  if (dropped > 0) ctx.log.debug({ dropped }, 'expired queue locks dropped');
}

const getConsumerListByGroup: Handler = (state, req, ctx) => {
  const header = GetConsumerListByGroupRequestHeader.parse(req.request.extFields);
  const consumerIdList = state.clients.consumerIds(header.consumerGroup);
  if (consumerIdList.length > 0) {
    return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatGetConsumerListByGroupResponseBody({ consumerIdList }) });
  }
  ctx.log.warn({ group: header.consumerGroup, remote: req.channel.remoteAddress }, 'getConsumerGroupInfo failed');
  return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `no consumer for this group, ${header.consumerGroup}`);
};

const checkClientConfig: Handler = (state, req) => {
  const body = plainJsonBody(req.request.body, 'CheckClientRequestBody');
  const sub = isRecord(body) && isRecord(body.subscriptionData) ? body.subscriptionData : undefined;
  if (sub === undefined) return createResponse(req.request, ResponseCode.SUCCESS);
  const expressionType = typeof sub.expressionType === 'string' ? sub.expressionType : undefined;
  if (isTagType(expressionType)) return createResponse(req.request, ResponseCode.SUCCESS);
  if (!state.settings.enablePropertyFilter) {
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `The broker does not support consumer to filter message by ${expressionType}`);
  }
  if (!isSql92(expressionType)) return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `no filter for expression type ${expressionType}`);
  try {
    compileSql92(typeof sub.subString === 'string' ? sub.subString : '');
  } catch (error) {
    return createResponse(req.request, ResponseCode.SUBSCRIPTION_PARSE_FAILED, errorText(error));
  }
  return createResponse(req.request, ResponseCode.SUCCESS);
};

function connectionOf(client: ClientChannelInfo): Connection {
  return { clientId: client.clientId, clientAddr: client.channel.remoteAddress, language: client.language, version: client.version };
}

const getConsumerConnectionList: Handler = (state, req) => {
  const header = GetConsumerConnectionListRequestHeader.parse(req.request.extFields);
  const info = state.clients.consumerGroup(header.consumerGroup);
  if (info === undefined) {
    return createResponse(req.request, ResponseCode.CONSUMER_NOT_ONLINE, `the consumer group[${header.consumerGroup}] not online`);
  }
  const body = formatConsumerConnection({
    connectionSet: Array.from(info.channels.values(), connectionOf),
    subscriptionTable: info.subscriptions,
    consumeType: info.consumeType,
    messageModel: info.messageModel,
    consumeFromWhere: info.consumeFromWhere,
  });
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body });
};

const getProducerConnectionList: Handler = (state, req) => {
  const header = GetProducerConnectionListRequestHeader.parse(req.request.extFields);
  const channels = state.clients.producerGroup(header.producerGroup);
  if (channels === undefined) return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `the producer group[${header.producerGroup}] not exist`);
  // ProducerConnection as fastjson writes it: properties in name order.
  const connectionSet = Array.from(channels.values(), (client) => {
    const c = connectionOf(client);
    return { clientAddr: c.clientAddr, clientId: c.clientId, language: c.language, version: c.version };
  });
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: Buffer.from(JSON.stringify({ connectionSet }), 'utf8') });
};

// =========================================================================================================
// Queue locks

const lockBatchMQ: Handler = (state, req, ctx) => {
  const body = parseLockBatchRequestBody(req.request.body);
  const lockOKMQSet = state.locks.tryLockBatch(body.consumerGroup, body.mqSet, body.clientId, ctx.clock.nowMs());
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatLockBatchResponseBody({ lockOKMQSet }) });
};

const unlockBatchMQ: Handler = (state, req) => {
  const body = parseUnlockBatchRequestBody(req.request.body);
  state.locks.unlockBatch(body.consumerGroup, body.mqSet, body.clientId);
  return createResponse(req.request, ResponseCode.SUCCESS);
};

// =========================================================================================================
// Asking the store: continuations

type Ask = <R>(message: CommitLogWriterMessage) => Promise<R>;
type QueueRange = { readonly minOffset: number; readonly maxOffset: number };

function askerOf(state: State, ctx: Ctx): Ask {
  return <R>(message: CommitLogWriterMessage): Promise<R> => ctx.ask<CommitLogWriterMessage, R>(state.writer, message);
}

/** Runs `work` against the store and continues with its outcome in `receive`; false when too many wait. */
function later<T>(state: State, ctx: Ctx, work: (ask: Ask) => Promise<T>, then: (state: State, result: PipeResult<T>, ctx: Ctx) => void): boolean {
  if (state.continuations.size >= state.options.pendingAsksMax) return false;
  const id = state.nextContinuationId++;
  const epoch = state.epoch;
  state.continuations.set(id, then as Continuation);
  ctx.pipeToSelf(work(askerOf(state, ctx)), (result) => ({ type: 'continue', epoch, id, result }));
  return true;
}

/** Answers a request once `work` is done: `finish` builds the response from its value. */
function answerLater<T>(
  state: State,
  req: Req,
  ctx: Ctx,
  work: (ask: Ask) => Promise<T>,
  finish: (state: State, value: T, ctx: Ctx) => RemotingCommand,
): RemotingCommand | undefined {
  const accepted = later(state, ctx, work, (current, result, context) => {
    const response = result.ok
      ? guarded(current, req, context, () => finish(current, result.value, context))
      : createResponse(req.request, ResponseCode.SYSTEM_ERROR, `store did not answer: ${errorText(result.error)}`);
    if (response !== undefined) respond(context, req, response);
  });
  if (accepted) return undefined;
  return createResponse(req.request, ResponseCode.SYSTEM_BUSY, `[OVERLOAD]system busy, ${state.options.pendingAsksMax} admin requests already wait for the store`);
}

function onContinue(state: State, message: Extract<BrokerAdminOwnMessage, { type: 'continue' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const continuation = state.continuations.get(message.id);
  if (continuation === undefined) return;
  state.continuations.delete(message.id);
  continuation(state, message.result, ctx);
}

/** Asks, one queue after another, so a topic with many queues holds one ask at a time. */
async function forEachQueue<T>(queueIds: readonly number[], one: (queueId: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (const queueId of queueIds) out.push(await one(queueId));
  return out;
}

function range(count: number): number[] {
  return Array.from({ length: Math.max(0, count) }, (_, index) => index);
}

// =========================================================================================================
// Offsets and store queries (ConsumerManageProcessor, AdminBrokerProcessor, QueryMessageProcessor)

const queryConsumerOffset: Handler = (state, req, ctx) => {
  const header = QueryConsumerOffsetRequestHeader.parse(req.request.extFields);
  const offset = queryOffset(state, header.consumerGroup, header.topic, header.queueId);
  if (offset >= 0) {
    return createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: QueryConsumerOffsetResponseHeader.format({ offset }) });
  }
  if (header.setZeroIfNotFound === false) {
    return createResponse(req.request, ResponseCode.QUERY_NOT_FOUND, 'Not found, do not set to zero, maybe this group boot first');
  }
  // A never-committed queue that still holds its first message is read from 0 (checkInMemByConsumeOffset).
  return answerLater(state, req, ctx, (ask) => ask<QueueRange>({ type: 'queueRange', topic: header.topic, queueId: header.queueId }), (_state, queue) =>
    queue.minOffset <= 0 && queue.maxOffset > 0
      ? createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: QueryConsumerOffsetResponseHeader.format({ offset: 0 }) })
      : createResponse(req.request, ResponseCode.QUERY_NOT_FOUND, 'Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first'),
  );
};

const updateConsumerOffset: Handler = (state, req) => {
  const header = UpdateConsumerOffsetRequestHeader.parse(req.request.extFields);
  if (state.groups.get(header.consumerGroup) === undefined) {
    return createResponse(req.request, ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, `Group ${header.consumerGroup} not exist!`);
  }
  if (state.topics.get(header.topic) === undefined) {
    return createResponse(req.request, ResponseCode.TOPIC_NOT_EXIST, `Topic ${header.topic} not exist!`);
  }
  const refusal = commitOffset(state, header.consumerGroup, header.topic, header.queueId, header.commitOffset);
  if (refusal !== undefined) return createResponse(req.request, ResponseCode.SYSTEM_ERROR, refusal);
  return createResponse(req.request, ResponseCode.SUCCESS);
};

const getMinOffset: Handler = (state, req, ctx) => {
  const header = GetMinOffsetRequestHeader.parse(req.request.extFields);
  return answerLater(state, req, ctx, (ask) => ask<QueueRange>({ type: 'queueRange', topic: header.topic, queueId: header.queueId }), (_state, queue) =>
    createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: GetMinOffsetResponseHeader.format({ offset: queue.minOffset }) }),
  );
};

const getMaxOffset: Handler = (state, req, ctx) => {
  const header = GetMaxOffsetRequestHeader.parse(req.request.extFields);
  return answerLater(state, req, ctx, (ask) => ask<QueueRange>({ type: 'queueRange', topic: header.topic, queueId: header.queueId }), (_state, queue) =>
    createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: GetMaxOffsetResponseHeader.format({ offset: queue.maxOffset }) }),
  );
};

const searchOffsetByTimestamp: Handler = (state, req, ctx) => {
  const header = SearchOffsetRequestHeader.parse(req.request.extFields);
  const boundary = boundaryTypeOf(header.boundaryType) === 'UPPER' ? 'upper' : 'lower';
  const search = { type: 'searchOffset', topic: header.topic, queueId: header.queueId, timestampMs: header.timestamp, boundary } as const;
  return answerLater(state, req, ctx, (ask) => ask<number>(search), (_state, offset) =>
    createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: SearchOffsetResponseHeader.format({ offset }) }),
  );
};

const getEarliestMsgStoretime: Handler = (state, req, ctx) => {
  const header = GetEarliestMsgStoretimeRequestHeader.parse(req.request.extFields);
  const { topic, queueId } = header;
  const work = async (ask: Ask): Promise<number> => {
    const queue = await ask<QueueRange>({ type: 'queueRange', topic, queueId });
    if (queue.maxOffset <= queue.minOffset) return -1;
    return (await ask<number | null>({ type: 'storeTime', topic, queueId, queueOffset: queue.minOffset })) ?? -1;
  };
  return answerLater(state, req, ctx, work, (_state, timestamp) =>
    createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: GetEarliestMsgStoretimeResponseHeader.format({ timestamp }) }),
  );
};

const queryMessage: Handler = (state, req, ctx) => {
  const header = QueryMessageRequestHeader.parse(req.request.extFields);
  const unique = req.request.extFields[UNIQUE_MSG_QUERY_FLAG] === 'true';
  const maxNum = unique ? state.options.defaultQueryMaxNum : header.maxNum;
  const query = { type: 'queryByKey', topic: header.topic, key: header.key, maxNum, beginMs: header.beginTimestamp, endMs: header.endTimestamp } as const;
  return answerLater(state, req, ctx, (ask) => ask<StoredMessage[]>(query), (_state, found) => {
    if (found.length === 0) return createResponse(req.request, ResponseCode.QUERY_NOT_FOUND, 'can not find message, maybe time range not correct');
    let lastTimestamp = 0;
    let lastOffset = 0;
    for (const message of found) {
      lastTimestamp = Math.max(lastTimestamp, decodeRecord(message.record, 0).storeTimestampMs);
      lastOffset = Math.max(lastOffset, message.physicalOffset);
    }
    const extFields = QueryMessageResponseHeader.format({ indexLastUpdateTimestamp: lastTimestamp, indexLastUpdatePhyoffset: lastOffset });
    return createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields, body: Buffer.concat(found.map((message) => message.record)) });
  });
};

const viewMessageById: Handler = (state, req, ctx) => {
  const header = ViewMessageRequestHeader.parse(req.request.extFields);
  return answerLater(state, req, ctx, (ask) => ask<Uint8Array | null>({ type: 'readAt', physicalOffset: header.offset }), (_state, record) =>
    record === null
      ? createResponse(req.request, ResponseCode.SYSTEM_ERROR, `can not find message by the offset, ${header.offset}`)
      : createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: record }),
  );
};

// =========================================================================================================
// Admin: topics and groups (AdminBrokerProcessor)

const updateAndCreateTopic: Handler = (state, req, ctx) => {
  const header = CreateTopicRequestHeader.parse(req.request.extFields);
  const topic = header.topic;
  ctx.log.info({ topic, remote: req.channel.remoteAddress }, 'Broker receive request to update or create topic');
  const problem = topicNameProblem(topic);
  if (problem !== undefined) return createResponse(req.request, ResponseCode.INVALID_PARAMETER, problem);
  if (state.options.validateSystemTopicWhenUpdateTopic && isSystemTopic(state, topic)) {
    return createResponse(req.request, ResponseCode.INVALID_PARAMETER, `The topic[${topic}] is conflict with system topic.`);
  }
  let attributes: Record<string, string>;
  try {
    attributes = parseAttributeRequest(header.attributes);
  } catch (error) {
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, errorText(error));
  }
  if (!state.options.enableMixedMessageType && attributes['+message.type'] === 'MIXED') {
    return createResponse(req.request, ResponseCode.INVALID_PARAMETER, 'MIXED message type is not supported.');
  }
  const request: TopicConfigRequest = {
    topicName: topic,
    readQueueNums: header.readQueueNums,
    writeQueueNums: header.writeQueueNums,
    perm: header.perm,
    topicFilterType: header.topicFilterType === 'MULTI_TAG' ? 'MULTI_TAG' : 'SINGLE_TAG',
    topicSysFlag: header.topicSysFlag ?? 0,
    order: header.order,
    attributes,
  };
  if (sameTopicConfig(state.topics.get(topic), request)) return createResponse(req.request, ResponseCode.SUCCESS);
  state.topics.update(request);
  topicsChanged(state, ctx, true);
  return createResponse(req.request, ResponseCode.SUCCESS);
};

/** Whether an update would change nothing (RocketMQ answers such a request at once, idempotently). */
function sameTopicConfig(current: TopicConfig | undefined, request: TopicConfigRequest): boolean {
  if (current === undefined || Object.keys(request.attributes ?? {}).length > 0) return false;
  return (
    current.readQueueNums === request.readQueueNums &&
    current.writeQueueNums === request.writeQueueNums &&
    current.perm === request.perm &&
    current.topicFilterType === request.topicFilterType &&
    current.topicSysFlag === request.topicSysFlag &&
    current.order === request.order &&
    Object.keys(current.attributes).length === 0
  );
}

const deleteTopicInBroker: Handler = (state, req, ctx) => {
  const header = DeleteTopicRequestHeader.parse(req.request.extFields);
  const topic = header.topic;
  ctx.log.info({ topic, remote: req.channel.remoteAddress }, 'broker receive request to delete topic');
  if (topic.trim() === '') return createResponse(req.request, ResponseCode.INVALID_PARAMETER, 'The specified topic is blank.');
  if (state.options.validateSystemTopicWhenUpdateTopic && isSystemTopic(state, topic)) {
    return createResponse(req.request, ResponseCode.INVALID_PARAMETER, `The topic[${topic}] is conflict with system topic.`);
  }
  const toClean = [topic];
  if (state.options.clearRetryTopicWhenDeleteTopic) {
    // The POP retry topics of every group with offsets on the topic (KeyBuilder.buildPopRetryTopic V1 and V2).
    for (const [group, topics] of state.offsetTopicsByGroup) {
      if (!topics.has(topic)) continue;
      for (const retry of [`${RETRY_GROUP_TOPIC_PREFIX}${group}+${topic}`, `${RETRY_GROUP_TOPIC_PREFIX}${group}_${topic}`]) {
        if (state.topics.get(retry) !== undefined) toClean.push(retry);
      }
    }
  }
  let changed = false;
  for (const name of toClean) {
    changed = state.topics.remove(name) || changed;
    removeOffsetsOfTopic(state, name);
  }
  if (changed) topicsChanged(state, ctx, false);
  else ctx.log.warn({ topic }, 'delete topic config failed, topic not exists');
  return createResponse(req.request, ResponseCode.SUCCESS);
};

const getAllTopicConfig: Handler = (state, req) => {
  const topicConfigTable = new Map(Array.from(state.topics.values(), (config) => [config.topicName, config] as const));
  const body = formatTopicConfigSerializeWrapper({ topicConfigTable, dataVersion: state.topics.dataVersion });
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: { totalTopicNum: String(state.topics.size) }, body });
};

/**
 * GET_TOPIC_CONFIG (AdminBrokerProcessor.getTopicConfig): one topic's config as RocketMQ's
 * TopicConfigAndQueueMapping JSON (the TopicConfig fields, attributes included, in fastjson's name order;
 * no static-topic mappingDetail, which fastjson leaves out when null), or TOPIC_NOT_EXIST.
 */
const getTopicConfig: Handler = (state, req, ctx) => {
  const header = GetTopicConfigRequestHeader.parse(req.request.extFields);
  const config = state.topics.get(header.topic);
  if (config === undefined) {
    ctx.log.error({ topic: header.topic, remote: req.channel.remoteAddress }, 'No topic in this broker');
    return createResponse(req.request, ResponseCode.TOPIC_NOT_EXIST, `No topic in this broker. topic: ${header.topic}`);
  }
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: topicConfigAndQueueMappingBody(config) });
};

/** TopicConfigAndQueueMapping as JSONObject.toJSONString writes it. */
function topicConfigAndQueueMappingBody(config: TopicConfig): Uint8Array {
  const attributes = new Map<string, string>(Object.entries(config.attributes));
  const text = formatFastjson({
    attributes,
    order: config.order,
    perm: config.perm,
    readQueueNums: config.readQueueNums,
    topicFilterType: config.topicFilterType,
    topicName: config.topicName,
    topicSysFlag: config.topicSysFlag,
    writeQueueNums: config.writeQueueNums,
  });
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

const updateAndCreateSubscriptionGroup: Handler = (state, req, ctx) => {
  const json = plainJsonBody(req.request.body, 'SubscriptionGroupConfig');
  if (!isRecord(json)) return createResponse(req.request, ResponseCode.SUCCESS);
  const parsed = subscriptionGroupConfigSchema.safeParse({ ...json, attributes: {} });
  if (!parsed.success) return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `SubscriptionGroupConfig is invalid: ${parsed.error.issues[0]?.message ?? ''}`);
  const problem = groupNameProblem(parsed.data.groupName);
  if (problem !== undefined) return createResponse(req.request, ResponseCode.INVALID_PARAMETER, problem);
  const attributes = isRecord(json.attributes) ? Object.fromEntries(Object.entries(json.attributes).map(([k, v]) => [k, String(v)])) : {};
  ctx.log.info({ group: parsed.data.groupName, remote: req.channel.remoteAddress }, 'updateAndCreateSubscriptionGroup');
  state.groups.update({ ...parsed.data, attributes });
  saveGroups(state, ctx);
  return createResponse(req.request, ResponseCode.SUCCESS);
};

const deleteSubscriptionGroup: Handler = (state, req, ctx) => {
  const header = DeleteSubscriptionGroupRequestHeader.parse(req.request.extFields);
  ctx.log.info({ group: header.groupName, cleanOffset: header.cleanOffset, remote: req.channel.remoteAddress }, 'deleteSubscriptionGroup');
  if (state.groups.remove(header.groupName)) saveGroups(state, ctx);
  if (header.cleanOffset) removeOffsetsOfGroup(state, header.groupName);
  return createResponse(req.request, ResponseCode.SUCCESS);
};

/** GET_SUBSCRIPTIONGROUP_CONFIG: one group (auto-created when allowed), or SUBSCRIPTION_GROUP_NOT_EXIST. */
const getSubscriptionGroup: Handler = (state, req, ctx) => {
  const group = req.request.extFields['group'] ?? '';
  const config = group.length > 0 ? findSubscriptionGroup(state, group, ctx) : undefined;
  if (config === undefined) return createResponse(req.request, ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, 'No group in this broker');
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatSubscriptionGroupConfig(config) });
};

const getAllSubscriptionGroup: Handler = (state, req) => {
  const subscriptionGroupTable = new Map(Array.from(state.groups.values(), (config) => [config.groupName, config] as const));
  const body = formatSubscriptionGroupWrapper({ subscriptionGroupTable, forbiddenTable: new Map(), dataVersion: state.groups.dataVersion });
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields: { totalGroupNum: String(state.groups.size) }, body });
};

// =========================================================================================================
// Admin: statistics

const getTopicStatsInfo: Handler = (state, req, ctx) => {
  const header = GetTopicStatsInfoRequestHeader.parse(req.request.extFields);
  const topic = header.topic;
  const config = state.topics.get(topic);
  if (config === undefined) return createResponse(req.request, ResponseCode.TOPIC_NOT_EXIST, `topic[${topic}] not exist`);
  const brokerName = state.identity.brokerName;
  const queueIds = range(Math.max(config.readQueueNums, config.writeQueueNums));
  const work = (ask: Ask): Promise<Array<readonly [MessageQueue, TopicOffset]>> =>
    forEachQueue(queueIds, async (queueId) => {
      const queue = await ask<QueueRange>({ type: 'queueRange', topic, queueId });
      const minOffset = Math.max(0, queue.minOffset);
      const maxOffset = Math.max(0, queue.maxOffset);
      const last = maxOffset > 0 ? await ask<number | null>({ type: 'storeTime', topic, queueId, queueOffset: maxOffset - 1 }) : 0;
      return [{ topic, brokerName, queueId }, { minOffset, maxOffset, lastUpdateTimestamp: last ?? 0 }] as const;
    });
  return answerLater(state, req, ctx, work, (_state, offsetTable) =>
    createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatTopicStatsTable({ offsetTable, topicPutTps: 0 }) }),
  );
};

/** AdminBrokerProcessor.getTopicsForCollectingConsumeStats. */
function consumeStatsTopics(state: State, group: string, topic: string | undefined, topicList: readonly string[]): string[] {
  if (topicList.length > 0) return [...new Set(topicList)];
  const topics = topic === undefined || topic.trim() === '' ? [...(state.offsetTopicsByGroup.get(group) ?? [])] : [topic];
  const subscriptions = state.clients.consumerGroup(group)?.subscriptions.size ?? 0;
  return topics.filter((name) => subscriptions === 0 || state.clients.findSubscription(group, name) !== undefined);
}

const getConsumeStats: Handler = (state, req, ctx) => {
  const header = GetConsumeStatsRequestHeader.parse(req.request.extFields);
  const group = header.consumerGroup;
  const brokerName = state.identity.brokerName;
  const queues: Array<{ topic: string; queueId: number; consumerOffset: number }> = [];
  for (const topic of consumeStatsTopics(state, group, header.topic, topicListOf(header.topicList))) {
    const config = state.topics.get(topic);
    if (config === undefined) continue;
    for (const queueId of range(config.readQueueNums)) queues.push({ topic, queueId, consumerOffset: Math.max(0, queryOffset(state, group, topic, queueId)) });
  }
  const work = async (ask: Ask): Promise<Array<readonly [MessageQueue, OffsetWrapper]>> => {
    const out: Array<readonly [MessageQueue, OffsetWrapper]> = [];
    for (const { topic, queueId, consumerOffset } of queues) {
      const queue = await ask<QueueRange>({ type: 'queueRange', topic, queueId });
      const last = consumerOffset > 0 ? await ask<number | null>({ type: 'storeTime', topic, queueId, queueOffset: consumerOffset - 1 }) : null;
      const wrapper = { brokerOffset: Math.max(0, queue.maxOffset), consumerOffset, pullOffset: consumerOffset, lastTimestamp: last !== null && last > 0 ? last : 0 };
      out.push([{ topic, brokerName, queueId }, wrapper]);
    }
    return out;
  };
  return answerLater(state, req, ctx, work, (_state, offsetTable) =>
    createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatConsumeStats({ offsetTable, consumeTps: 0 }) }),
  );
};

// =========================================================================================================
// Admin: reset offsets (Broker2Client.resetOffset)

const invokeBrokerToResetOffset: Handler = (state, req, ctx) => {
  const header = ResetOffsetRequestHeader.parse(req.request.extFields);
  const { topic, group, timestamp, isForce } = header;
  ctx.log.info({ topic, group, timestamp, isForce, remote: req.channel.remoteAddress }, '[reset-offset] reset offset started');
  const config = state.topics.get(topic);
  if (config === undefined) {
    return createResponse(req.request, ResponseCode.TOPIC_NOT_EXIST, `[reset-offset] reset offset failed, no topic in this broker. topic=${topic}`);
  }
  const queueIds = range(config.writeQueueNums);
  const consumerOffsets = queueIds.map((queueId) => queryOffset(state, group, topic, queueId));
  if (consumerOffsets.some((offset) => offset === -1)) {
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `THe consumer group <${group}> not exist`);
  }
  const work = (ask: Ask): Promise<number[]> =>
    forEachQueue(queueIds, async (queueId) => {
      const offset = timestamp === -1
        ? (await ask<QueueRange>({ type: 'queueRange', topic, queueId })).maxOffset
        : await ask<number>({ type: 'searchOffset', topic, queueId, timestampMs: timestamp, boundary: 'lower' });
      return Math.max(0, offset);
    });
  return answerLater(state, req, ctx, work, (current, found, context) => {
    const offsetTable = queueIds.map((queueId) => {
      const byTime = found[queueId]!;
      const consumerOffset = consumerOffsets[queueId]!;
      return [{ topic, brokerName: current.identity.brokerName, queueId }, isForce || byTime < consumerOffset ? byTime : consumerOffset] as const;
    });
    const info = current.clients.consumerGroup(group);
    if (info === undefined || info.channels.size === 0) {
      return createResponse(
        req.request,
        ResponseCode.CONSUMER_NOT_ONLINE,
        `Consumer not online, so can not reset offset, Group: ${group} Topic: ${topic} Timestamp: ${timestamp}`,
      );
    }
    const body = formatResetOffsetBody({ offsetTable });
    const extFields = ResetOffsetRequestHeader.format({ group, topic, timestamp, isForce: false });
    for (const client of info.channels.values()) push(current, context, client.channel, RequestCode.RESET_CONSUMER_CLIENT_OFFSET, extFields, body);
    context.log.info({ topic, group, clients: info.channels.size }, '[reset-offset] reset offset pushed to clients');
    return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body });
  });
};

// =========================================================================================================
// Admin: broker config and runtime info

/** `1s 5s ... 2h` back from milliseconds, each level in the largest unit that divides it. */
function formatDelayLevels(levelsMs: readonly number[]): string {
  const units: ReadonlyArray<readonly [string, number]> = [['d', DAY_MS], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]];
  return levelsMs
    .map((ms) => {
      const unit = units.find(([, size]) => ms >= size && ms % size === 0) ?? ['s', 1_000];
      return `${Math.round(ms / unit[1])}${unit[0]}`;
    })
    .join(' ');
}

/** The broker's config as `key -> value` text (Configuration.getAllConfigsFormatString). */
function brokerConfigProperties(state: State): Map<string, string> {
  const { identity, settings, live, options } = state;
  const own: Record<string, string | number | boolean> = {
    brokerClusterName: identity.clusterName,
    brokerName: identity.brokerName,
    brokerId: identity.brokerId,
    brokerIP1: identity.storeHost.address,
    listenPort: identity.storeHost.port,
    namesrvAddr: settings.namesrvAddrs.join(';'),
    storePathRootDir: settings.storePathRootDir,
    maxMessageSize: settings.maxMessageSize,
    enablePropertyFilter: settings.enablePropertyFilter,
    messageDelayLevel: formatDelayLevels(settings.delayLevelsMs),
    autoCreateTopicEnable: live.autoCreateTopicEnable,
    autoCreateSubscriptionGroup: live.autoCreateSubscriptionGroup,
    defaultTopicQueueNums: settings.defaultTopicQueueNums,
    notifyConsumerIdsChangedEnable: live.notifyConsumerIdsChangedEnable,
    brokerPermission: live.brokerPermission,
    clusterTopicEnable: options.clusterTopicEnable,
    brokerTopicEnable: options.brokerTopicEnable,
    traceTopicEnable: options.traceTopicEnable,
    msgTraceTopicName: options.msgTraceTopicName,
    registerNameServerPeriod: options.registerNameServerPeriodMs,
    registerBrokerTimeoutMills: options.registerBrokerTimeoutMs,
    flushConsumerOffsetInterval: options.flushConsumerOffsetIntervalMs,
    channelExpiredTimeout: options.channelExpiredTimeoutMs,
    enableCreateSysGroup: options.enableCreateSysGroup,
    validateSystemTopicWhenUpdateTopic: options.validateSystemTopicWhenUpdateTopic,
    enableMixedMessageType: options.enableMixedMessageType,
    defaultQueryMaxNum: options.defaultQueryMaxNum,
    configBlackList: CONFIG_BLACK_LIST.join(';'),
  };
  const all = new Map(Object.entries(options.brokerConfigProperties));
  for (const [key, value] of Object.entries(own)) all.set(key, String(value));
  return new Map([...all].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const getBrokerConfig: Handler = (state, req) => {
  // MixAll.properties2String: one `key=value` line each.
  const text = Array.from(brokerConfigProperties(state), ([key, value]) => `${key}=${value}\n`).join('');
  const { counter, stateVersion, timestamp } = state.configVersion;
  const extFields = GetBrokerConfigResponseHeader.format({ version: JSON.stringify({ counter, stateVersion, timestamp }) });
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { extFields, body: Buffer.from(text, 'utf8') });
};

/** How each run-time key is read; undefined when the text is not a valid value. */
const LIVE_KEYS: { readonly [K in keyof LiveSettings]: (text: string) => LiveSettings[K] | undefined } = {
  autoCreateTopicEnable: parseBooleanText,
  autoCreateSubscriptionGroup: parseBooleanText,
  notifyConsumerIdsChangedEnable: parseBooleanText,
  brokerPermission: (text) => parseIntText(text, 0, 15),
};

function parseBooleanText(text: string): boolean | undefined {
  return text === 'true' ? true : text === 'false' ? false : undefined;
}

function parseIntText(text: string, min: number, max: number): number | undefined {
  if (!/^[+-]?\d{1,10}$/.test(text)) return undefined;
  const value = Number(text);
  return value >= min && value <= max ? value : undefined;
}

function isLiveKey(key: string): key is keyof LiveSettings {
  return Object.hasOwn(LIVE_KEYS, key);
}

const updateBrokerConfig: Handler = (state, req, ctx) => {
  const body = req.request.body;
  if (body === undefined) return createResponse(req.request, ResponseCode.SUCCESS);
  let entries: ReturnType<typeof parseProperties>;
  try {
    entries = parseProperties(Buffer.from(body).toString('utf8'));
  } catch {
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, 'string2Properties error');
  }
  if (entries.some((entry) => CONFIG_BLACK_LIST.includes(entry.key))) {
    return createResponse(req.request, ResponseCode.NO_PERMISSION, 'Can not update config in black list.');
  }
  const changes: Array<{ key: keyof LiveSettings; value: boolean | number }> = [];
  const refused: string[] = [];
  for (const { key, value } of entries) {
    const parsed = isLiveKey(key) ? LIVE_KEYS[key](value) : undefined;
    if (parsed === undefined) refused.push(isLiveKey(key) ? `${key} (bad value ${JSON.stringify(value)})` : key);
    else changes.push({ key: key as keyof LiveSettings, value: parsed });
  }
  if (refused.length > 0) {
    const allowed = Object.keys(LIVE_KEYS).join(', ');
    return createResponse(
      req.request,
      ResponseCode.INVALID_PARAMETER,
      `not changed: ${refused.join(', ')} cannot change while the broker runs (set them in broker.conf and restart); run-time keys: ${allowed}`,
    );
  }
  const permissionBefore = state.live.brokerPermission;
  const live = state.live as Record<keyof LiveSettings, boolean | number>;
  for (const { key, value } of changes) live[key] = value;
  if (changes.length > 0) state.configVersion = nextDataVersion(state.configVersion, Math.floor(ctx.clock.nowMs()));
  ctx.log.info({ changes, remote: req.channel.remoteAddress }, 'updateBrokerConfig');
  if (state.live.brokerPermission !== permissionBefore) {
    state.registration.versionBumps++;
    requestRegistration(state, ctx);
  }
  return createResponse(req.request, ResponseCode.SUCCESS);
};

/** MixAll.humanReadableByteCount(bytes, false). */
function humanReadableBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const exp = Math.min(6, Math.floor(Math.log(bytes) / Math.log(1024)));
  return `${(bytes / 1024 ** exp).toFixed(1)} ${'KMGTPE'[exp - 1]}iB`;
}

/** Messages per second over the last `windowMs`, from the samples taken at every offset flush. */
function putTpsOver(samples: readonly PutSample[], windowMs: number): number {
  const newest = samples.at(-1);
  if (newest === undefined) return 0;
  let base = samples[0]!;
  for (const sample of samples) if (sample.atMs <= newest.atMs - windowMs) base = sample;
  const seconds = (newest.atMs - base.atMs) / 1000;
  return seconds > 0 ? (newest.putOk - base.putOk) / seconds : 0;
}

/** Takes a put-count sample from the writer, for putTps and the day totals of GET_BROKER_RUNTIME_INFO. */
function sampleStore(state: State, ctx: Ctx): void {
  later(state, ctx, (ask) => ask<CommitLogWriterStats>({ type: 'stats' }), (current, result, context) => {
    if (!result.ok) return;
    const atMs = context.clock.nowMs();
    recordPutSample(current, { atMs, putOk: result.value.putOk });
  });
}

function recordPutSample(state: State, sample: PutSample): void {
  state.putSamples.push(sample);
  if (state.putSamples.length > PUT_SAMPLES_MAX) state.putSamples.splice(0, state.putSamples.length - PUT_SAMPLES_MAX);
  // Day totals by UTC day: the first sample of a day stands for that morning.
  const day = Math.floor(sample.atMs / DAY_MS);
  const days = state.putDays;
  if (day === days.day) return;
  days.yesterdayMorning = days.day === day - 1 ? days.todayMorning : sample.putOk;
  days.todayMorning = sample.putOk;
  days.day = day;
}

const getBrokerRuntimeInfo: Handler = (state, req, ctx) => {
  const work = (ask: Ask): Promise<[CommitLogWriterStats, DiskCheck]> =>
    Promise.all([ask<CommitLogWriterStats>({ type: 'stats' }), ask<DiskCheck>({ type: 'checkDisk' })]);
  return answerLater(state, req, ctx, work, (current, [stats, disk], context) => {
    recordPutSample(current, { atMs: context.clock.nowMs(), putOk: stats.putOk });
    const tps = [10_000, 60_000, 600_000].map((windowMs) => putTpsOver(current.putSamples, windowMs).toFixed(2)).join(' ');
    const table = new Map<string, string>([
      ['brokerVersionDesc', 'V5_3_3'],
      ['brokerVersion', String(MQVersionOrdinal.V5_3_3)],
      ['brokerActive', String(current.identity.brokerId === 0)],
      ['msgPutTotalTodayNow', String(stats.putOk)],
      ['msgPutTotalTodayMorning', String(current.putDays.todayMorning)],
      ['msgPutTotalYesterdayMorning', String(current.putDays.yesterdayMorning)],
      ['msgGetTotalTodayNow', '0'],
      ['msgGetTotalTodayMorning', '0'],
      ['msgGetTotalYesterdayMorning', '0'],
      ['putTps', tps],
      ['putMessageTimesTotal', String(stats.puts)],
      ['putMessageFailedTimes', String(stats.puts - stats.putOk)],
      ['commitLogMaxOffset', String(stats.maxOffset)],
      ['commitLogDiskRatio', String(disk.physicRatio)],
      ['consumeQueueDiskRatio', String(disk.logicsRatio)],
      ['dispatchBehindBytes', String(stats.maxOffset - stats.dispatchedOffset)],
      ['remainHowManyDataToFlush', humanReadableBytes(Math.max(0, stats.maxOffset - stats.durableOffset))],
      ['pageCacheLockTimeMills', '0'],
      ['sendThreadPoolQueueSize', '0'],
      ['pullThreadPoolQueueSize', '0'],
      ['sendThreadPoolQueueHeadWaitTimeMills', '0'],
      ['pullThreadPoolQueueHeadWaitTimeMills', '0'],
      ['timerReadBehind', '0'],
      ['timerOffsetBehind', '0'],
      ['timerCongestNum', '0'],
      ['timerEnqueueTps', '0.0'],
      ['timerDequeueTps', '0.0'],
      ['topicCount', String(current.topics.size)],
      ['subscriptionGroupCount', String(current.groups.size)],
    ]);
    return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatKVTable({ table }) });
  });
};

// =========================================================================================================
// Metadata replication: the master's answers (AdminBrokerProcessor.getAllConsumerOffset, getAllDelayOffset)
// and the slave's apply (SlaveSynchronize)

/** Temp name of a delayOffset.json written from a master's: `.tmp` is the schedule service's own. */
const DELAY_OFFSET_SYNC_TEMP_SUFFIX = '.sync.tmp';
/** Largest delayOffset.json GET_ALL_DELAY_OFFSET reads (18 levels take a few hundred bytes). */
const DELAY_OFFSET_FILE_BYTES_MAX = 1024 * 1024;

/** consumerOffset.json as it is in memory: written first when anything changed since the last flush. */
function currentOffsetDocument(state: State): { file: JsonConfigFile<ConsumerOffsetDocument>; document: ConsumerOffsetDocument } {
  if (state.dirtyOffsets) {
    state.offsets.persist();
    state.dirtyOffsets = false;
  }
  const file = new JsonConfigFile({ fs: state.fs, path: state.paths.consumerOffsetFile, schema: consumerOffsetDocumentSchema });
  return { file, document: file.load().value ?? { offsetTable: {} } };
}

/**
 * GET_ALL_CONSUMER_OFFSET: ConsumerOffsetManager.encode. ConsumerOffsetTable has no iteration, so the
 * table is read back from consumerOffset.json right after memory is written there.
 */
const getAllConsumerOffset: Handler = (state, req) => {
  let document: ConsumerOffsetDocument;
  try {
    document = currentOffsetDocument(state).document;
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `consumer offsets not readable: ${errorText(error)}`);
  }
  const snapshot: ConsumerOffsetSnapshot = {
    offsetTable: Object.entries(document.offsetTable).map(([key, queues]) => [key, Object.entries(queues).map(([queueId, offset]) => [Number(queueId), offset] as const)] as const),
    dataVersion: state.offsets.dataVersion,
  };
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatConsumerOffsetSerializeWrapper(snapshot) });
};

/**
 * GET_ALL_DELAY_OFFSET: ScheduleMessageService.encode, from the schedule service's delayOffset.json
 * (read directly: its owner may be writing it on another thread). No file yet: no level has moved.
 */
const getAllDelayOffset: Handler = (state, req) => {
  const file = state.paths.delayOffsetFile;
  let snapshot: DelayOffsetSnapshot = { offsetTable: [], dataVersion: null };
  try {
    const sizeBytes = state.fs.existsSync(file) ? state.fs.statSync(file).size : 0;
    if (sizeBytes > DELAY_OFFSET_FILE_BYTES_MAX) {
      return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `${file} is ${sizeBytes} bytes, over ${DELAY_OFFSET_FILE_BYTES_MAX}`);
    }
    if (sizeBytes > 0) snapshot = parseDelayOffsetSerializeWrapper(state.fs.readFileSync(file).toString('utf8'));
  } catch (error) {
    if (!(error instanceof SlaveSyncError) && !isRetryableWriteError(error)) throw error;
    return createResponse(req.request, ResponseCode.SYSTEM_ERROR, `delay offsets not readable: ${errorText(error)}`);
  }
  return createResponse(req.request, ResponseCode.SUCCESS, undefined, { body: formatDelayOffsetSerializeWrapper(snapshot) });
};

function sameDataVersion(a: DataVersion, b: DataVersion): boolean {
  return a.timestamp === b.timestamp && a.counter === b.counter && a.stateVersion === b.stateVersion;
}

function refused(table: SyncTable, reason: string): TableSyncOutcome {
  return { table, outcome: 'refused', reason };
}

/** Applies one round of a master's tables, in SlaveSynchronize.syncAll's order; refused on a master. */
function syncFromMaster(state: State, message: SyncFromMasterMessage, ctx: Ctx): SyncFromMasterAnswer {
  if (state.role !== undefined && state.role !== 'SLAVE') {
    return { refusal: `this broker is ${state.role}: it does not sync from ${message.masterAddr}`, tables: [] };
  }
  const tables: TableSyncOutcome[] = [];
  if (message.topicConfig !== null) tables.push(applyMasterTopics(state, message.topicConfig, ctx));
  if (message.consumerOffset !== null) tables.push(applyMasterOffsets(state, message.consumerOffset));
  if (message.delayOffset !== null) tables.push(applyMasterDelayOffsets(state, message.delayOffset));
  if (message.subscriptionGroup !== null) tables.push(applyMasterGroups(state, message.subscriptionGroup));
  return { refusal: null, tables };
}

/** Writes a table's document (the old one kept as `.bak`), then reloads the table from it. */
function replaceTableFile<T>(state: State, table: SyncTable, schema: z.ZodType<T>, filePath: string, document: T, reload: () => void): TableSyncOutcome {
  try {
    const file = new JsonConfigFile({ fs: state.fs, path: filePath, schema });
    file.load();
    file.persist(document);
    reload();
    return { table, outcome: 'replaced' };
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    return refused(table, errorText(error));
  }
}

/** syncTopicConfig: the master's table and dataVersion replace ours when the versions differ. */
function applyMasterTopics(state: State, snapshot: TopicConfigSnapshot, ctx: Ctx): TableSyncOutcome {
  const table = 'topicConfig';
  if (sameDataVersion(state.topics.dataVersion, snapshot.dataVersion)) return { table, outcome: 'unchanged' };
  if (snapshot.topicConfigs.length > state.options.topicsMax) return refused(table, `${snapshot.topicConfigs.length} topics, over topicsMax ${state.options.topicsMax}`);
  const document: TopicsDocument = {
    topicConfigTable: Object.fromEntries(snapshot.topicConfigs.map((config) => [config.topicName, config])),
    dataVersion: snapshot.dataVersion,
  };
  const outcome = replaceTableFile(state, table, topicsDocumentSchema, state.paths.topicsFile, document, () => state.topics.load());
  if (outcome.outcome === 'replaced') {
    state.dirtyTopics = false;
    // The NameServers learn the slave's new topics now, not at the next 30 s registration.
    requestRegistration(state, ctx);
  }
  return outcome;
}

/** syncSubscriptionGroupConfig: the master's groups, forbidden bits and dataVersion replace ours. */
function applyMasterGroups(state: State, snapshot: SubscriptionGroupSnapshot): TableSyncOutcome {
  const table = 'subscriptionGroup';
  if (sameDataVersion(state.groups.dataVersion, snapshot.dataVersion)) return { table, outcome: 'unchanged' };
  if (snapshot.groupConfigs.length > state.options.subscriptionGroupsMax) {
    return refused(table, `${snapshot.groupConfigs.length} groups, over subscriptionGroupsMax ${state.options.subscriptionGroupsMax}`);
  }
  const document: SubscriptionGroupDocument = {
    subscriptionGroupTable: Object.fromEntries(snapshot.groupConfigs.map((config) => [config.groupName, config])),
    forbiddenTable: Object.fromEntries(snapshot.forbiddenTable.map(([group, topics]) => [group, Object.fromEntries(topics)])),
    dataVersion: snapshot.dataVersion,
  };
  const outcome = replaceTableFile(state, table, subscriptionGroupDocumentSchema, state.paths.subscriptionGroupFile, document, () => state.groups.load());
  if (outcome.outcome === 'replaced') state.dirtyGroups = false;
  return outcome;
}

function sameQueueOffsets(current: Readonly<Record<string, number>> | undefined, next: Readonly<Record<string, number>>): boolean {
  if (current === undefined) return false;
  const keys = Object.keys(next);
  return keys.length === Object.keys(current).length && keys.every((queueId) => current[queueId] === next[queueId]);
}

/**
 * syncConsumerOffset: each of the master's `topic@group` entries replaces ours (offsetTable.putAll);
 * entries only we hold stay. Written, with the master's dataVersion, only when something changed.
 */
function applyMasterOffsets(state: State, snapshot: ConsumerOffsetSnapshot): TableSyncOutcome {
  const table = 'consumerOffset';
  try {
    const { file, document } = currentOffsetDocument(state);
    const merged: Record<string, Record<string, number>> = { ...document.offsetTable };
    let changed = false;
    for (const [key, queues] of snapshot.offsetTable) {
      const next = Object.fromEntries(queues.map(([queueId, offset]) => [String(queueId), offset]));
      if (sameQueueOffsets(merged[key], next)) continue;
      merged[key] = next;
      changed = true;
    }
    if (!changed) return { table, outcome: 'unchanged' };
    let entries = 0;
    for (const queues of Object.values(merged)) entries += Object.keys(queues).length;
    if (entries > state.options.consumerOffsetsMax) return refused(table, `${entries} offsets, over consumerOffsetsMax ${state.options.consumerOffsetsMax}`);
    file.persist({ offsetTable: merged, dataVersion: snapshot.dataVersion ?? document.dataVersion });
    state.offsets.load();
    state.offsetTopicsByGroup.clear();
    indexOffsetKeys(state.offsetTopicsByGroup, Object.keys(merged));
    return { table, outcome: 'merged' };
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    return refused(table, errorText(error));
  }
}

/**
 * syncDelayOffset: the master's text goes to config/delayOffset.json (atomically, under a temp name of its
 * own). slave-synchronize then tells the schedule service to reload it (loadWhenSyncDelayOffset).
 */
function applyMasterDelayOffsets(state: State, snapshot: DelayOffsetSnapshot): TableSyncOutcome {
  const table = 'delayOffset';
  const bytes = formatDelayOffsetSerializeWrapper(snapshot);
  const text = Buffer.from(bytes).toString('utf8');
  if (text === state.delayOffsetSynced) return { table, outcome: 'unchanged' };
  try {
    writeFileAs(state.fs, state.paths.delayOffsetFile, `${state.paths.delayOffsetFile}${DELAY_OFFSET_SYNC_TEMP_SUFFIX}`, bytes);
  } catch (error) {
    if (!isRetryableWriteError(error)) throw error;
    return refused(table, errorText(error));
  }
  state.delayOffsetSynced = text;
  return { table, outcome: 'written' };
}

/** Writes `bytes` to `file` atomically and durably through `temp`: write, fsync, rename, fsync the directory. */
function writeFileAs(fs: StorageFs, file: string, temp: string, bytes: Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const fd = fs.openSync(temp, 'w', 0o644);
  try {
    writeFully(fs, fd, bytes, 0, bytes.length, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  fsyncDirectory(fs, dir);
}

// =========================================================================================================
// Remoting dispatch

type Handler = (state: State, req: Req, ctx: Ctx) => RemotingCommand | undefined;

/** Every code broker-admin serves; any other is answered REQUEST_CODE_NOT_SUPPORTED. */
const HANDLERS: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [RequestCode.HEART_BEAT, heartBeat],
  [RequestCode.UNREGISTER_CLIENT, unregisterClient],
  [RequestCode.CHECK_CLIENT_CONFIG, checkClientConfig],
  [RequestCode.GET_CONSUMER_LIST_BY_GROUP, getConsumerListByGroup],
  [RequestCode.QUERY_CONSUMER_OFFSET, queryConsumerOffset],
  [RequestCode.UPDATE_CONSUMER_OFFSET, updateConsumerOffset],
  [RequestCode.GET_MIN_OFFSET, getMinOffset],
  [RequestCode.GET_MAX_OFFSET, getMaxOffset],
  [RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, searchOffsetByTimestamp],
  [RequestCode.GET_EARLIEST_MSG_STORETIME, getEarliestMsgStoretime],
  [RequestCode.LOCK_BATCH_MQ, lockBatchMQ],
  [RequestCode.UNLOCK_BATCH_MQ, unlockBatchMQ],
  [RequestCode.QUERY_MESSAGE, queryMessage],
  [RequestCode.VIEW_MESSAGE_BY_ID, viewMessageById],
  [RequestCode.UPDATE_AND_CREATE_TOPIC, updateAndCreateTopic],
  [RequestCode.DELETE_TOPIC_IN_BROKER, deleteTopicInBroker],
  [RequestCode.GET_ALL_TOPIC_CONFIG, getAllTopicConfig],
  [RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, updateAndCreateSubscriptionGroup],
  [RequestCode.DELETE_SUBSCRIPTIONGROUP, deleteSubscriptionGroup],
  [RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG, getAllSubscriptionGroup],
  [RequestCode.GET_SUBSCRIPTIONGROUP_CONFIG, getSubscriptionGroup],
  [RequestCode.GET_TOPIC_STATS_INFO, getTopicStatsInfo],
  [RequestCode.GET_CONSUME_STATS, getConsumeStats],
  [RequestCode.GET_CONSUMER_CONNECTION_LIST, getConsumerConnectionList],
  [RequestCode.GET_PRODUCER_CONNECTION_LIST, getProducerConnectionList],
  [RequestCode.GET_BROKER_RUNTIME_INFO, getBrokerRuntimeInfo],
  [RequestCode.GET_BROKER_CONFIG, getBrokerConfig],
  [RequestCode.UPDATE_BROKER_CONFIG, updateBrokerConfig],
  [RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, invokeBrokerToResetOffset],
  [RequestCode.GET_TOPIC_CONFIG, getTopicConfig],
  [RequestCode.GET_ALL_CONSUMER_OFFSET, getAllConsumerOffset],
  [RequestCode.GET_ALL_DELAY_OFFSET, getAllDelayOffset],
]);

assert(
  BROKER_ADMIN_REQUEST_CODES.length === HANDLERS.size && BROKER_ADMIN_REQUEST_CODES.every((code) => HANDLERS.has(code)),
  'BROKER_ADMIN_REQUEST_CODES lists exactly the handled codes',
);

function onRemotingRequest(state: State, req: Req, ctx: Ctx): void {
  state.counters.requests++;
  const handler = HANDLERS.get(req.request.code);
  const response = handler === undefined ? createNotSupportedResponse(req.request) : guarded(state, req, ctx, () => handler(state, req, ctx));
  if (response !== undefined) respond(ctx, req, response);
}

/** Runs a handler; a request it cannot read, or a metadata refusal, becomes the answer instead of a crash. */
function guarded(state: State, req: Req, ctx: Ctx, run: () => RemotingCommand | undefined): RemotingCommand | undefined {
  try {
    return run();
  } catch (error) {
    let response: RemotingCommand;
    if (error instanceof HeaderError) response = headerErrorResponse(req.request, error);
    else if (error instanceof BodyError) response = bodyErrorResponse(req.request, error);
    else if (error instanceof MetadataError) response = createResponse(req.request, ResponseCode.SYSTEM_ERROR, error.message);
    else throw error;
    state.counters.badRequests++;
    ctx.log.warn({ code: req.request.code, remote: req.channel.remoteAddress, reason: response.remark }, 'admin request refused');
    return response;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON body as plain data (fastjson's syntax, bounded); BodyError when absent or malformed. */
function plainJsonBody(body: Uint8Array | undefined, what: string): unknown {
  if (body === undefined) throw new BodyError('BODY_MISSING', what, `${what}: the request has no body`);
  try {
    return toPlainJson(parseFastjsonBody(body));
  } catch (error) {
    if (!(error instanceof FastjsonError)) throw error;
    throw new BodyError('BODY_MALFORMED', what, `${what}: ${error.message}`, error.code);
  }
}

// =========================================================================================================
// NameServer registration (BrokerController.registerBrokerAll, BrokerOuterAPI)

function registrationRequest(state: State): { extFields: Record<string, string>; body: Uint8Array } {
  const permission = state.live.brokerPermission;
  const restrict = !isWriteable(permission) || !isReadable(permission);
  const topicConfigs = Array.from(state.topics.values(), (config) => ({
    topicName: config.topicName,
    readQueueNums: config.readQueueNums,
    writeQueueNums: config.writeQueueNums,
    perm: restrict ? config.perm & permission : config.perm,
    topicSysFlag: config.topicSysFlag,
  }));
  const version = state.topics.dataVersion;
  const dataVersion = { ...version, counter: version.counter + state.registration.versionBumps };
  const body = encodeRegisterBrokerBody({ topicConfigs, dataVersion, filterServerList: [] });
  const { identity } = state;
  const haServerAddr = state.options.haServerAddr !== '' ? state.options.haServerAddr : `${identity.storeHost.address}:${identity.storeHost.port + 1}`;
  const extFields = encodeHeader(NamesrvHeaders.registerBroker, {
    brokerName: identity.brokerName,
    brokerAddr: identity.brokerAddr,
    clusterName: identity.clusterName,
    haServerAddr,
    brokerId: identity.brokerId,
    enableActingMaster: false,
    compressed: false,
    bodyCrc32: bodyCrc32(body),
  });
  return { extFields, body };
}

function unregisterHeader(state: State): Record<string, string> {
  const { identity } = state;
  return encodeHeader(NamesrvHeaders.unregisterBroker, {
    brokerName: identity.brokerName,
    brokerAddr: identity.brokerAddr,
    clusterName: identity.clusterName,
    brokerId: identity.brokerId,
  });
}

/** Registers with every NameServer now, or right after the registration in flight. */
function requestRegistration(state: State, ctx: Ctx): void {
  const registrar = state.registrar;
  if (registrar === undefined) return;
  if (state.registration.inFlight) {
    state.registration.again = true;
    return;
  }
  state.registration.inFlight = true;
  state.registration.again = false;
  const { extFields, body } = registrationRequest(state);
  const epoch = state.epoch;
  ctx.pipeToSelf(registrar.registerAll(extFields, body), (result) => ({
    type: 'registered',
    epoch,
    outcomes: result.ok ? result.value : registrar.namesrvAddrs.map((namesrvAddr) => ({ namesrvAddr, ok: false as const, reason: errorText(result.error) })),
  }));
}

function onRegistered(state: State, message: Extract<BrokerAdminOwnMessage, { type: 'registered' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const registration = state.registration;
  registration.inFlight = false;
  for (const outcome of message.outcomes) {
    if (outcome.ok) {
      registration.ok++;
      if (!registration.everOk.has(outcome.namesrvAddr)) ctx.log.info({ namesrvAddr: outcome.namesrvAddr }, 'registered broker to name server');
      registration.everOk.add(outcome.namesrvAddr);
    } else {
      registration.failed++;
      ctx.log.warn({ namesrvAddr: outcome.namesrvAddr, reason: outcome.reason }, 'Failed to register current broker to name server; retried at the next period');
    }
  }
  if (registration.again) requestRegistration(state, ctx);
}

function statsOf(state: State): BrokerAdminStats {
  const sizes = state.clients.sizes();
  return {
    topics: state.topics.size,
    subscriptionGroups: state.groups.size,
    consumerOffsets: state.offsets.entries,
    consumerGroupsOnline: sizes.consumerGroups,
    producerGroupsOnline: sizes.producerGroups,
    locks: state.locks.size,
    pendingAsks: state.continuations.size,
    requests: state.counters.requests,
    badRequests: state.counters.badRequests,
    pushes: state.counters.pushes,
    registrationsOk: state.registration.ok,
    registrationsFailed: state.registration.failed,
    topicsDataVersion: state.topics.dataVersion,
  };
}

// =========================================================================================================
// Spawning

/** broker-admin's address, as a processor of Remoting requests, a close listener and the processors' admin. */
export type BrokerAdminRef = ActorRef<BrokerAdminInbox> & ActorRef<BrokerAdminMessage> & ActorRef<RemotingRequestMessage> & ActorRef<ChannelClosedMessage>;

/** How to spawn broker-admin: its args, and optionally its pool (`admin`), name, mailbox and behavior. */
export type SpawnBrokerAdminOptions = {
  readonly args: BrokerAdminArgs;
  readonly pool?: string;
  readonly name?: string;
  readonly mailboxCapacity?: number;
  readonly behavior?: BehaviorSource;
};

/** Spawns the one broker-admin; route BROKER_ADMIN_REQUEST_CODES (or the fallback) and closeListeners to it. */
export async function spawnBrokerAdmin(system: ActorSpawner, options: SpawnBrokerAdminOptions): Promise<BrokerAdminRef> {
  const spec: ActorSpec<BrokerAdminArgs> = {
    name: options.name ?? 'broker-admin',
    behavior: options.behavior ?? { module: new URL('./broker-admin.ts', import.meta.url).href, export: 'brokerAdmin' },
    args: options.args,
    pool: options.pool ?? 'admin',
    ...(options.mailboxCapacity === undefined ? {} : { mailboxCapacity: options.mailboxCapacity }),
  };
  return (await system.spawn<BrokerAdminInbox, BrokerAdminArgs>(spec)) as BrokerAdminRef;
}
