import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RemotingCodecError } from '../../../src/net/remoting/codec.ts';
import { RemotingConnection } from '../../../src/net/remoting/connection.ts';
import {
  RemotingClient,
  RemotingClientError,
  type RemotingClientErrorCode,
  type RemotingClientOptions,
  requestOf,
} from '../../../src/net/remoting/remoting-client.ts';
import {
  createRequest,
  createResponse,
  isOneway,
  isResponse,
  type RemotingCommand,
  RequestCode,
  ResponseCode,
  type SerializeTypeName,
} from '../../../src/net/remoting/remoting-command.ts';
import { ManualClock } from '../../../src/runtime/clock.ts';

/** What the test server hands its request handler: the request and the connection to answer on. */
type ServerRequest = { cmd: RemotingCommand; conn: RemotingConnection };

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A loopback server built from node:net and RemotingConnection. `onRequest` gets every request;
 * responses (to requests the server sent) are collected in `responses`.
 */
async function startServer(onRequest: (req: ServerRequest) => void = () => {}) {
  const connections: RemotingConnection[] = [];
  const sockets: net.Socket[] = [];
  const responses: RemotingCommand[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    connections.push(
      new RemotingConnection(socket, {
        onRequest: (cmd, conn) => onRequest({ cmd, conn }),
        onResponse: (cmd) => responses.push(cmd),
        log: () => {},
      }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const conn of connections) conn.close();
    server.close();
    await once(server, 'close');
  });
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return { address, connections, sockets, responses, server };
}

async function connect(address: string, options?: RemotingClientOptions): Promise<RemotingClient> {
  const client = await RemotingClient.connect(address, options);
  cleanups.push(() => client.close());
  return client;
}

/** Polls until `condition` holds; the test timeout bounds it. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}

/** The code of the RemotingClientError a promise rejects with. */
async function rejectionCode(promise: Promise<unknown>): Promise<RemotingClientErrorCode> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(RemotingClientError);
  return (error as RemotingClientError).code;
}

const echo = ({ cmd, conn }: ServerRequest): void => {
  if (!isOneway(cmd)) conn.send(createResponse(cmd, ResponseCode.SUCCESS, `echo ${cmd.extFields.n ?? ''}`));
};

describe('RemotingClient: request and response', () => {
  it('matches responses sent in reverse order to their requests by opaque', async () => {
    const held: ServerRequest[] = [];
    const { address } = await startServer((req) => held.push(req));
    const client = await connect(address);
    const answers = [0, 1, 2, 3].map((n) => client.invoke(requestOf(RequestCode.GET_ROUTEINFO_BY_TOPIC, { n: `${n}` }), 5000));
    await until(() => held.length === 4);
    for (const { cmd, conn } of held.reverse()) {
      conn.send(createResponse(cmd, ResponseCode.SUCCESS, `for ${cmd.extFields.n}`, { extFields: { n: cmd.extFields.n ?? '' } }));
    }
    const responses = await Promise.all(answers);
    expect(responses.map((r) => r.remark)).toEqual(['for 0', 'for 1', 'for 2', 'for 3']);
    expect(responses.every((r) => isResponse(r) && r.code === ResponseCode.SUCCESS)).toBe(true);
    expect(new Set(held.map((req) => req.cmd.opaque)).size).toBe(4);
    expect(client.inFlight).toBe(0);
  });

  it('pipelines 1000 concurrent invokes on one socket', async () => {
    const held: ServerRequest[] = [];
    const { address, connections } = await startServer((req) => {
      held.push(req);
      // Answer nothing until every request has arrived: all 1000 are in flight together.
      if (held.length === 1000) for (const r of held) echo(r);
    });
    const client = await connect(address);
    const answers = Array.from({ length: 1000 }, (_, n) => client.invoke(requestOf(RequestCode.HEART_BEAT, { n: `${n}` }), 10_000));
    expect(client.inFlight).toBe(1000);
    const responses = await Promise.all(answers);
    expect(responses.map((r) => r.remark)).toEqual(Array.from({ length: 1000 }, (_, n) => `echo ${n}`));
    expect(connections).toHaveLength(1);
    expect(new Set(held.map((req) => req.cmd.opaque)).size).toBe(1000);
    expect(client.inFlight).toBe(0);
  });

  it('passes the body both ways and leaves the caller request untouched', async () => {
    const { address } = await startServer(({ cmd, conn }) =>
      conn.send(createResponse(cmd, ResponseCode.SUCCESS, undefined, { body: Buffer.from(`got ${Buffer.from(cmd.body ?? []).toString()}`) })),
    );
    const client = await connect(address);
    const request = requestOf(RequestCode.SEND_MESSAGE, { topic: 'T' }, Buffer.from('payload'));
    const before = { ...request, extFields: { ...request.extFields } };
    const response = await client.invoke(request, 5000);
    expect(Buffer.from(response.body ?? []).toString()).toBe('got payload');
    expect(request).toEqual(before);
  });

  it.each(['JSON', 'ROCKETMQ'] as const)('sends every request in %s when so configured and reads the answer', async (serializeType) => {
    const seen: RemotingCommand[] = [];
    const { address } = await startServer((req) => {
      seen.push(req.cmd);
      req.conn.send(createResponse(req.cmd, ResponseCode.TOPIC_NOT_EXIST, 'no topic é', { extFields: { k: 'v' } }));
    });
    const client = await connect(address, { serializeType });
    // The request says JSON (createRequest's default); the client's option rules.
    const response = await client.invoke(createRequest({ code: RequestCode.GET_ROUTEINFO_BY_TOPIC, opaque: 0, extFields: { topic: 'T' } }), 5000);
    expect(seen[0]?.serializeType).toBe(serializeType);
    expect(seen[0]?.extFields).toEqual({ topic: 'T' });
    expect(response).toMatchObject({ code: ResponseCode.TOPIC_NOT_EXIST, remark: 'no topic é', extFields: { k: 'v' }, serializeType });
  });

  it('rejects a request the chosen serialization cannot carry with a codec error, holding nothing', async () => {
    const { address } = await startServer(echo);
    const client = await connect(address, { serializeType: 'ROCKETMQ' });
    const error = await client.invoke(requestOf(RequestCode.POP_MESSAGE), 5000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemotingCodecError);
    expect((error as RemotingCodecError).code).toBe('FIELD_OUT_OF_RANGE');
    expect(client.inFlight).toBe(0);
    expect((await client.invoke(requestOf(RequestCode.HEART_BEAT, { n: 'ok' }), 5000)).remark).toBe('echo ok');
  });
});

describe('RemotingClient: timeouts and bounds', () => {
  it('rejects with REMOTING_TIMEOUT when no response comes in time', async () => {
    const held: ServerRequest[] = [];
    const { address } = await startServer((req) => held.push(req));
    const clock = new ManualClock();
    const client = await connect(address, { clock });
    const answer = client.invoke(requestOf(RequestCode.HEART_BEAT), 3000);
    await until(() => held.length === 1);
    clock.advance(2999);
    expect(client.inFlight).toBe(1);
    clock.advance(1);
    expect(await rejectionCode(answer)).toBe('REMOTING_TIMEOUT');
    expect(client.inFlight).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('drops a response that arrives after its timeout, and later requests get their own answers', async () => {
    const held: ServerRequest[] = [];
    const { address } = await startServer((req) => held.push(req));
    const clock = new ManualClock();
    const client = await connect(address, { clock });
    const late = client.invoke(requestOf(RequestCode.HEART_BEAT, { n: 'late' }), 1000);
    await until(() => held.length === 1);
    clock.advance(1000);
    expect(await rejectionCode(late)).toBe('REMOTING_TIMEOUT');

    const next = client.invoke(requestOf(RequestCode.HEART_BEAT, { n: 'next' }), 1000);
    await until(() => held.length === 2);
    echo(held[0] as ServerRequest); // the late answer first
    await until(() => client.responsesDropped === 1);
    echo(held[1] as ServerRequest);
    expect((await next).remark).toBe('echo next');
    expect(client.responsesDropped).toBe(1);
  });

  it('refuses requests beyond inFlightMax with REMOTING_TOO_MANY_REQUESTS, and accepts again after an answer', async () => {
    const held: ServerRequest[] = [];
    const { address } = await startServer((req) => held.push(req));
    const client = await connect(address, { inFlightMax: 2 });
    const first = client.invoke(requestOf(RequestCode.HEART_BEAT, { n: '1' }), 5000);
    const second = client.invoke(requestOf(RequestCode.HEART_BEAT, { n: '2' }), 5000);
    expect(await rejectionCode(client.invoke(requestOf(RequestCode.HEART_BEAT), 5000))).toBe('REMOTING_TOO_MANY_REQUESTS');
    await until(() => held.length === 2);
    echo(held[0] as ServerRequest);
    expect((await first).remark).toBe('echo 1');
    const third = client.invoke(requestOf(RequestCode.HEART_BEAT, { n: '3' }), 5000);
    await until(() => held.length === 3);
    echo(held[1] as ServerRequest);
    echo(held[2] as ServerRequest);
    expect((await second).remark).toBe('echo 2');
    expect((await third).remark).toBe('echo 3');
  });

  it('refuses requests while the write queue is above writeQueueBytesMax', async () => {
    const { address, sockets } = await startServer(echo);
    const client = await connect(address, { writeQueueBytesMax: 64 * 1024 });
    await client.invoke(requestOf(RequestCode.HEART_BEAT), 5000); // the server connection now exists
    const serverSocket = sockets[0] as net.Socket;
    // Stop the server from reading: the kernel buffers fill and the rest stays in the client's queue.
    serverSocket.pause();
    const big = client.invoke(requestOf(RequestCode.SEND_MESSAGE, {}, Buffer.alloc(15 * 1024 * 1024)), 30_000);
    expect(await rejectionCode(client.invoke(requestOf(RequestCode.HEART_BEAT), 5000))).toBe('REMOTING_TOO_MANY_REQUESTS');
    expect(() => client.invokeOneway(requestOf(RequestCode.HEART_BEAT))).toThrow(
      expect.objectContaining({ code: 'REMOTING_TOO_MANY_REQUESTS' }),
    );
    serverSocket.resume();
    await big; // once the server reads, the queue drains and the big request is answered
    expect((await client.invoke(requestOf(RequestCode.HEART_BEAT, { n: 'after' }), 5000)).remark).toBe('echo after');
  });
});

describe('RemotingClient: closing', () => {
  it('rejects every in-flight request with REMOTING_CLOSED when the server closes the socket', async () => {
    const held: ServerRequest[] = [];
    const { address, connections } = await startServer((req) => held.push(req));
    const client = await connect(address);
    let closes = 0;
    client.onClose(() => {
      closes += 1;
    });
    const answers = Array.from({ length: 50 }, () => client.invoke(requestOf(RequestCode.HEART_BEAT), 60_000));
    await until(() => held.length === 50);
    (connections[0] as RemotingConnection).close();
    const codes = await Promise.all(answers.map(rejectionCode));
    expect(new Set(codes)).toEqual(new Set(['REMOTING_CLOSED']));
    expect(client.closed).toBe(true);
    expect(client.inFlight).toBe(0);
    expect(closes).toBe(1);
    expect(await rejectionCode(client.invoke(requestOf(RequestCode.HEART_BEAT), 1000))).toBe('REMOTING_CLOSED');
    expect(() => client.invokeOneway(requestOf(RequestCode.HEART_BEAT))).toThrow(expect.objectContaining({ code: 'REMOTING_CLOSED' }));
  });

  it('close() rejects waiting requests at once, flushes what was written, and calls onClose once', async () => {
    const held: ServerRequest[] = [];
    const { address } = await startServer((req) => held.push(req));
    const client = await connect(address);
    let closes = 0;
    client.onClose(() => {
      closes += 1;
    });
    const waiting = client.invoke(requestOf(RequestCode.HEART_BEAT), 60_000);
    client.invokeOneway(requestOf(RequestCode.UNREGISTER_CLIENT, { n: 'bye' }));
    const closed = client.close();
    expect(client.closed).toBe(true);
    expect(await rejectionCode(waiting)).toBe('REMOTING_CLOSED');
    await closed;
    await until(() => held.length === 2);
    expect(held.map((req) => req.cmd.code)).toEqual([RequestCode.HEART_BEAT, RequestCode.UNREGISTER_CLIENT]);
    await client.close();
    expect(closes).toBe(1);
    let lateListener = 0;
    client.onClose(() => {
      lateListener += 1;
    });
    await Promise.resolve();
    expect(lateListener).toBe(1);
  });

  it('fails to connect with stable codes', async () => {
    expect(await rejectionCode(RemotingClient.connect('no-port-here'))).toBe('REMOTING_ADDRESS_INVALID');
    const { address, server } = await startServer();
    server.close();
    await until(() => !server.listening);
    expect(await rejectionCode(RemotingClient.connect(address))).toBe('REMOTING_CONNECT_FAILED');
  });
});

describe('RemotingClient: oneway and server-initiated requests', () => {
  it('sends oneway requests with the oneway flag and waits for nothing', async () => {
    const seen: RemotingCommand[] = [];
    const { address } = await startServer(({ cmd }) => seen.push(cmd));
    const client = await connect(address, { serializeType: 'ROCKETMQ' });
    client.invokeOneway(requestOf(RequestCode.UNREGISTER_CLIENT, { clientID: 'c1' }));
    client.invokeOneway(requestOf(RequestCode.UNREGISTER_CLIENT, { clientID: 'c2' }));
    expect(client.inFlight).toBe(0);
    await until(() => seen.length === 2);
    expect(seen.map((cmd) => [isOneway(cmd), cmd.flag, cmd.serializeType, cmd.extFields.clientID])).toEqual([
      [true, 2, 'ROCKETMQ', 'c1'],
      [true, 2, 'ROCKETMQ', 'c2'],
    ]);
    expect(seen[0]?.opaque).not.toBe(seen[1]?.opaque);
  });

  it.each(['JSON', 'ROCKETMQ'] as SerializeTypeName[])(
    'answers a server request in its serialization (%s), stamped with its opaque',
    async (serializeType) => {
      const { address, connections, responses } = await startServer(echo);
      // The client's own serialization differs on purpose: answers follow the server's request.
      const client = await connect(address, { serializeType: serializeType === 'JSON' ? 'ROCKETMQ' : 'JSON' });
      const handled: RemotingCommand[] = [];
      client.onRequest((request) => {
        handled.push(request);
        // A bare response: opaque, flag and serialization are the client's job to fill in.
        return { code: ResponseCode.SUCCESS, language: 'JAVA', version: 0, opaque: 0, flag: 0, extFields: { ok: 'yes' }, serializeType: 'JSON' };
      });
      await client.invoke(requestOf(RequestCode.HEART_BEAT), 5000);
      const server = connections[0] as RemotingConnection;
      server.send(
        createRequest({ code: RequestCode.GET_CONSUMER_RUNNING_INFO, opaque: 4242, extFields: { consumerGroup: 'G' }, serializeType }),
      );
      await until(() => responses.length === 1);
      expect(handled.map((cmd) => [cmd.code, cmd.extFields.consumerGroup])).toEqual([[RequestCode.GET_CONSUMER_RUNNING_INFO, 'G']]);
      expect(responses[0]).toMatchObject({ code: ResponseCode.SUCCESS, opaque: 4242, flag: 1, serializeType, extFields: { ok: 'yes' } });
    },
  );

  it('sends nothing when the handler returns nothing, and awaits async handlers', async () => {
    const { address, connections, responses } = await startServer(echo);
    const client = await connect(address);
    client.onRequest(async (request) => {
      if (request.code === RequestCode.NOTIFY_CONSUMER_IDS_CHANGED) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return createResponse(request, ResponseCode.TRANSACTION_SHOULD_COMMIT);
    });
    await client.invoke(requestOf(RequestCode.HEART_BEAT), 5000);
    const server = connections[0] as RemotingConnection;
    server.send(createRequest({ code: RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, opaque: 1 }));
    server.send(createRequest({ code: RequestCode.CHECK_TRANSACTION_STATE, opaque: 2 }));
    await until(() => responses.length === 1);
    // Give a stray answer to opaque 1 time to show up before concluding there is none.
    server.send(createRequest({ code: RequestCode.CHECK_TRANSACTION_STATE, opaque: 3 }));
    await until(() => responses.length === 2);
    expect(responses.map((cmd) => [cmd.opaque, cmd.code])).toEqual([
      [2, ResponseCode.TRANSACTION_SHOULD_COMMIT],
      [3, ResponseCode.TRANSACTION_SHOULD_COMMIT],
    ]);
  });

  it('answers REQUEST_CODE_NOT_SUPPORTED without a handler, SYSTEM_ERROR when it throws, nothing to oneway', async () => {
    const { address, connections, responses } = await startServer(echo);
    const client = await connect(address);
    await client.invoke(requestOf(RequestCode.HEART_BEAT), 5000);
    const server = connections[0] as RemotingConnection;
    server.send(createRequest({ code: RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, opaque: 10 }));
    await until(() => responses.length === 1);
    expect(responses[0]).toMatchObject({ code: ResponseCode.REQUEST_CODE_NOT_SUPPORTED, opaque: 10, remark: ' request type 40 not supported' });

    client.onRequest((request) => {
      if (request.code === RequestCode.CHECK_TRANSACTION_STATE) throw new Error('boom');
      return Promise.reject(new Error('async boom'));
    });
    server.send(createRequest({ code: RequestCode.CHECK_TRANSACTION_STATE, opaque: 11, oneway: true }));
    server.send(createRequest({ code: RequestCode.CHECK_TRANSACTION_STATE, opaque: 12 }));
    server.send(createRequest({ code: RequestCode.GET_CONSUMER_RUNNING_INFO, opaque: 13 }));
    await until(() => responses.length === 3);
    expect(responses.slice(1).map((cmd) => [cmd.opaque, cmd.code, cmd.remark])).toEqual([
      [12, ResponseCode.SYSTEM_ERROR, 'Error: boom'],
      [13, ResponseCode.SYSTEM_ERROR, 'Error: async boom'],
    ]);
    // The connection survived the failing handler.
    expect((await client.invoke(requestOf(RequestCode.HEART_BEAT, { n: 'alive' }), 5000)).remark).toBe('echo alive');
  });

  it('answers SYSTEM_BUSY beyond serverRequestsMax handlers at once', async () => {
    const { address, connections, responses } = await startServer(echo);
    const client = await connect(address, { serverRequestsMax: 2 });
    const release: (() => void)[] = [];
    client.onRequest(
      (request) =>
        new Promise((resolve) => {
          release.push(() => resolve(createResponse(request, ResponseCode.SUCCESS)));
        }),
    );
    await client.invoke(requestOf(RequestCode.HEART_BEAT), 5000);
    const server = connections[0] as RemotingConnection;
    for (const opaque of [1, 2, 3]) server.send(createRequest({ code: RequestCode.GET_CONSUMER_RUNNING_INFO, opaque }));
    await until(() => responses.length === 1 && release.length === 2);
    expect(responses[0]).toMatchObject({ opaque: 3, code: ResponseCode.SYSTEM_BUSY });
    for (const go of release) go();
    await until(() => responses.length === 3);
    server.send(createRequest({ code: RequestCode.GET_CONSUMER_RUNNING_INFO, opaque: 4 }));
    await until(() => release.length === 3);
    release[2]?.();
    await until(() => responses.length === 4);
    expect(responses.map((cmd) => [cmd.opaque, cmd.code])).toEqual([
      [3, ResponseCode.SYSTEM_BUSY],
      [1, ResponseCode.SUCCESS],
      [2, ResponseCode.SUCCESS],
      [4, ResponseCode.SUCCESS],
    ]);
  });
});
