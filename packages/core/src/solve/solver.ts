import pLimit from 'p-limit';
import { VlabError } from '@vlab/errors';
import { stageCycle, type BuildPlan } from '../plan/plan.ts';
import type { BuildSession, StageState } from './context.ts';
import { buildStage } from './stage.ts';

/** Solves again after a bad registry cache layer at most this many times (then the error stands). */
const MAX_RESOLVES = 3;

/**
 * The plan's target state, its layers in the store (fetched where a registry cache hit named
 * them) with their sizes as stored. A registry cache layer that fails its checks (E_CACHE_LAYER)
 * is a warning and the build is solved again: the entries that named it are misses now, so
 * their steps are built (bounded: each retry has one more bad layer).
 */
export async function solve(
  s: Omit<BuildSession, 'stageResult'>,
  plan: BuildPlan,
  parallelism = 4,
): Promise<StageState> {
  for (let attempt = 0; ; attempt++) {
    try {
      const state = await solveOnce(s, plan, parallelism);
      if (!s.registryCache) return state;
      await s.layers.ensureBlobs(state.layers);
      await s.registryCache.saveLocal(s.cache);
      const layers = await Promise.all(
        state.layers.map(async (l) => ({ ...l, size: await s.store.blobs.size(l.digest) })),
      );
      return { ...state, layers };
    } catch (e) {
      const failed = s.registryCache?.takeFailures() ?? [];
      if (!(e instanceof VlabError) || e.code !== 'E_CACHE_LAYER' || !failed.length || attempt >= MAX_RESOLVES) throw e;
      for (const f of failed)
        s.emit({ type: 'warning', message: `${f}: the steps it was for are built instead`, time: Date.now() });
    }
  }
}

/**
 * Run the plan's vertices, independent ones in parallel (p-limit). The plan puts each stage after
 * the stages it reads, so a running stage only ever waits for stages started before it: no stage
 * holds a slot that the one it waits for needs. The first stage to fail stops the others (as
 * BuildKit cancels its other vertices), and the build ends only once every started stage has:
 * none runs on after the build reported, e.g. taking a cgroup from the executor the build closed.
 */
async function solveOnce(
  s: Omit<BuildSession, 'stageResult'>,
  plan: BuildPlan,
  parallelism: number,
): Promise<StageState> {
  const limit = pLimit(parallelism);
  const results = new Map<number, Promise<StageState>>();
  const waits = new Map<number, Set<number>>();
  const stop = new AbortController();
  const signal = s.signal ? AbortSignal.any([s.signal, stop.signal]) : stop.signal;
  let first: { error: unknown } | undefined;
  const track = (p: Promise<StageState>) => {
    // observed below through the target or a dependant; the first failure stops the rest
    p.catch((error: unknown) => {
      first ??= { error };
      stop.abort();
    });
    return p;
  };
  // Each stage gets its own session: stageResult knows who waits, so a wait that closes a circle
  // (a reference known only at run time, e.g. --from=$ARG; the plan refuses the others) is an error.
  const sessionOf = (stage: number): BuildSession => ({
    ...s,
    signal,
    stageResult: (index: number) => {
      const circle = pathOf(waits, index, stage);
      if (circle) return Promise.reject(stageCycle(s.df, [stage, ...circle]));
      waits.set(stage, (waits.get(stage) ?? new Set()).add(index));
      let p = results.get(index);
      if (!p) {
        // A dependency not found statically: build it outside the limit.
        p = track(buildStage(sessionOf(index), s.df.stages[index]!));
        results.set(index, p);
      }
      return p;
    },
  });
  for (const v of plan.vertices)
    results.set(v.stage.index, track(limit(() => buildStage(sessionOf(v.stage.index), v.stage))));
  try {
    return await results.get(plan.target)!;
  } catch (e) {
    stop.abort();
    // every started stage, also one started while we wait (a dependency found at run time)
    for (let n = -1; n !== results.size;) {
      n = results.size;
      await Promise.allSettled([...results.values()]);
    }
    // the failure that stopped the build, not a stage it stopped (E_ABORTED)
    throw first?.error ?? e;
  }
}

/** The stages from `from` to `to` along recorded waits (both ends included), if `from` waits on `to`. */
function pathOf(waits: Map<number, Set<number>>, from: number, to: number): number[] | undefined {
  if (from === to) return [to];
  for (const next of waits.get(from) ?? []) {
    const rest = pathOf(waits, next, to);
    if (rest) return [from, ...rest];
  }
  return undefined;
}
