/**
 * The receipt handle of a popped message: the opaque ASCII string a POP consumer gets with each message
 * and gives back to ack it or to change its invisible time. RocketMQ's own handle (ReceiptHandle,
 * ExtraInfoUtil) is a space-separated list of checkpoint fields that the broker trusts as sent; ours
 * names one lease of the PopEngine exactly and carries a check that binds it to its group and topic.
 *
 * Text form, fields separated by '.', numbers in lower-case base 36 without leading zeros:
 *
 * | index | field       | meaning                                                                  |
 * |-------|-------------|--------------------------------------------------------------------------|
 * | 0     | version     | `1`                                                                      |
 * | 1     | queueId     | queue of the topic                                                       |
 * | 2     | queueOffset | the message's ConsumeQueue offset                                        |
 * | 3     | epoch       | the engine run that issued the lease (bumped, durably, at every open)    |
 * | 4     | seq         | the lease's number within that run; (epoch, seq) is the lease's nonce    |
 * | 5     | deadlineMs  | when the lease expires, ms since the epoch (the proxy can refuse an      |
 * |       |             | expired handle without routing it, as RocketMQ's ReceiptHandle.isExpired)|
 * | 6     | check       | CRC-32 of `group NUL topic NUL` + the text without this field            |
 * | 7..   | brokerName  | the issuing broker, for routing; the rest of the text (may hold '.')     |
 *
 * Example: `1.3.1a.2.k4.lxw7m2p0.1ynd3r.broker-a` (about 40 characters).
 *
 * Invariants: encode then decode gives the same fields back; a text decodes only if it is exactly what
 * encode writes for its fields (canonical), so one lease has exactly one handle text. Decoding never
 * throws: anything else is a refusal with RocketMQ's code INVALID_RECEIPT_HANDLE. The check is not a
 * secret (RocketMQ's handles have none either; access control is the proxy's); it catches handles of
 * another group or topic, truncated or edited handles, and made-up ones.
 */
import { crc32 } from 'node:zlib';
import { assert } from '../runtime/assert.ts';

/** The version field of the handles this file writes. */
export const RECEIPT_HANDLE_VERSION = '1';
/** Longest handle text accepted; longer input is refused before it is parsed. */
export const RECEIPT_HANDLE_CHARS_MAX = 320;
/** Longest broker name a handle carries (BrokerConfig.brokerName is a short ASCII name). */
export const BROKER_NAME_CHARS_MAX = 255;

const SEPARATOR = '.';
const NUMERIC_FIELDS = 7;
const BASE = 36;
const NUMBER_TEXT = /^(0|[1-9a-z][0-9a-z]{0,10})$/;
const BROKER_NAME_TEXT = /^[\x21-\x7e]+$/;

/** The fields of a receipt handle. */
export type ReceiptHandleFields = Readonly<{
  brokerName: string;
  queueId: number;
  queueOffset: number;
  epoch: number;
  seq: number;
  deadlineMs: number;
}>;

/** A decoded handle: its fields and the check it carries (verify with `receiptHandleMatches`). */
export type DecodedReceiptHandle = ReceiptHandleFields & Readonly<{ check: number }>;

/** Why a handle was refused; stable strings for logs and tests (the client only sees the code). */
export type ReceiptHandleRefusalReason =
  | 'MALFORMED'
  | 'FOREIGN'
  | 'NOT_IN_FLIGHT'
  | 'STALE'
  | 'EXPIRED';

/** A refused handle: RocketMQ's code INVALID_RECEIPT_HANDLE and why. */
export type ReceiptHandleRefusal = Readonly<{ ok: false; code: 'INVALID_RECEIPT_HANDLE'; reason: ReceiptHandleRefusalReason }>;

/** The refusal for `reason`. */
export function invalidReceiptHandle(reason: ReceiptHandleRefusalReason): ReceiptHandleRefusal {
  return { ok: false, code: 'INVALID_RECEIPT_HANDLE', reason };
}

/** Whether `name` can be carried in a handle (printable ASCII, no space, bounded length). */
export function isValidBrokerName(name: string): boolean {
  return name.length > 0 && name.length <= BROKER_NAME_CHARS_MAX && BROKER_NAME_TEXT.test(name);
}

/** Writes the handle of a lease of `group` on `topic`. */
export function encodeReceiptHandle(fields: ReceiptHandleFields, group: string, topic: string): string {
  assert(isValidBrokerName(fields.brokerName), () => `broker name not valid in a handle: ${fields.brokerName}`);
  for (const value of [fields.queueId, fields.queueOffset, fields.epoch, fields.seq, fields.deadlineMs]) {
    assert(Number.isSafeInteger(value) && value >= 0, () => `handle field out of range: ${value}`);
  }
  const head = [RECEIPT_HANDLE_VERSION, fields.queueId, fields.queueOffset, fields.epoch, fields.seq, fields.deadlineMs]
    .map((value) => (typeof value === 'number' ? value.toString(BASE) : value))
    .join(SEPARATOR);
  const check = handleCheck(group, topic, head, fields.brokerName);
  const text = `${head}${SEPARATOR}${check.toString(BASE)}${SEPARATOR}${fields.brokerName}`;
  assert(text.length <= RECEIPT_HANDLE_CHARS_MAX, 'handle longer than RECEIPT_HANDLE_CHARS_MAX');
  return text;
}

/** Decodes a handle's text; never throws: anything that encode did not write is MALFORMED. */
export function decodeReceiptHandle(text: unknown): { ok: true; handle: DecodedReceiptHandle } | ReceiptHandleRefusal {
  if (typeof text !== 'string' || text.length === 0 || text.length > RECEIPT_HANDLE_CHARS_MAX) return invalidReceiptHandle('MALFORMED');
  const numbers: number[] = [];
  let from = 0;
  for (let field = 0; field < NUMERIC_FIELDS; field++) {
    const end = text.indexOf(SEPARATOR, from);
    if (end < 0) return invalidReceiptHandle('MALFORMED');
    const part = text.slice(from, end);
    if (!NUMBER_TEXT.test(part)) return invalidReceiptHandle('MALFORMED');
    const value = Number.parseInt(part, BASE);
    if (!Number.isSafeInteger(value)) return invalidReceiptHandle('MALFORMED');
    numbers.push(value);
    from = end + 1;
  }
  const brokerName = text.slice(from);
  const [version, queueId, queueOffset, epoch, seq, deadlineMs, check] = numbers as [number, number, number, number, number, number, number];
  if (String(version) !== RECEIPT_HANDLE_VERSION || !isValidBrokerName(brokerName) || check > 0xffff_ffff) {
    return invalidReceiptHandle('MALFORMED');
  }
  return { ok: true, handle: { brokerName, queueId, queueOffset, epoch, seq, deadlineMs, check } };
}

/** Whether a decoded handle was issued for `group` on `topic` (its check matches). */
export function receiptHandleMatches(handle: DecodedReceiptHandle, group: string, topic: string): boolean {
  const head = [RECEIPT_HANDLE_VERSION, handle.queueId, handle.queueOffset, handle.epoch, handle.seq, handle.deadlineMs]
    .map((value) => (typeof value === 'number' ? value.toString(BASE) : value))
    .join(SEPARATOR);
  return handleCheck(group, topic, head, handle.brokerName) === handle.check;
}

function handleCheck(group: string, topic: string, head: string, brokerName: string): number {
  return crc32(`${group}\u0000${topic}\u0000${head}${SEPARATOR}${brokerName}`);
}
