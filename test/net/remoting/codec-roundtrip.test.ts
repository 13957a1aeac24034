// Property tests for the Remoting codec. fast-check prints the seed and the shrunk counterexample on
// failure; replay one with `fc.assert(property, { seed, path })`.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeCommand, FrameDecoder, RemotingCodecError } from '../../../src/net/remoting/codec.ts';
import {
  LanguageCode,
  type LanguageName,
  type RemotingCommand,
  type SerializeTypeName,
} from '../../../src/net/remoting/remoting-command.ts';

const int16 = fc.integer({ min: -0x8000, max: 0x7fff });
const int32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const anyText = fc.string({ unit: 'binary', maxLength: 40 });

function commandArb(serializeType: SerializeTypeName): fc.Arbitrary<RemotingCommand> {
  const narrow = serializeType === 'ROCKETMQ';
  return fc
    .record(
      {
        code: narrow ? int16 : int32,
        language: fc.constantFrom(...(Object.keys(LanguageCode) as LanguageName[])),
        version: narrow ? int16 : int32,
        opaque: int32,
        flag: int32,
        remark: anyText,
        extFields: fc.dictionary(anyText, anyText, { maxKeys: 8 }),
        body: fc.uint8Array({ maxLength: 300 }),
      },
      { requiredKeys: ['code', 'language', 'version', 'opaque', 'flag', 'extFields'] },
    )
    .map((fields) => ({ ...fields, serializeType }));
}

const anyCommand = fc.oneof(commandArb('JSON'), commandArb('ROCKETMQ'));

/**
 * What a command looks like after a trip through the wire: an empty body is no body, and the ROCKETMQ
 * header writes an empty remark as length 0, which means "no remark" (as in Java).
 */
function expectedAfterTrip(cmd: RemotingCommand): unknown {
  const out: Record<string, unknown> = { ...cmd, extFields: { ...cmd.extFields } };
  if (cmd.body === undefined || cmd.body.length === 0) delete out.body;
  else out.body = Array.from(cmd.body);
  if (cmd.remark === '' && cmd.serializeType === 'ROCKETMQ') delete out.remark;
  return out;
}

function comparable(cmd: RemotingCommand): unknown {
  const out: Record<string, unknown> = { ...cmd, extFields: { ...cmd.extFields } };
  if (cmd.body !== undefined) out.body = Array.from(cmd.body);
  return out;
}

describe('codec round trip', () => {
  it('decodeFrame(encodeCommand(cmd)) gives cmd back, in both serializations', () => {
    fc.assert(
      fc.property(anyCommand, (cmd) => {
        expect(comparable(decodeFrame(encodeCommand(cmd)))).toEqual(expectedAfterTrip(cmd));
      }),
      { numRuns: 500 },
    );
  });

  it('a stream of frames cut into arbitrary chunks decodes to the same commands', () => {
    fc.assert(
      fc.property(
        fc.array(anyCommand, { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 40 }),
        (commands, chunkSizes) => {
          const stream = Buffer.concat(commands.map((cmd) => encodeCommand(cmd)));
          const decoder = new FrameDecoder();
          const out: RemotingCommand[] = [];
          let offset = 0;
          for (let i = 0; offset < stream.length; i++) {
            const size = chunkSizes[i % chunkSizes.length] as number;
            out.push(...decoder.push(stream.subarray(offset, offset + size)));
            offset += size;
          }
          expect(out.map(comparable)).toEqual(commands.map(expectedAfterTrip));
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes either decode or raise RemotingCodecError, never anything else', () => {
    // Bias towards plausible frames: a real frame with some bytes overwritten, or raw noise.
    const mutated = fc
      .tuple(anyCommand, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }))
      .map(([cmd, edits]) => {
        const frame = Buffer.from(encodeCommand(cmd));
        for (const [at, value] of edits) frame[at % frame.length] = value;
        return frame;
      });
    const noise = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b));
    fc.assert(
      fc.property(fc.oneof(mutated, noise), fc.integer({ min: 1, max: 50 }), (bytes, chunkSize) => {
        const decoder = new FrameDecoder({ frameMaxBytes: 64 * 1024 });
        try {
          for (let offset = 0; offset < bytes.length; offset += chunkSize) {
            decoder.push(bytes.subarray(offset, offset + chunkSize));
          }
        } catch (error) {
          expect(error).toBeInstanceOf(RemotingCodecError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
