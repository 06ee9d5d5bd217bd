import { VlabError } from '@vlab/errors';
import { findStage, type Stage } from '@vlab/dockerfile';
import { MEDIA, type ImageConfig, type LayerRef } from '../image/types.ts';
import type { Store, StoredImage } from '../store/store.ts';
import type { BuildSession, StageState } from './context.ts';
import { stepKey } from './keys.ts';
import { platformString } from '../image/platform.ts';
import { loadExternal } from '../image/load.ts';

/** The state a stage starts from: scratch, an earlier stage, or an image in the store. */
export async function baseState(s: BuildSession, stage: Stage, image: string): Promise<StageState> {
  const ref = findStage(s.df, image);
  if (ref && ref.index < stage.index) return s.stageResult(ref.index);
  if (image === 'scratch') {
    const config: ImageConfig = { ...s.platform, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
    return { key: stepKey({ parent: '', instruction: 'FROM scratch', args: {}, platform: platformString(s.platform) }), layers: [], config, created: epochOr(s, new Date(0)) };
  }
  const stored = await resolveImage(s.store, image);
  return {
    key: stepKey({ parent: '', instruction: `FROM ${stored.manifestDigest}`, args: {}, platform: platformString(s.platform) }),
    layers: layersOf(stored),
    config: stored.config,
    created: stored.config.created ?? new Date(0).toISOString(),
  };
}

export async function resolveImage(store: Store, image: string): Promise<StoredImage> {
  const stored = (await loadExternal(store, image)) ?? (await store.resolve(image));
  if (!stored) {
    throw new VlabError('E_IMAGE_NOT_FOUND', `image "${image}" is not in the local store (${store.root}); import one with "vbuild import rootfs.tar ${image}" or load it with "vbuild load"`);
  }
  return stored;
}

export function layersOf(img: StoredImage): LayerRef[] {
  return img.manifest.layers.map((d, i) => ({
    digest: d.digest,
    size: d.size,
    mediaType: d.mediaType || MEDIA.layer,
    diffId: img.config.rootfs.diff_ids[i] ?? d.digest,
  }));
}

export function epochOr(s: { sourceDateEpoch?: number }, d: Date): string {
  return s.sourceDateEpoch !== undefined ? new Date(s.sourceDateEpoch * 1000).toISOString() : d.toISOString();
}
