/**
 * `--format lxc`: DEST/rootfs (the flattened image) and DEST/config, a minimal LXC config for
 * `lxc-execute -n NAME -f DEST/config [-- CMD]` or lxc-start: the image's command, environment,
 * working directory and user, an empty network namespace (loopback only: no network, as a
 * container gets nothing from the host unless asked), /dev made by LXC, proc and sys mounted.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Store, StoredImage } from '../store/store.ts';
import { resolveUser } from '../exec/user.ts';
import { flattenInto, writeAtomicPath, type FlattenOptions } from './flatten.ts';

/** A value for an LXC config line: one line, quoted for lxc's word splitting when it must be. */
function lxcWord(s: string): string {
  const one = s.replace(/[\r\n]+/g, ' ');
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(one) ? one : `'${one.replace(/'/g, `'"'"'`)}'`;
}

/** A container name LXC takes (its own rules: no '/', kept short). */
export function lxcName(ref: string | undefined, img: StoredImage): string {
  const base = ref ? (ref.split('@')[0]!.split('/').pop() ?? '').split(':')[0]! : '';
  const clean = base.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[-.]+/, '');
  return (clean || `vbuild-${img.configDigest.slice(7, 19)}`).slice(0, 63);
}

export async function lxcConfig(rootfs: string, finalRootfs: string, img: StoredImage, name: string): Promise<string> {
  const c = img.config.config ?? {};
  const argv = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const lines = [
    `# LXC config written by vbuild for ${name} (${img.manifestDigest})`,
    `# run: lxc-execute -n ${name} -f <this file> [-- CMD ARGS]`,
    `lxc.uts.name = ${name}`,
    `lxc.rootfs.path = dir:${finalRootfs}`,
    'lxc.net.0.type = empty',
    'lxc.autodev = 1',
    'lxc.mount.auto = proc:mixed sys:ro cgroup:mixed',
    'lxc.tty.max = 0',
    'lxc.pty.max = 16',
    'lxc.cap.drop = sys_module mac_admin mac_override sys_time',
  ];
  for (const e of c.Env ?? []) lines.push(`lxc.environment = ${e.replace(/[\r\n]+/g, ' ')}`);
  if (c.WorkingDir) lines.push(`lxc.init.cwd = ${lxcWord(c.WorkingDir)}`);
  if (c.User) {
    const u = await resolveUser(rootfs, c.User);
    lines.push(`lxc.init.uid = ${u.uid}`, `lxc.init.gid = ${u.gid}`);
  }
  if (argv.length) {
    const cmd = argv.map(lxcWord).join(' ');
    lines.push(`lxc.execute.cmd = ${cmd}`, `lxc.init.cmd = ${cmd}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function writeLxc(
  store: Store,
  img: StoredImage,
  dest: string,
  ref?: string,
  opts: FlattenOptions = {},
): Promise<void> {
  const finalDir = path.resolve(dest);
  const name = lxcName(ref, img);
  await writeAtomicPath(finalDir, async (tmp) => {
    await fsp.mkdir(tmp, { mode: 0o755 });
    const rootfs = path.join(tmp, 'rootfs');
    await flattenInto(store, img, rootfs, opts);
    await fsp.writeFile(path.join(tmp, 'config'), await lxcConfig(rootfs, path.join(finalDir, 'rootfs'), img, name));
  });
}
