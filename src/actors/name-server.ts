/**
 * The NameServer: RocketMQ's route registry (NamesrvController with its DefaultRequestProcessor and
 * ClientRequestProcessor) as one actor. Remoting acceptors send it every request on the NameServer port
 * (it is their `fallback` processor) and every closed connection (it is a `closeListener`); it answers
 * each request by telling the connection's acceptor a `respond`. Brokers register every 30 s; one not
 * heard from within its timeout (120 s unless it says otherwise) is removed by a scan that runs every
 * scanNotActiveBrokerIntervalMs (config key scanNotActiveBrokerInterval, 5 s), and its connection is
 * closed, as RocketMQ closes it.
 *
 * The route and KV tables are plain synchronous data (route-info.ts); this file decodes requests,
 * calls them and encodes answers. Malformed requests are answered (SYSTEM_ERROR with the reason, as
 * RocketMQ's server answers a processor's exception), never thrown. The route table lives in memory
 * only, as in RocketMQ: after a restart brokers fill it again on their next registration. The KV config
 * is written to kvConfigPath on every change (atomically, with a `.bak` of the previous version, as
 * MixAll.string2File keeps one) and read back on start.
 *
 * Deliberate differences: a KV change that cannot be persisted is undone and answered SYSTEM_ERROR
 * (RocketMQ logs the failure and answers SUCCESS); UNREGISTER_BROKER is applied at once (RocketMQ queues
 * it for a batch thread); UPDATE_NAMESRV_CONFIG and GET_NAMESRV_CONFIG are not served.
 */
import { z } from 'zod';
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, BehaviorSource } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import {
  createNotSupportedResponse,
  createResponse,
  isOneway,
  RequestCode,
  ResponseCode,
  type RemotingCommand,
} from '../net/remoting/remoting-command.ts';
import {
  bodyCrc32,
  decodeDataVersionBody,
  decodeHeader,
  decodeRegisterBrokerBody,
  decodeRegisterTopicBody,
  encodeHeader,
  encodeJsonBody,
  NamesrvHeaders,
  NamesrvNames,
  NamesrvRequestError,
  type TopicRouteData,
} from '../net/remoting/namesrv-protocol.ts';
import { JsonConfigFile, MetadataError, MetadataErrorCode } from '../storage/metadata-store.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { channelKey, type ChannelClosedMessage, type RemotingChannel, type RemotingRequestMessage } from './remoting-routes.ts';
import { KV_CONFIG_DEFAULTS, KvConfigTable, ROUTE_INFO_DEFAULTS, RouteInfo, type KvConfigDocument, type RemovedBroker } from './route-info.ts';

/** Start arguments: NamesrvConfig's switches under their RocketMQ names, plus our bounds. */
export type NameServerArgs = {
  /** Most broker addresses and most broker groups. */
  readonly brokersMax: number;
  /** Most topics in the route table. */
  readonly topicsMax: number;
  /** Most KV namespaces. */
  readonly kvNamespacesMax: number;
  /** Most KV entries over all namespaces. */
  readonly kvEntriesMax: number;
  /** How often expired brokers are looked for (scanNotActiveBrokerInterval). */
  readonly scanNotActiveBrokerIntervalMs: number;
  /** Put a topic's ORDER_TOPIC_CONFIG value in its route (orderMessageEnable). */
  readonly orderMessageEnable: boolean;
  /** Answer REGISTER_BROKER with the ORDER_TOPIC_CONFIG namespace (returnOrderTopicConfigToBroker). */
  readonly returnOrderTopicConfigToBroker: boolean;
  /** Serve GET_ALL_TOPIC_LIST_FROM_NAMESERVER (enableAllTopicList). */
  readonly enableAllTopicList: boolean;
  /** Serve GET_TOPICS_BY_CLUSTER and the unit topic lists (enableTopicList). */
  readonly enableTopicList: boolean;
  /** See RouteInfoOptions.supportActingMaster. */
  readonly supportActingMaster: boolean;
  /** See RouteInfoOptions.deleteTopicWithBrokerRegistration. */
  readonly deleteTopicWithBrokerRegistration: boolean;
  /** Where the KV config is persisted (kvConfigPath); empty keeps it in memory only. */
  readonly kvConfigPath: string;
  /** Largest inflated size of a compressed REGISTER_BROKER body. */
  readonly registerBodyInflatedBytesMax: number;
  /** Read only by behaviors built with a test file system. */
  readonly seam?: unknown;
};

/** Defaults: RocketMQ's NamesrvConfig values, our bounds, and no persistence. */
export const NAME_SERVER_DEFAULTS: NameServerArgs = {
  brokersMax: ROUTE_INFO_DEFAULTS.brokersMax,
  topicsMax: ROUTE_INFO_DEFAULTS.topicsMax,
  kvNamespacesMax: KV_CONFIG_DEFAULTS.namespacesMax,
  kvEntriesMax: KV_CONFIG_DEFAULTS.entriesMax,
  scanNotActiveBrokerIntervalMs: 5_000,
  orderMessageEnable: false,
  returnOrderTopicConfigToBroker: true,
  enableAllTopicList: true,
  enableTopicList: true,
  supportActingMaster: false,
  deleteTopicWithBrokerRegistration: false,
  kvConfigPath: '',
  registerBodyInflatedBytesMax: 64 * 1024 * 1024,
};

/** The periodic scan's own message. */
export type ScanNotActiveBrokersMessage = { readonly type: 'scanNotActiveBrokers' };

/** Messages: requests and closed connections from acceptors, the scan timer, and a stats ask. */
export type NameServerMessage = RemotingRequestMessage | ChannelClosedMessage | ScanNotActiveBrokersMessage | { readonly type: 'stats' };

/** What the NameServer answers to 'stats'. */
export type NameServerStats = {
  readonly brokers: number;
  readonly brokerGroups: number;
  readonly clusters: number;
  readonly topics: number;
  readonly kvEntries: number;
  readonly requests: number;
  readonly badRequests: number;
  readonly brokersExpired: number;
  readonly brokersDisconnected: number;
};

type State = {
  readonly args: NameServerArgs;
  readonly routes: RouteInfo;
  readonly kv: KvConfigTable;
  readonly kvFile: JsonConfigFile<KvConfigDocument> | undefined;
  /** Connections brokers registered over, by channelKey, to close them when their broker expires. */
  readonly channels: Map<string, RemotingChannel>;
  requests: number;
  badRequests: number;
  brokersExpired: number;
  brokersDisconnected: number;
};

function isRecordOf(value: unknown, valuesAre: (item: unknown) => boolean): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(valuesAre);
}

/**
 * kvConfig.json's shape (KVConfigSerializeWrapper). Checked by hand rather than with z.record, which
 * rebuilds objects and so drops a namespace or key named `__proto__`; this keeps the parsed object.
 */
const kvConfigSchema = z.custom<KvConfigDocument>(
  (value) =>
    isRecordOf(value, () => true) &&
    isRecordOf((value as { configTable?: unknown }).configTable, (kv) => isRecordOf(kv, (item) => typeof item === 'string')),
  { message: 'expected {"configTable": {namespace: {key: value}}}' },
);

const SCAN_TIMER = 'scanNotActiveBrokers';

type Handler = (state: State, request: RemotingCommand, channel: RemotingChannel, ctx: ActorContext<NameServerMessage>) => RemotingCommand;

/** Builds the NameServer behavior over the file system `storageFsOf` returns (tests inject faults here). */
export function nameServerBehavior(storageFsOf: (args: NameServerArgs) => StorageFs): Behavior<State, NameServerMessage, NameServerArgs> {
  return {
    init(args, ctx) {
      assert(Number.isSafeInteger(args.scanNotActiveBrokerIntervalMs) && args.scanNotActiveBrokerIntervalMs >= 1, 'scan interval is positive');
      assert(Number.isSafeInteger(args.registerBodyInflatedBytesMax) && args.registerBodyInflatedBytesMax >= 1, 'inflate bound is positive');
      const routes = new RouteInfo({
        brokersMax: args.brokersMax,
        topicsMax: args.topicsMax,
        supportActingMaster: args.supportActingMaster,
        deleteTopicWithBrokerRegistration: args.deleteTopicWithBrokerRegistration,
      });
      const kv = new KvConfigTable({ namespacesMax: args.kvNamespacesMax, entriesMax: args.kvEntriesMax });
      let kvFile: JsonConfigFile<KvConfigDocument> | undefined;
      if (args.kvConfigPath !== '') {
        kvFile = new JsonConfigFile({ fs: storageFsOf(args), path: args.kvConfigPath, schema: kvConfigSchema });
        const loaded = kvFile.load();
        if (loaded.value !== undefined && !kv.load(loaded.value)) {
          throw new MetadataError(
            MetadataErrorCode.tableFull,
            `${args.kvConfigPath} holds more KV config than kvNamespacesMax ${args.kvNamespacesMax} / kvEntriesMax ${args.kvEntriesMax} allow`,
            args.kvConfigPath,
          );
        }
        ctx.log.info({ path: args.kvConfigPath, source: loaded.source, entries: kv.size() }, 'KV config loaded');
      }
      ctx.timers.startPeriodic(SCAN_TIMER, { type: 'scanNotActiveBrokers' }, args.scanNotActiveBrokerIntervalMs);
      return { args, routes, kv, kvFile, channels: new Map(), requests: 0, badRequests: 0, brokersExpired: 0, brokersDisconnected: 0 };
    },

    receive(state, message, ctx) {
      switch (message.type) {
        case 'remotingRequest': {
          const response = handleRequest(state, message.request, message.channel, ctx);
          if (isOneway(message.request)) return state;
          const { acceptor, connectionId } = message.channel;
          if (!ctx.tell(acceptor, { type: 'respond', connectionId, response })) {
            ctx.log.warn({ code: message.request.code, acceptor: acceptor.name }, 'acceptor did not take the answer');
          }
          return state;
        }
        case 'channelClosed': {
          const removed = state.routes.channelDestroyed(channelKey(message.channel));
          for (const broker of removed) ctx.log.info(brokerFields(broker), 'broker connection closed; broker unregistered');
          state.brokersDisconnected += removed.length;
          state.channels.delete(channelKey(message.channel));
          return state;
        }
        case 'scanNotActiveBrokers':
          scan(state, ctx);
          return state;
        case 'stats':
          ctx.reply(statsOf(state));
          return state;
        default:
          return assertNever(message, 'name server message');
      }
    },
  };
}

/** The NameServer over the real file system. */
export const nameServer = nameServerBehavior(() => nodeStorageFs);

function brokerFields(broker: RemovedBroker): Record<string, unknown> {
  return { cluster: broker.clusterName, brokerAddr: broker.brokerAddr, brokerName: broker.brokerName, lastUpdateMs: broker.lastUpdateMs };
}

function statsOf(state: State): NameServerStats {
  return {
    ...state.routes.sizes(),
    kvEntries: state.kv.size(),
    requests: state.requests,
    badRequests: state.badRequests,
    brokersExpired: state.brokersExpired,
    brokersDisconnected: state.brokersDisconnected,
  };
}

function scan(state: State, ctx: ActorContext<NameServerMessage>): void {
  const removed = state.routes.scanNotActiveBrokers(ctx.clock.nowMs());
  state.brokersExpired += removed.length;
  for (const broker of removed) {
    ctx.log.warn({ ...brokerFields(broker), heartbeatTimeoutMs: broker.heartbeatTimeoutMs }, 'broker channel expired; broker unregistered');
    const channel = state.channels.get(broker.channelId);
    if (channel === undefined) continue;
    // RocketMQ closes an expired broker's channel; a broker still alive reconnects and registers again.
    ctx.tell(channel.acceptor, { type: 'closeConnection', connectionId: channel.connectionId });
    state.channels.delete(broker.channelId);
  }
}

/** Keeps the channel map within the live table: forgets connections no registered broker uses. */
function rememberChannel(state: State, channel: RemotingChannel): void {
  state.channels.set(channelKey(channel), channel);
  if (state.channels.size <= state.args.brokersMax) return;
  // Runs once per brokersMax new connections at most: afterwards the map is no larger than the live table.
  for (const id of [...state.channels.keys()]) if (!state.routes.hasChannel(id)) state.channels.delete(id);
}

function handleRequest(state: State, request: RemotingCommand, channel: RemotingChannel, ctx: ActorContext<NameServerMessage>): RemotingCommand {
  state.requests++;
  const handler = handlers.get(request.code);
  if (handler === undefined) return createNotSupportedResponse(request);
  try {
    return handler(state, request, channel, ctx);
  } catch (error) {
    if (!(error instanceof NamesrvRequestError)) throw error;
    state.badRequests++;
    ctx.log.warn({ code: request.code, remote: channel.remoteAddress, reason: error.message }, 'bad NameServer request');
    return createResponse(request, ResponseCode.SYSTEM_ERROR, error.message);
  }
}

function success(request: RemotingCommand, extFields?: Record<string, string>, body?: Uint8Array): RemotingCommand {
  const init: { extFields?: Record<string, string>; body?: Uint8Array } = {};
  if (extFields !== undefined) init.extFields = extFields;
  if (body !== undefined) init.body = body;
  return createResponse(request, ResponseCode.SUCCESS, undefined, init);
}

function disabled(request: RemotingCommand): RemotingCommand {
  return createResponse(request, ResponseCode.SYSTEM_ERROR, 'disable');
}

// ------------------------------------------------------------------------------------------------ brokers

const registerBroker: Handler = (state, request, channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.registerBroker, request.extFields);
  const expectedCrc = header.bodyCrc32 ?? 0;
  if (expectedCrc !== 0 && bodyCrc32(request.body) !== expectedCrc) {
    ctx.log.warn({ remote: channel.remoteAddress, brokerAddr: header.brokerAddr }, 'REGISTER_BROKER body crc32 does not match');
    return createResponse(request, ResponseCode.SYSTEM_ERROR, 'crc32 not match');
  }
  const nowMs = ctx.clock.nowMs();
  const body = decodeRegisterBrokerBody(request.body, {
    compressed: header.compressed ?? false,
    version: request.version,
    nowMs,
    inflatedBytesMax: state.args.registerBodyInflatedBytesMax,
  });
  const zone = Object.hasOwn(request.extFields, NamesrvNames.ZONE_NAME_FIELD) ? request.extFields[NamesrvNames.ZONE_NAME_FIELD] : undefined;
  const known = state.routes.brokerDataVersion(header.clusterName, header.brokerAddr) !== undefined;
  const outcome = state.routes.registerBroker(
    {
      clusterName: header.clusterName,
      brokerAddr: header.brokerAddr,
      brokerName: header.brokerName,
      brokerId: header.brokerId,
      haServerAddr: header.haServerAddr,
      zoneName: zone,
      heartbeatTimeoutMs: header.heartbeatTimeoutMillis,
      enableActingMaster: header.enableActingMaster,
      topicConfigs: body.topicConfigs,
      dataVersion: body.dataVersion,
      filterServerList: body.filterServerList,
      hasQueueMappings: body.hasQueueMappings,
      channelId: channelKey(channel),
    },
    nowMs,
  );
  const fields = { cluster: header.clusterName, brokerName: header.brokerName, brokerId: header.brokerId, brokerAddr: header.brokerAddr };
  switch (outcome.kind) {
    case 'full':
      ctx.log.warn({ ...fields, reason: outcome.reason }, 'broker registration refused');
      return createResponse(request, ResponseCode.SYSTEM_ERROR, `register broker refused: ${outcome.reason}`);
    case 'rejected':
      return createResponse(request, ResponseCode.SYSTEM_ERROR, 'register broker failed');
    case 'ignored':
      ctx.log.warn(fields, 'registration ignored: another address holds this brokerId with a newer stateVersion');
      return success(request, {}, orderTopicConfigBody(state));
    case 'registered': {
      rememberChannel(state, channel);
      if (!known) ctx.log.info({ ...fields, haServerAddr: header.haServerAddr, topics: body.topicConfigs.length }, 'new broker registered');
      const extFields = encodeHeader(NamesrvHeaders.registerBrokerResponse, { haServerAddr: outcome.haServerAddr, masterAddr: outcome.masterAddr });
      const response = success(request, extFields, orderTopicConfigBody(state));
      if (outcome.topicsRefused > 0) {
        ctx.log.warn({ ...fields, topicsRefused: outcome.topicsRefused, topicsMax: state.args.topicsMax }, 'topic table full; topics not registered');
        response.remark = `${outcome.topicsRefused} topics not registered: the topic table is full (topicsMax ${state.args.topicsMax})`;
      }
      return response;
    }
    default:
      return assertNever(outcome, 'register outcome');
  }
};

function orderTopicConfigBody(state: State): Uint8Array | undefined {
  if (!state.args.returnOrderTopicConfigToBroker) return undefined;
  const table = state.kv.list(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG);
  return table === undefined ? undefined : encodeJsonBody({ table });
}

const unregisterBroker: Handler = (state, request, _channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.unregisterBroker, request.extFields);
  state.routes.unregisterBroker(header);
  ctx.log.info({ cluster: header.clusterName, brokerName: header.brokerName, brokerAddr: header.brokerAddr }, 'broker unregistered');
  return success(request);
};

const brokerHeartbeat: Handler = (state, request, _channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.brokerHeartbeat, request.extFields);
  state.routes.touchBroker(header.clusterName, header.brokerAddr, ctx.clock.nowMs());
  return success(request);
};

const queryDataVersion: Handler = (state, request, _channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.queryDataVersion, request.extFields);
  const nowMs = ctx.clock.nowMs();
  const dataVersion = decodeDataVersionBody(request.body, nowMs);
  const changed = state.routes.isBrokerTopicConfigChanged(header.clusterName, header.brokerAddr, dataVersion);
  state.routes.touchBroker(header.clusterName, header.brokerAddr, nowMs);
  const stored = state.routes.brokerDataVersion(header.clusterName, header.brokerAddr);
  const extFields = encodeHeader(NamesrvHeaders.queryDataVersionResponse, { changed });
  return success(request, extFields, stored === undefined ? undefined : encodeJsonBody(stored));
};

const getBrokerMemberGroup: Handler = (state, request) => {
  const header = decodeHeader(NamesrvHeaders.getBrokerMemberGroup, request.extFields);
  const brokerMemberGroup = state.routes.brokerMemberGroup(header.clusterName, header.brokerName);
  return success(request, undefined, encodeJsonBody({ brokerMemberGroup }));
};

const getBrokerClusterInfo: Handler = (state, request) => success(request, undefined, encodeJsonBody(state.routes.clusterInfo()));

function writePermHandler(writable: boolean): Handler {
  return (state, request, channel, ctx) => {
    const header = decodeHeader(writable ? NamesrvHeaders.addWritePermOfBroker : NamesrvHeaders.wipeWritePermOfBroker, request.extFields);
    const count = state.routes.setWritePermOfBroker(header.brokerName, writable);
    ctx.log.info({ brokerName: header.brokerName, remote: channel.remoteAddress, topics: count }, writable ? 'write perm added' : 'write perm wiped');
    const extFields = writable
      ? encodeHeader(NamesrvHeaders.addWritePermOfBrokerResponse, { addTopicCount: count })
      : encodeHeader(NamesrvHeaders.wipeWritePermOfBrokerResponse, { wipeTopicCount: count });
    return success(request, extFields);
  };
}

// ------------------------------------------------------------------------------------------------- topics

const getRouteInfoByTopic: Handler = (state, request) => {
  const header = decodeHeader(NamesrvHeaders.getRouteInfo, request.extFields);
  const route = state.routes.topicRoute(header.topic);
  if (route === undefined) {
    return createResponse(request, ResponseCode.TOPIC_NOT_EXIST, `No topic route info in name server for the topic: ${header.topic}`);
  }
  let answer: TopicRouteData = route;
  if (state.args.orderMessageEnable) {
    const orderTopicConf = state.kv.get(NamesrvNames.NAMESPACE_ORDER_TOPIC_CONFIG, header.topic);
    if (orderTopicConf !== undefined) answer = { ...route, orderTopicConf };
  }
  return success(request, undefined, encodeJsonBody(answer));
};

const getAllTopicList: Handler = (state, request) => {
  if (!state.args.enableAllTopicList) return disabled(request);
  return success(request, undefined, encodeJsonBody(state.routes.allTopics()));
};

const getTopicsByCluster: Handler = (state, request) => {
  if (!state.args.enableTopicList) return disabled(request);
  const header = decodeHeader(NamesrvHeaders.getTopicsByCluster, request.extFields);
  return success(request, undefined, encodeJsonBody(state.routes.topicsByCluster(header.cluster)));
};

const getSystemTopicList: Handler = (state, request) => success(request, undefined, encodeJsonBody(state.routes.systemTopics()));

function sysFlagTopicsHandler(which: 'unit' | 'unitSub' | 'unitSubNotUnit'): Handler {
  return (state, request) => {
    if (!state.args.enableTopicList) return disabled(request);
    return success(request, undefined, encodeJsonBody(state.routes.topicsBySysFlag(which)));
  };
}

const deleteTopic: Handler = (state, request, channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.deleteTopicFromNamesrv, request.extFields);
  state.routes.deleteTopic(header.topic, header.clusterName);
  ctx.log.info({ topic: header.topic, cluster: header.clusterName, remote: channel.remoteAddress }, 'topic deleted');
  return success(request);
};

const registerTopic: Handler = (state, request) => {
  const header = decodeHeader(NamesrvHeaders.registerTopic, request.extFields);
  const queueDatas = decodeRegisterTopicBody(request.body);
  if (!state.routes.registerTopic(header.topic, queueDatas)) {
    return createResponse(request, ResponseCode.SYSTEM_ERROR, `topic table full (topicsMax ${state.args.topicsMax})`);
  }
  return success(request);
};

// ---------------------------------------------------------------------------------------------- KV config

/** Persists the KV table; on failure runs `undo` and returns the error's description. */
function persistKv(state: State, undo: () => void, ctx: ActorContext<NameServerMessage>): string | undefined {
  if (state.kvFile === undefined) return undefined;
  try {
    state.kvFile.persist(state.kv.toDocument());
    return undefined;
  } catch (error) {
    undo();
    ctx.log.error({ err: describeError(error), path: state.args.kvConfigPath }, 'KV config not persisted; change undone');
    return error instanceof Error ? error.message : String(error);
  }
}

function restore(state: State, namespace: string, key: string, previous: string | undefined): void {
  if (previous === undefined) state.kv.delete(namespace, key);
  // The entry existed a moment ago, so putting it back fits the bounds.
  else assert(state.kv.put(namespace, key, previous), 'restoring a KV entry fits');
}

const putKvConfig: Handler = (state, request, _channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.putKVConfig, request.extFields);
  const previous = state.kv.get(header.namespace, header.key);
  if (!state.kv.put(header.namespace, header.key, header.value)) {
    return createResponse(
      request,
      ResponseCode.SYSTEM_ERROR,
      `KV config full (kvNamespacesMax ${state.args.kvNamespacesMax}, kvEntriesMax ${state.args.kvEntriesMax})`,
    );
  }
  const failure = persistKv(state, () => restore(state, header.namespace, header.key, previous), ctx);
  if (failure !== undefined) return createResponse(request, ResponseCode.SYSTEM_ERROR, `KV config not persisted: ${failure}`);
  ctx.log.info({ namespace: header.namespace, key: header.key }, previous === undefined ? 'KV config created' : 'KV config updated');
  return success(request);
};

const getKvConfig: Handler = (state, request) => {
  const header = decodeHeader(NamesrvHeaders.getKVConfig, request.extFields);
  const value = state.kv.get(header.namespace, header.key);
  if (value === undefined) {
    return createResponse(request, ResponseCode.QUERY_NOT_FOUND, `No config item, Namespace: ${header.namespace} Key: ${header.key}`);
  }
  return success(request, encodeHeader(NamesrvHeaders.getKVConfigResponse, { value }));
};

const deleteKvConfig: Handler = (state, request, _channel, ctx) => {
  const header = decodeHeader(NamesrvHeaders.deleteKVConfig, request.extFields);
  const previous = state.kv.delete(header.namespace, header.key);
  if (previous === undefined) return success(request);
  const failure = persistKv(state, () => restore(state, header.namespace, header.key, previous), ctx);
  if (failure !== undefined) return createResponse(request, ResponseCode.SYSTEM_ERROR, `KV config not persisted: ${failure}`);
  ctx.log.info({ namespace: header.namespace, key: header.key }, 'KV config deleted');
  return success(request);
};

const getKvListByNamespace: Handler = (state, request) => {
  const header = decodeHeader(NamesrvHeaders.getKVListByNamespace, request.extFields);
  const table = state.kv.list(header.namespace);
  if (table === undefined) return createResponse(request, ResponseCode.QUERY_NOT_FOUND, `No config item, Namespace: ${header.namespace}`);
  return success(request, undefined, encodeJsonBody({ table }));
};

/** Every code the NameServer serves; any other is answered REQUEST_CODE_NOT_SUPPORTED. */
const handlers: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [RequestCode.PUT_KV_CONFIG, putKvConfig],
  [RequestCode.GET_KV_CONFIG, getKvConfig],
  [RequestCode.DELETE_KV_CONFIG, deleteKvConfig],
  [RequestCode.QUERY_DATA_VERSION, queryDataVersion],
  [RequestCode.REGISTER_BROKER, registerBroker],
  [RequestCode.UNREGISTER_BROKER, unregisterBroker],
  [RequestCode.BROKER_HEARTBEAT, brokerHeartbeat],
  [RequestCode.GET_BROKER_MEMBER_GROUP, getBrokerMemberGroup],
  [RequestCode.GET_BROKER_CLUSTER_INFO, getBrokerClusterInfo],
  [RequestCode.WIPE_WRITE_PERM_OF_BROKER, writePermHandler(false)],
  [RequestCode.ADD_WRITE_PERM_OF_BROKER, writePermHandler(true)],
  [RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER, getAllTopicList],
  [RequestCode.DELETE_TOPIC_IN_NAMESRV, deleteTopic],
  [RequestCode.REGISTER_TOPIC_IN_NAMESRV, registerTopic],
  [RequestCode.GET_KVLIST_BY_NAMESPACE, getKvListByNamespace],
  [RequestCode.GET_TOPICS_BY_CLUSTER, getTopicsByCluster],
  [RequestCode.GET_SYSTEM_TOPIC_LIST_FROM_NS, getSystemTopicList],
  [RequestCode.GET_UNIT_TOPIC_LIST, sysFlagTopicsHandler('unit')],
  [RequestCode.GET_HAS_UNIT_SUB_TOPIC_LIST, sysFlagTopicsHandler('unitSub')],
  [RequestCode.GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, sysFlagTopicsHandler('unitSubNotUnit')],
  [RequestCode.GET_ROUTEINFO_BY_TOPIC, getRouteInfoByTopic],
]);

// ------------------------------------------------------------------------------------------------ spawning

/** A NameServer's address, usable both as a request processor and as a close listener in RemotingRoutes. */
export type NameServerRef = ActorRef<NameServerMessage> & ActorRef<RemotingRequestMessage> & ActorRef<ChannelClosedMessage>;

/** How to spawn the NameServer: its pool (RocketMQ's NameServer executor is our `admin`), name and args. */
export type SpawnNameServerOptions = Partial<NameServerArgs> & {
  readonly pool?: string;
  readonly name?: string;
  readonly mailboxCapacity?: number;
  /** Another behavior export (tests with a faulty file system). */
  readonly behavior?: BehaviorSource;
};

/** Spawns the NameServer actor; wire it as `{ byCode: {}, fallback: [ref], closeListeners: [ref] }`. */
export async function spawnNameServer(system: ActorSpawner, options: SpawnNameServerOptions = {}): Promise<NameServerRef> {
  const { pool, name, mailboxCapacity, behavior, ...overrides } = options;
  const args: NameServerArgs = { ...NAME_SERVER_DEFAULTS, ...overrides };
  const spec: ActorSpec<NameServerArgs> = {
    name: name ?? 'namesrv',
    behavior: behavior ?? { module: new URL('./name-server.ts', import.meta.url).href, export: 'nameServer' },
    args,
    pool: pool ?? 'admin',
    ...(mailboxCapacity === undefined ? {} : { mailboxCapacity }),
  };
  return (await system.spawn<NameServerMessage, NameServerArgs>(spec)) as NameServerRef;
}
