/**
 * Heredoc detection with BuildKit's rules (parser.go ParseHeredoc / heredocsFromLine, read not
 * copied): a word `[fd]<<[-]NAME`; quoting any part of NAME disables expansion; `<<-` strips
 * leading tabs. Only RUN, COPY and ADD in shell form may carry heredocs.
 */
import { processWords } from '../shell/lex.ts';
import type { Heredoc } from '../types.ts';

const HEREDOC = /^(\d*)<<(-?)\s*([^<]*)$/;

export const HEREDOC_KEYWORDS = new Set(['run', 'copy', 'add']);

/** Parse one word as a heredoc marker; undefined when it is not one. Throws E_EXPAND on bad quoting. */
export function parseHeredoc(src: string): Omit<Heredoc, 'content'> | undefined {
  const m = HEREDOC.exec(src);
  if (!m) return undefined;
  const rest = m[3];
  if (rest.length === 0) return undefined;
  const words = processWords(rest, {}, { skipUnsetEnv: true });
  if (words.length !== 1) return undefined;
  const raw = processWords(rest, {}, { skipUnsetEnv: true, rawQuotes: true });
  const count = (s: string) => (s.match(/['"]/g) ?? []).length;
  const name = words[0];
  const h: Omit<Heredoc, 'content'> = { name, expand: count(name) === count(raw[0] ?? ''), chomp: m[2] === '-' };
  if (m[1] !== '') h.fd = Number.parseInt(m[1], 10);
  return h;
}

/** All heredoc markers of a logical line, in order. */
export function heredocsFromLine(line: string): Omit<Heredoc, 'content'>[] {
  let words: string[];
  try {
    words = processWords(line, {}, { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });
  } catch {
    return []; // unbalanced quotes in a shell command: not our business, the shell will say
  }
  const out: Omit<Heredoc, 'content'>[] = [];
  for (const w of words) {
    const h = parseHeredoc(w);
    if (h) out.push(h);
  }
  return out;
}

/** `<<-`: remove leading tabs from every line of the content. */
export function chompHeredocContent(content: string): string {
  return content.replace(/^\t+/gm, '');
}
