/**
 * A detached container through an OCI runtime (runc, crun), conmon's model: the container's
 * monitor runs `RUNTIME run --bundle DIR --pid-file DIR/pid ID` in the foreground as its child,
 * so the runtime's exit status is the container's (128+n after a signal), the container's stdio is
 * the monitor's pipes (the runtime passes its own on without a terminal), and the runtime forwards
 * the signals it gets. Pid 1 of the container is the runtime's child but not the first one it
 * forks (`runc init` stages come first): the pid file tells it.
 *
 * The runtime makes the cgroup at `where.cgroup` itself (the config's cgroupsPath, limits applied)
 * and removes it when the container ends; the bundle dir holds config.json, a cleanup-only spec
 * (native-spec.ts cleanupSpec) for the mountpoints prepareRun made in the rootfs, and the
 * runtime's `delete --force` (DELETE_FILE) for a runtime that was killed before it cleaned up.
 *
 * A command that is missing or not executable: runc 1.1 refuses it at create time with exit 1
 * (what its foreground run maps through the message); here the same lookup is made first, in the
 * rootfs with the container's PATH, and the launch is a host `sh` that prints runc's message and
 * exits 127 / 126, as docker run does and as vlab-init's containers do.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DetachedLaunch, RunSpec } from './types.ts';
import { prepareRun, type PreparedRun } from './prepare.ts';
import { buildOciConfig } from './oci-spec.ts';
import { cleanupSpec } from './native-spec.ts';
import { detectCgroupLayout } from './cgroups.ts';
import { refuseNativeOnly } from './network.ts';
import { resolveInRoot } from '../fsutil/in-root.ts';

/** In a launch's dir: argv (JSON) that cleanupDetached runs after the end. */
export const DELETE_FILE = 'delete.json';

export async function prepareOciDetached(
  runtime: { name: string; bin: string; stateRoot: string },
  spec: RunSpec,
  where: { dir: string; cgroup: string },
): Promise<DetachedLaunch> {
  refuseNativeOnly(spec, runtime.name);
  const layout = await detectCgroupLayout();
  const prep = await prepareRun(spec, { dir: where.dir });
  try {
    const config = buildOciConfig(prep, '/' + where.cgroup, spec.limits ?? {}, layout.version);
    await fs.writeFile(path.join(prep.dir, 'config.json'), JSON.stringify(config));
    await fs.writeFile(path.join(prep.dir, 'spec'), cleanupSpec(prep));
    const launch = { dir: prep.dir, cgroup: where.cgroup };
    const bad = await lookUp(prep);
    if (bad) return { ...launch, argv: ['/bin/sh', '-c', 'printf "%s\\n" "$1" >&2; exit "$2"', 'vlab', ...bad] };
    const pidFile = path.join(prep.dir, 'pid');
    // prettier-ignore
    const argv = [runtime.bin, '--root', runtime.stateRoot, 'run', '--bundle', prep.dir, '--pid-file', pidFile, `vlabctr-${prep.id}`];
    // a runtime killed with its monitor leaves its state behind: cleanupDetached deletes it
    await fs.writeFile(
      path.join(prep.dir, DELETE_FILE),
      JSON.stringify([runtime.bin, '--root', runtime.stateRoot, 'delete', '--force', `vlabctr-${prep.id}`]),
    );
    return { ...launch, argv, pidFile };
  } catch (e) {
    await prep.cleanup();
    throw e;
  }
}

/** runc's exec.LookPath in the rootfs: [message, exit code] when argv[0] cannot be exec'd. */
async function lookUp(prep: PreparedRun): Promise<[string, string] | undefined> {
  const cmd = prep.argv[0]!;
  const pathVar = prep.env.find((e) => e.startsWith('PATH='))?.slice(5) ?? '';
  const candidates = cmd.includes('/')
    ? [path.posix.resolve(prep.cwd, cmd)]
    : pathVar
        .split(':')
        .filter(Boolean)
        .map((d) => path.posix.join(d, cmd));
  let denied = false;
  for (const c of candidates) {
    const host = await resolveInRoot(prep.rootfs, c).catch(() => undefined);
    const st = host ? await fs.lstat(host).catch(() => undefined) : undefined; // resolved: no link left
    if (!st || st.isDirectory()) {
      denied ||= !!st && cmd.includes('/');
      continue;
    }
    if (st.mode & 0o111) return undefined;
    denied = true;
    if (cmd.includes('/')) break;
  }
  const why = cmd.includes('/')
    ? denied
      ? 'permission denied'
      : 'no such file or directory'
    : denied
      ? 'permission denied'
      : 'executable file not found in $PATH';
  return [`exec: "${cmd}": ${why}`, denied ? '126' : '127'];
}
