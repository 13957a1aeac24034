import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerAdminInbox, ProducerChannelsAnswer } from '../../src/actors/broker-admin.ts';
import { CreateTopicRequestHeader, GetTopicConfigRequestHeader } from '../../src/net/remoting/broker-headers.ts';
import { PermName } from '../../src/net/remoting/namesrv-protocol.ts';
import { RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import { AdminHarness } from './fixtures/admin-harness.ts';

const RW = PermName.PERM_READ | PermName.PERM_WRITE;

describe('broker-admin for transactions and the Proxy', () => {
  const harnesses: AdminHarness[] = [];
  afterEach(async () => {
    for (const h of harnesses.splice(0)) await h.stop(true);
  });

  async function start(): Promise<AdminHarness> {
    const h = await AdminHarness.start();
    harnesses.push(h);
    return h;
  }

  const connectionIds = (answer: ProducerChannelsAnswer): number[] => answer.map((channel) => channel.connectionId).sort();

  it('answers producerChannels with the live connections of a producer group', async () => {
    const h = await start();
    const ask = (group: string): Promise<ProducerChannelsAnswer> => h.ask<ProducerChannelsAnswer>({ type: 'producerChannels', group });
    expect(await ask('PG')).toEqual([]);
    expect((await h.heartbeat(1, 'client-1', [], ['PG'])).code).toBe(ResponseCode.SUCCESS);
    expect((await h.heartbeat(2, 'client-2', [], ['PG', 'Other'])).code).toBe(ResponseCode.SUCCESS);
    const channels = await ask('PG');
    expect(connectionIds(channels)).toEqual([1, 2]);
    expect(channels[0]).toMatchObject({ acceptor: { slot: h.recorder.slot }, remoteAddress: expect.stringMatching(/^10\.0\.0\.9:5000[12]$/) });
    expect(connectionIds(await ask('Other'))).toEqual([2]);

    const unregistered = await h.call(RequestCode.UNREGISTER_CLIENT, { clientID: 'client-1', producerGroup: 'PG' }, undefined, { connectionId: 1 });
    expect(unregistered.code).toBe(ResponseCode.SUCCESS);
    expect(connectionIds(await ask('PG'))).toEqual([2]);
    expect(h.system.tell<BrokerAdminInbox>(h.admin, { type: 'channelClosed', channel: h.channel(2) })).toBe(true);
    expect(await ask('PG')).toEqual([]);
    expect(await ask('Other')).toEqual([]);
  });

  it('serves GET_TOPIC_CONFIG as TopicConfigAndQueueMapping JSON, attributes included', async () => {
    const h = await start();
    const create = CreateTopicRequestHeader.format({
      topic: 'TxTopic',
      defaultTopic: 'TBW102',
      readQueueNums: 4,
      writeQueueNums: 2,
      perm: RW,
      topicFilterType: 'SINGLE_TAG',
      attributes: '+message.type=TRANSACTION',
    });
    expect((await h.call(RequestCode.UPDATE_AND_CREATE_TOPIC, create)).code).toBe(ResponseCode.SUCCESS);
    const answer = await h.call(RequestCode.GET_TOPIC_CONFIG, GetTopicConfigRequestHeader.format({ topic: 'TxTopic', logical: false }));
    expect(answer.code).toBe(ResponseCode.SUCCESS);
    const text = Buffer.from(answer.body!).toString('utf8');
    expect(JSON.parse(text)).toEqual({
      attributes: { 'message.type': 'TRANSACTION' },
      order: false,
      perm: RW,
      readQueueNums: 4,
      topicFilterType: 'SINGLE_TAG',
      topicName: 'TxTopic',
      topicSysFlag: 0,
      writeQueueNums: 2,
    });
    // fastjson's field order (sorted), and no mappingDetail when there is none.
    expect(text.indexOf('"attributes"')).toBeLessThan(text.indexOf('"writeQueueNums"'));
    expect(text).not.toContain('mappingDetail');

    const plain = await h.call(RequestCode.GET_TOPIC_CONFIG, GetTopicConfigRequestHeader.format({ topic: 'TBW102' }));
    expect(JSON.parse(Buffer.from(plain.body!).toString('utf8'))).toMatchObject({ topicName: 'TBW102', attributes: {} });
  });

  it('answers GET_TOPIC_CONFIG for a missing topic with TOPIC_NOT_EXIST, and a bad header with SYSTEM_ERROR', async () => {
    const h = await start();
    const missing = await h.call(RequestCode.GET_TOPIC_CONFIG, GetTopicConfigRequestHeader.format({ topic: 'Nope' }));
    expect(missing).toMatchObject({ code: ResponseCode.TOPIC_NOT_EXIST, remark: 'No topic in this broker. topic: Nope' });
    expect(missing.body).toBeUndefined();
    const bad = await h.call(RequestCode.GET_TOPIC_CONFIG, {});
    expect(bad.code).toBe(ResponseCode.SYSTEM_ERROR);
    expect(bad.remark).toContain('topic');
  });
});
