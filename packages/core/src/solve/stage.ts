import { VlabError } from '@vlab/errors';
import { parseInstructionText, resolveStageBase, StageScope, type Instruction, type Stage } from '@vlab/dockerfile';
import type { BuildSession, StageState } from './context.ts';
import type { StepRef } from './events.ts';
import { baseState } from './base.ts';
import { envToRecord } from './ops/meta.ts';
import { runStep } from './step.ts';

/** Build one stage: FROM, ONBUILD triggers of the base, then each instruction in order. */
export async function buildStage(s: BuildSession, stage: Stage): Promise<StageState> {
  const { image } = resolveStageBase(s.df, stage, s.globalArgs);
  let state = await baseState(s, stage, image);
  state = { ...state, config: { ...state.config, config: { ...state.config.config } } };
  const scope = new StageScope({
    globalArgs: s.globalArgs,
    buildArgs: s.buildArgs,
    baseEnv: envToRecord(state.config.config.Env),
    escape: s.df.escape,
    predefined: s.predefinedArgs,
  });
  const triggers = (state.config.config.OnBuild ?? []).map((t) => parseInstructionText(t, { escape: s.df.escape }));
  state.config.config.OnBuild = null;
  const steps: Instruction[] = [...triggers, ...stage.instructions];
  const flags = { cmdSet: false };
  const label = stage.name ?? `stage-${stage.index}`;
  for (let i = 0; i < steps.length; i++) {
    if (s.signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
    const raw = steps[i]!;
    const ref: StepRef = {
      id: `${stage.index}:${i + 1}`,
      name: `[${label} ${i + 1}/${steps.length}] ${oneLine(raw.original)}`,
      stage: label,
      location: { file: s.dockerfilePath, line: raw.range.start.line, column: raw.range.start.column },
    };
    state = await runStep(s, { raw, stage, scope, parent: state, ref, flags });
  }
  return state;
}

function oneLine(text: string): string {
  const t = text
    .replace(/\s*\\\r?\n\s*/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
}
