/**
 * The Proxy's MessagingService logic (RocketMQ's *Activity classes): each RPC of a 5.x client becomes one or
 * more Remoting commands to the NameServer or a broker, through a ProxyTransport (LOCAL: actor messages
 * inside this node; CLUSTER: TCP), and the answers become gRPC responses with RocketMQ's codes. The Proxy
 * keeps no message state: receipt handles carry everything an ack needs (receipt-handle.ts), so any Proxy
 * can serve any client.
 *
 * What it keeps, all bounded: a route cache (proxy-routes.ts) and, per client id, its channel (connection
 * id) and the settings it sent on its Telemetry stream, dropped after `clientIdleMs` without a call.
 *
 * Receive: POP_MESSAGE to the broker of the queue the client names (queue id -1: every queue of the topic
 * there), long polling clamped to [5 s, 20 s] and to the call's deadline (RocketMQ's
 * grpcClientConsumerMin/MaxLongPollingTimeoutMillis); the stream carries an OK status then the messages, or
 * MESSAGE_NOT_FOUND when the poll ends empty.
 *
 * Pull: PULL_MESSAGE to the master of the queue the client names, at the offset it names, held there for
 * the same clamped long-polling time; the stream carries a status, the messages, then next_offset
 * (pull-message.ts).
 */
import type { Logger } from 'pino';
import { decodeJsonBody, MASTER_ID, type TopicRouteData } from '../remoting/namesrv-protocol.ts';
import { DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX } from '../../actors/broker-context.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../remoting/remoting-command.ts';
import {
  AckMessageRequestHeader,
  ChangeInvisibleTimeRequestHeader,
  ChangeInvisibleTimeResponseHeader,
  CheckTransactionStateRequestHeader,
  ConsumerSendMsgBackRequestHeader,
  EndTransactionRequestHeader,
  formatSendMessageRequest,
  PopMessageRequestHeader,
  PopMessageResponseHeader,
  PullMessageRequestHeader,
  PullMessageResponseHeader,
  RECEIPT_HANDLE_SEPARATOR,
  GetMaxOffsetRequestHeader,
  GetMinOffsetRequestHeader,
  QueryConsumerOffsetRequestHeader,
  QueryConsumerOffsetResponseHeader,
  SearchOffsetRequestHeader,
  SendMessageResponseHeader,
  TransactionState,
  UnregisterClientRequestHeader,
  UpdateConsumerOffsetRequestHeader,
} from '../remoting/broker-headers.ts';
import { formatHeartbeatData, type SubscriptionData } from '../remoting/broker-bodies.ts';
import { javaStringHashCode } from '../../storage/tag-hash.ts';
import { decodeRecord } from '../../storage/message-record.ts';
import { brokerRefusalCode, Code } from './code.ts';
import { ClientType, FilterType, QueryOffsetPolicy, TransactionResolution, TransactionSource } from './enums.ts';
import type * as M from './messages.ts';
import { durationFromMs, durationToMs, isValidDuration, isValidTimestamp, timestampToMs } from './wire-time.ts';
import { checkConsumerGroupName, checkTopicName, prepareSend, PROXY_MESSAGE_LIMITS, queueForMessageGroup, type ProxyMessageLimits } from './send-message.ts';
import { messageViewOf } from './message-view.ts';
import { encodeReceivedMessage, type EncodedFrame } from './message-encoder.ts';
import { formatReceiptHandle, parseReceiptHandle } from './receipt-handle.ts';
import { assignmentQueuesOf, messageQueuesOf, proxyRouteOf, RouteCache, sendTargetsOf, type ProxyRoute } from './proxy-routes.ts';
import type { ClientSession, ProxyTransport } from './proxy-transport.ts';
import { commitLogOffsetOfMessageId, formatTransactionId, parseTransactionId } from './transaction-id.ts';
import { messageTypeConflict, messageTypeOfProperties, topicMessageTypeOf, type TopicMessageType } from './topic-message-type.ts';
import { decodeRecallHandle, isRecallHandle } from '../../actors/timer-hook.ts';
import { MessageConst } from '../remoting/message-batch.ts';
import {
  PULL_SYS_FLAG,
  pullBatchSizeOf,
  pulledMessagesOf,
  pullFramesOf,
  pullRefusalCodeOf,
  PullStatus,
  pullStatusOf,
  pullSubscriptionOf,
  pullTimingOf,
} from './pull-message.ts';

/** ProxyConfig defaults the activities use. */
export const PROXY_DEFAULTS = {
  /** grpcClientConsumerMinLongPollingTimeoutMillis / Max. */
  longPollingMinMs: 5_000,
  longPollingMaxMs: 20_000,
  /** minInvisibleTimeMillsForRecv / maxInvisibleTimeMills. */
  minInvisibleTimeMsForReceive: 10_000,
  maxInvisibleTimeMs: 12 * 60 * 60 * 1000,
  /** defaultInvisibleTimeMills, used when a client asks for auto-renew. */
  defaultInvisibleTimeMs: 60_000,
  /** grpcClientConsumerLongPollingBatchSize: the most messages one receive returns. */
  receiveBatchSizeMax: 32,
  /** grpcClientIdleTimeMills. */
  clientIdleMs: 120_000,
  /** Most clients tracked at once. */
  clientsMax: 100_000,
  /** How long a request to a server may take, beyond any long poll. */
  requestTimeoutMs: 3_000,
  /** grpcClientProducerMaxAttempts / BackoffInitialMillis / BackoffMaxMillis / BackoffMultiplier. */
  producerMaxAttempts: 3,
  producerBackoffInitialMs: 10,
  producerBackoffMaxMs: 1_000,
  producerBackoffMultiplier: 2,
} as const;

/** SubscriptionGroupConfig defaults: retryMaxTimes 16, the customized retry policy's delays. */
const GROUP_RETRY_MAX_TIMES = 16;
const CUSTOMIZED_RETRY_NEXT_MS = [
  1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000, 540_000, 600_000,
  1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
const DEFAULT_TOPIC = 'TBW102';
/** ConsumeInitMode.MAX. */
const CONSUME_INIT_MODE_MAX = 1;

/** A ReceiveMessage stream frame: a plain object, or a message already encoded from its stored record. */
export type ReceiveFrame = M.ReceiveMessageResponse | EncodedFrame;

/** Who is calling: from the call's metadata and peer. */
export type CallContext = {
  readonly clientId: string;
  readonly remoteAddress: string;
  /** Absolute deadline of the call in ms, if the client set one. */
  readonly deadlineMs: number | undefined;
};

/** What the activities need from their host. */
export type ActivityOptions = {
  readonly transport: ProxyTransport;
  readonly nowMs: () => number;
  readonly log: Logger;
  readonly autoCreateTopicEnable: boolean;
  readonly defaultTopicQueueNums: number;
  readonly limits?: ProxyMessageLimits;
  readonly requestTimeoutMs?: number;
  readonly clientIdleMs?: number;
  readonly clientsMax?: number;
  /** ProxyConfig's enableTopicMessageTypeCheck (default true). */
  readonly enableTopicMessageTypeCheck?: boolean;
};

/** Writes one command on a client's Telemetry stream; false when the stream is gone. */
export type TelemetryWriter = (command: M.TelemetryCommand) => boolean;

/** The session the Proxy uses for its own requests (routes, topic configs), not a client's. */
const PROXY_SESSION: ClientSession = { connectionId: 0, remoteAddress: 'proxy' };
/** Most topics one producer registers for (its producer groups at the brokers). */
const PUBLISHING_TOPICS_MAX = 1024;

type ClientState = {
  readonly session: ClientSession;
  settings: M.Settings | undefined;
  lastSeenMs: number;
  /** The consumer group, once a heartbeat or settings named it. */
  group: string | undefined;
  /** The client's open Telemetry stream, if any (server commands go there). */
  telemetry: TelemetryWriter | undefined;
  /** The topics a producer publishes to (its producer groups at the brokers, as the Proxy names them). */
  publishing: readonly string[];
};

/** A refusal raised inside an activity and answered as a Status. */
class ActivityRefusal extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

const ok = (): M.Status => ({ code: Code.OK, message: 'OK' });
const statusOf = (code: number, message: string): M.Status => ({ code, message });

/** The MessagingService activities over one transport. */
export class MessagingActivity {
  private readonly routes = new RouteCache();
  private readonly clients = new Map<string, ClientState>();
  private readonly options: ActivityOptions;
  private readonly limits: ProxyMessageLimits;
  private readonly requestTimeoutMs: number;
  private nextConnectionId = 1;
  private roundRobin = 0;

  constructor(options: ActivityOptions) {
    this.options = options;
    this.limits = options.limits ?? PROXY_MESSAGE_LIMITS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? PROXY_DEFAULTS.requestTimeoutMs;
  }

  // ------------------------------------------------------------------------------------------- clients

  /** The client's state, created on first sight; idle clients are dropped. */
  private client(ctx: CallContext): ClientState {
    const nowMs = this.options.nowMs();
    let state = this.clients.get(ctx.clientId);
    if (state === undefined) {
      if (this.clients.size >= (this.options.clientsMax ?? PROXY_DEFAULTS.clientsMax)) this.expireClients(nowMs, true);
      state = {
        session: { connectionId: this.nextConnectionId++, remoteAddress: ctx.remoteAddress },
        settings: undefined,
        lastSeenMs: nowMs,
        group: undefined,
        telemetry: undefined,
        publishing: [],
      };
      this.clients.set(ctx.clientId, state);
    }
    state.lastSeenMs = nowMs;
    return state;
  }

  /** Drops clients idle for longer than clientIdleMs (or the oldest one when `force` and none is idle). */
  expireClients(nowMs: number, force = false): void {
    const idleMs = this.options.clientIdleMs ?? PROXY_DEFAULTS.clientIdleMs;
    let oldest: [string, ClientState] | undefined;
    for (const entry of this.clients) {
      if (nowMs - entry[1].lastSeenMs > idleMs) this.dropClient(entry[0], entry[1]);
      else if (oldest === undefined || entry[1].lastSeenMs < oldest[1].lastSeenMs) oldest = entry;
    }
    if (force && oldest !== undefined && this.clients.size >= (this.options.clientsMax ?? PROXY_DEFAULTS.clientsMax)) this.dropClient(oldest[0], oldest[1]);
  }

  private dropClient(clientId: string, state: ClientState): void {
    this.clients.delete(clientId);
    this.options.transport.closeSession(state.session);
  }

  // -------------------------------------------------------------------------------------------- routes

  /** The route of `topic`: cached, else from the NameServer; unknown topics borrow TBW102's when allowed. */
  private async route(topic: string): Promise<ProxyRoute> {
    const nowMs = this.options.nowMs();
    const cached = this.routes.get(topic, nowMs);
    if (cached !== undefined) return cached;
    let data = await this.fetchRoute(topic);
    if (data === undefined && this.options.autoCreateTopicEnable) {
      const fallback = await this.fetchRoute(DEFAULT_TOPIC);
      if (fallback !== undefined) {
        // As a 4.x producer does: the brokers that allow auto-creation create the topic on first send.
        data = {
          ...fallback,
          queueDatas: fallback.queueDatas.map((queue) => ({
            ...queue,
            readQueueNums: Math.min(this.options.defaultTopicQueueNums, queue.readQueueNums),
            writeQueueNums: Math.min(this.options.defaultTopicQueueNums, queue.writeQueueNums),
          })),
        };
        // Not cached: the real route replaces it as soon as the broker registers the topic, which a
        // producer's first send auto-creates as a NORMAL topic (topic-message-type.ts).
        return proxyRouteOf(topic, data, 'NORMAL');
      }
    }
    if (data === undefined) throw new ActivityRefusal(Code.TOPIC_NOT_FOUND, `topic ${topic} not found`);
    const route = proxyRouteOf(topic, data, await this.fetchMessageType(topic, data));
    this.routes.put(route, nowMs);
    return route;
  }

  private async fetchRoute(topic: string): Promise<TopicRouteData | undefined> {
    const request = createRequest({ code: RequestCode.GET_ROUTEINFO_BY_TOPIC, opaque: 0, extFields: { topic } });
    const answer = await this.options.transport.invokeNamesrv(request, this.requestTimeoutMs);
    if (answer.code === ResponseCode.TOPIC_NOT_EXIST) return undefined;
    if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(Code.INTERNAL_SERVER_ERROR, `NameServer: ${answer.remark ?? answer.code}`);
    return decodeJsonBody<TopicRouteData>(answer.body, 'TopicRouteData');
  }

  /**
   * The topic's declared message type, from the first broker master of its route (GET_TOPIC_CONFIG), as
   * RocketMQ's metadata services read it. A broker that does not know the topic: NORMAL (auto-create).
   */
  private async fetchMessageType(topic: string, data: TopicRouteData): Promise<TopicMessageType> {
    const addr = data.brokerDatas.map((broker) => broker.brokerAddrs[String(MASTER_ID)]).find((candidate) => candidate !== undefined);
    if (addr === undefined) return 'NORMAL';
    const request = createRequest({ code: RequestCode.GET_TOPIC_CONFIG, opaque: 0, extFields: { topic } });
    const answer = await this.options.transport.invokeBroker(addr, request, this.requestTimeoutMs, PROXY_SESSION);
    if (answer.code === ResponseCode.TOPIC_NOT_EXIST) return 'NORMAL';
    if (answer.code !== ResponseCode.SUCCESS || answer.body === undefined) {
      this.options.log.warn({ topic, code: answer.code, remark: answer.remark }, 'topic config unavailable; message type UNSPECIFIED');
      return 'UNSPECIFIED';
    }
    const config = decodeJsonBody<{ attributes?: Record<string, string> }>(answer.body, 'TopicConfigAndQueueMapping');
    return topicMessageTypeOf(config.attributes);
  }

  /** The master address of a broker set, from any cached route or the route of `topic`. */
  private async brokerAddr(brokerName: string, topic: string): Promise<string> {
    const cached = this.routes.brokerAddr(brokerName, this.options.nowMs());
    if (cached !== undefined) return cached;
    const addr = (await this.route(topic)).brokers.get(brokerName)?.masterAddr;
    if (addr === undefined) throw new ActivityRefusal(Code.NOT_FOUND, `broker ${brokerName} has no master serving ${topic}`);
    return addr;
  }

  /**
   * One call to a broker. A broker that cannot be reached, or answers SERVICE_NOT_AVAILABLE (a slave, a
   * fenced old master, a full disk), drops the cached routes naming it as master, so the next call asks
   * the NameServer and follows a failover within one call instead of one route TTL.
   */
  private async invokeBroker(addr: string, request: RemotingCommand, session: ClientSession, extraTimeoutMs = 0): Promise<RemotingCommand> {
    let answer: RemotingCommand;
    try {
      answer = await this.options.transport.invokeBroker(addr, request, this.requestTimeoutMs + extraTimeoutMs, session);
    } catch (error) {
      this.routes.forgetBroker(addr);
      throw error;
    }
    if (answer.code === ResponseCode.SERVICE_NOT_AVAILABLE) this.routes.forgetBroker(addr);
    return answer;
  }

  // ------------------------------------------------------------------------------------- unary helpers

  /** Runs an activity, answering refusals and failures as a Status in the response. */
  private async guard<R extends { status: M.Status }>(what: string, body: () => Promise<R>, empty: (status: M.Status) => R): Promise<R> {
    try {
      return await body();
    } catch (error) {
      if (error instanceof ActivityRefusal) return empty(statusOf(error.code, error.message));
      this.options.log.warn({ err: error, what }, 'proxy activity failed');
      const message = error instanceof Error ? error.message : String(error);
      const timeout = error instanceof Error && 'code' in error && (error as { code: unknown }).code === 'TIMEOUT';
      return empty(statusOf(timeout ? Code.PROXY_TIMEOUT : Code.INTERNAL_SERVER_ERROR, `${what}: ${message}`));
    }
  }

  // ---------------------------------------------------------------------------------------------- RPCs

  queryRoute(ctx: CallContext, request: M.QueryRouteRequest): Promise<M.QueryRouteResponse> {
    return this.guard(
      'QueryRoute',
      async () => {
        this.client(ctx);
        const topic = request.topic?.name ?? '';
        const refusal = checkTopicName(topic);
        if (refusal !== undefined) throw new ActivityRefusal(refusal.code, refusal.message);
        const endpoints = request.endpoints ?? { scheme: 1, addresses: [] };
        const queues = messageQueuesOf(await this.route(topic), endpoints);
        return { status: ok(), messageQueues: queues };
      },
      (status) => ({ status, messageQueues: [] }),
    );
  }

  queryAssignment(ctx: CallContext, request: M.QueryAssignmentRequest): Promise<M.QueryAssignmentResponse> {
    return this.guard(
      'QueryAssignment',
      async () => {
        this.client(ctx);
        const topic = request.topic?.name ?? '';
        const topicRefusal = checkTopicName(topic);
        if (topicRefusal !== undefined) throw new ActivityRefusal(topicRefusal.code, topicRefusal.message);
        const groupRefusal = checkConsumerGroupName(request.group?.name ?? '');
        if (groupRefusal !== undefined) throw new ActivityRefusal(groupRefusal.code, groupRefusal.message);
        const endpoints = request.endpoints ?? { scheme: 1, addresses: [] };
        const queues = assignmentQueuesOf(await this.route(topic), endpoints);
        return { status: ok(), assignments: queues.map((messageQueue) => ({ messageQueue })) };
      },
      (status) => ({ status, assignments: [] }),
    );
  }

  heartbeat(ctx: CallContext, request: M.HeartbeatRequest): Promise<M.HeartbeatResponse> {
    return this.guard(
      'Heartbeat',
      async () => {
        const client = this.client(ctx);
        const group = request.group?.name;
        const consumer = request.clientType === ClientType.PUSH_CONSUMER || request.clientType === ClientType.SIMPLE_CONSUMER;
        if (consumer && group !== undefined && group.length > 0) {
          const refusal = checkConsumerGroupName(group);
          if (refusal !== undefined) throw new ActivityRefusal(refusal.code, refusal.message);
          client.group = group;
          await this.heartbeatBrokers(ctx.clientId, client, group);
        }
        if (request.clientType === ClientType.PRODUCER && client.publishing.length > 0) await this.heartbeatProducer(ctx.clientId, client);
        return { status: ok() };
      },
      (status) => ({ status }),
    );
  }

  /** Registers a consumer with every broker of its subscribed topics (HEART_BEAT with its subscriptions). */
  private async heartbeatBrokers(clientId: string, client: ClientState, group: string): Promise<void> {
    const subscriptions = client.settings?.subscription?.subscriptions ?? [];
    const subscriptionDataSet: SubscriptionData[] = subscriptions.map((entry) => subscriptionDataOf(entry, this.options.nowMs()));
    const body = formatHeartbeatData({
      clientID: clientId,
      producerDataSet: [],
      consumerDataSet: [
        { groupName: group, consumeType: 'CONSUME_POP', messageModel: 'CLUSTERING', consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', subscriptionDataSet, unitMode: false },
      ],
      heartbeatFingerprint: 0,
      withoutSub: false,
    });
    await this.heartbeatMasters(client, subscriptionDataSet.map((data) => data.topic), body);
  }

  /**
   * Registers a producer with the brokers of the topics it publishes to, one producer group per topic (the
   * Proxy's producer group is the topic name, see prepareSend), so a broker's transaction check-back finds
   * this client's channel.
   */
  private async heartbeatProducer(clientId: string, client: ClientState): Promise<void> {
    const body = formatHeartbeatData({
      clientID: clientId,
      producerDataSet: client.publishing.map((topic) => ({ groupName: topic })),
      consumerDataSet: [],
      heartbeatFingerprint: 0,
      withoutSub: false,
    });
    await this.heartbeatMasters(client, client.publishing, body);
  }

  /** Sends one HEART_BEAT with `body` to the master of every broker set serving `topics`, once each. */
  private async heartbeatMasters(client: ClientState, topics: readonly string[], body: Uint8Array): Promise<void> {
    const addrs = new Set<string>();
    for (const topic of topics) {
      const route = await this.route(topic).catch(() => undefined);
      for (const broker of route?.brokers.values() ?? []) if (broker.masterAddr !== undefined) addrs.add(broker.masterAddr);
    }
    await Promise.all(
      [...addrs].map((addr) => this.invokeBroker(addr, createRequest({ code: RequestCode.HEART_BEAT, opaque: 0, extFields: {}, body }), client.session)),
    );
  }

  /** The client's Telemetry stream opened: server commands for it go to `writer` until `detach` runs. */
  attachTelemetry(ctx: CallContext, writer: TelemetryWriter): () => void {
    const client = this.client(ctx);
    client.telemetry = writer;
    return () => {
      if (client.telemetry === writer) client.telemetry = undefined;
    };
  }

  notifyClientTermination(ctx: CallContext, request: M.NotifyClientTerminationRequest): Promise<M.NotifyClientTerminationResponse> {
    return this.guard(
      'NotifyClientTermination',
      async () => {
        const client = this.clients.get(ctx.clientId);
        if (client === undefined) return { status: ok() };
        const group = request.group?.name ?? client.group;
        const addrs = new Set<string>();
        for (const entry of client.settings?.subscription?.subscriptions ?? []) {
          const route = this.routes.get(entry.topic?.name ?? '', this.options.nowMs());
          for (const broker of route?.brokers.values() ?? []) if (broker.masterAddr !== undefined) addrs.add(broker.masterAddr);
        }
        const extFields = UnregisterClientRequestHeader.format({ clientID: ctx.clientId, ...(group !== undefined && group.length > 0 ? { consumerGroup: group } : {}) });
        await Promise.allSettled([...addrs].map((addr) => this.invokeBroker(addr, createRequest({ code: RequestCode.UNREGISTER_CLIENT, opaque: 0, extFields }), client.session)));
        this.dropClient(ctx.clientId, client);
        return { status: ok() };
      },
      (status) => ({ status }),
    );
  }

  /** One Telemetry frame from the client; the answer to send back, if any. */
  async telemetry(ctx: CallContext, command: M.TelemetryCommand): Promise<M.TelemetryCommand | undefined> {
    const client = this.client(ctx);
    if (command.settings === undefined) return undefined;
    client.settings = command.settings;
    const group = command.settings.subscription?.group?.name;
    if (group !== undefined && group.length > 0) client.group = group;
    const publishing = command.settings.publishing?.topics.map((topic) => topic.name).filter((name) => checkTopicName(name) === undefined);
    if (publishing !== undefined) {
      client.publishing = publishing.slice(0, PUBLISHING_TOPICS_MAX);
      await this.heartbeatProducer(ctx.clientId, client).catch((error: unknown) => this.options.log.warn({ err: error }, 'producer registration failed'));
    }
    const merged = await this.serverSettings(command.settings, client).catch((error: unknown) => {
      this.options.log.warn({ err: error }, 'client settings could not be completed');
      return command.settings!;
    });
    client.settings = merged;
    return { status: ok(), settings: merged };
  }

  /** The client's settings completed with the server's, as GrpcClientSettingsManager merges them. */
  private async serverSettings(settings: M.Settings, client: ClientState): Promise<M.Settings> {
    if (settings.publishing !== undefined) {
      return {
        ...settings,
        backoffPolicy: {
          maxAttempts: PROXY_DEFAULTS.producerMaxAttempts,
          exponentialBackoff: {
            initial: durationFromMs(PROXY_DEFAULTS.producerBackoffInitialMs),
            max: durationFromMs(PROXY_DEFAULTS.producerBackoffMaxMs),
            multiplier: PROXY_DEFAULTS.producerBackoffMultiplier,
          },
        },
        publishing: { ...settings.publishing, validateMessageType: true, maxBodySize: this.limits.maxMessageSize },
        metric: { on: false },
      };
    }
    if (settings.subscription !== undefined) {
      const group = settings.subscription.group?.name ?? client.group ?? '';
      const config = await this.groupConfig(group, settings, client);
      return {
        ...settings,
        backoffPolicy: config.consumeMessageOrderly
          ? {
              maxAttempts: config.retryMaxTimes + 1,
              exponentialBackoff: { initial: durationFromMs(1_000), max: durationFromMs(60_000), multiplier: 2 },
            }
          : { maxAttempts: config.retryMaxTimes + 1, customizedBackoff: { next: CUSTOMIZED_RETRY_NEXT_MS.map(durationFromMs) } },
        subscription: {
          ...settings.subscription,
          fifo: config.consumeMessageOrderly,
          receiveBatchSize: PROXY_DEFAULTS.receiveBatchSizeMax,
          longPollingTimeout: durationFromMs(PROXY_DEFAULTS.longPollingMaxMs),
        },
        metric: { on: false },
      };
    }
    return settings;
  }

  /** The subscription group's retry settings from a broker of its topics (GET_SUBSCRIPTIONGROUP_CONFIG). */
  private async groupConfig(group: string, settings: M.Settings, client: ClientState): Promise<{ retryMaxTimes: number; consumeMessageOrderly: boolean }> {
    const fallback = { retryMaxTimes: GROUP_RETRY_MAX_TIMES, consumeMessageOrderly: false };
    const topic = settings.subscription?.subscriptions[0]?.topic?.name;
    if (group.length === 0 || topic === undefined) return fallback;
    const route = await this.route(topic);
    const addr = [...route.brokers.values()].find((broker) => broker.masterAddr !== undefined)?.masterAddr;
    if (addr === undefined) return fallback;
    const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.GET_SUBSCRIPTIONGROUP_CONFIG, opaque: 0, extFields: { group } }), client.session);
    if (answer.code !== ResponseCode.SUCCESS || answer.body === undefined) return fallback;
    const config = decodeJsonBody<{ retryMaxTimes?: number; consumeMessageOrderly?: boolean }>(answer.body, 'SubscriptionGroupConfig');
    return {
      retryMaxTimes: typeof config.retryMaxTimes === 'number' ? config.retryMaxTimes : GROUP_RETRY_MAX_TIMES,
      consumeMessageOrderly: config.consumeMessageOrderly === true,
    };
  }

  sendMessage(ctx: CallContext, request: M.SendMessageRequest): Promise<M.SendMessageResponse> {
    return this.guard(
      'SendMessage',
      async () => {
        const client = this.client(ctx);
        if (request.messages.length === 0) throw new ActivityRefusal(Code.MESSAGE_CORRUPTED, 'no message to send');
        const topic = request.messages[0]!.topic?.name ?? '';
        const entries: M.SendResultEntry[] = [];
        for (const message of request.messages) {
          if ((message.topic?.name ?? '') !== topic) throw new ActivityRefusal(Code.MESSAGE_CORRUPTED, 'topic in message is not same');
          entries.push(await this.sendOne(ctx, client, message, topic));
        }
        const codes = new Set(entries.map((entry) => entry.status.code));
        const status = codes.size === 1 ? entries[0]!.status : statusOf(Code.MULTIPLE_RESULTS, 'MULTIPLE_RESULTS');
        return { status, entries };
      },
      (status) => ({ status, entries: [] }),
    );
  }

  private async sendOne(ctx: CallContext, client: ClientState, message: M.Message, topic: string): Promise<M.SendResultEntry> {
    const failed = (code: number, text: string): M.SendResultEntry => ({ status: statusOf(code, text), messageId: '', transactionId: '', offset: 0, recallHandle: '' });
    const prepared = prepareSend(
      { topic: message.topic, userProperties: message.userProperties, systemProperties: message.systemProperties, body: message.body },
      { producerGroup: topic, remoteAddress: ctx.remoteAddress, nowMs: this.options.nowMs(), limits: this.limits },
    );
    if (!prepared.ok) return failed(prepared.code, prepared.message);
    const route = await this.route(topic);
    if ((this.options.enableTopicMessageTypeCheck ?? true) && !topic.startsWith(RETRY_GROUP_TOPIC_PREFIX) && !topic.startsWith(DLQ_GROUP_TOPIC_PREFIX)) {
      const conflict = prepared.propertyMap.has(MessageConst.PROPERTY_TRANSFER_FLAG)
        ? undefined
        : messageTypeConflict(route.messageType, messageTypeOfProperties(prepared.propertyMap));
      if (conflict !== undefined) return failed(Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, conflict);
    }
    const targets = sendTargetsOf(route);
    if (targets.length === 0) return failed(Code.FORBIDDEN, `topic ${topic} has no writable queue`);
    const index = prepared.messageGroup !== undefined ? queueForMessageGroup(prepared.messageGroup, targets.length) : this.roundRobin++ % targets.length;
    const target = targets[index]!;
    const header = formatSendMessageRequest(
      {
        producerGroup: topic,
        topic,
        defaultTopic: DEFAULT_TOPIC,
        defaultTopicQueueNums: this.options.defaultTopicQueueNums,
        queueId: target.queueId,
        sysFlag: prepared.sysFlag,
        bornTimestamp: prepared.bornTimestampMs,
        flag: 0,
        properties: prepared.properties,
        reconsumeTimes: prepared.reconsumeTimes,
      },
      'V2',
    );
    const answer = await this.invokeBroker(
      target.broker.masterAddr!,
      createRequest({ code: RequestCode.SEND_MESSAGE_V2, opaque: 0, extFields: header, body: prepared.body }),
      client.session,
    );
    const code = sendCodeOf(answer.code);
    if (code !== Code.OK) {
      if (answer.code === ResponseCode.TOPIC_NOT_EXIST) this.routes.forget(topic);
      return failed(code, answer.remark ?? `send failed with Remoting code ${answer.code}`);
    }
    const response = SendMessageResponseHeader.parse(answer.extFields);
    let transactionId = '';
    if (prepared.propertyMap.get(MessageConst.PROPERTY_TRANSACTION_PREPARED) === 'true') {
      const commitLogOffset = commitLogOffsetOfMessageId(response.msgId);
      if (commitLogOffset === undefined) return failed(Code.INTERNAL_SERVER_ERROR, `broker answered an unreadable message id ${response.msgId}`);
      transactionId = formatTransactionId({
        brokerName: target.broker.brokerName,
        commitLogOffset,
        tranStateTableOffset: response.queueOffset,
        brokerTransactionId: response.transactionId ?? prepared.messageId,
      });
    }
    return { status: ok(), messageId: prepared.messageId, transactionId, offset: response.queueOffset, recallHandle: response.recallHandle ?? '' };
  }

  /** Receives a batch by POP; the frames of the response stream, in order. */
  async receiveMessage(ctx: CallContext, request: M.ReceiveMessageRequest): Promise<ReceiveFrame[]> {
    try {
      return await this.receive(ctx, request);
    } catch (error) {
      if (error instanceof ActivityRefusal) return [{ status: statusOf(error.code, error.message) }];
      this.options.log.warn({ err: error }, 'ReceiveMessage failed');
      return [{ status: statusOf(Code.INTERNAL_SERVER_ERROR, error instanceof Error ? error.message : String(error)) }];
    }
  }

  private async receive(ctx: CallContext, request: M.ReceiveMessageRequest): Promise<ReceiveFrame[]> {
    const client = this.client(ctx);
    const nowMs = this.options.nowMs();
    const topic = request.messageQueue?.topic?.name ?? '';
    const group = request.group?.name ?? '';
    const topicRefusal = checkTopicName(topic);
    if (topicRefusal !== undefined) throw new ActivityRefusal(topicRefusal.code, topicRefusal.message);
    const groupRefusal = checkConsumerGroupName(group);
    if (groupRefusal !== undefined) throw new ActivityRefusal(groupRefusal.code, groupRefusal.message);
    const pollMs = this.pollingTime(request, ctx, nowMs);
    const invisibleMs = this.invisibleTime(request);
    const batchSize = Math.min(Math.max(request.batchSize, 1), PROXY_DEFAULTS.receiveBatchSizeMax);
    const filter = request.filterExpression ?? { type: FilterType.TAG, expression: '*' };
    const expType = filter.type === FilterType.SQL ? 'SQL92' : 'TAG';
    const brokerName = request.messageQueue?.broker?.name ?? '';
    const route = await this.route(topic);
    const broker = route.brokers.get(brokerName) ?? [...route.brokers.values()].find((candidate) => candidate.masterAddr !== undefined);
    if (broker?.masterAddr === undefined) throw new ActivityRefusal(Code.NOT_FOUND, `no broker serves ${topic}`);
    const settings = client.settings;
    const fifo = settings?.subscription?.fifo === true;
    const maxAttempts = settings?.backoffPolicy?.maxAttempts ?? GROUP_RETRY_MAX_TIMES + 1;
    const header = PopMessageRequestHeader.format({
      consumerGroup: group,
      topic,
      queueId: -1,
      maxMsgNums: batchSize,
      invisibleTime: invisibleMs,
      pollTime: pollMs,
      bornTime: nowMs,
      initMode: CONSUME_INIT_MODE_MAX,
      expType,
      exp: filter.expression.length > 0 ? filter.expression : '*',
      order: fifo,
      maxAttempts,
      ...(request.attemptId !== undefined ? { attemptId: request.attemptId } : {}),
    });
    const answer = await this.invokeBroker(broker.masterAddr, createRequest({ code: RequestCode.POP_MESSAGE, opaque: 0, extFields: header }), client.session, pollMs);
    switch (answer.code) {
      case ResponseCode.SUCCESS:
        return this.popFrames(answer, broker.brokerName, invisibleMs);
      case ResponseCode.PULL_NOT_FOUND:
      case ResponseCode.POLLING_TIMEOUT:
      case ResponseCode.NO_MESSAGE:
        return [{ status: statusOf(Code.MESSAGE_NOT_FOUND, 'no new message') }];
      case ResponseCode.POLLING_FULL:
      case ResponseCode.SYSTEM_BUSY:
        return [{ status: statusOf(Code.TOO_MANY_REQUESTS, answer.remark ?? 'polling full') }];
      case ResponseCode.SUBSCRIPTION_PARSE_FAILED:
        return [{ status: statusOf(Code.ILLEGAL_FILTER_EXPRESSION, answer.remark ?? 'illegal filter expression') }];
      case ResponseCode.TOPIC_NOT_EXIST:
        return [{ status: statusOf(Code.TOPIC_NOT_FOUND, answer.remark ?? `topic ${topic} not found`) }];
      case ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST:
        return [{ status: statusOf(Code.CONSUMER_GROUP_NOT_FOUND, answer.remark ?? `group ${group} not found`) }];
      default:
        return [{ status: statusOf(Code.INTERNAL_SERVER_ERROR, answer.remark ?? `pop failed with Remoting code ${answer.code}`) }];
    }
  }

  /** The stream frames of a successful POP: OK, then each record with its wrapped handle. */
  private popFrames(answer: RemotingCommand, brokerName: string, invisibleMs: number): ReceiveFrame[] {
    const header = PopMessageResponseHeader.parse(answer.extFields);
    const handles = header.receiptHandles.length > 0 ? header.receiptHandles.split(RECEIPT_HANDLE_SEPARATOR) : [];
    const attempts = header.attempts.length > 0 ? header.attempts.split(RECEIPT_HANDLE_SEPARATOR).map(Number) : [];
    const frames: ReceiveFrame[] = [{ status: ok() }];
    const body = answer.body ?? new Uint8Array(0);
    let at = 0;
    for (let index = 0; at < body.length; index++) {
      const record = decodeRecord(body, at);
      const brokerHandle = handles[index];
      if (brokerHandle === undefined) throw new ActivityRefusal(Code.INTERNAL_SERVER_ERROR, 'broker answered fewer receipt handles than messages');
      const receiptHandle = formatReceiptHandle({
        brokerName,
        queueId: record.queueId,
        queueOffset: record.queueOffset,
        commitLogOffset: record.physicalOffset,
        brokerHandle,
      });
      frames.push(encodeReceivedMessage(body, at, { receiptHandle, deliveryAttempt: attempts[index] ?? record.reconsumeTimes + 1, invisibleDurationMs: invisibleMs }));
      at += record.totalSize;
    }
    return frames;
  }

  private pollingTime(request: M.ReceiveMessageRequest, ctx: CallContext, nowMs: number): number {
    const remainingMs = ctx.deadlineMs === undefined ? Number.MAX_SAFE_INTEGER : ctx.deadlineMs - nowMs;
    let pollMs = request.longPollingTimeout !== undefined && isValidDuration(request.longPollingTimeout) ? durationToMs(request.longPollingTimeout) : remainingMs - PROXY_DEFAULTS.requestTimeoutMs / 2;
    pollMs = Math.min(Math.max(pollMs, PROXY_DEFAULTS.longPollingMinMs), PROXY_DEFAULTS.longPollingMaxMs);
    if (pollMs > remainingMs) {
      if (remainingMs < PROXY_DEFAULTS.longPollingMinMs) {
        throw new ActivityRefusal(Code.ILLEGAL_POLLING_TIME, 'The deadline time remaining is not enough for polling, please check network condition');
      }
      pollMs = remainingMs;
    }
    return Math.floor(pollMs);
  }

  private invisibleTime(request: M.ReceiveMessageRequest): number {
    if (request.autoRenew) return PROXY_DEFAULTS.defaultInvisibleTimeMs;
    const invisible = request.invisibleDuration;
    if (invisible === undefined || !isValidDuration(invisible)) throw new ActivityRefusal(Code.ILLEGAL_INVISIBLE_TIME, 'the invisibleTime is missing');
    const invisibleMs = durationToMs(invisible);
    if (invisibleMs < PROXY_DEFAULTS.minInvisibleTimeMsForReceive) {
      throw new ActivityRefusal(Code.ILLEGAL_INVISIBLE_TIME, `the invisibleTime is too small. min is ${PROXY_DEFAULTS.minInvisibleTimeMsForReceive}`);
    }
    if (invisibleMs > PROXY_DEFAULTS.maxInvisibleTimeMs) {
      throw new ActivityRefusal(Code.ILLEGAL_INVISIBLE_TIME, `the invisibleTime is too large. max is ${PROXY_DEFAULTS.maxInvisibleTimeMs}`);
    }
    return invisibleMs;
  }

  /**
   * PullMessage: one PULL_MESSAGE to the master of the queue's broker set, held there up to the long-polling
   * time when nothing is at the offset yet (pull-message.ts has the mapping); the frames of the response
   * stream, in order. A refusal or failure is a single status frame, without next_offset.
   */
  async pullMessage(ctx: CallContext, request: M.PullMessageRequest): Promise<M.PullMessageResponse[]> {
    const answer = await this.guard(
      'PullMessage',
      async () => ({ status: ok(), frames: await this.pull(ctx, request) }),
      (status): { status: M.Status; frames: M.PullMessageResponse[] } => ({ status, frames: [{ status }] }),
    );
    return answer.frames;
  }

  private async pull(ctx: CallContext, request: M.PullMessageRequest): Promise<M.PullMessageResponse[]> {
    const client = this.client(ctx);
    const nowMs = this.options.nowMs();
    const { group, topic } = this.groupAndTopic(request.group, request.messageQueue?.topic ?? null);
    if (!Number.isSafeInteger(request.offset)) throw new ActivityRefusal(Code.ILLEGAL_OFFSET, `offset ${request.offset} is illegal`);
    // Absent, as Durations.toMillis of the default Duration: 0, which the clamp raises to the minimum.
    const poll = request.longPollingTimeout ?? null;
    const requestedPollMs = poll !== null && isValidDuration(poll) ? durationToMs(poll) : 0;
    const remainingMs = ctx.deadlineMs === undefined ? Number.MAX_SAFE_INTEGER : ctx.deadlineMs - nowMs;
    const timing = pullTimingOf(requestedPollMs, remainingMs, {
      longPollingMinMs: PROXY_DEFAULTS.longPollingMinMs,
      longPollingMaxMs: PROXY_DEFAULTS.longPollingMaxMs,
      requestTimeoutMs: this.requestTimeoutMs,
    });
    if (!timing.ok) throw new ActivityRefusal(timing.code, timing.message);
    const subscription = pullSubscriptionOf(request.filterExpression);
    if (!subscription.ok) throw new ActivityRefusal(subscription.code, subscription.message);
    const maxMsgNums = pullBatchSizeOf(request.batchSize);
    const addr = await this.brokerAddr(request.messageQueue?.broker?.name ?? '', topic);
    const extFields = PullMessageRequestHeader.format({
      consumerGroup: group,
      topic,
      queueId: request.messageQueue?.id ?? -1,
      queueOffset: request.offset,
      maxMsgNums,
      sysFlag: PULL_SYS_FLAG,
      commitOffset: 0,
      suspendTimeoutMillis: timing.suspendMs,
      subscription: subscription.subscription,
      subVersion: nowMs,
      expressionType: subscription.expressionType,
    });
    const command = createRequest({ code: RequestCode.PULL_MESSAGE, opaque: 0, extFields });
    // invokeBroker waits requestTimeoutMs plus the extra: askTimeoutMs in all, past the hold, within the deadline.
    const answer = await this.invokeBroker(addr, command, client.session, timing.askTimeoutMs - this.requestTimeoutMs);
    const status = pullStatusOf(answer.code);
    if (status === undefined) {
      if (answer.code === ResponseCode.TOPIC_NOT_EXIST) this.routes.forget(topic);
      throw new ActivityRefusal(pullRefusalCodeOf(answer.code), answer.remark ?? `pull failed with Remoting code ${answer.code}`);
    }
    const header = PullMessageResponseHeader.parse(answer.extFields);
    const messages = status === PullStatus.FOUND ? pulledMessagesOf(answer.body, maxMsgNums) : [];
    if (!Array.isArray(messages)) throw new ActivityRefusal(messages.code, messages.message);
    return pullFramesOf(status, messages, header.nextBeginOffset);
  }

  ackMessage(ctx: CallContext, request: M.AckMessageRequest): Promise<M.AckMessageResponse> {
    return this.guard(
      'AckMessage',
      async () => {
        const client = this.client(ctx);
        const { group, topic } = this.groupAndTopic(request.group, request.topic);
        const entries = await Promise.all(
          request.entries.map(async (entry): Promise<M.AckMessageResultEntry> => {
            const status = await this.ackOne(client, group, topic, entry.receiptHandle);
            return { messageId: entry.messageId, receiptHandle: entry.receiptHandle, status };
          }),
        );
        const codes = new Set(entries.map((entry) => entry.status.code));
        const status = codes.size <= 1 ? (entries[0]?.status ?? ok()) : statusOf(Code.MULTIPLE_RESULTS, 'MULTIPLE_RESULTS');
        return { status, entries };
      },
      (status) => ({ status, entries: [] }),
    );
  }

  private async ackOne(client: ClientState, group: string, topic: string, text: string): Promise<M.Status> {
    const handle = parseReceiptHandle(text);
    if (handle === undefined) return statusOf(Code.INVALID_RECEIPT_HANDLE, 'receipt handle is not valid');
    const addr = await this.brokerAddr(handle.brokerName, topic);
    const extFields = AckMessageRequestHeader.format({ consumerGroup: group, topic, queueId: handle.queueId, extraInfo: handle.brokerHandle, offset: handle.queueOffset });
    const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.ACK_MESSAGE, opaque: 0, extFields }), client.session);
    if (answer.code === ResponseCode.SUCCESS) return ok();
    return statusOf(Code.INVALID_RECEIPT_HANDLE, answer.remark ?? 'receipt handle is stale or was acked already');
  }

  changeInvisibleDuration(ctx: CallContext, request: M.ChangeInvisibleDurationRequest): Promise<M.ChangeInvisibleDurationResponse> {
    return this.guard(
      'ChangeInvisibleDuration',
      async () => {
        const client = this.client(ctx);
        const { group, topic } = this.groupAndTopic(request.group, request.topic);
        const duration = request.invisibleDuration;
        if (duration === null || !isValidDuration(duration)) throw new ActivityRefusal(Code.ILLEGAL_INVISIBLE_TIME, 'the invisibleTime is missing');
        const invisibleMs = durationToMs(duration);
        if (invisibleMs < 0) throw new ActivityRefusal(Code.ILLEGAL_INVISIBLE_TIME, 'the invisibleTime is too small. min is 0');
        if (invisibleMs > PROXY_DEFAULTS.maxInvisibleTimeMs) throw new ActivityRefusal(Code.ILLEGAL_INVISIBLE_TIME, `the invisibleTime is too large. max is ${PROXY_DEFAULTS.maxInvisibleTimeMs}`);
        const handle = parseReceiptHandle(request.receiptHandle);
        if (handle === undefined) throw new ActivityRefusal(Code.INVALID_RECEIPT_HANDLE, 'receipt handle is not valid');
        const addr = await this.brokerAddr(handle.brokerName, topic);
        const extFields = ChangeInvisibleTimeRequestHeader.format({
          consumerGroup: group,
          topic,
          queueId: handle.queueId,
          extraInfo: handle.brokerHandle,
          offset: handle.queueOffset,
          invisibleTime: invisibleMs,
        });
        const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.CHANGE_MESSAGE_INVISIBLETIME, opaque: 0, extFields }), client.session);
        if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(Code.INVALID_RECEIPT_HANDLE, answer.remark ?? 'receipt handle is stale or was acked already');
        const response = ChangeInvisibleTimeResponseHeader.parse(answer.extFields);
        return { status: ok(), receiptHandle: formatReceiptHandle({ ...handle, brokerHandle: response.receiptHandle }) };
      },
      (status) => ({ status, receiptHandle: '' }),
    );
  }

  forwardMessageToDeadLetterQueue(ctx: CallContext, request: M.ForwardMessageToDeadLetterQueueRequest): Promise<M.ForwardMessageToDeadLetterQueueResponse> {
    return this.guard(
      'ForwardMessageToDeadLetterQueue',
      async () => {
        const client = this.client(ctx);
        const { group, topic } = this.groupAndTopic(request.group, request.topic);
        const handle = parseReceiptHandle(request.receiptHandle);
        if (handle === undefined) throw new ActivityRefusal(Code.INVALID_RECEIPT_HANDLE, 'receipt handle is not valid');
        const addr = await this.brokerAddr(handle.brokerName, topic);
        const extFields = ConsumerSendMsgBackRequestHeader.format({
          offset: handle.commitLogOffset,
          group,
          delayLevel: -1,
          originMsgId: request.messageId,
          originTopic: topic,
          maxReconsumeTimes: request.maxDeliveryAttempts,
        });
        const sent = await this.invokeBroker(addr, createRequest({ code: RequestCode.CONSUMER_SEND_MSG_BACK, opaque: 0, extFields }), client.session);
        if (sent.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(Code.INTERNAL_SERVER_ERROR, sent.remark ?? `send back failed with Remoting code ${sent.code}`);
        const acked = await this.ackOne(client, group, topic, request.receiptHandle);
        return { status: acked.code === Code.OK ? ok() : acked };
      },
      (status) => ({ status }),
    );
  }

  updateOffset(ctx: CallContext, request: M.UpdateOffsetRequest): Promise<M.UpdateOffsetResponse> {
    return this.guard(
      'UpdateOffset',
      async () => {
        const client = this.client(ctx);
        const { group, topic } = this.groupAndTopic(request.group, request.messageQueue?.topic ?? null);
        const queueId = request.messageQueue?.id ?? -1;
        if (!Number.isSafeInteger(request.offset) || request.offset < 0) throw new ActivityRefusal(Code.ILLEGAL_OFFSET, `offset ${request.offset} is illegal`);
        const addr = await this.brokerAddr(request.messageQueue?.broker?.name ?? '', topic);
        const extFields = UpdateConsumerOffsetRequestHeader.format({ consumerGroup: group, topic, queueId, commitOffset: request.offset });
        const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.UPDATE_CONSUMER_OFFSET, opaque: 0, extFields }), client.session);
        if (answer.code === ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST) throw new ActivityRefusal(Code.CONSUMER_GROUP_NOT_FOUND, answer.remark ?? `group ${group} not found`);
        if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(Code.INTERNAL_SERVER_ERROR, answer.remark ?? `update offset failed with Remoting code ${answer.code}`);
        return { status: ok() };
      },
      (status) => ({ status }),
    );
  }

  getOffset(ctx: CallContext, request: M.GetOffsetRequest): Promise<M.GetOffsetResponse> {
    return this.guard(
      'GetOffset',
      async () => {
        const client = this.client(ctx);
        const { group, topic } = this.groupAndTopic(request.group, request.messageQueue?.topic ?? null);
        const queueId = request.messageQueue?.id ?? -1;
        const addr = await this.brokerAddr(request.messageQueue?.broker?.name ?? '', topic);
        const extFields = QueryConsumerOffsetRequestHeader.format({ consumerGroup: group, topic, queueId, setZeroIfNotFound: false });
        const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.QUERY_CONSUMER_OFFSET, opaque: 0, extFields }), client.session);
        if (answer.code === ResponseCode.QUERY_NOT_FOUND) throw new ActivityRefusal(Code.OFFSET_NOT_FOUND, answer.remark ?? 'offset not found');
        if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(Code.INTERNAL_SERVER_ERROR, answer.remark ?? `query offset failed with Remoting code ${answer.code}`);
        return { status: ok(), offset: QueryConsumerOffsetResponseHeader.parse(answer.extFields).offset };
      },
      (status) => ({ status, offset: 0 }),
    );
  }

  queryOffset(ctx: CallContext, request: M.QueryOffsetRequest): Promise<M.QueryOffsetResponse> {
    return this.guard(
      'QueryOffset',
      async () => {
        const client = this.client(ctx);
        const topic = request.messageQueue?.topic?.name ?? '';
        const refusal = checkTopicName(topic);
        if (refusal !== undefined) throw new ActivityRefusal(refusal.code, refusal.message);
        const queueId = request.messageQueue?.id ?? -1;
        const addr = await this.brokerAddr(request.messageQueue?.broker?.name ?? '', topic);
        let command: RemotingCommand;
        switch (request.queryOffsetPolicy) {
          case QueryOffsetPolicy.BEGINNING:
            command = createRequest({ code: RequestCode.GET_MIN_OFFSET, opaque: 0, extFields: GetMinOffsetRequestHeader.format({ topic, queueId }) });
            break;
          case QueryOffsetPolicy.END:
            command = createRequest({ code: RequestCode.GET_MAX_OFFSET, opaque: 0, extFields: GetMaxOffsetRequestHeader.format({ topic, queueId }) });
            break;
          case QueryOffsetPolicy.TIMESTAMP: {
            if (request.timestamp === undefined || !isValidTimestamp(request.timestamp)) throw new ActivityRefusal(Code.BAD_REQUEST, 'timestamp is required');
            const timestamp = timestampToMs(request.timestamp);
            command = createRequest({ code: RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, opaque: 0, extFields: SearchOffsetRequestHeader.format({ topic, queueId, timestamp }) });
            break;
          }
          default:
            throw new ActivityRefusal(Code.BAD_REQUEST, `unknown query offset policy ${request.queryOffsetPolicy}`);
        }
        const answer = await this.invokeBroker(addr, command, client.session);
        if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(Code.INTERNAL_SERVER_ERROR, answer.remark ?? `query offset failed with Remoting code ${answer.code}`);
        return { status: ok(), offset: Number(answer.extFields['offset'] ?? 0) };
      },
      (status) => ({ status, offset: 0 }),
    );
  }

  private groupAndTopic(group: M.Resource | null, topic: M.Resource | null): { group: string; topic: string } {
    const groupName = group?.name ?? '';
    const topicName = topic?.name ?? '';
    const groupRefusal = checkConsumerGroupName(groupName);
    if (groupRefusal !== undefined) throw new ActivityRefusal(groupRefusal.code, groupRefusal.message);
    const topicRefusal = checkTopicName(topicName);
    if (topicRefusal !== undefined) throw new ActivityRefusal(topicRefusal.code, topicRefusal.message);
    return { group: groupName, topic: topicName };
  }

  // ------------------------------------------------------------------------------ transactions, recall

  /**
   * EndTransaction: END_TRANSACTION to the master of the broker set named in the transaction id. A commit or
   * rollback waits for the broker's answer; an UNSPECIFIED resolution is sent oneway as TransactionState
   * UNKNOWN (the broker keeps checking back), as RocketMQ's proxy sends it.
   */
  endTransaction(ctx: CallContext, request: M.EndTransactionRequest): Promise<M.EndTransactionResponse> {
    return this.guard(
      'EndTransaction',
      async () => {
        const client = this.client(ctx);
        const topic = request.topic?.name ?? '';
        const refusal = checkTopicName(topic);
        if (refusal !== undefined) throw new ActivityRefusal(refusal.code, refusal.message);
        const id = parseTransactionId(request.transactionId);
        if (id === undefined) throw new ActivityRefusal(Code.INVALID_TRANSACTION_ID, `transaction id ${JSON.stringify(request.transactionId)} is invalid`);
        if (request.messageId.length === 0) throw new ActivityRefusal(Code.ILLEGAL_MESSAGE_ID, 'message id cannot be empty');
        const state =
          request.resolution === TransactionResolution.COMMIT
            ? TransactionState.COMMIT
            : request.resolution === TransactionResolution.ROLLBACK
              ? TransactionState.ROLLBACK
              : TransactionState.UNKNOWN;
        const addr = await this.brokerAddr(id.brokerName, topic);
        const extFields = EndTransactionRequestHeader.format({
          topic,
          producerGroup: topic,
          tranStateTableOffset: id.tranStateTableOffset,
          commitLogOffset: id.commitLogOffset,
          commitOrRollback: state,
          fromTransactionCheck: request.source === TransactionSource.SOURCE_SERVER_CHECK,
          msgId: request.messageId,
          transactionId: id.brokerTransactionId,
        });
        const oneway = state === TransactionState.UNKNOWN;
        const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.END_TRANSACTION, opaque: 0, extFields, oneway }), client.session);
        if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(brokerRefusalCode(answer.code), answer.remark ?? `end transaction failed with Remoting code ${answer.code}`);
        return { status: ok() };
      },
      (status) => ({ status }),
    );
  }

  /** RecallMessage: RECALL_MESSAGE to the master of the broker set named in the recall handle. */
  recallMessage(ctx: CallContext, request: M.RecallMessageRequest): Promise<M.RecallMessageResponse> {
    return this.guard(
      'RecallMessage',
      async () => {
        const client = this.client(ctx);
        const topic = request.topic?.name ?? '';
        const refusal = checkTopicName(topic);
        if (refusal !== undefined) throw new ActivityRefusal(refusal.code, refusal.message);
        const handle = decodeRecallHandle(request.recallHandle);
        if (!isRecallHandle(handle)) throw new ActivityRefusal(Code.BAD_REQUEST, handle.error);
        const addr = await this.brokerAddr(handle.brokerName, topic);
        const extFields = { topic, recallHandle: request.recallHandle, producerGroup: topic };
        const answer = await this.invokeBroker(addr, createRequest({ code: RequestCode.RECALL_MESSAGE, opaque: 0, extFields }), client.session);
        if (answer.code !== ResponseCode.SUCCESS) throw new ActivityRefusal(brokerRefusalCode(answer.code), answer.remark ?? `recall failed with Remoting code ${answer.code}`);
        return { status: ok(), messageId: answer.extFields['msgId'] ?? handle.messageId };
      },
      (status) => ({ status, messageId: '' }),
    );
  }

  /**
   * A request a broker started: pushed to a client's channel (LOCAL, `connectionId` is the client's) or
   * sent on the Proxy's own connection (CLUSTER). CHECK_TRANSACTION_STATE becomes a
   * RecoverOrphanedTransactionCommand on the Telemetry stream of a producer of the message's topic,
   * preferably the client the broker picked; with no such stream open it is dropped and the broker asks
   * again next round. Other requests (NOTIFY_CONSUMER_IDS_CHANGED, ...) mean nothing to 5.x clients.
   * Returns whether a client was told.
   */
  serverRequest(request: RemotingCommand, connectionId: number | undefined): boolean {
    if (request.code !== RequestCode.CHECK_TRANSACTION_STATE || request.body === undefined) return false;
    let header: ReturnType<typeof CheckTransactionStateRequestHeader.parse>;
    let message: M.Message;
    let topic: string;
    try {
      header = CheckTransactionStateRequestHeader.parse(request.extFields);
      const record = decodeRecord(request.body, 0);
      topic = record.propertiesMap().get(MessageConst.PROPERTY_PRODUCER_GROUP) ?? record.topic;
      message = messageViewOf(request.body, 0) as M.Message;
    } catch (error) {
      this.options.log.warn({ err: error }, 'unreadable CHECK_TRANSACTION_STATE dropped');
      return false;
    }
    const brokerName = header.brokerName;
    if (brokerName === undefined || brokerName.length === 0) {
      this.options.log.warn({ topic }, 'CHECK_TRANSACTION_STATE without a broker name dropped');
      return false;
    }
    const transactionId = formatTransactionId({
      brokerName,
      commitLogOffset: header.commitLogOffset,
      tranStateTableOffset: header.tranStateTableOffset,
      brokerTransactionId: header.transactionId ?? header.msgId ?? message.systemProperties?.messageId ?? '',
    });
    const command: M.TelemetryCommand = { status: ok(), recoverOrphanedTransactionCommand: { message, transactionId } };
    const candidates = [...this.clients.values()].filter((client) => client.telemetry !== undefined && client.publishing.includes(topic));
    candidates.sort((a, b) => Number(b.session.connectionId === connectionId) - Number(a.session.connectionId === connectionId));
    for (const client of candidates) if (client.telemetry!(command)) return true;
    return false;
  }

  /** SyncLiteSubscription (lite topics) is not served by this Proxy. */
  notImplemented(what: string): { status: M.Status } {
    return { status: statusOf(Code.NOT_IMPLEMENTED, `${what} is not implemented by this proxy yet`) };
  }
}

/** A gRPC filter expression as the broker's SubscriptionData. */
function subscriptionDataOf(entry: M.SubscriptionEntry, nowMs: number): SubscriptionData {
  const topic = entry.topic?.name ?? '';
  const expression = entry.expression?.expression ?? '*';
  if (entry.expression?.type === FilterType.SQL) {
    return { classFilterMode: false, topic, subString: expression, tagsSet: [], codeSet: [], subVersion: nowMs, expressionType: 'SQL92' };
  }
  const trimmed = expression.trim();
  const all = trimmed.length === 0 || trimmed === '*';
  const tags = all ? [] : trimmed.split('||').map((tag) => tag.trim()).filter((tag) => tag.length > 0);
  return {
    classFilterMode: false,
    topic,
    subString: all ? '*' : trimmed,
    tagsSet: tags,
    codeSet: tags.map(javaStringHashCode),
    subVersion: nowMs,
    expressionType: 'TAG',
  };
}

/** The gRPC code of a send's Remoting answer (the Proxy's SendStatus and exception mapping). */
function sendCodeOf(remotingCode: number): number {
  switch (remotingCode) {
    case ResponseCode.SUCCESS:
      return Code.OK;
    case ResponseCode.FLUSH_DISK_TIMEOUT:
      return Code.MASTER_PERSISTENCE_TIMEOUT;
    case ResponseCode.FLUSH_SLAVE_TIMEOUT:
      return Code.SLAVE_PERSISTENCE_TIMEOUT;
    case ResponseCode.SLAVE_NOT_AVAILABLE:
      return Code.HA_NOT_AVAILABLE;
    case ResponseCode.TOPIC_NOT_EXIST:
      return Code.TOPIC_NOT_FOUND;
    case ResponseCode.SYSTEM_BUSY:
      return Code.TOO_MANY_REQUESTS;
    case ResponseCode.NO_PERMISSION:
      return Code.FORBIDDEN;
    case ResponseCode.MESSAGE_ILLEGAL:
      return Code.BAD_REQUEST;
    default:
      return Code.INTERNAL_SERVER_ERROR;
  }
}
