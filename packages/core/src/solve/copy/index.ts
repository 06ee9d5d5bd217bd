/**
 * COPY/ADD: the cache input (copyKeyInput, computed before any work) and the layer (copyLayer):
 * one plan, packed straight into a layer tar, or written into a mounted snapshot when the plan
 * unpacks an archive (or VLAB_NO_FAST_COPY=1 asks for it: the parity test compares both).
 */
import fsp from 'node:fs/promises';
import { UnionView } from '@vlab/overlay';
import type { CopyInstruction, Stage } from '@vlab/dockerfile';
import type { ContainerConfig, LayerRef } from '../../image/types.ts';
import type { BuildSession } from '../context.ts';
import { resolveUserInView } from '../../exec/index.ts';
import { chainIds } from '../../image/chain.ts';
import { heredocFiles, parseChmod } from '../ops/copy.ts';
import { fromSource } from './key.ts';
import { makePlan, type CopyPlan } from './plan.ts';
import { contextRoots, fromStageRoots, heredocRoots, type Gathered } from './sources.ts';
import { packCopyLayer } from './pack.ts';
import { writeCopyInto } from './write.ts';
import { phases } from '../../debug/phases.ts';

export { copyKeyInput, fromSource } from './key.ts';
export { packCopyLayer } from './pack.ts';
export { writeCopyInto } from './write.ts';
export type { CopyPlan, PlanEntry } from './plan.ts';

/** The layer COPY/ADD `inst` adds on top of `layers`. */
export async function copyLayer(
  s: BuildSession,
  stage: Stage,
  inst: CopyInstruction,
  config: ContainerConfig,
  layers: LayerRef[],
): Promise<LayerRef> {
  return withCopyPlan(s, stage, inst, config, layers, (plan) =>
    plan.extracts.length || process.env.VLAB_NO_FAST_COPY === '1'
      ? s.layers.withWritableSnapshot(layers, (rootfs) => writeCopyInto(rootfs, plan), {
          sourceDateEpoch: s.sourceDateEpoch,
        })
      : packCopyLayer(s, plan),
  );
}

/**
 * The plan of `inst` over `layers`, for `use` to write: the sources it names (a heredoc's temp
 * files, another stage's mounted view) stay there until `use` is done.
 */
export async function withCopyPlan<T>(
  s: BuildSession,
  stage: Stage,
  inst: CopyInstruction,
  config: ContainerConfig,
  layers: LayerRef[],
  use: (plan: CopyPlan) => Promise<T>,
): Promise<T> {
  const lap = phases('copy');
  const view = await imageView(s, layers);
  const plan = async (sources: Gathered) => {
    lap('sources');
    const made = await makePlan(inst, {
      workdir: config.WorkingDir || '/',
      view,
      now: Math.floor(Date.now() / 1000),
      owner: inst.chown ? await resolveUserInView(view, inst.chown, 'chown') : undefined,
      chmod: parseChmod(inst),
      sources,
    });
    lap('plan');
    return made;
  };
  if (inst.heredocs.length) {
    const { dir, items } = await heredocFiles(s.store.path('tmp'), inst.heredocs);
    try {
      return await use(await plan(heredocRoots(items)));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }
  if (inst.from) {
    const src = await fromSource(s, stage, inst.from);
    return s.layers.withView(src.layers, async (root) => use(await plan(await fromStageRoots(inst, root))));
  }
  return use(await plan(await contextRoots(s, inst)));
}

/**
 * The image below, read without mounting: each layer's committed snapshot dir when the overlay
 * driver has it, else its uncompressed blob. A compressed layer is unpacked into snapshots first
 * (the native driver's top snapshot is the whole tree).
 */
async function imageView(s: BuildSession, layers: LayerRef[]): Promise<UnionView> {
  const snaps = await s.layers.snapshots();
  const chain = chainIds(layers.map((l) => l.diffId));
  // held before they are looked at: a gc cannot take a snapshot dir while the view reads it
  await s.store.lease.holdLayers(layers);
  await s.layers.ensureBlobs(layers); // a registry cache hit below is fetched now
  const paths: string[] = [];
  for (const [i, l] of layers.entries()) {
    const snap = snaps.driver === 'overlay' ? await snaps.stat(chain[i]!) : undefined;
    if (snap) paths.push((await snaps.mounts(chain[i]!))[0]!.source);
    else if (!l.mediaType.includes('gzip')) paths.push(s.store.blobs.path(l.digest));
    else {
      const top = await s.layers.ensureSnapshot(layers);
      if (snaps.driver === 'overlay') return imageView(s, layers);
      return new UnionView([(await snaps.mounts(top!))[0]!.source]);
    }
  }
  return new UnionView(paths);
}
