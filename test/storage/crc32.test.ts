import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NATIVE_CRC_MIN_BYTES, crc32, nativeCrc32Loaded } from '../../src/storage/crc32.ts';
import { bodyCrc } from '../../src/storage/message-record.ts';

describe('crc32', () => {
  it('loads the native CRC on linux x64, where the project is built and measured', () => {
    if (process.platform === 'linux' && process.arch === 'x64') expect(nativeCrc32Loaded).toBe(true);
    else expect(typeof nativeCrc32Loaded).toBe('boolean');
  });

  it('gives what zlib gives, below and above the native threshold', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 4 * NATIVE_CRC_MIN_BYTES }), (bytes) => {
        expect(crc32(bytes)).toBe(zlibCrc32(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('gives what zlib gives for views of shared memory at any offset', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(64 * 1024));
    for (let i = 0; i < shared.length; i++) shared[i] = (i * 131 + 7) & 0xff;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1024 }), fc.integer({ min: 0, max: 60 * 1024 }), (offset, length) => {
        const view = shared.subarray(offset, offset + length);
        expect(crc32(view)).toBe(zlibCrc32(view));
      }),
      { numRuns: 200 },
    );
  });

  it('matches java.util.zip.CRC32 on known values, and bodyCrc masks the sign bit as RocketMQ does', () => {
    const text = new TextEncoder().encode('123456789');
    expect(crc32(text)).toBe(0xcbf43926);
    // A 1 KiB body whose CRC has the top bit set, so that the mask has something to clear.
    let fill = 0;
    while (fill < 255 && zlibCrc32(new Uint8Array(1024).fill(fill)) <= 0x7fff_ffff) fill++;
    expect(zlibCrc32(new Uint8Array(1024).fill(fill))).toBeGreaterThan(0x7fff_ffff);
    const body = new Uint8Array(1024).fill(fill);
    expect(crc32(body)).toBe(zlibCrc32(body));
    expect(bodyCrc(body)).toBe(zlibCrc32(body) - 0x8000_0000);
  });
});
