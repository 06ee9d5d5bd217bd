/**
 * Untrusted JSON at the boundary: the image index, manifests, configs and `oci-layout` file of an
 * OCI archive or layout, and docker-archive's manifest.json, are parsed and checked against the
 * OCI image-spec JSON schemas (schemas/, shipped in the package) before any field is read. A bad
 * document gives E_BAD_ARCHIVE naming the field (a JSON pointer), never a TypeError later on.
 * The one import site of ajv (JSON-schema draft-04, as the OCI schemas are written).
 */
import type AjvModule from 'ajv-draft-04';
import { VlabError, type ErrorCode } from '@vlab/errors';
import configSchema from './schemas/config-schema.json' with { type: 'json' };
import contentDescriptor from './schemas/content-descriptor.json' with { type: 'json' };
import defsDescriptor from './schemas/defs-descriptor.json' with { type: 'json' };
import defs from './schemas/defs.json' with { type: 'json' };
import indexSchema from './schemas/image-index-schema.json' with { type: 'json' };
import layoutSchema from './schemas/image-layout-schema.json' with { type: 'json' };
import manifestSchema from './schemas/image-manifest-schema.json' with { type: 'json' };
import dockerManifestSchema from './schemas/docker-archive-manifest-schema.json' with { type: 'json' };
import buildCacheSchema from './schemas/vlab-build-cache-schema.json' with { type: 'json' };
import type { CacheConfig } from '../cache/format.ts';
import { withConfigDefaults, type Descriptor, type ImageConfig, type ImageIndex, type Manifest } from './types.ts';

/** The largest JSON document read from an archive, layout or registry (index, manifest, config). */
export const MAX_JSON_BYTES = 4 << 20;

/** One entry of docker-archive's manifest.json. */
export interface DockerArchiveImage {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
  Parent?: string;
}

export interface Documents {
  index: ImageIndex;
  manifest: Manifest;
  config: ImageConfig;
  layout: { imageLayoutVersion: string };
  descriptor: Descriptor;
  'docker-manifest': DockerArchiveImage[];
  'cache-config': CacheConfig;
}
export type DocumentKind = keyof Documents;

// File name of each kind's schema: the OCI schemas $ref each other by these names.
const SCHEMA_FILE: Record<DocumentKind, string> = {
  index: 'image-index-schema.json',
  manifest: 'image-manifest-schema.json',
  config: 'config-schema.json',
  layout: 'image-layout-schema.json',
  descriptor: 'content-descriptor.json',
  'docker-manifest': 'docker-archive-manifest-schema.json',
  'cache-config': 'vlab-build-cache-schema.json',
};
const BASE = 'https://opencontainers.org/schema/image/';

let ajv: InstanceType<typeof AjvModule.default> | undefined;

/**
 * One validator for all schemas, made on first use; each schema compiles once, when first needed.
 * ajv is imported here, not at the top: loading it costs ~0.1-0.4 s, which a build that reads no
 * archive must not pay at every CLI start.
 */
async function validator(kind: DocumentKind) {
  if (!ajv) {
    // CommonJS packages: module.exports is the class (and its own `.default`), whatever the interop.
    const Ajv = (await import('ajv-draft-04')).default.default;
    const addFormats = (await import('ajv-formats')).default.default;
    ajv = new Ajv({ allErrors: false, strict: false });
    addFormats(ajv, ['date-time', 'uri']);
    const files: Record<string, object> = {
      'config-schema.json': configSchema,
      'content-descriptor.json': contentDescriptor,
      'defs-descriptor.json': defsDescriptor,
      'defs.json': defs,
      'image-index-schema.json': indexSchema,
      'image-layout-schema.json': layoutSchema,
      'image-manifest-schema.json': manifestSchema,
      'docker-archive-manifest-schema.json': dockerManifestSchema,
      'vlab-build-cache-schema.json': buildCacheSchema,
    };
    // The schemas' nested `id`s move the base URL around, but image-spec's own validator resolves
    // every $ref by file name: drop the ids and register each file under one base to do the same.
    for (const [name, schema] of Object.entries(files)) ajv.addSchema(withoutIds(schema) as object, BASE + name);
  }
  return ajv.getSchema(BASE + SCHEMA_FILE[kind])!;
}

function withoutIds(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutIds);
  if (!v || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([k, x]) => !(k === 'id' && typeof x === 'string'))
      .map(([k, x]) => [k, withoutIds(x)]),
  );
}

function bad(code: ErrorCode, where: string, pointer: string, message: string): VlabError {
  return new VlabError(code, `${where}: field ${pointer || '/'} ${message}`, { details: { pointer } });
}

/**
 * Parse and validate one untrusted document. `where` names it in errors (a file in the archive, a
 * digest); `code` is the error code (E_BAD_ARCHIVE by default). Configs come back with the
 * optional `config` and `history` filled in, so later code may read them.
 */
export async function parseDocument<K extends DocumentKind>(
  kind: K,
  bytes: Buffer | string,
  where: string,
  code: ErrorCode = 'E_BAD_ARCHIVE',
): Promise<Documents[K]> {
  const size = Buffer.byteLength(bytes);
  if (size > MAX_JSON_BYTES)
    throw new VlabError(
      code,
      `${where}: ${size} bytes, over the ${MAX_JSON_BYTES >> 20} MiB limit for a JSON document`,
    );
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString());
  } catch (e) {
    throw new VlabError(code, `${where}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  const validate = await validator(kind);
  if (!validate(doc)) {
    const err = validate.errors!.find((x) => !emptyLayersAllowed(kind, x));
    if (err) {
      const missing =
        err.keyword === 'required' ? (err.params as { missingProperty: string }).missingProperty : undefined;
      throw missing !== undefined
        ? bad(code, where, `${err.instancePath}/${missing}`, 'is missing')
        : bad(code, where, err.instancePath, err.message ?? `fails ${err.keyword}`);
    }
  }
  beyondSchema(kind, doc, where, code);
  if (kind === 'config') return withConfigDefaults(doc as ImageConfig) as Documents[K];
  return doc as Documents[K];
}

// Docker and BuildKit write `"layers": []` for an image without a layer (FROM scratch + LABEL);
// the schema's minItems 1 would refuse our own saves of such images.
function emptyLayersAllowed(kind: DocumentKind, e: { instancePath: string; keyword: string }): boolean {
  return kind === 'manifest' && e.instancePath === '/layers' && e.keyword === 'minItems';
}

// Registered algorithms and the form of their encoded part (image-spec descriptor.md).
const DIGEST_FORM: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha384: /^[a-f0-9]{96}$/,
  sha512: /^[a-f0-9]{128}$/,
};
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** What the OCI reference validator checks beyond its schemas: digest forms, base64 data, Env entries. */
function beyondSchema(kind: DocumentKind, doc: unknown, where: string, code: ErrorCode): void {
  const d = doc as Record<string, unknown>;
  const descriptors: [string, Record<string, unknown>][] = [];
  const add = (p: string, v: unknown) =>
    v && typeof v === 'object' && descriptors.push([p, v as Record<string, unknown>]);
  if (kind === 'descriptor') add('', d);
  if (kind === 'manifest') {
    add('/config', d.config);
    add('/subject', d.subject);
    (d.layers as unknown[]).forEach((l, i) => add(`/layers/${i}`, l));
  }
  if (kind === 'index') {
    add('/subject', d.subject);
    (d.manifests as unknown[]).forEach((m, i) => add(`/manifests/${i}`, m));
  }
  for (const [p, desc] of descriptors) {
    checkDigest(desc.digest as string, where, `${p}/digest`, code);
    if (typeof desc.data === 'string' && !BASE64.test(desc.data))
      throw bad(code, where, `${p}/data`, 'must be padded base64');
  }
  if (kind === 'config') {
    const c = doc as ImageConfig;
    c.rootfs.diff_ids.forEach((id, i) => checkDigest(id, where, `/rootfs/diff_ids/${i}`, code));
    c.config?.Env?.forEach((e, i) => {
      if (!/^[^=]+=/.test(e)) throw bad(code, where, `/config/Env/${i}`, 'must look like NAME=value');
    });
  }
}

function checkDigest(digest: string, where: string, pointer: string, code: ErrorCode): void {
  const [alg, enc] = [digest.slice(0, digest.indexOf(':')), digest.slice(digest.indexOf(':') + 1)];
  const form = DIGEST_FORM[alg];
  if (form && !form.test(enc)) throw bad(code, where, pointer, `is not a valid ${alg} digest`);
}

/** The digests this builder can address content by (sha256): anything else is E_UNSUPPORTED. */
export function requireSha256(digest: string, where: string): `sha256:${string}` {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
    throw new VlabError(
      'E_UNSUPPORTED',
      `${where}: digest ${digest.slice(0, 80)} is not sha256 (the only algorithm this builder stores)`,
    );
  }
  return digest as `sha256:${string}`;
}
