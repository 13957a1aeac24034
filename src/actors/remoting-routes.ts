/**
 * The contract between Remoting acceptors (network threads) and request processors (actors on the
 * send / pull / admin pools). It mirrors RocketMQ's NettyRemotingServer.registerProcessor: each request
 * code maps to a processor and its executor; here a code maps to one or more processor actors, and the
 * acceptor spreads requests over them round-robin.
 *
 * Flow: the acceptor decodes a frame and tells the processor a `remotingRequest` carrying the command
 * and the channel it came on. The processor answers by telling the channel's acceptor a `respond` with
 * the same connection id; the acceptor writes it if the connection is still open (a late answer to a
 * closed connection is dropped, as Netty drops writes to a closed channel). Oneway requests are never
 * answered. A processor may also `push` a server-initiated request (NOTIFY_CONSUMER_IDS_CHANGED,
 * CHECK_TRANSACTION_STATE) to a channel it saw earlier; the acceptor sends it as a oneway-style request
 * and ignores whatever the client answers, so clients that never answer are fine.
 */
import type { ActorRef } from '../runtime/actor.ts';
import type { RemotingCommand } from '../net/remoting/remoting-command.ts';

/** Messages an acceptor takes from processors. */
export type AcceptorChannelMessage =
  | {
      readonly type: 'respond';
      readonly connectionId: number;
      readonly response: RemotingCommand;
      /**
       * The answer acknowledges a stored put: the acceptor checks the master lease (master-lease.ts) as it
       * writes it, and answers SERVICE_NOT_AVAILABLE instead once the lease has run out.
       */
      readonly leaseGuarded?: boolean;
    }
  | { readonly type: 'push'; readonly connectionId: number; readonly request: RemotingCommand }
  | { readonly type: 'closeConnection'; readonly connectionId: number };

/** Where a request came from; plain data, valid on any thread for the life of the connection. */
export type RemotingChannel = {
  /** The acceptor actor that owns the connection. */
  readonly acceptor: ActorRef<AcceptorChannelMessage>;
  /** The connection's id inside that acceptor (unique per acceptor, never reused). */
  readonly connectionId: number;
  /** `ip:port` of the client as the server sees it. */
  readonly remoteAddress: string;
  /** `ip:port` the client connected to. */
  readonly localAddress: string;
};

/** The request a processor receives. */
export type RemotingRequestMessage = {
  readonly type: 'remotingRequest';
  readonly request: RemotingCommand;
  readonly channel: RemotingChannel;
};

/** Told to every `closeListeners` actor when a connection closes (client housekeeping). */
export type ChannelClosedMessage = { readonly type: 'channelClosed'; readonly channel: RemotingChannel };

/** Which processors serve which codes; the default takes every code not listed (else NOT_SUPPORTED). */
export type RemotingRoutes = {
  readonly byCode: Readonly<Record<number, readonly ActorRef<RemotingRequestMessage>[]>>;
  readonly fallback?: readonly ActorRef<RemotingRequestMessage>[];
  readonly closeListeners?: readonly ActorRef<ChannelClosedMessage>[];
};

/** Stable string key of a channel, for maps of clients. */
export function channelKey(channel: RemotingChannel): string {
  return `${channel.acceptor.slot}:${channel.connectionId}`;
}

/**
 * Chooses the processor for a request code: round-robin over that code's processors, keeping to those on
 * the caller's own thread when there are any (a shared pool), so the request crosses no thread.
 */
export class ProcessorPicker {
  private readonly isLocal: (ref: ActorRef) => boolean;
  private readonly cursors = new Map<number, number>();
  private readonly localOnly = new Map<readonly ActorRef<RemotingRequestMessage>[], readonly ActorRef<RemotingRequestMessage>[]>();

  constructor(isLocal: (ref: ActorRef) => boolean) {
    this.isLocal = isLocal;
  }

  /** The processor for `code`, or undefined when no processor serves it. */
  pick(routes: RemotingRoutes | undefined, code: number): ActorRef<RemotingRequestMessage> | undefined {
    const all = routes?.byCode[code] ?? routes?.fallback;
    if (all === undefined || all.length === 0) return undefined;
    let local = this.localOnly.get(all);
    if (local === undefined) {
      local = all.filter((processor) => this.isLocal(processor));
      this.localOnly.set(all, local);
    }
    const processors = local.length > 0 ? local : all;
    const cursor = this.cursors.get(code) ?? 0;
    this.cursors.set(code, cursor + 1);
    return processors[cursor % processors.length];
  }
}
