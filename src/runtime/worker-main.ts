/**
 * Entry point of every worker thread: builds the thread's ActorHost from workerData, installs its links
 * to the other threads and serves the control API. Actors never import worker_threads themselves.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { pino } from 'pino';
import { ActorHost, realFileSystem } from './actor-host.ts';
import { createSystemClock } from './clock.ts';
import { connectControl, serveControl, type MainControl, type WorkerControl } from './control-channel.ts';
import { Directory } from './directory.ts';
import type { HostTuning } from './actor-system.ts';

/** What the main thread hands a new worker. */
export type WorkerInit = {
  readonly threadIndex: number;
  readonly pool: string;
  readonly directory: SharedArrayBuffer;
  readonly tuning: HostTuning;
  readonly logLevel: string;
  readonly controlIn: MessagePort;
  readonly controlOut: MessagePort;
  readonly links: readonly { readonly thread: number; readonly port: MessagePort }[];
};

const init = workerData as WorkerInit;
const log = pino({ level: init.logLevel, base: { pool: init.pool, thread: init.threadIndex } });
const main = connectControl<MainControl>(init.controlOut);
const host = new ActorHost({
  ...init.tuning,
  threadIndex: init.threadIndex,
  pool: init.pool,
  directory: new Directory(init.directory),
  clock: createSystemClock(),
  random: Math.random,
  fs: realFileSystem,
  log,
  spawn: (spec, parentSlot) => main.spawn(spec, parentSlot),
  actorStopped: (slot) => void main.actorStopped(slot),
});
for (const link of init.links) host.addLink(link.thread, link.port);

const api: WorkerControl = {
  ping: () => init.threadIndex,
  startActor: (slot, spec, parentSlot) => host.startActor(slot, spec, parentSlot),
  stopActor: (slot) => host.stopActor(slot, 'stopped by system'),
  addLink: (thread, port) => host.addLink(thread, port),
  stats: () => host.stats(),
  shutdown: () => host.shutdown(),
};
serveControl(api, init.controlIn);
