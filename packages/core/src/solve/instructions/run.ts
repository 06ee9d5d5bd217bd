/** RUN: a command in a container on the parent's tree; its layer is what the command changed. */
import type { RunInstruction } from '@vlab/dockerfile';
import type { BuildInputs, BuildReport, BuildServices, BuildSources, RunSettings } from '../context.ts';
import { checkRunEntitlements } from '../entitlements.ts';
import { runStep, withRunMounts } from '../ops/run.ts';
import { runFromMounts, type RunFromMounts } from '../run-from.ts';
import { inSnapshot } from './snapshot.ts';
import type { StepModule } from './types.ts';
import { phases } from '../../debug/phases.ts';

/** The parts a RUN reads: all but the cache policy (the runner's) and ADD's downloads. */
type Parts = RunSettings & BuildServices & BuildSources & BuildInputs & BuildReport;

export const run: StepModule<RunInstruction, RunFromMounts, Parts> = {
  config: (call) => call.parent.config,
  async cacheKey(b, call) {
    // Refused before anything runs or is looked up: a cached step needs the same grant.
    checkRunEntitlements(call.inst, b.allow);
    // What each bind's source is (another stage's key, an image digest, the context's content).
    const from = await runFromMounts(b, call.stage, call.inst);
    return {
      args: call.usedArgs,
      // The build-wide RUN settings and what each bind shows.
      content: [b.run.key, from.content].filter(Boolean).join(' ') || undefined,
      files: from.files,
      found: from,
    };
  },
  run(b, call, config, from) {
    const { inst, ref } = call;
    const env = { ...call.scope.runEnv() };
    return inSnapshot(b, call.parent, (rootfs) =>
      from.with(async (stageRoot) => {
        const lap = phases('run');
        const sources = {
          cacheRoot: b.store.path('cache-mounts'),
          contextDir: b.context.root,
          context: b.context,
          scratchDir: b.store.path('tmp'),
          secrets: b.secrets,
          stageRoot,
        };
        await withRunMounts(inst, sources, async (mounts) => {
          const executor = await b.executor();
          lap('executor');
          await runStep({
            executor,
            rootfs,
            inst: b.network === 'host' && !inst.network ? { ...inst, network: 'host' } : inst,
            config: config.config,
            env,
            mounts: [...b.run.mounts, ...mounts],
            extraHosts: b.run.extraHosts,
            limits: b.limits,
            signal: b.signal,
            onOutput: (stream, data) => b.emit({ type: 'step-log', ...ref, stream, data, time: Date.now() }),
          });
          lap('exec');
        });
      }),
    );
  },
};
