/**
 * Debian's docker-registry on 127.0.0.1 for the distribution tests: a config yaml and storage in
 * a temp dir, a free port, optionally htpasswd basic auth (htpasswd from apache2-utils) and TLS
 * from a CA the test makes (openssl). Stopped by pid.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto, { createHash } from 'node:crypto';
import http from 'node:http';
import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REGISTRY_BIN = '/usr/bin/docker-registry';

/** Why the registry tests cannot run here, or undefined when they can. */
export function registryMissing(): string | undefined {
  for (const [bin, pkg] of [
    [REGISTRY_BIN, 'docker-registry'],
    ['/usr/bin/skopeo', 'skopeo'],
    ['/usr/bin/htpasswd', 'apache2-utils'],
    ['/usr/bin/openssl', 'openssl'],
  ])
    if (!existsSync(bin)) return `${bin} is not installed (Debian package ${pkg}; scripts/setup.sh installs it)`;
  return undefined;
}

export interface TestRegistry {
  host: string;
  dir: string;
  /** PEM of the CA that signed the registry's certificate (with tls). */
  caFile?: string;
  user?: { username: string; password: string };
  /** A second htpasswd user (with auth: true). */
  user2?: { username: string; password: string };
  /** The token server (with token: true), and the scopes it was asked for. */
  tokens?: Awaited<ReturnType<typeof startTokenServer>>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A self-signed P-256 certificate valid for 2 days (the test CA, the token issuer). */
async function selfSigned(cn: string, key: string, crt: string): Promise<void> {
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
    '-keyout',
    key,
    '-out',
    crt,
  ]);
}

async function makeCa(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string) => path.join(dir, n);
  await selfSigned('vlab test CA', f('ca.key'), f('ca.crt'));
  await run('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
  ]);
  await fsp.writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
    '-out',
    f('server.crt'),
  ]);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

export async function startRegistry(
  opts: { auth?: boolean; tls?: boolean; token?: boolean } = {},
): Promise<TestRegistry> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${dir}/data`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
  ];
  let caFile: string | undefined;
  if (opts.tls) {
    const pki = await makeCa(dir);
    caFile = pki.ca;
    lines.push('  tls:', `    certificate: ${pki.cert}`, `    key: ${pki.key}`);
  }
  let user: TestRegistry['user'];
  let user2: TestRegistry['user2'];
  if (opts.auth) {
    user = { username: 'tester', password: 'pw-' + Math.random().toString(36).slice(2) };
    user2 = { username: 'tester2', password: 'pw-' + Math.random().toString(36).slice(2) };
    await run('htpasswd', ['-Bbc', path.join(dir, 'htpasswd'), user.username, user.password]);
    await run('htpasswd', ['-Bb', path.join(dir, 'htpasswd'), user2.username, user2.password]);
    lines.push('auth:', '  htpasswd:', '    realm: vlab-test', `    path: ${dir}/htpasswd`);
  }
  let tokens: TestRegistry['tokens'];
  if (opts.token) {
    user = { username: 'tester', password: 'pw-' + Math.random().toString(36).slice(2) };
    tokens = await startTokenServer(dir, user);
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${tokens.realm}`,
      '    service: vlab-test',
      '    issuer: vlab-issuer',
      `    rootcertbundle: ${tokens.cert}`,
    );
  }
  await fsp.writeFile(path.join(dir, 'config.yml'), lines.join('\n') + '\n');
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', path.join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
    await tokens?.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  };
  // ready once the port accepts connections
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host, dir, caFile, user, user2, tokens, stop };
}

const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * An OCI layout whose one entry (tag `tag`) is an image index of two single-layer images, for
 * linux/amd64 and linux/arm64 (each layer holds /platform with its name): what `skopeo copy --all`
 * pushes as a multi-platform image.
 */
export async function writeMultiPlatformLayout(dir: string, tag: string): Promise<Record<string, string>> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await fsp.mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    await fsp.writeFile(path.join(blobs, hex(b)), b);
    return { digest: `sha256:${hex(b)}`, size: b.length };
  };
  const manifests = [];
  const configs: Record<string, string> = {};
  for (const architecture of ['amd64', 'arm64']) {
    const tar = await tarOf({ platform: `linux/${architecture}\n` });
    const layer = await put(tar);
    const config = Buffer.from(
      JSON.stringify({ architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.digest] } }),
    );
    const c = await put(config);
    configs[architecture] = c.digest;
    const m = await put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...c },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
        }),
      ),
    );
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...m,
      platform: { architecture, os: 'linux' },
    });
  }
  const index = await put(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })),
  );
  await fsp.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fsp.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          ...index,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return configs;
}

/** A plain tar of files (GNU tar, fixed owner and mtime). */
export async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const src = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-tar-'));
  try {
    for (const [n, c] of Object.entries(files)) await fsp.writeFile(path.join(src, n), c);
    const { stdout } = await run(
      'tar',
      ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', src, '-cf', '-', '.'],
      { encoding: 'buffer', maxBuffer: 64 << 20 },
    );
    return stdout;
  } finally {
    await fsp.rm(src, { recursive: true, force: true });
  }
}

/**
 * docker's token protocol for a registry started with `token: true`: a token server on 127.0.0.1
 * that signs JWTs (ES256, the signing cert in the x5c header) with the key whose cert the registry
 * trusts. Anonymous requests get pull access only; the fixture user gets pull and push.
 */
export async function startTokenServer(dir: string, user: { username: string; password: string }) {
  const f = (n: string) => path.join(dir, n);
  await selfSigned('vlab token issuer', f('token.key'), f('token.crt'));
  const key = crypto.createPrivateKey(await fsp.readFile(f('token.key')));
  const der = new crypto.X509Certificate(await fsp.readFile(f('token.crt'))).raw.toString('base64');
  const b64 = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString('base64url');
  const requests: { scope: string[]; user?: string }[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const auth = req.headers.authorization?.replace(/^Basic /, '');
    const who = auth ? Buffer.from(auth, 'base64').toString() : undefined;
    if (who !== undefined && who !== `${user.username}:${user.password}`) {
      res.writeHead(401).end();
      return;
    }
    const scope = url.searchParams.getAll('scope');
    requests.push({ scope, user: who && user.username });
    const access = scope.map((s) => {
      const [type, name, actions] = s.split(':') as [string, string, string];
      const allowed = actions.split(',').filter((a) => a === 'pull' || who !== undefined);
      return { type, name, actions: allowed };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64({ alg: 'ES256', typ: 'JWT', x5c: [der] });
    const claims = b64({
      iss: 'vlab-issuer',
      sub: who ? user.username : '',
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    });
    const sig = crypto.sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${header}.${claims}.${b64(sig)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const realm = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
  return {
    realm,
    cert: f('token.crt'),
    requests,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
