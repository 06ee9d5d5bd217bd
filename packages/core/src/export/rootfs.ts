/**
 * Exports of the flattened rootfs for container systems that take a plain tree (flatten.ts):
 * - `rootfs-tar` (Charliecloud's `ch-image import`, `docker import`, `--output type=tar`): one tar
 *   of the tree, written by @vlab/overlay's layer writer (sorted entries, numeric owners, xattrs,
 *   hard links as links, mtimes clamped to SOURCE_DATE_EPOCH: equal images give equal bytes);
 * - `rootfs-dir` (Charliecloud's directory images, `ch-run DIR`): the tree itself, owners and
 *   devices kept (unlike `type=local`, which makes the files the client's own);
 * - `openvz`: an OpenVZ template cache, the gzipped rootfs tar named `DIST-VERSION-ARCH.tar.gz`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { diffSource } from '@vlab/overlay';
import type { Store, StoredImage } from '../store/store.ts';
import { readInRoot } from '../fsutil/in-root.ts';
import { flattenInto, withFlattened, writeAtomicPath, type FlattenOptions } from './flatten.ts';

export interface RootfsOptions extends FlattenOptions {
  sourceDateEpoch?: number;
}

/** Tar of a flattened tree, optionally gzipped, written to `file`. */
async function tarTree(dir: string, file: string, gzip: boolean, epoch?: number): Promise<void> {
  const tar = diffSource({ kind: 'compare', dir }, { sourceDateEpoch: epoch });
  const out = fs.createWriteStream(file, { flags: 'wx', mode: 0o644 });
  // gzip's header carries no name or time from node:zlib, so the bytes stay reproducible.
  if (gzip) await pipeline(tar, createGzip({ level: 6 }), out);
  else await pipeline(tar, out);
}

export async function writeRootfsTar(
  store: Store,
  img: StoredImage,
  dest: string,
  opts: RootfsOptions & { gzip?: boolean } = {},
): Promise<void> {
  await withFlattened(
    store,
    img,
    (dir) => writeAtomicPath(dest, (tmp) => tarTree(dir, tmp, opts.gzip ?? false, opts.sourceDateEpoch)),
    opts,
  );
}

export async function writeRootfsDir(
  store: Store,
  img: StoredImage,
  dest: string,
  opts: FlattenOptions = {},
): Promise<void> {
  await writeAtomicPath(dest, (tmp) => flattenInto(store, img, tmp, opts));
}

/** OpenVZ's names for the architectures (vzctl templates: centos-7-x86_64, debian-11.0-x86_64). */
const OPENVZ_ARCH: Record<string, string> = { amd64: 'x86_64', '386': 'x86', arm64: 'aarch64', ppc64le: 'ppc64le' };

/** `ID` and `VERSION_ID` of the image's /etc/os-release (read in-root), made safe for a file name. */
async function osRelease(rootfs: string): Promise<{ dist: string; version: string }> {
  let text: string | undefined;
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    text = await readInRoot(rootfs, p, 64 << 10).catch(() => undefined);
    if (text !== undefined) break;
  }
  const field = (k: string) => {
    const m = new RegExp(`^${k}=(.*)$`, 'm').exec(text ?? '');
    return m?.[1]?.trim().replace(/^["']|["']$/g, '');
  };
  const clean = (s: string | undefined, dflt: string) =>
    (s ?? '').replace(/[^A-Za-z0-9._]+/g, '_').slice(0, 64) || dflt;
  return { dist: clean(field('ID'), 'linux'), version: clean(field('VERSION_ID'), '0') };
}

/**
 * The template cache file for `img`: `dest` itself when it ends in .tar.gz, else
 * `dest/DIST-VERSION-ARCH.tar.gz` (a template-cache directory). Returns the file written.
 */
export async function writeOpenvzTemplate(
  store: Store,
  img: StoredImage,
  dest: string,
  opts: RootfsOptions = {},
): Promise<string> {
  return withFlattened(
    store,
    img,
    async (dir) => {
      let file = dest;
      if (!dest.endsWith('.tar.gz')) {
        const { dist, version } = await osRelease(dir);
        const arch = OPENVZ_ARCH[img.config.architecture] ?? img.config.architecture;
        await fs.promises.mkdir(dest, { recursive: true });
        file = path.join(dest, `${dist}-${version}-${arch}.tar.gz`);
      }
      await writeAtomicPath(file, (tmp) => tarTree(dir, tmp, true, opts.sourceDateEpoch));
      return file;
    },
    opts,
  );
}
