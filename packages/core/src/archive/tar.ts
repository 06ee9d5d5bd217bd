import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import tar from 'tar-stream';
import { VlabError } from '@vlab/errors';

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
        await new Promise<void>((res, rej) => pack.entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: new Date(0) }, (err) => (err ? rej(err) : res())));
      }
    }
    if ('data' in e) {
      await new Promise<void>((res, rej) => pack.entry({ name: e.name, size: e.data.length, mode: 0o644, mtime: new Date(0) }, e.data, (err) => (err ? rej(err) : res())));
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
export async function openArchiveFile(file: string, missingCode = 'E_IMAGE_NOT_FOUND'): Promise<{ stream: Readable; size: number }> {
  const fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY).catch((e: NodeJS.ErrnoException) => {
    throw new VlabError(e.code === 'ENOENT' ? missingCode : 'E_BAD_ARCHIVE', `cannot open ${file}: ${e.message}`, { cause: e });
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
export async function readArchive(file: string, onEntry: (member: ArchiveMember, stream: Readable) => Promise<void>): Promise<void> {
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
      const type = h.type === 'file' || h.type === 'symlink' || h.type === 'link' || h.type === 'directory' ? h.type : 'other';
      inCallback = true;
      await onEntry({ name: h.name.replace(/^(\.\/)+/, ''), type, size: h.size ?? 0, linkname: h.linkname ?? undefined }, stream);
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
  if (tarError) throw new VlabError('E_BAD_ARCHIVE', `${file} is not a readable tar archive: ${tarError.message}`, { cause: tarError });
}

/** One entry of a layer written straight from files (COPY's fast path). */
export interface PackEntry {
  /** Path inside the image, without a leading '/'. */
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  size?: number;
  linkname?: string;
  /** Host file whose bytes are the entry's content (type 'file'). */
  source?: string;
  /** Called with the sha256 (hex) of the bytes packed for `source`: hashing in the same read. */
  onContentHash?: (sha256hex: string) => void;
}

/** Files up to this size are read in one synchronous call; larger ones are streamed. */
const SMALL_FILE = 256 * 1024;
const OUT_CHUNK = 1 << 20;

/**
 * Write entries as an uncompressed tar to `out`, streaming big files (back-pressure kept). Small
 * files are read whole with one call each and the output is written in 1 MiB chunks: for 20,000
 * small files, per-entry streams and 512-byte writes cost more than the data.
 */
export async function packEntries(entries: Iterable<PackEntry>, out: import('node:stream').Writable): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, chunker(OUT_CHUNK), out);
  done.catch(() => undefined); // awaited below; an entry may fail first (e.g. the disk is full)
  let n = 0;
  for (const e of entries) {
    const header = { name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, size: e.type === 'file' ? e.size : 0, linkname: e.linkname };
    if (e.type === 'file' && e.source && (e.size ?? 0) > SMALL_FILE) {
      const read = fs.createReadStream(e.source, { highWaterMark: 1 << 20 });
      if (e.onContentHash) {
        const h = createHash('sha256');
        read.on('data', (c) => h.update(c));
        await pipeline(read, pack.entry(header));
        e.onContentHash(h.digest('hex'));
      } else await pipeline(read, pack.entry(header));
      continue;
    }
    const body = e.type === 'file' && e.source ? fs.readFileSync(e.source) : undefined;
    if (body && body.length !== e.size) throw new Error(`${e.source} changed while it was being copied`);
    if (body && e.onContentHash) e.onContentHash(createHash('sha256').update(body).digest('hex'));
    // The callback fires once the entry is flushed: waiting on every 64th keeps memory bounded.
    const flushed = new Promise<void>((res, rej) => {
      const cb = (err?: Error | null) => (err ? rej(err) : res());
      if (body) pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
    if (++n % 64 === 0) await flushed;
    else flushed.catch(() => undefined);
  }
  pack.finalize();
  await done;
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
