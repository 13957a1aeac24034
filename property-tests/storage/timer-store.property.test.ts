/**
 * Property: whatever mix of timer sends (past, near, and far beyond the roll window), recalls, clock
 * jumps (some longer than the whole wheel), CommitLog syncs, timer checkpoints, clean restarts, kill -9
 * and power losses (unsynced writes of the timer files undone, the first one torn; the CommitLog loses
 * what was not durable) happens, under a simulated clock and against the real TimerStore on real files,
 * driven the way the timer service drives it (timer-service.ts: enqueue up to the queue's end, dequeue
 * slots due before min(now, horizon), markers first, rolls back into the timer queue, progress confirmed
 * by the CommitLog's durable offset):
 * - never early: no timer is delivered before the deliver time its sender asked for;
 * - a recalled timer (its RECALL_MESSAGE accepted by checkRecall) is never delivered, not even by a
 *   delivery a crash later takes back;
 * - at least once: once the clock runs past every deliver time (with syncs and checkpoints), every timer
 *   that was not recalled has a delivery in the CommitLog.
 * The write side is the real one too: applyTimer, recallHandleFor, checkRecall and recallMarker.
 * fast-check prints the seed; replay with FC_SEED / FC_PATH (see ../runtime/fc-parameters.ts).
 * Soak: TIMER_PROP_RUNS=5000 vitest run property-tests/storage/timer-store.property.test.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TIMER_TOPIC, applyTimer, buildDeleteKey, checkRecall, recallHandleFor, recallMarker, type TimerSettings } from '../../src/actors/timer-hook.ts';
import { unitNamesMessage } from '../../src/actors/timer-service.ts';
import { decodeMessageProperties } from '../../src/storage/message-record.ts';
import { TIMER_UNIT_BYTES, TimerMagic, hasMagic, keyHashOf, type TimerUnit } from '../../src/storage/timer-log.ts';
import { TimerStore, type TimerDueSlot } from '../../src/storage/timer-store.ts';
import { crashFs, type CrashFs } from '../../test/actors/fixtures/timer-crash-fs.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

const NUM_RUNS = Number(process.env['TIMER_PROP_RUNS'] ?? 200);
const T0 = 1_700_000_000_000;
const P = 100;
const SETTINGS: TimerSettings = { timerWheelEnable: true, timerPrecisionMs: P, timerMaxDelaySec: 60 };
/** A 6.4 s wheel (64 places), a 0.8 s roll window, 16-unit log files. */
const STORE = { precisionMs: P, slotsTotal: 32, timerRollWindowSlot: 8, timerLogFileSize: TIMER_UNIT_BYTES * 16, writeBufferBytes: TIMER_UNIT_BYTES * 4 } as const;
const RECORD_BYTES = 100;
const RUN_STEPS_MAX = 100_000;

type Command =
  | { readonly type: 'send'; readonly delayMs: number; readonly durable: boolean }
  | { readonly type: 'recall'; readonly pick: number }
  | { readonly type: 'advance'; readonly ms: number }
  | { readonly type: 'sync' }
  | { readonly type: 'flush' }
  | { readonly type: 'restart' }
  | { readonly type: 'kill' }
  | { readonly type: 'powerLoss'; readonly seed: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      type: fc.constant('send' as const),
      delayMs: fc.oneof(fc.integer({ min: -1_000, max: 3_000 }), fc.integer({ min: 3_000, max: 25_000 })),
      // ASYNC_FLUSH: acknowledged before it is durable (a power loss may take it back).
      durable: fc.boolean(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ type: fc.constant('recall' as const), pick: fc.nat() }) },
  { weight: 7, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 1, max: 1_500 }), fc.integer({ min: 1_500, max: 20_000 })) }) },
  { weight: 2, arbitrary: fc.constant({ type: 'sync' as const }) },
  { weight: 3, arbitrary: fc.constant({ type: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'restart' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'kill' as const }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('powerLoss' as const), seed: fc.nat() }) },
);

/** A record of the simulated CommitLog: a message in the timer queue or a delivery to the real topic. */
type Rec = { readonly kind: 'timer' | 'real'; readonly id: number; readonly props: Map<string, string>; readonly storeTimeMs: number };
type ModelTimer = { readonly requestedMs: number; readonly props: Map<string, string>; readonly sentAt: number; recalled: boolean; inWheel: boolean };

/** The simulated broker around one TimerStore: the CommitLog, the service's loop, the model. */
class Sim {
  readonly dir: string;
  readonly crash: CrashFs = crashFs();
  store: TimerStore;
  nowMs = T0;
  horizonMs = 0;
  /** The CommitLog: record i is at offset i * RECORD_BYTES; the first `durable` records are durable. */
  readonly log: Rec[] = [];
  durable = 0;
  readonly timers = new Map<number, ModelTimer>();
  nextId = 1;

  constructor(dir: string) {
    this.dir = dir;
    this.store = this.open();
  }

  open(): TimerStore {
    return TimerStore.open({ rootDir: this.dir, fs: this.crash.fs, nowMs: this.nowMs, ...STORE });
  }

  append(rec: Rec): number {
    this.log.push(rec);
    return this.log.length * RECORD_BYTES;
  }

  timerQueue(): number[] {
    const indexes: number[] = [];
    for (const [index, rec] of this.log.entries()) if (rec.kind === 'timer') indexes.push(index);
    return indexes;
  }

  deliver(id: number): number {
    const timer = this.timers.get(id);
    expect(timer, `timer ${id} is known`).toBeDefined();
    expect(this.nowMs, `timer ${id} delivered early`).toBeGreaterThanOrEqual(timer!.requestedMs);
    expect(timer!.recalled, `recalled timer ${id} delivered`).toBe(false);
    return this.append({ kind: 'real', id, props: timer!.props, storeTimeMs: this.nowMs });
  }

  send(delayMs: number, durable: boolean): void {
    const id = this.nextId++;
    const props = new Map([['UNIQ_KEY', `U${id}`], ['TIMER_DELAY_MS', String(delayMs)]]);
    const destination = applyTimer(props, 'TopicA', 0, this.nowMs, SETTINGS);
    expect(destination.ok).toBe(true);
    if (!destination.ok) return;
    const timer: ModelTimer = { requestedMs: this.nowMs + delayMs, props, sentAt: this.log.length, recalled: false, inWheel: destination.timer === 'wheel' };
    this.timers.set(id, timer);
    if (destination.timer === 'wheel') this.append({ kind: 'timer', id, props, storeTimeMs: this.nowMs });
    else this.deliver(id);
    if (durable) this.durable = this.log.length;
    // The service enqueues a send within its next tick.
    this.run();
  }

  recall(pick: number): void {
    const candidates = [...this.timers.entries()].filter(([, timer]) => timer.inWheel && !timer.recalled);
    if (candidates.length === 0) return;
    const [id, timer] = candidates[pick % candidates.length]!;
    const check = checkRecall({
      recallMessageEnable: true,
      brokerName: 'broker-a',
      topic: 'TopicA',
      recallHandle: recallHandleFor(timer.props, 'broker-a'),
      topicExists: true,
      nowMs: this.nowMs,
      timerMaxDelaySec: SETTINGS.timerMaxDelaySec,
    });
    if (!check.ok) return;
    const marker = recallMarker(check.handle, 'ProducerA', this.nowMs, SETTINGS);
    expect('properties' in marker).toBe(true);
    if (!('properties' in marker)) return;
    timer.recalled = true;
    this.append({ kind: 'timer', id, props: decodeMessageProperties(marker.properties), storeTimeMs: this.nowMs });
    this.durable = this.log.length;
    this.run();
  }

  /**
   * The timer service's loop at the current time, until nothing more can be done: read the queue to its
   * end (or until the store is full), then dequeue due slots one after another without reading again,
   * unless a slot put messages back into the queue (the horizon drops) or the read time moved past a
   * blocked enqueue.
   */
  run(): void {
    for (let steps = 0; steps < RUN_STEPS_MAX; steps++) {
      const blocked = !this.enqueue();
      const readTimeMs = this.store.readTimeMs;
      let moreToRead = false;
      for (; steps < RUN_STEPS_MAX; steps++) {
        const slot = this.store.nextDueSlot(Math.min(this.nowMs, this.horizonMs), this.nowMs);
        if (slot === 'scanning') continue;
        if (slot === null) break;
        if (this.dequeueSlot(slot)) moreToRead = true;
      }
      if (moreToRead || (blocked && this.store.readTimeMs !== readTimeMs)) continue;
      return;
    }
    throw new Error('the service loop did not settle');
  }

  /** Dequeues one slot as the service does; true when it put messages back into the timer queue. */
  dequeueSlot(slot: TimerDueSlot): boolean {
    this.store.beginSlot(slot);
    const units: TimerUnit[] = [];
    for (let pos = slot.lastPos; pos !== -1; ) {
      const read = this.store.readChain(slot.timeMs, pos, 7);
      units.push(...read.units);
      pos = read.nextPos;
    }
    // readAt: a unit whose record the CommitLog lost (or reused for another message) is skipped.
    const markers = units.filter((unit) => hasMagic(unit.magic, TimerMagic.DELETE) && !hasMagic(unit.magic, TimerMagic.ROLL));
    const deleteKeys = new Set(markers.flatMap((unit) => this.named(unit)?.props.get('TIMER_DEL_UNIQKEY') ?? []));
    let endOffset = 0;
    let rolled = false;
    for (const unit of units.reverse()) {
      if (markers.includes(unit)) continue;
      const rec = this.named(unit);
      if (rec === undefined) continue;
      if (hasMagic(unit.magic, TimerMagic.ROLL)) {
        endOffset = this.append({ kind: 'timer', id: rec.id, props: rec.props, storeTimeMs: this.nowMs });
        this.horizonMs = Math.min(this.horizonMs, slot.timeMs + P);
        rolled = true;
        continue;
      }
      if (deleteKeys.has(buildDeleteKey(rec.props.get('REAL_TOPIC')!, rec.props.get('UNIQ_KEY')!))) continue;
      endOffset = this.deliver(rec.id);
    }
    this.store.finishSlot(slot.timeMs, endOffset);
    return rolled;
  }

  /** The record a unit names (the writer's readAt, then the service's unitNames), if it is still there. */
  named(unit: TimerUnit): Rec | undefined {
    const index = unit.offsetPy / RECORD_BYTES;
    const rec = this.log[index];
    if (rec === undefined || rec.kind !== 'timer') return undefined;
    return unitNamesMessage(unit, { topic: TIMER_TOPIC, physicalOffset: index * RECORD_BYTES, sizeBytes: RECORD_BYTES, properties: rec.props }, P) ? rec : undefined;
  }

  /** Enqueues the queue from the store's offset; false when the store had no room for a message. */
  enqueue(): boolean {
    const queue = this.timerQueue();
    // The writer's get corrects an offset past the queue's end (OFFSET_OVERFLOW_BADLY).
    if (this.store.queueOffset > queue.length) this.store.commitQueueOffset(queue.length, 0);
    let next = this.store.queueOffset;
    let endOffset = 0;
    for (; next < queue.length; next++) {
      const index = queue[next]!;
      const rec = this.log[index]!;
      const isDelete = rec.props.has('TIMER_DEL_UNIQKEY');
      const outcome = this.store.enqueue({
        timerOutMs: Number(rec.props.get('TIMER_OUT_MS')),
        offsetPy: index * RECORD_BYTES,
        sizePy: RECORD_BYTES,
        keyHash: keyHashOf(rec.props.get('UNIQ_KEY')),
        isDelete,
        nowMs: this.nowMs,
      });
      if (outcome.kind === 'full') break;
      endOffset = Math.max(endOffset, (index + 1) * RECORD_BYTES);
    }
    this.store.commitQueueOffset(next, endOffset);
    if (next < queue.length) return false;
    this.horizonMs = Math.max(this.horizonMs, this.nowMs);
    return true;
  }

  checkpoint(): void {
    this.store.checkpoint(this.durable * RECORD_BYTES, this.nowMs);
  }

  /** The service stops; the CommitLog keeps `keep` records; the store reopens from its files. */
  reopen(keep: number, whileDown?: () => void): void {
    this.store.close();
    whileDown?.();
    this.log.length = keep;
    // A send the CommitLog lost was never durable: that timer is gone (ASYNC_FLUSH's bargain).
    for (const [id, timer] of this.timers) if (timer.sentAt >= keep) this.timers.delete(id);
    this.durable = Math.min(this.durable, keep);
    this.horizonMs = 0;
    this.store = this.open();
    this.run();
  }

  apply(cmd: Command): void {
    switch (cmd.type) {
      case 'send':
        return this.send(cmd.delayMs, cmd.durable);
      case 'recall':
        return this.recall(cmd.pick);
      case 'advance':
        this.nowMs += cmd.ms;
        return this.run();
      case 'sync':
        this.durable = this.log.length;
        return;
      case 'flush':
        return this.checkpoint();
      case 'restart':
        this.durable = this.log.length;
        this.checkpoint();
        return this.reopen(this.log.length);
      case 'kill':
        // The CommitLog's appends are in the OS already; the timer store loses its write buffer.
        return this.reopen(this.log.length);
      case 'powerLoss': {
        let state = cmd.seed || 1;
        const random = (): number => {
          state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
          return state / 2 ** 31;
        };
        return this.reopen(this.durable, () => this.crash.powerLoss(random));
      }
      default:
        throw new Error(`unknown command ${JSON.stringify(cmd)}`);
    }
  }

  /** Runs the clock past every deliver time, syncing and checkpointing as the service does. */
  finish(): void {
    // Past the last deliver time, and a few steps past now (a late timer waits for the next slot).
    const untilMs = Math.max(this.nowMs + 2_000, ...[...this.timers.values()].map((timer) => timer.requestedMs + 10 * P));
    for (let step = 0; step < 400 && this.nowMs < untilMs; step++) {
      this.nowMs += 500;
      this.durable = this.log.length;
      this.checkpoint();
      this.run();
    }
    this.durable = this.log.length;
    this.checkpoint();
    this.run();
    const delivered = new Set(this.log.filter((rec) => rec.kind === 'real').map((rec) => rec.id));
    for (const [id, timer] of this.timers) {
      if (timer.recalled) expect(delivered.has(id), `recalled timer ${id} delivered`).toBe(false);
      else expect(delivered.has(id), `timer ${id} (due ${timer.requestedMs - T0} ms) never delivered`).toBe(true);
    }
  }
}

describe('timer store (property)', () => {
  it('never delivers early, never delivers a recalled timer, delivers every other timer at least once', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'timer-prop-'));
        let sim: Sim | undefined;
        try {
          sim = new Sim(dir);
          for (const cmd of commands) sim.apply(cmd);
          sim.finish();
        } finally {
          sim?.store.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }),
      replayableParameters('timer store', NUM_RUNS),
    );
  }, Math.max(30_000, NUM_RUNS * 100));
});
