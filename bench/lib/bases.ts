/**
 * Base images every builder starts from, made once per data dir and kept:
 * - busybox:latest: examples/hello/make-base.sh (busybox-static) imported into a template vlab store;
 * - bigbase:latest: the same rootfs plus /usr/share/big with many small files (synthetic, made by
 *   our own import), for "commit time vs base size" and the whiteout case.
 * Peers get them as docker-archive tars (`vbuild save --format docker`) or, for ch-image, as the
 * rootfs tars themselves.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { genSmall, type Sizes } from '../cases.ts';
import { sh, exists } from './measure.ts';

export interface Bases {
  /** A vlab store holding both bases; copy it to get an empty-cache store. */
  templateStore: string;
  dockerTar: Record<'busybox' | 'bigbase', string>;
  rootfsTar: Record<'busybox' | 'bigbase', string>;
  /** Files in the big base (as made). */
  baseFiles: number;
}

export const VBUILD = (repo: string) => ['node', path.join(repo, 'packages/core/bin/vbuild.js')];

export async function makeBases(repo: string, dataDir: string, s: Sizes, log: (m: string) => void): Promise<Bases> {
  const dir = path.join(dataDir, `bases-${s.baseFiles}`);
  const b: Bases = {
    templateStore: path.join(dir, 'store'),
    dockerTar: { busybox: path.join(dir, 'busybox.docker.tar'), bigbase: path.join(dir, 'bigbase.docker.tar') },
    rootfsTar: { busybox: path.join(dir, 'busybox.rootfs.tar'), bigbase: path.join(dir, 'bigbase.rootfs.tar') },
    baseFiles: s.baseFiles,
  };
  if (await exists(path.join(dir, 'done'))) return b;
  log(`making base images in ${dir}`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  const env = { ...process.env, VLAB_ROOT: b.templateStore };
  await sh(['bash', path.join(repo, 'examples/hello/make-base.sh'), 'busybox:latest'], { env });

  const root = path.join(dir, 'rootfs');
  await busyboxRootfs(root);
  await tarDir(root, b.rootfsTar.busybox);
  await genSmall(path.join(root, 'usr/share/big'), s.baseFiles, 'b');
  await tarDir(root, b.rootfsTar.bigbase);
  await fs.rm(root, { recursive: true, force: true });
  await sh([...VBUILD(repo), 'import', b.rootfsTar.bigbase, 'bigbase:latest'], { env });
  for (const name of ['busybox', 'bigbase'] as const) {
    await sh([...VBUILD(repo), 'save', '-o', b.dockerTar[name], '--format', 'docker', `${name}:latest`], { env });
  }
  await fs.writeFile(path.join(dir, 'done'), '');
  return b;
}

/** The rootfs make-base.sh builds, made here too so ch-image can import the same tree. */
async function busyboxRootfs(root: string): Promise<void> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'home', 'var']) {
    await fs.mkdir(path.join(root, d), { recursive: true });
  }
  await fs.chmod(path.join(root, 'tmp'), 0o1777);
  await fs.copyFile('/bin/busybox', path.join(root, 'bin/busybox'));
  await fs.chmod(path.join(root, 'bin/busybox'), 0o755);
  const applets = (await sh(['/bin/busybox', '--list'])).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) await fs.symlink('busybox', path.join(root, 'bin', a));
  await fs.writeFile(
    path.join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await fs.writeFile(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

async function tarDir(root: string, out: string): Promise<void> {
  await sh([
    'tar',
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-C',
    root,
    '-cf',
    out,
    '.',
  ]);
}
