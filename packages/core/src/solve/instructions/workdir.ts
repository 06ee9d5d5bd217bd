/** WORKDIR: the config's working dir, and the dir itself as a layer (mkdir -p as USER). */
import type { WorkdirInstruction } from '@vlab/dockerfile';
import { mkdirInRoot } from '../../fsutil/in-root.ts';
import { resolveUser } from '../../exec/user.ts';
import { resolveWorkdir } from '../ops/meta.ts';
import { inSnapshot, type SnapshotParts } from './snapshot.ts';
import type { StepModule } from './types.ts';

export const workdir: StepModule<WorkdirInstruction, undefined, SnapshotParts> = {
  config: ({ parent, inst }) => ({
    ...parent.config,
    config: { ...parent.config.config, WorkingDir: resolveWorkdir(parent.config.config.WorkingDir, inst.path) },
  }),
  // BuildKit makes no layer for `WORKDIR /` (nothing to create), only the config change.
  cacheKey: async (_b, call, config) => ({
    args: call.usedArgs,
    ...(config.config.WorkingDir === '/' ? { layer: false as const } : {}),
    found: undefined,
  }),
  run: (b, call, config) => {
    const dir = config.config.WorkingDir!;
    const user = config.config.User;
    // BuildKit makes WORKDIR with `mkdir -p` as USER: every dir it creates is the user's, resolved
    // as a file op's chown (a bare uid gets gid = uid), not as the process's USER.
    return inSnapshot(b, call.parent, async (root) => {
      const owner = user ? await resolveUser(root, user, 'chown') : undefined;
      await mkdirInRoot(root, dir, owner);
    });
  },
};
