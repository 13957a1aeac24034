/**
 * The RocketMQ 5 Controller's state machine, as plain synchronous data: RocketMQ's ReplicasInfoManager
 * (broker sets, their replicas, master and SyncStateSet with their epochs), DefaultBrokerHeartbeatManager
 * (which replicas are alive, with the epoch / offset / priority they report) and DefaultElectPolicy (who
 * becomes master), with no I/O: time comes in as numbers and results are data carrying RocketMQ's
 * response codes. The controller actor (controller.ts) decodes requests, calls these operations, persists
 * the durable part (controller-metadata.ts) and answers.
 *
 * A broker set is keyed by brokerName, as RocketMQ keys both its tables (requests such as
 * AlterSyncStateSet and GetReplicaInfo carry no cluster name); it remembers the clusterName it was
 * created with. Liveness is keyed by (clusterName, brokerName, brokerId), as BrokerIdentityInfo is, and a
 * replica is alive while lastUpdateMs + heartbeatTimeoutMs >= now (isBrokerActive).
 *
 * Durable changes and master changes are recorded as effects that the caller drains with takeEffects()
 * after each operation: whether the durable state changed (so it must be persisted before the answer) and
 * the master changes (to notify brokers and subscribers once persisted).
 *
 * Deliberate differences from RocketMQ, each to keep an invariant RocketMQ can break:
 * - a replica that reports asyncLearner is never elected and never admitted to the SyncStateSet (RocketMQ
 *   relies on the master leaving learners out; an unclean election could still pick one);
 * - a controller-triggered election that finds no candidate changes nothing when there is already no
 *   master (RocketMQ bumps masterEpoch again);
 * - cleaning the master's id out of a set removes the master (masterEpoch + 1) instead of leaving a
 *   masterBrokerId that no replica has; a set is dropped when its last replica is, not when its
 *   SyncStateSet empties;
 * - applied broker ids must be >= 1 (FIRST_BROKER_CONTROLLER_ID) and nextAssignBrokerId always exceeds
 *   every id in the set (RocketMQ adds one per applied id, whatever the id);
 * - a first-time election by a broker elects that broker only if it is a replica of the set.
 */
import { ResponseCode } from '../net/remoting/remoting-command.ts';
import { ControllerNames, type BrokerReplicasInfo, type ReplicaIdentity, type ReplicasInfo } from '../net/remoting/controller-protocol.ts';
import { assert } from '../runtime/assert.ts';
import {
  CONTROLLER_METADATA_VERSION,
  type ControllerMetadataBounds,
  type ControllerMetadataDocument,
  type PersistedBrokerSet,
} from '../storage/controller-metadata.ts';

/** Bounds and switches of the state machine. */
export type ControllerStateOptions = ControllerMetadataBounds & {
  /** ControllerConfig.enableElectUncleanMaster: elect from every live replica when no SyncStateSet member is. */
  readonly enableElectUncleanMaster: boolean;
  /** Most entries in the heartbeat (liveness) table. */
  readonly liveBrokersMax: number;
};

/** Our defaults for the bounds; enableElectUncleanMaster is RocketMQ's default, false. */
export const CONTROLLER_STATE_DEFAULTS: ControllerStateOptions = {
  enableElectUncleanMaster: false,
  brokerSetsMax: 4096,
  replicasPerSetMax: 64,
  liveBrokersMax: 16_384,
};

/** A replica as the durable state knows it. */
export type Replica = { readonly brokerId: number; brokerAddress: string; readonly registerCheckCode: string };

/** One broker set (a master and its slaves sharing a brokerName). */
export type BrokerSet = {
  readonly clusterName: string;
  readonly brokerName: string;
  nextAssignBrokerId: number;
  masterBrokerId: number | undefined;
  masterEpoch: number;
  syncStateSet: Set<number>;
  syncStateSetEpoch: number;
  readonly replicas: Map<number, Replica>;
};

/** What the controller last heard from a broker (BrokerLiveInfo). */
export type LiveBroker = {
  readonly clusterName: string;
  readonly brokerName: string;
  readonly brokerId: number;
  brokerAddr: string;
  lastUpdateMs: number;
  heartbeatTimeoutMs: number;
  epoch: number;
  maxOffset: number;
  confirmOffset: number;
  electionPriority: number;
  asyncLearner: boolean;
  /** The connection the last heartbeat came on (channelKey), to push role changes; undefined if unknown. */
  channelId: string | undefined;
};

/** A master change, to tell brokers (NOTIFY_BROKER_ROLE_CHANGED) and subscribers once it is durable. */
export type MasterChange = {
  readonly clusterName: string;
  readonly brokerName: string;
  /** The new master, or null when the set has none now (or was removed). */
  readonly masterBrokerId: number | null;
  readonly masterAddress: string | null;
  readonly masterEpoch: number;
  readonly syncStateSetEpoch: number;
  readonly syncStateSet: readonly number[];
  /** Every replica's address at the time of the change, by broker id (BrokerMemberGroup.brokerAddrs). */
  readonly brokerAddrs: ReadonlyMap<number, string>;
};

/** What an operation left for the caller: persist first if durable, then announce the master changes. */
export type ControllerEffects = { readonly durable: boolean; readonly masterChanges: readonly MasterChange[] };

/** The common part of every result: RocketMQ's response code and remark. */
export type Outcome = { readonly code: number; readonly remark?: string };

/** The master as a response header carries it. */
export type MasterView = {
  readonly masterBrokerId: number;
  readonly masterAddress: string;
  readonly masterEpoch: number;
  readonly syncStateSetEpoch: number;
};

/** A heartbeat, as BrokerHeartbeatRequestHeader carries it. */
export type Heartbeat = {
  readonly clusterName: string;
  readonly brokerName: string;
  readonly brokerAddr: string;
  readonly brokerId: number | undefined;
  readonly epoch?: number | undefined;
  readonly maxOffset?: number | undefined;
  readonly confirmOffset?: number | undefined;
  readonly heartbeatTimeoutMs?: number | undefined;
  readonly electionPriority?: number | undefined;
  readonly asyncLearner?: boolean | undefined;
  readonly channelId?: string | undefined;
};

/** The answer to registerBroker. */
export type RegisterResult = Outcome & {
  /** The current master, when there is one and it is alive. */
  readonly master?: MasterView;
  readonly syncStateSet: readonly number[];
  readonly syncStateSetEpoch: number;
  /** No live master, and this broker would be a valid candidate: it should ask for an election. */
  readonly shouldElect: boolean;
};

/** The answer to alterSyncStateSet. */
export type AlterResult = Outcome & { readonly newSyncStateSetEpoch?: number; readonly syncStateSet?: readonly number[] };

/** An election request (ElectMasterRequestHeader); brokerId -1 means the controller triggered it. */
export type ElectRequest = {
  readonly clusterName: string;
  readonly brokerName: string;
  readonly brokerId: number;
  readonly designateElect: boolean;
};

/** The answer to electMaster. */
export type ElectResult = Outcome & {
  readonly brokerName: string;
  readonly masterBrokerId?: number;
  readonly masterAddress?: string;
  readonly masterEpoch?: number;
  readonly syncStateSetEpoch?: number;
  readonly syncStateSet?: readonly number[];
  /** Set when a new master was elected (ElectMasterResponseBody.brokerMemberGroup). */
  readonly brokerAddrs?: ReadonlyMap<number, string>;
  readonly clusterName?: string;
};

/** The answer to getReplicaInfo. */
export type ReplicaInfoResult = Outcome & {
  readonly masterBrokerId?: number;
  readonly masterAddress?: string;
  readonly masterEpoch?: number;
  readonly syncStateSet?: readonly number[];
  readonly syncStateSetEpoch?: number;
};

/** A CLEAN_BROKER_DATA request. */
export type CleanRequest = {
  readonly clusterName?: string | undefined;
  readonly brokerName: string;
  readonly brokerControllerIdsToClean?: string | undefined;
  readonly isCleanLivingBroker: boolean;
};

/** What a scan or a closed connection did: the brokers it forgot and the elections it ran. */
export type ScanResult = { readonly expired: readonly LiveBroker[]; readonly elections: readonly ElectResult[] };

/** A read-only copy of the whole state, for tests and admin. */
export type ControllerSnapshot = {
  readonly metadata: ControllerMetadataDocument;
  readonly live: readonly Omit<LiveBroker, 'channelId'>[];
};

const INT32_MAX = 0x7fff_ffff;
const FIRST_ID = ControllerNames.FIRST_BROKER_CONTROLLER_ID;
const CONTROLLER_TRIGGER = ControllerNames.CONTROLLER_TRIGGER_BROKER_ID;

function liveKey(clusterName: string, brokerName: string, brokerId: number): string {
  return `${clusterName}\u0000${brokerName}\u0000${brokerId}`;
}

function sorted(ids: Iterable<number>): number[] {
  return [...ids].sort((a, b) => a - b);
}

function addressesOf(set: BrokerSet): Map<number, string> {
  return new Map(sorted(set.replicas.keys()).map((id) => [id, set.replicas.get(id)!.brokerAddress] as const));
}

/** The controller's whole state; see the file comment. */
export class ControllerState {
  private readonly options: ControllerStateOptions;
  private readonly sets = new Map<string, BrokerSet>();
  private readonly live = new Map<string, LiveBroker>();
  private durableChanged = false;
  private masterChanges: MasterChange[] = [];

  constructor(options: ControllerStateOptions, document?: ControllerMetadataDocument) {
    assert(options.brokerSetsMax >= 1 && options.replicasPerSetMax >= 1 && options.liveBrokersMax >= 1, 'controller bounds are positive');
    this.options = options;
    if (document !== undefined) this.restore(document);
  }

  // ---------------------------------------------------------------------------------------- durable data

  /** Replaces the durable state with a document (load at start, or undo after a failed persist). */
  restore(document: ControllerMetadataDocument): void {
    assert(document.brokerSets.length <= this.options.brokerSetsMax, 'restored document within brokerSetsMax');
    this.sets.clear();
    for (const set of document.brokerSets) this.sets.set(set.brokerName, fromPersisted(set));
    this.durableChanged = false;
    this.masterChanges = [];
    this.checkInvariants();
  }

  /** The durable state as a document, sets and ids in a stable order. */
  toDocument(): ControllerMetadataDocument {
    const names = [...this.sets.keys()].sort();
    return { version: CONTROLLER_METADATA_VERSION, brokerSets: names.map((name) => toPersisted(this.sets.get(name)!)) };
  }

  /** Drains the effects of the operations since the last call. */
  takeEffects(): ControllerEffects {
    const effects = { durable: this.durableChanged, masterChanges: this.masterChanges };
    this.durableChanged = false;
    this.masterChanges = [];
    return effects;
  }

  /** A copy of everything, for the `state` ask. */
  snapshot(): ControllerSnapshot {
    const live = [...this.live.values()].map(({ channelId: _channel, ...rest }) => ({ ...rest }));
    return { metadata: this.toDocument(), live };
  }

  /** The broker set, read-only (tests). */
  brokerSet(brokerName: string): Readonly<BrokerSet> | undefined {
    return this.sets.get(brokerName);
  }

  /** Number of broker sets and of live-table entries. */
  sizes(): { readonly brokerSets: number; readonly liveBrokers: number } {
    return { brokerSets: this.sets.size, liveBrokers: this.live.size };
  }

  /** Asserts the invariants of controller-metadata.ts plus the bounds; cheap enough to run after each change. */
  checkInvariants(): void {
    assert(this.sets.size <= this.options.brokerSetsMax, 'broker sets within bound');
    assert(this.live.size <= this.options.liveBrokersMax, 'live table within bound');
    for (const set of this.sets.values()) {
      assert(set.replicas.size <= this.options.replicasPerSetMax, 'replicas within bound');
      for (const id of set.replicas.keys()) assert(id >= FIRST_ID && id < set.nextAssignBrokerId, 'replica ids below nextAssignBrokerId');
      for (const id of set.syncStateSet) assert(set.replicas.has(id), 'syncStateSet holds replicas only');
      if (set.masterBrokerId !== undefined) assert(set.syncStateSet.has(set.masterBrokerId), 'the master is in the syncStateSet');
      assert(set.masterEpoch >= 0 && set.masterEpoch <= INT32_MAX && set.syncStateSetEpoch >= 0 && set.syncStateSetEpoch <= INT32_MAX, 'epochs are int32');
    }
  }

  // ---------------------------------------------------------------------------------------- liveness

  /** Whether the replica heartbeated within its timeout (DefaultBrokerHeartbeatManager.isBrokerActive). */
  isAlive(clusterName: string, brokerName: string, brokerId: number, nowMs: number): boolean {
    const info = this.live.get(liveKey(clusterName, brokerName, brokerId));
    return info !== undefined && info.lastUpdateMs + info.heartbeatTimeoutMs >= nowMs;
  }

  /** The live-table entry of a replica, if any. */
  liveInfo(clusterName: string, brokerName: string, brokerId: number): Readonly<LiveBroker> | undefined {
    return this.live.get(liveKey(clusterName, brokerName, brokerId));
  }

  /** The connections (channelKey) the live table names. */
  liveChannelIds(): Set<string> {
    const ids = new Set<string>();
    for (const info of this.live.values()) if (info.channelId !== undefined) ids.add(info.channelId);
    return ids;
  }

  private isLearner(set: BrokerSet, brokerId: number): boolean {
    return this.live.get(liveKey(set.clusterName, set.brokerName, brokerId))?.asyncLearner === true;
  }

  /** Alive and not an async learner: may be master or in the SyncStateSet. */
  private isEligible(set: BrokerSet, brokerId: number, nowMs: number): boolean {
    return this.isAlive(set.clusterName, set.brokerName, brokerId, nowMs) && !this.isLearner(set, brokerId);
  }

  /**
   * Forgets every heartbeat and counts every replica alive until nowMs + timeoutMs, as if each had just
   * heartbeated with no epoch or offset to report. A controller taking over from another has no heartbeat
   * history; without this it would count a live master dead and elect another while that master still
   * holds its lease. Replicas are taken masters first, up to liveBrokersMax. Returns how many were taken.
   * An async learner counts as an ordinary replica until its own heartbeat says otherwise; it is never in
   * a SyncStateSet, so only an unclean election in that window could pick it.
   */
  assumeAlive(nowMs: number, timeoutMs: number): number {
    assert(Number.isSafeInteger(timeoutMs) && timeoutMs > 0, 'an assumed-alive window is positive');
    this.live.clear();
    const sets = [...this.sets.values()];
    const order = (set: BrokerSet): number[] => sorted(set.replicas.keys()).sort((a, b) => Number(b === set.masterBrokerId) - Number(a === set.masterBrokerId));
    const picks = sets.flatMap((set) => order(set).map((id, rank) => ({ set, id, rank })));
    picks.sort((a, b) => a.rank - b.rank);
    for (const { set, id } of picks.slice(0, this.options.liveBrokersMax)) {
      this.live.set(liveKey(set.clusterName, set.brokerName, id), {
        clusterName: set.clusterName,
        brokerName: set.brokerName,
        brokerId: id,
        brokerAddr: set.replicas.get(id)!.brokerAddress,
        lastUpdateMs: nowMs,
        heartbeatTimeoutMs: timeoutMs,
        epoch: -1,
        maxOffset: -1,
        confirmOffset: -1,
        electionPriority: ControllerNames.DEFAULT_ELECTION_PRIORITY,
        asyncLearner: false,
        channelId: undefined,
      });
    }
    this.checkInvariants();
    return this.live.size;
  }

  /** Records a heartbeat (onBrokerHeartbeat): newer epoch / offset replace older ones, never the reverse. */
  heartbeat(beat: Heartbeat, nowMs: number): Outcome {
    if (beat.brokerId === undefined) return { code: ResponseCode.CONTROLLER_INVALID_REQUEST, remark: 'Heart beat with empty brokerId' };
    const key = liveKey(beat.clusterName, beat.brokerName, beat.brokerId);
    const epoch = beat.epoch ?? -1;
    const maxOffset = beat.maxOffset ?? -1;
    const timeoutMs = beat.heartbeatTimeoutMs ?? ControllerNames.DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS;
    const priority = beat.electionPriority ?? ControllerNames.DEFAULT_ELECTION_PRIORITY;
    const prev = this.live.get(key);
    if (prev === undefined) {
      if (this.live.size >= this.options.liveBrokersMax) {
        return { code: ResponseCode.SYSTEM_BUSY, remark: `the controller tracks ${this.options.liveBrokersMax} brokers already` };
      }
      this.live.set(key, {
        clusterName: beat.clusterName,
        brokerName: beat.brokerName,
        brokerId: beat.brokerId,
        brokerAddr: beat.brokerAddr,
        lastUpdateMs: nowMs,
        heartbeatTimeoutMs: timeoutMs,
        epoch,
        maxOffset,
        confirmOffset: beat.confirmOffset ?? -1,
        electionPriority: priority,
        asyncLearner: beat.asyncLearner ?? false,
        channelId: beat.channelId,
      });
      return { code: ResponseCode.SUCCESS, remark: 'Heart beat success' };
    }
    prev.lastUpdateMs = nowMs;
    prev.heartbeatTimeoutMs = timeoutMs;
    prev.electionPriority = priority;
    prev.brokerAddr = beat.brokerAddr;
    if (beat.asyncLearner !== undefined) prev.asyncLearner = beat.asyncLearner;
    if (beat.channelId !== undefined) prev.channelId = beat.channelId;
    if (epoch > prev.epoch || (epoch === prev.epoch && maxOffset > prev.maxOffset)) {
      prev.epoch = epoch;
      prev.maxOffset = maxOffset;
      prev.confirmOffset = beat.confirmOffset ?? -1;
    }
    return { code: ResponseCode.SUCCESS, remark: 'Heart beat success' };
  }

  /** Forgets brokers silent past their timeout, then re-elects where the master is gone (see reelect). */
  scan(nowMs: number): ScanResult {
    const expired: LiveBroker[] = [];
    for (const [key, info] of this.live) {
      if (nowMs - info.lastUpdateMs > info.heartbeatTimeoutMs) {
        this.live.delete(key);
        expired.push(info);
      }
    }
    return { expired, elections: this.reelect(expired, nowMs) };
  }

  /** Forgets the brokers whose heartbeats came on a closed connection (onBrokerChannelClose), then re-elects. */
  channelClosed(channelId: string, nowMs: number): ScanResult {
    const gone: LiveBroker[] = [];
    for (const [key, info] of this.live) {
      if (info.channelId === channelId) {
        this.live.delete(key);
        gone.push(info);
      }
    }
    return { expired: gone, elections: this.reelect(gone, nowMs) };
  }

  /**
   * Elects a new master where the master just went inactive (onBrokerInactive) or is inactive while
   * another replica is alive (scanNeedReelectBrokerSets), as the controller itself (brokerId -1).
   */
  private reelect(inactive: readonly LiveBroker[], nowMs: number): ElectResult[] {
    const elections: ElectResult[] = [];
    for (const set of this.sets.values()) {
      const master = set.masterBrokerId;
      if (master === undefined) continue;
      const justInactive = inactive.some((b) => b.brokerName === set.brokerName && b.clusterName === set.clusterName && b.brokerId === master);
      const masterAlive = this.isAlive(set.clusterName, set.brokerName, master, nowMs);
      const othersAlive = [...set.replicas.keys()].some((id) => this.isAlive(set.clusterName, set.brokerName, id, nowMs));
      if (justInactive || (!masterAlive && othersAlive)) {
        elections.push(this.electMaster({ clusterName: set.clusterName, brokerName: set.brokerName, brokerId: CONTROLLER_TRIGGER, designateElect: false }, nowMs));
      }
    }
    return elections;
  }

  // ---------------------------------------------------------------------------------------- broker ids

  /** CONTROLLER_GET_NEXT_BROKER_ID: the id a new replica should apply for. */
  getNextBrokerId(brokerName: string): Outcome & { readonly nextBrokerId: number } {
    return { code: ResponseCode.SUCCESS, nextBrokerId: this.sets.get(brokerName)?.nextAssignBrokerId ?? FIRST_ID };
  }

  /** CONTROLLER_APPLY_BROKER_ID: claims an id for the broker whose registerCheckCode is `address;time`. */
  applyBrokerId(clusterName: string, brokerName: string, brokerId: number, registerCheckCode: string): Outcome {
    const brokerAddress = registerCheckCode.split(ControllerNames.SEPARATOR)[0] ?? '';
    if (!Number.isSafeInteger(brokerId) || brokerId < FIRST_ID) {
      return { code: ResponseCode.CONTROLLER_BROKER_ID_INVALID, remark: `Broker id must be >= ${FIRST_ID}, not ${brokerId}` };
    }
    const set = this.sets.get(brokerName);
    if (set === undefined) {
      if (brokerId !== FIRST_ID) {
        return {
          code: ResponseCode.CONTROLLER_BROKER_ID_INVALID,
          remark: `Broker-set: ${brokerName} hasn't been registered in controller, but broker try to apply brokerId: ${brokerId}`,
        };
      }
      if (this.sets.size >= this.options.brokerSetsMax) {
        return { code: ResponseCode.SYSTEM_BUSY, remark: `the controller holds ${this.options.brokerSetsMax} broker sets already` };
      }
      const created: BrokerSet = {
        clusterName,
        brokerName,
        nextAssignBrokerId: FIRST_ID + 1,
        masterBrokerId: undefined,
        masterEpoch: 0,
        syncStateSet: new Set(),
        syncStateSetEpoch: 0,
        replicas: new Map([[brokerId, { brokerId, brokerAddress, registerCheckCode }]]),
      };
      this.sets.set(brokerName, created);
      this.durableChanged = true;
      return { code: ResponseCode.SUCCESS };
    }
    const existing = set.replicas.get(brokerId);
    if (existing !== undefined) {
      if (existing.registerCheckCode === registerCheckCode) return { code: ResponseCode.SUCCESS };
      return { code: ResponseCode.CONTROLLER_BROKER_ID_INVALID, remark: `Fail to apply brokerId: ${brokerId} in broker-set: ${brokerName}` };
    }
    if (set.replicas.size >= this.options.replicasPerSetMax) {
      return { code: ResponseCode.SYSTEM_BUSY, remark: `broker set ${brokerName} has ${this.options.replicasPerSetMax} replicas already` };
    }
    set.replicas.set(brokerId, { brokerId, brokerAddress, registerCheckCode });
    set.nextAssignBrokerId = Math.max(set.nextAssignBrokerId, brokerId + 1);
    this.durableChanged = true;
    return { code: ResponseCode.SUCCESS };
  }

  // ---------------------------------------------------------------------------------------- registration

  /** CONTROLLER_REGISTER_BROKER: the current master if alive; updates a changed address. */
  registerBroker(
    request: { readonly clusterName: string; readonly brokerName: string; readonly brokerId: number; readonly brokerAddress: string; readonly asyncLearner?: boolean | undefined },
    nowMs: number,
  ): RegisterResult {
    const set = this.sets.get(request.brokerName);
    const none = { syncStateSet: [], syncStateSetEpoch: 0, shouldElect: false };
    if (set === undefined) {
      return { ...none, code: ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED, remark: `Broker-set: ${request.brokerName} hasn't been registered in controller` };
    }
    const replica = set.replicas.get(request.brokerId);
    if (replica === undefined) {
      return {
        ...none,
        code: ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
        remark: `BrokerId: ${request.brokerId} hasn't been registered in broker-set: ${request.brokerName}`,
      };
    }
    if (replica.brokerAddress !== request.brokerAddress) {
      replica.brokerAddress = request.brokerAddress;
      this.durableChanged = true;
    }
    const liveEntry = this.live.get(liveKey(set.clusterName, set.brokerName, request.brokerId));
    if (liveEntry !== undefined && request.asyncLearner !== undefined) liveEntry.asyncLearner = request.asyncLearner;
    const syncStateSet = sorted(set.syncStateSet);
    const master = set.masterBrokerId;
    if (master !== undefined && this.isAlive(set.clusterName, set.brokerName, master, nowMs)) {
      const view: MasterView = {
        masterBrokerId: master,
        masterAddress: set.replicas.get(master)!.brokerAddress,
        masterEpoch: set.masterEpoch,
        syncStateSetEpoch: set.syncStateSetEpoch,
      };
      return { code: ResponseCode.SUCCESS, master: view, syncStateSet, syncStateSetEpoch: set.syncStateSetEpoch, shouldElect: false };
    }
    const canLead =
      !this.isLearner(set, request.brokerId) &&
      (set.masterEpoch === 0 || set.syncStateSet.has(request.brokerId) || this.options.enableElectUncleanMaster);
    return { code: ResponseCode.SUCCESS, syncStateSet, syncStateSetEpoch: set.syncStateSetEpoch, shouldElect: canLead };
  }

  // ---------------------------------------------------------------------------------------- sync state set

  /** CONTROLLER_ALTER_SYNC_STATE_SET: the master changes its SyncStateSet, fenced by both epochs. */
  alterSyncStateSet(
    request: { readonly brokerName: string; readonly masterBrokerId: number; readonly masterEpoch: number },
    proposed: { readonly syncStateSet: readonly number[]; readonly syncStateSetEpoch: number },
    nowMs: number,
  ): AlterResult {
    const set = this.sets.get(request.brokerName);
    const failed = ResponseCode.CONTROLLER_ALTER_SYNC_STATE_SET_FAILED;
    if (set === undefined) return { code: failed, remark: 'Broker metadata is not existed' };
    const next = new Set(proposed.syncStateSet);
    if (next.size === set.syncStateSet.size && [...next].every((id) => set.syncStateSet.has(id))) {
      return { code: failed, remark: 'The newSyncStateSet is equal with oldSyncStateSet, no needed to update syncStateSet' };
    }
    if (set.masterBrokerId === undefined || set.masterBrokerId !== request.masterBrokerId) {
      return {
        code: ResponseCode.CONTROLLER_INVALID_MASTER,
        remark: `Rejecting alter syncStateSet request because the current leader is:{${set.masterBrokerId ?? null}}, not {${request.masterBrokerId}}`,
      };
    }
    if (request.masterEpoch !== set.masterEpoch) {
      return {
        code: ResponseCode.CONTROLLER_FENCED_MASTER_EPOCH,
        remark: `Rejecting alter syncStateSet request because the current master epoch is:{${set.masterEpoch}}, not {${request.masterEpoch}}`,
      };
    }
    if (proposed.syncStateSetEpoch !== set.syncStateSetEpoch) {
      return {
        code: ResponseCode.CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH,
        remark: `Rejecting alter syncStateSet request because the current syncStateSet epoch is:{${set.syncStateSetEpoch}}, not {${proposed.syncStateSetEpoch}}`,
      };
    }
    for (const id of next) {
      if (!set.replicas.has(id)) {
        return { code: ResponseCode.CONTROLLER_INVALID_REPLICAS, remark: `Rejecting alter syncStateSet request because the replicas {${id}} don't exist` };
      }
      if (!this.isAlive(set.clusterName, set.brokerName, id, nowMs)) {
        return { code: ResponseCode.CONTROLLER_BROKER_NOT_ALIVE, remark: `Rejecting alter syncStateSet request because the replicas {${id}} don't alive` };
      }
      if (this.isLearner(set, id)) {
        return { code: ResponseCode.CONTROLLER_INVALID_REPLICAS, remark: `Rejecting alter syncStateSet request because the replica {${id}} is an async learner` };
      }
    }
    if (!next.has(set.masterBrokerId)) {
      return {
        code: failed,
        remark: `Rejecting alter syncStateSet request because the newSyncStateSet don't contains origin leader {${set.masterBrokerId}}`,
      };
    }
    set.syncStateSet = next;
    set.syncStateSetEpoch += 1;
    this.durableChanged = true;
    return { code: ResponseCode.SUCCESS, newSyncStateSetEpoch: set.syncStateSetEpoch, syncStateSet: sorted(next) };
  }

  // ---------------------------------------------------------------------------------------- elections

  /** DefaultElectPolicy.tryElect over one candidate group; undefined when it yields nobody. */
  private tryElect(set: BrokerSet, candidates: Iterable<number>, oldMaster: number | undefined, prefer: number | undefined, nowMs: number): number | undefined {
    const valid = [...candidates].filter((id) => set.replicas.has(id) && this.isEligible(set, id, nowMs));
    if (valid.length === 0) return undefined;
    if (oldMaster !== undefined && valid.includes(oldMaster) && (prefer === undefined || prefer === oldMaster)) return oldMaster;
    if (prefer !== undefined) return valid.includes(prefer) ? prefer : undefined;
    // Highest (epoch, maxOffset), then lowest electionPriority value (1 outranks 2), then lowest id.
    const info = (id: number): LiveBroker => this.live.get(liveKey(set.clusterName, set.brokerName, id))!;
    valid.sort((a, b) => {
      const x = info(a);
      const y = info(b);
      if (x.epoch !== y.epoch) return y.epoch - x.epoch;
      if (x.maxOffset !== y.maxOffset) return y.maxOffset - x.maxOffset;
      if (x.electionPriority !== y.electionPriority) return x.electionPriority - y.electionPriority;
      return a - b;
    });
    return valid[0];
  }

  /** DefaultElectPolicy.elect: the SyncStateSet first, then (enableElectUncleanMaster) every replica. */
  private electByPolicy(set: BrokerSet, prefer: number | undefined, nowMs: number): number | undefined {
    const clean = this.tryElect(set, set.syncStateSet, set.masterBrokerId, prefer, nowMs);
    if (clean !== undefined || !this.options.enableElectUncleanMaster) return clean;
    return this.tryElect(set, set.replicas.keys(), set.masterBrokerId, prefer, nowMs);
  }

  /** CONTROLLER_ELECT_MASTER (and the controller's own re-elections, brokerId -1). */
  electMaster(request: ElectRequest, nowMs: number): ElectResult {
    const set = this.sets.get(request.brokerName);
    if (set === undefined) {
      return { code: ResponseCode.CONTROLLER_BROKER_NEED_TO_BE_REGISTERED, remark: "Broker hasn't been registered", brokerName: request.brokerName };
    }
    const byController = request.brokerId === CONTROLLER_TRIGGER;
    const oldMaster = set.masterBrokerId;
    let newMaster: number | undefined;
    if (set.masterEpoch === 0 && !byController && set.replicas.has(request.brokerId) && !this.isLearner(set, request.brokerId)) {
      newMaster = request.brokerId; // The set never had a master: the first broker to ask becomes it.
    }
    newMaster ??= this.electByPolicy(set, request.designateElect && !byController ? request.brokerId : undefined, nowMs);
    if (newMaster !== undefined && newMaster === oldMaster) {
      return {
        ...this.viewOf(set, oldMaster),
        code: ResponseCode.CONTROLLER_MASTER_STILL_EXIST,
        remark: `The old master ${oldMaster} is still alive, not need to elect new master for broker ${set.brokerName}`,
      };
    }
    if (newMaster !== undefined) {
      set.masterBrokerId = newMaster;
      set.masterEpoch += 1;
      set.syncStateSet = new Set([newMaster]);
      set.syncStateSetEpoch += 1;
      this.recordMasterChange(set);
      return { ...this.viewOf(set, newMaster), code: ResponseCode.SUCCESS, brokerAddrs: addressesOf(set) };
    }
    if (!byController) return { code: ResponseCode.CONTROLLER_ELECT_MASTER_FAILED, remark: 'Failed to elect a new master', brokerName: set.brokerName };
    if (oldMaster !== undefined) {
      // The master is gone and nobody can replace it. The SyncStateSet stays as it was (the old master
      // included), so that whichever of its members comes back first can be elected cleanly.
      set.masterBrokerId = undefined;
      set.masterEpoch += 1;
      this.recordMasterChange(set);
    }
    return {
      code: ResponseCode.CONTROLLER_MASTER_NOT_AVAILABLE,
      remark: 'Old master has down and failed to elect a new broker master',
      brokerName: set.brokerName,
      clusterName: set.clusterName,
      masterEpoch: set.masterEpoch,
      syncStateSetEpoch: set.syncStateSetEpoch,
      syncStateSet: sorted(set.syncStateSet),
    };
  }

  private viewOf(set: BrokerSet, master: number): ElectResult {
    return {
      code: ResponseCode.SUCCESS,
      brokerName: set.brokerName,
      clusterName: set.clusterName,
      masterBrokerId: master,
      masterAddress: set.replicas.get(master)!.brokerAddress,
      masterEpoch: set.masterEpoch,
      syncStateSetEpoch: set.syncStateSetEpoch,
      syncStateSet: sorted(set.syncStateSet),
    };
  }

  private recordMasterChange(set: BrokerSet, removed = false): void {
    const master = removed ? undefined : set.masterBrokerId;
    this.durableChanged = true;
    this.masterChanges.push({
      clusterName: set.clusterName,
      brokerName: set.brokerName,
      masterBrokerId: master ?? null,
      masterAddress: master === undefined ? null : set.replicas.get(master)!.brokerAddress,
      masterEpoch: set.masterEpoch,
      syncStateSetEpoch: set.syncStateSetEpoch,
      syncStateSet: sorted(set.syncStateSet),
      brokerAddrs: addressesOf(set),
    });
  }

  // ---------------------------------------------------------------------------------------- queries

  /** CONTROLLER_GET_REPLICA_INFO. */
  getReplicaInfo(brokerName: string): ReplicaInfoResult {
    const set = this.sets.get(brokerName);
    if (set === undefined) return { code: ResponseCode.CONTROLLER_BROKER_METADATA_NOT_EXIST, remark: 'Broker metadata is not existed' };
    const master = set.masterBrokerId;
    return {
      code: ResponseCode.SUCCESS,
      ...(master === undefined ? {} : { masterBrokerId: master, masterAddress: set.replicas.get(master)!.brokerAddress }),
      masterEpoch: set.masterEpoch,
      syncStateSet: sorted(set.syncStateSet),
      syncStateSetEpoch: set.syncStateSetEpoch,
    };
  }

  /** CONTROLLER_GET_SYNC_STATE_DATA: every named set's replicas, split by SyncStateSet membership. */
  getSyncStateData(brokerNames: readonly string[], nowMs: number): BrokerReplicasInfo {
    const table = new Map<string, ReplicasInfo>();
    for (const name of brokerNames) {
      const set = this.sets.get(name);
      if (set === undefined) continue;
      const inSync: ReplicaIdentity[] = [];
      const notInSync: ReplicaIdentity[] = [];
      for (const id of sorted(set.replicas.keys())) {
        const replica: ReplicaIdentity = {
          brokerName: name,
          brokerId: id,
          brokerAddress: set.replicas.get(id)!.brokerAddress,
          alive: this.isAlive(set.clusterName, name, id, nowMs),
        };
        (set.syncStateSet.has(id) ? inSync : notInSync).push(replica);
      }
      const master = set.masterBrokerId;
      table.set(name, {
        ...(master === undefined ? {} : { masterBrokerId: master, masterAddress: set.replicas.get(master)!.brokerAddress }),
        masterEpoch: set.masterEpoch,
        syncStateSetEpoch: set.syncStateSetEpoch,
        inSyncReplicas: inSync,
        notInSyncReplicas: notInSync,
      });
    }
    return { replicasInfoTable: table };
  }

  // ---------------------------------------------------------------------------------------- cleaning

  /** CLEAN_BROKER_DATA (mqadmin cleanBrokerMetadata): forgets a whole set, or some of its ids. */
  cleanBrokerData(request: CleanRequest, nowMs: number): Outcome {
    const invalid = ResponseCode.CONTROLLER_INVALID_CLEAN_BROKER_METADATA;
    const set = this.sets.get(request.brokerName);
    const idsText = (request.brokerControllerIdsToClean ?? '').trim();
    let ids: number[] | undefined;
    if (idsText !== '') {
      ids = [];
      for (const part of idsText.split(ControllerNames.SEPARATOR)) {
        const id = /^[+-]?\d+$/.test(part.trim()) ? Number(part.trim()) : Number.NaN;
        if (!Number.isSafeInteger(id)) {
          return { code: invalid, remark: `Please set the option <brokerControllerIdsToClean> according to the format, exception: bad id ${JSON.stringify(part)}` };
        }
        ids.push(id);
      }
    }
    if (!request.isCleanLivingBroker) {
      if (ids === undefined && set !== undefined && set.masterBrokerId !== undefined) {
        return { code: invalid, remark: `Broker ${request.brokerName} is still alive, clean up failure` };
      }
      const clusterName = request.clusterName ?? set?.clusterName ?? '';
      for (const id of ids ?? []) {
        if (this.isAlive(clusterName, request.brokerName, id, nowMs)) {
          return { code: invalid, remark: `Broker [${request.brokerName},  ${id}] is still alive, clean up failure` };
        }
      }
    }
    if (set === undefined) return { code: invalid, remark: `Broker ${request.brokerName} is not existed,clean broker data failure.` };
    if (ids === undefined) {
      this.removeSet(set);
      return { code: ResponseCode.SUCCESS };
    }
    const hadMaster = set.masterBrokerId;
    for (const id of ids) {
      if (set.replicas.delete(id)) this.durableChanged = true;
      if (set.syncStateSet.delete(id)) this.durableChanged = true;
    }
    if (set.replicas.size === 0) {
      this.removeSet(set);
      return { code: ResponseCode.SUCCESS };
    }
    if (hadMaster !== undefined && !set.replicas.has(hadMaster)) {
      set.masterBrokerId = undefined;
      set.masterEpoch += 1;
      this.recordMasterChange(set);
    }
    return { code: ResponseCode.SUCCESS };
  }

  private removeSet(set: BrokerSet): void {
    this.sets.delete(set.brokerName);
    this.durableChanged = true;
    if (set.masterBrokerId !== undefined) {
      set.masterEpoch += 1;
      this.recordMasterChange(set, true);
    }
  }
}

function fromPersisted(set: PersistedBrokerSet): BrokerSet {
  return {
    clusterName: set.clusterName,
    brokerName: set.brokerName,
    nextAssignBrokerId: set.nextAssignBrokerId,
    masterBrokerId: set.masterBrokerId ?? undefined,
    masterEpoch: set.masterEpoch,
    syncStateSet: new Set(set.syncStateSet),
    syncStateSetEpoch: set.syncStateSetEpoch,
    replicas: new Map(set.replicas.map((r) => [r.brokerId, { ...r }] as const)),
  };
}

function toPersisted(set: BrokerSet): PersistedBrokerSet {
  return {
    clusterName: set.clusterName,
    brokerName: set.brokerName,
    nextAssignBrokerId: set.nextAssignBrokerId,
    masterBrokerId: set.masterBrokerId ?? null,
    masterEpoch: set.masterEpoch,
    syncStateSet: sorted(set.syncStateSet),
    syncStateSetEpoch: set.syncStateSetEpoch,
    replicas: sorted(set.replicas.keys()).map((id) => ({ ...set.replicas.get(id)! })),
  };
}
