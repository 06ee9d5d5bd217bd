import { VlabError, type SourceLocation } from '@vlab/errors';
import { findStage, type Stage } from '@vlab/dockerfile';
import { MEDIA, type ImageConfig, type LayerRef } from '../image/types.ts';
import type { StoredImage } from '../store/store.ts';
import type { BuildInputs, ImageSource, StageLookup, StageState } from './context.ts';
import { stepKey } from './keys.ts';
import { platformString } from '../image/platform.ts';
import { DEFAULT_PATH } from '../exec/defaults.ts';
import { refuseTransport, type ContextUse } from './named-contexts.ts';
import { pullForBuild } from './pull-base.ts';

/** The state a stage starts from: a named context, scratch, an earlier stage, or an image in the store. */
export async function baseState(s: StageLookup & BuildInputs, stage: Stage, image: string): Promise<StageState> {
  const at = { file: s.dockerfilePath, ...stage.from.range.start };
  const named = await located(at, () => s.namedContexts.image(image, 'FROM'));
  if (named) return imageState(s, named);
  const ref = findStage(s.df, image);
  if (ref && ref.index < stage.index) return s.stageResult(ref.index);
  if (image === 'scratch') {
    // BuildKit's empty image carries the default PATH, so `FROM scratch` + RUN finds binaries.
    const config: ImageConfig = {
      ...s.platform,
      config: { Env: [`PATH=${DEFAULT_PATH}`] },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    };
    return {
      key: stepKey({ parent: '', instruction: 'FROM scratch', args: {}, platform: platformString(s.platform) }),
      layers: [],
      config,
      created: epochOr(s, new Date(0)),
    };
  }
  return imageState(s, await located(at, () => resolveImage(s, image, 'FROM')));
}

function imageState(s: Pick<BuildInputs, 'platform'>, stored: StoredImage): StageState {
  return {
    key: stepKey({
      parent: '',
      instruction: `FROM ${imageKey(stored)}`,
      args: {},
      platform: platformString(s.platform),
    }),
    layers: layersOf(stored),
    config: stored.config,
    created: stored.config.created ?? new Date(0).toISOString(),
  };
}

/**
 * An image of the local store by name (callers look up named contexts first: they override
 * stages too). A host transport written in the Dockerfile (oci-layout://…) is E_NAMED_CONTEXT:
 * only the command line names host paths.
 */
export async function resolveImage(s: ImageSource, image: string, use: ContextUse): Promise<StoredImage> {
  refuseTransport(image, use);
  const notFound = `image "${image}" is not in the local store (${s.store.root}); import one with "vbuild import rootfs.tar ${image}" or load it with "vbuild load"`;
  // not in the store (or --pull): from its registry (pull-base.ts)
  const stored = (!s.pull && (await s.store.resolve(image))) || (await pullForBuild(s, image, notFound));
  // held for the whole build: a concurrent rmi + prune cannot take its layers from under us
  if (!(await s.store.holdImage(stored)))
    throw new VlabError(
      'E_IMAGE_NOT_FOUND',
      `image "${image}" was removed (rmi and prune) while this build started: build again`,
    );
  return stored;
}

/** FROM runs before any step, outside the step's error wrapper: give its errors the FROM line. */
async function located<T>(at: SourceLocation, f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof VlabError && !e.location)
      throw new VlabError(e.code, e.message, { location: at, cause: e, details: e.details });
    throw e;
  }
}

/**
 * What a step keys an image by (FROM, COPY --from, RUN --mount from=): its config digest (the image
 * id), which names the content (diff_ids) and config. Not the manifest digest: a pulled, loaded
 * or pushed copy of one image has its own manifest (compressed or not), and keys must be the same
 * on every machine that has the image, so a registry cache can be shared.
 */
export function imageKey(img: StoredImage): string {
  return img.configDigest;
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
