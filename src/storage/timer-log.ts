/**
 * The timer log: `<storePathRootDir>/timerlog/<20-digit start position>` files of fixed-size units, one
 * per timer (RocketMQ's TimerLog). A unit names a message of rmq_sys_wheel_timer by its CommitLog offset
 * and links to the previous unit of the same wheel slot, so a slot's units form a chain from the newest
 * (the slot's lastPos in timer-wheel.ts) backwards. Positions are byte offsets in the whole log; a file
 * holds positions [start, start + fileSizeBytes). Integers are big-endian; int64 fields are safe
 * integers or -1 (timer-format.ts).
 *
 * Unit, 56 bytes (RocketMQ's is 52 bytes with a 4-byte delay and a topic hash; ours stores the slot
 * time whole, so any precision fits, a hash of the message's UNIQ_KEY, so a unit is never taken for
 * another message that a crash left at its CommitLog offset, and a CRC, so a torn unit cannot pass for a
 * timer):
 *
 * | offset | size | field         | meaning                                                          |
 * |--------|------|---------------|------------------------------------------------------------------|
 * | 0      | 4    | size          | 56                                                               |
 * | 4      | 4    | magic         | TimerMagic bits: DEFAULT (always), ROLL, DELETE, LATE             |
 * | 8      | 8    | prevPos       | position of the previous unit of the same slot; -1: the first     |
 * | 16     | 8    | slotTimeMs    | the slot this unit is chained in (a multiple of precisionMs)      |
 * | 24     | 8    | enqueueTimeMs | the write time (now, floored to the precision) when appended;     |
 * |        |      |               | RocketMQ's currWriteTime, delivered as TIMER_ENQUEUE_MS           |
 * | 32     | 8    | offsetPy      | CommitLog offset of the message (in rmq_sys_wheel_timer)          |
 * | 40     | 4    | sizePy        | its record size                                                  |
 * | 44     | 4    | keyHash       | CRC-32 of its UNIQ_KEY (UTF-8); 0 without one                     |
 * | 48     | 4    | reserved      | zero                                                             |
 * | 52     | 4    | crc           | CRC-32 (zlib) of bytes 0 .. 52                                   |
 *
 * Magic bits (TimerMessageStore.MAGIC_*): DEFAULT 1 is set on every unit; ROLL 2: at its slot the message
 * goes back into rmq_sys_wheel_timer instead of its real topic (its deliver time lies beyond the wheel's
 * roll window, or its slot was taken); DELETE 4: the message is a recall's delete marker; LATE 8 (ours):
 * its own slot had been dequeued when it was enqueued, so it sits in a later one (delivered with
 * TIMER_ENQUEUE_MS = Long.MAX_VALUE, RocketMQ's mark of a timer that skipped the wheel).
 *
 * Invariants: units are only appended, never rewritten; a file's size is a multiple of 56, so units never
 * straddle files; prevPos < the unit's own position (chains end); every unit is checked (size, magic,
 * CRC, ranges) just after it is read and encoded by one function that checks it just before it is written.
 * A file exists only once the one before it is full. Appends are buffered (writeBufferBytes) and written
 * when the buffer fills, a file ends, or `sync` runs; only what `sync` returned is durable.
 *
 * Recovery rule: files are scanned in order; the first unit that is short, zero, or fails its checks ends
 * the log (a torn tail): its file is truncated there and fsynced, later files are deleted. A gap between
 * files ends the log the same way. Units from `replayFromPos` on are handed to the caller (the wheel
 * re-links them; see timer-store.ts). Files are deleted from the oldest while every unit in them belongs
 * to a slot the checkpoint says was delivered (their newest slot time is below its lastReadTimeMs).
 */
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import { assert } from '../runtime/assert.ts';
import { fileNameOf, parseFileName } from './mapped-file.ts';
import { type StorageFs, fsyncDirectory, writeFully } from './storage-fs.ts';
import { getInt64, putInt64, timerIo } from './timer-format.ts';

// ---------------------------------------------------------------------------------------------------------
// On-disk constants.

/** Bytes of one unit. */
export const TIMER_UNIT_BYTES = 56;
/** Bytes the CRC covers. */
const CRC_COVERED_BYTES = 52;
/** TimerMessageStore's magic bits, and LATE (ours, in the bit RocketMQ's isMagicOK leaves free). */
export const TimerMagic = { DEFAULT: 1, ROLL: 2, DELETE: 4, LATE: 8 } as const;
/** Bits a unit's magic may carry (TimerMessageStore.isMagicOK: (magic | 0xF) == 0xF). */
const MAGIC_BITS = 0xf;

/** Defaults and bounds of the log. */
export const TIMER_LOG_DEFAULTS = {
  /** MessageStoreConfig.mappedFileSizeTimerLog (100 MiB), rounded down to whole units. */
  fileSizeBytes: 100 * 1024 * 1024,
  /** Appends buffered before they are written to the file. */
  writeBufferBytes: TIMER_UNIT_BYTES * 5461,
  /** One block of the read cache (chains are walked through it). */
  readBlockBytes: TIMER_UNIT_BYTES * 1365,
  /** Blocks the read cache keeps. */
  readBlocksMax: 16,
  /** Bytes one recovery read takes. */
  scanChunkBytes: TIMER_UNIT_BYTES * 21_845,
} as const;

/** One unit as read back, with its position. */
export type TimerUnit = {
  readonly pos: number;
  readonly magic: number;
  readonly prevPos: number;
  readonly slotTimeMs: number;
  readonly enqueueTimeMs: number;
  readonly offsetPy: number;
  readonly sizePy: number;
  readonly keyHash: number;
};

/** A unit to append. */
export type TimerUnitInput = Omit<TimerUnit, 'pos'>;

/** The keyHash of a message with this UNIQ_KEY (undefined: none). */
export function keyHashOf(uniqKey: string | undefined): number {
  return uniqKey === undefined ? 0 : crc32(uniqKey);
}

/** Whether `magic` has `bit`. */
export function hasMagic(magic: number, bit: number): boolean {
  return (magic & bit) !== 0;
}

/** Encodes a unit at `at`; the unit is checked first. */
export function encodeUnit(target: Uint8Array, at: number, unit: TimerUnitInput): void {
  assert((unit.magic & ~MAGIC_BITS) === 0 && hasMagic(unit.magic, TimerMagic.DEFAULT), () => `bad timer magic ${unit.magic}`);
  assert(unit.prevPos === -1 || (Number.isSafeInteger(unit.prevPos) && unit.prevPos >= 0), () => `bad prevPos ${unit.prevPos}`);
  assert(Number.isSafeInteger(unit.slotTimeMs) && unit.slotTimeMs > 0, () => `bad slot time ${unit.slotTimeMs}`);
  assert(Number.isSafeInteger(unit.enqueueTimeMs) && unit.enqueueTimeMs >= 0, () => `bad enqueue time ${unit.enqueueTimeMs}`);
  assert(Number.isSafeInteger(unit.offsetPy) && unit.offsetPy >= 0, () => `bad offsetPy ${unit.offsetPy}`);
  assert(Number.isInteger(unit.sizePy) && unit.sizePy > 0 && unit.sizePy <= 0x7fff_ffff, () => `bad sizePy ${unit.sizePy}`);
  assert(Number.isInteger(unit.keyHash) && unit.keyHash >= 0 && unit.keyHash <= 0xffff_ffff, () => `bad keyHash ${unit.keyHash}`);
  const view = new DataView(target.buffer, target.byteOffset + at, TIMER_UNIT_BYTES);
  view.setUint32(0, TIMER_UNIT_BYTES);
  view.setUint32(4, unit.magic);
  putInt64(view, 8, unit.prevPos);
  putInt64(view, 16, unit.slotTimeMs);
  putInt64(view, 24, unit.enqueueTimeMs);
  putInt64(view, 32, unit.offsetPy);
  view.setUint32(40, unit.sizePy);
  view.setUint32(44, unit.keyHash);
  view.setUint32(48, 0);
  view.setUint32(52, crc32(target.subarray(at, at + CRC_COVERED_BYTES)));
}

/** Decodes the unit at `at` of `bytes`, found at log position `pos`; null when it fails any check. */
export function decodeUnit(bytes: Uint8Array, at: number, pos: number): TimerUnit | null {
  if (at + TIMER_UNIT_BYTES > bytes.length) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, TIMER_UNIT_BYTES);
  if (view.getUint32(0) !== TIMER_UNIT_BYTES) return null;
  if (view.getUint32(52) !== crc32(bytes.subarray(at, at + CRC_COVERED_BYTES))) return null;
  const magic = view.getUint32(4);
  if ((magic & ~MAGIC_BITS) !== 0 || !hasMagic(magic, TimerMagic.DEFAULT)) return null;
  const prevPos = getInt64(view, 8);
  const slotTimeMs = getInt64(view, 16);
  const enqueueTimeMs = getInt64(view, 24);
  const offsetPy = getInt64(view, 32);
  const sizePy = view.getUint32(40);
  const keyHash = view.getUint32(44);
  if (prevPos === undefined || prevPos >= pos || (prevPos !== -1 && prevPos % TIMER_UNIT_BYTES !== 0)) return null;
  if (slotTimeMs === undefined || slotTimeMs <= 0 || enqueueTimeMs === undefined || enqueueTimeMs < 0) return null;
  if (offsetPy === undefined || offsetPy < 0 || sizePy === 0 || sizePy > 0x7fff_ffff || view.getUint32(48) !== 0) return null;
  return { pos, magic, prevPos, slotTimeMs, enqueueTimeMs, offsetPy, sizePy, keyHash };
}

// ---------------------------------------------------------------------------------------------------------
// The log.

/** How to open the log. */
export type TimerLogOptions = {
  readonly dir: string;
  readonly fs: StorageFs;
  /** Rounded down to whole units. */
  readonly fileSizeBytes?: number;
  readonly writeBufferBytes?: number;
  /** Units at or after this position are handed to `onReplay` during the scan. */
  readonly replayFromPos: number;
  readonly onReplay: (unit: TimerUnit) => void;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'error'>;
};

/** What the scan at open found. */
export type TimerLogRecovery = {
  readonly unitsScanned: number;
  readonly unitsReplayed: number;
  /** Bytes cut from the tail (a torn or unsynced write), and files deleted after it. */
  readonly tornBytes: number;
  readonly filesDropped: number;
};

type LogFile = {
  readonly startPos: number;
  readonly path: string;
  /** Bytes in the file (what was written to it). */
  lengthBytes: number;
  /** The latest slot time of any unit in the file; -1 while it holds none. */
  maxSlotTimeMs: number;
};

type Block = { readonly key: number; readonly bytes: Uint8Array; readonly validBytes: number };

/** The timer log (see the header). Single-threaded, like everything in the store. */
export class TimerLog {
  readonly dir: string;
  readonly fileSizeBytes: number;
  /** What open found. */
  readonly recovery: TimerLogRecovery;
  readonly #fs: StorageFs;
  readonly #files: LogFile[] = [];
  readonly #buffer: Uint8Array;
  #bufferStartPos: number;
  #bufferBytes = 0;
  #endPos: number;
  #syncedPos: number;
  #writeFd: number | null = null;
  #writeFile: LogFile | null = null;
  readonly #dirty = new Set<LogFile>();
  #newFiles = false;
  readonly #blocks = new Map<number, Block>();
  readonly #blockBytes: number;

  private constructor(options: TimerLogOptions, fileSizeBytes: number) {
    this.dir = options.dir;
    this.#fs = options.fs;
    this.fileSizeBytes = fileSizeBytes;
    const bufferBytes = Math.max(TIMER_UNIT_BYTES, Math.floor((options.writeBufferBytes ?? TIMER_LOG_DEFAULTS.writeBufferBytes) / TIMER_UNIT_BYTES) * TIMER_UNIT_BYTES);
    this.#buffer = new Uint8Array(Math.min(bufferBytes, fileSizeBytes));
    this.#blockBytes = Math.min(TIMER_LOG_DEFAULTS.readBlockBytes, fileSizeBytes);
    this.#endPos = 0;
    this.#bufferStartPos = 0;
    this.#syncedPos = 0;
    this.recovery = { unitsScanned: 0, unitsReplayed: 0, tornBytes: 0, filesDropped: 0 };
  }

  /** Opens (creating the directory) and recovers the log; see the recovery rule in the header. */
  static open(options: TimerLogOptions): TimerLog {
    const requested = options.fileSizeBytes ?? TIMER_LOG_DEFAULTS.fileSizeBytes;
    const fileSizeBytes = Math.floor(requested / TIMER_UNIT_BYTES) * TIMER_UNIT_BYTES;
    assert(fileSizeBytes >= TIMER_UNIT_BYTES && Number.isSafeInteger(fileSizeBytes), () => `timer log file size ${requested} holds no unit`);
    const log = new TimerLog(options, fileSizeBytes);
    timerIo(options.dir, 'mkdir', () => options.fs.mkdirSync(options.dir, { recursive: true }));
    (log as { recovery: TimerLogRecovery }).recovery = log.#scan(options);
    return log;
  }

  /** Position the next unit gets. */
  get endPos(): number {
    return this.#endPos;
  }

  /** Position of the oldest unit kept (everything before was deleted). */
  get firstPos(): number {
    return this.#files[0]?.startPos ?? this.#endPos;
  }

  /** Everything before this position was made durable by `sync`. */
  get syncedPos(): number {
    return this.#syncedPos;
  }

  /** Bytes of the log on disk, written or buffered. */
  get diskBytes(): number {
    let total = 0;
    for (const file of this.#files) total += file.lengthBytes;
    return total + this.#bufferBytes;
  }

  /** Files in the log (oldest first): their start position and latest slot time. */
  files(): { startPos: number; maxSlotTimeMs: number }[] {
    return this.#files.map((file) => ({ startPos: file.startPos, maxSlotTimeMs: file.maxSlotTimeMs }));
  }

  /** Appends a unit; returns its position. */
  append(unit: TimerUnitInput): number {
    const pos = this.#endPos;
    assert(unit.prevPos < pos, 'a unit links only to earlier units');
    if (this.#bufferBytes === 0) this.#bufferStartPos = pos;
    const file = this.#fileForAppend(pos);
    encodeUnit(this.#buffer, this.#bufferBytes, unit);
    this.#bufferBytes += TIMER_UNIT_BYTES;
    this.#endPos = pos + TIMER_UNIT_BYTES;
    if (unit.slotTimeMs > file.maxSlotTimeMs) file.maxSlotTimeMs = unit.slotTimeMs;
    if (this.#bufferBytes === this.#buffer.length || this.#endPos % this.fileSizeBytes === 0) this.#writeOut();
    return pos;
  }

  /** The unit at `pos` (checked), or null when it is not there or fails its checks. */
  read(pos: number): TimerUnit | null {
    if (!Number.isSafeInteger(pos) || pos < this.firstPos || pos + TIMER_UNIT_BYTES > this.#endPos || pos % TIMER_UNIT_BYTES !== 0) return null;
    if (pos >= this.#bufferStartPos && this.#bufferBytes > 0) return decodeUnit(this.#buffer, pos - this.#bufferStartPos, pos);
    const file = this.#fileOf(pos);
    if (file === undefined) return null;
    const inFile = pos - file.startPos;
    const blockStart = Math.floor(inFile / this.#blockBytes) * this.#blockBytes;
    const key = file.startPos + blockStart;
    let block = this.#blocks.get(key);
    if (block === undefined || block.validBytes < inFile - blockStart + TIMER_UNIT_BYTES) block = this.#loadBlock(file, key, blockStart);
    else {
      // Most recently used last: Map iteration order is the LRU order.
      this.#blocks.delete(key);
      this.#blocks.set(key, block);
    }
    return decodeUnit(block.bytes, inFile - blockStart, pos);
  }

  /** Writes what is buffered and fdatasyncs every file written since the last sync; returns syncedPos. */
  sync(): number {
    this.#writeOut();
    for (const file of this.#dirty) {
      const fd = file === this.#writeFile && this.#writeFd !== null ? this.#writeFd : null;
      if (fd !== null) timerIo(file.path, 'fdatasync', () => this.#fs.fdatasyncSync(fd));
      else this.#withFd(file, 'r+', (other) => this.#fs.fdatasyncSync(other));
    }
    this.#dirty.clear();
    if (this.#newFiles) {
      timerIo(this.dir, 'fsync', () => fsyncDirectory(this.#fs, this.dir));
      this.#newFiles = false;
    }
    this.#syncedPos = this.#endPos;
    return this.#syncedPos;
  }

  /**
   * Deletes files from the oldest while `dead(maxSlotTimeMs)` holds for them and they lie wholly before
   * `beforePos` (a synced position) and the file being written; returns the files deleted.
   */
  deleteOldFiles(dead: (maxSlotTimeMs: number) => boolean, beforePos: number): number {
    let deleted = 0;
    for (;;) {
      const file = this.#files[0];
      if (file === undefined || file === this.#writeFile || file.startPos + this.fileSizeBytes > beforePos || !dead(file.maxSlotTimeMs)) break;
      timerIo(file.path, 'unlink', () => this.#fs.unlinkSync(file.path));
      this.#files.shift();
      this.#dirty.delete(file);
      for (const key of [...this.#blocks.keys()]) if (key >= file.startPos && key < file.startPos + this.fileSizeBytes) this.#blocks.delete(key);
      deleted++;
    }
    if (deleted > 0) timerIo(this.dir, 'fsync', () => fsyncDirectory(this.#fs, this.dir));
    return deleted;
  }

  /** Closes the file being written (nothing is written: call sync first to keep the buffer). */
  close(): void {
    if (this.#writeFd !== null) {
      const fd = this.#writeFd;
      this.#writeFd = null;
      this.#writeFile = null;
      timerIo(this.dir, 'close', () => this.#fs.closeSync(fd));
    }
    this.#blocks.clear();
  }

  // ------------------------------------------------------------------------------------------ internals

  #fileOf(pos: number): LogFile | undefined {
    const first = this.#files[0];
    if (first === undefined) return undefined;
    const file = this.#files[Math.floor((pos - first.startPos) / this.fileSizeBytes)];
    return file !== undefined && pos >= file.startPos && pos < file.startPos + this.fileSizeBytes ? file : undefined;
  }

  /** The file `pos` is appended to, created (and opened for writing) when it is the first unit of it. */
  #fileForAppend(pos: number): LogFile {
    const current = this.#writeFile;
    if (current !== null && pos < current.startPos + this.fileSizeBytes) return current;
    const startPos = pos - (pos % this.fileSizeBytes);
    assert(startPos === pos || current === null, 'a new file starts at its first unit');
    let file = this.#fileOf(pos);
    const mode = file === undefined ? 'w+' : 'r+';
    if (file === undefined) {
      file = { startPos, path: path.join(this.dir, fileNameOf(startPos)), lengthBytes: 0, maxSlotTimeMs: -1 };
      this.#files.push(file);
      this.#newFiles = true;
    }
    if (this.#writeFd !== null) {
      const old = this.#writeFd;
      timerIo(this.dir, 'close', () => this.#fs.closeSync(old));
    }
    const target = file;
    this.#writeFd = timerIo(target.path, 'open', () => this.#fs.openSync(target.path, mode, 0o644));
    this.#writeFile = target;
    return target;
  }

  /** Writes the buffered units into their file (not synced). */
  #writeOut(): void {
    if (this.#bufferBytes === 0) return;
    const file = this.#writeFile;
    const fd = this.#writeFd;
    assert(file !== null && fd !== null, 'buffered units have a file');
    const at = this.#bufferStartPos - file.startPos;
    assert(at === file.lengthBytes && at + this.#bufferBytes <= this.fileSizeBytes, 'units are written in order, inside their file');
    timerIo(file.path, 'write', () => writeFully(this.#fs, fd, this.#buffer, 0, this.#bufferBytes, at));
    file.lengthBytes = at + this.#bufferBytes;
    this.#dirty.add(file);
    this.#bufferBytes = 0;
    this.#bufferStartPos = this.#endPos;
  }

  #withFd<T>(file: LogFile, flags: string, run: (fd: number) => T): T {
    const fd = timerIo(file.path, 'open', () => this.#fs.openSync(file.path, flags));
    try {
      return timerIo(file.path, 'io', () => run(fd));
    } finally {
      this.#fs.closeSync(fd);
    }
  }

  #loadBlock(file: LogFile, key: number, blockStart: number): Block {
    const validBytes = Math.min(this.#blockBytes, file.lengthBytes - blockStart);
    const bytes = new Uint8Array(this.#blockBytes);
    const read = validBytes <= 0 ? 0 : this.#withFd(file, 'r', (fd) => readFully(this.#fs, fd, bytes, validBytes, blockStart));
    const block: Block = { key, bytes, validBytes: read };
    this.#blocks.delete(key);
    this.#blocks.set(key, block);
    while (this.#blocks.size > TIMER_LOG_DEFAULTS.readBlocksMax) this.#blocks.delete(this.#blocks.keys().next().value!);
    return block;
  }

  /** Lists, checks and replays the files; cuts a torn tail. */
  #scan(options: TimerLogOptions): TimerLogRecovery {
    const names = timerIo(this.dir, 'readdir', () => this.#fs.readdirSync(this.dir));
    const starts = names.flatMap((name) => {
      const start = parseFileName(name);
      return start === null ? [] : [start];
    });
    starts.sort((a, b) => a - b);
    let scanned = 0;
    let replayed = 0;
    let tornBytes = 0;
    let filesDropped = 0;
    let ended = false;
    const chunk = new Uint8Array(Math.min(TIMER_LOG_DEFAULTS.scanChunkBytes, this.fileSizeBytes));
    for (const startPos of starts) {
      const filePath = path.join(this.dir, fileNameOf(startPos));
      const previous = this.#files.at(-1);
      const contiguous = previous === undefined ? startPos % this.fileSizeBytes === 0 : startPos === previous.startPos + this.fileSizeBytes && previous.lengthBytes === this.fileSizeBytes;
      if (ended || !contiguous) {
        options.log?.warn({ file: filePath }, 'timer log file after the end of the log deleted');
        tornBytes += timerIo(filePath, 'stat', () => this.#fs.statSync(filePath).size);
        timerIo(filePath, 'unlink', () => this.#fs.unlinkSync(filePath));
        filesDropped++;
        ended = true;
        continue;
      }
      const file: LogFile = { startPos, path: filePath, lengthBytes: 0, maxSlotTimeMs: -1 };
      const sizeBytes = timerIo(filePath, 'stat', () => this.#fs.statSync(filePath).size);
      const valid = this.#scanFile(file, Math.min(sizeBytes, this.fileSizeBytes), chunk, options, (replay) => {
        scanned++;
        if (replay) replayed++;
      });
      file.lengthBytes = valid;
      this.#files.push(file);
      if (valid < sizeBytes) {
        options.log?.warn({ file: filePath, validBytes: valid, sizeBytes }, 'timer log torn tail truncated');
        tornBytes += sizeBytes - valid;
        this.#withFd(file, 'r+', (fd) => {
          this.#fs.ftruncateSync(fd, valid);
          this.#fs.fsyncSync(fd);
        });
      }
      if (valid < this.fileSizeBytes) ended = true;
    }
    if (filesDropped > 0) timerIo(this.dir, 'fsync', () => fsyncDirectory(this.#fs, this.dir));
    const last = this.#files.at(-1);
    if (last !== undefined && last.lengthBytes === 0 && this.#files.length > 1) {
      // An empty last file is recreated by the next append; keep the list ending at a written file.
      timerIo(last.path, 'unlink', () => this.#fs.unlinkSync(last.path));
      this.#files.pop();
    }
    const tail = this.#files.at(-1);
    this.#endPos = tail === undefined ? 0 : tail.startPos + tail.lengthBytes;
    this.#bufferStartPos = this.#endPos;
    this.#syncedPos = this.#endPos;
    return { unitsScanned: scanned, unitsReplayed: replayed, tornBytes, filesDropped };
  }

  /** Checks one file's units in chunks; returns the bytes of its valid prefix. */
  #scanFile(file: LogFile, sizeBytes: number, chunk: Uint8Array, options: TimerLogOptions, counted: (replay: boolean) => void): number {
    let valid = 0;
    return this.#withFd(file, 'r', (fd) => {
      while (valid + TIMER_UNIT_BYTES <= sizeBytes) {
        const want = Math.min(chunk.length, sizeBytes - valid);
        const got = readFully(this.#fs, fd, chunk, want, valid);
        let at = 0;
        for (; at + TIMER_UNIT_BYTES <= got; at += TIMER_UNIT_BYTES) {
          const unit = decodeUnit(chunk, at, file.startPos + valid + at);
          if (unit === null) return valid + at;
          if (unit.slotTimeMs > file.maxSlotTimeMs) file.maxSlotTimeMs = unit.slotTimeMs;
          const replay = unit.pos >= options.replayFromPos;
          if (replay) options.onReplay(unit);
          counted(replay);
        }
        valid += at;
        if (got < want) break;
      }
      return valid;
    });
  }
}

/** Reads up to `length` bytes at `position` into the start of `target`; returns the bytes read. */
function readFully(storageFs: StorageFs, fd: number, target: Uint8Array, length: number, position: number): number {
  let read = 0;
  while (read < length) {
    const n = storageFs.readSync(fd, target, read, length - read, position + read);
    if (n === 0) break;
    read += n;
  }
  return read;
}
