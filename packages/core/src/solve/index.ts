export { solve } from './solver.ts';
export { planBuild, type BuildPlan, type Vertex, type Edge } from '../plan/plan.ts';
export type { BuildEvent, EventSink, StepRef } from './events.ts';
export type { StageState, BuildSession } from './context.ts';
export { stepKey } from './keys.ts';
