import fsp from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { PassThrough, type Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import { readArchive } from '../archive/tar.ts';
import type { Store, StoredImage } from '../store/store.ts';
import { MEDIA, REF_NAME, type Descriptor, type ImageConfig, type ImageIndex, type Manifest } from './types.ts';

/**
 * Bring an image from outside the store in: an OCI layout directory, an OCI archive or a
 * docker-archive tarball (`docker save`). Blobs are streamed into the store and verified.
 * References: `oci-layout://DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`.
 */
export async function loadExternal(store: Store, ref: string): Promise<StoredImage | undefined> {
  let m: RegExpExecArray | null;
  if ((m = /^oci-layout:\/\/([^:]+)(?::(.+))?$/.exec(ref))) return loadOciLayoutDir(store, m[1]!, m[2]);
  if ((m = /^oci-archive:([^:]+)(?::(.+))?$/.exec(ref))) return loadArchive(store, m[1]!, m[2]);
  if ((m = /^docker-archive:(.+)$/.exec(ref))) return loadArchive(store, m[1]!);
  return undefined;
}

async function loadOciLayoutDir(store: Store, dir: string, tag?: string): Promise<StoredImage> {
  const idx = JSON.parse(await fsp.readFile(path.join(dir, 'index.json'), 'utf8').catch((e) => {
    throw new VlabError('E_IMAGE_NOT_FOUND', `${dir} is not an OCI layout (no index.json)`, { cause: e });
  })) as ImageIndex;
  const desc = pickManifest(idx.manifests, tag, dir);
  const blob = async (d: string) => {
    if (!(await store.blobs.has(d))) {
      const { createReadStream } = await import('node:fs');
      await store.blobs.put(createReadStream(path.join(dir, 'blobs', 'sha256', d.replace(/^sha256:/, ''))), d);
    }
  };
  await blob(desc.digest);
  const manifest = await store.blobs.readJson<Manifest>(desc.digest);
  await blob(manifest.config.digest);
  for (const l of manifest.layers) await blob(l.digest);
  return store.loadManifest(desc.digest);
}

function pickManifest(list: Descriptor[], tag: string | undefined, where: string): Descriptor {
  const d = tag ? list.find((x) => x.annotations?.[REF_NAME] === tag || x.annotations?.[REF_NAME]?.endsWith(`:${tag}`)) : list[0];
  if (!d) throw new VlabError('E_IMAGE_NOT_FOUND', `no image${tag ? ` tagged ${tag}` : ''} in ${where}`);
  if (d.mediaType !== MEDIA.manifest && d.mediaType !== MEDIA.dockerManifest) {
    throw new VlabError('E_UNSUPPORTED', `${where}: ${d.mediaType} (multi-platform index) is not supported yet`);
  }
  return d;
}

/**
 * oci-archive or docker-archive: each file is streamed into the blob store as it is read (layers
 * may be gzip; they are stored decompressed, as local layers are), small JSON files kept.
 */
export async function loadArchive(store: Store, file: string, tag?: string): Promise<StoredImage> {
  const json = new Map<string, Buffer>();
  const stored = new Map<string, { digest: string; size: number }>();
  await readArchive(file, async (name, size, stream) => {
    if ((name.endsWith('.json') || name === 'oci-layout') && size < 16 * 1024 * 1024) {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      json.set(name, Buffer.concat(chunks));
      if (name.startsWith('blobs/')) stored.set(name, await store.blobs.putBytes(Buffer.concat(chunks)));
      return;
    }
    stored.set(name, await store.blobs.put(stream));
  });
  if (json.has('index.json')) {
    const idx = JSON.parse(json.get('index.json')!.toString()) as ImageIndex;
    const desc = pickManifest(idx.manifests, tag, file);
    return store.loadManifest(desc.digest);
  }
  const dm = json.get('manifest.json');
  if (!dm) throw new VlabError('E_BAD_ARCHIVE', `${file} is neither an OCI archive nor a docker-archive`);
  const entry = (JSON.parse(dm.toString()) as { Config: string; Layers: string[]; RepoTags?: string[] }[])[0]!;
  const config = JSON.parse(json.get(entry.Config)!.toString()) as ImageConfig;
  const layers: Descriptor[] = [];
  for (const [i, name] of entry.Layers.entries()) {
    const blob = stored.get(name);
    if (!blob) throw new VlabError('E_BAD_ARCHIVE', `${file}: layer ${name} is missing`);
    const diffId = config.rootfs.diff_ids[i];
    if (blob.digest === diffId) {
      layers.push({ mediaType: MEDIA.layer, digest: blob.digest, size: blob.size });
    } else {
      // Compressed layer: keep it as the blob, typed gzip, so diffID and blob digest stay honest.
      layers.push({ mediaType: MEDIA.layerGzip, digest: blob.digest, size: blob.size });
    }
  }
  return store.putImage(config, layers);
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
    out.destroy(bad ? new VlabError('E_LAYER_INVALID', `${what} is not valid gzip (${e.message}): the archive or image is damaged or lies about its layers`, { cause: e }) : e);
  };
  s.on('error', (e) => fail(e, false));
  gz.on('error', (e) => fail(e, true));
  return s.pipe(gz).pipe(out);
}
