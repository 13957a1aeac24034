/**
 * The replicas manager's Remoting connections (RocketMQ's BrokerOuterAPI calls of ReplicasManager): one
 * kept connection to the controller, over which heartbeats, registration and polling go and on which the
 * controller pushes NOTIFY_BROKER_ROLE_CHANGED, and short-lived connections to a new master's broker
 * port for GET_BROKER_EPOCH_CACHE and EXCHANGE_BROKER_HA_INFO.
 *
 * controllerAddr may list several controllers separated by ';' (as BrokerConfig.controllerAddr does);
 * a failed connection moves on to the next one. We do not ask CONTROLLER_GET_METADATA_INFO for the
 * leader: a single controller is its own leader, and a follower would answer CONTROLLER_NOT_LEADER, which
 * the caller treats as any failure (the next call tries the next address).
 *
 * Failures are rejections (RemotingClientError with its stable code); the actor pipes them to itself.
 */
import type { Clock } from '../runtime/clock.ts';
import type { ConnectionLog } from '../net/remoting/connection.ts';
import { RemotingClient } from '../net/remoting/remoting-client.ts';
import type { RemotingCommand } from '../net/remoting/remoting-command.ts';

/** How the link connects. */
export type ReplicasRemotingOptions = {
  /** Controller addresses (`host:port`), tried in turn. */
  readonly controllerAddrs: readonly string[];
  readonly clock: Clock;
  readonly connectTimeoutMs: number;
  readonly log: ConnectionLog;
  /** Called with each request the controller sends on the kept connection (role-change pushes). */
  readonly onPush: (request: RemotingCommand) => void;
};

/** The controller connection and the calls to other brokers. */
export class ReplicasRemoting {
  private readonly options: ReplicasRemotingOptions;
  private client: RemotingClient | undefined;
  private connecting: Promise<RemotingClient> | undefined;
  private next = 0;
  private closed = false;
  private readonly peers = new Set<RemotingClient>();

  constructor(options: ReplicasRemotingOptions) {
    if (options.controllerAddrs.length === 0) throw new Error('no controller address');
    this.options = options;
  }

  /** The controller address in use (or to be tried next). */
  get controllerAddr(): string {
    return this.options.controllerAddrs[this.next % this.options.controllerAddrs.length]!;
  }

  /** Sends one request to the controller and resolves with its answer, whatever its code. */
  async invokeController(request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    const client = await this.controllerClient();
    try {
      return await client.invoke(request, timeoutMs);
    } catch (error) {
      // A timed-out or closed connection is dropped, so the next call starts afresh (maybe elsewhere).
      this.dropController(client);
      throw error;
    }
  }

  /** Sends requests, in order, to another broker over a connection of their own, then closes it. */
  async invokePeer(address: string, requests: readonly RemotingCommand[], timeoutMs: number): Promise<RemotingCommand[]> {
    if (this.closed) throw new Error('replicas remoting closed');
    const { clock, connectTimeoutMs, log } = this.options;
    const client = await RemotingClient.connect(address, { clock, connectTimeoutMs, log });
    this.peers.add(client);
    try {
      const answers: RemotingCommand[] = [];
      for (const request of requests) answers.push(await client.invoke(request, timeoutMs));
      return answers;
    } finally {
      this.peers.delete(client);
      void client.close();
    }
  }

  /** Closes every connection; later calls are refused. */
  close(): void {
    this.closed = true;
    if (this.client !== undefined) void this.client.close();
    this.client = undefined;
    for (const peer of this.peers) void peer.close();
    this.peers.clear();
  }

  private dropController(client: RemotingClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.next++;
    void client.close();
  }

  private controllerClient(): Promise<RemotingClient> {
    if (this.closed) return Promise.reject(new Error('replicas remoting closed'));
    if (this.client !== undefined && !this.client.closed) return Promise.resolve(this.client);
    if (this.client !== undefined) {
      this.client = undefined;
      this.next++;
    }
    if (this.connecting !== undefined) return this.connecting;
    const address = this.controllerAddr;
    const { clock, connectTimeoutMs, log } = this.options;
    const connecting = RemotingClient.connect(address, { clock, connectTimeoutMs, log }).then(
      (connected) => {
        this.connecting = undefined;
        if (this.closed) {
          void connected.close();
          throw new Error('replicas remoting closed');
        }
        connected.onRequest((request) => {
          this.options.onPush(request);
          return undefined;
        });
        this.client = connected;
        return connected;
      },
      (error: unknown) => {
        this.connecting = undefined;
        this.next++;
        throw error;
      },
    );
    this.connecting = connecting;
    return connecting;
  }
}
