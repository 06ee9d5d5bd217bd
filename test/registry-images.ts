/**
 * Images written straight into a test docker-registry (their blobs can be anything: not gzip, a
 * bomb, a wrong diff_id), and which gunzip engines a pull test runs on.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { repo } from './helpers.ts';
import type { TestRegistry } from './registry-fixture.ts';

export const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

const isal = existsSync(path.join(repo, 'packages/overlay/native/bin/vlab-isal.node'));
if (!isal) console.warn('ISA-L gunzip not tested: vlab-isal.node is not built (Debian libisal-dev)');

/** 'isal' (the default when built) and 'zlib' (VLAB_GUNZIP=zlib). */
export const gunzipEngines = (): string[] => [...(isal ? ['isal'] : []), 'zlib'];

/** The engine the next pull in this process uses (the env is read per pull). */
export function useEngine(engine: string): void {
  if (engine === 'zlib') process.env.VLAB_GUNZIP = 'zlib';
  else delete process.env.VLAB_GUNZIP;
}

/** Files under the store's blobs directory (named blobs and temp files alike). */
export const blobFiles = async (root: string) =>
  (await fsp.readdir(path.join(root, 'blobs', 'sha256')).catch(() => [])).sort();

export async function putBlob(reg: TestRegistry, name: string, body: Buffer): Promise<string> {
  const digest = sha(body);
  const start = await fetch(`http://${reg.host}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(start.headers.get('location')!, `http://${reg.host}`);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, {
    method: 'PUT',
    body: new Uint8Array(body),
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
  return digest;
}

/** An image of one layer: `blob` as its compressed bytes, `diffId` in the config. */
export async function putImage(reg: TestRegistry, tag: string, blob: Buffer, diffId: string): Promise<void> {
  await putLayers(reg, tag, [{ blob, diffId }]);
}

/** An image of these layers (compressed bytes and the diff_id the config gives each). */
export async function putLayers(reg: TestRegistry, tag: string, layers: { blob: Buffer; diffId: string }[]) {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      config: {},
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await putBlob(reg, 'l', config),
      size: config.length,
    },
    layers: await Promise.all(
      layers.map(async (l) => ({ mediaType: GZIP, digest: await putBlob(reg, 'l', l.blob), size: l.blob.length })),
    ),
  };
  const res = await fetch(`http://${reg.host}/v2/l/manifests/${tag}`, {
    method: 'PUT',
    body: JSON.stringify(manifest),
    headers: { 'content-type': manifest.mediaType },
  });
  if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${await res.text()}`);
}
