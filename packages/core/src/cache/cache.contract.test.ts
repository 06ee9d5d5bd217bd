/** The promises cache/types.ts writes down, checked through the `BuildCache` interface. */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirBuildCache, type BuildCache, type CacheRecord, type StepInputs } from './cache.ts';

let dir: string;
let cache: BuildCache;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-cache-contract-'));
  cache = new DirBuildCache(path.join(dir, 'cache'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const key = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const record = (k: string, created = '2024-01-01T00:00:00Z'): CacheRecord => ({
  key: k,
  layers: [],
  config: { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
  created,
});
const inputs: StepInputs = { parentKey: key('p'), instruction: 'RUN true', args: {}, files: {} };
const code = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: { code?: string }) => e.code ?? String(e),
  );

describe('BuildCache contract', () => {
  it('get of a key never put is undefined; remove of it is no error', async () => {
    expect(await cache.get(key('a'))).toBeUndefined();
    expect(await cache.lastInputs(key('a'))).toBeUndefined();
    expect(await code(cache.remove(key('a')))).toBe('resolved');
    expect(await cache.keys()).toEqual([]);
  });

  it('put is idempotent and replaces; concurrent puts of one key leave one whole record', async () => {
    const k = key('b');
    await cache.put(record(k));
    await cache.put(record(k));
    await Promise.all(Array.from({ length: 8 }, (_, i) => cache.put(record(k, `2024-01-0${i + 1}T00:00:00Z`))));
    expect(await cache.keys()).toEqual([k]);
    expect((await cache.get(k))?.created).toMatch(/^2024-01-0[1-8]T/);
    await cache.remove(k);
    expect(await cache.get(k)).toBeUndefined();
    expect(await cache.keys()).toEqual([]);
  });

  it('inputs naming many files come back as saved (written in pieces; odd names, no files)', async () => {
    const k = key('many');
    const files: Record<string, string> = { '7': 'file:420:a', 'q"\\\u2028é/😀': 'dir:493:', '.': 'dir:493:' };
    for (let i = 0; i < 5000; i++) files[`data/d${i % 50}/f${i}.txt`] = `file:420:${'ab'.repeat(32)}`;
    const many: StepInputs = { ...inputs, args: { A: '1' }, files };
    await cache.saveInputs(k, many);
    expect(await cache.lastInputs(k)).toEqual(many);
    expect(JSON.parse(await fsp.readFile(path.join(dir, 'cache', 'inputs', k.slice(7)), 'utf8'))).toEqual(many);
    await cache.saveInputs(k, inputs);
    expect(await cache.lastInputs(k)).toEqual(inputs);
  });

  it('a corrupt record or inputs file reads as absent, not as an error (the step just runs again)', async () => {
    const k = key('c');
    await cache.put(record(k));
    await cache.saveInputs(k, inputs);
    expect(await cache.lastInputs(k)).toEqual(inputs);
    for (const kind of ['records', 'inputs']) await fsp.writeFile(path.join(dir, 'cache', kind, k.slice(7)), '{ torn');
    expect(await cache.get(k)).toBeUndefined();
    expect(await cache.lastInputs(k)).toBeUndefined();
  });

  it('a temp file a killed writer left is not a record', async () => {
    const k = key('d');
    await cache.put(record(k));
    await fsp.writeFile(path.join(dir, 'cache', 'records', `${k.slice(7)}.tmp-99999-x`), '{ half');
    expect(await cache.keys()).toEqual([k]);
  });

  it('a key that is not a sha256 digest is E_BAD_DIGEST: nothing is read or written outside the cache', async () => {
    const bad = '../../escaped';
    expect(await code(cache.put(record(bad)))).toBe('E_BAD_DIGEST');
    expect(await code(cache.get(bad))).toBe('E_BAD_DIGEST');
    expect(await code(cache.remove(bad))).toBe('E_BAD_DIGEST');
    expect(await code(cache.saveInputs(bad, inputs))).toBe('E_BAD_DIGEST');
    expect(await code(cache.lastInputs(bad))).toBe('E_BAD_DIGEST');
    expect(await fsp.readdir(dir)).toEqual([]); // not even the cache dir was made
  });
});
