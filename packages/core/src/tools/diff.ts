/**
 * `vbuild diff IMAGE1 IMAGE2`: the paths whose entries differ between the two images' trees, as
 * `docker diff` marks them: A (only in IMAGE2), D (only in IMAGE1), C (in both, with another type,
 * mode, owner, size, mtime, link target, device or content: a directory whose content changed has
 * a new mtime, so it is C, as in docker diff). Read from the layer tars (gzip ones stream-decompressed)
 * through overlay's UnionView (its whiteout rules), without mounting or unpacking; a directory added or removed is
 * listed with everything under it.
 */
import { sameContent, UnionView, type UnionStat } from '@vlab/overlay';
import type { Store, StoredImage } from '../store/store.ts';
import { layerSource } from './common.ts';

export type ChangeKind = 'A' | 'C' | 'D';

export interface Change {
  kind: ChangeKind;
  /** Absolute path in the image. */
  path: string;
  /** f, d, l, c, b, p: of IMAGE2's entry (IMAGE1's for D). */
  type: string;
  /** Permission bits (with setuid, setgid, sticky), of IMAGE2's entry (IMAGE1's for D). */
  mode: number;
  /** File size in bytes (0 for non-files). */
  size: number;
}

/** Gzip layers are stream-decompressed (once to index them, again for a file whose bytes must be compared). */
function unionOf(store: Store, img: StoredImage): UnionView {
  return new UnionView(img.manifest.layers.map((l) => layerSource(store, img, l)));
}

const typeOf = (s: UnionStat) =>
  s.isDirectory()
    ? 'd'
    : s.isSymbolicLink()
      ? 'l'
      : s.isCharacterDevice()
        ? 'c'
        : s.isBlockDevice()
          ? 'b'
          : s.isFIFO()
            ? 'p'
            : 'f';

/** Content of `rel` in `u`, opened when first read. */
async function* chunksOf(u: UnionView, rel: string): AsyncIterable<Buffer> {
  yield* await u.stream(rel);
}

/**
 * Regular file `rel` holds the same bytes in both views: the same entry of the same layer does;
 * else overlay's rule (layer tars keep whole-second mtimes, so equal-sized files are read).
 */
async function sameFile(ua: UnionView, ub: UnionView, rel: string, sa: UnionStat, sb: UnionStat): Promise<boolean> {
  const [oa, ob] = await Promise.all([ua.origin(rel), ub.origin(rel)]);
  if (oa !== undefined && oa === ob) return true;
  return sameContent(sa, sb, () => [chunksOf(ua, rel), chunksOf(ub, rel)]);
}

async function stat(u: UnionView, rel: string): Promise<UnionStat | undefined> {
  return u.stat(rel).catch(() => undefined);
}

export async function diffImages(store: Store, a: StoredImage, b: StoredImage): Promise<Change[]> {
  const ua = unionOf(store, a);
  const ub = unionOf(store, b);
  const out: Change[] = [];
  const push = (kind: ChangeKind, rel: string, s: UnionStat) =>
    out.push({ kind, path: `/${rel}`, type: typeOf(s), mode: s.mode & 0o7777, size: s.isFile() ? s.size : 0 });
  /** Everything under dir `rel` of `u`, as `kind`. */
  const all = async (u: UnionView, rel: string, kind: ChangeKind): Promise<void> => {
    for (const n of await u.readdir(rel)) {
      const r = `${rel}/${n}`.replace(/^\//, '');
      const s = (await stat(u, r))!;
      push(kind, r, s);
      if (s.isDirectory()) await all(u, r, kind);
    }
  };
  const walk = async (rel: string): Promise<void> => {
    const names = new Set([...(await ua.readdir(rel)), ...(await ub.readdir(rel))]);
    for (const n of [...names].sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const [sa, sb] = await Promise.all([stat(ua, r), stat(ub, r)]);
      if (!sa) {
        push('A', r, sb!);
        if (sb!.isDirectory()) await all(ub, r, 'A');
        continue;
      }
      if (!sb) {
        push('D', r, sa);
        if (sa.isDirectory()) await all(ua, r, 'D');
        continue;
      }
      const ta = typeOf(sa);
      const tb = typeOf(sb);
      const changed =
        ta !== tb ||
        sa.mode !== sb.mode ||
        sa.uid !== sb.uid ||
        sa.gid !== sb.gid ||
        sa.rdev !== sb.rdev ||
        (ta === 'f' && sa.size !== sb.size) ||
        Math.floor(sa.mtimeMs / 1000) !== Math.floor(sb.mtimeMs / 1000) ||
        (ta === 'l' && (await ua.readlink(r)) !== (await ub.readlink(r))) ||
        (ta === 'f' && !(await sameFile(ua, ub, r, sa, sb)));
      if (changed) push('C', r, sb);
      if (ta === 'd' && tb === 'd') await walk(r);
      else if (ta === 'd') await all(ua, r, 'D');
      else if (tb === 'd') await all(ub, r, 'A');
    }
  };
  await walk('');
  return out;
}
