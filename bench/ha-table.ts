/**
 * The HA benchmark's result table: rows of measure | value | unit | notes, collected by the phases and
 * printed once at the end as a Markdown table, plus the number formats the rows use.
 */

/** One line of the table. */
export type HaRow = { readonly measure: string; readonly value: string; readonly unit: string; readonly notes: string };

/** Most rows one run prints (every phase adds a handful). */
const ROWS_MAX = 64;

/** Rows in the order the phases added them. */
export class HaTable {
  readonly #rows: HaRow[] = [];

  /** Adds one row. */
  add(row: HaRow): void {
    if (this.#rows.length >= ROWS_MAX) throw new Error(`more than ${ROWS_MAX} rows in the HA bench table`);
    this.#rows.push(row);
  }

  /** The table as Markdown, columns padded to their widest cell. */
  render(): string {
    const keys = ['measure', 'value', 'unit', 'notes'] as const;
    const widths = keys.map((key) => Math.max(key.length, ...this.#rows.map((row) => row[key].length)));
    const line = (cells: readonly string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
    return [line(keys), line(widths.map((width) => '-'.repeat(width))), ...this.#rows.map((row) => line(keys.map((key) => row[key])))].join('\n');
  }
}

/** `value` with thousands separators and `digits` decimals. */
export const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Bytes as MiB with one decimal. */
export const mib = (bytes: number): string => fmt(bytes / 2 ** 20, 1);

/** CPU seconds over a wall time, as a share of one core ('?' when unknown). */
export const cpuShare = (cpuS: number | undefined, wallMs: number): string => (cpuS === undefined ? '?' : `${fmt((cpuS / (wallMs / 1000)) * 100)}%`);
