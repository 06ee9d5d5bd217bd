import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { apply } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';

export const URL_RE = /^https?:\/\//i;

/** A file ADD fetched from a URL: kept in a temp file for the build, with its digest. */
export interface Download {
  file: string;
  name: string;
  digest: string;
  mtime?: Date;
}

/**
 * Fetch an ADD URL (node's fetch). With --checksum the content must match, else
 * E_CHECKSUM_MISMATCH. The file name is the URL's last path segment, as docker does.
 */
export async function download(url: string, checksum: string | undefined, signal?: AbortSignal): Promise<Download> {
  if (checksum && !/^sha256:[a-f0-9]{64}$/.test(checksum)) {
    throw new VlabError('E_BAD_FLAG', `--checksum=${checksum}: expected sha256:<64 hex digits>`);
  }
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (e) {
    throw new VlabError('E_ADD_FETCH', `ADD ${url}: ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok || !res.body) throw new VlabError('E_ADD_FETCH', `ADD ${url}: HTTP ${res.status}`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-add-'));
  const name = decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() ?? 'index.html');
  const file = path.join(dir, name);
  const h = createHash('sha256');
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  body.on('data', (c: Buffer) => h.update(c));
  await pipeline(body, fs.createWriteStream(file, { mode: 0o600 }));
  const digest = `sha256:${h.digest('hex')}`;
  if (checksum && checksum !== digest) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw new VlabError('E_CHECKSUM_MISMATCH', `ADD ${url}: content digest ${digest} does not match --checksum ${checksum}`);
  }
  const lm = res.headers.get('last-modified');
  return { file, name, digest, mtime: lm ? new Date(lm) : undefined };
}

type ArchiveKind = 'tar' | 'gzip' | 'bzip2' | 'xz' | undefined;

/** Docker auto-extracts local tar archives (plain, gzip, bzip2, xz) that ADD copies; it sniffs the bytes. */
export async function archiveKind(file: string): Promise<ArchiveKind> {
  const fh = await fsp.open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead >= 3 && head.subarray(0, 3).toString() === 'BZh') return 'bzip2';
    if (bytesRead >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (bytesRead >= 262 && head.subarray(257, 262).toString() === 'ustar') return 'tar';
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * Unpack a local archive into `destDir` (a host path inside the mounted rootfs). The overlay
 * package's `apply` refuses `..`, absolute paths and link escapes, so a hostile archive cannot
 * write outside `destDir`.
 */
export async function extractArchive(file: string, kind: Exclude<ArchiveKind, undefined>, destDir: string): Promise<void> {
  let stream: Readable = fs.createReadStream(file);
  let child: ReturnType<typeof spawn> | undefined;
  if (kind === 'gzip') stream = stream.pipe(createGunzip());
  else if (kind === 'bzip2' || kind === 'xz') {
    child = spawn(kind === 'xz' ? 'xz' : 'bzip2', ['-dc', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    stream = child.stdout as Readable;
  }
  try {
    await apply(stream, destDir, { whiteouts: 'oci' });
  } catch (e) {
    if (e instanceof VlabError) throw e;
    throw new VlabError('E_ADD_EXTRACT', `ADD: cannot extract ${path.basename(file)}: ${(e as Error).message}`, { cause: e });
  } finally {
    child?.kill();
  }
}
