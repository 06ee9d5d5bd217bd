import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MEDIA, type Manifest } from '../image/types.ts';
import { CACHE_CONFIG_TYPE, MAX_CACHE_LAYERS, mergeEntries, readCache, writeCache, type CacheEntry } from './format.ts';

const d = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const layer = (s: string) => ({
  blob: { mediaType: MEDIA.layerGzip, digest: d(`gz${s}`), size: 10 },
  diffId: d(s),
  size: 20,
});
const entry = (k: string, ...ls: string[]): CacheEntry => ({
  key: d(k),
  layers: ls.map(layer),
  created: '2024-01-01T00:00:00Z',
});

function manifestOf(entries: CacheEntry[]): { manifest: Manifest; config: Buffer } {
  const w = writeCache(entries);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: CACHE_CONFIG_TYPE, digest: d(w.config.toString()), size: w.config.length },
    layers: w.layers,
  };
  return { manifest, config: w.config };
}
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
  );

describe('registry cache format', () => {
  it('writes each layer once and reads the same entries back', async () => {
    const entries = [entry('a', 'base', 'x'), entry('b', 'base', 'x', 'y')];
    const { manifest, config } = manifestOf(entries);
    expect(manifest.layers).toHaveLength(3);
    expect(await readCache(manifest, config, 'c')).toEqual(entries);
  });

  it('refuses what is not ours, a layer index out of range, a count mismatch, a bad diff_id', async () => {
    const { manifest, config } = manifestOf([entry('a', 'base', 'x')]);
    expect(
      await codeOf(readCache({ ...manifest, config: { ...manifest.config, mediaType: MEDIA.config } }, config, 'c')),
    ).toMatch(/^E_UNSUPPORTED: c is not a vbuild registry cache/);
    const doc = JSON.parse(config.toString());
    const bad = (f: (x: typeof doc) => void) => {
      const x = structuredClone(doc);
      f(x);
      return Buffer.from(JSON.stringify(x));
    };
    expect(
      await codeOf(
        readCache(
          manifest,
          bad((x) => (x.entries[0].layers = [0, 7])),
          'c',
        ),
      ),
    ).toMatch(/^E_BAD_MANIFEST: c: entries\[0\] names layer 7 of 2/);
    expect(
      await codeOf(
        readCache(
          manifest,
          bad((x) => x.layers.pop()),
          'c',
        ),
      ),
    ).toMatch(/^E_BAD_MANIFEST: c: the manifest has 2 layers but the cache config describes 1/);
    expect(
      await codeOf(
        readCache(
          manifest,
          bad((x) => (x.layers[0].diffId = '../../x')),
          'c',
        ),
      ),
    ).toMatch(/^E_BAD_MANIFEST: c: cache config: field \/layers\/0\/diffId/);
    expect(
      await codeOf(
        readCache(
          manifest,
          bad((x) => (x.entries[0].created = 'yesterday')),
          'c',
        ),
      ),
    ).toMatch(/^E_BAD_MANIFEST: .*\/entries\/0\/created/);
  });

  it('a merge keeps this build first, each key once, and stays within the layer bound', () => {
    const fresh = [entry('a', 'base', 'new')];
    const old = [entry('a', 'base', 'old'), entry('b', 'base', 'b')];
    expect(mergeEntries(fresh, old).map((e) => e.layers.at(-1)!.diffId)).toEqual([d('new'), d('b')]);
    const many = Array.from({ length: MAX_CACHE_LAYERS + 5 }, (_, i) => entry(`k${i}`, `l${i}`));
    expect(mergeEntries([], many)).toHaveLength(MAX_CACHE_LAYERS);
  });
});
