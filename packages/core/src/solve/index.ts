export { solve, requiredStages } from './solver.ts';
export type { BuildEvent, EventSink, StepRef } from './events.ts';
export type { StageState, BuildSession } from './context.ts';
export { stepKey } from './keys.ts';
