/**
 * A master and its slave for the HA benchmark, each a child broker process of one broker set
 * (brokerName), registered with the bench's NameServer: the master with the given brokerRole
 * (ASYNC_MASTER or SYNC_MASTER) and an ephemeral haListenPort, the slave with brokerRole SLAVE,
 * brokerId 1 and haMasterAddress pointing at the master's bound HA port, as broker-a.properties and
 * broker-a-s.properties of RocketMQ's 2m-2s-sync example pair them. Each has its own store directory.
 */
import path from 'node:path';
import { RemotingClient } from '../src/net/remoting/remoting-client.ts';
import { type HaNode, startHaNode, stopHaNode } from './ha-node.ts';
import { commitLogMaxOffset, createTopic } from './ha-probe.ts';

/** The broker cluster every bench broker joins. */
export const BENCH_CLUSTER = 'HaBenchCluster';

/** A running master/slave pair with one admin connection to each. */
export type BrokerPair = {
  readonly master: HaNode;
  readonly slave: HaNode;
  /** Admin connection to the master (topic creation, runtime info), apart from the load's connections. */
  readonly masterAdmin: RemotingClient;
  /** Admin connection to the slave. */
  readonly slaveAdmin: RemotingClient;
};

/** Settings every bench broker gets: loopback address, ephemeral ports, asynchronous flushing, then `extra` (HA_BENCH_BROKER_OVERRIDES). */
export function brokerBase(namesrvAddr: string, brokerName: string, extra: Readonly<Record<string, string>>): Record<string, string> {
  return { namesrvAddr, brokerIP1: '127.0.0.1', brokerClusterName: BENCH_CLUSTER, brokerName, haListenPort: '0', flushDiskType: 'ASYNC_FLUSH', ...extra };
}

/** Starts the master, then its slave (both with `extra` settings), and creates `topic` on the master. */
export async function startPair(
  dir: string,
  namesrvAddr: string,
  brokerName: string,
  masterRole: 'ASYNC_MASTER' | 'SYNC_MASTER',
  topic: string,
  queues: number,
  extra: Readonly<Record<string, string>>,
): Promise<BrokerPair> {
  const master = await startHaNode('broker', `${brokerName} master`, path.join(dir, 'master'), { ...brokerBase(namesrvAddr, brokerName, extra), brokerRole: masterRole, brokerId: '0' });
  const slave = await startHaNode('broker', `${brokerName} slave`, path.join(dir, 'slave'), {
    ...brokerBase(namesrvAddr, brokerName, extra),
    brokerRole: 'SLAVE',
    brokerId: '1',
    haMasterAddress: `127.0.0.1:${master.haPort}`,
  });
  const masterAdmin = await RemotingClient.connect(`127.0.0.1:${master.brokerPort}`);
  const slaveAdmin = await RemotingClient.connect(`127.0.0.1:${slave.brokerPort}`);
  await createTopic(masterAdmin, topic, queues);
  return { master, slave, masterAdmin, slaveAdmin };
}

/** Closes the admin connections and stops both brokers, the slave first. */
export async function stopPair(pair: BrokerPair): Promise<void> {
  await Promise.allSettled([pair.masterAdmin.close(), pair.slaveAdmin.close()]);
  await stopHaNode(pair.slave);
  await stopHaNode(pair.master);
}

/** Both CommitLogs' max offsets, asked at the same moment. */
export async function offsetsOf(pair: BrokerPair): Promise<{ master: number; slave: number }> {
  const [master, slave] = await Promise.all([commitLogMaxOffset(pair.masterAdmin), commitLogMaxOffset(pair.slaveAdmin)]);
  return { master, slave };
}
