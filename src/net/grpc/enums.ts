/**
 * The enums of apache.rocketmq.v2 (proto/apache/rocketmq/v2/definition.proto) as `as const` objects,
 * with RocketMQ's names and numbers verbatim. The result-code enum `Code` lives in `code.ts`.
 *
 * Decoded messages carry enum fields as plain numbers (see `messaging-service.ts`). Proto3 enums are
 * open: a newer client may send a number that is not listed here, so decoded enum fields are typed
 * `Open<...>` and a `switch` over one must end in a reply (BAD_REQUEST, UNRECOGNIZED_CLIENT_TYPE, ...),
 * never in an exhaustiveness assertion.
 */

/** A known enum value, or any other number a newer peer may send (proto3 enums are open). */
export type Open<E extends number> = E | (number & {});

/** Outcome a producer (or a server-side check) gives a transactional half message. */
export const TransactionResolution = { TRANSACTION_RESOLUTION_UNSPECIFIED: 0, COMMIT: 1, ROLLBACK: 2 } as const;
/** A TransactionResolution number. */
export type TransactionResolution = (typeof TransactionResolution)[keyof typeof TransactionResolution];

/** Who resolved a transaction. */
export const TransactionSource = { SOURCE_UNSPECIFIED: 0, SOURCE_CLIENT: 1, SOURCE_SERVER_CHECK: 2 } as const;
/** A TransactionSource number. */
export type TransactionSource = (typeof TransactionSource)[keyof typeof TransactionSource];

/** What clients may do with a message queue. */
export const Permission = { PERMISSION_UNSPECIFIED: 0, NONE: 1, READ: 2, WRITE: 3, READ_WRITE: 4 } as const;
/** A Permission number. */
export type Permission = (typeof Permission)[keyof typeof Permission];

/** Language of a subscription filter. */
export const FilterType = { FILTER_TYPE_UNSPECIFIED: 0, TAG: 1, SQL: 2 } as const;
/** A FilterType number. */
export type FilterType = (typeof FilterType)[keyof typeof FilterType];

/** How the hosts of an Endpoints value are written. */
export const AddressScheme = { ADDRESS_SCHEME_UNSPECIFIED: 0, IPv4: 1, IPv6: 2, DOMAIN_NAME: 3 } as const;
/** An AddressScheme number. */
export type AddressScheme = (typeof AddressScheme)[keyof typeof AddressScheme];

/** Kind of message a topic accepts or a message claims to be. */
export const MessageType = {
  MESSAGE_TYPE_UNSPECIFIED: 0,
  NORMAL: 1,
  FIFO: 2,
  DELAY: 3,
  TRANSACTION: 4,
  LITE: 5,
  PRIORITY: 6,
} as const;
/** A MessageType number. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Algorithm of a body checksum. */
export const DigestType = { DIGEST_TYPE_UNSPECIFIED: 0, CRC32: 1, MD5: 2, SHA1: 3 } as const;
/** A DigestType number. */
export type DigestType = (typeof DigestType)[keyof typeof DigestType];

/** Role of the client process behind a session. */
export const ClientType = {
  CLIENT_TYPE_UNSPECIFIED: 0,
  PRODUCER: 1,
  PUSH_CONSUMER: 2,
  SIMPLE_CONSUMER: 3,
  PULL_CONSUMER: 4,
  LITE_PUSH_CONSUMER: 5,
  LITE_SIMPLE_CONSUMER: 6,
} as const;
/** A ClientType number. */
export type ClientType = (typeof ClientType)[keyof typeof ClientType];

/** Compression applied to a message body. */
export const Encoding = { ENCODING_UNSPECIFIED: 0, IDENTITY: 1, GZIP: 2 } as const;
/** An Encoding number. */
export type Encoding = (typeof Encoding)[keyof typeof Encoding];

/** Implementation language a client reports in its user agent. */
export const Language = {
  LANGUAGE_UNSPECIFIED: 0,
  JAVA: 1,
  CPP: 2,
  DOT_NET: 3,
  GOLANG: 4,
  RUST: 5,
  PYTHON: 6,
  PHP: 7,
  NODE_JS: 8,
  RUBY: 9,
  OBJECTIVE_C: 10,
  DART: 11,
  KOTLIN: 12,
} as const;
/** A Language number. */
export type Language = (typeof Language)[keyof typeof Language];

/** How SyncLiteSubscription changes a lite consumer's topic set (PARTIAL_ADD is the zero value). */
export const LiteSubscriptionAction = { PARTIAL_ADD: 0, PARTIAL_REMOVE: 1, COMPLETE_ADD: 2, COMPLETE_REMOVE: 3 } as const;
/** A LiteSubscriptionAction number. */
export type LiteSubscriptionAction = (typeof LiteSubscriptionAction)[keyof typeof LiteSubscriptionAction];

/** Which end of a queue QueryOffset looks at. */
export const QueryOffsetPolicy = { BEGINNING: 0, END: 1, TIMESTAMP: 2 } as const;
/** A QueryOffsetPolicy number. */
export type QueryOffsetPolicy = (typeof QueryOffsetPolicy)[keyof typeof QueryOffsetPolicy];

/** Named starting points of OffsetOption (the proto's nested enum `OffsetOption.Policy`). */
export const OffsetOptionPolicy = { LAST: 0, MIN: 1, MAX: 2 } as const;
/** An OffsetOption.Policy number. */
export type OffsetOptionPolicy = (typeof OffsetOptionPolicy)[keyof typeof OffsetOptionPolicy];
