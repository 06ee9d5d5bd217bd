/**
 * Which of an image's layers are its base's: the longest proper diff_id prefix it shares with
 * another image of the store (the image it was built FROM is there: builds take bases from the
 * store). Configs do not record their base, so this is what `squash` and `build --squash` keep.
 */
import type { Store, StoredImage } from '../store/store.ts';
import { diffIdsOf } from './common.ts';

export interface BaseMatch {
  /** Number of the image's lowest layers that are the base's (0: no base found, or scratch). */
  layers: number;
  /** A name of that base, when one was found. */
  ref?: string;
}

export async function findBase(store: Store, img: StoredImage): Promise<BaseMatch> {
  const mine = diffIdsOf(img);
  let best: BaseMatch = { layers: 0 };
  for (const { ref } of await store.listImages()) {
    const other = await store.resolve(ref);
    if (!other || other.manifestDigest === img.manifestDigest) continue;
    const theirs = diffIdsOf(other);
    if (!theirs.length || theirs.length >= mine.length || theirs.length <= best.layers) continue;
    if (theirs.every((d, i) => mine[i] === d)) best = { layers: theirs.length, ref };
  }
  return best;
}
