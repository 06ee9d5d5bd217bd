/**
 * The reference rules both the local store (store/refs.ts) and the registry client
 * (registry/reference.ts) follow, kept here, below both: where the digest and the tag are cut off,
 * and which first path component names a registry host. Each caller validates the parts by its
 * own grammar.
 */

export interface RefParts {
  /** The name: everything before the tag and the digest. */
  name: string;
  tag?: string;
  digest?: string;
}

/** Cut `name[:tag][@digest]` apart: the digest after the first `@`, the tag after a `:` past the last `/`. */
export function splitReference(ref: string): RefParts {
  let name = ref;
  let digest: string | undefined;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  return { name, tag, digest };
}

/** Docker's rule: a first component with `.` or `:`, `localhost`, or an upper-case letter is a registry host. */
export function isRegistryHost(first: string): boolean {
  return /[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase();
}
