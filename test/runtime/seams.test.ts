/** Clock, randomness and the file system reach actors through their context, so tests can drive them. */
import fs from 'node:fs';
import fsPromises from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorFileSystem } from '../../src/runtime/actor.ts';
import type { ActorSystem } from '../../src/runtime/actor-system.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import type { WriterMessage } from './fixtures/io-behaviors.ts';
import { startTestSystem } from './helpers.ts';

const writerSource = { module: new URL('./fixtures/io-behaviors.ts', import.meta.url).href, export: 'writer' };

describe('determinism seams', () => {
  let system: ActorSystem | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('an injected file system fault (ENOSPC) reaches the actor, which answers with its code; the real one writes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmqts-seam-'));
    dirs.push(dir);
    let failNext = true;
    const faulty: ActorFileSystem = {
      ...fsPromises,
      writeFile: (async (...args: Parameters<typeof fsPromises.writeFile>) => {
        if (failNext) {
          failNext = false;
          throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        }
        return fsPromises.writeFile(...args);
      }) as typeof fsPromises.writeFile,
    };
    const clock = new ManualClock(1_000);
    let seed = 0;
    system = await startTestSystem({}, { fs: faulty, clock, random: () => (seed += 0.25) });
    const ref = await system.spawn<WriterMessage>({ name: 'writer', behavior: writerSource, args: null, pool: 'main' });
    const file = path.join(dir, 'data');
    const first = await system.ask<WriterMessage, { outcome: string; stamps: number[] }>(ref, { type: 'write', path: file, data: 'x' });
    expect(first.outcome).toBe('ENOSPC');
    expect(fs.existsSync(file)).toBe(false);
    clock.advance(500);
    const second = await system.ask<WriterMessage, { outcome: string; stamps: number[] }>(ref, { type: 'write', path: file, data: 'y' });
    expect(second.outcome).toBe('ok');
    expect(fs.readFileSync(file, 'utf8')).toBe('y');
    // Time and randomness came from the injected seams, not from the real clock or Math.random.
    expect(second.stamps).toEqual([1_000, 0.25, 1_500, 0.5]);
  });
});
