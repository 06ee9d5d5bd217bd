/**
 * COPY/ADD's cache rule: what the key digests (exactly what the step would copy), computed before
 * any work: no layer is packed and, with --checksum, nothing is downloaded for a cache hit.
 */
import { createHash } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import { findStage, type CopyInstruction, type Stage } from '@vlab/dockerfile';
import type { LayerRef } from '../../image/types.ts';
import type { BuildSession, StageLookup } from '../context.ts';
import type { SourceSelection } from '../../context/context.ts';
import { download, URL_RE, type Download } from '../ops/add.ts';
import { verifyChecksum } from '../ops/download.ts';
import { imageKey, resolveImage, layersOf } from '../base.ts';
import type { ContextUse } from '../named-contexts.ts';
import type { StepInputs } from '../../cache/types.ts';

type FromSource = { key: string; layers: LayerRef[] };

/** Where COPY --from (or a bind's from=) points: a named context's image, an earlier stage (by name or index) or an image. */
export async function fromSource(
  s: StageLookup,
  stage: Stage,
  from: string,
  use: ContextUse = 'COPY --from',
): Promise<FromSource> {
  const named = await s.namedContexts.image(from, use);
  if (named) return { key: imageKey(named), layers: layersOf(named) };
  const ref = findStage(s.df, from);
  if (ref) {
    if (ref.index === stage.index) throw new VlabError('E_COPY_FROM', `${use}=${from} refers to its own stage`);
    const st = await s.stageResult(ref.index);
    return { key: st.key, layers: st.layers };
  }
  const img = await resolveImage(s, from, use);
  return { key: imageKey(img), layers: layersOf(img) };
}

/**
 * The cache input of a COPY/ADD: a checksum of exactly what it would copy. Context files are
 * hashed here (their hashes remembered by path, size, mtime and inode), apart from packing.
 */
export async function copyKeyInput(
  s: BuildSession,
  stage: Stage,
  inst: CopyInstruction,
): Promise<{ digest: string; files: StepInputs['files'] }> {
  const h = createHash('sha256');
  if (inst.heredocs.length) {
    for (const d of inst.heredocs) h.update(`${d.name}\0${d.content}\0`);
    return { digest: `sha256:${h.digest('hex')}`, files: {} };
  }
  if (inst.from) {
    const src = await fromSource(s, stage, inst.from);
    h.update(JSON.stringify([src.key, inst.sources, inst.exclude]));
    return { digest: `sha256:${h.digest('hex')}`, files: { [`--from=${inst.from}`]: src.key } };
  }
  const urls = urlSources(inst);
  const sels = await selectAll(s, inst);
  const local = await s.context.checksum(sels, inst.exclude);
  if (!urls.length) return local;
  // With --checksum a cache hit needs no network; without, the content decides (as BuildKit).
  const files = local.files.toRecord();
  for (const u of urls) files[u] = inst.checksum ?? (await fetchOnce(s, u, inst)).digest;
  h.update(JSON.stringify([local.digest, files]));
  return { digest: `sha256:${h.digest('hex')}`, files };
}

/** The instruction's URL sources (ADD only: COPY refuses them). */
export function urlSources(inst: CopyInstruction): string[] {
  const urls = inst.sources.filter((p) => URL_RE.test(p));
  if (urls.length && inst.kind === 'COPY')
    throw new VlabError('E_COPY_SOURCE', `COPY cannot fetch URLs (${urls[0]}); use ADD`);
  return urls;
}

/** The build's one download of `url`, checked against this ADD's --checksum (every use checks its own). */
export async function fetchOnce(s: BuildSession, url: string, inst: CopyInstruction): Promise<Download> {
  let p = s.downloads.get(url);
  if (!p) {
    const made = download(url, undefined, {
      tmpParent: s.store.path('tmp'),
      signal: s.signal,
      limits: s.downloadLimits,
    });
    s.downloads.set(url, made);
    // A failed one is not the build's download: a retry of the build (after E_CACHE_LAYER, whose
    // first try a failing sibling stage may have aborted) downloads again.
    made.catch(() => {
      if (s.downloads.get(url) === made) s.downloads.delete(url);
    });
    p = made;
  }
  const d = await p;
  if (inst.checksum) verifyChecksum(url, inst.checksum, d.digest);
  return d;
}

/** The context sources of the instruction (URLs left out). */
export async function selectAll(s: BuildSession, inst: CopyInstruction): Promise<SourceSelection[]> {
  return Promise.all(inst.sources.filter((p) => !URL_RE.test(p)).map((p) => s.context.select(p)));
}
