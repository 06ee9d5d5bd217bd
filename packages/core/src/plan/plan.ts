/**
 * The build graph: which stages a target needs and why. A vertex is a stage; an edge is a stage
 * it reads (its FROM, a COPY --from, a RUN --mount from=). A reference that a named context
 * (--build-context) stands for is no edge: the name replaces a stage of that name (as BuildKit).
 * Pure: no fs, no store; references only known at run time (--from=$ARG) are left to the solver.
 */
import { VlabError, type SourceLocation } from '@vlab/errors';
import { findStage, resolveStageBase, type Dockerfile, type Stage } from '@vlab/dockerfile';

/** How a stage reads another. */
export type EdgeKind = 'FROM' | 'COPY --from' | 'RUN --mount from';

export interface Edge {
  /** Index of the stage read. */
  stage: number;
  via: EdgeKind;
  /** The instruction that reads it. */
  at: { line: number; column: number };
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
  /**
   * The target and every stage it needs, transitively: each after the stages it reads, else in
   * Dockerfile order. So a stage run in this order only waits for stages started before it.
   */
  vertices: Vertex[];
}

export interface PlanOptions {
  globalArgs: Record<string, string>;
  /** Named contexts (lower-cased): they replace stages of their name. */
  named?: ReadonlySet<string>;
  /** The Dockerfile's path, for error locations. */
  file?: string;
}

/** The vertices the target needs. E_STAGE_CYCLE when stages read each other in a circle. */
export function planBuild(df: Dockerfile, target: Stage, opts: PlanOptions): BuildPlan {
  const needed = new Map<number, Vertex>();
  const visit = (st: Stage): void => {
    if (needed.has(st.index)) return;
    const v = vertexOf(df, st, opts.globalArgs, opts.named ?? new Set());
    needed.set(st.index, v);
    for (const d of v.deps) visit(df.stages[d.stage]!);
  };
  visit(target);
  return { target: target.index, vertices: ordered(df, needed, opts.file) };
}

/** A circle of stage waits (names as the user wrote them): no order can build it. */
export function stageCycle(df: Dockerfile, circle: number[], location?: SourceLocation): VlabError {
  const name = (i: number) => df.stages[i]!.name ?? String(i);
  return new VlabError(
    'E_STAGE_CYCLE',
    `circular dependency detected on stage: ${name(circle[0]!)} (${circle.map(name).join(' -> ')}); ` +
      'a stage cannot read itself through other stages: move what they share into a stage of its own',
    { location },
  );
}

/** Dependencies first, else Dockerfile order (Kahn's algorithm, lowest index first). */
function ordered(df: Dockerfile, needed: Map<number, Vertex>, file?: string): Vertex[] {
  const out: Vertex[] = [];
  const placed = new Set<number>();
  const rest = [...needed.values()].sort((a, b) => a.stage.index - b.stage.index);
  while (rest.length) {
    const i = rest.findIndex((v) => v.deps.every((d) => placed.has(d.stage)));
    if (i < 0) throw cycleIn(df, rest, file);
    const [v] = rest.splice(i, 1);
    out.push(v!);
    placed.add(v!.stage.index);
  }
  return out;
}

/** Every vertex left waits for another left: walk the waits from the first until one repeats. */
function cycleIn(df: Dockerfile, rest: Vertex[], file?: string): VlabError {
  const byIndex = new Map(rest.map((v) => [v.stage.index, v]));
  const path: Edge[] = [];
  const seen: number[] = [];
  let at = rest[0]!.stage.index;
  while (!seen.includes(at)) {
    seen.push(at);
    const edge = byIndex.get(at)!.deps.find((d) => byIndex.has(d.stage))!;
    path.push(edge);
    at = edge.stage;
  }
  const start = seen.indexOf(at);
  const circle = [...seen.slice(start), at];
  return stageCycle(df, circle, { file, ...path[path.length - 1]!.at });
}

function vertexOf(df: Dockerfile, st: Stage, globalArgs: Record<string, string>, named: ReadonlySet<string>): Vertex {
  const deps: Edge[] = [];
  const names: string[] = [];
  const add = (ref: string | undefined, via: EdgeKind, at: Edge['at'], earlierOnly = false) => {
    if (!ref) return;
    if (named.has(ref.toLowerCase())) {
      if (!names.includes(ref)) names.push(ref);
      return;
    }
    const d = findStage(df, ref);
    if (!d || d.index === st.index || (earlierOnly && d.index > st.index)) return;
    if (!deps.some((e) => e.stage === d.index && e.via === via)) deps.push({ stage: d.index, via, at });
  };
  // FROM names a stage only when it comes earlier; a later one is an image of that name.
  add(resolveStageBase(df, st, globalArgs).image, 'FROM', st.from.range.start, true);
  for (const inst of st.instructions) {
    if (inst.kind === 'COPY' || inst.kind === 'ADD') add(inst.from, 'COPY --from', inst.range.start);
    if (inst.kind === 'RUN') for (const m of inst.mounts) add(m.from, 'RUN --mount from', inst.range.start);
  }
  return { stage: st, deps, named: names };
}
