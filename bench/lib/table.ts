/** Table rendering: aligned markdown-style tables (paste-able into README) and number formats. */
import type { Stat } from './floor.ts';

export function render(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (c ?? '').padEnd(w[i]!)).join(' | ')} |`;
  return [line(header), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function secs(x: number): string {
  if (x < 0.1) return x.toFixed(3);
  if (x < 10) return x.toFixed(2);
  return x.toFixed(1);
}

export function stat(s: Stat): string {
  return `${secs(s.median)} (${secs(s.min)}–${secs(s.max)})`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a < 1e3) return `${n}B`;
  if (a < 1e6) return `${(n / 1e3).toFixed(0)}kB`;
  if (a < 1e9) return `${(n / 1e6).toFixed(a < 1e7 ? 1 : 0)}MB`;
  return `${(n / 1e9).toFixed(2)}GB`;
}

export function ratio(x: number): string {
  return `${x < 1 ? x.toFixed(2) : x.toFixed(1)}×`;
}
