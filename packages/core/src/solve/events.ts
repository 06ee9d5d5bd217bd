import type { ErrorCode, SourceLocation } from '@vlab/errors';
import type { LayerProgress } from '../registry/events.ts';
import type { CacheExportEvent, CacheImportEvent } from '../cache/events.ts';

/**
 * The version of the {@link BuildEvent} union. It goes up by one when an event changes in a way
 * a consumer can notice (a field removed, renamed or retyped, a type's meaning changed); new event
 * types and new optional fields do not change it, so consumers ignore what they do not know.
 * `vbuild build --progress=json` writes it in every line as `"version"`.
 */
export const BUILD_EVENT_VERSION = 1;

/** Where a step is in the build: every step event carries it. */
export interface StepRef {
  /** Stable within a build: `<stageIndex>:<stepIndex>`. */
  id: string;
  /** Like `[stage 2/5] RUN apk add …` */
  name: string;
  stage: string;
  location?: SourceLocation;
}

/**
 * What a build reports, in order: `build-start`; per step `step-start`, then `step-cached` or
 * `step-miss` (why the cache missed), `step-log` lines while it runs, and `step-done` or
 * `step-error`; `warning`s at any time; `build-done` last when the build succeeds. `time` is
 * `Date.now()` at emission. Events, not prints (DESIGN.md): the CLI renders them; embedders
 * subscribe through `BuildOptions.onEvent`. Versioned by {@link BUILD_EVENT_VERSION}.
 */
export type BuildEvent =
  | { type: 'build-start'; stages: number; steps: number; time: number }
  | ({ type: 'step-start'; time: number } & StepRef)
  /** `from`: the registry cache (--cache-from) the step came from; absent for the local cache. */
  | ({ type: 'step-cached'; from?: string; time: number } & StepRef)
  | ({ type: 'step-miss'; reason: string; time: number } & StepRef)
  | ({ type: 'step-log'; stream: 'stdout' | 'stderr'; data: string; time: number } & StepRef)
  | ({ type: 'step-done'; cached: boolean; durationMs: number; time: number } & StepRef)
  | ({ type: 'step-error'; code: ErrorCode; message: string; time: number } & StepRef)
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
  /** Registry caches read and written (--cache-from / --cache-to). */
  | CacheImportEvent
  | CacheExportEvent
  /** A layer pulled (FROM an image not in the store) or pushed (--push). */
  | LayerProgress;

/**
 * A `step-error` of a step the build stopped (a sibling stage failed, or the caller aborted), not
 * of one that failed: progress shows it as BuildKit does, `CANCELED`; the build's failure is the
 * error that stopped it.
 */
export function stepCanceled(e: { code: ErrorCode }): boolean {
  return e.code === 'E_ABORTED' || e.code === 'E_RUN_ABORTED';
}

/** A receiver of build events. */
export type EventSink = (e: BuildEvent) => void;
