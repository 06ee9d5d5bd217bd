/**
 * Argument splitting per keyword, with BuildKit's `parser/line_parsers.go` rules (read, not
 * copied): JSON-or-shell, whitespace lists, quote-aware words, ENV/LABEL name/value pairs, the
 * HEALTHCHECK form, and the leading `--flag` words of every instruction.
 */
import { VlabError } from '@vlab/errors';
import { isSpace } from '../shell/lex.ts';

/** One argument of a node: a string, or (ONBUILD only) a nested instruction. */
export type NodeArg = string | { node: true; line: string };

export class LineError extends Error {}

const WS = /[\t\v\f\r ]+/;

export { isSpace };

/** Leading `--flag` words (quotes removed, `\` escapes), up to the first non-flag word or `--`. */
export function extractBuilderFlags(line: string): { rest: string; flags: string[] } {
  const flags: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    const ch = pos < line.length ? line[pos] : '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === line.length || line[pos + 1] !== '-') return { rest: line.slice(pos), flags };
      phase = 'word';
    }
    if (pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { rest: line.slice(pos), flags };
        if (blankOK || word.length > 0) flags.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        pos++;
      }
      word += line[pos];
      continue;
    }
    // in quote
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (pos + 1 === line.length) {
        phase = 'word';
        continue;
      }
      pos++;
    }
    word += line[pos];
  }
  return { rest: '', flags };
}

/** Quote-aware word split keeping quotes and escapes as written (ARG, ENV/LABEL pairs). */
export function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = pos < chars.length ? chars[pos] : '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue; // escape at end of line is dropped
        word += ch;
        ch = chars[++pos];
      }
      word += ch;
      continue;
    }
    // in quote
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      ch = chars[++pos];
    }
    word += ch;
  }
  return words;
}

export const NOT_STRING_ARRAY = 'when using JSON array syntax, arrays must be comprised of strings only';

/** A JSON array of strings, or undefined when `rest` is not JSON (then it is shell form). */
export function parseJSON(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(rest);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  for (const e of v) if (typeof e !== 'string') throw new LineError(NOT_STRING_ARRAY);
  return v as string[];
}

export interface Parsed {
  args: NodeArg[];
  json: boolean;
}

const none = (): Parsed => ({ args: [], json: false });

export function parseMaybeJSON(rest: string): Parsed {
  if (rest === '') return none();
  const j = parseJSON(rest);
  if (j) return { args: j, json: true };
  return { args: [rest], json: false };
}

export function parseMaybeJSONToList(rest: string): Parsed {
  const j = parseJSON(rest);
  if (j) return { args: j, json: true };
  return parseStringsWhitespaceDelimited(rest);
}

export function parseStringsWhitespaceDelimited(rest: string): Parsed {
  if (rest === '') return none();
  return { args: rest.split(WS), json: false };
}

export function parseString(rest: string): Parsed {
  return rest === '' ? none() : { args: [rest], json: false };
}

export function parseNameOrNameVal(rest: string, escape: string): Parsed {
  return { args: parseWords(rest, escape), json: false };
}

/** ENV/LABEL: `name=value ...` pairs, or the legacy `name value` form; args in triples. */
export function parseNameVal(rest: string, key: string, escape: string): Parsed {
  const words = parseWords(rest, escape);
  if (words.length === 0) return none();
  if (!words[0].includes('=')) {
    const m = /[\t\v\f\r ]+/.exec(rest);
    if (!m) throw new LineError(`${key} must have two arguments`);
    return { args: [rest.slice(0, m.index), rest.slice(m.index + m[0].length), ''], json: false };
  }
  const args: string[] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq === -1) throw new LineError(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    args.push(w.slice(0, eq), w.slice(eq + 1), '=');
  }
  return { args, json: false };
}

export function parseHealthConfig(rest: string): Parsed {
  let sep = 0;
  while (sep < rest.length && !isSpace(rest[sep])) sep++;
  let next = sep;
  while (next < rest.length && isSpace(rest[next])) next++;
  if (sep === 0) return none();
  const cmd = parseMaybeJSON(rest.slice(next));
  return { args: [rest.slice(0, sep), ...cmd.args], json: cmd.json };
}

/** Dispatch by lower-case keyword; unknown keywords keep no arguments (rejected later). */
export function parseArgs(keyword: string, rest: string, escape: string): Parsed {
  switch (keyword) {
    case 'add':
    case 'copy':
    case 'volume':
      return parseMaybeJSONToList(rest);
    case 'arg':
      return parseNameOrNameVal(rest, escape);
    case 'cmd':
    case 'entrypoint':
    case 'run':
    case 'shell':
      return parseMaybeJSON(rest);
    case 'env':
    case 'label':
      return parseNameVal(rest, keyword.toUpperCase(), escape);
    case 'expose':
    case 'from':
      return parseStringsWhitespaceDelimited(rest);
    case 'healthcheck':
      return parseHealthConfig(rest);
    case 'maintainer':
    case 'stopsignal':
    case 'user':
    case 'workdir':
      return parseString(rest);
    case 'onbuild':
      return rest === '' ? none() : { args: [{ node: true, line: rest }], json: false };
    default:
      return none();
  }
}

export function lineError(e: unknown, location: { file?: string; line: number; column: number }): never {
  if (e instanceof LineError) throw new VlabError('E_PARSE', e.message, { location, cause: e });
  throw e;
}
