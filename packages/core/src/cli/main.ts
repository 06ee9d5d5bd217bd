import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { build, openEngine } from '../api.ts';
import { importRootfs } from '../image/import.ts';
import { loadArchive } from '../image/load.ts';
import { layersOf } from '../solve/base.ts';
import { exportImage, parseOutput } from '../export/export.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import { Store } from '../store/store.ts';
import { prune } from '../store/gc.ts';
import { fsck } from '../store/fsck.ts';
import { intFlag, keyValues, parseFlags } from './args.ts';
import type { Entitlement } from '../solve/entitlements.ts';
import { createRenderer, type ProgressMode } from './progress.ts';

const USAGE = `vbuild — build OCI images from Dockerfiles

Usage:
  vbuild [build] [-f Dockerfile] [-t name[:tag]]... [--build-arg K=V]... [--target S]
                 [--no-cache] [--no-cache-filter S] [--progress auto|tty|plain|json]
                 [--output type=oci|docker,dest=PATH] [--network none|host] [--secret id=I,src=F]
                 [--allow network.host|security.insecure]... [--build-context NAME=VALUE]...
                 [--memory 512m] [--cpu-quota US] [--cpu-period US] [--pids-limit N] CONTEXT
      --allow            let RUN --network=host (network.host) in the Dockerfile; BuildKit's entitlements
      --build-context    NAME=docker-image://REF | oci-layout://DIR[:TAG] | oci-archive:FILE[:TAG] |
                         docker-archive:FILE | DIR: what FROM NAME and COPY --from=NAME use
      --pids-limit       processes per RUN (default 2048; -1: unlimited)
  vbuild import ROOTFS.tar NAME[:TAG]      make a one-layer base image from a rootfs tarball
  vbuild images                            list images in the store
  vbuild tag SOURCE TARGET                 add a name to an image
  vbuild rmi NAME                          remove a name
  vbuild save -o FILE [--format oci|docker] NAME
  vbuild load -i FILE [NAME[:TAG]]         load a docker-archive or OCI archive (docker save / skopeo copy)
  vbuild inspect NAME                      print the image config
  vbuild prune [--all]                     delete blobs and snapshots no tag (or, without --all, no cache entry) reaches
  vbuild fsck [--repair]                   check every blob, reference, snapshot and cache record, and find what dead
                                           builds left; exit 1 with one line per problem (--repair: remove what is safe)

Store: $VLAB_ROOT, else /var/lib/vlab as root (--root overrides).`;

const ROOT_FLAG = { root: { type: 'string' as const } };

function openStore(flags: Record<string, unknown>): Promise<Store> {
  return Store.open((flags.root as string) ?? defaultStoreRoot());
}

async function mustResolve(store: Store, ref: string | undefined) {
  const img = await store.resolve(ref ?? '');
  if (!img) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${ref ?? '(none given)'}`);
  return img;
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const known = ['build', 'import', 'load', 'prune', 'fsck', 'images', 'tag', 'rmi', 'save', 'inspect', 'help', '--help', '-h'];
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return cmd ? 0 : 1;
  }
  const rest = known.includes(cmd) ? argv.slice(1) : argv;
  switch (known.includes(cmd) ? cmd : 'build') {
    case 'build':
      return cmdBuild(rest);
    case 'import': {
      const { flags, positional } = parseFlags(rest, ROOT_FLAG);
      if (positional.length !== 2) throw new VlabError('E_BAD_ARG', 'usage: vbuild import ROOTFS.tar NAME[:TAG]');
      const engine = await openEngine((flags.root as string) ?? defaultStoreRoot());
      const img = await importRootfs(engine.store, positional[0]!, positional[1]!);
      // Unpack now, as docker load/import do, so the first build does not pay for it.
      await engine.layers.ensureSnapshot(layersOf(img));
      process.stdout.write(`${img.configDigest}\n`);
      return 0;
    }
    case 'images': {
      const { flags } = parseFlags(rest, ROOT_FLAG);
      const store = await openStore(flags);
      process.stdout.write(`${'REPOSITORY:TAG'.padEnd(40)} IMAGE ID       SIZE\n`);
      for (const { ref } of await store.listImages()) {
        const img = (await store.resolve(ref))!;
        const size = img.manifest.layers.reduce((n, l) => n + l.size, 0);
        process.stdout.write(`${ref.padEnd(40)} ${img.configDigest.slice(7, 19)}   ${(size / 1e6).toFixed(1)}MB\n`);
      }
      return 0;
    }
    case 'tag': {
      const { flags, positional } = parseFlags(rest, ROOT_FLAG);
      const store = await openStore(flags);
      const img = await mustResolve(store, positional[0]);
      await store.tag(positional[1] ?? '', img.manifestDigest);
      return 0;
    }
    case 'rmi': {
      const { flags, positional } = parseFlags(rest, ROOT_FLAG);
      const store = await openStore(flags);
      for (const ref of positional) {
        if (!(await store.untag(ref))) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${ref}`);
        process.stdout.write(`Untagged: ${ref}\n`);
      }
      return 0;
    }
    case 'load': {
      const { flags, positional } = parseFlags(rest, { ...ROOT_FLAG, input: { alias: 'i', type: 'string' } });
      if (!flags.input) throw new VlabError('E_BAD_ARG', 'usage: vbuild load -i FILE [NAME[:TAG]]');
      const engine = await openEngine((flags.root as string) ?? defaultStoreRoot());
      const img = await loadArchive(engine.store, flags.input as string);
      await engine.layers.ensureSnapshot(layersOf(img));
      const name = positional[0];
      if (name) await engine.store.tag(name, img.manifestDigest);
      process.stdout.write(`Loaded image ${name ?? img.manifestDigest} (${img.configDigest})\n`);
      return 0;
    }
    case 'prune': {
      const { flags } = parseFlags(rest, { ...ROOT_FLAG, all: { alias: 'a', type: 'boolean' } });
      const engine = await openEngine((flags.root as string) ?? defaultStoreRoot());
      const r = await prune(engine.store, engine.cache, engine.snapshots, { all: Boolean(flags.all) });
      process.stdout.write(`Deleted ${r.blobsRemoved} blobs, ${r.snapshotsRemoved} snapshots, ${r.cacheRecordsRemoved} cache records; reclaimed ${(r.bytesFreed / 1e6).toFixed(1)}MB\n`);
      return 0;
    }
    case 'fsck':
      return cmdFsck(rest);
    case 'inspect': {
      const { flags, positional } = parseFlags(rest, ROOT_FLAG);
      const store = await openStore(flags);
      const img = await mustResolve(store, positional[0]);
      process.stdout.write(`${JSON.stringify({ Id: img.configDigest, Digest: img.manifestDigest, ...img.config }, null, 2)}\n`);
      return 0;
    }
    case 'save': {
      const { flags, positional } = parseFlags(rest, { ...ROOT_FLAG, output: { alias: 'o', type: 'string' }, format: { type: 'string' } });
      const store = await openStore(flags);
      const img = await mustResolve(store, positional[0]);
      if (!flags.output) throw new VlabError('E_BAD_ARG', 'save needs -o FILE');
      await exportImage(store, img, { type: flags.format === 'oci' ? 'oci' : 'docker', dest: flags.output as string }, positional[0]);
      return 0;
    }
  }
  return 1;
}

/** `vbuild fsck [--repair]`: one line per problem, `<kind> <target>: <message>`; exit 1 unless clean. */
async function cmdFsck(argv: string[]): Promise<number> {
  const { flags } = parseFlags(argv, { ...ROOT_FLAG, repair: { type: 'boolean' } });
  const report = await fsck((flags.root as string) ?? defaultStoreRoot(), { repair: Boolean(flags.repair) });
  for (const p of report.repaired) process.stdout.write(`repaired ${p.kind} ${p.target}: ${p.message}\n`);
  for (const p of report.problems) process.stdout.write(`${p.kind} ${p.target}: ${p.message}${p.repairable ? '' : ' (not repairable)'}\n`);
  const n = report.problems.length;
  process.stderr.write(n ? `fsck: ${n} problem${n > 1 ? 's' : ''}${flags.repair ? ' left' : ''}\n` : `fsck: clean${report.repaired.length ? ` (${report.repaired.length} repaired)` : ''}\n`);
  return n ? 1 : 0;
}

async function cmdBuild(argv: string[]): Promise<number> {
  const { flags, positional } = parseFlags(argv, {
    file: { alias: 'f', type: 'string' },
    tag: { alias: 't', type: 'array' },
    'build-arg': { type: 'array' },
    target: { type: 'string' },
    'no-cache': { type: 'boolean' },
    'no-cache-filter': { type: 'array' },
    progress: { type: 'string' },
    output: { alias: 'o', type: 'array' },
    network: { type: 'string' },
    secret: { type: 'array' },
    allow: { type: 'array' },
    'build-context': { type: 'array' },
    memory: { alias: 'm', type: 'string' },
    'cpu-quota': { type: 'string' },
    'cpu-period': { type: 'string' },
    'pids-limit': { type: 'string' },
    root: { type: 'string' },
    quiet: { alias: 'q', type: 'boolean' },
  });
  if (positional.length !== 1) throw new VlabError('E_BAD_ARG', `"vbuild build" requires exactly 1 argument (the context)\n\n${USAGE}`);
  const progress = ((flags.quiet ? 'quiet' : flags.progress) ?? 'auto') as ProgressMode;
  if (!['auto', 'tty', 'plain', 'json', 'quiet'].includes(progress)) throw new VlabError('E_BAD_ARG', `--progress must be auto, tty, plain or json`);
  const network = flags.network as string | undefined;
  if (network !== undefined && network !== 'none' && network !== 'host') throw new VlabError('E_BAD_ARG', '--network must be none or host');
  const secrets: Record<string, string> = {};
  for (const s of (flags.secret as string[]) ?? []) {
    const kv = keyValues(s.split(','));
    if (!kv.id || !(kv.src || kv.source)) throw new VlabError('E_BAD_ARG', `--secret ${s}: expected id=ID,src=FILE`);
    secrets[kv.id] = path.resolve(kv.src ?? kv.source!);
  }
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  const res = await build({
    context: positional[0]!,
    dockerfile: flags.file as string | undefined,
    tags: flags.tag as string[] | undefined,
    buildArgs: keyValues(flags['build-arg'] as string[] | undefined),
    target: flags.target as string | undefined,
    noCache: Boolean(flags['no-cache']),
    noCacheFilter: flags['no-cache-filter'] as string[] | undefined,
    output: ((flags.output as string[]) ?? []).map(parseOutput),
    network: network as 'none' | 'host' | undefined,
    allow: flags.allow as Entitlement[] | undefined,
    buildContexts: buildContexts(flags['build-context'] as string[] | undefined),
    memory: flags.memory as string | undefined,
    cpuQuota: intFlag(flags['cpu-quota'], 'cpu-quota'),
    cpuPeriod: intFlag(flags['cpu-period'], 'cpu-period'),
    pidsLimit: intFlag(flags['pids-limit'], 'pids-limit'),
    secrets,
    root: flags.root as string | undefined,
    signal: ac.signal,
    onEvent: createRenderer(progress),
  });
  if (progress === 'quiet') process.stdout.write(`${res.imageId}\n`);
  return 0;
}

/** `--build-context NAME=VALUE`, repeatable (the value may hold '=' itself). */
function buildContexts(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw new VlabError('E_BAD_ARG', `--build-context ${item}: expected NAME=VALUE (e.g. base=oci-layout:///path/to/layout:tag)`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

// If the event loop empties while a command is still pending, a promise was never settled: say
// so instead of exiting 0 as if it had worked.
let finished = false;
process.on('beforeExit', () => {
  if (!finished) {
    process.stderr.write('ERROR: internal error: the command stopped before finishing [E_INTERNAL]\n');
    process.exit(70);
  }
});

main(process.argv.slice(2)).then(
  (code) => {
    finished = true;
    process.exit(code);
  },
  (e: unknown) => {
    finished = true;
    if (e instanceof VlabError) {
      const loc = e.location ? `${e.location.file ?? 'Dockerfile'}:${e.location.line}:${e.location.column}: ` : '';
      process.stderr.write(`ERROR: ${loc}${e.message} [${e.code}]\n`);
    } else {
      process.stderr.write(`ERROR: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    }
    process.exit(1);
  },
);
