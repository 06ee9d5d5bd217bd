/**
 * A second push only verifies: against Debian's docker-registry behind a counting proxy, it sends
 * a HEAD per layer, one for the config and one for the tag, and nothing else: no upload, and no
 * manifest PUT when the tag names that manifest already. That holds when the store also remembers
 * an older compressed form of the layer (another engine's bytes, listed first), and a new tag of
 * the same image still gets its PUT.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { push } from '@vlab/image';
import { freshStore, removeStore } from './helpers.ts';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { startProxy, type FaultProxy } from './registry-proxy.ts';

const missing = registryMissing();
if (missing) console.warn(`registry push-verify tests skipped: ${missing}`);

describe.skipIf(missing)('registry: a push that only verifies', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let root: string;

  beforeAll(async () => {
    [reg, root] = await Promise.all([startRegistry(), freshStore()]);
    proxy = await startProxy(reg.host);
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (root) await removeStore(root);
  });

  it('HEADs the layers, the config and the tag; uploads and PUTs nothing; a new tag is PUT', async () => {
    const dest = `${proxy.host}/v/bb:1`;
    const first = await push('busybox:latest', dest, { root, tlsVerify: false });
    expect(first.layers.map((l) => l.status)).toEqual(['done']);

    // an older compressed form of the layer, remembered first (as after a change of gzip engine)
    const dir = path.join(root, 'distribution', 'by-diffid');
    const [file] = await fsp.readdir(dir);
    const list = JSON.parse(await fsp.readFile(path.join(dir, file!), 'utf8')) as { mediaType: string }[];
    const older = { digest: `sha256:${'0'.repeat(64)}`, mediaType: list[0]!.mediaType, size: 1, repos: [] };
    await fsp.writeFile(path.join(dir, file!), JSON.stringify([older, ...list]));

    proxy.requests.length = 0;
    const again = await push('busybox:latest', dest, { root, tlsVerify: false });
    expect(again.digest).toBe(first.digest);
    expect(again.layers).toEqual(first.layers.map((l) => ({ ...l, status: 'exists' })));
    const methods = proxy.requests.map((r) => r.split(' ')[0]);
    expect(methods).toEqual(['HEAD', 'HEAD', 'HEAD']);
    expect(proxy.requests.filter((r) => r.includes('/manifests/1'))).toHaveLength(1);

    proxy.requests.length = 0;
    const tagged = await push('busybox:latest', `${proxy.host}/v/bb:2`, { root, tlsVerify: false });
    expect(tagged.digest).toBe(first.digest);
    expect(proxy.requests.filter((r) => !r.startsWith('HEAD '))).toEqual(['PUT /v2/v/bb/manifests/2']);
  });
});
