/**
 * A Remoting acceptor: one per network worker thread and server role, all listening on the same port with
 * SO_REUSEPORT so the kernel spreads connections across threads (RocketMQ's Netty boss/worker groups).
 * Each decodes frames on its own thread; the main event loop does no per-connection work.
 *
 * Each request goes to a processor actor chosen by its code (remoting-routes.ts), round-robin over the
 * processors registered for that code; a code nobody serves is answered the way RocketMQ answers it:
 * REQUEST_CODE_NOT_SUPPORTED with the same opaque. Flow control as RocketMQ's: a processor whose mailbox
 * is full, or a connection whose write queue is over its bound, gets SYSTEM_BUSY at once.
 */
import net from 'node:net';
import type { ActorContext, ActorRef, Behavior, DeferredReply } from '../runtime/actor.ts';
import { assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { RemotingConnection } from '../net/remoting/connection.ts';
import {
  createNotSupportedResponse,
  createResponse,
  isOneway,
  markOneway,
  ResponseCode,
  type RemotingCommand,
} from '../net/remoting/remoting-command.ts';
import { leaseGuardedAnswer } from './master-lease.ts';
import { type AcceptorChannelMessage, ProcessorPicker, type RemotingChannel, type RemotingRequestMessage, type RemotingRoutes } from './remoting-routes.ts';

/** Start arguments: which server this acceptor belongs to and where it listens. */
export type RemotingAcceptorArgs = {
  readonly server: 'namesrv' | 'broker' | 'controller';
  readonly host: string;
  readonly port: number;
  readonly frameMaxBytes: number;
  readonly connectionsMax: number;
  /** Which processors serve which codes; none means every code is answered NOT_SUPPORTED. */
  readonly routes?: RemotingRoutes;
  /** A controller-mode broker's master lease, checked when a lease-guarded answer is written. */
  readonly masterLease?: SharedArrayBuffer;
};

/** Messages: asks for the bound port, the request to stop accepting, and the listen outcome. */
export type RemotingAcceptorMessage =
  | { readonly type: 'port' }
  | { readonly type: 'stopAccepting' }
  | { readonly type: 'useRoutes'; readonly routes: RemotingRoutes }
  | { readonly type: 'bound'; readonly port: number | undefined; readonly error: string | undefined }
  | AcceptorChannelMessage;

/** What an acceptor answers to 'port': the bound port or why it could not bind. */
export type BoundAnswer = { readonly port: number } | { readonly error: string };

type State = {
  readonly server: net.Server;
  readonly connections: Map<number, RemotingConnection>;
  bound: BoundAnswer | undefined;
  readonly waiting: DeferredReply[];
  readonly routing: { current: RemotingRoutes | undefined };
  readonly masterLease: SharedArrayBuffer | undefined;
};

/** The acceptor behavior. */
export const remotingAcceptor: Behavior<State, RemotingAcceptorMessage, RemotingAcceptorArgs> = {
  init(args, ctx) {
    const connections = new Map<number, RemotingConnection>();
    const log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>): void =>
      ctx.log[level](fields, message);
    const self = ctx.self as ActorRef<AcceptorChannelMessage>;
    // Routes may arrive after the port is bound (processors need to know the port first): until then
    // every request is answered NOT_SUPPORTED.
    const routing: { current: RemotingRoutes | undefined } = { current: args.routes };
    const picker = new ProcessorPicker((ref) => ctx.isLocal(ref));
    const pick = (code: number): ActorRef<RemotingRequestMessage> | undefined => picker.pick(routing.current, code);
    let nextConnectionId = 1;
    const server = net.createServer({ noDelay: true }, (socket) => {
      if (connections.size >= args.connectionsMax) {
        ctx.log.warn({ remote: socket.remoteAddress, connectionsMax: args.connectionsMax }, 'connection refused: limit reached');
        socket.destroy();
        return;
      }
      const connectionId = nextConnectionId++;
      let channel: RemotingChannel | undefined;
      const onRequest = (request: RemotingCommand, connection: RemotingConnection): void => {
        channel ??= { acceptor: self, connectionId, remoteAddress: connection.remoteAddress, localAddress: connection.localAddress };
        const processor = pick(request.code);
        if (processor === undefined) {
          if (!isOneway(request)) connection.send(createNotSupportedResponse(request));
          return;
        }
        const busy = connection.overloaded || !ctx.tell(processor, { type: 'remotingRequest', request, channel });
        if (busy && !isOneway(request)) {
          connection.send(createResponse(request, ResponseCode.SYSTEM_BUSY, '[REJECTREQUEST]system busy, start flow control for a while'));
        }
      };
      const connection = new RemotingConnection(socket, {
        onRequest,
        onClose: () => {
          connections.delete(connectionId);
          if (channel === undefined) return;
          for (const listener of routing.current?.closeListeners ?? []) ctx.tell(listener, { type: 'channelClosed', channel });
        },
        log,
        frameMaxBytes: args.frameMaxBytes,
      });
      connections.set(connectionId, connection);
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
    return { server, connections, bound: undefined, waiting: [], routing, masterLease: args.masterLease };
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
        for (const connection of state.connections.values()) connection.close();
        return state;
      }
      case 'useRoutes':
        state.routing.current = message.routes;
        ctx.reply(true);
        return state;
      case 'respond':
        if (message.leaseGuarded === true && state.masterLease !== undefined) {
          // Checked as late as possible: just before the tick's writev (see master-lease.ts).
          const lease = state.masterLease;
          state.connections.get(message.connectionId)?.sendGuarded(message.response, (response) => leaseGuardedAnswer(lease, response, monotonicMs(ctx)));
        } else sendTo(state, message.connectionId, message.response);
        return state;
      case 'push':
        sendTo(state, message.connectionId, { ...message.request, flag: markOneway(message.request.flag) });
        return state;
      case 'closeConnection':
        state.connections.get(message.connectionId)?.close();
        return state;
      default:
        return assertNever(message, 'acceptor message');
    }
  },

  onStop(state) {
    state.server.close();
    for (const connection of state.connections.values()) connection.close();
  },
};

function sendTo(state: State, connectionId: number, command: RemotingCommand): void {
  // An answer too large to frame: the client gets SYSTEM_ERROR instead of a dropped connection.
  state.connections.get(connectionId)?.sendOrSystemError(command);
}

function monotonicMs(ctx: ActorContext<RemotingAcceptorMessage>): number {
  return Number(ctx.clock.monotonicNs() / 1_000_000n);
}
