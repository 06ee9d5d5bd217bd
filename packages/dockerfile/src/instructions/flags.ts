/**
 * `--name[=value]` flags of an instruction, with BuildKit's BFlags rules: unknown and duplicate
 * flags are errors, booleans take `true`/`false` or nothing, strings need a value, and
 * repeatable flags collect into arrays. Errors are `E_BAD_FLAG` and list the valid flags.
 */
import type { FlagValue, Keyword } from '../types.ts';
import { fail, type BuildContext } from './common.ts';

export type FlagType = 'string' | 'strings' | 'bool';
export type FlagSpec = Record<string, FlagType>;

function column(ctx: BuildContext, name: string): { line: number; column: number } | undefined {
  // Locate `--name` in the source: the first line of the instruction is enough in practice.
  const idx = ctx.node.original.indexOf('--' + name);
  if (idx < 0 || ctx.node.original.lastIndexOf('\n', idx) !== -1) return undefined;
  return { line: ctx.node.range.start.line, column: ctx.node.range.start.column + idx };
}

export function parseFlags(ctx: BuildContext, kind: Keyword, spec: FlagSpec): Record<string, FlagValue> {
  const out: Record<string, FlagValue> = {};
  const valid = Object.keys(spec).map((n) => '--' + n);
  const validText = valid.length ? `valid flags for ${kind}: ${valid.join(', ')}` : `${kind} takes no flags`;
  for (const word of ctx.node.flags) {
    const arg = word.startsWith('--') ? word.slice(2) : word;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? undefined : arg.slice(eq + 1);
    const at = column(ctx, name);
    const bad = (msg: string): never => fail(ctx, msg, 'E_BAD_FLAG', at?.column, at?.line);
    if (!word.startsWith('--')) bad(`arguments can't start with "-": ${word}`);
    const type = spec[name];
    if (type === undefined) bad(`unknown flag --${name} for ${kind} (${validText})`);
    if (type !== 'strings' && name in out) bad(`duplicate flag specified: --${name}`);
    if (type === 'bool') {
      if (value === undefined) out[name] = true;
      else if (/^true$/i.test(value)) out[name] = true;
      else if (/^false$/i.test(value)) out[name] = false;
      else bad(`expecting boolean value for flag --${name}, not: ${value}`);
    } else {
      if (value === undefined) bad(`missing a value on flag --${name} (use --${name}=<value>)`);
      if (type === 'string') out[name] = value!;
      else out[name] = [...((out[name] as string[] | undefined) ?? []), value!];
    }
  }
  return out;
}

export const str = (f: Record<string, FlagValue>, name: string): string | undefined =>
  typeof f[name] === 'string' ? (f[name] as string) : undefined;
export const strs = (f: Record<string, FlagValue>, name: string): string[] =>
  Array.isArray(f[name]) ? (f[name] as string[]) : [];
export const bool = (f: Record<string, FlagValue>, name: string): boolean | undefined =>
  typeof f[name] === 'boolean' ? (f[name] as boolean) : undefined;
