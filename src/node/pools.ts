/**
 * Which worker pools a role runs, and how big each is, straight from the config keys. This is the
 * mapping of RocketMQ's thread pools onto our dispatchers:
 *
 * | pool     | config key                 | RocketMQ counterpart                                  |
 * |----------|----------------------------|-------------------------------------------------------|
 * | remoting | serverWorkerThreads        | Netty worker group (decode, encode, connection I/O)   |
 * | send     | sendMessageThreadPoolNums  | SendMessageExecutor                                   |
 * | pull     | pullMessageThreadPoolNums  | PullMessageExecutor (long polling)                    |
 * | admin    | adminBrokerThreadPoolNums  | AdminBrokerExecutor (and the NameServer's executor)   |
 * | grpc     | grpcThreadPoolNums         | the Proxy's gRPC executor                             |
 * | store    | storeThreadPoolNums        | CommitLog flush, delay-level schedule service         |
 * | commitlog| (always 1)                 | the CommitLog put lock: one writer thread owns the store |
 * | cpu      | cpuTaskThreadPoolNums      | (none: piscina pool for stateless CPU work)           |
 *
 * With processorsOnNetworkThreads, `send` and `pull` (and, in a `start` node, `grpc`) have no threads
 * of their own: their actors run on the `remoting` threads (sharedPoolsForRole), so a request is decoded,
 * processed and answered on one thread, and only the CommitLog writer is a hop away.
 */
import type { NodeConfig, Role } from '../config/schema.ts';

/** Pool name to thread count for a role; `cpu` is separate (piscina). */
export function poolsForRole(role: Role, config: NodeConfig): Record<string, number> {
  const pools: Record<string, number> = {};
  const runsNamesrv = role === 'start' || role === 'namesrv';
  const runsBroker = role === 'start' || role === 'broker';
  const runsProxy = role === 'start' || role === 'proxy';
  if (runsNamesrv || runsBroker || role === 'controller') pools.remoting = config.serverWorkerThreads;
  if (runsBroker) {
    if (!config.processorsOnNetworkThreads) {
      pools.send = config.sendMessageThreadPoolNums;
      pools.pull = config.pullMessageThreadPoolNums;
    }
    pools.store = config.storeThreadPoolNums;
    pools.commitlog = 1;
  }
  if (runsBroker || runsNamesrv || role === 'controller') pools.admin = config.adminBrokerThreadPoolNums;
  if (runsProxy && !(role === 'start' && config.processorsOnNetworkThreads)) pools.grpc = config.grpcThreadPoolNums;
  return pools;
}

/** Pools whose actors run on another pool's threads (see processorsOnNetworkThreads). */
export function sharedPoolsForRole(role: Role, config: NodeConfig): Record<string, string> {
  if (!config.processorsOnNetworkThreads) return {};
  const shared: Record<string, string> = {};
  if (role === 'start' || role === 'broker') {
    shared.send = 'remoting';
    shared.pull = 'remoting';
  }
  if (role === 'start') shared.grpc = 'remoting';
  return shared;
}
