/**
 * Hostile registry answers (through a fault proxy in front of docker-registry): each gives a
 * clear error with a code, and the store is left as it was: no blob, no name, no temp file.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pull, push } from '@vlab/image';
import { exec, freshStore, removeStore, repo } from './helpers.ts';
import { freePort, registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { startProxy, type FaultProxy } from './registry-proxy.ts';

const missing = registryMissing();
if (missing) console.warn(`registry hostile tests skipped: ${missing}`);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

/** Everything under a store root but the lease files (a running pull's own). */
async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!p.includes('/leases/')) out.push(`${path.relative(root, p)} ${(await fsp.stat(p)).size}`);
    }
  };
  await walk(root);
  return out.sort();
}

describe.skipIf(missing)('registry: hostile answers', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let source: string;
  let target: string;
  let before: string[];
  const fast = { retries: 2, timeoutMs: 5000 };

  beforeAll(async () => {
    [reg, source] = await Promise.all([startRegistry(), freshStore()]);
    proxy = await startProxy(reg.host);
    // in 256 KiB chunks (several PATCHes, one in flight while the next fills): the pulls below check every byte
    await push('busybox:latest', `${reg.host}/h/bb:1`, { root: source, chunkSize: 256 << 10 });
  });
  beforeEach(async () => {
    if (target) await fsp.rm(target, { recursive: true, force: true });
    target = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-reg-hostile-'));
    await pull(`${reg.host}/nothing-here:1`, { root: target }).catch(() => undefined); // creates the store layout
    before = await listing(target);
    proxy.fault = 'none';
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (source) await removeStore(source);
    if (target) await fsp.rm(target, { recursive: true, force: true });
  });

  const pullVia = () => pull(`${proxy.host}/h/bb:1`, { root: target, ...fast });

  it('a layer with a flipped byte is E_DIGEST_MISMATCH; nothing stored', async () => {
    proxy.fault = 'flip';
    await expect(pullVia()).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    expect(await listing(target)).toEqual(before);
  });

  it('a big layer is read into the gunzip worker by the raw reader; a redirect it leaves to the client', async () => {
    const man = (await (
      await fetch(`http://${reg.host}/v2/h/bb/manifests/1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: { digest: string; size: number }[] };
    const blob = `/v2/h/bb/blobs/${man.layers[0]!.digest}`;
    expect(man.layers[0]!.size).toBeGreaterThan(1 << 20); // the worker's path (blob-get.ts: OFF_THREAD_BYTES)
    const seen = proxy.requests.length;
    await pullVia();
    const gets = proxy.requests.map((r, i) => [r, proxy.connections[i]]).slice(seen);
    expect(gets.filter(([r]) => r === `GET ${blob}`)).toEqual([[`GET ${blob}`, 'close']]);

    await fsp.rm(target, { recursive: true, force: true });
    proxy.canned.set(blob, { status: 307, headers: { location: `http://${reg.host}${blob}` }, body: Buffer.alloc(0) });
    try {
      const r = await pullVia();
      expect(r.manifest.layers).toHaveLength(1);
    } finally {
      proxy.canned.delete(blob);
    }
  });

  it('a connection reset mid-blob is resumed with a Range request', async () => {
    proxy.fault = 'reset-once';
    const ranges = proxy.rangeRequests;
    const r = await pullVia();
    expect(proxy.rangeRequests).toBeGreaterThan(ranges);
    expect(r.manifest.layers).toHaveLength(1);
  });

  it.each([
    ['reset', 'reset', /broke/],
    ['truncated', 'truncate', /ended early/],
  ] as const)('a blob %s every time fails cleanly after the retries; nothing stored', async (_label, fault, msg) => {
    proxy.fault = fault;
    const err = await pullVia().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_REGISTRY', message: expect.stringMatching(msg) });
    expect(await listing(target)).toEqual(before);
  });

  it('a manifest over 4 MiB is E_BAD_MANIFEST; an unknown media type E_UNSUPPORTED', async () => {
    proxy.canned.set('/v2/big/manifests/latest', {
      status: 200,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: Buffer.alloc(5 << 20, 0x20),
    });
    proxy.canned.set('/v2/weird/manifests/latest', {
      status: 200,
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
      body: Buffer.from('{"schemaVersion":1,"name":"weird","tag":"latest","fsLayers":[]}'),
    });
    await expect(pull(`${proxy.host}/big`, { root: target })).rejects.toMatchObject({ code: 'E_BAD_MANIFEST' });
    await expect(pull(`${proxy.host}/weird`, { root: target })).rejects.toMatchObject({
      code: 'E_UNSUPPORTED',
      message: expect.stringContaining('manifest.v1+prettyjws'),
    });
    expect(await listing(target)).toEqual(before);
  });

  it('vbuild pull: an invalid reference is E_BAD_REF, a registry that is down E_REGISTRY_UNREACHABLE', async () => {
    const env = { ...process.env, VLAB_ROOT: target };
    const bad = await exec('node', [vbuild, 'pull', 'app/Case:tag'], { env }).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid reference.*lowercase \[E_BAD_REF\]/);
    const down = await exec('node', [vbuild, 'pull', `127.0.0.1:${await freePort()}/x`], { env }).catch((e) => e);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach registry .*\[E_REGISTRY_UNREACHABLE\]/);
    expect(await listing(target)).toEqual(before);
  });
});
