/**
 * The control plane between the main thread and each worker: comlink RPC over a dedicated MessagePort
 * pair (one port per direction). Control calls are rare (spawn, stop, link, stats, shutdown), so their
 * cost does not matter; actor traffic never uses this path.
 */
import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { ActorRef, ActorSpec } from './actor.ts';
import type { HostStats } from './actor-host.ts';

/** Calls the main thread serves for workers. */
export type MainControl = {
  /** Creates an actor anywhere in the system on behalf of a parent actor. */
  spawn(spec: ActorSpec, parentSlot: number): Promise<ActorRef>;
  /** Records that an actor stopped for good. */
  actorStopped(slot: number): void;
};

/** Calls a worker serves for the main thread. */
export type WorkerControl = {
  /** Answers once the worker's host is ready. */
  ping(): number;
  /** Creates an actor in an allocated slot on this worker. */
  startActor(slot: number, spec: ActorSpec, parentSlot: number): Promise<void>;
  /** Stops an actor hosted on this worker. */
  stopActor(slot: number): void;
  /** Installs the port toward another thread (transferred). */
  addLink(thread: number, port: MessagePort): void;
  /** The host's counters. */
  stats(): HostStats;
  /** Stops every actor (running their onStop) and closes links. */
  shutdown(): void;
};

/** Serves `api` on `port`. */
export function serveControl(api: object, port: MessagePort): void {
  Comlink.expose(api, nodeEndpoint(port));
}

/** A typed proxy for calling the API served on the other end of `port`. */
export function connectControl<T>(port: MessagePort): Comlink.Remote<T> {
  return Comlink.wrap<T>(nodeEndpoint(port));
}

/** Marks a value's transferables so comlink moves instead of copying them. */
export function transferring<T>(value: T, transferables: MessagePort[]): T {
  return Comlink.transfer(value, transferables as unknown as Parameters<typeof Comlink.transfer>[1]);
}

/** Releases a comlink proxy's port so it no longer keeps the thread alive. */
export function releaseControl(remote: Comlink.Remote<unknown>): void {
  remote[Comlink.releaseProxy]();
}
