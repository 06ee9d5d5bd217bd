/**
 * What `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}` and `${V/p/r}`, `${V//p/r}` do to a value, as
 * BuildKit's lex.go does it; the patterns themselves are compiled in pattern.ts.
 */
import { compileShellPattern } from './pattern.ts';

export function trimPrefix(pattern: string, value: string, greedy: boolean, escape: string): string {
  const m = compileShellPattern(pattern, { greedy, anchored: true, escape }).find(value);
  return m ? value.slice(m.end) : value;
}

export function trimSuffix(pattern: string, value: string, greedy: boolean, escape: string): string {
  // Match a reversed pattern against the reversed value, as BuildKit does.
  const rev = Array.from(value).reverse().join('');
  const m = compileShellPattern(reversePattern(pattern, escape), { greedy, anchored: true, escape }).find(rev);
  return m ? Array.from(rev.slice(m.end)).reverse().join('') : value;
}

/**
 * `${v//p/r}` as Go's Regexp.ReplaceAllString (what BuildKit calls), with `r` taken literally:
 * successive non-overlapping matches; an empty match right after a match is skipped; the search
 * always advances by at least one character.
 */
export function replaceAll(re: ReturnType<typeof compileShellPattern>, value: string, replacement: string): string {
  let out = '';
  let lastEnd = 0;
  let pos = 0;
  while (pos <= value.length) {
    const m = re.find(value, pos);
    if (!m) break;
    out += value.slice(lastEnd, m.start);
    if (m.end > lastEnd || m.start === 0) out += replacement;
    lastEnd = m.end;
    const cp = value.codePointAt(pos);
    const width = cp === undefined ? 1 : cp > 0xffff ? 2 : 1;
    pos = pos + width > m.end ? pos + width : m.end;
  }
  return out + value.slice(lastEnd);
}

/** Reverse a shell pattern keeping escape pairs and bracket expressions intact. */
function reversePattern(pattern: string, escape: string): string {
  const chars = Array.from(pattern);
  const tokens: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === escape && i + 1 < chars.length) {
      tokens.push(c + chars[++i]);
    } else if (c === '[') {
      const end = chars.indexOf(']', i + 2);
      if (end === -1) tokens.push(c);
      else {
        tokens.push(chars.slice(i, end + 1).join(''));
        i = end;
      }
    } else tokens.push(c);
  }
  return tokens.reverse().join('');
}
