/**
 * Topic message types (RocketMQ's TopicMessageType and the Proxy's DefaultTopicMessageTypeValidator).
 *
 * A topic declares what it carries with the attribute `message.type` (set as `+message.type=FIFO` through
 * UPDATE_AND_CREATE_TOPIC): NORMAL (the default when absent), FIFO, DELAY, TRANSACTION or MIXED. The Proxy
 * reads it from a broker (GET_TOPIC_CONFIG), answers QueryRoute with the matching accept_message_types (the
 * official clients refuse locally to send another type), and checks every SendMessage: a message's type
 * comes from its properties (TRAN_MSG=true: TRANSACTION; a delay level or timer property: DELAY; a message
 * group: FIFO; else NORMAL), and must equal the topic's unless the topic is MIXED; otherwise the answer is
 * MESSAGE_PROPERTY_CONFLICT_WITH_TYPE. Retry and DLQ topics are not checked.
 *
 * A topic that does not exist yet is UNSPECIFIED in RocketMQ (which then refuses every send). This Proxy
 * lets producers auto-create topics when the broker allows it (README, Choices and limits), so a missing
 * topic is treated as what the broker will create: NORMAL.
 */
import { MessageConst } from '../remoting/message-batch.ts';
import { MessageType } from './enums.ts';

/** RocketMQ's TopicMessageType names. */
export type TopicMessageType = 'UNSPECIFIED' | 'NORMAL' | 'FIFO' | 'DELAY' | 'TRANSACTION' | 'MIXED';

/** The topic attribute that holds the type. */
export const MESSAGE_TYPE_ATTRIBUTE = 'message.type';

const TOPIC_TYPES: ReadonlySet<string> = new Set(['UNSPECIFIED', 'NORMAL', 'FIFO', 'DELAY', 'TRANSACTION', 'MIXED']);

/** The type a topic's attributes declare (NORMAL when none; UNSPECIFIED for a value RocketMQ has no name for). */
export function topicMessageTypeOf(attributes: Readonly<Record<string, string>> | undefined): TopicMessageType {
  const value = attributes?.[MESSAGE_TYPE_ATTRIBUTE];
  if (value === undefined) return 'NORMAL';
  return TOPIC_TYPES.has(value) ? (value as TopicMessageType) : 'UNSPECIFIED';
}

/** TopicMessageType.parseFromMessageProperty. */
export function messageTypeOfProperties(properties: ReadonlyMap<string, string>): TopicMessageType {
  if (properties.get(MessageConst.PROPERTY_TRANSACTION_PREPARED) === 'true') return 'TRANSACTION';
  if (
    properties.has(MessageConst.PROPERTY_DELAY_TIME_LEVEL) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELIVER_MS) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELAY_SEC) ||
    properties.has(MessageConst.PROPERTY_TIMER_DELAY_MS)
  ) {
    return 'DELAY';
  }
  if (properties.has(MessageConst.PROPERTY_SHARDING_KEY)) return 'FIFO';
  return 'NORMAL';
}

/** DefaultTopicMessageTypeValidator.validate: the refusal text, or undefined when the message fits. */
export function messageTypeConflict(topicType: TopicMessageType, messageType: TopicMessageType): string | undefined {
  if (messageType !== 'UNSPECIFIED' && (messageType === topicType || topicType === 'MIXED')) return undefined;
  return `TopicMessageType validate failed, the expected type is ${topicType}, but actual type is ${messageType}`;
}

/** RouteActivity.parseTopicMessageType: the accept_message_types of the topic's queues. */
export function acceptMessageTypesOf(topicType: TopicMessageType): MessageType[] {
  switch (topicType) {
    case 'NORMAL':
      return [MessageType.NORMAL];
    case 'FIFO':
      return [MessageType.FIFO];
    case 'DELAY':
      return [MessageType.DELAY];
    case 'TRANSACTION':
      return [MessageType.TRANSACTION];
    case 'MIXED':
      return [MessageType.NORMAL, MessageType.FIFO, MessageType.DELAY, MessageType.TRANSACTION];
    case 'UNSPECIFIED':
      return [MessageType.MESSAGE_TYPE_UNSPECIFIED];
  }
}
