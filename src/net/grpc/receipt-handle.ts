/**
 * The receipt handle a 5.x client holds: the Proxy wraps the broker's own (opaque) POP handle with what
 * the Proxy needs to act on it later without any state of its own, so any Proxy of a cluster can take an
 * ack for a message another one delivered (RocketMQ's ReceiptHandle carries the same facts):
 *
 * | part            | meaning                                                        |
 * |-----------------|----------------------------------------------------------------|
 * | version         | `1`                                                            |
 * | brokerName      | which broker set holds the message (ack and DLQ go there)      |
 * | queueId         | the queue (ACK_MESSAGE header)                                 |
 * | queueOffset     | the offset in that queue (ACK_MESSAGE header)                  |
 * | commitLogOffset | the record's physical offset (CONSUMER_SEND_MSG_BACK for DLQ)  |
 * | brokerHandle    | the broker's handle, passed back verbatim as `extraInfo`       |
 *
 * Parts are joined by `~`, which neither a broker name (RocketMQ's name characters) nor a number nor the
 * broker's handle (ASCII without `~`, checked here) contains. A handle that does not parse is answered
 * INVALID_RECEIPT_HANDLE, never an exception.
 */
const VERSION = '1';
const SEPARATOR = '~';
const PARTS = 6;
/** Longest handle accepted back from a client. */
export const RECEIPT_HANDLE_LENGTH_MAX = 1024;

/** What a receipt handle says. */
export type ProxyReceiptHandle = {
  readonly brokerName: string;
  readonly queueId: number;
  readonly queueOffset: number;
  readonly commitLogOffset: number;
  readonly brokerHandle: string;
};

const PRINTABLE_WITHOUT_SEPARATOR = /^[\x20-\x7d]+$/;

/** Builds the client's handle. */
export function formatReceiptHandle(handle: ProxyReceiptHandle): string {
  if (!PRINTABLE_WITHOUT_SEPARATOR.test(handle.brokerHandle) || handle.brokerHandle.includes(SEPARATOR)) {
    throw new RangeError('a broker handle must be printable ASCII without "~"');
  }
  if (handle.brokerName.includes(SEPARATOR)) throw new RangeError('a broker name must not contain "~"');
  return [VERSION, handle.brokerName, handle.queueId, handle.queueOffset, handle.commitLogOffset, handle.brokerHandle].join(SEPARATOR);
}

/** Reads a client's handle; undefined when it is not one of ours. */
export function parseReceiptHandle(text: string): ProxyReceiptHandle | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > RECEIPT_HANDLE_LENGTH_MAX) return undefined;
  const parts = text.split(SEPARATOR);
  if (parts.length !== PARTS || parts[0] !== VERSION) return undefined;
  const [, brokerName, queueIdText, queueOffsetText, commitLogOffsetText, brokerHandle] = parts as [string, string, string, string, string, string];
  const queueId = wholeNumber(queueIdText);
  const queueOffset = wholeNumber(queueOffsetText);
  const commitLogOffset = wholeNumber(commitLogOffsetText);
  if (brokerName.length === 0 || queueId === undefined || queueOffset === undefined || commitLogOffset === undefined) return undefined;
  if (brokerHandle.length === 0 || !PRINTABLE_WITHOUT_SEPARATOR.test(brokerHandle)) return undefined;
  return { brokerName, queueId, queueOffset, commitLogOffset, brokerHandle };
}

function wholeNumber(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}
