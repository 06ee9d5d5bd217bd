/** RUN [--mount=…] [--network=…] [--security=…] command | ["exec", "form"] (+ heredocs) */
import type { RunInstruction } from '../types.ts';
import { base, fail, stringArgs, type BuildContext } from './common.ts';
import { parseFlags, str, strs } from './flags.ts';
import { MountError, parseMount } from './mount.ts';

const NETWORKS = ['default', 'none', 'host'];
const SECURITY = ['sandbox', 'insecure'];

export function buildRun(ctx: BuildContext): RunInstruction {
  const flags = parseFlags(ctx, 'RUN', { mount: 'strings', network: 'string', security: 'string' });
  const args = stringArgs(ctx);
  if (args.length === 0 && !ctx.node.json) fail(ctx, 'RUN requires at least one argument');
  const mounts = strs(flags, 'mount').map((m) => {
    try {
      return parseMount(m);
    } catch (e) {
      if (e instanceof MountError) fail(ctx, `invalid --mount=${m}: ${e.message}`, 'E_BAD_FLAG');
      throw e;
    }
  });
  const inst: RunInstruction = {
    kind: 'RUN',
    ...base(ctx, flags),
    form: ctx.node.json ? 'exec' : 'shell',
    command: args,
    heredocs: ctx.node.heredocs,
    mounts,
  };
  const network = str(flags, 'network');
  if (network !== undefined) {
    if (!NETWORKS.includes(network))
      fail(ctx, `unsupported network mode "${network}" (use ${NETWORKS.join(', ')})`, 'E_BAD_FLAG');
    inst.network = network as RunInstruction['network'];
  }
  const security = str(flags, 'security');
  if (security !== undefined) {
    if (!SECURITY.includes(security))
      fail(ctx, `unsupported security mode "${security}" (use ${SECURITY.join(', ')})`, 'E_BAD_FLAG');
    inst.security = security;
  }
  return inst;
}
