/**
 * Controllers of one group over an in-memory etcd (fixtures/controller-fake-etcd.ts), under a manual
 * clock: only the leader serves, a follower names the leader, the leader stores before it answers, a
 * deposed leader's write is refused and not applied, a leader whose lease is not renewed in time stops
 * at once, and a new leader counts every replica alive for one heartbeat timeout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnController, type ControllerArgs, type ControllerMessage, type ControllerRef, type ControllerStateReply } from '../../src/actors/controller.ts';
import type { AcceptorChannelMessage, RemotingChannel } from '../../src/actors/remoting-routes.ts';
import { formatSyncStateSet } from '../../src/net/remoting/controller-protocol.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import type { ActorRef } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { pollUntil, startTestSystem } from '../runtime/helpers.ts';
import { acceptorRecorderSource, type AcceptorRecorderMessage } from './fixtures/acceptor-recorder.ts';
import { controllerOverFakeEtcdSource, fakeEtcdSource, type FakeEtcdDump, type FakeEtcdMessage } from './fixtures/controller-fake-etcd.ts';

const T0 = 1_700_000_000_000;
const CLUSTER = 'DefaultCluster';
const BROKER = 'broker-a';
const PEERS = 'n0-10.0.0.100:9878;n1-10.0.0.101:9878';
/** controllerEtcdLeaseTtlSeconds 3: a lease tick every 1000 ms; the leader trusts a renewal for 3000 - 600 ms. */
const TICK_MS = 1_000;
const GRACE_MS = 10_000;
const addr = (id: number): string => `10.0.0.${id}:10911`;

let nextOpaque = 1;

/** One controller of the group, with a recorder standing in for its acceptor. */
class Member {
  readonly system: ActorSystem;
  readonly ref: ControllerRef;
  readonly recorder: ActorRef<AcceptorRecorderMessage>;

  constructor(system: ActorSystem, ref: ControllerRef, recorder: ActorRef<AcceptorRecorderMessage>) {
    this.system = system;
    this.ref = ref;
    this.recorder = recorder;
  }

  static async start(system: ActorSystem, etcd: ActorRef<FakeEtcdMessage>, selfId: string): Promise<Member> {
    const recorder = await system.spawn<AcceptorRecorderMessage, null>({ name: `${selfId}-acceptor`, behavior: acceptorRecorderSource, args: null, pool: 'main' });
    const args = {
      controllerEtcdEndpoints: 'http://fake:2379',
      controllerEtcdLeaseTtlSeconds: 3,
      controllerDLegerPeers: PEERS,
      controllerDLegerSelfId: selfId,
      controllerHeartBeatTimeoutMs: GRACE_MS,
      scanNotActiveBrokerIntervalMs: 1_000,
      fakeEtcd: etcd,
    } as Partial<ControllerArgs>;
    const ref = await spawnController(system, args, { pool: 'main', name: `controller-${selfId}`, behavior: controllerOverFakeEtcdSource });
    return new Member(system, ref, recorder);
  }

  channel(connectionId: number): RemotingChannel {
    return { acceptor: this.recorder as ActorRef<AcceptorChannelMessage>, connectionId, remoteAddress: addr(connectionId), localAddress: '0.0.0.0:9878' };
  }

  send(code: number, extFields: Record<string, string>, connectionId: number, body?: Uint8Array): number {
    const opaque = nextOpaque++;
    const request = createRequest({ code, opaque, extFields, ...(body === undefined ? {} : { body }) });
    expect(this.system.tell<ControllerMessage>(this.ref, { type: 'remotingRequest', request, channel: this.channel(connectionId) })).toBe(true);
    return opaque;
  }

  async answered(opaque: number): Promise<RemotingCommand | undefined> {
    for (const message of await this.system.ask<AcceptorRecorderMessage, AcceptorChannelMessage[]>(this.recorder, { type: 'dump' })) {
      if (message.type === 'respond' && message.response.opaque === opaque) return message.response;
    }
    return undefined;
  }

  answer(opaque: number): Promise<RemotingCommand> {
    return pollUntil(`answer ${opaque}`, () => this.answered(opaque));
  }

  call(code: number, extFields: Record<string, string>, connectionId: number, body?: Uint8Array): Promise<RemotingCommand> {
    return this.answer(this.send(code, extFields, connectionId, body));
  }

  state(): Promise<ControllerStateReply> {
    return this.system.ask<ControllerMessage, ControllerStateReply>(this.ref, { type: 'state' });
  }

  heartbeat(id: number, extra: Record<string, string> = {}): Promise<RemotingCommand> {
    return this.call(RequestCode.BROKER_HEARTBEAT, { clusterName: CLUSTER, brokerName: BROKER, brokerAddr: addr(id), brokerId: String(id), heartbeatTimeoutMills: '10000', ...extra }, id);
  }

  apply(id: number): Promise<RemotingCommand> {
    return this.call(RequestCode.CONTROLLER_APPLY_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER, appliedBrokerId: String(id), registerCheckCode: `${addr(id)};${T0}` }, id);
  }

  async join(id: number): Promise<void> {
    expect((await this.apply(id)).code).toBe(ResponseCode.SUCCESS);
    expect((await this.heartbeat(id)).code).toBe(ResponseCode.SUCCESS);
    expect((await this.call(RequestCode.CONTROLLER_REGISTER_BROKER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: String(id), brokerAddress: addr(id) }, id)).code).toBe(ResponseCode.SUCCESS);
  }

  role(role: ControllerStateReply['role']): Promise<ControllerStateReply> {
    return pollUntil(`${this.ref.name} to be ${role}`, async () => {
      const state = await this.state();
      return state.role === role ? state : undefined;
    });
  }
}

describe('Controllers agreeing through etcd', () => {
  let system: ActorSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  async function group(): Promise<{ clock: ManualClock; etcd: ActorRef<FakeEtcdMessage>; n0: Member; n1: Member }> {
    const clock = new ManualClock(T0);
    system = await startTestSystem({}, { clock });
    const etcd = await system.spawn<FakeEtcdMessage, null>({ name: 'fake-etcd', behavior: fakeEtcdSource, args: null, pool: 'main' });
    // n0 campaigns first and wins; n1 then finds the leader key taken.
    const n0 = await Member.start(system, etcd, 'n0');
    await n0.role('leader');
    const n1 = await Member.start(system, etcd, 'n1');
    await pollUntil('n1 to see n0 lead', async () => ((await n1.state()).leaderId === 'n0' ? true : undefined));
    return { clock, etcd, n0, n1 };
  }

  function dump(etcd: ActorRef<FakeEtcdMessage>): Promise<FakeEtcdDump> {
    return system!.ask<FakeEtcdMessage, FakeEtcdDump>(etcd, { type: 'dump' });
  }

  it('serves on the leader only; a follower answers CONTROLLER_NOT_LEADER and names the leader', async () => {
    const { etcd, n0, n1 } = await group();
    expect(await n1.state()).toMatchObject({ role: 'follower', leaderId: 'n0' });

    const refused = await n1.apply(1);
    expect(refused.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect(refused.remark).toBe('The controller is not in leader state');
    expect((await n1.call(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }, 1)).code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect((await n1.heartbeat(1)).code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    const followerMeta = await n1.call(RequestCode.CONTROLLER_GET_METADATA_INFO, {}, 1);
    expect(followerMeta.code).toBe(ResponseCode.SUCCESS);
    expect(followerMeta.extFields).toEqual({
      group: 'group1',
      controllerLeaderId: 'n0',
      controllerLeaderAddress: '10.0.0.100:9878',
      isLeader: 'false',
      peers: 'n0:10.0.0.100:9878;n1:10.0.0.101:9878;',
    });
    expect((await n1.call(RequestCode.GET_CONTROLLER_CONFIG, {}, 1)).code).toBe(ResponseCode.SUCCESS);

    const leaderMeta = await n0.call(RequestCode.CONTROLLER_GET_METADATA_INFO, {}, 1);
    expect(leaderMeta.extFields).toMatchObject({ controllerLeaderId: 'n0', controllerLeaderAddress: '10.0.0.100:9878', isLeader: 'true' });
    await n0.join(1);
    const stored = await dump(etcd);
    expect(stored.document?.brokerSets.map((set) => set.brokerName)).toEqual([BROKER]);
    // Nothing reached the follower's memory: it never applied anything.
    expect((await n1.state()).metadata.brokerSets).toEqual([]);
  });

  it('stores a change in etcd before it answers, and holds later requests until then', async () => {
    const { etcd, n0 } = await group();
    system!.tell<FakeEtcdMessage>(etcd, { type: 'holdSaves', hold: true });
    const applyOpaque = n0.send(RequestCode.CONTROLLER_APPLY_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER, appliedBrokerId: '1', registerCheckCode: `${addr(1)};${T0}` }, 1);
    await pollUntil('the save to reach etcd', async () => ((await dump(etcd)).pendingSaves === 1 ? true : undefined));
    const nextOpaque = n0.send(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }, 2);
    expect(await n0.answered(applyOpaque)).toBeUndefined();
    expect(await n0.answered(nextOpaque)).toBeUndefined();
    expect((await dump(etcd)).document).toBeUndefined();

    system!.tell<FakeEtcdMessage>(etcd, { type: 'holdSaves', hold: false });
    expect((await n0.answer(applyOpaque)).code).toBe(ResponseCode.SUCCESS);
    expect((await n0.answer(nextOpaque)).extFields['nextBrokerId']).toBe('2');
    expect((await dump(etcd)).document?.brokerSets[0]?.replicas.map((r) => r.brokerId)).toEqual([1]);
  });

  it('refuses a deposed leader’s write: answered CONTROLLER_NOT_LEADER, not applied, not stored', async () => {
    const { clock, etcd, n0, n1 } = await group();
    await n0.join(1);
    const before = await dump(etcd);
    // The lease ends at etcd while n0 has not noticed yet (its own deadline is still ahead).
    system!.tell<FakeEtcdMessage>(etcd, { type: 'expireLeader' });
    const refused = await n0.apply(2);
    expect(refused.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect(await n0.state()).toMatchObject({ role: 'follower' });
    expect((await n0.call(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }, 3)).code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    const after = await dump(etcd);
    expect(after.saves).toBe(before.saves);
    expect(after.document).toEqual(before.document);

    // The next lease tick elects one of them again, from what etcd holds: broker 2 was never applied.
    clock.advance(TICK_MS);
    const leader = await pollUntil('a new leader', async () => {
      const [s0, s1] = await Promise.all([n0.state(), n1.state()]);
      if (s0.role === 'leader' && s1.role === 'follower') return n0;
      if (s1.role === 'leader' && s0.role === 'follower') return n1;
      return undefined;
    });
    const next = await leader.call(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }, 3);
    expect(next.extFields['nextBrokerId']).toBe('2');
  });

  it('stops serving at once when its lease is not renewed in time', async () => {
    const { clock, etcd, n0 } = await group();
    await n0.join(1);
    const saves = (await dump(etcd)).saves;
    system!.tell<FakeEtcdMessage>(etcd, { type: 'unreachable', value: true });
    // Renewals fail from now on; the last good one was sent at T0 or later, so the lease is trusted
    // until at most T0 + 3000 - 600. Step past that, one tick at a time.
    for (let step = 0; step < 3; step++) {
      clock.advance(TICK_MS);
      await n0.state();
    }
    // Deposed by its own deadline, before any write could tell it: even a read is refused.
    expect((await n0.state()).role).toBe('follower');
    const read = await n0.call(RequestCode.CONTROLLER_GET_NEXT_BROKER_ID, { clusterName: CLUSTER, brokerName: BROKER }, 2);
    expect(read.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect((await n0.apply(2)).code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect((await dump(etcd)).saves).toBe(saves);
  });

  it('a new leader counts every replica alive for one heartbeat timeout, then re-elects', async () => {
    const { clock, etcd, n0, n1 } = await group();
    await n0.join(1);
    await n0.join(2);
    const elected = await n0.call(RequestCode.CONTROLLER_ELECT_MASTER, { clusterName: CLUSTER, brokerName: BROKER, brokerId: '1' }, 1);
    expect(elected.extFields['masterBrokerId']).toBe('1');
    const altered = await n0.call(
      RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET,
      { brokerName: BROKER, masterBrokerId: '1', masterEpoch: '1' },
      1,
      formatSyncStateSet({ syncStateSet: [1, 2], syncStateSetEpoch: 1 }),
    );
    expect(altered.code).toBe(ResponseCode.SUCCESS);

    // n0 stops (its lease is revoked on the way out) and n1 takes over on its next tick.
    await system!.stop(n0.ref);
    clock.advance(TICK_MS);
    const taken = await n1.role('leader');
    expect(taken.metadata.brokerSets[0]).toMatchObject({ masterBrokerId: 1, syncStateSet: [1, 2] });
    expect(taken.live.map((b) => b.brokerId).sort()).toEqual([1, 2]);
    expect((await dump(etcd)).leaderId).toBe('n1');

    // Only broker 2 heartbeats to the new leader; broker 1 (the master) is silent but assumed alive.
    for (let elapsed = TICK_MS; elapsed < GRACE_MS; elapsed += TICK_MS) {
      await n1.heartbeat(2, { epoch: '1', maxOffset: '100' });
      clock.advance(TICK_MS);
      expect((await n1.state()).metadata.brokerSets[0]?.masterBrokerId, `at +${elapsed} ms`).toBe(1);
    }
    await n1.heartbeat(2, { epoch: '1', maxOffset: '100' });
    clock.advance(2 * TICK_MS);
    const after = await pollUntil('re-election of broker 2', async () => {
      const state = await n1.state();
      return state.metadata.brokerSets[0]?.masterBrokerId === 2 ? state : undefined;
    });
    expect(after.metadata.brokerSets[0]).toMatchObject({ masterEpoch: 2 });
    expect((await dump(etcd)).document?.brokerSets[0]).toMatchObject({ masterBrokerId: 2, masterEpoch: 2 });
    const info = await n1.call(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: BROKER }, 2);
    expect(info.extFields).toMatchObject({ masterBrokerId: '2', masterAddress: addr(2), masterEpoch: '2' });
  });
});
