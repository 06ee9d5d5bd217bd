import { nativeHelper } from '@vlab/overlay';

/** native/vlab-init.c, from the sources (src/exec/) or from the CLI bundle (dist/). */
export function initHelper(): string | undefined {
  return nativeHelper('vlab-init', [
    new URL('../../native/bin/vlab-init', import.meta.url),
    new URL('../native/bin/vlab-init', import.meta.url),
  ]);
}
