/**
 * How the Proxy reaches the NameServer and the brokers: always with Remoting commands, as RocketMQ's
 * Proxy does in both of its modes.
 *
 * - LOCAL (`rocketmq-ts start`): the commands never touch a socket. The Proxy hands them to the broker's
 *   (and NameServer's) processor actors exactly as a Remoting acceptor does, with itself as the channel's
 *   acceptor, and takes their `respond` messages back. Each 5.x client gets its own channel (connection
 *   id), so the broker's client registry sees every client separately, as RocketMQ's LocalMessageService
 *   hands the broker one channel per gRPC client.
 * - CLUSTER (`rocketmq-ts proxy`): one RemotingClient per address, JSON headers (the POP codes do not fit
 *   the binary header's 16-bit code).
 *
 * Bounds: at most `pendingMax` requests wait for an answer; past it a request is answered SYSTEM_BUSY at
 * once, like a full processor mailbox. Every request has a timeout.
 */
import type { ActorRef } from '../../runtime/actor.ts';
import { type AcceptorChannelMessage, ProcessorPicker, type RemotingChannel, type RemotingRequestMessage, type RemotingRoutes } from '../../actors/remoting-routes.ts';
import { createResponse, isOneway, ResponseCode, type RemotingCommand } from '../remoting/remoting-command.ts';
import { RemotingClient } from '../remoting/remoting-client.ts';

/** One 5.x client as the brokers see it: a channel of its own. */
export type ClientSession = { readonly connectionId: number; readonly remoteAddress: string };

/** What the Proxy's activities use to reach the servers. */
export interface ProxyTransport {
  /** Asks the NameServer. */
  invokeNamesrv(request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand>;
  /** Asks the broker at `brokerAddr` on behalf of `session`. */
  invokeBroker(brokerAddr: string, request: RemotingCommand, timeoutMs: number, session: ClientSession): Promise<RemotingCommand>;
  /** The client is gone: brokers forget its channel. */
  closeSession(session: ClientSession): void;
  /**
   * Where requests the brokers start go (CHECK_TRANSACTION_STATE, ...): with the client's connection id in
   * LOCAL mode, undefined in CLUSTER mode (they arrive on the Proxy's own connection). Never answered.
   */
  onServerRequest(handler: ServerRequestListener): void;
  /** Stops: pending requests fail. */
  close(): void;
}

/** Takes a request a broker started, with the client connection it was pushed to (LOCAL only). */
export type ServerRequestListener = (request: RemotingCommand, connectionId: number | undefined) => void;

/** Raised when an answer does not come in time or the transport closed. */
export class ProxyTransportError extends Error {
  readonly code: 'TIMEOUT' | 'CLOSED' | 'UNREACHABLE';
  constructor(code: 'TIMEOUT' | 'CLOSED' | 'UNREACHABLE', message: string) {
    super(message);
    this.code = code;
    this.name = 'ProxyTransportError';
  }
}

/** Default bound of requests awaiting an answer. */
export const TRANSPORT_PENDING_MAX = 65_536;

type Pending = { resolve(response: RemotingCommand): void; reject(error: Error): void; timer: ReturnType<typeof setTimeout> };

/** What the LOCAL transport needs from its actor: how to tell, who it is, and the servers' routes. */
export type LocalTransportOptions = {
  readonly tell: (ref: ActorRef<RemotingRequestMessage> | ActorRef<{ type: 'channelClosed'; channel: RemotingChannel }>, message: unknown) => boolean;
  readonly self: ActorRef<AcceptorChannelMessage>;
  readonly namesrv: RemotingRoutes | undefined;
  /** The in-process brokers' routes by broker address. */
  readonly brokers: ReadonlyMap<string, RemotingRoutes>;
  readonly localAddress: string;
  readonly pendingMax?: number;
  /** Whether a processor runs on the caller's thread; those are preferred. */
  readonly isLocal?: (ref: ActorRef) => boolean;
};

/** LOCAL mode: commands go to processor actors of this node. */
export class LocalTransport implements ProxyTransport {
  private readonly pending = new Map<number, Pending>();
  private readonly picker: ProcessorPicker;
  private nextOpaque = 1;
  /** Connection id used for the Proxy's own NameServer queries (clients start at 1). */
  private static readonly PROXY_CONNECTION_ID = 0;
  private readonly options: LocalTransportOptions;
  private serverRequests: ServerRequestListener | undefined;

  constructor(options: LocalTransportOptions) {
    this.options = options;
    this.picker = new ProcessorPicker(options.isLocal ?? (() => false));
  }

  invokeNamesrv(request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    return this.invoke(this.options.namesrv, request, timeoutMs, { connectionId: LocalTransport.PROXY_CONNECTION_ID, remoteAddress: this.options.localAddress });
  }

  invokeBroker(brokerAddr: string, request: RemotingCommand, timeoutMs: number, session: ClientSession): Promise<RemotingCommand> {
    return this.invoke(this.options.brokers.get(brokerAddr), request, timeoutMs, session);
  }

  onServerRequest(handler: ServerRequestListener): void {
    this.serverRequests = handler;
  }

  /** A request a processor pushed to a client's channel (the acceptor side of the channel contract). */
  push(connectionId: number, request: RemotingCommand): void {
    this.serverRequests?.(request, connectionId);
  }

  /** An answer from a processor (the acceptor side of the channel contract). */
  respond(response: RemotingCommand): void {
    const pending = this.pending.get(response.opaque);
    if (pending === undefined) return; // timed out already
    this.pending.delete(response.opaque);
    clearTimeout(pending.timer);
    pending.resolve(response);
  }

  closeSession(session: ClientSession): void {
    const listeners = new Set<ActorRef<{ type: 'channelClosed'; channel: RemotingChannel }>>();
    for (const routes of this.options.brokers.values()) for (const listener of routes.closeListeners ?? []) listeners.add(listener);
    const channel = this.channelOf(session);
    for (const listener of listeners) this.options.tell(listener, { type: 'channelClosed', channel });
  }

  close(): void {
    for (const [opaque, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new ProxyTransportError('CLOSED', `transport closed before request ${opaque} was answered`));
    }
    this.pending.clear();
  }

  private channelOf(session: ClientSession): RemotingChannel {
    return { acceptor: this.options.self, connectionId: session.connectionId, remoteAddress: session.remoteAddress, localAddress: this.options.localAddress };
  }

  private invoke(routes: RemotingRoutes | undefined, request: RemotingCommand, timeoutMs: number, session: ClientSession): Promise<RemotingCommand> {
    if (routes === undefined) return Promise.reject(new ProxyTransportError('UNREACHABLE', 'no such server in this node'));
    const processor = this.picker.pick(routes, request.code);
    if (processor === undefined) return Promise.resolve(createResponse(request, ResponseCode.REQUEST_CODE_NOT_SUPPORTED, `request code ${request.code} not supported`));
    if (this.pending.size >= (this.options.pendingMax ?? TRANSPORT_PENDING_MAX)) {
      return Promise.resolve(createResponse(request, ResponseCode.SYSTEM_BUSY, '[REJECTREQUEST]system busy, start flow control for a while'));
    }
    const opaque = this.nextOpaque;
    this.nextOpaque = this.nextOpaque >= 0x7fff_ffff ? 1 : this.nextOpaque + 1;
    const command: RemotingCommand = { ...request, opaque };
    if (!this.options.tell(processor, { type: 'remotingRequest', request: command, channel: this.channelOf(session) })) {
      return Promise.resolve(createResponse(command, ResponseCode.SYSTEM_BUSY, '[REJECTREQUEST]system busy, start flow control for a while'));
    }
    if (isOneway(command)) return Promise.resolve(createResponse(command, ResponseCode.SUCCESS));
    return new Promise<RemotingCommand>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(opaque)) reject(new ProxyTransportError('TIMEOUT', `request code ${request.code} not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(opaque, { resolve, reject, timer });
    });
  }
}

/** CLUSTER mode: Remoting over TCP to the NameServer and the brokers. */
export class ClusterTransport implements ProxyTransport {
  private readonly clients = new Map<string, Promise<RemotingClient>>();
  private readonly namesrvAddrs: readonly string[];
  private namesrvIndex = 0;
  private closed = false;
  private serverRequests: ServerRequestListener | undefined;

  constructor(namesrvAddrs: readonly string[]) {
    this.namesrvAddrs = namesrvAddrs;
  }

  async invokeNamesrv(request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    if (this.namesrvAddrs.length === 0) throw new ProxyTransportError('UNREACHABLE', 'no namesrvAddr configured');
    let lastError: unknown;
    for (let tried = 0; tried < this.namesrvAddrs.length; tried++) {
      const addr = this.namesrvAddrs[this.namesrvIndex % this.namesrvAddrs.length]!;
      try {
        return await this.invokeAt(addr, request, timeoutMs);
      } catch (error) {
        lastError = error;
        this.namesrvIndex++;
      }
    }
    throw lastError instanceof Error ? lastError : new ProxyTransportError('UNREACHABLE', String(lastError));
  }

  invokeBroker(brokerAddr: string, request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    return this.invokeAt(brokerAddr, request, timeoutMs);
  }

  closeSession(): void {
    // The brokers see the Proxy's connections, not its clients: UNREGISTER_CLIENT tells them instead.
  }

  onServerRequest(handler: ServerRequestListener): void {
    this.serverRequests = handler;
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) void client.then((c) => c.close()).catch(() => undefined);
    this.clients.clear();
  }

  private async invokeAt(addr: string, request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    if (this.closed) throw new ProxyTransportError('CLOSED', 'transport closed');
    let client = this.clients.get(addr);
    if (client === undefined) {
      client = RemotingClient.connect(addr, { serializeType: 'JSON' }).then((connected) => {
        connected.onRequest((serverRequest) => {
          this.serverRequests?.(serverRequest, undefined);
          return undefined;
        });
        return connected;
      });
      this.clients.set(addr, client);
      client.catch(() => this.clients.delete(addr));
    }
    const connected = await client;
    try {
      if (isOneway(request)) {
        connected.invokeOneway({ ...request, serializeType: 'JSON' });
        return createResponse(request, ResponseCode.SUCCESS);
      }
      return await connected.invoke({ ...request, serializeType: 'JSON' }, timeoutMs);
    } catch (error) {
      if (connected.closed) this.clients.delete(addr);
      throw error;
    }
  }
}
