// Every key the node accepts, in one metadata table that drives validation (the zod schema below),
// loading (load.ts reads values by each key's type) and documentation (table.ts). Key names are
// RocketMQ's own, case-sensitive, so a user can bring their broker.conf; defaults are RocketMQ's
// (checked against apache/rocketmq develop, 2025-09) except where a note says why ours differ.
//
// Thread pools. RocketMQ's pools are blocking Java threads, so it sizes them generously
// (`16 + cores * 2`). Ours are event-loop workers that each serve many requests at once, so every
// `*ThreadPoolNums` key and serverWorkerThreads default to `min(RocketMQ's default, cores)`, never
// below 1 nor above THREAD_POOL_SIZE_MAX. RocketMQ's formula is kept in `rocketmqDefault`.
//
// Defaults come in two stages. Fixed defaults depend only on the DefaultContext (role, cores, home,
// host). Derived defaults read other keys' final values (storePathCommitLog from storePathRootDir,
// haListenPort from listenPort, the proxy's listenPort from remotingListenPort); they are filled
// after all fixed ones, in table order, so a derived key may only read fixed keys or derived keys
// listed before it.

import path from 'node:path';
import { z } from 'zod';
import { parseAddressList } from './address.ts';
import { parseControllerPeers } from '../net/remoting/controller-protocol.ts';
import { SEMI_SPACE_MB_DEFAULT } from '../runtime/actor-system.ts';
import { parseEtcdEndpoints } from '../storage/controller-etcd-store.ts';
import type { DefaultContext, Role } from './environment.ts';
import { booleanType, enumType, integerType, stringType, type ValueType } from './value-types.ts';

export { ROLES, isRole, type DefaultContext, type Role } from './environment.ts';
export type { ValueType } from './value-types.ts';

/** The RocketMQ classes a key can come from, or `rocketmq-ts` for keys of our own. */
export const SOURCE_CLASSES = [
  'BrokerConfig',
  'MessageStoreConfig',
  'NettyServerConfig',
  'ProxyConfig',
  'ControllerConfig',
  'NamesrvConfig',
  'rocketmq-ts',
] as const;

/** Where a key comes from. */
export type SourceClass = (typeof SOURCE_CLASSES)[number];

/** The largest size any thread pool may have. */
export const THREAD_POOL_SIZE_MAX = 256;

/** Values already resolved when a derived default is computed, by key. */
export type ResolvedValues = Readonly<Record<string, unknown>>;

/** How a key's default is found: from the context alone, or from other keys' final values. */
export type DefaultRule<T> =
  | { readonly stage: 'fixed'; readonly label: string; readonly of: (ctx: DefaultContext) => T }
  | { readonly stage: 'derived'; readonly label: string; readonly of: (ctx: DefaultContext, resolved: ResolvedValues) => T };

/** Everything known about one key. */
export interface KeySpec<T> {
  /** The value's type: schema, reading from text, descriptions. */
  readonly type: ValueType<T>;
  /** Our default; `label` is the machine-independent form shown in the docs. */
  readonly default: DefaultRule<NoInfer<T>>;
  /** RocketMQ's own default as its source writes it, or `n/a` for our keys. */
  readonly rocketmqDefault: string;
  /** The RocketMQ class the key comes from. */
  readonly source: SourceClass;
  /** One sentence on what the key does. */
  readonly description: string;
  /** Whether this project uses the key now or soon; inactive keys are accepted and ignored. */
  readonly active: boolean;
}

function key<T>(spec: KeySpec<T>): KeySpec<T> {
  return spec;
}

function constant<const T>(value: T): DefaultRule<T> {
  return { stage: 'fixed', label: value === '' ? '(empty)' : String(value), of: () => value };
}

function fixed<T>(label: string, of: (ctx: DefaultContext) => T): DefaultRule<T> {
  return { stage: 'fixed', label, of };
}

function derived<T>(label: string, of: (ctx: DefaultContext, resolved: ResolvedValues) => T): DefaultRule<T> {
  return { stage: 'derived', label, of };
}

// A derived default reads a number another key resolved to; NaN (which every integer type
// rejects) if that key failed, so the failure is reported rather than hidden.
function numberAt(resolved: ResolvedValues, name: string): number {
  const value = resolved[name];
  return typeof value === 'number' ? value : Number.NaN;
}

/** Our size for a pool whose RocketMQ default is `rocketmqOf(cores)`: `min(that, cores)`, clamped to 1..THREAD_POOL_SIZE_MAX. */
export function threadPoolSize(rocketmqOf: (cores: number) => number, cores: number): number {
  return Math.max(1, Math.min(rocketmqOf(cores), cores, THREAD_POOL_SIZE_MAX));
}

// The docs label of a pool default, worked out from the formula so it cannot disagree with it:
// `cores` when the pool always has one worker per core, `min(N, cores)` when it is capped at N.
function threadPoolLabel(rocketmqOf: (cores: number) => number, rocketmqLabel: string): string {
  const cap = threadPoolSize(rocketmqOf, THREAD_POOL_SIZE_MAX);
  for (let cores = 1; cores <= THREAD_POOL_SIZE_MAX; cores++) {
    if (threadPoolSize(rocketmqOf, cores) !== Math.min(cap, cores)) return `min(${rocketmqLabel}, cores)`;
  }
  return cap === THREAD_POOL_SIZE_MAX ? 'cores' : `min(${cap}, cores)`;
}

const poolSizeType = integerType(1, THREAD_POOL_SIZE_MAX);
const portType = integerType(0, 65535);
const queueCapacityType = integerType(1, 10_000_000);
const intervalMsType = integerType(1, 3_600_000);
const INT_MAX = 2_147_483_647;
// BrokerController reads registerNameServerPeriod as max(10000, min(value, 60000)); we refuse values
// outside that range instead, so the file says how often the broker registers.
const REGISTER_PERIOD_MS_MIN = 10_000;
const REGISTER_PERIOD_MS_MAX = 60_000;

function threadPool(
  source: SourceClass,
  rocketmqLabel: string,
  rocketmqOf: (cores: number) => number,
  description: string,
): KeySpec<number> {
  return key({
    type: poolSizeType,
    default: fixed(threadPoolLabel(rocketmqOf, rocketmqLabel), (ctx) => threadPoolSize(rocketmqOf, ctx.cores)),
    rocketmqDefault: rocketmqLabel,
    source,
    description,
    active: true,
  });
}

const NAME_TEXT = /^[A-Za-z0-9._-]{1,127}$/;
const HOST_TEXT = /^[A-Za-z0-9._:[\]-]{1,255}$/;
const DELAY_LEVEL_TEXT = /^\d+[smhd]$/;
const DELAY_LEVELS_MAX = 128;
const CONTROLLER_ID_TEXT = /^[A-Za-z0-9_.]{1,64}$/;
const ETCD_PREFIX_TEXT = /^(\/[A-Za-z0-9._-]{1,64}){1,8}$/;

const nameType = stringType({
  docLabel: 'name',
  expected: 'a name of 1..127 letters, digits, ".", "_" or "-"',
  accepts: (s) => NAME_TEXT.test(s),
});

function addressListType(allowEmpty: boolean): ValueType<string> {
  return stringType({
    docLabel: allowEmpty ? 'host:port list or empty' : 'host:port list',
    expected: `host:port[;host:port...]${allowEmpty ? ' or nothing' : ''}`,
    accepts: (s) => (allowEmpty && s === '') || parseAddressList(s) !== undefined,
  });
}

function isDeleteWhen(s: string): boolean {
  return s.split(';').every((hour) => /^\d{1,2}$/.test(hour) && Number(hour) <= 23);
}

function isDelayLevelList(s: string): boolean {
  const levels = s.split(/\s+/);
  return levels.length <= DELAY_LEVELS_MAX && levels.every((level) => DELAY_LEVEL_TEXT.test(level));
}

/** The pino log levels logLevel accepts. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Every key the node accepts, in docs order; see the file comment for how defaults work. */
export const CONFIG_KEYS = {
  // Network and identity.
  listenPort: key({
    type: portType,
    default: derived('9876 (namesrv); 10911 (broker, start); 9878 (controller); remotingListenPort (proxy)', (ctx, r) => {
      switch (ctx.role) {
        case 'namesrv':
          return 9876;
        case 'broker':
        case 'start':
          return 10911;
        case 'controller':
          return 9878;
        case 'proxy':
          return numberAt(r, 'remotingListenPort');
        default:
          return assertNever(ctx.role);
      }
    }),
    rocketmqDefault: '0, set by the startup class: 9876 (NamesrvStartup), 10911 (BrokerStartup), 19876 (ControllerStartup)',
    source: 'NettyServerConfig',
    description: 'TCP port of the remoting server (0 picks a free port); in role proxy it must equal remotingListenPort.',
    active: true,
  }),
  namesrvAddr: key({
    type: addressListType(true),
    default: fixed('127.0.0.1:9876 (start); otherwise $NAMESRV_ADDR or empty', (ctx) =>
      ctx.role === 'start' ? '127.0.0.1:9876' : (ctx.namesrvAddrEnv ?? '').trim(),
    ),
    rocketmqDefault: '-Drocketmq.namesrv.addr or $NAMESRV_ADDR, else none',
    source: 'BrokerConfig',
    description: 'NameServer addresses; in role start it must be one address, whose port the embedded NameServer listens on.',
    active: true,
  }),
  brokerClusterName: key({
    type: nameType,
    default: constant('DefaultCluster'),
    rocketmqDefault: 'DefaultCluster',
    source: 'BrokerConfig',
    description: 'Name of the cluster this broker registers under.',
    active: true,
  }),
  brokerName: key({
    type: nameType,
    default: fixed('host name', (ctx) => (ctx.hostName === '' ? 'DEFAULT_BROKER' : ctx.hostName)),
    rocketmqDefault: 'local host name, else DEFAULT_BROKER',
    source: 'BrokerConfig',
    description: 'Name of the master/slave group this broker belongs to.',
    active: true,
  }),
  brokerId: key({
    type: integerType(0, INT_MAX),
    default: constant(0),
    rocketmqDefault: '0',
    source: 'BrokerConfig',
    description: 'Position in the broker group: 0 for the master, greater than 0 for a slave.',
    active: true,
  }),
  brokerIP1: key({
    type: stringType({ docLabel: 'host', expected: 'a host name or IP address', accepts: (s) => HOST_TEXT.test(s) }),
    default: fixed('preferred local address', (ctx) => ctx.localAddress),
    rocketmqDefault: 'NetworkUtil.getLocalAddress()',
    source: 'BrokerConfig',
    description: 'Address the broker announces to NameServers and clients.',
    active: true,
  }),
  brokerRole: key({
    type: enumType(['ASYNC_MASTER', 'SYNC_MASTER', 'SLAVE'], { caseInsensitive: false }),
    default: constant('ASYNC_MASTER'),
    rocketmqDefault: 'ASYNC_MASTER',
    source: 'MessageStoreConfig',
    description: 'Replication role: a master that acknowledges before (ASYNC) or after (SYNC) slaves copy, or a slave.',
    active: true,
  }),
  enableControllerMode: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'BrokerConfig',
    description: 'Let the controller at controllerAddr assign roles and broker ids instead of brokerRole and brokerId.',
    active: true,
  }),
  controllerAddr: key({
    type: addressListType(true),
    default: constant(''),
    rocketmqDefault: '(empty)',
    source: 'BrokerConfig',
    description: 'Controller addresses a broker in controller mode reports to.',
    active: true,
  }),

  brokerHeartbeatInterval: key({
    type: intervalMsType,
    default: constant(1_000),
    rocketmqDefault: '1000',
    source: 'BrokerConfig',
    description: 'Milliseconds between a controller-mode broker\'s BROKER_HEARTBEATs to the controller.',
    active: true,
  }),
  controllerHeartBeatTimeoutMills: key({
    type: intervalMsType,
    default: constant(10_000),
    rocketmqDefault: '10000',
    source: 'BrokerConfig',
    description:
      'How long the controller keeps a silent broker alive, and how long a controller taking over through etcd counts every replica alive; a master that cannot renew it stops acknowledging.',
    active: true,
  }),
  sendHeartbeatTimeoutMillis: key({
    type: intervalMsType,
    default: constant(1_000),
    rocketmqDefault: '1000',
    source: 'BrokerConfig',
    description: 'Milliseconds one heartbeat to the controller may take.',
    active: true,
  }),
  syncBrokerMetadataPeriod: key({
    type: intervalMsType,
    default: constant(5_000),
    rocketmqDefault: '5000',
    source: 'BrokerConfig',
    description: 'Milliseconds between a controller-mode broker\'s polls of its broker set (CONTROLLER_GET_REPLICA_INFO).',
    active: true,
  }),
  checkSyncStateSetPeriod: key({
    type: intervalMsType,
    default: constant(5_000),
    rocketmqDefault: '5000',
    source: 'BrokerConfig',
    description: 'Milliseconds between a master\'s checks of which slaves belong in its SyncStateSet.',
    active: true,
  }),
  brokerElectionPriority: key({
    type: integerType(0, INT_MAX),
    default: constant(INT_MAX),
    rocketmqDefault: '2147483647',
    source: 'BrokerConfig',
    description: 'Election preference among equally caught-up replicas; lower wins.',
    active: true,
  }),
  asyncLearner: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'MessageStoreConfig',
    description: 'A replica that copies the master but never joins the SyncStateSet and is never elected.',
    active: true,
  }),

  // The broker's registration with the NameServers.
  registerNameServerPeriod: key({
    type: integerType(REGISTER_PERIOD_MS_MIN, REGISTER_PERIOD_MS_MAX),
    default: constant(30_000),
    rocketmqDefault: `30000 (read clamped to ${REGISTER_PERIOD_MS_MIN}..${REGISTER_PERIOD_MS_MAX})`,
    source: 'BrokerConfig',
    description: 'Milliseconds between the registrations of the broker and its topics with every NameServer.',
    active: true,
  }),
  registerBrokerTimeoutMills: key({
    type: integerType(1, 600_000),
    default: constant(24_000),
    rocketmqDefault: '24000',
    source: 'BrokerConfig',
    description: 'Milliseconds a registration waits for a NameServer to answer before it counts as failed until the next period.',
    active: true,
  }),
  brokerNotActiveTimeoutMillis: key({
    type: integerType(1, 86_400_000),
    default: constant(10_000),
    rocketmqDefault: '10000',
    source: 'BrokerConfig',
    description:
      'Milliseconds of silence after which NameServers drop this broker; RocketMQ sends it with registrations only when enableSlaveActingMaster is on (not supported yet), otherwise NameServers wait 120000.',
    active: false,
  }),

  // The NameServer (NamesrvConfig).
  scanNotActiveBrokerInterval: key({
    type: intervalMsType,
    default: constant(5_000),
    rocketmqDefault: '5000',
    source: 'NamesrvConfig',
    description: 'Milliseconds between the scans that drop brokers not heard from within their heartbeat timeout (the NameServer\'s and the controller\'s).',
    active: true,
  }),
  orderMessageEnable: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'NamesrvConfig',
    description: 'Put the ORDER_TOPIC_CONFIG KV entry of a topic in its route as orderTopicConf.',
    active: true,
  }),
  returnOrderTopicConfigToBroker: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'NamesrvConfig',
    description: 'Answer every broker registration with the ORDER_TOPIC_CONFIG KV namespace.',
    active: true,
  }),
  enableAllTopicList: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'NamesrvConfig',
    description: 'Serve GET_ALL_TOPIC_LIST_FROM_NAMESERVER; when false it is answered SYSTEM_ERROR "disable".',
    active: true,
  }),
  enableTopicList: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'NamesrvConfig',
    description: 'Serve GET_TOPICS_BY_CLUSTER and the unit topic lists; when false they are answered SYSTEM_ERROR "disable".',
    active: true,
  }),
  supportActingMaster: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'NamesrvConfig',
    description: 'Route a broker group whose master is gone to its smallest-id slave, shown as brokerId 0, while its queues are read-only.',
    active: true,
  }),
  deleteTopicWithBrokerRegistration: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'NamesrvConfig',
    description: 'Drop from the routes the topics of a broker group that its latest registration no longer lists.',
    active: true,
  }),
  kvConfigPath: key({
    type: stringType({ docLabel: 'path', expected: 'a non-empty path', accepts: (s) => s !== '' }),
    // RocketMQ puts it under the user's home; ours sits next to the store so that nodes with their own
    // storePathRootDir (tests, several nodes on one host) do not share it. With the default
    // storePathRootDir (~/store) both are ~/namesrv/kvConfig.json.
    default: derived('dirname(storePathRootDir)/namesrv/kvConfig.json (~/namesrv/kvConfig.json)', (_ctx, r) => {
      const root = r['storePathRootDir'];
      return typeof root === 'string' ? path.join(path.dirname(root), 'namesrv', 'kvConfig.json') : '';
    }),
    rocketmqDefault: '${user.home}/namesrv/kvConfig.json',
    source: 'NamesrvConfig',
    description: 'File the NameServer keeps its KV config in (order topic configs and other namespaces), rewritten on every change.',
    active: true,
  }),

  // Store.
  storePathRootDir: key({
    type: stringType({ docLabel: 'path', expected: 'a non-empty path', accepts: (s) => s !== '' }),
    default: fixed('~/store', (ctx) => path.join(ctx.homeDir, 'store')),
    rocketmqDefault: '${user.home}/store',
    source: 'MessageStoreConfig',
    description: 'Root directory of all store files (commit log, consume queues, index, checkpoint, config).',
    active: true,
  }),
  storePathCommitLog: key({
    type: stringType({ docLabel: 'path', expected: 'a non-empty path', accepts: (s) => s !== '' }),
    default: derived('storePathRootDir + /commitlog', (_ctx, r) => {
      const root = r['storePathRootDir'];
      return typeof root === 'string' ? path.join(root, 'commitlog') : '';
    }),
    rocketmqDefault: 'null, read as storePathRootDir + /commitlog',
    source: 'MessageStoreConfig',
    description: 'Directory of the commit log segments.',
    active: true,
  }),
  flushDiskType: key({
    type: enumType(['ASYNC_FLUSH', 'SYNC_FLUSH'], { caseInsensitive: false }),
    default: constant('ASYNC_FLUSH'),
    rocketmqDefault: 'ASYNC_FLUSH',
    source: 'MessageStoreConfig',
    description: 'Whether a send is acknowledged before (ASYNC) or after (SYNC) the commit log is flushed to disk.',
    active: true,
  }),
  mappedFileSizeCommitLog: key({
    type: integerType(65_536, INT_MAX),
    default: constant(1_073_741_824),
    rocketmqDefault: '1073741824 (1 GiB)',
    source: 'MessageStoreConfig',
    description: 'Size in bytes of one commit log segment; it must hold maxMessageSize plus 64 KiB.',
    active: true,
  }),
  mappedFileSizeConsumeQueue: key({
    type: integerType(20, 2_147_483_640, 20),
    default: constant(6_000_000),
    rocketmqDefault: '6000000 (300000 entries of 20 bytes)',
    source: 'MessageStoreConfig',
    description: 'Size in bytes of one consume queue file, a whole number of 20-byte entries.',
    active: true,
  }),
  flushIntervalCommitLog: key({
    type: intervalMsType,
    default: constant(500),
    rocketmqDefault: '500',
    source: 'MessageStoreConfig',
    description: 'Milliseconds between asynchronous flushes of the commit log.',
    active: true,
  }),
  flushIntervalConsumeQueue: key({
    type: intervalMsType,
    default: constant(1000),
    rocketmqDefault: '1000',
    source: 'MessageStoreConfig',
    description: 'Milliseconds between flushes of the consume queues.',
    active: true,
  }),
  syncFlushTimeout: key({
    type: integerType(1, 600_000),
    default: constant(5000),
    rocketmqDefault: '5000',
    source: 'MessageStoreConfig',
    description: 'Milliseconds a SYNC_FLUSH send waits for its flush before answering FLUSH_DISK_TIMEOUT.',
    active: true,
  }),
  fileReservedTime: key({
    type: integerType(1, 87_600),
    default: constant(72),
    rocketmqDefault: '72',
    source: 'MessageStoreConfig',
    description: 'Hours a commit log segment is kept after its last write before it may be deleted.',
    active: true,
  }),
  deleteWhen: key({
    type: stringType({
      docLabel: 'hours list',
      expected: 'hours of the day 0..23 separated by ";" (e.g. 04;16)',
      accepts: isDeleteWhen,
    }),
    default: constant('04'),
    rocketmqDefault: '04',
    source: 'MessageStoreConfig',
    description: 'Hours of the day at which expired files are deleted.',
    active: true,
  }),
  diskMaxUsedSpaceRatio: key({
    type: integerType(10, 95),
    default: constant(75),
    rocketmqDefault: '75 (read clamped to 10..95)',
    source: 'MessageStoreConfig',
    description: 'Percentage of disk use above which expired files are deleted regardless of deleteWhen.',
    active: true,
  }),
  maxMessageSize: key({
    type: integerType(1, 1_073_741_824),
    default: constant(4_194_304),
    rocketmqDefault: '4194304 (4 MiB)',
    source: 'MessageStoreConfig',
    description: 'Largest message body in bytes the broker accepts.',
    active: true,
  }),

  // Topics and subscriptions.
  defaultTopicQueueNums: key({
    type: integerType(1, 1024),
    default: constant(8),
    rocketmqDefault: '8',
    source: 'BrokerConfig',
    description: 'Number of queues of a topic created automatically.',
    active: true,
  }),
  autoCreateTopicEnable: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'BrokerConfig',
    description: 'Create a topic on its first send instead of refusing the message.',
    active: true,
  }),
  autoCreateSubscriptionGroup: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'BrokerConfig',
    description: 'Create a consumer group on its first use instead of refusing it.',
    active: true,
  }),
  enablePropertyFilter: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'BrokerConfig',
    description: 'Allow consumers to filter messages with SQL92 expressions over message properties.',
    active: false,
  }),

  // Delayed, timed and recalled messages.
  messageDelayLevel: key({
    type: stringType({
      docLabel: 'delay levels',
      expected: `up to ${DELAY_LEVELS_MAX} durations like 1s, 5m, 2h or 1d separated by spaces`,
      accepts: isDelayLevelList,
    }),
    default: constant('1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h'),
    rocketmqDefault: '1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h',
    source: 'MessageStoreConfig',
    description: 'Delays of the delay levels 1, 2, 3, ... that producers and consumer retries refer to.',
    active: true,
  }),
  timerPrecisionMs: key({
    type: integerType(1, 60_000),
    default: constant(1000),
    rocketmqDefault: '1000',
    source: 'MessageStoreConfig',
    description: 'Milliseconds per slot of the timer wheel that delivers timed messages.',
    active: true,
  }),
  timerWheelEnable: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'MessageStoreConfig',
    description: 'Accept timed messages (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS, gRPC delivery timestamps).',
    active: true,
  }),
  timerMaxDelaySec: key({
    type: integerType(1, 31_536_000),
    default: constant(259_200),
    rocketmqDefault: '259200 (3 days)',
    source: 'MessageStoreConfig',
    description: 'Longest delay in seconds a timed message may ask for.',
    active: true,
  }),
  recallMessageEnable: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'BrokerConfig',
    description: 'Allow producers to recall a timed message before it is delivered.',
    active: true,
  }),

  // Transactions.
  transactionTimeOut: key({
    type: integerType(1, 86_400_000),
    default: constant(6000),
    rocketmqDefault: '6000',
    source: 'BrokerConfig',
    description: 'Milliseconds after which an unresolved half message is first checked with its producer.',
    active: true,
  }),
  transactionCheckMax: key({
    type: integerType(1, 10_000),
    default: constant(15),
    rocketmqDefault: '15',
    source: 'BrokerConfig',
    description: 'Checks of a half message before it is discarded.',
    active: true,
  }),
  transactionCheckInterval: key({
    type: integerType(1, 86_400_000),
    default: constant(30_000),
    rocketmqDefault: '30000',
    source: 'BrokerConfig',
    description: 'Milliseconds between rounds of transaction checks.',
    active: true,
  }),

  // High availability and the controller.
  haListenPort: key({
    type: portType,
    default: derived('listenPort + 1 (0 when listenPort is 0)', (_ctx, r) => {
      const listenPort = numberAt(r, 'listenPort');
      return listenPort === 0 ? 0 : listenPort + 1;
    }),
    rocketmqDefault: '10912; BrokerStartup uses listenPort + 1',
    source: 'MessageStoreConfig',
    description: 'TCP port a master listens on for its slaves.',
    active: true,
  }),
  haMasterAddress: key({
    type: stringType({ docLabel: 'host:port or empty', expected: 'host:port or nothing', accepts: (s) => s === '' || parseAddressList(s)?.length === 1 }),
    default: constant(''),
    rocketmqDefault: 'null',
    source: 'MessageStoreConfig',
    description: 'HA address (host:haListenPort) of the master a SLAVE copies from; empty waits to learn it from the controller.',
    active: true,
  }),
  haSendHeartbeatInterval: key({
    type: intervalMsType,
    default: constant(5_000),
    rocketmqDefault: '5000',
    source: 'MessageStoreConfig',
    description: 'Milliseconds between heartbeats on an idle replication connection (both directions).',
    active: true,
  }),
  haHousekeepingInterval: key({
    type: intervalMsType,
    default: constant(20_000),
    rocketmqDefault: '20000',
    source: 'MessageStoreConfig',
    description: 'Milliseconds of silence after which a replication connection is dropped.',
    active: true,
  }),
  haTransferBatchSize: key({
    type: integerType(1024, 16 * 1024 * 1024),
    default: constant(32 * 1024),
    rocketmqDefault: '32768',
    source: 'MessageStoreConfig',
    description: 'Most CommitLog bytes a master sends a slave in one frame.',
    active: true,
  }),
  haMaxGapNotInSync: key({
    type: integerType(1, INT_MAX),
    default: constant(256 * 1024 * 1024),
    rocketmqDefault: '268435456',
    source: 'MessageStoreConfig',
    description: 'Bytes a slave may lag before a SYNC_MASTER stops counting it as in sync.',
    active: true,
  }),
  haMaxTimeSlaveNotCatchup: key({
    type: intervalMsType,
    default: constant(15_000),
    rocketmqDefault: '15000',
    source: 'MessageStoreConfig',
    description: 'Milliseconds a slave may lag before a SYNC_MASTER stops counting it as in sync.',
    active: true,
  }),
  slaveReadEnable: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'BrokerConfig',
    description: 'Let a slave serve pulls, and let a master send consumers that fall far behind to a slave.',
    active: true,
  }),
  accessMessageInMemoryMaxRatio: key({
    type: integerType(0, 100),
    default: constant(40),
    rocketmqDefault: '40',
    source: 'MessageStoreConfig',
    description: 'Percentage of physical memory a pull may lag behind the CommitLog end before it is steered to a slave.',
    active: true,
  }),
  enableControllerInNamesrv: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'NamesrvConfig',
    description: 'Run the controller inside the NameServer process.',
    active: true,
  }),
  controllerListenPort: key({
    type: portType,
    default: constant(9878),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Port of the controller embedded in a NameServer (enableControllerInNamesrv); a standalone controller uses listenPort.',
    active: true,
  }),
  controllerStorePath: key({
    type: stringType({ docLabel: 'path or empty', expected: 'a directory path or nothing', accepts: () => true }),
    default: derived('storePathRootDir + /controller', (_ctx, r) => {
      const root = r['storePathRootDir'];
      return typeof root === 'string' ? path.join(root, 'controller') : '';
    }),
    rocketmqDefault: '(empty: DLedger keeps it)',
    source: 'ControllerConfig',
    description: 'Directory of controllerMetadata.json, the controller metadata that survives a restart; empty keeps it in memory only.',
    active: true,
  }),
  notifyBrokerRoleChanged: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'ControllerConfig',
    description: 'Push NOTIFY_BROKER_ROLE_CHANGED to the live brokers of a set after an election.',
    active: true,
  }),
  enableElectUncleanMaster: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'ControllerConfig',
    description: 'Let the controller elect a master from replicas outside the in-sync set, risking message loss.',
    active: true,
  }),
  controllerDLegerGroup: key({
    type: nameType,
    default: constant('group1'),
    rocketmqDefault: 'null',
    source: 'ControllerConfig',
    description: 'Name of the controller group, reported by CONTROLLER_GET_METADATA_INFO.',
    active: true,
  }),
  controllerDLegerSelfId: key({
    type: stringType({ docLabel: 'id', expected: 'an id of 1..64 letters, digits, "." or "_"', accepts: (s) => CONTROLLER_ID_TEXT.test(s) }),
    default: constant('n0'),
    rocketmqDefault: 'null',
    source: 'ControllerConfig',
    description: 'This controller\'s id; with controllerEtcdEndpoints it must be one of the ids in controllerDLegerPeers.',
    active: true,
  }),
  controllerDLegerPeers: key({
    type: stringType({
      docLabel: 'id-host:port list or empty',
      expected: 'id-host:port[;id-host:port...] with distinct ids, or nothing',
      accepts: (s) => s === '' || parseControllerPeers(s) !== undefined,
    }),
    default: constant(''),
    rocketmqDefault: 'null',
    source: 'ControllerConfig',
    description: 'Every controller of the group as id-host:port, the address brokers reach it on; the leader announces its own entry to brokers.',
    active: true,
  }),
  controllerEtcdEndpoints: key({
    type: stringType({
      docLabel: 'http://host:port list or empty',
      expected: 'http://host:port[,http://host:port...] or nothing',
      accepts: (s) => parseEtcdEndpoints(s) !== undefined,
    }),
    default: constant(''),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Client URLs of the etcd cluster through which several controllers elect a leader and share their metadata; empty runs one controller on its own store.',
    active: true,
  }),
  controllerEtcdKeyPrefix: key({
    type: stringType({ docLabel: 'etcd key path', expected: 'a path such as /rocketmq-ts/controller', accepts: (s) => ETCD_PREFIX_TEXT.test(s) }),
    default: constant('/rocketmq-ts/controller'),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Prefix of the etcd keys of this controller group (its leader key and its metadata document).',
    active: true,
  }),
  controllerEtcdLeaseTtlSeconds: key({
    type: integerType(2, 60),
    default: constant(3),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Seconds the leading controller\'s etcd lease outlives its last renewal, so how soon another controller takes over.',
    active: true,
  }),

  // Proxy.
  proxyMode: key({
    type: enumType(['LOCAL', 'CLUSTER'], { caseInsensitive: true }),
    default: fixed('LOCAL (start); CLUSTER (others)', (ctx) => (ctx.role === 'start' ? 'LOCAL' : 'CLUSTER')),
    rocketmqDefault: 'CLUSTER',
    source: 'ProxyConfig',
    description: 'Whether the proxy serves from the broker in its own process (LOCAL) or forwards to remote brokers (CLUSTER).',
    active: true,
  }),
  grpcServerPort: key({
    type: portType,
    default: constant(8081),
    rocketmqDefault: '8081',
    source: 'ProxyConfig',
    description: 'TCP port of the proxy gRPC server used by RocketMQ 5 clients.',
    active: true,
  }),
  remotingListenPort: key({
    type: portType,
    default: constant(8080),
    rocketmqDefault: '8080',
    source: 'ProxyConfig',
    description: 'TCP port of the proxy remoting server used by RocketMQ 4 clients.',
    active: true,
  }),
  enableMixedMessageType: key({
    type: booleanType(),
    default: constant(false),
    rocketmqDefault: 'false',
    source: 'BrokerConfig',
    description: 'Allow topics of message type MIXED (any message type on one topic).',
    active: true,
  }),
  enableTopicMessageTypeCheck: key({
    type: booleanType(),
    default: constant(true),
    rocketmqDefault: 'true',
    source: 'ProxyConfig',
    description: "Refuse gRPC sends whose message type differs from the topic's message.type (MESSAGE_PROPERTY_CONFLICT_WITH_TYPE).",
    active: true,
  }),
  grpcMaxInboundMessageSize: key({
    type: integerType(1024 * 1024, 1024 * 1024 * 1024),
    default: constant(130 * 1024 * 1024),
    rocketmqDefault: '136314880 (130 MiB)',
    source: 'ProxyConfig',
    description: 'Largest gRPC request the proxy accepts (a batch of 4 MiB bodies plus properties).',
    active: true,
  }),

  // Remoting server.
  serverWorkerThreads: threadPool('NettyServerConfig', '8', () => 8, 'Workers that decode and dispatch remoting requests.'),
  serverSelectorThreads: key({
    type: poolSizeType,
    default: constant(3),
    rocketmqDefault: '3',
    source: 'NettyServerConfig',
    description: 'Netty selector threads; Node sockets have no equivalent.',
    active: false,
  }),
  serverOnewaySemaphoreValue: key({
    type: integerType(1, 65_535),
    default: constant(256),
    rocketmqDefault: '256',
    source: 'NettyServerConfig',
    description: 'Most oneway requests in flight per server before new ones are refused.',
    active: true,
  }),
  serverAsyncSemaphoreValue: key({
    type: integerType(1, 65_535),
    default: constant(64),
    rocketmqDefault: '64',
    source: 'NettyServerConfig',
    description: 'Most asynchronous server-initiated requests in flight before new ones are refused.',
    active: true,
  }),

  // Request processing pools (see the file comment for why ours are smaller).
  sendMessageThreadPoolNums: threadPool('BrokerConfig', 'min(cores, 4)', (c) => Math.min(c, 4), 'Workers that append sent messages.'),
  pullMessageThreadPoolNums: threadPool('BrokerConfig', '16 + cores * 2', (c) => 16 + c * 2, 'Workers that serve pull and pop requests.'),
  queryMessageThreadPoolNums: threadPool('BrokerConfig', '8 + cores', (c) => 8 + c, 'Workers that serve message queries by key or id.'),
  adminBrokerThreadPoolNums: threadPool('BrokerConfig', '16', () => 16, 'Workers that serve admin requests.'),
  clientManageThreadPoolNums: threadPool('BrokerConfig', '32', () => 32, 'Workers that serve client registration and unregistration.'),
  consumerManageThreadPoolNums: threadPool('BrokerConfig', '32', () => 32, 'Workers that serve consumer offset and group requests.'),
  heartbeatThreadPoolNums: threadPool('BrokerConfig', 'min(32, cores)', (c) => Math.min(32, c), 'Workers that serve client heartbeats.'),
  endTransactionThreadPoolNums: threadPool(
    'BrokerConfig',
    'max(8 + cores * 2, sendMessageThreadPoolNums * 4)',
    (c) => Math.max(8 + c * 2, Math.min(c, 4) * 4),
    'Workers that commit or roll back transactional messages.',
  ),
  ackMessageThreadPoolNums: threadPool('BrokerConfig', '16', () => 16, 'Workers that serve acks and invisible-time changes of popped messages.'),
  grpcThreadPoolNums: threadPool('ProxyConfig', '16 + cores * 2', (c) => 16 + c * 2, 'Workers that serve proxy gRPC requests.'),
  sendThreadPoolQueueCapacity: key({
    type: queueCapacityType,
    default: constant(10_000),
    rocketmqDefault: '10000',
    source: 'BrokerConfig',
    description: 'Send requests waiting for a worker before new ones get SYSTEM_BUSY.',
    active: true,
  }),
  pullThreadPoolQueueCapacity: key({
    type: queueCapacityType,
    default: constant(100_000),
    rocketmqDefault: '100000',
    source: 'BrokerConfig',
    description: 'Pull requests waiting for a worker before new ones get SYSTEM_BUSY.',
    active: true,
  }),
  grpcThreadPoolQueueCapacity: key({
    type: queueCapacityType,
    default: constant(100_000),
    rocketmqDefault: '100000',
    source: 'ProxyConfig',
    description: 'Proxy gRPC requests waiting for a worker before new ones get TOO_MANY_REQUESTS.',
    active: true,
  }),

  // Our own runtime.
  actorMailboxCapacity: key({
    type: queueCapacityType,
    default: constant(10_000),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Bound of every actor mailbox; a full mailbox answers with flow control.',
    active: true,
  }),
  actorAskTimeoutMs: key({
    type: integerType(1, 600_000),
    default: constant(3000),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Milliseconds an ask waits for its reply before it fails.',
    active: true,
  }),
  supervisorMaxRestarts: key({
    type: integerType(0, 1000),
    default: constant(10),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Restarts a supervisor allows a child within supervisorRestartWindowMs before it escalates.',
    active: true,
  }),
  supervisorRestartWindowMs: key({
    type: integerType(1, 86_400_000),
    default: constant(60_000),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Sliding window in milliseconds over which supervisorMaxRestarts is counted.',
    active: true,
  }),
  crossThreadBatchMax: key({
    type: integerType(1, 65_536),
    default: constant(4096),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Most messages in one batch sent between worker threads.',
    active: true,
  }),
  processorsOnNetworkThreads: key({
    type: booleanType(),
    default: fixed('true when cores <= 4', (ctx) => ctx.cores <= 4),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description:
      'Run the send and pull processors on the remoting threads (serverWorkerThreads) instead of pools of their own: a request is then decoded, processed and answered on one thread, which suits small machines.',
    active: true,
  }),
  actorSpinUs: key({
    type: integerType(0, 1000),
    default: fixed('50 when cores >= 4, else 0', (ctx) => (ctx.cores >= 4 ? 50 : 0)),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description:
      'Microseconds a worker thread polls for replies after a turn before sleeping; saves wake-ups when cores are spare, wastes them when they are not.',
    active: true,
  }),
  workerSemiSpaceSizeMb: key({
    type: integerType(0, 256),
    default: constant(SEMI_SPACE_MB_DEFAULT),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description:
      "Each worker thread's V8 young generation starts at (and keeps) semi-spaces of this many MiB, so a busy thread reuses its pages rather than faulting in new ones (V8's --min-semi-space-size; the role of a JVM's -Xmn); 0 lets V8 size it.",
    active: true,
  }),
  storeThreadPoolNums: key({
    type: poolSizeType,
    default: constant(1),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Workers that flush and commit store files.',
    active: true,
  }),
  commitLogWriteThreads: key({
    type: integerType(0, 2),
    default: constant(2),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description:
      'Threads that write large ASYNC_FLUSH CommitLog ranges (O_DIRECT, 64 KiB and up) while the CommitLog writer goes on appending; 0 writes every range on the writer thread.',
    active: true,
  }),
  cpuTaskThreadPoolNums: key({
    type: poolSizeType,
    default: fixed('cores', (ctx) => threadPoolSize((c) => c, ctx.cores)),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Workers of the pool for stateless CPU tasks (checksums, compression, filtering).',
    active: true,
  }),
  logLevel: key({
    type: enumType(LOG_LEVELS, { caseInsensitive: true }),
    default: constant('info'),
    rocketmqDefault: 'n/a',
    source: 'rocketmq-ts',
    description: 'Lowest pino level that is logged.',
    active: true,
  }),
} as const;

/** A key the node accepts. */
export type ConfigKey = keyof typeof CONFIG_KEYS;

/** The node's full, validated configuration: one value per key, every default filled in. */
export type NodeConfig = {
  readonly [K in ConfigKey]: z.output<(typeof CONFIG_KEYS)[K]['type']['schema']>;
};

/** Every key, in docs order. */
export const CONFIG_KEY_NAMES = Object.keys(CONFIG_KEYS) as readonly ConfigKey[];

/** True when `name` is a key the node accepts (exact case). */
export function isConfigKey(name: string): name is ConfigKey {
  return Object.hasOwn(CONFIG_KEYS, name);
}

/** The spec of one key, typed loosely for code that walks all keys. */
export function specOf(name: ConfigKey): KeySpec<unknown> {
  return CONFIG_KEYS[name] as KeySpec<unknown>;
}

/** Parameters our own zod issues carry: the sentence after `invalid config key "k": `. */
export interface ConfigIssueParams {
  /** What is wrong, including the offending value. */
  readonly detail: string;
}

/** Quotes a value for an error message the way it was written. */
export function quoteValue(value: unknown): string {
  return JSON.stringify(typeof value === 'string' ? value : String(value));
}

/**
 * The schema of a node's configuration for one role and machine. Input: any subset of the keys,
 * as typed values or as text (text is read by each key's type); unknown keys are refused. Output:
 * a NodeConfig with every default filled in and the cross-key rules checked.
 */
export function nodeConfigSchema(ctx: DefaultContext): z.ZodType<NodeConfig, Partial<Record<ConfigKey, unknown>>> {
  const shape: Record<string, z.ZodType> = {};
  for (const name of CONFIG_KEY_NAMES) {
    const type = specOf(name).type;
    shape[name] = z.preprocess((v) => (typeof v === 'string' ? type.fromText(v) : v), type.schema).optional();
  }
  const schema = z
    .strictObject(shape)
    .transform((explicit, tctx) => {
      const { resolved, failures } = fillDefaults(explicit, ctx);
      for (const failure of failures) {
        tctx.issues.push({ code: 'custom', path: [failure.key], input: failure.value, message: failure.detail, params: { detail: failure.detail } });
      }
      return failures.length === 0 ? resolved : z.NEVER;
    })
    .superRefine((config, rctx) => {
      for (const violation of crossKeyViolations(config as unknown as NodeConfig, ctx.role)) {
        rctx.addIssue({ code: 'custom', path: [violation.key], message: violation.detail, params: { detail: violation.detail } });
      }
    });
  return schema as unknown as z.ZodType<NodeConfig, Partial<Record<ConfigKey, unknown>>>;
}

interface DefaultFailure {
  readonly key: ConfigKey;
  readonly value: unknown;
  readonly detail: string;
}

function fillDefaults(
  explicit: Readonly<Record<string, unknown>>,
  ctx: DefaultContext,
): { resolved: Record<string, unknown>; failures: DefaultFailure[] } {
  const resolved: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(explicit)) if (value !== undefined) resolved[name] = value;
  const failures: DefaultFailure[] = [];
  for (const stage of ['fixed', 'derived'] as const) {
    for (const name of CONFIG_KEY_NAMES) {
      const spec = specOf(name);
      if (resolved[name] !== undefined || spec.default.stage !== stage) continue;
      const value = spec.default.stage === 'fixed' ? spec.default.of(ctx) : spec.default.of(ctx, resolved);
      const checked = spec.type.schema.safeParse(value);
      if (checked.success) {
        resolved[name] = checked.data;
      } else {
        failures.push({ key: name, value, detail: `expected ${spec.type.expected}, got ${quoteValue(value)}` });
      }
    }
  }
  return { resolved, failures };
}

/** A broken cross-key rule: the key to blame and what is wrong. */
export interface CrossKeyViolation {
  /** The key the user should change. */
  readonly key: ConfigKey;
  /** What is wrong, including the offending value. */
  readonly detail: string;
}

/**
 * The rules that involve more than one key, for one role. Broker rules follow BrokerStartup: out
 * of controller mode a SLAVE needs brokerId > 0; RocketMQ silently forces a master's brokerId to 0,
 * we refuse any other value instead so the file says what the broker does.
 */
export function crossKeyViolations(config: NodeConfig, role: Role): CrossKeyViolation[] {
  const violations: CrossKeyViolation[] = [];
  const runsBroker = role === 'broker' || role === 'start';
  if (runsBroker && !config.enableControllerMode) {
    if (config.brokerRole === 'SLAVE' && config.brokerId <= 0) {
      violations.push({ key: 'brokerId', detail: `brokerRole SLAVE needs brokerId > 0, got ${quoteValue(config.brokerId)}` });
    }
    if (config.brokerRole !== 'SLAVE' && config.brokerId !== 0) {
      violations.push({
        key: 'brokerId',
        detail: `brokerRole ${config.brokerRole} (a master) needs brokerId 0, got ${quoteValue(config.brokerId)}`,
      });
    }
  }
  if (runsBroker && config.enableControllerMode && config.controllerAddr === '') {
    violations.push({ key: 'controllerAddr', detail: 'enableControllerMode true needs controllerAddr, got ""' });
  }
  violations.push(...controllerGroupViolations(config, role));
  if (runsBroker && config.mappedFileSizeCommitLog < config.maxMessageSize + 65_536) {
    violations.push({
      key: 'mappedFileSizeCommitLog',
      detail: `must be at least maxMessageSize + 65536 (${config.maxMessageSize + 65_536}) so the largest message fits in one segment, got ${quoteValue(config.mappedFileSizeCommitLog)}`,
    });
  }
  if (role === 'start' && (parseAddressList(config.namesrvAddr)?.length ?? 0) !== 1) {
    violations.push({
      key: 'namesrvAddr',
      detail: `role start needs exactly one address (the embedded NameServer listens on its port), got ${quoteValue(config.namesrvAddr)}`,
    });
  }
  if (role === 'proxy' && config.listenPort !== config.remotingListenPort) {
    violations.push({
      key: 'listenPort',
      detail: `role proxy listens on remotingListenPort (${config.remotingListenPort}); set that instead, got ${quoteValue(config.listenPort)}`,
    });
  }
  violations.push(...portClashes(config, role));
  return violations;
}

// A controller that shares etcd with others must announce where brokers reach it: its own entry of
// controllerDLegerPeers.
function controllerGroupViolations(config: NodeConfig, role: Role): CrossKeyViolation[] {
  const runsController = role === 'controller' || ((role === 'namesrv' || role === 'start') && config.enableControllerInNamesrv);
  if (!runsController || config.controllerEtcdEndpoints === '') return [];
  const peers = parseControllerPeers(config.controllerDLegerPeers);
  if (peers === undefined) {
    return [{ key: 'controllerDLegerPeers', detail: `controllerEtcdEndpoints needs every controller listed as id-host:port, got ${quoteValue(config.controllerDLegerPeers)}` }];
  }
  if (!peers.some((peer) => peer.id === config.controllerDLegerSelfId)) {
    return [
      {
        key: 'controllerDLegerPeers',
        detail: `must name this controller's id ${quoteValue(config.controllerDLegerSelfId)} (controllerDLegerSelfId), got ${quoteValue(config.controllerDLegerPeers)}`,
      },
    ];
  }
  return [];
}

// Two servers of one process cannot listen on the same port; 0 (a free port) never clashes.
function portClashes(config: NodeConfig, role: Role): CrossKeyViolation[] {
  const ports: Array<readonly [ConfigKey, number]> = [];
  if (role === 'broker' || role === 'start') ports.push(['listenPort', config.listenPort], ['haListenPort', config.haListenPort]);
  if (role === 'proxy' || role === 'start') ports.push(['grpcServerPort', config.grpcServerPort], ['remotingListenPort', config.remotingListenPort]);
  if (role === 'start') {
    const namesrv = parseAddressList(config.namesrvAddr)?.[0];
    if (namesrv !== undefined) ports.unshift(['namesrvAddr', namesrv.port]);
  }
  const violations: CrossKeyViolation[] = [];
  const seen = new Map<number, ConfigKey>();
  for (const [name, port] of ports) {
    const owner = seen.get(port);
    if (port !== 0 && owner !== undefined) {
      violations.push({ key: name, detail: `port ${port} is already used by ${owner} in role ${role}, got ${quoteValue(port)}` });
    }
    if (!seen.has(port)) seen.set(port, name);
  }
  return violations;
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${String(value)}`);
}
