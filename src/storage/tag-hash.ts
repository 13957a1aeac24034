/**
 * Java's `String.hashCode` and the tag-code rule of the consume queue.
 *
 * RocketMQ stores, in every consume queue entry, a 64-bit `tagsCode` so that the broker can filter by
 * tag without reading the CommitLog. For an ordinary message it is `tags.hashCode()` (a Java int,
 * sign-extended to long), or 0 when the message has no tags (MessageExtBrokerInner.tagsString2tagsCode).
 * The whole tags string is hashed as one: a message tagged "a||b" has the hash of "a||b", so the broker
 * can only pre-filter; clients filter again by the exact tag string.
 *
 * Delay-level messages are the exception: while they wait in the system topic SCHEDULE_TOPIC_XXXX, the
 * entry's tagsCode holds the deliver timestamp (store timestamp plus the level's delay, in ms) instead of
 * a hash (CommitLog.checkMessageAndReturnSize via ScheduleMessageService.computeDeliverTimestamp), so the
 * schedule service can find due messages by scanning the consume queue alone.
 *
 * The index service reuses the same hash for its keys, made non-negative (see index-file.ts).
 */
import { assert } from '../runtime/assert.ts';

/** The system topic whose consume queues hold delay-level messages, one queue per level. */
export const SCHEDULE_TOPIC = 'SCHEDULE_TOPIC_XXXX';

/**
 * Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` in 32-bit two's-complement arithmetic over
 * UTF-16 code units. JavaScript strings are UTF-16 too, so `charCodeAt` yields exactly Java's `char`s
 * (a character outside the BMP counts as its two surrogates in both languages).
 */
export function javaStringHashCode(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) {
    hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
  }
  assert(hash >= -0x8000_0000 && hash <= 0x7fff_ffff, 'String.hashCode stays within int32');
  return hash;
}

/** The consume queue tagsCode of an ordinary message: 0 for no tags, else the tags' Java hash. */
export function tagsCodeOf(tags: string | undefined): number {
  if (tags === undefined || tags.length === 0) return 0;
  return javaStringHashCode(tags);
}

/**
 * The tagsCode of a delay-level message waiting in SCHEDULE_TOPIC_XXXX: its deliver timestamp. Kept
 * here so that both meanings of the field are written down in one place.
 */
export function scheduleTagsCode(storeTimestampMs: number, delayMs: number): number {
  assert(Number.isSafeInteger(storeTimestampMs) && storeTimestampMs >= 0, 'store timestamp is a safe integer');
  assert(Number.isSafeInteger(delayMs) && delayMs >= 0, 'delay is a non-negative safe integer');
  const deliverMs = storeTimestampMs + delayMs;
  assert(Number.isSafeInteger(deliverMs), 'deliver timestamp is a safe integer');
  return deliverMs;
}
