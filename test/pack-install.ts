/**
 * The packages as npm users get them (used by test/package.test.ts and bench/start.ts): every
 * workspace package built and `pnpm pack`ed, the tarballs installed with npm into a fresh project
 * outside the workspace (dependencies from the npm cache; the registry only when the cache lacks
 * one). Children run as a user's shell would: without the workspace's `source` condition.
 */
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
export const repo = path.resolve(import.meta.dirname, '..');
const PACKAGES = ['errors', 'dockerfile', 'overlay', 'core'];

/** The environment of a user's shell: no NODE_OPTIONS (the workspace's `--conditions=source`). */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

export const runAsUser = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  exec(cmd, args, { cwd, env: userEnv(env), maxBuffer: 16 << 20 });

/** Build and `pnpm pack` every package into `tmp/tarballs`: package name → tarball. */
export async function packAll(tmp: string): Promise<Record<string, string>> {
  await runAsUser('pnpm', ['-r', '--sort', 'run', 'build'], repo);
  const tarballs = path.join(tmp, 'tarballs');
  const tgz: Record<string, string> = {};
  for (const p of PACKAGES) {
    const { stdout } = await runAsUser(
      'pnpm',
      ['pack', '--pack-destination', tarballs],
      path.join(repo, 'packages', p),
    );
    const name = JSON.parse(await fsp.readFile(path.join(repo, 'packages', p, 'package.json'), 'utf8')).name;
    tgz[name] = path.join(tarballs, path.basename(stdout.trim().split('\n').pop()!));
  }
  return tgz;
}

/**
 * A fresh npm project at `app` with the tarballs installed. `ignoreScripts`: no postinstall (as
 * pnpm 10 installs a dependency whose build it was not told to allow): no native helpers.
 */
export async function installInto(app: string, tgz: Record<string, string>, opts: { ignoreScripts?: boolean } = {}) {
  await fsp.mkdir(app, { recursive: true });
  const deps = Object.fromEntries(Object.entries(tgz).map(([n, f]) => [n, `file:${f}`]));
  await fsp.writeFile(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'app', type: 'module', dependencies: deps }),
  );
  const npmFlags = [
    'install',
    '--no-audit',
    '--no-fund',
    '--loglevel=error',
    ...(opts.ignoreScripts ? ['--ignore-scripts'] : []),
  ];
  // Offline from the npm cache when it has every dependency; else npm may reach the registry.
  await runAsUser('npm', [...npmFlags, '--offline'], app).catch(() =>
    runAsUser('npm', [...npmFlags, '--prefer-offline'], app),
  );
}

/** packAll, then installInto `tmp/app`; the app dir. */
export async function packAndInstall(tmp: string): Promise<string> {
  const app = path.join(tmp, 'app');
  await installInto(app, await packAll(tmp));
  return app;
}
