import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { apply, hostPath, openSameSync, type FileIdentity } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import { gunzipStream } from '../../image/load.ts';

export const URL_RE = /^https?:\/\//i;

export { download, type Download } from './download.ts';

export type ArchiveKind = 'tar' | 'gzip' | 'bzip2' | 'xz' | undefined;

/**
 * A walked context file (`want`: what the walk saw, `name`: its context path) is opened as that
 * very file (open-same.ts), never through a symlink or a directory swapped in since; a file of our
 * own (a stream context's temp file) by its path.
 */
export interface Walked {
  want: FileIdentity;
  name: string;
}

function openArchive(file: string, walked?: Walked): number {
  return walked ? openSameSync(file, walked.want, walked.name).fd : fs.openSync(hostPath(file), 'r');
}

/** Docker auto-extracts local tar archives (plain, gzip, bzip2, xz) that ADD copies; it sniffs the bytes. */
export async function archiveKind(file: string, walked?: Walked): Promise<ArchiveKind> {
  const fd = openArchive(file, walked);
  try {
    const head = Buffer.alloc(512);
    const bytesRead = fs.readSync(fd, head, 0, 512, 0); // one block of a regular file: no wait worth a thread
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead >= 3 && head.subarray(0, 3).toString() === 'BZh') return 'bzip2';
    if (bytesRead >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (bytesRead >= 262 && head.subarray(257, 262).toString() === 'ustar') return 'tar';
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Unpack a local archive into `destDir` (a host path inside the mounted rootfs). The overlay
 * package's `apply` refuses `..`, absolute paths and link escapes, so a hostile archive cannot
 * write outside `destDir`.
 */
export async function extractArchive(
  file: string,
  kind: Exclude<ArchiveKind, undefined>,
  destDir: string,
  walked?: Walked,
  pinned = false,
): Promise<void> {
  // the fd read, at most the size walked (a file that grows is not read on); closed by the stream
  const fd = openArchive(file, walked);
  const input = fs.createReadStream('', { fd, start: 0, ...(walked && { end: walked.want.size - 1 }) });
  let stream: Readable;
  let child: ReturnType<typeof spawn> | undefined;
  if (kind === 'bzip2' || kind === 'xz') {
    // the archive on stdin: its name may not be UTF-8, which an argv string cannot carry
    child = spawn(kind === 'xz' ? 'xz' : 'bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'inherit'] });
    input.on('error', () => child?.kill()); // a read error ends the input early: the exit code says so
    child.stdin!.on('error', () => undefined); // EPIPE when it stops reading: its exit code says why
    input.pipe(child.stdin!);
    stream = child.stdout as Readable;
  } else {
    stream = input;
    if (kind === 'gzip') stream = gunzipStream(stream, `ADD ${path.basename(file)}`);
  }
  // an xz/bzip2 that fails ends its output early: an empty or cut archive, not an error by itself
  const exited = child && new Promise<number | null>((res) => child.once('close', (code) => res(code)));
  try {
    await apply(stream, destDir, { whiteouts: 'oci', pinned });
    const code = await exited;
    if (code !== undefined && code !== 0)
      throw new VlabError('E_ADD_EXTRACT', `ADD: ${kind} could not decompress ${path.basename(file)} (exit ${code})`);
  } catch (e) {
    if (e instanceof VlabError) throw e;
    throw new VlabError('E_ADD_EXTRACT', `ADD: cannot extract ${path.basename(file)}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    child?.kill();
    input.destroy(); // its fd, when the extraction stopped before the end
  }
}
