/**
 * RocketMQ's default HA wire protocol (DefaultHAService / DefaultHAConnection / DefaultHAClient): a plain
 * TCP stream between a slave and its master, no Remoting frames, no handshake.
 *
 * Slave -> master, an offset report (sent on connect, after every append, and every
 * haSendHeartbeatInterval ms):
 *
 * | offset | size | field          | meaning                                              |
 * |--------|------|----------------|------------------------------------------------------|
 * | 0      | 8    | maxPhyOffset   | big-endian int64: end of the slave's CommitLog       |
 *
 * Slave -> master, an optional handshake, only as the very first bytes of a connection (our frame, modelled
 * on RocketMQ 5's AutoSwitchHAClient handshake header: HAConnectionState.HANDSHAKE's ordinal, the
 * isSyncFromLastFile and isAsyncLearner flags, the slave's brokerId; HA_HANDSHAKE_BYTES = 4 + 4 + 2 + 2 + 8):
 *
 * | offset | size | field              | meaning                                                    |
 * |--------|------|--------------------|------------------------------------------------------------|
 * | 0      | 4    | magic              | HA_HANDSHAKE_MAGIC, big-endian                             |
 * | 4      | 4    | state              | big-endian int32: 1, HAConnectionState.HANDSHAKE.ordinal() |
 * | 8      | 2    | isSyncFromLastFile | big-endian int16: 0 or 1 (carried, not acted on)           |
 * | 10     | 2    | isAsyncLearner     | big-endian int16: 0 or 1                                   |
 * | 12     | 8    | slaveBrokerId      | big-endian int64: the slave's controller-assigned brokerId |
 *
 * The magic's first byte has its top bit set, so as an offset report it would be a negative int64, which
 * no valid report is: the master tells the two apart from the first byte. A slave without a brokerId
 * sends no handshake, and the stream is RocketMQ's plain default protocol, byte for byte. Offset reports
 * follow the handshake as usual.
 *
 * Master -> slave, a transfer frame (TRANSFER_HEADER_SIZE = 8 + 4):
 *
 * | offset | size | field          | meaning                                              |
 * |--------|------|----------------|------------------------------------------------------|
 * | 0      | 8    | physicalOffset | big-endian int64: CommitLog offset of the first byte |
 * | 8      | 4    | bodySize       | big-endian int32: bytes that follow; 0 = heartbeat   |
 * | 12     | n    | body           | raw CommitLog bytes, byte-identical to the master's  |
 *
 * Invariants: offsets are non-negative safe integers; a body never exceeds the decoder's bound (the
 * master sends at most haTransferBatchSize per frame and never across a CommitLog file end, so the
 * bound only guards against a peer that is not a RocketMQ master). A master may send many frames back
 * to back (ours sends each read of its log as consecutive frames); nothing in the stream marks where
 * one read ended, and a slave may store consecutive frames in one append. Both decoders accept the stream in
 * any chunking TCP delivers and keep at most one partial header or body between chunks. A violation is
 * an HaProtocolError with a stable code; the connection is then dropped and resynced from the slave's
 * own offset, as RocketMQ does.
 */
import { assert } from '../runtime/assert.ts';

/** Bytes of a slave's offset report. */
export const HA_REPORT_OFFSET_BYTES = 8;
/** Bytes of a transfer header (RocketMQ's TRANSFER_HEADER_SIZE = 8 + 4). */
export const HA_TRANSFER_HEADER_BYTES = 8 + 4;

/** Bytes of a slave's handshake (magic, state, two flags, brokerId). */
export const HA_HANDSHAKE_BYTES = 4 + 4 + 2 + 2 + 8;
/** First four bytes of a handshake; the top bit of its first byte sets it apart from an offset report. */
export const HA_HANDSHAKE_MAGIC = 0xa5_48_41_31;
/** RocketMQ's HAConnectionState.HANDSHAKE.ordinal() (READY, HANDSHAKE, TRANSFER, SUSPEND, SHUTDOWN). */
export const HA_STATE_HANDSHAKE_ORDINAL = 1;

/** RocketMQ's HA defaults (MessageStoreConfig), kept under their config key names. */
export const HA_DEFAULTS = {
  /** haListenPort: listenPort + 1 in RocketMQ's default layout. */
  haListenPort: 10912,
  /** haSendHeartbeatInterval, ms. */
  haSendHeartbeatInterval: 5_000,
  /** haHousekeepingInterval, ms: a connection silent this long is closed. */
  haHousekeepingInterval: 20_000,
  /** haTransferBatchSize, bytes per frame body at most. */
  haTransferBatchSize: 32 * 1024,
  /** haMaxGapNotInSync, bytes: a slave further behind is not in sync. */
  haMaxGapNotInSync: 256 * 1024 * 1024,
  /** haMaxTimeSlaveNotCatchup, ms: a slave that has not caught up for this long is not in sync. */
  haMaxTimeSlaveNotCatchup: 15_000,
  /** syncFlushTimeout, ms: how long a SYNC_MASTER put waits for a slave. */
  syncFlushTimeout: 5_000,
} as const;

/** Largest frame body a slave accepts (RocketMQ's slave read buffer, READ_MAX_BUFFER_SIZE, is 4 MiB). */
export const HA_FRAME_BODY_MAX_DEFAULT_BYTES = 4 * 1024 * 1024;

/** Stable codes of HaProtocolError. */
export const HaProtocolErrorCode = {
  /** An offset that is negative or beyond 2^53. */
  OFFSET_INVALID: 'OFFSET_INVALID',
  /** A frame body larger than the decoder's bound, or a negative size. */
  BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  /** A frame that does not continue where the previous one ended. */
  OFFSET_GAP: 'OFFSET_GAP',
  /** A handshake with a wrong magic, state, flag or brokerId. */
  HANDSHAKE_INVALID: 'HANDSHAKE_INVALID',
} as const;

/** A stable code of HaProtocolError. */
export type HaProtocolErrorCode = (typeof HaProtocolErrorCode)[keyof typeof HaProtocolErrorCode];

/** A peer broke the HA protocol; the connection is closed and resynced. */
export class HaProtocolError extends Error {
  /** Stable machine-readable code. */
  readonly code: HaProtocolErrorCode;
  override readonly name = 'HaProtocolError';

  constructor(code: HaProtocolErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** One decoded master frame: `body` is empty for a heartbeat. */
export type HaTransferFrame = { readonly physicalOffset: number; readonly body: Uint8Array };

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new HaProtocolError('OFFSET_INVALID', `offset ${offset} is not a valid CommitLog offset`);
}

function readOffset(bytes: Uint8Array, at: number): number {
  const value = Buffer.from(bytes.buffer, bytes.byteOffset + at, 8).readBigInt64BE(0);
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new HaProtocolError('OFFSET_INVALID', `offset ${value} is not a valid CommitLog offset`);
  return Number(value);
}

/** The 8-byte offset report a slave sends. */
export function encodeReportOffset(maxPhysicalOffset: number): Buffer {
  checkOffset(maxPhysicalOffset);
  const out = Buffer.alloc(HA_REPORT_OFFSET_BYTES);
  out.writeBigInt64BE(BigInt(maxPhysicalOffset), 0);
  return out;
}

/** What a slave's handshake says about it. */
export type HaHandshake = { readonly brokerId: number; readonly asyncLearner: boolean; readonly syncFromLastFile: boolean };

/** The 20-byte handshake a slave with a brokerId sends before its first offset report. */
export function encodeHandshake(handshake: HaHandshake): Buffer {
  if (!Number.isSafeInteger(handshake.brokerId) || handshake.brokerId < 0) throw new HaProtocolError('HANDSHAKE_INVALID', `brokerId ${handshake.brokerId} is not valid`);
  const out = Buffer.alloc(HA_HANDSHAKE_BYTES);
  out.writeUInt32BE(HA_HANDSHAKE_MAGIC, 0);
  out.writeInt32BE(HA_STATE_HANDSHAKE_ORDINAL, 4);
  out.writeInt16BE(handshake.syncFromLastFile ? 1 : 0, 8);
  out.writeInt16BE(handshake.asyncLearner ? 1 : 0, 10);
  out.writeBigInt64BE(BigInt(handshake.brokerId), 12);
  return out;
}

function readFlag(view: Buffer, at: number, name: string): boolean {
  const value = view.readInt16BE(at);
  if (value !== 0 && value !== 1) throw new HaProtocolError('HANDSHAKE_INVALID', `${name} flag is ${value}, not 0 or 1`);
  return value === 1;
}

/** Reads a whole handshake (HA_HANDSHAKE_BYTES); throws HaProtocolError HANDSHAKE_INVALID when malformed. */
export function decodeHandshake(bytes: Uint8Array): HaHandshake {
  assert(bytes.length === HA_HANDSHAKE_BYTES, () => `a handshake is ${HA_HANDSHAKE_BYTES} bytes, not ${bytes.length}`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const magic = view.readUInt32BE(0);
  if (magic !== HA_HANDSHAKE_MAGIC) throw new HaProtocolError('HANDSHAKE_INVALID', `handshake magic ${magic.toString(16)} is wrong`);
  const stateOrdinal = view.readInt32BE(4);
  if (stateOrdinal !== HA_STATE_HANDSHAKE_ORDINAL) throw new HaProtocolError('HANDSHAKE_INVALID', `handshake state ${stateOrdinal} is not HANDSHAKE`);
  const syncFromLastFile = readFlag(view, 8, 'isSyncFromLastFile');
  const asyncLearner = readFlag(view, 10, 'isAsyncLearner');
  const brokerId = view.readBigInt64BE(12);
  if (brokerId < 0n || brokerId > BigInt(Number.MAX_SAFE_INTEGER)) throw new HaProtocolError('HANDSHAKE_INVALID', `brokerId ${brokerId} is not valid`);
  return { brokerId: Number(brokerId), asyncLearner, syncFromLastFile };
}

/** The 12-byte header of a transfer frame; the body is written after it (a heartbeat has none). */
export function encodeTransferHeader(physicalOffset: number, bodySize: number): Buffer {
  checkOffset(physicalOffset);
  assert(Number.isInteger(bodySize) && bodySize >= 0 && bodySize <= 0x7fff_ffff, () => `bad body size ${bodySize}`);
  const out = Buffer.alloc(HA_TRANSFER_HEADER_BYTES);
  out.writeBigInt64BE(BigInt(physicalOffset), 0);
  out.writeInt32BE(bodySize, 8);
  return out;
}

/** A whole transfer frame in one buffer (header + body). */
export function encodeTransferFrame(physicalOffset: number, body: Uint8Array): Buffer {
  return Buffer.concat([encodeTransferHeader(physicalOffset, body.length), body]);
}

/**
 * Decodes a slave's offset reports from a TCP stream, any chunking. The master keeps only the newest
 * report (RocketMQ reads the last whole 8 bytes of its buffer), so `push` returns the last complete
 * one, or null when the chunk completed none.
 */
export class ReportOffsetDecoder {
  private readonly partial = new Uint8Array(HA_REPORT_OFFSET_BYTES);
  private partialBytes = 0;

  /** Feeds a chunk; returns the newest whole report in it, or null. */
  push(chunk: Uint8Array): number | null {
    let latest: number | null = null;
    let at = 0;
    // Each pass consumes at least one byte of the chunk.
    while (at < chunk.length) {
      const take = Math.min(HA_REPORT_OFFSET_BYTES - this.partialBytes, chunk.length - at);
      if (this.partialBytes === 0 && take === HA_REPORT_OFFSET_BYTES) {
        latest = readOffset(chunk, at);
      } else {
        this.partial.set(chunk.subarray(at, at + take), this.partialBytes);
        this.partialBytes += take;
        if (this.partialBytes === HA_REPORT_OFFSET_BYTES) {
          latest = readOffset(this.partial, 0);
          this.partialBytes = 0;
        }
      }
      at += take;
    }
    return latest;
  }

  /** Bytes of an unfinished report held between chunks. */
  get bufferedBytes(): number {
    return this.partialBytes;
  }
}

/** What a chunk of a slave's stream completed: a handshake (at most once, first) and the newest report. */
export type SlaveStreamEvents = { readonly handshake: HaHandshake | null; readonly offset: number | null };

/**
 * Decodes everything a slave sends, any chunking: an optional handshake first (told apart by its first
 * byte), then offset reports (ReportOffsetDecoder). Keeps at most one partial handshake or report.
 */
export class SlaveStreamDecoder {
  private readonly reports = new ReportOffsetDecoder();
  private readonly handshake = new Uint8Array(HA_HANDSHAKE_BYTES);
  private handshakeBytes = 0;
  /** 'start' until the first byte says which; 'handshake' while one is read; then 'reports'. */
  private phase: 'start' | 'handshake' | 'reports' = 'start';

  /** Feeds a chunk; throws HaProtocolError on a malformed handshake or report. */
  push(chunk: Uint8Array): SlaveStreamEvents {
    let at = 0;
    let handshake: HaHandshake | null = null;
    if (this.phase === 'start' && chunk.length > 0) this.phase = chunk[0] === HA_HANDSHAKE_MAGIC >>> 24 ? 'handshake' : 'reports';
    if (this.phase === 'handshake') {
      const take = Math.min(HA_HANDSHAKE_BYTES - this.handshakeBytes, chunk.length);
      this.handshake.set(chunk.subarray(0, take), this.handshakeBytes);
      this.handshakeBytes += take;
      at = take;
      if (this.handshakeBytes < HA_HANDSHAKE_BYTES) return { handshake: null, offset: null };
      handshake = decodeHandshake(this.handshake);
      this.phase = 'reports';
    }
    const offset = at < chunk.length ? this.reports.push(chunk.subarray(at)) : null;
    return { handshake, offset };
  }

  /** Bytes of an unfinished handshake or report held between chunks. */
  get bufferedBytes(): number {
    return this.phase === 'handshake' ? this.handshakeBytes : this.reports.bufferedBytes;
  }
}

/**
 * Decodes a master's transfer frames from a TCP stream, any chunking. Bodies are bounded by
 * `bodyMaxBytes`; each frame must start where the previous one ended (heartbeats carry the master's
 * next offset, which is that same place); the first frame may start anywhere unless `expectOffset`
 * named a starting point.
 */
export class TransferDecoder {
  private readonly bodyMaxBytes: number;
  private readonly header = new Uint8Array(HA_TRANSFER_HEADER_BYTES);
  private headerBytes = 0;
  private body: Uint8Array | null = null;
  private bodyFilled = 0;
  private bodyOffset = 0;
  private nextOffset: number | null = null;

  constructor(bodyMaxBytes: number = HA_FRAME_BODY_MAX_DEFAULT_BYTES) {
    assert(Number.isInteger(bodyMaxBytes) && bodyMaxBytes > 0 && bodyMaxBytes <= 0x7fff_ffff, () => `bad body bound ${bodyMaxBytes}`);
    this.bodyMaxBytes = bodyMaxBytes;
  }

  /** Requires the next frame to start at `offset` (the slave's own end); null: accept any. */
  expectOffset(offset: number | null): void {
    if (offset !== null) checkOffset(offset);
    this.nextOffset = offset;
  }

  /** Feeds a chunk; returns the frames it completed, in order. Throws HaProtocolError on a bad frame. */
  push(chunk: Uint8Array): HaTransferFrame[] {
    const frames: HaTransferFrame[] = [];
    let at = 0;
    // Each pass consumes at least one byte, or completes a frame with an empty body.
    while (at < chunk.length || (this.body !== null && this.bodyFilled === this.body.length)) {
      if (this.body === null) {
        const take = Math.min(HA_TRANSFER_HEADER_BYTES - this.headerBytes, chunk.length - at);
        this.header.set(chunk.subarray(at, at + take), this.headerBytes);
        this.headerBytes += take;
        at += take;
        if (this.headerBytes < HA_TRANSFER_HEADER_BYTES) break;
        this.startBody();
        continue;
      }
      const take = Math.min(this.body.length - this.bodyFilled, chunk.length - at);
      this.body.set(chunk.subarray(at, at + take), this.bodyFilled);
      this.bodyFilled += take;
      at += take;
      if (this.bodyFilled === this.body.length) {
        frames.push({ physicalOffset: this.bodyOffset, body: this.body });
        this.nextOffset = this.bodyOffset + this.body.length;
        this.body = null;
        this.bodyFilled = 0;
        this.headerBytes = 0;
      }
    }
    return frames;
  }

  /** Bytes of an unfinished frame held between chunks. */
  get bufferedBytes(): number {
    return this.body === null ? this.headerBytes : HA_TRANSFER_HEADER_BYTES + this.bodyFilled;
  }

  private startBody(): void {
    const offset = readOffset(this.header, 0);
    const size = Buffer.from(this.header.buffer, this.header.byteOffset + 8, 4).readInt32BE(0);
    if (size < 0 || size > this.bodyMaxBytes) {
      throw new HaProtocolError('BODY_TOO_LARGE', `frame body of ${size} bytes exceeds the bound of ${this.bodyMaxBytes}`);
    }
    if (this.nextOffset !== null && offset !== this.nextOffset) {
      throw new HaProtocolError('OFFSET_GAP', `frame at ${offset} does not continue at ${this.nextOffset}`);
    }
    this.bodyOffset = offset;
    this.body = new Uint8Array(size);
    this.bodyFilled = 0;
  }
}
