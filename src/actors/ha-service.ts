/**
 * The master side of RocketMQ's default HA (DefaultHAService's AcceptSocketService plus one
 * DefaultHAConnection per slave): an actor owning a TCP server on haListenPort that streams the
 * CommitLog to every slave connected to it, in ha-protocol.ts's frames.
 *
 * Per connection: the slave's first offset report says where to start (an empty slave, offset 0,
 * starts at the master's oldest file); later reports are acknowledgements, told to the commit-log-writer
 * as `haSlaveAck` (it decides who is in sync and answers SYNC_MASTER puts). The service asks the writer
 * `haReadRaw` from where the stream stands, at most `readBytesMax` bytes (never across a file end), and
 * sends what comes back as consecutive frames of at most haTransferBatchSize bytes each, back to back in
 * one corked write: so one trip through the writer's mailbox, which queues behind the sends, carries many
 * frames, and a slave keeps up with a busy master (one 32 KiB frame per trip could not). When nothing is
 * new the ask waits in the writer (a long poll) up to one heartbeat interval. One read is in flight per
 * connection; it asks for no more than the room left under `outstandingBytesMax` unsent bytes in the
 * socket (one frame's worth at least, so a connection queues at most outstandingBytesMax +
 * haTransferBatchSize), and with no room the next read waits for the socket's 'drain'. A heartbeat
 * frame (body size 0, the next offset) goes out
 * after haSendHeartbeatInterval ms without a frame; a slave silent for haHousekeepingInterval ms is
 * dropped. A dropped connection is told to the writer as `haSlaveGone`; the slave reconnects and resyncs.
 *
 * Slave identity. A slave that knows its controller-assigned brokerId opens with a handshake
 * (ha-protocol.ts, after RocketMQ 5's AutoSwitch HA): its brokerId and whether it is an async learner are
 * kept per connection and ride on every `haSlaveAck`, so the writer's `haState` can name each slave by
 * brokerId for the SyncStateSet. A slave without one is known only as `ip:port#n`, as before.
 */
import type { BoundAnswer } from './remoting-acceptor.ts';
import net from 'node:net';
import type { ActorContext, ActorRef, ActorSpawner, Behavior, DeferredReply, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { HA_DEFAULTS, SlaveStreamDecoder, encodeTransferHeader } from '../storage/ha-protocol.ts';
import type { HaReadResult } from '../storage/message-store.ts';
import type { CommitLogWriterMessage } from './commit-log-writer.ts';

/** Defaults of the bounds that have no RocketMQ config key. */
export const HA_SERVICE_DEFAULTS = {
  /** Slave connections at most (RocketMQ has no bound; a master rarely has more than two). */
  connectionsMax: 16,
  /** Bytes one `haReadRaw` asks the writer for at most (sent as several frames); at least one frame's worth. */
  readBytesMax: 4 * 1024 * 1024,
  /** Unsent bytes a connection's socket may hold before reads wait for 'drain'. */
  outstandingBytesMax: 4 * 1024 * 1024,
  /** Extra time an ask to the writer gets beyond its long-poll wait. */
  askMarginMs: 5_000,
} as const;

/** Start arguments (config keys keep RocketMQ's names, with units added). */
export type HaServiceArgs = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  /** Address to listen on; default all interfaces. */
  readonly host?: string;
  /** haListenPort; 0 picks an ephemeral port (ask `port`). */
  readonly haListenPort: number;
  readonly haTransferBatchSize?: number;
  readonly haSendHeartbeatIntervalMs?: number;
  readonly haHousekeepingIntervalMs?: number;
  readonly connectionsMax?: number;
  readonly readBytesMax?: number;
  readonly outstandingBytesMax?: number;
};

/** What `port` answers: the bound port or why it could not bind. */

/** One slave connection as `connections` shows it. */
export type HaConnectionInfo = {
  readonly slaveId: string;
  /** From the slave's handshake; undefined for a slave that sent none. */
  readonly brokerId: number | undefined;
  readonly asyncLearner: boolean;
  readonly ackedOffset: number;
  readonly nextTransferOffset: number;
  readonly unsentBytes: number;
};

/** Messages: asks from the broker and tests, and the service's own socket and timer events. */
export type HaServiceMessage =
  | { readonly type: 'port' }
  | { readonly type: 'connections' }
  | { readonly type: 'bound'; readonly port: number | undefined; readonly error: string | undefined }
  | { readonly type: 'report'; readonly connectionId: number }
  | { readonly type: 'drained'; readonly connectionId: number }
  | { readonly type: 'closed'; readonly connectionId: number }
  | { readonly type: 'readDone'; readonly connectionId: number; readonly result: PipeResult<HaReadResult> }
  | { readonly type: 'housekeeping' };

type Connection = {
  readonly id: number;
  readonly slaveId: string;
  readonly socket: net.Socket;
  readonly decoder: SlaveStreamDecoder;
  /** The slave's brokerId from its handshake; undefined without one. */
  brokerId: number | undefined;
  asyncLearner: boolean;
  /** Newest report not yet handled (set by the socket callback). */
  reportedOffset: number | null;
  ackedOffset: number;
  /** Where the stream continues; -1 until the first report. */
  nextTransferOffset: number;
  reading: boolean;
  waitingDrain: boolean;
  lastReadMs: number;
  lastWriteMs: number;
};

type Settings = Required<Omit<HaServiceArgs, 'writer' | 'host' | 'haListenPort'>>;

type State = {
  readonly args: HaServiceArgs;
  readonly settings: Settings;
  readonly server: net.Server;
  readonly connections: Map<number, Connection>;
  bound: BoundAnswer | undefined;
  readonly waiting: DeferredReply[];
};

type Ctx = ActorContext<HaServiceMessage>;

const TIMER_HOUSEKEEPING = 'housekeeping';
/** Asks for the port waiting for the bind at most. */
const PORT_WAITERS_MAX = 64;

/** Tells the service about itself; a timer carries it when the mailbox is full, so it is never lost. */
function tellSelf(ctx: Ctx, message: HaServiceMessage, key: string): void {
  if (!ctx.tell(ctx.self, message)) ctx.timers.startSingle(key, message, 0);
}

function settingsOf(args: HaServiceArgs): Settings {
  const settings: Settings = {
    haTransferBatchSize: args.haTransferBatchSize ?? HA_DEFAULTS.haTransferBatchSize,
    haSendHeartbeatIntervalMs: args.haSendHeartbeatIntervalMs ?? HA_DEFAULTS.haSendHeartbeatInterval,
    haHousekeepingIntervalMs: args.haHousekeepingIntervalMs ?? HA_DEFAULTS.haHousekeepingInterval,
    connectionsMax: args.connectionsMax ?? HA_SERVICE_DEFAULTS.connectionsMax,
    readBytesMax: args.readBytesMax ?? HA_SERVICE_DEFAULTS.readBytesMax,
    outstandingBytesMax: args.outstandingBytesMax ?? HA_SERVICE_DEFAULTS.outstandingBytesMax,
  };
  for (const [key, value] of Object.entries(settings)) assert(Number.isSafeInteger(value) && value > 0, `${key} is a positive integer`);
  assert(Number.isSafeInteger(args.haListenPort) && args.haListenPort >= 0 && args.haListenPort <= 65_535, () => `bad haListenPort ${args.haListenPort}`);
  return settings;
}

function accept(state: State, socket: net.Socket, id: number, ctx: Ctx): void {
  if (state.connections.size >= state.settings.connectionsMax) {
    ctx.log.warn({ remote: socket.remoteAddress, connectionsMax: state.settings.connectionsMax }, 'slave connection refused: limit reached');
    socket.destroy();
    return;
  }
  const nowMs = ctx.clock.nowMs();
  const connection: Connection = {
    id,
    slaveId: `${socket.remoteAddress}:${socket.remotePort}#${id}`,
    socket,
    decoder: new SlaveStreamDecoder(),
    brokerId: undefined,
    asyncLearner: false,
    reportedOffset: null,
    ackedOffset: -1,
    nextTransferOffset: -1,
    reading: false,
    waitingDrain: false,
    lastReadMs: nowMs,
    lastWriteMs: nowMs,
  };
  state.connections.set(id, connection);
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => {
    try {
      const { handshake, offset } = connection.decoder.push(chunk);
      if (handshake !== null) {
        // Set before any report of this connection is handled, so every ack carries it.
        connection.brokerId = handshake.brokerId;
        connection.asyncLearner = handshake.asyncLearner;
        ctx.log.info({ slaveId: connection.slaveId, brokerId: handshake.brokerId, asyncLearner: handshake.asyncLearner }, 'slave handshake');
      }
      if (offset === null) return;
      connection.reportedOffset = offset;
      tellSelf(ctx, { type: 'report', connectionId: id }, `report-${id}`);
    } catch (error) {
      ctx.log.warn({ slaveId: connection.slaveId, err: describeError(error) }, 'bad offset report; dropping the slave');
      socket.destroy();
    }
  });
  socket.on('drain', () => tellSelf(ctx, { type: 'drained', connectionId: id }, `drained-${id}`));
  socket.on('error', (error) => ctx.log.info({ slaveId: connection.slaveId, err: describeError(error) }, 'slave connection error'));
  socket.on('close', () => tellSelf(ctx, { type: 'closed', connectionId: id }, `closed-${id}`));
  ctx.log.info({ slaveId: connection.slaveId }, 'slave connected');
}

function onReport(state: State, connection: Connection, ctx: Ctx): void {
  const offset = connection.reportedOffset;
  if (offset === null) return;
  connection.reportedOffset = null;
  connection.lastReadMs = ctx.clock.nowMs();
  connection.ackedOffset = offset;
  const ack: CommitLogWriterMessage =
    connection.brokerId === undefined
      ? { type: 'haSlaveAck', slaveId: connection.slaveId, offset }
      : { type: 'haSlaveAck', slaveId: connection.slaveId, offset, brokerId: connection.brokerId, asyncLearner: connection.asyncLearner };
  ctx.tell(state.args.writer, ack);
  if (connection.nextTransferOffset < 0) {
    connection.nextTransferOffset = offset;
    ctx.log.info({ slaveId: connection.slaveId, offset }, 'slave starts replication');
  }
  pump(state, connection, ctx);
}

/** Starts the next read for a connection unless one is in flight or the socket is full. */
function pump(state: State, connection: Connection, ctx: Ctx): void {
  if (connection.reading || connection.nextTransferOffset < 0 || connection.socket.destroyed) return;
  if (connection.socket.writableLength >= state.settings.outstandingBytesMax) {
    connection.waitingDrain = true;
    return;
  }
  connection.reading = true;
  const waitMs = state.settings.haSendHeartbeatIntervalMs;
  const room = state.settings.outstandingBytesMax - connection.socket.writableLength;
  const maxBytes = Math.max(Math.min(state.settings.readBytesMax, room), state.settings.haTransferBatchSize);
  const read: CommitLogWriterMessage = { type: 'haReadRaw', fromOffset: connection.nextTransferOffset, maxBytes, waitMs };
  const id = connection.id;
  ctx.pipeToSelf(ctx.ask<CommitLogWriterMessage, HaReadResult>(state.args.writer, read, waitMs + HA_SERVICE_DEFAULTS.askMarginMs), (result) => ({ type: 'readDone', connectionId: id, result }));
}

function onReadDone(state: State, connection: Connection, result: PipeResult<HaReadResult>, ctx: Ctx): void {
  connection.reading = false;
  if (connection.socket.destroyed) return;
  if (!result.ok) {
    ctx.log.warn({ slaveId: connection.slaveId, err: describeError(result.error) }, 'commit log read failed; dropping the slave');
    connection.socket.destroy();
    return;
  }
  const answer = result.value;
  if (!answer.ok) {
    ctx.log.warn({ slaveId: connection.slaveId, code: answer.code, remark: answer.remark }, 'cannot serve the slave; dropping it');
    connection.socket.destroy();
    return;
  }
  if (answer.bytes.length > 0) {
    // The writer may move an empty slave (offset 0) up to its oldest file; otherwise the stream is contiguous.
    assert(answer.physicalOffset === connection.nextTransferOffset || connection.nextTransferOffset === 0, 'the stream continues where it stood');
    sendFrames(connection.socket, answer.physicalOffset, answer.bytes, state.settings.haTransferBatchSize);
    connection.nextTransferOffset = answer.physicalOffset + answer.bytes.length;
    connection.lastWriteMs = ctx.clock.nowMs();
  }
  pump(state, connection, ctx);
}

/** What sendFrames needs of a socket. */
export type FrameSink = Pick<net.Socket, 'cork' | 'uncork' | 'write'>;

/**
 * Writes `bytes` (log bytes from `physicalOffset`) as consecutive frames of at most `frameMaxBytes`,
 * in one corked write; returns how many frames went out. Bodies are views of `bytes`, not copies.
 */
export function sendFrames(socket: FrameSink, physicalOffset: number, bytes: Uint8Array, frameMaxBytes: number): number {
  assert(Number.isSafeInteger(frameMaxBytes) && frameMaxBytes > 0, () => `bad frame bound ${frameMaxBytes}`);
  assert(bytes.length > 0, 'frames carry bytes');
  let frames = 0;
  socket.cork();
  // Bounded by bytes.length / frameMaxBytes + 1 passes.
  for (let at = 0; at < bytes.length; at += frameMaxBytes) {
    const body = bytes.subarray(at, Math.min(bytes.length, at + frameMaxBytes));
    socket.write(encodeTransferHeader(physicalOffset + at, body.length));
    socket.write(body);
    frames++;
  }
  socket.uncork();
  return frames;
}

/** Heartbeats idle connections and drops slaves silent for haHousekeepingInterval. */
function housekeeping(state: State, ctx: Ctx): void {
  const nowMs = ctx.clock.nowMs();
  for (const connection of state.connections.values()) {
    if (nowMs - connection.lastReadMs > state.settings.haHousekeepingIntervalMs) {
      ctx.log.warn({ slaveId: connection.slaveId }, 'slave silent past haHousekeepingInterval; dropping it');
      connection.socket.destroy();
      continue;
    }
    if (connection.waitingDrain && connection.socket.writableLength < state.settings.outstandingBytesMax) {
      // A socket that drained below the bound without a 'drain' event (its buffer never passed the
      // stream's highWaterMark) would otherwise wait forever.
      connection.waitingDrain = false;
      pump(state, connection, ctx);
    }
    if (connection.nextTransferOffset >= 0 && nowMs - connection.lastWriteMs >= state.settings.haSendHeartbeatIntervalMs) {
      connection.socket.write(encodeTransferHeader(connection.nextTransferOffset, 0));
      connection.lastWriteMs = nowMs;
    }
  }
}

function listen(args: HaServiceArgs, server: net.Server, ctx: Ctx): void {
  const host = args.host ?? '0.0.0.0';
  const listening = new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: args.haListenPort }, () => {
      server.off('error', reject);
      server.on('error', (error) => ctx.log.error({ err: describeError(error) }, 'HA server error'));
      resolve((server.address() as net.AddressInfo).port);
    });
  });
  ctx.pipeToSelf(listening, (result) =>
    result.ok
      ? { type: 'bound', port: result.value, error: undefined }
      : { type: 'bound', port: undefined, error: `HA service cannot listen on ${host}:${args.haListenPort}: ${describeError(result.error)}` },
  );
}

function receive(state: State, message: HaServiceMessage, ctx: Ctx): void {
  const connectionOf = (id: number): Connection | undefined => state.connections.get(id);
  switch (message.type) {
    case 'port':
      if (state.bound !== undefined) return ctx.reply(state.bound);
      if (state.waiting.length >= PORT_WAITERS_MAX) return ctx.reply({ error: 'too many port requests' } satisfies BoundAnswer);
      state.waiting.push(ctx.deferReply()!);
      return;
    case 'bound':
      state.bound = message.port !== undefined ? { port: message.port } : { error: message.error ?? 'unknown listen error' };
      if (message.port === undefined) ctx.log.error({ error: message.error }, 'HA service is not listening');
      for (const reply of state.waiting.splice(0)) reply.resolve(state.bound);
      return;
    case 'connections': {
      const infos: HaConnectionInfo[] = [...state.connections.values()].map((connection) => ({
        slaveId: connection.slaveId,
        brokerId: connection.brokerId,
        asyncLearner: connection.asyncLearner,
        ackedOffset: connection.ackedOffset,
        nextTransferOffset: connection.nextTransferOffset,
        unsentBytes: connection.socket.writableLength,
      }));
      return ctx.reply(infos);
    }
    case 'report': {
      const connection = connectionOf(message.connectionId);
      if (connection !== undefined) onReport(state, connection, ctx);
      return;
    }
    case 'drained': {
      const connection = connectionOf(message.connectionId);
      if (connection === undefined || !connection.waitingDrain) return;
      connection.waitingDrain = false;
      return pump(state, connection, ctx);
    }
    case 'readDone': {
      const connection = connectionOf(message.connectionId);
      if (connection !== undefined) onReadDone(state, connection, message.result, ctx);
      return;
    }
    case 'closed': {
      const connection = connectionOf(message.connectionId);
      if (connection === undefined) return;
      state.connections.delete(message.connectionId);
      ctx.tell(state.args.writer, { type: 'haSlaveGone', slaveId: connection.slaveId });
      ctx.log.info({ slaveId: connection.slaveId, ackedOffset: connection.ackedOffset }, 'slave disconnected');
      return;
    }
    case 'housekeeping':
      // Reports a full mailbox kept from being told are picked up here.
      for (const connection of state.connections.values()) if (connection.reportedOffset !== null) onReport(state, connection, ctx);
      return housekeeping(state, ctx);
    default:
      return assertNever(message, 'HA service message');
  }
}

/** The HA service behavior. */
export const haService: Behavior<State, HaServiceMessage, HaServiceArgs> = {
  init(args, ctx) {
    const settings = settingsOf(args);
    const connections = new Map<number, Connection>();
    let nextId = 1;
    const state: State = { args, settings, server: net.createServer(), connections, bound: undefined, waiting: [] };
    state.server.on('connection', (socket) => accept(state, socket, nextId++, ctx));
    listen(args, state.server, ctx);
    // Heartbeats go out within a quarter interval of falling due.
    const tickMs = Math.max(10, Math.floor(Math.min(settings.haSendHeartbeatIntervalMs, settings.haHousekeepingIntervalMs) / 4));
    ctx.timers.startPeriodic(TIMER_HOUSEKEEPING, { type: 'housekeeping' }, tickMs);
    return state;
  },

  receive(state, message, ctx) {
    receive(state, message, ctx);
    return state;
  },

  onStop(state, ctx) {
    state.server.close();
    for (const connection of state.connections.values()) {
      connection.socket.destroy();
      ctx.tell(state.args.writer, { type: 'haSlaveGone', slaveId: connection.slaveId });
    }
    state.connections.clear();
    for (const reply of state.waiting.splice(0)) reply.resolve({ error: 'HA service stopped' } satisfies BoundAnswer);
  },
};

/** Spawns the HA service of a master (brokerRole ASYNC_MASTER or SYNC_MASTER). */
export function spawnHaService(system: ActorSpawner, args: HaServiceArgs, options: SpawnPlacement = {}): Promise<ActorRef<HaServiceMessage>> {
  return system.spawn<HaServiceMessage, HaServiceArgs>({
    name: options.name ?? 'ha-service',
    behavior: options.behavior ?? { module: new URL('./ha-service.ts', import.meta.url).href, export: 'haService' },
    args,
    pool: options.pool ?? 'store',
  });
}
