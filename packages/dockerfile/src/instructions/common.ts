/** What every instruction builder receives, and its error helpers. */
import { VlabError, type ErrorCode } from '@vlab/errors';
import type { SyntaxNode } from '../syntax/parse.ts';
import type { FlagValue, Keyword, Range } from '../types.ts';

export interface BuildContext {
  node: SyntaxNode;
  file?: string;
  escape: string;
  /** Set for the trigger of an ONBUILD: the trigger's own text replaces the line. */
  original?: string;
}

export interface BaseFields {
  range: Range;
  original: string;
  flags: Record<string, FlagValue>;
}

export function fail(
  ctx: BuildContext,
  message: string,
  code: ErrorCode = 'E_PARSE',
  column?: number,
  line?: number,
): never {
  const r = ctx.node.range.start;
  throw new VlabError(code, message, {
    location: { file: ctx.file, line: line ?? r.line, column: column ?? r.column },
  });
}

/** Strings of a node's arguments (nested nodes only occur for ONBUILD). */
export function stringArgs(ctx: BuildContext): string[] {
  return ctx.node.args.filter((a): a is string => typeof a === 'string');
}

export function base(ctx: BuildContext, flags: Record<string, FlagValue>): BaseFields {
  return { range: ctx.node.range, original: ctx.original ?? ctx.node.original, flags };
}

export function requireArgs(
  ctx: BuildContext,
  kind: Keyword,
  args: unknown[],
  rule: 'atLeastOne' | 'exactlyOne',
): void {
  if (rule === 'atLeastOne' && args.length === 0) fail(ctx, `${kind} requires at least one argument`);
  if (rule === 'exactlyOne' && args.length !== 1) fail(ctx, `${kind} requires exactly one argument`);
}
