import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import type { Store, StoredImage } from '../store/store.ts';
import { MEDIA, REF_NAME } from '../image/types.ts';
import { writeArchive, type ArchiveEntry } from '../archive/tar.ts';
import { normalizeRef } from '../store/refs.ts';
import { exportLocal } from './local.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * `--output type=…,dest=…`: `oci` = OCI layout dir (or an OCI archive when dest ends in .tar),
 * `docker` = docker-archive (`docker load`), `tar` = the image's filesystem as one tarball,
 * `local` = the filesystem copied into a directory (as BuildKit's local exporter: local.ts).
 */
export interface OutputSpec {
  type: 'oci' | 'docker' | 'tar' | 'local';
  dest: string;
}

const OUTPUT_TYPES = ['oci', 'docker', 'tar', 'local'];

export function parseOutput(spec: string): OutputSpec {
  const kv = Object.fromEntries(spec.split(',').map((p) => p.split('=', 2) as [string, string]));
  const type = kv.type;
  if (!type || !OUTPUT_TYPES.includes(type)) {
    throw new VlabError('E_BAD_ARG', `--output type=${type ?? ''} is not supported (use one of: ${OUTPUT_TYPES.join(', ')})`);
  }
  if (!kv.dest) throw new VlabError('E_BAD_ARG', `--output ${spec}: dest=… is required`);
  return { type: type as OutputSpec['type'], dest: kv.dest };
}

/** Mounts the image's filesystem read-only for a callback (tar/local outputs need a tree). */
export type WithRootfs = <T>(img: StoredImage, work: (rootfs: string) => Promise<T>) => Promise<T>;

export async function exportImage(store: Store, img: StoredImage, out: OutputSpec, ref?: string, withRootfs?: WithRootfs): Promise<void> {
  if (out.type === 'tar' || out.type === 'local') {
    if (!withRootfs) throw new VlabError('E_UNSUPPORTED', `--output type=${out.type} needs the snapshotter`);
    await withRootfs(img, async (rootfs) => {
      if (out.type === 'local') {
        await exportLocal(rootfs, out.dest);
      } else {
        const tmp = `${out.dest}.tmp-${process.pid}`;
        await execFileP('tar', ['--numeric-owner', '--xattrs', '--sort=name', '-C', rootfs, '-cf', tmp, '.']);
        await fsp.rename(tmp, out.dest);
      }
    });
    return;
  }
  if (out.type === 'oci') {
    if (out.dest.endsWith('.tar')) await writeArchive(out.dest, await ociLayoutEntries(store, img, ref));
    else await writeOciDir(store, img, out.dest, ref);
  } else {
    await writeArchive(out.dest, await dockerArchiveEntries(store, img, ref));
  }
}

function indexFor(img: StoredImage, size: number, ref?: string) {
  return {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [
      {
        mediaType: MEDIA.manifest,
        digest: img.manifestDigest,
        size,
        ...(ref ? { annotations: { [REF_NAME]: tagOf(ref) } } : {}),
      },
    ],
  };
}

/** The tag part of a ref, which is how skopeo/umoci name images inside a layout (`oci:dir:tag`). */
function tagOf(ref: string): string {
  const n = normalizeRef(ref);
  return n.slice(n.lastIndexOf(':') + 1);
}

function blobDigests(img: StoredImage): string[] {
  return [img.manifestDigest, img.configDigest, ...img.manifest.layers.map((l) => l.digest)];
}

async function writeOciDir(store: Store, img: StoredImage, dest: string, ref?: string): Promise<void> {
  const blobs = path.join(dest, 'blobs', 'sha256');
  await fsp.mkdir(blobs, { recursive: true });
  for (const d of blobDigests(img)) {
    const target = path.join(blobs, d.slice(7));
    if (await fsp.access(target).then(() => true, () => false)) continue;
    await fsp.link(store.blobs.path(d), target).catch(() => pipeline(store.blobs.open(d), fs.createWriteStream(target)));
  }
  await fsp.writeFile(path.join(dest, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const size = await store.blobs.size(img.manifestDigest);
  await fsp.writeFile(path.join(dest, 'index.json'), JSON.stringify(indexFor(img, size, ref)));
}

async function ociLayoutEntries(store: Store, img: StoredImage, ref?: string): Promise<ArchiveEntry[]> {
  const size = await store.blobs.size(img.manifestDigest);
  const entries: ArchiveEntry[] = [
    { name: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { name: 'index.json', data: Buffer.from(JSON.stringify(indexFor(img, size, ref))) },
  ];
  for (const d of new Set(blobDigests(img))) entries.push({ name: `blobs/sha256/${d.slice(7)}`, file: store.blobs.path(d), size: await store.blobs.size(d) });
  return entries;
}

/** docker-archive (what `docker save` writes and `docker load` reads): manifest.json + config + layer tars. */
async function dockerArchiveEntries(store: Store, img: StoredImage, ref?: string): Promise<ArchiveEntry[]> {
  const cfgName = `${img.configDigest.slice(7)}.json`;
  const layerNames = img.manifest.layers.map((l) => `${l.digest.slice(7)}/layer.tar`);
  const manifest = [{ Config: cfgName, RepoTags: ref ? [normalizeRef(ref)] : [], Layers: layerNames }];
  const entries: ArchiveEntry[] = [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
    { name: cfgName, file: store.blobs.path(img.configDigest), size: await store.blobs.size(img.configDigest) },
  ];
  for (const [i, l] of img.manifest.layers.entries()) {
    if (l.mediaType.includes('gzip')) throw new VlabError('E_UNSUPPORTED', 'docker-archive export of compressed layers is not supported yet');
    entries.push({ name: layerNames[i]!, file: store.blobs.path(l.digest), size: l.size });
  }
  return entries;
}
