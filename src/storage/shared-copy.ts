/**
 * Byte copies between ordinary memory and SharedArrayBuffer views at memcpy speed.
 *
 * V8's TypedArray.set copies into or out of a SharedArrayBuffer with relaxed atomics: word by word when
 * source and target addresses agree modulo the word size (8), byte by byte otherwise. The byte-wise path
 * runs at about a third of memcpy's speed (3 GB/s against 10 GB/s for 64 KiB copies in hot caches on the
 * 2-core VM this project is measured on). Records are not word-sized, so a batch lands at any alignment.
 *
 * Node's Buffer.prototype.copy copies with memmove (its native `_copy`), except when it copies its whole
 * source into a Uint8Array: then it hands over to TypedArray.set (Node 24's `_copyActual`). `copyBytes`
 * therefore gives it the target as a DataView, which takes the memmove path at any alignment: one 64 KiB
 * copy into shared memory at an odd address took 1.8 µs against 18.2 µs for TypedArray.set here, in a
 * one-off microbenchmark (an earlier version staged misaligned copies in a scratch buffer at the
 * target's alignment: two copies).
 * Below NATIVE_COPY_MIN_BYTES the call costs more than it saves, and TypedArray.set is used. Both give
 * the same bytes; only the speed depends on which path Node takes. No atomicity is promised by either:
 * the callers own the bytes they copy (an append region's reservation, the writer's end of the log).
 *
 * `touchForWrite` is about the first touch of fresh shared memory. A cache that checks a slot is empty
 * before writing it (the ConsumeQueue, the IndexFile) would make its first touch of each page a read,
 * which maps the kernel's shared zero page; the write after it then faults again, copies, and flushes the
 * TLB of every core the process's threads run on (an interrupt to each). A profile of bench:store's batch
 * row had the CommitLog writer ~9% in those. A store to each page first takes one plain fault instead.
 */
import { assert } from '../runtime/assert.ts';

/** The page size `touchForWrite` assumes (x86-64 and most arm64 Linux; larger pages only touch more often than needed). */
const PAGE_BYTES = 4096;

/** Sources shorter than this are copied with TypedArray.set. */
export const NATIVE_COPY_MIN_BYTES = 512;

const nativeCopy = Buffer.prototype.copy;

/** `target.set(source, position)`, with memmove when either side is shared and the source is long enough. */
export function copyBytes(target: Uint8Array, source: Uint8Array, position: number): void {
  const shared = target.buffer instanceof SharedArrayBuffer || source.buffer instanceof SharedArrayBuffer;
  if (!shared || source.length < NATIVE_COPY_MIN_BYTES) {
    target.set(source, position);
    return;
  }
  assert(Number.isInteger(position) && position >= 0 && position + source.length <= target.length, () => `copy of ${source.length} bytes at ${position} leaves the target`);
  // The DataView is what keeps Node on memmove (see the header); its typings only name Uint8Array targets.
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength) as unknown as Uint8Array;
  const copied = nativeCopy.call(source as Buffer, view, position);
  assert(copied === source.length, () => `copied ${copied} of ${source.length} bytes`);
}

/**
 * Asks another thread to touch [from, to) of `buffer` (byte offsets) with `touchShared`, ahead of this
 * thread's own `touchForWrite` there, so that the page faults are taken off this thread. Best effort:
 * a request that is dropped only leaves the faults where they were.
 */
export type TouchAhead = (buffer: SharedArrayBuffer, from: number, to: number) => void;

/**
 * Touches every page of bytes[from, to) with a write that keeps every byte as it is (an atomic
 * compare-exchange of 0 for 0), so that it is safe while the owner writes the same bytes on another
 * thread: a locked compare-exchange cannot interleave with a store to its byte. The other side of
 * TouchAhead. (Atomics.or would read first, as a separate load, and so map the zero page first.)
 */
export function touchShared(buffer: SharedArrayBuffer, from: number, to: number): void {
  assert(Number.isInteger(from) && from >= 0 && to <= buffer.byteLength, () => `bad range [${from}, ${to})`);
  const bytes = new Uint8Array(buffer);
  for (let at = from; at < to; at += PAGE_BYTES) Atomics.compareExchange(bytes, at, 0, 0);
  if (to > from) Atomics.compareExchange(bytes, to - 1, 0, 0);
}

/** How far ahead of the next entry `touchBefore` touches a fresh cache itself. */
export const TOUCH_STEP_BYTES = 64 * 1024;
/** How far beyond that step `touchBefore` asks a TouchAhead to touch. */
export const TOUCH_AHEAD_BYTES = 256 * 1024;

/**
 * How far a cache of entries has been touched: its bytes from `untouchedFrom` on were never written
 * since it was allocated (so they are zero), and a TouchAhead was asked to touch it up to `requestedTo`.
 */
export type FreshCache = { untouchedFrom: number; requestedTo: number };

/** A FreshCache whose bytes from `untouchedFrom` on were never written (the cache's length: none). */
export function freshFrom(untouchedFrom: number): FreshCache {
  return { untouchedFrom, requestedTo: untouchedFrom };
}

/**
 * Before an entry that ends at `needBytes` goes into `cache` (one that checks a slot before writing it):
 * touches its never-written bytes up to there, rounded up to TOUCH_STEP_BYTES, with `touchForWrite`,
 * and asks `ahead` (if any) for the next TOUCH_AHEAD_BYTES. With a TouchAhead that keeps up, this
 * thread's own touch finds the pages there and takes no fault.
 */
export function touchBefore(cache: Uint8Array, fresh: FreshCache, needBytes: number, ahead: TouchAhead | undefined): void {
  if (needBytes <= fresh.untouchedFrom) return;
  const to = Math.min(cache.length, Math.ceil(needBytes / TOUCH_STEP_BYTES) * TOUCH_STEP_BYTES);
  touchForWrite(cache, fresh.untouchedFrom, to);
  fresh.untouchedFrom = to;
  const aheadFrom = Math.max(to, fresh.requestedTo);
  const aheadTo = Math.min(cache.length, to + TOUCH_AHEAD_BYTES);
  if (ahead === undefined || aheadTo <= aheadFrom) return;
  assert(cache.buffer instanceof SharedArrayBuffer, 'a cache touched ahead is shared memory');
  ahead(cache.buffer, cache.byteOffset + aheadFrom, cache.byteOffset + aheadTo);
  fresh.requestedTo = aheadTo;
}

/** Stores a zero in every page of target[from, to), which must hold zeros already (see the header). */
export function touchForWrite(target: Uint8Array, from: number, to: number): void {
  assert(Number.isInteger(from) && from >= 0 && to <= target.length, () => `bad range [${from}, ${to})`);
  for (let at = from; at < to; at += PAGE_BYTES) target[at] = 0;
  if (to > from) target[to - 1] = 0;
}
