/**
 * COPY's pack output: a plan straight into a layer tar (no snapshot, no mount, no copy, no diff),
 * through overlay's tar codec, entry by entry as the snapshot diff would write the same tree.
 * Written synchronously through one reused buffer (TarSink): the memory a COPY uses does not grow
 * with the bytes it copies.
 */
import { VlabError } from '@vlab/errors';
import { layerMtime, TarSink, type TarEntry } from '@vlab/overlay';
import { MEDIA, type LayerRef } from '../../image/types.ts';
import type { BuildSession } from '../context.ts';
import type { CopyPlan, PlanEntry } from './plan.ts';

const TYPE = { file: 'file', dir: 'dir', symlink: 'symlink', link: 'link' } as const;
/** Longest the packing keeps the event loop to itself. */
const SLICE_MS = 20;

function header(e: PlanEntry, sourceDateEpoch?: number): TarEntry {
  return {
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
}

/** The layer of `plan` as a blob in the store (uncompressed: its digest is its diffID). */
export async function packCopyLayer(s: BuildSession, plan: CopyPlan): Promise<LayerRef> {
  const blob = await s.store.blobs.createSync();
  try {
    const tar = new TarSink((chunk) => blob.write(chunk));
    let slice = Date.now();
    for (const e of plan.entries) {
      if (e.unchanged) continue;
      await tar.entry(header(e, s.sourceDateEpoch), e.source, e.srcStat);
      if (e.opaque) tar.whiteout(`${e.path}/.wh..wh..opq`);
      if (Date.now() - slice > SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = Date.now();
        if (s.signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
      }
    }
    tar.end();
  } catch (e) {
    await blob.abort();
    throw e;
  }
  const stored = await blob.commit();
  return { digest: stored.digest, diffId: stored.digest, size: stored.size, mediaType: MEDIA.layer };
}
