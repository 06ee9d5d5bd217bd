import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError, type SourceLocation } from '@vlab/errors';
import { check, parse, type Dockerfile } from '@vlab/dockerfile';
import { closeSync } from 'node:fs';
import { openInRoot, readAllSync } from '@vlab/overlay';
import { readInRoot } from '../fsutil/in-root.ts';

/** Most bytes of a Dockerfile read from the context (far above real ones; hostile tests use 5 MB). */
export const MAX_CONTEXT_DOCKERFILE = 64 << 20;

/** A Dockerfile path, or its text (named `path` in locations, default "Dockerfile"). */
export type DockerfileSpec = string | { text: string; path?: string };

export interface CheckOptions {
  /** Context directory (default: the current one); the default Dockerfile is `<context>/Dockerfile`. */
  context?: string;
  dockerfile?: DockerfileSpec;
}

export interface CheckWarning {
  rule: string;
  message: string;
  location: SourceLocation;
}

/** The lint warnings `@vlab/dockerfile`'s check() finds, located (docker build --check, without building). */
export async function checkDockerfile(
  opts: CheckOptions = {},
): Promise<{ dockerfilePath: string; warnings: CheckWarning[] }> {
  const { df, dockerfilePath } = await loadDockerfile(path.resolve(opts.context ?? '.'), opts.dockerfile);
  const warnings = check(df).map((w) => ({
    rule: w.rule,
    message: w.message,
    location: { file: dockerfilePath, ...w.range.start },
  }));
  return { dockerfilePath, warnings };
}

/**
 * Read and parse the Dockerfile (`<contextDir>/Dockerfile` by default); E_DOCKERFILE_NOT_FOUND if
 * unreadable. The default one comes with the (untrusted) context: read in-root (readInRoot), so
 * a `Dockerfile -> /etc/shadow` link or a FIFO there never shows host bytes in a parse error.
 * One given by path (-f) is the user's: read as it is.
 */
export async function loadDockerfile(
  contextDir: string,
  spec: DockerfileSpec | undefined,
): Promise<{ df: Dockerfile; dockerfilePath: string }> {
  if (spec && typeof spec === 'object') {
    const p = spec.path ?? 'Dockerfile';
    return { df: parse(spec.text, { file: p }), dockerfilePath: p };
  }
  const file = spec ? path.resolve(spec) : path.join(contextDir, 'Dockerfile');
  const unreadable = (why: string, cause?: unknown) =>
    new VlabError('E_DOCKERFILE_NOT_FOUND', `cannot read Dockerfile ${file}: ${why}`, { cause });
  const text = spec
    ? await fsp.readFile(file, 'utf8').catch((e) => {
        throw unreadable((e as Error).message, e);
      })
    : await readInRoot(contextDir, 'Dockerfile', MAX_CONTEXT_DOCKERFILE, (why) => unreadable(`it ${why}`)).then((t) => {
        if (t === undefined) throw unreadable('not found in the build context');
        return t;
      });
  return { df: parse(text, { file }), dockerfilePath: file };
}

/**
 * The Dockerfile read again for a snippet: the regular file there now, O_NOFOLLOW (openInRoot), at
 * most MAX_CONTEXT_DOCKERFILE bytes. The default one sits in the untrusted context, which may have swapped
 * it for a link to a host file (or a FIFO) since the build read it: no snippet then, never host lines.
 */
export function readDockerfileAgain(f: string): string | undefined {
  const opened = openInRoot(path.dirname(f), path.basename(f));
  if (!opened) return undefined;
  try {
    if (!opened.st.isFile() || opened.st.size > MAX_CONTEXT_DOCKERFILE) return undefined;
    const buf = Buffer.alloc(opened.st.size);
    readAllSync(opened.fd, buf, 0, buf.length, f);
    return buf.toString('utf8');
  } finally {
    closeSync(opened.fd);
  }
}
