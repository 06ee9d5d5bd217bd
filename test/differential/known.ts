/**
 * Known, justified differences between vbuild and buildah, per case and compared field. A
 * difference the suite finds that no entry matches fails its case; so does a per-case entry that
 * matches nothing (the table must not go stale). `case: '*'` entries apply to every case.
 * Where buildah and BuildKit disagree, BuildKit wins: the reason says what each writes.
 * `who` says whose deviation it is: 'buildah' (from BuildKit; vbuild follows BuildKit) or 'vbuild'
 * (a vbuild bug, with the issue item that fixes it).
 */
import { EPOCH, type Difference } from './harness.ts';

export interface Known {
  case: string | string[];
  /** A difference key (harness.ts `Difference.key`), or a pattern over keys. */
  key: string | RegExp;
  /** Narrows the entry to some values (e.g. only mtimes vbuild left older than the epoch). */
  when?: (d: Difference) => boolean;
  who: 'buildah' | 'vbuild';
  reason: string;
}

export const KNOWN: Known[] = [
  {
    case: '*',
    key: /:mtime$/,
    when: (d) => (d.vbuild as number) < EPOCH && d.buildah === EPOCH,
    who: 'buildah',
    reason:
      "buildah --timestamp sets every mtime in the layers it writes to the epoch; BuildKit with SOURCE_DATE_EPOCH (rewrite-timestamp) only clamps times newer than the epoch, and so does vbuild: older times stay (tar members, files copied from an image or linked to one, touch -d, and dirs such as /etc that buildah's layer holds only for its RUN stubs)",
  },
  {
    case: '*',
    key: /^rootfs:\/(etc\/(hostname|hosts|resolv\.conf)|run):exists$/,
    when: (d) => d.vbuild === false && d.buildah === true,
    who: 'buildah',
    reason:
      'buildah (chroot isolation) leaves the /etc/hostname, /etc/hosts, /etc/resolv.conf files and the /run dir it makes for a RUN in the image; BuildKit removes the mount stubs it created, and so does vbuild',
  },
  {
    case: 'env-expansion',
    key: 'config:Env',
    who: 'buildah',
    reason:
      'buildah 1.28 moves a key that ENV sets again (here PATH, set by the base) to the end of Env; BuildKit (dockerfile2llb addEnv) replaces it where it stands, as vbuild does',
  },
  {
    case: 'add-tar',
    key: /^rootfs:\/(unpacked|again):(uid|gid)$/,
    who: 'buildah',
    reason:
      "buildah gives the destination dir the owner of the archive's `./` entry; Docker's untar (which BuildKit's ADD uses) skips `.` when the destination exists, and BuildKit creates it first, so it stays root's",
  },
  {
    case: 'shell',
    key: 'config:Cmd',
    who: 'buildah',
    reason:
      'buildah 1.28 wraps a shell-form CMD in /bin/sh -c whatever SHELL says; BuildKit uses the current SHELL (here /bin/sh -ec)',
  },
  {
    case: ['env-expansion', 'workdir-only'],
    key: /^rootfs:\/(changed|never|never\/used):exists$/,
    when: (d) => d.vbuild === true && d.buildah === false,
    who: 'buildah',
    reason:
      'buildah 1.28 creates a WORKDIR only when a later RUN, COPY or ADD uses it; BuildKit creates it at the WORKDIR step (a mkdir with parents), as vbuild does',
  },
  {
    case: 'volume',
    key: /^rootfs:\/(data|var\/log|var\/lib|var\/lib\/app):exists$/,
    who: 'buildah',
    reason: 'buildah creates VOLUME dirs in the rootfs; BuildKit only records them in the config',
  },
];

/** Whether entry `k` explains difference `d` of case `name`. */
export function matches(k: Known, name: string, d: Difference): boolean {
  const forCase = k.case === '*' || k.case === name || (Array.isArray(k.case) && k.case.includes(name));
  return forCase && (typeof k.key === 'string' ? k.key === d.key : k.key.test(d.key)) && (!k.when || k.when(d));
}

export function isKnown(name: string, d: Difference): Known | undefined {
  return KNOWN.find((k) => matches(k, name, d));
}

/** Per-case entries (not '*') that name this case: each must explain one of its differences. */
export function knownFor(name: string): Known[] {
  return KNOWN.filter((k) => k.case === name || (Array.isArray(k.case) && k.case.includes(name)));
}
