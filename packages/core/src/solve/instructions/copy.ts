/**
 * COPY and ADD. The key is a checksum of exactly what would be copied (copy-step.ts
 * copyCacheInput): context files by content, another stage by its key, an image by its digest.
 * ADD <url>: with --checksum the key is that checksum, and a hit downloads nothing; without it
 * the content decides, so the download is part of computing the key (as BuildKit's http source)
 * and is fetched once per build, then reused by run().
 */
import type { CopyInstruction } from '@vlab/dockerfile';
import type { BuildSession } from '../context.ts';
import type { LayerRef } from '../../image/types.ts';
import { planCopy, copyCacheInput, packWhileHashing } from '../copy-step.ts';
import { copyInto, type HardLinks } from '../ops/copy.ts';
import { fastCopy } from '../fast-copy.ts';
import { copyFromNamedDir } from '../named-contexts.ts';
import { inSnapshot } from './snapshot.ts';
import type { StepModule } from './types.ts';

interface Found {
  /** The session and instruction the copy reads: a named directory context is the context. */
  src: { session: BuildSession; inst: CopyInstruction };
  /** A layer packed while the context was hashed for the key (a cold COPY reads each file once). */
  packed?: LayerRef | 'fallback';
}

export const copy: StepModule<CopyInstruction, Found, BuildSession> = {
  config: (call) => call.parent.config,
  async cacheKey(b, call, config) {
    const src = await copyFromNamedDir(b, call.inst);
    const packed = await packWhileHashing(src.session, src.inst, config.config, call.parent.layers);
    const input = await copyCacheInput(src.session, call.stage, src.inst);
    return { args: call.usedArgs, content: input.digest, files: input.files, found: { src, packed } };
  },
  async run(_b, call, config, { src, packed }) {
    // Straight into a layer tar when the case allows, else into a mounted tree.
    const quick = packed ?? (await fastCopy(src.session, src.inst, config.config, call.parent.layers));
    if (quick !== 'fallback') return quick;
    return inSnapshot(src.session, call.parent, async (rootfs) => {
      const links: HardLinks = new Map();
      await planCopy(src.session, src.inst, config.config, rootfs, async (plan, owner, chmod) =>
        copyInto(rootfs, plan, { owner, chmod, links }),
      );
    });
  },
};
