import { describe, expect, it } from 'vitest';
import { VlabError } from '@vlab/errors';
import { parseHeredoc, heredocsFromLine } from './heredoc.ts';
import { parseSyntax } from './parse.ts';
import { extractBuilderFlags, parseJSON, parseWords } from './line-parsers.ts';
import { dump } from '../dump.ts';

describe('heredoc helpers (BuildKit TestParseHeredocHelpers cases)', () => {
  it.each(['<<EOF', "<<'EOF'", '<<"EOF"', '<<-EOF', '<<EO"F"', '<< EOF'])('valid %s', (w) => {
    expect(parseHeredoc(w)?.name).toBe('EOF');
  });
  it.each(['<<', '<<-', '<EOF', '<<<EOF', '"<<EOF sh"', "<<'EOF <<EOF'"])('not a heredoc: %s', (w) => {
    expect(parseHeredoc(w)).toBeUndefined();
  });
  it('expansion follows quoting', () => {
    expect(parseHeredoc('<<EOF')?.expand).toBe(true);
    expect(parseHeredoc("<<'EOF'")?.expand).toBe(false);
    expect(parseHeredoc('<<EO"F"')?.expand).toBe(false);
    expect(parseHeredoc('<<-EOF')?.chomp).toBe(true);
    expect(parseHeredoc('10<<EOF')?.fd).toBe(10);
  });
  it('finds several heredocs on one line, not inside quotes', () => {
    expect(heredocsFromLine('RUN cat <<A <<-"B" \'<<C\' "x <<D"').map((h) => h.name)).toEqual(['A', 'B']);
  });
});

describe('line parsing details', () => {
  it('flags: quotes removed, -- ends flags', () => {
    expect(extractBuilderFlags('--a="x y" --b -- --c d')).toEqual({ rest: ' --c d', flags: ['--a=x y', '--b'] });
    expect(extractBuilderFlags('-x y')).toEqual({ rest: '-x y', flags: [] });
  });
  it('words keep quotes and escapes', () => {
    expect(parseWords('abc="123 456" def \\"x y\\"', '\\')).toEqual(['abc="123 456"', 'def', '\\"x', 'y\\"']);
  });
  it('JSON: whitespace allowed, escapes decoded, non-strings rejected, invalid is shell form', () => {
    expect(parseJSON('[ "a",\t"b\\tc" ]')).toEqual(['a', 'b\tc']);
    expect(parseJSON("['a']")).toBeUndefined();
    expect(parseJSON('["a"')).toBeUndefined();
    expect(() => parseJSON('[1]')).toThrow();
  });
  it('comment ending in a backslash does not continue; escaped escape does not continue', () => {
    expect(dump('FROM a\n# x \\\nRUN b\nENV C d\\\\\nENV D e\n')).toBe(
      '(from "a")\n(run "b")\n(env "C" "d\\\\\\\\" "")\n(env "D" "e" "")\n',
    );
  });
  it('escape at end of file ends the instruction', () => {
    expect(dump('FROM a\nRUN b \\')).toBe('(from "a")\n(run "b")\n');
  });
  it('backtick escape: backslashes are plain, backtick continues', () => {
    const t = parseSyntax('# escape=`\nFROM a\nRUN dir C:\\ `\n  && echo\n');
    expect(t.nodes[1].original).toBe('RUN dir C:\\   && echo');
  });
  it('a JSON-looking heredoc line in exec form is not a heredoc', () => {
    expect(parseSyntax('FROM a\nRUN ["<<EOF"]\nUSER x\n').nodes).toHaveLength(3);
  });
  it('errors carry file and position', () => {
    try {
      parseSyntax('FROM a\n\n   ENV x\n', { file: 'Dockerfile.dev' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(VlabError);
      expect((e as VlabError).location).toEqual({ file: 'Dockerfile.dev', line: 3, column: 4 });
      expect(String(e)).toBe('Dockerfile.dev:3:4: ENV must have two arguments [E_PARSE]');
    }
  });
});
