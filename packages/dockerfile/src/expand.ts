/** Public shell-word expansion API (BuildKit ProcessWord / ProcessWords). */
import { processWord, processWords } from './shell/lex.ts';

export interface ExpandOptions {
  escape?: string;
  onUsed?: (name: string) => void;
}

/** Expand one word: variables substituted, quotes removed, no splitting. Throws VlabError E_EXPAND. */
export function expandWord(word: string, env: Record<string, string>, opts: ExpandOptions = {}): string {
  return processWord(word, env, { escape: opts.escape, onUsed: opts.onUsed });
}

/** Expand and split on unquoted whitespace (also whitespace that came from a variable). */
export function expandWords(word: string, env: Record<string, string>, opts: ExpandOptions = {}): string[] {
  return processWords(word, env, { escape: opts.escape, onUsed: opts.onUsed });
}
