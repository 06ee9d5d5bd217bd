import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { VlabError, type ErrorCode } from '@vlab/errors';
import { bareEntry, encodeHeader, layerTar, padding, tarEntryBytes } from '@vlab/overlay';

/** A file in an image archive: inline bytes or a file streamed from disk. */
export type ArchiveEntry = { name: string; data: Buffer } | { name: string; file: string; size: number };

/**
 * Write entries to a tar file through overlay's tar codec (the one every layer is written with),
 * streaming file contents (no blob is held in memory). Parent dirs are added 0755; mtimes are 0.
 */
export async function writeArchive(dest: string, entries: ArchiveEntry[]): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}`;
  await pipeline(layerTar(archiveBytes(entries)), fs.createWriteStream(tmp));
  await fsp.rename(tmp, dest);
}

async function* archiveBytes(entries: ArchiveEntry[]): AsyncGenerator<Buffer> {
  const dirs = new Set<string>();
  for (const e of entries) {
    const parts = e.name.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (dirs.has(d)) continue;
      dirs.add(d);
      yield encodeHeader(bareEntry(`${d}/`, 'dir', 0o755));
    }
    const size = 'data' in e ? e.data.length : e.size;
    const h = { ...bareEntry(e.name, 'file', 0o644), size };
    if ('file' in e) {
      yield* tarEntryBytes(h, e.file);
      continue;
    }
    yield encodeHeader(h);
    yield e.data;
    if (padding(size)) yield Buffer.alloc(padding(size));
  }
}

/**
 * Open a file to read as an archive: regular files only (a FIFO, /dev/zero or a tty would block or
 * never end), and no more than the size it had when opened. O_NONBLOCK so opening a FIFO does not
 * wait for a writer. Missing: `missingCode`; anything else: E_BAD_ARCHIVE.
 */
export async function openArchiveFile(
  file: string,
  missingCode: ErrorCode = 'E_IMAGE_NOT_FOUND',
): Promise<{ stream: Readable; size: number }> {
  const fh = await fsp
    .open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY)
    .catch((e: NodeJS.ErrnoException) => {
      throw new VlabError(e.code === 'ENOENT' ? missingCode : 'E_BAD_ARCHIVE', `cannot open ${file}: ${e.message}`, {
        cause: e,
      });
    });
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new VlabError('E_BAD_ARCHIVE', `${file} is not a regular file (a ${kindOf(st)}): give an archive file`);
  }
  if (st.size === 0) {
    await fh.close();
    return { stream: Readable.from([]), size: 0 };
  }
  return { stream: fh.createReadStream({ start: 0, end: st.size - 1, highWaterMark: 1 << 20 }), size: st.size };
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'FIFO';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isSocket()) return 'socket';
  return 'special file';
}

/** One member of an archive, as readArchive reports it. */
export interface ArchiveMember {
  /** Name as stored, without a leading './'. */
  name: string;
  type: 'file' | 'symlink' | 'link' | 'directory' | 'other';
  size: number;
  /** Target of a symlink or hard link. */
  linkname?: string;
}

/**
 * Read a tar archive member by member (streaming; see openArchiveFile for what is refused).
 * `onEntry` consumes each regular file's stream; whatever it leaves unread is drained here. A
 * malformed or truncated tar gives E_BAD_ARCHIVE; errors thrown by `onEntry` pass through.
 */
export async function readArchive(
  file: string,
  onEntry: (member: ArchiveMember, stream: Readable) => Promise<void>,
): Promise<void> {
  const { stream: source } = await openArchiveFile(file);
  const extract = tar.extract();
  let inCallback = false;
  let tarError: Error | undefined;
  // A tar error also surfaces inside onEntry (the entry stream it reads fails): remember it.
  let failed: Error | undefined;
  extract.on('error', (e: Error) => (failed ??= e));
  source.on('error', (e) => extract.destroy(e));
  source.pipe(extract);
  try {
    for await (const entry of extract) {
      const stream = entry as unknown as Readable;
      const h = entry.header;
      const type =
        h.type === 'file' || h.type === 'symlink' || h.type === 'link' || h.type === 'directory' ? h.type : 'other';
      inCallback = true;
      await onEntry(
        { name: h.name.replace(/^(\.\/)+/, ''), type, size: h.size ?? 0, linkname: h.linkname ?? undefined },
        stream,
      );
      inCallback = false;
      // tar-stream never ends the stream of a directory entry whose header claims a size: skip it.
      if (type === 'directory') continue;
      for await (const _ of stream) {
        // drain
      }
    }
  } catch (e) {
    if (!failed && (inCallback || e instanceof VlabError)) throw e;
    tarError = failed ?? (e as Error);
  } finally {
    source.destroy();
  }
  if (tarError)
    throw new VlabError('E_BAD_ARCHIVE', `${file} is not a readable tar archive: ${tarError.message}`, {
      cause: tarError,
    });
}
