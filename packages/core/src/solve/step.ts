/**
 * The one step runner: every instruction's module goes through the same key, lookup, hold,
 * miss reason, events and history, so cache rules cannot drift apart between instructions.
 */
import { VlabError } from '@vlab/errors';
import type { Instruction, Stage, StageScope } from '@vlab/dockerfile';
import type { StepRef } from './events.ts';
import type { BuildSession, CachePolicy, StageState } from './context.ts';
import { missReason, type StepInputs } from '../cache/cache.ts';
import { createdBy, shellOf } from './ops/meta.ts';
import { stepKey, normalize } from './keys.ts';
import { platformString } from '../image/platform.ts';
import { epochOr } from './base.ts';
import type { ImageConfig, LayerRef } from '../image/types.ts';
import { moduleFor, type StepCall } from './instructions/index.ts';
import { phases } from '../debug/phases.ts';

/** One instruction of a stage, before its args are expanded. */
export interface StepAt {
  raw: Instruction;
  stage: Stage;
  scope: StageScope;
  parent: StageState;
  ref: StepRef;
  flags: { cmdSet: boolean };
}

/** Run one step; a failure is emitted and wrapped with the step's name and Dockerfile line. */
export async function runStep(s: BuildSession, at: StepAt): Promise<StageState> {
  const { raw, ref, ...rest } = at;
  const started = Date.now();
  s.emit({ type: 'step-start', ...ref, time: started });
  try {
    const { instruction: inst, usedArgs } = at.scope.evaluate(raw);
    return await keyedStep(s, { ...rest, ref, inst, usedArgs }, started);
  } catch (e) {
    const err = e instanceof VlabError ? e : new VlabError('E_STEP', (e as Error).message, { cause: e });
    s.emit({ type: 'step-error', ...ref, code: err.code, message: err.message, time: Date.now() });
    if (e instanceof VlabError && e.location) throw e;
    throw new VlabError(err.code, `${ref.name}: ${err.message}`, {
      location: ref.location,
      cause: e,
      details: err.details,
    });
  }
}

async function keyedStep(s: BuildSession, call: StepCall, started: number): Promise<StageState> {
  const { inst, parent, stage, ref } = call;
  const lap = phases('step');
  const mod = moduleFor(inst.kind);
  const platform = platformString(s.platform);
  const config = mod.config(call);
  const input = await mod.cacheKey(s, call, config);
  const key = stepKey({ parent: parent.key, instruction: inst, args: input.args, content: input.content, platform });
  lap('key');
  const withHistory = (created: string, layer: LayerRef | undefined): ImageConfig => ({
    ...config,
    history:
      mod.inHistory?.(inst) === false
        ? config.history
        : [...config.history, historyEntry(inst, config, created, layer)],
  });
  const done = (cached: boolean) =>
    s.emit({ type: 'step-done', ...ref, cached, durationMs: Date.now() - started, time: Date.now() });

  if (input.layer === false) {
    done(true);
    return { ...parent, key, config: withHistory(parent.created, undefined) };
  }

  const inputs: StepInputs = {
    parentKey: parent.key,
    instruction: normalize(inst),
    args: input.args,
    files: input.files ?? {},
  };
  // Where this step stands in this Dockerfile: the last inputs seen there explain a miss.
  const slot = stepKey({ parent: s.dockerfilePath, instruction: `${stage.index}:${ref.id}`, args: {}, platform });
  const bypass = cacheBypassed(s, stage);
  const remote = s.registryCache;
  const found = bypass ? undefined : await s.cache.get(key);
  // held for this build, and complete: a record whose layer a gc took before the hold is a miss;
  // so is one naming a layer a registry cache gave that failed its checks in this build
  const hit =
    found && (await s.store.holdLayers(found.layers)) && (remote?.trusts(found.layers) ?? true) ? found : undefined;
  // what a --cache-to exports of this step
  const record = (layers: LayerRef[], created: string, layer: LayerRef | undefined) =>
    remote?.recorded.set(key, { key, layers, created, history: historyEntry(inst, config, created, layer) });
  const topLayer = (layers: LayerRef[]) =>
    layers.length > parent.layers.length ? layers[layers.length - 1] : undefined;
  lap('lookup');
  if (hit) {
    s.emit({ type: 'step-cached', ...ref, time: Date.now() });
    done(true);
    const layer = topLayer(hit.layers);
    record(hit.layers, hit.created, layer);
    return { key, layers: hit.layers, created: hit.created, config: withHistory(hit.created, layer) };
  }
  // then the registry caches (--cache-from): the layer is fetched only when something reads it
  const far = bypass ? undefined : remote?.lookup(key, parent.layers);
  if (far && 'hit' in far) {
    const { layers, created, from } = far.hit;
    await s.store.lease.holdLayers(layers);
    remote!.keepLocally({ key, layers, config, created }); // recorded here once its layers are
    await s.cache.saveInputs(slot, inputs);
    s.emit({ type: 'step-cached', ...ref, from, time: Date.now() });
    done(true);
    const layer = topLayer(layers);
    record(layers, created, layer);
    return { key, layers, created, config: withHistory(created, layer) };
  }
  s.emit({
    type: 'step-miss',
    ...ref,
    reason: bypass
      ? 'cache disabled (--no-cache)'
      : far && 'unusable' in far
        ? far.unusable
        : missReason(await s.cache.lastInputs(slot), inputs),
    time: Date.now(),
  });
  lap('miss-reason');
  const layer = await mod.run(s, call, config, input.found);
  lap('run');
  const created = epochOr(s, new Date());
  const layers = layer ? [...parent.layers, layer] : parent.layers;
  await s.cache.put({ key, layers, config, created });
  await s.cache.saveInputs(slot, inputs);
  lap('cache-record');
  done(false);
  record(layers, created, layer);
  return { key, layers, created, config: withHistory(created, layer) };
}

function historyEntry(inst: Instruction, config: ImageConfig, created: string, layer: LayerRef | undefined) {
  return { created, created_by: createdBy(inst, shellOf(config.config)), ...(layer ? {} : { empty_layer: true }) };
}

/** --no-cache, or --no-cache-filter naming the stage (by name or index). */
function cacheBypassed(p: CachePolicy, stage: { name?: string; index: number }): boolean {
  return (
    p.noCache ||
    (stage.name !== undefined && p.noCacheFilter.has(stage.name)) ||
    p.noCacheFilter.has(String(stage.index))
  );
}
