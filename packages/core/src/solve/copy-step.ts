import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import { findStage, pathComponentProblem, type CopyInstruction, type Stage } from '@vlab/dockerfile';
import type { ContainerConfig, LayerRef } from '../image/types.ts';
import type { BuildSession, StageLookup } from './context.ts';
import { excluder, relativeTo, type SourceSelection } from '../context/context.ts';
import { compileGlob } from '../context/patterns.ts';
import { destIsDirectory, heredocFiles, parseChmod, walkHostTree, type CopyPlan, type Owner } from './ops/copy.ts';
import { mkdirInRoot, resolveInRoot } from '../fsutil/in-root.ts';
import { archiveKind, download, extractArchive, URL_RE, type Download } from './ops/add.ts';
import { verifyChecksum } from './ops/download.ts';
import { resolveUser } from '../exec/index.ts';
import { resolveImage, layersOf } from './base.ts';
import { fastCopy } from './fast-copy.ts';
import type { ContextUse } from './named-contexts.ts';

type FromSource = { key: string; layers: LayerRef[] };

/** Where COPY --from (or a bind's from=) points: a named context's image, an earlier stage (by name or index) or an image. */
export async function fromSource(
  s: StageLookup,
  stage: Stage,
  from: string,
  use: ContextUse = 'COPY --from',
): Promise<FromSource> {
  const named = await s.namedContexts.image(from, use);
  if (named) return { key: named.manifestDigest, layers: layersOf(named) };
  const ref = findStage(s.df, from);
  if (ref) {
    if (ref.index === stage.index) throw new VlabError('E_COPY_FROM', `${use}=${from} refers to its own stage`);
    const st = await s.stageResult(ref.index);
    return { key: st.key, layers: st.layers };
  }
  const img = await resolveImage(s, from, use);
  return { key: img.manifestDigest, layers: layersOf(img) };
}

/**
 * A cold COPY from the context reads every file twice: once to hash it for the cache key, once
 * into the layer. When most of its bytes have no remembered hash, pack the layer first and hash
 * each file in that same read (the hashes go into the context's hash cache), so the key that
 * follows reads nothing. If that key then hits the cache after all (the files were only touched),
 * the packed blob is the same layer or an unreferenced blob that `vbuild prune` removes.
 * Returns undefined when not worth it, or 'fallback' when the fast path cannot do this COPY.
 */
export async function packWhileHashing(
  s: BuildSession,
  inst: CopyInstruction,
  config: ContainerConfig,
  layers: LayerRef[],
): Promise<LayerRef | 'fallback' | undefined> {
  if (inst.kind !== 'COPY' || inst.from || inst.heredocs.length || inst.parents || urlSources(inst).length)
    return undefined;
  const { total, unhashed } = await s.context.unhashed(await selectAll(s, inst), inst.exclude);
  if (total === 0 || unhashed * 2 < total) return undefined;
  return fastCopy(s, inst, config, layers, { learnHashes: true });
}

/** The cache input of a COPY/ADD: a checksum of exactly what it would copy. No file is read twice. */
export async function copyCacheInput(
  s: BuildSession,
  stage: Stage,
  inst: CopyInstruction,
): Promise<{ digest: string; files: Record<string, string> }> {
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
  const files = { ...local.files };
  for (const u of urls) files[u] = inst.checksum ?? (await fetchOnce(s, u, inst)).digest;
  h.update(JSON.stringify([local.digest, files]));
  return { digest: `sha256:${h.digest('hex')}`, files };
}

function urlSources(inst: CopyInstruction): string[] {
  const urls = inst.sources.filter((p) => URL_RE.test(p));
  if (urls.length && inst.kind === 'COPY')
    throw new VlabError('E_COPY_SOURCE', `COPY cannot fetch URLs (${urls[0]}); use ADD`);
  return urls;
}

/** The build's one download of `url`, checked against this ADD's --checksum (every use checks its own). */
async function fetchOnce(s: BuildSession, url: string, inst: CopyInstruction): Promise<Download> {
  let p = s.downloads.get(url);
  if (!p) {
    p = download(url, undefined, { tmpParent: s.store.path('tmp'), signal: s.signal, limits: s.downloadLimits });
    s.downloads.set(url, p);
  }
  const d = await p;
  if (inst.checksum) verifyChecksum(url, inst.checksum, d.digest);
  return d;
}

async function selectAll(s: BuildSession, inst: CopyInstruction): Promise<SourceSelection[]> {
  return Promise.all(inst.sources.filter((p) => !URL_RE.test(p)).map((p) => s.context.select(p)));
}

/** Work out the copy plan inside the mounted rootfs and hand it to `copy`. */
export async function planCopy(
  s: BuildSession,
  inst: CopyInstruction,
  config: ContainerConfig,
  rootfs: string,
  copy: (plan: CopyPlan, owner: Owner | undefined, chmod: number | undefined) => Promise<void>,
): Promise<void> {
  const dest = path.posix.resolve(config.WorkingDir || '/', inst.dest) + (inst.dest.endsWith('/') ? '/' : '');
  const owner = inst.chown ? await resolveUser(rootfs, inst.chown, 'chown') : undefined;
  const chmod = parseChmod(inst);
  const excluded = excluder(inst.exclude);

  if (inst.heredocs.length) {
    const { dir: tmp, items } = await heredocFiles(s.store.path('tmp'), inst.heredocs);
    try {
      const destIsDir = await destIsDirectory(rootfs, dest, items.length, false, inst);
      await copy({ dest: stripSlash(dest), destIsDir, items }, owner, chmod);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
    return;
  }

  if (inst.from) {
    const src = await fromSource(s, { index: -1 } as Stage, inst.from);
    await s.layers.withView(src.layers, async (view) => {
      const roots: { host: string; name: string }[] = [];
      for (const p of inst.sources) roots.push(...(await matchInRoot(view, p, inst)));
      const wildcard = inst.sources.some((p) => /[*?[]/.test(p));
      const destIsDir = await destIsDirectory(rootfs, dest, roots.length, wildcard, inst);
      for (const r of roots) {
        const items = await walkHostTree(r.host, excluded);
        const top = items[0]!;
        const plan: CopyPlan = top.stats.isDirectory()
          ? { dest: stripSlash(dest), destIsDir: true, items: items.slice(1), keepOwners: true }
          : {
              dest: destIsDir ? stripSlash(dest) : dest,
              destIsDir,
              items: [{ ...top, rel: r.name }],
              keepOwners: true,
            };
        await copy(plan, owner, chmod);
      }
    });
    return;
  }

  const sels = await selectAll(s, inst);
  const urls = urlSources(inst);
  const count = sels.reduce((n, sel) => n + sel.roots.length, 0) + urls.length;
  const wildcard = inst.sources.some((p) => /[*?[]/.test(p));
  const destIsDir = await destIsDirectory(rootfs, dest, count, wildcard, inst);
  for (const u of urls) {
    const d = await fetchOnce(s, u, inst);
    const problem = destIsDir ? pathComponentProblem(d.name) : undefined;
    // As BuildKit, which fails to create such a file: the name comes from the URL, the user can give one.
    if (problem)
      throw new VlabError(
        'E_ADD_NAME',
        `ADD ${u}: the file name the URL gives cannot be a file name (${problem}); name the destination file, e.g. ADD <url> /dir/file`,
      );
    const st = await fsp.lstat(d.file);
    const stats = Object.assign(st, { mode: (st.mode & ~0o7777) | 0o600, mtime: d.mtime ?? st.mtime });
    await copy(
      { dest: destIsDir ? stripSlash(dest) : dest, destIsDir, items: [{ src: d.file, rel: d.name, stats }] },
      owner,
      chmod,
    );
  }
  for (const sel of sels) {
    for (const root of sel.roots) {
      if (inst.kind === 'ADD' && root.type === 'file' && inst.unpack !== false) {
        const kind = await archiveKind(root.abs);
        if (kind) {
          await extractArchive(root.abs, kind, await mkdirInRoot(rootfs, stripSlash(dest)));
          continue;
        }
      }
      if (root.type === 'dir') {
        const sub = await s.context.subtree(root);
        const prefix = inst.parents || !root.rel ? '' : `${root.rel}/`;
        if (inst.parents && root.rel) {
          // --parents keeps the source's path: its parent dirs are recreated under dest.
          const chain = root.rel.split('/').map((_, i, a) => a.slice(0, i + 1).join('/'));
          const parentItems = await Promise.all(
            chain.map(async (rel) => ({
              src: path.join(s.context.root, rel),
              rel,
              stats: await fsp.lstat(path.join(s.context.root, rel)),
            })),
          );
          await copy({ dest: stripSlash(dest), destIsDir: true, items: parentItems }, owner, chmod);
        }
        const items = sub
          .filter((e) => !excluded(relativeTo(root.rel, e.rel)))
          .map((e) => ({ src: e.abs, rel: e.rel.slice(prefix.length), stats: e.stats }));
        await copy({ dest: stripSlash(dest), destIsDir: true, items }, owner, chmod);
      } else {
        if (excluded(path.posix.basename(root.rel))) continue;
        const item = {
          src: root.abs,
          rel: inst.parents ? root.rel : path.posix.basename(root.rel),
          stats: await fsp.lstat(root.abs),
        };
        if (inst.parents) {
          await mkdirInRoot(rootfs, path.posix.join(stripSlash(dest), path.posix.dirname(root.rel)), owner);
          await copy({ dest: stripSlash(dest), destIsDir: true, items: [item] }, owner, chmod);
          continue;
        }
        await copy({ dest: destIsDir ? stripSlash(dest) : dest, destIsDir, items: [item] }, owner, chmod);
      }
    }
  }
}

/** Sources of COPY --from: a path (or a last-component wildcard) resolved inside the other stage's root. */
async function matchInRoot(
  root: string,
  pattern: string,
  inst: CopyInstruction,
): Promise<{ host: string; name: string }[]> {
  const clean = path.posix.normalize(`/${pattern}`);
  const dir = path.posix.dirname(clean);
  const base = path.posix.basename(clean);
  if (!/[*?[]/.test(clean)) {
    const host = await resolveInRoot(root, clean);
    if (!(await fsp.lstat(host).catch(() => undefined)))
      throw new VlabError('E_COPY_SOURCE', `${inst.kind} --from=${inst.from}: ${pattern} not found`);
    return [{ host, name: base || '/' }];
  }
  if (/[*?[]/.test(dir))
    throw new VlabError(
      'E_UNSUPPORTED',
      `${inst.kind} --from: wildcards are supported in the last path component only (${pattern})`,
    );
  const hostDir = await resolveInRoot(root, dir);
  const matches = compileGlob(base);
  const names = (await fsp.readdir(hostDir).catch(() => [] as string[])).filter(matches).sort();
  if (!names.length) throw new VlabError('E_COPY_SOURCE', `${inst.kind} --from=${inst.from}: no match for ${pattern}`);
  return names.map((n) => ({ host: path.join(hostDir, n), name: n }));
}

function stripSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}
