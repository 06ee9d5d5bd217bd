/**
 * Native driver, for machines without overlayfs: an active snapshot is a full copy of its parent
 * (`cp -a --reflink=auto`: reflinks where the filesystem has them, independent copies otherwise,
 * never hard links into the parent), deletions are real deletions, and diff compares trees.
 */
import { promises as fs } from 'node:fs';
import { VlabError } from '@vlab/errors';
import type { Mount, SnapshotKind, WhiteoutMode, DiffSourceInfo } from './types.ts';
import { BaseSnapshotter } from './base.ts';
import { run } from './sys.ts';

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
    return { kind: 'compare', dir: this.fsDir(r.id), base };
  }
}
