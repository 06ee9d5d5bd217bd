/**
 * Summarises `node --cpu-prof` output: top self-time functions (with file:line) across all
 * .cpuprofile files of a directory.  node --import tsx bench/lib/cpuprof.ts DIR [N]
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export async function summarise(dir: string, n = 25): Promise<string> {
  const self = new Map<string, number>();
  let total = 0;
  for (const f of (await fs.readdir(dir)).filter((x) => x.endsWith('.cpuprofile'))) {
    const p = JSON.parse(await fs.readFile(path.join(dir, f), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((x) => [x.id, x]));
    p.samples.forEach((id, i) => {
      const dt = (p.timeDeltas[i] ?? 0) / 1000;
      const cf = byId.get(id)!.callFrame;
      const file = cf.url
        .replace(/^file:\/\//, '')
        .replace(/.*\/work\/main\//, '')
        .replace(/.*node_modules\/(\.pnpm\/)?/, 'nm:');
      const key = `${cf.functionName || '(anonymous)'} ${file ? `${file}:${cf.lineNumber + 1}` : ''}`.trim();
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    });
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, n);
  return [
    `total sampled ${total.toFixed(0)} ms`,
    ...rows.map(([k, ms]) => `${ms.toFixed(0).padStart(7)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%  ${k}`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${await summarise(process.argv[2]!, Number(process.argv[3] ?? 25))}\n`);
}
