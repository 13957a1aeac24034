import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_KEY_NAMES,
  CONFIG_KEYS,
  ROLES,
  SOURCE_CLASSES,
  THREAD_POOL_SIZE_MAX,
  isConfigKey,
  nodeConfigSchema,
  specOf,
  threadPoolSize,
  type NodeConfig,
} from '../../src/config/schema.ts';
import { TEST_MACHINE } from './fixtures.ts';

// The keys the design asks for; a key may be added but none of these may disappear or change case.
const REQUIRED_KEYS = [
  'listenPort', 'namesrvAddr', 'storePathRootDir', 'storePathCommitLog', 'brokerClusterName', 'brokerName', 'brokerId',
  'brokerIP1', 'brokerRole', 'flushDiskType', 'mappedFileSizeCommitLog', 'mappedFileSizeConsumeQueue',
  'flushIntervalCommitLog', 'flushIntervalConsumeQueue', 'syncFlushTimeout', 'fileReservedTime', 'deleteWhen',
  'diskMaxUsedSpaceRatio', 'maxMessageSize', 'defaultTopicQueueNums', 'autoCreateTopicEnable',
  'autoCreateSubscriptionGroup', 'enablePropertyFilter', 'messageDelayLevel', 'timerPrecisionMs', 'timerMaxDelaySec',
  'recallMessageEnable', 'transactionTimeOut', 'transactionCheckMax', 'transactionCheckInterval', 'haListenPort',
  'haMaxTimeSlaveNotCatchup', 'enableControllerInNamesrv', 'controllerAddr', 'enableElectUncleanMaster',
  'grpcServerPort', 'remotingListenPort', 'proxyMode', 'serverWorkerThreads', 'serverSelectorThreads',
  'serverOnewaySemaphoreValue', 'serverAsyncSemaphoreValue', 'sendMessageThreadPoolNums', 'pullMessageThreadPoolNums',
  'queryMessageThreadPoolNums', 'adminBrokerThreadPoolNums', 'clientManageThreadPoolNums',
  'consumerManageThreadPoolNums', 'heartbeatThreadPoolNums', 'endTransactionThreadPoolNums',
  'ackMessageThreadPoolNums', 'grpcThreadPoolNums', 'sendThreadPoolQueueCapacity', 'pullThreadPoolQueueCapacity',
  'grpcThreadPoolQueueCapacity', 'actorMailboxCapacity', 'actorAskTimeoutMs', 'supervisorMaxRestarts',
  'supervisorRestartWindowMs', 'crossThreadBatchMax', 'storeThreadPoolNums', 'cpuTaskThreadPoolNums', 'logLevel',
  // NamesrvConfig, and the broker's registration with the NameServers.
  'scanNotActiveBrokerInterval', 'orderMessageEnable', 'returnOrderTopicConfigToBroker', 'enableAllTopicList',
  'enableTopicList', 'supportActingMaster', 'deleteTopicWithBrokerRegistration', 'kvConfigPath',
  'registerNameServerPeriod', 'registerBrokerTimeoutMills', 'brokerNotActiveTimeoutMillis',
];

describe('config metadata', () => {
  it('has every required key, with exact case', () => {
    for (const name of REQUIRED_KEYS) expect(isConfigKey(name), name).toBe(true);
    expect(isConfigKey('ListenPort')).toBe(false);
    expect(isConfigKey('toString')).toBe(false);
  });

  it('describes every key with one sentence, a source class and both defaults', () => {
    for (const name of CONFIG_KEY_NAMES) {
      const spec = specOf(name);
      expect(spec.description, name).toMatch(/^[A-Z].*\.$/);
      expect(SOURCE_CLASSES, name).toContain(spec.source);
      expect(spec.default.label, name).not.toBe('');
      expect(spec.rocketmqDefault, name).not.toBe('');
      expect(spec.rocketmqDefault === 'n/a', name).toBe(spec.source === 'rocketmq-ts');
    }
  });

  it('bounds every thread pool to 1..256 and shows RocketMQ formula next to ours', () => {
    const pools = CONFIG_KEY_NAMES.filter((n) => n.endsWith('ThreadPoolNums') || n === 'serverWorkerThreads');
    expect(pools.length).toBeGreaterThanOrEqual(13);
    for (const name of pools) expect(specOf(name).type.docLabel, name).toBe(`integer 1..${THREAD_POOL_SIZE_MAX}`);
    expect(CONFIG_KEYS.pullMessageThreadPoolNums.rocketmqDefault).toBe('16 + cores * 2');
    expect(CONFIG_KEYS.pullMessageThreadPoolNums.default.label).toBe('cores');
    expect(CONFIG_KEYS.sendMessageThreadPoolNums.default.label).toBe('min(4, cores)');
    expect(CONFIG_KEYS.adminBrokerThreadPoolNums.default.label).toBe('min(16, cores)');
  });

  it('never sizes a pool outside 1..256 nor above its RocketMQ size (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 0, max: 1000 }), (cores, base) => {
        const size = threadPoolSize((c) => base + c * 2, cores);
        expect(size).toBeGreaterThanOrEqual(1);
        expect(size).toBeLessThanOrEqual(Math.min(THREAD_POOL_SIZE_MAX, Math.max(1, base + cores * 2)));
        expect(size).toBeLessThanOrEqual(Math.max(1, cores));
      }),
    );
  });

  it('gives a valid default for every key in every role on machines of any size (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ROLES), fc.integer({ min: 1, max: 2048 }), (role, cores) => {
        const result = nodeConfigSchema({ ...TEST_MACHINE, role, cores }).safeParse({});
        expect(result.success).toBe(true);
      }),
    );
  });
});

describe('nodeConfigSchema', () => {
  const schema = nodeConfigSchema({ ...TEST_MACHINE, role: 'broker' });

  it('accepts typed values as well as text', () => {
    const config: NodeConfig = schema.parse({ listenPort: 20911, autoCreateTopicEnable: false, brokerRole: 'SLAVE', brokerId: '2' });
    expect(config.listenPort).toBe(20911);
    expect(config.haListenPort).toBe(20912);
    expect(config.autoCreateTopicEnable).toBe(false);
    expect(config.brokerId).toBe(2);
  });

  it('refuses unknown keys and values of the wrong type', () => {
    expect(schema.safeParse({ noSuchKey: 1 }).success).toBe(false);
    expect(schema.safeParse({ listenPort: true }).success).toBe(false);
    expect(schema.safeParse({ mappedFileSizeConsumeQueue: 6_000_001 }).success).toBe(false);
    expect(schema.safeParse({ diskMaxUsedSpaceRatio: 96 }).success).toBe(false);
    expect(schema.safeParse({ diskMaxUsedSpaceRatio: 9 }).success).toBe(false);
    expect(schema.safeParse({ deleteWhen: '24' }).success).toBe(false);
    expect(schema.safeParse({ messageDelayLevel: '1s 5x' }).success).toBe(false);
    expect(schema.safeParse({ brokerName: 'has space' }).success).toBe(false);
    expect(schema.safeParse({ sendMessageThreadPoolNums: 0 }).success).toBe(false);
    expect(schema.safeParse({ sendMessageThreadPoolNums: 257 }).success).toBe(false);
  });

  it('puts cross-key problems on the key to change', () => {
    const result = schema.safeParse({ brokerRole: 'SLAVE' });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path)).toEqual([['brokerId']]);
  });
});
