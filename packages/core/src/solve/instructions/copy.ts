/**
 * COPY and ADD. The key is a checksum of exactly what would be copied (copy/key.ts
 * copyKeyInput): context files by content, another stage by its key, an image by its digest; it
 * packs nothing. ADD <url>: with --checksum the key is that checksum, and a hit downloads
 * nothing; without it the content decides, so the download is part of computing the key (as
 * BuildKit's http source) and is fetched once per build, then reused by run().
 */
import type { CopyInstruction } from '@vlab/dockerfile';
import type { BuildSession } from '../context.ts';
import { copyKeyInput, copyLayer } from '../copy/index.ts';
import { copyFromNamedDir } from '../named-contexts.ts';
import type { StepModule } from './types.ts';

interface Found {
  /** The session and instruction the copy reads: a named directory context is the context. */
  src: { session: BuildSession; inst: CopyInstruction };
}

export const copy: StepModule<CopyInstruction, Found, BuildSession> = {
  config: (call) => call.parent.config,
  async cacheKey(b, call) {
    const src = await copyFromNamedDir(b, call.inst);
    const input = await copyKeyInput(src.session, call.stage, src.inst);
    return { args: call.usedArgs, content: input.digest, files: input.files, found: { src } };
  },
  // One plan, packed straight into a layer tar (or written into a mounted tree when it must be).
  run: (_b, call, config, { src }) => copyLayer(src.session, call.stage, src.inst, config.config, call.parent.layers),
};
