/**
 * The pull processor: RocketMQ's PullMessageProcessor, DefaultPullMessageResultHandler and
 * PullRequestHoldService as one actor. Several run on the `pull` pool; acceptors spread PULL_MESSAGE (11)
 * and LITE_PULL_MESSAGE (361) over them. Each serves a request in steps, each step one message:
 *
 *   remotingRequest -> parse header -> broker, group, topic and queue checks and the subscription (from
 *   a cached or fresh broker-admin `pullMetadata`) -> ask writer `get` -> filter (SQL92) -> answer, or
 *   hold (long polling)
 *
 * Answers (composeResponseHeader and the result handler, 5.x): FOUND -> SUCCESS with the raw records
 * concatenated as the body (the client splits them with MessageDecoder.decodes); NO_MATCHED_MESSAGE and
 * MESSAGE_WAS_REMOVING -> PULL_RETRY_IMMEDIATELY; OFFSET_OVERFLOW_ONE -> PULL_NOT_FOUND;
 * NO_MESSAGE_IN_QUEUE / NO_MATCHED_LOGIC_QUEUE -> PULL_OFFSET_MOVED unless the request asked for offset
 * 0, then PULL_NOT_FOUND; OFFSET_TOO_SMALL and OFFSET_OVERFLOW_BADLY -> PULL_OFFSET_MOVED. The header
 * carries the store's nextBeginOffset, minOffset, maxOffset, suggestWhichBrokerId (below), the topic's
 * topicSysFlag and the group's groupSysFlag; the remark is the store status, as RocketMQ writes it.
 *
 * Slaves and suggestWhichBrokerId (rejectRequest and composeResponseHeader). The broker's role is the
 * writer's when it served the read (its `get` answer carries it): SLAVE by config, or whatever the
 * controller last made it. A SLAVE without slaveReadEnable refuses every pull with SYSTEM_BUSY
 * "[REJECTREQUEST]..." (RocketMQ refuses before reading; here the role is known once the read answers, so
 * a check that fails first answers with its own refusal). With slaveReadEnable a read is
 * suggestPullingFromSlave when the last physical offset it returned lies more than
 * accessMessageInMemoryMaxRatio % of physical memory behind the CommitLog end (the data is no longer in
 * the page cache). A master then suggests the group's whichBrokerWhenConsumeSlowly, else the group's
 * brokerId; without slaveReadEnable always MASTER_ID. A slave suggests whichBrokerWhenConsumeSlowly for
 * such a read and serves it as is; for any other it suggests MASTER_ID and answers what it did not find
 * with PULL_RETRY_IMMEDIATELY (never held), as RocketMQ does while the group's smallest brokerId is the
 * master's (always here: slaveActingMaster is not implemented). The client pulls from the suggested
 * broker next, or from any broker of the set when that one is not in its route.
 *
 * Checks, in PullMessageProcessor's order, over one broker-admin `pullMetadata` snapshot per group and
 * topic, kept metadataCacheTtlMs and shared by every pull waiting for it: a broker without read
 * permission -> NO_PERMISSION; the group (findSubscriptionGroupConfig, which creates a missing group when
 * autoCreateSubscriptionGroup allows) refused with broker-admin's code, or NO_PERMISSION with
 * forbiddenType GROUP_FORBIDDEN when its consumeEnable is false; an unknown topic -> TOPIC_NOT_EXIST (a
 * pull never creates one), one without read permission -> NO_PERMISSION (TOPIC_FORBIDDEN); a queueId
 * outside 0..readQueueNums-1 -> SYSTEM_ERROR; then the subscription (below). A cached snapshot may be a
 * second old: a pull it would refuse for want of the group's registered subscription (or of a recent
 * enough one) asks again once, so a consumer that has just sent its heartbeat is not refused.
 *
 * Long polling. Only PULL_NOT_FOUND is held, and only when sysFlag has FLAG_SUSPEND: the request waits
 * up to suspendTimeoutMillis (capped at suspendMaxMs) from the moment it is held. The writer tells every
 * processor which queues grew after each dispatch turn (`arrived`); a held request on a grown queue whose
 * new maxOffset passes its offset is read again. At its deadline a held request is read once more and
 * answered whatever that read finds (RocketMQ's executeRequestWhenWakeup with brokerAllowSuspend false);
 * deadlines are swept by one timer at a 100 ms resolution. RocketMQ also re-checks every held queue
 * every 5 s; here the arrival notices replace that check, and the deadline read covers a notice that
 * never came. Because the writer forgets its watchers when it restarts, each processor registers again
 * every rewatchIntervalMs.
 *
 * A notice can overtake the answer of a read it concerns (the reply comes back through a promise, the
 * notice straight into the mailbox), so a notice for a request whose read is in flight marks it `dirty`,
 * and a dirty read that finds nothing is read again instead of being held.
 *
 * A woken request whose new messages all fail its filter is not answered: it stays held, reading on from
 * where that read stopped, as RocketMQ's hold service keeps a request whose arriving message does not
 * match. Its answer then carries the advanced nextBeginOffset, so the consumer skips what was filtered.
 *
 * Subscriptions. With FLAG_SUBSCRIPTION the pull carries its own (FilterAPI.build); without it (a push
 * consumer's default) the broker uses the one the group's heartbeat registered, as RocketMQ reads its
 * ConsumerGroupInfo: no client of the group online, or none subscribed to the topic ->
 * SUBSCRIPTION_NOT_EXIST; a BROADCASTING group whose consumeBroadcastEnable is false -> NO_PERMISSION
 * (BROADCASTING_DISABLE_FORBIDDEN); a registered subVersion older than the pull's ->
 * SUBSCRIPTION_NOT_LATEST; a registered SQL92 expression that does not compile (RocketMQ's
 * ConsumerFilterManager never registers it) -> FILTER_DATA_NOT_EXIST.
 * TAG: `*` or empty takes everything; otherwise `a || b` is split into exact tags that the store matches
 * by hash, then by the TAGS property (RocketMQ's broker matches the hash only; its client then drops what
 * a hash collision let through). ClassFilter mode takes everything, as ExpressionMessageFilter does.
 * SQL92 (only with enablePropertyFilter, else SYSTEM_ERROR): compiled once per expression (bounded cache)
 * and evaluated here over each returned record's properties (TAGS among them); when it drops every
 * message of a FOUND read the status becomes NO_MATCHED_MESSAGE with the read's nextBeginOffset, so the
 * consumer moves past them. A posted SQL92 expression that is empty or does not compile, or a posted
 * expression type other than TAG and SQL92, is SUBSCRIPTION_PARSE_FAILED (23).
 *
 * commitOffset. With FLAG_COMMIT_OFFSET and commitOffset >= 0 the first read asks broker-admin
 * `commitOffset` beside it (tryCommitOffset; RocketMQ 5 no longer checks the broker role there), and the
 * pull is answered only once broker-admin has stored it: RocketMQ commits before it writes the response,
 * so a QUERY_CONSUMER_OFFSET sent after the answer sees the offset (a message to another thread may
 * otherwise arrive after the client's next request). A commit broker-admin does not confirm is logged
 * and does not hold the answer back.
 *
 * Bounds: at most readsInFlightMax requests being checked or read, and heldMax held; past either the
 * client gets SYSTEM_BUSY "[OVERLOAD]...", which makes it pull again after pullTimeDelayMillsWhenException
 * (a PULL_NOT_FOUND would make a push consumer pull again at once, a busy loop). broker-admin's
 * metadata answers and compiled filters are kept in insertion-ordered maps that drop their oldest entry
 * when full.
 *
 * Deliberate differences: the group, topic and registered subscription are up to metadataCacheTtlMs
 * old (RocketMQ reads them on every pull), so a topic deleted or a consumer unregistered is noticed
 * that much later. A read that returns no message is never suggestPullingFromSlave (RocketMQ measures
 * from the last ConsumeQueue entry it looked at, which the store does not report). A refused slave read
 * may still have committed its offset when the processor did not yet know the role (its first read, or
 * the first after a demotion): the slave's offsets are replaced at the next metadata sync. A posted
 * SQL92 expression that does not compile is refused with SUBSCRIPTION_PARSE_FAILED, the code
 * CHECK_CLIENT_CONFIG gives it: RocketMQ (assertions off) keeps no filter data for it and so lets every
 * message through. Held requests live in memory: after a restart
 * their clients retry at their own timeout (30 s), as after a broker restart.
 */
import type { ActorContext, ActorRef, ActorSpawner, ActorSpec, Behavior, BehaviorSource, PipeResult } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { RuntimeError, RuntimeErrorCode, describeError } from '../runtime/errors.ts';
import { compileSql92, FilterError, isSql92, isTagType, type CompiledFilter } from '../filter/sql92.ts';
import type { SubscriptionData } from '../net/remoting/broker-bodies.ts';
import {
  HeaderError,
  headerErrorResponse,
  PullMessageRequestHeader,
  PullMessageResponseHeader,
  PullSysFlag,
  type PullMessageRequest,
} from '../net/remoting/broker-headers.ts';
import { MASTER_ID, PermName } from '../net/remoting/namesrv-protocol.ts';
import {
  createNotSupportedResponse,
  createResponse,
  isOneway,
  RequestCode,
  ResponseCode,
  type RemotingCommand,
} from '../net/remoting/remoting-command.ts';
import { decodeRecord } from '../storage/message-record.ts';
import type { GetMessageResult, GetMessageStatus, StoredMessage } from '../storage/message-store.ts';
import type { BrokerAdminMessage, BrokerProcessorArgs, PullMetadataAnswer } from './broker-context.ts';
import type { ArrivalNotice, BrokerRole, CommitLogWriterMessage, GetAnswer } from './commit-log-writer.ts';
import { channelKey, type ChannelClosedMessage, type RemotingChannel, type RemotingRequestMessage } from './remoting-routes.ts';

// ---------------------------------------------------------------------------------------------------
// Constants and the public surface

/** Defaults of the processor's bounds and intervals. */
export const PULL_PROCESSOR_DEFAULTS = {
  /** Held (long-polling) requests per processor; RocketMQ's table is unbounded. */
  heldMax: 16_384,
  /** Requests being checked or read at once per processor. */
  readsInFlightMax: 4_096,
  /** Longest hold, whatever suspendTimeoutMillis says (clients send 15 s push, 20 s lite pull). */
  suspendMaxMs: 60_000,
  /** Compiled SQL92 expressions kept. */
  filterCacheMax: 1_024,
  /** (group, topic) pairs whose broker-admin `pullMetadata` answer is kept, and for how long. */
  metadataCacheMax: 4_096,
  metadataCacheTtlMs: 1_000,
  /** How often the processor registers with the writer again (a restarted writer forgot it). */
  rewatchIntervalMs: 5_000,
} as const;

/** Overrides of PULL_PROCESSOR_DEFAULTS. */
export type PullProcessorTuning = { readonly [K in keyof typeof PULL_PROCESSOR_DEFAULTS]?: number };

/**
 * What decides whether this broker serves pulls as a slave and where it steers consumers; absent, RocketMQ's
 * default: slaveReadEnable false (then memory plays no part).
 */
export type PullSlaveReadSettings = {
  /** BrokerConfig.slaveReadEnable. */
  readonly slaveReadEnable: boolean;
  /** MessageStoreConfig.accessMessageInMemoryMaxRatio, a percentage of totalPhysicalMemorySizeBytes. */
  readonly accessMessageInMemoryMaxRatio: number;
  /** The machine's physical memory (StoreUtil.TOTAL_PHYSICAL_MEMORY_SIZE; os.totalmem() at start). */
  readonly totalPhysicalMemorySizeBytes: number;
};

/** Start arguments: every processor's, plus optional tuning and slave-read settings. */
export type PullProcessorArgs = BrokerProcessorArgs & { readonly pull?: PullProcessorTuning; readonly slaveRead?: PullSlaveReadSettings };

/** The request codes a pull processor serves (route both to it). */
export const PULL_REQUEST_CODES = [RequestCode.PULL_MESSAGE, RequestCode.LITE_PULL_MESSAGE] as const;

/** Remark of the flow-control answer (NettyRemotingAbstract's thread-pool rejection). */
export const OVERLOAD_REMARK = '[OVERLOAD]system busy, start flow control for a while';

/** Remark of the SYSTEM_BUSY a slave without slaveReadEnable answers (NettyRemotingAbstract's rejectRequest). */
export const REJECT_REQUEST_REMARK = '[REJECTREQUEST]system busy, start flow control for a while';

/** SubscriptionGroupConfig.whichBrokerWhenConsumeSlowly's default. */
const WHICH_BROKER_WHEN_CONSUME_SLOWLY_DEFAULT = 1;

/** RocketMQ's ForbiddenType, sent with NO_PERMISSION to say what forbids the pull. */
const ForbiddenType = { GROUP_FORBIDDEN: 2, TOPIC_FORBIDDEN: 3, BROADCASTING_DISABLE_FORBIDDEN: 4 } as const;

/** FAQUrl.suggestTodo, appended to some refusals as RocketMQ appends it. */
const FAQ_SUGGESTION = '\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.';

/** Counters for tests and the status view. */
export type PullProcessorStats = {
  readonly held: number;
  readonly inFlight: number;
  requests: number;
  found: number;
  notFound: number;
  retryImmediately: number;
  offsetMoved: number;
  /** Answers with any other code (bad header, subscription, group, topic, store failure, overload). */
  refused: number;
  holds: number;
  wakeups: number;
  timeouts: number;
  overloaded: number;
};

type Counters = Omit<PullProcessorStats, 'held' | 'inFlight'>;

/** Internal steps, told to itself. `epoch` tells this incarnation's results from an earlier one's. */
export type PullProcessorStep =
  | { readonly type: 'metadataLooked'; readonly epoch: number; readonly key: string; readonly result: PipeResult<PullMetadataAnswer> }
  | { readonly type: 'readDone'; readonly epoch: number; readonly taskId: number; readonly result: PipeResult<GetAnswer> }
  | { readonly type: 'commitDone'; readonly epoch: number; readonly taskId: number; readonly result: PipeResult<unknown> }
  | { readonly type: 'deadline' }
  | { readonly type: 'rewatch' };

/** Everything a pull processor takes; `stats` is an ask answered with PullProcessorStats. */
export type PullProcessorMessage =
  | RemotingRequestMessage
  | ChannelClosedMessage
  | ArrivalNotice
  | PullProcessorStep
  | { readonly type: 'stats' };

/** Where the behavior lives, for ActorSpec.behavior. */
export const pullProcessorSource: BehaviorSource = { module: import.meta.url, export: 'pullProcessor' };

// ---------------------------------------------------------------------------------------------------
// State

/** What a request subscribes to: exact tags (absent: all) and a SQL92 filter evaluated here. */
type Subscription = { readonly tags?: readonly string[]; readonly sql?: CompiledFilter };

type Task = {
  readonly id: number;
  readonly request: Pick<RemotingCommand, 'opaque' | 'serializeType' | 'flag'>;
  readonly channel: RemotingChannel;
  readonly header: PullMessageRequest;
  readonly queueKey: string;
  /** The (group, topic) key of the broker-admin metadata the checks read. */
  readonly metadataKey: string;
  /** Set once the checks have passed. */
  subscription: Subscription | undefined;
  /** The checks read a snapshot asked for after this request came (not one from the cache). */
  fresh: boolean;
  readonly suspend: boolean;
  phase: 'checks' | 'read' | 'held';
  /** Where the next read starts: the request's offset, moved on only past filtered messages. */
  readFrom: number;
  /** Set when first held; Infinity before. */
  deadlineMs: number;
  /** A notice passed readFrom while a read was in flight. */
  dirty: boolean;
  /** Whether the request was held at least once (then a no-match read keeps it held). */
  wasHeld: boolean;
  firstRead: boolean;
  /** The connection closed while a read was in flight: drop the answer. */
  closed: boolean;
  /** The pulled commitOffset is being stored: the answer waits (in `parked`) until it is. */
  commitPending: boolean;
  parked: RemotingCommand | undefined;
  groupSysFlag: number;
  topicSysFlag: number;
  /** The group's brokerId and whichBrokerWhenConsumeSlowly (SubscriptionGroupConfig), for the suggestion. */
  groupBrokerId: number;
  whichBrokerWhenConsumeSlowly: number;
  /** What the answer suggests; set by the last read. */
  suggestWhichBrokerId: number;
};

type Limits = { readonly [K in keyof typeof PULL_PROCESSOR_DEFAULTS]: number };

type State = {
  readonly args: PullProcessorArgs;
  readonly limits: Limits;
  readonly slaveRead: PullSlaveReadSettings;
  /** The role the last read answer carried; undefined before the first. */
  lastRole: BrokerRole | undefined;
  readonly epoch: number;
  nextTaskId: number;
  readonly tasks: Map<number, Task>;
  /** topic + queueId -> tasks reading or held on it (for arrival notices). */
  readonly byQueue: Map<string, Set<number>>;
  /** Tasks waiting for broker-admin's `pullMetadata` answer, by (group, topic). */
  readonly metadataLookups: Map<string, number[]>;
  readonly metadataCache: Map<string, { readonly answer: PullMetadataAnswer; readonly expiresMs: number }>;
  readonly filterCache: Map<string, CompiledFilter | FilterError>;
  held: number;
  inFlight: number;
  /** When the deadline timer fires; Infinity when it is not set. */
  deadlineTimerDueMs: number;
  readonly counters: Counters;
};

type Ctx = ActorContext<PullProcessorMessage>;

const TIMER_DEADLINE = 'deadline';
const TIMER_REWATCH = 'rewatch';
/** Granularity of hold deadlines (RocketMQ's hold service checks them every 5 s). */
const DEADLINE_RESOLUTION_MS = 100;

function queueKeyOf(topic: string, queueId: number): string {
  return `${topic}\u0000${queueId}`;
}

function metadataKeyOf(group: string, topic: string): string {
  return `${group}\u0000${topic}`;
}

/** Adds to an insertion-ordered cache, dropping the oldest entry when it is full. */
function cachePut<K, V>(cache: Map<K, V>, key: K, value: V, max: number): void {
  cache.delete(key);
  if (cache.size >= max) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, value);
  assert(cache.size <= max, 'cache stays within its bound');
}

// ---------------------------------------------------------------------------------------------------
// Status mapping and responses

/** The response code RocketMQ gives a store status (composeResponseHeader); `requestOffset` is the pull's. */
export function responseCodeOf(status: GetMessageStatus | 'OFFSET_FOUND_NULL', requestOffset: number): number {
  switch (status) {
    case 'FOUND':
      return ResponseCode.SUCCESS;
    case 'MESSAGE_WAS_REMOVING':
    case 'NO_MATCHED_MESSAGE':
      return ResponseCode.PULL_RETRY_IMMEDIATELY;
    case 'NO_MATCHED_LOGIC_QUEUE':
    case 'NO_MESSAGE_IN_QUEUE':
      return requestOffset !== 0 ? ResponseCode.PULL_OFFSET_MOVED : ResponseCode.PULL_NOT_FOUND;
    case 'OFFSET_FOUND_NULL':
    case 'OFFSET_OVERFLOW_ONE':
      return ResponseCode.PULL_NOT_FOUND;
    case 'OFFSET_OVERFLOW_BADLY':
    case 'OFFSET_TOO_SMALL':
      return ResponseCode.PULL_OFFSET_MOVED;
    default:
      return assertNever(status, 'get message status');
  }
}

/** The raw records one after another, exactly as stored; each record's size field is checked. */
export function concatRecords(messages: readonly StoredMessage[]): Uint8Array {
  let total = 0;
  for (const message of messages) total += message.record.length;
  const body = new Uint8Array(total);
  let at = 0;
  for (const message of messages) {
    const record = message.record;
    const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
    assert(record.length >= 4 && view.getInt32(0) === record.length, () => `record at ${message.physicalOffset} holds its own size`);
    body.set(record, at);
    at += record.length;
  }
  assert(at === total, 'body holds every record');
  return body;
}

function pullResponse(task: Task, result: GetMessageResult, code: number): RemotingCommand {
  const extFields = PullMessageResponseHeader.format({
    suggestWhichBrokerId: task.suggestWhichBrokerId,
    nextBeginOffset: result.nextBeginOffset,
    minOffset: result.minOffset,
    maxOffset: result.maxOffset,
    topicSysFlag: task.topicSysFlag,
    groupSysFlag: task.groupSysFlag,
  });
  const body = code === ResponseCode.SUCCESS ? concatRecords(result.messages) : undefined;
  return createResponse(task.request, code, result.status, body === undefined ? { extFields } : { extFields, body });
}

function overloaded(request: Pick<RemotingCommand, 'opaque' | 'serializeType'>): RemotingCommand {
  return createResponse(request, ResponseCode.SYSTEM_BUSY, OVERLOAD_REMARK);
}

/** What a failed ask becomes: flow control when the target was full, SYSTEM_ERROR otherwise. */
function askFailure(task: Task, what: string, error: unknown): RemotingCommand {
  const code = error instanceof RuntimeError ? error.code : undefined;
  if (code === RuntimeErrorCode.mailboxFull || code === RuntimeErrorCode.askLimit) return overloaded(task.request);
  return createResponse(task.request, ResponseCode.SYSTEM_ERROR, `${what} failed: ${code ?? describeError(error).split('\n')[0]}`);
}

// ---------------------------------------------------------------------------------------------------
// Subscriptions

/** FilterAPI.buildSubscriptionData: `*` or empty is everything, else the trimmed non-empty `||` parts. */
export function parseTagExpression(expression: string | undefined): readonly string[] | undefined {
  if (expression === undefined || expression === '' || expression === '*') return undefined;
  return expression.split('||').map((tag) => tag.trim()).filter((tag) => tag.length > 0);
}

function isRefusal(subscription: Subscription | RemotingCommand): subscription is RemotingCommand {
  return 'opaque' in subscription;
}

/** A task's subscription once its checks have passed (refusals are answered before reading). */
function usableSubscription(task: Task): Subscription {
  const subscription = task.subscription;
  assert(subscription !== undefined, 'a task is read only after its checks');
  return subscription;
}

function refuse(request: Task['request'], code: number, remark: string, forbiddenType?: number): RemotingCommand {
  return forbiddenType === undefined
    ? createResponse(request, code, remark)
    : createResponse(request, code, remark, { extFields: { forbiddenType: String(forbiddenType) } });
}

/** FilterAPI.build over the pull's own subscription, or the answer RocketMQ gives when it cannot be used. */
function postedSubscription(state: State, header: PullMessageRequest, request: Task['request']): Subscription | RemotingCommand {
  const type = header.expressionType;
  if (isTagType(type)) {
    const tags = parseTagExpression(header.subscription);
    return tags === undefined ? {} : { tags };
  }
  const expression = header.subscription ?? '';
  if (expression === '') return refuse(request, ResponseCode.SUBSCRIPTION_PARSE_FAILED, "parse the consumer's subscription failed");
  if (!state.args.settings.enablePropertyFilter) return propertyFilterOff(request, type);
  if (!isSql92(type)) return refuse(request, ResponseCode.SUBSCRIPTION_PARSE_FAILED, "parse the consumer's subscription failed");
  const compiled = compiledFilter(state, expression);
  if (compiled instanceof FilterError) return refuse(request, ResponseCode.SUBSCRIPTION_PARSE_FAILED, "parse the consumer's subscription failed");
  return { sql: compiled };
}

function propertyFilterOff(request: Task['request'], type: string | undefined): RemotingCommand {
  return refuse(request, ResponseCode.SYSTEM_ERROR, `The broker does not support consumer to filter message by ${type}`);
}

/**
 * The subscription the group's heartbeat registered (ConsumerGroupInfo.findSubscriptionData), the
 * answer RocketMQ gives without one, or 'stale' when a fresher snapshot might have it.
 */
function registeredSubscription(
  state: State,
  task: Task,
  metadata: PullMetadataAnswer,
  group: { readonly consumeBroadcastEnable: boolean },
): Subscription | RemotingCommand | 'stale' {
  const { header, request } = task;
  const consumer = metadata.consumer;
  if (consumer === undefined) {
    return task.fresh ? refuse(request, ResponseCode.SUBSCRIPTION_NOT_EXIST, `the consumer's group info not exist${FAQ_SUGGESTION}`) : 'stale';
  }
  if (!group.consumeBroadcastEnable && consumer.messageModel === 'BROADCASTING') {
    const remark = `the consumer group[${header.consumerGroup}] can not consume by broadcast way`;
    return refuse(request, ResponseCode.NO_PERMISSION, remark, ForbiddenType.BROADCASTING_DISABLE_FORBIDDEN);
  }
  const data = consumer.subscription;
  if (data === undefined) {
    return task.fresh ? refuse(request, ResponseCode.SUBSCRIPTION_NOT_EXIST, `the consumer's subscription not exist${FAQ_SUGGESTION}`) : 'stale';
  }
  if (data.subVersion < header.subVersion) {
    return task.fresh ? refuse(request, ResponseCode.SUBSCRIPTION_NOT_LATEST, "the consumer's subscription not latest") : 'stale';
  }
  if (data.classFilterMode) return {};
  if (isTagType(data.expressionType)) return { ...tagsOf(data) };
  const compiled = isSql92(data.expressionType) ? compiledFilter(state, data.subString) : undefined;
  if (compiled === undefined || compiled instanceof FilterError) {
    return refuse(request, ResponseCode.FILTER_DATA_NOT_EXIST, "The broker's consumer filter data is not exist!Your expression may be wrong!");
  }
  if (!state.args.settings.enablePropertyFilter) return propertyFilterOff(request, data.expressionType);
  return { sql: compiled };
}

/** A registered TAG subscription: `*` takes all, else its tagsSet (or its expression when that is empty). */
function tagsOf(data: SubscriptionData): { tags?: readonly string[] } {
  if (data.subString === '*' || data.subString === '') return {};
  const tags = data.tagsSet.length > 0 ? data.tagsSet : parseTagExpression(data.subString);
  return tags === undefined ? {} : { tags };
}

function compiledFilter(state: State, expression: string): CompiledFilter | FilterError {
  const cached = state.filterCache.get(expression);
  if (cached !== undefined) return cached;
  let compiled: CompiledFilter | FilterError;
  try {
    compiled = compileSql92(expression);
  } catch (error) {
    if (!(error instanceof FilterError)) throw error;
    compiled = error;
  }
  cachePut(state.filterCache, expression, compiled, state.limits.filterCacheMax);
  return compiled;
}

/** Keeps the records the SQL92 filter accepts; a FOUND read that keeps none is NO_MATCHED_MESSAGE. */
function applySql(subscription: Subscription, result: GetMessageResult): GetMessageResult {
  const sql = subscription.sql;
  if (sql === undefined || result.status !== 'FOUND') return result;
  const messages = result.messages.filter((message) => sql.matches(decodeRecord(message.record, 0).propertiesMap()));
  if (messages.length === result.messages.length) return result;
  return { ...result, status: messages.length > 0 ? 'FOUND' : 'NO_MATCHED_MESSAGE', messages };
}

// ---------------------------------------------------------------------------------------------------
// Task life

function answer(state: State, task: Task, response: RemotingCommand, ctx: Ctx): void {
  if (task.commitPending) {
    assert(task.phase === 'read' && task.parked === undefined, 'a read task parks one answer');
    task.parked = response;
    return;
  }
  forget(state, task);
  count(state, response.code);
  if (isOneway(task.request)) return;
  const { acceptor, connectionId } = task.channel;
  if (!ctx.tell(acceptor, { type: 'respond', connectionId, response })) {
    ctx.log.warn({ opaque: task.request.opaque, acceptor: acceptor.name }, 'acceptor did not take the pull answer');
  }
}

function count(state: State, code: number): void {
  const counters = state.counters;
  if (code === ResponseCode.SUCCESS) counters.found++;
  else if (code === ResponseCode.PULL_NOT_FOUND) counters.notFound++;
  else if (code === ResponseCode.PULL_RETRY_IMMEDIATELY) counters.retryImmediately++;
  else if (code === ResponseCode.PULL_OFFSET_MOVED) counters.offsetMoved++;
  else counters.refused++;
}

function forget(state: State, task: Task): void {
  assert(state.tasks.get(task.id) === task, 'a task is forgotten once');
  state.tasks.delete(task.id);
  if (task.phase === 'held') state.held--;
  else state.inFlight--;
  const onQueue = state.byQueue.get(task.queueKey);
  if (onQueue !== undefined && onQueue.delete(task.id) && onQueue.size === 0) state.byQueue.delete(task.queueKey);
  assert(state.held >= 0 && state.inFlight >= 0, 'task counts stay non-negative');
}

function onRequest(state: State, message: RemotingRequestMessage, ctx: Ctx): void {
  const { request, channel } = message;
  state.counters.requests++;
  const reply = (response: RemotingCommand): void => {
    count(state, response.code);
    if (!isOneway(request)) ctx.tell(channel.acceptor, { type: 'respond', connectionId: channel.connectionId, response });
  };
  if (request.code !== RequestCode.PULL_MESSAGE && request.code !== RequestCode.LITE_PULL_MESSAGE) return reply(createNotSupportedResponse(request));
  let header: PullMessageRequest;
  try {
    header = PullMessageRequestHeader.parse(request.extFields);
  } catch (error) {
    if (error instanceof HeaderError) return reply(headerErrorResponse(request, error));
    throw error;
  }
  if (state.inFlight >= state.limits.readsInFlightMax) {
    state.counters.overloaded++;
    return reply(overloaded(request));
  }
  const task: Task = {
    id: state.nextTaskId++,
    request: { opaque: request.opaque, serializeType: request.serializeType, flag: request.flag },
    channel,
    header,
    queueKey: queueKeyOf(header.topic, header.queueId),
    metadataKey: metadataKeyOf(header.consumerGroup, header.topic),
    subscription: undefined,
    fresh: false,
    suspend: (header.sysFlag & PullSysFlag.FLAG_SUSPEND) !== 0,
    phase: 'checks',
    readFrom: header.queueOffset,
    deadlineMs: Number.POSITIVE_INFINITY,
    dirty: false,
    wasHeld: false,
    firstRead: true,
    closed: false,
    commitPending: false,
    parked: undefined,
    groupSysFlag: 0,
    topicSysFlag: 0,
    groupBrokerId: MASTER_ID,
    whichBrokerWhenConsumeSlowly: WHICH_BROKER_WHEN_CONSUME_SLOWLY_DEFAULT,
    suggestWhichBrokerId: MASTER_ID,
  };
  state.tasks.set(task.id, task);
  state.inFlight++;
  lookupMetadata(state, task, false, ctx);
}

/**
 * The checks read broker-admin's `pullMetadata` for the task's group and topic: a cached snapshot unless
 * `fresh` is asked for, else the answer of the ask already running for that key, else a new ask.
 */
function lookupMetadata(state: State, task: Task, fresh: boolean, ctx: Ctx): void {
  const key = task.metadataKey;
  const cached = state.metadataCache.get(key);
  if (!fresh && cached !== undefined && cached.expiresMs > ctx.clock.nowMs()) return afterMetadata(state, task, cached.answer, ctx);
  const waiting = state.metadataLookups.get(key);
  if (waiting !== undefined) {
    waiting.push(task.id);
    return;
  }
  state.metadataLookups.set(key, [task.id]);
  const epoch = state.epoch;
  const message: BrokerAdminMessage = { type: 'pullMetadata', group: task.header.consumerGroup, topic: task.header.topic };
  ctx.pipeToSelf(ctx.ask<BrokerAdminMessage, PullMetadataAnswer>(state.args.refs.admin, message), (result) => ({ type: 'metadataLooked', epoch, key, result }));
}

function onMetadataLooked(state: State, message: Extract<PullProcessorStep, { type: 'metadataLooked' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const waiting = state.metadataLookups.get(message.key) ?? [];
  state.metadataLookups.delete(message.key);
  const result = message.result;
  if (result.ok) {
    const entry = { answer: result.value, expiresMs: ctx.clock.nowMs() + state.limits.metadataCacheTtlMs };
    cachePut(state.metadataCache, message.key, entry, state.limits.metadataCacheMax);
  } else {
    ctx.log.warn({ key: message.key.replace('\u0000', ' / '), err: describeError(result.error) }, 'broker-admin did not answer pullMetadata');
  }
  for (const id of waiting) {
    const task = state.tasks.get(id);
    if (task === undefined) continue;
    task.fresh = true;
    if (task.closed) forget(state, task);
    else if (result.ok) afterMetadata(state, task, result.value, ctx);
    else answer(state, task, askFailure(task, 'broker-admin pullMetadata', result.error), ctx);
  }
}

/** The broker, group, topic and queue checks, in PullMessageProcessor's order; the refusal, or undefined. */
function checkRefusal(state: State, task: Task, metadata: PullMetadataAnswer): RemotingCommand | undefined {
  const { header, request } = task;
  if ((metadata.brokerPermission & PermName.PERM_READ) === 0) {
    return refuse(request, ResponseCode.NO_PERMISSION, `the broker[${state.args.identity.storeHost.address}] pulling message is forbidden`);
  }
  const group = metadata.group;
  if (!group.ok) return refuse(request, group.code, group.remark);
  if (!group.consumeEnable) {
    return refuse(request, ResponseCode.NO_PERMISSION, `subscription group no permission, ${header.consumerGroup}`, ForbiddenType.GROUP_FORBIDDEN);
  }
  const topic = metadata.topic;
  if (topic === undefined) {
    return refuse(request, ResponseCode.TOPIC_NOT_EXIST, `topic[${header.topic}] not exist, apply first please! ${FAQ_SUGGESTION}`);
  }
  if ((topic.perm & PermName.PERM_READ) === 0) {
    return refuse(request, ResponseCode.NO_PERMISSION, `the topic[${header.topic}] pulling message is forbidden`, ForbiddenType.TOPIC_FORBIDDEN);
  }
  if (header.queueId < 0 || header.queueId >= topic.readQueueNums) {
    const remark = `queueId[${header.queueId}] is illegal, topic:[${header.topic}] topicConfig.readQueueNums:[${topic.readQueueNums}] consumer:[${task.channel.remoteAddress}]`;
    return refuse(request, ResponseCode.SYSTEM_ERROR, remark);
  }
  return undefined;
}

function afterMetadata(state: State, task: Task, metadata: PullMetadataAnswer, ctx: Ctx): void {
  assert(task.phase === 'checks', 'checks run before reading');
  const refusal = checkRefusal(state, task, metadata);
  if (refusal !== undefined) return answer(state, task, refusal, ctx);
  assert(metadata.group.ok && metadata.topic !== undefined, 'checks passed on a known group and topic');
  const { header, request } = task;
  let subscription: Subscription | RemotingCommand | 'stale';
  if ((header.sysFlag & PullSysFlag.FLAG_CLASS_FILTER) !== 0) subscription = {};
  else if ((header.sysFlag & PullSysFlag.FLAG_SUBSCRIPTION) !== 0) subscription = postedSubscription(state, header, request);
  else subscription = registeredSubscription(state, task, metadata, metadata.group);
  if (subscription === 'stale') return lookupMetadata(state, task, true, ctx);
  if (isRefusal(subscription)) return answer(state, task, subscription, ctx);
  task.subscription = subscription;
  task.groupSysFlag = metadata.group.groupSysFlag;
  task.topicSysFlag = metadata.topic.topicSysFlag;
  // broker-admin's answer may not carry these yet (PullMetadataAnswer does not name them): RocketMQ's defaults.
  task.groupBrokerId = metadata.group.brokerId;
  task.whichBrokerWhenConsumeSlowly = metadata.group.whichBrokerWhenConsumeSlowly;
  let onQueue = state.byQueue.get(task.queueKey);
  if (onQueue === undefined) {
    onQueue = new Set();
    state.byQueue.set(task.queueKey, onQueue);
  }
  onQueue.add(task.id);
  startRead(state, task, ctx);
}

function startRead(state: State, task: Task, ctx: Ctx): void {
  if (task.phase === 'held') {
    state.held--;
    state.inFlight++;
  }
  task.phase = 'read';
  task.dirty = false;
  if (task.firstRead) {
    task.firstRead = false;
    commitOffset(state, task, ctx);
  }
  const subscription = usableSubscription(task);
  const get: CommitLogWriterMessage = {
    type: 'get',
    topic: task.header.topic,
    queueId: task.header.queueId,
    queueOffset: task.readFrom,
    maxMsgNums: Math.max(1, task.header.maxMsgNums),
    ...(subscription.tags === undefined ? {} : { tags: subscription.tags }),
  };
  const epoch = state.epoch;
  const taskId = task.id;
  ctx.pipeToSelf(ctx.ask<CommitLogWriterMessage, GetAnswer>(state.args.refs.writer, get), (result) => ({ type: 'readDone', epoch, taskId, result }));
}

function onReadDone(state: State, message: Extract<PullProcessorStep, { type: 'readDone' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const task = state.tasks.get(message.taskId);
  if (task === undefined) return;
  assert(task.phase === 'read', 'a read answers a reading task');
  if (task.closed) return forget(state, task);
  if (!message.result.ok) return answer(state, task, askFailure(task, 'store getMessage', message.result.error), ctx);
  const got = message.result.value;
  state.lastRole = got.role;
  if (refusesReads(state, got.role)) return answer(state, task, createResponse(task.request, ResponseCode.SYSTEM_BUSY, REJECT_REQUEST_REMARK), ctx);
  const suggestion = suggestionOf(state, task, got);
  task.suggestWhichBrokerId = suggestion.brokerId;
  const result = applySql(usableSubscription(task), got);
  if (suggestion.toMaster && result.status !== 'FOUND') return answer(state, task, pullResponse(task, result, ResponseCode.PULL_RETRY_IMMEDIATELY), ctx);
  const code = responseCodeOf(result.status, task.header.queueOffset);
  const mayHold = task.suspend && !isOneway(task.request) && ctx.clock.nowMs() < task.deadlineMs;
  if (mayHold && code === ResponseCode.PULL_NOT_FOUND) return holdOrReadAgain(state, task, ctx);
  if (mayHold && task.wasHeld && result.status === 'NO_MATCHED_MESSAGE') {
    assert(result.nextBeginOffset > task.readFrom, 'a no-match read moves on');
    task.readFrom = result.nextBeginOffset;
    return holdOrReadAgain(state, task, ctx);
  }
  answer(state, task, pullResponse(task, result, code), ctx);
}

/** PullMessageProcessor.rejectRequest: a slave serves pulls only with slaveReadEnable. */
function refusesReads(state: State, role: BrokerRole | undefined): boolean {
  return role === 'SLAVE' && !state.slaveRead.slaveReadEnable;
}

/**
 * DefaultMessageStore.getMessage's suggestPullingFromSlave: the read's last message lies further behind
 * the CommitLog end than accessMessageInMemoryMaxRatio % of physical memory.
 */
export function suggestPullingFromSlave(got: GetAnswer, settings: PullSlaveReadSettings): boolean {
  const last = got.messages[got.messages.length - 1];
  if (last === undefined) return false;
  const memoryBytes = Math.floor(settings.totalPhysicalMemorySizeBytes * (settings.accessMessageInMemoryMaxRatio / 100));
  return got.maxPhysicalOffset - last.physicalOffset > memoryBytes;
}

/**
 * composeResponseHeader's suggestWhichBrokerId (see the file comment); `toMaster`: a slave sends the
 * consumer back to the master, answering what it did not find with PULL_RETRY_IMMEDIATELY.
 */
function suggestionOf(state: State, task: Task, got: GetAnswer): { readonly brokerId: number; readonly toMaster: boolean } {
  if (!state.slaveRead.slaveReadEnable) {
    assert(got.role !== 'SLAVE', 'a slave without slaveReadEnable refuses before suggesting');
    return { brokerId: MASTER_ID, toMaster: false };
  }
  const slow = suggestPullingFromSlave(got, state.slaveRead);
  if (got.role === 'SLAVE') return slow ? { brokerId: task.whichBrokerWhenConsumeSlowly, toMaster: false } : { brokerId: MASTER_ID, toMaster: true };
  return { brokerId: slow ? task.whichBrokerWhenConsumeSlowly : task.groupBrokerId, toMaster: false };
}

/** Asks broker-admin to store the pull's commitOffset, beside the first read (see the file comment). */
function commitOffset(state: State, task: Task, ctx: Ctx): void {
  const header = task.header;
  if ((header.sysFlag & PullSysFlag.FLAG_COMMIT_OFFSET) === 0 || header.commitOffset < 0) return;
  // A slave that refuses reads stores nothing for them (RocketMQ refuses before committing).
  if (refusesReads(state, state.lastRole)) return;
  const message: BrokerAdminMessage = {
    type: 'commitOffset',
    group: header.consumerGroup,
    topic: header.topic,
    queueId: header.queueId,
    offset: header.commitOffset,
  };
  task.commitPending = true;
  const epoch = state.epoch;
  const taskId = task.id;
  ctx.pipeToSelf(ctx.ask<BrokerAdminMessage, unknown>(state.args.refs.admin, message), (result) => ({ type: 'commitDone', epoch, taskId, result }));
}

/** The commit is stored (or will not be confirmed): an answer parked for it goes out now. */
function onCommitDone(state: State, message: Extract<PullProcessorStep, { type: 'commitDone' }>, ctx: Ctx): void {
  if (message.epoch !== state.epoch) return;
  const task = state.tasks.get(message.taskId);
  if (task === undefined) return;
  const header = task.header;
  if (!message.result.ok) {
    const where = { group: header.consumerGroup, topic: header.topic, queueId: header.queueId, err: describeError(message.result.error) };
    ctx.log.warn(where, 'broker-admin did not confirm a pulled commitOffset');
  }
  task.commitPending = false;
  const parked = task.parked;
  if (parked === undefined) return;
  task.parked = undefined;
  if (task.closed) return forget(state, task);
  answer(state, task, parked, ctx);
}

/** Holds the request, unless a notice already passed its offset while it was being read. */
function holdOrReadAgain(state: State, task: Task, ctx: Ctx): void {
  if (task.dirty) return startRead(state, task, ctx);
  if (!task.wasHeld) {
    if (state.held >= state.limits.heldMax) {
      state.counters.overloaded++;
      return answer(state, task, overloaded(task.request), ctx);
    }
    const suspendMs = Math.min(Math.max(task.header.suspendTimeoutMillis, 0), state.limits.suspendMaxMs);
    task.deadlineMs = ctx.clock.nowMs() + suspendMs;
    task.wasHeld = true;
    state.counters.holds++;
  }
  task.phase = 'held';
  state.inFlight--;
  state.held++;
  armDeadline(state, task.deadlineMs, ctx);
}

/**
 * Sets the one deadline timer for `dueMs` unless it already fires earlier. Due times are rounded up to
 * DEADLINE_RESOLUTION_MS, so the O(held) sweep runs at most that often, however spread the deadlines.
 */
function armDeadline(state: State, dueMs: number, ctx: Ctx): void {
  const roundedMs = Math.ceil(dueMs / DEADLINE_RESOLUTION_MS) * DEADLINE_RESOLUTION_MS;
  if (roundedMs >= state.deadlineTimerDueMs && ctx.timers.isActive(TIMER_DEADLINE)) return;
  state.deadlineTimerDueMs = roundedMs;
  ctx.timers.startSingle(TIMER_DEADLINE, { type: 'deadline' }, Math.max(0, roundedMs - ctx.clock.nowMs()));
}

/** Reads every held request whose time is up once more (answered whatever it finds); re-arms for the rest. */
function onDeadline(state: State, ctx: Ctx): void {
  state.deadlineTimerDueMs = Number.POSITIVE_INFINITY;
  const nowMs = ctx.clock.nowMs();
  let nextMs = Number.POSITIVE_INFINITY;
  for (const task of [...state.tasks.values()]) {
    if (task.phase !== 'held') continue;
    if (task.deadlineMs <= nowMs) {
      state.counters.timeouts++;
      startRead(state, task, ctx);
    } else {
      nextMs = Math.min(nextMs, task.deadlineMs);
    }
  }
  if (nextMs !== Number.POSITIVE_INFINITY) armDeadline(state, nextMs, ctx);
}

/** PullRequestHoldService.notifyMessageArriving: wake what the grown queues now satisfy. */
function onArrived(state: State, notice: ArrivalNotice, ctx: Ctx): void {
  for (const queue of notice.queues) {
    const onQueue = state.byQueue.get(queueKeyOf(queue.topic, queue.queueId));
    if (onQueue === undefined) continue;
    for (const id of [...onQueue]) {
      const task = state.tasks.get(id);
      assert(task !== undefined, 'queue index holds live tasks');
      if (queue.maxOffset <= task.readFrom) continue;
      if (task.phase === 'read') {
        task.dirty = true;
      } else if (task.phase === 'held') {
        state.counters.wakeups++;
        startRead(state, task, ctx);
      }
    }
  }
}

/** Drops the held requests of a closed connection; answers of reads in flight for it are dropped later. */
function onChannelClosed(state: State, channel: RemotingChannel): void {
  const key = channelKey(channel);
  for (const task of [...state.tasks.values()]) {
    if (channelKey(task.channel) !== key) continue;
    if (task.phase === 'held') forget(state, task);
    else task.closed = true;
  }
}

function watch(state: State, ctx: Ctx): void {
  // The writer takes ArrivalNotice among this actor's messages; the phantom type cannot say "accepts at least".
  const watcher = ctx.self as ActorRef<ArrivalNotice>;
  if (!ctx.tell(state.args.refs.writer, { type: 'watchArrivals', watcher })) ctx.log.warn('writer did not take watchArrivals; trying again later');
}

function statsOf(state: State): PullProcessorStats {
  return { ...state.counters, held: state.held, inFlight: state.inFlight };
}

// ---------------------------------------------------------------------------------------------------
// Behavior

function slaveReadOf(args: PullProcessorArgs): PullSlaveReadSettings {
  const settings = args.slaveRead ?? { slaveReadEnable: false, accessMessageInMemoryMaxRatio: 40, totalPhysicalMemorySizeBytes: 0 };
  const ratio = settings.accessMessageInMemoryMaxRatio;
  assert(Number.isSafeInteger(ratio) && ratio >= 0 && ratio <= 100, () => `accessMessageInMemoryMaxRatio is a percentage: ${ratio}`);
  assert(Number.isSafeInteger(settings.totalPhysicalMemorySizeBytes) && settings.totalPhysicalMemorySizeBytes >= 0, 'physical memory is a byte count');
  return settings;
}

function limitsOf(args: PullProcessorArgs): Limits {
  const limits: Limits = { ...PULL_PROCESSOR_DEFAULTS, ...args.pull };
  for (const [key, value] of Object.entries(limits)) {
    assert(Number.isSafeInteger(value) && value > 0, () => `pull processor ${key} is a positive integer: ${value}`);
  }
  return limits;
}

/** The pull processor behavior (see the file comment). */
export const pullProcessor: Behavior<State, PullProcessorMessage, PullProcessorArgs> = {
  init(args, ctx) {
    const limits = limitsOf(args);
    const state: State = {
      args,
      limits,
      slaveRead: slaveReadOf(args),
      lastRole: undefined,
      epoch: Math.floor(ctx.random() * 0x7fff_ffff),
      nextTaskId: 1,
      tasks: new Map(),
      byQueue: new Map(),
      metadataLookups: new Map(),
      metadataCache: new Map(),
      filterCache: new Map(),
      held: 0,
      inFlight: 0,
      deadlineTimerDueMs: Number.POSITIVE_INFINITY,
      counters: { requests: 0, found: 0, notFound: 0, retryImmediately: 0, offsetMoved: 0, refused: 0, holds: 0, wakeups: 0, timeouts: 0, overloaded: 0 },
    };
    watch(state, ctx);
    ctx.timers.startPeriodic(TIMER_REWATCH, { type: 'rewatch' }, limits.rewatchIntervalMs);
    return state;
  },

  receive(state, message, ctx) {
    switch (message.type) {
      case 'remotingRequest':
        onRequest(state, message, ctx);
        break;
      case 'channelClosed':
        onChannelClosed(state, message.channel);
        break;
      case 'arrived':
        onArrived(state, message, ctx);
        break;
      case 'metadataLooked':
        onMetadataLooked(state, message, ctx);
        break;
      case 'readDone':
        onReadDone(state, message, ctx);
        break;
      case 'commitDone':
        onCommitDone(state, message, ctx);
        break;
      case 'deadline':
        onDeadline(state, ctx);
        break;
      case 'rewatch':
        watch(state, ctx);
        break;
      case 'stats':
        ctx.reply(statsOf(state));
        break;
      default:
        return assertNever(message, 'pull processor message');
    }
    assert(state.tasks.size === state.held + state.inFlight, 'every task is held or in flight');
    return state;
  },
};

// ---------------------------------------------------------------------------------------------------
// Spawning

/** How many pull processors to start, where, and with what. */
export type SpawnPullProcessorsOptions = {
  readonly args: PullProcessorArgs;
  /** Number of processors (one per thread of the pool is a good start). */
  readonly count: number;
  /** Pool to place them on; `pull` by default. */
  readonly pool?: string;
  readonly namePrefix?: string;
  readonly mailboxCapacity?: number;
  readonly behavior?: BehaviorSource;
};

/** Spawns `count` pull processors; route PULL_REQUEST_CODES to them and add them to closeListeners. */
export async function spawnPullProcessors(system: ActorSpawner, options: SpawnPullProcessorsOptions): Promise<ActorRef<PullProcessorMessage>[]> {
  assert(Number.isSafeInteger(options.count) && options.count > 0, 'at least one pull processor');
  const refs: ActorRef<PullProcessorMessage>[] = [];
  for (let i = 0; i < options.count; i++) {
    const spec: ActorSpec<PullProcessorArgs> = {
      name: `${options.namePrefix ?? 'pull-processor'}-${i}`,
      behavior: options.behavior ?? pullProcessorSource,
      args: options.args,
      pool: options.pool ?? 'pull',
      ...(options.mailboxCapacity === undefined ? {} : { mailboxCapacity: options.mailboxCapacity }),
    };
    refs.push(await system.spawn<PullProcessorMessage, PullProcessorArgs>(spec));
  }
  return refs;
}
