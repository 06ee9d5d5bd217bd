/** What the image tools share: opening the store for one call and naming images. */
import { VlabError } from '@vlab/errors';
import { defaultStoreRoot } from '../store/paths.ts';
import { Store, type StoredImage } from '../store/store.ts';

export interface ToolOptions {
  /** Store root (default: $VLAB_ROOT, /var/lib/vlab as root, else $XDG_DATA_HOME/vlab). */
  root?: string;
}

/** Run `fn` on the store and release what the handle held against gc afterwards. */
export async function withToolStore<T>(opts: ToolOptions, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(opts.root ?? defaultStoreRoot());
  try {
    return await fn(store);
  } finally {
    await store.lease.release().catch(() => undefined);
  }
}

/** The image `ref` names, held for this call; E_IMAGE_NOT_FOUND when none. */
export async function imageOf(store: Store, ref: string): Promise<StoredImage> {
  const img = await store.resolve(ref);
  if (!img || !(await store.holdImage(img)))
    throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${ref || '(none given)'}`);
  return img;
}

/** The diff_ids of an image (a layer without one is named by its blob digest, as layersOf does). */
export const diffIdsOf = (img: StoredImage): string[] =>
  img.manifest.layers.map((d, i) => img.config.rootfs.diff_ids[i] ?? d.digest);
