import fsp from 'node:fs/promises';
import path from 'node:path';
import { compileIgnorePatterns } from './patterns.ts';

/**
 * `.dockerignore` with Docker's pattern rules (patterns.ts). `<Dockerfile>.dockerignore` next to
 * the Dockerfile wins over the context's file, as in BuildKit. A bad line is E_DOCKERIGNORE
 * naming the file and line.
 */
export interface IgnoreMatcher {
  ignores(relPath: string): boolean;
  patterns: string[];
}

export async function loadIgnore(contextDir: string, dockerfilePath?: string): Promise<IgnoreMatcher> {
  const candidates = [
    ...(dockerfilePath ? [`${dockerfilePath}.dockerignore`] : []),
    path.join(contextDir, '.dockerignore'),
  ];
  for (const file of candidates) {
    const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) return compileIgnore(text, file);
  }
  return compileIgnore('');
}

/** `source` names the file (or flag) in errors; `code` is the error code of a bad line. */
export function compileIgnore(text: string, source = '.dockerignore', code = 'E_DOCKERIGNORE'): IgnoreMatcher {
  const { patterns, matches } = compileIgnorePatterns(text.split(/\r?\n/), source, code);
  return { patterns, ignores: (p: string) => patterns.length > 0 && matches(p) };
}
