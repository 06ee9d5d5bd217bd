/**
 * Interop with another OCI tool (umoci, Debian package): our `diff` layers unpacked by umoci give
 * the same tree as our overlay mount; a layer umoci repacks is applied by `apply` to the same tree
 * umoci shows. Skips (with the reason) only when umoci is not installed.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { promises as fs, createWriteStream, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { createSnapshotter, mountAll, unmountAll, apply, diff, writeLayer, type Snapshotter } from './index.ts';
import { describeTree } from './testing/tree.ts';
import { run } from './sys.ts';

const umoci = ['/usr/bin/umoci', '/usr/local/bin/umoci'].find((p) => existsSync(p));

async function sh(cmd: string, args: string[], cwd?: string) {
  const r = await run(cmd, args, { cwd });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString();
}

describe.skipIf(!umoci)(
  `interop with umoci${umoci ? '' : ' (skipped: umoci not installed — apt-get install umoci)'}`,
  () => {
    let tmp: string;
    let s: Snapshotter;
    const mounted: string[] = [];
    afterAll(async () => {
      for (const m of mounted) await unmountAll(m).catch(() => {});
      if (tmp) await fs.rm(tmp, { recursive: true, force: true });
    });
    const mnt = async (key: string) => {
      const t = path.join(tmp, `m${mounted.length}`);
      mounted.push(t);
      await mountAll(await s.mounts(key), t);
      return t;
    };

    it('our layers → umoci unpack, and umoci repack → our apply, give the same trees', async () => {
      tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-umoci-'));
      s = await createSnapshotter(path.join(tmp, 'root'), { driver: 'overlay' });
      const oci = path.join(tmp, 'oci');
      await sh(umoci!, ['init', '--layout', oci]);
      await sh(umoci!, ['new', '--image', `${oci}:t`]);

      // layer 0: a base tree
      await s.prepare('b');
      const b = (await s.writableDir('b')).dir;
      await fs.mkdir(path.join(b, 'etc/conf.d'), { recursive: true });
      await fs.writeFile(path.join(b, 'etc/conf.d/one'), 'one');
      await fs.writeFile(path.join(b, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
      await fs.mkdir(path.join(b, 'bin'));
      await fs.writeFile(path.join(b, 'bin/tool'), Buffer.alloc(70_000, 7), { mode: 0o755 });
      await fs.symlink('tool', path.join(b, 'bin/alias'));
      await fs.link(path.join(b, 'bin/tool'), path.join(b, 'bin/hard'));
      await fs.writeFile(path.join(b, 'old'), 'old');
      await fs.lchown(path.join(b, 'old'), 1000, 1000);
      const layers: string[] = [];
      const write = async (key: string) => {
        const f = path.join(tmp, `layer${layers.length}.tar`);
        await writeLayer(diff(s, key), createWriteStream(f));
        layers.push(f);
        await sh(umoci!, ['raw', 'add-layer', '--image', `${oci}:t`, f]);
      };
      await write('b');
      await s.commit('B', 'b');
      // layer 1: changes made through a real overlay mount
      await s.prepare('c', 'B');
      const m = await mnt('c');
      await fs.rm(path.join(m, 'old'));
      await fs.rm(path.join(m, 'etc/conf.d'), { recursive: true });
      await fs.mkdir(path.join(m, 'etc/conf.d'));
      await fs.writeFile(path.join(m, 'etc/conf.d/two'), 'two');
      await fs.chmod(path.join(m, 'bin/tool'), 0o4755);
      await fs.writeFile(path.join(m, `${'n'.repeat(150)}`), 'long name');
      await unmountAll(m);
      mounted.pop();
      await write('c');
      await s.commit('C', 'c');

      await sh(umoci!, ['unpack', '--image', `${oci}:t`, path.join(tmp, 'bundle')]);
      await s.view('v', 'C');
      const ours = await describeTree(await mnt('v'), { mtimes: true });
      const theirs = await describeTree(path.join(tmp, 'bundle/rootfs'), { mtimes: true });
      expect(theirs).toEqual(ours);

      // the other way: umoci computes a layer from its own changes; we apply it on C
      const rootfs = path.join(tmp, 'bundle/rootfs');
      await fs.rm(path.join(rootfs, 'etc/passwd'));
      await fs.writeFile(path.join(rootfs, 'etc/conf.d/three'), '3');
      await fs.mkdir(path.join(rootfs, 'var/lib'), { recursive: true });
      await fs.symlink('/etc/conf.d/two', path.join(rootfs, 'var/lib/link'));
      await fs.chmod(path.join(rootfs, 'bin'), 0o700);
      // whole-second mtimes: umoci's tar writer rounds sub-second mtimes to the nearest second
      for (const p of ['etc/conf.d/three', 'var/lib/link'])
        await fs.lutimes(path.join(rootfs, p), 1_700_000_000, 1_700_000_000);
      await sh(umoci!, ['repack', '--image', `${oci}:t2`, path.join(tmp, 'bundle')]);
      const index = JSON.parse(await fs.readFile(path.join(oci, 'index.json'), 'utf8')) as {
        manifests: { digest: string; annotations?: Record<string, string> }[];
      };
      const desc = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === 't2')!;
      const blob = (d: string) => path.join(oci, 'blobs/sha256', d.replace('sha256:', ''));
      const manifest = JSON.parse(await fs.readFile(blob(desc.digest), 'utf8')) as { layers: { digest: string }[] };
      const top = gunzipSync(await fs.readFile(blob(manifest.layers[manifest.layers.length - 1].digest)));
      await s.prepare('d', 'C');
      const w = await s.writableDir('d');
      await apply(Readable.from([top]), w.dir, { whiteouts: w.whiteouts });
      await s.commit('D', 'd');
      await s.view('v2', 'D');
      const applied = await describeTree(await mnt('v2'), { mtimes: true });
      expect(applied).toEqual(await describeTree(rootfs, { mtimes: true }));
    });
  },
);
