import fsp from 'node:fs/promises';
import path from 'node:path';
import dockerignoreModule from '@balena/dockerignore';

// The package is CommonJS (`module.exports = factory`) with an ESM-style `export default` typing.
const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;

/**
 * `.dockerignore` with Docker's exact pattern rules (@balena/dockerignore is a port of moby's
 * matcher). `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's file,
 * as in BuildKit.
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
    if (text !== undefined) return compileIgnore(text);
  }
  return compileIgnore('');
}

export function compileIgnore(text: string): IgnoreMatcher {
  const patterns = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const ig = dockerignore().add(patterns);
  return { patterns, ignores: (p: string) => patterns.length > 0 && ig.ignores(p) };
}
