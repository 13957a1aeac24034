/**
 * The timer store: RocketMQ 5's TimerMessageStore minus its threads. It keeps timer messages (stored by
 * the send path in rmq_sys_wheel_timer queue 0 with TIMER_OUT_MS = their slot time) in a timer wheel
 * (timer-wheel.ts) whose slots head chains of units in a timer log (timer-log.ts), and checkpoints its
 * progress in config/timercheck (timer-checkpoint.ts). The timer-service actor drives it: it reads the
 * queue and calls `enqueue`; it asks `nextDueSlot`, walks the slot with `readChain`, re-puts what it
 * finds and calls `finishSlot`; it reports the CommitLog's durable offset to `checkpoint`. Time comes
 * from the caller, files through the StorageFs seam.
 *
 * Slots and time. A slot is a multiple of precisionMs. The send path rounds a deliver time D down to
 * the slot T with T < D <= T + precisionMs (HookUtils.transformTimerMessage), so slot T is due, and
 * dequeued, once now >= T + precisionMs (RocketMQ: currReadTimeMs < currWriteTimeMs): never early, at
 * most one step (plus a tick) late. readTimeMs (RocketMQ's currReadTimeMs) is the oldest slot not yet
 * dequeued; closedBeforeMs is readTimeMs, or readTimeMs + precisionMs while that slot is being walked.
 *
 * Enqueue (doEnqueue): a timer whose slot is before closedBeforeMs is late: its slot was dequeued
 * already (its time has passed: closedBeforeMs <= now) or it arrives again after a crash. It is linked
 * with the LATE bit into the slot at closedBeforeMs, the next to be dequeued, rather than delivered
 * at once as RocketMQ does: its delete marker, if any, follows it in the queue and may be late too, and
 * only in one slot can the marker still stop it. Else the timer goes to its own slot. A slot
 * timerRollWindowSlot steps or more ahead of now is too far: the unit goes into an earlier slot with the
 * ROLL bit, and at that slot the message is put back into rmq_sys_wheel_timer to be enqueued again
 * (RocketMQ's roll; the wheel never needs to span more than the window). A unit whose slot's place in
 * the wheel still holds an older slot not yet dequeued is rolled from that older slot the same way; one
 * whose place holds a later slot (the dequeue lags more than the wheel spans) is rolled from the next
 * slot to dequeue. When the place needed holds a slot already dequeued but not yet checkpointed (a crash
 * must find it again), the answer is `full`: the caller retries after the next checkpoint.
 *
 * Recall. A delete marker (TIMER_DEL_UNIQKEY) is a unit with the DELETE bit in the same slot as the
 * message it recalls; the slot's deleteNum counts them, so the caller collects their keys before it
 * delivers the slot's other units.
 *
 * Durability (at least once, never lost). queueOffset (the next queue offset to enqueue) and readTimeMs
 * move in memory as the caller reports progress, each with the CommitLog offset that must be durable
 * first (the enqueued messages' end; the slot's re-puts' end). `checkpoint(durableOffset)` confirms every
 * step the durable offset covers, syncs the log, flushes the wheel, and only then writes timercheck with
 * the confirmed values. A crash therefore finds: every unit before lastTimerLogFlushPos linked in the
 * wheel; every slot from lastReadTimeMs on still in the wheel (a place is reused only when its slot is
 * older than the checkpoint's lastReadTimeMs, and log files are deleted only when all their slots are);
 * the queue re-read from lastTimerQueueOffset, its messages enqueued again (late ones with their markers
 * into one slot). So a timer may be delivered twice after a crash, never lost, and a recalled one is
 * suppressed again.
 *
 * Recovery rule: read timercheck (missing: a new store), open the wheel (missing: every slot empty, so
 * replay the whole log), scan the log (torn tail cut) and re-link every unit from lastTimerLogFlushPos
 * on whose slot is not yet delivered, then drop slots whose chain points past the log's end.
 *
 * Memory is bounded by configuration, not by the number of timers: the wheel buffer (64 * slotsTotal
 * bytes, 38.7 MB with RocketMQ's defaults), the log's write buffer and read cache (about 1.5 MB), the
 * recovery scan chunk (1.2 MB) and two lists of at most unconfirmedMax progress marks. A slot is walked
 * by the caller in pages of `max` units. Disk holds 56 bytes per pending timer plus dead units of files
 * not yet deleted.
 */
import type { Logger } from 'pino';
import { assert } from '../runtime/assert.ts';
import type { StorageFs } from './storage-fs.ts';
import { type TimerCheckpoint, readTimerCheckpoint, writeTimerCheckpoint } from './timer-checkpoint.ts';
import { TimerStoreError, timerIo, timerPaths, type TimerPaths } from './timer-format.ts';
import { TimerLog, TimerMagic, TIMER_LOG_DEFAULTS, TIMER_UNIT_BYTES, hasMagic, type TimerLogRecovery, type TimerUnit } from './timer-log.ts';
import { TimerWheel, TIMER_WHEEL_DEFAULTS, type TimerSlot } from './timer-wheel.ts';

/** Defaults (RocketMQ's MessageStoreConfig and TimerMessageStore constants) and bounds. */
export const TIMER_STORE_DEFAULTS = {
  /** TIMER_WHEEL_TTL_DAY * DAY_SECS. */
  slotsTotal: TIMER_WHEEL_DEFAULTS.slotsTotal,
  /** MessageStoreConfig.timerRollWindowSlot (2 days of slots). */
  timerRollWindowSlot: 3600 * 24 * 2,
  /** MessageStoreConfig.mappedFileSizeTimerLog. */
  timerLogFileSize: TIMER_LOG_DEFAULTS.fileSizeBytes,
  /** Progress marks waiting for the CommitLog to be durable, per kind. */
  unconfirmedMax: 64,
  /** Empty slots one nextDueSlot call steps over at most. */
  slotScanMax: 65_536,
} as const;

/** How to open the store. */
export type TimerStoreOptions = {
  /** storePathRootDir. */
  readonly rootDir: string;
  readonly fs: StorageFs;
  /** timerPrecisionMs. */
  readonly precisionMs: number;
  /** The caller's clock at open. */
  readonly nowMs: number;
  readonly slotsTotal?: number;
  readonly timerRollWindowSlot?: number;
  readonly timerLogFileSize?: number;
  readonly writeBufferBytes?: number;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'error'>;
};

/** A timer to enqueue: a message of rmq_sys_wheel_timer. */
export type TimerEnqueueInput = {
  /** TIMER_OUT_MS: the slot time the send path computed. */
  readonly timerOutMs: number;
  /** Where the message is in the CommitLog. */
  readonly offsetPy: number;
  readonly sizePy: number;
  /** keyHashOf its UNIQ_KEY (timer-log.ts). */
  readonly keyHash: number;
  /** It carries TIMER_DEL_UNIQKEY: a recall's delete marker. */
  readonly isDelete: boolean;
  readonly nowMs: number;
};

/** What became of a timer. */
export type TimerEnqueueResult =
  /**
   * Linked into `slotTimeMs`; `rolled`: it comes back to the timer topic there; `late`: its own slot had
   * been dequeued, so it went into the next one (see the header).
   */
  | { readonly kind: 'wheel'; readonly slotTimeMs: number; readonly rolled: boolean; readonly late: boolean; readonly pos: number }
  /** Its place holds another slot that must stay: retry after `checkpoint` or once the dequeue moved on. */
  | { readonly kind: 'full'; readonly slotTimeMs: number };

/** A slot due for dequeue. */
export type TimerDueSlot = TimerSlot;

/** What open found. */
export type TimerStoreRecovery = {
  readonly checkpoint: TimerCheckpoint | null;
  readonly wheelCreated: boolean;
  readonly log: TimerLogRecovery;
  /** Units whose slot the replay linked (again). */
  readonly unitsRelinked: number;
  /** Slots dropped because their chain pointed outside the log. */
  readonly slotsDropped: number;
};

/** Counters and positions for `stats`. */
export type TimerStoreStats = {
  readonly readTimeMs: number;
  readonly closedBeforeMs: number;
  readonly queueOffset: number;
  readonly confirmedReadTimeMs: number;
  readonly confirmedQueueOffset: number;
  /** Units in slots not yet dequeued (timers and markers; a rolled timer counts once per roll). */
  readonly pendingUnits: number;
  readonly logEndPos: number;
  readonly logFirstPos: number;
  readonly diskBytes: number;
  readonly wheelBytes: number;
  readonly checkpoints: number;
  readonly chainBreaks: number;
};

type Mark = { value: number; endOffset: number };

/** The timer store (see the header). Every method runs on its owner's thread. */
export class TimerStore {
  readonly precisionMs: number;
  readonly slotsTotal: number;
  readonly rollWindowSlots: number;
  readonly paths: TimerPaths;
  readonly recovery: TimerStoreRecovery;
  readonly #fs: StorageFs;
  readonly #wheel: TimerWheel;
  readonly #log: TimerLog;
  readonly #logger: TimerStoreOptions['log'];
  #readTimeMs: number;
  #closedBeforeMs: number;
  #queueOffset: number;
  #confirmedReadTimeMs: number;
  #confirmedQueueOffset: number;
  #pendingUnits = 0;
  #maxEndOffset = 0;
  readonly #queueMarks: Mark[] = [];
  readonly #readMarks: Mark[] = [];
  #checkpoints = 0;
  #counter: number;
  #written = '';
  #chainBreaks = 0;

  private constructor(parts: {
    options: TimerStoreOptions;
    slotsTotal: number;
    rollWindowSlots: number;
    wheel: TimerWheel;
    log: TimerLog;
    readTimeMs: number;
    queueOffset: number;
    counter: number;
    recovery: TimerStoreRecovery;
  }) {
    this.precisionMs = parts.options.precisionMs;
    this.slotsTotal = parts.slotsTotal;
    this.rollWindowSlots = parts.rollWindowSlots;
    this.paths = timerPaths(parts.options.rootDir);
    this.#fs = parts.options.fs;
    this.#logger = parts.options.log;
    this.#wheel = parts.wheel;
    this.#log = parts.log;
    this.#readTimeMs = parts.readTimeMs;
    this.#closedBeforeMs = parts.readTimeMs;
    this.#queueOffset = parts.queueOffset;
    this.#confirmedReadTimeMs = parts.readTimeMs;
    this.#confirmedQueueOffset = parts.queueOffset;
    this.#counter = parts.counter;
    this.recovery = parts.recovery;
  }

  /** Opens and recovers the store (see the recovery rule in the header). */
  static open(options: TimerStoreOptions): TimerStore {
    const precisionMs = options.precisionMs;
    const slotsTotal = options.slotsTotal ?? TIMER_STORE_DEFAULTS.slotsTotal;
    assert(Number.isSafeInteger(precisionMs) && precisionMs >= 1, () => `bad timerPrecisionMs ${precisionMs}`);
    assert(Number.isSafeInteger(slotsTotal) && slotsTotal >= 4, () => `bad slotsTotal ${slotsTotal}`);
    assert(Number.isSafeInteger(options.nowMs) && options.nowMs > 0, () => `bad nowMs ${options.nowMs}`);
    // RocketMQ: a window outside [2, slotsTotal - TIMER_BLANK_SLOTS] falls back to the largest one.
    const blank = Math.min(TIMER_WHEEL_DEFAULTS.blankSlots, Math.floor(slotsTotal / 4));
    const requestedWindow = options.timerRollWindowSlot ?? TIMER_STORE_DEFAULTS.timerRollWindowSlot;
    const rollWindowSlots = requestedWindow > slotsTotal - blank || requestedWindow < 2 ? slotsTotal - blank : requestedWindow;
    const paths = timerPaths(options.rootDir);
    const checkpoint = readTimerCheckpoint(options.fs, paths.checkpointFile);
    if (checkpoint !== null && (checkpoint.precisionMs !== precisionMs || checkpoint.slotsTotal !== slotsTotal)) {
      throw new TimerStoreError(
        'TIMER_CONFIG_MISMATCH',
        `timer store was written with timerPrecisionMs ${checkpoint.precisionMs} and slotsTotal ${checkpoint.slotsTotal}, now configured ${precisionMs} and ${slotsTotal}`,
      );
    }
    timerIo(options.rootDir, 'mkdir', () => options.fs.mkdirSync(options.rootDir, { recursive: true }));
    const wheel = TimerWheel.open({ path: paths.wheelFile, fs: options.fs, slotsTotal, precisionMs });
    // Without a checkpoint every unit in the log may be pending: replay all, from the oldest slot.
    const readFromCheckpoint = checkpoint?.lastReadTimeMs ?? 0;
    const replayFromPos = checkpoint === null || wheel.created ? 0 : checkpoint.lastTimerLogFlushPos;
    let relinked = 0;
    const log = TimerLog.open({
      dir: paths.logDir,
      fs: options.fs,
      fileSizeBytes: options.timerLogFileSize ?? TIMER_STORE_DEFAULTS.timerLogFileSize,
      ...(options.writeBufferBytes === undefined ? {} : { writeBufferBytes: options.writeBufferBytes }),
      replayFromPos,
      onReplay: (unit) => {
        if (relink(wheel, unit, readFromCheckpoint, options.log)) relinked++;
      },
      ...(options.log === undefined ? {} : { log: options.log }),
    });
    const scan = scanWheel(wheel, log, readFromCheckpoint, options.log);
    const floorNow = Math.floor(options.nowMs / precisionMs) * precisionMs;
    const readTimeMs = checkpoint !== null ? checkpoint.lastReadTimeMs : Math.min(floorNow, scan.minLiveSlotMs ?? floorNow);
    const store = new TimerStore({
      options,
      slotsTotal,
      rollWindowSlots,
      wheel,
      log,
      readTimeMs,
      queueOffset: checkpoint?.lastTimerQueueOffset ?? 0,
      counter: checkpoint?.counter ?? 0,
      recovery: { checkpoint, wheelCreated: wheel.created, log: log.recovery, unitsRelinked: relinked, slotsDropped: scan.dropped },
    });
    store.#pendingUnits = scan.pendingUnits;
    options.log?.info(
      { readTimeMs, queueOffset: store.#queueOffset, logEndPos: log.endPos, pendingUnits: scan.pendingUnits, relinked, slotsDropped: scan.dropped },
      'timer store recovered',
    );
    return store;
  }

  /** The oldest slot not yet dequeued (RocketMQ's currReadTimeMs). */
  get readTimeMs(): number {
    return this.#readTimeMs;
  }

  /** Slots before this take no more units (their timers are late: they go into the slot at this time). */
  get closedBeforeMs(): number {
    return this.#closedBeforeMs;
  }

  /** The next offset of rmq_sys_wheel_timer queue 0 to enqueue (RocketMQ's currQueueOffset). */
  get queueOffset(): number {
    return this.#queueOffset;
  }

  /** lastReadTimeMs of the last checkpoint written (or found at open). */
  get confirmedReadTimeMs(): number {
    return this.#confirmedReadTimeMs;
  }

  /** lastTimerQueueOffset of the last checkpoint written (or found at open). */
  get confirmedQueueOffset(): number {
    return this.#confirmedQueueOffset;
  }

  /** Units in slots not yet dequeued. */
  get pendingUnits(): number {
    return this.#pendingUnits;
  }

  /** Puts a timer into its slot, rolls it, or links it late (see the header). */
  enqueue(input: TimerEnqueueInput): TimerEnqueueResult {
    const p = this.precisionMs;
    assert(Number.isSafeInteger(input.timerOutMs), () => `bad TIMER_OUT_MS ${input.timerOutMs}`);
    const slotTimeMs = Math.floor(input.timerOutMs / p) * p;
    const writeTimeMs = Math.floor(input.nowMs / p) * p;
    let placeMs = slotTimeMs;
    let magic = TimerMagic.DEFAULT | (input.isDelete ? TimerMagic.DELETE : 0);
    const windowMs = this.rollWindowSlots * p;
    if (slotTimeMs < this.#closedBeforeMs) {
      placeMs = this.#closedBeforeMs;
      magic |= TimerMagic.LATE;
    } else if (slotTimeMs - writeTimeMs >= windowMs) {
      // doEnqueue's roll: half a window ahead when the rest is short, else a whole window.
      const beyondMs = slotTimeMs - writeTimeMs - windowMs;
      placeMs = beyondMs < Math.floor(this.rollWindowSlots / 3) * p ? writeTimeMs + Math.floor(this.rollWindowSlots / 2) * p : writeTimeMs + windowMs;
      placeMs = Math.max(placeMs, this.#closedBeforeMs);
      magic |= TimerMagic.ROLL;
    }
    const place = this.#place(placeMs, magic);
    if (place === null) return { kind: 'full', slotTimeMs: placeMs };
    ({ placeMs, magic } = place);
    const slot = place.slot;
    const isDelete = hasMagic(magic, TimerMagic.DELETE);
    const pos = this.#log.append({
      magic,
      prevPos: slot === null ? -1 : slot.lastPos,
      slotTimeMs: placeMs,
      enqueueTimeMs: writeTimeMs,
      offsetPy: input.offsetPy,
      sizePy: input.sizePy,
      keyHash: input.keyHash,
    });
    this.#wheel.put({
      timeMs: placeMs,
      firstPos: slot === null ? pos : slot.firstPos,
      lastPos: pos,
      num: (slot?.num ?? 0) + 1,
      deleteNum: (slot?.deleteNum ?? 0) + (isDelete && !hasMagic(magic, TimerMagic.ROLL) ? 1 : 0),
    });
    this.#pendingUnits++;
    return { kind: 'wheel', slotTimeMs: placeMs, rolled: hasMagic(magic, TimerMagic.ROLL), late: hasMagic(magic, TimerMagic.LATE), pos };
  }

  /**
   * Where a unit meant for `placeMs` goes: that slot (new or with units), or, when its place in the wheel
   * holds another slot that must stay, a slot to roll from: the older slot holding the place, or, when a
   * later slot holds it (the dequeue lags more than the wheel spans), the next slot to dequeue. null: full.
   */
  #place(placeMs: number, magic: number): { placeMs: number; magic: number; slot: TimerSlot | null } | null {
    const existing = this.#wheel.rawSlot(placeMs);
    if (existing.timeMs === placeMs) return { placeMs, magic, slot: existing };
    if (!this.#holds(existing)) return { placeMs, magic, slot: null };
    if (existing.timeMs < this.#closedBeforeMs || hasMagic(magic, TimerMagic.LATE)) return null;
    if (existing.timeMs < placeMs) return { placeMs: existing.timeMs, magic: magic | TimerMagic.ROLL, slot: existing };
    const next = this.#wheel.rawSlot(this.#closedBeforeMs);
    if (next.timeMs === this.#closedBeforeMs) return { placeMs: next.timeMs, magic: magic | TimerMagic.ROLL, slot: next };
    return this.#holds(next) ? null : { placeMs: this.#closedBeforeMs, magic: magic | TimerMagic.ROLL, slot: null };
  }

  /** Whether a place holds a slot that must stay: not yet dequeued, or dequeued after the last checkpoint. */
  #holds(slot: TimerSlot): boolean {
    return slot.timeMs !== 0 && slot.timeMs >= this.#confirmedReadTimeMs;
  }

  /**
   * Every message of the timer queue before `nextQueueOffset` is enqueued; those messages end at
   * CommitLog offset `endOffset` (0: nothing new). The checkpoint takes the offset once that much is
   * durable, so a power loss never leaves lastTimerQueueOffset past what the queue still holds.
   */
  commitQueueOffset(nextQueueOffset: number, endOffset: number): void {
    assert(Number.isSafeInteger(nextQueueOffset) && nextQueueOffset >= 0, () => `bad queue offset ${nextQueueOffset}`);
    this.#queueOffset = nextQueueOffset;
    this.#mark(this.#queueMarks, nextQueueOffset, endOffset);
  }

  /**
   * The first slot from readTimeMs on that holds units and is due before `dueBeforeMs` (slot T is due
   * when T + precisionMs <= dueBeforeMs); empty slots on the way are stepped over (they close). A slot
   * whose place a later slot holds can take no unit, so it is stepped over as soon as `nowMs` reaches
   * its due time, even past `dueBeforeMs`: timers blocked on it then go late into the next slot. null:
   * nothing is due; 'scanning': slotScanMax empty slots were stepped over, call again.
   */
  nextDueSlot(dueBeforeMs: number, nowMs: number = dueBeforeMs): TimerDueSlot | null | 'scanning' {
    assert(this.#closedBeforeMs === this.#readTimeMs, 'no slot is being dequeued');
    const p = this.precisionMs;
    for (let scanned = 0; this.#readTimeMs + p <= Math.max(dueBeforeMs, nowMs); scanned++) {
      if (scanned >= TIMER_STORE_DEFAULTS.slotScanMax) return 'scanning';
      const raw = this.#wheel.rawSlot(this.#readTimeMs);
      const due = this.#readTimeMs + p <= dueBeforeMs;
      if (raw.timeMs === this.#readTimeMs) return due ? raw : null;
      if (!due && !(raw.timeMs > this.#readTimeMs && this.#holds(raw))) return null;
      this.#readTimeMs += p;
      this.#closedBeforeMs = this.#readTimeMs;
      this.#mark(this.#readMarks, this.#readTimeMs, 0);
    }
    return null;
  }

  /** Starts dequeuing `slot` (from nextDueSlot): later timers for it go into the next slot. */
  beginSlot(slot: TimerDueSlot): void {
    assert(slot.timeMs === this.#readTimeMs && this.#closedBeforeMs === this.#readTimeMs, () => `slot ${slot.timeMs} is not the next to dequeue`);
    this.#closedBeforeMs = slot.timeMs + this.precisionMs;
  }

  /**
   * Up to `max` units of the slot's chain from `fromPos` backwards (newest first), and where the chain
   * goes on (-1: its end). A unit that cannot be read or belongs to another slot ends the chain (logged).
   */
  readChain(slotTimeMs: number, fromPos: number, max: number): { units: TimerUnit[]; nextPos: number } {
    assert(Number.isInteger(max) && max >= 1, 'read at least one unit');
    const units: TimerUnit[] = [];
    let pos = fromPos;
    while (pos !== -1 && units.length < max) {
      const unit = this.#log.read(pos);
      if (unit === null || unit.slotTimeMs !== slotTimeMs) {
        this.#chainBreaks++;
        this.#logger?.error({ slotTimeMs, pos, found: unit?.slotTimeMs ?? null }, 'timer chain broken; the rest of the slot is lost');
        return { units, nextPos: -1 };
      }
      units.push(unit);
      pos = unit.prevPos;
    }
    return { units, nextPos: pos };
  }

  /** The slot is dequeued: its re-puts end at `endOffset`; readTimeMs moves past it. */
  finishSlot(slotTimeMs: number, endOffset: number): void {
    assert(slotTimeMs === this.#readTimeMs && this.#closedBeforeMs === slotTimeMs + this.precisionMs, () => `slot ${slotTimeMs} was not begun`);
    const slot = this.#wheel.slot(slotTimeMs);
    this.#pendingUnits = Math.max(0, this.#pendingUnits - (slot?.num ?? 0));
    this.#readTimeMs = this.#closedBeforeMs;
    this.#mark(this.#readMarks, this.#readTimeMs, endOffset);
  }

  /**
   * Confirms the progress whose re-puts end at or before `durableOffset`, syncs the log and the wheel,
   * writes timercheck (when something changed) and deletes log files whose slots are all delivered.
   */
  checkpoint(durableOffset: number, nowMs: number): { readonly written: boolean; readonly filesDeleted: number } {
    const confirmedQueue = confirm(this.#queueMarks, durableOffset);
    const confirmedRead = confirm(this.#readMarks, durableOffset);
    const syncedPos = this.#log.sync();
    this.#wheel.flush();
    const readTimeMs = confirmedRead ?? this.#confirmedReadTimeMs;
    const queueOffset = confirmedQueue ?? this.#confirmedQueueOffset;
    const key = `${readTimeMs}/${queueOffset}/${syncedPos}`;
    let written = false;
    if (key !== this.#written) {
      this.#counter++;
      writeTimerCheckpoint(this.#fs, this.paths.checkpointFile, {
        lastReadTimeMs: readTimeMs,
        lastTimerLogFlushPos: syncedPos,
        lastTimerQueueOffset: queueOffset,
        masterTimerQueueOffset: queueOffset,
        stateVersion: 0,
        timestampMs: nowMs,
        counter: this.#counter,
        precisionMs: this.precisionMs,
        slotsTotal: this.slotsTotal,
      });
      this.#written = key;
      this.#checkpoints++;
      written = true;
    }
    this.#confirmedReadTimeMs = readTimeMs;
    this.#confirmedQueueOffset = queueOffset;
    const filesDeleted = this.#log.deleteOldFiles((maxSlotTimeMs) => maxSlotTimeMs < readTimeMs, syncedPos);
    return { written, filesDeleted };
  }

  /** Counters and positions. */
  stats(): TimerStoreStats {
    return {
      readTimeMs: this.#readTimeMs,
      closedBeforeMs: this.#closedBeforeMs,
      queueOffset: this.#queueOffset,
      confirmedReadTimeMs: this.#confirmedReadTimeMs,
      confirmedQueueOffset: this.#confirmedQueueOffset,
      pendingUnits: this.#pendingUnits,
      logEndPos: this.#log.endPos,
      logFirstPos: this.#log.firstPos,
      diskBytes: this.#log.diskBytes + this.#wheel.sizeBytes,
      wheelBytes: this.#wheel.sizeBytes,
      checkpoints: this.#checkpoints,
      chainBreaks: this.#chainBreaks,
    };
  }

  /** Closes the files; writes nothing (call checkpoint first for a clean stop). */
  close(): void {
    this.#log.close();
  }

  #mark(marks: Mark[], value: number, endOffset: number): void {
    assert(Number.isSafeInteger(endOffset) && endOffset >= 0, () => `bad end offset ${endOffset}`);
    if (endOffset > this.#maxEndOffset) this.#maxEndOffset = endOffset;
    // Every earlier re-put must be durable too: marks carry the highest end offset so far.
    const needed = this.#maxEndOffset;
    const last = marks.at(-1);
    if (last !== undefined && last.endOffset === needed) {
      last.value = value;
      return;
    }
    marks.push({ value, endOffset: needed });
    if (marks.length > TIMER_STORE_DEFAULTS.unconfirmedMax) {
      // Merging the two oldest waits for the later one's bytes: a later confirmation, never an early one.
      const [first, second] = marks.splice(0, 2) as [Mark, Mark];
      marks.unshift({ value: second.value, endOffset: Math.max(first.endOffset, second.endOffset) });
    }
  }
}

/** Pops the marks `durableOffset` covers; returns the last value confirmed, if any. */
function confirm(marks: Mark[], durableOffset: number): number | undefined {
  let value: number | undefined;
  while (marks.length > 0 && marks[0]!.endOffset <= durableOffset) value = marks.shift()!.value;
  return value;
}

/** Links a replayed unit into the wheel unless it is delivered or already linked; true when linked. */
function relink(wheel: TimerWheel, unit: TimerUnit, readTimeMs: number, log: TimerStoreOptions['log']): boolean {
  if (unit.slotTimeMs < readTimeMs) return false;
  const raw = wheel.rawSlot(unit.slotTimeMs);
  const isDelete = hasMagic(unit.magic, TimerMagic.DELETE) && !hasMagic(unit.magic, TimerMagic.ROLL) ? 1 : 0;
  if (raw.timeMs === unit.slotTimeMs) {
    if (unit.pos <= raw.lastPos) return false;
    wheel.put({ timeMs: raw.timeMs, firstPos: raw.firstPos, lastPos: unit.pos, num: raw.num + 1, deleteNum: raw.deleteNum + isDelete });
    return true;
  }
  if (raw.timeMs !== 0 && raw.timeMs >= readTimeMs) {
    log?.error({ slotTimeMs: unit.slotTimeMs, holder: raw.timeMs, pos: unit.pos }, 'timer unit replay found its place taken; unit skipped');
    return false;
  }
  wheel.put({ timeMs: unit.slotTimeMs, firstPos: unit.pos, lastPos: unit.pos, num: 1, deleteNum: isDelete });
  return true;
}

/** Counts pending units, finds the oldest live slot, and drops slots whose chain lies outside the log. */
function scanWheel(wheel: TimerWheel, log: TimerLog, readTimeMs: number, logger: TimerStoreOptions['log']): { pendingUnits: number; minLiveSlotMs: number | undefined; dropped: number } {
  let pendingUnits = 0;
  let dropped = 0;
  let minLiveSlotMs: number | undefined;
  for (let index = 0; index < wheel.entries; index++) {
    const slot = wheel.slotAtIndex(index);
    if (slot.timeMs === 0 || slot.timeMs < readTimeMs) continue;
    if (slot.lastPos + TIMER_UNIT_BYTES > log.endPos || slot.lastPos < log.firstPos) {
      logger?.error({ slotTimeMs: slot.timeMs, lastPos: slot.lastPos, logEndPos: log.endPos }, 'timer slot points outside the log; dropped');
      wheel.clear(index);
      dropped++;
      continue;
    }
    pendingUnits += slot.num;
    if (minLiveSlotMs === undefined || slot.timeMs < minLiveSlotMs) minLiveSlotMs = slot.timeMs;
  }
  return { pendingUnits, minLiveSlotMs, dropped };
}
