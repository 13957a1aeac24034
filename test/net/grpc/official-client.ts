/**
 * Test helper: the official RocketMQ Node.js client's generated gRPC code (google-protobuf classes and
 * the grpc-js client), loaded from node_modules/rocketmq-client-nodejs with createRequire, plus small
 * builders for the jspb values the tests need. The official client is the judge of wire compatibility.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

// The generated CommonJS modules ship without types we can import from ESM; they are used dynamically.
type Any = any;

const rootRequire = createRequire(import.meta.url);

/** Folder of the installed rocketmq-client-nodejs package. */
export const CLIENT_PACKAGE_DIR = dirname(rootRequire.resolve('rocketmq-client-nodejs/package.json'));

/** Folder of the official client's `.proto` files and generated code. */
export const CLIENT_PROTO_DIR = join(CLIENT_PACKAGE_DIR, 'proto');

const V2_DIR = join(CLIENT_PROTO_DIR, 'apache/rocketmq/v2');

/** `require` as the official client's own modules see it (same module instances, same grpc-js). */
export const clientRequire = createRequire(join(V2_DIR, 'service_grpc_pb.js'));

/** google-protobuf classes of definition.proto. */
export const def: Any = clientRequire('./definition_pb.js');
/** google-protobuf classes of service.proto. */
export const svc: Any = clientRequire('./service_pb.js');
/** The generated grpc-js client and service descriptor (`MessagingServiceClient`, `MessagingServiceService`). */
export const grpcPb: Any = clientRequire('./service_grpc_pb.js');
/** The @grpc/grpc-js module the official client resolves. */
export const clientGrpc: Any = clientRequire('@grpc/grpc-js');
/** Path of that @grpc/grpc-js module's entry file. */
export const clientGrpcPath: string = clientRequire.resolve('@grpc/grpc-js');

const TimestampPb: Any = clientRequire('google-protobuf/google/protobuf/timestamp_pb.js').Timestamp;
const DurationPb: Any = clientRequire('google-protobuf/google/protobuf/duration_pb.js').Duration;

/** A jspb Resource. */
export function pbResource(name: string, namespace = ''): Any {
  return new def.Resource().setResourceNamespace(namespace).setName(name);
}

/** A jspb Timestamp of `ms` milliseconds since the epoch, built the way the client builds one. */
export function pbTimestamp(ms: number): Any {
  return TimestampPb.fromDate(new Date(ms));
}

/** A jspb Duration. */
export function pbDuration(seconds: number, nanos = 0): Any {
  return new DurationPb().setSeconds(seconds).setNanos(nanos);
}

/** A jspb Endpoints with one address. */
export function pbEndpoints(scheme: number, host: string, port: number): Any {
  return new def.Endpoints().setScheme(scheme).setAddressesList([new def.Address().setHost(host).setPort(port)]);
}

/** `{ seconds, nanos }` of a jspb Timestamp or Duration, for comparisons. */
export function secondsNanos(value: Any): { seconds: number; nanos: number } {
  return { seconds: value.getSeconds(), nanos: value.getNanos() };
}
