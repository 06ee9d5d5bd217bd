/**
 * Manifests from a registry: fetched with the media types this client reads (OCI manifest and
 * index, Docker v2 schema 2 and manifest list), bounded to 4 MiB, checked against the digest they
 * were asked by, then schema-checked (image/validate.ts). Anything else is E_UNSUPPORTED.
 */
import { VlabError } from '@vlab/errors';
import { MEDIA, type ImageIndex, type Manifest } from '../image/types.ts';
import { MAX_JSON_BYTES, parseDocument } from '../image/validate.ts';
import { sha256 } from '../store/blobs.ts';
import { discard, readBody, withRetry } from './http.ts';
import { registryError, type RegistryClient, type RegistryOptions } from './client.ts';
import type { Reference } from './reference.ts';

export const MANIFEST_TYPES: string[] = [MEDIA.manifest, MEDIA.dockerManifest];
export const INDEX_TYPES: string[] = [MEDIA.index, MEDIA.dockerManifestList];
const ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ');

export type Fetched =
  | { kind: 'index'; digest: string; mediaType: string; bytes: Buffer; index: ImageIndex }
  | { kind: 'manifest'; digest: string; mediaType: string; bytes: Buffer; manifest: Manifest };

/** GET a manifest by tag or digest (`reference`) of `repo`. */
export async function fetchManifest(
  client: RegistryClient,
  repo: string,
  reference: string,
  scope: string[],
): Promise<Fetched> {
  const where = `${client.domain}/${repo}@${reference}`;
  const { bytes, contentType } = await withRetry(
    async () => {
      const res = await client.fetch({
        method: 'GET',
        url: `/v2/${repo}/manifests/${reference}`,
        headers: { accept: ACCEPT },
        scope,
      });
      if (res.status !== 200) throw await registryError(res, `manifest ${where}`);
      const body = await readBody(res, MAX_JSON_BYTES, `manifest ${where}`);
      return {
        bytes: body,
        contentType: String(res.headers['content-type'] ?? '')
          .split(';')[0]!
          .trim(),
      };
    },
    { retries: client.opts.retries, signal: client.opts.signal },
  );
  const digest = sha256(bytes);
  if (reference.includes(':') && reference !== digest)
    throw new VlabError(
      'E_DIGEST_MISMATCH',
      `manifest ${where}: the registry sent content with digest ${digest}: refused (corrupt or tampered with)`,
    );
  let declared: string | undefined;
  try {
    declared = (JSON.parse(bytes.toString()) as { mediaType?: unknown }).mediaType as string | undefined;
  } catch {
    throw new VlabError('E_BAD_MANIFEST', `manifest ${where} is not JSON`);
  }
  const mediaType = typeof declared === 'string' && declared ? declared : contentType;
  if (INDEX_TYPES.includes(mediaType)) {
    const index = await parseDocument('index', bytes, `manifest ${where}`, 'E_BAD_MANIFEST');
    return { kind: 'index', digest, mediaType, bytes, index };
  }
  if (MANIFEST_TYPES.includes(mediaType)) {
    const manifest = await parseDocument('manifest', bytes, `manifest ${where}`, 'E_BAD_MANIFEST');
    return { kind: 'manifest', digest, mediaType, bytes, manifest };
  }
  throw new VlabError(
    'E_UNSUPPORTED',
    `manifest ${where} has media type "${mediaType || '(none)'}": only OCI and Docker v2 schema 2 images and indexes are supported`,
  );
}

/**
 * PUT a manifest (image or artifact) under the reference's tag or digest, retried on 5xx and
 * resets; the registry must answer 201 and, when it says a digest, the digest of these bytes.
 */
export async function putManifest(
  client: RegistryClient,
  ref: Reference,
  bytes: Buffer,
  scope: string[],
  what: string,
  opts: Pick<RegistryOptions, 'retries' | 'signal'>,
): Promise<void> {
  const digest = sha256(bytes);
  await withRetry(
    async () => {
      const res = await client.fetch({
        method: 'PUT',
        url: `/v2/${ref.path}/manifests/${ref.digest ?? ref.tag}`,
        headers: { 'content-type': MEDIA.manifest },
        body: bytes,
        scope,
      });
      discard(res);
      if (res.status !== 201) throw await registryError(res, what);
      const said = res.headers['docker-content-digest'];
      if (said && said !== digest)
        throw new VlabError('E_REGISTRY', `${what}: the registry stored digest ${String(said)}, not ${digest}`);
    },
    { retries: opts.retries, signal: opts.signal },
  );
}
