/** parse(): text → Dockerfile (directives, global ARGs, stages of typed instructions). */
import { VlabError } from '@vlab/errors';
import { parseSyntax } from './syntax/parse.ts';
import { buildInstruction } from './instructions/index.ts';
import type { ArgInstruction, Dockerfile, Instruction, Stage } from './types.ts';

export function parse(text: string, opts: { file?: string } = {}): Dockerfile {
  if (typeof text !== 'string') throw new VlabError('E_PARSE', 'Dockerfile text must be a string');
  const tree = parseSyntax(text, opts);
  const directives: Record<string, string> = {};
  for (const d of tree.directives) directives[d.name] = d.value;
  const globalArgs: ArgInstruction[] = [];
  const stages: Stage[] = [];
  for (const node of tree.nodes) {
    const inst = buildInstruction({ node, file: opts.file, escape: tree.escape });
    if (inst.kind === 'FROM') {
      const stage: Stage = { index: stages.length, base: inst.image, from: inst, instructions: [] };
      if (inst.stageName !== undefined) stage.name = inst.stageName.toLowerCase();
      if (inst.platform !== undefined) stage.platform = inst.platform;
      stages.push(stage);
    } else if (stages.length === 0) {
      if (inst.kind !== 'ARG') {
        throw new VlabError(
          'E_PARSE',
          `${inst.kind} is not allowed before the first FROM: a Dockerfile must start with FROM (only ARG and parser directives may come before it)`,
          { location: { file: opts.file, ...inst.range.start } },
        );
      }
      globalArgs.push(inst);
    } else {
      stages[stages.length - 1].instructions.push(inst);
    }
  }
  if (stages.length === 0) {
    const at = tree.nodes[tree.nodes.length - 1].range.end;
    throw new VlabError('E_PARSE', 'no FROM instruction: a Dockerfile needs at least one build stage', {
      location: { file: opts.file, line: at.line, column: 1 },
    });
  }
  const df: Dockerfile = { escape: tree.escape, directives, globalArgs, stages, warnings: tree.warnings };
  if (opts.file !== undefined) df.file = opts.file;
  if (directives.syntax !== undefined) df.syntax = directives.syntax;
  return df;
}

/** One instruction from its text, e.g. an ONBUILD trigger stored in an image config. */
export function parseInstructionText(text: string, opts: { escape?: string } = {}): Instruction {
  const escape = opts.escape ?? '\\';
  const prefix = escape === '`' ? '# escape=`\n' : '';
  const tree = parseSyntax(prefix + text);
  if (tree.nodes.length !== 1) {
    throw new VlabError('E_PARSE', `expected exactly one instruction, found ${tree.nodes.length}`);
  }
  const node = tree.nodes[0];
  if (prefix) {
    const shift = (p: { line: number; column: number }) => ({ line: p.line - 1, column: p.column });
    node.range = { start: shift(node.range.start), end: shift(node.range.end) };
  }
  return buildInstruction({ node, escape: tree.escape });
}
