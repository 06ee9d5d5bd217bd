/**
 * ADD <url>: one bounded download. The server chooses nothing on the host: each download gets its
 * own private temp dir with the body under a fixed name, and the name from the URL is only the
 * file name in the image (one path component, derived as BuildKit does). Size, total time, idle
 * time and redirects are capped.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';

/** A file ADD fetched from a URL: kept in its own temp dir for the build, with its digest. */
export interface Download {
  /** The private dir that holds the body; the only thing the cleanup removes. */
  dir: string;
  file: string;
  /** File name in the image. */
  name: string;
  digest: string;
  mtime?: Date;
}

export interface DownloadLimits {
  /** Largest body accepted, in bytes (default 4 GiB). */
  maxBytes: number;
  /** Whole download, headers to last byte, in ms (default 30 min). */
  timeoutMs: number;
  /** Longest wait for the next bytes, in ms (default 60 s). */
  idleTimeoutMs: number;
  /** Redirects followed (default 10). */
  maxRedirects: number;
}

export const DEFAULT_DOWNLOAD_LIMITS: DownloadLimits = {
  maxBytes: 4 * 2 ** 30,
  timeoutMs: 30 * 60_000,
  idleTimeoutMs: 60_000,
  maxRedirects: 10,
};

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The in-image name of a URL download, as BuildKit's dockerfile2llb: the base name of the
 * decoded URL path, or `__unnamed__` when that is empty, '.', '..', '/' or undecodable.
 */
export function urlFileName(url: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(new URL(url).pathname);
  } catch {
    return '__unnamed__';
  }
  const base = decoded.replace(/\/+$/, '').split('/').pop() ?? '';
  return base === '' || base === '.' || base === '..' || base.includes('\0') ? '__unnamed__' : base;
}

/**
 * Fetch `url` into a fresh dir under `tmpParent`. With --checksum the content must match, else
 * E_CHECKSUM_MISMATCH. Errors: E_ADD_FETCH (network, HTTP status, too many redirects),
 * E_ADD_TOO_LARGE, E_ADD_TIMEOUT, E_ABORTED. On any error the dir is gone.
 */
export async function download(
  url: string,
  checksum: string | undefined,
  opts: { tmpParent: string; signal?: AbortSignal; limits?: Partial<DownloadLimits> },
): Promise<Download> {
  if (checksum) checkChecksumFlag(checksum);
  const limits = { ...DEFAULT_DOWNLOAD_LIMITS, ...opts.limits };
  const ctl = new AbortController();
  let why: VlabError | undefined;
  const stop = (e: VlabError) => {
    why ??= e;
    ctl.abort(e);
  };
  const total = setTimeout(
    () =>
      stop(new VlabError('E_ADD_TIMEOUT', `ADD ${url}: not done after ${limits.timeoutMs} ms (addLimits.timeoutMs)`)),
    limits.timeoutMs,
  );
  let idle: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () =>
        stop(
          new VlabError(
            'E_ADD_TIMEOUT',
            `ADD ${url}: no data for ${limits.idleTimeoutMs} ms (addLimits.idleTimeoutMs)`,
          ),
        ),
      limits.idleTimeoutMs,
    );
  };
  const onOuterAbort = () => stop(new VlabError('E_ABORTED', 'build aborted'));
  if (opts.signal?.aborted) onOuterAbort();
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  // the owner pid in the name: a killed build's dir is removed by the next store open (leftovers.ts)
  const dir = await fsp.mkdtemp(path.join(opts.tmpParent, `add-${process.pid}-`));
  try {
    touch();
    const res = await fetchFollowing(url, limits, ctl.signal);
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > limits.maxBytes) stop(tooLarge(url, limits));
    ctl.signal.throwIfAborted();
    const file = path.join(dir, 'content');
    const h = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > limits.maxBytes) {
          stop(tooLarge(url, limits));
          return done(why);
        }
        touch();
        h.update(chunk);
        done(null, chunk);
      },
    });
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    await pipeline(body, meter, fs.createWriteStream(file, { mode: 0o600, flags: 'wx' }), { signal: ctl.signal });
    const digest = `sha256:${h.digest('hex')}`;
    if (checksum) verifyChecksum(url, checksum, digest);
    const lm = res.headers.get('last-modified');
    const mtime = lm ? new Date(lm) : undefined;
    return {
      dir,
      file,
      name: urlFileName(url),
      digest,
      mtime: mtime && !Number.isNaN(mtime.getTime()) ? mtime : undefined,
    };
  } catch (e) {
    await fsp.rm(dir, { recursive: true, force: true });
    if (why) throw why;
    if (e instanceof VlabError) throw e;
    throw new VlabError('E_ADD_FETCH', `ADD ${url}: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(total);
    clearTimeout(idle);
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}

function checkChecksumFlag(checksum: string): void {
  if (!/^sha256:[a-f0-9]{64}$/.test(checksum))
    throw new VlabError('E_BAD_FLAG', `--checksum=${checksum}: expected sha256:<64 hex digits>`);
}

/**
 * The one check of ADD --checksum against fetched content. A download is shared by every ADD of
 * its URL in a build, so each use checks its own --checksum (the fetch checked only the first).
 */
export function verifyChecksum(url: string, checksum: string, digest: string): void {
  checkChecksumFlag(checksum);
  if (checksum !== digest)
    throw new VlabError(
      'E_CHECKSUM_MISMATCH',
      `ADD ${url}: content digest ${digest} does not match --checksum ${checksum}`,
    );
}

/** fetch with redirects followed by hand, so their number is capped and each target is http(s). */
async function fetchFollowing(url: string, limits: DownloadLimits, signal: AbortSignal): Promise<Response> {
  let current = url;
  for (let hops = 0; ; hops++) {
    const res = await fetch(current, { signal, redirect: 'manual' });
    const location = res.headers.get('location');
    if (!REDIRECTS.has(res.status) || !location) {
      if (!res.ok || !res.body)
        throw new VlabError(
          'E_ADD_FETCH',
          `ADD ${url}: HTTP ${res.status}${current === url ? '' : ` from ${current}`}`,
        );
      return res;
    }
    await res.body?.cancel();
    if (hops >= limits.maxRedirects)
      throw new VlabError(
        'E_ADD_FETCH',
        `ADD ${url}: more than ${limits.maxRedirects} redirects (addLimits.maxRedirects)`,
      );
    const next = new URL(location, current);
    if (next.protocol !== 'http:' && next.protocol !== 'https:')
      throw new VlabError('E_ADD_FETCH', `ADD ${url}: redirect to ${next.protocol} is not followed`);
    current = next.href;
  }
}

function tooLarge(url: string, limits: DownloadLimits): VlabError {
  return new VlabError(
    'E_ADD_TOO_LARGE',
    `ADD ${url}: larger than ${limits.maxBytes} bytes; raise addLimits.maxBytes if this is expected`,
  );
}
