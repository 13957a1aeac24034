/**
 * The broker's side of NameServer registration (RocketMQ's BrokerOuterAPI.registerBrokerAll and
 * unregisterBrokerAll): one RemotingClient per NameServer address, connected on first use and again
 * after it drops. broker-admin owns one registrar and drives it: it builds the REGISTER_BROKER header
 * and body, calls `registerAll` (through pipeToSelf, so the outcome comes back as a message), and on
 * stop calls `unregisterAll`.
 *
 * Failures are outcomes, never rejections: an address that cannot be reached, times out or answers an
 * error code is reported as such, and the next periodic registration tries again. RocketMQ registers
 * every 30 s and a NameServer forgets a broker after 120 s of silence, so three registrations may fail
 * in a row before routes are lost.
 */
import type { Clock } from '../runtime/clock.ts';
import { describeError } from '../runtime/errors.ts';
import type { ConnectionLog } from '../net/remoting/connection.ts';
import { MQVersionOrdinal } from '../net/remoting/namesrv-protocol.ts';
import { RemotingClient } from '../net/remoting/remoting-client.ts';
import { createRequest, RequestCode, ResponseCode, type RemotingCommand } from '../net/remoting/remoting-command.ts';

/** What one registration round reported for one NameServer. */
export type RegistrationOutcome =
  | { readonly namesrvAddr: string; readonly ok: true }
  | { readonly namesrvAddr: string; readonly ok: false; readonly reason: string };

/** How a registrar connects and how long it waits. */
export type NamesrvRegistrarOptions = {
  /** `host:port` of every NameServer. */
  readonly namesrvAddrs: readonly string[];
  /** Timers of the clients (request and connect timeouts). */
  readonly clock: Clock;
  readonly connectTimeoutMs: number;
  /** How long REGISTER_BROKER may take (BrokerConfig.registerBrokerTimeoutMills). */
  readonly requestTimeoutMs: number;
  readonly log: ConnectionLog;
};

/** Keeps one connection per NameServer and sends registrations over them. */
export class NamesrvRegistrar {
  private readonly options: NamesrvRegistrarOptions;
  private readonly clients = new Map<string, RemotingClient>();
  private readonly connecting = new Map<string, Promise<RemotingClient>>();
  private closed = false;

  constructor(options: NamesrvRegistrarOptions) {
    this.options = options;
  }

  /** The NameServers this registrar talks to. */
  get namesrvAddrs(): readonly string[] {
    return this.options.namesrvAddrs;
  }

  /** Sends REGISTER_BROKER to every NameServer at once; resolves with one outcome each, never rejects. */
  registerAll(extFields: Record<string, string>, body: Uint8Array): Promise<RegistrationOutcome[]> {
    return Promise.all(this.options.namesrvAddrs.map((addr) => this.registerOne(addr, extFields, body)));
  }

  /**
   * Best effort on stop: tells every connected NameServer UNREGISTER_BROKER as a oneway request, then
   * closes the connections (queued bytes are flushed within the client's close grace).
   */
  unregisterAll(extFields: Record<string, string>): void {
    for (const [addr, client] of this.clients) {
      try {
        client.invokeOneway(this.request(RequestCode.UNREGISTER_BROKER, extFields));
      } catch (error) {
        this.options.log('warn', 'UNREGISTER_BROKER not sent', { namesrvAddr: addr, err: describeError(error) });
      }
    }
    this.close();
  }

  /** Closes every connection; later registrations are refused. */
  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) void client.close();
    this.clients.clear();
  }

  private request(code: number, extFields: Record<string, string>, body?: Uint8Array): RemotingCommand {
    // The version tells the NameServer the body is a RegisterBrokerBody (RocketMQ decodes by version).
    return createRequest({ code, opaque: 0, extFields, version: MQVersionOrdinal.V5_3_3, ...(body === undefined ? {} : { body }) });
  }

  private async registerOne(addr: string, extFields: Record<string, string>, body: Uint8Array): Promise<RegistrationOutcome> {
    try {
      const client = await this.clientFor(addr);
      const response = await client.invoke(this.request(RequestCode.REGISTER_BROKER, extFields, body), this.options.requestTimeoutMs);
      if (response.code === ResponseCode.SUCCESS) return { namesrvAddr: addr, ok: true };
      return { namesrvAddr: addr, ok: false, reason: `code ${response.code}: ${response.remark ?? ''}` };
    } catch (error) {
      return { namesrvAddr: addr, ok: false, reason: describeError(error) };
    }
  }

  private clientFor(addr: string): Promise<RemotingClient> {
    if (this.closed) return Promise.reject(new Error('registrar closed'));
    const client = this.clients.get(addr);
    if (client !== undefined && !client.closed) return Promise.resolve(client);
    this.clients.delete(addr);
    const pending = this.connecting.get(addr);
    if (pending !== undefined) return pending;
    const { clock, connectTimeoutMs, log } = this.options;
    const connection = RemotingClient.connect(addr, { clock, connectTimeoutMs, log }).then(
      (connected) => {
        this.connecting.delete(addr);
        if (this.closed) {
          void connected.close();
          throw new Error('registrar closed');
        }
        this.clients.set(addr, connected);
        return connected;
      },
      (error: unknown) => {
        this.connecting.delete(addr);
        throw error;
      },
    );
    this.connecting.set(addr, connection);
    return connection;
  }
}
