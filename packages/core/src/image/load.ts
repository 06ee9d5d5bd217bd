import { createGunzip } from 'node:zlib';
import { PassThrough, type Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import { openArchiveFile, readArchive } from '../archive/tar.ts';
import { resolveInRoot } from '../fsutil/in-root.ts';
import { parseTransportRef } from './transport.ts';
import type { Store, StoredImage } from '../store/store.ts';
import { Members } from './members.ts';
import { Staging, type Staged } from './staging.ts';
import { MAX_JSON_BYTES, parseDocument, requireSha256, type DocumentKind, type Documents } from './validate.ts';
import { MEDIA, REF_NAME, type Descriptor, type ImageIndex } from './types.ts';

/**
 * Bring an image from outside the store in: an OCI layout directory, an OCI archive or a
 * docker-archive tarball (`docker save`). References: `oci-layout://DIR[:TAG]`,
 * `oci-archive:FILE[:TAG]`, `docker-archive:FILE`.
 *
 * All of it is untrusted: every JSON document is schema-checked (validate.ts), every blob must
 * hash to its digest and every layer's content to its diff_id, every archive path stays inside
 * the archive (members.ts), and nothing is named in the store before the whole image checks out
 * (staging.ts). Errors: E_BAD_ARCHIVE (malformed), E_DIGEST_MISMATCH, E_UNSUPPORTED,
 * E_IMAGE_NOT_FOUND (no such file or tag).
 */
export async function loadExternal(store: Store, ref: string): Promise<StoredImage | undefined> {
  const t = parseTransportRef(ref);
  if (t?.transport === 'oci-layout') return loadOciLayoutDir(store, t.path, t.tag);
  if (t?.transport === 'oci-archive' || t?.transport === 'docker-archive')
    return loadArchive(store, t.path, 'tag' in t ? t.tag : undefined);
  return undefined;
}

/** Where an OCI image's blobs come from: staged by digest (`what` names the blob in errors). */
type BlobSource = (digest: `sha256:${string}`, what: string) => Promise<Staged | 'stored'>;

async function loadOciLayoutDir(store: Store, dir: string, tag?: string): Promise<StoredImage> {
  const staging = new Staging(store.blobs);
  const where = `oci-layout://${dir}`;
  // Paths inside the layout are resolved in it: a symlinked blob cannot name a host file.
  const read = async (rel: string): Promise<Staged | undefined> => {
    const file = await resolveInRoot(dir, rel);
    const opened = await openArchiveFile(file).catch((e: VlabError) => {
      if (e.code === 'E_IMAGE_NOT_FOUND') return undefined;
      throw e;
    });
    return opened && staging.stage(opened.stream, opened.size);
  };
  try {
    const index = await read('index.json');
    if (!index) throw new VlabError('E_IMAGE_NOT_FOUND', `${dir} is not an OCI layout (no index.json)`);
    const layout = await read('oci-layout');
    if (layout) await parseDocument('layout', jsonOf(layout, 'oci-layout'), `${where}: oci-layout`);
    const source: BlobSource = async (digest, what) => {
      if (what === 'layer' && (await store.blobs.has(digest))) return 'stored';
      const s = await read(`blobs/sha256/${digest.slice(7)}`);
      if (!s)
        throw new VlabError(
          'E_BAD_ARCHIVE',
          `${where}: ${what} ${digest} is missing (no blobs/sha256/${digest.slice(7, 19)}…)`,
        );
      checkBlobDigest(s, digest, where);
      return s;
    };
    return await loadOciImage(
      store,
      staging,
      source,
      await parseDocument('index', jsonOf(index, 'index.json'), `${where}: index.json`),
      tag,
      where,
    );
  } finally {
    await staging.abortAll();
  }
}

/**
 * oci-archive or docker-archive: read in one pass, each member staged as it comes (JSON kept in
 * memory, the rest in temp blobs); then the image is checked and only what it uses is committed.
 */
export async function loadArchive(store: Store, file: string, tag?: string): Promise<StoredImage> {
  const staging = new Staging(store.blobs);
  const members = new Members(file);
  try {
    await readArchive(file, async (m, stream) => {
      if (m.type === 'directory' || m.type === 'other') return;
      const key = members.key(m.name);
      if (m.type === 'symlink' || m.type === 'link') {
        const replaced = members.addLink(
          key,
          m.type,
          m.type === 'link' ? members.key(m.linkname ?? '') : (m.linkname ?? ''),
        );
        if (replaced) await staging.drop(replaced);
        return;
      }
      const s = await staging.stage(stream, m.size);
      const named = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(key);
      if (named) checkBlobDigest(s, `sha256:${named[1]}`, file);
      const replaced = members.addFile(key, s);
      if (replaced) await staging.drop(replaced);
    });
    if (members.has('index.json')) {
      const source: BlobSource = async (digest, what) => {
        const key = `blobs/sha256/${digest.slice(7)}`;
        if (!members.has(key))
          throw new VlabError('E_BAD_ARCHIVE', `${file}: ${what} ${digest} is missing (no ${key.slice(0, 25)}…)`);
        return members.resolve(key, 'index.json', '');
      };
      if (members.has('oci-layout'))
        await parseDocument(
          'layout',
          jsonOf(members.resolve('oci-layout', 'archive', ''), 'oci-layout'),
          `${file}: oci-layout`,
        );
      const index = await parseDocument(
        'index',
        jsonOf(members.resolve('index.json', 'archive', ''), 'index.json'),
        `${file}: index.json`,
      );
      return await loadOciImage(store, staging, source, index, tag, file);
    }
    if (!members.has('manifest.json'))
      throw new VlabError(
        'E_BAD_ARCHIVE',
        `${file} is neither an OCI archive (no index.json) nor a docker-archive (no manifest.json)`,
      );
    return await loadDockerArchive(store, staging, members, file);
  } finally {
    await staging.abortAll();
  }
}

async function loadDockerArchive(store: Store, staging: Staging, members: Members, file: string): Promise<StoredImage> {
  const doc = (kind: DocumentKind, ref: string, pointer: string) => {
    const s = members.resolve(ref, 'manifest.json', pointer);
    return parseDocument(kind, jsonOf(s, ref), `${file}: ${ref}`);
  };
  const entry = ((await doc('docker-manifest', 'manifest.json', '')) as Documents['docker-manifest'])[0]!;
  const config = (await doc('config', entry.Config, '/0/Config')) as Documents['config'];
  const diffIds = config.rootfs.diff_ids;
  if (entry.Layers.length !== diffIds.length) {
    throw new VlabError(
      'E_BAD_ARCHIVE',
      `${file}: manifest.json lists ${entry.Layers.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`,
    );
  }
  const layers: { s: Staged; desc: Descriptor }[] = entry.Layers.map((name, i) => {
    const s = members.resolve(name, 'manifest.json', `/0/Layers/${i}`);
    checkDiffId(
      s,
      s.gzip,
      requireSha256(diffIds[i]!, `${file}: config rootfs.diff_ids[${i}]`),
      `${file}: layer ${name}`,
    );
    // A compressed layer is kept as it is, typed gzip, so diffID and blob digest stay honest.
    return { s, desc: { mediaType: s.gzip ? MEDIA.layerGzip : MEDIA.layer, digest: s.digest, size: s.size } };
  });
  for (const l of layers) await staging.commit(l.s, l.desc.digest);
  return store.putImage(
    config,
    layers.map((l) => l.desc),
  );
}

const CONFIG_TYPES: string[] = [MEDIA.config, MEDIA.dockerConfig];
const LAYER_TYPES: Record<string, 'plain' | 'gzip'> = {
  [MEDIA.layer]: 'plain',
  [MEDIA.dockerLayer]: 'plain',
  [MEDIA.layerGzip]: 'gzip',
  [MEDIA.dockerLayerGzip]: 'gzip',
};

/** Check an OCI image (index → manifest → config, layers) from `source`; commit it once it all holds. */
async function loadOciImage(
  store: Store,
  staging: Staging,
  source: BlobSource,
  index: ImageIndex,
  tag: string | undefined,
  where: string,
): Promise<StoredImage> {
  const desc = pickManifest(index.manifests, tag, where);
  const manifestDigest = requireSha256(desc.digest, `${where}: index.json`);
  const mStaged = (await source(manifestDigest, 'manifest')) as Staged; // only layers may be 'stored'
  checkSize(desc, mStaged, where, 'manifest');
  const manifest = await parseDocument(
    'manifest',
    jsonOf(mStaged, `manifest ${manifestDigest}`),
    `${where}: manifest ${manifestDigest.slice(0, 19)}`,
  );
  if (!CONFIG_TYPES.includes(manifest.config.mediaType)) {
    throw new VlabError(
      'E_UNSUPPORTED',
      `${where}: config media type ${manifest.config.mediaType} is not an image config (an artifact?)`,
    );
  }
  const configDigest = requireSha256(manifest.config.digest, `${where}: manifest config`);
  const cStaged = (await source(configDigest, 'config')) as Staged;
  checkSize(manifest.config, cStaged, where, 'config');
  const config = await parseDocument(
    'config',
    jsonOf(cStaged, `config ${configDigest}`),
    `${where}: config ${configDigest.slice(0, 19)}`,
  );
  const diffIds = config.rootfs.diff_ids;
  if (manifest.layers.length !== diffIds.length) {
    throw new VlabError(
      'E_BAD_ARCHIVE',
      `${where}: the manifest has ${manifest.layers.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`,
    );
  }
  const layers: Staged[] = [];
  for (const [i, l] of manifest.layers.entries()) {
    const kind = LAYER_TYPES[l.mediaType];
    if (!kind)
      throw new VlabError(
        'E_UNSUPPORTED',
        `${where}: layer ${i} has media type ${l.mediaType} (only tar and tar+gzip layers are supported)`,
      );
    const digest = requireSha256(l.digest, `${where}: manifest layers[${i}]`);
    const diffId = requireSha256(diffIds[i]!, `${where}: config rootfs.diff_ids[${i}]`);
    const s = await source(digest, 'layer');
    if (s === 'stored') {
      // Verified when it was stored; a plain layer's digest is its diff_id.
      if (kind === 'plain' && digest !== diffId) throw diffMismatch(`${where}: layer ${i}`, digest, diffId);
      continue;
    }
    checkSize(l, s, where, `layer ${i}`);
    checkDiffId(s, kind === 'gzip', diffId, `${where}: layer ${i}`);
    layers.push(s);
  }
  for (const s of layers) await staging.commit(s, s.digest);
  await staging.commit(cStaged, configDigest);
  await staging.commit(mStaged, manifestDigest);
  return { manifestDigest, manifest, configDigest, config };
}

function pickManifest(list: Descriptor[], tag: string | undefined, where: string): Descriptor {
  const d = tag
    ? list.find((x) => x.annotations?.[REF_NAME] === tag || x.annotations?.[REF_NAME]?.endsWith(`:${tag}`))
    : list[0];
  if (!d) throw new VlabError('E_IMAGE_NOT_FOUND', `no image${tag ? ` tagged ${tag}` : ''} in ${where}`);
  if (d.mediaType !== MEDIA.manifest && d.mediaType !== MEDIA.dockerManifest) {
    throw new VlabError('E_UNSUPPORTED', `${where}: ${d.mediaType} (multi-platform index) is not supported yet`);
  }
  return d;
}

/** The bytes of a member that must be a JSON document. */
function jsonOf(s: Staged, name: string): Buffer {
  if (s.bytes) return s.bytes;
  if (s.size > MAX_JSON_BYTES)
    throw new VlabError(
      'E_BAD_ARCHIVE',
      `${name}: ${s.size} bytes, over the ${MAX_JSON_BYTES >> 20} MiB limit for a JSON document`,
    );
  throw new VlabError('E_BAD_ARCHIVE', `${name}: not a JSON document`);
}

function checkBlobDigest(s: Staged, digest: string, where: string): void {
  if (s.digest !== digest)
    throw new VlabError(
      'E_DIGEST_MISMATCH',
      `${where}: blob ${digest} holds content with digest ${s.digest}: the archive is corrupt or tampered with`,
    );
}

function checkSize(desc: Descriptor, s: Staged, where: string, what: string): void {
  if (desc.size !== s.size)
    throw new VlabError(
      'E_BAD_ARCHIVE',
      `${where}: ${what} ${desc.digest.slice(0, 19)} is ${s.size} bytes but its descriptor says size ${desc.size}`,
    );
}

/** A layer's content (gunzipped when it is gzip) must hash to its diff_id. */
function checkDiffId(s: Staged, gzip: boolean, diffId: string, what: string): void {
  const content = gzip ? s.gunzippedDigest : s.digest;
  if (content !== diffId) throw diffMismatch(what, content ?? (gzip ? '(not valid gzip)' : s.digest), diffId);
}

function diffMismatch(what: string, got: string, want: string): VlabError {
  return new VlabError(
    'E_DIGEST_MISMATCH',
    `${what}: its content has digest ${got} but the config's diff_id is ${want}: the archive is corrupt or tampered with`,
  );
}

/** Decompress a layer blob stream when its media type says gzip. */
export function layerStream(s: Readable, mediaType: string): Readable {
  return mediaType.includes('gzip') ? gunzipStream(s, 'layer blob') : s;
}

/**
 * Gunzip `s`. Bad gzip ends the result with E_LAYER_INVALID, and an error of `s` ends it too: a
 * bare pipe() leaves the reader waiting forever and the error unhandled (a hostile layer that is
 * neither its diff_id's tar nor gzip hung the build that way).
 */
export function gunzipStream(s: Readable, what: string): Readable {
  const gz = createGunzip();
  const out = new PassThrough();
  const fail = (e: Error, bad: boolean) => {
    s.destroy();
    gz.destroy();
    out.destroy(
      bad
        ? new VlabError(
            'E_LAYER_INVALID',
            `${what} is not valid gzip (${e.message}): the archive or image is damaged or lies about its layers`,
            { cause: e },
          )
        : e,
    );
  };
  s.on('error', (e) => fail(e, false));
  gz.on('error', (e) => fail(e, true));
  return s.pipe(gz).pipe(out);
}
