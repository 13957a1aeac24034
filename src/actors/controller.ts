/**
 * The RocketMQ 5 Controller (ControllerManager + ControllerRequestProcessor + DefaultBrokerHeartbeatManager)
 * as one actor: it assigns broker ids, tracks broker heartbeats, keeps each broker set's master,
 * SyncStateSet and epochs, and elects a new master when the master goes silent. Acceptors send it the
 * controller request codes (controllerRoutes) and closed connections.
 *
 * The state machine is controller-state.ts; this file decodes requests, calls it, persists the durable
 * state and answers. Every change is persisted BEFORE its answer and before any role-change push: while a
 * write is in flight, new messages wait in a bounded stash (pendingRequestsMax; beyond it requests are
 * answered SYSTEM_BUSY), so nobody ever sees state that is not stored.
 *
 * Two ways to store, chosen by controllerEtcdEndpoints:
 * - alone (no endpoints): controller-metadata.ts through ctx.fs. A failed write is answered SYSTEM_ERROR
 *   and the durable state is put back as it was on disk.
 * - a group agreeing through etcd (controller-etcd-store.ts has the contract, controller-etcd.ts the
 *   etcd side): every controller campaigns for one leader key with a lease, every leaseTick (a third of
 *   the TTL). Only the leader serves. A follower answers every request CONTROLLER_NOT_LEADER except
 *   CONTROLLER_GET_METADATA_INFO (which names the leader, so brokers find it) and GET_CONTROLLER_CONFIG
 *   (its own settings). On winning, the leader starts from the document read in the same transaction
 *   as its claim, and counts every replica alive for controllerHeartBeatTimeoutMills (it has no heartbeat
 *   history; without this it would replace a master that still holds its lease). It writes with a
 *   transaction fenced by its term. It stops leading, at once, when its lease may have ended (no renewal
 *   sent within TTL minus a margin has succeeded), when etcd says the lease ended, or when a write fails
 *   or is refused: in-flight and stashed requests are answered CONTROLLER_NOT_LEADER, the lease is
 *   revoked, and it campaigns again like any follower.
 *
 * Every scanNotActiveBrokerInterval (5 s) a scan (the leader's, in a group) forgets brokers silent past
 * their heartbeat timeout and re-elects where the master is gone; each new master is pushed to the set's
 * live brokers as NOTIFY_BROKER_ROLE_CHANGED over the connection they heartbeat on (RocketMQ dials each
 * broker instead), and every master change is told to the `onMasterChanged` subscribers.
 *
 * Not served: UPDATE_CONTROLLER_CONFIG (answered REQUEST_CODE_NOT_SUPPORTED by the acceptor). Expired
 * brokers' connections are not closed (RocketMQ closes them), since a connection may be shared with the
 * NameServer when both run in one process.
 */
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, DeferredReply, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
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
  formatMetadataPeers,
  formatSyncStateSet,
  GetMetaDataResponseHeader,
  GetNextBrokerIdRequestHeader,
  GetNextBrokerIdResponseHeader,
  GetReplicaInfoRequestHeader,
  GetReplicaInfoResponseHeader,
  NotifyBrokerRoleChangedRequestHeader,
  parseBrokerNameList,
  parseControllerPeers,
  parseSyncStateSet,
  RegisterBrokerToControllerRequestHeader,
  RegisterBrokerToControllerResponseHeader,
  type ControllerPeer,
} from '../net/remoting/controller-protocol.ts';
import {
  emptyControllerMetadata,
  loadControllerMetadata,
  persistControllerMetadata,
  validateControllerMetadata,
  type ControllerMetadataDocument,
  type ControllerMetadataLoad,
} from '../storage/controller-metadata.ts';
import {
  ControllerStoreError,
  ControllerStoreErrorCode,
  parseEtcdEndpoints,
  type CampaignOutcome,
  type ControllerLeaderStore,
  type LeaseView,
} from '../storage/controller-etcd-store.ts';
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
  /** Directory of controllerMetadata.json (controllerStorePath); empty keeps the state in memory only. Unused with etcd. */
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
  /** controllerDLegerSelfId, reported by CONTROLLER_GET_METADATA_INFO; in a group, this controller's entry of the peers. */
  readonly controllerDLegerSelfId: string;
  /** controllerDLegerPeers, `id-host:port;...`: every controller of the group and where brokers reach it. */
  readonly controllerDLegerPeers: string;
  /** controllerEtcdEndpoints: etcd client URLs (comma-separated); empty runs this controller alone. */
  readonly controllerEtcdEndpoints: string;
  /** controllerEtcdKeyPrefix: where the group's keys live in etcd. */
  readonly controllerEtcdKeyPrefix: string;
  /** controllerEtcdLeaseTtlSeconds: TTL of the leadership lease. */
  readonly controllerEtcdLeaseTtlSeconds: number;
  /** controllerHeartBeatTimeoutMills: how long a controller taking over counts every replica alive. */
  readonly controllerHeartBeatTimeoutMs: number;
  /** Actors told every master change (the NameServer, later). */
  readonly onMasterChanged: readonly ActorRef<ControllerMasterChangedMessage>[];
};

/** Defaults: RocketMQ's ControllerConfig values and our bounds; no persistence, no group. */
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
  controllerDLegerPeers: '',
  controllerEtcdEndpoints: '',
  controllerEtcdKeyPrefix: '/rocketmq-ts/controller',
  controllerEtcdLeaseTtlSeconds: 3,
  controllerHeartBeatTimeoutMs: 10_000,
  onMasterChanged: [],
};

/** The scan timer's message. */
export type ScanNotActiveBrokerMessage = { readonly type: 'scanNotActiveBroker' };

/** A failed write: the store's stable code when it gave one, and what happened. */
export type PersistFailure = { readonly code: string | undefined; readonly message: string };

/** Messages: requests and closed connections from acceptors, timers, store outcomes, and a `state` ask. */
export type ControllerMessage =
  | RemotingRequestMessage
  | ChannelClosedMessage
  | ScanNotActiveBrokerMessage
  | { readonly type: 'metadataLoaded'; readonly result: PipeResult<ControllerMetadataLoad> }
  | { readonly type: 'metadataPersisted'; readonly writeId: number; readonly error: PersistFailure | undefined }
  | { readonly type: 'storeOpened'; readonly result: PipeResult<ControllerLeaderStore> }
  | { readonly type: 'leaseTick' }
  | { readonly type: 'campaigned'; readonly sentAtMs: number; readonly result: PipeResult<CampaignOutcome> }
  | { readonly type: 'keptAlive'; readonly sentAtMs: number; readonly result: PipeResult<LeaseView | undefined> }
  | { readonly type: 'resigned'; readonly result: PipeResult<void> }
  | { readonly type: 'state' };

/** Whether this controller runs alone, or leads or follows its group. */
export type ControllerRole = 'single' | 'leader' | 'follower';

/** What a `state` ask answers. */
export type ControllerStateReply = ControllerSnapshot & {
  readonly phase: Phase;
  readonly pending: number;
  readonly role: ControllerRole;
  /** The group's leader as this controller knows it (itself when leading); absent alone or when unknown. */
  readonly leaderId?: string;
  /** The leadership term while leading. */
  readonly term?: string;
};

/** Opens the group's store; the default opens etcd, tests inject a fake. */
export type ControllerStoreFactory = (args: ControllerArgs, self: ControllerPeer, ctx: ActorContext<ControllerMessage>) => Promise<ControllerLeaderStore>;

type Phase = 'loading' | 'ready' | 'writing';

type Stashed = { readonly kind: 'message'; readonly message: RemotingRequestMessage | ChannelClosedMessage | ScanNotActiveBrokerMessage } | { readonly kind: 'stateAsk'; readonly reply: DeferredReply };

type Answer = { readonly channel: RemotingChannel; readonly request: RemotingCommand; readonly response: RemotingCommand };

type Inflight = { readonly answers: readonly Answer[]; readonly masterChanges: readonly MasterChange[]; readonly document: ControllerMetadataDocument };

/** This controller's place in its etcd group. */
type Group = {
  readonly self: ControllerPeer;
  readonly peers: readonly ControllerPeer[];
  readonly leaseTtlMs: number;
  store: ControllerLeaderStore | undefined;
  role: 'leader' | 'follower';
  /** The leadership term while leading. */
  term: string | undefined;
  /** Who leads, as the last campaign saw it (self while leading). */
  leader: ControllerPeer | undefined;
  /** The lease the validity below refers to. */
  leaseId: string | undefined;
  /** Monotonic ms until which the lease surely lives (send time of the newest renewal + TTL - margin). */
  leaseValidUntilMs: number;
  campaignInFlight: boolean;
  keepAliveInFlight: boolean;
};

type State = {
  readonly args: ControllerArgs;
  readonly machine: ControllerState;
  phase: Phase;
  /** The document last known to be stored; restored after a failed write. */
  durable: ControllerMetadataDocument;
  readonly stash: Stashed[];
  inflight: Inflight | undefined;
  /** Numbers writes, so that the outcome of a write dropped by a lost leadership is ignored. */
  writeId: number;
  /** Connections brokers heartbeat on, by channelKey, to push role changes. */
  readonly channels: Map<string, RemotingChannel>;
  nextPushOpaque: number;
  /** Set when the controller is one of an etcd group. */
  readonly group: Group | undefined;
};

type Ctx = ActorContext<ControllerMessage>;

const SCAN_TIMER = 'scanNotActiveBroker';
const LEASE_TIMER = 'leaseTick';
/** RocketMQ's remark for CONTROLLER_NOT_LEADER. */
const NOT_LEADER_REMARK = 'The controller is not in leader state';
/** Shortest lease tick, so a tiny TTL does not spin. */
const LEASE_TICK_MS_MIN = 100;
/** The margin kept off a lease's end, for clock-rate drift between us and etcd: TTL / this, at least LEASE_MARGIN_MS_MIN. */
const LEASE_MARGIN_DIVISOR = 5;
const LEASE_MARGIN_MS_MIN = 100;

/** How often a group member renews its lease and campaigns: a third of the TTL (etcd's own keep-alive cadence). */
export function leaseTickMs(args: Pick<ControllerArgs, 'controllerEtcdLeaseTtlSeconds'>): number {
  return Math.max(LEASE_TICK_MS_MIN, Math.floor((args.controllerEtcdLeaseTtlSeconds * 1000) / 3));
}

/** Builds the controller behavior over a store factory (used only when controllerEtcdEndpoints is set). */
export function controllerBehavior(openStore: ControllerStoreFactory): Behavior<State, ControllerMessage, ControllerArgs> {
  return {
    init(args, ctx) {
      assert(Number.isSafeInteger(args.scanNotActiveBrokerIntervalMs) && args.scanNotActiveBrokerIntervalMs >= 1, 'scan interval is positive');
      assert(Number.isSafeInteger(args.pendingRequestsMax) && args.pendingRequestsMax >= 1, 'pendingRequestsMax is positive');
      const machine = new ControllerState({
        enableElectUncleanMaster: args.enableElectUncleanMaster,
        brokerSetsMax: args.brokerSetsMax,
        replicasPerSetMax: args.replicasPerSetMax,
        liveBrokersMax: args.liveBrokersMax,
      });
      const group = groupOf(args);
      const persistent = group === undefined && args.controllerStorePath !== '';
      if (persistent) {
        ctx.pipeToSelf(loadControllerMetadata(ctx.fs, args.controllerStorePath, args), (result) => ({ type: 'metadataLoaded', result }));
      }
      if (group !== undefined) ctx.pipeToSelf(openStore(args, group.self, ctx), (result) => ({ type: 'storeOpened', result }));
      ctx.timers.startPeriodic(SCAN_TIMER, { type: 'scanNotActiveBroker' }, args.scanNotActiveBrokerIntervalMs);
      return {
        args,
        machine,
        phase: persistent ? 'loading' : 'ready',
        durable: emptyControllerMetadata(),
        stash: [],
        inflight: undefined,
        writeId: 0,
        channels: new Map(),
        nextPushOpaque: 1,
        group,
      };
    },

    receive(state, message, ctx) {
      if (state.group !== undefined) checkLease(state, state.group, ctx);
      switch (message.type) {
        case 'remotingRequest':
        case 'channelClosed':
        case 'scanNotActiveBroker':
          if (following(state)) follow(state, message, ctx);
          else if (state.phase === 'ready') process(state, message, ctx);
          else stash(state, { kind: 'message', message }, ctx);
          return state;
        case 'state':
          if (state.phase === 'ready') ctx.reply(stateReply(state));
          else stash(state, { kind: 'stateAsk', reply: ctx.deferReply()! }, ctx);
          return state;
        case 'metadataLoaded':
          loaded(state, message.result, ctx);
          break;
        case 'metadataPersisted':
          persisted(state, message.writeId, message.error, ctx);
          break;
        case 'storeOpened':
          storeOpened(state, groupIn(state), message.result, ctx);
          return state;
        case 'leaseTick':
          leaseTick(groupIn(state), ctx);
          return state;
        case 'campaigned':
          campaigned(state, groupIn(state), message.sentAtMs, message.result, ctx);
          return state;
        case 'keptAlive':
          keptAlive(state, groupIn(state), message.sentAtMs, message.result, ctx);
          return state;
        case 'resigned':
          if (!message.result.ok) ctx.log.warn({ err: describeError(message.result.error) }, 'could not revoke the etcd lease; it ends with its TTL');
          return state;
        default:
          return assertNever(message, 'controller message');
      }
      drain(state, ctx);
      return state;
    },

    onStop(state, ctx) {
      const store = state.group?.store;
      // Revoking the lease lets another controller take over now rather than after the TTL.
      if (store !== undefined) store.close().catch((error: unknown) => ctx.log.warn({ err: describeError(error) }, 'closing the etcd store failed'));
    },
  };
}

/** Opens the etcd store; etcd3 is loaded only by controllers that use it. */
const openEtcdStore: ControllerStoreFactory = async (args, self, ctx) => {
  const { EtcdControllerStore } = await import('../storage/controller-etcd.ts');
  const endpoints = parseEtcdEndpoints(args.controllerEtcdEndpoints);
  assert(endpoints !== undefined && endpoints.length > 0, 'controllerEtcdEndpoints lists etcd endpoints');
  return new EtcdControllerStore({
    endpoints,
    keyPrefix: args.controllerEtcdKeyPrefix,
    leaseTtlSeconds: args.controllerEtcdLeaseTtlSeconds,
    self,
    bounds: args,
    requestTimeoutMs: leaseTickMs(args),
    clock: ctx.clock,
  });
};

/** The controller behavior; file faults come from the context's fs (ActorSystemOptions.fs in tests). */
export const controller = controllerBehavior(openEtcdStore);

function groupOf(args: ControllerArgs): Group | undefined {
  if (args.controllerEtcdEndpoints.trim() === '') return undefined;
  assert(Number.isSafeInteger(args.controllerEtcdLeaseTtlSeconds) && args.controllerEtcdLeaseTtlSeconds >= 1, 'the lease TTL is a positive number of seconds');
  assert(Number.isSafeInteger(args.controllerHeartBeatTimeoutMs) && args.controllerHeartBeatTimeoutMs >= 1, 'the heartbeat timeout is positive');
  const peers = parseControllerPeers(args.controllerDLegerPeers);
  const self = peers?.find((peer) => peer.id === args.controllerDLegerSelfId);
  assert(peers !== undefined && self !== undefined, 'controllerDLegerPeers names controllerDLegerSelfId');
  return {
    self,
    peers,
    leaseTtlMs: args.controllerEtcdLeaseTtlSeconds * 1000,
    store: undefined,
    role: 'follower',
    term: undefined,
    leader: undefined,
    leaseId: undefined,
    leaseValidUntilMs: Number.NEGATIVE_INFINITY,
    campaignInFlight: false,
    keepAliveInFlight: false,
  };
}

function groupIn(state: State): Group {
  assert(state.group !== undefined, 'store messages come only to a controller of a group');
  return state.group;
}

function following(state: State): boolean {
  return state.group !== undefined && state.group.role === 'follower';
}

function monotonicMs(ctx: Ctx): number {
  return Number(ctx.clock.monotonicNs() / 1_000_000n);
}

function stateReply(state: State): ControllerStateReply {
  const group = state.group;
  const base = { ...state.machine.snapshot(), phase: state.phase, pending: state.stash.length };
  if (group === undefined) return { ...base, role: 'single' };
  return {
    ...base,
    role: group.role,
    ...(group.leader === undefined ? {} : { leaderId: group.leader.id }),
    ...(group.term === undefined ? {} : { term: group.term }),
  };
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

/** Handles stashed messages until one starts a write (or none are left); a follower answers them all. */
function drain(state: State, ctx: Ctx): void {
  while (state.phase === 'ready' && state.stash.length > 0) {
    const item = state.stash.shift()!;
    if (item.kind === 'stateAsk') item.reply.resolve(stateReply(state));
    else if (following(state)) follow(state, item.message, ctx);
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
  adopt(state, result.value, { dir }, ctx);
}

/** Takes a loaded document as the durable state (empty when there is none or it is corrupt). */
function adopt(state: State, outcome: ControllerMetadataLoad, where: Record<string, string>, ctx: Ctx): void {
  switch (outcome.source) {
    case 'file':
    case 'etcd':
      state.machine.restore(outcome.value);
      state.durable = outcome.value;
      ctx.log.info({ ...where, brokerSets: outcome.value.brokerSets.length }, 'controller metadata loaded');
      return;
    case 'none':
      state.machine.restore(emptyControllerMetadata());
      state.durable = emptyControllerMetadata();
      ctx.log.info(where, 'no controller metadata yet; starting empty');
      return;
    case 'corrupt':
      state.machine.restore(emptyControllerMetadata());
      state.durable = emptyControllerMetadata();
      ctx.log.error({ ...where, problem: outcome.problem }, 'controller metadata is corrupt; starting empty');
      return;
    default:
      assertNever(outcome, 'metadata load outcome');
  }
}

function persisted(state: State, writeId: number, error: PersistFailure | undefined, ctx: Ctx): void {
  const inflight = state.inflight;
  // A write whose requests were already answered when leadership was lost: its outcome changes nothing.
  if (inflight === undefined || writeId !== state.writeId) return;
  assert(state.phase === 'writing', 'a write was in flight');
  if (error !== undefined && state.group !== undefined && error.code !== ControllerStoreErrorCode.TOO_LARGE) {
    // Refused (another term leads) or unknown (etcd unreachable): only a leader that reads etcd afresh
    // knows what is stored now, so this one stops leading.
    depose(state, state.group, `metadata write failed: ${error.message}`, ctx);
    return;
  }
  state.inflight = undefined;
  state.phase = 'ready';
  if (error === undefined) {
    state.durable = inflight.document;
    finish(state, inflight.answers, inflight.masterChanges, ctx);
    return;
  }
  // Nothing of this change was stored for sure: undo it in memory and tell the requesters.
  ctx.log.error({ dir: state.args.controllerStorePath, err: error.message }, 'controller metadata persist failed; change undone');
  state.machine.restore(state.durable);
  for (const answer of inflight.answers) {
    respond(ctx, answer.channel, answer.request, createResponse(answer.request, ResponseCode.SYSTEM_ERROR, `controller metadata persist failed: ${error.message}`));
  }
}

// ------------------------------------------------------------------------------------------------ group

function storeOpened(state: State, group: Group, result: PipeResult<ControllerLeaderStore>, ctx: Ctx): void {
  // No store means a broken installation or a bad argument: crash, and let supervision report it.
  assert(result.ok, () => `the controller store could not be opened: ${result.ok ? '' : describeError(result.error)}`);
  group.store = result.value;
  ctx.log.info({ self: group.self, leaseTtlMs: group.leaseTtlMs }, 'controller campaigning through etcd');
  ctx.timers.startPeriodic(LEASE_TIMER, { type: 'leaseTick' }, leaseTickMs(state.args));
  leaseTick(group, ctx);
}

/** Renews the lease (leader and followers alike), and campaigns while following. */
function leaseTick(group: Group, ctx: Ctx): void {
  const store = group.store;
  if (store === undefined) return;
  if (!group.keepAliveInFlight && group.leaseId !== undefined) {
    group.keepAliveInFlight = true;
    const sentAtMs = monotonicMs(ctx);
    ctx.pipeToSelf(store.keepAlive(), (result) => ({ type: 'keptAlive', sentAtMs, result }));
  }
  if (group.role === 'follower' && !group.campaignInFlight) {
    group.campaignInFlight = true;
    const sentAtMs = monotonicMs(ctx);
    ctx.pipeToSelf(store.campaign(), (result) => ({ type: 'campaigned', sentAtMs, result }));
  }
}

function leaseMarginMs(group: Group): number {
  return Math.max(LEASE_MARGIN_MS_MIN, Math.floor(group.leaseTtlMs / LEASE_MARGIN_DIVISOR));
}

/** Moves the lease's validity on from a grant or renewal sent at sentAtMs; a TTL of 0 means it ended. */
function noteLease(group: Group, lease: LeaseView, sentAtMs: number): void {
  if (lease.leaseId !== group.leaseId) {
    group.leaseId = lease.leaseId;
    group.leaseValidUntilMs = Number.NEGATIVE_INFINITY;
  }
  if (lease.renewedTtlMs === undefined) return;
  if (lease.renewedTtlMs <= 0) {
    group.leaseId = undefined;
    group.leaseValidUntilMs = Number.NEGATIVE_INFINITY;
    return;
  }
  group.leaseValidUntilMs = Math.max(group.leaseValidUntilMs, sentAtMs + lease.renewedTtlMs - leaseMarginMs(group));
}

function campaigned(state: State, group: Group, sentAtMs: number, result: PipeResult<CampaignOutcome>, ctx: Ctx): void {
  group.campaignInFlight = false;
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'etcd campaign failed; trying again next tick');
    return;
  }
  const outcome = result.value;
  assert(group.role === 'follower', 'only a follower campaigns');
  noteLease(group, outcome.lease, sentAtMs);
  if (outcome.kind === 'follower') {
    if (outcome.leader?.id !== group.leader?.id) ctx.log.info({ leader: outcome.leader ?? null }, 'controller group leader seen');
    group.leader = outcome.leader;
    return;
  }
  if (monotonicMs(ctx) >= group.leaseValidUntilMs) {
    ctx.log.warn({ term: outcome.term }, 'won the campaign with a lease too old to trust; giving it up');
    resign(group, ctx);
    return;
  }
  lead(state, group, outcome.term, outcome.load, ctx);
}

/** Starts leading: the stored document, every replica alive for one heartbeat timeout, no channels yet. */
function lead(state: State, group: Group, term: string, load: ControllerMetadataLoad, ctx: Ctx): void {
  adopt(state, load, { term }, ctx);
  const assumedAlive = state.machine.assumeAlive(ctx.clock.nowMs(), state.args.controllerHeartBeatTimeoutMs);
  state.channels.clear();
  group.role = 'leader';
  group.term = term;
  group.leader = group.self;
  ctx.log.info({ term, self: group.self, assumedAlive, forMs: state.args.controllerHeartBeatTimeoutMs }, 'controller leads its group');
}

function keptAlive(state: State, group: Group, sentAtMs: number, result: PipeResult<LeaseView | undefined>, ctx: Ctx): void {
  group.keepAliveInFlight = false;
  if (!result.ok) {
    // The deadline in checkLease deposes a leader whose renewals keep failing.
    ctx.log.warn({ err: describeError(result.error), role: group.role }, 'etcd lease renewal failed');
    return;
  }
  const lease = result.value;
  if (lease === undefined || lease.leaseId !== group.leaseId) return;
  noteLease(group, lease, sentAtMs);
  if (group.role === 'leader' && group.leaseId === undefined) depose(state, group, 'etcd says the lease has ended', ctx);
}

/** Deposes a leader whose lease may have ended by now. */
function checkLease(state: State, group: Group, ctx: Ctx): void {
  if (group.role === 'leader' && monotonicMs(ctx) >= group.leaseValidUntilMs) depose(state, group, 'the etcd lease was not renewed in time', ctx);
}

/** Stops leading at once: in-flight and stashed requests are answered CONTROLLER_NOT_LEADER; the lease is given up. */
function depose(state: State, group: Group, why: string, ctx: Ctx): void {
  if (group.role !== 'leader') return;
  ctx.log.warn({ why, term: group.term }, 'controller no longer leads its group');
  group.role = 'follower';
  group.term = undefined;
  group.leader = undefined;
  state.writeId++;
  const inflight = state.inflight;
  state.inflight = undefined;
  state.phase = 'ready';
  for (const answer of inflight?.answers ?? []) respond(ctx, answer.channel, answer.request, notLeader(answer.request));
  state.channels.clear();
  resign(group, ctx);
  drain(state, ctx);
}

function resign(group: Group, ctx: Ctx): void {
  group.leaseId = undefined;
  group.leaseValidUntilMs = Number.NEGATIVE_INFINITY;
  const store = group.store;
  if (store !== undefined) ctx.pipeToSelf(store.resign(), (result) => ({ type: 'resigned', result }));
}

function notLeader(request: RemotingCommand): RemotingCommand {
  return createResponse(request, ResponseCode.CONTROLLER_NOT_LEADER, NOT_LEADER_REMARK);
}

/** A follower's turn: it names the leader and shows its config; everything else goes to the leader. */
function follow(state: State, message: RemotingRequestMessage | ChannelClosedMessage | ScanNotActiveBrokerMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'remotingRequest': {
      const { request, channel } = message;
      const servedHere = request.code === RequestCode.CONTROLLER_GET_METADATA_INFO || request.code === RequestCode.GET_CONTROLLER_CONFIG;
      const response = servedHere ? handleRequest(state, request, channel, ctx.clock.nowMs(), ctx) : notLeader(request);
      respond(ctx, channel, request, response);
      return;
    }
    case 'channelClosed':
      state.channels.delete(channelKey(message.channel));
      return;
    case 'scanNotActiveBroker':
      return;
    default:
      assertNever(message, 'follower work');
  }
}

// ------------------------------------------------------------------------------------------------ serving

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
  const group = state.group;
  if (group === undefined && state.args.controllerStorePath === '') {
    state.durable = document;
    finish(state, answers, effects.masterChanges, ctx);
    return;
  }
  state.phase = 'writing';
  state.inflight = { answers, masterChanges: effects.masterChanges, document };
  const writeId = ++state.writeId;
  ctx.pipeToSelf(write(state, group, document, ctx), (result) => ({
    type: 'metadataPersisted',
    writeId,
    error: result.ok ? undefined : { code: result.error instanceof ControllerStoreError ? result.error.code : undefined, message: describeError(result.error) },
  }));
}

/** Stores the document: to the group's store under this leader's term, or to the file. */
function write(state: State, group: Group | undefined, document: ControllerMetadataDocument, ctx: Ctx): Promise<void> {
  if (group === undefined) return persistControllerMetadata(ctx.fs, state.args.controllerStorePath, document, state.args);
  assert(group.role === 'leader' && group.term !== undefined && group.store !== undefined, 'only the leader writes');
  const checked = validateControllerMetadata(document, state.args);
  assert(checked.ok, () => `refusing to store invalid controller metadata: ${checked.ok ? '' : checked.problem}`);
  return group.store.save(group.term, checked.value);
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
  const group = state.group;
  if (group === undefined) {
    // Alone, this controller leads itself and is reached where the broker reached it.
    const selfId = state.args.controllerDLegerSelfId;
    const extFields = GetMetaDataResponseHeader.format({
      group: state.args.controllerDLegerGroup,
      controllerLeaderId: selfId,
      controllerLeaderAddress: channel.localAddress,
      isLeader: true,
      peers: `${selfId}:${channel.localAddress};`,
    });
    return reply(request, ResponseCode.SUCCESS, undefined, extFields);
  }
  const leader = group.role === 'leader' ? group.self : group.leader;
  const extFields = GetMetaDataResponseHeader.format({
    group: state.args.controllerDLegerGroup,
    ...(leader === undefined ? {} : { controllerLeaderId: leader.id, controllerLeaderAddress: leader.address }),
    isLeader: group.role === 'leader',
    peers: formatMetadataPeers(group.peers),
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
