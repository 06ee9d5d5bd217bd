/**
 * The images the registry bench pushes and pulls, made once into a vlab store (an OCI layout, so
 * skopeo reads the same bytes as `oci:STORE:NAME`) and kept while their spec matches:
 * - `big`: 1 GiB (quick: 128 MiB) in 5 layers of 50/25/12.5/9.4/3.1 %, files of 1–16 MiB, each
 *   of one kind drawn by a seeded PRNG: random (AES-CTR keystream: an already compressed file,
 *   incompressible) 40 %, word-like text (≈ 3–4× with gzip) 50 %, zeros 10 %: gzip ≈ 1.8× over
 *   all, about what an image of libraries, data and text gives; not a block of zeros.
 * - `small200`: 200 layers (quick: 50), each a few text files of 1–20 kB.
 * Layers are plain ustar written here (sorted names, uid 0, mtime 0): deterministic bytes.
 */
import { createCipheriv } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { LayoutStore } from '../../packages/core/src/store/store.ts';
import { MEDIA, type Descriptor, type ImageConfig } from '../../packages/core/src/image/types.ts';
import { exists } from './measure.ts';

export interface RegImage {
  name: string;
  /** Store holding it (read-only for the bench: pushes read it, skopeo reads `oci:store:name`). */
  store: string;
  ref: string;
  layers: number;
  bytes: number;
}

const BLOCK = 64 << 10;
const WORDS = 'the of and to in is that for it as with was on be by this are or from at an not which have'.split(' ');

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One file's contents, of one kind as real files are: random (already compressed), text, or zeros. */
function* content(size: number, rnd: () => number, seed: number): Generator<Buffer> {
  const key = Buffer.alloc(32, seed & 0xff);
  key.writeUInt32LE(seed >>> 0, 0);
  const aes = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(BLOCK);
  const r = rnd();
  for (let off = 0; off < size; off += BLOCK) {
    const n = Math.min(BLOCK, size - off);
    if (r < 0.4) yield aes.update(zeros.subarray(0, n));
    else if (r < 0.9) {
      const noise = aes.update(zeros.subarray(0, n));
      const b = Buffer.allocUnsafe(n);
      let i = 0;
      for (let k = 0; i < n; k++) {
        const w = WORDS[noise[k % n]! % WORDS.length]!;
        i += b.write(w, i, 'latin1');
        if (i < n) b[i++] = noise[(k + 1) % n]! < 16 ? 10 : 32;
      }
      yield b;
    } else yield Buffer.alloc(n);
  }
}

function header(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  const oct = (v: number, off: number, len: number) => h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len);
  oct(0o644, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(0, 136, 12);
  h.fill(' ', 148, 156);
  h.write('0', 156);
  h.write('ustar\0' + '00', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

/** A tar stream of `files` (name → size), contents from the seeded generator. */
function tar(files: [string, number][], seed: number): Readable {
  const rnd = prng(seed);
  return Readable.from(
    (function* () {
      for (const [i, [name, size]] of files.entries()) {
        yield header(name, size);
        yield* content(size, rnd, seed * 1000 + i);
        if (size % 512) yield Buffer.alloc(512 - (size % 512));
      }
      yield Buffer.alloc(1024);
    })(),
  );
}

function bigLayers(total: number): [string, number][][] {
  const rnd = prng(7);
  return [0.5, 0.25, 0.125, 0.09375, 0.03125].map((share, l) => {
    const files: [string, number][] = [];
    let left = Math.round(total * share);
    for (let i = 0; left > 0; i++) {
      const size = Math.min(left, (1 + Math.floor(rnd() * 16)) << 20);
      files.push([`data/l${l}/f${String(i).padStart(4, '0')}.bin`, size]);
      left -= size;
    }
    return files;
  });
}

function smallLayers(n: number): [string, number][][] {
  const rnd = prng(11);
  return Array.from({ length: n }, (_, l) =>
    Array.from({ length: 1 + Math.floor(rnd() * 5) }, (_, i): [string, number] => [
      `etc/l${String(l).padStart(3, '0')}/f${i}.txt`,
      1000 + Math.floor(rnd() * 19000),
    ]),
  );
}

/** Make (or reuse) both bench images under `dataDir/registry`. */
export async function makeRegistryImages(
  dataDir: string,
  quick: boolean,
  log: (m: string) => void,
): Promise<Record<'big' | 'small200', RegImage>> {
  const bigBytes = (quick ? 128 : 1024) << 20;
  const smallCount = quick ? 50 : 200;
  const specs = { big: bigLayers(bigBytes), small200: smallLayers(smallCount) };
  const out = {} as Record<'big' | 'small200', RegImage>;
  for (const [name, layers] of Object.entries(specs) as ['big' | 'small200', [string, number][][]][]) {
    const tag = `${name}-${quick ? 'quick' : 'full'}-v2`;
    const store = path.join(dataDir, 'registry', tag);
    const ref = `bench/${name}:latest`;
    const bytes = layers.flat().reduce((n, [, s]) => n + s, 0);
    out[name] = { name, store, ref, layers: layers.length, bytes };
    if (await exists(path.join(store, 'done'))) continue;
    log(`making the ${name} image (${layers.length} layers, ${(bytes / 2 ** 20).toFixed(0)} MiB) in ${store}`);
    await fs.rm(store, { recursive: true, force: true });
    const s = await LayoutStore.open(store);
    const descs: Descriptor[] = [];
    for (const [i, files] of layers.entries()) {
      const r = await s.blobs.put(tar(files, i + 1));
      descs.push({ mediaType: MEDIA.layer, digest: r.digest, size: r.size });
    }
    const config: ImageConfig = {
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) },
      history: descs.map(() => ({ created_by: 'bench' })),
    } as ImageConfig;
    const img = await s.putImage(config, descs);
    await s.tag(ref, img.manifestDigest);
    await s.lease.release().catch(() => undefined);
    await fs.writeFile(path.join(store, 'done'), '');
  }
  return out;
}
