/**
 * How a broker finds the leading controller among several: a follower's CONTROLLER_NOT_LEADER sends it
 * to the controllerLeaderAddress that CONTROLLER_GET_METADATA_INFO names, and an address that refuses
 * connections is skipped at once. Fake controllers on loopback sockets stand in for the real ones.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplicasRemoting } from '../../src/actors/replicas-remoting.ts';
import { RemotingConnection } from '../../src/net/remoting/connection.ts';
import { GetMetaDataResponseHeader } from '../../src/net/remoting/controller-protocol.ts';
import { requestOf } from '../../src/net/remoting/remoting-client.ts';
import { createResponse, RequestCode, ResponseCode, type RemotingCommand } from '../../src/net/remoting/remoting-command.ts';
import { createSystemClock } from '../../src/runtime/clock.ts';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fake controller: records the codes it got and answers with `answer`. */
async function fakeController(answer: (request: RemotingCommand) => RemotingCommand): Promise<{ address: string; codes: number[] }> {
  const codes: number[] = [];
  const connections: RemotingConnection[] = [];
  const server = net.createServer((socket) => {
    connections.push(
      new RemotingConnection(socket, {
        onRequest: (cmd, conn) => {
          codes.push(cmd.code);
          conn.send(answer(cmd));
        },
        onResponse: () => {},
        log: () => {},
      }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const conn of connections) conn.close();
    server.close();
    await once(server, 'close');
  });
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, codes };
}

/** A follower that names `leaderOf()` (or nobody) as the leader. */
function follower(leaderOf: () => string | undefined): (request: RemotingCommand) => RemotingCommand {
  return (request) => {
    const leader = leaderOf();
    if (request.code !== RequestCode.CONTROLLER_GET_METADATA_INFO) return createResponse(request, ResponseCode.CONTROLLER_NOT_LEADER, 'The controller is not in leader state');
    const extFields = GetMetaDataResponseHeader.format({ group: 'g', isLeader: false, ...(leader === undefined ? {} : { controllerLeaderId: 'n1', controllerLeaderAddress: leader }) });
    return createResponse(request, ResponseCode.SUCCESS, undefined, { extFields });
  };
}

const leaderAnswer = (request: RemotingCommand): RemotingCommand => createResponse(request, ResponseCode.SUCCESS, 'from the leader');

/** A port nobody listens on: bound, then closed. */
async function deadAddress(): Promise<string> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, 'close');
  return `127.0.0.1:${port}`;
}

function remotingOver(controllerAddrs: readonly string[]): ReplicasRemoting {
  const remoting = new ReplicasRemoting({ controllerAddrs, clock: createSystemClock(), connectTimeoutMs: 1_000, log: () => {}, onPush: () => {} });
  cleanups.push(() => remoting.close());
  return remoting;
}

describe('ReplicasRemoting with several controllers', () => {
  it('follows a follower to the leader it names and gets the leader’s answer in the same call', async () => {
    const leader = await fakeController(leaderAnswer);
    const first = await fakeController(follower(() => leader.address));
    const remoting = remotingOver([first.address, leader.address]);
    const answer = await remoting.invokeController(requestOf(RequestCode.CONTROLLER_GET_REPLICA_INFO, { brokerName: 'b' }), 2_000);
    expect(answer.code).toBe(ResponseCode.SUCCESS);
    expect(answer.remark).toBe('from the leader');
    expect(first.codes).toEqual([RequestCode.CONTROLLER_GET_REPLICA_INFO, RequestCode.CONTROLLER_GET_METADATA_INFO]);
    expect(leader.codes).toEqual([RequestCode.CONTROLLER_GET_REPLICA_INFO]);
    expect(remoting.controllerAddr).toBe(leader.address);
    // Later calls go straight to the leader.
    await remoting.invokeController(requestOf(RequestCode.BROKER_HEARTBEAT), 2_000);
    expect(first.codes).toHaveLength(2);
    expect(leader.codes).toEqual([RequestCode.CONTROLLER_GET_REPLICA_INFO, RequestCode.BROKER_HEARTBEAT]);
  });

  it('skips an address that refuses connections within the same call', async () => {
    const dead = await deadAddress();
    const leader = await fakeController(leaderAnswer);
    const remoting = remotingOver([dead, leader.address]);
    const answer = await remoting.invokeController(requestOf(RequestCode.BROKER_HEARTBEAT), 2_000);
    expect(answer.remark).toBe('from the leader');
    expect(remoting.controllerAddr).toBe(leader.address);
  });

  it('answers NOT_LEADER while no leader is named, and tries the next address on the next call', async () => {
    const lost = await fakeController(follower(() => undefined));
    const leader = await fakeController(leaderAnswer);
    const remoting = remotingOver([lost.address, leader.address]);
    const refused = await remoting.invokeController(requestOf(RequestCode.BROKER_HEARTBEAT), 2_000);
    expect(refused.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect(leader.codes).toEqual([]);
    const answered = await remoting.invokeController(requestOf(RequestCode.BROKER_HEARTBEAT), 2_000);
    expect(answered.remark).toBe('from the leader');
  });

  it('goes back to the list when the named leader disappears', async () => {
    const leader = await fakeController(leaderAnswer);
    let named: string | undefined = leader.address;
    const first = await fakeController(follower(() => named));
    const remoting = remotingOver([first.address]);
    expect((await remoting.invokeController(requestOf(RequestCode.BROKER_HEARTBEAT), 2_000)).remark).toBe('from the leader');
    // The leader goes away (its cleanup was registered first) and the follower names nobody yet.
    await cleanups.splice(0, 1)[0]!();
    named = undefined;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = await remoting.invokeController(requestOf(RequestCode.BROKER_HEARTBEAT), 2_000);
    expect(after.code).toBe(ResponseCode.CONTROLLER_NOT_LEADER);
    expect(first.codes.slice(-2)).toEqual([RequestCode.BROKER_HEARTBEAT, RequestCode.CONTROLLER_GET_METADATA_INFO]);
    expect(remoting.controllerAddr).toBe(first.address);
  });
});
