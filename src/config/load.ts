// Loading a node's configuration: schema defaults, then the file given with `-c FILE`, then
// command-line overrides, each layer replacing the one before key by key. Values from the file and
// the command line are text and are read by each key's type (schema.ts). Like RocketMQ, a key the
// node does not know is ignored when it comes from a file (a RocketMQ broker.conf has many), but we
// hand it back as a warning; on the command line it is a typo, so it is an error.
//
// A file ending in `.json` is read as one JSON object (RocketMQ's proxy reads rmq-proxy.json);
// anything else as java.util.Properties text (properties.ts). Properties files are decoded as UTF-8,
// or as ISO-8859-1 (what Java's Properties.load reads) when they are not valid UTF-8.

import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.ts';
import { isRole, machineDefaultContext, type DefaultContext, type Role } from './environment.ts';
import { parseProperties } from './properties.ts';
import {
  CONFIG_KEY_NAMES,
  isConfigKey,
  nodeConfigSchema,
  quoteValue,
  specOf,
  type ConfigIssueParams,
  type ConfigKey,
  type NodeConfig,
} from './schema.ts';

export { ConfigError } from './errors.ts';

/** Where a key's value came from. */
export type ValueOrigin =
  | { readonly kind: 'default' }
  | { readonly kind: 'file'; readonly file: string; readonly line: number | undefined }
  | { readonly kind: 'cli'; readonly flag: string };

/** What loadConfig needs: the role, an optional config file and the command-line overrides. */
export interface LoadConfigInput {
  /** The role being started; it picks role-dependent defaults and rules. */
  readonly role: Role;
  /** Path of a properties (or `.json`) file, as given with `-c`. */
  readonly file?: string;
  /** Command-line overrides by key, as text (see parseCliOverrides). */
  readonly overrides: Readonly<Record<string, string>>;
  /** Replaces machine facts the defaults depend on (cores, home, host name...); tests use it. */
  readonly machine?: Partial<Omit<DefaultContext, 'role'>>;
}

/** A loaded configuration: the frozen config, warnings for the caller to log, and where each value came from. */
export interface LoadedConfig {
  /** The validated configuration with every default filled in. */
  readonly config: NodeConfig;
  /** One sentence per ignored file key (unknown to the node), naming the file and line. */
  readonly warnings: readonly string[];
  /** Where each key's value came from. */
  readonly origins: Readonly<Record<ConfigKey, ValueOrigin>>;
}

interface RawValue {
  readonly text: string;
  readonly origin: ValueOrigin;
}

/** The most command-line arguments parseCliOverrides reads. */
export const CLI_ARGUMENTS_MAX = 10_000;

/**
 * Reads `--key=value`, `--key value` and `--flag` (meaning `true`) into overrides by key; a later
 * flag replaces an earlier one. Keys are not checked here (loadConfig refuses unknown ones), but any
 * argument that is not a flag or a flag's value throws ConfigError.
 */
export function parseCliOverrides(argv: readonly string[]): Record<string, string> {
  if (argv.length > CLI_ARGUMENTS_MAX) {
    throw new ConfigError([`too many command-line arguments (${argv.length}, at most ${CLI_ARGUMENTS_MAX})`], undefined);
  }
  const overrides = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--') || arg.length === 2) {
      throw new ConfigError([`unexpected command-line argument ${quoteValue(arg)}: overrides are --key=value, --key value or --flag`], undefined);
    }
    const body = arg.slice(2);
    const equals = body.indexOf('=');
    let name: string;
    let value: string;
    if (equals >= 0) {
      name = body.slice(0, equals);
      value = body.slice(equals + 1);
    } else {
      name = body;
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        i++;
      } else {
        value = 'true';
      }
    }
    if (name === '') throw new ConfigError([`unexpected command-line argument ${quoteValue(arg)}: the key is missing`], undefined);
    overrides.set(name, value);
  }
  return Object.fromEntries(overrides);
}

/** Loads and validates a node's configuration (defaults < file < overrides); throws ConfigError on any invalid key, value, file or flag. */
export function loadConfig(input: LoadConfigInput): LoadedConfig {
  if (!isRole(input.role)) {
    throw new ConfigError([`unknown role ${quoteValue(input.role)}`], undefined);
  }
  const ctx = machineDefaultContext(input.role, input.machine);
  const raw = new Map<ConfigKey, RawValue>();
  const warnings: string[] = [];
  if (input.file !== undefined) {
    readFileLayer(input.file, raw, warnings);
  }
  for (const [name, text] of Object.entries(input.overrides)) {
    if (!isConfigKey(name)) {
      throw new ConfigError([`unknown config key ${quoteValue(name)} (from command line --${name})${suggestion(name)}`], name);
    }
    raw.set(name, { text, origin: { kind: 'cli', flag: `--${name}` } });
  }

  const explicit: Partial<Record<ConfigKey, string>> = {};
  for (const [name, value] of raw) explicit[name] = value.text;
  const parsed = nodeConfigSchema(ctx).safeParse(explicit);
  if (!parsed.success) throw configErrorFromIssues(parsed.error.issues, raw);

  const origins = {} as Record<ConfigKey, ValueOrigin>;
  for (const name of CONFIG_KEY_NAMES) origins[name] = raw.get(name)?.origin ?? { kind: 'default' };
  return { config: Object.freeze(parsed.data), warnings, origins: Object.freeze(origins) };
}

function readFileLayer(file: string, raw: Map<ConfigKey, RawValue>, warnings: string[]): void {
  const absolute = path.resolve(file);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(absolute);
  } catch (cause) {
    const reason = cause instanceof Error && 'code' in cause ? String(cause.code) : String(cause);
    throw new ConfigError([`cannot read config file ${quoteValue(absolute)}: ${reason}`], undefined, { cause });
  }
  const entries = absolute.endsWith('.json') ? jsonEntries(bytes, absolute) : propertiesEntries(bytes, absolute);
  for (const entry of entries) {
    const origin: ValueOrigin = { kind: 'file', file: absolute, line: entry.line };
    if (isConfigKey(entry.key)) {
      raw.set(entry.key, { text: entry.value, origin });
    } else {
      warnings.push(`unknown config key ${quoteValue(entry.key)} ignored (${describeOrigin(origin)})${suggestion(entry.key)}`);
    }
  }
}

interface TextEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number | undefined;
}

function propertiesEntries(bytes: Buffer, file: string): TextEntry[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    text = bytes.toString('latin1');
  }
  try {
    return parseProperties(text);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new ConfigError([`cannot parse config file ${quoteValue(file)}: ${detail}`], undefined, { cause });
  }
}

function jsonEntries(bytes: Buffer, file: string): TextEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new ConfigError([`cannot parse config file ${quoteValue(file)}: ${detail}`], undefined, { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`cannot parse config file ${quoteValue(file)}: expected one JSON object`], undefined);
  }
  const entries: TextEntry[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      entries.push({ key, value: String(value), line: undefined });
    } else if (isConfigKey(key)) {
      throw new ConfigError(
        [`invalid config key ${quoteValue(key)}: expected ${specOf(key).type.expected}, got ${JSON.stringify(value)} (from ${file})`],
        key,
      );
    } else {
      entries.push({ key, value: JSON.stringify(value), line: undefined });
    }
  }
  return entries;
}

function configErrorFromIssues(issues: readonly ZodIssueLike[], raw: ReadonlyMap<ConfigKey, RawValue>): ConfigError {
  const problems: string[] = [];
  let firstKey: string | undefined;
  for (const issue of issues) {
    const name = issue.path[0];
    if (typeof name !== 'string' || !isConfigKey(name)) {
      problems.push(`invalid config: ${issue.message}`);
      continue;
    }
    firstKey ??= name;
    const given = raw.get(name);
    const detail = (issue.params as ConfigIssueParams | undefined)?.detail
      ?? `expected ${specOf(name).type.expected}, got ${quoteValue(given?.text ?? '')}`;
    const origin = given?.origin ?? { kind: 'default' };
    const where = origin.kind === 'default' ? `from the default: ${specOf(name).default.label}` : describeOrigin(origin);
    problems.push(`invalid config key ${quoteValue(name)}: ${detail} (${where})`);
  }
  return new ConfigError(problems, firstKey);
}

interface ZodIssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly params?: unknown;
}

/** Says where a value came from, for messages: `from /etc/broker.conf line 3`, `from command line --listenPort`. */
export function describeOrigin(origin: ValueOrigin): string {
  switch (origin.kind) {
    case 'file':
      return origin.line === undefined ? `from ${origin.file}` : `from ${origin.file} line ${origin.line}`;
    case 'cli':
      return `from command line ${origin.flag}`;
    case 'default':
      return 'from the default';
    default:
      return assertNever(origin);
  }
}

// A hint for a key that differs from a known one only by case, the commonest typo in broker.conf.
function suggestion(name: string): string {
  const lower = name.toLowerCase();
  const match = CONFIG_KEY_NAMES.find((k) => k.toLowerCase() === lower);
  return match === undefined ? '' : `; did you mean ${quoteValue(match)}?`;
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}
