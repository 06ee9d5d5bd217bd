/**
 * Property tests: random and mutated Dockerfiles thrown at parse/dump/check/StageScope, and
 * random words at the lexer. Only VlabError may come out, and every call finishes quickly.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import {
  check,
  dump,
  expandWord,
  expandWords,
  parse,
  resolveGlobalArgs,
  resolveStageBase,
  StageScope,
} from './index.ts';

function onlyTyped(fn: () => unknown): void {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    if (!(e instanceof VlabError)) throw new Error(`untyped error: ${String(e)}`, { cause: e });
    expect(typeof e.code).toBe('string');
  }
  expect(performance.now() - t0).toBeLessThan(1000);
}

function fullPipeline(text: string): void {
  onlyTyped(() => dump(text));
  onlyTyped(() => check(text));
  onlyTyped(() => {
    const df = parse(text, { file: 'Dockerfile' });
    const globalArgs = resolveGlobalArgs(df, { A: '1' }, { TARGETPLATFORM: 'linux/amd64' });
    for (const stage of df.stages) {
      onlyTyped(() => resolveStageBase(df, stage, globalArgs));
      const scope = new StageScope({ globalArgs, buildArgs: { A: '1' }, baseEnv: {}, escape: df.escape });
      for (const inst of stage.instructions) scope.evaluate(inst);
    }
  });
}

const piece = fc.constantFrom(
  'FROM',
  'from',
  'RUN',
  'COPY',
  'ADD',
  'ENV',
  'LABEL',
  'ARG',
  'CMD',
  'ENTRYPOINT',
  'SHELL',
  'WORKDIR',
  'USER',
  'EXPOSE',
  'VOLUME',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'ONBUILD',
  'MAINTAINER',
  'AS',
  'NONE',
  ' ',
  ' ',
  '\t',
  '\n',
  '\n',
  '\r\n',
  '\\',
  '\\\n',
  '`',
  '# escape=`\n',
  '# syntax=x\n',
  '#',
  '"',
  "'",
  '[',
  ']',
  '["a", "b"]',
  '[1]',
  '=',
  'a=b',
  '$',
  '${',
  '}',
  '${A:-x}',
  '${A/a/b}',
  '${A#*}',
  '$A',
  '<<EOF',
  '<<-EOF',
  "<<'E'",
  'EOF',
  '\tEOF',
  '3<<X',
  'X',
  '--',
  '--from=a',
  '--mount=type=cache,target=/x',
  '--mount=',
  '--link',
  '--link=x',
  '--interval=5s',
  '--retries=-1',
  '--platform=$A',
  'CMD',
  'x',
  '/a',
  '.',
  '0',
  '\u00e9',
  '\uFEFF',
  '\0',
);
const dockerfileish = fc.array(piece, { maxLength: 60 }).map((a) => a.join(''));

const corpusRoot = new URL('../../../../shared/corpus/real-dockerfiles/', import.meta.url);
const samples = readdirSync(corpusRoot, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(new URL(`${d.name}/`, corpusRoot))
      .filter((f) => f.endsWith('.Dockerfile'))
      .map((f) => `${d.name}/${f}`),
  )
  .sort()
  .filter((_, i) => i % 8 === 0)
  .map((f) => readFileSync(new URL(f, corpusRoot), 'utf8'));

const mutated = fc
  .record({
    sample: fc.constantFrom(...samples),
    edits: fc.array(
      fc.record({
        at: fc.nat(),
        len: fc.nat({ max: 40 }),
        insert: fc.oneof(dockerfileish, fc.string({ maxLength: 8 })),
      }),
      { maxLength: 6 },
    ),
  })
  .map(({ sample, edits }) => {
    let s = sample;
    for (const e of edits) {
      const at = e.at % (s.length + 1);
      s = s.slice(0, at) + e.insert + s.slice(at + e.len);
    }
    return s;
  });

const run1 = (t: string) => fullPipeline(t);

describe('property: only typed errors, bounded time', () => {
  it('random Dockerfile-like text', () => {
    fc.assert(
      fc.property(dockerfileish, (t) => fullPipeline(t)),
      { numRuns: 1500 },
    );
  });
  it('mutated real Dockerfiles', () => {
    fc.assert(
      fc.property(mutated, (t) => fullPipeline(t)),
      { numRuns: 300 },
    );
  });
  it('arbitrary unicode strings', () => {
    fc.assert(
      fc.property(fc.fullUnicodeString({ maxLength: 200 }), (t) => fullPipeline('FROM a\n' + t)),
      { numRuns: 500 },
    );
  });
  it('the lexer on random words', () => {
    const word = fc
      .array(
        fc.constantFrom(
          '$',
          '{',
          '}',
          ':',
          '-',
          '+',
          '?',
          '#',
          '%',
          '/',
          '"',
          "'",
          '\\',
          '`',
          'A',
          'B',
          ' ',
          'x',
          '*',
          '[',
          ']',
          '!',
          '1',
          '@',
        ),
        { maxLength: 40 },
      )
      .map((a) => a.join(''));
    fc.assert(
      fc.property(word, fc.boolean(), (w, bt) => {
        const opts = { escape: bt ? '`' : '\\' };
        onlyTyped(() => expandWord(w, { A: 'a b', B: '' }, opts));
        onlyTyped(() => expandWords(w, { A: 'a b', B: '' }, opts));
      }),
      { numRuns: 3000 },
    );
  });
  it('huge inputs stay linear', () => {
    const big = 'FROM a\n' + 'RUN echo ' + 'x \\\n'.repeat(20000) + 'y\n' + 'ENV ' + 'a=b '.repeat(20000) + '\n';
    const t0 = performance.now();
    parse(big);
    expect(performance.now() - t0).toBeLessThan(2000);
    onlyTyped(() => parse('FROM a\n' + 'X'.repeat(200000)));
    onlyTyped(() => parse('FROM a\nRUN ' + ' '.repeat(200000) + 'x\n' + 'ENV a' + ' '.repeat(200000) + 'b\n'));
    onlyTyped(() => run1('FROM a\nWORKDIR ' + '${A:-'.repeat(50000) + '\n'));
    onlyTyped(() => check('FROM a\nWORKDIR ' + '$'.repeat(100000) + '{'.repeat(100000) + '\n'));
  });
});
