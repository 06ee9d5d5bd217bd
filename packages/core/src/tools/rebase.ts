/**
 * `vbuild rebase IMAGE --from OLD --to NEW` (crane rebase): the image's lowest layers, when they
 * are exactly OLD's, are swapped for NEW's; the image's own layers, history and config stay. Only
 * metadata is written: no RUN is re-executed and no layer blob is read or rebuilt.
 */
import { isDeepStrictEqual } from 'node:util';
import { VlabError } from '@vlab/errors';
import type { ContainerConfig, ImageConfig } from '../image/types.ts';
import type { StoredImage } from '../store/store.ts';
import { diffIdsOf, imageOf, withToolStore, type ToolOptions } from './common.ts';

export interface RebaseOptions extends ToolOptions {
  /** The old base the image was built on. */
  from: string;
  /** The new base to put under the image's own layers. */
  to: string;
  /** Name for the result (default: the image's own name, as crane rebase does). */
  tag?: string;
}

export interface RebaseResult {
  imageId: string;
  digest: string;
  /** Layers replaced (OLD's) and put in (NEW's), and the image's own layers kept. */
  removedLayers: number;
  addedLayers: number;
  keptLayers: number;
  tag?: string;
}

export async function rebase(image: string, opts: RebaseOptions): Promise<RebaseResult> {
  return withToolStore(opts, async (store) => {
    const img = await imageOf(store, image);
    const oldBase = await imageOf(store, opts.from);
    const newBase = await imageOf(store, opts.to);
    checkBase(image, img, opts.from, oldBase);
    if (img.config.os !== newBase.config.os || img.config.architecture !== newBase.config.architecture)
      throw new VlabError(
        'E_REBASE_PLATFORM',
        `${opts.to} is ${newBase.config.os}/${newBase.config.architecture}, the image is ${img.config.os}/${img.config.architecture}: rebase onto a base of the same platform`,
      );
    const n = oldBase.manifest.layers.length;
    const own = img.manifest.layers.slice(n);
    const config = rebasedConfig(img.config, oldBase.config, newBase.config, n);
    const out = await store.putImage(config, [...newBase.manifest.layers, ...own]);
    const name = opts.tag ?? (await ownName(store, image));
    if (name) await store.tag(name, out.manifestDigest);
    return {
      imageId: out.configDigest,
      digest: out.manifestDigest,
      removedLayers: n,
      addedLayers: newBase.manifest.layers.length,
      keptLayers: own.length,
      ...(name ? { tag: name } : {}),
    };
  });
}

/** E_REBASE_MISMATCH unless OLD's diff_ids are the image's lowest ones (and its history comes first). */
function checkBase(ref: string, img: StoredImage, baseRef: string, base: StoredImage): void {
  const mine = diffIdsOf(img);
  const theirs = diffIdsOf(base);
  const at = theirs.findIndex((d, i) => mine[i] !== d);
  if (theirs.length > mine.length || at >= 0)
    throw new VlabError(
      'E_REBASE_MISMATCH',
      `${ref} is not built on ${baseRef}: ` +
        (theirs.length > mine.length
          ? `the base has ${theirs.length} layers, the image only ${mine.length}`
          : `layer ${at + 1} of the image is ${mine[at]?.slice(0, 19) ?? '(none)'}, the base's is ${theirs[at]!.slice(0, 19)}`) +
        `; give the image's own base with --from (vbuild history ${ref} shows its layers)`,
    );
}

/** The name `image` was given by, when it is one (crane rebase retags it); digests and ids are not. */
async function ownName(
  store: { listImages(): Promise<{ ref: string }[]> },
  image: string,
): Promise<string | undefined> {
  if (image.includes('@') || /^(sha256:)?[0-9a-f]{6,64}$/.test(image)) return undefined;
  const full = image.includes(':') && image.lastIndexOf(':') > image.lastIndexOf('/') ? image : `${image}:latest`;
  return (await store.listImages()).some((r) => r.ref === full || r.ref.endsWith(`/${full}`)) ? image : undefined;
}

/**
 * The image's config over NEW instead of OLD: each field (and each Env variable and label) the
 * image left as OLD had it takes NEW's value; what the image set itself stays.
 */
export function rebasedConfig(img: ImageConfig, oldB: ImageConfig, newB: ImageConfig, nOld: number): ImageConfig {
  const c: ContainerConfig = { ...img.config };
  const o = oldB.config ?? {};
  const nw = newB.config ?? {};
  const keys = new Set([...Object.keys(o), ...Object.keys(nw)] as (keyof ContainerConfig)[]);
  for (const k of keys) {
    if (k === 'Env' || k === 'Labels') continue;
    if (!isDeepStrictEqual(c[k], o[k])) continue; // the image set it itself
    if (nw[k] === undefined) delete c[k];
    else (c as Record<string, unknown>)[k] = nw[k];
  }
  const env = mergeMap(envMap(c.Env), envMap(o.Env), envMap(nw.Env));
  if (env.size || c.Env) c.Env = [...env].map(([k, v]) => `${k}=${v}`);
  const labels = mergeMap(
    new Map(Object.entries(c.Labels ?? {})),
    new Map(Object.entries(o.Labels ?? {})),
    new Map(Object.entries(nw.Labels ?? {})),
  );
  if (labels.size) c.Labels = Object.fromEntries(labels);
  else delete c.Labels;
  // the base's history entries are those that come with its layers: the first len(OLD.history)
  const oldHist = oldB.history ?? [];
  const ownHistory = (img.history ?? []).slice(oldHist.length);
  return {
    ...img,
    config: c,
    rootfs: { type: 'layers', diff_ids: [...diffIdsOfConfig(newB), ...img.rootfs.diff_ids.slice(nOld)] },
    history: [...(newB.history ?? []), ...ownHistory],
  };
}

const diffIdsOfConfig = (c: ImageConfig) => c.rootfs.diff_ids;

function envMap(env: string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env ?? []) {
    const i = e.indexOf('=');
    m.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1));
  }
  return m;
}

/** NEW's entries first (in its order), with the image's overrides; then what only the image set. */
function mergeMap(
  mine: Map<string, string>,
  oldM: Map<string, string>,
  newM: Map<string, string>,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of newM) out.set(k, mine.has(k) && mine.get(k) !== oldM.get(k) ? mine.get(k)! : v);
  for (const [k, v] of mine) {
    if (out.has(k)) continue;
    if (oldM.has(k) && oldM.get(k) === v) continue; // OLD's, and NEW dropped it
    out.set(k, v);
  }
  return out;
}
