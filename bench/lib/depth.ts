/** The steps100 depth table: per RUN step, mean of all, median of steps 1-10 and of steps 91-100 (last cold run). */
import type { Results } from './targets.ts';
import { depthSplit } from './steps.ts';
import { render } from './table.ts';

export function depthRows(results: Results, names: string[], key = 'steps100/cold'): string[] {
  const ms = (x: number) => `${(x * 1000).toFixed(1)}`;
  const rows = names.flatMap((n) => {
    const d = depthSplit(results.get(n)?.get(key)?.steps);
    return d ? [[n, String(d.steps), ms(d.mean), ms(d.first), ms(d.last), `${(d.last / d.first).toFixed(2)}×`]] : [];
  });
  if (!rows.length) return [];
  return [
    '',
    `### Per RUN step by depth (${key}; ms, from each step's progress line to the next)`,
    render(['builder', 'steps', 'mean', 'first 10 (median)', 'last 10 (median)', 'last/first'], rows),
  ];
}
