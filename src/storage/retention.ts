/**
 * Retention and the disk-full guard: which commit log segments a cleaning run deletes, and when the store
 * stops accepting writes because its disk is nearly full. The decisions are pure functions of the files,
 * the clock and the measured disk usage, mirroring RocketMQ's DefaultMessageStore.CleanCommitLogService
 * and MappedFileQueue.deleteExpiredFileByTime; the disk is measured through the StorageFs seam (statfs),
 * so tests and the simulator can fake a full disk.
 *
 * Rules (RocketMQ's, with its defaults):
 * - A run deletes anything only if it is triggered: the local hour is in deleteWhen ("04", or "04;16"),
 *   or disk usage is over diskMaxUsedSpaceRatio (0.75) or unknown, or an operator asked (manual).
 * - A segment is expired when now >= lastModified + fileReservedTime (72 hours).
 * - Usage over diskSpaceCleanForciblyRatio (0.85) sets cleanImmediately: segments go oldest first even
 *   when not expired (cleanFileForciblyEnable, default true).
 * - Segments go strictly oldest first and the run stops at the first one it may not delete, so the
 *   log never gets a hole; the newest segment (the one being written) is never deleted; at most
 *   deleteFileBatchMax (10) go per run.
 * - Usage over diskSpaceWarningLevelRatio (0.90) marks the disk full: sends are refused with
 *   PutMessageStatus SERVICE_NOT_AVAILABLE, which the broker answers as ResponseCode
 *   SERVICE_NOT_AVAILABLE (14) with a remark naming the full disk. The mark is cleared only when the
 *   commit log disk is back at or under diskSpaceCleanForciblyRatio: between the two ratios it stays as
 *   it was (the hysteresis of isSpaceToDelete).
 * - Every comparison against a ratio is strict (`>`), as in RocketMQ.
 * Usage ratios are fractions in [0, 1] rounded up to hundredths (UtilAll.getDiskPartitionSpaceUsedPercent);
 * -1 means "could not be measured".
 */
import { assert } from '../runtime/assert.ts';
import type { StorageFs } from './storage-fs.ts';

/** RocketMQ's defaults for retention (MessageStoreConfig), with ratios as fractions. */
export const RETENTION_DEFAULTS = {
  fileReservedTimeHours: 72,
  deleteWhen: '04',
  diskMaxUsedSpaceRatio: 0.75,
  diskSpaceWarningLevelRatio: 0.9,
  diskSpaceCleanForciblyRatio: 0.85,
  deleteFileBatchMax: 10,
  /** deleteCommitLogFilesInterval: pause between two deletions of one run. */
  deleteCommitLogFilesIntervalMs: 100,
  /** destroyMapedFileIntervalForcibly: a segment still in use is destroyed anyway after this long. */
  destroyMapedFileIntervalForciblyMs: 120_000,
  /** redeleteHangedFileInterval: how often a segment whose deletion hung is tried again. */
  redeleteHangedFileIntervalMs: 120_000,
  /** cleanResourceInterval: how often the cleaning run (and the disk check) happens. */
  cleanResourceIntervalMs: 10_000,
} as const;

/** The range RocketMQ clamps each ratio into when it reads it (getDiskMaxUsedSpaceRatio and friends). */
export const DISK_RATIO_BOUNDS = {
  diskMaxUsedSpaceRatio: { min: 0.1, max: 0.95 },
  diskSpaceWarningLevelRatio: { min: 0.35, max: 0.9 },
  diskSpaceCleanForciblyRatio: { min: 0.3, max: 0.85 },
} as const;

/** Disk usage that could not be measured (a missing path, a failed statfs). */
export const DISK_USAGE_UNKNOWN = -1;

/** Stable code of a write refused because the disk is full. */
export const DISK_FULL_CODE = 'DISK_FULL';

/** ResponseCode.SERVICE_NOT_AVAILABLE, the Remoting answer to a send while the disk is full. */
export const SERVICE_NOT_AVAILABLE_RESPONSE_CODE = 14;

const HOUR_MS = 3_600_000;

/** The three disk ratios, as clamped fractions. */
export type DiskRatios = Readonly<{
  diskMaxUsedSpaceRatio: number;
  diskSpaceWarningLevelRatio: number;
  diskSpaceCleanForciblyRatio: number;
}>;

/** Converts RocketMQ's percent keys (75, 90, 85) to fractions clamped as RocketMQ clamps them. */
export function diskRatiosFromPercents(percents: Partial<Record<keyof DiskRatios, number>>): DiskRatios {
  const ratio = (key: keyof DiskRatios): number => {
    const percent = percents[key] ?? RETENTION_DEFAULTS[key] * 100;
    assert(Number.isFinite(percent), () => `${key} must be a number: ${percent}`);
    const bounds = DISK_RATIO_BOUNDS[key];
    return Math.min(bounds.max, Math.max(bounds.min, percent / 100));
  };
  return {
    diskMaxUsedSpaceRatio: ratio('diskMaxUsedSpaceRatio'),
    diskSpaceWarningLevelRatio: ratio('diskSpaceWarningLevelRatio'),
    diskSpaceCleanForciblyRatio: ratio('diskSpaceCleanForciblyRatio'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Measuring.

/** The statfs fields the ratio needs; `bfree` is used when the seam provides it (node's does). */
export type StatfsBlocks = Readonly<{ bsize: number; blocks: number; bavail: number; bfree?: number }>;

/** Used fraction of a file system, rounded up to hundredths; -1 when the counts make no sense. */
export function usageRatioFromStatfs(stats: StatfsBlocks): number {
  // RocketMQ: used = total - free, entire = used + usable, so blocks reserved for root count as neither.
  const free = stats.bfree ?? stats.bavail;
  const used = stats.blocks - free;
  const entire = used + stats.bavail;
  if (!(stats.blocks > 0) || used < 0 || !(entire > 0)) return DISK_USAGE_UNKNOWN;
  const usedHundredths = used * 100;
  const percent = Math.floor(usedHundredths / entire) + (usedHundredths % entire === 0 ? 0 : 1);
  assert(percent >= 0 && percent <= 100, () => `disk usage percent out of range: ${percent}`);
  return percent / 100;
}

/** Used fraction of the file system holding `path`, or -1 when it cannot be measured. */
export function diskUsageRatio(fs: StorageFs, path: string): number {
  if (path === '' || !fs.existsSync(path)) return DISK_USAGE_UNKNOWN;
  let stats: StatfsBlocks;
  try {
    stats = fs.statfsSync(path);
  } catch {
    // RocketMQ logs and answers -1 for any failure; the caller treats -1 as "clean, but do not refuse".
    return DISK_USAGE_UNKNOWN;
  }
  return usageRatioFromStatfs(stats);
}

// ---------------------------------------------------------------------------------------------------------
// Choosing the segments to delete.

/** Whether `now`'s local hour is one of deleteWhen's hours ("04", "04;16"), as UtilAll.isItTimeToDo. */
export function isDeleteHour(deleteWhen: string, now: Date): boolean {
  const hour = now.getHours();
  let match = false;
  for (const text of deleteWhen.split(';')) {
    assert(/^\d{1,2}$/.test(text) && Number(text) <= 23, () => `deleteWhen must list hours 0..23 separated by ";": ${deleteWhen}`);
    if (Number(text) === hour) match = true;
  }
  return match;
}

/** One commit log segment, as the cleaner sees it. */
export type SegmentFile = Readonly<{ name: string; lastModifiedMs: number; startOffset: number }>;

/** The inputs of one cleaning run; ratios are fractions (see diskRatiosFromPercents). */
export type RetentionOptions = Readonly<{
  fileReservedTimeHours: number;
  nowMs: number;
  deleteWhen: string;
  /** Measured usage: the higher of the commit log and consume queue disks, or -1 if unknown. */
  diskUsedRatio: number;
  diskMaxUsedSpaceRatio: number;
  /** diskSpaceCleanForciblyRatio: over it, segments go even when not expired. */
  forceCleanRatio: number;
  /** deleteFileBatchMax: most segments one run deletes. */
  maxFilesPerRun: number;
  /** cleanFileForciblyEnable; true when absent. */
  cleanFileForciblyEnable?: boolean;
  /** An operator asked for a run (executeDeleteFilesManually). */
  manualDelete?: boolean;
}>;

/** Why a run happened. */
export type RetentionTrigger = 'deleteWhen' | 'diskOverMaxUsedRatio' | 'manual';

/** The outcome of one run: what triggered it, whether it was forcible, and the segments to delete. */
export type RetentionDecision = Readonly<{
  triggers: readonly RetentionTrigger[];
  cleanImmediately: boolean;
  /** Oldest first; never the newest segment; at most maxFilesPerRun. */
  files: readonly SegmentFile[];
}>;

/** Chooses the segments one cleaning run deletes; `files` must be sorted by startOffset, oldest first. */
export function selectExpiredFiles(files: readonly SegmentFile[], options: RetentionOptions): RetentionDecision {
  checkRetentionOptions(options);
  for (let i = 1; i < files.length; i++) {
    assert(files[i - 1]!.startOffset < files[i]!.startOffset, 'segments must be sorted by startOffset, without duplicates');
  }
  const ratio = options.diskUsedRatio;
  const overForceClean = ratio > options.forceCleanRatio;
  const triggers: RetentionTrigger[] = [];
  if (isDeleteHour(options.deleteWhen, new Date(options.nowMs))) triggers.push('deleteWhen');
  if (ratio < 0 || ratio > options.diskMaxUsedSpaceRatio || overForceClean) triggers.push('diskOverMaxUsedRatio');
  if (options.manualDelete === true) triggers.push('manual');
  const cleanImmediately = triggers.length > 0 && overForceClean && options.cleanFileForciblyEnable !== false;
  if (triggers.length === 0) return { triggers, cleanImmediately, files: [] };

  const reservedMs = options.fileReservedTimeHours * HOUR_MS;
  const selected: SegmentFile[] = [];
  // files.length - 1: the newest segment is the one being written and is never a candidate.
  for (let i = 0; i < files.length - 1 && selected.length < options.maxFilesPerRun; i++) {
    const file = files[i]!;
    if (!cleanImmediately && options.nowMs < file.lastModifiedMs + reservedMs) break;
    selected.push(file);
  }
  assert(selected.length <= options.maxFilesPerRun && selected.length < Math.max(files.length, 1), 'selection bound');
  return { triggers, cleanImmediately, files: selected };
}

function checkRetentionOptions(options: RetentionOptions): void {
  assert(Number.isSafeInteger(options.nowMs) && options.nowMs >= 0, () => `nowMs must be a non-negative integer: ${options.nowMs}`);
  assert(options.fileReservedTimeHours >= 0 && Number.isFinite(options.fileReservedTimeHours), 'fileReservedTimeHours must be >= 0');
  assert(Number.isSafeInteger(options.maxFilesPerRun) && options.maxFilesPerRun >= 1, 'maxFilesPerRun must be >= 1');
  assert(options.diskUsedRatio === DISK_USAGE_UNKNOWN || (options.diskUsedRatio >= 0 && options.diskUsedRatio <= 1), 'bad diskUsedRatio');
  assert(options.diskMaxUsedSpaceRatio > 0 && options.diskMaxUsedSpaceRatio <= 1, 'diskMaxUsedSpaceRatio is a fraction');
  assert(options.forceCleanRatio > 0 && options.forceCleanRatio <= 1, 'forceCleanRatio is a fraction');
}

// ---------------------------------------------------------------------------------------------------------
// The disk-full guard.

/** A write refused because the disk is full, with the answer RocketMQ's broker gives. */
export type DiskFullRefusal = Readonly<{
  code: typeof DISK_FULL_CODE;
  putMessageStatus: 'SERVICE_NOT_AVAILABLE';
  responseCode: typeof SERVICE_NOT_AVAILABLE_RESPONSE_CODE;
  remark: string;
}>;

/** The measured ratios and what the last check decided. */
export type DiskCheck = Readonly<{
  physicRatio: number;
  logicsRatio: number;
  indexRatio: number;
  /** RunningFlags' DISK_FULL_BIT: sends are refused while set. */
  diskFull: boolean;
  /** isSpaceToDelete: the cleaner should run now regardless of deleteWhen. */
  spaceToDelete: boolean;
  /** Over the clean-forcibly ratio: the cleaner may delete unexpired segments. */
  cleanImmediately: boolean;
}>;

/** The disk-full state after one measurement (CleanCommitLogService.isSpaceToDelete). */
export function nextDiskState(
  diskFull: boolean,
  physicRatio: number,
  logicsRatio: number,
  ratios: DiskRatios,
): Pick<DiskCheck, 'diskFull' | 'spaceToDelete' | 'cleanImmediately'> {
  const warning = ratios.diskSpaceWarningLevelRatio;
  const forcibly = ratios.diskSpaceCleanForciblyRatio;
  if (physicRatio > warning) return { diskFull: true, spaceToDelete: true, cleanImmediately: true };
  // Between the two ratios the mark stays as it was: this is the hysteresis.
  if (physicRatio > forcibly) return { diskFull, spaceToDelete: true, cleanImmediately: true };
  if (logicsRatio > warning) return { diskFull: true, spaceToDelete: true, cleanImmediately: true };
  if (logicsRatio > forcibly) return { diskFull: false, spaceToDelete: true, cleanImmediately: true };
  const max = ratios.diskMaxUsedSpaceRatio;
  const spaceToDelete = physicRatio < 0 || physicRatio > max || logicsRatio < 0 || logicsRatio > max;
  return { diskFull: false, spaceToDelete, cleanImmediately: false };
}

/** How a DiskGuard is built. */
export type DiskGuardOptions = Readonly<{
  fs: StorageFs;
  /** storePathCommitLog split on ','; the least used of them counts, as in RocketMQ. */
  commitLogPaths: readonly string[];
  consumeQueuePath: string;
  indexPath: string;
  /** Fractions; RETENTION_DEFAULTS' when absent (see diskRatiosFromPercents). */
  ratios?: DiskRatios;
}>;

/** Decides whether writes are accepted, from periodic statfs checks of the store's disks. */
export class DiskGuard {
  private readonly fs: StorageFs;
  private readonly commitLogPaths: readonly string[];
  private readonly consumeQueuePath: string;
  private readonly indexPath: string;
  private readonly ratios: DiskRatios;
  private last: DiskCheck;

  constructor(options: DiskGuardOptions) {
    assert(options.commitLogPaths.length >= 1, 'DiskGuard needs at least one commit log path');
    this.fs = options.fs;
    this.commitLogPaths = [...options.commitLogPaths];
    this.consumeQueuePath = options.consumeQueuePath;
    this.indexPath = options.indexPath;
    this.ratios = options.ratios ?? diskRatiosFromPercents({});
    assert(this.ratios.diskSpaceCleanForciblyRatio <= this.ratios.diskSpaceWarningLevelRatio, 'clean-forcibly ratio above warning ratio');
    this.last = { physicRatio: 0, logicsRatio: 0, indexRatio: 0, diskFull: false, spaceToDelete: false, cleanImmediately: false };
  }

  /** Measures the disks (every cleanResourceInterval) and updates the disk-full mark. */
  check(): DiskCheck {
    let physicRatio = 1;
    for (const path of this.commitLogPaths) physicRatio = Math.min(physicRatio, diskUsageRatio(this.fs, path));
    const logicsRatio = diskUsageRatio(this.fs, this.consumeQueuePath);
    const indexRatio = diskUsageRatio(this.fs, this.indexPath);
    return this.observe(physicRatio, logicsRatio, indexRatio);
  }

  /** Applies already-measured ratios (for the simulator, and for check). */
  observe(physicRatio: number, logicsRatio: number, indexRatio: number): DiskCheck {
    for (const ratio of [physicRatio, logicsRatio, indexRatio]) {
      assert(ratio === DISK_USAGE_UNKNOWN || (ratio >= 0 && ratio <= 1), () => `bad disk usage ratio ${ratio}`);
    }
    const state = nextDiskState(this.last.diskFull, physicRatio, logicsRatio, this.ratios);
    this.last = { physicRatio, logicsRatio, indexRatio, ...state };
    return this.last;
  }

  /** Whether sends are accepted now. */
  get isWriteable(): boolean {
    return !this.last.diskFull;
  }

  /** The last check's result. */
  get lastCheck(): DiskCheck {
    return this.last;
  }

  /** The refusal to give a send while the disk is full, or undefined when writes are accepted. */
  refusal(): DiskFullRefusal | undefined {
    if (!this.last.diskFull) return undefined;
    const { physicRatio, logicsRatio, indexRatio } = this.last;
    const usage = `CL: ${formatRatio(physicRatio)} CQ: ${formatRatio(logicsRatio)} INDEX: ${formatRatio(indexRatio)}`;
    return {
      code: DISK_FULL_CODE,
      putMessageStatus: 'SERVICE_NOT_AVAILABLE',
      responseCode: SERVICE_NOT_AVAILABLE_RESPONSE_CODE,
      // SendMessageProcessor's remark for SERVICE_NOT_AVAILABLE, word for word, so clients and
      // operators see what a Java broker says.
      remark:
        "service not available now. It may be caused by one of the following reasons: the broker's disk is full [" +
        usage +
        '], messages are put to the slave, message store has been shut down, etc.',
    };
  }
}

/** Java's `%5.2f`. */
function formatRatio(ratio: number): string {
  return ratio.toFixed(2).padStart(5, ' ');
}
