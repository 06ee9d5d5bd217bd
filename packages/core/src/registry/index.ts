/**
 * The distribution API of @vlab/image: pull, push, login, logout (what `vbuild pull|push|login|
 * logout` run). Each opens the store at `root` (default: the usual store root) and releases what
 * it held when done; errors are VlabErrors (E_BAD_REF, E_REGISTRY_*, E_DIGEST_MISMATCH, …).
 */
import { VlabError } from '@vlab/errors';
import { Store } from '../store/store.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import { removeCredentials, storeCredentials, type Credentials } from './auth.ts';
import { RegistryClient, type RegistryOptions } from './client.ts';
import { discard } from './http.ts';
import { pullImage, type PullOptions, type PullResult } from './pull.ts';
import { pushImage, type PushOptions, type PushResult } from './push.ts';
import { DEFAULT_DOMAIN } from './reference.ts';
import { phases } from '../debug/phases.ts';

export type { PullOptions, PullResult, PushOptions, PushResult, RegistryOptions, Credentials };
export type { LayerProgress } from './events.ts';

async function withStore<T>(root: string | undefined, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(root ?? defaultStoreRoot());
  try {
    return await fn(store);
  } finally {
    await store.lease.release().catch(() => undefined);
  }
}

/** `vbuild pull NAME[:TAG|@DIGEST]`. */
export function pull(reference: string, opts: PullOptions & { root?: string } = {}): Promise<PullResult> {
  return withStore(opts.root, (store) => pullImage(store, reference, opts));
}

/** `vbuild push NAME [DEST]`: the local image NAME to DEST (default NAME). */
export function push(name: string, dest?: string, opts: PushOptions & { root?: string } = {}): Promise<PushResult> {
  const lap = phases('push');
  return withStore(opts.root, async (store) => {
    lap('open');
    const img = await store.resolve(name);
    if (!img) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image in the store: ${name}`);
    if (!(await store.holdImage(img))) throw new VlabError('E_IMAGE_NOT_FOUND', `image ${name} was removed meanwhile`);
    lap('resolve');
    return pushImage(store, img, dest ?? name, opts);
  });
}

/** The registry host of `docker login SERVER` (`https://host:5000/v2/` → `host:5000`; none: docker.io). */
export function serverHost(server: string | undefined): string {
  if (!server) return DEFAULT_DOMAIN;
  const h = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  if (!h || !/^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(h))
    throw new VlabError('E_BAD_ARG', `"${server}" is not a registry host[:port]`);
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? DEFAULT_DOMAIN : h;
}

/**
 * `vbuild login`: check the credentials against the registry (GET /v2/), then save them in
 * docker's config.json (or its credential helper). Returns where they were saved.
 */
export async function login(
  server: string | undefined,
  credentials: Credentials,
  opts: RegistryOptions = {},
): Promise<{ host: string; savedIn: string }> {
  const host = serverHost(server);
  const client = await RegistryClient.open(host, { ...opts, credentials });
  try {
    const res = await client.fetch({ method: 'GET', url: '/v2/', scope: [] });
    discard(res);
    if (res.status !== 200)
      throw new VlabError('E_REGISTRY', `login to ${host}: the registry answered ${res.status} to GET /v2/`);
  } finally {
    client.close();
  }
  return { host, savedIn: await storeCredentials(host, credentials, opts.authFile) };
}

/** `vbuild logout`: forget the saved credentials; false when there were none. */
export function logout(server: string | undefined, opts: { authFile?: string } = {}): Promise<boolean> {
  return removeCredentials(serverHost(server), opts.authFile);
}
