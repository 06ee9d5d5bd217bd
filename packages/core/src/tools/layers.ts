/**
 * `vbuild layers IMAGE`, a layer explorer like dive: what each layer adds, modifies and removes,
 * read from the layer tars (no mount); the bytes wasted on files a later layer overwrites or
 * deletes; dive's efficiency score (1 − wasted / all file bytes in all layers); and which other
 * images of the store share each layer.
 */
import { layerHeaders } from '@vlab/overlay';
import { layerStream } from '../image/load.ts';
import { diffIdsOf, imageOf, withToolStore, type ToolOptions } from './common.ts';

export type ChangeKind = 'A' | 'M' | 'D';

export interface LayerChange {
  path: string;
  kind: ChangeKind;
  /** File bytes: added or written (A/M), or what the delete removed from the layers below (D). */
  size: number;
  type: string;
}

export interface LayerReport {
  index: number;
  digest: string;
  diffId: string;
  size: number;
  createdBy?: string;
  changes: LayerChange[];
  added: number;
  modified: number;
  removed: number;
  /** Bytes of this layer's files that a later layer overwrites or deletes. */
  wastedBytes: number;
  /** Other images of the store (by name) that have this layer too. */
  sharedWith: string[];
}

export interface LayersReport {
  image: string;
  layers: LayerReport[];
  /** Sum of the file bytes of every layer. */
  totalFileBytes: number;
  wastedBytes: number;
  /** In [0, 1]: 1 when no byte of any layer is overwritten or deleted later. */
  efficiency: number;
}

const WH = '.wh.';
const OPQ = '.wh..wh..opq';
const clean = (n: string) => n.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
const parentOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const under = (p: string, dir: string) => (dir === '' ? p !== '' : p.startsWith(`${dir}/`));

export async function layers(image: string, opts: ToolOptions = {}): Promise<LayersReport> {
  return withToolStore(opts, async (store) => {
    const img = await imageOf(store, image);
    const diffIds = diffIdsOf(img);
    const others = new Map<string, string[]>(); // diffId → names of other images having it
    for (const { ref } of await store.listImages()) {
      const o = await store.resolve(ref);
      if (!o || o.manifestDigest === img.manifestDigest) continue;
      for (const d of new Set(diffIdsOf(o))) others.set(d, [...(others.get(d) ?? []), ref]);
    }
    const history = (img.config.history ?? []).filter((h) => !h.empty_layer);
    const union = new Map<string, { size: number; layer: number }>(); // what the layers so far show
    const reports: LayerReport[] = [];
    let total = 0;
    const drop = (p: string, by: LayerReport[]) => {
      const had = union.get(p);
      if (!had) return 0;
      union.delete(p);
      by[had.layer]!.wastedBytes += had.size;
      return had.size;
    };
    for (const [i, desc] of img.manifest.layers.entries()) {
      const rep: LayerReport = {
        index: i,
        digest: desc.digest,
        diffId: diffIds[i]!,
        size: desc.size,
        ...(history[i]?.created_by ? { createdBy: history[i]!.created_by } : {}),
        changes: [],
        added: 0,
        modified: 0,
        removed: 0,
        wastedBytes: 0,
        sharedWith: others.get(diffIds[i]!) ?? [],
      };
      reports.push(rep);
      for await (const h of layerHeaders(layerStream(store.blobs.open(desc.digest), desc.mediaType))) {
        const p = clean(h.name);
        const base = p.slice(p.lastIndexOf('/') + 1);
        if (base === OPQ || base.startsWith(WH)) {
          const target = base === OPQ ? parentOf(p) : `${parentOf(p) ? `${parentOf(p)}/` : ''}${base.slice(WH.length)}`;
          let size = 0;
          for (const q of [...union.keys()]) if (under(q, target)) size += drop(q, reports);
          if (base !== OPQ) size += drop(target, reports);
          rep.changes.push({
            path: base === OPQ ? `${target}/*` : target,
            kind: 'D',
            size,
            type: base === OPQ ? 'opaque' : 'whiteout',
          });
          rep.removed++;
          continue;
        }
        const size = h.type === 'file' ? h.size : 0;
        total += size;
        const had = union.has(p);
        if (had) drop(p, reports); // a re-listed directory wastes nothing (size 0), a replaced file its bytes
        union.set(p, { size, layer: i });
        rep.changes.push({ path: p, kind: had ? 'M' : 'A', size, type: h.type });
        if (had) rep.modified++;
        else rep.added++;
      }
    }
    const wasted = reports.reduce((n, r) => n + r.wastedBytes, 0);
    return {
      image,
      layers: reports,
      totalFileBytes: total,
      wastedBytes: wasted,
      efficiency: total ? (total - wasted) / total : 1,
    };
  });
}
