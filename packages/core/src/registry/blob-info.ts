/**
 * What the store remembers of a layer's compressed forms (docker's v2metadata-by-diffid): for a
 * diff_id, the compressed blobs known to hold it (digest, media type, size) and the repositories
 * they were seen in. A push finds a blob the registry already has (HEAD, or a cross-repo mount)
 * without compressing again; a pull records what it fetched. Files under
 * `<root>/distribution/by-diffid/<hex>.json`, rewritten atomically under a lock. This names no
 * local blob, so gc ignores it; a stale entry only costs a HEAD that says "not there".
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { withFileLock } from '@vlab/overlay';
import { writeAtomic } from '../store/store.ts';
import { assertDigest } from '../store/blobs.ts';
import { storeWriteError } from '../store/space.ts';

export interface CompressedBlob {
  digest: string;
  mediaType: string;
  size: number;
  /** `domain/path` of repositories that hold it (most recent last). */
  repos: string[];
}

const MAX_ENTRIES = 8;
const MAX_REPOS = 16;

export class BlobInfo {
  private readonly dir: string;
  /** The directory, made once per instance (a pull adds 200 entries). */
  private made?: Promise<unknown>;
  constructor(private readonly storeRoot: string) {
    this.dir = path.join(storeRoot, 'distribution', 'by-diffid');
  }

  private file(diffId: string): string {
    assertDigest(diffId);
    return path.join(this.dir, `${diffId.slice(7)}.json`);
  }

  async get(diffId: string): Promise<CompressedBlob[]> {
    const file = this.file(diffId);
    if (!present(file)) return []; // the usual case in a pull: no read, no ENOENT error made
    try {
      return parse(await fsp.readFile(file, 'utf8'));
    } catch {
      return []; // damaged: as if never seen
    }
  }

  /**
   * Remember that `repo` holds `blob` for `diffId`. `seen`: what `get(diffId)` gave moments ago
   * (a push read them all at its start), to skip reading the file again.
   */
  async add(diffId: string, blob: Omit<CompressedBlob, 'repos'>, repo: string, seen?: CompressedBlob[]): Promise<void> {
    // already known, and this repo is its latest (a push that only verifies): nothing to write
    const known = (seen ?? (await this.get(diffId))).find((b) => b.digest === blob.digest);
    if (known?.repos[known.repos.length - 1] === repo) return;
    const file = this.file(diffId);
    try {
      try {
        await this.update(file, diffId, blob, repo);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        this.made = undefined; // the directory was removed meanwhile: made again, once
        await this.update(file, diffId, blob, repo);
      }
    } catch (e) {
      // a pull writes these while its layers still arrive: a full disk may surface here first
      throw storeWriteError(this.storeRoot, e);
    }
  }

  /**
   * `add` for a diff_id a pull just fetched (its entry most likely new): an entry not on disk yet
   * is created whole in one exclusive create, without the lock, temp file and rename of `add` (4
   * of a 200-layer pull's 6 metadata operations per layer, each a journal handle that waits while
   * other processes fsync). A reader that meets it half-written, or after a crash, takes it as
   * damaged, i.e. never seen (get), and the next `add` rewrites it. One that exists goes through
   * `add`.
   */
  async addNew(diffId: string, blob: Omit<CompressedBlob, 'repos'>, repo: string): Promise<void> {
    const file = this.file(diffId);
    if (present(file) || !(await this.create(file, JSON.stringify([{ ...blob, repos: [repo] }]))))
      await this.add(diffId, blob, repo);
  }

  /** `file` made with `text` in it; false when it exists (someone made it meanwhile). */
  private async create(file: string, text: string): Promise<boolean> {
    let fh: fsp.FileHandle;
    try {
      try {
        fh = await fsp.open(file, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        await fsp.mkdir(this.dir, { recursive: true }); // the first entry (or the directory was removed)
        fh = await fsp.open(file, 'wx');
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw storeWriteError(this.storeRoot, e);
    }
    try {
      await fh.writeFile(text);
    } catch (e) {
      await fsp.rm(file, { force: true }); // a full disk leaves no empty entry
      throw storeWriteError(this.storeRoot, e);
    } finally {
      await fh.close();
    }
    return true;
  }

  private async update(file: string, diffId: string, blob: Omit<CompressedBlob, 'repos'>, repo: string) {
    this.made ??= fsp.mkdir(this.dir, { recursive: true });
    await this.made;
    await withFileLock(`${file}.lock`, async () => {
      const list = await this.get(diffId);
      let entry = list.find((b) => b.digest === blob.digest);
      if (!entry) {
        entry = { ...blob, repos: [] };
        list.push(entry);
      }
      entry.repos = [...entry.repos.filter((r) => r !== repo), repo].slice(-MAX_REPOS);
      await writeAtomic(file, JSON.stringify(list.slice(-MAX_ENTRIES)));
    });
  }
}

/** Whether `file` exists (false on any error: as if never seen). */
function present(file: string): boolean {
  try {
    return fs.statSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

function parse(text: string): CompressedBlob[] {
  const v = JSON.parse(text) as unknown;
  return Array.isArray(v) ? (v as CompressedBlob[]).filter((b) => b && typeof b.digest === 'string') : [];
}
