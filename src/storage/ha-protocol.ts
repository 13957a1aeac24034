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
 * bound only guards against a peer that is not a RocketMQ master). Both decoders accept the stream in
 * any chunking TCP delivers and keep at most one partial header or body between chunks. A violation is
 * an HaProtocolError with a stable code; the connection is then dropped and resynced from the slave's
 * own offset, as RocketMQ does.
 */
import { assert } from '../runtime/assert.ts';

/** Bytes of a slave's offset report. */
export const HA_REPORT_OFFSET_BYTES = 8;
/** Bytes of a transfer header (RocketMQ's TRANSFER_HEADER_SIZE = 8 + 4). */
export const HA_TRANSFER_HEADER_BYTES = 8 + 4;

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

/** The 12-byte header of a transfer frame; the body is written after it (a heartbeat has none). */
export function encodeTransferHeader(physicalOffset: number, bodySize: number): Buffer {
  checkOffset(physicalOffset);
  assert(Number.isInteger(bodySize) && bodySize >= 0 && bodySize <= 0x7fff_ffff, `bad body size ${bodySize}`);
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
    assert(Number.isInteger(bodyMaxBytes) && bodyMaxBytes > 0 && bodyMaxBytes <= 0x7fff_ffff, `bad body bound ${bodyMaxBytes}`);
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
