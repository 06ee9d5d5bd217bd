import type { LayerRef } from '../../image/types.ts';
import type { BuildInputs, BuildServices, StageState } from '../context.ts';

/** What making a layer in a writable tree reads. */
export type SnapshotParts = Pick<BuildServices, 'layers'> & Pick<BuildInputs, 'sourceDateEpoch'>;

/** Run `work` in a writable tree on the parent's layers and return the layer of what it changed. */
export function inSnapshot(
  b: SnapshotParts,
  parent: StageState,
  work: (rootfs: string) => Promise<void>,
): Promise<LayerRef> {
  return b.layers.withWritableSnapshot(parent.layers, work, { sourceDateEpoch: b.sourceDateEpoch });
}
