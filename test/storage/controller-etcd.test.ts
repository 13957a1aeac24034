/**
 * The etcd controller store against a real etcd (one member on loopback): one leader at a time, the new
 * leader reads what the old one wrote, and a leader whose lease ended cannot write any more.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdControllerStore, CONTROLLER_ETCD_KEYS } from '../../src/storage/controller-etcd.ts';
import { ControllerStoreError, ControllerStoreErrorCode, type CampaignOutcome } from '../../src/storage/controller-etcd-store.ts';
import { emptyControllerMetadata, type ControllerMetadataDocument } from '../../src/storage/controller-metadata.ts';
import { createSystemClock } from '../../src/runtime/clock.ts';
import { startEtcdCluster, stopAllEtcd, type EtcdCluster } from '../node/fixtures/etcd.ts';

const BOUNDS = { brokerSetsMax: 16, replicasPerSetMax: 8 };

let etcd: EtcdCluster;
let raw: Etcd3;
const stores: EtcdControllerStore[] = [];
let prefixCounter = 0;

beforeAll(async () => {
  etcd = await startEtcdCluster({ name: 'controller-etcd-store', size: 1 });
  raw = new Etcd3({ hosts: etcd.endpoints.split(',') });
}, 40_000);

afterAll(async () => {
  await Promise.allSettled(stores.map((store) => store.close()));
  raw?.close();
  await etcd?.stop();
  await stopAllEtcd();
});

/** Two stores (controllers n0, n1) of one fresh group. */
function group(): { prefix: string; a: EtcdControllerStore; b: EtcdControllerStore } {
  const prefix = `/test/group-${++prefixCounter}`;
  const open = (id: string, port: number): EtcdControllerStore => {
    const store = new EtcdControllerStore({
      endpoints: etcd.endpoints.split(','),
      keyPrefix: prefix,
      leaseTtlSeconds: 2,
      self: { id, address: `127.0.0.1:${port}` },
      bounds: BOUNDS,
      requestTimeoutMs: 2_000,
      clock: createSystemClock(),
    });
    stores.push(store);
    return store;
  };
  return { prefix, a: open('n0', 9001), b: open('n1', 9002) };
}

function documentWith(brokerName: string): ControllerMetadataDocument {
  return {
    version: 1,
    brokerSets: [
      {
        clusterName: 'DefaultCluster',
        brokerName,
        nextAssignBrokerId: 2,
        masterBrokerId: 1,
        masterEpoch: 1,
        syncStateSet: [1],
        syncStateSetEpoch: 1,
        replicas: [{ brokerId: 1, brokerAddress: '10.0.0.1:10911', registerCheckCode: '10.0.0.1:10911;1' }],
      },
    ],
  };
}

function elected(outcome: CampaignOutcome): Extract<CampaignOutcome, { kind: 'elected' }> {
  expect(outcome.kind).toBe('elected');
  return outcome as Extract<CampaignOutcome, { kind: 'elected' }>;
}

describe('EtcdControllerStore', () => {
  it('elects one leader, names it to the other, and hands the document to the next leader', async () => {
    const { a, b } = group();
    const first = elected(await a.campaign());
    expect(first.load).toEqual({ source: 'none' });
    expect(first.lease.renewedTtlMs).toBeGreaterThanOrEqual(2_000);
    const seen = await b.campaign();
    expect(seen).toMatchObject({ kind: 'follower', leader: { id: 'n0', address: '127.0.0.1:9001' } });

    await a.save(first.term, documentWith('broker-a'));
    const renewed = await a.keepAlive();
    expect(renewed).toEqual({ leaseId: first.lease.leaseId, renewedTtlMs: expect.any(Number) as number });
    expect(renewed!.renewedTtlMs).toBeGreaterThan(0);
    // The same candidate asking again is still the leader of the same term.
    expect(elected(await a.campaign()).term).toBe(first.term);

    await a.resign();
    const second = elected(await b.campaign());
    expect(second.term).not.toBe(first.term);
    expect(second.load).toEqual({ source: 'etcd', value: documentWith('broker-a') });
    expect(await a.campaign()).toMatchObject({ kind: 'follower', leader: { id: 'n1' } });
  });

  it('refuses a write from a leader whose lease was revoked, and stores nothing', async () => {
    const { prefix, a, b } = group();
    const first = elected(await a.campaign());
    await a.save(first.term, documentWith('before'));
    // Someone else ends the lease (as etcd does when it expires while we are cut off).
    await raw.leaseClient.leaseRevoke({ ID: first.lease.leaseId });
    const refused = await a.save(first.term, documentWith('after')).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ControllerStoreError);
    expect((refused as ControllerStoreError).code).toBe(ControllerStoreErrorCode.NOT_LEADER);
    expect(JSON.parse((await raw.get(`${prefix}/${CONTROLLER_ETCD_KEYS.metadata}`).string())!)).toEqual(documentWith('before'));
    // The old leader learns its lease ended; the other controller takes over with the last good document.
    expect(await a.keepAlive()).toEqual({ leaseId: first.lease.leaseId, renewedTtlMs: 0 });
    const second = elected(await b.campaign());
    expect(second.load).toEqual({ source: 'etcd', value: documentWith('before') });
    // A write under the old term is still refused once another term leads.
    await expect(a.save(first.term, documentWith('late'))).rejects.toMatchObject({ code: ControllerStoreErrorCode.NOT_LEADER });
    await b.save(second.term, documentWith('new'));
    expect(JSON.parse((await raw.get(`${prefix}/${CONTROLLER_ETCD_KEYS.metadata}`).string())!)).toEqual(documentWith('new'));
  });

  it('lets the leader key expire with its lease when nobody renews it', async () => {
    const { a, b } = group();
    elected(await a.campaign());
    // a stops renewing (as if killed); within the TTL b still sees it lead, after it b takes over.
    expect((await b.campaign()).kind).toBe('follower');
    const deadline = Date.now() + 10_000;
    let outcome = await b.campaign();
    while (outcome.kind === 'follower' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await b.keepAlive();
      outcome = await b.campaign();
    }
    expect(outcome.kind).toBe('elected');
  });

  it('reports a document that is not valid as corrupt to the next leader', async () => {
    const { prefix, a } = group();
    await raw.put(`${prefix}/${CONTROLLER_ETCD_KEYS.metadata}`).value('{"version": 1, "brokerSets": "nope"}');
    const outcome = elected(await a.campaign());
    expect(outcome.load.source).toBe('corrupt');
    await a.save(outcome.term, emptyControllerMetadata());
  });
});
