/**
 * Write threads: a few helper threads that run blocking `pwrite`s for their owner thread, so that the
 * owner can go on working while a large write is with the disk, and can still wait for a write
 * synchronously (Atomics.wait) before it closes a file, recycles a buffer or truncates. libuv's own
 * thread pool would run the writes too, but its completions arrive only through the owner's event
 * loop, so a synchronous caller could never wait for one; these threads report through shared memory.
 *
 * The owner and thread i share slot i of one Int32Array (`control`); the owner is the only thread that
 * starts writes, so slots need no lock:
 *
 * | index          | field        | meaning                                                          |
 * |----------------|--------------|------------------------------------------------------------------|
 * | 0              | completions  | writes ended so far, all slots (what `signal` waits on)           |
 * | 1 + 8i + 0     | state        | FREE, REQUESTED (owner -> thread), DONE (thread -> owner), EXIT   |
 * | 1 + 8i + 1     | fd           | file descriptor to write to                                      |
 * | 1 + 8i + 2     | offset       | where in the posted buffer the bytes start                       |
 * | 1 + 8i + 3     | length       | bytes to write                                                   |
 * | 1 + 8i + 4     | position     | file position of the first byte (files are < 2 GiB)              |
 * | 1 + 8i + 5     | result       | 0 written in full, or minus an ERRNO_CODES index                 |
 *
 * The buffer itself (a SharedArrayBuffer) goes over the thread's MessagePort with every request, just
 * before the state turns REQUESTED; the thread takes it with receiveMessageOnPort and drops it after
 * the write, so a buffer the owner lets go is not kept alive here. State moves FREE -> REQUESTED (owner)
 * -> DONE (thread) -> FREE (owner, when it reads the outcome): each side writes only the states it
 * owns, so a slot is never started twice or read before its write ended.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { assert } from './assert.ts';

/** Slot states. */
export const SLOT_FREE = 0;
export const SLOT_REQUESTED = 1;
export const SLOT_DONE = 2;
export const SLOT_EXIT = 3;

/** Int32 fields per slot. */
export const SLOT_FIELDS = 8;
/** Field offsets within a slot. */
export const FIELD_STATE = 0;
export const FIELD_FD = 1;
export const FIELD_OFFSET = 2;
export const FIELD_LENGTH = 3;
export const FIELD_POSITION = 4;
export const FIELD_RESULT = 5;

/** Errno names a failed write reports; index i is reported as result -(i + 1). */
export const ERRNO_CODES = ['ENOSPC', 'EDQUOT', 'EINVAL', 'EIO', 'EBADF', 'EFBIG', 'EUNKNOWN'] as const;

/** The most write threads one owner may start. */
export const WRITE_THREADS_MAX = 8;

/** How a write ended: null when every byte was written, else the errno name. */
export type WriteOutcome = null | (typeof ERRNO_CODES)[number];

/** What the thread's entry gets as workerData. */
export type WriteThreadInit = { readonly control: Int32Array; readonly slot: number; readonly port: MessagePort };

/**
 * Writes that run elsewhere and end on their own. The store uses this narrow seam (tests fake it);
 * `WriteThreads` is the real one.
 */
export type AsyncWrites = {
  /** Starts writing `bytes` (a view of a SharedArrayBuffer) to `fd` at `position`; null when every slot is busy. */
  start(fd: number, bytes: Uint8Array, position: number): number | null;
  /** The outcome of slot's write, freeing the slot; undefined while it still runs. */
  poll(slot: number): WriteOutcome | undefined;
  /** Blocks until slot's write ends, then returns its outcome as `poll` does. */
  wait(slot: number): WriteOutcome;
  /** Settles once some write ends that had not ended at the last `poll` or `wait`. */
  signal(): Promise<unknown>;
};

const entry = new URL('./write-thread-main.ts', import.meta.url);

function slotBase(slot: number): number {
  return 1 + slot * SLOT_FIELDS;
}

/** `threads` write threads for the calling thread. */
export class WriteThreads implements AsyncWrites {
  private readonly control: Int32Array;
  private readonly ports: MessagePort[] = [];
  private readonly workers: Worker[] = [];
  private readonly busy: boolean[] = [];
  /** The completions counter as of the last poll or wait: `signal` waits for it to move. */
  private seen = 0;
  private closed = false;

  constructor(threads: number) {
    assert(Number.isInteger(threads) && threads >= 1 && threads <= WRITE_THREADS_MAX, () => `bad write thread count ${threads}`);
    this.control = new Int32Array(new SharedArrayBuffer(4 * (1 + threads * SLOT_FIELDS)));
    for (let slot = 0; slot < threads; slot++) {
      const channel = new MessageChannel();
      const init: WriteThreadInit = { control: this.control, slot, port: channel.port2 };
      const worker = new Worker(entry, { workerData: init, transferList: [channel.port2], name: `commitlog-write-${slot}` });
      // Blocked in Atomics.wait most of the time: they must not keep the process alive.
      worker.unref();
      this.ports.push(channel.port1);
      this.workers.push(worker);
      this.busy.push(false);
    }
  }

  /** Writes started and not yet polled to their end. */
  get inFlight(): number {
    let count = 0;
    for (const busy of this.busy) if (busy) count++;
    return count;
  }

  start(fd: number, bytes: Uint8Array, position: number): number | null {
    assert(!this.closed, 'write threads are closed');
    assert(bytes.buffer instanceof SharedArrayBuffer, 'write threads take views of SharedArrayBuffers');
    assert(Number.isInteger(position) && position >= 0 && position + bytes.length <= 0x7fff_ffff, () => `bad write position ${position}`);
    const slot = this.busy.indexOf(false);
    if (slot === -1) return null;
    const base = slotBase(slot);
    assert(Atomics.load(this.control, base + FIELD_STATE) === SLOT_FREE, 'a free slot');
    this.busy[slot] = true;
    this.ports[slot]!.postMessage(bytes.buffer);
    this.control[base + FIELD_FD] = fd;
    this.control[base + FIELD_OFFSET] = bytes.byteOffset;
    this.control[base + FIELD_LENGTH] = bytes.length;
    this.control[base + FIELD_POSITION] = position;
    this.control[base + FIELD_RESULT] = 0;
    Atomics.store(this.control, base + FIELD_STATE, SLOT_REQUESTED);
    Atomics.notify(this.control, base + FIELD_STATE);
    return slot;
  }

  poll(slot: number): WriteOutcome | undefined {
    assert(this.busy[slot] === true, () => `slot ${slot} has no write`);
    this.seen = Atomics.load(this.control, 0);
    const base = slotBase(slot);
    if (Atomics.load(this.control, base + FIELD_STATE) !== SLOT_DONE) return undefined;
    const result = this.control[base + FIELD_RESULT]!;
    Atomics.store(this.control, base + FIELD_STATE, SLOT_FREE);
    this.busy[slot] = false;
    if (result === 0) return null;
    const code = ERRNO_CODES[-result - 1];
    assert(code !== undefined, () => `bad write result ${result}`);
    return code;
  }

  wait(slot: number): WriteOutcome {
    assert(this.busy[slot] === true, () => `slot ${slot} has no write`);
    const index = slotBase(slot) + FIELD_STATE;
    // Each pass sleeps until the state leaves REQUESTED; the thread sets DONE after every request.
    while (Atomics.load(this.control, index) === SLOT_REQUESTED) Atomics.wait(this.control, index, SLOT_REQUESTED);
    const outcome = this.poll(slot);
    assert(outcome !== undefined, 'a waited write has ended');
    return outcome;
  }

  signal(): Promise<unknown> {
    const waited = Atomics.waitAsync(this.control, 0, this.seen);
    return waited.async ? waited.value : Promise.resolve(waited.value);
  }

  /** Ends the threads. Writes still running finish first; call only with none started or after waiting. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let slot = 0; slot < this.busy.length; slot++) {
      if (this.busy[slot] === true) this.wait(slot);
      const index = slotBase(slot) + FIELD_STATE;
      Atomics.store(this.control, index, SLOT_EXIT);
      Atomics.notify(this.control, index);
      this.ports[slot]!.close();
    }
  }
}
