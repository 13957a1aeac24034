/**
 * The controller as a node serves it over sockets: embedded in a `start` node's NameServer
 * (enableControllerInNamesrv, on controllerListenPort) and keeping its metadata across a restart.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { startTestNode, type TestNode } from './fixtures/test-node.ts';

const CLUSTER = 'DefaultCluster';
const BROKER = 'broker-a';

describe('controller inside a NameServer', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function nodeWithController(storeDir: string): Promise<{ node: TestNode; client: RemotingClient }> {
    const node = await startTestNode('controller-node', 'warn', {
      enableControllerInNamesrv: 'true',
      controllerListenPort: '0',
      controllerStorePath: storeDir,
    });
    expect(node.node.ports.controller).toBeGreaterThan(0);
    const client = await RemotingClient.connect(`127.0.0.1:${node.node.ports.controller}`);
    return { node, client };
  }

  async function register(client: RemotingClient, brokerId: number): Promise<number> {
    const address = `127.0.0.1:${20_000 + brokerId}`;
    const applied = await client.invoke(
      requestOf(RequestCode.CONTROLLER_APPLY_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER, appliedBrokerId: String(brokerId), registerCheckCode: `${address};1` }),
      3_000,
    );
    expect(applied.code).toBe(ResponseCode.SUCCESS);
    const registered = await client.invoke(
      requestOf(RequestCode.CONTROLLER_REGISTER_BROKER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: String(brokerId), brokerAddress: address }),
      3_000,
    );
    expect(registered.code).toBe(ResponseCode.SUCCESS);
    const heartbeat = await client.invoke(
      requestOf(RequestCode.BROKER_HEARTBEAT, { clusterName: CLUSTER, brokerName: BROKER, brokerAddr: address, brokerId: String(brokerId), epoch: '0', maxOffset: '0' }),
      3_000,
    );
    expect(heartbeat.code).toBe(ResponseCode.SUCCESS);
    return brokerId;
  }

  it('assigns ids, elects the broker that asks first and keeps its metadata across a restart', async () => {
    const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'controller-meta-'));
    cleanups.push(() => fs.rmSync(storeDir, { recursive: true, force: true }));
    const first = await nodeWithController(storeDir);
    const next = await first.client.invoke(requestOf(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }), 3_000);
    expect(next.code).toBe(ResponseCode.SUCCESS);
    expect(next.extFields?.['nextBrokerId']).toBe('1');
    await register(first.client, 1);
    await register(first.client, 2);
    const elected = await first.client.invoke(requestOf(RequestCode.CONTROLLER_ELECT_MASTER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: '1' }), 3_000);
    expect(elected.code).toBe(ResponseCode.SUCCESS);
    const info = await first.client.invoke(requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }), 3_000);
    expect(info.code).toBe(ResponseCode.SUCCESS);
    const masterId = info.extFields?.['masterBrokerId'];
    const masterEpoch = Number(info.extFields?.['masterEpoch']);
    expect(masterId).toBe('1');
    expect(masterEpoch).toBeGreaterThanOrEqual(1);
    await first.client.close();
    // The controller sees the brokers' connection close and takes the master away (no replica is alive);
    // wait for that decision so the restart below starts from it rather than racing it.
    const watcher = await RemotingClient.connect(`127.0.0.1:${first.node.node.ports.controller}`);
    await expect
      .poll(async () => (await watcher.invoke(requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }), 3_000)).extFields?.['masterBrokerId'], { timeout: 10_000 })
      .not.toBe('1');
    await watcher.close();
    await first.node.stop();

    const second = await nodeWithController(storeDir);
    cleanups.push(() => second.node.stop());
    cleanups.push(() => second.client.close());
    // The decision to drop the master was persisted: the epoch after the restart never goes back.
    const again = await second.client.invoke(requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }), 3_000);
    expect(again.code).toBe(ResponseCode.SUCCESS);
    const epochAfterRestart = Number(again.extFields?.['masterEpoch']);
    expect(epochAfterRestart).toBeGreaterThanOrEqual(masterEpoch);
    // Broker 1, in the persisted SyncStateSet, comes back and wins a clean election with a higher epoch.
    await register(second.client, 1);
    const reelected = await second.client.invoke(requestOf(RequestCode.CONTROLLER_ELECT_MASTER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: '1' }), 3_000);
    expect(reelected.code).toBe(ResponseCode.SUCCESS);
    const after = await second.client.invoke(requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }), 3_000);
    expect(after.extFields?.['masterBrokerId']).toBe('1');
    expect(Number(after.extFields?.['masterEpoch'])).toBeGreaterThan(masterEpoch);
    const meta = await second.client.invoke(requestOf(RequestCode.CONTROLLER_GET_METADATA_INFO), 3_000);
    expect(meta.code).toBe(ResponseCode.SUCCESS);
  });
});
