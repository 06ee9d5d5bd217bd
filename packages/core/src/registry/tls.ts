/**
 * TLS towards a registry, as skopeo and podman behave: https always, certificates verified against
 * the system roots plus `--tls-ca` and the `certs.d` directory of the host
 * (`<certDir>/<host:port>/*.crt`, client `*.cert`/`*.key`; default /etc/containers/certs.d, then
 * /etc/docker/certs.d). Plain http only for a loopback host or with `--tls-verify=false` (which
 * also stops verifying): then a failed TLS handshake falls back to http.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { VlabError } from '@vlab/errors';
import { isLoopback } from './reference.ts';

export interface TlsOptions {
  /** Verify certificates (default true); false also allows plain http. */
  tlsVerify?: boolean;
  /** A PEM file of CA certificates to trust beside the system's. */
  tlsCa?: string;
  /** certs.d-style directories to look in (default /etc/containers/certs.d, /etc/docker/certs.d). */
  certDirs?: string[];
}

export interface HostTls {
  /** Whether plain http may be tried when the TLS handshake fails. */
  allowHttp: boolean;
  verify: boolean;
  ca?: string[];
  cert?: string;
  key?: string;
}

export const DEFAULT_CERT_DIRS = ['/etc/containers/certs.d', '/etc/docker/certs.d'];
const MAX_PEM = 1 << 20;

async function readPem(file: string): Promise<string> {
  const st = await fsp.stat(file).catch((e: unknown) => {
    throw new VlabError('E_BAD_ARG', `cannot read CA/certificate file ${file}: ${(e as Error).message}`);
  });
  if (!st.isFile() || st.size > MAX_PEM)
    throw new VlabError('E_BAD_ARG', `${file} is not a PEM file (not a regular file, or over 1 MiB)`);
  return fsp.readFile(file, 'utf8');
}

/** The TLS settings for one registry host. */
export async function hostTls(domain: string, opts: TlsOptions): Promise<HostTls> {
  const verify = opts.tlsVerify !== false;
  const extra: string[] = [];
  if (opts.tlsCa) extra.push(await readPem(opts.tlsCa));
  let cert: string | undefined;
  let key: string | undefined;
  for (const root of opts.certDirs ?? DEFAULT_CERT_DIRS) {
    const dir = path.join(root, domain.replace(/\//g, '_'));
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    for (const n of names.sort()) {
      if (n.endsWith('.crt')) extra.push(await readPem(path.join(dir, n)));
      else if (n.endsWith('.cert')) cert = await readPem(path.join(dir, n));
      else if (n.endsWith('.key')) key = await readPem(path.join(dir, n));
    }
    if (names.length) break; // the first directory that has the host wins, as containers/image does
  }
  return {
    allowHttp: !verify || isLoopback(domain),
    verify,
    ca: extra.length ? [...tls.rootCertificates, ...extra] : undefined,
    cert,
    key,
  };
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A certificate the client refused (not a server that speaks no TLS). */
export function isCertError(e: unknown): boolean {
  return TLS_CODES.has((e as NodeJS.ErrnoException)?.code ?? '');
}

/** The server answered the TLS hello with something else (plain http, usually). */
export function isNotTls(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException;
  return (
    err?.code === 'EPROTO' ||
    err?.code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    /wrong version number|packet length too long|http request/i.test(err?.message ?? '')
  );
}
