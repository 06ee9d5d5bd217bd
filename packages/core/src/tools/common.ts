/** What the image tools share: opening the store for one call, naming images, reading layers. */
import type { TarSource } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import { layerStream } from '../image/load.ts';
import type { Descriptor } from '../image/types.ts';
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

/**
 * A layer of `img` as UnionView reads it: the blob file when it is an uncompressed tar (read at
 * offsets), else a source that stream-decompresses it (gzip) from its start on each read.
 * E_UNSUPPORTED for zstd, which vbuild only writes.
 */
export function layerSource(store: Store, img: StoredImage, l: Descriptor): string | TarSource {
  if (/zstd/.test(l.mediaType))
    throw new VlabError(
      'E_UNSUPPORTED',
      `layer ${l.digest} of ${img.manifestDigest} is zstd-compressed: vbuild does not decompress zstd (re-load the image with gzip or uncompressed layers)`,
    );
  if (!/gzip/.test(l.mediaType)) return store.blobs.path(l.digest);
  return { open: () => layerStream(store.blobs.open(l.digest), l.mediaType), id: l.digest };
}
