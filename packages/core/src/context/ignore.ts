import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { VlabError, type ErrorCode } from '@vlab/errors';
import path from 'node:path';
import { compileIgnorePatterns } from './patterns.ts';
import { readInRoot } from '../fsutil/in-root.ts';

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
    // One in the (untrusted) context is read in-root: a link there to a host file is not followed out.
    const rel = path.relative(contextDir, file);
    const text = rel.startsWith('..') ? await readBounded(file) : await readInContext(contextDir, rel, file);
    if (text !== undefined) return compileIgnore(text, file);
  }
  return compileIgnore('');
}

function readInContext(contextDir: string, rel: string, file: string): Promise<string | undefined> {
  return readInRoot(contextDir, rel, MAX_IGNORE_BYTES, (why, tooBig) =>
    tooBig
      ? new VlabError(
          'E_DOCKERIGNORE',
          `${file} is larger than ${MAX_IGNORE_BYTES} bytes (the limit); shorten it, e.g. with ** patterns`,
        )
      : new VlabError('E_DOCKERIGNORE', `${file} ${why}`),
  );
}

/**
 * Caps on a .dockerignore (neither Docker nor BuildKit has one; these are far above real files):
 * every pattern is tried on every path of the context, and the file comes with the context.
 */
export const MAX_IGNORE_BYTES = 1 << 20;
export const MAX_IGNORE_PATTERNS = 10_000;

/** The file's text, at most MAX_IGNORE_BYTES (a FIFO or /dev/zero behind a link is not read forever). */
async function readBounded(file: string): Promise<string | undefined> {
  const fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK).catch(() => undefined);
  if (!fh) return undefined;
  try {
    if (!(await fh.stat()).isFile()) throw new VlabError('E_DOCKERIGNORE', `${file} is not a regular file`);
    const buf = Buffer.alloc(MAX_IGNORE_BYTES + 1);
    let n = 0;
    for (let r; n < buf.length && (r = (await fh.read(buf, n, buf.length - n, n)).bytesRead) > 0;) n += r;
    if (n > MAX_IGNORE_BYTES)
      throw new VlabError(
        'E_DOCKERIGNORE',
        `${file} is larger than ${MAX_IGNORE_BYTES} bytes (the limit); shorten it, e.g. with ** patterns`,
      );
    return buf.subarray(0, n).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** `source` names the file (or flag) in errors; `code` is the error code of a bad line. */
export function compileIgnore(
  text: string,
  source = '.dockerignore',
  code: ErrorCode = 'E_DOCKERIGNORE',
): IgnoreMatcher {
  const { patterns, matches } = compileIgnorePatterns(text.split(/\r?\n/), source, code, MAX_IGNORE_PATTERNS);
  return { patterns, ignores: (p: string) => patterns.length > 0 && matches(p) };
}
