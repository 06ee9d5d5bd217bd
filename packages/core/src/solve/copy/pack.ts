/**
 * COPY's pack output: a plan straight into a layer tar (no snapshot, no mount, no copy, no diff),
 * through overlay's tar codec, entry by entry as the snapshot diff would write the same tree.
 */
import { layerMtime, layerTar, tarEntryBytes, whiteoutHeader, writeLayer, type TarEntry } from '@vlab/overlay';
import { MEDIA, type LayerRef } from '../../image/types.ts';
import type { BuildSession } from '../context.ts';
import type { CopyPlan } from './plan.ts';

const TYPE = { file: 'file', dir: 'dir', symlink: 'symlink', link: 'link' } as const;

async function* planBytes(plan: CopyPlan, sourceDateEpoch?: number): AsyncGenerator<Buffer> {
  for (const e of plan.entries) {
    if (e.unchanged) continue;
    const h: TarEntry = {
      name: e.type === 'dir' ? `${e.path}/` : e.path,
      type: TYPE[e.type],
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.type === 'file' ? e.size : 0,
      mtime: layerMtime(e.mtime, sourceDateEpoch),
      linkname: e.linkname,
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
    };
    yield* tarEntryBytes(h, e.source);
    if (e.opaque) yield whiteoutHeader(`${e.path}/.wh..wh..opq`);
  }
}

/** The layer of `plan` as a blob in the store (uncompressed: its digest is its diffID). */
export async function packCopyLayer(s: BuildSession, plan: CopyPlan): Promise<LayerRef> {
  const blob = await s.store.blobs.create();
  let written;
  try {
    written = await writeLayer(layerTar(planBytes(plan, s.sourceDateEpoch)), blob.stream);
  } catch (e) {
    await blob.abort();
    throw e;
  }
  const stored = await blob.commit(written.diffId);
  return { digest: stored.digest, diffId: written.diffId, size: stored.size, mediaType: MEDIA.layer };
}
