/**
 * The actor system: the main thread's host plus named pools of worker threads (the dispatchers), the
 * shared directory, the registry of every actor's spec (so a thread that dies can be re-created with its
 * actors), and the piscina pool for stateless CPU tasks.
 *
 * Placement: each spec names a pool; the actor goes to the pool's thread hosting the fewest actors.
 * Thread 0 is the main thread (pool `main`). Worker threads are numbered from 1 in pool order.
 */
import { EventEmitter } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import { assert } from './assert.ts';
import type { ActorFileSystem, ActorRef, ActorSpec } from './actor.ts';
import { ActorHost, realFileSystem, threadsMax, type HostStats } from './actor-host.ts';
import { createSystemClock, type Clock } from './clock.ts';
import {
  connectControl,
  releaseControl,
  serveControl,
  transferring,
  type MainControl,
  type WorkerControl,
} from './control-channel.ts';
import { CpuPool } from './cpu-pool.ts';
import { Directory } from './directory.ts';
import { RuntimeError, RuntimeErrorCode, describeError } from './errors.ts';
import { defaultSupervision, type SupervisionPolicy } from './supervisor.ts';
import type { WorkerInit } from './worker-main.ts';
import type { Remote } from 'comlink/dist/esm/comlink.mjs';

/** Host settings that are the same on every thread. */
export type HostTuning = {
  readonly defaultMailboxCapacity: number;
  readonly defaultSupervision: SupervisionPolicy;
  readonly askTimeoutMs: number;
  readonly askPendingMax: number;
  readonly crossThreadBatchMax: number;
  readonly spinUs: number;
  readonly turnBudgetMs: number;
  readonly throughputPerCell: number;
};

/** How to build an actor system. */
export type ActorSystemOptions = {
  /** Worker pools: name to number of threads. The main thread is always pool `main`. */
  readonly pools: Readonly<Record<string, number>>;
  /**
   * Pools with no threads of their own: name to the pool whose threads host their actors. Actors of a
   * shared pool talk to the actors already on their thread without crossing threads.
   */
  readonly sharedPools?: Readonly<Record<string, string>>;
  /** Threads of the piscina pool for stateless CPU tasks; 0 for none. */
  readonly cpuThreads: number;
  /** Bound of the piscina pool's task queue. */
  readonly cpuQueueMax: number;
  /** Number of actor slots in the shared directory. */
  readonly slotsMax: number;
  /** Thread crashes tolerated per thread within the supervision window before the system gives up. */
  readonly workerSupervision: SupervisionPolicy;
  readonly tuning: HostTuning;
  readonly logLevel: string;
  readonly log: Logger;
  /**
   * V8's --min-semi-space-size for the workers, in MiB (see applyHeapFlags); 0 leaves the young
   * generation to V8, undefined leaves the flag as it is in this process.
   */
  readonly semiSpaceMb?: number;
  /** Seams for the main thread's host; workers always use the real ones. */
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly fs?: ActorFileSystem;
};

/** The workerSemiSpaceSizeMb key's default (see applyHeapFlags). */
export const SEMI_SPACE_MB_DEFAULT = 16;

/** Defaults for the tuning knobs; config keys override them. */
export const defaultTuning: HostTuning = {
  defaultMailboxCapacity: 10_000,
  defaultSupervision,
  askTimeoutMs: 3_000,
  askPendingMax: 100_000,
  crossThreadBatchMax: 4_096,
  spinUs: 50,
  turnBudgetMs: 5,
  throughputPerCell: 256,
};

/** One pool as the status view shows it. */
export type PoolInfo = { readonly name: string; readonly size: number; readonly threadIds: readonly number[] };

type ThreadRecord = {
  readonly index: number;
  readonly pool: string;
  worker: Worker | undefined;
  control: Remote<WorkerControl> | undefined;
  readonly deathsMs: number[];
  alive: boolean;
};

type Registration = { readonly spec: ActorSpec; readonly parentSlot: number; readonly thread: number };

const workerEntry = new URL('./worker-main.ts', import.meta.url);

/**
 * V8 flags every thread of a node runs with, set before the first worker starts (worker isolates read
 * them when they are created; the flags are process-wide).
 *
 * `--external-memory-accounted-in-global-limit`: without it, V8 starts a full mark-compact whenever a
 * thread's ArrayBuffer memory has grown by a fixed 64 MiB since the last one, however small the JS heap.
 * A remoting thread moving 32 KiB batches allocates that much in a fraction of a second (the frame, the
 * encoded records, the cross-thread copy), and bench:remoting's batch phase ran 6 to 7 mark-compacts a
 * second on each of them. With it, ArrayBuffer memory counts towards V8's global limit, which grows
 * with the heap like the JS heap's own: a third as many mark-compacts, ~30% less node CPU per batched
 * message. Memory stays bounded by that limit.
 *
 * `--min-semi-space-size` (the workerSemiSpaceSizeMb key): by default a young generation starts at 1 MiB,
 * grows with the allocation rate and gives pages back when it shrinks, so a busy thread keeps touching
 * memory it has never touched. Each first touch of a 4 KiB page is a page fault, and on a VM whose host
 * takes back the guest's free pages (this project's Firecracker machines report them) it costs ~15-20
 * µs: in bench:store's batch row each send thread took ~3,400 such faults a second, ~10% of its time.
 * A young generation that starts at its working size keeps its pages: ~200-800 faults a second. It
 * costs that much memory per thread (two semi-spaces), as a JVM's -Xmn does.
 */
function applyHeapFlags(semiSpaceMb: number | undefined): void {
  setFlagsFromString('--external-memory-accounted-in-global-limit');
  if (semiSpaceMb !== undefined) {
    assert(Number.isInteger(semiSpaceMb) && semiSpaceMb >= 0, () => `bad semi-space size ${semiSpaceMb}`);
    setFlagsFromString(`--min-semi-space-size=${semiSpaceMb}`);
  }
}

/** The actor system of one process. Emits `workerReplaced` (thread index) and `fatal` (reason). */
export class ActorSystem extends EventEmitter {
  private readonly options: ActorSystemOptions;
  private readonly directory: Directory;
  private readonly host: ActorHost;
  private readonly threads: ThreadRecord[] = [];
  private readonly poolThreads = new Map<string, number[]>();
  private readonly sharedPoolNames = new Set<string>();
  private readonly registry = new Map<number, Registration>();
  private readonly names = new Set<string>();
  private readonly actorsPerThread: number[] = [];
  private readonly log: Logger;
  private nextSlot = 0;
  private stopping = false;
  /** The piscina pool for stateless CPU tasks, if configured. */
  readonly cpu: CpuPool | undefined;

  private constructor(options: ActorSystemOptions) {
    super();
    this.options = options;
    this.log = options.log;
    this.directory = new Directory(options.slotsMax);
    const clock = options.clock ?? createSystemClock();
    this.host = new ActorHost({
      ...options.tuning,
      threadIndex: 0,
      pool: 'main',
      directory: this.directory,
      clock,
      random: options.random ?? Math.random,
      fs: options.fs ?? realFileSystem,
      log: options.log,
      spawn: (spec, parentSlot) => this.spawnWithParent(spec, parentSlot),
      actorStopped: (slot) => this.forget(slot),
    });
    this.threads.push({ index: 0, pool: 'main', worker: undefined, control: undefined, deathsMs: [], alive: true });
    this.poolThreads.set('main', [0]);
    this.actorsPerThread.push(0);
    this.cpu = options.cpuThreads > 0 ? new CpuPool(options.cpuThreads, options.cpuQueueMax) : undefined;
  }

  /** Starts the worker pools and waits until every thread answers. */
  static async start(options: ActorSystemOptions): Promise<ActorSystem> {
    applyHeapFlags(options.semiSpaceMb);
    const system = new ActorSystem(options);
    await system.startPools();
    return system;
  }

  private async startPools(): Promise<void> {
    for (const [pool, size] of Object.entries(this.options.pools)) {
      assert(pool !== 'main', 'pool name "main" is reserved for the main thread');
      assert(Number.isInteger(size) && size >= 1, () => `pool ${pool} needs at least one thread`);
      const indices: number[] = [];
      for (let i = 0; i < size; i++) {
        const index = this.threads.length;
        assert(index < threadsMax, () => `at most ${threadsMax} threads`);
        this.threads.push({ index, pool, worker: undefined, control: undefined, deathsMs: [], alive: false });
        this.actorsPerThread.push(0);
        indices.push(index);
      }
      this.poolThreads.set(pool, indices);
    }
    for (const [pool, hostPool] of Object.entries(this.options.sharedPools ?? {})) {
      const indices = this.poolThreads.get(hostPool);
      assert(indices !== undefined && indices.length > 0, () => `shared pool ${pool} names no pool with threads: ${hostPool}`);
      assert(this.options.pools[pool] === undefined, () => `pool ${pool} cannot both have threads and share ${hostPool}'s`);
      this.sharedPoolNames.add(pool);
      this.poolThreads.set(pool, indices);
    }
    // Full mesh: one MessageChannel per pair of threads, created before any worker starts.
    const linksOf: { thread: number; port: MessagePort }[][] = this.threads.map(() => []);
    for (let a = 0; a < this.threads.length; a++) {
      for (let b = a + 1; b < this.threads.length; b++) {
        const { port1, port2 } = new MessageChannel();
        linksOf[a]!.push({ thread: b, port: port1 });
        linksOf[b]!.push({ thread: a, port: port2 });
      }
    }
    for (const link of linksOf[0]!) this.host.addLink(link.thread, link.port);
    await Promise.all(this.threads.slice(1).map((record) => this.launchWorker(record, linksOf[record.index]!)));
  }

  private async launchWorker(record: ThreadRecord, links: { thread: number; port: MessagePort }[]): Promise<void> {
    const toWorker = new MessageChannel();
    const toMain = new MessageChannel();
    const init: WorkerInit = {
      threadIndex: record.index,
      pool: record.pool,
      directory: this.directory.buffer,
      tuning: this.options.tuning,
      logLevel: this.options.logLevel,
      controlIn: toWorker.port2,
      controlOut: toMain.port1,
      links,
    };
    const worker = new Worker(workerEntry, {
      workerData: init,
      transferList: [toWorker.port2, toMain.port1, ...links.map((link) => link.port)],
      name: `${record.pool}-${record.index}`,
    });
    const mainControl: MainControl = {
      spawn: (spec, parentSlot) => this.spawnWithParent(spec, parentSlot),
      actorStopped: (slot) => this.forget(slot),
    };
    serveControl(mainControl, toMain.port2);
    record.worker = worker;
    record.control = connectControl<WorkerControl>(toWorker.port1);
    worker.on('error', (error) => this.log.error({ err: describeError(error), thread: record.index, pool: record.pool }, 'worker thread error'));
    worker.on('exit', (code) => {
      toMain.port2.close();
      if (record.worker === worker) this.onWorkerExit(record, code);
    });
    const answered = await record.control.ping();
    assert(answered === record.index, 'worker answered with the wrong index');
    record.alive = true;
  }

  private onWorkerExit(record: ThreadRecord, code: number): void {
    record.alive = false;
    record.worker = undefined;
    if (record.control !== undefined) releaseControl(record.control as Remote<unknown>);
    record.control = undefined;
    if (this.stopping) return;
    const nowMs = Date.now();
    const policy = this.options.workerSupervision;
    while (record.deathsMs.length > 0 && record.deathsMs[0]! < nowMs - policy.withinMs) record.deathsMs.shift();
    record.deathsMs.push(nowMs);
    const hosted = [...this.registry].filter(([, registration]) => registration.thread === record.index);
    for (const [slot] of hosted) this.directory.close(slot);
    this.log.error({ thread: record.index, pool: record.pool, exitCode: code, actors: hosted.length }, 'worker thread died');
    if (record.deathsMs.length > policy.maxRestarts) {
      const reason = `worker ${record.pool}-${record.index} crashed ${record.deathsMs.length} times within ${policy.withinMs} ms`;
      this.log.fatal({ thread: record.index, pool: record.pool }, `crash loop: ${reason}; not replacing it`);
      this.emit('fatal', reason);
      return;
    }
    void this.replaceWorker(record, hosted).catch((error: unknown) => {
      this.log.fatal({ err: describeError(error), thread: record.index }, 'could not replace worker thread');
      this.emit('fatal', `could not replace worker ${record.index}`);
    });
  }

  private async replaceWorker(record: ThreadRecord, hosted: [number, Registration][]): Promise<void> {
    const links: { thread: number; port: MessagePort }[] = [];
    for (const peer of this.threads) {
      if (peer.index === record.index) continue;
      const { port1, port2 } = new MessageChannel();
      links.push({ thread: peer.index, port: port1 });
      if (peer.index === 0) this.host.addLink(record.index, port2);
      else if (peer.control !== undefined) await peer.control.addLink(record.index, transferring(port2, [port2]));
      else port2.close();
    }
    // Shutdown may begin at any await here: then no thread is started, nor actors placed, behind its back.
    if (this.stopping) return;
    await this.launchWorker(record, links);
    this.actorsPerThread[record.index] = 0;
    for (const [slot, registration] of hosted) {
      if (!this.registry.has(slot)) continue;
      const control = record.control;
      if (this.stopping || control === undefined) return;
      await control.startActor(slot, registration.spec, registration.parentSlot);
      this.actorsPerThread[record.index]!++;
    }
    this.log.warn({ thread: record.index, pool: record.pool, actors: hosted.length }, 'worker thread replaced; its actors restarted');
    this.emit('workerReplaced', record.index);
  }

  // ---------------------------------------------------------------- actors

  /** Creates an actor on its spec's pool and returns its address once `init` has run. */
  spawn<M, A = unknown>(spec: ActorSpec<A>): Promise<ActorRef<M>> {
    return this.spawnWithParent(spec, -1) as Promise<ActorRef<M>>;
  }

  private async spawnWithParent(spec: ActorSpec, parentSlot: number): Promise<ActorRef> {
    if (this.stopping) throw new RuntimeError(RuntimeErrorCode.systemStopped, 'actor system is stopping');
    const threads = this.poolThreads.get(spec.pool);
    if (threads === undefined) throw new RuntimeError(RuntimeErrorCode.spawnFailed, `no pool named "${spec.pool}"`);
    if (this.names.has(spec.name)) throw new RuntimeError(RuntimeErrorCode.spawnFailed, `an actor named "${spec.name}" exists`);
    if (this.nextSlot >= this.directory.slotsMax) {
      throw new RuntimeError(RuntimeErrorCode.spawnFailed, `all ${this.directory.slotsMax} actor slots are used`);
    }
    let thread = threads[0]!;
    for (const candidate of threads) if (this.actorsPerThread[candidate]! < this.actorsPerThread[thread]!) thread = candidate;
    const slot = this.nextSlot++;
    this.names.add(spec.name);
    this.registry.set(slot, { spec, parentSlot, thread });
    this.actorsPerThread[thread]!++;
    try {
      if (thread === 0) await this.host.startActor(slot, spec, parentSlot);
      else {
        const control = this.threads[thread]!.control;
        if (control === undefined) throw new RuntimeError(RuntimeErrorCode.spawnFailed, `thread ${thread} is not running`);
        await control.startActor(slot, spec, parentSlot);
      }
    } catch (error) {
      this.forget(slot);
      if (error instanceof RuntimeError) throw error;
      throw new RuntimeError(RuntimeErrorCode.spawnFailed, `spawn ${spec.name}: ${describeError(error)}`);
    }
    return { slot, name: spec.name };
  }

  private forget(slot: number): void {
    const registration = this.registry.get(slot);
    if (registration === undefined) return;
    this.registry.delete(slot);
    this.names.delete(registration.spec.name);
    this.actorsPerThread[registration.thread]!--;
  }

  /** Stops an actor for good (its onStop runs). */
  async stop(ref: ActorRef): Promise<void> {
    const registration = this.registry.get(ref.slot);
    if (registration === undefined) return;
    this.forget(ref.slot);
    if (registration.thread === 0) this.host.stopActor(ref.slot, 'stopped by system');
    else await this.threads[registration.thread]!.control?.stopActor(ref.slot);
  }

  /** Sends without waiting; false when the target's mailbox is full (backpressure) or it is gone. */
  tell<M>(target: ActorRef<M>, message: M): boolean {
    return this.host.tell(target, message);
  }

  /** Sends and waits for a reply; rejects with RuntimeError (MAILBOX_FULL, ASK_TIMEOUT, ...). */
  ask<M, R>(target: ActorRef<M>, message: M, timeoutMs?: number): Promise<R> {
    return this.host.ask<R>(target, message, timeoutMs);
  }

  /** Messages admitted to an actor's mailbox and not yet handled (from the shared directory). */
  mailboxDepth(target: ActorRef): number {
    return this.directory.occupancy(target.slot);
  }

  /** The thread index hosting an actor, or -1. */
  threadOf(target: ActorRef): number {
    return this.directory.threadOf(target.slot);
  }

  // ---------------------------------------------------------------- status

  /** Every pool with its size and the real thread ids behind it. */
  pools(): PoolInfo[] {
    const pools: PoolInfo[] = [];
    for (const [name, indices] of this.poolThreads) {
      if (this.sharedPoolNames.has(name)) continue;
      const threadIds = indices.map((index) => (index === 0 ? 0 : (this.threads[index]!.worker?.threadId ?? -1)));
      pools.push({ name, size: indices.length, threadIds });
    }
    if (this.cpu !== undefined) pools.push({ name: 'cpu', size: this.cpu.size, threadIds: this.cpu.threadIds() });
    return pools;
  }

  /** Every live thread's counters. */
  async stats(): Promise<HostStats[]> {
    const stats: HostStats[] = [this.host.stats()];
    for (const record of this.threads.slice(1)) if (record.control !== undefined) stats.push(await record.control.stats());
    return stats;
  }

  /** Worker handle of a thread index, for tests that need to kill a thread. */
  workerOf(threadIndex: number): Worker | undefined {
    return this.threads[threadIndex]?.worker;
  }

  /** Stops every actor (their onStop runs: flush), then the worker threads and the CPU pool. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const workers = this.threads.slice(1);
    await Promise.all(
      workers.map(async (record) => {
        const { worker, control } = record;
        if (worker === undefined || control === undefined) return;
        // A thread that dies now never answers the call: stop waiting for it once it has exited.
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        try {
          await Promise.race([control.shutdown(), exited]);
        } catch (error) {
          this.log.warn({ err: describeError(error), thread: record.index }, 'worker shutdown failed');
        }
      }),
    );
    this.host.shutdown();
    await Promise.all(workers.map((record) => record.worker?.terminate()));
    for (const record of workers) if (record.control !== undefined) releaseControl(record.control as Remote<unknown>);
    await this.cpu?.close();
  }
}
