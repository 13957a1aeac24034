// Example tests of retention: deleteWhen hours, which segments a run deletes (expired, over-ratio,
// forcible, never the newest, bounded per run), disk usage measurement through the StorageFs seam, and
// the DiskGuard refusing and accepting writes as a simulated disk fills and empties.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ResponseCode } from '../../src/net/remoting/remoting-command.ts';
import {
  DISK_FULL_CODE,
  DISK_USAGE_UNKNOWN,
  DiskGuard,
  RETENTION_DEFAULTS,
  type RetentionOptions,
  type SegmentFile,
  diskRatiosFromPercents,
  diskUsageRatio,
  isDeleteHour,
  selectExpiredFiles,
  usageRatioFromStatfs,
} from '../../src/storage/retention.ts';
import { type StorageFs, nodeStorageFs } from '../../src/storage/storage-fs.ts';

const HOUR_MS = 3_600_000;
const tempDirs: string[] = [];

afterEach(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rocketmq-ts-retention-'));
  tempDirs.push(dir);
  return dir;
}

/** Local time on 2024-03-05 at `hour`:30, so getHours() is `hour` whatever the test machine's zone. */
function atLocalHour(hour: number): number {
  return new Date(2024, 2, 5, hour, 30, 0).getTime();
}

/** `count` 1 GiB segments, oldest first, the i-th last modified `agesHours[i]` hours before `nowMs`. */
function segments(nowMs: number, agesHours: readonly number[]): SegmentFile[] {
  return agesHours.map((age, i) => ({
    name: String(i * 1_073_741_824).padStart(20, '0'),
    startOffset: i * 1_073_741_824,
    lastModifiedMs: nowMs - age * HOUR_MS,
  }));
}

function options(overrides: Partial<RetentionOptions> & { nowMs: number }): RetentionOptions {
  return {
    fileReservedTimeHours: RETENTION_DEFAULTS.fileReservedTimeHours,
    deleteWhen: RETENTION_DEFAULTS.deleteWhen,
    diskUsedRatio: 0.3,
    diskMaxUsedSpaceRatio: RETENTION_DEFAULTS.diskMaxUsedSpaceRatio,
    forceCleanRatio: RETENTION_DEFAULTS.diskSpaceCleanForciblyRatio,
    maxFilesPerRun: RETENTION_DEFAULTS.deleteFileBatchMax,
    ...overrides,
  };
}

const names = (files: readonly SegmentFile[]) => files.map((f) => f.startOffset / 1_073_741_824);

describe('isDeleteHour', () => {
  it('matches the local hour against deleteWhen', () => {
    expect(isDeleteHour('04', new Date(atLocalHour(4)))).toBe(true);
    expect(isDeleteHour('04', new Date(atLocalHour(5)))).toBe(false);
    expect(isDeleteHour('4', new Date(atLocalHour(4)))).toBe(true);
  });

  it('accepts several hours separated by ";"', () => {
    expect(isDeleteHour('04;16', new Date(atLocalHour(4)))).toBe(true);
    expect(isDeleteHour('04;16', new Date(atLocalHour(16)))).toBe(true);
    expect(isDeleteHour('04;16', new Date(atLocalHour(10)))).toBe(false);
    expect(isDeleteHour('00;23', new Date(atLocalHour(0)))).toBe(true);
  });

  it('asserts on a malformed deleteWhen (config validation should have refused it)', () => {
    expect(() => isDeleteHour('4am', new Date(atLocalHour(4)))).toThrow(/deleteWhen/);
    expect(() => isDeleteHour('24', new Date(atLocalHour(4)))).toThrow(/deleteWhen/);
  });
});

describe('selectExpiredFiles', () => {
  it('deletes nothing outside deleteWhen while the disk has room', () => {
    const nowMs = atLocalHour(10);
    const decision = selectExpiredFiles(segments(nowMs, [500, 400, 300, 1]), options({ nowMs }));
    expect(decision.triggers).toEqual([]);
    expect(decision.files).toEqual([]);
  });

  it('at a deleteWhen hour deletes expired segments oldest first', () => {
    const nowMs = atLocalHour(4);
    const decision = selectExpiredFiles(segments(nowMs, [100, 80, 72, 10, 1]), options({ nowMs }));
    expect(decision.triggers).toEqual(['deleteWhen']);
    expect(decision.cleanImmediately).toBe(false);
    expect(names(decision.files)).toEqual([0, 1, 2]); // 72 h old is exactly expired: now >= lastModified + 72 h
  });

  it('works for the second hour of "04;16" too', () => {
    const nowMs = atLocalHour(16);
    const decision = selectExpiredFiles(segments(nowMs, [100, 1]), options({ nowMs, deleteWhen: '04;16' }));
    expect(names(decision.files)).toEqual([0]);
  });

  it('stops at the first unexpired segment so the log never gets a hole', () => {
    const nowMs = atLocalHour(4);
    // Segment 1 was touched recently (e.g. rewritten by recovery); segment 2 behind it is older.
    const decision = selectExpiredFiles(segments(nowMs, [100, 5, 90, 1]), options({ nowMs }));
    expect(names(decision.files)).toEqual([0]);
  });

  it('never deletes the newest segment, even when it is expired', () => {
    const nowMs = atLocalHour(4);
    expect(names(selectExpiredFiles(segments(nowMs, [300, 200, 100]), options({ nowMs })).files)).toEqual([0, 1]);
    expect(selectExpiredFiles(segments(nowMs, [300]), options({ nowMs })).files).toEqual([]);
    expect(selectExpiredFiles([], options({ nowMs })).files).toEqual([]);
  });

  it('over diskMaxUsedSpaceRatio deletes expired segments at any hour', () => {
    const nowMs = atLocalHour(10);
    const files = segments(nowMs, [100, 80, 10, 1]);
    const decision = selectExpiredFiles(files, options({ nowMs, diskUsedRatio: 0.76 }));
    expect(decision.triggers).toEqual(['diskOverMaxUsedRatio']);
    expect(names(decision.files)).toEqual([0, 1]);
    // The comparison is strict, as in RocketMQ: exactly at the ratio does not trigger.
    expect(selectExpiredFiles(files, options({ nowMs, diskUsedRatio: 0.75 })).files).toEqual([]);
  });

  it('an unmeasurable disk (-1) triggers a run, as in RocketMQ, but not a forcible one', () => {
    const nowMs = atLocalHour(10);
    const decision = selectExpiredFiles(segments(nowMs, [100, 10, 1]), options({ nowMs, diskUsedRatio: DISK_USAGE_UNKNOWN }));
    expect(decision.cleanImmediately).toBe(false);
    expect(names(decision.files)).toEqual([0]);
  });

  it('over the clean-forcibly ratio deletes the oldest segments even when not expired', () => {
    const nowMs = atLocalHour(10);
    const files = segments(nowMs, [5, 4, 3, 2, 1]);
    const decision = selectExpiredFiles(files, options({ nowMs, diskUsedRatio: 0.86 }));
    expect(decision.cleanImmediately).toBe(true);
    expect(names(decision.files)).toEqual([0, 1, 2, 3]);
    expect(names(selectExpiredFiles(files, options({ nowMs, diskUsedRatio: 0.86, maxFilesPerRun: 2 })).files)).toEqual([0, 1]);
    // cleanFileForciblyEnable=false: only expired segments go, and none is expired here.
    expect(selectExpiredFiles(files, options({ nowMs, diskUsedRatio: 0.86, cleanFileForciblyEnable: false })).files).toEqual([]);
  });

  it('deletes at most maxFilesPerRun per run', () => {
    const nowMs = atLocalHour(4);
    const files = segments(nowMs, [500, 400, 300, 200, 100, 90, 1]);
    expect(names(selectExpiredFiles(files, options({ nowMs, maxFilesPerRun: 3 })).files)).toEqual([0, 1, 2]);
    expect(names(selectExpiredFiles(files, options({ nowMs, maxFilesPerRun: 1 })).files)).toEqual([0]);
  });

  it('a manual request triggers a run outside deleteWhen', () => {
    const nowMs = atLocalHour(10);
    const decision = selectExpiredFiles(segments(nowMs, [100, 1]), options({ nowMs, manualDelete: true }));
    expect(decision.triggers).toEqual(['manual']);
    expect(names(decision.files)).toEqual([0]);
  });

  it('asserts that segments come sorted by startOffset', () => {
    const nowMs = atLocalHour(4);
    const files = segments(nowMs, [100, 90, 1]);
    expect(() => selectExpiredFiles([files[1]!, files[0]!, files[2]!], options({ nowMs }))).toThrow(/sorted/);
  });
});

describe('disk usage', () => {
  it('rounds up to hundredths and leaves root-reserved blocks out, as UtilAll does', () => {
    expect(usageRatioFromStatfs({ bsize: 4096, blocks: 1000, bfree: 100, bavail: 100 })).toBe(0.9);
    expect(usageRatioFromStatfs({ bsize: 4096, blocks: 1000, bfree: 99, bavail: 99 })).toBe(0.91); // 90.1 % -> 91 %
    // 50 free blocks are reserved for root: used 900, usable 50, so 900 / 950 = 94.7 % -> 95 %.
    expect(usageRatioFromStatfs({ bsize: 4096, blocks: 1000, bfree: 100, bavail: 50 })).toBe(0.95);
    // Without bfree the reserved blocks count as used.
    expect(usageRatioFromStatfs({ bsize: 4096, blocks: 1000, bavail: 50 })).toBe(0.95);
    expect(usageRatioFromStatfs({ bsize: 4096, blocks: 0, bavail: 0 })).toBe(DISK_USAGE_UNKNOWN);
  });

  it('measures a real directory, and answers -1 for a missing path or a failing statfs', () => {
    const dir = tempDir();
    const ratio = diskUsageRatio(nodeStorageFs, dir);
    expect(ratio).toBeGreaterThanOrEqual(0);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(diskUsageRatio(nodeStorageFs, path.join(dir, 'absent'))).toBe(DISK_USAGE_UNKNOWN);
    const failing: StorageFs = {
      ...nodeStorageFs,
      statfsSync: () => {
        throw Object.assign(new Error('EIO'), { code: 'EIO' });
      },
    };
    expect(diskUsageRatio(failing, dir)).toBe(DISK_USAGE_UNKNOWN);
  });

  it('clamps the percent config keys as RocketMQ does', () => {
    expect(diskRatiosFromPercents({})).toEqual({
      diskMaxUsedSpaceRatio: 0.75,
      diskSpaceWarningLevelRatio: 0.9,
      diskSpaceCleanForciblyRatio: 0.85,
    });
    expect(diskRatiosFromPercents({ diskMaxUsedSpaceRatio: 99, diskSpaceWarningLevelRatio: 97, diskSpaceCleanForciblyRatio: 95 })).toEqual({
      diskMaxUsedSpaceRatio: 0.95,
      diskSpaceWarningLevelRatio: 0.9,
      diskSpaceCleanForciblyRatio: 0.85,
    });
    expect(diskRatiosFromPercents({ diskMaxUsedSpaceRatio: 5, diskSpaceWarningLevelRatio: 10, diskSpaceCleanForciblyRatio: 10 })).toEqual({
      diskMaxUsedSpaceRatio: 0.1,
      diskSpaceWarningLevelRatio: 0.35,
      diskSpaceCleanForciblyRatio: 0.3,
    });
  });
});

/** A store whose disks report the used fraction the test sets, per directory. */
function simulatedDisks() {
  const root = tempDir();
  const dirs = { commitLog: path.join(root, 'commitlog'), consumeQueue: path.join(root, 'consumequeue'), index: path.join(root, 'index') };
  for (const dir of Object.values(dirs)) fs.mkdirSync(dir);
  const used = new Map<string, number>(Object.values(dirs).map((dir) => [dir, 0.5]));
  const blocks = 10_000;
  const simulatedFs: StorageFs = {
    ...nodeStorageFs,
    statfsSync: (p) => {
      const fraction = used.get(p);
      if (fraction === undefined) throw new Error(`unexpected statfs of ${p}`);
      const free = Math.round(blocks * (1 - fraction));
      return { bsize: 4096, blocks, bfree: free, bavail: free };
    },
  };
  const guard = new DiskGuard({
    fs: simulatedFs,
    commitLogPaths: [dirs.commitLog],
    consumeQueuePath: dirs.consumeQueue,
    indexPath: dirs.index,
    ratios: diskRatiosFromPercents({}),
  });
  const setAll = (fraction: number) => {
    for (const dir of Object.values(dirs)) used.set(dir, fraction);
  };
  return { guard, dirs, used, setAll };
}

describe('DiskGuard', () => {
  it('refuses writes over the warning ratio with SERVICE_NOT_AVAILABLE and a disk-full remark', () => {
    const { guard, setAll } = simulatedDisks();
    setAll(0.5);
    expect(guard.check().diskFull).toBe(false);
    expect(guard.isWriteable).toBe(true);
    expect(guard.refusal()).toBeUndefined();

    setAll(0.91);
    const check = guard.check();
    expect(check).toMatchObject({ diskFull: true, spaceToDelete: true, cleanImmediately: true, physicRatio: 0.91 });
    expect(guard.isWriteable).toBe(false);
    const refusal = guard.refusal();
    expect(refusal?.code).toBe(DISK_FULL_CODE);
    expect(refusal?.putMessageStatus).toBe('SERVICE_NOT_AVAILABLE');
    expect(refusal?.responseCode).toBe(ResponseCode.SERVICE_NOT_AVAILABLE);
    expect(refusal?.remark).toBe(
      "service not available now. It may be caused by one of the following reasons: the broker's disk is full " +
        '[CL:  0.91 CQ:  0.91 INDEX:  0.91], messages are put to the slave, message store has been shut down, etc.',
    );
  });

  it('exactly at the warning ratio still accepts writes (the comparison is strict)', () => {
    const { guard, setAll } = simulatedDisks();
    setAll(0.9);
    expect(guard.check()).toMatchObject({ diskFull: false, cleanImmediately: true });
    expect(guard.isWriteable).toBe(true);
  });

  it('accepts writes again only once usage is back at or under the clean-forcibly ratio', () => {
    const { guard, setAll } = simulatedDisks();
    setAll(0.95);
    guard.check();
    expect(guard.isWriteable).toBe(false);
    setAll(0.88); // under the warning ratio, over the clean-forcibly ratio: still refused
    guard.check();
    expect(guard.isWriteable).toBe(false);
    setAll(0.86);
    guard.check();
    expect(guard.isWriteable).toBe(false);
    setAll(0.85);
    expect(guard.check()).toMatchObject({ diskFull: false, cleanImmediately: false, spaceToDelete: true });
    expect(guard.isWriteable).toBe(true);
    expect(guard.refusal()).toBeUndefined();
    // Coming up from below, the band between the ratios does not refuse.
    setAll(0.88);
    guard.check();
    expect(guard.isWriteable).toBe(true);
  });

  it('a full consume queue disk refuses writes too, even when the commit log disk has room', () => {
    const { guard, dirs, used } = simulatedDisks();
    used.set(dirs.commitLog, 0.4);
    used.set(dirs.consumeQueue, 0.93);
    expect(guard.check()).toMatchObject({ diskFull: true, physicRatio: 0.4, logicsRatio: 0.93 });
    used.set(dirs.consumeQueue, 0.5);
    expect(guard.check().diskFull).toBe(false);
  });

  it('reports space to delete over diskMaxUsedSpaceRatio without refusing writes', () => {
    const { guard, setAll } = simulatedDisks();
    setAll(0.8);
    expect(guard.check()).toMatchObject({ diskFull: false, spaceToDelete: true, cleanImmediately: false });
    setAll(0.7);
    expect(guard.check()).toMatchObject({ diskFull: false, spaceToDelete: false, cleanImmediately: false });
  });
});
