/**
 * Byte copies between ordinary memory and SharedArrayBuffer views at full memcpy speed.
 *
 * V8 copies into or out of a SharedArrayBuffer with relaxed atomics: word by word when source and target
 * addresses agree modulo the word size (8), byte by byte otherwise. The byte-wise path runs at about a
 * third of memcpy's speed (3 GB/s against 10 GB/s for 64 KiB copies in hot caches on the 2-core VM this
 * project is measured on). Records are not word-sized, so a batch lands at any alignment.
 *
 * `copyAligned` therefore stages a misaligned copy of at least REALIGN_MIN_BYTES in a scratch buffer
 * placed at the shared side's alignment: one ordinary memcpy plus one word-wise relaxed copy. Two fast
 * copies beat one slow one. Below REALIGN_MIN_BYTES the direct copy is cheaper.
 *
 * The scratch buffer is one per thread (module state), reused by every call, and bounded by
 * SCRATCH_BYTES_MAX: larger copies go in pieces.
 */

/** Word size that V8's relaxed copies use. */
const WORD_BYTES = 8;

/** Sources shorter than this are copied directly, misaligned or not. */
export const REALIGN_MIN_BYTES = 512;

/** Largest scratch buffer; copies above it are split into pieces of this size. */
export const SCRATCH_BYTES_MAX = 1 << 20;

let scratch: Uint8Array | null = null;

function scratchOf(bytes: number): Uint8Array {
  if (scratch === null || scratch.length < bytes) {
    scratch = new Uint8Array(Math.min(SCRATCH_BYTES_MAX, Math.max(bytes, 64 * 1024)) + WORD_BYTES);
  }
  return scratch;
}

/** The address of `view`'s byte `at`, modulo the word size (backing stores are word-aligned). */
function alignmentOf(view: Uint8Array, at: number): number {
  return (view.byteOffset + at) % WORD_BYTES;
}

/**
 * `target.set(source, position)`, taking V8's word-wise path on the shared side: when one side is
 * shared, the two sides' alignments differ and the source has REALIGN_MIN_BYTES or more, the bytes go
 * through the scratch buffer placed at the shared side's alignment (the copy between scratch and the
 * other, ordinary side is a plain memcpy at any alignment).
 */
export function copyAligned(target: Uint8Array, source: Uint8Array, position: number): void {
  const shared = target.buffer instanceof SharedArrayBuffer || source.buffer instanceof SharedArrayBuffer;
  if (!shared || source.length < REALIGN_MIN_BYTES || alignmentOf(source, 0) === alignmentOf(target, position)) {
    target.set(source, position);
    return;
  }
  const buffer = scratchOf(source.length);
  const piece = buffer.length - WORD_BYTES;
  // Bounded by source.length / piece passes.
  for (let done = 0; done < source.length; done += piece) {
    const length = Math.min(piece, source.length - done);
    const offset = stagingOffset(target, source, position, done);
    const staged = buffer.subarray(offset, offset + length);
    staged.set(source.subarray(done, done + length));
    target.set(staged, position + done);
  }
}

/**
 * Where in the scratch buffer `copyAligned` stages the piece of `source` from byte `done`: at the
 * shared side's alignment (the target's when it is shared, else the source's). The scratch's backing
 * store is its own and word-aligned, so scratch offset k has alignment k.
 */
export function stagingOffset(target: Uint8Array, source: Uint8Array, position: number, done: number): number {
  return target.buffer instanceof SharedArrayBuffer ? alignmentOf(target, position + done) : alignmentOf(source, done);
}
