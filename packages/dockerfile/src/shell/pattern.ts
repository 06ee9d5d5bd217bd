/**
 * Shell glob patterns of `${v#p}`, `${v%p}`, `${v/p/r}`: `*` any run (greedy or shortest), `?`
 * one character, `[...]` a bracket expression (`[!...]` negated), the escape character quotes the
 * next character, everything else literal. BuildKit turns them into a Go regexp; we turn them into
 * the same expression and run it on re2js (RE2, the engine of Go's regexp), never on JavaScript's
 * backtracking RegExp: `${v#*a*a*a…b}` took exponential time there and blocked the event loop.
 * The only import site of re2js in this package; its types stay here.
 */
import { RE2JS } from 're2js';
import { VlabError } from '@vlab/errors';

export interface PatternOptions {
  greedy: boolean;
  anchored: boolean;
  escape?: string;
}

/** A compiled pattern: where it matches in a string (UTF-16 offsets), if anywhere. */
export interface ShellPattern {
  /** The first match at or after `from`: [start, end), or undefined. */
  find(value: string, from?: number): { start: number; end: number } | undefined;
}

const META = /[.*+?^${}()|[\]\\/-]/g;

export function compileShellPattern(pattern: string, opts: PatternOptions): ShellPattern {
  const escape = opts.escape ?? '\\';
  const chars = Array.from(pattern);
  let out = opts.anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '*') out += opts.greedy ? '.*' : '.*?';
    else if (c === '?') out += '.';
    else if (c === escape) {
      if (i + 1 < chars.length) out += chars[++i].replace(META, '\\$&');
    } else if (c === '[') {
      const end = chars.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = chars.slice(i + 1, end);
      let neg = '';
      if (body[0] === '!' || body[0] === '^') {
        neg = '^';
        body = body.slice(1);
      }
      out += '[' + neg + body.map((ch) => (ch === '-' ? '-' : ch.replace(META, '\\$&'))).join('') + ']';
      i = end;
    } else out += c.replace(META, '\\$&');
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(out, RE2JS.DOTALL);
  } catch (e) {
    throw new VlabError('E_EXPAND', `invalid pattern (${pattern}) in substitution: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return {
    find(value, from = 0) {
      const m = re.matcher(value);
      if (!m.find(from)) return undefined;
      return { start: m.start(), end: m.end() };
    },
  };
}
