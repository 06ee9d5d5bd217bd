export { solve, requiredStages } from './solver.ts';
export type { BuildEvent, EventSink, StepRef } from './events.ts';
export type { StageState, BuildSession } from './context.ts';
export { LayerManager } from './layers.ts';
export { stepKey, chainIds } from './keys.ts';
