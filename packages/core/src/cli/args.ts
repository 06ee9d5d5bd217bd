import { VlabError } from '@vlab/errors';

/** A tiny flag parser: `--k v`, `--k=v`, `-f v`, repeatable flags collected into arrays. */
export interface FlagSpec {
  [name: string]: { alias?: string; type: 'string' | 'boolean' | 'array' };
}

export function parseFlags(argv: string[], spec: FlagSpec): { flags: Record<string, string | boolean | string[]>; positional: string[] } {
  const flags: Record<string, string | boolean | string[]> = {};
  const positional: string[] = [];
  const byAlias = new Map(Object.entries(spec).flatMap(([k, v]) => (v.alias ? [[v.alias, k] as const] : [])));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    let name = a.replace(/^--?/, '');
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    name = byAlias.get(name) ?? name;
    const s = spec[name];
    if (!s) throw new VlabError('E_BAD_ARG', `unknown flag ${a} (valid: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
    if (s.type === 'boolean') {
      flags[name] = value === undefined ? true : value !== 'false';
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new VlabError('E_BAD_ARG', `flag --${name} needs a value`);
    }
    if (s.type === 'array') flags[name] = [...((flags[name] as string[]) ?? []), value];
    else flags[name] = value;
  }
  return { flags, positional };
}

export function keyValues(list: string[] | undefined, env = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    // `--build-arg NAME` takes the value from the environment, as docker does.
    if (eq < 0) {
      if (env[item] !== undefined) out[item] = env[item]!;
    } else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** A whole-number flag (`--cpu-quota 50000`); E_BAD_ARG otherwise. */
export function intFlag(v: string | boolean | string[] | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^-?\d+$/.test(v.trim())) throw new VlabError('E_BAD_ARG', `--${flag} must be a whole number, got "${String(v)}"`);
  return Number(v);
}
