/** COPY/ADD [flags] src... dest | ["src", ..., "dest"], sources may be heredocs (`COPY <<EOF /dst`). */
import type { CopyInstruction } from '../types.ts';
import { parseHeredoc } from '../syntax/heredoc.ts';
import { pathComponentProblem } from '../path-component.ts';
import { base, fail, stringArgs, type BuildContext } from './common.ts';
import { bool, parseFlags, str, strs, type FlagSpec } from './flags.ts';

const COMMON: FlagSpec = { chown: 'string', chmod: 'string', link: 'bool', exclude: 'strings' };
const COPY_FLAGS: FlagSpec = { ...COMMON, from: 'string', parents: 'bool' };
const ADD_FLAGS: FlagSpec = { ...COMMON, checksum: 'string', 'keep-git-dir': 'bool', unpack: 'bool', parents: 'bool' };

function isHeredocWord(w: string): boolean {
  try {
    return parseHeredoc(w) !== undefined;
  } catch {
    return false;
  }
}

/**
 * A COPY/ADD heredoc's name becomes a file name in the image (BuildKit writes the body with
 * Mkfile(name) in an empty scratch state, then copies that path). Only one path component can
 * work there: BuildKit fails on a name with '/' (no parent dir) and cleans '..' away. We refuse
 * both up front, at the name, instead of letting a path reach the filesystem.
 */
function checkHeredocName(ctx: BuildContext, kind: string, name: string): void {
  const problem = pathComponentProblem(name);
  if (problem) {
    const at = (ctx.original ?? ctx.node.original).indexOf(`<<`);
    const column = at >= 0 ? ctx.node.range.start.column + at : undefined;
    const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
    fail(
      ctx,
      `${kind} <<${shown}: a heredoc name is the file name in the image and must be one path component (${problem}); name the destination instead, e.g. ${kind} <<EOF /dir/file`,
      'E_PARSE',
      column,
    );
  }
}

export function buildCopy(ctx: BuildContext, kind: 'COPY' | 'ADD'): CopyInstruction {
  const flags = parseFlags(ctx, kind, kind === 'COPY' ? COPY_FLAGS : ADD_FLAGS);
  const args = stringArgs(ctx);
  if (args.length < 2) {
    fail(
      ctx,
      args.length === 0
        ? `${kind} requires at least two arguments: a source and a destination`
        : `${kind} requires at least two arguments, but only one was provided. Destination could not be determined.`,
    );
  }
  const dest = args[args.length - 1];
  const heredocs = ctx.node.heredocs;
  for (const h of heredocs) checkHeredocName(ctx, kind, h.name);
  const sources = args.slice(0, -1).filter((w) => !(heredocs.length > 0 && !ctx.node.json && isHeredocWord(w)));
  const inst: CopyInstruction = {
    kind,
    ...base(ctx, flags),
    sources,
    dest,
    heredocs,
    link: bool(flags, 'link') ?? false,
    exclude: strs(flags, 'exclude'),
    parents: bool(flags, 'parents') ?? false,
  };
  const set = <K extends keyof CopyInstruction>(k: K, v: CopyInstruction[K] | undefined) => {
    if (v !== undefined) inst[k] = v;
  };
  set('from', str(flags, 'from'));
  set('chown', str(flags, 'chown'));
  set('chmod', str(flags, 'chmod'));
  set('checksum', str(flags, 'checksum'));
  set('keepGitDir', bool(flags, 'keep-git-dir'));
  set('unpack', bool(flags, 'unpack'));
  return inst;
}
