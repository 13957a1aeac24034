/**
 * A Remoting acceptor: one per network worker thread and server role, all listening on the same port with
 * SO_REUSEPORT so the kernel spreads connections across threads (RocketMQ's Netty boss/worker groups).
 * Each decodes frames on its own thread; the main event loop does no per-connection work.
 *
 * Until the request families are served (NameServer and Broker issues), every request is answered the way
 * RocketMQ answers a code it does not serve: REQUEST_CODE_NOT_SUPPORTED with the same opaque.
 */
import net from 'node:net';
import type { Behavior, DeferredReply } from '../runtime/actor.ts';
import { assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { RemotingConnection } from '../net/remoting/connection.ts';
import { createNotSupportedResponse, isOneway, type RemotingCommand } from '../net/remoting/remoting-command.ts';

/** Start arguments: which server this acceptor belongs to and where it listens. */
export type RemotingAcceptorArgs = {
  readonly server: 'namesrv' | 'broker' | 'controller';
  readonly host: string;
  readonly port: number;
  readonly frameMaxBytes: number;
  readonly connectionsMax: number;
};

/** Messages: asks for the bound port, the request to stop accepting, and the listen outcome. */
export type RemotingAcceptorMessage =
  | { readonly type: 'port' }
  | { readonly type: 'stopAccepting' }
  | { readonly type: 'bound'; readonly port: number | undefined; readonly error: string | undefined };

/** What an acceptor answers to 'port': the bound port or why it could not bind. */
export type BoundAnswer = { readonly port: number } | { readonly error: string };

type State = {
  readonly server: net.Server;
  readonly connections: Set<RemotingConnection>;
  bound: BoundAnswer | undefined;
  readonly waiting: DeferredReply[];
};

/** The acceptor behavior. */
export const remotingAcceptor: Behavior<State, RemotingAcceptorMessage, RemotingAcceptorArgs> = {
  init(args, ctx) {
    const connections = new Set<RemotingConnection>();
    const log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>): void =>
      ctx.log[level](fields, message);
    const answer = (request: RemotingCommand, connection: RemotingConnection): void => {
      if (isOneway(request)) return;
      connection.send(createNotSupportedResponse(request));
    };
    const server = net.createServer({ noDelay: true }, (socket) => {
      if (connections.size >= args.connectionsMax) {
        ctx.log.warn({ remote: socket.remoteAddress, connectionsMax: args.connectionsMax }, 'connection refused: limit reached');
        socket.destroy();
        return;
      }
      const connection = new RemotingConnection(socket, {
        onRequest: answer,
        onClose: () => connections.delete(connection),
        log,
        frameMaxBytes: args.frameMaxBytes,
      });
      connections.add(connection);
    });
    const listening = new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: args.host, port: args.port, reusePort: true }, () => {
        server.off('error', reject);
        server.on('error', (error) => ctx.log.error({ err: describeError(error) }, 'remoting server error'));
        resolve((server.address() as net.AddressInfo).port);
      });
    });
    ctx.pipeToSelf(listening, (result) =>
      result.ok
        ? { type: 'bound', port: result.value, error: undefined }
        : { type: 'bound', port: undefined, error: `${args.server} cannot listen on ${args.host}:${args.port}: ${String(result.error)}` },
    );
    return { server, connections, bound: undefined, waiting: [] };
  },

  receive(state, message, ctx) {
    switch (message.type) {
      case 'bound':
        state.bound = message.port !== undefined ? { port: message.port } : { error: message.error ?? 'unknown listen error' };
        for (const reply of state.waiting.splice(0)) reply.resolve(state.bound);
        return state;
      case 'port':
        if (state.bound !== undefined) ctx.reply(state.bound);
        else state.waiting.push(ctx.deferReply()!);
        return state;
      case 'stopAccepting': {
        const reply = ctx.deferReply();
        state.server.close(() => reply?.resolve(true));
        // Connections finish writing what they owe, then close.
        for (const connection of state.connections) connection.close();
        return state;
      }
      default:
        return assertNever(message, 'acceptor message');
    }
  },

  onStop(state) {
    state.server.close();
    for (const connection of state.connections) connection.close();
  },
};
