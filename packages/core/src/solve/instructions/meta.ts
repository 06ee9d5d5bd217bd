/** ENV, LABEL, CMD, USER and the other config-only instructions: no layer, no lookup, no work. */
import type { Instruction } from '@vlab/dockerfile';
import { applyMeta } from '../ops/meta.ts';
import type { StepModule } from './types.ts';

export const meta: StepModule<Instruction> = {
  config: (call) => applyMeta(call.parent.config, call.inst, call.flags),
  // The key is the instruction and the args it used; there is nothing to look up.
  cacheKey: async (_b, call) => ({ args: call.usedArgs, layer: false, found: undefined }),
  // Never reached (layer: false): a config-only step has no work.
  run: async () => undefined,
  inHistory: (inst) => inst.kind !== 'ARG',
};
