/**
 * Blobs written and verified, waiting for their names, made durable together (DESIGN.md: one
 * syncfs before the name): a pull of 200 small layers paid 200 fsyncs, each a journal commit,
 * where one syncfs of the store's filesystem does. `flush` syncs, then renames them all and
 * fsyncs the directory; a rename never comes before the data is on disk. Until then they are
 * temp files: a killed process leaves only `.tmp-<pid>-*` (leftovers.ts removes them). A flush
 * that fails (the syncfs, a rename) or is aborted removes every temp file it did not name at once:
 * nothing is named unless the syncfs succeeded, and no temp file waits for the next store open.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { syncFilesystem } from '@vlab/overlay';
import { storeWriteError } from './space.ts';

interface Pending {
  tmp: string;
  dest: string;
}

export class CommitBatch {
  private readonly pending: Pending[] = [];
  private closed = false;

  /** `root`: the store's, for the errors. */
  constructor(private readonly root: string) {}

  /** Name `tmp` as `dest` at the next flush; after `discard`, it is removed at once. */
  async add(tmp: string, dest: string): Promise<void> {
    if (this.closed) await fsp.rm(tmp, { force: true });
    else this.pending.push({ tmp, dest });
  }

  /**
   * Syncs the filesystem, then names every blob. Throws E_NO_SPACE or E_STORE (a failed syncfs or
   * rename), or E_ABORTED when `signal` fired before the names; the blobs not named are gone then.
   */
  async flush(signal?: AbortSignal): Promise<void> {
    const all = this.pending.splice(0);
    if (!all.length) return;
    let left = all;
    try {
      await syncFilesystem(all[0]!.tmp);
      if (signal?.aborted) throw new VlabError('E_ABORTED', 'aborted', { cause: signal.reason });
      // every rename is tried before a failure is reported: the temp files of those that failed go.
      // Synchronous: µs each in one directory, where 200 thread-pool trips contended for its lock
      let failed: unknown;
      left = all.filter((p) => {
        try {
          fs.renameSync(p.tmp, p.dest);
          return false;
        } catch (e) {
          failed ??= e;
          return true;
        }
      });
      if (failed) throw failed;
      for (const dir of new Set(all.map((p) => path.dirname(p.dest)))) {
        const fh = await fsp.open(dir, 'r');
        await fh.sync().finally(() => fh.close());
      }
    } catch (e) {
      await removeAll(left);
      throw storeWriteError(this.root, e);
    }
  }

  /** Drop every blob not yet named (a failed pull). */
  async discard(): Promise<void> {
    this.closed = true;
    await removeAll(this.pending.splice(0));
  }
}

const removeAll = (ps: Pending[]) => Promise.all(ps.map((p) => fsp.rm(p.tmp, { force: true })));
