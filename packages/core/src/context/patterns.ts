/**
 * User patterns of the build context (.dockerignore lines, COPY --exclude, COPY source globs) as
 * matchers. They run on re2js (a port of RE2, the engine of Go's regexp), not on JavaScript's
 * RegExp: a backtracking engine takes exponential time on `**\/*a*a*a…b` and blocks the event loop
 * (Ctrl-C included), RE2 is linear in the input. It is also the engine Docker's own matcher
 * (moby/patternmatcher) compiles these patterns to, so bad-pattern errors match Docker's.
 * The only import site of re2js in this package.
 */
import { RE2JS } from 're2js';
import { VlabError, type ErrorCode } from '@vlab/errors';

export type PathMatcher = (relPath: string) => boolean;

/** Compile RE2 source; a syntax error becomes `code` with `what` in the message. */
function compile(source: string, code: ErrorCode, what: string): RE2JS {
  try {
    return RE2JS.compile(source, RE2JS.DOTALL);
  } catch (e) {
    throw new VlabError(code, `${what}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Go filepath.Match's rule for a class opened at `open`: `^`/`!` negates, a first `]` is a member,
 * `\` quotes the next character. The index of the closing `]`, or -1 when it never closes (or is
 * empty). The one definition of where a class ends: checked and compiled alike.
 */
function classEnd(pattern: string, open: number): number {
  let j = open + 1;
  if (pattern[j] === '^' || pattern[j] === '!') j++;
  if (pattern[j] === ']') j++; // a leading ']' is part of the class
  while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
  return j < pattern.length ? j : -1;
}

/** Go filepath.Match's rule: a `[` must close, with at least one character in the class. */
function checkBrackets(pattern: string, code: ErrorCode, what: string): void {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') i++;
    else if (c === '[') {
      const end = classEnd(pattern, i);
      if (end < 0) throw new VlabError(code, `${what}: "[" is not closed (escape it as \\[ for a literal)`);
      i = end;
    }
  }
}

/**
 * COPY source globs with Go filepath.Match semantics: `*` and `?` never cross '/', `[...]`
 * classes (`[!...]` or `[^...]` negated), `\` quotes the next character; `**` is not special.
 */
export function compileGlob(pattern: string): PathMatcher {
  const what = `invalid source pattern "${pattern}"`;
  checkBrackets(pattern, 'E_COPY_SOURCE', what);
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = classEnd(pattern, i);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
      // A leading ']' is a member in Go; RE2 needs it quoted.
      if (cls.startsWith(']') || cls.startsWith('^]')) cls = cls.replace(']', '\\]');
      re += `[${cls}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += RE2JS.quote(pattern[++i]!);
    else re += RE2JS.quote(c);
  }
  const m = compile(`^(?:${re})$`, 'E_COPY_SOURCE', what);
  return (name) => m.testExact(name);
}

interface IgnorePattern {
  exclusion: boolean;
  /** Whole-path test: the RE2 program, or string equality for a pattern without metacharacters. */
  test: (path: string) => boolean;
}

/** Most .dockerignore lines (`node_modules`, `.git`) are plain paths: no regex run for them (`^` is left to RE2, where it is an anchor). */
const PLAIN = /^[^*?[\\^]*$/;

/** Memoized results per directory (hit vectors over the patterns); cleared past this many dirs. */
const MAX_MEMO_DIRS = 100_000;

/** moby/patternmatcher escapes these: they mean something to regexp but nothing to filepath.Match. */
const LITERAL = new Set(['.', '+', '(', ')', '|', '{', '}', '$']);

/** One .dockerignore pattern (already cleaned) to RE2 source, with moby/patternmatcher's rules. */
function ignoreRegex(p: string): string {
  let re = '^';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      i++;
      if (p[i + 1] === '/') i++; // `**/` is `**`
      re += i + 1 >= p.length ? '.*' : '(?:.*/)?';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (LITERAL.has(c)) re += `\\${c}`;
    else if (c === '\\') re += i + 1 < p.length ? RE2JS.quote(p[++i]!) : '\\\\';
    else re += c; // letters, '/', '[', ']', '-', '!' inside classes: as written
  }
  return `${re}$`;
}

/** Go's filepath.Clean on a '/'-separated path. */
function clean(p: string): string {
  const abs = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && out.length && out[out.length - 1] !== '..') out.pop();
    else if (part !== '..' || !abs) out.push(part);
  }
  const s = (abs ? '/' : '') + out.join('/');
  return s || (abs ? '/' : '.');
}

/**
 * `.dockerignore` lines (also COPY --exclude) with Docker's rules (moby/patternmatcher and its
 * ignorefile reader): `#` comments, trimmed lines, `!` exceptions, a leading '/' dropped, paths
 * cleaned; a pattern that matches a parent directory matches everything under it; the last
 * matching line wins. Matching is case-sensitive, as Docker on Linux. `source` names the file
 * (or flag) in errors; a bad line throws `code` with `source:line`, so does a pattern past `maxPatterns`.
 */
export function compileIgnorePatterns(
  lines: string[],
  source: string,
  code: ErrorCode,
  maxPatterns = Infinity,
): { patterns: string[]; matches: PathMatcher } {
  const compiled: IgnorePattern[] = [];
  const patterns: string[] = [];
  lines.forEach((raw, idx) => {
    let p = idx === 0 ? raw.replace(/^\uFEFF/, '') : raw;
    if (p.startsWith('#')) return;
    p = p.trim();
    if (!p) return;
    const where = `${source}:${idx + 1}: pattern "${p}"`;
    const exclusion = p.startsWith('!');
    if (exclusion) p = p.slice(1).trim();
    if (!p) throw new VlabError(code, `${where}: a lone "!" excludes nothing; remove the line`);
    p = clean(p);
    if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    checkBrackets(p, code, where);
    if (patterns.length >= maxPatterns)
      throw new VlabError(
        code,
        `${source}: more than the limit of ${maxPatterns} patterns; merge them, e.g. with ** patterns`,
      );
    patterns.push(exclusion ? `!${p}` : p);
    const re = compile(ignoreRegex(p), code, where);
    const plain = PLAIN.test(p) ? p : undefined;
    compiled.push({ exclusion, test: plain !== undefined ? (f) => f === plain : (f) => re.testExact(f) });
  });
  // Whether pattern i matches `dir` or one of its parents: the same for every file of the dir,
  // so asked once per dir (a context has far fewer dirs than files).
  const memo = new Map<string, Uint8Array>();
  const dirHits = (dir: string): Uint8Array => {
    let hits = memo.get(dir);
    if (hits) return hits;
    const cut = dir.lastIndexOf('/');
    const up = cut < 0 ? undefined : dirHits(dir.slice(0, cut));
    hits = new Uint8Array(compiled.length);
    for (let i = 0; i < compiled.length; i++) hits[i] = up?.[i] || compiled[i]!.test(dir) ? 1 : 0;
    if (memo.size >= MAX_MEMO_DIRS) memo.clear();
    memo.set(dir, hits);
    return hits;
  };
  const matches = (file: string): boolean => {
    const cut = file.lastIndexOf('/');
    const parents = cut < 0 ? undefined : dirHits(file.slice(0, cut));
    let matched = false;
    for (let i = 0; i < compiled.length; i++) {
      const pat = compiled[i]!;
      // An include that already matched, or an exception before any match, changes nothing.
      if (pat.exclusion !== matched) continue;
      if (parents?.[i] || pat.test(file)) matched = !pat.exclusion;
    }
    return matched;
  };
  return { patterns, matches };
}
