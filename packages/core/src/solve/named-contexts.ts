/**
 * Named contexts (BuildKit's `--build-context NAME=VALUE`): the only way an image or a directory
 * outside the store and the build context comes into a build. The Dockerfile is untrusted, so it
 * may not name a host path itself (`FROM oci-layout:///etc/...`); the user who runs the build
 * gives the path a name on the command line, and the Dockerfile uses the name. A named context
 * overrides `FROM NAME` and `COPY --from=NAME`, even where a stage has that name (as BuildKit).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { loadExternal } from '../image/load.ts';
import { parseTransportRef, transportOf } from '../image/transport.ts';
import { BuildContext } from '../context/context.ts';
import type { FileHashCache } from '../context/hash-cache.ts';
import type { Store, StoredImage } from '../store/store.ts';
import type { CopyInstruction } from '@vlab/dockerfile';
import type { BuildSession } from './context.ts';

type Spec = { kind: 'image'; ref: string } | { kind: 'external'; ref: string } | { kind: 'dir'; dir: string };

const OTHER_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

export type ContextUse = 'FROM' | 'COPY --from' | 'RUN --mount=type=bind,from';

export class NamedContexts {
  private readonly images = new Map<string, Promise<StoredImage>>();
  private readonly dirs = new Map<string, Promise<BuildContext>>();

  private constructor(
    private readonly specs: Map<string, Spec>,
    private readonly store: Store,
    private readonly hashes: FileHashCache,
  ) {}

  /** Parses and checks every value up front: a typo fails before any step runs (E_BAD_ARG). */
  static async open(
    map: Record<string, string> | undefined,
    store: Store,
    hashes: FileHashCache,
  ): Promise<NamedContexts> {
    const specs = new Map<string, Spec>();
    for (const [name, value] of Object.entries(map ?? {})) specs.set(checkName(name), await parseValue(name, value));
    return new NamedContexts(specs, store, hashes);
  }

  /** Names the solver must not build as stages (a named context replaces them). */
  names(): ReadonlySet<string> {
    return new Set([...this.specs.keys()].map((n) => n.toLowerCase()));
  }

  /**
   * The image a name stands for: the named context's (loaded once per build), else undefined.
   * E_NAMED_CONTEXT when the name is a directory and `use` is FROM (a directory is not an image).
   */
  image(name: string, use: ContextUse): Promise<StoredImage> | undefined {
    const spec = this.lookup(name);
    if (!spec || spec.kind === 'dir') {
      if (spec && use === 'FROM')
        throw new VlabError(
          'E_NAMED_CONTEXT',
          `FROM ${name}: the named context "${name}" is a directory (${spec.dir}), not an image; use it with COPY --from=${name}, or give an image (--build-context ${name}=oci-layout://DIR or docker-image://REF)`,
        );
      return undefined;
    }
    let p = this.images.get(spec.ref);
    if (!p) {
      p = spec.kind === 'image' ? this.fromStore(name, spec.ref) : this.fromHost(name, spec.ref);
      this.images.set(spec.ref, p);
    }
    return p;
  }

  /** The directory a name stands for, as a build context of its own (its own .dockerignore), else undefined. */
  dir(name: string): Promise<BuildContext> | undefined {
    const spec = this.lookup(name);
    if (spec?.kind !== 'dir') return undefined;
    let p = this.dirs.get(spec.dir);
    if (!p) {
      p = BuildContext.open(spec.dir, this.hashes);
      this.dirs.set(spec.dir, p);
    }
    return p;
  }

  private lookup(name: string): Spec | undefined {
    return this.specs.get(name) ?? [...this.specs].find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
  }

  private async fromStore(name: string, ref: string): Promise<StoredImage> {
    const img = await this.store.resolve(ref);
    // held for the build, as resolveImage does: a concurrent rmi + prune cannot take its layers
    if (!img || !(await this.store.holdImage(img)))
      throw new VlabError(
        'E_IMAGE_NOT_FOUND',
        `--build-context ${name}=docker-image://${ref}: no image "${ref}" in the local store (${this.store.root})`,
      );
    return img;
  }

  private async fromHost(name: string, ref: string): Promise<StoredImage> {
    const img = await loadExternal(this.store, ref);
    if (!img)
      throw new VlabError(
        'E_BAD_ARG',
        `--build-context ${name}=${ref}: not an oci-layout://, oci-archive: or docker-archive: reference`,
      );
    return img;
  }
}

/**
 * COPY --from=NAME where NAME is a directory: the same COPY with that directory as its context
 * (the caller keeps the original instruction for the cache key; the content digest follows the files).
 */
export async function copyFromNamedDir(
  s: BuildSession,
  inst: CopyInstruction,
): Promise<{ session: BuildSession; inst: CopyInstruction }> {
  const dir = inst.from !== undefined ? s.namedContexts.dir(inst.from) : undefined;
  if (!dir) return { session: s, inst };
  return { session: { ...s, context: await dir }, inst: { ...inst, from: undefined } };
}

/**
 * A reference written in the Dockerfile that would read the host: E_NAMED_CONTEXT, naming the
 * flag that does the same from the command line.
 */
export function refuseTransport(ref: string, use: ContextUse): void {
  // Transports read the host (or, for docker-image://, pick a store image by another name).
  const transport = transportOf(ref);
  if (!transport) return;
  const name = use === 'FROM' ? 'base' : 'src';
  const usage = use === 'FROM' ? `FROM ${name}` : `${use}=${name}`;
  throw new VlabError(
    'E_NAMED_CONTEXT',
    `${use} ${ref}: a Dockerfile may not name a ${transport} source itself (it would read the host); pass it on the command line instead: --build-context ${name}=${ref} (API: buildContexts: { ${name}: '${ref}' }) and write ${usage}`,
    { details: { ref } },
  );
}

function checkName(name: string): string {
  if (!name || /[\s=]/.test(name))
    throw new VlabError('E_BAD_ARG', `--build-context: invalid name "${name}" (expected NAME=VALUE)`);
  return name;
}

async function parseValue(name: string, value: string): Promise<Spec> {
  let t;
  try {
    t = parseTransportRef(value);
  } catch (e) {
    throw new VlabError('E_BAD_ARG', `--build-context ${name}=${(e as Error).message}`, { cause: e });
  }
  if (t) {
    if (t.transport === 'docker-image') return { kind: 'image', ref: t.ref };
    if (t.transport === 'oci-layout' && value.includes('@')) {
      throw new VlabError(
        'E_UNSUPPORTED',
        `--build-context ${name}=${value}: selecting an OCI layout image by digest is not supported yet; select it by tag (oci-layout://DIR:TAG)`,
      );
    }
    return { kind: 'external', ref: value };
  }
  if (OTHER_URL.test(value)) {
    throw new VlabError(
      'E_BAD_ARG',
      `--build-context ${name}=${value}: unsupported source (use a directory, docker-image://REF, oci-layout://DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE)`,
    );
  }
  const dir = path.resolve(value);
  const st = await fsp.stat(dir).catch(() => undefined);
  if (!st?.isDirectory())
    throw new VlabError('E_BAD_ARG', `--build-context ${name}=${value}: ${dir} is not a directory`);
  return { kind: 'dir', dir };
}
