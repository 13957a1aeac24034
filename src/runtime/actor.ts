/**
 * The actor model's types. An actor is a reducer, `(state, message) -> state`, whose effects (sending,
 * replying, timers, spawning) go through its context. Behaviors live in modules so that the runtime can
 * place an actor on any thread by importing the module there.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.ts';
import type { SupervisionPolicy, SupervisorDirective } from './supervisor.ts';

/**
 * The address of an actor. Plain data: it can travel inside messages to any thread and works the same
 * whether the target lives on this thread or another. `M` is a phantom type for the messages it accepts.
 */
export type ActorRef<M = unknown> = {
  /** Index in the shared directory; stable for the actor's whole life, restarts included. */
  readonly slot: number;
  /** Unique name, for logs. */
  readonly name: string;
  /** Phantom marker; never set at run time. */
  readonly __message?: M;
};

/** Where a behavior is defined: a module URL and the name of its export. */
export type BehaviorSource = { readonly module: string; readonly export: string };

/** What to create: which behavior, its start arguments, its pool, its mailbox bound and supervision. */
export type ActorSpec<A = unknown> = {
  /** Unique actor name. */
  readonly name: string;
  /** The module and export holding the Behavior. */
  readonly behavior: BehaviorSource;
  /** Start arguments handed to `init`; must survive structured cloning. */
  readonly args: A;
  /** The dispatcher pool to place the actor on (`main` is the main thread). */
  readonly pool: string;
  /** Mailbox bound; defaults to the system's actorMailboxCapacity. */
  readonly mailboxCapacity?: number;
  /** How failures of this actor are handled; defaults to the system's policy. */
  readonly supervision?: SupervisionPolicy;
};

/** What spawning needs from an actor system: the ActorSystem itself, or a test double. */
export type ActorSpawner = { spawn<M, A = unknown>(spec: ActorSpec<A>): Promise<ActorRef<M>> };

/** Where a spawn helper places its actor, when the caller overrides its defaults. */
export type SpawnPlacement = { readonly pool?: string; readonly name?: string; readonly behavior?: BehaviorSource };

/** A failure report delivered to a parent when its child escalates. */
export type ChildFailure = { readonly child: ActorRef; readonly error: string };

/** An actor's behavior: a reducer plus optional lifecycle hooks. */
export type Behavior<S, M, A = unknown> = {
  /** Builds the initial state from durable state; runs at start and on every restart. */
  init(args: A, ctx: ActorContext<M>): S;
  /** Handles one message and returns the next state. Throwing hands the failure to supervision. */
  receive(state: S, message: M, ctx: ActorContext<M>): S;
  /** Runs once when the actor stops or before a restart (flush, close files). */
  onStop?(state: S, ctx: ActorContext<M>): void;
  /** Decides what happens to a child that escalated a failure; default is stop. */
  onChildFailure?(state: S, failure: ChildFailure, ctx: ActorContext<M>): SupervisorDirective;
};

/** A reply that the handler will give later (after an fsync, say). */
export type DeferredReply = {
  /** Sends the reply value to the asker. */
  resolve(value: unknown): void;
  /** Fails the ask with an error (use replies carrying codes for expected outcomes). */
  reject(error: Error): void;
};

/** The outcome of a piped promise, turned into a message by pipeToSelf's mapper. */
export type PipeResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** Named timers that deliver messages to the actor itself. */
export type ActorTimers<M> = {
  /** Delivers `message` once after `delayMs`; replaces a timer with the same key. */
  startSingle(key: string, message: M, delayMs: number): void;
  /** Delivers `message` every `intervalMs`; replaces a timer with the same key. */
  startPeriodic(key: string, message: M, intervalMs: number): void;
  /** Cancels the timer with this key, if any. */
  cancel(key: string): void;
  /** Whether a timer with this key is pending. */
  isActive(key: string): boolean;
};

/** The subset of node:fs/promises that actors may use; tests inject faults through it. */
export type ActorFileSystem = typeof import('node:fs/promises');

/** Everything an actor may touch: its identity, its seams (time, randomness, files, logs) and effects. */
export type ActorContext<M> = {
  /** This actor's own address. */
  readonly self: ActorRef<M>;
  /** Index of the thread the actor runs on (0 is the main thread). */
  readonly threadIndex: number;
  /** Name of the pool the actor runs on. */
  readonly pool: string;
  /** The clock; never use Date.now or setTimeout directly. */
  readonly clock: Clock;
  /** A number in [0, 1) from the injected random source. */
  random(): number;
  /** The injected file system. */
  readonly fs: ActorFileSystem;
  /** A logger bound to this actor's name. */
  readonly log: Logger;
  /** Named timers delivering messages to this actor. */
  readonly timers: ActorTimers<M>;
  /** Whether the target runs on this actor's thread (a tell to it crosses no thread). */
  isLocal(target: ActorRef): boolean;
  /** Sends without waiting; false means the target's mailbox is full or the target is gone. */
  tell<T>(target: ActorRef<T>, message: T): boolean;
  /** Sends and waits for a reply, rejecting with a RuntimeError on timeout, full mailbox or failure. */
  ask<T, R>(target: ActorRef<T>, message: T, timeoutMs?: number): Promise<R>;
  /** Replies to the message being handled, if it was an ask. */
  reply(value: unknown): void;
  /** Whether the message being handled is an ask that still needs a reply. */
  readonly isAsk: boolean;
  /** Takes over the reply of the current ask, to answer it later; undefined for a tell. */
  deferReply(): DeferredReply | undefined;
  /** Turns a promise's outcome into a message to this actor (effects stay out of the reducer). */
  pipeToSelf<T>(promise: Promise<T>, toMessage: (result: PipeResult<T>) => M): void;
  /** Creates a child actor; this actor becomes its supervisor. */
  spawn<T, A>(spec: ActorSpec<A>): Promise<ActorRef<T>>;
  /** Stops this actor after the current message. */
  stopSelf(): void;
};
