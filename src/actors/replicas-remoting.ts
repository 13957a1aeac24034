/**
 * The replicas manager's Remoting connections (RocketMQ's BrokerOuterAPI calls of ReplicasManager): one
 * kept connection to the controller, over which heartbeats, registration and polling go and on which the
 * controller pushes NOTIFY_BROKER_ROLE_CHANGED, and short-lived connections to a new master's broker
 * port for GET_BROKER_EPOCH_CACHE and EXCHANGE_BROKER_HA_INFO.
 *
 * controllerAddr may list several controllers separated by ';' (as BrokerConfig.controllerAddr does), of
 * which one leads (a group agreeing through etcd). Finding the leader, as ReplicasManager's
 * updateControllerMetadata does:
 * - a connection that cannot be made moves on to the next address at once, within the call's time;
 * - an answer CONTROLLER_NOT_LEADER comes from a follower, which did nothing; we ask it
 *   CONTROLLER_GET_METADATA_INFO, switch to the controllerLeaderAddress it names (or, when it names none
 *   yet, to the next address) and send the request once more, so the caller sees the leader's answer;
 * - a connection that fails or times out is dropped, and the next call starts from the next address.
 *
 * Failures are rejections (RemotingClientError with its stable code); the actor pipes them to itself.
 */
import type { Clock } from '../runtime/clock.ts';
import type { ConnectionLog } from '../net/remoting/connection.ts';
import { GetMetaDataResponseHeader } from '../net/remoting/controller-protocol.ts';
import { RemotingClient, requestOf } from '../net/remoting/remoting-client.ts';
import { RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';

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
  /** The leader's address as a follower last named it; tried before the list. */
  private leaderAddr: string | undefined;
  private closed = false;
  private readonly peers = new Set<RemotingClient>();

  constructor(options: ReplicasRemotingOptions) {
    if (options.controllerAddrs.length === 0) throw new Error('no controller address');
    this.options = options;
  }

  /** The controller address in use (or to be tried next). */
  get controllerAddr(): string {
    return this.leaderAddr ?? this.options.controllerAddrs[this.next % this.options.controllerAddrs.length]!;
  }

  /** Sends one request to the leading controller and resolves with its answer, whatever its code. */
  async invokeController(request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    const deadlineMs = this.nowMs() + timeoutMs;
    const first = await this.invokeOnce(request, deadlineMs);
    if (first.answer.code !== ResponseCode.CONTROLLER_NOT_LEADER) return first.answer;
    // A follower did nothing with it: find the leader through it, then ask the leader once.
    const leader = await this.leaderNamedBy(first.client, deadlineMs);
    this.switchFrom(first.client, leader);
    if (leader === undefined || this.nowMs() >= deadlineMs) return first.answer;
    return (await this.invokeOnce(request, deadlineMs)).answer;
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

  private nowMs(): number {
    return Number(this.options.clock.monotonicNs() / 1_000_000n);
  }

  private remainingMs(deadlineMs: number): number {
    return Math.max(1, deadlineMs - this.nowMs());
  }

  private async invokeOnce(request: RemotingCommand, deadlineMs: number): Promise<{ client: RemotingClient; answer: RemotingCommand }> {
    const client = await this.controllerClient(deadlineMs);
    try {
      return { client, answer: await client.invoke(request, this.remainingMs(deadlineMs)) };
    } catch (error) {
      // A timed-out or closed connection is dropped, so the next call starts afresh (maybe elsewhere).
      this.dropController(client);
      throw error;
    }
  }

  /** The leader address a controller names in CONTROLLER_GET_METADATA_INFO; undefined when it names none. */
  private async leaderNamedBy(client: RemotingClient, deadlineMs: number): Promise<string | undefined> {
    try {
      const answer = await client.invoke(requestOf(RequestCode.CONTROLLER_GET_METADATA_INFO), this.remainingMs(deadlineMs));
      if (answer.code !== ResponseCode.SUCCESS) return undefined;
      const address = GetMetaDataResponseHeader.parse(answer.extFields).controllerLeaderAddress?.trim();
      return address === undefined || address === '' ? undefined : address;
    } catch {
      return undefined;
    }
  }

  /** Leaves a follower's connection for the leader it named, or for the next address. */
  private switchFrom(client: RemotingClient, leader: string | undefined): void {
    if (this.client === client) {
      this.client = undefined;
      void client.close();
    }
    const current = this.controllerAddr;
    if (leader !== undefined && leader !== current) {
      this.leaderAddr = leader;
      return;
    }
    this.moveOn();
  }

  private moveOn(): void {
    if (this.leaderAddr !== undefined) this.leaderAddr = undefined;
    else this.next++;
  }

  private dropController(client: RemotingClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.moveOn();
    void client.close();
  }

  private controllerClient(deadlineMs: number): Promise<RemotingClient> {
    if (this.closed) return Promise.reject(new Error('replicas remoting closed'));
    if (this.client !== undefined && !this.client.closed) return Promise.resolve(this.client);
    if (this.client !== undefined) {
      this.client = undefined;
      this.moveOn();
    }
    if (this.connecting !== undefined) return this.connecting;
    const connecting = this.connectAny(deadlineMs).finally(() => {
      this.connecting = undefined;
    });
    this.connecting = connecting;
    return connecting;
  }

  /** Connects to the leader named last or the current address, moving on through the list on failure. */
  private async connectAny(deadlineMs: number): Promise<RemotingClient> {
    const { clock, connectTimeoutMs, log, controllerAddrs } = this.options;
    // Bounded: the named leader (if any) and then each listed address once.
    const tries = controllerAddrs.length + (this.leaderAddr === undefined ? 0 : 1);
    let lastError: unknown = new Error('no controller could be reached in time');
    for (let attempt = 0; attempt < tries && this.nowMs() < deadlineMs; attempt++) {
      const address = this.controllerAddr;
      try {
        const connected = await RemotingClient.connect(address, { clock, connectTimeoutMs: Math.min(connectTimeoutMs, this.remainingMs(deadlineMs)), log });
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
      } catch (error) {
        if (this.closed) throw error;
        lastError = error;
        this.moveOn();
      }
    }
    throw lastError;
  }
}
