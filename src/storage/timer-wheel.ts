/**
 * The timer wheel: `<storePathRootDir>/timerwheel`, one 32-byte slot per precision step, 2 * slotsTotal
 * slots (RocketMQ's TimerWheel and Slot, same layout). Slot i holds the time t with
 * (t / precisionMs) mod (2 * slotsTotal) == i that was written there last; a lookup for another time finds
 * the slot "empty". The file has no header: its size is exactly 2 * slotsTotal * 32 bytes (RocketMQ
 * refuses another size, so do we). Integers are big-endian; int64 fields are safe integers or -1.
 *
 * Slot, 32 bytes:
 *
 * | offset | size | field      | meaning                                                              |
 * |--------|------|------------|----------------------------------------------------------------------|
 * | 0      | 8    | timeSlots  | the slot's time / precisionMs (RocketMQ stores it so); 0: never used |
 * | 8      | 8    | firstPos   | timer-log position of the slot's oldest unit                         |
 * | 16     | 8    | lastPos    | position of its newest unit: the head of the chain                   |
 * | 24     | 4    | num        | units chained in the slot                                            |
 * | 28     | 4    | deleteNum  | of those, recall delete markers (RocketMQ's unused `magic` field)    |
 *
 * Invariants: firstPos <= lastPos; num >= 1 and deleteNum <= num for a used slot; lastPos only grows
 * while a slot keeps its time. The whole wheel lives in one fixed buffer allocated at open (memory is
 * 64 * slotsTotal bytes whatever the number of timers: 38.7 MB for RocketMQ's 7 days of 1 s slots);
 * slots changed since the last `flush` are tracked by 4 KiB page and written back in place, then
 * fdatasynced.
 *
 * Recovery rule: the wheel on disk may be older than the timer log (it is flushed after the log is
 * synced, and a crash can stop a flush half way, leaving some slots old and some new; each slot lies in
 * one disk sector, so a slot itself is old or new). timer-store.ts re-links the log's units from the
 * checkpoint's lastTimerLogFlushPos on, skipping a unit whose position is not past its slot's lastPos:
 * the replay is idempotent, so any mix of old and new slots ends up as the log says.
 */
import type { StorageFs } from './storage-fs.ts';
import { fsyncDirectory, writeFully } from './storage-fs.ts';
import { assert } from '../runtime/assert.ts';
import { TimerStoreError, getInt64, putInt64, timerIo, viewOf } from './timer-format.ts';

/** Bytes of one slot (Slot.SIZE). */
export const TIMER_SLOT_BYTES = 32;
/** Slots per wheel flush page. */
const PAGE_BYTES = 4096;

/** RocketMQ's wheel geometry (TimerMessageStore.TIMER_WHEEL_TTL_DAY * DAY_SECS, TIMER_BLANK_SLOTS). */
export const TIMER_WHEEL_DEFAULTS = {
  /** Slots of the wheel's span (the file holds twice as many). */
  slotsTotal: 7 * 24 * 3600,
  /** Slots the roll window keeps free below slotsTotal. */
  blankSlots: 60,
} as const;

/** One slot as read. */
export type TimerSlot = {
  readonly timeMs: number;
  readonly firstPos: number;
  readonly lastPos: number;
  readonly num: number;
  readonly deleteNum: number;
};

/** How to open the wheel. */
export type TimerWheelOptions = {
  readonly path: string;
  readonly fs: StorageFs;
  readonly slotsTotal: number;
  readonly precisionMs: number;
};

/** The timer wheel (see the header). */
export class TimerWheel {
  readonly path: string;
  readonly slotsTotal: number;
  readonly precisionMs: number;
  /** Slots in the file: 2 * slotsTotal. */
  readonly entries: number;
  /** Whether open created the file (a new wheel: every slot empty). */
  readonly created: boolean;
  readonly #fs: StorageFs;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #dirtyPages: Uint8Array;
  readonly #dirtyList: number[] = [];

  private constructor(options: TimerWheelOptions, bytes: Uint8Array, created: boolean) {
    this.path = options.path;
    this.#fs = options.fs;
    this.slotsTotal = options.slotsTotal;
    this.precisionMs = options.precisionMs;
    this.entries = 2 * options.slotsTotal;
    this.created = created;
    this.#bytes = bytes;
    this.#view = viewOf(bytes);
    this.#dirtyPages = new Uint8Array(Math.ceil(bytes.length / PAGE_BYTES));
  }

  /** Opens the wheel file, creating it (all slots empty) when missing; reads it whole into memory. */
  static open(options: TimerWheelOptions): TimerWheel {
    assert(Number.isSafeInteger(options.slotsTotal) && options.slotsTotal >= 2, () => `bad slotsTotal ${options.slotsTotal}`);
    assert(Number.isSafeInteger(options.precisionMs) && options.precisionMs >= 1, () => `bad precisionMs ${options.precisionMs}`);
    const sizeBytes = 2 * options.slotsTotal * TIMER_SLOT_BYTES;
    const storageFs = options.fs;
    const file = options.path;
    const bytes = new Uint8Array(sizeBytes);
    if (!storageFs.existsSync(file)) {
      const fd = timerIo(file, 'create', () => storageFs.openSync(file, 'w+', 0o644));
      try {
        timerIo(file, 'ftruncate', () => storageFs.ftruncateSync(fd, sizeBytes));
        timerIo(file, 'fsync', () => storageFs.fsyncSync(fd));
      } finally {
        storageFs.closeSync(fd);
      }
      const slash = file.lastIndexOf('/');
      timerIo(file, 'fsync directory', () => fsyncDirectory(storageFs, slash > 0 ? file.slice(0, slash) : '.'));
      return new TimerWheel(options, bytes, true);
    }
    const fd = timerIo(file, 'open', () => storageFs.openSync(file, 'r'));
    try {
      const actual = timerIo(file, 'fstat', () => storageFs.fstatSync(fd).size);
      if (actual !== sizeBytes) {
        throw new TimerStoreError('TIMER_WHEEL_SIZE_MISMATCH', `Timer wheel length:${actual} != expected:${sizeBytes} (${file})`);
      }
      let read = 0;
      while (read < sizeBytes) {
        const n = timerIo(file, 'read', () => storageFs.readSync(fd, bytes, read, sizeBytes - read, read));
        if (n === 0) break;
        read += n;
      }
      assert(read === sizeBytes, () => `timer wheel ${file} read ${read} of ${sizeBytes} bytes`);
    } finally {
      storageFs.closeSync(fd);
    }
    return new TimerWheel(options, bytes, false);
  }

  /** Bytes the wheel holds in memory (and on disk). */
  get sizeBytes(): number {
    return this.#bytes.length;
  }

  /** The slot index of `timeMs` (getSlotIndex). */
  indexOf(timeMs: number): number {
    return Math.floor(timeMs / this.precisionMs) % this.entries;
  }

  /** Whatever slot `timeMs` maps to, with the time it holds (0 when never used). */
  rawSlot(timeMs: number): TimerSlot {
    return this.#read(this.indexOf(timeMs));
  }

  /** The slot of `timeMs`, or null when its place holds another time or nothing (getSlot's -1). */
  slot(timeMs: number): TimerSlot | null {
    const slot = this.rawSlot(timeMs);
    return slot.timeMs === this.#floor(timeMs) ? slot : null;
  }

  /** The slot at index `index` (for scans over the whole wheel). */
  slotAtIndex(index: number): TimerSlot {
    assert(Number.isInteger(index) && index >= 0 && index < this.entries, () => `bad slot index ${index}`);
    return this.#read(index);
  }

  /** Writes a slot at its time's place (putSlot); checked first. */
  put(slot: TimerSlot): void {
    assert(slot.timeMs > 0 && slot.timeMs % this.precisionMs === 0, () => `slot time ${slot.timeMs} is not a positive multiple of ${this.precisionMs}`);
    assert(slot.firstPos >= 0 && slot.firstPos <= slot.lastPos, () => `slot positions ${slot.firstPos}..${slot.lastPos}`);
    assert(slot.num >= 1 && slot.deleteNum >= 0 && slot.deleteNum <= slot.num && slot.num <= 0x7fff_ffff, () => `slot counts ${slot.num}/${slot.deleteNum}`);
    const index = this.indexOf(slot.timeMs);
    const at = index * TIMER_SLOT_BYTES;
    putInt64(this.#view, at, slot.timeMs / this.precisionMs);
    putInt64(this.#view, at + 8, slot.firstPos);
    putInt64(this.#view, at + 16, slot.lastPos);
    this.#view.setUint32(at + 24, slot.num);
    this.#view.setUint32(at + 28, slot.deleteNum);
    this.#markDirty(at);
  }

  #markDirty(at: number): void {
    const page = Math.floor(at / PAGE_BYTES);
    if (this.#dirtyPages[page] === 0) {
      this.#dirtyPages[page] = 1;
      this.#dirtyList.push(page);
    }
  }

  /** Empties the slot at `index` (a slot whose chain was found broken at recovery). */
  clear(index: number): void {
    assert(Number.isInteger(index) && index >= 0 && index < this.entries, () => `bad slot index ${index}`);
    this.#bytes.fill(0, index * TIMER_SLOT_BYTES, (index + 1) * TIMER_SLOT_BYTES);
    this.#markDirty(index * TIMER_SLOT_BYTES);
  }

  /** Slots changed since the last flush, in pages. */
  get dirtyPages(): number {
    return this.#dirtyList.length;
  }

  /** Writes the changed pages in place and fdatasyncs the file. */
  flush(): void {
    if (this.#dirtyList.length === 0) return;
    const pages = this.#dirtyList.sort((a, b) => a - b);
    const fd = timerIo(this.path, 'open', () => this.#fs.openSync(this.path, 'r+'));
    try {
      // Runs of adjacent pages go out as one write.
      for (let i = 0; i < pages.length; ) {
        let j = i + 1;
        while (j < pages.length && pages[j] === pages[j - 1]! + 1) j++;
        const from = pages[i]! * PAGE_BYTES;
        const to = Math.min(this.#bytes.length, (pages[j - 1]! + 1) * PAGE_BYTES);
        timerIo(this.path, 'write', () => writeFully(this.#fs, fd, this.#bytes, from, to - from, from));
        i = j;
      }
      timerIo(this.path, 'fdatasync', () => this.#fs.fdatasyncSync(fd));
    } finally {
      this.#fs.closeSync(fd);
    }
    for (const page of pages) this.#dirtyPages[page] = 0;
    this.#dirtyList.length = 0;
  }

  #floor(timeMs: number): number {
    return Math.floor(timeMs / this.precisionMs) * this.precisionMs;
  }

  #read(index: number): TimerSlot {
    const at = index * TIMER_SLOT_BYTES;
    const timeSlots = getInt64(this.#view, at);
    const firstPos = getInt64(this.#view, at + 8);
    const lastPos = getInt64(this.#view, at + 16);
    const num = this.#view.getUint32(at + 24);
    const deleteNum = this.#view.getUint32(at + 28);
    if (timeSlots === undefined || timeSlots <= 0 || firstPos === undefined || lastPos === undefined || firstPos < 0 || lastPos < firstPos || num < 1 || deleteNum > num) {
      // Never used, or bytes no writer of ours produced: either way the place holds no chain.
      return { timeMs: 0, firstPos: -1, lastPos: -1, num: 0, deleteNum: 0 };
    }
    return { timeMs: timeSlots * this.precisionMs, firstPos, lastPos, num, deleteNum };
  }
}
