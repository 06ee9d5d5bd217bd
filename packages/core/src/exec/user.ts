/**
 * `USER` resolution against the image, Docker's rules: `name`, `uid`, `name:group`, `uid:gid`
 * (and mixes). Names must exist in the image's /etc/passwd or /etc/group (E_USER_NOT_FOUND);
 * numeric ids need not (nor `root` for --chown), so FROM scratch takes them. A uid found in /etc/passwd gives the primary gid and home; supplementary
 * groups are the /etc/group entries that list the user's name.
 */
import { VlabError } from '@vlab/errors';
import type { UnionView } from '@vlab/overlay';
import { MAX_IN_ROOT_READ, readInRoot } from '../fsutil/in-root.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const isId = (s: string) => /^\d+$/.test(s);

/**
 * `rule`: 'user' for USER (a bare uid keeps gid 0, as runc does), 'chown' for COPY/ADD --chown
 * (a bare uid is also the gid: BuildKit's readUser sets both from a numeric user, as Docker's docs say).
 */
export type UserRule = 'user' | 'chown';

export async function resolveUser(rootfs: string, user: string, rule: UserRule = 'user'): Promise<ResolvedUser> {
  return resolveUserFrom((p) => readInRoot(rootfs, p), user, rule);
}

/** Through a union of the image's layers, unmounted (COPY --chown): the same file rules as readInRoot. */
export async function resolveUserInView(view: UnionView, user: string, rule: UserRule = 'user'): Promise<ResolvedUser> {
  const read = async (p: string) => {
    try {
      return (await view.readFile(p, { maxBytes: MAX_IN_ROOT_READ })).toString('utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw e;
    }
  };
  return resolveUserFrom(read, user, rule);
}

/** Same rules, reading /etc/passwd and /etc/group through `read` (e.g. a union of layers, unmounted). */
export async function resolveUserFrom(
  read: (containerPath: string) => Promise<string | undefined>,
  user: string,
  rule: UserRule = 'user',
): Promise<ResolvedUser> {
  const spec = (user ?? '').trim();
  if (spec === '') return { uid: 0, gid: 0, additionalGids: [], home: '/root' };
  // COPY --chown: `root` is id 0 without any passwd file (BuildKit's llb parseUID), so FROM scratch takes it
  const id0 = (s: string | undefined) => (rule === 'chown' && s === 'root' ? '0' : s);
  const [u, g] = spec.split(':', 2).map(id0) as [string, string | undefined];
  const passwdText = await read('/etc/passwd');
  const groupText = await read('/etc/group');
  const passwd = parsePasswd(passwdText ?? '');
  const groups = parseGroup(groupText ?? '');
  const hint = (file: string, text: string | undefined) =>
    text === undefined ? ` (the image has no ${file}, as FROM scratch: give numeric ids, e.g. 1000:1000)` : '';

  const entry = isId(u) ? passwd.find((p) => p.uid === Number(u)) : passwd.find((p) => p.name === u);
  if (!entry && !isId(u)) {
    throw new VlabError(
      'E_USER_NOT_FOUND',
      `unable to find user ${u}: no matching entries in passwd file${hint('/etc/passwd', passwdText)}`,
      {
        details: { user: spec },
      },
    );
  }
  const uid = entry ? entry.uid : Number(u);
  let gid = rule === 'chown' && isId(u) ? uid : entry ? entry.gid : 0;
  if (g !== undefined && g !== '') {
    if (isId(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp) {
        throw new VlabError(
          'E_USER_NOT_FOUND',
          `unable to find group ${g}: no matching entries in group file${hint('/etc/group', groupText)}`,
          {
            details: { user: spec },
          },
        );
      }
      gid = grp.gid;
    }
  }
  const additionalGids = entry
    ? [...new Set(groups.filter((x) => x.members.includes(entry.name) && x.gid !== gid).map((x) => x.gid))]
    : [];
  return { uid, gid, additionalGids, home: entry?.home || (uid === 0 ? '/root' : '/') };
}

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4 || !isId(f[2]) || !isId(f[3])) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '' });
  }
  return out;
}

function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3 || !isId(f[2])) continue;
    out.push({ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}
