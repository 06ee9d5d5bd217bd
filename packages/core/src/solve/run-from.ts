/**
 * `RUN --mount=type=bind,from=X`: X is an earlier stage, a named context (an image or a
 * directory) or a store image, as for COPY --from (a transport written in the Dockerfile is
 * E_NAMED_CONTEXT, as for FROM). An image is mounted as a read-only view of its layers for the
 * step only; the source path is then resolved inside it (bind-source.ts, the in-root rule).
 */
import { createHash } from 'node:crypto';
import type { RunInstruction, Stage } from '@vlab/dockerfile';
import type { LayerRef } from '../image/types.ts';
import type { BuildServices, BuildSources, StageLookup } from './context.ts';

/** What resolving a RUN's bind sources reads. */
type Parts = StageLookup & Pick<BuildSources, 'context'> & Pick<BuildServices, 'layers'>;
import { fromSource } from './copy/index.ts';

type Source = { from: string; dir: string } | { from: string; layers: LayerRef[] };

export interface RunFromMounts {
  /** Cache inputs: what each `from=` is (stage key, image digest or directory checksum), and each context bind's content. */
  files: Record<string, string>;
  content?: string;
  /** Run `work` with each `from=` name mapped to its tree on the host; views are gone after. */
  with<T>(work: (root: (from: string) => string | undefined) => Promise<T>): Promise<T>;
}

export async function runFromMounts(s: Parts, stage: Stage, inst: RunInstruction): Promise<RunFromMounts> {
  const froms = [...new Set(inst.mounts.filter((m) => m.type === 'bind' && m.from).map((m) => m.from!))];
  const files: Record<string, string> = {};
  const sources: Source[] = [];
  for (const from of froms) {
    const dir = s.namedContexts.dir(from);
    if (dir) {
      const ctx = await dir;
      files[`--mount from=${from}`] = (await ctx.checksum([await ctx.select('.')])).digest;
      sources.push({ from, dir: ctx.root });
    } else {
      const src = await fromSource(s, stage, from, 'RUN --mount=type=bind,from');
      files[`--mount from=${from}`] = src.key;
      sources.push({ from, layers: src.layers });
    }
  }
  // A bind of the context (no from=) is keyed by the content it shows, as the context has it
  // (.dockerignore applied), so the step runs again when a bound file changes (BuildKit keys
  // binds by content too). A source that is not there is left to the mount code's E_RUN_MOUNT.
  const contextSources = [
    ...new Set(inst.mounts.filter((m) => m.type === 'bind' && !m.from).map((m) => m.source ?? '.')),
  ];
  for (const source of contextSources) {
    files[`--mount source=${source}`] = await s.context
      .select(source)
      .then((sel) => s.context.checksum([sel]))
      .then(
        (c) => c.digest,
        () => 'absent',
      );
  }
  const content = Object.keys(files).length
    ? `sha256:${createHash('sha256').update(JSON.stringify(files)).digest('hex')}`
    : undefined;
  return {
    files,
    content,
    with: (work) => withAll(s, sources, new Map(), work),
  };
}

async function withAll<T>(
  s: Pick<BuildServices, 'layers'>,
  rest: Source[],
  roots: Map<string, string>,
  work: (root: (from: string) => string | undefined) => Promise<T>,
): Promise<T> {
  const [first, ...others] = rest;
  if (!first) return work((from) => roots.get(from));
  if ('dir' in first) return withAll(s, others, new Map(roots).set(first.from, first.dir), work);
  return s.layers.withView(first.layers, (view) => withAll(s, others, new Map(roots).set(first.from, view), work));
}
