/**
 * The gRPC front of the Proxy (apache.rocketmq.v2 on grpcServerPort). It owns the grpc-js server; the
 * MessagingService is registered by the Proxy issue. Until then the server is up and every call gets
 * gRPC's UNIMPLEMENTED, which is what a 5.x client sees from a proxy that lacks a method.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Behavior, DeferredReply } from '../runtime/actor.ts';
import { assertNever } from '../runtime/assert.ts';
import type { BoundAnswer } from './remoting-acceptor.ts';

/** Start arguments: where to listen and the inbound message bound. */
export type GrpcFrontArgs = { readonly host: string; readonly port: number; readonly maxReceiveMessageBytes: number };

/** Messages: asks for the bound port, the request to stop accepting, and the bind outcome. */
export type GrpcFrontMessage =
  | { readonly type: 'port' }
  | { readonly type: 'stopAccepting' }
  | { readonly type: 'bound'; readonly answer: BoundAnswer };

type State = { readonly server: Server; bound: BoundAnswer | undefined; readonly waiting: DeferredReply[] };

/** The gRPC front behavior. */
export const grpcFront: Behavior<State, GrpcFrontMessage, GrpcFrontArgs> = {
  init(args, ctx) {
    const server = new Server({ 'grpc.max_receive_message_length': args.maxReceiveMessageBytes });
    const bound = new Promise<number>((resolve, reject) => {
      server.bindAsync(`${args.host}:${args.port}`, ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
    });
    ctx.pipeToSelf(bound, (result) => ({
      type: 'bound',
      answer: result.ok ? { port: result.value } : { error: `proxy cannot listen on ${args.host}:${args.port}: ${String(result.error)}` },
    }));
    return { server, bound: undefined, waiting: [] };
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
        state.server.tryShutdown(() => reply?.resolve(true));
        return state;
      }
      default:
        return assertNever(message, 'grpc front message');
    }
  },

  onStop(state) {
    state.server.forceShutdown();
  },
};
