// Example tests of the metadata files: layout, atomic persist with .bak, RocketMQ's .bak fallback, the
// corrupt-file error, RocketMQ-shaped documents (fastjson's unquoted keys included), dataVersion, bounds.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConsumerOffsetTable,
  JsonConfigFile,
  MetadataError,
  MetadataErrorCode,
  METADATA_DEFAULTS,
  SubscriptionGroupTable,
  TopicConfigTable,
  parseFastjson,
  storePaths,
  topicsDocumentSchema,
} from '../../src/storage/metadata-store.ts';
import { type StorageFs, nodeStorageFs } from '../../src/storage/storage-fs.ts';

const tempDirs: string[] = [];

afterEach(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh store root (removed after the test) and its layout. */
function tempStore(): ReturnType<typeof storePaths> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rocketmq-ts-metadata-'));
  tempDirs.push(dir);
  return storePaths(dir);
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** A clock the test moves by hand. */
function manualClock(startMs: number): { nowMs: () => number; advance: (ms: number) => void } {
  let now = startMs;
  return { nowMs: () => now, advance: (ms) => (now += ms) };
}

function topicTable(file: string, options: { fs?: StorageFs; nowMs?: () => number; entriesMax?: number } = {}) {
  return new TopicConfigTable({
    fs: options.fs ?? nodeStorageFs,
    filePath: file,
    nowMs: options.nowMs ?? (() => 1_700_000_000_000),
    entriesMax: options.entriesMax ?? 1000,
  });
}

function offsetTable(file: string, entriesMax: number, nowMs = () => 1_700_000_000_000, step?: number) {
  return new ConsumerOffsetTable({
    fs: nodeStorageFs,
    filePath: file,
    nowMs,
    entriesMax,
    ...(step === undefined ? {} : { consumerOffsetUpdateVersionStep: step }),
  });
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

// Written by hand in the shape fastjson's pretty format gives a RocketMQ 5 broker's config/topics.json
// (tabs, keys sorted, counter as a number, attributes stored without the +/- prefix).
const ROCKETMQ_TOPICS_JSON = `{
\t"dataVersion":{
\t\t"counter":7,
\t\t"stateVersion":0,
\t\t"timestamp":1712131415161
\t},
\t"topicConfigTable":{
\t\t"SCHEDULE_TOPIC_XXXX":{
\t\t\t"attributes":{},
\t\t\t"order":false,
\t\t\t"perm":6,
\t\t\t"readQueueNums":18,
\t\t\t"topicFilterType":"SINGLE_TAG",
\t\t\t"topicName":"SCHEDULE_TOPIC_XXXX",
\t\t\t"topicSysFlag":0,
\t\t\t"writeQueueNums":18
\t\t},
\t\t"TBW102":{
\t\t\t"attributes":{},
\t\t\t"order":false,
\t\t\t"perm":7,
\t\t\t"readQueueNums":8,
\t\t\t"topicFilterType":"SINGLE_TAG",
\t\t\t"topicName":"TBW102",
\t\t\t"topicSysFlag":0,
\t\t\t"writeQueueNums":8
\t\t},
\t\t"OrderTopic":{
\t\t\t"attributes":{
\t\t\t\t"message.type":"FIFO"
\t\t\t},
\t\t\t"order":true,
\t\t\t"perm":6,
\t\t\t"readQueueNums":4,
\t\t\t"topicFilterType":"SINGLE_TAG",
\t\t\t"topicName":"OrderTopic",
\t\t\t"topicSysFlag":0,
\t\t\t"writeQueueNums":4
\t\t},
\t\t"OldTopic":{
\t\t\t"topicName":"OldTopic"
\t\t}
\t}
}`;

const ROCKETMQ_SUBSCRIPTION_GROUP_JSON = `{
\t"dataVersion":{
\t\t"counter":2,
\t\t"stateVersion":0,
\t\t"timestamp":1712131415999
\t},
\t"forbiddenTable":{},
\t"subscriptionGroupTable":{
\t\t"TOOLS_CONSUMER":{
\t\t\t"attributes":{},
\t\t\t"brokerId":0,
\t\t\t"consumeBroadcastEnable":true,
\t\t\t"consumeEnable":true,
\t\t\t"consumeFromMinEnable":true,
\t\t\t"consumeMessageOrderly":false,
\t\t\t"consumeTimeoutMinute":15,
\t\t\t"groupName":"TOOLS_CONSUMER",
\t\t\t"groupRetryPolicy":{
\t\t\t\t"type":"CUSTOMIZED"
\t\t\t},
\t\t\t"groupSysFlag":0,
\t\t\t"notifyConsumerIdsChangedEnable":true,
\t\t\t"retryMaxTimes":16,
\t\t\t"retryQueueNums":1,
\t\t\t"whichBrokerWhenConsumeSlowly":1
\t\t},
\t\t"orderGroup":{
\t\t\t"attributes":{},
\t\t\t"brokerId":0,
\t\t\t"consumeBroadcastEnable":false,
\t\t\t"consumeEnable":true,
\t\t\t"consumeFromMinEnable":false,
\t\t\t"consumeMessageOrderly":true,
\t\t\t"consumeTimeoutMinute":15,
\t\t\t"groupName":"orderGroup",
\t\t\t"groupRetryPolicy":{
\t\t\t\t"exponentialRetryPolicy":{
\t\t\t\t\t"initial":1000,
\t\t\t\t\t"max":60000,
\t\t\t\t\t"multiplier":2
\t\t\t\t},
\t\t\t\t"type":"EXPONENTIAL"
\t\t\t},
\t\t\t"groupSysFlag":0,
\t\t\t"notifyConsumerIdsChangedEnable":true,
\t\t\t"retryMaxTimes":3,
\t\t\t"retryQueueNums":1,
\t\t\t"subscriptionDataSet":[
\t\t\t\t{"expression":"TagA || TagB","expressionType":"TAG","topic":"OrderTopic","version":0}
\t\t\t],
\t\t\t"whichBrokerWhenConsumeSlowly":1
\t\t}
\t}
}`;

// fastjson writes Map<Integer, Long> keys without quotes: not standard JSON, yet what real brokers write.
const ROCKETMQ_CONSUMER_OFFSET_JSON = `{
\t"dataVersion":{
\t\t"counter":1500,
\t\t"stateVersion":0,
\t\t"timestamp":1712131420000
\t},
\t"offsetTable":{
\t\t"TopicTest@please_rename_unique_group_name_4":{0:250,1:251,2:249,3:250
\t\t},
\t\t"%RETRY%please_rename_unique_group_name_4@please_rename_unique_group_name_4":{0:0
\t\t}
\t}
}`;

describe('storePaths', () => {
  it('puts every directory and file where RocketMQ does', () => {
    const paths = storePaths('/data/store');
    expect(paths.commitLogDir).toBe('/data/store/commitlog');
    expect(paths.consumeQueueDir).toBe('/data/store/consumequeue');
    expect(paths.indexDir).toBe('/data/store/index');
    expect(paths.checkpointFile).toBe('/data/store/checkpoint');
    expect(paths.abortFile).toBe('/data/store/abort');
    expect(paths.lockFile).toBe('/data/store/lock');
    expect(paths.topicsFile).toBe('/data/store/config/topics.json');
    expect(paths.subscriptionGroupFile).toBe('/data/store/config/subscriptionGroup.json');
    expect(paths.consumerOffsetFile).toBe('/data/store/config/consumerOffset.json');
    expect(paths.delayOffsetFile).toBe('/data/store/config/delayOffset.json');
    expect(paths.timerWheelFile).toBe('/data/store/timerwheel');
    expect(paths.timerLogDir).toBe('/data/store/timerlog');
  });

  it('honours storePathCommitLog', () => {
    expect(storePaths('/data/store', '/fast/commitlog').commitLogDir).toBe('/fast/commitlog');
  });
});

describe('parseFastjson', () => {
  it('quotes bare integer keys but leaves strings and arrays alone', () => {
    const text = '{"a":{0:1, -1:2,\n 12 : 3},"s":"{0:1}","n":[1,2,{3:4}],"e":"x\\"{5:6}"}';
    expect(parseFastjson(text)).toEqual({
      a: { '0': 1, '-1': 2, '12': 3 },
      s: '{0:1}',
      n: [1, 2, { '3': 4 }],
      e: 'x"{5:6}',
    });
  });

  it('still rejects text that is not JSON', () => {
    expect(() => parseFastjson('{"a":')).toThrow(expect.objectContaining({ name: 'FastjsonError', code: 'FASTJSON_SYNTAX' }));
  });
});

describe('JsonConfigFile persist', () => {
  it('leaves no .tmp behind and keeps the previous version as .bak', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    expect(table.load()).toBe('none');
    table.update({ topicName: 'A' });
    table.persist();
    expect(fs.existsSync(`${paths.topicsFile}.tmp`)).toBe(false);
    expect(fs.existsSync(`${paths.topicsFile}.bak`)).toBe(false); // nothing older existed
    const first = fs.readFileSync(paths.topicsFile, 'utf8');

    table.update({ topicName: 'B' });
    table.persist();
    expect(fs.existsSync(`${paths.topicsFile}.tmp`)).toBe(false);
    expect(fs.existsSync(`${paths.topicsFile}.bak.tmp`)).toBe(false);
    expect(fs.readFileSync(`${paths.topicsFile}.bak`, 'utf8')).toBe(first);
    const reread = topicTable(paths.topicsFile);
    expect(reread.load()).toBe('file');
    expect([...reread.values()].map((t) => t.topicName)).toEqual(['A', 'B']);
  });

  it('a crash between writing the temp file and the rename leaves the old file intact', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    table.load();
    table.update({ topicName: 'Old' });
    table.persist();
    const before = fs.readFileSync(paths.topicsFile, 'utf8');

    const crash = new Error('simulated crash before rename');
    const crashingFs: StorageFs = {
      ...nodeStorageFs,
      renameSync: (from, to) => {
        if (to === paths.topicsFile) throw crash;
        nodeStorageFs.renameSync(from, to);
      },
    };
    const doomed = topicTable(paths.topicsFile, { fs: crashingFs });
    doomed.load();
    doomed.update({ topicName: 'New' });
    expect(catchError(() => doomed.persist())).toBe(crash);
    expect(fs.readFileSync(paths.topicsFile, 'utf8')).toBe(before);
    expect(fs.existsSync(`${paths.topicsFile}.tmp`)).toBe(true); // the torn attempt

    const recovered = topicTable(paths.topicsFile);
    expect(recovered.load()).toBe('file');
    expect([...recovered.values()].map((t) => t.topicName)).toEqual(['Old']);
    expect(fs.existsSync(`${paths.topicsFile}.tmp`)).toBe(false); // cleaned on load
  });

  it('refuses to persist before load', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    expect(() => table.persist()).toThrow(/before load/);
  });
});

describe('JsonConfigFile load and .bak fallback', () => {
  it('falls back to .bak when the file is corrupt, and keeps that good backup on the next persist', () => {
    const paths = tempStore();
    write(`${paths.topicsFile}.bak`, ROCKETMQ_TOPICS_JSON);
    write(paths.topicsFile, '{"topicConfigTable":{"A":{"topicName":"A","readQueueNums":4'); // torn
    const table = topicTable(paths.topicsFile);
    expect(table.load()).toBe('backup');
    expect(table.get('TBW102')?.perm).toBe(7);

    table.update({ topicName: 'Added' });
    table.persist();
    expect(fs.readFileSync(`${paths.topicsFile}.bak`, 'utf8')).toBe(ROCKETMQ_TOPICS_JSON);
    const reread = topicTable(paths.topicsFile);
    expect(reread.load()).toBe('file');
    expect(reread.get('Added')).toBeDefined();
  });

  it('falls back to .bak when the file is missing or empty', () => {
    const paths = tempStore();
    write(`${paths.topicsFile}.bak`, ROCKETMQ_TOPICS_JSON);
    expect(topicTable(paths.topicsFile).load()).toBe('backup');
    write(paths.topicsFile, '');
    expect(topicTable(paths.topicsFile).load()).toBe('backup');
  });

  it('falls back to .bak when the file is JSON of the wrong shape', () => {
    const paths = tempStore();
    write(`${paths.topicsFile}.bak`, ROCKETMQ_TOPICS_JSON);
    write(paths.topicsFile, '{"topicConfigTable":{"A":{"topicName":"A","readQueueNums":"eight"}}}');
    expect(topicTable(paths.topicsFile).load()).toBe('backup');
  });

  it('starts empty when neither the file nor a backup exists', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    expect(table.load()).toBe('none');
    expect(table.size).toBe(0);
  });

  it('a corrupt file with no backup is METADATA_FILE_CORRUPT naming the file', () => {
    const paths = tempStore();
    write(paths.topicsFile, 'not json at all');
    const error = catchError(() => topicTable(paths.topicsFile).load());
    expect(error).toBeInstanceOf(MetadataError);
    expect((error as MetadataError).code).toBe(MetadataErrorCode.fileCorrupt);
    expect((error as MetadataError).path).toBe(paths.topicsFile);
    expect((error as MetadataError).message).toContain(paths.topicsFile);
  });

  it('a corrupt file with a corrupt backup is METADATA_FILE_CORRUPT too', () => {
    const paths = tempStore();
    write(paths.topicsFile, '{');
    write(`${paths.topicsFile}.bak`, '{"topicConfigTable":{"A":{"topicName":"B"}}}'); // key != topicName
    const error = catchError(() => topicTable(paths.topicsFile).load()) as MetadataError;
    expect(error.code).toBe(MetadataErrorCode.fileCorrupt);
    expect(error.message).toContain(`${paths.topicsFile}.bak`);
  });

  it('a file over the size bound is METADATA_FILE_TOO_LARGE', () => {
    const paths = tempStore();
    write(paths.topicsFile, ROCKETMQ_TOPICS_JSON);
    const file = new JsonConfigFile({ fs: nodeStorageFs, path: paths.topicsFile, schema: topicsDocumentSchema, fileSizeBytesMax: 64 });
    expect((catchError(() => file.load()) as MetadataError).code).toBe(MetadataErrorCode.fileTooLarge);
  });
});

describe('RocketMQ-shaped documents', () => {
  it('loads a topics.json written by a Java broker, with TopicConfig defaults for missing fields', () => {
    const paths = tempStore();
    write(paths.topicsFile, ROCKETMQ_TOPICS_JSON);
    const table = topicTable(paths.topicsFile);
    expect(table.load()).toBe('file');
    expect(table.size).toBe(4);
    expect(table.dataVersion).toEqual({ counter: 7, stateVersion: 0, timestamp: 1712131415161 });
    expect(table.get('SCHEDULE_TOPIC_XXXX')?.readQueueNums).toBe(18);
    expect(table.get('OrderTopic')).toEqual({
      topicName: 'OrderTopic',
      readQueueNums: 4,
      writeQueueNums: 4,
      perm: 6,
      topicFilterType: 'SINGLE_TAG',
      topicSysFlag: 0,
      order: true,
      attributes: { 'message.type': 'FIFO' },
    });
    // A field missing from the file takes TopicConfig's field default (16 queues), not defaultTopicQueueNums.
    expect(table.get('OldTopic')).toMatchObject({ readQueueNums: 16, writeQueueNums: 16, perm: 6, order: false });
  });

  it('writes topics.json with exactly RocketMQ field names', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    table.load();
    table.update({ topicName: 'T' });
    table.persist();
    const doc = JSON.parse(fs.readFileSync(paths.topicsFile, 'utf8'));
    expect(Object.keys(doc).sort()).toEqual(['dataVersion', 'topicConfigTable']);
    expect(Object.keys(doc.dataVersion).sort()).toEqual(['counter', 'stateVersion', 'timestamp']);
    expect(Object.keys(doc.topicConfigTable.T).sort()).toEqual([
      'attributes',
      'order',
      'perm',
      'readQueueNums',
      'topicFilterType',
      'topicName',
      'topicSysFlag',
      'writeQueueNums',
    ]);
  });

  it('loads a subscriptionGroup.json written by a Java broker', () => {
    const paths = tempStore();
    write(paths.subscriptionGroupFile, ROCKETMQ_SUBSCRIPTION_GROUP_JSON);
    const table = new SubscriptionGroupTable({ fs: nodeStorageFs, filePath: paths.subscriptionGroupFile, nowMs: () => 0, entriesMax: 100 });
    expect(table.load()).toBe('file');
    expect(table.get('TOOLS_CONSUMER')?.groupRetryPolicy).toEqual({ type: 'CUSTOMIZED' });
    const order = table.get('orderGroup');
    expect(order?.consumeMessageOrderly).toBe(true);
    expect(order?.retryMaxTimes).toBe(3);
    expect(order?.groupRetryPolicy.exponentialRetryPolicy).toEqual({ initial: 1000, max: 60000, multiplier: 2 });
    expect(order?.subscriptionDataSet?.[0]).toEqual({ topic: 'OrderTopic', expressionType: 'TAG', expression: 'TagA || TagB', version: 0 });

    table.persist();
    const doc = JSON.parse(fs.readFileSync(paths.subscriptionGroupFile, 'utf8'));
    expect(Object.keys(doc).sort()).toEqual(['dataVersion', 'forbiddenTable', 'subscriptionGroupTable']);
    expect(doc.subscriptionGroupTable.TOOLS_CONSUMER).toEqual(JSON.parse(ROCKETMQ_SUBSCRIPTION_GROUP_JSON).subscriptionGroupTable.TOOLS_CONSUMER);
  });

  it('loads a consumerOffset.json with fastjson unquoted queue ids, and writes standard JSON back', () => {
    const paths = tempStore();
    write(paths.consumerOffsetFile, ROCKETMQ_CONSUMER_OFFSET_JSON);
    const table = offsetTable(paths.consumerOffsetFile, 100);
    expect(table.load()).toBe('file');
    expect(table.query('please_rename_unique_group_name_4', 'TopicTest', 1)).toBe(251);
    expect(table.query('please_rename_unique_group_name_4', '%RETRY%please_rename_unique_group_name_4', 0)).toBe(0);
    expect(table.entries).toBe(5);
    expect(table.dataVersion.counter).toBe(1500);

    table.persist();
    const doc = JSON.parse(fs.readFileSync(paths.consumerOffsetFile, 'utf8'));
    expect(doc.offsetTable['TopicTest@please_rename_unique_group_name_4']).toEqual({ '0': 250, '1': 251, '2': 249, '3': 250 });
  });
});

describe('topic and group tables', () => {
  it('a new topic gets defaultTopicQueueNums (8) and perm 6; attributes are applied from +/- requests', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    table.load();
    expect(table.update({ topicName: 'T', attributes: { '+message.type': 'NORMAL' } })).toEqual({
      topicName: 'T',
      readQueueNums: METADATA_DEFAULTS.defaultTopicQueueNums,
      writeQueueNums: 8,
      perm: 6,
      topicFilterType: 'SINGLE_TAG',
      topicSysFlag: 0,
      order: false,
      attributes: { 'message.type': 'NORMAL' },
    });
    expect(table.update({ topicName: 'T', writeQueueNums: 4, attributes: { '+message.type': 'FIFO' } })).toMatchObject({
      readQueueNums: 8,
      writeQueueNums: 4,
      attributes: { 'message.type': 'FIFO' },
    });
    expect(table.update({ topicName: 'T', attributes: { '-message.type': '' } }).attributes).toEqual({});
  });

  it('refuses attribute requests RocketMQ refuses', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile);
    table.load();
    const code = (fn: () => unknown) => (catchError(fn) as MetadataError).code;
    expect(code(() => table.update({ topicName: 'T', attributes: { '-message.type': '' } }))).toBe(MetadataErrorCode.attributeInvalid);
    expect(code(() => table.update({ topicName: 'T', attributes: { '+no.such.key': 'x' } }))).toBe(MetadataErrorCode.attributeInvalid);
    expect(code(() => table.update({ topicName: 'T', attributes: { '+message.type': 'BOGUS' } }))).toBe(MetadataErrorCode.attributeInvalid);
    table.update({ topicName: 'T', attributes: { '+queue.type': 'SimpleCQ' } });
    expect(code(() => table.update({ topicName: 'T', attributes: { '+queue.type': 'BatchCQ' } }))).toBe(MetadataErrorCode.attributeInvalid);
    expect(code(() => table.update({ topicName: 'T', perm: 99 }))).toBe(MetadataErrorCode.configInvalid);
    expect(table.get('T')?.attributes).toEqual({ 'queue.type': 'SimpleCQ' });
  });

  it('bumps the dataVersion on every change, with the clock time', () => {
    const paths = tempStore();
    const clock = manualClock(1_000);
    const table = topicTable(paths.topicsFile, { nowMs: clock.nowMs });
    table.load();
    expect(table.dataVersion).toEqual({ timestamp: 1_000, counter: 0, stateVersion: 0 });
    clock.advance(5);
    table.update({ topicName: 'A' });
    expect(table.dataVersion).toEqual({ timestamp: 1_005, counter: 1, stateVersion: 0 });
    clock.advance(5);
    table.update({ topicName: 'A', perm: 4 });
    expect(table.dataVersion.counter).toBe(2);
    expect(table.remove('missing')).toBe(false);
    expect(table.dataVersion.counter).toBe(2);
    clock.advance(5);
    expect(table.remove('A')).toBe(true);
    expect(table.dataVersion).toEqual({ timestamp: 1_015, counter: 3, stateVersion: 0 });
    table.persist();
    expect(JSON.parse(fs.readFileSync(paths.topicsFile, 'utf8')).dataVersion).toEqual({ timestamp: 1_015, counter: 3, stateVersion: 0 });
  });

  it('continues the loaded dataVersion rather than restarting it', () => {
    const paths = tempStore();
    write(paths.topicsFile, ROCKETMQ_TOPICS_JSON);
    const table = topicTable(paths.topicsFile, { nowMs: () => 1_800_000_000_000 });
    table.load();
    table.update({ topicName: 'X' });
    expect(table.dataVersion).toEqual({ timestamp: 1_800_000_000_000, counter: 8, stateVersion: 0 });
  });

  it('a topic table at its bound refuses new topics but accepts updates', () => {
    const paths = tempStore();
    const table = topicTable(paths.topicsFile, { entriesMax: 2 });
    table.load();
    table.update({ topicName: 'A' });
    table.update({ topicName: 'B' });
    expect((catchError(() => table.update({ topicName: 'C' })) as MetadataError).code).toBe(MetadataErrorCode.tableFull);
    expect(table.update({ topicName: 'A', perm: 2 }).perm).toBe(2);
  });

  it('a new group gets RocketMQ SubscriptionGroupConfig defaults', () => {
    const paths = tempStore();
    const table = new SubscriptionGroupTable({ fs: nodeStorageFs, filePath: paths.subscriptionGroupFile, nowMs: () => 7, entriesMax: 10 });
    table.load();
    expect(table.update({ groupName: 'G' })).toEqual({
      groupName: 'G',
      consumeEnable: true,
      consumeFromMinEnable: true,
      consumeBroadcastEnable: true,
      consumeMessageOrderly: false,
      retryQueueNums: 1,
      retryMaxTimes: 16,
      groupRetryPolicy: { type: 'CUSTOMIZED' },
      brokerId: 0,
      whichBrokerWhenConsumeSlowly: 1,
      notifyConsumerIdsChangedEnable: true,
      groupSysFlag: 0,
      consumeTimeoutMinute: 15,
      attributes: {},
    });
    expect(table.update({ groupName: 'G', retryMaxTimes: 3 }).consumeEnable).toBe(true);
    expect(table.dataVersion.counter).toBe(2);
  });
});

describe('ConsumerOffsetTable', () => {
  it('commits and queries; an unknown offset is -1', () => {
    const paths = tempStore();
    const table = offsetTable(paths.consumerOffsetFile, 10);
    table.load();
    table.commit('g', 't', 0, 12);
    table.commit('g', 't', 0, 15);
    expect(table.query('g', 't', 0)).toBe(15);
    expect(table.query('g', 't', 1)).toBe(-1);
    expect(table.query('other', 't', 0)).toBe(-1);
    table.persist();
    const doc = JSON.parse(fs.readFileSync(paths.consumerOffsetFile, 'utf8'));
    expect(doc.offsetTable).toEqual({ 't@g': { '0': 15 } });
  });

  it('holds at most entriesMax (topic@group, queue) entries', () => {
    const paths = tempStore();
    const table = offsetTable(paths.consumerOffsetFile, 3);
    table.load();
    table.commit('g', 't', 0, 1);
    table.commit('g', 't', 1, 1);
    table.commit('h', 't', 0, 1);
    table.commit('g', 't', 1, 2); // an update, not a new entry
    const error = catchError(() => table.commit('g', 't', 2, 1)) as MetadataError;
    expect(error.code).toBe(MetadataErrorCode.tableFull);
    expect(table.entries).toBe(3);
    expect(table.query('g', 't', 2)).toBe(-1);
    expect(table.remove('g', 't')).toBe(true);
    expect(table.entries).toBe(1);
    table.commit('g', 't', 2, 1);
    expect(table.entries).toBe(2);
  });

  it('refuses to load a file holding more entries than the bound', () => {
    const paths = tempStore();
    write(paths.consumerOffsetFile, ROCKETMQ_CONSUMER_OFFSET_JSON);
    const error = catchError(() => offsetTable(paths.consumerOffsetFile, 4).load()) as MetadataError;
    expect(error.code).toBe(MetadataErrorCode.tableFull);
    expect(error.path).toBe(paths.consumerOffsetFile);
  });

  it('moves the dataVersion every consumerOffsetUpdateVersionStep commits', () => {
    const paths = tempStore();
    const clock = manualClock(100);
    const table = offsetTable(paths.consumerOffsetFile, 10, clock.nowMs, 3);
    table.load();
    table.commit('g', 't', 0, 1);
    table.commit('g', 't', 0, 2);
    expect(table.dataVersion.counter).toBe(0);
    clock.advance(1);
    table.commit('g', 't', 0, 3);
    expect(table.dataVersion).toEqual({ timestamp: 101, counter: 1, stateVersion: 0 });
  });
});
