/**
 * Dockerfile text → syntax nodes (BuildKit's `parser` package: one node per instruction with
 * the keyword, the `--flags`, the arguments split per keyword, heredoc bodies and line range).
 *
 * This is the only file that imports dockerfile-ast, and none of its types leave it. We use it
 * for the parser-directive block, then correct it where it differs from BuildKit:
 *  - BuildKit skips a `#!` first line and keeps looking for directives after it;
 *  - BuildKit knows only `syntax`, `escape` and `check`: an unknown `# foo=bar` ends the block
 *    (dockerfile-ast keeps collecting), names are case-insensitive, a duplicate is an error.
 * Instruction segmentation is done here, not by dockerfile-ast, because its rules differ from
 * BuildKit's in ways the fixtures pin: `ENV C a\\` (an escaped escape at end of line) does not
 * continue in BuildKit (trailing-backslash fixture) but does in dockerfile-ast; dockerfile-ast
 * treats a bare `\r` as a line break (its README) while BuildKit splits on `\n` only; and the
 * heredoc terminator rules (`<<-` tab stripping, several heredocs per line) must match ours.
 */
import { DockerfileParser } from 'dockerfile-ast';
import { VlabError } from '@vlab/errors';
import type { Heredoc, Range, Warning } from '../types.ts';
import { LineError, extractBuilderFlags, parseArgs, type NodeArg } from './line-parsers.ts';
import { HEREDOC_KEYWORDS, chompHeredocContent, heredocsFromLine } from './heredoc.ts';

export interface SyntaxNode {
  /** Lower-case keyword, like BuildKit's node.Value. */
  keyword: string;
  /** Keyword as written. */
  keywordText: string;
  flags: string[];
  args: NodeArg[];
  /** Arguments were a JSON array (exec form). */
  json: boolean;
  /** Argument text after the flags, trimmed. */
  rest: string;
  /** The logical line: continuations joined, comment lines dropped. */
  original: string;
  heredocs: Heredoc[];
  range: Range;
}

export interface Directive {
  name: string;
  value: string;
  line: number;
}

export interface SyntaxTree {
  escape: '\\' | '`';
  directives: Directive[];
  nodes: SyntaxNode[];
  warnings: Warning[];
}

const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);

function loc(file: string | undefined, line: number, column: number) {
  return { file, line, column };
}

/** Parser directives via dockerfile-ast, corrected to BuildKit's rules (see the file comment). */
export function readDirectives(lines: string[], file?: string): { escape: '\\' | '`'; directives: Directive[] } {
  let offset = 0;
  if (lines.length > 0 && lines[0].startsWith('#!')) offset = 1;
  // Only the leading comment block can hold directives; give dockerfile-ast just that.
  let end = offset;
  while (end < lines.length && /^\s*#/.test(lines[end])) end++;
  const head = lines.slice(offset, end).join('\n');
  const found = head === '' ? [] : DockerfileParser.parse(head).getDirectives();
  const directives: Directive[] = [];
  let escape: '\\' | '`' = '\\';
  let expectedLine = 0;
  for (const d of found) {
    const line = d.getRange().start.line;
    if (line !== expectedLine) break; // a non-directive comment came first: block ended
    expectedLine++;
    const name = d.getName().toLowerCase();
    const value = d.getValue().trim();
    if (!KNOWN_DIRECTIVES.has(name) || value === '') break;
    const at = line + offset + 1;
    if (directives.some((x) => x.name === name)) {
      throw new VlabError('E_PARSE', `only one ${name} parser directive can be used`, { location: loc(file, at, 1) });
    }
    if (name === 'escape') {
      if (value !== '\\' && value !== '`') {
        throw new VlabError('E_PARSE', `invalid escape token '${value}' does not match \` or \\`, {
          location: loc(file, at, 1),
        });
      }
      escape = value;
    }
    directives.push({ name, value, line: at });
  }
  return { escape, directives };
}

const isCommentLine = (l: string) => /^[ \t\r\f\v]*#/.test(l);
const isBlank = (l: string) => /^[ \t\r\f\v]*$/.test(l);

/** `(^|[^esc])esc[ \t]*$` → the line without the escape, and whether it continues. */
function trimContinuation(line: string, escape: string): { text: string; continues: boolean } {
  let end = line.length; // scan from the end: a regex here would be quadratic on long blank runs
  while (end > 0 && (line[end - 1] === ' ' || line[end - 1] === '\t')) end--;
  const body = line.slice(0, end);
  if (!body.endsWith(escape)) return { text: line, continues: false };
  const before = body.slice(0, -1);
  if (before.endsWith(escape)) return { text: line, continues: false };
  return { text: before, continues: true };
}

/** Split `KEYWORD [--flags] args` and parse the arguments for that keyword. */
export function nodeFromLine(line: string, escape: string): Omit<SyntaxNode, 'range' | 'heredocs' | 'original'> {
  const trimmed = line.trim();
  const m = /[\t\v\f\r ]+/.exec(trimmed);
  const keywordText = m ? trimmed.slice(0, m.index) : trimmed;
  const after = m ? trimmed.slice(m.index + m[0].length) : '';
  const { rest: r, flags } = extractBuilderFlags(after);
  const rest = r.trim();
  const keyword = keywordText.toLowerCase();
  const parsed = parseArgs(keyword, rest, escape);
  return { keyword, keywordText, flags, args: parsed.args, json: parsed.json, rest };
}

export function parseSyntax(text: string, opts: { file?: string } = {}): SyntaxTree {
  const file = opts.file;
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '' && text.endsWith('\n')) lines.pop();
  const { escape, directives } = readDirectives(lines, file);
  const nodes: SyntaxNode[] = [];
  const warnings: Warning[] = [];

  let i = 0;
  while (i < lines.length) {
    const first = lines[i];
    i++;
    if (isCommentLine(first)) continue;
    const startLine = i;
    const startColumn = first.length - first.trimStart().length + 1;
    let { text: line, continues } = trimContinuation(first.trimStart(), escape);
    if (!continues && line.trim() === '') continue;
    let emptyContinuation = false;
    while (continues && i < lines.length) {
      const raw = lines[i];
      i++;
      if (isCommentLine(raw)) continue;
      if (isBlank(raw)) {
        emptyContinuation = true;
        continue;
      }
      const t = trimContinuation(raw, escape);
      line += t.text;
      continues = t.continues;
    }
    const location = loc(file, startLine, startColumn);
    let node: ReturnType<typeof nodeFromLine>;
    try {
      node = nodeFromLine(line, escape);
    } catch (e) {
      if (e instanceof LineError) throw new VlabError('E_PARSE', e.message, { location, cause: e });
      throw e;
    }
    const heredocs: Heredoc[] = [];
    if (HEREDOC_KEYWORDS.has(node.keyword) && !node.json && line.includes('<<')) {
      let found: ReturnType<typeof heredocsFromLine>;
      try {
        found = heredocsFromLine(line);
      } catch (e) {
        throw new VlabError('E_PARSE', `invalid heredoc: ${(e as Error).message}`, { location, cause: e });
      }
      for (const h of found) {
        let content = '';
        let terminated = false;
        while (i < lines.length) {
          const raw = lines[i];
          i++;
          const candidate = h.chomp ? raw.replace(/^\t+/, '') : raw;
          if (candidate === h.name) {
            terminated = true;
            break;
          }
          content += raw + '\n';
        }
        if (!terminated) {
          throw new VlabError(
            'E_HEREDOC_UNTERMINATED',
            `unterminated heredoc: no line "${h.name}" closes the <<${h.chomp ? '-' : ''}${h.name} started here`,
            { location },
          );
        }
        heredocs.push({ ...h, content: h.chomp ? chompHeredocContent(content) : content });
      }
    }
    const endLine = i;
    const lastText = lines[endLine - 1] ?? '';
    const range: Range = {
      start: { line: startLine, column: startColumn },
      end: { line: endLine, column: lastText.trimEnd().length + 1 },
    };
    if (emptyContinuation) {
      warnings.push({
        rule: 'NoEmptyContinuation',
        message: `Empty continuation line found in: ${line.trim()}`,
        range,
      });
    }
    nodes.push({ ...node, original: line, heredocs, range });
  }
  if (nodes.length === 0) {
    throw new VlabError('E_PARSE', 'file with no instructions', { location: loc(file, 1, 1) });
  }
  return { escape, directives, nodes, warnings };
}
