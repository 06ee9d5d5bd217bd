/**
 * `pnpm fuzz [--seconds N] [--targets parser,lexer,layer,archive] [--seed S]`: mutational and random
 * fuzzing of the untrusted-input readers, for long runs (never part of the tests). Targets:
 *   parser   @vlab/dockerfile parse() + check() on mutated real Dockerfiles and random token soup
 *   lexer    expandWord/expandWords on mutated and random shell words
 *   layer    @vlab/overlay listLayer() and apply() of mutated layer tars, into a tmpfs, in a mount
 *            namespace where every other mount is read-only (an escape fails with EROFS and shows
 *            up as a crash instead of writing the host)
 *   archive  loadArchive() (vbuild load) of mutated docker-archives and OCI archives, into a temp store
 * Any failure that is not a VlabError, and any input slower than 5 s, is a crash: reported and
 * saved to bench/.data/fuzz-crashes/<target>-<sha>.bin. Prints inputs/s per target.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { VlabError } from '@vlab/image';
import { check, expandWord, expandWords, parse } from '@vlab/dockerfile';
import { apply } from '@vlab/overlay';
import { listLayer } from '../packages/overlay/src/layer/list.ts';
import { loadArchive } from '../packages/core/src/image/load.ts';
import { Store } from '../packages/core/src/store/store.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const crashDir = path.join(repo, 'bench', '.data', 'fuzz-crashes');
const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const seconds = Number(arg('seconds') ?? 60);
const seed = Number(arg('seed') ?? Date.now() % 1e9);
const SLOW_MS = 5000;

// ----- a small seeded PRNG and byte mutators (AFL-style havoc) -----
let state = seed >>> 0 || 1;
const rnd = (n: number) => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state % Math.max(1, n);
};
const pick = <T>(a: readonly T[]): T => a[rnd(a.length)]!;
const INTERESTING = [0, 0xff, 0x7f, 0x80, 0x2f, 0x2e, 0x30, 0x37, 0x20, 0x0a, 0x5c, 0x24];

function mutate(input: Buffer, dict: readonly string[], others: readonly Buffer[]): Buffer {
  let b = Buffer.from(input);
  for (let n = 1 + rnd(6); n > 0; n--) {
    const at = rnd(b.length + 1);
    switch (rnd(7)) {
      case 0:
        if (b.length) b[rnd(b.length)]! ^= 1 << rnd(8);
        break;
      case 1:
        if (b.length) b[rnd(b.length)] = pick(INTERESTING);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(dict)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + rnd(64))]);
        break;
      case 4: {
        const len = rnd(256);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      case 5: {
        const o = pick(others);
        const from = rnd(o.length);
        b = Buffer.concat([b.subarray(0, at), o.subarray(from, from + rnd(512))]);
        break;
      }
      case 6:
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(rnd(8) + 1, pick(INTERESTING)), b.subarray(at)]);
        break;
    }
  }
  return b;
}

/** Tar-aware: mutate header fields of one 512-byte header, then fix every header checksum (else all inputs die at the checksum). */
function mutateTar(input: Buffer, dict: readonly string[]): Buffer {
  const b = Buffer.from(input);
  const headers: number[] = [];
  for (let off = 0; off + 512 <= b.length; off += 512)
    if (b.toString('latin1', off + 257, off + 262) === 'ustar') headers.push(off);
  if (headers.length && rnd(3)) {
    const h = pick(headers);
    const [field, len] = pick([
      [0, 100],
      [100, 8],
      [108, 8],
      [116, 8],
      [124, 12],
      [156, 1],
      [157, 100],
      [345, 155],
    ] as const);
    const v = Buffer.from(rnd(2) ? pick(dict) : String(rnd(1 << 30).toString(8)));
    v.copy(b, h + field, 0, Math.min(len, v.length));
    if (v.length < len && rnd(2)) b[h + field + v.length] = 0;
    if (field === 156) b[h + 156] = pick([...'0125673LKxgSV'].map((c) => c.charCodeAt(0)));
  }
  const out = rnd(4) ? b : mutate(b, dict, [b]);
  for (let off = 0; off + 512 <= out.length; off += 512) {
    if (out.toString('latin1', off + 257, off + 262) !== 'ustar') continue;
    out.fill(0x20, off + 148, off + 156);
    let sum = 0;
    for (let i = off; i < off + 512; i++) sum += out[i]!;
    out.write(`${sum.toString(8).padStart(6, '0')}\0 `, off + 148, 'latin1');
  }
  return out;
}

// ----- targets -----
interface Target {
  name: string;
  next(): Buffer;
  run(input: Buffer): Promise<void> | void;
}

const DF_DICT = [
  'FROM ',
  'RUN ',
  'COPY ',
  'ADD ',
  'ENV ',
  'ARG ',
  'LABEL ',
  'ONBUILD ',
  'HEALTHCHECK ',
  'SHELL ',
  'WORKDIR ',
  '\\\n',
  '\n',
  '`',
  '# escape=`\n',
  '# syntax=x\n',
  '<<EOF\n',
  '<<-EOF\n',
  "<<'E'\n",
  'EOF\n',
  '${A:-',
  '${A:+x}',
  '${A#*}',
  '${A%%/*}',
  '${A/a/b}',
  '$A',
  '}',
  '"',
  "'",
  '[',
  ']',
  '["a","b"]',
  '--mount=type=bind,source=x,target=/y',
  '--from=0',
  '--chmod=755',
  '--platform=$A',
  ' AS b',
  '\0',
  '\uFEFF',
  '\r\n',
  '\t',
];
const WORD_DICT = [
  '$',
  '${',
  '}',
  ':-',
  ':+',
  ':?',
  '#',
  '##',
  '%',
  '%%',
  '/',
  '//',
  '"',
  "'",
  '\\',
  '`',
  'A',
  'B',
  ' ',
  '*',
  '?',
  '[',
  ']',
  '!',
  '@',
  '\n',
];

function dockerfileSeeds(): Buffer[] {
  const root = path.join(repo, '..', 'shared', 'corpus', 'real-dockerfiles');
  const out: Buffer[] = [];
  if (existsSync(root)) {
    for (const d of readdirSync(root, { withFileTypes: true })) {
      if (!d.isDirectory()) continue;
      for (const f of readdirSync(path.join(root, d.name)))
        if (f.endsWith('.Dockerfile')) out.push(readFileSync(path.join(root, d.name, f)));
    }
  }
  if (!out.length)
    out.push(
      Buffer.from('FROM busybox AS a\nARG X=1\nRUN echo ${X:-y} \\\n && true\nCOPY --from=a <<EOF /x\nhi\nEOF\n'),
    );
  return out;
}

function typedOnly(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof VlabError)) throw e;
  }
}

function parserTarget(): Target {
  const seeds = dockerfileSeeds();
  const soup = fc.array(fc.constantFrom(...DF_DICT, 'x', '/a', '=', ' '), { maxLength: 80 }).map((a) => a.join(''));
  let pool: string[] = [];
  return {
    name: 'parser',
    next() {
      if (rnd(4) === 0) {
        if (!pool.length) pool = fc.sample(soup, { seed: rnd(1 << 30), numRuns: 200 });
        return Buffer.from(pool.pop()!);
      }
      return mutate(pick(seeds), DF_DICT, seeds);
    },
    run(input) {
      const text = input.toString('utf8');
      typedOnly(() => parse(text, { file: 'Dockerfile' }));
      typedOnly(() => check(text));
    },
  };
}

function lexerTarget(): Target {
  const seeds = [
    '${A:-${B:+x}}',
    '"$A"\'$B\'',
    '${A#*/}${A%%.*}',
    '\\$A `x` ${A/b/c}',
    '${A:?err}',
    'a b  c',
    '${#A}',
  ].map((s) => Buffer.from(s));
  const env = { A: 'a b/c.d', B: '', C: '$A' };
  return {
    name: 'lexer',
    next: () =>
      rnd(3)
        ? mutate(pick(seeds), WORD_DICT, seeds)
        : Buffer.from(Array.from({ length: rnd(60) }, () => pick(WORD_DICT)).join('')),
    run(input) {
      const w = input.toString('utf8');
      for (const escape of ['\\', '`']) {
        typedOnly(() => expandWord(w, env, { escape }));
        typedOnly(() => expandWords(w, env, { escape }));
      }
    },
  };
}

/** Layer seeds: the tar corpus, and a tar with every entry kind made here by GNU tar. */
function tarSeeds(work: string): Buffer[] {
  const out: Buffer[] = [];
  const corpus = path.join(repo, '..', 'shared', 'corpus', 'layers', 'tar-rs');
  if (existsSync(corpus))
    for (const f of readdirSync(corpus))
      if (f.endsWith('.tar') && statSync(path.join(corpus, f)).size < 256 << 10)
        out.push(readFileSync(path.join(corpus, f)));
  const dir = mkdtempSync(path.join(work, 'seed-'));
  try {
    const r = path.join(dir, 'r');
    mkdirSync(path.join(r, 'd/e'), { recursive: true });
    writeFileSync(path.join(r, 'd/f'), 'data');
    writeFileSync(path.join(r, 'd/.wh.gone'), '');
    writeFileSync(path.join(r, 'd/e/.wh..wh..opq'), '');
    writeFileSync(path.join(r, `${'n'.repeat(120)}`), 'long name');
    execFileSync('ln', ['-s', '../d/f', path.join(r, 'link')]);
    execFileSync('ln', [path.join(r, 'd/f'), path.join(r, 'hard')]);
    for (const format of ['gnu', 'pax', 'ustar']) {
      try {
        execFileSync(
          'tar',
          [`--format=${format}`, '--sort=name', '-cf', path.join(dir, `${format}.tar`), '-C', r, '.'],
          { stdio: 'ignore' },
        );
        out.push(readFileSync(path.join(dir, `${format}.tar`)));
      } catch {
        // ustar cannot hold the long name: the other formats cover it
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
const TAR_DICT = [
  '../',
  '/',
  '/etc/passwd',
  '..',
  '.wh.',
  '.wh..wh..opq',
  'a/b/../../..',
  '\0',
  'path=',
  '30 path=../../x\n',
  'linkpath=/',
  'size=99999999999\n',
  'ustar\x0000',
  'ustar  \0',
];

function layerTarget(work: string): Target {
  const seeds = tarSeeds(work);
  let n = 0;
  return {
    name: 'layer',
    next: () => mutateTar(pick(seeds), TAR_DICT),
    async run(input) {
      const dir = path.join(work, String(n++ % 4));
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      await listLayer(Readable.from([input])).catch(rethrowUntyped);
      await apply(Readable.from([input]), dir, { whiteouts: pick(['overlay', 'oci'] as const) }).catch(rethrowUntyped);
    },
  };
}

function archiveTarget(work: string): Target {
  const dir = path.join(repo, '..', 'shared', 'corpus', 'layers', 'go-containerregistry', 'image-tarballs');
  const seeds = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.tar') && statSync(path.join(dir, f)).size < 1 << 20)
        .map((f) => readFileSync(path.join(dir, f)))
    : [];
  if (!seeds.length) throw new Error(`no image tarballs in ${dir}`);
  const file = path.join(work, 'in.tar');
  let store: Promise<Store> | undefined;
  let n = 0;
  return {
    name: 'archive',
    next: () =>
      rnd(2)
        ? mutateTar(pick(seeds), [...TAR_DICT, 'manifest.json', 'index.json', '"Config":', '"Layers":[', 'sha256:'])
        : mutate(pick(seeds), ['{', '}', '[', ']', '"', ',', 'null', '0', '-1', '"../x"', '"/etc/passwd"'], seeds),
    async run(input) {
      // A fresh store now and then, so it does not fill up with what the fuzzer loaded.
      if (n++ % 200 === 0) {
        rmSync(path.join(work, 'store'), { recursive: true, force: true });
        store = Store.open(path.join(work, 'store'));
      }
      writeFileSync(file, input);
      await loadArchive(await store!, file).catch(rethrowUntyped);
    },
  };
}

function saveCrash(target: string): (input: Buffer) => string {
  return (input) => {
    mkdirSync(crashDir, { recursive: true });
    const file = path.join(crashDir, `${target}-${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`);
    writeFileSync(file, input);
    return file;
  };
}

function rethrowUntyped(e: unknown): void {
  if (!(e instanceof VlabError)) throw e;
}

// ----- the loop -----
interface Result {
  target: string;
  inputs: number;
  seconds: number;
  crashes: { file: string; error: string }[];
}

/** The layer target runs in a child inside its own mount namespace: every mount read-only but its tmpfs. */
function runContainedChild(targets: string[]): Promise<Result[]> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'vlab-fuzz-'));
  const script = [
    'set -e',
    'mount --make-rprivate /',
    `mount -t tmpfs -o size=256m vlab-fuzz ${work}`,
    // Bind-remount every other mount read-only (this namespace only); tmpfs work dir last stays rw.
    `awk '{print $5}' /proc/self/mountinfo | while read -r m; do case "$m" in ${work}|/proc|/proc/*|/dev|/dev/*) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null || true;; esac; done`,
    `exec node --import tsx ${JSON.stringify(fileURLToPath(import.meta.url))} --child ${targets.join(',')} --seconds ${seconds} --seed ${seed} --work ${work}`,
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-m', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'], cwd: repo });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(work, { recursive: true, force: true });
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('['))
        return reject(new Error(`contained fuzz child exited ${code}: ${out.slice(-2000)}`));
      resolve(JSON.parse(line) as Result[]);
    });
  });
}

async function main(): Promise<void> {
  const child = arg('child');
  if (child) {
    // Inside the namespace: crashes are returned to the parent, which saves them (the repo is read-only here).
    const work = arg('work')!;
    const results: Result[] = [];
    for (const name of child.split(',')) {
      results.push(
        await fuzzWith(name === 'layer' ? layerTarget(work) : archiveTarget(work), seconds, (input) =>
          input.toString('base64'),
        ),
      );
    }
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  const targets = (arg('targets') ?? 'parser,lexer,layer,archive').split(',');
  process.stderr.write(`[fuzz] seed ${seed}, ${seconds} s per target: ${targets.join(', ')}\n`);
  const results: Result[] = [];
  for (const name of targets.filter((t) => t === 'parser' || t === 'lexer'))
    results.push(await fuzzWith(name === 'parser' ? parserTarget() : lexerTarget(), seconds, saveCrash(name)));
  const contained = targets.filter((t) => t === 'layer' || t === 'archive');
  if (contained.length) {
    for (const r of await runContainedChild(contained)) {
      r.crashes = r.crashes.map((c) => ({ file: saveCrash(r.target)(Buffer.from(c.file, 'base64')), error: c.error }));
      results.push(r);
    }
  }
  process.stdout.write(`${'target'.padEnd(10)} ${'inputs'.padStart(9)} ${'inputs/s'.padStart(9)}  untyped failures\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.target.padEnd(10)} ${String(r.inputs).padStart(9)} ${(r.inputs / r.seconds).toFixed(0).padStart(9)}  ${r.crashes.length}\n`,
    );
    for (const c of r.crashes) process.stdout.write(`  ${c.error}\n    saved: ${path.relative(repo, c.file)}\n`);
  }
  process.exitCode = results.some((r) => r.crashes.length) ? 1 : 0;
}

/** Run `t` for `secs`; each new kind of failure keeps one input, which `save` stores (returns where). */
async function fuzzWith(t: Target, secs: number, save: (input: Buffer) => string): Promise<Result> {
  const crashes: Result['crashes'] = [];
  const seen = new Set<string>();
  const t0 = performance.now();
  let inputs = 0;
  while (performance.now() - t0 < secs * 1000) {
    const input = t.next();
    const s0 = performance.now();
    let failure: string | undefined;
    try {
      await t.run(input);
    } catch (e) {
      failure = `${(e as Error)?.constructor?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`;
    }
    const ms = performance.now() - s0;
    if (!failure && ms > SLOW_MS) failure = `slow: ${ms.toFixed(0)} ms`;
    inputs++;
    if (failure) {
      const key = failure.replace(/\d+/g, 'N').slice(0, 120);
      if (seen.has(key)) continue;
      seen.add(key);
      crashes.push({ file: save(input), error: failure.slice(0, 300) });
    }
  }
  return { target: t.name, inputs, seconds: (performance.now() - t0) / 1000, crashes };
}

await main();
