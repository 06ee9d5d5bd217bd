/** ENV / LABEL name=value pairs (or the legacy `name value`), and ARG name[=default]. */
import type { ArgInstruction, KeyValueInstruction } from '../types.ts';
import { base, fail, stringArgs, type BuildContext } from './common.ts';
import { parseFlags } from './flags.ts';

export function buildKeyValue(ctx: BuildContext, kind: 'ENV' | 'LABEL'): KeyValueInstruction {
  const flags = parseFlags(ctx, kind, {});
  const args = stringArgs(ctx);
  if (args.length === 0) fail(ctx, `${kind} requires at least one argument`);
  const pairs: { key: string; value: string }[] = [];
  for (let i = 0; i + 1 < args.length; i += 3) {
    if (args[i] === '') fail(ctx, `${kind} names can not be blank`);
    pairs.push({ key: args[i], value: args[i + 1] });
  }
  return { kind, ...base(ctx, flags), pairs };
}

/** True when the ENV/LABEL used the legacy `KEY name value` form. */
export function isLegacyKeyValue(args: unknown[]): boolean {
  return args.length === 3 && args[2] === '';
}

export function buildArg(ctx: BuildContext): ArgInstruction {
  const flags = parseFlags(ctx, 'ARG', {});
  const words = stringArgs(ctx);
  if (words.length === 0) fail(ctx, 'ARG requires at least one argument');
  const args = words.map((w) => {
    const eq = w.indexOf('=');
    if (eq === -1) return { key: w };
    if (eq === 0) fail(ctx, `ARG names can not be blank (in "${w}")`);
    return { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
  return { kind: 'ARG', ...base(ctx, flags), args };
}
