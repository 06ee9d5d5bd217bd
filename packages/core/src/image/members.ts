/**
 * The members of an image archive by name, and the one rule for resolving a name an untrusted
 * manifest gives (docker-archive's Config and Layers, OCI's blobs/sha256/…): relative, no `..`
 * above the archive's root, symlinks and hard links followed inside the archive only. Nothing is
 * looked up on the host: an archive path that would leave the archive is E_BAD_ARCHIVE.
 */
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Staged } from './staging.ts';

/** Entries of an archive tar this many at most (docker save writes about 3 per layer). */
export const MAX_MEMBERS = 20_000;
const MAX_HOPS = 40;

type Link = { kind: 'symlink' | 'link'; target: string };

export class Members {
  private readonly files = new Map<string, Staged>();
  private readonly links = new Map<string, Link>();
  private count = 0;
  constructor(private readonly where: string) {}

  /** Normalised name of a member as stored; a name that leaves the archive is refused. */
  key(name: string): string {
    if (++this.count > MAX_MEMBERS)
      throw new VlabError('E_BAD_ARCHIVE', `${this.where}: more than ${MAX_MEMBERS} entries`);
    const parts = split(name);
    if (!parts)
      throw new VlabError(
        'E_BAD_ARCHIVE',
        `${this.where}: entry ${JSON.stringify(name)} has a name outside the archive (absolute or with ..)`,
      );
    return parts.join('/');
  }

  /** Record a file; returns the member it replaces (a later entry of the same name wins, as in tar). */
  addFile(key: string, s: Staged): Staged | undefined {
    const old = this.files.get(key);
    this.files.set(key, s);
    this.links.delete(key);
    return old;
  }

  addLink(key: string, kind: Link['kind'], target: string): Staged | undefined {
    const old = this.files.get(key);
    this.files.delete(key);
    this.links.set(key, { kind, target });
    return old;
  }

  has(key: string): boolean {
    return this.files.has(key) || this.links.has(key);
  }

  all(): Iterable<[string, Staged]> {
    return this.files.entries();
  }

  /**
   * The file that `ref` names (from the document `doc`, at JSON pointer `pointer`), following
   * links inside the archive.
   */
  resolve(ref: string, doc: string, pointer: string): Staged {
    const fail = (why: string): never => {
      throw new VlabError('E_BAD_ARCHIVE', `${this.where}: ${doc} field ${pointer}: ${JSON.stringify(ref)} ${why}`, {
        details: { pointer },
      });
    };
    if (ref.startsWith('/')) fail('is an absolute path: archive paths are relative');
    let parts = split(ref) ?? fail('escapes the archive (..)');
    let hops = 0;
    for (let changed = true; changed;) {
      changed = false;
      for (let i = 0; i < parts.length && !changed; i++) {
        const prefix = parts.slice(0, i + 1).join('/');
        const link = this.links.get(prefix);
        if (!link) continue;
        if (++hops > MAX_HOPS) fail('goes through too many links');
        const outside = () => fail(`goes through ${prefix} -> ${link.target}, which points outside the archive`);
        if (link.target.startsWith('/')) outside();
        // A symlink is relative to its dir; a hard link's target is an archive path.
        const base = link.kind === 'symlink' ? path.posix.dirname(prefix) : '';
        const next = split(path.posix.join(base, link.target)) ?? outside();
        parts = [...next, ...parts.slice(i + 1)];
        changed = true;
      }
    }
    return this.files.get(parts.join('/')) ?? fail('is not a file in the archive');
  }
}

/** Path components with `.` removed and `..` applied; undefined when it climbs above the root or is absolute. */
function split(name: string): string[] | undefined {
  if (name.startsWith('/') || name.includes('\0')) return undefined;
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (!out.length) return undefined;
      out.pop();
    } else out.push(c);
  }
  return out;
}
