import type { SourceLocation } from '@vlab/errors';
import type { LayerProgress } from '../registry/events.ts';

/** Typed build events (DESIGN.md: events, not prints). The CLI renders them; embedders subscribe. */
export interface StepRef {
  /** Stable within a build: `<stageIndex>:<stepIndex>`. */
  id: string;
  /** Like `[stage 2/5] RUN apk add …` */
  name: string;
  stage: string;
  location?: SourceLocation;
}

export type BuildEvent =
  | { type: 'build-start'; stages: number; steps: number; time: number }
  | ({ type: 'step-start'; time: number } & StepRef)
  | ({ type: 'step-cached'; time: number } & StepRef)
  | ({ type: 'step-miss'; reason: string; time: number } & StepRef)
  | ({ type: 'step-log'; stream: 'stdout' | 'stderr'; data: string; time: number } & StepRef)
  | ({ type: 'step-done'; cached: boolean; durationMs: number; time: number } & StepRef)
  | ({ type: 'step-error'; code: string; message: string; time: number } & StepRef)
  | {
      type: 'build-done';
      imageId: string;
      digest: string;
      durationMs: number;
      time: number;
      contextFilesHashed: number;
      contextHashHits: number;
    }
  | { type: 'warning'; message: string; location?: SourceLocation; time: number }
  /** A layer pulled (FROM an image not in the store) or pushed (--push). */
  | LayerProgress;

export type EventSink = (e: BuildEvent) => void;
