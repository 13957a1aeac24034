/**
 * Loads our apache.rocketmq.v2 `.proto` files (repository folder `proto/`) into one protobufjs Root,
 * once per process, on first use.
 *
 * Imports of `apache/rocketmq/v2/...` resolve against `proto/`; imports of `google/protobuf/...`
 * (Timestamp, Duration) are served by the well-known types protobufjs carries built in
 * (`protobuf.common`), so nothing from Google is vendored. Field names become camelCase, the
 * protobufjs default; every other part of the schema is taken as written.
 */
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** Folder that holds the `.proto` files, resolved from this module's own location. */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

/** The files that make up apache.rocketmq.v2, relative to PROTO_DIR. */
export const ROCKETMQ_PROTO_FILES = ['apache/rocketmq/v2/definition.proto', 'apache/rocketmq/v2/service.proto'] as const;

/** Package of every RocketMQ message and of MessagingService. */
export const ROCKETMQ_PACKAGE = 'apache.rocketmq.v2';

const WELL_KNOWN_PREFIX = 'google/protobuf/';

// The schema is immutable once loaded, so one Root per process is shared by every server and test.
let cached: protobuf.Root | undefined;

/** The resolved Root with every apache.rocketmq.v2 type; loaded on the first call, then shared. */
export function rocketmqProtoRoot(): protobuf.Root {
  if (cached === undefined) cached = loadRoot();
  return cached;
}

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (target.startsWith(WELL_KNOWN_PREFIX) || isAbsolute(target)) return target;
    return join(PROTO_DIR, target);
  };
  root.loadSync(ROCKETMQ_PROTO_FILES.map((file) => join(PROTO_DIR, file)));
  // Resolving now makes a missing or misspelled type fail at start-up, not on the first request.
  root.resolveAll();
  return root;
}
