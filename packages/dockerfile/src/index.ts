/**
 * @vlab/dockerfile — Dockerfile parsing with BuildKit's rules, pure (no fs, no processes):
 * syntax (directives, continuations, heredocs, JSON vs shell) → typed instructions → ARG/ENV
 * expansion in a StageScope. Lint with check(), BuildKit fixture dumps with dump().
 *
 * @module @vlab/dockerfile
 */
export type {
  Position,
  Range,
  Keyword,
  FlagValue,
  Heredoc,
  FromInstruction,
  RunInstruction,
  RunMount,
  CopyInstruction,
  KeyValueInstruction,
  ArgInstruction,
  CommandInstruction,
  ShellInstruction,
  WorkdirInstruction,
  UserInstruction,
  ExposeInstruction,
  VolumeInstruction,
  StopSignalInstruction,
  HealthcheckInstruction,
  OnbuildInstruction,
  MaintainerInstruction,
  Instruction,
  Stage,
  Dockerfile,
  Warning,
} from './types.ts';
export { KEYWORDS } from './types.ts';
export { parse, parseInstructionText } from './parse.ts';
export { expandWord, expandWords, type ExpandOptions } from './expand.ts';
export {
  resolveGlobalArgs,
  resolveStageBase,
  selectTarget,
  findStage,
  StageScope,
  PROXY_ARGS,
  PLATFORM_ARGS,
  type StageScopeOptions,
} from './scope.ts';
export { planRunHeredoc, type RunHeredocPlan } from './instructions/run-heredoc.ts';
export { check } from './check.ts';
export { pathComponentProblem, NAME_MAX } from './path-component.ts';
export { dump } from './dump.ts';
