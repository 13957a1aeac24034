/**
 * The controller's durable state: one JSON document, `controllerMetadata.json` under the controller's store
 * directory (controllerStorePath), holding every broker set's replicas and election state. RocketMQ keeps
 * the same data (ReplicasInfoManager's replicaInfoTable and syncStateSetInfoTable) in a DLedger or JRaft
 * log plus Hessian snapshots; a single controller has no log to replay, so it rewrites this one file after
 * every change, before it answers the request that made the change.
 *
 * | file                         | meaning                                                   |
 * |------------------------------|-----------------------------------------------------------|
 * | controllerMetadata.json      | the last acknowledged state (UTF-8 JSON, layout below)    |
 * | controllerMetadata.json.tmp  | a persist in progress; never read, deleted on load        |
 * | controllerMetadata.json.corrupt | a file found corrupt on load, set aside for inspection |
 *
 * Layout:
 *   { "version": 1,
 *     "brokerSets": [ { "clusterName", "brokerName", "nextAssignBrokerId",
 *                       "masterBrokerId": id | null, "masterEpoch", "syncStateSet": [id...],
 *                       "syncStateSetEpoch",
 *                       "replicas": [ { "brokerId", "brokerAddress", "registerCheckCode" } ] } ] }
 *
 * Invariants, checked just after reading and just before writing (validateControllerMetadata):
 * - broker names are unique; in a set, broker ids are unique, >= 1 and < nextAssignBrokerId;
 * - the syncStateSet holds only replicas; the master, when there is one, is a replica and in the set;
 * - epochs are non-negative int32s; counts stay within the bounds the caller gives.
 *
 * Writing: temp file, fsync, rename over the file, fsync of the directory, all through the actor's
 * injected file system (fs/promises), so the file always holds a complete document.
 *
 * Recovery rule: a missing file is a new controller (empty). A file that is unreadable, not JSON, or breaks
 * an invariant is reported as `corrupt` with the reason (a file that is not JSON or is invalid is renamed to
 * `.corrupt` first); the caller logs it and starts empty (it does not crash). Liveness (heartbeats) is
 * never persisted, as in RocketMQ: brokers heartbeat again within seconds.
 *
 * A group of controllers agreeing through etcd (controller-etcd.ts) keeps the same document, as the same
 * JSON, in one etcd key instead of this file; parseControllerMetadataText reads it there.
 */
import path from 'node:path';
import { z } from 'zod';
import type { ActorFileSystem } from '../runtime/actor.ts';
import { assert } from '../runtime/assert.ts';

/** File names under the controller's store directory. */
export const CONTROLLER_METADATA_FILES = {
  metadata: 'controllerMetadata.json',
  temp: 'controllerMetadata.json.tmp',
  /** Suffix a corrupt file is renamed with on load. */
  corruptSuffix: '.corrupt',
} as const;

/** The document version this code writes and reads. */
export const CONTROLLER_METADATA_VERSION = 1;

/** Largest metadata file read or written. */
export const CONTROLLER_METADATA_BYTES_MAX = 64 * 1024 * 1024;

/** Bounds a document must respect. */
export type ControllerMetadataBounds = {
  /** Most broker sets. */
  readonly brokerSetsMax: number;
  /** Most replicas in one broker set. */
  readonly replicasPerSetMax: number;
};

const int32 = z.number().int().min(0).max(0x7fff_ffff);
const brokerId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

const replicaSchema = z.object({
  brokerId,
  brokerAddress: z.string(),
  registerCheckCode: z.string(),
});

const brokerSetSchema = z.object({
  clusterName: z.string(),
  brokerName: z.string().min(1),
  nextAssignBrokerId: brokerId,
  masterBrokerId: brokerId.nullable(),
  masterEpoch: int32,
  syncStateSet: z.array(brokerId),
  syncStateSetEpoch: int32,
  replicas: z.array(replicaSchema),
});

const documentSchema = z.object({
  version: z.literal(CONTROLLER_METADATA_VERSION),
  brokerSets: z.array(brokerSetSchema),
});

/** One persisted replica: its id, address and the registerCheckCode it applied with. */
export type PersistedReplica = z.output<typeof replicaSchema>;

/** One persisted broker set. */
export type PersistedBrokerSet = z.output<typeof brokerSetSchema>;

/** The whole persisted document. */
export type ControllerMetadataDocument = z.output<typeof documentSchema>;

/** The outcome of validation: the document, or why it is not one. */
export type ControllerMetadataCheck = { readonly ok: true; readonly value: ControllerMetadataDocument } | { readonly ok: false; readonly problem: string };

function checkBrokerSet(set: PersistedBrokerSet, bounds: ControllerMetadataBounds): string | undefined {
  const where = `broker set ${JSON.stringify(set.brokerName)}`;
  if (set.replicas.length > bounds.replicasPerSetMax) return `${where} has ${set.replicas.length} replicas, over ${bounds.replicasPerSetMax}`;
  const ids = new Set<number>();
  for (const replica of set.replicas) {
    if (ids.has(replica.brokerId)) return `${where} lists broker id ${replica.brokerId} twice`;
    if (replica.brokerId >= set.nextAssignBrokerId) return `${where}: broker id ${replica.brokerId} is not below nextAssignBrokerId`;
    ids.add(replica.brokerId);
  }
  if (new Set(set.syncStateSet).size !== set.syncStateSet.length) return `${where}: the syncStateSet repeats an id`;
  for (const id of set.syncStateSet) if (!ids.has(id)) return `${where}: syncStateSet member ${id} is not a replica`;
  if (set.masterBrokerId !== null && !set.syncStateSet.includes(set.masterBrokerId)) return `${where}: the master is not in the syncStateSet`;
  return undefined;
}

/** Checks a parsed value against the layout and invariants at the top of this file. */
export function validateControllerMetadata(value: unknown, bounds: ControllerMetadataBounds): ControllerMetadataCheck {
  const parsed = documentSchema.safeParse(value);
  if (!parsed.success) return { ok: false, problem: z.prettifyError(parsed.error) };
  const sets = parsed.data.brokerSets;
  if (sets.length > bounds.brokerSetsMax) return { ok: false, problem: `${sets.length} broker sets, over ${bounds.brokerSetsMax}` };
  const names = new Set<string>();
  for (const set of sets) {
    if (names.has(set.brokerName)) return { ok: false, problem: `broker set ${JSON.stringify(set.brokerName)} appears twice` };
    names.add(set.brokerName);
    const problem = checkBrokerSet(set, bounds);
    if (problem !== undefined) return { ok: false, problem };
  }
  return { ok: true, value: parsed.data };
}

/** An empty document: a new controller. */
export function emptyControllerMetadata(): ControllerMetadataDocument {
  return { version: CONTROLLER_METADATA_VERSION, brokerSets: [] };
}

/** What load found. */
export type ControllerMetadataLoad =
  | { readonly source: 'file' | 'etcd'; readonly value: ControllerMetadataDocument }
  | { readonly source: 'none' }
  | { readonly source: 'corrupt'; readonly problem: string };

function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Parses and validates a document's JSON text, wherever it was stored. */
export function parseControllerMetadataText(text: string, bounds: ControllerMetadataBounds): ControllerMetadataCheck {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `not JSON: ${describe(error)}` };
  }
  return validateControllerMetadata(json, bounds);
}

/** Reads `<dir>/controllerMetadata.json` (see the recovery rule above); deletes a leftover temp file. */
export async function loadControllerMetadata(fs: ActorFileSystem, dir: string, bounds: ControllerMetadataBounds): Promise<ControllerMetadataLoad> {
  assert(dir.length > 0, 'controller store directory must not be empty');
  await fs.rm(path.join(dir, CONTROLLER_METADATA_FILES.temp), { force: true });
  const file = path.join(dir, CONTROLLER_METADATA_FILES.metadata);
  let text: string;
  try {
    const stat = await fs.stat(file);
    if (stat.size > CONTROLLER_METADATA_BYTES_MAX) return { source: 'corrupt', problem: `${file} is ${stat.size} bytes, over ${CONTROLLER_METADATA_BYTES_MAX}` };
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if (isNotFound(error)) return { source: 'none' };
    return { source: 'corrupt', problem: `${file} cannot be read: ${describe(error)}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return setAside(fs, file, `${file} is not JSON: ${describe(error)}`);
  }
  const checked = validateControllerMetadata(json, bounds);
  if (!checked.ok) return setAside(fs, file, `${file}: ${checked.problem}`);
  return { source: 'file', value: checked.value };
}

/** Keeps a corrupt file as `<file>.corrupt` (best effort), so the next persist does not destroy the evidence. */
async function setAside(fs: ActorFileSystem, file: string, problem: string): Promise<ControllerMetadataLoad> {
  try {
    await fs.rename(file, file + CONTROLLER_METADATA_FILES.corruptSuffix);
    return { source: 'corrupt', problem: `${problem} (kept as ${file}${CONTROLLER_METADATA_FILES.corruptSuffix})` };
  } catch (error) {
    return { source: 'corrupt', problem: `${problem} (could not set it aside: ${describe(error)})` };
  }
}

/** Writes `bytes` to `file` atomically and durably: temp file, fsync, rename, directory fsync. */
export async function writeFileAtomicAsync(fs: ActorFileSystem, file: string, temp: string, bytes: Uint8Array): Promise<void> {
  const handle = await fs.open(temp, 'w', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, file);
  const dirHandle = await fs.open(path.dirname(file), 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/**
 * Validates the document (synchronously: an invalid one is a programmer error and throws here, not in the
 * promise) and writes it to `<dir>/controllerMetadata.json`; the promise rejects on any file error.
 */
export function persistControllerMetadata(
  fs: ActorFileSystem,
  dir: string,
  document: ControllerMetadataDocument,
  bounds: ControllerMetadataBounds,
): Promise<void> {
  const checked = validateControllerMetadata(document, bounds);
  assert(checked.ok, () => `refusing to write invalid controller metadata: ${checked.ok ? '' : checked.problem}`);
  const bytes = Buffer.from(JSON.stringify(checked.value, null, 1), 'utf8');
  assert(bytes.length <= CONTROLLER_METADATA_BYTES_MAX, () => `controller metadata of ${bytes.length} bytes is over the bound`);
  const file = path.join(dir, CONTROLLER_METADATA_FILES.metadata);
  const temp = path.join(dir, CONTROLLER_METADATA_FILES.temp);
  return fs.mkdir(dir, { recursive: true }).then(() => writeFileAtomicAsync(fs, file, temp, bytes));
}
