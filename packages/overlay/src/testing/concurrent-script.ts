/**
 * Run by mount.test.ts and volatile.test.ts in several processes at once on one snapshot root:
 * `ROOT TAG [volatile] [N]`, N prepare → write → commit rounds (15), each committed name printed
 * once its commit returned.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createSnapshotter, VOLATILE_LABEL } from '../index.ts';

const [root, tag, mode, n] = process.argv.slice(2);
const labels = mode === 'volatile' ? { [VOLATILE_LABEL]: 'true' } : undefined;
const s = await createSnapshotter(root, { driver: 'native' });
let parent: string | undefined;
for (let i = 0; i < Number(n || 15); i++) {
  await s.prepare(`${tag}-a${i}`, parent, labels);
  await fs.writeFile(path.join((await s.writableDir(`${tag}-a${i}`)).dir, `${tag}-${i}`), tag);
  await s.commit(`${tag}-c${i}`, `${tag}-a${i}`);
  parent = `${tag}-c${i}`;
  process.stdout.write(`${parent}\n`);
}
