/**
 * MessagingService wire layer, judged by the official RocketMQ Node.js client:
 * - the schema of our `.proto` files against the client's (every field, enum value and method);
 * - requests the client's google-protobuf classes encode, decoded by our definition;
 * - responses our definition encodes, decoded by the client's classes;
 * - a real grpc-js round trip: our server, the client's generated MessagingServiceClient.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  status as grpcStatus,
} from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterEach, describe, expect, it } from 'vitest';
import { Code, status } from '../../../src/net/grpc/code.ts';
import { AddressScheme, ClientType, FilterType, MessageType, Permission } from '../../../src/net/grpc/enums.ts';
import type * as M from '../../../src/net/grpc/messages.ts';
import {
  addMessagingService,
  GRPC_MAX_INBOUND_MESSAGE_SIZE_DEFAULT,
  MESSAGING_METHODS,
  type MessagingMethodName,
  type MessagingServiceHandlers,
  messagingServiceDefinition,
  methodPath,
  type RequestOf,
  type ResponseOf,
} from '../../../src/net/grpc/messaging-service.ts';
import { PROTO_DIR, rocketmqProtoRoot } from '../../../src/net/grpc/proto-root.ts';
import { durationFromMs, timestampFromMs } from '../../../src/net/grpc/wire-time.ts';
import {
  CLIENT_PROTO_DIR,
  clientGrpc,
  clientGrpcPath,
  def,
  grpcPb,
  pbDuration,
  pbEndpoints,
  pbResource,
  pbTimestamp,
  secondsNanos,
  svc,
} from './official-client.ts';

/** Decodes bytes the official client produced, exactly as our server will. */
function decodeRequest<N extends MessagingMethodName>(method: N, pbMessage: { serializeBinary(): Uint8Array }): RequestOf<N> {
  return messagingServiceDefinition[method].requestDeserialize(Buffer.from(pbMessage.serializeBinary()));
}

/** Encodes a response as our server will; the caller hands the bytes to the client's class. */
function encodeResponse<N extends MessagingMethodName>(method: N, response: ResponseOf<N>): Buffer {
  return messagingServiceDefinition[method].responseSerialize(response);
}

const resource = (name: string, resourceNamespace = ''): M.Resource => ({ resourceNamespace, name });
const ipv4 = (host: string, port: number): M.Endpoints => ({ scheme: AddressScheme.IPv4, addresses: [{ host, port }] });

// ---------------------------------------------------------------------------------------------------
describe('schema matches the official client', () => {
  /** Our additions from rocketmq-apis master that the client's (older) copy does not have yet. */
  const NEWER_FIELDS = new Set(['apache.rocketmq.v2.Settings.clientProperties']);
  const NEWER_ENUM_VALUES = new Set(['apache.rocketmq.v2.Code.INVALID_CLIENT_PROPERTIES']);

  function loadTheirs(): protobuf.Root {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) =>
      target.startsWith('google/protobuf/') || isAbsolute(target) ? target : join(CLIENT_PROTO_DIR, target);
    root.loadSync(['apache/rocketmq/v2/definition.proto', 'apache/rocketmq/v2/service.proto'].map((f) => join(CLIENT_PROTO_DIR, f)));
    root.resolveAll();
    return root;
  }

  function collect(ns: protobuf.NamespaceBase, into: protobuf.ReflectionObject[] = []): protobuf.ReflectionObject[] {
    for (const nested of ns.nestedArray) {
      into.push(nested);
      if (nested instanceof protobuf.Namespace) collect(nested, into);
    }
    return into;
  }

  function fieldFacts(field: protobuf.Field) {
    field.resolve();
    return {
      id: field.id,
      type: field.resolvedType ? field.resolvedType.fullName : field.type,
      repeated: field.repeated,
      map: field instanceof protobuf.MapField ? field.keyType : null,
      oneof: field.partOf ? field.partOf.name : null,
      presence: Boolean(field.hasPresence),
    };
  }

  const theirs = loadTheirs();
  const ours = rocketmqProtoRoot();
  const theirObjects = collect(theirs.lookup('apache.rocketmq.v2') as protobuf.Namespace);

  it('has every message of theirs with the same fields, numbers, types, oneofs and presence', () => {
    const types = theirObjects.filter((o): o is protobuf.Type => o instanceof protobuf.Type);
    expect(types.length).toBeGreaterThanOrEqual(60);
    for (const theirType of types) {
      const ourType = ours.lookupType(theirType.fullName);
      const name = theirType.fullName.slice(1);
      for (const theirField of theirType.fieldsArray) {
        const ourField = ourType.fields[theirField.name];
        expect(ourField, `${name}.${theirField.name}`).toBeDefined();
        expect({ field: `${name}.${theirField.name}`, ...fieldFacts(ourField!) }).toEqual({
          field: `${name}.${theirField.name}`,
          ...fieldFacts(theirField),
        });
      }
      const extra = ourType.fieldsArray.filter((f) => theirType.fields[f.name] === undefined).map((f) => `${name}.${f.name}`);
      for (const field of extra) expect(NEWER_FIELDS.has(field), `unexpected extra field ${field}`).toBe(true);
      expect(ourType.oneofsArray.map((o) => o.name).sort()).toEqual(theirType.oneofsArray.map((o) => o.name).sort());
    }
  });

  it('has every enum of theirs with the same values', () => {
    const enums = theirObjects.filter((o): o is protobuf.Enum => o instanceof protobuf.Enum);
    expect(enums.map((e) => e.name)).toContain('Code');
    for (const theirEnum of enums) {
      const ourEnum = ours.lookupEnum(theirEnum.fullName);
      const name = theirEnum.fullName.slice(1);
      const ourValues = Object.fromEntries(Object.entries(ourEnum.values).filter(([k]) => !NEWER_ENUM_VALUES.has(`${name}.${k}`)));
      expect(ourValues, name).toEqual(theirEnum.values);
    }
    expect(ours.lookupEnum('apache.rocketmq.v2.Code').values.INVALID_CLIENT_PROPERTIES).toBe(40021);
  });

  it('declares the same methods, with the same message types and streaming', () => {
    const method = (m: protobuf.Method) => ({
      name: m.name,
      req: m.resolvedRequestType!.fullName,
      res: m.resolvedResponseType!.fullName,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
    });
    const ourService = ours.lookupService('apache.rocketmq.v2.MessagingService');
    const theirService = theirs.lookupService('apache.rocketmq.v2.MessagingService');
    expect(ourService.methodsArray.map(method)).toEqual(theirService.methodsArray.map(method));
  });

  it('gives every method the path, flags and codecs the generated client uses', () => {
    const generated = grpcPb.MessagingServiceService as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>;
    const theirPaths = Object.values(generated).map((m) => [m.path, m.requestStream, m.responseStream]);
    const ourPaths = Object.values(messagingServiceDefinition).map((m) => [m.path, m.requestStream, m.responseStream]);
    expect(ourPaths).toEqual(theirPaths);
    expect(ourPaths).toHaveLength(17);
    expect(methodPath('ReceiveMessage')).toBe('/apache.rocketmq.v2.MessagingService/ReceiveMessage');
    for (const { name } of MESSAGING_METHODS) {
      const m = messagingServiceDefinition[name];
      for (const fn of [m.requestSerialize, m.requestDeserialize, m.responseSerialize, m.responseDeserialize]) expect(fn).toBeTypeOf('function');
    }
  });

  it('keeps our .proto files our own: no text copied from the upstream files', () => {
    // A cheap guard against wholesale copying: upstream's distinctive option block and licence header.
    for (const file of ['definition.proto', 'service.proto']) {
      const text = readFileSync(join(PROTO_DIR, 'apache/rocketmq/v2', file), 'utf8');
      expect(text).not.toContain('java_outer_classname');
      expect(text).not.toContain('Licensed to the Apache Software Foundation');
    }
  });
});

// ---------------------------------------------------------------------------------------------------
describe('requests: the official client encodes, we decode', () => {
  const BORN_MS = 1_700_000_000_123;
  const DELIVER_MS = 1_700_000_060_000;
  const BODY = Buffer.from([0x00, 0x01, 0x7f, 0x80, 0xff, 0x68, 0x69]);

  it('SendMessageRequest: a batch with system properties, user properties and binary body', () => {
    const full = new def.Message().setTopic(pbResource('TopicA', 'ns1')).setBody(BODY);
    full.getUserPropertiesMap().set('k1', 'v1').set('empty', '').set('ünï', 'çødé');
    full.setSystemProperties(
      new def.SystemProperties()
        .setTag('TagA')
        .setKeysList(['key-1', 'key-2'])
        .setMessageId('01A1B2C3D4E5F60000000000000001')
        .setBornTimestamp(pbTimestamp(BORN_MS))
        .setBornHost('host-1')
        .setBodyEncoding(def.Encoding.IDENTITY)
        .setQueueId(3)
        .setMessageType(def.MessageType.FIFO)
        .setMessageGroup('group-7')
        .setDeliveryTimestamp(pbTimestamp(DELIVER_MS)),
    );
    const minimal = new def.Message()
      .setTopic(pbResource('TopicB'))
      .setBody(Buffer.from('x'))
      .setSystemProperties(
        new def.SystemProperties().setMessageId('id-2').setMessageType(def.MessageType.NORMAL).setLiteTopic('lite-1').setPriority(0),
      );

    const decoded = decodeRequest('SendMessage', new svc.SendMessageRequest().setMessagesList([full, minimal]));

    expect(decoded).toStrictEqual({
      messages: [
        {
          topic: { resourceNamespace: 'ns1', name: 'TopicA' },
          userProperties: { k1: 'v1', empty: '', ünï: 'çødé' },
          systemProperties: {
            tag: 'TagA',
            keys: ['key-1', 'key-2'],
            messageId: '01A1B2C3D4E5F60000000000000001',
            bodyDigest: null,
            bodyEncoding: 1,
            messageType: MessageType.FIFO,
            bornTimestamp: { seconds: 1_700_000_000, nanos: 123_000_000 },
            bornHost: 'host-1',
            storeHost: '',
            deliveryTimestamp: { seconds: 1_700_000_060, nanos: 0 },
            queueId: 3,
            messageGroup: 'group-7',
          },
          body: BODY,
        },
        {
          topic: { resourceNamespace: '', name: 'TopicB' },
          userProperties: {},
          systemProperties: {
            keys: [],
            messageId: 'id-2',
            bodyDigest: null,
            bodyEncoding: 0,
            messageType: MessageType.NORMAL,
            bornTimestamp: null,
            bornHost: '',
            storeHost: '',
            queueId: 0,
            liteTopic: 'lite-1',
            // proto3 `optional`: an explicit zero is present, not defaulted away.
            priority: 0,
          },
          body: Buffer.from('x'),
        },
      ],
    });
    expect(Buffer.isBuffer(decoded.messages[0]!.body)).toBe(true);
  });

  it('ReceiveMessageRequest: full (simple consumer) and without optional fields (push consumer)', () => {
    const queue = new def.MessageQueue()
      .setTopic(pbResource('TopicA'))
      .setId(2)
      .setPermission(def.Permission.READ_WRITE)
      .setBroker(new def.Broker().setName('broker-a').setId(0).setEndpoints(pbEndpoints(def.AddressScheme.IPV4, '10.0.0.1', 8081)))
      .setAcceptMessageTypesList([def.MessageType.NORMAL, def.MessageType.FIFO]);
    const simple = new svc.ReceiveMessageRequest()
      .setGroup(pbResource('GID_A'))
      .setMessageQueue(queue)
      .setFilterExpression(new def.FilterExpression().setType(def.FilterType.TAG).setExpression('TagA||TagB'))
      .setBatchSize(32)
      .setInvisibleDuration(pbDuration(15))
      .setAutoRenew(false)
      .setLongPollingTimeout(pbDuration(20, 500_000_000))
      .setAttemptId('attempt-1');
    expect(decodeRequest('ReceiveMessage', simple)).toStrictEqual({
      group: { resourceNamespace: '', name: 'GID_A' },
      messageQueue: {
        topic: { resourceNamespace: '', name: 'TopicA' },
        id: 2,
        permission: Permission.READ_WRITE,
        broker: { name: 'broker-a', id: 0, endpoints: ipv4('10.0.0.1', 8081) },
        acceptMessageTypes: [MessageType.NORMAL, MessageType.FIFO],
      },
      filterExpression: { type: FilterType.TAG, expression: 'TagA||TagB' },
      batchSize: 32,
      invisibleDuration: { seconds: 15, nanos: 0 },
      autoRenew: false,
      longPollingTimeout: { seconds: 20, nanos: 500_000_000 },
      attemptId: 'attempt-1',
    });

    const push = new svc.ReceiveMessageRequest().setGroup(pbResource('GID_A')).setMessageQueue(queue).setBatchSize(1).setAutoRenew(true);
    const decoded = decodeRequest('ReceiveMessage', push);
    expect(decoded.autoRenew).toBe(true);
    expect(decoded.filterExpression).toBeNull();
    expect('invisibleDuration' in decoded).toBe(false);
    expect('longPollingTimeout' in decoded).toBe(false);
    expect('attemptId' in decoded).toBe(false);
  });

  it('AckMessageRequest with and without lite topic', () => {
    const request = new svc.AckMessageRequest()
      .setGroup(pbResource('GID_A', 'ns'))
      .setTopic(pbResource('TopicA', 'ns'))
      .setEntriesList([
        new svc.AckMessageEntry().setMessageId('m1').setReceiptHandle('rh-1'),
        new svc.AckMessageEntry().setMessageId('m2').setReceiptHandle('rh-2').setLiteTopic('lt'),
      ]);
    expect(decodeRequest('AckMessage', request)).toStrictEqual({
      group: { resourceNamespace: 'ns', name: 'GID_A' },
      topic: { resourceNamespace: 'ns', name: 'TopicA' },
      entries: [
        { messageId: 'm1', receiptHandle: 'rh-1' },
        { messageId: 'm2', receiptHandle: 'rh-2', liteTopic: 'lt' },
      ],
    });
  });

  it('HeartbeatRequest: consumer with group, producer without', () => {
    const consumer = new svc.HeartbeatRequest().setGroup(pbResource('GID_A')).setClientType(def.ClientType.PUSH_CONSUMER);
    expect(decodeRequest('Heartbeat', consumer)).toStrictEqual({ group: resource('GID_A'), clientType: ClientType.PUSH_CONSUMER });
    const producer = new svc.HeartbeatRequest().setClientType(def.ClientType.PRODUCER);
    expect(decodeRequest('Heartbeat', producer)).toStrictEqual({ clientType: ClientType.PRODUCER });
  });

  it('TelemetryCommand with producer Settings (Publishing, exponential backoff, user agent)', () => {
    const settings = new def.Settings()
      .setClientType(def.ClientType.PRODUCER)
      .setAccessPoint(pbEndpoints(def.AddressScheme.DOMAIN_NAME, 'proxy.example', 8081))
      .setBackoffPolicy(
        new def.RetryPolicy()
          .setMaxAttempts(3)
          .setExponentialBackoff(new def.ExponentialBackoff().setInitial(pbDuration(0, 10_000_000)).setMax(pbDuration(1)).setMultiplier(2)),
      )
      .setRequestTimeout(pbDuration(3))
      .setPublishing(new def.Publishing().setTopicsList([pbResource('TopicA'), pbResource('TopicB')]).setMaxBodySize(4_194_304).setValidateMessageType(true))
      .setUserAgent(new def.UA().setLanguage(def.Language.NODE_JS).setVersion('5.0.0').setPlatform('linux x64').setHostname('host-1'));
    expect(decodeRequest('Telemetry', new svc.TelemetryCommand().setSettings(settings))).toStrictEqual({
      settings: {
        clientType: ClientType.PRODUCER,
        accessPoint: { scheme: AddressScheme.DOMAIN_NAME, addresses: [{ host: 'proxy.example', port: 8081 }] },
        backoffPolicy: {
          maxAttempts: 3,
          exponentialBackoff: { initial: { seconds: 0, nanos: 10_000_000 }, max: { seconds: 1, nanos: 0 }, multiplier: 2 },
        },
        requestTimeout: { seconds: 3, nanos: 0 },
        publishing: { topics: [resource('TopicA'), resource('TopicB')], maxBodySize: 4_194_304, validateMessageType: true },
        userAgent: { language: 8, version: '5.0.0', platform: 'linux x64', hostname: 'host-1' },
        metric: null,
        clientProperties: {},
      },
    });
  });

  it('TelemetryCommand with consumer Settings (Subscription, customized backoff, metric) and explicit false', () => {
    const subscription = new def.Subscription()
      .setGroup(pbResource('GID_A'))
      .setSubscriptionsList([
        new def.SubscriptionEntry().setTopic(pbResource('TopicA')).setExpression(new def.FilterExpression().setType(def.FilterType.SQL).setExpression('a > 1')),
      ])
      .setFifo(false)
      .setReceiveBatchSize(16)
      .setLongPollingTimeout(pbDuration(30));
    const settings = new def.Settings()
      .setClientType(def.ClientType.SIMPLE_CONSUMER)
      .setBackoffPolicy(new def.RetryPolicy().setMaxAttempts(16).setCustomizedBackoff(new def.CustomizedBackoff().setNextList([pbDuration(1), pbDuration(5)])))
      .setSubscription(subscription)
      .setMetric(new def.Metric().setOn(true).setEndpoints(pbEndpoints(def.AddressScheme.IPV6, '::1', 4317)));
    const decoded = decodeRequest('Telemetry', new svc.TelemetryCommand().setSettings(settings));
    expect(decoded).toStrictEqual({
      settings: {
        clientType: ClientType.SIMPLE_CONSUMER,
        backoffPolicy: { maxAttempts: 16, customizedBackoff: { next: [{ seconds: 1, nanos: 0 }, { seconds: 5, nanos: 0 }] } },
        subscription: {
          group: resource('GID_A'),
          subscriptions: [{ topic: resource('TopicA'), expression: { type: FilterType.SQL, expression: 'a > 1' } }],
          fifo: false,
          receiveBatchSize: 16,
          longPollingTimeout: { seconds: 30, nanos: 0 },
        },
        userAgent: null,
        metric: { on: true, endpoints: { scheme: AddressScheme.IPv6, addresses: [{ host: '::1', port: 4317 }] } },
        clientProperties: {},
      },
    });
  });

  it('TelemetryCommand answers the client sends: thread stack trace and verify result with status', () => {
    const trace = new svc.TelemetryCommand()
      .setStatus(new def.Status().setCode(def.Code.OK).setMessage('ok'))
      .setThreadStackTrace(new svc.ThreadStackTrace().setNonce('n1').setThreadStackTrace('main\n  at x'));
    expect(decodeRequest('Telemetry', trace)).toStrictEqual({
      status: { code: Code.OK, message: 'ok' },
      threadStackTrace: { nonce: 'n1', threadStackTrace: 'main\n  at x' },
    });
    const verify = new svc.TelemetryCommand()
      .setStatus(new def.Status().setCode(def.Code.FAILED_TO_CONSUME_MESSAGE).setMessage('boom'))
      .setVerifyMessageResult(new svc.VerifyMessageResult().setNonce('n2'));
    expect(decodeRequest('Telemetry', verify)).toStrictEqual({
      status: { code: Code.FAILED_TO_CONSUME_MESSAGE, message: 'boom' },
      verifyMessageResult: { nonce: 'n2' },
    });
  });

  it('ChangeInvisibleDurationRequest with lite topic and suspend', () => {
    const request = new svc.ChangeInvisibleDurationRequest()
      .setGroup(pbResource('GID_A'))
      .setTopic(pbResource('TopicA'))
      .setReceiptHandle('rh-1')
      .setInvisibleDuration(pbDuration(60, 500_000_000))
      .setMessageId('m1')
      .setLiteTopic('lt')
      .setSuspend(true);
    expect(decodeRequest('ChangeInvisibleDuration', request)).toStrictEqual({
      group: resource('GID_A'),
      topic: resource('TopicA'),
      receiptHandle: 'rh-1',
      invisibleDuration: { seconds: 60, nanos: 500_000_000 },
      messageId: 'm1',
      liteTopic: 'lt',
      suspend: true,
    });
  });

  it('QueryRouteRequest and QueryAssignmentRequest', () => {
    const endpoints = pbEndpoints(def.AddressScheme.IPV4, '127.0.0.1', 8081);
    expect(decodeRequest('QueryRoute', new svc.QueryRouteRequest().setTopic(pbResource('TopicA', 'ns')).setEndpoints(endpoints))).toStrictEqual({
      topic: resource('TopicA', 'ns'),
      endpoints: ipv4('127.0.0.1', 8081),
    });
    const assignment = new svc.QueryAssignmentRequest().setTopic(pbResource('TopicA')).setGroup(pbResource('GID_A')).setEndpoints(endpoints);
    expect(decodeRequest('QueryAssignment', assignment)).toStrictEqual({
      topic: resource('TopicA'),
      group: resource('GID_A'),
      endpoints: ipv4('127.0.0.1', 8081),
    });
  });

  it('EndTransactionRequest, ForwardMessageToDeadLetterQueueRequest, NotifyClientTerminationRequest, RecallMessageRequest', () => {
    const end = new svc.EndTransactionRequest()
      .setTopic(pbResource('TopicT'))
      .setMessageId('m1')
      .setTransactionId('tx-1')
      .setResolution(def.TransactionResolution.ROLLBACK)
      .setSource(def.TransactionSource.SOURCE_SERVER_CHECK)
      .setTraceContext('00-abc-def-01');
    expect(decodeRequest('EndTransaction', end)).toStrictEqual({
      topic: resource('TopicT'),
      messageId: 'm1',
      transactionId: 'tx-1',
      resolution: 2,
      source: 2,
      traceContext: '00-abc-def-01',
    });

    const dlq = new svc.ForwardMessageToDeadLetterQueueRequest()
      .setGroup(pbResource('GID_A'))
      .setTopic(pbResource('TopicA'))
      .setReceiptHandle('rh')
      .setMessageId('m1')
      .setDeliveryAttempt(17)
      .setMaxDeliveryAttempts(16);
    expect(decodeRequest('ForwardMessageToDeadLetterQueue', dlq)).toStrictEqual({
      group: resource('GID_A'),
      topic: resource('TopicA'),
      receiptHandle: 'rh',
      messageId: 'm1',
      deliveryAttempt: 17,
      maxDeliveryAttempts: 16,
    });

    expect(decodeRequest('NotifyClientTermination', new svc.NotifyClientTerminationRequest().setGroup(pbResource('GID_A')))).toStrictEqual({
      group: resource('GID_A'),
    });
    expect(decodeRequest('NotifyClientTermination', new svc.NotifyClientTerminationRequest())).toStrictEqual({});

    const recall = new svc.RecallMessageRequest().setTopic(pbResource('TopicD')).setRecallHandle('recall-1');
    expect(decodeRequest('RecallMessage', recall)).toStrictEqual({ topic: resource('TopicD'), recallHandle: 'recall-1' });
  });

  it('offset requests and SyncLiteSubscriptionRequest carry int64 values as numbers', () => {
    const queue = new def.MessageQueue().setTopic(pbResource('TopicA')).setId(1);
    const pull = new svc.PullMessageRequest()
      .setGroup(pbResource('GID_A'))
      .setMessageQueue(queue)
      .setOffset(2 ** 40 + 7)
      .setBatchSize(8)
      .setLongPollingTimeout(pbDuration(5));
    const decodedPull = decodeRequest('PullMessage', pull);
    expect(decodedPull.offset).toBe(2 ** 40 + 7);
    expect(decodedPull.longPollingTimeout).toEqual({ seconds: 5, nanos: 0 });
    expect(decodedPull.filterExpression).toBeNull();

    expect(decodeRequest('UpdateOffset', new svc.UpdateOffsetRequest().setGroup(pbResource('G')).setMessageQueue(queue).setOffset(99)).offset).toBe(99);

    const query = new svc.QueryOffsetRequest().setMessageQueue(queue).setQueryOffsetPolicy(def.QueryOffsetPolicy.TIMESTAMP).setTimestamp(pbTimestamp(BORN_MS));
    const decodedQuery = decodeRequest('QueryOffset', query);
    expect(decodedQuery.queryOffsetPolicy).toBe(2);
    expect(decodedQuery.timestamp).toEqual({ seconds: 1_700_000_000, nanos: 123_000_000 });

    const sync = new svc.SyncLiteSubscriptionRequest()
      .setAction(def.LiteSubscriptionAction.COMPLETE_ADD)
      .setTopic(pbResource('Parent'))
      .setGroup(pbResource('GID_L'))
      .setLiteTopicSetList(['a', 'b'])
      .setVersion(42)
      .setOffsetOption(new def.OffsetOption().setTailN(10));
    expect(decodeRequest('SyncLiteSubscription', sync)).toStrictEqual({
      action: 2,
      topic: resource('Parent'),
      group: resource('GID_L'),
      liteTopicSet: ['a', 'b'],
      version: 42,
      offsetOption: { tailN: 10 },
    });
  });

  it('an int64 beyond 2^53 decodes to a number that fails Number.isSafeInteger (the documented check)', () => {
    // protobufjs accepts decimal strings for int64, which lets the test put 2^63-1 on the wire.
    const wire = messagingServiceDefinition.UpdateOffset.requestSerialize({
      group: null,
      messageQueue: null,
      offset: '9223372036854775807' as unknown as number,
    });
    const decoded = messagingServiceDefinition.UpdateOffset.requestDeserialize(wire);
    expect(Number.isSafeInteger(decoded.offset)).toBe(false);
    expect(decoded.offset).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
    // The official client reads the same bytes as the same (lossy) number: no disagreement in range.
    expect(svc.UpdateOffsetRequest.deserializeBinary(wire).getOffset()).toBe(decoded.offset);
  });

  it('ignores fields a newer client adds (unknown field numbers are skipped, not surfaced)', () => {
    const known = Buffer.from(new svc.HeartbeatRequest().setClientType(def.ClientType.PRODUCER).serializeBinary());
    const field99Varint5 = Buffer.from([0x98, 0x06, 0x05]);
    const decoded = messagingServiceDefinition.Heartbeat.requestDeserialize(Buffer.concat([known, field99Varint5]));
    expect(decoded).toStrictEqual({ clientType: ClientType.PRODUCER });
  });

  it('decoded requests are plain data that survive structured cloning unchanged', () => {
    const request = new svc.AckMessageRequest().setGroup(pbResource('G')).setEntriesList([new svc.AckMessageEntry().setMessageId('m').setReceiptHandle('r')]);
    const decoded = decodeRequest('AckMessage', request);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(structuredClone(decoded)).toStrictEqual(decoded);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('responses: we encode, the official client decodes', () => {
  const OK = status(Code.OK, 'OK');

  it('QueryRouteResponse with message queues, brokers, endpoints and accepted message types', () => {
    const queue = (id: number, permission: Permission): M.MessageQueue => ({
      topic: resource('TopicA', 'ns'),
      id,
      permission,
      broker: { name: 'broker-a', id: 0, endpoints: ipv4('127.0.0.1', 8081) },
      acceptMessageTypes: [MessageType.NORMAL, MessageType.DELAY],
    });
    const bytes = encodeResponse('QueryRoute', { status: OK, messageQueues: [queue(0, Permission.READ_WRITE), queue(1, Permission.READ)] });
    const decoded = svc.QueryRouteResponse.deserializeBinary(bytes);

    expect(decoded.getStatus().getCode()).toBe(def.Code.OK);
    expect(decoded.getStatus().getMessage()).toBe('OK');
    const queues = decoded.getMessageQueuesList();
    expect(queues).toHaveLength(2);
    expect(queues.map((q: { getId(): number }) => q.getId())).toEqual([0, 1]);
    expect(queues[1].getPermission()).toBe(def.Permission.READ);
    expect(queues[0].getPermission()).toBe(def.Permission.READ_WRITE);
    expect(queues[0].getTopic().getResourceNamespace()).toBe('ns');
    expect(queues[0].getTopic().getName()).toBe('TopicA');
    expect(queues[0].getAcceptMessageTypesList()).toEqual([def.MessageType.NORMAL, def.MessageType.DELAY]);
    const broker = queues[0].getBroker();
    expect([broker.getName(), broker.getId()]).toEqual(['broker-a', 0]);
    expect(broker.getEndpoints().getScheme()).toBe(def.AddressScheme.IPV4);
    const address = broker.getEndpoints().getAddressesList()[0];
    expect([address.getHost(), address.getPort()]).toEqual(['127.0.0.1', 8081]);
  });

  it('SendMessageResponse entries with message id, transaction id, offset and recall handle', () => {
    const bytes = encodeResponse('SendMessage', {
      status: status(Code.MULTIPLE_RESULTS, 'batch'),
      entries: [
        { status: OK, messageId: 'm1', transactionId: 'tx-1', offset: 123_456_789_012, recallHandle: 'recall-1' },
        { status: status(Code.MESSAGE_BODY_TOO_LARGE, 'too large'), messageId: '', transactionId: '', offset: 0, recallHandle: '' },
      ],
    });
    const decoded = svc.SendMessageResponse.deserializeBinary(bytes);
    expect(decoded.getStatus().getCode()).toBe(def.Code.MULTIPLE_RESULTS);
    const [first, second] = decoded.getEntriesList();
    expect([first.getMessageId(), first.getTransactionId(), first.getOffset(), first.getRecallHandle()]).toEqual(['m1', 'tx-1', 123_456_789_012, 'recall-1']);
    expect(first.getStatus().getCode()).toBe(def.Code.OK);
    expect(second.getStatus().getCode()).toBe(def.Code.MESSAGE_BODY_TOO_LARGE);
    expect(second.getStatus().getMessage()).toBe('too large');
    expect(second.getOffset()).toBe(0);
  });

  it('ReceiveMessageResponse frames: status, message with delivery-side system properties, delivery timestamp', () => {
    const store = 1_700_000_100_250;
    const body = Buffer.alloc(1024, 0xab);
    const message: M.Message = {
      topic: resource('TopicA'),
      userProperties: { a: '1', b: '2' },
      systemProperties: {
        tag: 'TagA',
        keys: ['k'],
        messageId: 'm1',
        bodyDigest: { type: 1, checksum: 'ABCD' },
        bodyEncoding: 1,
        messageType: MessageType.FIFO,
        bornTimestamp: timestampFromMs(1_700_000_000_000),
        bornHost: '10.0.0.2',
        storeTimestamp: timestampFromMs(store),
        storeHost: '10.0.0.1:10911',
        receiptHandle: 'rh-1',
        queueId: 5,
        queueOffset: 2 ** 33 + 1,
        invisibleDuration: durationFromMs(30_000),
        deliveryAttempt: 2,
        messageGroup: 'group-7',
        deadLetterQueue: { topic: '%DLQ%GID_A', messageId: 'orig-1' },
      },
      body,
    };
    const frames: M.ReceiveMessageResponse[] = [{ status: OK }, { message }, { deliveryTimestamp: timestampFromMs(store) }];
    const decoded = frames.map((f) => svc.ReceiveMessageResponse.deserializeBinary(encodeResponse('ReceiveMessage', f)));
    const Case = svc.ReceiveMessageResponse.ContentCase;
    expect(decoded.map((d: { getContentCase(): number }) => d.getContentCase())).toEqual([Case.STATUS, Case.MESSAGE, Case.DELIVERY_TIMESTAMP]);
    expect(decoded[0].getStatus().getCode()).toBe(def.Code.OK);
    expect(secondsNanos(decoded[2].getDeliveryTimestamp())).toEqual({ seconds: 1_700_000_100, nanos: 250_000_000 });

    const m = decoded[1].getMessage();
    expect(Buffer.from(m.getBody_asU8())).toEqual(body);
    expect(Object.fromEntries(m.getUserPropertiesMap().entries())).toEqual({ a: '1', b: '2' });
    const sp = m.getSystemProperties();
    expect(sp.getTag()).toBe('TagA');
    expect(sp.getKeysList()).toEqual(['k']);
    expect(sp.getBodyDigest().getType()).toBe(def.DigestType.CRC32);
    expect(sp.getBodyDigest().getChecksum()).toBe('ABCD');
    expect(sp.getMessageType()).toBe(def.MessageType.FIFO);
    expect(secondsNanos(sp.getStoreTimestamp())).toEqual({ seconds: 1_700_000_100, nanos: 250_000_000 });
    expect(sp.getStoreHost()).toBe('10.0.0.1:10911');
    expect(sp.getReceiptHandle()).toBe('rh-1');
    expect(sp.getQueueId()).toBe(5);
    expect(sp.getQueueOffset()).toBe(2 ** 33 + 1);
    expect(secondsNanos(sp.getInvisibleDuration())).toEqual({ seconds: 30, nanos: 0 });
    expect(sp.getDeliveryAttempt()).toBe(2);
    expect(sp.getMessageGroup()).toBe('group-7');
    expect(sp.getDeadLetterQueue().getTopic()).toBe('%DLQ%GID_A');
    expect(sp.hasDeliveryTimestamp()).toBe(false);
    expect(sp.hasTraceContext()).toBe(false);
  });

  it('TelemetryCommand with server Settings: backoff policy and subscription', () => {
    const settings: M.Settings = {
      clientType: ClientType.PUSH_CONSUMER,
      backoffPolicy: {
        maxAttempts: 16,
        exponentialBackoff: { initial: durationFromMs(1000), max: durationFromMs(60_000), multiplier: 2 },
      },
      requestTimeout: durationFromMs(3000),
      subscription: { subscriptions: [], fifo: true, receiveBatchSize: 32, longPollingTimeout: durationFromMs(30_000) },
      userAgent: null,
      metric: { on: false },
      clientProperties: {},
    };
    const decoded = svc.TelemetryCommand.deserializeBinary(encodeResponse('Telemetry', { status: OK, settings }));
    expect(decoded.getCommandCase()).toBe(svc.TelemetryCommand.CommandCase.SETTINGS);
    expect(decoded.getStatus().getCode()).toBe(def.Code.OK);
    const s = decoded.getSettings();
    expect(s.getClientType()).toBe(def.ClientType.PUSH_CONSUMER);
    const policy = s.getBackoffPolicy();
    expect(policy.getMaxAttempts()).toBe(16);
    expect(policy.getStrategyCase()).toBe(def.RetryPolicy.StrategyCase.EXPONENTIAL_BACKOFF);
    expect(secondsNanos(policy.getExponentialBackoff().getInitial())).toEqual({ seconds: 1, nanos: 0 });
    expect(secondsNanos(policy.getExponentialBackoff().getMax())).toEqual({ seconds: 60, nanos: 0 });
    expect(policy.getExponentialBackoff().getMultiplier()).toBe(2);
    expect(secondsNanos(s.getRequestTimeout())).toEqual({ seconds: 3, nanos: 0 });
    expect(s.getPubSubCase()).toBe(def.Settings.PubSubCase.SUBSCRIPTION);
    const sub = s.getSubscription();
    expect([sub.getFifo(), sub.getReceiveBatchSize()]).toEqual([true, 32]);
    expect(secondsNanos(sub.getLongPollingTimeout())).toEqual({ seconds: 30, nanos: 0 });
    expect(sub.hasGroup()).toBe(false);
    expect(s.hasMetric()).toBe(true);
    expect(s.getMetric().getOn()).toBe(false);

    const customized: M.Settings = {
      backoffPolicy: { maxAttempts: 3, customizedBackoff: { next: [durationFromMs(1500), durationFromMs(10_000)] } },
      publishing: { topics: [resource('TopicA')], maxBodySize: 4_194_304, validateMessageType: true },
      userAgent: null,
      metric: null,
      clientProperties: {},
    };
    const decoded2 = svc.TelemetryCommand.deserializeBinary(encodeResponse('Telemetry', { settings: customized })).getSettings();
    expect(decoded2.getBackoffPolicy().getStrategyCase()).toBe(def.RetryPolicy.StrategyCase.CUSTOMIZED_BACKOFF);
    expect(decoded2.getBackoffPolicy().getCustomizedBackoff().getNextList().map(secondsNanos)).toEqual([
      { seconds: 1, nanos: 500_000_000 },
      { seconds: 10, nanos: 0 },
    ]);
    expect(decoded2.getPubSubCase()).toBe(def.Settings.PubSubCase.PUBLISHING);
    expect(decoded2.getPublishing().getMaxBodySize()).toBe(4_194_304);
    expect(decoded2.getPublishing().getValidateMessageType()).toBe(true);
    expect(decoded2.hasClientType()).toBe(false);
  });

  it('TelemetryCommand server commands arrive as the right oneof case', () => {
    const message: M.Message = { topic: resource('TopicT'), userProperties: {}, systemProperties: null, body: Buffer.from('half') };
    const Case = svc.TelemetryCommand.CommandCase;
    const cases: [M.TelemetryCommand, number][] = [
      [{ recoverOrphanedTransactionCommand: { message, transactionId: 'tx-9' } }, Case.RECOVER_ORPHANED_TRANSACTION_COMMAND],
      [{ printThreadStackTraceCommand: { nonce: 'n1' } }, Case.PRINT_THREAD_STACK_TRACE_COMMAND],
      [{ verifyMessageCommand: { nonce: 'n2', message } }, Case.VERIFY_MESSAGE_COMMAND],
      [{ reconnectEndpointsCommand: { nonce: 'n3' } }, Case.RECONNECT_ENDPOINTS_COMMAND],
      [{ notifyUnsubscribeLiteCommand: { liteTopic: 'lt' } }, Case.NOTIFY_UNSUBSCRIBE_LITE_COMMAND],
    ];
    for (const [command, expected] of cases) {
      expect(svc.TelemetryCommand.deserializeBinary(encodeResponse('Telemetry', command)).getCommandCase()).toBe(expected);
    }
    const recover = svc.TelemetryCommand.deserializeBinary(encodeResponse('Telemetry', cases[0]![0])).getRecoverOrphanedTransactionCommand();
    expect(recover.getTransactionId()).toBe('tx-9');
    expect(Buffer.from(recover.getMessage().getBody_asU8()).toString()).toBe('half');
  });

  it('every Code value reaches the client as the same number', () => {
    for (const [name, code] of Object.entries(Code)) {
      const decoded = svc.HeartbeatResponse.deserializeBinary(encodeResponse('Heartbeat', { status: status(code, name) }));
      const expected = code === 0 ? undefined : code;
      // A zero code is the proto3 default: it is not on the wire and reads back as 0.
      expect(decoded.getStatus().getCode() || undefined, name).toBe(expected);
      expect(decoded.getStatus().getMessage()).toBe(name);
      if (name in def.Code) expect(def.Code[name], name).toBe(code);
    }
  });

  it('the small responses: Ack, ChangeInvisibleDuration, Recall, offsets, Pull', () => {
    const ack = svc.AckMessageResponse.deserializeBinary(
      encodeResponse('AckMessage', {
        status: OK,
        entries: [{ messageId: 'm1', receiptHandle: 'rh', status: status(Code.INVALID_RECEIPT_HANDLE, 'expired') }],
      }),
    );
    expect(ack.getEntriesList()[0].getStatus().getCode()).toBe(def.Code.INVALID_RECEIPT_HANDLE);
    expect(ack.getEntriesList()[0].getReceiptHandle()).toBe('rh');

    const change = svc.ChangeInvisibleDurationResponse.deserializeBinary(encodeResponse('ChangeInvisibleDuration', { status: OK, receiptHandle: 'rh-2' }));
    expect(change.getReceiptHandle()).toBe('rh-2');

    const recall = svc.RecallMessageResponse.deserializeBinary(encodeResponse('RecallMessage', { status: OK, messageId: 'm7' }));
    expect(recall.getMessageId()).toBe('m7');

    expect(svc.GetOffsetResponse.deserializeBinary(encodeResponse('GetOffset', { status: OK, offset: 2 ** 50 })).getOffset()).toBe(2 ** 50);
    expect(svc.QueryOffsetResponse.deserializeBinary(encodeResponse('QueryOffset', { status: OK, offset: 12 })).getOffset()).toBe(12);

    const next = svc.PullMessageResponse.deserializeBinary(encodeResponse('PullMessage', { nextOffset: 77 }));
    expect(next.getContentCase()).toBe(svc.PullMessageResponse.ContentCase.NEXT_OFFSET);
    expect(next.getNextOffset()).toBe(77);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('grpc-js round trip with the official generated client', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function startServer(handlers: Partial<MessagingServiceHandlers>, options: Record<string, number> = {}): Promise<number> {
    const server = new Server(options);
    addMessagingService(server, handlers);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    cleanups.push(() => server.forceShutdown());
    return port;
  }

  function connect(port: number) {
    const client = new grpcPb.MessagingServiceClient(`127.0.0.1:${port}`, clientGrpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    return client;
  }

  /** Calls a unary method of the generated client; resolves with the response or the gRPC error. */
  function unary(client: any, method: string, request: unknown): Promise<{ error: any; response: any }> {
    const deadline = Date.now() + 10_000;
    return new Promise((resolve) => client[method](request, new clientGrpc.Metadata(), { deadline }, (error: any, response: any) => resolve({ error, response })));
  }

  it('the official client resolves a @grpc/grpc-js 1.x (recorded here: which one)', () => {
    const version = JSON.parse(readFileSync(join(clientGrpcPath.split('/build/')[0]!, 'package.json'), 'utf8')).version as string;
    expect(version).toMatch(/^1\./);
    // Today npm dedupes it to the project's own copy; the test holds either way since only bytes cross.
    expect(clientGrpcPath).toContain('node_modules/@grpc/grpc-js/');
  });

  it('serves a stub QueryRoute that the official client calls', async () => {
    const seen: M.QueryRouteRequest[] = [];
    const port = await startServer({
      QueryRoute(call, callback) {
        seen.push(call.request);
        callback(null, {
          status: status(Code.OK, 'OK'),
          messageQueues: [
            {
              topic: call.request.topic,
              id: 0,
              permission: Permission.READ_WRITE,
              broker: { name: 'broker-a', id: 0, endpoints: call.request.endpoints },
              acceptMessageTypes: [MessageType.NORMAL],
            },
          ],
        });
      },
    });
    const client = connect(port);
    const request = new svc.QueryRouteRequest().setTopic(pbResource('TopicA', 'ns')).setEndpoints(pbEndpoints(def.AddressScheme.IPV4, '127.0.0.1', port));
    const { error, response } = await unary(client, 'queryRoute', request);

    expect(error).toBeNull();
    expect(seen).toStrictEqual([{ topic: resource('TopicA', 'ns'), endpoints: ipv4('127.0.0.1', port) }]);
    expect(response.getStatus().getCode()).toBe(def.Code.OK);
    const [queue] = response.getMessageQueuesList();
    expect(queue.getTopic().getName()).toBe('TopicA');
    expect(queue.getBroker().getEndpoints().getAddressesList()[0].getPort()).toBe(port);
  });

  it('our definition also serves as a grpc-js client (both directions decode to plain objects)', async () => {
    const port = await startServer({
      SendMessage(call, callback) {
        const [message] = call.request.messages;
        callback(null, {
          status: status(Code.OK, 'OK'),
          entries: [{ status: status(Code.OK, 'OK'), messageId: message!.systemProperties!.messageId, transactionId: '', offset: 41, recallHandle: '' }],
        });
      },
    });
    const Client = makeGenericClientConstructor(messagingServiceDefinition, 'MessagingService');
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure()) as any;
    cleanups.push(() => client.close());
    const systemProperties: M.SystemProperties = {
      keys: [],
      messageId: 'm-9',
      bodyDigest: null,
      bodyEncoding: 1,
      messageType: MessageType.NORMAL,
      bornTimestamp: null,
      bornHost: '',
      storeHost: '',
      queueId: 0,
    };
    const request: M.SendMessageRequest = {
      messages: [{ topic: resource('TopicA'), userProperties: {}, systemProperties, body: Buffer.from('b') }],
    };
    const response = await new Promise<M.SendMessageResponse>((resolve, reject) =>
      client.SendMessage(request, (error: unknown, value: M.SendMessageResponse) => (error ? reject(error) : resolve(value))),
    );
    expect(response).toStrictEqual({
      status: { code: Code.OK, message: 'OK' },
      entries: [{ status: { code: Code.OK, message: 'OK' }, messageId: 'm-9', transactionId: '', offset: 41, recallHandle: '' }],
    });
  });

  it('methods without a handler answer gRPC UNIMPLEMENTED', async () => {
    const port = await startServer({});
    const { error } = await unary(connect(port), 'getOffset', new svc.GetOffsetRequest());
    expect(error?.code).toBe(grpcStatus.UNIMPLEMENTED);
  });

  it('answers undecodable request bytes with gRPC INTERNAL and keeps serving', async () => {
    let called = 0;
    const port = await startServer({
      Heartbeat(_call, callback) {
        called++;
        callback(null, { status: status(Code.OK, 'OK') });
      },
    });
    const raw = new clientGrpc.Client(`127.0.0.1:${port}`, clientGrpc.credentials.createInsecure());
    cleanups.push(() => raw.close());
    // Field 1 (group), length-delimited, claims 100 bytes but the frame ends: protobufjs must throw.
    const truncated = Buffer.from([0x0a, 0x64, 0x01]);
    const error = await new Promise<any>((resolve) =>
      raw.makeUnaryRequest(methodPath('Heartbeat'), () => truncated, (b: Buffer) => b, {}, (e: unknown) => resolve(e)),
    );
    expect(error?.code).toBe(grpcStatus.INTERNAL);
    expect(called).toBe(0);
    const { error: after } = await unary(connect(port), 'heartbeat', new svc.HeartbeatRequest());
    expect(after).toBeNull();
    expect(called).toBe(1);
  });

  it('streams ReceiveMessage frames to the client in order', async () => {
    const port = await startServer({
      ReceiveMessage(call) {
        call.write({ status: status(Code.OK, 'OK') });
        const body = Buffer.from(`batch of ${call.request.batchSize}`);
        call.write({ message: { topic: resource('TopicA'), userProperties: {}, systemProperties: null, body } });
        call.write({ deliveryTimestamp: timestampFromMs(1_700_000_000_000) });
        call.end();
      },
    });
    const stream = connect(port).receiveMessage(new svc.ReceiveMessageRequest().setGroup(pbResource('G')).setBatchSize(4));
    const frames: any[] = [];
    for await (const frame of stream) frames.push(frame);
    const Case = svc.ReceiveMessageResponse.ContentCase;
    expect(frames.map((f) => f.getContentCase())).toEqual([Case.STATUS, Case.MESSAGE, Case.DELIVERY_TIMESTAMP]);
    expect(Buffer.from(frames[1].getMessage().getBody_asU8()).toString()).toBe('batch of 4');
  });

  it('echoes Settings on a Telemetry stream (bidi)', async () => {
    const port = await startServer({
      Telemetry(call: ServerDuplexStream<M.TelemetryCommand, M.TelemetryCommand>) {
        call.on('data', (command: M.TelemetryCommand) => {
          if (command.settings !== undefined) call.write({ status: status(Code.OK, 'OK'), settings: command.settings });
        });
        call.on('end', () => call.end());
      },
    });
    const stream = connect(port).telemetry(new clientGrpc.Metadata());
    const settings = new def.Settings()
      .setClientType(def.ClientType.PRODUCER)
      .setPublishing(new def.Publishing().setTopicsList([pbResource('TopicA')]))
      .setUserAgent(new def.UA().setLanguage(def.Language.NODE_JS).setVersion('5.0.0'));
    const errors: unknown[] = [];
    stream.on('error', (error: unknown) => errors.push(error));
    const first = new Promise<any>((resolve) => stream.once('data', resolve));
    stream.write(new svc.TelemetryCommand().setSettings(settings));
    const answer = await first;
    // Half-close; the server ends its side in turn, and the client sees a clean OK status.
    const closed = new Promise<any>((resolve) => stream.on('status', resolve));
    stream.end();
    stream.resume();
    expect((await closed).code).toBe(grpcStatus.OK);
    expect(errors).toEqual([]);
    expect(answer.getStatus().getCode()).toBe(def.Code.OK);
    expect(answer.getSettings().getClientType()).toBe(def.ClientType.PRODUCER);
    expect(answer.getSettings().getPublishing().getTopicsList()[0].getName()).toBe('TopicA');
    expect(answer.getSettings().getUserAgent().getLanguage()).toBe(def.Language.NODE_JS);
  });

  describe('inbound size limit', () => {
    const FOUR_MIB = 4 * 1024 * 1024;
    /** A SendMessageRequest the way a producer sends a 4 MiB body (RocketMQ's default maxMessageSize). */
    function bigSend() {
      const message = new def.Message()
        .setTopic(pbResource('TopicA'))
        .setBody(Buffer.alloc(FOUR_MIB, 0x5a))
        .setSystemProperties(new def.SystemProperties().setMessageId('big').setTag('T').setKeysList(['k']).setBornTimestamp(pbTimestamp(Date.now())));
      message.getUserPropertiesMap().set('p', 'v');
      return new svc.SendMessageRequest().setMessagesList([message]);
    }
    const sizes: number[] = [];
    const handlers: Partial<MessagingServiceHandlers> = {
      SendMessage(call, callback) {
        sizes.push(call.request.messages[0]!.body.length);
        callback(null, { status: status(Code.OK, 'OK'), entries: [] });
      },
    };

    it('accepts a 4 MiB body plus headers when grpc.max_receive_message_length is set', async () => {
      sizes.length = 0;
      const port = await startServer(handlers, { 'grpc.max_receive_message_length': GRPC_MAX_INBOUND_MESSAGE_SIZE_DEFAULT });
      const { error, response } = await unary(connect(port), 'sendMessage', bigSend());
      expect(error).toBeNull();
      expect(response.getStatus().getCode()).toBe(def.Code.OK);
      expect(sizes).toEqual([FOUR_MIB]);
    });

    it('rejects the same request with RESOURCE_EXHAUSTED under grpc-js defaults (why the option is needed)', async () => {
      sizes.length = 0;
      const port = await startServer(handlers);
      const { error } = await unary(connect(port), 'sendMessage', bigSend());
      expect(error?.code).toBe(grpcStatus.RESOURCE_EXHAUSTED);
      expect(sizes).toEqual([]);
    });
  });
});

