/**
 * The slave side of RocketMQ's default HA (DefaultHAClient): an actor that connects to its master's HA
 * port (haMasterAddress, changeable at run time with `masterChanged`), reports the end of its own
 * CommitLog, and appends what the master streams through the commit-log-writer (`haAppendRaw`), which
 * stores the bytes byte for byte and dispatches every whole record as the master did.
 *
 * Flow. On connect the client asks the writer for its max offset (whole records only: a partial record
 * kept from an earlier connection is dropped by the resync) and reports it; the master streams from
 * there. Frames are decoded (ha-protocol.ts) as they arrive and appended in order, one `haAppendRaw` in
 * flight at a time: while it runs, the frames that arrive meanwhile wait, and the next append merges all
 * of them (they are contiguous: the decoder checks it) into one ask of at most `appendBytesMax` bytes (one
 * frame at least), so a master sending many frames costs the writer few turns. After each append the new
 * offset is reported (RocketMQ's reportSlaveMaxOffset), and every haSendHeartbeatInterval ms anyway. At
 * most `pendingBytesMax` of decoded frames wait for the writer; past it the socket is paused, so TCP flow
 * control slows the master. A master silent for
 * haHousekeepingInterval ms, a protocol error or a refused append closes the connection; the client then
 * reconnects after a backoff (doubling from reconnectBackoffMinMs to reconnectBackoffMaxMs) and resyncs
 * from its own max offset.
 *
 * Identity. With a brokerId (the controller-assigned one, from the args or later from an `identity`
 * message, since the replicas manager learns it after start) the client opens every connection with
 * ha-protocol.ts's handshake, carrying brokerId and asyncLearner, as RocketMQ 5's AutoSwitchHAClient
 * does; the master then knows this slave by id. A handshake goes only first on a connection, so a new
 * identity reconnects (and resyncs from the slave's own end). Without a brokerId the stream is
 * RocketMQ's plain default protocol.
 */
import net from 'node:net';
import type { ActorContext, ActorRef, ActorSpawner, Behavior, PipeResult, SpawnPlacement } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { describeError } from '../runtime/errors.ts';
import { HA_DEFAULTS, HA_FRAME_BODY_MAX_DEFAULT_BYTES, type HaTransferFrame, TransferDecoder, encodeHandshake, encodeReportOffset } from '../storage/ha-protocol.ts';
import type { HaAppendResult } from '../storage/message-store.ts';
import type { CommitLogWriterMessage, HaStateAnswer } from './commit-log-writer.ts';

/** Defaults of the bounds that have no RocketMQ config key. */
export const HA_CLIENT_DEFAULTS = {
  reconnectBackoffMinMs: 100,
  reconnectBackoffMaxMs: 5_000,
  /** Decoded frame bytes waiting for the writer before the socket is paused. */
  pendingBytesMax: 4 * 1024 * 1024,
  /** Bytes of consecutive frames merged into one `haAppendRaw` at most (a larger frame goes alone). */
  appendBytesMax: 1024 * 1024,
  /** How long an ask to the writer may take. */
  writerAskTimeoutMs: 10_000,
} as const;

/** Start arguments. */
export type HaClientArgs = {
  readonly writer: ActorRef<CommitLogWriterMessage>;
  /** haMasterAddress, `host:port` of the master's HA port; null: wait for `masterChanged`. */
  readonly haMasterAddress: string | null;
  readonly haSendHeartbeatIntervalMs?: number;
  readonly haHousekeepingIntervalMs?: number;
  readonly frameBodyMaxBytes?: number;
  readonly reconnectBackoffMinMs?: number;
  readonly reconnectBackoffMaxMs?: number;
  readonly pendingBytesMax?: number;
  readonly appendBytesMax?: number;
  /** The slave's controller-assigned brokerId; set, every connection opens with a handshake carrying it. */
  readonly brokerId?: number;
  /** MessageStoreConfig.asyncLearner, told in the handshake; default false. */
  readonly asyncLearner?: boolean;
};

/** Who this slave says it is in its handshake; null: no handshake. */
export type HaClientIdentity = { readonly brokerId: number; readonly asyncLearner: boolean };

/** What `state` answers. */
export type HaClientState = {
  readonly masterAddress: string | null;
  readonly connected: boolean;
  /** The slave's CommitLog end (whole records) as last reported to the master; -1 before the first. */
  readonly reportedOffset: number;
  readonly connects: number;
  /** Frames the writer stored, and the `haAppendRaw` asks that carried them (merged: fewer). */
  readonly framesAppended: number;
  readonly appends: number;
  /** Decoded frame bytes waiting for the writer on the live connection. */
  readonly pendingBytes: number;
  readonly identity: HaClientIdentity | null;
};

/** Messages: the broker's (or controller's) asks, and the client's own socket, writer and timer events. */
export type HaClientMessage =
  | { readonly type: 'masterChanged'; readonly haAddress: string | null }
  /** Sets the identity for the handshake (answers false for a bad brokerId); reconnects if it changed. */
  | { readonly type: 'identity'; readonly brokerId: number; readonly asyncLearner?: boolean }
  | { readonly type: 'state' }
  | { readonly type: 'connect'; readonly generation: number }
  | { readonly type: 'offsetKnown'; readonly generation: number; readonly result: PipeResult<HaStateAnswer> }
  | { readonly type: 'connected'; readonly generation: number }
  | { readonly type: 'framesArrived'; readonly generation: number }
  | { readonly type: 'appended'; readonly generation: number; readonly result: PipeResult<HaAppendResult> }
  | { readonly type: 'closed'; readonly generation: number }
  | { readonly type: 'heartbeat' };

type Settings = Required<Omit<HaClientArgs, 'writer' | 'haMasterAddress' | 'brokerId' | 'asyncLearner'>>;

type Link = {
  readonly generation: number;
  socket: net.Socket | null;
  readonly decoder: TransferDecoder;
  readonly frames: HaTransferFrame[];
  pendingBytes: number;
  /** Frames carried by the append in flight; 0 when none is. */
  appendingFrames: number;
  connected: boolean;
  lastReadMs: number;
  lastReportMs: number;
};

type State = {
  readonly args: HaClientArgs;
  readonly settings: Settings;
  masterAddress: string | null;
  generation: number;
  link: Link | null;
  backoffMs: number;
  reportedOffset: number;
  connects: number;
  framesAppended: number;
  appends: number;
  identity: HaClientIdentity | null;
};

type Ctx = ActorContext<HaClientMessage>;

const TIMER_HEARTBEAT = 'heartbeat';
const TIMER_RECONNECT = 'reconnect';

function tellSelf(ctx: Ctx, message: HaClientMessage, key: string): void {
  if (!ctx.tell(ctx.self, message)) ctx.timers.startSingle(key, message, 0);
}

/** Parses `host:port` (IPv6 as `[::1]:port`); null when malformed. */
export function parseHaAddress(address: string): { host: string; port: number } | null {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(address.trim());
  if (match === null) return null;
  const port = Number(match[2]);
  return port > 0 && port <= 65_535 ? { host: match[1]!, port } : null;
}

function settingsOf(args: HaClientArgs): Settings {
  const settings: Settings = {
    haSendHeartbeatIntervalMs: args.haSendHeartbeatIntervalMs ?? HA_DEFAULTS.haSendHeartbeatInterval,
    haHousekeepingIntervalMs: args.haHousekeepingIntervalMs ?? HA_DEFAULTS.haHousekeepingInterval,
    frameBodyMaxBytes: args.frameBodyMaxBytes ?? HA_FRAME_BODY_MAX_DEFAULT_BYTES,
    reconnectBackoffMinMs: args.reconnectBackoffMinMs ?? HA_CLIENT_DEFAULTS.reconnectBackoffMinMs,
    reconnectBackoffMaxMs: args.reconnectBackoffMaxMs ?? HA_CLIENT_DEFAULTS.reconnectBackoffMaxMs,
    pendingBytesMax: args.pendingBytesMax ?? HA_CLIENT_DEFAULTS.pendingBytesMax,
    appendBytesMax: args.appendBytesMax ?? HA_CLIENT_DEFAULTS.appendBytesMax,
  };
  for (const [key, value] of Object.entries(settings)) assert(Number.isSafeInteger(value) && value > 0, `${key} is a positive integer`);
  assert(settings.reconnectBackoffMinMs <= settings.reconnectBackoffMaxMs, 'reconnect backoff bounds are ordered');
  return settings;
}

/** Drops the current connection (if any); with `retry`, schedules the next attempt after the backoff. */
function disconnect(state: State, ctx: Ctx, retry: boolean): void {
  const link = state.link;
  state.link = null;
  state.generation++;
  link?.socket?.destroy();
  ctx.timers.cancel(TIMER_RECONNECT);
  if (!retry || state.masterAddress === null) return;
  ctx.timers.startSingle(TIMER_RECONNECT, { type: 'connect', generation: state.generation }, state.backoffMs);
  state.backoffMs = Math.min(state.backoffMs * 2, state.settings.reconnectBackoffMaxMs);
}

/** Starts a connection: first learns the slave's own max offset from the writer. */
function connect(state: State, ctx: Ctx): void {
  if (state.masterAddress === null || state.link !== null) return;
  const nowMs = ctx.clock.nowMs();
  const link: Link = {
    generation: state.generation,
    socket: null,
    decoder: new TransferDecoder(state.settings.frameBodyMaxBytes),
    frames: [],
    pendingBytes: 0,
    appendingFrames: 0,
    connected: false,
    lastReadMs: nowMs,
    lastReportMs: nowMs,
  };
  state.link = link;
  state.connects++;
  const generation = link.generation;
  const asked = ctx.ask<CommitLogWriterMessage, HaStateAnswer>(state.args.writer, { type: 'haState' }, HA_CLIENT_DEFAULTS.writerAskTimeoutMs);
  ctx.pipeToSelf(asked, (result) => ({ type: 'offsetKnown', generation, result }));
}

function openSocket(state: State, link: Link, maxOffset: number, ctx: Ctx): void {
  const address = state.masterAddress === null ? null : parseHaAddress(state.masterAddress);
  if (address === null) {
    ctx.log.error({ haMasterAddress: state.masterAddress }, 'bad HA master address');
    return disconnect(state, ctx, false);
  }
  // An empty slave takes whatever file the master starts it at; otherwise the stream must continue its log.
  link.decoder.expectOffset(maxOffset === 0 ? null : maxOffset);
  const generation = link.generation;
  const socket = net.connect({ host: address.host, port: address.port, noDelay: true });
  link.socket = socket;
  socket.on('connect', () => tellSelf(ctx, { type: 'connected', generation }, `connected-${generation}`));
  socket.on('data', (chunk: Buffer) => {
    link.lastReadMs = ctx.clock.nowMs();
    try {
      for (const frame of link.decoder.push(chunk)) {
        if (frame.body.length === 0) continue;
        link.frames.push(frame);
        link.pendingBytes += frame.body.length;
      }
    } catch (error) {
      ctx.log.warn({ err: describeError(error) }, 'bad frame from the master; resyncing');
      socket.destroy();
      return;
    }
    if (link.pendingBytes >= state.settings.pendingBytesMax) socket.pause();
    tellSelf(ctx, { type: 'framesArrived', generation }, `frames-${generation}`);
  });
  socket.on('error', (error) => ctx.log.info({ err: describeError(error), master: state.masterAddress }, 'HA connection error'));
  socket.on('close', () => tellSelf(ctx, { type: 'closed', generation }, `closed-${generation}`));
  state.reportedOffset = maxOffset;
}

function validBrokerId(brokerId: unknown): brokerId is number {
  return typeof brokerId === 'number' && Number.isSafeInteger(brokerId) && brokerId >= 0;
}

/** Takes a new identity; a live connection is restarted so its first bytes carry it. */
function setIdentity(state: State, identity: HaClientIdentity, ctx: Ctx): void {
  const same = state.identity !== null && state.identity.brokerId === identity.brokerId && state.identity.asyncLearner === identity.asyncLearner;
  if (same) return;
  state.identity = identity;
  if (state.link === null) return;
  disconnect(state, ctx, false);
  connect(state, ctx);
}

function report(state: State, link: Link, offset: number, ctx: Ctx): void {
  if (link.socket === null || !link.connected || link.socket.destroyed) return;
  link.socket.write(encodeReportOffset(offset));
  link.lastReportMs = ctx.clock.nowMs();
  state.reportedOffset = offset;
}

/** A run of consecutive frames merged for one append. */
export type MergedFrames = { readonly physicalOffset: number; readonly bytes: Uint8Array; readonly frames: number };

/**
 * Removes the first frames of `frames` (decoded, so contiguous) whose bodies fit `bytesMax` together (the
 * first one always) and returns them as one run; null when there are none. One frame is not copied.
 */
export function takeMergedFrames(frames: HaTransferFrame[], bytesMax: number): MergedFrames | null {
  assert(Number.isSafeInteger(bytesMax) && bytesMax > 0, () => `bad merge bound ${bytesMax}`);
  if (frames.length === 0) return null;
  let count = 0;
  let total = 0;
  // Bounded by the frames waiting.
  while (count < frames.length && (count === 0 || total + frames[count]!.body.length <= bytesMax)) total += frames[count++]!.body.length;
  const taken = frames.splice(0, count);
  const physicalOffset = taken[0]!.physicalOffset;
  if (count === 1) return { physicalOffset, bytes: taken[0]!.body, frames: 1 };
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const frame of taken) {
    assert(frame.physicalOffset === physicalOffset + at, () => `frame at ${frame.physicalOffset} does not continue at ${physicalOffset + at}`);
    bytes.set(frame.body, at);
    at += frame.body.length;
  }
  return { physicalOffset, bytes, frames: count };
}

/** Appends the decoded frames through the writer, merged, one append in flight, in order. */
function appendNext(state: State, link: Link, ctx: Ctx): void {
  if (link.appendingFrames > 0) return;
  const merged = takeMergedFrames(link.frames, state.settings.appendBytesMax);
  if (merged === null) return;
  link.pendingBytes -= merged.bytes.length;
  assert(link.pendingBytes >= 0, 'pending bytes never go below zero');
  if (link.socket?.isPaused() === true && link.pendingBytes < state.settings.pendingBytesMax) link.socket.resume();
  link.appendingFrames = merged.frames;
  const generation = link.generation;
  const message: CommitLogWriterMessage = { type: 'haAppendRaw', fromOffset: merged.physicalOffset, bytes: merged.bytes };
  ctx.pipeToSelf(ctx.ask<CommitLogWriterMessage, HaAppendResult>(state.args.writer, message, HA_CLIENT_DEFAULTS.writerAskTimeoutMs), (result) => ({
    type: 'appended',
    generation,
    result,
  }));
}

function onAppended(state: State, link: Link, result: PipeResult<HaAppendResult>, ctx: Ctx): void {
  const frames = link.appendingFrames;
  assert(frames > 0, 'an append was in flight');
  link.appendingFrames = 0;
  if (!result.ok) {
    ctx.log.warn({ err: describeError(result.error) }, 'append through the writer failed; resyncing');
    return disconnect(state, ctx, true);
  }
  const answer = result.value;
  if (!answer.ok) {
    ctx.log.warn({ code: answer.code, remark: answer.remark }, 'master bytes refused; resyncing from the slave\'s end');
    return disconnect(state, ctx, true);
  }
  state.framesAppended += frames;
  state.appends++;
  state.backoffMs = state.settings.reconnectBackoffMinMs;
  report(state, link, answer.maxOffset, ctx);
  appendNext(state, link, ctx);
}

function heartbeat(state: State, ctx: Ctx): void {
  const link = state.link;
  if (link === null || !link.connected) return;
  const nowMs = ctx.clock.nowMs();
  if (nowMs - link.lastReadMs > state.settings.haHousekeepingIntervalMs) {
    ctx.log.warn({ master: state.masterAddress }, 'master silent past haHousekeepingInterval; reconnecting');
    return disconnect(state, ctx, true);
  }
  if (nowMs - link.lastReportMs >= state.settings.haSendHeartbeatIntervalMs && state.reportedOffset >= 0) report(state, link, state.reportedOffset, ctx);
}

/** The live link of a generation, or null for an event of an older connection. */
function current(state: State, generation: number): Link | null {
  return state.link !== null && state.link.generation === generation ? state.link : null;
}

function receive(state: State, message: HaClientMessage, ctx: Ctx): void {
  switch (message.type) {
    case 'masterChanged':
      if (message.haAddress !== null && parseHaAddress(message.haAddress) === null) return ctx.reply(false);
      state.masterAddress = message.haAddress;
      state.backoffMs = state.settings.reconnectBackoffMinMs;
      disconnect(state, ctx, false);
      connect(state, ctx);
      return ctx.reply(true);
    case 'identity':
      if (!validBrokerId(message.brokerId)) return ctx.reply(false);
      setIdentity(state, { brokerId: message.brokerId, asyncLearner: message.asyncLearner === true }, ctx);
      return ctx.reply(true);
    case 'state':
      return ctx.reply({
        masterAddress: state.masterAddress,
        connected: state.link?.connected ?? false,
        reportedOffset: state.reportedOffset,
        connects: state.connects,
        framesAppended: state.framesAppended,
        appends: state.appends,
        pendingBytes: state.link?.pendingBytes ?? 0,
        identity: state.identity,
      } satisfies HaClientState);
    case 'connect':
      if (message.generation === state.generation) connect(state, ctx);
      return;
    case 'offsetKnown': {
      const link = current(state, message.generation);
      if (link === null) return;
      if (!message.result.ok) {
        ctx.log.warn({ err: describeError(message.result.error) }, 'writer did not say its offset; retrying');
        return disconnect(state, ctx, true);
      }
      return openSocket(state, link, message.result.value.maxOffset, ctx);
    }
    case 'connected': {
      const link = current(state, message.generation);
      if (link === null) return;
      link.connected = true;
      link.lastReadMs = ctx.clock.nowMs();
      // The handshake goes before the first report, in the same write order on the socket.
      if (state.identity !== null) link.socket?.write(encodeHandshake({ ...state.identity, syncFromLastFile: false }));
      ctx.log.info({ master: state.masterAddress, offset: state.reportedOffset }, 'connected to the HA master');
      return report(state, link, state.reportedOffset, ctx);
    }
    case 'framesArrived': {
      const link = current(state, message.generation);
      if (link !== null) appendNext(state, link, ctx);
      return;
    }
    case 'appended': {
      const link = current(state, message.generation);
      if (link !== null) onAppended(state, link, message.result, ctx);
      return;
    }
    case 'closed':
      if (current(state, message.generation) !== null) disconnect(state, ctx, true);
      return;
    case 'heartbeat':
      return heartbeat(state, ctx);
    default:
      return assertNever(message, 'HA client message');
  }
}

/** The HA client behavior. */
export const haClient: Behavior<State, HaClientMessage, HaClientArgs> = {
  init(args, ctx) {
    const settings = settingsOf(args);
    assert(args.haMasterAddress === null || parseHaAddress(args.haMasterAddress) !== null, () => `bad haMasterAddress ${args.haMasterAddress}`);
    assert(args.brokerId === undefined || validBrokerId(args.brokerId), () => `bad brokerId ${args.brokerId}`);
    const state: State = {
      args,
      settings,
      masterAddress: args.haMasterAddress,
      generation: 1,
      link: null,
      backoffMs: settings.reconnectBackoffMinMs,
      reportedOffset: -1,
      connects: 0,
      framesAppended: 0,
      appends: 0,
      identity: args.brokerId === undefined ? null : { brokerId: args.brokerId, asyncLearner: args.asyncLearner === true },
    };
    const tickMs = Math.max(10, Math.floor(Math.min(settings.haSendHeartbeatIntervalMs, settings.haHousekeepingIntervalMs) / 4));
    ctx.timers.startPeriodic(TIMER_HEARTBEAT, { type: 'heartbeat' }, tickMs);
    connect(state, ctx);
    return state;
  },

  receive(state, message, ctx) {
    receive(state, message, ctx);
    return state;
  },

  onStop(state) {
    state.link?.socket?.destroy();
    state.link = null;
  },
};

/** Spawns the HA client of a slave (brokerRole SLAVE). */
export function spawnHaClient(system: ActorSpawner, args: HaClientArgs, options: SpawnPlacement = {}): Promise<ActorRef<HaClientMessage>> {
  return system.spawn<HaClientMessage, HaClientArgs>({
    name: options.name ?? 'ha-client',
    behavior: options.behavior ?? { module: new URL('./ha-client.ts', import.meta.url).href, export: 'haClient' },
    args,
    pool: options.pool ?? 'store',
  });
}
