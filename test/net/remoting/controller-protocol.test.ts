/**
 * The controller's headers and bodies against frames written out by hand from RocketMQ's layouts
 * (RemotingCommand.encode: length, serialization byte + 24-bit header length, header, body; fastjson bodies
 * with bean fields in alphabetical order, Map<Long, String> keys bare). None of the fixture bytes come from
 * our encoders.
 */
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../../src/net/remoting/codec.ts';
import { HeaderError } from '../../../src/net/remoting/broker-headers.ts';
import {
  AlterSyncStateSetRequestHeader,
  BrokerHeartbeatRequestHeader,
  ControllerBodyError,
  ElectMasterRequestHeader,
  formatBrokerReplicasInfo,
  formatControllerConfig,
  formatElectMasterResponseBody,
  formatEpochEntryCache,
  formatSyncStateSet,
  GetMetaDataResponseHeader,
  GetReplicaInfoRequestHeader,
  NotifyBrokerRoleChangedRequestHeader,
  parseBrokerNameList,
  parseBrokerReplicasInfo,
  parseElectMasterResponseBody,
  parseEpochEntryCache,
  parseSyncStateSet,
  RegisterBrokerToControllerRequestHeader,
} from '../../../src/net/remoting/controller-protocol.ts';
import { RequestCode } from '../../../src/net/remoting/remoting-command.ts';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');
const bytes = (value: string): Buffer => Buffer.from(value, 'utf8');

/** A JSON-serialized frame: 4-byte length, 0x00 + 3-byte header length, header, body. */
function jsonFrame(header: string, body = ''): Buffer {
  const h = bytes(header);
  const b = bytes(body);
  const frame = Buffer.alloc(8 + h.length + b.length);
  frame.writeInt32BE(4 + h.length + b.length, 0);
  frame.writeUInt32BE(h.length, 4); // high byte 0: JSON
  h.copy(frame, 8);
  b.copy(frame, 8 + h.length);
  return frame;
}

describe('controller headers from Java frames', () => {
  it('reads a Java master’s CONTROLLER_ALTER_SYNC_STATE_SET (JSON header, SyncStateSet body)', () => {
    const header =
      '{"code":1001,"extFields":{"brokerName":"broker-a","masterEpoch":"2","invokeTime":"1700000000000","masterBrokerId":"1"},' +
      '"flag":0,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":453}';
    const cmd = decodeFrame(jsonFrame(header, '{"syncStateSet":[1,2],"syncStateSetEpoch":3}'));
    expect(cmd.code).toBe(RequestCode.CONTROLLER_ALTER_SYNC_STATE_SET);
    expect(AlterSyncStateSetRequestHeader.parse(cmd.extFields)).toEqual({ brokerName: 'broker-a', masterBrokerId: 1, masterEpoch: 2, invokeTime: 1_700_000_000_000 });
    expect(parseSyncStateSet(cmd.body)).toEqual({ syncStateSet: [1, 2], syncStateSetEpoch: 3 });
  });

  it('reads a Java broker’s CONTROLLER_REGISTER_BROKER in the ROCKETMQ binary header', () => {
    const ext: [string, string][] = [
      ['clusterName', 'DefaultCluster'],
      ['brokerName', 'broker-a'],
      ['brokerId', '2'],
      ['brokerAddress', '10.0.0.2:10911'],
      ['invokeTime', '1700000000001'],
    ];
    const extParts = ext.map(([k, v]) => {
      const key = bytes(k);
      const value = bytes(v);
      const part = Buffer.alloc(2 + key.length + 4 + value.length);
      part.writeUInt16BE(key.length, 0);
      key.copy(part, 2);
      part.writeInt32BE(value.length, 2 + key.length);
      value.copy(part, 6 + key.length);
      return part;
    });
    const extBytes = Buffer.concat(extParts);
    // code(2) language(1) version(2) opaque(4) flag(4) remarkLength(4) extFieldsLength(4) extFields
    const fixed = Buffer.from('03eb' + '00' + '01c5' + '00000009' + '00000000' + '00000000', 'hex');
    const extLength = Buffer.alloc(4);
    extLength.writeInt32BE(extBytes.length, 0);
    const header = Buffer.concat([fixed, extLength, extBytes]);
    const frame = Buffer.alloc(8 + header.length);
    frame.writeInt32BE(4 + header.length, 0);
    frame.writeUInt32BE((1 << 24) | header.length, 4); // high byte 1: ROCKETMQ
    header.copy(frame, 8);
    const cmd = decodeFrame(frame);
    expect(cmd).toMatchObject({ code: RequestCode.CONTROLLER_REGISTER_BROKER, opaque: 9, version: 453, serializeType: 'ROCKETMQ' });
    expect(RegisterBrokerToControllerRequestHeader.parse(cmd.extFields)).toEqual({
      clusterName: 'DefaultCluster',
      brokerName: 'broker-a',
      brokerId: 2,
      brokerAddress: '10.0.0.2:10911',
      invokeTime: 1_700_000_000_001,
    });
  });

  it('fills ElectMasterRequestHeader’s Java defaults (ofControllerTrigger sends only brokerName)', () => {
    expect(ElectMasterRequestHeader.parse({ brokerName: 'broker-a' })).toEqual({ clusterName: '', brokerName: 'broker-a', brokerId: -1, designateElect: false });
    expect(ElectMasterRequestHeader.parse({ clusterName: 'c', brokerName: 'b', brokerId: '3', designateElect: 'true' })).toMatchObject({ brokerId: 3, designateElect: true });
  });

  it('reads the heartbeat header with its optional fields and our asyncLearner extension', () => {
    const parsed = BrokerHeartbeatRequestHeader.parse({
      clusterName: 'c',
      brokerAddr: '10.0.0.1:10911',
      brokerName: 'b',
      brokerId: '1',
      epoch: '4',
      maxOffset: '1024',
      heartbeatTimeoutMills: '10000',
      electionPriority: '2',
      asyncLearner: 'true',
    });
    expect(parsed).toEqual({ clusterName: 'c', brokerAddr: '10.0.0.1:10911', brokerName: 'b', brokerId: 1, epoch: 4, maxOffset: 1024, heartbeatTimeoutMills: 10_000, electionPriority: 2, asyncLearner: true });
    expect(() => BrokerHeartbeatRequestHeader.parse({ clusterName: 'c', brokerName: 'b' })).toThrow(HeaderError);
  });

  it('refuses a request header without a field Java dereferences', () => {
    expect(() => GetReplicaInfoRequestHeader.parse({})).toThrow(/brokerName/);
  });

  it('writes response headers under the Java field names (isLeader, masterBrokerId)', () => {
    expect(GetMetaDataResponseHeader.format({ group: 'g', controllerLeaderId: 'n0', controllerLeaderAddress: '127.0.0.1:9878', isLeader: true, peers: 'n0:127.0.0.1:9878;' })).toEqual({
      group: 'g',
      controllerLeaderId: 'n0',
      controllerLeaderAddress: '127.0.0.1:9878',
      isLeader: 'true',
      peers: 'n0:127.0.0.1:9878;',
    });
    expect(NotifyBrokerRoleChangedRequestHeader.format({ masterAddress: 'a:1', masterEpoch: 2, syncStateSetEpoch: 3, masterBrokerId: 1 })).toEqual({
      masterAddress: 'a:1',
      masterEpoch: '2',
      syncStateSetEpoch: '3',
      masterBrokerId: '1',
    });
  });
});

describe('controller bodies as fastjson writes them', () => {
  it('writes SyncStateSet and ElectMasterResponseBody byte for byte', () => {
    expect(text(formatSyncStateSet({ syncStateSet: [3, 1], syncStateSetEpoch: 7 }))).toBe('{"syncStateSet":[1,3],"syncStateSetEpoch":7}');
    const body = formatElectMasterResponseBody({
      brokerMemberGroup: { cluster: 'DefaultCluster', brokerName: 'broker-a', brokerAddrs: new Map([[2, '10.0.0.2:10911'], [1, '10.0.0.1:10911']]) },
      syncStateSet: [1],
    });
    expect(text(body)).toBe(
      '{"brokerMemberGroup":{"brokerAddrs":{1:"10.0.0.1:10911",2:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"},"syncStateSet":[1]}',
    );
    expect(text(formatElectMasterResponseBody({ syncStateSet: [2] }))).toBe('{"syncStateSet":[2]}');
  });

  it('reads an ElectMasterResponseBody with bare or quoted Long keys', () => {
    const parsed = parseElectMasterResponseBody(bytes('{"brokerMemberGroup":{"brokerAddrs":{1:"a:1","2":"b:2"},"brokerName":"b","cluster":"c"},"syncStateSet":[1]}'));
    expect(parsed).toEqual({ syncStateSet: [1], brokerMemberGroup: { cluster: 'c', brokerName: 'b', brokerAddrs: new Map([[1, 'a:1'], [2, 'b:2']]) } });
  });

  it('writes BrokerReplicasInfo with nulls left out, and reads it back', () => {
    const value = {
      replicasInfoTable: new Map([
        [
          'broker-a',
          {
            masterBrokerId: 1,
            masterAddress: 'a:1',
            masterEpoch: 2,
            syncStateSetEpoch: 3,
            inSyncReplicas: [{ brokerName: 'broker-a', brokerId: 1, brokerAddress: 'a:1', alive: true }],
            notInSyncReplicas: [{ brokerName: 'broker-a', brokerId: 2, brokerAddress: 'b:2', alive: false }],
          },
        ],
        ['broker-b', { masterEpoch: 1, syncStateSetEpoch: 1, inSyncReplicas: [], notInSyncReplicas: [] }],
      ]),
    };
    const body = formatBrokerReplicasInfo(value);
    expect(text(body)).toBe(
      '{"replicasInfoTable":{"broker-a":{"inSyncReplicas":[{"alive":true,"brokerAddress":"a:1","brokerId":1,"brokerName":"broker-a"}],' +
        '"masterAddress":"a:1","masterBrokerId":1,"masterEpoch":2,' +
        '"notInSyncReplicas":[{"alive":false,"brokerAddress":"b:2","brokerId":2,"brokerName":"broker-a"}],"syncStateSetEpoch":3},' +
        '"broker-b":{"inSyncReplicas":[],"masterEpoch":1,"notInSyncReplicas":[],"syncStateSetEpoch":1}}}',
    );
    expect(parseBrokerReplicasInfo(body)).toEqual(value);
  });

  it('writes and reads EpochEntryCache, the open epoch ending at Long.MAX_VALUE', () => {
    const javaText =
      '{"brokerId":2,"brokerName":"broker-a","clusterName":"c","epochList":[{"endOffset":100,"epoch":1,"startOffset":0},' +
      '{"endOffset":9223372036854775807,"epoch":2,"startOffset":100}],"maxOffset":180}';
    const parsed = parseEpochEntryCache(bytes(javaText));
    expect(parsed.epochList).toEqual([
      { epoch: 1, startOffset: 0, endOffset: 100 },
      { epoch: 2, startOffset: 100, endOffset: Number.MAX_SAFE_INTEGER },
    ]);
    expect(text(formatEpochEntryCache(parsed))).toBe(javaText);
  });

  it('reads the GET_SYNC_STATE_DATA name list and turns bad bodies into ControllerBodyError', () => {
    expect(parseBrokerNameList(bytes('["broker-a","broker-b","broker-a"]'))).toEqual(['broker-a', 'broker-b']);
    expect(() => parseSyncStateSet(undefined)).toThrow(ControllerBodyError);
    expect(() => parseSyncStateSet(bytes('{"syncStateSet":'))).toThrow(ControllerBodyError);
    expect(() => parseSyncStateSet(bytes('{"syncStateSet":["x"]}'))).toThrow(ControllerBodyError);
    expect(parseSyncStateSet(bytes('{}'))).toEqual({ syncStateSet: [], syncStateSetEpoch: 0 });
  });

  it('writes the controller config as properties lines', () => {
    expect(text(formatControllerConfig({ a: 1, b: true, c: 'x' }))).toBe('a=1\nb=true\nc=x\n');
  });
});
