/**
 * One COPY plan entry: what a source item becomes in the layer (its metadata after --chown,
 * --chmod and the owner rule), and the layer order entries are sorted in.
 */
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { readlinkInRoot, readlinkWalked } from '@vlab/overlay';
import type { CopyItem, Owner } from '../ops/copy.ts';
import type { StatLike } from '../../context/walk.ts';

export interface PlanEntry {
  /** Path in the image, without a leading '/'. */
  path: string;
  type: 'dir' | 'file' | 'symlink' | 'link';
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds, as the tree has it (a layer clamps it to SOURCE_DATE_EPOCH). */
  mtime: number;
  size: number;
  /** Host file holding a file's bytes. */
  source?: string;
  /** Its lstat at the walk: the read opens that very file (open-same.ts in @vlab/overlay). */
  srcStat?: StatLike;
  /** A symlink's target; for a hard link, the path of the entry it links to (earlier in the plan). */
  linkname: string;
  /** A directory replacing a non-directory of the image: overlay marks it opaque, the layer says so. */
  opaque: boolean;
  /** A directory the image has with this very metadata and nothing new below: no layer entry. */
  unchanged: boolean;
}

export interface Draft extends PlanEntry {
  /** From a source (else a parent dir the COPY needs: kept as the image has it, or created). */
  item: boolean;
  inode?: string;
}

export const ROOT: Owner = { uid: 0, gid: 0 };
export const seconds = (st: { mtimeMs: number }) => Math.floor(st.mtimeMs / 1000);
export const parentOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');

/**
 * Layer order without a key buffer per entry: the bytes of UTF-8 `p` with '/' as the lowest byte
 * (depth first, names by bytes). UTF-16 code units sort as UTF-8 bytes except a surrogate (a
 * character above U+FFFF) against U+E000–U+FFFF, where the surrogate is the larger.
 */
export function layerOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 47) return -1;
    if (y === 47) return 1;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    return sx === sy ? x - y : sx ? 1 : -1;
  }
  return a.length - b.length;
}

/** What identifies a file's hard links among each other. */
export const inodeKey = (st: StatLike) => `${st.dev}:${st.ino}`;

function specialKind(st: StatLike): string {
  if (st.isFIFO()) return 'a fifo';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'a special file';
}

/**
 * One source item as the entry it becomes at `target` ('/'-rooted): --chmod over its mode,
 * --chown (else its own owner with `keepOwners`, else 0:0), its mtime. Fifos, sockets and devices
 * are refused (opening a FIFO blocks; a device reads endless or empty): E_COPY_SOURCE.
 */
export function entryOfItem(
  item: CopyItem,
  target: string,
  o: { owner?: Owner; chmod?: number; keepOwners?: boolean } = {},
): Draft {
  const st = item.stats;
  const owner = o.owner ?? (o.keepOwners ? st : ROOT);
  // One object per entry, all of one shape (a COPY of 200,000 files makes 200,000 of them).
  const d: Draft = {
    path: target.slice(1),
    type: 'file',
    mode: o.chmod ?? st.mode & 0o7777,
    uid: owner.uid,
    gid: owner.gid,
    mtime: seconds(st),
    size: 0,
    source: undefined,
    srcStat: undefined,
    linkname: '',
    opaque: false,
    unchanged: false,
    item: true,
    inode: undefined,
  };
  if (st.isDirectory()) d.type = 'dir';
  else if (st.isSymbolicLink()) {
    d.type = 'symlink';
    d.mode = 0o777;
    const name = item.rel || target.slice(1);
    // a context's link through its parent opened in the context: never a host link swapped in on the way
    d.linkname = item.root
      ? readlinkInRoot(item.root, item.src.slice(item.root === '/' ? 1 : item.root.length + 1), name)
      : readlinkWalked(item.src, name);
  } else if (st.isFile()) {
    d.size = st.size;
    d.source = item.src;
    d.srcStat = st;
    if (st.nlink > 1) d.inode = inodeKey(st);
  } else
    throw new VlabError(
      'E_COPY_SOURCE',
      `${specialKind(st)} ${item.rel || path.posix.basename(target)}: COPY of fifos, sockets and device nodes is not supported`,
    );
  return d;
}
