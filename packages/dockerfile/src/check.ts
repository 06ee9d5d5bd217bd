/**
 * Lint warnings in the spirit of BuildKit's build checks (docs/rules/*.md), each with a
 * source range. Rule names follow BuildKit's.
 */
import { parse } from './parse.ts';
import { processWord } from './shell/lex.ts';
import { PLATFORM_ARGS, PROXY_ARGS } from './scope.ts';
import type { Dockerfile, Instruction, Range, Warning } from './types.ts';

/** Variables a base image commonly provides; we cannot see its config statically. */
const BASE_ENV = new Set(['PATH', 'HOME', 'HOSTNAME', 'TERM', 'USER', 'PWD', 'SHELL', 'LANG']);

function varsOf(word: string, escape: string): string[] {
  const names: string[] = [];
  try {
    processWord(word, () => undefined, { escape, onUsed: (n) => names.push(n) });
  } catch {
    /* syntax errors are reported by the builder, not the linter */
  }
  return names;
}

function expandedWords(inst: Instruction): string[] {
  switch (inst.kind) {
    case 'COPY':
    case 'ADD':
      return [...inst.sources, inst.dest, ...[inst.from, inst.chown, inst.chmod].filter((x): x is string => !!x)];
    case 'ENV':
    case 'LABEL':
      return inst.pairs.flatMap((p) => [p.key, p.value]);
    case 'ARG':
      return inst.args.map((a) => a.value).filter((x): x is string => x !== undefined);
    case 'EXPOSE':
      return inst.ports;
    case 'VOLUME':
      return inst.paths;
    case 'WORKDIR':
      return [inst.path];
    case 'USER':
      return [inst.user];
    case 'STOPSIGNAL':
      return [inst.signal];
    default:
      return [];
  }
}

export function check(input: Dockerfile | string): Warning[] {
  const df = typeof input === 'string' ? parse(input) : input;
  const out: Warning[] = [...df.warnings];
  const warn = (rule: string, message: string, range: Range) => out.push({ rule, message, range });

  const globalNames = new Set<string>(PLATFORM_ARGS);
  for (const g of df.globalArgs) for (const a of g.args) globalNames.add(a.key);

  const seen = new Map<string, number>();
  const stageEnv = new Map<string, Set<string>>();
  for (const stage of df.stages) {
    const from = stage.from;
    const words = from.original.trim().split(/\s+/);
    if (from.stageName !== undefined) {
      if (from.stageName !== from.stageName.toLowerCase()) {
        warn('StageNameCasing', `Stage name '${from.stageName}' should be lowercase`, from.range);
      }
      const kw = words[0];
      const as = words.find((w) => w.toLowerCase() === 'as');
      if (as && kw) {
        const kwUpper = kw === kw.toUpperCase();
        const asUpper = as === as.toUpperCase();
        if (kwUpper !== asUpper) warn('FromAsCasing', `'${as}' and '${kw}' keywords' casing do not match`, from.range);
      }
      if (stage.name === 'scratch' || stage.name === 'context') {
        warn('ReservedStageName', `'${stage.name}' is reserved and should not be used as a stage name`, from.range);
      }
      const prev = seen.get(stage.name!);
      if (prev !== undefined) {
        warn(
          'DuplicateStageName',
          `Duplicate stage name '${stage.name}', stage names should be unique (first used by stage ${prev})`,
          from.range,
        );
      } else seen.set(stage.name!, stage.index);
    }
    for (const w of [stage.base, stage.platform ?? '']) {
      for (const v of varsOf(w, df.escape)) {
        if (!globalNames.has(v)) warn('UndefinedArgInFrom', `FROM argument '${v}' is not declared`, from.range);
      }
    }

    // ENV is inherited from a parent stage (`FROM build`); ARGs are not.
    const parent = stageEnv.get(stage.base.toLowerCase());
    const defined = new Set<string>([...PROXY_ARGS, ...(parent ?? [])]);
    const envNames = new Set<string>(parent ?? []);
    let cmds = 0;
    let entrypoints = 0;
    for (const inst of stage.instructions) {
      for (const w of expandedWords(inst)) {
        for (const v of varsOf(w, df.escape)) {
          if (!defined.has(v) && !BASE_ENV.has(v))
            warn('UndefinedVar', `Usage of undefined variable '$${v}'`, inst.range);
        }
      }
      if (inst.kind === 'ARG') for (const a of inst.args) defined.add(a.key);
      if (inst.kind === 'ENV') {
        for (const p of inst.pairs) {
          defined.add(p.key);
          envNames.add(p.key);
        }
      }
      if (
        (inst.kind === 'ENV' || inst.kind === 'LABEL') &&
        !(inst.original.trim().split(/\s+/)[1] ?? '').includes('=')
      ) {
        warn(
          'LegacyKeyValueFormat',
          `"${inst.kind} key=value" should be used instead of legacy "${inst.kind} key value" format`,
          inst.range,
        );
      }
      if (inst.kind === 'MAINTAINER') {
        warn('MaintainerDeprecated', 'Maintainer instruction is deprecated in favor of using label', inst.range);
      }
      if ((inst.kind === 'CMD' || inst.kind === 'ENTRYPOINT') && inst.form === 'shell') {
        warn(
          'JSONArgsRecommended',
          `JSON arguments recommended for ${inst.kind} to prevent unintended behavior related to OS signals`,
          inst.range,
        );
      }
      if (inst.kind === 'CMD' && ++cmds === 2) {
        warn(
          'MultipleInstructionsDisallowed',
          'Multiple CMD instructions should not be used in the same stage because only the last one will be used',
          inst.range,
        );
      }
      if (inst.kind === 'ENTRYPOINT' && ++entrypoints === 2) {
        warn(
          'MultipleInstructionsDisallowed',
          'Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used',
          inst.range,
        );
      }
    }
    if (stage.name !== undefined) stageEnv.set(stage.name, envNames);
  }
  // `# check=skip=Rule1,Rule2` (or `skip=all`) disables rules, like BuildKit's check directive.
  const skip = new Set<string>();
  for (const part of (df.directives.check ?? '').split(';')) {
    const [k, v] = part.split('=', 2).map((x) => x.trim());
    if (k === 'skip' && v) for (const r of v.split(',')) skip.add(r.trim());
  }
  return out
    .filter((w) => !skip.has('all') && !skip.has(w.rule))
    .sort((a, b) => a.range.start.line - b.range.start.line);
}
