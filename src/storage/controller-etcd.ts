/**
 * The controller group's shared store on etcd (the ControllerLeaderStore contract of
 * controller-etcd-store.ts): leader election with an etcd lease and the metadata document in one key,
 * written only under a transaction that checks the writer still leads. etcd does the agreeing; nothing
 * here is a consensus protocol.
 *
 * Keys, under controllerEtcdKeyPrefix (default /rocketmq-ts/controller):
 *
 * | key                | value                                                         | lease            |
 * |--------------------|---------------------------------------------------------------|------------------|
 * | `<prefix>/leader`   | JSON `{"id": controllerDLegerSelfId, "address": "host:port"}` | the leader's     |
 * | `<prefix>/metadata` | the controller metadata document (controller-metadata.ts)     | none (permanent) |
 *
 * Invariants:
 * - the leader key exists only while the lease of the controller that created it is alive (etcd deletes
 *   it when the lease expires or is revoked);
 * - the term of a leadership is the leader key's create_revision; etcd revisions never repeat, so a key
 *   created again after an expiry has a new term;
 * - campaign is one transaction: `if create_revision(leader) = 0 then put leader (with our lease) and
 *   read metadata else read leader and metadata`; a new leader reads the document in the same step as
 *   it claims, so it sees every write of every earlier term;
 * - save is one transaction: `if create_revision(leader) = term then put metadata`; it fails (NOT_LEADER)
 *   once the term's lease is gone, whatever the old leader believes.
 *
 * Recovery: a metadata value that is not a valid document is reported `corrupt` to the new leader (which
 * logs it and starts empty, as the file store does); a leader value that cannot be read is reported as
 * "no known leader". Calls carry a deadline of requestTimeoutMs; a call that fails is an unknown outcome.
 */
import { EtcdLeaseInvalidError, Etcd3, type IKeyValue, type ITxnResponse } from 'etcd3';
import { z } from 'zod';
import type { Clock } from '../runtime/clock.ts';
import { assert } from '../runtime/assert.ts';
import { parseControllerMetadataText, validateControllerMetadata, type ControllerMetadataBounds, type ControllerMetadataDocument, type ControllerMetadataLoad } from './controller-metadata.ts';
import {
  ControllerStoreError,
  ControllerStoreErrorCode,
  type CampaignOutcome,
  type ControllerLeaderStore,
  type ControllerPeer,
  type LeaseView,
} from './controller-etcd-store.ts';

/** Key names under the prefix. */
export const CONTROLLER_ETCD_KEYS = {
  leader: 'leader',
  metadata: 'metadata',
} as const;

/** Largest metadata value written: below etcd's default --max-request-bytes (1.5 MiB) with room for the request. */
export const CONTROLLER_ETCD_VALUE_BYTES_MAX = 1024 * 1024;

/** How a store connects and who it speaks for. */
export type EtcdControllerStoreOptions = {
  /** `http://host:port` client URLs of the etcd members. */
  readonly endpoints: readonly string[];
  /** Key prefix of this controller group, without a trailing '/'. */
  readonly keyPrefix: string;
  /** TTL of the leadership lease, in seconds (etcd may raise it to its minimum). */
  readonly leaseTtlSeconds: number;
  /** This controller: its id and the address brokers reach it on. */
  readonly self: ControllerPeer;
  /** Bounds a stored document must respect. */
  readonly bounds: ControllerMetadataBounds;
  /** Deadline of each etcd call, in ms. */
  readonly requestTimeoutMs: number;
  /** Wall clock for the calls' deadlines. */
  readonly clock: Clock;
};

const leaderSchema = z.object({ id: z.string().min(1).max(64), address: z.string().min(1).max(300) });

/** The etcd implementation of ControllerLeaderStore. */
export class EtcdControllerStore implements ControllerLeaderStore {
  readonly #options: EtcdControllerStoreOptions;
  readonly #client: Etcd3;
  readonly #leaderKey: Buffer;
  readonly #metadataKey: Buffer;
  #leaseId: string | undefined;
  #closed = false;

  constructor(options: EtcdControllerStoreOptions) {
    assert(options.endpoints.length > 0, 'at least one etcd endpoint');
    assert(Number.isSafeInteger(options.leaseTtlSeconds) && options.leaseTtlSeconds >= 1, 'lease TTL is a positive number of seconds');
    assert(options.keyPrefix.startsWith('/') && !options.keyPrefix.endsWith('/'), 'key prefix starts with / and does not end with it');
    this.#options = options;
    this.#leaderKey = Buffer.from(`${options.keyPrefix}/${CONTROLLER_ETCD_KEYS.leader}`);
    this.#metadataKey = Buffer.from(`${options.keyPrefix}/${CONTROLLER_ETCD_KEYS.metadata}`);
    const { clock, requestTimeoutMs } = options;
    this.#client = new Etcd3({
      hosts: [...options.endpoints],
      dialTimeout: requestTimeoutMs,
      defaultCallOptions: () => ({ deadline: new Date(clock.nowMs() + requestTimeoutMs) }),
    });
  }

  async campaign(): Promise<CampaignOutcome> {
    this.#checkOpen();
    let renewedTtlMs: number | undefined;
    if (this.#leaseId === undefined) {
      const granted = await this.#client.leaseClient.leaseGrant({ TTL: this.#options.leaseTtlSeconds });
      this.#leaseId = granted.ID;
      renewedTtlMs = Number(granted.TTL) * 1000;
    }
    const leaseId = this.#leaseId;
    let response: ITxnResponse;
    try {
      response = await this.#client.kv.txn({
        compare: [{ key: this.#leaderKey, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [
          { request_put: { key: this.#leaderKey, value: Buffer.from(JSON.stringify(this.#options.self)), lease: leaseId } },
          { request_range: { key: this.#metadataKey } },
        ],
        failure: [{ request_range: { key: this.#leaderKey } }, { request_range: { key: this.#metadataKey } }],
      });
    } catch (error) {
      // Our lease ended behind our back (we were partitioned past its TTL): the next round gets a new one.
      if (error instanceof EtcdLeaseInvalidError && this.#leaseId === leaseId) this.#leaseId = undefined;
      throw error;
    }
    const lease: LeaseView = { leaseId, renewedTtlMs };
    const metadata = rangeValue(response, 1);
    if (response.succeeded) return { kind: 'elected', term: String(response.header.revision), load: this.#load(metadata), lease };
    const leader = rangeValue(response, 0);
    // A claim made with our own live lease (an earlier round whose answer was lost) is ours.
    if (leader !== undefined && leader.lease === leaseId) return { kind: 'elected', term: String(leader.create_revision), load: this.#load(metadata), lease };
    return { kind: 'follower', leader: this.#leaderOf(leader), lease };
  }

  async keepAlive(): Promise<LeaseView | undefined> {
    this.#checkOpen();
    const leaseId = this.#leaseId;
    if (leaseId === undefined) return undefined;
    const { clock, requestTimeoutMs } = this.#options;
    const stream = await this.#client.leaseClient.leaseKeepAlive({ deadline: new Date(clock.nowMs() + requestTimeoutMs) });
    try {
      const answer = await new Promise<{ readonly TTL: string }>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', reject);
        stream.write({ ID: leaseId });
      });
      const renewedTtlMs = Math.max(0, Number(answer.TTL) * 1000);
      if (renewedTtlMs === 0 && this.#leaseId === leaseId) this.#leaseId = undefined;
      return { leaseId, renewedTtlMs };
    } finally {
      stream.end();
    }
  }

  async save(term: string, document: ControllerMetadataDocument): Promise<void> {
    this.#checkOpen();
    const checked = validateControllerMetadata(document, this.#options.bounds);
    assert(checked.ok, () => `refusing to store invalid controller metadata: ${checked.ok ? '' : checked.problem}`);
    assert(/^[1-9]\d*$/.test(term), 'a term is an etcd revision');
    const bytes = Buffer.from(JSON.stringify(checked.value), 'utf8');
    if (bytes.length > CONTROLLER_ETCD_VALUE_BYTES_MAX) {
      throw new ControllerStoreError(ControllerStoreErrorCode.TOO_LARGE, `controller metadata of ${bytes.length} bytes is over ${CONTROLLER_ETCD_VALUE_BYTES_MAX}`);
    }
    const response = await this.#client.kv.txn({
      compare: [{ key: this.#leaderKey, target: 'Create', result: 'Equal', create_revision: term }],
      success: [{ request_put: { key: this.#metadataKey, value: bytes } }],
      failure: [],
    });
    if (!response.succeeded) throw new ControllerStoreError(ControllerStoreErrorCode.NOT_LEADER, `term ${term} no longer leads`);
  }

  async resign(): Promise<void> {
    const leaseId = this.#leaseId;
    this.#leaseId = undefined;
    if (leaseId === undefined || this.#closed) return;
    try {
      await this.#client.leaseClient.leaseRevoke({ ID: leaseId });
    } catch (error) {
      // Unreachable or already gone: the lease ends by itself within its TTL, as nobody renews it now.
      if (!(error instanceof EtcdLeaseInvalidError)) throw error;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.resign();
    } finally {
      this.#closed = true;
      this.#client.close();
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new ControllerStoreError(ControllerStoreErrorCode.CLOSED, 'the controller store is closed');
  }

  #load(kv: IKeyValue | undefined): ControllerMetadataLoad {
    if (kv === undefined) return { source: 'none' };
    if (kv.value.length > CONTROLLER_ETCD_VALUE_BYTES_MAX) return { source: 'corrupt', problem: `the metadata value is ${kv.value.length} bytes, over ${CONTROLLER_ETCD_VALUE_BYTES_MAX}` };
    const checked = parseControllerMetadataText(kv.value.toString('utf8'), this.#options.bounds);
    if (!checked.ok) return { source: 'corrupt', problem: `${this.#metadataKey.toString()}: ${checked.problem}` };
    return { source: 'etcd', value: checked.value };
  }

  #leaderOf(kv: IKeyValue | undefined): ControllerPeer | undefined {
    if (kv === undefined) return undefined;
    let parsed: z.ZodSafeParseResult<ControllerPeer>;
    try {
      parsed = leaderSchema.safeParse(JSON.parse(kv.value.toString('utf8')));
    } catch {
      return undefined;
    }
    if (!parsed.success) return undefined;
    // Our own earlier claim, under a lease we gave up: it is on its way out, nobody leads.
    if (parsed.data.id === this.#options.self.id) return undefined;
    return parsed.data;
  }
}

/** The one key-value of the range at `index` of a transaction's answers, if the key exists. */
function rangeValue(response: ITxnResponse, index: number): IKeyValue | undefined {
  const range = response.responses[index]?.response_range;
  return range?.kvs[0];
}
