/**
 * The schema check against image-spec's own test documents (../shared/corpus/oci-image-spec: the
 * Go tests' cases and the spec's examples): every valid one accepted, every invalid one refused
 * with E_BAD_ARCHIVE, including the four that only the reference validator's extra checks catch,
 * except manifest-06 (`"layers": []`, accepted on purpose: see validate.ts).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VlabError } from '@vlab/errors';
import { MAX_JSON_BYTES, parseDocument, requireSha256, type DocumentKind } from './validate.ts';

const corpus = new URL('../../../../../shared/corpus/oci-image-spec/', import.meta.url);
const KIND: Record<string, DocumentKind> = {
  'config-schema.json': 'config',
  'content-descriptor.json': 'descriptor',
  'image-index-schema.json': 'index',
  'image-layout-schema.json': 'layout',
  'image-manifest-schema.json': 'manifest',
};
const cases = (
  JSON.parse(readFileSync(new URL('index.json', corpus), 'utf8')) as {
    file: string;
    schema: string;
    expect: string;
    digest_of_file_bytes?: string;
  }[]
).map((c) => ({ ...c, kind: KIND[c.schema]! }));
// backwards_compatibility_test.go validates Docker v2.2 documents after this renaming.
const DOCKER_TO_OCI: [string, string][] = [
  ['application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.oci.image.index.v1+json'],
  ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'],
  ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.oci.image.layer.v1.tar+gzip'],
  ['application/vnd.docker.container.image.v1+json', 'application/vnd.oci.image.config.v1+json'],
];

async function outcome(kind: DocumentKind, text: string): Promise<'valid' | VlabError> {
  try {
    await parseDocument(kind, text, 'doc');
    return 'valid';
  } catch (e) {
    if (!(e instanceof VlabError)) throw e;
    return e;
  }
}

describe('parseDocument on the image-spec corpus', () => {
  it(`has the corpus (${cases.length} documents)`, () => expect(cases.length).toBeGreaterThan(80));
  it.each(cases)('$file is $expect', async ({ file, kind, expect: expected, digest_of_file_bytes }) => {
    // One deliberate difference: an empty `layers` (docker build writes one for FROM scratch + CMD).
    const want = file.endsWith('manifest-06-invalid.json') ? 'valid' : expected;
    let text = readFileSync(new URL(file, corpus), 'utf8');
    if (digest_of_file_bytes) for (const [a, b] of DOCKER_TO_OCI) text = text.replaceAll(a, b);
    const got = await outcome(kind, text);
    if (want === 'valid') expect(got).toBe('valid');
    else {
      expect(got).toBeInstanceOf(VlabError);
      expect((got as VlabError).code).toBe('E_BAD_ARCHIVE');
    }
  });
});

describe('parseDocument errors name the field', () => {
  const manifest = (layers: unknown) =>
    JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: 2, digest: `sha256:${'a'.repeat(64)}` },
      layers,
    });
  it.each([
    [
      'manifest',
      manifest([
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', size: '7', digest: `sha256:${'b'.repeat(64)}` },
      ]),
      'field /layers/0/size must be integer',
    ],
    [
      'manifest',
      manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', size: 7 }]),
      'field /layers/0/digest is missing',
    ],
    [
      'manifest',
      manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', size: 7, digest: 'sha256:ABC' }]),
      'field /layers/0/digest is not a valid sha256 digest',
    ],
    ['manifest', '{"schemaVersion": 2}', 'field /config is missing'],
    ['manifest', '[1]', 'field / must be object'],
    [
      'config',
      '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[7]}}',
      'field /rootfs/diff_ids/0 must be string',
    ],
    ['config', '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}', 'field /rootfs/diff_ids is missing'],
    ['index', '{"schemaVersion":2,"manifests":{}}', 'field /manifests must be array'],
    ['docker-manifest', '[{"Config":"c.json","Layers":[1]}]', 'field /0/Layers/0 must be string'],
    ['docker-manifest', '[{"Layers":[]}]', 'field /0/Config is missing'],
    ['docker-manifest', '{}', 'field / must be array'],
    ['docker-manifest', '[]', 'field / must NOT have fewer than 1 items'],
    ['manifest', '{"schemaVersion": 2,', 'not valid JSON'],
  ] as [DocumentKind, string, string][])('%s %s', async (kind, text, message) => {
    const got = await outcome(kind, text);
    expect(got).toBeInstanceOf(VlabError);
    expect((got as VlabError).code).toBe('E_BAD_ARCHIVE');
    expect((got as VlabError).message).toContain(`doc: ${message}`);
  });

  it('accepts an image without layers (Docker writes "layers": [] for one) and fills in a config', async () => {
    expect(await outcome('manifest', manifest([]))).toBe('valid');
    const c = await parseDocument(
      'config',
      '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
      'c',
    );
    expect(c.config).toEqual({});
    expect(c.history).toEqual([]);
  });

  it('bounds the size, and takes only sha256 digests for content', async () => {
    const big = `{"schemaVersion":2${' '.repeat(MAX_JSON_BYTES)}}`;
    expect(((await outcome('manifest', big)) as VlabError).message).toMatch(/over the 4 MiB limit/);
    expect(() => requireSha256(`sha512:${'a'.repeat(128)}`, 'x')).toThrow(
      expect.objectContaining({ code: 'E_UNSUPPORTED' }),
    );
    expect(requireSha256(`sha256:${'a'.repeat(64)}`, 'x')).toBe(`sha256:${'a'.repeat(64)}`);
  });
});
