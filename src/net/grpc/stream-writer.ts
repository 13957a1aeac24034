/**
 * Writing a server stream's frames with fewer turns of the event loop.
 *
 * grpc-js hands a server stream's messages to HTTP/2 one at a time: its ServerWritableStream has no
 * `_writev`, so each message is written only once the previous HTTP/2 write has completed. A
 * ReceiveMessage answer of 32 messages then costs 32 turns of the front's event loop, shared with every
 * other call on that thread, and the last message leaves milliseconds after the first.
 *
 * `writeServerStream` lets grpc-js write the first frame (which also sends the response headers), then
 * writes the run of EncodedFrames after it straight to the call's HTTP/2 stream in one write, framed as
 * gRPC frames a message (a zero compressed-flag byte, the length as uint32 big-endian, the bytes). The
 * HTTP/2 stream keeps the order of writes, and grpc-js sends its trailers (grpc-status) only after the
 * stream's writable side has ended, so the client sees exactly what the one-by-one path sends. The
 * HTTP/2 stream is grpc-js's own field of its base call: where it is missing (another grpc-js version,
 * interceptors wrapping the call) or the call is over, every frame goes through grpc-js as before.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import { EncodedFrame } from './message-encoder.ts';

/** gRPC's message prefix: one flag byte (0: not compressed) and a uint32 length. */
const PREFIX_BYTES = 5;

/** The HTTP/2 stream under a grpc-js server call, as far as this module uses it. */
type RawStream = {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  write(chunk: Uint8Array, callback: (error?: Error | null) => void): boolean;
};

/** `frames` as gRPC length-prefixed messages back to back, in one buffer. */
export function lengthPrefixed(frames: readonly EncodedFrame[]): Buffer {
  let total = 0;
  for (const frame of frames) total += PREFIX_BYTES + frame.bytes.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const frame of frames) {
    out[at] = 0;
    out.writeUInt32BE(frame.bytes.length, at + 1);
    out.set(frame.bytes, at + PREFIX_BYTES);
    at += PREFIX_BYTES + frame.bytes.length;
  }
  return out;
}

/** The HTTP/2 stream grpc-js keeps on its base server call, or undefined when it is not there. */
function rawStreamOf(call: object): RawStream | undefined {
  const inner = (call as { call?: { stream?: unknown } }).call?.stream;
  if (typeof inner !== 'object' || inner === null) return undefined;
  const stream = inner as Partial<RawStream>;
  if (typeof stream.write !== 'function' || typeof stream.headersSent !== 'boolean' || typeof stream.destroyed !== 'boolean') return undefined;
  return stream as RawStream;
}

/** Whether `call` exposes the HTTP/2 stream `writeServerStream` writes encoded runs to (the grpc-js in use does). */
export function exposesHttp2Stream(call: object): boolean {
  return rawStreamOf(call) !== undefined;
}

/** Writes `frames` in order on a server stream (not ending it); see the header. */
export function writeServerStream<T>(call: ServerWritableStream<unknown, T>, frames: readonly (T | EncodedFrame)[]): void {
  // The MessagingService serializer passes an EncodedFrame's bytes through unchanged.
  const write = (frame: T | EncodedFrame): void => void call.write(frame as T);
  if (frames.length === 0) return;
  write(frames[0]!);
  let end = 1;
  while (end < frames.length && frames[end] instanceof EncodedFrame) end++;
  const raw = end - 1 >= 2 ? rawStreamOf(call) : undefined;
  // headersSent: grpc-js wrote the first frame to the stream just now (it sends the headers with it).
  if (raw !== undefined && raw.headersSent && !raw.destroyed && !raw.writableEnded && !call.cancelled) {
    // A failed write ends the call: the stream's close reaches grpc-js, which cancels it.
    raw.write(lengthPrefixed(frames.slice(1, end) as EncodedFrame[]), () => {});
  } else {
    for (let index = 1; index < end; index++) write(frames[index]!);
  }
  for (let index = end; index < frames.length; index++) write(frames[index]!);
}
