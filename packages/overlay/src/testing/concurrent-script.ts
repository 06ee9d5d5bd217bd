/**
 * Run by mount.test.ts and volatile.test.ts in several processes at once on one snapshot root:
 * `ROOT TAG [volatile|volatile-commit] [N]`, N prepare → write → commit rounds (15), each
 * committed name printed once its commit returned. `volatile-commit` commits volatile too and
 * settles every 4th round, printing `settled NAME` once the settle returned.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createSnapshotter, VOLATILE_LABEL } from '../index.ts';

const [root, tag, mode, n] = process.argv.slice(2);
const labels = mode?.startsWith('volatile') ? { [VOLATILE_LABEL]: 'true' } : undefined;
const commitLabels = mode === 'volatile-commit' ? labels : undefined;
const s = await createSnapshotter(root, { driver: 'native' });
let parent: string | undefined;
for (let i = 0; i < Number(n || 15); i++) {
  await s.prepare(`${tag}-a${i}`, parent, labels);
  await fs.writeFile(path.join((await s.writableDir(`${tag}-a${i}`)).dir, `${tag}-${i}`), tag);
  await s.commit(`${tag}-c${i}`, `${tag}-a${i}`, commitLabels);
  parent = `${tag}-c${i}`;
  process.stdout.write(`${parent}\n`);
  if (commitLabels && i % 4 === 3) {
    await s.settle();
    process.stdout.write(`settled ${parent}\n`);
  }
}
