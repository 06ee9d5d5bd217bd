/**
 * Credentials and TLS against docker-registry on 127.0.0.1: htpasswd basic auth (401 without
 * credentials, login/logout in docker's config.json), and TLS from a CA the test makes (refused
 * without it; --tls-ca, a certs.d directory, or --tls-verify=false).
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, pull, push } from '@vlab/image';
import { exec, freshStore, removeStore, repo } from './helpers.ts';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { startProxy } from './registry-proxy.ts';

const missing = registryMissing();
if (missing) console.warn(`registry auth/TLS tests skipped: ${missing}`);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

describe.skipIf(missing)('registry auth and TLS', () => {
  let basic: TestRegistry;
  let tls: TestRegistry;
  let bearer: TestRegistry;
  let root: string;
  let tmp: string;
  const dockerConfig = () => path.join(tmp, 'docker');
  const cli = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = exec('node', [vbuild, ...args], {
        env: { ...process.env, VLAB_ROOT: root, DOCKER_CONFIG: dockerConfig() },
      });
      child.then(
        (r) => resolve({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => resolve(e),
      );
      if (input !== undefined) child.child.stdin?.end(input);
    });

  beforeAll(async () => {
    [basic, tls, bearer, root, tmp] = await Promise.all([
      startRegistry({ auth: true }),
      startRegistry({ tls: true }),
      startRegistry({ token: true }),
      freshStore(),
      fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-reg-auth-')),
    ]);
  });
  afterAll(async () => {
    await basic?.stop();
    await tls?.stop();
    await bearer?.stop();
    if (root) await removeStore(root);
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('basic auth: 401 without credentials; login, push, pull; logout', async () => {
    const ref = `${basic.host}/secure/bb:1`;
    const denied = await cli(['push', 'busybox:latest', ref]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/authentication required.*vbuild login.*\[E_REGISTRY_AUTH\]/);

    const authFile = path.join(dockerConfig(), 'config.json');
    await expect(
      login(basic.host, { username: basic.user!.username, password: 'nope' }, { authFile }),
    ).rejects.toMatchObject({
      code: 'E_REGISTRY_AUTH',
      message: expect.stringContaining('refused'),
    });
    await expect(fsp.access(path.join(dockerConfig(), 'config.json'))).rejects.toThrow();

    const ok = await cli(['login', '-u', basic.user!.username, '--password-stdin', basic.host], basic.user!.password);
    expect(ok.stdout).toContain('Login Succeeded');
    const cfg = JSON.parse(await fsp.readFile(path.join(dockerConfig(), 'config.json'), 'utf8'));
    expect(Buffer.from(cfg.auths[basic.host].auth, 'base64').toString()).toBe(
      `${basic.user!.username}:${basic.user!.password}`,
    );
    expect((await fsp.stat(path.join(dockerConfig(), 'config.json'))).mode & 0o777).toBe(0o600);

    await push('busybox:latest', ref, { root, authFile });
    const pulled = await pull(ref, { root, authFile });
    expect(pulled.remoteDigest).toMatch(/^sha256:/);

    const out = await cli(['logout', basic.host]);
    expect(out.stdout).toContain(`Removing login credentials for ${basic.host}`);
    const after = JSON.parse(await fsp.readFile(authFile, 'utf8'));
    expect(after.auths[basic.host]).toBeUndefined();
    await expect(pull(ref, { root, authFile })).rejects.toMatchObject({ code: 'E_REGISTRY_AUTH' });
  });

  it('TLS: refused without the CA; trusted with --tls-ca or certs.d; --tls-verify=false skips the check', async () => {
    const ref = `${tls.host}/tls/bb:1`;
    const refused = await cli(['push', 'busybox:latest', ref]);
    expect(refused.stderr).toMatch(/certificate.*--tls-ca.*\[E_REGISTRY_TLS\]/);
    const withCa = await cli(['push', '--tls-ca', tls.caFile!, 'busybox:latest', ref]);
    expect(withCa.code, withCa.stderr).toBe(0);

    const certs = path.join(tmp, 'certs.d');
    await fsp.mkdir(path.join(certs, tls.host), { recursive: true });
    await fsp.copyFile(tls.caFile!, path.join(certs, tls.host, 'ca.crt'));
    const r = await pull(ref, { root, certDirs: [certs] });
    expect(r.manifest.layers.length).toBe(1);
    await expect(pull(ref, { root, certDirs: [path.join(tmp, 'empty')] })).rejects.toMatchObject({
      code: 'E_REGISTRY_TLS',
    });
    await expect(push('busybox:latest', ref, { root, tlsVerify: false })).resolves.toMatchObject({
      digest: r.remoteDigest,
    });
  });

  it('bearer tokens: realm, service and scope from the challenge; anonymous pull; push needs a login', async () => {
    const ref = `${bearer.host}/tok/bb:1`;
    const authFile = path.join(tmp, 'bearer.json');
    await expect(push('busybox:latest', ref, { root, authFile })).rejects.toMatchObject({ code: 'E_REGISTRY_AUTH' });
    const creds = bearer.user!;
    await login(bearer.host, creds, { authFile });
    const pushed = await push('busybox:latest', ref, { root, authFile });
    const asked = bearer.tokens!.requests.filter((r) => r.user);
    expect(asked.some((r) => r.scope.includes('repository:tok/bb:pull,push'))).toBe(true);
    // anonymous: a pull-only token
    const other = await fsp.mkdtemp(path.join(tmp, 'anon-'));
    const pulled = await pull(ref, { root: other, authFile: path.join(tmp, 'none.json') });
    expect(pulled.remoteDigest).toBe(pushed.digest);
    expect(bearer.tokens!.requests.some((r) => !r.user && r.scope.includes('repository:tok/bb:pull'))).toBe(true);
  });

  it('a 401 is answered once: with credentials read afresh and a fresh token; a second 401 is E_REGISTRY_AUTH', async () => {
    const b64 = (u: { username: string; password: string }) =>
      Buffer.from(`${u.username}:${u.password}`).toString('base64');
    const basicProxy = await startProxy(basic.host);
    const bearerProxy = await startProxy(bearer.host);
    try {
      // basic: a request's credentials are refused (the proxy strips them: as if the password
      // changed); meanwhile another login is saved; the one retry carries it, read afresh
      await push('busybox:latest', `${basic.host}/retry/bb:1`, { root, credentials: basic.user });
      const authFile = path.join(tmp, 'retry.json');
      const save = (u: { username: string; password: string }) =>
        fsp.writeFile(authFile, JSON.stringify({ auths: { [basicProxy.host]: { auth: b64(u) } } }));
      await save(basic.user!);
      const first = await fsp.mkdtemp(path.join(tmp, 'retry-'));
      basicProxy.onUnauthorized = () => (basicProxy.stripped ? save(basic.user2!) : undefined);
      // the manifest goes through (after the first challenge), the config's request is refused
      [basicProxy.passAuthorized, basicProxy.rejectAuthorized] = [1, 1];
      await pull(`${basicProxy.host}/retry/bb:1`, { root: first, authFile });
      expect(basicProxy.stripped).toBe(1);
      const users = basicProxy.authorizations.map((a) => Buffer.from(a.slice(6), 'base64').toString().split(':')[0]);
      expect(users[0]).toBe(basic.user!.username);
      expect(users.at(-1)).toBe(basic.user2!.username);

      // bearer: the token the client holds is refused once: it asks the token server again
      const creds = bearer.user!;
      const bearerFile = path.join(tmp, 'retry-bearer.json');
      await fsp.writeFile(bearerFile, JSON.stringify({ auths: { [bearerProxy.host]: { auth: b64(creds) } } }));
      await push('busybox:latest', `${bearer.host}/retry/bb:1`, { root, credentials: creds });
      const asked = bearer.tokens!.requests.length;
      [bearerProxy.passAuthorized, bearerProxy.rejectAuthorized] = [1, 1];
      const second = await fsp.mkdtemp(path.join(tmp, 'retry-'));
      await pull(`${bearerProxy.host}/retry/bb:1`, { root: second, authFile: bearerFile });
      expect(bearerProxy.stripped).toBe(1);
      // one token for the first challenge, one fresh after the refused request
      expect(bearer.tokens!.requests.length - asked).toBe(2);

      // refused every time: one retry, then a clear error (no loop)
      [bearerProxy.passAuthorized, bearerProxy.rejectAuthorized] = [1, 100];
      const third = await fsp.mkdtemp(path.join(tmp, 'retry-'));
      await expect(pull(`${bearerProxy.host}/retry/bb:1`, { root: third, authFile: bearerFile })).rejects.toMatchObject(
        {
          code: 'E_REGISTRY_AUTH',
          message: expect.stringContaining('credentials were refused'),
        },
      );
      expect(bearerProxy.stripped).toBe(3);
    } finally {
      await basicProxy.stop();
      await bearerProxy.stop();
    }
  });
});
