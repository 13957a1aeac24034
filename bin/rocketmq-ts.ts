#!/usr/bin/env node
/**
 * The `rocketmq-ts` command line. Each role command loads the config (`-c FILE`, then `--key=value`
 * overrides), refuses bad config before any port opens, starts the node and stops it gracefully on
 * SIGINT/SIGTERM (stop accepting, drain, flush, exit 0).
 */
import { Command } from 'commander';
import { pino } from 'pino';
import { ConfigError, loadConfig, parseCliOverrides } from '../src/config/load.ts';
import type { Role } from '../src/config/schema.ts';
import { renderConfigTable } from '../src/config/table.ts';
import { startNode } from '../src/node/start-node.ts';

const stopTimeoutMs = 30_000;

const roles: readonly { role: Role; summary: string }[] = [
  { role: 'start', summary: 'run a single node: NameServer (9876), Broker (10911) and gRPC Proxy (8081, LOCAL mode)' },
  { role: 'namesrv', summary: 'run a NameServer (listenPort, default 9876)' },
  { role: 'broker', summary: 'run a Broker (listenPort, default 10911)' },
  { role: 'proxy', summary: 'run a gRPC Proxy (grpcServerPort, default 8081)' },
  { role: 'controller', summary: 'run a standalone Controller (listenPort, default 9878)' },
];

const overrideHelp = `
Any config key can be set as --key=value (or --key value); it overrides the file given with -c.
Keys and defaults: \`rocketmq-ts config-table\`. Example:
  rocketmq-ts start -c conf/broker.conf --storePathRootDir=/data/store --sendMessageThreadPoolNums=4`;

async function runRole(role: Role, configFile: string | undefined, namesrvAddr: string | undefined, extra: string[]): Promise<void> {
  let loaded;
  try {
    const overrides = parseCliOverrides(extra);
    if (namesrvAddr !== undefined) overrides.namesrvAddr = namesrvAddr;
    loaded = loadConfig({ role, file: configFile, overrides });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`rocketmq-ts: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const { config, warnings } = loaded;
  const log = pino({ level: config.logLevel, base: { role } });
  for (const warning of warnings) log.warn(warning);
  let node;
  try {
    node = await startNode(role, config, log);
  } catch (error) {
    log.fatal({ err: error }, 'node failed to start');
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutdown requested');
    const timer = setTimeout(() => {
      log.fatal({ stopTimeoutMs }, 'graceful stop took too long');
      process.exit(1);
    }, stopTimeoutMs);
    timer.unref();
    node.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.fatal({ err: error }, 'graceful stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // `npm start` does not pass SIGTERM on to us when npm itself is killed: notice being orphaned instead.
  const parentPid = process.ppid;
  setInterval(() => {
    if (process.ppid !== parentPid) stop('parent exited');
  }, 1_000).unref();
  node.system.on('fatal', (reason: string) => {
    log.fatal({ reason }, 'actor system cannot continue');
    stop('fatal');
  });
}

const program = new Command()
  .name('rocketmq-ts')
  .description('Apache RocketMQ 5.x in TypeScript: NameServer, Broker, gRPC Proxy and Controller on worker threads.')
  .showHelpAfterError();

for (const { role, summary } of roles) {
  program
    .command(role)
    .description(summary)
    .option('-c, --configFile <file>', 'broker.conf-style properties file (or .json)')
    .option('-n, --namesrvAddr <addr>', 'NameServer address list, host:port[;host:port]')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .addHelpText('after', overrideHelp)
    .action(async (options: { configFile?: string; namesrvAddr?: string }, command: Command) => {
      await runRole(role, options.configFile, options.namesrvAddr, command.args);
    });
}

program
  .command('config-table')
  .description('print every config key with its type, defaults and meaning as a Markdown table')
  .action(() => {
    process.stdout.write(`${renderConfigTable()}\n`);
  });

await program.parseAsync(process.argv);
