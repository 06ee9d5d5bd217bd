/** The image tools of the API (`vbuild history`, `vbuild diff`): each opens the store, reads, returns data. */
import { VlabError } from '@vlab/errors';
import { Store, type StoredImage } from './store/store.ts';
import { defaultStoreRoot } from './store/paths.ts';
import { imageHistory, type HistoryRow } from './tools/history.ts';
import { diffImages, type Change } from './tools/diff.ts';

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
