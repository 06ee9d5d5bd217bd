/** The API (`containers.*` of @vlab/image) for exec, pause, unpause, top, diff, commit and cp. */
import type { Change } from '@vlab/overlay';
import type { StoredImage } from '../store/store.ts';
import type { TopResult } from '../exec/top.ts';
import type { EnterResult } from '../exec/enter.ts';
import type { ContainerService } from './service.ts';
import { execContainer, pauseContainer, topContainer, unpauseContainer, type ExecOptions } from './process-ops.ts';
import { commitContainer, copyFrom, copyTo, diffContainer, type CommitContainerOptions } from './snapshot-ops.ts';

type On = <T>(at: { root?: string } | undefined, fn: (s: ContainerService) => Promise<T>) => Promise<T>;

export function containerOps(on: On) {
  return {
    /** docker exec; output to `onOutput` (or this process's stdio with `stdio: 'inherit'`). */
    exec: (ref: string, argv: string[], o: ExecOptions & { root?: string } = {}): Promise<EnterResult> =>
      on(o, (s) => execContainer(s, ref, argv, o)),
    pause: (ref: string, o: { root?: string } = {}) => on(o, (s) => pauseContainer(s, ref)),
    unpause: (ref: string, o: { root?: string } = {}) => on(o, (s) => unpauseContainer(s, ref)),
    top: (ref: string, o: { root?: string } = {}): Promise<TopResult> => on(o, (s) => topContainer(s, ref)),
    diff: (ref: string, o: { root?: string } = {}): Promise<Change[]> => on(o, (s) => diffContainer(s, ref)),
    commit: (ref: string, image?: string, o: CommitContainerOptions & { root?: string } = {}): Promise<StoredImage> =>
      on(o, (s) => commitContainer(s, ref, image, o)),
    /** docker cp CONTAINER:SRC DEST */
    copyFrom: (ref: string, src: string, dest: string, o: { root?: string } = {}) =>
      on(o, (s) => copyFrom(s, ref, src, dest)),
    /** docker cp SRC CONTAINER:DEST */
    copyTo: (ref: string, src: string, dest: string, o: { root?: string } = {}) =>
      on(o, (s) => copyTo(s, ref, src, dest)),
  };
}
