/**
 * Readers for BuildKit's lexer fixture formats (shell/envVarTest, shell/wordsTest), as
 * described in /work/shared/corpus/README.md. Pure string functions: tests read the files.
 */
export interface EnvVarCase {
  line: number;
  platform: 'A' | 'U' | 'W';
  input: string;
  expected: string;
}

export function parseEnvVarTest(text: string): EnvVarCase[] {
  const out: EnvVarCase[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.startsWith('#')) return;
    const line = raw.trim();
    if (line === '') return;
    const parts = line.split('|');
    if (parts.length !== 3) throw new Error(`envVarTest line ${i + 1}: expected 3 fields`);
    const [platform, input, expected] = parts.map((p) => p.trim());
    out.push({ line: i + 1, platform: platform as EnvVarCase['platform'], input, expected });
  });
  return out;
}

export interface WordsCase {
  line: number;
  input: string;
  expected: string;
  env: Record<string, string>;
}

export function parseWordsTest(text: string): WordsCase[] {
  const out: WordsCase[] = [];
  const env: Record<string, string> = {};
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    if (raw.startsWith('#')) return;
    if (raw.startsWith('ENV ')) {
      const kv = raw.slice(4).trimStart();
      const eq = kv.indexOf('=');
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
      return;
    }
    const parts = raw.split('|');
    if (parts.length !== 2) throw new Error(`wordsTest line ${i + 1}: expected 2 fields`);
    out.push({ line: i + 1, input: parts[0].trim(), expected: parts[1].trimStart(), env: { ...env } });
  });
  return out;
}
