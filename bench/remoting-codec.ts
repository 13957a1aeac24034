/**
 * `npm run bench:codec`: the Remoting codec's cost per frame on one thread, for the frames of
 * bench:remoting's single-send phase: a SEND_MESSAGE_V2 request as the Java producer sends it (JSON header,
 * every extFields value a string, 1 KiB body) and the broker's SendMessageResponseHeader answer.
 *
 * The JSON decode rows show the decoder's two readings (codec.ts): a header with only string extFields and
 * int32 number fields takes the plain JSON.parse reading; the same header with one extFields value written
 * as a bare JSON number takes the exact reading (numbers kept as their source text). Each row is the median
 * of CODEC_BENCH_ROUNDS timed rounds of CODEC_BENCH_FRAMES frames, after one untimed round.
 */
import { decodeFrame, encodeCommand } from '../src/net/remoting/codec.ts';
import { createResponse, type RemotingCommand, ResponseCode } from '../src/net/remoting/remoting-command.ts';
import { RequestFactory } from './remoting-load.ts';

const frames = Number(process.env['CODEC_BENCH_FRAMES'] ?? 100_000);
const rounds = Number(process.env['CODEC_BENCH_ROUNDS'] ?? 7);

const factory = new RequestFactory('bench-topic', 8, new Uint8Array(1024));
const requests = Array.from({ length: 1000 }, () => factory.single());
const jsonFrames = requests.map((request) => encodeCommand({ ...request, serializeType: 'JSON' }));
const binaryFrames = requests.map((request) => encodeCommand({ ...request, serializeType: 'ROCKETMQ' }));
// The same headers with queueId ("e" in SEND_MESSAGE_V2's short keys) written as a bare number.
const exactFrames = jsonFrames.map((frame) => {
  const headerBytes = frame.readUInt32BE(4) & 0xff_ffff;
  const text = frame.toString('utf8', 8, 8 + headerBytes).replace(/"e":"(\d+)"/, '"e":$1');
  const header = Buffer.from(text, 'utf8');
  const body = frame.subarray(8 + headerBytes);
  const out = Buffer.alloc(8 + header.length + body.length);
  out.writeInt32BE(4 + header.length + body.length, 0);
  out.writeInt32BE(header.length, 4);
  header.copy(out, 8);
  body.copy(out, 8 + header.length);
  return out;
});
if (decodeFrame(exactFrames[0]!).extFields['e'] !== decodeFrame(jsonFrames[0]!).extFields['e']) throw new Error('exact frame differs');

const answer = (serializeType: 'JSON' | 'ROCKETMQ', opaque: number): RemotingCommand => ({
  ...createResponse({ ...requests[0]!, opaque, serializeType }, ResponseCode.SUCCESS, undefined, {
    extFields: {
      msgId: '7F00000100002A9F0000000000012C00',
      queueId: '3',
      queueOffset: '123456',
      transactionId: '7F000001440B00005EED6C0616410000',
      MSG_REGION: 'DefaultRegion',
      TRACE_ON: 'true',
    },
  }),
});

const jsonAnswers = Array.from({ length: 1000 }, (_, i) => answer('JSON', i));
const binaryAnswers = Array.from({ length: 1000 }, (_, i) => answer('ROCKETMQ', i));

/** Median µs per frame of `work(i)` over the rounds; `work` returns a number so the work is not dropped. */
function time(work: (i: number) => number): number {
  const perFrame: number[] = [];
  let sink = 0;
  for (let round = 0; round <= rounds; round++) {
    const started = performance.now();
    for (let i = 0; i < frames; i++) sink += work(i);
    if (round > 0) perFrame.push(((performance.now() - started) * 1000) / frames);
  }
  if (sink === Number.MIN_VALUE) console.log(sink);
  perFrame.sort((a, b) => a - b);
  return perFrame[Math.floor(perFrame.length / 2)]!;
}

const rows: [string, number][] = [
  ['decode SEND_MESSAGE_V2, JSON header (plain reading)', time((i) => decodeFrame(jsonFrames[i % 1000]!).opaque)],
  ['decode SEND_MESSAGE_V2, JSON header, one extFields number (exact reading)', time((i) => decodeFrame(exactFrames[i % 1000]!).opaque)],
  ['decode SEND_MESSAGE_V2, ROCKETMQ header', time((i) => decodeFrame(binaryFrames[i % 1000]!).opaque)],
  ['encode send answer, JSON header', time((i) => encodeCommand(jsonAnswers[i % 1000]!).length)],
  ['encode send answer, ROCKETMQ header', time((i) => encodeCommand(binaryAnswers[i % 1000]!).length)],
];

const widths = [Math.max(9, ...rows.map(([name]) => name.length)), 14];
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\nrocketmq-ts Remoting codec benchmark (node ${process.version}, one thread, median of ${rounds} rounds of ${frames.toLocaleString('en-US')} frames)\n`);
console.log(line(['benchmark', 'µs per frame']));
console.log(line(widths.map((width) => '-'.repeat(width))));
for (const [name, us] of rows) console.log(line([name, us.toFixed(2)]));
