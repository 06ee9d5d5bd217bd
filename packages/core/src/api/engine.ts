import { createSnapshotter, type Snapshotter } from '@vlab/overlay';
import { Store } from '../store/store.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import { DirBuildCache, type BuildCache } from '../cache/cache.ts';
import { LayerManager } from '../layers/manager.ts';

/** Which snapshotter driver: `auto` probes kernel overlayfs and falls back to `native` copies. */
export type SnapshotterDriver = 'auto' | 'overlay' | 'native';

/** Opened store parts, shared by build() and the image commands. */
export interface Engine {
  store: Store;
  /** Opened on first use (probing overlay costs a mount). */
  snapshots: () => Promise<Snapshotter>;
  layers: LayerManager;
  cache: BuildCache;
}

/** Open (creating it if needed) the store at `root` with its layer manager and build cache. */
export async function openEngine(root = defaultStoreRoot(), snapshotter: SnapshotterDriver = 'auto'): Promise<Engine> {
  const store = await Store.open(root);
  const layers = new LayerManager(store, () => createSnapshotter(store.path('snapshots'), { driver: snapshotter }));
  return { store, snapshots: () => layers.snapshots(), layers, cache: new DirBuildCache(store.path('cache')) };
}
