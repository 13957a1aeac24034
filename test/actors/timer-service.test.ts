import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { JAVA_LONG_MAX_TEXT, TIMER_TOPIC, recallHandleFor } from '../../src/actors/timer-hook.ts';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { timerPaths } from '../../src/storage/timer-format.ts';
import { TimerHarness, type TimerHarnessOptions } from './fixtures/timer-harness.ts';

const T0 = 1_700_000_000_000;

describe('timer service', () => {
  let harness: TimerHarness | undefined;
  const dirs = new Set<string>();
  afterEach(async () => {
    await harness?.shutdown();
    harness = undefined;
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    dirs.clear();
  });

  async function start(options: TimerHarnessOptions = {}): Promise<TimerHarness> {
    harness = await TimerHarness.start(options);
    dirs.add(harness.broker.dir);
    return harness;
  }

  async function restart(h: TimerHarness, options: TimerHarnessOptions): Promise<TimerHarness> {
    await h.shutdown();
    harness = undefined;
    return start({ ...options, dir: h.broker.dir });
  }

  it('delivers a timer to its real topic and queue at its deliver time, not a tick earlier', async () => {
    const clock = new ManualClock(T0);
    const h = await start({ clock });
    const onBoundary = await h.send('on-boundary', { UNIQ_KEY: 'U1', TIMER_DELIVER_MS: String(T0 + 3_000) }, T0);
    expect(onBoundary.destination).toMatchObject({ topic: TIMER_TOPIC, timer: 'wheel' });
    await h.send('between', { UNIQ_KEY: 'U2', TIMER_DELAY_MS: '3500' }, T0);
    await h.advance(clock, 2_900);
    expect(await h.delivered()).toEqual([]);
    await h.advance(clock, 100);
    expect(clock.nowMs()).toBe(T0 + 3_000);
    expect(await h.delivered()).toEqual(['on-boundary']);
    await h.advance(clock, 900);
    expect(await h.delivered()).toEqual(['on-boundary']);
    await h.advance(clock, 100);
    const views = (await h.broker.read('TopicA', 1)).views;
    expect(views.map((view) => [Buffer.from(view.body).toString(), view.storeTimestampMs - T0])).toEqual([['on-boundary', 3_000], ['between', 4_000]]);
    const [first] = views;
    expect(first).toMatchObject({ topic: 'TopicA', queueId: 1, flag: 7, bornTimestampMs: T0 - 1 });
    const properties = Object.fromEntries(first!.propertiesMap());
    expect(properties).toMatchObject({
      UNIQ_KEY: 'U1',
      TAGS: 'TagA',
      TIMER_OUT_MS: String(T0 + 2_000),
      TIMER_DELIVER_MS: String(T0 + 3_000),
      TIMER_ENQUEUE_MS: String(T0),
      TIMER_DEQUEUE_MS: String(T0 + 3_000),
    });
    expect(properties).not.toHaveProperty('REAL_TOPIC');
    expect(properties).not.toHaveProperty('REAL_QID');
    expect(await h.stats()).toMatchObject({ enqueued: 2, delivered: 2, recalled: 0, skipped: 0 });
  });

  it('delivers a deliver time in the past at once, and a timer whose slot has passed with the next slot', async () => {
    const clock = new ManualClock(T0);
    const h = await start({ clock });
    const past = await h.send('past', { UNIQ_KEY: 'P', TIMER_DELIVER_MS: String(T0 - 60_000) }, T0);
    expect(past.destination).toEqual({ ok: true, topic: 'TopicA', queueId: 1, timer: 'immediate' });
    expect(await h.delivered()).toEqual(['past']);
    await h.advance(clock, 5_000);
    // A timer message that reaches the queue after its slot was dequeued (a late enqueue).
    await h.send('late', { UNIQ_KEY: 'L', TIMER_DELIVER_MS: String(T0 + 2_000) }, T0 - 8_000);
    await h.advance(clock, 900);
    expect(await h.delivered()).toEqual(['past']);
    await h.advance(clock, 100);
    const views = (await h.broker.read('TopicA', 1)).views;
    expect(views.map((view) => Buffer.from(view.body).toString())).toEqual(['past', 'late']);
    expect(views[1]!.propertiesMap().get('TIMER_ENQUEUE_MS')).toBe(JAVA_LONG_MAX_TEXT);
    expect(views[1]!.storeTimestampMs).toBe(T0 + 6_000);
    expect(await h.stats()).toMatchObject({ late: 1, delivered: 1 });
  });

  it('drops a timer recalled before its time; refuses a recall after delivery', async () => {
    const clock = new ManualClock(T0);
    const h = await start({ clock });
    const kept = await h.send('kept', { UNIQ_KEY: 'K', TIMER_DELAY_SEC: '5' }, T0);
    const gone = await h.send('gone', { UNIQ_KEY: 'G', TIMER_DELAY_SEC: '5' }, T0);
    await h.advance(clock, 2_000);
    const recalled = await h.recall(recallHandleFor(gone.properties, 'broker-a'), clock.nowMs());
    expect(recalled).toEqual({ code: ResponseCode.SUCCESS, msgId: 'G' });
    await h.advance(clock, 3_000);
    expect(await h.delivered()).toEqual(['kept']);
    expect(await h.stats()).toMatchObject({ delivered: 1, recalled: 1, markersIgnored: 0 });
    // The marker itself never reaches the topic.
    for (let queueId = 0; queueId < 4; queueId++) expect((await h.broker.read('TopicA', queueId)).views.every((view) => !view.propertiesMap().has('TIMER_DEL_UNIQKEY'))).toBe(true);
    const tooLate = await h.recall(recallHandleFor(kept.properties, 'broker-a'), clock.nowMs());
    expect(tooLate).toEqual({ code: ResponseCode.ILLEGAL_OPERATION, remark: 'recall failed, timestamp invalid' });
    await h.advance(clock, 2_000);
    expect(await h.delivered()).toEqual(['kept']);
  });

  it('rolls a timer beyond the roll window through the timer topic and still delivers it on time', async () => {
    const clock = new ManualClock(T0);
    const h = await start({ clock, timer: { timerRollWindowSlot: 8 } });
    await h.send('far', { UNIQ_KEY: 'F', TIMER_DELAY_SEC: '20' }, T0);
    await h.advance(clock, 19_900, 500);
    expect(await h.delivered()).toEqual([]);
    const rolledStats = await h.stats();
    expect(rolledStats.rolled).toBeGreaterThanOrEqual(2);
    expect(clock.nowMs()).toBe(T0 + 19_900);
    await h.advance(clock, 100);
    const [view] = (await h.broker.read('TopicA', 1)).views;
    expect(view!.storeTimestampMs).toBe(T0 + 20_000);
    expect(Number(view!.propertiesMap().get('TIMER_ROLL_TIMES'))).toBe(rolledStats.rolled);
  });

  it('retries a re-put the store refuses for now, without losing or repeating it', async () => {
    const clock = new ManualClock(T0);
    const h = await start({ clock, refusals: 2 });
    await h.send('retried', { UNIQ_KEY: 'R', TIMER_DELAY_SEC: '1' }, T0);
    await h.advance(clock, 1_000);
    expect(await h.delivered()).toEqual([]);
    expect((await h.stats()).failedPuts).toBe(1);
    await h.advance(clock, 300);
    expect(await h.delivered()).toEqual(['retried']);
    expect(await h.stats()).toMatchObject({ failedPuts: 2, delivered: 1 });
  });

  it('keeps pending timers and delivered progress across a restart', async () => {
    const clock = new ManualClock(T0);
    let h = await start({ clock });
    await h.send('soon', { UNIQ_KEY: 'S', TIMER_DELAY_SEC: '1' }, T0);
    await h.send('later', { UNIQ_KEY: 'L', TIMER_DELAY_SEC: '30' }, T0);
    await h.advance(clock, 1_000);
    expect(await h.delivered()).toEqual(['soon']);
    for (let round = 0; round < 20 && (await h.stats()).store.confirmedReadTimeMs <= T0 + 1_000; round++) await h.advance(clock, 500);
    expect((await h.stats()).store.confirmedReadTimeMs).toBeGreaterThan(T0 + 1_000);
    h = await restart(h, { clock });
    expect((await h.stats()).store).toMatchObject({ pendingUnits: 1, queueOffset: 2 });
    await h.advance(clock, T0 + 29_900 - clock.nowMs(), 500);
    expect(await h.delivered()).toEqual(['soon']);
    await h.advance(clock, 100);
    expect(await h.delivered()).toEqual(['soon', 'later']);
  });

  it('re-delivers a slot whose progress the checkpoint did not record (a crash: at least once)', async () => {
    const clock = new ManualClock(T0);
    let h = await start({ clock });
    await h.send('twice', { UNIQ_KEY: 'T', TIMER_DELAY_SEC: '1' }, T0);
    await h.advance(clock, 600);
    const file = timerPaths(h.broker.dir).checkpointFile;
    const before = fs.readFileSync(file);
    await h.advance(clock, 400);
    expect(await h.delivered()).toEqual(['twice']);
    await h.shutdown();
    harness = undefined;
    // As if the process had died before timercheck moved past the slot.
    fs.writeFileSync(file, before);
    h = await start({ clock, dir: h.broker.dir });
    await h.advance(clock, 200);
    expect(await h.delivered()).toEqual(['twice', 'twice']);
  });

  it('runs on the store pool beside a writer on its own thread, never delivering early', async () => {
    const h = await start({ timer: { timerPrecisionMs: 100 } });
    const sentAtMs = Date.now();
    const sent = await h.send('threads', { UNIQ_KEY: 'X', TIMER_DELIVER_MS: String(sentAtMs + 300) }, sentAtMs);
    expect(sent.destination).toMatchObject({ timer: 'wheel' });
    const [view] = await h.broker.readAtLeast('TopicA', 1, 1);
    expect(view!.storeTimestampMs).toBeGreaterThanOrEqual(sentAtMs + 300);
    expect(Buffer.from(view!.body).toString()).toBe('threads');
  });
});
