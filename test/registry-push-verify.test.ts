/**
 * A second push only verifies: against Debian's docker-registry behind a counting proxy. When the
 * tag already names the manifest this push would PUT, that is one HEAD (the registry checked the
 * blobs when it took the manifest); `forceRecursive` (`--force-recursive`) HEADs every layer, the
 * config and the tag, and uploads what a repository lost. A moved tag, a deleted manifest and a
 * manifest held under another tag still end with the right image (skopeo inspect, skopeo copy).
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { push } from '@vlab/image';
import { exec, freshStore, removeStore, repo } from './helpers.ts';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { startProxy, type FaultProxy } from './registry-proxy.ts';

const missing = registryMissing();
if (missing) console.warn(`registry push-verify tests skipped: ${missing}`);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

describe.skipIf(missing)('registry: a push that only verifies', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let root: string;
  let tmp: string;
  const opts = () => ({ root, tlsVerify: false });
  /** The requests a step sent through the proxy, as `METHOD /path`. */
  const counted = async <T>(fn: () => Promise<T>): Promise<[T, string[]]> => {
    proxy.requests.length = 0;
    const r = await fn();
    return [r, [...proxy.requests]];
  };
  const inspect = async (ref: string) =>
    JSON.parse((await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).stdout) as {
      Digest: string;
    };

  beforeAll(async () => {
    [reg, root, tmp] = await Promise.all([
      startRegistry(),
      freshStore(),
      fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-push-verify-')),
    ]);
    proxy = await startProxy(reg.host);
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (root) await removeStore(root);
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('an unchanged image is one HEAD; forceRecursive HEADs each blob; a new tag is PUT', async () => {
    const dest = `${proxy.host}/v/bb:1`;
    const first = await push('busybox:latest', dest, opts());
    expect(first.layers.map((l) => l.status)).toEqual(['done']);

    // an older compressed form of the layer, remembered first (as after a change of gzip engine)
    const dir = path.join(root, 'distribution', 'by-diffid');
    const [file] = await fsp.readdir(dir);
    const list = JSON.parse(await fsp.readFile(path.join(dir, file!), 'utf8')) as { mediaType: string }[];
    const older = { digest: `sha256:${'0'.repeat(64)}`, mediaType: list[0]!.mediaType, size: 1, repos: [] };
    await fsp.writeFile(path.join(dir, file!), JSON.stringify([older, ...list]));

    const [again, sent] = await counted(() => push('busybox:latest', dest, opts()));
    expect(again.digest).toBe(first.digest);
    expect(again.layers).toEqual(first.layers.map((l) => ({ ...l, status: 'exists' })));
    expect(sent).toEqual(['HEAD /v2/v/bb/manifests/1']);

    const [forced, all] = await counted(() => push('busybox:latest', dest, { ...opts(), forceRecursive: true }));
    expect(forced.layers.map((l) => l.status)).toEqual(['exists']);
    expect(all.map((r) => r.split(' ')[0])).toEqual(['HEAD', 'HEAD', 'HEAD']);
    expect(all.filter((r) => r.includes('/manifests/1'))).toHaveLength(1);

    // the manifest is in the repository, under another tag: found by digest, the new tag is PUT
    const [tagged, put] = await counted(() => push('busybox:latest', `${proxy.host}/v/bb:2`, opts()));
    expect(tagged.digest).toBe(first.digest);
    expect(put).toEqual([
      'HEAD /v2/v/bb/manifests/2',
      `HEAD /v2/v/bb/manifests/${first.digest}`,
      'PUT /v2/v/bb/manifests/2',
    ]);
    expect((await inspect(`${reg.host}/v/bb:2`)).Digest).toBe(first.digest);
  });

  it('a moved tag, a deleted manifest: the push still ends with this image', async () => {
    const dest = `${proxy.host}/m/bb:1`;
    const first = await push('busybox:latest', dest, opts());
    // the tag moves to another manifest (zstd layers); the gzip one stays in the repo, untagged
    const moved = await push('busybox:latest', dest, { ...opts(), compression: 'zstd' });
    expect(moved.digest).not.toBe(first.digest);
    const [back, sent] = await counted(() => push('busybox:latest', dest, opts()));
    expect(back.digest).toBe(first.digest);
    expect(back.layers.map((l) => l.status)).toEqual(['exists']);
    expect(sent.filter((r) => r.startsWith('PUT '))).toEqual(['PUT /v2/m/bb/manifests/1']);
    expect((await inspect(`${reg.host}/m/bb:1`)).Digest).toBe(first.digest);

    // the manifest deleted (its tag goes with it): HEADs of the blobs, then the PUT
    const del = await fetch(`http://${reg.host}/v2/m/bb/manifests/${first.digest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const [again, full] = await counted(() => push('busybox:latest', dest, opts()));
    expect(again.layers.map((l) => l.status)).toEqual(['exists']);
    expect(full.filter((r) => r.startsWith('HEAD /v2/m/bb/blobs/'))).toHaveLength(2);
    expect(full.at(-1)).toBe('PUT /v2/m/bb/manifests/1');
    expect((await inspect(`${reg.host}/m/bb:1`)).Digest).toBe(first.digest);
  });

  it('a blob deleted under its manifest: trusted by default, uploaded again with --force-recursive', async () => {
    const dest = `${proxy.host}/d/bb:1`;
    const first = await push('busybox:latest', dest, opts());
    const layer = first.layers[0]!.digest;
    const del = await fetch(`http://${reg.host}/v2/d/bb/blobs/${layer}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    // what the shortcut trusts: the registry holds the manifest, so the push sends one HEAD
    const [trusted, sent] = await counted(() => push('busybox:latest', dest, opts()));
    expect(trusted.layers.map((l) => l.status)).toEqual(['exists']);
    expect(sent).toHaveLength(1);

    const env = { ...process.env, VLAB_ROOT: root, DOCKER_CONFIG: path.join(tmp, 'docker') };
    const args = ['push', '--tls-verify=false', '--progress', 'plain', 'busybox:latest', dest];
    const r = await exec('node', [vbuild, ...args, '--force-recursive'], { env });
    expect(r.stderr).toMatch(/push [0-9a-f]{12} {2}(Pushed|Mounted from another repository)/); // v/bb has it
    expect(r.stdout).toContain(`digest: ${first.digest}`);
    const layout = path.join(tmp, 'copied');
    await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/d/bb:1`, `oci:${layout}:x`]);

    // and the CLI's verify-only push: one request, docker's line per layer
    const [plain, one] = await counted(() => exec('node', [vbuild, ...args], { env }));
    expect(plain.stderr).toMatch(/push [0-9a-f]{12} {2}Layer already exists/);
    expect(one).toEqual(['HEAD /v2/d/bb/manifests/1']);
  });
});
