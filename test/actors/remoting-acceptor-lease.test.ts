/**
 * The broker acceptor's last lease check: a stored put's answer (`leaseGuarded`) leaves as SUCCESS while
 * the master lease holds and as SERVICE_NOT_AVAILABLE once it is closed or past its deadline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BoundAnswer, RemotingAcceptorArgs, RemotingAcceptorMessage } from '../../src/actors/remoting-acceptor.ts';
import type { RemotingRequestMessage, RemotingRoutes } from '../../src/actors/remoting-routes.ts';
import { createMasterLease, publishMasterLease } from '../../src/actors/master-lease.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { startTestSystem } from '../runtime/helpers.ts';
import { storedAnswererSource } from './fixtures/stored-answerer.ts';

let system: ActorSystem | undefined;
afterEach(async () => {
  await system?.shutdown();
  system = undefined;
});

describe('acceptor with a master lease', () => {
  it('writes a lease-guarded answer as SUCCESS only while the lease holds', async () => {
    system = await startTestSystem({});
    const answerer = await system.spawn<RemotingRequestMessage, null>({ name: 'stored-answerer', behavior: storedAnswererSource, args: null, pool: 'main' });
    const routes: RemotingRoutes = { byCode: { [RequestCode.SEND_MESSAGE_V2]: [answerer] } };
    const masterLease = createMasterLease();
    const acceptor = await system.spawn<RemotingAcceptorMessage, RemotingAcceptorArgs>({
      name: 'broker-acceptor-0',
      behavior: { module: new URL('../../src/actors/remoting-acceptor.ts', import.meta.url).href, export: 'remotingAcceptor' },
      args: { server: 'broker', host: '127.0.0.1', port: 0, frameMaxBytes: 1024 * 1024, connectionsMax: 4, routes, masterLease },
      pool: 'main',
    });
    const bound = await system.ask<RemotingAcceptorMessage, BoundAnswer>(acceptor, { type: 'port' });
    if (!('port' in bound)) throw new Error(bound.error);
    const client = await RemotingClient.connect(`127.0.0.1:${bound.port}`);
    try {
      const send = async (): Promise<number> => (await client.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, {}), 5_000)).code;
      const nowMs = Number(process.hrtime.bigint() / 1_000_000n);
      // A new cell is closed: a controller-mode broker starts fenced.
      expect(await send()).toBe(ResponseCode.SERVICE_NOT_AVAILABLE);
      publishMasterLease(masterLease, nowMs + 60_000);
      expect(await send()).toBe(ResponseCode.SUCCESS);
      // A deadline already past: the frozen-and-resumed case.
      publishMasterLease(masterLease, nowMs - 1);
      expect(await send()).toBe(ResponseCode.SERVICE_NOT_AVAILABLE);
      publishMasterLease(masterLease, 'closed');
      expect(await send()).toBe(ResponseCode.SERVICE_NOT_AVAILABLE);
    } finally {
      await client.close();
    }
  });
});
