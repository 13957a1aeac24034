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
    pools.send = config.sendMessageThreadPoolNums;
    pools.pull = config.pullMessageThreadPoolNums;
    pools.store = config.storeThreadPoolNums;
    pools.commitlog = 1;
  }
  if (runsBroker || runsNamesrv || role === 'controller') pools.admin = config.adminBrokerThreadPoolNums;
  if (runsProxy) pools.grpc = config.grpcThreadPoolNums;
  return pools;
}
