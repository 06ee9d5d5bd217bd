/**
 * Flags as docker spells them, parsed by node:util's parseArgs: `--k v`, `--k=v`, short aliases
 * (`-t x`, `-tx`), repeatable flags, `--` ends the flags. Every command gets `--help` and `--root`.
 */
import { parseArgs } from 'node:util';
import { VlabError } from '@vlab/errors';

export interface Flag {
  type: 'string' | 'boolean';
  short?: string;
  /** Repeatable: the values are collected into an array. */
  multiple?: boolean;
  /** Placeholder shown in the help (`--tag name:tag`). */
  arg?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** `vbuild NAME …` synopsis, after the name. */
  usage: string;
  summary: string;
  flags: Record<string, Flag>;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

const COMMON: Record<string, Flag> = {
  root: { type: 'string', arg: 'DIR', help: 'store root (default $VLAB_ROOT, else /var/lib/vlab as root)' },
  help: { type: 'boolean', short: 'h', help: 'print this help' },
};

/** Help text of one command, from its flag table. */
export function helpText(spec: CommandSpec): string {
  const flags = { ...spec.flags, ...COMMON };
  const rows = Object.entries(flags).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` ${f.arg ?? 'VALUE'}` : ''}`;
    return [left, `${f.help}${f.multiple ? ' (repeatable)' : ''}`] as const;
  });
  const w = Math.max(...rows.map(([l]) => l.length)) + 2;
  return [
    `Usage:  vbuild ${spec.name} ${spec.usage}`,
    '',
    spec.summary,
    '',
    'Options:',
    ...rows.map(([l, r]) => `  ${l.padEnd(w)}${r}`),
  ].join('\n');
}

/**
 * Parse a command's argv. Returns undefined when --help was given (the help is then printed).
 * Unknown flags and missing values are E_BAD_ARG, worded as docker words them. Booleans also take
 * docker's `--flag=true|false`.
 */
export function parseCommand(
  spec: CommandSpec,
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
): { values: Values; positionals: string[] } | undefined {
  const flags = { ...spec.flags, ...COMMON };
  const options = Object.fromEntries(
    Object.entries(flags).map(([k, f]) => [
      k,
      { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) },
    ]),
  );
  const args: string[] = [];
  const falseOnes = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)=(true|false)$/i.exec(a);
    if (m && flags[m[1]!]?.type === 'boolean') {
      if (m[2]!.toLowerCase() === 'true') args.push(`--${m[1]}`);
      else falseOnes.add(m[1]!);
      continue;
    }
    args.push(a);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: options as never, allowPositionals: true, strict: true });
  } catch (e) {
    throw new VlabError('E_BAD_ARG', `${flagError(e as Error & { code?: string })}\nSee 'vbuild ${spec.name} --help'.`);
  }
  const values = parsed.values as Values;
  for (const k of falseOnes) values[k] = false;
  if (values.help) {
    out.write(`${helpText(spec)}\n`);
    return undefined;
  }
  return { values, positionals: parsed.positionals };
}

function flagError(e: Error & { code?: string }): string {
  const opt = /'([^']+)'/.exec(e.message)?.[1] ?? '';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown flag: ${opt}`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
    return `flag needs an argument: ${opt.replace(/ <value>$/, '')}`;
  return e.message;
}

/** `K=V` items (`--build-arg K` takes V from the environment, as docker does). */
export function keyValues(
  list: readonly string[] | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (env[item] !== undefined) out[item] = env[item]!;
    } else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** A whole-number flag (`--cpu-quota 50000`); E_BAD_ARG otherwise. */
export function intFlag(v: Values[string], flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^-?\d+$/.test(v.trim()))
    throw new VlabError('E_BAD_ARG', `--${flag} must be a whole number, got "${String(v)}"`);
  return Number(v);
}

export const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined);
export const list = (v: Values[string]): string[] => (Array.isArray(v) ? v : typeof v === 'string' ? [v] : []);
