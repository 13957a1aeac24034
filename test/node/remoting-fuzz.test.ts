/**
 * A `start` node's Remoting ports against malformed frames, each on a fresh connection: lengths that are
 * zero, negative, too small or above the 16 MiB maximum; a header length beyond the frame; an unknown
 * serialization byte; unparsable JSON and ROCKETMQ headers; a valid header with an unknown code; random
 * bytes; and a frame cut short followed by close. Undecodable frames close the connection, unknown codes
 * are answered REQUEST_CODE_NOT_SUPPORTED (3) with the request's opaque, and after every case a normal
 * client on its own connection still stores a message (SEND_MESSAGE_V2 -> SUCCESS) while no worker
 * thread has died and the node has not gone fatal.
 */
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningNode } from '../../src/node/start-node.ts';
import { startTestNode, type TestNode } from './fixtures/test-node.ts';
import { RemotingClient, requestOf } from '../../src/net/remoting/remoting-client.ts';
import { encodeCommand, FRAME_MAX_BYTES_DEFAULT, FrameDecoder, RemotingCodecError } from '../../src/net/remoting/codec.ts';
import {
  createRequest,
  isResponse,
  RequestCode,
  ResponseCode,
  type RemotingCommand,
  type SerializeTypeName,
} from '../../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest } from '../../src/net/remoting/broker-headers.ts';
import { encodeMessageProperties } from '../../src/storage/message-record.ts';
import { replayableParameters } from '../../property-tests/runtime/fc-parameters.ts';

/** How long the server may take to close a connection after an undecodable frame. */
const CLOSE_WITHIN_MS = 5_000;
/** Runs of the property; each opens two connections and stores one message. */
const RUNS = 100;

let testNode: TestNode;
let node: RunningNode;
/** A client connected before the fuzzing starts: its connection must survive every hostile one. */
let steady: RemotingClient;
const fatal: string[] = [];
const replaced: number[] = [];
let restartsBefore = 0;

beforeAll(async () => {
  // Every hostile connection logs a warning on the worker threads; keep them out of the test output.
  testNode = await startTestNode('remoting-fuzz', 'error');
  node = testNode.node;
  node.system.on('fatal', (reason: string) => fatal.push(reason));
  node.system.on('workerReplaced', (thread: number) => replaced.push(thread));
  restartsBefore = await actorRestarts();
  steady = await RemotingClient.connect(`127.0.0.1:${node.ports.broker}`);
}, 60_000);

afterAll(async () => {
  await steady?.close();
  await testNode?.stop();
}, 60_000);

async function actorRestarts(): Promise<number> {
  return (await node.system.stats()).reduce((sum, thread) => sum + thread.restarts, 0);
}

function sendRequest(body: string): RemotingCommand {
  const header = formatSendMessageRequest(
    {
      producerGroup: 'fuzz-producer',
      topic: 'FuzzTopic',
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 4,
      queueId: 0,
      sysFlag: 0,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties({ TAGS: 'fuzz', WAIT: 'true' }),
      reconsumeTimes: 0,
    },
    'V2',
  );
  return requestOf(RequestCode.SEND_MESSAGE_V2, header, Buffer.from(body));
}

/** A normal client on its own connection still stores a message; no thread died, nothing went fatal. */
async function expectHealthy(client?: RemotingClient): Promise<void> {
  const own = client ?? (await RemotingClient.connect(`127.0.0.1:${node.ports.broker}`));
  try {
    const answer = await own.invoke(sendRequest('still serving'), 10_000);
    expect(answer.code, answer.remark).toBe(ResponseCode.SUCCESS);
  } finally {
    if (client === undefined) await own.close();
  }
  expect(fatal).toEqual([]);
  expect(replaced).toEqual([]);
}

// ------------------------------------------------------------------------------------------ raw socket

type Exchange = {
  /** The connection closed before the wait ran out (by the server, or after we ended our side). */
  readonly closed: boolean;
  /** We half-closed our side first (the `end` option). */
  readonly endedByUs: boolean;
  /** Frames the server sent back. */
  readonly responses: RemotingCommand[];
};

/**
 * Writes `bytes` on a fresh connection. With `end`, half-closes right after (a frame cut short, then
 * close) and waits for the server to close too; otherwise waits up to `waitMs` for the server to close,
 * or, with `answers`, until that many frames came back. Resolves with what happened.
 */
function exchange(port: number, bytes: Buffer, options: { end?: boolean; answers?: number; waitMs?: number }): Promise<Exchange> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const decoder = new FrameDecoder();
  const responses: RemotingCommand[] = [];
  let ended = false;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ closed, endedByUs: ended, responses });
    };
    const timer = setTimeout(() => finish(false), options.waitMs ?? CLOSE_WITHIN_MS);
    // A server that drops a connection with unread bytes resets it; that is a close too.
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      try {
        responses.push(...decoder.push(chunk));
      } catch (error) {
        done = true;
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`the server sent an undecodable frame: ${String(error)}`));
        return;
      }
      if (options.answers !== undefined && responses.length >= options.answers) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.once('connect', () => {
      socket.write(bytes);
      if (options.end === true) {
        ended = true;
        socket.end();
      }
    });
  });
}

// ------------------------------------------------------------------------------------------ frames

const int32 = (value: number): Buffer => {
  const out = Buffer.alloc(4);
  out.writeInt32BE(value | 0);
  return out;
};

/** A frame from its parts: length = 4 + header bytes + body bytes unless given. */
function frameOf(serialize: number, headerLength: number, rest: Buffer, length = 4 + rest.length): Buffer {
  const word = Buffer.alloc(4);
  word.writeUInt32BE((((serialize & 0xff) << 24) | (headerLength & 0xff_ffff)) >>> 0);
  return Buffer.concat([int32(length), word, rest]);
}

/** Whether our own decoder refuses these bytes as one complete stream. */
function undecodable(bytes: Buffer): boolean {
  try {
    const decoder = new FrameDecoder();
    decoder.push(bytes);
    return decoder.failure !== undefined;
  } catch (error) {
    if (error instanceof RemotingCodecError) return true;
    throw error;
  }
}

const knownCodes = new Set<number>(Object.values(RequestCode));
/** A code no processor serves; int16, so both serializations can carry it. */
const unknownCode = fc.integer({ min: -0x8000, max: 0x7fff }).filter((code) => !knownCodes.has(code));
const serializeType = fc.constantFrom<SerializeTypeName>('JSON', 'ROCKETMQ');
const opaque = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const trailing = fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes));

/** A well-formed request frame with an unknown code. */
const unknownCodeFrame = fc.record({ code: unknownCode, opaque, serializeType, remark: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) }).map((init) => ({
  ...init,
  bytes: encodeCommand(createRequest({ ...init, extFields: { k: 'v' } })),
}));

/** A malformed case: the bytes, and what the server must do with them. */
type Case =
  | { readonly kind: 'close'; readonly what: string; readonly bytes: Buffer }
  | { readonly kind: 'notSupported'; readonly what: string; readonly bytes: Buffer; readonly opaque: number; readonly code: number; readonly serializeType: SerializeTypeName }
  | { readonly kind: 'truncated'; readonly what: string; readonly bytes: Buffer }
  | { readonly kind: 'random'; readonly what: string; readonly bytes: Buffer };

const closeCase = (what: string, arbitrary: fc.Arbitrary<Buffer>): fc.Arbitrary<Case> =>
  arbitrary.map((bytes) => ({ kind: 'close', what, bytes }) as const);

const zeroLength = closeCase('length 0', trailing.map((rest) => Buffer.concat([int32(0), rest])));
const tooSmallLength = closeCase('length 1..3', fc.tuple(fc.integer({ min: 1, max: 3 }), trailing).map(([length, rest]) => Buffer.concat([int32(length), rest])));
const negativeLength = closeCase('negative length', fc.tuple(fc.integer({ min: -0x8000_0000, max: -1 }), trailing).map(([length, rest]) => Buffer.concat([int32(length), rest])));
const oversizedLength = closeCase(
  'length above the maximum',
  fc.tuple(fc.integer({ min: FRAME_MAX_BYTES_DEFAULT - 4 + 1, max: 0x7fff_ffff }), trailing).map(([length, rest]) => Buffer.concat([int32(length), rest])),
);
const headerBeyondFrame = closeCase(
  'header length beyond the frame',
  fc
    .tuple(fc.constantFrom(0, 1), fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 0xff_ffff }))
    .map(([serialize, rest, excess]) => frameOf(serialize, Math.min(0xff_ffff, rest.length + excess), Buffer.from(rest))),
);
const unknownSerialization = closeCase(
  'serialization byte neither 0 nor 1',
  fc.tuple(fc.integer({ min: 2, max: 255 }), unknownCodeFrame).map(([serialize, frame]) => {
    const bytes = Buffer.from(frame.bytes);
    bytes.writeUInt8(serialize, 4);
    return bytes;
  }),
);
/** JSON headers that cannot be parsed, or parse to something that is not a command header. */
const badJsonHeader = closeCase(
  'unparsable JSON header',
  fc
    .oneof(
      fc.string({ maxLength: 80 }),
      fc.json({ maxDepth: 2 }),
      fc.record({ code: fc.oneof(fc.double(), fc.string(), fc.constant(2 ** 40)), opaque: fc.integer() }).map((header) => JSON.stringify(header)),
      fc.record({ code: fc.integer({ min: 0, max: 400 }) }).map((header) => JSON.stringify(header)),
      unknownCodeFrame.map((frame) => frame.bytes.subarray(8, 8 + (frame.bytes.readUInt32BE(4) & 0xff_ffff)).toString('latin1').slice(0, -1)),
    )
    .chain((text) => fc.uint8Array({ maxLength: 16 }).map((body) => {
      const header = Buffer.from(text, 'utf8');
      return frameOf(0, header.length, Buffer.concat([header, body]));
    }))
    .filter(undecodable),
);
/** ROCKETMQ headers that are truncated, overlong, or carry lengths that run outside the header. */
const badRocketmqHeader = closeCase(
  'unparsable ROCKETMQ header',
  fc
    .oneof(
      fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
      fc.tuple(unknownCodeFrame.filter((frame) => frame.serializeType === 'ROCKETMQ'), fc.nat(), fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })).map(([frame, at, value]) => {
        const header = Buffer.from(frame.bytes.subarray(8, 8 + (frame.bytes.readUInt32BE(4) & 0xff_ffff)));
        // Overwrite one of the length fields (remark at 13, extFields after the remark) with junk.
        const remarkLength = header.readInt32BE(13);
        const fields = [13, 17 + remarkLength];
        header.writeInt32BE(value, fields[at % fields.length]!);
        return header;
      }),
      fc.tuple(unknownCodeFrame.filter((frame) => frame.serializeType === 'ROCKETMQ'), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([frame, extra]) => {
        const header = frame.bytes.subarray(8, 8 + (frame.bytes.readUInt32BE(4) & 0xff_ffff));
        return Buffer.concat([header, extra]);
      }),
    )
    .chain((header) => fc.uint8Array({ maxLength: 16 }).map((body) => frameOf(1, header.length, Buffer.concat([header, body]))))
    .filter(undecodable),
);
const unknownCodeCase: fc.Arbitrary<Case> = unknownCodeFrame.map((frame) => ({
  kind: 'notSupported',
  what: 'unknown code with a valid header',
  bytes: frame.bytes,
  opaque: frame.opaque,
  code: frame.code,
  serializeType: frame.serializeType,
}));
const randomBytes: fc.Arbitrary<Case> = fc.uint8Array({ minLength: 1, maxLength: 512 }).map((bytes) => ({ kind: 'random', what: 'random bytes', bytes: Buffer.from(bytes) }));
const truncatedFrame: fc.Arbitrary<Case> = fc
  .tuple(fc.oneof(unknownCodeFrame.map((frame) => frame.bytes), fc.string({ maxLength: 64 }).map((body) => encodeCommand({ ...sendRequest(body), opaque: 1 }))), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(([bytes, cut]) => ({ kind: 'truncated', what: 'frame cut short, then close', bytes: bytes.subarray(0, Math.max(1, Math.min(bytes.length - 1, Math.floor(cut * bytes.length)))) }));

const anyCase = fc.oneof(
  zeroLength,
  tooSmallLength,
  negativeLength,
  oversizedLength,
  headerBeyondFrame,
  unknownSerialization,
  badJsonHeader,
  badRocketmqHeader,
  unknownCodeCase,
  randomBytes,
  truncatedFrame,
);

/** What the server must do with one case, on a fresh connection to `port`. */
async function expectHandled(port: number, hostile: Case): Promise<void> {
  switch (hostile.kind) {
    case 'close': {
      const outcome = await exchange(port, hostile.bytes, {});
      expect(outcome.closed, `${hostile.what}: ${hostile.bytes.toString('hex').slice(0, 80)}`).toBe(true);
      expect(outcome.responses).toEqual([]);
      return;
    }
    case 'notSupported': {
      // Twice on one connection: the first answer must not have closed it.
      const outcome = await exchange(port, Buffer.concat([hostile.bytes, hostile.bytes]), { answers: 2 });
      expect(outcome.closed).toBe(false);
      expect(outcome.responses).toHaveLength(2);
      for (const response of outcome.responses) {
        expect(isResponse(response)).toBe(true);
        expect(response.code, response.remark).toBe(ResponseCode.REQUEST_CODE_NOT_SUPPORTED);
        expect(response.opaque).toBe(hostile.opaque);
        expect(response.serializeType).toBe(hostile.serializeType);
      }
      return;
    }
    case 'truncated': {
      const outcome = await exchange(port, hostile.bytes, { end: true });
      // The half frame is never served, and the server closes its side once ours is closed.
      expect(outcome.responses).toEqual([]);
      expect(outcome.closed, `${hostile.what}: ${hostile.bytes.length} bytes`).toBe(true);
      return;
    }
    case 'random': {
      // Random bytes are almost always undecodable; if they happen to frame a command the server may
      // answer it. Either way it must not hang on to the connection once we close ours.
      const outcome = await exchange(port, hostile.bytes, { end: true });
      expect(outcome.closed, `${hostile.what}: ${hostile.bytes.toString('hex').slice(0, 80)}`).toBe(true);
      for (const response of outcome.responses) expect(isResponse(response)).toBe(true);
      return;
    }
    default: {
      const unreachable: never = hostile;
      throw new Error(`unknown case ${JSON.stringify(unreachable)}`);
    }
  }
}

describe('a start node against malformed Remoting frames', () => {
  it('is healthy before the fuzzing starts', async () => {
    await expectHealthy(steady);
  });

  it('closes undecodable connections, answers unknown codes NOT_SUPPORTED, and keeps serving', async () => {
    const ports = [
      { server: 'broker', port: node.ports.broker },
      { server: 'namesrv', port: node.ports.namesrv },
    ] as const;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ports), anyCase, async ({ port }, hostile) => {
        await expectHandled(port, hostile);
        await expectHealthy();
      }),
      replayableParameters('remoting fuzz', RUNS),
    );
  }, 120_000);

  it('has restarted no actor and lost no connection of a client that behaved', async () => {
    await expectHealthy(steady);
    expect(steady.closed).toBe(false);
    expect(await actorRestarts()).toBe(restartsBefore);
  });
});
