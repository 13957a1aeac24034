/**
 * What every broker processor actor is started with, and the broker-admin actor's internal API.
 *
 * The Broker's request processors mirror RocketMQ's: SendMessageProcessor (send pool), PullMessage
 * processor with its PullRequestHoldService (pull pool), and one broker-admin actor (admin pool) that owns
 * the metadata RocketMQ keeps in TopicConfigManager, SubscriptionGroupManager, ConsumerOffsetManager,
 * ConsumerManager/ProducerManager, plus the NameServer registration (BrokerOuterAPI). The store is the
 * commit-log-writer actor. Processors reach the others only through the refs below:
 *
 *   acceptor --remotingRequest--> send-processor  --ask putEncoded--> writer
 *                                                  --ask topicForSend / groupForRetry--> broker-admin
 *   acceptor --remotingRequest--> pull-processor  --ask get--> writer; <--arrived-- writer (long polling)
 *                                                  --ask pullMetadata / commitOffset--> broker-admin
 *   acceptor --remotingRequest--> broker-admin    --ask queueRange / readAt / searchOffset--> writer
 *   every processor answers with `respond` to the channel's acceptor (remoting-routes.ts).
 */
import type { ActorRef } from '../runtime/actor.ts';
import type { MessageModel, SubscriptionData } from '../net/remoting/broker-bodies.ts';
import type { SocketAddress } from '../storage/message-record.ts';
import type { SubscriptionGroupConfig, TopicConfig } from '../storage/metadata-store.ts';
import type { CommitLogWriterMessage } from './commit-log-writer.ts';
import type { RemotingRequestMessage } from './remoting-routes.ts';

/** Who this broker is: RocketMQ's brokerClusterName / brokerName / brokerId and addresses. */
export type BrokerIdentity = {
  readonly clusterName: string;
  readonly brokerName: string;
  readonly brokerId: number;
  /** `ip:port` clients use (brokerIP1:listenPort). */
  readonly brokerAddr: string;
  /** The store host written into records and offset msgIds (same address, as a SocketAddress). */
  readonly storeHost: SocketAddress;
};

/** Broker config keys the processors read (RocketMQ's names; values already validated). */
export type BrokerSettings = {
  readonly autoCreateTopicEnable: boolean;
  readonly autoCreateSubscriptionGroup: boolean;
  readonly defaultTopicQueueNums: number;
  readonly maxMessageSize: number;
  readonly enablePropertyFilter: boolean;
  /** messageDelayLevel parsed into milliseconds, level 1 first (18 levels by default). */
  readonly delayLevelsMs: readonly number[];
  /** namesrvAddr as `host:port` entries; empty when the broker registers nowhere. */
  readonly namesrvAddrs: readonly string[];
  readonly storePathRootDir: string;
  /** Timer messages (MessageStoreConfig timerWheelEnable, timerPrecisionMs, timerMaxDelaySec). */
  readonly timerWheelEnable: boolean;
  readonly timerPrecisionMs: number;
  readonly timerMaxDelaySec: number;
  /** BrokerConfig recallMessageEnable. */
  readonly recallMessageEnable: boolean;
  /** Transactions (BrokerConfig transactionTimeOut, transactionCheckMax, transactionCheckInterval). */
  readonly transactionTimeOutMs: number;
  readonly transactionCheckMax: number;
  readonly transactionCheckIntervalMs: number;
};

/** RocketMQ's defaults of the timer, recall and transaction settings (for tests and tools). */
export const MESSAGE_KIND_SETTINGS_DEFAULTS = {
  timerWheelEnable: true,
  timerPrecisionMs: 1_000,
  timerMaxDelaySec: 259_200,
  recallMessageEnable: false,
  transactionTimeOutMs: 6_000,
  transactionCheckMax: 15,
  transactionCheckIntervalMs: 30_000,
} as const satisfies Partial<BrokerSettings>;

/** The actors a processor talks to. */
export type BrokerRefs = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  readonly admin: ActorRef<BrokerAdminMessage>;
};

/** Start arguments of every broker processor actor (send, pull, admin). */
export type BrokerProcessorArgs = {
  readonly identity: BrokerIdentity;
  readonly settings: BrokerSettings;
  readonly refs: BrokerRefs;
  /** Controller mode: the master lease the send processors check before answering (master-lease.ts). */
  readonly masterLease?: SharedArrayBuffer;
};

/**
 * The answer to `topicForSend`: the topic's config (created first when unknown and auto-creation
 * allows it, as RocketMQ's TopicConfigManager.createTopicInSendMessageMethod does), or a refusal with the
 * RocketMQ response code the client expects (TOPIC_NOT_EXIST 17, NO_PERMISSION 16).
 */
export type TopicForSendAnswer =
  | { readonly ok: true; readonly topic: TopicConfig }
  | { readonly ok: false; readonly code: number; readonly remark: string };

/**
 * The answer to `groupForRetry`: the subscription group (auto-created when allowed) and the retry topic's
 * config, created with one queue like RocketMQ's createTopicInSendMessageBackMethod; or a refusal.
 */
export type GroupForRetryAnswer =
  | { readonly ok: true; readonly group: SubscriptionGroupConfig; readonly retryTopic: TopicConfig; readonly dlqTopic: TopicConfig }
  | { readonly ok: false; readonly code: number; readonly remark: string };

/**
 * The answer to `pullMetadata`: what PullMessageProcessor reads before a pull, in one snapshot. `group`
 * is findSubscriptionGroupConfig (auto-created when allowed) or its refusal; `topic` is selectTopicConfig
 * (never created by a pull), undefined when unknown; `consumer` is the group's ConsumerGroupInfo as the
 * heartbeats registered it, undefined when no client of the group is online.
 */
export type PullMetadataAnswer = {
  /** PermName bits of the whole broker (brokerPermission). */
  readonly brokerPermission: number;
  readonly group:
    | {
        readonly ok: true;
        readonly consumeEnable: boolean;
        readonly consumeBroadcastEnable: boolean;
        readonly groupSysFlag: number;
        /** SubscriptionGroupConfig.brokerId and whichBrokerWhenConsumeSlowly, for suggestWhichBrokerId. */
        readonly brokerId: number;
        readonly whichBrokerWhenConsumeSlowly: number;
      }
    | { readonly ok: false; readonly code: number; readonly remark: string };
  readonly topic: { readonly perm: number; readonly readQueueNums: number; readonly topicSysFlag: number } | undefined;
  readonly consumer: { readonly messageModel: MessageModel | undefined; readonly subscription: SubscriptionData | undefined } | undefined;
};

/** Messages broker-admin takes: Remoting requests it serves, and asks/tells from the other processors. */
export type BrokerAdminMessage =
  | RemotingRequestMessage
  | { readonly type: 'channelClosed'; readonly channel: import('./remoting-routes.ts').RemotingChannel }
  | {
      readonly type: 'topicForSend';
      readonly topic: string;
      /** The producer's defaultTopic (TBW102) and queue count, used when auto-creating. */
      readonly defaultTopic: string;
      readonly defaultTopicQueueNums: number;
      /** The producer address, for the log line RocketMQ writes when it auto-creates. */
      readonly from: string;
    }
  | { readonly type: 'groupForRetry'; readonly group: string }
  /** Asked by the pull processors; answered with a PullMetadataAnswer. */
  | { readonly type: 'pullMetadata'; readonly group: string; readonly topic: string }
  | {
      /** A consumer offset committed by PULL (sysFlag commitOffset); a tell, or an ask answered true once stored. */
      readonly type: 'commitOffset';
      readonly group: string;
      readonly topic: string;
      readonly queueId: number;
      readonly offset: number;
    }
  | { readonly type: 'queryOffset'; readonly group: string; readonly topic: string; readonly queueId: number }
  | { readonly type: 'tick' };

/** RocketMQ's retry and dead-letter topic names for a consumer group (MixAll). */
export const RETRY_GROUP_TOPIC_PREFIX = '%RETRY%';
/** Dead-letter topic prefix. */
export const DLQ_GROUP_TOPIC_PREFIX = '%DLQ%';
/** The topic auto-created topics inherit their settings from (TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC). */
export const AUTO_CREATE_TOPIC_KEY_TOPIC = 'TBW102';
/** RocketMQ's delay-message topic (TopicValidator.RMQ_SYS_SCHEDULE_TOPIC). */
export { SCHEDULE_TOPIC } from '../storage/tag-hash.ts';

/** `%RETRY%group`. */
export function retryTopicOf(group: string): string {
  return `${RETRY_GROUP_TOPIC_PREFIX}${group}`;
}

/** `%DLQ%group`. */
export function dlqTopicOf(group: string): string {
  return `${DLQ_GROUP_TOPIC_PREFIX}${group}`;
}

/** messageDelayLevel ("1s 5s 10s 30s 1m 2m ... 2h") parsed into milliseconds per level. */
export function parseDelayLevels(text: string): number[] {
  const units: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return text
    .trim()
    .split(/\s+/)
    .map((level) => {
      const match = /^(\d+)([smhd])$/.exec(level);
      if (match === null) throw new Error(`messageDelayLevel entry ${JSON.stringify(level)} is not <number><s|m|h|d>`);
      return Number(match[1]) * units[match[2]!]!;
    });
}
