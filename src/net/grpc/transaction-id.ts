/**
 * The transaction id the Proxy hands a 5.x producer for a half message, and reads back from EndTransaction.
 * Like RocketMQ's proxy TransactionId it carries everything END_TRANSACTION needs, so any Proxy can end a
 * transaction another Proxy started (the Proxy keeps no transaction state):
 *
 *   <brokerName>~<commitLogOffset>~<tranStateTableOffset>~<brokerTransactionId>
 *
 * - brokerName: the broker set that stored the half message (END_TRANSACTION goes to its master);
 * - commitLogOffset: the half message's CommitLog offset (EndTransactionRequestHeader.commitLogOffset);
 * - tranStateTableOffset: its queue offset in RMQ_SYS_TRANS_HALF_TOPIC (the send answer's queueOffset);
 * - brokerTransactionId: the broker's transaction id (the message's UNIQ_KEY), never containing `~`.
 * The fields are read from the right, so a broker name may itself contain `~`.
 */

const SEPARATOR = '~';
const HEX_64 = /^[0-9A-Fa-f]{16}$/;

/** The parts of a Proxy transaction id. */
export type ProxyTransactionId = {
  readonly brokerName: string;
  readonly commitLogOffset: number;
  readonly tranStateTableOffset: number;
  readonly brokerTransactionId: string;
};

/** Formats a transaction id; `brokerTransactionId` must not contain the separator. */
export function formatTransactionId(id: ProxyTransactionId): string {
  if (id.brokerTransactionId.includes(SEPARATOR)) throw new RangeError('a broker transaction id cannot contain ~');
  return [id.brokerName, id.commitLogOffset, id.tranStateTableOffset, id.brokerTransactionId].join(SEPARATOR);
}

/** Parses a transaction id, or undefined when it is not one this Proxy formats. */
export function parseTransactionId(text: string): ProxyTransactionId | undefined {
  const parts = text.split(SEPARATOR);
  if (parts.length < 4) return undefined;
  const brokerTransactionId = parts.pop()!;
  const tranStateTableOffset = nonNegativeInteger(parts.pop()!);
  const commitLogOffset = nonNegativeInteger(parts.pop()!);
  const brokerName = parts.join(SEPARATOR);
  if (brokerName.length === 0 || brokerTransactionId.length === 0) return undefined;
  if (commitLogOffset === undefined || tranStateTableOffset === undefined) return undefined;
  return { brokerName, commitLogOffset, tranStateTableOffset, brokerTransactionId };
}

/**
 * The CommitLog offset inside an offset message id (RocketMQ's MessageDecoder.createMessageId: store host
 * address, port, then the offset as 16 hex digits, for IPv4 and IPv6 alike), or undefined.
 */
export function commitLogOffsetOfMessageId(offsetMsgId: string): number | undefined {
  const tail = offsetMsgId.slice(-16);
  if (!HEX_64.test(tail)) return undefined;
  const offset = BigInt(`0x${tail}`);
  return offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : undefined;
}

function nonNegativeInteger(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}
