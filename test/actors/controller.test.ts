import fs from 'node:fs';
import fsPromises from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  controllerRoutes,
  spawnController,
  type ControllerArgs,
  type ControllerMasterChangedMessage,
  type ControllerMessage,
  type ControllerRef,
  type ControllerStateReply,
} from '../../src/actors/controller.ts';
import type { AcceptorChannelMessage, RemotingChannel } from '../../src/actors/remoting-routes.ts';
import {
  formatBrokerNameList,
  formatSyncStateSet,
  parseBrokerReplicasInfo,
  parseElectMasterResponseBody,
  parseSyncStateSet,
} from '../../src/net/remoting/controller-protocol.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import type { ActorFileSystem, ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { CONTROLLER_METADATA_FILES } from '../../src/storage/controller-metadata.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';

const T0 = 1_700_000_000_000;
const CLUSTER = 'DefaultCluster';
const BROKER = 'broker-a';
const addr = (id: number): string => `10.0.0.${id}:10911`;

let nextOpaque = 1;

/** A controller with a recorder standing in for the acceptor and another for the master-change subscriber. */
class Harness {
  readonly system: ActorSystem;
  readonly controller: ControllerRef;
  readonly recorder: ActorRef<AcceptorRecorderMessage>;
  readonly subscriber: ActorRef<AcceptorRecorderMessage>;

  constructor(system: ActorSystem, controller: ControllerRef, recorder: ActorRef<AcceptorRecorderMessage>, subscriber: ActorRef<AcceptorRecorderMessage>) {
    this.system = system;
    this.controller = controller;
    this.recorder = recorder;
    this.subscriber = subscriber;
  }

  static async start(system: ActorSystem, args: Partial<ControllerArgs>, name = 'controller'): Promise<Harness> {
    const recorder = await system.spawn<AcceptorRecorderMessage, null>({ name: `${name}-acceptor`, behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const subscriber = await system.spawn<AcceptorRecorderMessage, null>({ name: `${name}-subscriber`, behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const onMasterChanged = [subscriber as unknown as ActorRef<ControllerMasterChangedMessage>];
    const controller = await spawnController(system, { onMasterChanged, ...args }, { pool: 'main', name });
    return new Harness(system, controller, recorder, subscriber);
  }

  channel(connectionId: number): RemotingChannel {
    return { acceptor: this.recorder as ActorRef<AcceptorChannelMessage>, connectionId, remoteAddress: `${addr(connectionId)}`, localAddress: '127.0.0.1:9878' };
  }

  recorded(): Promise<AcceptorChannelMessage[]> {
    return this.system.ask<AcceptorRecorderMessage, AcceptorChannelMessage[]>(this.recorder, { type: 'dump' });
  }

  async masterChanges(): Promise<ControllerMasterChangedMessage[]> {
    return (await this.system.ask<AcceptorRecorderMessage, unknown[]>(this.subscriber, { type: 'dump' })) as ControllerMasterChangedMessage[];
  }

  async call(code: number, extFields: Record<string, string>, connectionId: number, body?: Uint8Array): Promise<RemotingCommand> {
    const opaque = nextOpaque++;
    const request = createRequest({ code, opaque, extFields, ...(body === undefined ? {} : { body }) });
    expect(this.system.tell<ControllerMessage>(this.controller, { type: 'remotingRequest', request, channel: this.channel(connectionId) })).toBe(true);
    return pollUntil(`answer to ${code}/${opaque}`, async () => {
      for (const message of await this.recorded()) if (message.type === 'respond' && message.response.opaque === opaque) return message.response;
      return undefined;
    });
  }

  state(): Promise<ControllerStateReply> {
    return this.system.ask<ControllerMessage, ControllerStateReply>(this.controller, { type: 'state' });
  }

  heartbeat(id: number, extra: Record<string, string> = {}): Promise<RemotingCommand> {
    return this.call(
      RequestCode.BROKER_HEARTBEAT,
      { clusterName: CLUSTER, brokerName: BROKER, brokerAddr: addr(id), brokerId: String(id), heartbeatTimeoutMills: '10000', ...extra },
      id,
    );
  }

  /** GET_NEXT_BROKER_ID, APPLY_BROKER_ID, a heartbeat and REGISTER, as a Java broker starts. */
  async join(expectedId: number): Promise<RemotingCommand> {
    const next = await this.call(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }, expectedId);
    expect(next.extFields['nextBrokerId']).toBe(String(expectedId));
    const applied = await this.call(
      RequestCode.CONTROLLER_APPLY_BROKER_ID,
      { clusterName: CLUSTER, brokerName: BROKER, appliedBrokerId: String(expectedId), registerCheckCode: `${addr(expectedId)};${T0}` },
      expectedId,
    );
    expect(applied.code).toBe(ResponseCode.SUCCESS);
    expect((await this.heartbeat(expectedId)).code).toBe(ResponseCode.SUCCESS);
    return this.call(
      RequestCode.CONTROLLER_REGISTER_BROKER,
      { clusterName: CLUSTER, brokerName: BROKER, brokerId: String(expectedId), brokerAddress: addr(expectedId) },
      expectedId,
    );
  }
}

describe('Controller actor', () => {
  let system: ActorSystem | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-controller-'));
    dirs.push(dir);
    return dir;
  }

  it('registers three brokers, elects the first, re-elects when the master goes silent, and pushes the change', async () => {
    const clock = new ManualClock(T0);
    const dir = tempDir();
    system = await startTestSystem({}, { clock });
    const h = await Harness.start(system, { controllerStorePath: dir });

    const first = await h.join(1);
    expect(first.code).toBe(ResponseCode.SUCCESS);
    expect(first.extFields['masterBrokerId']).toBeUndefined();
    const elected = await h.call(RequestCode.CONTROLLER_ELECT_MASTER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: '1' }, 1);
    expect(elected).toMatchObject({ code: ResponseCode.SUCCESS, extFields: { masterBrokerId: '1', masterAddress: addr(1), masterEpoch: '1', syncStateSetEpoch: '1' } });
    expect(parseElectMasterResponseBody(elected.body).brokerMemberGroup?.brokerAddrs).toEqual(new Map([[1, addr(1)]]));
    for (const id of [2, 3]) {
      const registered = await h.join(id);
      expect(registered.extFields).toMatchObject({ masterBrokerId: '1', masterAddress: addr(1), masterEpoch: '1' });
    }
    const altered = await h.call(
      RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET,
      { brokerName: BROKER, masterBrokerId: '1', masterEpoch: '1' },
      1,
      formatSyncStateSet({ syncStateSet: [1, 2, 3], syncStateSetEpoch: 1 }),
    );
    expect(altered.extFields['newSyncStateSetEpoch']).toBe('2');
    const stale = await h.call(
      RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET,
      { brokerName: BROKER, masterBrokerId: '1', masterEpoch: '1' },
      1,
      formatSyncStateSet({ syncStateSet: [1, 2], syncStateSetEpoch: 1 }),
    );
    expect(stale.code).toBe(ResponseCode.CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH);

    // Brokers 2 and 3 keep heartbeating; the master (1) falls silent. Scans run every 5 s; the one at +10 s
    // still counts it alive (lastUpdate + 10 s >= now), the one at +15 s expires it.
    clock.advance(5_000);
    await h.heartbeat(2, { epoch: '1', maxOffset: '100' });
    await h.heartbeat(3, { epoch: '1', maxOffset: '200' });
    clock.advance(5_000);
    await h.heartbeat(2, { epoch: '1', maxOffset: '100' });
    await h.heartbeat(3, { epoch: '1', maxOffset: '200' });
    expect((await h.state()).metadata.brokerSets[0]?.masterBrokerId).toBe(1);
    clock.advance(5_000);
    const after = await pollUntil('re-election', async () => {
      const state = await h.state();
      return state.metadata.brokerSets[0]?.masterBrokerId === 3 ? state : undefined;
    });
    expect(after.metadata.brokerSets[0]).toMatchObject({ masterEpoch: 2, syncStateSet: [3], syncStateSetEpoch: 3 });
    expect(after.live.map((b) => b.brokerId).sort()).toEqual([2, 3]);

    // The first election was pushed to broker 1, the only one alive then; the second went to the live
    // brokers 2 and 3 over their connections, not to the expired 1.
    const allPushes = await pollUntil('pushes', async () => {
      const found = (await h.recorded()).filter((m): m is Extract<AcceptorChannelMessage, { type: 'push' }> => m.type === 'push');
      return found.length >= 3 ? found : undefined;
    });
    expect(allPushes.filter((p) => p.request.extFields['masterEpoch'] === '1').map((p) => p.connectionId)).toEqual([1]);
    const pushes = allPushes.filter((p) => p.request.extFields['masterEpoch'] === '2');
    expect(pushes.map((p) => p.connectionId).sort()).toEqual([2, 3]);
    for (const push of pushes) {
      expect(push.request).toMatchObject({ code: RequestCode.NOTIFY_BROKER_ROLE_CHANGED, extFields: { masterBrokerId: '3', masterAddress: addr(3), masterEpoch: '2', syncStateSetEpoch: '3' } });
      expect(parseSyncStateSet(push.request.body)).toEqual({ syncStateSet: [3], syncStateSetEpoch: 3 });
    }
    const changes = await h.masterChanges();
    expect(changes.map((c) => [c.masterBrokerId, c.masterEpoch])).toEqual([
      [1, 1],
      [3, 2],
    ]);
    expect(changes[1]).toEqual({ type: 'masterChanged', clusterName: CLUSTER, brokerName: BROKER, masterBrokerId: 3, masterAddress: addr(3), masterEpoch: 2 });

    const data = await h.call(RequestCode.CONTROLLER_GET_SYNC_STATE_DATA, {}, 2, formatBrokerNameList([BROKER]));
    const info = parseBrokerReplicasInfo(data.body).replicasInfoTable.get(BROKER);
    expect(info).toMatchObject({ masterBrokerId: 3, masterEpoch: 2, syncStateSetEpoch: 3 });
    expect(info?.notInSyncReplicas.map((r) => [r.brokerId, r.alive])).toEqual([
      [1, false],
      [2, true],
    ]);
    const replica = await h.call(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }, 2);
    expect(replica.extFields).toEqual({ masterBrokerId: '3', masterAddress: addr(3), masterEpoch: '2' });
    const meta = await h.call(RequestCode.CONTROLLER_GET_METADATA_INFO, {}, 2);
    expect(meta.extFields).toMatchObject({ isLeader: 'true', controllerLeaderAddress: '127.0.0.1:9878' });
  });

  it('keeps its metadata and epochs across a restart', async () => {
    const clock = new ManualClock(T0);
    const dir = tempDir();
    system = await startTestSystem({}, { clock });
    const h = await Harness.start(system, { controllerStorePath: dir });
    await h.join(1);
    await h.call(RequestCode.CONTROLLER_ELECT_MASTER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: '1' }, 1);
    await h.join(2);
    const before = await h.state();
    expect(fs.existsSync(path.join(dir, CONTROLLER_METADATA_FILES.metadata))).toBe(true);
    await system.stop(h.controller);

    const again = await Harness.start(system, { controllerStorePath: dir }, 'controller-2');
    const after = await again.state();
    expect(after.phase).toBe('ready');
    expect(after.metadata).toEqual(before.metadata);
    expect(after.metadata.brokerSets[0]).toMatchObject({ masterBrokerId: 1, masterEpoch: 1, nextAssignBrokerId: 3 });
    expect(after.live).toEqual([]);
    const next = await again.call(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }, 3);
    expect(next.extFields['nextBrokerId']).toBe('3');
  });

  it('does not acknowledge a change it could not persist, and undoes it', async () => {
    let failRenames = true;
    const faulty: ActorFileSystem = {
      ...fsPromises,
      rename: (async (from: string, to: string) => {
        if (failRenames) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        return fsPromises.rename(from, to);
      }) as typeof fsPromises.rename,
    };
    const dir = tempDir();
    system = await startTestSystem({}, { clock: new ManualClock(T0), fs: faulty });
    const h = await Harness.start(system, { controllerStorePath: dir });
    const apply = { clusterName: CLUSTER, brokerName: BROKER, appliedBrokerId: '1', registerCheckCode: `${addr(1)};1` };
    const refused = await h.call(RequestCode.CONTROLLER_APPLY_BROKER_ID, apply, 1);
    expect(refused.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(refused.remark).toContain('no space left on device');
    expect((await h.state()).metadata.brokerSets).toEqual([]);
    expect(fs.existsSync(path.join(dir, CONTROLLER_METADATA_FILES.metadata))).toBe(false);

    failRenames = false;
    expect((await h.call(RequestCode.CONTROLLER_APPLY_BROKER_ID, apply, 1)).code).toBe(ResponseCode.SUCCESS);
    expect((await h.state()).metadata.brokerSets.map((s) => s.brokerName)).toEqual([BROKER]);
  });

  it('starts empty, with the bad file set aside, when the metadata is corrupt', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, CONTROLLER_METADATA_FILES.metadata), '{"version":1,"brokerSets":[{"brokerName":');
    system = await startTestSystem({}, { clock: new ManualClock(T0) });
    const h = await Harness.start(system, { controllerStorePath: dir });
    const state = await h.state();
    expect(state).toMatchObject({ phase: 'ready', metadata: { brokerSets: [] } });
    expect(fs.existsSync(path.join(dir, CONTROLLER_METADATA_FILES.metadata + CONTROLLER_METADATA_FILES.corruptSuffix))).toBe(true);
  });

  it('answers bad headers and bodies with SYSTEM_ERROR, and routes exactly its codes', async () => {
    system = await startTestSystem({}, { clock: new ManualClock(T0) });
    const h = await Harness.start(system, {});
    expect((await h.call(RequestCode.CONTROLLER_GET_REPLICA_INFO, {}, 1)).code).toBe(ResponseCode.SYSTEM_ERROR);
    const badBody = await h.call(RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET, { brokerName: BROKER, masterBrokerId: '1', masterEpoch: '1' }, 1, new TextEncoder().encode('nope'));
    expect(badBody.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect((await h.call(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: 'x' }, 1)).code).toBe(ResponseCode.CONTROLLER_BROKER_METADATA_NOT_EXIST);
    expect((await h.call(RequestCode.CONTROLLER_GET_SYNC_STATE_DATA, {}, 1)).code).toBe(ResponseCode.SYSTEM_ERROR);
    const routes = controllerRoutes(h.controller);
    expect(Object.keys(routes.byCode).map(Number).sort((a, b) => a - b)).toEqual([904, 1001, 1002, 1003, 1004, 1005, 1006, 1010, 1011, 1012, 1013]);
    expect(routes.fallback).toBeUndefined();
    expect(routes.closeListeners).toEqual([h.controller]);
  });
});
