/**
 * `--output …,compression=gzip|zstd`: the image's layers compressed for one export. Layers are
 * kept uncompressed in the store (DESIGN: compress once, on export); the compressed blobs and the
 * manifest that names them are written to the store's blob dir, so the exporters link or stream
 * them like any blob. The config (diff_ids) is unchanged: diff_ids are digests of the tars.
 */
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { writeLayer, type Compression } from '@vlab/overlay';
import type { Store, StoredImage } from '../store/store.ts';
import { MEDIA, type Descriptor } from '../image/types.ts';
import { VlabError } from '@vlab/errors';

export type LayerCompression = Exclude<Compression, 'none'>;

const MEDIA_OF: Record<LayerCompression, string> = { gzip: MEDIA.layerGzip, zstd: MEDIA.layerZstd };

const isGzip = (mediaType: string) => mediaType.endsWith('gzip');
const isZstd = (mediaType: string) => mediaType.endsWith('zstd');

/** `img` with every layer in `compression` (layers already so are kept); a new manifest blob. */
export async function compressImage(
  store: Store,
  img: StoredImage,
  compression: LayerCompression,
  level?: number,
): Promise<StoredImage> {
  const layers: Descriptor[] = [];
  for (const l of img.manifest.layers) {
    if ((compression === 'gzip' && isGzip(l.mediaType)) || (compression === 'zstd' && isZstd(l.mediaType))) {
      layers.push(l);
      continue;
    }
    if (isZstd(l.mediaType))
      throw new VlabError(
        'E_UNSUPPORTED',
        `layer ${l.digest} is zstd-compressed: recompressing it as ${compression} needs zstd decompression, which vbuild does not do (it only compresses zstd)`,
      );
    let tar: Readable = store.blobs.open(l.digest);
    if (isGzip(l.mediaType)) tar = tar.pipe(createGunzip());
    const blob = await store.blobs.create();
    let written;
    try {
      written = await writeLayer(tar, blob.stream, { compression, level });
    } catch (e) {
      await blob.abort();
      throw e;
    }
    const stored = await blob.commit(written.digest);
    layers.push({ mediaType: MEDIA_OF[compression], digest: stored.digest, size: stored.size });
  }
  const manifest = { ...img.manifest, layers };
  const put = await store.blobs.putJson(manifest);
  return { ...img, manifest, manifestDigest: put.digest };
}
