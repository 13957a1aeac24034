/**
 * The RocketMQ 5 Controller (ControllerManager + ControllerRequestProcessor + DefaultBrokerHeartbeatManager)
 * as one actor, for a single controller without DLedger: it assigns broker ids, tracks broker heartbeats,
 * keeps each broker set's master, SyncStateSet and epochs, and elects a new master when the master goes
 * silent. Acceptors send it the controller request codes (controllerRoutes) and closed connections.
 *
 * The state machine is controller-state.ts; this file decodes requests, calls it, persists the durable
 * state (controller-metadata.ts, through ctx.fs) and answers. Every change is persisted BEFORE its answer
 * and before any role-change push: while a write is in flight, new messages wait in a bounded stash
 * (pendingRequestsMax; beyond it requests are answered SYSTEM_BUSY), so nobody ever sees state that is not
 * on disk. A failed write is answered SYSTEM_ERROR and the durable state is put back as it was on disk.
 *
 * Every scanNotActiveBrokerInterval (5 s) a scan forgets brokers silent past their heartbeat timeout and
 * re-elects where the master is gone; each new master is pushed to the set's live brokers as
 * NOTIFY_BROKER_ROLE_CHANGED over the connection they heartbeat on (RocketMQ dials each broker instead), and
 * every master change is told to the `onMasterChanged` subscribers.
 *
 * Not served: UPDATE_CONTROLLER_CONFIG (answered REQUEST_CODE_NOT_SUPPORTED by the acceptor). Expired
 * brokers' connections are not closed (RocketMQ closes them), since a connection may be shared with the
 * NameServer when both run in one process.
 */
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, DeferredReply, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { createRequest, createResponse, isOneway, RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';
import { HeaderError, headerErrorResponse } from '../net/remoting/broker-headers.ts';
import {
  AlterSyncStateSetRequestHeader,
  AlterSyncStateSetResponseHeader,
  ApplyBrokerIdRequestHeader,
  ApplyBrokerIdResponseHeader,
  BrokerHeartbeatRequestHeader,
  CleanControllerBrokerDataRequestHeader,
  ControllerBodyError,
  ElectMasterRequestHeader,
  ElectMasterResponseHeader,
  formatBrokerReplicasInfo,
  formatControllerConfig,
  formatElectMasterResponseBody,
  formatSyncStateSet,
  GetMetaDataResponseHeader,
  GetNextBrokerIdRequestHeader,
  GetNextBrokerIdResponseHeader,
  GetReplicaInfoRequestHeader,
  GetReplicaInfoResponseHeader,
  NotifyBrokerRoleChangedRequestHeader,
  parseBrokerNameList,
  parseSyncStateSet,
  RegisterBrokerToControllerRequestHeader,
  RegisterBrokerToControllerResponseHeader,
} from '../net/remoting/controller-protocol.ts';
import {
  emptyControllerMetadata,
  loadControllerMetadata,
  persistControllerMetadata,
  type ControllerMetadataDocument,
  type ControllerMetadataLoad,
} from '../storage/controller-metadata.ts';
import { CONTROLLER_STATE_DEFAULTS, ControllerState, type ControllerSnapshot, type ElectResult, type MasterChange, type ScanResult } from './controller-state.ts';
import { channelKey, type ChannelClosedMessage, type RemotingChannel, type RemotingRequestMessage, type RemotingRoutes } from './remoting-routes.ts';

/** Told to each `onMasterChanged` subscriber after a master change is durable; null master: none now. */
export type ControllerMasterChangedMessage = {
  readonly type: 'masterChanged';
  readonly clusterName: string;
  readonly brokerName: string;
  readonly masterBrokerId: number | null;
  readonly masterAddress: string | null;
  readonly masterEpoch: number;
};

/** Start arguments: ControllerConfig's keys under their RocketMQ names (Ms suffix for durations), plus bounds. */
export type ControllerArgs = {
  /** Directory of controllerMetadata.json (controllerStorePath); empty keeps the state in memory only. */
  readonly controllerStorePath: string;
  /** enableElectUncleanMaster: elect from any live replica when no SyncStateSet member is alive. */
  readonly enableElectUncleanMaster: boolean;
  /** notifyBrokerRoleChanged: push NOTIFY_BROKER_ROLE_CHANGED to a set's live brokers after an election. */
  readonly notifyBrokerRoleChanged: boolean;
  /** scanNotActiveBrokerInterval: how often silent brokers are forgotten and masters re-elected. */
  readonly scanNotActiveBrokerIntervalMs: number;
  /** Most broker sets. */
  readonly brokerSetsMax: number;
  /** Most replicas per broker set. */
  readonly replicasPerSetMax: number;
  /** Most brokers in the heartbeat table. */
  readonly liveBrokersMax: number;
  /** Most messages waiting while a write is in flight. */
  readonly pendingRequestsMax: number;
  /** controllerDLegerGroup, reported by CONTROLLER_GET_METADATA_INFO. */
  readonly controllerDLegerGroup: string;
  /** controllerDLegerSelfId, reported by CONTROLLER_GET_METADATA_INFO. */
  readonly controllerDLegerSelfId: string;
  /** Actors told every master change (the NameServer, later). */
  readonly onMasterChanged: readonly ActorRef<ControllerMasterChangedMessage>[];
};

/** Defaults: RocketMQ's ControllerConfig values and our bounds; no persistence. */
export const CONTROLLER_DEFAULTS: ControllerArgs = {
  controllerStorePath: '',
  enableElectUncleanMaster: false,
  notifyBrokerRoleChanged: true,
  scanNotActiveBrokerIntervalMs: 5_000,
  brokerSetsMax: CONTROLLER_STATE_DEFAULTS.brokerSetsMax,
  replicasPerSetMax: CONTROLLER_STATE_DEFAULTS.replicasPerSetMax,
  liveBrokersMax: CONTROLLER_STATE_DEFAULTS.liveBrokersMax,
  pendingRequestsMax: 10_000,
  controllerDLegerGroup: 'group1',
  controllerDLegerSelfId: 'n0',
  onMasterChanged: [],
};

/** The scan timer's message. */
export type ScanNotActiveBrokerMessage = { readonly type: 'scanNotActiveBroker' };

/** Messages: requests and closed connections from acceptors, the timer, file outcomes, and a `state` ask. */
export type ControllerMessage =
  | RemotingRequestMessage
  | ChannelClosedMessage
  | ScanNotActiveBrokerMessage
  | { readonly type: 'metadataLoaded'; readonly result: PipeResult<ControllerMetadataLoad> }
  | { readonly type: 'metadataPersisted'; readonly error: string | undefined }
  | { readonly type: 'state' };

/** What a `state` ask answers. */
export type ControllerStateReply = ControllerSnapshot & { readonly phase: Phase; readonly pending: number };

type Phase = 'loading' | 'ready' | 'writing';

type Stashed = { readonly kind: 'message'; readonly message: RemotingRequestMessage | ChannelClosedMessage | ScanNotActiveBrokerMessage } | { readonly kind: 'stateAsk'; readonly reply: DeferredReply };

type Answer = { readonly channel: RemotingChannel; readonly request: RemotingCommand; readonly response: RemotingCommand };

type Inflight = { readonly answers: readonly Answer[]; readonly masterChanges: readonly MasterChange[]; readonly document: ControllerMetadataDocument };

type State = {
  readonly args: ControllerArgs;
  readonly machine: ControllerState;
  phase: Phase;
  /** The document last known to be on disk; restored after a failed write. */
  durable: ControllerMetadataDocument;
  readonly stash: Stashed[];
  inflight: Inflight | undefined;
  /** Connections brokers heartbeat on, by channelKey, to push role changes. */
  readonly channels: Map<string, RemotingChannel>;
  nextPushOpaque: number;
};

type Ctx = ActorContext<ControllerMessage>;

const SCAN_TIMER = 'scanNotActiveBroker';

/** The controller behavior; file faults come from the context's fs (ActorSystemOptions.fs in tests). */
export const controller: Behavior<State, ControllerMessage, ControllerArgs> = {
  init(args, ctx) {
    assert(Number.isSafeInteger(args.scanNotActiveBrokerIntervalMs) && args.scanNotActiveBrokerIntervalMs >= 1, 'scan interval is positive');
    assert(Number.isSafeInteger(args.pendingRequestsMax) && args.pendingRequestsMax >= 1, 'pendingRequestsMax is positive');
    const machine = new ControllerState({
      enableElectUncleanMaster: args.enableElectUncleanMaster,
      brokerSetsMax: args.brokerSetsMax,
      replicasPerSetMax: args.replicasPerSetMax,
      liveBrokersMax: args.liveBrokersMax,
    });
    const persistent = args.controllerStorePath !== '';
    if (persistent) {
      ctx.pipeToSelf(loadControllerMetadata(ctx.fs, args.controllerStorePath, args), (result) => ({ type: 'metadataLoaded', result }));
    }
    ctx.timers.startPeriodic(SCAN_TIMER, { type: 'scanNotActiveBroker' }, args.scanNotActiveBrokerIntervalMs);
    return {
      args,
      machine,
      phase: persistent ? 'loading' : 'ready',
      durable: emptyControllerMetadata(),
      stash: [],
      inflight: undefined,
      channels: new Map(),
      nextPushOpaque: 1,
    };
  },

  receive(state, message, ctx) {
    switch (message.type) {
      case 'remotingRequest':
      case 'channelClosed':
      case 'scanNotActiveBroker':
        if (state.phase === 'ready') process(state, message, ctx);
        else stash(state, { kind: 'message', message }, ctx);
        return state;
      case 'state':
        if (state.phase === 'ready') ctx.reply(stateReply(state));
        else stash(state, { kind: 'stateAsk', reply: ctx.deferReply()! }, ctx);
        return state;
      case 'metadataLoaded':
        loaded(state, message.result, ctx);
        drain(state, ctx);
        return state;
      case 'metadataPersisted':
        persisted(state, message.error, ctx);
        drain(state, ctx);
        return state;
      default:
        return assertNever(message, 'controller message');
    }
  },
};

function stateReply(state: State): ControllerStateReply {
  return { ...state.machine.snapshot(), phase: state.phase, pending: state.stash.length };
}

function stash(state: State, item: Stashed, ctx: Ctx): void {
  if (state.stash.length < state.args.pendingRequestsMax) {
    state.stash.push(item);
    return;
  }
  if (item.kind === 'stateAsk') {
    item.reply.resolve(stateReply(state));
    return;
  }
  const message = item.message;
  ctx.log.warn({ type: message.type, pending: state.stash.length }, 'controller busy persisting; message refused');
  if (message.type === 'remotingRequest') {
    respond(ctx, message.channel, message.request, createResponse(message.request, ResponseCode.SYSTEM_BUSY, '[PCBUSY_CLEAN_QUEUE]controller is busy persisting, try again'));
  }
}

/** Handles stashed messages until one starts a write (or none are left). */
function drain(state: State, ctx: Ctx): void {
  while (state.phase === 'ready' && state.stash.length > 0) {
    const item = state.stash.shift()!;
    if (item.kind === 'stateAsk') item.reply.resolve(stateReply(state));
    else process(state, item.message, ctx);
  }
}

function loaded(state: State, result: PipeResult<ControllerMetadataLoad>, ctx: Ctx): void {
  assert(state.phase === 'loading', 'metadata loaded once');
  state.phase = 'ready';
  const dir = state.args.controllerStorePath;
  if (!result.ok) {
    ctx.log.error({ dir, err: String(result.error) }, 'controller metadata could not be loaded; starting empty');
    return;
  }
  const outcome = result.value;
  switch (outcome.source) {
    case 'file':
      state.machine.restore(outcome.value);
      state.durable = outcome.value;
      ctx.log.info({ dir, brokerSets: outcome.value.brokerSets.length }, 'controller metadata loaded');
      return;
    case 'none':
      ctx.log.info({ dir }, 'no controller metadata yet; starting empty');
      return;
    case 'corrupt':
      ctx.log.error({ dir, problem: outcome.problem }, 'controller metadata is corrupt; starting empty');
      return;
    default:
      assertNever(outcome, 'metadata load outcome');
  }
}

function persisted(state: State, error: string | undefined, ctx: Ctx): void {
  const inflight = state.inflight;
  assert(state.phase === 'writing' && inflight !== undefined, 'a write was in flight');
  state.inflight = undefined;
  state.phase = 'ready';
  if (error === undefined) {
    state.durable = inflight.document;
    finish(state, inflight.answers, inflight.masterChanges, ctx);
    return;
  }
  // Nothing of this change reached the disk for sure: undo it in memory and tell the requesters.
  ctx.log.error({ dir: state.args.controllerStorePath, err: error }, 'controller metadata persist failed; change undone');
  state.machine.restore(state.durable);
  for (const answer of inflight.answers) {
    respond(ctx, answer.channel, answer.request, createResponse(answer.request, ResponseCode.SYSTEM_ERROR, `controller metadata persist failed: ${error}`));
  }
}

/** Runs one message with the state ready; persists its changes, then answers and announces them. */
function process(state: State, message: RemotingRequestMessage | ChannelClosedMessage | ScanNotActiveBrokerMessage, ctx: Ctx): void {
  const nowMs = ctx.clock.nowMs();
  const answers: Answer[] = [];
  switch (message.type) {
    case 'remotingRequest':
      answers.push({ channel: message.channel, request: message.request, response: handleRequest(state, message.request, message.channel, nowMs, ctx) });
      break;
    case 'channelClosed':
      logScan(state.machine.channelClosed(channelKey(message.channel), nowMs), 'broker connection closed', ctx);
      state.channels.delete(channelKey(message.channel));
      break;
    case 'scanNotActiveBroker':
      logScan(state.machine.scan(nowMs), 'broker heartbeat expired', ctx);
      pruneChannels(state);
      break;
    default:
      assertNever(message, 'controller work');
  }
  commit(state, answers, ctx);
}

function logScan(result: ScanResult, why: string, ctx: Ctx): void {
  for (const broker of result.expired) {
    ctx.log.warn({ cluster: broker.clusterName, brokerName: broker.brokerName, brokerId: broker.brokerId, brokerAddr: broker.brokerAddr }, why);
  }
  for (const election of result.elections) logElection(election, ctx);
}

function logElection(result: ElectResult, ctx: Ctx): void {
  const fields = { brokerName: result.brokerName, code: result.code, masterBrokerId: result.masterBrokerId, masterEpoch: result.masterEpoch };
  if (result.code === ResponseCode.SUCCESS) ctx.log.info(fields, 'new master elected');
  else ctx.log.warn({ ...fields, remark: result.remark }, 'no new master elected');
}

function commit(state: State, answers: readonly Answer[], ctx: Ctx): void {
  state.machine.checkInvariants();
  const effects = state.machine.takeEffects();
  if (!effects.durable) {
    assert(effects.masterChanges.length === 0, 'a master change is a durable change');
    finish(state, answers, [], ctx);
    return;
  }
  const document = state.machine.toDocument();
  if (state.args.controllerStorePath === '') {
    state.durable = document;
    finish(state, answers, effects.masterChanges, ctx);
    return;
  }
  state.phase = 'writing';
  state.inflight = { answers, masterChanges: effects.masterChanges, document };
  ctx.pipeToSelf(persistControllerMetadata(ctx.fs, state.args.controllerStorePath, document, state.args), (result) => ({
    type: 'metadataPersisted',
    error: result.ok ? undefined : String(result.error instanceof Error ? result.error.message : result.error),
  }));
}

function finish(state: State, answers: readonly Answer[], masterChanges: readonly MasterChange[], ctx: Ctx): void {
  for (const answer of answers) respond(ctx, answer.channel, answer.request, answer.response);
  for (const change of masterChanges) announce(state, change, ctx);
}

function respond(ctx: Ctx, channel: RemotingChannel, request: RemotingCommand, response: RemotingCommand): void {
  if (isOneway(request)) return;
  if (!ctx.tell(channel.acceptor, { type: 'respond', connectionId: channel.connectionId, response })) {
    ctx.log.warn({ code: request.code, acceptor: channel.acceptor.name }, 'acceptor did not take the answer');
  }
}

/** Tells subscribers, and (for a new master) pushes NOTIFY_BROKER_ROLE_CHANGED to the set's live brokers. */
function announce(state: State, change: MasterChange, ctx: Ctx): void {
  const message: ControllerMasterChangedMessage = {
    type: 'masterChanged',
    clusterName: change.clusterName,
    brokerName: change.brokerName,
    masterBrokerId: change.masterBrokerId,
    masterAddress: change.masterAddress,
    masterEpoch: change.masterEpoch,
  };
  for (const subscriber of state.args.onMasterChanged) {
    if (!ctx.tell(subscriber, message)) ctx.log.warn({ subscriber: subscriber.name }, 'master change subscriber did not take the news');
  }
  if (change.masterBrokerId === null || !state.args.notifyBrokerRoleChanged) return;
  const extFields = NotifyBrokerRoleChangedRequestHeader.format({
    masterAddress: change.masterAddress ?? '',
    masterEpoch: change.masterEpoch,
    syncStateSetEpoch: change.syncStateSetEpoch,
    masterBrokerId: change.masterBrokerId,
  });
  const body = formatSyncStateSet({ syncStateSet: change.syncStateSet, syncStateSetEpoch: change.syncStateSetEpoch });
  const nowMs = ctx.clock.nowMs();
  for (const brokerId of change.brokerAddrs.keys()) {
    if (!state.machine.isAlive(change.clusterName, change.brokerName, brokerId, nowMs)) continue;
    const channelId = state.machine.liveInfo(change.clusterName, change.brokerName, brokerId)?.channelId;
    const channel = channelId === undefined ? undefined : state.channels.get(channelId);
    if (channel === undefined) continue;
    const opaque = state.nextPushOpaque;
    state.nextPushOpaque = (opaque + 1) | 0;
    const request = createRequest({ code: RequestCode.NOTIFY_BROKER_ROLE_CHANGED, opaque, oneway: true, extFields, body });
    if (!ctx.tell(channel.acceptor, { type: 'push', connectionId: channel.connectionId, request })) {
      ctx.log.warn({ brokerName: change.brokerName, brokerId }, 'acceptor did not take a role-change push');
    }
  }
}

/** Keeps the channel map to the connections the live table still names. */
function pruneChannels(state: State): void {
  const inUse = state.machine.liveChannelIds();
  for (const id of [...state.channels.keys()]) if (!inUse.has(id)) state.channels.delete(id);
}

// ------------------------------------------------------------------------------------------------ requests

type Handler = (state: State, request: RemotingCommand, channel: RemotingChannel, nowMs: number, ctx: Ctx) => RemotingCommand;

function handleRequest(state: State, request: RemotingCommand, channel: RemotingChannel, nowMs: number, ctx: Ctx): RemotingCommand {
  const handler = handlers.get(request.code);
  if (handler === undefined) return createResponse(request, ResponseCode.REQUEST_CODE_NOT_SUPPORTED, ` request type ${request.code} not supported`);
  try {
    return handler(state, request, channel, nowMs, ctx);
  } catch (error) {
    if (error instanceof HeaderError) return headerErrorResponse(request, error);
    if (error instanceof ControllerBodyError) return createResponse(request, ResponseCode.SYSTEM_ERROR, `${error.name}: ${error.message}`);
    throw error;
  }
}

function reply(request: RemotingCommand, code: number, remark: string | undefined, extFields: Record<string, string> = {}, body?: Uint8Array): RemotingCommand {
  return createResponse(request, code, remark, body === undefined ? { extFields } : { extFields, body });
}

const heartbeat: Handler = (state, request, channel, nowMs) => {
  const header = BrokerHeartbeatRequestHeader.parse(request.extFields);
  const id = channelKey(channel);
  const outcome = state.machine.heartbeat(
    {
      clusterName: header.clusterName,
      brokerName: header.brokerName,
      brokerAddr: header.brokerAddr,
      brokerId: header.brokerId,
      epoch: header.epoch,
      maxOffset: header.maxOffset,
      confirmOffset: header.confirmOffset,
      heartbeatTimeoutMs: header.heartbeatTimeoutMills,
      electionPriority: header.electionPriority,
      asyncLearner: header.asyncLearner,
      channelId: id,
    },
    nowMs,
  );
  if (outcome.code === ResponseCode.SUCCESS) {
    state.channels.set(id, channel);
    if (state.channels.size > state.args.liveBrokersMax) pruneChannels(state);
  }
  return reply(request, outcome.code, outcome.remark);
};

const getNextBrokerId: Handler = (state, request) => {
  const header = GetNextBrokerIdRequestHeader.parse(request.extFields);
  const outcome = state.machine.getNextBrokerId(header.brokerName);
  const extFields = GetNextBrokerIdResponseHeader.format({
    ...(header.clusterName === undefined ? {} : { clusterName: header.clusterName }),
    brokerName: header.brokerName,
    nextBrokerId: outcome.nextBrokerId,
  });
  return reply(request, outcome.code, outcome.remark, extFields);
};

const applyBrokerId: Handler = (state, request) => {
  const header = ApplyBrokerIdRequestHeader.parse(request.extFields);
  const outcome = state.machine.applyBrokerId(header.clusterName, header.brokerName, header.appliedBrokerId, header.registerCheckCode);
  const extFields = ApplyBrokerIdResponseHeader.format({ clusterName: header.clusterName, brokerName: header.brokerName });
  return reply(request, outcome.code, outcome.remark, extFields);
};

const registerBroker: Handler = (state, request, _channel, nowMs) => {
  const header = RegisterBrokerToControllerRequestHeader.parse(request.extFields);
  const outcome = state.machine.registerBroker(header, nowMs);
  const master = outcome.master;
  const extFields = RegisterBrokerToControllerResponseHeader.format({
    clusterName: header.clusterName,
    brokerName: header.brokerName,
    ...(master === undefined ? {} : master),
  });
  if (outcome.code !== ResponseCode.SUCCESS) return reply(request, outcome.code, outcome.remark, extFields);
  const body = formatSyncStateSet({ syncStateSet: outcome.syncStateSet, syncStateSetEpoch: outcome.syncStateSetEpoch });
  return reply(request, outcome.code, outcome.remark, extFields, body);
};

const alterSyncStateSet: Handler = (state, request, _channel, nowMs) => {
  const header = AlterSyncStateSetRequestHeader.parse(request.extFields);
  const proposed = parseSyncStateSet(request.body);
  const outcome = state.machine.alterSyncStateSet(header, proposed, nowMs);
  if (outcome.code !== ResponseCode.SUCCESS) return reply(request, outcome.code, outcome.remark);
  const extFields = AlterSyncStateSetResponseHeader.format({ newSyncStateSetEpoch: outcome.newSyncStateSetEpoch! });
  const body = formatSyncStateSet({ syncStateSet: outcome.syncStateSet!, syncStateSetEpoch: outcome.newSyncStateSetEpoch! });
  return reply(request, outcome.code, outcome.remark, extFields, body);
};

const electMaster: Handler = (state, request, _channel, nowMs, ctx) => {
  const header = ElectMasterRequestHeader.parse(request.extFields);
  const outcome = state.machine.electMaster(header, nowMs);
  logElection(outcome, ctx);
  const extFields = ElectMasterResponseHeader.format({
    ...(outcome.masterBrokerId === undefined ? {} : { masterBrokerId: outcome.masterBrokerId }),
    ...(outcome.masterAddress === undefined ? {} : { masterAddress: outcome.masterAddress }),
    ...(outcome.masterEpoch === undefined ? {} : { masterEpoch: outcome.masterEpoch }),
    ...(outcome.syncStateSetEpoch === undefined ? {} : { syncStateSetEpoch: outcome.syncStateSetEpoch }),
  });
  if (outcome.syncStateSet === undefined || outcome.code === ResponseCode.CONTROLLER_MASTER_NOT_AVAILABLE) {
    return reply(request, outcome.code, outcome.remark, extFields);
  }
  const body = formatElectMasterResponseBody({
    syncStateSet: outcome.syncStateSet,
    ...(outcome.brokerAddrs === undefined
      ? {}
      : { brokerMemberGroup: { cluster: outcome.clusterName ?? '', brokerName: outcome.brokerName, brokerAddrs: outcome.brokerAddrs } }),
  });
  return reply(request, outcome.code, outcome.remark, extFields, body);
};

const getReplicaInfo: Handler = (state, request) => {
  const header = GetReplicaInfoRequestHeader.parse(request.extFields);
  const outcome = state.machine.getReplicaInfo(header.brokerName);
  if (outcome.code !== ResponseCode.SUCCESS) return reply(request, outcome.code, outcome.remark);
  const extFields = GetReplicaInfoResponseHeader.format({
    ...(outcome.masterBrokerId === undefined ? {} : { masterBrokerId: outcome.masterBrokerId, masterAddress: outcome.masterAddress! }),
    masterEpoch: outcome.masterEpoch!,
  });
  const body = formatSyncStateSet({ syncStateSet: outcome.syncStateSet!, syncStateSetEpoch: outcome.syncStateSetEpoch! });
  return reply(request, outcome.code, outcome.remark, extFields, body);
};

const getSyncStateData: Handler = (state, request, _channel, nowMs) => {
  if (request.body === undefined || request.body.length === 0) return reply(request, ResponseCode.SYSTEM_ERROR, 'not set any response code');
  const names = parseBrokerNameList(request.body);
  if (names.length === 0) return reply(request, ResponseCode.SYSTEM_ERROR, 'not set any response code');
  return reply(request, ResponseCode.SUCCESS, undefined, {}, formatBrokerReplicasInfo(state.machine.getSyncStateData(names, nowMs)));
};

const getMetadataInfo: Handler = (state, request, channel) => {
  const selfId = state.args.controllerDLegerSelfId;
  const extFields = GetMetaDataResponseHeader.format({
    group: state.args.controllerDLegerGroup,
    controllerLeaderId: selfId,
    controllerLeaderAddress: channel.localAddress,
    isLeader: true,
    peers: `${selfId}:${channel.localAddress};`,
  });
  return reply(request, ResponseCode.SUCCESS, undefined, extFields);
};

const getControllerConfig: Handler = (state, request) => {
  const args = state.args;
  const body = formatControllerConfig({
    controllerStorePath: args.controllerStorePath,
    enableElectUncleanMaster: args.enableElectUncleanMaster,
    notifyBrokerRoleChanged: args.notifyBrokerRoleChanged,
    scanNotActiveBrokerInterval: args.scanNotActiveBrokerIntervalMs,
    controllerDLegerGroup: args.controllerDLegerGroup,
    controllerDLegerSelfId: args.controllerDLegerSelfId,
  });
  return reply(request, ResponseCode.SUCCESS, undefined, {}, body);
};

const cleanBrokerData: Handler = (state, request, _channel, nowMs) => {
  const header = CleanControllerBrokerDataRequestHeader.parse(request.extFields);
  const outcome = state.machine.cleanBrokerData(header, nowMs);
  return reply(request, outcome.code, outcome.remark);
};

const handlers: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET, alterSyncStateSet],
  [RequestCode.CONTROLLER_ELECT_MASTER, electMaster],
  [RequestCode.CONTROLLER_REGISTER_BROKER, registerBroker],
  [RequestCode.CONTROLLER_GET_REPLICA_INFO, getReplicaInfo],
  [RequestCode.CONTROLLER_GET_METADATA_INFO, getMetadataInfo],
  [RequestCode.CONTROLLER_GET_SYNC_STATE_DATA, getSyncStateData],
  [RequestCode.BROKER_HEARTBEAT, heartbeat],
  [RequestCode.GET_CONTROLLER_CONFIG, getControllerConfig],
  [RequestCode.CLEAN_BROKER_DATA, cleanBrokerData],
  [RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, getNextBrokerId],
  [RequestCode.CONTROLLER_APPLY_BROKER_ID, applyBrokerId],
]);

/** The request codes the controller serves. */
export const CONTROLLER_REQUEST_CODES: readonly number[] = [...handlers.keys()];

// ------------------------------------------------------------------------------------------------ spawning

/** The controller's address: a request processor and a close listener. */
export type ControllerRef = ActorRef<ControllerMessage> & ActorRef<RemotingRequestMessage> & ActorRef<ChannelClosedMessage>;

/** Spawns the controller (pool `admin`, name `controller` unless overridden). */
export async function spawnController(system: ActorSpawner, args: Partial<ControllerArgs> = {}, options: SpawnPlacement = {}): Promise<ControllerRef> {
  const spec: ActorSpec<ControllerArgs> = {
    name: options.name ?? 'controller',
    behavior: options.behavior ?? { module: new URL('./controller.ts', import.meta.url).href, export: 'controller' },
    args: { ...CONTROLLER_DEFAULTS, ...args },
    pool: options.pool ?? 'admin',
  };
  return (await system.spawn<ControllerMessage, ControllerArgs>(spec)) as ControllerRef;
}

/**
 * Routes for the controller's own acceptor: its codes, no fallback, and the controller as close listener.
 * It serves BROKER_HEARTBEAT (904), which the NameServer serves too, so it needs its own port (RocketMQ's
 * controller listens on its own), not a merge into the NameServer's routes.
 */
export function controllerRoutes(ref: ControllerRef): RemotingRoutes {
  const byCode: Record<number, readonly ActorRef<RemotingRequestMessage>[]> = {};
  for (const code of CONTROLLER_REQUEST_CODES) byCode[code] = [ref];
  return { byCode, closeListeners: [ref] };
}
