/**
 * The grpc-js service definition of apache.rocketmq.v2.MessagingService, built from our `.proto` files
 * with protobufjs (no @grpc/proto-loader), plus the typed handler map the Proxy implements.
 *
 * Register it on a grpc-js Server with `addMessagingService(server, handlers)` (or
 * `server.addService(messagingServiceDefinition, handlers)`); methods left out of `handlers` answer
 * gRPC UNIMPLEMENTED, as grpc-js does for any missing handler.
 *
 * Conversion choices, made once for every method (the hot ones are SendMessage, ReceiveMessage and
 * AckMessage):
 * - Requests are decoded with `Type.decode` and turned into plain objects with `Type.toObject`
 *   (`DECODE_OPTIONS`): all own properties, no prototypes and no Long objects, so a request can be
 *   posted to a worker thread or packed with msgpackr as is. Defaults are filled in (proto3 semantics:
 *   an absent `string` is ""), proto3 `optional` fields and oneof members stay absent unless sent.
 * - int64 becomes a JavaScript number: every int64 of this API is an offset, a count, a version or
 *   Timestamp/Duration seconds, all far below 2^53. A value that did not fit arrives as a number that
 *   fails `Number.isSafeInteger`, which is the check handlers apply to client-sent int64s.
 * - Enums stay numbers (no name lookups on the hot path); compare them with the `as const` objects
 *   of `enums.ts` and `code.ts`.
 * - bytes stay the Node Buffer protobufjs reads, a view into the received frame (no copy of the body).
 * - Responses are encoded straight from plain objects with `Type.encode`; there is no `fromObject` or
 *   `verify` pass, so the TypeScript types of `messages.ts` are what keeps them well formed.
 */
import type {
  handleBidiStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  MethodDefinition,
  Server,
} from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { assert } from '../../runtime/assert.ts';
import type * as M from './messages.ts';
import { EncodedFrame } from './message-encoder.ts';
import { ROCKETMQ_PACKAGE, rocketmqProtoRoot } from './proto-root.ts';

/** Fully qualified name of the service, as it appears in every method path. */
export const MESSAGING_SERVICE_NAME = `${ROCKETMQ_PACKAGE}.MessagingService`;

/**
 * RocketMQ's ProxyConfig `grpcMaxInboundMessageSize` default: room for a batch of 32 messages of 4 MiB
 * plus 2 MiB of properties. grpc-js's own default (4 MiB) cannot carry even one 4 MiB body with its
 * headers, so the server option `grpc.max_receive_message_length` must always be set.
 */
export const GRPC_MAX_INBOUND_MESSAGE_SIZE_DEFAULT = 130 * 1024 * 1024;

/** How `toObject` turns a decoded request into a plain object (see the header comment). */
export const DECODE_OPTIONS: protobuf.IConversionOptions = Object.freeze({ longs: Number, defaults: true });

/** Each method: request type, response type and call shape. */
type MethodShapes = {
  QueryRoute: { req: M.QueryRouteRequest; res: M.QueryRouteResponse; kind: 'unary' };
  Heartbeat: { req: M.HeartbeatRequest; res: M.HeartbeatResponse; kind: 'unary' };
  SendMessage: { req: M.SendMessageRequest; res: M.SendMessageResponse; kind: 'unary' };
  QueryAssignment: { req: M.QueryAssignmentRequest; res: M.QueryAssignmentResponse; kind: 'unary' };
  ReceiveMessage: { req: M.ReceiveMessageRequest; res: M.ReceiveMessageResponse; kind: 'serverStream' };
  AckMessage: { req: M.AckMessageRequest; res: M.AckMessageResponse; kind: 'unary' };
  ForwardMessageToDeadLetterQueue: {
    req: M.ForwardMessageToDeadLetterQueueRequest;
    res: M.ForwardMessageToDeadLetterQueueResponse;
    kind: 'unary';
  };
  PullMessage: { req: M.PullMessageRequest; res: M.PullMessageResponse; kind: 'serverStream' };
  UpdateOffset: { req: M.UpdateOffsetRequest; res: M.UpdateOffsetResponse; kind: 'unary' };
  GetOffset: { req: M.GetOffsetRequest; res: M.GetOffsetResponse; kind: 'unary' };
  QueryOffset: { req: M.QueryOffsetRequest; res: M.QueryOffsetResponse; kind: 'unary' };
  EndTransaction: { req: M.EndTransactionRequest; res: M.EndTransactionResponse; kind: 'unary' };
  Telemetry: { req: M.TelemetryCommand; res: M.TelemetryCommand; kind: 'bidi' };
  NotifyClientTermination: {
    req: M.NotifyClientTerminationRequest;
    res: M.NotifyClientTerminationResponse;
    kind: 'unary';
  };
  ChangeInvisibleDuration: {
    req: M.ChangeInvisibleDurationRequest;
    res: M.ChangeInvisibleDurationResponse;
    kind: 'unary';
  };
  RecallMessage: { req: M.RecallMessageRequest; res: M.RecallMessageResponse; kind: 'unary' };
  SyncLiteSubscription: { req: M.SyncLiteSubscriptionRequest; res: M.SyncLiteSubscriptionResponse; kind: 'unary' };
};

/** Name of a MessagingService method, exactly as in its path. */
export type MessagingMethodName = keyof MethodShapes;

/** Request type of a method. */
export type RequestOf<N extends MessagingMethodName> = MethodShapes[N]['req'];

/** Response type of a method (one frame of the stream for streaming responses). */
export type ResponseOf<N extends MessagingMethodName> = MethodShapes[N]['res'];

type HandlerOf<S extends { req: unknown; res: unknown; kind: string }> = S['kind'] extends 'unary'
  ? handleUnaryCall<S['req'], S['res']>
  : S['kind'] extends 'serverStream'
    ? handleServerStreamingCall<S['req'], S['res']>
    : handleBidiStreamingCall<S['req'], S['res']>;

/** The handlers of MessagingService, by method name; grpc-js calls them with decoded plain objects. */
export type MessagingServiceHandlers = { [N in MessagingMethodName]: HandlerOf<MethodShapes[N]> };

/** The grpc-js definition of MessagingService, one typed MethodDefinition per method. */
export type MessagingServiceDefinition = {
  readonly [N in MessagingMethodName]: MethodDefinition<RequestOf<N>, ResponseOf<N>>;
};

/** Every method in proto order, with its streaming flags; the proto is checked against this list. */
export const MESSAGING_METHODS: readonly { name: MessagingMethodName; requestStream: boolean; responseStream: boolean }[] =
  [
    { name: 'QueryRoute', requestStream: false, responseStream: false },
    { name: 'Heartbeat', requestStream: false, responseStream: false },
    { name: 'SendMessage', requestStream: false, responseStream: false },
    { name: 'QueryAssignment', requestStream: false, responseStream: false },
    { name: 'ReceiveMessage', requestStream: false, responseStream: true },
    { name: 'AckMessage', requestStream: false, responseStream: false },
    { name: 'ForwardMessageToDeadLetterQueue', requestStream: false, responseStream: false },
    { name: 'PullMessage', requestStream: false, responseStream: true },
    { name: 'UpdateOffset', requestStream: false, responseStream: false },
    { name: 'GetOffset', requestStream: false, responseStream: false },
    { name: 'QueryOffset', requestStream: false, responseStream: false },
    { name: 'EndTransaction', requestStream: false, responseStream: false },
    { name: 'Telemetry', requestStream: true, responseStream: true },
    { name: 'NotifyClientTermination', requestStream: false, responseStream: false },
    { name: 'ChangeInvisibleDuration', requestStream: false, responseStream: false },
    { name: 'RecallMessage', requestStream: false, responseStream: false },
    { name: 'SyncLiteSubscription', requestStream: false, responseStream: false },
  ];

/** The path grpc-js routes a method by: `/apache.rocketmq.v2.MessagingService/<Method>`. */
export function methodPath(name: MessagingMethodName): string {
  return `/${MESSAGING_SERVICE_NAME}/${name}`;
}

/** Encodes a plain object of `type` to the Buffer grpc-js sends; an EncodedFrame is already those bytes. */
function serializer<T>(type: protobuf.Type): (value: T) => Buffer {
  return (value) => {
    if (value instanceof EncodedFrame) return value.bytes;
    const bytes = type.encode(value as { [k: string]: unknown }).finish();
    // protobufjs's Node writer already returns a Buffer; wrapping (no copy) covers any other writer.
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** Decodes a received Buffer of `type` into the plain object handlers get. */
function deserializer<T>(type: protobuf.Type): (bytes: Buffer) => T {
  return (bytes) => type.toObject(type.decode(bytes), DECODE_OPTIONS) as T;
}

function buildDefinition(): MessagingServiceDefinition {
  const service = rocketmqProtoRoot().lookupService(MESSAGING_SERVICE_NAME);
  const protoCount = service.methodsArray.length;
  assert(protoCount === MESSAGING_METHODS.length, () => `proto has ${protoCount} MessagingService methods, code knows ${MESSAGING_METHODS.length}`);
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const expected of MESSAGING_METHODS) {
    const method = service.methods[expected.name];
    assert(method !== undefined, () => `MessagingService.${expected.name} missing from proto`);
    // protobufjs leaves the stream flags undefined for non-streaming sides.
    const requestStream = method.requestStream === true;
    const responseStream = method.responseStream === true;
    assert(requestStream === expected.requestStream && responseStream === expected.responseStream, () => `stream flags of ${expected.name}`);
    const requestType = method.resolvedRequestType;
    const responseType = method.resolvedResponseType;
    assert(requestType !== null && responseType !== null, () => `types of ${expected.name} unresolved`);
    definition[expected.name] = {
      path: methodPath(expected.name),
      requestStream,
      responseStream,
      requestSerialize: serializer(requestType),
      requestDeserialize: deserializer(requestType),
      responseSerialize: serializer(responseType),
      responseDeserialize: deserializer(responseType),
    };
  }
  return definition as MessagingServiceDefinition;
}

/**
 * The MessagingService definition for `server.addService`. It also works client-side (for tests and
 * tools) with grpc-js `makeGenericClientConstructor`, since it carries both directions' codecs.
 */
export const messagingServiceDefinition: MessagingServiceDefinition = buildDefinition();

/** Registers MessagingService on `server`; methods missing from `handlers` answer UNIMPLEMENTED. */
export function addMessagingService(server: Server, handlers: Partial<MessagingServiceHandlers>): void {
  server.addService(messagingServiceDefinition, handlers);
}
