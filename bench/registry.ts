/**
 * Registry bench: push and pull through Debian's docker-registry on 127.0.0.1, vbuild (the API in
 * this process, and the CLI) beside `skopeo copy` between the same registry and an OCI layout, in
 * one run, and a second push that only verifies (and the same with --force-recursive, every blob
 * HEADed). Prints one table with the targets.
 *
 *   node --import tsx bench/registry.ts [--quick]
 *   BENCH_RUNS=3 BENCH_CASES=big,small200 BENCH_PEERS=vlab,vlab-cli,skopeo  BENCH_VLAB_PROF=DIR
 *
 * Each push goes to a fresh registry (nothing to skip or mount) from the image's store, whose
 * remembered compressed digests are dropped first; skopeo reads the same store as
 * `oci:STORE:NAME` (uncompressed layers: it gzips them as vbuild does). Each pull goes from a
 * registry holding vbuild's push into an empty store (vbuild: gunzip, both digests checked,
 * stored uncompressed) or an empty OCI layout (skopeo: stores the gzip blobs as they come).
 * Every timed step starts from the same state, whoever ran before it: the previous pull's
 * directory (and the previous push's registry) is already removed, then an untimed `sync` writes
 * back what is dirty and commits the frees. This disk is ext4 with online `discard`: a removed
 * 1 GB pull (or the pushed registry blobs still dirty) was otherwise paid by the next step's
 * fsyncs, whoever ran it (skopeo's big/pull back to back: 2.56–3.90 s, with the sync 2.35–2.90 s;
 * bench/README.md, session 23). Each timed step's time is logged to stderr with the load.
 * Peers in a rotating order per run; medians. `vlab-cli` is the npm bin packages/core/bin/vbuild
 * (native client + warm server, started once untimed); with BENCH_VLAB_PROF, `node --cpu-prof
 * bin/vbuild.js` per command instead.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pull, push } from '@vlab/image';
import { startRegistry, type TestRegistry } from '../test/registry-fixture.ts';
import { median, sh, spawnCollect, tail } from './lib/measure.ts';
import { makeRegistryImages, type RegImage } from './lib/registry-data.ts';
import { bytes, ratio, render, secs } from './lib/table.ts';
import { warmCli, type WarmCli } from './lib/warm-cli.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const pick = <T extends string>(env: string | undefined, all: readonly T[]): T[] =>
  env ? all.filter((x) => env.split(',').includes(x)) : [...all];
const CASES = pick(process.env.BENCH_CASES, ['big', 'small200'] as const);
// vlab-zlib: the API pulling with VLAB_GUNZIP=zlib (pull rows only); BENCH_PHASES=pull skips the pushes
const PEERS = pick(process.env.BENCH_PEERS, ['vlab', 'vlab-zlib', 'vlab-cli', 'skopeo'] as const);
const PHASES = pick(process.env.BENCH_PHASES, ['push', 'pull'] as const);
type Peer = (typeof PEERS)[number];
const prof = process.env.BENCH_VLAB_PROF;
const dataDir = path.join(repo, 'bench', '.data');
const log = (m: string) => process.stderr.write(`[registry bench] ${m}\n`);

let cliRun: WarmCli | undefined; // the bin users run (bench/lib/warm-cli.ts), started in main
const cli = (args: string[]) => cliRun!.argv(args);

async function run(argv: string[], env: Record<string, string> = {}): Promise<void> {
  const nocreds = path.join(os.tmpdir(), 'vlab-bench-nocreds');
  const r = await spawnCollect(argv, { env: { ...process.env, DOCKER_CONFIG: nocreds, ...cliRun?.env, ...env } });
  if (r.code !== 0) throw new Error(`${argv.slice(0, 4).join(' ')} … exited ${r.code}: ${tail(r.stderr || r.stdout)}`);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Sum of the layer sizes of a manifest in the registry (what the push compressed to). */
async function pushedBytes(reg: TestRegistry, repoTag: string): Promise<number> {
  const [name, tag] = repoTag.split(':') as [string, string];
  const res = await fetch(`http://${reg.host}/v2/${name}/manifests/${tag}`, {
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  const m = (await res.json()) as { layers: { size: number }[] };
  return m.layers.reduce((n, l) => n + l.size, 0);
}

const forget = (img: RegImage) => fs.rm(path.join(img.store, 'distribution'), { recursive: true, force: true });

async function pushWith(peer: Peer, img: RegImage, reg: TestRegistry, dest: string, force = false): Promise<number> {
  const to = `${reg.host}/${dest}`;
  if (peer === 'vlab')
    return timed(() => push(img.ref, to, { root: img.store, tlsVerify: false, forceRecursive: force }));
  const flags = ['-q', '--tls-verify=false', ...(force ? ['--force-recursive'] : [])];
  if (peer === 'vlab-cli') return timed(() => run(cli(['push', ...flags, img.ref, to]), { VLAB_ROOT: img.store }));
  return timed(() =>
    run(['skopeo', 'copy', '-q', '--dest-tls-verify=false', `oci:${img.store}:${img.ref}`, `docker://${to}`]),
  );
}

async function pullWith(peer: Peer, from: string, into: string): Promise<number> {
  if (peer === 'vlab') return timed(() => pull(from, { root: into, tlsVerify: false }));
  if (peer === 'vlab-zlib') {
    process.env.VLAB_GUNZIP = 'zlib';
    return timed(() => pull(from, { root: into, tlsVerify: false })).finally(() => delete process.env.VLAB_GUNZIP);
  }
  if (peer === 'vlab-cli')
    return timed(() => run(cli(['pull', '-q', '--tls-verify=false', from]), { VLAB_ROOT: into }));
  return timed(() => run(['skopeo', 'copy', '-q', '--src-tls-verify=false', `docker://${from}`, `oci:${into}:x`]));
}

type Key = string; // case/phase
const times = new Map<Key, Map<Peer, number[]>>();
const sizes = new Map<Key, Map<Peer, number>>();
const errors: string[] = [];
const add = (k: Key, p: Peer, t: number) => {
  if (!times.has(k)) times.set(k, new Map());
  const m = times.get(k)!;
  m.set(p, [...(m.get(p) ?? []), t]);
};

async function measure(k: Key, p: Peer, fn: () => Promise<number>): Promise<void> {
  try {
    await sh(['sync']); // untimed, before every peer alike (the header)
    const t = await fn();
    add(k, p, t);
    log(`${k} ${p}: ${t.toFixed(3)} s (load ${os.loadavg()[0]!.toFixed(2)})`);
  } catch (e) {
    errors.push(`${p} ${k}: ${(e as Error).message.slice(0, 300)}`);
  }
}

async function benchCase(img: RegImage): Promise<void> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-regbench-'));
  try {
    for (let r = 0; r < runs; r++) {
      const order = PEERS.map((_, i) => PEERS[(i + r) % PEERS.length]!);
      for (const p of PHASES.includes('push') ? order.filter((p) => p !== 'vlab-zlib') : []) {
        const reg = await startRegistry();
        try {
          await forget(img);
          const dest = `b/${img.name}:1`;
          await measure(`${img.name}/push`, p, () => pushWith(p, img, reg, dest));
          if (!sizes.has(`${img.name}/push`)) sizes.set(`${img.name}/push`, new Map());
          sizes.get(`${img.name}/push`)!.set(p, await pushedBytes(reg, dest).catch(() => NaN));
          if (p !== 'skopeo') await measure(`${img.name}/push again (verify)`, p, () => pushWith(p, img, reg, dest));
          // the full check beside it (every blob HEADed): what a push again cost before the manifest HEAD
          if (p !== 'skopeo')
            await measure(`${img.name}/push again --force-recursive`, p, () => pushWith(p, img, reg, dest, true));
        } finally {
          await reg.stop();
        }
      }
      const reg = await startRegistry();
      try {
        await forget(img);
        await push(img.ref, `${reg.host}/src/${img.name}:1`, { root: img.store, tlsVerify: false });
        for (const p of order) {
          const into = path.join(scratch, `pull-${p}-${r}`);
          await measure(`${img.name}/pull`, p, () => pullWith(p, `${reg.host}/src/${img.name}:1`, into));
          await fs.rm(into, { recursive: true, force: true });
        }
      } finally {
        await reg.stop();
      }
    }
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

const stat = (xs: number[] | undefined) =>
  xs?.length ? `${secs(median(xs))} (${secs(Math.min(...xs))}–${secs(Math.max(...xs))})` : '–';
const med = (k: Key, p: Peer) => {
  const xs = times.get(k)?.get(p);
  return xs?.length ? median(xs) : undefined;
};

async function main(): Promise<void> {
  const started = Date.now();
  const load0 = (await sh(['uptime'])).trim();
  if (PEERS.includes('vlab-cli')) await sh(['pnpm', '--filter', '@vlab/image', 'bundle'], { cwd: repo });
  const images = await makeRegistryImages(dataDir, quick, log);
  if (PEERS.includes('vlab-cli')) cliRun = await warmCli(repo, dataDir, prof);
  try {
    for (const c of CASES) {
      log(`${c}: ${runs} run(s) of ${PEERS.join(', ')}`);
      await benchCase(images[c]);
    }
  } finally {
    await cliRun?.stop();
  }
  const load1 = (await sh(['uptime'])).trim();
  const out: string[] = [];
  out.push(
    `## @vlab/image registry bench — ${new Date().toISOString()} — ${quick ? 'quick' : 'full'} — ${runs} run(s)`,
  );
  for (const c of CASES) {
    const i = images[c];
    out.push(`- ${c}: ${i.layers} layer(s), ${bytes(i.bytes)} uncompressed`);
  }
  out.push(`- load before: ${load0}`, `- load after: ${load1}`, '');
  const keys = [...times.keys()];
  const skopeoOf = (k: Key) => med(k.replace(/ again .*/, ''), 'skopeo');
  const rows = keys.map((k) => [
    k,
    ...PEERS.map((p) => {
      const m = med(k, p);
      const s = skopeoOf(k);
      return p !== 'skopeo' && m !== undefined && s
        ? `${stat(times.get(k)?.get(p))} ${ratio(m / s)}`
        : stat(times.get(k)?.get(p));
    }),
  ]);
  out.push('### Wall seconds: median (min–max), and ratio to skopeo copy', render(['case/phase', ...PEERS], rows), '');
  const sizeRows = [...sizes].map(([k, m]) => [k, ...PEERS.map((p) => bytes(m.get(p)))]);
  out.push('### Compressed bytes in the registry after the push', render(['case', ...PEERS], sizeRows), '');
  const targets: string[][] = [];
  for (const c of CASES)
    for (const ph of ['push', 'pull']) {
      const v = med(`${c}/${ph}`, 'vlab');
      const s = med(`${c}/${ph}`, 'skopeo');
      if (v !== undefined && s !== undefined)
        targets.push([
          `${c}/${ph} ≤ 1.0× skopeo`,
          `${ratio(v / s)} (${secs(v)}s vs ${secs(s)}s)`,
          v <= s ? 'met' : 'NOT MET',
        ]);
    }
  for (const c of CASES) {
    const v = med(`${c}/push again (verify)`, 'vlab');
    if (v !== undefined) targets.push([`${c}/push again < 0.1 s`, `${secs(v)}s`, v < 0.1 ? 'met' : 'NOT MET']);
  }
  out.push('### Targets (ours = vlab, the API)', render(['target', 'value', 'verdict'], targets), '');
  if (errors.length) out.push('### Errors', ...errors.map((e) => `- ${e}`), '');
  out.push(`total bench time ${((Date.now() - started) / 60000).toFixed(1)} min`);
  const text = out.join('\n');
  process.stdout.write(text + '\n');
  await fs.mkdir(dataDir, { recursive: true });
  await fs.writeFile(path.join(dataDir, 'registry-latest.md'), text + '\n');
}

await main();
