import { VlabError } from '@vlab/errors';
import type { Instruction } from '@vlab/dockerfile';
import type { BuildSession } from '../context.ts';
import { copy } from './copy.ts';
import { meta } from './meta.ts';
import { run } from './run.ts';
import type { StepModule } from './types.ts';
import { workdir } from './workdir.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each module's found type is its own
type AnyModule = StepModule<any, any, BuildSession>;

/** The module of each instruction kind a stage may hold (FROM starts a stage and is not a step). */
const MODULES: Partial<Record<Instruction['kind'], AnyModule>> = {
  ENV: meta,
  LABEL: meta,
  EXPOSE: meta,
  VOLUME: meta,
  CMD: meta,
  ENTRYPOINT: meta,
  USER: meta,
  SHELL: meta,
  STOPSIGNAL: meta,
  HEALTHCHECK: meta,
  ONBUILD: meta,
  MAINTAINER: meta,
  ARG: meta,
  WORKDIR: workdir,
  RUN: run,
  COPY: copy,
  ADD: copy,
};

export function moduleFor(kind: Instruction['kind']): AnyModule {
  const m = MODULES[kind];
  if (!m) throw new VlabError('E_UNSUPPORTED', `${kind} is not supported inside a stage`);
  return m;
}

export type { StepCall, StepModule, KeyInput } from './types.ts';
