/** The CLI's shared output shapes: `--format table|json`, pretty JSON, docker's aligned columns. */
import { VlabError } from '@vlab/errors';
import { str, type Values } from './flags.ts';

/** The `--format` flag of the verbs that print a table or json. */
export const FORMAT = { type: 'string', arg: 'table|json', help: 'output format (default table)' } as const;

/** `--format`: table (the default) or json; anything else is E_BAD_ARG. */
export function outputFormat(v: Values): 'table' | 'json' {
  const f = str(v.format) ?? 'table';
  if (f !== 'table' && f !== 'json') throw new VlabError('E_BAD_ARG', `--format must be table or json, got "${f}"`);
  return f;
}

/** `x` as docker's inspect prints it: indented by 2, one trailing newline. */
export function printJson(x: unknown): void {
  process.stdout.write(`${JSON.stringify(x, null, 2)}\n`);
}

/**
 * Rows in columns, as docker's tabwriter: each column as wide as its widest cell (in code points)
 * plus 3 spaces, at least `minWidth`; the last column unpadded, trailing blanks trimmed; a newline
 * after each row.
 */
export function table(rows: string[][], minWidth = 0): string {
  const w = rows[0]!.map((_, i) => Math.max(minWidth, ...rows.map((r) => [...(r[i] ?? '')].length + 3)));
  return rows
    .map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('')}`.trimEnd() + '\n')
    .join('');
}
