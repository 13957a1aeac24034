/**
 * The floor of bench:grpc: a grpc-js server with the Proxy's MessagingService definition (the same
 * protobufjs codecs) whose SendMessage does nothing but answer OK. Run as a child process by
 * `bench/grpc.ts`; it prints its port on stdout and serves until killed.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { addMessagingService } from '../src/net/grpc/messaging-service.ts';
import type * as M from '../src/net/grpc/messages.ts';

const OK: M.SendMessageResponse = {
  status: { code: 20000, message: 'OK' },
  entries: [{ status: { code: 20000, message: 'OK' }, messageId: 'FLOOR', transactionId: '', offset: 0, recallHandle: '' }],
};

const server = new Server();
addMessagingService(server, { SendMessage: (_call, callback) => callback(null, OK) });
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error !== null) throw error;
  process.stdout.write(`${port}\n`);
});
