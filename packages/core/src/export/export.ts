import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import type { Store, StoredImage } from '../store/store.ts';
import { IMAGE_NAME, MEDIA, REF_NAME } from '../image/types.ts';
import { writeArchive, type ArchiveEntry } from '../archive/tar.ts';
import { parseRef, qualifiedRef } from '../store/refs.ts';
import { compressImage, type LayerCompression } from './compress.ts';
import { exportLocal } from './local.ts';
import { dockerArchiveEntries } from './docker-archive.ts';
import { writeRootfsDir, writeRootfsTar, writeOpenvzTemplate } from './rootfs.ts';
import { writeSquashfs } from './squashfs.ts';
import { writeLxc } from './lxc.ts';

/**
 * `--output type=…,dest=…` (and `vbuild save --format`): `oci` = OCI layout dir (or an OCI
 * archive when dest ends in .tar), `docker` = docker-archive (`docker load`, uDocker),
 * `local` = the filesystem copied into a directory as the client's own files (BuildKit's local
 * exporter: local.ts). The flattened rootfs for other container systems (flatten.ts):
 * `tar`/`rootfs-tar` (Charliecloud, docker import), `rootfs-dir` (Charliecloud), `squashfs`
 * (Singularity, Shifter), `lxc` (rootfs + config), `openvz` (template cache DIST-VERSION-ARCH.tar.gz).
 */
export type OutputType = (typeof OUTPUT_TYPES)[number];
export interface OutputSpec {
  /** `registry`: pushed to `dest`, the image name (`type=registry,name=R`; export/registry.ts). */
  type: OutputType;
  dest: string;
  /** Layer compression of an image output (oci, docker); uncompressed when absent. */
  compression?: LayerCompression;
  /** gzip level 0-9 (`compression-level=`). */
  compressionLevel?: number;
}

export const OUTPUT_TYPES = [
  'registry',
  'oci',
  'docker',
  'tar',
  'local',
  'rootfs-tar',
  'rootfs-dir',
  'squashfs',
  'lxc',
  'openvz',
] as const;
const ROOTFS_TYPES: readonly string[] = ['tar', 'rootfs-tar', 'rootfs-dir', 'squashfs', 'lxc', 'openvz'];
/** The options each output type takes; anything else is refused, not ignored. */
const IMAGE_KEYS = ['type', 'dest', 'compression', 'compression-level'];
const KEYS: Record<string, string[]> = {
  oci: IMAGE_KEYS,
  docker: IMAGE_KEYS,
  local: ['type', 'dest'],
  registry: ['type', 'name', 'compression'],
  ...Object.fromEntries(ROOTFS_TYPES.map((t) => [t, ['type', 'dest']])),
};
const COMPRESSIONS = ['uncompressed', 'gzip', 'zstd'];

export function parseOutput(spec: string): OutputSpec {
  const kv: Record<string, string> = {};
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new VlabError('E_BAD_ARG', `--output ${spec}: "${part}" is not key=value`);
    kv[part.slice(0, eq)] = part.slice(eq + 1);
  }
  const type = kv.type;
  if (!type || !(OUTPUT_TYPES as readonly string[]).includes(type)) {
    throw new VlabError(
      'E_BAD_ARG',
      `--output type=${type ?? ''} is not supported (use one of: ${OUTPUT_TYPES.join(', ')})`,
    );
  }
  for (const k of Object.keys(kv)) {
    if (!KEYS[type]!.includes(k))
      throw new VlabError(
        'E_BAD_ARG',
        `--output type=${type}: unknown option "${k}" (type=${type} takes ${KEYS[type]!.join(', ')})`,
      );
  }
  if (type === 'registry') kv.dest = kv.name ?? '';
  if (!kv.dest)
    throw new VlabError('E_BAD_ARG', `--output ${spec}: ${type === 'registry' ? 'name' : 'dest'}=… is required`);
  const out: OutputSpec = { type: type as OutputSpec['type'], dest: kv.dest };
  const c = kv.compression;
  if (c !== undefined) {
    if (!COMPRESSIONS.includes(c))
      throw new VlabError(
        'E_BAD_ARG',
        `--output compression=${c} is not supported (use one of: ${COMPRESSIONS.join(', ')})`,
      );
    if (c === 'zstd' && type === 'docker') {
      // docker-archive layers are gzip or plain tars: Docker 20.10's `docker load` fails on zstd
      throw new VlabError(
        'E_UNSUPPORTED',
        `--output type=docker,compression=zstd: a docker-archive cannot carry zstd layers (docker load of Docker 20.10 and older fails on them); use compression=gzip, or type=oci for zstd`,
      );
    }
    if (c !== 'uncompressed') out.compression = c as LayerCompression;
  }
  const level = kv['compression-level'];
  if (level !== undefined) {
    if (!/^\d$/.test(level) || out.compression !== 'gzip')
      throw new VlabError('E_BAD_ARG', `--output compression-level=${level}: give 0-9, with compression=gzip`);
    out.compressionLevel = Number(level);
  }
  return out;
}

/** Mounts the image's filesystem read-only for a callback (tar/local outputs need a tree). */
export type WithRootfs = <T>(img: StoredImage, work: (rootfs: string) => Promise<T>) => Promise<T>;

export interface ExportOptions {
  /** Clamp of every time written (rootfs tars, squashfs); from SOURCE_DATE_EPOCH. */
  sourceDateEpoch?: number;
  signal?: AbortSignal;
}

/** Write `img` as `out` says; `ref` names it inside archives (RepoTags, LXC name). */
export async function exportImage(
  store: Store,
  img: StoredImage,
  out: OutputSpec,
  ref?: string,
  withRootfs?: WithRootfs,
  opts: ExportOptions = {},
): Promise<void> {
  if (out.type === 'local') {
    if (!withRootfs) throw new VlabError('E_UNSUPPORTED', `--output type=${out.type} needs the snapshotter`);
    await withRootfs(img, (rootfs) => exportLocal(rootfs, out.dest));
    return;
  }
  switch (out.type) {
    case 'tar':
    case 'rootfs-tar':
      return writeRootfsTar(store, img, out.dest, opts);
    case 'rootfs-dir':
      return writeRootfsDir(store, img, out.dest, opts);
    case 'squashfs':
      return writeSquashfs(store, img, out.dest, opts);
    case 'lxc':
      return writeLxc(store, img, out.dest, ref, opts);
    case 'openvz':
      await writeOpenvzTemplate(store, img, out.dest, opts);
      return;
  }
  if (out.compression) img = await compressImage(store, img, out.compression, out.compressionLevel);
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
        ...(ref ? { annotations: refAnnotations(ref) } : {}),
      },
    ],
  };
}

/**
 * Names of an image in an OCI layout as `docker save` writes them: the full name in
 * io.containerd.image.name (what podman and containerd name the image after) and the tag in
 * org.opencontainers.image.ref.name (how skopeo and umoci pick it: `oci:dir:tag`).
 */
function refAnnotations(ref: string): Record<string, string> {
  const { tag, digest } = parseRef(ref);
  return { [IMAGE_NAME]: qualifiedRef(ref), ...(digest && !tag ? {} : { [REF_NAME]: tag ?? 'latest' }) };
}

function blobDigests(img: StoredImage): string[] {
  return [img.manifestDigest, img.configDigest, ...img.manifest.layers.map((l) => l.digest)];
}

async function writeOciDir(store: Store, img: StoredImage, dest: string, ref?: string): Promise<void> {
  const blobs = path.join(dest, 'blobs', 'sha256');
  await fsp.mkdir(blobs, { recursive: true });
  for (const d of blobDigests(img)) {
    const target = path.join(blobs, d.slice(7));
    if (
      await fsp.access(target).then(
        () => true,
        () => false,
      )
    )
      continue;
    await fsp
      .link(store.blobs.path(d), target)
      .catch(() => pipeline(store.blobs.open(d), fs.createWriteStream(target)));
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
  for (const d of new Set(blobDigests(img)))
    entries.push({ name: `blobs/sha256/${d.slice(7)}`, file: store.blobs.path(d), size: await store.blobs.size(d) });
  return entries;
}
