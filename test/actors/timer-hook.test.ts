import { describe, expect, it } from 'vitest';
import {
  JAVA_LONG_MAX_TEXT,
  TIMER_TOPIC,
  applyTimer,
  checkRecall,
  decodeRecallHandle,
  encodeRecallHandle,
  parseJavaLong,
  recallHandleFor,
  recallMarker,
  recallResponseFor,
  type RecallCheckInput,
  type TimerSettings,
} from '../../src/actors/timer-hook.ts';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { PermName } from '../../src/net/remoting/namesrv-protocol.ts';
import { MessageSysFlag, decodeMessageProperties } from '../../src/storage/message-record.ts';

const NOW = 1_700_000_000_000;
const SETTINGS: TimerSettings = { timerWheelEnable: true, timerPrecisionMs: 1000, timerMaxDelaySec: 259_200 };

function props(entries: Record<string, string>): Map<string, string> {
  return new Map(Object.entries({ UNIQ_KEY: 'U1', ...entries }));
}

describe('applyTimer (HookUtils.transformTimerMessage)', () => {
  it('moves a future timer to rmq_sys_wheel_timer queue 0, in the slot below its deliver time', () => {
    const properties = props({ TIMER_DELIVER_MS: String(NOW + 1_500) });
    expect(applyTimer(properties, 'TopicA', 3, NOW, SETTINGS)).toEqual({ ok: true, topic: TIMER_TOPIC, queueId: 0, timer: 'wheel' });
    expect(Object.fromEntries(properties)).toMatchObject({ TIMER_OUT_MS: String(NOW + 1_000), REAL_TOPIC: 'TopicA', REAL_QID: '3', TIMER_DELIVER_MS: String(NOW + 1_500) });
    // On a slot boundary the slot before is taken: the slot is due at its time + one step, exactly then.
    const boundary = props({ TIMER_DELIVER_MS: String(NOW + 2_000) });
    applyTimer(boundary, 'TopicA', 0, NOW, SETTINGS);
    expect(boundary.get('TIMER_OUT_MS')).toBe(String(NOW + 1_000));
  });

  it('reads TIMER_DELAY_SEC first, then TIMER_DELAY_MS, then TIMER_DELIVER_MS', () => {
    const all = props({ TIMER_DELAY_SEC: '3', TIMER_DELAY_MS: '7000', TIMER_DELIVER_MS: String(NOW + 9_000) });
    applyTimer(all, 'TopicA', 0, NOW + 250, SETTINGS);
    expect(all.get('TIMER_OUT_MS')).toBe(String(NOW + 3_000));
    const ms = props({ TIMER_DELAY_MS: '+7000', TIMER_DELIVER_MS: String(NOW + 9_000) });
    applyTimer(ms, 'TopicA', 0, NOW, SETTINGS);
    expect(ms.get('TIMER_OUT_MS')).toBe(String(NOW + 6_000));
  });

  it('leaves a timer whose time has come in its topic, untouched, and refuses a delete marker then', () => {
    const past = props({ TIMER_DELIVER_MS: String(NOW) });
    expect(applyTimer(past, 'TopicA', 1, NOW, SETTINGS)).toEqual({ ok: true, topic: 'TopicA', queueId: 1, timer: 'immediate' });
    expect(past.has('TIMER_OUT_MS')).toBe(false);
    expect(applyTimer(props({ TIMER_DELAY_SEC: '-5' }), 'TopicA', 1, NOW, SETTINGS)).toMatchObject({ timer: 'immediate' });
    expect(applyTimer(props({ TIMER_DELIVER_MS: String(NOW - 1), TIMER_DEL_UNIQKEY: 'TopicA+U1' }), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({
      ok: false,
      status: 'WHEEL_TIMER_MSG_ILLEGAL',
      code: ResponseCode.MESSAGE_ILLEGAL,
    });
  });

  it('refuses a deliver time beyond timerMaxDelaySec or that does not parse, with SendMessageProcessor\'s answer', () => {
    const beyond = applyTimer(props({ TIMER_DELAY_MS: String(259_200_001) }), 'TopicA', 0, NOW, SETTINGS);
    expect(beyond).toEqual({
      ok: false,
      status: 'WHEEL_TIMER_MSG_ILLEGAL',
      code: ResponseCode.MESSAGE_ILLEGAL,
      remark: 'timer message illegal, the delay time should not be bigger than the max delay 259200000ms; or if set del msg, the delay time should be bigger than the current time',
    });
    expect(applyTimer(props({ TIMER_DELAY_MS: String(259_200_000) }), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({ ok: true, timer: 'wheel' });
    for (const bad of ['1.5', 'soon', '', '9223372036854775808']) {
      expect(applyTimer(props({ TIMER_DELIVER_MS: bad }), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({ ok: false, status: 'WHEEL_TIMER_MSG_ILLEGAL' });
    }
    // Java long arithmetic: a huge TIMER_DELAY_SEC times 1000 wraps negative, so the message is due now.
    expect(applyTimer(props({ TIMER_DELAY_SEC: '9223372036854775' }), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({ ok: true, timer: 'immediate' });
  });

  it('refuses timers when the wheel is off, and lets a delay level win over timer properties', () => {
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, { ...SETTINGS, timerWheelEnable: false })).toEqual({
      ok: false,
      status: 'WHEEL_TIMER_NOT_ENABLE',
      code: ResponseCode.SYSTEM_ERROR,
      remark: 'accurate timer message is not enabled, timerWheelEnable is false',
    });
    const leveled = props({ DELAY: '3', TIMER_DELAY_SEC: '5', TIMER_DELAY_MS: '5', TIMER_DELIVER_MS: '5' });
    expect(applyTimer(leveled, 'TopicA', 2, NOW, { ...SETTINGS, timerWheelEnable: false })).toEqual({ ok: true, topic: 'TopicA', queueId: 2, timer: 'none' });
    expect([...leveled.keys()].sort()).toEqual(['DELAY', 'UNIQ_KEY']);
    // An unparsable level is left to the delay-level hook.
    expect(applyTimer(props({ DELAY: 'x', TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({ timer: 'none' });
  });

  it('leaves alone: plain messages, messages with TIMER_OUT_MS, the timer topic itself, prepared transactions', () => {
    expect(applyTimer(props({}), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({ ok: true, topic: 'TopicA', timer: 'none' });
    expect(applyTimer(props({ TIMER_OUT_MS: '1', TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, SETTINGS)).toMatchObject({ topic: 'TopicA', timer: 'none' });
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), TIMER_TOPIC, 0, NOW, SETTINGS)).toMatchObject({ topic: TIMER_TOPIC, timer: 'none' });
    const prepared = props({ TIMER_DELAY_SEC: '5' });
    expect(applyTimer(prepared, 'TopicA', 0, NOW, SETTINGS, MessageSysFlag.TRANSACTION_PREPARED_TYPE)).toMatchObject({ topic: 'TopicA', timer: 'none' });
    expect(prepared.has('TIMER_OUT_MS')).toBe(false);
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, SETTINGS, MessageSysFlag.TRANSACTION_COMMIT_TYPE)).toMatchObject({ timer: 'wheel' });
  });

  it('applies flow control only past timerCongestNumEachSlot, as isReject does', () => {
    const congested = (num: number, random: number): TimerSettings => ({
      ...SETTINGS,
      congestion: { timerCongestNumEachSlot: 100, numInSlot: () => num, random: () => random },
    });
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, congested(100, 0.999))).toMatchObject({ ok: true });
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, congested(200, 0))).toMatchObject({ ok: false, status: 'WHEEL_TIMER_FLOW_CONTROL', code: ResponseCode.SYSTEM_ERROR });
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, congested(150, 0.9))).toMatchObject({ ok: false, status: 'WHEEL_TIMER_FLOW_CONTROL' });
    expect(applyTimer(props({ TIMER_DELAY_SEC: '5' }), 'TopicA', 0, NOW, congested(150, 0.1))).toMatchObject({ ok: true });
  });
});

describe('recall handles (RecallMessageHandle.HandleV1)', () => {
  it('encodes as java.util.Base64.getUrlEncoder does, padding included, and decodes back', () => {
    const handle = encodeRecallHandle('TopicA', 'broker-a', '1700000001001', 'U1');
    expect(handle).toBe('djEgVG9waWNBIGJyb2tlci1hIDE3MDAwMDAwMDEwMDEgVTE=');
    expect(decodeRecallHandle(handle)).toEqual({ version: 'v1', topic: 'TopicA', brokerName: 'broker-a', timestampStr: '1700000001001', messageId: 'U1' });
    // URL alphabet (- and _), UTF-8, no padding needed.
    expect(decodeRecallHandle('djEgVMOpcGljbyBicm9rZXItYSAxNyBpZD8-')).toMatchObject({ topic: 'Tépico', messageId: 'id?>' });
  });

  it('refuses what Java refuses: empty, foreign alphabet, wrong version, too few fields', () => {
    const invalid = { error: 'recall handle is invalid' };
    expect(decodeRecallHandle(undefined)).toEqual(invalid);
    expect(decodeRecallHandle('')).toEqual(invalid);
    expect(decodeRecallHandle('djEgVG9waWNB+IGJy')).toEqual(invalid);
    expect(decodeRecallHandle('djEgV')).toEqual(invalid);
    expect(decodeRecallHandle(Buffer.from('v2 a b 1 c').toString('base64url'))).toEqual(invalid);
    expect(decodeRecallHandle(Buffer.from('v1 a b 1').toString('base64url'))).toEqual(invalid);
    expect(decodeRecallHandle(Buffer.from('v1 a b 1 c d').toString('base64url'))).toMatchObject({ messageId: 'c' });
  });

  it('is attached to a send stored in the wheel: TIMER_OUT_MS + 1, the real topic and the UNIQ_KEY', () => {
    const properties = props({ TIMER_DELAY_SEC: '10' });
    applyTimer(properties, 'TopicA', 1, NOW + 300, SETTINGS);
    const handle = recallHandleFor(properties, 'broker-a');
    expect(decodeRecallHandle(handle)).toEqual({ version: 'v1', topic: 'TopicA', brokerName: 'broker-a', timestampStr: String(NOW + 10_001), messageId: 'U1' });
    expect(recallHandleFor(props({}), 'broker-a')).toBeUndefined();
    expect(recallHandleFor(props({ TIMER_OUT_MS: '5', REAL_TOPIC: '%RETRY%G' }), 'broker-a')).toBeUndefined();
    // Java's String.join writes a missing UNIQ_KEY as "null".
    expect(decodeRecallHandle(recallHandleFor(new Map([['TIMER_OUT_MS', '5'], ['REAL_TOPIC', 'T']]), 'b'))).toMatchObject({ messageId: 'null', timestampStr: '6' });
  });
});

describe('RECALL_MESSAGE (RecallMessageProcessor)', () => {
  const handle = encodeRecallHandle('TopicA', 'broker-a', String(NOW + 10_001), 'U1');
  const input: RecallCheckInput = {
    recallMessageEnable: true,
    brokerName: 'broker-a',
    topic: 'TopicA',
    recallHandle: handle,
    topicExists: true,
    nowMs: NOW,
    timerMaxDelaySec: 259_200,
  };

  it('checks in RocketMQ\'s order, with its codes and remarks', () => {
    expect(checkRecall(input)).toMatchObject({ ok: true, handle: { topic: 'TopicA', messageId: 'U1' } });
    expect(checkRecall({ ...input, recallMessageEnable: false, topicExists: false })).toEqual({ ok: false, code: ResponseCode.NO_PERMISSION, remark: 'recall failed, operation is forbidden' });
    expect(checkRecall({ ...input, slave: true })).toMatchObject({ code: ResponseCode.SLAVE_NOT_AVAILABLE });
    expect(checkRecall({ ...input, startAcceptSendRequestTimeStampMs: NOW + 1 })).toMatchObject({ code: ResponseCode.SERVICE_NOT_AVAILABLE });
    expect(checkRecall({ ...input, brokerPermission: PermName.PERM_READ })).toMatchObject({ ok: true });
    expect(checkRecall({ ...input, brokerPermission: PermName.PERM_READ, allowRecallWhenBrokerNotWriteable: false })).toMatchObject({ code: ResponseCode.SERVICE_NOT_AVAILABLE });
    expect(checkRecall({ ...input, topicExists: false, recallHandle: 'bad!' })).toEqual({ ok: false, code: ResponseCode.TOPIC_NOT_EXIST, remark: 'recall failed, the topic[TopicA] not exist' });
    expect(checkRecall({ ...input, recallHandle: 'bad!' })).toEqual({ ok: false, code: ResponseCode.ILLEGAL_OPERATION, remark: 'recall handle is invalid' });
    expect(checkRecall({ ...input, topic: 'TopicB' })).toEqual({ ok: false, code: ResponseCode.ILLEGAL_OPERATION, remark: 'recall failed, topic not match' });
    expect(checkRecall({ ...input, brokerName: 'broker-b' })).toEqual({ ok: false, code: ResponseCode.ILLEGAL_OPERATION, remark: 'recall failed, broker service not available' });
  });

  it('refuses a handle whose time has passed (already delivered) or lies beyond timerMaxDelaySec', () => {
    const invalid = { ok: false, code: ResponseCode.ILLEGAL_OPERATION, remark: 'recall failed, timestamp invalid' };
    expect(checkRecall({ ...input, nowMs: NOW + 10_000 })).toMatchObject({ ok: true });
    expect(checkRecall({ ...input, nowMs: NOW + 10_001 })).toEqual(invalid);
    expect(checkRecall({ ...input, timerMaxDelaySec: 10 })).toEqual(invalid);
    expect(checkRecall({ ...input, recallHandle: encodeRecallHandle('TopicA', 'broker-a', 'soon', 'U1') })).toEqual(invalid);
  });

  it('builds a delete marker that lands in the slot of the message it recalls', () => {
    for (const precision of [1, 100, 1000]) {
      const settings = { ...SETTINGS, timerPrecisionMs: precision };
      const original = props({ TIMER_DELAY_MS: '12345' });
      applyTimer(original, 'TopicA', 2, NOW, settings);
      const check = checkRecall({ ...input, recallHandle: recallHandleFor(original, 'broker-a'), nowMs: NOW + 5_000 });
      expect(check.ok).toBe(true);
      if (!check.ok) return;
      const marker = recallMarker(check.handle, 'ProducerA', NOW + 5_000, settings);
      expect(marker).toMatchObject({ topic: TIMER_TOPIC, queueId: 0, bornTimestampMs: NOW + 5_000, msgId: 'U1' });
      if (!('properties' in marker)) return;
      expect(Buffer.from(marker.body).toString()).toBe('0');
      // Written with an empty TRACE_CONTEXT, which Java's decoder (and ours) then skips.
      expect(marker.properties).toContain('TRACE_CONTEXT\u0001\u0002');
      const stored = decodeMessageProperties(marker.properties);
      expect(Object.fromEntries(stored)).toMatchObject({
        TAGS: '_RECALL_TAG_',
        TIMER_DEL_UNIQKEY: 'TopicA+U1',
        UNIQ_KEY: 'U1',
        PGROUP: 'ProducerA',
        REAL_TOPIC: 'TopicA',
        REAL_QID: '0',
        TIMER_OUT_MS: original.get('TIMER_OUT_MS'),
      });
    }
    // The time passed between check and put: the transform refuses the marker.
    const late = checkRecall(input);
    if (late.ok) expect(recallMarker(late.handle, undefined, NOW + 20_000, SETTINGS)).toMatchObject({ ok: false, status: 'WHEEL_TIMER_MSG_ILLEGAL' });
  });

  it('answers SUCCESS with the msgId for a stored marker, SYSTEM_ERROR otherwise', () => {
    expect(recallResponseFor('PUT_OK', 'U1')).toEqual({ code: ResponseCode.SUCCESS, msgId: 'U1' });
    expect(recallResponseFor('FLUSH_DISK_TIMEOUT', 'U1')).toEqual({ code: ResponseCode.SUCCESS, msgId: 'U1' });
    expect(recallResponseFor('SERVICE_NOT_AVAILABLE', 'U1')).toEqual({ code: ResponseCode.SYSTEM_ERROR, remark: 'recall failed, execute error' });
    expect(recallResponseFor('WHEEL_TIMER_MSG_ILLEGAL', 'U1')).toMatchObject({ code: ResponseCode.SYSTEM_ERROR });
  });

  it("parses Java longs as Long.parseLong does", () => {
    expect(parseJavaLong(JAVA_LONG_MAX_TEXT)).toBe(2n ** 63n - 1n);
    expect(parseJavaLong('-9223372036854775808')).toBe(-(2n ** 63n));
    expect(parseJavaLong('9223372036854775808')).toBeUndefined();
    expect(parseJavaLong(' 1')).toBeUndefined();
  });
});
