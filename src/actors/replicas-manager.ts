/**
 * The broker side of RocketMQ 5 controller mode (enableControllerMode=true): RocketMQ's ReplicasManager
 * plus the role switching of AutoSwitchHAService, as one actor per broker. It gets a broker id from the
 * controller, registers, heartbeats, polls and receives role changes, and turns each new master epoch into
 * a role for the commit-log-writer, a master for the ha-client and an entry in the epoch file
 * (epoch-file.ts).
 *
 * Start (ReplicasManager.register): the applied broker id in the store root (broker-identity.ts) is used;
 * without one, CONTROLLER_GET_NEXT_BROKER_ID, a temp identity file, CONTROLLER_APPLY_BROKER_ID and the
 * applied file. Then BROKER_HEARTBEAT, CONTROLLER_REGISTER_BROKER and, when the set has no live master,
 * CONTROLLER_ELECT_MASTER. Failures retry every RETRY_INTERVAL (5 s). Then BROKER_HEARTBEAT every
 * brokerHeartbeatInterval, CONTROLLER_GET_REPLICA_INFO every syncBrokerMetadataPeriod, pushed
 * NOTIFY_BROKER_ROLE_CHANGED (on the controller connection, or through the broker's acceptor) and, as
 * master, the SyncStateSet check every checkSyncStateSetPeriod. On the broker's acceptor it serves
 * GET_BROKER_EPOCH_CACHE, NOTIFY_BROKER_ROLE_CHANGED and EXCHANGE_BROKER_HA_INFO (how a slave learns its
 * master's HA address, as BrokerController.onMasterOnline asks it; a NameServer registration result may
 * also report it with `haMasterAddress`, as handleRegisterBrokerResult does).
 *
 * Becoming master of epoch E: fence the writer (`fence`, E), which freezes its max offset M; detach the
 * ha-client; cut the epoch file at M (entries copied from an earlier master for bytes this log never got)
 * and append (E, M), durably; only then un-fence (`setRole` SYNC_MASTER or ASYNC_MASTER, E). Becoming a
 * slave of another master at E: fence at once; detach the ha-client; ask the master GET_BROKER_EPOCH_CACHE
 * and EXCHANGE_BROKER_HA_INFO (retried until the master's own list holds E, i.e. it finished becoming
 * master); cut the writer (`truncateTo`) at the consistent point when the local log is longer; cut the
 * epoch file there and copy the master's later entries (our HA stream carries no epochs, unlike
 * AutoSwitchHAClient's, so the slave learns them here); then point the ha-client at the master's HA
 * address. One transition runs at a time and only the newest target is kept; subscribers are told
 * `roleChanged` after each.
 *
 * Fencing, and why a replaced master acknowledges nothing after it learns it was replaced. The writer is
 * open (a master role) only while all of these hold: this broker is master of the newest epoch it has
 * learned, its transition to it is complete, it is not suspect, and its lease is valid. Any higher epoch,
 * from a poll, a push, an election or a registration answer, fences the writer in the same turn it
 * arrives, before the transition starts; so does CONTROLLER_FENCED_MASTER_EPOCH or INVALID_MASTER from an
 * AlterSyncStateSet, and a writer answering STALE_EPOCH. The lease: the controller elects another master
 * only after it has heard no heartbeat from this one for controllerHeartBeatTimeoutMills (its liveness
 * rule), and it heard the last acknowledged heartbeat no earlier than we sent it; so while
 * monotonicNow < sentAt(newest acknowledged heartbeat) + controllerHeartBeatTimeoutMills -
 * leaseSafetyMarginMs, no heartbeat-driven election can have happened (the margin covers clock-rate
 * drift; no wall clocks are compared). When the lease runs out (checked at the start of every message and
 * by a timer) the writer is fenced and the broker becomes suspect. A suspect broker re-opens only after a
 * controller answer confirming it is master at its epoch, to a request sent after both the suspicion and
 * the heartbeat that renewed the lease: the controller handles one connection's requests in order, so
 * that answer saw the heartbeat, and no election can follow it within the renewed lease.
 *
 * SIGSTOP then SIGCONT: on resume the lease has run out, so the first message this actor handles fences
 * the writer and nothing re-opens it before the controller confirms the epoch. What this actor cannot
 * order is the writer's own mailbox: puts queued in the writer may be answered before this actor's fence
 * reaches it, so the writer checks the same lease itself at the start of every turn (`leaseUntilMs`, carried
 * by setRole and renewed with `lease` after every acknowledged heartbeat, on the same monotonic clock):
 * puts it handles after the deadline are refused, even those queued before it. Likewise a designated election (mqadmin electMaster) replaces a live master without a lease
 * running out; the old master learns it by push or poll, as in RocketMQ.
 */
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { createRequest, createResponse, isOneway, RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';
import { defineHeader } from '../net/remoting/broker-headers.ts';
import {
  AlterSyncStateSetRequestHeader,
  AlterSyncStateSetResponseHeader,
  ApplyBrokerIdRequestHeader,
  BrokerHeartbeatRequestHeader,
  ElectMasterRequestHeader,
  ElectMasterResponseHeader,
  formatEpochEntryCache,
  formatSyncStateSet,
  GetNextBrokerIdRequestHeader,
  GetNextBrokerIdResponseHeader,
  GetReplicaInfoRequestHeader,
  GetReplicaInfoResponseHeader,
  NotifyBrokerRoleChangedRequestHeader,
  parseElectMasterResponseBody,
  parseEpochEntryCache,
  parseSyncStateSet,
  RegisterBrokerToControllerRequestHeader,
  RegisterBrokerToControllerResponseHeader,
} from '../net/remoting/controller-protocol.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { EpochCache, findConsistentPoint, readEpochFile, writeEpochFile } from '../storage/epoch-file.ts';
import { loadBrokerIdentity, removeTempBrokerIdentity, writeAppliedBrokerIdentity, writeTempBrokerIdentity } from '../storage/broker-identity.ts';
import type { BrokerRole, CommitLogWriterMessage, HaStateAnswer, RoleAnswer, TruncateAnswer } from './commit-log-writer.ts';
import type { HaClientMessage } from './ha-client.ts';
import { publishMasterLease } from './master-lease.ts';
import type { RemotingRequestMessage } from './remoting-routes.ts';
import { ReplicasRemoting } from './replicas-remoting.ts';

/** RocketMQ's defaults (BrokerConfig, ReplicasManager), under their config key names with units added. */
export const REPLICAS_MANAGER_DEFAULTS = {
  /** brokerHeartbeatInterval: how often BROKER_HEARTBEAT goes to the controller. */
  brokerHeartbeatIntervalMs: 1_000,
  /** controllerHeartBeatTimeoutMills: how long the controller keeps this broker alive without a heartbeat. */
  controllerHeartBeatTimeoutMs: 10_000,
  /** sendHeartbeatTimeoutMillis: how long one heartbeat may take. */
  sendHeartbeatTimeoutMs: 1_000,
  /** syncBrokerMetadataPeriod: how often CONTROLLER_GET_REPLICA_INFO polls. */
  syncBrokerMetadataPeriodMs: 5_000,
  /** checkSyncStateSetPeriod: how often a master checks its SyncStateSet. */
  checkSyncStateSetPeriodMs: 5_000,
  /** brokerElectionPriority: lower is preferred; Integer.MAX_VALUE by default. */
  brokerElectionPriority: 0x7fff_ffff,
  /** ReplicasManager.RETRY_INTERVAL_SECOND: pause before a failed start is tried again. */
  registerRetryIntervalMs: 5_000,
  /** How long other controller and broker requests may take (BrokerOuterAPI uses 3 s). */
  requestTimeoutMs: 3_000,
  /** Pause before a failed role transition (master not ready, unreachable) is tried again. */
  transitionRetryIntervalMs: 1_000,
  /** Part of the heartbeat timeout the lease gives up, against clock-rate drift and delivery delay. */
  leaseSafetyMarginMs: 1_000,
} as const;

/** Start arguments. */
export type ReplicasManagerArgs = {
  /** storePathRootDir: where the epoch file and the broker identity live. */
  readonly storePathRootDir: string;
  readonly brokerClusterName: string;
  readonly brokerName: string;
  /** This broker's Remoting address (`ip:listenPort`), registered with the controller. */
  readonly brokerAddr: string;
  /** This broker's HA address (`ip:haListenPort`), told to slaves by EXCHANGE_BROKER_HA_INFO. */
  readonly haServerAddr: string;
  /** controllerAddr: `host:port` of the controllers, ';'-separated. */
  readonly controllerAddr: string;
  /** brokerRole: the role this broker takes as master (SLAVE means SYNC_MASTER, RocketMQ's choice). */
  readonly brokerRole: BrokerRole;
  /** MessageStoreConfig.asyncLearner: never a SyncStateSet member nor master. */
  readonly asyncLearner: boolean;
  readonly writer: ActorRef<CommitLogWriterMessage>;
  readonly haClient: ActorRef<HaClientMessage>;
  /** Told every completed role change (broker-admin re-registers with the NameServer). */
  readonly onRoleChanged: readonly ActorRef<ReplicasRoleChangedMessage>[];
  readonly brokerHeartbeatIntervalMs: number;
  readonly controllerHeartBeatTimeoutMs: number;
  readonly sendHeartbeatTimeoutMs: number;
  readonly syncBrokerMetadataPeriodMs: number;
  readonly checkSyncStateSetPeriodMs: number;
  readonly brokerElectionPriority: number;
  readonly registerRetryIntervalMs: number;
  readonly requestTimeoutMs: number;
  readonly transitionRetryIntervalMs: number;
  readonly leaseSafetyMarginMs: number;
  /** The lease cell the send processors check before they answer (master-lease.ts); absent in unit tests. */
  readonly masterLease?: SharedArrayBuffer;
};

/** Told to each `onRoleChanged` subscriber after a role change is complete. */
export type ReplicasRoleChangedMessage = {
  readonly type: 'roleChanged';
  readonly role: BrokerRole;
  /** 0 as master (MixAll.MASTER_ID), the controller-assigned id as slave, as BrokerConfig.brokerId. */
  readonly brokerId: number;
  readonly masterAddress: string;
  readonly masterHaAddress: string;
  readonly masterEpoch: number;
};

/** What a `state` ask answers. */
export type ReplicasManagerState = {
  readonly phase: Phase;
  readonly brokerControllerId: number | undefined;
  readonly role: BrokerRole | 'NONE';
  readonly masterEpoch: number;
  readonly appliedEpoch: number;
  readonly masterBrokerId: number | undefined;
  readonly masterAddress: string;
  readonly masterHaAddress: string;
  readonly syncStateSet: readonly number[];
  readonly syncStateSetEpoch: number;
  readonly writerOpen: boolean;
  readonly suspect: boolean;
  readonly epochEntries: readonly { readonly epoch: number; readonly startOffset: number }[];
  readonly refusal: string | undefined;
  /** The last failure of registration or of a role change, for operators. */
  readonly lastError: string | undefined;
};

/** A master as the controller describes it (register, elect, replica info, push). */
type MasterInfo = {
  readonly masterBrokerId: number;
  readonly masterAddress: string;
  readonly masterEpoch: number;
  readonly syncStateSetEpoch: number;
  readonly syncStateSet: readonly number[];
};

/** What the controller said, with the monotonic time the request left (undefined for pushes). */
type ControllerView = { readonly master: MasterInfo | undefined; readonly masterEpoch: number; readonly sentAtMs: number | undefined };

type RegisterOutcome =
  | { readonly kind: 'registered'; readonly brokerId: number; readonly heartbeatSentAtMs: number | undefined; readonly view: ControllerView }
  | { readonly kind: 'refused'; readonly remark: string };

type TransitionOutcome = { readonly masterHaAddress: string };

/** The ha-service's view of one slave; `brokerId` comes with the AutoSwitch handshake (see the report). */
export type HaSlaveView = HaStateAnswer['slaves'][number] & { readonly brokerId?: number };

/** Messages: requests from the broker's acceptor, the actor's own timers and outcomes, and asks. */
export type ReplicasManagerMessage =
  | RemotingRequestMessage
  | { readonly type: 'registered'; readonly result: PipeResult<RegisterOutcome> }
  | { readonly type: 'register' }
  | { readonly type: 'heartbeatTick' }
  | { readonly type: 'heartbeatDone'; readonly sentAtMs: number; readonly result: PipeResult<RemotingCommand> }
  | { readonly type: 'offsetKnown'; readonly result: PipeResult<HaStateAnswer> }
  | { readonly type: 'writerKnown'; readonly result: PipeResult<HaStateAnswer> }
  | { readonly type: 'syncMetadataTick' }
  | { readonly type: 'replicaInfo'; readonly sentAtMs: number; readonly result: PipeResult<RemotingCommand> }
  | { readonly type: 'elected'; readonly sentAtMs: number; readonly result: PipeResult<RemotingCommand> }
  | { readonly type: 'pushed'; readonly request: RemotingCommand }
  | { readonly type: 'checkSyncStateSetTick' }
  | { readonly type: 'haViewKnown'; readonly result: PipeResult<HaStateAnswer> }
  | { readonly type: 'altered'; readonly epoch: number; readonly result: PipeResult<RemotingCommand> }
  | { readonly type: 'leaseTick' }
  | { readonly type: 'roleSet'; readonly result: PipeResult<RoleAnswer> }
  | { readonly type: 'transitionDone'; readonly target: MasterInfo; readonly result: PipeResult<TransitionOutcome> }
  | { readonly type: 'retryTransition' }
  | { readonly type: 'epochCacheAnswer'; readonly request: RemotingRequestMessage; readonly result: PipeResult<HaStateAnswer> }
  | { readonly type: 'haMasterAddress'; readonly masterAddress: string; readonly haAddress: string }
  | { readonly type: 'state' };

type Phase = 'registering' | 'running' | 'refused';

type State = {
  readonly args: ReplicasManagerArgs;
  readonly fs: StorageFs;
  readonly remoting: ReplicasRemoting;
  readonly epochCache: EpochCache;
  phase: Phase;
  refusal: string | undefined;
  lastError: string | undefined;
  brokerId: number | undefined;
  /** The newest master epoch learned from the controller (ReplicasManager.masterEpoch). */
  knownEpoch: number;
  /** The epoch whose transition completed. */
  appliedEpoch: number;
  role: BrokerRole | 'NONE';
  masterBrokerId: number | undefined;
  masterAddress: string;
  masterHaAddress: string;
  syncStateSet: readonly number[];
  syncStateSetEpoch: number;
  /** Where the next transition goes; only the newest is kept. */
  target: MasterInfo | undefined;
  transitioning: boolean;
  writerOpen: boolean;
  suspect: boolean;
  suspectSinceMs: number;
  /** Monotonic send time of the newest acknowledged heartbeat; -Infinity before the first. */
  leaseHeartbeatSentAtMs: number;
  heartbeatInFlight: boolean;
  pollInFlight: boolean;
  pollAgain: boolean;
  electInFlight: boolean;
  alterInFlight: boolean;
  maxOffset: number;
  /** The HA address a NameServer registration reported for a master (RegisterBrokerResult.haServerAddr). */
  reportedHa: { readonly masterAddress: string; readonly haAddress: string } | undefined;
};

type Ctx = ActorContext<ReplicasManagerMessage>;

const TIMER_HEARTBEAT = 'heartbeat';
const TIMER_SYNC_METADATA = 'syncMetadata';
const TIMER_CHECK_SYNC_STATE_SET = 'checkSyncStateSet';
const TIMER_LEASE = 'lease';
const TIMER_REGISTER = 'register';
const TIMER_TRANSITION = 'transition';

/** MixAll.MASTER_ID. */
const MASTER_ID = 0;

/** ExchangeHAInfoRequestHeader / ExchangeHAInfoResponseHeader (EXCHANGE_BROKER_HA_INFO, 906). */
export const ExchangeHAInfoHeader = defineHeader('ExchangeHAInfoHeader', {
  masterHaAddress: { kind: 'string', wire: 'masterHaAddress', required: false } as const,
  masterFlushOffset: { kind: 'long', wire: 'masterFlushOffset', required: false } as const,
  masterAddress: { kind: 'string', wire: 'masterAddress', required: false } as const,
});

function monotonicMs(ctx: Ctx): number {
  return Number(ctx.clock.monotonicNs() / 1_000_000n);
}

function masterRole(args: ReplicasManagerArgs): BrokerRole {
  return args.brokerRole === 'ASYNC_MASTER' ? 'ASYNC_MASTER' : 'SYNC_MASTER';
}

function request(code: number, extFields: Record<string, string>, body?: Uint8Array): RemotingCommand {
  return createRequest({ code, opaque: 0, extFields, ...(body === undefined ? {} : { body }) });
}

/** Throws unless the answer is SUCCESS; the error names the request and the controller's remark. */
function expectSuccess(answer: RemotingCommand, what: string): RemotingCommand {
  if (answer.code !== ResponseCode.SUCCESS) throw new Error(`${what} answered ${answer.code}: ${answer.remark ?? ''}`);
  return answer;
}

// ------------------------------------------------------------------------------------------ behavior

/** Builds the behavior over a storage file system (tests inject faults here). */
export function replicasManagerBehavior(storageFsOf: (args: ReplicasManagerArgs) => StorageFs): Behavior<State, ReplicasManagerMessage, ReplicasManagerArgs> {
  return {
    init(args, ctx) {
      checkArgs(args);
      const fs = storageFsOf(args);
      const remoting = new ReplicasRemoting({
        controllerAddrs: args.controllerAddr.split(';').map((addr) => addr.trim()).filter((addr) => addr !== ''),
        clock: ctx.clock,
        connectTimeoutMs: args.requestTimeoutMs,
        log: (level, message, fields) => ctx.log[level](fields, message),
        onPush: (pushed) => {
          if (!ctx.tell(ctx.self, { type: 'pushed', request: pushed })) ctx.log.warn({ code: pushed.code }, 'role-change push dropped: mailbox full; the poll will catch up');
        },
      });
      let refusal: string | undefined;
      let entries: ReturnType<typeof readEpochFile> = [];
      try {
        entries = readEpochFile(fs, args.storePathRootDir);
      } catch (error) {
        refusal = `epoch file unreadable: ${describeError(error)}`;
        ctx.log.error({ dir: args.storePathRootDir, err: refusal }, 'not joining the broker set; remove or repair the epoch file');
      }
      const state: State = {
        args,
        fs,
        remoting,
        epochCache: new EpochCache(entries),
        phase: refusal === undefined ? 'registering' : 'refused',
        refusal,
        lastError: undefined,
        brokerId: undefined,
        knownEpoch: 0,
        appliedEpoch: 0,
        role: 'NONE',
        masterBrokerId: undefined,
        masterAddress: '',
        masterHaAddress: '',
        syncStateSet: [],
        syncStateSetEpoch: 0,
        target: undefined,
        transitioning: false,
        writerOpen: false,
        suspect: false,
        suspectSinceMs: Number.NEGATIVE_INFINITY,
        leaseHeartbeatSentAtMs: Number.NEGATIVE_INFINITY,
        heartbeatInFlight: false,
        pollInFlight: false,
        pollAgain: false,
        electInFlight: false,
        alterInFlight: false,
        maxOffset: 0,
        reportedHa: undefined,
      };
      // Nothing may be acknowledged before the controller says this broker is master. The writer's fencing
      // epoch never goes back, and after a restart of this actor alone it may be past 0: read it first.
      ctx.pipeToSelf(ctx.ask<CommitLogWriterMessage, HaStateAnswer>(args.writer, { type: 'haState' }, args.requestTimeoutMs), (result) => ({ type: 'writerKnown', result }));
      if (refusal === undefined) ctx.timers.startSingle(TIMER_REGISTER, { type: 'register' }, 0);
      return state;
    },

    receive(state, message, ctx) {
      checkLease(state, ctx);
      handle(state, message, ctx);
      return state;
    },

    onStop(state) {
      state.remoting.close();
    },
  };
}

/** The replicas manager over the real file system. */
export const replicasManager = replicasManagerBehavior(() => nodeStorageFs);

function checkArgs(args: ReplicasManagerArgs): void {
  for (const key of [
    'brokerHeartbeatIntervalMs',
    'controllerHeartBeatTimeoutMs',
    'sendHeartbeatTimeoutMs',
    'syncBrokerMetadataPeriodMs',
    'checkSyncStateSetPeriodMs',
    'registerRetryIntervalMs',
    'requestTimeoutMs',
    'transitionRetryIntervalMs',
  ] as const) {
    assert(Number.isSafeInteger(args[key]) && args[key] > 0, () => `${key} is a positive integer`);
  }
  assert(Number.isSafeInteger(args.leaseSafetyMarginMs) && args.leaseSafetyMarginMs >= 0, 'leaseSafetyMarginMs is not negative');
  assert(args.leaseSafetyMarginMs < args.controllerHeartBeatTimeoutMs, 'the lease margin is shorter than the heartbeat timeout');
  assert(args.brokerHeartbeatIntervalMs < args.controllerHeartBeatTimeoutMs, 'heartbeats come more often than they expire');
  assert(args.controllerAddr.trim() !== '', 'controllerAddr is set');
}

function handle(state: State, message: ReplicasManagerMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'remotingRequest':
      return serve(state, message, ctx);
    case 'register':
      return startRegister(state, ctx);
    case 'registered':
      return onRegistered(state, message.result, ctx);
    case 'heartbeatTick':
      return sendHeartbeat(state, ctx);
    case 'heartbeatDone':
      return onHeartbeat(state, message.sentAtMs, message.result, ctx);
    case 'offsetKnown':
      if (message.result.ok) state.maxOffset = message.result.value.maxOffset;
      return;
    case 'writerKnown':
      return fenceAtStart(state, message.result, ctx);
    case 'syncMetadataTick':
      return poll(state, ctx);
    case 'replicaInfo':
      return onReplicaInfo(state, message.sentAtMs, message.result, ctx);
    case 'elected':
      return onElected(state, message.sentAtMs, message.result, ctx);
    case 'pushed':
      return onPush(state, message.request, ctx);
    case 'checkSyncStateSetTick':
      return checkSyncStateSet(state, ctx);
    case 'haViewKnown':
      return onHaView(state, message.result, ctx);
    case 'altered':
      return onAltered(state, message.epoch, message.result, ctx);
    case 'leaseTick':
      return;
    case 'roleSet':
      return onRoleSet(state, message.result, ctx);
    case 'transitionDone':
      return onTransitionDone(state, message.target, message.result, ctx);
    case 'retryTransition':
      return runTransition(state, ctx);
    case 'epochCacheAnswer':
      return answerEpochCache(state, message.request, message.result, ctx);
    case 'haMasterAddress':
      return onReportedHa(state, message.masterAddress, message.haAddress, ctx);
    case 'state':
      return ctx.reply(snapshot(state));
    default:
      return assertNever(message, 'replicas manager message');
  }
}

function snapshot(state: State): ReplicasManagerState {
  return {
    phase: state.phase,
    brokerControllerId: state.brokerId,
    role: state.role,
    masterEpoch: state.knownEpoch,
    appliedEpoch: state.appliedEpoch,
    masterBrokerId: state.masterBrokerId,
    masterAddress: state.masterAddress,
    masterHaAddress: state.masterHaAddress,
    syncStateSet: state.syncStateSet,
    syncStateSetEpoch: state.syncStateSetEpoch,
    writerOpen: state.writerOpen,
    suspect: state.suspect,
    epochEntries: [...state.epochCache.entries],
    refusal: state.refusal,
    lastError: state.lastError,
  };
}

// ------------------------------------------------------------------------------------------ start

function fenceAtStart(state: State, result: PipeResult<HaStateAnswer>, ctx: Ctx): void {
  if (!result.ok) {
    // The writer must not stay open unseen: ask again (its supervisor is restarting it, say).
    ctx.log.error({ err: describeError(result.error) }, 'writer did not answer haState at start; asking again');
    const asked = ctx.ask<CommitLogWriterMessage, HaStateAnswer>(state.args.writer, { type: 'haState' }, state.args.requestTimeoutMs);
    ctx.pipeToSelf(asked, (again) => ({ type: 'writerKnown', result: again }));
    return;
  }
  state.maxOffset = result.value.maxOffset;
  if (state.writerOpen || state.transitioning) return;
  ctx.tell(state.args.writer, { type: 'fence', epoch: Math.max(result.value.epoch, state.knownEpoch) });
}

function startRegister(state: State, ctx: Ctx): void {
  if (state.phase !== 'registering') return;
  ctx.pipeToSelf(register(state, ctx), (result) => ({ type: 'registered', result }));
}

/** ReplicasManager.register + the first heartbeat + brokerElect, as one sequence of calls. */
async function register(state: State, ctx: Ctx): Promise<RegisterOutcome> {
  const { args, fs, remoting } = state;
  const timeoutMs = args.requestTimeoutMs;
  const names = { clusterName: args.brokerClusterName, brokerName: args.brokerName };
  let loaded = loadBrokerIdentity(fs, args.storePathRootDir, args.brokerClusterName, args.brokerName);
  if (loaded.kind === 'refused') return { kind: 'refused', remark: `${loaded.code}: ${loaded.remark}` };
  if (loaded.kind === 'none') {
    const answer = expectSuccess(await remoting.invokeController(request(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, GetNextBrokerIdRequestHeader.format(names)), timeoutMs), 'GET_NEXT_BROKER_ID');
    const nextBrokerId = GetNextBrokerIdResponseHeader.parse(answer.extFields).nextBrokerId;
    if (nextBrokerId === undefined) throw new Error('GET_NEXT_BROKER_ID answered no id');
    const identity = { ...names, brokerId: nextBrokerId, registerCheckCode: `${args.brokerAddr};${ctx.clock.nowMs()}` };
    writeTempBrokerIdentity(fs, args.storePathRootDir, identity);
    loaded = { kind: 'temp', identity };
  }
  if (loaded.kind === 'temp') {
    const { brokerId, registerCheckCode } = loaded.identity;
    const header = ApplyBrokerIdRequestHeader.format({ ...names, appliedBrokerId: brokerId, registerCheckCode });
    const answer = await remoting.invokeController(request(RequestCode.CONTROLLER_APPLY_BROKER_ID, header), timeoutMs);
    if (answer.code !== ResponseCode.SUCCESS) {
      // The id went to another broker: start again from GET_NEXT_BROKER_ID.
      removeTempBrokerIdentity(fs, args.storePathRootDir);
      throw new Error(`APPLY_BROKER_ID ${brokerId} answered ${answer.code}: ${answer.remark ?? ''}`);
    }
    writeAppliedBrokerIdentity(fs, args.storePathRootDir, { ...names, brokerId });
    loaded = { kind: 'applied', identity: { ...names, brokerId } };
  }
  const brokerId = loaded.identity.brokerId;
  const heartbeatSentAtMs = monotonicMs(ctx);
  const heartbeat = await remoting.invokeController(heartbeatRequest(state, brokerId), args.sendHeartbeatTimeoutMs);
  const sentAtMs = monotonicMs(ctx);
  const registerHeader = RegisterBrokerToControllerRequestHeader.format({ ...names, brokerId, brokerAddress: args.brokerAddr, asyncLearner: args.asyncLearner });
  const registered = expectSuccess(await remoting.invokeController(request(RequestCode.CONTROLLER_REGISTER_BROKER, registerHeader), timeoutMs), 'REGISTER_BROKER');
  const header = RegisterBrokerToControllerResponseHeader.parse(registered.extFields);
  const ackedAt = heartbeat.code === ResponseCode.SUCCESS ? heartbeatSentAtMs : undefined;
  if (header.masterBrokerId !== undefined && header.masterAddress !== undefined && header.masterEpoch !== undefined) {
    const body = registered.body === undefined || registered.body.length === 0 ? { syncStateSet: [], syncStateSetEpoch: 0 } : parseSyncStateSet(registered.body);
    const master: MasterInfo = {
      masterBrokerId: header.masterBrokerId,
      masterAddress: header.masterAddress,
      masterEpoch: header.masterEpoch,
      syncStateSetEpoch: header.syncStateSetEpoch ?? body.syncStateSetEpoch,
      syncStateSet: body.syncStateSet,
    };
    return { kind: 'registered', brokerId, heartbeatSentAtMs: ackedAt, view: { master, masterEpoch: master.masterEpoch, sentAtMs } };
  }
  return { kind: 'registered', brokerId, heartbeatSentAtMs: ackedAt, view: { master: undefined, masterEpoch: 0, sentAtMs } };
}

function onRegistered(state: State, result: PipeResult<RegisterOutcome>, ctx: Ctx): void {
  if (!result.ok) {
    state.lastError = `register: ${describeError(result.error)}`;
    ctx.log.warn({ err: state.lastError, retryMs: state.args.registerRetryIntervalMs }, 'registering with the controller failed; retrying');
    ctx.timers.startSingle(TIMER_REGISTER, { type: 'register' }, state.args.registerRetryIntervalMs);
    return;
  }
  const outcome = result.value;
  if (outcome.kind === 'refused') {
    state.phase = 'refused';
    state.refusal = outcome.remark;
    ctx.log.error({ remark: outcome.remark }, 'not joining the broker set');
    return;
  }
  state.phase = 'running';
  state.brokerId = outcome.brokerId;
  if (outcome.heartbeatSentAtMs !== undefined) state.leaseHeartbeatSentAtMs = outcome.heartbeatSentAtMs;
  // The HA handshake names this replica to a master, which can then count it in the SyncStateSet.
  ctx.tell(state.args.haClient, { type: 'identity', brokerId: outcome.brokerId, asyncLearner: state.args.asyncLearner });
  ctx.log.info({ brokerId: outcome.brokerId, controller: state.remoting.controllerAddr }, 'registered with the controller');
  const args = state.args;
  ctx.timers.startPeriodic(TIMER_HEARTBEAT, { type: 'heartbeatTick' }, args.brokerHeartbeatIntervalMs);
  ctx.timers.startPeriodic(TIMER_SYNC_METADATA, { type: 'syncMetadataTick' }, args.syncBrokerMetadataPeriodMs);
  ctx.timers.startPeriodic(TIMER_CHECK_SYNC_STATE_SET, { type: 'checkSyncStateSetTick' }, args.checkSyncStateSetPeriodMs);
  ctx.timers.startPeriodic(TIMER_LEASE, { type: 'leaseTick' }, Math.max(10, Math.floor(args.brokerHeartbeatIntervalMs / 2)));
  if (outcome.view.master === undefined) elect(state, ctx);
  else learn(state, outcome.view, ctx);
}

// ------------------------------------------------------------------------------------------ controller calls

function heartbeatRequest(state: State, brokerId: number): RemotingCommand {
  const args = state.args;
  const header = BrokerHeartbeatRequestHeader.format({
    clusterName: args.brokerClusterName,
    brokerAddr: args.brokerAddr,
    brokerName: args.brokerName,
    brokerId,
    epoch: state.epochCache.lastEpoch,
    maxOffset: state.maxOffset,
    confirmOffset: state.maxOffset,
    heartbeatTimeoutMills: args.controllerHeartBeatTimeoutMs,
    electionPriority: args.brokerElectionPriority,
    asyncLearner: args.asyncLearner,
  });
  return request(RequestCode.BROKER_HEARTBEAT, header);
}

function sendHeartbeat(state: State, ctx: Ctx): void {
  if (state.phase !== 'running' || state.brokerId === undefined) return;
  // The offset rides on the next heartbeat; a slow writer never delays this one.
  ctx.pipeToSelf(ctx.ask<CommitLogWriterMessage, HaStateAnswer>(state.args.writer, { type: 'haState' }, state.args.requestTimeoutMs), (result) => ({ type: 'offsetKnown', result }));
  if (state.heartbeatInFlight) return;
  state.heartbeatInFlight = true;
  const sentAtMs = monotonicMs(ctx);
  const sent = state.remoting.invokeController(heartbeatRequest(state, state.brokerId), state.args.sendHeartbeatTimeoutMs);
  ctx.pipeToSelf(sent, (result) => ({ type: 'heartbeatDone', sentAtMs, result }));
}

function onHeartbeat(state: State, sentAtMs: number, result: PipeResult<RemotingCommand>, ctx: Ctx): void {
  state.heartbeatInFlight = false;
  if (!result.ok || result.value.code !== ResponseCode.SUCCESS) {
    const why = result.ok ? `code ${result.value.code}: ${result.value.remark ?? ''}` : describeError(result.error);
    ctx.log.warn({ controller: state.remoting.controllerAddr, why }, 'heartbeat to the controller failed');
    return;
  }
  state.leaseHeartbeatSentAtMs = Math.max(state.leaseHeartbeatSentAtMs, sentAtMs);
  // The writer checks the lease itself before every acknowledgement, the send processors again before
  // they answer: renew it in both places.
  if (state.writerOpen) {
    ctx.tell(state.args.writer, { type: 'lease', leaseUntilMs: leaseDeadline(state) });
    publishLease(state, leaseDeadline(state));
  }
  // A suspect master needs the controller's word after this heartbeat before it opens again.
  if (state.suspect) poll(state, ctx);
}

function poll(state: State, ctx: Ctx): void {
  if (state.phase !== 'running') return;
  if (state.pollInFlight) {
    state.pollAgain = true;
    return;
  }
  state.pollInFlight = true;
  state.pollAgain = false;
  const sentAtMs = monotonicMs(ctx);
  const header = GetReplicaInfoRequestHeader.format({ brokerName: state.args.brokerName });
  const sent = state.remoting.invokeController(request(RequestCode.CONTROLLER_GET_REPLICA_INFO, header), state.args.requestTimeoutMs);
  ctx.pipeToSelf(sent, (result) => ({ type: 'replicaInfo', sentAtMs, result }));
}

function onReplicaInfo(state: State, sentAtMs: number, result: PipeResult<RemotingCommand>, ctx: Ctx): void {
  state.pollInFlight = false;
  if (state.pollAgain) poll(state, ctx);
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'CONTROLLER_GET_REPLICA_INFO failed');
    return;
  }
  const answer = result.value;
  if (answer.code === ResponseCode.CONTROLLER_BROKER_METADATA_NOT_EXIST || answer.code === ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED) {
    ctx.log.warn({ code: answer.code }, 'the controller does not know this broker set; registering again');
    state.phase = 'registering';
    startRegister(state, ctx);
    return;
  }
  if (answer.code !== ResponseCode.SUCCESS) {
    ctx.log.warn({ code: answer.code, remark: answer.remark }, 'CONTROLLER_GET_REPLICA_INFO refused');
    return;
  }
  const header = GetReplicaInfoResponseHeader.parse(answer.extFields);
  const body = answer.body === undefined || answer.body.length === 0 ? { syncStateSet: [], syncStateSetEpoch: 0 } : parseSyncStateSet(answer.body);
  const masterEpoch = header.masterEpoch ?? 0;
  const master =
    header.masterBrokerId === undefined || header.masterAddress === undefined || header.masterAddress === ''
      ? undefined
      : { masterBrokerId: header.masterBrokerId, masterAddress: header.masterAddress, masterEpoch, syncStateSetEpoch: body.syncStateSetEpoch, syncStateSet: body.syncStateSet };
  learn(state, { master, masterEpoch, sentAtMs }, ctx);
  // No master in the set: ask for an election, which triggers one in the controller (brokerElect).
  if (master === undefined) elect(state, ctx);
}

function elect(state: State, ctx: Ctx): void {
  if (state.phase !== 'running' || state.brokerId === undefined || state.electInFlight || state.args.asyncLearner) return;
  state.electInFlight = true;
  const sentAtMs = monotonicMs(ctx);
  const header = ElectMasterRequestHeader.format({
    clusterName: state.args.brokerClusterName,
    brokerName: state.args.brokerName,
    brokerId: state.brokerId,
    designateElect: false,
    invokeTime: ctx.clock.nowMs(),
  });
  ctx.pipeToSelf(state.remoting.invokeController(request(RequestCode.CONTROLLER_ELECT_MASTER, header), state.args.requestTimeoutMs), (result) => ({ type: 'elected', sentAtMs, result }));
}

function onElected(state: State, sentAtMs: number, result: PipeResult<RemotingCommand>, ctx: Ctx): void {
  state.electInFlight = false;
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'CONTROLLER_ELECT_MASTER failed');
    return;
  }
  const answer = result.value;
  const header = ElectMasterResponseHeader.parse(answer.extFields);
  if (header.masterBrokerId === undefined || header.masterAddress === undefined || header.masterAddress === '' || header.masterEpoch === undefined) {
    ctx.log.info({ code: answer.code, remark: answer.remark }, 'no master in the broker set yet');
    if (header.masterEpoch !== undefined) learn(state, { master: undefined, masterEpoch: header.masterEpoch, sentAtMs }, ctx);
    return;
  }
  const syncStateSet = answer.body === undefined || answer.body.length === 0 ? [] : parseElectMasterResponseBody(answer.body).syncStateSet;
  const master: MasterInfo = {
    masterBrokerId: header.masterBrokerId,
    masterAddress: header.masterAddress,
    masterEpoch: header.masterEpoch,
    syncStateSetEpoch: header.syncStateSetEpoch ?? 0,
    syncStateSet,
  };
  learn(state, { master, masterEpoch: master.masterEpoch, sentAtMs }, ctx);
}

function onPush(state: State, pushed: RemotingCommand, ctx: Ctx): void {
  if (pushed.code !== RequestCode.NOTIFY_BROKER_ROLE_CHANGED) {
    ctx.log.warn({ code: pushed.code }, 'the controller sent a request this broker does not serve');
    return;
  }
  const view = parseRoleChange(pushed);
  if (view !== undefined) learn(state, view, ctx);
}

/** Reads NOTIFY_BROKER_ROLE_CHANGED; undefined (logged by the caller's answer) when it names no master. */
function parseRoleChange(pushed: RemotingCommand): ControllerView | undefined {
  const header = NotifyBrokerRoleChangedRequestHeader.parse(pushed.extFields);
  const body = pushed.body === undefined || pushed.body.length === 0 ? { syncStateSet: [], syncStateSetEpoch: 0 } : parseSyncStateSet(pushed.body);
  if (header.masterBrokerId === undefined || header.masterAddress === undefined || header.masterEpoch === undefined) return undefined;
  const master: MasterInfo = {
    masterBrokerId: header.masterBrokerId,
    masterAddress: header.masterAddress,
    masterEpoch: header.masterEpoch,
    syncStateSetEpoch: header.syncStateSetEpoch ?? body.syncStateSetEpoch,
    syncStateSet: body.syncStateSet,
  };
  return { master, masterEpoch: master.masterEpoch, sentAtMs: undefined };
}

// ------------------------------------------------------------------------------------------ epochs and fencing

/** Takes in what the controller said: a higher epoch fences at once and starts a transition. */
function learn(state: State, view: ControllerView, ctx: Ctx): void {
  if (state.brokerId === undefined) return;
  if (view.masterEpoch > state.knownEpoch) {
    ctx.log.info({ from: state.knownEpoch, to: view.masterEpoch, master: view.master?.masterBrokerId ?? null }, 'new master epoch');
    state.knownEpoch = view.masterEpoch;
    reconcileWriter(state, ctx);
    if (view.master !== undefined) {
      state.target = view.master;
      runTransition(state, ctx);
    }
    return;
  }
  const master = view.master;
  if (view.masterEpoch !== state.knownEpoch || master === undefined || master.masterBrokerId !== state.brokerId) return;
  if (master.syncStateSetEpoch > state.syncStateSetEpoch) {
    state.syncStateSet = master.syncStateSet;
    state.syncStateSetEpoch = master.syncStateSetEpoch;
  }
  // The controller confirms this broker is master at its epoch: clears a suspicion raised before it.
  if (state.suspect && view.sentAtMs !== undefined && view.sentAtMs >= state.suspectSinceMs && view.sentAtMs >= state.leaseHeartbeatSentAtMs) {
    ctx.log.info({ epoch: state.knownEpoch }, 'the controller confirms this broker is master');
    state.suspect = false;
    reconcileWriter(state, ctx);
  }
}

/** Until when (monotonic ms) this broker may acknowledge as master: its controller lease. */
function leaseDeadline(state: State): number {
  const args = state.args;
  return state.leaseHeartbeatSentAtMs + args.controllerHeartBeatTimeoutMs - args.leaseSafetyMarginMs;
}

function leaseValid(state: State, ctx: Ctx): boolean {
  return monotonicMs(ctx) < leaseDeadline(state);
}

/** Fences an open writer whose lease ran out; runs before every message is handled. */
function checkLease(state: State, ctx: Ctx): void {
  if (!state.writerOpen || leaseValid(state, ctx)) return;
  ctx.log.warn({ epoch: state.knownEpoch }, 'controller lease ran out; no more acknowledgements until the controller confirms the epoch');
  becomeSuspect(state, ctx);
}

function becomeSuspect(state: State, ctx: Ctx): void {
  if (!state.suspect) {
    state.suspect = true;
    state.suspectSinceMs = monotonicMs(ctx);
  }
  reconcileWriter(state, ctx);
  sendHeartbeat(state, ctx);
  poll(state, ctx);
}

/** Opens the writer exactly when this broker may acknowledge puts, and fences it otherwise. */
function reconcileWriter(state: State, ctx: Ctx): void {
  const open =
    state.role !== 'SLAVE' &&
    state.role !== 'NONE' &&
    state.masterBrokerId === state.brokerId &&
    state.appliedEpoch === state.knownEpoch &&
    !state.transitioning &&
    !state.suspect &&
    leaseValid(state, ctx);
  if (open === state.writerOpen) return;
  state.writerOpen = open;
  const writer = state.args.writer;
  if (!open) {
    publishLease(state, 'closed');
    // A tell, so it is queued in the writer before anything this actor sends later.
    if (!ctx.tell(writer, { type: 'fence', epoch: state.knownEpoch })) ctx.log.error({ epoch: state.knownEpoch }, 'writer did not take the fence');
    return;
  }
  publishLease(state, leaseDeadline(state));
  const asked = ctx.ask<CommitLogWriterMessage, RoleAnswer>(writer, { type: 'setRole', role: masterRole(state.args), epoch: state.knownEpoch, leaseUntilMs: leaseDeadline(state) }, state.args.requestTimeoutMs);
  ctx.pipeToSelf(asked, (result) => ({ type: 'roleSet', result }));
}

/** Writes the lease to the shared cell, if there is one. */
function publishLease(state: State, untilMs: number | 'closed'): void {
  if (state.args.masterLease !== undefined) publishMasterLease(state.args.masterLease, untilMs);
}

function onRoleSet(state: State, result: PipeResult<RoleAnswer>, ctx: Ctx): void {
  if (result.ok && result.value.ok) return;
  publishLease(state, 'closed');
  const why = result.ok ? `writer is at epoch ${result.value.epoch}` : describeError(result.error);
  ctx.log.warn({ epoch: state.knownEpoch, why }, 'the writer refused the master role');
  state.writerOpen = false;
  becomeSuspect(state, ctx);
}

// ------------------------------------------------------------------------------------------ transitions

function runTransition(state: State, ctx: Ctx): void {
  const target = state.target;
  if (state.transitioning || target === undefined || state.brokerId === undefined) return;
  if (target.masterEpoch < state.knownEpoch || target.masterEpoch <= state.appliedEpoch) {
    state.target = undefined;
    return;
  }
  state.transitioning = true;
  reconcileWriter(state, ctx);
  const flow = target.masterBrokerId === state.brokerId ? becomeMaster(state, target, ctx) : becomeSlave(state, target, ctx);
  ctx.pipeToSelf(flow, (result) => ({ type: 'transitionDone', target, result }));
}

function askWriter<R>(state: State, message: CommitLogWriterMessage, ctx: Ctx): Promise<R> {
  return ctx.ask<CommitLogWriterMessage, R>(state.args.writer, message, state.args.requestTimeoutMs);
}

async function fenceFor(state: State, epoch: number, ctx: Ctx): Promise<number> {
  publishLease(state, 'closed');
  const fenced = await askWriter<RoleAnswer>(state, { type: 'fence', epoch }, ctx);
  if (!fenced.ok) throw new Error(`writer refused fencing at epoch ${epoch}: it is at ${fenced.epoch}`);
  return fenced.maxOffset;
}

/** changeToMaster: fence, cut and extend the epoch file durably; the reducer opens the writer after. */
async function becomeMaster(state: State, target: MasterInfo, ctx: Ctx): Promise<TransitionOutcome> {
  const epoch = target.masterEpoch;
  const maxOffset = await fenceFor(state, epoch, ctx);
  ctx.tell(state.args.haClient, { type: 'masterChanged', haAddress: null });
  const cache = state.epochCache;
  cache.truncateSuffix(maxOffset);
  cache.truncateSuffixByEpoch(epoch);
  const appended = cache.append(epoch, maxOffset);
  assert(appended.ok, () => `epoch ${epoch} at ${maxOffset} follows the cut epoch list`);
  writeEpochFile(state.fs, state.args.storePathRootDir, cache);
  state.maxOffset = maxOffset;
  return { masterHaAddress: state.args.haServerAddr };
}

/** changeToSlave: fence, learn the master's epochs and HA address, cut the log, follow. */
async function becomeSlave(state: State, target: MasterInfo, ctx: Ctx): Promise<TransitionOutcome> {
  const epoch = target.masterEpoch;
  let maxOffset = await fenceFor(state, epoch, ctx);
  ctx.tell(state.args.haClient, { type: 'masterChanged', haAddress: null });
  const [cacheAnswer, haAnswer] = await state.remoting.invokePeer(
    target.masterAddress,
    [request(RequestCode.GET_BROKER_EPOCH_CACHE, {}), request(RequestCode.EXCHANGE_BROKER_HA_INFO, {})],
    state.args.requestTimeoutMs,
  );
  const remote = parseEpochEntryCache(expectSuccess(cacheAnswer!, 'GET_BROKER_EPOCH_CACHE').body);
  const remoteLast = remote.epochList.at(-1)?.epoch ?? -1;
  if (remoteLast < epoch) throw new Error(`master ${target.masterAddress} has not started epoch ${epoch} yet (its last is ${remoteLast})`);
  const masterHaAddress = haAddressOf(state, target.masterAddress, haAnswer!);
  const cache = state.epochCache;
  let cutAt = maxOffset;
  if (cache.entries.length === 0) {
    // RocketMQ's new replica: nothing to compare, nothing cut (a non-empty log here came from elsewhere).
    if (maxOffset > 0) ctx.log.warn({ maxOffset }, 'no epoch file but a non-empty log; following without truncation');
  } else {
    const point = findConsistentPoint({ entries: cache.entries, maxOffset }, { entries: remote.epochList, maxOffset: remote.maxOffset });
    if (point < 0) throw new Error(`no consistent point with master ${target.masterAddress}`);
    if (point < maxOffset) {
      const cut = await askWriter<TruncateAnswer>(state, { type: 'truncateTo', offset: point }, ctx);
      if (!cut.ok) throw new Error(`truncating to ${point} failed: ${cut.code} ${cut.remark}`);
      ctx.log.warn({ from: maxOffset, to: point, master: target.masterAddress }, 'log cut to the consistent point with the new master');
      maxOffset = cut.maxOffset;
    }
    cutAt = point;
  }
  cache.truncateSuffix(cutAt);
  for (const entry of remote.epochList) {
    if (entry.epoch <= cache.lastEpoch) continue;
    const appended = cache.append(entry.epoch, entry.startOffset);
    if (!appended.ok) throw new Error(`master's epoch ${entry.epoch} does not follow ours: ${appended.remark}`);
  }
  writeEpochFile(state.fs, state.args.storePathRootDir, cache);
  state.maxOffset = maxOffset;
  ctx.tell(state.args.haClient, { type: 'masterChanged', haAddress: masterHaAddress });
  return { masterHaAddress };
}

function haAddressOf(state: State, masterAddress: string, answer: RemotingCommand): string {
  if (answer.code === ResponseCode.SUCCESS) {
    const ha = ExchangeHAInfoHeader.parse(answer.extFields).masterHaAddress;
    if (ha !== undefined && ha !== '') return ha;
  }
  const reported = state.reportedHa;
  if (reported !== undefined && reported.masterAddress === masterAddress) return reported.haAddress;
  throw new Error(`master ${masterAddress} told no HA address (EXCHANGE_BROKER_HA_INFO answered ${answer.code})`);
}

function onTransitionDone(state: State, target: MasterInfo, result: PipeResult<TransitionOutcome>, ctx: Ctx): void {
  state.transitioning = false;
  if (!result.ok) {
    state.lastError = `role change to epoch ${target.masterEpoch}: ${describeError(result.error)}`;
    ctx.log.warn({ epoch: target.masterEpoch, master: target.masterBrokerId, err: state.lastError }, 'role change failed; retrying');
    ctx.timers.startSingle(TIMER_TRANSITION, { type: 'retryTransition' }, state.args.transitionRetryIntervalMs);
    reconcileWriter(state, ctx);
    return;
  }
  const isMaster = target.masterBrokerId === state.brokerId;
  state.appliedEpoch = target.masterEpoch;
  state.role = isMaster ? masterRole(state.args) : 'SLAVE';
  state.masterBrokerId = target.masterBrokerId;
  state.masterAddress = isMaster ? state.args.brokerAddr : target.masterAddress;
  state.masterHaAddress = result.value.masterHaAddress;
  if (isMaster && target.syncStateSetEpoch >= state.syncStateSetEpoch) {
    state.syncStateSet = target.syncStateSet;
    state.syncStateSetEpoch = target.syncStateSetEpoch;
  }
  if (state.target === target) state.target = undefined;
  reconcileWriter(state, ctx);
  ctx.log.info({ role: state.role, epoch: state.appliedEpoch, master: state.masterAddress }, 'broker role changed');
  const news: ReplicasRoleChangedMessage = {
    type: 'roleChanged',
    role: state.role,
    brokerId: isMaster ? MASTER_ID : state.brokerId!,
    masterAddress: state.masterAddress,
    masterHaAddress: state.masterHaAddress,
    masterEpoch: state.appliedEpoch,
  };
  for (const subscriber of state.args.onRoleChanged) {
    if (!ctx.tell(subscriber, news)) ctx.log.warn({ subscriber: subscriber.name }, 'role change subscriber did not take the news');
  }
  if (isMaster) checkSyncStateSet(state, ctx);
  runTransition(state, ctx);
}

function onReportedHa(state: State, masterAddress: string, haAddress: string, ctx: Ctx): void {
  state.reportedHa = { masterAddress, haAddress };
  if (state.role !== 'SLAVE' || state.transitioning || state.masterAddress !== masterAddress || state.masterHaAddress === haAddress || haAddress === '') return;
  state.masterHaAddress = haAddress;
  ctx.tell(state.args.haClient, { type: 'masterChanged', haAddress });
}

// ------------------------------------------------------------------------------------------ SyncStateSet

function isActingMaster(state: State): boolean {
  return state.role !== 'SLAVE' && state.role !== 'NONE' && state.masterBrokerId === state.brokerId && state.appliedEpoch === state.knownEpoch;
}

function checkSyncStateSet(state: State, ctx: Ctx): void {
  if (!isActingMaster(state) || state.alterInFlight) return;
  ctx.pipeToSelf(askWriter<HaStateAnswer>(state, { type: 'haState' }, ctx), (result) => ({ type: 'haViewKnown', result }));
}

/** maybeShrinkSyncStateSet + maybeExpandInSyncStateSet over the writer's view of its slaves. */
export function computeSyncStateSet(selfId: number, slaves: readonly HaSlaveView[], currentEpochStartOffset: number): number[] {
  const ids = new Set<number>([selfId]);
  for (const slave of slaves) {
    if (slave.brokerId === undefined || !slave.inSync || slave.ackedOffset < currentEpochStartOffset) continue;
    ids.add(slave.brokerId);
  }
  return [...ids].sort((a, b) => a - b);
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

function onHaView(state: State, result: PipeResult<HaStateAnswer>, ctx: Ctx): void {
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'writer did not answer haState');
    return;
  }
  state.maxOffset = result.value.maxOffset;
  if (!isActingMaster(state) || state.alterInFlight || state.brokerId === undefined) return;
  const start = state.epochCache.lastEntry?.startOffset ?? 0;
  const proposed = computeSyncStateSet(state.brokerId, result.value.slaves as readonly HaSlaveView[], start);
  if (sameSet(proposed, state.syncStateSet)) return;
  state.alterInFlight = true;
  const epoch = state.knownEpoch;
  const header = AlterSyncStateSetRequestHeader.format({ brokerName: state.args.brokerName, masterBrokerId: state.brokerId, masterEpoch: epoch, invokeTime: ctx.clock.nowMs() });
  const body = formatSyncStateSet({ syncStateSet: proposed, syncStateSetEpoch: state.syncStateSetEpoch });
  const sent = state.remoting.invokeController(request(RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET, header, body), state.args.requestTimeoutMs);
  ctx.pipeToSelf(sent, (altered) => ({ type: 'altered', epoch, result: altered }));
}

function onAltered(state: State, epoch: number, result: PipeResult<RemotingCommand>, ctx: Ctx): void {
  state.alterInFlight = false;
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'CONTROLLER_ALTER_SYNC_STATE_SET failed');
    return;
  }
  const answer = result.value;
  switch (answer.code) {
    case ResponseCode.SUCCESS: {
      const newEpoch = AlterSyncStateSetResponseHeader.parse(answer.extFields).newSyncStateSetEpoch;
      const set = parseSyncStateSet(answer.body);
      if (epoch === state.knownEpoch && newEpoch > state.syncStateSetEpoch) {
        state.syncStateSet = set.syncStateSet;
        state.syncStateSetEpoch = newEpoch;
        ctx.log.info({ syncStateSet: set.syncStateSet, syncStateSetEpoch: newEpoch }, 'SyncStateSet changed');
      }
      return;
    }
    case ResponseCode.CONTROLLER_FENCED_MASTER_EPOCH:
    case ResponseCode.CONTROLLER_INVALID_MASTER:
      // Another master exists: acknowledge nothing more, then learn who it is.
      ctx.log.warn({ epoch, code: answer.code, remark: answer.remark }, 'the controller fenced this master');
      becomeSuspect(state, ctx);
      return;
    case ResponseCode.CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH:
      poll(state, ctx);
      return;
    default:
      ctx.log.warn({ code: answer.code, remark: answer.remark }, 'SyncStateSet change refused');
  }
}

// ------------------------------------------------------------------------------------------ serving

/** The request codes this actor serves on the broker's acceptor. */
export const REPLICAS_MANAGER_REQUEST_CODES: readonly number[] = [
  RequestCode.GET_BROKER_EPOCH_CACHE,
  RequestCode.NOTIFY_BROKER_ROLE_CHANGED,
  RequestCode.EXCHANGE_BROKER_HA_INFO,
];

function respond(ctx: Ctx, message: RemotingRequestMessage, response: RemotingCommand): void {
  if (isOneway(message.request)) return;
  if (!ctx.tell(message.channel.acceptor, { type: 'respond', connectionId: message.channel.connectionId, response })) {
    ctx.log.warn({ code: message.request.code }, 'acceptor did not take the answer');
  }
}

function serve(state: State, message: RemotingRequestMessage, ctx: Ctx): void {
  const req = message.request;
  switch (req.code) {
    case RequestCode.GET_BROKER_EPOCH_CACHE:
      // The answer carries the current max offset, so it waits for the writer.
      ctx.pipeToSelf(askWriter<HaStateAnswer>(state, { type: 'haState' }, ctx), (result) => ({ type: 'epochCacheAnswer', request: message, result }));
      return;
    case RequestCode.NOTIFY_BROKER_ROLE_CHANGED: {
      let view: ControllerView | undefined;
      try {
        view = parseRoleChange(req);
      } catch (error) {
        return respond(ctx, message, createResponse(req, ResponseCode.SYSTEM_ERROR, describeError(error)));
      }
      if (view !== undefined) learn(state, view, ctx);
      return respond(ctx, message, createResponse(req, ResponseCode.SUCCESS));
    }
    case RequestCode.EXCHANGE_BROKER_HA_INFO:
      return respond(ctx, message, exchangeHaInfo(state, req, ctx));
    default:
      return respond(ctx, message, createResponse(req, ResponseCode.REQUEST_CODE_NOT_SUPPORTED, ` request type ${req.code} not supported`));
  }
}

/** AdminBrokerProcessor.updateBrokerHaInfo: a master tells its HA address; a master's address is taken in. */
function exchangeHaInfo(state: State, req: RemotingCommand, ctx: Ctx): RemotingCommand {
  let header;
  try {
    header = ExchangeHAInfoHeader.parse(req.extFields);
  } catch (error) {
    return createResponse(req, ResponseCode.SYSTEM_ERROR, describeError(error));
  }
  if (header.masterHaAddress !== undefined && header.masterHaAddress !== '') {
    onReportedHa(state, header.masterAddress ?? state.masterAddress, header.masterHaAddress, ctx);
    return createResponse(req, ResponseCode.SUCCESS);
  }
  if (!isActingMaster(state)) return createResponse(req, ResponseCode.SUCCESS);
  const extFields = ExchangeHAInfoHeader.format({ masterHaAddress: state.args.haServerAddr, masterFlushOffset: state.maxOffset, masterAddress: state.args.brokerAddr });
  return createResponse(req, ResponseCode.SUCCESS, undefined, { extFields });
}

function answerEpochCache(state: State, message: RemotingRequestMessage, result: PipeResult<HaStateAnswer>, ctx: Ctx): void {
  const req = message.request;
  if (!result.ok) return respond(ctx, message, createResponse(req, ResponseCode.SYSTEM_ERROR, `writer did not answer: ${describeError(result.error)}`));
  const maxOffset = result.value.maxOffset;
  const body = formatEpochEntryCache({
    clusterName: state.args.brokerClusterName,
    brokerName: state.args.brokerName,
    brokerId: isActingMaster(state) ? MASTER_ID : (state.brokerId ?? -1),
    epochList: state.epochCache.ranges(maxOffset).map((range, i, all) => (i === all.length - 1 ? { ...range, endOffset: Number.MAX_SAFE_INTEGER } : range)),
    maxOffset,
  });
  respond(ctx, message, createResponse(req, ResponseCode.SUCCESS, undefined, { body }));
}

// ------------------------------------------------------------------------------------------ spawning

/** The manager's address: its own messages and the broker acceptor's requests. */
export type ReplicasManagerRef = ActorRef<ReplicasManagerMessage> & ActorRef<RemotingRequestMessage>;

/** What a caller must give; the rest defaults to REPLICAS_MANAGER_DEFAULTS. */
export type ReplicasManagerSpawnArgs = Omit<ReplicasManagerArgs, keyof typeof REPLICAS_MANAGER_DEFAULTS | 'onRoleChanged' | 'asyncLearner'> &
  Partial<Pick<ReplicasManagerArgs, keyof typeof REPLICAS_MANAGER_DEFAULTS | 'onRoleChanged' | 'asyncLearner'>>;

/** Spawns the replicas manager (pool `admin`, name `replicas-manager` unless overridden). */
export async function spawnReplicasManager(system: ActorSpawner, args: ReplicasManagerSpawnArgs, options: SpawnPlacement = {}): Promise<ReplicasManagerRef> {
  const spec: ActorSpec<ReplicasManagerArgs> = {
    name: options.name ?? 'replicas-manager',
    behavior: options.behavior ?? { module: new URL('./replicas-manager.ts', import.meta.url).href, export: 'replicasManager' },
    args: { ...REPLICAS_MANAGER_DEFAULTS, onRoleChanged: [], asyncLearner: false, ...args },
    pool: options.pool ?? 'admin',
  };
  return (await system.spawn<ReplicasManagerMessage, ReplicasManagerArgs>(spec)) as ReplicasManagerRef;
}
