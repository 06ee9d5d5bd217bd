/**
 * Credentials as docker keeps them: `$DOCKER_CONFIG/config.json` (else ~/.docker/config.json),
 * `auths[host].auth` (base64 user:password), and `credHelpers[host]` / `credsStore` run as
 * `docker-credential-NAME get|store|erase` where installed (else the file is used). Plus the
 * parser of `WWW-Authenticate` challenges (Basic, Bearer realm/service/scope).
 */
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { DEFAULT_DOMAIN } from './reference.ts';

export interface Credentials {
  username: string;
  password: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

const MAX_CONFIG = 4 << 20;
/** The key docker uses for Docker Hub in config.json. */
const HUB_KEY = 'https://index.docker.io/v1/';

export function defaultAuthFile(): string {
  const dir = process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

async function readConfig(file: string): Promise<DockerConfig> {
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (st.size > MAX_CONFIG) throw new VlabError('E_AUTH_CONFIG', `${file} is over 4 MiB: not a docker config`);
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    if (e instanceof VlabError) throw e;
    throw new VlabError('E_AUTH_CONFIG', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const c = JSON.parse(text) as DockerConfig;
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error('not an object');
    return c;
  } catch (e) {
    throw new VlabError('E_AUTH_CONFIG', `${file} is not valid JSON (${(e as Error).message}): fix or remove it`);
  }
}

/** The host part of a config.json key (`https://host/v1/` → `host`). */
function keyHost(key: string): string {
  const k = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return k === 'index.docker.io' || k === 'registry-1.docker.io' ? DEFAULT_DOMAIN : k;
}

function helperFor(cfg: DockerConfig, domain: string): string | undefined {
  const h = cfg.credHelpers?.[domain] ?? (domain === DEFAULT_DOMAIN ? cfg.credHelpers?.[HUB_KEY] : undefined);
  return h ?? cfg.credsStore;
}

/** Run a credential helper; undefined when it is not installed or knows no such host. */
function runHelper(name: string, verb: 'get' | 'store' | 'erase', input: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      `docker-credential-${name}`,
      [verb],
      { timeout: 10_000, maxBuffer: 1 << 16 },
      (err, stdout) => {
        if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') return resolve(undefined);
        if (err) {
          if (verb === 'get' && /not found/i.test(stdout)) return resolve(undefined);
          return reject(
            new VlabError(
              'E_AUTH_CONFIG',
              `credential helper docker-credential-${name} ${verb} failed: ${err.message}`,
            ),
          );
        }
        resolve(stdout);
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

const serverUrl = (domain: string) => (domain === DEFAULT_DOMAIN ? HUB_KEY : domain);

/** Credentials for `domain`, read fresh each call (a 401 retry sees a login made meanwhile). */
export async function getCredentials(domain: string, file = defaultAuthFile()): Promise<Credentials | undefined> {
  const cfg = await readConfig(file);
  const helper = helperFor(cfg, domain);
  if (helper) {
    const out = await runHelper(helper, 'get', serverUrl(domain));
    if (out) {
      const j = JSON.parse(out) as { Username?: string; Secret?: string };
      if (j.Username && j.Secret) return { username: j.Username, password: j.Secret };
    }
  }
  for (const [key, entry] of Object.entries(cfg.auths ?? {})) {
    if (keyHost(key) !== domain || !entry?.auth) continue;
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0) throw new VlabError('E_AUTH_CONFIG', `${file}: auths["${key}"].auth is not base64 of user:password`);
    return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  return undefined;
}

async function writeConfig(file: string, cfg: DockerConfig): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, `${JSON.stringify(cfg, null, '\t')}\n`, { mode: 0o600 });
  await fsp.rename(tmp, file);
}

/** Save credentials for `domain` (helper where configured and installed, else config.json). */
export async function storeCredentials(domain: string, c: Credentials, file = defaultAuthFile()): Promise<string> {
  const cfg = await readConfig(file);
  const helper = helperFor(cfg, domain);
  const input = JSON.stringify({ ServerURL: serverUrl(domain), Username: c.username, Secret: c.password });
  if (helper && (await runHelper(helper, 'store', input)) !== undefined) return `docker-credential-${helper}`;
  const auths = { ...cfg.auths };
  for (const k of Object.keys(auths)) if (keyHost(k) === domain) delete auths[k];
  auths[serverUrl(domain)] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
  await writeConfig(file, { ...cfg, auths });
  return file;
}

/** Forget credentials for `domain`; false when there were none. */
export async function removeCredentials(domain: string, file = defaultAuthFile()): Promise<boolean> {
  const cfg = await readConfig(file);
  const helper = helperFor(cfg, domain);
  let found = false;
  if (helper) found = (await runHelper(helper, 'erase', serverUrl(domain)).catch(() => undefined)) !== undefined;
  const auths = { ...cfg.auths };
  for (const k of Object.keys(auths))
    if (keyHost(k) === domain) {
      delete auths[k];
      found = true;
    }
  if (found && cfg.auths) await writeConfig(file, { ...cfg, auths });
  return found;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parse `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (or Basic). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header ?? '');
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2]!;
  for (let p = re.exec(rest); p; p = re.exec(rest))
    params[p[1]!.toLowerCase()] = p[2]?.replace(/\\(.)/g, '$1') ?? p[3]!;
  return { scheme, params };
}
