import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEY_NAMES, specOf } from '../../src/config/schema.ts';
import { renderConfigTable } from '../../src/config/table.ts';

function rows(table: string): string[][] {
  return table
    .trimEnd()
    .split('\n')
    .slice(2)
    .map((line) => line.slice(2, -2).split(/ (?<!\\)\| /));
}

describe('renderConfigTable', () => {
  const table = renderConfigTable();

  it('has the six columns and one row per key, in metadata order', () => {
    const lines = table.trimEnd().split('\n');
    expect(lines[0]).toBe('| key | type | default (ours) | RocketMQ default | source class | description |');
    expect(lines[1]).toBe('| --- | --- | --- | --- | --- | --- |');
    const body = rows(table);
    expect(body.map((r) => r[0])).toEqual(CONFIG_KEY_NAMES.map((n) => `\`${n}\``));
    for (const row of body) expect(row).toHaveLength(6);
  });

  it('shows both defaults, the source and the description of each key', () => {
    for (const row of rows(table)) {
      const name = (row[0] ?? '').slice(1, -1);
      const spec = specOf(name as (typeof CONFIG_KEY_NAMES)[number]);
      expect(row[2]).toBe(`\`${spec.default.label}\``);
      expect(row[3]).toBe(`\`${spec.rocketmqDefault}\``);
      expect(row[4]).toBe(spec.source);
      expect(row[5]).toContain(spec.description);
    }
  });

  it('renders cores-dependent defaults as formulas', () => {
    expect(table).toContain('| `pullMessageThreadPoolNums` | integer 1..256 | `cores` | `16 + cores * 2` | BrokerConfig |');
    expect(table).toContain('| `sendMessageThreadPoolNums` | integer 1..256 | `min(4, cores)` | `min(cores, 4)` | BrokerConfig |');
  });

  it('is deterministic and free of this machine’s facts', () => {
    expect(renderConfigTable()).toBe(table);
    expect(table).not.toContain(os.homedir());
    expect(table).not.toContain(`\`${os.hostname()}\``);
    expect(table).toContain('`~/store`');
  });

  it('marks keys that are accepted but not used yet', () => {
    expect(table).toMatch(/\| `serverSelectorThreads` .*\*\(accepted, not used yet\)\* \|/);
  });
});
