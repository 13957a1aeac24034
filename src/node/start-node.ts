/**
 * Assembles a node: the actor system with the role's pools, the Remoting acceptors (one per network
 * worker thread and server, sharing the port) and the gRPC front, then reports the bound ports.
 * `stop` is the graceful path used on SIGTERM: stop accepting, drain, flush (actors' onStop), exit.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { NodeConfig, Role } from '../config/schema.ts';
import { parseAddressList, parseHostPort } from '../config/address.ts';
import { parseControllerPeers } from '../net/remoting/controller-protocol.ts';
import type { ActorRef, BehaviorSource } from '../runtime/actor.ts';
import { ActorSystem, defaultTuning, type PoolInfo } from '../runtime/actor-system.ts';
import type { BoundAnswer, RemotingAcceptorArgs, RemotingAcceptorMessage } from '../actors/remoting-acceptor.ts';
import type { GrpcFrontArgs, GrpcFrontMessage } from '../actors/grpc-front.ts';
import { poolsForRole, sharedPoolsForRole } from './pools.ts';
import { NodeStartError, portOf } from './node-start-error.ts';

export { NodeStartError } from './node-start-error.ts';
import { createMasterLease } from '../actors/master-lease.ts';
import { controllerRoutes, spawnController } from '../actors/controller.ts';
import { startBroker, startNameServer } from './broker-node.ts';
import type { RemotingRoutes } from '../actors/remoting-routes.ts';

const acceptorSource = { module: new URL('../actors/remoting-acceptor.ts', import.meta.url).href, export: 'remotingAcceptor' };
const grpcSource = { module: new URL('../actors/grpc-front.ts', import.meta.url).href, export: 'grpcFront' };

/** The ports a node listens on (0 when that server is not part of the role). */
export type NodePorts = { readonly namesrv: number; readonly broker: number; readonly ha: number; readonly controller: number; readonly grpc: number };

/** A running node. */
export type RunningNode = {
  readonly role: Role;
  readonly ports: NodePorts;
  readonly pools: readonly PoolInfo[];
  readonly system: ActorSystem;
  /** The Proxy's gRPC fronts, one per thread of their pool (none without a Proxy). */
  readonly grpcFronts: readonly ActorRef<GrpcFrontMessage>[];
  /** Graceful stop: stop accepting, drain, flush, stop threads. */
  stop(): Promise<void>;
};

type Listener = ActorRef<RemotingAcceptorMessage> | ActorRef<GrpcFrontMessage>;

/** Starts a node for `role` with a validated config. */
export async function startNode(role: Role, config: NodeConfig, log: Logger): Promise<RunningNode> {
  const system = await ActorSystem.start({
    pools: poolsForRole(role, config),
    sharedPools: sharedPoolsForRole(role, config),
    cpuThreads: config.cpuTaskThreadPoolNums,
    cpuQueueMax: config.cpuTaskThreadPoolNums * 1024,
    slotsMax: 65_536,
    workerSupervision: { onFailure: 'restart', maxRestarts: config.supervisorMaxRestarts, withinMs: config.supervisorRestartWindowMs },
    tuning: {
      ...defaultTuning,
      defaultMailboxCapacity: config.actorMailboxCapacity,
      askTimeoutMs: config.actorAskTimeoutMs,
      crossThreadBatchMax: config.crossThreadBatchMax,
      spinUs: config.actorSpinUs,
      defaultSupervision: { onFailure: 'restart', maxRestarts: config.supervisorMaxRestarts, withinMs: config.supervisorRestartWindowMs },
    },
    logLevel: config.logLevel,
    log,
    semiSpaceMb: config.workerSemiSpaceSizeMb,
  });
  const pools = system.pools();
  log.info(
    { pools: pools.map((pool) => ({ pool: pool.name, size: pool.size, threadIds: pool.threadIds })), sharedPools: sharedPoolsForRole(role, config) },
    'thread pools started',
  );
  const listeners: Listener[] = [];
  try {
    const host = '0.0.0.0';
    const frameMaxBytes = 16 * 1024 * 1024;
    const remotingArgs = { host, frameMaxBytes, connectionsMax: 10_000 };
    let namesrv = 0;
    let broker = 0;
    let controller = 0;
    let ha = 0;
    let grpc = 0;
    let grpcFronts: ActorRef<GrpcFrontMessage>[] = [];
    let namesrvRoutes: RemotingRoutes | undefined;
    const brokerRoutes: { brokerAddr: string; routes: RemotingRoutes }[] = [];
    if (role === 'start' || role === 'namesrv') {
      const port = role === 'start' ? namesrvPort(config) : config.listenPort;
      const acceptors = await startRemoting(system, 'namesrv', { ...remotingArgs, server: 'namesrv', port }, config, listeners);
      namesrv = acceptors.port;
      namesrvRoutes = await startNameServer(system, config);
      await useRoutes(system, acceptors.refs, namesrvRoutes);
    }
    // Controller mode: the master lease the replicas manager publishes, checked by whoever writes a stored
    // put's answer: the broker's acceptors, and in `start` the LOCAL Proxy's grpc-front (master-lease.ts).
    const masterLease = (role === 'start' || role === 'broker') && config.enableControllerMode ? createMasterLease() : undefined;
    if (role === 'start' || role === 'broker') {
      const acceptors = await startRemoting(
        system,
        'broker',
        { ...remotingArgs, server: 'broker', port: config.listenPort, ...(masterLease === undefined ? {} : { masterLease }) },
        config,
        listeners,
      );
      broker = acceptors.port;
      // In `start` the broker registers with the NameServer of this same node.
      const brokerConfig = role === 'start' ? { ...config, namesrvAddr: `127.0.0.1:${namesrv}` } : config;
      const { routes, haPort } = await startBroker(system, brokerConfig, broker, masterLease);
      ha = haPort;
      brokerRoutes.push({ brokerAddr: `${config.brokerIP1}:${broker}`, routes });
      await useRoutes(system, acceptors.refs, routes);
    }
    if (role === 'controller' || (role !== 'broker' && role !== 'proxy' && config.enableControllerInNamesrv)) {
      // Standalone on listenPort; inside a NameServer on controllerListenPort (its codes overlap the
      // NameServer's: BROKER_HEARTBEAT), as RocketMQ's ControllerManager runs its own remoting server.
      const port = role === 'controller' ? config.listenPort : config.controllerListenPort;
      const acceptors = await startRemoting(system, 'controller', { ...remotingArgs, server: 'controller', port }, config, listeners);
      controller = acceptors.port;
      warnIfAnnouncedElsewhere(config, controller, log);
      const ref = await spawnController(system, {
        controllerStorePath: config.controllerStorePath,
        enableElectUncleanMaster: config.enableElectUncleanMaster,
        notifyBrokerRoleChanged: config.notifyBrokerRoleChanged,
        scanNotActiveBrokerIntervalMs: config.scanNotActiveBrokerInterval,
        controllerDLegerGroup: config.controllerDLegerGroup,
        controllerDLegerSelfId: config.controllerDLegerSelfId,
        controllerDLegerPeers: config.controllerDLegerPeers,
        // Several controllers agree through etcd when endpoints are set; alone, the file store is used.
        controllerEtcdEndpoints: config.controllerEtcdEndpoints,
        controllerEtcdKeyPrefix: config.controllerEtcdKeyPrefix,
        controllerEtcdLeaseTtlSeconds: config.controllerEtcdLeaseTtlSeconds,
        controllerHeartBeatTimeoutMs: config.controllerHeartBeatTimeoutMills,
      });
      await useRoutes(system, acceptors.refs, controllerRoutes(ref));
    }
    if (role === 'start' || role === 'proxy') {
      const frontArgs: GrpcFrontArgs = {
        host,
        port: config.grpcServerPort,
        maxReceiveMessageBytes: config.grpcMaxInboundMessageSize,
        proxyMode: config.proxyMode,
        namesrvAddrs: (parseAddressList(config.namesrvAddr) ?? []).map((address) => `${address.host}:${address.port}`),
        autoCreateTopicEnable: config.autoCreateTopicEnable,
        defaultTopicQueueNums: config.defaultTopicQueueNums,
        maxMessageSize: config.maxMessageSize,
        ...(masterLease === undefined ? {} : { masterLease }),
        enableTopicMessageTypeCheck: config.enableTopicMessageTypeCheck,
      };
      // One front per thread of the pool the fronts run on (their own `grpc` pool, or the remoting threads).
      const frontPool = sharedPoolsForRole(role, config)['grpc'] ?? 'grpc';
      const frontCount = pools.find((pool) => pool.name === frontPool)?.size ?? 1;
      const fronts = await startFronts(system, frontArgs, frontCount, listeners);
      grpc = fronts.port;
      grpcFronts = fronts.refs;
      if (config.proxyMode === 'LOCAL') {
        // The proxy reaches this node's NameServer and broker through their processor actors.
        const servers: GrpcFrontMessage = { type: 'useLocalServers', namesrv: namesrvRoutes, brokers: brokerRoutes };
        await Promise.all(fronts.refs.map((ref) => system.ask<GrpcFrontMessage, boolean>(ref, servers, 10_000)));
      }
    }
    const ports: NodePorts = { namesrv, broker, ha, controller, grpc };
    log.info({ ports, host: os.hostname() }, 'node started');
    return { role, ports, pools, system, grpcFronts, stop: () => stopNode(system, listeners, log) };
  } catch (error) {
    await system.shutdown();
    throw error;
  }
}

/** A controller of an etcd group announces its controllerDLegerPeers entry to brokers: say so when that is not where it listens. */
function warnIfAnnouncedElsewhere(config: NodeConfig, boundPort: number, log: Logger): void {
  if (config.controllerEtcdEndpoints === '') return;
  const self = parseControllerPeers(config.controllerDLegerPeers)?.find((peer) => peer.id === config.controllerDLegerSelfId);
  const announcedPort = self === undefined ? undefined : parseHostPort(self.address)?.port;
  if (announcedPort !== boundPort) {
    log.warn({ announced: self?.address, boundPort }, 'this controller listens on another port than its controllerDLegerPeers entry, which brokers are sent to');
  }
}

function namesrvPort(config: NodeConfig): number {
  const addresses = parseAddressList(config.namesrvAddr);
  if (addresses === undefined || addresses.length !== 1) throw new NodeStartError(`namesrvAddr must name one address, got "${config.namesrvAddr}"`);
  return addresses[0]!.port;
}

/** Installs the processors' routes in every acceptor of one server. */
async function useRoutes(system: ActorSystem, acceptors: readonly ActorRef<RemotingAcceptorMessage>[], routes: RemotingRoutes): Promise<void> {
  await Promise.all(acceptors.map((ref) => system.ask<RemotingAcceptorMessage, boolean>(ref, { type: 'useRoutes', routes }, 10_000)));
}

/** One acceptor per network worker thread, all on one port. */
function startRemoting(
  system: ActorSystem,
  server: string,
  args: RemotingAcceptorArgs,
  config: NodeConfig,
  listeners: Listener[],
): Promise<{ port: number; refs: ActorRef<RemotingAcceptorMessage>[] }> {
  return startOnSharedPort<RemotingAcceptorMessage, RemotingAcceptorArgs>(system, { name: `${server}-acceptor`, behavior: acceptorSource, pool: 'remoting' }, args, config.serverWorkerThreads, listeners);
}

/** `count` gRPC fronts, all on one port. */
function startFronts(system: ActorSystem, args: GrpcFrontArgs, count: number, listeners: Listener[]): Promise<{ port: number; refs: ActorRef<GrpcFrontMessage>[] }> {
  return startOnSharedPort<GrpcFrontMessage, GrpcFrontArgs>(system, { name: 'grpc-front', behavior: grpcSource, pool: 'grpc' }, args, count, listeners);
}

/**
 * `count` listening actors named `<name>-<index>` that answer `port` with a BoundAnswer: the first binds
 * args.port (0 picks one), the rest listen on the port it got (reusePort).
 */
async function startOnSharedPort<M, A extends { readonly port: number }>(
  system: ActorSystem,
  spec: { readonly name: string; readonly behavior: BehaviorSource; readonly pool: string },
  args: A,
  count: number,
  listeners: Listener[],
): Promise<{ port: number; refs: ActorRef<M>[] }> {
  const refs: ActorRef<M>[] = [];
  const spawnOne = async (index: number, port: number): Promise<number> => {
    const ref = await system.spawn<M, A>({ name: `${spec.name}-${index}`, behavior: spec.behavior, args: { ...args, port }, pool: spec.pool });
    listeners.push(ref as Listener);
    refs.push(ref);
    return portOf(await system.ask<{ type: 'port' }, BoundAnswer>(ref as ActorRef<{ type: 'port' }>, { type: 'port' }, 10_000));
  };
  const port = await spawnOne(0, args.port);
  await Promise.all(Array.from({ length: count - 1 }, (_, i) => spawnOne(i + 1, port)));
  return { port, refs };
}

async function stopNode(system: ActorSystem, listeners: Listener[], log: Logger): Promise<void> {
  log.info('stopping: no new connections');
  await Promise.allSettled(listeners.map((ref) => system.ask(ref as ActorRef<{ type: 'stopAccepting' }>, { type: 'stopAccepting' }, 5_000)));
  log.info('stopping: flushing and stopping threads');
  await system.shutdown();
  log.info('node stopped');
}
