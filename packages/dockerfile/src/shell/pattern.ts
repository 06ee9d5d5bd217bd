/**
 * Shell glob pattern (as used in `${v#p}`, `${v%p}`, `${v/p/r}`) to a JavaScript RegExp:
 * `*` any run (greedy or shortest), `?` one character, `[...]` a bracket expression
 * (`[!...]` negated), the escape character quotes the next character, everything else literal.
 */
import { VlabError } from '@vlab/errors';

export interface PatternOptions {
  greedy: boolean;
  anchored: boolean;
  escape?: string;
  global?: boolean;
}

const META = /[.*+?^${}()|[\]\\/-]/g;

export function shellPatternToRegex(pattern: string, opts: PatternOptions): RegExp {
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
  try {
    return new RegExp(out, 'su' + (opts.global ? 'g' : ''));
  } catch (e) {
    throw new VlabError('E_EXPAND', `invalid pattern (${pattern}) in substitution: ${(e as Error).message}`, { cause: e });
  }
}
