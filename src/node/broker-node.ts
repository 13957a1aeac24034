/**
 * Spawns the Broker's actors inside a node and returns the Remoting routes its acceptors serve, as
 * RocketMQ's BrokerController.registerProcessor maps request codes to processors and executors:
 *
 * | codes                                              | actor(s)                        | pool       |
 * |----------------------------------------------------|---------------------------------|------------|
 * | SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE, | send-processor, one per thread  | send       |
 * | CONSUMER_SEND_MSG_BACK                             |                                 |            |
 * | PULL_MESSAGE                                       | pull-processor, one per thread  | pull       |
 * | POP_MESSAGE, ACK_MESSAGE,                          | pop-processor, one per broker   | pull       |
 * | CHANGE_MESSAGE_INVISIBLETIME                       | (the POP engine's state)        |            |
 * | everything else (clients, offsets, admin, query)   | broker-admin                    | admin      |
 * | (store)                                            | commit-log-writer / -flusher    | commitlog / store |
 * | (delay levels)                                     | schedule-service                | store      |
 * | (timer messages: rmq_sys_wheel_timer)              | timer-service                   | store      |
 * | RECALL_MESSAGE                                     | send-processor (a delete marker)| send       |
 * | END_TRANSACTION (and the check-back rounds)        | transaction-service             | store      |
 * | (replication: haListenPort, masters)               | ha-service                      | store      |
 * | (replication: a SLAVE copying its master)          | ha-client                       | store      |
 * | GET_BROKER_EPOCH_CACHE, NOTIFY_BROKER_ROLE_CHANGED,| replicas-manager (controller    | admin      |
 * | EXCHANGE_BROKER_HA_INFO                            | mode: ids, roles, fencing)      |            |
 * | (metadata: a slave copying its master's topics,    | slave-synchronize (SLAVE, and   | admin      |
 * | groups, consumer and delay offsets every 10 s)     | controller mode as told roles)  |            |
 *
 * The NameServer is one actor on the admin pool serving every code of its port.
 */
import os from 'node:os';
import type { NodeConfig } from '../config/schema.ts';
import { parseAddressList } from '../config/address.ts';
import type { ActorRef, ActorSpawner } from '../runtime/actor.ts';
import { RequestCode } from '../net/remoting/remoting-command.ts';
import { spawnStore, storeSettingsFromConfig } from '../actors/store-actors.ts';
import { parseDelayLevels, type BrokerAdminMessage, type BrokerProcessorArgs } from '../actors/broker-context.ts';
import type { ChannelClosedMessage, RemotingRequestMessage, RemotingRoutes } from '../actors/remoting-routes.ts';
import { spawnNameServer, type NameServerArgs } from '../actors/name-server.ts';
import type { BrokerAdminArgs, BrokerAdminOptions } from '../actors/broker-admin.ts';
import { scheduleServiceArgsOf, spawnScheduleService, type ScheduleReloadMessage } from '../actors/schedule-service.ts';
import { spawnTimerService } from '../actors/timer-service.ts';
import { spawnTransactionService } from '../actors/transaction-service.ts';
import { spawnHaService, type HaServiceMessage } from '../actors/ha-service.ts';
import type { BoundAnswer } from '../actors/remoting-acceptor.ts';
import { portOf } from './node-start-error.ts';
import { spawnHaClient } from '../actors/ha-client.ts';
import { REPLICAS_MANAGER_REQUEST_CODES, spawnReplicasManager, type ReplicasRoleChangedMessage } from '../actors/replicas-manager.ts';
import { createMasterLease } from '../actors/master-lease.ts';
import { spawnSlaveSynchronize, type SyncFromMasterMessage } from '../actors/slave-synchronize.ts';
import type { PullProcessorArgs, PullSlaveReadSettings } from '../actors/pull-processor.ts';
import type { PopProcessorArgs } from '../actors/pop-processor.ts';

/** What starting a broker needs from the actor system: spawning, and asking the HA service its port. */
export type BrokerSpawner = ActorSpawner & { ask<M, R>(target: ActorRef<M>, message: M, timeoutMs?: number): Promise<R> };

const actorModule = (file: string): string => new URL(`../actors/${file}`, import.meta.url).href;

/** The NameServer's NamesrvConfig keys, as its start arguments; its bounds keep their defaults. */
export function nameServerArgsOf(config: NodeConfig): Partial<NameServerArgs> {
  return {
    scanNotActiveBrokerIntervalMs: config.scanNotActiveBrokerInterval,
    orderMessageEnable: config.orderMessageEnable,
    returnOrderTopicConfigToBroker: config.returnOrderTopicConfigToBroker,
    enableAllTopicList: config.enableAllTopicList,
    enableTopicList: config.enableTopicList,
    supportActingMaster: config.supportActingMaster,
    deleteTopicWithBrokerRegistration: config.deleteTopicWithBrokerRegistration,
    kvConfigPath: config.kvConfigPath,
  };
}

/** The NameServer's routes: one actor takes every code and hears of closed connections. */
export async function startNameServer(system: ActorSpawner, config: NodeConfig): Promise<RemotingRoutes> {
  const nameServer = await spawnNameServer(system, { pool: 'admin', ...nameServerArgsOf(config) });
  return { byCode: {}, fallback: [nameServer], closeListeners: [nameServer] };
}

/** The broker's BrokerConfig keys for its NameServer registrations, as broker-admin options. */
export function registrationOptionsOf(config: NodeConfig): Pick<BrokerAdminOptions, 'registerNameServerPeriodMs' | 'registerBrokerTimeoutMs'> {
  return { registerNameServerPeriodMs: config.registerNameServerPeriod, registerBrokerTimeoutMs: config.registerBrokerTimeoutMills };
}

/** The broker's identity and settings, from config. */
export function brokerArgsOf(config: NodeConfig, refs: BrokerProcessorArgs['refs'], listenPort: number): BrokerProcessorArgs {
  const storeHost = { address: config.brokerIP1, port: listenPort };
  return {
    identity: {
      clusterName: config.brokerClusterName,
      brokerName: config.brokerName,
      brokerId: config.brokerId,
      brokerAddr: `${config.brokerIP1}:${listenPort}`,
      storeHost,
    },
    settings: {
      autoCreateTopicEnable: config.autoCreateTopicEnable,
      autoCreateSubscriptionGroup: config.autoCreateSubscriptionGroup,
      defaultTopicQueueNums: config.defaultTopicQueueNums,
      maxMessageSize: config.maxMessageSize,
      enablePropertyFilter: config.enablePropertyFilter,
      delayLevelsMs: parseDelayLevels(config.messageDelayLevel),
      namesrvAddrs: (parseAddressList(config.namesrvAddr) ?? []).map((address) => `${address.host}:${address.port}`),
      storePathRootDir: config.storePathRootDir,
      timerWheelEnable: config.timerWheelEnable,
      timerPrecisionMs: config.timerPrecisionMs,
      timerMaxDelaySec: config.timerMaxDelaySec,
      recallMessageEnable: config.recallMessageEnable,
      transactionTimeOutMs: config.transactionTimeOut,
      transactionCheckMax: config.transactionCheckMax,
      transactionCheckIntervalMs: config.transactionCheckInterval,
    },
    refs,
  };
}

/** Whether a slave serves pulls and where consumers are steered (slaveReadEnable), from config. */
export function pullSlaveReadOf(config: Pick<NodeConfig, 'slaveReadEnable' | 'accessMessageInMemoryMaxRatio'>): PullSlaveReadSettings {
  return {
    slaveReadEnable: config.slaveReadEnable,
    accessMessageInMemoryMaxRatio: config.accessMessageInMemoryMaxRatio,
    totalPhysicalMemorySizeBytes: os.totalmem(),
  };
}

/**
 * Spawns store, broker-admin, the send and pull processors and the schedule service; returns the routes
 * for the broker's acceptors. `listenPort` is the port the broker announces (bound before this runs, so
 * an ephemeral port 0 is already resolved). `masterLease` (controller mode) is the cell the broker's acceptors
 * check too; a caller without acceptors of its own may leave it to be created here.
 */
export async function startBroker(
  system: BrokerSpawner,
  config: NodeConfig,
  listenPort: number,
  masterLease: SharedArrayBuffer | undefined = config.enableControllerMode ? createMasterLease() : undefined,
): Promise<{ routes: RemotingRoutes; haPort: number }> {
  const controllerMode = config.enableControllerMode;
  const configured = storeSettingsFromConfig(config, { address: config.brokerIP1, port: listenPort });
  // In controller mode the writer starts fenced (as a slave) until the controller names the master.
  const settings = controllerMode ? { ...configured, brokerRole: 'SLAVE' as const } : configured;
  const { writer } = await spawnStore(system, { settings });
  // Every broker serves haListenPort (a slave may be promoted); a SLAVE also copies from its master.
  const haService = await spawnHaService(system, {
    writer,
    haListenPort: config.haListenPort,
    haTransferBatchSize: config.haTransferBatchSize,
    haSendHeartbeatIntervalMs: config.haSendHeartbeatInterval,
    haHousekeepingIntervalMs: config.haHousekeepingInterval,
  });
  const haPort = portOf(await system.ask<HaServiceMessage, BoundAnswer>(haService, { type: 'port' }, 10_000));
  const haServerAddr = `${config.brokerIP1}:${haPort}`;
  const haClient =
    config.brokerRole === 'SLAVE' || controllerMode
      ? await spawnHaClient(system, {
          writer,
          haMasterAddress: controllerMode || config.haMasterAddress === '' ? null : config.haMasterAddress,
          haSendHeartbeatIntervalMs: config.haSendHeartbeatInterval,
          haHousekeepingIntervalMs: config.haHousekeepingInterval,
        })
      : undefined;
  // broker-admin is addressed through ctx.self; its own args cannot hold its ref before it exists.
  const unborn: ActorRef<BrokerAdminMessage> = { slot: -1, name: 'broker-admin (self)' };
  const admin = await system.spawn<BrokerAdminMessage, BrokerAdminArgs>({
    name: 'broker-admin',
    behavior: { module: actorModule('broker-admin.ts'), export: 'brokerAdmin' },
    args: { ...brokerArgsOf(config, { writer, admin: unborn }, listenPort), options: { ...registrationOptionsOf(config), timerWheelEnable: config.timerWheelEnable, enableMixedMessageType: config.enableMixedMessageType, haServerAddr } },
    pool: 'admin',
  });
  // Controller mode: the lease the replicas manager publishes and the send processors check.
  const args: BrokerProcessorArgs = { ...brokerArgsOf(config, { writer, admin }, listenPort), ...(masterLease === undefined ? {} : { masterLease }) };
  // The delay levels, one per broker; slave-synchronize tells it to reload the delay offsets it synced.
  const schedule = await spawnScheduleService(system, scheduleServiceArgsOf(args));
  // A slave copies its master's metadata (RocketMQ's SlaveSynchronize): a SLAVE by config from start, a
  // controller-mode broker whenever the replicas manager makes it one.
  const slaveSynchronize =
    config.brokerRole === 'SLAVE' || controllerMode
      ? await spawnSlaveSynchronize(system, {
          // broker-admin takes syncFromMaster among its own messages (BrokerAdminInbox).
          admin: { slot: admin.slot, name: admin.name } satisfies ActorRef<SyncFromMasterMessage>,
          brokerAddr: args.identity.brokerAddr,
          brokerClusterName: config.brokerClusterName,
          brokerName: config.brokerName,
          mode: controllerMode ? 'controller' : 'static',
          namesrvAddrs: args.settings.namesrvAddrs,
          // The schedule service takes reloadOffsets among its own messages (ScheduleServiceMessage).
          schedule: { slot: schedule.slot, name: schedule.name } satisfies ActorRef<ScheduleReloadMessage>,
        })
      : undefined;
  const spawnMany = async (kind: 'send' | 'pull', count: number, kindArgs: BrokerProcessorArgs): Promise<ActorRef<RemotingRequestMessage>[]> =>
    Promise.all(
      Array.from({ length: count }, (_, index) =>
        system.spawn<RemotingRequestMessage, BrokerProcessorArgs>({
          name: `${kind}-processor-${index}`,
          behavior: { module: actorModule(`${kind}-processor.ts`), export: `${kind}Processor` },
          args: kindArgs,
          pool: kind,
        }),
      ),
    );
  const senders = await spawnMany('send', config.sendMessageThreadPoolNums, args);
  const pullArgs: PullProcessorArgs = { ...args, slaveRead: pullSlaveReadOf(config) };
  const pullers = await spawnMany('pull', config.pullMessageThreadPoolNums, pullArgs);
  // One pop processor: the POP engine (leases, journal under storePathRootDir/pop) is per broker.
  const popper = await system.spawn<RemotingRequestMessage, PopProcessorArgs>({
    name: 'pop-processor',
    behavior: { module: actorModule('pop-processor.ts'), export: 'popProcessor' },
    args: { ...args, flushDiskType: config.flushDiskType },
    pool: 'pull',
  });
  // The timer wheel (timerWheelEnable) and the transaction service, each one per broker.
  if (config.timerWheelEnable) await spawnTimerService(system, args);
  const transactions = await spawnTransactionService(system, args);
  const byCode: Record<number, readonly ActorRef<RemotingRequestMessage>[]> = {
    [RequestCode.SEND_MESSAGE]: senders,
    [RequestCode.SEND_MESSAGE_V2]: senders,
    [RequestCode.SEND_BATCH_MESSAGE]: senders,
    [RequestCode.CONSUMER_SEND_MSG_BACK]: senders,
    [RequestCode.RECALL_MESSAGE]: senders,
    [RequestCode.END_TRANSACTION]: [transactions as ActorRef<RemotingRequestMessage>],
    [RequestCode.PULL_MESSAGE]: pullers,
    [RequestCode.LITE_PULL_MESSAGE]: pullers,
    [RequestCode.POP_MESSAGE]: [popper],
    [RequestCode.ACK_MESSAGE]: [popper],
    [RequestCode.CHANGE_MESSAGE_INVISIBLETIME]: [popper],
  };
  if (controllerMode && haClient !== undefined) {
    const replicas = await spawnReplicasManager(system, {
      storePathRootDir: config.storePathRootDir,
      brokerClusterName: config.brokerClusterName,
      brokerName: config.brokerName,
      brokerAddr: `${config.brokerIP1}:${listenPort}`,
      haServerAddr,
      controllerAddr: config.controllerAddr,
      brokerRole: config.brokerRole,
      asyncLearner: config.asyncLearner,
      writer,
      haClient,
      // broker-admin takes roleChanged among its own messages (BrokerAdminOwnMessage); slave-synchronize
      // starts and stops syncing with it.
      onRoleChanged: [
        { slot: admin.slot, name: admin.name } satisfies ActorRef<ReplicasRoleChangedMessage>,
        ...(slaveSynchronize === undefined ? [] : [{ slot: slaveSynchronize.slot, name: slaveSynchronize.name } satisfies ActorRef<ReplicasRoleChangedMessage>]),
      ],
      brokerHeartbeatIntervalMs: config.brokerHeartbeatInterval,
      controllerHeartBeatTimeoutMs: config.controllerHeartBeatTimeoutMills,
      sendHeartbeatTimeoutMs: config.sendHeartbeatTimeoutMillis,
      syncBrokerMetadataPeriodMs: config.syncBrokerMetadataPeriod,
      checkSyncStateSetPeriodMs: config.checkSyncStateSetPeriod,
      brokerElectionPriority: config.brokerElectionPriority,
      ...(masterLease === undefined ? {} : { masterLease }),
    });
    for (const code of REPLICAS_MANAGER_REQUEST_CODES) byCode[code] = [replicas as ActorRef<RemotingRequestMessage>];
  }
  const adminRequests = admin as ActorRef<RemotingRequestMessage>;
  const closeListeners = [admin, ...pullers, popper].map((ref) => ref as ActorRef<ChannelClosedMessage>);
  return { routes: { byCode, fallback: [adminRequests], closeListeners }, haPort };
}
