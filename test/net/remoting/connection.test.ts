import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand, FrameDecoder } from '../../../src/net/remoting/codec.ts';
import {
  type ConnectionLogLevel,
  type RemotingConnectionOptions,
  RemotingConnection,
  type SendStatus,
} from '../../../src/net/remoting/connection.ts';
import {
  createNotSupportedResponse,
  createRequest,
  createResponse,
  isResponse,
  type RemotingCommand,
  ResponseCode,
} from '../../../src/net/remoting/remoting-command.ts';

type LogLine = { level: ConnectionLogLevel; message: string; fields: Record<string, unknown> };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts a loopback server whose connections use the given options; returns its port and what it saw. */
async function startServer(options: Omit<RemotingConnectionOptions, 'log'>) {
  const logs: LogLine[] = [];
  const connections: RemotingConnection[] = [];
  const server = net.createServer((socket) => {
    connections.push(
      new RemotingConnection(socket, { ...options, log: (level, message, fields) => logs.push({ level, message, fields }) }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const conn of connections) conn.close();
    server.close();
    await once(server, 'close');
  });
  return { port: (server.address() as net.AddressInfo).port, logs, connections };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  cleanups.push(() => void socket.destroy());
  return socket;
}

/** Polls until `condition` holds; the test timeout bounds it. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}

/** Reads responses from a raw client socket until `count` have arrived. */
function readCommands(socket: net.Socket, count: number): Promise<RemotingCommand[]> {
  const decoder = new FrameDecoder();
  const seen: RemotingCommand[] = [];
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      seen.push(...decoder.push(chunk));
      if (seen.length >= count) {
        socket.off('data', onData);
        resolve(seen);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`socket closed after ${seen.length} of ${count} commands`)));
  });
}

describe('RemotingConnection over loopback TCP', () => {
  it('answers pipelined requests with REQUEST_CODE_NOT_SUPPORTED, matched by opaque', async () => {
    const { port } = await startServer({
      onRequest: (cmd, conn) => conn.send(createNotSupportedResponse(cmd)),
    });
    const client = await connect(port);
    const responses = readCommands(client, 2);
    client.write(
      Buffer.concat([
        encodeCommand(createRequest({ code: 99, opaque: 101, extFields: { topic: 'T' } })),
        encodeCommand(createRequest({ code: 98, opaque: 102, serializeType: 'ROCKETMQ' })),
      ]),
    );
    const byOpaque = new Map((await responses).map((cmd) => [cmd.opaque, cmd]));
    expect(byOpaque.get(101)).toMatchObject({
      code: ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
      flag: 1,
      remark: ' request type 99 not supported',
      serializeType: 'JSON',
    });
    expect(byOpaque.get(102)).toMatchObject({
      code: ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
      flag: 1,
      remark: ' request type 98 not supported',
      serializeType: 'ROCKETMQ',
    });
  });

  it('does not serialize processing: a slow request does not hold back a fast one', async () => {
    const { port } = await startServer({
      onRequest: (cmd, conn) => {
        const answer = () => conn.send(createResponse(cmd, ResponseCode.SUCCESS, `done ${cmd.opaque}`));
        if (cmd.opaque === 1) setTimeout(answer, 50);
        else answer();
      },
    });
    const client = await connect(port);
    const responses = readCommands(client, 2);
    client.write(
      Buffer.concat([
        encodeCommand(createRequest({ code: 10, opaque: 1 })),
        encodeCommand(createRequest({ code: 10, opaque: 2 })),
      ]),
    );
    expect((await responses).map((cmd) => cmd.opaque)).toEqual([2, 1]);
  });

  it('runs a guarded answer\'s guard at the end of the tick, so what changed after the send decides what leaves; unencodable answers become SYSTEM_ERROR', async () => {
    let leaseHeld = true;
    const { port, logs } = await startServer({
      onRequest: (cmd, conn) => {
        const guard = (answer: RemotingCommand): RemotingCommand => (leaseHeld ? answer : createResponse(answer, ResponseCode.SERVICE_NOT_AVAILABLE, 'lease ran out'));
        if (cmd.opaque === 1) {
          conn.sendGuarded(createResponse(cmd, ResponseCode.SUCCESS), guard);
          // Later in the same tick the lease runs out (as after a freeze): the answer must not say SUCCESS.
          leaseHeld = false;
        } else {
          leaseHeld = true;
          conn.sendGuarded(createResponse(cmd, ResponseCode.SUCCESS), guard);
          // One too large to frame: logged, and SYSTEM_ERROR goes instead.
          conn.sendGuarded(createResponse({ ...cmd, opaque: 3 }, ResponseCode.SUCCESS, 'x'.repeat(4096)), guard);
          conn.send(createResponse({ ...cmd, opaque: 4 }, ResponseCode.SUCCESS, 'unguarded'));
          // The same replacement for an unguarded answer sent with sendOrSystemError.
          conn.sendOrSystemError(createResponse({ ...cmd, opaque: 5 }, ResponseCode.SUCCESS, 'x'.repeat(4096)));
        }
      },
      frameMaxBytes: 4096,
    });
    const client = await connect(port);
    const first = readCommands(client, 1);
    client.write(encodeCommand(createRequest({ code: 10, opaque: 1 })));
    expect((await first).map((cmd) => [cmd.opaque, cmd.code])).toEqual([[1, ResponseCode.SERVICE_NOT_AVAILABLE]]);
    const rest = readCommands(client, 4);
    client.write(encodeCommand(createRequest({ code: 10, opaque: 2 })));
    const byOpaque = new Map((await rest).map((cmd) => [cmd.opaque, cmd.code]));
    expect(byOpaque).toEqual(new Map([[2, ResponseCode.SUCCESS], [3, ResponseCode.SYSTEM_ERROR], [4, ResponseCode.SUCCESS], [5, ResponseCode.SYSTEM_ERROR]]));
    expect(logs.filter((line) => line.level === 'error' && line.message === 'remoting answer could not be encoded')).toHaveLength(2);
  });

  it('logs and closes the connection on undecodable bytes', async () => {
    const seen: RemotingCommand[] = [];
    const closed: RemotingConnection[] = [];
    const { port, logs } = await startServer({
      onRequest: (cmd) => seen.push(cmd),
      onClose: (conn) => closed.push(conn),
    });
    const client = await connect(port);
    const clientClosed = once(client, 'close');
    client.write(Buffer.concat([encodeCommand(createRequest({ code: 10, opaque: 1 })), Buffer.from([0, 0, 0, 4, 7, 0, 0, 0])]));
    await clientClosed;
    await until(() => closed.length > 0);
    expect(seen.map((cmd) => cmd.opaque)).toEqual([1]);
    expect(closed).toHaveLength(1);
    expect(closed[0]?.closed).toBe(true);
    expect(logs).toContainEqual(
      expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ code: 'SERIALIZE_TYPE_UNKNOWN' }) }),
    );
  });

  it('rejects an oversized frame from its length field and closes', async () => {
    const { port, logs } = await startServer({ onRequest: () => {}, frameMaxBytes: 4096 });
    const client = await connect(port);
    const clientClosed = once(client, 'close');
    client.write(Buffer.from([0, 0, 0x10, 0]));
    await clientClosed;
    expect(logs.map((line) => line.fields.code)).toContain('FRAME_TOO_LARGE');
  });

  it('passes responses to onResponse, not to onRequest', async () => {
    const requests: RemotingCommand[] = [];
    const responses: RemotingCommand[] = [];
    const { port } = await startServer({
      onRequest: (cmd, conn) => {
        requests.push(cmd);
        conn.send(createResponse(cmd, ResponseCode.SUCCESS));
      },
      onResponse: (cmd) => responses.push(cmd),
    });
    const client = await connect(port);
    const reply = readCommands(client, 1);
    client.write(encodeCommand(createResponse({ opaque: 5, serializeType: 'JSON' }, ResponseCode.SUCCESS)));
    client.write(encodeCommand(createRequest({ code: 34, opaque: 6 })));
    await reply;
    expect(requests.map((cmd) => cmd.opaque)).toEqual([6]);
    expect(responses.map((cmd) => [cmd.opaque, isResponse(cmd)])).toEqual([[5, true]]);
  });

  it('closes the connection when a handler throws', async () => {
    const { port, logs } = await startServer({
      onRequest: () => {
        throw new Error('bug');
      },
    });
    const client = await connect(port);
    const clientClosed = once(client, 'close');
    client.write(encodeCommand(createRequest({ code: 10, opaque: 1 })));
    await clientClosed;
    expect(logs).toContainEqual(expect.objectContaining({ level: 'error' }));
  });

  it('reports overload while the peer does not read, and drains when it does', async () => {
    let drained = 0;
    const { port, connections } = await startServer({
      onRequest: () => {},
      onDrain: () => {
        drained += 1;
      },
      writeQueueBytesMax: 1024 * 1024,
    });
    const client = await connect(port);
    client.pause();
    client.write(encodeCommand(createRequest({ code: 10, opaque: 1 })));
    await until(() => connections.length > 0);
    const server = connections[0] as RemotingConnection;
    // 32 MiB is more than loopback socket buffers hold, so most of it stays in the write queue.
    const body = Buffer.alloc(1024 * 1024);
    const statuses: SendStatus[] = [];
    for (let i = 0; i < 32; i++) {
      statuses.push(server.send(createResponse({ opaque: i, serializeType: 'JSON' }, ResponseCode.SUCCESS, undefined, { body })));
    }
    expect(statuses).toContain('overloaded');
    expect(server.overloaded).toBe(true);
    expect(server.needsDrain).toBe(true);
    expect(server.queuedBytes).toBeGreaterThan(1024 * 1024);
    const all = readCommands(client, 32);
    client.resume();
    expect((await all).map((cmd) => cmd.opaque)).toEqual(Array.from({ length: 32 }, (_, i) => i));
    await until(() => drained > 0);
    expect(server.overloaded).toBe(false);
    expect(server.send(createResponse({ opaque: 99, serializeType: 'JSON' }, ResponseCode.SUCCESS))).toBe('sent');
  });

  it('drops sends after close', async () => {
    let server = undefined as RemotingConnection | undefined;
    const { port } = await startServer({
      onRequest: (_cmd, conn) => {
        server = conn;
      },
    });
    const client = await connect(port);
    const clientEnded = once(client, 'end');
    client.write(encodeCommand(createRequest({ code: 10, opaque: 1 })));
    await until(() => server !== undefined);
    if (server === undefined) throw new Error('no server connection');
    server.close();
    expect(server.closed).toBe(true);
    expect(server.send(createResponse({ opaque: 1, serializeType: 'JSON' }, 0))).toBe('closed');
    await clientEnded;
  });
});
