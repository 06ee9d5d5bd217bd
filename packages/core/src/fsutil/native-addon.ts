/**
 * Loading one of packages/core's Node-API addons (native/NAME.c, built into native/bin/NAME.node by
 * scripts/build-native.sh). The one loader for store/ (vlab-fadvise) and the CLI (vlab-fdpass):
 * the CLI reaches it through index.ts, the only core module it may import (test/layering.test.ts).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The addon's exports, from the sources (src/<dir>/, as this file) or from the CLI bundle (dist/);
 * undefined when it is not built. Not cached: each caller keeps what it loaded.
 */
export function loadCoreAddon<T>(name: 'vlab-fadvise' | 'vlab-fdpass'): T | undefined {
  for (const u of [
    new URL(`../../native/bin/${name}.node`, import.meta.url),
    new URL(`../native/bin/${name}.node`, import.meta.url),
  ]) {
    const p = fileURLToPath(u);
    if (!existsSync(p)) continue;
    const m = { exports: {} as T };
    process.dlopen(m, p);
    return m.exports;
  }
  return undefined;
}
