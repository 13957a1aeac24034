/**
 * The broker id a controller assigned to this replica, kept in storePathRootDir so that a restart
 * registers under the same id (RocketMQ's BrokerMetadata `brokerIdentity` and TempBrokerMetadata
 * `brokerIdentity-temp`). Ours are JSON documents, written atomically (temp file, fsync, rename, fsync of
 * the directory):
 *
 * | file                         | written when                                   | fields                                         |
 * |------------------------------|------------------------------------------------|------------------------------------------------|
 * | brokerIdentity.json          | the controller accepted CONTROLLER_APPLY_BROKER_ID | version, clusterName, brokerName, brokerId  |
 * | brokerIdentity-temp.json     | before CONTROLLER_APPLY_BROKER_ID is sent      | version, clusterName, brokerName, brokerId, registerCheckCode |
 *
 * Recovery rule, as ReplicasManager.register: the applied file wins; else a temp file means an apply may
 * have reached the controller, so it is sent again with the same registerCheckCode (the controller
 * accepts a repeat from the same check code); else the id is asked for afresh. A file whose cluster or
 * broker name differs from the config is refused (BROKER_IDENTITY_MISMATCH): the store belongs to
 * another broker. A file that does not parse is refused too (BROKER_IDENTITY_CORRUPT).
 */
import { z } from 'zod';
import type { StorageFs } from './storage-fs.ts';
import { writeFileAtomic } from './storage-fs.ts';

/** File names under storePathRootDir. */
export const BROKER_IDENTITY_FILES = {
  applied: 'brokerIdentity.json',
  temp: 'brokerIdentity-temp.json',
} as const;

/** Version of both documents. */
export const BROKER_IDENTITY_VERSION = 1;

/** Largest identity file read. */
const IDENTITY_BYTES_MAX = 64 * 1024;

const appliedSchema = z.object({
  version: z.literal(BROKER_IDENTITY_VERSION),
  clusterName: z.string(),
  brokerName: z.string(),
  brokerId: z.number().int().min(1).refine(Number.isSafeInteger),
});

const tempSchema = appliedSchema.extend({ registerCheckCode: z.string() });

/** The applied identity. */
export type BrokerIdentity = Omit<z.output<typeof appliedSchema>, 'version'>;

/** The identity applied for, not yet confirmed. */
export type TempBrokerIdentity = BrokerIdentity & { readonly registerCheckCode: string };

/** What the store root says about this replica's id. */
export type BrokerIdentityLoad =
  | { readonly kind: 'applied'; readonly identity: BrokerIdentity }
  | { readonly kind: 'temp'; readonly identity: TempBrokerIdentity }
  | { readonly kind: 'none' }
  | { readonly kind: 'refused'; readonly code: 'BROKER_IDENTITY_MISMATCH' | 'BROKER_IDENTITY_CORRUPT'; readonly remark: string };

function readJson(fs: StorageFs, path: string): unknown {
  const bytes = fs.readFileSync(path);
  if (bytes.length > IDENTITY_BYTES_MAX) throw new Error(`${path} is over ${IDENTITY_BYTES_MAX} bytes`);
  return JSON.parse(bytes.toString('utf8'));
}

function load<T extends BrokerIdentity>(fs: StorageFs, path: string, schema: z.ZodType<T & { version: number }>, clusterName: string, brokerName: string): BrokerIdentityLoad | T {
  let parsed: T & { version: number };
  try {
    parsed = schema.parse(readJson(fs, path));
  } catch (error) {
    return { kind: 'refused', code: 'BROKER_IDENTITY_CORRUPT', remark: `${path}: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (parsed.clusterName !== clusterName || parsed.brokerName !== brokerName) {
    const remark = `${path} belongs to ${parsed.clusterName}/${parsed.brokerName}, not ${clusterName}/${brokerName}`;
    return { kind: 'refused', code: 'BROKER_IDENTITY_MISMATCH', remark };
  }
  const { version: _version, ...identity } = parsed;
  return identity as unknown as T;
}

/** Reads the identity files of a store root. */
export function loadBrokerIdentity(fs: StorageFs, storeRoot: string, clusterName: string, brokerName: string): BrokerIdentityLoad {
  const appliedPath = `${storeRoot}/${BROKER_IDENTITY_FILES.applied}`;
  if (fs.existsSync(appliedPath)) {
    const applied = load(fs, appliedPath, appliedSchema, clusterName, brokerName);
    return 'kind' in applied ? applied : { kind: 'applied', identity: applied };
  }
  const tempPath = `${storeRoot}/${BROKER_IDENTITY_FILES.temp}`;
  if (fs.existsSync(tempPath)) {
    const temp = load(fs, tempPath, tempSchema, clusterName, brokerName);
    return 'kind' in temp ? temp : { kind: 'temp', identity: temp };
  }
  return { kind: 'none' };
}

/** Writes the temp identity before CONTROLLER_APPLY_BROKER_ID. */
export function writeTempBrokerIdentity(fs: StorageFs, storeRoot: string, identity: TempBrokerIdentity): void {
  fs.mkdirSync(storeRoot, { recursive: true });
  writeFileAtomic(fs, `${storeRoot}/${BROKER_IDENTITY_FILES.temp}`, JSON.stringify({ version: BROKER_IDENTITY_VERSION, ...identity }));
}

/** Writes the applied identity, then removes the temp one. */
export function writeAppliedBrokerIdentity(fs: StorageFs, storeRoot: string, identity: BrokerIdentity): void {
  fs.mkdirSync(storeRoot, { recursive: true });
  const document = { version: BROKER_IDENTITY_VERSION, clusterName: identity.clusterName, brokerName: identity.brokerName, brokerId: identity.brokerId };
  writeFileAtomic(fs, `${storeRoot}/${BROKER_IDENTITY_FILES.applied}`, JSON.stringify(document));
  removeTempBrokerIdentity(fs, storeRoot);
}

/** Removes the temp identity (an apply that the controller refused). */
export function removeTempBrokerIdentity(fs: StorageFs, storeRoot: string): void {
  const tempPath = `${storeRoot}/${BROKER_IDENTITY_FILES.temp}`;
  if (fs.existsSync(tempPath)) fs.unlinkSync(tempPath);
}
