/**
 * A lean gRPC client for the benchmarks: MessagingService calls written straight onto node:http2
 * streams (gRPC's wire format: one length-prefixed message per request, `grpc-status` in the trailers).
 *
 * Why not grpc-js: on this 2-core machine a grpc-js client spends ~100 µs of CPU per unary call, so a
 * benchmark driven by it measures mostly itself (a no-op grpc-js server tops out near 10,500 calls/s
 * against a grpc-js client, and near 22,000 against this one). The bytes on the wire are the same;
 * requests and responses go through the same protobufjs codecs as the Proxy's
 * (`messagingServiceDefinition`). No retries, no deadlines beyond `grpc-timeout`, no compression.
 */
import http2 from 'node:http2';
import { messagingServiceDefinition, methodPath, type MessagingMethodName, type RequestOf, type ResponseOf } from '../src/net/grpc/messaging-service.ts';
import type * as M from '../src/net/grpc/messages.ts';

/** gRPC's message prefix: compressed flag (1 byte) and length (4 bytes, big-endian). */
const PREFIX_BYTES = 5;

/** What a call ended with when `grpc-status` was not OK (0). */
export class GrpcCallError extends Error {
  readonly grpcStatus: number;
  constructor(grpcStatus: number, details: string) {
    super(`gRPC status ${grpcStatus}: ${details}`);
    this.grpcStatus = grpcStatus;
  }
}

/** A SendMessageRequest of one NORMAL message, as a 5.x producer sends it (queue chosen by the Proxy). */
export function normalSendRequest(topic: string, tag: string, messageId: string, body: Buffer): M.SendMessageRequest {
  return {
    messages: [
      {
        topic: { name: topic, resourceNamespace: '' },
        userProperties: {},
        systemProperties: {
          tag,
          keys: [],
          messageId,
          bodyDigest: null,
          bodyEncoding: 1,
          messageType: 1,
          bornTimestamp: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
          bornHost: '127.0.0.1',
          storeHost: '',
          queueId: 0,
        },
        body,
      },
    ],
  };
}

/** One HTTP/2 connection to a Proxy; calls are concurrent streams on it. */
export class GrpcWireChannel {
  readonly #session: http2.ClientHttp2Session;
  readonly #clientId: string;

  constructor(address: string, clientId: string) {
    this.#session = http2.connect(`http://${address}`);
    this.#session.on('error', () => undefined);
    this.#clientId = clientId;
  }

  /** A unary call: one request, one response message. */
  async unary<N extends MessagingMethodName>(method: N, request: RequestOf<N>, timeoutMs: number): Promise<ResponseOf<N>> {
    const frames = await this.#call(method, request, timeoutMs);
    if (frames.length !== 1) throw new GrpcCallError(13, `unary ${method} answered ${frames.length} messages`);
    return frames[0]!;
  }

  /** A server-streaming call: every response message, once the stream ends with status OK. */
  stream<N extends MessagingMethodName>(method: N, request: RequestOf<N>, timeoutMs: number): Promise<ResponseOf<N>[]> {
    return this.#call(method, request, timeoutMs);
  }

  /** A server-streaming call whose response messages come back undecoded (see `deliveredIdsOf`). */
  streamRaw<N extends MessagingMethodName>(method: N, request: RequestOf<N>, timeoutMs: number): Promise<Buffer[]> {
    return this.#call(method, request, timeoutMs, (bytes) => bytes);
  }

  close(): void {
    this.#session.close();
  }

  #call<N extends MessagingMethodName, R = ResponseOf<N>>(
    method: N,
    request: RequestOf<N>,
    timeoutMs: number,
    decode: (bytes: Buffer) => R = (bytes) => messagingServiceDefinition[method].responseDeserialize(bytes) as R,
  ): Promise<R[]> {
    const definition = messagingServiceDefinition[method];
    const payload = definition.requestSerialize(request);
    const framed = Buffer.allocUnsafe(PREFIX_BYTES + payload.length);
    framed[0] = 0;
    framed.writeUInt32BE(payload.length, 1);
    payload.copy(framed, PREFIX_BYTES);
    const stream = this.#session.request({
      ':method': 'POST',
      ':path': methodPath(method),
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
      'x-mq-client-id': this.#clientId,
    });
    stream.end(framed);
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let details = '';
      const takeStatus = (headers: http2.IncomingHttpHeaders): void => {
        const value = headers['grpc-status'];
        if (value !== undefined) {
          status = Number(value);
          details = String(headers['grpc-message'] ?? '');
        }
      };
      stream.on('response', takeStatus); // a trailers-only answer carries the status in the headers
      stream.on('trailers', takeStatus);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('close', () => {
        if (status === undefined) return reject(new GrpcCallError(14, `${method}: stream closed without grpc-status (rst code ${stream.rstCode})`));
        if (status !== 0) return reject(new GrpcCallError(status, details));
        try {
          resolve(messagesOf(Buffer.concat(chunks)).map(decode));
        } catch (error) {
          reject(error);
        }
      });
    });
  }
}

/** Splits a gRPC body into its length-prefixed messages. */
function messagesOf(body: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < PREFIX_BYTES) throw new GrpcCallError(13, 'truncated gRPC message prefix');
    if (body[at] !== 0) throw new GrpcCallError(13, 'compressed gRPC message: not supported by this client');
    const length = body.readUInt32BE(at + 1);
    const end = at + PREFIX_BYTES + length;
    if (end > body.length) throw new GrpcCallError(13, 'truncated gRPC message');
    messages.push(body.subarray(at + PREFIX_BYTES, end));
    at = end;
  }
  return messages;
}

/**
 * The message id and receipt handle of a ReceiveMessageResponse frame that carries a message (undefined
 * for a status or delivery-timestamp frame), read from the protobuf bytes without decoding the rest:
 * all an acknowledging load generator needs, at a fraction of a full decode's CPU.
 */
export function deliveredIdsOf(frame: Buffer): { messageId: string; receiptHandle: string } | undefined {
  const message = lengthDelimited(frame, 0, frame.length, 2);
  if (message === undefined) return undefined;
  const system = lengthDelimited(frame, message[0], message[1], 3);
  if (system === undefined) throw new GrpcCallError(13, 'a delivered message without system properties');
  const id = lengthDelimited(frame, system[0], system[1], 3);
  const handle = lengthDelimited(frame, system[0], system[1], 12);
  if (id === undefined || handle === undefined) throw new GrpcCallError(13, 'a delivered message without id or receipt handle');
  return { messageId: frame.toString('utf8', id[0], id[1]), receiptHandle: frame.toString('utf8', handle[0], handle[1]) };
}

/** [start, end) of the first length-delimited field `field` among the fields in bytes[from, to). */
function lengthDelimited(bytes: Buffer, from: number, to: number, field: number): [number, number] | undefined {
  let at = from;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= to || shift > 63) throw new GrpcCallError(13, 'malformed protobuf varint');
      const byte = bytes[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < to) {
    const key = varint();
    const wireType = key % 8;
    if (wireType === 0) varint();
    else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else if (wireType === 2) {
      const length = varint();
      if (at + length > to) throw new GrpcCallError(13, 'truncated protobuf field');
      if ((key - wireType) / 8 === field) return [at, at + length];
      at += length;
    } else throw new GrpcCallError(13, `unsupported protobuf wire type ${wireType}`);
  }
  return undefined;
}
