/** The image tools of the API (`vbuild history`, `vbuild diff`, `vbuild rebase`): each opens the store, does one thing, returns data. */
import { VlabError } from '@vlab/errors';
import { Store, type StoredImage } from '../store/store.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import { imageHistory, type HistoryRow } from '../tools/history.ts';
import { diffImages, type Change } from '../tools/diff.ts';
import { rebaseImage } from '../tools/rebase.ts';
import { parseRef } from '../store/refs.ts';

export type { HistoryRow, Change };

export interface ToolOptions {
  /** Store root (default: $VLAB_ROOT, /var/lib/vlab as root, else $XDG_DATA_HOME/vlab). */
  root?: string;
}

async function withImages<T>(opts: ToolOptions, refs: string[], fn: (s: Store, imgs: StoredImage[]) => Promise<T>) {
  const store = await Store.open(opts.root ?? defaultStoreRoot());
  try {
    const imgs: StoredImage[] = [];
    for (const ref of refs) {
      const img = await store.resolve(ref);
      if (!img) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${ref || '(none given)'}`);
      if (!(await store.holdImage(img)))
        throw new VlabError('E_BLOB_MISSING', `a blob of image ${ref} is gone from the store: pull or build it again`);
      imgs.push(img);
    }
    return await fn(store, imgs);
  } finally {
    await store.lease.release().catch(() => undefined);
  }
}

/** `docker history IMAGE`: newest entry first. */
export function history(image: string, opts: ToolOptions = {}): Promise<HistoryRow[]> {
  return withImages(opts, [image], (s, [img]) => imageHistory(s, img!));
}

/** `vbuild diff IMAGE1 IMAGE2`: what differs from IMAGE1's tree to IMAGE2's (A, C, D), sorted by path. */
export function imageDiff(image1: string, image2: string, opts: ToolOptions = {}): Promise<Change[]> {
  return withImages(opts, [image1, image2], (s, [a, b]) => diffImages(s, a!, b!));
}

export interface RebaseOptions extends ToolOptions {
  /** The base IMAGE was built on (its lowest layers). */
  from: string;
  /** The base to put under IMAGE's own layers instead. */
  to: string;
  /** Name for the result; default: IMAGE itself when it is a name (not a digest). */
  tag?: string;
}

/**
 * `vbuild rebase IMAGE --from OLD --to NEW [-t NAME]` (crane rebase): IMAGE's own layers on NEW
 * instead of OLD, nothing rebuilt. E_REBASE_MISMATCH when IMAGE is not built on OLD.
 */
export function rebase(
  image: string,
  opts: RebaseOptions,
): Promise<{ imageId: string; digest: string; replaced: number; kept: number }> {
  return withImages(opts, [image, opts.from, opts.to], async (s, [img, from, to]) => {
    const r = await rebaseImage(s, img!, from!, to!, { image, from: opts.from, to: opts.to });
    const ref = parseRef(image);
    const name = opts.tag ?? (ref.digest && !ref.tag ? undefined : image);
    if (name) await s.tag(name, r.image.manifestDigest);
    return { imageId: r.image.configDigest, digest: r.image.manifestDigest, replaced: r.replaced, kept: r.kept };
  });
}
