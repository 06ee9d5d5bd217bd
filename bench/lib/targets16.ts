/**
 * Issue 16's targets, for the CLI as users run it (`vlab-cli`), each from one run's medians:
 * met / NOT MET, or "not measured" when a case, a peer or the scale run is missing from this run.
 * Each target is one entry of TARGETS16 (a function of the run), so a case added later (steps100,
 * parallel4) needs only its rows here; those look for their cells by the names given below.
 */
import type { Results, TargetRow } from './targets.ts';

export const CLI = 'vlab-cli';

/** What a target reads besides the table: file counts of the copy cases, the copy-big scale run. */
export interface RunFacts {
  smallFiles: number;
  hugeFiles: number;
  /** BENCH_SCALE_GIB points: peak RSS of one cold copy-big per file size. */
  scale?: { gib: number; rss: number }[];
}

type Target = (r: Results, f: RunFacts) => TargetRow | TargetRow[];

const cell = (r: Results, b: string, k: string) => r.get(b)?.get(k);
const med = (r: Results, b: string, k: string) => cell(r, b, k)?.stat?.median;
const x = (v: number) => `${v.toFixed(2)}×`;
const missing = (target: string, what: string): TargetRow => ({
  target,
  value: `${what} not measured`,
  verdict: 'not measured',
});
const verdict = (ok: boolean): TargetRow['verdict'] => (ok ? 'met' : 'NOT MET');

/** Ours ÷ the fastest of `peers` at `key`, at most `max`. */
function vs(key: string, peers: string[], max: number, label: string): Target {
  return (r) => {
    const target = `${key} ≤ ${max.toFixed(1)}× ${label}`;
    const ours = med(r, CLI, key);
    const theirs = peers
      .map((p) => [p, med(r, p, key)] as const)
      .filter((t): t is [string, number] => t[1] !== undefined);
    if (ours === undefined) return missing(target, CLI);
    if (!theirs.length) return missing(target, peers.join('/'));
    const [name, best] = theirs.reduce((a, b) => (b[1] < a[1] ? b : a));
    return {
      target,
      value: `${x(ours / best)} (${ours.toFixed(3)}s vs ${name} ${best.toFixed(3)}s)`,
      verdict: verdict(ours / best <= max),
    };
  };
}

/** Per-unit time of `big` (n units) over that of `small` (m units), at most `max` (1.0: linear). */
function growth(
  label: string,
  big: string,
  n: (f: RunFacts) => number,
  small: string,
  m: (f: RunFacts) => number,
  max = 1.0,
): Target {
  return (r, f) => {
    const target = `${label} ≤ ${max.toFixed(1)}×`;
    const a = med(r, CLI, big);
    const b = med(r, CLI, small);
    if (a === undefined || b === undefined) return missing(target, a === undefined ? big : small);
    const ratio = a / n(f) / (b / m(f));
    return {
      target,
      value: `${x(ratio)} (${((a / n(f)) * 1e3).toFixed(3)} vs ${((b / m(f)) * 1e3).toFixed(3)} ms per unit)`,
      verdict: verdict(ratio <= max),
    };
  };
}

/** Peak RSS of ours at `key` against `ref` (a builder's at `refKey`), at most `max`×. */
function rss(target: string, key: string, refs: string[], refKey: string, max: number, strict = false): Target {
  return (r) => {
    const ours = cell(r, CLI, key)?.rss;
    const theirs = refs.map((b) => cell(r, b, refKey)?.rss).filter((v): v is number => !!v);
    if (!ours) return missing(target, `${CLI} ${key} RSS`);
    if (!theirs.length) return missing(target, `${refs.join('/')} ${refKey} RSS`);
    const ref = Math.min(...theirs);
    return {
      target,
      value: `${x(ours / ref)} (${(ours / 1e6).toFixed(0)} MB vs ${(ref / 1e6).toFixed(0)} MB)`,
      verdict: verdict(strict ? ours / ref < max : ours / ref <= max),
    };
  };
}

const BUILDAH = ['buildah-chroot', 'buildah-oci'];

export const TARGETS16: Target[] = [
  // Every row at most 1.0x BuildKit: one verdict per case/phase the run has.
  (r, f) => {
    const keys = [...(r.get(CLI)?.keys() ?? [])];
    if (!keys.length) return missing('every row ≤ 1.0× BuildKit', CLI);
    return keys.flatMap((k) => vs(k, ['buildkit'], 1.0, 'BuildKit')(r, f));
  },
  vs('steps20/cold', ['buildkit'], 0.5, 'BuildKit'),
  vs('copy-small/cached', ['buildkit'], 0.5, 'BuildKit'),
  vs('hello/cached', BUILDAH, 1.0, 'buildah'),
  rss('copy-small/cold peak RSS ≤ 2× buildah', 'copy-small/cold', BUILDAH, 'copy-small/cold', 2),
  (r, f) => {
    const target = 'copy-big peak RSS flat from 1 to 4 GiB (largest ≤ 1.1× smallest)';
    const pts = f.scale?.filter((p) => p.rss > 0) ?? [];
    if (pts.length < 2) return missing(target, 'BENCH_SCALE_GIB=1,2,4 run');
    // A size listed twice (BENCH_SCALE_GIB=1,4,1,4) counts against the target: the largest size's
    // highest point over the smallest size's lowest.
    const minGib = Math.min(...pts.map((p) => p.gib));
    const maxGib = Math.max(...pts.map((p) => p.gib));
    const lo = pts.filter((p) => p.gib === minGib).reduce((a, b) => (b.rss < a.rss ? b : a));
    const hi = pts.filter((p) => p.gib === maxGib).reduce((a, b) => (b.rss > a.rss ? b : a));
    return {
      target,
      value: `${x(hi.rss / lo.rss)} (${hi.gib} GiB ${(hi.rss / 1e6).toFixed(0)} MB, ${lo.gib} GiB ${(lo.rss / 1e6).toFixed(0)} MB)`,
      verdict: verdict(hi.rss / lo.rss <= 1.1),
    };
  },
  growth(
    'copy-huge/cold per file ÷ copy-small/cold per file',
    'copy-huge/cold',
    (f) => f.hugeFiles,
    'copy-small/cold',
    (f) => f.smallFiles,
  ),
  growth(
    'copy-huge/cached per file ÷ copy-small/cached per file',
    'copy-huge/cached',
    (f) => f.hugeFiles,
    'copy-small/cached',
    (f) => f.smallFiles,
  ),
  rss('copy-huge/cold peak RSS < 2× copy-small/cold', 'copy-huge/cold', [CLI], 'copy-small/cold', 2, true),
  // s19/runstep's cases: steps100 (100 RUNs, phase cold) and parallel4 (phases parallel, serial).
  growth(
    'steps100/cold per step ÷ steps20/cold per step (flat)',
    'steps100/cold',
    () => 100,
    'steps20/cold',
    () => 20,
  ),
  (r) => {
    const target = 'parallel4: 4 builds at once ≤ 0.6× one after another';
    const par = med(r, CLI, 'parallel4/parallel');
    const ser = med(r, CLI, 'parallel4/serial');
    if (par === undefined || ser === undefined) return missing(target, 'parallel4');
    return {
      target,
      value: `${x(par / ser)} (${par.toFixed(2)}s vs ${ser.toFixed(2)}s)`,
      verdict: verdict(par / ser <= 0.6),
    };
  },
];

export function evaluate16(r: Results, f: RunFacts): TargetRow[] {
  return TARGETS16.flatMap((t) => t(r, f));
}
