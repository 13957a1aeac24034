/**
 * The RocketMQ 5 Controller's Remoting protocol: the CommandCustomHeader classes of
 * remoting/protocol/header/controller/*.java (plus BrokerHeartbeatRequestHeader and
 * NotifyBrokerRoleChangedRequestHeader) as header codecs, and the fastjson bodies the controller reads and
 * writes (remoting/protocol/body: SyncStateSet, ElectMasterResponseBody, BrokerReplicasInfo,
 * EpochEntryCache). Checked against apache/rocketmq 8fc57f1468d182eea11c01e089c0250d647dc5f3.
 *
 * | code | request                        | request header / body                         | response header / body                    |
 * |------|--------------------------------|-----------------------------------------------|-------------------------------------------|
 * | 1001 | CONTROLLER_ALTER_SYNC_STATE_SET| AlterSyncStateSetRequestHeader / SyncStateSet | AlterSyncStateSetResponseHeader / SyncStateSet |
 * | 1002 | CONTROLLER_ELECT_MASTER        | ElectMasterRequestHeader                      | ElectMasterResponseHeader / ElectMasterResponseBody |
 * | 1003 | CONTROLLER_REGISTER_BROKER     | RegisterBrokerToControllerRequestHeader       | RegisterBrokerToControllerResponseHeader / SyncStateSet |
 * | 1004 | CONTROLLER_GET_REPLICA_INFO    | GetReplicaInfoRequestHeader                   | GetReplicaInfoResponseHeader / SyncStateSet |
 * | 1005 | CONTROLLER_GET_METADATA_INFO   | -                                             | GetMetaDataResponseHeader                 |
 * | 1006 | CONTROLLER_GET_SYNC_STATE_DATA | - / JSON list of broker names                 | - / BrokerReplicasInfo                    |
 * | 1007 | GET_BROKER_EPOCH_CACHE (broker)| -                                             | - / EpochEntryCache                       |
 * | 1008 | NOTIFY_BROKER_ROLE_CHANGED     | NotifyBrokerRoleChangedRequestHeader / SyncStateSet (to the broker, oneway) | - |
 * | 1010 | GET_CONTROLLER_CONFIG          | -                                             | - / properties text                       |
 * | 1011 | CLEAN_BROKER_DATA              | CleanControllerBrokerDataRequestHeader        | -                                         |
 * | 1012 | CONTROLLER_GET_NEXT_BROKER_ID  | GetNextBrokerIdRequestHeader                  | GetNextBrokerIdResponseHeader             |
 * | 1013 | CONTROLLER_APPLY_BROKER_ID     | ApplyBrokerIdRequestHeader                    | ApplyBrokerIdResponseHeader               |
 * | 904  | BROKER_HEARTBEAT (controller)  | BrokerHeartbeatRequestHeader                  | -                                         |
 *
 * Header field names are the Java field names (Remoting encodes headers by reflection), so GetMetaData's
 * boolean travels as `isLeader` and CleanControllerBrokerData's as `isCleanLivingBroker`. A field Java
 * dereferences unconditionally (the processor would throw a NullPointerException, answered SYSTEM_ERROR) is
 * required here, so its absence is the same SYSTEM_ERROR, with a clearer remark.
 *
 * Bodies are fastjson text: bean fields in alphabetical order, nulls left out, Map<Long, String> keys bare
 * (`{1:"10.0.0.1:10911"}`). Readers accept both bare and quoted keys.
 *
 * One extension: BrokerHeartbeatRequestHeader and RegisterBrokerToControllerRequestHeader may carry
 * `asyncLearner` (MessageStoreConfig.asyncLearner). Java brokers never send it (their learners stay out of
 * the SyncStateSet on the master's side); ours do, so the controller can refuse a learner as master or
 * SyncStateSet member even in an unclean election.
 */
import { z } from 'zod';
import { parseHostPort } from '../../config/address.ts';
import { defineHeader, type HeaderValue } from './broker-headers.ts';
import { formatFastjson, parseFastjson, toPlainJson, type FastjsonInput } from './fastjson.ts';

// ---------------------------------------------------------------------------------------------------
// Constants

/** RocketMQ's controller constants (MixAll, BrokerHeartbeatManager, ControllerConfig). */
export const ControllerNames = {
  /** MixAll.FIRST_BROKER_CONTROLLER_ID: the id the first broker of a new broker set applies for. */
  FIRST_BROKER_CONTROLLER_ID: 1,
  /** BrokerHeartbeatManager.DEFAULT_BROKER_CHANNEL_EXPIRED_TIME: heartbeat timeout when a broker gives none. */
  DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS: 10_000,
  /** The electionPriority of a broker that reports none (Integer.MAX_VALUE: the lowest priority). */
  DEFAULT_ELECTION_PRIORITY: 0x7fff_ffff,
  /** Separator of registerCheckCode, `address;timestamp`, and of brokerControllerIdsToClean. */
  SEPARATOR: ';',
  /** ElectMasterRequestHeader.brokerId when the controller itself triggers the election. */
  CONTROLLER_TRIGGER_BROKER_ID: -1,
} as const;

/** Most controllers one controllerDLegerPeers list may name. */
export const CONTROLLER_PEERS_MAX = 64;

/** Most broker names one CONTROLLER_GET_SYNC_STATE_DATA body may list. */
export const SYNC_STATE_DATA_NAMES_MAX = 4096;

/** Most ids one SyncStateSet body may carry; no broker set has more replicas than this. */
export const SYNC_STATE_SET_IDS_MAX = 1024;

/** Largest controller request body we parse. */
export const CONTROLLER_BODY_BYTES_MAX = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Headers

const str = {
  must: (wire: string) => ({ kind: 'string', wire, required: true }) as const,
  may: (wire: string) => ({ kind: 'string', wire, required: false }) as const,
  orElse: (wire: string, fallback: string) => ({ kind: 'string', wire, required: false, fallback }) as const,
};
const int = {
  must: (wire: string) => ({ kind: 'int', wire, required: true }) as const,
  may: (wire: string) => ({ kind: 'int', wire, required: false }) as const,
};
const long = {
  must: (wire: string) => ({ kind: 'long', wire, required: true }) as const,
  may: (wire: string) => ({ kind: 'long', wire, required: false }) as const,
  orElse: (wire: string, fallback: number) => ({ kind: 'long', wire, required: false, fallback }) as const,
};
const bool = {
  may: (wire: string) => ({ kind: 'bool', wire, required: false }) as const,
  orElse: (wire: string, fallback: boolean) => ({ kind: 'bool', wire, required: false, fallback }) as const,
};

/** AlterSyncStateSetRequestHeader (body: SyncStateSet). */
export const AlterSyncStateSetRequestHeader = defineHeader('AlterSyncStateSetRequestHeader', {
  brokerName: str.must('brokerName'),
  masterBrokerId: long.must('masterBrokerId'),
  masterEpoch: int.must('masterEpoch'),
  invokeTime: long.may('invokeTime'),
});

/** AlterSyncStateSetResponseHeader. */
export const AlterSyncStateSetResponseHeader = defineHeader('AlterSyncStateSetResponseHeader', {
  newSyncStateSetEpoch: int.must('newSyncStateSetEpoch'),
});

/** ElectMasterRequestHeader; brokerId -1 means the controller triggered it (ofControllerTrigger). */
export const ElectMasterRequestHeader = defineHeader('ElectMasterRequestHeader', {
  clusterName: str.orElse('clusterName', ''),
  brokerName: str.orElse('brokerName', ''),
  brokerId: long.orElse('brokerId', ControllerNames.CONTROLLER_TRIGGER_BROKER_ID),
  designateElect: bool.orElse('designateElect', false),
  invokeTime: long.may('invokeTime'),
});

/** The master fields shared by several response headers. */
const MASTER_FIELDS = {
  masterBrokerId: long.may('masterBrokerId'),
  masterAddress: str.may('masterAddress'),
  masterEpoch: int.may('masterEpoch'),
} as const;

/** ElectMasterResponseHeader (body: ElectMasterResponseBody). */
export const ElectMasterResponseHeader = defineHeader('ElectMasterResponseHeader', {
  ...MASTER_FIELDS,
  syncStateSetEpoch: int.may('syncStateSetEpoch'),
});

/** GetMetaDataResponseHeader: who leads the controller group. */
export const GetMetaDataResponseHeader = defineHeader('GetMetaDataResponseHeader', {
  group: str.may('group'),
  controllerLeaderId: str.may('controllerLeaderId'),
  controllerLeaderAddress: str.may('controllerLeaderAddress'),
  isLeader: bool.orElse('isLeader', false),
  peers: str.may('peers'),
});

/** GetReplicaInfoRequestHeader. */
export const GetReplicaInfoRequestHeader = defineHeader('GetReplicaInfoRequestHeader', {
  brokerName: str.must('brokerName'),
});

/** GetReplicaInfoResponseHeader (body: SyncStateSet). */
export const GetReplicaInfoResponseHeader = defineHeader('GetReplicaInfoResponseHeader', MASTER_FIELDS);

/** CleanControllerBrokerDataRequestHeader (mqadmin cleanBrokerMetadata). */
export const CleanControllerBrokerDataRequestHeader = defineHeader('CleanControllerBrokerDataRequestHeader', {
  clusterName: str.may('clusterName'),
  brokerName: str.must('brokerName'),
  brokerControllerIdsToClean: str.may('brokerControllerIdsToClean'),
  isCleanLivingBroker: bool.orElse('isCleanLivingBroker', false),
  invokeTime: long.may('invokeTime'),
});

/** GetNextBrokerIdRequestHeader. */
export const GetNextBrokerIdRequestHeader = defineHeader('GetNextBrokerIdRequestHeader', {
  clusterName: str.may('clusterName'),
  brokerName: str.must('brokerName'),
});

/** GetNextBrokerIdResponseHeader. */
export const GetNextBrokerIdResponseHeader = defineHeader('GetNextBrokerIdResponseHeader', {
  clusterName: str.may('clusterName'),
  brokerName: str.may('brokerName'),
  nextBrokerId: long.may('nextBrokerId'),
});

/** ApplyBrokerIdRequestHeader; registerCheckCode is `brokerAddress;timestamp`. */
export const ApplyBrokerIdRequestHeader = defineHeader('ApplyBrokerIdRequestHeader', {
  clusterName: str.must('clusterName'),
  brokerName: str.must('brokerName'),
  appliedBrokerId: long.must('appliedBrokerId'),
  registerCheckCode: str.must('registerCheckCode'),
});

/** ApplyBrokerIdResponseHeader. */
export const ApplyBrokerIdResponseHeader = defineHeader('ApplyBrokerIdResponseHeader', {
  clusterName: str.may('clusterName'),
  brokerName: str.may('brokerName'),
});

/** RegisterBrokerToControllerRequestHeader (+ our optional `asyncLearner`). */
export const RegisterBrokerToControllerRequestHeader = defineHeader('RegisterBrokerToControllerRequestHeader', {
  clusterName: str.must('clusterName'),
  brokerName: str.must('brokerName'),
  brokerId: long.must('brokerId'),
  brokerAddress: str.must('brokerAddress'),
  invokeTime: long.orElse('invokeTime', 0),
  asyncLearner: bool.may('asyncLearner'),
});

/** RegisterBrokerToControllerResponseHeader (body: SyncStateSet); master fields absent when none is alive. */
export const RegisterBrokerToControllerResponseHeader = defineHeader('RegisterBrokerToControllerResponseHeader', {
  clusterName: str.may('clusterName'),
  brokerName: str.may('brokerName'),
  ...MASTER_FIELDS,
  syncStateSetEpoch: int.may('syncStateSetEpoch'),
});

/** BrokerHeartbeatRequestHeader (namesrv package, also sent to the controller) + our optional `asyncLearner`. */
export const BrokerHeartbeatRequestHeader = defineHeader('BrokerHeartbeatRequestHeader', {
  clusterName: str.must('clusterName'),
  brokerAddr: str.must('brokerAddr'),
  brokerName: str.must('brokerName'),
  brokerId: long.may('brokerId'),
  epoch: int.may('epoch'),
  maxOffset: long.may('maxOffset'),
  confirmOffset: long.may('confirmOffset'),
  heartbeatTimeoutMills: long.may('heartbeatTimeoutMills'),
  electionPriority: int.may('electionPriority'),
  asyncLearner: bool.may('asyncLearner'),
});

/** NotifyBrokerRoleChangedRequestHeader (controller to broker; body: SyncStateSet). */
export const NotifyBrokerRoleChangedRequestHeader = defineHeader('NotifyBrokerRoleChangedRequestHeader', {
  masterAddress: str.may('masterAddress'),
  masterEpoch: int.may('masterEpoch'),
  syncStateSetEpoch: int.may('syncStateSetEpoch'),
  masterBrokerId: long.may('masterBrokerId'),
});

/** A parsed BrokerHeartbeatRequestHeader. */
export type BrokerHeartbeatRequest = HeaderValue<typeof BrokerHeartbeatRequestHeader.spec>;

// ---------------------------------------------------------------------------------------------------
// Bodies

/** Stable code of ControllerBodyError. */
export const CONTROLLER_BODY_ERROR = 'CONTROLLER_BAD_BODY';

/** A controller body that cannot be read; answered SYSTEM_ERROR as Java answers its decode exception. */
export class ControllerBodyError extends Error {
  /** Stable machine-readable code. */
  readonly code = CONTROLLER_BODY_ERROR;
  override readonly name = 'ControllerBodyError';
}

/** SyncStateSet body. */
export type SyncStateSetBody = { readonly syncStateSet: readonly number[]; readonly syncStateSetEpoch: number };

/** BrokerMemberGroup: a broker set's members by id. */
export type ControllerMemberGroup = {
  readonly cluster: string;
  readonly brokerName: string;
  readonly brokerAddrs: ReadonlyMap<number, string>;
};

/** ElectMasterResponseBody. */
export type ElectMasterResponseBody = {
  readonly brokerMemberGroup?: ControllerMemberGroup;
  readonly syncStateSet: readonly number[];
};

/** BrokerReplicasInfo.ReplicaIdentity. */
export type ReplicaIdentity = {
  readonly brokerName: string;
  readonly brokerId: number;
  readonly brokerAddress: string;
  readonly alive: boolean;
};

/** BrokerReplicasInfo.ReplicasInfo. */
export type ReplicasInfo = {
  readonly masterBrokerId?: number;
  readonly masterAddress?: string;
  readonly masterEpoch: number;
  readonly syncStateSetEpoch: number;
  readonly inSyncReplicas: readonly ReplicaIdentity[];
  readonly notInSyncReplicas: readonly ReplicaIdentity[];
};

/** BrokerReplicasInfo: the CONTROLLER_GET_SYNC_STATE_DATA answer. */
export type BrokerReplicasInfo = { readonly replicasInfoTable: ReadonlyMap<string, ReplicasInfo> };

/** EpochEntry: one master epoch's range of the commit log. */
export type EpochEntry = { readonly epoch: number; readonly startOffset: number; readonly endOffset: number };

/** EpochEntryCache: the GET_BROKER_EPOCH_CACHE answer a broker gives. */
export type EpochEntryCache = {
  readonly clusterName: string;
  readonly brokerName: string;
  readonly brokerId: number;
  readonly epochList: readonly EpochEntry[];
  readonly maxOffset: number;
};

/** Java's Long.MAX_VALUE, EpochEntry.endOffset of the open last epoch, as the bigint fastjson reads. */
export const EPOCH_END_OFFSET_OPEN = 9_223_372_036_854_775_807n;

const utf8 = new TextEncoder();

function encode(value: FastjsonInput): Uint8Array {
  return utf8.encode(formatFastjson(value));
}

function decodeJson(body: Uint8Array | undefined, what: string): unknown {
  if (body === undefined || body.length === 0) throw new ControllerBodyError(`${what}: the body is empty`);
  if (body.length > CONTROLLER_BODY_BYTES_MAX) throw new ControllerBodyError(`${what}: the body is over ${CONTROLLER_BODY_BYTES_MAX} bytes`);
  let plain: unknown;
  try {
    plain = toPlainJson(parseFastjson(body, { bytesMax: CONTROLLER_BODY_BYTES_MAX }));
  } catch (error) {
    throw new ControllerBodyError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (plain === undefined) throw new ControllerBodyError(`${what}: object keys that are not strings or numbers`);
  return plain;
}

function checked<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ControllerBodyError(`${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

const brokerIdSchema = z.number().int().refine(Number.isSafeInteger, 'a long within +-(2^53 - 1)');
const int32Schema = z.number().int().min(-0x8000_0000).max(0x7fff_ffff);

const syncStateSetSchema = z.object({
  syncStateSet: z.array(brokerIdSchema).max(SYNC_STATE_SET_IDS_MAX).nullish(),
  syncStateSetEpoch: int32Schema.nullish(),
});

/** Reads a SyncStateSet body; a missing set is empty and a missing epoch 0, as Java's bean defaults. */
export function parseSyncStateSet(body: Uint8Array | undefined): SyncStateSetBody {
  const value = checked(syncStateSetSchema, decodeJson(body, 'SyncStateSet'), 'SyncStateSet');
  return { syncStateSet: [...new Set(value.syncStateSet ?? [])], syncStateSetEpoch: value.syncStateSetEpoch ?? 0 };
}

/** Writes a SyncStateSet body, ids ascending. */
export function formatSyncStateSet(value: SyncStateSetBody): Uint8Array {
  return encode({ syncStateSet: [...value.syncStateSet].sort((a, b) => a - b), syncStateSetEpoch: value.syncStateSetEpoch });
}

function memberGroupInput(group: ControllerMemberGroup): FastjsonInput {
  const addrs = new Map<FastjsonInput, FastjsonInput>([...group.brokerAddrs].sort(([a], [b]) => a - b));
  return { brokerAddrs: addrs, brokerName: group.brokerName, cluster: group.cluster };
}

/** Writes an ElectMasterResponseBody. */
export function formatElectMasterResponseBody(value: ElectMasterResponseBody): Uint8Array {
  return encode({
    brokerMemberGroup: value.brokerMemberGroup === undefined ? undefined : memberGroupInput(value.brokerMemberGroup),
    syncStateSet: [...value.syncStateSet].sort((a, b) => a - b),
  });
}

const memberGroupSchema = z.object({
  cluster: z.string().nullish(),
  brokerName: z.string().nullish(),
  brokerAddrs: z.record(z.string().regex(/^-?\d+$/), z.string()).nullish(),
});

const electMasterBodySchema = z.object({
  brokerMemberGroup: memberGroupSchema.nullish(),
  syncStateSet: z.array(brokerIdSchema).max(SYNC_STATE_SET_IDS_MAX).nullish(),
});

/** Reads an ElectMasterResponseBody (a broker's view; tests use it too). */
export function parseElectMasterResponseBody(body: Uint8Array | undefined): ElectMasterResponseBody {
  const value = checked(electMasterBodySchema, decodeJson(body, 'ElectMasterResponseBody'), 'ElectMasterResponseBody');
  const group = value.brokerMemberGroup;
  const syncStateSet = value.syncStateSet ?? [];
  if (group === undefined || group === null) return { syncStateSet };
  const brokerAddrs = new Map(Object.entries(group.brokerAddrs ?? {}).map(([id, addr]) => [Number(id), addr] as const));
  return { syncStateSet, brokerMemberGroup: { cluster: group.cluster ?? '', brokerName: group.brokerName ?? '', brokerAddrs } };
}

const brokerNamesSchema = z.array(z.string()).max(SYNC_STATE_DATA_NAMES_MAX);

/** Reads the CONTROLLER_GET_SYNC_STATE_DATA request body: a JSON list of broker names. */
export function parseBrokerNameList(body: Uint8Array | undefined): string[] {
  return [...new Set(checked(brokerNamesSchema, decodeJson(body, 'broker name list'), 'broker name list'))];
}

/** Writes the CONTROLLER_GET_SYNC_STATE_DATA request body. */
export function formatBrokerNameList(names: readonly string[]): Uint8Array {
  return encode(names);
}

function replicaInput(replica: ReplicaIdentity): FastjsonInput {
  return { alive: replica.alive, brokerAddress: replica.brokerAddress, brokerId: replica.brokerId, brokerName: replica.brokerName };
}

/** Writes a BrokerReplicasInfo body, broker names in the given order. */
export function formatBrokerReplicasInfo(value: BrokerReplicasInfo): Uint8Array {
  const table = new Map<FastjsonInput, FastjsonInput>();
  for (const [brokerName, info] of value.replicasInfoTable) {
    table.set(brokerName, {
      inSyncReplicas: info.inSyncReplicas.map(replicaInput),
      masterAddress: info.masterAddress,
      masterBrokerId: info.masterBrokerId,
      masterEpoch: info.masterEpoch,
      notInSyncReplicas: info.notInSyncReplicas.map(replicaInput),
      syncStateSetEpoch: info.syncStateSetEpoch,
    });
  }
  return encode({ replicasInfoTable: table });
}

const replicaSchema = z.object({
  brokerName: z.string(),
  brokerId: brokerIdSchema,
  brokerAddress: z.string(),
  alive: z.boolean().nullish(),
});

const replicasInfoSchema = z.object({
  masterBrokerId: brokerIdSchema.nullish(),
  masterAddress: z.string().nullish(),
  masterEpoch: int32Schema.nullish(),
  syncStateSetEpoch: int32Schema.nullish(),
  inSyncReplicas: z.array(replicaSchema).nullish(),
  notInSyncReplicas: z.array(replicaSchema).nullish(),
});

const brokerReplicasInfoSchema = z.object({ replicasInfoTable: z.record(z.string(), replicasInfoSchema).nullish() });

/** Reads a BrokerReplicasInfo body (an admin tool's view; tests use it too). */
export function parseBrokerReplicasInfo(body: Uint8Array | undefined): BrokerReplicasInfo {
  const value = checked(brokerReplicasInfoSchema, decodeJson(body, 'BrokerReplicasInfo'), 'BrokerReplicasInfo');
  const table = new Map<string, ReplicasInfo>();
  const toReplica = (replica: z.output<typeof replicaSchema>): ReplicaIdentity => ({ ...replica, alive: replica.alive ?? false });
  for (const [brokerName, info] of Object.entries(value.replicasInfoTable ?? {})) {
    table.set(brokerName, {
      ...(info.masterBrokerId === undefined || info.masterBrokerId === null ? {} : { masterBrokerId: info.masterBrokerId }),
      ...(info.masterAddress === undefined || info.masterAddress === null ? {} : { masterAddress: info.masterAddress }),
      masterEpoch: info.masterEpoch ?? 0,
      syncStateSetEpoch: info.syncStateSetEpoch ?? 0,
      inSyncReplicas: (info.inSyncReplicas ?? []).map(toReplica),
      notInSyncReplicas: (info.notInSyncReplicas ?? []).map(toReplica),
    });
  }
  return { replicasInfoTable: table };
}

/**
 * Writes an EpochEntryCache body. The open last epoch's endOffset (Java's Long.MAX_VALUE) is held here as
 * Number.MAX_SAFE_INTEGER and written back as Long.MAX_VALUE.
 */
export function formatEpochEntryCache(value: EpochEntryCache): Uint8Array {
  return encode({
    brokerId: value.brokerId,
    brokerName: value.brokerName,
    clusterName: value.clusterName,
    epochList: value.epochList.map((entry) => ({
      endOffset: entry.endOffset >= Number.MAX_SAFE_INTEGER ? EPOCH_END_OFFSET_OPEN : entry.endOffset,
      epoch: entry.epoch,
      startOffset: entry.startOffset,
    })),
    maxOffset: value.maxOffset,
  });
}

const longOrOpen = z.union([brokerIdSchema, z.bigint()]);

const epochEntryCacheSchema = z.object({
  clusterName: z.string().nullish(),
  brokerName: z.string().nullish(),
  brokerId: brokerIdSchema,
  epochList: z.array(z.object({ epoch: int32Schema, startOffset: brokerIdSchema, endOffset: longOrOpen.nullish() })).max(65_536).nullish(),
  maxOffset: brokerIdSchema,
});

/** Reads an EpochEntryCache body; an open (Long.MAX_VALUE) endOffset reads as Number.MAX_SAFE_INTEGER. */
export function parseEpochEntryCache(body: Uint8Array | undefined): EpochEntryCache {
  const value = checked(epochEntryCacheSchema, decodeJson(body, 'EpochEntryCache'), 'EpochEntryCache');
  return {
    clusterName: value.clusterName ?? '',
    brokerName: value.brokerName ?? '',
    brokerId: value.brokerId,
    maxOffset: value.maxOffset,
    epochList: (value.epochList ?? []).map((entry) => ({
      epoch: entry.epoch,
      startOffset: entry.startOffset,
      endOffset: typeof entry.endOffset === 'bigint' || entry.endOffset === undefined || entry.endOffset === null ? Number.MAX_SAFE_INTEGER : entry.endOffset,
    })),
  };
}

/** Writes the GET_CONTROLLER_CONFIG body: `key=value` lines, as Configuration.getAllConfigsFormatString does. */
export function formatControllerConfig(config: Readonly<Record<string, string | number | boolean>>): Uint8Array {
  return utf8.encode(Object.entries(config).map(([key, value]) => `${key}=${String(value)}\n`).join(''));
}

// ---------------------------------------------------------------------------------------------------
// Controller peers

/** One controller of a group: its controllerDLegerSelfId and the `host:port` brokers reach it on. */
export type ControllerPeer = { readonly id: string; readonly address: string };

const PEER_ID = /^[A-Za-z0-9_.]{1,64}$/;

/**
 * Reads controllerDLegerPeers, `id-host:port;id-host:port...` (split at the first '-', as
 * ControllerConfig.getDLedgerAddress does); undefined when an entry is malformed, an id repeats or the
 * list is empty or longer than CONTROLLER_PEERS_MAX.
 */
export function parseControllerPeers(text: string): readonly ControllerPeer[] | undefined {
  const entries = text.split(';').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0 || entries.length > CONTROLLER_PEERS_MAX) return undefined;
  const peers: ControllerPeer[] = [];
  for (const entry of entries) {
    const dash = entry.indexOf('-');
    if (dash <= 0) return undefined;
    const id = entry.slice(0, dash);
    const address = entry.slice(dash + 1);
    if (!PEER_ID.test(id) || parseHostPort(address) === undefined || peers.some((peer) => peer.id === id)) return undefined;
    peers.push({ id, address });
  }
  return peers;
}

/** GetMetaDataResponseHeader.peers as DLedgerController writes it: `id:address;` for every peer. */
export function formatMetadataPeers(peers: readonly ControllerPeer[]): string {
  return peers.map((peer) => `${peer.id}:${peer.address};`).join('');
}
