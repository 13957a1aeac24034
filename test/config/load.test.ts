import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseCliOverrides, type LoadConfigInput } from '../../src/config/load.ts';
import type { Role } from '../../src/config/schema.ts';
import { TEST_MACHINE, missingTempFile, thrownBy, writeTempFile } from './fixtures.ts';

function load(role: Role, overrides: Record<string, string> = {}, file?: string) {
  const input: LoadConfigInput = file === undefined
    ? { role, overrides, machine: TEST_MACHINE }
    : { role, overrides, file, machine: TEST_MACHINE };
  return loadConfig(input);
}

function configError(fn: () => unknown): ConfigError {
  const error = thrownBy(fn);
  expect(error).toBeInstanceOf(ConfigError);
  const configErr = error as ConfigError;
  expect(configErr.code).toBe('CONFIG_INVALID');
  return configErr;
}

describe('loadConfig defaults', () => {
  it('gives each role its listen port', () => {
    expect(load('namesrv').config.listenPort).toBe(9876);
    expect(load('broker').config.listenPort).toBe(10911);
    expect(load('start').config.listenPort).toBe(10911);
    expect(load('controller').config.listenPort).toBe(9878);
    expect(load('proxy').config.listenPort).toBe(8080);
  });

  it('makes the proxy listen on remotingListenPort when only that is set', () => {
    const { config } = load('proxy', { remotingListenPort: '18080' });
    expect(config.listenPort).toBe(18080);
    expect(config.remotingListenPort).toBe(18080);
  });

  it('gives role start a local NameServer and LOCAL proxy mode, other roles none and CLUSTER', () => {
    expect(load('start').config.namesrvAddr).toBe('127.0.0.1:9876');
    expect(load('start').config.proxyMode).toBe('LOCAL');
    expect(load('broker').config.namesrvAddr).toBe('');
    expect(load('proxy').config.proxyMode).toBe('CLUSTER');
  });

  it('takes namesrvAddr from NAMESRV_ADDR outside role start, as RocketMQ does', () => {
    const machine = { ...TEST_MACHINE, namesrvAddrEnv: '10.0.0.1:9876;10.0.0.2:9876' };
    expect(loadConfig({ role: 'broker', overrides: {}, machine }).config.namesrvAddr).toBe('10.0.0.1:9876;10.0.0.2:9876');
    expect(loadConfig({ role: 'start', overrides: {}, machine }).config.namesrvAddr).toBe('127.0.0.1:9876');
  });

  it("uses RocketMQ's store, identity and message defaults", () => {
    const { config } = load('broker');
    expect(config.storePathRootDir).toBe('/home/tester/store');
    expect(config.storePathCommitLog).toBe('/home/tester/store/commitlog');
    expect(config.brokerClusterName).toBe('DefaultCluster');
    expect(config.brokerName).toBe('test-host');
    expect(config.brokerId).toBe(0);
    expect(config.brokerIP1).toBe('10.0.0.5');
    expect(config.brokerRole).toBe('ASYNC_MASTER');
    expect(config.flushDiskType).toBe('ASYNC_FLUSH');
    expect(config.mappedFileSizeCommitLog).toBe(1024 * 1024 * 1024);
    expect(config.mappedFileSizeConsumeQueue).toBe(300_000 * 20);
    expect(config.maxMessageSize).toBe(4 * 1024 * 1024);
    expect(config.haListenPort).toBe(10912);
    expect(config.timerMaxDelaySec).toBe(3 * 24 * 3600);
    expect(config.messageDelayLevel).toBe('1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h');
    expect(config.logLevel).toBe('info');
  });

  it('sizes thread pools at min(RocketMQ default, cores)', () => {
    const { config } = load('broker');
    expect(config.pullMessageThreadPoolNums).toBe(8);
    expect(config.sendMessageThreadPoolNums).toBe(4);
    expect(config.serverWorkerThreads).toBe(8);
    expect(config.cpuTaskThreadPoolNums).toBe(8);
    expect(config.storeThreadPoolNums).toBe(1);
    const one = loadConfig({ role: 'broker', overrides: {}, machine: { ...TEST_MACHINE, cores: 1 } }).config;
    expect(one.ackMessageThreadPoolNums).toBe(1);
    const many = loadConfig({ role: 'broker', overrides: {}, machine: { ...TEST_MACHINE, cores: 1024 } }).config;
    expect(many.ackMessageThreadPoolNums).toBe(16);
    expect(many.grpcThreadPoolNums).toBe(256);
  });

  it('follows storePathRootDir and listenPort in the derived defaults, and keeps port 0 ephemeral', () => {
    const { config } = load('broker', { storePathRootDir: '/data/rmq', listenPort: '0' });
    expect(config.storePathCommitLog).toBe('/data/rmq/commitlog');
    expect(config.haListenPort).toBe(0);
  });

  it('returns a frozen config and the origin of every value', () => {
    const file = writeTempFile('broker.conf', 'brokerName=b1\n');
    const { config, origins } = load('broker', { brokerId: '0' }, file);
    expect(Object.isFrozen(config)).toBe(true);
    expect(origins.brokerName).toEqual({ kind: 'file', file, line: 1 });
    expect(origins.brokerId).toEqual({ kind: 'cli', flag: '--brokerId' });
    expect(origins.listenPort).toEqual({ kind: 'default' });
  });
});

describe('loadConfig layers and coercion', () => {
  it('lets the file replace defaults and the command line replace the file', () => {
    const file = writeTempFile('broker.conf', [
      '# a RocketMQ broker.conf',
      'brokerClusterName = ProdCluster',
      'brokerName = broker-a',
      'listenPort = 20911',
      'deleteWhen = 04;16',
    ].join('\n'));
    const { config, warnings } = load('broker', { listenPort: '30911' }, file);
    expect(config.brokerClusterName).toBe('ProdCluster');
    expect(config.brokerName).toBe('broker-a');
    expect(config.listenPort).toBe(30911);
    expect(config.haListenPort).toBe(30912);
    expect(config.deleteWhen).toBe('04;16');
    expect(warnings).toEqual([]);
  });

  it('lets the last occurrence of a repeated file key win', () => {
    const file = writeTempFile('broker.conf', 'brokerName=first\nbrokerName=second\n');
    expect(load('broker', {}, file).config.brokerName).toBe('second');
  });

  it('reads numbers, booleans in any case and enums from text', () => {
    const { config } = load('broker', {
      flushIntervalCommitLog: ' +250 ',
      autoCreateTopicEnable: 'FALSE',
      enablePropertyFilter: 'True',
      flushDiskType: 'SYNC_FLUSH',
      proxyMode: 'local',
      logLevel: 'DEBUG',
    });
    expect(config.flushIntervalCommitLog).toBe(250);
    expect(config.autoCreateTopicEnable).toBe(false);
    expect(config.enablePropertyFilter).toBe(true);
    expect(config.flushDiskType).toBe('SYNC_FLUSH');
    expect(config.proxyMode).toBe('LOCAL');
    expect(config.logLevel).toBe('debug');
  });

  it('accepts a slave with a positive brokerId and a master with 0', () => {
    expect(load('broker', { brokerRole: 'SLAVE', brokerId: '1' }).config.brokerId).toBe(1);
    expect(load('broker', { brokerRole: 'SYNC_MASTER', brokerId: '0' }).config.brokerRole).toBe('SYNC_MASTER');
  });

  it('returns unknown file keys as warnings naming the file and line', () => {
    const file = writeTempFile('broker.conf', 'brokerName=b\nbrokerIP2=10.0.0.9\nlistenport=1\n');
    const { config, warnings } = load('broker', {}, file);
    expect(config.brokerName).toBe('b');
    expect(warnings).toEqual([
      `unknown config key "brokerIP2" ignored (from ${file} line 2)`,
      `unknown config key "listenport" ignored (from ${file} line 3); did you mean "listenPort"?`,
    ]);
  });

  it("reads a .json file like RocketMQ's rmq-proxy.json", () => {
    const file = writeTempFile('rmq-proxy.json', JSON.stringify({ grpcServerPort: 18081, proxyMode: 'cluster', rocketMQClusterName: 'C' }));
    const { config, warnings } = load('proxy', {}, file);
    expect(config.grpcServerPort).toBe(18081);
    expect(config.proxyMode).toBe('CLUSTER');
    expect(warnings).toEqual([`unknown config key "rocketMQClusterName" ignored (from ${file})`]);
  });

  it('reads a properties file that is not UTF-8 as ISO-8859-1, as Java does', () => {
    const file = writeTempFile('broker.conf', Buffer.from('brokerName=b\nnote=caf\xe9\n', 'latin1'));
    expect(load('broker', {}, file).warnings).toEqual([`unknown config key "note" ignored (from ${file} line 2)`]);
  });
});

describe('loadConfig errors', () => {
  it('refuses a bad number and says where it came from', () => {
    const file = writeTempFile('broker.conf', '# header\n\nlistenPort=abc\n');
    const error = configError(() => load('broker', {}, file));
    expect(error.key).toBe('listenPort');
    expect(error.message).toBe(`invalid config key "listenPort": expected an integer 0..65535, got "abc" (from ${file} line 3)`);
  });

  it('refuses an out-of-range port from the command line', () => {
    const error = configError(() => load('broker', { grpcServerPort: '65536' }));
    expect(error.key).toBe('grpcServerPort');
    expect(error.message).toBe(
      'invalid config key "grpcServerPort": expected an integer 0..65535, got "65536" (from command line --grpcServerPort)',
    );
    expect(configError(() => load('broker', { listenPort: '-1' })).key).toBe('listenPort');
    expect(configError(() => load('broker', { listenPort: '1.5' })).key).toBe('listenPort');
  });

  it('refuses a bad boolean instead of reading it as false like Java', () => {
    const error = configError(() => load('broker', { autoCreateTopicEnable: 'yes' }));
    expect(error.key).toBe('autoCreateTopicEnable');
    expect(error.message).toContain('expected true or false, got "yes"');
  });

  it('refuses a bad enum, matching case exactly for brokerRole like Enum.valueOf', () => {
    const error = configError(() => load('broker', { brokerRole: 'slave' }));
    expect(error.key).toBe('brokerRole');
    expect(error.message).toContain('"brokerRole": expected one of ASYNC_MASTER, SYNC_MASTER, SLAVE, got "slave"');
    expect(configError(() => load('proxy', { proxyMode: 'REMOTE' })).message).toContain('"proxyMode": expected one of LOCAL, CLUSTER (any case)');
  });

  it('refuses an unknown command-line key and suggests the right case', () => {
    const error = configError(() => load('broker', { listenport: '1' }));
    expect(error.key).toBe('listenport');
    expect(error.message).toBe('unknown config key "listenport" (from command line --listenport); did you mean "listenPort"?');
    expect(configError(() => load('broker', { noSuchKey: '1' })).message).toContain('"noSuchKey"');
  });

  it('refuses a malformed namesrvAddr', () => {
    for (const bad of ['localhost', '127.0.0.1:', '127.0.0.1:9876;', 'a b:9876', '127.0.0.1:99999', ':9876']) {
      const error = configError(() => load('broker', { namesrvAddr: bad }));
      expect(error.key).toBe('namesrvAddr');
      expect(error.message).toContain('expected host:port[;host:port...]');
    }
    expect(load('broker', { namesrvAddr: '10.0.0.1:9876;ns.example.com:9876;[::1]:9876' }).config.namesrvAddr).toBe(
      '10.0.0.1:9876;ns.example.com:9876;[::1]:9876',
    );
  });

  it('refuses a missing file and names it', () => {
    const file = missingTempFile();
    const error = configError(() => load('broker', {}, file));
    expect(error.key).toBeUndefined();
    expect(error.message).toBe(`cannot read config file "${file}": ENOENT`);
  });

  it('refuses a file with a malformed escape and names the file and line', () => {
    const file = writeTempFile('broker.conf', 'brokerName=b\nbrokerClusterName=\\u00zz\n');
    const error = configError(() => load('broker', {}, file));
    expect(error.message).toBe(`cannot parse config file "${file}": line 2: malformed \\uXXXX escape "\\u00zz"`);
  });

  it('refuses a slave without a positive brokerId (cross-key rule)', () => {
    const file = writeTempFile('broker.conf', 'brokerRole=SLAVE\n');
    const error = configError(() => load('broker', {}, file));
    expect(error.key).toBe('brokerId');
    expect(error.message).toBe('invalid config key "brokerId": brokerRole SLAVE needs brokerId > 0, got "0" (from the default: 0)');
  });

  it('refuses a master with a non-zero brokerId instead of silently forcing 0', () => {
    const error = configError(() => load('broker', { brokerId: '2' }));
    expect(error.key).toBe('brokerId');
    expect(error.message).toContain('brokerRole ASYNC_MASTER (a master) needs brokerId 0, got "2" (from command line --brokerId)');
  });

  it("uses RocketMQ's NamesrvConfig defaults, with the KV config next to the store", () => {
    const { config } = load('namesrv');
    expect(config.scanNotActiveBrokerInterval).toBe(5000);
    expect(config.orderMessageEnable).toBe(false);
    expect(config.returnOrderTopicConfigToBroker).toBe(true);
    expect(config.enableAllTopicList).toBe(true);
    expect(config.enableTopicList).toBe(true);
    expect(config.supportActingMaster).toBe(false);
    expect(config.deleteTopicWithBrokerRegistration).toBe(false);
    // ${user.home}/namesrv/kvConfig.json, as RocketMQ, while storePathRootDir keeps its default.
    expect(config.kvConfigPath).toBe('/home/tester/namesrv/kvConfig.json');
    expect(load('start', { storePathRootDir: '/data/n1/store' }).config.kvConfigPath).toBe('/data/n1/namesrv/kvConfig.json');
    expect(load('namesrv', { kvConfigPath: '/etc/kv.json', scanNotActiveBrokerInterval: '250' }).config).toMatchObject({
      kvConfigPath: '/etc/kv.json',
      scanNotActiveBrokerInterval: 250,
    });
  });

  it("uses RocketMQ's registration defaults and refuses a period BrokerController would clamp", () => {
    const { config } = load('broker');
    expect(config.registerNameServerPeriod).toBe(30_000);
    expect(config.registerBrokerTimeoutMills).toBe(24_000);
    expect(config.brokerNotActiveTimeoutMillis).toBe(10_000);
    expect(load('broker', { registerNameServerPeriod: '10000' }).config.registerNameServerPeriod).toBe(10_000);
    const error = configError(() => load('broker', { registerNameServerPeriod: '5000' }));
    expect(error.key).toBe('registerNameServerPeriod');
    expect(error.message).toBe(
      'invalid config key "registerNameServerPeriod": expected an integer 10000..60000, got "5000" (from command line --registerNameServerPeriod)',
    );
    expect(configError(() => load('broker', { registerNameServerPeriod: '60001' })).key).toBe('registerNameServerPeriod');
    expect(configError(() => load('broker', { registerBrokerTimeoutMills: '0' })).key).toBe('registerBrokerTimeoutMills');
  });

  it('refuses a NameServer scan interval that is not a positive number of milliseconds, and an empty kvConfigPath', () => {
    const error = configError(() => load('namesrv', { scanNotActiveBrokerInterval: '0' }));
    expect(error.key).toBe('scanNotActiveBrokerInterval');
    expect(error.message).toBe(
      'invalid config key "scanNotActiveBrokerInterval": expected an integer 1..3600000, got "0" (from command line --scanNotActiveBrokerInterval)',
    );
    expect(configError(() => load('namesrv', { enableTopicList: 'yes' })).key).toBe('enableTopicList');
    const empty = configError(() => load('namesrv', { kvConfigPath: ' ' }));
    expect(empty.key).toBe('kvConfigPath');
    expect(empty.message).toContain('expected a non-empty path');
  });

  it('skips the brokerId rules in controller mode but then needs controllerAddr', () => {
    expect(load('broker', { enableControllerMode: 'true', controllerAddr: '127.0.0.1:9878', brokerId: '3' }).config.brokerId).toBe(3);
    expect(configError(() => load('broker', { enableControllerMode: 'true' })).key).toBe('controllerAddr');
  });

  it('refuses a commit log segment too small for the largest message', () => {
    const error = configError(() => load('broker', { mappedFileSizeCommitLog: '1048576', maxMessageSize: '1048576' }));
    expect(error.key).toBe('mappedFileSizeCommitLog');
    expect(error.message).toContain('must be at least maxMessageSize + 65536 (1114112)');
  });

  it('refuses two servers of one role on the same port', () => {
    const error = configError(() => load('start', { remotingListenPort: '9876' }));
    expect(error.key).toBe('remotingListenPort');
    expect(error.message).toContain('port 9876 is already used by namesrvAddr in role start');
    expect(configError(() => load('broker', { haListenPort: '10911' })).key).toBe('haListenPort');
    expect(load('start', { listenPort: '0', haListenPort: '0', grpcServerPort: '0', remotingListenPort: '0' }).config.listenPort).toBe(0);
  });

  it('refuses role start with several NameServers, and a proxy listenPort that is not remotingListenPort', () => {
    expect(configError(() => load('start', { namesrvAddr: 'a:1;b:2' })).key).toBe('namesrvAddr');
    expect(configError(() => load('proxy', { listenPort: '9000' })).key).toBe('listenPort');
  });

  it('blames a derived default that goes out of range, naming the rule', () => {
    const error = configError(() => load('broker', { listenPort: '65535' }));
    expect(error.key).toBe('haListenPort');
    expect(error.message).toBe(
      'invalid config key "haListenPort": expected an integer 0..65535, got "65536" (from the default: listenPort + 1 (0 when listenPort is 0))',
    );
  });

  it('lists every problem when there are several, blaming the first key', () => {
    const error = configError(() => load('broker', { listenPort: 'x', brokerId: 'y' }));
    expect(error.key).toBe('listenPort');
    expect(error.problems).toHaveLength(2);
    expect(error.message.split('\n')).toHaveLength(2);
    expect(error.message).toContain('"brokerId"');
  });

  it('refuses an unknown role', () => {
    const error = configError(() => loadConfig({ role: 'worker' as Role, overrides: {}, machine: TEST_MACHINE }));
    expect(error.message).toBe('unknown role "worker"');
  });

  it('refuses a structured JSON value for a known key', () => {
    const file = writeTempFile('rmq-proxy.json', JSON.stringify({ grpcServerPort: [1] }));
    const error = configError(() => load('proxy', {}, file));
    expect(error.key).toBe('grpcServerPort');
    expect(error.message).toContain(`got [1] (from ${file})`);
  });
});

describe('parseCliOverrides', () => {
  it('reads --key=value, --key value and a bare --flag as true', () => {
    expect(parseCliOverrides(['--listenPort=10911', '--brokerName', 'b1', '--autoCreateTopicEnable', '--brokerId', '-1'])).toEqual({
      listenPort: '10911',
      brokerName: 'b1',
      autoCreateTopicEnable: 'true',
      brokerId: '-1',
    });
  });

  it('reads a flag at the end, an empty value and a value containing =', () => {
    expect(parseCliOverrides(['--namesrvAddr=', '--messageDelayLevel=1s=2', '--enablePropertyFilter'])).toEqual({
      namesrvAddr: '',
      messageDelayLevel: '1s=2',
      enablePropertyFilter: 'true',
    });
  });

  it('lets a later flag win', () => {
    expect(parseCliOverrides(['--listenPort', '1', '--listenPort=2'])).toEqual({ listenPort: '2' });
  });

  it('refuses stray arguments and flags without a key', () => {
    for (const argv of [['stray'], ['-c', 'x'], ['--'], ['--=1']]) {
      const error = thrownBy(() => parseCliOverrides(argv));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    }
  });

  it('feeds loadConfig, which refuses unknown keys', () => {
    const overrides = parseCliOverrides(['--listenPort', '20911', '--brokerClusterName=C1']);
    expect(load('broker', overrides).config.listenPort).toBe(20911);
    expect(configError(() => load('broker', parseCliOverrides(['--nope']))).key).toBe('nope');
  });
});
