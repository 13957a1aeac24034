/**
 * One accepted Remoting TCP connection: frames in, commands out, and back again.
 *
 * Every decoded request is handed to the handler as soon as its frame is complete; the handler must not
 * block, and responses may be sent in any order (clients match them by opaque), so one slow request
 * never holds up the others on the same connection. Writes never block either: `send` reports how full
 * the socket's write queue is, and above `writeQueueBytesMax` the owner should answer new requests with
 * SYSTEM_BUSY instead of doing the work, as RocketMQ's flow control does. Bytes that cannot be decoded
 * close the connection, as RocketMQ's NettyDecoder does: framing is lost, so nothing after them can be
 * trusted.
 */

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { encodeCommand, FRAME_MAX_BYTES_DEFAULT, FrameDecoder, RemotingCodecError } from './codec.ts';
import { createResponse, isResponse, ResponseCode, type RemotingCommand } from './remoting-command.ts';

/** Severity of a connection log line. */
export type ConnectionLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Injected logger, so tests and the simulator can capture lines; adapt pino with `(l, m, f) => log[l](f, m)`. */
export type ConnectionLog = (level: ConnectionLogLevel, message: string, fields: Record<string, unknown>) => void;

/** Receives each request (and, if no response handler is set, nothing else). Must not block. */
export type CommandHandler = (cmd: RemotingCommand, conn: RemotingConnection) => void;

/** What a connection needs from its owner. */
export type RemotingConnectionOptions = {
  /** Called for every request frame, in arrival order, without waiting for earlier ones to be answered. */
  onRequest: CommandHandler;
  /** Called for response frames (answers to requests this side sent); dropped with a debug line if absent. */
  onResponse?: CommandHandler;
  /** Called once when the socket has closed, for whatever reason. */
  onClose?: (conn: RemotingConnection) => void;
  /** Called when a write queue that had filled up has drained, so paused work can resume. */
  onDrain?: (conn: RemotingConnection) => void;
  log: ConnectionLog;
  /** Largest frame accepted or sent, including the length field. Default 16 MiB, as RocketMQ. */
  frameMaxBytes?: number;
  /** Bytes queued for writing above which the connection reports itself overloaded. Default 16 MiB. */
  writeQueueBytesMax?: number;
};

/**
 * Outcome of `send`: `sent` went to the kernel; `queued` waits in the socket's buffer (above its high
 * water mark); `overloaded` is queued too, but the queue is above writeQueueBytesMax, so new requests
 * should get SYSTEM_BUSY until `onDrain`; `closed` was dropped because the connection is closed.
 */
export type SendStatus = 'sent' | 'queued' | 'overloaded' | 'closed';

/** An answer held until the end of its tick (`sendGuarded`). */
type GuardedAnswer = { readonly cmd: RemotingCommand; readonly guard: (cmd: RemotingCommand) => RemotingCommand };

/** A server-side Remoting connection wrapping one net.Socket. */
export class RemotingConnection {
  /** `address:port` of the peer, for logs. */
  readonly remoteAddress: string;
  /** `address:port` this side of the connection. */
  readonly localAddress: string;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #options: RemotingConnectionOptions;
  readonly #frameMaxBytes: number;
  readonly #writeQueueBytesMax: number;
  #closed = false;
  #corked = false;
  /** This tick's guarded answers (sendGuarded), checked and encoded just before the tick's writev. */
  #guarded: GuardedAnswer[] = [];
  readonly #uncork = (): void => {
    this.#corked = false;
    if (this.#guarded.length > 0) this.#writeGuarded();
    this.#socket.uncork();
  };

  constructor(socket: Socket, options: RemotingConnectionOptions) {
    this.#frameMaxBytes = options.frameMaxBytes ?? FRAME_MAX_BYTES_DEFAULT;
    this.#writeQueueBytesMax = options.writeQueueBytesMax ?? FRAME_MAX_BYTES_DEFAULT;
    assert(Number.isInteger(this.#writeQueueBytesMax) && this.#writeQueueBytesMax > 0, 'writeQueueBytesMax > 0');
    this.#socket = socket;
    this.#options = options;
    this.#decoder = new FrameDecoder({ frameMaxBytes: this.#frameMaxBytes });
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.localAddress = `${socket.localAddress ?? '?'}:${socket.localPort ?? '?'}`;
    // Responses are small and latency-bound; RocketMQ's server also turns Nagle off.
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#options.onDrain?.(this));
    socket.on('error', (error) => {
      this.#options.log('warn', 'remoting socket error', { remote: this.remoteAddress, error });
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#options.onClose?.(this);
    });
    if (socket.destroyed) this.#closed = true;
  }

  /** Whether the connection has closed; sends are then dropped. */
  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  /** Bytes written but not yet handed to the kernel. */
  get queuedBytes(): number {
    return this.#socket.writableLength;
  }

  /** Whether the socket is above its high water mark and waiting for 'drain'. */
  get needsDrain(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /** Whether queued writes exceed writeQueueBytesMax: answer new requests with SYSTEM_BUSY until drained. */
  get overloaded(): boolean {
    return this.queuedBytes > this.#writeQueueBytesMax;
  }

  /**
   * Encodes and writes one command. Throws RemotingCodecError if the command cannot be encoded or is
   * larger than frameMaxBytes (the peer would drop the connection); nothing is written in that case.
   */
  send(cmd: RemotingCommand): SendStatus {
    if (this.closed) return 'closed';
    const frame = encodeCommand(cmd, { frameMaxBytes: this.#frameMaxBytes });
    this.#cork();
    const flushed = this.#socket.write(frame);
    if (this.overloaded) return 'overloaded';
    return flushed ? 'sent' : 'queued';
  }

  /**
   * `send`, except that a command that cannot be encoded (too large to frame) is logged and replaced by
   * a SYSTEM_ERROR answer, so the peer gets an answer instead of a dropped connection.
   */
  sendOrSystemError(cmd: RemotingCommand): SendStatus {
    if (this.closed) return 'closed';
    this.#cork();
    const flushed = this.#socket.write(this.#encodeOrSystemError(cmd));
    if (this.overloaded) return 'overloaded';
    return flushed ? 'sent' : 'queued';
  }

  /**
   * Writes an answer that must still be valid when it leaves (a stored put's answer under a master
   * lease): `guard` runs at the end of the tick, just before the tick's writev, and what it returns is
   * encoded and written. A frozen process (SIGSTOP, a VM pause) that resumes after the check has then
   * at most that one writev left to make, instead of every answer the turn had checked before it.
   * An answer that cannot be encoded is logged and replaced by SYSTEM_ERROR, as in sendOrSystemError.
   */
  sendGuarded(cmd: RemotingCommand, guard: (cmd: RemotingCommand) => RemotingCommand): void {
    if (this.closed) return;
    this.#cork();
    this.#guarded.push({ cmd, guard });
  }

  /** Frames written in one tick (a turn's answers) leave in one writev instead of one syscall each. */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    process.nextTick(this.#uncork);
  }

  #writeGuarded(): void {
    const guarded = this.#guarded;
    this.#guarded = [];
    if (this.closed) return;
    for (const { cmd, guard } of guarded) this.#socket.write(this.#encodeOrSystemError(guard(cmd)));
  }

  #encodeOrSystemError(cmd: RemotingCommand): Buffer {
    try {
      return encodeCommand(cmd, { frameMaxBytes: this.#frameMaxBytes });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#options.log('error', 'remoting answer could not be encoded', { remote: this.remoteAddress, code: cmd.code, reason });
      return encodeCommand(createResponse(cmd, ResponseCode.SYSTEM_ERROR, `answer could not be encoded: ${reason}`), { frameMaxBytes: this.#frameMaxBytes });
    }
  }

  /** Closes gracefully: queued writes are flushed, then the socket is ended. */
  close(): void {
    if (this.closed) return;
    this.#closed = true;
    this.#socket.end();
  }

  /** Drops the socket at once, discarding queued writes. */
  #abort(): void {
    this.#closed = true;
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    let commands: RemotingCommand[];
    try {
      commands = this.#decoder.push(chunk);
    } catch (error) {
      assert(error instanceof RemotingCodecError, 'FrameDecoder threw a non-codec error');
      this.#failCodec(error);
      return;
    }
    // Frames that arrived whole before any undecodable bytes are still served, whatever the chunking.
    for (const cmd of commands) {
      if (this.#closed) return;
      this.#dispatch(cmd);
    }
    const failure = this.#decoder.failure;
    if (failure !== undefined && !this.#closed) this.#failCodec(failure);
  }

  #failCodec(error: RemotingCodecError): void {
    this.#options.log('warn', 'remoting frame undecodable, closing connection', {
      remote: this.remoteAddress,
      code: error.code,
      reason: error.message,
    });
    this.#abort();
  }

  #dispatch(cmd: RemotingCommand): void {
    const handler = isResponse(cmd) ? this.#options.onResponse : this.#options.onRequest;
    if (handler === undefined) {
      this.#options.log('debug', 'remoting response with no response handler dropped', {
        remote: this.remoteAddress,
        code: cmd.code,
        opaque: cmd.opaque,
      });
      return;
    }
    try {
      handler(cmd, this);
    } catch (error) {
      // Handlers are supposed to turn every expected failure into a response; a throw is a bug, and the
      // state of this connection's conversation is unknown after it.
      this.#options.log('error', 'remoting handler threw, closing connection', {
        remote: this.remoteAddress,
        code: cmd.code,
        opaque: cmd.opaque,
        error,
      });
      this.#abort();
    }
  }
}
