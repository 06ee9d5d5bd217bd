import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCredentials, parseChallenge, removeCredentials, storeCredentials } from './auth.ts';

describe('parseChallenge', () => {
  it.each([
    [
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"',
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example.com/token',
          service: 'registry.example.com',
          scope: 'repository:a/b:pull',
        },
      },
    ],
    ['Basic realm="vlab-test"', { scheme: 'basic', params: { realm: 'vlab-test' } }],
    ['bearer realm=http://x/t, service=s', { scheme: 'bearer', params: { realm: 'http://x/t', service: 's' } }],
    ['Bearer realm="a\\"b"', { scheme: 'bearer', params: { realm: 'a"b' } }],
  ])('%s', (header, want) => {
    expect(parseChallenge(header)).toEqual(want);
  });
  it('knows only Basic and Bearer', () => {
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});

describe("docker's config.json", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-auth-'));
  });
  afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

  it('reads auths by host (docker.io under its legacy key), keeps other fields when writing', async () => {
    const file = path.join(dir, 'config.json');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await fsp.writeFile(
      file,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:pw') },
          'https://r.example:5000': { auth: b64('u:p:x') },
        },
        psFormat: 'keep me',
      }),
    );
    await expect(getCredentials('docker.io', file)).resolves.toEqual({ username: 'hub', password: 'pw' });
    await expect(getCredentials('r.example:5000', file)).resolves.toEqual({ username: 'u', password: 'p:x' });
    await expect(getCredentials('other', file)).resolves.toBeUndefined();
    await storeCredentials('r.example:5000', { username: 'n', password: 'q' }, file);
    const cfg = JSON.parse(await fsp.readFile(file, 'utf8'));
    expect(cfg.psFormat).toBe('keep me');
    expect(Object.keys(cfg.auths).sort()).toEqual(['https://index.docker.io/v1/', 'r.example:5000']);
    expect(await removeCredentials('docker.io', file)).toBe(true);
    expect(await removeCredentials('docker.io', file)).toBe(false);
    await expect(getCredentials('r.example:5000', file)).resolves.toEqual({ username: 'n', password: 'q' });
  });

  it('a damaged config.json is E_AUTH_CONFIG, a missing one means no credentials', async () => {
    const bad = path.join(dir, 'bad.json');
    await fsp.writeFile(bad, '{not json');
    await expect(getCredentials('x', bad)).rejects.toMatchObject({ code: 'E_AUTH_CONFIG' });
    await expect(getCredentials('x', path.join(dir, 'absent.json'))).resolves.toBeUndefined();
  });

  it('asks an installed credential helper (docker-credential-NAME get), else falls back to auths', async () => {
    const bin = path.join(dir, 'bin');
    await fsp.mkdir(bin);
    const store = path.join(dir, 'helper-store');
    // a real helper program: get prints what store saved, keyed by nothing (one host)
    await fsp.writeFile(
      path.join(bin, 'docker-credential-vlabtest'),
      `#!/bin/sh\nin=$(cat)\ncase "$1" in\n get) [ -f ${store} ] && cat ${store} || { echo "credentials not found in native keychain"; exit 1; } ;;\n store) printf '%s' "$in" > ${store} ;;\n erase) rm -f ${store} ;;\nesac\n`,
      { mode: 0o755 },
    );
    const file = path.join(dir, 'helper.json');
    await fsp.writeFile(file, JSON.stringify({ credHelpers: { 'h:1': 'vlabtest', 'nohelper:1': 'notinstalled' } }));
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      await expect(getCredentials('h:1', file)).resolves.toBeUndefined();
      await expect(storeCredentials('h:1', { username: 'hu', password: 'hp' }, file)).resolves.toBe(
        'docker-credential-vlabtest',
      );
      await expect(getCredentials('h:1', file)).resolves.toEqual({ username: 'hu', password: 'hp' });
      // a helper that is not installed: the file is used
      await expect(storeCredentials('nohelper:1', { username: 'a', password: 'b' }, file)).resolves.toBe(file);
      await expect(getCredentials('nohelper:1', file)).resolves.toEqual({ username: 'a', password: 'b' });
      expect(await removeCredentials('h:1', file)).toBe(true);
      await expect(getCredentials('h:1', file)).resolves.toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
  });
});
