/**
 * A client of one registry host (OCI distribution spec): every request carries the right
 * authorization (Basic, or a Bearer token fetched from the challenge's realm for the request's
 * scope, anonymous when there are no credentials); a 401 is answered once with fresh credentials
 * and a fresh token, then is E_REGISTRY_AUTH. Error documents become VlabErrors with a code.
 */
import { VlabError } from '@vlab/errors';
import { getCredentials, parseChallenge, type Challenge, type Credentials } from './auth.ts';
import { HostConnection, discard, readBody, type HttpRequest, type HttpResponse } from './http.ts';
import type { RawTarget } from './raw-get.ts';
import { apiHost } from './reference.ts';
import { hostTls, type TlsOptions } from './tls.ts';

export interface RegistryOptions extends TlsOptions {
  /** docker config.json to read credentials from (default $DOCKER_CONFIG/config.json). */
  authFile?: string;
  /** Credentials to use instead of the config file's (login). */
  credentials?: Credentials;
  /** Idle timeout of one request, ms (default 30 s). */
  timeoutMs?: number;
  /** Retries of a failed transfer (default 3). */
  retries?: number;
  signal?: AbortSignal;
}

const MAX_TOKEN = 1 << 20;
const MAX_ERROR_BODY = 64 << 10;

export class RegistryClient {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, { token: string; until: number }>();
  private readonly realms = new Map<string, HostConnection>();

  private constructor(
    readonly domain: string,
    private readonly conn: HostConnection,
    readonly opts: RegistryOptions,
  ) {}

  static async open(domain: string, opts: RegistryOptions = {}): Promise<RegistryClient> {
    const host = apiHost(domain);
    return new RegistryClient(domain, new HostConnection(host, await hostTls(host, opts), opts.timeoutMs), opts);
  }

  /** A request for `scope` (`repository:NAME:pull[,push]`, or '' for /v2/). */
  async fetch(req: HttpRequest & { scope: string[] }): Promise<HttpResponse> {
    // credentials go to this registry only, never to a host it redirects to
    const foreign = /^https?:\/\//.test(req.url) && new URL(req.url).host !== this.conn.domain;
    const send = async (fresh: boolean) => {
      const auth = foreign ? {} : await this.authorization(req.scope, fresh);
      return this.conn.request({
        ...req,
        signal: req.signal ?? this.opts.signal,
        headers: { ...req.headers, ...auth },
      });
    };
    let res = await send(false);
    if (res.status !== 401 || foreign) return res;
    const challenge = parseChallenge(res.headers['www-authenticate'] as string | undefined);
    discard(res);
    if (!challenge) throw this.authError('it asks for authentication of a kind this client does not know');
    this.challenge = challenge;
    res = await send(true);
    if (res.status === 401) {
      discard(res);
      const creds = await this.credentials();
      throw this.authError(creds ? 'the credentials were refused' : 'authentication required');
    }
    return res;
  }

  /** A raw GET (raw-get.ts) of `path` on this registry with its authorization for `scope`; undefined before the scheme is known. */
  async rawTarget(path: string, scope: string[]): Promise<RawTarget | undefined> {
    const base = this.conn.target(path);
    if (!base) return undefined;
    return { ...base, headers: await this.authorization(scope, false), signal: this.opts.signal };
  }

  private authError(why: string): VlabError {
    return new VlabError(
      'E_REGISTRY_AUTH',
      `registry ${this.domain}: ${why}: log in with "vbuild login ${this.domain}" (credentials are read from docker's config.json)`,
    );
  }

  private credentials(): Promise<Credentials | undefined> {
    return this.opts.credentials
      ? Promise.resolve(this.opts.credentials)
      : getCredentials(this.domain, this.opts.authFile);
  }

  private async authorization(scope: string[], fresh: boolean): Promise<Record<string, string>> {
    const c = this.challenge;
    if (!c) return {};
    if (c.scheme === 'basic') {
      const creds = await this.credentials();
      return creds ? { authorization: basic(creds) } : {};
    }
    const key = scope.join(' ');
    const cached = this.tokens.get(key);
    if (!fresh && cached && cached.until > Date.now()) return { authorization: `Bearer ${cached.token}` };
    const token = await this.fetchToken(c, scope);
    return { authorization: `Bearer ${token}` };
  }

  /** A Bearer token from the challenge's realm for `scope` (docker's token protocol; anonymous without credentials). */
  private async fetchToken(c: Challenge, scope: string[]): Promise<string> {
    const realm = c.params.realm;
    if (!realm) throw new VlabError('E_REGISTRY_AUTH', `registry ${this.domain}: Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new VlabError('E_REGISTRY_AUTH', `registry ${this.domain}: token realm "${realm}" is not a URL`);
    }
    if (c.params.service) url.searchParams.set('service', c.params.service);
    for (const s of scope.length ? scope : c.params.scope ? [c.params.scope] : []) url.searchParams.append('scope', s);
    const creds = await this.credentials();
    let conn = this.realms.get(url.host);
    if (!conn) {
      conn =
        url.host === this.conn.domain ? this.conn : new HostConnection(url.host, await hostTls(url.host, this.opts));
      this.realms.set(url.host, conn);
    }
    const res = await conn.request({
      method: 'GET',
      url: url.href,
      headers: creds ? { authorization: basic(creds) } : {},
      signal: this.opts.signal,
    });
    if (res.status === 401 || res.status === 403) {
      discard(res);
      throw this.authError(creds ? 'the token server refused the credentials' : 'authentication required');
    }
    if (res.status !== 200) throw await registryError(res, `token from ${url.host}`);
    const body = await readBody(res, MAX_TOKEN, 'token response');
    let token: string | undefined;
    let expires = 60;
    try {
      const j = JSON.parse(body.toString()) as { token?: string; access_token?: string; expires_in?: number };
      token = j.token ?? j.access_token;
      if (typeof j.expires_in === 'number') expires = j.expires_in;
    } catch {
      /* below */
    }
    if (!token) throw new VlabError('E_REGISTRY_AUTH', `token server ${url.host} sent no token`);
    this.tokens.set(scope.join(' '), { token, until: Date.now() + Math.max(expires - 10, 5) * 1000 });
    return token;
  }

  close(): void {
    this.conn.close();
    for (const c of this.realms.values()) if (c !== this.conn) c.close();
  }
}

const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

export const pullScope = (repo: string) => `repository:${repo}:pull`;
export const pushScope = (repo: string) => `repository:${repo}:pull,push`;

/** A registry's error answer as a VlabError (the OCI error document's first code and message). */
export async function registryError(res: HttpResponse, what: string): Promise<VlabError> {
  let detail = '';
  try {
    const body = await readBody(res, MAX_ERROR_BODY, 'error');
    const j = JSON.parse(body.toString()) as { errors?: { code?: string; message?: string }[] };
    const first = j.errors?.[0];
    if (first) detail = `${first.code ?? ''}${first.message ? `: ${first.message}` : ''}`;
  } catch {
    res.body.destroy();
  }
  const msg = `${what}: registry answered ${res.status}${detail ? ` (${detail})` : ''}`;
  if (res.status === 404) return new VlabError('E_IMAGE_NOT_FOUND', msg, { details: { status: 404 } });
  if (res.status === 401 || res.status === 403) return new VlabError('E_REGISTRY_AUTH', msg);
  const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
  return new VlabError('E_REGISTRY', msg, { details: { status: res.status, retryable } });
}
