/**
 * The packages as npm users get them: `pnpm pack` of each workspace package, the tarballs
 * installed with npm into a fresh project outside the workspace (dependencies from the npm cache;
 * the registry only when the cache lacks one), then plain Node 20 (no tsx, no source condition):
 * `import { build } from '@vlab/image'`, the installed `vbuild` bin, examples/embed, and `tsc`
 * of a TypeScript consumer against the shipped .d.ts.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildEvent } from '@vlab/image';
import { freshStore, removeStore, repo } from './helpers.ts';
import { installInto, packAll, runAsUser } from './pack-install.ts';

// Image timestamps from SOURCE_DATE_EPOCH, so builds in different stores give one digest.
const SDE = '1700000000';
const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  runAsUser(cmd, args, cwd, { SOURCE_DATE_EPOCH: SDE, ...env });

let tmp: string;
let app: string;
let tgz: Record<string, string>;
let ctx: string;
let expected: { digest: string; events: string[] };

/** Event types, with runs of step-log collapsed (how many lines a step logs is not the contract). */
const shape = (events: { type: string }[]) =>
  events.map((e) => e.type).filter((t, i, a) => t !== 'step-log' || a[i - 1] !== t);

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pack-'));
  ctx = path.join(tmp, 'ctx');
  await fsp.mkdir(ctx);
  await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nENV GREETING=hi\n');
  await fsp.writeFile(path.join(ctx, 'hello.txt'), 'hello from a packed install\n');
  // The same build from the workspace sources: the installed package must give the same image.
  process.env.SOURCE_DATE_EPOCH = SDE;
  const events: BuildEvent[] = [];
  const ws = await build({
    context: ctx,
    tags: ['pack:ws'],
    root: path.join(tmp, 'ws-store'),
    onEvent: (e) => events.push(e),
  });
  expected = { digest: ws.digest, events: shape(events) };

  tgz = await packAll(tmp);
  app = path.join(tmp, 'app');
  await installInto(app, tgz);
}, 300_000);

afterAll(async () => {
  // The installed bin's warm server (started by the bin test): stopped by its pid.
  const srv = tmp ? await fsp.readdir(path.join(tmp, 'srv')).catch(() => []) : [];
  for (const f of srv.filter((n) => n.endsWith('.pid'))) {
    const pid = Number(await fsp.readFile(path.join(tmp, 'srv', f), 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

describe('packed @vlab packages installed with npm', () => {
  it('ship dist/ and real versions, not sources or workspace: ranges', async () => {
    const pkg = JSON.parse(await fsp.readFile(path.join(app, 'node_modules/@vlab/image/package.json'), 'utf8'));
    expect(pkg.dependencies['@vlab/errors']).toBe(pkg.version);
    expect(pkg.dependencies.tsx).toBeUndefined();
    const installed = await fsp.readdir(path.join(app, 'node_modules/@vlab/image'));
    expect(installed).not.toContain('src');
    expect(installed).toContain('dist');
  });

  it('plain node imports @vlab/image and builds the same image as the workspace, with the same events', async () => {
    await fsp.writeFile(
      path.join(app, 'app.mjs'),
      `import { build, BUILD_EVENT_VERSION, ERROR_CODES, isVlabError } from '@vlab/image';
const events = [];
const r = await build({ context: process.argv[2], tags: ['pack:app'], root: process.argv[3], onEvent: (e) => events.push(e.type) });
let code;
try { await build({ context: process.argv[2] + '/none', root: process.argv[3] }); } catch (e) { code = isVlabError(e) && e.code; }
console.log(JSON.stringify({ digest: r.digest, events, version: BUILD_EVENT_VERSION, code, known: code in ERROR_CODES }));
`,
    );
    const { stdout } = await run('node', ['app.mjs', ctx, path.join(tmp, 'app-store')], app);
    const out = JSON.parse(stdout);
    expect(out.digest).toBe(expected.digest);
    expect(shape(out.events.map((type: string) => ({ type })))).toEqual(expected.events);
    expect(out.events[0]).toBe('build-start');
    expect(out.events.at(-1)).toBe('build-done');
    expect(out).toMatchObject({ version: 1, code: 'E_DOCKERFILE_NOT_FOUND', known: true });
  });

  it('the installed vbuild bin runs from the bundle and builds, direct and through its warm server', async () => {
    const vbuild = path.join(app, 'node_modules/.bin/vbuild');
    const srv = path.join(tmp, 'srv');
    await fsp.mkdir(srv, { mode: 0o700 });
    // The postinstall built the native client: the first command starts the server.
    expect(await fsp.readdir(path.join(app, 'node_modules/@vlab/image/native/bin'))).toContain('vbuild-client');
    const env = { VLAB_ROOT: path.join(tmp, 'cli-store'), VLAB_SERVER_DIR: srv };
    expect((await run(vbuild, ['--version'], app, env)).stdout).toMatch(/^vbuild version \d+\.\d+\.\d+/);
    for (let i = 0; i < 50 && !(await fsp.readdir(srv)).some((f) => f.endsWith('.pid')); i++)
      await new Promise((r) => setTimeout(r, 100));
    for (const tag of ['pack:cli', 'pack:cli2']) {
      const r = await run(vbuild, ['build', '--progress=json', '-t', tag, ctx], app, env);
      const lines = r.stderr
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.at(-1)).toMatchObject({ version: 1, type: 'build-done', digest: expected.digest });
    }
    const log = (await fsp.readdir(srv)).find((f) => f.endsWith('.log'))!;
    expect(await fsp.readFile(path.join(srv, log), 'utf8')).toMatch(/build: exit 0/);
  });

  it('examples/embed runs from the install with plain node', async () => {
    await fsp.copyFile(path.join(repo, 'examples/embed/embed.mjs'), path.join(app, 'embed.mjs'));
    const { stdout } = await run('node', ['embed.mjs', ctx, 'pack:embed'], app, {
      VLAB_ROOT: path.join(tmp, 'embed-store'),
    });
    expect(stdout).toContain(`[mytool] built pack:embed ${expected.digest}`);
  });

  it('a TypeScript consumer type-checks against the shipped .d.ts', { timeout: 180_000 }, async () => {
    await fsp.writeFile(
      path.join(app, 'consumer.ts'),
      `import { build, isVlabError, type BuildEvent, type ErrorCode } from '@vlab/image';
const log = (e: BuildEvent): void => { if (e.type === 'step-error') { const c: ErrorCode = e.code; console.log(c); } };
const ac = new AbortController();
build({ context: '.', onEvent: log, signal: ac.signal }).then((r) => console.log(r.digest.length), (e: unknown) => {
  if (isVlabError(e, 'E_PARSE')) console.log(e.location?.line);
});
`,
    );
    await fsp.writeFile(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          types: ['node'],
          typeRoots: [path.join(repo, 'node_modules/@types')],
        },
        files: ['consumer.ts', 'bad.ts'],
      }),
    );
    // One tsc run: consumer.ts must check clean, bad.ts must fail on its code that is no ErrorCode.
    await fsp.writeFile(
      path.join(app, 'bad.ts'),
      `import type { ErrorCode } from '@vlab/image';\nexport const c: ErrorCode = 'E_NOPE';\n`,
    );
    const tsc = path.join(repo, 'node_modules/typescript/bin/tsc');
    const r = await run('node', [tsc, '-p', 'tsconfig.json'], app).then(
      () => ({ stdout: 'no error' }),
      (e: { stdout: string }) => e,
    );
    const errors = r.stdout.split('\n').filter((l) => /error TS/.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^bad\.ts.*E_NOPE/);
  });

  it('installed without install scripts (pnpm 10 by default): no native helpers, and a RUN still builds', async () => {
    const bare = path.join(tmp, 'bare');
    await installInto(bare, tgz, { ignoreScripts: true });
    for (const d of ['image', 'overlay'])
      expect(await fsp.readdir(path.join(bare, 'node_modules/@vlab', d, 'native'))).not.toContain('bin');
    const store = await freshStore();
    try {
      const rctx = path.join(tmp, 'run-ctx');
      await fsp.mkdir(rctx);
      await fsp.writeFile(path.join(rctx, 'Dockerfile'), 'FROM busybox\nRUN echo fallback > /f && cat /f\n');
      const r = await run(path.join(bare, 'node_modules/.bin/vbuild'), ['build', '--progress=plain', rctx], bare, {
        VLAB_ROOT: store,
      });
      expect(r.stderr).toMatch(/^#\d+ fallback$/m);
    } finally {
      await removeStore(store);
    }
  });
});
