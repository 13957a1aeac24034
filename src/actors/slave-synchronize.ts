/**
 * slave-synchronize: RocketMQ's SlaveSynchronize as one actor per slave broker (admin pool). While this
 * broker is a slave and knows its master's broker address, it asks the master, one request at a time,
 * for its four metadata tables over Remoting and hands what it read to broker-admin, which replaces or
 * merges its own tables and persists them (`syncFromMaster`):
 *
 * | order | request (code)                        | body read                       | broker-admin does                                 |
 * |-------|---------------------------------------|---------------------------------|---------------------------------------------------|
 * | 1     | GET_ALL_TOPIC_CONFIG (21)             | TopicConfigSerializeWrapper     | replaces topics.json when the dataVersion differs |
 * | 2     | GET_ALL_CONSUMER_OFFSET (43)          | ConsumerOffsetSerializeWrapper  | merges: each master `topic@group` replaces ours   |
 * | 3     | GET_ALL_DELAY_OFFSET (45)             | DelayOffsetSerializeWrapper     | writes config/delayOffset.json (see below)        |
 * | 4     | GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201)| SubscriptionGroupWrapper        | replaces subscriptionGroup.json when it differs   |
 *
 * Once broker-admin has written the master's delay offsets (or found the file already holding them), the
 * schedule service is told `reloadOffsets`, so it takes them at once (RocketMQ's
 * loadWhenSyncDelayOffset after syncDelayOffset) rather than only when it next starts.
 *
 * The master's address. A broker that is SLAVE by config (static mode) asks a NameServer for its broker
 * group (GET_BROKER_MEMBER_GROUP, RocketMQ's syncBrokerMemberGroup) before each round and follows
 * brokerId 0; RocketMQ takes the same address from the REGISTER_BROKER answer, which our registration
 * does not surface. In controller mode the replicas manager tells `roleChanged`: as SLAVE with the
 * master's address, syncing starts (a round at once, then one every period); as master it stops, the
 * round in flight is dropped and the connection closed (ReplicasManager.handleSlaveSynchronize). A
 * master address equal to our own is never synced from, as in RocketMQ.
 *
 * Cadence and bounds. A round runs every `syncPeriodMs` (10 s: ReplicasManager's fixed period; RocketMQ
 * has no config key for it, and syncs static slaves every 60 s; we use 10 s for both, so a failover
 * finds offsets at most ~10 s old). One round at a time: a tick while a round (requests and
 * broker-admin's apply) is in flight is skipped. A response body larger than `responseBodyBytesMax`
 * (SYNC_RESPONSE_BODY_BYTES_MAX, the Remoting frame bound) is refused. A table the master refuses or
 * sends malformed is logged and skipped; a master that cannot be reached ends the round. Everything is
 * retried at the next period.
 *
 * What is not replicated. POP state (the leases in pop-journal.ts, check points, revive offsets) stays on
 * the master. A promoted slave's POP processor has no state for a queue, so it asks broker-admin for the
 * consumer offset, which is the last one synced: messages popped but not acknowledged past that offset
 * are delivered again (at-least-once, never lost). Neither are timer checkpoints, message request modes
 * nor static-topic mappings (RocketMQ's syncTimerCheckPoint, syncMessageRequestMode).
 *
 * The bodies of GET_ALL_CONSUMER_OFFSET and GET_ALL_DELAY_OFFSET are read and written here (broker-admin
 * formats its answers with the functions below): ConsumerOffsetManager.encode and
 * ScheduleMessageService.encode as fastjson writes them, integer map keys unquoted.
 */
import { z } from 'zod';
import type { ActorContext, ActorRef, ActorSpawner, Behavior, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import type { Clock } from '../runtime/clock.ts';
import { describeError } from '../runtime/errors.ts';
import { FRAME_MAX_BYTES_DEFAULT } from '../net/remoting/codec.ts';
import { BodyError, parseSubscriptionGroupWrapper, parseTopicConfigSerializeWrapper } from '../net/remoting/broker-bodies.ts';
import { formatFastjson, type FastjsonInput } from '../net/remoting/fastjson.ts';
import { encodeHeader, NamesrvHeaders } from '../net/remoting/namesrv-protocol.ts';
import { RemotingClient } from '../net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';
import {
  consumerOffsetDocumentSchema,
  type DataVersion,
  dataVersionSchema,
  parseFastjson,
  type SubscriptionGroupConfig,
  TOPIC_GROUP_SEPARATOR,
  type TopicConfig,
} from '../storage/metadata-store.ts';
import type { ReplicasRoleChangedMessage } from './replicas-manager.ts';
import type { ScheduleReloadMessage } from './schedule-service.ts';

// =========================================================================================================
// Bounds and defaults

/** Largest response body read from a master: the Remoting frame bound, which the master cannot exceed. */
export const SYNC_RESPONSE_BODY_BYTES_MAX = FRAME_MAX_BYTES_DEFAULT;

/** Room for a response's header on top of its body when the frame bound is set from the body bound. */
const FRAME_HEADER_ALLOWANCE_BYTES = 64 * 1024;

/** Most delay levels a DelayOffsetSerializeWrapper may carry (RocketMQ has 18 by default). */
export const DELAY_LEVELS_MAX = 4_096;

/** RocketMQ's timings, under our names; none has a config key in RocketMQ. */
export const SLAVE_SYNCHRONIZE_DEFAULTS = {
  /** ReplicasManager.handleSlaveSynchronize: syncAll once more than 10 s have passed. */
  syncPeriodMs: 10_000,
  /** BrokerOuterAPI.getAllConsumerOffset / getAllDelayOffset and GET_BROKER_MEMBER_GROUP: 3 s. */
  requestTimeoutMs: 3_000,
  /** BrokerOuterAPI.getAllTopicConfig / getAllSubscriptionGroupConfig: 30 s per page. */
  tableRequestTimeoutMs: 30_000,
  /** NettyClientConfig.connectTimeoutMillis. */
  connectTimeoutMs: 3_000,
  responseBodyBytesMax: SYNC_RESPONSE_BODY_BYTES_MAX,
  /** How long broker-admin may take to apply one round. */
  adminAskTimeoutMs: 30_000,
} as const;

// =========================================================================================================
// What a round carries to broker-admin (plain data: it may cross threads)

/** The four tables, by their names in logs and answers. */
export type SyncTable = 'topicConfig' | 'consumerOffset' | 'delayOffset' | 'subscriptionGroup';

/** The master's topic configs and their dataVersion. */
export type TopicConfigSnapshot = { readonly topicConfigs: readonly TopicConfig[]; readonly dataVersion: DataVersion };

/** The master's subscription groups, forbidden bits (group -> topic -> bits) and dataVersion. */
export type SubscriptionGroupSnapshot = {
  readonly groupConfigs: readonly SubscriptionGroupConfig[];
  readonly forbiddenTable: ReadonlyArray<readonly [string, ReadonlyArray<readonly [string, number]>]>;
  readonly dataVersion: DataVersion;
};

/** The master's consumer offsets: `topic@group` -> (queueId, offset) pairs, and a dataVersion if sent. */
export type ConsumerOffsetSnapshot = {
  readonly offsetTable: ReadonlyArray<readonly [string, ReadonlyArray<readonly [number, number]>]>;
  readonly dataVersion: DataVersion | null;
};

/** The master's delay offsets: (level, offset) pairs in level order, and a dataVersion if sent. */
export type DelayOffsetSnapshot = {
  readonly offsetTable: ReadonlyArray<readonly [number, number]>;
  readonly dataVersion: DataVersion | null;
};

/** The ask to broker-admin: what one round read from the master; null where the table was not read. */
export type SyncFromMasterMessage = {
  readonly type: 'syncFromMaster';
  readonly masterAddr: string;
  readonly topicConfig: TopicConfigSnapshot | null;
  readonly consumerOffset: ConsumerOffsetSnapshot | null;
  readonly delayOffset: DelayOffsetSnapshot | null;
  readonly subscriptionGroup: SubscriptionGroupSnapshot | null;
};

/** What broker-admin did with one table. */
export type TableSyncOutcome = {
  readonly table: SyncTable;
  /** replaced / merged / written: stored; unchanged: same dataVersion or content; refused: see reason. */
  readonly outcome: 'replaced' | 'merged' | 'written' | 'unchanged' | 'refused';
  readonly reason?: string;
};

/** broker-admin's answer to `syncFromMaster`; `refusal` when it applied nothing (it is a master now). */
export type SyncFromMasterAnswer = { readonly refusal: string | null; readonly tables: readonly TableSyncOutcome[] };

// =========================================================================================================
// Errors

/** Stable codes of SlaveSyncError. */
export const SlaveSyncErrorCode = {
  /** No NameServer named a master (brokerId 0) for this broker group. */
  NO_MASTER: 'SYNC_NO_MASTER',
  /** The master (or NameServer) could not be reached, timed out or dropped the connection. */
  UNREACHABLE: 'SYNC_UNREACHABLE',
  /** The master answered with a code other than SUCCESS. */
  REFUSED: 'SYNC_REFUSED',
  /** The body is larger than responseBodyBytesMax. */
  BODY_TOO_LARGE: 'SYNC_BODY_TOO_LARGE',
  /** The body is missing, not JSON, or not the table's shape. */
  BODY_INVALID: 'SYNC_BODY_INVALID',
} as const;

/** A stable code of SlaveSyncError. */
export type SlaveSyncErrorCode = (typeof SlaveSyncErrorCode)[keyof typeof SlaveSyncErrorCode];

/** Why one table (or the master lookup) of a round failed. */
export class SlaveSyncError extends Error {
  /** Stable machine-readable code. */
  readonly code: SlaveSyncErrorCode;
  override readonly name = 'SlaveSyncError';

  constructor(code: SlaveSyncErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

// =========================================================================================================
// Bodies: ConsumerOffsetSerializeWrapper and DelayOffsetSerializeWrapper

function dataVersionJson(version: DataVersion): Map<string, FastjsonInput> {
  return new Map<string, FastjsonInput>([['counter', version.counter], ['stateVersion', version.stateVersion], ['timestamp', version.timestamp]]);
}

/** fastjson's bean order (alphabetical) with an absent dataVersion left out. */
function wrapperBytes(dataVersion: DataVersion | null, offsetTable: FastjsonInput): Uint8Array {
  const bean = new Map<string, FastjsonInput>();
  if (dataVersion !== null) bean.set('dataVersion', dataVersionJson(dataVersion));
  bean.set('offsetTable', offsetTable);
  const bytes = Buffer.from(formatFastjson(bean), 'utf8');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** GET_ALL_CONSUMER_OFFSET's body as ConsumerOffsetManager.encode writes it: `{"topic@group":{0:5}}`. */
export function formatConsumerOffsetSerializeWrapper(value: ConsumerOffsetSnapshot): Uint8Array {
  const table = new Map<string, FastjsonInput>();
  for (const [key, queues] of value.offsetTable) table.set(key, new Map<FastjsonInput, FastjsonInput>(queues));
  return wrapperBytes(value.dataVersion, table);
}

/** GET_ALL_DELAY_OFFSET's body as ScheduleMessageService.encode writes it: `{"offsetTable":{1:0}}`. */
export function formatDelayOffsetSerializeWrapper(value: DelayOffsetSnapshot): Uint8Array {
  return wrapperBytes(value.dataVersion, new Map<FastjsonInput, FastjsonInput>(value.offsetTable));
}

function plainJson(text: string, what: string): unknown {
  try {
    return parseFastjson(text);
  } catch (error) {
    throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, `${what}: ${describeError(error)}`);
  }
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue === undefined ? 'is invalid' : `${issue.path.map(String).join('.')}: ${issue.message}`;
}

/** Whether `key` is `topic@group` with both parts present. */
function isTopicAtGroup(key: string): boolean {
  const at = key.indexOf(TOPIC_GROUP_SEPARATOR);
  return at > 0 && at < key.length - 1;
}

/** Reads a ConsumerOffsetSerializeWrapper; SlaveSyncError BODY_INVALID when it is not one. */
export function parseConsumerOffsetSerializeWrapper(text: string): ConsumerOffsetSnapshot {
  const what = 'ConsumerOffsetSerializeWrapper';
  const parsed = consumerOffsetDocumentSchema.safeParse(plainJson(text, what));
  if (!parsed.success) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, `${what}: ${firstIssue(parsed.error)}`);
  const offsetTable: Array<readonly [string, ReadonlyArray<readonly [number, number]>]> = [];
  for (const [key, queues] of Object.entries(parsed.data.offsetTable)) {
    if (!isTopicAtGroup(key)) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, `${what}: key ${JSON.stringify(key)} is not topic@group`);
    offsetTable.push([key, Object.entries(queues).map(([queueId, offset]) => [Number(queueId), offset] as const)]);
  }
  return { offsetTable, dataVersion: parsed.data.dataVersion ?? null };
}

const LEVEL_TEXT = /^(0|[1-9]\d{0,3})$/;

const delayOffsetWrapperSchema = z.object({
  offsetTable: z.record(z.string().regex(LEVEL_TEXT), z.int().min(0)).default(() => ({})),
  dataVersion: dataVersionSchema.optional(),
});

/** Reads a DelayOffsetSerializeWrapper (as delayOffset.json holds it too); SlaveSyncError when invalid. */
export function parseDelayOffsetSerializeWrapper(text: string): DelayOffsetSnapshot {
  const what = 'DelayOffsetSerializeWrapper';
  const parsed = delayOffsetWrapperSchema.safeParse(plainJson(text, what));
  if (!parsed.success) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, `${what}: ${firstIssue(parsed.error)}`);
  const entries = Object.entries(parsed.data.offsetTable);
  if (entries.length > DELAY_LEVELS_MAX) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, `${what}: more than ${DELAY_LEVELS_MAX} levels`);
  const offsetTable = entries.map(([level, offset]) => [Number(level), offset] as const).sort((a, b) => a[0] - b[0]);
  return { offsetTable, dataVersion: parsed.data.dataVersion ?? null };
}

/** Names that a plain object cannot hold as an own key when copied by assignment. */
function isReservedName(name: string): boolean {
  return name === '__proto__';
}

function topicConfigSnapshotOf(body: Uint8Array, bytesMax: number): TopicConfigSnapshot {
  const wrapper = guardBody(() => parseTopicConfigSerializeWrapper(body, { bytesMax, valuesMax: bytesMax }));
  if (wrapper.dataVersion === undefined) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, 'TopicConfigSerializeWrapper: no dataVersion');
  const topicConfigs = [...wrapper.topicConfigTable.values()];
  if (topicConfigs.some((config) => isReservedName(config.topicName))) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, 'TopicConfigSerializeWrapper: a reserved topic name');
  return { topicConfigs, dataVersion: wrapper.dataVersion };
}

function subscriptionGroupSnapshotOf(body: Uint8Array, bytesMax: number): SubscriptionGroupSnapshot {
  const wrapper = guardBody(() => parseSubscriptionGroupWrapper(body, { bytesMax, valuesMax: bytesMax }));
  if (wrapper.dataVersion === undefined) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, 'SubscriptionGroupWrapper: no dataVersion');
  const groupConfigs = [...wrapper.subscriptionGroupTable.values()];
  const forbiddenTable = Array.from(wrapper.forbiddenTable, ([group, topics]) => [group, [...topics]] as const);
  const names = [...groupConfigs.map((config) => config.groupName), ...forbiddenTable.flatMap(([group, topics]) => [group, ...topics.map(([topic]) => topic)])];
  if (names.some(isReservedName)) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, 'SubscriptionGroupWrapper: a reserved group or topic name');
  return { groupConfigs, forbiddenTable, dataVersion: wrapper.dataVersion };
}

/** broker-bodies' parsers throw BodyError; a round reports it as BODY_INVALID. */
function guardBody<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof BodyError) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, error.message);
    throw error;
  }
}

// =========================================================================================================
// Connections

/** How the links connect and log. */
type LinksOptions = {
  readonly clock: Clock;
  readonly connectTimeoutMs: number;
  readonly frameMaxBytes: number;
  readonly log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>) => void;
  /** Most connections kept (the NameServers and one master). */
  readonly connectionsMax: number;
};

/** One kept RemotingClient per address (NameServers, the master), reconnected after a failure. */
class Links {
  private readonly options: LinksOptions;
  private readonly clients = new Map<string, RemotingClient>();
  private closed = false;

  constructor(options: LinksOptions) {
    this.options = options;
  }

  /** Sends one request; transport failures (connect, timeout, closed) become UNREACHABLE. */
  async invoke(address: string, request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    let client: RemotingClient;
    try {
      client = await this.clientFor(address);
    } catch (error) {
      throw new SlaveSyncError(SlaveSyncErrorCode.UNREACHABLE, `${address}: ${describeError(error)}`);
    }
    try {
      return await client.invoke(request, timeoutMs);
    } catch (error) {
      this.drop(address, client);
      throw new SlaveSyncError(SlaveSyncErrorCode.UNREACHABLE, `${address}: ${describeError(error)}`);
    }
  }

  /** Closes the connection to one address, if any. */
  close(address: string): void {
    const client = this.clients.get(address);
    if (client !== undefined) this.drop(address, client);
  }

  /** Closes every connection; with `forGood`, later requests are refused. */
  closeAll(forGood: boolean): void {
    this.closed ||= forGood;
    for (const [address, client] of [...this.clients]) this.drop(address, client);
  }

  private drop(address: string, client: RemotingClient): void {
    if (this.clients.get(address) === client) this.clients.delete(address);
    void client.close();
  }

  private async clientFor(address: string): Promise<RemotingClient> {
    if (this.closed) throw new Error('slave synchronize stopped');
    const kept = this.clients.get(address);
    if (kept !== undefined && !kept.closed) return kept;
    if (kept !== undefined) this.drop(address, kept);
    // Bounded: the oldest connection goes before a new one beyond the bound.
    const oldest = this.clients.keys().next();
    if (this.clients.size >= this.options.connectionsMax && oldest.done !== true) this.close(oldest.value);
    const { clock, connectTimeoutMs, frameMaxBytes, log } = this.options;
    const client = await RemotingClient.connect(address, { clock, connectTimeoutMs, frameMaxBytes, log, inFlightMax: 1 });
    if (this.closed) {
      void client.close();
      throw new Error('slave synchronize stopped');
    }
    this.clients.set(address, client);
    return client;
  }
}

// =========================================================================================================
// One round

/** What a round needs to know, fixed when it starts. */
type RoundPlan = {
  readonly brokerAddr: string;
  readonly clusterName: string;
  readonly brokerName: string;
  readonly namesrvAddrs: readonly string[];
  /** The master's address when known (controller mode); null: ask the NameServers. */
  readonly masterAddr: string | null;
  readonly requestTimeoutMs: number;
  readonly tableRequestTimeoutMs: number;
  readonly responseBodyBytesMax: number;
};

/** A table that could not be read this round. */
export type TableFailure = { readonly table: SyncTable; readonly code: SlaveSyncErrorCode; readonly reason: string };

/** What a round read. */
type Fetched = {
  /** The master synced from; null when none was found (then `failures` says why). */
  readonly masterAddr: string | null;
  /** The master is this broker: nothing to do. */
  readonly self: boolean;
  readonly tables: Omit<SyncFromMasterMessage, 'type' | 'masterAddr'>;
  readonly failures: readonly TableFailure[];
  /** Why no master was asked (no NameServer answer, no master registered). */
  readonly noMaster: string | null;
};

const memberGroupSchema = z.object({
  brokerMemberGroup: z.object({ brokerAddrs: z.record(z.string(), z.string()).default(() => ({})) }),
});

/** GET_BROKER_MEMBER_GROUP on each NameServer in turn: the address of brokerId 0, or NO_MASTER. */
async function masterFromNameServers(links: Links, plan: RoundPlan): Promise<string> {
  const problems: string[] = [];
  for (const namesrvAddr of plan.namesrvAddrs) {
    const extFields = encodeHeader(NamesrvHeaders.getBrokerMemberGroup, { clusterName: plan.clusterName, brokerName: plan.brokerName });
    try {
      const answer = await links.invoke(namesrvAddr, createRequest({ code: RequestCode.GET_BROKER_MEMBER_GROUP, opaque: 0, extFields }), plan.requestTimeoutMs);
      if (answer.code !== ResponseCode.SUCCESS) {
        problems.push(`${namesrvAddr}: code ${answer.code} ${answer.remark ?? ''}`);
        continue;
      }
      const parsed = memberGroupSchema.safeParse(plainJson(Buffer.from(answer.body ?? new Uint8Array()).toString('utf8'), 'GetBrokerMemberGroupResponseBody'));
      const master = parsed.success ? parsed.data.brokerMemberGroup.brokerAddrs['0'] : undefined;
      if (master !== undefined && master !== '') return master;
      problems.push(`${namesrvAddr}: no master registered`);
    } catch (error) {
      if (!(error instanceof SlaveSyncError)) throw error;
      problems.push(error.message);
    }
  }
  throw new SlaveSyncError(SlaveSyncErrorCode.NO_MASTER, problems.length === 0 ? 'no NameServer configured' : problems.join('; '));
}

/** The master's answer body, checked: SUCCESS, present, within the bound. */
function bodyOf(answer: RemotingCommand, what: string, bytesMax: number): Uint8Array {
  if (answer.code !== ResponseCode.SUCCESS) throw new SlaveSyncError(SlaveSyncErrorCode.REFUSED, `${what}: code ${answer.code} ${answer.remark ?? ''}`);
  const body = answer.body;
  if (body === undefined || body.length === 0) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_INVALID, `${what}: no body`);
  if (body.length > bytesMax) throw new SlaveSyncError(SlaveSyncErrorCode.BODY_TOO_LARGE, `${what}: ${body.length} bytes, over ${bytesMax}`);
  return body;
}

/** Asks the master for the four tables, in RocketMQ's order, one request at a time. */
async function fetchFromMaster(links: Links, plan: RoundPlan): Promise<Fetched> {
  let masterAddr = plan.masterAddr;
  if (masterAddr === null) {
    try {
      masterAddr = await masterFromNameServers(links, plan);
    } catch (error) {
      if (!(error instanceof SlaveSyncError)) throw error;
      return { masterAddr: null, self: false, tables: emptyTables(), failures: [], noMaster: `${error.code}: ${error.message}` };
    }
  }
  if (masterAddr === plan.brokerAddr) return { masterAddr, self: true, tables: emptyTables(), failures: [], noMaster: null };
  const bytesMax = plan.responseBodyBytesMax;
  const text = (body: Uint8Array): string => Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8');
  const steps: ReadonlyArray<{ table: SyncTable; code: number; timeoutMs: number; read: (body: Uint8Array) => unknown }> = [
    { table: 'topicConfig', code: RequestCode.GET_ALL_TOPIC_CONFIG, timeoutMs: plan.tableRequestTimeoutMs, read: (body) => topicConfigSnapshotOf(body, bytesMax) },
    { table: 'consumerOffset', code: RequestCode.GET_ALL_CONSUMER_OFFSET, timeoutMs: plan.requestTimeoutMs, read: (body) => parseConsumerOffsetSerializeWrapper(text(body)) },
    { table: 'delayOffset', code: RequestCode.GET_ALL_DELAY_OFFSET, timeoutMs: plan.requestTimeoutMs, read: (body) => parseDelayOffsetSerializeWrapper(text(body)) },
    { table: 'subscriptionGroup', code: RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG, timeoutMs: plan.tableRequestTimeoutMs, read: (body) => subscriptionGroupSnapshotOf(body, bytesMax) },
  ];
  const tables: Record<SyncTable, unknown> = { topicConfig: null, consumerOffset: null, delayOffset: null, subscriptionGroup: null };
  const failures: TableFailure[] = [];
  for (const [index, step] of steps.entries()) {
    try {
      const answer = await links.invoke(masterAddr, createRequest({ code: step.code, opaque: 0 }), step.timeoutMs);
      tables[step.table] = step.read(bodyOf(answer, step.table, bytesMax));
    } catch (error) {
      if (!(error instanceof SlaveSyncError)) throw error;
      failures.push({ table: step.table, code: error.code, reason: error.message });
      // An unreachable master fails every later request too: the round ends here.
      if (error.code === SlaveSyncErrorCode.UNREACHABLE) {
        for (const later of steps.slice(index + 1)) failures.push({ table: later.table, code: error.code, reason: 'not asked: master unreachable' });
        break;
      }
    }
  }
  return { masterAddr, self: false, tables: tables as Fetched['tables'], failures, noMaster: null };
}

function emptyTables(): Fetched['tables'] {
  return { topicConfig: null, consumerOffset: null, delayOffset: null, subscriptionGroup: null };
}

// =========================================================================================================
// The actor

/** Start arguments. */
export type SlaveSynchronizeArgs = {
  /** broker-admin, which applies what a round read. */
  readonly admin: ActorRef<SyncFromMasterMessage>;
  /** This broker's address (`ip:listenPort`): a master with this address is never synced from. */
  readonly brokerAddr: string;
  readonly brokerClusterName: string;
  readonly brokerName: string;
  /**
   * `static`: a SLAVE by config; syncs from start, learning the master from `namesrvAddrs` each round.
   * `controller`: waits for `roleChanged` (as SLAVE, with the master's address) from the replicas manager.
   */
  readonly mode: 'static' | 'controller';
  /** NameServers (`host:port`) asked for the master in static mode. */
  readonly namesrvAddrs: readonly string[];
  /** The schedule service, told to reload the delay offsets a round synced; none, none told. */
  readonly schedule?: ActorRef<ScheduleReloadMessage>;
  readonly syncPeriodMs?: number;
  readonly requestTimeoutMs?: number;
  readonly tableRequestTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly responseBodyBytesMax?: number;
  readonly adminAskTimeoutMs?: number;
};

/** What `stats` answers. */
export type SlaveSynchronizeStats = {
  /** Whether this broker syncs now (a slave with a way to find its master). */
  readonly syncing: boolean;
  /** The master last synced from, or told by the replicas manager; null when unknown. */
  readonly masterAddr: string | null;
  readonly inFlight: boolean;
  readonly rounds: number;
  /** Rounds in which broker-admin applied every table. */
  readonly roundsComplete: number;
  /** Rounds with at least one table not read or not applied, or no master found. */
  readonly roundsIncomplete: number;
  readonly ticksSkipped: number;
  /** Times the schedule service was told to reload the synced delay offsets. */
  readonly delayOffsetReloads: number;
  /** The last round's per-table outcomes and failures. */
  readonly lastOutcomes: readonly TableSyncOutcome[];
  readonly lastFailures: readonly TableFailure[];
};

/** Messages: the replicas manager's role news, its own timer and piped outcomes, and `stats` (ask). */
export type SlaveSynchronizeMessage =
  | ReplicasRoleChangedMessage
  | { readonly type: 'tick' }
  | { readonly type: 'fetched'; readonly generation: number; readonly result: PipeResult<Fetched> }
  | { readonly type: 'applied'; readonly generation: number; readonly failures: readonly TableFailure[]; readonly result: PipeResult<SyncFromMasterAnswer> }
  | { readonly type: 'stats' };

type Settings = Required<Omit<SlaveSynchronizeArgs, 'admin' | 'brokerAddr' | 'brokerClusterName' | 'brokerName' | 'mode' | 'namesrvAddrs' | 'schedule'>>;

type State = {
  readonly args: SlaveSynchronizeArgs;
  readonly settings: Settings;
  readonly links: Links;
  syncing: boolean;
  /** Controller mode: the master the replicas manager named; static mode: the one last found. */
  masterAddr: string | null;
  /** Bumped at every role change: outcomes of rounds started before it are dropped. */
  generation: number;
  inFlight: boolean;
  /** A role change came while a round was in flight: start one as soon as it ends. */
  roundPending: boolean;
  rounds: number;
  roundsComplete: number;
  roundsIncomplete: number;
  ticksSkipped: number;
  delayOffsetReloads: number;
  lastOutcomes: readonly TableSyncOutcome[];
  lastFailures: readonly TableFailure[];
};

type Ctx = ActorContext<SlaveSynchronizeMessage>;

const TIMER_SYNC = 'sync';

function settingsOf(args: SlaveSynchronizeArgs): Settings {
  const d = SLAVE_SYNCHRONIZE_DEFAULTS;
  const settings: Settings = {
    syncPeriodMs: args.syncPeriodMs ?? d.syncPeriodMs,
    requestTimeoutMs: args.requestTimeoutMs ?? d.requestTimeoutMs,
    tableRequestTimeoutMs: args.tableRequestTimeoutMs ?? d.tableRequestTimeoutMs,
    connectTimeoutMs: args.connectTimeoutMs ?? d.connectTimeoutMs,
    responseBodyBytesMax: args.responseBodyBytesMax ?? d.responseBodyBytesMax,
    adminAskTimeoutMs: args.adminAskTimeoutMs ?? d.adminAskTimeoutMs,
  };
  for (const [key, value] of Object.entries(settings)) assert(Number.isSafeInteger(value) && value > 0, `${key} is a positive integer`);
  assert(args.brokerAddr.length > 0 && args.brokerName.length > 0, 'brokerAddr and brokerName are required');
  return settings;
}

/** Starts syncing (timer, and a round at once) if not already. */
function follow(state: State, ctx: Ctx): void {
  state.syncing = true;
  ctx.timers.startPeriodic(TIMER_SYNC, { type: 'tick' }, state.settings.syncPeriodMs);
  startRound(state, ctx);
}

/** Stops syncing: no timer, the round in flight dropped, the master's connection closed. */
function unfollow(state: State, ctx: Ctx): void {
  state.syncing = false;
  ctx.timers.cancel(TIMER_SYNC);
  state.roundPending = false;
  state.links.closeAll(false);
}

function startRound(state: State, ctx: Ctx): void {
  if (!state.syncing) return;
  if (state.inFlight) {
    state.roundPending = true;
    return;
  }
  if (state.args.mode === 'static' && state.args.namesrvAddrs.length === 0) return;
  state.inFlight = true;
  state.roundPending = false;
  state.rounds++;
  const { args, settings } = state;
  const plan: RoundPlan = {
    brokerAddr: args.brokerAddr,
    clusterName: args.brokerClusterName,
    brokerName: args.brokerName,
    namesrvAddrs: args.namesrvAddrs,
    masterAddr: args.mode === 'controller' ? state.masterAddr : null,
    requestTimeoutMs: settings.requestTimeoutMs,
    tableRequestTimeoutMs: settings.tableRequestTimeoutMs,
    responseBodyBytesMax: settings.responseBodyBytesMax,
  };
  const generation = state.generation;
  ctx.pipeToSelf(fetchFromMaster(state.links, plan), (result) => ({ type: 'fetched', generation, result }));
}

/** The round is over (read, applied, or dropped); another may start. */
function endRound(state: State, ctx: Ctx, complete: boolean): void {
  state.inFlight = false;
  if (complete) state.roundsComplete++;
  else state.roundsIncomplete++;
  if (state.roundPending) startRound(state, ctx);
}

function onFetched(state: State, message: Extract<SlaveSynchronizeMessage, { type: 'fetched' }>, ctx: Ctx): void {
  if (message.generation !== state.generation || !state.syncing) {
    ctx.log.debug('sync round dropped: the role changed while it ran');
    return endRound(state, ctx, false);
  }
  if (!message.result.ok) {
    ctx.log.error({ err: describeError(message.result.error) }, 'sync round failed; retried at the next period');
    return endRound(state, ctx, false);
  }
  const fetched = message.result.value;
  if (fetched.masterAddr !== null && fetched.masterAddr !== state.masterAddr) {
    ctx.log.info({ from: state.masterAddr, to: fetched.masterAddr }, 'Update master address');
    if (state.masterAddr !== null) state.links.close(state.masterAddr);
    state.masterAddr = fetched.masterAddr;
  }
  state.lastFailures = fetched.failures;
  if (fetched.noMaster !== null) {
    ctx.log.warn({ reason: fetched.noMaster }, 'no master to sync from; retried at the next period');
    return endRound(state, ctx, false);
  }
  if (fetched.self) return endRound(state, ctx, true);
  for (const failure of fetched.failures) {
    ctx.log.error({ masterAddr: fetched.masterAddr, table: failure.table, code: failure.code, reason: failure.reason }, 'sync from master failed; retried at the next period');
  }
  const sync: SyncFromMasterMessage = { type: 'syncFromMaster', masterAddr: fetched.masterAddr!, ...fetched.tables };
  const generation = state.generation;
  const asked = ctx.ask<SyncFromMasterMessage, SyncFromMasterAnswer>(state.args.admin, sync, state.settings.adminAskTimeoutMs);
  ctx.pipeToSelf(asked, (result) => ({ type: 'applied', generation, failures: fetched.failures, result }));
}

function onApplied(state: State, message: Extract<SlaveSynchronizeMessage, { type: 'applied' }>, ctx: Ctx): void {
  if (!message.result.ok) {
    ctx.log.error({ err: describeError(message.result.error) }, 'broker-admin did not apply the sync; retried at the next period');
    return endRound(state, ctx, false);
  }
  const answer = message.result.value;
  state.lastOutcomes = answer.tables;
  if (answer.refusal !== null) ctx.log.info({ reason: answer.refusal }, 'broker-admin refused the sync');
  for (const table of answer.tables) {
    if (table.outcome === 'refused') ctx.log.error({ table: table.table, reason: table.reason }, 'table from master not applied; retried at the next period');
    else if (table.outcome !== 'unchanged') ctx.log.info({ table: table.table, outcome: table.outcome, masterAddr: state.masterAddr }, 'Update slave table from master');
  }
  if (answer.refusal === null && message.generation === state.generation) reloadDelayOffsets(state, answer.tables, ctx);
  const complete = answer.refusal === null && message.failures.length === 0 && answer.tables.every((table) => table.outcome !== 'refused');
  endRound(state, ctx, complete && message.generation === state.generation);
}

/** Tells the schedule service to take the delay offsets broker-admin wrote (or already held) this round. */
function reloadDelayOffsets(state: State, tables: readonly TableSyncOutcome[], ctx: Ctx): void {
  const schedule = state.args.schedule;
  const delay = tables.find((table) => table.table === 'delayOffset');
  if (schedule === undefined || delay === undefined || (delay.outcome !== 'written' && delay.outcome !== 'unchanged')) return;
  // A tell the schedule service's full mailbox refuses is tried again after the next round.
  if (ctx.tell(schedule, { type: 'reloadOffsets' })) state.delayOffsetReloads++;
  else ctx.log.warn('schedule service did not take reloadOffsets; retried after the next round');
}

function onRoleChanged(state: State, message: ReplicasRoleChangedMessage, ctx: Ctx): void {
  state.generation++;
  const isSlave = message.role === 'SLAVE' && message.masterAddress !== '';
  if (!isSlave) {
    if (state.syncing) ctx.log.info({ role: message.role, masterEpoch: message.masterEpoch }, 'stop syncing metadata: this broker is master');
    state.masterAddr = null;
    return unfollow(state, ctx);
  }
  if (state.masterAddr !== message.masterAddress) {
    ctx.log.info({ from: state.masterAddr, to: message.masterAddress, masterEpoch: message.masterEpoch }, 'Update master address');
    if (state.masterAddr !== null) state.links.close(state.masterAddr);
    state.masterAddr = message.masterAddress;
  }
  follow(state, ctx);
}

function statsOf(state: State): SlaveSynchronizeStats {
  return {
    syncing: state.syncing,
    masterAddr: state.masterAddr,
    inFlight: state.inFlight,
    rounds: state.rounds,
    roundsComplete: state.roundsComplete,
    roundsIncomplete: state.roundsIncomplete,
    ticksSkipped: state.ticksSkipped,
    delayOffsetReloads: state.delayOffsetReloads,
    lastOutcomes: state.lastOutcomes,
    lastFailures: state.lastFailures,
  };
}

function handle(state: State, message: SlaveSynchronizeMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'roleChanged':
      return onRoleChanged(state, message, ctx);
    case 'tick':
      if (!state.syncing) return;
      if (state.inFlight) {
        state.ticksSkipped++;
        return;
      }
      return startRound(state, ctx);
    case 'fetched':
      return onFetched(state, message, ctx);
    case 'applied':
      return onApplied(state, message, ctx);
    case 'stats':
      return ctx.reply(statsOf(state));
    default:
      return assertNever(message, 'slave synchronize message');
  }
}

/** The slave synchronize behavior. */
export const slaveSynchronize: Behavior<State, SlaveSynchronizeMessage, SlaveSynchronizeArgs> = {
  init(args, ctx) {
    const settings = settingsOf(args);
    const links = new Links({
      clock: ctx.clock,
      connectTimeoutMs: settings.connectTimeoutMs,
      frameMaxBytes: settings.responseBodyBytesMax + FRAME_HEADER_ALLOWANCE_BYTES,
      log: (level, message, fields) => ctx.log[level](fields, message),
      connectionsMax: args.namesrvAddrs.length + 1,
    });
    const state: State = {
      args,
      settings,
      links,
      syncing: false,
      masterAddr: null,
      generation: 1,
      inFlight: false,
      roundPending: false,
      rounds: 0,
      roundsComplete: 0,
      roundsIncomplete: 0,
      ticksSkipped: 0,
      delayOffsetReloads: 0,
      lastOutcomes: [],
      lastFailures: [],
    };
    if (args.mode === 'static') {
      if (args.namesrvAddrs.length === 0) ctx.log.warn('a SLAVE without namesrvAddr cannot find its master: metadata is not synced');
      else follow(state, ctx);
    }
    return state;
  },

  receive(state, message, ctx) {
    handle(state, message, ctx);
    return state;
  },

  onStop(state) {
    state.links.closeAll(true);
  },
};

/** Spawns the slave synchronize actor of a slave (or controller-mode) broker, on the admin pool. */
export function spawnSlaveSynchronize(system: ActorSpawner, args: SlaveSynchronizeArgs, options: SpawnPlacement = {}): Promise<ActorRef<SlaveSynchronizeMessage>> {
  return system.spawn<SlaveSynchronizeMessage, SlaveSynchronizeArgs>({
    name: options.name ?? 'slave-synchronize',
    behavior: options.behavior ?? { module: new URL('./slave-synchronize.ts', import.meta.url).href, export: 'slaveSynchronize' },
    args,
    pool: options.pool ?? 'admin',
  });
}
