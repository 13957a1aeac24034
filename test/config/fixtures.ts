// Shared helpers of the config tests: a fixed machine (so defaults do not depend on the test host)
// and temporary config files that are removed after each test.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import type { DefaultContext } from '../../src/config/environment.ts';

/** A machine with known facts, for deterministic defaults. */
export const TEST_MACHINE = {
  cores: 8,
  homeDir: '/home/tester',
  hostName: 'test-host',
  localAddress: '10.0.0.5',
  namesrvAddrEnv: undefined,
} as const satisfies Omit<DefaultContext, 'role'>;

const tempDirs: string[] = [];

afterEach(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes `content` to a file named `name` in a fresh temp dir (removed after the test) and returns its path. */
export function writeTempFile(name: string, content: string | Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rocketmq-ts-config-'));
  tempDirs.push(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

/** A path inside a fresh temp dir (removed after the test) where no file exists. */
export function missingTempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rocketmq-ts-config-'));
  tempDirs.push(dir);
  return path.join(dir, 'absent.conf');
}

/** Runs `fn`, expecting it to throw, and returns what it threw. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}
