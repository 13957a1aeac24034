// The docs table of every config key, generated from the metadata in schema.ts so the README can
// never disagree with the schema. It is deterministic: machine-dependent defaults are shown as
// formulas (`cores` is os.availableParallelism(), a pool never exceeds 256), never as this
// machine's numbers.

import { CONFIG_KEY_NAMES, specOf } from './schema.ts';

const HEADER = ['key', 'type', 'default (ours)', 'RocketMQ default', 'source class', 'description'] as const;

// Markdown table cells cannot hold a raw `|` or a line break.
function cell(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('|', '\\|').replace(/\r?\n/g, ' ');
}

function code(text: string): string {
  return text === '' ? '' : `\`${cell(text)}\``;
}

/** Renders every config key as one Markdown table: key, type, our default, RocketMQ's default, source class, description. */
export function renderConfigTable(): string {
  const lines = [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => ' --- ').join('|')}|`];
  for (const name of CONFIG_KEY_NAMES) {
    const spec = specOf(name);
    const description = spec.active ? spec.description : `${spec.description} *(accepted, not used yet)*`;
    const row = [
      code(name),
      cell(spec.type.docLabel),
      code(spec.default.label),
      code(spec.rocketmqDefault),
      cell(spec.source),
      cell(description),
    ];
    lines.push(`| ${row.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}
