/**
 * CRC-32 (the IEEE polynomial of zlib and java.util.zip.CRC32) for message bodies, at the speed the CPU
 * allows.
 *
 * Node's `zlib.crc32` runs the table-driven CRC of its bundled zlib: ~2.7 GB/s on the 2-core VM this
 * project is measured on, 0.37 µs per 1 KiB body, a fifth of a send thread's work per message in the
 * store's batch row. `@node-rs/crc32` (a napi-rs binding of the crc32fast crate, which folds with the
 * CPU's carry-less multiply) took 0.19 µs per 1 KiB there and 2.8 against 7.1 µs per 32 KiB. Its call
 * costs ~0.12 µs more than zlib's, so inputs shorter than NATIVE_CRC_MIN_BYTES stay on zlib, which is
 * faster for them.
 *
 * Both give the same value for the same bytes (test/storage/crc32.test.ts). Where the binding has no
 * build for the platform, or fails to load, every input goes to zlib: slower, never different.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

/** Inputs shorter than this go to zlib (the native call's own cost is larger than what it saves). */
export const NATIVE_CRC_MIN_BYTES = 256;

type Crc32Function = (input: Uint8Array) => number;

function loadNative(): Crc32Function | null {
  try {
    const binding = createRequire(import.meta.url)('@node-rs/crc32') as { crc32?: unknown };
    return typeof binding.crc32 === 'function' ? (binding.crc32 as Crc32Function) : null;
  } catch {
    return null;
  }
}

const native = loadNative();

/** Whether the native CRC loaded on this platform (the tests check it does where the project is measured). */
export const nativeCrc32Loaded = native !== null;

/** CRC-32 of `bytes` as an unsigned 32-bit number, as `zlib.crc32` gives it. */
export function crc32(bytes: Uint8Array): number {
  return native !== null && bytes.length >= NATIVE_CRC_MIN_BYTES ? native(bytes) : zlibCrc32(bytes);
}
