import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { processWord, processWords } from './lex.ts';
import { parseEnvVarTest, parseWordsTest } from './corpus.ts';

const corpus = (p: string) =>
  readFileSync(new URL(`../../../../../shared/corpus/buildkit/shell/${p}`, import.meta.url), 'utf8');

const envVarCases = parseEnvVarTest(corpus('envVarTest'));
const ENV = { PWD: '/home', SHELL: 'bash', KOREAN: '한국어', NULL: '' };

describe('BuildKit shell/envVarTest', () => {
  it('has the expected number of cases', () => {
    expect(envVarCases.length).toBeGreaterThan(200);
  });
  // W| lines are Windows-only: run with Windows semantics (case-insensitive variable names).
  it.each(envVarCases.map((c) => [`${c.line} ${c.platform}|${c.input}`, c] as const))('%s', (_n, c) => {
    const opts = { caseInsensitive: c.platform === 'W' };
    if (c.expected === 'error') {
      expect(() => processWord(c.input, ENV, opts)).toThrow(VlabError);
    } else {
      expect(processWord(c.input, ENV, opts)).toBe(c.expected);
    }
  });
});

const wordsCases = parseWordsTest(corpus('wordsTest'));
describe('BuildKit shell/wordsTest', () => {
  it.each(wordsCases.map((c) => [`${c.line} ${c.input}`, c] as const))('%s', (_n, c) => {
    if (c.expected === 'error') {
      expect(() => processWords(c.input, c.env)).toThrow(VlabError);
    } else {
      expect(processWords(c.input, c.env).join(',')).toBe(c.expected);
    }
  });
});

describe('pattern substitutions (BuildKit lex_test TestProcessWithMatches spirit)', () => {
  const env = { FOO: 'xxx.yyy.zzz', EMPTY: '', P: '/usr/local/bin' };
  it.each([
    ['${FOO#*.}', 'yyy.zzz'],
    ['${FOO##*.}', 'zzz'],
    ['${FOO%.*}', 'xxx.yyy'],
    ['${FOO%%.*}', 'xxx'],
    ['${FOO/y/b}', 'xxx.byy.zzz'],
    ['${FOO//y/b}', 'xxx.bbb.zzz'],
    ['${FOO/x*z/q}', 'q'],
    ['${P#/usr}', '/local/bin'],
    ['${P%/*}', '/usr/local'],
    ['${FOO#nomatch}', 'xxx.yyy.zzz'],
    ['${UNSET#x}', ''],
    ['${FOO/[xy]/-}', '-xx.yyy.zzz'],
  ])('%s → %s', (w, want) => {
    expect(processWord(w, env)).toBe(want);
  });

  it('reports used variables', () => {
    const used: string[] = [];
    processWord('$A ${B:-$C} \\$D', {}, { onUsed: (n) => used.push(n) });
    expect(used.sort()).toEqual(['A', 'B', 'C']);
  });

  it('supports the backtick escape', () => {
    expect(processWord('a`$b', { b: 'x' }, { escape: '`' })).toBe('a$b');
    expect(processWord('C:\\path', {}, { escape: '`' })).toBe('C:\\path');
  });

  it('errors are typed with the word', () => {
    try {
      processWord('${', {});
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(VlabError);
      expect((e as VlabError).code).toBe('E_EXPAND');
      expect((e as VlabError).message).toContain('missing');
    }
  });
});

describe('patterns match in linear time (issue 10: a backtracking pattern blocked the event loop)', () => {
  const v = { V: 'a'.repeat(40) };
  const stars = '*a'.repeat(12) + '*b';
  it.each([
    `\${V#${stars}}`,
    `\${V##${stars}}`,
    `\${V%${stars}}`,
    `\${V%%${stars}}`,
    `\${V/${stars}/x}`,
    `\${V//${stars}/x}`,
  ])('%s', (w) => {
    const t0 = performance.now();
    expect(processWord(w, v)).toBe(v.V); // no b: nothing matches
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('a pattern that is not a valid class is E_EXPAND, not a crash', () => {
    expect(() => processWord('${V#[z-a]}', v)).toThrow(expect.objectContaining({ code: 'E_EXPAND' }));
  });

  it('non-ASCII values and empty matches', () => {
    expect(processWord('${K#?}', { K: '한국어' })).toBe('국어');
    expect(processWord('${K%?}', { K: '😀x😀' })).toBe('😀x');
    expect(processWord('${K//?/-}', { K: '😀x' })).toBe('--');
    expect(processWord('${K/#/-}', { K: 'ab' })).toBe('ab');
  });
});
