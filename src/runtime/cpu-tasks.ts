/**
 * Stateless CPU tasks run on the piscina pool: work that needs no actor state and would otherwise hold up
 * an actor's thread (checksumming a recovered segment, say). Each task is a pure function of its input.
 */
import { crc32 } from 'node:zlib';
import { assertNever } from './assert.ts';

/** The tasks the pool understands. */
export type CpuTask =
  | { readonly type: 'crc32'; readonly data: Uint8Array }
  | { readonly type: 'crc32Many'; readonly buffer: Uint8Array; readonly ranges: readonly (readonly [number, number])[] };

/** The piscina entry point: runs one task. */
export default function runCpuTask(task: CpuTask): number | number[] {
  switch (task.type) {
    case 'crc32':
      return crc32(task.data);
    case 'crc32Many':
      return task.ranges.map(([start, end]) => crc32(task.buffer.subarray(start, end)));
    default:
      return assertNever(task, 'cpu task');
  }
}
