/**
 * One instruction family, one module (BuildKit's CacheMap idea): `cacheKey()` says what the step
 * depends on, before any work; `run()` does the work, and only on a cache miss. The generic
 * runner (../step.ts) does the rest once for all: key, lookup, hold, miss reason, events, history.
 */
import type { Instruction, Stage, StageScope } from '@vlab/dockerfile';
import type { ImageConfig, LayerRef } from '../../image/types.ts';
import type { StageState } from '../context.ts';
import type { StepRef } from '../events.ts';
import type { StepInputs } from '../../cache/types.ts';

/** One step as the runner hands it to its module: the evaluated instruction and where it stands. */
export interface StepCall<I extends Instruction = Instruction> {
  /** The instruction with its args and env expanded. */
  inst: I;
  /** Build args the expansion read: part of the key. */
  usedArgs: Record<string, string>;
  stage: Stage;
  scope: StageScope;
  /** The state the step starts from. */
  parent: StageState;
  ref: StepRef;
  /** Per stage: whether CMD was set in it (ENTRYPOINT resets an inherited CMD only). */
  flags: { cmdSet: boolean };
}

/** What a step's cache key is made of, beyond its parent key, instruction and platform. */
export interface KeyInput<T = undefined> {
  args: Record<string, string>;
  /** Digest of the content the step reads (context files, another stage, a download). */
  content?: string;
  /** The same content by name, kept to explain a later miss. */
  files?: StepInputs['files'];
  /** false: the step only changes the config; the key is not looked up and run() is not called. */
  layer?: false;
  /** What computing the key found that the work reuses (a RUN's from= sources, a COPY's source). */
  found: T;
}

/**
 * Contract: `config` and `cacheKey` change nothing the build keeps (no blob, no snapshot, no
 * cache record); a cache hit calls nothing else. `run` is called at most once per step, only
 * after a miss, with what that step's `cacheKey` found; its layer is committed to the store
 * before it returns. Errors are VlabErrors; the runner adds the step's name and line.
 */
export interface StepModule<I extends Instruction, T = undefined, B = unknown> {
  /** The image config after the step (its history is the runner's). Pure. */
  config(call: StepCall<I>): ImageConfig;
  /**
   * What the key is made of, before any work: it may read (context files, another stage's
   * result, an ADD URL without --checksum, fetched into the build's temp dir). B: the parts it reads.
   */
  cacheKey(b: B, call: StepCall<I>, config: ImageConfig): Promise<KeyInput<T>>;
  /** The work on a miss: the new layer, or undefined when the step made none. */
  run(b: B, call: StepCall<I>, config: ImageConfig, found: T): Promise<LayerRef | undefined>;
  /** Whether the step gets a history entry (default: yes; BuildKit records no ARG). */
  inHistory?(inst: I): boolean;
}
