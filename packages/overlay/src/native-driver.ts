/**
 * Native driver, for machines without overlayfs: an active snapshot is a full copy of its parent
 * (`cp -a --reflink=auto`: reflinks where the filesystem has them, independent copies otherwise,
 * never hard links into the parent), deletions are real deletions, and diff compares trees.
 * Once the copy is done a marker file is made beside the tree: a file whose ctime is before the
 * marker's is still the copy, so diff need not read its bytes (same-content.ts).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Mount, SnapshotKind, WhiteoutMode, DiffSourceInfo } from './types.ts';
import { BaseSnapshotter } from './base.ts';
import { run } from './sys.ts';

/** In the snapshot's own dir (not its tree): made after the copy, its ctime is the copy's end. */
const COPIED = 'copied';

export class NativeSnapshotter extends BaseSnapshotter {
  readonly driver = 'native' as const;

  protected async createDirs(id: string, kind: SnapshotKind, parentIds: string[]): Promise<void> {
    const dst = this.fsDir(id);
    if (kind === 'view' || parentIds.length === 0) {
      await fs.mkdir(dst, { mode: 0o755 });
      return;
    }
    const src = this.fsDir(parentIds[0]);
    const r = await run('cp', ['-a', '--reflink=auto', '--', src, dst]);
    if (r.code !== 0) throw new VlabError('E_SNAPSHOT_COPY', `copying ${src} failed: ${r.stderr.trim()}`);
    // after cp has exited: every ctime the copy set is at or before this one
    const m = this.copiedMarker(id);
    await fs.writeFile(m, '', { flag: 'wx', mode: 0o600 });
    // Not needed to be sound, only to be of use: a file in the marker's own coarse tick is read
    // (same-content.ts), so a copy made within one tick would be read whole. cp -a sets the root
    // dir's times last: move the marker past them (a ctime asked for gets a fine-grained next one
    // on multigrain filesystems; elsewhere the tick ends within ms).
    const end = (await fs.lstat(dst)).ctimeMs;
    for (let i = 0; i < 20 && (await fs.lstat(m)).ctimeMs <= end; i++) {
      await new Promise((r) => setTimeout(r, 1));
      await fs.chmod(m, 0o600);
    }
  }

  private copiedMarker(id: string): string {
    return path.join(this.store.dirOf(id), COPIED);
  }

  /** The copy marker's ctime (ms); none for a snapshot made before markers were (bytes rule then). */
  private async copiedAt(id: string): Promise<number | undefined> {
    try {
      return (await fs.lstat(this.copiedMarker(id))).ctimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  protected mountsOf(id: string, kind: SnapshotKind, parentIds: string[]): Mount[] {
    if (kind === 'view') {
      const src = parentIds.length ? this.fsDir(parentIds[0]) : this.fsDir(id);
      return [{ type: 'bind', source: src, options: ['ro', 'rbind'] }];
    }
    return [{ type: 'bind', source: this.fsDir(id), options: ['rw', 'rbind'] }];
  }

  async writableDir(key: string): Promise<{ dir: string; whiteouts: WhiteoutMode }> {
    const r = await this.activeRecord(key, 'write to');
    return { dir: this.fsDir(r.id), whiteouts: 'oci' };
  }

  async diffSource(key: string): Promise<DiffSourceInfo> {
    const r = await this.activeRecord(key, 'diff');
    const base = r.parent ? this.fsDir(this.need(r.parent).id) : undefined;
    return { kind: 'compare', dir: this.fsDir(r.id), base, copiedAt: base ? await this.copiedAt(r.id) : undefined };
  }
}
