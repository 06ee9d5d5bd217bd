/**
 * The wall-time table as a chart (SVG, written next to latest.md): one group of bars per case and
 * phase, one bar per builder, its length the ratio to BuildKit on a log scale (1/8× and 8× are
 * equally far from the marked 1.0 line), the value printed at the end of each bar.
 *
 * Hand-written SVG, not a library: the chart libraries that render without a browser either need
 * a DOM or canvas (Chart.js, Observable Plot, Chartist: jsdom or node-canvas, a native build) or
 * are large (Vega renders SVG headless but brings 27 packages), for one bar chart in a dev script.
 */
import type { Results } from './targets.ts';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const BAR = 14;
const GAP = 12;
const LEFT = 170;
const RIGHT = 70;
const WIDTH = 980;
const TOP = 64;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (x: number) => (x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2));
const tickLabel = (e: number) => (e >= 0 ? `${2 ** e}×` : `1/${2 ** -e}×`);

export interface ChartInput {
  title: string;
  /** Builders in column order (BuildKit among them). */
  builders: string[];
  /** `case/phase` rows in table order. */
  rows: string[];
  results: Results;
  baseline?: string;
}

/** The SVG text of the chart. Rows without a BuildKit time are listed as such (no ratio to draw). */
export function chartSvg(c: ChartInput): string {
  const base = c.baseline ?? 'buildkit';
  const ratios = c.rows.map((row) => {
    const bk = c.results.get(base)?.get(row)?.stat?.median;
    return c.builders.map((b) => {
      const cell = c.results.get(b)?.get(row);
      if (!cell) return undefined;
      if (!cell.stat || !bk) return cell.error ? 'ERR' : undefined;
      return cell.stat.median / bk;
    });
  });
  const all = ratios.flat().filter((x): x is number => typeof x === 'number' && x > 0);
  const lo = Math.min(-1, Math.floor(Math.log2(Math.min(...all, 1))));
  const hi = Math.max(1, Math.ceil(Math.log2(Math.max(...all, 1))));
  const x = (r: number) => LEFT + ((Math.log2(r) - lo) / (hi - lo)) * (WIDTH - LEFT - RIGHT);
  const groupH = c.builders.length * BAR + GAP;
  const height = TOP + c.rows.length * groupH + 40;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="20" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
    `<text x="${LEFT}" y="38" fill="#555">wall time ÷ BuildKit's, same run (log scale; shorter is faster)</text>`,
  ];
  // legend
  c.builders.forEach((b, i) => {
    const lx = 10 + i * 110;
    out.push(`<rect x="${lx}" y="46" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 14}" y="55">${esc(b)}</text>`);
  });
  // row bands, then grid and axis over them
  c.rows.forEach((_, gi) => {
    if (gi % 2)
      out.push(`<rect x="0" y="${TOP + gi * groupH - GAP / 2}" width="${WIDTH}" height="${groupH}" fill="#f4f4f4"/>`);
  });
  const axisY = TOP + c.rows.length * groupH;
  for (let e = lo; e <= hi; e++) {
    const gx = x(2 ** e).toFixed(1);
    out.push(`<line x1="${gx}" y1="${TOP - 4}" x2="${gx}" y2="${axisY}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${gx}" y="${axisY + 16}" text-anchor="middle" fill="#555">${tickLabel(e)}</text>`);
  }
  c.rows.forEach((row, gi) => {
    const gy = TOP + gi * groupH;
    out.push(
      `<text x="${LEFT - 8}" y="${gy + (c.builders.length * BAR) / 2 + 4}" text-anchor="end">${esc(row)}</text>`,
    );
    if (!c.results.get(base)?.get(row)?.stat)
      out.push(
        `<text x="${LEFT + 4}" y="${gy + BAR}" fill="#c00" font-size="11">no BuildKit time in this run: no ratio to draw</text>`,
      );
    c.builders.forEach((b, bi) => {
      const v = ratios[gi]![bi];
      const y = gy + bi * BAR;
      if (v === undefined) return;
      if (v === 'ERR') {
        out.push(`<text x="${LEFT + 4}" y="${y + BAR - 3}" fill="#c00" font-size="10">${esc(b)}: failed</text>`);
        return;
      }
      const w = Math.max(1, x(v) - LEFT);
      const fill = COLORS[bi % COLORS.length];
      out.push(`<rect x="${LEFT}" y="${y + 1}" width="${w.toFixed(1)}" height="${BAR - 2}" fill="${fill}"/>`);
      out.push(`<text x="${(LEFT + w + 4).toFixed(1)}" y="${y + BAR - 3}" font-size="10">${fmt(v)}×</text>`);
    });
  });
  const one = x(1).toFixed(1);
  out.push(
    `<line x1="${one}" y1="${TOP - 8}" x2="${one}" y2="${axisY}" stroke="#c00" stroke-width="2" stroke-dasharray="5,3"/>`,
  );
  out.push(`<text x="${one}" y="${axisY + 32}" text-anchor="middle" fill="#c00">1.0 = BuildKit</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
