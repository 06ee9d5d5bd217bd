import { describe, expect, it } from 'vitest';
import { check } from './index.ts';

const rules = (text: string) => check(text).map((w) => `${w.range.start.line}:${w.rule}`);

describe('check()', () => {
  it('is clean on a good Dockerfile', () => {
    expect(check('ARG V=1\nFROM alpine:${V} AS build\nARG V\nENV P=/x\nWORKDIR $P/$V\nCMD ["sh"]\n')).toEqual([]);
  });

  it('JSON args recommended for CMD/ENTRYPOINT', () => {
    const w = check('FROM a\nCMD echo hi\nENTRYPOINT run\n');
    expect(w.map((x) => x.rule)).toEqual(['JSONArgsRecommended', 'JSONArgsRecommended']);
    expect(w[0].message).toContain('CMD');
    expect(w[1].range.start).toEqual({ line: 3, column: 1 });
  });

  it('stage name casing, FROM/AS casing, duplicate and reserved names', () => {
    expect(rules('FROM a AS Build\nFROM b as dev\nFROM c AS dev\nFROM d AS scratch\n')).toEqual([
      '1:StageNameCasing',
      '2:FromAsCasing',
      '3:DuplicateStageName',
      '4:ReservedStageName',
    ]);
  });

  it('MAINTAINER deprecated, legacy key value, multiple CMD', () => {
    expect(rules('FROM a\nMAINTAINER me\nENV A 1\nLABEL b=2\nCMD ["a"]\nCMD ["b"]\n')).toEqual([
      '2:MaintainerDeprecated',
      '3:LegacyKeyValueFormat',
      '6:MultipleInstructionsDisallowed',
    ]);
  });

  it('undefined variables, in stages and in FROM', () => {
    expect(rules('FROM $NOPE\nWORKDIR /$X\nARG X\nWORKDIR /$X/$PATH\nENV E=1\nFROM $TARGETPLATFORM\n')).toEqual([
      '1:UndefinedArgInFrom',
      '2:UndefinedVar',
    ]);
    expect(check('FROM a\nCOPY $SRC /\n')[0].message).toBe("Usage of undefined variable '$SRC'");
  });

  it('ENV is inherited from a parent stage', () => {
    expect(rules('FROM a AS base\nENV D=/d\nFROM base\nWORKDIR $D\n')).toEqual([]);
  });

  it('empty continuation lines', () => {
    const w = check('FROM a\nRUN a \\\n\n  b\n');
    expect(w).toEqual([
      {
        rule: 'NoEmptyContinuation',
        message: 'Empty continuation line found in: RUN a   b',
        range: { start: { line: 2, column: 1 }, end: { line: 4, column: 4 } },
      },
    ]);
  });

  it('honours # check=skip=…', () => {
    expect(
      rules('# check=skip=JSONArgsRecommended,MaintainerDeprecated\nFROM a\nCMD x\nMAINTAINER m\nFROM b AS X\n'),
    ).toEqual(['5:StageNameCasing']);
    expect(check('# check=skip=all\nFROM a\nCMD x\n')).toEqual([]);
  });
});
