/** `vbuild pull|push|login|logout`: flags to options, events to the progress renderer; the work is in registry/. */
import { VlabError } from '@vlab/errors';
import { defaultStoreRoot, login, logout, pull, push, type RegistryOptions } from '../index.ts';
import { callerGone } from './client.ts';
import type { Command } from './images.ts';
import { type Flag, type Values, intFlag, str } from './flags.ts';
import { createRenderer, type ProgressMode } from './progress.ts';

export const TLS_FLAGS: Record<string, Flag> = {
  'tls-verify': {
    type: 'boolean',
    help: 'require https and verify certificates (default true; =false also allows plain http)',
  },
  'tls-ca': { type: 'string', arg: 'FILE', help: 'PEM file of CA certificates to trust for the registry' },
  'cert-dir': {
    type: 'string',
    arg: 'DIR',
    help: 'certs.d-style directory (DIR/HOST:PORT/ca.crt; default /etc/containers/certs.d, /etc/docker/certs.d)',
  },
  authfile: {
    type: 'string',
    arg: 'FILE',
    help: 'docker config.json with credentials (default $DOCKER_CONFIG/config.json)',
  },
};

const TRANSFER_FLAGS: Record<string, Flag> = {
  ...TLS_FLAGS,
  quiet: { type: 'boolean', short: 'q', help: 'print only the result' },
  progress: { type: 'string', arg: 'auto|tty|plain|json', help: 'progress output (default auto)' },
  parallel: { type: 'string', arg: 'N', help: 'layers transferred at once (default 3)' },
};

export function registryOptions(v: Values): RegistryOptions {
  return {
    tlsVerify: v['tls-verify'] !== false,
    tlsCa: str(v['tls-ca']),
    certDirs: str(v['cert-dir']) ? [str(v['cert-dir'])!] : undefined,
    authFile: str(v.authfile),
  };
}

function renderer(v: Values) {
  const mode = ((v.quiet ? 'quiet' : str(v.progress)) ?? 'auto') as ProgressMode;
  if (!['auto', 'tty', 'plain', 'json', 'quiet'].includes(mode))
    throw new VlabError('E_BAD_ARG', `--progress must be auto, tty, plain or json`);
  return createRenderer(mode);
}

function usage(c: Command): never {
  throw new VlabError('E_BAD_ARG', `usage: vbuild ${c.spec.name} ${c.spec.usage}\nSee 'vbuild ${c.spec.name} --help'.`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks)
    .toString()
    .replace(/\r?\n$/, '');
}

export const REGISTRY_COMMANDS: Record<string, Command> = {
  pull: {
    spec: {
      name: 'pull',
      usage: 'NAME[:TAG|@DIGEST]',
      summary: 'Download an image from a registry',
      flags: {
        ...TRANSFER_FLAGS,
        platform: { type: 'string', arg: 'OS/ARCH[/VARIANT]', help: 'platform to pick from a multi-platform image' },
      },
    },
    async run(v, pos) {
      if (pos.length !== 1) usage(this);
      const r = await pull(pos[0]!, {
        ...registryOptions(v),
        root: str(v.root) ?? defaultStoreRoot(),
        platform: str(v.platform),
        parallel: intFlag(v.parallel, 'parallel'),
        onProgress: renderer(v),
        signal: callerGone(), // as push: a pull for a client that is gone stops
      });
      if (!v.quiet) process.stdout.write(`Digest: ${r.resolvedDigest}\n`);
      process.stdout.write(`${r.ref}\n`);
      return 0;
    },
  },
  push: {
    spec: {
      name: 'push',
      usage: 'NAME[:TAG] [DEST]',
      summary: 'Upload an image to a registry (DEST: another name, default NAME)',
      flags: {
        ...TRANSFER_FLAGS,
        compression: { type: 'string', arg: 'gzip|zstd', help: 'layer compression (default gzip)' },
        'compression-level': {
          type: 'string',
          arg: 'N',
          help: 'gzip 0-9 (default 1, the fastest), zstd 1-22 (default 3)',
        },
        digestfile: { type: 'string', arg: 'FILE', help: 'write the pushed manifest digest to FILE' },
        'force-recursive': {
          type: 'boolean',
          help: 'check every blob even when the registry has this manifest already (repairs deleted blobs)',
        },
      },
    },
    async run(v, pos) {
      if (pos.length < 1 || pos.length > 2) usage(this);
      const r = await push(pos[0]!, pos[1], {
        ...registryOptions(v),
        root: str(v.root) ?? defaultStoreRoot(),
        compression: str(v.compression) as 'gzip' | 'zstd' | undefined,
        compressionLevel: intFlag(v['compression-level'], 'compression-level'),
        parallel: intFlag(v.parallel, 'parallel'),
        forceRecursive: v['force-recursive'] === true,
        onProgress: renderer(v),
        // through the warm server: a push for a client that is gone stops (a direct CLI dies)
        signal: callerGone(),
      });
      if (str(v.digestfile)) {
        const { writeFile } = await import('node:fs/promises');
        await writeFile(str(v.digestfile)!, r.digest);
      }
      process.stdout.write(v.quiet ? `${r.digest}\n` : `${r.ref}: digest: ${r.digest} size: ${r.size}\n`);
      return 0;
    },
  },
  login: {
    spec: {
      name: 'login',
      usage: '[OPTIONS] [SERVER]',
      summary: "Log in to a registry (saved in docker's config.json)",
      flags: {
        ...TLS_FLAGS,
        username: { type: 'string', short: 'u', arg: 'NAME', help: 'user name' },
        password: { type: 'string', short: 'p', arg: 'PASSWORD', help: 'password (prefer --password-stdin)' },
        'password-stdin': { type: 'boolean', help: 'read the password from stdin' },
      },
    },
    async run(v, pos) {
      if (pos.length > 1) usage(this);
      const username = str(v.username);
      let password = str(v.password);
      if (v['password-stdin']) {
        if (password) throw new VlabError('E_BAD_ARG', '--password and --password-stdin are mutually exclusive');
        password = await readStdin();
      }
      if (!username || !password)
        throw new VlabError('E_BAD_ARG', 'login needs --username and --password-stdin (or --password)');
      const r = await login(pos[0], { username, password }, registryOptions(v));
      process.stdout.write(`Login Succeeded (credentials saved in ${r.savedIn})\n`);
      return 0;
    },
  },
  logout: {
    spec: {
      name: 'logout',
      usage: '[SERVER]',
      summary: 'Forget the saved credentials of a registry',
      flags: { authfile: TLS_FLAGS.authfile! },
    },
    async run(v, pos) {
      if (pos.length > 1) usage(this);
      const host = pos[0] ?? 'docker.io';
      const removed = await logout(host, { authFile: str(v.authfile) });
      process.stdout.write(removed ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`);
      return 0;
    },
  },
};
