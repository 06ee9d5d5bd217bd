import pLimit from 'p-limit';
import { findStage, resolveStageBase, type Dockerfile, type Stage } from '@vlab/dockerfile';
import type { BuildSession, StageState } from './context.ts';
import { buildStage } from './stage.ts';

/** Stages the target needs: its FROM chain and every COPY --from / RUN --mount from, transitively. */
export function requiredStages(
  df: Dockerfile,
  target: Stage,
  globalArgs: Record<string, string>,
  named: ReadonlySet<string> = new Set(),
): Stage[] {
  const need = new Set<number>();
  const visit = (st: Stage): void => {
    if (need.has(st.index)) return;
    need.add(st.index);
    for (const d of stageDeps(df, st, globalArgs, named)) visit(d);
  };
  visit(target);
  return df.stages.filter((s) => need.has(s.index));
}

/** A named context (--build-context) replaces a stage of its name: that stage is not a dependency. */
function stageDeps(df: Dockerfile, st: Stage, globalArgs: Record<string, string>, named: ReadonlySet<string>): Stage[] {
  const out: Stage[] = [];
  const find = (ref: string) => (named.has(ref.toLowerCase()) ? undefined : findStage(df, ref));
  const add = (ref: string | undefined) => {
    const d = ref ? find(ref) : undefined;
    if (d && d.index !== st.index) out.push(d);
  };
  const base = find(resolveStageBase(df, st, globalArgs).image);
  if (base && base.index < st.index) out.push(base);
  for (const inst of st.instructions) {
    if (inst.kind === 'COPY' || inst.kind === 'ADD') add(inst.from);
    if (inst.kind === 'RUN') for (const m of inst.mounts) add(m.from);
  }
  return out;
}

/**
 * Run the stages the target needs, independent ones in parallel (p-limit). Stages are queued in
 * Dockerfile order, so a running stage only ever waits for stages queued before it: no deadlock.
 */
export async function solve(s: Omit<BuildSession, 'stageResult'>, target: Stage, parallelism = 4): Promise<StageState> {
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
  const stages = requiredStages(s.df, target, s.globalArgs, s.namedContexts.names());
  for (const st of stages) {
    const p = limit(() => buildStage(session, st));
    p.catch(() => undefined); // observed below through the target or a dependant
    results.set(st.index, p);
  }
  return results.get(target.index)!;
}
