/**
 * Issue 16's RUN-step targets: for the CLI (`vlab-cli`: bin/vbuild per build, via its warm server) and the API
 * (`vlab`, a warm worker), cold steps20 ≤ 0.5× BuildKit and hello / delete / multistage cold ≤ 1.0×;
 * steps100's per-step time flat with depth (last 10 steps ≤ 1.25× the first 10); parallel4's
 * four builds at once ≤ 0.6× the same four one after another.
 */
import type { Results, TargetRow } from './targets.ts';
import { depthSplit } from './steps.ts';

const BUILDERS = ['vlab-cli', 'vlab'];
const fmt = (x: number) => `${x.toFixed(2)}×`;
const med = (r: Results, b: string, k: string) => r.get(b)?.get(k)?.stat?.median;

function ratioRow(
  target: string,
  num: number | undefined,
  den: number | undefined,
  max: number,
  what: (num: number, den: number) => string,
): TargetRow {
  if (num === undefined || den === undefined) return { target, value: 'missing', verdict: 'n/a' };
  const x = num / den;
  return { target, value: `${fmt(x)} (${what(num, den)})`, verdict: x <= max ? 'met' : 'NOT MET' };
}

export function runTargets(r: Results): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const b of BUILDERS.filter((n) => r.has(n))) {
    for (const [key, max] of [
      ['steps20/cold', 0.5],
      ['hello/cold', 1.0],
      ['delete/cold', 1.0],
      ['multistage/cold', 1.0],
    ] as const) {
      rows.push(
        ratioRow(
          `${b}: ${key} ≤ ${max}× BuildKit`,
          med(r, b, key),
          med(r, 'buildkit', key),
          max,
          (a, c) => `${a.toFixed(3)}s vs buildkit ${c.toFixed(3)}s`,
        ),
      );
    }
    const d = depthSplit(r.get(b)?.get('steps100/cold')?.steps);
    rows.push(
      ratioRow(
        `${b}: steps100 per step, last 10 ≤ 1.25× first 10`,
        d?.last,
        d?.first,
        1.25,
        (a, c) => `${(a * 1000).toFixed(0)} ms vs ${(c * 1000).toFixed(0)} ms`,
      ),
    );
    rows.push(
      ratioRow(
        `${b}: parallel4 at once ≤ 0.6× one after another`,
        med(r, b, 'parallel4/parallel'),
        med(r, b, 'parallel4/serial'),
        0.6,
        (a, c) => `${a.toFixed(2)}s vs ${c.toFixed(2)}s`,
      ),
    );
  }
  return rows;
}
