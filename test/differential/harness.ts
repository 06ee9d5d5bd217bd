/**
 * The differential suite's machinery: build one case with vbuild and with Debian's buildah from
 * the same busybox base, export both as OCI layouts, unpack both with `umoci raw unpack`, and list
 * what differs (rootfs entries and image config fields) as keyed records that the known-difference
 * table (known.ts) can match.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { build } from '@vlab/image';
import { exec, repo } from '../helpers.ts';

/** Fixed for both tools: vbuild clamps layer mtimes to it, buildah's --timestamp sets them to it. */
export const EPOCH = 1_700_000_000;
export const casesDir = path.join(repo, 'test/differential/cases');

/** The config fields compared, as BuildKit writes them into the image config's `config`. */
export const CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'Labels',
  'ExposedPorts',
  'Volumes',
  'StopSignal',
  'Healthcheck',
  'OnBuild',
  'Shell',
] as const;

export interface Scratch {
  dir: string;
  store: string;
  /** buildah's global flags: its own storage, runroot and registries. */
  buildah: string[];
  /** Accept-anything signature policy, per command (build, push, pull). */
  policy: string;
}

/** Why buildah cannot run here, or undefined when it can (probed with a real one-RUN build). */
export async function setUp(dir: string): Promise<{ scratch: Scratch; skip?: string }> {
  const store = path.join(dir, 'store');
  await exec('bash', [path.join(repo, 'examples/hello/make-base.sh')], {
    env: { ...process.env, VLAB_ROOT: store, SOURCE_DATE_EPOCH: '0' },
  });
  // Its own storage, runroot, registries and policy: nothing is looked up on a network.
  const policy = path.join(dir, 'policy.json');
  await fsp.writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const registries = path.join(dir, 'registries.conf');
  await fsp.writeFile(registries, 'unqualified-search-registries = []\n');
  const buildah = [
    '--root',
    path.join(dir, 'buildah/root'),
    '--runroot',
    path.join(dir, 'buildah/run'),
    '--storage-driver',
    'overlay',
    '--registries-conf',
    registries,
  ];
  const scratch: Scratch = { dir, store, buildah, policy };
  try {
    await exec('buildah', ['--version']);
  } catch (e) {
    return { scratch, skip: `buildah is not installed (apt-get install buildah): ${(e as Error).message}` };
  }
  try {
    await exec('buildah', [...buildah, 'pull', '--signature-policy', policy, '--quiet', `oci:${store}:busybox:latest`]);
    const { stdout } = await exec('buildah', [...buildah, 'images', '--quiet', '--noheading']);
    await exec('buildah', [...buildah, 'tag', stdout.trim().split('\n')[0]!, 'localhost/busybox:latest']);
    const probe = path.join(dir, 'probe');
    await fsp.mkdir(probe);
    await fsp.writeFile(path.join(probe, 'Dockerfile'), 'FROM busybox\nRUN echo ok > /ok\n');
    await buildahBuild(scratch, 'probe', probe, 'Dockerfile');
  } catch (e) {
    return { scratch, skip: `buildah cannot build here: ${(e as Error).message.slice(0, 600)}` };
  }
  return { scratch };
}

/** buildah's containers and any mount left under the scratch dir go before it is removed. */
export async function tearDown(scratch: Scratch): Promise<void> {
  await exec('buildah', [...scratch.buildah, 'rm', '--all']).catch(() => undefined);
  const mounts = (await fsp.readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && m.startsWith(`${scratch.dir}/`))
    .sort()
    .reverse();
  for (const m of mounts) await exec('umount', ['-l', m]).catch(() => undefined);
}

/** Copy a case into the scratch dir and run its prepare.sh there (git keeps no hard links, tars or modes). */
export async function prepareContext(scratch: Scratch, name: string): Promise<string> {
  const ctx = path.join(scratch.dir, 'ctx', name);
  await fsp.mkdir(path.dirname(ctx), { recursive: true });
  await exec('cp', ['-a', path.join(casesDir, name), ctx]);
  const prep = path.join(ctx, 'prepare.sh');
  if (await exists(prep)) {
    await exec('sh', ['-e', prep], { cwd: ctx });
    await fsp.rm(prep);
  }
  return ctx;
}

/** buildah's spelling of the case when it has one (e.g. no heredocs in buildah 1.28). */
export async function buildahDockerfile(ctx: string): Promise<string> {
  return (await exists(path.join(ctx, 'Dockerfile.buildah'))) ? 'Dockerfile.buildah' : 'Dockerfile';
}

/**
 * chroot isolation: oci isolation needs crun/runc, and Debian's crun refuses this machine's hybrid
 * cgroup layout; with runc it works but costs ~50% more per build. Docker format, because buildah
 * drops HEALTHCHECK, ONBUILD and SHELL from OCI-format configs (BuildKit keeps them in OCI configs).
 */
export async function buildahBuild(scratch: Scratch, name: string, ctx: string, dockerfile: string): Promise<string> {
  await exec(
    'buildah',
    [
      ...scratch.buildah,
      'build',
      '--signature-policy',
      scratch.policy,
      '--isolation',
      'chroot',
      '--pull=never',
      '--format',
      'docker',
      '--layers',
      '--identity-label=false',
      '--timestamp',
      String(EPOCH),
      '--quiet',
      '-t',
      `localhost/${name}:latest`,
      '-f',
      path.join(ctx, dockerfile),
      ctx,
    ],
    { maxBuffer: 1 << 24 },
  );
  const layout = path.join(scratch.dir, 'buildah-out', name);
  await fsp.mkdir(path.dirname(layout), { recursive: true });
  await exec('buildah', [
    ...scratch.buildah,
    'push',
    '--signature-policy',
    scratch.policy,
    '--quiet',
    `localhost/${name}:latest`,
    `oci:${layout}:${name}`,
  ]);
  return `${layout}:${name}`;
}

export async function vbuildBuild(scratch: Scratch, name: string, ctx: string): Promise<string> {
  await build({ context: ctx, tags: [`${name}:latest`], root: scratch.store, sourceDateEpoch: EPOCH });
  return `${scratch.store}:${name}:latest`;
}

export interface Entry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  target?: string;
  sha256?: string;
  /** The first path (in sorted order) of a hard-link group this entry belongs to. */
  link?: string;
  mtime: number;
}
export type Listing = Map<string, Entry>;

export interface Side {
  rootfs: Listing;
  config: Record<string, unknown>;
}

/** Unpack an image (`layout:ref`) with umoci; its config is read from the layout unless given. */
export async function readImage(image: string, into: string, config?: Record<string, unknown>): Promise<Side> {
  await fsp.mkdir(path.dirname(into), { recursive: true });
  await exec('umoci', ['raw', 'unpack', '--image', image, into]);
  const rootfs = await listTree(into);
  const [layout, ...ref] = image.split(':');
  return { rootfs, config: config ?? (await readConfig(layout!, ref.join(':'))) };
}

/**
 * buildah's docker-format config, as it would push it to a registry: its OCI export (the layout
 * umoci reads) drops Healthcheck, OnBuild and Shell, which BuildKit keeps in OCI configs too.
 */
export async function buildahConfig(scratch: Scratch, name: string): Promise<Record<string, unknown>> {
  const { stdout } = await exec(
    'buildah',
    [...scratch.buildah, 'inspect', '--type', 'image', `localhost/${name}:latest`],
    { maxBuffer: 1 << 24 },
  );
  return (JSON.parse(stdout) as { Docker: { config: Record<string, unknown> } }).Docker.config;
}

async function readConfig(layout: string, ref: string): Promise<Record<string, unknown>> {
  const blob = async (digest: string) =>
    JSON.parse(await fsp.readFile(path.join(layout, 'blobs', ...digest.split(':')), 'utf8'));
  const index = JSON.parse(await fsp.readFile(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
  if (!desc) throw new Error(`${ref} not in ${layout}/index.json`);
  const manifest = (await blob(desc.digest)) as { config: { digest: string } };
  return ((await blob(manifest.config.digest)) as { config?: Record<string, unknown> }).config ?? {};
}

const TYPES: [string, (s: import('node:fs').Stats) => boolean][] = [
  ['dir', (s) => s.isDirectory()],
  ['file', (s) => s.isFile()],
  ['symlink', (s) => s.isSymbolicLink()],
  ['fifo', (s) => s.isFIFO()],
  ['socket', (s) => s.isSocket()],
  ['chardev', (s) => s.isCharacterDevice()],
  ['blockdev', (s) => s.isBlockDevice()],
];

async function listTree(root: string): Promise<Listing> {
  const out: Listing = new Map();
  const inodes = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const p = rel ? `${rel}/${name}` : name;
      const abs = path.join(root, p);
      const st = await fsp.lstat(abs);
      const e: Entry = {
        type: TYPES.find(([, f]) => f(st))![0],
        mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isFile()) {
        e.size = st.size;
        e.sha256 = await sha256(abs);
        if (st.nlink > 1) {
          if (!inodes.has(st.ino)) inodes.set(st.ino, `/${p}`);
          e.link = inodes.get(st.ino);
        }
      }
      if (st.isSymbolicLink()) e.target = await fsp.readlink(abs);
      out.set(`/${p}`, e);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out;
}

/** One difference: `key` is what known.ts matches, e.g. `rootfs:/etc/x:uid` or `config:Env`. */
export interface Difference {
  key: string;
  vbuild: unknown;
  buildah: unknown;
}

export function compare(v: Side, b: Side): Difference[] {
  const diffs: Difference[] = [];
  const paths = [...new Set([...v.rootfs.keys(), ...b.rootfs.keys()])].sort();
  for (const p of paths) {
    const ve = v.rootfs.get(p);
    const be = b.rootfs.get(p);
    if (!ve || !be) {
      diffs.push({ key: `rootfs:${p}:exists`, vbuild: !!ve, buildah: !!be });
      continue;
    }
    for (const f of ['type', 'mode', 'uid', 'gid', 'size', 'target', 'sha256', 'link', 'mtime'] as const) {
      if (ve[f] !== be[f]) diffs.push({ key: `rootfs:${p}:${f}`, vbuild: ve[f], buildah: be[f] });
    }
  }
  for (const f of CONFIG_FIELDS) {
    const vv = normalize(v.config[f]);
    const bv = normalize(b.config[f]);
    if (JSON.stringify(vv) !== JSON.stringify(bv)) diffs.push({ key: `config:${f}`, vbuild: vv, buildah: bv });
  }
  return diffs;
}

/** Absent, null, '' and empty lists/maps mean the same to a runtime. */
function normalize(x: unknown): unknown {
  if (x === null || x === undefined || x === '') return undefined;
  if (Array.isArray(x)) return x.length ? x : undefined;
  if (typeof x === 'object') {
    const keys = Object.keys(x as object).sort();
    return keys.length ? Object.fromEntries(keys.map((k) => [k, (x as Record<string, unknown>)[k]])) : undefined;
  }
  return x;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex').slice(0, 16);
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}

/** At most `n` of the returned function's calls run at once. */
export function limiter(n: number): <T>(f: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async (f) => {
    while (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await f();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}
