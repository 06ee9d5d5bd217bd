/**
 * FROM / COPY --from of an image the store lacks pulls it (docker's default pull policy), and
 * `--pull` checks the registry every time. Layers come in through the registry client; their
 * progress goes to the build's event sink. A name the registry does not have, or a registry that
 * cannot be reached, stays E_IMAGE_NOT_FOUND (as docker's "pull access denied … does not exist"),
 * with the reason; a registry that answers wrongly keeps its own code (E_DIGEST_MISMATCH, …).
 */
import { VlabError } from '@vlab/errors';
import type { StoredImage } from '../store/store.ts';
import { pullImage } from '../registry/pull.ts';
import { parseReference, formatReference } from '../registry/reference.ts';
import { platformString } from '../image/platform.ts';
import type { ImageSource } from './context.ts';

const NOT_THERE = new Set(['E_IMAGE_NOT_FOUND', 'E_REGISTRY_UNREACHABLE', 'E_REGISTRY_AUTH']);

/** Pull `image` for a build; `notFound` is the error to give when the registry has nothing. */
export async function pullForBuild(s: ImageSource, image: string, notFound: string): Promise<StoredImage> {
  let full: string;
  try {
    full = formatReference(parseReference(image));
  } catch {
    // an image id or a name no registry could hold: only the store can have it (also with --pull)
    const local = await s.store.resolve(image);
    if (local) return local;
    throw new VlabError('E_IMAGE_NOT_FOUND', notFound);
  }
  try {
    return await pullImage(s.store, image, {
      ...s.registry,
      platform: platformString(s.platform),
      signal: s.signal,
      onProgress: s.emit,
    });
  } catch (e) {
    if (e instanceof VlabError && NOT_THERE.has(e.code))
      throw new VlabError('E_IMAGE_NOT_FOUND', `${notFound}; pulling ${full} failed: ${e.message}`, { cause: e });
    throw e;
  }
}
