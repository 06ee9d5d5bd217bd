/**
 * `vbuild history IMAGE`, as `docker history`: one row per history entry, newest first, with the
 * step that made it, when, and the size of what its layer adds (the bytes of the regular files in
 * the layer tar, hard links counted once, as docker's layer size counts the files of a diff).
 * Entries with `empty_layer` (ENV, CMD, …) have size 0 and no layer. Only the newest row carries
 * the image id; older rows are `<missing>`, as docker prints images it did not build itself.
 */
import { layerHeaders } from '@vlab/overlay';
import type { Store, StoredImage } from '../store/store.ts';
import { layerStream } from '../image/load.ts';

export interface HistoryRow {
  /** The image id on the newest row, else '<missing>'. */
  id: string;
  created?: string;
  createdBy: string;
  /** Bytes of file content the layer adds; 0 for an empty layer. */
  size: number;
  comment: string;
  emptyLayer: boolean;
  /** The layer's diff_id, when the entry has a layer. */
  diffId?: string;
}

/** Bytes of regular-file content in the layer blob `digest` (streamed). */
export async function layerContentSize(store: Store, digest: string, mediaType: string): Promise<number> {
  let n = 0;
  for await (const h of layerHeaders(layerStream(store.blobs.open(digest), mediaType)))
    if (h.type === 'file') n += h.size;
  return n;
}

export async function imageHistory(store: Store, img: StoredImage): Promise<HistoryRow[]> {
  const layers = img.manifest.layers;
  const history = img.config.history ?? [];
  const rows: HistoryRow[] = [];
  let li = 0;
  for (const h of history) {
    const empty = h.empty_layer === true;
    const layer = empty ? undefined : layers[li];
    const diffId = empty ? undefined : img.config.rootfs.diff_ids[li];
    if (!empty) li++;
    rows.push({
      id: '<missing>',
      ...(h.created ? { created: h.created } : {}),
      createdBy: h.created_by ?? '',
      size: layer ? await layerContentSize(store, layer.digest, layer.mediaType) : 0,
      comment: h.comment ?? '',
      emptyLayer: empty,
      ...(diffId ? { diffId } : {}),
    });
  }
  // Layers the history does not describe (an image without history): one row each, as docker shows.
  for (; li < layers.length; li++)
    rows.push({
      id: '<missing>',
      createdBy: '',
      size: await layerContentSize(store, layers[li]!.digest, layers[li]!.mediaType),
      comment: '',
      emptyLayer: false,
      diffId: img.config.rootfs.diff_ids[li],
    });
  rows.reverse();
  if (rows.length) rows[0]!.id = img.configDigest;
  return rows;
}
