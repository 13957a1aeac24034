/**
 * The floor of bench:remoting: a Remoting server that does no product work. It accepts connections with
 * node:net and reads and writes frames through the broker's own RemotingConnection (FrameDecoder,
 * JSON / ROCKETMQ header decoding, encodeCommand, corked writes), so framing and codec cost what they
 * cost in the product; but SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE are answered SUCCESS at
 * once, with a SendMessageResponseHeader made from a counter: no header parsing, no storage, no thread
 * hop. Every other request code gets REQUEST_CODE_NOT_SUPPORTED. One process, one thread. Run as a child
 * process by `bench/remoting.ts`: it prints its port on stdout and serves until killed.
 */
import net from 'node:net';
import { RemotingConnection } from '../src/net/remoting/connection.ts';
import { SendMessageResponseHeader } from '../src/net/remoting/broker-headers.ts';
import { createNotSupportedResponse, createResponse, isOneway, type RemotingCommand, RequestCode, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { BROKER_REGION_ID, BROKER_TRACE_ON } from '../src/actors/send-processor.ts';

/** Connections served at once; more are refused, as the broker's acceptor refuses past connectionsMax. */
const CONNECTIONS_MAX = 1_024;
/** Messages counted in one batch body; the walk stops there whatever the body holds. */
const BATCH_MESSAGES_MAX = 4_096;
/** An offset message id's store host part (127.0.0.1, port 10911), as 16 hex digits. */
const STORE_HOST_HEX = '7F00000100002A9F';

/** The next "commit-log offset" and "queue offset": one counter, advanced by each message answered. */
let nextOffset = 0;
let connections = 0;

/** Messages in a SEND_BATCH_MESSAGE body, found by walking each message's leading totalSize (int32). */
function batchMessageCount(body: Uint8Array | undefined): number {
  if (body === undefined) return 1;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let count = 0;
  for (let at = 0; at + 4 <= body.byteLength && count < BATCH_MESSAGES_MAX; count++) {
    const totalSize = view.getInt32(at);
    if (totalSize <= 0) break;
    at += totalSize;
  }
  return Math.max(1, count);
}

/** SUCCESS with a header shaped like the broker's: one offset message id per message, joined by commas. */
function sendAnswer(request: RemotingCommand, messages: number): RemotingCommand {
  const queueOffset = nextOffset;
  const ids: string[] = [];
  for (let i = 0; i < messages; i++) ids.push(STORE_HOST_HEX + (nextOffset++).toString(16).toUpperCase().padStart(16, '0'));
  // The queue the client chose, as the broker answers it (V2 names it 'e'); read, not parsed or checked.
  const queueId = Number(request.extFields['e'] ?? request.extFields['queueId'] ?? 0) | 0;
  const header = SendMessageResponseHeader.format({ msgId: ids.join(','), queueId, queueOffset });
  return createResponse(request, ResponseCode.SUCCESS, undefined, {
    extFields: { ...header, MSG_REGION: BROKER_REGION_ID, TRACE_ON: String(BROKER_TRACE_ON) },
  });
}

function answer(request: RemotingCommand): RemotingCommand {
  switch (request.code) {
    case RequestCode.SEND_MESSAGE:
    case RequestCode.SEND_MESSAGE_V2:
      return sendAnswer(request, 1);
    case RequestCode.SEND_BATCH_MESSAGE:
      return sendAnswer(request, batchMessageCount(request.body));
    default:
      return createNotSupportedResponse(request);
  }
}

const log = (level: string, message: string, fields: Record<string, unknown>): void => {
  if (level === 'warn' || level === 'error') process.stderr.write(`floor server ${level}: ${message} ${JSON.stringify(fields, (_key, value: unknown) => (value instanceof Error ? value.message : value))}\n`);
};

const server = net.createServer({ noDelay: true }, (socket) => {
  if (connections >= CONNECTIONS_MAX) {
    socket.destroy();
    return;
  }
  connections += 1;
  new RemotingConnection(socket, {
    onRequest: (request, connection) => {
      if (!isOneway(request)) connection.send(answer(request));
    },
    onClose: () => {
      connections -= 1;
    },
    log,
  });
});
server.listen({ host: '127.0.0.1', port: 0 }, () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});
