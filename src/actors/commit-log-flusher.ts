/**
 * The store's fdatasync thread (RocketMQ's GroupCommitService / FlushRealTimeService, minus the write).
 * The commit-log-writer writes dirty ranges into the files itself (a memcpy into the kernel's page
 * cache) and hands the paths here; this actor, on a thread of the `store` pool, fdatasyncs them, writes
 * the checkpoint that the sync made true, and tells the writer. The slow system call never runs on the
 * writer's thread, so the writer keeps appending while a group of SYNC_FLUSH puts waits on one sync.
 *
 * fdatasync applies to a file, not to a descriptor, so syncing the writer's files through descriptors
 * opened here is enough. Descriptors are cached, at most `fdCacheMax`, least recently used closed first,
 * and all of them when a new writer incarnation (epoch) appears.
 *
 * It also takes page faults off the writer: on request it touches fresh ConsumeQueue and IndexFile cache
 * pages a little ahead of the writer's entries (`touch`; see TouchAhead in shared-copy.ts).
 */
import type { ActorRef, Behavior } from '../runtime/actor.ts';
import { assert, assertNever } from '../runtime/assert.ts';
import { touchShared } from '../storage/shared-copy.ts';
import { nodeStorageFs, type StorageFs } from '../storage/storage-fs.ts';
import { writeStoreCheckpoint, type StoreCheckpoint } from '../storage/store-checkpoint.ts';

/** Start arguments; `seam` is read only by behaviors built with a test file system. */
export type CommitLogFlusherArgs = {
  /** storePathRootDir, where the checkpoint is written. */
  readonly rootDir: string;
  /** Most descriptors kept open. */
  readonly fdCacheMax: number;
  readonly seam?: unknown;
};

/** What the flusher tells the writer after a sync request. */
export type SyncDone = {
  readonly type: 'synced';
  readonly epoch: number;
  readonly seq: number;
  /** fdatasync calls made. */
  readonly fdatasyncs: number;
  /** Null on success; the failed call's errno (or IO_ERROR) and message otherwise. */
  readonly error: { readonly code: string; readonly message: string } | null;
};

/** Messages: a sync request from the writer, and a stats ask. */
export type CommitLogFlusherMessage =
  | {
      readonly type: 'sync';
      /** The writer's incarnation and request number, echoed back. */
      readonly epoch: number;
      readonly seq: number;
      readonly replyTo: ActorRef<SyncDone>;
      readonly paths: readonly string[];
      /** Written (atomically, durably) after every path is synced. */
      readonly checkpoint: StoreCheckpoint | null;
    }
  /**
   * Touch [from, to) of a fresh ConsumeQueue or IndexFile cache ahead of the writer's entries
   * (touchShared; the writer's TouchAhead), so that the writer's thread does not take those page faults.
   */
  | { readonly type: 'touch'; readonly buffer: SharedArrayBuffer; readonly from: number; readonly to: number }
  | { readonly type: 'stats' };

/** The most bytes one touch request may cover: its faults delay the syncs queued behind it. */
export const TOUCH_REQUEST_MAX_BYTES = 1024 * 1024;

/** Counters the flusher reports. */
export type CommitLogFlusherStats = { readonly requests: number; readonly fdatasyncs: number; readonly failures: number; readonly touchedBytes: number };

type State = {
  readonly fs: StorageFs;
  readonly args: CommitLogFlusherArgs;
  /** path -> fd, in least-recently-used order. */
  readonly fds: Map<string, number>;
  /** The writer incarnation the cached descriptors belong to. */
  epoch: number;
  requests: number;
  fdatasyncs: number;
  failures: number;
  touchedBytes: number;
};

function errorOf(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return { code: typeof code === 'string' ? code : 'IO_ERROR', message: error instanceof Error ? error.message : String(error) };
}

function fdFor(state: State, file: string): number | null {
  const cached = state.fds.get(file);
  if (cached !== undefined) {
    state.fds.delete(file);
    state.fds.set(file, cached);
    return cached;
  }
  let fd: number;
  try {
    fd = state.fs.openSync(file, 'r+');
  } catch (error) {
    // Deleted since it was written (retention, truncation): nothing of it is left to make durable.
    if ((error as { code?: unknown }).code === 'ENOENT') return null;
    throw error;
  }
  state.fds.set(file, fd);
  // Bounded by fdCacheMax: each pass closes one descriptor.
  while (state.fds.size > state.args.fdCacheMax) {
    const [oldest, oldFd] = state.fds.entries().next().value as [string, number];
    state.fds.delete(oldest);
    state.fs.closeSync(oldFd);
  }
  return fd;
}

function forget(state: State, file: string): void {
  const fd = state.fds.get(file);
  if (fd === undefined) return;
  state.fds.delete(file);
  try {
    state.fs.closeSync(fd);
  } catch {
    // The descriptor is being dropped because it failed; a failing close adds nothing.
  }
}

/** Syncs every path, then writes the checkpoint; returns the fdatasyncs made and the first error. */
function sync(state: State, paths: readonly string[], checkpoint: StoreCheckpoint | null): Pick<SyncDone, 'fdatasyncs' | 'error'> {
  let fdatasyncs = 0;
  let current = '';
  try {
    for (const file of paths) {
      current = file;
      const fd = fdFor(state, file);
      if (fd === null) continue;
      state.fs.fdatasyncSync(fd);
      fdatasyncs++;
    }
    current = '';
    if (checkpoint !== null) writeStoreCheckpoint(state.fs, state.args.rootDir, checkpoint);
    return { fdatasyncs, error: null };
  } catch (error) {
    // After a failed fdatasync the descriptor's error state is unreliable: reopen next time.
    if (current !== '') forget(state, current);
    return { fdatasyncs, error: errorOf(error) };
  }
}

/** Builds the flusher behavior over the file system `storageFsOf` returns (tests inject faults here). */
export function commitLogFlusherBehavior(
  storageFsOf: (args: CommitLogFlusherArgs) => StorageFs,
): Behavior<State, CommitLogFlusherMessage, CommitLogFlusherArgs> {
  return {
    init(args) {
      assert(args.rootDir.length > 0, 'the flusher needs the store root');
      assert(Number.isSafeInteger(args.fdCacheMax) && args.fdCacheMax >= 1, 'fdCacheMax is positive');
      return { fs: storageFsOf(args), args, fds: new Map(), epoch: -1, requests: 0, fdatasyncs: 0, failures: 0, touchedBytes: 0 };
    },

    receive(state, message, ctx) {
      switch (message.type) {
        case 'sync': {
          state.requests++;
          if (message.epoch !== state.epoch) {
            // A restarted writer recovered first: it may have deleted files and created new ones under
            // the same names, and a cached descriptor would sync the deleted file instead.
            for (const file of [...state.fds.keys()]) forget(state, file);
            state.epoch = message.epoch;
          }
          const done = sync(state, message.paths, message.checkpoint);
          state.fdatasyncs += done.fdatasyncs;
          if (done.error !== null) {
            state.failures++;
            ctx.log.error({ err: done.error }, 'fdatasync failed');
          }
          const sent = ctx.tell(message.replyTo, { type: 'synced', epoch: message.epoch, seq: message.seq, ...done } satisfies SyncDone);
          // The writer resends a request that got no answer (see its lost-sync check), so a drop is safe.
          if (!sent) ctx.log.warn({ seq: message.seq }, 'writer did not take the sync answer');
          return state;
        }
        case 'touch': {
          // A request too large to run without delaying syncs comes only from a fault of the writer's.
          assert(message.to - message.from <= TOUCH_REQUEST_MAX_BYTES, () => `touch request of ${message.to - message.from} bytes`);
          touchShared(message.buffer, message.from, message.to);
          state.touchedBytes += Math.max(0, message.to - message.from);
          return state;
        }
        case 'stats':
          ctx.reply({ requests: state.requests, fdatasyncs: state.fdatasyncs, failures: state.failures, touchedBytes: state.touchedBytes } satisfies CommitLogFlusherStats);
          return state;
        default:
          return assertNever(message, 'commit log flusher message');
      }
    },

    onStop(state) {
      for (const file of [...state.fds.keys()]) forget(state, file);
    },
  };
}

/** The flusher over the real file system. */
export const commitLogFlusher = commitLogFlusherBehavior(() => nodeStorageFs);
