/**
 * The build graph: which stages a target needs and why. A vertex is a stage; an edge is a stage
 * it reads (its FROM, a COPY --from, a RUN --mount from=). A reference that a named context
 * (--build-context) stands for is no edge: the name replaces a stage of that name (as BuildKit).
 * Pure: no fs, no store; references only known at run time (--from=$ARG) are left to the solver.
 */
import { findStage, resolveStageBase, type Dockerfile, type Stage } from '@vlab/dockerfile';

/** How a stage reads another. */
export type EdgeKind = 'FROM' | 'COPY --from' | 'RUN --mount from';

export interface Edge {
  /** Index of the stage read. */
  stage: number;
  via: EdgeKind;
}

export interface Vertex {
  stage: Stage;
  /** Stages this one reads, in instruction order, each (stage, via) once. */
  deps: Edge[];
  /** References to named contexts, as written (FROM, COPY --from, --mount from=). */
  named: string[];
}

export interface BuildPlan {
  /** Index of the stage the build produces. */
  target: number;
  /** The target and every stage it needs, transitively, in Dockerfile order. */
  vertices: Vertex[];
}

/** The vertices the target needs: its FROM chain and every COPY --from / RUN --mount from, transitively. */
export function planBuild(
  df: Dockerfile,
  target: Stage,
  globalArgs: Record<string, string>,
  named: ReadonlySet<string> = new Set(),
): BuildPlan {
  const vertices = new Map<number, Vertex>();
  const visit = (st: Stage): void => {
    if (vertices.has(st.index)) return;
    const v = vertexOf(df, st, globalArgs, named);
    vertices.set(st.index, v);
    for (const d of v.deps) visit(df.stages[d.stage]!);
  };
  visit(target);
  return { target: target.index, vertices: [...vertices.values()].sort((a, b) => a.stage.index - b.stage.index) };
}

function vertexOf(df: Dockerfile, st: Stage, globalArgs: Record<string, string>, named: ReadonlySet<string>): Vertex {
  const deps: Edge[] = [];
  const names: string[] = [];
  const add = (ref: string | undefined, via: EdgeKind, earlierOnly = false) => {
    if (!ref) return;
    if (named.has(ref.toLowerCase())) {
      if (!names.includes(ref)) names.push(ref);
      return;
    }
    const d = findStage(df, ref);
    if (!d || d.index === st.index || (earlierOnly && d.index > st.index)) return;
    if (!deps.some((e) => e.stage === d.index && e.via === via)) deps.push({ stage: d.index, via });
  };
  // FROM names a stage only when it comes earlier; a later one is an image of that name.
  add(resolveStageBase(df, st, globalArgs).image, 'FROM', true);
  for (const inst of st.instructions) {
    if (inst.kind === 'COPY' || inst.kind === 'ADD') add(inst.from, 'COPY --from');
    if (inst.kind === 'RUN') for (const m of inst.mounts) add(m.from, 'RUN --mount from');
  }
  return { stage: st, deps, named: names };
}
