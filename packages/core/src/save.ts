/**
 * `saveImage`: what `vbuild save` does, for library users: an image of the store written in one
 * of the export formats (export/export.ts lists them: oci, docker, rootfs-tar, rootfs-dir,
 * squashfs, lxc, openvz, …).
 */
import { VlabError } from '@vlab/errors';
import { envEpoch } from './api.ts';
import { openEngine } from './api/engine.ts';
import { layersOf } from './solve/base.ts';
import { exportImage, OUTPUT_TYPES, type OutputType } from './export/export.ts';
import type { LayerCompression } from './export/compress.ts';
import { defaultStoreRoot } from './store/paths.ts';

export interface SaveOptions {
  /** Image reference in the store (name[:tag], name@digest, or an id). */
  image: string;
  format: OutputType;
  /** File or directory to write (as the format needs). */
  dest: string;
  compression?: LayerCompression;
  /** Store root (default: $VLAB_ROOT, /var/lib/vlab as root, else $XDG_DATA_HOME/vlab). */
  root?: string;
  /** Default: $SOURCE_DATE_EPOCH. */
  sourceDateEpoch?: number;
  signal?: AbortSignal;
}

export async function saveImage(opts: SaveOptions): Promise<void> {
  if (!(OUTPUT_TYPES as readonly string[]).includes(opts.format))
    throw new VlabError(
      'E_BAD_ARG',
      `--format ${opts.format} is not supported (use one of: ${OUTPUT_TYPES.join(', ')})`,
    );
  const engine = await openEngine(opts.root ?? defaultStoreRoot());
  try {
    const img = await engine.store.resolve(opts.image);
    if (!img) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${opts.image}`);
    await exportImage(
      engine.store,
      img,
      { type: opts.format, dest: opts.dest, ...(opts.compression ? { compression: opts.compression } : {}) },
      opts.image,
      (i, work) => engine.layers.withView(layersOf(i), work),
      { sourceDateEpoch: opts.sourceDateEpoch ?? envEpoch(), signal: opts.signal },
    );
  } finally {
    // what the export held against gc is released once it is written (as build() does)
    await engine.store.lease.release().catch(() => undefined);
  }
}
