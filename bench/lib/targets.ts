/**
 * The targets, each a ratio computed from one run's medians (ours = the `vlab` API column),
 * marked met / not met, or "n/a" with the reason when an input is missing (peer failed, case not run).
 */
import type { Floors, Stat } from './floor.ts';
import { runTargets } from './targets-run.ts';

/** Issue 16's targets (the CLI, vlab-cli): targets16.ts. */
export { evaluate16, TARGETS16, type RunFacts } from './targets16.ts';

export interface Cell {
  stat?: Stat;
  rss?: number;
  storeBytes?: number;
  ran?: number;
  cached?: number;
  /** Seconds per RUN step that ran (last run), for the depth rows. */
  steps?: number[];
  error?: string;
  /** Why this builder did not run this case on purpose (BENCH_SKIP): shown in the table, never a blank. */
  skipped?: string;
}
/** results.get(builder).get(`case/phase`) */
export type Results = Map<string, Map<string, Cell>>;

export interface TargetRow {
  target: string;
  value: string;
  verdict: 'met' | 'NOT MET' | 'n/a' | 'not measured';
}

const OURS = 'vlab';
const med = (r: Results, b: string, k: string) => r.get(b)?.get(k)?.stat?.median;
const fmt = (x: number) => `${x.toFixed(2)}×`;

function vsPeer(r: Results, key: string, peers: string[], max: number, label: string): TargetRow {
  const ours = med(r, OURS, key);
  const theirs = peers
    .map((p) => [p, med(r, p, key)] as const)
    .filter((x): x is readonly [string, number] => x[1] !== undefined);
  const target = `${key} ≤ ${max}× ${label}`;
  if (ours === undefined || !theirs.length)
    return { target, value: ours === undefined ? 'vlab missing' : `${peers.join('/')} missing`, verdict: 'n/a' };
  const [name, best] = theirs.reduce((a, b) => (b[1] < a[1] ? b : a));
  const x = ours / best;
  return {
    target,
    value: `${fmt(x)} (${ours.toFixed(3)}s vs ${name} ${best.toFixed(3)}s)`,
    verdict: x <= max ? 'met' : 'NOT MET',
  };
}

export function evaluate(r: Results, floors: Floors, peerNames: string[]): TargetRow[] {
  const others = peerNames.filter((p) => p !== OURS && !p.startsWith('vlab-cli'));
  const rows: TargetRow[] = [
    vsPeer(r, 'steps20/cached', ['buildkit'], 1.0, 'BuildKit'),
    vsPeer(r, 'steps20/cached', ['buildah-chroot', 'buildah-oci'], 0.25, 'buildah (faster isolation)'),
    vsPeer(r, 'copy-small/cached', ['buildkit'], 0.5, 'BuildKit'),
    vsPeer(r, 'copy-big/cached', ['buildkit'], 0.5, 'BuildKit'),
    vsPeer(r, 'steps20/cold', ['buildkit'], 0.5, 'BuildKit'),
    vsPeer(r, 'copy-small/cold', ['buildkit'], 0.3, 'BuildKit'),
    vsPeer(r, 'copy-big/cold', others, 0.5, 'fastest peer'),
  ];
  const sha = floors.get('sha256sum big');
  const big = med(r, OURS, 'copy-big/cold');
  rows.push(
    sha && 'median' in sha && big !== undefined
      ? {
          target: 'copy-big/cold ≤ 2× sha256sum floor',
          value: `${fmt(big / sha.median)} (${big.toFixed(2)}s vs ${sha.median.toFixed(2)}s)`,
          verdict: big / sha.median <= 2 ? 'met' : 'NOT MET',
        }
      : { target: 'copy-big/cold ≤ 2× sha256sum floor', value: 'missing', verdict: 'n/a' },
  );
  const e = r.get(OURS)?.get('edit/edit');
  rows.push(
    e?.stat
      ? {
          target: 'edit: only the changed step rebuilds',
          value: `ran ${e.ran}, cached ${e.cached}`,
          verdict: e.ran === 1 && (e.cached ?? 0) >= 1 ? 'met' : 'NOT MET',
        }
      : { target: 'edit: only the changed step rebuilds', value: 'missing', verdict: 'n/a' },
  );
  rows.push(vsPeer(r, 'edit/edit', ['buildkit'], 0.5, 'BuildKit'));
  const rss = r.get(OURS)?.get('copy-big/cold')?.rss;
  rows.push(
    rss !== undefined
      ? {
          target: 'copy-big/cold peak RSS < 200 MB',
          value: `${(rss / 1e6).toFixed(0)} MB`,
          verdict: rss < 200e6 ? 'met' : 'NOT MET',
        }
      : { target: 'copy-big/cold peak RSS < 200 MB', value: 'missing', verdict: 'n/a' },
  );
  const h = med(r, OURS, 'hello/cold');
  const hb = med(r, OURS, 'hello-bigbase/cold');
  rows.push(
    h !== undefined && hb !== undefined
      ? {
          target: 'hello/cold on big base ≤ 1.25× on busybox (commit ∝ change)',
          value: `${fmt(hb / h)} (${hb.toFixed(3)}s vs ${h.toFixed(3)}s)`,
          verdict: hb / h <= 1.25 ? 'met' : 'NOT MET',
        }
      : { target: 'hello/cold on big base ≤ 1.25× on busybox (commit ∝ change)', value: 'missing', verdict: 'n/a' },
  );
  rows.push(...runTargets(r));
  return rows;
}
