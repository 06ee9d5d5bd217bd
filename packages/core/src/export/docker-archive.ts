/**
 * docker-archive: the classic `docker save` layout, which Docker 20.10's `docker load`, skopeo,
 * uDocker's loader and the pre-1.10 tools all read:
 * - `manifest.json` (Config, RepoTags, Layers): what docker load and skopeo use;
 * - `<config digest hex>.json`: the image config;
 * - `repositories` (name → tag → top layer's dir): what uDocker and old docker take the image name from;
 * - one dir per layer *position*, named by its legacy v1 id, with `layer.tar`, `VERSION` ("1.0")
 *   and `json` (the v1 image json whose `parent` chains to the layer below: uDocker orders the
 *   layers by walking it). Ids are computed as docker's v1.CreateID does (the v1 json without id,
 *   plus the layer's chain id and the parent's id), so two equal layers at different positions
 *   are two dirs, and the top id changes with the config.
 * RepoTags are docker's short names. docker load and skopeo detect compressed layer files, so
 * `compression=` applies here too.
 */
import { createHash } from 'node:crypto';
import type { Store, StoredImage } from '../store/store.ts';
import type { ArchiveEntry } from '../archive/tar.ts';
import { familiarRef, parseRef } from '../store/refs.ts';
import { chainIds } from '../image/chain.ts';

const EPOCH = '1970-01-01T00:00:00Z';

/** JSON with keys sorted at every level (as Go's encoding/json writes a map). */
function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${sortedJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** The legacy per-layer json: only the top layer carries the image's config (docker's saveImage). */
function v1Json(img: StoredImage, top: boolean): Record<string, unknown> {
  const c = img.config;
  if (!top) return { created: EPOCH, container_config: { Cmd: null }, os: c.os };
  return {
    created: c.created ?? EPOCH,
    ...(c.author ? { author: c.author } : {}),
    container_config: { Cmd: null },
    config: c.config ?? {},
    architecture: c.architecture,
    ...(c.variant ? { variant: c.variant } : {}),
    os: c.os,
  };
}

export interface V1Layer {
  id: string;
  json: Record<string, unknown>;
}

/** v1 ids and json of each layer position, bottom first. */
export function v1Layers(img: StoredImage): V1Layer[] {
  const chain = chainIds(img.config.rootfs.diff_ids);
  const out: V1Layer[] = [];
  let parent: string | undefined;
  chain.forEach((chainId, i) => {
    const base = v1Json(img, i === chain.length - 1);
    const id = createHash('sha256')
      .update(sortedJson({ ...base, layer_id: chainId, ...(parent ? { parent: `sha256:${parent}` } : {}) }))
      .digest('hex');
    out.push({ id, json: { id, ...(parent ? { parent } : {}), ...base } });
    parent = id;
  });
  return out;
}

export async function dockerArchiveEntries(store: Store, img: StoredImage, ref?: string): Promise<ArchiveEntry[]> {
  const cfgName = `${img.configDigest.slice(7)}.json`;
  const layers = v1Layers(img);
  const tagged = ref && !(parseRef(ref).digest && !parseRef(ref).tag) ? familiarRef(ref) : undefined;
  const manifest = [
    { Config: cfgName, RepoTags: tagged ? [tagged] : [], Layers: layers.map((l) => `${l.id}/layer.tar`) },
  ];
  const entries: ArchiveEntry[] = [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
    { name: cfgName, file: store.blobs.path(img.configDigest), size: await store.blobs.size(img.configDigest) },
  ];
  if (tagged && layers.length) {
    const colon = tagged.lastIndexOf(':');
    const repositories = { [tagged.slice(0, colon)]: { [tagged.slice(colon + 1)]: layers.at(-1)!.id } };
    entries.splice(1, 0, { name: 'repositories', data: Buffer.from(JSON.stringify(repositories)) });
  }
  img.manifest.layers.forEach((l, i) => {
    const dir = layers[i]!.id;
    // A layer.tar per dir, equal ones included: uDocker moves each layer file into its own store,
    // so a symlink to another dir's copy (docker's own dedup) would dangle there.
    entries.push(
      { name: `${dir}/VERSION`, data: Buffer.from('1.0') },
      { name: `${dir}/json`, data: Buffer.from(JSON.stringify(layers[i]!.json)) },
      { name: `${dir}/layer.tar`, file: store.blobs.path(l.digest), size: l.size },
    );
  });
  return entries;
}
