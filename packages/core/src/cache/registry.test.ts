/** What a registry cache hit must be to be used: the untrusted entry checked against the step's own parent. */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MEDIA, type LayerRef } from '../image/types.ts';
import { RegistryClient } from '../registry/client.ts';
import { parseReference } from '../registry/reference.ts';
import type { Store } from '../store/store.ts';
import type { CacheEntry } from './format.ts';
import { RegistryCaches } from './registry.ts';

const d = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const cacheLayer = (s: string) => ({
  blob: { mediaType: MEDIA.layerGzip, digest: d(`gz${s}`), size: 9 },
  diffId: d(s),
});
const local = (s: string): LayerRef => ({ digest: d(s), diffId: d(s), size: 1, mediaType: MEDIA.layer });
const entry = (k: string, ...ls: string[]): CacheEntry => ({
  key: d(k),
  layers: ls.map(cacheLayer),
  created: '2024-01-01T00:00:00Z',
});

// never connected: lookups read only the entries
const client = await RegistryClient.open('127.0.0.1:9');
afterAll(() => client.close());
const caches = new RegistryCaches(
  [
    {
      ref: parseReference('127.0.0.1:9/c:1'),
      name: '127.0.0.1:9/c:1',
      client,
      entries: new Map(
        [entry('ok', 'base', 'x'), entry('other-base', 'evil', 'x'), entry('two', 'base', 'x', 'y')].map((e) => [
          e.key,
          e,
        ]),
      ),
      hits: 0,
      layersPulled: 0,
      bytesPulled: 0,
    },
  ],
  {} as Store,
  () => undefined,
);

describe('registry cache lookup', () => {
  it('a hit is the parent’s own layers plus the entry’s one new layer', () => {
    const parent = [local('base')];
    expect(caches.lookup(d('ok'), parent)).toEqual({
      hit: {
        layers: [parent[0], { digest: d('x'), diffId: d('x'), size: 0, mediaType: MEDIA.layer }],
        created: '2024-01-01T00:00:00Z',
        from: '127.0.0.1:9/c:1',
      },
    });
    expect(caches.lookup(d('absent'), parent)).toBeUndefined();
  });

  it('an entry on other parent layers, or adding more than one layer, is unusable, with the reason', () => {
    const parent = [local('base')];
    expect(caches.lookup(d('other-base'), parent)).toEqual({
      unusable: "the entry in registry cache 127.0.0.1:9/c:1 does not extend this step's parent layers",
    });
    expect(caches.lookup(d('two'), parent)).toMatchObject({ unusable: expect.stringMatching(/does not extend/) });
  });
});
