/**
 * The gRPC front of the Proxy: apache.rocketmq.v2.MessagingService on grpcServerPort, served by grpc-js on
 * this actor's thread (the `grpc` pool). A node runs one front per thread of that pool, as it runs one
 * Remoting acceptor per network thread: each front's own net.Server listens with reusePort on the same
 * port, so the kernel spreads connections over the threads, and hands every accepted socket to its
 * grpc-js server (a connection injector). A connection, and so every call and Telemetry stream of a
 * client, stays on one front. Each call is decoded here and handed to the MessagingActivity
 * (src/net/grpc/messaging-activity.ts), which speaks Remoting to the NameServer and brokers through a
 * transport:
 *
 * - LOCAL (proxyMode LOCAL, the default of `start`): the node tells this actor the routes of its own
 *   NameServer and broker (`useLocalServers`); requests go to their processor actors as if this actor were
 *   a Remoting acceptor, and their `respond` messages come back here. No socket between proxy and broker.
 * - CLUSTER (`rocketmq-ts proxy`): Remoting over TCP to namesrvAddr and the brokers it names.
 *
 * Until a LOCAL node has installed its servers, calls are answered with gRPC UNAVAILABLE.
 */
import net from 'node:net';
import { Server, ServerCredentials, status as GrpcStatus, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import type { ActorRef, Behavior, DeferredReply } from '../runtime/actor.ts';
import { assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import type { BoundAnswer } from './remoting-acceptor.ts';
import type { AcceptorChannelMessage, RemotingRoutes } from './remoting-routes.ts';
import { addMessagingService, type MessagingServiceHandlers } from '../net/grpc/messaging-service.ts';
import { MessagingActivity, type CallContext } from '../net/grpc/messaging-activity.ts';
import type { TelemetryCommand } from '../net/grpc/messages.ts';
import { PROXY_MESSAGE_LIMITS } from '../net/grpc/send-message.ts';
import { writeServerStream } from '../net/grpc/stream-writer.ts';
import type { EncodedFrame } from '../net/grpc/message-encoder.ts';
import { ClusterTransport, LocalTransport, type ProxyTransport } from '../net/grpc/proxy-transport.ts';
import { leaseGuardedAnswer } from './master-lease.ts';

/** Start arguments: where to listen, the inbound bound, the mode and what the activities need. */
export type GrpcFrontArgs = {
  readonly host: string;
  readonly port: number;
  readonly maxReceiveMessageBytes: number;
  readonly proxyMode?: 'LOCAL' | 'CLUSTER';
  /** CLUSTER: the NameServers to ask. */
  readonly namesrvAddrs?: readonly string[];
  readonly autoCreateTopicEnable?: boolean;
  readonly defaultTopicQueueNums?: number;
  readonly maxMessageSize?: number;
  /** ProxyConfig enableTopicMessageTypeCheck (default true). */
  readonly enableTopicMessageTypeCheck?: boolean;
  /** LOCAL mode, broker in controller mode: the master lease checked on stored puts' answers (master-lease.ts). */
  readonly masterLease?: SharedArrayBuffer;
};

/** Messages: asks for the bound port, stop, the local servers, the channel contract, and timers. */
export type GrpcFrontMessage =
  | { readonly type: 'port' }
  | { readonly type: 'stopAccepting' }
  | { readonly type: 'bound'; readonly answer: BoundAnswer }
  | {
      readonly type: 'useLocalServers';
      readonly namesrv: RemotingRoutes | undefined;
      readonly brokers: readonly { readonly brokerAddr: string; readonly routes: RemotingRoutes }[];
    }
  | { readonly type: 'expireClients' }
  /** Answers FrontStats. */
  | { readonly type: 'stats' }
  | AcceptorChannelMessage;

/** What one front reports: the connections it holds now and has accepted in all. */
export type FrontStats = { readonly connections: number; readonly accepted: number };

type State = {
  readonly server: Server;
  /** Accepts on the shared port (reusePort) and injects each connection into `server`. */
  readonly listener: net.Server;
  readonly counts: { connections: number; accepted: number };
  bound: BoundAnswer | undefined;
  readonly waiting: DeferredReply[];
  readonly backend: { activity: MessagingActivity | undefined; local: LocalTransport | undefined; transport: ProxyTransport | undefined };
  readonly makeActivity: (transport: ProxyTransport) => MessagingActivity;
  readonly masterLease: SharedArrayBuffer | undefined;
};

const TIMER_EXPIRE = 'expireClients';
const EXPIRE_INTERVAL_MS = 10_000;

/** The gRPC front behavior. */
export const grpcFront: Behavior<State, GrpcFrontMessage, GrpcFrontArgs> = {
  init(args, ctx) {
    const server = new Server({ 'grpc.max_receive_message_length': args.maxReceiveMessageBytes });
    const backend: State['backend'] = { activity: undefined, local: undefined, transport: undefined };
    const activityOf = (transport: ProxyTransport): MessagingActivity =>
      new MessagingActivity({
        transport,
        nowMs: () => ctx.clock.nowMs(),
        log: ctx.log,
        autoCreateTopicEnable: args.autoCreateTopicEnable ?? true,
        defaultTopicQueueNums: args.defaultTopicQueueNums ?? 4,
        enableTopicMessageTypeCheck: args.enableTopicMessageTypeCheck ?? true,
        ...(args.maxMessageSize !== undefined ? { limits: { ...PROXY_MESSAGE_LIMITS, maxMessageSize: args.maxMessageSize } } : {}),
      });
    const activityFor = (transport: ProxyTransport): MessagingActivity => {
      const activity = activityOf(transport);
      transport.onServerRequest((request, connectionId) => activity.serverRequest(request, connectionId));
      return activity;
    };
    if (args.proxyMode === 'CLUSTER') {
      backend.transport = new ClusterTransport(args.namesrvAddrs ?? []);
      backend.activity = activityFor(backend.transport);
    }
    addMessagingService(server, handlersOf(() => backend.activity));
    const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
    const counts = { connections: 0, accepted: 0 };
    const listener = net.createServer({ noDelay: true }, (socket) => {
      counts.connections++;
      counts.accepted++;
      socket.once('close', () => counts.connections--);
      injector.injectConnection(socket);
    });
    const bound = new Promise<number>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: args.host, port: args.port, reusePort: true }, () => {
        listener.off('error', reject);
        listener.on('error', (error) => ctx.log.error({ err: describeError(error) }, 'gRPC listener error'));
        resolve((listener.address() as net.AddressInfo).port);
      });
    });
    ctx.pipeToSelf(bound, (result) => ({
      type: 'bound',
      answer: result.ok ? { port: result.value } : { error: `proxy cannot listen on ${args.host}:${args.port}: ${String(result.error)}` },
    }));
    ctx.timers.startPeriodic(TIMER_EXPIRE, { type: 'expireClients' }, EXPIRE_INTERVAL_MS);
    return { server, listener, counts, bound: undefined, waiting: [], backend, makeActivity: activityFor, masterLease: args.masterLease };
  },

  receive(state, message, ctx) {
    switch (message.type) {
      case 'bound':
        state.bound = message.answer;
        for (const reply of state.waiting.splice(0)) reply.resolve(state.bound);
        return state;
      case 'port':
        if (state.bound !== undefined) ctx.reply(state.bound);
        else state.waiting.push(ctx.deferReply()!);
        return state;
      case 'stopAccepting': {
        const reply = ctx.deferReply();
        state.listener.close();
        state.backend.transport?.close();
        state.server.tryShutdown(() => reply?.resolve(true));
        return state;
      }
      case 'useLocalServers': {
        const local = new LocalTransport({
          tell: (ref, payload) => ctx.tell(ref as ActorRef<unknown>, payload),
          self: ctx.self as ActorRef<AcceptorChannelMessage>,
          namesrv: message.namesrv,
          brokers: new Map(message.brokers.map((broker) => [broker.brokerAddr, broker.routes])),
          localAddress: 'proxy-local',
          isLocal: (ref) => ctx.isLocal(ref),
        });
        state.backend.local = local;
        state.backend.transport = local;
        state.backend.activity = state.makeActivity(local);
        ctx.reply(true);
        return state;
      }
      case 'respond':
        state.backend.local?.respond(
          message.leaseGuarded === true ? leaseGuardedAnswer(state.masterLease, message.response, Number(ctx.clock.monotonicNs() / 1_000_000n)) : message.response,
        );
        return state;
      case 'push':
        // CHECK_TRANSACTION_STATE reaches the client's Telemetry stream; the rest means nothing to 5.x clients.
        state.backend.local?.push(message.connectionId, message.request);
        return state;
      case 'closeConnection':
        return state;
      case 'expireClients':
        state.backend.activity?.expireClients(ctx.clock.nowMs());
        return state;
      case 'stats':
        ctx.reply({ connections: state.counts.connections, accepted: state.counts.accepted } satisfies FrontStats);
        return state;
      default:
        return assertNever(message, 'grpc front message');
    }
  },

  onStop(state) {
    state.listener.close();
    state.backend.transport?.close();
    state.server.forceShutdown();
  },
};

/** The call's client id, peer and deadline. */
function contextOf(call: { metadata: Metadata; getPeer(): string; getDeadline(): Date | number }): CallContext {
  const clientId = String(call.metadata.get('x-mq-client-id')[0] ?? '');
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined;
  return { clientId: clientId.length > 0 ? clientId : call.getPeer(), remoteAddress: call.getPeer(), deadlineMs };
}

const unavailable = { code: GrpcStatus.UNAVAILABLE, details: 'proxy is starting' };

/** grpc-js handlers that hand every call to the current activity. */
function handlersOf(activity: () => MessagingActivity | undefined): Partial<MessagingServiceHandlers> {
  const unary =
    <Req, Res>(run: (a: MessagingActivity, ctx: CallContext, request: Req) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const current = activity();
      if (current === undefined) {
        callback(unavailable);
        return;
      }
      run(current, contextOf(call), call.request).then(
        (response) => callback(null, response),
        (error: unknown) => callback({ code: GrpcStatus.INTERNAL, details: String(error) }),
      );
    };
  const serverStream =
    <Req, Res>(run: (a: MessagingActivity, ctx: CallContext, request: Req) => Promise<readonly (Res | EncodedFrame)[]>) =>
    (call: ServerWritableStream<Req, Res>): void => {
      const current = activity();
      if (current === undefined) {
        call.emit('error', unavailable);
        return;
      }
      run(current, contextOf(call), call.request).then(
        (frames) => {
          writeServerStream(call, frames);
          call.end();
        },
        (error: unknown) => call.emit('error', { code: GrpcStatus.INTERNAL, details: String(error) }),
      );
    };
  return {
    QueryRoute: unary((a, ctx, request) => a.queryRoute(ctx, request)),
    Heartbeat: unary((a, ctx, request) => a.heartbeat(ctx, request)),
    SendMessage: unary((a, ctx, request) => a.sendMessage(ctx, request)),
    QueryAssignment: unary((a, ctx, request) => a.queryAssignment(ctx, request)),
    AckMessage: unary((a, ctx, request) => a.ackMessage(ctx, request)),
    ChangeInvisibleDuration: unary((a, ctx, request) => a.changeInvisibleDuration(ctx, request)),
    ForwardMessageToDeadLetterQueue: unary((a, ctx, request) => a.forwardMessageToDeadLetterQueue(ctx, request)),
    NotifyClientTermination: unary((a, ctx, request) => a.notifyClientTermination(ctx, request)),
    EndTransaction: unary((a, ctx, request) => a.endTransaction(ctx, request)),
    RecallMessage: unary((a, ctx, request) => a.recallMessage(ctx, request)),
    UpdateOffset: unary((a, ctx, request) => a.updateOffset(ctx, request)),
    GetOffset: unary((a, ctx, request) => a.getOffset(ctx, request)),
    QueryOffset: unary((a, ctx, request) => a.queryOffset(ctx, request)),
    SyncLiteSubscription: unary(async (a) => a.notImplemented('SyncLiteSubscription')),
    ReceiveMessage: serverStream((a, ctx, request) => a.receiveMessage(ctx, request)),
    PullMessage: serverStream((a, ctx, request) => a.pullMessage(ctx, request)),
    Telemetry: (call) => {
      const ctx = contextOf(call);
      const write = (command: TelemetryCommand): boolean => {
        if (call.writableEnded || call.destroyed) return false;
        call.write(command);
        return true;
      };
      let detach: (() => void) | undefined;
      call.on('data', (command) => {
        const current = activity();
        if (current === undefined) return;
        detach ??= current.attachTelemetry(ctx, write);
        current.telemetry(ctx, command).then(
          (reply) => {
            if (reply !== undefined) write(reply);
          },
          () => undefined,
        );
      });
      call.on('end', () => {
        detach?.();
        call.end();
      });
      call.on('error', () => detach?.());
      call.on('close', () => detach?.());
    },
  };
}
