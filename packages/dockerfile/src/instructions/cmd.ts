/** CMD / ENTRYPOINT (shell or exec form) and SHELL (exec form only). */
import type { CommandInstruction, ShellInstruction } from '../types.ts';
import { base, fail, stringArgs, type BuildContext } from './common.ts';
import { parseFlags } from './flags.ts';

export function buildCommand(ctx: BuildContext, kind: 'CMD' | 'ENTRYPOINT'): CommandInstruction {
  const flags = parseFlags(ctx, kind, {});
  return { kind, ...base(ctx, flags), form: ctx.node.json ? 'exec' : 'shell', command: stringArgs(ctx) };
}

export function buildShell(ctx: BuildContext): ShellInstruction {
  const flags = parseFlags(ctx, 'SHELL', {});
  const argv = stringArgs(ctx);
  if (argv.length === 0) fail(ctx, 'SHELL requires at least one argument');
  if (!ctx.node.json) fail(ctx, 'SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]');
  return { kind: 'SHELL', ...base(ctx, flags), argv };
}
