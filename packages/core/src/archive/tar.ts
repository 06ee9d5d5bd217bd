import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import tar from 'tar-stream';
import { VlabError, type ErrorCode } from '@vlab/errors';
import { encodeHeader, padding, END_OF_ARCHIVE } from '@vlab/overlay';

/** A file in an image archive: inline bytes or a file streamed from disk. */
export type ArchiveEntry = { name: string; data: Buffer } | { name: string; file: string; size: number };

/** Write entries to a tar file, streaming file contents (no blob is held in memory). */
export async function writeArchive(dest: string, entries: ArchiveEntry[]): Promise<void> {
  const pack = tar.pack();
  const tmp = `${dest}.tmp-${process.pid}`;
  const done = pipeline(pack, fs.createWriteStream(tmp));
  const dirs = new Set<string>();
  for (const e of entries) {
    const parts = e.name.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        await new Promise<void>((res, rej) =>
          pack.entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: new Date(0) }, (err) =>
            err ? rej(err) : res(),
          ),
        );
      }
    }
    if ('data' in e) {
      await new Promise<void>((res, rej) =>
        pack.entry({ name: e.name, size: e.data.length, mode: 0o644, mtime: new Date(0) }, e.data, (err) =>
          err ? rej(err) : res(),
        ),
      );
    } else {
      const sink = pack.entry({ name: e.name, size: e.size, mode: 0o644, mtime: new Date(0) });
      await pipeline(fs.createReadStream(e.file), sink);
    }
  }
  pack.finalize();
  await done;
  await fsp.rename(tmp, dest);
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

/** One entry of a layer written straight from files (COPY's fast path). */
export interface PackEntry {
  /** Path inside the image, without a leading '/'. */
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  size?: number;
  /** Target of a symlink; for a hard link, the name of the entry it links to (packed before it). */
  linkname?: string;
  /** Host file whose bytes are the entry's content (type 'file'). */
  source?: string;
  /** Called with the sha256 (hex) of the bytes packed for `source`: hashing in the same read. */
  onContentHash?: (sha256hex: string) => void;
}

/** Files up to this size are read in one synchronous call; larger ones are streamed. */
const SMALL_FILE = 256 * 1024;
const OUT_CHUNK = 1 << 20;
const TAR_TYPE = { file: 'file', directory: 'dir', symlink: 'symlink', link: 'link' } as const;

/**
 * Write entries as an uncompressed layer tar to `out`, through overlay's header codec (the one
 * the snapshot diff writes: same names, PAX for ids and sizes ustar cannot hold), streaming big
 * files (back-pressure kept). Small files are read whole with one call each and the output is
 * written in 1 MiB chunks: for 20,000 small files, 512-byte writes cost more than the data.
 */
export async function packEntries(entries: Iterable<PackEntry>, out: import('node:stream').Writable): Promise<void> {
  await pipeline(Readable.from(packed(entries), { objectMode: false }), chunker(OUT_CHUNK), out);
}

async function* packed(entries: Iterable<PackEntry>): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const size = e.type === 'file' ? (e.size ?? 0) : 0;
    yield encodeHeader({
      name: e.type === 'directory' ? `${e.name}/` : e.name,
      type: TAR_TYPE[e.type],
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size,
      mtime: Math.floor(e.mtime.getTime() / 1000),
      linkname: e.linkname ?? '',
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
    });
    if (e.type !== 'file' || !e.source) continue;
    const changed = () => new Error(`${e.source} changed while it was being copied`);
    const hash = e.onContentHash ? createHash('sha256') : undefined;
    if (size > SMALL_FILE) {
      let n = 0;
      for await (const c of fs.createReadStream(e.source, { highWaterMark: 1 << 20 })) {
        const b = c as Buffer;
        n += b.length;
        if (n > size) throw changed();
        hash?.update(b);
        yield b;
      }
      if (n !== size) throw changed();
    } else {
      const body = fs.readFileSync(e.source);
      if (body.length !== size) throw changed();
      hash?.update(body);
      yield body;
    }
    if (hash) e.onContentHash!(hash.digest('hex'));
    if (padding(size)) yield Buffer.alloc(padding(size));
  }
  yield END_OF_ARCHIVE;
}
/** Re-chunk a stream into buffers of at least `size` bytes (fewer, larger writes). */
function chunker(size: number): import('node:stream').Transform {
  let parts: Buffer[] = [];
  let len = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      // Big chunks (a large file's data) pass through as they are: no copy.
      if (len === 0 && chunk.length >= size) return cb(null, chunk);
      parts.push(chunk);
      len += chunk.length;
      if (len >= size) {
        const buf = Buffer.concat(parts, len);
        parts = [];
        len = 0;
        cb(null, buf);
      } else cb();
    },
    flush(cb) {
      cb(null, len ? Buffer.concat(parts, len) : undefined);
    },
  });
}
