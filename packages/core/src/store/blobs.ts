import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import type { Lease } from './lease.ts';
import type { CommitBatch } from './batch.ts';
import { asNoSpace, storeWriteError } from './space.ts';
import { WRITEBACK_BYTES, Writeback } from './writeback.ts';
import { dropFlushed } from './page-cache.ts';
import type { BlobWriter, Blobs, Digest, FileBlobWriter, SyncBlobWriter } from './types.ts';

export type { Digest };

export function sha256(data: string | Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Temp names: random once per process, then a counter (randomBytes per blob was 3 % of a 200-layer pull). */
const tempPrefix = randomBytes(6).toString('hex');
let tempCount = 0;

export function assertDigest(d: string): asserts d is Digest {
  if (!DIGEST_RE.test(d)) throw new VlabError('E_BAD_DIGEST', `not a sha256 digest: ${d}`);
}

/**
 * Content-addressed blobs under `<root>/blobs/sha256/<hex>`. Writes go to a temp file in the same
 * directory, are hashed while streaming, fsynced and renamed into place: a reader never sees half
 * a blob, and a killed writer leaves only a `.tmp-<pid>-*` file that the next store open removes
 * (leftovers.ts).
 */

export class BlobStore implements Blobs {
  readonly dir: string;
  private readonly root: string;
  /** With a lease, every blob written or found by putBytes is held by it (see lease.ts). */
  constructor(
    root: string,
    private readonly lease?: Lease,
  ) {
    this.root = root;
    this.dir = path.join(root, 'blobs', 'sha256');
  }

  path(digest: string): string {
    assertDigest(digest);
    return path.join(this.dir, digest.slice('sha256:'.length));
  }

  async has(digest: string): Promise<boolean> {
    const file = this.path(digest);
    // a µs lookup, without the thread-pool trip and the ENOENT error object a missing blob made (a
    // pull of 200 layers asks 400 times)
    try {
      return fs.statSync(file, { throwIfNoEntry: false }) !== undefined;
    } catch {
      return false;
    }
  }

  async size(digest: string): Promise<number> {
    const file = this.path(digest);
    try {
      return (await fsp.stat(file)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      throw new VlabError('E_BLOB_MISSING', `blob ${digest} is not in the store`, { cause: e });
    }
  }

  async readJson<T>(digest: string): Promise<T> {
    const file = this.path(digest); // a bad digest is E_BAD_DIGEST, not a missing blob
    try {
      return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
    } catch (e) {
      throw new VlabError('E_BLOB_MISSING', `blob ${digest} is missing or unreadable`, { cause: e });
    }
  }

  open(digest: string): Readable {
    return fs.createReadStream(this.path(digest));
  }

  /** Write bytes; returns their digest. Idempotent for identical content. */
  async putBytes(data: Buffer | string): Promise<{ digest: Digest; size: number }> {
    const buf = Buffer.from(data);
    const digest = sha256(buf);
    await this.lease?.hold({ blobs: [digest] });
    // Already stored (a cached rebuild re-writes the same config and manifest): skip the fsync.
    if (await this.has(digest)) return { digest, size: buf.length };
    return this.put(Readable.from([buf]));
  }

  async putJson(value: unknown): Promise<{ digest: Digest; size: number; bytes: Buffer }> {
    const bytes = Buffer.from(JSON.stringify(value));
    const r = await this.putBytes(bytes);
    return { ...r, bytes };
  }

  /**
   * Stream `source` into the store. When `expected` is given the digest must match, else the temp
   * file is dropped and E_DIGEST_MISMATCH thrown.
   */
  async put(source: Readable, expected?: string): Promise<{ digest: Digest; size: number }> {
    const blob = await this.create();
    try {
      await pipeline(source, blob.stream);
    } catch (e) {
      await blob.abort();
      throw e; // the file's own errors are named by hashingWriter; the source's stay as they are
    }
    return blob.commit(expected);
  }

  /** A writable temp blob: write to `stream`, then `commit()` (verifies, renames) or `abort()`. */
  async create(): Promise<BlobWriter> {
    const tmp = await this.tempPath();
    const { write, result, closed } = this.hashingWriter(tmp, this.root);
    const finished = new Promise<void>((resolve, reject) => {
      write.on('finish', () => resolve());
      write.on('error', reject);
    });
    finished.catch(() => undefined); // awaited by commit(); after abort() nobody does (e.g. ENOSPC)
    return {
      stream: write,
      commit: async (expected?: string, batch?: CommitBatch) => {
        let kept = false;
        try {
          await finished;
          const { digest, size } = result();
          kept = await this.seal(tmp, digest, expected, batch);
          return { digest, size };
        } finally {
          if (!kept) {
            if (!write.writableFinished) await closed; // a failed write: its fd goes first
            await fsp.rm(tmp, { force: true });
          }
        }
      },
      abort: async () => {
        write.destroy();
        // The file may still be opening: remove it only once its stream has closed, or the open
        // could land after the rm and leave a temp file behind.
        await closed;
        await fsp.rm(tmp, { force: true });
      },
    };
  }

  /** `create`'s contract with synchronous writes (types.ts: SyncBlobWriter); flushed as it grows as well. */
  async createSync(): Promise<SyncBlobWriter> {
    const tmp = this.tempName();
    let fd: number;
    try {
      try {
        fd = fs.openSync(tmp, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        await fsp.mkdir(this.dir, { recursive: true }); // the first blob: its directory is made then
        fd = fs.openSync(tmp, 'wx');
      }
    } catch (e) {
      throw storeWriteError(this.root, e);
    }
    const hash = createHash('sha256');
    let size = 0;
    const wb = new Writeback(fs.fdatasync, WRITEBACK_BYTES, dropFlushed);
    let open = true;
    /** Closes the fd once no fdatasync still runs on it; a flush's error. */
    const close = async () => {
      if (!open) return undefined;
      open = false;
      const flushed = await wb.settled();
      fs.closeSync(fd);
      return flushed;
    };
    return {
      write: (bytes) => {
        try {
          for (let off = 0; off < bytes.length;) off += fs.writeSync(fd, bytes, off, bytes.length - off);
          hash.update(bytes);
          size += bytes.length;
          wb.grew(fd, size); // throws an earlier flush's error
        } catch (e) {
          throw storeWriteError(this.root, e);
        }
      },
      commit: async (expected?: string, batch?: CommitBatch) => {
        let kept = false;
        try {
          const flushed = await close();
          if (flushed) throw storeWriteError(this.root, flushed);
          const digest: Digest = `sha256:${hash.digest('hex')}`;
          kept = await this.seal(tmp, digest, expected, batch);
          return { digest, size };
        } finally {
          if (!kept) await fsp.rm(tmp, { force: true });
        }
      },
      abort: async () => {
        await close();
        await fsp.rm(tmp, { force: true });
      },
    };
  }

  /** A temp file for a writer on another thread (types.ts: FileBlobWriter); named as the digest it reports. */
  async createFile(): Promise<FileBlobWriter> {
    const tmp = await this.tempPath();
    return {
      path: tmp,
      commit: async (digest: string, expected?: string, batch?: CommitBatch) => {
        let kept = false;
        try {
          assertDigest(digest);
          const size = await fsp.stat(tmp).then(
            (st) => st.size,
            (e: unknown) => {
              throw new VlabError('E_BLOB_MISSING', `temp blob ${tmp} was not written`, { cause: e });
            },
          );
          kept = await this.seal(tmp, digest, expected, batch);
          return { digest, size };
        } finally {
          if (!kept) await fsp.rm(tmp, { force: true });
        }
      },
      abort: async (cause?: unknown) => {
        await fsp.rm(tmp, { force: true });
        return cause === undefined ? undefined : asNoSpace(this.root, cause);
      },
    };
  }

  async remove(digest: string): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  async list(): Promise<Digest[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}` as Digest);
  }

  /**
   * A written temp blob gets its name: the digest checked, held (gc never sees it unheld), fsynced
   * and renamed; or, with `batch`, left for its flush (true: the temp file is the batch's now).
   */
  private async seal(tmp: string, digest: Digest, expected?: string, batch?: CommitBatch): Promise<boolean> {
    if (expected && expected !== digest) {
      throw new VlabError('E_DIGEST_MISMATCH', `content digest ${digest} does not match expected ${expected}`);
    }
    await this.lease?.hold({ blobs: [digest] });
    if (batch) {
      await batch.add(tmp, this.path(digest));
      return true;
    }
    await this.commitTemp(tmp, digest).catch((e: unknown) => {
      throw storeWriteError(this.root, e); // the fsync or the rename: EIO is E_STORE, not an internal error
    });
    return false;
  }

  private async tempPath(): Promise<string> {
    await fsp.mkdir(this.dir, { recursive: true });
    return this.tempName();
  }

  private tempName(): string {
    return path.join(this.dir, `.tmp-${process.pid}-${tempPrefix}${(tempCount++).toString(36)}`);
  }

  private hashingWriter(
    tmp: string,
    root: string,
  ): {
    write: Writable;
    closed: Promise<void>;
    result: () => { digest: Digest; size: number };
  } {
    const hash = createHash('sha256');
    let size = 0;
    // a big blob is flushed to disk as it grows (writeback.ts)
    const wb = new Writeback(fs.fdatasync, WRITEBACK_BYTES, dropFlushed);
    // On every path (finish, a write error, destroy) the fd closes only once no fdatasync runs or
    // waits on it: one running holds the file (its disk stays busy), a queued one would flush
    // whatever file next gets the fd's number.
    const closeAfterFlush = (fd: number, cb: (e: NodeJS.ErrnoException | null) => void) =>
      void wb.settled().then(() => fs.close(fd, cb));
    const file = fs.createWriteStream(tmp, {
      flags: 'wx',
      fs: { open: fs.open, write: fs.write, writev: fs.writev, close: closeAfterFlush },
    });
    const writeback = () => {
      const fd = (file as unknown as { fd: number | null }).fd; // set once the file is open
      if (typeof fd === 'number') wb.grew(fd, size);
    };
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        try {
          writeback(); // throws an earlier flush's error
        } catch (e) {
          return cb(storeWriteError(root, e));
        }
        cb(null, chunk);
      },
    });
    tap.pipe(file);
    tap.on('error', (e) => write.destroy(e));
    // The writer finishes when the file is flushed, not when the tap is.
    const write = new Writable({
      write(chunk, enc, cb) {
        if (!tap.write(chunk, enc)) tap.once('drain', cb);
        else cb();
      },
      final(cb) {
        // No early fdatasync may still be running on the fd when the stream closes it; a failed
        // one fails the blob.
        void wb.settled().then((flushed) => {
          if (flushed) return cb(storeWriteError(root, flushed));
          file.once('close', () => cb());
          file.once('error', () => cb(failure));
          tap.end();
        });
      },
      destroy(err, cb) {
        tap.destroy();
        file.destroy();
        cb(err);
      },
    });
    // The one place the file's errors are named (open, write, close): ENOSPC/EDQUOT is E_NO_SPACE,
    // anything else E_STORE. Registered first, so `failure` is set for final()'s listener too.
    let failure: VlabError | undefined;
    file.on('error', (e) => write.destroy((failure ??= storeWriteError(root, e))));
    const closed = new Promise<void>((res) => file.once('close', () => res()));
    let digest: Digest | undefined;
    return {
      write,
      closed,
      result: () => {
        digest ??= `sha256:${hash.digest('hex')}`;
        return { digest, size };
      },
    };
  }

  /** Only the fsync waits for the disk (thread pool); the open, close and rename are µs: synchronous. */
  private async commitTemp(tmp: string, digest: Digest): Promise<void> {
    const fd = fs.openSync(tmp, 'r');
    try {
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
    } finally {
      fs.closeSync(fd); // also when the fsync fails: an fd left open holds the filesystem busy
    }
    fs.renameSync(tmp, this.path(digest));
  }
}
