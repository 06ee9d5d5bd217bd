/**
 * Blobs written and verified, waiting for their names, made durable together (DESIGN.md: one
 * syncfs before the name): a pull of 200 small layers paid 200 fsyncs, each a journal commit,
 * where one syncfs of the store's filesystem does. `flush` syncs, then renames them all and
 * fsyncs the directory; a rename never comes before the data is on disk. Until then they are
 * temp files: a killed process leaves only `.tmp-<pid>-*` (leftovers.ts removes them).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { syncFilesystem } from '@vlab/overlay';

export class CommitBatch {
  private readonly pending: { tmp: string; dest: string }[] = [];
  private closed = false;

  /** Name `tmp` as `dest` at the next flush; after `discard`, it is removed at once. */
  async add(tmp: string, dest: string): Promise<void> {
    if (this.closed) await fsp.rm(tmp, { force: true });
    else this.pending.push({ tmp, dest });
  }

  async flush(): Promise<void> {
    const all = this.pending.splice(0);
    if (!all.length) return;
    await syncFilesystem(all[0]!.tmp);
    await Promise.all(all.map((p) => fsp.rename(p.tmp, p.dest)));
    for (const dir of new Set(all.map((p) => path.dirname(p.dest)))) {
      const fh = await fsp.open(dir, 'r');
      await fh.sync().finally(() => fh.close());
    }
  }

  /** Drop every blob not yet named (a failed pull). */
  async discard(): Promise<void> {
    this.closed = true;
    await Promise.all(this.pending.splice(0).map((p) => fsp.rm(p.tmp, { force: true })));
  }
}
