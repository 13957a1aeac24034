/**
 * Entry of one write thread (write-threads.ts): sleeps on its slot's state, writes what a request names
 * with blocking `fs.writeSync` calls, reports the outcome in the slot and counts it in the completions
 * word. It has no event loop work: everything arrives through shared memory and receiveMessageOnPort.
 */
import fs from 'node:fs';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import {
  ERRNO_CODES,
  FIELD_FD,
  FIELD_LENGTH,
  FIELD_OFFSET,
  FIELD_POSITION,
  FIELD_RESULT,
  FIELD_STATE,
  SLOT_DONE,
  SLOT_EXIT,
  SLOT_FIELDS,
  SLOT_REQUESTED,
  type WriteThreadInit,
} from './write-threads.ts';

const { control, slot, port } = workerData as WriteThreadInit;
const base = 1 + slot * SLOT_FIELDS;
/** Short writes are retried; a write that makes no progress this many times in a row fails with EIO. */
const STALLED_WRITES_MAX = 16;

function errnoResult(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  const index = ERRNO_CODES.indexOf(typeof code === 'string' ? (code as (typeof ERRNO_CODES)[number]) : 'EUNKNOWN');
  return -((index === -1 ? ERRNO_CODES.length - 1 : index) + 1);
}

function writeRequest(): number {
  const received = receiveMessageOnPort(port);
  if (received === undefined || !(received.message instanceof SharedArrayBuffer)) return errnoResult({ code: 'EUNKNOWN' });
  const bytes = new Uint8Array(received.message, control[base + FIELD_OFFSET]!, control[base + FIELD_LENGTH]!);
  const fd = control[base + FIELD_FD]!;
  const position = control[base + FIELD_POSITION]!;
  let done = 0;
  let stalled = 0;
  try {
    // Each pass writes at least one byte, or counts a stall; bounded by length + STALLED_WRITES_MAX passes.
    while (done < bytes.length) {
      const written = fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
      if (written <= 0 && ++stalled >= STALLED_WRITES_MAX) return errnoResult({ code: 'EIO' });
      if (written > 0) stalled = 0;
      done += Math.max(written, 0);
    }
  } catch (error) {
    return errnoResult(error);
  }
  return 0;
}

// Runs until the owner sets EXIT; each pass serves one request or sleeps until the state changes.
for (;;) {
  const state = Atomics.load(control, base + FIELD_STATE);
  if (state === SLOT_EXIT) break;
  if (state !== SLOT_REQUESTED) {
    Atomics.wait(control, base + FIELD_STATE, state);
    continue;
  }
  control[base + FIELD_RESULT] = writeRequest();
  Atomics.store(control, base + FIELD_STATE, SLOT_DONE);
  Atomics.notify(control, base + FIELD_STATE);
  Atomics.add(control, 0, 1);
  Atomics.notify(control, 0);
}
port.close();
