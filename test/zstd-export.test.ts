/**
 * `--output type=oci,…,compression=zstd` (issue 11 item 10) through the CLI, read back by peers:
 * Debian's zstd CLI decompresses every layer to the tar whose digest is the config's diff_id,
 * skopeo decompresses them (checking every digest) into gzip layers that umoci unpacks. A
 * docker-archive refuses zstd (Docker 20.10 cannot load it).
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, freshStore, makeContext, removeStore, repo } from './helpers.ts';

const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
const hasZstd = (() => {
  try {
    execFileSync('zstd', ['--version']);
    return true;
  } catch {
    console.warn('zstd-export: the zstd CLI (Debian zstd, scripts/setup.sh) is not installed: skipped');
    return false;
  }
})();
let root: string;
let scratch: string;

beforeAll(async () => {
  root = await freshStore();
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-zstd-'));
});
afterAll(async () => {
  await removeStore(root);
  await fsp.rm(scratch, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [vbuild, ...args], {
      env: { ...process.env, VLAB_ROOT: root },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

type Manifest = { layers: { mediaType: string; digest: string; size: number }[]; config: { digest: string } };

describe.skipIf(!hasZstd)('--output compression=zstd', () => {
  it('writes OCI zstd layers that zstd -d turns back into the diff_ids, skopeo recompresses and umoci unpacks; the same bytes twice', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo zstd > /z\n' });
    try {
      const outs = [path.join(scratch, 'a'), path.join(scratch, 'b')];
      for (const dest of outs) {
        const r = await cli(['build', '-q', '-t', 'zs:1', '-o', `type=oci,dest=${dest},compression=zstd`, ctx]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
      const layout = outs[0]!;
      const blob = (d: string) => path.join(layout, 'blobs/sha256', d.replace('sha256:', ''));
      const index = JSON.parse(await fsp.readFile(path.join(layout, 'index.json'), 'utf8')) as {
        manifests: { digest: string }[];
      };
      const m = JSON.parse(await fsp.readFile(blob(index.manifests[0]!.digest), 'utf8')) as Manifest;
      const cfg = JSON.parse(await fsp.readFile(blob(m.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
      expect(m.layers.map((l) => l.mediaType)).toEqual(
        m.layers.map(() => 'application/vnd.oci.image.layer.v1.tar+zstd'),
      );
      const diffIds: string[] = [];
      for (const l of m.layers) {
        const tar = execFileSync('zstd', ['-d', '-c', blob(l.digest)], { maxBuffer: 1 << 28 });
        diffIds.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
      }
      expect(diffIds).toEqual(cfg.rootfs.diff_ids);
      // deterministic: the second export wrote the same manifest
      const again = JSON.parse(await fsp.readFile(path.join(outs[1]!, 'index.json'), 'utf8')) as typeof index;
      expect(again.manifests[0]!.digest).toBe(index.manifests[0]!.digest);
      // skopeo decompresses the zstd layers itself (checking every digest) and writes them as gzip,
      // which umoci (Debian's reads no zstd) unpacks
      const gz = path.join(scratch, 'gz');
      await exec('skopeo', ['copy', '--dest-compress-format', 'gzip', `oci:${layout}:1`, `oci:${gz}:1`]);
      const copied = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${gz}:1`])).stdout) as Manifest;
      expect(copied.layers.map((l) => l.mediaType)).toEqual(
        m.layers.map(() => 'application/vnd.oci.image.layer.v1.tar+gzip'),
      );
      const bundle = path.join(scratch, 'bundle');
      await exec('umoci', ['unpack', '--image', `${gz}:1`, bundle]);
      expect(await fsp.readFile(path.join(bundle, 'rootfs/z'), 'utf8')).toBe('zstd\n');
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  it('a docker-archive refuses zstd with a clear error', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\n' });
    try {
      const r = await cli(['build', '-q', '-o', `type=docker,dest=${scratch}/d.tar,compression=zstd`, ctx]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/docker-archive cannot carry zstd layers.*compression=gzip/);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });
});
