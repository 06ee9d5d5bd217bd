/**
 * The registry build cache as stored: an OCI image manifest (an artifact: its config has our media
 * type) whose layers are the compressed blobs the cache refers to, and whose config blob maps each
 * step's cache key to its layer chain (indexes into those layers) and history entry. Everything
 * read back is untrusted: schema-checked and bounded here (image/validate.ts, the ajv site), and
 * each blob is checked against its digest and diff_id when it is fetched (remote.ts).
 */
import { VlabError } from '@vlab/errors';
import { MEDIA, type Descriptor, type History, type LayerRef, type Manifest } from '../image/types.ts';
import { parseDocument } from '../image/validate.ts';

export const CACHE_CONFIG_TYPE = 'application/vnd.vlab.build.cache.config.v1+json';
export const CACHE_ARTIFACT_TYPE = 'application/vnd.vlab.build.cache.v1';
/** Bounds of one cache (also in the schema): entries kept by a merge, layers it refers to, chain length. */
export const MAX_CACHE_ENTRIES = 4096;
export const MAX_CACHE_LAYERS = 1024;
export const MAX_CHAIN = 256;

const LAYER_TYPES: string[] = [MEDIA.layerGzip, MEDIA.layerZstd, MEDIA.layer, MEDIA.dockerLayerGzip, MEDIA.dockerLayer];

/** The config blob (vlab-build-cache-schema.json). */
export interface CacheConfig {
  schemaVersion: 1;
  layers: { diffId: string; size?: number }[];
  entries: { key: string; layers: number[]; created: string; history?: Pick<History, 'created_by' | 'empty_layer'> }[];
}

/** A layer of the cache: the blob in the registry and what it holds. */
export interface CacheLayer {
  /** The compressed blob, as the manifest names it. */
  blob: Descriptor;
  diffId: string;
  /** Bytes of the uncompressed tar, when known (informational: the store counts its own). */
  size?: number;
}

/** One step's result in a cache: the image's layer chain after it. */
export interface CacheEntry {
  key: string;
  layers: CacheLayer[];
  created: string;
  history?: CacheConfig['entries'][number]['history'];
}

/** The layer as the local store names it (uncompressed: its digest is its diff_id). */
export function localRef(l: CacheLayer): LayerRef {
  return { digest: l.diffId, diffId: l.diffId, size: l.size ?? 0, mediaType: MEDIA.layer };
}

/** The entries of a fetched cache manifest and its config blob. E_BAD_MANIFEST when either is malformed. */
export async function readCache(manifest: Manifest, configBytes: Buffer, where: string): Promise<CacheEntry[]> {
  if (manifest.config.mediaType !== CACHE_CONFIG_TYPE)
    throw new VlabError(
      'E_UNSUPPORTED',
      `${where} is not a vbuild registry cache (config media type "${manifest.config.mediaType}", expected ${CACHE_CONFIG_TYPE})`,
    );
  const doc = await parseDocument('cache-config', configBytes, `${where}: cache config`, 'E_BAD_MANIFEST');
  if (doc.layers.length !== manifest.layers.length)
    throw new VlabError(
      'E_BAD_MANIFEST',
      `${where}: the manifest has ${manifest.layers.length} layers but the cache config describes ${doc.layers.length}`,
    );
  const layers: CacheLayer[] = manifest.layers.map((blob, i) => {
    if (!/^sha256:[a-f0-9]{64}$/.test(blob.digest) || !LAYER_TYPES.includes(blob.mediaType))
      throw new VlabError('E_BAD_MANIFEST', `${where}: layers[${i}] is not a sha256 tar layer (${blob.mediaType})`);
    return { blob: { mediaType: blob.mediaType, digest: blob.digest, size: blob.size }, ...doc.layers[i]! };
  });
  return doc.entries.map((e, n) => {
    const chain = e.layers.map((i) => {
      const l = layers[i];
      if (!l) throw new VlabError('E_BAD_MANIFEST', `${where}: entries[${n}] names layer ${i} of ${layers.length}`);
      return l;
    });
    return { key: e.key, layers: chain, created: e.created, ...(e.history ? { history: e.history } : {}) };
  });
}

/** The config blob and manifest layers for `entries` (deduplicated layers, first use first). */
export function writeCache(entries: CacheEntry[]): { config: Buffer; layers: Descriptor[] } {
  const index = new Map<string, number>();
  const layers: CacheLayer[] = [];
  const out: CacheConfig['entries'] = entries.map((e) => ({
    key: e.key,
    layers: e.layers.map((l) => {
      let i = index.get(l.blob.digest);
      if (i === undefined) {
        i = layers.push(l) - 1;
        index.set(l.blob.digest, i);
      }
      return i;
    }),
    created: e.created,
    ...(e.history ? { history: e.history } : {}),
  }));
  const doc: CacheConfig = {
    schemaVersion: 1,
    layers: layers.map((l) => ({ diffId: l.diffId, ...(l.size !== undefined ? { size: l.size } : {}) })),
    entries: out,
  };
  return { config: Buffer.from(JSON.stringify(doc)), layers: layers.map((l) => l.blob) };
}

/**
 * A merge of `fresh` (this build's entries, first) with `old` (what the ref had), each key once,
 * bounded in entries and in the layers they refer to: what does not fit is dropped, oldest last.
 */
export function mergeEntries(fresh: CacheEntry[], old: CacheEntry[]): CacheEntry[] {
  const seen = new Set<string>();
  const blobs = new Set<string>();
  const out: CacheEntry[] = [];
  for (const e of [...fresh, ...old]) {
    if (seen.has(e.key) || out.length >= MAX_CACHE_ENTRIES || e.layers.length > MAX_CHAIN) continue;
    const added = e.layers.filter((l) => !blobs.has(l.blob.digest)).length;
    if (blobs.size + added > MAX_CACHE_LAYERS) continue;
    for (const l of e.layers) blobs.add(l.blob.digest);
    seen.add(e.key);
    out.push(e);
  }
  return out;
}
