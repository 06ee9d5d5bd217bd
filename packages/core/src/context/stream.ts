/**
 * A build context given as a stream, as `docker build -` reads stdin: a tar archive (plain, gzip,
 * bzip2 or xz) is the context; anything else is a Dockerfile with an empty context. The stream is
 * copied into a private temp dir (size-bounded) and unpacked there by the same hostile-input-safe
 * extraction as ADD (overlay's `apply`: no `..`, absolute or link escapes, no devices).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import { archiveKind, extractArchive } from '../solve/ops/add.ts';

/** Default cap on the bytes read from the stream (docker sets none; a runaway pipe should not fill the disk). */
export const DEFAULT_STREAM_CONTEXT_MAX = 4 * 2 ** 30;
/** A Dockerfile read from a stream (here, or `-f -`) is held in memory: cap it. */
export const MAX_DOCKERFILE = 2 ** 20;

export interface StreamContext {
  /** The context: a tar (plain, gzip, bzip2, xz) or a Dockerfile (then the context is empty). */
  stream: Readable | NodeJS.ReadableStream;
  /** Most bytes read from the stream (default DEFAULT_STREAM_CONTEXT_MAX); more is E_CONTEXT_TOO_LARGE. */
  maxBytes?: number;
}

export interface UnpackedContext {
  /** The context directory (private, 0700 parent). */
  dir: string;
  /** Set when the stream was a Dockerfile rather than an archive. */
  dockerfileText?: string;
  /** Removes everything this made; never throws. */
  cleanup(): Promise<void>;
}

export async function unpackStreamContext(src: StreamContext, tmpDir = os.tmpdir()): Promise<UnpackedContext> {
  const max = src.maxBytes ?? DEFAULT_STREAM_CONTEXT_MAX;
  const work = await fsp.mkdtemp(path.join(tmpDir, 'vlab-stream-ctx-'));
  const cleanup = () => fsp.rm(work, { recursive: true, force: true }).catch(() => undefined);
  try {
    const file = path.join(work, 'stream');
    let n = 0;
    const bound = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        n += chunk.length;
        if (n > max) cb(new VlabError('E_CONTEXT_TOO_LARGE', `the build context on stdin is larger than ${max} bytes`));
        else cb(null, chunk);
      },
    });
    await pipeline(src.stream as Readable, bound, fs.createWriteStream(file, { mode: 0o600 }));
    const dir = path.join(work, 'context');
    await fsp.mkdir(dir, { mode: 0o755 });
    const kind = await archiveKind(file);
    if (kind) {
      await extractArchive(file, kind, dir);
      await fsp.rm(file, { force: true });
      return { dir, cleanup };
    }
    if (n > MAX_DOCKERFILE)
      throw new VlabError(
        'E_BAD_ARG',
        `stdin is neither a tar archive nor a Dockerfile (a Dockerfile of ${n} bytes is over ${MAX_DOCKERFILE})`,
      );
    const dockerfileText = await fsp.readFile(file, 'utf8');
    await fsp.rm(file, { force: true });
    return { dir, dockerfileText, cleanup };
  } catch (e) {
    await cleanup();
    if (e instanceof VlabError) throw e;
    throw new VlabError('E_CONTEXT_INVALID', `cannot read the build context from the stream: ${(e as Error).message}`, {
      cause: e,
    });
  }
}
