/**
 * What a controller of a group needs from the store the group shares (etcd in production,
 * controller-etcd.ts; an in-memory fake in tests): one leader at a time, chosen by a lease, and one
 * metadata document that only the leader of the moment can write.
 *
 * The contract, which the controller actor's safety rests on:
 * - `campaign` claims leadership when nobody holds it, and reads the document in the same atomic step,
 *   so the new leader starts from the last document any earlier leader wrote. The `term` it returns
 *   names this leadership; no other campaign ever returns the same term.
 * - `save(term, document)` stores the document only while `term` still leads; once the lease behind the
 *   term has ended (expired, revoked) it rejects with NOT_LEADER and stores nothing. A deposed leader
 *   therefore cannot overwrite what a newer leader wrote.
 * - the lease lives at the store at least `ttlMs` after the moment a grant or keep-alive that reported
 *   `ttlMs` was sent, and a new leader can only be chosen after it ended. So a controller that counts
 *   itself leader only until (send time of its newest successful renewal + ttlMs - a margin) never
 *   overlaps with the next leader.
 *
 * Errors are ControllerStoreError with a stable code; any other rejection is a store that could not be
 * reached, after which the outcome of a `save` is unknown.
 */
import type { ControllerPeer } from '../net/remoting/controller-protocol.ts';
import type { ControllerMetadataDocument, ControllerMetadataLoad } from './controller-metadata.ts';

export type { ControllerPeer } from '../net/remoting/controller-protocol.ts';

/** The lease a result refers to, and (when the call granted or renewed it) its TTL counted from the call. */
export type LeaseView = {
  /** The lease id, as the store names it. */
  readonly leaseId: string;
  /** TTL the store granted or renewed in this call, in ms; undefined when the call did neither. */
  readonly renewedTtlMs: number | undefined;
};

/** What one campaign round found. */
export type CampaignOutcome =
  | {
      readonly kind: 'elected';
      /** Names this leadership; `save` needs it. */
      readonly term: string;
      /** The document as the previous leader left it, read atomically with the claim. */
      readonly load: ControllerMetadataLoad;
      readonly lease: LeaseView;
    }
  | {
      readonly kind: 'follower';
      /** Who leads now; undefined while nobody does (or the key is this controller's own expired claim). */
      readonly leader: ControllerPeer | undefined;
      readonly lease: LeaseView;
    };

/** A shared metadata store with leader election; see the file comment for the contract. */
export interface ControllerLeaderStore {
  /** One campaign round: gets a lease if none is held, claims leadership if free, else reports the leader. */
  campaign(): Promise<CampaignOutcome>;
  /** Renews the held lease once; undefined when no lease is held. renewedTtlMs 0 means it has ended. */
  keepAlive(): Promise<LeaseView | undefined>;
  /** Stores the document if `term` still leads; rejects with NOT_LEADER (nothing stored) otherwise. */
  save(term: string, document: ControllerMetadataDocument): Promise<void>;
  /** Gives leadership up: forgets the lease and revokes it (best effort); the next campaign starts afresh. */
  resign(): Promise<void>;
  /** Resigns and releases the connection; later calls reject. */
  close(): Promise<void>;
}

/** Stable codes of ControllerStoreError. */
export const ControllerStoreErrorCode = {
  /** The term no longer leads: nothing was stored. */
  NOT_LEADER: 'CONTROLLER_STORE_NOT_LEADER',
  /** The document is over the store's value bound: nothing was sent. */
  TOO_LARGE: 'CONTROLLER_STORE_TOO_LARGE',
  /** The store answered something this code cannot read (a leader key that is not ours to parse). */
  BAD_VALUE: 'CONTROLLER_STORE_BAD_VALUE',
  /** The store was closed. */
  CLOSED: 'CONTROLLER_STORE_CLOSED',
} as const;

/** One of ControllerStoreErrorCode. */
export type ControllerStoreErrorCode = (typeof ControllerStoreErrorCode)[keyof typeof ControllerStoreErrorCode];

/** An expected store outcome that is not success, with a stable code. */
export class ControllerStoreError extends Error {
  /** Stable machine-readable code. */
  readonly code: ControllerStoreErrorCode;
  override readonly name = 'ControllerStoreError';

  constructor(code: ControllerStoreErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Most etcd endpoints one list may name. */
export const ETCD_ENDPOINTS_MAX = 16;

const ENDPOINT = /^http:\/\/([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/**
 * Reads controllerEtcdEndpoints: `http://host:port[,http://host:port...]`. Empty text is no endpoint (a
 * single controller); undefined when an entry is malformed or the list is too long.
 */
export function parseEtcdEndpoints(text: string): readonly string[] | undefined {
  if (text.trim() === '') return [];
  const entries = text.split(',').map((entry) => entry.trim());
  if (entries.length > ETCD_ENDPOINTS_MAX) return undefined;
  for (const entry of entries) {
    const match = ENDPOINT.exec(entry);
    if (match === null || Number(match[3]) < 1 || Number(match[3]) > 65535) return undefined;
  }
  return entries;
}
