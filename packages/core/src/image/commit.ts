/**
 * `commit`: a writable snapshot's changes (the overlay layer diff of its upper dir) become one new
 * layer on top of its image, with a history entry (docker commit's: created_by = the container's
 * Cmd, comment = -m, author = -a) and the container's config, then `--change` instructions applied
 * (docker's set: CMD ENTRYPOINT ENV EXPOSE LABEL ONBUILD USER VOLUME WORKDIR, as a Dockerfile
 * says them). A snapshot with no changes adds no layer (docker's empty_layer history entry).
 * The caller keeps the snapshot still while it is read (it freezes a running container).
 */
import { diff, writeLayer, type Snapshotter } from '@vlab/overlay';
import { parseInstructionText } from '@vlab/dockerfile';
import { VlabError } from '@vlab/errors';
import type { Store, StoredImage } from '../store/store.ts';
import { normalizeRef } from '../store/refs.ts';
import { MEDIA, type ContainerConfig, type Descriptor, type ImageConfig } from './types.ts';
import { applyMeta, resolveWorkdir } from '../solve/ops/meta.ts';

/** sha256 of an empty tar (two zero blocks): docker's DigestSHA256EmptyTar. */
const EMPTY_TAR_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';
const CHANGE_KINDS = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'USER', 'VOLUME', 'WORKDIR']);

export interface CommitOptions {
  store: Store;
  snapshots: Snapshotter;
  /** The container's active snapshot. */
  snapshotKey: string;
  /** Its image. */
  base: StoredImage;
  /** The container's config (Env, Cmd, Entrypoint, WorkingDir, User, Labels…): the new image's. */
  config: ContainerConfig;
  /** Container paths left out of the layer (a running container's mountpoints). */
  exclude?: string[];
  message?: string;
  author?: string;
  /** Dockerfile instructions (`-c 'CMD ["sh"]'`). */
  changes?: string[];
  /** Tagged when given; checked before anything is written (E_BAD_REF). */
  ref?: string;
  now?: Date;
}

/** Parses and applies `--change` lines: E_BAD_ARG for an instruction docker commit does not take. */
export function applyChanges(img: ImageConfig, changes: string[]): ImageConfig {
  const state = { cmdSet: false };
  let out = img;
  for (const text of changes) {
    const inst = parseInstructionText(text);
    if (!CHANGE_KINDS.has(inst.kind))
      throw new VlabError(
        'E_BAD_ARG',
        `${inst.kind} is not a valid change command (docker commit takes ${[...CHANGE_KINDS].join(', ')})`,
      );
    if (inst.kind === 'WORKDIR')
      out = { ...out, config: { ...out.config, WorkingDir: resolveWorkdir(out.config.WorkingDir, inst.path) } };
    else out = applyMeta(out, inst, state);
  }
  return out;
}

export async function commitSnapshot(o: CommitOptions): Promise<StoredImage> {
  if (o.ref !== undefined) normalizeRef(o.ref); // an invalid name fails before the layer is written
  const now = (o.now ?? new Date()).toISOString();
  let next: ImageConfig = {
    ...o.base.config,
    created: now,
    ...(o.author ? { author: o.author } : {}),
    config: { ...o.base.config.config, ...o.config },
  };
  if (o.changes?.length) next = applyChanges(next, o.changes);
  const blob = await o.store.blobs.create();
  let written;
  try {
    written = await writeLayer(diff(o.snapshots, o.snapshotKey, { exclude: o.exclude }) as never, blob.stream);
  } catch (e) {
    await blob.abort();
    throw e;
  }
  const empty = written.diffId === EMPTY_TAR_DIFF_ID;
  const layers: Descriptor[] = o.base.manifest.layers.map((l) => ({ ...l }));
  const diffIds = [...o.base.config.rootfs.diff_ids];
  if (empty) await blob.abort();
  else {
    const stored = await blob.commit(written.diffId);
    layers.push({ mediaType: MEDIA.layer, digest: stored.digest, size: stored.size });
    diffIds.push(written.diffId);
  }
  next = {
    ...next,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [
      ...o.base.config.history,
      {
        created: now,
        created_by: (o.config.Cmd ?? []).join(' '),
        ...(o.author ? { author: o.author } : {}),
        ...(o.message ? { comment: o.message } : {}),
        ...(empty ? { empty_layer: true } : {}),
      },
    ],
  };
  const img = await o.store.putImage(next, layers);
  if (o.ref !== undefined) await o.store.tag(o.ref, img.manifestDigest);
  return { ...img, ref: o.ref };
}
