/**
 * Registry references, parsed by docker's grammar (distribution/reference) and normalised as
 * docker does: `busybox` → `docker.io/library/busybox:latest`, `me/app` → `docker.io/me/app`,
 * a first component with `.` or `:` (or `localhost`) is the registry host (`host:port` kept).
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [domain "/"] path-component ["/" path-component]*
 *   domain    := host [":" port]   (host: dns labels, IPv4, or [IPv6])
 *   path-component := [a-z0-9]+ ([_.] | __ | -+ [a-z0-9]+)*
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := algorithm ":" hex (sha256: 64 hex digits)
 *
 * Anything else is E_BAD_REF, with docker's reason.
 */
import { VlabError } from '@vlab/errors';
import { isRegistryHost, splitReference } from '../image/reference.ts';

export interface Reference {
  /** Registry host as written (`docker.io`, `127.0.0.1:5000`, `[::1]:5000`). */
  domain: string;
  /** Repository path inside the registry (`library/busybox`). */
  path: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
/** The host docker.io's API lives at. */
export const DOCKER_HUB_API = 'registry-1.docker.io';
const LEGACY_DOMAIN = 'index.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const NAME_MAX = 255;

const bad = (ref: string, why: string) =>
  new VlabError('E_BAD_REF', `invalid reference "${ref}": ${why}`, { details: { reference: ref } });

function validDomain(d: string): boolean {
  let host = d;
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(d);
  if (v6) return true;
  const colon = d.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^\d+$/.test(d.slice(colon + 1))) return false;
    host = d.slice(0, colon);
  }
  return host.split('.').every((l) => DOMAIN_LABEL.test(l));
}

/** Parse and normalise `ref` (docker's ParseNormalizedNamed + default tag). Throws E_BAD_REF. */
export function parseReference(ref: string, opts: { defaultTag?: boolean } = {}): Reference {
  if (!ref) throw bad(ref, 'it is empty');
  if (/^[a-f0-9]{64}$/.test(ref)) throw bad(ref, 'a 64-digit hexadecimal string is an image id, not a repository name');
  const parts = splitReference(ref);
  const { name: rest, digest } = parts;
  if (digest !== undefined) {
    if (!DIGEST.test(digest)) throw bad(ref, 'the digest is not algorithm:hex');
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest))
      throw bad(ref, 'a sha256 digest has 64 lowercase hex digits');
  }
  let { tag } = parts;
  if (tag !== undefined && !TAG.test(tag))
    throw bad(ref, `tag "${tag}" must be up to 128 letters, digits, '_', '.' or '-'`);
  if (!rest) throw bad(ref, 'the repository name is empty');
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash >= 0 && isRegistryHost(first)) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!validDomain(domain)) throw bad(ref, `"${domain}" is not a valid registry host[:port]`);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (path !== path.toLowerCase()) throw bad(ref, 'the repository name must be lowercase');
  if (!path.split('/').every((c) => COMPONENT.test(c)))
    throw bad(ref, 'the repository name must be lowercase letters, digits and separators (. _ __ -)');
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (domain.length + 1 + path.length > NAME_MAX) throw bad(ref, `the name is longer than ${NAME_MAX} characters`);
  if (opts.defaultTag !== false && !tag && !digest) tag = 'latest';
  return { domain, path, tag, digest };
}

/** `domain/path` (docker's Name()). */
export function repoName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** The full normalised form: `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:…`. */
export function formatReference(r: Reference): string {
  return `${repoName(r)}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** docker's familiar form (`busybox:latest`, `me/app:1`): how the local store names a pulled image. */
export function familiarName(r: Reference): string {
  let name = repoName(r);
  if (r.domain === DEFAULT_DOMAIN) name = r.path.startsWith('library/') ? r.path.slice(8) : r.path;
  return `${name}${r.tag ? `:${r.tag}` : ''}${r.digest && !r.tag ? `@${r.digest}` : ''}`;
}

/** The host to connect to for `domain` (docker.io's API is elsewhere). */
export function apiHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_API : domain;
}

/** True for hosts where plain http is allowed without --tls-verify=false (docker and skopeo's loopback rule). */
export function isLoopback(domain: string): boolean {
  const host = domain.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
