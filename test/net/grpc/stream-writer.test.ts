/**
 * writeServerStream: the first frame through grpc-js, the run of encoded frames after it in one write to
 * the HTTP/2 stream, and every frame through grpc-js when that stream cannot be used. The calls here are
 * fakes shaped like grpc-js's (a ServerWritableStream whose `call.stream` is the HTTP/2 stream); the
 * proxy tests (fronts.test.ts, simple-consumer.test.ts) drive the real one end to end.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EncodedFrame } from '../../../src/net/grpc/message-encoder.ts';
import { exposesHttp2Stream, lengthPrefixed, writeServerStream } from '../../../src/net/grpc/stream-writer.ts';

type Status = { readonly status: string };
type Written = { readonly via: 'grpc-js'; readonly frame: Status | EncodedFrame } | { readonly via: 'http2'; readonly bytes: Buffer };

/** Splits gRPC length-prefixed messages, checking each prefix. */
function split(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    expect(bytes[at]).toBe(0);
    const length = bytes.readUInt32BE(at + 1);
    out.push(bytes.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

function fakeCall(options: { stream: boolean; headersOnWrite?: boolean; cancelled?: boolean; destroyed?: boolean }): {
  call: ServerWritableStream<unknown, Status>;
  written: Written[];
} {
  const written: Written[] = [];
  const stream = {
    headersSent: false,
    destroyed: options.destroyed ?? false,
    writableEnded: false,
    write(chunk: Uint8Array, callback: () => void): boolean {
      written.push({ via: 'http2', bytes: Buffer.from(chunk) });
      callback();
      return true;
    },
  };
  const call = {
    cancelled: options.cancelled ?? false,
    call: options.stream ? { stream } : {},
    write(frame: Status | EncodedFrame): boolean {
      if (options.headersOnWrite ?? true) stream.headersSent = true;
      written.push({ via: 'grpc-js', frame });
      return true;
    },
  };
  return { call: call as unknown as ServerWritableStream<unknown, Status>, written };
}

const encoded = (text: string): EncodedFrame => new EncodedFrame(Buffer.from(text));
const status: Status = { status: 'ok' };

describe('writeServerStream', () => {
  it('writes the first frame through grpc-js and the encoded frames after it in one HTTP/2 write', () => {
    const { call, written } = fakeCall({ stream: true });
    writeServerStream(call, [status, encoded('one'), encoded('two'), encoded('three')]);
    expect(written).toHaveLength(2);
    expect(written[0]).toEqual({ via: 'grpc-js', frame: status });
    const raw = written[1]!;
    expect(raw.via).toBe('http2');
    if (raw.via === 'http2') expect(split(raw.bytes).map(String)).toEqual(['one', 'two', 'three']);
  });

  it('goes through grpc-js for frames after the encoded run, in order', () => {
    const { call, written } = fakeCall({ stream: true });
    const tail: Status = { status: 'tail' };
    writeServerStream(call, [status, encoded('a'), encoded('b'), tail]);
    expect(written.map((entry) => entry.via)).toEqual(['grpc-js', 'http2', 'grpc-js']);
    expect(written[2]).toEqual({ via: 'grpc-js', frame: tail });
  });

  const fallbacks: readonly [string, Parameters<typeof fakeCall>[0]][] = [
    ['the call has no HTTP/2 stream', { stream: false }],
    ['grpc-js did not send the headers with the first frame', { stream: true, headersOnWrite: false }],
    ['the call is cancelled', { stream: true, cancelled: true }],
    ['the stream is destroyed', { stream: true, destroyed: true }],
  ];
  for (const [why, options] of fallbacks) {
    it(`writes every frame through grpc-js when ${why}`, () => {
      const { call, written } = fakeCall(options);
      const frames = [status, encoded('x'), encoded('y'), encoded('z')];
      writeServerStream(call, frames);
      expect(written).toEqual(frames.map((frame) => ({ via: 'grpc-js', frame })));
    });
  }

  it('leaves a single encoded frame to grpc-js (nothing to save)', () => {
    const { call, written } = fakeCall({ stream: true });
    writeServerStream(call, [status, encoded('only')]);
    expect(written.map((entry) => entry.via)).toEqual(['grpc-js', 'grpc-js']);
  });
});

describe('lengthPrefixed', () => {
  it('frames any messages so that splitting by prefix gives them back', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (messages) => {
        const framed = lengthPrefixed(messages.map((bytes) => new EncodedFrame(Buffer.from(bytes))));
        expect(framed.length).toBe(messages.reduce((sum, bytes) => sum + 5 + bytes.length, 0));
        expect(split(framed).map((bytes) => [...bytes])).toEqual(messages.map((bytes) => [...bytes]));
      }),
      { numRuns: 200 },
    );
  });
});

describe('with grpc-js itself', () => {
  it('finds the HTTP/2 stream of a real server call, and the client reads every frame in order', async () => {
    const { Server, ServerCredentials, credentials, makeGenericClientConstructor } = await import('@grpc/grpc-js');
    const identity = (value: Buffer | EncodedFrame): Buffer => (value instanceof EncodedFrame ? value.bytes : value);
    const definition = {
      Stream: {
        path: '/test.StreamWriter/Stream',
        requestStream: false,
        responseStream: true,
        requestSerialize: (value: Buffer) => value,
        requestDeserialize: (bytes: Buffer) => bytes,
        responseSerialize: identity,
        responseDeserialize: (bytes: Buffer) => bytes,
      },
    };
    let exposed: boolean | undefined;
    const server = new Server();
    server.addService(definition as never, {
      Stream: (call: ServerWritableStream<Buffer, Buffer | EncodedFrame>) => {
        exposed = exposesHttp2Stream(call);
        writeServerStream(call, [Buffer.from('head'), ...Array.from({ length: 40 }, (_, i) => encoded(`m${i}`)), Buffer.from('tail')]);
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const Client = makeGenericClientConstructor(definition as never, 'StreamWriter');
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const received = await new Promise<string[]>((resolve, reject) => {
        const out: string[] = [];
        const stream = (client as unknown as { Stream(request: Buffer): NodeJS.EventEmitter }).Stream(Buffer.alloc(0));
        stream.on('data', (bytes: Buffer) => out.push(bytes.toString()));
        stream.on('error', reject);
        stream.on('end', () => resolve(out));
      });
      expect(exposed).toBe(true);
      expect(received).toEqual(['head', ...Array.from({ length: 40 }, (_, i) => `m${i}`), 'tail']);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
