/**
 * A Remoting client for one server address (a NameServer, a broker, a controller), over one TCP
 * connection, as RocketMQ's NettyRemotingClient keeps one channel per address.
 *
 * Requests are pipelined: `invoke` gives each request a fresh opaque, writes it at once and matches the
 * response by that opaque, so many requests are in flight on the one socket and answers may come back in
 * any order. Everything is bounded: at most `inFlightMax` requests await an answer (RocketMQ's async
 * semaphore, 65535 permits by default), the socket's write queue is capped at `writeQueueBytesMax`, and at
 * most `serverRequestsMax` server-initiated requests are being handled at once. Past a bound the caller
 * gets REMOTING_TOO_MANY_REQUESTS (or the server gets SYSTEM_BUSY) instead of memory growing.
 *
 * A response that arrives after its request timed out finds no waiter and is dropped, as the Java client
 * drops it; `responsesDropped` counts them. When the connection closes, for whatever reason, every
 * waiting request is rejected with REMOTING_CLOSED at once rather than left to time out.
 *
 * Servers also send requests to clients (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE,
 * GET_CONSUMER_RUNNING_INFO). They go to the handler set with `onRequest`; what it returns is sent back
 * with the request's opaque and serialization, as NettyRemotingAbstract does. With no handler the server
 * is told REQUEST_CODE_NOT_SUPPORTED; a handler that throws makes a SYSTEM_ERROR answer. A oneway request
 * is never answered.
 */

import assert from 'node:assert/strict';
import net from 'node:net';
import { parseHostPort } from '../../config/address.ts';
import { type Clock, createSystemClock, type TimerHandle } from '../../runtime/clock.ts';
import { FRAME_MAX_BYTES_DEFAULT, RemotingCodecError } from './codec.ts';
import { type ConnectionLog, RemotingConnection, type SendStatus } from './connection.ts';
import {
  createNotSupportedResponse,
  createRequest,
  createResponse,
  isOneway,
  isResponse,
  markResponse,
  type RemotingCommand,
  ResponseCode,
  RpcFlag,
  type SerializeTypeName,
} from './remoting-command.ts';

/** Requests awaiting an answer at once, by default: RocketMQ's clientAsyncSemaphoreValue (65535), rounded. */
export const IN_FLIGHT_MAX_DEFAULT = 65536;

/** How long `connect` waits for the TCP handshake by default, as RocketMQ's connectTimeoutMillis. */
export const CONNECT_TIMEOUT_MS_DEFAULT = 3000;

/** Server-initiated requests handled at once by default; more are answered SYSTEM_BUSY. */
export const SERVER_REQUESTS_MAX_DEFAULT = 1024;

/** How long `close` lets queued writes drain before it drops the socket anyway. */
export const CLOSE_GRACE_MS_DEFAULT = 3000;

/** Longest remark of a SYSTEM_ERROR answer built from a handler's exception. */
const ERROR_REMARK_CHARS_MAX = 1024;

const INT32_MAX = 0x7fff_ffff;

/** Stable codes of RemotingClientError. */
export const RemotingClientErrorCode = {
  /** `connect` was given something other than `host:port`. */
  REMOTING_ADDRESS_INVALID: 'REMOTING_ADDRESS_INVALID',
  /** The TCP connection could not be made (refused, unreachable, or no handshake within connectTimeoutMs). */
  REMOTING_CONNECT_FAILED: 'REMOTING_CONNECT_FAILED',
  /** No response arrived within the request's timeout. */
  REMOTING_TIMEOUT: 'REMOTING_TIMEOUT',
  /** The client was closed, or the connection dropped, before the response arrived. */
  REMOTING_CLOSED: 'REMOTING_CLOSED',
  /** inFlightMax requests already await answers, or the write queue is above writeQueueBytesMax. */
  REMOTING_TOO_MANY_REQUESTS: 'REMOTING_TOO_MANY_REQUESTS',
} as const;

/** A stable code of RemotingClientError. */
export type RemotingClientErrorCode = (typeof RemotingClientErrorCode)[keyof typeof RemotingClientErrorCode];

/** Why a request (or a connection attempt) failed; requests that cannot be encoded get RemotingCodecError. */
export class RemotingClientError extends Error {
  /** Stable machine-readable reason. */
  readonly code: RemotingClientErrorCode;
  override readonly name = 'RemotingClientError';

  constructor(code: RemotingClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Handles one request the server sent. Returns the response to send back (opaque, response flag and
 * serialization are filled in from the request), or undefined to send nothing. May be async.
 */
export type ServerRequestHandler = (
  request: RemotingCommand,
) => RemotingCommand | undefined | Promise<RemotingCommand | undefined>;

/** Settings of a RemotingClient; every one has a default. */
export type RemotingClientOptions = {
  /** Header serialization of every request this client sends; 'JSON' by default, like the Java client. */
  serializeType?: SerializeTypeName;
  /** Most requests awaiting an answer at once. Default 65536. */
  inFlightMax?: number;
  /** Most server-initiated requests being handled at once. Default 1024. */
  serverRequestsMax?: number;
  /** TCP handshake timeout of `connect`. Default 3000. */
  connectTimeoutMs?: number;
  /** How long `close` waits for queued writes to drain. Default 3000. */
  closeGraceMs?: number;
  /** Largest frame sent or accepted, length field included. Default 16 MiB. */
  frameMaxBytes?: number;
  /** Queued bytes above which new requests are refused with REMOTING_TOO_MANY_REQUESTS. Default 16 MiB. */
  writeQueueBytesMax?: number;
  /** Timers for request timeouts; the system clock by default, a ManualClock in tests. */
  clock?: Clock;
  /** Where connection and client events are logged; silent by default. */
  log?: ConnectionLog;
};

type Pending = {
  readonly resolve: (response: RemotingCommand) => void;
  readonly reject: (error: Error) => void;
  readonly timer: TimerHandle;
  readonly code: number;
};

const silentLog: ConnectionLog = () => {};

function positiveInteger(value: number, name: string): number {
  assert(Number.isInteger(value) && value > 0, `${name} must be a positive integer, got ${value}`);
  return value;
}

/** The `host` and `port` net.connect wants, or undefined when `address` is not `host:port`. */
function socketAddressOf(address: string): { host: string; port: number } | undefined {
  const parsed = parseHostPort(address);
  if (parsed === undefined) return undefined;
  // RocketMQ writes IPv6 hosts in brackets; node:net wants them bare.
  const host = parsed.host.startsWith('[') ? parsed.host.slice(1, -1) : parsed.host;
  return { host, port: parsed.port };
}

/** A request with no opaque yet: `invoke` assigns one. `extFields` values must already be strings. */
export function requestOf(code: number, extFields: Record<string, string> = {}, body?: Uint8Array): RemotingCommand {
  return createRequest({ code, opaque: 0, extFields, body });
}

function errorRemark(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.slice(0, ERROR_REMARK_CHARS_MAX);
}

/** A pipelining Remoting client over one connected socket. */
export class RemotingClient {
  /** The `host:port` this client talks to. */
  readonly remoteAddress: string;
  readonly #socket: net.Socket;
  readonly #connection: RemotingConnection;
  readonly #pending = new Map<number, Pending>();
  readonly #serializeType: SerializeTypeName;
  readonly #inFlightMax: number;
  readonly #serverRequestsMax: number;
  readonly #closeGraceMs: number;
  readonly #clock: Clock;
  readonly #log: ConnectionLog;
  #nextOpaque = 0;
  #serverRequestsActive = 0;
  #responsesDropped = 0;
  #closed = false;
  #closeStarted = false;
  #requestHandler: ServerRequestHandler | undefined;
  #closeListener: (() => void) | undefined;
  readonly #socketClosed: Promise<void>;

  /** Connects to `host:port` and resolves once the TCP handshake is done. */
  static connect(address: string, options: RemotingClientOptions = {}): Promise<RemotingClient> {
    const target = socketAddressOf(address);
    if (target === undefined) {
      return Promise.reject(new RemotingClientError('REMOTING_ADDRESS_INVALID', `not a host:port address: ${address}`));
    }
    const clock = options.clock ?? createSystemClock();
    const connectTimeoutMs = positiveInteger(options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT, 'connectTimeoutMs');
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: target.host, port: target.port, noDelay: true, keepAlive: true });
      const fail = (message: string, cause?: unknown): void => {
        clock.clearTimer(timer);
        socket.destroy();
        reject(new RemotingClientError('REMOTING_CONNECT_FAILED', `${address}: ${message}`, { cause }));
      };
      const onError = (error: Error): void => fail(error.message, error);
      const timer = clock.setTimer(() => fail(`no connection within ${connectTimeoutMs} ms`), connectTimeoutMs);
      socket.once('error', onError);
      socket.once('connect', () => {
        clock.clearTimer(timer);
        socket.off('error', onError);
        resolve(new RemotingClient(socket, address, { ...options, clock }));
      });
    });
  }

  /** Wraps a connected socket; most callers use `RemotingClient.connect`. */
  constructor(socket: net.Socket, remoteAddress: string, options: RemotingClientOptions = {}) {
    this.remoteAddress = remoteAddress;
    this.#socket = socket;
    this.#serializeType = options.serializeType ?? 'JSON';
    assert(this.#serializeType === 'JSON' || this.#serializeType === 'ROCKETMQ', 'serializeType is JSON or ROCKETMQ');
    this.#inFlightMax = positiveInteger(options.inFlightMax ?? IN_FLIGHT_MAX_DEFAULT, 'inFlightMax');
    // Opaques are int32 and each waiting request holds one, so more than 2^31 could never be told apart.
    assert(this.#inFlightMax <= INT32_MAX, 'inFlightMax must be below 2^31');
    this.#serverRequestsMax = positiveInteger(options.serverRequestsMax ?? SERVER_REQUESTS_MAX_DEFAULT, 'serverRequestsMax');
    this.#closeGraceMs = positiveInteger(options.closeGraceMs ?? CLOSE_GRACE_MS_DEFAULT, 'closeGraceMs');
    this.#clock = options.clock ?? createSystemClock();
    this.#log = options.log ?? silentLog;
    this.#socketClosed = new Promise((resolve) => {
      if (socket.destroyed) resolve();
      else socket.once('close', () => resolve());
    });
    this.#connection = new RemotingConnection(socket, {
      onRequest: (request) => this.#onServerRequest(request),
      onResponse: (response) => this.#onResponse(response),
      onClose: () => this.#shutdown(`connection to ${this.remoteAddress} closed`),
      log: this.#log,
      frameMaxBytes: options.frameMaxBytes ?? FRAME_MAX_BYTES_DEFAULT,
      writeQueueBytesMax: options.writeQueueBytesMax ?? FRAME_MAX_BYTES_DEFAULT,
    });
    if (this.#connection.closed) this.#shutdown(`connection to ${this.remoteAddress} closed`);
  }

  /** Whether the client is closed: requests are refused with REMOTING_CLOSED. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Requests sent and awaiting their response. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Responses that matched no waiting request (most often: they came after the timeout). */
  get responsesDropped(): number {
    return this.#responsesDropped;
  }

  /**
   * Sends a request and resolves with its response, whatever the response code. The request is sent with
   * a fresh opaque and this client's serialization; the caller's object is not changed. Rejects with
   * RemotingClientError (REMOTING_TIMEOUT, REMOTING_CLOSED, REMOTING_TOO_MANY_REQUESTS), or with
   * RemotingCodecError when the request cannot be encoded. A response passed as the request, or a timeout
   * that is not a positive integer, is a programmer error and throws at once.
   */
  invoke(request: RemotingCommand, timeoutMs: number): Promise<RemotingCommand> {
    assert(!isResponse(request), 'invoke takes a request, not a response');
    positiveInteger(timeoutMs, 'timeoutMs');
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const opaque = this.#allocateOpaque();
    // An invoke waits for an answer, so a oneway bit left on the request would make it time out.
    const cmd = { ...request, opaque, flag: request.flag & ~RpcFlag.ONEWAY, serializeType: this.#serializeType };
    const failure = this.#send(cmd);
    if (failure !== undefined) return Promise.reject(failure);
    // Responses are read in later event-loop turns, so registering after the write cannot miss one.
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimer(() => this.#onTimeout(opaque, timeoutMs), timeoutMs);
      this.#pending.set(opaque, { resolve, reject, timer, code: request.code });
    });
  }

  /**
   * Sends a request with the oneway flag set; the server sends no answer. Throws RemotingClientError
   * (REMOTING_CLOSED, REMOTING_TOO_MANY_REQUESTS) or RemotingCodecError when it cannot be sent.
   */
  invokeOneway(request: RemotingCommand): void {
    assert(!isResponse(request), 'invokeOneway takes a request, not a response');
    const refusal = this.#refusal();
    if (refusal !== undefined) throw refusal;
    const opaque = this.#allocateOpaque();
    const failure = this.#send({ ...request, opaque, flag: request.flag | RpcFlag.ONEWAY, serializeType: this.#serializeType });
    if (failure !== undefined) throw failure;
  }

  /** Sets the handler of server-initiated requests, replacing any earlier one. */
  onRequest(handler: ServerRequestHandler): void {
    this.#requestHandler = handler;
  }

  /** Sets the callback run once when the client closes, by `close` or because the connection dropped. */
  onClose(listener: () => void): void {
    this.#closeListener = listener;
    if (this.#closed) queueMicrotask(listener);
  }

  /**
   * Closes the client: waiting requests are rejected with REMOTING_CLOSED at once, requests already
   * written are flushed, then the socket is closed. Resolves when it is.
   */
  close(): Promise<void> {
    this.#shutdown(`client for ${this.remoteAddress} closed`);
    if (!this.#closeStarted && !this.#socket.destroyed) {
      this.#closeStarted = true;
      const grace = this.#clock.setTimer(() => this.#socket.destroy(), this.#closeGraceMs);
      this.#socket.once('close', () => this.#clock.clearTimer(grace));
      // end() flushes what was written, then sends FIN; there is nothing left to read, so do not wait
      // for the server's FIN before letting go of the socket.
      this.#socket.once('finish', () => this.#socket.destroy());
      this.#connection.close();
    }
    return this.#socketClosed;
  }

  /** The error a new request gets right now, if any. */
  #refusal(): RemotingClientError | undefined {
    if (this.#closed || this.#connection.closed) {
      return new RemotingClientError('REMOTING_CLOSED', `client for ${this.remoteAddress} is closed`);
    }
    if (this.#pending.size >= this.#inFlightMax) {
      return new RemotingClientError(
        'REMOTING_TOO_MANY_REQUESTS',
        `${this.#pending.size} requests to ${this.remoteAddress} already await answers (inFlightMax ${this.#inFlightMax})`,
      );
    }
    if (this.#connection.overloaded) {
      return new RemotingClientError(
        'REMOTING_TOO_MANY_REQUESTS',
        `${this.#connection.queuedBytes} bytes to ${this.remoteAddress} are still queued for writing`,
      );
    }
    return undefined;
  }

  /** The next int32 opaque that no waiting request holds. */
  #allocateOpaque(): number {
    // At most pending.size opaques are taken, so this loop ends within pending.size + 1 steps.
    for (let tries = 0; tries <= this.#pending.size; tries++) {
      const opaque = this.#nextOpaque;
      this.#nextOpaque = (opaque + 1) | 0;
      if (!this.#pending.has(opaque)) return opaque;
    }
    assert.fail('no free opaque although fewer than 2^31 requests are pending');
  }

  /** Writes a command; returns the error to report if it was not written. */
  #send(cmd: RemotingCommand): Error | undefined {
    let status: SendStatus;
    try {
      status = this.#connection.send(cmd);
    } catch (error) {
      if (error instanceof RemotingCodecError) return error;
      throw error;
    }
    if (status === 'closed') return new RemotingClientError('REMOTING_CLOSED', `client for ${this.remoteAddress} is closed`);
    return undefined;
  }

  #onTimeout(opaque: number, timeoutMs: number): void {
    const pending = this.#pending.get(opaque);
    if (pending === undefined) return;
    this.#pending.delete(opaque);
    pending.reject(
      new RemotingClientError(
        'REMOTING_TIMEOUT',
        `no response from ${this.remoteAddress} to request code ${pending.code} (opaque ${opaque}) within ${timeoutMs} ms`,
      ),
    );
  }

  #onResponse(response: RemotingCommand): void {
    const pending = this.#pending.get(response.opaque);
    if (pending === undefined) {
      this.#responsesDropped += 1;
      this.#log('debug', 'remoting response matches no waiting request, dropped', {
        remote: this.remoteAddress,
        code: response.code,
        opaque: response.opaque,
      });
      return;
    }
    this.#pending.delete(response.opaque);
    this.#clock.clearTimer(pending.timer);
    pending.resolve(response);
  }

  #onServerRequest(request: RemotingCommand): void {
    const handler = this.#requestHandler;
    if (handler === undefined) {
      this.#answer(request, createNotSupportedResponse(request));
      return;
    }
    if (this.#serverRequestsActive >= this.#serverRequestsMax) {
      this.#answer(request, createResponse(request, ResponseCode.SYSTEM_BUSY, '[OVERLOAD]system busy, start flow control for a while'));
      return;
    }
    let result: ReturnType<ServerRequestHandler>;
    try {
      result = handler(request);
    } catch (error) {
      this.#answerFailure(request, error);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#answer(request, result);
      return;
    }
    this.#serverRequestsActive += 1;
    result.then(
      (response) => {
        this.#serverRequestsActive -= 1;
        this.#answer(request, response);
      },
      (error: unknown) => {
        this.#serverRequestsActive -= 1;
        this.#answerFailure(request, error);
      },
    );
  }

  #answerFailure(request: RemotingCommand, error: unknown): void {
    this.#log('warn', 'remoting server request handler failed', {
      remote: this.remoteAddress,
      code: request.code,
      opaque: request.opaque,
      error,
    });
    this.#answer(request, createResponse(request, ResponseCode.SYSTEM_ERROR, errorRemark(error)));
  }

  /** Sends a handler's response back, stamped with the request's opaque and serialization. */
  #answer(request: RemotingCommand, response: RemotingCommand | undefined): void {
    if (response === undefined || isOneway(request) || this.#closed) return;
    const stamped = {
      ...response,
      opaque: request.opaque,
      flag: markResponse(response.flag),
      serializeType: request.serializeType,
    };
    const failure = this.#send(stamped);
    if (failure instanceof RemotingCodecError) {
      // The handler built something the wire cannot carry; the server still deserves an answer.
      this.#log('warn', 'remoting response to server request could not be encoded', {
        remote: this.remoteAddress,
        code: request.code,
        reason: failure.message,
      });
      this.#send(createResponse(request, ResponseCode.SYSTEM_ERROR, errorRemark(failure)));
    }
  }

  /** Marks the client closed, rejects every waiting request and tells the close listener, once. */
  #shutdown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const waiting = [...this.#pending.values()];
    this.#pending.clear();
    for (const pending of waiting) {
      this.#clock.clearTimer(pending.timer);
      pending.reject(new RemotingClientError('REMOTING_CLOSED', `${reason} before request code ${pending.code} was answered`));
    }
    this.#log('debug', 'remoting client closed', { remote: this.remoteAddress, reason, rejected: waiting.length });
    const listener = this.#closeListener;
    if (listener === undefined) return;
    try {
      listener();
    } catch (error) {
      // The listener runs inside a socket event; a throw there would take the process down.
      this.#log('error', 'remoting client close listener threw', { remote: this.remoteAddress, error });
    }
  }
}
