/**
 * The registry build cache across machines: four stores stand for four machines, one Debian
 * docker-registry on 127.0.0.1 is their shared cache (--cache-to / --cache-from), and a counting
 * and fault-injecting proxy in front of it shows what each machine fetched.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCacheFrom, parseCacheTo, Store, type BuildEvent } from '@vlab/image';
import {
  buildWithEvents,
  exec,
  freshStore,
  fsckProblems,
  makeContext,
  missedSteps,
  removeStore,
  repo,
  umociUnpack,
} from './helpers.ts';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { startProxy, type FaultProxy } from './registry-proxy.ts';

const missing = registryMissing();
if (missing) console.warn(`registry cache tests skipped: ${missing}`);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

// tools is an intermediate stage: with mode=max its RUN layer is in the cache, but the final
// image does not hold it (COPY --from takes one small file), so a second machine never needs it.
const DOCKERFILE = `FROM busybox AS tools
RUN head -c 20000 /dev/urandom > /tool.bin && echo tool > /tool.txt
FROM busybox
COPY --from=tools /tool.txt /tool.txt
COPY app.txt /app.txt
RUN cat /app.txt /tool.txt > /both.txt && head -c 12000 /dev/urandom > /rand.bin
`;

interface CacheDoc {
  manifest: { config: { mediaType: string }; layers: { digest: string; size: number }[]; artifactType?: string };
  config: { layers: { diffId: string }[]; entries: { key: string; layers: number[] }[] };
}

async function readCacheDoc(host: string, repoPath: string, tag: string): Promise<CacheDoc> {
  const res = await fetch(`http://${host}/v2/${repoPath}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
  const manifest = (await res.json()) as CacheDoc['manifest'] & { config: { digest: string } };
  const config = await (await fetch(`http://${host}/v2/${repoPath}/blobs/${manifest.config.digest}`)).json();
  return { manifest, config: config as CacheDoc['config'] };
}

const ofType = <T extends BuildEvent['type']>(events: BuildEvent[], type: T) =>
  events.filter((e): e is Extract<BuildEvent, { type: T }> => e.type === type);

describe.skipIf(missing)('registry build cache: two machines, one registry', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let a: string, b: string, c: string, d: string;
  /** The same context on each machine: another path, other mtimes and inodes. */
  let ctx: string;
  let ctxB: string;
  let cacheRef: string;
  let viaProxy: string;
  let tmp: string;
  /** The final image's diff_ids after the change (v2), as the first machine built it. */
  let finalV2: string[] = [];
  const cli = (root: string, args: string[]) =>
    exec('node', [vbuild, ...args], {
      env: { ...process.env, VLAB_ROOT: root, DOCKER_CONFIG: path.join(tmp, 'docker') },
    });

  beforeAll(async () => {
    [reg, a, b, c, d, ctx, ctxB, tmp] = await Promise.all([
      startRegistry(),
      freshStore(),
      freshStore(),
      freshStore(),
      freshStore(),
      makeContext({ Dockerfile: DOCKERFILE, 'app.txt': 'app v1\n' }),
      makeContext({ Dockerfile: DOCKERFILE, 'app.txt': 'app v1\n' }),
      fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-regcache-')),
    ]);
    proxy = await startProxy(reg.host);
    cacheRef = `${reg.host}/cache/app:main`;
    viaProxy = `${proxy.host}/cache/app:main`;
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    for (const r of [a, b, c, d]) if (r) await removeStore(r);
    for (const t of [ctx, ctxB, tmp]) if (t) await fsp.rm(t, { recursive: true, force: true });
  });

  it('a second, empty store takes every step from the cache and pulls only the final image’s layers', async () => {
    const first = await buildWithEvents({
      context: ctx,
      root: a,
      sourceDateEpoch: 0,
      cacheTo: [parseCacheTo(`type=registry,ref=${cacheRef},mode=max`)],
    });
    expect(ofType(first.events, 'cache-export')).toMatchObject([{ ref: cacheRef, mode: 'max', entries: 4 }]);
    const { manifest, config } = await readCacheDoc(reg.host, 'cache/app', 'main');
    expect(manifest.config.mediaType).toBe('application/vnd.vlab.build.cache.config.v1+json');
    expect(manifest.artifactType).toBe('application/vnd.vlab.build.cache.v1');
    expect(config.entries).toHaveLength(4);

    proxy.requests.length = 0;
    await fsp.utimes(path.join(ctxB, 'app.txt'), new Date(), new Date(Date.now() + 60_000));
    const second = await buildWithEvents({
      context: ctxB,
      root: b,
      sourceDateEpoch: 0,
      cacheFrom: [parseCacheFrom(`type=registry,ref=${viaProxy}`)],
    });
    expect(missedSteps(second.events)).toEqual([]);
    expect(ofType(second.events, 'step-cached').map((e) => e.from)).toEqual(Array(4).fill(viaProxy));
    // the same image, byte for byte
    expect(second.result.digest).toBe(first.result.digest);

    // what it pulled: the three layers of the final image that are not the base, by their sizes in the registry
    const finalIds = second.result.config.rootfs.diff_ids;
    const base = (await Store.at(b).resolve('busybox:latest'))!.config.rootfs.diff_ids;
    const blobOf = (diffId: string) => manifest.layers[config.layers.findIndex((l) => l.diffId === diffId)]!;
    const needed = finalIds.filter((id) => !base.includes(id));
    expect(needed).toHaveLength(3);
    const bytes = needed.reduce((n, id) => n + blobOf(id).size, 0);
    expect(ofType(second.events, 'cache-import').at(-1)).toMatchObject({
      ref: viaProxy,
      hits: 4,
      layersPulled: 3,
      bytesPulled: bytes,
    });
    // lazily: the tools stage's layer was neither fetched nor stored
    const intermediate = config.layers.map((l) => l.diffId).filter((id) => !finalIds.includes(id));
    expect(intermediate).toHaveLength(1);
    const skipped = blobOf(intermediate[0]!).digest;
    expect(proxy.requests.filter((r) => r.includes(skipped))).toEqual([]);
    const blobGets = proxy.requests.filter((r) => r.startsWith('GET') && r.includes('/blobs/sha256:'));
    expect(blobGets).toHaveLength(3 + 1); // the three layers and the cache config
    expect(await Store.at(b).blobs.has(intermediate[0]!)).toBe(false);
  });

  it('a changed step rebuilds from there on, and --cache-to adds its entries to what the ref held', async () => {
    for (const dir of [ctx, ctxB]) await fsp.writeFile(path.join(dir, 'app.txt'), 'app v2\n');
    const run = await cli(b, [
      'build',
      '--progress=plain',
      '--cache-from',
      `type=registry,ref=${cacheRef}`,
      '--cache-to',
      `type=registry,ref=${cacheRef},mode=max`,
      '--cache-from',
      `${reg.host}/cache/none:x`, // buildx's short form; not there: a warning, as BuildKit's
      ctxB,
    ]);
    const out = run.stderr;
    // the tools RUN from the registry (its layer was never pulled here), COPY --from locally
    expect(out.match(/CACHED \(registry cache /g)).toHaveLength(1);
    expect(out.match(/CACHED$/gm)).toHaveLength(1);
    expect(out).toMatch(/cache miss: file changed: app\.txt/);
    expect(out).toMatch(/WARN: importing cache \S+\/cache\/none:x failed: not found: building without it/);
    expect(out).toMatch(/cache miss: previous step changed/);
    expect(out).toMatch(/importing cache \S+: 1 of 4 entries used, 0 layers pulled \(0 bytes\)/);
    expect(out).toMatch(/exporting cache \S+ \(mode=max\): 6 entries, \d+ layers, \d+ pushed/);

    // the first machine, with the changed context: its own steps locally, the new ones from the registry
    const again = await buildWithEvents({
      context: ctx,
      root: a,
      cacheFrom: [parseCacheFrom(`type=registry,ref=${cacheRef}`)],
    });
    expect(missedSteps(again.events)).toEqual([]);
    expect(ofType(again.events, 'step-cached').map((e) => e.from ?? 'local')).toEqual([
      'local',
      'local',
      cacheRef,
      cacheRef,
    ]);
    expect((await readCacheDoc(reg.host, 'cache/app', 'main')).config.entries).toHaveLength(6);
    finalV2 = again.result.config.rootfs.diff_ids;
  });

  it('an intermediate stage’s layer is pulled when a step that misses reads it, and only then', async () => {
    const { manifest, config } = await readCacheDoc(reg.host, 'cache/app', 'main');
    const stored = await Promise.all(config.layers.map((l) => Store.at(b).blobs.has(l.diffId)));
    expect(stored.filter((s) => !s)).toHaveLength(1); // the tools stage's RUN: never needed so far
    const tools = manifest.layers[stored.indexOf(false)]!;
    proxy.requests.length = 0;
    const built = await buildWithEvents({
      context: ctxB,
      root: b,
      tags: ['app:bin'],
      // COPY --from=tools /tool.bin /tool.txt: a new step that reads the tools stage's tree
      dockerfile: { text: DOCKERFILE.replace('COPY --from=tools /tool.txt', 'COPY --from=tools /tool.bin') },
      cacheFrom: [parseCacheFrom(`type=registry,ref=${viaProxy}`)],
    });
    expect(ofType(built.events, 'step-cached')[0]).toMatchObject({
      name: expect.stringMatching(/RUN head/),
      from: viaProxy,
    });
    expect(missedSteps(built.events)[0]?.name).toMatch(/COPY --from=tools \/tool\.bin/);
    expect(proxy.requests.filter((r) => r.includes(tools.digest))).toEqual([`GET /v2/cache/app/blobs/${tools.digest}`]);
    expect(ofType(built.events, 'cache-import').at(-1)).toMatchObject({ layersPulled: 1, bytesPulled: tools.size });
    const rootfs = await umociUnpack(b, 'app:bin');
    expect((await fsp.stat(path.join(rootfs, 'tool.txt'))).size).toBe(20000);
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
  });

  it('a cache manifest that maps a key to the wrong blob gives a correct image and a warning', async () => {
    // the final RUN's layer (v2) now names the tools stage's blob: its bytes are not that diff_id
    const { manifest, config } = await readCacheDoc(reg.host, 'cache/app', 'main');
    const index = (diffId: string) => config.layers.findIndex((l) => l.diffId === diffId);
    const target = index(finalV2.at(-1)!);
    const tools = config.layers.findIndex(
      (l) =>
        !finalV2.includes(l.diffId) &&
        config.entries.some((e) => e.layers.length === 2 && e.layers[1] === index(l.diffId)),
    );
    expect([target, tools].every((i) => i >= 0)).toBe(true);
    const poisoned = structuredClone(manifest);
    poisoned.layers[target] = manifest.layers[tools]!; // a real blob of the repository, digest and size
    const res = await fetch(`http://${reg.host}/v2/cache/app/manifests/poisoned`, {
      method: 'PUT',
      headers: { 'content-type': OCI_MANIFEST },
      body: JSON.stringify(poisoned),
    });
    expect(res.status).toBe(201);

    const built = await buildWithEvents({
      context: ctx,
      root: c,
      tags: ['app:poisoned'],
      cacheFrom: [parseCacheFrom(`type=registry,ref=${reg.host}/cache/app:poisoned`)],
    });
    const warnings = ofType(built.events, 'warning').map((w) => w.message);
    expect(warnings.some((w) => /registry cache \S+:poisoned failed .*built instead/.test(w))).toBe(true);
    expect(missedSteps(built.events).at(-1)?.reason).toMatch(/^registry cache \S+:poisoned: layer sha256:\w+ failed/);
    const rootfs = await umociUnpack(c, 'app:poisoned');
    expect(await fsp.readFile(path.join(rootfs, 'both.txt'), 'utf8')).toBe('app v2\ntool\n');
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
    expect(await fsckProblems(c)).toEqual([]);
  });

  it('a flipped byte in a cache layer gives a correct image and a warning', async () => {
    proxy.fault = 'flip'; // layer blobs over 4 kB: the final RUN's (12 kB of random bytes)
    try {
      const built = await buildWithEvents({
        context: ctx,
        root: d,
        tags: ['app:flipped'],
        cacheFrom: [parseCacheFrom(`type=registry,ref=${viaProxy}`)],
      });
      expect(ofType(built.events, 'warning').map((w) => w.message)).toContainEqual(
        expect.stringMatching(/layer sha256:\w+ of registry cache \S+ failed \(.*sha256.*refused/),
      );
      const rootfs = await umociUnpack(d, 'app:flipped');
      expect(await fsp.readFile(path.join(rootfs, 'both.txt'), 'utf8')).toBe('app v2\ntool\n');
      expect((await fsp.stat(path.join(rootfs, 'rand.bin'))).size).toBe(12000);
      await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
      expect(await fsckProblems(d)).toEqual([]);
    } finally {
      proxy.fault = 'none';
    }
  });

  it('bad --cache-to / --cache-from: a clear error, nothing built', async () => {
    // the parser's cases are in cache/spec.test.ts; here, what the CLI makes of them
    for (const [flag, spec, message] of [
      ['--cache-to', 'type=local,dest=/tmp/x', /--cache-to type=local is not supported: use type=registry/],
      ['--cache-from', `type=registry,ref=${cacheRef},mode=max`, /unknown option "mode" \(type=registry takes ref\)/],
    ] as const) {
      const err = await cli(b, ['build', flag, spec, ctx]).then(
        () => undefined,
        (e: { code: number; stderr: string }) => e,
      );
      expect(err?.code, `${flag} ${spec}`).toBe(1);
      expect(err?.stderr).toMatch(message);
    }
  });
});
