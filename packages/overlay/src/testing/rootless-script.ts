/**
 * Run by rootless.test.ts as an unprivileged user (optionally inside `unshare --user --map-root-user
 * --mount`): the snapshot → mount → change → diff → apply round trip with whatever driver `auto`
 * picks. Prints one JSON line; exits 1 on a mismatch.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { createSnapshotter, isRealRoot, mountAll, unmountAll, diff, writeLayer, apply } from '../index.ts';
import { listLayer } from '../layer/list.ts';
import { describeTree } from './tree.ts';

const tmp = process.argv[2];
const s = await createSnapshotter(path.join(tmp, 'root'));
const mounted: string[] = [];
// a user who cannot mount at all reads native snapshots (plain bind sources) in place
const inPlace = s.driver === 'native' && process.getuid?.() !== 0;
const mnt = async (key: string) => {
  if (inPlace) return (await s.mounts(key))[0].source;
  const t = path.join(tmp, `m${mounted.length}`);
  mounted.push(t);
  await mountAll(await s.mounts(key), t);
  return t;
};
try {
  await s.prepare('b');
  const b = (await s.writableDir('b')).dir;
  await fs.mkdir(path.join(b, 'd'));
  await fs.writeFile(path.join(b, 'd', 'old'), 'o');
  await fs.writeFile(path.join(b, 'gone'), 'g');
  await s.commit('B', 'b');
  await s.prepare('c', 'B');
  const m = await mnt('c');
  await fs.rm(path.join(m, 'gone'));
  await fs.rm(path.join(m, 'd'), { recursive: true });
  await fs.mkdir(path.join(m, 'd'));
  await fs.writeFile(path.join(m, 'd', 'new'), 'n');
  await unmountAll(m);
  const parts: Buffer[] = [];
  const r = await writeLayer(
    diff(s, 'c'),
    new Writable({
      write(c, _e, cb) {
        parts.push(c);
        cb();
      },
    }),
  );
  const names = (await listLayer(Readable.from([Buffer.concat(parts)]))).map((e) => e.name);
  await s.prepare('r', 'B');
  const w = await s.writableDir('r');
  await apply(Readable.from([Buffer.concat(parts)]), w.dir, { whiteouts: w.whiteouts });
  const want = await describeTree(await mnt('c'), { mtimes: true });
  const got = await describeTree(await mnt('r'), { mtimes: true });
  const same = JSON.stringify(want) === JSON.stringify(got);
  console.log(
    JSON.stringify({
      driver: s.driver,
      realRoot: isRealRoot(),
      uid: process.getuid?.(),
      diffId: r.diffId,
      names,
      same,
    }),
  );
  process.exitCode = same ? 0 : 1;
} finally {
  for (const t of mounted) await unmountAll(t).catch(() => {});
}
