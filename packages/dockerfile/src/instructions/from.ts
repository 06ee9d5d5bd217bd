/** FROM [--platform=p] image [AS name] */
import type { FromInstruction } from '../types.ts';
import { base, fail, stringArgs, type BuildContext } from './common.ts';
import { parseFlags, str } from './flags.ts';

const STAGE_NAME = /^[a-z][a-z0-9\-_.]*$/;

export function buildFrom(ctx: BuildContext): FromInstruction {
  const flags = parseFlags(ctx, 'FROM', { platform: 'string' });
  const args = stringArgs(ctx);
  if (args.length !== 1 && args.length !== 3) fail(ctx, 'FROM requires either one or three arguments');
  let stageName: string | undefined;
  if (args.length === 3) {
    if (args[1].toLowerCase() !== 'as')
      fail(ctx, `FROM requires either one or three arguments, third argument must be "AS <name>", found "${args[1]}"`);
    stageName = args[2]; // as written; Stage.name is the lower-cased form
    if (!STAGE_NAME.test(stageName.toLowerCase())) {
      fail(ctx, `invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`);
    }
  }
  const inst: FromInstruction = { kind: 'FROM', ...base(ctx, flags), image: args[0] };
  if (stageName !== undefined) inst.stageName = stageName;
  const platform = str(flags, 'platform');
  if (platform !== undefined) inst.platform = platform;
  return inst;
}
