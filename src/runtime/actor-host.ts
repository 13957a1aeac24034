/**
 * The actor host: runs the actors placed on one thread. There is one host per thread (the main thread
 * and every worker). It owns the cells (actor state + mailbox), a run queue, the outboxes toward every
 * other thread, and the asks this thread is waiting on.
 *
 * Scheduling: a turn drains the run queue, giving each cell up to `throughputPerCell` messages, then
 * flushes the outboxes (one postMessage per destination) and, when `spinUs` > 0, polls the inbound ports
 * for a short while before going back to the event loop: a thread that was just busy is likely to get an
 * answer soon, and picking it up without a wake-up cuts a cross-thread round trip from ~50 µs to a few.
 * A turn never runs longer than `turnBudgetMs`, so network I/O on the same thread is never starved.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import fsPromises from 'node:fs/promises';
import type { Logger } from 'pino';
import { assert, assertNever } from './assert.ts';
import type {
  ActorContext,
  ActorFileSystem,
  ActorRef,
  ActorSpec,
  ActorTimers,
  Behavior,
  BehaviorSource,
  ChildFailure,
  DeferredReply,
  PipeResult,
} from './actor.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { Directory } from './directory.ts';
import { RuntimeError, RuntimeErrorCode, describeError } from './errors.ts';
import { Mailbox } from './mailbox.ts';
import { RestartWindow, type SupervisionPolicy, type SupervisorDirective } from './supervisor.ts';
import { BatchCodec, EnvelopeKind, envelopeWords, transferListOf, type WireBatch } from './wire.ts';

/** Threads per system are limited so that an ask's reply address fits in one number. */
export const threadsMax = 1024;

/** Tuning and seams for a host. */
export type HostOptions = {
  readonly threadIndex: number;
  readonly pool: string;
  readonly directory: Directory;
  readonly clock: Clock;
  readonly random: () => number;
  readonly fs: ActorFileSystem;
  readonly log: Logger;
  readonly defaultMailboxCapacity: number;
  readonly defaultSupervision: SupervisionPolicy;
  readonly askTimeoutMs: number;
  readonly askPendingMax: number;
  readonly crossThreadBatchMax: number;
  readonly spinUs: number;
  readonly turnBudgetMs: number;
  readonly throughputPerCell: number;
  /** Asks the system (on the main thread) to create an actor. */
  readonly spawn: (spec: ActorSpec, parentSlot: number) => Promise<ActorRef>;
  /** Tells the system an actor stopped for good, so it is not re-placed after a thread crash. */
  readonly actorStopped: (slot: number) => void;
};

/** Counters a host reports for the status view and benchmarks. */
export type HostStats = {
  readonly threadIndex: number;
  readonly pool: string;
  readonly actors: number;
  readonly processed: number;
  readonly batchesSent: number;
  readonly batchesReceived: number;
  readonly deadLetters: number;
  readonly restarts: number;
  readonly pendingAsks: number;
};

/** Runtime signals that travel to cells outside the bounded mailbox. */
type Signal =
  | { readonly type: 'childFailed'; readonly failure: ChildFailure }
  | { readonly type: 'directive'; readonly directive: SupervisorDirective };

type SystemItem = { readonly kind: 'message'; readonly message: unknown } | { readonly kind: 'signal'; readonly signal: Signal };

type PendingAsk = { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: TimerHandle };

type Link = { readonly thread: number; port: MessagePort; outbox: unknown[] };

type Cell = {
  readonly slot: number;
  readonly ref: ActorRef;
  readonly spec: ActorSpec;
  readonly behavior: Behavior<unknown, unknown, unknown>;
  readonly parentSlot: number;
  readonly mailbox: Mailbox;
  readonly system: SystemItem[];
  readonly restarts: RestartWindow;
  readonly timers: Map<string, TimerHandle>;
  readonly log: Logger;
  ctx: ActorContext<unknown>;
  state: unknown;
  scheduled: boolean;
  suspended: boolean;
  stopped: boolean;
  stopRequested: boolean;
  currentMeta: number;
  replyTaken: boolean;
};

const behaviorCache = new Map<string, Behavior<unknown, unknown, unknown>>();

/** Loads a behavior from its module, once per thread. */
async function loadBehavior(source: BehaviorSource): Promise<Behavior<unknown, unknown, unknown>> {
  const key = `${source.module}#${source.export}`;
  const cached = behaviorCache.get(key);
  if (cached !== undefined) return cached;
  const module = (await import(source.module)) as Record<string, unknown>;
  const behavior = module[source.export] as Behavior<unknown, unknown, unknown> | undefined;
  if (behavior === undefined || typeof behavior.init !== 'function' || typeof behavior.receive !== 'function') {
    throw new RuntimeError(RuntimeErrorCode.spawnFailed, `no behavior "${source.export}" in ${source.module}`);
  }
  behaviorCache.set(key, behavior);
  return behavior;
}

/** An ask's reply address packed into one number: askId * threadsMax + thread. 0 means a tell. */
function replyMeta(askId: number, thread: number): number {
  return askId * threadsMax + thread;
}

/** Runs the actors of one thread. */
export class ActorHost {
  /** This thread's index in the system. */
  readonly threadIndex: number;
  private readonly options: HostOptions;
  private readonly directory: Directory;
  private readonly cells: (Cell | undefined)[] = [];
  private readonly runQueue: Cell[] = [];
  private runQueueHead = 0;
  private readonly links: (Link | undefined)[] = [];
  private readonly linkList: Link[] = [];
  private readonly pending = new Map<number, PendingAsk>();
  private readonly codec = new BatchCodec();
  private nextAskId = 1;
  private turnArmed = false;
  private inTurn = false;
  private resolvedInTurn = false;
  private closed = false;
  private processed = 0;
  private batchesSent = 0;
  private batchesReceived = 0;
  private deadLetters = 0;
  private restartCount = 0;
  private actorCount = 0;
  private readonly runTurnBound = (): void => this.runTurn();

  constructor(options: HostOptions) {
    assert(options.threadIndex >= 0 && options.threadIndex < threadsMax, 'thread index out of range');
    assert(options.crossThreadBatchMax >= 1, 'crossThreadBatchMax must be positive');
    this.options = options;
    this.threadIndex = options.threadIndex;
    this.directory = options.directory;
  }

  // ---------------------------------------------------------------- links

  /** Installs (or replaces, after the peer thread was re-created) the port toward another thread. */
  addLink(thread: number, port: MessagePort): void {
    assert(thread !== this.threadIndex, 'a thread does not link to itself');
    const previous = this.links[thread];
    if (previous !== undefined) {
      previous.port.close();
      previous.port = port;
      previous.outbox = [];
    } else {
      const link: Link = { thread, port, outbox: [] };
      this.links[thread] = link;
      this.linkList.push(link);
    }
    port.on('message', (data: WireBatch) => {
      this.receiveBatch(thread, data);
      this.schedule();
    });
    port.unref();
  }

  // ---------------------------------------------------------------- actors

  /** Creates the actor for an allocated slot on this thread (the directory already points here). */
  async startActor(slot: number, spec: ActorSpec, parentSlot: number): Promise<void> {
    assert(this.cells[slot] === undefined, () => `slot ${slot} is already hosted`);
    const behavior = await loadBehavior(spec.behavior);
    const ref: ActorRef = { slot, name: spec.name };
    const capacity = spec.mailboxCapacity ?? this.options.defaultMailboxCapacity;
    const cell: Cell = {
      slot,
      ref,
      spec,
      behavior,
      parentSlot,
      mailbox: new Mailbox(capacity),
      system: [],
      restarts: new RestartWindow(spec.supervision ?? this.options.defaultSupervision),
      timers: new Map(),
      log: this.options.log.child({ actor: spec.name }),
      ctx: undefined as unknown as ActorContext<unknown>,
      state: undefined,
      scheduled: false,
      suspended: false,
      stopped: false,
      stopRequested: false,
      currentMeta: 0,
      replyTaken: false,
    };
    cell.ctx = this.createContext(cell);
    cell.state = behavior.init(spec.args, cell.ctx);
    this.cells[slot] = cell;
    this.actorCount++;
    this.directory.open(slot, this.threadIndex, capacity);
  }

  /** Stops an actor hosted here: runs onStop, fails its queued asks, frees its slot. */
  stopActor(slot: number, reason: string): void {
    const cell = this.cells[slot];
    if (cell === undefined || cell.stopped) return;
    this.directory.clear(slot);
    cell.stopped = true;
    this.runOnStop(cell);
    for (const meta of cell.mailbox.clear()) {
      this.sendReply(meta, false, { code: RuntimeErrorCode.actorNotFound, message: `${cell.spec.name} stopped` });
    }
    this.cells[slot] = undefined;
    this.actorCount--;
    cell.log.debug({ reason }, 'actor stopped');
    this.options.actorStopped(slot);
  }

  /** Stops every actor (onStop runs, so actors flush) and closes the links. */
  shutdown(): void {
    for (const cell of this.cells) if (cell !== undefined) this.stopActor(cell.slot, 'shutdown');
    this.flushAll();
    this.closed = true;
    for (const [askId, pending] of this.pending) {
      this.options.clock.clearTimer(pending.timer);
      pending.reject(new RuntimeError(RuntimeErrorCode.systemStopped, 'actor system stopped'));
      this.pending.delete(askId);
    }
    for (const link of this.linkList) link.port.close();
  }

  /** Counters for the status view. */
  stats(): HostStats {
    return {
      threadIndex: this.threadIndex,
      pool: this.options.pool,
      actors: this.actorCount,
      processed: this.processed,
      batchesSent: this.batchesSent,
      batchesReceived: this.batchesReceived,
      deadLetters: this.deadLetters,
      restarts: this.restartCount,
      pendingAsks: this.pending.size,
    };
  }

  // ---------------------------------------------------------------- sending

  /** Sends without waiting; false when the target's mailbox is full or the target is gone. */
  tell(target: ActorRef, message: unknown): boolean {
    return this.route(target.slot, EnvelopeKind.tell, 0, message);
  }

  /** Sends and waits for the reply. */
  ask<R>(target: ActorRef, message: unknown, timeoutMs = this.options.askTimeoutMs): Promise<R> {
    if (this.closed) return Promise.reject(new RuntimeError(RuntimeErrorCode.systemStopped, 'actor system stopped'));
    if (this.pending.size >= this.options.askPendingMax) {
      return Promise.reject(new RuntimeError(RuntimeErrorCode.askLimit, `more than ${this.options.askPendingMax} asks pending`));
    }
    const askId = this.nextAskId++;
    return new Promise<R>((resolve, reject) => {
      const admitted = this.route(target.slot, EnvelopeKind.ask, askId, message);
      if (!admitted) {
        const code = this.directory.isOpen(target.slot) ? RuntimeErrorCode.mailboxFull : RuntimeErrorCode.actorNotFound;
        reject(new RuntimeError(code, `${target.name}: ${code === RuntimeErrorCode.mailboxFull ? 'mailbox full' : 'not running'}`));
        return;
      }
      const timer = this.options.clock.setTimer(() => {
        if (this.pending.delete(askId)) {
          reject(new RuntimeError(RuntimeErrorCode.askTimeout, `${target.name} did not reply within ${timeoutMs} ms`));
        }
      }, timeoutMs);
      this.pending.set(askId, { resolve: resolve as (value: unknown) => void, reject, timer });
    });
  }

  /** Delivers a signal to a cell, wherever it lives, bypassing the mailbox bound. */
  private signal(slot: number, signal: Signal): void {
    const thread = this.directory.threadOf(slot);
    if (thread === this.threadIndex) {
      const cell = this.cells[slot];
      if (cell !== undefined) this.enqueueSystem(cell, { kind: 'signal', signal });
      return;
    }
    const link = thread >= 0 ? this.links[thread] : undefined;
    if (link === undefined) return;
    this.pushToLink(link, EnvelopeKind.signal, slot, 0, signal);
  }

  private route(slot: number, kind: EnvelopeKind, askId: number, message: unknown): boolean {
    if (!this.directory.tryAdmit(slot)) return false;
    const thread = this.directory.threadOf(slot);
    if (thread === this.threadIndex) {
      const cell = this.cells[slot];
      if (cell === undefined) {
        this.directory.release(slot);
        return false;
      }
      cell.mailbox.push(message, kind === EnvelopeKind.ask ? replyMeta(askId, this.threadIndex) : 0);
      this.scheduleCell(cell);
      return true;
    }
    const link = thread >= 0 ? this.links[thread] : undefined;
    if (link === undefined) {
      this.directory.release(slot);
      return false;
    }
    this.pushToLink(link, kind, slot, askId, message);
    return true;
  }

  private pushToLink(link: Link, kind: EnvelopeKind, slot: number, askId: number, payload: unknown): void {
    link.outbox.push(kind, slot, askId, payload);
    if (link.outbox.length >= this.options.crossThreadBatchMax * envelopeWords) this.flushLink(link);
    else this.schedule();
  }

  private flushLink(link: Link): void {
    if (link.outbox.length === 0) return;
    const data = this.codec.encode(link.outbox);
    link.outbox = [];
    link.port.postMessage(data, transferListOf(data));
    this.batchesSent++;
  }

  private flushAll(): void {
    for (const link of this.linkList) this.flushLink(link);
  }

  private flushArmed = false;
  private readonly flushDeferredBound = (): void => {
    this.flushArmed = false;
    this.flushAll();
  };

  private deferFlush(): void {
    if (this.flushArmed) return;
    this.flushArmed = true;
    setImmediate(this.flushDeferredBound);
  }

  private sendReply(meta: number, ok: boolean, value: unknown): void {
    const thread = meta % threadsMax;
    const askId = (meta - thread) / threadsMax;
    if (thread === this.threadIndex) {
      this.settleAsk(askId, ok, value);
      return;
    }
    const link = this.links[thread];
    if (link === undefined) return;
    this.pushToLink(link, ok ? EnvelopeKind.replyOk : EnvelopeKind.replyErr, 0, askId, value);
  }

  private settleAsk(askId: number, ok: boolean, value: unknown): void {
    const pending = this.pending.get(askId);
    if (pending === undefined) return; // timed out already
    this.pending.delete(askId);
    this.options.clock.clearTimer(pending.timer);
    this.resolvedInTurn = true;
    if (ok) pending.resolve(value);
    else {
      const { code, message } = value as { code: RuntimeErrorCode; message: string };
      pending.reject(new RuntimeError(code, message));
    }
  }

  // ---------------------------------------------------------------- receiving

  private receiveBatch(from: number, data: WireBatch): void {
    if (this.closed) return;
    this.batchesReceived++;
    const batch = this.codec.decode(data);
    assert(batch.length % envelopeWords === 0, 'torn cross-thread batch');
    for (let i = 0; i < batch.length; i += envelopeWords) {
      const kind = batch[i] as EnvelopeKind;
      const slot = batch[i + 1] as number;
      const askId = batch[i + 2] as number;
      const payload = batch[i + 3];
      switch (kind) {
        case EnvelopeKind.tell:
        case EnvelopeKind.ask: {
          const cell = this.cells[slot];
          const meta = kind === EnvelopeKind.ask ? replyMeta(askId, from) : 0;
          if (cell === undefined || cell.stopped) {
            this.directory.release(slot);
            this.deadLetters++;
            if (meta !== 0) this.sendReply(meta, false, { code: RuntimeErrorCode.actorNotFound, message: `no actor in slot ${slot}` });
            break;
          }
          cell.mailbox.push(payload, meta);
          this.scheduleCell(cell);
          break;
        }
        case EnvelopeKind.replyOk:
        case EnvelopeKind.replyErr:
          this.settleAsk(askId, kind === EnvelopeKind.replyOk, payload);
          break;
        case EnvelopeKind.signal: {
          const cell = this.cells[slot];
          if (cell !== undefined) this.enqueueSystem(cell, { kind: 'signal', signal: payload as Signal });
          break;
        }
        default:
          assertNever(kind, 'envelope kind');
      }
    }
  }

  // ---------------------------------------------------------------- scheduling

  private scheduleCell(cell: Cell): void {
    if (cell.scheduled) return;
    cell.scheduled = true;
    this.runQueue.push(cell);
    this.schedule();
  }

  private schedule(): void {
    if (this.turnArmed || this.inTurn) return;
    this.turnArmed = true;
    queueMicrotask(this.runTurnBound);
  }

  private runTurn(): void {
    this.turnArmed = false;
    if (this.closed) return;
    this.inTurn = true;
    this.resolvedInTurn = false;
    const deadline = performance.now() + this.options.turnBudgetMs;
    try {
      for (;;) {
        if (!this.drainRunQueue(deadline)) {
          // Out of budget: let the event loop breathe, then continue.
          this.flushAll();
          setImmediate(this.runTurnBound);
          this.turnArmed = true;
          return;
        }
        if (this.options.spinUs <= 0) {
          // No spinning: send at the end of this event-loop phase, so that everything the phase's I/O
          // callbacks produced (one turn per socket read or inbound batch) leaves in one batch per thread.
          this.deferFlush();
          return;
        }
        this.flushAll();
        // An ask settled here has a continuation waiting in the microtask queue: stop spinning for it.
        if (this.resolvedInTurn || !this.spinForInput(deadline)) return;
      }
    } finally {
      this.inTurn = false;
    }
  }

  /** Runs queued cells until the queue is empty (true) or the deadline passed (false). */
  private drainRunQueue(deadline: number): boolean {
    let sinceClockCheck = 0;
    while (this.runQueueHead < this.runQueue.length) {
      const cell = this.runQueue[this.runQueueHead++]!;
      if (this.runQueueHead > 1024 && this.runQueueHead * 2 > this.runQueue.length) {
        this.runQueue.splice(0, this.runQueueHead);
        this.runQueueHead = 0;
      }
      cell.scheduled = false;
      const handled = this.runCell(cell);
      if (!cell.stopped && (cell.system.length > 0 || (!cell.suspended && cell.mailbox.length > 0))) this.scheduleCell(cell);
      sinceClockCheck += handled;
      if (sinceClockCheck >= 256) {
        sinceClockCheck = 0;
        if (performance.now() > deadline) return false;
      }
    }
    this.runQueue.length = 0;
    this.runQueueHead = 0;
    return true;
  }

  /** Polls inbound ports for up to spinUs; true if something arrived. */
  private spinForInput(deadline: number): boolean {
    if (this.options.spinUs <= 0 || this.linkList.length === 0) return false;
    const spinEnd = Math.min(performance.now() + this.options.spinUs / 1000, deadline);
    do {
      let got = false;
      for (const link of this.linkList) {
        const received = receiveMessageOnPort(link.port);
        if (received !== undefined) {
          this.receiveBatch(link.thread, received.message as WireBatch);
          got = true;
        }
      }
      if (got) return true;
    } while (performance.now() < spinEnd);
    return false;
  }

  private runCell(cell: Cell): number {
    let handled = 0;
    const limit = this.options.throughputPerCell;
    while (handled < limit && !cell.stopped) {
      const item = cell.system.shift();
      if (item !== undefined) {
        if (item.kind === 'message') this.deliver(cell, item.message, 0);
        else this.handleSignal(cell, item.signal);
      } else if (!cell.suspended && cell.mailbox.length > 0) {
        const meta = cell.mailbox.peekMeta();
        const message = cell.mailbox.shift();
        this.directory.release(cell.slot);
        this.deliver(cell, message, meta);
      } else break;
      handled++;
      if (cell.stopRequested) this.stopActor(cell.slot, 'stopSelf');
    }
    this.processed += handled;
    return handled;
  }

  private deliver(cell: Cell, message: unknown, meta: number): void {
    cell.currentMeta = meta;
    cell.replyTaken = false;
    try {
      cell.state = cell.behavior.receive(cell.state, message, cell.ctx);
      if (meta !== 0 && !cell.replyTaken) {
        this.sendReply(meta, false, { code: RuntimeErrorCode.noReply, message: `${cell.spec.name} did not reply` });
      }
    } catch (error) {
      if (meta !== 0 && !cell.replyTaken) {
        this.sendReply(meta, false, { code: RuntimeErrorCode.actorFailed, message: `${cell.spec.name} failed: ${String(error)}` });
      }
      this.handleFailure(cell, error);
    } finally {
      cell.currentMeta = 0;
    }
  }

  private enqueueSystem(cell: Cell, item: SystemItem): void {
    if (cell.stopped) return;
    cell.system.push(item);
    this.scheduleCell(cell);
  }

  // ---------------------------------------------------------------- supervision

  private handleFailure(cell: Cell, error: unknown): void {
    const directive = cell.restarts.decide(this.options.clock.nowMs());
    cell.log.warn({ err: describeError(error), directive }, 'actor failed');
    this.applyDirective(cell, directive, describeError(error));
  }

  private applyDirective(cell: Cell, directive: SupervisorDirective, error: string): void {
    switch (directive) {
      case 'resume':
        cell.suspended = false;
        return;
      case 'restart':
        this.restartCell(cell);
        return;
      case 'stop':
        this.stopActor(cell.slot, `supervisor: ${error}`);
        return;
      case 'escalate':
        this.escalate(cell, error);
        return;
      default:
        assertNever(directive, 'supervisor directive');
    }
  }

  private escalate(cell: Cell, error: string): void {
    // A parent that stopped for good (its slot is cleared; slots are never reused) can never answer: its
    // orphan goes to the root guardian instead of staying suspended forever while its mailbox fills up.
    if (cell.parentSlot < 0 || this.directory.threadOf(cell.parentSlot) < 0) {
      cell.log.error({ err: error, restarts: cell.restarts.count }, 'crash loop escalated to the root guardian: stopping actor');
      this.stopActor(cell.slot, 'crash loop');
      return;
    }
    cell.log.error({ err: error, parentSlot: cell.parentSlot }, 'crash loop escalated to the parent');
    cell.suspended = true;
    this.signal(cell.parentSlot, { type: 'childFailed', failure: { child: cell.ref, error } });
  }

  private handleSignal(cell: Cell, signal: Signal): void {
    switch (signal.type) {
      case 'childFailed': {
        const hook = cell.behavior.onChildFailure;
        let directive: SupervisorDirective = 'stop';
        if (hook !== undefined) {
          try {
            directive = hook(cell.state, signal.failure, cell.ctx);
          } catch (error) {
            this.handleFailure(cell, error);
          }
        }
        if (directive === 'escalate') {
          this.signal(signal.failure.child.slot, { type: 'directive', directive: 'stop' });
          this.escalate(cell, `child ${signal.failure.child.name}: ${signal.failure.error}`);
        } else {
          this.signal(signal.failure.child.slot, { type: 'directive', directive });
        }
        return;
      }
      case 'directive':
        cell.suspended = false;
        this.applyDirective(cell, signal.directive, 'directed by parent');
        return;
      default:
        assertNever(signal, 'signal');
    }
  }

  private restartCell(cell: Cell): void {
    this.restartCount++;
    this.runOnStop(cell);
    cell.suspended = false;
    try {
      cell.state = cell.behavior.init(cell.spec.args, cell.ctx);
    } catch (error) {
      this.handleFailure(cell, error);
    }
  }

  private runOnStop(cell: Cell): void {
    for (const timer of cell.timers.values()) this.options.clock.clearTimer(timer);
    cell.timers.clear();
    cell.system.length = 0;
    try {
      cell.behavior.onStop?.(cell.state, cell.ctx);
    } catch (error) {
      cell.log.warn({ err: describeError(error) }, 'onStop failed');
    }
  }

  // ---------------------------------------------------------------- context

  private createContext(cell: Cell): ActorContext<unknown> {
    const host = this;
    const { clock } = this.options;
    const timers: ActorTimers<unknown> = {
      startSingle(key, message, delayMs) {
        timers.cancel(key);
        cell.timers.set(
          key,
          clock.setTimer(() => {
            cell.timers.delete(key);
            host.enqueueSystem(cell, { kind: 'message', message });
          }, delayMs),
        );
      },
      startPeriodic(key, message, intervalMs) {
        timers.cancel(key);
        const fire = (): void => {
          cell.timers.set(key, clock.setTimer(fire, intervalMs));
          host.enqueueSystem(cell, { kind: 'message', message });
        };
        cell.timers.set(key, clock.setTimer(fire, intervalMs));
      },
      cancel(key) {
        const handle = cell.timers.get(key);
        if (handle !== undefined) {
          clock.clearTimer(handle);
          cell.timers.delete(key);
        }
      },
      isActive: (key) => cell.timers.has(key),
    };
    return {
      self: cell.ref,
      threadIndex: this.threadIndex,
      pool: this.options.pool,
      clock,
      random: this.options.random,
      fs: this.options.fs,
      log: cell.log,
      timers,
      isLocal: (target) => host.directory.threadOf(target.slot) === host.threadIndex,
      tell: (target, message) => host.tell(target, message),
      ask: (target, message, timeoutMs) => host.ask(target, message, timeoutMs),
      get isAsk() {
        return cell.currentMeta !== 0 && !cell.replyTaken;
      },
      reply(value) {
        if (cell.currentMeta === 0 || cell.replyTaken) return;
        cell.replyTaken = true;
        host.sendReply(cell.currentMeta, true, value);
      },
      deferReply(): DeferredReply | undefined {
        if (cell.currentMeta === 0 || cell.replyTaken) return undefined;
        cell.replyTaken = true;
        const meta = cell.currentMeta;
        let settled = false;
        return {
          resolve(value) {
            if (settled) return;
            settled = true;
            host.sendReply(meta, true, value);
          },
          reject(error) {
            if (settled) return;
            settled = true;
            host.sendReply(meta, false, { code: RuntimeErrorCode.actorFailed, message: error.message });
          },
        };
      },
      pipeToSelf<T>(promise: Promise<T>, toMessage: (result: PipeResult<T>) => unknown) {
        promise.then(
          (value) => host.enqueueSystem(cell, { kind: 'message', message: toMessage({ ok: true, value }) }),
          (error: unknown) => host.enqueueSystem(cell, { kind: 'message', message: toMessage({ ok: false, error }) }),
        );
      },
      spawn: <T, A>(spec: ActorSpec<A>) => host.options.spawn(spec, cell.slot) as Promise<ActorRef<T>>,
      stopSelf() {
        cell.stopRequested = true;
      },
    };
  }
}

/** The default seams for a real thread. */
export const realFileSystem: ActorFileSystem = fsPromises;
