import { VlabError } from '@vlab/errors';
import { parseInstructionText, resolveStageBase, StageScope, type Instruction, type Stage } from '@vlab/dockerfile';
import type { BuildSession, StageState } from './context.ts';
import type { StepRef } from './events.ts';
import { baseState, epochOr } from './base.ts';
import { missReason, type StepInputs } from '../cache/cache.ts';
import { applyMeta, createdBy, envToRecord, META_KINDS, resolveWorkdir, shellOf } from './ops/meta.ts';
import { stepKey, normalize } from './keys.ts';
import { platformString } from '../image/platform.ts';
import { mkdirInRoot } from '../fsutil/in-root.ts';
import { resolveUser } from '../exec/user.ts';
import { runStep, withRunMounts } from './ops/run.ts';
import { planCopy, copyCacheInput, packWhileHashing } from './copy-step.ts';
import { copyInto, type HardLinks } from './ops/copy.ts';
import { fastCopy } from './fast-copy.ts';
import type { LayerRef } from '../image/types.ts';
import { checkRunEntitlements } from './entitlements.ts';
import { copyFromNamedDir } from './named-contexts.ts';
import { runFromMounts } from './run-from.ts';

/** What a layer-producing step needs: its cache inputs, and the work to do on a miss. */
interface LayerStep {
  args: Record<string, string>;
  content?: string;
  files?: Record<string, string>;
  work: (rootfs: string) => Promise<void>;
  /** A way to make the layer without a mounted tree; 'fallback' when this case needs one. */
  fast?: () => Promise<LayerRef | 'fallback'>;
}

/** Build one stage: FROM, ONBUILD triggers of the base, then each instruction in order. */
export async function buildStage(s: BuildSession, stage: Stage): Promise<StageState> {
  const { image } = resolveStageBase(s.df, stage, s.globalArgs);
  let state = await baseState(s, stage, image);
  state = { ...state, config: { ...state.config, config: { ...state.config.config } } };
  const scope = new StageScope({
    globalArgs: s.globalArgs,
    buildArgs: s.buildArgs,
    baseEnv: envToRecord(state.config.config.Env),
    escape: s.df.escape,
    predefined: s.predefinedArgs,
  });
  const triggers = (state.config.config.OnBuild ?? []).map((t) => parseInstructionText(t, { escape: s.df.escape }));
  state.config.config.OnBuild = null;
  const steps: Instruction[] = [...triggers, ...stage.instructions];
  const flags = { cmdSet: false };
  const label = stage.name ?? `stage-${stage.index}`;
  for (let i = 0; i < steps.length; i++) {
    if (s.signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
    const raw = steps[i]!;
    const ref: StepRef = {
      id: `${stage.index}:${i + 1}`,
      name: `[${label} ${i + 1}/${steps.length}] ${oneLine(raw.original)}`,
      stage: label,
      location: { file: s.dockerfilePath, line: raw.range.start.line, column: raw.range.start.column },
    };
    try {
      state = await buildStep(s, stage, scope, state, raw, ref, flags);
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
  return state;
}

async function buildStep(
  s: BuildSession,
  stage: Stage,
  scope: StageScope,
  state: StageState,
  raw: Instruction,
  ref: StepRef,
  flags: { cmdSet: boolean },
): Promise<StageState> {
  const started = Date.now();
  s.emit({ type: 'step-start', ...ref, time: started });
  const { instruction: inst, usedArgs } = scope.evaluate(raw);
  const platform = platformString(s.platform);

  // BuildKit makes no layer for `WORKDIR /` (nothing to create), only the config change.
  const rootWorkdir = inst.kind === 'WORKDIR' && resolveWorkdir(state.config.config.WorkingDir, inst.path) === '/';
  if (META_KINDS.has(inst.kind) || rootWorkdir) {
    const config = rootWorkdir
      ? { ...state.config, config: { ...state.config.config, WorkingDir: '/' } }
      : applyMeta(state.config, inst, flags);
    if (inst.kind !== 'ARG') {
      config.history = [
        ...config.history,
        { created: state.created, created_by: createdBy(inst, shellOf(config.config)), empty_layer: true },
      ];
    }
    const key = stepKey({ parent: state.key, instruction: inst, args: usedArgs, platform });
    s.emit({ type: 'step-done', ...ref, cached: true, durationMs: Date.now() - started, time: Date.now() });
    return { ...state, key, config };
  }

  let config = state.config;
  let step: LayerStep;
  if (inst.kind === 'WORKDIR') {
    const dir = resolveWorkdir(config.config.WorkingDir, inst.path);
    config = { ...config, config: { ...config.config, WorkingDir: dir } };
    const user = config.config.User;
    // BuildKit makes WORKDIR with `mkdir -p` as USER: every dir it creates is the user's, resolved
    // as a file op's chown (a bare uid gets gid = uid), not as the process's USER.
    const owner = async (root: string) => (user ? await resolveUser(root, user, 'chown') : undefined);
    step = { args: usedArgs, work: async (root) => void (await mkdirInRoot(root, dir, await owner(root))) };
  } else if (inst.kind === 'RUN') {
    checkRunEntitlements(inst, s.allow);
    const env = { ...scope.runEnv() };
    const from = await runFromMounts(s, stage, inst);
    step = {
      args: usedArgs,
      // The build-wide RUN settings and what each bind from= is.
      content: [s.run.key, from.content].filter(Boolean).join(' ') || undefined,
      files: from.files,
      work: async (rootfs) =>
        from.with(async (stageRoot) => {
          const sources = {
            cacheRoot: s.store.path('cache-mounts'),
            contextDir: s.context.root,
            context: s.context,
            scratchDir: s.store.path('tmp'),
            secrets: s.secrets,
            stageRoot,
          };
          await withRunMounts(inst, sources, async (mounts) =>
            runStep({
              executor: await s.executor(),
              rootfs,
              inst: s.network === 'host' && !inst.network ? { ...inst, network: 'host' } : inst,
              config: config.config,
              env,
              mounts: [...s.run.mounts, ...mounts],
              extraHosts: s.run.extraHosts,
              limits: s.limits,
              signal: s.signal,
              onOutput: (stream, data) => s.emit({ type: 'step-log', ...ref, stream, data, time: Date.now() }),
            }),
          );
        }),
    };
  } else if (inst.kind === 'COPY' || inst.kind === 'ADD') {
    const src = await copyFromNamedDir(s, inst);
    const packed = await packWhileHashing(src.session, src.inst, config.config, state.layers);
    const input = await copyCacheInput(src.session, stage, src.inst);
    step = {
      args: usedArgs,
      content: input.digest,
      files: input.files,
      work: async (rootfs) => {
        const links: HardLinks = new Map();
        await planCopy(src.session, src.inst, config.config, rootfs, async (plan, owner, chmod) =>
          copyInto(rootfs, plan, { owner, chmod, links }),
        );
      },
      fast: async () => packed ?? fastCopy(src.session, src.inst, config.config, state.layers),
    };
  } else {
    throw new VlabError('E_UNSUPPORTED', `${inst.kind} is not supported inside a stage`);
  }

  const key = stepKey({ parent: state.key, instruction: inst, args: step.args, content: step.content, platform });
  const inputs: StepInputs = {
    parentKey: state.key,
    instruction: normalize(inst),
    args: step.args,
    files: step.files ?? {},
  };
  const slot = stepKey({ parent: s.dockerfilePath, instruction: `${stage.index}:${ref.id}`, args: {}, platform });
  const history = (created: string, layer: LayerRef | undefined) => [
    ...config.history,
    { created, created_by: createdBy(inst, shellOf(config.config)), ...(layer ? {} : { empty_layer: true }) },
  ];

  const bypass =
    s.noCache ||
    (stage.name !== undefined && s.noCacheFilter.has(stage.name)) ||
    s.noCacheFilter.has(String(stage.index));
  const found = bypass ? undefined : await s.cache.get(key);
  // held for this build, and complete: a record whose layer a gc took before the hold is a miss
  const hit = found && (await s.store.holdLayers(found.layers)) ? found : undefined;
  if (hit) {
    s.emit({ type: 'step-cached', ...ref, time: Date.now() });
    s.emit({ type: 'step-done', ...ref, cached: true, durationMs: Date.now() - started, time: Date.now() });
    const layer = hit.layers.length > state.layers.length ? hit.layers[hit.layers.length - 1] : undefined;
    return {
      key,
      layers: hit.layers,
      created: hit.created,
      config: { ...config, history: history(hit.created, layer) },
    };
  }
  s.emit({
    type: 'step-miss',
    ...ref,
    reason: bypass ? 'cache disabled (--no-cache)' : missReason(await s.cache.lastInputs(slot), inputs),
    time: Date.now(),
  });
  const quick = step.fast ? await step.fast() : 'fallback';
  const layer =
    quick !== 'fallback'
      ? quick
      : await s.layers.withWritableSnapshot(state.layers, step.work, { sourceDateEpoch: s.sourceDateEpoch });
  const created = epochOr(s, new Date());
  const layers = layer ? [...state.layers, layer] : state.layers;
  await s.cache.put({ key, layers, config, created });
  await s.cache.saveInputs(slot, inputs);
  s.emit({ type: 'step-done', ...ref, cached: false, durationMs: Date.now() - started, time: Date.now() });
  return { key, layers, created, config: { ...config, history: history(created, layer) } };
}

function oneLine(text: string): string {
  const t = text
    .replace(/\s*\\\r?\n\s*/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
}
