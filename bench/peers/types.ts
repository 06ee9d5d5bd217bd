/**
 * The seam every builder under test implements (ours, the peers): set up once, empty the cache,
 * build one context, say where its store lives, tear down.
 */
import type { Bases } from '../lib/bases.ts';

export interface BenchEnv {
  repo: string;
  /** bench/.data: scratch space for stores, daemons, bundles. */
  dataDir: string;
  bases: Bases;
  log: (m: string) => void;
}

export interface BuildOutcome {
  ok: boolean;
  /** Wall seconds, as the user waits for it. */
  wall: number;
  /** Peak RSS of the builder process (or daemon) in bytes, when known. */
  rss?: number;
  /** Steps executed vs taken from the cache, when the builder tells. */
  ran?: number;
  cached?: number;
  /** Seconds each RUN step that ran took, in build order (lib/steps.ts), when known. */
  steps?: number[];
  error?: string;
}

export interface Peer {
  /** Column name in the table. */
  name: string;
  /** Starts daemons and loads the bases; throws (message = reason shown in the table) if it cannot run. */
  setup(env: BenchEnv): Promise<void>;
  /** Empties build cache and built images; the base images stay (or are loaded again, untimed). */
  reset(): Promise<void>;
  build(context: string, tag: string): Promise<BuildOutcome>;
  /** Directories whose growth is the "store bytes written". */
  storeDirs(): string[];
  teardown(): Promise<void>;
}
