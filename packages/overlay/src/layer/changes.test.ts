import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { changes, createSnapshotter, mountAll, unmountAll, type Snapshotter } from '../index.ts';

for (const driver of ['overlay', 'native'] as const) {
  describe(`changes: docker diff's A/C/D (${driver})`, () => {
    let tmp: string;
    let s: Snapshotter;
    const mounted: string[] = [];
    const mnt = async (key: string) => {
      const t = path.join(tmp, `m-${key}`);
      mounted.push(t);
      await mountAll(await s.mounts(key), t);
      return t;
    };
    beforeAll(async () => {
      tmp = await fs.mkdtemp(path.join(os.tmpdir(), `vlab-changes-${driver}-`));
      s = await createSnapshotter(path.join(tmp, 'root'), { driver });
      await s.prepare('base-w');
      const b = await mnt('base-w');
      await fs.mkdir(path.join(b, 'etc'));
      await fs.writeFile(path.join(b, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
      await fs.writeFile(path.join(b, 'etc/gone'), 'x');
      await fs.mkdir(path.join(b, 'var/lib'), { recursive: true });
      await fs.writeFile(path.join(b, 'var/lib/old'), 'x');
      await fs.mkdir(path.join(b, 'tmp'));
      await fs.mkdir(path.join(b, 'proc'));
      await unmountAll(b);
      mounted.pop();
      await s.commit('base', 'base-w');
    });
    afterAll(async () => {
      for (const m of mounted) await unmountAll(m).catch(() => {});
      await fs.rm(tmp, { recursive: true, force: true });
    });

    it('added, changed, deleted paths, sorted as docker diff prints them; ignored mountpoints left out', async () => {
      await s.prepare('c1', 'base');
      const m = await mnt('c1');
      await fs.writeFile(path.join(m, 'tmp/new'), 'n');
      await fs.mkdir(path.join(m, 'tmp/d'));
      await fs.writeFile(path.join(m, 'tmp/d/f'), 'f');
      await fs.appendFile(path.join(m, 'etc/passwd'), 'u:x:1:1::/:/bin/sh\n');
      await fs.rm(path.join(m, 'etc/gone'));
      await fs.rm(path.join(m, 'var/lib'), { recursive: true });
      await fs.writeFile(path.join(m, 'proc/x'), '');
      const got = await changes(await s.diffSource('c1'), { ignore: ['/proc'] });
      expect(got.map((c) => `${c.kind} ${c.path}`)).toEqual([
        'C /etc',
        'D /etc/gone',
        'C /etc/passwd',
        'C /tmp',
        'A /tmp/d',
        'A /tmp/d/f',
        'A /tmp/new',
        'C /var',
        'D /var/lib',
      ]);
    });

    it('an unchanged snapshot has no changes', async () => {
      await s.prepare('c2', 'base');
      await mnt('c2');
      expect(await changes(await s.diffSource('c2'))).toEqual([]);
    });
  });
}
