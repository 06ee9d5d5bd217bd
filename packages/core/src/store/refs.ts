import { VlabError } from '@vlab/errors';
import { isRegistryHost, splitReference } from '../image/reference.ts';

/**
 * Image references as users type them: `name[:tag]` or `name@sha256:…`. Local names are stored in
 * index.json as `org.opencontainers.image.ref.name` = `name:tag` (tag defaults to `latest`).
 */
export interface ParsedRef {
  name: string;
  tag?: string;
  digest?: string;
}

const NAME_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;

export function parseRef(ref: string): ParsedRef {
  const { name: rest, tag, digest } = splitReference(ref);
  if (!NAME_RE.test(rest))
    throw new VlabError(
      'E_BAD_REF',
      `invalid image reference "${ref}": name must be lowercase letters, digits and separators`,
    );
  if (tag !== undefined && !TAG_RE.test(tag)) throw new VlabError('E_BAD_REF', `invalid tag in "${ref}"`);
  if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest))
    throw new VlabError('E_BAD_REF', `invalid digest in "${ref}"`);
  return { name: rest, tag, digest };
}

/** `name:tag` with the default tag filled in; the key under which the index stores a ref. */
export function normalizeRef(ref: string): string {
  const p = parseRef(ref);
  if (p.digest) return `${p.name}@${p.digest}`;
  return `${p.name}:${p.tag ?? 'latest'}`;
}

/** Docker Hub style short names: `library/busybox` and `docker.io/library/busybox` match `busybox`. */
export function refCandidates(ref: string): string[] {
  const n = normalizeRef(ref);
  const out = [n];
  for (const prefix of ['docker.io/library/', 'docker.io/', 'library/']) {
    if (n.startsWith(prefix)) out.push(n.slice(prefix.length));
  }
  return out;
}

/**
 * The fully qualified name docker writes as `io.containerd.image.name`: `v1` is
 * `docker.io/library/v1:latest`, `me/app` is `docker.io/me/app:latest`; a first component with a
 * `.` or `:`, or `localhost`, is a registry and stays.
 */
export function qualifiedRef(ref: string): string {
  const n = normalizeRef(ref);
  const slash = n.indexOf('/');
  if (slash < 0) return `docker.io/library/${n}`;
  const first = n.slice(0, slash);
  return isRegistryHost(first) ? n : `docker.io/${n}`;
}

/** Docker's short ("familiar") form, as `docker save` writes RepoTags: `docker.io/library/` dropped. */
export function familiarRef(ref: string): string {
  const q = qualifiedRef(ref);
  for (const prefix of ['docker.io/library/', 'docker.io/']) if (q.startsWith(prefix)) return q.slice(prefix.length);
  return q;
}
