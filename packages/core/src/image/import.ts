import { Readable } from 'node:stream';
import { openArchiveFile } from '../archive/tar.ts';
import type { Store, StoredImage } from '../store/store.ts';
import { MEDIA, type ImageConfig } from './types.ts';
import { hostPlatform } from './platform.ts';
import { gunzipStream } from './load.ts';

/** Like `docker import`: a rootfs tarball (plain or gzip) becomes a one-layer image, tagged `ref`. */
export async function importRootfs(
  store: Store,
  tarPath: string,
  ref: string,
  opts: { created?: string; comment?: string } = {},
): Promise<StoredImage> {
  const src = await openMaybeGzip(tarPath);
  const layer = await store.blobs.put(src);
  // SOURCE_DATE_EPOCH makes the base reproducible too (same tar → same image digest).
  const sde = process.env.SOURCE_DATE_EPOCH;
  const created = opts.created ?? (sde ? new Date(Number(sde) * 1000).toISOString() : new Date().toISOString());
  const config: ImageConfig = {
    created,
    ...hostPlatform(),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
    history: [
      {
        created,
        created_by: `vbuild import ${tarPath.split('/').pop()}`,
        comment: opts.comment ?? 'imported from a rootfs tarball',
      },
    ],
  };
  const img = await store.putImage(config, [{ mediaType: MEDIA.layer, digest: layer.digest, size: layer.size }]);
  await store.tag(ref, img.manifestDigest);
  return { ...img, ref };
}

/** A file stream (a regular file only: see openArchiveFile), gunzipped when it starts with the gzip magic bytes. */
export async function openMaybeGzip(file: string): Promise<Readable> {
  const { stream } = await openArchiveFile(file, 'E_IMPORT');
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const head = first.done ? Buffer.alloc(0) : first.value;
  const raw = Readable.from(
    (async function* () {
      if (head.length) yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    })(),
  );
  if (head[0] === 0x1f && head[1] === 0x8b) return gunzipStream(raw, file);
  return raw;
}
