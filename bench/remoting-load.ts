/**
 * The load generator of the Remoting benchmark, as RocketMQ's benchmark Producer and Consumer drive a
 * broker: closed-loop senders (each waits for its answer before sending again), rate-limited senders,
 * batch senders and pull lanes, all over the project's RemotingClient. Round trips go into a fixed
 * histogram (10 µs buckets up to 2 s), so memory does not grow with the phase length.
 */
import { RemotingClient, requestOf } from '../src/net/remoting/remoting-client.ts';
import { type RemotingCommand, RequestCode, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { formatSendMessageRequest, PullMessageRequestHeader, PullSysFlag } from '../src/net/remoting/broker-headers.ts';
import { encodeMessageBatch, UniqIdGenerator } from '../src/net/remoting/message-batch.ts';
import { encodeMessageProperties } from '../src/storage/message-record.ts';

/** Width of one histogram bucket. */
const BUCKET_US = 10;
/** Buckets: 10 µs each, up to 2 s; slower round trips land in the last one. */
const BUCKETS = 200_000;
/** How long one request may wait for its answer. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Failures whose remark is kept for the report. */
const FAILURE_SAMPLES_MAX = 3;

/** Round-trip times in a fixed number of buckets. */
export class Histogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #count = 0;
  #sumMs = 0;

  /** Adds one round trip. */
  record(ms: number): void {
    const bucket = Math.min(BUCKETS - 1, Math.floor((ms * 1000) / BUCKET_US));
    this.#counts[bucket]! += 1;
    this.#count += 1;
    this.#sumMs += ms;
  }

  /** Round trips recorded. */
  get count(): number {
    return this.#count;
  }

  /** Mean round trip in ms. */
  get meanMs(): number {
    return this.#count === 0 ? 0 : this.#sumMs / this.#count;
  }

  /** The upper edge of the bucket holding the q-quantile, in ms. */
  quantileMs(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.ceil(q * this.#count);
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket]!;
      if (seen >= rank) return ((bucket + 1) * BUCKET_US) / 1000;
    }
    return (BUCKETS * BUCKET_US) / 1000;
  }
}

/** What one phase measured. */
export type PhaseResult = {
  /** Messages acknowledged with SUCCESS (or pulled). */
  messages: number;
  /** Requests answered SUCCESS. */
  requests: number;
  /** Wall time from the phase's start until its last request was answered. */
  ms: number;
  /** Answers other than SUCCESS, by response code. */
  failures: Map<number, number>;
  /** A few remarks of those answers. */
  failureRemarks: string[];
  /** Requests that got no answer (timeout, closed connection). */
  errors: number;
  /** The first such error's message. */
  firstError: string | undefined;
  histogram: Histogram;
  /** CPU seconds this (the load generator's) process used during the phase. */
  clientCpuS: number;
};

function newResult(): PhaseResult {
  return { messages: 0, requests: 0, ms: 0, failures: new Map(), failureRemarks: [], errors: 0, firstError: undefined, histogram: new Histogram(), clientCpuS: 0 };
}

function noteFailure(result: PhaseResult, response: RemotingCommand): void {
  result.failures.set(response.code, (result.failures.get(response.code) ?? 0) + 1);
  if (result.failureRemarks.length < FAILURE_SAMPLES_MAX) result.failureRemarks.push(`${response.code}: ${response.remark ?? ''}`.slice(0, 200));
}

export function noteError(result: PhaseResult, error: unknown): void {
  result.errors += 1;
  result.firstError ??= error instanceof Error ? error.message : String(error);
}

/** Builds the requests of one producer: SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE with fresh UNIQ_KEYs. */
export class RequestFactory {
  readonly #topic: string;
  readonly #queues: number;
  readonly #body: Uint8Array;
  readonly #ids = new UniqIdGenerator({ ip: Uint8Array.of(127, 0, 0, 1), pid: process.pid, instanceHash: 0x5eed, clock: { nowMs: () => Date.now() } });
  #nextQueue = 0;

  constructor(topic: string, queues: number, body: Uint8Array) {
    this.#topic = topic;
    this.#queues = queues;
    this.#body = body;
  }

  /** The next queue, round-robin, as the Java producer's default selector picks them. */
  #queue(): number {
    const queueId = this.#nextQueue;
    this.#nextQueue = (queueId + 1) % this.#queues;
    return queueId;
  }

  #header(batch: boolean, properties: Record<string, string>): Record<string, string> {
    return formatSendMessageRequest(
      {
        producerGroup: 'bench-producer',
        topic: this.#topic,
        defaultTopic: 'TBW102',
        defaultTopicQueueNums: this.#queues,
        queueId: this.#queue(),
        sysFlag: 0,
        bornTimestamp: Date.now(),
        flag: 0,
        properties: encodeMessageProperties(properties),
        reconsumeTimes: 0,
        batch,
      },
      'V2',
    );
  }

  /** One SEND_MESSAGE_V2 of the 1 KiB body, with the properties a Java producer sets. */
  single(): RemotingCommand {
    const header = this.#header(false, { UNIQ_KEY: this.#ids.next(), WAIT: 'true', TAGS: 'bench' });
    return requestOf(RequestCode.SEND_MESSAGE_V2, header, this.#body);
  }

  /** One SEND_BATCH_MESSAGE of `size` messages, each with its own UNIQ_KEY, as MessageBatch encodes them. */
  batch(size: number): RemotingCommand {
    const messages = Array.from({ length: size }, () => ({
      body: this.#body,
      properties: encodeMessageProperties({ UNIQ_KEY: this.#ids.next(), WAIT: 'true', TAGS: 'bench' }),
    }));
    const header = this.#header(true, { WAIT: 'true' });
    return requestOf(RequestCode.SEND_BATCH_MESSAGE, header, encodeMessageBatch(messages));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One request and its bookkeeping; returns false when the lane should stop (its connection is gone). */
async function sendOnce(client: RemotingClient, request: RemotingCommand, messages: number, result: PhaseResult): Promise<boolean> {
  const started = performance.now();
  let response: RemotingCommand;
  try {
    response = await client.invoke(request, REQUEST_TIMEOUT_MS);
  } catch (error) {
    noteError(result, error);
    return !client.closed;
  }
  result.histogram.record(performance.now() - started);
  if (response.code === ResponseCode.SUCCESS) {
    result.messages += messages;
    result.requests += 1;
  } else {
    noteFailure(result, response);
  }
  return true;
}

async function timed(run: (result: PhaseResult) => Promise<void>): Promise<PhaseResult> {
  const result = newResult();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await run(result);
  result.ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  result.clientCpuS = (cpu.user + cpu.system) / 1e6;
  return result;
}

/**
 * One request of lane `lane` with its bookkeeping in `result`; false when the lane should stop (its
 * connection is gone). The loops below drive any protocol through it (bench/yardstick.ts drives Redis).
 */
export type LaneSend = (lane: number, result: PhaseResult) => Promise<boolean>;

/** `lanes` closed-loop lanes for `durationMs`: each sends and waits for the answer before the next. */
export function closedLoopOf(lanes: number, durationMs: number, send: LaneSend): Promise<PhaseResult> {
  return timed(async (result) => {
    const deadline = performance.now() + durationMs;
    const lane = async (index: number): Promise<void> => {
      while (performance.now() < deadline) {
        if (!(await send(index, result))) return;
      }
    };
    await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)));
  });
}

/**
 * `lanes` lanes that together send `ratePerS` requests per second: each keeps its own schedule
 * (staggered so the lanes do not fire together) and sends as soon as it is due, or at once when a slow
 * answer has put it behind; it never has more than one request in flight.
 */
export function rateLimitedOf(lanes: number, durationMs: number, ratePerS: number, send: LaneSend): Promise<PhaseResult> {
  return timed(async (result) => {
    const intervalMs = (lanes * 1000) / ratePerS;
    const start = performance.now();
    const deadline = start + durationMs;
    const lane = async (index: number): Promise<void> => {
      let dueMs = start + (index * intervalMs) / lanes;
      while (dueMs < deadline) {
        const waitMs = dueMs - performance.now();
        if (waitMs >= 1) await sleep(waitMs);
        if (!(await send(index, result))) return;
        dueMs += intervalMs;
      }
    };
    await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)));
  });
}

/**
 * `lanes` closed-loop senders spread over `clients` for `durationMs`; each sends `make()` (carrying
 * `messagesPerRequest` messages) and waits for the answer before the next.
 */
export function closedLoop(
  clients: readonly RemotingClient[],
  lanes: number,
  durationMs: number,
  make: () => RemotingCommand,
  messagesPerRequest: number,
): Promise<PhaseResult> {
  return closedLoopOf(lanes, durationMs, (lane, result) => sendOnce(clients[lane % clients.length]!, make(), messagesPerRequest, result));
}

/** `lanes` rate-limited senders (rateLimitedOf) of single messages over `clients`, `ratePerS` in all. */
export function rateLimited(clients: readonly RemotingClient[], lanes: number, durationMs: number, ratePerS: number, make: () => RemotingCommand): Promise<PhaseResult> {
  return rateLimitedOf(lanes, durationMs, ratePerS, (lane, result) => sendOnce(clients[lane % clients.length]!, make(), 1, result));
}

/** Counts the records of a pull answer's body by walking their totalSize fields (RocketMQ's layout). */
function countRecords(body: Uint8Array | undefined): number {
  if (body === undefined) return 0;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let records = 0;
  for (let at = 0; at + 4 <= body.byteLength; ) {
    const totalSize = view.getInt32(at);
    if (totalSize <= 0) throw new Error(`pulled record at byte ${at} has totalSize ${totalSize}`);
    at += totalSize;
    records += 1;
  }
  return records;
}

/** What a pull phase measured beyond PhaseResult. */
export type PullResult = PhaseResult & {
  /** Lanes that read their queue to the end before the deadline. */
  drainedQueues: number;
  /** Time during which every lane was still pulling: until the first queue was drained, or the whole phase. */
  allBusyMs: number;
  /** Messages pulled within allBusyMs. */
  allBusyMessages: number;
};

/**
 * One pull lane per queue of `topic`, from offset 0, `batch` messages per PULL_MESSAGE, without long
 * polling: a lane stops at the deadline or once it has read its queue to the end (PULL_NOT_FOUND or an
 * empty answer). Counts the records in the answers and checks them against the offsets moved. Since
 * the lanes may run out of messages at different times, the rate while all of them were busy is kept
 * apart (allBusyMs, allBusyMessages).
 */
export function pullAll(clients: readonly RemotingClient[], topic: string, queues: number, batch: number, durationMs: number): Promise<PullResult> {
  let drainedQueues = 0;
  let allBusy: { ms: number; messages: number } | undefined;
  return timed(async (result) => {
    const start = performance.now();
    const deadline = start + durationMs;
    const lane = async (queueId: number): Promise<void> => {
      const client = clients[queueId % clients.length]!;
      let offset = 0;
      while (performance.now() < deadline) {
        const header = PullMessageRequestHeader.format({
          consumerGroup: 'bench-consumer',
          topic,
          queueId,
          queueOffset: offset,
          maxMsgNums: batch,
          sysFlag: PullSysFlag.FLAG_SUBSCRIPTION,
          commitOffset: 0,
          suspendTimeoutMillis: 0,
          subscription: '*',
          subVersion: 0,
          expressionType: 'TAG',
        });
        const started = performance.now();
        let response: RemotingCommand;
        try {
          response = await client.invoke(requestOf(RequestCode.PULL_MESSAGE, header), REQUEST_TIMEOUT_MS);
        } catch (error) {
          noteError(result, error);
          if (client.closed) return;
          continue;
        }
        result.histogram.record(performance.now() - started);
        if (response.code === ResponseCode.PULL_NOT_FOUND) break;
        if (response.code !== ResponseCode.SUCCESS) {
          noteFailure(result, response);
          if (response.code === ResponseCode.PULL_OFFSET_MOVED) return;
          continue;
        }
        const next = Number(response.extFields['nextBeginOffset']);
        const records = countRecords(response.body);
        if (next - offset !== records) throw new Error(`queue ${queueId}: offsets moved ${offset} -> ${next} but ${records} records came`);
        if (records === 0) break;
        result.messages += records;
        result.requests += 1;
        offset = next;
      }
      if (performance.now() < deadline) {
        drainedQueues += 1;
        allBusy ??= { ms: performance.now() - start, messages: result.messages };
      }
    };
    await Promise.all(Array.from({ length: queues }, (_, i) => lane(i)));
  }).then((result) => ({ ...result, drainedQueues, allBusyMs: allBusy?.ms ?? result.ms, allBusyMessages: allBusy?.messages ?? result.messages }));
}

/** Connects `count` clients to `address`. */
export function connectClients(address: string, count: number): Promise<RemotingClient[]> {
  return Promise.all(Array.from({ length: count }, () => RemotingClient.connect(address)));
}
