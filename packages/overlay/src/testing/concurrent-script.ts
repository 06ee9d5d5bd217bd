/** Run by mount.test.ts in several processes at once on one snapshot root. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createSnapshotter } from '../index.ts';

const [root, tag] = process.argv.slice(2);
const s = await createSnapshotter(root, { driver: 'native' });
let parent: string | undefined;
for (let i = 0; i < 15; i++) {
  await s.prepare(`${tag}-a${i}`, parent);
  await fs.writeFile(path.join((await s.writableDir(`${tag}-a${i}`)).dir, `${tag}-${i}`), tag);
  await s.commit(`${tag}-c${i}`, `${tag}-a${i}`);
  parent = `${tag}-c${i}`;
}
