import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';

interface Entry {
  size: number;
  mtimeNs: string;
  ino: number;
  hash: string;
}

/**
 * Content hashes of context files, remembered by (path, size, mtime, inode) so an unchanged
 * context is never read again. Persisted as one JSON file per store; rewritten atomically.
 */
export class FileHashCache {
  private entries = new Map<string, Entry>();
  private dirty = false;
  hits = 0;
  misses = 0;

  constructor(private readonly file?: string) {}

  static async load(file: string): Promise<FileHashCache> {
    const c = new FileHashCache(file);
    const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
    if (text) {
      try {
        c.entries = new Map(Object.entries(JSON.parse(text) as Record<string, Entry>));
      } catch {
        // A corrupt cache only costs re-hashing.
      }
    }
    return c;
  }

  async hash(absPath: string, st: fs.BigIntStats): Promise<string> {
    const prev = this.entries.get(absPath);
    const mtimeNs = st.mtimeNs.toString();
    if (prev && prev.size === Number(st.size) && prev.mtimeNs === mtimeNs && prev.ino === Number(st.ino)) {
      this.hits++;
      return prev.hash;
    }
    this.misses++;
    const h = createHash('sha256');
    await pipeline(
      fs.createReadStream(absPath),
      new Writable({
        write(chunk, _e, cb) {
          h.update(chunk);
          cb();
        },
      }),
    );
    const hash = h.digest('hex');
    this.entries.set(absPath, { size: Number(st.size), mtimeNs, ino: Number(st.ino), hash });
    this.dirty = true;
    return hash;
  }

  async save(): Promise<void> {
    if (!this.dirty || !this.file) return;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    await fsp.writeFile(tmp, JSON.stringify(Object.fromEntries(this.entries)));
    await fsp.rename(tmp, this.file);
    this.dirty = false;
  }
}
