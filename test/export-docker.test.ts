/**
 * Docker (Debian's dockerd 20.10, one private daemon for this file: docker-daemon.ts): vbuild's
 * docker-archive loads with `docker load` and runs (`docker run --network none IMG cat /file`);
 * its layout is what uDocker's loader walks (repositories → top layer → json.parent chain, VERSION
 * 1.0 and layer.tar per dir); and the reverse: a `docker save` of an image dockerd built loads
 * into vbuild and a vbuild build goes on FROM it.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, freshStore, makeContext, removeStore } from './helpers.ts';
import { runCli, skipReason, tempDir } from './export-helpers.ts';
import { dockerdMissing, startDockerd, type Dockerd } from './docker-daemon.ts';

const skip = skipReason(dockerdMissing(), 'Docker export');

let root: string;
let out: string;
let dockerd: Dockerd | undefined;
let startError: string | undefined;

const DOCKERFILE = [
  'FROM busybox',
  'RUN echo "written by the Dockerfile" > /file',
  // two RUNs that change nothing: two equal empty layers, at two positions
  'RUN true',
  'RUN true',
  'CMD ["cat", "/file"]',
  '',
].join('\n');

beforeAll(async () => {
  if (skip) return;
  [root, out, dockerd] = await Promise.all([
    freshStore(),
    tempDir('vlab-docker-'),
    startDockerd().catch((e: Error) => {
      startError = e.message;
      return undefined;
    }),
  ]);
  const ctx = await makeContext({ Dockerfile: DOCKERFILE });
  const b = await runCli(root, ['build', '-q', '-t', 'vimg:1', '--output', `type=docker,dest=${out}/built.tar`, ctx]);
  await exec('rm', ['-rf', ctx]);
  if (b.code !== 0) throw new Error(b.stderr);
}, 90_000);
afterAll(async () => {
  if (skip) return;
  await dockerd?.stop();
  await removeStore(root);
  await exec('rm', ['-rf', out]);
}, 30_000);

/** dockerd for a test, or the logged reason it is not there (the test is then a failure, not a pass). */
function daemon(): Dockerd {
  if (!dockerd) throw new Error(`dockerd could not be started: ${startError}`);
  return dockerd;
}

/** Python's str(json.loads(text)) for a number, as uDocker compares the VERSION file: "1.0" stays "1.0", "1" is "1". */
function pyStr(text: string): string {
  const v = JSON.parse(text) as unknown;
  if (typeof v !== 'number') return String(v);
  return /[.eE]/.test(text) && Number.isInteger(v) ? `${v}.0` : String(v);
}

/**
 * The image as uDocker's DockerLocalFileAPI.load reads an extracted docker save: 64-hex layer dirs
 * (VERSION, json, layer.tar), the top one from `repositories`, then the json `parent` chain down.
 * Returns the layer dirs bottom first, or throws where uDocker would fail.
 */
function udockerLayers(dir: string, repo: string, tag: string): string[] {
  const layers = new Map<string, { version: string; json: { id: string; parent?: string }; layer: string }>();
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name.length !== 64 || !fs.statSync(p).isDirectory()) continue;
    layers.set(name, {
      version: pyStr(fs.readFileSync(path.join(p, 'VERSION'), 'utf8')),
      json: JSON.parse(fs.readFileSync(path.join(p, 'json'), 'utf8')) as { id: string; parent?: string },
      layer: path.join(p, 'layer.tar'),
    });
  }
  const repositories = JSON.parse(fs.readFileSync(path.join(dir, 'repositories'), 'utf8')) as Record<
    string,
    Record<string, string>
  >;
  const chain: string[] = [];
  for (let id: string | undefined = repositories[repo]![tag]; id;) {
    const l = layers.get(id);
    if (!l) throw new Error(`uDocker: layer ${id} missing`);
    if (l.version !== '1.0') throw new Error(`uDocker: layer version unknown in ${id}`);
    if (l.json.id !== id) throw new Error(`json id ${l.json.id} is not its dir ${id}`);
    if (!fs.lstatSync(l.layer).isFile()) throw new Error(`uDocker: ${id}/layer.tar is not a file`);
    chain.unshift(id);
    id = l.json.parent;
  }
  return chain;
}

describe.skipIf(skip)('Docker', () => {
  it('docker load of vbuild save and of build --output type=docker; docker run prints the file', async () => {
    const d = daemon();
    const saved = path.join(out, 'saved.tar');
    expect((await runCli(root, ['save', '-o', saved, 'vimg:1'])).code).toBe(0);
    expect((await d.docker(['load', '-i', saved])).stdout).toContain('Loaded image: vimg:1');
    expect((await d.docker(['run', '--rm', '--network', 'none', 'vimg:1', 'cat', '/file'])).stdout).toBe(
      'written by the Dockerfile\n',
    );
    expect((await d.docker(['run', '--rm', '--network', 'none', 'vimg:1'])).stdout).toBe('written by the Dockerfile\n');
    // same image from the build's own output, under the same name: docker sees the same id
    const id = (await d.docker(['image', 'inspect', '-f', '{{.Id}}', 'vimg:1'])).stdout.trim();
    await d.docker(['rmi', 'vimg:1']);
    await d.docker(['load', '-i', path.join(out, 'built.tar')]);
    expect((await d.docker(['image', 'inspect', '-f', '{{.Id}}', 'vimg:1'])).stdout.trim()).toBe(id);
    expect((await d.docker(['history', '-q', 'vimg:1'])).stdout.trim().split('\n').length).toBeGreaterThanOrEqual(4);
  });

  it("the layout is what uDocker's loader walks: repositories → top dir → json.parent chain = manifest.json's Layers", async () => {
    const x = path.join(out, 'x');
    await fsp.mkdir(x);
    await exec('tar', ['-xf', path.join(out, 'built.tar'), '-C', x]);
    const manifest = JSON.parse(await fsp.readFile(path.join(x, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    const chain = udockerLayers(x, 'vimg', '1');
    expect(chain.map((id) => `${id}/layer.tar`)).toEqual(manifest[0]!.Layers);
    expect(chain.length).toBe(4); // base, RUN echo, and the two empty layers in dirs of their own
    expect(new Set(chain).size).toBe(4);
  });

  it('a docker save of an image dockerd built loads into vbuild, and vbuild builds FROM it', async () => {
    const d = daemon();
    const dctx = await makeContext({ Dockerfile: 'FROM vimg:1\nRUN echo from-docker > /d.txt && rm /file\n' });
    await d.docker(['build', '--network', 'none', '-t', 'dbuilt:1', dctx]);
    const archive = path.join(out, 'docker-saved.tar');
    await d.docker(['save', '-o', archive, 'dbuilt:1']);
    const load = await runCli(root, ['load', '-i', archive, 'dbuilt:1']);
    expect(load.code, load.stderr).toBe(0);
    const ctx = await makeContext({ Dockerfile: 'FROM dbuilt:1\nRUN cat /d.txt > /again.txt && test ! -e /file\n' });
    const b = await runCli(root, ['build', '-q', '-t', 'onmoby:1', ctx]);
    expect(b.code, b.stderr).toBe(0);
    const dir = path.join(out, 'onmoby');
    expect((await runCli(root, ['save', '--format', 'rootfs-dir', '-o', dir, 'onmoby:1'])).code).toBe(0);
    expect(await fsp.readFile(path.join(dir, 'again.txt'), 'utf8')).toBe('from-docker\n');
    expect(fs.existsSync(path.join(dir, 'file'))).toBe(false);
    await exec('rm', ['-rf', dctx, ctx]);
  });
});
