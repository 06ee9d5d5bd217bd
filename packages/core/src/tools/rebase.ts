/**
 * `vbuild rebase IMAGE --from OLD_BASE --to NEW_BASE`: the lecture's vulnerability fix, as
 * `crane rebase` does it. When IMAGE's lowest layers are exactly OLD_BASE's (the diff_ids match),
 * they are replaced by NEW_BASE's and IMAGE's own layers are kept on top, blob for blob: no RUN
 * runs again and no layer is rebuilt. The config is rewritten: diff_ids, the history (NEW_BASE's
 * entries, then IMAGE's own), and every config field IMAGE took from OLD_BASE unchanged now comes
 * from NEW_BASE (Env per variable: a variable whose value IMAGE inherited follows the new base).
 */
import { isDeepStrictEqual } from 'node:util';
import { VlabError } from '@vlab/errors';
import type { Store, StoredImage } from '../store/store.ts';
import type { ContainerConfig, ImageConfig } from '../image/types.ts';

const envMap = (env: string[] = []) =>
  new Map(env.map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)] as [string, string]));

/** NEW_BASE's Env, with the variables IMAGE set or changed itself over OLD_BASE's. */
function rebaseEnv(image: string[] = [], oldBase: string[] = [], newBase: string[] = []): string[] {
  const old = envMap(oldBase);
  const out = envMap(newBase);
  for (const [k, v] of envMap(image)) if (old.get(k) !== v || !old.has(k)) out.set(k, v);
  return [...out].map(([k, v]) => `${k}=${v}`);
}

function rebaseConfig(image: ContainerConfig, oldBase: ContainerConfig, newBase: ContainerConfig): ContainerConfig {
  const out: Record<string, unknown> = {};
  const keys = new Set([...Object.keys(image), ...Object.keys(newBase)]);
  for (const k of keys) {
    const key = k as keyof ContainerConfig;
    const mine = image[key];
    let v: unknown;
    if (key === 'Env') v = rebaseEnv(image.Env, oldBase.Env, newBase.Env);
    else if (key === 'Labels')
      v = {
        ...newBase.Labels,
        ...Object.fromEntries(Object.entries(image.Labels ?? {}).filter(([l, x]) => oldBase.Labels?.[l] !== x)),
      };
    else v = isDeepStrictEqual(mine, oldBase[key]) ? newBase[key] : mine; // inherited: follow the new base
    if (v !== undefined && !(typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.keys(v).length))
      out[k] = v;
  }
  return out as ContainerConfig;
}

export interface RebaseResult {
  image: StoredImage;
  /** How many layers were replaced (OLD_BASE's) and kept (IMAGE's own). */
  replaced: number;
  kept: number;
}

export async function rebaseImage(
  store: Store,
  img: StoredImage,
  oldBase: StoredImage,
  newBase: StoredImage,
  names: { image: string; from: string; to: string },
): Promise<RebaseResult> {
  const ids = img.config.rootfs.diff_ids;
  const oldIds = oldBase.config.rootfs.diff_ids;
  const k = oldIds.length;
  if (k > ids.length || oldIds.some((d, i) => ids[i] !== d)) {
    const at = oldIds.findIndex((d, i) => ids[i] !== d);
    throw new VlabError(
      'E_REBASE_MISMATCH',
      `${names.image} is not built on ${names.from}: its layer ${at + 1} is ${ids[at]?.slice(0, 19) ?? '(none)'}…, ${names.from}'s is ${oldIds[at]!.slice(0, 19)}… (give --from the base the image was built from)`,
      { details: { layer: at } },
    );
  }
  if (newBase.config.os !== img.config.os || newBase.config.architecture !== img.config.architecture)
    throw new VlabError(
      'E_REBASE_MISMATCH',
      `${names.to} is ${newBase.config.os}/${newBase.config.architecture}, ${names.image} is ${img.config.os}/${img.config.architecture}: rebase onto a base of the same platform`,
    );
  // The history entries that belong to the old base: as many as it has (crane's rule), which
  // must account for exactly its layers, or the image's history was not made on top of it.
  const oldHist = oldBase.config.history ?? [];
  const imgHist = img.config.history ?? [];
  const baseEntries = imgHist.slice(0, oldHist.length);
  if (baseEntries.length === oldHist.length && baseEntries.filter((h) => !h.empty_layer).length > k)
    throw new VlabError('E_REBASE_MISMATCH', `${names.image}'s history does not start with ${names.from}'s`);
  const config: ImageConfig = {
    ...img.config,
    config: rebaseConfig(img.config.config ?? {}, oldBase.config.config ?? {}, newBase.config.config ?? {}),
    rootfs: { type: 'layers', diff_ids: [...newBase.config.rootfs.diff_ids, ...ids.slice(k)] },
    history: [...(newBase.config.history ?? []), ...imgHist.slice(oldHist.length)],
  };
  const layers = [...newBase.manifest.layers, ...img.manifest.layers.slice(k)];
  const image = await store.putImage(config, layers);
  return { image, replaced: k, kept: ids.length - k };
}
