/**
 * `RUN --mount=type=…,key=value,…` (BuildKit instructions/commands_runmount.go rules, read not
 * copied). Values may be expanded by a caller-supplied expander (StageScope does, with the
 * stage's ARG/ENV), after the CSV split like BuildKit.
 */
import type { RunMount } from '../types.ts';

export class MountError extends Error {}

const TYPES = new Set(['bind', 'cache', 'tmpfs', 'secret', 'ssh']);
const KEYS = [
  'type',
  'from',
  'source',
  'src',
  'target',
  'dst',
  'destination',
  'readonly',
  'ro',
  'readwrite',
  'rw',
  'required',
  'id',
  'sharing',
  'mode',
  'uid',
  'gid',
  'size',
  'env',
];

function csvFields(s: string): string[] {
  // encoding/csv style: comma separated, a field may be double-quoted with "" for a quote.
  const out: string[] = [];
  let i = 0;
  while (i <= s.length) {
    let field = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new MountError(`unterminated quote in mount "${s}"`);
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += s[i++];
      }
      if (i < s.length && s[i] !== ',') throw new MountError(`extraneous text after quoted field in mount "${s}"`);
    } else {
      const j = s.indexOf(',', i);
      field = j === -1 ? s.slice(i) : s.slice(i, j);
      i = j === -1 ? s.length : j;
    }
    out.push(field);
    i++;
  }
  return out;
}

function parseBool(key: string, v: string | undefined): boolean {
  if (v === undefined) return true;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new MountError(`invalid value for ${key}: ${v}`);
}

function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(v.trim());
  if (!m) throw new MountError(`invalid size: ${v}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2].toLowerCase()]!;
  return Math.floor(Number(m[1]) * mult);
}

function parseInt10(key: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new MountError(`invalid value for ${key}: ${v}`);
  return Number(v);
}

export function parseMount(raw: string, expand: (s: string) => string = (s) => s): RunMount {
  const m: RunMount = { type: 'bind' };
  let roSet: boolean | undefined;
  for (const field of csvFields(raw)) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const key = (eq === -1 ? field : field.slice(0, eq)).toLowerCase();
    const rawValue = eq === -1 ? undefined : field.slice(eq + 1);
    if (!KEYS.includes(key))
      throw new MountError(`unexpected key '${key}' in '${field}' (valid keys: ${KEYS.join(', ')})`);
    if (['readonly', 'ro', 'readwrite', 'rw', 'required'].includes(key)) {
      const b = parseBool(key, rawValue);
      if (key === 'required') m.required = b;
      else roSet = key === 'readonly' || key === 'ro' ? b : !b;
      continue;
    }
    if (rawValue === undefined) throw new MountError(`invalid field '${field}' must be a key=value pair`);
    const value = key === 'type' ? rawValue : expand(rawValue);
    switch (key) {
      case 'type':
        if (!TYPES.has(value.toLowerCase()))
          throw new MountError(`unsupported mount type "${value}" (use bind, cache, tmpfs, secret or ssh)`);
        m.type = value.toLowerCase() as RunMount['type'];
        break;
      case 'from':
        m.from = value;
        break;
      case 'source':
      case 'src':
        m.source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = value;
        break;
      case 'id':
        m.id = value;
        break;
      case 'sharing':
        if (!['shared', 'private', 'locked'].includes(value))
          throw new MountError(`unsupported sharing value "${value}" (use shared, private or locked)`);
        m.sharing = value;
        break;
      case 'mode':
        if (!/^[0-7]{1,4}$/.test(value)) throw new MountError(`invalid mode "${value}": expected an octal number`);
        m.mode = value;
        break;
      case 'uid':
        m.uid = parseInt10(key, value);
        break;
      case 'gid':
        m.gid = parseInt10(key, value);
        break;
      case 'size':
        m.size = parseSize(value);
        break;
      case 'env':
        m.env = value;
        break;
    }
  }
  // A bind mount without a target is mounted on the working directory (BuildKit accepts
  // `--mount=from=binaries`, used by its own Dockerfile); the builder resolves it.
  if (m.type === 'cache' || m.type === 'tmpfs') {
    if (!m.target) throw new MountError(`mount type ${m.type} requires a target (target=/path)`);
  }
  if (m.type === 'secret') {
    if (!m.id && m.target) m.id = m.target.replace(/\/+$/, '').split('/').pop();
    if (!m.id && !m.target && !m.env) throw new MountError('secret mount requires one of id, target or env');
    if (!m.target && !m.env && m.id) m.target = `/run/secrets/${m.id}`;
  }
  if (m.type === 'ssh' && !m.id) m.id = 'default';
  if (m.sharing && m.type !== 'cache') throw new MountError('sharing is only valid for cache mounts');
  m.readonly = roSet ?? (m.type === 'bind' || m.type === 'secret' || m.type === 'ssh');
  if (m.type === 'cache' && m.sharing === undefined) m.sharing = 'shared';
  return m;
}
