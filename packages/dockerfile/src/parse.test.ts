import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { parse, parseInstructionText, planRunHeredoc } from './index.ts';
import type { CopyInstruction, HealthcheckInstruction, OnbuildInstruction, RunInstruction } from './index.ts';

function err(fn: () => unknown): VlabError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VlabError);
    return e as VlabError;
  }
  throw new Error('expected a VlabError');
}

describe('parse: structure', () => {
  it('splits stages, global args, lower-cases stage names', () => {
    const df = parse('ARG V=1\nfrom alpine:$V AS Build\nRUN echo hi\nFROM scratch\nCOPY --from=build /a /b\n');
    expect(df.globalArgs).toHaveLength(1);
    expect(df.stages.map((s) => [s.index, s.name, s.base])).toEqual([
      [0, 'build', 'alpine:$V'],
      [1, undefined, 'scratch'],
    ]);
    expect(df.stages[0].from.stageName).toBe('Build');
    expect(df.stages[1].instructions[0]).toMatchObject({ kind: 'COPY', from: 'build', sources: ['/a'], dest: '/b' });
  });

  it('keeps ranges and the joined original text', () => {
    const df = parse('FROM a\n  RUN echo \\\n  # comment\n\n    hello\nUSER x\n');
    const run = df.stages[0].instructions[0];
    expect(run.range).toEqual({ start: { line: 2, column: 3 }, end: { line: 5, column: 10 } });
    expect(run.original).toBe('RUN echo     hello');
    expect(df.warnings.map((w) => w.rule)).toEqual(['NoEmptyContinuation']);
    expect(df.stages[0].instructions[1].range.start.line).toBe(6);
  });

  it('matches BuildKit testfile-line line numbers', () => {
    const text = readFileSync(
      new URL('../../../../shared/corpus/buildkit/parser/testfile-line/Dockerfile', import.meta.url),
      'utf8',
    );
    const df = parse(text);
    const all = [df.stages[0].from, ...df.stages[0].instructions];
    expect(all.map((i) => [i.range.start.line, i.range.end.line])).toEqual([
      [5, 5],
      [11, 12],
      [17, 31],
    ]);
  });

  it('reads directives: escape, syntax, shebang, unknown directive ends the block', () => {
    const df = parse('# syntax=docker/dockerfile:1\n# ESCAPE=`\nFROM a\nRUN echo `\n  hi\n');
    expect(df.escape).toBe('`');
    expect(df.syntax).toBe('docker/dockerfile:1');
    expect(df.stages[0].instructions[0].original).toBe('RUN echo   hi');
    expect(parse('#!/usr/bin/env buildctl\n# escape=`\nFROM a\n').escape).toBe('`');
    expect(parse('# foo=bar\n# escape=`\nFROM a\n').escape).toBe('\\');
    expect(parse('# hello\n# escape=`\nFROM a\n').escape).toBe('\\');
    expect(err(() => parse('# escape=`\n# escape=\\\nFROM a')).message).toContain('only one escape');
    expect(err(() => parse('# escape=x\nFROM a')).code).toBe('E_PARSE');
  });

  it('handles CRLF and a BOM', () => {
    const df = parse('\uFEFFFROM a\r\nRUN echo \\\r\n  hi\r\n');
    expect(df.stages[0].instructions[0].original).toBe('RUN echo   hi');
  });

  it('is case-insensitive for keywords', () => {
    const df = parse('from a\nrun echo\nMaintainer me\n');
    expect(df.stages[0].instructions.map((i) => i.kind)).toEqual(['RUN', 'MAINTAINER']);
  });
});

describe('parse: heredocs', () => {
  it('RUN with several heredocs, chomp, quoted delimiters, fd', () => {
    const df = parse("FROM a\nRUN <<EOF 3<<-'END' cat\nhello $x\nEOF\n\tbye\n\tEND\nUSER u\n");
    const run = df.stages[0].instructions[0] as RunInstruction;
    expect(run.heredocs).toEqual([
      { name: 'EOF', content: 'hello $x\n', expand: true, chomp: false },
      { name: 'END', content: 'bye\n', expand: false, chomp: true, fd: 3 },
    ]);
    expect(run.command).toEqual(["<<EOF 3<<-'END' cat"]);
    expect(run.range.end.line).toBe(6);
    expect(df.stages[0].instructions[1].kind).toBe('USER');
  });

  it('planRunHeredoc: script, shebang file, or reassembled line', () => {
    const runs = parse(
      'FROM a\nRUN <<EOF\necho a\nEOF\nRUN <<EOF\n#!/usr/bin/python3\nprint(1)\nEOF\nRUN python3 <<EOF > out\nprint(2)\nEOF\nRUN echo hi\n',
    ).stages[0].instructions as RunInstruction[];
    expect(runs.map(planRunHeredoc)).toEqual([
      { kind: 'script', script: 'echo a\n' },
      { kind: 'file', heredoc: { name: 'EOF', content: '#!/usr/bin/python3\nprint(1)\n', expand: true, chomp: false } },
      { kind: 'script', script: 'python3 <<EOF > out\nprint(2)\nEOF' },
      { kind: 'none' },
    ]);
  });

  it('COPY <<EOF /dst', () => {
    const c = parse('FROM a\nCOPY --chmod=755 <<EOF /usr/bin/x\n#!/bin/sh\necho hi\nEOF\n').stages[0]
      .instructions[0] as CopyInstruction;
    expect(c).toMatchObject({ sources: [], dest: '/usr/bin/x', chmod: '755' });
    expect(c.heredocs[0]).toMatchObject({ name: 'EOF', content: '#!/bin/sh\necho hi\n', expand: true });
  });

  it('a COPY/ADD heredoc name is one file name: a name with / or a bare .. is a located E_PARSE (issue 10)', () => {
    for (const name of ['../../x', 'a/b', '..', '/etc/x']) {
      const e = err(() => parse(`FROM a\n\nCOPY <<${name} /dst/\nbody\n${name}\n`, { file: 'Dockerfile' }));
      expect(e.code).toBe('E_PARSE');
      expect(e.message).toContain(name);
      expect(e.location).toMatchObject({ file: 'Dockerfile', line: 3, column: 6 });
    }
    expect(() => parse('FROM a\nRUN cat <<../x\nbody\n../x\n')).not.toThrow(); // RUN: a delimiter, not a file
    // Longer than NAME_MAX (255 bytes): no filesystem can hold it as one entry.
    const long = 'a'.repeat(300);
    const e = err(() => parse(`FROM a\nCOPY <<${long} /dst/\nbody\n${long}\n`));
    expect(e).toMatchObject({ code: 'E_PARSE', location: { line: 2, column: 6 } });
    expect(e.message).toMatch(/300 bytes long, more than the 255/);
    expect(() => parse(`FROM a\nCOPY <<${'a'.repeat(255)} /dst/\nbody\n${'a'.repeat(255)}\n`)).not.toThrow();
    const c = parse('FROM a\nADD <<a.txt /d/\nx\na.txt\n').stages[0].instructions[0] as CopyInstruction;
    expect(c.heredocs[0]).toMatchObject({ name: 'a.txt' });
  });

  it('quoting part of the name disables expansion; exec form and USER have no heredocs', () => {
    const r = parse('FROM a\nRUN cat <<eo"f"\nx\neof\n').stages[0].instructions[0] as RunInstruction;
    expect(r.heredocs[0]).toMatchObject({ name: 'eof', expand: false });
    const j = parse('FROM a\nRUN ["cat", "<<EOF"]\n').stages[0].instructions[0] as RunInstruction;
    expect(j.heredocs).toEqual([]);
    expect(parse('FROM a\nUSER <<INVALID\n').stages[0].instructions[0]).toMatchObject({ user: '<<INVALID' });
  });

  it('unterminated heredoc names its delimiter', () => {
    const e = err(() => parse('FROM a\nRUN <<EOT\necho\n'));
    expect(e.code).toBe('E_HEREDOC_UNTERMINATED');
    expect(e.message).toContain('EOT');
    expect(e.location).toMatchObject({ line: 2, column: 1 });
  });
});

describe('parse: typed instructions and flags', () => {
  it('RUN mounts, network, security; exec form', () => {
    const r = parse(
      'FROM a\nRUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked --mount=type=secret,id=tok --network=none ["pip","install"]\n',
    ).stages[0].instructions[0] as RunInstruction;
    expect(r.form).toBe('exec');
    expect(r.command).toEqual(['pip', 'install']);
    expect(r.network).toBe('none');
    expect(r.mounts).toEqual([
      { type: 'cache', target: '/root/.cache', id: 'pip', sharing: 'locked', readonly: false },
      { type: 'secret', id: 'tok', target: '/run/secrets/tok', readonly: true },
    ]);
  });

  it('COPY/ADD flags', () => {
    const [c, a] = parse(
      'FROM a\nCOPY --link --parents --exclude=*.md --exclude=x --chown=1:2 ["a b", "c", "/d/"]\nADD --checksum=sha256:abc --keep-git-dir=true https://x/y.git /src\n',
    ).stages[0].instructions as CopyInstruction[];
    expect(c).toMatchObject({
      sources: ['a b', 'c'],
      dest: '/d/',
      link: true,
      parents: true,
      exclude: ['*.md', 'x'],
      chown: '1:2',
    });
    expect(a).toMatchObject({ kind: 'ADD', checksum: 'sha256:abc', keepGitDir: true, sources: ['https://x/y.git'] });
  });

  it('bad flags list the valid ones', () => {
    const e = err(() => parse('FROM a\nCOPY --form=b x y\n'));
    expect(e.code).toBe('E_BAD_FLAG');
    expect(e.message).toContain('--from');
    expect(e.location).toMatchObject({ line: 2, column: 6 });
    expect(err(() => parse('FROM a\nCOPY --link=maybe x y\n')).message).toContain('boolean');
    expect(err(() => parse('FROM a\nCOPY --from x y\n')).message).toContain('missing a value');
    expect(err(() => parse('FROM a\nRUN --mount=type=cache echo\n')).code).toBe('E_BAD_FLAG');
    expect(err(() => parse('FROM a\nADD --from=x a b\n')).code).toBe('E_BAD_FLAG');
  });

  it('ENV/LABEL/ARG forms', () => {
    const [e1, e2, l, a] = parse('FROM a\nENV SCUBA 1 DUBA 3\nENV a=1 b="x y"\nLABEL "k"=v\nARG foo bar=baz\n')
      .stages[0].instructions;
    expect(e1).toMatchObject({ pairs: [{ key: 'SCUBA', value: '1 DUBA 3' }] });
    expect(e2).toMatchObject({
      pairs: [
        { key: 'a', value: '1' },
        { key: 'b', value: '"x y"' },
      ],
    });
    expect(l).toMatchObject({ pairs: [{ key: '"k"', value: 'v' }] });
    expect(a).toMatchObject({ args: [{ key: 'foo' }, { key: 'bar', value: 'baz' }] });
    expect(err(() => parse('FROM a\nENV x\n')).message).toContain('two arguments');
  });

  it('CMD/ENTRYPOINT/SHELL/HEALTHCHECK/EXPOSE/VOLUME/STOPSIGNAL', () => {
    const ins = parse(
      'FROM a\nCMD echo hi\nENTRYPOINT ["/e"]\nSHELL ["pwsh", "-c"]\nHEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x/\nEXPOSE 80/tcp 443\nVOLUME ["/v"]\nSTOPSIGNAL SIGKILL\nHEALTHCHECK NONE\n',
    ).stages[0].instructions;
    expect(ins[0]).toMatchObject({ form: 'shell', command: ['echo hi'] });
    expect(ins[1]).toMatchObject({ form: 'exec', command: ['/e'] });
    expect(ins[2]).toMatchObject({ argv: ['pwsh', '-c'] });
    expect(ins[3]).toMatchObject({ test: ['CMD-SHELL', 'curl -f http://x/'], interval: 90e9, retries: 3 });
    expect(ins[4]).toMatchObject({ ports: ['80/tcp', '443'] });
    expect(ins[5]).toMatchObject({ paths: ['/v'] });
    expect(ins[6]).toMatchObject({ signal: 'SIGKILL' });
    expect((ins[7] as HealthcheckInstruction).test).toEqual(['NONE']);
    expect(err(() => parse('FROM a\nSHELL /bin/sh -c\n')).message).toContain('JSON');
    expect(err(() => parse('FROM a\nHEALTHCHECK --interval=1x CMD a\n')).code).toBe('E_BAD_FLAG');
    expect(err(() => parse('FROM a\nHEALTHCHECK --timeout=1us CMD a\n')).message).toContain('1ms');
    expect(err(() => parse('FROM a\nHEALTHCHECK FOO\n')).message).toContain('try CMD');
  });

  it('ONBUILD with trigger', () => {
    const o = parse('FROM a\nONBUILD RUN ["echo", "x"]\n').stages[0].instructions[0] as OnbuildInstruction;
    expect(o.triggerText).toBe('RUN ["echo", "x"]');
    expect(o.trigger).toMatchObject({ kind: 'RUN', form: 'exec', command: ['echo', 'x'] });
    expect(err(() => parse('FROM a\nONBUILD FROM b\n')).message).toContain('ONBUILD trigger');
    expect(parseInstructionText('COPY . /app')).toMatchObject({ kind: 'COPY', sources: ['.'], dest: '/app' });
    expect(parseInstructionText('RUN echo `\n hi', { escape: '`' })).toMatchObject({ command: ['echo  hi'] });
  });
});

describe('parse: errors', () => {
  it('unknown instruction suggests the nearest keyword', () => {
    const e = err(() => parse('FROM a\n  RUNN echo\n'));
    expect(e.code).toBe('E_UNKNOWN_INSTRUCTION');
    expect(e.message).toBe('unknown instruction: RUNN (did you mean RUN?)');
    expect(e.location).toMatchObject({ line: 2, column: 3 });
    expect(err(() => parse('FORM a\n')).message).toContain('FROM');
  });

  it('instructions before FROM, empty files, bad stage names, bad arg counts', () => {
    expect(err(() => parse('RUN x\nFROM a\n')).message).toContain('before the first FROM');
    expect(err(() => parse('')).message).toContain('no instructions');
    expect(err(() => parse('# c\n\n')).code).toBe('E_PARSE');
    expect(err(() => parse('ARG x\n')).message).toContain('FROM');
    expect(err(() => parse('FROM a AS 1x\n')).message).toContain('invalid name');
    expect(err(() => parse('FROM a b\n')).message).toContain('one or three');
    expect(err(() => parse('FROM a\nCOPY x\n')).message).toContain('Destination');
    expect(err(() => parse('FROM a\nRUN ["a", ["b"]]\n')).message).toContain('strings');
    expect(err(() => parse('FROM a\nWORKDIR\n')).message).toContain('WORKDIR requires exactly one argument');
  });
});
