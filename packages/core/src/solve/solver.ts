import pLimit from 'p-limit';
import type { BuildPlan } from '../plan/plan.ts';
import type { BuildSession, StageState } from './context.ts';
import { buildStage } from './stage.ts';

/**
 * Run the plan's vertices, independent ones in parallel (p-limit). Stages are queued in
 * Dockerfile order, so a running stage only ever waits for stages queued before it: no deadlock.
 */
export async function solve(
  s: Omit<BuildSession, 'stageResult'>,
  plan: BuildPlan,
  parallelism = 4,
): Promise<StageState> {
  const limit = pLimit(parallelism);
  const results = new Map<number, Promise<StageState>>();
  const session: BuildSession = {
    ...s,
    stageResult: (index: number) => {
      let p = results.get(index);
      if (!p) {
        // A dependency not found statically (e.g. --from=$ARG): build it outside the limit.
        p = buildStage(session, s.df.stages[index]!);
        results.set(index, p);
      }
      return p;
    },
  };
  for (const v of plan.vertices) {
    const p = limit(() => buildStage(session, v.stage));
    p.catch(() => undefined); // observed below through the target or a dependant
    results.set(v.stage.index, p);
  }
  return results.get(plan.target)!;
}
