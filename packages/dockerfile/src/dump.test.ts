import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { dump, goQuote } from './dump.ts';
import { parse } from './parse.ts';

const base = new URL('../../../../shared/corpus/buildkit/parser/', import.meta.url);
const cases = readdirSync(new URL('testfiles/', base)).sort();
const negative = readdirSync(new URL('testfiles-negative/', base)).sort();
const read = (p: string) => readFileSync(new URL(p, base), 'utf8');

describe('BuildKit parser fixtures: dump() equals result', () => {
  it('finds all 33 cases', () => expect(cases.length).toBe(33));
  it.each(cases)('%s', (name) => {
    const want = read(`testfiles/${name}/result`).replace(/\r\n/g, '\n');
    expect(dump(read(`testfiles/${name}/Dockerfile`))).toBe(want);
  });
});

// Fixtures of BuildKit's *syntax* layer that its instruction layer (and our typed parse) rejects:
// unknown flags, HEALTHCHECK without/with an unknown type, instructions before FROM.
const TYPED_REJECTS: Record<string, string> = {
  flags: 'E_BAD_FLAG',
  health: 'E_PARSE',
  'jeztah-invalid-json-json-inside-string': 'E_PARSE',
  'jeztah-invalid-json-json-inside-string-double': 'E_PARSE',
  'jeztah-invalid-json-single-quotes': 'E_PARSE',
  'jeztah-invalid-json-unterminated-bracket': 'E_PARSE',
  'jeztah-invalid-json-unterminated-string': 'E_PARSE',
  json: 'E_PARSE',
};

describe('BuildKit parser fixtures through the typed parse()', () => {
  it.each(cases)('%s', (name) => {
    const text = read(`testfiles/${name}/Dockerfile`);
    const want = TYPED_REJECTS[name];
    if (want === undefined) {
      expect(parse(text).stages.length).toBeGreaterThan(0);
    } else {
      expect(() => parse(text)).toThrow(expect.objectContaining({ code: want }));
    }
  });
});

describe('BuildKit negative parser fixtures fail with typed errors', () => {
  it('finds all 4 cases', () => expect(negative.length).toBe(4));
  it.each(negative)('%s', (name) => {
    const text = read(`testfiles-negative/${name}/Dockerfile`);
    for (const fn of [dump, parse]) {
      let err: unknown;
      try {
        fn(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(VlabError);
      expect((err as VlabError).code).toBe('E_PARSE');
      expect((err as VlabError).location?.line).toBeGreaterThan(0);
    }
  });
});

describe('goQuote', () => {
  it.each([
    ['a"b\\c', '"a\\"b\\\\c"'],
    ['tab\there', '"tab\\there"'],
    ['\x01', '"\\x01"'],
    ['한국어', '"한국어"'],
  ])('%j', (s, want) => expect(goQuote(s)).toBe(want));
});
