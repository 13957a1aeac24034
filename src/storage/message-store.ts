/**
 * The message store: one synchronous facade over the CommitLog, the ConsumeQueues, the index, the
 * checkpoint and the disk guard (RocketMQ's DefaultMessageStore), used by ONE owner thread (the
 * commit-log-writer actor). It owns no new format; it ties the formats of its parts together:
 *
 * | path under storePathRootDir | owner                | role here                                        |
 * |-----------------------------|----------------------|--------------------------------------------------|
 * | commitlog/<20 digits>       | commit-log.ts        | every record, appended in order                  |
 * | consumequeue/<t>/<q>/<20 d> | consume-queue.ts     | per-queue entries, written by dispatch           |
 * | index/<17 digits>           | index-service.ts     | key -> offsets, written by dispatch              |
 * | checkpoint                  | store-checkpoint.ts  | timestamps up to which the three above are synced |
 * | abort                       | store-checkpoint.ts  | present while running: its presence means crash  |
 *
 * Offsets, in the CommitLog, always ordered like this:
 *   minOffset <= durableOffset <= writtenOffset <= maxOffset, and dispatchedOffset <= maxOffset
 * - maxOffset: appended to the page cache (a SharedArrayBuffer); readable, not yet in the file.
 * - writtenOffset: written to the file (the OS page cache): survives kill -9, not a power loss.
 * - durableOffset: fdatasync'd: survives a power loss. SYNC_FLUSH acknowledges only below it.
 * - dispatchedOffset: ConsumeQueue and index entries exist for every record below it. A record is
 *   visible to getMessage and queryByKey only after dispatch.
 *
 * Two-phase flush. `flush()` writes and fdatasyncs inline. The writer actor instead calls
 * `writeCommitLog()` / `writeConsumeQueues()`, which write to the OS with every fdatasync DEFERRED (the
 * store's StorageFs wrapper records the paths instead of syncing), then `takeSyncRequest()` hands those
 * paths to another thread (commit-log-flusher) that fdatasyncs them; `completeSync()` then moves
 * durableOffset. The write half is a copy into the kernel's page cache, or for large ranges an O_DIRECT
 * write straight from ours (mapped-file.ts); the fdatasync runs elsewhere while the writer keeps
 * appending.
 *
 * Recovery rule (`open`):
 * 1. `abort` present = the last run crashed. The checkpoint (written only after the sync that made the
 *    CommitLog, ConsumeQueues and index durable up to it) names the exact CommitLog offset up to which
 *    all three were durable (our extension, see store-checkpoint.ts): the scan starts right there and
 *    reads nothing before it. Without it (a checkpoint written by RocketMQ or by an older version), as
 *    RocketMQ (StoreCheckpoint.getMinTimestamp) the scan starts at the newest CommitLog file whose first
 *    record is older than min(the checkpoint's times) - 3 s, or at the first file when there is no
 *    checkpoint. The same rule serves a clean stop, where replay finds everything already dispatched.
 * 2. The index's newest file after a crash (index-service.ts). The checkpoint also records the newest
 *    index file and its header as of its last durable entry: when that file is still the newest, its
 *    recorded entries are kept and its slot heads and header rebuilt from them (IndexFile.restore); a
 *    newer file, started after the checkpoint, is deleted (the ones before it are complete). Either
 *    way the scan still starts at the trusted offset: records before it are all indexed. Without that
 *    record (an older checkpoint, RocketMQ's), or when the file does not replay to it, the newest file is
 *    deleted if it was written after the checkpoint (RocketMQ's IndexService.load rule), and the scan
 *    starts early enough to rebuild it, at a file start.
 * 3. CommitLog.open scans from there (checksums, torn tail, corruption cut). When the checkpoint was
 *    written in this boot of the OS (or the last stop was clean), no OS crash can have scattered stale
 *    bytes past the end, so only one record's window past it is read (commit-log-recovery.ts). Every
 *    record it keeps from the scan start is replayed through dispatch: an entry already in its
 *    ConsumeQueue is checked, a missing one is appended, a different one cuts the queue there and is
 *    rewritten.
 * 4. ConsumeQueue and index entries past the recovered maxOffset are dropped (they ran ahead of the
 *    disk), the queue offset table is seeded from the ConsumeQueues, and the abort file is created.
 *
 * Replication (HA, see ha-protocol.ts): a master's `readRaw` exposes bytes up to writtenOffset; a
 * slave's `appendRaw` stores the master's bytes unchanged and dispatches each whole record as the
 * master did (its queue offsets, tags and keys are in the record), holding a partial record in memory
 * until the next chunk completes it; `truncateTo` cuts an old master back to where a new one diverged
 * and drops the ConsumeQueue and index entries past the cut (recovery's step 4, at run time).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { assert } from '../runtime/assert.ts';
import { WriteThreads, type AsyncWrites } from '../runtime/write-threads.ts';
import { CommitLog, CommitLogError, QueueOffsetTable, REGION_HOLE_TOPIC, queueOffsetsTaken, type AppendResult, type RecoveryResult } from './commit-log.ts';
import {
  ConsumeQueueError,
  ConsumeQueueErrorCode,
  ConsumeQueueStore,
  type ConsumeQueue,
  type ConsumeQueueReadStatus,
  isValidTopicName,
} from './consume-queue.ts';
import { IndexService } from './index-service.ts';
import { MappedFileError, parseFileName } from './mapped-file.ts';
import {
  BLANK_MAGIC_CODE,
  BLANK_MARKER_BYTES,
  FIELD_INT16_MAX,
  MESSAGE_MAGIC_CODE,
  MESSAGE_MAGIC_CODE_V2,
  MessageSysFlag,
  PROPERTY_SEPARATOR,
  type RecordView,
  type SocketAddress,
  checkRecord,
  messagePropertyOf,
  decodeRecord,
  encodedHost,
  encodeRecord,
  recordSize,
  recordSizeFor,
  recordTopic,
  writeRecord,
  type RecordInput,
} from './message-record.ts';
import { storePaths } from './metadata-store.ts';
import type { TouchAhead } from './shared-copy.ts';
import { DiskGuard, type DiskCheck, type DiskRatios } from './retention.ts';
import type { StorageFs } from './storage-fs.ts';
import {
  EMPTY_STORE_CHECKPOINT,
  StoreCheckpointError,
  type StoreCheckpoint,
  abortFileExists,
  createAbortFile,
  deleteAbortFile,
  readBootId,
  readStoreCheckpoint,
  writeStoreCheckpoint,
} from './store-checkpoint.ts';
import { SCHEDULE_TOPIC, scheduleTagsCode, tagsCodeOf } from './tag-hash.ts';

// ---------------------------------------------------------------------------------------------------
// Constants

/** RocketMQ's MessageConst property names the store reads. */
export const MessageProperty = {
  /** The message's tag (one string; its Java hash goes into the ConsumeQueue). */
  TAGS: 'TAGS',
  /** Business keys, separated by KEY_SEPARATOR, indexed for queryByKey. */
  KEYS: 'KEYS',
  /** The client-generated unique id, indexed too. */
  UNIQ_KEY: 'UNIQ_KEY',
  /** Delay level of a message stored in SCHEDULE_TOPIC_XXXX. */
  DELAY: 'DELAY',
} as const;

/** Separator of the KEYS property (MessageConst.KEY_SEPARATOR). */
export const KEY_SEPARATOR = ' ';
/** RocketMQ's messageDelayLevel default, in ms, level 1 first. */
export const MESSAGE_DELAY_LEVELS_MS = [
  1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000, 540_000,
  600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
] as const;
/** What RocketMQ subtracts from the checkpoint's minimum timestamp to pick where recovery starts. */
export const CHECKPOINT_MARGIN_MS = 3_000;
/** Room RocketMQ adds to maxMessageSize (a body limit) for the record's header, topic and properties. */
export const RECORD_OVERHEAD_MAX_BYTES = 64 * 1024;
/** Defaults of the bounds the store takes from config. */
export const MESSAGE_STORE_DEFAULTS = {
  mappedFileSizeCommitLog: 1024 * 1024 * 1024,
  mappedFileSizeConsumeQueue: 6_000_000,
  maxMessageSize: 4 * 1024 * 1024,
  /** Most topic-queues the store holds. */
  consumeQueuesMax: 100_000,
  /** Appended records waiting for dispatch before appendMessage dispatches inline. */
  dispatchPendingMax: 4096,
  /** getMessage's bounds (RocketMQ's maxTransferCountOnMessageInMemory / ...BytesOnMessageInMemory). */
  maxTransferCountOnMessageInMemory: 32,
  maxTransferBytesOnMessageInMemory: 256 * 1024,
  /** Index file geometry (RocketMQ's maxHashSlotNum / maxIndexNum). */
  maxHashSlotNum: 5_000_000,
  maxIndexNum: 20_000_000,
  /** Offsets one queryByKey returns at most (RocketMQ's maxMsgsNumBatch). */
  maxMsgsNumBatch: 64,
} as const;

/** RocketMQ's PutMessageStatus names. */
export const PutMessageStatus = {
  PUT_OK: 'PUT_OK',
  FLUSH_DISK_TIMEOUT: 'FLUSH_DISK_TIMEOUT',
  FLUSH_SLAVE_TIMEOUT: 'FLUSH_SLAVE_TIMEOUT',
  SLAVE_NOT_AVAILABLE: 'SLAVE_NOT_AVAILABLE',
  SERVICE_NOT_AVAILABLE: 'SERVICE_NOT_AVAILABLE',
  CREATE_MAPPED_FILE_FAILED: 'CREATE_MAPPED_FILE_FAILED',
  MESSAGE_ILLEGAL: 'MESSAGE_ILLEGAL',
  PROPERTIES_SIZE_EXCEEDED: 'PROPERTIES_SIZE_EXCEEDED',
  OS_PAGE_CACHE_BUSY: 'OS_PAGE_CACHE_BUSY',
  LMQ_CONSUME_QUEUE_NUM_EXCEEDED: 'LMQ_CONSUME_QUEUE_NUM_EXCEEDED',
  UNKNOWN_ERROR: 'UNKNOWN_ERROR',
} as const;

/** One of RocketMQ's PutMessageStatus names. */
export type PutMessageStatus = (typeof PutMessageStatus)[keyof typeof PutMessageStatus];

/** The statuses of a put whose message is in the CommitLog (the flush or a slave may have lagged). */
export const STORED_PUT_STATUSES: ReadonlySet<PutMessageStatus> = new Set<PutMessageStatus>(['PUT_OK', 'FLUSH_DISK_TIMEOUT', 'FLUSH_SLAVE_TIMEOUT', 'SLAVE_NOT_AVAILABLE']);

/** RocketMQ's GetMessageStatus names. */
export type GetMessageStatus =
  | ConsumeQueueReadStatus
  | 'MESSAGE_WAS_REMOVING'
  | 'NO_MATCHED_LOGIC_QUEUE';

/** Stable codes of MessageStoreError (failures that stop the store from opening). */
export const MessageStoreErrorCode = {
  /** A ConsumeQueue misses entries that recovery cannot rebuild from the CommitLog. */
  CONSUME_QUEUE_GAP: 'CONSUME_QUEUE_GAP',
} as const;

/** A stable code of MessageStoreError. */
export type MessageStoreErrorCode = (typeof MessageStoreErrorCode)[keyof typeof MessageStoreErrorCode];

/** A store that cannot be opened as it is on disk; an operator has to look at it. */
export class MessageStoreError extends Error {
  /** Stable machine-readable code. */
  readonly code: MessageStoreErrorCode;
  override readonly name = 'MessageStoreError';

  constructor(code: MessageStoreErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------
// Types

/** How to open a store; sizes keep RocketMQ's config key names. */
export type MessageStoreOptions = {
  /** storePathRootDir. */
  readonly rootDir: string;
  /** The synchronous file-system seam. */
  readonly fs: StorageFs;
  /** ASYNC_FLUSH or SYNC_FLUSH; `putMessage` flushes inline under SYNC_FLUSH. */
  readonly flushDiskType: 'ASYNC_FLUSH' | 'SYNC_FLUSH';
  /** This broker's address, written into records and msgIds. */
  readonly storeHost: SocketAddress;
  readonly mappedFileSizeCommitLog?: number;
  readonly mappedFileSizeConsumeQueue?: number;
  /** Largest body, in bytes (RocketMQ's maxMessageSize). */
  readonly maxMessageSize?: number;
  readonly consumeQueuesMax?: number;
  /** Another thread that touches fresh ConsumeQueue and IndexFile pages ahead of dispatch (shared-copy.ts); none by default. */
  readonly touchAhead?: TouchAhead;
  readonly dispatchPendingMax?: number;
  readonly maxTransferCountOnMessageInMemory?: number;
  readonly maxTransferBytesOnMessageInMemory?: number;
  /** messageIndexEnable (default true). */
  readonly messageIndexEnable?: boolean;
  readonly maxHashSlotNum?: number;
  readonly maxIndexNum?: number;
  readonly maxMsgsNumBatch?: number;
  /**
   * Write threads for ASYNC_FLUSH's CommitLog writes (`writeCommitLogAsync`; CommitLog.startWrites);
   * default 0: every write runs inline. They write with the real file system, not through `fs`.
   */
  readonly commitLogWriteThreads?: number;
  /** CommitLog ranges from this many bytes on are written with O_DIRECT (mapped-file.ts); default 64 KiB. */
  readonly commitLogDirectWriteMinBytes?: number;
  /** Disk ratios as fractions (see retention.ts); RocketMQ's defaults when absent. */
  readonly diskRatios?: DiskRatios;
  /** Store clock (store timestamps, index file names); default Date.now. */
  readonly clock?: { nowMs(): number };
  /** Written into the abort file. */
  readonly pid?: number;
  /**
   * The kernel's boot id (32 hex digits), kept in the checkpoint; default read from the OS. A seam for
   * tests that play an OS crash; null: unknown (recovery then reads everything past the log's end).
   */
  readonly bootId?: string | null;
  /** Where recovery reports what it found. */
  readonly log?: Logger;
};

/** A message to store; the store adds offsets, store time and store host. */
export type PutMessageInput = {
  readonly topic: string;
  readonly queueId: number;
  readonly body: Uint8Array;
  /** Encoded properties (`name\u0001value\u0002`...), as on the wire; TAGS / KEYS / UNIQ_KEY live here. */
  readonly properties?: string;
  readonly flag?: number;
  readonly sysFlag?: number;
  readonly bornTimestampMs?: number;
  readonly bornHost?: SocketAddress;
  readonly reconsumeTimes?: number;
  readonly preparedTransactionOffset?: number;
};

/** The outcome of a put; offsets are -1 and msgId empty unless the record was appended. */
export type PutMessageResult = {
  readonly status: PutMessageStatus;
  readonly physicalOffset: number;
  readonly queueOffset: number;
  readonly msgId: string;
  readonly wroteBytes: number;
  readonly storeTimestampMs: number;
  /** Why a put was refused, for the broker's remark. */
  readonly remark?: string;
};

/** One message a read returns: its raw record (decode with decodeRecord(record, 0)). */
export type StoredMessage = {
  readonly queueOffset: number;
  readonly physicalOffset: number;
  /** The record's bytes, a view of the CommitLog page cache when loaded (copy before keeping it). */
  readonly record: Uint8Array;
};

/** The outcome of getMessage (RocketMQ's GetMessageResult). */
export type GetMessageResult = {
  readonly status: GetMessageStatus;
  readonly messages: StoredMessage[];
  /** Where the consumer should read next. */
  readonly nextBeginOffset: number;
  readonly minOffset: number;
  readonly maxOffset: number;
};

/** What getMessage filters on: exact tags, pre-filtered by their hash in the ConsumeQueue. */
export type TagFilter = { readonly tags: readonly string[] };

/** Everything written to the OS since the last sync request, to be fdatasync'd by another thread. */
export type StoreSyncRequest = {
  /** Files to fdatasync. */
  readonly paths: string[];
  /** How many of `paths` are CommitLog files (counted for the group-commit figures). */
  readonly commitLogPaths: number;
  /** The CommitLog offset durable once the paths are synced. */
  readonly upToOffset: number;
  /** The checkpoint to write after the sync, when ConsumeQueues and index were written. */
  readonly checkpoint: StoreCheckpoint | null;
};

/**
 * The PutMessageStatus names only a SYNC_MASTER put gives: the message is stored on the master, but no
 * slave confirmed it in time (FLUSH_SLAVE_TIMEOUT) or none was connected and in sync (SLAVE_NOT_AVAILABLE).
 */
export const HaPutMessageStatus = {
  FLUSH_SLAVE_TIMEOUT: 'FLUSH_SLAVE_TIMEOUT',
  SLAVE_NOT_AVAILABLE: 'SLAVE_NOT_AVAILABLE',
} as const;

/** One of the SYNC_MASTER statuses. */
export type HaPutMessageStatus = (typeof HaPutMessageStatus)[keyof typeof HaPutMessageStatus];

/** Stable codes of a refused replication read or append. */
export const HaStoreCode = {
  /** The slave asked for bytes the master no longer (or does not yet) hold. */
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  /** Replicated bytes that do not continue the slave's log: it reconnects and resyncs from its end. */
  RAW_OFFSET_MISMATCH: 'RAW_OFFSET_MISMATCH',
  /** Replicated bytes that are not valid records: the slave drops them and resyncs. */
  RAW_RECORD_CORRUPT: 'RAW_RECORD_CORRUPT',
  /** The store is shut down. */
  SERVICE_NOT_AVAILABLE: 'SERVICE_NOT_AVAILABLE',
  /** A truncation point that is not a record boundary inside the log. */
  TRUNCATE_OFFSET_INVALID: 'TRUNCATE_OFFSET_INVALID',
} as const;

/** A stable code of a refused replication request. */
export type HaStoreCode = (typeof HaStoreCode)[keyof typeof HaStoreCode];

/** A refused replication request; `maxOffset` is where the store's log ends (resync from there). */
export type HaRefusal = { readonly ok: false; readonly code: HaStoreCode; readonly remark: string; readonly minOffset: number; readonly maxOffset: number };

/** The answer to readRaw: raw CommitLog bytes from `physicalOffset` (empty: nothing new yet). */
export type HaReadResult = { readonly ok: true; readonly physicalOffset: number; readonly bytes: Uint8Array; readonly readableOffset: number } | HaRefusal;

/**
 * The answer to appendRaw: `maxOffset` is the end of the whole records stored (what the slave reports
 * to its master); `receivedOffset` also counts a partial record kept for the next chunk.
 */
export type HaAppendResult = { readonly ok: true; readonly maxOffset: number; readonly receivedOffset: number; readonly records: number } | HaRefusal;

/** What open found and did. */
export type StoreRecoveryReport = {
  readonly cleanShutdown: boolean;
  /** Start of the CommitLog file where the scan started. */
  readonly scanStartOffset: number;
  /** Where the scan and the replay started: the checkpoint's trusted offset when it had one. */
  readonly scanFromOffset: number;
  /** Whether one record's window past the end was read ('window') or everything after it ('full'). */
  readonly tailCheck: RecoveryResult['tailCheck'];
  readonly maxOffset: number;
  readonly recordsScanned: number;
  /** ConsumeQueue entries replay appended (the rest were already there). */
  readonly entriesReplayed: number;
  /** ConsumeQueue tails cut because their entries differed from the CommitLog. */
  readonly queuesRewritten: number;
  readonly tornTail: RecoveryResult['tornTail'];
  readonly corruptions: RecoveryResult['corruptions'];
  /** The newest index file was deleted (started after the checkpoint, or rebuilt by a rescan). */
  readonly indexFileDropped: boolean;
  /** The newest index file was cut back to the entries the checkpoint recorded as durable. */
  readonly indexFileRestored: boolean;
};

type DispatchRequest = {
  /** The queue that takes the entry; null when the record takes none (taken is 0). */
  readonly queue: ConsumeQueue | null;
  readonly topic: string;
  readonly queueId: number;
  readonly queueOffset: number;
  readonly physicalOffset: number;
  readonly size: number;
  readonly storeTimestampMs: number;
  /** 0: no ConsumeQueue entry (transaction half or rollback). */
  readonly taken: number;
  /** Parsed lazily: only what needs the properties reads them. */
  readonly properties: string;
};

type Resolved = {
  readonly rootDir: string;
  readonly flushDiskType: 'ASYNC_FLUSH' | 'SYNC_FLUSH';
  readonly maxMessageSize: number;
  readonly dispatchPendingMax: number;
  readonly maxTransferCount: number;
  readonly maxTransferBytes: number;
  readonly messageIndexEnable: boolean;
  readonly nowMs: () => number;
  readonly log: Logger | undefined;
  /** The OS boot this store runs in, kept in every checkpoint; undefined when unknown. */
  readonly bootId: string | undefined;
};

// ---------------------------------------------------------------------------------------------------
// The sync-deferring file system

/** A StorageFs whose fdatasyncs can be collected instead of run, so another thread can run them. */
export type SyncDeferringFs = {
  /** The wrapped file system to hand to the store's parts. */
  readonly fs: StorageFs;
  /** Runs `body` with fdatasync deferred; returns the paths that needed one. */
  deferring(body: () => void): string[];
};

/** Wraps `base` so that fdatasync calls made inside `deferring` are recorded by path, not run. */
export function createSyncDeferringFs(base: StorageFs): SyncDeferringFs {
  const pathOfFd = new Map<number, string>();
  let deferred: Set<string> | null = null;
  const fs: StorageFs = {
    ...base,
    openSync(file, flags, mode) {
      const fd = base.openSync(file, flags, mode);
      pathOfFd.set(fd, file);
      return fd;
    },
    closeSync(fd) {
      pathOfFd.delete(fd);
      base.closeSync(fd);
    },
    fdatasyncSync(fd) {
      if (deferred === null) {
        base.fdatasyncSync(fd);
        return;
      }
      const file = pathOfFd.get(fd);
      assert(file !== undefined, () => `fdatasync of fd ${fd} that the store did not open`);
      deferred.add(file);
    },
  };
  return {
    fs,
    deferring(body) {
      assert(deferred === null, 'deferring does not nest');
      deferred = new Set();
      try {
        body();
        return [...deferred];
      } finally {
        deferred = null;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/** The store timestamp of the record at the start of a CommitLog file, or null if none is readable. */
function firstStoreTimestampMs(fs: StorageFs, file: string): number | null {
  const header = Buffer.alloc(48 + 20 + 8);
  const fd = fs.openSync(file, 'r');
  try {
    if (fs.readSync(fd, header, 0, header.length, 0) < header.length) return null;
  } finally {
    fs.closeSync(fd);
  }
  const magic = header.readInt32BE(4);
  if (magic !== MESSAGE_MAGIC_CODE && magic !== MESSAGE_MAGIC_CODE_V2) return null;
  const bornHostBytes = (header.readInt32BE(36) & MessageSysFlag.BORNHOST_V6_FLAG) === 0 ? 8 : 20;
  const storeTimestampMs = Number(header.readBigInt64BE(48 + bornHostBytes));
  return storeTimestampMs > 0 ? storeTimestampMs : null;
}

/** Where the scan starts: the newest file whose first record is older than the checkpoint's minimum. */
function scanStartOffset(fs: StorageFs, dir: string, minTimestampMs: number | null): number | undefined {
  if (minTimestampMs === null || !fs.existsSync(dir)) return undefined;
  const starts = fs.readdirSync(dir).map(parseFileName).filter((start): start is number => start !== null);
  starts.sort((a, b) => b - a);
  for (const start of starts) {
    const file = path.join(dir, String(start).padStart(20, '0'));
    if (fs.statSync(file).size === 0) continue;
    const firstMs = firstStoreTimestampMs(fs, file);
    if (firstMs !== null && firstMs <= minTimestampMs) return start;
  }
  return starts.at(-1);
}

/** A record's ConsumeQueue tag code from its properties text ('' for none). */
function tagsCodeFor(topic: string, properties: string, storeTimestampMs: number): number {
  if (properties.length === 0) return 0;
  if (topic === SCHEDULE_TOPIC) {
    const level = Math.min(Number(messagePropertyOf(properties, MessageProperty.DELAY)), MESSAGE_DELAY_LEVELS_MS.length);
    if (Number.isInteger(level) && level > 0) return scheduleTagsCode(storeTimestampMs, MESSAGE_DELAY_LEVELS_MS[level - 1]!);
  }
  return tagsCodeOf(messagePropertyOf(properties, MessageProperty.TAGS));
}

function refusal(status: PutMessageStatus, remark: string): PutMessageResult {
  return { status, physicalOffset: -1, queueOffset: -1, msgId: '', wroteBytes: 0, storeTimestampMs: 0, remark };
}

/** The refusal for an input the store cannot take, or null when it may be appended. */
function validate(
  input: PutMessageInput,
  maxMessageSize: number,
  topicKnown = false,
  propertiesBytes = Buffer.byteLength(input.properties ?? '', 'utf8'),
): PutMessageResult | null {
  if (!topicKnown && !isValidTopicName(input.topic)) return refusal('MESSAGE_ILLEGAL', `topic ${JSON.stringify(input.topic)} is not a valid topic name`);
  if (!Number.isInteger(input.queueId) || input.queueId < 0 || input.queueId > 0x7fff_ffff) {
    return refusal('MESSAGE_ILLEGAL', `queueId ${input.queueId} is not a non-negative int32`);
  }
  if (!(input.body instanceof Uint8Array) || input.body.length > maxMessageSize) {
    return refusal('MESSAGE_ILLEGAL', `message body is larger than maxMessageSize ${maxMessageSize}`);
  }
  const properties = input.properties ?? '';
  if (propertiesBytes > FIELD_INT16_MAX) {
    return refusal('PROPERTIES_SIZE_EXCEEDED', `properties are longer than ${FIELD_INT16_MAX} bytes`);
  }
  if (properties.length > 0 && !properties.endsWith(PROPERTY_SEPARATOR)) {
    return refusal('MESSAGE_ILLEGAL', 'properties must end with \\u0002');
  }
  if (((input.sysFlag ?? 0) & MessageSysFlag.INNER_BATCH_FLAG) !== 0) {
    return refusal('MESSAGE_ILLEGAL', 'inner batch messages (BatchConsumeQueue) are not supported');
  }
  return null;
}

const UNKNOWN_BORN_HOST: SocketAddress = { address: '127.0.0.1', port: 0 };

/** A message encoded by `encodePut` on any thread, ready for the writer to copy and patch. */
export type EncodedPut = {
  readonly topic: string;
  readonly queueId: number;
  readonly sysFlag: number;
  /** The properties string the record holds, for dispatch (tags code, keys). */
  readonly properties: string;
  /** The whole record, with zero queue offset, physical offset and store time. */
  readonly record: Uint8Array;
};

/**
 * Validates and encodes a put for a store whose host is `storeHost`, on the caller's thread (RocketMQ 5
 * encodes in its SendMessage threads, outside the put lock): the CRC, the properties and the copy of the
 * body all happen here, so the single writer thread only copies bytes and fills in three fields.
 */
export function encodePut(input: PutMessageInput, storeHost: SocketAddress, maxMessageSize: number, nowMs: number): EncodedPut | PutMessageResult {
  const invalid = validate(input, maxMessageSize);
  if (invalid !== null) return invalid;
  const record = recordInputOf(input, storeHost, nowMs);
  const bytes = recordBytes(recordSize(record));
  encodeRecord(bytes, 0, record);
  return { topic: input.topic, queueId: input.queueId, sysFlag: record.sysFlag, properties: record.properties, record: bytes };
}

/**
 * Records up to a quarter of this size are carved from slabs of it, one ArrayBuffer per slab: a new
 * ArrayBuffer per record cost about as much as encoding it (1 µs for 1 KiB in a profile of encodePut),
 * and every one of them is tracked and swept by the GC. A slab lives while any record carved from it
 * does; its memory is never reused, so a record's bytes stay its own.
 */
const RECORD_SLAB_BYTES = 256 * 1024;
let recordSlab = new Uint8Array(0);
let recordSlabUsed = 0;

/** `size` bytes for one record (encodeRecord writes every one of them). */
function recordBytes(size: number): Uint8Array {
  if (size > RECORD_SLAB_BYTES / 4) return new Uint8Array(size);
  if (recordSlabUsed + size > recordSlab.length) {
    recordSlab = new Uint8Array(RECORD_SLAB_BYTES);
    recordSlabUsed = 0;
  }
  const bytes = recordSlab.subarray(recordSlabUsed, recordSlabUsed + size);
  // Each record starts 8-byte aligned, as it would in a buffer of its own.
  recordSlabUsed += size + ((8 - (size % 8)) % 8);
  return bytes;
}

/**
 * Most messages one EncodedBatch carries (it bounds the per-message work of one writer turn). A batch's
 * records must also fit in maxMessageSize + RECORD_OVERHEAD_MAX_BYTES, as in RocketMQ's encoder, and a
 * record takes at least ~100 bytes, so a SEND_BATCH_MESSAGE within the 4 MiB default stays under this.
 */
export const ENCODED_BATCH_MESSAGES_MAX = 65_536;

/** A RocketMQ batch (MessageExtBatch) that `encodeBatch` encoded on any thread: one topic and queue. */
export type EncodedBatch = {
  readonly topic: string;
  readonly queueId: number;
  /** Messages in the batch. */
  readonly count: number;
  /** The records back to back, each with zero queue offset, physical offset and store time. */
  readonly records: Uint8Array;
};

/**
 * The outcome of a batch put, as RocketMQ answers one: physicalOffset and queueOffset of the first
 * message, wroteBytes of all, msgIds joined by commas, and how many messages were stored.
 */
export type PutBatchResult = PutMessageResult & { readonly msgNum: number };

/**
 * Validates and encodes a batch of messages for one topic and queue on the caller's thread, back to back
 * in one buffer (RocketMQ's MessageExtBatch encoding): the writer then copies it into the log at once.
 * Transaction half and rollback messages cannot be batched (they take no queue offset). With `target`
 * (large enough), the records are encoded into it, as RocketMQ's encoders reuse a per-thread buffer; the
 * caller must not reuse it before the batch has been sent.
 */
export function encodeBatch(
  inputs: readonly PutMessageInput[],
  storeHost: SocketAddress,
  maxMessageSize: number,
  nowMs: number,
  target?: Uint8Array,
): EncodedBatch | PutMessageResult {
  const first = inputs[0];
  if (first === undefined || inputs.length > ENCODED_BATCH_MESSAGES_MAX) {
    return refusal('MESSAGE_ILLEGAL', `a batch holds 1 to ${ENCODED_BATCH_MESSAGES_MAX} messages, not ${inputs.length}`);
  }
  // What every record of the batch shares is encoded once; each record's own parts once too.
  if (!isValidTopicName(first.topic)) return refusal('MESSAGE_ILLEGAL', `topic ${JSON.stringify(first.topic)} is not a valid topic name`);
  const topic = recordTopic(first.topic);
  const store = encodedHost(storeHost);
  const records: RecordInput[] = [];
  const propertiesBytes: number[] = [];
  let totalBytes = 0;
  for (const input of inputs) {
    if (input.topic !== first.topic || input.queueId !== first.queueId) return refusal('MESSAGE_ILLEGAL', 'the messages of a batch go to one topic and queue');
    const textBytes = Buffer.byteLength(input.properties ?? '', 'utf8');
    const invalid = validate(input, maxMessageSize, true, textBytes);
    if (invalid !== null) return invalid;
    const transaction = (input.sysFlag ?? 0) & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
    if (transaction === MessageSysFlag.TRANSACTION_PREPARED_TYPE || transaction === MessageSysFlag.TRANSACTION_ROLLBACK_TYPE) {
      return refusal('MESSAGE_ILLEGAL', 'transaction half and rollback messages cannot be batched');
    }
    const record = recordInputOf(input, storeHost, nowMs);
    totalBytes += recordSizeFor(record, topic, textBytes, encodedHost(record.bornHost), store);
    records.push(record);
    propertiesBytes.push(textBytes);
  }
  if (totalBytes > maxMessageSize + RECORD_OVERHEAD_MAX_BYTES) {
    return refusal('MESSAGE_ILLEGAL', `the batch takes ${totalBytes} bytes, more than maxMessageSize ${maxMessageSize} allows`);
  }
  // A sender that keeps one buffer per batch in flight passes it as `target` and allocates nothing here.
  const bytes = target !== undefined && target.length >= totalBytes ? target.subarray(0, totalBytes) : new Uint8Array(totalBytes);
  let at = 0;
  for (let index = 0; index < records.length; index++) {
    const record = records[index]!;
    at += writeRecord(bytes, at, record, topic, propertiesBytes[index]!, encodedHost(record.bornHost), store);
  }
  assert(at === totalBytes, 'a batch is its records back to back');
  return { topic: first.topic, queueId: first.queueId, count: inputs.length, records: bytes };
}

/** A batch a send thread copied into an append region (append-region.ts), as the writer takes it. */
export type RegionBatch = {
  readonly topic: string;
  readonly queueId: number;
  readonly count: number;
  /** Where the batch starts in the log, and its length. */
  readonly physicalOffset: number;
  readonly bytes: number;
  /**
   * Whether the answer carries the batch's msgIds. A send thread that appended the batch itself names
   * them (batchMessageIds: it holds the records and knows where they went), and the answer then has
   * an empty msgId: the writer's thread neither builds them nor sends them across.
   */
  readonly answerMsgIds: boolean;
};

/** The record a put becomes, with zeros where the writer fills in offsets and store time. */
function recordInputOf(input: PutMessageInput, storeHost: SocketAddress, nowMs: number): RecordInput {
  return {
    topic: input.topic,
    queueId: input.queueId,
    flag: input.flag ?? 0,
    queueOffset: 0,
    physicalOffset: 0,
    sysFlag: input.sysFlag ?? 0,
    bornTimestampMs: input.bornTimestampMs ?? nowMs,
    bornHost: input.bornHost ?? UNKNOWN_BORN_HOST,
    storeTimestampMs: 0,
    storeHost,
    reconsumeTimes: input.reconsumeTimes ?? 0,
    preparedTransactionOffset: input.preparedTransactionOffset ?? 0,
    body: input.body,
    properties: input.properties ?? '',
  };
}

/** Whether `encodePut` or `encodeBatch` refused the input. */
export function isPutRefusal(value: EncodedPut | EncodedBatch | PutMessageResult): value is PutMessageResult {
  return 'status' in value;
}

// ---------------------------------------------------------------------------------------------------
// The store

/** The message store of one broker; every method runs on its single owner thread. */
export class MessageStore {
  /** What recovery found when the store was opened. */
  readonly recovery: StoreRecoveryReport;
  private readonly config: Resolved;
  private readonly syncFs: SyncDeferringFs;
  private readonly commitLog: CommitLog;
  private readonly consumeQueues: ConsumeQueueStore;
  private readonly index: IndexService;
  private readonly queueOffsets: QueueOffsetTable;
  private readonly diskGuard: DiskGuard;
  /** ASYNC_FLUSH's CommitLog write threads, when configured. */
  private readonly writeThreads: WriteThreads | undefined;
  private readonly pendingDispatch: DispatchRequest[] = [];
  /** Queues that grew since takeArrivals, when tracking is on (bounded by the number of queues). */
  private arrivals: Map<ConsumeQueue, { topic: string; queueId: number; maxOffset: number }> | null = null;
  private lastTopic: { readonly name: string; readonly bytes: Uint8Array } | null = null;
  /** Queues by topic and queue id, so puts and dispatch find a queue without building a key string. */
  private readonly queuesByTopic = new Map<string, Map<number, ConsumeQueue>>();
  private dispatchedOffsetValue: number;
  private durableOffsetValue: number;
  /** Store time of the last appended / written / dispatched record (checkpoint fields). */
  private appendedTimestampMs = 0;
  private writtenTimestampMs = 0;
  private dispatchedTimestampMs = 0;
  private checkpoint: StoreCheckpoint;
  /** Written to the OS and not yet handed out in a sync request. */
  private unsyncedPaths = new Set<string>();
  private unsyncedCommitLogPaths = new Set<string>();
  private unsyncedCheckpoint: StoreCheckpoint | null = null;
  private state: 'open' | 'closed' = 'open';
  /** Replication: the start of a record the master sent part of, completed by the next chunk. */
  private rawPending: Uint8Array | null = null;

  private constructor(parts: {
    config: Resolved;
    syncFs: SyncDeferringFs;
    commitLog: CommitLog;
    consumeQueues: ConsumeQueueStore;
    index: IndexService;
    queueOffsets: QueueOffsetTable;
    diskGuard: DiskGuard;
    writeThreads: WriteThreads | undefined;
    recovery: StoreRecoveryReport;
    checkpoint: StoreCheckpoint;
  }) {
    this.writeThreads = parts.writeThreads;
    this.config = parts.config;
    this.syncFs = parts.syncFs;
    this.commitLog = parts.commitLog;
    this.consumeQueues = parts.consumeQueues;
    this.index = parts.index;
    this.queueOffsets = parts.queueOffsets;
    this.diskGuard = parts.diskGuard;
    this.recovery = parts.recovery;
    this.checkpoint = parts.checkpoint;
    this.dispatchedOffsetValue = this.commitLog.maxOffset;
    this.durableOffsetValue = this.commitLog.flushedOffset;
    assert(this.durableOffsetValue === this.commitLog.maxOffset, 'recovery leaves the log durable');
  }

  /** Opens (creating or recovering) the store under `options.rootDir`; see the recovery rule above. */
  static open(options: MessageStoreOptions): MessageStore {
    const threads = options.commitLogWriteThreads ?? 0;
    const writeThreads = options.flushDiskType === 'ASYNC_FLUSH' && threads > 0 ? new WriteThreads(threads) : undefined;
    try {
      return MessageStore.openWith(options, writeThreads);
    } catch (error) {
      writeThreads?.close();
      throw error;
    }
  }

  private static openWith(options: MessageStoreOptions, writeThreads: WriteThreads | undefined): MessageStore {
    const config = resolveOptions(options);
    const syncFs = createSyncDeferringFs(options.fs);
    const fs = syncFs.fs;
    fs.mkdirSync(config.rootDir, { recursive: true });
    const paths = storePaths(config.rootDir);
    const cleanShutdown = !abortFileExists(fs, config.rootDir);
    const checkpoint = readCheckpoint(fs, config.rootDir, config.log);
    const { consumeQueues, index } = openLogics(fs, config, options, checkpoint?.trustedPhysicalOffset);
    const start = recoveryStart(fs, paths.commitLogDir, checkpoint, index, cleanShutdown, config.messageIndexEnable);
    const replay = new Replayer(consumeQueues, config.messageIndexEnable ? index : null);
    // Same boot as the checkpoint: no OS crash since it was written (see step 3 of the recovery rule).
    const osCrashPossible = !cleanShutdown && (config.bootId === undefined || checkpoint?.bootId !== config.bootId);
    const { commitLog, recovery } = openCommitLog(fs, paths.commitLogDir, config, options, { cleanShutdown, osCrashPossible }, start, replay, writeThreads);
    consumeQueues.truncateAll(recovery.maxOffset);
    index.truncate(recovery.maxOffset);
    consumeQueues.deleteFilesBeforeAll(commitLog.minOffset);
    const queueOffsets = seedQueueOffsets(consumeQueues, recovery.queueOffsets, options.consumeQueuesMax);
    createAbortFile(fs, config.rootDir, options.pid ?? process.pid);
    const report: StoreRecoveryReport = {
      cleanShutdown,
      scanStartOffset: recovery.scanStartOffset,
      scanFromOffset: recovery.scanFromOffset,
      tailCheck: recovery.tailCheck,
      maxOffset: recovery.maxOffset,
      recordsScanned: recovery.recordsScanned,
      entriesReplayed: replay.entriesAppended,
      queuesRewritten: replay.queuesRewritten,
      tornTail: recovery.tornTail,
      corruptions: recovery.corruptions,
      indexFileDropped: start.indexFileDropped,
      indexFileRestored: start.indexFileRestored,
    };
    if (recovery.corruptions.length > 0) config.log?.error({ corruptions: recovery.corruptions }, 'commit log corruption: log cut at the first bad record');
    config.log?.info(report, 'message store recovered');
    const diskGuard = new DiskGuard({
      fs,
      commitLogPaths: [paths.commitLogDir],
      consumeQueuePath: paths.consumeQueueDir,
      indexPath: paths.indexDir,
      ratios: options.diskRatios,
    });
    diskGuard.check();
    const store = new MessageStore({
      config, syncFs, commitLog, consumeQueues, index, queueOffsets, diskGuard, writeThreads, recovery: report,
      checkpoint: checkpoint ?? EMPTY_STORE_CHECKPOINT,
    });
    // With nothing replayed (a scan from the end), the checkpoint's times still describe the log.
    const replayedMs = replay.lastTimestampMs;
    store.dispatchedTimestampMs = replayedMs > 0 ? replayedMs : (checkpoint?.logicsMsgTimestampMs ?? 0);
    store.appendedTimestampMs = replayedMs > 0 ? replayedMs : (checkpoint?.physicMsgTimestampMs ?? 0);
    store.writtenTimestampMs = store.appendedTimestampMs;
    // What replay rebuilt (a dropped index file, ConsumeQueue entries) is not durable yet, while the old
    // checkpoint already vouches for it: make it durable under a new checkpoint before taking writes.
    if (!cleanShutdown) store.flush();
    return store;
  }

  // ------------------------------------------------------------------------------------------ offsets

  /** CommitLog offset just past the last appended record. */
  get maxPhysicalOffset(): number {
    return this.commitLog.maxOffset;
  }

  /** First CommitLog offset still stored. */
  get minPhysicalOffset(): number {
    return this.commitLog.minOffset;
  }

  /** CommitLog offset up to which bytes are in the files (the OS page cache). */
  get writtenOffset(): number {
    return this.commitLog.flushedOffset;
  }

  /** CommitLog offset up to which bytes are fdatasync'd. */
  get durableOffset(): number {
    return this.durableOffsetValue;
  }

  /** CommitLog offset up to which ConsumeQueue and index entries exist. */
  get dispatchedOffset(): number {
    return this.dispatchedOffsetValue;
  }

  /** The flush mode the store was opened with. */
  get flushDiskType(): 'ASYNC_FLUSH' | 'SYNC_FLUSH' {
    return this.config.flushDiskType;
  }

  /** [minOffset, maxOffset) of a queue as consumers see it (dispatched entries); zeros if unknown. */
  queueRange(topic: string, queueId: number): { readonly minOffset: number; readonly maxOffset: number } {
    const queue = isValidTopicName(topic) && Number.isSafeInteger(queueId) && queueId >= 0 ? this.consumeQueues.get(topic, queueId) : undefined;
    return { minOffset: queue?.minOffset ?? 0, maxOffset: queue?.maxOffset ?? 0 };
  }

  // ------------------------------------------------------------------------------------------ writing

  /** Appends a message to the page cache; never flushes (see putMessage). Refusals are results. */
  appendMessage(input: PutMessageInput): PutMessageResult {
    const invalid = validate(input, this.config.maxMessageSize, this.queuesByTopic.has(input.topic));
    if (invalid !== null) return invalid;
    const properties = input.properties ?? '';
    return this.appendWith(input.topic, input.queueId, input.sysFlag ?? 0, properties, (queueOffset) =>
      this.commitLog.append({
        topic: input.topic,
        queueId: input.queueId,
        flag: input.flag ?? 0,
        queueOffset,
        sysFlag: input.sysFlag ?? 0,
        bornTimestampMs: input.bornTimestampMs ?? this.config.nowMs(),
        bornHost: input.bornHost ?? UNKNOWN_BORN_HOST,
        reconsumeTimes: input.reconsumeTimes ?? 0,
        preparedTransactionOffset: input.preparedTransactionOffset ?? 0,
        body: input.body,
        properties,
      }),
    );
  }

  /** Appends a record `encodePut` built on another thread: the writer only copies and patches it. */
  appendEncoded(put: EncodedPut): PutMessageResult {
    if (!this.isKnownTopic(put.topic) || !Number.isInteger(put.queueId) || put.queueId < 0) {
      return refusal('MESSAGE_ILLEGAL', `bad topic or queue ${JSON.stringify(put.topic)}/${put.queueId}`);
    }
    return this.appendWith(put.topic, put.queueId, put.sysFlag, put.properties, (queueOffset) =>
      this.commitLog.appendEncoded(put.record, queueOffset),
    );
  }

  /**
   * Appends a batch `encodeBatch` built on another thread (RocketMQ's MessageExtBatch: one topic and
   * queue, consecutive queue offsets, one copy into the log). The answer describes the batch as Java's
   * does: offsets of its first message, wroteBytes of all of them, msgIds joined by commas, and msgNum.
   */
  appendEncodedBatch(batch: EncodedBatch): PutBatchResult {
    const target = this.batchQueue(batch.topic, batch.queueId, batch.count);
    if ('refused' in target) return target.refused;
    const queue = target.queue;
    const firstQueueOffset = this.queueOffsets.assign(batch.topic, batch.queueId, batch.count);
    let appended: { physicalOffset: number; sizes: number[]; storeTimestampMs: number };
    try {
      appended = this.commitLog.appendEncodedBatch(batch.records, batch.count, this.topicBytes(batch.topic), batch.queueId, firstQueueOffset);
    } catch (error) {
      this.queueOffsets.set(batch.topic, batch.queueId, firstQueueOffset);
      return { ...appendFailure(error), msgNum: 0 };
    }
    return this.batchAppended(queue, batch, firstQueueOffset, { ...appended, records: batch.records });
  }

  /**
   * The active file for an append region (append-region.ts), or null while the store cannot take
   * writes or has no file with room.
   */
  regionFile(): ReturnType<CommitLog['regionFile']> {
    return this.unavailable() === null ? this.commitLog.regionFile() : null;
  }

  /**
   * Takes a batch a send thread copied into the append region at the log's end (append-region.ts),
   * answering as appendEncodedBatch does. Its bytes cannot be taken back, so a batch the store refuses
   * (closed, disk full, too many queues, larger than a record may be) stays in the log as dead records that no queue holds (see
   * CommitLog.voidRegionBatch), and the answer is the refusal.
   */
  takeRegionBatch(batch: RegionBatch): PutBatchResult {
    const topicBytes = this.topicBytes(batch.topic);
    const tooLarge = batch.bytes > this.commitLog.maxRecordBytes;
    const target: ReturnType<MessageStore['batchQueue']> = tooLarge
      ? { refused: { ...refusal('MESSAGE_ILLEGAL', `batch of ${batch.bytes} bytes exceeds ${this.commitLog.maxRecordBytes}`), msgNum: 0 } }
      : this.batchQueue(batch.topic, batch.queueId, batch.count);
    if ('refused' in target) {
      this.dispatchDead(batch.topic, batch.queueId, batch.physicalOffset, this.commitLog.voidRegionBatch(batch.physicalOffset, batch.bytes, batch.count, topicBytes, batch.queueId));
      return target.refused;
    }
    const firstQueueOffset = this.queueOffsets.assign(batch.topic, batch.queueId, batch.count);
    const taken = this.commitLog.takeRegionBatch(batch.physicalOffset, batch.bytes, batch.count, topicBytes, batch.queueId, firstQueueOffset);
    return this.batchAppended(target.queue, batch, firstQueueOffset, taken, batch.answerMsgIds);
  }

  /**
   * Fills a range reserved in the append region whose batch was never reported (its send thread died
   * between reserving and reporting) with dead records that no queue holds (CommitLog.fillRegionHole),
   * so that the log goes on past it.
   */
  fillRegionHole(physicalOffset: number, bytes: number): void {
    this.dispatchDead(REGION_HOLE_TOPIC, 0, physicalOffset, this.commitLog.fillRegionHole(physicalOffset, bytes));
  }

  /** Queues dead records (back to back from `physicalOffset`) for dispatch: no queue, no index; they only move the dispatched offset. */
  private dispatchDead(topic: string, queueId: number, physicalOffset: number, sizes: readonly number[]): void {
    let at = physicalOffset;
    for (const size of sizes) {
      this.pendingDispatch.push({ queue: null, topic, queueId, queueOffset: 0, physicalOffset: at, size, storeTimestampMs: this.appendedTimestampMs, taken: 0, properties: '' });
      at += size;
    }
  }

  /** The queue a batch goes to, or the refusal (bad topic, queue or count; store unavailable; queue bound). */
  private batchQueue(topic: string, queueId: number, count: number): { readonly queue: ConsumeQueue } | { readonly refused: PutBatchResult } {
    const refused = (result: PutMessageResult): { refused: PutBatchResult } => ({ refused: { ...result, msgNum: 0 } });
    if (!this.isKnownTopic(topic) || !Number.isInteger(queueId) || queueId < 0) {
      return refused(refusal('MESSAGE_ILLEGAL', `bad topic or queue ${JSON.stringify(topic)}/${queueId}`));
    }
    if (!Number.isSafeInteger(count) || count < 1 || count > ENCODED_BATCH_MESSAGES_MAX) {
      return refused(refusal('MESSAGE_ILLEGAL', `a batch holds 1 to ${ENCODED_BATCH_MESSAGES_MAX} messages, not ${count}`));
    }
    const unavailable = this.unavailable();
    if (unavailable !== null) return refused(unavailable);
    try {
      return { queue: this.queueOf(topic, queueId) };
    } catch (error) {
      return refused(queueFailure(error));
    }
  }

  /**
   * Queues a stored batch's records for dispatch and builds the answer as Java does: offsets of its
   * first message, wroteBytes of all of them, msgIds joined by commas, and msgNum.
   */
  private batchAppended(
    queue: ConsumeQueue,
    batch: { readonly topic: string; readonly queueId: number; readonly count: number },
    firstQueueOffset: number,
    appended: { physicalOffset: number; sizes: number[]; storeTimestampMs: number; records: Uint8Array },
    withMsgIds = true,
  ): PutBatchResult {
    this.appendedTimestampMs = appended.storeTimestampMs;
    let physicalOffset = appended.physicalOffset;
    for (let index = 0; index < appended.sizes.length; index++) {
      const size = appended.sizes[index]!;
      const at = physicalOffset - appended.physicalOffset;
      const properties = recordProperties(appended.records, at, size);
      this.pendingDispatch.push({
        queue, topic: batch.topic, queueId: batch.queueId, queueOffset: firstQueueOffset + index,
        physicalOffset, size, storeTimestampMs: appended.storeTimestampMs, taken: 1, properties,
      });
      physicalOffset += size;
    }
    const msgIds = withMsgIds ? this.commitLog.msgIdsOf(appended.physicalOffset, appended.sizes) : '';
    if (this.pendingDispatch.length >= this.config.dispatchPendingMax) this.dispatch();
    return {
      status: 'PUT_OK',
      physicalOffset: appended.physicalOffset,
      queueOffset: firstQueueOffset,
      msgId: msgIds,
      wroteBytes: appended.records.length,
      storeTimestampMs: appended.storeTimestampMs,
      msgNum: batch.count,
    };
  }

  /** The UTF-8 bytes of a topic, for checking that batch records carry it (the last one is kept). */
  private topicBytes(topic: string): Uint8Array {
    if (this.lastTopic?.name !== topic) this.lastTopic = { name: topic, bytes: Buffer.from(topic, 'utf8') };
    return this.lastTopic.bytes;
  }

  /** Whether `topic` is a valid topic name; names the store already holds queues for skip the pattern. */
  private isKnownTopic(topic: string): boolean {
    return this.queuesByTopic.has(topic) || isValidTopicName(topic);
  }

  /** Whether the store takes writes now (open, disk not full). */
  get takesWrites(): boolean {
    return this.unavailable() === null;
  }

  /** The refusal while the store cannot take writes (shut down, disk full), else null. */
  private unavailable(): PutMessageResult | null {
    if (this.state !== 'open') return refusal('SERVICE_NOT_AVAILABLE', 'message store has been shut down');
    const full = this.diskGuard.refusal();
    return full === undefined ? null : refusal('SERVICE_NOT_AVAILABLE', full.remark);
  }

  /** The queue of a valid topic and queue id, created on first use; throws at the queue bound. */
  private queueOf(topic: string, queueId: number): ConsumeQueue {
    let queues = this.queuesByTopic.get(topic);
    const known = queues?.get(queueId);
    if (known !== undefined) return known;
    const queue = this.consumeQueues.findOrCreate(topic, queueId);
    if (queues === undefined) {
      queues = new Map();
      this.queuesByTopic.set(topic, queues);
    }
    // Bounded like the ConsumeQueueStore itself (consumeQueuesMax): one entry per queue it holds.
    queues.set(queueId, queue);
    return queue;
  }

  private appendWith(
    topic: string,
    queueId: number,
    sysFlag: number,
    properties: string,
    write: (queueOffset: number) => AppendResult,
  ): PutMessageResult {
    const unavailable = this.unavailable();
    if (unavailable !== null) return unavailable;
    const transaction = sysFlag & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE;
    const taken = transaction === MessageSysFlag.TRANSACTION_PREPARED_TYPE || transaction === MessageSysFlag.TRANSACTION_ROLLBACK_TYPE ? 0 : 1;
    let queue: ConsumeQueue | null = null;
    if (taken > 0) {
      try {
        queue = this.queueOf(topic, queueId);
      } catch (error) {
        return queueFailure(error);
      }
    }
    const queueOffset = taken > 0 ? this.queueOffsets.assign(topic, queueId) : 0;
    let appended: AppendResult;
    try {
      appended = write(queueOffset);
    } catch (error) {
      if (taken > 0) this.queueOffsets.set(topic, queueId, queueOffset);
      return appendFailure(error);
    }
    this.appendedTimestampMs = appended.storeTimestampMs;
    this.pendingDispatch.push({
      queue,
      topic,
      queueId,
      queueOffset,
      physicalOffset: appended.physicalOffset,
      size: appended.size,
      storeTimestampMs: appended.storeTimestampMs,
      taken,
      properties,
    });
    if (this.pendingDispatch.length >= this.config.dispatchPendingMax) this.dispatch();
    return {
      status: 'PUT_OK',
      physicalOffset: appended.physicalOffset,
      queueOffset,
      msgId: appended.msgId,
      wroteBytes: appended.size,
      storeTimestampMs: appended.storeTimestampMs,
    };
  }

  /** Appends, then under SYNC_FLUSH writes and fdatasyncs inline (one sync per message: no group commit). */
  putMessage(input: PutMessageInput): PutMessageResult {
    const result = this.appendMessage(input);
    if (result.status !== 'PUT_OK' || this.config.flushDiskType === 'ASYNC_FLUSH') return result;
    try {
      this.flushCommitLog();
    } catch (error) {
      if (!(error instanceof MappedFileError)) throw error;
      return { ...result, status: 'FLUSH_DISK_TIMEOUT', remark: error.message };
    }
    return result;
  }

  /** Starts remembering which queues grow at dispatch, for takeArrivals (long polling). */
  trackArrivals(): void {
    this.arrivals ??= new Map();
  }

  /** The queues that grew since the last call, with their new max offsets; empty when not tracking. */
  takeArrivals(): { topic: string; queueId: number; maxOffset: number }[] {
    if (this.arrivals === null || this.arrivals.size === 0) return [];
    const grown = [...this.arrivals.values()];
    this.arrivals.clear();
    return grown;
  }

  /** Adds ConsumeQueue and index entries for every appended record not yet dispatched; returns how many. */
  dispatch(): number {
    const count = this.pendingDispatch.length;
    // Each queue shows its new entries to other threads once it is left (a batch's run of entries), and
    // the last one at the end, rather than once per entry.
    let unpublished: ConsumeQueue | null = null;
    for (const request of this.pendingDispatch) {
      // Records follow each other, except that a file's blank end marker sits between files.
      const next = request.physicalOffset;
      const fileStart = next % this.commitLog.mappedFileSizeBytes === 0;
      assert(next === this.dispatchedOffsetValue || (fileStart && next > this.dispatchedOffsetValue), 'dispatch follows the log');
      this.apply(request);
      if (request.queue !== unpublished) {
        unpublished?.publishMax();
        unpublished = request.queue;
      }
    }
    unpublished?.publishMax();
    this.pendingDispatch.length = 0;
    assert(this.dispatchedOffsetValue <= this.commitLog.maxOffset, 'dispatch stays within the log');
    return count;
  }

  private apply(request: DispatchRequest): void {
    const properties = request.properties;
    const queue = request.queue;
    if (queue !== null) {
      const tagsCode = tagsCodeFor(request.topic, properties, request.storeTimestampMs);
      const put = queue.putEntry(request.queueOffset, request.physicalOffset, request.size, tagsCode, false);
      assert(put, () => `entry ${request.queueOffset} of ${request.topic}/${request.queueId} is new`);
      if (this.arrivals !== null) this.arrivals.set(queue, { topic: request.topic, queueId: request.queueId, maxOffset: request.queueOffset + 1 });
    }
    if (this.config.messageIndexEnable && properties.length > 0) indexRecord(this.index, request, properties);
    this.dispatchedOffsetValue = request.physicalOffset + request.size;
    this.dispatchedTimestampMs = request.storeTimestampMs;
  }

  // ------------------------------------------------------------------------------------------ flushing

  /** Writes and fdatasyncs the CommitLog inline; returns the durable offset. */
  flushCommitLog(): number {
    this.commitLog.flush();
    this.writtenTimestampMs = this.appendedTimestampMs;
    this.markDurable(this.commitLog.flushedOffset);
    return this.durableOffsetValue;
  }

  /** Dispatches, then writes and fdatasyncs everything inline and writes the checkpoint (a clean point). */
  flush(): number {
    this.dispatch();
    this.flushCommitLog();
    this.consumeQueues.flushAll();
    this.index.flush();
    this.checkpoint = this.checkpointAt(this.dispatchedTimestampMs);
    writeStoreCheckpoint(this.syncFs.fs, this.config.rootDir, this.checkpoint);
    return this.durableOffsetValue;
  }

  /** Writes the CommitLog's dirty bytes to the files, deferring their fdatasync to takeSyncRequest. */
  writeCommitLog(): void {
    const paths = this.syncFs.deferring(() => this.commitLog.flush());
    this.writtenTimestampMs = this.appendedTimestampMs;
    this.addUnsyncedCommitLog(paths);
  }

  /**
   * ASYNC_FLUSH's write: hands appended whole blocks to the write threads (CommitLog.startWrites) and
   * returns while they run; when none runs (no threads, a small range, only a partial block left) writes
   * inline as `writeCommitLog`. Call again when `commitLogWriteSignal` settles: the bytes left behind the
   * running writes are written then.
   */
  writeCommitLogAsync(): void {
    if (!this.startCommitLogWrites()) this.writeCommitLog();
  }

  /**
   * Starts write-thread writes of the whole blocks appended so far, as far as threads are free, and
   * nothing inline (the partial last block and small ranges wait for `writeCommitLogAsync`); true when
   * writes run. The writer calls it as batches come in, so that the disk works while it takes the rest.
   */
  startCommitLogWrites(): boolean {
    if (this.writeThreads === undefined) return false;
    const running = this.commitLog.startWrites();
    this.addUnsyncedCommitLog(this.commitLog.takeWrittenPaths());
    return running;
  }

  /** Counts the writes that ended in writtenOffset (their files join the next sync request). */
  reapCommitLogWrites(): void {
    this.commitLog.reapWrites();
    this.addUnsyncedCommitLog(this.commitLog.takeWrittenPaths());
  }

  /** Whether CommitLog writes run on the write threads. */
  get commitLogWriting(): boolean {
    return this.commitLog.writing;
  }

  /** Settles once a running CommitLog write ends (then call reapCommitLogWrites or writeCommitLogAsync). */
  commitLogWriteSignal(): Promise<unknown> {
    assert(this.writeThreads !== undefined, 'no write threads');
    return this.writeThreads.signal();
  }

  private addUnsyncedCommitLog(paths: readonly string[]): void {
    for (const file of paths) {
      this.unsyncedPaths.add(file);
      this.unsyncedCommitLogPaths.add(file);
    }
  }

  /** Dispatches and writes CommitLog, ConsumeQueues and index to the files; the sync comes with a checkpoint. */
  writeConsumeQueues(): void {
    // Dispatch stays outside `deferring`: an index roll inside it flushes the full file with its own
    // fdatasync, and crash recovery counts on every index file but the newest being durable.
    this.dispatch();
    this.writeCommitLog();
    const paths = this.syncFs.deferring(() => {
      this.consumeQueues.flushAll();
      this.index.flushEntries();
    });
    for (const file of paths) this.unsyncedPaths.add(file);
    this.unsyncedCheckpoint = this.checkpointAt(this.dispatchedTimestampMs);
  }

  /** What is written and not yet synced, as one request for the flusher; null when nothing is. */
  takeSyncRequest(): StoreSyncRequest | null {
    if (this.writeThreads !== undefined) this.reapCommitLogWrites();
    const upToOffset = this.commitLog.flushedOffset;
    if (this.unsyncedPaths.size === 0 && this.unsyncedCheckpoint === null && upToOffset === this.durableOffsetValue) return null;
    const request: StoreSyncRequest = {
      paths: [...this.unsyncedPaths],
      commitLogPaths: this.unsyncedCommitLogPaths.size,
      upToOffset,
      checkpoint: this.unsyncedCheckpoint,
    };
    this.unsyncedPaths = new Set();
    this.unsyncedCommitLogPaths = new Set();
    this.unsyncedCheckpoint = null;
    return request;
  }

  /** Records that a request's paths were fdatasync'd (and its checkpoint written). */
  completeSync(request: StoreSyncRequest): void {
    assert(request.upToOffset <= this.commitLog.flushedOffset, 'a sync covers only written bytes');
    this.markDurable(request.upToOffset);
    if (request.checkpoint !== null) this.checkpoint = request.checkpoint;
  }

  /** Hands a failed request's paths back so the next request syncs them again. */
  failSync(request: StoreSyncRequest): void {
    for (const file of request.paths) this.unsyncedPaths.add(file);
    this.unsyncedCheckpoint ??= request.checkpoint;
  }

  private markDurable(offset: number): void {
    if (offset <= this.durableOffsetValue) return;
    this.durableOffsetValue = offset;
    assert(this.durableOffsetValue <= this.commitLog.flushedOffset, 'durable bytes were written');
  }

  /**
   * The checkpoint for what was just written: it is written only after the same sync made the CommitLog,
   * ConsumeQueue and index bytes durable, so every timestamp in it is a durable point.
   */
  private checkpointAt(logicsTimestampMs: number): StoreCheckpoint {
    // Called right after dispatching and writing everything: the trusted offset is the end of the log.
    const trusted = this.dispatchedOffsetValue;
    assert(trusted === this.commitLog.maxOffset && trusted === this.commitLog.flushedOffset, 'a checkpoint covers dispatched, written bytes');
    const checkpoint: StoreCheckpoint = {
      physicMsgTimestampMs: this.writtenTimestampMs,
      logicsMsgTimestampMs: logicsTimestampMs,
      indexMsgTimestampMs: logicsTimestampMs,
      masterFlushedOffset: this.checkpoint.masterFlushedOffset,
      confirmPhyOffset: this.checkpoint.confirmPhyOffset,
      trustedPhysicalOffset: trusted,
      // Taken right after index.flushEntries() wrote every entry it counts; the checkpoint is written only after
      // the same sync made them durable (recovery rule, step 2).
      indexTail: this.index.tail(),
    };
    return this.config.bootId === undefined ? checkpoint : { ...checkpoint, bootId: this.config.bootId };
  }

  // ------------------------------------------------------------------------------------------ reading

  /**
   * Reads up to maxMsgNums dispatched messages of a queue from `queueOffset`, bounded by
   * maxTransferCount/BytesOnMessageInMemory. With a tag filter, entries whose tag hash does not match
   * are skipped in the ConsumeQueue and the survivors are checked against the exact TAGS property.
   */
  getMessage(topic: string, queueId: number, queueOffset: number, maxMsgNums: number, tagFilter?: TagFilter): GetMessageResult {
    assert(Number.isSafeInteger(queueOffset) && Number.isSafeInteger(maxMsgNums), 'offsets and counts are integers');
    const queue = isValidTopicName(topic) && Number.isSafeInteger(queueId) && queueId >= 0 ? this.consumeQueues.get(topic, queueId) : undefined;
    if (queue === undefined) return { status: 'NO_MATCHED_LOGIC_QUEUE', messages: [], nextBeginOffset: 0, minOffset: 0, maxOffset: 0 };
    const wanted = tagFilter === undefined || tagFilter.tags.includes('*') ? null : new Set(tagFilter.tags);
    const codes = wanted === null ? null : new Set([...wanted].map((tag) => tagsCodeOf(tag)));
    const count = Math.min(Math.max(maxMsgNums, 1), this.config.maxTransferCount);
    const batch = queue.readBatch(queueOffset, count, codes === null ? undefined : (code) => codes.has(code));
    const range = { minOffset: queue.minOffset, maxOffset: queue.maxOffset };
    if (batch.status !== 'FOUND') return { status: batch.status, messages: [], nextBeginOffset: batch.nextQueueOffset, ...range };
    const messages: StoredMessage[] = [];
    let bytes = 0;
    let removed = 0;
    let nextBeginOffset = batch.nextQueueOffset;
    for (const entry of batch.entries) {
      if (entry.commitLogOffset < this.commitLog.minOffset) {
        removed++;
        continue;
      }
      if (messages.length > 0 && bytes + entry.sizeBytes > this.config.maxTransferBytes) {
        nextBeginOffset = entry.queueOffset;
        break;
      }
      const record = this.commitLog.read(entry.commitLogOffset, entry.sizeBytes);
      if (wanted !== null && !wanted.has(decodeRecord(record, 0).propertiesMap().get(MessageProperty.TAGS) ?? '')) continue;
      messages.push({ queueOffset: entry.queueOffset, physicalOffset: entry.commitLogOffset, record });
      bytes += entry.sizeBytes;
    }
    const status: GetMessageStatus = messages.length > 0 ? 'FOUND' : removed > 0 ? 'MESSAGE_WAS_REMOVING' : 'NO_MATCHED_MESSAGE';
    return { status, messages, nextBeginOffset, ...range };
  }

  /** The whole record at `physicalOffset` (checked, CRC included) as a copy, or null if none is there. */
  readMessageAt(physicalOffset: number): Uint8Array | null {
    if (!Number.isSafeInteger(physicalOffset) || physicalOffset < this.commitLog.minOffset || physicalOffset >= this.dispatchedOffsetValue) return null;
    try {
      return Uint8Array.from(this.commitLog.readRecordAt(physicalOffset).raw());
    } catch (error) {
      if (error instanceof CommitLogError) return null;
      throw error;
    }
  }

  /** Store time of the message at `queueOffset` of a queue, or null when the queue has no such entry. */
  storeTimeAt(topic: string, queueId: number, queueOffset: number): number | null {
    const entry = this.consumeQueues.get(topic, queueId)?.get(queueOffset);
    if (entry === undefined || entry.commitLogOffset < this.commitLog.minOffset) return null;
    return this.commitLog.readRecordAt(entry.commitLogOffset).storeTimestampMs;
  }

  /**
   * RocketMQ's getOffsetInQueueByTime: the queue offset of the first message stored at or after
   * `timestampMs` ('lower'), or of the last one stored at or before it ('upper'); the queue's min or
   * max offset when the time lies outside what the queue holds.
   */
  searchOffsetByTime(topic: string, queueId: number, timestampMs: number, boundary: 'lower' | 'upper'): number {
    const { minOffset, maxOffset } = this.queueRange(topic, queueId);
    if (maxOffset <= minOffset) return maxOffset;
    let low = minOffset;
    let high = maxOffset - 1;
    // Store times grow with queue offsets; a binary search takes at most log2(entries) reads.
    while (low <= high) {
      const middle = Math.floor((low + high) / 2);
      const time = this.storeTimeAt(topic, queueId, middle) ?? 0;
      const goRight = boundary === 'lower' ? time < timestampMs : time <= timestampMs;
      if (goRight) low = middle + 1;
      else high = middle - 1;
    }
    return boundary === 'lower' ? Math.min(low, maxOffset) : Math.max(high, minOffset);
  }

  /** Messages of `topic` whose KEYS or UNIQ_KEY hold `key`, stored within [beginMs, endMs], newest first. */
  queryByKey(topic: string, key: string, maxNum: number, beginMs = 0, endMs = Number.MAX_SAFE_INTEGER): StoredMessage[] {
    if (!this.config.messageIndexEnable || key.length === 0) return [];
    const found = this.index.queryOffsets(topic, key, Math.max(1, maxNum), beginMs, endMs);
    const messages: StoredMessage[] = [];
    for (const physicalOffset of found.physicalOffsets) {
      if (physicalOffset < this.commitLog.minOffset || physicalOffset >= this.dispatchedOffsetValue) continue;
      const view = this.commitLog.readRecordAt(physicalOffset);
      const properties = view.propertiesMap();
      const keys = (properties.get(MessageProperty.KEYS) ?? '').split(KEY_SEPARATOR);
      if (view.topic !== topic || (properties.get(MessageProperty.UNIQ_KEY) !== key && !keys.includes(key))) continue;
      messages.push({ queueOffset: view.queueOffset, physicalOffset, record: view.raw() });
    }
    return messages;
  }

  // ------------------------------------------------------------------------------------------ replication

  /**
   * Master side of HA: up to `maxBytes` raw CommitLog bytes from `fromOffset`, within one file and never
   * past the written end (bytes in the files survive a process crash, so a slave never holds bytes its
   * master could lose to kill -9). A slave with an empty log (offset 0) below the master's first file
   * starts at that file.
   */
  readRaw(fromOffset: number, maxBytes: number): HaReadResult {
    const limit = this.commitLog.flushedOffset;
    const minOffset = this.commitLog.minOffset;
    if (this.state !== 'open') return this.haRefusal('SERVICE_NOT_AVAILABLE', 'message store has been shut down');
    const from = fromOffset === 0 && minOffset > 0 ? minOffset : fromOffset;
    if (!Number.isSafeInteger(from) || from < minOffset || from > this.commitLog.maxOffset) {
      return this.haRefusal('OFFSET_OUT_OF_RANGE', `offset ${fromOffset} is outside [${minOffset}, ${this.commitLog.maxOffset}]`);
    }
    if (from >= limit) return { ok: true, physicalOffset: from, bytes: new Uint8Array(0), readableOffset: limit };
    return { ok: true, physicalOffset: from, bytes: this.commitLog.readRaw(from, maxBytes, limit), readableOffset: limit };
  }

  /**
   * Slave side of HA: stores bytes the master sent from `fromOffset` byte for byte, then queues every
   * whole record for dispatch exactly as the master dispatched it. `fromOffset` continues what was
   * received (the partial record kept from the last chunk) or restarts at the end of the whole records
   * (a resync after a reconnect, which drops the partial one). Each record is checked (lengths, CRC, its
   * own offset, room for the blank marker) before it is copied; blank markers must reach the file end.
   */
  appendRaw(fromOffset: number, bytes: Uint8Array): HaAppendResult {
    if (this.state !== 'open') return this.haRefusal('SERVICE_NOT_AVAILABLE', 'message store has been shut down');
    const end = this.commitLog.maxOffset;
    const pending = this.rawPending;
    const received = end + (pending?.length ?? 0);
    const fileSize = this.commitLog.mappedFileSizeBytes;
    const emptyLog = end === this.commitLog.minOffset && pending === null && fromOffset % fileSize === 0;
    let buffer: Uint8Array;
    let base: number;
    if (fromOffset === received && pending !== null) {
      buffer = new Uint8Array(pending.length + bytes.length);
      buffer.set(pending, 0);
      buffer.set(bytes, pending.length);
      base = end;
    } else if (fromOffset === end || (emptyLog && Number.isSafeInteger(fromOffset) && fromOffset >= 0)) {
      buffer = bytes;
      base = fromOffset;
    } else {
      return this.haRefusal('RAW_OFFSET_MISMATCH', `bytes at ${fromOffset} do not continue the log at ${received}`);
    }
    this.rawPending = null;
    const units = splitRawUnits(buffer, base, fileSize);
    if (typeof units === 'string') return this.haRefusal('RAW_RECORD_CORRUPT', units);
    if (units.wholeBytes > 0) {
      try {
        this.commitLog.appendRaw(base, buffer.subarray(0, units.wholeBytes));
      } catch (error) {
        if (error instanceof CommitLogError) return this.haRefusal('RAW_OFFSET_MISMATCH', error.message);
        throw error;
      }
      if (end === this.dispatchedOffsetValue && base > end) this.dispatchedOffsetValue = base;
      if (this.durableOffsetValue < base) this.durableOffsetValue = base;
    }
    for (const view of units.records) this.queueReplicated(view);
    if (units.wholeBytes < buffer.length) this.rawPending = Uint8Array.from(buffer.subarray(units.wholeBytes));
    assert((this.rawPending?.length ?? 0) < fileSize, 'a partial unit fits in one file');
    if (this.pendingDispatch.length >= this.config.dispatchPendingMax) this.dispatch();
    const maxOffset = this.commitLog.maxOffset;
    return { ok: true, maxOffset, receivedOffset: maxOffset + (this.rawPending?.length ?? 0), records: units.records.length };
  }

  /**
   * Cuts the log at `offset` for a returning old master whose tail the new master never had: the
   * CommitLog is cut durably (as recovery cuts a torn tail), ConsumeQueue and index entries past it are
   * dropped, the queue offsets reseeded from the ConsumeQueues, and a new checkpoint written.
   */
  truncateTo(offset: number): { readonly ok: true; readonly maxOffset: number } | HaRefusal {
    if (this.state !== 'open') return this.haRefusal('SERVICE_NOT_AVAILABLE', 'message store has been shut down');
    this.dispatch();
    this.rawPending = null;
    try {
      this.commitLog.truncateTo(offset);
    } catch (error) {
      if (error instanceof CommitLogError) return this.haRefusal('TRUNCATE_OFFSET_INVALID', error.message);
      throw error;
    }
    this.consumeQueues.truncateAll(offset);
    this.index.truncate(offset);
    for (const queue of this.consumeQueues.all()) this.queueOffsets.set(queue.topic, queue.queueId, queue.maxOffset);
    this.arrivals?.clear();
    // What was written and not synced may name deleted files or a checkpoint past the cut: flush() below
    // syncs everything kept and writes the checkpoint that matches the cut log.
    this.unsyncedPaths = new Set();
    this.unsyncedCommitLogPaths = new Set();
    this.unsyncedCheckpoint = null;
    this.dispatchedOffsetValue = Math.min(this.dispatchedOffsetValue, offset);
    this.durableOffsetValue = Math.min(this.durableOffsetValue, offset);
    this.flush();
    return { ok: true, maxOffset: this.commitLog.maxOffset };
  }

  private queueReplicated(view: RecordView): void {
    const taken = queueOffsetsTaken(view);
    const topic = view.topic;
    const queue = taken > 0 && isValidTopicName(topic) ? this.queueOf(topic, view.queueId) : null;
    if (queue !== null) this.queueOffsets.observe(topic, view.queueId, view.queueOffset, taken);
    this.appendedTimestampMs = view.storeTimestampMs;
    this.pendingDispatch.push({
      queue,
      topic,
      queueId: view.queueId,
      queueOffset: view.queueOffset,
      physicalOffset: view.physicalOffset,
      size: view.totalSize,
      storeTimestampMs: view.storeTimestampMs,
      taken: queue === null ? 0 : taken,
      properties: hasProperties(view) ? view.properties : '',
    });
  }

  private haRefusal(code: HaStoreCode, remark: string): HaRefusal {
    return { ok: false, code, remark, minOffset: this.commitLog.minOffset, maxOffset: this.commitLog.maxOffset };
  }

  // ------------------------------------------------------------------------------------------ disk and stop

  /** Measures the disks (statfs) and updates the disk-full mark that refuses puts. */
  checkDisk(): DiskCheck {
    return this.diskGuard.check();
  }

  /** Clean stop: dispatch, flush and sync everything, write the checkpoint, delete the abort file. */
  shutdown(): void {
    if (this.state !== 'open') return;
    this.flush();
    this.closeFiles();
    this.consumeQueues.close();
    this.index.close();
    deleteAbortFile(this.syncFs.fs, this.config.rootDir);
  }

  /** Closes the files without a clean stop (what a crash leaves): the next open recovers. */
  close(): void {
    if (this.state !== 'open') return;
    this.closeFiles();
  }

  private closeFiles(): void {
    this.state = 'closed';
    this.commitLog.close();
    this.writeThreads?.close();
    // ConsumeQueue and index close() flush what they hold: after a failure, let recovery rebuild instead.
    this.pendingDispatch.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------------
// Recovery helpers

function resolveOptions(options: MessageStoreOptions): Resolved {
  const maxMessageSize = options.maxMessageSize ?? MESSAGE_STORE_DEFAULTS.maxMessageSize;
  const dispatchPendingMax = options.dispatchPendingMax ?? MESSAGE_STORE_DEFAULTS.dispatchPendingMax;
  const maxTransferCount = options.maxTransferCountOnMessageInMemory ?? MESSAGE_STORE_DEFAULTS.maxTransferCountOnMessageInMemory;
  const maxTransferBytes = options.maxTransferBytesOnMessageInMemory ?? MESSAGE_STORE_DEFAULTS.maxTransferBytesOnMessageInMemory;
  assert(Number.isSafeInteger(maxMessageSize) && maxMessageSize > 0, 'maxMessageSize is positive');
  assert(Number.isSafeInteger(dispatchPendingMax) && dispatchPendingMax > 0, 'dispatchPendingMax is positive');
  assert(Number.isSafeInteger(maxTransferCount) && maxTransferCount > 0, 'maxTransferCountOnMessageInMemory is positive');
  assert(Number.isSafeInteger(maxTransferBytes) && maxTransferBytes > 0, 'maxTransferBytesOnMessageInMemory is positive');
  const clock = options.clock;
  const bootId = options.bootId === undefined ? readBootId(options.fs) : (options.bootId ?? undefined);
  assert(bootId === undefined || (/^[0-9a-f]{32}$/.test(bootId) && /[1-9a-f]/.test(bootId)), () => `bad boot id ${bootId}`);
  return {
    rootDir: path.resolve(options.rootDir),
    flushDiskType: options.flushDiskType,
    maxMessageSize,
    dispatchPendingMax,
    maxTransferCount,
    maxTransferBytes,
    messageIndexEnable: options.messageIndexEnable ?? true,
    nowMs: clock === undefined ? () => Date.now() : () => clock.nowMs(),
    log: options.log,
    bootId,
  };
}

/** Opens the ConsumeQueues and the index as they are on disk (each recovers its own files). */
function openLogics(
  fs: StorageFs,
  config: Resolved,
  options: MessageStoreOptions,
  trustedCommitLogOffset: number | undefined,
): { consumeQueues: ConsumeQueueStore; index: IndexService } {
  const consumeQueues = ConsumeQueueStore.open({
    ...(trustedCommitLogOffset === undefined ? {} : { trustedCommitLogOffset }),
    storageFs: fs,
    rootDir: config.rootDir,
    queuesMax: options.consumeQueuesMax ?? MESSAGE_STORE_DEFAULTS.consumeQueuesMax,
    fileSizeBytes: options.mappedFileSizeConsumeQueue ?? MESSAGE_STORE_DEFAULTS.mappedFileSizeConsumeQueue,
    ...(options.touchAhead === undefined ? {} : { touchAhead: options.touchAhead }),
  });
  const index = IndexService.open({
    storageFs: fs,
    rootDir: config.rootDir,
    nowMs: config.nowMs,
    hashSlotNum: options.maxHashSlotNum ?? MESSAGE_STORE_DEFAULTS.maxHashSlotNum,
    indexNum: options.maxIndexNum ?? MESSAGE_STORE_DEFAULTS.maxIndexNum,
    queryResultsMax: options.maxMsgsNumBatch ?? MESSAGE_STORE_DEFAULTS.maxMsgsNumBatch,
    ...(options.touchAhead === undefined ? {} : { touchAhead: options.touchAhead }),
  });
  return { consumeQueues, index };
}

/**
 * Where the CommitLog scan (and replay) starts, per steps 1 and 2 of the recovery rule; restores or drops
 * the index's newest file after a crash. scanFrom undefined: from the first file.
 */
function recoveryStart(
  fs: StorageFs,
  commitLogDir: string,
  checkpoint: StoreCheckpoint | null,
  index: IndexService,
  cleanShutdown: boolean,
  withIndex: boolean,
): {
  scanFrom: number | undefined;
  indexFileDropped: boolean;
  indexFileRestored: boolean;
  trustedBeforeMs: number | undefined;
  trustedOffset: number | undefined;
} {
  let scanFrom = scanStartOffset(fs, commitLogDir, checkpoint === null ? null : checkpointMinTimestampMs(checkpoint, withIndex));
  const trustedBeforeMs = checkpoint === null ? undefined : checkpointMinTimestampMs(checkpoint, withIndex);
  const trustedOffset = checkpoint?.trustedPhysicalOffset;
  // The tail record comes only with a trusted offset (store-checkpoint.ts); it makes the index exact up
  // to that offset, so the scan can start there.
  const tail = checkpoint?.indexTail;
  const fromTail = cleanShutdown || tail === undefined ? null : index.recoverFromTail(tail);
  if (fromTail !== null) {
    return { scanFrom, indexFileDropped: fromTail === 'newerDropped', indexFileRestored: fromTail === 'restored', trustedBeforeMs, trustedOffset };
  }
  const newestIndex = index.indexFiles().at(-1);
  // A tail record the files do not match says the newest file is not as the checkpoint left it: drop it.
  const indexFileDropped = !cleanShutdown && newestIndex !== undefined &&
    (checkpoint === null || tail !== undefined || newestIndex.endTimestampMs > checkpoint.indexMsgTimestampMs);
  if (indexFileDropped) scanFrom = Math.min(scanFrom ?? 0, newestIndex.beginPhyOffset);
  // Dropping it is the index's own crash rule; scanning from its first message rebuilds it.
  index.recover({ cleanShutdown: !indexFileDropped, maxPhysicalOffset: Number.MAX_SAFE_INTEGER });
  // Records stored before the checkpoint's time (less the margin) were flushed with their ConsumeQueue
  // and index entries: the scan walks over them without replaying them, unless the index must be rebuilt.
  // The exact offset serves only when nothing before it has to be replayed (the index was kept).
  return {
    scanFrom,
    indexFileDropped,
    indexFileRestored: false,
    trustedBeforeMs: indexFileDropped ? undefined : trustedBeforeMs,
    trustedOffset: indexFileDropped ? undefined : trustedOffset,
  };
}

/** Opens and recovers the CommitLog, replaying every record from the scan start. */
function openCommitLog(
  fs: StorageFs,
  dir: string,
  config: Resolved,
  options: MessageStoreOptions,
  crash: { readonly cleanShutdown: boolean; readonly osCrashPossible: boolean },
  start: { readonly scanFrom: number | undefined; readonly trustedBeforeMs: number | undefined; readonly trustedOffset: number | undefined },
  replay: Replayer,
  asyncWrites: AsyncWrites | undefined,
): { commitLog: CommitLog; recovery: RecoveryResult } {
  const scanFrom = start.scanFrom;
  const fileSizeBytes = options.mappedFileSizeCommitLog ?? MESSAGE_STORE_DEFAULTS.mappedFileSizeCommitLog;
  return CommitLog.open(
    {
      dir,
      storeHost: options.storeHost,
      fs,
      mappedFileSizeBytes: fileSizeBytes,
      maxMessageSizeBytes: Math.min(config.maxMessageSize + RECORD_OVERHEAD_MAX_BYTES, fileSizeBytes - BLANK_MARKER_BYTES),
      clock: { nowMs: config.nowMs },
      asyncWrites,
      directWriteMinBytes: options.commitLogDirectWriteMinBytes,
    },
    {
      ...crash,
      checkpointPhysicalOffset: scanFrom === undefined ? undefined : Math.floor(scanFrom / fileSizeBytes) * fileSizeBytes,
      trustedPhysicalOffset: start.trustedOffset,
      trustedBeforeTimestampMs: start.trustedBeforeMs,
      queueOffsets: new QueueOffsetTable(options.consumeQueuesMax ?? MESSAGE_STORE_DEFAULTS.consumeQueuesMax),
      onRecord: (record) => replay.record(record),
    },
  );
}

function readCheckpoint(fs: StorageFs, rootDir: string, log: Logger | undefined): StoreCheckpoint | null {
  try {
    return readStoreCheckpoint(fs, rootDir);
  } catch (error) {
    if (!(error instanceof StoreCheckpointError)) throw error;
    // Without a trustworthy checkpoint the whole log is scanned and replayed: slow, never wrong.
    log?.warn({ err: error.message }, 'checkpoint unreadable; recovering from the first commit log file');
    return null;
  }
}

/** StoreCheckpoint.getMinTimestamp / getMinTimestampIndex, with RocketMQ's 3 s margin. */
function checkpointMinTimestampMs(checkpoint: StoreCheckpoint, withIndex: boolean): number {
  let min = Math.min(checkpoint.physicMsgTimestampMs, checkpoint.logicsMsgTimestampMs);
  if (withIndex) min = Math.min(min, checkpoint.indexMsgTimestampMs);
  return min - CHECKPOINT_MARGIN_MS;
}

function appendFailure(error: unknown): PutMessageResult {
  if (error instanceof CommitLogError) {
    const status = error.code === 'PROPERTIES_INVALID' ? 'PROPERTIES_SIZE_EXCEEDED' : 'MESSAGE_ILLEGAL';
    return refusal(status, error.message);
  }
  if (error instanceof MappedFileError) return refusal('CREATE_MAPPED_FILE_FAILED', error.message);
  throw error;
}

/** LMQ_CONSUME_QUEUE_NUM_EXCEEDED at the queue bound; any other failure is rethrown. */
function queueFailure(error: unknown): PutMessageResult {
  if (error instanceof ConsumeQueueError && error.code === ConsumeQueueErrorCode.queueLimitReached) {
    return refusal('LMQ_CONSUME_QUEUE_NUM_EXCEEDED', error.message);
  }
  throw error;
}

/** The properties string of the record at `offset` of `bytes` ('' for none), read only when it has some. */
function recordProperties(bytes: Uint8Array, offset: number, size: number): string {
  // A record with properties ends in \u0002; one without ends in its zero propertiesLength.
  if (bytes[offset + size - 1] !== PROPERTY_SEPARATOR.charCodeAt(0)) return '';
  return decodeRecord(bytes, offset).properties;
}

function indexRecord(
  index: IndexService,
  request: Pick<DispatchRequest, 'topic' | 'physicalOffset' | 'storeTimestampMs'>,
  properties: string,
): void {
  const keys = (messagePropertyOf(properties, MessageProperty.KEYS) ?? '').split(KEY_SEPARATOR).filter((key) => key.length > 0);
  const uniqueKey = messagePropertyOf(properties, MessageProperty.UNIQ_KEY);
  if (keys.length === 0 && uniqueKey === undefined) return;
  index.buildIndex({
    topic: request.topic,
    keys,
    uniqueKey,
    physicalOffset: request.physicalOffset,
    storeTimestampMs: request.storeTimestampMs,
  });
}

/** The queue offset table after recovery: each ConsumeQueue's end, which must match what the scan saw. */
function seedQueueOffsets(consumeQueues: ConsumeQueueStore, scanned: QueueOffsetTable, entriesMax: number | undefined): QueueOffsetTable {
  const table = new QueueOffsetTable(entriesMax ?? MESSAGE_STORE_DEFAULTS.consumeQueuesMax);
  for (const queue of consumeQueues.all()) table.set(queue.topic, queue.queueId, queue.maxOffset);
  for (const entry of scanned.entries()) {
    if (!isValidTopicName(entry.topic)) continue;
    // Replay put every scanned record into its queue, so no queue can end before the log says it does.
    assert(
      table.nextOffset(entry.topic, entry.queueId) >= entry.nextOffset,
      `queue ${entry.topic}/${entry.queueId} ends at ${table.nextOffset(entry.topic, entry.queueId)}, the log says ${entry.nextOffset}`,
    );
  }
  return table;
}

/**
 * Whether a stored record carries properties. The format makes a record with properties end in
 * \u0002 and one without end in its zero propertiesLength, so the last byte answers without decoding.
 */
function hasProperties(view: RecordView): boolean {
  return view.bytes[view.offset + view.totalSize - 1] === PROPERTY_SEPARATOR.charCodeAt(0);
}

/**
 * Splits replicated bytes starting at log offset `base` into whole units (records, checked in full, and
 * blank markers reaching their file's end) and the partial unit left at the end. Returns why the bytes
 * are bad instead when they are not what a master writes.
 */
function splitRawUnits(bytes: Uint8Array, base: number, fileSize: number): { wholeBytes: number; records: RecordView[] } | string {
  const records: RecordView[] = [];
  let at = 0;
  // Each pass moves past one unit of at least 8 bytes, or stops.
  while (bytes.length - at >= BLANK_MARKER_BYTES) {
    const position = base + at;
    const available = bytes.length - at;
    const fileRemaining = fileSize - (position % fileSize);
    const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, BLANK_MARKER_BYTES);
    const size = view.readInt32BE(0);
    const magic = view.readInt32BE(4);
    if (magic === BLANK_MAGIC_CODE) {
      if (size !== fileRemaining) return `blank marker at ${position} of ${size} bytes does not reach its file end`;
      if (available < size) break;
      at += size;
      continue;
    }
    if (magic !== MESSAGE_MAGIC_CODE && magic !== MESSAGE_MAGIC_CODE_V2) return `unknown magic ${magic} at ${position}`;
    if (size <= BLANK_MARKER_BYTES || size + BLANK_MARKER_BYTES > fileRemaining) return `record at ${position} of ${size} bytes does not fit its file`;
    if (available < size) break;
    const check = checkRecord(bytes, at, at + size, { expectedPhysicalOffset: position, maxSizeBytes: fileSize - BLANK_MARKER_BYTES });
    if (check.kind !== 'record') return `record at ${position} is ${check.kind}: ${'reason' in check ? check.reason : ''}`;
    const record = decodeRecord(bytes, at);
    if (queueOffsetsTaken(record) > 1) return `record at ${position} is an inner batch, which this store does not write`;
    records.push(record);
    at += size;
  }
  return { wholeBytes: at, records };
}

/** Dispatches the records recovery hands back, checking what the ConsumeQueues and index already hold. */
class Replayer {
  entriesAppended = 0;
  queuesRewritten = 0;
  lastTimestampMs = 0;
  private readonly consumeQueues: ConsumeQueueStore;
  private readonly index: IndexService | null;
  /** Queues by topic and queue id, so a scan of millions of records skips the key building and regex. */
  private readonly queuesByTopic = new Map<string, Map<number, ConsumeQueue> | null>();

  constructor(consumeQueues: ConsumeQueueStore, index: IndexService | null) {
    this.consumeQueues = consumeQueues;
    this.index = index;
  }

  record(view: RecordView): void {
    this.lastTimestampMs = view.storeTimestampMs;
    const taken = queueOffsetsTaken(view);
    const topic = view.topic;
    const queues = this.queuesOf(topic);
    if (queues === null) return;
    let parsed: string | null = null;
    const properties = (): string => (parsed ??= hasProperties(view) ? view.properties : '');
    if (taken === 1) {
      const queueId = view.queueId;
      let queue = queues.get(queueId);
      if (queue === undefined) {
        queue = this.consumeQueues.findOrCreate(topic, queueId);
        queues.set(queueId, queue);
      }
      this.entry(queue, view, topic, properties);
    } else {
      assert(taken === 0, () => `record at ${view.physicalOffset} is an inner batch, which this store does not write`);
    }
    if (this.index !== null && view.physicalOffset > this.index.indexedUpToPhyOffset && hasProperties(view)) {
      const request = { topic, physicalOffset: view.physicalOffset, storeTimestampMs: view.storeTimestampMs };
      indexRecord(this.index, request, properties());
    }
  }

  /** The queues of a topic; null for a name this store cannot keep (a foreign store's record). */
  private queuesOf(topic: string): Map<number, ConsumeQueue> | null {
    let queues = this.queuesByTopic.get(topic);
    if (queues === undefined) {
      queues = isValidTopicName(topic) ? new Map() : null;
      this.queuesByTopic.set(topic, queues);
    }
    return queues;
  }

  private entry(queue: ConsumeQueue, view: RecordView, topic: string, properties: () => string): void {
    const queueOffset = view.queueOffset;
    const physicalOffset = view.physicalOffset;
    if (queueOffset < queue.minOffset) return;
    if (queueOffset < queue.maxOffset) {
      const existing = queue.get(queueOffset);
      if (existing !== undefined && existing.commitLogOffset === physicalOffset && existing.sizeBytes === view.totalSize) return;
      // The queue holds something else here (written ahead of a log that was then cut): rewrite its tail.
      queue.truncateTo(queueOffset);
      this.queuesRewritten++;
    }
    if (queueOffset > queue.maxOffset && queue.fileCount > 0) {
      throw new MessageStoreError(
        'CONSUME_QUEUE_GAP',
        `${queue.topic}/${queue.queueId} ends at ${queue.maxOffset} but the log resumes at ${queueOffset} (offset ${physicalOffset})`,
      );
    }
    queue.putEntry(queueOffset, physicalOffset, view.totalSize, tagsCodeFor(topic, properties(), view.storeTimestampMs));
    this.entriesAppended++;
  }
}
