/**
 * Fixtures for test/hostile.test.ts: tampered copies of real archives (from `vbuild save`), made
 * with GNU tar from a directory so that symlinks and odd names are stored as they are.
 */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { exec } from './helpers.ts';

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Unpack `archive` into a fresh dir under `scratch`, let `edit` change it, tar it again. */
export async function tamper(
  scratch: string,
  archive: string,
  name: string,
  edit: (dir: string) => Promise<void>,
): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(scratch, `${name}-`));
  await exec('tar', ['-xf', archive, '-C', dir]);
  await edit(dir);
  const out = `${dir}.tar`;
  await exec('tar', ['--sort=name', '-cf', out, '-C', dir, '.']);
  return out;
}

export const readJson = async <T>(file: string) => JSON.parse(await fsp.readFile(file, 'utf8')) as T;
export const writeJson = (file: string, v: unknown) => fsp.writeFile(file, JSON.stringify(v));

export type DockerManifest = { Config: string; Layers: string[]; RepoTags?: string[] }[];

/** Edit a docker-archive's manifest.json. */
export function dockerManifest(edit: (m: DockerManifest, dir: string) => unknown | Promise<unknown>) {
  return async (dir: string) => {
    const m = await readJson<DockerManifest>(path.join(dir, 'manifest.json'));
    const r = await edit(m, dir);
    await writeJson(path.join(dir, 'manifest.json'), r ?? m);
  };
}

type Desc = { mediaType: string; digest: string; size: number };
export type OciManifest = { schemaVersion: number; mediaType?: string; config: Desc; layers: Desc[] };

/** Edit an OCI archive's image manifest: the edited manifest is stored under its new digest and index.json points at it. */
export function ociManifest(edit: (m: OciManifest, dir: string) => unknown | Promise<unknown>) {
  return async (dir: string) => {
    const index = await readJson<{ manifests: Desc[] }>(path.join(dir, 'index.json'));
    const old = path.join(dir, 'blobs/sha256', index.manifests[0]!.digest.slice(7));
    const m = await readJson<OciManifest>(old);
    const bytes = Buffer.from(JSON.stringify((await edit(m, dir)) ?? m));
    await fsp.rm(old);
    await fsp.writeFile(path.join(dir, 'blobs/sha256', sha256(bytes)), bytes);
    index.manifests[0] = { ...index.manifests[0]!, digest: `sha256:${sha256(bytes)}`, size: bytes.length };
    await writeJson(path.join(dir, 'index.json'), index);
  };
}

/** A recursive listing of a dir with each file's content hash: what a marker dir must keep. */
export async function snapshotDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath, e.name);
    const st = await fsp.lstat(p);
    out.push(
      `${path.relative(dir, p)} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isFile() ? sha256(await fsp.readFile(p)) : ''}`,
    );
  }
  return out.sort();
}

/** Change the ustar header of member `name` (ending with it) in a tar, fixing its checksum. */
export function patchHeader(tar: Buffer, name: string, edit: (header: Buffer) => void): Buffer {
  const out = Buffer.from(tar);
  for (let off = 0; off + 512 <= out.length; off += 512) {
    if (out.toString('latin1', off + 257, off + 262) !== 'ustar') continue;
    if (
      !out
        .toString('latin1', off, off + 100)
        .replace(/\0.*$/s, '')
        .endsWith(name)
    )
      continue;
    const h = out.subarray(off, off + 512);
    edit(h);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    return out;
  }
  throw new Error(`no member ${name}`);
}

/** A docker-archive of one image whose only layer is `layer` (the config's diff_id matches it). */
export async function dockerArchiveOf(scratch: string, name: string, layer: Buffer): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(scratch, `${name}-`));
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] },
    history: [],
  };
  await writeJson(path.join(dir, 'config.json'), config);
  await fsp.writeFile(path.join(dir, 'layer.tar'), layer);
  await writeJson(path.join(dir, 'manifest.json'), [{ Config: 'config.json', RepoTags: null, Layers: ['layer.tar'] }]);
  await exec('tar', ['-cf', `${dir}.tar`, '-C', dir, 'manifest.json', 'config.json', 'layer.tar']);
  return `${dir}.tar`;
}
