/**
 * Distribution end to end against Debian's docker-registry on 127.0.0.1: vbuild pushes, skopeo
 * reads; skopeo pushes (a multi-platform index too), vbuild pulls; build → push → rmi → prune →
 * pull gives the same digests, umoci unpacks it and it runs; a second push only verifies.
 */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, parseOutput, pull, push, type BuildEvent, type LayerProgress } from '@vlab/image';
import { exec, freshStore, makeContext, removeStore, repo, umociUnpack } from './helpers.ts';
import { registryMissing, startRegistry, writeMultiPlatformLayout, type TestRegistry } from './registry-fixture.ts';

const missing = registryMissing();
if (missing) console.warn(`registry tests skipped: ${missing}`);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

describe.skipIf(missing)('registry: push and pull against docker-registry', () => {
  let reg: TestRegistry;
  let root: string;
  let tmp: string;
  const env = () => ({ ...process.env, VLAB_ROOT: root, DOCKER_CONFIG: path.join(tmp, 'docker') });
  const cli = (args: string[], extra: Record<string, string> = {}) =>
    exec('node', [vbuild, ...args], { env: { ...env(), ...extra } });

  beforeAll(async () => {
    [reg, root, tmp] = await Promise.all([
      startRegistry(),
      freshStore(),
      fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-reg-test-')),
    ]);
  });
  afterAll(async () => {
    await reg?.stop();
    if (root) await removeStore(root);
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('vbuild push: skopeo inspects and copies it; a second push only verifies (no upload)', async () => {
    const dest = `${reg.host}/vlab/busybox:1`;
    const first = await cli(['push', '--progress', 'json', 'busybox:latest', dest]);
    const digest = /digest: (sha256:[a-f0-9]{64})/.exec(first.stdout)?.[1];
    expect(digest).toBeDefined();
    const events = first.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: string; action: string });
    expect(events.some((e) => e.action === 'push' && e.status === 'done')).toBe(true);

    const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${dest}`]);
    const info = JSON.parse(stdout) as { Digest: string; Layers: string[] };
    expect(info.Digest).toBe(digest);
    const raw = JSON.parse(
      (await exec('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${dest}`])).stdout,
    );
    expect(raw.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
    ]);
    const layout = path.join(tmp, 'copied');
    await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${dest}`, `oci:${layout}:x`]);
    const rootfs = await umociUnpack(layout, 'x');
    await expect(fsp.readlink(path.join(rootfs, 'bin/sh'))).resolves.toBe('busybox');

    const t = Date.now();
    const again = await push('busybox:latest', dest, {
      root,
      tlsVerify: false,
      onProgress: (e) => events.push(e),
    });
    const ms = Date.now() - t;
    expect(again.digest).toBe(digest);
    expect(again.layers.map((l) => l.status)).toEqual(['exists']);
    expect(ms).toBeLessThan(3000); // a HEAD per blob and the manifest PUT (bounded loosely: CI machines are shared)
    // into another repository of the same registry: mounted, not uploaded
    const other = await push('busybox:latest', `${reg.host}/elsewhere/bb`, { root });
    expect(other.layers.map((l) => l.status)).toEqual(['mounted']);
    expect(other.digest).toBe(digest);
  });

  it('push --compression zstd: tar+zstd layers skopeo copies; vbuild pulls them back, and the ones skopeo writes', async () => {
    const dest = `${reg.host}/vlab/zstd:1`;
    const r = await push('busybox:latest', dest, { root, compression: 'zstd' });
    expect(r.layers.map((l) => l.status)).toEqual(['done']); // the gzip blob known from the first push is not zstd
    const raw = JSON.parse(
      (await exec('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${dest}`])).stdout,
    );
    expect(raw.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+zstd',
    ]);
    await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${dest}`, `oci:${path.join(tmp, 'zstd')}:z`]);
    const ours = await fsp.mkdtemp(path.join(tmp, 'zstd-pull-'));
    const pulled = await pull(dest, { root: ours });
    expect(pulled.remoteDigest).toBe(r.digest);
    const bb = JSON.parse((await cli(['inspect', 'busybox:latest'])).stdout);
    expect(pulled.configDigest).toBe(bb.Id); // the same image: layers decompressed to the same diff_ids

    // skopeo's own zstd (klauspost's encoder) of a layer it has never seen (skopeo 1.9 reuses a
    // gzip blob it knows for a layer instead of compressing again, whatever the format asked)
    const ctx = await makeContext({
      Dockerfile: 'FROM busybox\nCOPY r.bin /\n',
      'r.bin': randomBytes(50_000).toString('hex'),
    });
    const built = await build({ context: ctx, root, tags: ['zstd-src:1'] });
    await fsp.rm(ctx, { recursive: true, force: true });
    const theirs = `${reg.host}/vlab/zstd-skopeo:1`;
    await exec('skopeo', [
      'copy',
      '--dest-tls-verify=false',
      '--dest-compress-format',
      'zstd',
      `oci:${root}:zstd-src:1`,
      `docker://${theirs}`,
    ]);
    const sraw = JSON.parse(
      (await exec('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${theirs}`])).stdout,
    );
    expect(sraw.layers.at(-1).mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    const other = await fsp.mkdtemp(path.join(tmp, 'zstd-skopeo-'));
    const back = await pull(theirs, { root: other });
    expect(back.configDigest).toBe(built.imageId); // every layer back to its diff_id
    expect(back.manifest.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar',
      'application/vnd.oci.image.layer.v1.tar',
    ]);
  });

  it('round trip: build, push, rmi, prune, pull: same digests, umoci unpacks it, vbuild run runs it', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'hi\n' });
    const ref = `${reg.host}/vlab/app:rt`;
    const built = await build({ context: ctx, root, tags: [ref], sourceDateEpoch: 0 });
    const pushed = await push(ref, undefined, { root, chunkSize: 256 << 10 }); // several PATCHes per layer
    await cli(['rmi', ref]);
    await cli(['prune', '--all']);
    await expect(fsp.access(path.join(root, 'blobs/sha256', built.digest.slice(7)))).rejects.toThrow();
    const { stdout } = await cli(['pull', '--progress', 'plain', ref]);
    expect(stdout).toContain(`Digest: ${pushed.digest}`);
    const again = await pull(ref, { root });
    expect(again.remoteDigest).toBe(pushed.digest);
    expect(again.manifestDigest).toBe(built.digest);
    expect(again.configDigest).toBe(built.imageId);
    expect(again.bytesFetched).toBe(0); // all in the store already
    const rootfs = await umociUnpack(root, ref);
    await expect(fsp.readFile(path.join(rootfs, 'hello.txt'), 'utf8')).resolves.toBe('hi\n');
    // and it runs: a container of the pulled image prints the file
    expect((await cli(['run', '--rm', '--network', 'none', ref, 'cat', '/hello.txt'])).stdout).toBe('hi\n');
    await fsp.rm(ctx, { recursive: true, force: true });
  });

  it('pulls what skopeo pushed, a multi-platform index: the host platform, or --platform', async () => {
    const layout = path.join(tmp, 'multi');
    const configs = await writeMultiPlatformLayout(layout, 'm1');
    await exec('skopeo', [
      'copy',
      '--all',
      '--dest-tls-verify=false',
      `oci:${layout}:m1`,
      `docker://${reg.host}/multi:1`,
    ]);
    const host = await pull(`${reg.host}/multi:1`, { root });
    expect(host.config.architecture).toBe(process.arch === 'arm64' ? 'arm64' : 'amd64');
    const { stdout } = await cli(['pull', '-q', '--platform', 'linux/arm64', `${reg.host}/multi:1`]);
    expect(stdout.trim()).toBe(`${reg.host}/multi:1`);
    const arm = (await exec('node', [vbuild, 'inspect', `${reg.host}/multi:1`], { env: env() })).stdout;
    expect(JSON.parse(arm).Id).toBe(configs.arm64);
    const err = await cli(['pull', '--platform', 'linux/s390x', `${reg.host}/multi:1`]).catch((e) => e);
    expect(err.stderr).toMatch(/no image for platform linux\/s390x.*\[E_IMAGE_NOT_FOUND\]/s);
  });

  it('build: FROM and COPY --from pull what the store lacks; --pull checks again; --push and --output type=registry', async () => {
    const empty = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-reg-empty-'));
    const base = `${reg.host}/vlab/base:moving`;
    await push('busybox:latest', base, { root });
    const ctx = await makeContext({
      Dockerfile: `FROM ${base}\nCOPY --from=${reg.host}/multi:1 /platform /p\nCOPY hello.txt /\n`,
      'hello.txt': 'hi\n',
    });
    try {
      const events: LayerProgress[] = [];
      const onEvent = (e: BuildEvent) => e.type === 'layer-progress' && events.push(e);
      const first = await build({ context: ctx, root: empty, onEvent, sourceDateEpoch: 0 });
      const pulled = events.filter((e) => e.action === 'pull' && e.status === 'done').map((e) => e.ref);
      expect(pulled.sort()).toEqual([`${base}`, `${reg.host}/multi:1`].sort());
      // the tag moves in the registry: a plain build keeps the stored base, --pull takes the new one
      await exec('skopeo', [
        'copy',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${reg.host}/multi:1`,
        `docker://${base}`,
      ]);
      const again = await build({ context: ctx, root: empty, sourceDateEpoch: 0 });
      expect(again.digest).toBe(first.digest);
      const fresh = await build({ context: ctx, root: empty, pull: true, sourceDateEpoch: 0 });
      expect(fresh.digest).not.toBe(first.digest);

      const out = `${reg.host}/vlab/built:1`;
      const r = await exec('node', [vbuild, 'build', '--push', '-t', out, '--progress', 'plain', ctx], {
        env: { ...env(), VLAB_ROOT: empty, SOURCE_DATE_EPOCH: '0' },
      });
      expect(r.stderr).toMatch(/push [0-9a-f]{12} {2}(Pushed|Layer already exists|Mounted from another repository)/);
      const inspected = JSON.parse((await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${out}`])).stdout);
      expect(inspected.Layers).toHaveLength(3);
      await build({
        context: ctx,
        root: empty,
        sourceDateEpoch: 0,
        output: [parseOutput(`type=registry,name=${reg.host}/vlab/built:2`)],
      });
      const two = JSON.parse(
        (await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/vlab/built:2`])).stdout,
      );
      expect(two.Digest).toBe(inspected.Digest);
    } finally {
      await removeStore(empty);
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });
});
