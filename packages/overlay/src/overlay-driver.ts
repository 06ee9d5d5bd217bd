/**
 * Overlay driver (containerd's layout): `snapshots/<id>/fs` is the upper dir of an active snapshot
 * and, once committed, a lowerdir for its children; `snapshots/<id>/work` is overlay's work dir.
 * Mount data is returned with absolute paths; mount.ts shortens deep stacks to fit one page.
 */
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Mount, SnapshotKind, WhiteoutMode, DiffSourceInfo } from './types.ts';
import { BaseSnapshotter } from './base.ts';
import type { MetaStore } from './store.ts';

export interface OverlayOptions {
  /** Mount with `userxattr` (rootless, kernel ≥ 5.11): overlay metadata in user.overlay.* */
  userxattr?: boolean;
}

/** Options every overlay mount of ours carries. */
export function overlayBaseOptions(userxattr: boolean): string[] {
  const o: string[] = [];
  const param = (n: string) => `/sys/module/overlay/parameters/${n}`;
  if (existsSync(param('index'))) o.push('index=off'); // as containerd: no inode index
  if (userxattr) o.push('userxattr');
  return o;
}

export class OverlaySnapshotter extends BaseSnapshotter {
  readonly driver = 'overlay' as const;
  readonly userxattr: boolean;
  constructor(store: MetaStore, opts: OverlayOptions = {}) {
    super(store);
    this.userxattr = !!opts.userxattr;
  }

  protected async createDirs(id: string, kind: SnapshotKind): Promise<void> {
    const d = this.store.dirOf(id);
    mkdirSync(path.join(d, 'fs'), { mode: 0o755 });
    if (kind === 'active') mkdirSync(path.join(d, 'work'), { mode: 0o700 });
  }

  protected mountsOf(id: string, kind: SnapshotKind, parentIds: string[]): Mount[] {
    const own = this.fsDir(id);
    if (kind === 'view') {
      if (parentIds.length === 0) return [{ type: 'bind', source: own, options: ['ro', 'rbind'] }];
      if (parentIds.length === 1) return [{ type: 'bind', source: this.fsDir(parentIds[0]), options: ['ro', 'rbind'] }];
      return [
        {
          type: 'overlay',
          source: 'overlay',
          options: [...overlayBaseOptions(this.userxattr), `lowerdir=${parentIds.map((p) => this.fsDir(p)).join(':')}`],
        },
      ];
    }
    if (parentIds.length === 0) return [{ type: 'bind', source: own, options: ['rw', 'rbind'] }];
    return [
      {
        type: 'overlay',
        source: 'overlay',
        options: [
          ...overlayBaseOptions(this.userxattr),
          `workdir=${path.join(this.store.dirOf(id), 'work')}`,
          `upperdir=${own}`,
          `lowerdir=${parentIds.map((p) => this.fsDir(p)).join(':')}`,
        ],
      },
    ];
  }

  async writableDir(key: string): Promise<{ dir: string; whiteouts: WhiteoutMode }> {
    const r = await this.activeRecord(key, 'write to');
    return { dir: this.fsDir(r.id), whiteouts: 'overlay' };
  }

  async diffSource(key: string): Promise<DiffSourceInfo> {
    const r = await this.activeRecord(key, 'diff');
    return {
      kind: 'upper',
      upper: this.fsDir(r.id),
      lowers: this.parentIds(r.parent).map((p) => this.fsDir(p)),
      lowersKey: this.store.dirIdentity(),
    };
  }

  /** Opaque-dir xattr this driver's mounts understand. */
  get opaqueXattr(): string {
    return this.userxattr ? 'user.overlay.opaque' : 'trusted.overlay.opaque';
  }
}
