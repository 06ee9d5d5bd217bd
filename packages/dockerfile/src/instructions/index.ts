/** Syntax node → typed Instruction: one builder per family, dispatched on the keyword. */
import { KEYWORDS, type Instruction, type Keyword, type OnbuildInstruction } from '../types.ts';
import { nodeFromLine, type SyntaxNode } from '../syntax/parse.ts';
import { LineError } from '../syntax/line-parsers.ts';
import { base, fail, type BuildContext } from './common.ts';
import { parseFlags } from './flags.ts';
import { buildFrom } from './from.ts';
import { buildRun } from './run.ts';
import { buildCopy } from './copy.ts';
import { buildArg, buildKeyValue } from './kv.ts';
import { buildCommand, buildShell } from './cmd.ts';
import { buildExpose, buildMaintainer, buildStopSignal, buildUser, buildVolume, buildWorkdir } from './simple.ts';
import { buildHealthcheck } from './healthcheck.ts';

/** Levenshtein distance with two rows (callers keep the words short). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The keyword closest to `word`, when it is plausibly a typo. */
export function suggestKeyword(word: string): Keyword | undefined {
  const w = word.toUpperCase();
  if (w.length > 16) return undefined; // no keyword is longer than 11 characters
  let best: Keyword | undefined;
  let bestD = Infinity;
  for (const k of KEYWORDS) {
    const d = distance(w, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return bestD <= Math.max(2, Math.floor(w.length / 3)) ? best : undefined;
}

const NOT_TRIGGERS = new Set(['ONBUILD', 'FROM', 'MAINTAINER']);

function buildOnbuild(ctx: BuildContext): OnbuildInstruction {
  const flags = parseFlags(ctx, 'ONBUILD', {});
  const triggerText = ctx.node.rest;
  if (triggerText === '') fail(ctx, 'ONBUILD requires at least one argument');
  let inner: ReturnType<typeof nodeFromLine>;
  try {
    inner = nodeFromLine(triggerText, ctx.escape);
  } catch (e) {
    if (e instanceof LineError) fail(ctx, e.message);
    throw e;
  }
  const kw = inner.keyword.toUpperCase();
  if (NOT_TRIGGERS.has(kw)) fail(ctx, `${kw} isn't allowed as an ONBUILD trigger`);
  const node: SyntaxNode = { ...inner, original: triggerText, heredocs: [], range: ctx.node.range };
  const trigger = buildInstruction({ ...ctx, node, original: triggerText });
  return { kind: 'ONBUILD', ...base(ctx, flags), trigger, triggerText };
}

export function buildInstruction(ctx: BuildContext): Instruction {
  const kw = ctx.node.keyword.toUpperCase();
  switch (kw) {
    case 'FROM':
      return buildFrom(ctx);
    case 'RUN':
      return buildRun(ctx);
    case 'COPY':
    case 'ADD':
      return buildCopy(ctx, kw);
    case 'ENV':
    case 'LABEL':
      return buildKeyValue(ctx, kw);
    case 'ARG':
      return buildArg(ctx);
    case 'CMD':
    case 'ENTRYPOINT':
      return buildCommand(ctx, kw);
    case 'SHELL':
      return buildShell(ctx);
    case 'WORKDIR':
      return buildWorkdir(ctx);
    case 'USER':
      return buildUser(ctx);
    case 'EXPOSE':
      return buildExpose(ctx);
    case 'VOLUME':
      return buildVolume(ctx);
    case 'STOPSIGNAL':
      return buildStopSignal(ctx);
    case 'HEALTHCHECK':
      return buildHealthcheck(ctx);
    case 'ONBUILD':
      return buildOnbuild(ctx);
    case 'MAINTAINER':
      return buildMaintainer(ctx);
    default: {
      const s = suggestKeyword(ctx.node.keywordText);
      fail(
        ctx,
        `unknown instruction: ${ctx.node.keywordText}${s ? ` (did you mean ${s}?)` : ''}`,
        'E_UNKNOWN_INSTRUCTION',
      );
    }
  }
}
