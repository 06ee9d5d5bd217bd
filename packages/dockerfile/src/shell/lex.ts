/**
 * Shell-word lexer with BuildKit's `shell/lex.go` semantics (read, not copied): one word is
 * expanded (`$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?m}`, `${V?m}`,
 * `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`), quotes are removed, and
 * the escape character escapes the next character outside quotes. `processWords` additionally
 * splits on unquoted whitespace, including whitespace that came out of an unquoted variable.
 *
 * Errors are `VlabError('E_EXPAND')`; the lexer never loops: every step consumes input.
 */
import { VlabError } from '@vlab/errors';
import { compileShellPattern } from './pattern.ts';
import { replaceAll, trimPrefix, trimSuffix } from './modifiers.ts';

export interface LexOptions {
  /** Escape character, `\` (default) or `` ` ``. */
  escape?: string;
  /** Keep quotes in the output (used for heredoc-name detection). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output. */
  rawEscapes?: boolean;
  /** Leave `$NAME` as written when NAME is unset. */
  skipUnsetEnv?: boolean;
  /** Quotes are ordinary characters (heredoc bodies: only `$` and escapes are special). */
  skipProcessQuotes?: boolean;
  /** Windows semantics: variable names are looked up case-insensitively. */
  caseInsensitive?: boolean;
  /** Called with every variable name looked up (set or not). */
  onUsed?: (name: string) => void;
}

export type EnvLookup = Record<string, string> | ((name: string) => string | undefined);

const EOF = '';

// ASCII fast paths; Unicode classes (Go's unicode.IsSpace/IsDigit/IsLetter) beyond.
export function isSpace(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return /^\s$/u.test(ch);
}
function isDigit(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 0x80) return c >= 0x30 && c <= 0x39;
  return /^\p{Nd}$/u.test(ch);
}
function isNameChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 0x80) return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
  return /^[\p{L}\p{Nd}_]$/u.test(ch);
}
function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch) && ch !== '';
}

class Words {
  word = '';
  words: string[] = [];
  inWord = false;
  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class ShellWord {
  private readonly chars: string[];
  private pos = 0;
  private readonly escape: string;
  private rawEscapes: boolean;
  private readonly lookup: (name: string) => string | undefined;

  constructor(
    source: string,
    env: EnvLookup,
    private readonly opts: LexOptions,
  ) {
    this.chars = Array.from(source);
    this.escape = opts.escape ?? '\\';
    this.rawEscapes = opts.rawEscapes ?? false;
    if (typeof env === 'function') this.lookup = env;
    else if (opts.caseInsensitive) {
      const lower = new Map<string, string>();
      for (const [k, v] of Object.entries(env)) lower.set(k.toLowerCase(), v);
      this.lookup = (n) => lower.get(n.toLowerCase());
    } else this.lookup = (n) => (Object.prototype.hasOwnProperty.call(env, n) ? env[n] : undefined);
  }

  private peek(): string {
    return this.pos < this.chars.length ? this.chars[this.pos] : EOF;
  }
  private next(): string {
    return this.pos < this.chars.length ? this.chars[this.pos++] : EOF;
  }

  private getEnv(name: string): { value: string; set: boolean } {
    this.opts.onUsed?.(name);
    const v = this.lookup(name);
    return v === undefined ? { value: '', set: false } : { value: v, set: true };
  }

  run(): { word: string; words: string[] } {
    return this.processStopOn(EOF, this.rawEscapes);
  }

  /** Process until `stop` (consumed) or end of input; `stop === EOF` means read everything. */
  private processStopOn(stop: string, rawEscapes: boolean): { word: string; words: string[] } {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new Words();
      while (this.peek() !== EOF) {
        const ch = this.peek();
        if (stop !== EOF && ch === stop) {
          this.next();
          return { word: result, words: words.getWords() };
        }
        if (ch === '$') {
          const tmp = this.processDollar();
          result += tmp;
          words.addString(tmp);
        } else if ((ch === "'" || ch === '"') && !this.opts.skipProcessQuotes) {
          const tmp = ch === "'" ? this.processSingleQuote() : this.processDoubleQuote();
          result += tmp;
          words.addRawString(tmp);
        } else {
          let c = this.next();
          if (c === this.escape) {
            if (this.rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            c = this.next();
            if (c === EOF) break; // a lone escape at the end is dropped
            words.addRawChar(c);
          } else {
            words.addChar(c);
          }
          result += c;
        }
      }
      if (stop !== EOF) {
        throw new VlabError('E_EXPAND', `unexpected end of statement while looking for matching ${stop}`);
      }
      return { word: result, words: words.getWords() };
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; a ' cannot be escaped inside.
    let result = '';
    const open = this.next();
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === EOF) {
        throw new VlabError('E_EXPAND', 'unexpected end of statement while looking for matching single-quote');
      }
      if (ch === "'") {
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    // Literal except `$` expansion; the escape character only escapes `"`, `$` and itself.
    let result = '';
    const open = this.next();
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const p = this.peek();
      if (p === EOF) {
        throw new VlabError('E_EXPAND', 'unexpected end of statement while looking for matching double-quote');
      }
      if (p === '"') {
        const ch = this.next();
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next();
      if (ch === this.escape) {
        const n = this.peek();
        if (n === EOF) continue; // escape at the very end: dropped, then the EOF error fires
        if (n === '"' || n === '$' || n === this.escape) {
          if (this.rawEscapes) result += ch;
          ch = this.next();
        }
        // any other escaped character keeps the escape character
      }
      result += ch;
    }
  }

  private processName(): string {
    let name = '';
    while (this.peek() !== EOF) {
      const ch = this.peek();
      if (name.length === 0 && isDigit(ch)) {
        while (this.peek() !== EOF && isDigit(this.peek())) name += this.next();
        return name;
      }
      if (name.length === 0 && isSpecialParam(ch)) return this.next();
      if (!isNameChar(ch)) break;
      name += this.next();
    }
    return name;
  }

  private stopOnOrMissing(stop: string, rawEscapes: boolean, missing: string): string {
    try {
      return this.processStopOn(stop, rawEscapes).word;
    } catch (e) {
      if (this.peek() === EOF) throw new VlabError('E_EXPAND', missing, { cause: e });
      throw e;
    }
  }

  private processDollar(): string {
    this.next(); // $
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const { value, set } = this.getEnv(name);
      if (!set && this.opts.skipUnsetEnv) return '$' + name;
      return value;
    }
    this.next(); // {
    const first = this.peek();
    if (first === EOF) throw new VlabError('E_EXPAND', "syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':')
      throw new VlabError('E_EXPAND', 'syntax error: bad substitution');
    const name = this.processName();
    const ch = this.next();
    switch (ch) {
      case '}': {
        const { value, set } = this.getEnv(name);
        if (!set && this.opts.skipUnsetEnv) return '${' + name + '}';
        return value;
      }
      case ':': {
        const modifier = this.next();
        const word = this.stopOnOrMissing('}', this.rawEscapes, "syntax error: missing '}'");
        const { value, set } = this.getEnv(name);
        if (this.opts.skipUnsetEnv && !set) return '${' + name + ':' + modifier + word + '}';
        switch (modifier) {
          case '+':
            return value !== '' ? word : '';
          case '-':
            return value === '' ? word : value;
          case '?':
            if (!set) throw new VlabError('E_EXPAND', `${name}: ${word || 'is not allowed to be unset'}`);
            if (value === '') throw new VlabError('E_EXPAND', `${name}: ${word || 'is not allowed to be empty'}`);
            return value;
          default:
            throw new VlabError('E_EXPAND', `unsupported modifier (${modifier}) in substitution`);
        }
      }
      case '+':
      case '-':
      case '?':
      case '#':
      case '%': {
        const raw = ch === '#' || ch === '%';
        let word = this.stopOnOrMissing('}', raw, "syntax error: missing '}'");
        const { value, set } = this.getEnv(name);
        if (this.opts.skipUnsetEnv && !set) return '${' + name + ch + word + '}';
        if (ch === '-') return set ? value : word;
        if (ch === '+') return set ? word : '';
        if (ch === '?') {
          if (!set) throw new VlabError('E_EXPAND', `${name}: ${word || 'is not allowed to be unset'}`);
          return value;
        }
        let greedy = false;
        if (word.startsWith(ch)) {
          greedy = true;
          word = word.slice(1);
        }
        return ch === '%' ? trimSuffix(word, value, greedy, this.escape) : trimPrefix(word, value, greedy, this.escape);
      }
      case '/': {
        const all = this.peek() === '/';
        if (all) this.next();
        const pattern = this.stopOnOrMissing('/', true, "syntax error: missing '/' in ${}");
        const replacement = this.stopOnOrMissing('}', true, "syntax error: missing '}'");
        const { value, set } = this.getEnv(name);
        if (this.opts.skipUnsetEnv && !set) return '${' + name + '/' + pattern + '/' + replacement + '}';
        const re = compileShellPattern(pattern, { greedy: true, anchored: false, escape: this.escape });
        if (all) return replaceAll(re, value, replacement);
        const m = re.find(value);
        return m ? value.slice(0, m.start) + replacement + value.slice(m.end) : value;
      }
      case EOF:
        throw new VlabError('E_EXPAND', "syntax error: missing '}'");
      default:
        throw new VlabError('E_EXPAND', `unsupported modifier (${ch}) in substitution`);
    }
  }
}

function wrap<T>(word: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof VlabError) {
      const shown = word.length > 80 ? word.slice(0, 80) + '…' : word;
      throw new VlabError(e.code, `failed to process "${shown}": ${e.message}`, { cause: e });
    }
    // RangeError: a word nested deeply enough (`${a:-${a:-…`) to exhaust the stack.
    const why = e instanceof RangeError ? 'substitutions nested too deeply' : String(e);
    throw new VlabError(
      'E_EXPAND',
      `failed to process "${word.length > 80 ? word.slice(0, 80) + '…' : word}": ${why}`,
      { cause: e },
    );
  }
}

/** Expand one word (BuildKit ProcessWord): no splitting. */
export function processWord(word: string, env: EnvLookup, opts: LexOptions = {}): string {
  return wrap(word, () => new ShellWord(word, env, opts).run().word);
}

/** Expand and split into words (BuildKit ProcessWords). */
export function processWords(word: string, env: EnvLookup, opts: LexOptions = {}): string[] {
  return wrap(word, () => new ShellWord(word, env, opts).run().words);
}
