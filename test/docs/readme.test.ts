/** Keeps the README true: its config table is the schema's, and it names the commands CI relies on. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderConfigTable } from '../../src/config/table.ts';

const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');

describe('README', () => {
  it('embeds the config table generated from the schema', () => {
    const match = /<!-- config-table -->\n([\s\S]*?)\n<!-- \/config-table -->/.exec(readme);
    expect(match).not.toBeNull();
    expect(match![1]).toBe(renderConfigTable().trim());
  });

  it('gives the start and test commands that .ci/run uses', () => {
    expect(readme).toContain('npm install && npm start');
    expect(readme).toContain('bash scripts/install-test-deps.sh && npm install && npm test');
    const ci = fs.readFileSync(path.resolve(import.meta.dirname, '../../.ci/run'), 'utf8');
    expect(ci).toContain('scripts/install-test-deps.sh');
    expect(ci).toContain('npm install');
    expect(ci).toContain('npm test');
  });
});
