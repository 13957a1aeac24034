/**
 * Broker metadata: the store's directory layout and the small JSON files under `${storePathRootDir}/config`
 * that RocketMQ's ConfigManager subclasses own. The JSON shapes and field names are RocketMQ's own, so a
 * user can bring the files of a Java broker, and take ours back to one.
 *
 * | file                           | top-level fields                                          | RocketMQ owner           |
 * |--------------------------------|-----------------------------------------------------------|--------------------------|
 * | config/topics.json             | topicConfigTable {topic: TopicConfig}, dataVersion        | TopicConfigManager       |
 * | config/subscriptionGroup.json  | subscriptionGroupTable {group: SubscriptionGroupConfig},  | SubscriptionGroupManager |
 * |                                | forbiddenTable {group: {topic: bits}}, dataVersion        |                          |
 * | config/consumerOffset.json     | offsetTable {"topic@group": {queueId: offset}},           | ConsumerOffsetManager    |
 * |                                | dataVersion                                               |                          |
 * | <file>.bak                     | the version of <file> before the last persist             | ConfigManager.persist    |
 * | <file>.tmp                     | a persist in progress (writeFileAtomic); never read       |                          |
 *
 * dataVersion is {timestamp: ms since the epoch, counter: changes so far, stateVersion}. Text is UTF-8
 * JSON. RocketMQ writes with fastjson, which leaves integer map keys unquoted (`{0:12,1:40}` in
 * consumerOffset.json); the reader accepts that, the writer quotes every key (fastjson reads both).
 * Fields we do not know are dropped on load and so are not written back.
 *
 * Invariants:
 * - <file> always holds a complete document: persist replaces it only by rename, after an fsync.
 * - <file>.bak is only written from a <file> this process loaded as valid or wrote itself, so a
 *   corrupt <file> never overwrites a good backup.
 * - Every document is validated just after it is read and just before it is written.
 * - Each table is bounded by a count from its options; growing past it is refused with
 *   METADATA_TABLE_FULL, never silently.
 *
 * Recovery rule (ConfigManager.load, then one deliberate difference):
 * 1. <file> present, non-empty and valid: use it.
 * 2. Otherwise <file>.bak, if present, non-empty and valid.
 * 3. <file> missing or empty and no <file>.bak: start empty (a new broker).
 * 4. Anything else (a corrupt file and no usable backup): METADATA_FILE_CORRUPT naming the file. RocketMQ
 *    starts empty here and forgets every topic; we refuse to start instead.
 * A leftover <file>.tmp is an interrupted persist and is deleted on load.
 */
import { parseFastjson as readFastjson, toPlainJson } from '../net/remoting/fastjson.ts';
import path from 'node:path';
import { z } from 'zod';
import { assert } from '../runtime/assert.ts';
import { type StorageFs, writeFileAtomic } from './storage-fs.ts';

// ---------------------------------------------------------------------------------------------------------
// Layout: directory and file names (StorePathConfigHelper, BrokerPathConfigHelper, MessageStoreConfig,
// TimerMessageStore).

/** Directory names directly under storePathRootDir. */
export const STORE_DIR_NAMES = {
  commitLog: 'commitlog',
  consumeQueue: 'consumequeue',
  consumeQueueExt: 'consumequeue_ext',
  batchConsumeQueue: 'batchconsumequeue',
  index: 'index',
  config: 'config',
  timerLog: 'timerlog',
} as const;

/** File names: the first four directly under storePathRootDir, the rest under its config directory. */
export const STORE_FILE_NAMES = {
  checkpoint: 'checkpoint',
  abort: 'abort',
  lock: 'lock',
  timerWheel: 'timerwheel',
  topics: 'topics.json',
  subscriptionGroup: 'subscriptionGroup.json',
  consumerOffset: 'consumerOffset.json',
  delayOffset: 'delayOffset.json',
  timerCheck: 'timercheck',
  timerMetrics: 'timermetrics',
} as const;

/** Suffixes of a config file's companions: the previous version and the persist in progress. */
export const CONFIG_FILE_SUFFIXES = { backup: '.bak', temp: '.tmp' } as const;

/** Separator of consumerOffset.json keys, `topic@group` (ConsumerOffsetManager.TOPIC_GROUP_SEPARATOR). */
export const TOPIC_GROUP_SEPARATOR = '@';

/** RocketMQ's defaults for the metadata tables (BrokerConfig, TopicConfig, SubscriptionGroupConfig). */
export const METADATA_DEFAULTS = {
  /** BrokerConfig.defaultTopicQueueNums: queues of a topic created without explicit counts. */
  defaultTopicQueueNums: 8,
  /** TopicConfig.defaultReadQueueNums/defaultWriteQueueNums: a topics.json entry that omits the field. */
  topicConfigQueueNums: 16,
  /** PermName.PERM_READ | PermName.PERM_WRITE. */
  perm: 6,
  /** BrokerConfig.flushConsumerOffsetInterval: how often the broker persists consumerOffset.json. */
  flushConsumerOffsetIntervalMs: 5000,
  /** BrokerConfig.consumerOffsetUpdateVersionStep: commits per dataVersion bump of the offset table. */
  consumerOffsetUpdateVersionStep: 500,
  /** Largest config file we read or write; far above any real broker's. */
  fileSizeBytesMax: 256 * 1024 * 1024,
} as const;

const NAME_LENGTH_MAX = 255;
const QUEUE_NUMS_MAX = 65_536;
const RETRY_LEVELS_MAX = 1024;
const SUBSCRIPTIONS_PER_GROUP_MAX = 4096;

/** Where every store directory and file lives, computed from storePathRootDir. */
export type StorePaths = Readonly<{
  rootDir: string;
  commitLogDir: string;
  consumeQueueDir: string;
  consumeQueueExtDir: string;
  batchConsumeQueueDir: string;
  indexDir: string;
  configDir: string;
  timerLogDir: string;
  checkpointFile: string;
  abortFile: string;
  lockFile: string;
  timerWheelFile: string;
  topicsFile: string;
  subscriptionGroupFile: string;
  consumerOffsetFile: string;
  delayOffsetFile: string;
  timerCheckFile: string;
  timerMetricsFile: string;
}>;

/** The store layout under `storePathRootDir`; `storePathCommitLog` overrides the commit log directory. */
export function storePaths(storePathRootDir: string, storePathCommitLog?: string): StorePaths {
  assert(storePathRootDir.length > 0, 'storePathRootDir must not be empty');
  const root = storePathRootDir;
  const config = path.join(root, STORE_DIR_NAMES.config);
  return {
    rootDir: root,
    commitLogDir: storePathCommitLog ?? path.join(root, STORE_DIR_NAMES.commitLog),
    consumeQueueDir: path.join(root, STORE_DIR_NAMES.consumeQueue),
    consumeQueueExtDir: path.join(root, STORE_DIR_NAMES.consumeQueueExt),
    batchConsumeQueueDir: path.join(root, STORE_DIR_NAMES.batchConsumeQueue),
    indexDir: path.join(root, STORE_DIR_NAMES.index),
    configDir: config,
    timerLogDir: path.join(root, STORE_DIR_NAMES.timerLog),
    checkpointFile: path.join(root, STORE_FILE_NAMES.checkpoint),
    abortFile: path.join(root, STORE_FILE_NAMES.abort),
    lockFile: path.join(root, STORE_FILE_NAMES.lock),
    timerWheelFile: path.join(root, STORE_FILE_NAMES.timerWheel),
    topicsFile: path.join(config, STORE_FILE_NAMES.topics),
    subscriptionGroupFile: path.join(config, STORE_FILE_NAMES.subscriptionGroup),
    consumerOffsetFile: path.join(config, STORE_FILE_NAMES.consumerOffset),
    delayOffsetFile: path.join(config, STORE_FILE_NAMES.delayOffset),
    timerCheckFile: path.join(config, STORE_FILE_NAMES.timerCheck),
    timerMetricsFile: path.join(config, STORE_FILE_NAMES.timerMetrics),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Errors.

/** Stable codes of the metadata errors. */
export const MetadataErrorCode = {
  /** A config file is corrupt and has no usable backup; `path` names it. */
  fileCorrupt: 'METADATA_FILE_CORRUPT',
  /** A config file is larger than fileSizeBytesMax; `path` names it. */
  fileTooLarge: 'METADATA_FILE_TOO_LARGE',
  /** A table is at its configured bound and would have to grow. */
  tableFull: 'METADATA_TABLE_FULL',
  /** A topic or group config in a request is not valid. */
  configInvalid: 'METADATA_CONFIG_INVALID',
  /** An attribute request (`+key`, `-key`) is not valid (AttributeUtil's checks). */
  attributeInvalid: 'METADATA_ATTRIBUTE_INVALID',
} as const;

/** One of MetadataErrorCode's values. */
export type MetadataErrorCode = (typeof MetadataErrorCode)[keyof typeof MetadataErrorCode];

/** An expected failure of a metadata operation, with a stable code and the file it concerns, if any. */
export class MetadataError extends Error {
  /** Stable machine-readable code. */
  readonly code: MetadataErrorCode;
  /** The file concerned, or undefined for in-memory refusals. */
  readonly path: string | undefined;
  override readonly name = 'MetadataError';

  constructor(code: MetadataErrorCode, message: string, filePath?: string) {
    super(message);
    this.code = code;
    this.path = filePath;
  }
}

// ---------------------------------------------------------------------------------------------------------
// fastjson text.

/**
 * Parses JSON as fastjson writes it (standard JSON, plus unquoted integer object keys) into plain
 * objects, with fastjson.ts's reader; throws on text that is not JSON or has keys no object can hold.
 * The caller has already bounded the text's size, so the reader's own bounds follow the text.
 */
export function parseFastjson(text: string): unknown {
  const value = toPlainJson(readFastjson(text, { bytesMax: text.length, valuesMax: Math.max(text.length, 1) }));
  if (value === undefined) throw new Error('object keys that are not strings or numbers');
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// JsonConfigFile: one validated JSON document with a backup.

/** How a JsonConfigFile is built. */
export type JsonConfigFileOptions<T> = {
  fs: StorageFs;
  /** The main file; the backup is this path plus `.bak`. */
  path: string;
  /** Validates (and fills the defaults of) a document just after reading and just before writing. */
  schema: z.ZodType<T>;
  /** Largest file read or written; METADATA_DEFAULTS.fileSizeBytesMax when absent. */
  fileSizeBytesMax?: number;
};

/** What load found: the document and where it came from, or nothing on a new broker. */
export type JsonConfigLoad<T> = { source: 'file' | 'backup'; value: T } | { source: 'none'; value: undefined };

type ReadOutcome<T> =
  | { kind: 'missing' }
  | { kind: 'empty' }
  | { kind: 'invalid'; problem: string }
  | { kind: 'valid'; value: T };

/** A JSON config file with RocketMQ's `.bak` fallback on load and an atomic, backed-up persist. */
export class JsonConfigFile<T> {
  /** The main file. */
  readonly path: string;
  /** The previous version, `<path>.bak`. */
  readonly backupPath: string;
  private readonly fs: StorageFs;
  private readonly schema: z.ZodType<T>;
  private readonly fileSizeBytesMax: number;
  private loaded = false;
  /** The main file holds a document known to be valid, so it may become the backup. */
  private fileIsGood = false;

  constructor(options: JsonConfigFileOptions<T>) {
    assert(options.path.length > 0, 'config file path must not be empty');
    this.path = options.path;
    this.backupPath = options.path + CONFIG_FILE_SUFFIXES.backup;
    this.fs = options.fs;
    this.schema = options.schema;
    this.fileSizeBytesMax = options.fileSizeBytesMax ?? METADATA_DEFAULTS.fileSizeBytesMax;
    assert(Number.isSafeInteger(this.fileSizeBytesMax) && this.fileSizeBytesMax > 0, 'fileSizeBytesMax must be positive');
  }

  /** Reads the file, falling back to `.bak` (see the recovery rule at the top of this file). */
  load(): JsonConfigLoad<T> {
    this.removeStaleTemps();
    const main = this.read(this.path);
    this.loaded = true;
    this.fileIsGood = main.kind === 'valid';
    if (main.kind === 'valid') return { source: 'file', value: main.value };
    const backup = this.read(this.backupPath);
    if (backup.kind === 'valid') return { source: 'backup', value: backup.value };
    if (backup.kind === 'invalid') {
      const mainState = main.kind === 'invalid' ? main.problem : main.kind;
      throw new MetadataError(
        MetadataErrorCode.fileCorrupt,
        `${this.path} is ${mainState} and its backup ${this.backupPath} is corrupt: ${backup.problem}`,
        this.path,
      );
    }
    if (main.kind === 'invalid') {
      throw new MetadataError(
        MetadataErrorCode.fileCorrupt,
        `${this.path} is corrupt and has no backup: ${main.problem}`,
        this.path,
      );
    }
    return { source: 'none', value: undefined };
  }

  /** Writes `value` atomically; the version it replaces becomes `.bak`. Call load first. */
  persist(value: T): void {
    assert(this.loaded, () => `persist of ${this.path} before load would overwrite a file never read`);
    const checked = this.schema.safeParse(value);
    assert(checked.success, () => `refusing to write an invalid ${this.path}: ${checked.error ? z.prettifyError(checked.error) : ''}`);
    const bytes = Buffer.from(JSON.stringify(checked.data, null, 2), 'utf8');
    if (bytes.length > this.fileSizeBytesMax) {
      throw new MetadataError(
        MetadataErrorCode.fileTooLarge,
        `${this.path} would be ${bytes.length} bytes, over fileSizeBytesMax ${this.fileSizeBytesMax}`,
        this.path,
      );
    }
    this.fs.mkdirSync(path.dirname(this.path), { recursive: true });
    // Copy rather than rename the old version, so that <file> exists at every instant of a persist.
    if (this.fileIsGood && this.fs.existsSync(this.path)) {
      writeFileAtomic(this.fs, this.backupPath, this.fs.readFileSync(this.path));
    }
    writeFileAtomic(this.fs, this.path, bytes);
    this.fileIsGood = true;
  }

  private read(file: string): ReadOutcome<T> {
    if (!this.fs.existsSync(file)) return { kind: 'missing' };
    const sizeBytes = this.fs.statSync(file).size;
    if (sizeBytes > this.fileSizeBytesMax) {
      throw new MetadataError(
        MetadataErrorCode.fileTooLarge,
        `${file} is ${sizeBytes} bytes, over fileSizeBytesMax ${this.fileSizeBytesMax}`,
        file,
      );
    }
    if (sizeBytes === 0) return { kind: 'empty' };
    const text = this.fs.readFileSync(file).toString('utf8');
    let json: unknown;
    try {
      json = parseFastjson(text);
    } catch (error) {
      return { kind: 'invalid', problem: `not JSON (${error instanceof Error ? error.message : String(error)})` };
    }
    const parsed = this.schema.safeParse(json);
    if (!parsed.success) return { kind: 'invalid', problem: z.prettifyError(parsed.error) };
    return { kind: 'valid', value: parsed.data };
  }

  private removeStaleTemps(): void {
    for (const file of [this.path, this.backupPath]) {
      const temp = file + CONFIG_FILE_SUFFIXES.temp;
      if (this.fs.existsSync(temp)) this.fs.unlinkSync(temp);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// DataVersion.

/** RocketMQ's DataVersion: a table's version, compared by stateVersion, then counter, then timestamp. */
export type DataVersion = Readonly<{ timestamp: number; counter: number; stateVersion: number }>;

/** Schema of a DataVersion as fastjson writes it (`counter` is an AtomicLong, written as a number). */
export const dataVersionSchema = z.object({
  timestamp: z.int().min(0),
  counter: z.int().min(0),
  stateVersion: z.int().min(0).default(0),
});

/** A fresh DataVersion (`new DataVersion()`): counter 0 at `nowMs`. */
export function newDataVersion(nowMs: number): DataVersion {
  assert(Number.isSafeInteger(nowMs) && nowMs >= 0, () => `nowMs must be a non-negative integer: ${nowMs}`);
  return { timestamp: nowMs, counter: 0, stateVersion: 0 };
}

/** The version after one change (DataVersion.nextVersion): counter + 1, timestamp `nowMs`. */
export function nextDataVersion(version: DataVersion, nowMs: number, stateVersion = version.stateVersion): DataVersion {
  assert(Number.isSafeInteger(nowMs) && nowMs >= 0, () => `nowMs must be a non-negative integer: ${nowMs}`);
  assert(stateVersion >= version.stateVersion, 'stateVersion must not go backwards');
  return { timestamp: nowMs, counter: version.counter + 1, stateVersion };
}

// ---------------------------------------------------------------------------------------------------------
// Attributes (AttributeUtil.alterCurrentAttributes).

/** One attribute a topic or group may carry: whether it may change after creation, and its values. */
export type AttributeSpec = Readonly<{ changeable: boolean; accepts: (value: string) => boolean }>;

const LONG_MAX = 9_223_372_036_854_775_807n;

/** TopicAttributes.ALL: the attributes a topic may carry, keyed without the +/- prefix. */
export const TOPIC_ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = {
  'queue.type': { changeable: false, accepts: (v) => v === 'BatchCQ' || v === 'SimpleCQ' },
  'cleanup.policy': { changeable: false, accepts: (v) => v === 'DELETE' || v === 'COMPACTION' },
  'message.type': {
    changeable: true,
    accepts: (v) => ['UNSPECIFIED', 'NORMAL', 'FIFO', 'DELAY', 'TRANSACTION', 'MIXED'].includes(v),
  },
  'reserve.time': {
    changeable: true,
    accepts: (v) => /^[+-]?\d{1,19}$/.test(v) && BigInt(v) >= -1n && BigInt(v) <= LONG_MAX,
  },
};

/** SubscriptionGroupAttributes.ALL: empty in RocketMQ, so a group accepts no attribute requests. */
export const SUBSCRIPTION_GROUP_ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = {};

/**
 * Applies an attribute request to the stored attributes. Request keys carry a prefix: `+key` adds or
 * updates, `-key` deletes; at creation only `+` is allowed. Stored keys have no prefix.
 */
export function alterAttributes(
  current: Readonly<Record<string, string>>,
  request: Readonly<Record<string, string>>,
  create: boolean,
  specs: Readonly<Record<string, AttributeSpec>>,
): Record<string, string> {
  const result = new Map(Object.entries(current));
  const seen = new Set<string>();
  for (const [prefixed, value] of Object.entries(request)) {
    const op = prefixed[0];
    const key = prefixed.slice(1);
    const fail = (why: string): never => {
      throw new MetadataError(MetadataErrorCode.attributeInvalid, `attribute ${prefixed}: ${why}`);
    };
    if (key === '' || key.includes('+') || key.includes('-')) fail('kv string format wrong');
    if (seen.has(key)) fail('alter duplication key');
    seen.add(key);
    if (op !== '+' && op !== '-') fail('wrong format key, expected +key or -key');
    if (create && op === '-') fail('only add attribute is supported while creating');
    const spec = Object.hasOwn(specs, key) ? specs[key] : undefined;
    if (spec === undefined) return fail('unsupported key');
    if (!create && !spec.changeable) fail('attempt to update an unchangeable attribute');
    if (op === '-') {
      if (!result.has(key)) fail('attempt to delete a nonexistent key');
      result.delete(key);
    } else {
      if (!spec.accepts(value)) fail(`value not accepted: ${value}`);
      result.set(key, value);
    }
  }
  return Object.fromEntries(result);
}

// ---------------------------------------------------------------------------------------------------------
// topics.json

const nameSchema = z.string().min(1).max(NAME_LENGTH_MAX);
const attributesSchema = z.record(z.string(), z.string()).default(() => ({}));
const queueNumsSchema = z.int().min(0).max(QUEUE_NUMS_MAX);

/** Schema of one TopicConfig, with the defaults of RocketMQ's TopicConfig fields. */
export const topicConfigSchema = z.object({
  topicName: nameSchema,
  readQueueNums: queueNumsSchema.default(METADATA_DEFAULTS.topicConfigQueueNums),
  writeQueueNums: queueNumsSchema.default(METADATA_DEFAULTS.topicConfigQueueNums),
  perm: z.int().min(0).max(15).default(METADATA_DEFAULTS.perm),
  topicFilterType: z.enum(['SINGLE_TAG', 'MULTI_TAG']).default('SINGLE_TAG'),
  topicSysFlag: z.int().min(0).default(0),
  order: z.boolean().default(false),
  attributes: attributesSchema,
});

/** One topic's config, with RocketMQ's field names. */
export type TopicConfig = z.output<typeof topicConfigSchema>;

/** Schema of config/topics.json (TopicConfigSerializeWrapper). */
export const topicsDocumentSchema = z
  .object({
    topicConfigTable: z.record(z.string(), topicConfigSchema).default(() => ({})),
    dataVersion: dataVersionSchema.optional(),
  })
  .refine((doc) => Object.entries(doc.topicConfigTable).every(([key, topic]) => key === topic.topicName), {
    message: 'every topicConfigTable key must equal its topicName',
  });

/** The document of config/topics.json. */
export type TopicsDocument = z.output<typeof topicsDocumentSchema>;

/** A topic create/update request: a topic name, any fields to set, attributes as `+key`/`-key`. */
export type TopicConfigRequest = Readonly<{ topicName: string } & Partial<Omit<TopicConfig, 'topicName'>>>;

/** How a metadata table is built. */
export type MetadataTableOptions = {
  fs: StorageFs;
  /** The JSON file, e.g. storePaths(root).topicsFile. */
  filePath: string;
  /** The clock, for dataVersion timestamps. */
  nowMs: () => number;
  /** Most entries the table may hold. */
  entriesMax: number;
  fileSizeBytesMax?: number;
};

/** Topic configs and their dataVersion, persisted to config/topics.json (TopicConfigManager). */
export class TopicConfigTable {
  private readonly file: JsonConfigFile<TopicsDocument>;
  private readonly topics = new Map<string, TopicConfig>();
  private readonly nowMs: () => number;
  private readonly entriesMax: number;
  private readonly defaultTopicQueueNums: number;
  private version: DataVersion;

  constructor(options: MetadataTableOptions & { defaultTopicQueueNums?: number }) {
    this.file = tableFile(options, topicsDocumentSchema);
    this.nowMs = options.nowMs;
    this.entriesMax = options.entriesMax;
    this.defaultTopicQueueNums = options.defaultTopicQueueNums ?? METADATA_DEFAULTS.defaultTopicQueueNums;
    assert(this.defaultTopicQueueNums >= 1 && this.defaultTopicQueueNums <= QUEUE_NUMS_MAX, 'bad defaultTopicQueueNums');
    this.version = newDataVersion(this.nowMs());
  }

  /** Replaces the table with the file's contents; returns where they came from. */
  load(): JsonConfigLoad<TopicsDocument>['source'] {
    const loaded = this.file.load();
    const table = loaded.value?.topicConfigTable ?? {};
    checkLoadedBound(Object.keys(table).length, this.entriesMax, this.file.path);
    this.topics.clear();
    for (const [name, config] of Object.entries(table)) this.topics.set(name, freezeConfig(config));
    this.version = loaded.value?.dataVersion ?? newDataVersion(this.nowMs());
    return loaded.source;
  }

  /** Writes the table to its file (atomic, previous version kept as `.bak`). */
  persist(): void {
    this.file.persist({ topicConfigTable: Object.fromEntries(this.topics), dataVersion: this.version });
  }

  /** The topic's config, or undefined. */
  get(topicName: string): TopicConfig | undefined {
    return this.topics.get(topicName);
  }

  /**
   * Creates or updates a topic (updateSingleTopicConfigWithoutPersist): absent queue counts default to
   * defaultTopicQueueNums on creation and to the current values on update; bumps the dataVersion.
   */
  update(request: TopicConfigRequest): TopicConfig {
    const current = this.topics.get(request.topicName);
    if (current === undefined && this.topics.size >= this.entriesMax) throw tableFull('topics', this.entriesMax);
    const base = current ?? {
      readQueueNums: this.defaultTopicQueueNums,
      writeQueueNums: this.defaultTopicQueueNums,
      attributes: {},
    };
    const attributes = alterAttributes(base.attributes, request.attributes ?? {}, current === undefined, TOPIC_ATTRIBUTES);
    const candidate = { ...base, ...definedFields(request), attributes };
    const config = parseRequest(topicConfigSchema, candidate, request.topicName);
    this.topics.set(config.topicName, freezeConfig(config));
    this.version = nextDataVersion(this.version, this.nowMs());
    return config;
  }

  /** Deletes a topic; bumps the dataVersion when it existed. */
  remove(topicName: string): boolean {
    if (!this.topics.delete(topicName)) return false;
    this.version = nextDataVersion(this.version, this.nowMs());
    return true;
  }

  /** Number of topics. */
  get size(): number {
    return this.topics.size;
  }

  /** Every topic config, in insertion order. */
  values(): IterableIterator<TopicConfig> {
    return this.topics.values();
  }

  /** The table's current dataVersion. */
  get dataVersion(): DataVersion {
    return this.version;
  }
}

// ---------------------------------------------------------------------------------------------------------
// subscriptionGroup.json

const groupRetryPolicySchema = z.object({
  type: z.enum(['EXPONENTIAL', 'CUSTOMIZED']).default('CUSTOMIZED'),
  exponentialRetryPolicy: z
    .object({
      initial: z.int().min(0).default(5000),
      max: z.int().min(0).default(7_200_000),
      multiplier: z.int().min(1).default(2),
    })
    .optional(),
  customizedRetryPolicy: z.object({ next: z.array(z.int().min(0)).max(RETRY_LEVELS_MAX) }).optional(),
});

const simpleSubscriptionDataSchema = z.object({
  topic: nameSchema,
  expressionType: z.string().optional(),
  expression: z.string().optional(),
  version: z.int().default(0),
});

/** Schema of one SubscriptionGroupConfig, with the defaults of RocketMQ's fields. */
export const subscriptionGroupConfigSchema = z.object({
  groupName: nameSchema,
  consumeEnable: z.boolean().default(true),
  consumeFromMinEnable: z.boolean().default(true),
  consumeBroadcastEnable: z.boolean().default(true),
  consumeMessageOrderly: z.boolean().default(false),
  retryQueueNums: z.int().min(0).max(QUEUE_NUMS_MAX).default(1),
  retryMaxTimes: z.int().min(-1).default(16),
  groupRetryPolicy: groupRetryPolicySchema.default(() => ({ type: 'CUSTOMIZED' as const })),
  brokerId: z.int().min(0).default(0),
  whichBrokerWhenConsumeSlowly: z.int().min(0).default(1),
  notifyConsumerIdsChangedEnable: z.boolean().default(true),
  groupSysFlag: z.int().min(0).default(0),
  consumeTimeoutMinute: z.int().min(0).default(15),
  subscriptionDataSet: z.array(simpleSubscriptionDataSchema).max(SUBSCRIPTIONS_PER_GROUP_MAX).optional(),
  attributes: attributesSchema,
});

/** One consumer group's config, with RocketMQ's field names. */
export type SubscriptionGroupConfig = z.output<typeof subscriptionGroupConfigSchema>;

/** Schema of config/subscriptionGroup.json (the fastjson form of SubscriptionGroupManager). */
export const subscriptionGroupDocumentSchema = z
  .object({
    subscriptionGroupTable: z.record(z.string(), subscriptionGroupConfigSchema).default(() => ({})),
    forbiddenTable: z.record(z.string(), z.record(z.string(), z.int())).default(() => ({})),
    dataVersion: dataVersionSchema.optional(),
  })
  .refine((doc) => Object.entries(doc.subscriptionGroupTable).every(([key, group]) => key === group.groupName), {
    message: 'every subscriptionGroupTable key must equal its groupName',
  });

/** The document of config/subscriptionGroup.json. */
export type SubscriptionGroupDocument = z.output<typeof subscriptionGroupDocumentSchema>;

/** A group create/update request: a group name and any fields to set. */
export type SubscriptionGroupRequest = Readonly<{ groupName: string } & Partial<Omit<SubscriptionGroupConfig, 'groupName'>>>;

/** Consumer group configs and their dataVersion, persisted to config/subscriptionGroup.json. */
export class SubscriptionGroupTable {
  private readonly file: JsonConfigFile<SubscriptionGroupDocument>;
  private readonly groups = new Map<string, SubscriptionGroupConfig>();
  private readonly nowMs: () => number;
  private readonly entriesMax: number;
  private forbidden: SubscriptionGroupDocument['forbiddenTable'] = {};
  private version: DataVersion;

  constructor(options: MetadataTableOptions) {
    this.file = tableFile(options, subscriptionGroupDocumentSchema);
    this.nowMs = options.nowMs;
    this.entriesMax = options.entriesMax;
    this.version = newDataVersion(this.nowMs());
  }

  /** Replaces the table with the file's contents; returns where they came from. */
  load(): JsonConfigLoad<SubscriptionGroupDocument>['source'] {
    const loaded = this.file.load();
    const table = loaded.value?.subscriptionGroupTable ?? {};
    checkLoadedBound(Object.keys(table).length, this.entriesMax, this.file.path);
    this.groups.clear();
    for (const [name, config] of Object.entries(table)) this.groups.set(name, freezeConfig(config));
    this.forbidden = loaded.value?.forbiddenTable ?? {};
    this.version = loaded.value?.dataVersion ?? newDataVersion(this.nowMs());
    return loaded.source;
  }

  /** Writes the table to its file (atomic, previous version kept as `.bak`). */
  persist(): void {
    this.file.persist({
      subscriptionGroupTable: Object.fromEntries(this.groups),
      forbiddenTable: this.forbidden,
      dataVersion: this.version,
    });
  }

  /** The group's config, or undefined. */
  get(groupName: string): SubscriptionGroupConfig | undefined {
    return this.groups.get(groupName);
  }

  /** Creates or updates a group; absent fields keep their current or default values; bumps the dataVersion. */
  update(request: SubscriptionGroupRequest): SubscriptionGroupConfig {
    const current = this.groups.get(request.groupName);
    if (current === undefined && this.groups.size >= this.entriesMax) throw tableFull('subscription groups', this.entriesMax);
    const attributes = alterAttributes(
      current?.attributes ?? {},
      request.attributes ?? {},
      current === undefined,
      SUBSCRIPTION_GROUP_ATTRIBUTES,
    );
    const candidate = { ...current, ...definedFields(request), attributes };
    const config = parseRequest(subscriptionGroupConfigSchema, candidate, request.groupName);
    this.groups.set(config.groupName, freezeConfig(config));
    this.version = nextDataVersion(this.version, this.nowMs());
    return config;
  }

  /** Deletes a group (and its forbidden entries); bumps the dataVersion when it existed. */
  remove(groupName: string): boolean {
    if (!this.groups.delete(groupName)) return false;
    const { [groupName]: _dropped, ...rest } = this.forbidden;
    this.forbidden = rest;
    this.version = nextDataVersion(this.version, this.nowMs());
    return true;
  }

  /** Number of groups. */
  get size(): number {
    return this.groups.size;
  }

  /** Every group config, in insertion order. */
  values(): IterableIterator<SubscriptionGroupConfig> {
    return this.groups.values();
  }

  /** The table's current dataVersion. */
  get dataVersion(): DataVersion {
    return this.version;
  }
}

// ---------------------------------------------------------------------------------------------------------
// consumerOffset.json

const QUEUE_ID_TEXT = /^(0|[1-9]\d{0,4})$/;

/** Schema of config/consumerOffset.json (the fastjson form of ConsumerOffsetManager). */
export const consumerOffsetDocumentSchema = z.object({
  offsetTable: z
    .record(z.string().min(1), z.record(z.string().regex(QUEUE_ID_TEXT), z.int()))
    .default(() => ({})),
  dataVersion: dataVersionSchema.optional(),
});

/** The document of config/consumerOffset.json. */
export type ConsumerOffsetDocument = z.output<typeof consumerOffsetDocumentSchema>;

/** The key of a group's offsets on a topic: `topic@group`. */
export function topicAtGroup(topic: string, group: string): string {
  assert(topic.length > 0 && group.length > 0, 'topic and group must not be empty');
  return topic + TOPIC_GROUP_SEPARATOR + group;
}

/**
 * Committed consumer offsets, `topic@group` -> queueId -> offset (ConsumerOffsetManager). `entriesMax`
 * bounds the number of (topic@group, queueId) entries. The caller persists every
 * flushConsumerOffsetInterval (METADATA_DEFAULTS.flushConsumerOffsetIntervalMs).
 */
export class ConsumerOffsetTable {
  private readonly file: JsonConfigFile<ConsumerOffsetDocument>;
  private readonly offsets = new Map<string, Map<number, number>>();
  private readonly nowMs: () => number;
  private readonly entriesMax: number;
  private readonly versionStep: number;
  private entryCount = 0;
  private commitsSinceBump = 0;
  private version: DataVersion;

  constructor(options: MetadataTableOptions & { consumerOffsetUpdateVersionStep?: number }) {
    this.file = tableFile(options, consumerOffsetDocumentSchema);
    this.nowMs = options.nowMs;
    this.entriesMax = options.entriesMax;
    this.versionStep = options.consumerOffsetUpdateVersionStep ?? METADATA_DEFAULTS.consumerOffsetUpdateVersionStep;
    assert(Number.isSafeInteger(this.versionStep) && this.versionStep >= 1, 'consumerOffsetUpdateVersionStep must be >= 1');
    this.version = newDataVersion(this.nowMs());
  }

  /** Replaces the table with the file's contents; returns where they came from. */
  load(): JsonConfigLoad<ConsumerOffsetDocument>['source'] {
    const loaded = this.file.load();
    const table = loaded.value?.offsetTable ?? {};
    let count = 0;
    for (const queues of Object.values(table)) count += Object.keys(queues).length;
    checkLoadedBound(count, this.entriesMax, this.file.path);
    this.offsets.clear();
    for (const [key, queues] of Object.entries(table)) {
      this.offsets.set(key, new Map(Object.entries(queues).map(([queueId, offset]) => [Number(queueId), offset])));
    }
    this.entryCount = count;
    this.commitsSinceBump = 0;
    this.version = loaded.value?.dataVersion ?? newDataVersion(this.nowMs());
    return loaded.source;
  }

  /** Writes the table to its file (atomic, previous version kept as `.bak`). */
  persist(): void {
    const offsetTable = Object.fromEntries(
      Array.from(this.offsets, ([key, queues]) => [key, Object.fromEntries(queues)] as const),
    );
    this.file.persist({ offsetTable, dataVersion: this.version });
  }

  /** Stores a group's offset on a queue; the dataVersion moves every consumerOffsetUpdateVersionStep commits. */
  commit(group: string, topic: string, queueId: number, offset: number): void {
    assert(Number.isSafeInteger(queueId) && queueId >= 0 && queueId < QUEUE_NUMS_MAX, () => `bad queueId ${queueId}`);
    assert(Number.isSafeInteger(offset), () => `bad offset ${offset}`);
    const key = topicAtGroup(topic, group);
    let queues = this.offsets.get(key);
    const isNew = queues === undefined || !queues.has(queueId);
    if (isNew && this.entryCount >= this.entriesMax) throw tableFull('consumer offsets', this.entriesMax);
    if (queues === undefined) {
      queues = new Map();
      this.offsets.set(key, queues);
    }
    queues.set(queueId, offset);
    if (isNew) this.entryCount++;
    this.commitsSinceBump++;
    if (this.commitsSinceBump >= this.versionStep) {
      this.commitsSinceBump = 0;
      this.version = nextDataVersion(this.version, this.nowMs());
    }
  }

  /** The group's committed offset on a queue, or -1 when there is none (queryOffset). */
  query(group: string, topic: string, queueId: number): number {
    return this.offsets.get(topicAtGroup(topic, group))?.get(queueId) ?? -1;
  }

  /** Forgets every offset of `topic@group`; returns whether there were any. */
  remove(group: string, topic: string): boolean {
    const key = topicAtGroup(topic, group);
    const queues = this.offsets.get(key);
    if (queues === undefined) return false;
    this.entryCount -= queues.size;
    this.offsets.delete(key);
    assert(this.entryCount >= 0, 'consumer offset entry count went negative');
    return true;
  }

  /** Number of (topic@group, queueId) entries. */
  get entries(): number {
    return this.entryCount;
  }

  /** The table's current dataVersion. */
  get dataVersion(): DataVersion {
    return this.version;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers shared by the tables.

function tableFile<T>(options: MetadataTableOptions, schema: z.ZodType<T>): JsonConfigFile<T> {
  assert(Number.isSafeInteger(options.entriesMax) && options.entriesMax > 0, 'entriesMax must be positive');
  return new JsonConfigFile({ fs: options.fs, path: options.filePath, schema, fileSizeBytesMax: options.fileSizeBytesMax });
}

function tableFull(what: string, entriesMax: number): MetadataError {
  return new MetadataError(MetadataErrorCode.tableFull, `too many ${what}: the bound is ${entriesMax}`);
}

function checkLoadedBound(count: number, entriesMax: number, filePath: string): void {
  if (count > entriesMax) {
    throw new MetadataError(
      MetadataErrorCode.tableFull,
      `${filePath} holds ${count} entries, over the configured bound ${entriesMax}; raise the bound`,
      filePath,
    );
  }
}

function parseRequest<S extends z.ZodType>(schema: S, candidate: unknown, name: string): z.output<S> {
  if (name === '__proto__') throw new MetadataError(MetadataErrorCode.configInvalid, 'the name __proto__ is reserved');
  const parsed = schema.safeParse(candidate);
  if (!parsed.success) {
    throw new MetadataError(MetadataErrorCode.configInvalid, `${name}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** The request's fields that are set: an explicit `undefined` means "leave as is", not "reset to default". */
function definedFields<R extends object>(request: R): Partial<R> {
  return Object.fromEntries(Object.entries(request).filter(([, value]) => value !== undefined)) as Partial<R>;
}

function freezeConfig<C extends { attributes: Record<string, string> }>(config: C): C {
  Object.freeze(config.attributes);
  return Object.freeze(config);
}
