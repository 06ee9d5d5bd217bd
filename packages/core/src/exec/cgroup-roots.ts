/**
 * Where a cgroup named in /proc/PID/cgroup is under a cgroup mount. The name is relative to the
 * reader's cgroup namespace root; the mount's root (mountinfo's 4th field, shown relative to that
 * same root) need not be it:
 * - "/": a cgroupfs mounted in our namespace (the host's, docker's cgroupns=private): the name is
 *   the path under the mount point;
 * - "/docker/ID": a bind-mounted subtree (a container sharing the host's namespace): the cgroup
 *   "/docker/ID/x" is MOUNT/x, and one outside the subtree is not visible here;
 * - "/../..": mounted before `unshare -C` (our root is two levels below the mount's): our "/" is a
 *   directory inside the mount the kernel does not name; it is found from our own cgroup.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';

/** A mount whose root is not our namespace's root. */
export interface MountRoot {
  /** mountinfo's root field. */
  root: string;
  /** Above our root: our root's directory inside the mount (relative), when it was found. */
  nsRoot?: string;
}

/** At most this many directories are looked at to find our root inside a mount. */
const SEARCH_DIRS = 10_000;

/**
 * The MountRoot of a mount with this `root`; `find(up)` gives our root's directory inside a mount
 * whose root is `up` levels above ours.
 */
export function mountRoot(root: string, find: (up: number) => string | undefined): MountRoot {
  const up = /^(\/\.\.)+$/.test(root) ? root.length / 3 : 0;
  return up ? { root, nsRoot: find(up) } : { root };
}

/** The directory of cgroup `name` (namespace-relative) under `mount`, or undefined when it is not visible there. */
export function cgroupDir(mount: string, name: string, root: MountRoot | undefined): string | undefined {
  if (!name.startsWith('/') || name.split('/').includes('..') || name.endsWith(' (deleted)')) return undefined;
  if (!root) return path.join(mount, name);
  if (root.nsRoot !== undefined) return path.join(mount, root.nsRoot, name);
  if (root.root.split('/').includes('..')) return undefined; // beside or above ours, not found
  if (name === root.root) return mount;
  return name.startsWith(`${root.root}/`) ? path.join(mount, name.slice(root.root.length)) : undefined;
}

/**
 * Our root's directory inside `mount` (whose root is `up` levels above ours): the one `up` levels
 * down whose `own` (our cgroup, namespace-relative) lists `pid` in its cgroup.procs.
 */
export function findNsRoot(
  mount: string,
  up: number,
  own: string,
  hasPid: (procsFile: string) => boolean,
): string | undefined {
  let level = [''];
  let seen = 0;
  for (let i = 0; i < up; i++) {
    const next: string[] = [];
    for (const rel of level) {
      for (const d of subdirs(path.join(mount, rel))) {
        if (++seen > SEARCH_DIRS) return undefined;
        next.push(path.join(rel, d));
      }
    }
    level = next;
  }
  return level.find((rel) => hasPid(path.join(mount, rel, own, 'cgroup.procs')));
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
