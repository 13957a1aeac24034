/**
 * What the HA benchmark asks brokers and the controller, over the project's RemotingClient: topic
 * creation, the CommitLog's max physical offset (GET_BROKER_RUNTIME_INFO's commitLogMaxOffset, the figure
 * `mqadmin brokerStatus` shows), one SEND_MESSAGE_V2, a broker set's replicas as the controller sees them
 * (CONTROLLER_GET_SYNC_STATE_DATA), and a bounded poll loop.
 */
import type { RemotingClient } from '../src/net/remoting/remoting-client.ts';
import { requestOf } from '../src/net/remoting/remoting-client.ts';
import { type RemotingCommand, RequestCode, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { CreateTopicRequestHeader, formatSendMessageRequest } from '../src/net/remoting/broker-headers.ts';
import { parseKVTable } from '../src/net/remoting/broker-bodies.ts';
import { parseBrokerReplicasInfo, type ReplicasInfo } from '../src/net/remoting/controller-protocol.ts';
import { encodeMessageProperties } from '../src/storage/message-record.ts';

/** How long an admin request (topic, runtime info, controller query) may wait for its answer. */
export const ADMIN_TIMEOUT_MS = 5_000;

/** Creates `topic` with `queues` read and write queues on the broker behind `client`; throws on refusal. */
export async function createTopic(client: RemotingClient, topic: string, queues: number): Promise<void> {
  const header = CreateTopicRequestHeader.format({ topic, defaultTopic: 'TBW102', readQueueNums: queues, writeQueueNums: queues, perm: 6, topicFilterType: 'SINGLE_TAG' });
  const answer = await client.invoke(requestOf(RequestCode.UPDATE_AND_CREATE_TOPIC, header), ADMIN_TIMEOUT_MS);
  if (answer.code !== ResponseCode.SUCCESS) throw new Error(`creating ${topic} failed: code ${answer.code} ${answer.remark ?? ''}`);
}

/** The broker's CommitLog max physical offset in bytes, from GET_BROKER_RUNTIME_INFO. */
export async function commitLogMaxOffset(client: RemotingClient): Promise<number> {
  const answer = await client.invoke(requestOf(RequestCode.GET_BROKER_RUNTIME_INFO), ADMIN_TIMEOUT_MS);
  if (answer.code !== ResponseCode.SUCCESS) throw new Error(`GET_BROKER_RUNTIME_INFO failed: code ${answer.code} ${answer.remark ?? ''}`);
  const text = parseKVTable(answer.body).table.get('commitLogMaxOffset');
  const offset = Number(text);
  if (text === undefined || !Number.isSafeInteger(offset) || offset < 0) throw new Error(`GET_BROKER_RUNTIME_INFO has no usable commitLogMaxOffset: ${text}`);
  return offset;
}

/** One SEND_MESSAGE_V2 of `body` to queue 0 of `topic`; resolves with the answer (any code). */
export function sendOne(client: RemotingClient, topic: string, body: Uint8Array, timeoutMs: number): Promise<RemotingCommand> {
  const header = formatSendMessageRequest(
    {
      producerGroup: 'ha-bench-producer',
      topic,
      defaultTopic: 'TBW102',
      defaultTopicQueueNums: 1,
      queueId: 0,
      sysFlag: 0,
      bornTimestamp: Date.now(),
      flag: 0,
      properties: encodeMessageProperties({ WAIT: 'true' }),
      reconsumeTimes: 0,
    },
    'V2',
  );
  return client.invoke(requestOf(RequestCode.SEND_MESSAGE_V2, header, body), timeoutMs);
}

/** The controller's view of one broker set (master, epoch, in-sync replicas), or undefined when it knows none. */
export async function replicasOf(controller: RemotingClient, brokerName: string): Promise<ReplicasInfo | undefined> {
  const request = requestOf(RequestCode.CONTROLLER_GET_SYNC_STATE_DATA, {}, Buffer.from(JSON.stringify([brokerName])));
  const answer = await controller.invoke(request, ADMIN_TIMEOUT_MS);
  if (answer.code !== ResponseCode.SUCCESS) return undefined;
  return parseBrokerReplicasInfo(answer.body).replicasInfoTable.get(brokerName);
}

/** Calls `probe` every `intervalMs` until it returns a value (not undefined); throws after `timeoutMs`. Errors count as "not yet". */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === '' ? '' : ` (last error: ${lastError})`}`);
    await sleep(intervalMs);
  }
}

/** RocketMQ's name of a response code (`code 14 SERVICE_NOT_AVAILABLE`), or just the number when unknown. */
export function codeName(code: number): string {
  const name = Object.entries(ResponseCode).find(([, value]) => value === code)?.[0];
  return name === undefined ? `code ${code}` : `code ${code} ${name}`;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
